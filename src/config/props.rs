//! Reading domain and module nodes: typed property access with errors that name the node
//! and property, and the parts shared by the Hyperlaunch and dom0less formats.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::error::{ConfigError, ErrorKind};
use super::{DomainConfig, Functions, Module, ModuleKind, Note, Permissions, VcpuAffinity};
use crate::fdt::{Fdt, Node};
use crate::memmap::Range;

pub(super) type Result<T> = core::result::Result<T, ConfigError>;

pub(super) fn path(node: &Node<'_>) -> String {
    node.path().to_string()
}

fn malformed(node: &Node<'_>, prop: &'static str, why: &'static str) -> ConfigError {
    ConfigError::new(path(node), ErrorKind::MalformedProperty { prop, why })
}

pub(super) fn bad_value(node: &Node<'_>, prop: &'static str, why: String) -> ConfigError {
    ConfigError::new(path(node), ErrorKind::BadValue { prop, why })
}

/// A one-cell property.
pub(super) fn u32_prop(node: &Node<'_>, prop: &'static str) -> Result<Option<u32>> {
    match node.property(prop) {
        None => Ok(None),
        Some(p) => p.u32().map(Some).ok_or_else(|| malformed(node, prop, "expected one 32-bit cell")),
    }
}

/// A one- or two-cell property.
pub(super) fn u64_prop(node: &Node<'_>, prop: &'static str) -> Result<Option<u64>> {
    match node.property(prop) {
        None => Ok(None),
        Some(p) => p.u64().map(Some).ok_or_else(|| malformed(node, prop, "expected one or two 32-bit cells")),
    }
}

/// A string property.
pub(super) fn str_prop<'a>(node: &Node<'a>, prop: &'static str) -> Result<Option<&'a str>> {
    match node.property(prop) {
        None => Ok(None),
        Some(p) => {
            p.as_str().map(Some).ok_or_else(|| malformed(node, prop, "expected a NUL-terminated string"))
        }
    }
}

/// `#address-cells`/`#size-cells`-style cell counts of a node, checked.
fn cells(node: &Node<'_>, prop: &'static str, default: u32, max: u32) -> Result<u32> {
    let v = u32_prop(node, prop)?.unwrap_or(default);
    if v > max {
        return Err(malformed(node, prop, "cell count out of range"));
    }
    Ok(v)
}

/// The one (address, size) range of a module node, from `module-addr` or `reg`, with the
/// parent's cell counts.
pub(super) fn module_range(fdt: &Fdt<'_>, node: &Node<'_>) -> Result<Range> {
    let parent = fdt.parent(node).ok_or_else(|| malformed(node, "reg", "module node without a parent"))?;
    let ac = cells(&parent, "#address-cells", 2, 2)?;
    let sc = cells(&parent, "#size-cells", 1, 2)?;
    let (prop, name) = match (node.property("module-addr"), node.property("reg")) {
        (Some(p), _) => (p, "module-addr"),
        (None, Some(p)) => (p, "reg"),
        (None, None) => {
            return Err(ConfigError::new(path(node), ErrorKind::MissingProperty("module-addr")));
        }
    };
    if ac == 0 || sc == 0 {
        return Err(malformed(node, name, "the parent's #address-cells/#size-cells must be 1 or 2"));
    }
    let mut pairs = prop.reg_pairs(ac, sc).ok_or_else(|| {
        malformed(node, name, "length is not one (address, size) pair of the parent's cell counts")
    })?;
    let (addr, size) = pairs.next().ok_or_else(|| malformed(node, name, "empty"))?;
    if pairs.next().is_some() {
        return Err(malformed(node, name, "more than one (address, size) pair"));
    }
    if size == 0 {
        return Err(bad_value(node, name, "module size is 0".into()));
    }
    Range::at(addr, size).ok_or_else(|| bad_value(node, name, "range wraps past the top of memory".into()))
}

/// The kind of a module node from its `compatible`, if it is one.
pub(super) fn module_kind(node: &Node<'_>) -> Option<ModuleKind> {
    const KINDS: [(&str, &str, ModuleKind); 3] = [
        ("module,kernel", "multiboot,kernel", ModuleKind::Kernel),
        ("module,ramdisk", "multiboot,ramdisk", ModuleKind::Ramdisk),
        ("module,device-tree", "multiboot,device-tree", ModuleKind::DeviceTree),
    ];
    for (a, b, k) in KINDS {
        if node.is_compatible(a) || node.is_compatible(b) {
            return Some(k);
        }
    }
    node.is_compatible("module,config").then_some(ModuleKind::Config)
}

/// True for any boot-module node (`module,*` or `multiboot,*`).
pub(super) fn is_module(node: &Node<'_>) -> bool {
    node.property("compatible")
        .is_some_and(|p| p.strings().any(|s| s.starts_with("module,") || s.starts_with("multiboot,")))
}

