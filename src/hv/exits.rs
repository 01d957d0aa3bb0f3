//! Exit handling: an exit goes in, an outcome comes out. The core decides what a trapped
//! access, call or wait means for the domain; the arch layer applies the outcome (writes
//! the guest's EL1 exception registers, waits for an interrupt, handles a physical one).

use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

use super::domain::Domain;
use super::life::{State, StopReason};
use super::system::System;
use super::vcpu::GuestRegs;
use crate::mmio::Device;
use crate::psci::{self, Power};
use crate::trap::{self, Exit, SysReg, TlbiOp};
use crate::vgic::Access;

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
    /// Counter ticks spent at EL2 from each exit to the next entry into the guest (the
    /// hypervisor's own cost of the exits), and the counter's frequency.
    pub el2_ticks: AtomicU64,
    pub tick_hz: AtomicU64,
}

impl ExitCounts {
    pub fn count(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    fn total(&self) -> [u64; 7] {
        [&self.gic, &self.uart, &self.wfi, &self.irq, &self.sysreg, &self.call, &self.other]
            .map(|c| c.load(Ordering::Relaxed))
    }
}

impl fmt::Display for ExitCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let all = self.total();
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
        let (ticks, hz) = (self.el2_ticks.load(Ordering::Relaxed), self.tick_hz.load(Ordering::Relaxed));
        let ns = (u128::from(ticks) * 1_000_000_000).checked_div(u128::from(hz)).unwrap_or(0) as u64;
        let n = all.iter().sum::<u64>();
        if ns > 0 && n > 0 {
            write!(f, "; {} us at EL2 ({} ns per exit)", ns / 1000, ns / n)?;
        }
        Ok(())
    }
}

/// How a vCPU's run ended (or must end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// PSCI CPU_OFF: the vCPU may be started again.
    CpuOff,
    /// The domain stopped (or is being reset, paused by Control, destroyed).
    DomainStopped,
    /// Its CPU is shared and its slice ended, or it waits in WFI: its state is saved.
    Yield,
}

/// Whether a vCPU of a domain in `state` must leave its CPU now, and how.
pub fn leave_for(state: State) -> Option<End> {
    match state {
        State::Running => None,
        // Paused by Control: it comes back where it left.
        State::CtlPaused => Some(End::Yield),
        _ => Some(End::DomainStopped),
    }
}

/// What the arch layer does after an exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Enter the guest again (registers as the core left them).
    Resume,
    /// Deliver a synchronous exception to the guest's EL1 vector, then resume.
    Inject { esr: u64, far: u64 },
    /// WFI with nothing pending: wait for any physical interrupt on this CPU, then resume.
    Wait,
    /// Local TLB invalidation the guest asked for (its vCPUs share this CPU), then resume.
    Tlbi { op: TlbiOp, xt: u64 },
    /// Physical interrupts are pending at this CPU: handle them, then resume.
    PhysicalIrq,
    /// The vCPU leaves its CPU.
    Leave(End),
}

/// A TLB invalidation trapped from `dom`'s vCPU (its syndrome `esr`, from AArch64),
/// counted and stepped over: the operation and Xt the arch layer then performs on this CPU
/// (see `Outcome::Tlbi`). `None`: the exit is something else. The run loop's way for the
/// most frequent trapped exit, which needs nothing else of the core.
pub fn light_tlbi(dom: &Domain, esr: u64, regs: &mut GuestRegs) -> Option<(TlbiOp, u64)> {
    Exit::tlbi_of(esr).map(|t| step_over_tlbi(dom, t, regs))
}

fn step_over_tlbi(dom: &Domain, (op, reg): (TlbiOp, u8), regs: &mut GuestRegs) -> (TlbiOp, u64) {
    ExitCounts::count(&dom.exits.sysreg);
    ExitCounts::count(&dom.exits.tlbi);
    regs.pc += 4;
    (op, regs.get(reg))
}

