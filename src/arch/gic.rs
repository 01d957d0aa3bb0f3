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
            PhysGic::V3(g)
        }
        Gic::V2 { gicd, gicc, .. } => {
            *GICD_V2.lock() = Some(gicd);
            // SAFETY: as above, for the GICv2 distributor and CPU interface frames.
            let mut g = unsafe { GicV2::new(gicd as *mut _, gicc as *mut _) };
            g.setup();
            PhysGic::V2(g)
        }
    };
    let info = match &gic {
        PhysGic::V3(g) => GicInfo { version: 3, spis: g.typer().num_spis() },
        PhysGic::V2(g) => GicInfo { version: 2, spis: g.typer().num_irqs().saturating_sub(32) },
    };
    *GIC.lock() = Some(gic);
    enable_kick(0);
    Ok(info)
}

/// The SGI that makes another CPU leave its guest or its WFI.
const KICK: IntId = IntId::sgi(1);

/// Enables this CPU's kick SGI and its hypervisor timer PPI.
fn enable_kick(cpu: usize) {
    let timer = IntId::ppi(HYP_TIMER - 16);
    match GIC.lock().as_mut() {
        Some(PhysGic::V3(g)) => {
            for id in [KICK, timer] {
                let _ = g.set_interrupt_priority(id, Some(cpu), 0x80);
                let _ = g.enable_interrupt(id, Some(cpu), true);
            }
            GicCpuInterface::set_priority_mask(0xff);
        }
        Some(PhysGic::V2(g)) => {
            for id in [KICK, timer] {
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

/// Acknowledges every interrupt pending at this CPU, hands each INTID to `f`, and ends
/// it. Kicks carry no payload: the state they announce is read after.
pub fn handle_pending(mut f: impl FnMut(u32)) {
    for _ in 0..16 {
        let id = {
            let mut gic = GIC.lock();
            match gic.as_mut() {
                Some(PhysGic::V3(_)) => {
                    match GicCpuInterface::get_and_acknowledge_interrupt(InterruptGroup::Group1) {
                        Some(id) => {
                            GicCpuInterface::end_interrupt(id, InterruptGroup::Group1);
                            id
                        }
                        None => return,
                    }
                }
                Some(PhysGic::V2(g)) => {
                    let group = v2_group(g);
                    match g.get_and_acknowledge_interrupt(group) {
                        Some(id) if u32::from(id) < 1020 => {
                            g.end_interrupt(id, group);
                            id
                        }
                        _ => return,
                    }
                }
                None => return,
            }
        };
        // Level-triggered sources (the UART) are quiet again once `f` has served them;
        // ending first and serving after keeps the lock short, and a source still
        // asserting comes back on the next pass.
        f(u32::from(id));
    }
}

fn v2_group(g: &GicV2<'_>) -> InterruptGroup {
    if g.typer().has_security_extension() { InterruptGroup::Group1 } else { InterruptGroup::Group0 }
}

/// The hypervisor's own timer (CNTHP), PPI 10.
pub const HYP_TIMER: u32 = 26;

/// Enables a shared peripheral interrupt, delivered to CPU 0.
pub fn enable_spi(intid: u32) {
    let id = IntId::spi(intid - 32);
    match GIC.lock().as_mut() {
        Some(PhysGic::V3(g)) => {
            let mpidr = super::boot::CPU_MPIDRS[0].load(core::sync::atomic::Ordering::Relaxed);
            let _ = g.distributor().set_routing(id, Some(mpidr));
            let _ = g.set_interrupt_priority(id, None, 0x80);
            let _ = g.enable_interrupt(id, None, true);
        }
        Some(PhysGic::V2(g)) => {
            g.set_interrupt_priority(id, 0x80);
            if let Some(base) = *GICD_V2.lock() {
                // SAFETY: GICD_ITARGETSR<n> byte of this SPI in the distributor the driver
                // owns (mapped as device memory); CPU interface 0 as its only target.
                unsafe { core::ptr::write_volatile((base + 0x800 + u64::from(intid)) as *mut u8, 1) };
            }
            let _ = g.enable_interrupt(id, true);
        }
        None => {}
    }
}

static GICD_V2: Mutex<Option<u64>> = Mutex::new(None);

/// Sets up a secondary CPU's interface (and, on GICv3, wakes its redistributor).
pub fn init_secondary(cpu: usize) {
    match GIC.lock().as_mut() {
        Some(PhysGic::V3(g)) => {
            GicCpuInterface::enable_system_register_el2(true);
            g.init_cpu(cpu);
            GicCpuInterface::enable_group1(true);
        }
        Some(PhysGic::V2(g)) => g.setup(),
        None => {}
    }
    enable_kick(cpu);
}
