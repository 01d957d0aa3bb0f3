//! Host tests of the guest device tree writer.

use super::*;
use crate::fdt::Fdt;

fn sample(gic: u32) -> Vec<u8> {
    GuestDtb {
        domid: 3,
        permissions: 2,
        functions: 4,
        cpus: 2,
        ram: &[(0x4000_0000, 128 << 20)],
        bootargs: Some("console=ttyAMA0"),
        ramdisk: Some((0x4280_0000, 0x1000)),
        vuart: true,
        gic_version: gic,
        failures: &[],
        additions: &[],
        store: None,
        devices: &[],
        map: guest::GuestMap::XEN,
        control: None,
        virtio: &[],
        shm: &[],
        rng_seed: None,
    }
    .build()
    .unwrap()
}

#[test]
fn round_trip_through_the_reader() {
    let blob = sample(3);
    let fdt = Fdt::new(&blob).unwrap();
    let chosen = fdt.find("/chosen").unwrap();
    assert_eq!(chosen.property("bootargs").unwrap().as_str(), Some("console=ttyAMA0"));
    assert_eq!(chosen.property("stdout-path").unwrap().as_str(), Some("/uart@22000000"));
    assert_eq!(chosen.property("linux,initrd-end").unwrap().u64(), Some(0x4280_1000));
    let cpus: Vec<u32> =
        fdt.find("/cpus").unwrap().children().map(|c| c.property("reg").unwrap().u32().unwrap()).collect();
    assert_eq!(cpus, vec![0, 1]);
    let mem = fdt.find("/memory").unwrap();
    assert_eq!(fdt.reg(&mem).unwrap().collect::<Vec<_>>(), vec![(0x4000_0000, 128 << 20)]);
    assert_eq!(fdt.find("/psci").unwrap().property("method").unwrap().as_str(), Some("hvc"));
    let hv = fdt.find("/hypervisor").unwrap();
    assert!(hv.is_compatible("hyperlaunch,hypervisor") && !hv.is_compatible("xen,xen"));
    assert_eq!(hv.property("domid").unwrap().u32(), Some(3));
    let uart = fdt.find("/uart@22000000").unwrap();
    assert!(uart.is_compatible("arm,sbsa-uart"));
    assert_eq!(uart.property("current-speed").unwrap().u32(), Some(115_200));
    // The platform reader sees what a guest would: its UART, GIC and memory.
    let p = crate::platform::Platform::from_fdt(&fdt, None).unwrap();
    assert_eq!(p.uart.unwrap().base, 0x2200_0000);
    assert_eq!(
        p.gic,
        Some(crate::platform::Gic::V3 { gicd: 0x0300_1000, gicr: 0x0302_0000, gicr_size: 0x4_0000 })
    );
    assert_eq!(p.psci, Some(crate::platform::Conduit::Hvc));
}

#[test]
fn gicv2_and_no_uart() {
    let mut g = GuestDtb {
        domid: 1,
        permissions: 0,
        functions: 0,
        cpus: 1,
        ram: &[(0x4000_0000, 32 << 20), (0x6000_0000, 32 << 20)],
        bootargs: None,
        ramdisk: None,
        vuart: false,
        gic_version: 2,
        failures: &[],
        additions: &[],
        store: None,
        devices: &[],
        map: guest::GuestMap::XEN,
        control: None,
        virtio: &[],
        shm: &[],
        rng_seed: None,
    };
    let blob = g.build().unwrap();
    let fdt = Fdt::new(&blob).unwrap();
    assert!(fdt.find("/uart@22000000").is_none());
    assert!(fdt.find("/chosen").unwrap().property("stdout-path").is_none());
    assert!(fdt.all_nodes().any(|n| n.is_compatible("arm,cortex-a15-gic")));
    let mem = fdt.find("/memory").unwrap();
    assert_eq!(
        fdt.reg(&mem).unwrap().collect::<Vec<_>>(),
        vec![(0x4000_0000, 32 << 20), (0x6000_0000, 32 << 20)]
    );
    g.gic_version = 3;
    assert_ne!(g.build().unwrap(), blob);
    let _ = sample(2);
}

