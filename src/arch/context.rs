//! A vCPU's state beyond its general registers: the EL1 system registers, the FP/SIMD
//! registers, its virtual timer and its virtual CPU interface. Saved and restored only
//! when a physical CPU switches between vCPUs (a CPU with one vCPU never does), and reset
//! to fixed values before a vCPU first runs, so nothing of one domain is seen by another.

use aarch64_cpu::registers::*;

/// FP/SIMD state: V0-V31, FPCR, FPSR.
#[repr(C, align(16))]
#[derive(Clone)]
pub struct FpRegs {
    v: [u128; 32],
    fpcr: u64,
    fpsr: u64,
}

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

const _: () = assert!(core::mem::offset_of!(FpRegs, fpcr) == 512);

/// The saved state of a vCPU that is not on its CPU.
#[derive(Clone)]
pub struct Context {
    fp: FpRegs,
    sctlr: u64,
    cpacr: u64,
    ttbr0: u64,
    ttbr1: u64,
    tcr: u64,
    esr: u64,
    afsr0: u64,
    afsr1: u64,
    far: u64,
    mair: u64,
    amair: u64,
    vbar: u64,
    contextidr: u64,
    tpidr_el0: u64,
    tpidrro_el0: u64,
    tpidr_el1: u64,
    cntkctl: u64,
    par: u64,
    sp_el0: u64,
    sp_el1: u64,
    elr: u64,
    spsr: u64,
    csselr: u64,
    mdscr: u64,
    pub cntv_ctl: u64,
    pub cntv_cval: u64,
    vmcr: u64,
    ap0r0: u64,
    ap1r0: u64,
}

/// SCTLR_EL1 at vCPU reset: MMU and caches off, RES1 bits.
const SCTLR_EL1_RESET: u64 = 0x30d0_0800;

impl Context {
    /// The state of a vCPU that has not run yet.
    pub fn reset() -> Self {
        Context {
            fp: FpRegs { v: [0; 32], fpcr: 0, fpsr: 0 },
            sctlr: SCTLR_EL1_RESET,
            cpacr: 0,
            ttbr0: 0,
            ttbr1: 0,
            tcr: 0,
            esr: 0,
            afsr0: 0,
            afsr1: 0,
            far: 0,
            mair: 0,
            amair: 0,
            vbar: 0,
            contextidr: 0,
            tpidr_el0: 0,
            tpidrro_el0: 0,
            tpidr_el1: 0,
            cntkctl: 0,
            par: 0,
            sp_el0: 0,
            sp_el1: 0,
            elr: 0,
            spsr: 0,
            csselr: 0,
            mdscr: 0,
            cntv_ctl: 0,
            cntv_cval: 0,
            vmcr: 0,
            ap0r0: 0,
            ap1r0: 0,
        }
    }

    /// Saves this CPU's vCPU state; the virtual timer is stopped (it must not fire for the
    /// next vCPU).
    pub fn save(&mut self, vgic: bool) {
        // SAFETY: writes the 528-byte FpRegs this function owns.
        unsafe { fpsimd_save(&mut self.fp) };
        self.sctlr = SCTLR_EL1.get();
        self.cpacr = CPACR_EL1.get();
        self.ttbr0 = TTBR0_EL1.get();
        self.ttbr1 = TTBR1_EL1.get();
        self.tcr = TCR_EL1.get();
        self.esr = ESR_EL1.get();
        self.afsr0 = AFSR0_EL1.get();
        self.afsr1 = AFSR1_EL1.get();
        self.far = FAR_EL1.get();
        self.mair = MAIR_EL1.get();
        self.amair = AMAIR_EL1.get();
        self.vbar = VBAR_EL1.get();
        self.contextidr = CONTEXTIDR_EL1.get();
        self.tpidr_el0 = TPIDR_EL0.get();
        self.tpidrro_el0 = TPIDRRO_EL0.get();
        self.tpidr_el1 = TPIDR_EL1.get();
        self.cntkctl = CNTKCTL_EL1.get();
        self.par = PAR_EL1.get();
        self.sp_el0 = SP_EL0.get();
        self.sp_el1 = SP_EL1.get();
        self.elr = ELR_EL1.get();
        self.spsr = SPSR_EL1.get();
        self.csselr = CSSELR_EL1.get();
        self.mdscr = MDSCR_EL1.get();
        self.cntv_ctl = CNTV_CTL_EL0.get();
        self.cntv_cval = CNTV_CVAL_EL0.get();
        CNTV_CTL_EL0.set(0);
        if vgic {
            self.vmcr = ICH_VMCR_EL2.get();
            self.ap0r0 = ICH_AP0R0_EL2.get();
            self.ap1r0 = ICH_AP1R0_EL2.get();
        }
    }

    /// Loads this state into the CPU.
    pub fn restore(&self, vgic: bool) {
        // SAFETY: reads the FpRegs this function borrows.
        unsafe { fpsimd_restore(&self.fp) };
        SCTLR_EL1.set(self.sctlr);
        CPACR_EL1.set(self.cpacr);
        TTBR0_EL1.set(self.ttbr0);
        TTBR1_EL1.set(self.ttbr1);
        TCR_EL1.set(self.tcr);
        ESR_EL1.set(self.esr);
        AFSR0_EL1.set(self.afsr0);
        AFSR1_EL1.set(self.afsr1);
        FAR_EL1.set(self.far);
        MAIR_EL1.set(self.mair);
        AMAIR_EL1.set(self.amair);
        VBAR_EL1.set(self.vbar);
        CONTEXTIDR_EL1.set(self.contextidr);
        TPIDR_EL0.set(self.tpidr_el0);
        TPIDRRO_EL0.set(self.tpidrro_el0);
        TPIDR_EL1.set(self.tpidr_el1);
        CNTKCTL_EL1.set(self.cntkctl);
        PAR_EL1.set(self.par);
        SP_EL0.set(self.sp_el0);
        SP_EL1.set(self.sp_el1);
        ELR_EL1.set(self.elr);
        SPSR_EL1.set(self.spsr);
        CSSELR_EL1.set(self.csselr);
        MDSCR_EL1.set(self.mdscr);
        CNTV_CVAL_EL0.set(self.cntv_cval);
        CNTV_CTL_EL0.set(self.cntv_ctl);
        if vgic {
            ICH_VMCR_EL2.set(self.vmcr);
            ICH_AP0R0_EL2.set(self.ap0r0);
            ICH_AP1R0_EL2.set(self.ap1r0);
        }
    }

    /// The saved virtual timer would have fired by physical count `now` (its domain's
    /// CNTVOFF is `cntvoff`).
    pub fn timer_due(&self, now: u64, cntvoff: u64) -> bool {
        const ENABLE: u64 = 1;
        const IMASK: u64 = 1 << 1;
        self.cntv_ctl & (ENABLE | IMASK) == ENABLE && now.wrapping_sub(cntvoff) >= self.cntv_cval
    }
}
