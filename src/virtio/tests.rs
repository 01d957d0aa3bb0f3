//! Host tests of the virtio link: a driver model sets up both sides in fake guest RAM,
//! frames cross, and a hostile driver's bad rings fail only its own side.

use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;

use super::mmio::{self, DEVICE_NEEDS_RESET, DRIVER_OK, FEATURES_OK, INT_CONFIG, INT_USED};
use super::net::{HDR, Kind, Link, RX, TX};
use super::queue::{GuestMem, QueueError};

const BASE: u64 = 0x4000_0000;
const SIZE: usize = 0x10_0000;

/// A guest's RAM: 1 MiB at 0x4000_0000.
struct Ram(RefCell<Vec<u8>>);

impl Ram {
    fn new() -> Ram {
        Ram(RefCell::new(vec![0; SIZE]))
    }
    fn range(&self, ipa: u64, n: usize) -> Option<core::ops::Range<usize>> {
        let a = usize::try_from(ipa.checked_sub(BASE)?).ok()?;
        let end = a.checked_add(n)?;
        (end <= SIZE).then_some(a..end)
    }
    fn put(&self, ipa: u64, data: &[u8]) {
        let r = self.range(ipa, data.len()).unwrap();
        self.0.borrow_mut()[r].copy_from_slice(data);
    }
    fn get(&self, ipa: u64, n: usize) -> Vec<u8> {
        let r = self.range(ipa, n).unwrap();
        self.0.borrow()[r].to_vec()
    }
    fn u16(&self, ipa: u64) -> u16 {
        u16::from_le_bytes(self.get(ipa, 2).try_into().unwrap())
    }
}

impl GuestMem for Ram {
    fn read(&self, ipa: u64, buf: &mut [u8]) -> bool {
        match self.range(ipa, buf.len()) {
            Some(r) => {
                buf.copy_from_slice(&self.0.borrow()[r]);
                true
            }
            None => false,
        }
    }
    fn write(&self, ipa: u64, data: &[u8]) -> bool {
        match self.range(ipa, data.len()) {
            Some(r) => {
                self.0.borrow_mut()[r].copy_from_slice(data);
                true
            }
            None => false,
        }
    }
}

/// Where a queue's rings sit in a side's RAM (16 entries each).
const N: u16 = 16;
fn rings(q: usize) -> (u64, u64, u64) {
    let base = BASE + 0x1000 * (1 + 3 * q as u64);
    (base, base + 0x1000, base + 0x2000)
}
/// Buffers: 2 KiB each, 16 per queue.
fn buf(q: usize, i: u16) -> u64 {
    BASE + 0x2_0000 + 0x1_0000 * q as u64 + 0x800 * u64::from(i)
}

/// A virtio-net driver as Linux drives one: negotiate, set up both queues, go live.
fn bring_up(link: &mut Link, side: usize, mem: [&dyn GuestMem; 2]) {
    let mut w = |off: u64, v: u64| {
        link.access(side, (off, 4, Some(v)), mem);
    };
    w(0x070, 0);
    w(0x070, 1 | 2);
    w(0x024, 1);
    w(0x020, 1); // VERSION_1
    w(0x024, 0);
    w(0x020, 1 << 5); // MAC
    w(0x070, 1 | 2 | u64::from(FEATURES_OK));
    for q in [RX, TX] {
        let (d, a, u) = rings(q);
        w(0x030, q as u64);
        w(0x038, u64::from(N));
        w(0x080, d);
        w(0x090, a);
        w(0x0a0, u);
        w(0x044, 1);
    }
    w(0x070, 1 | 2 | u64::from(FEATURES_OK | DRIVER_OK));
    let st = link.access(side, (0x070, 4, None), mem).0 as u32;
    assert_eq!(st & FEATURES_OK, FEATURES_OK, "features accepted");
}

/// Descriptor `i` of queue `q`: a buffer, device-writable or not, chained to `next`.
fn desc(ram: &Ram, q: usize, i: u16, (addr, len): (u64, u32), write: bool, next: Option<u16>) {
    let mut d = [0u8; 16];
    d[..8].copy_from_slice(&addr.to_le_bytes());
    d[8..12].copy_from_slice(&len.to_le_bytes());
    let flags = u16::from(next.is_some()) | if write { 2 } else { 0 };
    d[12..14].copy_from_slice(&flags.to_le_bytes());
    d[14..].copy_from_slice(&next.unwrap_or(0).to_le_bytes());
    ram.put(rings(q).0 + 16 * u64::from(i), &d);
}

