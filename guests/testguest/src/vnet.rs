//! `hl.vnet-hostile`: a driver of the network link's virtio-net device (guest address
//! 0x0200_0000) that first hands the device bad descriptors (a buffer outside its RAM, then
//! a chain that loops) — each must fail only its device (DEVICE_NEEDS_RESET) — then resets
//! it, sets it up properly and asks the peer for its MAC (an ARP request for 10.0.0.1 from
//! 10.0.0.9): the reply shows the link works again. Polls; uses no interrupt.

const DEV: u64 = 0x0200_0000;
const NEEDS_RESET: u32 = 0x40;
/// Queue size.
const N: u16 = 8;

fn rd(off: u64) -> u32 {
    // SAFETY: a register of this domain's virtio-mmio transport.
    unsafe { core::ptr::read_volatile((DEV + off) as *const u32) }
}

fn wr(off: u64, v: u32) {
    // SAFETY: as above.
    unsafe { core::ptr::write_volatile((DEV + off) as *mut u32, v) }
}

/// Scratch memory: the top 64 KiB of this domain's RAM.
struct Mem(u64);

impl Mem {
    fn put(&self, off: u64, data: &[u8]) {
        for (i, &b) in data.iter().enumerate() {
            // SAFETY: a byte of the scratch area, in this domain's own RAM.
            unsafe { core::ptr::write_volatile((self.0 + off + i as u64) as *mut u8, b) };
        }
    }
    fn get(&self, off: u64) -> u8 {
        // SAFETY: as above.
        unsafe { core::ptr::read_volatile((self.0 + off) as *const u8) }
    }
    fn u16(&self, off: u64) -> u16 {
        u16::from(self.get(off)) | u16::from(self.get(off + 1)) << 8
    }
    /// Queue q's rings: descriptors, available, used.
    fn rings(&self, q: u64) -> (u64, u64, u64) {
        let b = 0x1000 + 0x3000 * q;
        (b, b + 0x1000, b + 0x2000)
    }
    fn desc(&self, q: u64, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let mut d = [0u8; 16];
        d[..8].copy_from_slice(&addr.to_le_bytes());
        d[8..12].copy_from_slice(&len.to_le_bytes());
        d[12..14].copy_from_slice(&flags.to_le_bytes());
        d[14..].copy_from_slice(&next.to_le_bytes());
        self.put(self.rings(q).0 + 16 * u64::from(i), &d);
    }
    fn offer(&self, q: u64, head: u16) {
        let (_, a, _) = self.rings(q);
        let idx = self.u16(a + 2);
        self.put(a + 4 + 2 * u64::from(idx % N), &head.to_le_bytes());
        self.put(a + 2, &idx.wrapping_add(1).to_le_bytes());
    }
}

/// Resets the device and sets up both queues (empty rings); returns its status.
fn bring_up(m: &Mem) -> u32 {
    wr(0x070, 0);
    for off in (0x1000..0x7000).step_by(1) {
        m.put(off, &[0]);
    }
    wr(0x070, 3);
    wr(0x024, 1);
    wr(0x020, 1);
    wr(0x024, 0);
    wr(0x020, 1 << 5);
    wr(0x070, 3 | 8);
    for q in 0..2 {
        let (d, a, u) = m.rings(q);
        wr(0x030, q as u32);
        wr(0x038, u32::from(N));
        for (off, v) in [(0x080, m.0 + d), (0x090, m.0 + a), (0x0a0, m.0 + u)] {
            wr(off, v as u32);
            wr(off + 4, (v >> 32) as u32);
        }
        wr(0x044, 1);
    }
    wr(0x070, 3 | 8 | 4);
    rd(0x070)
}

