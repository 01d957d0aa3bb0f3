//! Building domains from the launch configuration: each is *prepared* (memory, stage 2,
//! images, device tree; anything that can fail, undone on failure) and the results handed
//! to the run-time core (`hv::System`), which starts the launch sequence.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use log::{error, info};

use super::stage2::FrameStore;
use super::{gic, timer};
use crate::config::{DomainConfig, LaunchConfig};
use crate::frames::Frames;
use crate::guest::{self, Layout};
use crate::guest_dtb::GuestDtb;
use crate::hv::assign::{self, StoreLink};
use crate::hv::cow::Cow;
use crate::hv::domain::{Domain, DtbSpec, Parts};
use crate::hv::machine::HostMem;
use crate::hv::ram::{LoadStats, Ram, Src};
use crate::hv::system::{Setup, System};
use crate::hv::vcpu::Vcpu;
use crate::image::ImageHeader;
use crate::memmap::Range;
use crate::pgtable::{Format, MemType, PageTables, Perms};

/// Why a domain could not be built.
#[derive(Debug)]
pub enum BuildError {
    Place(crate::sched::PlaceError),
    Unsupported(&'static str),
    Gzip(crate::gzip::GzipError),
    GzipSize {
        size: usize,
        ram: u64,
    },
    NoMemory {
        bytes: u64,
    },
    Kernel(crate::image::ImageError),
    Layout(guest::LayoutError),
    Dtb,
    Map(crate::pgtable::MapError),
    /// Its partial device tree (`module,device-tree`) is malformed.
    Passthrough(String),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Place(e) => write!(f, "{e}"),
            BuildError::Passthrough(e) => write!(f, "partial device tree: {e}"),
            BuildError::Unsupported(what) => write!(f, "{what} is not supported yet"),
            BuildError::Gzip(e) => write!(f, "kernel: {e}"),
            BuildError::GzipSize { size, ram } => write!(
                f,
                "kernel: the gzip trailer gives {size} bytes, more than the domain's {ram} bytes of RAM (truncated or corrupt stream)"
            ),
            BuildError::NoMemory { bytes } => write!(f, "no {} KiB of free RAM left", bytes >> 10),
            BuildError::Kernel(e) => write!(f, "kernel: {e}"),
            BuildError::Layout(e) => write!(f, "{e}"),
            BuildError::Dtb => write!(f, "could not write the guest device tree"),
            BuildError::Map(e) => write!(f, "stage 2: {e}"),
        }
    }
}

/// A module's bytes, from where the loader put them.
fn module_bytes(r: Range) -> &'static [u8] {
    // SAFETY: module ranges were validated to lie in RAM, are reserved (never handed out)
    // and identity mapped; they are only read.
    unsafe { core::slice::from_raw_parts(r.start as *const u8, r.size() as usize) }
}

/// Host memory the hypervisor owns for a domain: its RAM, a table page, a module.
fn owned(start: u64, len: u64) -> HostMem {
    // SAFETY: called only for RAM the frame allocator handed out for the domain, its
    // validated and reserved static memory, or a reserved boot module; all identity mapped
    // and used for nothing else.
    unsafe { HostMem::new(start, len) }
}

/// Power-of-two chunks from the frame allocator, largest first, so that every chunk's
/// guest offset is a multiple of its size and 2 MiB/1 GiB blocks map it. Guest addresses
/// are the host ones when `direct`, else consecutive from guest RAM bank 0.
fn alloc_ram(frames: &mut Frames, size: u64, direct: bool) -> Result<Ram, BuildError> {
    let mut ram = Ram { chunks: Vec::new(), owned: true };
    let mut left = size;
    let mut ipa = guest::RAM0_BASE;
    while left > 0 {
        let chunk = 1u64 << (63 - left.leading_zeros());
        match frames.alloc(chunk) {
            Some(pa) => ram.chunks.push((owned(pa, chunk), if direct { pa } else { ipa })),
            None => {
                free_ram(ram, frames);
                return Err(BuildError::NoMemory { bytes: size });
            }
        }
        ipa += chunk;
        left -= chunk;
    }
    Ok(ram)
}

/// The host ranges of `xen,static-mem`.
fn fixed_ram(ranges: &[Range], direct: bool) -> Ram {
    let mut ipa = guest::RAM0_BASE;
    let chunks = ranges
        .iter()
        .map(|r| {
            let c = (owned(r.start, r.size()), if direct { r.start } else { ipa });
            ipa += r.size();
            c
        })
        .collect();
    Ram { chunks, owned: false }
}

