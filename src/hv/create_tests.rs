//! Host tests of Dynamic mode: a Control domain stages a configuration and a kernel,
//! creates a domain from them, and destroys it; bad requests get a named error and leave
//! free memory as it was.

use alloc::string::String;
use alloc::vec::Vec;

use super::create::RunEnv;
use super::fake::{BASE, MIB, Sys, parts, ram_of, system_free};
use super::life::State;
use crate::guest::{CONTROL_REGS, GuestMap};
use crate::hypercall::{self as hc, Call};

pub(super) const CONTROL: u32 = crate::config::Permissions::CONTROL;
/// Where the tests put request bytes in the caller's RAM (guest address).
pub(super) const BUF: u64 = crate::hv::fake::GUEST_RAM + 0x1_0000;
/// The caller's RAM behind BUF.
pub(super) const BUF_PA: u64 = 0x1_0000;

pub(super) fn env() -> RunEnv {
    RunEnv {
        gic_version: 3,
        pa_bits: 40,
        console: None,
        host_map: GuestMap::XEN,
        vmid_bits: 8,
        online: 0xf,
        gic_spis: 0,
        gicv: None,
    }
}

/// DOM1 holds Control, DOM2 does not; 24 MiB free.
fn sys() -> Sys {
    system_free(
        |f| {
            alloc::vec![
                super::domain::Domain::new(parts(f, 1, &[0], CONTROL, 0, false)),
                super::domain::Domain::new(parts(f, 2, &[1], 0, 0, false)),
            ]
        },
        (None, None),
        Vec::new(),
        (24 * MIB, Some(env())),
    )
}

pub(super) fn kernel(len: usize) -> Vec<u8> {
    let mut k: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
    k[8..32].fill(0);
    k[16..24].copy_from_slice(&(len as u64).to_le_bytes());
    k[0x38..0x3c].copy_from_slice(b"ARM\x64");
    k
}

/// A configuration DTB: one `xen,domain` node with `props` (name, value).
pub(super) fn config(props: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut w = vm_fdt::FdtWriter::new().unwrap();
    let root = w.begin_node("").unwrap();
    let n = w.begin_node("guest").unwrap();
    w.property_string("compatible", "xen,domain").unwrap();
    for (name, value) in props {
        w.property(name, value).unwrap();
    }
    w.end_node(n).unwrap();
    w.end_node(root).unwrap();
    w.finish().unwrap()
}

pub(super) fn memory(kib: u64) -> (&'static str, Vec<u8>) {
    ("memory", kib.to_be_bytes().to_vec())
}

/// `caller` stages `bytes` as `part` through its RAM, in pieces of at most 4 KiB.
pub(super) fn stage(s: &Sys, caller: u16, part: u64, bytes: &[u8]) -> i64 {
    let r = s.call(caller, Call::Stage { part, size: bytes.len() as u64 });
    if r != hc::SUCCESS {
        return r;
    }
    for (i, chunk) in bytes.chunks(4096).enumerate() {
        s.fake.poke(ram_of(caller) + BUF_PA, chunk);
        let off = (i * 4096) as u64;
        let r = s.call(caller, Call::StageWrite { part, offset: off, src: BUF, len: chunk.len() as u64 });
        if r != chunk.len() as i64 {
            return r;
        }
    }
    hc::SUCCESS
}

/// Creates from `cfg` and a 64 KiB kernel: the new domid, or the error message.
pub(super) fn create(s: &Sys, caller: u16, cfg: &[u8], flags: u64) -> Result<u16, String> {
    assert_eq!(stage(s, caller, hc::PART_CONFIG, cfg), hc::SUCCESS);
    assert_eq!(stage(s, caller, hc::PART_KERNEL, &kernel(0x1_0000)), hc::SUCCESS);
    let r = s.sys.hypercall(s.d(caller), Call::Create { flags, msg: BUF, room: 256 });
    if r[0] == hc::SUCCESS as u64 {
        return Ok(r[1] as u16);
    }
    assert_eq!(r[0] as i64, hc::INVALID);
    let raw = s.fake.peek(ram_of(caller) + BUF_PA, r[1] as usize);
    Err(String::from_utf8_lossy(&raw[..raw.len().saturating_sub(1)]).into_owned())
}

pub(super) fn free(s: &Sys) -> u64 {
    s.sys.free_bytes()
}

