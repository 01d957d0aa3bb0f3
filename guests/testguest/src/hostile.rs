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

/// Runs `f` (one access that may fault); the exception it raised, if any: its ESR.
fn faulted(f: impl FnOnce()) -> Option<u64> {
    crate::FAULT_ESR.store(0, core::sync::atomic::Ordering::SeqCst);
    f();
    match crate::FAULT_ESR.load(core::sync::atomic::Ordering::SeqCst) {
        0 => None,
        esr => Some(esr),
    }
}

/// An SMCCC call by HVC or SMC with x1-x4.
fn call(smc: bool, fid: u32, a: [u64; 4]) -> i64 {
    let mut x0 = u64::from(fid);
    if smc {
        // SAFETY: an SMCCC call the hypervisor traps; x0-x3 are results, x4-x17 may change.
        unsafe {
            asm!("smc #0", inout("x0") x0, inout("x1") a[0] => _, inout("x2") a[1] => _, inout("x3") a[2] => _,
                 inout("x4") a[3] => _, out("x5") _, out("x6") _, out("x7") _, out("x8") _, out("x9") _,
                 out("x10") _, out("x11") _, out("x12") _, out("x13") _, out("x14") _, out("x15") _,
                 out("x16") _, out("x17") _, options(nostack))
        };
    } else {
        // SAFETY: as above, by HVC.
        unsafe {
            asm!("hvc #0", inout("x0") x0, inout("x1") a[0] => _, inout("x2") a[1] => _, inout("x3") a[2] => _,
                 inout("x4") a[3] => _, out("x5") _, out("x6") _, out("x7") _, out("x8") _, out("x9") _,
                 out("x10") _, out("x11") _, out("x12") _, out("x13") _, out("x14") _, out("x15") _,
                 out("x16") _, out("x17") _, options(nostack))
        };
    }
    x0 as i64
}

/// Return codes seen: success, not supported, invalid, denied, anything else.
#[derive(Default)]
struct Codes([u64; 5]);

impl Codes {
    fn add(&mut self, r: i64) {
        let i = match r {
            0 => 0,
            -1 => 1,
            -2 => 2,
            -3 => 3,
            _ => 4,
        };
        self.0[i] += 1;
    }
}

impl fmt::Display for Codes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [ok, ns, inv, den, other] = self.0;
        write!(
            f,
            "{} made: {ok} succeeded, {ns} not supported, {inv} invalid, {den} denied, {other} other",
            ok + ns + inv + den + other
        )
    }
}

/// Every call a hostile domain may make that does not stop or restart itself: hyperlaunch's
/// (known and unknown ids), PSCI's and SMCCC's, and ids nobody defines.
fn call_ids() -> impl Iterator<Item = u32> {
    const SELF_STOPPING: [u32; 6] =
        [0x8400_0002, 0x8400_0008, 0x8400_0009, 0x8400_0012, 0xc400_0012, 0xc400_000e];
    let hl = 0xc600_0000..0xc600_0018;
    let psci32 = 0x8400_0000..0x8400_0016;
    let psci64 = 0xc400_0000..0xc400_0016;
    let other = [
        0x8000_0000,
        0x8000_0001,
        0x8000_8000,
        0x8000_7fff,
        0x8600_ff01,
        0xbf00_ff01,
        0xdead_beef,
        0xffff_ffff,
        0,
    ];
    hl.chain(psci32).chain(psci64).chain(other).filter(|f| !SELF_STOPPING.contains(f))
}

/// Hostile argument registers: zeros, all ones, the sign bit, this domain's RAM and just
/// below it, the top of a 39-bit address space, and lengths that wrap.
const ARGS: [[u64; 4]; 6] = [
    [0; 4],
    [u64::MAX; 4],
    [1 << 63; 4],
    [0x4000_0000, 0x1000, 0x4000_0000, 0x1000],
    [0x3fff_ffff, u64::MAX - 0x10, 0x7f_ffff_f000, 0x1_0000],
    [2, 0x7f_ffff_ffff, u64::MAX, 1],
];

