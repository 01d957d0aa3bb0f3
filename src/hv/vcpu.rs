//! A vCPU as the core sees it: its power state, the physical CPU it is pinned to, and the
//! registers it left with while it is off its CPU. The arch layer fills and applies the
//! register values; the core only keeps them and reads the virtual timer's.

use alloc::boxed::Box;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use spin::Mutex;

use crate::psci::Power;

/// A vCPU's general registers, PC and PSTATE as saved at each exit.
#[repr(C)]
#[derive(Debug, Default, Clone)]
pub struct GuestRegs {
    pub x: [u64; 31],
    pub pc: u64,
    pub pstate: u64,
}

impl GuestRegs {
    /// Register `reg` (31 is XZR: reads 0).
    pub fn get(&self, reg: u8) -> u64 {
        self.x.get(usize::from(reg)).copied().unwrap_or(0)
    }

    /// Sets register `reg` (writes to XZR are dropped).
    pub fn set(&mut self, reg: u8, value: u64) {
        if let Some(r) = self.x.get_mut(usize::from(reg)) {
            *r = value;
        }
    }

    /// The exception came from EL0.
    pub fn from_el0(&self) -> bool {
        self.pstate & 0xf == 0
    }
}

/// FP/SIMD state: V0-V31, FPCR, FPSR (the arch layer's save and restore code knows this
/// layout).
#[repr(C, align(16))]
#[derive(Clone)]
pub struct FpRegs {
    pub v: [u128; 32],
    pub fpcr: u64,
    pub fpsr: u64,
}

const _: () = assert!(core::mem::offset_of!(FpRegs, fpcr) == 512);

/// A vCPU's state beyond its general registers: EL1 system registers, FP/SIMD, its virtual
/// timer and its virtual CPU interface.
#[derive(Clone)]
pub struct Context {
    pub fp: FpRegs,
    /// EL1 system registers in the order of [`SYSREGS`].
    pub el1: [u64; SYSREGS],
    pub cntv_ctl: u64,
    pub cntv_cval: u64,
    pub vmcr: u64,
    pub ap0r0: u64,
    pub ap1r0: u64,
}

/// How many EL1 system registers a context holds.
pub const SYSREGS: usize = 24;
/// The index of SCTLR_EL1 in [`Context::el1`].
pub const SCTLR: usize = 0;
/// SCTLR_EL1 at vCPU reset: MMU and caches off, RES1 bits.
pub const SCTLR_EL1_RESET: u64 = 0x30d0_0800;

impl Context {
    /// The state of a vCPU that has not run yet: nothing of another vCPU's.
    pub fn reset() -> Self {
        let mut el1 = [0; SYSREGS];
        el1[SCTLR] = SCTLR_EL1_RESET;
        Context {
            fp: FpRegs { v: [0; 32], fpcr: 0, fpsr: 0 },
            el1,
            cntv_ctl: 0,
            cntv_cval: 0,
            vmcr: 0,
            ap0r0: 0,
            ap1r0: 0,
        }
    }

    /// The saved virtual timer would have fired by physical count `now` (its domain's
    /// CNTVOFF is `cntvoff`).
    pub fn timer_due(&self, now: u64, cntvoff: u64) -> bool {
        const ENABLE: u64 = 1;
        const IMASK: u64 = 1 << 1;
        self.cntv_ctl & (ENABLE | IMASK) == ENABLE && now.wrapping_sub(cntvoff) >= self.cntv_cval
    }
}

/// A vCPU's state while it is off its CPU.
pub struct Saved {
    pub regs: GuestRegs,
    pub ctx: Context,
}

/// A vCPU: its power state (locked on its own), its physical CPU, and, while it is off its
/// CPU, its saved state.
pub struct Vcpu {
    pub power: Mutex<Power>,
    /// Its physical CPU: changed only while its domain is paused by the launch, under the
    /// run queues' locks.
    cpu: AtomicUsize,
    pub saved: Mutex<Option<Box<Saved>>>,
    /// It left its CPU in WFI: it runs again once an interrupt is due.
    pub blocked: AtomicBool,
}

impl Vcpu {
    pub fn new(pcpu: usize) -> Vcpu {
        Vcpu {
            power: Mutex::new(Power::Off),
            cpu: AtomicUsize::new(pcpu),
            saved: Mutex::new(None),
            blocked: AtomicBool::new(false),
        }
    }

    /// The physical CPU it runs on.
    pub fn pcpu(&self) -> usize {
        self.cpu.load(Ordering::Acquire)
    }

    pub(super) fn set_pcpu(&self, cpu: usize) {
        self.cpu.store(cpu, Ordering::Release);
    }

    /// An interrupt was just made pending for it: whether its physical CPU must be
    /// interrupted. Yes when it is on its CPU (in the guest, or waiting there in WFI), and
    /// once when it waits off its CPU in WFI (a shared CPU's scheduler must look again: the
    /// flag is cleared, so the next raise does not kick until it blocks again). No when it
    /// is off its CPU and runnable, or off: it sees the interrupt when it next runs. So a
    /// guest raising interrupts in a loop does not make another domain's vCPU on a shared
    /// CPU exit at every raise.
    ///
    /// No wakeup is lost: a vCPU blocks by setting `blocked` after it found nothing
    /// pending, and a raiser reads `blocked` after making the interrupt pending (both under
    /// or after the vGIC's lock), so either the raiser sees it blocked, or the vCPU sees the
    /// interrupt pending, or the vCPU has not left its CPU yet (then it is kicked).
    pub fn needs_kick(&self) -> bool {
        if self.blocked.swap(false, Ordering::SeqCst) {
            return true;
        }
        matches!(*self.power.lock(), Power::On) && self.saved.lock().is_none()
    }

    /// Back to its state before it first ran.
    pub(super) fn reset(&self) {
        *self.power.lock() = Power::Off;
        *self.saved.lock() = None;
        self.blocked.store(false, Ordering::Release);
    }
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
