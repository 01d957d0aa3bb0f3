//! Fuzzes a link (network or console) driven by two hostile drivers: each side's RAM (4 KiB pages of
//! descriptor tables, rings and buffers) comes from the input, and so does a sequence of
//! register accesses to either side's virtio-mmio transport (queue set-up, notifies,
//! status, interrupt acknowledgements). Nothing may panic, no access may leave a side's
//! RAM (the fake memory answers false outside it, which the queue code must handle), and
//! the peer's RAM changes only through its receive buffers' writes.
#![no_main]

use std::cell::RefCell;

use hyperlaunch::virtio::net::{Kind, Link};
use hyperlaunch::virtio::queue::GuestMem;
use libfuzzer_sys::fuzz_target;

const BASE: u64 = 0x4000_0000;
const SIZE: usize = 0x4000;

struct Ram(RefCell<Vec<u8>>);

impl GuestMem for Ram {
    fn read(&self, ipa: u64, buf: &mut [u8]) -> bool {
        let Some(a) = ipa.checked_sub(BASE).and_then(|a| usize::try_from(a).ok()) else { return false };
        let Some(r) = self.0.borrow().get(a..a.saturating_add(buf.len())).map(<[u8]>::to_vec) else {
            return false;
        };
        buf.copy_from_slice(&r);
        true
    }
    fn write(&self, ipa: u64, data: &[u8]) -> bool {
        let Some(a) = ipa.checked_sub(BASE).and_then(|a| usize::try_from(a).ok()) else { return false };
        let mut ram = self.0.borrow_mut();
        let Some(dst) = ram.get_mut(a..a.saturating_add(data.len())) else { return false };
        dst.copy_from_slice(data);
        true
    }
}

fn run(data: &[u8]) -> Option<()> {
    let (seed, ops) = data.split_at(data.len().min(2 * 1024));
    let mk = |half: &[u8]| {
        let mut v = vec![0u8; SIZE];
        for (i, b) in half.iter().enumerate() {
            v[(i * 8) % SIZE] = *b;
        }
        Ram(RefCell::new(v))
    };
    let (sa, sb) = seed.split_at(seed.len() / 2);
    let mems = [mk(sa), mk(sb)];
    let kind = if seed.first().is_some_and(|b| b & 1 != 0) { Kind::Console } else { Kind::Net };
    let mut link = Link::new(kind, [[2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]]);
    let mut it = ops.iter().copied();
    loop {
        let op = it.next()?;
        let side = usize::from(op & 1);
        // Offsets the transport has, or anywhere in its window.
        let offset = if op & 2 != 0 {
            [0x20, 0x24, 0x30, 0x38, 0x44, 0x50, 0x64, 0x70, 0x80, 0x84, 0x90, 0x94, 0xa0, 0xa4]
                [usize::from(it.next()?) % 14]
        } else {
            u64::from(it.next()?) * 2
        };
        let size = [1u8, 2, 4, 8][usize::from(op >> 6)];
        let v = u64::from(u16::from_le_bytes([it.next()?, it.next()?]));
        // Queue addresses land in RAM most of the time.
        let value = if matches!(offset, 0x80 | 0x90 | 0xa0) && op & 4 != 0 { BASE + (v & 0x3ff0) } else { v };
        let write = (op & 8 != 0).then_some(value);
        let (_, moved) = link.access(side, (offset, size, write), [&mems[0], &mems[1]]);
        assert!(moved.frames + moved.dropped <= 2 * 256, "at most a queue's worth each way");
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = run(data);
});
