//! Host tests of the run-time core, driven through the recording fake machine: every
//! lifecycle scenario the QEMU smoke tests run (control, reset, store, Boot Domain,
//! recovery, restart, affinity), and the races the core's shape rules out (exit handling:
//! exit_tests.rs).

use alloc::vec;
use alloc::vec::Vec;

use super::domain::Domain;
use super::exits::{End, Outcome};
use super::fake::{
    BASE, DOM_RAM, DTB_AT, Fake, GUEST_RAM, MODULE, MODULE_LEN, Op, SYSTEM_OFF, SYSTEM_RESET, domain, ram_of,
    system,
};
use super::life::State;
use super::machine::ConsoleEvent;
use super::vcpu::GuestRegs;
use crate::config::{Functions, Permissions};
use crate::hypercall::{self as hc, Blob, Call};
use crate::psci::Power;
use crate::trap::Exit;

const CONTROL: u32 = Permissions::CONTROL;
const BOOT: u32 = Functions::BOOT;
const RECOVERY: u32 = Functions::RECOVERY;

#[test]
fn a_pause_returns_once_the_domain_is_off_its_cpus() {
    use core::sync::atomic::Ordering::Relaxed;
    let s = system(
        |f| {
            vec![
                domain(f, 1, &[0], CONTROL, 0, false),
                domain(f, 2, &[1], 0, 0, false),
                domain(f, 3, &[2], CONTROL, 0, false),
            ]
        },
        None,
        None,
    );
    s.sys.start();
    let waited = |from: u16, to: u16| {
        let t = s.fake.now.load(Relaxed);
        assert_eq!(s.call(from, Call::DomctlPause { domid: to }), hc::SUCCESS);
        s.fake.now.load(Relaxed) - t
    };
    assert_eq!(waited(1, 2), 0, "off its CPU: nothing to wait for");
    assert_eq!(s.call(1, Call::DomctlUnpause { domid: 2 }), hc::SUCCESS);
    // On its CPU and never leaving it (its CPU held at EL2): the wait is bounded.
    s.enter(2);
    assert_eq!(waited(1, 2), super::hypercalls::PAUSE_WAIT_US);
    assert_eq!(s.d(2).state(), State::CtlPaused);
    s.sys.leave(s.d(2), 0, End::Yield);
    assert_eq!(s.call(1, Call::DomctlUnpause { domid: 2 }), hc::SUCCESS);
    // A caller that is itself paused meanwhile stops waiting at once (two Control
    // domains pausing each other must not wait for each other).
    s.enter(2);
    assert_eq!(waited(3, 1), 0);
    assert_eq!(waited(1, 2), 0);
    assert_eq!(s.d(2).state(), State::CtlPaused);
}

