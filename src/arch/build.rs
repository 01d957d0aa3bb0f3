//! The launch, from the arch side: the free memory, boot modules, static memory and host
//! device tree handed to the run-time core as memory it owns (the one place that vouches
//! for them), the core's build of every domain, then the `System` published (started once
//! the launch is measured).

use alloc::sync::Arc;
use alloc::vec::Vec;

use super::{el2, gic, machine};
use crate::config::LaunchConfig;
use crate::frames::Frames;
use crate::guest::GuestMap;
use crate::hv::build::HostFacts;
use crate::hv::machine::HostMem;
use crate::hv::pool::Pool;
use crate::hv::ram::LoadStats;
use crate::hv::system::System;
use crate::memmap::Range;

/// Memory the loader or the configuration set aside, as the core's memory.
fn reserved(r: Range) -> HostMem {
    // SAFETY: called for the boot modules, the host DTB, `xen,static-mem` and static shared
    // memory ranges, which were validated to lie in RAM and reserved at boot (never handed to
    // the frame allocator), and are identity mapped.
    unsafe { HostMem::new(r.start, r.size()) }
}

/// Builds every domain of the configuration (each paused, `event_log` in the device tree
/// of those that verify the launch: a placeholder of the log's size) and hands them to the
/// run-time core: the other CPUs copy their domains' images and scrub their RAM from then
/// on, while they are paused. Returns the core, how many domains were built and what
/// loading their images cost; [`System::start`] starts the launch sequence.
pub fn build(
    cfg: &LaunchConfig,
    frames: Frames,
    cpus: usize,
    (gic_desc, uart_desc): (Option<crate::platform::Gic>, Option<&crate::platform::Uart>),
    (host_dtb, event_log): (&'static [u8], &[u8]),
    boot_modules: Vec<Range>,
) -> (&'static System, usize, LoadStats) {
    let m = machine::machine();
    // SAFETY: the frame allocator holds the RAM left once the image, its tables, heap and
    // stacks, the DTB, the boot modules and every reserved range were taken out at boot.
    let pool = unsafe { Pool::new(frames) };
    let dtb = reserved(Range {
        start: host_dtb.as_ptr() as u64,
        end: host_dtb.as_ptr() as u64 + host_dtb.len() as u64,
    });
    let modules: Vec<HostMem> = boot_modules.iter().map(|&r| reserved(r)).collect();
    let mut all = modules.clone();
    all.extend(cfg.domains.iter().flat_map(|d| d.static_mem.iter().map(|&r| reserved(r))));
    // Static shared memory, once per region.
    let mut shm: Vec<crate::memmap::Range> =
        cfg.domains.iter().flat_map(|d| d.shm.iter().map(|s| s.host)).collect();
    shm.sort_by_key(|r| r.start);
    shm.dedup();
    all.extend(shm.into_iter().map(reserved));
    let console = uart_desc.map(|u| u.base);
    let claims = crate::hv::setup::claims(m, cfg, &all, host_dtb);
    let host = HostFacts {
        dtb: host_dtb,
        event_log,
        assigned: claims.assigned,
        assigned_spis: claims.spis,
        refused: claims.refused,
        reserved: all,
        gic_version: gic_desc.map_or(3, |g| g.version()),
        pa_bits: el2::pa_bits().0,
        vmid_bits: el2::vmid_bits(),
        online: super::cpu::online_mask(),
        gic_spis: gic::spi_count(),
        console,
        // Direct-mapped domains find the emulated GIC and UART where the host's are.
        host_map: GuestMap::host(gic_desc, console),
        gicv: gic::gicv_frame(gic_desc),
        links: cfg.links.iter().map(|l| l.ends).collect(),
        static_from_pool: false,
        kernel_sharing: cfg.kernel_sharing,
        defer_copies: true,
    };
    let built = crate::hv::setup::build_all(m, cfg, pool, &host, (cpus, gic::has_vgic()), (dtb, modules));
    let n = built.setup.domains.len();
    let console_domain = built.setup.console;
    let sys = machine::publish(System::new(Arc::new(machine::ArchMachine), built.setup));
    // After publishing: input typed early is delivered as soon as the console starts.
    super::console::start_mux(uart_desc, &built.with_uart, console_domain, cfg.console_switch);
    super::console::drain_input(|domid, byte| sys.deliver_input(domid, byte));
    for c in (0..cpus).filter(|&c| c != el2::cpu_index()) {
        gic::kick(c);
    }
    (sys, n, built.stats)
}
