//! Why a domain could not be built: one variant per step that can fail.

use alloc::string::String;
use core::fmt;

use crate::guest;
use crate::memmap::Range;

/// Why a domain could not be built.
#[derive(Debug)]
pub enum BuildError {
    Place(crate::sched::PlaceError),
    Unsupported(&'static str),
    /// A boot module it names is not one the loader gave.
    NoModule(Range),
    Gzip(crate::gzip::GzipError),
    GzipSize {
        size: usize,
        ram: u64,
    },
    NoMemory {
        bytes: u64,
    },
    Kernel(crate::image::ImageError),
    Layout(guest::LayoutError),
    /// vm-fdt could not write its device tree.
    Dtb(vm_fdt::Error),
    Map(crate::pgtable::MapError),
    /// Its partial device tree (`module,device-tree`) is malformed.
    Passthrough(String),
    /// Every VMID the CPU has is taken (`bits`: its VMID width).
    NoVmid {
        bits: u32,
    },
}

impl BuildError {
    /// A short name for the kind of failure (the rule a caller is told).
    pub fn rule(&self) -> &'static str {
        match self {
            BuildError::Place(_) => "placement",
            BuildError::Unsupported(_) => "not-supported",
            BuildError::NoModule(_) => "no-module",
            BuildError::Gzip(_) | BuildError::GzipSize { .. } => "corrupt-kernel",
            BuildError::NoMemory { .. } => "out-of-memory",
            BuildError::Kernel(_) => "bad-kernel",
            BuildError::Layout(_) => "layout",
            BuildError::Dtb(_) => "guest-dtb",
            BuildError::Map(_) => "stage-2",
            BuildError::Passthrough(_) => "passthrough",
            BuildError::NoVmid { .. } => "no-vmid",
        }
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Place(e) => write!(f, "{e}"),
            BuildError::Passthrough(e) => write!(f, "partial device tree: {e}"),
            BuildError::Unsupported(what) => write!(f, "{what} is not supported yet"),
            BuildError::NoModule(r) => write!(f, "module {:#x}..{:#x} is not a boot module", r.start, r.end),
            BuildError::Gzip(e) => write!(f, "kernel: {e}"),
            BuildError::GzipSize { size, ram } => write!(
                f,
                "kernel: the gzip trailer gives {size} bytes, more than the domain's {ram} bytes of RAM (truncated or corrupt stream)"
            ),
            BuildError::NoMemory { bytes } => write!(f, "no {} KiB of free RAM left", bytes >> 10),
            BuildError::Kernel(e) => write!(f, "kernel: {e}"),
            BuildError::Layout(e) => write!(f, "{e}"),
            BuildError::Dtb(e) => write!(f, "could not write the guest device tree: {e}"),
            BuildError::Map(e) => write!(f, "stage 2: {e}"),
            BuildError::NoVmid { bits } => write!(
                f,
                "no VMID left: the CPU has {bits}-bit VMIDs, for {} domains at most",
                (1u32 << bits) - 1
            ),
        }
    }
}
