//! Dynamic mode: a Control domain creates domains at run time. It stages the parts of the
//! new domain in the hypervisor's memory (its configuration, kernel, ramdisk), a call at a
//! time and in order, then asks for the domain: the configuration is read and checked as
//! at boot plus the run-time rules (`config::runtime`), the domain is built the way the
//! launch builds one, from free memory, with a VMID no live domain holds, and goes into a
//! free slot of the domain table, paused or running. A failure at any step gives back
//! everything it took, staged parts included, and names what was wrong.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use log::info;

use super::build::{self, HostFacts};
use super::domain::Domain;
use super::life::{Event, State};
use super::machine::HostMem;
use super::system::{System, slot};
use crate::config::runtime::{self, Existing, Images, RunTimeFacts};
use crate::guest::GuestMap;
use crate::hypercall as hc;
use crate::memmap::Range;
use crate::psci::Power;

/// The parts a request may stage.
pub const PARTS: usize = 4;
/// Most bytes one stage-write call takes (bounds the hypervisor's time in one call).
pub const MAX_WRITE: u64 = 1 << 20;

/// What building a domain needs to know of the host, kept from the launch (the host
/// device tree itself is not kept: domains created at run time get no host devices).
#[derive(Debug, Clone, Copy)]
pub struct RunEnv {
    pub gic_version: u32,
    pub pa_bits: u32,
    pub console: Option<u64>,
    pub host_map: GuestMap,
    pub vmid_bits: u32,
    pub online: u64,
    pub gic_spis: u32,
    pub gicv: Option<u64>,
}

impl RunEnv {
    pub fn of(h: &HostFacts<'_>) -> RunEnv {
        RunEnv {
            gic_version: h.gic_version,
            pa_bits: h.pa_bits,
            console: h.console,
            host_map: h.host_map,
            vmid_bits: h.vmid_bits,
            online: h.online,
            gic_spis: h.gic_spis,
            gicv: h.gicv,
        }
    }

    /// The facts a run-time build sees: `dtb` (the kept host device tree), the staged
    /// images and static memory taken (`reserved`), and the devices domains hold, the new
    /// one's included (`held`).
    fn facts<'a>(&self, dtb: &'a [u8], reserved: Vec<HostMem>, held: crate::claims::Held) -> HostFacts<'a> {
        HostFacts {
            dtb,
            event_log: &[],
            reserved,
            assigned: held.mmio,
            assigned_spis: held.spis,
            refused: Vec::new(),
            gic_version: self.gic_version,
            pa_bits: self.pa_bits,
            console: self.console,
            host_map: self.host_map,
            vmid_bits: self.vmid_bits,
            online: self.online,
            gic_spis: self.gic_spis,
            gicv: self.gicv,
            links: Vec::new(),
            static_from_pool: true,
            kernel_sharing: false,
            defer_copies: false,
        }
    }
}

/// The host as domains created at run time see it: the used part of the host device tree,
/// copied at launch (the original is given back at finalization), and the RAM it names.
#[derive(Debug, Clone, Default)]
pub struct RunHost {
    pub dtb: Vec<u8>,
    pub ram: Vec<Range>,
}

impl RunHost {
    /// Copies what `dtb` uses (header, reservations, structure, strings: the totalsize a
    /// firmware pads is left out). Empty if it is not a device tree.
    pub fn of(dtb: &[u8]) -> RunHost {
        let Ok(fdt) = crate::fdt::Fdt::new(dtb) else { return RunHost::default() };
        let be = |at: usize| crate::fdt::be32(dtb, at).unwrap_or(0);
        let used = [(8, 36), (12, 32)]
            .iter()
            .map(|&(off, size)| be(off) as usize + be(size) as usize)
            .max()
            .unwrap_or(0)
            .max(40)
            .min(dtb.len());
        let ram = crate::platform::Platform::from_fdt(&fdt, None)
            .map(|p| p.memory.ram.iter().collect())
            .unwrap_or_default();
        let mut copy = dtb[..used].to_vec();
        copy[4..8].copy_from_slice(&(used as u32).to_be_bytes());
        RunHost { dtb: copy, ram }
    }
}

