//! A domain at run time: its vCPUs, emulated devices, memory and lifecycle. Its state is
//! one [`Life`] under one lock: `Domain::life` hands out the guard, and every check that an
//! action depends on is made under the same guard as the action.

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, Ordering};

use log::warn;
use spin::{Mutex, MutexGuard};

use super::cow::Cow;
use super::exits::ExitCounts;
use super::life::{Life, State};
use super::machine::{HostMem, Machine};
use super::ram::{Pending, Ram, Src};
use super::vcpu::Vcpu;
use crate::config::{Functions, Permissions};
use crate::guest::{self, GuestMap};
use crate::guest_dtb::{DtAddition, GuestDtb};
use crate::memmap::Range;
use crate::mmio::MmioMap;
use crate::vgic::VGic;
use crate::vuart::{Effect, Pl011};

/// Console input held for a domain whose virtual UART is full.
pub const INPUT_BACKLOG: usize = 4096;
/// Notices logged per domain before they are only counted.
const NOTICE_LIMIT: u32 = 20;

/// The inputs of a domain's device tree, to write it again.
#[derive(Debug, Clone)]
pub struct DtbSpec {
    pub cpus: u32,
    pub banks: Vec<(u64, u64)>,
    pub bootargs: Option<String>,
    pub ramdisk: Option<(u64, u64)>,
    pub vuart: bool,
    pub gic_version: u32,
    pub failures: Vec<(u16, String)>,
    pub additions: Vec<DtAddition>,
    pub store: Option<crate::store::Role>,
    pub devices: Vec<crate::devices::CopiedNode>,
    /// The control device (see `GuestDtb::control`).
    pub control: Option<(u64, Option<(u64, u64)>)>,
    /// virtio-mmio transports (address, SPI).
    pub virtio: Vec<(u64, u32)>,
    /// Static shared memory (guest address, size, id).
    pub shm: Vec<(u64, u64, String)>,
    /// `/chosen/rng-seed`: a fresh one at every build and restart (none without a source).
    pub rng_seed: Option<[u8; crate::entropy::SEED_BYTES]>,
}

impl DtbSpec {
    /// The device tree it describes, for domain `domid` with these roles whose emulated
    /// devices are at `map`.
    pub fn blob(
        &self,
        domid: u16,
        (p, f): (Permissions, Functions),
        map: GuestMap,
    ) -> Result<Vec<u8>, vm_fdt::Error> {
        GuestDtb {
            domid,
            permissions: p.0,
            functions: f.0,
            cpus: self.cpus,
            ram: &self.banks,
            bootargs: self.bootargs.as_deref(),
            ramdisk: self.ramdisk,
            vuart: self.vuart,
            gic_version: self.gic_version,
            failures: &self.failures,
            additions: &self.additions,
            store: self.store.as_ref(),
            devices: &self.devices,
            map,
            control: self.control,
            virtio: &self.virtio,
            shm: &self.shm,
            rng_seed: self.rng_seed.as_ref().map(|s| &s[..]),
        }
        .build()
    }
}

/// A change to what a domain's device tree says.
#[derive(Debug, Clone)]
pub enum DtChange {
    /// Nothing: the tree is written again as it was (a restart).
    Same,
    Bootargs(String),
    /// A property added (or replaced) by the Boot Domain.
    Addition(DtAddition),
    /// The launch failure report a standby Recovery Domain reads.
    Failures(Vec<(u16, String)>),
    /// The measured launch's event log, in place of the placeholder it was built with.
    EventLog(Vec<u8>),
}

impl DtChange {
    fn apply(self, spec: &mut DtbSpec) {
        match self {
            DtChange::Same => {}
            DtChange::Bootargs(a) => spec.bootargs = Some(a),
            DtChange::Addition(a) => {
                spec.additions.retain(|b| (&b.path, &b.name) != (&a.path, &a.name));
                spec.additions.push(a);
            }
            DtChange::Failures(f) => spec.failures = f,
            DtChange::EventLog(log) => DtChange::Addition(crate::measure::addition(log)).apply(spec),
        }
    }
}

/// Why extended configuration of a domain was refused.
#[derive(Debug)]
pub enum ConfigError {
    /// It is not paused by the launch (it has run, or is gone).
    NotPaused(State),
    NoSuchVcpu,
    NoSuchCpu,
    /// The new device tree could not be written (vm-fdt's reason).
    Dtb(vm_fdt::Error),
    /// The new device tree would outgrow the room the layout left for it.
    DtbTooBig {
        size: u64,
        room: u64,
    },
    /// Its device tree lies outside its RAM.
    DtbOutsideRam,
    /// More additions, or more bytes of them, than a domain's tree may take.
    Quota,
}

