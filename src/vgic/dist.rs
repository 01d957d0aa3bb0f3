//! The distributor (GICD): control, identification, per-interrupt banks and SPI routing.

use super::regs::{CTLR_ARE_NS, CTLR_GRP1A, IIDR, PIDR2_V3, irq_field, reg};
use super::sgi::vcpu_of;
use super::{Access, PRIVATE, VGic};

impl VGic {
    /// A distributor access by vCPU `vcpu`: `size` bytes at `offset`, `write` for a store.
    pub fn dist_access(&mut self, vcpu: usize, offset: u64, size: u8, write: Option<u64>) -> Access {
        let limit = self.limit();
        // The per-interrupt banks span all 1020 INTIDs; those beyond `limit` are RAZ/WI.
        if let Some((field, first, bits)) = irq_field(offset, 1024) {
            // Banked SGIs and PPIs live in the redistributors under affinity routing.
            if first < PRIVATE {
                return Access::Done { value: 0, kick: 0 };
            }
            return self.irq_regs(vcpu, field, first, bits, size, write);
        }
        if (reg::IROUTER..reg::IROUTER_END).contains(&offset) {
            let intid = ((offset - reg::IROUTER) / 8) as u32;
            let high = offset % 8 == 4;
            return self.irouter(intid, high, size, write);
        }
        let value = match (offset, write) {
            (reg::CTLR, None) => self.ctlr,
            (reg::CTLR, Some(v)) => {
                let old = self.ctlr;
                self.ctlr = (v & CTLR_GRP1A) | CTLR_ARE_NS;
                let kick = if old != self.ctlr { self.all_vcpus() } else { 0 };
                return Access::Done { value: 0, kick };
            }
            (reg::TYPER, None) => {
                // ITLinesNumber, IDbits = 10 bits, no LPIs, no security extension;
                // No1N: 1-of-N SPI routing is not offered.
                let lines = u64::from(limit / 32 - 1);
                lines | (9 << 19) | (1 << 25)
            }
            (reg::IIDR, None) => IIDR,
            (reg::TYPER2 | reg::STATUSR, None) => 0,
            (reg::PIDR2, None) => PIDR2_V3,
            // Message-based SPIs, GICD_SGIR and the other ID registers: not offered.
            (0x40..=0x58 | 0xf00 | 0xffd0..=0xfffc, None) => 0,
            (reg::TYPER | reg::IIDR | reg::TYPER2 | reg::STATUSR | 0xf00, Some(_)) => 0,
            _ => return Access::Unknown,
        };
        let _ = size;
        Access::Done { value, kick: 0 }
    }

    pub(super) fn all_vcpus(&self) -> u64 {
        if self.cpus.len() >= 64 { u64::MAX } else { (1u64 << self.cpus.len()) - 1 }
    }

    fn irouter(&mut self, intid: u32, high: bool, size: u8, write: Option<u64>) -> Access {
        let n = self.cpus.len();
        let Some(irq) = (intid >= PRIVATE).then(|| self.spis.get_mut((intid - PRIVATE) as usize)).flatten()
        else {
            return Access::Done { value: 0, kick: 0 };
        };
        let Some(v) = write else {
            let value = if high {
                irq.router >> 32
            } else if size == 8 {
                irq.router
            } else {
                irq.router & 0xffff_ffff
            };
            return Access::Done { value, kick: 0 };
        };
        irq.router = match (high, size) {
            (true, _) => (irq.router & 0xffff_ffff) | (v << 32),
            (false, 8) => v,
            (false, _) => (irq.router & !0xffff_ffff) | (v & 0xffff_ffff),
        };
        // Interrupt_Routing_Mode (1 of N) and unknown affinities both go to vCPU 0.
        let r = irq.router;
        irq.router = r & 0xff_80ff_ffff;
        let target = if r & (1 << 31) != 0 || (r >> 16) & 0xff != 0 || (r >> 32) & 0xff != 0 {
            0
        } else {
            vcpu_of((r >> 8) & 0xff, r & 0xff, n).unwrap_or(0)
        };
        let old = irq.target;
        irq.target = target as u16;
        let kick = if old != irq.target { (1 << (old % 64)) | (1 << (target % 64)) } else { 0 };
        Access::Done { value: 0, kick }
    }
}
