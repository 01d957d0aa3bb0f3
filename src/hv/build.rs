//! Building a domain from its configuration, in named steps: place its vCPUs, find its
//! kernel (unpacking a gzip one), take its RAM, decide what else it is given, lay out and
//! write its device tree, stage its stage-2 tables; everything that can fail happens
//! before anything is committed, and a failure gives back all it took. Committing writes
//! the tables and puts the images in place.

use alloc::string::String;
use alloc::vec::Vec;

use log::info;

use super::assign::{self, StoreLink};
use super::build_map::stage2;
use super::cow::Cow;
use super::domain::{DtbSpec, Parts};
use super::kernel::Kernel;
use super::machine::{HostMem, Machine};
use super::pool::{Pool, Staged};
use super::ram::{LoadStats, Ram, Src};
use super::vcpu::Vcpu;
use crate::config::{DomainConfig, Permissions};
use crate::devices::{CopiedNode, HostDevices, Passthrough};
use crate::guest::{self, GuestMap, Layout};
use crate::memmap::Range;

pub use super::build_error::BuildError;

/// What every domain's build needs to know of the host.
pub struct HostFacts<'a> {
    /// The host device tree.
    pub dtb: &'a [u8],
    /// The launch's event log (binary), given to the Boot Domain and to domains with the
    /// Control or Hardware permission as `/chosen/hyperlaunch,event-log`; empty: none.
    pub event_log: &'a [u8],
    /// Memory the loader gave (boot modules) or the configuration reserved (static
    /// memory), which domains are built from.
    pub reserved: Vec<HostMem>,
    /// Host MMIO ranges partial device trees give away, by domain.
    pub assigned: Vec<(u16, Range)>,
    /// SPIs partial device trees give away (or domains that exist hold), by domain: a
    /// hardware domain does not get a device that raises one.
    pub assigned_spis: Vec<(u32, u16)>,
    /// Domains whose partial device tree claims what it may not, and why.
    pub refused: Vec<(u16, String)>,
    /// GIC version guests are given (the host's).
    pub gic_version: u32,
    /// Physical address bits (stage-2 output size).
    pub pa_bits: u32,
    /// The hypervisor's console UART (kept from the hardware domain).
    pub console: Option<u64>,
    /// The host's GIC and UART addresses, for direct-mapped domains.
    pub host_map: GuestMap,
    /// The CPU's VMID width (8 or 16 bits): VMIDs 1 to 2^bits - 1 are handed out.
    pub vmid_bits: u32,
    /// The CPUs online (bit n: CPU n): vCPUs are placed on these only.
    pub online: u64,
    /// SPIs the host's GIC implements (0: not known): a device's SPI beyond them is refused.
    pub gic_spis: u32,
    /// GICv2 hosts: the hardware virtual CPU interface (GICV, 8 KiB), mapped where a
    /// domain finds its GIC CPU interface.
    pub gicv: Option<u64>,
    /// Network links (their two ends), in configuration order.
    pub links: Vec<[u16; 2]>,
    /// Kernel modules are shared copy-on-write (`LaunchConfig::kernel_sharing`).
    pub kernel_sharing: bool,
    /// Images are copied from their boot modules after the build, before the domain runs,
    /// by an idle CPU or the one about to run it (the launch: finalization makes what is
    /// left of them before it frees the modules).
    pub defer_copies: bool,
    /// Static memory was taken from free memory (a domain created at run time): it is in
    /// `reserved` as the runs it was taken in, and goes back to free memory with the domain.
    pub static_from_pool: bool,
}

impl HostFacts<'_> {
    /// The reserved memory behind `r`.
    pub fn mem(&self, r: Range) -> Result<HostMem, BuildError> {
        self.reserved.iter().find_map(|m| m.at(r.start, r.size())).ok_or(BuildError::NoModule(r))
    }
}