fn free_ram(ram: Ram, frames: &mut Frames) {
    if ram.owned {
        for (m, _) in ram.chunks {
            frames.dealloc(m.start(), m.len());
        }
    }
}

/// Prepares one domain. On error everything it allocated is given back.
fn prepare(
    cfg: &DomainConfig,
    vmid: u16,
    frames: &mut Frames,
    cpu_load: &mut [u32],
    host: &HostGuestFacts,
    store: Option<StoreLink>,
    stats: &mut LoadStats,
) -> Result<Parts, BuildError> {
    // Placement first, on a copy: it only takes effect when the domain is committed.
    let mut load = cpu_load.to_vec();
    let pcpus = crate::sched::place(cfg.cpus, &cfg.affinity, &mut load).map_err(BuildError::Place)?;
    let module = cfg.kernel.as_ref().map(|m| module_bytes(m.range)).unwrap_or(&[]);
    let ram = cfg.memory_kib * 1024;
    let unpacked =
        if crate::gzip::is_gzip(module) { Some(Unpacked::new(module, ram, frames)?) } else { None };
    let result = build(
        cfg,
        vmid,
        frames,
        (unpacked.as_ref().map_or(module, |u| u.bytes()), unpacked.is_none()),
        pcpus,
        host,
        store,
    )
    .map(|(parts, loaded)| {
        stats.copied += loaded.copied;
        stats.scrub_us += loaded.scrub_us;
        stats.copy_us += loaded.copy_us;
        parts
    });
    if let Some(u) = unpacked {
        u.free(frames);
    }
    if result.is_ok() {
        cpu_load.copy_from_slice(&load);
    }
    result
}

/// What every domain's build needs to know of the host.
struct HostGuestFacts<'a> {
    /// The host device tree.
    dtb: &'a [u8],
    /// Host MMIO ranges partial device trees give away, by domain.
    assigned: Vec<(u16, Range)>,
    /// GIC version guests are given (the host's).
    gic_version: u32,
    /// Physical address bits (stage-2 output size).
    pa_bits: u32,
    /// The hypervisor's console UART (kept from the hardware domain).
    console: Option<u64>,
    /// The host's GIC and UART addresses, for direct-mapped domains.
    host_map: guest::GuestMap,
}

/// A gzip kernel unpacked into free frames for as long as the domain takes to build.
struct Unpacked {
    pa: u64,
    alloc: u64,
    len: usize,
}

impl Unpacked {
    fn new(module: &[u8], ram: u64, frames: &mut Frames) -> Result<Unpacked, BuildError> {
        let size = crate::gzip::unpacked_size(module).map_err(BuildError::Gzip)?;
        if size as u64 > ram {
            return Err(BuildError::GzipSize { size, ram });
        }
        let alloc = (size as u64).max(1);
        let pa = frames.alloc(alloc).ok_or(BuildError::NoMemory { bytes: alloc })?;
        // SAFETY: the frame allocator just handed out `alloc` bytes of free RAM at `pa`,
        // identity mapped read-write, used by nothing else until freed below.
        let out = unsafe { core::slice::from_raw_parts_mut(pa as *mut u8, size) };
        match crate::gzip::gunzip_into(module, out) {
            Ok(len) => Ok(Unpacked { pa, alloc, len }),
            Err(e) => {
                frames.dealloc(pa, alloc);
                Err(BuildError::Gzip(e))
            }
        }
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: `len` bytes at `pa` were written by gunzip_into and stay allocated until
        // `free`.
        unsafe { core::slice::from_raw_parts(self.pa as *const u8, self.len) }
    }

    fn free(self, frames: &mut Frames) {
        frames.dealloc(self.pa, self.alloc);
    }
}

