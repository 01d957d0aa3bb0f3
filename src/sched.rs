//! Scheduling policy: where each vCPU runs, and which of a physical CPU's vCPUs runs next.
//!
//! Each vCPU is pinned to one physical CPU, chosen at build time: the least loaded CPU its
//! `hard-affinity` allows, preferring CPUs that hold no other vCPU of the same domain. A
//! CPU with one vCPU runs it with no scheduler tick at all (the fast path); a CPU that ends
//! up with several time-slices them round robin ([`RunQueue`]).

use alloc::vec::Vec;
use core::fmt;

use crate::config::VcpuAffinity;

/// A time slice on a shared CPU (µs).
pub const SLICE_US: u64 = 4_000;

/// Why a domain's vCPUs could not be placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaceError {
    /// No CPU is online at all.
    NoCpus,
    /// This vCPU's hard-affinity names no CPU that is online.
    AffinityOffline { vcpu: u32, mask: u64 },
}

impl fmt::Display for PlaceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlaceError::NoCpus => write!(f, "no physical CPU is online"),
            PlaceError::AffinityOffline { vcpu, mask } => {
                write!(f, "vCPU {vcpu}: no CPU of its hard-affinity (mask {mask:#x}) is online")
            }
        }
    }
}

/// Picks a physical CPU for each of `vcpus` vCPUs. `load[c]` is how many vCPUs CPU `c`
/// already runs (one entry per online CPU); it is updated only when placement succeeds.
/// Pinned vCPUs are placed first, so that unpinned ones do not crowd their CPUs.
pub fn place(
    vcpus: u32,
    affinity: &[VcpuAffinity],
    load: &mut [u32],
    online: u64,
) -> Result<Vec<usize>, PlaceError> {
    if load.is_empty() {
        return Err(PlaceError::NoCpus);
    }
    let mut l = load.to_vec();
    let mut own = alloc::vec![0u32; l.len()];
    let mut out = alloc::vec![usize::MAX; vcpus as usize];
    let take = |mask: u64, l: &mut [u32], own: &mut [u32]| -> Option<usize> {
        let c = (0..l.len())
            .filter(|&c| c < 64 && mask & online & (1 << c) != 0)
            .min_by_key(|&c| (l[c], own[c], c))?;
        l[c] += 1;
        own[c] += 1;
        Some(c)
    };
    for a in affinity.iter().filter(|a| a.vcpu < vcpus) {
        if out[a.vcpu as usize] != usize::MAX {
            continue;
        }
        out[a.vcpu as usize] = take(a.cpus, &mut l, &mut own)
            .ok_or(PlaceError::AffinityOffline { vcpu: a.vcpu, mask: a.cpus })?;
    }
    for slot in out.iter_mut().filter(|s| **s == usize::MAX) {
        *slot = take(u64::MAX, &mut l, &mut own).ok_or(PlaceError::NoCpus)?;
    }
    load.copy_from_slice(&l);
    Ok(out)
}

/// The vCPUs pinned to one physical CPU, in round-robin order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunQueue {
    slots: Vec<usize>,
    /// Index of the slot that ran last.
    last: usize,
}

impl RunQueue {
    pub const fn new() -> Self {
        RunQueue { slots: Vec::new(), last: 0 }
    }

    pub fn add(&mut self, slot: usize) {
        if !self.slots.contains(&slot) {
            self.slots.push(slot);
        }
    }

    pub fn remove(&mut self, slot: usize) {
        if let Some(i) = self.slots.iter().position(|&s| s == slot) {
            self.slots.remove(i);
            if self.last > i || self.last >= self.slots.len() {
                self.last = self.last.saturating_sub(1);
            }
        }
    }