#[test]
fn control_pause_destroy_restart() {
    // The twin of the QEMU `control` test.
    // DOM3 shares its kernel pages with the module, which finalization therefore keeps.
    let s = system(
        |f| {
            vec![
                domain(f, 1, &[0], CONTROL, 0, false),
                domain(f, 2, &[1], 0, 0, false),
                domain(f, 3, &[2], 0, 0, true),
            ]
        },
        None,
        None,
    );
    s.sys.start();
    for id in [1, 2, 3] {
        assert_eq!(s.d(id).state(), State::Running);
        assert!(matches!(*s.d(id).vcpus[0].power.lock(), Power::Pending { .. }));
    }
    assert_eq!(s.call(3, Call::DomctlPause { domid: 2 }), hc::DENIED, "no Control permission");
    assert_eq!(s.call(3, Call::DomainInfo { index: 0 }), hc::DENIED);
    let q = s.sys.hypercall(s.d(1), Call::DomctlQuery { domid: 2 });
    assert_eq!((q[0], q[1] & 0xff, q[1] >> 8, q[2]), (0, hc::STATE_RUNNING, 1, DOM_RAM));
    s.enter(2);
    s.fake.clear_ops();
    assert_eq!(s.call(1, Call::DomctlPause { domid: 2 }), hc::SUCCESS);
    assert!(s.fake.ops().contains(&Op::Kick(1)), "its vCPU is kicked off its CPU");
    assert_eq!(s.sys.hypercall(s.d(1), Call::DomctlQuery { domid: 2 })[1] & 0xff, hc::STATE_CTL_PAUSED);
    assert_eq!(s.call(1, Call::DomctlPause { domid: 2 }), hc::INVALID, "paused once");
    // Its vCPU leaves with its state saved; it is not due while paused.
    s.sys.leave(s.d(2), 0, End::Yield);
    assert!(!s.sys.due(1, 0, 0));
    assert_eq!(s.call(1, Call::DomctlUnpause { domid: 2 }), hc::SUCCESS);
    assert_eq!(s.d(2).state(), State::Running);
    // Destroy: a canary in its RAM reads zero afterwards and the memory is returned.
    s.fake.poke(ram_of(2) + 0x5000, b"CANARY");
    let free = s.sys.free_bytes();
    assert_eq!(s.call(1, Call::DomctlDestroy { domid: 2 }), hc::SUCCESS);
    assert_eq!(s.d(2).state(), State::Reclaimed);
    assert_eq!(s.fake.peek(ram_of(2) + 0x5000, 6), [0; 6], "scrubbed");
    assert_eq!(s.sys.free_bytes(), free + DOM_RAM);
    assert!(s.fake.ops().contains(&Op::Console(ConsoleEvent::Stopped(2))));
    assert_eq!(s.sys.hypercall(s.d(1), Call::DomctlQuery { domid: 2 })[1] & 0xff, hc::STATE_RECLAIMED);
    for c in
        [Call::DomctlPause { domid: 2 }, Call::DomctlRestart { domid: 2 }, Call::DomctlDestroy { domid: 2 }]
    {
        assert_eq!(s.call(1, c), hc::INVALID, "{c:?} of a reclaimed domain");
    }
    assert_eq!(s.call(1, Call::DomctlDestroy { domid: 1 }), hc::INVALID, "not itself");
    assert_eq!(s.call(1, Call::DomctlQuery { domid: 99 }), hc::INVALID);
    assert_eq!(s.call(1, Call::DomctlRestart { domid: 3 }), hc::INVALID, "a running domain is not restarted");
    assert_eq!(s.call(1, Call::DomctlUnpause { domid: 3 }), hc::INVALID, "not paused by Control");
    // DOM3 powers off; DOM1 restarts it: its RAM is scrubbed and its kernel loaded again.
    s.enter(3);
    assert_eq!(s.hvc(3, 0, [SYSTEM_OFF, 0, 0, 0]).0, Outcome::Leave(End::DomainStopped));
    s.sys.leave(s.d(3), 0, End::DomainStopped);
    assert_eq!(s.d(3).state(), State::Stopped);
    s.fake.poke(ram_of(3) + 0x2_8000, b"CANARY");
    s.fake.poke(ram_of(3) + 0x4000, b"garbage");
    assert_eq!(s.call(1, Call::DomctlRestart { domid: 3 }), hc::SUCCESS);
    assert_eq!(s.d(3).state(), State::Running);
    // Its kernel is copied again and its RAM zeroed by the CPU that runs it, before it
    // runs; the device tree written again is kept.
    assert_eq!(s.fake.peek(ram_of(3) + 0x4000, 7), *b"garbage", "not copied on the restarting CPU");
    assert_eq!(s.fake.peek(ram_of(3) + 0x2_8000, 6), *b"CANARY", "not scrubbed on the restarting CPU");
    assert!(!s.d(3).scrub.lock().done());
    let dtb = s.fake.peek(ram_of(3) + (DTB_AT - GUEST_RAM), 4);
    assert_eq!(dtb, [0xd0, 0x0d, 0xfe, 0xed], "device tree written again");
    assert!(s.sys.ready_to_run(s.d(3)));
    assert_eq!(s.fake.peek(ram_of(3) + 0x2_8000, 6), [0; 6], "scrubbed before it runs");
    assert_eq!(s.fake.peek(ram_of(3) + (DTB_AT - GUEST_RAM), 4), dtb, "its device tree kept");
    assert_eq!(s.fake.peek(ram_of(3) + 0x4000, 16), s.fake.peek(MODULE + 0x4000, 16), "kernel loaded again");
    assert!(matches!(*s.d(3).vcpus[0].power.lock(), Power::Pending { entry: GUEST_RAM, context: DTB_AT }));
    assert!(s.fake.ops().contains(&Op::Console(ConsoleEvent::Restarted(3))));
    assert!(s.sys.queued(2).contains(&super::system::slot(2, 0)), "back in its run queue");
    assert_eq!(s.fake.power_offs(), 0);
    // The last domains stop: the machine powers off, once.
    s.enter(1);
    s.enter(3);
    s.hvc(3, 0, [SYSTEM_OFF, 0, 0, 0]);
    assert_eq!(s.fake.power_offs(), 0, "DOM1 still runs");
    s.hvc(1, 0, [SYSTEM_OFF, 0, 0, 0]);
    assert_eq!(s.fake.power_offs(), 1);
}