#[test]
fn a_control_domain_creates_and_destroys_a_domain_and_free_memory_comes_back() {
    let s = sys();
    let before = free(&s);
    let id = create(&s, 1, &config(&[memory(4096)]), 0).unwrap();
    assert_eq!(id, 3, "the lowest free id");
    assert_eq!(
        create(&s, 1, &config(&[memory(4096), ("domid", 2u32.to_be_bytes().to_vec())]), 0),
        Err(String::from("duplicate-domid: /guest: domid 2 is already used by DOM2, which exists"))
    );
    let d = s.sys.domain(id).unwrap();
    assert_eq!(d.state(), State::Running);
    assert!(matches!(*d.vcpus[0].power.lock(), crate::psci::Power::Pending { .. }));
    assert!(d.mmio.find(CONTROL_REGS).is_some() && d.window.is_none(), "no Control: no window");
    assert_eq!((d.vttbr >> 48) as u16, 1, "the lowest VMID no domain holds (test domains hold 0)");
    let ops = s.fake.ops.lock().clone();
    assert!(ops.iter().any(|o| matches!(o, super::fake::Op::FlushVmid(1))), "{ops:?}");
    assert!(
        ops.iter().any(|o| matches!(o, super::fake::Op::Console(super::machine::ConsoleEvent::Added(3))))
    );
    assert!(free(&s) < before - 4 * MIB, "its RAM, tables and kernel taken");
    // Destroyed: its vCPU never ran, so it is reclaimed at once; everything comes back.
    assert_eq!(s.call(1, Call::DomctlDestroy { domid: id }), hc::SUCCESS);
    assert_eq!(s.sys.domain(id).unwrap().state(), State::Reclaimed);
    assert_eq!(free(&s), before);
}

#[test]
fn create_destroy_twenty_times_leaks_nothing_and_reuses_the_slot() {
    let s = sys();
    let before = free(&s);
    for i in 0..20 {
        let id = create(&s, 1, &config(&[memory(4096)]), 0).unwrap_or_else(|e| panic!("round {i}: {e}"));
        assert!(
            id == 3 || id == 4,
            "round {i}: DOM{id}: a destroyed domain's id is not reused while it is listed"
        );
        let ids: Vec<u16> = s.sys.domains.all().iter().map(|d| d.id).collect();
        assert!(
            ids.iter().enumerate().all(|(k, a)| !ids[..k].contains(a)),
            "round {i}: one domain per id: {ids:?}"
        );
        assert_eq!(s.call(1, Call::DomctlDestroy { domid: id }), hc::SUCCESS);
        assert_eq!(free(&s), before, "round {i}");
    }
    let r = s.sys.hypercall(s.d(1), Call::Free);
    assert_eq!(r[2], 2, "two domains exist: the reclaimed slots were reused");
    // Asking for the id of a destroyed domain still listed: it gets it, the old entry goes.
    let listed = s.sys.domains.all().iter().find(|d| d.state() == State::Reclaimed).map(|d| d.id).unwrap();
    let id = create(&s, 1, &config(&[memory(4096), ("domid", u32::from(listed).to_be_bytes().to_vec())]), 0);
    assert_eq!(id, Ok(listed));
    assert_eq!(s.sys.domains.all().iter().filter(|d| d.id == listed).count(), 1);
    assert_eq!(s.sys.domain(listed).unwrap().state(), State::Running);
}

#[test]
fn paused_creation_waits_for_unpause() {
    let s = sys();
    let id = create(&s, 1, &config(&[memory(4096)]), hc::CREATE_PAUSED).unwrap();
    assert_eq!(s.sys.domain(id).unwrap().state(), State::CtlPaused);
    assert_eq!(s.call(1, Call::DomctlUnpause { domid: id }), hc::SUCCESS);
    assert_eq!(s.sys.domain(id).unwrap().state(), State::Running);
}

#[test]
fn bad_requests_are_named_and_take_nothing() {
    let s = sys();
    let before = free(&s);
    let cases: [(Vec<u8>, &str); 6] = [
        (config(&[("cpus", 1u32.to_be_bytes().to_vec())]), "missing-property"),
        (config(&[memory(64 * 1024)]), "out-of-memory"),
        (config(&[memory(4096), ("domid", 2u32.to_be_bytes().to_vec())]), "duplicate-domid"),
        (config(&[memory(4096), ("functions", 1u32.to_be_bytes().to_vec())]), "not-at-run-time"),
        (config(&[memory(4096), ("permissions", 2u32.to_be_bytes().to_vec())]), "not-at-run-time"),
        (b"not a device tree".to_vec(), "corrupt-dtb"),
    ];
    for (cfg, rule) in cases {
        let e = create(&s, 1, &cfg, 0).unwrap_err();
        assert!(e.starts_with(&alloc::format!("{rule}: ")), "{rule}: {e}");
        assert_eq!(free(&s), before, "{rule}: nothing kept");
    }
    // A kernel that is not one.
    assert_eq!(stage(&s, 1, hc::PART_CONFIG, &config(&[memory(4096)])), hc::SUCCESS);
    assert_eq!(stage(&s, 1, hc::PART_KERNEL, &[0x55; 8192]), hc::SUCCESS);
    let r = s.sys.hypercall(s.d(1), Call::Create { flags: 0, msg: BUF, room: 256 });
    assert_eq!(r[0] as i64, hc::INVALID);
    assert_eq!(free(&s), before);
    assert_eq!(s.sys.domains.all().len(), 2, "no domain half-created");
}

