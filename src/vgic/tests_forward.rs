//! Host tests of forwarded physical interrupts: linked to their virtual ones, reported
//! when the guest is done, and never lost when they fire again before the fold-back.

use super::regs::CTLR_GRP1A;
use super::tests::{lr_state, write};
use super::*;

#[test]
fn forwarded_interrupts_are_reported_when_the_guest_is_done() {
    let mut g = VGic::new(1, 64);
    write(&mut g, 0, CTLR_GRP1A);
    write(&mut g, 0x104, 1 << 2); // SPI 34 (the RTC on QEMU virt)
    g.forward(34);
    assert_eq!(g.set_level(0, 34, true), 1);
    let f = g.flush(0, 4);
    assert_eq!(f.count, 1);
    assert!(f.lrs[0].pending && f.lrs[0].hw == Some(34));
    assert_eq!(f.lrs[0].to_v3() >> 61 & 1, 1, "HW bit");
    assert_eq!(f.lrs[0].to_v3() >> 32 & 0x1fff, 34, "physical INTID");
    // Acknowledged (active): not done yet.
    let mut now = lr_state(&f);
    now[0] = Some(Lr { pending: false, active: true, ..f.lrs[0] });
    assert!(g.sync(0, &f, &now).is_empty());
    // Deactivated: done, and its line is low until the device raises it again. While it
    // is active it is not pending too: its physical one stays active until then.
    let f = g.flush(0, 4);
    assert!(f.lrs[0].active && !f.lrs[0].pending, "{:?}", f.lrs[0]);
    assert_eq!(g.sync(0, &f, &[None]), [34]);
    assert!(!g.has_pending(0));
    assert_eq!(g.flush(0, 4).count, 0);
    // An ordinary interrupt is never reported.
    write(&mut g, 0x104, 1 << 3);
    g.raise(0, 35);
    let f = g.flush(0, 4);
    assert!(f.lrs[0].hw.is_none());
    assert!(g.sync(0, &f, &[None]).is_empty());
}

#[test]
fn a_forwarded_interrupt_firing_again_before_the_fold_back_is_not_lost() {
    // Two vCPUs; the SPI is taken on one CPU and routed to vCPU 1, which runs on another.
    let mut g = VGic::new(2, 64);
    write(&mut g, 0, CTLR_GRP1A);
    write(&mut g, 0x6000 + 34 * 8, 1); // GICD_IROUTER34: vCPU 1
    write(&mut g, 0x104, 1 << 2);
    g.forward(34);
    assert_eq!(g.set_level(0, 34, true), 0b10);
    let f = g.flush(1, 4);
    assert!(f.lrs[0].pending && f.lrs[0].hw == Some(34));
    // The guest deactivates it through the link; the device still asks, so the physical
    // one fires again, on the other CPU, before vCPU 1 exits: vCPU 1 is woken for it.
    assert_eq!(g.set_level(0, 34, true), 0b10, "woken for the new one");
    assert_eq!(g.set_level(0, 34, true), 0, "noted once");
    assert_eq!(g.sync(1, &f, &[None]), [34]);
    let f = g.flush(1, 4);
    assert_eq!(f.count, 1, "the new one is delivered");
    assert!(f.lrs[0].pending && f.lrs[0].hw == Some(34));
    // That one ends with nothing new: the line drops.
    assert_eq!(g.sync(1, &f, &[None]), [34]);
    assert_eq!(g.flush(1, 4).count, 0);
}
