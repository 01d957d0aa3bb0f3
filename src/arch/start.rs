//! The boot CPU's path from the entry code to a running hypervisor: read the host DTB,
//! map memory, bring up the console, heap, GIC and the other CPUs, then stop cleanly
//! when there is nothing to run.

use core::fmt;

use log::{error, info, warn};

use super::power::{fatal, halt};
use super::{boot, build, console, cpu, el2, gic, heap, mmu, power, psci, timer, vcpu};
use crate::config::{self, HostFacts};
use crate::fdt::Fdt;
use crate::frames::Frames;
use crate::hvmap::{self, ImageRanges};
use crate::memmap::{Range, Use};
use crate::pgtable::{Format, MemType, PageTables, Perms};
use crate::platform::{self, Conduit, EnableMethod, Platform};

/// The host DTB in memory, as a slice of its declared size.
fn dtb_slice(pa: u64) -> Option<&'static [u8]> {
    if pa == 0 || !pa.is_multiple_of(8) {
        return None;
    }
    // SAFETY: the boot protocol passes the DTB's physical address in x0; the MMU is off, so
    // the address is directly accessible. The header's first 8 bytes are read first.
    let head = unsafe { core::slice::from_raw_parts(pa as *const u8, 8) };
    let size = Fdt::peek_total_size(head).ok()?;
    if !(40..=64 << 20).contains(&size) {
        return None;
    }
    // SAFETY: as above, for the size the header declares; the DTB is reserved below so
    // nothing ever writes over it.
    Some(unsafe { core::slice::from_raw_parts(pa as *const u8, size) })
}

/// The hypervisor's own command line: `/chosen/xen,xen-bootargs` (as Xen reads it).
fn bootargs<'a>(fdt: &Fdt<'a>) -> &'a str {
    fdt.find("/chosen").and_then(|c| c.property("xen,xen-bootargs")).and_then(|p| p.as_str()).unwrap_or("")
}

/// `selftest=el2-abort` / `selftest=panic`: provoke a hypervisor fault after start-up, to
/// check that the fatal-error path reports it and stops the machine.
fn selftest(which: Option<&str>) {
    match which {
        Some("el2-abort") => {
            let addr = 1u64 << 47; // inside the EL2 input range, never mapped
            info!("selftest: reading unmapped address {addr:#x} at EL2");
            // SAFETY: deliberately faults: the read takes a translation fault whose handler
            // prints a register dump and stops the machine; it never returns here.
            let v = unsafe { core::ptr::read_volatile(addr as *const u64) };
            error!("selftest: read of {addr:#x} returned {v:#x} instead of faulting");
        }
        Some("panic") => panic!("selftest: panic requested on the command line"),
        Some(other) => warn!("selftest={other}: unknown; use el2-abort or panic"),
        None => {}
    }
}

fn level_from_bootargs(fdt: &Fdt<'_>) -> log::LevelFilter {
    bootargs(fdt)
        .split_whitespace()
        .filter_map(|a| a.strip_prefix("loglvl="))
        .filter_map(crate::logger::parse_level)
        .next_back()
        .unwrap_or(log::LevelFilter::Info)
}

