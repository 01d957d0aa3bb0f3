//! Choosing what goes into a vCPU's list registers, and folding back what the guest did.

use alloc::vec::Vec;

use super::irq::Irq;
use super::regs::CTLR_GRP1A;
use super::{Lr, MAX_LRS, PRIVATE, VGic};

/// What goes into a vCPU's list registers.
#[derive(Debug, Clone, Copy, Default)]
pub struct Flush {
    pub lrs: [Lr; MAX_LRS],
    pub count: usize,
    /// More interrupts wait than fit: ask for a maintenance interrupt when the list
    /// registers (nearly) empty (ICH_HCR_EL2.UIE / GICH_HCR.UIE).
    pub underflow: bool,
    /// A linked physical PPI to deactivate now: its virtual interrupt is neither pending
    /// nor active any more (the guest cleared it through the distributor, not through a
    /// list register), so the physical one must be able to fire again.
    pub release: Option<u32>,
    /// Scratch for choosing (the best candidates' keys), kept here so that an entry
    /// builds no array of its own.
    cand: [u64; MAX_LRS],
}

impl Flush {
    pub fn lrs(&self) -> &[Lr] {
        &self.lrs[..self.count]
    }
}

impl VGic {
    /// [`VGic::flush_into`] a new [`Flush`] (the host tests and the fuzz targets).
    pub fn flush(&mut self, vcpu: usize, nr_lrs: usize) -> Flush {
        let mut out = Flush::default();
        self.flush_into(vcpu, nr_lrs, &mut out);
        out
    }

