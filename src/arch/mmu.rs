//! The EL2 stage-1 MMU: an identity map built by `pgtable` in a static pool of tables,
//! then switched on with caches.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use aarch64_cpu::registers::*;

use crate::pgtable::{ArrayStore, MAIR_EL2_VALUE, Table};

/// Tables available to the hypervisor's own map (enough for several GiB of RAM in
/// blocks plus a page-granular image and a handful of devices).
const POOL_TABLES: usize = 48;

#[repr(C, align(4096))]
struct Pool(UnsafeCell<[Table; POOL_TABLES]>);

// SAFETY: the pool is handed out once (guarded by TAKEN) to the boot CPU before any other
// CPU runs; afterwards the tables are only read, by the MMU.
unsafe impl Sync for Pool {}

static POOL: Pool = Pool(UnsafeCell::new([[0; 512]; POOL_TABLES]));
static TAKEN: AtomicBool = AtomicBool::new(false);
/// TTBR0_EL2 and TCR_EL2 values for secondary CPUs.
static TTBR0: AtomicU64 = AtomicU64::new(0);
static TCR: AtomicU64 = AtomicU64::new(0);

/// The table pool, once. Runs before the MMU is on (the tables are written straight to
/// memory, where the MMU's walks will read them).
pub fn take_pool() -> Option<ArrayStore<'static>> {
    if TAKEN.swap(true, Ordering::AcqRel) {
        return None;
    }
    let base = POOL.0.get() as u64;
    // SAFETY: TAKEN guarantees this is the only reference ever made to the pool.
    let tables = unsafe { &mut *POOL.0.get() };
    Some(ArrayStore::new(tables, base))
}

/// TCR_EL2: 48-bit input addresses from TTBR0, 4 KiB granule, write-back cacheable inner
/// shareable walks, output size from PARange.
fn tcr_value(ps: u64) -> u64 {
    const RES1: u64 = (1 << 31) | (1 << 23);
    let t0sz = 16;
    let irgn0 = 0b01 << 8;
    let orgn0 = 0b01 << 10;
    let sh0 = 0b11 << 12;
    RES1 | t0sz | irgn0 | orgn0 | sh0 | (ps << 16)
}

/// Switches the MMU and caches on with `root` as TTBR0_EL2. `ps` is TCR_EL2.PS.
pub fn enable(root: u64, ps: u64) {
    TTBR0.store(root, Ordering::Relaxed);
    TCR.store(tcr_value(ps), Ordering::Relaxed);
    enable_secondary();
}

/// Switches the MMU on with the same tables the boot CPU built.
pub fn enable_secondary() {
    let (ttbr, tcr) = (TTBR0.load(Ordering::Relaxed), TCR.load(Ordering::Relaxed));
    MAIR_EL2.set(MAIR_EL2_VALUE);
    TCR_EL2.set(tcr);
    TTBR0_EL2.set(ttbr);
    // SAFETY: invalidating EL2 TLB entries and the instruction cache before the MMU goes on
    // discards only stale translations and instructions.
    unsafe {
        core::arch::asm!(
            "dsb ish",
            "tlbi alle2",
            "ic iallu",
            "dsb ish",
            "isb",
            options(nostack, preserves_flags)
        );
    }
    const M: u64 = 1 << 0;
    const C: u64 = 1 << 2;
    const SA: u64 = 1 << 3;
    const I: u64 = 1 << 12;
    const WXN: u64 = 1 << 19;
    SCTLR_EL2.set(super::boot::SCTLR_EL2_RES1 | M | C | SA | I | WXN);
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
}

/// True once this CPU's MMU is on.
pub fn is_enabled() -> bool {
    SCTLR_EL2.get() & 1 != 0
}

/// Addresses of the statics secondary CPUs read with their caches off.
pub fn secondary_boot_data() -> [(u64, u64); 2] {
    [(core::ptr::addr_of!(TTBR0) as u64, 8), (core::ptr::addr_of!(TCR) as u64, 8)]
}
