//! hyperlaunch's own hypercalls, one function per call. Who may make each is decided by
//! the permission table in `crate::hypercall`; guest buffers are copied once into the
//! hypervisor's memory before they are checked and used.

use alloc::sync::Arc;

use log::{info, warn};

use super::domain::{ConfigError, Domain, DtChange};
use super::life::{Event, State, StopReason};
use super::ram::Src;
use super::system::System;
use crate::config::{Functions, Permissions};
use crate::hypercall::{self as hc, Blob, Call};

type Ret = [u64; 4];

/// How long a pause waits for the paused domain's vCPUs to leave their CPUs.
pub const PAUSE_WAIT_US: u64 = 50_000;

fn ret(x0: i64) -> Ret {
    [x0 as u64, 0, 0, 0]
}

impl System {
    /// One of hyperlaunch's own hypercalls from `dom`; returns x0..x3.
    pub fn hypercall(&self, dom: &Domain, call: Call) -> Ret {
        let running_boot = self.launch.lock().launch.boot_domain() == Some(dom.id);
        let caller = hc::Caller {
            running_boot_domain: running_boot,
            recovery: dom.functions.has(Functions::RECOVERY),
            control: dom.permissions.has(Permissions::CONTROL),
        };
        if !hc::allowed(&call, caller) {
            dom.notice(format_args!("hypercall {call} refused: not permitted for this domain"));
            return ret(hc::DENIED);
        }
        match call {
            Call::Version => ret(hc::VERSION),
            Call::Unknown(fid) => {
                dom.notice(format_args!("unknown hyperlaunch hypercall {fid:#x}"));
                ret(hc::NOT_SUPPORTED)
            }
            Call::Size(blob) => self.hc_size(dom, blob),
            Call::Read { blob, dst, offset, len } => self.hc_read(dom, blob, dst, offset, len),
            Call::DomainInfo { index } => self.hc_domain_info(index),
            Call::Unpause { domid } => self.hc_unpause(dom, domid),
            Call::Done => self.hc_done(dom),
            Call::FailureInfo { index } => self.hc_failure_info(index),
            Call::SetBootargs { domid, src, len } => self.hc_set_bootargs(dom, domid, src, len),
            Call::SetAffinity { domid, vcpu, cpu } => self.hc_set_affinity(dom, domid, vcpu, cpu),
            Call::SetDtProperty { domid, src, len } => self.hc_set_dt_property(dom, domid, src, len),
            Call::DomctlQuery { domid } => self.hc_query(dom, domid),
            Call::DomctlPause { domid } => self.hc_pause(dom, domid),
            Call::DomctlUnpause { domid } => self.hc_ctl_unpause(dom, domid),
            Call::DomctlDestroy { domid } => self.hc_destroy(dom, domid),
            Call::DomctlRestart { domid } => self.hc_restart(dom, domid),
            Call::StoreNotify { domid } => self.hc_store_notify(dom, domid),
            Call::StoreClient { slot } => self.hc_store_client(dom, slot),
            Call::Stage { part, size } => self.hc_stage(dom, part, size),
            Call::StageWrite { part, offset, src, len } => self.hc_stage_write(dom, part, offset, src, len),
            Call::Create { flags, msg, room } => self.hc_create(dom, flags, msg, room),
            Call::Free => self.hc_free(),
        }
    }

    /// The launch materials a Boot Domain reads (`None` once finalization freed them).
    fn blob(&self, dom: &Domain, blob: Blob) -> Option<Option<super::machine::HostMem>> {
        if self.materials.lock().freed {
            return None;
        }
        Some(match blob {
            Blob::Lcm => self.lcm,
            Blob::Config => dom.config,
        })
    }

    fn hc_size(&self, dom: &Domain, blob: Blob) -> Ret {
        match self.blob(dom, blob) {
            None => {
                dom.notice(format_args!("hypercall size refused: the launch materials are freed"));
                ret(hc::INVALID)
            }
            Some(Some(m)) => ret(m.len() as i64),
            Some(None) if blob == Blob::Lcm => ret(0),
            Some(None) => ret(hc::INVALID),
        }
    }

    fn hc_read(&self, dom: &Domain, blob: Blob, dst: u64, offset: u64, len: u64) -> Ret {
        let src = match self.blob(dom, blob) {
            None => {
                dom.notice(format_args!("hypercall read refused: the launch materials are freed"));
                return ret(hc::INVALID);
            }
            Some(src) => src,
        };
        let Some(src) = src else { return ret(hc::INVALID) };
        let Some(avail) = src.len().checked_sub(offset) else { return ret(hc::INVALID) };
        let n = len.min(avail);
        let Some(part) = src.sub(offset, n) else { return ret(hc::INVALID) };
        if dom.write_guest(self.m(), dst, Src::Mem(part)) {
            ret(n as i64)
        } else {
            dom.notice(format_args!("hypercall read into {dst:#x} (+{n:#x}) outside its RAM refused"));
            ret(hc::INVALID)
        }
    }

