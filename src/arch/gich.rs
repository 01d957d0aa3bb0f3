//! The GICv2 virtual interface control (GICH, as on the GIC-400): the list registers and
//! the virtual CPU interface state of the vCPU that runs on this CPU. Each CPU sees its own
//! interface at the same address.

use core::sync::atomic::{AtomicU64, Ordering};

use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::register_structs;
use tock_registers::registers::{ReadOnly, ReadWrite};

use crate::vgic::{Flush, Lr, MAX_LRS};

register_structs! {
    /// GICH registers (GIC architecture v2, virtual interface control).
    pub GichRegs {
        (0x000 => hcr: ReadWrite<u32>),
        (0x004 => vtr: ReadOnly<u32>),
        (0x008 => vmcr: ReadWrite<u32>),
        (0x00c => _reserved0),
        (0x010 => misr: ReadOnly<u32>),
        (0x014 => _reserved1),
        (0x020 => eisr: [ReadOnly<u32>; 2]),
        (0x028 => _reserved2),
        (0x030 => elrsr: [ReadOnly<u32>; 2]),
        (0x038 => _reserved3),
        (0x0f0 => apr: ReadWrite<u32>),
        (0x0f4 => _reserved4),
        (0x100 => lr: [ReadWrite<u32>; 64]),
        (0x200 => @END),
    }
}

/// GICH_HCR.En and .UIE.
const HCR_EN: u32 = 1;
const HCR_UIE: u32 = 1 << 1;

/// The GICH frame's address (0: no GICv2 virtual interface).
static BASE: AtomicU64 = AtomicU64::new(0);

/// Records the GICH frame (from the host DTB, mapped as device memory at its address).
pub fn init(base: u64) {
    BASE.store(base, Ordering::Release);
}

/// The host has a GICv2 virtual interface.
pub fn present() -> bool {
    BASE.load(Ordering::Acquire) != 0
}

fn regs() -> Option<&'static GichRegs> {
    let base = BASE.load(Ordering::Acquire);
    if base == 0 {
        return None;
    }
    // SAFETY: `base` is the GICH frame the host DTB names, mapped as device memory at EL2
    // for the hypervisor's lifetime (the EL2 map includes it); the block is 512 bytes of
    // 32-bit registers, accessed only through tock-registers' volatile accessors.
    Some(unsafe { &*(base as *const GichRegs) })
}

/// How many list registers this CPU has.
pub fn count() -> usize {
    regs().map_or(0, |r| ((r.vtr.get() & 0x3f) as usize + 1).min(MAX_LRS))
}

/// A fresh virtual CPU interface for a vCPU starting on this CPU.
pub fn reset(nr: usize) {
    let Some(r) = regs() else { return };
    for lr in r.lr.iter().take(nr) {
        lr.set(0);
    }
    r.apr.set(0);
    r.vmcr.set(0);
    r.hcr.set(HCR_EN);
}

/// Loads what the model chose; the registers past it are emptied.
pub fn load(f: &Flush, nr: usize) {
    let Some(r) = regs() else { return };
    for (n, lr) in r.lr.iter().enumerate().take(nr) {
        lr.set(f.lrs().get(n).map_or(0, Lr::to_v2));
    }
    r.hcr.set(HCR_EN | if f.underflow { HCR_UIE } else { 0 });
}

/// Writes list register `n` alone.
pub fn write_one(n: usize, lr: &Lr) {
    if let Some(r) = regs()
        && let Some(reg) = r.lr.get(n)
    {
        reg.set(lr.to_v2());
    }
}

/// Reads list register `n` (`None`: empty, or no such register).
pub fn read_one(n: usize) -> Option<Lr> {
    regs().and_then(|r| r.lr.get(n).and_then(|l| Lr::from_v2(l.get())))
}

/// Reads back the registers `f` filled.
pub fn save(f: &Flush, out: &mut [Option<Lr>; MAX_LRS]) {
    let Some(r) = regs() else {
        out.fill(None);
        return;
    };
    for (n, o) in out.iter_mut().enumerate().take(f.count) {
        *o = Lr::from_v2(r.lr[n].get());
    }
}

/// The vCPU left this CPU: no virtual interrupts, no maintenance interrupts.
pub fn disable(nr: usize) {
    let Some(r) = regs() else { return };
    for lr in r.lr.iter().take(nr) {
        lr.set(0);
    }
    r.hcr.set(0);
}

/// The virtual CPU interface's control (GICH_VMCR) and active priorities (GICH_APR).
pub fn state() -> (u64, u64) {
    regs().map_or((0, 0), |r| (u64::from(r.vmcr.get()), u64::from(r.apr.get())))
}

/// Restores what [`state`] returned.
pub fn set_state(vmcr: u64, apr: u64) {
    if let Some(r) = regs() {
        r.vmcr.set(vmcr as u32);
        r.apr.set(apr as u32);
    }
}
