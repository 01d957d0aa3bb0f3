//! `hl.vtimer=N`: the virtual timer used the way a minimal guest may use it: enabled once
//! (CNTV_CTL_EL0 = ENABLE), then each next event programmed by CNTV_TVAL_EL0 alone. The
//! guest polls its CPU interface's acknowledge register with IRQs masked, so each interrupt
//! is acknowledged, the timer reprogrammed and the interrupt ended in that order. A
//! hypervisor that masked the timer (CNTV_CTL_EL0.IMASK) behind the guest's back would
//! deliver the first interrupt only.
//!
//! `hl.vtimer-firing=N`: the timer is left firing when each interrupt is ended (no next
//! event programmed), so the interrupt must come again at once, as a level-sensitive one
//! still asserted does when it is deactivated: N of them, then the timer is turned off.
//!
//! Both work with the virtual GICv3 (ICC system registers) and the virtual GICv2 (the GICC
//! page), whichever the device tree describes.

use core::arch::asm;

use crate::{counter, frequency, println, rd32, wr32};

const VTIMER: u64 = 27;
/// vCPU 0's redistributor SGI frame (GICv3).
const SGI_FRAME: u64 = crate::GICR + 0x1_0000;
/// The GICv2 distributor and CPU interface.
const V2_GICD: u64 = 0x0300_1000;
const V2_GICC: u64 = 0x0300_2000;

fn cntv_ctl() -> u64 {
    let v: u64;
    // SAFETY: reading this vCPU's virtual timer control register.
    unsafe { asm!("mrs {}, cntv_ctl_el0", out(reg) v, options(nomem, nostack)) };
    v
}

fn set_ctl(v: u64) {
    // SAFETY: programming this vCPU's virtual timer control.
    unsafe { asm!("msr cntv_ctl_el0, {}", "isb", in(reg) v, options(nomem, nostack)) };
}

fn set_tval(ticks: u64) {
    // SAFETY: programming this vCPU's virtual timer (TimerValue).
    unsafe { asm!("msr cntv_tval_el0, {}", "isb", in(reg) ticks, options(nomem, nostack)) };
}

/// The CPU interface the guest's device tree gives it.
#[derive(Clone, Copy)]
pub enum Gic {
    V3,
    V2,
}

impl Gic {
    /// Turns the interface on and makes the virtual timer's PPI an enabled interrupt.
    fn enable(self) {
        match self {
            Gic::V3 => crate::gic_enable(SGI_FRAME, VTIMER as u32),
            Gic::V2 => {
                let bit = 1u32 << VTIMER;
                wr32(V2_GICD, 1); // GICD_CTLR: Enable (Group 0, the reset group)
                let prio = V2_GICD + 0x400 + (VTIMER & !3);
                let shift = (VTIMER & 3) * 8;
                wr32(prio, (rd32(prio) & !(0xff << shift)) | (0xa0 << shift));
                wr32(V2_GICD + 0x100, bit); // GICD_ISENABLER0
                wr32(V2_GICC + 0x4, 0xff); // GICC_PMR: all priorities
                wr32(V2_GICC, 1); // GICC_CTLR: EnableGrp0
            }
        }
    }

    /// The highest pending interrupt, acknowledged: its INTID (1023: none) and the value
    /// to end it with (GICv2: with an SGI's source CPU).
    fn ack(self) -> (u64, u64) {
        match self {
            Gic::V3 => {
                let v: u64;
                // SAFETY: the GICv3 CPU interface's acknowledge register (ICC_IAR1_EL1).
                unsafe { asm!("mrs {}, s3_0_c12_c12_0", out(reg) v, options(nomem, nostack)) };
                (v, v)
            }
            Gic::V2 => {
                let v = u64::from(rd32(V2_GICC + 0xc)); // GICC_IAR
                (v & 0x3ff, v)
            }
        }
    }

    /// Ends (EOImode 0: also deactivates) the interrupt `ack` gave `raw` for.
    fn end(self, raw: u64) {
        match self {
            // SAFETY: ICC_EOIR1_EL1.
            Gic::V3 => unsafe { asm!("msr s3_0_c12_c12_1, {}", "isb", in(reg) raw, options(nomem, nostack)) },
            Gic::V2 => wr32(V2_GICC + 0x10, raw as u32), // GICC_EOIR
        }
    }
}

/// `firing`: leave the timer firing at each interrupt instead of programming the next
/// event.
pub fn run(name: &str, n: u64, gic: Gic, firing: bool) {
    // SAFETY: masking IRQs at this vCPU: interrupts are polled below.
    unsafe { asm!("msr daifset, #2", options(nomem, nostack)) };
    gic.enable();
    let period = frequency() / 1000; // 1 ms
    set_tval(period);
    // Enabled, unmasked; in the first mode never written again.
    set_ctl(1);
    let (mut taken, mut spurious, mut ctl_seen) = (0, 0, 0);
    let limit = counter() + (n + 100) * period * 10;
    while taken < n && counter() < limit {
        let (intid, raw) = gic.ack();
        match intid {
            VTIMER => {
                let ctl = cntv_ctl();
                if ctl & 0b100 == 0 {
                    spurious += 1; // not firing (ISTATUS clear)
                } else {
                    taken += 1;
                    ctl_seen |= ctl;
                    if !firing {
                        set_tval(period);
                    }
                }
                gic.end(raw);
            }
            1022 | 1023 => core::hint::spin_loop(),
            _ => gic.end(raw),
        }
    }
    if firing {
        set_ctl(0);
        println!(
            "{name}: vtimer left firing: {taken} of {n} interrupt(s), {spurious} spurious; CNTV_CTL read at them: {ctl_seen:#x}"
        );
        return;
    }
    println!(
        "{name}: vtimer: {taken} of {n} interrupt(s), {spurious} spurious; CNTV_CTL read at them: {ctl_seen:#x}, now {:#x}",
        cntv_ctl()
    );
}
