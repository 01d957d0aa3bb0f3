//! Domains starting, stopping, being destroyed, reclaimed and restarted, and the launch
//! sequence's actions carried out. Every change goes through the domain's one transition
//! function under its `life` lock.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::Ordering;

use log::{error, info, warn};

use super::domain::{Domain, DtChange};
use super::exits::End;
use super::life::{Event, FollowUp, Refused, State, StopReason};
use super::machine::ConsoleEvent;
use super::machine::HostMem;
use super::ram::Src;
use super::system::{Materials, System, slot};
use crate::launch::Action;
use crate::memmap::Range;
use crate::psci::Power;

/// Why a domain could not be restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartError {
    /// Its state does not allow it (running, destroyed, being rebuilt, ...).
    State(Refused),
    /// Its kernel was unpacked at build time and is gone.
    KernelUnpacked,
    /// Its boot modules were freed at finalization.
    ModulesFreed,
    /// It restarted too often lately.
    TooFrequent,
}

impl fmt::Display for RestartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestartError::State(Refused::Illegal { from: State::Running, .. }) => {
                f.write_str("only a stopped or paused domain restarts")
            }
            RestartError::State(Refused::Illegal { from: State::Reclaimed | State::Destroying, .. }) => {
                f.write_str("it was destroyed and its memory reclaimed")
            }
            RestartError::State(r) => write!(f, "{r}"),
            RestartError::KernelUnpacked => f.write_str("its kernel was unpacked at build and is gone"),
            RestartError::ModulesFreed => f.write_str("its boot modules were freed at finalization"),
            RestartError::TooFrequent => write!(
                f,
                "it restarted {} times in the last {} s already",
                super::domain::RESTARTS_PER_WINDOW,
                super::domain::RESTART_WINDOW_US / 1_000_000
            ),
        }
    }
}

impl System {
    /// vCPU `vi` of `d` is about to run on this CPU: only while its domain runs.
    pub fn enter(&self, d: &Domain) -> bool {
        d.life().enter()
    }

    /// Zeroes what is left of `d`'s RAM to scrub, for at most one time slice: true when
    /// nothing is left and a vCPU of it may run. Called on the CPU about to run it, once
    /// `enter` let it, so that no CPU waits for another domain's RAM to be zeroed, and a CPU
    /// shared with other vCPUs gives them their turns in between.
    pub fn ready_to_run(&self, d: &Domain) -> bool {
        let mut s = d.scrub.lock();
        if s.done() {
            return true;
        }
        self.step_pending(d, &mut s)
    }

    /// One time slice of `d`'s RAM scrubbing and image copies, and a line when they end.
    fn step_pending(&self, d: &Domain, s: &mut super::ram::Pending) -> bool {
        let m = self.m();
        if !s.step(m, crate::sched::SLICE_US) {
            return false;
        }
        info!(
            "DOM{}: {} MiB of RAM scrubbed and {} KiB of images copied before it runs, in {} us (the last of it on CPU {})",
            d.id,
            s.bytes >> 20,
            s.copied >> 10,
            s.us,
            m.cpu()
        );
        true
    }

    /// CPU `cpu` has nothing to run: one time slice of the scrubbing and copies of a
    /// domain that is built and paused, before the launch unpauses it: one placed on this
    /// CPU (its first vCPU's) first, else any other whose work no CPU is doing (its own
    /// CPU may be measuring the launch). True when it did some.
    pub fn prepare_idle(&self, cpu: usize) -> bool {
        if !self.idle_work.load(Ordering::Acquire) {
            return false;
        }
        let mut busy = false;
        let all = self.domains.all();
        let (mine, others): (Vec<&Arc<Domain>>, Vec<&Arc<Domain>>) =
            all.iter().partition(|d| d.vcpus.first().is_some_and(|v| v.pcpu() == cpu));
        for d in mine.into_iter().chain(others) {
            if d.state() != State::Paused {
                continue;
            }
            // A reclaim empties `scrub` under its lock before the RAM goes: a domain
            // destroyed after the state was read has nothing left here.
            let Some(mut s) = d.scrub.try_lock() else {
                busy = true;
                continue;
            };
            if s.done() {
                continue;
            }
            self.step_pending(d, &mut s);
            return true;
        }
        // The launch's work is done (domains created later scrub before they run).
        if !busy {
            self.idle_work.store(false, Ordering::Release);
        }
        false
    }

    /// vCPU `vi` of `d` left its CPU this way: the last one out of a domain being destroyed
    /// or reset reclaims or rebuilds it.
    pub fn leave(&self, d: &Domain, vi: usize, end: End) {
        let follow = d.life().leave();
        if end == End::DomainStopped {
            self.sweep(d.vcpus[vi].pcpu(), slot(self.index_of(d), vi));
        }
        self.follow_up(d, follow);
    }