/// A CPU list such as `"0-3,5"` as a bit mask.
pub(super) fn cpu_list(node: &Node<'_>, prop: &'static str, s: &str) -> Result<(u64, Vec<u32>)> {
    let bad = || bad_value(node, prop, format!("'{s}' is not a CPU list like \"0-3,5\""));
    let mut mask = 0u64;
    let mut listed = Vec::new();
    for part in s.split(',').map(str::trim) {
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => {
                (a.trim().parse::<u32>().map_err(|_| bad())?, b.trim().parse::<u32>().map_err(|_| bad())?)
            }
            None => {
                let v = part.parse::<u32>().map_err(|_| bad())?;
                (v, v)
            }
        };
        if lo > hi || hi >= 64 {
            return Err(bad());
        }
        for c in lo..=hi {
            mask |= 1 << c;
            listed.push(c);
        }
    }
    Ok((mask, listed))
}

/// Which format a domain node is in.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Style {
    Hyperlaunch,
    Dom0less,
}

const COMMON_PROPS: [&str; 14] = [
    "compatible",
    "memory",
    "cpus",
    "bootargs",
    "vpl011",
    "direct-map",
    "xen,static-mem",
    "#xen,static-mem-address-cells",
    "#xen,static-mem-size-cells",
    "#address-cells",
    "#size-cells",
    "phandle",
    "domid",
    "name",
];
const HYPERLAUNCH_PROPS: [&str; 5] = ["permissions", "functions", "mode", "domain-uuid", "security-id"];
const DOM0LESS_PROPS: [&str; 2] = ["capabilities", "nr_spis"];

/// Reads one domain node of either format.
pub(super) fn domain(
    fdt: &Fdt<'_>,
    node: &Node<'_>,
    style: Style,
    notes: &mut Vec<Note>,
) -> Result<DomainConfig> {
    let mut d = DomainConfig::new(path(node));
    for p in node.properties() {
        let known = COMMON_PROPS.contains(&p.name)
            || (style == Style::Hyperlaunch && HYPERLAUNCH_PROPS.contains(&p.name))
            || (style == Style::Dom0less && DOM0LESS_PROPS.contains(&p.name));
        if !known {
            notes.push(Note { node: d.node.clone(), what: format!("unknown property '{}' ignored", p.name) });
        }
    }
    d.requested_domid = u32_prop(node, "domid")?.filter(|&v| v != 0);
    d.memory_kib = u64_prop(node, "memory")?
        .ok_or_else(|| ConfigError::new(path(node), ErrorKind::MissingProperty("memory")))?;
    if d.memory_kib == 0 {
        return Err(bad_value(node, "memory", "a domain needs some memory (the value is in KiB)".into()));
    }
    if d.memory_kib > super::MAX_MEMORY_KIB {
        return Err(bad_value(
            node,
            "memory",
            format!("{} KiB is more than the 2^40 KiB (1 PiB) a domain may have", d.memory_kib),
        ));
    }
    d.cpus = match (u32_prop(node, "cpus")?, style) {
        (Some(n), _) => n,
        (None, Style::Hyperlaunch) => 1,
        (None, Style::Dom0less) => {
            return Err(ConfigError::new(path(node), ErrorKind::MissingProperty("cpus")));
        }
    };
    if d.cpus == 0 || d.cpus > super::MAX_VCPUS {
        return Err(bad_value(
            node,
            "cpus",
            format!("{} vCPUs; 1 to {} are supported", d.cpus, super::MAX_VCPUS),
        ));
    }
    d.bootargs = str_prop(node, "bootargs")?.map(String::from);
    match style {
        Style::Hyperlaunch => {
            d.permissions = Permissions(u32_prop(node, "permissions")?.unwrap_or(0));
            d.functions = Functions(u32_prop(node, "functions")?.unwrap_or(0));
            let known_perms = Permissions::CONTROL | Permissions::HARDWARE;
            if d.permissions.0 & !known_perms != 0 {
                return Err(bad_value(
                    node,
                    "permissions",
                    format!("unknown bits {:#x}", d.permissions.0 & !known_perms),
                ));
            }
            let known_fns = Functions::BOOT
                | Functions::RECOVERY
                | Functions::CONSOLE
                | Functions::XENSTORE
                | Functions::LEGACY_DOM0;
            if d.functions.0 & !known_fns != 0 {
                return Err(bad_value(
                    node,
                    "functions",
                    format!("unknown bits {:#x}", d.functions.0 & !known_fns),
                ));
            }
            if let Some(mode) = u32_prop(node, "mode")? {
                const PV: u32 = 1 << 0;
                const DEVICE_MODEL: u32 = 1 << 1;
                const LONG: u32 = 1 << 2;
                if mode & LONG == 0 {
                    return Err(ConfigError::new(path(node), ErrorKind::Aarch32Unsupported));
                }
                if mode & (PV | DEVICE_MODEL) != 0 {
                    notes.push(Note {
                        node: d.node.clone(),
                        what: "mode bits PV/DEVICE_MODEL have no meaning on Arm: ignored".into(),
                    });
                }
            }
            if let Some(p) = node.property("domain-uuid") {
                let bytes: [u8; 16] =
                    p.value.try_into().map_err(|_| malformed(node, "domain-uuid", "expected 16 bytes"))?;
                d.uuid = Some(bytes);
            }
            d.security_id = str_prop(node, "security-id")?.map(String::from);
            d.vuart = str_prop(node, "vpl011")? != Some("disabled");
        }
        Style::Dom0less => {
            if let Some(caps) = u32_prop(node, "capabilities")? {
                const CAP_CONTROL: u32 = 0x1;
                const CAP_HARDWARE: u32 = 0x2;
                const CAP_XENSTORE: u32 = 0x4;
                if caps & !(CAP_CONTROL | CAP_HARDWARE | CAP_XENSTORE) != 0 {
                    return Err(bad_value(node, "capabilities", format!("unknown bits {caps:#x}")));
                }
                if caps & CAP_CONTROL != 0 {
                    d.permissions.0 |= Permissions::CONTROL;
                }
                if caps & CAP_HARDWARE != 0 {
                    d.permissions.0 |= Permissions::HARDWARE;
                }
                if caps & CAP_XENSTORE != 0 {
                    d.functions.0 |= Functions::XENSTORE;
                }
            }
            d.vuart = node.property("vpl011").is_some();
        }
    }
    // The hardware domain is direct-mapped (DMA works without an IOMMU), as the binding says.
    d.direct_map = node.property("direct-map").is_some() || d.permissions.has(Permissions::HARDWARE);
    d.static_mem = static_mem(node)?;
    for child in node.children() {
        if is_module(&child) {
            let Some(kind) = module_kind(&child) else {
                notes.push(Note {
                    node: path(&child),
                    what: "boot module of unspecified type ignored".into(),
                });
                continue;
            };
            let module = Module { kind, range: module_range(fdt, &child)?, node: path(&child) };
            let slot = match kind {
                ModuleKind::Kernel => &mut d.kernel,
                ModuleKind::Ramdisk => &mut d.ramdisk,
                ModuleKind::DeviceTree => &mut d.device_tree,
                ModuleKind::Config => &mut d.config,
            };
            if slot.is_some() {
                return Err(ConfigError::new(
                    path(&child),
                    ErrorKind::DuplicateModule(match kind {
                        ModuleKind::Kernel => "kernel",
                        ModuleKind::Ramdisk => "ramdisk",
                        ModuleKind::DeviceTree => "device-tree",
                        ModuleKind::Config => "config",
                    }),
                ));
            }
            if kind == ModuleKind::Kernel
                && let Some(args) = str_prop(&child, "bootargs")?
            {
                d.bootargs = Some(args.into());
            }
            *slot = Some(module);
        } else if child.is_compatible(super::shm::COMPATIBLE) {
            d.shm.push(super::shm::parse(node, &child)?);
        } else if child.is_compatible("xen,vcpu") {
            let id = u32_prop(&child, "id")?
                .ok_or_else(|| ConfigError::new(path(&child), ErrorKind::MissingProperty("id")))?;
            let list = str_prop(&child, "hard-affinity")?
                .ok_or_else(|| ConfigError::new(path(&child), ErrorKind::MissingProperty("hard-affinity")))?;
            let (mask, _) = cpu_list(&child, "hard-affinity", list)?;
            d.affinity.push(VcpuAffinity { vcpu: id, cpus: mask });
        } else {
            notes.push(Note { node: path(&child), what: "unknown node ignored".into() });
        }
    }
    Ok(d)
}

