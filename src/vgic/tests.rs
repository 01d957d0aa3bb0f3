//! Host tests of the virtual GIC: registers, routing, SGIs, list-register choice and encodings.

use super::regs::{CTLR_GRP1A, WAKER_ASLEEP, WAKER_SLEEP, reg};
use super::*;
use crate::testrng::xorshift;

pub(super) fn write(g: &mut VGic, off: u64, v: u64) -> u64 {
    match g.dist_access(0, off, 4, Some(v)) {
        Access::Done { kick, .. } => kick,
        Access::Unknown => panic!("unknown offset {off:#x}"),
    }
}

fn read(g: &mut VGic, off: u64) -> u64 {
    match g.dist_access(0, off, 4, None) {
        Access::Done { value, .. } => value,
        Access::Unknown => panic!("unknown offset {off:#x}"),
    }
}

fn rd(g: &mut VGic, off: u64, size: u8) -> u64 {
    match g.redist_access(off, size, None) {
        Access::Done { value, .. } => value,
        Access::Unknown => panic!("unknown offset {off:#x}"),
    }
}

fn rw(g: &mut VGic, off: u64, v: u64) -> u64 {
    match g.redist_access(off, 4, Some(v)) {
        Access::Done { kick, .. } => kick,
        Access::Unknown => panic!("unknown offset {off:#x}"),
    }
}

/// A GIC the way Linux leaves it: distributor on, SPI `spi` enabled at priority
/// `prio` routed to vCPU 0, PPIs enabled.
fn linux_like(vcpus: usize) -> VGic {
    let mut g = VGic::new(vcpus, 32);
    write(&mut g, 0x0, CTLR_GRP1A | CTLR_ARE_NS);
    for c in 0..vcpus as u64 {
        rw(&mut g, c * GICR_STRIDE + 0x1_0100, 0xffff_ffff);
        // priorities 0xa0 for all SGIs/PPIs
        for r in 0..8 {
            rw(&mut g, c * GICR_STRIDE + 0x1_0400 + r * 4, 0xa0a0_a0a0);
        }
    }
    g
}

/// Runs a vCPU with `nr` list registers: the guest acknowledges every pending one it
/// is given (active), and the callback can change what it does.
pub(super) fn lr_state(f: &Flush) -> Vec<Option<Lr>> {
    f.lrs().iter().map(|l| Some(*l)).collect()
}

#[test]
fn identification_registers() {
    let mut g = VGic::new(3, 40);
    // 64 SPIs -> INTIDs up to 95: ITLinesNumber 2.
    assert_eq!(read(&mut g, reg::TYPER) & 0x1f, 2);
    assert_eq!(g.limit(), 96);
    assert_eq!((read(&mut g, reg::TYPER) >> 19) & 0x1f, 9);
    assert_eq!(read(&mut g, reg::PIDR2) >> 4 & 0xf, 3);
    assert_eq!(read(&mut g, reg::CTLR), CTLR_ARE_NS);
    // Redistributors: affinity, processor number and Last on the final one only.
    for cpu in 0..3u64 {
        let typer = rd(&mut g, cpu * GICR_STRIDE + reg::GICR_TYPER, 8);
        assert_eq!(typer >> 32, cpu, "affinity of {cpu}");
        assert_eq!((typer >> 8) & 0xffff, cpu);
        assert_eq!(typer & (1 << 4) != 0, cpu == 2, "Last of {cpu}");
        assert_eq!(rd(&mut g, cpu * GICR_STRIDE + reg::PIDR2, 4) >> 4 & 0xf, 3);
    }
    // A 32-bit read of the upper half.
    assert_eq!(rd(&mut g, 2 * GICR_STRIDE + 0xc, 4), 2);
    assert_eq!(g.redist_access(3 * GICR_STRIDE, 4, None), Access::Unknown);
}

#[test]
fn waker_handshake() {
    let mut g = VGic::new(1, 32);
    assert_eq!(rd(&mut g, reg::GICR_WAKER, 4), WAKER_SLEEP | WAKER_ASLEEP);
    rw(&mut g, reg::GICR_WAKER, 0);
    assert_eq!(rd(&mut g, reg::GICR_WAKER, 4) & WAKER_ASLEEP, 0);
}

