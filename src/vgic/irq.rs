//! One virtual interrupt's state, how the hypervisor drives it, and whether a vCPU has one due.

use super::regs::CTLR_GRP1A;
use super::{PRIVATE, VGic};

/// One virtual interrupt's state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Irq {
    pub(super) enabled: bool,
    /// Latched pending state (edge, or set by software); for a level interrupt the line
    /// adds to it.
    pub(super) pending: bool,
    pub(super) active: bool,
    /// Level-sensitive line state.
    pub(super) level: bool,
    /// Edge-triggered (GICD_ICFGR 0b10); SGIs always are.
    pub(super) edge: bool,
    pub(super) priority: u8,
    pub(super) group1: bool,
    /// SPIs: target vCPU (from GICD_IROUTER or GICD_ITARGETSR), and the raw router value.
    pub(super) target: u16,
    pub(super) router: u64,
    /// SPIs: the GICv2 CPU target mask as written to GICD_ITARGETSR (existing vCPUs only).
    pub(super) targets: u8,
    /// SGIs: the other source vCPUs it is pending from (bit n = vCPU n, n >= 1; a GICv2
    /// SGI is pending once per source). `pending` stands for source 0, and for SGIs that
    /// have no source (ICC_SGI1R_EL1, the hypervisor).
    pub(super) sources: u8,
    /// SGIs: the source vCPU of the one that is active.
    pub(super) act_src: u8,
    /// The vCPU whose list registers hold it now, or on which it is still active.
    pub(super) in_lr: Option<u16>,
    /// Its pending state went into a list register from the latch (not from the line).
    pub(super) lr_latched: bool,
    /// A physical interrupt linked to it (the guest's deactivation reaches it). A list
    /// register links at most a 13-bit one; 16 bits keep this struct at 32 bytes.
    pub(super) hw: Option<u16>,
    /// A physical SPI forwarded by the hypervisor: its list register links it (HW) to the
    /// same physical INTID, which stays active until the guest deactivates it; `sync`
    /// reports the deactivation.
    pub(super) forwarded: bool,
    /// Its linked physical interrupt (`hw`) fired for it and stays active until the guest
    /// deactivates this one through a list register's HW link (or the hypervisor releases
    /// it once this one is neither pending nor active).
    pub(super) hw_active: bool,
    /// Forwarded: its physical interrupt fired again after the guest deactivated the last
    /// one through the link and before that was folded back (`sync`), which then keeps the
    /// line high for the new one instead of dropping it.
    pub(super) refired: bool,
}

// Every list-register choice walks arrays of these: a power-of-two size keeps the
// indexing (and the hypervisor's image) small.
const _: () = assert!(core::mem::size_of::<Irq>() == 32);

impl Irq {
    /// It may matter to list-register choice: pending, active, in a list register, or
    /// its linked physical interrupt active.
    pub(super) fn live(&self) -> bool {
        self.pending
            || self.sources != 0
            || self.level
            || self.active
            || self.in_lr.is_some()
            || self.hw_active
    }

    pub(super) fn pending_now(&self) -> bool {
        self.pending || self.sources != 0 || (!self.edge && self.level)
    }

    /// SGIs: the source vCPUs (bit n = vCPU n) it is pending from.
    pub(super) fn sgi_sources(&self) -> u8 {
        (self.sources & !1) | u8::from(self.pending)
    }

    /// SGIs: makes it pending from source vCPU `source` (0..8); for source 0 (every
    /// other interrupt's), sets the latch.
    pub(super) fn give_source(&mut self, source: u8) {
        match source {
            0 => self.pending = true,
            s => self.sources |= 1 << (s & 7),
        }
    }

    /// SGIs: no longer pending from source vCPU `source` (0..8); for source 0, clears
    /// the latch.
    pub(super) fn take_source(&mut self, source: u8) {
        match source {
            0 => self.pending = false,
            s => self.sources &= !(1 << (s & 7)),
        }
    }
}

impl VGic {
    /// Makes an edge interrupt (an SGI, or a PPI/SPI raised by the hypervisor) pending.
    /// Returns the vCPUs (bitmask) to wake.
    pub fn raise(&mut self, vcpu: usize, intid: u32) -> u64 {
        match self.irq_mut(vcpu, intid) {
            // Already pending: whoever must see it was woken when it became pending, and
            // raising it again changes nothing (a flood of SGIs or doorbells costs the
            // sender's exits, not the target CPU's).
            Some(irq) if irq.pending => 0,
            Some(irq) => {
                irq.pending = true;
                self.kick_for(vcpu, intid)
            }
            None => 0,
        }
    }

    /// Makes `intid` pending because its linked physical interrupt fired (and stays
    /// active): its list register will carry the HW link. Returns the vCPUs to wake.
    pub fn raise_linked(&mut self, vcpu: usize, intid: u32) -> u64 {
        if let Some(irq) = self.irq_mut(vcpu, intid) {
            irq.hw_active = irq.hw.is_some();
        }
        self.raise(vcpu, intid)
    }

    /// Whether `intid`'s linked physical interrupt must be active while vCPU `vcpu` runs
    /// (set again each time the vCPU comes onto a CPU).
    pub fn linked_active(&self, vcpu: usize, intid: u32) -> bool {
        self.irq(vcpu, intid).is_some_and(|i| i.hw_active)
    }

    /// Sets a level-sensitive interrupt's line. Returns the vCPUs (bitmask) to wake.
    ///
    /// A forwarded interrupt's physical one stays active while its line is high here, so
    /// when it is raised again while already high, the guest has deactivated the last one
    /// through the link (the hardware ended the physical one, which fired again, on any
    /// CPU) and its vCPU has not folded that back yet: the new one is noted for `sync`, and
    /// the vCPU woken to fold back and take it.
    pub fn set_level(&mut self, vcpu: usize, intid: u32, level: bool) -> u64 {
        match self.irq_mut(vcpu, intid) {
            Some(irq) if irq.level != level => {
                irq.level = level;
                self.kick_for(vcpu, intid)
            }
            Some(irq) if irq.forwarded && level && !irq.refired => {
                irq.refired = true;
                self.kick_for(vcpu, intid)
            }
            _ => 0,
        }
    }

    /// Marks SPI `intid` as a forwarded physical interrupt (level, driven by the owner's
    /// device; see [`VGic::sync`]).
    pub fn forward(&mut self, intid: u32) {
        if let Some(irq) = self.irq_mut(0, intid).filter(|_| intid >= PRIVATE) {
            irq.forwarded = true;
            irq.edge = false;
        }
    }

    /// Links virtual `intid` to physical `pintid`.
    pub fn link_hw(&mut self, vcpu: usize, intid: u32, pintid: u32) {
        if let Some(irq) = self.irq_mut(vcpu, intid) {
            // One no list register can link is not linked.
            irq.hw = u16::try_from(pintid).ok();
        }
    }

    /// True when vCPU `vcpu` has an enabled interrupt pending (a WFI should not wait).
    pub fn has_pending(&self, vcpu: usize) -> bool {
        let Some(c) = self.cpus.get(vcpu) else { return false };
        let deliverable = |i: &Irq| i.enabled && i.pending_now() && !i.active;
        super::bits(c.live.into()).any(|n| deliverable(&c.private[n]))
            || (self.ctlr & CTLR_GRP1A != 0
                && super::bits_of(&self.live_spis)
                    .filter_map(|n| self.spis.get(n))
                    .any(|i| usize::from(i.target) == vcpu && deliverable(i)))
    }
}
