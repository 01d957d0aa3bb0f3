//! hyperlaunch: a static-partitioning hypervisor for AArch64 implementing the Hyperlaunch
//! design. Everything outside `arch` is plain Rust that runs under `cargo test` on the host.

#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]
#![warn(clippy::undocumented_unsafe_blocks)]

extern crate alloc;

pub mod claims;
pub mod config;
pub mod conmux;
pub mod devices;
pub mod entropy;
pub mod fdt;
pub mod frames;
pub mod guest;
pub mod guest_dtb;
pub mod gzip;
pub mod hv;
pub mod hvmap;
pub mod hypercall;
pub mod image;
pub mod launch;
pub mod logger;
pub mod measure;
pub mod memmap;
pub mod mmio;
pub mod outq;
pub mod pgtable;
pub mod platform;
pub mod psci;
pub mod sched;
pub mod spectre;
pub mod store;
#[cfg(test)]
mod testrng;
pub mod trap;
pub mod vgic;
pub mod virtio;
pub mod vuart;

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
#[allow(unsafe_code)]
pub mod arch;

/// The hypervisor's version, as printed in its banner.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