#[test]
fn enable_pending_registers_round_trip() {
    let mut g = VGic::new(2, 32);
    // SPI 33: enable, check set/clear views.
    write(&mut g, 0x104, 1 << 1);
    assert_eq!(read(&mut g, 0x104), 1 << 1);
    assert_eq!(read(&mut g, 0x184), 1 << 1);
    write(&mut g, 0x184, 1 << 1);
    assert_eq!(read(&mut g, 0x104), 0);
    // Pending set and clear.
    write(&mut g, 0x204, 1 << 5);
    assert_eq!(read(&mut g, 0x284), 1 << 5);
    write(&mut g, 0x284, 1 << 5);
    assert_eq!(read(&mut g, 0x204), 0);
    // Priority bytes: a byte write touches only its interrupt.
    g.dist_access(0, 0x400 + 34, 1, Some(0x80));
    assert_eq!(read(&mut g, 0x400 + 32), 0x0080_0000);
    // Config: SGIs stay edge, SPI config sticks.
    write(&mut g, 0xc08, 0x2 << 2);
    assert_eq!(read(&mut g, 0xc08), 0x2 << 2);
    rw(&mut g, 0x1_0c00, 0);
    assert_eq!(rd(&mut g, 0x1_0c00, 4), 0xaaaa_aaaa);
    // Banked registers in the distributor read as zero under affinity routing.
    write(&mut g, 0x100, 0xffff_ffff);
    assert_eq!(read(&mut g, 0x100), 0);
    // Beyond the last SPI: ignored.
    assert_eq!(read(&mut g, 0x10c), 0);
    // Unknown offsets are reported.
    assert_eq!(g.dist_access(0, 0x5000, 4, None), Access::Unknown);
}

#[test]
fn routing_follows_irouter() {
    let mut g = linux_like(3);
    write(&mut g, 0x104, 1); // SPI 32 enabled
    let k = g.dist_access(0, reg::IROUTER + 32 * 8, 8, Some(2));
    assert_eq!(k, Access::Done { value: 0, kick: 0b101 });
    assert_eq!(g.dist_access(0, reg::IROUTER + 32 * 8, 8, None), Access::Done { value: 2, kick: 0 });
    assert_eq!(g.set_level(0, 32, true), 0b100);
    assert!(!g.has_pending(0));
    assert!(g.has_pending(2));
    assert_eq!(g.flush(0, 4).count, 0);
    let f = g.flush(2, 4);
    assert_eq!(f.count, 1);
    assert_eq!(f.lrs[0].intid, 32);
    // 1-of-N and unknown affinities route to vCPU 0.
    g.sync(2, &f, &lr_state(&f));
    g.dist_access(0, reg::IROUTER + 32 * 8, 8, Some(1 << 31));
    assert!(g.has_pending(0));
}

#[test]
fn sgi_targets_list_and_broadcast() {
    let mut g = linux_like(4);
    // SGI 3 to vCPUs 1 and 3 (Aff1 0).
    let kick = g.sgi1r(0, (3 << 24) | 0b1010);
    assert_eq!(kick, 0b1010);
    assert!(g.has_pending(1) && g.has_pending(3) && !g.has_pending(0) && !g.has_pending(2));
    // Broadcast to all but self.
    let kick = g.sgi1r(2, (5 << 24) | (1 << 40));
    assert_eq!(kick, 0b1011);
    // A target that does not exist, or Aff2 set: nothing.
    assert_eq!(g.sgi1r(0, (1 << 24) | (1 << 16) | 1), 0);
    assert_eq!(g.sgi1r(0, (1 << 24) | (1 << 32) | 1), 0);
}

