//! Host tests of copy-on-write kernel pages through the run-time core: guest buffers that
//! lie in shared pages, the faults sharing explains (and those it does not), and a restart
//! giving copied pages the module's bytes again.

use super::exits::{End, Outcome};
use super::fake::{GUEST_RAM, MODULE, Op, SYSTEM_OFF, TABLES, domain, ram_of, system};
use super::vcpu::GuestRegs;
use crate::config::{Functions, Permissions};
use crate::hypercall::{self as hc, Blob, Call};
use crate::trap::Exit;

const CONTROL: u32 = Permissions::CONTROL;
const BOOT: u32 = Functions::BOOT;

#[test]
fn buffers_inside_shared_kernel_pages_follow_stage2() {
    // DOM9's first four kernel pages are the module's: HL_READ into one makes the page its
    // own before writing (the module is never written); a buffer in a page still shared is
    // read from the module, as the guest sees it.
    let s =
        system(|f| vec![domain(f, 9, &[0], 0, BOOT, true), domain(f, 2, &[1], 0, 0, false)], Some(9), None);
    s.sys.start();
    s.enter(9);
    let module = s.fake.peek(MODULE, 0x4000);
    s.fake.poke(ram_of(9) + 0x2000, b"hidden private page");
    s.fake.poke(MODULE + 0x2000, b"quiet\0");
    assert_eq!(s.call(9, Call::SetBootargs { domid: 2, src: GUEST_RAM + 0x2000, len: 5 }), hc::SUCCESS);
    assert_eq!(s.d(2).dtb_spec().bootargs.as_deref(), Some("quiet"), "the guest's view: the module's page");
    assert_eq!(s.call(9, Call::Read { blob: Blob::Lcm, dst: GUEST_RAM + 0x1010, offset: 0, len: 7 }), 7);
    assert_eq!(s.fake.peek(ram_of(9) + 0x1010, 7), b"\xd0\x0d\xfe\xedLCM", "written into its own page");
    assert_eq!(s.fake.peek(ram_of(9) + 0x1000, 16), module[0x1000..0x1010], "the rest of the page copied");
    assert_eq!(s.fake.peek(MODULE + 0x1000, 0x1000), module[0x1000..0x2000], "the module is untouched");
    let entry = s.fake.peek(TABLES + 9 * 4096 + 8, 8);
    assert_eq!(u64::from_le_bytes(entry.try_into().unwrap()), 0x4c3 | (ram_of(9) + 0x1000), "remapped");
    assert!(s.fake.ops().contains(&Op::Replace { ipa: GUEST_RAM + 0x1000, local: true }));
}

#[test]
fn copy_on_write_faults_and_restart_restores_the_module() {
    let s =
        system(|f| vec![domain(f, 1, &[0], 0, 0, true), domain(f, 2, &[1], CONTROL, 0, false)], None, None);
    s.sys.start();
    s.enter(1);
    let d = s.d(1);
    // A write to a shared page: copied, then retried.
    let mut regs = GuestRegs::default();
    let write = Exit::DataAbort {
        ipa: GUEST_RAM + 0x3008,
        va: 0xffff_0000_0000_3008,
        write: true,
        access: None,
        perm: true,
    };
    assert_eq!(s.sys.handle_exit(d, 0, write, &mut regs, false), Outcome::Resume);
    assert_eq!(d.cow.as_ref().unwrap().copied.load(core::sync::atomic::Ordering::Relaxed), 1);
    // The guest writes a canary there; after a restart the page holds the module's bytes.
    s.fake.poke(ram_of(1) + 0x3008, b"CANARY");
    s.hvc(1, 0, [SYSTEM_OFF, 0, 0, 0]);
    s.sys.leave(d, 0, End::DomainStopped);
    assert_eq!(s.call(2, Call::DomctlRestart { domid: 1 }), hc::SUCCESS);
    assert_eq!(s.fake.peek(ram_of(1) + 0x3008, 6), s.fake.peek(MODULE + 0x3008, 6));
    // A read of a shared page is no copy-on-write fault: an external abort.
    let read =
        Exit::DataAbort { ipa: GUEST_RAM + 0x8_0000_0000, va: 0x10, write: false, access: None, perm: false };
    assert!(matches!(s.sys.handle_exit(d, 0, read, &mut regs, false), Outcome::Inject { .. }));
}

#[test]
fn copy_on_write_faults_it_cannot_explain_are_not_retried() {
    let s = system(|f| vec![domain(f, 1, &[0], 0, 0, true)], None, None);
    s.sys.start();
    s.enter(1);
    let d = s.d(1);
    let mut regs = GuestRegs::default();
    let page = GUEST_RAM + 0x3000;
    let entry = TABLES + 4096 + 3 * 8;
    // A translation fault on a shared page whose entry is valid: another vCPU replaced it
    // meanwhile, the access is retried.
    let translation = Exit::DataAbort { ipa: page + 8, va: 0x8, write: false, access: None, perm: false };
    assert_eq!(s.sys.handle_exit(d, 0, translation, &mut regs, false), Outcome::Resume);
    // An instruction fetch with a permission fault, or a translation fault on an entry
    // that is not valid: nothing sharing can mend, so an abort, not a retry for ever.
    let fetch = Exit::InstructionAbort { ipa: page, va: 0x10, perm: true };
    assert!(matches!(s.sys.handle_exit(d, 0, fetch, &mut regs, false), Outcome::Inject { .. }));
    s.fake.poke(entry, &[0; 8]);
    assert!(matches!(s.sys.handle_exit(d, 0, translation, &mut regs, false), Outcome::Inject { .. }));
    let fetch = Exit::InstructionAbort { ipa: page, va: 0x10, perm: false };
    assert!(matches!(s.sys.handle_exit(d, 0, fetch, &mut regs, false), Outcome::Inject { .. }));
    assert_eq!(d.cow.as_ref().unwrap().copied.load(core::sync::atomic::Ordering::Relaxed), 0);
}
