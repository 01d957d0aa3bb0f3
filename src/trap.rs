//! Why a guest left EL1: the exception syndrome decoded once into an [`Exit`], which the
//! core dispatches. Pure decoding of ESR_EL2/FAR_EL2/HPFAR_EL2 values.

/// A decoded MMIO access (a data abort with a valid instruction syndrome).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    pub write: bool,
    /// 1, 2, 4 or 8 bytes.
    pub size: u8,
    /// Transfer register (31 = XZR).
    pub reg: u8,
    /// Sign-extend a load.
    pub sign_extend: bool,
    /// The register is 64-bit (else the upper half is cleared).
    pub sixty_four: bool,
    /// The length of the instruction (4, or 2 for a 16-bit T32 one from AArch32 EL0).
    pub step: u8,
}

/// Why the guest exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Hvc {
        imm: u16,
    },
    /// A trapped SMC: the guest's PC still points at it.
    Smc {
        imm: u16,
    },
    /// WFI, `step` bytes long (4, or 2 for a 16-bit T32 one from AArch32 EL0).
    Wfi {
        step: u8,
    },
    Wfe {
        step: u8,
    },
    /// A stage-2 data abort at `ipa` (`access` when the syndrome describes it); `perm`
    /// when it is a permission fault (the page is mapped, but not for this access).
    DataAbort {
        ipa: u64,
        va: u64,
        write: bool,
        access: Option<Access>,
        perm: bool,
    },
    InstructionAbort {
        ipa: u64,
        va: u64,
        /// A permission fault (not a translation or access fault).
        perm: bool,
    },
    /// A trapped system register access.
    SysReg {
        iss: u32,
    },
    Irq,
    Fiq,
    SError {
        esr: u64,
    },
    /// An exception class not handled (an AArch32 coprocessor access included).
    Other {
        ec: u8,
        esr: u64,
    },
}

/// Exception classes (ESR_ELx.EC).
pub mod ec {
    pub const WFX: u8 = 0x01;
    pub const HVC64: u8 = 0x16;
    pub const SMC64: u8 = 0x17;
    pub const SYS64: u8 = 0x18;
    pub const IABT_LOW: u8 = 0x20;
    pub const DABT_LOW: u8 = 0x24;
    pub const DABT_CUR: u8 = 0x25;
}

/// The faulting IPA from HPFAR_EL2 and the page offset from FAR_EL2.
pub fn fault_ipa(far: u64, hpfar: u64) -> u64 {
    (((hpfar >> 4) & 0xff_ffff_ffff) << 12) | (far & 0xfff)
}

/// The lower-EL vector entries of a synchronous exception and an IRQ from AArch64 (EL1),
/// and of an IRQ from AArch32 (a guest's EL0).
pub const VECTOR_SYNC: u64 = 8;
pub const VECTOR_IRQ: u64 = 9;
pub const VECTOR_IRQ32: u64 = 13;

impl Exit {
    /// A TLB invalidation trapped from AArch64, from the syndrome alone: what
    /// `Exit::decode(VECTOR_SYNC, esr, ..).tlbi()` gives, without decoding anything else.
    pub fn tlbi_of(esr: u64) -> Option<(TlbiOp, u8)> {
        if (esr >> 26) & 0x3f != u64::from(ec::SYS64) {
            return None;
        }
        Exit::SysReg { iss: (esr & 0x1ff_ffff) as u32 }.tlbi()
    }

    /// A trapped TLB invalidation: its operation and Xt, decoded straight from the
    /// syndrome (op0 1, op1 0, CRn 8, CRm 3 or 7: the most frequent trapped exit).
    pub fn tlbi(&self) -> Option<(TlbiOp, u8)> {
        let Exit::SysReg { iss } = *self else { return None };
        let crm = (iss >> 1) & 0xf;
        if iss & 1 != 0 || (iss >> 20) & 3 != 1 || (iss >> 14) & 7 != 0 || (iss >> 10) & 0xf != 8 {
            return None;
        }
        if crm != 3 && crm != 7 {
            return None;
        }
        Some((tlbi_op((iss >> 17) & 7)?, ((iss >> 5) & 0x1f) as u8))
    }