    /// Chooses the list register contents for `vcpu`, which has `nr_lrs` of them, into
    /// `out`, which the caller keeps from one entry to the next: only the registers chosen
    /// are written (no array built and copied on every exit). Interrupts put in list
    /// registers are owned by them until [`VGic::sync`]. An SGI pending from several source
    /// vCPUs (GICv2) takes one register per source.
    pub fn flush_into(&mut self, vcpu: usize, nr_lrs: usize, out: &mut Flush) {
        let nr_lrs = nr_lrs.min(MAX_LRS);
        out.count = 0;
        out.underflow = false;
        out.release = None;
        if vcpu >= self.cpus.len() {
            return;
        }
        // Idle interrupts leave the live sets; a linked one neither pending nor active any
        // more releases its physical interrupt.
        let c = &mut self.cpus[vcpu];
        for n in super::bits(c.live.into()) {
            let i = &mut c.private[n];
            if i.hw_active && !i.pending_now() && !i.active && i.in_lr.is_none() {
                i.hw_active = false;
                out.release = Some(n as u32);
            }
            if !i.live() {
                c.live &= !(1 << n);
            }
        }
        for (k, word) in self.live_spis.iter_mut().enumerate() {
            for n in super::bits(*word) {
                if self.spis.get(64 * k + n).is_none_or(|i| !i.live()) {
                    *word &= !(1 << n);
                }
            }
        }
        let grp1_on = self.ctlr & CTLR_GRP1A != 0;
        // Candidates: (not active, priority, intid and source): active ones first; the
        // best `nr_lrs` of them are kept in order (no allocation, no sort on the entry path).
        let mut cand = Best::new(nr_lrs, &mut out.cand);
        let me = vcpu as u16;
        // An SGI is offered once per source it is pending from (GICv2), its active one
        // with its source (and that source's new pending state); others once, source 0.
        let consider = |intid: u32, i: &Irq, dist_gate: bool, cand: &mut Best<'_>| {
            if i.in_lr.is_some_and(|o| o != me) {
                return;
            }
            let (srcs, sources) = if intid < 16 {
                (if i.enabled { i.sgi_sources() } else { 0 }, 8)
            } else {
                (u8::from(i.enabled && dist_gate && i.pending_now()), 1)
            };
            for s in 0..sources {
                let active = i.active && s == i.act_src;
                if active || srcs & (1 << s) != 0 {
                    cand.offer(pack(!active, i.priority, key(intid, s)));
                }
            }
        };
        let c = &self.cpus[vcpu];
        for n in super::bits(c.live.into()) {
            consider(n as u32, &c.private[n], true, &mut cand);
        }
        for n in super::bits_of(&self.live_spis) {
            let i = &self.spis[n];
            if usize::from(i.target) == vcpu || i.in_lr == Some(me) {
                consider(PRIVATE + n as u32, i, grp1_on, &mut cand);
            }
        }
        out.underflow = cand.seen > nr_lrs;
        let v2 = self.v2;
        for &packed in cand.kept() {
            let k = packed as u32;
            let (intid, source) = (k >> 3, (k & 7) as u8);
            let Some(irq) = self.irq_mut(vcpu, intid) else { continue };
            // Held here only because it is active: its new pending state waits for the vCPU
            // it is routed to now. An SGI's is its source's.
            // A forwarded one active in the guest is not pending too: its line is the
            // physical interrupt that stays active until the guest deactivates it.
            let pending = irq.enabled
                && if intid < 16 {
                    irq.sgi_sources() & (1 << source) != 0
                } else {
                    (intid < PRIVATE || irq.target == me)
                        && irq.pending_now()
                        && (grp1_on || intid < PRIVATE)
                        && !(irq.forwarded && irq.active)
                };
            out.lrs[out.count] = Lr {
                intid,
                pending,
                // Only an SGI has a source other than 0.
                active: irq.active && irq.act_src == source,
                priority: irq.priority,
                // A GICv2 guest chooses the group (GICD_IGROUPR, Group 0 by default).
                group1: !v2 || irq.group1,
                // A linked interrupt carries its link only while the physical one is active
                // for it (the guest may make it pending itself).
                hw: if irq.forwarded {
                    Some(intid)
                } else if irq.hw_active {
                    irq.hw.map(u32::from)
                } else {
                    None
                },
                eoi: false,
                source,
            };
            out.count += 1;
            if pending {
                irq.lr_latched = irq.pending;
                irq.take_source(source);
            }
            irq.in_lr = Some(me);
        }
    }

    /// Private interrupt `intid`'s linked physical interrupt fired while `vcpu`'s list
    /// registers hold what the guest left of the last [`VGic::flush_into`] into `out` (not
    /// folded back; `read_first()` reads the first register now). When that flush gave a
    /// register to nothing but `intid`, every interrupt that wanted one had one (no
    /// underflow), and the guest is done with `intid`'s register (or it had none), `intid`
    /// goes into the first register as a new flush would put it there: the fold-back and
    /// choice would change nothing else. True: the caller writes that register. False:
    /// nothing changed; fold back, raise it and flush the full way.
    pub fn raise_linked_into(
        &mut self,
        vcpu: usize,
        (intid, nr_lrs): (u32, usize),
        out: &mut Flush,
        read_first: impl FnOnce() -> Option<Lr>,
    ) -> bool {
        if out.underflow || nr_lrs == 0 || intid >= PRIVATE || vcpu >= self.cpus.len() {
            return false;
        }
        let me = vcpu as u16;
        let v2 = self.v2;
        let c = &mut self.cpus[vcpu];
        let irq = &mut c.private[intid as usize];
        if !irq.enabled || irq.hw.is_none() || irq.forwarded || irq.pending_now() {
            return false;
        }
        match out.lrs() {
            [] if !irq.active && irq.in_lr.is_none() && !irq.hw_active => {}
            // Its register from the last entry, which the guest has deactivated: what the
            // fold-back would find (not active, its physical one ended through the link).
            // A link kept in software reads as not empty until its exit has ended it
            // (`read_first` sees the register still asking for its maintenance interrupt).
            [lr] if lr.intid == intid && irq.in_lr == Some(me) && read_first().is_none() => {}
            _ => return false,
        }
        // What `raise_linked` then `flush_into` leave: the physical one active for it, its
        // pending state taken from the latch into the register, which owns it.
        irq.active = false;
        irq.hw_active = true;
        irq.lr_latched = true;
        irq.in_lr = Some(me);
        c.live |= 1 << intid;
        out.lrs[0] = Lr {
            intid,
            pending: true,
            active: false,
            priority: irq.priority,
            group1: !v2 || irq.group1,
            hw: irq.hw.map(u32::from),
            eoi: false,
            source: 0,
        };
        out.count = 1;
        true
    }

    /// Folds back what `vcpu`'s list registers say after it ran: `lrs` are the decoded
    /// contents of the registers [`VGic::flush_into`] filled, in order (`None` where the guest
    /// finished with one). Returns the forwarded interrupts the guest has finished with
    /// (their line is dropped here; the caller unmasks the physical one).
    pub fn sync(&mut self, vcpu: usize, flushed: &Flush, now: &[Option<Lr>]) -> Vec<u32> {
        // An interrupt with several registers (a GICv2 SGI, one per source) is active if
        // one of them is.
        for before in flushed.lrs() {
            if let Some(irq) = self.irq_mut(vcpu, before.intid) {
                irq.active = false;
            }
        }
        let mut done = Vec::new();
        for (k, before) in flushed.lrs().iter().enumerate() {
            let after = now.get(k).copied().flatten();
            let Some(irq) = self.irq_mut(vcpu, before.intid) else { continue };
            // Only an SGI has a source other than 0.
            let source = if before.intid < 16 { before.source & 7 } else { 0 };
            if let Some(lr) = after.filter(|l| l.intid == before.intid && l.source == before.source) {
                if lr.active {
                    irq.active = true;
                    irq.act_src = source;
                }
                // A latched pending state still in the register goes back to the latch (an
                // SGI's, to its source); a level interrupt's pending state comes from its
                // line at the next flush.
                if lr.pending && (irq.edge || irq.lr_latched) {
                    irq.give_source(source);
                }
            }
            // Active on this vCPU: it stays this vCPU's until deactivated, wherever it
            // is routed meanwhile. (Only an SGI has several registers, and only its last
            // says: `active` only rises here.)
            irq.in_lr = irq.active.then_some(vcpu as u16);
            // Linked and deactivated by the guest: the hardware ended the physical one.
            if before.hw.is_some() && !irq.forwarded && !after.is_some_and(|l| l.pending || l.active) {
                irq.hw_active = false;
            }
            if irq.forwarded && !irq.active && !after.is_some_and(|l| l.pending) {
                // Unless its physical one already fired again: then the line stays high
                // for that one.
                irq.level = core::mem::take(&mut irq.refired);
                done.push(before.intid);
            }
        }
        done
    }
}

