//! Host tests of when raising a virtual interrupt interrupts the target vCPU's physical
//! CPU: when the vCPU is on it, and once when it waits off it in WFI; never for a vCPU
//! that is off its CPU and will see the interrupt when it next runs.

use alloc::boxed::Box;
use alloc::vec;

use super::exits::Outcome;
use super::fake::{Op, Sys, domain, system};
use super::vcpu::{Context, GuestRegs, Saved};
use crate::psci::Power;
use crate::trap::Exit;

/// `msr icc_sgi1r_el1, x3` as the syndrome's ISS.
const SGI1R_ISS: u32 = (3 << 20) | (5 << 17) | (12 << 10) | (3 << 5) | (11 << 1);

/// DOM1 with vCPU 0 on CPU 0 (running) and vCPU 1 on CPU 1, powered on.
fn sys() -> Sys {
    let s = system(|f| vec![domain(f, 1, &[0, 1], 0, 0, false)], None, None);
    s.sys.start();
    s.enter(1);
    *s.d(1).vcpus[1].power.lock() = Power::On;
    s
}

/// vCPU 0 sends SGI `sgi` to vCPU 1 `n` times; the kicks CPU 1 got.
fn sgis(s: &Sys, sgi: u64, n: usize) -> usize {
    s.fake.clear_ops();
    let mut regs = GuestRegs::default();
    regs.x[3] = (sgi << 24) | 0b10;
    for _ in 0..n {
        let o = s.sys.handle_exit(s.d(1), 0, Exit::SysReg { iss: SGI1R_ISS }, &mut regs, false);
        assert_eq!(o, Outcome::Resume);
    }
    s.fake.ops().iter().filter(|o| **o == Op::Kick(1)).count()
}

fn off_cpu(s: &Sys) {
    *s.d(1).vcpus[1].saved.lock() =
        Some(Box::new(Saved { regs: GuestRegs::default(), ctx: Context::reset() }));
}

#[test]
fn a_vcpu_on_its_cpu_is_kicked_once_per_new_pending_interrupt() {
    let s = sys();
    // On its CPU: the first SGI makes it pending and kicks; the rest of a flood change
    // nothing and kick nothing.
    assert_eq!(sgis(&s, 3, 1000), 1);
    assert_eq!(sgis(&s, 4, 1), 1, "another SGI: another kick");
}

#[test]
fn a_runnable_vcpu_off_its_cpu_is_not_kicked() {
    // Off its CPU and runnable (a shared CPU runs another domain's vCPU): the interrupt
    // waits for its turn; the other domain's vCPU is not made to exit.
    let s = sys();
    off_cpu(&s);
    assert_eq!(sgis(&s, 3, 1), 0);
    assert!(s.sys.due(0, 1, 0), "it runs at its next turn and takes the SGI");
}

#[test]
fn a_vcpu_blocked_in_wfi_off_its_cpu_is_woken_once() {
    let s = sys();
    off_cpu(&s);
    let v = &s.d(1).vcpus[1];
    v.blocked.store(true, core::sync::atomic::Ordering::SeqCst);
    assert!(!s.sys.due(0, 1, 0), "blocked with nothing pending");
    assert_eq!(sgis(&s, 3, 1), 1, "its CPU's scheduler must look again");
    assert!(s.sys.due(0, 1, 0));
    // Until it runs and blocks again, more interrupts kick nothing.
    assert_eq!(sgis(&s, 4, 1), 0);
    assert_eq!(sgis(&s, 5, 1), 0);
}

#[test]
fn a_vcpu_that_is_off_is_not_kicked() {
    let s = sys();
    *s.d(1).vcpus[1].power.lock() = Power::Off;
    assert_eq!(sgis(&s, 3, 1), 0);
}