    fn hc_domain_info(&self, index: u64) -> Ret {
        match self.domains.all().get(index as usize) {
            Some(d) => [hc::SUCCESS as u64, u64::from(d.id), d.state().abi(), u64::from(d.functions.0)],
            None => ret(hc::INVALID),
        }
    }

    fn hc_unpause(&self, dom: &Domain, domid: u16) -> Ret {
        let r = self.launch.lock().launch.unpause(dom.id, domid);
        match r {
            Ok(a) => {
                self.apply(&[a]);
                ret(hc::SUCCESS)
            }
            Err(e) => {
                dom.notice(format_args!("unpause of DOM{domid} refused: {e}"));
                ret(hc::INVALID)
            }
        }
    }

    fn hc_done(&self, dom: &Domain) -> Ret {
        info!("launch: DOM{} (Boot Domain) signalled done", dom.id);
        let r = {
            let mut l = self.launch.lock();
            let r = l.launch.done(dom.id);
            if r.is_ok() {
                l.deadline = None;
            }
            r
        };
        match r {
            Ok(actions) => {
                self.m().launch_deadline_changed(None);
                self.apply(&actions);
                ret(hc::SUCCESS)
            }
            Err(_) => ret(hc::DENIED),
        }
    }

    fn hc_failure_info(&self, index: u64) -> Ret {
        match self.launch.lock().launch.failures().get(index as usize) {
            Some(f) => [hc::SUCCESS as u64, u64::from(f.domid), 0, 0],
            None => ret(hc::INVALID),
        }
    }

    /// The target of extended configuration: a domain the launch still holds paused, and
    /// not the standby Recovery Domain (which only the hypervisor prepares).
    fn config_target(&self, caller: &Domain, domid: u16, what: &str) -> Option<Arc<Domain>> {
        let standby = self.launch.lock().launch.standby();
        let target = self.domain(domid);
        let why = match target {
            None => "",
            Some(_) if standby == Some(domid) => " (it is the standby Recovery Domain)",
            Some(ref t) if t.state() != State::Paused => " (it has started)",
            Some(_) => return target,
        };
        caller.notice(format_args!("{what} for DOM{domid} refused: no such paused domain{why}"));
        None
    }

    /// Applies a device-tree change to a paused target, the check and the write under its
    /// one guard.
    /// `what` names the change in a refusal, `done` is logged when it is made.
    fn configure(&self, caller: &Domain, domid: u16, (what, done): (&str, &str), change: DtChange) -> Ret {
        let Some(target) = self.config_target(caller, domid, what) else { return ret(hc::INVALID) };
        let life = target.life();
        let r = target.configure(self.m(), &life, change);
        drop(life);
        match r {
            Ok(()) => {
                info!("launch: DOM{domid} {done}");
                ret(hc::SUCCESS)
            }
            Err(e) => {
                caller.notice(format_args!("{what} for DOM{domid} refused: {e}"));
                ret(hc::INVALID)
            }
        }
    }

    fn hc_set_bootargs(&self, dom: &Domain, domid: u16, src: u64, len: u64) -> Ret {
        if len > hc::MAX_BOOTARGS {
            dom.notice(format_args!(
                "bootargs for DOM{domid} refused: longer than {} bytes",
                hc::MAX_BOOTARGS
            ));
            return ret(hc::INVALID);
        }
        let Some(bytes) = dom.read_guest(self.m(), src, len) else {
            dom.notice(format_args!("bootargs for DOM{domid} refused: buffer outside its RAM"));
            return ret(hc::INVALID);
        };
        let args = match alloc::string::String::from_utf8(bytes) {
            Ok(a) if !a.contains('\0') => a,
            _ => {
                dom.notice(format_args!("bootargs for DOM{domid} refused: not UTF-8 text without NUL"));
                return ret(hc::INVALID);
            }
        };
        let done = alloc::format!("bootargs set by the Boot Domain: \"{args}\"");
        self.configure(dom, domid, ("bootargs", &done), DtChange::Bootargs(args))
    }

    fn hc_set_dt_property(&self, dom: &Domain, domid: u16, src: u64, len: u64) -> Ret {
        if len > hc::MAX_DT_PROPERTY {
            dom.notice(format_args!("device tree property for DOM{domid} refused: too long"));
            return ret(hc::INVALID);
        }
        let Some(bytes) = dom.read_guest(self.m(), src, len) else {
            dom.notice(format_args!("device tree property for DOM{domid} refused: buffer outside its RAM"));
            return ret(hc::INVALID);
        };
        let a = match crate::guest_dtb::DtAddition::parse(&bytes) {
            Ok(a) => a,
            Err(e) => {
                dom.notice(format_args!("device tree property for DOM{domid} refused: {e}"));
                return ret(hc::INVALID);
            }
        };
        let what = alloc::format!("device tree property {}/{} ({} bytes)", a.path, a.name, a.value.len());
        let done = alloc::format!(
            "device tree: {}/{} ({} bytes) added by the Boot Domain",
            a.path,
            a.name,
            a.value.len()
        );
        self.configure(dom, domid, (&what, &done), DtChange::Addition(a))
    }

