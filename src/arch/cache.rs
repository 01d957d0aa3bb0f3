//! Data-cache maintenance by virtual address.

use core::arch::asm;

/// Cache line size used for maintenance loops: the smallest D-cache line (CTR_EL0.DminLine).
fn dcache_line() -> u64 {
    let ctr: u64;
    // SAFETY: reading CTR_EL0 has no side effects.
    unsafe { asm!("mrs {}, ctr_el0", out(reg) ctr, options(nomem, nostack, preserves_flags)) };
    4 << ((ctr >> 16) & 0xf)
}

/// Cleans and invalidates `[start, start + len)` to the point of coherency, so that an
/// observer with its caches off (a CPU not yet started, a DMA master) sees what was written.
pub fn clean_invalidate_range(start: u64, len: u64) {
    let line = dcache_line();
    let mut a = start & !(line - 1);
    while a < start + len {
        // SAFETY: DC CIVAC on a mapped address only writes back and drops cache lines; it
        // changes no memory contents as seen by this CPU.
        unsafe { asm!("dc civac, {}", in(reg) a, options(nostack, preserves_flags)) };
        a += line;
    }
    // SAFETY: barriers have no memory-safety effects.
    unsafe { asm!("dsb sy", options(nostack, preserves_flags)) };
}