#[test]
fn a_flood_of_sgis_wakes_the_target_once_per_delivery() {
    let mut g = linux_like(2);
    // The first SGI 3 to vCPU 1 wakes it; the next thousand, still pending, do not.
    assert_eq!(g.sgi1r(0, (3 << 24) | 0b10), 0b10);
    for _ in 0..1000 {
        assert_eq!(g.sgi1r(0, (3 << 24) | 0b10), 0);
    }
    // Once vCPU 1 has taken it (flushed into a list register and acknowledged), the next
    // one wakes it again; another SGI number is a new pending state too.
    let f = g.flush(1, 4);
    g.sync(1, &f, &[None]);
    assert_eq!(g.sgi1r(0, (3 << 24) | 0b10), 0b10);
    assert_eq!(g.sgi1r(0, (4 << 24) | 0b10), 0b10);
    // The same for a doorbell SPI raised by the hypervisor.
    assert_eq!(g.raise(0, 40), 1);
    assert_eq!(g.raise(0, 40), 0);
}

#[test]
fn vcpu_affinities_match_sgi_decode() {
    assert_eq!(vcpu_mpidr(0), 0x8000_0000);
    assert_eq!(vcpu_mpidr(3), 0x8000_0003);
    assert_eq!(vcpu_mpidr(17), 0x8000_0101);
    let mut g = linux_like(20);
    assert_eq!(g.sgi1r(0, (2 << 24) | (1 << 16) | 0b10), 1 << 17);
}

#[test]
fn priority_order_when_list_registers_are_full() {
    let mut g = linux_like(1);
    for (n, prio) in [(0u32, 0xa0u8), (1, 0x20), (2, 0x60), (3, 0x40), (4, 0x80), (5, 0x10)] {
        g.redist_access(0x1_0400 + u64::from(n), 1, Some(u64::from(prio)));
        g.raise(0, n);
    }
    let f = g.flush(0, 4);
    assert!(f.underflow);
    let ids: Vec<u32> = f.lrs().iter().map(|l| l.intid).collect();
    assert_eq!(ids, [5, 1, 3, 2]);
    // The guest takes none of them; the next flush gives the same choice, the two
    // left out still pending.
    g.sync(0, &f, &lr_state(&f));
    let f2 = g.flush(0, 4);
    assert_eq!(f2.lrs().iter().map(|l| l.intid).collect::<Vec<_>>(), [5, 1, 3, 2]);
    // It handles them all: the next flush brings the rest.
    g.sync(0, &f2, &[None, None, None, None]);
    let f3 = g.flush(0, 4);
    assert!(!f3.underflow);
    assert_eq!(f3.lrs().iter().map(|l| l.intid).collect::<Vec<_>>(), [4, 0]);
}

#[test]
fn a_higher_priority_arrival_displaces_a_pending_one() {
    let mut g = linux_like(1);
    for n in 0..5u32 {
        g.redist_access(0x1_0400 + u64::from(n), 1, Some(0x80));
    }
    for n in 0..4 {
        g.raise(0, n);
    }
    let f = g.flush(0, 4);
    g.sync(0, &f, &lr_state(&f));
    g.redist_access(0x1_0404, 1, Some(0x10));
    g.raise(0, 4);
    let f = g.flush(0, 4);
    assert_eq!(f.lrs[0].intid, 4);
    assert!(f.underflow);
}

#[test]
fn active_interrupts_keep_their_list_register() {
    let mut g = linux_like(1);
    for n in 0..6u32 {
        g.redist_access(0x1_0400 + u64::from(n), 1, Some(if n == 5 { 0xf0 } else { 0x10 }));
    }
    g.raise(0, 5);
    let f = g.flush(0, 4);
    // The guest acknowledges SGI 5: active.
    let mut now = lr_state(&f);
    now[0] = Some(Lr { pending: false, active: true, ..f.lrs[0] });
    g.sync(0, &f, &now);
    // Four higher-priority SGIs arrive: the active one still gets a register.
    for n in 0..4 {
        g.raise(0, n);
    }
    let f = g.flush(0, 4);
    assert_eq!(f.lrs[0].intid, 5);
    assert!(f.lrs[0].active);
    assert_eq!(f.count, 4);
    assert!(f.underflow);
}

