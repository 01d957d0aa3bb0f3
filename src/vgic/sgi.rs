//! vCPU affinities (MPIDR) and SGIs the guest sends through ICC_SGI1R_EL1.

use alloc::vec::Vec;

use super::VGic;

/// The MPIDR of vCPU `index`: Aff0 = index mod 16 (so one SGI target list reaches a
/// cluster), Aff1 = index / 16, bit 31 RES1.
pub fn vcpu_mpidr(index: u32) -> u64 {
    (1 << 31) | u64::from(index & 0xf) | (u64::from((index >> 4) & 0xff) << 8)
}

/// The vCPU index of affinity Aff1.Aff0, if it is one of `count`.
pub(super) fn vcpu_of(aff1: u64, aff0: u64, count: usize) -> Option<usize> {
    let i = (aff1 as usize) * 16 + aff0 as usize;
    (aff0 < 16 && i < count).then_some(i)
}

impl VGic {
    /// The guest wrote ICC_SGI1R_EL1 on vCPU `vcpu`. Returns the vCPUs to wake.
    pub fn sgi1r(&mut self, vcpu: usize, v: u64) -> u64 {
        let intid = ((v >> 24) & 0xf) as u32;
        let n = self.cpus.len();
        let targets: Vec<usize> = if v & (1 << 40) != 0 {
            (0..n).filter(|&t| t != vcpu).collect()
        } else {
            let (aff1, list) = ((v >> 16) & 0xff, v & 0xffff);
            let (aff2, aff3) = ((v >> 32) & 0xff, (v >> 48) & 0xff);
            if aff2 != 0 || aff3 != 0 {
                Vec::new()
            } else {
                (0..16).filter(|b| list & (1 << b) != 0).filter_map(|b| vcpu_of(aff1, b, n)).collect()
            }
        };
        let mut kick = 0;
        for t in targets {
            kick |= self.raise(t, intid);
        }
        kick
    }
}
