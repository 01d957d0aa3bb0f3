//! List-register contents and their GICv3 (`ICH_LR<n>_EL2`) and GICv2 (`GICH_LR<n>`) encodings.

/// A list register's content, independent of the GIC version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lr {
    pub intid: u32,
    pub pending: bool,
    pub active: bool,
    pub priority: u8,
    pub group1: bool,
    /// Physical INTID deactivated with it.
    pub hw: Option<u32>,
    /// Maintenance interrupt when the guest deactivates it (software-forwarded).
    pub eoi: bool,
    /// GICv2 SGIs: the source vCPU the guest reads in GICC_IAR.CPUID (0 for the rest;
    /// GICv3 has no such field).
    pub source: u8,
}

impl Lr {
    /// `ICH_LR<n>_EL2`: vINTID [31:0], pINTID [44:32], priority [55:48], group [60],
    /// HW [61], state [63:62].
    pub fn to_v3(&self) -> u64 {
        let state = u64::from(self.pending) | (u64::from(self.active) << 1);
        let mut v = u64::from(self.intid) | (u64::from(self.priority) << 48) | (state << 62);
        if self.group1 {
            v |= 1 << 60;
        }
        if let Some(p) = self.hw {
            v |= (1 << 61) | (u64::from(p & 0x1fff) << 32);
        } else if self.eoi {
            v |= 1 << 41;
        }
        v
    }

    /// Decodes `ICH_LR<n>_EL2`; `None` for an empty (invalid) one.
    pub fn from_v3(v: u64) -> Option<Lr> {
        let state = v >> 62;
        (state != 0).then(|| Lr {
            intid: v as u32,
            pending: state & 1 != 0,
            active: state & 2 != 0,
            priority: (v >> 48) as u8,
            group1: v & (1 << 60) != 0,
            hw: (v & (1 << 61) != 0).then_some(((v >> 32) & 0x1fff) as u32),
            eoi: v & (1 << 61) == 0 && v & (1 << 41) != 0,
            source: 0,
        })
    }

    /// `GICH_LR<n>` (GICv2): virtual ID [9:0], physical ID [19:10] (HW) or, for an SGI,
    /// source CPU ID [12:10] and EOI [19], priority [27:23] (top five bits), state [29:28],
    /// group 1 [30], HW [31].
    pub fn to_v2(&self) -> u32 {
        let state = u32::from(self.pending) | (u32::from(self.active) << 1);
        let mut v = (self.intid & 0x3ff) | (u32::from(self.priority >> 3) << 23) | (state << 28);
        if self.group1 {
            v |= 1 << 30;
        }
        if let Some(p) = self.hw {
            v |= (1 << 31) | ((p & 0x3ff) << 10);
        } else {
            if self.eoi {
                v |= 1 << 19;
            }
            if self.intid < 16 {
                v |= u32::from(self.source & 7) << 10;
            }
        }
        v
    }

    /// Decodes `GICH_LR<n>`.
    pub fn from_v2(v: u32) -> Option<Lr> {
        let state = (v >> 28) & 3;
        (state != 0).then(|| Lr {
            intid: v & 0x3ff,
            pending: state & 1 != 0,
            active: state & 2 != 0,
            priority: (((v >> 23) & 0x1f) << 3) as u8,
            group1: v & (1 << 30) != 0,
            hw: (v & (1 << 31) != 0).then_some((v >> 10) & 0x3ff),
            eoi: v & (1 << 31) == 0 && v & (1 << 19) != 0,
            source: if v & (1 << 31) == 0 && v & 0x3ff < 16 { ((v >> 10) & 7) as u8 } else { 0 },
        })
    }
}