#[test]
fn system_reset_and_control_restart_rebuild_once() {
    // A Control RESTART racing the domain's own SYSTEM_RESET: one rebuild, the machine
    // stays on, and the domain runs again.
    let s =
        system(|f| vec![domain(f, 1, &[0], 0, 0, true), domain(f, 2, &[1], CONTROL, 0, false)], None, None);
    s.sys.start();
    s.enter(1);
    s.enter(2);
    let (o, _) = s.hvc(1, 0, [SYSTEM_RESET, 0, 0, 0]);
    assert_eq!(o, Outcome::Leave(End::DomainStopped));
    assert_eq!(s.d(1).state(), State::Resetting);
    assert_eq!(s.call(2, Call::DomctlRestart { domid: 1 }), hc::INVALID, "while its vCPU leaves");
    s.fake.poke(ram_of(1) + 0x4000, b"garbage");
    let seed = s.d(1).dtb_spec().rng_seed;
    s.sys.leave(s.d(1), 0, End::DomainStopped);
    assert_eq!(s.d(1).state(), State::Running, "rebuilt by the last vCPU out");
    let reseeded = s.d(1).dtb_spec().rng_seed;
    assert!(reseeded.is_some() && reseeded != seed, "a restarted guest gets a seed it has not seen");
    assert_eq!(s.call(2, Call::DomctlRestart { domid: 1 }), hc::INVALID, "and not a second time");
    assert!(s.sys.ready_to_run(s.d(1)));
    assert_eq!(
        s.fake.peek(ram_of(1) + 0x4000, 8),
        s.fake.peek(MODULE + 0x4000, 8),
        "its kernel copied again"
    );
    assert_eq!(s.fake.power_offs(), 0, "a resetting domain keeps the machine on");
    assert!(s.sys.queued(0).contains(&super::system::slot(0, 0)));
    // Then it powers off, and the other one: off once.
    s.enter(1);
    s.hvc(1, 0, [SYSTEM_OFF, 0, 0, 0]);
    s.hvc(2, 0, [SYSTEM_OFF, 0, 0, 0]);
    assert_eq!(s.fake.power_offs(), 1);
}

#[test]
fn racing_system_resets_restart_once_and_count_once() {
    // Both vCPUs of a domain call SYSTEM_RESET at once, again and again: each race is one
    // restart of the allowance (5 in the window), not two.
    let s = system(|f| vec![domain(f, 1, &[0, 1], 0, 0, true)], None, None);
    s.sys.start();
    for round in 1..=super::domain::RESTARTS_PER_WINDOW {
        s.enter(1);
        assert_eq!(s.hvc(1, 0, [SYSTEM_RESET, 0, 0, 0]).0, Outcome::Leave(End::DomainStopped));
        assert_eq!(s.hvc(1, 1, [SYSTEM_RESET, 0, 0, 0]).0, Outcome::Leave(End::DomainStopped));
        assert_eq!(s.d(1).state(), State::Resetting, "round {round}");
        s.sys.leave(s.d(1), 0, End::DomainStopped);
        assert_eq!(s.d(1).state(), State::Running, "round {round}: rebuilt once");
    }
    // One more in the window: a reset loop, stopped.
    s.enter(1);
    s.hvc(1, 1, [SYSTEM_RESET, 0, 0, 0]);
    s.hvc(1, 0, [SYSTEM_RESET, 0, 0, 0]);
    assert_eq!(s.d(1).life().stop_reason(), Some(super::life::StopReason::ResetLoop));
}

