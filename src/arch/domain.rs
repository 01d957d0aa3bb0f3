//! Domains at run time, and building them from the launch configuration: each is
//! *prepared* (memory, stage 2, images, device tree; anything that can fail, undone on
//! failure) and then *committed* (published and its vCPUs placed; cannot fail).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use log::{error, info, warn};
use spin::{Mutex, Once};

use super::stage2::FrameStore;
use super::{gic, timer, vcpu};
use crate::config::{DomainConfig, LaunchConfig};
use crate::frames::Frames;
use crate::guest::{self, Layout};
use crate::guest_dtb::GuestDtb;
use crate::image::ImageHeader;
use crate::memmap::Range;
use crate::pgtable::{Format, MemType, PageTables, Perms};
use crate::platform::MAX_CPUS;
use crate::psci::Power;
use crate::vuart::{Effect, Pl011};

/// A vCPU: its power state (locked on its own), the physical CPU it is pinned to, and,
/// while it is off its CPU (a shared CPU runs another vCPU), its saved state.
pub struct Vcpu {
    pub power: Mutex<Power>,
    /// Its physical CPU (changed only while its domain is paused, by the Boot Domain).
    cpu: AtomicUsize,
    pub saved: Mutex<Option<alloc::boxed::Box<vcpu::Saved>>>,
    /// It left its CPU in WFI: it runs again once an interrupt is due.
    pub blocked: AtomicBool,
}

impl Vcpu {
    /// The physical CPU it runs on.
    pub fn pcpu(&self) -> usize {
        self.cpu.load(Ordering::Acquire)
    }
}

/// A running domain.
pub struct Domain {
    pub id: u16,
    pub node: String,
    pub vttbr: u64,
    pub vcpus: Vec<Vcpu>,
    /// Emulated devices by guest address.
    pub mmio: crate::mmio::MmioMap,
    /// The virtual UART's registers and receive FIFO.
    pub uart: Mutex<Pl011>,
    /// Its virtual interrupt controller.
    pub vgic: Mutex<crate::vgic::VGic>,
    /// Console input its virtual UART had no room for yet.
    input: Mutex<alloc::collections::VecDeque<u8>>,
    /// CNTVOFF_EL2 of its vCPUs: its virtual counter starts near zero when it is built.
    pub cntvoff: u64,
    /// Set once the domain stops; its vCPUs leave at their next exit.
    pub stopping: AtomicBool,
    notices: AtomicU32,
    /// Where vCPU 0 starts when the domain is unpaused (kernel entry, device tree).
    entry: (u64, u64),
    /// Permissions and functions (for the hypercall permission table).
    pub permissions: u32,
    pub functions: u32,
    /// Paused by a Control domain: its vCPUs leave their CPUs at their next exit.
    pub ctl_paused: AtomicBool,
    /// It asked for PSCI SYSTEM_RESET: it restarts once its vCPUs are off their CPUs.
    pub reset_pending: AtomicBool,
    /// Its RAM (host address, size, guest address) and whether it came from the frame
    /// allocator; its stage-2 table pages.
    ram: Vec<(u64, u64, u64)>,
    ram_owned: bool,
    tables: Vec<u64>,
    /// The Boot Domain's `module,config`.
    pub config: Option<Range>,
    /// What a restart rebuilds it from: its boot modules, the kernel bytes when they are
    /// its module in place (not unpacked), and the ramdisk bytes.
    modules: Vec<Range>,
    kernel_src: Option<(u64, u64)>,
    ramdisk_src: Option<(u64, u64)>,
    /// What its device tree says, to write it again (extended configuration before it
    /// first runs), and the room the layout left for it.
    dtb: Mutex<DtbSpec>,
    dtb_room: u64,
    /// vCPUs currently inside `vcpu::run`.
    active: AtomicUsize,
    /// It has been unpaused (it may have run).
    unpaused: AtomicBool,
    /// Exits from its vCPUs, by kind.
    pub exits: ExitCounts,
    /// Its kernel pages shared with the boot module, copied on first write.
    pub cow: Option<Cow>,
    /// Where its emulated GIC and UART are.
    pub map: guest::GuestMap,
    /// Physical SPIs of its devices, forwarded to it.
    pub forwarded: Vec<u32>,
    /// All its vCPUs run on one CPU: its TLB invalidations trap and are done locally
    /// instead of being broadcast to every CPU.
    pub local_tlb: AtomicBool,
    /// Its memory is to be (or has been) scrubbed and given back.
    reclaim: AtomicBool,
    reclaimed: AtomicBool,
}

/// The inputs of a domain's device tree.
#[derive(Clone)]
struct DtbSpec {
    permissions: u32,
    cpus: u32,
    banks: Vec<(u64, u64)>,
    bootargs: Option<String>,
    ramdisk: Option<(u64, u64)>,
    vuart: bool,
    gic_version: u32,
    failures: Vec<(u16, String)>,
    additions: Vec<crate::guest_dtb::DtAddition>,
    store: Option<crate::store::Role>,
    devices: Vec<crate::devices::CopiedNode>,
}

impl Domain {
    /// Builds the domain again from its boot modules, in the memory and tables it has,
    /// and starts it: it must be stopped (not reclaimed) or paused by Control, with none of
    /// its vCPUs on a CPU, and its modules still present.
    pub fn restart(&self) -> Result<(), &'static str> {
        let was_stopped = self.stopping.load(Ordering::Acquire);
        if self.reclaim.load(Ordering::Acquire) {
            return Err("it was destroyed and its memory reclaimed");
        }
        if !was_stopped && !self.ctl_paused.load(Ordering::Acquire) {
            return Err("only a stopped or paused domain restarts");
        }
        if self.active.load(Ordering::Acquire) != 0 {
            return Err("its vCPUs are still leaving their CPUs; try again");
        }
        let Some((kpa, klen)) = self.kernel_src else {
            return Err("its kernel was unpacked at build and is gone");
        };
        let present = |m: &Range| {
            BOOT_MODULES.lock().iter().chain(KEPT_MODULES.lock().iter()).any(|k| k.contains_range(m))
        };
        if !self.modules.iter().all(present) {
            return Err("its boot modules were freed at finalization");
        }
        let di = self.index().ok_or("no such domain")?;
        // Memory: as at build time (scrubbed but for what the images overwrite; copied
        // kernel pages restored from the module).
        let ram = Ram { chunks: self.ram.clone(), owned: self.ram_owned };
        let shared = self.cow.as_ref().map_or(0, |c| c.ipa.size());
        let (kernel, dtb_at) = self.entry;
        let ramdisk_at = self.dtb.lock().ramdisk;
        // SAFETY: the kernel and ramdisk modules are reserved (checked above); identity mapped.
        let (kbytes, rbytes) = unsafe {
            (
                core::slice::from_raw_parts((kpa + shared) as *const u8, (klen - shared) as usize),
                self.ramdisk_src.map(|(p, l)| core::slice::from_raw_parts(p as *const u8, l as usize)),
            )
        };
        let mut images = alloc::vec![(kernel + shared, kbytes)];
        if let (Some(r), Some((at, _))) = (rbytes, ramdisk_at) {
            images.push((at, r));
        }
        // The device tree is written again below.
        ram.load_images(&images, (kernel, shared));
        if let Some(c) = &self.cow {
            c.restore_private(self);
        }
        // An empty change: the device tree is written again as it was.
        self.rewrite_dtb(|_| {})?;
        // Devices and vCPUs as new.
        *self.vgic.lock() = crate::vgic::VGic::new(self.vcpus.len(), 32);
        *self.uart.lock() = Pl011::new();
        self.input.lock().clear();
        for v in &self.vcpus {
            *v.power.lock() = Power::Off;
            *v.saved.lock() = None;
            v.blocked.store(false, Ordering::Release);
        }
        self.ctl_paused.store(false, Ordering::Release);
        if was_stopped {
            if let Some(l) = LAUNCH.lock().as_mut() {
                l.restarted(self.id);
            }
            LIVE.fetch_add(1, Ordering::AcqRel);
            self.stopping.store(false, Ordering::Release);
            super::console::domain_restarted(self.id);
        }
        for (vi, v) in self.vcpus.iter().enumerate() {
            RUNQ[v.pcpu()].lock().add((di << 16) | vi);
        }
        *self.vcpus[0].power.lock() = Power::Pending { entry: kernel, context: dtb_at };
        wake(self.vcpus[0].pcpu());
        Ok(())
    }
}