#[test]
fn links_control_device_and_shared_memory_nodes() {
    let shm = [(0x1000_0000u64, 0x20_0000u64, alloc::string::String::from("hl-shm-0"))];
    let g = GuestDtb {
        domid: 1,
        permissions: 1,
        functions: 0,
        cpus: 1,
        ram: &[(0x4000_0000, 32 << 20)],
        bootargs: None,
        ramdisk: None,
        vuart: true,
        gic_version: 3,
        failures: &[],
        additions: &[],
        store: None,
        devices: &[],
        map: guest::GuestMap::XEN,
        control: Some((guest::CONTROL_REGS, Some((guest::CONTROL_WINDOW, guest::CONTROL_WINDOW_SIZE)))),
        virtio: &[
            (guest::VIRTIO_BASE, guest::VIRTIO_SPI),
            (guest::VIRTIO_BASE + 0x200, guest::VIRTIO_SPI + 1),
        ],
        shm: &shm,
        rng_seed: None,
    };
    let blob = g.build().unwrap();
    let fdt = Fdt::new(&blob).unwrap();
    let v = fdt.find("/virtio_mmio@2000200").unwrap();
    assert!(v.is_compatible("virtio,mmio") && v.property("dma-coherent").is_some());
    assert_eq!(fdt.reg(&v).unwrap().collect::<Vec<_>>(), vec![(0x200_0200, 0x200)]);
    assert_eq!(v.property("interrupts").unwrap().cells().unwrap().collect::<Vec<_>>(), vec![0, 33, 4]);
    let c = fdt.find("/hyperlaunch-control@22800000").unwrap();
    assert_eq!(
        fdt.reg(&c).unwrap().collect::<Vec<_>>(),
        vec![(guest::CONTROL_REGS, 0x1000), (guest::CONTROL_WINDOW, 0x10_0000)]
    );
    // Shared memory as Xen describes it: under /reserved-memory, not in /memory.
    let r = fdt.find("/reserved-memory").unwrap();
    assert!(r.property("ranges").is_some());
    let s = fdt.find("/reserved-memory/xen-shmem@10000000").unwrap();
    assert!(s.is_compatible("xen,shared-memory-v1"));
    assert_eq!(fdt.reg(&s).unwrap().collect::<Vec<_>>(), vec![(0x1000_0000, 0x20_0000)]);
    assert_eq!(s.property("xen,id").unwrap().as_str(), Some("hl-shm-0"));
    assert_eq!(s.property("xen,offset").unwrap().u64(), Some(0));
    let mem = fdt.find("/memory").unwrap();
    assert_eq!(fdt.reg(&mem).unwrap().collect::<Vec<_>>(), vec![(0x4000_0000, 32 << 20)]);
}

#[test]
fn store_nodes() {
    use crate::store::Role;
    let client = Role::Client { server: 5 };
    let server = Role::Server { slots: alloc::vec![Some(1), None, Some(3), None], open: true };
    let mk = |role| {
        GuestDtb {
            domid: 1,
            permissions: 0,
            functions: 0,
            cpus: 1,
            ram: &[(0x4000_0000, 32 << 20)],
            bootargs: None,
            ramdisk: None,
            vuart: true,
            gic_version: 3,
            failures: &[],
            additions: &[],
            store: role,
            devices: &[],
            map: guest::GuestMap::XEN,
            control: None,
            virtio: &[],
            shm: &[],
            rng_seed: None,
        }
        .build()
        .unwrap()
    };
    let blob = mk(Some(&client));
    let fdt = Fdt::new(&blob).unwrap();
    let st = fdt.find("/hypervisor/store").unwrap();
    assert_eq!(st.property("peer").unwrap().u32(), Some(5));
    assert_eq!(st.property("ring").unwrap().u64(), Some(0x2300_0000));
    let blob = mk(Some(&server));
    let fdt = Fdt::new(&blob).unwrap();
    let srv = fdt.find("/hypervisor/store-server").unwrap();
    assert_eq!(srv.property("slots").unwrap().u32(), Some(4));
    assert_eq!(srv.property("interrupts").unwrap().cells().unwrap().collect::<Vec<_>>(), [0, 1, 1]);
    assert_eq!(srv.children().count(), 2, "a node per slot that has a client");
    let c3 = fdt.find("/hypervisor/store-server/client@3").unwrap();
    assert_eq!(c3.property("ring").unwrap().u64(), Some(0x2400_2000), "slot 2");
    assert_eq!(c3.property("interrupts").unwrap().cells().unwrap().collect::<Vec<_>>(), [0, 4, 1]);
    let blob = mk(None);
    let fdt = Fdt::new(&blob).unwrap();
    assert!(fdt.find("/hypervisor/store").is_none() && fdt.find("/hypervisor/store-server").is_none());
}

