//! Host devices for the hardware domain: which device nodes of the host device tree it
//! gets (everything the hypervisor does not keep for itself), their MMIO ranges and
//! interrupts, and the nodes to copy into its device tree (with the clocks they name).

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::fdt::{Fdt, Node};
use crate::memmap::Range;

/// A host device given to a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub path: String,
    /// MMIO ranges, CPU physical addresses, page aligned outward.
    pub mmio: Vec<Range>,
    /// Its SPIs, as INTIDs.
    pub spis: Vec<u32>,
    /// The node as the guest gets it.
    pub node: CopiedNode,
}

/// A node copied into a guest device tree: name and properties (`reg` rewritten in the
/// guest root's 2-cell format, `interrupt-parent` dropped: the root's is the virtual GIC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopiedNode {
    pub name: String,
    pub props: Vec<(String, Vec<u8>)>,
}

/// The host's devices split into those a hardware domain gets, the nodes they depend on
/// (clock providers), and those left out with the reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostDevices {
    pub devices: Vec<Device>,
    pub providers: Vec<CopiedNode>,
    pub skipped: Vec<(String, String)>,
}

fn be32(b: &[u8], i: usize) -> Option<u32> {
    b.get(i * 4..i * 4 + 4).map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// A `reg` value in the guest root's cells (2 address, 2 size).
fn reg_cells(pairs: impl Iterator<Item = (u64, u64)>) -> Vec<u8> {
    let mut v = Vec::new();
    for (a, s) in pairs {
        v.extend_from_slice(&a.to_be_bytes());
        v.extend_from_slice(&s.to_be_bytes());
    }
    v
}

/// The INTID of each 3-cell GIC interrupt specifier in `interrupts`, `None` for one that
/// is not an SPI.
fn specifier_spis(interrupts: &[u8]) -> impl Iterator<Item = Option<u32>> + '_ {
    (0..interrupts.len() / 12).map(|i| match (be32(interrupts, i * 3), be32(interrupts, i * 3 + 1)) {
        (Some(0), Some(n)) if n < 988 => Some(32 + n),
        _ => None,
    })
}

/// A device a partial device tree (`module,device-tree`, Xen's passthrough convention)
/// gives to a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passthrough {
    /// The node as the guest gets it (without the `xen,*` properties).
    pub node: CopiedNode,
    /// `xen,reg`: (host physical address, size, guest address), page aligned.
    pub regs: Vec<(u64, u64, u64)>,
    /// `xen,path`: the host node, whose interrupts are forwarded.
    pub host_path: Option<String>,
    /// `xen,force-assign-without-iommu`: given although no IOMMU confines its DMA.
    pub force_without_iommu: bool,
}

/// Reads a partial device tree: every child of its `/passthrough` node. Errors name the
/// node and what is wrong.
pub fn parse_partial(blob: &[u8]) -> Result<Vec<Passthrough>, String> {
    let fdt = Fdt::new(blob).map_err(|e| format!("not a device tree: {e}"))?;
    let pt = fdt.find("/passthrough").ok_or_else(|| String::from("no /passthrough node"))?;
    let (ac, sc) = (pt.address_cells().unwrap_or(2), pt.size_cells().unwrap_or(2));
    if !(1..=2).contains(&ac) || !(1..=2).contains(&sc) {
        return Err(String::from("/passthrough: #address-cells and #size-cells must be 1 or 2"));
    }
    let mut out = Vec::new();
    for node in pt.children() {
        let path = format!("/passthrough/{}", node.name());
        let reg = node.property("xen,reg").ok_or_else(|| format!("{path}: no xen,reg"))?;
        let stride = (2 * ac + sc) as usize * 4;
        if reg.value.is_empty() || reg.value.len() % stride != 0 {
            return Err(format!("{path}: xen,reg is not (address, size, guest address) triples"));
        }
        let cell = |off: usize, n: u32| -> u64 {
            (0..n as usize)
                .fold(0u64, |acc, i| (acc << 32) | u64::from(be32(&reg.value[off..], i).unwrap_or(0)))
        };
        let mut regs = Vec::new();
        for e in 0..reg.value.len() / stride {
            let o = e * stride;
            let (pa, size) = (cell(o, ac), cell(o + ac as usize * 4, sc));
            let ga = cell(o + (ac + sc) as usize * 4, ac);
            if (pa | size | ga) & 0xfff != 0 || size == 0 {
                return Err(format!("{path}: xen,reg {pa:#x}+{size:#x} at {ga:#x} is not whole 4 KiB pages"));
            }
            regs.push((pa, size, ga));
        }
        let host_path = node.property("xen,path").and_then(|p| p.as_str()).map(String::from);
        // `reg` as the guest sees it: the guest addresses of xen,reg, in the root's cells.
        let reg = reg_cells(regs.iter().map(|&(_, size, ga)| (ga, size)));
        let mut props = Vec::new();
        for p in node.properties() {
            match p.name {
                "reg" => props.push((p.name.to_string(), reg.clone())),
                n if n.starts_with("xen,") || n == "interrupt-parent" => {}
                n => props.push((n.to_string(), p.value.to_vec())),
            }
        }
        if !props.iter().any(|(n, _)| n == "reg") {
            props.push((String::from("reg"), reg));
        }
        let force_without_iommu = node.property("xen,force-assign-without-iommu").is_some();
        out.push(Passthrough {
            node: CopiedNode { name: node.name().to_string(), props },
            regs,
            host_path,
            force_without_iommu,
        });
    }
    Ok(out)
}