impl System {
    /// Handles one exit of vCPU `vi` of `dom` (running on a CPU it shares with other vCPUs
    /// when `shared`).
    pub fn handle_exit(
        &self,
        dom: &Domain,
        vi: usize,
        exit: Exit,
        regs: &mut GuestRegs,
        shared: bool,
    ) -> Outcome {
        // A TLB invalidation (HCR_EL2.TTLB; see `Outcome::Tlbi`). The run loop takes these
        // by `light_tlbi` before they come here; the same outcome for any other caller.
        if let Some((op, reg)) = exit.tlbi() {
            let (op, xt) = step_over_tlbi(dom, (op, reg), regs);
            return Outcome::Tlbi { op, xt };
        }
        self.count_exit(dom, &exit);
        match exit {
            Exit::Hvc { .. } => self.call(dom, vi, regs),
            Exit::Smc { .. } => {
                regs.pc += 4;
                self.call(dom, vi, regs)
            }
            Exit::Wfi { step } => {
                regs.pc += u64::from(step);
                // Wait only when nothing is pending for it; on a shared CPU it gives the
                // CPU to the others instead.
                if dom.vgic.lock().has_pending(vi) {
                    Outcome::Resume
                } else if shared {
                    dom.vcpus[vi].blocked.store(true, Ordering::Release);
                    Outcome::Leave(End::Yield)
                } else {
                    Outcome::Wait
                }
            }
            Exit::Wfe { step } => {
                regs.pc += u64::from(step);
                Outcome::Resume
            }
            Exit::DataAbort { ipa, write, perm, .. } if dom.cow_fault(self.m(), ipa, write, perm) => {
                Outcome::Resume
            }
            Exit::InstructionAbort { ipa, perm, .. } if dom.cow_fault(self.m(), ipa, false, perm) => {
                Outcome::Resume
            }
            Exit::DataAbort { ipa, va, write, access, .. } => {
                self.data_abort(dom, vi, (ipa, va, write), access, regs)
            }
            Exit::InstructionAbort { ipa, va, .. } => {
                dom.notice(format_args!(
                    "vCPU {vi} instruction fetch from IPA {ipa:#x} (VA {va:#x}) outside its memory: external abort injected"
                ));
                Outcome::Inject { esr: trap::instruction_abort_esr(regs.from_el0()), far: va }
            }
            Exit::SysReg { iss } => self.sysreg(dom, vi, iss, regs),
            Exit::Irq | Exit::Fiq => Outcome::PhysicalIrq,
            Exit::SError { esr } => {
                dom.notice(format_args!("vCPU {vi} SError (ESR {esr:#x}): domain stopped"));
                self.stop(dom, StopReason::SError);
                Outcome::Leave(End::DomainStopped)
            }
            Exit::Other { ec, esr } => {
                dom.notice(format_args!(
                    "vCPU {vi} unhandled exception class {ec:#x} (ESR {esr:#x}): undefined"
                ));
                Outcome::Inject { esr: trap::undefined_esr(), far: 0 }
            }
        }
    }

    fn count_exit(&self, dom: &Domain, exit: &Exit) {
        let c = &dom.exits;
        ExitCounts::count(match exit {
            Exit::Hvc { .. } | Exit::Smc { .. } => &c.call,
            Exit::Wfi { .. } | Exit::Wfe { .. } => &c.wfi,
            Exit::DataAbort { ipa, .. } => match dom.mmio.find(*ipa) {
                Some((Device::Uart, _)) => &c.uart,
                Some((Device::Control, _)) => &c.call,
                Some(_) => &c.gic,
                None => &c.other,
            },
            Exit::SysReg { .. } => &c.sysreg,
            Exit::Irq | Exit::Fiq => &c.irq,
            _ => &c.other,
        });
    }

    fn data_abort(
        &self,
        dom: &Domain,
        vi: usize,
        (ipa, va, write): (u64, u64, bool),
        access: Option<trap::Access>,
        regs: &mut GuestRegs,
    ) -> Outcome {
        let abort = Outcome::Inject { esr: trap::external_abort_esr(regs.from_el0(), write), far: va };
        match (access, dom.mmio.find(ipa)) {
            (Some(a), Some((dev @ (Device::GicDist | Device::GicRedist | Device::GicDistV2), offset))) => {
                let value = a.write.then(|| regs.get(a.reg));
                let r = {
                    let mut g = dom.vgic.lock();
                    match dev {
                        Device::GicDist => g.dist_access(vi, offset, a.size, value),
                        Device::GicDistV2 => g.dist_v2_access(vi, offset, a.size, value),
                        _ => g.redist_access(offset, a.size, value),
                    }
                };
                match r {
                    Access::Done { value, kick } => {
                        if !a.write {
                            regs.set(a.reg, value);
                        }
                        dom.kick(self.m(), kick);
                    }
                    Access::Unknown => {
                        dom.notice(format_args!(
                            "vCPU {vi} {} unknown {dev:?} register {offset:#x}: {}",
                            if a.write { "write to" } else { "read of" },
                            if a.write { "ignored" } else { "reads 0" }
                        ));
                        if !a.write {
                            regs.set(a.reg, 0);
                        }
                    }
                }
                regs.pc += u64::from(a.step);
                Outcome::Resume
            }
            (Some(a), Some((Device::Control, offset))) => {
                let read = self.control_access(dom, offset, a.size, a.write.then(|| regs.get(a.reg)));
                if !a.write {
                    regs.set(a.reg, read);
                }
                regs.pc += u64::from(a.step);
                leave_for(dom.state()).map_or(Outcome::Resume, Outcome::Leave)
            }
            (Some(a), Some((Device::Virtio(k), offset))) => {
                let read =
                    self.link_access(dom, usize::from(k), (offset, a.size), a.write.then(|| regs.get(a.reg)));
                if !a.write {
                    regs.set(a.reg, read);
                }
                regs.pc += u64::from(a.step);
                Outcome::Resume
            }
            (Some(a), Some((Device::Uart, offset))) => {
                if a.write {
                    dom.uart_access(self.m(), offset, Some(regs.get(a.reg) as u32));
                } else {
                    let v = dom.uart_access(self.m(), offset, None);
                    regs.set(a.reg, u64::from(v));
                }
                regs.pc += u64::from(a.step);
                Outcome::Resume
            }
            (None, Some((dev, _))) => {
                dom.notice(format_args!(
                    "vCPU {vi} access to {dev:?} at IPA {ipa:#x} with no instruction syndrome (a pair or writeback access): external abort injected"
                ));
                abort
            }
            (_, None) => {
                dom.notice(format_args!(
                    "vCPU {vi} {} IPA {ipa:#x} (VA {va:#x}) outside its memory and devices: external abort injected",
                    if write { "write to" } else { "read from" }
                ));
                abort
            }
        }
    }

