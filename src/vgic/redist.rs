//! The redistributors (GICR): one per vCPU, its identification, wake state and SGI/PPI banks.

use super::irq::Irq;
use super::regs::{IIDR, PIDR2_V3, WAKER_ASLEEP, WAKER_SLEEP, irq_field, reg};
use super::{Access, GICR_STRIDE, PRIVATE, VGic, vcpu_mpidr};

/// One vCPU's redistributor and banked interrupts.
#[derive(Debug, Clone)]
pub(super) struct Redist {
    pub(super) private: [Irq; PRIVATE as usize],
    pub(super) asleep: bool,
    /// Bit n: private interrupt n may be live (see `VGic::live_spis`).
    pub(super) live: u32,
}

impl VGic {
    /// A redistributor access: `offset` from the start of the redistributor region.
    pub fn redist_access(&mut self, offset: u64, size: u8, write: Option<u64>) -> Access {
        let cpu = (offset / GICR_STRIDE) as usize;
        let off = offset % GICR_STRIDE;
        let n = self.cpus.len();
        if cpu >= n {
            return Access::Unknown;
        }
        if off >= reg::SGI_BASE {
            let off = off - reg::SGI_BASE;
            return match irq_field(off, PRIVATE) {
                Some((field, first, bits)) => self.irq_regs(cpu, field, first, bits, size, write),
                None => Access::Unknown,
            };
        }
        let value = match (off, write) {
            (reg::CTLR, None) => 0,
            // GICR_IIDR sits where the distributor has its TYPER.
            (reg::TYPER, None) => IIDR,
            (reg::GICR_TYPER, None) | (0x000c, None) => {
                let mpidr = vcpu_mpidr(cpu as u32);
                let aff = (mpidr & 0xff_ffff) | ((mpidr >> 32 & 0xff) << 24);
                let last = if cpu + 1 == n { 1 << 4 } else { 0 };
                let typer = (aff << 32) | ((cpu as u64) << 8) | last;
                if off == 0x000c {
                    typer >> 32
                } else if size == 8 {
                    typer
                } else {
                    typer & 0xffff_ffff
                }
            }
            (reg::GICR_WAKER, None) => {
                if self.cpus[cpu].asleep {
                    WAKER_SLEEP | WAKER_ASLEEP
                } else {
                    0
                }
            }
            (reg::GICR_WAKER, Some(v)) => {
                self.cpus[cpu].asleep = v & WAKER_SLEEP != 0;
                0
            }
            (reg::PIDR2, None) => PIDR2_V3,
            // STATUSR, PROPBASER, PENDBASER, the LPI and ID registers: not offered.
            (0x0010 | 0x0070 | 0x0074 | 0x0078 | 0x007c | 0xffd0..=0xfffc, None) => 0,
            (reg::CTLR | 0x0010 | 0x0070 | 0x0074 | 0x0078 | 0x007c, Some(_)) => 0,
            _ => return Access::Unknown,
        };
        Access::Done { value, kick: 0 }
    }
}