#[test]
fn reset_without_modules_stops_and_powers_off() {
    let s = system(|f| vec![domain(f, 1, &[0], 0, 0, false)], None, None);
    s.sys.start();
    // Finalization (no Boot Domain) freed the module: the reset cannot rebuild.
    s.enter(1);
    s.hvc(1, 0, [SYSTEM_RESET, 0, 0, 0]);
    s.sys.leave(s.d(1), 0, End::DomainStopped);
    assert_eq!(s.d(1).state(), State::Stopped);
    assert_eq!(s.fake.power_offs(), 1);
}

/// DOM9 Boot Domain, DOM2 and DOM3 plain, DOM4 standby Recovery Domain.
fn boot_system(f: &Fake) -> Vec<Domain> {
    vec![
        domain(f, 9, &[0], 0, BOOT, false),
        domain(f, 2, &[1], 0, 0, false),
        domain(f, 3, &[2], 0, 0, false),
        domain(f, 4, &[3], 0, RECOVERY, false),
    ]
}

#[test]
fn boot_domain_orders_the_start_and_is_reclaimed() {
    // The twin of the QEMU `boot-domain` test.
    let s = system(boot_system, Some(9), Some(4));
    s.sys.start();
    assert_eq!(s.d(9).state(), State::Running);
    assert!(s.fake.ops().contains(&Op::Console(ConsoleEvent::Input(9))), "the Boot Domain has the console");
    assert!(s.fake.ops().iter().any(|o| matches!(o, Op::Deadline(Some(1_000_000)))), "its deadline runs");
    for id in [2, 3, 4] {
        assert_eq!(s.d(id).state(), State::Paused);
    }
    s.enter(9);
    assert_eq!(s.call(9, Call::Size(Blob::Lcm)), 4096);
    assert_eq!(s.call(2, Call::Size(Blob::Lcm)), hc::DENIED, "only the Boot Domain reads the LCM");
    assert_eq!(s.call(9, Call::Read { blob: Blob::Lcm, dst: GUEST_RAM + 0x2_0000, offset: 0, len: 7 }), 7);
    assert_eq!(s.fake.peek(ram_of(9) + 0x2_0000, 7), b"\xd0\x0d\xfe\xedLCM");
    for dst in [0, GUEST_RAM + DOM_RAM - 4, u64::MAX - 2] {
        let r = s.call(9, Call::Read { blob: Blob::Lcm, dst, offset: 0, len: 16 });
        assert_eq!(r, hc::INVALID, "read into {dst:#x}");
    }
    assert_eq!(s.call(9, Call::Unpause { domid: 3 }), hc::SUCCESS);
    assert_eq!(s.d(3).state(), State::Running);
    assert_eq!(s.d(2).state(), State::Paused, "in the Boot Domain's order");
    assert_eq!(s.call(9, Call::Unpause { domid: 4 }), hc::INVALID, "not the standby Recovery Domain");
    assert_eq!(s.call(9, Call::Unpause { domid: 9 }), hc::INVALID, "not itself");
    assert_eq!(s.call(3, Call::Done), hc::DENIED);
    let free = s.sys.free_bytes();
    assert_eq!(s.call(9, Call::Done), hc::SUCCESS);
    // Finalization: DOM2 started, the Boot Domain and the unused standby domain reclaimed
    // (the Boot Domain once its vCPU is off its CPU), the module and the LCM freed.
    assert_eq!(s.d(2).state(), State::Running);
    assert_eq!(s.d(4).state(), State::Reclaimed);
    assert_eq!(s.d(9).state(), State::Destroying);
    s.sys.leave(s.d(9), 0, End::DomainStopped);
    assert_eq!(s.d(9).state(), State::Reclaimed);
    assert!(s.sys.free_bytes() >= free + 2 * DOM_RAM + MODULE_LEN + 4096);
    assert_eq!(s.call(9, Call::Size(Blob::Lcm)), hc::DENIED, "the Boot Domain's time is over");
    assert_eq!(s.fake.power_offs(), 0);
}