#[test]
fn staging_is_in_order_bounded_and_control_only() {
    let s = sys();
    let before = free(&s);
    assert_eq!(s.call(2, Call::Stage { part: hc::PART_KERNEL, size: 4096 }), hc::DENIED);
    assert_eq!(s.call(2, Call::Free), hc::DENIED);
    assert_eq!(s.call(1, Call::Stage { part: 7, size: 4096 }), hc::INVALID);
    assert_eq!(
        s.call(1, Call::Stage { part: hc::PART_CONFIG, size: hc::MAX_CREATE_CONFIG + 1 }),
        hc::INVALID
    );
    assert_eq!(
        s.call(1, Call::Stage { part: hc::PART_KERNEL, size: 1 << 40 }),
        hc::INVALID,
        "more than is free"
    );
    assert_eq!(s.call(1, Call::Stage { part: hc::PART_KERNEL, size: 8192 }), hc::SUCCESS);
    // Not in order, past the end, outside the caller's RAM.
    let w = |offset, src, len| s.call(1, Call::StageWrite { part: hc::PART_KERNEL, offset, src, len });
    assert_eq!(w(4096, BUF, 4096), hc::INVALID);
    assert_eq!(w(0, BUF, 8193), hc::INVALID);
    assert_eq!(w(0, BASE, 4096), hc::INVALID);
    assert_eq!(w(0, BUF, 4096), 4096);
    // Half given: the creation says so and frees what was staged.
    assert_eq!(stage(&s, 1, hc::PART_CONFIG, &config(&[memory(4096)])), hc::SUCCESS);
    let r = s.sys.hypercall(s.d(1), Call::Create { flags: 0, msg: BUF, room: 256 });
    assert_eq!(r[0] as i64, hc::INVALID);
    let msg = s.fake.peek(ram_of(1) + BUF_PA, r[1] as usize);
    assert!(msg.starts_with(b"incomplete: 4096 of the 8192 bytes of its kernel"), "{msg:?}");
    assert_eq!(free(&s), before);
    // A Control domain that goes away leaves nothing staged behind.
    assert_eq!(s.call(1, Call::Stage { part: hc::PART_KERNEL, size: MIB }), hc::SUCCESS);
    assert!(free(&s) < before);
    assert!(s.sys.destroy(s.d(1), super::life::StopReason::Reclaimed).is_ok());
    assert_eq!(free(&s), before + super::fake::DOM_RAM, "its staging and its RAM");
}

#[test]
fn the_control_device_makes_the_same_calls_as_hvc() {
    let s = sys();
    let c = &s.sys;
    let dev = |id: u16, off: u64, v: Option<u64>| c.control_access(s.d(id), off, 8, v);
    assert_eq!(dev(1, hc::CTL_ID, None), hc::CTL_MAGIC);
    dev(1, hc::CTL_X1, Some(2));
    dev(1, hc::CTL_CALL, Some(u64::from(hc::HL_DOMCTL_QUERY)));
    assert_eq!(dev(1, hc::CTL_R0, None), 0);
    assert_eq!(dev(1, hc::CTL_R0 + 16, None), super::fake::DOM_RAM, "DOM2's RAM in R2");
    // Without Control: DENIED, as by HVC.
    dev(2, hc::CTL_X1, Some(1));
    dev(2, hc::CTL_CALL, Some(u64::from(hc::HL_DOMCTL_PAUSE)));
    assert_eq!(dev(2, hc::CTL_R0, None) as i64, hc::DENIED);
    assert_eq!(s.sys.domain(1).unwrap().state(), State::Paused, "no effect");
    // A function outside hyperlaunch's range, and an access that is not 64-bit.
    dev(1, hc::CTL_CALL, Some(0x8400_0008));
    assert_eq!(dev(1, hc::CTL_R0, None) as i64, hc::NOT_SUPPORTED);
    assert_eq!(c.control_access(s.d(1), hc::CTL_ID, 4, None), 0);
}

