//! The run-time core's one owner of everything domains share: the domains themselves, the
//! per-CPU run queues, the launch sequence, free memory and the launch materials. The arch
//! layer keeps one `System` and calls it; it calls the machine back through [`Machine`].

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use spin::Mutex;

use super::domain::Domain;
use super::machine::{HostMem, Machine};
use super::pool::Pool;
use super::ram::LoadStats;
use super::table::Domains;
use crate::launch::{Failure, Launch};
use crate::psci::Power;
use crate::sched::RunQueue;

/// INTIDs the forwarding table covers.
pub const MAX_INTID: usize = 1024;

/// A run-queue slot: domain index and vCPU index.
pub fn slot(di: usize, vi: usize) -> usize {
    (di << 16) | vi
}

/// The launch sequence and the Boot Domain's deadline.
pub(super) struct LaunchCtl {
    pub launch: Launch,
    /// When the Boot Domain's time runs out (µs of uptime).
    pub deadline: Option<u64>,
    /// The Boot Domain's time, from the start of the launch sequence (µs).
    pub boot_timeout_us: u64,
}

/// The boot modules and the host device tree (which holds the LCM) until finalization.
pub(super) struct Materials {
    pub boot: Vec<HostMem>,
    /// Kernel modules kept after finalization: domains map their pages.
    pub kept: Vec<HostMem>,
    pub host_dtb: Option<HostMem>,
    /// Finalization gave them back: the Boot Domain's reads end.
    pub freed: bool,
}

/// What the launch starts from.
pub struct Setup {
    pub domains: Vec<Domain>,
    pub cpus: usize,
    /// Free memory.
    pub pool: Pool,
    /// The host device tree, for the Boot Domain to read.
    pub lcm: Option<HostMem>,
    pub boot_modules: Vec<HostMem>,
    pub store: Option<crate::store::Plan>,
    /// The store slots' ring pages, by slot.
    pub store_rings: Vec<HostMem>,
    pub boot: Option<u16>,
    pub standby: Option<u16>,
    pub console: Option<u16>,
    /// Domains that could not be built.
    pub failures: Vec<Failure>,
    pub boot_timeout_ms: u32,
    /// Guests have a virtual GIC: device interrupts are forwarded.
    pub forward_irqs: bool,
    /// What building a domain at run time needs (`None`: domains are not created).
    pub env: Option<super::create::RunEnv>,
    /// The host device tree and RAM, for domains created at run time.
    pub run_host: super::create::RunHost,
    /// Links (their two ends and kind), in configuration order.
    pub links: Vec<([u16; 2], crate::virtio::net::Kind)>,
}

/// The run-time core.
///
/// Lock order (take them in this order, never the reverse): `creating` → the launch
/// (`launch`) → a domain's `life` → a link's ports → its device-tree spec → run queues (by CPU index) →
/// a domain-table slot → `staging` → `pool` → a domain's `images` → `materials`; the store plan is taken alone. A domain's vGIC, UART, input queue, vCPU power and saved state, its
/// RAM still to scrub (`scrub`) and its copy-on-write lock are leaves: nothing is taken while one is held.
pub struct System {
    m: Arc<dyn Machine>,
    pub domains: Domains,
    runq: Vec<Mutex<RunQueue>>,
    /// Per CPU: its queue holds several vCPUs (kept with the queue, read at every full exit).
    shared: Vec<AtomicBool>,
    pub(super) launch: Mutex<LaunchCtl>,
    pub(super) pool: Mutex<Pool>,
    pub(super) materials: Mutex<Materials>,
    pub(super) lcm: Option<HostMem>,
    /// The store connections (slots change as domains are created and destroyed), and
    /// each slot's ring page.
    pub(super) store: Option<Mutex<crate::store::Plan>>,
    pub(super) store_rings: Vec<HostMem>,
    /// Per INTID: the index + 1 of the domain whose device raises it, or 0.
    irq_owner: Vec<AtomicUsize>,
    halting: AtomicBool,
    /// Built domains may have RAM to scrub and images to copy before the launch unpauses
    /// them: idle CPUs look for it until none is left.
    pub(super) idle_work: AtomicBool,
    /// Scrubbing and copying done by restarts.
    pub(super) stats: Mutex<LoadStats>,
    /// Run-time creation: what building needs, what Control domains staged, and the
    /// lock that makes creations one at a time.
    pub(super) env: Option<super::create::RunEnv>,
    pub(super) run_host: super::create::RunHost,
    /// Guests have a virtual GIC: device interrupts are forwarded.
    forward_irqs: bool,
    pub(super) staging: Mutex<Vec<super::create::Staging>>,
    pub(super) creating: Mutex<()>,
    /// Network links between domains.
    pub(super) links: Vec<super::links::NetLink>,
}