/// A domain's kernel pages mapped read-only from their boot module (shared by every domain
/// that boots the same module), each copied into the domain's own RAM on its first write.
pub struct Cow {
    /// Guest addresses of the shared pages.
    pub ipa: Range,
    module_pa: u64,
    /// The level-3 tables mapping them, one per 2 MiB of guest address space.
    tables: Vec<u64>,
    /// A writable page descriptor without its output address.
    private_attrs: u64,
    lock: Mutex<()>,
    /// Pages copied so far.
    pub copied: AtomicU64,
}

impl Cow {
    /// The stage-2 descriptor's address for shared guest page `page`.
    fn entry(&self, page: u64) -> Option<u64> {
        let table = self.tables.get(((page >> 21) - (self.ipa.start >> 21)) as usize)?;
        Some(table + ((page >> 12) & 511) * 8)
    }

    /// For a restart: every page already copied gets the module's bytes again.
    fn restore_private(&self, d: &Domain) {
        let _g = self.lock.lock();
        let mut page = self.ipa.start;
        while page < self.ipa.end {
            if let (Some(entry), Some(own)) = (self.entry(page), d.guest_to_host(page, 4096))
                && super::stage2::read_entry(entry) & crate::pgtable::OA_MASK == own
            {
                // SAFETY: the domain's own page (none of its vCPUs runs); the source is the
                // reserved module's page.
                unsafe { super::cache::copy(own, self.module_pa + (page - self.ipa.start), 4096) };
            }
            page += 4096;
        }
    }
}

impl Domain {
    /// A stage-2 fault at `ipa` that sharing explains: a write to a shared page (copied now),
    /// or any fault while another vCPU of the domain is replacing the page. True when the
    /// access is to be retried.
    pub fn cow_fault(&self, ipa: u64, write: bool, perm: bool) -> bool {
        let Some(c) = &self.cow else { return false };
        if !c.ipa.contains(ipa) || (perm && !write) {
            return false;
        }
        let _g = c.lock.lock();
        let page = ipa & !0xfff;
        let Some(entry) = c.entry(page) else { return false };
        let Some(own) = self.guest_to_host(page, 4096) else { return false };
        let old = super::stage2::read_entry(entry);
        if !perm || old & crate::pgtable::OA_MASK == own {
            // A translation fault while the entry was being replaced, or a page already
            // copied by another vCPU: it is in place now.
            return true;
        }
        // SAFETY: `own` is the domain's own page behind `page` (not yet visible to it, the
        // shared page is mapped there); the source is the boot module's page, which stays
        // reserved while the domain maps it.
        unsafe { super::cache::copy(own, c.module_pa + (page - c.ipa.start), 4096) };
        let local = self.local_tlb.load(Ordering::Acquire);
        super::stage2::replace_entry(entry, c.private_attrs | own, page, local);
        c.copied.fetch_add(1, Ordering::Relaxed);
        true
    }
}

/// A domain's exits (traps to the hypervisor), by kind, for its stop line and benchmarks.
#[derive(Default)]
pub struct ExitCounts {
    pub gic: AtomicU64,
    pub uart: AtomicU64,
    pub wfi: AtomicU64,
    pub irq: AtomicU64,
    pub sysreg: AtomicU64,
    pub call: AtomicU64,
    pub other: AtomicU64,
    /// System register exits that were TLB invalidations.
    pub tlbi: AtomicU64,
}

impl ExitCounts {
    pub fn count(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

impl fmt::Display for ExitCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let all = [&self.gic, &self.uart, &self.wfi, &self.irq, &self.sysreg, &self.call, &self.other]
            .map(|c| c.load(Ordering::Relaxed));
        write!(
            f,
            "{} exits: {} vGIC MMIO, {} vUART MMIO, {} WFI, {} IRQ, {} system register, {} HVC/SMC, {} other",
            all.iter().sum::<u64>(),
            all[0],
            all[1],
            all[2],
            all[3],
            all[4],
            all[5],
            all[6]
        )?;
        let tlbi = self.tlbi.load(Ordering::Relaxed);
        if tlbi > 0 {
            write!(f, " ({tlbi} of them local TLB invalidations)")?;
        }
        Ok(())
    }
}

/// Console input held for a domain whose virtual UART is full.
const INPUT_BACKLOG: usize = 4096;

/// Notices logged per domain before they are only counted.
const NOTICE_LIMIT: u32 = 20;

impl Domain {
    /// Translates a guest range inside this domain's RAM to host addresses (one chunk).
    pub fn guest_to_host(&self, ipa: u64, len: u64) -> Option<u64> {
        self.ram
            .iter()
            .find(|&&(_, size, gpa)| ipa >= gpa && ipa.checked_add(len).is_some_and(|end| end <= gpa + size))
            .map(|&(pa, _, gpa)| pa + (ipa - gpa))
    }

