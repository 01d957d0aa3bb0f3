//! A recording fake of the machine for host tests: a byte-vector RAM at a fixed host
//! address, and a log of every machine operation the core asked for; and small systems of
//! test domains on it (for host tests and the fuzz targets).
#![allow(unsafe_code)]

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use spin::Mutex;

use super::cow::Cow;
use super::domain::{Domain, DtbSpec, Parts};
use super::exits::Outcome;
use super::machine::{ConsoleEvent, HostMem, Machine};
use super::pool::Pool;
use super::ram::Ram;
use super::system::{Setup, System};
use super::vcpu::{GuestRegs, Vcpu};
use crate::config::{Functions, Permissions};
use crate::frames::Frames;
use crate::hypercall::Call;
use crate::memmap::Range;
use crate::trap::Exit;

/// Where the fake RAM starts (host address).
pub const BASE: u64 = 0x8000_0000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Kick(usize),
    RouteSpi(u32, usize),
    DeactivateSpi(u32),
    PowerOff(String),
    Console(ConsoleEvent),
    Deadline(Option<u64>),
    Replace { ipa: u64, local: bool },
    FlushVmid(u16),
}

type Hook = Box<dyn FnMut(&mut [u8], HostMem) + Send>;

pub struct Fake {
    ram: Mutex<Vec<u8>>,
    pub cpu: AtomicUsize,
    pub cpus: usize,
    pub now: AtomicU64,
    entropy: Mutex<Option<crate::entropy::Pool>>,
    pub ops: Mutex<Vec<Op>>,
    /// What domains wrote to their UART, by domain.
    pub output: Mutex<Vec<(u16, u8)>>,
    /// Reads of memory, in order.
    pub reads: Mutex<Vec<HostMem>>,
    /// Runs after every read with the whole RAM: a racing vCPU changing memory.
    pub after_read: Mutex<Option<Hook>>,
}

/// Memory of the fake machine.
pub fn mem(start: u64, len: u64) -> HostMem {
    assert!(start >= BASE);
    // SAFETY: every address from BASE on is backed by the fake's byte vector (checked at
    // each access); nothing else uses it.
    unsafe { HostMem::new(start, len) }
}

impl Fake {
    /// A fake with `size` bytes of RAM at [`BASE`] and `cpus` CPUs.
    pub fn new(size: usize, cpus: usize) -> Arc<Fake> {
        Arc::new(Fake {
            ram: Mutex::new(vec![0; size]),
            cpu: AtomicUsize::new(0),
            cpus,
            now: AtomicU64::new(0),
            entropy: Mutex::new(None),
            ops: Mutex::new(Vec::new()),
            output: Mutex::new(Vec::new()),
            reads: Mutex::new(Vec::new()),
            after_read: Mutex::new(None),
        })
    }

    fn range(&self, m: HostMem) -> core::ops::Range<usize> {
        let a = (m.start() - BASE) as usize;
        let len = self.ram.lock().len();
        assert!(a + m.len() as usize <= len, "fake RAM access out of range: {m:?}");
        a..a + m.len() as usize
    }

    pub fn peek(&self, pa: u64, len: usize) -> Vec<u8> {
        let a = (pa - BASE) as usize;
        self.ram.lock()[a..a + len].to_vec()
    }

    pub fn poke(&self, pa: u64, data: &[u8]) {
        let a = (pa - BASE) as usize;
        self.ram.lock()[a..a + data.len()].copy_from_slice(data);
    }

    pub fn poke_u64(&self, pa: u64, v: u64) {
        self.poke(pa, &v.to_le_bytes());
    }

    pub fn ops(&self) -> Vec<Op> {
        self.ops.lock().clone()
    }

    pub fn power_offs(&self) -> usize {
        self.ops.lock().iter().filter(|o| matches!(o, Op::PowerOff(_))).count()
    }

    pub fn clear_ops(&self) {
        self.ops.lock().clear();
    }

    pub fn output_of(&self, domid: u16) -> String {
        self.output.lock().iter().filter(|o| o.0 == domid).map(|o| o.1 as char).collect()
    }
}

