//! The store's side and a client's side of a store connection (docs/store-rings.md).

use core::arch::asm;

use hyperlaunch_abi::*;

use crate::{
    counter, fdt, frequency, hvc, irq_enable, irq_pending, println, rd32, wait_pending, wait_taken, wr32,
};

/// Ring page layout (docs/store-rings.md): requests 0..1024, responses 1024..2048, then
/// the free-running u32 indices req_cons, req_prod, rsp_cons, rsp_prod.
const REQ: u64 = 0;
const RSP: u64 = 1024;
const REQ_CONS: u64 = 2048;
const REQ_PROD: u64 = 2052;
const RSP_CONS: u64 = 2056;
const RSP_PROD: u64 = 2060;

/// Appends `msg` to the queue at `ring + data` whose producer index is at `ring + prod`.
fn ring_put(ring: u64, data: u64, prod: u64, msg: &[u8]) {
    let p = rd32(ring + prod);
    for (i, &b) in msg.iter().enumerate() {
        let at = ring + data + u64::from((p + i as u32) & 1023);
        // SAFETY: a byte of the ring page's queue.
        unsafe { core::ptr::write_volatile(at as *mut u8, b) };
    }
    // SAFETY: a barrier: the bytes are visible before the index that publishes them.
    unsafe { asm!("dmb ish", options(nostack)) };
    wr32(ring + prod, p + msg.len() as u32);
}

/// Takes what the queue holds (waiting up to `ms` for something), into `buf`.
fn ring_get(ring: u64, data: u64, cons: u64, prod: u64, ms: u64, buf: &mut [u8]) -> usize {
    let (start, freq) = (counter(), frequency());
    while rd32(ring + prod) == rd32(ring + cons) {
        if counter() - start > ms * freq / 1000 {
            return 0;
        }
        core::hint::spin_loop();
    }
    let (c, p) = (rd32(ring + cons), rd32(ring + prod));
    let n = (p.wrapping_sub(c) as usize).min(buf.len());
    for (i, b) in buf.iter_mut().enumerate().take(n) {
        let at = ring + data + u64::from((c + i as u32) & 1023);
        // SAFETY: a byte of the ring page's queue.
        *b = unsafe { core::ptr::read_volatile(at as *const u8) };
    }
    wr32(ring + cons, c + n as u32);
    n
}

pub fn client(name: &str, tree: &fdt::Fdt<'_>, take: bool) {
    let Some(st) = tree.find("/hypervisor/store") else {
        println!("store: no store connection");
        return;
    };
    let ring = st.property("ring").and_then(|p| p.u64()).unwrap_or(0);
    let peer = st.property("peer").and_then(|p| p.u32()).unwrap_or(0);
    println!("store: ring at {ring:#x}, store is DOM{peer}");
    let mut msg = [0u8; 64];
    let text = b"hello from ";
    msg[..text.len()].copy_from_slice(text);
    let n = name.len().min(msg.len() - text.len());
    msg[text.len()..text.len() + n].copy_from_slice(&name.as_bytes()[..n]);
    // The store rings only in answer: nothing can be pending yet.
    println!("store: doorbell interrupt pending before sending: {}", irq_pending(33));
    if take {
        irq_enable(33);
    }
    ring_put(ring, REQ, REQ_PROD, &msg[..text.len() + n]);
    println!("store: sent, doorbell -> {}", hvc(HL_STORE_NOTIFY, u64::from(peer), 0, 0));
    let mut buf = [0u8; 128];
    let n = ring_get(ring, RSP, RSP_CONS, RSP_PROD, 5000, &mut buf);
    println!("store: reply: {}", core::str::from_utf8(&buf[..n]).unwrap_or("?"));
    if take {
        match wait_taken(2000) {
            Some(id) => println!("store: doorbell interrupt taken: INTID {id}"),
            None => println!("store: doorbell interrupt not taken"),
        }
        println!("store: doorbell interrupt pending after it was taken: {}", irq_pending(33));
    } else {
        println!("store: doorbell interrupt pending: {}", wait_pending(33, 2000));
    }
    println!("store: ring the wrong domain -> {}", hvc(HL_STORE_NOTIFY, 0x7ff5, 0, 0));
}