fn build(
    cfg: &DomainConfig,
    vmid: u16,
    frames: &mut Frames,
    // The kernel's bytes, and whether they are its boot module in place (not unpacked).
    (kernel_mod, kernel_is_module): (&[u8], bool),
    pcpus: Vec<usize>,
    host: &HostGuestFacts,
    link: Option<StoreLink>,
) -> Result<(Parts, LoadStats), BuildError> {
    let HostGuestFacts { gic_version, pa_bits, console, host_map, .. } = *host;
    // The module may be padded past the image: the header's image_size bounds the file.
    let hdr = ImageHeader::parse(kernel_mod.get(..crate::image::HEADER_LEN).unwrap_or(kernel_mod))
        .map_err(BuildError::Kernel)?;
    let kernel_mod = match hdr.image_size {
        0 => kernel_mod,
        n => &kernel_mod[..kernel_mod.len().min(n as usize)],
    };
    let ramdisk = cfg.ramdisk.as_ref().map(|m| module_bytes(m.range));
    let ram_size = (cfg.memory_kib * 1024).next_multiple_of(4096);
    let direct = cfg.direct_map;
    let ram = if cfg.static_mem.is_empty() {
        alloc_ram(frames, ram_size, direct)?
    } else {
        fixed_ram(&cfg.static_mem, direct)
    };
    let banks = ram.banks();
    let ram_size = ram.size();
    // Guest addresses of emulated devices must not land on direct-mapped RAM.
    let map = if direct { host_map } else { guest::GuestMap::XEN };
    let mut windows: Vec<Range> = map.windows(cfg.cpus, gic_version).to_vec();
    if link.is_some() {
        windows.push(Range { start: crate::store::CLIENT_RING, end: crate::store::WINDOW_END });
    }
    if direct
        && banks.iter().any(|&(a, s)| windows.iter().any(|w| Range { start: a, end: a + s }.overlaps(w)))
    {
        free_ram(ram, frames);
        return Err(BuildError::Unsupported(
            "direct-mapped RAM over the emulated GIC, UART or store windows",
        ));
    }
    // The hardware domain: every host device the hypervisor does not keep, at its host
    // address, its SPIs forwarded (not over the domain's RAM or emulated devices).
    let hw = if cfg.permissions.has(crate::config::Permissions::HARDWARE) {
        assign::hardware_devices(
            host.dtb,
            &host.assigned,
            cfg,
            &banks,
            &windows,
            console,
            link.as_ref().map(|l| &l.role),
        )
    } else {
        crate::devices::HostDevices::default()
    };
    // Devices its partial device tree gives it.
    let passthrough =
        match cfg.device_tree.as_ref().map(|m| crate::devices::parse_partial(module_bytes(m.range))) {
            Some(Ok(list)) => list,
            Some(Err(e)) => {
                free_ram(ram, frames);
                return Err(BuildError::Passthrough(e));
            }
            None => Vec::new(),
        };
    let host_fdt = crate::fdt::Fdt::new(host.dtb).ok();
    let pt_spis: Vec<u32> = passthrough
        .iter()
        .filter_map(|p| p.host_path.as_deref())
        .flat_map(|path| host_fdt.as_ref().map(|f| crate::devices::host_spis(f, path)).unwrap_or_default())
        .collect();
    if !passthrough.is_empty() {
        info!(
            "DOM{}: {} device(s) from its partial device tree ({} SPIs forwarded)",
            cfg.domid,
            passthrough.len(),
            pt_spis.len()
        );
    }
    let hw_nodes: Vec<crate::devices::CopiedNode> = hw
        .devices
        .iter()
        .map(|d| d.node.clone())
        .chain(hw.providers.iter().cloned())
        .chain(passthrough.iter().map(|p| p.node.clone()))
        .collect();
    let all_spis: Vec<u32> =
        hw.devices.iter().flat_map(|d| d.spis.iter().copied()).chain(pt_spis.iter().copied()).collect();
    // Kernel, device tree and ramdisk go into the first bank.
    let (first_base, first_size) = banks[0];
    let dtb_params = |layout: Option<&Layout>| GuestDtb {
        domid: cfg.domid,
        permissions: cfg.permissions.0,
        functions: cfg.functions.0,
        cpus: cfg.cpus,
        ram: &banks,
        bootargs: cfg.bootargs.as_deref(),
        ramdisk: layout.and_then(|l| l.ramdisk),
        vuart: cfg.vuart,
        gic_version,
        failures: &[],
        additions: &[],
        store: link.as_ref().map(|l| &l.role),
        devices: &hw_nodes,
        map,
    };
    // The device tree's size does not depend on where things go: size it first.
    let placed = dtb_params(None).build().map_err(|_| BuildError::Dtb).and_then(|probe| {
        let layout = guest::layout(
            first_base,
            first_size,
            &hdr,
            kernel_mod.len() as u64,
            ramdisk.map(|r| r.len() as u64),
            probe.len() as u64 + 64,
        )
        .map_err(BuildError::Layout)?;
        Ok((layout, dtb_params(Some(&layout)).build().map_err(|_| BuildError::Dtb)?))
    });
    let (layout, dtb) = match placed {
        Ok(p) => p,
        Err(e) => {
            free_ram(ram, frames);
            return Err(e);
        }
    };

    // The kernel's whole pages, when they are a boot module in place (not unpacked), are
    // mapped read-only from the module itself, shared by every domain that boots it; a
    // page is copied into the domain's own RAM the first time the domain writes to it.
    // Only for a domain whose vCPUs share one CPU: its copies then need no broadcast TLB
    // invalidation (which stops every CPU under emulation).
    let module_pa = kernel_mod.as_ptr() as u64;
    let one_cpu = pcpus.windows(2).all(|w| w[0] == w[1]);
    let shareable = kernel_is_module && one_cpu && module_pa.is_multiple_of(4096);
    let shared_len =
        if shareable && layout.kernel.is_multiple_of(4096) { kernel_mod.len() as u64 & !0xfff } else { 0 };
    let shared = Range { start: layout.kernel, end: layout.kernel + shared_len };
    let mut store = FrameStore::new(frames);
    let built = (|| {
        let mut pt = PageTables::new(&mut store, Format::Stage2, 1, pa_bits).map_err(BuildError::Map)?;
        for &(mem, ipa) in &ram.chunks {
            for (a, b) in guest::uncovered(ipa, ipa + mem.len(), &[(shared.start, shared_len)]) {
                pt.map(&mut store, a, mem.start() + (a - ipa), b - a, MemType::Normal, Perms::RWX)
                    .map_err(BuildError::Map)?;
            }
        }
        for &(ipa, pa) in link.as_ref().map_or(&[][..], |l| &l.pages[..]) {
            pt.map(&mut store, ipa, pa, 4096, MemType::Normal, Perms::RW).map_err(BuildError::Map)?;
        }
        for r in hw.devices.iter().flat_map(|d| d.mmio.iter()) {
            // Devices can share a page range with another of the same domain: map once.
            if pt.translate(&mut store, r.start).is_none() {
                pt.map(&mut store, r.start, r.start, r.size(), MemType::Device, Perms::RW)
                    .map_err(BuildError::Map)?;
            }
        }
        for &(pa, size, ga) in passthrough.iter().flat_map(|p| p.regs.iter()) {
            pt.map(&mut store, ga, pa, size, MemType::Device, Perms::RW).map_err(BuildError::Map)?;
        }
        let mut cow_tables = Vec::new();
        if shared_len > 0 {
            pt.map_pages(&mut store, shared.start, module_pa, shared_len, MemType::Normal, Perms::RX)
                .map_err(BuildError::Map)?;
            let mut at = shared.start & !0x1f_ffff;
            while at < shared.end {
                let probe = at.max(shared.start);
                cow_tables.push(
                    pt.page_table_of(&mut store, probe).ok_or(BuildError::Unsupported("no page table"))?,
                );
                at += 0x20_0000;
            }
        }
        Ok((pt.root(), cow_tables, pt.page_desc(0, MemType::Normal, Perms::RWX)))
    })();
    let ((root, cow_tables, private_attrs), tables) = match built {
        Ok(r) => (r, store.tables),
        Err(e) => {
            store.release();
            free_ram(ram, frames);
            return Err(e);
        }
    };
    let cow = (shared_len > 0).then(|| {
        Cow::new(
            shared,
            owned(module_pa, shared_len),
            cow_tables.iter().map(|&t| owned(t, 4096)).collect(),
            private_attrs,
        )
    });
    let kernel_src = kernel_is_module.then(|| owned(kernel_mod.as_ptr() as u64, kernel_mod.len() as u64));
    let ramdisk_src = ramdisk.map(|r| owned(r.as_ptr() as u64, r.len() as u64));
    let mut images = alloc::vec![(layout.dtb, Src::Bytes(&dtb[..]))];
    let rest = kernel_mod.len() as u64 - shared_len;
    match kernel_src.and_then(|k| k.sub(shared_len, rest)) {
        Some(k) => images.push((layout.kernel + shared_len, Src::Mem(k))),
        None => images.push((layout.kernel, Src::Bytes(kernel_mod))),
    }
    if let (Some(rd), Some((at, _))) = (ramdisk_src, layout.ramdisk) {
        images.push((at, Src::Mem(rd)));
    }
    let loaded = ram.load_images(super::machine::machine(), &images, (layout.kernel, shared_len));
    let local_tlb = pcpus.windows(2).all(|w| w[0] == w[1]);
    let vcpus = pcpus.iter().map(|&p| Vcpu::new(p)).collect();
    info!(
        "DOM{}: built: {} vCPU(s) on CPU(s) {:?}, {} MiB at IPA {:#x} ({} chunk(s){}), kernel at {:#x}, device tree at {:#x}{}",
        cfg.domid,
        cfg.cpus,
        pcpus,
        ram_size >> 20,
        first_base,
        ram.chunks.len(),
        match (direct, ram.owned) {
            (true, false) => ", direct-mapped static memory",
            (true, true) => ", direct-mapped",
            (false, false) => ", static memory",
            (false, true) => "",
        },
        layout.kernel,
        layout.dtb,
        match layout.ramdisk {
            Some((a, l)) => alloc::format!(", ramdisk at {a:#x} ({l} bytes)"),
            None => String::new(),
        }
    );
    let mut mmio = crate::mmio::MmioMap::new();
    if cfg.vuart {
        let r = Range { start: map.vuart, end: map.vuart + guest::VUART_SIZE };
        // The map is empty: nothing to overlap.
        let _ = mmio.add(r, crate::mmio::Device::Uart);
    }
    if gic_version == 3 {
        let gicd = Range { start: map.gicd, end: map.gicd + crate::vgic::GICD_SIZE };
        let gicr_len = crate::vgic::GICR_STRIDE * u64::from(cfg.cpus);
        let gicr = Range { start: map.gicr, end: map.gicr + gicr_len };
        // Fixed, disjoint windows of the guest map (the UART lies far above).
        let _ = mmio.add(gicd, crate::mmio::Device::GicDist);
        let _ = mmio.add(gicr, crate::mmio::Device::GicRedist);
    }
    let vgic = {
        let top = all_spis.iter().max().map_or(0, |&m| m + 1 - 32);
        let mut g = crate::vgic::VGic::new(cfg.cpus as usize, top.max(32));
        for &id in &all_spis {
            g.forward(id);
        }
        g
    };
    let parts = Parts {
        id: cfg.domid,
        node: cfg.node.clone(),
        permissions: cfg.permissions,
        functions: cfg.functions,
        vttbr: (u64::from(vmid) << 48) | root,
        vcpus,
        mmio,
        vgic,
        forwarded: all_spis,
        cntvoff: timer::ticks(),
        entry: (layout.kernel, layout.dtb),
        tables: tables.iter().map(|&t| owned(t, 4096)).collect(),
        config: cfg.config.as_ref().map(|m| owned(m.range.start, m.range.size())),
        modules: cfg.kernel.iter().chain(cfg.ramdisk.iter()).map(|m| m.range).collect(),
        kernel_src,
        ramdisk_src,
        dtb: DtbSpec {
            cpus: cfg.cpus,
            banks,
            bootargs: cfg.bootargs.clone(),
            ramdisk: layout.ramdisk,
            vuart: cfg.vuart,
            gic_version,
            failures: Vec::new(),
            additions: Vec::new(),
            store: link.map(|l| l.role),
            devices: hw_nodes,
        },
        dtb_room: layout.ramdisk.map_or(first_base + first_size, |(a, _)| a) - layout.dtb,
        ram,
        map,
        cow,
        local_tlb,
    };
    Ok((parts, loaded))
}

