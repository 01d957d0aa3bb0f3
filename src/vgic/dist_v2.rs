//! The GICv2 distributor view (Arm IHI 0048B, 4 KiB): the same interrupts as the GICv3
//! view, with banked SGI/PPI registers, CPU target masks and SGIs that carry their source.
//!
//! The guest is a Non-secure, single-group view of a GIC without the Security Extensions:
//! GICD_CTLR bit 0 enables forwarding. The per-interrupt banks from GICD_IGROUPR to
//! GICD_ICFGR share the GICv3 table and field logic; register 0 of each bank holds the
//! accessing vCPU's SGIs and PPIs. What differs is decoded here: GICD_ITARGETSR,
//! GICD_SGIR, GICD_CPENDSGIR/GICD_SPENDSGIR, and SGI bits of GICD_ISPENDR/GICD_ICPENDR,
//! which ignore writes (an SGI's pending state is per source).

use super::regs::{CTLR_GRP1A, CTLR_V2_ENABLE, Field, ID_V2, IIDR, irq_field, reg};
use super::{Access, PRIVATE, V2_MAX_CPUS, VGic};

impl VGic {
    /// A GICv2 distributor access by vCPU `vcpu`: `size` bytes at `offset`, `write` for a
    /// store. Offsets and sizes the model does not implement are [`Access::Unknown`].
    pub fn dist_v2_access(&mut self, vcpu: usize, offset: u64, size: u8, write: Option<u64>) -> Access {
        if !matches!(size, 1 | 2 | 4 | 8) {
            return Access::Unknown;
        }
        if let Some((field, first, bits)) = irq_field(offset, 1024) {
            return match (field, write) {
                (Field::Targets, _) => self.itargets(vcpu, first, size, write),
                // An SGI's pending state is set and cleared per source, through
                // GICD_SPENDSGIR and GICD_CPENDSGIR.
                (Field::SetPending | Field::ClearPending, Some(v)) if first < 16 => {
                    let sgis = (1u64 << (16 - first)) - 1;
                    self.irq_regs(vcpu, field, first, bits, size, Some(v & !sgis))
                }
                _ => self.irq_regs(vcpu, field, first, bits, size, write),
            };
        }
        if (reg::CPENDSGIR..reg::SPENDSGIR_END).contains(&offset) {
            let set = offset >= reg::SPENDSGIR;
            let sgi = (offset - if set { reg::SPENDSGIR } else { reg::CPENDSGIR }) as u32;
            return self.sgi_pending(vcpu, sgi, set, size, write);
        }
        let value = match (offset, write) {
            (reg::CTLR, None) => u64::from(self.ctlr & CTLR_GRP1A != 0),
            (reg::CTLR, Some(v)) => {
                let old = self.ctlr;
                self.ctlr &= !CTLR_GRP1A;
                if v & CTLR_V2_ENABLE != 0 {
                    self.ctlr |= CTLR_GRP1A;
                }
                let kick = if old != self.ctlr { self.all_vcpus() } else { 0 };
                return Access::Done { value: 0, kick };
            }
            (reg::TYPER, None) => {
                // ITLinesNumber, CPUNumber; no Security Extensions, no LSPIs.
                let cpus = self.cpus.len().clamp(1, V2_MAX_CPUS) as u64;
                u64::from(self.limit() / 32 - 1) | ((cpus - 1) << 5)
            }
            (reg::IIDR, None) => IIDR,
            (reg::SGIR, Some(v)) => return Access::Done { value: 0, kick: self.sgir(vcpu, v) },
            (reg::ID_V2..reg::ID_V2_END, None) if offset.is_multiple_of(4) => {
                u64::from(ID_V2[((offset - reg::ID_V2) / 4) as usize])
            }
            // Read-only registers ignore writes; GICD_SGIR is write-only.
            (reg::TYPER | reg::IIDR, Some(_)) | (reg::SGIR, None) => 0,
            (reg::ID_V2..reg::ID_V2_END, Some(_)) if offset.is_multiple_of(4) => 0,
            _ => return Access::Unknown,
        };
        Access::Done { value, kick: 0 }
    }

    /// The vCPUs (bitmask) a GICv2 can name: those that exist, up to eight.
    fn v2_cpus(&self) -> u8 {
        let n = self.cpus.len().min(V2_MAX_CPUS);
        ((1u16 << n) - 1) as u8
    }

