//! Host tests of the launch's parallel half: images copied from boot modules and RAM
//! scrubbed by idle CPUs while domains are paused (and the launch measured), what is left
//! of the copies made at finalization, and the event log given once measuring ends.

use alloc::vec;

use super::fake::{GUEST_RAM, MODULE, MODULE_LEN, Op, Sys, domain, mem, ram_of, system};
use super::life::{State, StopReason};
use super::ram::Src;
use crate::config::{Functions, Permissions};
use crate::hypercall::{self as hc, Call};

/// DOM`id`'s kernel is to be copied from the boot module by whichever CPU prepares it,
/// and a canary sits in the rest of its RAM.
fn defer_kernel(s: &Sys, id: u16) {
    let d = s.d(id);
    let (stats, pending) =
        d.ram.load_images(&*s.fake, &[(GUEST_RAM, Src::Mem(mem(MODULE, MODULE_LEN)))], (0, 0), true);
    assert_eq!(stats.copied, 0, "nothing copied by the build");
    *d.scrub.lock() = pending;
    s.fake.poke(ram_of(id) + MODULE_LEN + 0x1000, b"CANARY");
}

fn kernel_copied(s: &Sys, id: u16) -> bool {
    s.fake.peek(ram_of(id), MODULE_LEN as usize) == s.fake.peek(MODULE, MODULE_LEN as usize)
}

fn scrubbed(s: &Sys, id: u16) -> bool {
    s.fake.peek(ram_of(id) + MODULE_LEN + 0x1000, 6) == [0; 6]
}

#[test]
fn idle_cpus_prepare_paused_domains_their_own_first() {
    let s = system(|f| vec![domain(f, 1, &[0], 0, 0, false), domain(f, 2, &[1], 0, 0, false)], None, None);
    defer_kernel(&s, 1);
    defer_kernel(&s, 2);
    assert!(!kernel_copied(&s, 1) && !kernel_copied(&s, 2));
    // CPU 1 does DOM2's work first (its own), then DOM1's (its CPU measures the launch).
    assert!(s.sys.prepare_idle(1));
    assert!(kernel_copied(&s, 2) && scrubbed(&s, 2));
    assert!(!kernel_copied(&s, 1) && !scrubbed(&s, 1), "DOM2's first");
    // A domain whose work another CPU holds is not waited for.
    let held = s.d(1).scrub.lock();
    assert!(!s.sys.prepare_idle(1));
    drop(held);
    assert!(s.sys.prepare_idle(1), "still looked for after a busy one");
    assert!(kernel_copied(&s, 1) && scrubbed(&s, 1));
    assert!(!s.sys.prepare_idle(1) && !s.sys.prepare_idle(0), "nothing left");
    // Both are still paused until the launch starts them.
    assert_eq!((s.d(1).state(), s.d(2).state()), (State::Paused, State::Paused));
}

#[test]
fn a_running_domain_is_not_prepared_by_idle_cpus() {
    let s = system(|f| vec![domain(f, 1, &[0], 0, 0, false)], None, None);
    s.sys.start();
    defer_kernel(&s, 1);
    assert!(!s.sys.prepare_idle(2), "its own CPU does it, once it enters");
    assert!(!kernel_copied(&s, 1));
    s.enter(1);
    assert!(kernel_copied(&s, 1) && scrubbed(&s, 1));
}

#[test]
fn finalization_makes_the_copies_left_then_frees_the_modules() {
    let s = system(|f| vec![domain(f, 1, &[0], 0, 0, false), domain(f, 2, &[1], 0, 0, false)], None, None);
    defer_kernel(&s, 1);
    defer_kernel(&s, 2);
    // DOM2's CPU did its work; DOM1's (its CPU measured the launch) is left.
    assert!(s.sys.prepare_idle(1));
    let free = s.sys.free_bytes();
    s.sys.start();
    assert!(kernel_copied(&s, 1), "copied at finalization, before its module went");
    assert!(!s.d(1).scrub.lock().reads_from(mem(MODULE, MODULE_LEN)));
    assert!(!scrubbed(&s, 1), "its zeroing is still its CPU's, before it runs");
    assert_eq!(s.sys.free_bytes(), free + 4096 + MODULE_LEN, "the module and the host device tree");
    s.enter(1);
    assert!(scrubbed(&s, 1));
}

