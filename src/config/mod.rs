//! The launch configuration: one [`LaunchConfig`] built from the host Device Tree, however
//! the system was described (a Hyperlaunch LCM, Xen dom0less nodes, or a classic dom0),
//! validated before anything is built from it.

mod classic;
mod dom0less;
mod error;
mod hyperlaunch;
mod plan;
mod props;
pub mod runtime;
pub mod shm;
mod validate;

#[cfg(test)]
pub(crate) mod tests;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

pub use error::{ConfigError, ErrorKind};
pub use plan::Plan;

use crate::fdt::{Fdt, FdtError};
use crate::memmap::Range;
use crate::platform::Platform;

/// How the system was described.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootPath {
    /// `/chosen/hypervisor` with `compatible = "hypervisor,xen"`.
    Hyperlaunch,
    /// `xen,domain` nodes under `/chosen` (optionally with a dom0).
    Dom0less,
    /// A single dom0 from `/chosen` `multiboot,kernel`.
    Classic,
}

impl fmt::Display for BootPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BootPath::Hyperlaunch => "Hyperlaunch",
            BootPath::Dom0less => "dom0less",
            BootPath::Classic => "classic dom0",
        })
    }
}

/// Domain permissions (design values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Permissions(pub u32);

impl Permissions {
    pub const CONTROL: u32 = 1 << 0;
    pub const HARDWARE: u32 = 1 << 1;
    const NAMES: [(u32, &'static str); 2] = [(Self::CONTROL, "control"), (Self::HARDWARE, "hardware")];

    pub fn has(self, bit: u32) -> bool {
        self.0 & bit != 0
    }
}

/// Domain functions (design values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Functions(pub u32);

impl Functions {
    pub const BOOT: u32 = 1 << 0;
    pub const RECOVERY: u32 = 1 << 1;
    pub const CONSOLE: u32 = 1 << 2;
    pub const XENSTORE: u32 = 1 << 30;
    pub const LEGACY_DOM0: u32 = 1 << 31;
    const NAMES: [(u32, &'static str); 5] = [
        (Self::BOOT, "boot"),
        (Self::RECOVERY, "recovery"),
        (Self::CONSOLE, "console"),
        (Self::XENSTORE, "xenstore"),
        (Self::LEGACY_DOM0, "legacy-dom0"),
    ];

    pub fn has(self, bit: u32) -> bool {
        self.0 & bit != 0
    }
}

fn write_flags(f: &mut fmt::Formatter<'_>, value: u32, names: &[(u32, &str)]) -> fmt::Result {
    if value == 0 {
        return f.write_str("none");
    }
    let mut first = true;
    let mut known = 0;
    for &(bit, name) in names {
        if value & bit != 0 {
            if !first {
                f.write_str(",")?;
            }
            f.write_str(name)?;
            first = false;
            known |= bit;
        }
    }
    if value & !known != 0 {
        if !first {
            f.write_str(",")?;
        }
        write!(f, "{:#x}", value & !known)?;
    }
    Ok(())
}

impl fmt::Display for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_flags(f, self.0, &Self::NAMES)
    }
}

impl fmt::Display for Functions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_flags(f, self.0, &Self::NAMES)
    }
}

/// What a boot module holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModuleKind {
    Kernel,
    Ramdisk,
    DeviceTree,
    /// `module,config`: an opaque blob for the Boot Domain.
    Config,
}

impl fmt::Display for ModuleKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ModuleKind::Kernel => "kernel",
            ModuleKind::Ramdisk => "ramdisk",
            ModuleKind::DeviceTree => "device-tree",
            ModuleKind::Config => "config",
        })
    }
}

/// A boot module the loader placed in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    pub kind: ModuleKind,
    pub range: Range,
    /// Path of the node that describes it.
    pub node: String,
}

/// A vCPU pinned to a set of physical CPUs (`xen,vcpu` with `hard-affinity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VcpuAffinity {
    pub vcpu: u32,
    /// Bit n set: physical CPU n allowed.
    pub cpus: u64,
}

/// One initial domain, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainConfig {
    /// Path of the node that describes it.
    pub node: String,
    /// The domain id it gets (requested, or the next free one).
    pub domid: u16,
    /// The id the node asked for, if any.
    pub requested_domid: Option<u32>,
    pub permissions: Permissions,
    pub functions: Functions,
    /// vCPU count.
    pub cpus: u32,
    /// Memory in KiB.
    pub memory_kib: u64,
    pub uuid: Option<[u8; 16]>,
    pub security_id: Option<String>,
    /// Kernel command line (the kernel module's wins over the domain's).
    pub bootargs: Option<String>,
    pub kernel: Option<Module>,
    pub ramdisk: Option<Module>,
    pub device_tree: Option<Module>,
    pub config: Option<Module>,
    /// Has a virtual UART.
    pub vuart: bool,
    /// Guest addresses equal host addresses.
    pub direct_map: bool,
    /// Host memory reserved for this domain (`xen,static-mem`).
    pub static_mem: Vec<Range>,
    pub affinity: Vec<VcpuAffinity>,
    /// Static shared memory it is given (`xen,domain-shared-memory-v1`).
    pub shm: Vec<shm::Shm>,
}