/// Builds one domain: prepare (may fail; gives back everything on failure), then commit.
/// `cpu_load` takes the placement only when it succeeds.
pub fn build(
    m: &dyn Machine,
    cfg: &DomainConfig,
    vmid: u16,
    pool: &mut Pool,
    cpu_load: &mut [u32],
    host: &HostFacts,
    link: Option<StoreLink>,
) -> Result<(Parts, LoadStats), BuildError> {
    if vmid == 0 || u32::from(vmid) >= 1 << host.vmid_bits.min(16) {
        return Err(BuildError::NoVmid { bits: host.vmid_bits });
    }
    let mut load = cpu_load.to_vec();
    let pcpus =
        crate::sched::place(cfg.cpus, &cfg.affinity, &mut load, host.online).map_err(BuildError::Place)?;
    let kernel = Kernel::find(m, cfg, pool, host)?;
    // A kernel unpacked for the build is gone after it: copied now.
    let defer = host.defer_copies && kernel.in_place();
    let result = prepare(m, cfg, pool, host, &kernel, pcpus, link)
        .map(|p| p.commit(m, (vmid, cfg), (&kernel, defer), &host.links));
    kernel.release(pool);
    if result.is_ok() {
        cpu_load.copy_from_slice(&load);
    }
    result
}

/// Power-of-two chunks from the pool, largest first, so that every chunk's guest offset is
/// a multiple of its size and 2 MiB/1 GiB blocks map it. Guest addresses are the host ones
/// when `direct`, else consecutive from guest RAM bank 0.
fn alloc_ram(pool: &mut Pool, size: u64, direct: bool) -> Result<Ram, BuildError> {
    let mut ram = Ram { chunks: Vec::new(), owned: true };
    let mut left = size;
    let mut ipa = guest::RAM0_BASE;
    while left > 0 {
        let chunk = 1u64 << (63 - left.leading_zeros());
        match pool.alloc(chunk) {
            Some(mem) => ram.chunks.push((mem, if direct { mem.start() } else { ipa })),
            None => {
                free_ram(ram, pool);
                return Err(BuildError::NoMemory { bytes: size });
            }
        }
        ipa += chunk;
        left -= chunk;
    }
    Ok(ram)
}

/// The host ranges of `xen,static-mem` (reserved at boot).
fn fixed_ram(ranges: &[Range], direct: bool, host: &HostFacts) -> Result<Ram, BuildError> {
    let mut ipa = guest::RAM0_BASE;
    let mut chunks = Vec::new();
    for r in ranges {
        let at = if direct { r.start } else { ipa };
        if host.static_from_pool {
            // Taken from free memory at run time, in power-of-two runs: each a chunk.
            let runs: Vec<HostMem> =
                host.reserved.iter().filter(|m| m.start() >= r.start && m.end() <= r.end).copied().collect();
            if runs.iter().map(|m| m.len()).sum::<u64>() != r.size() {
                return Err(BuildError::NoModule(*r));
            }
            chunks.extend(runs.into_iter().map(|m| (m, at + (m.start() - r.start))));
        } else {
            chunks.push((host.mem(*r)?, at));
        }
        ipa += r.size();
    }
    // Not the build's to give back, even when taken from free memory: its taker's.
    Ok(Ram { chunks, owned: false })
}

/// `blocks` of `total` bytes as a percentage with one decimal, rounded down (so that 100.0%
/// means all of it).
pub(super) fn block_share(blocks: u64, total: u64) -> String {
    let per_mille = (u128::from(blocks) * 1000).checked_div(u128::from(total)).unwrap_or(0);
    alloc::format!("{}.{}%", per_mille / 10, per_mille % 10)
}

fn free_ram(ram: Ram, pool: &mut Pool) {
    if ram.owned {
        for (mem, _) in ram.chunks {
            pool.free(mem);
        }
    }
}

/// What a domain is given besides RAM: host devices (a hardware domain), devices of its
/// partial device tree, and the SPIs they raise.
pub(super) struct Given {
    pub(super) hw: HostDevices,
    pub(super) passthrough: Vec<Passthrough>,
    nodes: Vec<CopiedNode>,
    spis: Vec<u32>,
    /// Host MMIO ranges of its devices.
    mmio: Vec<Range>,
}

