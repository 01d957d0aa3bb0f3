//! Host tests of the GICv2 view: distributor registers, CPU targets, SGIs with their
//! source, and what reaches the GICv2 list-register encoding.

use super::*;

fn w(g: &mut VGic, vcpu: usize, off: u64, v: u64) -> u64 {
    match g.dist_v2_access(vcpu, off, 4, Some(v)) {
        Access::Done { kick, .. } => kick,
        Access::Unknown => panic!("unknown offset {off:#x}"),
    }
}

fn r(g: &mut VGic, vcpu: usize, off: u64) -> u64 {
    match g.dist_v2_access(vcpu, off, 4, None) {
        Access::Done { value, .. } => value,
        Access::Unknown => panic!("unknown offset {off:#x}"),
    }
}

fn rb(g: &mut VGic, vcpu: usize, off: u64) -> u64 {
    match g.dist_v2_access(vcpu, off, 1, None) {
        Access::Done { value, .. } => value,
        Access::Unknown => panic!("unknown offset {off:#x}"),
    }
}

/// A GICv2 the way Linux leaves it: distributor on, SGIs and PPIs enabled at 0xa0 on
/// every vCPU.
fn linux_like(vcpus: usize) -> VGic {
    let mut g = VGic::new_v2(vcpus, 32);
    w(&mut g, 0, 0x000, 1);
    for c in 0..vcpus {
        w(&mut g, c, 0x100, 0xffff_ffff);
        for n in 0..8 {
            w(&mut g, c, 0x400 + n * 4, 0xa0a0_a0a0);
        }
    }
    g
}

fn sgir(g: &mut VGic, vcpu: usize, filter: u64, list: u64, sgi: u64) -> u64 {
    w(g, vcpu, 0xf00, (filter << 24) | (list << 16) | sgi)
}

/// The guest acknowledges the register at `k`: active, no longer pending.
fn acked(f: &Flush, k: usize) -> Vec<Option<Lr>> {
    let mut now: Vec<Option<Lr>> = f.lrs().iter().map(|l| Some(*l)).collect();
    now[k] = Some(Lr { pending: false, active: true, ..f.lrs[k] });
    now
}

fn ids(f: &Flush) -> Vec<(u32, u8)> {
    f.lrs().iter().map(|l| (l.intid, l.source)).collect()
}

#[test]
fn identification_registers() {
    let mut g = VGic::new_v2(3, 40);
    // 64 SPIs: ITLinesNumber 2; CPUNumber 2; no Security Extensions.
    assert_eq!(r(&mut g, 0, 0x004), 2 | (2 << 5));
    assert_eq!(r(&mut g, 0, 0x008), 0x43b);
    assert_eq!(r(&mut g, 0, 0xfe8) >> 4 & 0xf, 2, "PIDR2.ArchRev");
    let cidr: Vec<u64> = (0..4).map(|i| r(&mut g, 0, 0xff0 + i * 4)).collect();
    assert_eq!(cidr, [0x0d, 0xf0, 0x05, 0xb1]);
    assert_eq!(r(&mut g, 0, 0xfd0), 0x04, "PIDR4: JEP106 continuation");
    // Read-only and write-only registers.
    w(&mut g, 0, 0x004, 0);
    assert_eq!(r(&mut g, 0, 0x004), 2 | (2 << 5));
    assert_eq!(r(&mut g, 0, 0xf00), 0);
    // GICD_CTLR: bit 0 only.
    assert_eq!(r(&mut g, 0, 0x000), 0);
    assert_eq!(w(&mut g, 0, 0x000, 0b11), 0b111);
    assert_eq!(r(&mut g, 0, 0x000), 1);
    w(&mut g, 0, 0x000, 0b10);
    assert_eq!(r(&mut g, 0, 0x000), 0);
    // Eight CPU interfaces at most.
    let mut big = VGic::new_v2(12, 32);
    assert_eq!(r(&mut big, 0, 0x004) >> 5 & 7, 7);
}

