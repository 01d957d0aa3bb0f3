//! `hl.vtimer=N`: the virtual timer used the way a minimal guest may use it: enabled once
//! (CNTV_CTL_EL0 = ENABLE), then each next event programmed by CNTV_TVAL_EL0 alone. The
//! guest polls ICC_IAR1_EL1 with IRQs masked, so each interrupt is acknowledged, the timer
//! reprogrammed and the interrupt ended in that order. A hypervisor that masked the timer
//! (CNTV_CTL_EL0.IMASK) behind the guest's back would deliver the first interrupt only.

use core::arch::asm;

use crate::{counter, frequency, println};

const VTIMER: u64 = 27;
/// vCPU 0's redistributor SGI frame.
const SGI_FRAME: u64 = crate::GICR + 0x1_0000;

fn cntv_ctl() -> u64 {
    let v: u64;
    // SAFETY: reading this vCPU's virtual timer control register.
    unsafe { asm!("mrs {}, cntv_ctl_el0", out(reg) v, options(nomem, nostack)) };
    v
}

fn set_tval(ticks: u64) {
    // SAFETY: programming this vCPU's virtual timer (TimerValue).
    unsafe { asm!("msr cntv_tval_el0, {}", "isb", in(reg) ticks, options(nomem, nostack)) };
}

/// ICC_IAR1_EL1: the highest pending interrupt, acknowledged (1023: none).
fn ack() -> u64 {
    let v: u64;
    // SAFETY: the GICv3 CPU interface's acknowledge register.
    unsafe { asm!("mrs {}, s3_0_c12_c12_0", out(reg) v, options(nomem, nostack)) };
    v
}

fn end(intid: u64) {
    // SAFETY: ICC_EOIR1_EL1 (EOImode 0: also deactivates).
    unsafe { asm!("msr s3_0_c12_c12_1, {}", "isb", in(reg) intid, options(nomem, nostack)) };
}

pub fn run(name: &str, n: u64) {
    // SAFETY: masking IRQs at this vCPU: interrupts are polled below.
    unsafe { asm!("msr daifset, #2", options(nomem, nostack)) };
    crate::gic_enable(SGI_FRAME, VTIMER as u32);
    let period = frequency() / 1000; // 1 ms
    set_tval(period);
    // SAFETY: enabling this vCPU's virtual timer, unmasked; never written again.
    unsafe { asm!("msr cntv_ctl_el0, {}", "isb", in(reg) 1u64, options(nomem, nostack)) };
    let (mut taken, mut spurious, mut ctl_seen) = (0, 0, 0);
    let limit = counter() + (n + 100) * period * 10;
    while taken < n && counter() < limit {
        match ack() {
            VTIMER => {
                let ctl = cntv_ctl();
                if ctl & 0b100 == 0 {
                    spurious += 1; // not firing (ISTATUS clear)
                } else {
                    taken += 1;
                    ctl_seen |= ctl;
                    set_tval(period);
                }
                end(VTIMER);
            }
            1023 => core::hint::spin_loop(),
            other => end(other),
        }
    }
    println!(
        "{name}: vtimer: {taken} of {n} interrupt(s), {spurious} spurious; CNTV_CTL read at them: {ctl_seen:#x}, now {:#x}",
        cntv_ctl()
    );
}