    /// Replaces the kernel command line of a domain that has not run yet, rewriting its
    /// device tree in place.
    pub fn set_bootargs(&self, args: &str) -> Result<(), &'static str> {
        self.rewrite_dtb(|spec| spec.bootargs = Some(args.into()))
    }

    /// Gives a standby Recovery Domain, before it first runs, the launch failure report in
    /// its device tree (`/hypervisor/launch-failure@N`).
    pub fn set_failures(&self, failures: &[crate::launch::Failure]) -> Result<(), &'static str> {
        self.rewrite_dtb(|spec| {
            spec.failures = failures.iter().map(|f| (f.domid, f.reason.clone())).collect()
        })
    }

    /// Adds (or replaces) a property in the device tree of a domain that has not run yet.
    pub fn add_dt_property(&self, a: crate::guest_dtb::DtAddition) -> Result<(), &'static str> {
        self.rewrite_dtb(|spec| {
            spec.additions.retain(|b| (&b.path, &b.name) != (&a.path, &a.name));
            spec.additions.push(a);
        })
    }

    /// Pins vCPU `vcpu` of this domain, which has not run yet, to physical CPU `cpu`.
    pub fn set_affinity(&self, vcpu: usize, cpu: usize) -> Result<(), &'static str> {
        let di = self.index().ok_or("no such domain")?;
        let v = self.vcpus.get(vcpu).ok_or("no such vCPU")?;
        if cpu >= super::cpu::online() || cpu >= MAX_CPUS {
            return Err("no such physical CPU online");
        }
        let slot = (di << 16) | vcpu;
        let old = v.pcpu();
        // Queues locked in CPU order: a concurrent change elsewhere cannot deadlock.
        let (a, b) = (old.min(cpu), old.max(cpu));
        let mut qa = RUNQ[a].lock();
        if a == b {
            return Ok(());
        }
        let mut qb = RUNQ[b].lock();
        let (from, to) = if old == a { (&mut qa, &mut qb) } else { (&mut qb, &mut qa) };
        from.remove(slot);
        to.add(slot);
        v.cpu.store(cpu, Ordering::Release);
        let same = self.vcpus.iter().all(|w| w.pcpu() == cpu);
        self.local_tlb.store(same, Ordering::Release);
        Ok(())
    }

    /// Changes what the device tree says and writes it again in place (the domain has not
    /// run yet). Nothing changes if the new tree does not fit.
    fn rewrite_dtb(&self, change: impl FnOnce(&mut DtbSpec)) -> Result<(), &'static str> {
        let mut spec = self.dtb.lock();
        let mut new = spec.clone();
        change(&mut new);
        let blob = GuestDtb {
            domid: self.id,
            permissions: new.permissions,
            functions: self.functions,
            cpus: new.cpus,
            ram: &new.banks,
            bootargs: new.bootargs.as_deref(),
            ramdisk: new.ramdisk,
            vuart: new.vuart,
            gic_version: new.gic_version,
            failures: &new.failures,
            additions: &new.additions,
            store: new.store.as_ref(),
            devices: &new.devices,
            map: self.map,
        }
        .build()
        .map_err(|_| "the device tree could not be written")?;
        if blob.len() as u64 > self.dtb_room {
            return Err("the device tree would outgrow its place");
        }
        let pa =
            self.guest_to_host(self.entry.1, blob.len() as u64).ok_or("the device tree lies outside RAM")?;
        // SAFETY: the domain's own RAM where its device tree lies (translated above); the
        // domain has not run yet, so nothing reads it concurrently.
        unsafe { core::ptr::copy_nonoverlapping(blob.as_ptr(), pa as *mut u8, blob.len()) };
        *spec = new;
        Ok(())
    }

    /// Its position among the published domains (its run-queue slots use it).
    fn index(&self) -> Option<usize> {
        DOMAINS.get().and_then(|d| d.iter().position(|d| core::ptr::eq(d, self)))
    }

    /// It has been unpaused.
    pub fn started(&self) -> bool {
        self.unpaused.load(Ordering::Acquire)
    }

    /// The vCPU whose MPIDR (affinity bits) is `mpidr`.
    pub fn vcpu_by_mpidr(&self, mpidr: u64) -> Option<usize> {
        let aff = mpidr & crate::platform::MPIDR_AFF_MASK;
        (0..self.vcpus.len()).find(|&i| guest::vcpu_mpidr(i as u32) & crate::platform::MPIDR_AFF_MASK == aff)
    }

    /// A guest access to its virtual UART; returns the value a read yields.
    pub fn uart_access(&self, offset: u64, write: Option<u32>) -> u32 {
        let (value, effect) = {
            let mut u = self.uart.lock();
            match write {
                Some(v) => (0, u.write(offset, v)),
                None => u.read(offset),
            }
        };
        match effect {
            Effect::Tx(b) => super::console::domain_output(self.id, b),
            Effect::Unknown => self.notice(format_args!(
                "virtual UART {} unknown register {offset:#x}: {}",
                if write.is_some() { "write to" } else { "read of" },
                if write.is_some() { "ignored" } else { "reads 0" }
            )),
            Effect::None => {}
        }
        if write.is_none() && offset == crate::vuart::DR {
            self.refill_input();
        }
        self.update_uart_irq();
        value
    }

    /// Moves held console input into the virtual UART's receive FIFO as it makes room.
    fn refill_input(&self) {
        let mut u = self.uart.lock();
        let mut q = self.input.lock();
        while u.rx_room() > 0 {
            let Some(&b) = q.front() else { break };
            if !u.receive(b) {
                break;
            }
            q.pop_front();
        }
    }

    /// Drives the virtual UART's interrupt line from its status.
    pub fn update_uart_irq(&self) {
        let level = self.uart.lock().irq();
        let kick = self.vgic.lock().set_level(0, crate::vgic::PRIVATE + guest::VUART_SPI, level);
        self.kick(kick);
    }

    /// Interrupts vCPUs (bitmask) whose interrupt state changed, where they run on another
    /// physical CPU (the current one looks at its state before it enters the guest again).
    pub fn kick(&self, vcpus: u64) {
        if vcpus == 0 {
            return;
        }
        let me = super::el2::cpu_index();
        for (i, v) in self.vcpus.iter().enumerate().take(64) {
            if vcpus & (1 << i) != 0 && v.pcpu() != me {
                gic::kick(v.pcpu());
            }
        }
    }

    /// A guest misbehaved: a NOTICE, rate limited per domain.
    pub fn notice(&self, args: fmt::Arguments<'_>) {
        let n = self.notices.fetch_add(1, Ordering::Relaxed);
        if n < NOTICE_LIMIT {
            warn!("NOTICE: DOM{}: {args}", self.id);
        } else if n == NOTICE_LIMIT {
            warn!("NOTICE: DOM{}: further notices suppressed", self.id);
        }
    }
}

static DOMAINS: Once<Vec<Domain>> = Once::new();
/// For each physical CPU: the vCPUs pinned to it, as (domain index << 16) | vCPU index.
static RUNQ: [Mutex<crate::sched::RunQueue>; MAX_CPUS] =
    [const { Mutex::new(crate::sched::RunQueue::new()) }; MAX_CPUS];

/// True when physical CPU `cpu` time-slices several vCPUs.
pub fn cpu_shared(cpu: usize) -> bool {
    RUNQ.get(cpu).is_some_and(|q| q.lock().shared())
}
/// Domains not yet stopped.
static LIVE: AtomicUsize = AtomicUsize::new(0);

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

/// A domain's RAM: host ranges and where the guest sees them.
struct Ram {
    /// (host address, size, guest address).
    chunks: Vec<(u64, u64, u64)>,
    /// Allocated from the frame allocator (static memory is not given back).
    owned: bool,
}

impl Ram {
    /// Power-of-two chunks from the frame allocator, largest first, so that every chunk's
    /// guest offset is a multiple of its size and 2 MiB/1 GiB blocks map it. Guest addresses
    /// are the host ones when `direct`, else consecutive from guest RAM bank 0.
    fn alloc(frames: &mut Frames, size: u64, direct: bool) -> Result<Ram, BuildError> {
        let mut ram = Ram { chunks: Vec::new(), owned: true };
        let mut left = size;
        let mut ipa = guest::RAM0_BASE;
        while left > 0 {
            let chunk = 1u64 << (63 - left.leading_zeros());
            match frames.alloc(chunk) {
                Some(pa) => ram.chunks.push((pa, chunk, if direct { pa } else { ipa })),
                None => {
                    ram.free(frames);
                    return Err(BuildError::NoMemory { bytes: size });
                }
            }
            ipa += chunk;
            left -= chunk;
        }
        Ok(ram)
    }

    /// The host ranges of `xen,static-mem`.
    fn fixed(ranges: &[Range], direct: bool) -> Ram {
        let mut ipa = guest::RAM0_BASE;
        let chunks = ranges
            .iter()
            .map(|r| {
                let c = (r.start, r.size(), if direct { r.start } else { ipa });
                ipa += r.size();
                c
            })
            .collect();
        Ram { chunks, owned: false }
    }

    fn free(self, frames: &mut Frames) {
        if self.owned {
            for (pa, s, _) in self.chunks {
                frames.dealloc(pa, s);
            }
        }
    }

    /// Guest RAM banks as the device tree gives them.
    fn banks(&self) -> Vec<(u64, u64)> {
        let mut banks: Vec<(u64, u64)> = Vec::new();
        let mut sorted: Vec<(u64, u64)> = self.chunks.iter().map(|&(_, s, ipa)| (ipa, s)).collect();
        sorted.sort_unstable();
        for (ipa, s) in sorted {
            match banks.last_mut() {
                Some(last) if last.0 + last.1 == ipa => last.1 += s,
                _ => banks.push((ipa, s)),
            }
        }
        banks
    }

    /// Copies `data` to guest address `ipa` (may span chunks that are consecutive in the
    /// guest).
    fn write(&self, mut ipa: u64, mut data: &[u8]) {
        while !data.is_empty() {
            let Some(&(pa, size, base)) = self.chunks.iter().find(|c| c.2 <= ipa && ipa < c.2 + c.1) else {
                return;
            };
            let start = ipa - base;
            let n = (size - start).min(data.len() as u64) as usize;
            // SAFETY: the chunk is this domain's RAM (allocated for it, or its validated
            // static memory), identity mapped, not yet running; `start + n` stays inside it.
            unsafe { super::cache::copy(pa + start, data.as_ptr() as u64, n as u64) };
            data = &data[n..];
            ipa += n as u64;
        }
    }

    /// Puts `images` (guest address, bytes) in place over RAM scrubbed everywhere else but
    /// `untouched` (the shared kernel pages, copied whole when first written). Returns the
    /// bytes copied.
    fn load_images(&self, images: &[(u64, &[u8])], untouched: (u64, u64)) -> usize {
        let mut written: Vec<(u64, u64)> = images.iter().map(|&(at, b)| (at, b.len() as u64)).collect();
        written.push(untouched);
        self.scrub_except(&written);
        let t = timer::uptime_us();
        for &(at, bytes) in images {
            self.write(at, bytes);
        }
        COPY_US.fetch_add((timer::uptime_us() - t) as usize, Ordering::Relaxed);
        images.iter().map(|i| i.1.len()).sum()
    }

