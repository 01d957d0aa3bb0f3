//! The physical interrupt controller, set up with `arm-gic`: GICv3 (distributor,
//! redistributors, system-register CPU interface) or GICv2 (distributor, MMIO CPU
//! interface, as on the GIC-400 of the Raspberry Pi 4 and ZCU102).

use core::ptr::NonNull;

use arm_gic::gicv2::GicV2;
use arm_gic::gicv3::{GicCpuInterface, GicV3, SgiTarget, SgiTargetGroup};
use arm_gic::{IntId, InterruptGroup, UniqueMmioPointer};
use spin::Mutex;

use crate::platform::Gic;

enum PhysGic {
    V3(GicV3<'static>),
    V2(GicV2<'static>),
}

// SAFETY: the driver holds pointers to the GIC's MMIO registers, which any CPU may access;
// all use goes through the mutex below.
unsafe impl Send for PhysGic {}

static GIC: Mutex<Option<PhysGic>> = Mutex::new(None);

/// What the GIC reported about itself, for the banner.
#[derive(Debug, Clone, Copy)]
pub struct GicInfo {
    pub version: u32,
    pub spis: u32,
}

/// Why the GIC could not be set up.
#[derive(Debug, Clone, Copy)]
pub enum GicInitError {
    /// The DTB describes a GICv3 but the CPU has no GIC system registers.
    NoSysregs,
    /// A redistributor region the driver could not use.
    Redistributor,
}

/// Initialises the distributor and every redistributor, and this (the boot) CPU's
/// interface. The GIC's registers must be mapped as device memory (identity).
pub fn init(desc: &Gic, cpu_count: usize) -> Result<GicInfo, GicInitError> {
    let gic = match *desc {
        Gic::V3 { gicd, gicr, .. } => {
            if !super::el2::has_gicv3_sysregs() {
                return Err(GicInitError::NoSysregs);
            }
            GicCpuInterface::enable_system_register_el2(true);
            // SAFETY: gicd and gicr are the GIC's register frames from the DTB, identity mapped
            // as device memory, and this is the only driver instance ever made for them.
            let mut g = unsafe {
                let d =
                    UniqueMmioPointer::new(NonNull::new(gicd as *mut _).ok_or(GicInitError::Redistributor)?);
                let r = NonNull::new(gicr as *mut _).ok_or(GicInitError::Redistributor)?;
                GicV3::new(d, r, cpu_count).map_err(|_| GicInitError::Redistributor)?
            };
            g.setup(0);
            split_eoi();
            V3.store(true, core::sync::atomic::Ordering::Relaxed);
            PhysGic::V3(g)
        }
        Gic::V2 { gicd, gicc, gicc_size, gich, gicv } => {
            *GICD_V2.lock() = Some(gicd);
            // The 8 KiB CPU interface: page 1 (GICC_DIR) must be reachable.
            let cpu = cpu_interface(gicc, gicc_size);
            if cpu != gicc {
                log::info!("GICv2: CPU interface pages repeat every 64 KiB: driving the 8 KiB at {cpu:#x}");
            }
            GICC_V2.store(cpu, core::sync::atomic::Ordering::Relaxed);
            // SAFETY: as above, for the GICv2 distributor and CPU interface frames.
            let mut g = unsafe { GicV2::new(gicd as *mut _, cpu as *mut _) };
            g.setup();
            split_eoi_v2();
            if let (Some(h), Some(_)) = (gich, gicv) {
                // SAFETY: GICD_IIDR (offset 8) of the distributor frame the DTB gives, mapped
                // as device memory; reading it has no side effect.
                let iidr = unsafe { core::ptr::read_volatile((gicd + 8) as *const u32) };
                let soft = super::gich::link_in_software(iidr);
                if soft {
                    log::info!(
                        "GICv2: distributor {iidr:#x} (QEMU's model): linked interrupts are ended in software, on the guest's deactivation"
                    );
                }
                super::gich::init(h, soft);
            }
            PhysGic::V2(g)
        }
    };
    let info = match &gic {
        PhysGic::V3(g) => GicInfo { version: 3, spis: g.typer().num_spis() },
        PhysGic::V2(g) => GicInfo { version: 2, spis: g.typer().num_irqs().saturating_sub(32) },
    };
    *GIC.lock() = Some(gic);
    SPIS.store(info.spis, core::sync::atomic::Ordering::Relaxed);
    GICD.store(
        match *desc {
            Gic::V3 { gicd, .. } | Gic::V2 { gicd, .. } => gicd,
        },
        core::sync::atomic::Ordering::Relaxed,
    );
    enable_kick(0);
    super::ppi::init_cpu(Some(desc), 0);
    Ok(info)
}

/// The SGI that makes another CPU leave its guest or its WFI.
const KICK: IntId = IntId::sgi(1);

/// Enables this CPU's kick SGI, its hypervisor timer PPI and, on GICv3, the virtual
/// timer and maintenance PPIs.
fn enable_kick(cpu: usize) {
    let timer = IntId::ppi(HYP_TIMER - 16);
    let vtimer = IntId::ppi(crate::vgic::VTIMER_PPI - 16);
    let maint = IntId::ppi(crate::vgic::MAINTENANCE_PPI - 16);
    let slice = IntId::ppi(SLICE_PPI - 16);
    match GIC.lock().as_mut() {
        Some(PhysGic::V3(g)) => {
            for id in [KICK, timer, vtimer, maint, slice] {
                let _ = g.set_interrupt_priority(id, Some(cpu), 0x80);
                let _ = g.enable_interrupt(id, Some(cpu), true);
            }
            GicCpuInterface::set_priority_mask(0xff);
        }
        Some(PhysGic::V2(g)) => {
            let virt = super::gich::present();
            for id in [KICK, timer, slice].into_iter().chain([vtimer, maint].into_iter().filter(|_| virt)) {
                g.set_interrupt_priority(id, 0x80);
                let _ = g.enable_interrupt(id, true);
            }
        }
        None => {}
    }
}

/// Interrupts CPU `cpu`: it leaves its guest (an IRQ exit) or its WFI.
pub fn kick(cpu: usize) {
    let mpidr = super::boot::CPU_MPIDRS.get(cpu).map(|m| m.load(core::sync::atomic::Ordering::Relaxed));
    // What the kick announces (a domain's state, a CPU's sharing, a pending interrupt) is
    // stored before it: the kicked CPU must not take the SGI and read the old state. An
    // SGI register write is not ordered after earlier stores without a barrier.
    aarch64_cpu::asm::barrier::dsb(aarch64_cpu::asm::barrier::ISHST);
    match (GIC.lock().as_mut(), mpidr) {
        (Some(PhysGic::V3(_)), Some(m)) => {
            let target = SgiTarget::List {
                affinity3: (m >> 32) as u8,
                affinity2: (m >> 16) as u8,
                affinity1: (m >> 8) as u8,
                target_list: 1 << (m & 0xf),
            };
            let _ = GicCpuInterface::send_sgi(KICK, target, SgiTargetGroup::CurrentGroup1);
        }
        (Some(PhysGic::V2(g)), _) => g.send_sgi(
            KICK,
            arm_gic::gicv2::SgiTarget::List {
                target_list_filter: arm_gic::gicv2::SgiTargetListFilter::CPUTargetList,
                target_list: 1 << cpu,
            },
        ),
        _ => {}
    }
}

/// An interrupt acknowledged at this CPU's interface, its priority dropped: ended by
/// [`finish`].
#[derive(Clone, Copy)]
pub struct Taken {
    pub id: u32,
    /// What the interface's acknowledge register gave (a GICv2 SGI carries its source).
    raw: u32,
    v3: bool,
}

/// The host's GIC is a GICv3: its CPU interface is this CPU's system registers, driven
/// without the driver's lock.
static V3: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Acknowledges the highest-priority interrupt pending at this CPU and drops its priority
/// (EOImode 1, both GIC versions: deactivation is [`finish`]'s).
/// Inlined into the run loop's straight path (GICv3: two system register accesses).
#[inline(always)]
pub fn acknowledge() -> Option<Taken> {
    if V3.load(core::sync::atomic::Ordering::Relaxed) {
        let id = GicCpuInterface::get_and_acknowledge_interrupt(InterruptGroup::Group1)?;
        GicCpuInterface::end_interrupt(id, InterruptGroup::Group1);
        return Some(Taken { id: u32::from(id), raw: u32::from(id), v3: true });
    }
    acknowledge_v2()
}

#[inline(never)]
fn acknowledge_v2() -> Option<Taken> {
    let mut gic = GIC.lock();
    match gic.as_mut() {
        Some(PhysGic::V2(g)) => {
            let group = v2_group(g);
            // GICC_IAR carries an SGI's source CPU in bits 12:10: the INTID is bits 9:0,
            // and the end of the interrupt names the whole value.
            match g.get_and_acknowledge_interrupt(group) {
                Some(iar) if u32::from(iar) & 0x3ff < 1020 => {
                    g.end_interrupt(iar, group);
                    Some(Taken { id: u32::from(iar) & 0x3ff, raw: u32::from(iar), v3: false })
                }
                _ => None,
            }
        }
        _ => None,
    }
}

/// Ends `t`: deactivated, unless it was forwarded to a guest, whose deactivation of the
/// virtual interrupt ends it through its list register's HW link (or, where the link is
/// kept in software, `lrs::end_soft_links` at the exit that follows it).
pub fn finish(t: Taken, forwarded: bool) {
    match (forwarded, t.v3) {
        (true, _) => {}
        (false, true) => deactivate(t.raw),
        (false, false) => deactivate_v2(t.raw),
    }
}

/// Acknowledges every interrupt pending at this CPU, hands each INTID to `f`, and ends
/// it. Kicks carry no payload: the state they announce is read after. An interrupt `f`
/// forwards to a guest (it returns true) stays active until the guest deactivates it.
pub fn handle_pending(mut f: impl FnMut(u32) -> bool) {
    for _ in 0..16 {
        // Level-triggered sources (the UART) are quiet again once `f` has served them;
        // dropping the priority first and serving after keeps the interface free, and a
        // source still asserting comes back once deactivated.
        let Some(t) = acknowledge() else { return };
        let forwarded = f(t.id);
        finish(t, forwarded);
    }
}

/// ICC_DIR_EL1: deactivates an interrupt whose priority was dropped (EOImode 1).
fn deactivate(intid: u32) {
    // SAFETY: writing ICC_DIR_EL1 (S3_0_C12_C11_1) deactivates that interrupt at this CPU's
    // interface; it touches no memory.
    unsafe {
        core::arch::asm!("msr S3_0_C12_C11_1, {}", in(reg) u64::from(intid), options(nomem, nostack, preserves_flags))
    };
}

/// ICC_CTLR_EL1.EOImode: priority drop and deactivation are separate writes.
fn split_eoi() {
    let v: u64;
    // SAFETY: reading and writing ICC_CTLR_EL1 (S3_0_C12_C12_4) at EL2 changes only how this
    // CPU's interface ends interrupts; handle_pending deactivates every one it does not forward.
    unsafe {
        core::arch::asm!("mrs {}, S3_0_C12_C12_4", out(reg) v, options(nomem, nostack, preserves_flags));
        core::arch::asm!("msr S3_0_C12_C12_4, {}", "isb", in(reg) v | 0b10, options(nomem, nostack, preserves_flags));
    }
}

fn v2_group(g: &GicV2<'_>) -> InterruptGroup {
    if g.typer().has_security_extension() { InterruptGroup::Group1 } else { InterruptGroup::Group0 }
}

/// The hypervisor's own timer (CNTHP), PPI 10.
pub const HYP_TIMER: u32 = 26;
/// The EL1 physical timer's PPI: the slice timer of CPUs that time-share vCPUs (guests
/// cannot reach it: CNTHCTL_EL2.EL1PCEN is 0).
pub const SLICE_PPI: u32 = 30;

static GICD_V2: Mutex<Option<u64>> = Mutex::new(None);
/// The distributor's base address (both versions).
static GICD: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
/// The SPIs the distributor implements (its TYPER).
static SPIS: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

/// INTID `intid` as one of the SPIs the distributor implements, if it is one.
fn spi(intid: u32) -> Option<IntId> {
    let spis = SPIS.load(core::sync::atomic::Ordering::Relaxed);
    intid.checked_sub(32).filter(|&n| n < spis).map(IntId::spi)
}

/// Routes a shared peripheral interrupt to CPU `cpu` and enables it (a device interrupt
/// forwarded to the domain whose vCPU runs there).
pub fn route_spi(intid: u32, cpu: usize) {
    let Some(id) = spi(intid) else {
        log::warn!("INTID {intid} is not one of the GIC's {} SPIs: not routed", spi_count());
        return;
    };
    let mpidr = super::boot::CPU_MPIDRS.get(cpu).map(|m| m.load(core::sync::atomic::Ordering::Relaxed));
    match GIC.lock().as_mut() {
        Some(PhysGic::V3(g)) => {
            let _ = g.distributor().set_routing(id, mpidr);
            let _ = g.set_interrupt_priority(id, None, 0x80);
            let _ = g.enable_interrupt(id, None, true);
        }
        Some(PhysGic::V2(g)) => {
            g.set_interrupt_priority(id, 0x80);
            if let Some(base) = *GICD_V2.lock() {
                // SAFETY: GICD_ITARGETSR<n> byte of this SPI in the distributor the driver
                // owns (mapped as device memory); one CPU interface as its target.
                unsafe {
                    core::ptr::write_volatile((base + 0x800 + u64::from(intid)) as *mut u8, 1 << (cpu & 7))
                };
            }
            let _ = g.enable_interrupt(id, true);
        }
        None => {}
    }
}

/// Disables SPI `intid` at the distributor (a device interrupt no domain owns any more:
/// a level-triggered device left asserting it would otherwise interrupt forever).
pub fn disable_spi(intid: u32) {
    let Some(id) = spi(intid) else { return };
    match GIC.lock().as_mut() {
        Some(PhysGic::V3(g)) => {
            let _ = g.enable_interrupt(id, None, false);
        }
        Some(PhysGic::V2(g)) => {
            let _ = g.enable_interrupt(id, false);
        }
        None => {}
    }
}

/// SPIs the distributor implements (0 before `init`).
pub fn spi_count() -> u32 {
    SPIS.load(core::sync::atomic::Ordering::Relaxed)
}

/// Deactivates SPI `intid` at the distributor (GICD_ICACTIVER<n>, the same offset in both
/// versions).
pub fn deactivate_spi(intid: u32) {
    let base = GICD.load(core::sync::atomic::Ordering::Relaxed);
    if base == 0 || spi(intid).is_none() {
        return;
    }
    let reg = base + 0x380 + u64::from(intid / 32) * 4;
    // SAFETY: GICD_ICACTIVER<n> of the distributor the driver owns, mapped as device
    // memory; writing one bit deactivates only that interrupt.
    unsafe { core::ptr::write_volatile(reg as *mut u32, 1 << (intid % 32)) };
}

/// Sets up a secondary CPU's interface (and, on GICv3, wakes its redistributor).
pub fn init_secondary(cpu: usize) {
    match GIC.lock().as_mut() {
        Some(PhysGic::V3(g)) => {
            GicCpuInterface::enable_system_register_el2(true);
            g.init_cpu(cpu);
            GicCpuInterface::enable_group1(true);
            split_eoi();
        }
        Some(PhysGic::V2(g)) => {
            g.setup();
            split_eoi_v2();
        }
        None => {}
    }
    enable_kick(cpu);
    super::ppi::init_cpu(None, cpu);
}

/// Whether the GIC-400's 4 KiB CPU-interface pages repeat every 64 KiB (the ZynqMP: its DTB
/// gives the CPU interface and GICV 128 KiB; page 0 fills the first 64 KiB, page 1 the
/// next): GICC_IIDR reads the same 60 KiB further on. A frame that does not alias reads
/// zero there (reserved).
fn aliased(gicc: u64, gicc_size: u64) -> bool {
    if gicc_size < 0x2_0000 {
        return false;
    }
    // SAFETY: GICC_IIDR (offset 0xFC) in the CPU interface frame the DTB gives (128 KiB
    // here, all of it mapped as device memory at EL2), at page 0 and at +0xF000; reading it
    // has no side effect.
    let (a, b) = unsafe {
        (
            core::ptr::read_volatile((gicc + 0xfc) as *const u32),
            core::ptr::read_volatile((gicc + 0xf0fc) as *const u32),
        )
    };
    a != 0 && a == b
}

/// The 8 KiB CPU interface to drive: the DTB's frame, or, where pages alias every 64 KiB,
/// the 8 KiB at +0xF000, where page 0 (an alias) and page 1 are adjacent.
fn cpu_interface(gicc: u64, gicc_size: u64) -> u64 {
    if aliased(gicc, gicc_size) { gicc + 0xf000 } else { gicc }
}

/// The 8 KiB hardware virtual CPU interface (GICV) a GICv2 domain is given: the DTB's
/// frame, or, where the GIC-400 aliases its pages every 64 KiB (GICV as GICC), the 8 KiB at
/// +0xF000.
pub fn gicv_frame(desc: Option<Gic>) -> Option<u64> {
    let Some(Gic::V2 { gicc, gicc_size, gicv: Some(gicv), .. }) = desc else { return None };
    if !super::gich::present() {
        return None;
    }
    Some(if aliased(gicc, gicc_size) { gicv + 0xf000 } else { gicv })
}

/// The GICv2 CPU interface in use (8 KiB; 0 on GICv3).
static GICC_V2: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// GICC_CTLR.EOImodeNS (bit 9): priority drop (GICC_EOIR) and deactivation (GICC_DIR) are
/// separate writes, so that a forwarded interrupt stays active until its guest deactivates
/// it through the list register's hardware link.
fn split_eoi_v2() {
    let base = GICC_V2.load(core::sync::atomic::Ordering::Relaxed);
    // SAFETY: GICC_CTLR (offset 0) of this CPU's banked CPU interface, mapped as device
    // memory; setting EOImodeNS changes only how interrupts are ended, and handle_pending
    // deactivates every interrupt it does not forward.
    unsafe {
        let ctlr = base as *mut u32;
        core::ptr::write_volatile(ctlr, core::ptr::read_volatile(ctlr) | 1 << 9);
    }
}

/// GICC_DIR: deactivates an interrupt whose priority was dropped (EOImodeNS), by the value
/// GICC_IAR gave (an SGI's source CPU included).
fn deactivate_v2(iar: u32) {
    let base = GICC_V2.load(core::sync::atomic::Ordering::Relaxed);
    // SAFETY: GICC_DIR (offset 0x1000, page 1) of the CPU interface in use, which
    // `cpu_interface` chose so that page 1 is at +0x1000; mapped as device memory.
    unsafe { core::ptr::write_volatile((base + 0x1000) as *mut u32, iar) };
}

/// True when guests get a virtual GIC: a GICv3 host, or a GICv2 host with a virtual
/// interface (GICH and GICV).
pub fn has_vgic() -> bool {
    match GIC.lock().as_ref() {
        Some(PhysGic::V3(_)) => true,
        Some(PhysGic::V2(_)) => super::gich::present(),
        None => false,
    }
}

/// The list-register back end of this CPU: GICv3's system registers, or GICv2's GICH.
pub mod lrs {
    use crate::vgic::{Flush, Lr, MAX_LRS};
    use aarch64_cpu::registers::{ICH_LR0_EL2, Readable};

    use super::super::gich;
    use super::v3;

    pub fn count() -> usize {
        if gich::present() { gich::count() } else { v3::count() }
    }

    pub fn reset(nr: usize) {
        if gich::present() { gich::reset(nr) } else { v3::reset(nr) }
    }

    pub fn load(f: &Flush, nr: usize) {
        if gich::present() { gich::load(f, nr) } else { v3::load(f, nr) }
    }

    /// Writes list register `n` alone (the others keep what the guest left in them).
    pub fn write_one(n: usize, lr: &Lr) {
        if gich::present() { gich::write_one(n, lr) } else { v3::write(n, lr.to_v3()) }
    }

    /// Reads list register 0 (`None`: empty). Inlined into the run loop's straight path.
    #[inline(always)]
    pub fn read_first() -> Option<Lr> {
        if gich::present() { gich::read_one(0) } else { Lr::from_v3(ICH_LR0_EL2.get()) }
    }

    /// Reads back the registers `f` filled into the first `f.count` entries of `out`.
    pub fn save(f: &Flush, out: &mut [Option<Lr>; MAX_LRS]) {
        if gich::present() { gich::save(f, out) } else { v3::save(f, out) }
    }

    /// After the model folded back what [`save`] read: the linked interrupts the guest
    /// finished with, where the link is kept in software (QEMU's GICv2 model), are ended.
    pub fn end_soft_links(f: &Flush, now: &[Option<Lr>; MAX_LRS]) {
        if gich::present() {
            gich::end_soft_links(f, now)
        }
    }

    pub fn disable(nr: usize) {
        if gich::present() { gich::disable(nr) } else { v3::disable(nr) }
    }
}

/// The GICv3 list-register back end: ICH_LR<n>_EL2 and ICH_HCR_EL2 of this CPU.
mod v3 {
    use aarch64_cpu::registers::*;

    use crate::vgic::{Flush, Lr, MAX_LRS};

    /// How many list registers this CPU has.
    pub fn count() -> usize {
        ((ICH_VTR_EL2.get() & 0x1f) as usize + 1).min(MAX_LRS)
    }

    pub fn write(n: usize, v: u64) {
        match n {
            0 => ICH_LR0_EL2.set(v),
            1 => ICH_LR1_EL2.set(v),
            2 => ICH_LR2_EL2.set(v),
            3 => ICH_LR3_EL2.set(v),
            4 => ICH_LR4_EL2.set(v),
            5 => ICH_LR5_EL2.set(v),
            6 => ICH_LR6_EL2.set(v),
            7 => ICH_LR7_EL2.set(v),
            8 => ICH_LR8_EL2.set(v),
            9 => ICH_LR9_EL2.set(v),
            10 => ICH_LR10_EL2.set(v),
            11 => ICH_LR11_EL2.set(v),
            12 => ICH_LR12_EL2.set(v),
            13 => ICH_LR13_EL2.set(v),
            14 => ICH_LR14_EL2.set(v),
            _ => ICH_LR15_EL2.set(v),
        }
    }

    fn read(n: usize) -> u64 {
        match n {
            0 => ICH_LR0_EL2.get(),
            1 => ICH_LR1_EL2.get(),
            2 => ICH_LR2_EL2.get(),
            3 => ICH_LR3_EL2.get(),
            4 => ICH_LR4_EL2.get(),
            5 => ICH_LR5_EL2.get(),
            6 => ICH_LR6_EL2.get(),
            7 => ICH_LR7_EL2.get(),
            8 => ICH_LR8_EL2.get(),
            9 => ICH_LR9_EL2.get(),
            10 => ICH_LR10_EL2.get(),
            11 => ICH_LR11_EL2.get(),
            12 => ICH_LR12_EL2.get(),
            13 => ICH_LR13_EL2.get(),
            14 => ICH_LR14_EL2.get(),
            _ => ICH_LR15_EL2.get(),
        }
    }

    /// ICH_HCR_EL2.En and .UIE.
    const HCR_EN: u64 = 1;
    const HCR_UIE: u64 = 1 << 1;

    /// A fresh virtual CPU interface for a vCPU starting on this CPU.
    pub fn reset(nr: usize) {
        for n in 0..nr {
            write(n, 0);
        }
        ICH_AP0R0_EL2.set(0);
        ICH_AP1R0_EL2.set(0);
        ICH_VMCR_EL2.set(0);
        ICH_HCR_EL2.set(HCR_EN);
    }

    /// Loads what the model chose; the registers past it are emptied.
    pub fn load(f: &Flush, nr: usize) {
        for n in 0..nr {
            write(n, f.lrs().get(n).map_or(0, Lr::to_v3));
        }
        ICH_HCR_EL2.set(HCR_EN | if f.underflow { HCR_UIE } else { 0 });
    }

    /// Reads back the registers `f` filled. An underflow maintenance interrupt (UIE) ends
    /// here: the next entry asks again if the model still has more than the registers hold.
    pub fn save(f: &Flush, out: &mut [Option<Lr>; MAX_LRS]) {
        for (n, o) in out.iter_mut().enumerate().take(f.count) {
            *o = Lr::from_v3(read(n));
        }
        ICH_HCR_EL2.set(HCR_EN);
    }

    /// The vCPU left this CPU: no virtual interrupts, no maintenance interrupts.
    pub fn disable(nr: usize) {
        for n in 0..nr {
            write(n, 0);
        }
        ICH_HCR_EL2.set(0);
    }
}