#[test]
fn extended_configuration_only_of_domains_still_paused() {
    let s = system(boot_system, Some(9), Some(4));
    s.sys.start();
    s.enter(9);
    s.fake.poke(ram_of(9) + 0x1000, b"console=hvc0");
    let args = |domid| Call::SetBootargs { domid, src: GUEST_RAM + 0x1000, len: 12 };
    assert_eq!(s.call(9, args(2)), hc::SUCCESS);
    assert_eq!(s.d(2).dtb_spec().bootargs.as_deref(), Some("console=hvc0"));
    assert_eq!(s.call(9, Call::Unpause { domid: 2 }), hc::SUCCESS);
    assert_eq!(s.call(9, args(2)), hc::INVALID, "started");
    assert_eq!(s.call(9, args(4)), hc::INVALID, "the standby Recovery Domain");
    assert_eq!(s.call(9, args(77)), hc::INVALID, "no such domain");
    assert_eq!(s.call(9, Call::SetAffinity { domid: 2, vcpu: 0, cpu: 2 }), hc::INVALID, "started");
    assert_eq!(s.call(9, Call::SetAffinity { domid: 3, vcpu: 1, cpu: 2 }), hc::INVALID, "no such vCPU");
    assert_eq!(s.call(9, Call::SetAffinity { domid: 3, vcpu: 0, cpu: 9 }), hc::INVALID, "no such CPU");
    assert_eq!(s.call(9, Call::SetBootargs { domid: 3, src: GUEST_RAM + DOM_RAM - 4, len: 12 }), hc::INVALID);
    assert_eq!(s.call(9, Call::SetBootargs { domid: 3, src: 0, len: 12 }), hc::INVALID);
    assert_eq!(s.call(3, args(3)), hc::DENIED, "only the Boot Domain");
    assert_eq!(s.d(4).dtb_spec().bootargs, None);
}

#[test]
fn guest_buffers_are_read_once() {
    // A second vCPU of the Boot Domain rewrites the buffer right after the hypervisor has
    // read it: what was checked is what is used.
    let s = system(boot_system, Some(9), Some(4));
    s.sys.start();
    let buf = ram_of(9) + 0x3000;
    s.fake.poke(buf, b"/chosen\0hl,note\0ok");
    *s.fake.after_read.lock() = Some(alloc::boxed::Box::new(move |ram: &mut [u8], _| {
        let at = (buf - BASE) as usize;
        ram[at..at + 18].copy_from_slice(b"/cpus\0\0\0hl,note\0ok");
    }));
    let call = Call::SetDtProperty { domid: 2, src: GUEST_RAM + 0x3000, len: 18 };
    assert_eq!(s.call(9, call), hc::SUCCESS);
    let adds = s.d(2).dtb_spec().additions;
    assert_eq!((adds.len(), adds[0].path.as_str(), adds[0].name.as_str()), (1, "/chosen", "hl,note"));
    let reads = s.fake.reads.lock().iter().filter(|m| m.start() == buf).count();
    assert_eq!(reads, 1, "the buffer was read once");
    // Bootargs: valid text when read, bytes that are no text right after.
    *s.fake.after_read.lock() = Some(alloc::boxed::Box::new(move |ram: &mut [u8], _| {
        let at = (buf - BASE) as usize;
        ram[at..at + 4].copy_from_slice(&[0xff, 0xfe, 0, 0xc3]);
    }));
    s.fake.poke(buf, b"quiet");
    assert_eq!(s.call(9, Call::SetBootargs { domid: 2, src: GUEST_RAM + 0x3000, len: 5 }), hc::SUCCESS);
    assert_eq!(s.d(2).dtb_spec().bootargs.as_deref(), Some("quiet"));
}

