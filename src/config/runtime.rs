//! A domain a Control domain creates at run time (Dynamic mode): its configuration is one
//! `xen,domain` node in the LCM's own format, read by the same code and checked by the
//! same rules as at boot, then by what run time adds (ids, roles and memory already taken
//! by running domains, and what a created domain cannot have).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::error::{ConfigError, ErrorKind};
use super::props::{self, Style, path};
use super::{
    BootPath, DomainConfig, Functions, HostFacts, LaunchConfig, Module, ModuleKind, Note, Permissions,
};
use crate::fdt::{Fdt, Node};
use crate::memmap::Range;

/// A domain that exists (not reclaimed), as run-time rules see it.
#[derive(Debug, Clone)]
pub struct Existing {
    pub domid: u16,
    pub permissions: Permissions,
    pub functions: Functions,
}

/// What a created domain's configuration is checked against.
#[derive(Debug, Clone)]
pub struct RunTimeFacts {
    /// Physical CPUs.
    pub cpus: usize,
    /// Bytes of free memory.
    pub free_bytes: u64,
    /// The host's RAM (static memory must lie in it).
    pub ram: Vec<Range>,
    /// The host device tree was kept: devices can be given (a partial device tree, the
    /// Hardware permission).
    pub devices: bool,
    pub existing: Vec<Existing>,
    /// Ids of destroyed domains still listed (their slot not reused yet): not handed out
    /// unasked, and given when asked for (the old entry goes).
    pub retired: Vec<u16>,
}

/// Where the images that came with the request are (host addresses), if given.
#[derive(Debug, Clone, Copy, Default)]
pub struct Images {
    pub kernel: Option<Range>,
    pub ramdisk: Option<Range>,
    pub device_tree: Option<Range>,
}

/// The `xen,domain` node of a creation request: the root itself, a child of the root, or a
/// child of `/chosen/hypervisor` (an LCM with one domain); exactly one.
fn find_node<'a>(fdt: &'a Fdt<'a>) -> Result<Node<'a>, ConfigError> {
    let root = fdt.find("/").ok_or_else(|| ConfigError::new("/", ErrorKind::NothingToLaunch))?;
    if root.is_compatible("xen,domain") {
        return Ok(root);
    }
    let hv = fdt.find("/chosen/hypervisor");
    let mut found = root.children().chain(hv.into_iter().flat_map(|h| h.children()));
    let mut found = found.by_ref().filter(|n| n.is_compatible("xen,domain"));
    let first = found.next().ok_or_else(|| ConfigError::new("/", ErrorKind::NothingToLaunch))?;
    if let Some(second) = found.next() {
        return Err(ConfigError::new(
            path(&second),
            ErrorKind::BadValue {
                prop: "compatible",
                why: format!(
                    "a second xen,domain node (the first is {}): one domain per request",
                    path(&first)
                ),
            },
        ));
    }
    Ok(first)
}

/// Reads and checks the configuration of a domain to create from `blob`, its images at
/// `images`, against `facts`. The domain gets its requested id or the lowest free one.
pub fn parse_domain(
    blob: &[u8],
    images: Images,
    facts: &RunTimeFacts,
) -> Result<(DomainConfig, Vec<Note>), ConfigError> {
    let fdt = Fdt::new(blob).map_err(|e| ConfigError::new("/", ErrorKind::Fdt(e)))?;
    let node = find_node(&fdt)?;
    if let Some(m) = node.children().find(props::is_module) {
        return Err(ConfigError::new(
            path(&m),
            ErrorKind::NotAtRunTime("a module node (the images come with the request)"),
        ));
    }
    let mut notes = Vec::new();
    let mut d = props::domain(&fdt, &node, Style::Hyperlaunch, &mut notes)?;
    let module = |kind, r: Option<Range>, what: &str| {
        r.map(|range| Module { kind, range, node: format!("{} ({what} given with the request)", d.node) })
    };
    d.kernel = module(ModuleKind::Kernel, images.kernel, "kernel");
    d.ramdisk = module(ModuleKind::Ramdisk, images.ramdisk, "ramdisk");
    d.device_tree = module(ModuleKind::DeviceTree, images.device_tree, "device tree");
    run_time_rules(&d, facts)?;
    d.domid = domid(&d, facts)?;
    // The boot rules on this one domain: its kernel, vCPUs and CPUs, memory.
    let cfg = LaunchConfig {
        links: Vec::new(),
        path: BootPath::Hyperlaunch,
        domains: alloc::vec![d],
        hypervisor_modules: Vec::new(),
        console_switch: true,
        kernel_sharing: false,
        boot_timeout_ms: super::DEFAULT_BOOT_TIMEOUT_MS,
        measure: crate::measure::Policy::Optional,
        notes: Vec::new(),
    };
    // The images are in the hypervisor's memory, inside the host's RAM.
    let host = HostFacts {
        cpus: facts.cpus,
        ram: facts.ram.iter().copied().chain(cfg.domains[0].modules().map(|m| m.range)).collect(),
        reserved: Vec::new(),
        free_bytes: facts.free_bytes,
    };
    super::validate::validate(&cfg, &host)?;
    let d =
        cfg.domains.into_iter().next().ok_or_else(|| ConfigError::new("/", ErrorKind::NothingToLaunch))?;
    Ok((d, notes))
}