#[test]
fn disabling_an_active_interrupt_keeps_it_until_deactivated() {
    // bao #371: the UART's interrupt, disabled while active, was dropped.
    let mut g = linux_like(1);
    write(&mut g, 0x104, 1);
    g.set_level(0, 32, true);
    let f = g.flush(0, 4);
    assert_eq!(f.lrs[0].intid, 32);
    let mut now = lr_state(&f);
    now[0] = Some(Lr { pending: false, active: true, ..f.lrs[0] });
    g.sync(0, &f, &now);
    // The driver masks it while handling: still in the list registers, active.
    write(&mut g, 0x184, 1);
    let f = g.flush(0, 4);
    assert_eq!(f.count, 1);
    assert!(f.lrs[0].active && !f.lrs[0].pending);
    // The line drops, the guest deactivates, re-enables: nothing pending.
    g.set_level(0, 32, false);
    g.sync(0, &f, &[None]);
    write(&mut g, 0x104, 1);
    assert!(!g.has_pending(0));
    assert_eq!(g.flush(0, 4).count, 0);
}

#[test]
fn level_interrupt_still_asserted_after_eoi_comes_back() {
    let mut g = linux_like(1);
    write(&mut g, 0x104, 1);
    g.set_level(0, 32, true);
    let f = g.flush(0, 4);
    g.sync(0, &f, &[None]); // handled, but the line is still high
    let f = g.flush(0, 4);
    assert_eq!(f.count, 1);
    assert!(f.lrs[0].pending);
    // Line drops while still pending in the register: no longer pending afterwards.
    g.set_level(0, 32, false);
    g.sync(0, &f, &lr_state(&f));
    assert!(!g.has_pending(0));
}

#[test]
fn edge_raised_again_while_active_is_pending_and_active() {
    let mut g = linux_like(1);
    g.raise(0, VTIMER_PPI);
    let f = g.flush(0, 4);
    let mut now = lr_state(&f);
    now[0] = Some(Lr { pending: false, active: true, ..f.lrs[0] });
    g.raise(0, VTIMER_PPI); // arrives while the LR holds it
    g.sync(0, &f, &now);
    let f = g.flush(0, 4);
    assert!(f.lrs[0].pending && f.lrs[0].active);
    // Two raises while pending coalesce into one.
    g.sync(0, &f, &[None]);
    g.raise(0, VTIMER_PPI);
    g.raise(0, VTIMER_PPI);
    let f = g.flush(0, 4);
    assert_eq!(f.count, 1);
    g.sync(0, &f, &[None]);
    assert_eq!(g.flush(0, 4).count, 0);
}

#[test]
fn distributor_and_group_enables_gate_spis_not_ppis() {
    let mut g = VGic::new(1, 32);
    g.redist_access(0x1_0100, 4, Some(1 << VTIMER_PPI));
    g.dist_access(0, 0x104, 4, Some(1));
    g.set_level(0, 32, true);
    g.raise(0, VTIMER_PPI);
    // Distributor off: only the PPI.
    let f = g.flush(0, 4);
    assert_eq!(f.lrs().iter().map(|l| l.intid).collect::<Vec<_>>(), [VTIMER_PPI]);
    g.sync(0, &f, &lr_state(&f));
    write(&mut g, 0, CTLR_GRP1A);
    assert_eq!(g.flush(0, 4).count, 2);
}

#[test]
fn an_spi_held_by_one_vcpu_is_not_given_to_another() {
    let mut g = linux_like(2);
    write(&mut g, 0x104, 1);
    g.raise(0, 32);
    let f0 = g.flush(0, 4);
    assert_eq!(f0.count, 1);
    // Re-routed to vCPU 1 while vCPU 0 holds it active.
    g.dist_access(0, reg::IROUTER + 32 * 8, 8, Some(1));
    g.raise(0, 32);
    assert_eq!(g.flush(1, 4).count, 0);
    let mut now = lr_state(&f0);
    now[0] = Some(Lr { pending: false, active: true, ..f0.lrs[0] });
    g.sync(0, &f0, &now);
    // vCPU 0 must still deactivate it; the new pending goes to vCPU 1 once released.
    let f0 = g.flush(0, 4);
    assert!(f0.lrs[0].active);
    g.sync(0, &f0, &[None]);
    let f1 = g.flush(1, 4);
    assert_eq!(f1.count, 1);
    assert!(f1.lrs[0].pending);
}

