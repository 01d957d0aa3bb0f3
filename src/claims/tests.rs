use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use vm_fdt::FdtWriter;

use super::*;
use crate::devices::CopiedNode;

/// QEMU virt's shape: 1 GiB of RAM at 0x4000_0000, a GICv3, the PL011 console (SPI 1),
/// an RTC (SPI 2), a GPIO controller (SPI 7), and a second GPIO sharing SPI 7.
fn host() -> Vec<u8> {
    host_with_ram(0x4000_0000, 0x4000_0000)
}

/// As [`host`], with RAM at `base` (`size` bytes).
pub(crate) fn host_with_ram(base: u64, size: u64) -> Vec<u8> {
    let mut w = FdtWriter::new().unwrap();
    let root = w.begin_node("").unwrap();
    w.property_u32("#address-cells", 2).unwrap();
    w.property_u32("#size-cells", 2).unwrap();
    w.property_u32("interrupt-parent", 1).unwrap();
    let n = w.begin_node("chosen").unwrap();
    w.property_string("stdout-path", "/pl011@9000000").unwrap();
    w.end_node(n).unwrap();
    let n = w.begin_node(&alloc::format!("memory@{base:x}")).unwrap();
    w.property_string("device_type", "memory").unwrap();
    w.property_array_u64("reg", &[base, size]).unwrap();
    w.end_node(n).unwrap();
    let n = w.begin_node("psci").unwrap();
    w.property_string("compatible", "arm,psci-1.0").unwrap();
    w.property_string("method", "smc").unwrap();
    w.end_node(n).unwrap();
    let cpus = w.begin_node("cpus").unwrap();
    w.property_u32("#address-cells", 1).unwrap();
    w.property_u32("#size-cells", 0).unwrap();
    let c = w.begin_node("cpu@0").unwrap();
    w.property_string("device_type", "cpu").unwrap();
    w.property_u32("reg", 0).unwrap();
    w.property_string("enable-method", "psci").unwrap();
    w.end_node(c).unwrap();
    w.end_node(cpus).unwrap();
    let n = w.begin_node("intc@8000000").unwrap();
    w.property_string("compatible", "arm,gic-v3").unwrap();
    w.property_u32("phandle", 1).unwrap();
    w.property_null("interrupt-controller").unwrap();
    w.property_array_u64("reg", &[0x800_0000, 0x1_0000, 0x80a_0000, 0xf6_0000]).unwrap();
    w.end_node(n).unwrap();
    for (name, base, spi) in [
        ("pl011@9000000", 0x900_0000u64, 1u32),
        ("pl031@9010000", 0x901_0000, 2),
        ("pl061@9030000", 0x903_0000, 7),
        ("gpio@9040000", 0x904_0000, 7),
    ] {
        let n = w.begin_node(name).unwrap();
        let compatible = if name.starts_with("pl011") { "arm,pl011" } else { "arm,primecell" };
        w.property_string("compatible", compatible).unwrap();
        w.property_array_u64("reg", &[base, 0x1000]).unwrap();
        w.property_array_u32("interrupts", &[0, spi, 4]).unwrap();
        w.end_node(n).unwrap();
    }
    w.end_node(root).unwrap();
    w.finish().unwrap()
}

fn dev(name: &str, regs: &[(u64, u64)], path: Option<&str>, force: bool) -> Passthrough {
    Passthrough {
        node: CopiedNode { name: name.into(), props: Vec::new() },
        regs: regs.iter().map(|&(pa, size)| (pa, size, pa)).collect(),
        host_path: path.map(String::from),
        force_without_iommu: force,
    }
}

fn gpio(force: bool) -> Passthrough {
    dev("pl061@9030000", &[(0x903_0000, 0x1000)], Some("/pl061@9030000"), force)
}

fn refused(c: &Claims, domid: u16) -> Option<&str> {
    c.refused.iter().find(|(d, _)| *d == domid).map(|(_, w)| w.as_str())
}

#[test]
fn a_device_given_with_its_interrupt() {
    let c = check(&host(), &[(2, vec![gpio(true)])]);
    assert_eq!(c.refused, []);
    assert_eq!(c.assigned, [(2, Range { start: 0x903_0000, end: 0x903_1000 })]);
    assert_eq!(c.unprotected, [(2, "/passthrough/pl061@9030000".to_string())]);
}

#[test]
fn xen_reg_may_not_reach_ram_the_gic_or_the_console() {
    for (r, what) in [
        ((0x4020_0000, 0x1000), "RAM at [0x40000000, 0x80000000)"),
        ((0x7fff_f000, 0x2000), "RAM"),
        ((0x800_0000, 0x1000), "the interrupt controller at [0x8000000, 0x8010000)"),
        ((0x80a_0000, 0x1000), "the interrupt controller"),
        ((0x900_0000, 0x1000), "the hypervisor's console UART"),
    ] {
        let c = check(&host(), &[(2, vec![dev("x@0", &[r], None, true)])]);
        let why = refused(&c, 2).unwrap_or_else(|| panic!("{r:x?} accepted"));
        assert!(why.starts_with("/passthrough/x@0: xen,reg ") && why.contains(what), "{r:x?}: {why}");
        assert_eq!(c.assigned, [], "nothing of a refused domain is given");
    }
}

