//! A vCPU's state beyond its general registers: the EL1 system registers, the FP/SIMD
//! registers, its virtual timer and its virtual CPU interface. Saved and restored only
//! when a physical CPU switches between vCPUs (a CPU with one vCPU never does), and reset
//! to fixed values before a vCPU first runs, so nothing of one domain is seen by another.
//! The state itself is the core's data (`hv::vcpu::Context`); this file moves it between
//! the CPU and memory.

use aarch64_cpu::registers::*;

use crate::hv::vcpu::{Context, FpRegs};

core::arch::global_asm!(
    r#"
    .section .text.fpsimd, "ax"
    .arch_extension fp
    .arch_extension simd
    .global fpsimd_save
// fpsimd_save(regs: *mut FpRegs)
fpsimd_save:
    stp     q0, q1, [x0, #0]
    stp     q2, q3, [x0, #32]
    stp     q4, q5, [x0, #64]
    stp     q6, q7, [x0, #96]
    stp     q8, q9, [x0, #128]
    stp     q10, q11, [x0, #160]
    stp     q12, q13, [x0, #192]
    stp     q14, q15, [x0, #224]
    stp     q16, q17, [x0, #256]
    stp     q18, q19, [x0, #288]
    stp     q20, q21, [x0, #320]
    stp     q22, q23, [x0, #352]
    stp     q24, q25, [x0, #384]
    stp     q26, q27, [x0, #416]
    stp     q28, q29, [x0, #448]
    stp     q30, q31, [x0, #480]
    mrs     x1, fpcr
    mrs     x2, fpsr
    add     x0, x0, #512
    stp     x1, x2, [x0]
    ret

    .global fpsimd_restore
// fpsimd_restore(regs: *const FpRegs)
fpsimd_restore:
    ldp     q0, q1, [x0, #0]
    ldp     q2, q3, [x0, #32]
    ldp     q4, q5, [x0, #64]
    ldp     q6, q7, [x0, #96]
    ldp     q8, q9, [x0, #128]
    ldp     q10, q11, [x0, #160]
    ldp     q12, q13, [x0, #192]
    ldp     q14, q15, [x0, #224]
    ldp     q16, q17, [x0, #256]
    ldp     q18, q19, [x0, #288]
    ldp     q20, q21, [x0, #320]
    ldp     q22, q23, [x0, #352]
    ldp     q24, q25, [x0, #384]
    ldp     q26, q27, [x0, #416]
    ldp     q28, q29, [x0, #448]
    ldp     q30, q31, [x0, #480]
    add     x0, x0, #512
    ldp     x1, x2, [x0]
    msr     fpcr, x1
    msr     fpsr, x2
    ret
"#
);

unsafe extern "C" {
    fn fpsimd_save(regs: *mut FpRegs);
    fn fpsimd_restore(regs: *const FpRegs);
}

/// Saves this CPU's vCPU state into `c`; the virtual timer is stopped (it must not fire
/// for the next vCPU).
pub fn save(c: &mut Context, vgic: bool) {
    // SAFETY: writes the 528-byte FpRegs `c` owns.
    unsafe { fpsimd_save(&mut c.fp) };
    c.el1[0] = SCTLR_EL1.get();
    c.el1[1] = CPACR_EL1.get();
    c.el1[2] = TTBR0_EL1.get();
    c.el1[3] = TTBR1_EL1.get();
    c.el1[4] = TCR_EL1.get();
    c.el1[5] = ESR_EL1.get();
    c.el1[6] = AFSR0_EL1.get();
    c.el1[7] = AFSR1_EL1.get();
    c.el1[8] = FAR_EL1.get();
    c.el1[9] = MAIR_EL1.get();
    c.el1[10] = AMAIR_EL1.get();
    c.el1[11] = VBAR_EL1.get();
    c.el1[12] = CONTEXTIDR_EL1.get();
    c.el1[13] = TPIDR_EL0.get();
    c.el1[14] = TPIDRRO_EL0.get();
    c.el1[15] = TPIDR_EL1.get();
    c.el1[16] = CNTKCTL_EL1.get();
    c.el1[17] = PAR_EL1.get();
    c.el1[18] = SP_EL0.get();
    c.el1[19] = SP_EL1.get();
    c.el1[20] = ELR_EL1.get();
    c.el1[21] = SPSR_EL1.get();
    c.el1[22] = CSSELR_EL1.get();
    c.el1[23] = MDSCR_EL1.get();
    c.cntv_ctl = CNTV_CTL_EL0.get();
    c.cntv_cval = CNTV_CVAL_EL0.get();
    CNTV_CTL_EL0.set(0);
    if vgic && super::gich::present() {
        (c.vmcr, c.ap0r0) = super::gich::state();
    } else if vgic {
        c.vmcr = ICH_VMCR_EL2.get();
        c.ap0r0 = ICH_AP0R0_EL2.get();
        c.ap1r0 = ICH_AP1R0_EL2.get();
    }
}

/// Loads `c` into this CPU.
pub fn restore(c: &Context, vgic: bool) {
    // SAFETY: reads the FpRegs `c` holds.
    unsafe { fpsimd_restore(&c.fp) };
    SCTLR_EL1.set(c.el1[0]);
    CPACR_EL1.set(c.el1[1]);
    TTBR0_EL1.set(c.el1[2]);
    TTBR1_EL1.set(c.el1[3]);
    TCR_EL1.set(c.el1[4]);
    ESR_EL1.set(c.el1[5]);
    AFSR0_EL1.set(c.el1[6]);
    AFSR1_EL1.set(c.el1[7]);
    FAR_EL1.set(c.el1[8]);
    MAIR_EL1.set(c.el1[9]);
    AMAIR_EL1.set(c.el1[10]);
    VBAR_EL1.set(c.el1[11]);
    CONTEXTIDR_EL1.set(c.el1[12]);
    TPIDR_EL0.set(c.el1[13]);
    TPIDRRO_EL0.set(c.el1[14]);
    TPIDR_EL1.set(c.el1[15]);
    CNTKCTL_EL1.set(c.el1[16]);
    PAR_EL1.set(c.el1[17]);
    SP_EL0.set(c.el1[18]);
    SP_EL1.set(c.el1[19]);
    ELR_EL1.set(c.el1[20]);
    SPSR_EL1.set(c.el1[21]);
    CSSELR_EL1.set(c.el1[22]);
    MDSCR_EL1.set(c.el1[23]);
    CNTV_CVAL_EL0.set(c.cntv_cval);
    CNTV_CTL_EL0.set(c.cntv_ctl);
    if vgic && super::gich::present() {
        super::gich::set_state(c.vmcr, c.ap0r0);
    } else if vgic {
        ICH_VMCR_EL2.set(c.vmcr);
        ICH_AP0R0_EL2.set(c.ap0r0);
        ICH_AP1R0_EL2.set(c.ap1r0);
    }
}
