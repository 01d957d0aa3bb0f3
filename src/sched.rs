//! vCPU placement: each vCPU pinned to a physical CPU of its own, honouring `hard-affinity`.
//! (Time-sharing a CPU between vCPUs comes with the virtual timer.)

use alloc::vec::Vec;
use core::fmt;

use crate::config::VcpuAffinity;

/// Why a domain's vCPUs could not be placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaceError {
    /// More vCPUs than free physical CPUs.
    NotEnoughCpus { wanted: u32, free: usize },
    /// No free CPU in this vCPU's hard-affinity mask.
    AffinityBusy { vcpu: u32, mask: u64 },
}

impl fmt::Display for PlaceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlaceError::NotEnoughCpus { wanted, free } => write!(
                f,
                "{wanted} vCPU(s) but only {free} physical CPU(s) are free (one vCPU per CPU until time-sharing exists)"
            ),
            PlaceError::AffinityBusy { vcpu, mask } => {
                write!(f, "vCPU {vcpu}: every CPU of its hard-affinity (mask {mask:#x}) is taken")
            }
        }
    }
}

/// Picks a physical CPU for each of `vcpus` vCPUs from `free` (which keeps the rest).
/// Pinned vCPUs are placed first, so that unpinned ones do not take their CPUs.
pub fn place(vcpus: u32, affinity: &[VcpuAffinity], free: &mut Vec<usize>) -> Result<Vec<usize>, PlaceError> {
    if vcpus as usize > free.len() {
        return Err(PlaceError::NotEnoughCpus { wanted: vcpus, free: free.len() });
    }
    let mut pool = free.clone();
    let mut out = alloc::vec![usize::MAX; vcpus as usize];
    for a in affinity.iter().filter(|a| a.vcpu < vcpus) {
        let pos = pool
            .iter()
            .position(|&c| c < 64 && a.cpus & (1 << c) != 0)
            .ok_or(PlaceError::AffinityBusy { vcpu: a.vcpu, mask: a.cpus })?;
        out[a.vcpu as usize] = pool.remove(pos);
    }
    for slot in out.iter_mut().filter(|s| **s == usize::MAX) {
        *slot = pool.remove(0);
    }
    *free = pool;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpinned_vcpus_take_free_cpus_in_order() {
        let mut free = vec![0, 1, 2, 3];
        assert_eq!(place(2, &[], &mut free), Ok(vec![0, 1]));
        assert_eq!(free, vec![2, 3]);
    }

    #[test]
    fn pinned_vcpus_go_first() {
        let mut free = vec![0, 1, 2, 3];
        let aff = [VcpuAffinity { vcpu: 1, cpus: 0b0001 }, VcpuAffinity { vcpu: 0, cpus: 0b1100 }];
        assert_eq!(place(3, &aff, &mut free), Ok(vec![2, 0, 1]));
        assert_eq!(free, vec![3]);
    }

    #[test]
    fn errors_leave_free_cpus_untouched() {
        let mut free = vec![2, 3];
        assert_eq!(place(3, &[], &mut free), Err(PlaceError::NotEnoughCpus { wanted: 3, free: 2 }));
        let aff = [VcpuAffinity { vcpu: 0, cpus: 0b0011 }];
        assert_eq!(place(1, &aff, &mut free), Err(PlaceError::AffinityBusy { vcpu: 0, mask: 3 }));
        assert_eq!(free, vec![2, 3]);
    }
}