#[test]
fn a_stopped_created_domain_is_destroyed_and_its_memory_returned() {
    let s = sys();
    let before = free(&s);
    let id = create(&s, 1, &config(&[memory(4096)]), 0).unwrap();
    let d = s.sys.domain(id).unwrap();
    s.sys.stop(&d, super::life::StopReason::SystemOff);
    assert_eq!(d.state(), State::Stopped, "a stopped domain keeps its memory (for a restart)");
    assert!(free(&s) < before);
    assert_eq!(s.call(1, Call::DomctlDestroy { domid: id }), hc::SUCCESS);
    assert_eq!(d.state(), State::Reclaimed);
    assert_eq!(free(&s), before);
}

#[test]
fn a_created_domain_gets_a_store_slot_and_gives_it_back() {
    // DOM1 holds Control, DOM5 is the store; DOM1 and DOM2 are its launch clients (slots 0, 1).
    let s = system_free(
        |f| {
            alloc::vec![
                super::domain::Domain::new(parts(f, 1, &[0], CONTROL, 0, false)),
                super::domain::Domain::new(parts(f, 2, &[1], 0, 0, false)),
                super::domain::Domain::new(parts(f, 5, &[2], 0, crate::config::Functions::XENSTORE, false)),
            ]
        },
        (None, None),
        Vec::new(),
        (24 * MIB, Some(env())),
    );
    let pending = |id: u16, spi: u32| {
        let intid = crate::vgic::PRIVATE + spi;
        let d = s.sys.domain(id).unwrap();
        let crate::vgic::Access::Done { value, .. } =
            d.vgic.lock().dist_access(0, 0x200 + u64::from(intid / 32) * 4, 4, None)
        else {
            panic!("ISPENDR reads");
        };
        value & (1 << (intid % 32)) != 0
    };
    let clear = |id: u16, spi: u32| {
        let intid = crate::vgic::PRIVATE + spi;
        let d = s.sys.domain(id).unwrap();
        let _ = d.vgic.lock().dist_access(0, 0x280 + u64::from(intid / 32) * 4, 4, Some(1 << (intid % 32)));
    };
    let slot = |k: u64| s.sys.hypercall(s.d(5), Call::StoreClient { slot: k });
    assert_eq!(slot(0)[..2], [0, 1]);
    assert_eq!(slot(1)[..2], [0, 2]);
    assert_eq!(slot(2)[..2], [0, hc::STORE_SLOT_FREE]);
    assert_eq!(slot(30)[0] as i64, hc::INVALID, "30 slots");
    assert_eq!(s.call(2, Call::StoreClient { slot: 0 }), hc::DENIED, "only the store asks");
    // Slot 2's page holds what an earlier client left: the new client finds it zero.
    let page = s.sys.store_rings[2];
    s.fake.poke(page.start(), &[0xaa; 64]);
    let id = create(&s, 1, &config(&[memory(4096)]), 0).unwrap();
    assert_eq!(s.fake.peek(page.start(), 64), [0; 64]);
    assert_eq!(slot(2)[..2], [0, u64::from(id)]);
    assert!(pending(5, crate::store::CHANGED_SPI), "the store is told");
    clear(5, crate::store::CHANGED_SPI);
    let new = s.sys.domain(id).unwrap();
    assert_eq!(s.sys.hypercall(&new, Call::StoreNotify { domid: 5 })[0], 0);
    assert!(pending(5, crate::store::SERVER_SPI_BASE + 2), "slot 2's doorbell");
    assert_eq!(s.call(5, Call::StoreNotify { domid: id }), hc::SUCCESS);
    assert!(pending(id, crate::store::CLIENT_SPI));
    // Destroyed: the slot is free, the store told, the doorbells gone.
    assert_eq!(s.call(1, Call::DomctlDestroy { domid: id }), hc::SUCCESS);
    assert_eq!(slot(2)[..2], [0, hc::STORE_SLOT_FREE]);
    assert!(pending(5, crate::store::CHANGED_SPI));
    assert_eq!(s.call(5, Call::StoreNotify { domid: id }), hc::INVALID);
    // A failed creation takes no slot.
    assert!(create(&s, 1, &config(&[memory(64 * 1024)]), 0).is_err());
    assert_eq!(slot(2)[..2], [0, hc::STORE_SLOT_FREE]);
}