/// A domain restarts (its RAM scrubbed and its images copied again, on the CPU it ran on)
/// at most this often: a guest looping on SYSTEM_RESET, or a Control domain on
/// DOMCTL_RESTART, would otherwise keep that CPU busy for the others.
pub const RESTARTS_PER_WINDOW: u32 = 5;
pub const RESTART_WINDOW_US: u64 = 10_000_000;

/// The most properties a Boot Domain may add to one domain's device tree, and their most
/// bytes in all: each addition writes the whole tree again, so both are bounded.
pub const MAX_ADDITIONS: usize = 64;
pub const MAX_ADDITION_BYTES: usize = 64 * 1024;

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::NotPaused(s) => write!(f, "not a paused domain (it is {s})"),
            ConfigError::NoSuchVcpu => f.write_str("no such vCPU"),
            ConfigError::NoSuchCpu => f.write_str("no such physical CPU online"),
            ConfigError::Dtb(e) => write!(f, "the device tree could not be written: {e}"),
            ConfigError::DtbTooBig { size, room } => {
                write!(f, "the device tree would outgrow its place ({size} bytes, room for {room})")
            }
            ConfigError::DtbOutsideRam => f.write_str("the device tree lies outside RAM"),
            ConfigError::Quota => write!(
                f,
                "over the quota of {MAX_ADDITIONS} added properties and {} KiB of them per domain",
                MAX_ADDITION_BYTES / 1024
            ),
        }
    }
}

/// Everything a domain is made of, as its build produced it.
pub struct Parts {
    pub id: u16,
    pub node: String,
    pub permissions: Permissions,
    pub functions: Functions,
    pub vttbr: u64,
    pub vcpus: Vec<Vcpu>,
    pub mmio: MmioMap,
    pub vgic: VGic,
    pub cntvoff: u64,
    pub entry: (u64, u64),
    pub ram: Ram,
    pub tables: Vec<HostMem>,
    pub config: Option<HostMem>,
    pub modules: Vec<Range>,
    pub kernel_src: Option<HostMem>,
    pub ramdisk_src: Option<HostMem>,
    pub dtb: DtbSpec,
    pub dtb_room: u64,
    pub cow: Option<Cow>,
    pub map: GuestMap,
    pub forwarded: Vec<u32>,
    /// Host MMIO ranges of the devices it is given.
    pub devices: Vec<Range>,
    pub local_tlb: bool,
    /// RAM to zero before it first runs.
    pub scrub: Pending,
    /// A Control domain's control window: guest address and the memory behind it.
    pub window: Option<(u64, HostMem)>,
}

pub struct Domain {
    pub id: u16,
    pub node: String,
    pub permissions: Permissions,
    pub functions: Functions,
    pub vttbr: u64,
    pub vcpus: Vec<Vcpu>,
    /// Emulated devices by guest address.
    pub mmio: MmioMap,
    pub uart: Mutex<Pl011>,
    pub vgic: Mutex<VGic>,
    /// Console input its virtual UART had no room for yet.
    input: Mutex<VecDeque<u8>>,
    /// CNTVOFF_EL2 of its vCPUs.
    pub cntvoff: u64,
    life: Mutex<Life>,
    /// Its state as the last transition left it, read without the lock.
    state_now: Arc<AtomicU8>,
    notices: AtomicU32,
    /// Its restarts in the current window: (window start µs, count).
    restarts: Mutex<(u64, u32)>,
    /// Where vCPU 0 starts (kernel entry, device tree).
    pub entry: (u64, u64),
    pub ram: Ram,
    /// Its stage-2 table pages.
    pub tables: Vec<HostMem>,
    /// The Boot Domain's `module,config`.
    pub config: Option<HostMem>,
    /// Its boot modules (a restart needs them present), and what it is rebuilt from: the
    /// kernel when it is its module in place (not unpacked), the ramdisk.
    pub modules: Vec<Range>,
    pub kernel_src: Option<HostMem>,
    pub ramdisk_src: Option<HostMem>,
    dtb: Mutex<DtbSpec>,
    dtb_room: u64,
    pub exits: ExitCounts,
    pub cow: Option<Cow>,
    pub map: GuestMap,
    /// Physical SPIs of its devices, forwarded to it.
    pub forwarded: Vec<u32>,
    /// Host MMIO ranges of the devices it is given.
    pub devices: Vec<Range>,
    /// All its vCPUs run on one CPU: its TLB invalidations trap and are done locally.
    pub local_tlb: AtomicBool,
    /// RAM to zero before any vCPU of it runs (after a build or a rebuild).
    pub scrub: Mutex<Pending>,
    /// A Control domain's control window (guest address, memory), which it writes the
    /// images of domains to create into.
    pub window: Option<(u64, HostMem)>,
    /// Images it was created from (a domain created at run time), freed with it.
    pub images: Mutex<Vec<HostMem>>,
    /// Its control device's argument and result registers (X1..X4, R0..R3).
    pub ctl: Mutex<[u64; 8]>,
}