/// Pages two domains' devices share: (page, one domain, the other).
pub fn shared_pages(owned: &[(u16, Range)]) -> Vec<(u64, u16, u16)> {
    let mut out = Vec::new();
    for (i, (a, ra)) in owned.iter().enumerate() {
        for (b, rb) in &owned[i + 1..] {
            if a == b {
                continue;
            }
            let (lo, hi) = (ra.start.max(rb.start) & !0xfff, ra.end.min(rb.end));
            let mut page = lo;
            while page < hi {
                out.push((page, *a, *b));
                page += 0x1000;
            }
        }
    }
    out
}

/// The host SPIs of the node at `path` (GIC SPIs only).
pub fn host_spis(fdt: &Fdt<'_>, path: &str) -> Vec<u32> {
    let Some(node) = fdt.find(path) else { return Vec::new() };
    let Some(ints) = node.property("interrupts") else { return Vec::new() };
    specifier_spis(ints.value).flatten().collect()
}

/// The phandle of the host's GIC (the root's interrupt controller).
pub fn gic_phandle(fdt: &Fdt<'_>) -> Option<u32> {
    fdt.all_nodes()
        .find(|n| {
            n.property("interrupt-controller").is_some()
                && ["arm,gic-v3", "arm,gic-400", "arm,cortex-a15-gic", "arm,gic-v2"]
                    .iter()
                    .any(|c| n.is_compatible(c))
        })
        .and_then(|n| n.property("phandle").and_then(|p| p.u32()))
}

/// The phandle of the interrupt controller a node's interrupts go to (its own
/// `interrupt-parent`, else the nearest ancestor's).
fn interrupt_parent(fdt: &Fdt<'_>, node: &Node<'_>) -> Option<u32> {
    let mut n = Some(*node);
    while let Some(cur) = n {
        if let Some(p) = cur.property("interrupt-parent").and_then(|p| p.u32()) {
            return Some(p);
        }
        n = fdt.parent(&cur);
    }
    None
}

