//! Host tests of the launch configuration: device trees are built inside each test.

use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use vm_fdt::FdtWriter;

use super::*;

/// A property value for the test tree builder.
#[derive(Clone)]
enum V {
    U32(u32),
    Cells(Vec<u32>),
    Str(&'static str),
    Strs(Vec<&'static str>),
    Bytes(Vec<u8>),
    Empty,
}

/// A node of a test tree.
#[derive(Clone)]
struct N {
    name: String,
    props: Vec<(&'static str, V)>,
    kids: Vec<N>,
}

fn n(name: &str) -> N {
    N { name: name.into(), props: Vec::new(), kids: Vec::new() }
}

impl N {
    fn p(mut self, name: &'static str, v: V) -> N {
        self.props.retain(|(k, _)| *k != name);
        self.props.push((name, v));
        self
    }
    fn without(mut self, name: &str) -> N {
        self.props.retain(|(k, _)| *k != name);
        self
    }
    fn c(mut self, kid: N) -> N {
        self.kids.push(kid);
        self
    }
    fn write(&self, w: &mut FdtWriter) {
        let node = w.begin_node(&self.name).unwrap();
        for (k, v) in &self.props {
            match v {
                V::U32(x) => w.property_u32(k, *x).unwrap(),
                V::Cells(c) => w.property_array_u32(k, c).unwrap(),
                V::Str(s) => w.property_string(k, s).unwrap(),
                V::Strs(s) => w.property_string_list(k, s.iter().map(|x| x.to_string()).collect()).unwrap(),
                V::Bytes(b) => w.property(k, b).unwrap(),
                V::Empty => w.property_null(k).unwrap(),
            }
        }
        for kid in &self.kids {
            kid.write(w);
        }
        w.end_node(node).unwrap();
    }
}

/// A QEMU-virt-like host: 1 GiB of RAM at 0x4000_0000, 4 CPUs, PSCI, with `chosen` as given.
fn host(chosen: N) -> Vec<u8> {
    host_with(chosen, None)
}

fn host_with(chosen: N, reserved: Option<N>) -> Vec<u8> {
    let mut cpus = n("cpus").p("#address-cells", V::U32(1)).p("#size-cells", V::U32(0));
    for i in 0..4 {
        cpus = cpus.c(n(&format!("cpu@{i}"))
            .p("device_type", V::Str("cpu"))
            .p("reg", V::U32(i))
            .p("enable-method", V::Str("psci")));
    }
    let mut root = n("")
        .p("#address-cells", V::U32(2))
        .p("#size-cells", V::U32(2))
        .c(chosen)
        .c(n("memory@40000000")
            .p("device_type", V::Str("memory"))
            .p("reg", V::Cells(vec![0, 0x4000_0000, 0, 0x4000_0000])))
        .c(n("psci").p("compatible", V::Str("arm,psci-1.0")).p("method", V::Str("smc")))
        .c(cpus);
    if let Some(r) = reserved {
        root = root.c(r);
    }
    let mut w = FdtWriter::new().unwrap();
    root.write(&mut w);
    w.finish().unwrap()
}

fn kernel(addr: u32, size: u32) -> N {
    n(&format!("module@{addr:x}"))
        .p("compatible", V::Str("module,kernel"))
        .p("module-addr", V::Cells(vec![addr, size]))
}

/// A valid Hyperlaunch domain node: 64 MiB, one vCPU, the shared kernel at 0x4900_0000.
fn dom(unit: u32) -> N {
    n(&format!("domain@{unit}"))
        .p("compatible", V::Str("xen,domain"))
        .p("memory", V::Cells(vec![0, 64 * 1024]))
        .p("#address-cells", V::U32(1))
        .p("#size-cells", V::U32(1))
        .c(kernel(0x4900_0000, 0x200_0000))
}

fn lcm(domains: Vec<N>) -> N {
    let mut hv = n("hypervisor").p("compatible", V::Str("hypervisor,xen"));
    for d in domains {
        hv = hv.c(d);
    }
    n("chosen").c(hv)
}

fn parse(blob: &[u8]) -> Result<LaunchConfig, ConfigError> {
    parse_blob(blob).map(|(_, c)| c)
}

fn err(blob: &[u8]) -> ConfigError {
    parse(blob).expect_err("configuration should be refused")
}

const P: &str = "/chosen/hypervisor";

/// Two domains sharing one kernel (0x4900_0000) and one ramdisk (0x4b00_0000), for other
/// modules' tests.
pub(crate) fn two_linux_domains_blob() -> Vec<u8> {
    let ramdisk = n("module@4b000000")
        .p("compatible", V::Str("module,ramdisk"))
        .p("module-addr", V::Cells(vec![0x4b00_0000, 0x10_0000]));
    host(lcm(vec![dom(1).c(ramdisk.clone()), dom(2).c(ramdisk)]))
}

#[test]
fn hyperlaunch_domain_properties() {
    let d1 = dom(1)
        .p("domid", V::U32(7))
        .p("permissions", V::U32(2))
        .p("functions", V::U32(Functions::CONSOLE | Functions::XENSTORE))
        .p("mode", V::U32(4))
        .p("cpus", V::U32(2))
        .p("domain-uuid", V::Bytes((0..16).collect()))
        .p("security-id", V::Str("hw_t"))
        .p("bootargs", V::Str("from-domain"))
        .p("vpl011", V::Str("disabled"))
        .p("colour", V::Str("blue"))
        .c(n("module@4b000000")
            .p("compatible", V::Str("module,ramdisk"))
            .p("module-addr", V::Cells(vec![0x4b00_0000, 0x1000])))
        .c(n("gadget"));
    let mut d1 = d1;
    d1.kids[0] = kernel(0x4900_0000, 0x200_0000).p("bootargs", V::Str("from-module"));
    let chosen = n("chosen").c(n("hypervisor")
        .p("compatible", V::Str("hypervisor,xen"))
        .p("console-switch", V::Str("disabled"))
        .p("boot-timeout-ms", V::U32(1500))
        .c(n("config")
            .p("compatible", V::Str("xen,config"))
            .p("#address-cells", V::U32(1))
            .p("#size-cells", V::U32(1))
            .c(n("module@4c000000")
                .p("compatible", V::Str("module,xsm-policy"))
                .p("module-addr", V::Cells(vec![0x4c00_0000, 0x100]))))
        .c(d1));
    let cfg = parse(&host(chosen)).unwrap();
    assert_eq!(cfg.path, BootPath::Hyperlaunch);
    assert!(!cfg.console_switch);
    assert_eq!(cfg.boot_timeout_ms, 1500);
    let d = &cfg.domains[0];
    assert_eq!((d.domid, d.requested_domid), (7, Some(7)));
    assert_eq!(d.permissions, Permissions(Permissions::HARDWARE));
    assert_eq!(d.functions, Functions(Functions::CONSOLE | Functions::XENSTORE));
    assert_eq!((d.cpus, d.memory_kib), (2, 65536));
    assert_eq!(d.uuid.unwrap()[15], 15);
    assert_eq!(d.security_id.as_deref(), Some("hw_t"));
    assert_eq!(d.bootargs.as_deref(), Some("from-module"), "the kernel module's bootargs win");
    assert!(!d.vuart);
    assert_eq!(d.kernel.as_ref().unwrap().range, Range { start: 0x4900_0000, end: 0x4b00_0000 });
    assert_eq!(d.ramdisk.as_ref().unwrap().node, "/chosen/hypervisor/domain@1/module@4b000000");
    let notes: Vec<String> = cfg.notes.iter().map(|n| n.to_string()).collect();
    assert!(
        notes.iter().any(|n| n == "/chosen/hypervisor/domain@1: unknown property 'colour' ignored"),
        "{notes:?}"
    );
    assert!(notes.iter().any(|n| n == "/chosen/hypervisor/domain@1/gadget: unknown node ignored"));
    assert!(notes.iter().any(|n| n.contains("module@4c000000: XSM policy and microcode")));
    assert!(!cfg.is_dynamic());
}

#[test]
fn domids_requested_automatic_and_legacy() {
    let cfg = parse(&host(lcm(vec![
        dom(1),
        dom(2).p("domid", V::U32(1)),
        dom(3).p("functions", V::U32(Functions::BOOT)).p("domid", V::U32(0x7ff5)),
        dom(4).p("functions", V::U32(Functions::LEGACY_DOM0)),
        dom(5).p("domid", V::U32(0)),
    ])))
    .unwrap();
    let ids: Vec<u16> = cfg.domains.iter().map(|d| d.domid).collect();
    assert_eq!(ids, vec![2, 1, 0x7ff5, 0, 3]);
}

#[test]
fn hyperlaunch_wins_over_dom0less_nodes() {
    let chosen = lcm(vec![dom(1)]).c(n("domU1")
        .p("compatible", V::Str("xen,domain"))
        .p("cpus", V::U32(1))
        .p("memory", V::Cells(vec![0, 1024])));
    assert_eq!(parse(&host(chosen)).unwrap().path, BootPath::Hyperlaunch);
}

fn mb_kernel(addr: u32) -> N {
    n(&format!("module@{addr:x}"))
        .p("compatible", V::Strs(vec!["multiboot,kernel", "multiboot,module"]))
        .p("reg", V::Cells(vec![0, addr, 0x200_0000]))
}

fn domu(name: &str) -> N {
    n(name)
        .p("compatible", V::Str("xen,domain"))
        .p("#address-cells", V::U32(2))
        .p("#size-cells", V::U32(1))
        .p("memory", V::Cells(vec![0, 128 * 1024]))
        .p("cpus", V::U32(2))
        .c(mb_kernel(0x4900_0000).p("bootargs", V::Str("console=ttyAMA0")))
}

#[test]
fn dom0less_domains() {
    let chosen =
        n("chosen").c(domu("domU1").p("vpl011", V::Empty).p("capabilities", V::U32(0x4))).c(domu("domU2")
            .p("capabilities", V::U32(0x3))
            .c(n("vcpu0")
                .p("compatible", V::Str("xen,vcpu"))
                .p("id", V::U32(1))
                .p("hard-affinity", V::Str("1-2,0"))));
    let cfg = parse(&host(chosen)).unwrap();
    assert_eq!(cfg.path, BootPath::Dom0less);
    let (a, b) = (&cfg.domains[0], &cfg.domains[1]);
    assert_eq!((a.domid, b.domid), (1, 2));
    assert!(a.vuart && !b.vuart);
    // capabilities 0x4 is XENSTORE, not the Hyperlaunch CONSOLE bit.
    assert_eq!(a.functions, Functions(Functions::XENSTORE));
    assert_eq!(a.permissions, Permissions(0));
    assert_eq!(b.permissions, Permissions(Permissions::CONTROL | Permissions::HARDWARE));
    assert_eq!(b.affinity, vec![VcpuAffinity { vcpu: 1, cpus: 0b111 }]);
    assert_eq!(a.bootargs.as_deref(), Some("console=ttyAMA0"));
    assert!(cfg.is_dynamic());
    // Console: the first domain with a virtual UART.
    assert_eq!(cfg.console_domain().map(|(d, explicit)| (d.domid, explicit)), Some((1, false)));
}

#[test]
fn dom0less_static_memory_and_direct_map() {
    let chosen = n("chosen").c(domu("domU1")
        .p("direct-map", V::Empty)
        .p("#xen,static-mem-address-cells", V::U32(1))
        .p("#xen,static-mem-size-cells", V::U32(1))
        .p("xen,static-mem", V::Cells(vec![0x6000_0000, 0x400_0000, 0x7000_0000, 0x400_0000])));
    let cfg = parse(&host(chosen)).unwrap();
    let d = &cfg.domains[0];
    assert!(d.direct_map);
    assert_eq!(d.static_mem.len(), 2);
}

#[test]
fn dom0less_with_dom0_takes_what_is_left() {
    let chosen = n("chosen")
        .p("#address-cells", V::U32(2))
        .p("#size-cells", V::U32(1))
        .c(mb_kernel(0x4900_0000))
        .c(domu("domU1"));
    let cfg = parse(&host(chosen)).unwrap();
    assert_eq!(cfg.domains.len(), 2);
    let (dom0, domu) = (&cfg.domains[0], &cfg.domains[1]);
    assert_eq!((dom0.domid, domu.domid), (0, 1));
    assert!(dom0.functions.has(Functions::LEGACY_DOM0) && dom0.direct_map);
    // 1 GiB less the 64 MiB heap and the 32 MiB kernel, less the domU and 16 MiB of slack.
    let free_kib = (1024 - 64 - 32) * 1024;
    assert_eq!(dom0.memory_kib, free_kib - 128 * 1024 - 16 * 1024);
}

#[test]
fn classic_dom0_from_chosen() {
    let chosen = n("chosen")
        .p("#address-cells", V::U32(2))
        .p("#size-cells", V::U32(1))
        .p("xen,xen-bootargs", V::Str("loglvl=debug dom0_mem=512M,max:512M dom0_max_vcpus=1-3"))
        .p("bootargs", V::Str("console=hvc0"))
        .c(mb_kernel(0x4900_0000).p("bootargs", V::Str("from-module")))
        .c(n("module@4b000000")
            .p("compatible", V::Strs(vec!["multiboot,ramdisk", "multiboot,module"]))
            .p("reg", V::Cells(vec![0, 0x4b00_0000, 0x1000])));
    let cfg = parse(&host(chosen.clone())).unwrap();
    assert_eq!(cfg.path, BootPath::Classic);
    let d = &cfg.domains[0];
    assert_eq!((d.domid, d.memory_kib, d.cpus), (0, 512 * 1024, 3));
    assert_eq!(d.permissions.0, 3);
    assert_eq!(d.functions.0, 0xC000_0006);
    assert_eq!(d.bootargs.as_deref(), Some("from-module"));
    assert!(d.ramdisk.is_some());
    // xen,dom0-bootargs wins over the module's; without dom0_mem the dom0 takes free RAM.
    let chosen2 = chosen.p("xen,dom0-bootargs", V::Str("dom0-args")).p("xen,xen-bootargs", V::Str(""));
    let cfg2 = parse(&host(chosen2)).unwrap();
    assert_eq!(cfg2.domains[0].bootargs.as_deref(), Some("dom0-args"));
    assert_eq!(cfg2.domains[0].cpus, 4);
    // Free: 1 GiB less the 32 MiB kernel and the ramdisk's page, less the 64 MiB heap and
    // 16 MiB of slack, rounded down to 2 MiB.
    let free: u64 = (1024 << 20) - (32 << 20) - 4096 - (64 << 20) - (16 << 20);
    assert_eq!(cfg2.domains[0].memory_kib, (free & !((2 << 20) - 1)) / 1024);
}

#[test]
fn shared_module_and_plan() {
    let cfg = parse(&host(lcm(vec![
        dom(1).p("functions", V::U32(Functions::RECOVERY)),
        dom(2).p("permissions", V::U32(Permissions::CONTROL)),
    ])))
    .unwrap();
    assert!(cfg.domains[0].is_standby_recovery());
    assert!(cfg.is_dynamic());
    let lines = Plan::lines(&cfg);
    assert_eq!(lines[0], "boot path: Hyperlaunch; Dynamic (domains with Control)");
    assert!(lines[1].starts_with(
        "domain 1 (/chosen/hypervisor/domain@1): 1 vCPU(s), 64 MiB, standby until launch fails"
    ));
    assert!(lines.iter().any(|l| l.contains("kernel      0x49000000 size 0x2000000 shared")), "{lines:?}");
    assert!(lines.contains(&"console: domain 1 (first with a virtual UART)".to_string()));
    assert!(lines.contains(&"boot domain: none (straight to launch finalization)".to_string()));
    assert!(!lines.iter().any(|l| l.starts_with("store:")), "no Xenstore domain, no store line");
    // The hardware domain is direct-mapped by default, from free memory (no static memory).
    let cfg =
        parse(&host(lcm(vec![dom(1).p("permissions", V::U32(Permissions::HARDWARE)), dom(2)]))).unwrap();
    assert!(cfg.domains[0].direct_map && cfg.domains[0].static_mem.is_empty());
    assert!(!cfg.domains[1].direct_map);
    let cfg =
        parse(&host(lcm(vec![dom(1), dom(2).p("functions", V::U32(Functions::XENSTORE)), dom(3)]))).unwrap();
    let lines = Plan::lines(&cfg);
    assert!(
        lines.contains(&"store: domain 2 serves [1, 3] (a ring page and doorbells each)".to_string()),
        "{lines:?}"
    );
}

// One test per validation error.

#[test]
fn error_corrupt_dtb() {
    let blob = host(lcm(vec![dom(1)]));
    let e = err(&blob[..blob.len() / 2]);
    assert_eq!((e.name(), e.node.as_str()), ("corrupt-dtb", "/"));
    assert_eq!(e.to_string(), "/: device tree is truncated");
}

#[test]
fn error_bad_platform() {
    let mut w = FdtWriter::new().unwrap();
    n("").c(lcm(vec![dom(1)])).c(n("cpus")).write(&mut w);
    let e = err(&w.finish().unwrap());
    assert_eq!(e.kind, ErrorKind::Platform(crate::platform::PlatformError::NoMemory));
}

#[test]
fn error_nothing_to_launch() {
    let e = err(&host(n("chosen")));
    assert_eq!((e.kind.clone(), e.node.as_str()), (ErrorKind::NothingToLaunch, "/chosen"));
    let e = err(&host(lcm(vec![])));
    assert_eq!((e.kind, e.node.as_str()), (ErrorKind::NothingToLaunch, P));
}

#[test]
fn error_missing_property() {
    let e = err(&host(lcm(vec![dom(1).without("memory")])));
    assert_eq!(e.kind, ErrorKind::MissingProperty("memory"));
    assert_eq!(e.to_string(), "/chosen/hypervisor/domain@1: missing required property 'memory'");
    let e = err(&host(n("chosen").c(domu("domU1").without("cpus"))));
    assert_eq!((e.kind, e.node.as_str()), (ErrorKind::MissingProperty("cpus"), "/chosen/domU1"));
}

#[test]
fn error_malformed_property() {
    for (prop, v) in [
        ("permissions", V::Cells(vec![0, 1])),
        ("memory", V::Cells(vec![0, 0, 1])),
        ("bootargs", V::Bytes(vec![b'a', b'b'])),
        ("domain-uuid", V::Bytes(vec![1, 2, 3])),
    ] {
        let e = err(&host(lcm(vec![dom(1).p(prop, v)])));
        assert!(matches!(e.kind, ErrorKind::MalformedProperty { prop: p, .. } if p == prop), "{prop}: {e}");
        assert_eq!(e.node, "/chosen/hypervisor/domain@1");
    }
    // A module address that is not one (address, size) pair of the parent's cells.
    let mut d = dom(1);
    d.kids[0] = d.kids[0].clone().p("module-addr", V::Cells(vec![0x4900_0000, 0x10, 0x20]));
    let e = err(&host(lcm(vec![d])));
    assert!(matches!(e.kind, ErrorKind::MalformedProperty { prop: "module-addr", .. }), "{e}");
    assert_eq!(e.node, "/chosen/hypervisor/domain@1/module@49000000");
}

#[test]
fn error_bad_value() {
    let e = err(&host(lcm(vec![dom(1).p("domid", V::U32(0x8000))])));
    assert!(matches!(e.kind, ErrorKind::BadValue { prop: "domid", .. }), "{e}");
    let e = err(&host(lcm(vec![dom(1).p("cpus", V::U32(0))])));
    assert!(matches!(e.kind, ErrorKind::BadValue { prop: "cpus", .. }), "{e}");
    let e = err(&host(lcm(vec![dom(1).p("functions", V::U32(1 << 5))])));
    assert!(matches!(e.kind, ErrorKind::BadValue { prop: "functions", .. }), "{e}");
    let e = err(&host(n("chosen").c(domu("d").c(
        n("v").p("compatible", V::Str("xen,vcpu")).p("id", V::U32(0)).p("hard-affinity", V::Str("2-1")),
    ))));
    assert!(matches!(e.kind, ErrorKind::BadValue { prop: "hard-affinity", .. }), "{e}");
}

#[test]
fn error_duplicate_function() {
    for (bit, name) in [
        (Functions::BOOT, "boot"),
        (Functions::RECOVERY, "recovery"),
        (Functions::CONSOLE, "console"),
        (Functions::XENSTORE, "xenstore"),
    ] {
        let e = err(&host(lcm(vec![dom(1).p("functions", V::U32(bit)), dom(2).p("functions", V::U32(bit))])));
        assert_eq!(e.kind, ErrorKind::DuplicateFunction { function: name, first: format!("{P}/domain@1") });
        assert_eq!(e.node, format!("{P}/domain@2"));
    }
}

#[test]
fn error_duplicate_hardware() {
    let e = err(&host(lcm(vec![dom(1).p("permissions", V::U32(2)), dom(2).p("permissions", V::U32(3))])));
    assert_eq!(e.kind, ErrorKind::DuplicateHardware { first: format!("{P}/domain@1") });
}

#[test]
fn error_boot_domain_privileged() {
    let e = err(&host(lcm(vec![dom(1).p("functions", V::U32(Functions::BOOT | Functions::CONSOLE))])));
    assert_eq!(e.kind, ErrorKind::BootDomainPrivileged);
    let e = err(&host(lcm(vec![dom(1).p("functions", V::U32(Functions::BOOT)).p("permissions", V::U32(1))])));
    assert_eq!(e.kind, ErrorKind::BootDomainPrivileged);
}

#[test]
fn error_duplicate_domid() {
    let e = err(&host(lcm(vec![dom(1).p("domid", V::U32(9)), dom(2).p("domid", V::U32(9))])));
    assert_eq!(e.kind, ErrorKind::DuplicateDomid { domid: 9, first: format!("{P}/domain@1") });
    assert_eq!(e.node, format!("{P}/domain@2"));
}

#[test]
fn error_missing_kernel() {
    let mut d = dom(1);
    d.kids.clear();
    let e = err(&host(lcm(vec![d])));
    assert_eq!(e.kind, ErrorKind::MissingKernel);
}

#[test]
fn error_duplicate_module() {
    let e = err(&host(lcm(vec![dom(1).c(kernel(0x4c00_0000, 0x1000))])));
    assert_eq!(e.kind, ErrorKind::DuplicateModule("kernel"));
    assert_eq!(e.node, format!("{P}/domain@1/module@4c000000"));
}

#[test]
fn error_outside_ram() {
    let mut d = dom(1);
    d.kids[0] = kernel(0x7fff_f000, 0x2000); // straddles the end of RAM
    let e = err(&host(lcm(vec![d])));
    assert_eq!(
        e.kind,
        ErrorKind::OutsideRam { what: "module", range: Range { start: 0x7fff_f000, end: 0x8000_1000 } }
    );
}

#[test]
fn error_module_overlap_and_sharing() {
    // The same module in two domains is fine; an overlapping different one is not.
    assert!(parse(&host(lcm(vec![dom(1), dom(2)]))).is_ok());
    let mut d2 = dom(2);
    d2.kids[0] = kernel(0x4a00_0000, 0x200_0000);
    let e = err(&host(lcm(vec![dom(1), d2])));
    assert_eq!(
        e.kind,
        ErrorKind::ModuleOverlap {
            range: Range { start: 0x4a00_0000, end: 0x4c00_0000 },
            other: format!("{P}/domain@1/module@49000000"),
            other_range: Range { start: 0x4900_0000, end: 0x4b00_0000 },
        }
    );
    assert_eq!(e.node, format!("{P}/domain@2/module@4a000000"));
}

#[test]
fn error_overlaps_reserved() {
    let resv = n("reserved-memory")
        .p("#address-cells", V::U32(2))
        .p("#size-cells", V::U32(2))
        .p("ranges", V::Empty)
        .c(n("fw@4a000000").p("reg", V::Cells(vec![0, 0x4a00_0000, 0, 0x1000])));
    let e = err(&host_with(lcm(vec![dom(1)]), Some(resv)));
    assert_eq!(
        e.kind,
        ErrorKind::OverlapsReserved {
            what: "module",
            range: Range { start: 0x4900_0000, end: 0x4b00_0000 },
            reserved: "/reserved-memory region",
            reserved_range: Range { start: 0x4a00_0000, end: 0x4a00_1000 },
        }
    );
}

#[test]
fn error_out_of_memory() {
    let big = |u| dom(u).p("memory", V::Cells(vec![0, 512 * 1024]));
    let e = err(&host(lcm(vec![big(1), big(2)])));
    assert_eq!(e.kind, ErrorKind::OutOfMemory { needed_kib: 1024 * 1024, free_kib: (1024 - 64 - 32) * 1024 });
    assert_eq!(e.node, format!("{P}/domain@2"));
}

#[test]
fn error_no_such_cpu() {
    let e = err(&host(lcm(vec![dom(1).c(vcpu(0, "2-4"))])));
    assert_eq!(e.kind, ErrorKind::NoSuchCpu { cpu: 4, cpus: 4 });
    assert!(parse(&host(lcm(vec![dom(1).c(vcpu(0, "3"))]))).is_ok());
}

#[test]
fn error_no_such_vcpu() {
    let e = err(&host(lcm(vec![dom(1).p("cpus", V::U32(2)).c(vcpu(2, "0"))])));
    assert_eq!(e.kind, ErrorKind::NoSuchVcpu { vcpu: 2, cpus: 2 });
}

#[test]
fn error_aarch32_unsupported() {
    let e = err(&host(lcm(vec![dom(1).p("mode", V::U32(1))])));
    assert_eq!(e.kind, ErrorKind::Aarch32Unsupported);
}

#[test]
fn error_direct_map_needs_static_mem() {
    let e = err(&host(lcm(vec![dom(1).p("direct-map", V::Empty)])));
    assert_eq!(e.kind, ErrorKind::DirectMapNeedsStaticMem);
}

fn static_mem(d: N, start: u32, size: u32) -> N {
    d.p("#xen,static-mem-address-cells", V::U32(1))
        .p("#xen,static-mem-size-cells", V::U32(1))
        .p("xen,static-mem", V::Cells(vec![start, size]))
}

#[test]
fn error_static_mem_mismatch() {
    let e = err(&host(lcm(vec![static_mem(dom(1), 0x6000_0000, 0x100_0000)])));
    assert_eq!(e.kind, ErrorKind::StaticMemMismatch { static_kib: 16 * 1024, memory_kib: 64 * 1024 });
}

#[test]
fn error_static_mem_overlap() {
    let e = err(&host(lcm(vec![
        static_mem(dom(1), 0x6000_0000, 0x400_0000),
        static_mem(dom(2), 0x6200_0000, 0x400_0000),
    ])));
    assert!(matches!(e.kind, ErrorKind::StaticMemOverlap { .. }), "{e}");
    assert_eq!(e.node, format!("{P}/domain@2"));
    // Static memory over a boot module.
    let e = err(&host(lcm(vec![static_mem(dom(1), 0x4800_0000, 0x400_0000)])));
    assert!(e.to_string().contains("overlaps module /chosen/hypervisor/domain@1/module@49000000"), "{e}");
}

#[test]
fn static_memory_is_claimed_not_counted() {
    let big_static =
        || static_mem(dom(1).p("memory", V::Cells(vec![0, 512 * 1024])), 0x6000_0000, 0x2000_0000);
    let sized = |mib: u32| dom(2).p("memory", V::Cells(vec![0, mib * 1024]));
    // 1 GiB less the 32 MiB kernel and the 512 MiB claimed: 480 MiB, less a 60 MiB heap.
    assert!(parse(&host(lcm(vec![big_static(), sized(400)]))).is_ok());
    let e = err(&host(lcm(vec![big_static(), sized(430)])));
    assert_eq!(e.kind, ErrorKind::OutOfMemory { needed_kib: 430 * 1024, free_kib: 420 * 1024 });
}

fn vcpu(id: u32, cpus: &'static str) -> N {
    n(&format!("vcpu{id}"))
        .p("compatible", V::Str("xen,vcpu"))
        .p("id", V::U32(id))
        .p("hard-affinity", V::Str(cpus))
}

mod limits;
mod shared;