#[test]
fn boot_domain_additions_are_bounded() {
    use super::domain::{MAX_ADDITION_BYTES, MAX_ADDITIONS};
    let s = system(boot_system, Some(9), Some(4));
    s.sys.start();
    let buf = ram_of(9) + 0x3000;
    let add = |name: &str, len: usize| {
        let mut b = alloc::format!("/chosen\0{name}\0").into_bytes();
        b.resize(b.len() + len, b'v');
        s.fake.poke(buf, &b);
        s.call(9, Call::SetDtProperty { domid: 2, src: GUEST_RAM + 0x3000, len: b.len() as u64 })
    };
    for i in 0..MAX_ADDITIONS {
        assert_eq!(add(&alloc::format!("hl,p{i}"), 8), hc::SUCCESS, "addition {i}");
    }
    assert_eq!(add("hl,one-more", 8), hc::INVALID, "over the count");
    assert_eq!(add("hl,p3", 16), hc::SUCCESS, "replacing one is not one more");
    let adds = s.d(2).dtb_spec().additions;
    assert_eq!(adds.len(), MAX_ADDITIONS);
    assert!(!adds.iter().any(|a| a.name == "hl,one-more"));
    // Bytes: a few large properties replacing small ones reach the byte quota first.
    let mut refused = None;
    for i in 0..MAX_ADDITIONS {
        if add(&alloc::format!("hl,p{i}"), 4000) == hc::INVALID {
            refused = Some(i);
            break;
        }
    }
    let total: usize =
        s.d(2).dtb_spec().additions.iter().map(|a| a.path.len() + a.name.len() + a.value.len()).sum();
    assert!(refused.is_some() && total <= MAX_ADDITION_BYTES, "refused at {refused:?}, {total} bytes");
    let why = alloc::format!("{}", super::domain::ConfigError::Quota);
    assert_eq!(why, "over the quota of 64 added properties and 64 KiB of them per domain");
}

#[test]
fn affinity_onto_a_busy_cpu_makes_it_share() {
    // DOM3 runs alone on CPU 2; the Boot Domain moves paused DOM2's vCPU there: CPU 2 is
    // kicked and now shared, so its vCPU arms the slice and yields in WFI.
    let s = system(boot_system, Some(9), Some(4));
    s.sys.start();
    assert_eq!(s.call(9, Call::Unpause { domid: 3 }), hc::SUCCESS);
    s.enter(3);
    assert!(!s.sys.cpu_shared(2));
    s.fake.clear_ops();
    assert_eq!(s.call(9, Call::SetAffinity { domid: 2, vcpu: 0, cpu: 2 }), hc::SUCCESS);
    assert!(s.sys.cpu_shared(2));
    assert!(s.fake.ops().contains(&Op::Kick(2)), "the occupant learns it shares: {:?}", s.fake.ops());
    assert_eq!(s.d(2).vcpus[0].pcpu(), 2);
    assert!(!s.sys.cpu_shared(1) && s.sys.queued(1).is_empty());
    // The occupant's WFI with nothing pending now gives the CPU up.
    let mut regs = GuestRegs::default();
    assert_eq!(
        s.sys.handle_exit(s.d(3), 0, Exit::Wfi { step: 4 }, &mut regs, s.sys.cpu_shared(2)),
        Outcome::Leave(End::Yield)
    );
    s.sys.leave(s.d(3), 0, End::Yield);
    assert_eq!(s.call(9, Call::Unpause { domid: 2 }), hc::SUCCESS);
    assert_eq!(s.sys.pick(2, 0), Some((1, 0)), "DOM2 is due");
}

