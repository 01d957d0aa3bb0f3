//! Static shared memory, Xen's dom0less binding (`xen,domain-shared-memory-v1` nodes in a
//! domain node; the LCM's domain nodes take them too): a host range given to several
//! domains at guest addresses of their own, named by `xen,shm-id`, each domain its
//! `owner` or a `borrower`. Read here, checked with the configuration.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::error::{ConfigError, ErrorKind};
use super::props::{bad_value, path, str_prop};
use super::{HostFacts, LaunchConfig};
use crate::fdt::Node;
use crate::memmap::Range;

pub const COMPATIBLE: &str = "xen,domain-shared-memory-v1";
/// Longest `xen,shm-id` (Xen's limit: 15 characters).
pub const MAX_ID: usize = 15;
/// Most shared regions in a configuration (Xen's `NR_SHMEM_BANKS`).
pub const MAX_REGIONS: usize = 32;

/// A domain's part in a shared region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Owner,
    Borrower,
    /// No `role`: a borrower of a region the hypervisor owns.
    Unstated,
}

/// One shared region as a domain sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shm {
    pub node: String,
    pub id: String,
    pub host: Range,
    pub guest: u64,
    pub role: Role,
}

/// `xen,shared-mem = <host guest size>` with the domain node's cell counts.
pub fn cells(value: &[u8], ac: u32, sc: u32) -> Option<(u64, u64, u64)> {
    let read = |at: usize, n: u32| -> Option<u64> {
        let b = value.get(at..at + 4 * n as usize)?;
        Some(
            b.chunks(4)
                .fold(0u64, |v, c| (v << 32) | u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]]))),
        )
    };
    if !(1..=2).contains(&ac) || !(1..=2).contains(&sc) || value.len() != 4 * (2 * ac + sc) as usize {
        return None;
    }
    let a = 4 * ac as usize;
    Some((read(0, ac)?, read(a, ac)?, read(2 * a, sc)?))
}

/// Reads a shared-memory node of domain node `domain`.
pub(super) fn parse(domain: &Node<'_>, node: &Node<'_>) -> Result<Shm, ConfigError> {
    let id = str_prop(node, "xen,shm-id")?
        .ok_or_else(|| ConfigError::new(path(node), ErrorKind::MissingProperty("xen,shm-id")))?;
    if id.is_empty() || id.len() > MAX_ID {
        return Err(bad_value(node, "xen,shm-id", format!("'{id}': 1 to {MAX_ID} characters")));
    }
    let p = node
        .property("xen,shared-mem")
        .ok_or_else(|| ConfigError::new(path(node), ErrorKind::MissingProperty("xen,shared-mem")))?;
    let (ac, sc) = (domain.address_cells().unwrap_or(0), domain.size_cells().unwrap_or(0));
    let Some((host, guest, size)) = cells(p.value, ac, sc) else {
        let why = if p.value.len() == 4 * (ac + sc) as usize {
            "the host address must be given: <host guest size>"
        } else {
            "expected <host guest size> with the domain node's #address-cells and #size-cells"
        };
        return Err(ConfigError::new(
            path(node),
            ErrorKind::MalformedProperty { prop: "xen,shared-mem", why },
        ));
    };
    let aligned = [host, guest, size].iter().all(|v| v.is_multiple_of(4096));
    let host_range =
        Range::at(host, size).filter(|r| !r.is_empty() && aligned && guest.checked_add(size).is_some());
    let Some(host_range) = host_range else {
        return Err(bad_value(
            node,
            "xen,shared-mem",
            format!(
                "host {host:#x}, guest {guest:#x}, size {size:#x}: page-aligned, not empty, not wrapping"
            ),
        ));
    };
    let role = match str_prop(node, "role")? {
        Some("owner") => Role::Owner,
        Some("borrower") => Role::Borrower,
        None => Role::Unstated,
        Some(other) => {
            return Err(bad_value(node, "role", format!("'{other}': expected \"owner\" or \"borrower\"")));
        }
    };
    Ok(Shm { node: path(node), id: id.into(), host: host_range, guest, role })
}

fn conflict(node: &str, id: &str, why: String) -> ConfigError {
    ConfigError::new(node, ErrorKind::SharedMemory { id: id.into(), why })
}

/// Every region in RAM, clear of reserved memory, modules and static memory; one host range
/// per id and one id per host range; at most one owner; its guest range clear of the
/// domain's RAM.
pub(super) fn validate(cfg: &LaunchConfig, host: &HostFacts) -> Result<(), ConfigError> {
    let all: Vec<(&super::DomainConfig, &Shm)> =
        cfg.domains.iter().flat_map(|d| d.shm.iter().map(move |s| (d, s))).collect();
    let regions = {
        let mut ids: Vec<&str> = all.iter().map(|(_, s)| s.id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        ids.len()
    };
    if let Some((_, s)) = all.get(MAX_REGIONS).filter(|_| regions > MAX_REGIONS) {
        return Err(conflict(&s.node, &s.id, format!("more than {MAX_REGIONS} shared regions")));
    }
    for (i, &(d, s)) in all.iter().enumerate() {
        if !host.ram.iter().any(|r| r.contains_range(&s.host)) {
            return Err(ConfigError::new(
                s.node.clone(),
                ErrorKind::OutsideRam { what: "shared memory", range: s.host },
            ));
        }
        if let Some((r, what)) = host.reserved.iter().find(|(r, _)| r.overlaps(&s.host)) {
            return Err(conflict(&s.node, &s.id, format!("{} overlaps the {what} at {r}", s.host)));
        }
        let mut modules = cfg.domains.iter().flat_map(|d| d.modules()).chain(cfg.hypervisor_modules.iter());
        if let Some(m) = modules.find(|m| m.range.overlaps(&s.host)) {
            return Err(conflict(&s.node, &s.id, format!("{} overlaps module {}", s.host, m.node)));
        }
        if let Some((o, r)) = cfg
            .domains
            .iter()
            .flat_map(|o| o.static_mem.iter().map(move |r| (o, r)))
            .find(|(_, r)| r.overlaps(&s.host))
        {
            return Err(conflict(
                &s.node,
                &s.id,
                format!("{} overlaps {}'s static memory {r}", s.host, o.node),
            ));
        }
        let guest = Range { start: s.guest, end: s.guest + s.host.size() };
        let ram = Range {
            start: crate::guest::RAM0_BASE,
            end: crate::guest::RAM0_BASE.saturating_add(d.memory_kib.saturating_mul(1024)),
        };
        if !d.direct_map && guest.overlaps(&ram) {
            return Err(conflict(
                &s.node,
                &s.id,
                format!("guest range {guest} overlaps the domain's RAM {ram}"),
            ));
        }
        for &(e, t) in &all[..i] {
            if t.id == s.id && t.host != s.host {
                return Err(conflict(
                    &s.node,
                    &s.id,
                    format!("{} here, {} in {}: one id, one region", s.host, t.host, e.node),
                ));
            }
            if t.id != s.id && t.host.overlaps(&s.host) {
                return Err(conflict(
                    &s.node,
                    &s.id,
                    format!("{} overlaps region '{}' of {}", s.host, t.id, e.node),
                ));
            }
            if t.id == s.id && t.role == Role::Owner && s.role == Role::Owner {
                return Err(conflict(&s.node, &s.id, format!("a second owner (the first is {})", e.node)));
            }
            if t.id == s.id && core::ptr::eq(e, d) {
                return Err(conflict(&s.node, &s.id, String::from("given twice to one domain")));
            }
        }
    }
    Ok(())
}