impl DomainConfig {
    pub(crate) fn new(node: String) -> Self {
        DomainConfig {
            node,
            domid: 0,
            requested_domid: None,
            permissions: Permissions::default(),
            functions: Functions::default(),
            cpus: 1,
            memory_kib: 0,
            uuid: None,
            security_id: None,
            bootargs: None,
            kernel: None,
            ramdisk: None,
            device_tree: None,
            config: None,
            vuart: false,
            direct_map: false,
            static_mem: Vec::new(),
            affinity: Vec::new(),
            shm: Vec::new(),
        }
    }

    /// The domain's modules, in a fixed order.
    pub fn modules(&self) -> impl Iterator<Item = &Module> {
        [&self.kernel, &self.ramdisk, &self.device_tree, &self.config].into_iter().flatten()
    }

    /// A Recovery Domain with no other role is built paused and runs only if launch fails.
    pub fn is_standby_recovery(&self) -> bool {
        self.functions.0 == Functions::RECOVERY && self.permissions.0 == 0
    }
}

/// Something the parser skipped, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub node: String,
    pub what: String,
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.node, self.what)
    }
}

/// The whole launch configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchConfig {
    pub path: BootPath,
    /// Initial domains in configuration order.
    pub domains: Vec<DomainConfig>,
    /// Modules of the hypervisor's own `config` node.
    pub hypervisor_modules: Vec<Module>,
    /// Ctrl-A ×3 switching of the console input (`console-switch = "disabled"` turns it off).
    pub console_switch: bool,
    /// A kernel module booted in place by domains whose vCPUs share one CPU is mapped into
    /// them read-only, 4 KiB pages copied on a domain's first write
    /// (`kernel-sharing = "copy-on-write"` under /chosen/hypervisor, ours). Off by default:
    /// each domain gets its own copy, its RAM mapped with 2 MiB and 1 GiB blocks.
    pub kernel_sharing: bool,
    /// How long the Boot Domain may run before launch goes on without it (ms;
    /// `/chosen/hypervisor/boot-timeout-ms`, ours).
    pub boot_timeout_ms: u32,
    /// Whether the launch stops when the TPM cannot record it (`measured-launch =
    /// "required"`, ours); the event log is produced either way.
    pub measure: crate::measure::Policy,
    /// Links between two domains (`hyperlaunch,net-link`, `hyperlaunch,console-link`, ours).
    pub links: Vec<LinkConfig>,
    /// Unknown nodes and properties that were ignored.
    pub notes: Vec<Note>,
}

/// A point-to-point link: a virtio device (network card or console) in each of two
/// domains, what one sends moved to the other by the hypervisor (docs/links.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkConfig {
    /// Path of the node that describes it.
    pub node: String,
    /// The two domains' ids.
    pub ends: [u16; 2],
    pub kind: crate::virtio::net::Kind,
}

/// The most links one domain may be an end of.
pub const MAX_LINKS: usize = 4;

impl LaunchConfig {
    /// The links `domid` is an end of, in configuration order: (link index, the other end).
    pub fn links_of(&self, domid: u16) -> Vec<(usize, u16)> {
        self.links
            .iter()
            .enumerate()
            .filter_map(|(k, l)| l.ends.iter().position(|&e| e == domid).map(|s| (k, l.ends[1 - s])))
            .collect()
    }

    /// Dynamic when some domain has the Control permission, else Static.
    pub fn is_dynamic(&self) -> bool {
        self.domains.iter().any(|d| d.permissions.has(Permissions::CONTROL))
    }

    fn with_function(&self, bit: u32) -> Option<&DomainConfig> {
        self.domains.iter().find(|d| d.functions.has(bit))
    }

    pub fn boot_domain(&self) -> Option<&DomainConfig> {
        self.with_function(Functions::BOOT)
    }

    pub fn recovery_domain(&self) -> Option<&DomainConfig> {
        self.with_function(Functions::RECOVERY)
    }

    /// The console domain: the one with the Console function, else the first domain with a
    /// virtual UART (the ordered convention). `true` when explicit.
    pub fn console_domain(&self) -> Option<(&DomainConfig, bool)> {
        match self.with_function(Functions::CONSOLE) {
            Some(d) => Some((d, true)),
            None => {
                self.domains.iter().find(|d| d.vuart && !d.functions.has(Functions::BOOT)).map(|d| (d, false))
            }
        }
    }
}