#[unsafe(no_mangle)]
extern "C" fn primary_main(dtb_pa: u64, load_base: u64) -> ! {
    let t_entry = timer::ticks();
    el2::init_cpu_registers(0);

    // No DTB means no console either: nothing can be printed.
    let Some(dtb) = dtb_slice(dtb_pa) else { halt("no device tree") };
    let Ok(fdt) = Fdt::new(dtb) else { halt("invalid device tree") };
    power::set_early(platform::read_stdout_uart(&fdt).as_ref(), platform::read_psci(&fdt));
    let mut plat = match Platform::from_fdt(&fdt, Some(dtb_pa)) {
        Ok(p) => p,
        Err(e) => fatal(format_args!("{e}")),
    };
    let img = boot::image_layout();
    let image = Range { start: img.start, end: img.end };
    if plat.memory.reserve(image, Use::Hypervisor).is_err() {
        fatal(format_args!("host device tree: too many reserved ranges"));
    }
    if !plat.boot_cpu_first(el2::mpidr()) {
        fatal(format_args!("boot CPU (MPIDR {:#x}) is not in /cpus of the host device tree", el2::mpidr()));
    }
    plat.check_methods(el2::mpidr());

    // The EL2 identity map.
    let (pa_bits, ps) = el2::pa_bits();
    let Some(mut store) = mmu::take_pool() else { fatal(format_args!("page-table pool already in use")) };
    let mut pt = match PageTables::new(&mut store, Format::El2, 0, pa_bits) {
        Ok(pt) => pt,
        Err(e) => fatal(format_args!("EL2 map: {e}")),
    };
    let ranges = ImageRanges {
        text: Range { start: img.start, end: img.text_end },
        rodata: Range { start: img.text_end, end: img.rodata_end },
        data: Range { start: img.rodata_end, end: img.end },
    };
    let dtb_range = Range::at(dtb_pa, dtb.len() as u64).unwrap_or_default();
    let (maps, n) = match hvmap::hypervisor_mappings(&plat, ranges, dtb_range) {
        Ok(m) => m,
        Err(e) => fatal(format_args!("{e}")),
    };
    for m in maps[..n].iter().flatten() {
        if let Err(e) = pt.map(&mut store, m.range.start, m.range.start, m.range.size(), m.mem, m.perms) {
            fatal(format_args!("EL2 map of {}: {e}", m.range));
        }
    }
    // The TPM's locality-0 registers, for the measured launch (checked again, with a
    // message, once there is a heap).
    let tpm_map = match crate::measure::tpm_window(&fdt) {
        Some(Ok(r)) if !plat.memory.ram.iter().any(|b| b.overlaps(&r)) => Some(r),
        _ => None,
    };
    if let Some(t) = tpm_map
        && let Err(e) = pt.map(&mut store, t.start, t.start, t.size(), MemType::Device, Perms::RW)
    {
        fatal(format_args!("EL2 map of the TPM at {t}: {e}"));
    }
    cpu::publish_mpidrs(&plat);
    mmu::enable(pt.root(), ps);

    // From here on: caches, locks, the console and the log.
    console::init(plat.uart.as_ref(), level_from_bootargs(&fdt));
    let ram = plat.memory.ram.total();
    info!(
        "hyperlaunch {} on {} CPUs, {} MiB RAM in {} bank(s), {}",
        crate::VERSION,
        plat.cpu_count,
        ram >> 20,
        plat.memory.ram.len(),
        match plat.gic {
            Some(g) =>
                if g.version() == 3 {
                    "GICv3"
                } else {
                    "GICv2"
                },
            None => "no GIC",
        }
    );
    info!(
        "EL2: image at {:#x}..{:#x} (loaded at {:#x}), device tree at {:#x} ({} bytes), MIDR {:#x}, {} PA bits, {} EL2 tables",
        img.start,
        img.end,
        load_base,
        dtb_pa,
        dtb.len(),
        el2::midr(),
        pa_bits,
        store.used()
    );
    for w in plat.warnings.iter().flatten() {
        warn!("host device tree: {w}");
    }
    if let Some(c) = plat.psci {
        let (maj, min) = psci::version(c);
        info!("PSCI {maj}.{min} via {}", if c == Conduit::Smc { "SMC" } else { "HVC" });
    }
    // Branch-predictor hardening on guest exit (before the other CPUs start).
    let wa1 = plat.psci == Some(Conduit::Smc) && psci::has_arch_workaround_1(Conduit::Smc);
    let m = super::exceptions::mitigate(Some(wa1));
    if m.bhb_loop > 0 || m.bp_firmware {
        info!(
            "Spectre: branch history cleared on guest exit ({} taken branches); {}",
            m.bhb_loop,
            match (m.bp_firmware, wa1) {
                (false, _) => "no branch-predictor invalidation needed",
                (true, true) =>
                    "branch predictor invalidated by the firmware on guest exit (SMCCC_ARCH_WORKAROUND_1)",
                (true, false) => {
                    "branch predictor NOT invalidated on guest exit: the firmware offers no SMCCC_ARCH_WORKAROUND_1"
                }
            }
        );
    }
    match plat.uart {
        Some(u) => info!("console: {:?} UART at {:#x}", u.kind, u.base),
        None => warn!("no console UART: output is lost"),
    }

    // Memory: the heap first, then every other free frame.
    let free = match plat.memory.free() {
        Ok(f) => f,
        Err(e) => fatal(format_args!("memory map: {e}")),
    };
    let Some(largest) = free.largest() else { fatal(format_args!("no free RAM")) };
    let hsize = crate::memmap::hypervisor_heap_size(free.total()).min(largest.size());
    let heap_range = Range { start: largest.start, end: largest.start + hsize };
    heap::init(heap_range.start, hsize);
    let mut frames = Frames::new();
    for r in free.iter() {
        let mut pieces: crate::memmap::RegionSet<2> = crate::memmap::RegionSet::new();
        let _ = pieces.add(r);
        let _ = pieces.remove(heap_range);
        for p in pieces.iter() {
            frames.add(p);
        }
    }
    for r in plat.memory.reserved.iter() {
        log::debug!("reserved {r}");
    }
    info!(
        "memory: {} MiB free in {} range(s); heap {} KiB at {:#x}; {} boot module(s)",
        frames.free() >> 20,
        free.len(),
        hsize >> 10,
        heap_range.start,
        plat.modules.len()
    );

    if let Some(g) = plat.gic {
        match gic::init(&g, plat.cpu_count) {
            Ok(i) => info!("GICv{}: {} SPIs, {}", i.version, i.spis, describe_gic(&g)),
            Err(e) => fatal(format_args!("GIC: {e:?}")),
        }
    }

    // The other CPUs.
    for i in 1..plat.cpu_count {
        let c = plat.cpus[i];
        match cpu::start(&plat, i) {
            Ok(()) => {}
            Err(e) => warn!(
                "CPU {i} (MPIDR {:#x}, {}) did not start: {e:?}",
                c.mpidr,
                match c.method {
                    EnableMethod::Psci => "PSCI",
                    EnableMethod::SpinTable { .. } => "spin-table",
                    EnableMethod::None => "no enable-method",
                }
            ),
        }
    }
    let boot_us = timer::ticks_to_us(timer::ticks() - t_entry);
    info!("{} of {} CPUs online; ready {} us after entry", cpu::online(), plat.cpu_count, boot_us);
    let (used, total) = heap::usage();
    log::debug!("heap: {used} of {total} bytes in use");
    selftest(config::option(bootargs(&fdt), "selftest"));
    super::entropy::init(&fdt);

    // The launch configuration, checked against this machine.
    let host = HostFacts::from_platform(&plat, hsize);
    let cfg = match config::parse(&fdt, &host) {
        Ok(cfg) => cfg,
        Err(e) => {
            error!("error: {e}");
            if e.kind == config::ErrorKind::NothingToLaunch {
                halt("nothing to launch");
            }
            halt("invalid launch configuration");
        }
    };
    for n in &cfg.notes {
        info!("note: {n}");
    }
    for line in config::Plan::lines(&cfg) {
        info!("plan: {line}");
    }
    if !gic::has_vgic() && !cfg.domains.is_empty() {
        warn!(
            "GICv2 host without virtualization extensions (no GICH/GICV in its device tree): domains get no virtual interrupt controller (their interrupts, timer included, are not delivered: bare-metal guests run, Linux does not)"
        );
    }
    let tpm = crate::measure::find_tpm(&fdt).and_then(|t| match t {
        Some(r) if tpm_map != Some(r) => Err(alloc::format!("TPM registers at {r} lie in RAM")),
        other => Ok(other),
    });
    // Domains are built first, with a placeholder of the event log's size; their CPUs copy
    // their images and scrub their RAM while this one measures; they get the log, and run,
    // once it is done. Building and copying only read what is measured.
    let placeholder = crate::measure::placeholder(&crate::measure::items(&cfg));
    let boot_modules = plat.modules.iter().collect();
    let (sys, running, stats) = build::build(
        &cfg,
        frames,
        plat.cpu_count,
        (plat.gic, plat.uart.as_ref()),
        (dtb, &placeholder),
        boot_modules,
    );
    if running == 0 {
        halt("no domain could be built");
    }
    let built_us = timer::ticks_to_us(timer::ticks() - t_entry);
    let (event_log, measure_us) = super::measure::launch(&cfg, dtb, tpm);
    sys.give_event_log(&event_log);
    sys.start();
    let launch_us = timer::ticks_to_us(timer::ticks() - t_entry);
    // Under an emulator's instruction count the other CPUs' work runs interleaved with
    // this one's, in one clock: measuring then includes it.
    info!(
        "launch: {running} domain(s) running, {launch_us} us after entry (built {built_us} us after entry, {} us of it copying images; then {measure_us} us measuring while idle CPUs copy images from boot modules and scrub RAM, {} us starting)",
        stats.copy_us,
        launch_us.saturating_sub(built_us + measure_us)
    );
    vcpu::schedule()
}

fn describe_gic(g: &platform::Gic) -> impl fmt::Display + '_ {
    struct D<'a>(&'a platform::Gic);
    impl fmt::Display for D<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match *self.0 {
                platform::Gic::V3 { gicd, gicr, .. } => {
                    write!(f, "distributor {gicd:#x}, redistributors {gicr:#x}")
                }
                platform::Gic::V2 { gicd, gicc, gich, .. } => {
                    write!(f, "distributor {gicd:#x}, CPU interface {gicc:#x}")?;
                    if let Some(h) = gich {
                        write!(f, ", virtual interface control {h:#x}")?;
                    }
                    Ok(())
                }
            }
        }
    }
    D(g)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    console::emergency_write(format_args!("(HL) PANIC on CPU {}: {info}\n", el2::cpu_index()));
    halt("hypervisor panic")
}