    /// Decodes an exit taken through lower-EL vector entry `vector` (8 sync, 9 IRQ,
    /// 10 FIQ, 11 SError from AArch64; 12..15 the same from AArch32, a guest's EL0).
    pub fn decode(vector: u64, esr: u64, far: u64, hpfar: u64) -> Exit {
        let ec = (esr >> 26) as u8 & 0x3f;
        match vector {
            VECTOR_IRQ | VECTOR_IRQ32 => return Exit::Irq,
            10 | 14 => return Exit::Fiq,
            11 | 15 => return Exit::SError { esr },
            8 | 12 => {}
            _ => return Exit::Other { ec, esr },
        }
        let iss = (esr & 0x1ff_ffff) as u32;
        // ESR.IL: a 32-bit instruction, else a 16-bit T32 one.
        let step = if esr & (1 << 25) != 0 { 4 } else { 2 };
        let from32 = vector == 12;
        match ec {
            ec::WFX if iss & 1 == 0 => Exit::Wfi { step },
            ec::WFX => Exit::Wfe { step },
            // HVC, SMC and MSR/MRS have other classes from AArch32 (whose EL0 cannot use
            // them anyway); its coprocessor accesses fall to Other.
            ec::HVC64 | ec::SMC64 | ec::SYS64 if from32 => Exit::Other { ec, esr },
            ec::HVC64 => Exit::Hvc { imm: iss as u16 },
            ec::SMC64 => Exit::Smc { imm: iss as u16 },
            ec::SYS64 => Exit::SysReg { iss },
            // IFSC 0b0011xx: permission fault at some level.
            ec::IABT_LOW => {
                Exit::InstructionAbort { ipa: fault_ipa(far, hpfar), va: far, perm: iss & 0x3c == 0x0c }
            }
            ec::DABT_LOW => {
                let write = iss & (1 << 6) != 0;
                let access = (iss & (1 << 24) != 0).then(|| Access {
                    write,
                    size: 1 << ((iss >> 22) & 3),
                    reg: ((iss >> 16) & 0x1f) as u8,
                    sign_extend: iss & (1 << 21) != 0,
                    sixty_four: iss & (1 << 15) != 0,
                    step,
                });
                // DFSC 0b0011xx: permission fault at some level.
                let perm = iss & 0x3c == 0x0c;
                Exit::DataAbort { ipa: fault_ipa(far, hpfar), va: far, write, access, perm }
            }
            _ => Exit::Other { ec, esr },
        }
    }
}

/// ESR_EL1 for a synchronous external abort injected into a guest: a data abort from the
/// guest's own EL (EL1) or from EL0.
pub fn external_abort_esr(from_el0: bool, write: bool) -> u64 {
    let ec = if from_el0 { 0x24u64 } else { 0x25 };
    const IL: u64 = 1 << 25;
    const DFSC_SEA: u64 = 0x10;
    (ec << 26) | IL | (u64::from(write) << 6) | DFSC_SEA
}

/// ESR_EL1 for a synchronous external abort on an instruction fetch injected into a guest.
pub fn instruction_abort_esr(from_el0: bool) -> u64 {
    let ec = if from_el0 { 0x20u64 } else { 0x21 };
    (ec << 26) | (1 << 25) | 0x10
}

/// ESR_EL1 for an undefined instruction injected into a guest.
pub fn undefined_esr() -> u64 {
    1 << 25
}

/// Offset in VBAR_EL1 of the synchronous vector for an exception taken from a guest whose
/// PSTATE was `spsr` (EL1 with SP_EL1: 0x200; EL1 with SP_EL0: 0; AArch64 EL0: 0x400;
/// AArch32 EL0: 0x600).
pub fn sync_vector_offset(spsr: u64) -> u64 {
    if spsr & 0x10 != 0 {
        return 0x600;
    }
    match spsr & 0xf {
        0b0101 => 0x200,
        0b0100 => 0x000,
        _ => 0x400,
    }
}

/// A trapped system register access (EC 0x18), decoded from its ISS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SysRegAccess {
    /// (op0, op1, CRn, CRm, op2).
    pub enc: (u8, u8, u8, u8, u8),
    /// Transfer register (31 = XZR).
    pub reg: u8,
    pub read: bool,
}

/// System registers the hypervisor answers when a guest's access traps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SysReg {
    /// ICC_SGI1R_EL1: a Group 1 SGI.
    IccSgi1r,
    /// ICC_ASGI1R_EL1 / ICC_SGI0R_EL1: SGIs of the other groups (not offered).
    IccOtherSgi,
    /// CNTP_TVAL/CTL/CVAL_EL0: the physical timer, kept from guests (reads 0).
    CntpTimer,
    /// An EL1 TLB invalidation (trapped by HCR_EL2.TTLB): its operation, the same for the
    /// inner shareable and the local form.
    Tlbi(TlbiOp),
    /// The PMU (trapped by MDCR_EL2.TPM/TPMCR), self-hosted debug and trace registers (op0
    /// 2: trapped by MDCR_EL2.TDA/TDOSA/TDRA and CPTR_EL2.TTA) and ACTLR_EL1 (HCR_EL2.TACR):
    /// read as zero, writes ignored, so that no domain counts events, sets a breakpoint or
    /// locks the OS lock for another on the same CPU, or changes the CPU's implementation
    /// defined behaviour.
    RazWi,
    Other,
}