#[test]
fn a_deactivation_by_another_vcpu_leaves_the_holders_register_its_own() {
    // vCPU 0 holds SPI 32 active in a list register, not folded back yet; vCPU 1 clears
    // its active state through the distributor. vCPU 0's register still says active: at
    // its fold-back the SPI is vCPU 0's again, and not offered to vCPU 1 meanwhile.
    let mut g = linux_like(2);
    write(&mut g, 0x104, 1);
    g.raise(0, 32);
    let f0 = g.flush(0, 4);
    g.dist_access(1, reg::IROUTER + 32 * 8, 8, Some(1));
    g.dist_access(1, 0x384, 4, Some(1)); // GICD_ICACTIVER1: SPI 32
    g.raise(0, 32);
    assert_eq!(g.flush(1, 4).count, 0, "still in vCPU 0's register");
    let mut now = lr_state(&f0);
    now[0] = Some(Lr { pending: false, active: true, ..f0.lrs[0] });
    g.sync(0, &f0, &now);
    assert!(g.flush(0, 4).lrs[0].active);
    // The same for vCPU 0's linked timer, cleared through its redistributor by anyone:
    // the physical one is not released while vCPU 0's register has it.
    g.raise_linked(0, VTIMER_PPI);
    let f0 = g.flush(0, 4);
    let k = f0.lrs().iter().position(|l| l.intid == VTIMER_PPI).unwrap();
    rw(&mut g, 0x1_0380, 1 << VTIMER_PPI); // GICR_ICACTIVER0 of vCPU 0
    let mut now = lr_state(&f0);
    now[k] = Some(Lr { pending: false, active: true, ..f0.lrs[k] });
    g.sync(0, &f0, &now);
    assert!(g.linked_active(0, VTIMER_PPI));
    assert_eq!(g.flush(0, 4).release, None);
}

#[test]
fn list_register_encodings_round_trip() {
    let lr = Lr {
        intid: 27,
        pending: true,
        active: true,
        priority: 0xa0,
        group1: true,
        hw: Some(27),
        eoi: false,
        source: 0,
    };
    assert_eq!(Lr::from_v3(lr.to_v3()), Some(lr));
    assert_eq!(lr.to_v3() >> 62, 3);
    assert_eq!(Lr::from_v2(lr.to_v2()), Some(lr));
    let sw = Lr {
        intid: 1000,
        pending: true,
        active: false,
        priority: 0x18,
        group1: false,
        hw: None,
        eoi: true,
        source: 0,
    };
    assert_eq!(Lr::from_v3(sw.to_v3()), Some(sw));
    assert_eq!(Lr::from_v2(sw.to_v2()).map(|l| l.intid), Some(1000));
    assert_eq!(Lr::from_v3(0), None);
    assert_eq!(Lr::from_v2(0), None);
}

#[test]
fn the_timer_interrupt_is_linked_while_its_physical_one_is_active() {
    let mut g = linux_like(1);
    // Made pending by software (not the physical timer): no link.
    g.raise(0, VTIMER_PPI);
    let f = g.flush(0, 4);
    assert_eq!(f.lrs[0].hw, None);
    g.sync(0, &f, &[None]);
    // The physical timer fired: linked, its physical one active until the guest ends it.
    g.raise_linked(0, VTIMER_PPI);
    assert!(g.linked_active(0, VTIMER_PPI));
    let f = g.flush(0, 4);
    assert_eq!((f.lrs[0].hw, f.release), (Some(VTIMER_PPI), None));
    // Acknowledged when the vCPU exits: still active, still linked.
    let mut now = lr_state(&f);
    now[0] = Some(Lr { pending: false, active: true, ..f.lrs[0] });
    g.sync(0, &f, &now);
    assert!(g.linked_active(0, VTIMER_PPI));
    let f = g.flush(0, 4);
    assert!(f.lrs[0].active && f.lrs[0].hw == Some(VTIMER_PPI));
    // Deactivated by the guest: the hardware ended the physical one; nothing to release.
    g.sync(0, &f, &[None]);
    assert!(!g.linked_active(0, VTIMER_PPI));
    assert_eq!(g.flush(0, 4).release, None);
}

