//! Probes of what a domain must not reach on a CPU it may share: the PMU and the
//! self-hosted debug registers. Each prints what it read before and after writing (the
//! tests require zeros: the hypervisor traps them, reads give 0 and writes are ignored).

use core::arch::asm;
use core::fmt;

/// PMCR_EL0, PMCNTENSET_EL0, PMCCNTR_EL0, DBGBVR0_EL1, DBGBCR0_EL1, MDSCR_EL1, OSLSR_EL1.
struct PmuDebug([u64; 7]);

impl fmt::Display for PmuDebug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = ["PMCR", "PMCNTENSET", "PMCCNTR", "DBGBVR0", "DBGBCR0", "MDSCR", "OSLSR"];
        for (i, (n, v)) in names.iter().zip(self.0).enumerate() {
            write!(f, "{}{n} {v:#x}", if i == 0 { "" } else { " " })?;
        }
        Ok(())
    }
}

fn read() -> PmuDebug {
    let mut r = [0u64; 7];
    // SAFETY: reads of PMU and debug system registers; the hypervisor traps each.
    unsafe {
        asm!(
            "mrs {0}, pmcr_el0", "mrs {1}, pmcntenset_el0", "mrs {2}, pmccntr_el0",
            "mrs {3}, dbgbvr0_el1", "mrs {4}, dbgbcr0_el1", "mrs {5}, mdscr_el1", "mrs {6}, oslsr_el1",
            out(reg) r[0], out(reg) r[1], out(reg) r[2], out(reg) r[3], out(reg) r[4], out(reg) r[5],
            out(reg) r[6], options(nostack)
        )
    };
    PmuDebug(r)
}

/// `hl.pmu-debug`: read, enable the cycle counter, set and enable breakpoint 0, turn on
/// monitor debug and lock the OS lock, spin a while, read again.
pub fn pmu_debug(name: &str) {
    crate::println!("{name}: PMU/debug read {}", read());
    // SAFETY: writes to PMU and debug system registers (trapped; they must be ignored).
    unsafe {
        asm!(
            "msr pmcr_el0, {e}", "msr pmcntenset_el0, {c}", "msr dbgbvr0_el1, {v}",
            "msr dbgbcr0_el1, {b}", "msr mdscr_el1, {m}", "msr oslar_el1, {l}", "isb",
            e = in(reg) 0x7_u64, c = in(reg) 1_u64 << 31, v = in(reg) 0x4000_1000_u64,
            b = in(reg) 0x1e7_u64, m = in(reg) 1_u64 << 15, l = in(reg) 1_u64, options(nostack)
        )
    };
    for _ in 0..100_000 {
        core::hint::spin_loop();
    }
    crate::println!("{name}: PMU/debug after writing read {}", read());
}
