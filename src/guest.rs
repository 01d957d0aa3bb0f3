//! What a guest sees: its address map (Xen's dom0less layout, as in the binding) and
//! where its kernel, ramdisk and device tree go in its RAM.

use core::fmt;

use crate::image::ImageHeader;

/// Guest RAM bank 0.
pub const RAM0_BASE: u64 = 0x4000_0000;
/// Most RAM bank 0 holds.
pub const RAM0_MAX: u64 = 3 << 30;
/// Virtual GICv3 distributor / GICv2 distributor.
pub const GICD_BASE: u64 = 0x0300_1000;
/// Virtual GICv2 CPU interface.
pub const GICC_BASE: u64 = 0x0300_2000;
/// Virtual GICv3 redistributors (128 KiB each).
pub const GICR_BASE: u64 = 0x0302_0000;
/// Virtual UART (`arm,sbsa-uart` / `arm,pl011`), 4 KiB.
pub const VUART_BASE: u64 = 0x2200_0000;
pub const VUART_SIZE: u64 = 0x1000;
/// virtio-mmio transports of network links: 512 bytes each from here (Xen's guest
/// virtio-mmio window), their interrupts SPI `VIRTIO_SPI` + n (level).
pub const VIRTIO_BASE: u64 = 0x0200_0000;
pub const VIRTIO_SPI: u32 = 32;

/// The control device's registers (`hyperlaunch,control-v1`), 4 KiB.
pub const CONTROL_REGS: u64 = 0x2280_0000;
pub const CONTROL_REGS_SIZE: u64 = 0x1000;
/// A Control domain's control window: memory it writes images into, 1 MiB.
pub const CONTROL_WINDOW: u64 = 0x2600_0000;
pub const CONTROL_WINDOW_SIZE: u64 = 0x10_0000;
/// Where a domain's emulated GIC and UART are: Xen's dom0less layout, or, for a
/// direct-mapped domain, the host's own addresses (as Xen's dom0 sees them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestMap {
    pub gicd: u64,
    /// GICv3 redistributors (128 KiB per vCPU).
    pub gicr: u64,
    /// GICv2 CPU interface.
    pub gicc: u64,
    pub vuart: u64,
}

impl GuestMap {
    pub const XEN: GuestMap =
        GuestMap { gicd: GICD_BASE, gicr: GICR_BASE, gicc: GICC_BASE, vuart: VUART_BASE };

    /// A direct-mapped domain's: where the host's GIC and console UART are (Xen's layout
    /// for what the host lacks).
    pub fn host(gic: Option<crate::platform::Gic>, uart: Option<u64>) -> GuestMap {
        let mut m = GuestMap::XEN;
        match gic {
            Some(crate::platform::Gic::V3 { gicd, gicr, .. }) => (m.gicd, m.gicr) = (gicd, gicr),
            Some(crate::platform::Gic::V2 { gicd, gicc, .. }) => (m.gicd, m.gicc) = (gicd, gicc),
            None => {}
        }
        if let Some(u) = uart {
            m.vuart = u & !0xfff;
        }
        m
    }

    /// Guest address ranges the emulated GIC (version `gic_version`, for `cpus` vCPUs) and
    /// UART take: the distributor, the redistributors (GICv3) or CPU interface (GICv2), the
    /// UART.
    pub fn windows(&self, cpus: u32, gic_version: u32) -> [crate::memmap::Range; 3] {
        use crate::memmap::Range;
        let cpu_if = if gic_version == 3 {
            Range { start: self.gicr, end: self.gicr + 0x2_0000 * u64::from(cpus.max(1)) }
        } else {
            Range { start: self.gicc, end: self.gicc + 0x2000 }
        };
        let gicd_size = if gic_version == 3 { 0x1_0000 } else { 0x1000 };
        [
            Range { start: self.gicd, end: self.gicd + gicd_size },
            cpu_if,
            Range { start: self.vuart, end: self.vuart + VUART_SIZE },
        ]
    }
}

/// Its interrupt: SPI 0 (INTID 32).
pub const VUART_SPI: u32 = 0;
/// Guest IPA bits (stage 2 starts at level 1: 39 bits, 512 GiB).
pub const IPA_BITS: u32 = 39;

pub use crate::vgic::vcpu_mpidr;

/// Where things go in a domain's RAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub ram_base: u64,
    pub ram_size: u64,
    /// Where the kernel image is copied, and where it starts.
    pub kernel: u64,
    /// Ramdisk (address, size), if any.
    pub ramdisk: Option<(u64, u64)>,
    /// Device tree blob address (8-byte aligned, within the first 512 MiB as Linux wants).
    pub dtb: u64,
}

/// Why a domain's images do not fit its RAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayoutError {
    /// More RAM than bank 0 holds.
    TooMuchRam { size: u64 },
    /// Kernel, ramdisk and device tree do not fit.
    DoesNotFit { needed: u64, ram: u64 },
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayoutError::TooMuchRam { size } => {
                write!(
                    f,
                    "{} MiB of RAM is more than the {} MiB a domain can have",
                    size >> 20,
                    RAM0_MAX >> 20
                )
            }
            LayoutError::DoesNotFit { needed, ram } => write!(
                f,
                "kernel, ramdisk and device tree need {} KiB but the domain has {} KiB of RAM",
                needed >> 10,
                ram >> 10
            ),
        }
    }
}

const MIB2: u64 = 2 << 20;

fn align_up(x: u64, a: u64) -> u64 {
    x.div_ceil(a) * a
}