#[test]
fn a_linked_interrupt_the_guest_clears_itself_releases_the_physical_one() {
    let mut g = linux_like(1);
    g.raise_linked(0, VTIMER_PPI);
    let f = g.flush(0, 4);
    g.sync(0, &f, &lr_state(&f)); // not taken yet: pending in the model again
    assert!(g.linked_active(0, VTIMER_PPI));
    rw(&mut g, 0x1_0180, 1 << VTIMER_PPI); // GICR_ICENABLER0
    assert_eq!(g.flush(0, 4).release, None, "disabled but pending: the physical one stays active");
    rw(&mut g, 0x1_0280, 1 << VTIMER_PPI); // GICR_ICPENDR0
    assert_eq!(g.flush(0, 4).release, Some(VTIMER_PPI), "the physical timer may fire again");
    assert!(!g.linked_active(0, VTIMER_PPI));
    assert_eq!(g.flush(0, 4).release, None, "released once");
    // Taken and active, then deactivated through the redistributor instead of the list
    // register: released too.
    rw(&mut g, 0x1_0100, 1 << VTIMER_PPI); // GICR_ISENABLER0
    g.raise_linked(0, VTIMER_PPI);
    let f = g.flush(0, 4);
    let mut now = lr_state(&f);
    now[0] = Some(Lr { pending: false, active: true, ..f.lrs[0] });
    g.sync(0, &f, &now);
    rw(&mut g, 0x1_0380, 1 << VTIMER_PPI); // GICR_ICACTIVER0
    assert_eq!(g.flush(0, 4).release, Some(VTIMER_PPI), "active no more, in no register");
}

#[test]
fn list_register_choice_from_the_live_sets_is_the_full_scans() {
    // Two vGICs take the same random guest and device activity; before each choice one
    // has every interrupt marked live (a scan of all of them): they choose the same.
    let mut rnd = xorshift(0x9e37_79b9);
    let (mut a, mut b) = (linux_like(2), linux_like(2));
    for step in 0..3000 {
        let vcpu = rnd(2) as usize;
        let intid = [1, 3, 27, 30, 32, 33, 40, 63][rnd(8) as usize];
        let bit = 1u64 << (intid % 32);
        match rnd(9) {
            0 | 1 => {
                a.raise(vcpu, intid);
                b.raise(vcpu, intid);
            }
            2 => {
                let level = rnd(2) == 0;
                a.set_level(vcpu, intid, level);
                b.set_level(vcpu, intid, level);
            }
            3 => {
                a.raise_linked(vcpu, VTIMER_PPI);
                b.raise_linked(vcpu, VTIMER_PPI);
            }
            // The guest clears, disables, enables or sets pending through the distributor
            // (SPIs) or its redistributor (private interrupts).
            k => {
                let off = [0x280, 0x180, 0x100, 0x200, 0x380][(k - 4) as usize];
                for g in [&mut a, &mut b] {
                    if intid >= 32 {
                        write(g, off + 4, bit);
                    } else {
                        g.redist_access(vcpu as u64 * GICR_STRIDE + 0x1_0000 + off, 4, Some(bit));
                    }
                }
            }
        }
        b.mark_all_live();
        let (fa, fb) = (a.flush(vcpu, 4), b.flush(vcpu, 4));
        assert_eq!((fa.lrs(), fa.underflow, fa.release), (fb.lrs(), fb.underflow, fb.release), "step {step}");
        // The guest takes, ends or leaves each interrupt.
        let now: Vec<Option<Lr>> = fa
            .lrs()
            .iter()
            .map(|l| match rnd(3) {
                0 => None,
                1 => Some(Lr { pending: false, active: true, ..*l }),
                _ => Some(*l),
            })
            .collect();
        assert_eq!(a.sync(vcpu, &fa, &now), b.sync(vcpu, &fb, &now), "step {step}");
    }
}