#[test]
fn per_interrupt_registers_round_trip() {
    let mut g = VGic::new_v2(2, 32);
    // SPI 33 enable, pending, active through set/clear pairs.
    for (set, clear) in [(0x104, 0x184), (0x204, 0x284), (0x304, 0x384)] {
        w(&mut g, 0, set, 1 << 1);
        assert_eq!((r(&mut g, 0, set), r(&mut g, 1, clear)), (2, 2), "{set:#x}");
        w(&mut g, 1, clear, 1 << 1);
        assert_eq!(r(&mut g, 0, set), 0, "{set:#x}");
    }
    // The same interrupts as the GICv3 view.
    w(&mut g, 0, 0x104, 1 << 4);
    assert_eq!(g.dist_access(0, 0x104, 4, None), Access::Done { value: 1 << 4, kick: 0 });
    // Priority and byte access.
    g.dist_v2_access(0, 0x400 + 34, 1, Some(0x80));
    assert_eq!(r(&mut g, 0, 0x420), 0x0080_0000);
    assert_eq!(rb(&mut g, 0, 0x422), 0x80);
    // Register 0 of each bank is the accessing vCPU's: PPI 27 on vCPU 1 only.
    w(&mut g, 1, 0x100, 1 << 27);
    w(&mut g, 1, 0x41b & !3, 0x4000_0000);
    assert_eq!((r(&mut g, 0, 0x100), r(&mut g, 1, 0x100)), (0, 1 << 27));
    assert_eq!(rb(&mut g, 1, 0x41b), 0x40);
    assert_eq!(rb(&mut g, 0, 0x41b), 0);
    // Config: SGIs read as edge and ignore writes, PPIs and SPIs take theirs.
    assert_eq!(r(&mut g, 0, 0xc00), 0xaaaa_aaaa);
    w(&mut g, 0, 0xc00, 0);
    assert_eq!(r(&mut g, 0, 0xc00), 0xaaaa_aaaa);
    w(&mut g, 0, 0xc04, 2 << 22);
    assert_eq!(r(&mut g, 0, 0xc04), 2 << 22);
    w(&mut g, 0, 0xc08, 2 << 2);
    assert_eq!(r(&mut g, 0, 0xc08), 2 << 2);
    // SGI pending bits of GICD_ISPENDR/GICD_ICPENDR ignore writes; PPIs take them.
    w(&mut g, 0, 0x200, 0x0001_0003);
    assert_eq!(r(&mut g, 0, 0x200), 0x0001_0000);
    // Group: Group 0 by default; a Group 1 interrupt says so in its list register.
    assert_eq!(r(&mut g, 0, 0x084), 0);
    w(&mut g, 0, 0x084, 1 << 4);
    assert_eq!(r(&mut g, 0, 0x084), 1 << 4);
    w(&mut g, 0, 0x000, 1);
    g.raise(0, 36);
    g.raise(0, 33);
    w(&mut g, 0, 0x104, 1 << 1);
    let f = g.flush(0, 4);
    let groups: Vec<(u32, u32)> = f.lrs().iter().map(|l| (l.intid, l.to_v2() >> 30 & 1)).collect();
    assert!(groups.contains(&(36, 1)) && groups.contains(&(33, 0)), "{groups:?}");
}

#[test]
fn itargetsr_routes_to_the_lowest_targeted_vcpu() {
    let mut g = linux_like(4);
    // SGIs and PPIs: the accessing vCPU's own bit; writes ignored.
    assert_eq!(r(&mut g, 2, 0x800), 0x0404_0404);
    assert_eq!(rb(&mut g, 3, 0x81f), 0x08);
    w(&mut g, 2, 0x800, 0);
    assert_eq!(r(&mut g, 2, 0x81c), 0x0404_0404);
    // SPI 32 to vCPUs 2 and 3: delivered to 2; reads back what was written.
    w(&mut g, 0, 0x104, 1);
    assert_eq!(g.dist_v2_access(0, 0x820, 1, Some(0x0c)), Access::Done { value: 0, kick: 0b101 });
    assert_eq!(r(&mut g, 0, 0x820), 0x0c);
    assert_eq!(g.set_level(0, 32, true), 0b100);
    assert!(g.has_pending(2) && !g.has_pending(0) && !g.has_pending(3));
    let f = g.flush(2, 4);
    assert_eq!(ids(&f), [(32, 0)]);
    g.sync(2, &f, &[None]);
    // vCPUs that do not exist are dropped from the mask; an empty one means vCPU 0.
    g.dist_v2_access(0, 0x820, 1, Some(0xf8));
    assert_eq!(rb(&mut g, 0, 0x820), 0x08);
    assert!(g.has_pending(3));
    g.dist_v2_access(0, 0x820, 1, Some(0xf0));
    assert_eq!(rb(&mut g, 0, 0x820), 0);
    assert!(g.has_pending(0));
    // A word write sets four SPIs; byte lanes stay apart.
    w(&mut g, 0, 0x824, 0x0102_0408);
    assert_eq!((rb(&mut g, 0, 0x825), rb(&mut g, 0, 0x827)), (0x04, 0x01));
}