/// Places the kernel at `ram_base` + `text_offset` (`ram_base` is 2 MiB aligned), the
/// device tree in the 2 MiB after the kernel's `image_size`, and the ramdisk after that,
/// all inside the first `ram_size` bytes.
pub fn layout(
    ram_base: u64,
    ram_size: u64,
    kernel: &ImageHeader,
    kernel_file_len: u64,
    ramdisk_len: Option<u64>,
    dtb_len: u64,
) -> Result<Layout, LayoutError> {
    if ram_base == RAM0_BASE && ram_size > RAM0_MAX {
        return Err(LayoutError::TooMuchRam { size: ram_size });
    }
    let kernel_at = ram_base + kernel.text_offset;
    let kernel_end = kernel_at + kernel.image_size.max(kernel_file_len);
    let dtb = align_up(kernel_end, MIB2);
    let dtb_end = dtb + align_up(dtb_len.max(1), MIB2);
    let (ramdisk, end) = match ramdisk_len {
        Some(len) => (Some((dtb_end, len)), dtb_end + align_up(len, 4096)),
        None => (None, dtb_end),
    };
    let needed = end - ram_base;
    if needed > ram_size {
        return Err(LayoutError::DoesNotFit { needed, ram: ram_size });
    }
    Ok(Layout { ram_base, ram_size, kernel: kernel_at, ramdisk, dtb })
}

/// The parts of `[start, end)` that none of `written` (start, length) covers: what must
/// still be scrubbed once images have been copied over the rest. In address order.
pub fn uncovered(start: u64, end: u64, written: &[(u64, u64)]) -> alloc::vec::Vec<(u64, u64)> {
    let mut w: alloc::vec::Vec<(u64, u64)> = written
        .iter()
        .map(|&(a, l)| (a.max(start), a.saturating_add(l).min(end)))
        .filter(|(a, b)| a < b)
        .collect();
    w.sort_unstable();
    let mut out = alloc::vec::Vec::new();
    let mut at = start;
    for (a, b) in w {
        if a > at {
            out.push((at, a));
        }
        at = at.max(b);
    }
    if at < end {
        out.push((at, end));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr(text_offset: u64, image_size: u64) -> ImageHeader {
        ImageHeader { text_offset, image_size, flags: 0xa }
    }

    #[test]
    fn linux_like_layout() {
        let l = layout(RAM0_BASE, 256 << 20, &hdr(0, 40 << 20), 32 << 20, Some(8 << 20), 4000).unwrap();
        assert_eq!(l.kernel, RAM0_BASE);
        assert_eq!(l.dtb, RAM0_BASE + (40 << 20));
        assert_eq!(l.ramdisk, Some((RAM0_BASE + (42 << 20), 8 << 20)));
        assert_eq!(l.dtb % 8, 0);
    }

    #[test]
    fn text_offset_and_small_images() {
        let l = layout(RAM0_BASE, 16 << 20, &hdr(0x20_0000, 0x1_0000), 0x8000, None, 100).unwrap();
        assert_eq!(l.kernel, RAM0_BASE + 0x20_0000);
        assert_eq!(l.dtb, RAM0_BASE + (4 << 20));
        assert_eq!(l.ramdisk, None);
    }

    #[test]
    fn too_big() {
        assert_eq!(
            layout(RAM0_BASE, 8 << 20, &hdr(0, 8 << 20), 8 << 20, None, 100),
            Err(LayoutError::DoesNotFit { needed: 10 << 20, ram: 8 << 20 })
        );
        assert!(matches!(
            layout(RAM0_BASE, 4 << 30, &hdr(0, 1), 1, None, 1),
            Err(LayoutError::TooMuchRam { .. })
        ));
    }

    #[test]
    fn direct_mapped_base() {
        let l = layout(0x6000_0000, 32 << 20, &hdr(0, 1 << 20), 1 << 20, None, 100).unwrap();
        assert_eq!((l.kernel, l.dtb, l.ram_base), (0x6000_0000, 0x6020_0000, 0x6000_0000));
    }

    #[test]
    fn what_is_left_to_scrub() {
        assert_eq!(uncovered(0, 100, &[]), [(0, 100)]);
        assert_eq!(uncovered(0, 100, &[(10, 10), (50, 10)]), [(0, 10), (20, 50), (60, 100)]);
        // Overlapping, unsorted, outside and empty writes.
        assert_eq!(uncovered(0, 100, &[(50, 60), (0, 5), (3, 4), (200, 5), (30, 0)]), [(7, 50)]);
        assert_eq!(uncovered(100, 200, &[(0, 300)]), []);
    }

    #[test]
    fn emulated_windows_follow_the_gic_version() {
        use crate::memmap::Range;
        let v3 = crate::platform::Gic::V3 { gicd: 0x800_0000, gicr: 0x80a_0000, gicr_size: 0xf6_0000 };
        let m = GuestMap::host(Some(v3), Some(0x900_0000));
        assert_eq!(
            m.windows(2, 3),
            [
                Range { start: 0x800_0000, end: 0x801_0000 },
                Range { start: 0x80a_0000, end: 0x80e_0000 },
                Range { start: 0x900_0000, end: 0x900_1000 }
            ]
        );
        let x = GuestMap::XEN.windows(1, 2);
        assert_eq!(x[1], Range { start: GICC_BASE, end: GICC_BASE + 0x2000 });
    }

    #[test]
    fn mpidrs() {
        assert_eq!(vcpu_mpidr(0), 0x8000_0000);
        assert_eq!(vcpu_mpidr(3), 0x8000_0003);
    }
}