/// Discovers the devices of the host device tree a hardware domain gets: the root's
/// children with MMIO, except what the hypervisor keeps (memory, CPUs, its console UART at
/// `console`, the GIC, timers, IOMMUs) and what it cannot give yet (PCI host bridges,
/// devices whose interrupts are not the GIC's SPIs). `avoid`: guest addresses the domain
/// uses otherwise (its RAM, emulated devices); a device overlapping them is left out.
pub fn discover(
    fdt: &Fdt<'_>,
    gic_phandle: Option<u32>,
    console: Option<u64>,
    assigned: &[(u16, Range)],
    avoid: &[Range],
) -> HostDevices {
    let mut out = HostDevices::default();
    let mut provider_phandles: Vec<u32> = Vec::new();
    // The root's children, and the children of simple buses (boards put their devices under
    // /soc, /axi, /amba...), flattened: each device goes to the guest's root with its
    // address translated.
    let mut work: Vec<Node<'_>> = fdt.root().children().collect();
    let mut names: Vec<String> = Vec::new();
    let mut i = 0;
    while i < work.len() {
        let node = work[i];
        i += 1;
        let path = fdt.path(&node).to_string();
        let base = node.base_name();
        let skip = |out: &mut HostDevices, why: &str| out.skipped.push((path.clone(), why.to_string()));
        let bus = ["simple-bus", "arm,amba-bus", "simple-mfd"].iter().any(|c| node.is_compatible(c));
        if bus && node.property("ranges").is_some() && node.is_enabled() {
            work.extend(node.children());
            continue;
        }
        if node.property("reg").is_none() || !node.is_enabled() {
            continue;
        }
        if names.iter().any(|n| n == node.name()) {
            skip(&mut out, "another device with its node name is given already");
            continue;
        }
        if matches!(base, "memory" | "cpus" | "chosen" | "aliases" | "reserved-memory" | "psci") {
            continue;
        }
        if node.property("interrupt-controller").is_some() {
            skip(&mut out, "the interrupt controller (the hypervisor's)");
            continue;
        }
        if node.is_compatible("arm,smmu-v3")
            || node.is_compatible("arm,mmu-500")
            || node.is_compatible("arm,smmu-v2")
        {
            skip(&mut out, "an IOMMU (the hypervisor's)");
            continue;
        }
        if node.property("interrupt-map").is_some() {
            skip(&mut out, "a PCI host bridge (not assigned yet)");
            continue;
        }
        let Some(regs) = fdt.reg(&node).map(|r| r.collect::<Vec<_>>()) else {
            skip(&mut out, "its reg cannot be translated");
            continue;
        };
        if console.is_some_and(|c| regs.iter().any(|&(a, s)| c >= a && c < a + s)) {
            skip(&mut out, "the hypervisor's console UART");
            continue;
        }
        let mmio: Vec<Range> = regs
            .iter()
            .filter(|r| r.1 > 0)
            .map(|&(a, s)| Range { start: a & !0xfff, end: (a + s).next_multiple_of(0x1000) })
            .collect();
        if let Some((owner, _)) = assigned.iter().find(|(_, a)| mmio.iter().any(|r| a.overlaps(r))) {
            skip(&mut out, &format!("given to domain {owner} by its partial device tree"));
            continue;
        }
        if let Some(r) = mmio.iter().find(|r| avoid.iter().any(|a| a.overlaps(r))) {
            skip(
                &mut out,
                &format!(
                    "its MMIO {:#x}..{:#x} overlaps the domain's RAM or emulated devices",
                    r.start, r.end
                ),
            );
            continue;
        }
        // Interrupts: SPIs of the GIC only (3 cells: type, number, flags).
        let mut spis = Vec::new();
        if let Some(ints) = node.property("interrupts") {
            let parent = interrupt_parent(fdt, &node);
            if gic_phandle.is_none() || parent != gic_phandle || ints.value.len() % 12 != 0 {
                skip(&mut out, "its interrupts do not go to the GIC in its 3-cell form");
                continue;
            }
            match specifier_spis(ints.value).collect::<Option<Vec<u32>>>() {
                Some(s) => spis = s,
                None => {
                    skip(&mut out, "it has an interrupt that is not an SPI");
                    continue;
                }
            }
        }
        if node.property("phandle").and_then(|p| p.u32()) == Some(crate::guest_dtb::GIC_PHANDLE) {
            skip(&mut out, "its phandle is the one the guest's GIC uses");
            continue;
        }
        // Clock providers it names, copied along.
        if let Some(clocks) = node.property("clocks") {
            let mut i = 0;
            while let Some(ph) = be32(clocks.value, i) {
                let cells = fdt
                    .by_phandle(ph)
                    .and_then(|p| p.property("#clock-cells"))
                    .and_then(|p| p.u32())
                    .unwrap_or(0);
                if !provider_phandles.contains(&ph) {
                    provider_phandles.push(ph);
                }
                i += 1 + cells as usize;
            }
        }
        let node_copy = copy(&node, &regs);
        names.push(node.name().to_string());
        out.devices.push(Device { path, mmio, spis, node: node_copy });
    }
    for ph in provider_phandles {
        match fdt.by_phandle(ph) {
            Some(p) if p.property("reg").is_none() => out.providers.push(copy(&p, &[])),
            // Given as a device: there already.
            Some(p) if names.iter().any(|n| n == p.name()) => {}
            // A provider with MMIO of its own not given (disabled in the host's tree, or kept
            // back): described, disabled, without registers or interrupts, so that the
            // phandles and clock names its consumers use resolve (Linux's clock drivers do
            // not cope with a parent that does not exist).
            Some(p) => {
                out.providers.push(disabled_copy(&p));
                out.skipped.push((
                    format!("/{}", p.name()),
                    "a clock provider with registers (described, disabled, for its consumers)".into(),
                ));
            }
            None => {
                out.skipped.push((format!("phandle {ph:#x}"), "a clock provider that does not exist".into()))
            }
        }
    }
    out
}