/// The EL1 TLB invalidations of Armv8.0 (`TLBI <op>E1[IS]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlbiOp {
    /// VMALLE1: everything of the current VMID.
    All,
    /// VAE1: by VA and ASID (Xt).
    Va,
    /// ASIDE1: by ASID (Xt).
    Asid,
    /// VAAE1: by VA, any ASID (Xt).
    VaAllAsid,
    /// VALE1: by VA and ASID, last level only (Xt).
    VaLast,
    /// VAALE1: by VA, any ASID, last level only (Xt).
    VaAllAsidLast,
}

impl SysRegAccess {
    pub fn decode(iss: u32) -> SysRegAccess {
        SysRegAccess {
            enc: (
                ((iss >> 20) & 3) as u8,
                ((iss >> 14) & 7) as u8,
                ((iss >> 10) & 0xf) as u8,
                ((iss >> 1) & 0xf) as u8,
                ((iss >> 17) & 7) as u8,
            ),
            reg: ((iss >> 5) & 0x1f) as u8,
            read: iss & 1 != 0,
        }
    }

    pub fn which(&self) -> SysReg {
        match self.enc {
            (3, 0, 12, 11, 5) => SysReg::IccSgi1r,
            (3, 0, 12, 11, 6 | 7) => SysReg::IccOtherSgi,
            (3, 3, 14, 2, 0..=2) => SysReg::CntpTimer,
            // PMCR..PMUSERENR, PMOVSSET (CRn 9, CRm 12-14); PMEVCNTR/PMEVTYPER, PMCCFILTR
            // (CRn 14, CRm 8-15); PMINTENSET/CLR_EL1.
            (3, 3, 9, 12..=14, _) | (3, 3, 14, 8..=15, _) | (3, 0, 9, 14, 1 | 2) => SysReg::RazWi,
            (2, _, _, _, _) => SysReg::RazWi,
            (3, 0, 1, 0, 1) => SysReg::RazWi,
            (1, 0, 8, 3 | 7, op2) => tlbi_op(u32::from(op2)).map_or(SysReg::Other, SysReg::Tlbi),
            _ => SysReg::Other,
        }
    }
}

/// The EL1 TLB invalidation with `op2` (CRm 3: inner shareable, 7: local).
fn tlbi_op(op2: u32) -> Option<TlbiOp> {
    Some(match op2 {
        0 => TlbiOp::All,
        1 => TlbiOp::Va,
        2 => TlbiOp::Asid,
        3 => TlbiOp::VaAllAsid,
        5 => TlbiOp::VaLast,
        7 => TlbiOp::VaAllAsidLast,
        _ => return None,
    })
}