/// Makes chain `head` available in queue `q` (the driver's avail index goes up by one).
fn offer(ram: &Ram, q: usize, head: u16) {
    let (_, a, _) = rings(q);
    let idx = ram.u16(a + 2);
    ram.put(a + 4 + 2 * u64::from(idx % N), &head.to_le_bytes());
    ram.put(a + 2, &idx.wrapping_add(1).to_le_bytes());
}

/// `n` receive buffers of 2 KiB offered.
fn post_rx(ram: &Ram, n: u16) {
    for i in 0..n {
        desc(ram, RX, i, (buf(RX, i), 0x800), true, None);
        offer(ram, RX, i);
    }
}

/// A frame (header + payload) queued for transmit as descriptor `i`.
fn send(ram: &Ram, i: u16, payload: &[u8]) {
    let mut f = vec![0u8; HDR];
    f.extend_from_slice(payload);
    ram.put(buf(TX, i), &f);
    desc(ram, TX, i, (buf(TX, i), f.len() as u32), false, None);
    offer(ram, TX, i);
}

fn notify_tx(link: &mut Link, side: usize, mem: [&dyn GuestMem; 2]) -> super::net::Moved {
    link.access(side, (0x050, 4, Some(TX as u64)), mem).1
}

fn used(ram: &Ram, q: usize, k: u16) -> (u32, u32) {
    let (_, _, u) = rings(q);
    let e = ram.get(u + 4 + 8 * u64::from(k % N), 8);
    (u32::from_le_bytes(e[..4].try_into().unwrap()), u32::from_le_bytes(e[4..].try_into().unwrap()))
}

fn pair() -> (Link, Ram, Ram) {
    let (a, b) = (Ram::new(), Ram::new());
    let mut link = Link::new(Kind::Net, [[2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]]);
    bring_up(&mut link, 0, [&a, &b]);
    bring_up(&mut link, 1, [&a, &b]);
    (link, a, b)
}

#[test]
fn the_transport_says_what_it_is() {
    let (mut link, a, b) = pair();
    let r = |l: &mut Link, off, size| l.access(0, (off, size, None), [&a, &b]).0;
    assert_eq!(r(&mut link, 0x000, 4), u64::from(mmio::MAGIC));
    assert_eq!(r(&mut link, 0x004, 4), 2);
    assert_eq!(r(&mut link, 0x008, 4), 1, "a network card");
    assert_eq!(r(&mut link, 0x034, 4), 256);
    // The MAC in the configuration space, byte by byte and as a word.
    assert_eq!(r(&mut link, 0x105, 1), 1);
    assert_eq!(r(&mut link, 0x100, 4), 0x0000_0002);
    // A driver asking for a feature not offered does not get FEATURES_OK.
    link.access(1, (0x070, 4, Some(0)), [&a, &b]);
    link.access(1, (0x024, 4, Some(1)), [&a, &b]);
    link.access(1, (0x020, 4, Some(1 | 2)), [&a, &b]);
    link.access(1, (0x070, 4, Some(u64::from(FEATURES_OK) | 3)), [&a, &b]);
    assert_eq!(link.access(1, (0x070, 4, None), [&a, &b]).0 as u32 & FEATURES_OK, 0);
}

#[test]
fn frames_cross_both_ways() {
    let (mut link, a, b) = pair();
    post_rx(&b, 4);
    post_rx(&a, 4);
    send(&a, 0, b"hello from a");
    send(&a, 1, b"second");
    let m = notify_tx(&mut link, 0, [&a, &b]);
    assert_eq!((m.frames, m.dropped), (2, 0));
    assert_eq!(m.interrupt, [true, true]);
    // Both transmit buffers back to A, the frames in B's first two receive buffers.
    assert_eq!((used(&a, TX, 0), used(&a, TX, 1)), ((0, 0), (1, 0)));
    assert_eq!(used(&b, RX, 0), (0, (HDR + 12) as u32));
    let got = b.get(buf(RX, 0), HDR + 12);
    assert_eq!(&got[HDR..], b"hello from a");
    assert_eq!(&got[10..12], &1u16.to_le_bytes(), "num_buffers");
    assert_eq!(used(&b, RX, 1).1, (HDR + 6) as u32);
    assert_eq!(link.ports[1].t.isr & INT_USED, INT_USED);
    // Acknowledged, the line goes down.
    link.access(1, (0x064, 4, Some(u64::from(INT_USED))), [&a, &b]);
    assert_eq!(link.ports[1].t.isr, 0);
    send(&b, 0, b"reply");
    assert_eq!(notify_tx(&mut link, 1, [&a, &b]).frames, 1);
    assert_eq!(&a.get(buf(RX, 0), HDR + 5)[HDR..], b"reply");
}