    /// Zeroes all of it but the `written` (guest address, length) ranges, which the images
    /// overwrite.
    fn scrub_except(&self, written: &[(u64, u64)]) {
        let t = timer::uptime_us();
        for &(pa, size, ipa) in &self.chunks {
            for (a, b) in guest::uncovered(ipa, ipa + size, written) {
                // SAFETY: as above: this domain's own RAM (a part of this chunk), not yet
                // visible to any guest.
                unsafe { super::cache::zero(pa + (a - ipa), b - a) };
            }
        }
        SCRUB_US.fetch_add((timer::uptime_us() - t) as usize, Ordering::Relaxed);
    }
}

/// Bytes copied into guest RAM, for the launch summary.
static COPIED: AtomicUsize = AtomicUsize::new(0);
/// Time spent scrubbing domain RAM and copying images into it so far (µs).
pub fn memory_work_us() -> (u64, u64) {
    (SCRUB_US.load(Ordering::Relaxed) as u64, COPY_US.load(Ordering::Relaxed) as u64)
}

/// Time spent scrubbing and copying into domain RAM (µs), for the launch summary.
static SCRUB_US: AtomicUsize = AtomicUsize::new(0);
static COPY_US: AtomicUsize = AtomicUsize::new(0);

/// Prepares one domain. On error everything it allocated is given back.
fn prepare(
    cfg: &DomainConfig,
    vmid: u16,
    frames: &mut Frames,
    cpu_load: &mut [u32],
    host: HostGuestFacts,
    store: Option<StoreLink>,
) -> Result<Domain, BuildError> {
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
    );
    if let Some(u) = unpacked {
        u.free(frames);
    }
    if result.is_ok() {
        cpu_load.copy_from_slice(&load);
    }
    result
}

/// What every domain's build needs to know of the host.
#[derive(Debug, Clone, Copy)]
struct HostGuestFacts {
    /// GIC version guests are given (the host's).
    gic_version: u32,
    /// Physical address bits (stage-2 output size).
    pa_bits: u32,
    /// The hypervisor's console UART (kept from the hardware domain).
    console: Option<u64>,
    /// The host's GIC and UART addresses, for direct-mapped domains.
    host_map: guest::GuestMap,
}

/// A domain's store connection(s): its role, and the ring pages to map (guest address,
/// physical page).
#[derive(Debug, Clone)]
struct StoreLink {
    role: crate::store::Role,
    pages: Vec<(u64, u64)>,
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
    HostGuestFacts { gic_version, pa_bits, console, host_map }: HostGuestFacts,
    link: Option<StoreLink>,
) -> Result<Domain, BuildError> {
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
        Ram::alloc(frames, ram_size, direct)?
    } else {
        Ram::fixed(&cfg.static_mem, direct)
    };
    let banks = ram.banks();
    let ram_size = ram.chunks.iter().map(|c| c.1).sum::<u64>();
    // Guest addresses of emulated devices must not land on direct-mapped RAM.
    let map = if direct { host_map } else { guest::GuestMap::XEN };
    let mut windows: Vec<Range> = map.windows(cfg.cpus, gic_version).to_vec();
    if link.is_some() {
        windows.push(Range { start: crate::store::CLIENT_RING, end: crate::store::WINDOW_END });
    }
    if direct
        && banks.iter().any(|&(a, s)| windows.iter().any(|w| Range { start: a, end: a + s }.overlaps(w)))
    {
        ram.free(frames);
        return Err(BuildError::Unsupported(
            "direct-mapped RAM over the emulated GIC, UART or store windows",
        ));
    }
    // The hardware domain: every host device the hypervisor does not keep, at its host
    // address, its SPIs forwarded (not over the domain's RAM or emulated devices).
    let hw = if cfg.permissions.has(crate::config::Permissions::HARDWARE) {
        hardware_devices(cfg, &banks, &windows, console, link.as_ref().map(|l| &l.role))
    } else {
        crate::devices::HostDevices::default()
    };
    // Devices its partial device tree gives it.
    let passthrough =
        match cfg.device_tree.as_ref().map(|m| crate::devices::parse_partial(module_bytes(m.range))) {
            Some(Ok(list)) => list,
            Some(Err(e)) => {
                ram.free(frames);
                return Err(BuildError::Passthrough(e));
            }
            None => Vec::new(),
        };
    let host_fdt = HOST_DTB.get().and_then(|b| crate::fdt::Fdt::new(b).ok());
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
            ram.free(frames);
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
        for &(pa, size, ipa) in &ram.chunks {
            for (a, b) in guest::uncovered(ipa, ipa + size, &[(shared.start, shared_len)]) {
                pt.map(&mut store, a, pa + (a - ipa), b - a, MemType::Normal, Perms::RWX)
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
            ram.free(frames);
            return Err(e);
        }
    };
    let cow = (shared_len > 0).then(|| Cow {
        ipa: shared,
        module_pa,
        tables: cow_tables,
        private_attrs,
        lock: Mutex::new(()),
        copied: AtomicU64::new(0),
    });
    let mut images =
        alloc::vec![(layout.kernel + shared_len, &kernel_mod[shared_len as usize..]), (layout.dtb, &dtb[..])];
    if let (Some(rd), Some((at, _))) = (ramdisk, layout.ramdisk) {
        images.push((at, rd));
    }
    let copied = ram.load_images(&images, (layout.kernel, shared_len));
    COPIED.fetch_add(copied, Ordering::Relaxed);
    let local_tlb = pcpus.windows(2).all(|w| w[0] == w[1]);
    let vcpus = pcpus
        .iter()
        .map(|&p| Vcpu {
            power: Mutex::new(Power::Off),
            cpu: AtomicUsize::new(p),
            saved: Mutex::new(None),
            blocked: AtomicBool::new(false),
        })
        .collect();
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
    Ok(Domain {
        id: cfg.domid,
        node: cfg.node.clone(),
        vttbr: (u64::from(vmid) << 48) | root,
        vcpus,
        mmio,
        uart: Mutex::new(Pl011::new()),
        vgic: Mutex::new({
            let top = all_spis.iter().max().map_or(0, |&m| m + 1 - 32);
            let mut g = crate::vgic::VGic::new(cfg.cpus as usize, top.max(32));
            for &id in &all_spis {
                g.forward(id);
            }
            g
        }),
        forwarded: all_spis.clone(),
        input: Mutex::new(alloc::collections::VecDeque::new()),
        cntvoff: timer::ticks(),
        stopping: AtomicBool::new(false),
        notices: AtomicU32::new(0),
        entry: (layout.kernel, layout.dtb),
        permissions: cfg.permissions.0,
        functions: cfg.functions.0,
        ctl_paused: AtomicBool::new(false),
        reset_pending: AtomicBool::new(false),
        ram_owned: ram.owned,
        ram: ram.chunks,
        tables,
        config: cfg.config.as_ref().map(|m| m.range),
        modules: cfg.kernel.iter().chain(cfg.ramdisk.iter()).map(|m| m.range).collect(),
        kernel_src: kernel_is_module.then_some((kernel_mod.as_ptr() as u64, kernel_mod.len() as u64)),
        ramdisk_src: ramdisk.map(|r| (r.as_ptr() as u64, r.len() as u64)),
        dtb: Mutex::new(DtbSpec {
            permissions: cfg.permissions.0,
            cpus: cfg.cpus,
            banks: banks.clone(),
            bootargs: cfg.bootargs.clone(),
            ramdisk: layout.ramdisk,
            vuart: cfg.vuart,
            gic_version,
            failures: Vec::new(),
            additions: Vec::new(),
            store: link.map(|l| l.role),
            devices: hw_nodes,
        }),
        dtb_room: layout.ramdisk.map_or(first_base + first_size, |(a, _)| a) - layout.dtb,
        active: AtomicUsize::new(0),
        unpaused: AtomicBool::new(false),
        exits: ExitCounts::default(),
        map,
        cow,
        local_tlb: AtomicBool::new(local_tlb),
        reclaim: AtomicBool::new(false),
        reclaimed: AtomicBool::new(false),
    })
}