    fn follow_up(&self, d: &Domain, follow: FollowUp) {
        match follow {
            FollowUp::None => {}
            FollowUp::Reclaim => self.reclaim(d),
            FollowUp::Restart => match self.rebuild(d) {
                Ok(()) => info!("DOM{}: restarted (SYSTEM_RESET)", d.id),
                Err(e) => {
                    warn!("DOM{}: not restarted after SYSTEM_RESET: {e}", d.id);
                    let _ = d.life().apply(Event::Stop(StopReason::SystemReset));
                    self.power_off_if_all_stopped();
                }
            },
        }
    }

    /// Stops `d` (it stopped itself or faulted): its other vCPUs are kicked out; the launch
    /// is told; the machine powers off after the last domain.
    pub fn stop(&self, d: &Domain, why: StopReason) {
        if d.life().apply(Event::Stop(why)).is_err() {
            return;
        }
        self.stopped(d, why);
    }

    /// Everything that follows a domain leaving the running states.
    fn stopped(&self, d: &Domain, why: StopReason) {
        let actions = self.launch.lock().launch.stopped(d.id, &alloc::format!("{why}"), why.crashed());
        self.m().console_event(ConsoleEvent::Stopped(d.id));
        let cow = d.cow.as_ref().map_or(0, |c| c.copied.load(core::sync::atomic::Ordering::Relaxed));
        info!("DOM{}: stopped ({why}); {}; {cow} shared kernel page(s) copied on write", d.id, d.exits);
        d.kick_all(self.m());
        self.apply(&actions);
        let follow = d.life().settle();
        self.follow_up(d, follow);
        self.power_off_if_all_stopped();
    }

    /// PSCI SYSTEM_RESET: `d` is rebuilt once its vCPUs are off their CPUs.
    /// A SYSTEM_RESET racing another vCPU's finds the domain no longer running: it changes
    /// nothing and uses up no restart of the domain's allowance.
    pub fn reset(&self, d: &Domain) {
        let now = self.m().now_us();
        let reset = {
            let mut life = d.life();
            if life.state() != State::Running {
                return;
            }
            d.restart_allowed(now).then(|| life.apply(Event::Reset).is_ok())
        };
        match reset {
            None => self.stop(d, StopReason::ResetLoop),
            Some(true) => self.stopped(d, StopReason::SystemReset),
            Some(false) => {}
        }
    }

    /// Destroys `d` for good (`why`: by a Control domain, or reclaimed by the launch): its
    /// memory is scrubbed and given back once its vCPUs are off their CPUs.
    /// A Control domain destroys a running, paused (by Control) or stopped domain.
    pub fn destroy(&self, d: &Domain, why: StopReason) -> Result<(), Refused> {
        let was = {
            let mut life = d.life();
            let was = life.state();
            if matches!(why, StopReason::Destroyed { .. })
                && !matches!(was, State::Running | State::CtlPaused | State::Stopped)
            {
                return Err(Refused::Illegal { from: was, event: Event::Destroy });
            }
            life.apply(Event::Destroy)?;
            was
        };
        if was == State::Stopped {
            // Already stopped: nothing else changes but its memory.
            info!("DOM{}: {why}", d.id);
            let follow = d.life().settle();
            self.follow_up(d, follow);
        } else {
            self.stopped(d, why);
        }
        Ok(())
    }

    /// Scrubs and gives back `d`'s memory (it is `Reclaimed`: none of its vCPUs runs).
    fn reclaim(&self, d: &Domain) {
        for &id in &d.forwarded {
            self.m().deactivate_spi(id);
        }
        let (returned, free) = self.reclaim_memory(d);
        info!(
            "launch: DOM{} reclaimed: memory scrubbed, {} KiB returned; {} MiB free",
            d.id,
            returned >> 10,
            free >> 20
        );
    }

    /// Its RAM scrubbed and, with its tables, control window, created-from images and
    /// anything it staged, given back. Returns the bytes returned and the bytes free.
    pub(super) fn reclaim_memory(&self, d: &Domain) -> (u64, u64) {
        let m = self.m();
        // Nothing more is scrubbed or copied into it (an idle CPU may be doing so for a
        // paused domain).
        *d.scrub.lock() = super::ram::Pending::default();
        let staged = self.unstage(d.id);
        self.reset_link_ports(d.id);
        self.store_detach(d.id, true);
        let mut pool = self.pool.lock();
        let before = pool.free_bytes();
        for &(mem, _) in &d.ram.chunks {
            m.zero(mem);
            if d.ram.owned {
                pool.free(mem);
            }
        }
        for &t in &d.tables {
            pool.free(t);
        }
        if let Some((_, w)) = d.window {
            m.zero(w);
            pool.free(w);
        }
        for mem in core::mem::take(&mut *d.images.lock()) {
            pool.free(mem);
        }
        for p in staged.iter().flatten().flatten() {
            pool.free(p.pages);
        }
        let free = pool.free_bytes();
        (free - before, free)
    }

