//! Stage-2 translation on this CPU: the VTCR_EL2 value every domain shares (39-bit IPA,
//! walk from level 1, 4 KiB granule), and reading and replacing a live descriptor.

/// VTCR_EL2: T0SZ 25 (39-bit IPA), SL0 = 1 (start at level 1), inner/outer write-back
/// walks, inner shareable, 4 KiB granule, output size `ps` (TCR PS encoding), and 16-bit
/// VMIDs (VS) when the CPU has them.
pub fn vtcr(ps: u64, vmid_bits: u32) -> u64 {
    const RES1: u64 = 1 << 31;
    let t0sz = 64 - u64::from(crate::guest::IPA_BITS);
    let vs = if vmid_bits == 16 { 1 << 19 } else { 0 };
    RES1 | t0sz | (1 << 6) | (0b01 << 8) | (0b01 << 10) | (0b11 << 12) | (ps << 16) | vs
}

/// Reads a stage-2 descriptor (in a table of a running domain).
///
/// # Safety
/// `entry` is an 8-byte descriptor in one of a domain's table pages, identity mapped.
pub unsafe fn read_entry(entry: u64) -> u64 {
    // SAFETY: the caller's obligation; reading it has no side effects.
    unsafe { core::ptr::read_volatile(entry as *const u64) }
}

/// Replaces the valid stage-2 page descriptor at `entry` (mapping guest page `ipa` of the
/// domain whose VMID is in VTTBR_EL2) with `new`, break-before-make: invalid first, its
/// TLB entries (stage 2 and the combined stage 1) invalidated, then the new one. `local`:
/// every vCPU of the domain runs on this CPU, so only this CPU's TLB can hold them;
/// otherwise the invalidation is broadcast.
///
/// # Safety
/// `entry` is a valid page descriptor in the stage-2 tables of the domain whose VMID is in
/// VTTBR_EL2, changed under that domain's copy-on-write lock.
pub unsafe fn replace_entry(entry: u64, new: u64, ipa: u64, local: bool) {
    // SAFETY: `entry` is a descriptor in the current domain's stage-2 tables, changed under
    // its lock; the sequence is the architecture's break-before-make, so no CPU ever holds
    // both translations. Only this domain's translations are affected.
    unsafe {
        core::ptr::write_volatile(entry as *mut u64, 0);
        if local {
            core::arch::asm!(
                "dsb nshst",
                "tlbi ipas2e1, {ipa}",
                "dsb nsh",
                "tlbi vmalle1",
                "dsb nsh",
                "isb",
                ipa = in(reg) ipa >> 12,
                options(nostack, preserves_flags)
            );
        } else {
            core::arch::asm!(
                "dsb ishst",
                "tlbi ipas2e1is, {ipa}",
                "dsb ish",
                "tlbi vmalle1is",
                "dsb ish",
                "isb",
                ipa = in(reg) ipa >> 12,
                options(nostack, preserves_flags)
            );
        }
        core::ptr::write_volatile(entry as *mut u64, new);
        core::arch::asm!("dsb ishst", "isb", options(nostack, preserves_flags));
    }
}

/// Every TLB entry of VMID `vmid` invalidated on every CPU (stage 2 and the combined
/// stage 1): done with that VMID in VTTBR_EL2 for the moment of the invalidation, then the
/// current one put back.
pub fn flush_vmid(vmid: u16) {
    // SAFETY: at EL2 no translation regime uses VTTBR_EL2 while this runs (it applies to
    // EL1/EL0 only), and it is restored before the guest of this CPU runs again; TLB
    // invalidation by VMID affects translations of that VMID only, which no running domain
    // holds (it is being handed out).
    unsafe {
        core::arch::asm!(
            "mrs {old}, vttbr_el2",
            "msr vttbr_el2, {new}",
            "isb",
            "tlbi vmalls12e1is",
            "dsb ish",
            "msr vttbr_el2, {old}",
            "isb",
            old = out(reg) _,
            new = in(reg) u64::from(vmid) << 48,
            options(nostack, preserves_flags)
        );
    }
}
