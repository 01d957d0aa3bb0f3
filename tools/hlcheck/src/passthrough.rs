//! Partial device trees given with `--module ADDR=FILE`: read and checked with the
//! hypervisor's own rules (`hyperlaunch::claims`), as at boot.

use hyperlaunch::claims;
use hyperlaunch::config::LaunchConfig;
use hyperlaunch::devices;

/// Prints what the partial device trees give, or why a domain's is refused (then false:
/// the launch would not build that domain). A domain whose partial device tree was not
/// given is noted.
pub fn check(
    host_dtb: &[u8],
    cfg: &LaunchConfig,
    modules: &[(u64, String)],
    ram: Option<hyperlaunch::memmap::Range>,
) -> bool {
    let mut ok = true;
    let mut all = Vec::new();
    for d in &cfg.domains {
        let Some(dt) = &d.device_tree else { continue };
        let Some((_, file)) = modules.iter().find(|(a, _)| *a == dt.range.start) else {
            println!(
                "note: DOM{}: partial device tree at {:#x} not checked (give --module {:#x}=FILE)",
                d.domid, dt.range.start, dt.range.start
            );
            continue;
        };
        let parsed = std::fs::read(file)
            .map_err(|e| format!("{file}: cannot read: {e}"))
            .and_then(|blob| devices::parse_partial(&blob));
        match parsed {
            Ok(list) => all.push((d.domid, list)),
            Err(e) => {
                println!("error: {}: partial device tree {file}: {e} [passthrough]", d.node);
                ok = false;
            }
        }
    }
    let c = claims::check_with_ram(host_dtb, &all, ram);
    for (domid, why) in &c.refused {
        let node = cfg.domains.iter().find(|d| d.domid == *domid).map_or("?", |d| d.node.as_str());
        println!("error: {node}: partial device tree: {why} [passthrough]");
        ok = false;
    }
    for (domid, node) in &c.unprotected {
        println!(
            "warning: DOM{domid}: {node} given without an IOMMU (xen,force-assign-without-iommu): its DMA can reach any memory"
        );
    }
    for (domid, r) in &c.assigned {
        println!("passthrough: domain {domid} gets {r}");
    }
    ok
}