impl Domain {
    pub fn new(p: Parts) -> Domain {
        let state_now = Arc::new(AtomicU8::new(State::Paused as u8));
        Domain {
            id: p.id,
            node: p.node,
            permissions: p.permissions,
            functions: p.functions,
            vttbr: p.vttbr,
            vcpus: p.vcpus,
            mmio: p.mmio,
            uart: Mutex::new(Pl011::new()),
            vgic: Mutex::new(p.vgic),
            input: Mutex::new(VecDeque::new()),
            cntvoff: p.cntvoff,
            life: Mutex::new(Life::shown_in(state_now.clone())),
            state_now,
            notices: AtomicU32::new(0),
            restarts: Mutex::new((0, 0)),
            entry: p.entry,
            ram: p.ram,
            tables: p.tables,
            config: p.config,
            modules: p.modules,
            kernel_src: p.kernel_src,
            ramdisk_src: p.ramdisk_src,
            dtb: Mutex::new(p.dtb),
            dtb_room: p.dtb_room,
            exits: ExitCounts::default(),
            cow: p.cow,
            map: p.map,
            forwarded: p.forwarded,
            devices: p.devices,
            local_tlb: AtomicBool::new(p.local_tlb),
            scrub: Mutex::new(p.scrub),
            window: p.window,
            images: Mutex::new(Vec::new()),
            ctl: Mutex::new([0; 8]),
        }
    }