/// Accesses of every size to every offset of an emulated device window: how many were
/// answered, how many faulted.
fn sweep(base: u64, len: u64, step: u64, write: bool) -> (u64, u64) {
    let (mut ok, mut bad) = (0, 0);
    let mut off = 0;
    while off < len {
        let a = base + off;
        for size in [1u8, 2, 4, 8] {
            let r = faulted(|| {
                // SAFETY: accesses to an emulated device window (trapped): a fault is
                // recorded and the instruction skipped by the exception vector.
                unsafe {
                    match (size, write) {
                        (1, false) => {
                            asm!("ldrb {v:w}, [{a}]", a = in(reg) a, v = out(reg) _, options(nostack))
                        }
                        (2, false) => {
                            asm!("ldrh {v:w}, [{a}]", a = in(reg) a, v = out(reg) _, options(nostack))
                        }
                        (4, false) => {
                            asm!("ldr {v:w}, [{a}]", a = in(reg) a, v = out(reg) _, options(nostack))
                        }
                        (_, false) => asm!("ldr {v}, [{a}]", a = in(reg) a, v = out(reg) _, options(nostack)),
                        (1, true) => asm!("strb wzr, [{a}]", a = in(reg) a, options(nostack)),
                        (2, true) => asm!("strh wzr, [{a}]", a = in(reg) a, options(nostack)),
                        (4, true) => asm!("str wzr, [{a}]", a = in(reg) a, options(nostack)),
                        (_, true) => asm!("str xzr, [{a}]", a = in(reg) a, options(nostack)),
                    }
                }
            });
            if r.is_some() { bad += 1 } else { ok += 1 }
        }
        off += step;
    }
    (ok, bad)
}

/// Forms with no instruction syndrome on emulated devices (pairs, writeback): each must
/// fault. Returns (faulted, went through).
fn no_syndrome(addrs: &[u64]) -> (u64, u64) {
    let (mut bad, mut ok) = (0, 0);
    for &a in addrs {
        let forms: [&dyn Fn(); 4] = [
            // SAFETY (each): an access to an emulated device window that must fault; the
            // vector records it and skips the instruction.
            &|| unsafe {
                asm!("ldp {x}, {y}, [{a}]", a = in(reg) a, x = out(reg) _, y = out(reg) _, options(nostack))
            },
            &|| unsafe { asm!("stp xzr, xzr, [{a}]", a = in(reg) a, options(nostack)) },
            &|| unsafe {
                asm!("ldr {v}, [{a}], #8", a = inout(reg) a => _, v = out(reg) _, options(nostack))
            },
            &|| unsafe { asm!("str xzr, [{a}, #8]!", a = inout(reg) a => _, options(nostack)) },
        ];
        for f in forms {
            if faulted(f).is_some() { bad += 1 } else { ok += 1 }
        }
    }
    (bad, ok)
}

/// SIMD&FP and exclusive forms on emulated devices (no instruction syndrome either): each
/// must be refused with a data abort (EC 0x25), or, for a store-exclusive with no monitor
/// armed, fail without an access (the architecture lets it skip the access). Returns
/// (refused, store-exclusives failed, went through, other exceptions).
fn simd_exclusive(addrs: &[u64]) -> (u64, u64, u64, u64) {
    // SAFETY: CPACR_EL1.FPEN = 0b11: SIMD&FP instructions execute at EL0 and EL1 (the
    // accesses below must reach the hypervisor, not trap here).
    unsafe {
        asm!("mrs {t}, cpacr_el1", "orr {t}, {t}, #(3 << 20)", "msr cpacr_el1, {t}", "isb", t = out(reg) _)
    };
    let (mut refused, mut failed, mut ok, mut other) = (0, 0, 0, 0);
    let status = core::sync::atomic::AtomicU64::new(0);
    for &a in addrs {
        // The SIMD forms are encoded by hand (this guest is built without SIMD): x9 holds
        // the address, v0 the data (nothing else here uses the SIMD registers).
        let forms: [&dyn Fn(); 6] = [
            // SAFETY (each): an access to an emulated device window that must fault; the
            // vector records it and skips the instruction.
            // ldr q0, [x9]
            &|| unsafe { asm!(".inst 0x3dc00120", inout("x9") a => _, options(nostack)) },
            // str q0, [x9]
            &|| unsafe { asm!(".inst 0x3d800120", inout("x9") a => _, options(nostack)) },
            // ld1 {v0.16b}, [x9]
            &|| unsafe { asm!(".inst 0x4c407120", inout("x9") a => _, options(nostack)) },
            // st1 {v0.16b}, [x9]
            &|| unsafe { asm!(".inst 0x4c007120", inout("x9") a => _, options(nostack)) },
            &|| unsafe { asm!("ldxr {v}, [{a}]", a = in(reg) a, v = out(reg) _, options(nostack)) },
            &|| {
                let s: u64;
                // SAFETY: as above; the status register says whether it stored.
                unsafe {
                    asm!("mov {s}, #2", "stxr {s:w}, xzr, [{a}]", a = in(reg) a, s = out(reg) s, options(nostack))
                };
                status.store(s, core::sync::atomic::Ordering::SeqCst);
            },
        ];
        for (i, f) in forms.iter().enumerate() {
            status.store(0, core::sync::atomic::Ordering::SeqCst);
            match faulted(f) {
                None if i == 5 && status.load(core::sync::atomic::Ordering::SeqCst) == 1 => failed += 1,
                None => ok += 1,
                Some(esr) if esr >> 26 == 0x25 => refused += 1,
                Some(_) => other += 1,
            }
        }
    }
    (refused, failed, ok, other)
}

