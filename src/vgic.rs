//! A domain's virtual interrupt controller: the GICv3 distributor and redistributors a
//! guest programs (trapped MMIO, decoded through one table of per-interrupt register
//! fields), the state of every virtual interrupt, and the choice of what goes into a
//! vCPU's list registers before it runs.
//!
//! The model is the truth; list registers are a cache of it. Before a vCPU enters the
//! guest, [`VGic::flush`] picks the interrupts it should see (active ones first, so a
//! guest can always finish what it started, then pending ones by priority) and describes
//! them as back-end-neutral [`Lr`]s; after the vCPU exits, [`VGic::sync`] folds what the
//! guest did with them back in. Encoding an [`Lr`] for GICv3 (`ICH_LR<n>_EL2`) or GICv2
//! (`GICH_LR<n>`) is [`Lr::to_v3`] / [`Lr::to_v2`], so the model itself knows no back end.

use alloc::vec;
use alloc::vec::Vec;

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

/// The MPIDR of vCPU `index`: Aff0 = index mod 16 (so one SGI target list reaches a
/// cluster), Aff1 = index / 16, bit 31 RES1.
pub fn vcpu_mpidr(index: u32) -> u64 {
    (1 << 31) | u64::from(index & 0xf) | (u64::from((index >> 4) & 0xff) << 8)
}

/// The vCPU index of affinity Aff1.Aff0, if it is one of `count`.
fn vcpu_of(aff1: u64, aff0: u64, count: usize) -> Option<usize> {
    let i = (aff1 as usize) * 16 + aff0 as usize;
    (aff0 < 16 && i < count).then_some(i)
}

/// One virtual interrupt's state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Irq {
    enabled: bool,
    /// Latched pending state (edge, or set by software); for a level interrupt the line
    /// adds to it.
    pending: bool,
    active: bool,
    /// Level-sensitive line state.
    level: bool,
    /// Edge-triggered (GICD_ICFGR 0b10); SGIs always are.
    edge: bool,
    priority: u8,
    group1: bool,
    /// SPIs: target vCPU (from GICD_IROUTER), and the raw router value.
    target: u16,
    router: u64,
    /// The vCPU whose list registers hold it now, or on which it is still active.
    in_lr: Option<u16>,
    /// Its pending state went into a list register from the latch (not from the line).
    lr_latched: bool,
    /// A physical interrupt linked to it (the guest's deactivation reaches it).
    hw: Option<u32>,
    /// A physical SPI forwarded by the hypervisor: its list register links it (HW) to the
    /// same physical INTID, which stays active until the guest deactivates it; `sync`
    /// reports the deactivation.
    forwarded: bool,
}

impl Irq {
    fn pending_now(&self) -> bool {
        self.pending || (!self.edge && self.level)
    }
}

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
        })
    }

    /// `GICH_LR<n>` (GICv2): virtual ID [9:0], physical ID [19:10], priority [27:23]
    /// (top five bits), state [29:28], group 1 [30], HW [31].
    pub fn to_v2(&self) -> u32 {
        let state = u32::from(self.pending) | (u32::from(self.active) << 1);
        let mut v = (self.intid & 0x3ff) | (u32::from(self.priority >> 3) << 23) | (state << 28);
        if self.group1 {
            v |= 1 << 30;
        }
        if let Some(p) = self.hw {
            v |= (1 << 31) | ((p & 0x3ff) << 10);
        } else if self.eoi {
            v |= 1 << 19;
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
        })
    }
}

/// What goes into a vCPU's list registers.
#[derive(Debug, Clone, Copy, Default)]
pub struct Flush {
    pub lrs: [Lr; MAX_LRS],
    pub count: usize,
    /// More interrupts wait than fit: ask for a maintenance interrupt when the list
    /// registers (nearly) empty (ICH_HCR_EL2.UIE / GICH_HCR.UIE).
    pub underflow: bool,
}