    /// GICD_ITARGETSR: one byte per interrupt from `first`. SGIs and PPIs read as the
    /// accessing vCPU's own bit; an SPI keeps the mask written (existing vCPUs only) and is
    /// delivered to the lowest vCPU in it (vCPU 0 for an empty mask).
    fn itargets(&mut self, vcpu: usize, first: u32, size: u8, write: Option<u64>) -> Access {
        let cpus = self.v2_cpus();
        let own = if vcpu < V2_MAX_CPUS { cpus & (1 << vcpu) } else { 0 };
        let limit = self.limit();
        let (mut value, mut kick) = (0u64, 0u64);
        for k in 0..u32::from(size) {
            let intid = first + k;
            if intid >= limit {
                break;
            }
            let shift = 8 * k;
            if intid < PRIVATE {
                value |= u64::from(own) << shift;
                continue;
            }
            let irq = &mut self.spis[(intid - PRIVATE) as usize];
            let Some(v) = write else {
                value |= u64::from(irq.targets) << shift;
                continue;
            };
            irq.targets = (v >> shift) as u8 & cpus;
            // An interrupt already in a list register stays there until it is deactivated
            // (see `flush`); its next pending state goes to the new target.
            let old = irq.target;
            irq.target = if irq.targets == 0 { 0 } else { irq.targets.trailing_zeros() as u16 };
            if old != irq.target {
                kick |= (1 << (old % 64)) | (1 << (irq.target % 64));
            }
        }
        Access::Done { value: if write.is_some() { 0 } else { value }, kick }
    }

    /// GICD_SGIR written by vCPU `vcpu`: TargetListFilter [25:24], CPUTargetList [23:16],
    /// SGIINTID [3:0]. Each target's SGI becomes pending from `vcpu`. Returns the vCPUs to
    /// wake.
    fn sgir(&mut self, vcpu: usize, v: u64) -> u64 {
        // A source a GICv2 cannot name sends nothing.
        if vcpu >= self.cpus.len().min(V2_MAX_CPUS) {
            return 0;
        }
        let cpus = self.v2_cpus();
        let targets = match (v >> 24) & 3 {
            0 => (v >> 16) as u8 & cpus,
            1 => cpus & !(1 << vcpu),
            2 => 1 << vcpu,
            _ => 0,
        };
        let sgi = (v & 0xf) as usize;
        let mut kick = 0;
        for (t, c) in self.cpus.iter_mut().enumerate().take(V2_MAX_CPUS) {
            if targets & (1 << t) != 0 {
                // Only a new pending state wakes the target (a flood costs the sender).
                let before = c.private[sgi].sgi_sources();
                c.live |= 1 << sgi;
                c.private[sgi].give_source(vcpu as u8);
                if c.private[sgi].sgi_sources() != before {
                    kick |= 1 << t;
                }
            }
        }
        kick
    }

    /// GICD_CPENDSGIR / GICD_SPENDSGIR (`set`): one byte per SGI from `sgi`, bit n for
    /// source vCPU n, for the accessing vCPU's SGIs.
    fn sgi_pending(&mut self, vcpu: usize, sgi: u32, set: bool, size: u8, write: Option<u64>) -> Access {
        let cpus = self.v2_cpus();
        let Some(c) = self.cpus.get_mut(vcpu) else { return Access::Done { value: 0, kick: 0 } };
        let (mut value, mut kick) = (0u64, 0u64);
        for k in 0..u32::from(size) {
            let Some(irq) = c.private.get_mut((sgi + k) as usize).filter(|_| sgi + k < 16) else { break };
            c.live |= 1 << (sgi + k);
            let shift = 8 * k;
            let Some(v) = write else {
                value |= u64::from(irq.sgi_sources()) << shift;
                continue;
            };
            let bits = (v >> shift) as u8 & cpus;
            let before = irq.sgi_sources();
            for s in (0..8).filter(|s| bits & (1 << s) != 0) {
                if set {
                    irq.give_source(s);
                } else {
                    irq.take_source(s);
                }
            }
            if set && irq.sgi_sources() != before {
                kick |= 1 << (vcpu % 64);
            }
        }
        Access::Done { value, kick }
    }
}