#[test]
fn an_spi_retargeted_while_active_stays_until_deactivated() {
    let mut g = linux_like(2);
    w(&mut g, 0, 0x104, 1);
    g.dist_v2_access(0, 0x820, 1, Some(1));
    g.raise(0, 32);
    let f0 = g.flush(0, 4);
    assert_eq!(ids(&f0), [(32, 0)]);
    // Moved to vCPU 1 while vCPU 0 holds it; raised again.
    g.dist_v2_access(1, 0x820, 1, Some(2));
    g.raise(0, 32);
    assert_eq!(g.flush(1, 4).count, 0);
    g.sync(0, &f0, &acked(&f0, 0));
    let f0 = g.flush(0, 4);
    assert!(f0.lrs[0].active && !f0.lrs[0].pending);
    assert_eq!(g.flush(1, 4).count, 0, "still active on vCPU 0");
    g.sync(0, &f0, &[None]);
    let f1 = g.flush(1, 4);
    assert_eq!(ids(&f1), [(32, 0)]);
    assert!(f1.lrs[0].pending);
}

#[test]
fn disabling_an_active_interrupt_keeps_it_until_deactivated() {
    // bao #371 through the GICv2 view.
    let mut g = linux_like(1);
    w(&mut g, 0, 0x104, 1);
    g.set_level(0, 32, true);
    let f = g.flush(0, 4);
    g.sync(0, &f, &acked(&f, 0));
    w(&mut g, 0, 0x184, 1);
    let f = g.flush(0, 4);
    assert_eq!(f.count, 1);
    assert_eq!(f.lrs[0].to_v2() >> 28 & 3, 0b10, "active only");
    g.set_level(0, 32, false);
    g.sync(0, &f, &[None]);
    w(&mut g, 0, 0x104, 1);
    assert!(!g.has_pending(0));
    assert_eq!(g.flush(0, 4).count, 0);
}

#[test]
fn a_flood_of_sgis_wakes_the_target_once_per_source() {
    let mut g = linux_like(3);
    assert_eq!(sgir(&mut g, 1, 0, 0b1, 3), 0b1);
    for _ in 0..1000 {
        assert_eq!(sgir(&mut g, 1, 0, 0b1, 3), 0, "already pending from vCPU 1");
    }
    // Another source is a new pending state: it wakes the target.
    assert_eq!(sgir(&mut g, 2, 0, 0b1, 3), 0b1);
}