    /// Builds a stopped (not destroyed) or Control-paused domain again in its own memory
    /// from its boot modules, and starts it.
    pub fn restart(&self, d: &Domain) -> Result<(), RestartError> {
        let from = d.state();
        if !matches!(from, State::Stopped | State::CtlPaused) {
            return Err(RestartError::State(Refused::Illegal { from, event: Event::BeginRestart }));
        }
        self.check_restartable(d)?;
        if !d.restart_allowed(self.m().now_us()) {
            return Err(RestartError::TooFrequent);
        }
        d.life().apply(Event::BeginRestart).map_err(RestartError::State)?;
        self.rebuild(d)
    }

    fn check_restartable(&self, d: &Domain) -> Result<(), RestartError> {
        let images = d.images.lock();
        let mats = self.materials.lock();
        Self::restartable(d, &images, &mats)
    }

    /// Its kernel is a module it can be built from again, and its modules are still there
    /// (boot modules, kept kernel modules, or the images it was created from).
    fn restartable(d: &Domain, images: &[HostMem], mats: &Materials) -> Result<(), RestartError> {
        if d.kernel_src.is_none() {
            return Err(RestartError::KernelUnpacked);
        }
        let present = |m: &Range| {
            mats.boot
                .iter()
                .chain(mats.kept.iter())
                .chain(images.iter())
                .any(|k| k.at(m.start, m.size()).is_some())
        };
        if !d.modules.iter().all(present) {
            return Err(RestartError::ModulesFreed);
        }
        Ok(())
    }

    /// Rebuilds `d`, which is `Restarting`, and starts it.
    fn rebuild(&self, d: &Domain) -> Result<(), RestartError> {
        let m = self.m();
        let shared = d.cow.as_ref().map_or(0, |c| c.ipa.size());
        let (kernel, dtb_at) = d.entry;
        let mut images = Vec::new();
        if let Some(k) = d.kernel_src.and_then(|k| k.sub(shared, k.len() - shared)) {
            images.push((kernel + shared, Src::Mem(k)));
        }
        if let (Some(r), Some((at, _))) = (d.ramdisk_src, d.ramdisk_at()) {
            images.push((at, Src::Mem(r)));
        }
        // Its modules are copied, and its RAM zeroed, by the CPU that runs it, before it
        // runs (`ready_to_run`), a slice at a time. Checked, and those copies set up, under
        // `materials`: finalization, which makes the copies pending from boot modules
        // before it frees them, sees these, or this sees the modules gone.
        let stats = {
            let held = d.images.lock();
            let mats = self.materials.lock();
            if let Err(e) = Self::restartable(d, &held, &mats) {
                drop((mats, held));
                let _ = d.life().apply(Event::Stop(StopReason::SystemReset));
                return Err(e);
            }
            let (stats, scrub) = d.ram.load_images(m, &images, (kernel, shared), true);
            *d.scrub.lock() = scrub;
            stats
        };
        {
            let mut s = self.stats.lock();
            s.copied += stats.copied;
            s.copy_us += stats.copy_us;
        }
        if let Some(c) = &d.cow {
            c.restore_private(m, &d.ram);
        }
        // The device tree as it was (it is not scrubbed: `write_dtb` keeps it).
        if let Err(e) = d.write_dtb(m, DtChange::Same) {
            warn!("DOM{}: device tree not written again: {e}", d.id);
        }
        d.reset_devices(m);
        self.reset_link_ports(d.id);
        let was_stopped = d.life().stop_reason().is_some();
        let _ = d.life().apply(Event::EndRestart);
        if was_stopped {
            self.launch.lock().launch.restarted(d.id);
            m.console_event(ConsoleEvent::Restarted(d.id));
        }
        let di = self.index_of(d);
        for (vi, v) in d.vcpus.iter().enumerate() {
            self.enqueue(v.pcpu(), slot(di, vi));
        }
        *d.vcpus[0].power.lock() = Power::Pending { entry: kernel, context: dtb_at };
        m.kick(d.vcpus[0].pcpu());
        Ok(())
    }

    /// The measured launch's event log, into the device tree of each domain that verifies
    /// the launch (built with a placeholder of the same size), before any domain runs. A
    /// domain whose tree does not take it is reclaimed: none runs with a log that is not
    /// the launch's.
    pub fn give_event_log(&self, log: &[u8]) {
        for d in self.domains.all().iter() {
            if !crate::measure::verifies(d.permissions, d.functions) {
                continue;
            }
            let life = d.life();
            let r = d.configure(self.m(), &life, DtChange::EventLog(log.to_vec()));
            drop(life);
            if let Err(e) = r {
                error!(
                    "launch: DOM{}: its device tree does not take the event log ({e}): not launched",
                    d.id
                );
                let _ = self.destroy(d, StopReason::Reclaimed);
            }
        }
    }