impl Flush {
    pub fn lrs(&self) -> &[Lr] {
        &self.lrs[..self.count]
    }
}

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
enum Field {
    Group,
    SetEnable,
    ClearEnable,
    SetPending,
    ClearPending,
    SetActive,
    ClearActive,
    Priority,
    /// GICv2 CPU targets: read as zero with affinity routing.
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
fn irq_field(offset: u64, limit: u32) -> Option<(Field, u32, u32)> {
    IRQ_FIELDS.iter().find_map(|&(base, bits, field)| {
        let span = u64::from(limit) * u64::from(bits) / 8;
        (offset >= base && offset < base + span)
            .then(|| (field, ((offset - base) * 8 / u64::from(bits)) as u32, bits))
    })
}

/// Register offsets.
mod reg {
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
}

/// GICD_CTLR bits of the Non-secure view: EnableGrp1A, ARE_NS (always set).
const CTLR_GRP1A: u64 = 1 << 1;
const CTLR_ARE_NS: u64 = 1 << 4;
/// JEP106 code of Arm in GICD_IIDR/GICR_IIDR, product 0, revision 0.
const IIDR: u64 = 0x43b;
/// PIDR2 ArchRev = 3 (GICv3).
const PIDR2_V3: u64 = 0x3b;
/// GICR_WAKER.ProcessorSleep and ChildrenAsleep.
const WAKER_SLEEP: u64 = 1 << 1;
const WAKER_ASLEEP: u64 = 1 << 2;

/// One vCPU's redistributor and banked interrupts.
#[derive(Debug, Clone)]
struct Redist {
    private: [Irq; PRIVATE as usize],
    asleep: bool,
}

/// One domain's virtual GIC.
#[derive(Debug, Clone)]
pub struct VGic {
    ctlr: u64,
    spis: Vec<Irq>,
    cpus: Vec<Redist>,
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
        VGic {
            ctlr: CTLR_ARE_NS,
            spis: vec![Irq::default(); spis as usize],
            cpus: vec![Redist { private, asleep: true }; vcpus],
        }
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
            self.cpus.get_mut(vcpu).map(|c| &mut c.private[intid as usize])
        } else {
            self.spis.get_mut((intid - PRIVATE) as usize)
        }
    }

    /// The vCPU an interrupt is delivered to.
    fn owner(&self, vcpu: usize, intid: u32) -> usize {
        if intid < PRIVATE { vcpu } else { self.irq(vcpu, intid).map_or(0, |i| usize::from(i.target)) }
    }

    fn kick_for(&self, vcpu: usize, intid: u32) -> u64 {
        1 << (self.owner(vcpu, intid) % 64)
    }

    /// Makes an edge interrupt (an SGI, or a PPI/SPI raised by the hypervisor) pending.
    /// Returns the vCPUs (bitmask) to wake.
    pub fn raise(&mut self, vcpu: usize, intid: u32) -> u64 {
        match self.irq_mut(vcpu, intid) {
            Some(irq) => {
                irq.pending = true;
                self.kick_for(vcpu, intid)
            }
            None => 0,
        }
    }

    /// Sets a level-sensitive interrupt's line. Returns the vCPUs (bitmask) to wake.
    pub fn set_level(&mut self, vcpu: usize, intid: u32, level: bool) -> u64 {
        match self.irq_mut(vcpu, intid) {
            Some(irq) if irq.level != level => {
                irq.level = level;
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
            irq.hw = Some(pintid);
        }
    }

    /// True when vCPU `vcpu` has an enabled interrupt pending (a WFI should not wait).
    pub fn has_pending(&self, vcpu: usize) -> bool {
        let Some(c) = self.cpus.get(vcpu) else { return false };
        let deliverable = |i: &Irq| i.enabled && i.pending_now() && !i.active;
        c.private.iter().any(deliverable)
            || (self.ctlr & CTLR_GRP1A != 0
                && self.spis.iter().any(|i| usize::from(i.target) == vcpu && deliverable(i)))
    }

    /// Chooses the list register contents for `vcpu`, which has `nr_lrs` of them.
    /// Interrupts put in list registers are owned by them until [`VGic::sync`].
    pub fn flush(&mut self, vcpu: usize, nr_lrs: usize) -> Flush {
        let nr_lrs = nr_lrs.min(MAX_LRS);
        let mut out = Flush::default();
        if vcpu >= self.cpus.len() {
            return out;
        }
        let grp1_on = self.ctlr & CTLR_GRP1A != 0;
        // Candidates: (not active, priority, intid): active ones sort first.
        let mut cand: Vec<(bool, u8, u32)> = Vec::new();
        let me = vcpu as u16;
        let consider = |intid: u32, i: &Irq, dist_gate: bool, cand: &mut Vec<(bool, u8, u32)>| {
            if i.in_lr.is_some_and(|o| o != me) {
                return;
            }
            if i.active || (i.enabled && dist_gate && i.pending_now()) {
                cand.push((!i.active, i.priority, intid));
            }
        };
        for (n, i) in self.cpus[vcpu].private.iter().enumerate() {
            consider(n as u32, i, true, &mut cand);
        }
        for (n, i) in self.spis.iter().enumerate() {
            if usize::from(i.target) == vcpu || i.in_lr == Some(me) {
                consider(PRIVATE + n as u32, i, grp1_on, &mut cand);
            }
        }
        cand.sort_unstable();
        out.underflow = cand.len() > nr_lrs;
        for &(_, _, intid) in cand.iter().take(nr_lrs) {
            let Some(irq) = self.irq_mut(vcpu, intid) else { continue };
            // Held here only because it is active: its new pending state waits for the
            // vCPU it is routed to now.
            let mine = intid < PRIVATE || irq.target == me;
            let pending = mine && irq.enabled && (irq.pending_now() && (grp1_on || intid < PRIVATE));
            out.lrs[out.count] = Lr {
                intid,
                pending,
                active: irq.active,
                priority: irq.priority,
                group1: true,
                hw: if irq.forwarded { Some(intid) } else { irq.hw },
                eoi: false,
            };
            out.count += 1;
            if pending {
                irq.lr_latched = irq.pending;
                irq.pending = false;
            }
            irq.in_lr = Some(me);
        }
        out
    }

    /// Folds back what `vcpu`'s list registers say after it ran: `lrs` are the decoded
    /// contents of the registers [`VGic::flush`] filled, in order (`None` where the guest
    /// finished with one). Returns the forwarded interrupts the guest has finished with
    /// (their line is dropped here; the caller unmasks the physical one).
    pub fn sync(&mut self, vcpu: usize, flushed: &Flush, now: &[Option<Lr>]) -> Vec<u32> {
        let mut done = Vec::new();
        for (k, before) in flushed.lrs().iter().enumerate() {
            let after = now.get(k).copied().flatten();
            let Some(irq) = self.irq_mut(vcpu, before.intid) else { continue };
            match after {
                Some(lr) if lr.intid == before.intid => {
                    irq.active = lr.active;
                    // A latched pending state still in the register goes back to the latch;
                    // a level interrupt's pending state comes from its line at the next flush.
                    if lr.pending && (irq.edge || irq.lr_latched) {
                        irq.pending = true;
                    }
                }
                _ => irq.active = false,
            }
            // Active on this vCPU: it stays this vCPU's until deactivated, wherever it
            // is routed meanwhile.
            irq.in_lr = irq.active.then_some(vcpu as u16);
            if irq.forwarded && !irq.active && !after.is_some_and(|l| l.pending) {
                irq.level = false;
                done.push(before.intid);
            }
        }
        done
    }

    /// The guest wrote ICC_SGI1R_EL1 on vCPU `vcpu`. Returns the vCPUs to wake.
    pub fn sgi1r(&mut self, vcpu: usize, v: u64) -> u64 {
        let intid = ((v >> 24) & 0xf) as u32;
        let n = self.cpus.len();
        let targets: Vec<usize> = if v & (1 << 40) != 0 {
            (0..n).filter(|&t| t != vcpu).collect()
        } else {
            let (aff1, list) = ((v >> 16) & 0xff, v & 0xffff);
            let (aff2, aff3) = ((v >> 32) & 0xff, (v >> 48) & 0xff);
            if aff2 != 0 || aff3 != 0 {
                Vec::new()
            } else {
                (0..16).filter(|b| list & (1 << b) != 0).filter_map(|b| vcpu_of(aff1, b, n)).collect()
            }
        };
        let mut kick = 0;
        for t in targets {
            kick |= self.raise(t, intid);
        }
        kick
    }

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

    fn all_vcpus(&self) -> u64 {
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

    /// A per-interrupt register: `size` bytes covering interrupts from `first`, `bits` each.
    fn irq_regs(
        &mut self,
        vcpu: usize,
        field: Field,
        first: u32,
        bits: u32,
        size: u8,
        write: Option<u64>,
    ) -> Access {
        let count = (u32::from(size) * 8 / bits).max(1);
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
                        Field::ClearActive if set => irq.active = false,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn write(g: &mut VGic, off: u64, v: u64) -> u64 {
        match g.dist_access(0, off, 4, Some(v)) {
            Access::Done { kick, .. } => kick,
            Access::Unknown => panic!("unknown offset {off:#x}"),
        }
    }

    fn read(g: &mut VGic, off: u64) -> u64 {
        match g.dist_access(0, off, 4, None) {
            Access::Done { value, .. } => value,
            Access::Unknown => panic!("unknown offset {off:#x}"),
        }
    }

    fn rd(g: &mut VGic, off: u64, size: u8) -> u64 {
        match g.redist_access(off, size, None) {
            Access::Done { value, .. } => value,
            Access::Unknown => panic!("unknown offset {off:#x}"),
        }
    }

    fn rw(g: &mut VGic, off: u64, v: u64) -> u64 {
        match g.redist_access(off, 4, Some(v)) {
            Access::Done { kick, .. } => kick,
            Access::Unknown => panic!("unknown offset {off:#x}"),
        }
    }

    /// A GIC the way Linux leaves it: distributor on, SPI `spi` enabled at priority
    /// `prio` routed to vCPU 0, PPIs enabled.
    fn linux_like(vcpus: usize) -> VGic {
        let mut g = VGic::new(vcpus, 32);
        write(&mut g, 0x0, CTLR_GRP1A | CTLR_ARE_NS);
        for c in 0..vcpus as u64 {
            rw(&mut g, c * GICR_STRIDE + 0x1_0100, 0xffff_ffff);
            // priorities 0xa0 for all SGIs/PPIs
            for r in 0..8 {
                rw(&mut g, c * GICR_STRIDE + 0x1_0400 + r * 4, 0xa0a0_a0a0);
            }
        }
        g
    }

    /// Runs a vCPU with `nr` list registers: the guest acknowledges every pending one it
    /// is given (active), and the callback can change what it does.
    fn lr_state(f: &Flush) -> Vec<Option<Lr>> {
        f.lrs().iter().map(|l| Some(*l)).collect()
    }

    #[test]
    fn identification_registers() {
        let mut g = VGic::new(3, 40);
        // 64 SPIs -> INTIDs up to 95: ITLinesNumber 2.
        assert_eq!(read(&mut g, reg::TYPER) & 0x1f, 2);
        assert_eq!(g.limit(), 96);
        assert_eq!((read(&mut g, reg::TYPER) >> 19) & 0x1f, 9);
        assert_eq!(read(&mut g, reg::PIDR2) >> 4 & 0xf, 3);
        assert_eq!(read(&mut g, reg::CTLR), CTLR_ARE_NS);
        // Redistributors: affinity, processor number and Last on the final one only.
        for cpu in 0..3u64 {
            let typer = rd(&mut g, cpu * GICR_STRIDE + reg::GICR_TYPER, 8);
            assert_eq!(typer >> 32, cpu, "affinity of {cpu}");
            assert_eq!((typer >> 8) & 0xffff, cpu);
            assert_eq!(typer & (1 << 4) != 0, cpu == 2, "Last of {cpu}");
            assert_eq!(rd(&mut g, cpu * GICR_STRIDE + reg::PIDR2, 4) >> 4 & 0xf, 3);
        }
        // A 32-bit read of the upper half.
        assert_eq!(rd(&mut g, 2 * GICR_STRIDE + 0xc, 4), 2);
        assert_eq!(g.redist_access(3 * GICR_STRIDE, 4, None), Access::Unknown);
    }

    #[test]
    fn waker_handshake() {
        let mut g = VGic::new(1, 32);
        assert_eq!(rd(&mut g, reg::GICR_WAKER, 4), WAKER_SLEEP | WAKER_ASLEEP);
        rw(&mut g, reg::GICR_WAKER, 0);
        assert_eq!(rd(&mut g, reg::GICR_WAKER, 4) & WAKER_ASLEEP, 0);
    }

    #[test]
    fn enable_pending_registers_round_trip() {
        let mut g = VGic::new(2, 32);
        // SPI 33: enable, check set/clear views.
        write(&mut g, 0x104, 1 << 1);
        assert_eq!(read(&mut g, 0x104), 1 << 1);
        assert_eq!(read(&mut g, 0x184), 1 << 1);
        write(&mut g, 0x184, 1 << 1);
        assert_eq!(read(&mut g, 0x104), 0);
        // Pending set and clear.
        write(&mut g, 0x204, 1 << 5);
        assert_eq!(read(&mut g, 0x284), 1 << 5);
        write(&mut g, 0x284, 1 << 5);
        assert_eq!(read(&mut g, 0x204), 0);
        // Priority bytes: a byte write touches only its interrupt.
        g.dist_access(0, 0x400 + 34, 1, Some(0x80));
        assert_eq!(read(&mut g, 0x400 + 32), 0x0080_0000);
        // Config: SGIs stay edge, SPI config sticks.
        write(&mut g, 0xc08, 0x2 << 2);
        assert_eq!(read(&mut g, 0xc08), 0x2 << 2);
        rw(&mut g, 0x1_0c00, 0);
        assert_eq!(rd(&mut g, 0x1_0c00, 4), 0xaaaa_aaaa);
        // Banked registers in the distributor read as zero under affinity routing.
        write(&mut g, 0x100, 0xffff_ffff);
        assert_eq!(read(&mut g, 0x100), 0);
        // Beyond the last SPI: ignored.
        assert_eq!(read(&mut g, 0x10c), 0);
        // Unknown offsets are reported.
        assert_eq!(g.dist_access(0, 0x5000, 4, None), Access::Unknown);
    }

    #[test]
    fn routing_follows_irouter() {
        let mut g = linux_like(3);
        write(&mut g, 0x104, 1); // SPI 32 enabled
        let k = g.dist_access(0, reg::IROUTER + 32 * 8, 8, Some(2));
        assert_eq!(k, Access::Done { value: 0, kick: 0b101 });
        assert_eq!(g.dist_access(0, reg::IROUTER + 32 * 8, 8, None), Access::Done { value: 2, kick: 0 });
        assert_eq!(g.set_level(0, 32, true), 0b100);
        assert!(!g.has_pending(0));
        assert!(g.has_pending(2));
        assert_eq!(g.flush(0, 4).count, 0);
        let f = g.flush(2, 4);
        assert_eq!(f.count, 1);
        assert_eq!(f.lrs[0].intid, 32);
        // 1-of-N and unknown affinities route to vCPU 0.
        g.sync(2, &f, &lr_state(&f));
        g.dist_access(0, reg::IROUTER + 32 * 8, 8, Some(1 << 31));
        assert!(g.has_pending(0));
    }

    #[test]
    fn sgi_targets_list_and_broadcast() {
        let mut g = linux_like(4);
        // SGI 3 to vCPUs 1 and 3 (Aff1 0).
        let kick = g.sgi1r(0, (3 << 24) | 0b1010);
        assert_eq!(kick, 0b1010);
        assert!(g.has_pending(1) && g.has_pending(3) && !g.has_pending(0) && !g.has_pending(2));
        // Broadcast to all but self.
        let kick = g.sgi1r(2, (5 << 24) | (1 << 40));
        assert_eq!(kick, 0b1011);
        // A target that does not exist, or Aff2 set: nothing.
        assert_eq!(g.sgi1r(0, (1 << 24) | (1 << 16) | 1), 0);
        assert_eq!(g.sgi1r(0, (1 << 24) | (1 << 32) | 1), 0);
    }

    #[test]
    fn vcpu_affinities_match_sgi_decode() {
        assert_eq!(vcpu_mpidr(0), 0x8000_0000);
        assert_eq!(vcpu_mpidr(3), 0x8000_0003);
        assert_eq!(vcpu_mpidr(17), 0x8000_0101);
        let mut g = linux_like(20);
        assert_eq!(g.sgi1r(0, (2 << 24) | (1 << 16) | 0b10), 1 << 17);
    }

    #[test]
    fn priority_order_when_list_registers_are_full() {
        let mut g = linux_like(1);
        for (n, prio) in [(0u32, 0xa0u8), (1, 0x20), (2, 0x60), (3, 0x40), (4, 0x80), (5, 0x10)] {
            g.redist_access(0x1_0400 + u64::from(n), 1, Some(u64::from(prio)));
            g.raise(0, n);
        }
        let f = g.flush(0, 4);
        assert!(f.underflow);
        let ids: Vec<u32> = f.lrs().iter().map(|l| l.intid).collect();
        assert_eq!(ids, [5, 1, 3, 2]);
        // The guest takes none of them; the next flush gives the same choice, the two
        // left out still pending.
        g.sync(0, &f, &lr_state(&f));
        let f2 = g.flush(0, 4);
        assert_eq!(f2.lrs().iter().map(|l| l.intid).collect::<Vec<_>>(), [5, 1, 3, 2]);
        // It handles them all: the next flush brings the rest.
        g.sync(0, &f2, &[None, None, None, None]);
        let f3 = g.flush(0, 4);
        assert!(!f3.underflow);
        assert_eq!(f3.lrs().iter().map(|l| l.intid).collect::<Vec<_>>(), [4, 0]);
    }

    #[test]
    fn a_higher_priority_arrival_displaces_a_pending_one() {
        let mut g = linux_like(1);
        for n in 0..5u32 {
            g.redist_access(0x1_0400 + u64::from(n), 1, Some(0x80));
        }
        for n in 0..4 {
            g.raise(0, n);
        }
        let f = g.flush(0, 4);
        g.sync(0, &f, &lr_state(&f));
        g.redist_access(0x1_0404, 1, Some(0x10));
        g.raise(0, 4);
        let f = g.flush(0, 4);
        assert_eq!(f.lrs[0].intid, 4);
        assert!(f.underflow);
    }

    #[test]
    fn active_interrupts_keep_their_list_register() {
        let mut g = linux_like(1);
        for n in 0..6u32 {
            g.redist_access(0x1_0400 + u64::from(n), 1, Some(if n == 5 { 0xf0 } else { 0x10 }));
        }
        g.raise(0, 5);
        let f = g.flush(0, 4);
        // The guest acknowledges SGI 5: active.
        let mut now = lr_state(&f);
        now[0] = Some(Lr { pending: false, active: true, ..f.lrs[0] });
        g.sync(0, &f, &now);
        // Four higher-priority SGIs arrive: the active one still gets a register.
        for n in 0..4 {
            g.raise(0, n);
        }
        let f = g.flush(0, 4);
        assert_eq!(f.lrs[0].intid, 5);
        assert!(f.lrs[0].active);
        assert_eq!(f.count, 4);
        assert!(f.underflow);
    }

    #[test]
    fn disabling_an_active_interrupt_keeps_it_until_deactivated() {
        // bao #371: the UART's interrupt, disabled while active, was dropped.
        let mut g = linux_like(1);
        write(&mut g, 0x104, 1);
        g.set_level(0, 32, true);
        let f = g.flush(0, 4);
        assert_eq!(f.lrs[0].intid, 32);
        let mut now = lr_state(&f);
        now[0] = Some(Lr { pending: false, active: true, ..f.lrs[0] });
        g.sync(0, &f, &now);
        // The driver masks it while handling: still in the list registers, active.
        write(&mut g, 0x184, 1);
        let f = g.flush(0, 4);
        assert_eq!(f.count, 1);
        assert!(f.lrs[0].active && !f.lrs[0].pending);
        // The line drops, the guest deactivates, re-enables: nothing pending.
        g.set_level(0, 32, false);
        g.sync(0, &f, &[None]);
        write(&mut g, 0x104, 1);
        assert!(!g.has_pending(0));
        assert_eq!(g.flush(0, 4).count, 0);
    }

    #[test]
    fn level_interrupt_still_asserted_after_eoi_comes_back() {
        let mut g = linux_like(1);
        write(&mut g, 0x104, 1);
        g.set_level(0, 32, true);
        let f = g.flush(0, 4);
        g.sync(0, &f, &[None]); // handled, but the line is still high
        let f = g.flush(0, 4);
        assert_eq!(f.count, 1);
        assert!(f.lrs[0].pending);
        // Line drops while still pending in the register: no longer pending afterwards.
        g.set_level(0, 32, false);
        g.sync(0, &f, &lr_state(&f));
        assert!(!g.has_pending(0));
    }

    #[test]
    fn edge_raised_again_while_active_is_pending_and_active() {
        let mut g = linux_like(1);
        g.raise(0, VTIMER_PPI);
        let f = g.flush(0, 4);
        let mut now = lr_state(&f);
        now[0] = Some(Lr { pending: false, active: true, ..f.lrs[0] });
        g.raise(0, VTIMER_PPI); // arrives while the LR holds it
        g.sync(0, &f, &now);
        let f = g.flush(0, 4);
        assert!(f.lrs[0].pending && f.lrs[0].active);
        // Two raises while pending coalesce into one.
        g.sync(0, &f, &[None]);
        g.raise(0, VTIMER_PPI);
        g.raise(0, VTIMER_PPI);
        let f = g.flush(0, 4);
        assert_eq!(f.count, 1);
        g.sync(0, &f, &[None]);
        assert_eq!(g.flush(0, 4).count, 0);
    }

    #[test]
    fn distributor_and_group_enables_gate_spis_not_ppis() {
        let mut g = VGic::new(1, 32);
        g.redist_access(0x1_0100, 4, Some(1 << VTIMER_PPI));
        g.dist_access(0, 0x104, 4, Some(1));
        g.set_level(0, 32, true);
        g.raise(0, VTIMER_PPI);
        // Distributor off: only the PPI.
        let f = g.flush(0, 4);
        assert_eq!(f.lrs().iter().map(|l| l.intid).collect::<Vec<_>>(), [VTIMER_PPI]);
        g.sync(0, &f, &lr_state(&f));
        write(&mut g, 0, CTLR_GRP1A);
        assert_eq!(g.flush(0, 4).count, 2);
    }

    #[test]
    fn an_spi_held_by_one_vcpu_is_not_given_to_another() {
        let mut g = linux_like(2);
        write(&mut g, 0x104, 1);
        g.raise(0, 32);
        let f0 = g.flush(0, 4);
        assert_eq!(f0.count, 1);
        // Re-routed to vCPU 1 while vCPU 0 holds it active.
        g.dist_access(0, reg::IROUTER + 32 * 8, 8, Some(1));
        g.raise(0, 32);
        assert_eq!(g.flush(1, 4).count, 0);
        let mut now = lr_state(&f0);
        now[0] = Some(Lr { pending: false, active: true, ..f0.lrs[0] });
        g.sync(0, &f0, &now);
        // vCPU 0 must still deactivate it; the new pending goes to vCPU 1 once released.
        let f0 = g.flush(0, 4);
        assert!(f0.lrs[0].active);
        g.sync(0, &f0, &[None]);
        let f1 = g.flush(1, 4);
        assert_eq!(f1.count, 1);
        assert!(f1.lrs[0].pending);
    }

    #[test]
    fn forwarded_interrupts_are_reported_when_the_guest_is_done() {
        let mut g = VGic::new(1, 64);
        write(&mut g, 0, CTLR_GRP1A);
        write(&mut g, 0x104, 1 << 2); // SPI 34 (the RTC on QEMU virt)
        g.forward(34);
        assert_eq!(g.set_level(0, 34, true), 1);
        let f = g.flush(0, 4);
        assert_eq!(f.count, 1);
        assert!(f.lrs[0].pending && f.lrs[0].hw == Some(34));
        assert_eq!(f.lrs[0].to_v3() >> 61 & 1, 1, "HW bit");
        assert_eq!(f.lrs[0].to_v3() >> 32 & 0x1fff, 34, "physical INTID");
        // Acknowledged (active): not done yet.
        let mut now = lr_state(&f);
        now[0] = Some(Lr { pending: false, active: true, ..f.lrs[0] });
        assert!(g.sync(0, &f, &now).is_empty());
        // Deactivated: done, and its line is low until the device raises it again.
        let f = g.flush(0, 4);
        assert!(f.lrs[0].active);
        assert_eq!(g.sync(0, &f, &[None]), [34]);
        assert!(!g.has_pending(0));
        assert_eq!(g.flush(0, 4).count, 0);
        // An ordinary interrupt is never reported.
        write(&mut g, 0x104, 1 << 3);
        g.raise(0, 35);
        let f = g.flush(0, 4);
        assert!(f.lrs[0].hw.is_none());
        assert!(g.sync(0, &f, &[None]).is_empty());
    }

    #[test]
    fn list_register_encodings_round_trip() {
        let lr = Lr {
            intid: 27,
            pending: true,
            active: true,
            priority: 0xa0,
            group1: true,
            hw: Some(27),
            eoi: false,
        };
        assert_eq!(Lr::from_v3(lr.to_v3()), Some(lr));
        assert_eq!(lr.to_v3() >> 62, 3);
        assert_eq!(Lr::from_v2(lr.to_v2()), Some(lr));
        let sw = Lr {
            intid: 1000,
            pending: true,
            active: false,
            priority: 0x18,
            group1: false,
            hw: None,
            eoi: true,
        };
        assert_eq!(Lr::from_v3(sw.to_v3()), Some(sw));
        assert_eq!(Lr::from_v2(sw.to_v2()).map(|l| l.intid), Some(1000));
        assert_eq!(Lr::from_v3(0), None);
        assert_eq!(Lr::from_v2(0), None);
    }
}
