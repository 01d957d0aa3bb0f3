//! Xen's dom0less bindings: `xen,domain` nodes under `/chosen`, with an optional dom0.

use alloc::vec::Vec;

use super::props::{self, Style};
use super::{BootPath, HostFacts, LaunchConfig, classic};
use crate::fdt::{Fdt, Node};

/// `/chosen`, when it holds `xen,domain` nodes.
pub(super) fn find<'a>(fdt: &Fdt<'a>) -> Option<Node<'a>> {
    let chosen = fdt.find("/chosen")?;
    chosen.children().any(|c| c.is_compatible("xen,domain")).then_some(chosen)
}

pub(super) fn parse(fdt: &Fdt<'_>, chosen: &Node<'_>, host: &HostFacts) -> props::Result<LaunchConfig> {
    let mut notes = Vec::new();
    let mut domains = Vec::new();
    for child in chosen.children().filter(|c| c.is_compatible("xen,domain")) {
        domains.push(props::domain(fdt, &child, Style::Dom0less, &mut notes)?);
    }
    if classic::find(fdt).is_some() {
        // A dom0 without dom0_mem= takes what the other domains leave.
        let taken = domains.iter().fold(0u64, |t, d| t.saturating_add(d.memory_kib.saturating_mul(1024)));
        let rest = HostFacts { free_bytes: host.free_bytes.saturating_sub(taken), ..host.clone() };
        domains.insert(0, classic::dom0(fdt, chosen, &rest, &mut notes)?);
    }
    Ok(LaunchConfig {
        links: Vec::new(),
        path: BootPath::Dom0less,
        domains,
        hypervisor_modules: Vec::new(),
        console_switch: true,
        kernel_sharing: false,
        measure: crate::measure::Policy::Optional,
        boot_timeout_ms: super::DEFAULT_BOOT_TIMEOUT_MS,
        notes,
    })
}