/// Builds every domain of the configuration (each paused), hands them to the run-time core
/// and starts the launch sequence. Returns how many domains were built and what loading
/// their images cost.
pub fn launch(
    cfg: &LaunchConfig,
    mut frames: Frames,
    online_cpus: usize,
    gic_desc: Option<crate::platform::Gic>,
    uart_desc: Option<&crate::platform::Uart>,
    host_dtb: &'static [u8],
    boot_modules: Vec<Range>,
) -> (usize, LoadStats) {
    let (pa_bits, _) = super::el2::pa_bits();
    let gic_version = gic_desc.map_or(3, |g| g.version());
    let mut cpu_load: Vec<u32> = alloc::vec![0; online_cpus];
    // Devices partial device trees give away: not the hardware domain's.
    let mut assigned = Vec::new();
    for d in &cfg.domains {
        if let Some(Ok(list)) =
            d.device_tree.as_ref().map(|m| crate::devices::parse_partial(module_bytes(m.range)))
        {
            for (pa, size, _) in list.iter().flat_map(|p| p.regs.iter().copied()) {
                assigned.push((d.domid, Range { start: pa, end: pa + size }));
            }
        }
    }
    let host = HostGuestFacts {
        dtb: host_dtb,
        assigned,
        gic_version,
        pa_bits,
        console: uart_desc.map(|u| u.base),
        // Direct-mapped domains find the emulated GIC and UART where the host's are.
        host_map: guest::GuestMap::host(gic_desc, uart_desc.map(|u| u.base)),
    };
    // Store connections: a zeroed ring page per client, made before any domain is built
    // (both ends map it). They are never freed: the store domain maps them for good.
    let ids: Vec<(u16, u32)> = cfg.domains.iter().map(|d| (d.domid, d.functions.0)).collect();
    let store_plan = crate::store::Plan::new(&ids);
    let mut rings: Vec<u64> = Vec::new();
    if let Some(p) = &store_plan {
        for _ in &p.clients {
            let Some(pa) = frames.alloc(4096) else { break };
            // SAFETY: a page the frame allocator just handed out, identity mapped, unused.
            unsafe { super::cache::zero(pa, 4096) };
            rings.push(pa);
        }
        info!(
            "store: DOM{} serves {} client(s) ({:?}){}",
            p.server,
            rings.len(),
            &p.clients[..rings.len()],
            if p.unserved.is_empty() {
                String::new()
            } else {
                alloc::format!("; no slot for {:?}", p.unserved)
            }
        );
    }
    let mut built = Vec::new();
    let mut failures = Vec::new();
    let mut stats = LoadStats::default();
    for (i, d) in cfg.domains.iter().enumerate() {
        let link = assign::store_link(store_plan.as_ref(), &rings, d.domid);
        match prepare(d, (i + 1) as u16, &mut frames, &mut cpu_load, &host, link, &mut stats) {
            Ok(parts) => built.push(Domain::new(parts)),
            Err(e) => {
                error!("error: {}: domain {} not built: {e}", d.node, d.domid);
                failures.push(crate::launch::Failure {
                    domid: d.domid,
                    reason: alloc::format!("not built: {e}"),
                });
            }
        }
    }
    info!(
        "launch: {} of {} domain(s) built, all paused; {} KiB copied into guest RAM; {} MiB free",
        built.len(),
        cfg.domains.len(),
        stats.copied >> 10,
        frames.free() >> 20
    );
    let n = built.len();
    let ids: Vec<u16> = built.iter().map(|d| d.id).collect();
    let with_uart: Vec<u16> =
        built.iter().filter(|d| d.mmio.find(d.map.vuart).is_some()).map(|d| d.id).collect();
    let console = cfg.console_domain().map(|(d, _)| d.domid).filter(|id| with_uart.contains(id));
    let boot = cfg.boot_domain().map(|d| d.domid).filter(|id| ids.contains(id));
    let standby = cfg
        .recovery_domain()
        .filter(|d| d.is_standby_recovery())
        .map(|d| d.domid)
        .filter(|id| ids.contains(id));
    // SAFETY: the host device tree was reserved at boot (never handed out) and is identity
    // mapped; until finalization frees it, it is only read.
    let lcm = unsafe { HostMem::new(host_dtb.as_ptr() as u64, host_dtb.len() as u64) };
    let setup = Setup {
        domains: built,
        cpus: online_cpus,
        frames,
        lcm: Some(lcm),
        boot_modules,
        store: store_plan,
        boot,
        standby,
        console,
        failures,
        boot_timeout_ms: cfg.boot_timeout_ms,
        forward_irqs: gic::has_vgic(),
    };
    super::machine::set_cpus(online_cpus);
    let sys = super::machine::publish(System::new(alloc::sync::Arc::new(super::machine::ArchMachine), setup));
    // After publishing: input typed early is delivered as soon as the console starts.
    super::console::start_mux(uart_desc, &with_uart, console, cfg.console_switch);
    super::console::drain_input(|domid, byte| sys.deliver_input(domid, byte));
    sys.start();
    (n, stats)
}