#[test]
fn a_peer_that_never_reads_costs_dropped_frames_only() {
    let (mut link, a, b) = pair();
    post_rx(&b, 1);
    for i in 0..3 {
        send(&a, i, b"x");
    }
    let m = notify_tx(&mut link, 0, [&a, &b]);
    assert_eq!((m.frames, m.dropped), (1, 2), "one receive buffer: two frames dropped");
    assert_eq!(a.u16(rings(TX).2 + 2), 3, "every transmit buffer returned to the sender");
    assert!(link.ports[0].t.live() && link.ports[1].t.live());
    // A receive buffer too small for the frame goes back empty and the frame is dropped.
    desc(&b, RX, 1, (buf(RX, 1), 8), true, None);
    offer(&b, RX, 1);
    send(&a, 3, b"too long for it");
    let m = notify_tx(&mut link, 0, [&a, &b]);
    assert_eq!((m.frames, m.dropped), (0, 1));
    assert_eq!(used(&b, RX, 1), (1, 0));
}

#[test]
fn a_peer_not_up_drops_and_nothing_is_touched() {
    let (a, b) = (Ram::new(), Ram::new());
    let mut link = Link::new(Kind::Net, [[2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]]);
    bring_up(&mut link, 0, [&a, &b]);
    send(&a, 0, b"anyone?");
    let before = b.get(BASE, SIZE);
    let m = notify_tx(&mut link, 0, [&a, &b]);
    assert_eq!((m.frames, m.dropped), (0, 1));
    assert_eq!(b.get(BASE, SIZE), before);
}

/// Each bad thing a transmitting driver can do fails its side only; the peer's link is
/// usable again once the bad side resets.
#[test]
fn hostile_transmit_rings_fail_only_their_side() {
    type Break = fn(&Ram);
    let cases: [(&str, Break, QueueError); 7] = [
        (
            "buffer outside RAM",
            |a| desc(a, TX, 0, (0x1000, 64), false, None),
            QueueError::BufferOutside(0x1000),
        ),
        (
            "length past the end",
            |a| desc(a, TX, 0, (BASE + SIZE as u64 - 8, 64), false, None),
            QueueError::BufferOutside(BASE + SIZE as u64 - 8),
        ),
        (
            "wrapping address",
            |a| desc(a, TX, 0, (u64::MAX - 4, 64), false, None),
            QueueError::BufferOutside(u64::MAX - 4),
        ),
        (
            "loop",
            |a| {
                desc(a, TX, 0, (buf(TX, 0), 64), false, Some(1));
                desc(a, TX, 1, (buf(TX, 1), 64), false, Some(0));
            },
            QueueError::Loop,
        ),
        (
            "index past the queue",
            |a| desc(a, TX, 0, (buf(TX, 0), 64), false, Some(99)),
            QueueError::DescIndex(99),
        ),
        ("write-only buffer", |a| desc(a, TX, 0, (buf(TX, 0), 64), true, None), QueueError::Direction),
        ("huge", |a| desc(a, TX, 0, (BASE, 0xffff_ffff), false, None), QueueError::TooLong(0xffff_ffff)),
    ];
    for (what, make, err) in cases {
        let (mut link, a, b) = pair();
        post_rx(&b, 2);
        make(&a);
        offer(&a, TX, 0);
        let before = b.get(BASE, SIZE);
        let m = notify_tx(&mut link, 0, [&a, &b]);
        assert_eq!(m.failed, [Some(err), None], "{what}");
        assert_eq!(b.get(BASE, SIZE), before, "{what}: nothing reached the peer");
        assert_eq!(link.ports[0].t.status & DEVICE_NEEDS_RESET, DEVICE_NEEDS_RESET, "{what}");
        assert_eq!(link.ports[0].t.isr & INT_CONFIG, INT_CONFIG, "{what}: told");
        assert!(link.ports[1].t.live(), "{what}: the peer is fine");
        // The peer can still send to it once it resets and comes back.
        bring_up(&mut link, 0, [&a, &b]);
        a.put(rings(RX).1 + 2, &0u16.to_le_bytes());
        b.put(rings(TX).1 + 2, &0u16.to_le_bytes());
        post_rx(&a, 1);
        send(&b, 0, b"still here");
        assert_eq!(notify_tx(&mut link, 1, [&a, &b]).frames, 1, "{what}");
    }
}