/// One staged part: the memory taken for it (whole pages), its size, and how many bytes
/// of it were given.
#[derive(Debug, Clone, Copy)]
pub struct Part {
    pub pages: HostMem,
    pub len: u64,
    pub given: u64,
}

impl Part {
    /// Its bytes.
    pub fn mem(&self) -> HostMem {
        self.pages.sub(0, self.len).unwrap_or(self.pages)
    }
}

/// What a Control domain has staged.
#[derive(Debug, Default)]
pub struct Staging {
    pub caller: u16,
    pub parts: [Option<Part>; PARTS],
    /// When its first part was staged (µs of uptime).
    pub since_us: u64,
}

/// Why a creation failed: the rule's name (as hlcheck names it) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateError {
    pub rule: &'static str,
    pub what: String,
}

impl core::fmt::Display for CreateError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}: {}", self.rule, self.what)
    }
}

fn fail(rule: &'static str, what: String) -> CreateError {
    CreateError { rule, what }
}

const PART_NAMES: [&str; PARTS] = ["configuration", "kernel", "ramdisk", "device tree"];

impl System {
    /// HL_DOMCTL_STAGE: `size` bytes of memory for `part` (replacing what was staged for it).
    pub(super) fn stage(&self, dom: &Domain, part: u64, size: u64) -> Result<(), String> {
        let p = usize::try_from(part).ok().filter(|&p| p < PARTS).ok_or_else(|| format!("no part {part}"))?;
        if p == 0 && size > hc::MAX_CREATE_CONFIG {
            return Err(format!("a configuration of {size} bytes (at most {})", hc::MAX_CREATE_CONFIG));
        }
        let mut st = self.staging.lock();
        let i = match st.iter().position(|s| s.caller == dom.id) {
            Some(i) => i,
            None => {
                st.push(Staging { caller: dom.id, since_us: self.m().now_us(), ..Default::default() });
                st.len() - 1
            }
        };
        let mut pool = self.pool.lock();
        if let Some(old) = st[i].parts[p].take() {
            pool.free(old.pages);
        }
        if size == 0 {
            return Ok(());
        }
        let pages = pool.alloc(size.next_multiple_of(4096)).ok_or_else(|| {
            format!(
                "{} MiB for its {} but {} MiB is free",
                size >> 20,
                PART_NAMES[p],
                pool.free_bytes() >> 20
            )
        })?;
        st[i].parts[p] = Some(Part { pages, len: size, given: 0 });
        Ok(())
    }

    /// HL_DOMCTL_STAGE_WRITE: the next `len` bytes of `part`, from the caller's address `src`
    /// (its RAM or its control window). Returns the bytes taken.
    pub(super) fn stage_write(
        &self,
        dom: &Domain,
        part: u64,
        offset: u64,
        src: u64,
        len: u64,
    ) -> Result<u64, String> {
        if len > MAX_WRITE {
            return Err(format!("{len} bytes in one call (at most {MAX_WRITE})"));
        }
        let p = usize::try_from(part).ok().filter(|&p| p < PARTS).ok_or_else(|| format!("no part {part}"))?;
        let mut st = self.staging.lock();
        let s = st
            .iter_mut()
            .find(|s| s.caller == dom.id)
            .and_then(|s| s.parts[p].as_mut())
            .ok_or_else(|| format!("nothing staged for the {}", PART_NAMES[p]))?;
        if offset != s.given {
            return Err(format!(
                "offset {offset:#x} but {:#x} bytes were given: parts are given in order",
                s.given
            ));
        }
        let dst = s
            .mem()
            .sub(offset, len)
            .ok_or_else(|| format!("{len} bytes at {offset:#x} would pass the {} bytes staged", s.len))?;
        let m = self.m();
        if let Some(w) = dom.window_at(src, len) {
            m.copy(dst, w);
        } else {
            let bytes = dom
                .read_guest(m, src, len)
                .ok_or_else(|| format!("{src:#x} (+{len:#x}) is not its RAM or control window"))?;
            m.write(dst, &bytes);
        }
        s.given += len;
        Ok(len)
    }

    /// Drops what `caller` staged (it is gone, or its request ended).
    pub(super) fn unstage(&self, caller: u16) -> Option<[Option<Part>; PARTS]> {
        self.unstage_timed(caller).map(|(p, _)| p)
    }