/// `hl.hostile=S`: attacks every guest interface in rounds for S seconds (at least one
/// round), printing what each attack got, round by round.
pub fn attack(name: &str, seconds: u64, ram: (u64, u64), vcpus: usize) {
    let (start, freq) = (crate::counter(), crate::frequency());
    let mut round = 0;
    crate::println!("{name}: hostile: start");
    loop {
        round += 1;
        for smc in [false, true] {
            let mut codes = Codes::default();
            for fid in call_ids() {
                for a in ARGS {
                    codes.add(call(smc, fid, a));
                }
            }
            crate::println!(
                "{name}: hostile: round {round}: calls by {}: {codes}",
                if smc { "SMC" } else { "HVC" }
            );
        }
        let (gicd, gicr, uart) =
            (crate::GICD, crate::GICR, crate::UART_BASE.load(core::sync::atomic::Ordering::Relaxed));
        for (what, base, len, step) in [
            ("GIC distributor", gicd, 0x1_0000, 4),
            ("GIC redistributor", gicr, 0x2_0000, 4),
            ("UART", uart, 0x1000, 1),
        ] {
            let (r_ok, r_bad) = sweep(base, len, step, false);
            crate::println!("{name}: hostile: round {round}: {what} reads: {r_ok} answered, {r_bad} faulted");
        }
        // Writes of zeros over the distributor's configuration (its own interrupts only).
        let (w_ok, w_bad) = sweep(gicd + 0x80, 0xf80, 4, true);
        crate::println!(
            "{name}: hostile: round {round}: GIC distributor writes: {w_ok} answered, {w_bad} faulted"
        );
        let (bad, ok) = no_syndrome(&[gicd, gicr, uart]);
        crate::println!(
            "{name}: hostile: round {round}: pair and writeback accesses: {bad} faulted, {ok} WENT THROUGH"
        );
        let (bad, failed, ok, other) = simd_exclusive(&[gicd, gicr, uart]);
        crate::println!(
            "{name}: hostile: round {round}: SIMD and exclusive accesses: {bad} refused, {failed} store-exclusive(s) failed without an access, {ok} WENT THROUGH, {other} OTHER"
        );
        // Addresses it was not given: low memory, the host's GIC and UART, just below and
        // past its RAM, the top of the IPA space.
        let probes = [0, 0x1000, 0x0800_0000, 0x0900_0000, ram.0 - 0x1000, ram.0 + ram.1, 0x7f_ffff_f000];
        let mut refused = 0;
        for &a in &probes {
            refused += u64::from(crate::probe_read(a).is_err()) + u64::from(crate::probe_write(a).is_err());
        }
        crate::println!(
            "{name}: hostile: round {round}: {refused} of {} accesses outside its memory refused",
            2 * probes.len()
        );
        // Floods: SGIs to its other vCPU (or itself), doorbells to a store that may not be.
        let target = if vcpus > 1 { 0b10 } else { 0b01 };
        for _ in 0..20_000 {
            // SAFETY: ICC_SGI1R_EL1 (trapped): SGI 3 to a vCPU of its own.
            unsafe { asm!("msr icc_sgi1r_el1, {v}", v = in(reg) (3u64 << 24) | target, options(nostack)) };
        }
        let mut codes = Codes::default();
        for _ in 0..20_000 {
            codes.add(call(false, 0xc600_000e, [0, 0, 0, 0]));
        }
        crate::println!("{name}: hostile: round {round}: 20000 SGIs sent; store doorbells {codes}");
        if (crate::counter() - start) / freq >= seconds {
            break;
        }
    }
    crate::println!("{name}: hostile: done after {round} round(s)");
}