    /// Carries out what the launch sequence decided.
    pub fn apply(&self, actions: &[Action]) {
        for a in actions {
            match *a {
                Action::Unpause(id) => {
                    let Some(d) = self.domain(id) else { continue };
                    if d.life().apply(Event::Unpause).is_ok() {
                        info!("launch: DOM{id} unpaused");
                        *d.vcpus[0].power.lock() = Power::Pending { entry: d.entry.0, context: d.entry.1 };
                        self.m().kick(d.vcpus[0].pcpu());
                    }
                }
                Action::Reclaim(id) => {
                    if let Some(d) = self.domain(id) {
                        let _ = self.destroy(&d, StopReason::Reclaimed);
                    }
                }
                Action::FreeBootModules => self.free_boot_modules(),
                Action::Console(id) => self.m().console_event(ConsoleEvent::Input(id)),
                Action::ReportFailure => self.report_failure(),
            }
        }
        if actions.iter().any(|a| matches!(a, Action::FreeBootModules)) {
            info!("launch: finalized; {} MiB free", self.free_bytes() >> 20);
        }
    }

    /// Finalization: boot modules and the host device tree go back to free memory, but for
    /// kernel modules whose pages running domains map. Images still to be copied from
    /// them (CPUs copy them while domains wait: usually all done by now) are copied here
    /// first, under `materials`, which a restart's check of its modules also holds.
    fn free_boot_modules(&self) {
        let all = self.domains.all();
        let shared: Vec<Range> = all
            .iter()
            .filter_map(|d| d.cow.as_ref())
            .map(|c| Range { start: c.module.start(), end: c.module.start() + c.ipa.size() })
            .collect();
        let inner = |m: &HostMem| Range { start: m.start(), end: m.end() }.page_inner().size();
        let mut mats = self.materials.lock();
        let mut copied = 0;
        let t = self.m().now_us();
        for d in &all {
            let mut s = d.scrub.lock();
            if mats.boot.iter().any(|&m| s.reads_from(m)) {
                copied += s.finish_copies(self.m());
            }
        }
        if copied > 0 {
            info!(
                "launch: {} KiB of images copied from boot modules at finalization, in {} us",
                copied >> 10,
                self.m().now_us() - t
            );
        }
        let mods = core::mem::take(&mut mats.boot);
        let (kept, freed): (Vec<HostMem>, Vec<HostMem>) = mods
            .into_iter()
            .partition(|m| shared.iter().any(|s| s.overlaps(&Range { start: m.start(), end: m.end() })));
        let kept_bytes: u64 = kept.iter().map(|m| m.len()).sum();
        mats.kept.extend(kept);
        // The host device tree holds the LCM: nothing reads it after launch (the Boot
        // Domain's calls end with it). Only the pages wholly inside it go.
        mats.freed = true;
        let dtb = mats.host_dtb.take();
        drop(mats);
        if kept_bytes > 0 {
            info!(
                "launch: {} KiB of kernel modules kept: their pages are shared by the domains",
                kept_bytes >> 10
            );
        }
        let bytes: u64 = freed.iter().map(inner).sum();
        let mut pool = self.pool.lock();
        for m in &freed {
            pool.give(*m);
        }
        info!("launch: {} boot module(s) freed ({} KiB)", freed.len(), bytes >> 10);
        if let Some(dtb) = dtb {
            pool.give(dtb);
            info!("launch: host device tree (LCM) freed ({} KiB)", inner(&dtb) >> 10);
        }
    }

    /// Launch failed: the console says what failed, and a standby Recovery Domain (not
    /// started yet) reads the report in its device tree.
    fn report_failure(&self) {
        let failures: Vec<(u16, alloc::string::String)> =
            self.launch.lock().launch.failures().iter().map(|f| (f.domid, f.reason.clone())).collect();
        for (domid, reason) in &failures {
            error!("launch failed: DOM{domid}: {reason}");
        }
        let recovery = crate::config::Functions::RECOVERY;
        for d in self.domains.all().iter().filter(|d| d.has_function(recovery)) {
            let life = d.life();
            if life.state() != State::Paused {
                continue;
            }
            match d.configure(self.m(), &life, DtChange::Failures(failures.clone())) {
                Ok(()) => info!("launch: failure report written into DOM{}'s device tree", d.id),
                Err(e) => warn!("launch: DOM{}: no failure report in its device tree: {e}", d.id),
            }
        }
    }
}