impl System {
    /// The domains as built, each paused; nothing runs until [`System::start`].
    pub fn new(m: Arc<dyn Machine>, s: Setup) -> System {
        let launch =
            Launch::new(s.domains.iter().map(|d| d.id).collect(), s.boot, s.standby, s.console, s.failures);
        let irq_owner: Vec<AtomicUsize> = (0..MAX_INTID).map(|_| AtomicUsize::new(0)).collect();
        let mut queues: Vec<RunQueue> = (0..s.cpus).map(|_| RunQueue::new()).collect();
        for (di, d) in s.domains.iter().enumerate() {
            for (vi, v) in d.vcpus.iter().enumerate() {
                if let Some(q) = queues.get_mut(v.pcpu()) {
                    q.add(slot(di, vi));
                }
            }
            for &id in d.forwarded.iter().filter(|_| s.forward_irqs) {
                if let Some(o) = irq_owner.get(id as usize) {
                    o.store(di + 1, Ordering::Release);
                }
            }
        }
        System {
            m,
            shared: queues.iter().map(|q| AtomicBool::new(q.shared())).collect(),
            runq: queues.into_iter().map(Mutex::new).collect(),
            launch: Mutex::new(LaunchCtl {
                launch,
                deadline: None,
                boot_timeout_us: u64::from(s.boot_timeout_ms) * 1000,
            }),
            pool: Mutex::new(s.pool),
            materials: Mutex::new(Materials {
                boot: s.boot_modules,
                kept: Vec::new(),
                host_dtb: s.lcm,
                freed: false,
            }),
            lcm: s.lcm,
            store: s.store.map(Mutex::new),
            store_rings: s.store_rings,
            irq_owner,
            halting: AtomicBool::new(false),
            idle_work: AtomicBool::new(true),
            stats: Mutex::new(LoadStats::default()),
            env: s.env,
            run_host: s.run_host,
            forward_irqs: s.forward_irqs,
            staging: Mutex::new(Vec::new()),
            creating: Mutex::new(()),
            links: s.links.iter().enumerate().map(|(k, &l)| super::links::NetLink::new(k, l)).collect(),
            domains: Domains::new(s.domains),
        }
    }

    /// Starts the launch sequence: device interrupts routed, the Boot Domain (or
    /// finalization) first.
    pub fn start(&self) {
        for d in self.domains.all() {
            for &id in &d.forwarded {
                if self.irq_owner.get(id as usize).is_some_and(|o| o.load(Ordering::Acquire) != 0) {
                    self.m.route_spi(id, d.vcpus[0].pcpu());
                }
            }
        }
        let (actions, deadline) = {
            let mut l = self.launch.lock();
            let actions = l.launch.start();
            // The Boot Domain's time runs from here (the launch is measured first).
            l.deadline = l.launch.boot_domain().map(|_| self.m.now_us() + l.boot_timeout_us);
            (actions, l.deadline)
        };
        self.m.launch_deadline_changed(deadline);
        self.apply(&actions);
    }

    pub fn m(&self) -> &dyn Machine {
        &*self.m
    }

    pub fn domain(&self, domid: u16) -> Option<Arc<Domain>> {
        self.domains.find(domid)
    }

    /// A domain's position (its run-queue slots use it).
    pub fn index_of(&self, d: &Domain) -> usize {
        self.domains.index_of(d)
    }

