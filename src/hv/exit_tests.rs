//! Host tests of exit handling in the run-time core: what each decoded exit becomes, and
//! the run loop's own way for a trapped TLB invalidation giving the same.

use alloc::vec;

use super::exits::{End, Outcome};
use super::fake::{domain, system};
use super::vcpu::GuestRegs;
use crate::hypercall as hc;
use crate::trap::{Access, Exit};

#[test]
fn exits_become_outcomes() {
    let s = system(|f| vec![domain(f, 1, &[0], 0, 0, false)], None, None);
    s.sys.start();
    s.enter(1);
    let d = s.d(1);
    let mut regs = GuestRegs { pc: 0x1000, pstate: crate::trap::EL1H_MASKED, ..Default::default() };
    // Outside its memory and devices: a synchronous external abort with the VA as FAR.
    let probe = Exit::DataAbort { ipa: 0x900_0000, va: 0xdead_0000, write: true, access: None, perm: false };
    assert_eq!(
        s.sys.handle_exit(d, 0, probe, &mut regs, false),
        Outcome::Inject { esr: crate::trap::external_abort_esr(false, true), far: 0xdead_0000 }
    );
    assert_eq!(regs.pc, 0x1000, "the access is not skipped");
    // A byte to its UART reaches the console.
    let access = Access { write: true, size: 4, reg: 3, sign_extend: false, sixty_four: false, step: 4 };
    regs.x[3] = u64::from(b'h');
    let uart = crate::guest::GuestMap::XEN.vuart;
    let tx = Exit::DataAbort { ipa: uart, va: 0, write: true, access: Some(access), perm: false };
    assert_eq!(s.sys.handle_exit(d, 0, tx, &mut regs, false), Outcome::Resume);
    assert_eq!((s.fake.output_of(1).as_str(), regs.pc), ("h", 0x1004));
    // CNTP_CTL_EL0 read into x5 reads 0.
    regs.x[5] = 77;
    let cntp = (3 << 20) | (1 << 17) | (3 << 14) | (14 << 10) | (5 << 5) | (2 << 1) | 1;
    assert_eq!(s.sys.handle_exit(d, 0, Exit::SysReg { iss: cntp }, &mut regs, false), Outcome::Resume);
    assert_eq!((regs.x[5], regs.pc), (0, 0x1008));
    // tlbi vae1is, x2: done locally with x2, counted as a system register and a TLBI.
    regs.x[2] = 0x1234;
    let tlbi = (1 << 20) | (1 << 17) | (8 << 10) | (2 << 5) | (3 << 1);
    assert_eq!(
        s.sys.handle_exit(d, 0, Exit::SysReg { iss: tlbi }, &mut regs, false),
        Outcome::Tlbi { op: crate::trap::TlbiOp::Va, xt: 0x1234 }
    );
    assert_eq!(regs.pc, 0x100c);
    let counts = |d: &crate::hv::domain::Domain| {
        use core::sync::atomic::Ordering::Relaxed;
        (d.exits.tlbi.load(Relaxed), d.exits.sysreg.load(Relaxed))
    };
    // (The read of CNTP_CTL_EL0 above was the first system register exit.)
    assert_eq!(counts(d), (1, 2));
    // The run loop's way for the same exit, from its syndrome: the same outcome and counts.
    let esr = (u64::from(crate::trap::ec::SYS64) << 26) | (1 << 25) | u64::from(tlbi);
    assert_eq!(crate::hv::exits::light_tlbi(d, esr, &mut regs), Some((crate::trap::TlbiOp::Va, 0x1234)));
    assert_eq!((regs.pc, counts(d)), (0x1010, (2, 3)));
    // Anything else (here a read of CNTP_CTL_EL0) is left to the full way, untouched.
    let cntp_esr = (u64::from(crate::trap::ec::SYS64) << 26) | (1 << 25) | u64::from(cntp);
    assert_eq!(crate::hv::exits::light_tlbi(d, cntp_esr, &mut regs), None);
    assert_eq!((regs.pc, counts(d)), (0x1010, (2, 3)));
    regs.pc = 0x1008;
    // Another system register: undefined.
    let other = (3 << 20) | (1 << 1) | 1;
    assert_eq!(
        s.sys.handle_exit(d, 0, Exit::SysReg { iss: other }, &mut regs, false),
        Outcome::Inject { esr: crate::trap::undefined_esr(), far: 0 }
    );
    // WFI: waits alone on its CPU, yields a shared one, returns at once with an interrupt.
    // A 16-bit WFI (AArch32 EL0, T32) is stepped over by 2 bytes.
    let pc = regs.pc;
    assert_eq!(s.sys.handle_exit(d, 0, Exit::Wfi { step: 2 }, &mut regs, false), Outcome::Wait);
    assert_eq!(regs.pc, pc + 2);
    assert_eq!(s.sys.handle_exit(d, 0, Exit::Wfi { step: 4 }, &mut regs, false), Outcome::Wait);
    assert_eq!(s.sys.handle_exit(d, 0, Exit::Wfi { step: 4 }, &mut regs, true), Outcome::Leave(End::Yield));
    d.raise(&*s.fake, crate::vgic::PRIVATE + 5);
    let _ = d.vgic.lock().dist_access(0, 0, 4, Some(3)); // distributor on
    let _ = d.vgic.lock().dist_access(0, 0x104, 4, Some(1 << 5)); // ISENABLER1: SPI 37
    assert_eq!(s.sys.handle_exit(d, 0, Exit::Wfi { step: 4 }, &mut regs, false), Outcome::Resume);
    // PSCI: CPU_ON of a vCPU it does not have; an unknown SMCCC call.
    assert_eq!(s.hvc(1, 0, [0xc400_0003, 0x101, 0, 0]).1.x[0] as i64, crate::psci::INVALID_PARAMETERS);
    assert_eq!(s.hvc(1, 0, [0x8400_0050, 0, 0, 0]).1.x[0] as i64, crate::psci::NOT_SUPPORTED);
    assert_eq!(s.hvc(1, 0, [hc::HL_VERSION as u64, 0, 0, 0]).1.x[0] as i64, hc::VERSION);
}