/// PSTATE on entry to an EL1 exception handler: EL1h with D, A, I and F masked.
pub const EL1H_MASKED: u64 = 0x3c5;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_mmio_write() {
        // str w1, [x0] to an unmapped IPA: EC 0x24, IL, ISV, SAS=2 (word), SRT=1, WnR, DFSC 0x07.
        let esr = (0x24u64 << 26) | (1 << 25) | (1 << 24) | (2 << 22) | (1 << 16) | (1 << 6) | 0x07;
        let e = Exit::decode(8, esr, 0x2200_0004, 0x2_2000 << 4);
        assert_eq!(
            e,
            Exit::DataAbort {
                ipa: 0x2200_0004,
                va: 0x2200_0004,
                write: true,
                access: Some(Access {
                    write: true,
                    size: 4,
                    reg: 1,
                    sign_extend: false,
                    sixty_four: false,
                    step: 4
                }),
                perm: false,
            }
        );
    }

    #[test]
    fn decodes_calls_and_wfx() {
        assert_eq!(Exit::decode(8, (0x16 << 26) | (1 << 25), 0, 0), Exit::Hvc { imm: 0 });
        assert_eq!(Exit::decode(8, (0x17 << 26) | (1 << 25) | 5, 0, 0), Exit::Smc { imm: 5 });
        assert_eq!(Exit::decode(8, (0x01 << 26) | (1 << 25), 0, 0), Exit::Wfi { step: 4 });
        assert_eq!(Exit::decode(8, (0x01 << 26) | (1 << 25) | 1, 0, 0), Exit::Wfe { step: 4 });
        assert_eq!(Exit::decode(9, 0, 0, 0), Exit::Irq);
        // From AArch32 EL0: interrupts as from AArch64, a 16-bit WFI is 2 bytes, a
        // coprocessor access (MRC p15, EC 0x03) and an impossible MSR class are Other.
        assert_eq!(Exit::decode(13, 0, 0, 0), Exit::Irq);
        assert_eq!(Exit::decode(15, 0xbf00_0000, 0, 0), Exit::SError { esr: 0xbf00_0000 });
        assert_eq!(Exit::decode(12, 0x01 << 26, 0, 0), Exit::Wfi { step: 2 });
        assert_eq!(Exit::decode(12, (0x01 << 26) | (1 << 25), 0, 0), Exit::Wfi { step: 4 });
        assert!(matches!(Exit::decode(12, (0x03 << 26) | (1 << 25), 0, 0), Exit::Other { ec: 3, .. }));
        assert!(matches!(Exit::decode(12, 0x18 << 26, 0, 0), Exit::Other { ec: 0x18, .. }));
        // No valid syndrome: the access is unknown but the address is.
        let e = Exit::decode(8, (0x24 << 26) | 0x07, 0x123, 0x5_0000 << 4);
        assert_eq!(
            e,
            Exit::DataAbort { ipa: 0x5000_0123, va: 0x123, write: false, access: None, perm: false }
        );
        // A write permission fault at level 3 (DFSC 0x0f), no syndrome (a store pair).
        let e = Exit::decode(8, (0x24 << 26) | (1 << 6) | 0x0f, 0x40, 0x4_0020 << 4);
        assert_eq!(e, Exit::DataAbort { ipa: 0x4002_0040, va: 0x40, write: true, access: None, perm: true });
    }

    #[test]
    fn decodes_system_registers() {
        // msr icc_sgi1r_el1, x3: op0 3, op1 0, CRn 12, CRm 11, op2 5, write.
        let iss = (3 << 20) | (5 << 17) | (12 << 10) | (3 << 5) | (11 << 1);
        let a = SysRegAccess::decode(iss);
        assert_eq!(a, SysRegAccess { enc: (3, 0, 12, 11, 5), reg: 3, read: false });
        assert_eq!(a.which(), SysReg::IccSgi1r);
        // mrs x0, cntp_ctl_el0: op1 3, CRn 14, CRm 2, op2 1, read.
        let iss = (3 << 20) | (1 << 17) | (3 << 14) | (14 << 10) | (2 << 1) | 1;
        let a = SysRegAccess::decode(iss);
        assert!(a.read);
        assert_eq!(a.which(), SysReg::CntpTimer);
        let iss = (3 << 20) | (7 << 17) | (12 << 10) | (11 << 1);
        assert_eq!(SysRegAccess::decode(iss).which(), SysReg::IccOtherSgi);
        assert_eq!(SysRegAccess::decode(3 << 20).which(), SysReg::Other);
        // tlbi vae1is, x2: op0 1, op1 0, CRn 8, CRm 3, op2 1; tlbi vmalle1: CRm 7, op2 0.
        let a = SysRegAccess::decode((1 << 20) | (1 << 17) | (8 << 10) | (2 << 5) | (3 << 1));
        assert_eq!((a.which(), a.reg), (SysReg::Tlbi(TlbiOp::Va), 2));
        let a = SysRegAccess::decode((1 << 20) | (8 << 10) | (31 << 5) | (7 << 1));
        assert_eq!(a.which(), SysReg::Tlbi(TlbiOp::All));
        assert_eq!(SysRegAccess::decode((1 << 20) | (4 << 17) | (8 << 10) | (3 << 1)).which(), SysReg::Other);
        // A TLB invalidation decoded straight from the syndrome is what the full decoder
        // says.
        for iss in [
            (1 << 20) | (1 << 17) | (8 << 10) | (2 << 5) | (3 << 1),
            (1 << 20) | (4 << 17) | (8 << 10) | (3 << 1),
        ] {
            let a = SysRegAccess::decode(iss);
            let full = match a.which() {
                SysReg::Tlbi(op) => Some((op, a.reg)),
                _ => None,
            };
            assert_eq!(Exit::SysReg { iss }.tlbi(), full, "{iss:#x}");
        }
        assert_eq!(
            Exit::SysReg { iss: (1 << 20) | (1 << 17) | (8 << 10) | (2 << 5) | (3 << 1) }.tlbi(),
            Some((TlbiOp::Va, 2))
        );
        let tlbi = (1 << 20) | (8 << 10) | (31 << 5) | (7 << 1);
        assert!(Exit::SysReg { iss: tlbi }.tlbi().is_some());
        assert!(Exit::SysReg { iss: tlbi | 1 }.tlbi().is_none());
        assert!(
            Exit::SysReg { iss: (3 << 20) | (5 << 17) | (12 << 10) | (3 << 5) | (11 << 1) }.tlbi().is_none()
        );
        assert!(Exit::Irq.tlbi().is_none());
        let enc = |op0: u32, op1: u32, crn: u32, crm: u32, op2: u32| {
            SysRegAccess::decode((op0 << 20) | (op2 << 17) | (op1 << 14) | (crn << 10) | (crm << 1)).which()
        };
        // PMU: PMCR_EL0, PMCCNTR_EL0, PMUSERENR_EL0, PMEVCNTR5_EL0, PMCCFILTR_EL0, PMINTENSET_EL1.
        for r in [
            (3, 3, 9, 12, 0),
            (3, 3, 9, 13, 0),
            (3, 3, 9, 14, 0),
            (3, 3, 14, 8, 5),
            (3, 3, 14, 15, 7),
            (3, 0, 9, 14, 1),
        ] {
            assert_eq!(enc(r.0, r.1, r.2, r.3, r.4), SysReg::RazWi, "{r:?}");
        }
        // Debug: MDSCR_EL1, DBGBVR0_EL1, OSLAR_EL1, MDCCSR_EL0; ACTLR_EL1.
        for r in [(2, 0, 0, 2, 2), (2, 0, 0, 0, 4), (2, 0, 1, 0, 4), (2, 3, 0, 1, 0), (3, 0, 1, 0, 1)] {
            assert_eq!(enc(r.0, r.1, r.2, r.3, r.4), SysReg::RazWi, "{r:?}");
        }
        // Implementation defined registers (HCR_EL2.TIDCP: CRn 11 and 15) are undefined, as
        // are ACTLR's neighbours SCTLR and CPACR (not trapped: never seen here).
        assert_eq!(enc(3, 1, 15, 2, 0), SysReg::Other);
        assert_eq!(enc(3, 0, 11, 0, 0), SysReg::Other);
        assert_eq!(enc(3, 0, 1, 0, 0), SysReg::Other);
    }

    #[test]
    fn a_tlb_invalidation_from_the_syndrome_alone_is_what_the_full_decoder_says() {
        // Every TLBI encoding (CRm 3 and 7, each op2, each Xt, both directions) and every
        // other exception class they could be confused with, plus random syndromes.
        let mut esrs = alloc::vec::Vec::new();
        for ec in [ec::SYS64, ec::HVC64, ec::DABT_LOW, ec::WFX, 0x14, 0x00] {
            for crm in [3u64, 7, 2] {
                for op2 in 0..8u64 {
                    for rt in [0u64, 5, 31] {
                        for dir in [0u64, 1] {
                            let iss = (1 << 20) | (op2 << 17) | (8 << 10) | (rt << 5) | (crm << 1) | dir;
                            esrs.push((u64::from(ec) << 26) | (1 << 25) | iss);
                        }
                    }
                }
            }
        }
        let mut next = crate::testrng::xorshift(0x9e37_79b9);
        for _ in 0..20_000 {
            let x = u64::from(next(u32::MAX));
            esrs.push(x);
            esrs.push((x & 0x03ff_ffff) | (u64::from(ec::SYS64) << 26));
        }
        let mut found = 0;
        for esr in esrs {
            let full = Exit::decode(VECTOR_SYNC, esr, 0, 0).tlbi();
            assert_eq!(Exit::tlbi_of(esr), full, "{esr:#x}");
            found += usize::from(full.is_some());
        }
        // 6 operations x 3 registers x 2 CRm values, written (direction 0) with SYS64.
        assert!(found >= 36, "{found}");
    }

    #[test]
    fn injection_values() {
        assert_eq!(external_abort_esr(false, true), 0x9600_0050);
        assert_eq!(external_abort_esr(true, false), 0x9200_0010);
        assert_eq!(instruction_abort_esr(false), 0x8600_0010);
        assert_eq!(instruction_abort_esr(true), 0x8200_0010);
        assert_eq!(sync_vector_offset(0x3c5), 0x200);
        assert_eq!(sync_vector_offset(0x3c4), 0);
        assert_eq!(sync_vector_offset(0x0), 0x400);
        // AArch32 User (M 0x10) and its Thumb state.
        assert_eq!(sync_vector_offset(0x10), 0x600);
        assert_eq!(sync_vector_offset(0x30), 0x600);
    }
}
