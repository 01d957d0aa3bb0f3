//! A domain's virtual GIC: its registers, interrupt state and list-register choice.
//!
//! The guest programs a GICv3 distributor and redistributors, or a GICv2 distributor
//! ([`VGic::new_v2`], [`VGic::dist_v2_access`]; its CPU interface is the hardware's
//! virtual one), by trapped MMIO decoded through one table of per-interrupt register
//! fields; the model keeps the state of every virtual interrupt and chooses what goes into
//! a vCPU's list registers before it runs.
//!
//! The model is the truth; list registers are a cache of it. Before a vCPU enters the
//! guest, [`VGic::flush_into`] picks the interrupts it should see (active ones first, so a
//! guest can always finish what it started, then pending ones by priority) and describes
//! them as back-end-neutral [`Lr`]s; after the vCPU exits, [`VGic::sync`] folds what the
//! guest did with them back in. Encoding an [`Lr`] for GICv3 (`ICH_LR<n>_EL2`) or GICv2
//! (`GICH_LR<n>`) is [`Lr::to_v3`] / [`Lr::to_v2`], so the model itself knows no back end.
//!
//! The parts: `irq` (one interrupt's state and the hypervisor's inputs to it), `regs` (what
//! the distributor and redistributors share: offsets, identification values and the
//! per-interrupt register table), `dist` (GICD), `redist` (GICR), `sgi` (vCPU affinities
//! and ICC_SGI1R_EL1), `dist_v2` (the GICv2 distributor, its SGIs with their source CPU
//! and its CPU targets), `flush` (list-register choice and fold-back) and `lr` (the GICv3
//! and GICv2 list-register encodings).

mod dist;
mod dist_v2;
mod flush;
mod irq;
mod lr;
mod redist;
mod regs;
mod sgi;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_forward;
#[cfg(test)]
mod tests_v2;

pub use flush::Flush;
pub use lr::Lr;
pub use regs::Access;
pub use sgi::vcpu_mpidr;

use alloc::vec;
use alloc::vec::Vec;

use irq::Irq;
use redist::Redist;
use regs::CTLR_ARE_NS;

/// SGIs and PPIs: banked per vCPU.
pub const PRIVATE: u32 = 32;
/// The virtual timer's PPI.
pub const VTIMER_PPI: u32 = 27;
/// The GIC maintenance interrupt (a physical PPI at EL2).
pub const MAINTENANCE_PPI: u32 = 25;
/// Most list registers any back end has.
pub const MAX_LRS: usize = 16;

/// Distributor frame size (GICv3).
pub const GICD_SIZE: u64 = 0x1_0000;
/// One redistributor (RD_base + SGI_base frames).
pub const GICR_STRIDE: u64 = 0x2_0000;
/// Distributor frame size (GICv2).
pub const GICD_V2_SIZE: u64 = 0x1000;
/// GICv2 CPU interface frame size (GICC, where the guest gets the GICV frame).
pub const GICC_V2_SIZE: u64 = 0x2000;
/// Most CPU interfaces a GICv2 has: vCPUs from this one on are no SGI source or target.
pub const V2_MAX_CPUS: usize = 8;

/// One domain's virtual GIC.
#[derive(Debug, Clone)]
pub struct VGic {
    ctlr: u64,
    spis: Vec<Irq>,
    /// Bit n of word w: SPI 32 + 64w + n may be live (pending, active, in a list register,
    /// or its physical interrupt active for it). Every change to an interrupt goes through
    /// `irq_mut` (or marks the bit itself), which sets its bit; `flush` clears the bits of
    /// those it finds idle. So list-register choice looks only at interrupts that can
    /// matter, not at every one at every entry.
    live_spis: Vec<u64>,
    cpus: Vec<Redist>,
    /// The guest sees a GICv2: list registers take each interrupt's group from the model
    /// (GICD_IGROUPR) instead of always Group 1.
    v2: bool,
}

/// The set bits of `w`, lowest first.
pub(super) fn bits(mut w: u64) -> impl Iterator<Item = usize> {
    core::iter::from_fn(move || {
        (w != 0).then(|| {
            let n = w.trailing_zeros() as usize;
            w &= w - 1;
            n
        })
    })
}

/// The set bits of `words` (bit n of word k is 64k + n), lowest first.
pub(super) fn bits_of(words: &[u64]) -> impl Iterator<Item = usize> + '_ {
    words.iter().enumerate().flat_map(|(k, &w)| bits(w).map(move |n| 64 * k + n))
}

impl VGic {
    /// A vGIC for `vcpus` vCPUs with `spis` shared interrupts (rounded up to a multiple
    /// of 32, at most 988).
    pub fn new(vcpus: usize, spis: u32) -> Self {
        let spis = spis.div_ceil(32).clamp(1, 30) * 32;
        let mut private = [Irq::default(); PRIVATE as usize];
        for (i, irq) in private.iter_mut().enumerate() {
            irq.edge = i < 16;
        }
        // The virtual timer's PPI is linked to the physical one: the guest's deactivation
        // ends the physical interrupt too (no masking at the timer the guest would see).
        private[VTIMER_PPI as usize].hw = Some(VTIMER_PPI as u16);
        VGic {
            ctlr: CTLR_ARE_NS,
            spis: vec![Irq::default(); spis as usize],
            live_spis: vec![0; (spis as usize).div_ceil(64)],
            cpus: vec![Redist { private, asleep: true, live: 0 }; vcpus],
            v2: false,
        }
    }

    /// A vGIC whose guest sees a GICv2 distributor ([`VGic::dist_v2_access`]): as
    /// [`VGic::new`], with every interrupt in Group 0 until the guest writes
    /// GICD_IGROUPR (a guest that enables only GICC_CTLR bit 0, as Linux does, sees
    /// them). A GICv2 has at most [`V2_MAX_CPUS`] CPU interfaces.
    pub fn new_v2(vcpus: usize, spis: u32) -> Self {
        VGic { ctlr: 0, v2: true, ..VGic::new(vcpus, spis) }
    }

    /// Marks every interrupt live (tests: `flush` then looks at all of them).
    #[cfg(test)]
    pub(super) fn mark_all_live(&mut self) {
        for c in &mut self.cpus {
            c.live = u32::MAX;
        }
        self.live_spis.fill(u64::MAX);
    }

    /// INTIDs below this exist (SGIs, PPIs and SPIs).
    pub fn limit(&self) -> u32 {
        PRIVATE + self.spis.len() as u32
    }

    fn irq(&self, vcpu: usize, intid: u32) -> Option<&Irq> {
        if intid < PRIVATE {
            self.cpus.get(vcpu).map(|c| &c.private[intid as usize])
        } else {
            self.spis.get((intid - PRIVATE) as usize)
        }
    }

    fn irq_mut(&mut self, vcpu: usize, intid: u32) -> Option<&mut Irq> {
        if intid < PRIVATE {
            self.cpus.get_mut(vcpu).map(|c| {
                c.live |= 1 << intid;
                &mut c.private[intid as usize]
            })
        } else {
            let n = (intid - PRIVATE) as usize;
            if let Some(w) = self.live_spis.get_mut(n / 64) {
                *w |= 1 << (n % 64);
            }
            self.spis.get_mut(n)
        }
    }

    /// The vCPU an interrupt is delivered to.
    fn owner(&self, vcpu: usize, intid: u32) -> usize {
        if intid < PRIVATE { vcpu } else { self.irq(vcpu, intid).map_or(0, |i| usize::from(i.target)) }
    }

    fn kick_for(&self, vcpu: usize, intid: u32) -> u64 {
        1 << (self.owner(vcpu, intid) % 64)
    }
}
