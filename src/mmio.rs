//! A domain's emulated devices, by guest physical address range: a data abort inside one
//! of these ranges is emulated, anywhere else it is an isolation fault.

use alloc::vec::Vec;

use crate::memmap::Range;

/// Devices the hypervisor emulates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    /// The virtual PL011/SBSA UART.
    Uart,
    /// The virtual GICv3 distributor.
    GicDist,
    /// The virtual GICv3 redistributors (one 128 KiB frame pair per vCPU).
    GicRedist,
    /// The virtual GICv2 distributor (4 KiB; the CPU interface is the hardware's GICV).
    GicDistV2,
    /// The control device: hyperlaunch's calls for a domain's user space.
    Control,
    /// The virtio-mmio transport of network link N.
    Virtio(u8),
}

/// Emulated devices of one domain.
#[derive(Debug, Clone, Default)]
pub struct MmioMap {
    regions: Vec<(Range, Device)>,
}

/// Two emulated devices would overlap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overlap(pub Range);

impl MmioMap {
    pub fn new() -> Self {
        MmioMap { regions: Vec::new() }
    }

    /// Registers a device at `range`.
    pub fn add(&mut self, range: Range, dev: Device) -> Result<(), Overlap> {
        if let Some((r, _)) = self.regions.iter().find(|(r, _)| r.overlaps(&range)) {
            return Err(Overlap(*r));
        }
        self.regions.push((range, dev));
        Ok(())
    }

    /// The device at `ipa` and the offset into its registers.
    pub fn find(&self, ipa: u64) -> Option<(Device, u64)> {
        self.regions.iter().find(|(r, _)| r.contains(ipa)).map(|(r, d)| (*d, ipa - r.start))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_and_overlap() {
        let mut m = MmioMap::new();
        m.add(Range { start: 0x2200_0000, end: 0x2200_1000 }, Device::Uart).unwrap();
        assert_eq!(m.find(0x2200_0018), Some((Device::Uart, 0x18)));
        assert_eq!(m.find(0x2200_1000), None);
        assert_eq!(m.find(0x21ff_ffff), None);
        assert_eq!(
            m.add(Range { start: 0x2200_0800, end: 0x2200_2000 }, Device::Uart),
            Err(Overlap(Range { start: 0x2200_0000, end: 0x2200_1000 }))
        );
    }
}
