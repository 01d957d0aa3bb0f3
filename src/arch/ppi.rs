//! A private peripheral interrupt's active state at this CPU, set and cleared directly:
//! the virtual timer's PPI is linked (HW) to the guest's virtual one, so while a vCPU's
//! virtual timer interrupt is pending or active the physical one stays active, and each
//! vCPU that comes onto the CPU brings its own state (where the link is kept in software,
//! `gich::end_soft_links` clears it here too). GICv3: the SGI frame of this CPU's
//! redistributor (GICR_ISACTIVER0 / GICR_ICACTIVER0); GICv2: the distributor's banked
//! GICD_ISACTIVER0 / GICD_ICACTIVER0.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::platform::{Gic, MAX_CPUS};

/// Each CPU's register block for its private interrupts: its redistributor's SGI frame
/// (GICv3), or the distributor (GICv2, banked). 0: not found.
static PRIVATE_BASE: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

const ISACTIVER0: u64 = 0x300;
const ICACTIVER0: u64 = 0x380;
/// GICR_TYPER: Last (bit 4), VLPIS (bit 1: the frame has two more 64 KiB pages),
/// Affinity_Value (bits 63:32).
const GICR_TYPER: u64 = 0x8;

/// The GIC the boot CPU found.
static DESC: spin::Mutex<Option<Gic>> = spin::Mutex::new(None);

/// Finds this CPU's block; called on each CPU once its GIC interface is set up (the boot
/// CPU gives the GIC's description).
pub fn init_cpu(desc: Option<&Gic>, cpu: usize) {
    if let Some(d) = desc {
        *DESC.lock() = Some(*d);
    }
    let Some(desc) = *DESC.lock() else { return };
    let base = match desc {
        // Without a virtual interface no guest has a virtual GIC to link to.
        Gic::V2 { gicd, .. } if super::gich::present() => gicd,
        Gic::V2 { .. } => return,
        Gic::V3 { gicr, gicr_size, .. } => own_redistributor(gicr, gicr_size).map_or(0, |rd| rd + 0x1_0000),
    };
    if base == 0 {
        log::warn!("CPU {cpu}: its redistributor was not found: the virtual timer cannot be HW-linked");
    }
    if let Some(b) = PRIVATE_BASE.get(cpu) {
        b.store(base, Ordering::Relaxed);
    }
}

/// The redistributor frame whose GICR_TYPER affinity is this CPU's MPIDR.
fn own_redistributor(gicr: u64, size: u64) -> Option<u64> {
    let m = super::el2::mpidr();
    let aff = (m >> 32 & 0xff) << 24 | (m & 0xff_ffff);
    let mut frame = gicr;
    while frame + 0x2_0000 <= gicr + size {
        // SAFETY: GICR_TYPER of a redistributor frame inside the region the DTB gives,
        // mapped as device memory at EL2; reading it has no side effect.
        let typer = unsafe { core::ptr::read_volatile((frame + GICR_TYPER) as *const u64) };
        if typer >> 32 == aff {
            return Some(frame);
        }
        if typer & (1 << 4) != 0 {
            return None;
        }
        frame += if typer & (1 << 1) != 0 { 0x4_0000 } else { 0x2_0000 };
    }
    None
}

/// Sets (true) or clears PPI `intid`'s active state at this CPU.
pub fn set_active(intid: u32, active: bool) {
    let Some(base) = PRIVATE_BASE.get(super::el2::cpu_index()).map(|b| b.load(Ordering::Relaxed)) else {
        return;
    };
    if base == 0 || !(16..32).contains(&intid) {
        return;
    }
    let reg = base + if active { ISACTIVER0 } else { ICACTIVER0 };
    // SAFETY: GICR_ISACTIVER0/ICACTIVER0 of this CPU's redistributor (or the GICv2
    // distributor's banked registers), mapped as device memory; one bit changes only
    // that private interrupt of this CPU.
    unsafe { core::ptr::write_volatile(reg as *mut u32, 1 << intid) };
}

/// Whether this CPU's private interrupts can be set active (the HW link is usable).
pub fn ready() -> bool {
    PRIVATE_BASE.get(super::el2::cpu_index()).is_some_and(|b| b.load(Ordering::Relaxed) != 0)
}