/// `xen,static-mem` ranges with their own cell counts.
fn static_mem(node: &Node<'_>) -> Result<Vec<Range>> {
    let Some(p) = node.property("xen,static-mem") else { return Ok(Vec::new()) };
    let ac = u32_prop(node, "#xen,static-mem-address-cells")?.ok_or_else(|| {
        ConfigError::new(path(node), ErrorKind::MissingProperty("#xen,static-mem-address-cells"))
    })?;
    let sc = u32_prop(node, "#xen,static-mem-size-cells")?.ok_or_else(|| {
        ConfigError::new(path(node), ErrorKind::MissingProperty("#xen,static-mem-size-cells"))
    })?;
    let pairs = p.reg_pairs(ac, sc).ok_or_else(|| {
        malformed(
            node,
            "xen,static-mem",
            "not whole (address, size) pairs of the #xen,static-mem-*-cells counts",
        )
    })?;
    let mut out = Vec::new();
    for (a, s) in pairs {
        let r = Range::at(a, s)
            .filter(|r| !r.is_empty())
            .ok_or_else(|| bad_value(node, "xen,static-mem", "an empty or wrapping range".into()))?;
        out.push(r);
    }
    Ok(out)
}

/// A size such as `512M`, `1G`, `65536K` or `123` (KiB without a suffix, as Xen reads it).
pub(super) fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.as_bytes().last()? {
        b'T' | b't' => (&s[..s.len() - 1], 1u64 << 40),
        b'G' | b'g' => (&s[..s.len() - 1], 1 << 30),
        b'M' | b'm' => (&s[..s.len() - 1], 1 << 20),
        b'K' | b'k' => (&s[..s.len() - 1], 1 << 10),
        b'B' | b'b' => (&s[..s.len() - 1], 1),
        _ => (s, 1 << 10),
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}