/// A node the guest may name but not use: no `reg`, no interrupts, `status = "disabled"`.
fn disabled_copy(node: &Node<'_>) -> CopiedNode {
    let mut props: Vec<(String, Vec<u8>)> = node
        .properties()
        .filter(|p| {
            !matches!(p.name, "reg" | "interrupts" | "interrupt-parent" | "interrupts-extended" | "status")
        })
        .map(|p| (p.name.to_string(), p.value.to_vec()))
        .collect();
    props.push(("status".to_string(), b"disabled\0".to_vec()));
    CopiedNode { name: node.name().to_string(), props }
}

/// The node as the guest gets it: `reg` in 2+2 cells at `regs`, no `interrupt-parent`.
fn copy(node: &Node<'_>, regs: &[(u64, u64)]) -> CopiedNode {
    let mut props = Vec::new();
    for p in node.properties() {
        match p.name {
            "interrupt-parent" => {}
            "reg" => props.push(("reg".to_string(), reg_cells(regs.iter().copied()))),
            name => props.push((name.to_string(), p.value.to_vec())),
        }
    }
    CopiedNode { name: node.name().to_string(), props }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_fdt::FdtWriter;

    /// QEMU virt's shape: a GIC, the console UART, an RTC with a clock, virtio, a PCI
    /// bridge, a timer, memory.
    fn host() -> Vec<u8> {
        let mut w = FdtWriter::new().unwrap();
        let root = w.begin_node("").unwrap();
        w.property_u32("#address-cells", 2).unwrap();
        w.property_u32("#size-cells", 2).unwrap();
        w.property_u32("interrupt-parent", 0x8001).unwrap();
        let n = w.begin_node("memory@40000000").unwrap();
        w.property_string("device_type", "memory").unwrap();
        w.property_array_u64("reg", &[0x4000_0000, 0x4000_0000]).unwrap();
        w.end_node(n).unwrap();
        let n = w.begin_node("intc@8000000").unwrap();
        w.property_null("interrupt-controller").unwrap();
        w.property_u32("phandle", 0x8001).unwrap();
        w.property_array_u64("reg", &[0x800_0000, 0x1_0000]).unwrap();
        w.end_node(n).unwrap();
        let n = w.begin_node("pl011@9000000").unwrap();
        w.property_array_u64("reg", &[0x900_0000, 0x1000]).unwrap();
        w.property_array_u32("interrupts", &[0, 1, 4]).unwrap();
        w.end_node(n).unwrap();
        let n = w.begin_node("pl031@9010000").unwrap();
        w.property_string_list("compatible", vec!["arm,pl031".into(), "arm,primecell".into()]).unwrap();
        w.property_array_u64("reg", &[0x901_0000, 0x1000]).unwrap();
        w.property_array_u32("interrupts", &[0, 2, 4]).unwrap();
        w.property_array_u32("clocks", &[0x8000, 0x8002, 0]).unwrap();
        w.property_u32("interrupt-parent", 0x8001).unwrap();
        w.end_node(n).unwrap();
        let n = w.begin_node("dsi@d000000").unwrap();
        w.property_array_u64("reg", &[0xd00_0000, 0x1000]).unwrap();
        w.property_array_u32("interrupts", &[0, 20, 4]).unwrap();
        w.property_u32("#clock-cells", 1).unwrap();
        w.property_string("status", "disabled").unwrap();
        w.property_u32("phandle", 0x8002).unwrap();
        w.end_node(n).unwrap();
        let n = w.begin_node("apb-pclk").unwrap();
        w.property_string("compatible", "fixed-clock").unwrap();
        w.property_u32("#clock-cells", 0).unwrap();
        w.property_u32("phandle", 0x8000).unwrap();
        w.end_node(n).unwrap();
        let n = w.begin_node("virtio_mmio@a000000").unwrap();
        w.property_array_u64("reg", &[0xa00_0000, 0x200]).unwrap();
        w.property_array_u32("interrupts", &[0, 16, 1]).unwrap();
        w.end_node(n).unwrap();
        let n = w.begin_node("pcie@10000000").unwrap();
        w.property_array_u64("reg", &[0x40_1000_0000, 0x1000_0000]).unwrap();
        w.property_array_u32("interrupt-map", &[0; 8]).unwrap();
        w.end_node(n).unwrap();
        let n = w.begin_node("flash@0").unwrap();
        w.property_array_u64("reg", &[0, 0x400_0000]).unwrap();
        w.end_node(n).unwrap();
        let bus = w.begin_node("soc").unwrap();
        w.property_string("compatible", "simple-bus").unwrap();
        w.property_u32("#address-cells", 1).unwrap();
        w.property_u32("#size-cells", 1).unwrap();
        w.property_array_u32("ranges", &[0, 0, 0xfe00_0000, 0x180_0000]).unwrap();
        let n = w.begin_node("gpio@200000").unwrap();
        w.property_array_u32("reg", &[0x20_0000, 0xb4]).unwrap();
        w.property_array_u32("interrupts", &[0, 113, 4]).unwrap();
        w.end_node(n).unwrap();
        let n = w.begin_node("serial@201000").unwrap();
        w.property_array_u32("reg", &[0x20_1000, 0x200]).unwrap();
        w.end_node(n).unwrap();
        w.end_node(bus).unwrap();
        let n = w.begin_node("ppi-device@c000000").unwrap();
        w.property_array_u64("reg", &[0xc00_0000, 0x1000]).unwrap();
        w.property_array_u32("interrupts", &[1, 9, 4]).unwrap();
        w.end_node(n).unwrap();
        w.end_node(root).unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn the_hardware_domain_gets_what_the_hypervisor_does_not_keep() {
        let blob = host();
        let fdt = Fdt::new(&blob).unwrap();
        let avoid = [
            Range { start: 0x300_0000, end: 0x310_0000 },
            Range { start: 0x2200_0000, end: 0x2200_1000 },
            Range { start: 0x4000_0000, end: 0x5000_0000 },
        ];
        let h = discover(
            &fdt,
            Some(0x8001),
            Some(0x900_0000),
            &[(7, Range { start: 0xc00_0000, end: 0xc00_1000 })],
            &avoid,
        );
        let paths: Vec<&str> = h.devices.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(
            paths,
            ["/pl031@9010000", "/virtio_mmio@a000000", "/soc/gpio@200000", "/soc/serial@201000"]
        );
        // A device under a bus: its address through the bus's ranges, at the guest's root.
        let gpio = &h.devices[2];
        assert_eq!(gpio.mmio, [Range { start: 0xfe20_0000, end: 0xfe20_1000 }]);
        assert_eq!(gpio.spis, [145]);
        let reg = &gpio.node.props.iter().find(|(n, _)| n == "reg").unwrap().1;
        assert_eq!(reg[..8], 0xfe20_0000u64.to_be_bytes());
        let rtc = &h.devices[0];
        assert_eq!(rtc.mmio, [Range { start: 0x901_0000, end: 0x901_1000 }]);
        assert_eq!(rtc.spis, [34]);
        assert_eq!(h.devices[1].spis, [48]);
        assert!(rtc.node.props.iter().all(|(n, _)| n != "interrupt-parent"));
        let reg = &rtc.node.props.iter().find(|(n, _)| n == "reg").unwrap().1;
        assert_eq!(reg.len(), 16);
        assert_eq!(h.providers.len(), 2);
        assert_eq!(h.providers[0].name, "apb-pclk");
        // A disabled provider with registers: described, disabled, with nothing to use.
        let dsi = &h.providers[1];
        assert_eq!(dsi.name, "dsi@d000000");
        let names: Vec<&str> = dsi.props.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["#clock-cells", "phandle", "status"]);
        assert_eq!(dsi.props[2].1, b"disabled\0");
        let why = |p: &str| h.skipped.iter().find(|s| s.0 == p).map(|s| s.1.clone()).unwrap_or_default();
        assert!(why("/pl011@9000000").contains("console"));
        assert!(why("/intc@8000000").contains("interrupt controller"));
        assert!(why("/pcie@10000000").contains("PCI"));
        assert!(why("/flash@0").contains("overlaps"), "{}", why("/flash@0"));
        assert!(why("/ppi-device@c000000").contains("given to domain 7"), "{}", why("/ppi-device@c000000"));
        assert!(h.skipped.iter().all(|s| !s.0.starts_with("/memory")));
    }

    fn partial(regs: &[u32], path: Option<&str>) -> Vec<u8> {
        let mut w = FdtWriter::new().unwrap();
        let root = w.begin_node("").unwrap();
        w.property_u32("#address-cells", 2).unwrap();
        w.property_u32("#size-cells", 2).unwrap();
        let pt = w.begin_node("passthrough").unwrap();
        w.property_u32("#address-cells", 2).unwrap();
        w.property_u32("#size-cells", 2).unwrap();
        let n = w.begin_node("pl061@9030000").unwrap();
        w.property_string("compatible", "arm,pl061").unwrap();
        w.property_array_u32("reg", &[0, 0x903_0000, 0, 0x1000]).unwrap();
        w.property_array_u32("interrupts", &[0, 7, 4]).unwrap();
        w.property_u32("interrupt-parent", 65000).unwrap();
        w.property_array_u32("xen,reg", regs).unwrap();
        if let Some(p) = path {
            w.property_string("xen,path", p).unwrap();
        }
        w.end_node(n).unwrap();
        w.end_node(pt).unwrap();
        w.end_node(root).unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn partial_device_trees() {
        let blob = partial(&[0, 0x903_0000, 0, 0x1000, 0, 0x903_0000], Some("/pl061@9030000"));
        let p = parse_partial(&blob).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].regs, [(0x903_0000, 0x1000, 0x903_0000)]);
        assert_eq!(p[0].host_path.as_deref(), Some("/pl061@9030000"));
        let names: Vec<&str> = p[0].node.props.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["compatible", "reg", "interrupts"]);
        let e = parse_partial(&partial(&[0, 0x903_0800, 0, 0x800, 0, 0x903_0800], None)).unwrap_err();
        assert!(e.contains("not whole 4 KiB pages"), "{e}");
        let e = parse_partial(&partial(&[0, 0x903_0000, 0, 0x1000], None)).unwrap_err();
        assert!(e.contains("triples"), "{e}");
        assert!(parse_partial(b"junk").unwrap_err().contains("not a device tree"));
        let blob = host();
        let fdt = Fdt::new(&blob).unwrap();
        assert_eq!(host_spis(&fdt, "/pl031@9010000"), [34]);
        assert_eq!(host_spis(&fdt, "/nope"), Vec::<u32>::new());
    }

    #[test]
    fn pages_shared_between_domains_are_found() {
        let r = |a: u64, b: u64| Range { start: a, end: b };
        let owned =
            [(1, r(0x1000, 0x3000)), (2, r(0x2000, 0x2800)), (1, r(0x2000, 0x3000)), (3, r(0x9000, 0xa000))];
        assert_eq!(shared_pages(&owned), [(0x2000, 1, 2), (0x2000, 2, 1)]);
        assert!(shared_pages(&[(1, r(0, 0x1000)), (2, r(0x1000, 0x2000))]).is_empty());
    }

    #[test]
    fn without_a_gic_phandle_no_interrupt_is_forwarded() {
        let blob = host();
        let fdt = Fdt::new(&blob).unwrap();
        let h = discover(&fdt, None, None, &[], &[]);
        assert!(h.devices.iter().all(|d| d.node.props.iter().all(|(n, _)| n != "interrupts")));
    }
}
