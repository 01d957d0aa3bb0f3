//! PSCI races: CPU_ON against a vCPU turning itself off, and SYSTEM_RESET from two vCPUs
//! at once.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::{AFFINITY_INFO, CPU_OFF, CPU_ON, SYSTEM_RESET, halt, hvc, println};

/// What a secondary vCPU does when it starts: 1 turn itself off at once (the CPU_ON
/// race), 2 reset the domain with the primary (the reset race).
pub static MODE: AtomicU64 = AtomicU64::new(0);
static STARTS: AtomicU64 = AtomicU64::new(0);
static GO: AtomicBool = AtomicBool::new(false);

/// A secondary vCPU started for a race.
pub fn secondary() -> ! {
    STARTS.fetch_add(1, Ordering::SeqCst);
    if MODE.load(Ordering::SeqCst) == 2 {
        while !GO.load(Ordering::SeqCst) {
            core::hint::spin_loop();
        }
        hvc(SYSTEM_RESET, 0, 0, 0);
    } else {
        hvc(CPU_OFF, 0, 0, 0);
    }
    halt(false)
}

/// Waits (at most 5 s) until vCPU 1's AFFINITY_INFO is `want`; true when it was.
fn wait_for(want: i64) -> bool {
    let (start, freq) = (crate::counter(), crate::frequency());
    while crate::counter() - start < 5 * freq {
        if hvc(AFFINITY_INFO, (1 << 31) | 1, 0, 0) == want {
            return true;
        }
        core::hint::spin_loop();
    }
    false
}

/// `hl.psci-race=N`: N CPU_ONs of vCPU 1 back to back while each start turns itself off:
/// every call must answer SUCCESS, ALREADY_ON or ON_PENDING, and vCPU 1 must have started
/// once per SUCCESS.
pub fn cpu_on_off(name: &str, n: u64, entry: u64) {
    MODE.store(1, Ordering::SeqCst);
    let (mut ok, mut on, mut pending, mut other) = (0, 0, 0, 0);
    for _ in 0..n {
        match hvc(CPU_ON, (1 << 31) | 1, entry, 1) {
            0 => ok += 1,
            -4 => on += 1,
            -5 => pending += 1,
            _ => other += 1,
        }
    }
    let off = wait_for(1);
    println!(
        "{name}: psci race: {n} CPU_ON against CPU_OFF: {ok} succeeded, {on} already on, {pending} pending, {other} OTHER; vCPU 1 started {} time(s){}",
        STARTS.load(Ordering::SeqCst),
        if off { "" } else { ", STILL RUNNING" }
    );
}

/// `hl.reset-race`: starts vCPU 1, then both call SYSTEM_RESET at once.
pub fn reset(name: &str, entry: u64) -> ! {
    MODE.store(2, Ordering::SeqCst);
    let r = hvc(CPU_ON, (1 << 31) | 1, entry, 1);
    while STARTS.load(Ordering::SeqCst) == 0 {
        core::hint::spin_loop();
    }
    println!("{name}: reset race: CPU_ON -> {r}; both vCPUs reset the domain");
    GO.store(true, Ordering::SeqCst);
    hvc(SYSTEM_RESET, 0, 0, 0);
    println!("{name}: reset race: SYSTEM_RESET RETURNED");
    halt(false)
}