    pub fn slots(&self) -> &[usize] {
        &self.slots
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// More than one vCPU: the CPU is time-sliced.
    pub fn shared(&self) -> bool {
        self.slots.len() > 1
    }

    /// The next slot, after the one that ran last and wrapping round to it, for which
    /// `ready` holds; it becomes the one that ran last.
    pub fn pick(&mut self, mut ready: impl FnMut(usize) -> bool) -> Option<usize> {
        let n = self.slots.len();
        for k in 1..=n {
            let i = (self.last + k) % n;
            if ready(self.slots[i]) {
                self.last = i;
                return Some(self.slots[i]);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_vcpu_per_cpu_while_cpus_last() {
        let mut load = vec![0; 4];
        assert_eq!(place(2, &[], &mut load, u64::MAX), Ok(vec![0, 1]));
        assert_eq!(place(1, &[], &mut load, u64::MAX), Ok(vec![2]));
        assert_eq!(load, [1, 1, 1, 0]);
    }

    #[test]
    fn pinned_vcpus_go_first() {
        let mut load = vec![0; 4];
        let aff = [VcpuAffinity { vcpu: 1, cpus: 0b0001 }, VcpuAffinity { vcpu: 0, cpus: 0b1100 }];
        assert_eq!(place(3, &aff, &mut load, u64::MAX), Ok(vec![2, 0, 1]));
        assert_eq!(load, [1, 1, 1, 0]);
    }

    #[test]
    fn more_vcpus_than_cpus_share_the_least_loaded() {
        let mut load = vec![0; 2];
        assert_eq!(place(1, &[], &mut load, u64::MAX), Ok(vec![0]));
        // A 3-vCPU domain: its vCPUs spread before doubling up, on the emptier CPU first.
        assert_eq!(place(3, &[], &mut load, u64::MAX), Ok(vec![1, 0, 1]));
        assert_eq!(load, [2, 2]);
    }

    #[test]
    fn a_domains_vcpus_avoid_each_other_at_equal_load() {
        let mut load = vec![1, 1, 0];
        assert_eq!(place(2, &[], &mut load, u64::MAX), Ok(vec![2, 0]));
        assert_eq!(load, [2, 1, 1]);
    }

    #[test]
    fn a_cpu_that_did_not_come_online_gets_no_vcpu() {
        // CPU 1 of 4 did not start: vCPUs go to 0, 2 and 3 (by index, not by count).
        let mut load = vec![0, 0, 0, 0];
        assert_eq!(place(3, &[], &mut load, 0b1101), Ok(vec![0, 2, 3]));
        assert_eq!(load, [1, 0, 1, 1]);
        // Pinned to it alone: refused; to it or CPU 3: CPU 3.
        let aff = [VcpuAffinity { vcpu: 0, cpus: 0b10 }];
        assert_eq!(place(1, &aff, &mut load, 0b1101), Err(PlaceError::AffinityOffline { vcpu: 0, mask: 2 }));
        let aff = [VcpuAffinity { vcpu: 0, cpus: 0b1010 }];
        assert_eq!(place(1, &aff, &mut load, 0b1101), Ok(vec![3]));
        // Nothing online at all (impossible, but no panic).
        assert_eq!(place(1, &[], &mut load, 0), Err(PlaceError::NoCpus));
    }

    #[test]
    fn affinity_to_a_cpu_that_is_not_online_is_an_error_and_changes_nothing() {
        let mut load = vec![0, 0];
        let aff = [VcpuAffinity { vcpu: 0, cpus: 0b100 }];
        assert_eq!(
            place(1, &aff, &mut load, u64::MAX),
            Err(PlaceError::AffinityOffline { vcpu: 0, mask: 4 })
        );
        assert_eq!(load, [0, 0]);
        assert_eq!(place(1, &[], &mut [], u64::MAX), Err(PlaceError::NoCpus));
        // Pinned vCPUs share a busy CPU rather than fail.
        let aff = [VcpuAffinity { vcpu: 0, cpus: 0b1 }];
        load[0] = 3;
        assert_eq!(place(1, &aff, &mut load, u64::MAX), Ok(vec![0]));
    }

    #[test]
    fn round_robin_skips_what_is_not_ready() {
        let mut q = RunQueue::new();
        for s in [10, 20, 30] {
            q.add(s);
        }
        q.add(20);
        assert_eq!(q.len(), 3);
        assert!(q.shared());
        let order: Vec<usize> = (0..6).filter_map(|_| q.pick(|_| true)).collect();
        assert_eq!(order, [20, 30, 10, 20, 30, 10]);
        // 20 blocked: 30, 10, 30, 10 ...
        let order: Vec<usize> = (0..4).filter_map(|_| q.pick(|s| s != 20)).collect();
        assert_eq!(order, [30, 10, 30, 10]);
        // Only the one that just ran is ready: it runs again.
        assert_eq!(q.pick(|s| s == 10), Some(10));
        assert_eq!(q.pick(|_| false), None);
    }

    #[test]
    fn removing_keeps_the_rotation() {
        let mut q = RunQueue::new();
        for s in [1, 2, 3, 4] {
            q.add(s);
        }
        assert_eq!(q.pick(|_| true), Some(2));
        assert_eq!(q.pick(|_| true), Some(3));
        q.remove(2);
        assert_eq!(q.pick(|_| true), Some(4));
        q.remove(4);
        q.remove(3);
        assert_eq!(q.pick(|_| true), Some(1));
        assert!(!q.shared());
        q.remove(1);
        assert!(q.is_empty());
        assert_eq!(q.pick(|_| true), None);
    }
}