#[test]
fn boot_timeout_starts_the_recovery_domain_with_a_report() {
    // The twin of the QEMU `boot-timeout` and `boot-recovery` tests.
    let s = system(boot_system, Some(9), Some(4));
    s.sys.start();
    s.sys.check_launch_timeout(999_999);
    assert_eq!(s.d(9).state(), State::Running, "not yet");
    s.sys.check_launch_timeout(1_000_000);
    assert_eq!(s.d(9).state(), State::Reclaimed, "its vCPU was not on a CPU");
    assert_eq!(s.d(4).state(), State::Running);
    let failures = s.d(4).dtb_spec().failures;
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].0, 9);
    assert!(failures[0].1.contains("did not signal done in time"), "{failures:?}");
    assert!(s.fake.ops().contains(&Op::Console(ConsoleEvent::Input(4))));
    assert_eq!(s.call(4, Call::FailureInfo { index: 0 }), hc::SUCCESS);
    assert_eq!(s.sys.hypercall(s.d(4), Call::FailureInfo { index: 0 })[1], 9);
    assert_eq!(s.call(2, Call::FailureInfo { index: 0 }), hc::DENIED);
}

#[test]
fn console_input_waits_for_room_in_the_fifo() {
    let s = system(|f| vec![domain(f, 1, &[0], 0, 0, false)], None, None);
    s.sys.start();
    for b in 0..40u8 {
        s.sys.deliver_input(1, b'a' + b % 26);
    }
    let d = s.d(1);
    assert_eq!(d.held_input(), 8, "32 in the FIFO, the rest held");
    assert_eq!(d.uart_access(&*s.fake, crate::vuart::DR, None), u32::from(b'a'));
    assert_eq!(d.held_input(), 7, "one moved in as one was read");
    s.sys.deliver_input(99, b'x');
}

#[test]
fn store_doorbells_only_between_connected_domains() {
    // The twin of the QEMU `store` test: DOM5 serves the store; DOM2 and DOM3 are clients.
    let xs = Functions::XENSTORE;
    let s = system(
        |f| {
            vec![
                domain(f, 5, &[0], 0, xs, false),
                domain(f, 2, &[1], 0, 0, false),
                domain(f, 3, &[2], 0, 0, false),
            ]
        },
        None,
        None,
    );
    s.sys.start();
    let spi = |id: u16, n: u32| {
        let d = s.d(id);
        // GICD_ISPENDR of the SPI's word: is it pending at the domain's virtual GIC?
        let intid = crate::vgic::PRIVATE + n;
        let crate::vgic::Access::Done { value, .. } =
            d.vgic.lock().dist_access(0, 0x200 + u64::from(intid / 32) * 4, 4, None)
        else {
            panic!("ISPENDR reads");
        };
        value & (1 << (intid % 32)) != 0
    };
    assert!(!spi(2, crate::store::CLIENT_SPI), "nothing pending before the store rings");
    assert_eq!(s.call(2, Call::StoreNotify { domid: 5 }), hc::SUCCESS);
    assert!(spi(5, crate::store::SERVER_SPI_BASE), "DOM2 is client slot 0");
    assert!(!spi(5, crate::store::SERVER_SPI_BASE + 1));
    assert_eq!(s.call(5, Call::StoreNotify { domid: 3 }), hc::SUCCESS);
    assert!(spi(3, crate::store::CLIENT_SPI));
    assert!(!spi(2, crate::store::CLIENT_SPI));
    assert_eq!(s.call(2, Call::StoreNotify { domid: 3 }), hc::INVALID, "one client cannot ring another");
    assert_eq!(s.call(2, Call::StoreNotify { domid: 2 }), hc::INVALID);
}

