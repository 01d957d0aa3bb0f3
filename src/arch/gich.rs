//! The GICv2 virtual interface control (GICH, as on the GIC-400): the list registers and
//! the virtual CPU interface state of the vCPU that runs on this CPU. Each CPU sees its own
//! interface at the same address.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

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

/// The hardware link is kept in software (see [`link_in_software`]).
static SOFT_LINK: AtomicBool = AtomicBool::new(false);

/// GICD_IIDR of QEMU's GICv2 model (`arm_gic`: Arm's JEP106 code, product 0, revision 0);
/// QEMU before 7.2 reads 0 there. A GIC-400 reads 0x0200_143B.
const IIDR_QEMU_GICV2: [u32; 2] = [0x0000_043b, 0];

/// Whether a distributor reading `iidr` in GICD_IIDR needs the link kept in software:
/// QEMU's GICv2 model deactivates the physical interrupt when the guest deactivates its
/// linked virtual one (GICH_LR.HW), but does not look at that interrupt again, so one
/// still asserted (a timer left firing, a level-triggered device still asking) is pending
/// and never signalled, until something else makes the model look. The GIC architecture
/// makes it pending and signals it, and a GIC-400 does.
pub fn link_in_software(iidr: u32) -> bool {
    IIDR_QEMU_GICV2.contains(&iidr)
}

/// Records the GICH frame (from the host DTB, mapped as device memory at its address).
/// `soft_link`: instead of the HW bit, a linked interrupt's register asks for a maintenance
/// interrupt when the guest deactivates it, and [`end_soft_links`] then deactivates the
/// physical one (one more exit per linked interrupt, through the distributor, which
/// signals it again if it is still asserted).
pub fn init(base: u64, soft_link: bool) {
    SOFT_LINK.store(soft_link, Ordering::Relaxed);
    BASE.store(base, Ordering::Release);
}

/// `lr` as this GIC's list registers hold it: with the HW link, or with the link kept in
/// software.
fn encode(lr: &Lr) -> u32 {
    if lr.hw.is_some() && SOFT_LINK.load(Ordering::Relaxed) {
        Lr { hw: None, eoi: true, ..*lr }.to_v2()
    } else {
        lr.to_v2()
    }
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
        lr.set(f.lrs().get(n).map_or(0, encode));
    }
    r.hcr.set(HCR_EN | if f.underflow { HCR_UIE } else { 0 });
}

/// Writes list register `n` alone.
pub fn write_one(n: usize, lr: &Lr) {
    if let Some(r) = regs()
        && let Some(reg) = r.lr.get(n)
    {
        reg.set(encode(lr));
    }
}

/// Reads list register `n` (`None`: empty, or no such register). A register the guest
/// has finished with that still asks for its maintenance interrupt (a link kept in
/// software, not ended yet) is not empty: it reads as neither pending nor active, `eoi` set.
pub fn read_one(n: usize) -> Option<Lr> {
    let v = regs()?.lr.get(n)?.get();
    Lr::from_v2(v).or_else(|| {
        (v & LR_EOI != 0 && v & LR_HW == 0).then(|| Lr { intid: v & 0x3ff, eoi: true, ..Lr::default() })
    })
}

/// GICH_LR<n>.EOI (with HW clear) and .HW.
const LR_EOI: u32 = 1 << 19;
const LR_HW: u32 = 1 << 31;

/// Reads back the registers `f` filled. An underflow maintenance interrupt (UIE) ends here:
/// the next entry asks again if the model still has more than the registers hold.
pub fn save(f: &Flush, out: &mut [Option<Lr>; MAX_LRS]) {
    let Some(r) = regs() else {
        out.fill(None);
        return;
    };
    for (n, o) in out.iter_mut().enumerate().take(f.count) {
        *o = Lr::from_v2(r.lr[n].get());
    }
    r.hcr.set(HCR_EN);
}

/// Where the link is kept in software: ends each linked interrupt of `f` the guest has
/// finished with (`now`, as [`save`] read them), as the HW link would have ended it when
/// the guest deactivated it: its register is emptied (which ends the maintenance interrupt
/// it raised) and the physical interrupt deactivated. Called once the model has folded
/// the registers back, so that a forwarded interrupt's line is low in the model before its
/// physical interrupt can fire again (on another CPU) and raise it.
pub fn end_soft_links(f: &Flush, now: &[Option<Lr>; MAX_LRS]) {
    let Some(r) = regs().filter(|_| SOFT_LINK.load(Ordering::Relaxed)) else { return };
    for (n, before) in f.lrs().iter().enumerate() {
        if let Some(p) = before.hw
            && !now[n].is_some_and(|l| l.pending || l.active)
        {
            r.lr[n].set(0);
            deactivate(p);
        }
    }
}

/// Deactivates physical interrupt `intid` at the distributor: a PPI at this CPU, an SPI
/// wherever it was taken.
fn deactivate(intid: u32) {
    if intid < 32 {
        super::ppi::set_active(intid, false);
    } else {
        super::gic::deactivate_spi(intid);
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