/// Free RAM, once domains are being built.
static FRAMES: Mutex<Option<Frames>> = Mutex::new(None);
/// The launch sequence.
static LAUNCH: Mutex<Option<crate::launch::Launch>> = Mutex::new(None);
/// The host device tree (which holds the LCM), for the Boot Domain to read.
static HOST_DTB: Once<&'static [u8]> = Once::new();
/// The store connections, for the doorbell hypercall.
static STORE_PLAN: Once<Option<crate::store::Plan>> = Once::new();
/// Where it lies, until finalization gives its pages back.
static HOST_DTB_RANGE: Mutex<Option<Range>> = Mutex::new(None);
static HOST_DTB_FREED: AtomicBool = AtomicBool::new(false);
/// When the Boot Domain's time runs out (µs of uptime; 0: no limit running).
static LAUNCH_DEADLINE: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// The Boot Domain's deadline, if one runs.
pub fn launch_deadline() -> Option<u64> {
    Some(LAUNCH_DEADLINE.load(Ordering::Acquire)).filter(|&d| d != 0)
}

/// Called on hypervisor timer interrupts: a Boot Domain past its time fails the launch,
/// which goes on without it.
pub fn check_launch_timeout(now_us: u64) {
    let Some(d) = launch_deadline() else { return };
    if now_us < d || LAUNCH_DEADLINE.swap(0, Ordering::AcqRel) == 0 {
        return;
    }
    let actions = LAUNCH
        .lock()
        .as_mut()
        .map(|l| l.boot_failed("the Boot Domain did not signal done in time"))
        .unwrap_or_default();
    if !actions.is_empty() {
        error!("launch: the Boot Domain did not signal done in time: finalizing without it");
        apply(&actions);
    }
}

/// Boot modules, given back at finalization.
static BOOT_MODULES: Mutex<Vec<Range>> = Mutex::new(Vec::new());
/// Boot modules kept after finalization (kernels whose pages domains share).
static KEPT_MODULES: Mutex<Vec<Range>> = Mutex::new(Vec::new());

/// Host MMIO ranges partial device trees assign, by domain.
static ASSIGNED: Mutex<Vec<(u16, Range)>> = Mutex::new(Vec::new());

/// For each INTID: the index + 1 of the domain whose device raises it, or 0.
static IRQ_OWNER: [AtomicUsize; 1024] = [const { AtomicUsize::new(0) }; 1024];

/// A physical interrupt from a device a domain owns: it stays active at the GIC and is
/// raised (level) at the domain's virtual GIC, HW-linked to it, so that the guest's
/// deactivation deactivates it. False when no domain owns it.
pub fn forward_irq(intid: u32) -> bool {
    let owner = IRQ_OWNER.get(intid as usize).map_or(0, |o| o.load(Ordering::Acquire));
    let Some(d) = DOMAINS.get().and_then(|ds| ds.get(owner.wrapping_sub(1))) else { return false };
    let kick = d.vgic.lock().set_level(0, intid, true);
    d.kick(kick);
    true
}