    /// As [`System::unstage`], with when staging began.
    fn unstage_timed(&self, caller: u16) -> Option<([Option<Part>; PARTS], u64)> {
        let mut st = self.staging.lock();
        let i = st.iter().position(|s| s.caller == caller)?;
        let s = st.swap_remove(i);
        Some((s.parts, s.since_us))
    }

    pub(super) fn free_parts(&self, parts: &[Option<Part>; PARTS]) {
        let mut pool = self.pool.lock();
        for p in parts.iter().flatten() {
            pool.free(p.pages);
        }
    }

    /// HL_DOMCTL_CREATE: the domain `dom` staged, built and started (or left paused).
    pub fn create(&self, dom: &Domain, paused: bool) -> Result<u16, CreateError> {
        let env =
            self.env.ok_or_else(|| fail("not-supported", "this system does not create domains".into()))?;
        // One creation at a time: the slot and VMID it picks stay its own.
        let _one = self.creating.lock();
        let t0 = self.m().now_us();
        let (parts, since) =
            self.unstage_timed(dom.id).ok_or_else(|| fail("nothing-staged", "nothing was staged".into()))?;
        let (cfg, built, loaded, di) = match self.build_staged(dom, &parts, env) {
            Ok(b) => b,
            Err(e) => {
                self.free_parts(&parts);
                return Err(e);
            }
        };
        // The configuration was read; the images are the domain's from here (a restart
        // reads them, its reclaim frees them).
        self.free_parts(&[parts[0], None, None, None]);
        let d = Domain::new(built);
        *d.images.lock() = parts[1..].iter().flatten().map(|p| p.pages).collect();
        let d = match self.domains.put(di, d) {
            Ok(d) => d,
            Err(d) => {
                self.discard(&d);
                return Err(fail("no-slot", "the domain table changed meanwhile".into()));
            }
        };
        info!(
            "{} created by DOM{} in {} us ({} KiB copied in {} us, {} MiB to scrub on its CPU before it runs; its parts were staged over {} us); {} MiB free",
            runtime::describe(&cfg),
            dom.id,
            self.m().now_us().saturating_sub(t0),
            loaded.copied >> 10,
            loaded.copy_us,
            d.scrub.lock().left_bytes() >> 20,
            t0.saturating_sub(since),
            self.free_bytes() >> 20
        );
        self.start_created(&d, di, paused);
        self.store_joined(d.id);
        Ok(d.id)
    }

