//! What a domain is given besides its RAM: the host devices a hardware domain gets (with
//! the reasons for those it does not), and its store connection. Decided from the host
//! device tree and the configuration; the build maps what this returns.

use alloc::vec::Vec;

use log::{info, warn};

use crate::config::DomainConfig;
use crate::guest;
use crate::memmap::Range;

/// A domain's store connection(s): its role, and the ring pages to map (guest address,
/// physical page).
#[derive(Debug, Clone)]
pub struct StoreLink {
    pub role: crate::store::Role,
    pub pages: Vec<(u64, u64)>,
}

/// What other domains were given: host MMIO ranges by domain, SPIs (INTIDs) by domain.
pub type Claimed<'a> = (&'a [(u16, Range)], &'a [(u32, u16)]);

/// The host devices a hardware domain gets, logged.
pub fn hardware_devices(
    host_dtb: &[u8],
    (assigned, assigned_spis): Claimed<'_>,
    cfg: &DomainConfig,
    banks: &[(u64, u64)],
    windows: &[Range],
    console: Option<u64>,
    store: Option<&crate::store::Role>,
) -> crate::devices::HostDevices {
    let Ok(fdt) = crate::fdt::Fdt::new(host_dtb) else { return Default::default() };
    let mut avoid: Vec<Range> = banks.iter().map(|&(a, s)| Range { start: a, end: a + s }).collect();
    avoid.extend_from_slice(windows);
    let mut h = crate::devices::discover(&fdt, crate::devices::gic_phandle(&fdt), console, assigned, &avoid);
    // Pages a device here shares with one given elsewhere: both domains reach both.
    let mut owned: Vec<(u16, Range)> = assigned.to_vec();
    owned.extend(h.devices.iter().flat_map(|d| d.mmio.iter().map(|r| (cfg.domid, *r))));
    for (page, a, b) in
        crate::devices::shared_pages(&owned).into_iter().filter(|s| s.1 == cfg.domid || s.2 == cfg.domid)
    {
        warn!(
            "DOM{}: hardware: the page at {page:#x} holds devices of DOM{a} and DOM{b}: each can reach the other's",
            cfg.domid
        );
    }
    // SPIs the hypervisor emulates for this domain cannot also be a device's.
    let mut own: Vec<u32> = Vec::new();
    if cfg.vuart {
        own.push(crate::vgic::PRIVATE + guest::VUART_SPI);
    }
    match store {
        Some(crate::store::Role::Client { .. }) => own.push(crate::vgic::PRIVATE + crate::store::CLIENT_SPI),
        // A hardware domain's store is not open to domains created later: only its launch
        // clients' doorbells are its (`store::Plan::open`).
        Some(crate::store::Role::Server { slots, .. }) => own.extend(
            (0..slots.len() as u32)
                .filter(|&k| slots[k as usize].is_some())
                .map(|k| crate::vgic::PRIVATE + crate::store::SERVER_SPI_BASE + k),
        ),
        None => {}
    }
    let (keep, clash): (Vec<_>, Vec<_>) =
        h.devices.into_iter().partition(|d| !d.spis.iter().any(|s| own.contains(s)));
    h.devices = keep;
    for d in clash {
        h.skipped.push((d.path, "its SPI is one the domain's emulated devices use".into()));
    }
    // A device whose interrupt another domain's device raises too: that domain keeps it.
    let other = |s: &u32| assigned_spis.iter().find(|(a, d)| a == s && *d != cfg.domid);
    let (keep, clash): (Vec<_>, Vec<_>) =
        h.devices.into_iter().partition(|d| !d.spis.iter().any(|s| other(s).is_some()));
    h.devices = keep;
    for d in clash {
        let (spi, owner) = d.spis.iter().find_map(other).copied().unwrap_or_default();
        h.skipped.push((d.path, alloc::format!("its interrupt INTID {spi} is given to DOM{owner}")));
    }
    info!(
        "DOM{}: hardware: {} host device(s) given ({} SPIs forwarded), {} clock provider(s) copied",
        cfg.domid,
        h.devices.len(),
        h.devices.iter().map(|d| d.spis.len()).sum::<usize>(),
        h.providers.len()
    );
    for (path, why) in &h.skipped {
        info!("DOM{}: hardware: {path} not given: {why}", cfg.domid);
    }
    h
}

/// The store connection of domain `domid`, from the plan and its ring pages.
pub fn store_link(plan: Option<&crate::store::Plan>, rings: &[u64], domid: u16) -> Option<StoreLink> {
    let plan = plan?;
    let role = plan.role(domid)?;
    let pages = match &role {
        crate::store::Role::Client { .. } => {
            alloc::vec![(crate::store::CLIENT_RING, *rings.get(plan.slot(domid)?)?)]
        }
        crate::store::Role::Server { slots, .. } => (0..slots.len().min(rings.len()))
            .map(|k| (crate::store::Plan::server_ring(k), rings[k]))
            .collect(),
    };
    Some(StoreLink { role, pages })
}
