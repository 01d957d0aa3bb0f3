//! Host tests of what a domain created at run time may be given besides free memory:
//! static memory taken from free memory, devices by a partial device tree, the Hardware
//! permission; each checked against what existing domains hold.

use alloc::string::String;
use alloc::vec::Vec;

use super::create::{RunEnv, RunHost};
use super::create_tests::{BUF, BUF_PA, CONTROL, config, create, env, free, kernel, memory, stage};
use super::fake::{BASE, FAKE_RAM, MIB, Sys, parts, ram_of, system_run};
use crate::hypercall::{self as hc, Call};
use crate::memmap::Range;

/// DOM1 holds Control, DOM2 does not; 24 MiB free after the fake's fixed layout; the host
/// device tree is QEMU virt's shape with the fake's RAM.
fn sys() -> Sys {
    let dtb = crate::claims::tests::host_with_ram(BASE, FAKE_RAM + 24 * MIB);
    let run = RunHost::of(&dtb);
    assert_eq!(run.ram, [Range { start: BASE, end: BASE + FAKE_RAM + 24 * MIB }]);
    system_run(
        |f| {
            alloc::vec![
                super::domain::Domain::new(parts(f, 1, &[0], CONTROL, 0, false)),
                super::domain::Domain::new(parts(f, 2, &[1], 0, 0, false)),
            ]
        },
        (None, None),
        Vec::new(),
        (24 * MIB, Some(RunEnv { console: Some(0x900_0000), ..env() }), run),
    )
}

/// A configuration with `xen,static-mem` = one range (2 cells each).
fn static_config(r: Range) -> Vec<u8> {
    let cells = |v: u32| v.to_be_bytes().to_vec();
    let mut range = r.start.to_be_bytes().to_vec();
    range.extend_from_slice(&r.size().to_be_bytes());
    config(&[
        memory(r.size() / 1024),
        ("#xen,static-mem-address-cells", cells(2)),
        ("#xen,static-mem-size-cells", cells(2)),
        ("xen,static-mem", range),
    ])
}

/// QEMU virt's GPIO controller (0x9030000, SPI 7) as a partial device tree gives it.
fn gpio_partial() -> Vec<u8> {
    let mut w = vm_fdt::FdtWriter::new().unwrap();
    let root = w.begin_node("").unwrap();
    w.property_u32("#address-cells", 2).unwrap();
    w.property_u32("#size-cells", 2).unwrap();
    let pt = w.begin_node("passthrough").unwrap();
    w.property_u32("#address-cells", 2).unwrap();
    w.property_u32("#size-cells", 2).unwrap();
    let n = w.begin_node("pl061@9030000").unwrap();
    w.property_string("compatible", "arm,pl061").unwrap();
    w.property_array_u32("interrupts", &[0, 7, 4]).unwrap();
    w.property_array_u64("xen,reg", &[0x903_0000, 0x1000, 0x903_0000]).unwrap();
    w.property_string("xen,path", "/pl061@9030000").unwrap();
    w.property_null("xen,force-assign-without-iommu").unwrap();
    w.end_node(n).unwrap();
    w.end_node(pt).unwrap();
    w.end_node(root).unwrap();
    w.finish().unwrap()
}

/// Creates from `cfg`, a kernel and the partial device tree `dt`.
fn create_with_dt(s: &Sys, cfg: &[u8], dt: &[u8]) -> Result<u16, String> {
    assert_eq!(stage(s, 1, hc::PART_CONFIG, cfg), hc::SUCCESS);
    assert_eq!(stage(s, 1, hc::PART_KERNEL, &kernel(0x1_0000)), hc::SUCCESS);
    assert_eq!(stage(s, 1, hc::PART_DTB, dt), hc::SUCCESS);
    let r = s.sys.hypercall(s.d(1), Call::Create { flags: 0, msg: BUF, room: 512 });
    if r[0] == hc::SUCCESS as u64 {
        return Ok(r[1] as u16);
    }
    let raw = s.fake.peek(ram_of(1) + BUF_PA, r[1] as usize);
    Err(String::from_utf8_lossy(&raw[..raw.len().saturating_sub(1)]).into_owned())
}