/// A candidate's last key part: its INTID and, for an SGI, its source vCPU (0..8).
fn key(intid: u32, source: u8) -> u32 {
    (intid << 3) | u32::from(source & 7)
}

/// A candidate's whole key, smallest first: not active (bit 40), priority (bits 39:32),
/// then [`key`].
fn pack(inactive: bool, priority: u8, key: u32) -> u64 {
    (u64::from(inactive) << 40) | (u64::from(priority) << 32) | u64::from(key)
}

/// The smallest `n` keys offered, in order, and how many were offered.
struct Best<'a> {
    keys: &'a mut [u64; MAX_LRS],
    n: usize,
    cap: usize,
    seen: usize,
}

impl<'a> Best<'a> {
    /// Keeps its keys in `keys` (whatever they held before is not read).
    fn new(cap: usize, keys: &'a mut [u64; MAX_LRS]) -> Best<'a> {
        Best { keys, n: 0, cap: cap.min(MAX_LRS), seen: 0 }
    }

    fn offer(&mut self, key: u64) {
        self.seen += 1;
        let pos = self.keys[..self.n].partition_point(|k| *k < key);
        if pos >= self.cap {
            return;
        }
        let last = if self.n < self.cap {
            self.n += 1;
            self.n - 1
        } else {
            self.n - 1
        };
        self.keys.copy_within(pos..last, pos + 1);
        self.keys[pos] = key;
    }

    fn kept(&self) -> &[u64] {
        &self.keys[..self.n]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_keeps_what_a_full_sort_would_put_first() {
        let mut seed = 0x2545_f491_u32;
        for round in 0..200 {
            let cap = round % (MAX_LRS + 2);
            let mut all = Vec::new();
            let mut keys = [seed as u64; MAX_LRS];
            let mut best = Best::new(cap, &mut keys);
            for intid in 0..(round as u32 % 60) {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                let key = pack(seed & 1 == 0, (seed >> 8) as u8 & 0xf0, intid);
                all.push(key);
                best.offer(key);
            }
            all.sort_unstable();
            all.truncate(cap.min(MAX_LRS));
            assert_eq!(best.kept(), &all[..], "round {round}");
            assert_eq!(best.seen, round % 60);
        }
    }
}
