//! The classic single dom0 of Xen's Arm boot: kernel and ramdisk from `/chosen`
//! `multiboot,*` modules, command line and sizes from `/chosen` properties.

use alloc::string::String;
use alloc::vec::Vec;

use super::props::{self, path};
use super::{
    BootPath, DomainConfig, Functions, HostFacts, LaunchConfig, Module, ModuleKind, Note, Permissions,
};
use crate::fdt::{Fdt, Node};

/// `/chosen`, when it holds a dom0 kernel module.
pub(super) fn find<'a>(fdt: &Fdt<'a>) -> Option<Node<'a>> {
    let chosen = fdt.find("/chosen")?;
    chosen.children().any(|c| c.is_compatible("multiboot,kernel")).then_some(chosen)
}

/// Memory kept back from a dom0 that takes "all free memory": room for its stage-2 tables
/// and the hypervisor's later needs.
const DOM0_SLACK: u64 = 16 << 20;

use super::option;

/// The dom0 described by `/chosen` (used alone, or next to dom0less domains).
pub(super) fn dom0(
    fdt: &Fdt<'_>,
    chosen: &Node<'_>,
    host: &HostFacts,
    notes: &mut Vec<Note>,
) -> props::Result<DomainConfig> {
    let mut d = DomainConfig::new(path(chosen));
    d.requested_domid = None;
    d.permissions = Permissions(Permissions::CONTROL | Permissions::HARDWARE);
    d.functions =
        Functions(Functions::LEGACY_DOM0 | Functions::XENSTORE | Functions::CONSOLE | Functions::RECOVERY);
    d.vuart = true;
    d.direct_map = true;
    let mut kernel_args = None;
    for child in chosen.children() {
        if child.is_compatible("xen,domain") || !props::is_module(&child) {
            continue;
        }
        let kind = match props::module_kind(&child) {
            Some(k @ (ModuleKind::Kernel | ModuleKind::Ramdisk | ModuleKind::DeviceTree)) => k,
            _ => {
                notes.push(Note {
                    node: path(&child),
                    what: "boot module of unspecified type ignored".into(),
                });
                continue;
            }
        };
        let module = Module { kind, range: props::module_range(fdt, &child)?, node: path(&child) };
        let slot = match kind {
            ModuleKind::Kernel => {
                kernel_args = props::str_prop(&child, "bootargs")?;
                &mut d.kernel
            }
            ModuleKind::Ramdisk => &mut d.ramdisk,
            _ => &mut d.device_tree,
        };
        if slot.is_none() {
            *slot = Some(module);
        } else {
            notes.push(Note { node: path(&child), what: "a second dom0 module of this kind ignored".into() });
        }
    }
    let xen_args = props::str_prop(chosen, "xen,xen-bootargs")?;
    // Xen's rules: xen,dom0-bootargs, else the kernel module's bootargs, else /chosen/bootargs
    // when Xen has its own command line.
    d.bootargs = props::str_prop(chosen, "xen,dom0-bootargs")?
        .or(kernel_args)
        .or(if xen_args.is_some() { props::str_prop(chosen, "bootargs")? } else { None })
        .map(String::from);
    let xen_args = xen_args.unwrap_or("");
    d.memory_kib = match option(xen_args, "dom0_mem") {
        Some(v) => {
            let first = v.split(',').next().unwrap_or(v);
            let bytes = props::parse_size(first).filter(|&b| b >= 1 << 20).ok_or_else(|| {
                props::bad_value(
                    chosen,
                    "xen,xen-bootargs",
                    alloc::format!("dom0_mem={v} is not a size like 512M"),
                )
            })?;
            bytes / 1024
        }
        None => (host.free_bytes.saturating_sub(DOM0_SLACK) & !((2 << 20) - 1)) / 1024,
    };
    d.cpus = match option(xen_args, "dom0_max_vcpus") {
        Some(v) => {
            let max = v.rsplit('-').next().unwrap_or(v);
            max.parse::<u32>().ok().filter(|&n| n > 0 && n <= super::MAX_VCPUS).ok_or_else(|| {
                props::bad_value(
                    chosen,
                    "xen,xen-bootargs",
                    alloc::format!("dom0_max_vcpus={v} is not a count from 1 to {}", super::MAX_VCPUS),
                )
            })?
        }
        None => host.cpus.max(1) as u32,
    };
    Ok(d)
}

pub(super) fn parse(fdt: &Fdt<'_>, chosen: &Node<'_>, host: &HostFacts) -> props::Result<LaunchConfig> {
    let mut notes = Vec::new();
    let d = dom0(fdt, chosen, host, &mut notes)?;
    Ok(LaunchConfig {
        links: Vec::new(),
        path: BootPath::Classic,
        domains: alloc::vec![d],
        hypervisor_modules: Vec::new(),
        console_switch: true,
        kernel_sharing: false,
        measure: crate::measure::Policy::Optional,
        boot_timeout_ms: super::DEFAULT_BOOT_TIMEOUT_MS,
        notes,
    })
}
