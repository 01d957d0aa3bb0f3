//! The rules a launch configuration must satisfy before any domain is built (binding
//! section 4), and domain id assignment.

use alloc::format;
use alloc::string::String;

use super::error::{ConfigError, ErrorKind};
use super::{Functions, HostFacts, LaunchConfig, Module, Permissions};
use crate::memmap::Range;

type Result<T> = core::result::Result<T, ConfigError>;

/// Highest domain id a configuration may request.
pub const MAX_DOMID: u32 = 0x7fff;

/// Gives every domain its id: the requested one, 0 for the legacy dom0, else the next free
/// id from 1 (0 is never handed out otherwise).
pub(super) fn assign_domids(cfg: &mut LaunchConfig) -> Result<()> {
    let mut used: alloc::collections::BTreeMap<u32, String> = Default::default();
    for d in &cfg.domains {
        let want = match d.requested_domid {
            Some(id) => Some(id),
            None if d.functions.has(Functions::LEGACY_DOM0) => Some(0),
            None => None,
        };
        if let Some(id) = want {
            if id > MAX_DOMID {
                return Err(ConfigError::new(
                    d.node.clone(),
                    ErrorKind::BadValue {
                        prop: "domid",
                        why: format!("{id:#x} is above the highest domid {MAX_DOMID:#x}"),
                    },
                ));
            }
            if let Some(first) = used.get(&id) {
                return Err(ConfigError::new(
                    d.node.clone(),
                    ErrorKind::DuplicateDomid { domid: id, first: first.clone() },
                ));
            }
            used.insert(id, d.node.clone());
        }
    }
    let mut next = 1u32;
    for d in &mut cfg.domains {
        let id = match d.requested_domid {
            Some(id) => id,
            None if d.functions.has(Functions::LEGACY_DOM0) => 0,
            None => {
                while used.contains_key(&next) {
                    next += 1;
                }
                used.insert(next, d.node.clone());
                next
            }
        };
        d.domid = id as u16;
    }
    Ok(())
}

fn err(node: &str, kind: ErrorKind) -> ConfigError {
    ConfigError::new(node, kind)
}

/// Checks every rule; the first failure is returned.
pub(super) fn validate(cfg: &LaunchConfig, host: &HostFacts) -> Result<()> {
    roles(cfg)?;
    for d in &cfg.domains {
        if d.kernel.is_none() {
            return Err(err(&d.node, ErrorKind::MissingKernel));
        }
        for a in &d.affinity {
            if a.vcpu >= d.cpus {
                return Err(err(&d.node, ErrorKind::NoSuchVcpu { vcpu: a.vcpu, cpus: d.cpus }));
            }
            let highest = 63 - a.cpus.leading_zeros();
            if a.cpus == 0 || highest as usize >= host.cpus {
                return Err(err(&d.node, ErrorKind::NoSuchCpu { cpu: highest, cpus: host.cpus }));
            }
        }
        let own_memory = d.functions.has(Functions::LEGACY_DOM0) || d.permissions.has(Permissions::HARDWARE);
        if d.direct_map && d.static_mem.is_empty() && !own_memory {
            return Err(err(&d.node, ErrorKind::DirectMapNeedsStaticMem));
        }
        if !d.static_mem.is_empty() {
            let total: u64 = d.static_mem.iter().map(|r| r.size()).sum();
            if total / 1024 != d.memory_kib {
                return Err(err(
                    &d.node,
                    ErrorKind::StaticMemMismatch { static_kib: total / 1024, memory_kib: d.memory_kib },
                ));
            }
        }
    }
    modules(cfg, host)?;
    static_memory(cfg, host)?;
    links(cfg)?;
    super::shm::validate(cfg, host)?;
    // Domains with static memory bring their own.
    let needed = cfg
        .domains
        .iter()
        .filter(|d| d.static_mem.is_empty())
        .fold(0u64, |t, d| t.saturating_add(d.memory_kib));
    let free = host.free_bytes / 1024;
    if needed > free {
        let last = cfg.domains.last().map(|d| d.node.as_str()).unwrap_or("/chosen");
        return Err(err(last, ErrorKind::OutOfMemory { needed_kib: needed, free_kib: free }));
    }
    Ok(())
}