#[test]
fn sgir_filters_and_sources_reach_the_list_registers() {
    let mut g = linux_like(4);
    // vCPU 1 to the list {0, 2} (and vCPU 5, which does not exist).
    assert_eq!(sgir(&mut g, 1, 0, 0b10_0101, 3), 0b0101);
    // vCPU 2 to all but itself; vCPU 3 to itself; filter 3 is reserved.
    assert_eq!(sgir(&mut g, 2, 1, 0, 3), 0b1011);
    assert_eq!(sgir(&mut g, 3, 2, 0xff, 3), 0b1000);
    assert_eq!(sgir(&mut g, 0, 3, 0xff, 3), 0);
    // vCPU 0 has SGI 3 pending from sources 1 and 2, once each.
    sgir(&mut g, 1, 0, 1, 3);
    assert_eq!(rb(&mut g, 0, 0xf23), 0b110);
    assert_eq!(r(&mut g, 0, 0x200) & (1 << 3), 1 << 3);
    let f = g.flush(0, 4);
    assert_eq!(ids(&f), [(3, 1), (3, 2)]);
    let cpuid: Vec<u32> = f.lrs().iter().map(|l| l.to_v2() >> 10 & 7).collect();
    assert_eq!(cpuid, [1, 2]);
    assert_eq!(Lr::from_v2(f.lrs[1].to_v2()).map(|l| l.source), Some(2));
    assert_eq!(rb(&mut g, 0, 0xf23), 0, "in the list registers");
    // The guest takes the one from vCPU 1; vCPU 1 sends again meanwhile.
    sgir(&mut g, 1, 0, 1, 3);
    g.sync(0, &f, &acked(&f, 0));
    let f = g.flush(0, 4);
    assert_eq!(ids(&f), [(3, 1), (3, 2)]);
    assert!(f.lrs[0].active && f.lrs[0].pending, "active and pending from vCPU 1");
    assert!(!f.lrs[1].active && f.lrs[1].pending);
    // Both finished: nothing left; vCPU 3 has its own.
    g.sync(0, &f, &[None, None]);
    assert_eq!(g.flush(0, 4).count, 0);
    assert_eq!(ids(&g.flush(3, 4)), [(3, 2), (3, 3)]);
}

#[test]
fn sgi_pending_registers_per_source() {
    let mut g = linux_like(3);
    // SPENDSGIR: SGI 5 on vCPU 1 from sources 0 and 2 (bit 4: no such vCPU).
    assert_eq!(g.dist_v2_access(1, 0xf25, 1, Some(0b1_0101)), Access::Done { value: 0, kick: 0b10 });
    assert_eq!(r(&mut g, 1, 0xf24), 0b101 << 8);
    assert_eq!(r(&mut g, 1, 0xf14), 0b101 << 8, "same state through CPENDSGIR");
    assert_eq!(r(&mut g, 0, 0xf24), 0, "banked");
    // GICD_ICPENDR does not clear an SGI; CPENDSGIR clears one source.
    w(&mut g, 1, 0x280, 1 << 5);
    assert_eq!(r(&mut g, 1, 0x200), 1 << 5);
    g.dist_v2_access(1, 0xf15, 1, Some(0b001));
    assert_eq!(rb(&mut g, 1, 0xf25), 0b100);
    assert_eq!(ids(&g.flush(1, 4)), [(5, 2)]);
    // An SGI raised by the hypervisor counts as from vCPU 0.
    g.raise(2, 7);
    assert_eq!(rb(&mut g, 2, 0xf27), 1);
}

#[test]
fn list_register_overflow_asks_for_underflow() {
    let mut g = linux_like(8);
    // SGI 1 at vCPU 0 from all seven others, and a higher-priority PPI.
    for s in 1..8 {
        sgir(&mut g, s, 0, 1, 1);
    }
    g.dist_v2_access(0, 0x41b, 1, Some(0x20));
    g.raise(0, VTIMER_PPI);
    let f = g.flush(0, 4);
    assert!(f.underflow);
    assert_eq!(ids(&f), [(VTIMER_PPI, 0), (1, 1), (1, 2), (1, 3)]);
    g.sync(0, &f, &[None; 4]);
    let f = g.flush(0, 4);
    assert_eq!(ids(&f), [(1, 4), (1, 5), (1, 6), (1, 7)]);
    assert!(!f.underflow);
}

#[test]
fn forwarded_spi_in_the_v2_encoding() {
    let mut g = VGic::new_v2(1, 64);
    w(&mut g, 0, 0x000, 1);
    w(&mut g, 0, 0x104, 1 << 2); // SPI 34
    g.forward(34);
    g.set_level(0, 34, true);
    let f = g.flush(0, 4);
    let v = f.lrs[0].to_v2();
    assert_eq!((v >> 31, v >> 30 & 1, v >> 28 & 3), (1, 0, 0b01), "HW, Group 0, pending");
    assert_eq!((v >> 10 & 0x3ff, v & 0x3ff), (34, 34), "physical and virtual INTID");
    assert_eq!(Lr::from_v2(v), Some(f.lrs[0]));
    let now = acked(&f, 0);
    assert!(g.sync(0, &f, &[Lr::from_v2(now[0].unwrap().to_v2())]).is_empty());
    let f = g.flush(0, 4);
    assert_eq!(g.sync(0, &f, &[None]), [34]);
}