#[test]
fn a_domain_reclaimed_before_it_ran_copies_nothing_and_holds_no_module() {
    // DOM9 Boot Domain; DOM2 is reclaimed before its copy was made.
    let s = system(
        |f| vec![domain(f, 9, &[0], 0, Functions::BOOT, false), domain(f, 2, &[1], 0, 0, false)],
        Some(9),
        None,
    );
    defer_kernel(&s, 2);
    s.sys.start();
    assert!(s.sys.destroy(s.d(2), StopReason::Reclaimed).is_ok());
    assert_eq!(s.d(2).state(), State::Reclaimed);
    assert!(s.d(2).scrub.lock().done(), "no work left for any CPU");
    assert!(!s.sys.prepare_idle(1));
    assert_eq!(s.fake.peek(ram_of(2), 16), [0; 16], "scrubbed, not copied into");
    let free = s.sys.free_bytes();
    s.enter(9);
    assert_eq!(s.call(9, Call::Done), hc::SUCCESS);
    assert_eq!(s.sys.free_bytes(), free + 4096 + MODULE_LEN, "finalization gives the module back at once");
}

#[test]
fn the_event_log_replaces_its_placeholder_in_verifying_domains_only() {
    let s = system(
        |f| vec![domain(f, 1, &[0], Permissions::CONTROL, 0, false), domain(f, 2, &[1], 0, 0, false)],
        None,
        None,
    );
    let log = |id: u16| {
        s.d(id)
            .dtb_spec()
            .additions
            .iter()
            .find(|a| a.name == crate::measure::EVENT_LOG_PROPERTY)
            .map(|a| a.value.clone())
    };
    s.sys.give_event_log(&[7; 40]);
    assert_eq!(log(1), Some(vec![7; 40]));
    assert_eq!(log(2), None, "no Control, Hardware or Boot: no log");
    // Given again (the same size), it replaces the first.
    s.sys.give_event_log(&[9; 40]);
    assert_eq!(log(1), Some(vec![9; 40]));
    assert_eq!(s.d(1).dtb_spec().additions.len(), 1);
    assert_eq!(s.d(1).state(), State::Paused);
}

#[test]
fn the_placeholder_log_has_the_measured_log_s_size() {
    use crate::measure::{Item, Source, measure, placeholder};
    let items = vec![
        Item { pcr: 12, what: "hyperlaunch host-dtb".into(), source: Source::HostDtb },
        Item {
            pcr: 13,
            what: "hyperlaunch DOM1 kernel".into(),
            source: Source::Module(crate::memmap::Range { start: MODULE, end: MODULE + MODULE_LEN }),
        },
    ];
    let real = measure(&items, &mut |_| [0x5a; 32]).encode();
    let p = placeholder(&items);
    assert_eq!(p.len(), real.len());
    assert_ne!(p, real, "its digests are zero");
}

#[test]
fn the_boot_domain_s_time_runs_from_the_start_of_the_launch() {
    use core::sync::atomic::Ordering::Relaxed;
    let s = system(|f| vec![domain(f, 9, &[0], 0, Functions::BOOT, false)], Some(9), None);
    // Measuring took 0.4 s after the system was made.
    s.fake.now.store(400_000, Relaxed);
    s.sys.start();
    assert!(s.fake.ops().contains(&Op::Deadline(Some(1_400_000))));
    s.sys.check_launch_timeout(1_399_999);
    assert_eq!(s.d(9).state(), State::Running);
}
