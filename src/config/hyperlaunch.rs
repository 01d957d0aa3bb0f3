//! The Hyperlaunch LCM under `/chosen/hypervisor`: `xen,config` for the hypervisor's own
//! modules, one `xen,domain` node per initial domain.

use alloc::format;
use alloc::vec::Vec;

use super::error::{ConfigError, ErrorKind};
use super::props::{self, Style, path};
use super::{BootPath, LaunchConfig, Module, ModuleKind, Note};
use crate::fdt::{Fdt, Node};

/// A `hyperlaunch,net-link` or `hyperlaunch,console-link` node: `domains = <A B>`.
fn link(node: &Node<'_>, kind: crate::virtio::net::Kind) -> props::Result<super::LinkConfig> {
    let p = node
        .property("domains")
        .ok_or_else(|| ConfigError::new(path(node), ErrorKind::MissingProperty("domains")))?;
    let malformed = || {
        ConfigError::new(
            path(node),
            ErrorKind::MalformedProperty { prop: "domains", why: "expected two domain ids (<A B>)" },
        )
    };
    if p.value.len() != 8 {
        return Err(malformed());
    }
    let id = |i: usize| u32::from_be_bytes([p.value[i], p.value[i + 1], p.value[i + 2], p.value[i + 3]]);
    let ends =
        [id(0), id(4)].map(|v| u16::try_from(v).ok().filter(|&v| u32::from(v) <= super::validate::MAX_DOMID));
    match ends {
        [Some(a), Some(b)] => Ok(super::LinkConfig { node: path(node), ends: [a, b], kind }),
        _ => Err(props::bad_value(
            node,
            "domains",
            alloc::format!("{:#x} and {:#x}: domain ids are 0 to 0x7fff", id(0), id(4)),
        )),
    }
}

/// A two-valued string property of `/chosen/hypervisor`: `Some(true)` for `on`,
/// `Some(false)` for `off`, `None` when absent; any other value is a named bad value.
fn switch(hv: &Node<'_>, name: &'static str, (on, off): (&str, &str)) -> props::Result<Option<bool>> {
    match props::str_prop(hv, name)? {
        Some(v) if v == on => Ok(Some(true)),
        Some(v) if v == off => Ok(Some(false)),
        Some(other) => Err(props::bad_value(hv, name, format!("'{other}': expected \"{on}\" or \"{off}\""))),
        None => Ok(None),
    }
}

pub(super) fn parse(fdt: &Fdt<'_>, hv: &Node<'_>) -> props::Result<LaunchConfig> {
    let mut notes = Vec::new();
    let mut cfg = LaunchConfig {
        links: Vec::new(),
        path: BootPath::Hyperlaunch,
        domains: Vec::new(),
        hypervisor_modules: Vec::new(),
        console_switch: true,
        kernel_sharing: false,
        measure: crate::measure::Policy::Optional,
        boot_timeout_ms: super::DEFAULT_BOOT_TIMEOUT_MS,
        notes: Vec::new(),
    };
    for p in hv.properties() {
        match p.name {
            "compatible" | "#address-cells" | "#size-cells" | "phandle" => {}
            "boot-timeout-ms" => {
                cfg.boot_timeout_ms = props::u32_prop(hv, "boot-timeout-ms")?.unwrap_or(cfg.boot_timeout_ms);
                if cfg.boot_timeout_ms == 0 {
                    return Err(props::bad_value(
                        hv,
                        "boot-timeout-ms",
                        "0: the Boot Domain needs some time".into(),
                    ));
                }
            }
            "console-switch" => {
                cfg.console_switch = switch(hv, "console-switch", ("enabled", "disabled"))? != Some(false);
            }
            "kernel-sharing" => {
                cfg.kernel_sharing = switch(hv, "kernel-sharing", ("copy-on-write", "off"))? == Some(true);
            }
            "measured-launch" => {
                if switch(hv, "measured-launch", ("required", "optional"))? == Some(true) {
                    cfg.measure = crate::measure::Policy::Required;
                }
            }
            other => notes.push(Note { node: path(hv), what: format!("unknown property '{other}' ignored") }),
        }
    }
    for child in hv.children() {
        if child.is_compatible("xen,domain") {
            cfg.domains.push(props::domain(fdt, &child, Style::Hyperlaunch, &mut notes)?);
        } else if child.is_compatible("hyperlaunch,net-link") {
            cfg.links.push(link(&child, crate::virtio::net::Kind::Net)?);
        } else if child.is_compatible("hyperlaunch,console-link") {
            cfg.links.push(link(&child, crate::virtio::net::Kind::Console)?);
        } else if child.is_compatible("xen,config") {
            for m in child.children() {
                if m.is_compatible("module,xsm-policy") || m.is_compatible("module,microcode") {
                    notes.push(Note {
                        node: path(&m),
                        what: "XSM policy and microcode have no meaning on Arm: ignored".into(),
                    });
                } else if props::is_module(&m) {
                    let kind = props::module_kind(&m).unwrap_or(ModuleKind::Config);
                    cfg.hypervisor_modules.push(Module {
                        kind,
                        range: props::module_range(fdt, &m)?,
                        node: path(&m),
                    });
                } else {
                    notes.push(Note { node: path(&m), what: "unknown node ignored".into() });
                }
            }
        } else {
            notes.push(Note { node: path(&child), what: "unknown node ignored".into() });
        }
    }
    if cfg.domains.is_empty() {
        return Err(ConfigError::new(path(hv), ErrorKind::NothingToLaunch));
    }
    cfg.notes = notes;
    Ok(cfg)
}
