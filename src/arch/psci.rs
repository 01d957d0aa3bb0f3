//! Calls to the firmware's PSCI implementation through the conduit the DTB names.

use core::arch::asm;

use crate::platform::Conduit;

pub const PSCI_VERSION: u32 = 0x8400_0000;
pub const CPU_ON_64: u32 = 0xc400_0003;
pub const SYSTEM_OFF: u32 = 0x8400_0008;
pub const SYSTEM_RESET: u32 = 0x8400_0009;

/// An SMCCC call with up to three arguments; returns x0.
pub fn call(conduit: Conduit, fid: u32, a1: u64, a2: u64, a3: u64) -> i64 {
    let mut x0 = u64::from(fid);
    match conduit {
        // SAFETY: an SMCCC call to firmware: x0–x3 are arguments, x0–x17 may be clobbered
        // (SMCCC 1.1+ preserves x4–x17, but older firmware may not).
        Conduit::Smc => unsafe {
            asm!("smc #0", inout("x0") x0, inout("x1") a1 => _, inout("x2") a2 => _, inout("x3") a3 => _,
                 out("x4") _, out("x5") _, out("x6") _, out("x7") _, out("x8") _, out("x9") _,
                 out("x10") _, out("x11") _, out("x12") _, out("x13") _, out("x14") _, out("x15") _,
                 out("x16") _, out("x17") _, options(nostack))
        },
        // SAFETY: as above, through HVC (firmware running at EL2 is not our case, but a
        // DTB can name it; the call itself is the same contract).
        Conduit::Hvc => unsafe {
            asm!("hvc #0", inout("x0") x0, inout("x1") a1 => _, inout("x2") a2 => _, inout("x3") a3 => _,
                 out("x4") _, out("x5") _, out("x6") _, out("x7") _, out("x8") _, out("x9") _,
                 out("x10") _, out("x11") _, out("x12") _, out("x13") _, out("x14") _, out("x15") _,
                 out("x16") _, out("x17") _, options(nostack))
        },
    }
    x0 as i64
}

/// The firmware implements SMCCC 1.1 or later and SMCCC_ARCH_WORKAROUND_1 (a
/// branch-predictor invalidation for cores that need one on each guest exit).
pub fn has_arch_workaround_1(conduit: Conduit) -> bool {
    const SMCCC_VERSION: u32 = 0x8000_0000;
    const SMCCC_ARCH_FEATURES: u32 = 0x8000_0001;
    const ARCH_WORKAROUND_1: u64 = 0x8000_8000;
    let v = call(conduit, SMCCC_VERSION, 0, 0, 0);
    v >= 0x1_0001 && call(conduit, SMCCC_ARCH_FEATURES, ARCH_WORKAROUND_1, 0, 0) == 0
}

/// PSCI version as (major, minor).
pub fn version(conduit: Conduit) -> (u32, u32) {
    let v = call(conduit, PSCI_VERSION, 0, 0, 0) as u32;
    (v >> 16, v & 0xffff)
}

/// Starts a CPU at `entry` (physical address) with `context` in x0.
pub fn cpu_on(conduit: Conduit, mpidr: u64, entry: u64, context: u64) -> i64 {
    call(conduit, CPU_ON_64, mpidr, entry, context)
}

/// Powers the machine off; returns only if the firmware refuses.
pub fn system_off(conduit: Conduit) -> i64 {
    call(conduit, SYSTEM_OFF, 0, 0, 0)
}
