//! Seeds for the guests' random number generators (`/chosen/rng-seed`, which Linux mixes
//! into its pool at boot, as it does with the seed QEMU or a boot loader gives it), derived
//! from what the hypervisor was given: the firmware's `/chosen/rng-seed` and the CPU's
//! random number instruction (RNDR). Without either there is nothing to derive from, and
//! guests get no seed (a seed made from the counter alone would be credited as entropy it
//! does not have).
//!
//! Each seed is SHA-256 of the pool key, the domain, a count of seeds given and the counter,
//! twice (64 bytes): no two are the same, and none reveals the key or another domain's.

use sha2::{Digest as _, Sha256};

/// Bytes of a guest's `rng-seed`.
pub const SEED_BYTES: usize = 64;

pub struct Pool {
    key: [u8; 32],
    given: u64,
}

impl Pool {
    /// A pool keyed by the firmware's seed and RNDR words; `None` when both are empty.
    pub fn new(host_seed: &[u8], rndr: &[u64]) -> Option<Pool> {
        if host_seed.is_empty() && rndr.is_empty() {
            return None;
        }
        let mut h = Sha256::new();
        h.update(b"hyperlaunch entropy pool");
        h.update((host_seed.len() as u64).to_le_bytes());
        h.update(host_seed);
        for w in rndr {
            h.update(w.to_le_bytes());
        }
        Some(Pool { key: h.finalize().into(), given: 0 })
    }

    /// A fresh seed for domain `domid`; `counter` (the physical counter) is mixed in too.
    pub fn seed(&mut self, domid: u16, counter: u64) -> [u8; SEED_BYTES] {
        self.given += 1;
        let mut out = [0u8; SEED_BYTES];
        for (half, chunk) in out.chunks_mut(32).enumerate() {
            let mut h = Sha256::new();
            h.update(self.key);
            h.update(b"rng-seed");
            h.update(domid.to_le_bytes());
            h.update(self.given.to_le_bytes());
            h.update(counter.to_le_bytes());
            h.update([half as u8]);
            chunk.copy_from_slice(&h.finalize());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_source_no_pool() {
        assert!(Pool::new(&[], &[]).is_none());
        assert!(Pool::new(&[1], &[]).is_some());
        assert!(Pool::new(&[], &[7]).is_some());
    }

    #[test]
    fn seeds_differ_by_domain_by_call_and_by_key() {
        let mut p = Pool::new(b"firmware seed", &[]).unwrap();
        let a = p.seed(1, 100);
        let b = p.seed(1, 100);
        let c = p.seed(2, 100);
        assert_ne!(a, b, "the same domain again (a restart) gets another seed");
        assert_ne!(a, c);
        assert_ne!(a[..32], a[32..], "the two halves differ");
        let mut q = Pool::new(b"firmware seee", &[]).unwrap();
        assert_ne!(q.seed(1, 100), a, "another key");
        // Neither the firmware's seed nor the key appears in a seed.
        let s = p.seed(3, 0);
        assert!(!s.windows(13).any(|w| w == b"firmware seed"));
        assert!(!s.windows(32).any(|w| w == p.key));
    }

    #[test]
    fn the_same_inputs_give_the_same_seed() {
        let mut p = Pool::new(&[9; 32], &[1, 2]).unwrap();
        let mut q = Pool::new(&[9; 32], &[1, 2]).unwrap();
        assert_eq!(p.seed(4, 5), q.seed(4, 5));
    }
}
