//! The hypervisor's own EL2 address space: an identity map of RAM, its image with text
//! executable and read-only, and just the devices it drives.

use crate::memmap::{PAGE_SIZE, Range, RegionSet};
use crate::pgtable::{MemType, Perms};
use crate::platform::{EnableMethod, Platform};

/// One identity mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    pub range: Range,
    pub mem: MemType,
    pub perms: Perms,
}

/// Where the hypervisor image lies.
#[derive(Debug, Clone, Copy)]
pub struct ImageRanges {
    pub text: Range,
    pub rodata: Range,
    pub data: Range,
}

/// Most mappings the hypervisor's map holds.
pub const MAX_MAPPINGS: usize = 96;

/// The host needs more identity mappings than the hypervisor's list holds (RAM banks,
/// spin-table mailboxes, devices, and the pieces the image splits them into).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyMappings;

impl core::fmt::Display for TooManyMappings {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "host device tree: more than {MAX_MAPPINGS} ranges for the hypervisor's own map")
    }
}

/// The list of identity mappings, with no overlaps and every range page aligned.
#[allow(clippy::type_complexity)]
pub fn hypervisor_mappings(
    p: &Platform,
    image: ImageRanges,
    dtb: Range,
) -> Result<([Option<Mapping>; MAX_MAPPINGS], usize), TooManyMappings> {
    let mut out = [None; MAX_MAPPINGS];
    let mut n = 0;
    let mut full = false;
    let mut covered: RegionSet<MAX_MAPPINGS> = RegionSet::new();
    let mut push = |r: Range, mem: MemType, perms: Perms, covered: &mut RegionSet<MAX_MAPPINGS>| {
        let r = r.page_outer();
        // Parts already mapped (a device page shared with another) are skipped.
        let mut pieces: RegionSet<8> = RegionSet::new();
        full |= pieces.add(r).is_err();
        for c in covered.iter() {
            full |= pieces.remove(c).is_err();
        }
        for piece in pieces.iter() {
            if n < MAX_MAPPINGS {
                out[n] = Some(Mapping { range: piece, mem, perms });
                n += 1;
            } else {
                full = true;
            }
        }
        full |= covered.add(r).is_err();
    };
    push(image.text, MemType::Normal, Perms::RX, &mut covered);
    push(image.rodata, MemType::Normal, Perms::RO, &mut covered);
    push(image.data, MemType::Normal, Perms::RW, &mut covered);
    for ram in p.memory.ram.iter() {
        push(ram, MemType::Normal, Perms::RW, &mut covered);
    }
    // The DTB and the spin-table mailboxes normally sit in RAM; map them if not.
    push(dtb, MemType::Normal, Perms::RO, &mut covered);
    for c in p.cpus() {
        if let EnableMethod::SpinTable { release_addr } = c.method
            && let Some(r) = Range::at(release_addr, 8)
        {
            push(r, MemType::Normal, Perms::RW, &mut covered);
        }
    }
    if let Some(u) = p.uart
        && let Some(r) = Range::at(u.base, u.size.max(PAGE_SIZE))
    {
        push(r, MemType::Device, Perms::RW, &mut covered);
    }
    for r in p.gic.iter().flat_map(|g| g.frames()) {
        push(r, MemType::Device, Perms::RW, &mut covered);
    }
    if full { Err(TooManyMappings) } else { Ok((out, n)) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::{Conduit, Cpu, Gic, MAX_CPUS, Uart, UartKind};

    fn platform() -> Platform {
        let mut memory = crate::memmap::MemoryMap::default();
        memory.add_ram(Range { start: 0x4000_0000, end: 0x8000_0000 }).unwrap();
        Platform {
            cpus: [Cpu { mpidr: 0, method: EnableMethod::Psci }; MAX_CPUS],
            cpu_count: 1,
            psci: Some(Conduit::Smc),
            gic: Some(Gic::V3 { gicd: 0x800_0000, gicr: 0x80a_0000, gicr_size: 0xf6_0000 }),
            uart: Some(Uart { kind: UartKind::Pl011, base: 0x900_0000, size: 0x1000, irq: None }),
            memory,
            modules: Default::default(),
            warnings: [None; 8],
        }
    }

    #[test]
    fn image_is_split_from_ram_and_nothing_overlaps() {
        let p = platform();
        let image = ImageRanges {
            text: Range { start: 0x4020_0000, end: 0x4023_0000 },
            rodata: Range { start: 0x4023_0000, end: 0x4023_4000 },
            data: Range { start: 0x4023_4000, end: 0x402c_0000 },
        };
        let (maps, n) =
            hypervisor_mappings(&p, image, Range { start: 0x4800_0000, end: 0x4800_2000 }).unwrap();
        let maps: Vec<Mapping> = maps[..n].iter().map(|m| m.unwrap()).collect();
        for (i, a) in maps.iter().enumerate() {
            for b in &maps[i + 1..] {
                assert!(!a.range.overlaps(&b.range), "{a:?} overlaps {b:?}");
            }
        }
        let text = maps.iter().find(|m| m.range.contains(0x4021_0000)).unwrap();
        assert_eq!(text.perms, Perms::RX);
        let rodata = maps.iter().find(|m| m.range.contains(0x4023_3000)).unwrap();
        assert_eq!(rodata.perms, Perms::RO);
        let data = maps.iter().find(|m| m.range.contains(0x402b_0000)).unwrap();
        assert_eq!(data.perms, Perms::RW);
        let ram = maps.iter().find(|m| m.range.contains(0x5000_0000)).unwrap();
        assert_eq!((ram.perms, ram.mem), (Perms::RW, MemType::Normal));
        // The DTB sits in RAM: no extra mapping for it.
        assert_eq!(maps.iter().filter(|m| m.range.contains(0x4800_0000)).count(), 1);
        let uart = maps.iter().find(|m| m.range.contains(0x900_0000)).unwrap();
        assert_eq!(uart.mem, MemType::Device);
        assert!(maps.iter().any(|m| m.range.contains(0x80a_0000 + 0xf5_ffff)));
        // Nothing else of the device space is mapped.
        assert!(!maps.iter().any(|m| m.range.contains(0xa00_0000)));
        let covered: u64 = maps.iter().map(|m| m.range.size()).sum();
        assert_eq!(covered, 0x4000_0000 + 0x1000 + 0x1_0000 + 0xf6_0000);
    }
}
