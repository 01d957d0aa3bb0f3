//! The generic timer's counter, for timestamps and delays.

use core::sync::atomic::{AtomicU64, Ordering};

use aarch64_cpu::registers::*;

/// Counter ticks since the machine started.
pub fn ticks() -> u64 {
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
    CNTPCT_EL0.get()
}

/// The counter, read where the CPU happens to read it: without the barrier that orders
/// the read after earlier instructions. Close enough for accounting.
#[inline]
pub fn ticks_unordered() -> u64 {
    CNTPCT_EL0.get()
}

/// Counter frequency in Hz (never 0).
pub fn frequency() -> u64 {
    CNTFRQ_EL0.get().max(1)
}

/// Converts ticks to microseconds.
pub fn ticks_to_us(t: u64) -> u64 {
    (t as u128 * 1_000_000 / frequency() as u128) as u64
}

/// Microseconds since the machine started.
pub fn uptime_us() -> u64 {
    ticks_to_us(ticks())
}

/// Busy-waits until `pred` is true or `us` microseconds have passed; returns `pred()`.
pub fn wait_until(us: u64, mut pred: impl FnMut() -> bool) -> bool {
    let end = ticks() + (us as u128 * frequency() as u128 / 1_000_000) as u64;
    while ticks() < end {
        if pred() {
            return true;
        }
        core::hint::spin_loop();
    }
    pred()
}

/// Arms this CPU's hypervisor timer (CNTHP) to fire at `deadline_us` of uptime.
pub fn arm_hyp_timer(deadline_us: u64) {
    let ticks = (deadline_us as u128 * frequency() as u128 / 1_000_000) as u64;
    // SAFETY: CNTHP_CVAL_EL2 (absent from aarch64-cpu) only sets when this CPU's hypervisor
    // timer fires.
    unsafe {
        core::arch::asm!("msr cnthp_cval_el2, {}", in(reg) ticks, options(nomem, nostack, preserves_flags))
    };
    CNTHP_CTL_EL2.set(1); // enabled, not masked
}

/// Disarms this CPU's hypervisor timer.
pub fn disarm_hyp_timer() {
    CNTHP_CTL_EL2.set(0);
}

/// The launch deadline (µs of uptime, 0: none) and the console's quiet-time deadline: the
/// hypervisor timer is armed for the earlier.
static LAUNCH_DEADLINE: AtomicU64 = AtomicU64::new(0);
static CONSOLE_DEADLINE: AtomicU64 = AtomicU64::new(0);
static DRAIN_DEADLINE: AtomicU64 = AtomicU64::new(0);

/// Whose deadline changes.
pub enum Deadline {
    Launch,
    Console,
    /// The console's output queue still holds bytes the UART had no room for.
    Drain,
}

/// Sets a deadline (`None`: no longer one) and arms this CPU's hypervisor timer for the
/// earliest, or disarms it.
pub fn set_deadline(which: Deadline, at_us: Option<u64>) {
    let d = match which {
        Deadline::Launch => &LAUNCH_DEADLINE,
        Deadline::Console => &CONSOLE_DEADLINE,
        Deadline::Drain => &DRAIN_DEADLINE,
    };
    d.store(at_us.unwrap_or(0), Ordering::Release);
    let next = [&LAUNCH_DEADLINE, &CONSOLE_DEADLINE, &DRAIN_DEADLINE]
        .iter()
        .map(|d| d.load(Ordering::Acquire))
        .filter(|&d| d != 0)
        .min();
    match next {
        Some(d) => arm_hyp_timer(d),
        None => disarm_hyp_timer(),
    }
}
