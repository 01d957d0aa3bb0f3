//! EL2 system registers: every control register the hypervisor depends on is written
//! explicitly at start-up, whatever the firmware left in it.

use aarch64_cpu::registers::*;
use core::arch::asm;

use super::boot::SCTLR_EL2_RES1;

/// HCR_EL2.RW: EL1 runs AArch64.
const HCR_RW: u64 = 1 << 31;
/// CPTR_EL2: its RES1 bits (FP/SIMD not trapped; SVE and SME trapped) and TTA (bit 20):
/// EL0/EL1 accesses to trace registers trap.
const CPTR_EL2_VALUE: u64 = 0x33ff | (1 << 20);
/// MDCR_EL2 traps: TPMCR (5), TPM (6) (the PMU), TDA (9), TDOSA (10), TDRA (11)
/// (self-hosted debug registers, the OS lock, MDRAR). Guests read them as zero and their
/// writes are ignored: no domain counts events, sets a breakpoint or locks the OS lock on a
/// CPU another domain shares.
const MDCR_TRAPS: u64 = (1 << 5) | (1 << 6) | (1 << 9) | (1 << 10) | (1 << 11);
/// MDCR_EL2.HPMD (FEAT_PMUv3p1): no event counting at EL2.
const MDCR_HPMD: u64 = 1 << 17;
/// CNTHCTL_EL2: EL1 may read the physical counter; its physical timer traps (guests
/// have the virtual one).
const CNTHCTL_EL1PCTEN: u64 = 0b01;
/// VTCR_EL2 RES1 bit 31.
const VTCR_RES1: u64 = 1 << 31;
/// SCTLR_EL1 with only its RES1 bits (EL1 MMU off until a guest turns it on).
const SCTLR_EL1_RES1: u64 = 0x30d0_0800;

/// Puts this CPU's EL2 registers in a known state. Runs with the MMU off, before anything
/// else, on every CPU. `cpu` is the CPU's index, kept in TPIDR_EL2.
pub fn init_cpu_registers(cpu: usize) {
    DAIF.set(0b1111 << 6);
    HCR_EL2.set(HCR_RW);
    CPTR_EL2.set(CPTR_EL2_VALUE);
    // MDCR_EL2.HPMN: every counter the PMU has (none reachable: the PMU traps).
    let pmcr: u64;
    // SAFETY: reading PMCR_EL0 at EL2 has no side effects.
    unsafe { asm!("mrs {}, pmcr_el0", out(reg) pmcr, options(nomem, nostack, preserves_flags)) };
    let pmu_ver = (ID_AA64DFR0_EL1.get() >> 8) & 0xf;
    let hpmd = if (4..0xf).contains(&pmu_ver) { MDCR_HPMD } else { 0 };
    MDCR_EL2.set(((pmcr >> 11) & 0x1f) | MDCR_TRAPS | hpmd);
    CNTHCTL_EL2.set(CNTHCTL_EL1PCTEN);
    CNTVOFF_EL2.set(0);
    CNTHP_CTL_EL2.set(0);
    VTTBR_EL2.set(0);
    VTCR_EL2.set(VTCR_RES1);
    // SAFETY: HSTR_EL2 = 0 traps no AArch32 coprocessor access; VPIDR_EL2 = MIDR_EL1 shows EL1
    // the real CPU; neither affects EL2's own memory or control flow.
    unsafe {
        asm!("msr hstr_el2, xzr", options(nomem, nostack, preserves_flags));
        asm!("mrs {t}, midr_el1", "msr vpidr_el2, {t}", t = out(reg) _, options(nomem, nostack, preserves_flags));
    }
    VMPIDR_EL2.set(MPIDR_EL1.get());
    SCTLR_EL1.set(SCTLR_EL1_RES1);
    if has_gicv3_sysregs() {
        ICH_HCR_EL2.set(0);
    }
    TPIDR_EL2.set(cpu as u64);
    SCTLR_EL2.set(SCTLR_EL2_RES1);
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
}

/// True when the CPU implements the GICv3 system-register interface.
pub fn has_gicv3_sysregs() -> bool {
    ID_AA64PFR0_EL1.get() >> 24 & 0xf != 0
}

/// True when the CPU has the random number registers RNDR and RNDRRS (FEAT_RNG,
/// ID_AA64ISAR0_EL1.RNDR).
pub fn has_rndr() -> bool {
    ID_AA64ISAR0_EL1.get() >> 60 != 0
}

/// True when the CPU has the SHA-256 instructions (FEAT_SHA256, ID_AA64ISAR0_EL1.SHA2).
pub fn has_sha256() -> bool {
    ID_AA64ISAR0_EL1.get() >> 12 & 0xf != 0
}

/// This CPU's index, as set by [`init_cpu_registers`].
pub fn cpu_index() -> usize {
    TPIDR_EL2.get() as usize
}

/// This CPU's MPIDR_EL1.
pub fn mpidr() -> u64 {
    MPIDR_EL1.get()
}

/// Physical address bits the CPU implements (ID_AA64MMFR0_EL1.PARange), capped at 48.
/// The VMID width: 16 bits where ID_AA64MMFR1_EL1.VMIDBits says so (VTCR_EL2.VS is then
/// set), else 8.
pub fn vmid_bits() -> u32 {
    if ID_AA64MMFR1_EL1.get() >> 4 & 0xf == 0b0010 { 16 } else { 8 }
}

pub fn pa_bits() -> (u32, u64) {
    let range = ID_AA64MMFR0_EL1.get() & 0xf;
    let bits = match range {
        0 => 32,
        1 => 36,
        2 => 40,
        3 => 42,
        4 => 44,
        _ => 48,
    };
    (bits, range.min(5))
}

/// The MIDR_EL1 of this CPU.
pub fn midr() -> u64 {
    MIDR_EL1.get()
}