/// The host devices a hardware domain gets, logged.
fn hardware_devices(
    cfg: &DomainConfig,
    banks: &[(u64, u64)],
    windows: &[Range],
    console: Option<u64>,
    store: Option<&crate::store::Role>,
) -> crate::devices::HostDevices {
    let Some(blob) = HOST_DTB.get() else { return Default::default() };
    let Ok(fdt) = crate::fdt::Fdt::new(blob) else { return Default::default() };
    let mut avoid: Vec<Range> = banks.iter().map(|&(a, s)| Range { start: a, end: a + s }).collect();
    avoid.extend_from_slice(windows);
    let assigned = ASSIGNED.lock().clone();
    let mut h = crate::devices::discover(&fdt, crate::devices::gic_phandle(&fdt), console, &assigned, &avoid);
    // Pages a device here shares with one given elsewhere: both domains reach both.
    let mut owned: Vec<(u16, Range)> = assigned.clone();
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
        Some(crate::store::Role::Server { clients }) => own.extend(
            (0..clients.len() as u32).map(|k| crate::vgic::PRIVATE + crate::store::SERVER_SPI_BASE + k),
        ),
        None => {}
    }
    let (keep, clash): (Vec<_>, Vec<_>) =
        h.devices.into_iter().partition(|d| !d.spis.iter().any(|s| own.contains(s)));
    h.devices = keep;
    for d in clash {
        h.skipped.push((d.path, "its SPI is one the domain's emulated devices use".into()));
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
fn store_link(plan: Option<&crate::store::Plan>, rings: &[u64], domid: u16) -> Option<StoreLink> {
    let plan = plan?;
    let role = plan.role(domid)?;
    let pages = match &role {
        crate::store::Role::Client { .. } => {
            alloc::vec![(crate::store::CLIENT_RING, *rings.get(plan.slot(domid)?)?)]
        }
        crate::store::Role::Server { clients } => (0..clients.len().min(rings.len()))
            .map(|k| (crate::store::Plan::server_ring(k), rings[k]))
            .collect(),
    };
    Some(StoreLink { role, pages })
}

/// Builds every domain of the configuration (each paused), publishes them and starts the
/// launch sequence. Returns how many domains were built.
pub fn launch(
    cfg: &LaunchConfig,
    mut frames: Frames,
    online_cpus: usize,
    gic_desc: Option<crate::platform::Gic>,
    uart_desc: Option<&crate::platform::Uart>,
    host_dtb: &'static [u8],
    boot_modules: Vec<Range>,
) -> usize {
    let (pa_bits, _) = super::el2::pa_bits();
    let gic_version = gic_desc.map_or(3, |g| g.version());
    let mut cpu_load: Vec<u32> = alloc::vec![0; online_cpus];
    HOST_DTB.call_once(|| host_dtb);
    // Direct-mapped domains find the emulated GIC and UART where the host's are.
    let host_map = guest::GuestMap::host(gic_desc, uart_desc.map(|u| u.base));
    // Devices partial device trees give away: not the hardware domain's.
    for d in &cfg.domains {
        if let Some(Ok(list)) =
            d.device_tree.as_ref().map(|m| crate::devices::parse_partial(module_bytes(m.range)))
        {
            let mut a = ASSIGNED.lock();
            for (pa, size, _) in list.iter().flat_map(|p| p.regs.iter().copied()) {
                a.push((d.domid, Range { start: pa, end: pa + size }));
            }
        }
    }
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
    for (i, d) in cfg.domains.iter().enumerate() {
        let link = store_link(store_plan.as_ref(), &rings, d.domid);
        let host = HostGuestFacts { gic_version, pa_bits, console: uart_desc.map(|u| u.base), host_map };
        match prepare(d, (i + 1) as u16, &mut frames, &mut cpu_load, host, link) {
            Ok(dom) => built.push(dom),
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
        COPIED.load(Ordering::Relaxed) >> 10,
        frames.free() >> 20
    );
    *FRAMES.lock() = Some(frames);
    HOST_DTB.call_once(|| host_dtb);
    STORE_PLAN.call_once(|| store_plan);
    let dtb_start = host_dtb.as_ptr() as u64;
    *HOST_DTB_RANGE.lock() = Some(Range { start: dtb_start, end: dtb_start + host_dtb.len() as u64 });
    *BOOT_MODULES.lock() = boot_modules;
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
    LIVE.store(n, Ordering::Release);
    let doms = DOMAINS.call_once(|| built);
    for (di, d) in doms.iter().enumerate() {
        for (vi, v) in d.vcpus.iter().enumerate() {
            RUNQ[v.pcpu()].lock().add((di << 16) | vi);
        }
        // Device interrupts: delivered to the CPU of the owner's first vCPU (only where
        // guests have a virtual GIC to take them).
        for &id in d.forwarded.iter().filter(|_| gic::has_vgic()) {
            if let Some(o) = IRQ_OWNER.get(id as usize) {
                o.store(di + 1, Ordering::Release);
                gic::route_spi(id, d.vcpus[0].pcpu());
            }
        }
    }
    // After publishing: input typed early is delivered as soon as the console starts.
    super::console::start_mux(uart_desc, &with_uart, console, cfg.console_switch);
    let mut l = crate::launch::Launch::new(ids, boot, standby, console, failures);
    let actions = l.start();
    *LAUNCH.lock() = Some(l);
    if boot.is_some() {
        let d = timer::uptime_us() + u64::from(cfg.boot_timeout_ms) * 1000;
        LAUNCH_DEADLINE.store(d, Ordering::Release);
        super::console::rearm_timer(None);
    }
    apply(&actions);
    n
}

fn by_id(domid: u16) -> Option<&'static Domain> {
    DOMAINS.get().and_then(|d| d.iter().find(|d| d.id == domid))
}

/// Carries out what the launch sequence decided.
fn apply(actions: &[crate::launch::Action]) {
    use crate::launch::Action;
    for a in actions {
        match *a {
            Action::Unpause(id) => {
                if let Some(d) = by_id(id) {
                    info!("launch: DOM{id} unpaused");
                    d.unpaused.store(true, Ordering::Release);
                    *d.vcpus[0].power.lock() = Power::Pending { entry: d.entry.0, context: d.entry.1 };
                    wake(d.vcpus[0].pcpu());
                }
            }
            Action::Reclaim(id) => {
                if let Some(d) = by_id(id) {
                    d.reclaim.store(true, Ordering::Release);
                    stop(d, "reclaimed");
                    try_reclaim(d);
                }
            }
            Action::FreeBootModules => {
                let mut mods = core::mem::take(&mut *BOOT_MODULES.lock());
                // Kernel modules whose pages running domains map stay reserved.
                let shared: Vec<Range> = DOMAINS
                    .get()
                    .map(|ds| {
                        ds.iter()
                            .filter_map(|d| d.cow.as_ref())
                            .map(|c| Range { start: c.module_pa, end: c.module_pa + c.ipa.size() })
                            .collect()
                    })
                    .unwrap_or_default();
                let kept: u64 =
                    mods.iter().filter(|m| shared.iter().any(|s| s.overlaps(m))).map(|m| m.size()).sum();
                KEPT_MODULES.lock().extend(mods.iter().filter(|m| shared.iter().any(|s| s.overlaps(m))));
                mods.retain(|m| !shared.iter().any(|s| s.overlaps(m)));
                if kept > 0 {
                    info!(
                        "launch: {} KiB of kernel modules kept: their pages are shared by the domains",
                        kept >> 10
                    );
                }
                let bytes: u64 = mods.iter().map(|r| r.page_inner().size()).sum();
                if let Some(f) = FRAMES.lock().as_mut() {
                    for r in &mods {
                        f.add(*r);
                    }
                }
                info!("launch: {} boot module(s) freed ({} KiB)", mods.len(), bytes >> 10);
                // The host device tree holds the LCM: nothing reads it after launch (the
                // Boot Domain's calls end with it). Only the pages wholly inside it go.
                HOST_DTB_FREED.store(true, Ordering::Release);
                if let Some(r) = HOST_DTB_RANGE.lock().take() {
                    if let Some(f) = FRAMES.lock().as_mut() {
                        f.add(r);
                    }
                    info!("launch: host device tree (LCM) freed ({} KiB)", r.page_inner().size() >> 10);
                }
            }
            Action::Console(id) => super::console::set_input(id),
            Action::ReportFailure => {
                let l = LAUNCH.lock();
                let failures = l.as_ref().map(|l| l.failures()).unwrap_or(&[]);
                for f in failures {
                    error!("launch failed: DOM{}: {}", f.domid, f.reason);
                }
                // A standby Recovery Domain (not started yet) reads the report in its tree.
                let recovery = crate::config::Functions::RECOVERY;
                for d in DOMAINS
                    .get()
                    .map_or(&[][..], |d| &d[..])
                    .iter()
                    .filter(|d| d.functions & recovery != 0 && !d.started())
                {
                    match d.set_failures(failures) {
                        Ok(()) => info!("launch: failure report written into DOM{}'s device tree", d.id),
                        Err(e) => warn!("launch: DOM{}: no failure report in its device tree: {e}", d.id),
                    }
                }
            }
        }
    }
    if actions.iter().any(|a| matches!(a, Action::FreeBootModules)) {
        let free = FRAMES.lock().as_ref().map_or(0, |f| f.free());
        info!("launch: finalized; {} MiB free", free >> 20);
    }
}

/// Scrubs and frees a reclaimed domain's memory once none of its vCPUs runs.
fn try_reclaim(d: &Domain) {
    if !d.reclaim.load(Ordering::Acquire) || d.active.load(Ordering::Acquire) != 0 {
        return;
    }
    if d.reclaimed.swap(true, Ordering::AcqRel) {
        return;
    }
    let mut frames = FRAMES.lock();
    let Some(f) = frames.as_mut() else { return };
    let before = f.free();
    for &(pa, size, _) in &d.ram {
        // SAFETY: the domain's RAM; none of its vCPUs runs any more (active is 0) and it
        // never runs again, so nothing else refers to these pages.
        unsafe { super::cache::zero(pa, size) };
        if d.ram_owned {
            f.dealloc(pa, size);
        }
    }
    for &t in &d.tables {
        f.dealloc(t, 4096);
    }
    info!(
        "launch: DOM{} reclaimed: memory scrubbed, {} KiB returned; {} MiB free",
        d.id,
        (f.free() - before) >> 10,
        f.free() >> 20
    );
}

/// A byte of console input for domain `domid`'s virtual UART.
pub fn deliver_input(domid: u16, byte: u8) {
    let Some(dom) = DOMAINS.get().and_then(|d| d.iter().find(|d| d.id == domid)) else { return };
    {
        let mut u = dom.uart.lock();
        let mut q = dom.input.lock();
        let taken = q.is_empty() && u.rx_room() > 0 && u.receive(byte);
        if !taken && q.len() < INPUT_BACKLOG {
            // Typed faster than the guest reads: held until its FIFO has room.
            q.push_back(byte);
        } else if !taken {
            drop((u, q));
            dom.notice(format_args!("console input backlog full: input byte dropped"));
        }
    }
    dom.update_uart_irq();
}

/// Wakes physical CPU `pcpu` (waiting in WFE, or running a guest).
pub fn wake(pcpu: usize) {
    gic::kick(pcpu);
}

/// Stops a domain: its other vCPUs are kicked out of the guest; the machine powers off
/// after the last domain.
pub fn stop(dom: &Domain, why: &str) -> vcpu::End {
    if !dom.stopping.swap(true, Ordering::AcqRel) {
        let crashed = why == "SError";
        let actions = LAUNCH.lock().as_mut().map(|l| l.stopped(dom.id, why, crashed)).unwrap_or_default();
        super::console::domain_stopped(dom.id);
        let cow = dom.cow.as_ref().map_or(0, |c| c.copied.load(Ordering::Relaxed));
        info!("DOM{}: stopped ({why}); {}; {cow} shared kernel page(s) copied on write", dom.id, dom.exits);
        let me = super::el2::cpu_index();
        for v in &dom.vcpus {
            if v.pcpu() != me {
                gic::kick(v.pcpu());
            }
        }
        apply(&actions);
        if LIVE.fetch_sub(1, Ordering::AcqRel) == 1 && !dom.reset_pending.load(Ordering::Acquire) {
            info!("all domains have stopped");
            super::start::halt("all domains have stopped");
        }
    }
    vcpu::End::DomainStopped
}

/// Every physical CPU's loop once domains exist: run the next of its vCPUs that is due
/// (round robin when it has several), otherwise wait for an interrupt.
pub fn schedule() -> ! {
    let me = super::el2::cpu_index();
    loop {
        let Some(doms) = DOMAINS.get() else {
            aarch64_cpu::asm::wfi();
            gic::handle_pending(vcpu::idle_irq);
            continue;
        };
        // vCPUs of stopped domains leave the queue.
        let gone: Vec<usize> = {
            let q = RUNQ[me].lock();
            q.slots().iter().copied().filter(|&s| doms[s >> 16].stopping.load(Ordering::Acquire)).collect()
        };
        for s in gone {
            {
                // Checked again under the queue's lock: a restart may have begun meanwhile.
                let mut q = RUNQ[me].lock();
                if !doms[s >> 16].stopping.load(Ordering::Acquire) {
                    continue;
                }
                q.remove(s);
            }
            *doms[s >> 16].vcpus[s & 0xffff].saved.lock() = None;
            try_reclaim(&doms[s >> 16]);
            restart_if_reset(&doms[s >> 16]);
        }
        let now = timer::ticks();
        let pick = RUNQ[me].lock().pick(|s| due(&doms[s >> 16], s & 0xffff, now));
        let Some(slot) = pick else {
            // Idle: WFI (not WFE, which emulators turn into a busy loop); kicks are SGIs.
            // A shared CPU keeps its tick, to notice when a blocked vCPU's timer is due.
            if cpu_shared(me) {
                vcpu::arm_slice();
            }
            aarch64_cpu::asm::wfi();
            gic::handle_pending(vcpu::idle_irq);
            continue;
        };
        let (dom, vi) = (&doms[slot >> 16], slot & 0xffff);
        let start = vcpu::take_start(&mut dom.vcpus[vi].power.lock());
        if let Some((entry, _)) = start {
            let t = timer::uptime_us();
            if vi == 0 {
                info!("DOM{}: vCPU {vi} starts on CPU {me} at {entry:#x} ({t} us)", dom.id);
            } else {
                log::debug!("DOM{}: vCPU {vi} starts on CPU {me} at {entry:#x} ({t} us)", dom.id);
            }
        }
        dom.vcpus[vi].blocked.store(false, Ordering::Release);
        dom.active.fetch_add(1, Ordering::AcqRel);
        let end = vcpu::run(dom, vi, start);
        dom.active.fetch_sub(1, Ordering::AcqRel);
        match end {
            vcpu::End::CpuOff => log::debug!("DOM{}: vCPU {vi} off", dom.id),
            vcpu::End::Yield => {}
            vcpu::End::DomainStopped => {
                RUNQ[me].lock().remove(slot);
                try_reclaim(dom);
                restart_if_reset(dom);
            }
        }
    }
}

/// A domain that asked for SYSTEM_RESET restarts once the last of its vCPUs is off its CPU.
fn restart_if_reset(dom: &Domain) {
    if !dom.reset_pending.load(Ordering::Acquire) || dom.active.load(Ordering::Acquire) != 0 {
        return;
    }
    if !dom.reset_pending.swap(false, Ordering::AcqRel) {
        return;
    }
    match dom.restart() {
        Ok(()) => info!("DOM{}: restarted (SYSTEM_RESET)", dom.id),
        Err(e) => {
            warn!("DOM{}: not restarted after SYSTEM_RESET: {e}", dom.id);
            if LIVE.load(Ordering::Acquire) == 0 {
                info!("all domains have stopped");
                super::start::halt("all domains have stopped");
            }
        }
    }
}

/// vCPU `vi` of `dom` should run now (physical count `now`): it is starting, or it was
/// preempted, or it waits in WFI and an interrupt or its timer is due.
fn due(dom: &Domain, vi: usize, now: u64) -> bool {
    if dom.stopping.load(Ordering::Acquire) || dom.ctl_paused.load(Ordering::Acquire) {
        return false;
    }
    let v = &dom.vcpus[vi];
    match *v.power.lock() {
        Power::Pending { .. } => true,
        Power::Off => false,
        Power::On => {
            let saved = v.saved.lock();
            let Some(s) = saved.as_ref() else { return false };
            !v.blocked.load(Ordering::Acquire)
                || s.ctx.timer_due(now, dom.cntvoff)
                || dom.vgic.lock().has_pending(vi)
        }
    }
}

/// The domain `domid`, if it is still paused by the launch (extended configuration applies
/// only then); otherwise a NOTICE for `caller` about `what`.
fn paused_target(caller: &Domain, domid: u16, what: fmt::Arguments<'_>) -> Option<&'static Domain> {
    let paused = LAUNCH.lock().as_ref().and_then(|l| l.state(domid)) == Some(crate::launch::State::Paused);
    let target = by_id(domid).filter(|_| paused);
    if target.is_none() {
        caller.notice(format_args!("{what} refused: no such paused domain"));
    }
    target
}

/// A domain's state as the hypercalls report it.
fn domain_state(d: &Domain) -> u64 {
    use crate::hypercall as hc;
    if d.reclaimed.load(Ordering::Acquire) {
        return hc::STATE_RECLAIMED;
    }
    if d.stopping.load(Ordering::Acquire) {
        return hc::STATE_STOPPED;
    }
    match LAUNCH.lock().as_ref().and_then(|l| l.state(d.id)) {
        Some(crate::launch::State::Paused) => hc::STATE_PAUSED,
        Some(crate::launch::State::Running) if d.ctl_paused.load(Ordering::Acquire) => hc::STATE_CTL_PAUSED,
        Some(crate::launch::State::Running) => hc::STATE_RUNNING,
        Some(crate::launch::State::Stopped) => hc::STATE_STOPPED,
        _ => hc::STATE_RECLAIMED,
    }
}

fn state_name(state: u64) -> &'static str {
    use crate::hypercall as hc;
    match state {
        hc::STATE_PAUSED => "paused (not yet launched)",
        hc::STATE_RUNNING => "running",
        hc::STATE_STOPPED => "stopped",
        hc::STATE_CTL_PAUSED => "paused",
        _ => "reclaimed",
    }
}

/// One of hyperlaunch's own hypercalls from `dom`; returns x0..x3.
pub fn hypercall(dom: &Domain, call: crate::hypercall::Call) -> [u64; 4] {
    use crate::hypercall::{self as hc, Blob, Call};
    let running_boot = LAUNCH.lock().as_ref().and_then(|l| l.boot_domain()) == Some(dom.id);
    let recovery = dom.functions & crate::config::Functions::RECOVERY != 0;
    let control = dom.permissions & crate::config::Permissions::CONTROL != 0;
    if !hc::allowed(&call, hc::Caller { running_boot_domain: running_boot, recovery, control }) {
        dom.notice(format_args!("hypercall {call:?} refused: not permitted for this domain"));
        return [hc::DENIED as u64, 0, 0, 0];
    }
    let ret = |x0: i64| [x0 as u64, 0, 0, 0];
    let gone = HOST_DTB_FREED.load(Ordering::Acquire);
    if gone && matches!(call, Call::Size(_) | Call::Read { .. }) {
        dom.notice(format_args!("hypercall {call:?} refused: the launch materials are freed"));
        return ret(hc::INVALID);
    }
    match call {
        Call::Version => ret(hc::VERSION),
        Call::Unknown(fid) => {
            dom.notice(format_args!("unknown hyperlaunch hypercall {fid:#x}"));
            ret(hc::NOT_SUPPORTED)
        }
        Call::Size(Blob::Lcm) => ret(HOST_DTB.get().map_or(0, |d| d.len()) as i64),
        Call::Size(Blob::Config) => ret(dom.config.map_or(hc::INVALID, |r| r.size() as i64)),
        Call::Read { blob, dst, offset, len } => {
            let src: &[u8] = match blob {
                Blob::Lcm => HOST_DTB.get().copied().unwrap_or(&[]),
                Blob::Config => dom.config.map(module_bytes).unwrap_or(&[]),
            };
            let Some(avail) = (src.len() as u64).checked_sub(offset) else { return ret(hc::INVALID) };
            let n = len.min(avail);
            match dom.guest_to_host(dst, n) {
                Some(pa) => {
                    // SAFETY: `pa..pa + n` is inside this domain's own RAM (checked by
                    // guest_to_host), identity mapped; the source is the host DTB or a boot
                    // module, which do not overlap domain RAM.
                    unsafe {
                        core::ptr::copy_nonoverlapping(
                            src.as_ptr().add(offset as usize),
                            pa as *mut u8,
                            n as usize,
                        )
                    };
                    ret(n as i64)
                }
                None => {
                    dom.notice(format_args!(
                        "hypercall read into {dst:#x} (+{n:#x}) outside its RAM refused"
                    ));
                    ret(hc::INVALID)
                }
            }
        }
        Call::DomainInfo { index } => {
            let Some(d) = DOMAINS.get().and_then(|ds| ds.get(index as usize)) else {
                return ret(hc::INVALID);
            };
            [hc::SUCCESS as u64, u64::from(d.id), domain_state(d), u64::from(d.functions)]
        }
        Call::Unpause { domid } => {
            let r = LAUNCH.lock().as_mut().map(|l| l.unpause(dom.id, domid));
            match r {
                Some(Ok(a)) => {
                    apply(&[a]);
                    ret(hc::SUCCESS)
                }
                Some(Err(e)) => {
                    dom.notice(format_args!("unpause of DOM{domid} refused: {e}"));
                    ret(hc::INVALID)
                }
                None => ret(hc::INVALID),
            }
        }
        Call::Done => {
            info!("launch: DOM{} (Boot Domain) signalled done", dom.id);
            let r = LAUNCH.lock().as_mut().map(|l| l.done(dom.id));
            match r {
                Some(Ok(actions)) => {
                    apply(&actions);
                    ret(hc::SUCCESS)
                }
                _ => ret(hc::DENIED),
            }
        }
        Call::SetBootargs { domid, src, len } => {
            let Some(target) = paused_target(dom, domid, format_args!("bootargs for DOM{domid}")) else {
                return ret(hc::INVALID);
            };
            if len > hc::MAX_BOOTARGS {
                return ret(hc::INVALID);
            }
            let Some(pa) = dom.guest_to_host(src, len) else { return ret(hc::INVALID) };
            // SAFETY: `len` bytes of the caller's own RAM (checked by guest_to_host), read once.
            let bytes = unsafe { core::slice::from_raw_parts(pa as *const u8, len as usize) };
            let Ok(args) = core::str::from_utf8(bytes) else { return ret(hc::INVALID) };
            if args.contains('\0') {
                return ret(hc::INVALID);
            }
            match target.set_bootargs(args) {
                Ok(()) => {
                    info!("launch: DOM{domid} bootargs set by the Boot Domain: \"{args}\"");
                    ret(hc::SUCCESS)
                }
                Err(e) => {
                    dom.notice(format_args!("bootargs for DOM{domid} refused: {e}"));
                    ret(hc::INVALID)
                }
            }
        }
        Call::SetAffinity { domid, vcpu, cpu } => {
            let Some(target) = paused_target(dom, domid, format_args!("affinity for DOM{domid}")) else {
                return ret(hc::INVALID);
            };
            match target.set_affinity(vcpu as usize, cpu as usize) {
                Ok(()) => {
                    info!("launch: DOM{domid} vCPU {vcpu} pinned to CPU {cpu} by the Boot Domain");
                    ret(hc::SUCCESS)
                }
                Err(e) => {
                    dom.notice(format_args!("affinity of DOM{domid} vCPU {vcpu} to CPU {cpu} refused: {e}"));
                    ret(hc::INVALID)
                }
            }
        }
        Call::SetDtProperty { domid, src, len } => {
            let Some(target) = paused_target(dom, domid, format_args!("device tree property for DOM{domid}"))
            else {
                return ret(hc::INVALID);
            };
            if len > hc::MAX_DT_PROPERTY {
                return ret(hc::INVALID);
            }
            let Some(pa) = dom.guest_to_host(src, len) else { return ret(hc::INVALID) };
            // SAFETY: `len` bytes of the caller's own RAM (checked by guest_to_host), read once.
            let bytes = unsafe { core::slice::from_raw_parts(pa as *const u8, len as usize) };
            let a = match crate::guest_dtb::DtAddition::parse(bytes) {
                Ok(a) => a,
                Err(e) => {
                    dom.notice(format_args!("device tree property for DOM{domid} refused: {e}"));
                    return ret(hc::INVALID);
                }
            };
            let what = alloc::format!("{}/{} ({} bytes)", a.path, a.name, a.value.len());
            match target.add_dt_property(a) {
                Ok(()) => {
                    info!("launch: DOM{domid} device tree: {what} added by the Boot Domain");
                    ret(hc::SUCCESS)
                }
                Err(e) => {
                    dom.notice(format_args!("device tree property {what} for DOM{domid} refused: {e}"));
                    ret(hc::INVALID)
                }
            }
        }
        Call::DomctlQuery { domid } => {
            let Some(d) = by_id(domid) else {
                dom.notice(format_args!("query of DOM{domid} refused: no such domain"));
                return ret(hc::INVALID);
            };
            let state = domain_state(d);
            let mem: u64 = d.ram.iter().map(|c| c.1).sum();
            let roles = (u64::from(d.permissions) << 32) | u64::from(d.functions);
            [hc::SUCCESS as u64, state | ((d.vcpus.len() as u64) << 8), mem, roles]
        }
        Call::DomctlPause { domid } | Call::DomctlUnpause { domid } | Call::DomctlDestroy { domid } => {
            let what = match call {
                Call::DomctlPause { .. } => "pause",
                Call::DomctlUnpause { .. } => "unpause",
                _ => "destroy",
            };
            let Some(d) = by_id(domid) else {
                dom.notice(format_args!("{what} of DOM{domid} refused: no such domain"));
                return ret(hc::INVALID);
            };
            if d.id == dom.id {
                dom.notice(format_args!("{what} of itself refused (PSCI SYSTEM_OFF stops a domain)"));
                return ret(hc::INVALID);
            }
            let state = domain_state(d);
            let ok = match what {
                "pause" => state == hc::STATE_RUNNING,
                "unpause" => state == hc::STATE_CTL_PAUSED,
                _ => state == hc::STATE_RUNNING || state == hc::STATE_CTL_PAUSED,
            };
            if !ok {
                dom.notice(format_args!("{what} of DOM{domid} refused: its state is {}", state_name(state)));
                return ret(hc::INVALID);
            }
            match what {
                "pause" => {
                    d.ctl_paused.store(true, Ordering::Release);
                    d.kick(u64::MAX);
                    info!("DOM{domid}: paused by DOM{}", dom.id);
                }
                "unpause" => {
                    d.ctl_paused.store(false, Ordering::Release);
                    for v in &d.vcpus {
                        wake(v.pcpu());
                    }
                    info!("DOM{domid}: unpaused by DOM{}", dom.id);
                }
                _ => {
                    d.reclaim.store(true, Ordering::Release);
                    d.ctl_paused.store(false, Ordering::Release);
                    stop(d, &alloc::format!("destroyed by DOM{}", dom.id));
                    try_reclaim(d);
                }
            }
            ret(hc::SUCCESS)
        }
        Call::DomctlRestart { domid } => {
            let Some(d) = by_id(domid).filter(|d| d.id != dom.id) else {
                dom.notice(format_args!("restart of DOM{domid} refused: no such other domain"));
                return ret(hc::INVALID);
            };
            match d.restart() {
                Ok(()) => {
                    info!("DOM{domid}: restarted by DOM{}", dom.id);
                    ret(hc::SUCCESS)
                }
                Err(e) => {
                    dom.notice(format_args!("restart of DOM{domid} refused: {e}"));
                    ret(hc::INVALID)
                }
            }
        }
        Call::StoreNotify { domid } => {
            let target = STORE_PLAN.get().and_then(|p| p.as_ref()).and_then(|p| p.doorbell(dom.id, domid));
            let Some((peer, spi)) = target else {
                dom.notice(format_args!(
                    "store doorbell to DOM{domid} refused: no store connection between them"
                ));
                return ret(hc::INVALID);
            };
            if let Some(d) = by_id(peer) {
                let kick = d.vgic.lock().raise(0, crate::vgic::PRIVATE + spi);
                d.kick(kick);
            }
            ret(hc::SUCCESS)
        }
        Call::FailureInfo { index } => {
            let l = LAUNCH.lock();
            match l.as_ref().and_then(|l| l.failures().get(index as usize)) {
                Some(f) => [hc::SUCCESS as u64, u64::from(f.domid), 0, 0],
                None => ret(hc::INVALID),
            }
        }
    }
}
