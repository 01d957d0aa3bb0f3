//! The entropy pool guests' `rng-seed`s come from (`crate::entropy`), filled once at boot
//! from the firmware's `/chosen/rng-seed` and, where the CPU has it (FEAT_RNG), RNDR.

use crate::entropy::{Pool, SEED_BYTES};
use crate::fdt::Fdt;

static POOL: spin::Mutex<Option<Pool>> = spin::Mutex::new(None);

/// One RNDR read: `None` when the generator could not give a number this time (NZCV.Z).
fn rndr() -> Option<u64> {
    let (v, failed): (u64, u64);
    // SAFETY: RNDR (S3_3_C2_C4_0), present per `el2::has_rndr`, reads a random number and sets
    // NZCV; nothing else changes.
    unsafe {
        core::arch::asm!("mrs {v}, s3_3_c2_c4_0", "cset {f}, eq", v = out(reg) v, f = out(reg) failed,
            options(nomem, nostack))
    };
    (failed == 0).then_some(v)
}

/// Fills the pool from the host device tree and RNDR, and says what guests will get.
pub fn init(fdt: &Fdt<'_>) {
    let host_seed = fdt.find("/chosen").and_then(|c| c.property("rng-seed")).map_or(&[][..], |p| p.value);
    let words: alloc::vec::Vec<u64> =
        if super::el2::has_rndr() { (0..4).filter_map(|_| rndr()).collect() } else { alloc::vec![] };
    let pool = Pool::new(host_seed, &words);
    match (&pool, host_seed.len(), words.len()) {
        (None, _, _) => {
            log::info!("entropy: no /chosen/rng-seed from the firmware and no RNDR: guests get no rng-seed")
        }
        (Some(_), n, w) => log::info!(
            "entropy: guests get /chosen/rng-seed, derived from {n} byte(s) of the firmware's rng-seed and {w} RNDR word(s)"
        ),
    }
    *POOL.lock() = pool;
}

/// A fresh seed for domain `domid`, if there is a pool.
pub fn seed(domid: u16) -> Option<[u8; SEED_BYTES]> {
    POOL.lock().as_mut().map(|p| p.seed(domid, super::timer::ticks()))
}