#[test]
fn a_failed_build_starts_the_recovery_domain_with_a_report() {
    // The twin of the QEMU `boot-recovery` test (without a Boot Domain): DOM7 could not be
    // built; the others run and the standby Recovery Domain gets the console and the report.
    let failed = crate::launch::Failure { domid: 7, reason: "not built: kernel: bad magic".into() };
    let s = super::fake::system_with(
        |f| vec![domain(f, 1, &[0], 0, Functions::CONSOLE, false), domain(f, 4, &[3], 0, RECOVERY, false)],
        (None, Some(4)),
        vec![failed],
    );
    s.sys.start();
    assert_eq!(s.d(1).state(), State::Running);
    assert_eq!(s.d(4).state(), State::Running);
    assert_eq!(s.d(4).dtb_spec().failures, vec![(7, "not built: kernel: bad magic".into())]);
    assert!(s.fake.ops().contains(&Op::Console(ConsoleEvent::Input(4))));
    // When launch succeeds the standby domain is reclaimed instead.
    let s = system(
        |f| vec![domain(f, 1, &[0], 0, 0, false), domain(f, 4, &[3], 0, RECOVERY, false)],
        None,
        Some(4),
    );
    s.sys.start();
    assert_eq!(s.d(4).state(), State::Reclaimed);
    assert_eq!(s.fake.power_offs(), 0);
}

#[test]
fn restart_loops_are_stopped() {
    // A guest looping on SYSTEM_RESET is rebuilt five times in ten seconds; the sixth
    // stops it for good. A Control domain's RESTARTs count against the same limit.
    use super::domain::{RESTART_WINDOW_US, RESTARTS_PER_WINDOW};
    use super::life::StopReason;
    use core::sync::atomic::Ordering;
    let s =
        system(|f| vec![domain(f, 1, &[0], 0, 0, true), domain(f, 2, &[1], CONTROL, 0, false)], None, None);
    s.sys.start();
    s.enter(2);
    for i in 0..RESTARTS_PER_WINDOW {
        s.fake.now.store(u64::from(i) * 1000, Ordering::Relaxed);
        s.enter(1);
        s.hvc(1, 0, [SYSTEM_RESET, 0, 0, 0]);
        s.sys.leave(s.d(1), 0, End::DomainStopped);
        assert_eq!(s.d(1).state(), State::Running, "restart {i} allowed");
    }
    s.enter(1);
    let (o, _) = s.hvc(1, 0, [SYSTEM_RESET, 0, 0, 0]);
    assert_eq!(o, Outcome::Leave(End::DomainStopped));
    s.sys.leave(s.d(1), 0, End::DomainStopped);
    assert_eq!(s.d(1).state(), State::Stopped, "the sixth reset in the window stops it");
    assert_eq!(s.d(1).life().stop_reason(), Some(StopReason::ResetLoop));
    // Still inside the window, the Control domain cannot restart it either...
    assert_eq!(s.call(2, Call::DomctlRestart { domid: 1 }), hc::INVALID);
    // ...once the window has passed, it can.
    s.fake.now.store(RESTART_WINDOW_US + 5000, Ordering::Relaxed);
    assert_eq!(s.call(2, Call::DomctlRestart { domid: 1 }), hc::SUCCESS);
    assert_eq!(s.d(1).state(), State::Running);
}

#[test]
fn a_restart_deactivates_its_device_interrupts_and_keeps_forwarding_them() {
    // DOM1 owns a device with SPI 40 (HW-linked); it resets while the interrupt is active
    // (taken, never finished): the SPI is deactivated at the distributor before it runs
    // again, and is still forwarded to it after.
    let s = system(
        |f| {
            let mut p = super::fake::parts(f, 1, &[0], 0, 0, true);
            p.forwarded = vec![40];
            p.vgic.forward(40);
            vec![Domain::new(p)]
        },
        None,
        None,
    );
    s.sys.start();
    s.enter(1);
    assert!(s.sys.forward_irq(40));
    s.fake.clear_ops();
    s.hvc(1, 0, [SYSTEM_RESET, 0, 0, 0]);
    s.sys.leave(s.d(1), 0, End::DomainStopped);
    assert_eq!(s.d(1).state(), State::Running, "rebuilt");
    assert!(s.fake.ops().contains(&Op::DeactivateSpi(40)), "{:?}", s.fake.ops());
    assert!(s.sys.forward_irq(40), "still its interrupt after the restart");
}
