//! The AArch64 EL2 layer: the only code that touches hardware, and the only place with
//! `unsafe` and `asm!`. Everything it decides with is computed by the portable modules.

pub mod boot;
pub mod build;
pub mod cache;
pub mod console;
pub mod context;
pub mod cpu;
pub mod el2;
pub mod entropy;
pub mod exceptions;
pub mod gic;
pub mod gich;
pub mod heap;
pub mod machine;
pub mod measure;
pub mod mmu;
pub mod power;
pub mod ppi;
pub mod psci;
pub mod sha256;
pub mod stage2;
pub mod start;
pub mod timer;
pub mod uart;
pub mod vcpu;