#[test]
fn list_register_source_encoding() {
    let sgi = Lr { intid: 5, pending: true, priority: 0xa0, source: 6, ..Lr::default() };
    assert_eq!(sgi.to_v2(), 5 | (6 << 10) | (0xa0 >> 3 << 23) | (1 << 28));
    assert_eq!(Lr::from_v2(sgi.to_v2()), Some(sgi));
    // GICv3 has no source field.
    assert_eq!(sgi.to_v3(), Lr { source: 0, ..sgi }.to_v3());
    assert_eq!(Lr::from_v3(sgi.to_v3()).map(|l| l.source), Some(0));
    // Not an SGI, or a hardware one: bits 12:10 are not a source.
    let ppi = Lr { intid: 27, source: 6, ..sgi };
    assert_eq!(ppi.to_v2() >> 10 & 7, 0);
    assert_eq!(Lr::from_v2(0x1000_0000 | (3 << 10) | 40).map(|l| l.source), Some(0));
    let hw = Lr { hw: Some(17), ..sgi };
    assert_eq!(hw.to_v2() >> 10 & 0x3ff, 17);
}

#[test]
fn most_spis_and_hostile_accesses() {
    let mut g = VGic::new_v2(2, 100_000);
    assert_eq!(g.limit(), 992);
    assert_eq!(r(&mut g, 0, 0x004) & 0x1f, 30);
    // The last SPI works; past it everything reads as zero and ignores writes.
    w(&mut g, 0, 0x100 + 991 / 32 * 4, 1 << 31);
    assert_eq!(r(&mut g, 0, 0x178), 1 << 31);
    g.dist_v2_access(0, 0x800 + 991, 1, Some(2));
    assert_eq!(rb(&mut g, 0, 0x800 + 991), 2);
    for off in [0x180 - 4, 0x400 + 992, 0x800 + 1019, 0xc00 + 992 / 4] {
        w(&mut g, 0, off, u64::MAX);
        assert_eq!(r(&mut g, 0, off), 0, "{off:#x}");
    }
    assert_eq!(g.dist_v2_access(0, 0x1000, 4, None), Access::Unknown);
    assert_eq!(g.dist_v2_access(0, 0x100, 3, None), Access::Unknown);
    assert_eq!(g.dist_v2_access(0, 0x00c, 4, None), Access::Unknown);
    // Every offset, size and vCPU (existing or not): no panic.
    for off in (0..0x1010).chain([u64::MAX - 3, 1 << 40]) {
        for size in [0, 1, 2, 3, 4, 8, 16, 255] {
            for vcpu in [0, 1, 2, usize::MAX] {
                let _ = g.dist_v2_access(vcpu, off, size, Some(u64::MAX));
                let _ = g.dist_v2_access(vcpu, off, size, None);
            }
        }
    }
    for vcpu in 0..3 {
        let f = g.flush(vcpu, MAX_LRS + 4);
        assert!(f.lrs().iter().all(|l| l.intid < g.limit() && l.to_v2() & 0x3ff == l.intid));
        g.sync(vcpu, &f, &[]);
    }
}

#[test]
fn xen_guest_layout_has_room_for_the_v2_frames() {
    use crate::guest::GuestMap;
    assert_eq!((GuestMap::XEN.gicd, GuestMap::XEN.gicc), (0x0300_1000, 0x0300_2000));
    const { assert!(GuestMap::XEN.gicd + GICD_V2_SIZE <= GuestMap::XEN.gicc) };
    const { assert!(GuestMap::XEN.gicc + GICC_V2_SIZE <= GuestMap::XEN.gicr) };
}