fn err(d: &DomainConfig, kind: ErrorKind) -> ConfigError {
    ConfigError::new(d.node.clone(), kind)
}

/// What a domain created at run time may not have or ask for.
fn run_time_rules(d: &DomainConfig, facts: &RunTimeFacts) -> Result<(), ConfigError> {
    if d.functions.has(Functions::BOOT) {
        return Err(err(
            d,
            ErrorKind::NotAtRunTime("the boot function (the Boot Domain runs only at launch)"),
        ));
    }
    if d.functions.has(Functions::LEGACY_DOM0) {
        return Err(err(d, ErrorKind::NotAtRunTime("the legacy-dom0 function")));
    }
    const UNIQUE: [(u32, &str); 3] = [
        (Functions::RECOVERY, "recovery"),
        (Functions::CONSOLE, "console"),
        (Functions::XENSTORE, "xenstore"),
    ];
    for (bit, name) in UNIQUE {
        if d.functions.has(bit)
            && let Some(e) = facts.existing.iter().find(|e| e.functions.has(bit))
        {
            return Err(err(
                d,
                ErrorKind::DuplicateFunction { function: name, first: format!("DOM{}", e.domid) },
            ));
        }
    }
    if d.functions.has(Functions::XENSTORE) {
        return Err(err(
            d,
            ErrorKind::NotAtRunTime("the xenstore function (store connections are made at launch)"),
        ));
    }
    if d.permissions.has(Permissions::HARDWARE) {
        if let Some(e) = facts.existing.iter().find(|e| e.permissions.has(Permissions::HARDWARE)) {
            return Err(err(d, ErrorKind::DuplicateHardware { first: format!("DOM{}", e.domid) }));
        }
        if !facts.devices {
            return Err(err(
                d,
                ErrorKind::NotAtRunTime("the hardware permission (this system kept no host device tree)"),
            ));
        }
    }
    if !d.shm.is_empty() {
        return Err(err(d, ErrorKind::NotAtRunTime("static shared memory (it is given at launch)")));
    }
    if d.device_tree.is_some() && !facts.devices {
        return Err(err(
            d,
            ErrorKind::NotAtRunTime("a partial device tree (this system kept no host device tree)"),
        ));
    }
    Ok(())
}

/// The requested id if no existing domain has it, else the lowest id from 1 that none has.
fn domid(d: &DomainConfig, facts: &RunTimeFacts) -> Result<u16, ConfigError> {
    let taken = |id: u32| facts.existing.iter().any(|e| u32::from(e.domid) == id);
    if let Some(id) = d.requested_domid {
        if id > super::validate::MAX_DOMID {
            return Err(err(
                d,
                ErrorKind::BadValue {
                    prop: "domid",
                    why: format!("{id:#x} is above the highest domid {:#x}", super::validate::MAX_DOMID),
                },
            ));
        }
        if taken(id) {
            return Err(err(
                d,
                ErrorKind::DuplicateDomid { domid: id, first: format!("DOM{id}, which exists") },
            ));
        }
        return Ok(id as u16);
    }
    let retired = |id: u32| facts.retired.iter().any(|&r| u32::from(r) == id);
    let id = (1..=super::validate::MAX_DOMID).find(|&id| !taken(id) && !retired(id)).unwrap_or(0);
    Ok(id as u16)
}

/// The first line of a created domain's report: what it is.
pub fn describe(d: &DomainConfig) -> String {
    format!(
        "DOM{}: {} vCPU(s), {} MiB, permissions {}, functions {}{}",
        d.domid,
        d.cpus,
        d.memory_kib / 1024,
        d.permissions,
        d.functions,
        if d.vuart { ", virtual UART" } else { "" }
    )
}
