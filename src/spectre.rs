//! Which branch-predictor mitigations a CPU needs on every exit from a guest, so that what
//! a guest trained cannot steer the hypervisor's speculation: the branch-history clearing
//! loop (Spectre-BHB) and the firmware's branch-predictor invalidation
//! (SMCCC_ARCH_WORKAROUND_1, Spectre-v2). The arch layer reads the ID registers and applies
//! the answer in its exception vectors.

/// Arm's implementer code.
const ARM: u64 = 0x41;

/// What a CPU needs on each guest exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Mitigation {
    /// Taken branches that overwrite the branch history (0: none needed).
    pub bhb_loop: u32,
    /// The firmware's SMCCC_ARCH_WORKAROUND_1 invalidates the branch predictor.
    pub bp_firmware: bool,
}

/// The mitigations for a CPU with these MIDR_EL1, ID_AA64MMFR1_EL1 and ID_AA64PFR0_EL1
/// values (Arm's Spectre-BHB and Spectre-v2 guidance: the loop counts per core).
pub fn for_cpu(midr: u64, mmfr1: u64, pfr0: u64) -> Mitigation {
    let part = if (midr >> 24) & 0xff == ARM { (midr >> 4) & 0xfff } else { 0 };
    // ECBHB: the core clears its branch history on exception entry itself.
    let ecbhb = (mmfr1 >> 60) & 0xf != 0;
    // CSV2: branch targets trained in one context do not steer another.
    let csv2 = (pfr0 >> 56) & 0xf != 0;
    let bhb_loop = match part {
        _ if ecbhb => 0,
        // Cortex-A78, A78AE, A78C, X1, A710, X2, Neoverse N2, V1.
        0xd41 | 0xd42 | 0xd4b | 0xd44 | 0xd47 | 0xd48 | 0xd49 | 0xd40 => 32,
        // Cortex-A76 (0xd0b), Neoverse N1 (0xd0c), Cortex-A77 (0xd0d).
        0xd0b..=0xd0d => 24,
        // Cortex-A57, A72 (the Raspberry Pi 4's).
        0xd07 | 0xd08 => 8,
        _ => 0,
    };
    // Cortex-A57, A72, A73, A75 (0xd07 to 0xd0a).
    let bp_firmware = !csv2 && matches!(part, 0xd07..=0xd0a);
    Mitigation { bhb_loop, bp_firmware }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mitigations_per_core() {
        // MIDR values: Cortex-A53 r0p4, A57 r1p3, A72 r0p3 (Raspberry Pi 4), A76, X1.
        let a53 = 0x410f_d034;
        let a57 = 0x411f_d073;
        let a72 = 0x410f_d083;
        let a76 = 0x414f_d0b1;
        let x1 = 0x411f_d440;
        assert_eq!(for_cpu(a53, 0, 0), Mitigation { bhb_loop: 0, bp_firmware: false });
        assert_eq!(for_cpu(a57, 0, 0), Mitigation { bhb_loop: 8, bp_firmware: true });
        assert_eq!(for_cpu(a72, 0, 0), Mitigation { bhb_loop: 8, bp_firmware: true });
        assert_eq!(for_cpu(a76, 0, 1 << 56), Mitigation { bhb_loop: 24, bp_firmware: false });
        assert_eq!(for_cpu(x1, 0, 1 << 56), Mitigation { bhb_loop: 32, bp_firmware: false });
        // A core that clears its history itself (ECBHB), or reports CSV2: nothing to do.
        assert_eq!(for_cpu(x1, 1 << 60, 1 << 56), Mitigation::default());
        assert!(!for_cpu(a72, 0, 1 << 56).bp_firmware);
        // Another implementer's part number that happens to match: untouched.
        assert_eq!(for_cpu(0x510f_d080, 0, 0), Mitigation::default());
    }
}