#[test]
fn static_memory_is_taken_from_free_memory_exactly_and_given_back() {
    let s = sys();
    let before = free(&s);
    // 4 MiB at 12 MiB into the free region (free: nothing was allocated there yet).
    let r = Range { start: BASE + FAKE_RAM + 12 * MIB, end: BASE + FAKE_RAM + 16 * MIB };
    let id = create(&s, 1, &static_config(r), 0).unwrap();
    let d = s.sys.domain(id).unwrap();
    let mut got: Vec<(u64, u64)> = d.ram.chunks.iter().map(|&(m, _)| (m.start(), m.end())).collect();
    got.sort_unstable();
    assert_eq!(got.first().map(|g| g.0), Some(r.start));
    assert_eq!(got.iter().map(|g| g.1 - g.0).sum::<u64>(), r.size(), "exactly the range: {got:x?}");
    assert_eq!(d.ram.banks(), [(crate::guest::RAM0_BASE, r.size())], "one bank in the guest");
    // The same range again, or a range over the hypervisor's own fixed layout: not free.
    let e = create(&s, 1, &static_config(r), 0).unwrap_err();
    assert!(e.starts_with("static-mem-overlap: /guest: static memory") && e.contains("not free"), "{e}");
    let e = create(&s, 1, &static_config(Range { start: BASE, end: BASE + MIB }), 0).unwrap_err();
    assert!(e.starts_with("static-mem-overlap: "), "{e}");
    // Outside the host's RAM: named as at boot.
    let far = Range { start: 0x1_0000_0000, end: 0x1_0040_0000 };
    let e = create(&s, 1, &static_config(far), 0).unwrap_err();
    assert!(e.starts_with("outside-ram: "), "{e}");
    // Destroyed: the range is free memory again, and can be taken again.
    assert_eq!(s.call(1, Call::DomctlDestroy { domid: id }), hc::SUCCESS);
    assert_eq!(free(&s), before);
    let id = create(&s, 1, &static_config(r), 0).unwrap();
    assert_eq!(s.call(1, Call::DomctlDestroy { domid: id }), hc::SUCCESS);
    assert_eq!(free(&s), before);
}

#[test]
fn a_partial_device_tree_at_run_time_is_checked_against_existing_domains() {
    let s = sys();
    let before = free(&s);
    let a = create_with_dt(&s, &config(&[memory(4096)]), &gpio_partial()).unwrap();
    let d = s.sys.domain(a).unwrap();
    assert_eq!(d.devices, [Range { start: 0x903_0000, end: 0x903_1000 }]);
    assert_eq!(d.forwarded, [39], "the GPIO's SPI 7");
    let ops = s.fake.ops.lock().clone();
    assert!(ops.iter().any(|o| matches!(o, super::fake::Op::RouteSpi(39, _))), "routed: {ops:?}");
    // A second domain asking for the same controller is refused by name; nothing is kept.
    let mid = free(&s);
    let e = create_with_dt(&s, &config(&[memory(4096)]), &gpio_partial()).unwrap_err();
    assert_eq!(
        e,
        alloc::format!(
            "passthrough: /guest: /passthrough/pl061@9030000: xen,reg [0x9030000, 0x9031000) overlaps [0x9030000, 0x9031000), given to DOM{a}"
        )
    );
    assert_eq!(free(&s), mid);
    // A partial device tree reaching the host's RAM is refused as at boot.
    let mut bad = gpio_partial();
    let at = bad.windows(8).position(|w| w == 0x903_0000u64.to_be_bytes()).unwrap();
    bad[at..at + 8].copy_from_slice(&BASE.to_be_bytes());
    let e = create_with_dt(&s, &config(&[memory(4096)]), &bad).unwrap_err();
    assert!(
        e.starts_with("passthrough: /guest: /passthrough/pl061@9030000: xen,reg") && e.contains("RAM"),
        "{e}"
    );
    // The first goes: the controller can be given again.
    assert_eq!(s.call(1, Call::DomctlDestroy { domid: a }), hc::SUCCESS);
    assert_eq!(free(&s), before);
    let b = create_with_dt(&s, &config(&[memory(4096)]), &gpio_partial()).unwrap();
    assert_eq!(s.sys.domain(b).unwrap().devices, [Range { start: 0x903_0000, end: 0x903_1000 }]);
}

#[test]
fn a_hardware_domain_at_run_time_gets_the_devices_no_one_holds() {
    let s = sys();
    let a = create_with_dt(&s, &config(&[memory(4096)]), &gpio_partial()).unwrap();
    let hw =
        create(&s, 1, &config(&[memory(4096), ("permissions", 2u32.to_be_bytes().to_vec())]), 0).unwrap();
    let d = s.sys.domain(hw).unwrap();
    let mut got = d.devices.clone();
    got.sort_by_key(|r| r.start);
    assert_eq!(
        got,
        [Range { start: 0x901_0000, end: 0x901_1000 }],
        "the RTC: not the console UART, not DOM{a}'s controller, not the GPIO sharing its SPI"
    );
    assert_eq!(d.forwarded, [34]);
    let e = create(&s, 1, &config(&[memory(4096), ("permissions", 2u32.to_be_bytes().to_vec())]), 0);
    assert_eq!(
        e,
        Err(alloc::format!(
            "duplicate-hardware: /guest: a second domain with the hardware permission (the first is DOM{hw})"
        ))
    );
}