    /// Reads the staged configuration, checks it, and builds the domain (paused, not in the
    /// table yet). Takes nothing of `parts`.
    fn build_staged(
        &self,
        caller: &Domain,
        parts: &[Option<Part>; PARTS],
        env: RunEnv,
    ) -> Result<(crate::config::DomainConfig, super::domain::Parts, super::ram::LoadStats, usize), CreateError>
    {
        let m = self.m();
        for (i, p) in parts.iter().enumerate() {
            if let Some(p) = p
                && p.given != p.len
            {
                return Err(fail(
                    "incomplete",
                    format!("{} of the {} bytes of its {} were given", p.given, p.len, PART_NAMES[i]),
                ));
            }
        }
        let config = parts[0].ok_or_else(|| fail("missing-config", "no configuration was staged".into()))?;
        let mut blob = alloc::vec![0u8; config.len as usize];
        m.read(config.mem(), &mut blob);
        let range =
            |p: Option<Part>| p.map(|p| crate::memmap::Range { start: p.mem().start(), end: p.mem().end() });
        let images =
            Images { kernel: range(parts[1]), ramdisk: range(parts[2]), device_tree: range(parts[3]) };
        let facts = RunTimeFacts {
            cpus: self.queues(),
            free_bytes: self.free_bytes(),
            ram: self.run_host.ram.clone(),
            devices: !self.run_host.dtb.is_empty(),
            existing: self
                .domains
                .all()
                .iter()
                .filter(|d| d.state() != State::Reclaimed)
                .map(|d| Existing { domid: d.id, permissions: d.permissions, functions: d.functions })
                .collect(),
            retired: self
                .domains
                .all()
                .iter()
                .filter(|d| d.state() == State::Reclaimed)
                .map(|d| d.id)
                .collect(),
        };
        let (cfg, notes) =
            runtime::parse_domain(&blob, images, &facts).map_err(|e| fail(e.name(), format!("{e}")))?;
        for n in notes {
            caller.notice(format_args!("create: {n}"));
        }
        let held = self.claim_devices(caller, &cfg, parts[3])?;
        let vmid = self.free_vmid(env.vmid_bits).ok_or_else(|| {
            fail("no-vmid", format!("every VMID of {} bits is held by a domain", env.vmid_bits))
        })?;
        let di = self.free_slot(cfg.domid).ok_or_else(|| {
            fail("no-slot", format!("{} domains exist, the most there can be", self.domains.capacity()))
        })?;
        // Static memory: exactly its ranges, taken from free memory (all or nothing).
        let taken = self.take_static(&cfg)?;
        let mut reserved: Vec<HostMem> = parts[1..].iter().flatten().map(|p| p.mem()).collect();
        reserved.extend_from_slice(&taken);
        let host = env.facts(&self.run_host.dtb, reserved, held);
        let mut load = self.cpu_load();
        // A store connection when there is a store (and a slot for it).
        let link = self.store_attach(cfg.domid);
        if link.is_none()
            && let Some(server) = self.store_server()
        {
            caller.notice(format_args!(
                "create: DOM{} gets no store connection: every slot of DOM{server}'s store is taken",
                cfg.domid
            ));
        }
        let (mut built, loaded) = {
            let mut pool = self.pool.lock();
            match build::build(m, &cfg, vmid, &mut pool, &mut load, &host, link) {
                Ok(b) => b,
                Err(e) => {
                    for t in taken {
                        pool.free(t);
                    }
                    drop(pool);
                    self.store_detach(cfg.domid, false);
                    return Err(fail(e.rule(), format!("{}: {e}", cfg.node)));
                }
            }
        };
        // Static memory taken from free memory goes back to it with the domain.
        built.ram.owned = true;
        // A VMID that was used before may still have translations cached.
        m.flush_vmid(vmid);
        Ok((cfg, built, loaded, di))
    }

    /// The devices a domain to create asks for (its partial device tree), checked as at
    /// launch against the host device tree and against what existing domains hold. Returns
    /// what is held with the new claims (a hardware domain gets none of it).
    fn claim_devices(
        &self,
        caller: &Domain,
        cfg: &crate::config::DomainConfig,
        dt: Option<Part>,
    ) -> Result<crate::claims::Held, CreateError> {
        let mut held = self.held_devices();
        let Some(dt) = dt else { return Ok(held) };
        if crate::fdt::Fdt::new(&self.run_host.dtb).is_err() {
            return Err(fail("not-at-run-time", "this system kept no host device tree".into()));
        }
        let mut blob = alloc::vec![0u8; dt.len as usize];
        self.m().read(dt.mem(), &mut blob);
        let list = crate::devices::parse_partial(&blob)
            .map_err(|e| fail("passthrough", format!("{}: partial device tree: {e}", cfg.node)))?;
        let c = crate::claims::check_held(&self.run_host.dtb, &held, &[(cfg.domid, list)], None);
        if let Some((_, why)) = c.refused.first() {
            return Err(fail("passthrough", format!("{}: {why}", cfg.node)));
        }
        super::setup::warn_unprotected(&c);
        for (domid, node) in &c.unprotected {
            caller.notice(format_args!(
                "create: DOM{domid}: {node} given without an IOMMU: its DMA is not confined"
            ));
        }
        held.mmio.extend(c.assigned);
        held.spis.extend(c.spis);
        Ok(held)
    }

    /// The host MMIO ranges and SPIs domains that exist hold.
    fn held_devices(&self) -> crate::claims::Held {
        let mut held = crate::claims::Held::default();
        for d in self.domains.all().iter().filter(|d| d.state() != State::Reclaimed) {
            held.mmio.extend(d.devices.iter().map(|&r| (d.id, r)));
            held.spis.extend(d.forwarded.iter().map(|&s| (s, d.id)));
        }
        held
    }