fn roles(cfg: &LaunchConfig) -> Result<()> {
    const UNIQUE: [(u32, &str); 5] = [
        (Functions::BOOT, "boot"),
        (Functions::RECOVERY, "recovery"),
        (Functions::CONSOLE, "console"),
        (Functions::XENSTORE, "xenstore"),
        (Functions::LEGACY_DOM0, "legacy-dom0"),
    ];
    for (bit, name) in UNIQUE {
        let mut with = cfg.domains.iter().filter(|d| d.functions.has(bit));
        if let (Some(first), Some(second)) = (with.next(), with.next()) {
            return Err(err(
                &second.node,
                ErrorKind::DuplicateFunction { function: name, first: first.node.clone() },
            ));
        }
    }
    let mut hw = cfg.domains.iter().filter(|d| d.permissions.has(Permissions::HARDWARE));
    if let (Some(first), Some(second)) = (hw.next(), hw.next()) {
        return Err(err(&second.node, ErrorKind::DuplicateHardware { first: first.node.clone() }));
    }
    if let Some(b) = cfg.boot_domain()
        && (b.permissions.0 != 0 || b.functions.0 != Functions::BOOT)
    {
        return Err(err(&b.node, ErrorKind::BootDomainPrivileged));
    }
    Ok(())
}

/// Each link joins two different configured domains, neither the Boot Domain nor a
/// direct-mapped one, and no domain is an end of more than `MAX_LINKS`.
fn links(cfg: &LaunchConfig) -> Result<()> {
    for l in &cfg.links {
        let bad = |why: String| err(&l.node, ErrorKind::BadValue { prop: "domains", why });
        if l.ends[0] == l.ends[1] {
            return Err(bad(format!("both ends are domain {}: a link joins two domains", l.ends[0])));
        }
        for id in l.ends {
            let Some(d) = cfg.domains.iter().find(|d| d.domid == id) else {
                return Err(err(&l.node, ErrorKind::LinkEnd { domid: id }));
            };
            if d.functions.has(Functions::BOOT) {
                return Err(bad(format!("domain {id} is the Boot Domain, which runs only at launch")));
            }
            if d.direct_map {
                return Err(bad(format!("domain {id} is direct-mapped (its guest map is the host's)")));
            }
            let n = cfg.links_of(id).len();
            if n > super::MAX_LINKS {
                return Err(bad(format!("domain {id} is an end of {n} links, at most {}", super::MAX_LINKS)));
            }
        }
    }
    Ok(())
}

fn inside_ram(host: &HostFacts, r: &Range) -> bool {
    host.ram.iter().any(|ram| ram.contains_range(r))
}

fn modules(cfg: &LaunchConfig, host: &HostFacts) -> Result<()> {
    let all: alloc::vec::Vec<&Module> =
        cfg.domains.iter().flat_map(|d| d.modules()).chain(cfg.hypervisor_modules.iter()).collect();
    for (i, m) in all.iter().enumerate() {
        if !inside_ram(host, &m.range) {
            return Err(err(&m.node, ErrorKind::OutsideRam { what: "module", range: m.range }));
        }
        for (r, what) in &host.reserved {
            if r.overlaps(&m.range) {
                return Err(err(
                    &m.node,
                    ErrorKind::OverlapsReserved {
                        what: "module",
                        range: m.range,
                        reserved: what,
                        reserved_range: *r,
                    },
                ));
            }
        }
        // Identical modules are one module shared by several domains.
        if let Some(o) = all[..i].iter().find(|o| o.range != m.range && o.range.overlaps(&m.range)) {
            return Err(err(
                &m.node,
                ErrorKind::ModuleOverlap { range: m.range, other: o.node.clone(), other_range: o.range },
            ));
        }
    }
    Ok(())
}

fn static_memory(cfg: &LaunchConfig, host: &HostFacts) -> Result<()> {
    let mut seen: alloc::vec::Vec<(Range, &str)> = alloc::vec::Vec::new();
    for d in &cfg.domains {
        for r in &d.static_mem {
            if !inside_ram(host, r) {
                return Err(err(&d.node, ErrorKind::OutsideRam { what: "static memory", range: *r }));
            }
            if let Some((o, _)) = host.reserved.iter().find(|(o, _)| o.overlaps(r)) {
                return Err(err(
                    &d.node,
                    ErrorKind::StaticMemOverlap { range: *r, other: format!("reserved memory {o}") },
                ));
            }
            if let Some((o, who)) = seen.iter().find(|(o, _)| o.overlaps(r)) {
                return Err(err(
                    &d.node,
                    ErrorKind::StaticMemOverlap { range: *r, other: format!("{who}'s static memory {o}") },
                ));
            }
            let modules = cfg.domains.iter().flat_map(|d| d.modules());
            if let Some(m) = modules.chain(cfg.hypervisor_modules.iter()).find(|m| m.range.overlaps(r)) {
                return Err(err(
                    &d.node,
                    ErrorKind::StaticMemOverlap { range: *r, other: format!("module {}", m.node) },
                ));
            }
            seen.push((*r, &d.node));
        }
    }
    Ok(())
}