impl Machine for Fake {
    fn cpu(&self) -> usize {
        self.cpu.load(Ordering::Relaxed)
    }
    fn cpu_online(&self, cpu: usize) -> bool {
        cpu < self.cpus
    }
    fn kick(&self, cpu: usize) {
        self.ops.lock().push(Op::Kick(cpu));
    }
    fn route_spi(&self, intid: u32, cpu: usize) {
        self.ops.lock().push(Op::RouteSpi(intid, cpu));
    }
    fn deactivate_spi(&self, intid: u32) {
        self.ops.lock().push(Op::DeactivateSpi(intid));
    }
    fn now_us(&self) -> u64 {
        self.now.load(Ordering::Relaxed)
    }
    /// Seeds from a pool keyed by fixed bytes.
    fn rng_seed(&self, domid: u16) -> Option<[u8; crate::entropy::SEED_BYTES]> {
        let mut p = self.entropy.lock();
        Some(p.get_or_insert_with(|| crate::entropy::Pool::new(b"fake", &[]).unwrap()).seed(domid, 0))
    }
    /// Waiting takes time: each turn is one microsecond.
    fn relax(&self) {
        self.now.fetch_add(1, Ordering::Relaxed);
    }
    fn counter(&self) -> u64 {
        self.now.load(Ordering::Relaxed) * 62
    }
    fn power_off(&self, why: &str) {
        self.ops.lock().push(Op::PowerOff(why.into()));
    }
    fn console_output(&self, domid: u16, byte: u8) {
        self.output.lock().push((domid, byte));
    }
    fn console_event(&self, e: ConsoleEvent) {
        self.ops.lock().push(Op::Console(e));
    }
    fn launch_deadline_changed(&self, deadline_us: Option<u64>) {
        self.ops.lock().push(Op::Deadline(deadline_us));
    }
    fn read(&self, src: HostMem, buf: &mut [u8]) {
        let r = self.range(src);
        buf.copy_from_slice(&self.ram.lock()[r.start..r.start + buf.len()]);
        self.reads.lock().push(src);
        if let Some(h) = self.after_read.lock().as_mut() {
            h(&mut self.ram.lock(), src);
        }
    }
    fn write(&self, dst: HostMem, data: &[u8]) {
        let r = self.range(dst);
        self.ram.lock()[r.start..r.start + data.len()].copy_from_slice(data);
    }
    fn zero(&self, dst: HostMem) {
        let r = self.range(dst);
        self.ram.lock()[r].fill(0);
    }
    fn copy(&self, dst: HostMem, src: HostMem) {
        let n = dst.len().min(src.len()) as usize;
        let (d, s) = (self.range(dst), self.range(src));
        self.ram.lock().copy_within(s.start..s.start + n, d.start);
    }
    fn with_slices(&self, src: HostMem, dst: HostMem, f: &mut dyn FnMut(&[u8], &mut [u8])) {
        let (s, d) = (self.range(src), self.range(dst));
        assert!(s.end <= d.start || d.end <= s.start, "overlapping slices");
        let mut ram = self.ram.lock();
        let src = ram[s].to_vec();
        f(&src, &mut ram[d]);
    }
    fn read_entry(&self, entry: HostMem) -> u64 {
        let r = self.range(entry);
        u64::from_le_bytes(self.ram.lock()[r.start..r.start + 8].try_into().unwrap())
    }
    fn replace_entry(&self, entry: HostMem, new: u64, ipa: u64, local: bool) {
        let r = self.range(entry);
        self.ram.lock()[r.start..r.start + 8].copy_from_slice(&new.to_le_bytes());
        self.ops.lock().push(Op::Replace { ipa, local });
    }

    fn flush_vmid(&self, vmid: u16) {
        self.ops.lock().push(Op::FlushVmid(vmid));
    }
}

pub const MIB: u64 = 1 << 20;
/// Each test domain's RAM.
pub const DOM_RAM: u64 = 256 * 1024;
pub const GUEST_RAM: u64 = 0x4000_0000;
/// Guest address of the device tree in every test domain.
pub const DTB_AT: u64 = GUEST_RAM + 0x3_0000;
/// The shared kernel module (64 KiB) and the LCM (4 KiB) in fake RAM.
pub const MODULE: u64 = BASE + 12 * DOM_RAM;
pub const MODULE_LEN: u64 = 0x1_0000;
pub const LCM: u64 = MODULE + MODULE_LEN;
/// Stage-2 level-3 table pages for copy-on-write domains.
pub const TABLES: u64 = LCM + 0x1000;
/// Bytes of fake RAM.
pub const FAKE_RAM: u64 = 4 * MIB;

