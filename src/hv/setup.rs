//! The launch's first half: every domain of the configuration built (each paused) from
//! the boot modules, store connections made, and what the launch sequence starts from
//! decided (Boot, standby Recovery and console domains).

use alloc::string::String;
use alloc::vec::Vec;

use log::{error, info};

use super::build::{self, HostFacts};
use super::machine::{HostMem, Machine};
use super::pool::Pool;
use super::ram::LoadStats;
use super::system::Setup;
use crate::config::LaunchConfig;
use crate::launch::Failure;

/// What the launch starts from, and what building the domains cost.
pub struct Built {
    pub setup: Setup,
    pub stats: LoadStats,
    /// Domains with a virtual UART (the console multiplexer's).
    pub with_uart: Vec<u16>,
}

/// The devices partial device trees give to domains, checked against the host device tree
/// and each other (`crate::claims`): what is given, and the domains refused. Devices given
/// without an IOMMU are warned of.
pub fn claims(
    m: &dyn Machine,
    cfg: &LaunchConfig,
    reserved: &[HostMem],
    host_dtb: &[u8],
) -> crate::claims::Claims {
    let mut all = Vec::new();
    for d in &cfg.domains {
        let Some(mem) = d
            .device_tree
            .as_ref()
            .and_then(|dt| reserved.iter().find_map(|r| r.at(dt.range.start, dt.range.size())))
        else {
            continue;
        };
        let mut blob = alloc::vec![0u8; mem.len() as usize];
        m.read(mem, &mut blob);
        // A partial device tree that does not parse fails that domain's build, by name.
        if let Ok(list) = crate::devices::parse_partial(&blob) {
            all.push((d.domid, list));
        }
    }
    let c = crate::claims::check(host_dtb, &all);
    warn_unprotected(&c);
    c
}

/// The loud warning for each device `c` gives without an IOMMU (at launch and at run time).
pub(super) fn warn_unprotected(c: &crate::claims::Claims) {
    for (domid, node) in &c.unprotected {
        log::warn!(
            "DOM{domid}: {node} given without an IOMMU (xen,force-assign-without-iommu): its DMA can reach any memory"
        );
    }
}

/// Builds every domain of `cfg` on `cpus` CPUs from memory in `pool`.
pub fn build_all(
    m: &dyn Machine,
    cfg: &LaunchConfig,
    mut pool: Pool,
    host: &HostFacts,
    (cpus, forward_irqs): (usize, bool),
    (lcm, boot_modules): (HostMem, Vec<HostMem>),
) -> Built {
    // Store connections: a zeroed ring page per slot, made before any domain is built
    // (both ends map it; domains created later take the free slots). They are never freed:
    // the store domain maps them for good.
    let ids: Vec<(u16, u32)> = cfg.domains.iter().map(|d| (d.domid, d.functions.0)).collect();
    let mut store = crate::store::Plan::new(&ids);
    let mut rings: Vec<HostMem> = Vec::new();
    if let Some(p) = &mut store {
        let hardware =
            |d: &crate::config::DomainConfig| d.permissions.has(crate::config::Permissions::HARDWARE);
        p.open = !cfg.domains.iter().any(|d| d.domid == p.server && hardware(d));
        let pages = if p.open { p.slots.len() } else { p.clients().len() };
        for _ in 0..pages {
            let Some(page) = pool.alloc(4096) else { break };
            m.zero(page);
            rings.push(page);
        }
        // Without a page a slot cannot be used.
        for s in p.slots.iter_mut().skip(rings.len()) {
            if let Some(id) = s.take() {
                p.unserved.push(id);
            }
        }
        p.slots.truncate(rings.len());
        info!(
            "store: DOM{} serves {} client(s) ({:?}), {}{}",
            p.server,
            p.clients().len(),
            p.clients(),
            if p.open {
                alloc::format!("{} slot(s) free", p.slots.iter().filter(|s| s.is_none()).count())
            } else {
                String::from("none for domains created later (the store is the hardware domain)")
            },
            if p.unserved.is_empty() {
                String::new()
            } else {
                alloc::format!("; no slot for {:?}", p.unserved)
            }
        );
    }
    // Static shared memory starts zeroed (once per region, before any domain runs).
    let mut zeroed: Vec<crate::memmap::Range> = Vec::new();
    for s in cfg.domains.iter().flat_map(|d| d.shm.iter()) {
        if !zeroed.contains(&s.host)
            && let Ok(mem) = host.mem(s.host)
        {
            m.zero(mem);
            zeroed.push(s.host);
        }
    }
    let mut cpu_load: Vec<u32> = alloc::vec![0; cpus];
    let mut domains = Vec::new();
    let mut failures = Vec::new();
    let mut stats = LoadStats::default();
    for (i, d) in cfg.domains.iter().enumerate() {
        let pages: Vec<u64> = rings.iter().map(|r| r.start()).collect();
        let link = super::assign::store_link(store.as_ref(), &pages, d.domid);
        let vmid = u16::try_from(i + 1).unwrap_or(0);
        match build::build(m, d, vmid, &mut pool, &mut cpu_load, host, link) {
            Ok((parts, loaded)) => {
                stats.copied += loaded.copied;
                stats.copy_us += loaded.copy_us;
                domains.push(super::domain::Domain::new(parts));
            }
            Err(e) => {
                error!("error: {}: domain {} not built: {e}", d.node, d.domid);
                failures.push(Failure { domid: d.domid, reason: alloc::format!("not built: {e}") });
            }
        }
    }
    info!(
        "launch: {} of {} domain(s) built, all paused; {} KiB copied into guest RAM; {} MiB free",
        domains.len(),
        cfg.domains.len(),
        stats.copied >> 10,
        pool.free_bytes() >> 20
    );
    let ids: Vec<u16> = domains.iter().map(|d| d.id).collect();
    let with_uart: Vec<u16> =
        domains.iter().filter(|d| d.mmio.find(d.map.vuart).is_some()).map(|d| d.id).collect();
    let console = cfg.console_domain().map(|(d, _)| d.domid).filter(|id| with_uart.contains(id));
    let boot = cfg.boot_domain().map(|d| d.domid).filter(|id| ids.contains(id));
    let standby = cfg
        .recovery_domain()
        .filter(|d| d.is_standby_recovery())
        .map(|d| d.domid)
        .filter(|id| ids.contains(id));
    let setup = Setup {
        domains,
        cpus,
        pool,
        lcm: Some(lcm),
        boot_modules,
        store,
        store_rings: rings,
        boot,
        standby,
        console,
        failures,
        boot_timeout_ms: cfg.boot_timeout_ms,
        forward_irqs,
        env: Some(super::create::RunEnv::of(host)),
        // Only a Dynamic system creates domains: only it keeps a copy of the device tree.
        run_host: if cfg.domains.iter().any(|d| d.permissions.has(crate::config::Permissions::CONTROL)) {
            super::create::RunHost::of(host.dtb)
        } else {
            Default::default()
        },
        links: cfg.links.iter().map(|l| (l.ends, l.kind)).collect(),
    };
    Built { setup, stats, with_uart }
}
