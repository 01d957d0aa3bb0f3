//! Running vCPUs: the world switch into EL1 and back, applying the core's outcome of each
//! exit, and every physical CPU's loop that runs the vCPU the core picks. A vCPU's EL1
//! system registers stay on its CPU unless the CPU is shared.

use core::sync::atomic::{AtomicBool, Ordering};

use aarch64_cpu::registers::*;
use log::{debug, info};

use super::machine::system;
use super::{context, gic, stage2, timer};
use crate::guest;
use crate::hv::domain::Domain;
use crate::hv::exits::{End, Outcome, leave_for};
use crate::hv::system::System;
use crate::hv::vcpu::{Context, GuestRegs, Saved, take_start};
use crate::platform::MAX_CPUS;
use crate::trap::{self, Exit};
use crate::vgic::Flush;

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
// Entered from a lower-EL vector: guest x0/x1 at [sp] (in a 32-byte frame), vector number
// in x1, and the guest_entry frame above them.
guest_exit:
    ldr     x0, [sp, #32]
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
    // An SError the guest caused and that is still pending is taken here, in a window
    // with SError unmasked, not after the next entry into whichever guest runs next: the
    // EL2 SError vector sees its return address in the window and makes this exit that
    // SError (vector 11). The guest's accesses are completed first.
    dsb     sy
    msr     daifclr, #4
    .global guest_serror_window
guest_serror_window:
    isb
    .global guest_serror_window_end
guest_serror_window_end:
    msr     daifset, #4
    add     sp, sp, #32
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

/// HCR_EL2 while a guest runs: stage 2 on, physical IRQ/FIQ/SError to EL2, SMC trapped,
/// set/way cache operations, implementation defined registers and ACTLR_EL1 trapped,
/// barriers inner shareable, EL1 AArch64. WFI is trapped only on a CPU that time-slices
/// several vCPUs (`HCR_TWI`): a vCPU alone on its CPU waits in WFI itself, and whatever
/// wakes it (its timer, a kick, a device) is a physical interrupt that exits to EL2.
const HCR_GUEST: u64 = (1 << 0) // VM
    | (1 << 1) // SWIO
    | (1 << 2) // PTW
    | (1 << 3) // FMO
    | (1 << 4) // IMO
    | (1 << 5) // AMO
    | (1 << 9) // FB
    | (1 << 10) // BSU: inner shareable
    | (1 << 19) // TSC
    | (1 << 20) // TIDCP: implementation defined registers (undefined to guests)
    | (1 << 21) // TACR: ACTLR_EL1 (reads as zero)
    | (1 << 22) // TSW
    | (1 << 31); // RW
/// HCR_EL2.TWI: WFI traps (on a shared CPU, where a waiting vCPU gives the CPU away).
const HCR_TWI: u64 = 1 << 13;
/// HCR_EL2.TTLB: EL1 TLB maintenance traps (for domains whose vCPUs share one CPU, whose
/// broadcast invalidations can be done locally).
const HCR_TTLB: u64 = 1 << 25;
/// HCR_EL2 with no guest: EL1 AArch64, nothing else.
const HCR_HOST: u64 = 1 << 31;

/// Set by this CPU's slice timer (a full exit): the running vCPU yields after it.
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
pub fn run(sys: &System, dom: &Domain, index: usize, start: Option<(u64, u64)>) -> End {
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
    context::restore(&ctx, vgic);
    // The physical virtual-timer PPI is active while this vCPU's virtual one is (pending
    // or active, linked): the vCPU that ran here before may have left it either way.
    if vgic && super::ppi::ready() {
        super::ppi::set_active(
            crate::vgic::VTIMER_PPI,
            dom.vgic.lock().linked_active(index, crate::vgic::VTIMER_PPI),
        );
    }
    VTCR_EL2.set(stage2::vtcr(super::el2::pa_bits().1, super::el2::vmid_bits()));
    VTTBR_EL2.set(dom.vttbr);
    VMPIDR_EL2.set(guest::vcpu_mpidr(index as u32));
    CNTVOFF_EL2.set(dom.cntvoff);
    let hcr = if dom.local() { HCR_GUEST | HCR_TTLB } else { HCR_GUEST };
    // Set before the TLB invalidation below (which covers stage 2 only with HCR_EL2.VM set),
    // and again whenever the CPU starts or stops being shared.
    let shared = sys.cpu_shared(me);
    HCR_EL2.set(if shared { hcr | HCR_TWI } else { hcr });
    let mut twi = Some(shared);
    if start.is_some() {
        // SAFETY: drops every stage-1/2 TLB entry of this VMID on this CPU's inner
        // shareable domain; nothing but translation caching is affected.
        unsafe {
            core::arch::asm!("isb", "tlbi vmalls12e1is", "dsb ish", "isb", options(nostack, preserves_flags));
        }
    }
    // Whether this CPU is shared is read at every full exit: another vCPU may be moved here
    // (and this CPU is kicked), or the others may leave.
    let mut sliced = false;
    // When the guest last exited: the time from there to the next entry is the exit's cost.
    let mut exited_at = timer::ticks();
    dom.exits.tick_hz.store(timer::frequency(), Ordering::Relaxed);
    SLICE_OVER[me].store(false, Ordering::Relaxed);
    // What the list registers were given at the last entry, and what they held at the
    // exit: kept across the loop, so an exit builds no arrays.
    let mut flushed = Flush::default();
    let mut now = [None; crate::vgic::MAX_LRS];
    // The virtual timer can be linked to its physical one on this CPU.
    let linked = vgic && super::ppi::ready();
    let end = loop {
        // Read before the first entry too: a change made between this CPU taking the vCPU
        // and the vCPU becoming kickable (see `Vcpu::needs_kick`) came with no kick.
        if let Some(e) = leave_for(dom.state_now()) {
            break e;
        }
        let shared = sys.cpu_shared(me);
        if shared && !sliced {
            arm_slice();
            sliced = true;
        }
        if twi != Some(shared) {
            HCR_EL2.set(if shared { hcr | HCR_TWI } else { hcr });
            twi = Some(shared);
        }
        if vgic {
            dom.vgic.lock().flush_into(index, nr_lrs, &mut flushed);
            gic::lrs::load(&flushed, nr_lrs);
            if let Some(p) = flushed.release {
                super::ppi::set_active(p, false);
            }
        }
        // The guest runs until a full exit. A light one goes straight back in, without the
        // checks around this loop, which it cannot have made stale: a slice ends, and this
        // domain's state changes on this CPU, only in a full exit's handling; another CPU
        // that changes its state, or moves a vCPU here, kicks this one, and a kick is a
        // full exit. Light are:
        // - the guest's linked virtual timer, the most frequent interrupt, put straight into
        //   a free list register when the model allows (`VGic::raise_linked_into`), the
        //   other registers left as the guest has them;
        // - a TLB invalidation trapped to be done on this CPU (HCR_EL2.TTLB): nothing the
        //   guest did with its interrupts can matter to it, so the list registers too stay
        //   as the guest left them.
        // Either way they are folded back into the model at the next full exit.
        let (vector, taken) = loop {
            dom.exits
                .el2_ticks
                .fetch_add(timer::ticks_unordered().wrapping_sub(exited_at), Ordering::Relaxed);
            // SAFETY: `regs` lives across the call; guest_entry saves and restores every
            // callee-saved register and returns to this point after the guest's next
            // exception.
            let vector = unsafe { guest_entry(&mut regs) };
            exited_at = timer::ticks_unordered();
            if linked && matches!(vector, trap::VECTOR_IRQ | trap::VECTOR_IRQ32) {
                let taken = gic::acknowledge();
                if let Some(t) = taken.filter(|t| t.id == crate::vgic::VTIMER_PPI)
                    && dom.vgic.lock().raise_linked_into(
                        index,
                        (t.id, nr_lrs),
                        &mut flushed,
                        // A closure the compiler inlines (the function itself, passed as
                        // is, was called out of line).
                        #[allow(clippy::redundant_closure)]
                        #[inline(always)]
                        || gic::lrs::read_first(),
                    )
                {
                    gic::lrs::write_one(0, &flushed.lrs[0]);
                    gic::finish(t, true);
                    crate::hv::exits::ExitCounts::count(&dom.exits.irq);
                    continue;
                }
                break (vector, taken);
            }
            if vector == trap::VECTOR_SYNC
                && let Some((op, xt)) = crate::hv::exits::light_tlbi(dom, ESR_EL2.get(), &mut regs)
            {
                super::cache::tlbi_local(op, xt);
                continue;
            }
            break (vector, None);
        };
        let exit = Exit::decode(vector, ESR_EL2.get(), FAR_EL2.get(), HPFAR_EL2.get());
        if vgic {
            sync_lrs(dom, index, &flushed, &mut now);
        }
        // Now, not as it was at the last full exit: a WFI on a CPU the others have left
        // waits here rather than yielding with no tick to wake it.
        let shared = sys.cpu_shared(me);
        match sys.handle_exit(dom, index, exit, &mut regs, shared) {
            Outcome::Resume => {}
            Outcome::Inject { esr, far } => inject_sync(&mut regs, esr, far),
            Outcome::Wait => aarch64_cpu::asm::wfi(),
            Outcome::Tlbi { op, xt } => super::cache::tlbi_local(op, xt),
            Outcome::PhysicalIrq => {
                if let Some(t) = taken {
                    gic::finish(t, physical_irq(sys, dom, index, t.id));
                }
                gic::handle_pending(|id| physical_irq(sys, dom, index, id))
            }
            Outcome::Leave(e) => break e,
        }
        // The slice timer fired (and is off): the vCPU yields if it still shares the CPU;
        // if not, it is armed again should the CPU become shared.
        if SLICE_OVER[me].swap(false, Ordering::Relaxed) {
            sliced = false;
            if shared {
                break End::Yield;
            }
        }
    };
    if end == End::Yield {
        let mut s = alloc::boxed::Box::new(Saved { regs, ctx });
        context::save(&mut s.ctx, vgic);
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

/// Folds what the list registers hold back into `dom`'s vGIC model. Linked interrupts the
/// guest finished with were deactivated through their HW link: nothing to do here but what
/// `sync` did to their line; where the link is kept in software they are ended now.
fn sync_lrs(
    dom: &Domain,
    index: usize,
    flushed: &Flush,
    now: &mut [Option<crate::vgic::Lr>; crate::vgic::MAX_LRS],
) {
    gic::lrs::save(flushed, now);
    let _ = dom.vgic.lock().sync(index, flushed, &now[..flushed.count]);
    gic::lrs::end_soft_links(flushed, now);
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

/// CNTV_CTL_EL0 bits: ENABLE, IMASK, ISTATUS.
const CNTV_ENABLE: u64 = 1;
const CNTV_IMASK: u64 = 1 << 1;
const CNTV_ISTATUS: u64 = 1 << 2;

/// A physical interrupt taken while vCPU `index` of `dom` runs on this CPU. True when it
/// was forwarded to a guest (which deactivates it).
fn physical_irq(sys: &System, dom: &Domain, index: usize, intid: u32) -> bool {
    match intid {
        crate::vgic::VTIMER_PPI if super::ppi::ready() => {
            // The guest's virtual timer fired: its virtual PPI, linked to this one, which
            // stays active (no other timer interrupt) until the guest deactivates it.
            dom.vgic.lock().raise_linked(index, crate::vgic::VTIMER_PPI);
            true
        }
        crate::vgic::VTIMER_PPI => {
            // Without the link: mask it at the timer (the guest unmasks it when it programs
            // the next event) and give the guest its virtual PPI.
            let ctl = CNTV_CTL_EL0.get();
            if ctl & (CNTV_ENABLE | CNTV_IMASK | CNTV_ISTATUS) == CNTV_ENABLE | CNTV_ISTATUS {
                CNTV_CTL_EL0.set(ctl | CNTV_IMASK);
                dom.vgic.lock().raise(index, crate::vgic::VTIMER_PPI);
            }
            false
        }
        _ => common_irq(Some(sys), intid),
    }
}

/// A physical interrupt taken while this CPU runs no vCPU (true: forwarded to a guest).
fn idle_irq(intid: u32) -> bool {
    match intid {
        // A virtual timer left armed by a vCPU that stopped.
        crate::vgic::VTIMER_PPI => {
            CNTV_CTL_EL0.set(0);
            false
        }
        _ => common_irq(system(), intid),
    }
}

/// What any CPU does with a physical interrupt that is not its vCPU's timer.
fn common_irq(sys: Option<&System>, intid: u32) -> bool {
    match intid {
        // The list registers emptied: the next entry refills them.
        crate::vgic::MAINTENANCE_PPI => {}
        gic::SLICE_PPI => {
            disarm_slice();
            SLICE_OVER[super::el2::cpu_index()].store(true, Ordering::Relaxed);
        }
        gic::HYP_TIMER => {
            super::console::flush_quiet();
            if let Some(s) = sys {
                s.check_launch_timeout(timer::uptime_us());
            }
        }
        // A device interrupt for the domain that owns the device.
        id if id >= 32 && sys.is_some_and(|s| s.forward_irq(id)) => return true,
        id if super::console::is_uart_irq(id) => {
            super::console::drain_input(|domid, byte| {
                if let Some(s) = sys {
                    s.deliver_input(domid, byte);
                }
            });
        }
        // A device interrupt no domain owns (its domain was destroyed): off until a new
        // owner routes it again.
        id @ 32..1020 => {
            log::info!("INTID {id}: no domain owns it any more: disabled");
            gic::disable_spi(id);
        }
        // Anything else is a kick: its work is done by whoever reads the state it announces.
        _ => {}
    }
    false
}

/// Every physical CPU's loop once domains exist: run the next of its vCPUs that is due
/// (round robin when it has several), otherwise wait for an interrupt.
pub fn schedule() -> ! {
    let me = super::el2::cpu_index();
    loop {
        let Some(sys) = system() else {
            aarch64_cpu::asm::wfi();
            gic::handle_pending(idle_irq);
            continue;
        };
        let Some((di, vi)) = sys.pick(me, timer::ticks()) else {
            // Nothing to run: a slice of a paused domain's scrubbing and copies, if any.
            if sys.prepare_idle(me) {
                gic::handle_pending(idle_irq);
                continue;
            }
            // Idle: WFI (not WFE, which emulators turn into a busy loop); kicks are SGIs.
            // A shared CPU keeps its tick, to notice when a blocked vCPU's timer is due.
            if sys.cpu_shared(me) {
                arm_slice();
            }
            aarch64_cpu::asm::wfi();
            gic::handle_pending(idle_irq);
            continue;
        };
        let Some(dom) = sys.domains.get(di) else { continue };
        let dom = &*dom;
        if !sys.enter(dom) {
            continue;
        }
        if !sys.ready_to_run(dom) {
            // Its RAM is being scrubbed: a slice of it done, the CPU's other vCPUs and
            // interrupts get their turn.
            sys.leave(dom, vi, End::Yield);
            gic::handle_pending(idle_irq);
            continue;
        }
        let start = take_start(&mut dom.vcpus[vi].power.lock());
        if let Some((entry, _)) = start {
            let t = timer::uptime_us();
            if vi == 0 {
                info!("DOM{}: vCPU {vi} starts on CPU {me} at {entry:#x} ({t} us)", dom.id);
            } else {
                debug!("DOM{}: vCPU {vi} starts on CPU {me} at {entry:#x} ({t} us)", dom.id);
            }
        }
        dom.vcpus[vi].blocked.store(false, Ordering::Release);
        let end = run(sys, dom, vi, start);
        if end == End::CpuOff {
            debug!("DOM{}: vCPU {vi} off", dom.id);
        }
        sys.leave(dom, vi, end);
    }
}