    /// Free memory in bytes.
    pub fn free_bytes(&self) -> u64 {
        self.pool.lock().free_bytes()
    }

    /// How many CPUs have a run queue.
    pub fn queues(&self) -> usize {
        self.runq.len()
    }

    /// Physical CPU `cpu` time-slices several vCPUs.
    pub fn cpu_shared(&self, cpu: usize) -> bool {
        self.shared.get(cpu).is_some_and(|s| s.load(Ordering::Acquire))
    }

    /// The slots queued on `cpu`.
    pub fn queued(&self, cpu: usize) -> Vec<usize> {
        self.runq.get(cpu).map(|q| q.lock().slots().to_vec()).unwrap_or_default()
    }

    /// Queues `slot` on `cpu`. A CPU that becomes shared is kicked, so that the vCPU it
    /// runs learns it must share (arm its slice, yield in WFI).
    pub(super) fn enqueue(&self, cpu: usize, slot: usize) {
        let Some(q) = self.runq.get(cpu) else { return };
        let became_shared = {
            let mut q = q.lock();
            let before = q.shared();
            q.add(slot);
            self.shared[cpu].store(q.shared(), Ordering::Release);
            !before && q.shared()
        };
        if became_shared {
            self.m.kick(cpu);
        }
    }

    /// Takes `slot` off `cpu`'s queue (its domain is reclaimed: nothing runs it).
    pub(super) fn drop_queued(&self, cpu: usize, slot: usize) {
        self.dequeue(cpu, slot);
    }

    /// The device interrupts of domain `d`, in slot `i` and created at run time, are
    /// forwarded to it, routed to its vCPU 0's CPU.
    pub(super) fn own_irqs(&self, i: usize, d: &Domain) {
        if !self.forward_irqs {
            return;
        }
        for &id in &d.forwarded {
            if let Some(o) = self.irq_owner.get(id as usize) {
                o.store(i + 1, Ordering::Release);
                // Left active by an earlier owner, it would never be delivered.
                self.m.deactivate_spi(id);
                self.m.route_spi(id, d.vcpus[0].pcpu());
            }
        }
    }

    /// No interrupt is forwarded to the domain in slot `i` any more.
    pub(super) fn forget_irqs(&self, i: usize) {
        for o in &self.irq_owner {
            let _ = o.compare_exchange(i + 1, 0, Ordering::AcqRel, Ordering::Acquire);
        }
    }

    fn dequeue(&self, cpu: usize, slot: usize) {
        if let Some(q) = self.runq.get(cpu) {
            let mut q = q.lock();
            q.remove(slot);
            self.shared[cpu].store(q.shared(), Ordering::Release);
        }
    }

    /// Moves vCPU `vi` of domain `d` (paused by the launch: the caller holds its `life`)
    /// from its CPU to `cpu`.
    pub(super) fn move_vcpu(&self, d: &Domain, vi: usize, cpu: usize) {
        let s = slot(self.index_of(d), vi);
        let v = &d.vcpus[vi];
        let old = v.pcpu();
        if old == cpu {
            return;
        }
        // Both queues locked, in CPU order: the move is seen whole.
        let (a, b) = (old.min(cpu), old.max(cpu));
        let mut qa = self.runq[a].lock();
        let mut qb = self.runq[b].lock();
        let (from, to) = if old == a { (&mut qa, &mut qb) } else { (&mut qb, &mut qa) };
        from.remove(s);
        to.add(s);
        let became_shared = to.len() == 2;
        v.set_pcpu(cpu);
        self.shared[a].store(qa.shared(), Ordering::Release);
        self.shared[b].store(qb.shared(), Ordering::Release);
        drop((qa, qb));
        let same = d.vcpus.iter().all(|w| w.pcpu() == cpu);
        d.local_tlb.store(same, Ordering::Release);
        if became_shared {
            self.m.kick(cpu);
        }
    }