pub fn server(tree: &fdt::Fdt<'_>) {
    let Some(srv) = tree.find("/hypervisor/store-server") else {
        println!("store-server: not the store");
        return;
    };
    // Before its clients are started nothing can be pending (the test checks that this line
    // comes before the launch starts them).
    for c in srv.children() {
        let peer = c.property("peer").and_then(|p| p.u32()).unwrap_or(0);
        let spi = c.property("interrupts").and_then(|p| p.cells()).and_then(|mut i| i.nth(1)).unwrap_or(0);
        println!("store-server: doorbell from DOM{peer} pending at start: {}", irq_pending(32 + spi));
    }
    for c in srv.children() {
        let ring = c.property("ring").and_then(|p| p.u64()).unwrap_or(0);
        let peer = c.property("peer").and_then(|p| p.u32()).unwrap_or(0);
        let spi = c.property("interrupts").and_then(|p| p.cells()).and_then(|mut i| i.nth(1)).unwrap_or(0);
        let mut buf = [0u8; 128];
        let n = ring_get(ring, REQ, REQ_CONS, REQ_PROD, 8000, &mut buf);
        let text = core::str::from_utf8(&buf[..n]).unwrap_or("?");
        println!("store-server: from DOM{peer} at {ring:#x}: {text}");
        println!("store-server: doorbell from DOM{peer} pending: {}", wait_pending(32 + spi, 2000));
        let mut reply = [0u8; 132];
        reply[..4].copy_from_slice(b"ack ");
        reply[4..4 + n].copy_from_slice(&buf[..n]);
        ring_put(ring, RSP, RSP_PROD, &reply[..4 + n]);
        println!("store-server: replied, doorbell -> {}", hvc(HL_STORE_NOTIFY, u64::from(peer), 0, 0));
    }
}

/// Where the store sees slot k's ring page: `SERVER_RINGS + k * 4096`.
const SERVER_RINGS: u64 = 0x2400_0000;
/// The store's "clients changed" interrupt (SPI 1) and slot 0's doorbell (SPI 2).
const CHANGED_INTID: u32 = 33;
const DOORBELL_INTID: u32 = 34;

/// HL_STORE_CLIENT: slot `k`'s client, `None` when the slot is free or the call fails.
fn slot_client(k: usize) -> Option<u16> {
    let (mut x0, x1): (u64, u64) = (u64::from(HL_STORE_CLIENT), k as u64);
    let out: u64;
    // SAFETY: an SMCCC call through HVC; x0/x1 out.
    unsafe {
        asm!("hvc #0", inout("x0") x0, inout("x1") x1 => out, out("x2") _, out("x3") _, options(nostack))
    };
    (x0 == 0 && out != STORE_SLOT_FREE).then_some(out as u16)
}

/// The store for good: each time it wakes (a doorbell, a client joining or leaving) it
/// looks at every slot, says who holds it when that changed, and answers what each
/// client's ring holds. Between, it waits in WFI with interrupts masked (a doorbell that
/// rings while it looks wakes the next WFI at once).
pub fn serve(tree: &fdt::Fdt<'_>) {
    let Some(srv) = tree.find("/hypervisor/store-server") else {
        println!("store-server: not the store");
        return;
    };
    let slots = srv.property("slots").and_then(|p| p.u32()).unwrap_or(0).min(30) as usize;
    println!("store-server: serving {slots} slot(s)");
    irq_enable(CHANGED_INTID);
    for k in 0..slots {
        irq_enable(DOORBELL_INTID + k as u32);
    }
    let mut known: [Option<u16>; 30] = [None; 30];
    loop {
        // SAFETY: masks IRQs at this vCPU (they stay pending and wake the WFI below).
        unsafe { asm!("msr daifset, #2", options(nostack)) };
        for (k, known) in known.iter_mut().enumerate().take(slots) {
            let id = slot_client(k);
            if id != *known {
                match id {
                    Some(id) => println!("store-server: slot {k}: DOM{id}"),
                    None => println!("store-server: slot {k}: free"),
                }
                *known = id;
            }
            let Some(id) = id else { continue };
            let ring = SERVER_RINGS + k as u64 * 4096;
            if rd32(ring + REQ_PROD) == rd32(ring + REQ_CONS) {
                continue;
            }
            let mut buf = [0u8; 128];
            let n = ring_get(ring, REQ, REQ_CONS, REQ_PROD, 0, &mut buf);
            println!(
                "store-server: from DOM{id} at {ring:#x}: {}",
                core::str::from_utf8(&buf[..n]).unwrap_or("?")
            );
            let mut reply = [0u8; 132];
            reply[..4].copy_from_slice(b"ack ");
            reply[4..4 + n].copy_from_slice(&buf[..n]);
            ring_put(ring, RSP, RSP_PROD, &reply[..4 + n]);
            let r = hvc(HL_STORE_NOTIFY, u64::from(id), 0, 0);
            println!("store-server: replied to DOM{id}, doorbell -> {r}");
        }
        // SAFETY: waits for an interrupt, then unmasks IRQs: the vector takes and ends it.
        unsafe { asm!("wfi", "msr daifclr, #2", "isb", options(nostack)) };
    }
}