pub fn hostile(name: &str, (base, mem): (u64, u64)) {
    if rd(0x000) != 0x7472_6976 || rd(0x008) != 1 {
        crate::println!("{name}: vnet: no virtio-net device at {DEV:#x}");
        return;
    }
    let m = Mem(base + mem - 0x1_0000);
    // SAFETY: bytes of the transport's configuration space (the MAC).
    let mac: [u8; 6] =
        core::array::from_fn(|i| unsafe { core::ptr::read_volatile((DEV + 0x100 + i as u64) as *const u8) });
    crate::println!(
        "{name}: vnet: virtio-net found, MAC {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        mac[0],
        mac[1],
        mac[2],
        mac[3],
        mac[4],
        mac[5]
    );
    // Bad descriptors, each on a freshly set-up device.
    for (what, chain) in [("a buffer outside its RAM", 0u8), ("a chain that loops", 1)] {
        bring_up(&m);
        if chain == 0 {
            m.desc(1, 0, 0x1000, 64, 0, 0);
        } else {
            m.desc(1, 0, m.0 + 0x8000, 64, 1, 1);
            m.desc(1, 1, m.0 + 0x8000, 64, 1, 0);
        }
        m.offer(1, 0);
        wr(0x050, 1);
        let st = rd(0x070);
        crate::println!(
            "{name}: vnet: {what}: device status {st:#x}{}",
            if st & NEEDS_RESET != 0 { ": needs reset" } else { ": NOT FAILED" }
        );
        wr(0x064, rd(0x060));
    }
    // Properly now: 4 receive buffers, then an ARP request for the peer.
    let st = bring_up(&m);
    for i in 0..4u16 {
        m.desc(0, i, m.0 + 0x8000 + 0x800 * u64::from(i), 0x800, 2, 0);
        m.offer(0, i);
    }
    wr(0x050, 0);
    let mut f = [0u8; 12 + 42];
    let e = &mut f[12..];
    e[..6].fill(0xff);
    e[6..12].copy_from_slice(&mac);
    e[12..14].copy_from_slice(&[0x08, 0x06]);
    e[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    e[22..28].copy_from_slice(&mac);
    e[28..32].copy_from_slice(&[10, 0, 0, 9]);
    e[38..42].copy_from_slice(&[10, 0, 0, 1]);
    m.put(0xc000, &f);
    crate::println!("{name}: vnet: reset, status {st:#x}; asking 10.0.0.1 for its MAC");
    // Linux may still be booting: the request goes again every 2 s, for up to 90 s.
    let (_, _, used) = m.rings(0);
    let (_, _, tx_used) = m.rings(1);
    let hz = crate::frequency();
    let end = crate::counter() + 90 * hz;
    let mut seen = 0u16;
    let mut sent = 0u16;
    let mut next_send = crate::counter();
    while crate::counter() < end {
        if crate::counter() >= next_send && m.u16(tx_used + 2) == sent {
            m.desc(1, 0, m.0 + 0xc000, f.len() as u32, 0, 0);
            m.offer(1, 0);
            wr(0x050, 1);
            sent = sent.wrapping_add(1);
            next_send = crate::counter() + 2 * hz;
        }
        if m.u16(used + 2) == seen {
            core::hint::spin_loop();
            continue;
        }
        let id = m.u16(used + 4 + 8 * u64::from(seen % N));
        seen = seen.wrapping_add(1);
        let at = 0x8000 + 0x800 * u64::from(id) + 12;
        let ty = [m.get(at + 12), m.get(at + 13)];
        let oper = m.get(at + 21);
        let spa: [u8; 4] = core::array::from_fn(|i| m.get(at + 28 + i as u64));
        // The buffer goes back to the device.
        m.offer(0, id);
        wr(0x050, 0);
        if ty == [0x08, 0x06] && oper == 2 && spa == [10, 0, 0, 1] {
            let sha: [u8; 6] = core::array::from_fn(|i| m.get(at + 22 + i as u64));
            crate::println!(
                "{name}: vnet: ARP reply from 10.0.0.1: {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x} ({sent} request(s))",
                sha[0],
                sha[1],
                sha[2],
                sha[3],
                sha[4],
                sha[5]
            );
            return;
        }
    }
    crate::println!("{name}: vnet: no ARP reply from 10.0.0.1 in 90 s ({sent} request(s))");
}