fn given(
    m: &dyn Machine,
    cfg: &DomainConfig,
    host: &HostFacts,
    (banks, windows): (&[(u64, u64)], &[Range]),
    link: Option<&StoreLink>,
) -> Result<Given, BuildError> {
    // The hardware domain: every host device the hypervisor does not keep, at its host
    // address, its SPIs forwarded (not over the domain's RAM or emulated devices).
    let hw = if cfg.permissions.has(Permissions::HARDWARE) {
        let role = link.map(|l| &l.role);
        let assigned = (&host.assigned[..], &host.assigned_spis[..]);
        assign::hardware_devices(host.dtb, assigned, cfg, banks, windows, host.console, role)
    } else {
        HostDevices::default()
    };
    // Devices its partial device tree gives it.
    if let Some((_, why)) = host.refused.iter().find(|(d, _)| *d == cfg.domid) {
        return Err(BuildError::Passthrough(why.clone()));
    }
    let passthrough = match &cfg.device_tree {
        Some(dt) => {
            let mem = host.mem(dt.range)?;
            let mut blob = alloc::vec![0u8; mem.len() as usize];
            m.read(mem, &mut blob);
            crate::devices::parse_partial(&blob).map_err(BuildError::Passthrough)?
        }
        None => Vec::new(),
    };
    let host_fdt = crate::fdt::Fdt::new(host.dtb).ok();
    let pt_spis: Vec<u32> = passthrough
        .iter()
        .filter_map(|p| p.host_path.as_deref())
        .flat_map(|path| host_fdt.as_ref().map(|f| crate::devices::host_spis(f, path)).unwrap_or_default())
        .collect();
    // An SPI the host's GIC does not have could never be delivered: refused by name.
    let beyond = |id: u32| host.gic_spis != 0 && id >= 32 + host.gic_spis;
    if let Some(id) = pt_spis.iter().copied().find(|&id| beyond(id)) {
        return Err(BuildError::Passthrough(alloc::format!(
            "INTID {id} is beyond the host GIC's {} SPIs (INTID 32 to {})",
            host.gic_spis,
            31 + host.gic_spis
        )));
    }
    if !passthrough.is_empty() {
        info!(
            "DOM{}: {} device(s) from its partial device tree ({} SPIs forwarded)",
            cfg.domid,
            passthrough.len(),
            pt_spis.len()
        );
    }
    let nodes = hw
        .devices
        .iter()
        .map(|d| d.node.clone())
        .chain(hw.providers.iter().cloned())
        .chain(passthrough.iter().map(|p| p.node.clone()))
        .collect();
    let spis = hw
        .devices
        .iter()
        .flat_map(|d| d.spis.iter().copied())
        .filter(|&id| !beyond(id))
        .chain(pt_spis)
        .collect();
    let mmio = hw
        .devices
        .iter()
        .flat_map(|d| d.mmio.iter().copied())
        .chain(
            passthrough.iter().flat_map(|p| p.regs.iter().filter_map(|&(pa, size, _)| Range::at(pa, size))),
        )
        .collect();
    Ok(Given { hw, passthrough, nodes, spis, mmio })
}

/// A domain prepared: everything taken, nothing written yet.
struct Prepared {
    pcpus: Vec<usize>,
    ram: Ram,
    map: GuestMap,
    layout: Layout,
    dtb: Vec<u8>,
    spec: DtbSpec,
    spis: Vec<u32>,
    devices: Vec<Range>,
    /// Bytes of its RAM mapped with 2 MiB or 1 GiB blocks.
    blocks: u64,
    ramdisk: Option<HostMem>,
    /// The Boot Domain's `module,config`.
    config: Option<HostMem>,
    /// A Control domain's control window.
    window: Option<HostMem>,
    root: u64,
    tables: Vec<(HostMem, alloc::boxed::Box<crate::pgtable::Table>)>,
    /// The shared kernel pages (guest range), their level-3 tables, and a writable page
    /// descriptor without its address.
    shared: Option<(Range, Vec<HostMem>, u64)>,
}