#[test]
fn an_available_index_far_ahead_fails_the_side() {
    let (mut link, a, b) = pair();
    a.put(rings(TX).1 + 2, &(N + 1).to_le_bytes());
    let m = notify_tx(&mut link, 0, [&a, &b]);
    assert_eq!(m.failed[0], Some(QueueError::AvailIndex { avail: N + 1, seen: 0 }));
    // Rings outside RAM: the queue is set up, the first read fails.
    let (mut link, a, b) = pair();
    link.access(0, (0x070, 4, Some(0)), [&a, &b]);
    link.access(0, (0x030, 4, Some(TX as u64)), [&a, &b]);
    link.access(0, (0x038, 4, Some(16)), [&a, &b]);
    link.access(0, (0x090, 4, Some(0x10)), [&a, &b]);
    link.access(0, (0x044, 4, Some(1)), [&a, &b]);
    link.access(0, (0x070, 4, Some(u64::from(DRIVER_OK))), [&a, &b]);
    assert_eq!(notify_tx(&mut link, 0, [&a, &b]).failed[0], Some(QueueError::RingOutside(0x12)));
}

#[test]
fn a_console_link_carries_bytes_across_as_many_buffers_as_they_fill() {
    let (a, b) = (Ram::new(), Ram::new());
    let mut link = Link::new(Kind::Console, [[0; 6]; 2]);
    for side in 0..2 {
        link.access(side, (0x070, 4, Some(0)), [&a, &b]);
        assert_eq!(link.access(side, (0x008, 4, None), [&a, &b]).0, 3, "a console");
    }
    // The console's driver negotiates VERSION_1 only.
    for (side, _) in [(0usize, 0), (1, 0)] {
        let mut w = |off: u64, v: u64| {
            link.access(side, (off, 4, Some(v)), [&a, &b]);
        };
        w(0x070, 3);
        w(0x024, 1);
        w(0x020, 1);
        w(0x070, 3 | u64::from(FEATURES_OK));
        for q in [RX, TX] {
            let (d, av, u) = rings(q);
            w(0x030, q as u64);
            w(0x038, u64::from(N));
            w(0x080, d);
            w(0x090, av);
            w(0x0a0, u);
            w(0x044, 1);
        }
        w(0x070, 3 | u64::from(FEATURES_OK | DRIVER_OK));
    }
    // Two small receive buffers on B; A writes 10 bytes: 8 and 2.
    for i in 0..2u16 {
        desc(&b, RX, i, (buf(RX, i), 8), true, None);
        offer(&b, RX, i);
    }
    a.put(buf(TX, 0), b"0123456789");
    desc(&a, TX, 0, (buf(TX, 0), 10), false, None);
    offer(&a, TX, 0);
    let m = notify_tx(&mut link, 0, [&a, &b]);
    assert_eq!((m.frames, m.dropped), (1, 0));
    assert_eq!((used(&b, RX, 0).1, used(&b, RX, 1).1), (8, 2));
    assert_eq!(b.get(buf(RX, 0), 8), b"01234567");
    assert_eq!(b.get(buf(RX, 1), 2), b"89");
    // No buffer left: the next bytes are dropped, A's buffer comes back all the same.
    a.put(buf(TX, 1), b"lost");
    desc(&a, TX, 1, (buf(TX, 1), 4), false, None);
    offer(&a, TX, 1);
    assert_eq!(notify_tx(&mut link, 0, [&a, &b]).dropped, 1);
    assert_eq!(a.u16(rings(TX).2 + 2), 2);
}