    fn sysreg(&self, dom: &Domain, vi: usize, iss: u32, regs: &mut GuestRegs) -> Outcome {
        let a = trap::SysRegAccess::decode(iss);
        let outcome = match a.which() {
            SysReg::IccSgi1r if !a.read => {
                let kick = dom.vgic.lock().sgi1r(vi, regs.get(a.reg));
                dom.kick(self.m(), kick);
                Outcome::Resume
            }
            SysReg::IccOtherSgi if !a.read => Outcome::Resume,
            SysReg::CntpTimer | SysReg::RazWi => {
                if a.read {
                    regs.set(a.reg, 0);
                }
                Outcome::Resume
            }
            _ => {
                dom.notice(format_args!(
                    "vCPU {vi} trapped system register access {:?} (ISS {iss:#x}): undefined",
                    a.enc
                ));
                return Outcome::Inject { esr: trap::undefined_esr(), far: 0 };
            }
        };
        regs.pc += 4;
        outcome
    }

    /// An HVC or trapped SMC: hyperlaunch's own calls, PSCI, and NOT_SUPPORTED for every
    /// other SMCCC function.
    fn call(&self, dom: &Domain, vi: usize, regs: &mut GuestRegs) -> Outcome {
        let x = &regs.x;
        if let Some(hc) = crate::hypercall::decode([x[0], x[1], x[2], x[3], x[4]]) {
            let r = self.hypercall(dom, hc);
            regs.x[..4].copy_from_slice(&r);
            return leave_for(dom.state()).map_or(Outcome::Resume, Outcome::Leave);
        }
        let ret = match psci::decode(x[0], x[1], x[2], x[3]) {
            psci::Call::Version => psci::VERSION_1_1,
            psci::Call::Features(f) => psci::features(f),
            psci::Call::CpuSuspend => psci::NOT_SUPPORTED,
            psci::Call::MigrateInfoType => 2, // no Trusted OS to migrate
            psci::Call::CpuOn { target, entry, context } => match dom.vcpu_by_mpidr(target) {
                None => psci::INVALID_PARAMETERS,
                Some(t) => {
                    // Lock the target vCPU, not the caller (bao #386).
                    let r = psci::cpu_on(&mut dom.vcpus[t].power.lock(), entry, context);
                    if r == psci::SUCCESS {
                        log::debug!("DOM{}: vCPU {vi} started vCPU {t} at {entry:#x}", dom.id);
                        self.m().kick(dom.vcpus[t].pcpu());
                    }
                    r
                }
            },
            psci::Call::AffinityInfo { target, level } => match (level, dom.vcpu_by_mpidr(target)) {
                (0, Some(t)) => psci::affinity_info(*dom.vcpus[t].power.lock()),
                _ => psci::INVALID_PARAMETERS,
            },
            psci::Call::CpuOff => {
                *dom.vcpus[vi].power.lock() = Power::Off;
                return Outcome::Leave(End::CpuOff);
            }
            psci::Call::SystemOff => {
                log::info!("DOM{}: powered off (PSCI SYSTEM_OFF from vCPU {vi})", dom.id);
                self.stop(dom, StopReason::SystemOff);
                return Outcome::Leave(End::DomainStopped);
            }
            psci::Call::SystemReset => {
                log::info!("DOM{}: PSCI SYSTEM_RESET from vCPU {vi}: restarting it", dom.id);
                self.reset(dom);
                return Outcome::Leave(End::DomainStopped);
            }
            psci::Call::Unknown(fid) => {
                log::debug!("DOM{}: SMCCC function {fid:#x} not supported", dom.id);
                psci::NOT_SUPPORTED
            }
        };
        regs.x[0] = ret as u64;
        Outcome::Resume
    }
}