/// Takes everything `cfg` needs; on failure gives it all back.
fn prepare(
    m: &dyn Machine,
    cfg: &DomainConfig,
    pool: &mut Pool,
    host: &HostFacts,
    kernel: &Kernel,
    pcpus: Vec<usize>,
    link: Option<StoreLink>,
) -> Result<Prepared, BuildError> {
    let ramdisk = cfg.ramdisk.as_ref().map(|r| host.mem(r.range)).transpose()?;
    let config = cfg.config.as_ref().map(|c| host.mem(c.range)).transpose()?;
    let direct = cfg.direct_map;
    let ram = if cfg.static_mem.is_empty() {
        alloc_ram(pool, (cfg.memory_kib * 1024).next_multiple_of(4096), direct)?
    } else {
        fixed_ram(&cfg.static_mem, direct, host)?
    };
    // A Control domain's control window (not for a direct-mapped one, whose guest map is
    // the host's).
    let window = if cfg.permissions.has(Permissions::CONTROL) && !direct {
        match pool.alloc(guest::CONTROL_WINDOW_SIZE) {
            Some(w) => Some(w),
            None => {
                free_ram(ram, pool);
                return Err(BuildError::NoMemory { bytes: guest::CONTROL_WINDOW_SIZE });
            }
        }
    } else {
        None
    };
    match prepare_in(m, cfg, pool, host, kernel, (pcpus, ramdisk, link, window), &ram) {
        Ok(p) => Ok(Prepared { ram, config, window, ..p }),
        Err(e) => {
            free_ram(ram, pool);
            if let Some(w) = window {
                pool.free(w);
            }
            Err(e)
        }
    }
}