    /// `cfg`'s static memory, taken from free memory in the runs the allocator keeps.
    fn take_static(&self, cfg: &crate::config::DomainConfig) -> Result<Vec<HostMem>, CreateError> {
        let mut pool = self.pool.lock();
        let mut taken: Vec<HostMem> = Vec::new();
        for r in &cfg.static_mem {
            match pool.take(*r) {
                Some(runs) => taken.extend(runs),
                None => {
                    for t in taken {
                        pool.free(t);
                    }
                    return Err(fail(
                        "static-mem-overlap",
                        format!(
                            "{}: static memory {r} is not free memory (a domain, a staged image or the hypervisor holds part of it)",
                            cfg.node
                        ),
                    ));
                }
            }
        }
        Ok(taken)
    }

    /// A built domain that never ran gives back what it took.
    fn discard(&self, d: &Domain) {
        let _ = d.life().apply(Event::Destroy);
        let _ = d.life().settle();
        self.reclaim_memory(d);
    }

    /// Its vCPUs queued, its console joined, and vCPU 0 started (or the domain left paused
    /// by Control).
    fn start_created(&self, d: &Domain, di: usize, paused: bool) {
        for (vi, v) in d.vcpus.iter().enumerate() {
            self.enqueue(v.pcpu(), slot(di, vi));
        }
        self.own_irqs(di, d);
        if d.mmio.find(d.map.vuart).is_some() {
            self.m().console_event(super::machine::ConsoleEvent::Added(d.id));
        }
        let mut life = d.life();
        let _ = life.apply(Event::Unpause);
        if paused {
            let _ = life.apply(Event::CtlPause);
        }
        *d.vcpus[0].power.lock() = Power::Pending { entry: d.entry.0, context: d.entry.1 };
        drop(life);
        if !paused {
            self.m().kick(d.vcpus[0].pcpu());
        }
        info!("DOM{}: {}", d.id, if paused { "created paused" } else { "started" });
    }

    /// The lowest VMID no domain that still exists holds.
    fn free_vmid(&self, bits: u32) -> Option<u16> {
        let held: Vec<u16> = self
            .domains
            .all()
            .iter()
            .filter(|d| d.state() != State::Reclaimed)
            .map(|d| (d.vttbr >> 48) as u16)
            .collect();
        let top = (1u32 << bits.min(16)) - 1;
        (1..=top).map(|v| v as u16).find(|v| !held.contains(v))
    }

    /// A slot for new domain `domid`: the slot of a destroyed domain with that id (only one
    /// domain of an id is listed), else an empty one or one whose domain was reclaimed (the
    /// run queues forget it and its interrupts first).
    fn free_slot(&self, domid: u16) -> Option<usize> {
        let reclaimed = |d: &Domain| d.state() == State::Reclaimed;
        let mut free = self.domains.free_slots(reclaimed);
        let same = |&i: &usize| self.domains.get(i).is_some_and(|d| d.id == domid);
        free.sort_by_key(|i| !same(i));
        for i in free {
            self.forget_slot(i);
            if self.domains.vacate(i, reclaimed) {
                return Some(i);
            }
        }
        None
    }

    /// vCPUs placed on each CPU by domains that exist.
    fn cpu_load(&self) -> Vec<u32> {
        let mut load = alloc::vec![0u32; self.queues()];
        for d in self.domains.all().iter().filter(|d| d.state().alive()) {
            for v in &d.vcpus {
                if let Some(l) = load.get_mut(v.pcpu()) {
                    *l += 1;
                }
            }
        }
        load
    }

    /// Interrupt forwarding to slot `i` is cleared; run queues drop it.
    fn forget_slot(&self, i: usize) {
        self.forget_irqs(i);
        for cpu in 0..self.queues() {
            for s in self.queued(cpu).into_iter().filter(|s| s >> 16 == i) {
                self.drop_queued(cpu, s);
            }
        }
    }
}

impl Domain {
    /// Its control window's memory behind `ipa..ipa + len`, when all of it is inside.
    pub fn window_at(&self, ipa: u64, len: u64) -> Option<HostMem> {
        let (at, mem) = self.window?;
        mem.sub(ipa.checked_sub(at)?, len)
    }
}