/// The value of `key=` in a command line such as `/chosen/xen,xen-bootargs` (the last
/// one wins, as Xen reads it).
pub fn option<'a>(args: &'a str, key: &str) -> Option<&'a str> {
    args.split_whitespace().filter_map(|a| a.strip_prefix(key)?.strip_prefix('=')).next_back()
}

/// The most memory a domain may be given (KiB): 1 PiB, far beyond any machine, and small
/// enough that sums of domains and byte counts never overflow.
pub const MAX_MEMORY_KIB: u64 = 1 << 40;
/// The most vCPUs a domain may have (the width of a domain's vCPU masks).
pub const MAX_VCPUS: u32 = 64;

/// Default Boot Domain time limit.
pub const DEFAULT_BOOT_TIMEOUT_MS: u32 = 30_000;

/// What the configuration is checked against.
#[derive(Debug, Clone)]
pub struct HostFacts {
    /// Physical CPUs in use.
    pub cpus: usize,
    /// RAM banks.
    pub ram: Vec<Range>,
    /// Ranges no module may overlap: /memreserve/, /reserved-memory, the DTB, the image.
    pub reserved: Vec<(Range, &'static str)>,
    /// Bytes of RAM free for domains (static memory not included: it is claimed already).
    pub free_bytes: u64,
}

impl HostFacts {
    /// The facts a platform description gives. `hypervisor_bytes` is what the hypervisor
    /// keeps for itself out of free RAM (its heap).
    pub fn from_platform(p: &Platform, hypervisor_bytes: u64) -> Self {
        let free = p.memory.free().map(|f| f.total()).unwrap_or(0);
        HostFacts {
            cpus: p.cpu_count,
            ram: p.memory.ram.iter().collect(),
            reserved: p
                .memory
                .tagged()
                .filter(|(_, u)| {
                    !matches!(
                        u,
                        crate::memmap::Use::Module
                            | crate::memmap::Use::StaticMem
                            | crate::memmap::Use::SharedMem
                    )
                })
                .map(|(r, u)| (r, u.name()))
                .collect(),
            free_bytes: free.saturating_sub(hypervisor_bytes),
        }
    }
}

/// Parses and validates the launch configuration of a host DTB.
pub fn parse(fdt: &Fdt<'_>, host: &HostFacts) -> Result<LaunchConfig, ConfigError> {
    let mut cfg =
        if let Some(hv) = fdt.find("/chosen/hypervisor").filter(|n| n.is_compatible("hypervisor,xen")) {
            hyperlaunch::parse(fdt, &hv)?
        } else if let Some(chosen) = dom0less::find(fdt) {
            dom0less::parse(fdt, &chosen, host)?
        } else if let Some(chosen) = classic::find(fdt) {
            classic::parse(fdt, &chosen, host)?
        } else {
            return Err(ConfigError::new("/chosen", ErrorKind::NothingToLaunch));
        };
    validate::assign_domids(&mut cfg)?;
    validate::validate(&cfg, host)?;
    if cfg.measure == crate::measure::Policy::Required {
        let why = match crate::measure::find_tpm(fdt) {
            Ok(Some(_)) => None,
            Ok(None) => Some(String::from("the host device tree has no TPM (tcg,tpm-tis-mmio)")),
            Err(e) => Some(format!("its TPM is unusable: {e}")),
        };
        if let Some(why) = why {
            return Err(ConfigError::new("/chosen/hypervisor", ErrorKind::NoTpm(why)));
        }
    }
    Ok(cfg)
}

/// Parses a whole host DTB blob as the hypervisor would: the entry point for the host
/// checker and the fuzzer. Free RAM is counted less the hypervisor's heap.
pub fn parse_blob(blob: &[u8]) -> Result<(Platform, LaunchConfig), ConfigError> {
    parse_blob_with_ram(blob, None)
}

/// As [`parse_blob`], with `ram` for a device tree whose `/memory` the firmware fills.
pub fn parse_blob_with_ram(blob: &[u8], ram: Option<Range>) -> Result<(Platform, LaunchConfig), ConfigError> {
    let fdt = Fdt::new(blob).map_err(|e| ConfigError::new("/", ErrorKind::Fdt(e)))?;
    let platform = Platform::from_fdt_with_ram(&fdt, None, ram)
        .map_err(|e| ConfigError::new("/", ErrorKind::Platform(e)))?;
    let free = platform.memory.free().map(|f| f.total()).unwrap_or(0);
    let host = HostFacts::from_platform(&platform, crate::memmap::hypervisor_heap_size(free));
    let cfg = parse(&fdt, &host)?;
    Ok((platform, cfg))
}

impl From<FdtError> for ErrorKind {
    fn from(e: FdtError) -> Self {
        ErrorKind::Fdt(e)
    }
}
