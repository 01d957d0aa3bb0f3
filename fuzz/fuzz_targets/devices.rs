//! Fuzzes the emulated devices guests reach by MMIO: sequences of accesses of every size
//! and offset to a virtual GICv3 (distributor, redistributors, SGI register) or GICv2
//! (distributor, SGIR and per-source SGI pending registers, up to 10 vCPUs) with list
//! registers filled and folded back in that version's encoding, and to a virtual PL011 with
//! console input. Nothing may panic, and list-register contents always name interrupts the
//! vGIC has (and, for GICv2, a source vCPU it can name).
#![no_main]

use hyperlaunch::vgic::{Lr, VGic};
use hyperlaunch::vuart::Pl011;
use libfuzzer_sys::fuzz_target;

fn run(data: &[u8]) -> Option<()> {
    let mut it = data.iter().copied();
    let kind = it.next()?;
    let v2 = kind & 4 != 0;
    // A GICv2 names eight CPUs: some domains have more vCPUs than that.
    let vcpus = usize::from(kind % 4) + 1 + if v2 && kind & 8 != 0 { 6 } else { 0 };
    let spis = u32::from(it.next()?) * 4;
    let mut g = if v2 { VGic::new_v2(vcpus, spis) } else { VGic::new(vcpus, spis) };
    let mut u = Pl011::new();
    loop {
        let op = it.next()?;
        let vcpu = usize::from(it.next()?) % vcpus;
        let offset = u64::from(u16::from_le_bytes([it.next()?, it.next()?]));
        let size = [1u8, 2, 4, 8][usize::from(op >> 6)];
        let mut value = 0u64;
        for _ in 0..4 {
            value = (value << 8) | u64::from(it.next()?);
        }
        let write = (op & 0x20 != 0).then_some(value);
        match op % 8 {
            0 if v2 => {
                let _ = g.dist_v2_access(vcpu, offset & 0x1fff, size, write);
            }
            0 => {
                let _ = g.dist_access(vcpu, offset, size, write);
            }
            1 if v2 => {
                let _ = g.dist_v2_access(vcpu, 0xf00, 4, Some(value));
            }
            1 => {
                let _ = g.redist_access(offset + 0x2_0000 * vcpu as u64, size, write);
            }
            2 if v2 => {
                let _ = g.dist_v2_access(vcpu, 0xf10 + (offset & 0x1f), size, write);
            }
            2 => {
                let _ = g.sgi1r(vcpu, value << 8 | value);
            }
            3 => {
                let _ = g.raise(vcpu, (value % 1100) as u32);
                let _ = g.set_level(vcpu, (value >> 16) as u32 % 1100, op & 0x10 != 0);
            }
            4 => {
                // The guest runs with up to 16 list registers and changes their state.
                let nr = usize::from(op >> 4) + 1;
                let f = g.flush(vcpu, nr);
                assert!(f.lrs().len() <= nr);
                assert!(f.lrs().iter().all(|l| l.intid < g.limit()));
                assert!(f.lrs().iter().all(|l| usize::from(l.source) < vcpus.min(8)));
                assert!(f.lrs().iter().all(|l| l.source == 0 || l.intid < 16));
                let now: Vec<Option<Lr>> = f
                    .lrs()
                    .iter()
                    .enumerate()
                    .map(|(i, l)| {
                        (value >> i & 1 == 0)
                            .then(|| {
                                if v2 {
                                    Lr::from_v2(l.to_v2() ^ ((value as u32) << 28 & 0x3000_0000))
                                } else {
                                    Lr::from_v3(l.to_v3() ^ (value << 62))
                                }
                            })
                            .flatten()
                    })
                    .collect();
                let _ = g.sync(vcpu, &f, &now);
            }
            5 => {
                let _ = match write {
                    Some(v) => (0, u.write(offset & 0xfff, v as u32)),
                    None => u.read(offset & 0xfff),
                };
            }
            6 => {
                let _ = u.receive(value as u8);
                let _ = (u.rx_room(), u.irq());
            }
            _ => {
                let _ = g.has_pending(vcpu);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = run(data);
});