#[test]
fn xen_path_may_not_name_the_console_or_the_gic_or_nothing() {
    for (path, want) in [
        ("/pl011@9000000", "xen,path /pl011@9000000 is the hypervisor's console UART"),
        ("/intc@8000000", "xen,path /intc@8000000 is the interrupt controller"),
        ("/nowhere", "xen,path /nowhere: no such node in the host device tree"),
    ] {
        let c = check(&host(), &[(2, vec![dev("x@0", &[(0x903_0000, 0x1000)], Some(path), true)])]);
        assert_eq!(refused(&c, 2), Some(alloc::format!("/passthrough/x@0: {want}").as_str()));
    }
}

#[test]
fn two_domains_may_not_claim_the_same_page_or_spi() {
    // The second claim of the same page is refused, the first kept.
    let c = check(&host(), &[(2, vec![gpio(true)]), (3, vec![gpio(true)])]);
    assert_eq!(c.assigned.iter().map(|(d, _)| *d).collect::<Vec<_>>(), [2]);
    let why = refused(&c, 3).unwrap();
    assert!(why.contains("overlaps [0x9030000, 0x9031000), given to DOM2"), "{why}");
    // Another device whose interrupt is the same SPI.
    let other = dev("gpio@9040000", &[(0x904_0000, 0x1000)], Some("/gpio@9040000"), true);
    let c = check(&host(), &[(2, vec![gpio(true)]), (3, vec![other])]);
    assert_eq!(
        refused(&c, 3),
        Some("/passthrough/gpio@9040000: xen,path /gpio@9040000: INTID 39 is given to DOM2")
    );
    // One domain may list a page twice (two nodes of one device).
    let twice = vec![gpio(true), dev("again@0", &[(0x903_0000, 0x1000)], None, true)];
    assert_eq!(check(&host(), &[(2, twice)]).refused, []);
}

#[test]
fn without_an_iommu_a_device_needs_force_assign() {
    let c = check(
        &host(),
        &[(2, vec![gpio(false)]), (3, vec![dev("rtc@0", &[(0x901_0000, 0x1000)], None, true)])],
    );
    let why = refused(&c, 2).unwrap();
    assert!(why.contains("programs no IOMMU") && why.contains("xen,force-assign-without-iommu"), "{why}");
    // The other domain is not affected.
    assert_eq!(c.assigned, [(3, Range { start: 0x901_0000, end: 0x901_1000 })]);
}

#[test]
fn a_claim_at_run_time_is_checked_against_what_existing_domains_hold() {
    let held = Held { mmio: vec![(1, Range { start: 0x903_0000, end: 0x903_1000 })], spis: vec![(34, 1)] };
    let c = check_held(&host(), &held, &[(5, vec![gpio(true)])], None);
    let why = refused(&c, 5).unwrap();
    assert!(why.contains("overlaps [0x9030000, 0x9031000), given to DOM1"), "{why}");
    assert_eq!(c.assigned, [], "what is held is not given again");
    // The RTC's SPI (INTID 34) is held by DOM1 through another device.
    let rtc = dev("pl031@9010000", &[(0x901_0000, 0x1000)], Some("/pl031@9010000"), true);
    let c = check_held(&host(), &Held { mmio: vec![], spis: vec![(34, 1)] }, &[(5, vec![rtc.clone()])], None);
    assert_eq!(
        refused(&c, 5),
        Some("/passthrough/pl031@9010000: xen,path /pl031@9010000: INTID 34 is given to DOM1")
    );
    // Nothing held: given, and only the new claim is in `assigned`.
    let c = check_held(&host(), &Held { mmio: held.mmio.clone(), spis: vec![] }, &[(5, vec![rtc])], None);
    assert_eq!(c.refused, []);
    assert_eq!(c.assigned, [(5, Range { start: 0x901_0000, end: 0x901_1000 })]);
}

#[test]
fn nothing_is_given_against_a_host_device_tree_that_cannot_be_read() {
    let claims = vec![(2, vec![gpio(true)]), (3, vec![])];
    let c = check(b"not a device tree", &claims);
    assert!(c.assigned.is_empty() && c.spis.is_empty() && c.unprotected.is_empty());
    assert!(refused(&c, 2).is_some_and(|w| w.contains("the host device tree cannot be read")), "{c:?}");
    assert_eq!(refused(&c, 3), None, "a domain that claims nothing is not refused");
    // A tree without a usable platform (no GIC, no memory) is no better.
    let mut w = FdtWriter::new().unwrap();
    let root = w.begin_node("").unwrap();
    w.end_node(root).unwrap();
    let c = check(&w.finish().unwrap(), &claims);
    assert!(refused(&c, 2).is_some_and(|w| w.contains("no usable platform")), "{c:?}");
}