fn prepare_in(
    m: &dyn Machine,
    cfg: &DomainConfig,
    pool: &mut Pool,
    host: &HostFacts,
    kernel: &Kernel,
    (pcpus, ramdisk, link, window): (Vec<usize>, Option<HostMem>, Option<StoreLink>, Option<HostMem>),
    ram: &Ram,
) -> Result<Prepared, BuildError> {
    let gic_version = host.gic_version;
    let banks = ram.banks();
    // Guest addresses of emulated devices must not land on direct-mapped RAM.
    let map = if cfg.direct_map { host.host_map } else { GuestMap::XEN };
    let mut windows: Vec<Range> = map.windows(cfg.cpus, gic_version).to_vec();
    if link.is_some() {
        windows.push(Range { start: crate::store::CLIENT_RING, end: crate::store::WINDOW_END });
    }
    // The control device, for domains on the Xen guest map.
    let control =
        (!cfg.direct_map).then(|| (guest::CONTROL_REGS, window.map(|w| (guest::CONTROL_WINDOW, w.len()))));
    if cfg.direct_map
        && banks.iter().any(|&(a, s)| windows.iter().any(|w| Range { start: a, end: a + s }.overlaps(w)))
    {
        return Err(BuildError::Unsupported(
            "direct-mapped RAM over the emulated GIC, UART or store windows",
        ));
    }
    let g = given(m, cfg, host, (&banks, &windows), link.as_ref())?;
    // Kernel, device tree and ramdisk go into the first bank.
    let (first_base, first_size) = banks[0];
    let mut spec = DtbSpec {
        cpus: cfg.cpus,
        banks: banks.clone(),
        bootargs: cfg.bootargs.clone(),
        ramdisk: None,
        vuart: cfg.vuart,
        gic_version,
        failures: Vec::new(),
        additions: crate::measure::for_domain(cfg, host.event_log).into_iter().collect(),
        store: link.as_ref().map(|l| l.role.clone()),
        devices: g.nodes.clone(),
        control,
        virtio: host
            .links
            .iter()
            .enumerate()
            .filter(|(_, l)| l.contains(&cfg.domid))
            .enumerate()
            .map(|(n, _)| {
                (guest::VIRTIO_BASE + n as u64 * crate::virtio::mmio::WINDOW, guest::VIRTIO_SPI + n as u32)
            })
            .collect(),
        shm: cfg.shm.iter().map(|s| (s.guest, s.host.size(), s.id.clone())).collect(),
        rng_seed: m.rng_seed(cfg.domid),
    };
    let write =
        |spec: &DtbSpec| spec.blob(cfg.domid, (cfg.permissions, cfg.functions), map).map_err(BuildError::Dtb);
    // The device tree's size does not depend on where things go: size it first.
    let probe = write(&spec)?;
    let layout = guest::layout(
        first_base,
        first_size,
        &kernel.hdr,
        kernel.bytes.len(),
        ramdisk.map(|r| r.len()),
        probe.len() as u64 + 64,
    )
    .map_err(BuildError::Layout)?;
    spec.ramdisk = layout.ramdisk;
    let dtb = write(&spec)?;
    // With kernel sharing on (the LCM asks), the kernel's whole pages, when they are a
    // boot module in place (not unpacked), are mapped read-only from the module itself,
    // shared by every domain that boots it; a page is copied into the domain's own RAM the
    // first time the domain writes to it. Only for a domain whose vCPUs share one CPU: its
    // copies then need no broadcast TLB invalidation (which stops every CPU under
    // emulation). It saves copying and memory at the price of 4 KiB stage-2 pages.
    let one_cpu = pcpus.windows(2).all(|w| w[0] == w[1]);
    let shareable =
        host.kernel_sharing && kernel.in_place() && one_cpu && kernel.bytes.start().is_multiple_of(4096);
    let shared_len =
        if shareable && layout.kernel.is_multiple_of(4096) { kernel.bytes.len() & !0xfff } else { 0 };
    let shared = Range { start: layout.kernel, end: layout.kernel + shared_len };
    let mut store = Staged::new(pool);
    let gicv = host.gicv.filter(|_| gic_version == 2).map(|pa| (map.gicc, pa));
    let window = window.map(|w| (guest::CONTROL_WINDOW, w));
    let shm: Vec<(u64, u64, u64)> = cfg.shm.iter().map(|s| (s.guest, s.host.start, s.host.size())).collect();
    match stage2(
        &mut store,
        host.pa_bits,
        ram,
        (shared, kernel.bytes.start()),
        (link.as_ref(), gicv, window, &shm),
        &g,
    ) {
        Ok((root, blocks, cow)) => Ok(Prepared {
            blocks,
            pcpus,
            ram: Ram { chunks: Vec::new(), owned: false },
            map,
            layout,
            dtb,
            spec,
            spis: g.spis,
            devices: g.mmio,
            ramdisk,
            config: None,
            window: None,
            root,
            shared: cow.map(|(tables, attrs)| {
                (shared, tables.iter().filter_map(|&t| store.page(t)).collect(), attrs)
            }),
            tables: store.take(),
        }),
        Err(e) => {
            store.release();
            Err(e)
        }
    }
}

