//! Running a vCPU: the world switch into EL1 and back, and the handling of every exit.
//! Each physical CPU runs at most one vCPU, which stays on it: EL1 system registers are
//! never shared, so only the general registers, PC and PSTATE cross the switch.

use core::sync::atomic::{AtomicBool, Ordering};

use aarch64_cpu::registers::*;
use log::{debug, info};

use super::context::Context;
use super::domain::{self, Domain, ExitCounts};
use super::{gic, stage2, timer};
use crate::guest;
use crate::mmio::Device;
use crate::platform::MAX_CPUS;
use crate::psci::{self, Call, Power};
use crate::trap::{self, Exit, SysReg};
use crate::vgic::Flush;

/// A vCPU's registers as saved at each exit.
#[repr(C)]
#[derive(Debug, Default)]
pub struct GuestRegs {
    pub x: [u64; 31],
    pub pc: u64,
    pub pstate: u64,
}

core::arch::global_asm!(
    r#"
    .section .text.guest, "ax"
    .global guest_entry
// guest_entry(regs: *mut GuestRegs) -> u64: runs the guest until an exception, returns the
// vector number it came through. Saves the callee-saved registers and `regs` on the stack.
guest_entry:
    sub     sp, sp, #112
    str     x0, [sp]
    stp     x19, x20, [sp, #16]
    stp     x21, x22, [sp, #32]
    stp     x23, x24, [sp, #48]
    stp     x25, x26, [sp, #64]
    stp     x27, x28, [sp, #80]
    stp     x29, x30, [sp, #96]
    ldp     x1, x2, [x0, #248]
    msr     elr_el2, x1
    msr     spsr_el2, x2
    ldp     x2, x3, [x0, #16]
    ldp     x4, x5, [x0, #32]
    ldp     x6, x7, [x0, #48]
    ldp     x8, x9, [x0, #64]
    ldp     x10, x11, [x0, #80]
    ldp     x12, x13, [x0, #96]
    ldp     x14, x15, [x0, #112]
    ldp     x16, x17, [x0, #128]
    ldp     x18, x19, [x0, #144]
    ldp     x20, x21, [x0, #160]
    ldp     x22, x23, [x0, #176]
    ldp     x24, x25, [x0, #192]
    ldp     x26, x27, [x0, #208]
    ldp     x28, x29, [x0, #224]
    ldr     x30, [x0, #240]
    ldp     x0, x1, [x0]
    eret

    .global guest_exit
// Entered from a lower-EL vector: guest x0/x1 at [sp], vector number in x1, and the
// guest_entry frame above them.
guest_exit:
    ldr     x0, [sp, #16]
    stp     x2, x3, [x0, #16]
    stp     x4, x5, [x0, #32]
    stp     x6, x7, [x0, #48]
    stp     x8, x9, [x0, #64]
    stp     x10, x11, [x0, #80]
    stp     x12, x13, [x0, #96]
    stp     x14, x15, [x0, #112]
    stp     x16, x17, [x0, #128]
    stp     x18, x19, [x0, #144]
    stp     x20, x21, [x0, #160]
    stp     x22, x23, [x0, #176]
    stp     x24, x25, [x0, #192]
    stp     x26, x27, [x0, #208]
    stp     x28, x29, [x0, #224]
    str     x30, [x0, #240]
    ldp     x2, x3, [sp]
    stp     x2, x3, [x0]
    mrs     x2, elr_el2
    mrs     x3, spsr_el2
    stp     x2, x3, [x0, #248]
    add     sp, sp, #16
    mov     x0, x1
    ldp     x19, x20, [sp, #16]
    ldp     x21, x22, [sp, #32]
    ldp     x23, x24, [sp, #48]
    ldp     x25, x26, [sp, #64]
    ldp     x27, x28, [sp, #80]
    ldp     x29, x30, [sp, #96]
    add     sp, sp, #112
    ret
"#
);

unsafe extern "C" {
    fn guest_entry(regs: *mut GuestRegs) -> u64;
}

const _: () = assert!(core::mem::offset_of!(GuestRegs, pc) == 248);
const _: () = assert!(core::mem::offset_of!(GuestRegs, pstate) == 256);

/// HCR_EL2 while a guest runs: stage 2 on, physical IRQ/FIQ/SError to EL2, SMC and WFI
/// trapped, set/way cache operations trapped, barriers inner shareable, EL1 AArch64.
const HCR_GUEST: u64 = (1 << 0) // VM
    | (1 << 1) // SWIO
    | (1 << 2) // PTW
    | (1 << 3) // FMO
    | (1 << 4) // IMO
    | (1 << 5) // AMO
    | (1 << 9) // FB
    | (1 << 10) // BSU: inner shareable
    | (1 << 13) // TWI
    | (1 << 19) // TSC
    | (1 << 22) // TSW
    | (1 << 31); // RW
/// HCR_EL2.TTLB: EL1 TLB maintenance traps (for domains whose vCPUs share one CPU, whose
/// broadcast invalidations can be done locally).
const HCR_TTLB: u64 = 1 << 25;
/// HCR_EL2 with no guest: EL1 AArch64, nothing else.
const HCR_HOST: u64 = 1 << 31;

/// How a vCPU's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// PSCI CPU_OFF: the vCPU may be started again.
    CpuOff,
    /// The domain stopped (SYSTEM_OFF, SYSTEM_RESET, or a fatal guest error).
    DomainStopped,
    /// Its CPU is shared and its slice ended, or it waits in WFI: its state is saved.
    Yield,
}

enum Next {
    Resume,
    Stop(End),
}

/// A vCPU's state while it is off its CPU.
pub struct Saved {
    regs: GuestRegs,
    pub ctx: Context,
}

/// Set by this CPU's slice timer: the running vCPU yields at its next exit.
static SLICE_OVER: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];

/// Arms this CPU's slice timer: the EL1 physical timer, which guests cannot reach
/// (CNTHCTL_EL2.EL1PCEN is 0) and the hypervisor's own timer does not use.
pub fn arm_slice() {
    let ticks = crate::sched::SLICE_US * timer::frequency() / 1_000_000;
    CNTP_CVAL_EL0.set(timer::ticks() + ticks);
    CNTP_CTL_EL0.set(1);
}

fn disarm_slice() {
    CNTP_CTL_EL0.set(0);
}

/// Runs vCPU `index` of `dom` on this CPU: from `start` (entry, x0) when it starts, else
/// from its saved state. Returns when it stops, turns itself off or yields its CPU.
pub fn run(dom: &Domain, index: usize, start: Option<(u64, u64)>) -> End {
    let me = super::el2::cpu_index();
    let vcpu = &dom.vcpus[index];
    let saved = vcpu.saved.lock().take();
    let (mut regs, ctx) = match (start, saved) {
        (Some((entry, context)), _) => {
            let mut regs = GuestRegs { pc: entry, pstate: trap::EL1H_MASKED, ..Default::default() };
            regs.x[0] = context;
            (regs, Context::reset())
        }
        (None, Some(s)) => (s.regs, s.ctx),
        (None, None) => return End::CpuOff,
    };
    let vgic = gic::has_vgic();
    let nr_lrs = if vgic { gic::lrs::count() } else { 0 };
    if vgic {
        gic::lrs::reset(nr_lrs);
    }
    ctx.restore(vgic);
    VTCR_EL2.set(stage2::vtcr(super::el2::pa_bits().1));
    VTTBR_EL2.set(dom.vttbr);
    VMPIDR_EL2.set(guest::vcpu_mpidr(index as u32));
    CNTVOFF_EL2.set(dom.cntvoff);
    HCR_EL2.set(if dom.local_tlb.load(Ordering::Acquire) { HCR_GUEST | HCR_TTLB } else { HCR_GUEST });
    if start.is_some() {
        // SAFETY: drops every stage-1/2 TLB entry of this VMID on this CPU's inner
        // shareable domain; nothing but translation caching is affected.
        unsafe {
            core::arch::asm!("isb", "tlbi vmalls12e1is", "dsb ish", "isb", options(nostack, preserves_flags));
        }
    }
    let shared = domain::cpu_shared(me);
    SLICE_OVER[me].store(false, Ordering::Relaxed);
    if shared {
        arm_slice();
    }
    let end = loop {
        let flushed = if vgic {
            let f = dom.vgic.lock().flush(index, nr_lrs);
            gic::lrs::load(&f, nr_lrs);
            f
        } else {
            Flush::default()
        };
        // SAFETY: `regs` lives across the call; guest_entry saves and restores every
        // callee-saved register and returns to this point after the guest's next exception.
        let vector = unsafe { guest_entry(&mut regs) };
        if vgic {
            let now = gic::lrs::save(&flushed);
            // Forwarded interrupts the guest finished with were deactivated through
            // their HW link: nothing to do here but what sync did to their line.
            let _ = dom.vgic.lock().sync(index, &flushed, &now);
        }
        let exit = Exit::decode(vector, ESR_EL2.get(), FAR_EL2.get(), HPFAR_EL2.get());
        match handle(dom, index, exit, &mut regs, shared) {
            Next::Resume => {}
            Next::Stop(e) => break e,
        }
        if dom.stopping.load(Ordering::Acquire) {
            break End::DomainStopped;
        }
        if shared && SLICE_OVER[me].swap(false, Ordering::Relaxed) {
            break End::Yield;
        }
        if dom.ctl_paused.load(Ordering::Acquire) {
            break End::Yield;
        }
    };
    if end == End::Yield {
        let mut s = alloc::boxed::Box::new(Saved { regs, ctx });
        s.ctx.save(vgic);
        *vcpu.saved.lock() = Some(s);
    }
    disarm_slice();
    HCR_EL2.set(HCR_HOST);
    VTTBR_EL2.set(0);
    CNTV_CTL_EL0.set(0);
    if vgic {
        gic::lrs::disable(nr_lrs);
    }
    end
}

fn set_reg(regs: &mut GuestRegs, reg: u8, value: u64) {
    if let Some(r) = regs.x.get_mut(usize::from(reg)) {
        *r = value;
    }
}

fn get_reg(regs: &GuestRegs, reg: u8) -> u64 {
    regs.x.get(usize::from(reg)).copied().unwrap_or(0)
}

/// Delivers a synchronous exception to the guest's EL1 vector.
fn inject_sync(regs: &mut GuestRegs, esr: u64, far: u64) {
    ELR_EL1.set(regs.pc);
    SPSR_EL1.set(regs.pstate);
    ESR_EL1.set(esr);
    FAR_EL1.set(far);
    regs.pc = VBAR_EL1.get() + trap::sync_vector_offset(regs.pstate);
    regs.pstate = trap::EL1H_MASKED;
}

fn from_el0(regs: &GuestRegs) -> bool {
    regs.pstate & 0xf == 0
}

/// CNTV_CTL_EL0 bits: ENABLE, IMASK, ISTATUS.
const CNTV_ENABLE: u64 = 1;
const CNTV_IMASK: u64 = 1 << 1;
const CNTV_ISTATUS: u64 = 1 << 2;

/// A physical interrupt taken while vCPU `index` of `dom` runs on this CPU. True when it
/// was forwarded to a guest (which deactivates it).
fn physical_irq(dom: &Domain, index: usize, intid: u32) -> bool {
    match intid {
        crate::vgic::VTIMER_PPI => {
            // The guest's virtual timer fired: mask it at the timer (the guest unmasks it
            // when it programs the next event) and give the guest its virtual PPI.
            let ctl = CNTV_CTL_EL0.get();
            if ctl & (CNTV_ENABLE | CNTV_IMASK | CNTV_ISTATUS) == CNTV_ENABLE | CNTV_ISTATUS {
                CNTV_CTL_EL0.set(ctl | CNTV_IMASK);
                dom.vgic.lock().raise(index, crate::vgic::VTIMER_PPI);
            }
        }
        // The list registers emptied: the next entry refills them.
        crate::vgic::MAINTENANCE_PPI => {}
        SLICE_PPI => {
            disarm_slice();
            SLICE_OVER[super::el2::cpu_index()].store(true, Ordering::Relaxed);
        }
        // A device interrupt for the domain that owns the device.
        id if id >= 32 && domain::forward_irq(id) => return true,
        _ => super::console::on_irq(intid),
    }
    false
}

/// The EL1 physical timer's PPI: the slice timer.
pub const SLICE_PPI: u32 = 30;

/// A physical interrupt taken while this CPU runs no vCPU (true: forwarded to a guest).
pub fn idle_irq(intid: u32) -> bool {
    match intid {
        // A virtual timer left armed by a vCPU that stopped.
        crate::vgic::VTIMER_PPI => CNTV_CTL_EL0.set(0),
        crate::vgic::MAINTENANCE_PPI => {}
        // The idle tick of a shared CPU: the scheduler looks again.
        SLICE_PPI => disarm_slice(),
        id if id >= 32 && domain::forward_irq(id) => return true,
        _ => super::console::on_irq(intid),
    }
    false
}

fn handle(dom: &Domain, index: usize, exit: Exit, regs: &mut GuestRegs, shared: bool) -> Next {
    let c = &dom.exits;
    ExitCounts::count(match exit {
        Exit::Hvc { .. } | Exit::Smc { .. } => &c.call,
        Exit::Wfi | Exit::Wfe => &c.wfi,
        Exit::DataAbort { ipa, .. } => match dom.mmio.find(ipa) {
            Some((Device::Uart, _)) => &c.uart,
            Some(_) => &c.gic,
            None => &c.other,
        },
        Exit::SysReg { .. } => &c.sysreg,
        Exit::Irq | Exit::Fiq => &c.irq,
        _ => &c.other,
    });
    match exit {
        Exit::Hvc { .. } => call(dom, index, regs),
        Exit::Smc { .. } => {
            regs.pc += 4;
            call(dom, index, regs)
        }
        Exit::Wfi => {
            regs.pc += 4;
            // Wait only when nothing is pending for it; any physical interrupt (its
            // timer, a kick from another CPU, the console) ends the wait. On a shared CPU
            // it gives the CPU to the others instead.
            if !dom.vgic.lock().has_pending(index) {
                if shared {
                    dom.vcpus[index].blocked.store(true, Ordering::Release);
                    return Next::Stop(End::Yield);
                }
                aarch64_cpu::asm::wfi();
            }
            Next::Resume
        }
        Exit::Wfe => {
            regs.pc += 4;
            Next::Resume
        }
        Exit::DataAbort { ipa, write, perm, .. } if dom.cow_fault(ipa, write, perm) => Next::Resume,
        Exit::InstructionAbort { ipa, .. } if dom.cow_fault(ipa, false, false) => Next::Resume,
        Exit::DataAbort { ipa, va, write, access, .. } => {
            match (access, dom.mmio.find(ipa)) {
                (Some(a), Some((dev @ (Device::GicDist | Device::GicRedist), offset))) => {
                    let write = a.write.then(|| get_reg(regs, a.reg));
                    let r = {
                        let mut g = dom.vgic.lock();
                        if dev == Device::GicDist {
                            g.dist_access(index, offset, a.size, write)
                        } else {
                            g.redist_access(offset, a.size, write)
                        }
                    };
                    match r {
                        crate::vgic::Access::Done { value, kick } => {
                            if !a.write {
                                set_reg(regs, a.reg, value);
                            }
                            dom.kick(kick);
                        }
                        crate::vgic::Access::Unknown => {
                            dom.notice(format_args!(
                                "vCPU {index} {} unknown {dev:?} register {offset:#x}: {}",
                                if a.write { "write to" } else { "read of" },
                                if a.write { "ignored" } else { "reads 0" }
                            ));
                            if !a.write {
                                set_reg(regs, a.reg, 0);
                            }
                        }
                    }
                    regs.pc += 4;
                }
                (Some(a), Some((Device::Uart, offset))) => {
                    if a.write {
                        dom.uart_access(offset, Some(get_reg(regs, a.reg) as u32));
                    } else {
                        let v = dom.uart_access(offset, None);
                        set_reg(regs, a.reg, u64::from(v));
                    }
                    regs.pc += 4;
                }
                (None, Some((dev, _))) => {
                    dom.notice(format_args!(
                        "vCPU {index} access to {dev:?} at IPA {ipa:#x} with no instruction syndrome (a pair or writeback access): external abort injected"
                    ));
                    inject_sync(regs, trap::external_abort_esr(from_el0(regs), write), va);
                }
                (_, None) => {
                    dom.notice(format_args!(
                        "vCPU {index} {} IPA {ipa:#x} (VA {va:#x}) outside its memory and devices: external abort injected",
                        if write { "write to" } else { "read from" }
                    ));
                    inject_sync(regs, trap::external_abort_esr(from_el0(regs), write), va);
                }
            }
            Next::Resume
        }
        Exit::InstructionAbort { ipa, va } => {
            dom.notice(format_args!(
                "vCPU {index} instruction fetch from IPA {ipa:#x} (VA {va:#x}) outside its memory: external abort injected"
            ));
            inject_sync(regs, trap::instruction_abort_esr(from_el0(regs)), va);
            Next::Resume
        }
        Exit::SysReg { iss } => {
            let a = trap::SysRegAccess::decode(iss);
            match a.which() {
                SysReg::IccSgi1r if !a.read => {
                    let v = get_reg(regs, a.reg);
                    let kick = dom.vgic.lock().sgi1r(index, v);
                    dom.kick(kick);
                    regs.pc += 4;
                }
                SysReg::IccOtherSgi if !a.read => regs.pc += 4,
                SysReg::Tlbi(op) if !a.read => {
                    ExitCounts::count(&dom.exits.tlbi);
                    super::cache::tlbi_local(op, get_reg(regs, a.reg));
                    regs.pc += 4;
                }
                SysReg::CntpTimer => {
                    if a.read {
                        set_reg(regs, a.reg, 0);
                    }
                    regs.pc += 4;
                }
                _ => {
                    dom.notice(format_args!(
                        "vCPU {index} trapped system register access {:?} (ISS {iss:#x}): undefined",
                        a.enc
                    ));
                    inject_sync(regs, trap::undefined_esr(), 0);
                }
            }
            Next::Resume
        }
        Exit::Irq | Exit::Fiq => {
            gic::handle_pending(|id| physical_irq(dom, index, id));
            Next::Resume
        }
        Exit::SError { esr } => {
            dom.notice(format_args!("vCPU {index} SError (ESR {esr:#x}): domain stopped"));
            Next::Stop(domain::stop(dom, "SError"))
        }
        Exit::Other { ec, esr } => {
            dom.notice(format_args!(
                "vCPU {index} unhandled exception class {ec:#x} (ESR {esr:#x}): undefined"
            ));
            inject_sync(regs, trap::undefined_esr(), 0);
            Next::Resume
        }
    }
}

/// An HVC or trapped SMC: PSCI, and NOT_SUPPORTED for every other SMCCC function.
fn call(dom: &Domain, index: usize, regs: &mut GuestRegs) -> Next {
    if let Some(hc) = crate::hypercall::decode([regs.x[0], regs.x[1], regs.x[2], regs.x[3], regs.x[4]]) {
        let r = domain::hypercall(dom, hc);
        regs.x[..4].copy_from_slice(&r);
        return if dom.stopping.load(Ordering::Acquire) {
            Next::Stop(End::DomainStopped)
        } else {
            Next::Resume
        };
    }
    let c = psci::decode(regs.x[0], regs.x[1], regs.x[2], regs.x[3]);
    let ret = match c {
        Call::Version => psci::VERSION_1_1,
        Call::Features(f) => psci::features(f),
        Call::CpuSuspend => psci::NOT_SUPPORTED,
        Call::MigrateInfoType => 2, // no Trusted OS to migrate
        Call::CpuOn { target, entry, context } => match dom.vcpu_by_mpidr(target) {
            None => psci::INVALID_PARAMETERS,
            Some(t) => {
                // Lock the target vCPU, not the caller (bao #386).
                let r = psci::cpu_on(&mut dom.vcpus[t].power.lock(), entry, context);
                if r == psci::SUCCESS {
                    debug!("DOM{}: vCPU {index} started vCPU {t} at {entry:#x}", dom.id);
                    domain::wake(dom.vcpus[t].pcpu());
                }
                r
            }
        },
        Call::AffinityInfo { target, level } => match (level, dom.vcpu_by_mpidr(target)) {
            (0, Some(t)) => psci::affinity_info(*dom.vcpus[t].power.lock()),
            _ => psci::INVALID_PARAMETERS,
        },
        Call::CpuOff => {
            *dom.vcpus[index].power.lock() = Power::Off;
            return Next::Stop(End::CpuOff);
        }
        Call::SystemOff => {
            info!("DOM{}: powered off (PSCI SYSTEM_OFF from vCPU {index})", dom.id);
            return Next::Stop(domain::stop(dom, "SYSTEM_OFF"));
        }
        Call::SystemReset => {
            info!("DOM{}: PSCI SYSTEM_RESET from vCPU {index}: restarting it", dom.id);
            dom.reset_pending.store(true, Ordering::Release);
            return Next::Stop(domain::stop(dom, "SYSTEM_RESET"));
        }
        Call::Unknown(fid) => {
            debug!("DOM{}: SMCCC function {fid:#x} not supported", dom.id);
            psci::NOT_SUPPORTED
        }
    };
    regs.x[0] = ret as u64;
    Next::Resume
}

/// True when `power` says the vCPU should start now; marks it on.
pub fn take_start(power: &mut Power) -> Option<(u64, u64)> {
    match *power {
        Power::Pending { entry, context } => {
            *power = Power::On;
            Some((entry, context))
        }
        _ => None,
    }
}