#[test]
fn the_timer_put_straight_into_a_list_register_is_what_the_full_way_gives() {
    // A takes the timer straight into a list register when it may, over what the guest
    // left; B folds back, raises and flushes. Both then hold the same registers (as a set),
    // the guest does the same to each interrupt in both, and every later choice agrees.
    let mut rnd = xorshift(0x2718_2818);
    let sorted = |lrs: &[Lr]| {
        let mut v = lrs.to_vec();
        v.sort_by_key(|l| (l.intid, l.source));
        v
    };
    let (mut a, mut b) = (linux_like(1), linux_like(1));
    let (mut straight, mut full) = (0, 0);
    for step in 0..6000 {
        // Mostly the timer alone, as a guest that only waits for it.
        let intid = [1, 27, 27, 27, 27, 30, 32, 40][rnd(8) as usize];
        let bit = 1u64 << (intid % 32);
        match rnd(8) {
            0 => {
                a.raise(0, intid);
                b.raise(0, intid);
            }
            1 => {
                let level = rnd(2) == 0;
                a.set_level(0, intid, level);
                b.set_level(0, intid, level);
            }
            k @ 2..=4 => {
                // The guest clears pending, disables or enables it.
                let off = [0x280, 0x180, 0x100][(k - 2) as usize];
                for g in [&mut a, &mut b] {
                    if intid >= 32 {
                        write(g, off + 4, bit);
                    } else {
                        g.redist_access(0x1_0000 + off, 4, Some(bit));
                    }
                }
            }
            _ => {}
        }
        let nr = 1 + rnd(4) as usize;
        let (mut fa, mut fb) = (a.flush(0, nr), b.flush(0, nr));
        assert_eq!((sorted(fa.lrs()), fa.underflow), (sorted(fb.lrs()), fb.underflow), "step {step}");
        // The guest takes, ends or leaves each interrupt, the same in both.
        let act = |acts: &[u32], l: &Lr| match acts[l.intid as usize] {
            0 => None,
            1 => Some(Lr { pending: false, active: true, ..*l }),
            _ => Some(*l),
        };
        let acts: Vec<u32> = (0..64).map(|_| rnd(3)).collect();
        let mut now_a: Vec<Option<Lr>> = fa.lrs().iter().map(|l| act(&acts, l)).collect();
        let now_b: Vec<Option<Lr>> = fb.lrs().iter().map(|l| act(&acts, l)).collect();
        if rnd(2) == 0 {
            // Then the physical timer fires.
            let before = alloc::format!("{a:?}");
            let seen = now_a.clone();
            if a.raise_linked_into(0, (VTIMER_PPI, nr), &mut fa, || seen.first().copied().flatten()) {
                straight += 1;
                assert_eq!(fa.count, 1);
                now_a = vec![Some(fa.lrs[0])];
                b.sync(0, &fb, &now_b);
                b.raise_linked(0, VTIMER_PPI);
                fb = b.flush(0, nr);
                let held: Vec<Lr> = now_a.iter().flatten().copied().collect();
                assert_eq!((sorted(&held), false), (sorted(fb.lrs()), fb.underflow), "step {step}");
                // The guest runs on with them and does the same again.
                let acts: Vec<u32> = (0..64).map(|_| rnd(3)).collect();
                let now_a: Vec<Option<Lr>> = now_a.iter().map(|l| l.and_then(|l| act(&acts, &l))).collect();
                let now_b: Vec<Option<Lr>> = fb.lrs().iter().map(|l| act(&acts, l)).collect();
                a.sync(0, &fa, &now_a);
                b.sync(0, &fb, &now_b);
            } else {
                full += 1;
                assert_eq!(alloc::format!("{a:?}"), before, "step {step}: nothing changed");
                a.sync(0, &fa, &now_a);
                b.sync(0, &fb, &now_b);
                a.raise_linked(0, VTIMER_PPI);
                b.raise_linked(0, VTIMER_PPI);
            }
        } else {
            let (mut da, mut db) = (a.sync(0, &fa, &now_a), b.sync(0, &fb, &now_b));
            da.sort_unstable();
            db.sort_unstable();
            assert_eq!(da, db, "step {step}");
        }
        assert_eq!(a.linked_active(0, VTIMER_PPI), b.linked_active(0, VTIMER_PPI), "step {step}");
    }
    assert!(straight > 100 && full > 1000, "both ways taken: {straight} straight, {full} full");
}