impl Prepared {
    /// Writes the tables and the images (those from boot modules left to the CPU that
    /// runs it with `defer`): the domain exists (paused) from here on.
    fn commit(
        self,
        m: &dyn Machine,
        (vmid, cfg): (u16, &DomainConfig),
        (kernel, defer): (&Kernel, bool),
        host_links: &[[u16; 2]],
    ) -> (Parts, LoadStats) {
        let Prepared {
            pcpus,
            ram,
            map,
            layout,
            dtb,
            spec,
            spis,
            devices,
            blocks,
            ramdisk,
            config,
            window,
            root,
            tables,
            shared,
        } = self;
        if let Some(w) = window {
            m.zero(w);
        }
        let tables = Staged::write(m, tables);
        let shared_len = shared.as_ref().map_or(0, |s| s.0.size());
        let cow = shared.map(|(ipa, t, attrs)| {
            Cow::new(ipa, kernel.bytes.sub(0, shared_len).unwrap_or(kernel.bytes), t, attrs)
        });
        let kernel_src = kernel.in_place().then_some(kernel.bytes);
        let mut images = alloc::vec![(layout.dtb, Src::Bytes(&dtb[..]))];
        if let Some(k) = kernel.bytes.sub(shared_len, kernel.bytes.len() - shared_len) {
            images.push((layout.kernel + shared_len, Src::Mem(k)));
        }
        if let (Some(rd), Some((at, _))) = (ramdisk, layout.ramdisk) {
            images.push((at, Src::Mem(rd)));
        }
        let (loaded, scrub) = ram.load_images(m, &images, (layout.kernel, shared_len), defer);
        let (first_base, first_size) = spec.banks[0];
        info!(
            "DOM{}: built: {} vCPU(s) on CPU(s) {:?}, {} MiB at IPA {:#x} ({} chunk(s){}), kernel at {:#x}, device tree at {:#x}{}; {} of its RAM in 2 MiB/1 GiB blocks",
            cfg.domid,
            cfg.cpus,
            pcpus,
            ram.size() >> 20,
            first_base,
            ram.chunks.len(),
            match (cfg.direct_map, cfg.static_mem.is_empty()) {
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
            },
            block_share(blocks, ram.size())
        );
        let mut mmio = crate::mmio::MmioMap::new();
        if cfg.vuart {
            // The map is empty: nothing to overlap.
            let _ = mmio.add(
                Range { start: map.vuart, end: map.vuart + guest::VUART_SIZE },
                crate::mmio::Device::Uart,
            );
        }
        if spec.gic_version == 2 {
            // The distributor traps; the CPU interface is the hardware's (GICV).
            let _ =
                mmio.add(Range { start: map.gicd, end: map.gicd + 0x1000 }, crate::mmio::Device::GicDistV2);
        } else if spec.gic_version == 3 {
            // Fixed, disjoint windows of the guest map (the UART lies far above).
            let gicr_len = crate::vgic::GICR_STRIDE * u64::from(cfg.cpus);
            let _ = mmio.add(
                Range { start: map.gicd, end: map.gicd + crate::vgic::GICD_SIZE },
                crate::mmio::Device::GicDist,
            );
            let _ =
                mmio.add(Range { start: map.gicr, end: map.gicr + gicr_len }, crate::mmio::Device::GicRedist);
        }
        if spec.control.is_some() {
            let _ = mmio.add(
                Range { start: guest::CONTROL_REGS, end: guest::CONTROL_REGS + guest::CONTROL_REGS_SIZE },
                crate::mmio::Device::Control,
            );
        }
        let links: Vec<usize> =
            host_links.iter().enumerate().filter(|(_, l)| l.contains(&cfg.domid)).map(|(k, _)| k).collect();
        for (&(at, _), &k) in spec.virtio.iter().zip(&links) {
            let _ = mmio.add(
                Range { start: at, end: at + crate::virtio::mmio::WINDOW },
                crate::mmio::Device::Virtio(k as u8),
            );
        }
        let link_top = spec.virtio.iter().map(|&(_, spi)| spi + 1).max().unwrap_or(0);
        let top = spis.iter().max().map_or(0, |&m| m + 1 - 32).max(32).max(link_top);
        let mut vgic = if spec.gic_version == 2 {
            crate::vgic::VGic::new_v2(cfg.cpus as usize, top)
        } else {
            crate::vgic::VGic::new(cfg.cpus as usize, top)
        };
        for &id in &spis {
            vgic.forward(id);
        }
        let parts = Parts {
            id: cfg.domid,
            node: cfg.node.clone(),
            permissions: cfg.permissions,
            functions: cfg.functions,
            vttbr: (u64::from(vmid) << 48) | root,
            local_tlb: pcpus.windows(2).all(|w| w[0] == w[1]),
            scrub,
            vcpus: pcpus.iter().map(|&p| Vcpu::new(p)).collect(),
            mmio,
            vgic,
            forwarded: spis,
            devices,
            cntvoff: m.counter(),
            entry: (layout.kernel, layout.dtb),
            tables,
            config,
            modules: cfg.kernel.iter().chain(cfg.ramdisk.iter()).map(|m| m.range).collect(),
            kernel_src,
            ramdisk_src: ramdisk,
            dtb_room: layout.ramdisk.map_or(first_base + first_size, |(a, _)| a) - layout.dtb,
            dtb: spec,
            ram,
            map,
            cow,
            window: window.map(|w| (guest::CONTROL_WINDOW, w)),
        };
        (parts, loaded)
    }
}