/// Host address of domain `id`'s 1 MiB of RAM.
pub fn ram_of(id: u16) -> u64 {
    BASE + u64::from(id % 12) * DOM_RAM
}

/// A domain with 1 MiB of RAM at guest 0x4000_0000, vCPUs on `pcpus`, its kernel the
/// shared module (copied at build; `cow`: its first 16 KiB mapped from the module).
pub fn domain(fake: &Fake, id: u16, pcpus: &[usize], perms: u32, funcs: u32, cow: bool) -> Domain {
    Domain::new(parts(fake, id, pcpus, perms, funcs, cow))
}

/// What [`domain`] is built from, for a test to change first.
pub fn parts(fake: &Fake, id: u16, pcpus: &[usize], perms: u32, funcs: u32, cow: bool) -> Parts {
    let ram = Ram { chunks: vec![(mem(ram_of(id), DOM_RAM), GUEST_RAM)], owned: true };
    let cow = cow.then(|| {
        let table = TABLES + u64::from(id) * 4096;
        for p in 0..4u64 {
            // Read-only page descriptors of the module's pages (valid, page, AF, S2AP 01).
            fake.poke_u64(table + p * 8, (MODULE + p * 4096) | 0x443);
        }
        Cow::new(
            Range { start: GUEST_RAM, end: GUEST_RAM + 0x4000 },
            mem(MODULE, 0x4000),
            vec![mem(table, 4096)],
            0x4c3,
        )
    });
    Parts {
        id,
        node: alloc::format!("/chosen/hypervisor/dom{id}"),
        permissions: Permissions(perms),
        functions: Functions(funcs),
        vttbr: 0,
        vcpus: pcpus.iter().map(|&p| Vcpu::new(p)).collect(),
        mmio: {
            let mut m = crate::mmio::MmioMap::new();
            let v = crate::guest::GuestMap::XEN.vuart;
            let _ = m.add(Range { start: v, end: v + crate::guest::VUART_SIZE }, crate::mmio::Device::Uart);
            let g = crate::guest::GuestMap::XEN;
            let gicr = g.gicr + crate::vgic::GICR_STRIDE * pcpus.len() as u64;
            let _ = m.add(
                Range { start: g.gicd, end: g.gicd + crate::vgic::GICD_SIZE },
                crate::mmio::Device::GicDist,
            );
            let _ = m.add(Range { start: g.gicr, end: gicr }, crate::mmio::Device::GicRedist);
            let c = crate::guest::CONTROL_REGS;
            let _ = m.add(
                Range { start: c, end: c + crate::guest::CONTROL_REGS_SIZE },
                crate::mmio::Device::Control,
            );
            m
        },
        vgic: crate::vgic::VGic::new(pcpus.len(), 32),
        cntvoff: 0,
        entry: (GUEST_RAM, DTB_AT),
        ram,
        tables: vec![],
        config: None,
        modules: vec![Range { start: MODULE, end: MODULE + MODULE_LEN }],
        kernel_src: Some(mem(MODULE, MODULE_LEN)),
        ramdisk_src: None,
        dtb: DtbSpec {
            cpus: pcpus.len() as u32,
            banks: vec![(GUEST_RAM, DOM_RAM)],
            bootargs: None,
            ramdisk: None,
            vuart: true,
            gic_version: 3,
            failures: vec![],
            additions: vec![],
            store: None,
            devices: vec![],
            control: Some((crate::guest::CONTROL_REGS, None)),
            virtio: vec![],
            shm: vec![],
            rng_seed: None,
        },
        dtb_room: 0x8000,
        cow,
        map: crate::guest::GuestMap::XEN,
        forwarded: vec![],
        devices: vec![],
        local_tlb: pcpus.windows(2).all(|w| w[0] == w[1]),
        scrub: Default::default(),
        window: None,
    }
}

/// A fake machine and the system running on it.
pub struct Sys {
    pub fake: Arc<Fake>,
    pub sys: System,
    /// The initial domains, as the table held them at the start.
    initial: Vec<Arc<Domain>>,
}

/// A system of `domains` (built by `make`), with a Boot Domain and standby Recovery Domain
/// when named; the launch not started yet.
pub fn system(make: impl FnOnce(&Fake) -> Vec<Domain>, boot: Option<u16>, standby: Option<u16>) -> Sys {
    system_with(make, (boot, standby), Vec::new())
}

