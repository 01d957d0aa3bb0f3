//! Data-cache maintenance by virtual address.

use core::arch::asm;

/// Cache line size used for maintenance loops: the smallest D-cache line (CTR_EL0.DminLine).
fn dcache_line() -> u64 {
    let ctr: u64;
    // SAFETY: reading CTR_EL0 has no side effects.
    unsafe { asm!("mrs {}, ctr_el0", out(reg) ctr, options(nomem, nostack, preserves_flags)) };
    4 << ((ctr >> 16) & 0xf)
}

/// Runs `op` on the address of every cache line of `[start, start + len)`, then waits for
/// the maintenance to complete.
fn each_line(start: u64, len: u64, op: impl Fn(u64)) {
    let line = dcache_line();
    let mut a = start & !(line - 1);
    while a < start + len {
        op(a);
        a += line;
    }
    // SAFETY: barriers have no memory-safety effects.
    unsafe { asm!("dsb sy", options(nostack, preserves_flags)) };
}

/// Cleans and invalidates `[start, start + len)` to the point of coherency, so that an
/// observer with its caches off (a CPU not yet started, a DMA master) sees what was written.
pub fn clean_invalidate_range(start: u64, len: u64) {
    // SAFETY: DC CIVAC on a mapped address only writes back and drops cache lines; it
    // changes no memory contents as seen by this CPU.
    each_line(start, len, |a| unsafe { asm!("dc civac, {}", in(reg) a, options(nostack, preserves_flags)) });
}

/// Cleans `[start, start + len)` to the point of coherency: memory holds what the caches
/// do, so that a guest reading it with its MMU (and so its caches) off sees what the
/// hypervisor wrote (its image, its device tree, zeros where another domain's data was),
/// never stale DRAM.
pub fn clean_range(start: u64, len: u64) {
    // SAFETY: DC CVAC on a mapped address only writes back a cache line; it changes no
    // memory contents as seen by this CPU.
    each_line(start, len, |a| unsafe { asm!("dc cvac, {}", in(reg) a, options(nostack, preserves_flags)) });
}

/// The DC ZVA block size in bytes, or `None` where DC ZVA is prohibited.
fn zva_block() -> Option<u64> {
    let dczid: u64;
    // SAFETY: reading DCZID_EL0 has no side effects.
    unsafe { asm!("mrs {}, dczid_el0", out(reg) dczid, options(nomem, nostack, preserves_flags)) };
    (dczid & (1 << 4) == 0).then(|| 4 << (dczid & 0xf))
}

/// Zeroes `[start, start + len)`, whole DC ZVA blocks with DC ZVA (one instruction per
/// block, where a store loop takes one per eight bytes).
///
/// # Safety
/// The range must be normal memory mapped writable at EL2 that nothing else uses.
pub unsafe fn zero(start: u64, len: u64) {
    let end = start + len;
    let Some(block) = zva_block() else {
        // SAFETY: the caller's range.
        unsafe { core::ptr::write_bytes(start as *mut u8, 0, len as usize) };
        return;
    };
    let first = start.next_multiple_of(block).min(end);
    let last = (end & !(block - 1)).max(first);
    // SAFETY: the caller's range, in three parts: head and tail by stores, the middle by
    // DC ZVA on block-aligned addresses inside it.
    unsafe {
        core::ptr::write_bytes(start as *mut u8, 0, (first - start) as usize);
        let mut a = first;
        while a < last {
            asm!("dc zva, {}", in(reg) a, options(nostack, preserves_flags));
            a += block;
        }
        core::ptr::write_bytes(last as *mut u8, 0, (end - last) as usize);
    }
}

/// Copies `len` bytes from `src` to `dst`, 64 bytes per loop with load/store pairs where
/// both are 16-byte aligned.
///
/// # Safety
/// As `core::ptr::copy_nonoverlapping`: both ranges valid, not overlapping.
pub unsafe fn copy(dst: u64, src: u64, len: u64) {
    let bulk = if (dst | src) & 15 == 0 { len & !63 } else { 0 };
    if bulk > 0 {
        // SAFETY: the caller's ranges; the loop reads and writes exactly `bulk` bytes of them.
        unsafe {
            asm!(
                "2:",
                "ldp {a}, {b}, [{s}], #16",
                "ldp {c}, {d}, [{s}], #16",
                "stp {a}, {b}, [{t}], #16",
                "stp {c}, {d}, [{t}], #16",
                "ldp {a}, {b}, [{s}], #16",
                "ldp {c}, {d}, [{s}], #16",
                "stp {a}, {b}, [{t}], #16",
                "stp {c}, {d}, [{t}], #16",
                "subs {n}, {n}, #64",
                "b.ne 2b",
                s = inout(reg) src => _,
                t = inout(reg) dst => _,
                n = inout(reg) bulk => _,
                a = out(reg) _, b = out(reg) _, c = out(reg) _, d = out(reg) _,
                options(nostack),
            );
        }
    }
    // SAFETY: the rest of the caller's ranges.
    unsafe {
        core::ptr::copy_nonoverlapping(
            (src + bulk) as *const u8,
            (dst + bulk) as *mut u8,
            (len - bulk) as usize,
        )
    };
}

/// Performs a guest's trapped EL1 TLB invalidation on this CPU only (the local form, for
/// the VMID in VTTBR_EL2): right for a domain all of whose vCPUs run on this CPU, since no
/// other CPU holds entries of its VMID.
pub fn tlbi_local(op: crate::trap::TlbiOp, xt: u64) {
    use crate::trap::TlbiOp;
    // SAFETY: each drops cached stage-1 translations of the current VMID on this CPU; no
    // memory contents change, and the barriers complete the invalidation.
    unsafe {
        match op {
            TlbiOp::All => asm!("tlbi vmalle1", options(nostack, preserves_flags)),
            TlbiOp::Va => asm!("tlbi vae1, {}", in(reg) xt, options(nostack, preserves_flags)),
            TlbiOp::Asid => asm!("tlbi aside1, {}", in(reg) xt, options(nostack, preserves_flags)),
            TlbiOp::VaAllAsid => asm!("tlbi vaae1, {}", in(reg) xt, options(nostack, preserves_flags)),
            TlbiOp::VaLast => asm!("tlbi vale1, {}", in(reg) xt, options(nostack, preserves_flags)),
            TlbiOp::VaAllAsidLast => asm!("tlbi vaale1, {}", in(reg) xt, options(nostack, preserves_flags)),
        }
        asm!("dsb nsh", "isb", options(nostack, preserves_flags));
    }
}
