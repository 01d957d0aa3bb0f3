//! What GICD and GICR share: the access result, offsets, ID values and per-interrupt registers.

use super::VGic;

/// The result of a register access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read value (0 for writes); vCPUs (bitmask) whose interrupts changed.
    Done { value: u64, kick: u64 },
    /// An offset the model does not implement: reads as zero, writes ignored.
    Unknown,
}

/// The per-interrupt register fields, one table for the distributor's and the
/// redistributor SGI frame's banks: (offset, bits per interrupt, field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Field {
    Group,
    SetEnable,
    ClearEnable,
    SetPending,
    ClearPending,
    SetActive,
    ClearActive,
    Priority,
    /// GICv2 CPU targets: read as zero with affinity routing (the GICv2 view decodes
    /// them itself).
    Targets,
    Config,
    /// GICD_IGRPMODR, GICD_NSACR: read as zero, writes ignored.
    Razwi,
}

const IRQ_FIELDS: [(u64, u32, Field); 12] = [
    (0x080, 1, Field::Group),
    (0x100, 1, Field::SetEnable),
    (0x180, 1, Field::ClearEnable),
    (0x200, 1, Field::SetPending),
    (0x280, 1, Field::ClearPending),
    (0x300, 1, Field::SetActive),
    (0x380, 1, Field::ClearActive),
    (0x400, 8, Field::Priority),
    (0x800, 8, Field::Targets),
    (0xc00, 2, Field::Config),
    (0xd00, 1, Field::Razwi),
    (0xe00, 2, Field::Razwi),
];

/// The field an offset falls in, with the first INTID it covers and the bits per
/// interrupt; `limit` is the number of INTIDs the bank holds.
pub(super) fn irq_field(offset: u64, limit: u32) -> Option<(Field, u32, u32)> {
    IRQ_FIELDS.iter().find_map(|&(base, bits, field)| {
        let span = u64::from(limit) * u64::from(bits) / 8;
        (offset >= base && offset < base + span)
            .then(|| (field, ((offset - base) * 8 / u64::from(bits)) as u32, bits))
    })
}

/// Register offsets.
pub(super) mod reg {
    pub const CTLR: u64 = 0x0000;
    pub const TYPER: u64 = 0x0004;
    pub const IIDR: u64 = 0x0008;
    pub const TYPER2: u64 = 0x000c;
    pub const STATUSR: u64 = 0x0010;
    pub const IROUTER: u64 = 0x6000;
    pub const IROUTER_END: u64 = 0x8000;
    pub const PIDR2: u64 = 0xffe8;
    pub const GICR_TYPER: u64 = 0x0008;
    pub const GICR_WAKER: u64 = 0x0014;
    pub const SGI_BASE: u64 = 0x1_0000;
    /// GICv2 only: GICD_SGIR, GICD_CPENDSGIR<n>, GICD_SPENDSGIR<n>, the ID registers.
    pub const SGIR: u64 = 0x0f00;
    pub const CPENDSGIR: u64 = 0x0f10;
    pub const SPENDSGIR: u64 = 0x0f20;
    pub const SPENDSGIR_END: u64 = 0x0f30;
    pub const ID_V2: u64 = 0x0fd0;
    pub const ID_V2_END: u64 = 0x1000;
}

/// GICD_CTLR bits of the Non-secure view: EnableGrp1A, ARE_NS (always set).
pub(super) const CTLR_GRP1A: u64 = 1 << 1;
pub(super) const CTLR_ARE_NS: u64 = 1 << 4;
/// JEP106 code of Arm in GICD_IIDR/GICR_IIDR, product 0, revision 0.
pub(super) const IIDR: u64 = 0x43b;
/// PIDR2 ArchRev = 3 (GICv3).
pub(super) const PIDR2_V3: u64 = 0x3b;
/// The GICv2 distributor's ID registers, PIDR4..PIDR7, PIDR0..PIDR3, CIDR0..CIDR3 (from
/// 0xfd0): Arm's JEP106 code (continuation 4, identity 0x3b), part number 0, PIDR2
/// ArchRev = 2 (GICv2), and the CoreSight component ID.
pub(super) const ID_V2: [u8; 12] = [0x04, 0, 0, 0, 0x00, 0xb0, 0x2b, 0, 0x0d, 0xf0, 0x05, 0xb1];
/// GICv2 GICD_CTLR.EnableGrp0: the guest's one enable (stored as [`CTLR_GRP1A`]).
pub(super) const CTLR_V2_ENABLE: u64 = 1;
/// GICR_WAKER.ProcessorSleep and ChildrenAsleep.
pub(super) const WAKER_SLEEP: u64 = 1 << 1;
pub(super) const WAKER_ASLEEP: u64 = 1 << 2;

impl VGic {
    /// A per-interrupt register: `size` bytes covering interrupts from `first`, `bits` each.
    pub(super) fn irq_regs(
        &mut self,
        vcpu: usize,
        field: Field,
        first: u32,
        bits: u32,
        size: u8,
        write: Option<u64>,
    ) -> Access {
        // At most a doubleword: wider would shift past the value.
        let count = (u32::from(size.min(8)) * 8 / bits).max(1);
        let mask = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
        let mut value = 0u64;
        let mut kick = 0u64;
        for k in 0..count {
            let intid = first + k;
            let shift = k * bits;
            let owner = self.owner(vcpu, intid);
            let Some(irq) = self.irq_mut(vcpu, intid) else { break };
            match write {
                None => {
                    let f = match field {
                        Field::Group => u64::from(irq.group1),
                        Field::SetEnable | Field::ClearEnable => u64::from(irq.enabled),
                        Field::SetPending | Field::ClearPending => u64::from(irq.pending_now()),
                        Field::SetActive | Field::ClearActive => u64::from(irq.active),
                        Field::Priority => u64::from(irq.priority),
                        Field::Config => {
                            if irq.edge {
                                2
                            } else {
                                0
                            }
                        }
                        Field::Targets | Field::Razwi => 0,
                    };
                    value |= (f & mask) << shift;
                }
                Some(v) => {
                    let f = (v >> shift) & mask;
                    let set = f != 0;
                    let before = *irq;
                    match field {
                        Field::Group => irq.group1 = set,
                        Field::SetEnable if set => irq.enabled = true,
                        Field::ClearEnable if set => irq.enabled = false,
                        Field::SetPending if set => irq.pending = true,
                        Field::ClearPending if set => irq.pending = false,
                        Field::SetActive if set => irq.active = true,
                        // Taken out of the list register it was active in, as its
                        // vCPU's exit folded it back (a vCPU deactivating its own, or one
                        // of a vCPU's private ones): nothing holds it any more, so a
                        // linked one can release its physical interrupt and an SPI can go
                        // to another vCPU.
                        Field::ClearActive if set => {
                            irq.active = false;
                            if irq.in_lr == Some(vcpu as u16) {
                                irq.in_lr = None;
                            }
                        }
                        // Priority: the virtual CPU interface compares the top bits only.
                        Field::Priority => irq.priority = f as u8,
                        // SGIs are always edge; PPIs and SPIs take bit 1 of their field.
                        Field::Config if intid >= 16 => irq.edge = f & 2 != 0,
                        _ => {}
                    }
                    if *irq != before {
                        kick |= 1 << (owner % 64);
                    }
                }
            }
        }
        Access::Done { value, kick }
    }
}