    /// The next vCPU CPU `me` runs (domain index, vCPU index), round robin among those due
    /// at physical count `now`; vCPUs of domains that are gone leave the queue first.
    pub fn pick(&self, me: usize, now: u64) -> Option<(usize, usize)> {
        let q = self.runq.get(me)?;
        let gone: Vec<usize> = q
            .lock()
            .slots()
            .iter()
            .copied()
            .filter(|&s| self.domains.get(s >> 16).is_none_or(|d| !d.state().alive()))
            .collect();
        for s in gone {
            self.sweep(me, s);
        }
        let s = q.lock().pick(|s| self.due(s >> 16, s & 0xffff, now))?;
        Some((s >> 16, s & 0xffff))
    }

    /// Takes a slot of a domain that stopped off the queue (checked again under the
    /// queue's lock: a restart may have put it back meanwhile).
    pub(super) fn sweep(&self, me: usize, s: usize) {
        let Some(d) = self.domains.get(s >> 16) else { return self.dequeue(me, s) };
        let mut q = self.runq[me].lock();
        if d.state().alive() {
            return;
        }
        q.remove(s);
        self.shared[me].store(q.shared(), Ordering::Release);
        drop(q);
        *d.vcpus[s & 0xffff].saved.lock() = None;
    }

    /// vCPU `vi` of domain `di` should run now: it is starting, or it was preempted, or it
    /// waits in WFI and an interrupt or its timer is due.
    pub fn due(&self, di: usize, vi: usize, now: u64) -> bool {
        let Some(d) = self.domains.get(di) else { return false };
        if !d.state().runnable() {
            return false;
        }
        let Some(v) = d.vcpus.get(vi) else { return false };
        match *v.power.lock() {
            Power::Pending { .. } => true,
            Power::Off => false,
            Power::On => {
                let saved = v.saved.lock();
                let Some(s) = saved.as_ref() else { return false };
                !v.blocked.load(Ordering::Acquire)
                    || s.ctx.timer_due(now, d.cntvoff)
                    || d.vgic.lock().has_pending(vi)
            }
        }
    }

    /// A physical interrupt from a device a domain owns: raised (level) at the owner's
    /// virtual GIC, HW-linked, so that the guest's deactivation deactivates it. False when
    /// no domain owns it.
    pub fn forward_irq(&self, intid: u32) -> bool {
        let owner = self.irq_owner.get(intid as usize).map_or(0, |o| o.load(Ordering::Acquire));
        let Some(d) = self.domains.get(owner.wrapping_sub(1)) else { return false };
        if d.state() == super::life::State::Reclaimed {
            // Its owner is gone; the slot is not reused yet.
            return false;
        }
        let kick = d.vgic.lock().set_level(0, intid, true);
        d.kick(self.m(), kick);
        true
    }

    /// A byte of console input for domain `domid`.
    pub fn deliver_input(&self, domid: u16, byte: u8) {
        if let Some(d) = self.domain(domid) {
            d.deliver_input(self.m(), byte);
        }
    }

    /// The Boot Domain's deadline, while one runs.
    pub fn launch_deadline(&self) -> Option<u64> {
        self.launch.lock().deadline
    }

    /// Called on hypervisor timer interrupts: a Boot Domain past its time fails the launch,
    /// which goes on without it.
    pub fn check_launch_timeout(&self, now_us: u64) {
        let actions = {
            let mut l = self.launch.lock();
            match l.deadline {
                Some(d) if now_us >= d => {
                    l.deadline = None;
                    l.launch.boot_failed("the Boot Domain did not signal done in time")
                }
                _ => return,
            }
        };
        self.m.launch_deadline_changed(None);
        if !actions.is_empty() {
            log::error!("launch: the Boot Domain did not signal done in time: finalizing without it");
            self.apply(&actions);
        }
    }

    /// No domain is alive any more: the machine powers off (once).
    pub(super) fn power_off_if_all_stopped(&self) {
        if self.domains.all().iter().any(|d| d.state().alive()) || self.halting.swap(true, Ordering::AcqRel) {
            return;
        }
        log::info!("all domains have stopped");
        self.m.power_off("all domains have stopped");
    }
}