/// As [`system`], with domains that failed to build (a failed launch); the store
/// connections follow from the domains' functions.
pub fn system_with(
    make: impl FnOnce(&Fake) -> Vec<Domain>,
    (boot, standby): (Option<u16>, Option<u16>),
    failures: Vec<crate::launch::Failure>,
) -> Sys {
    system_free(make, (boot, standby), failures, (0, None))
}

/// As [`system_with`], with `extra` bytes of free memory after the fixed layout and, with
/// `env`, domain creation at run time.
pub fn system_free(
    make: impl FnOnce(&Fake) -> Vec<Domain>,
    (boot, standby): (Option<u16>, Option<u16>),
    failures: Vec<crate::launch::Failure>,
    (extra, env): (u64, Option<super::create::RunEnv>),
) -> Sys {
    system_run(make, (boot, standby), failures, (extra, env, Default::default()))
}

/// As [`system_free`], with the host device tree and RAM domains created at run time see.
pub fn system_run(
    make: impl FnOnce(&Fake) -> Vec<Domain>,
    (boot, standby): (Option<u16>, Option<u16>),
    failures: Vec<crate::launch::Failure>,
    (extra, env, run_host): (u64, Option<super::create::RunEnv>, super::create::RunHost),
) -> Sys {
    let fake = Fake::new((FAKE_RAM + extra) as usize, 4);
    let pattern: Vec<u8> = (0..MODULE_LEN).map(|i| (i % 251) as u8 + 1).collect();
    fake.poke(MODULE, &pattern);
    fake.poke(LCM, b"\xd0\x0d\xfe\xedLCM");
    let domains = make(&fake);
    // All of the fake RAM is handed out: domains give theirs back when reclaimed.
    let mut frames = Frames::new();
    frames.add(Range { start: BASE, end: BASE + FAKE_RAM });
    assert_eq!(frames.alloc(FAKE_RAM), Some(BASE));
    if extra > 0 {
        frames.add(Range { start: BASE + FAKE_RAM, end: BASE + FAKE_RAM + extra });
    }
    // SAFETY: the fake's frames are its byte vector, which nothing else uses.
    let mut pool = unsafe { Pool::new(frames) };
    let ids: Vec<(u16, u32)> = domains.iter().map(|d| (d.id, d.functions.0)).collect();
    let store = crate::store::Plan::new(&ids);
    // Ring pages for the store's slots, when there is free memory for them.
    let store_rings: Vec<HostMem> = match &store {
        Some(p) if extra > 0 => p.slots.iter().filter_map(|_| pool.alloc(4096)).collect(),
        _ => Vec::new(),
    };
    let setup = Setup {
        store,
        store_rings,
        domains,
        cpus: 4,
        pool,
        lcm: Some(mem(LCM, 4096)),
        boot_modules: vec![mem(MODULE, MODULE_LEN)],
        boot,
        standby,
        console: None,
        failures,
        boot_timeout_ms: 1000,
        forward_irqs: true,
        env,
        run_host,
        links: Vec::new(),
    };
    let sys = System::new(fake.clone(), setup);
    let initial = sys.domains.all();
    Sys { fake, sys, initial }
}

impl Sys {
    pub fn d(&self, id: u16) -> &Domain {
        self.initial.iter().find(|d| d.id == id).unwrap()
    }

    pub fn call(&self, caller: u16, call: Call) -> i64 {
        self.sys.hypercall(self.d(caller), call)[0] as i64
    }

    /// vCPU `vi` of `id` makes an HVC with x0..x3.
    pub fn hvc(&self, id: u16, vi: usize, x: [u64; 4]) -> (Outcome, GuestRegs) {
        let mut regs = GuestRegs::default();
        regs.x[..4].copy_from_slice(&x);
        let o = self.sys.handle_exit(self.d(id), vi, Exit::Hvc { imm: 0 }, &mut regs, false);
        (o, regs)
    }

    /// Runs vCPU 0 of `id` (the scheduler's enter and start).
    pub fn enter(&self, id: u16) {
        let d = self.d(id);
        assert!(self.sys.enter(d), "DOM{id} may run");
        while !self.sys.ready_to_run(d) {}
        let _ = super::vcpu::take_start(&mut d.vcpus[0].power.lock());
    }
}

pub const SYSTEM_OFF: u64 = 0x8400_0008;
pub const SYSTEM_RESET: u64 = 0x8400_0009;
