//! Configuration errors: one variant per rule, each naming the node, the property or the
//! address range at fault.

use alloc::string::String;
use core::fmt;

use crate::fdt::FdtError;
use crate::memmap::Range;
use crate::platform::PlatformError;

/// A configuration error at a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Path of the node at fault.
    pub node: String,
    pub kind: ErrorKind,
}

impl ConfigError {
    pub fn new(node: impl Into<String>, kind: ErrorKind) -> Self {
        ConfigError { node: node.into(), kind }
    }

    /// A stable short name of the rule that failed (used by tests and `dts/invalid/`).
    pub fn name(&self) -> &'static str {
        self.kind.name()
    }
}

/// Every way a launch configuration can be wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// The blob is not a readable Device Tree.
    Fdt(FdtError),
    /// The DTB does not describe a usable machine.
    Platform(PlatformError),
    /// No LCM, no dom0less domain and no classic dom0 kernel.
    NothingToLaunch,
    /// A required property is absent.
    MissingProperty(&'static str),
    /// A property has the wrong size, cell count or string form.
    MalformedProperty { prop: &'static str, why: &'static str },
    /// A property value outside what is accepted.
    BadValue { prop: &'static str, why: String },
    /// A second domain with a function only one may have.
    DuplicateFunction { function: &'static str, first: String },
    /// A second domain with the Hardware permission.
    DuplicateHardware { first: String },
    /// The Boot Domain has permissions or other functions.
    BootDomainPrivileged,
    /// Two domains ask for the same id.
    DuplicateDomid { domid: u32, first: String },
    /// A domain without a kernel module.
    MissingKernel,
    /// Two modules of the same kind in one domain.
    DuplicateModule(&'static str),
    /// A module (or static memory) not entirely inside RAM.
    OutsideRam { what: &'static str, range: Range },
    /// Two modules that overlap without being the same module.
    ModuleOverlap { range: Range, other: String, other_range: Range },
    /// A module overlapping memory that is reserved for something else.
    OverlapsReserved { what: &'static str, range: Range, reserved: &'static str, reserved_range: Range },
    /// All domains together need more memory than is free.
    OutOfMemory { needed_kib: u64, free_kib: u64 },
    /// `hard-affinity` names a CPU the machine does not have.
    NoSuchCpu { cpu: u32, cpus: usize },
    /// A `xen,vcpu` node for a vCPU the domain does not have.
    NoSuchVcpu { vcpu: u32, cpus: u32 },
    /// The domain asks for AArch32 (`mode` without LONG).
    Aarch32Unsupported,
    /// `direct-map` without `xen,static-mem` on a domain that is not dom0.
    DirectMapNeedsStaticMem,
    /// `xen,static-mem` that does not add up to `memory`.
    StaticMemMismatch { static_kib: u64, memory_kib: u64 },
    /// Static memory claimed by two domains, or overlapping reserved memory or a module.
    StaticMemOverlap { range: Range, other: String },
    /// `measured-launch = "required"` on a host without a TPM the hypervisor can drive.
    NoTpm(String),
    /// Something a domain created at run time cannot have (yet).
    NotAtRunTime(&'static str),
    /// A link names a domain the configuration does not have.
    LinkEnd { domid: u16 },
    /// A static shared-memory region that cannot be given as asked.
    SharedMemory { id: String, why: String },
}

impl ErrorKind {
    pub fn name(&self) -> &'static str {
        match self {
            ErrorKind::Fdt(_) => "corrupt-dtb",
            ErrorKind::Platform(_) => "bad-platform",
            ErrorKind::NothingToLaunch => "nothing-to-launch",
            ErrorKind::MissingProperty(_) => "missing-property",
            ErrorKind::MalformedProperty { .. } => "malformed-property",
            ErrorKind::BadValue { .. } => "bad-value",
            ErrorKind::DuplicateFunction { .. } => "duplicate-function",
            ErrorKind::DuplicateHardware { .. } => "duplicate-hardware",
            ErrorKind::BootDomainPrivileged => "boot-domain-privileged",
            ErrorKind::DuplicateDomid { .. } => "duplicate-domid",
            ErrorKind::MissingKernel => "missing-kernel",
            ErrorKind::DuplicateModule(_) => "duplicate-module",
            ErrorKind::OutsideRam { .. } => "outside-ram",
            ErrorKind::ModuleOverlap { .. } => "module-overlap",
            ErrorKind::OverlapsReserved { .. } => "overlaps-reserved",
            ErrorKind::OutOfMemory { .. } => "out-of-memory",
            ErrorKind::NoSuchCpu { .. } => "no-such-cpu",
            ErrorKind::NoSuchVcpu { .. } => "no-such-vcpu",
            ErrorKind::Aarch32Unsupported => "aarch32-unsupported",
            ErrorKind::DirectMapNeedsStaticMem => "direct-map-needs-static-mem",
            ErrorKind::StaticMemMismatch { .. } => "static-mem-mismatch",
            ErrorKind::StaticMemOverlap { .. } => "static-mem-overlap",
            ErrorKind::NoTpm(_) => "no-tpm",
            ErrorKind::NotAtRunTime(_) => "not-at-run-time",
            ErrorKind::LinkEnd { .. } => "link-unknown-domain",
            ErrorKind::SharedMemory { .. } => "shared-memory",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Fdt(e) => write!(f, "{e}"),
            ErrorKind::Platform(e) => write!(f, "{e}"),
            ErrorKind::NothingToLaunch => write!(
                f,
                "nothing to launch: no /chosen/hypervisor (LCM), no xen,domain node and no multiboot,kernel module"
            ),
            ErrorKind::MissingProperty(p) => write!(f, "missing required property '{p}'"),
            ErrorKind::MalformedProperty { prop, why } => write!(f, "property '{prop}' is malformed: {why}"),
            ErrorKind::BadValue { prop, why } => write!(f, "property '{prop}': {why}"),
            ErrorKind::DuplicateFunction { function, first } => {
                write!(f, "a second {function} domain (the first is {first}); at most one is allowed")
            }
            ErrorKind::DuplicateHardware { first } => {
                write!(f, "a second domain with the hardware permission (the first is {first})")
            }
            ErrorKind::BootDomainPrivileged => {
                write!(f, "the boot domain may have no permissions and no other function")
            }
            ErrorKind::DuplicateDomid { domid, first } => {
                write!(f, "domid {domid} is already used by {first}")
            }
            ErrorKind::MissingKernel => write!(f, "no kernel module (module,kernel or multiboot,kernel)"),
            ErrorKind::DuplicateModule(k) => write!(f, "more than one {k} module"),
            ErrorKind::OutsideRam { what, range } => write!(f, "{what} {range} is not inside RAM"),
            ErrorKind::ModuleOverlap { range, other, other_range } => write!(
                f,
                "module {range} overlaps module {other_range} of {other} without being the same module"
            ),
            ErrorKind::OverlapsReserved { what, range, reserved, reserved_range } => {
                write!(f, "{what} {range} overlaps the {reserved} at {reserved_range}")
            }
            ErrorKind::OutOfMemory { needed_kib, free_kib } => write!(
                f,
                "domains need {} MiB of memory but only {} MiB of RAM is free",
                needed_kib / 1024,
                free_kib / 1024
            ),
            ErrorKind::NoSuchCpu { cpu, cpus } => {
                write!(f, "hard-affinity names CPU {cpu} but the machine has {cpus} CPU(s)")
            }
            ErrorKind::NoSuchVcpu { vcpu, cpus } => {
                write!(f, "xen,vcpu id {vcpu} but the domain has {cpus} vCPU(s)")
            }
            ErrorKind::Aarch32Unsupported => {
                write!(f, "mode without the LONG (64-bit) bit: AArch32 domains are not supported")
            }
            ErrorKind::DirectMapNeedsStaticMem => write!(f, "direct-map needs xen,static-mem"),
            ErrorKind::StaticMemMismatch { static_kib, memory_kib } => {
                write!(f, "xen,static-mem gives {static_kib} KiB but memory is {memory_kib} KiB")
            }
            ErrorKind::StaticMemOverlap { range, other } => {
                write!(f, "static memory {range} overlaps {other}")
            }
            ErrorKind::NoTpm(why) => write!(f, "measured-launch = \"required\" but {why}"),
            ErrorKind::NotAtRunTime(what) => write!(f, "{what}: not for a domain created at run time"),
            ErrorKind::LinkEnd { domid } => {
                write!(f, "the link names domain {domid}, which is not configured")
            }
            ErrorKind::SharedMemory { id, why } => write!(f, "shared memory '{id}': {why}"),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.node, self.kind)
    }
}