    fn hc_set_affinity(&self, dom: &Domain, domid: u16, vcpu: u64, cpu: u64) -> Ret {
        let Some(target) = self.config_target(dom, domid, "affinity") else { return ret(hc::INVALID) };
        let life = target.life();
        let err = if life.state() != State::Paused {
            Some(ConfigError::NotPaused(life.state()))
        } else if vcpu as usize >= target.vcpus.len() {
            Some(ConfigError::NoSuchVcpu)
        } else if !self.m().cpu_online(cpu as usize) || cpu as usize >= self.queues() {
            Some(ConfigError::NoSuchCpu)
        } else {
            self.move_vcpu(&target, vcpu as usize, cpu as usize);
            None
        };
        drop(life);
        match err {
            None => {
                info!("launch: DOM{domid} vCPU {vcpu} pinned to CPU {cpu} by the Boot Domain");
                ret(hc::SUCCESS)
            }
            Some(e) => {
                dom.notice(format_args!("affinity of DOM{domid} vCPU {vcpu} to CPU {cpu} refused: {e}"));
                ret(hc::INVALID)
            }
        }
    }

    /// The other domain a Control call is aimed at.
    fn ctl_target(&self, caller: &Domain, domid: u16, what: &str) -> Option<Arc<Domain>> {
        match self.domain(domid) {
            None => caller.notice(format_args!("{what} of DOM{domid} refused: no such domain")),
            Some(d) if d.id == caller.id => {
                caller.notice(format_args!("{what} of itself refused (PSCI SYSTEM_OFF stops a domain)"))
            }
            Some(d) => return Some(d),
        }
        None
    }

    fn hc_query(&self, dom: &Domain, domid: u16) -> Ret {
        let Some(d) = self.domain(domid) else {
            dom.notice(format_args!("query of DOM{domid} refused: no such domain"));
            return ret(hc::INVALID);
        };
        let roles = (u64::from(d.permissions.0) << 32) | u64::from(d.functions.0);
        [hc::SUCCESS as u64, d.state().abi() | ((d.vcpus.len() as u64) << 8), d.ram.size(), roles]
    }

    /// A Control transition of another domain; on success `then` runs.
    fn ctl(&self, dom: &Domain, domid: u16, what: &str, event: Event, then: impl FnOnce(&Domain)) -> Ret {
        let Some(d) = self.ctl_target(dom, domid, what) else { return ret(hc::INVALID) };
        let r = d.life().apply(event);
        match r {
            Ok(_) => {
                then(&d);
                ret(hc::SUCCESS)
            }
            Err(e) => {
                dom.notice(format_args!("{what} of DOM{domid} refused: {e}"));
                ret(hc::INVALID)
            }
        }
    }

    fn hc_pause(&self, dom: &Domain, domid: u16) -> Ret {
        self.ctl(dom, domid, "pause", Event::CtlPause, |d| {
            d.kick_all(self.m());
            self.wait_off_cpus(dom, d);
            info!("DOM{domid}: paused by DOM{}", dom.id);
        })
    }

    /// Waits until no vCPU of `d` (just paused and kicked) is on its CPU, so that a pause
    /// returns with the domain stopped: nothing it does is seen after the call returns.
    /// Gives up, saying so, after `PAUSE_WAIT_US` (a CPU held at EL2 by long work), and at
    /// once when `caller` is itself no longer running (two Control domains pausing each
    /// other would otherwise wait for each other).
    fn wait_off_cpus(&self, caller: &Domain, d: &Domain) {
        let m = self.m();
        let start = m.now_us();
        while d.life().active() > 0 {
            if caller.state() != State::Running {
                return;
            }
            if m.now_us().saturating_sub(start) >= PAUSE_WAIT_US {
                warn!(
                    "DOM{}: still on a CPU {PAUSE_WAIT_US} us after its pause: it stops at its next full exit",
                    d.id
                );
                return;
            }
            m.relax();
        }
    }

    fn hc_ctl_unpause(&self, dom: &Domain, domid: u16) -> Ret {
        self.ctl(dom, domid, "unpause", Event::CtlUnpause, |d| {
            // Said before its CPUs are told: its vCPUs run again from here on.
            info!("DOM{domid}: unpaused by DOM{}", dom.id);
            for v in &d.vcpus {
                self.m().kick(v.pcpu());
            }
        })
    }

    fn hc_destroy(&self, dom: &Domain, domid: u16) -> Ret {
        let Some(d) = self.ctl_target(dom, domid, "destroy") else { return ret(hc::INVALID) };
        match self.destroy(&d, StopReason::Destroyed { by: dom.id }) {
            Ok(()) => ret(hc::SUCCESS),
            Err(e) => {
                dom.notice(format_args!("destroy of DOM{domid} refused: {e}"));
                ret(hc::INVALID)
            }
        }
    }

    fn hc_restart(&self, dom: &Domain, domid: u16) -> Ret {
        let Some(d) = self.ctl_target(dom, domid, "restart") else { return ret(hc::INVALID) };
        match self.restart(&d) {
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
}
