//! The hyperlaunch EL2 image. Everything it runs lives in the library; on the host this
//! binary is an empty stub so that the workspace builds and tests there.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
use hyperlaunch as _;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("hyperlaunch is an AArch64 EL2 image: build it with scripts/build.sh");
}