#[test]
fn device_nodes_and_host_addresses() {
    use crate::devices::CopiedNode;
    let rtc = CopiedNode {
        name: "pl031@9010000".into(),
        props: alloc::vec![
            ("compatible".into(), b"arm,pl031\0arm,primecell\0".to_vec()),
            ("reg".into(), [0x901_0000u64.to_be_bytes(), 0x1000u64.to_be_bytes()].concat()),
            ("interrupts".into(), [0u32, 2, 4].iter().flat_map(|c| c.to_be_bytes()).collect()),
        ],
    };
    let map = guest::GuestMap { gicd: 0x800_0000, gicr: 0x80a_0000, gicc: 0, vuart: 0x900_0000 };
    let g = GuestDtb {
        domid: 1,
        permissions: 2,
        functions: 0,
        cpus: 2,
        ram: &[(0x5800_0000, 128 << 20)],
        bootargs: None,
        ramdisk: None,
        vuart: true,
        gic_version: 3,
        failures: &[],
        additions: &[],
        store: None,
        devices: core::slice::from_ref(&rtc),
        map,
        control: None,
        virtio: &[],
        shm: &[],
        rng_seed: None,
    };
    let blob = g.build().unwrap();
    let fdt = Fdt::new(&blob).unwrap();
    let n = fdt.find("/pl031@9010000").unwrap();
    assert!(n.is_compatible("arm,pl031"));
    assert_eq!(fdt.reg(&n).unwrap().collect::<Vec<_>>(), [(0x901_0000, 0x1000)]);
    // Its interrupts go to the root's interrupt parent: the virtual GIC, at the host's
    // address, as is the UART.
    let gic = fdt.find("/interrupt-controller@8000000").unwrap();
    assert_eq!(fdt.reg(&gic).unwrap().next(), Some((0x800_0000, 0x1_0000)));
    assert_eq!(
        fdt.root().property("interrupt-parent").unwrap().u32(),
        gic.property("phandle").unwrap().u32()
    );
    assert_eq!(fdt.find("/chosen").unwrap().property("stdout-path").unwrap().as_str(), Some("/uart@9000000"));
}

fn add(path: &str, name: &str, value: &[u8]) -> core::result::Result<DtAddition, AdditionError> {
    let mut buf = Vec::new();
    buf.extend_from_slice(path.as_bytes());
    buf.push(0);
    buf.extend_from_slice(name.as_bytes());
    buf.push(0);
    buf.extend_from_slice(value);
    DtAddition::parse(&buf)
}

#[test]
fn additions_are_checked() {
    assert!(add("/chosen", "hl,note", b"hi\0").is_ok());
    assert!(add("/firmware", "compatible", b"vendor,fw\0").is_ok());
    assert!(add("/reserved@1000", "size", &[0, 0, 0x10, 0]).is_ok());
    assert_eq!(add("/chosen", "bootargs", b"x\0"), Err(AdditionError::Name));
    assert_eq!(add("/chosen", "linux,initrd-start", &[0; 8]), Err(AdditionError::Name));
    assert_eq!(
        add("/chosen", "rng-seed", &[0; 64]),
        Err(AdditionError::Name),
        "a Boot Domain cannot choose a seed"
    );
    assert_eq!(add("/extra", "phandle", &[0, 0, 0, 1]), Err(AdditionError::Name));
    assert_eq!(add("/extra", "", b""), Err(AdditionError::Name));
    assert_eq!(add("/extra", "bad name", b""), Err(AdditionError::Name));
    for p in [
        "/cpus",
        "/memory@40000000",
        "/hypervisor",
        "/interrupt-controller@3001000",
        "/timer",
        "/uart@22000000",
        "/psci",
    ] {
        assert_eq!(add(p, "x", b""), Err(AdditionError::Path), "{p}");
    }
    for p in ["chosen", "/", "/a/b", "/@1", "/sp ace"] {
        assert_eq!(add(p, "x", b""), Err(AdditionError::Path), "{p}");
    }
    assert_eq!(DtAddition::parse(b"/chosen\0only-two"), Err(AdditionError::Malformed));
    assert_eq!(DtAddition::parse(&[b'/', 0xff, 0, b'x', 0]), Err(AdditionError::Malformed));
    // An empty value (a boolean property) is fine.
    assert_eq!(add("/chosen", "hl,flag", b"").unwrap().value, Vec::<u8>::new());
}

#[test]
fn additions_appear_in_the_tree() {
    let additions = [
        add("/chosen", "hl,note", b"hello\0").unwrap(),
        add("/firmware", "compatible", b"vendor,fw\0").unwrap(),
        add("/firmware", "version", &[0, 0, 0, 7]).unwrap(),
        add("/other", "flag", b"").unwrap(),
    ];
    let g = GuestDtb {
        domid: 2,
        permissions: 0,
        functions: 0,
        cpus: 1,
        ram: &[(0x4000_0000, 32 << 20)],
        bootargs: Some("quiet"),
        ramdisk: None,
        vuart: true,
        gic_version: 3,
        failures: &[],
        additions: &additions,
        store: None,
        devices: &[],
        map: guest::GuestMap::XEN,
        control: None,
        virtio: &[],
        shm: &[],
        rng_seed: None,
    };
    let blob = g.build().unwrap();
    let fdt = Fdt::new(&blob).unwrap();
    let chosen = fdt.find("/chosen").unwrap();
    assert_eq!(chosen.property("hl,note").unwrap().as_str(), Some("hello"));
    assert_eq!(chosen.property("bootargs").unwrap().as_str(), Some("quiet"));
    let fw = fdt.find("/firmware").unwrap();
    assert!(fw.is_compatible("vendor,fw"));
    assert_eq!(fw.property("version").unwrap().u32(), Some(7));
    assert!(fdt.find("/other").unwrap().property("flag").is_some());
    assert_eq!(fdt.root().children().filter(|n| n.name() == "firmware").count(), 1);
}