    /// Its lifecycle, locked: the guard is the witness that a check and its action belong
    /// together.
    pub fn life(&self) -> MutexGuard<'_, Life> {
        self.life.lock()
    }

    /// Its state now (for a decision that does not act on it).
    pub fn state(&self) -> State {
        self.life.lock().state()
    }

    /// Its state as the last transition left it, without taking the lock (a running
    /// vCPU's check at every full exit; a transition that must reach it kicks its CPU after).
    pub fn state_now(&self) -> State {
        State::from_u8(self.state_now.load(Ordering::Acquire))
    }

    pub fn has_function(&self, bit: u32) -> bool {
        self.functions.has(bit)
    }

    /// The vCPU whose MPIDR (affinity bits) is `mpidr`.
    pub fn vcpu_by_mpidr(&self, mpidr: u64) -> Option<usize> {
        let aff = mpidr & crate::platform::MPIDR_AFF_MASK;
        (0..self.vcpus.len()).find(|&i| guest::vcpu_mpidr(i as u32) & crate::platform::MPIDR_AFF_MASK == aff)
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

    /// Interrupts vCPUs (bitmask) whose interrupt state changed, where they run on another
    /// physical CPU (the current one looks at its state before it enters the guest again).
    pub fn kick(&self, m: &dyn Machine, vcpus: u64) {
        if vcpus == 0 {
            return;
        }
        let me = m.cpu();
        for (i, v) in self.vcpus.iter().enumerate().take(64) {
            if vcpus & (1 << i) != 0 && v.pcpu() != me && v.needs_kick() {
                m.kick(v.pcpu());
            }
        }
    }

    /// Kicks every vCPU of it off its CPU (but the current one's).
    pub fn kick_all(&self, m: &dyn Machine) {
        self.kick(m, u64::MAX);
    }

    /// A guest access to its virtual UART; returns the value a read yields.
    pub fn uart_access(&self, m: &dyn Machine, offset: u64, write: Option<u32>) -> u32 {
        let (value, effect) = {
            let mut u = self.uart.lock();
            match write {
                Some(v) => (0, u.write(offset, v)),
                None => u.read(offset),
            }
        };
        match effect {
            Effect::Tx(b) => m.console_output(self.id, b),
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
        self.update_uart_irq(m);
        value
    }

    /// A byte of console input: into the virtual UART's FIFO, or held until it has room.
    pub fn deliver_input(&self, m: &dyn Machine, byte: u8) {
        let dropped = {
            let mut u = self.uart.lock();
            let mut q = self.input.lock();
            let taken = q.is_empty() && u.rx_room() > 0 && u.receive(byte);
            if !taken && q.len() < INPUT_BACKLOG {
                q.push_back(byte);
            }
            !taken && q.len() >= INPUT_BACKLOG
        };
        if dropped {
            self.notice(format_args!("console input backlog full: input byte dropped"));
        }
        self.update_uart_irq(m);
    }

    /// Console bytes held for it.
    pub fn held_input(&self) -> usize {
        self.input.lock().len()
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
    pub fn update_uart_irq(&self, m: &dyn Machine) {
        let level = self.uart.lock().irq();
        let kick = self.vgic.lock().set_level(0, crate::vgic::PRIVATE + guest::VUART_SPI, level);
        self.kick(m, kick);
    }

    /// Raises interrupt `intid` at vCPU 0 of its virtual GIC and kicks whoever must see it.
    pub fn raise(&self, m: &dyn Machine, intid: u32) {
        let kick = self.vgic.lock().raise(0, intid);
        self.kick(m, kick);
    }

    /// A stage-2 fault at `ipa` that copy-on-write sharing explains (the access is retried).
    pub fn cow_fault(&self, m: &dyn Machine, ipa: u64, write: bool, perm: bool) -> bool {
        self.cow.as_ref().is_some_and(|c| c.fault(m, &self.ram, ipa, write, perm, self.local()))
    }

    /// Its vCPUs all share one CPU.
    pub fn local(&self) -> bool {
        self.local_tlb.load(Ordering::Acquire)
    }

    /// Devices and vCPUs as new, for a restart; its console input is dropped.
    pub(super) fn reset_devices(&self, m: &dyn Machine) {
        // A device interrupt it left active (taken, never finished) would not be delivered
        // to it again: deactivated at the distributor.
        for &id in &self.forwarded {
            m.deactivate_spi(id);
        }
        let top = self.vgic.lock().limit();
        let spis = top - crate::vgic::PRIVATE;
        let mut g = if self.dtb.lock().gic_version == 2 {
            VGic::new_v2(self.vcpus.len(), spis)
        } else {
            VGic::new(self.vcpus.len(), spis)
        };
        for &id in &self.forwarded {
            g.forward(id);
        }
        *self.vgic.lock() = g;
        *self.uart.lock() = Pl011::new();
        self.input.lock().clear();
        for v in &self.vcpus {
            v.reset();
        }
    }

    /// Changes what the device tree of a domain paused by the launch says and writes it
    /// again in place, all under `life` (its guard): the domain cannot be unpaused between
    /// the check and the write. Nothing changes if the new tree does not fit.
    pub fn configure(
        &self,
        m: &dyn Machine,
        life: &MutexGuard<'_, Life>,
        change: DtChange,
    ) -> Result<(), ConfigError> {
        if life.state() != State::Paused {
            return Err(ConfigError::NotPaused(life.state()));
        }
        self.write_dtb(m, change)
    }

    /// Writes the device tree again after `change` (the domain is paused or being rebuilt).
    pub(super) fn write_dtb(&self, m: &dyn Machine, change: DtChange) -> Result<(), ConfigError> {
        let mut spec = self.dtb.lock();
        let mut new = spec.clone();
        // A restart (the tree written again as it was) gives the guest a seed it has not seen.
        if matches!(change, DtChange::Same) {
            new.rng_seed = m.rng_seed(self.id);
        }
        // The Boot Domain's additions are bounded; the event log is the hypervisor's own.
        let bounded = matches!(change, DtChange::Addition(_));
        change.apply(&mut new);
        let bytes: usize = new.additions.iter().map(|a| a.path.len() + a.name.len() + a.value.len()).sum();
        if bounded
            && (new.additions.len() > spec.additions.len().max(MAX_ADDITIONS) || bytes > MAX_ADDITION_BYTES)
        {
            return Err(ConfigError::Quota);
        }
        let blob =
            new.blob(self.id, (self.permissions, self.functions), self.map).map_err(ConfigError::Dtb)?;
        let size = blob.len() as u64;
        if size > self.dtb_room {
            return Err(ConfigError::DtbTooBig { size, room: self.dtb_room });
        }
        let Some(host) = self.ram.host(self.entry.1, size) else { return Err(ConfigError::DtbOutsideRam) };
        // Kept out of what is left to zero before it is written, under the lock an idle CPU
        // zeroes a paused domain's RAM under.
        let mut scrub = self.scrub.lock();
        scrub.keep(host);
        if !self.ram.write(m, self.entry.1, Src::Bytes(&blob)) {
            return Err(ConfigError::DtbOutsideRam);
        }
        drop(scrub);
        *spec = new;
        Ok(())
    }

    /// Counts a restart at `now_us`; false when it would be one too many in the window.
    pub fn restart_allowed(&self, now_us: u64) -> bool {
        let mut r = self.restarts.lock();
        if now_us.saturating_sub(r.0) >= RESTART_WINDOW_US || r.1 == 0 {
            *r = (now_us, 0);
        }
        if r.1 >= RESTARTS_PER_WINDOW {
            return false;
        }
        r.1 += 1;
        true
    }

    /// Where its ramdisk lies in the guest.
    pub fn ramdisk_at(&self) -> Option<(u64, u64)> {
        self.dtb.lock().ramdisk
    }

    /// What its device tree says now (for tests and diagnostics).
    pub fn dtb_spec(&self) -> DtbSpec {
        self.dtb.lock().clone()
    }
}
