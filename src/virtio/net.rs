//! A point-to-point link: two virtio devices, one per domain — network cards (virtio 1.x,
//! section 5.1) or consoles (section 5.3, one port) — and the hypervisor moving what one
//! side transmits into the other side's receive queue, copying between the two guests' RAM
//! itself. Neither guest maps the other's memory. A network frame with nowhere to go (the
//! peer is not up, or has no receive buffer that fits) is dropped and counted; console
//! bytes fill as many receive buffers as they need, and what finds none is dropped. A side
//! whose driver breaks the queue rules fails alone (DEVICE_NEEDS_RESET) until its driver
//! resets it.

use super::mmio::{Effect, INT_USED, Transport};
use super::queue::{self, GuestMem, QueueError};

/// virtio device ids: a network card, a console.
pub const DEVICE_NET: u32 = 1;
pub const DEVICE_CONSOLE: u32 = 3;

/// What a link's devices are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Net,
    Console,
}

impl Kind {
    fn device_id(self) -> u32 {
        match self {
            Kind::Net => DEVICE_NET,
            Kind::Console => DEVICE_CONSOLE,
        }
    }

    fn features(self) -> u64 {
        match self {
            Kind::Net => F_MAC,
            Kind::Console => 0,
        }
    }
}
/// VIRTIO_NET_F_MAC: the configuration space carries the MAC address.
pub const F_MAC: u64 = 1 << 5;
/// Queue 0 receives, queue 1 transmits.
pub const RX: usize = 0;
pub const TX: usize = 1;
/// The header before each frame (virtio 1.x: with `num_buffers`).
pub const HDR: usize = 12;
/// The most bytes one frame may carry (header, Ethernet header, 64 KiB payload).
pub const MAX_FRAME: u64 = (HDR + 14 + 65535) as u64;

/// One side: its transport, MAC (a network card's), and what it sent and lost.
#[derive(Debug, Clone)]
pub struct Port {
    pub kind: Kind,
    pub t: Transport,
    pub mac: [u8; 6],
    pub sent: u64,
    pub dropped: u64,
}

impl Port {
    pub fn new(kind: Kind, mac: [u8; 6]) -> Port {
        Port { kind, t: Transport::new(kind.device_id(), kind.features()), mac, sent: 0, dropped: 0 }
    }

    /// Its configuration space: a network card's MAC; a console's size and port count
    /// (zero: those features are not offered).
    fn config(&self) -> &[u8] {
        match self.kind {
            Kind::Net => &self.mac,
            Kind::Console => &[0; 8],
        }
    }
}

/// What moving frames did: per side, whether its interrupt line must be re-evaluated, and
/// a queue error that failed it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Moved {
    pub frames: u32,
    pub dropped: u32,
    pub interrupt: [bool; 2],
    pub failed: [Option<QueueError>; 2],
}

/// The link between two ports.
#[derive(Debug, Clone)]
pub struct Link {
    pub kind: Kind,
    pub ports: [Port; 2],
}

impl Link {
    pub fn new(kind: Kind, macs: [[u8; 6]; 2]) -> Link {
        Link { kind, ports: [Port::new(kind, macs[0]), Port::new(kind, macs[1])] }
    }

    /// A driver's access to side `side`'s registers; `mem` are the two sides' memories.
    /// Returns what a read reads, and what moving frames (on a transmit notify) did.
    pub fn access(
        &mut self,
        side: usize,
        (offset, size, write): (u64, u8, Option<u64>),
        mem: [&dyn GuestMem; 2],
    ) -> (u64, Moved) {
        let p = &mut self.ports[side];
        let Some(v) = write else {
            return (p.t.read(offset, size, p.config()), Moved::default());
        };
        let mut moved = Moved::default();
        match p.t.write(offset, size, v) {
            Effect::None => {}
            Effect::Interrupt => moved.interrupt[side] = true,
            Effect::Notify(q) if usize::from(q) == TX => moved = self.transmit(side, mem),
            // Receive buffers were added: frames are not held back, nothing to do.
            Effect::Notify(_) => {}
        }
        (0, moved)
    }

    /// Moves every frame side `from` made available into the other side's receive queue.
    pub fn transmit(&mut self, from: usize, mem: [&dyn GuestMem; 2]) -> Moved {
        let to = 1 - from;
        let mut moved = Moved::default();
        if !self.ports[from].t.live() {
            return moved;
        }
        // At most a queue's worth per notify: a driver that keeps adding frames from another
        // vCPU meanwhile cannot hold this one at EL2; the rest waits for its next notify.
        let budget = self.ports[from].t.queues[TX].num;
        for _ in 0..budget {
            let popped = self.ports[from].t.queues[TX].pop(mem[from], false, MAX_FRAME);
            let chain = match popped {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(e) => {
                    self.fail(from, e, &mut moved);
                    break;
                }
            };
            let frame = queue::gather(mem[from], &chain);
            if let Err(e) = self.ports[from].t.queues[TX].push(mem[from], chain.head, 0) {
                self.fail(from, e, &mut moved);
                break;
            }
            moved.interrupt[from] = true;
            let header = if self.kind == Kind::Net { HDR } else { 1 };
            let mut frame = match frame {
                Ok(f) if f.len() >= header => f,
                Ok(_) => {
                    // Shorter than its header: not a frame.
                    self.ports[from].dropped += 1;
                    moved.dropped += 1;
                    continue;
                }
                Err(e) => {
                    self.fail(from, e, &mut moved);
                    break;
                }
            };
            let delivered = if self.kind == Kind::Net {
                // One receive buffer per frame: num_buffers = 1.
                frame[10..12].copy_from_slice(&1u16.to_le_bytes());
                self.deliver(to, &frame, mem[to], &mut moved)
            } else {
                self.deliver_bytes(to, &frame, mem[to], &mut moved)
            };
            if delivered {
                self.ports[from].sent += 1;
                moved.frames += 1;
            } else {
                self.ports[from].dropped += 1;
                moved.dropped += 1;
            }
        }
        for s in [from, to] {
            if moved.interrupt[s] {
                self.ports[s].t.isr |= INT_USED;
            }
        }
        moved
    }

    /// Side `to`'s next receive buffer, if its driver is up and offered one (a queue error
    /// fails that side).
    fn next_rx(&mut self, to: usize, mem: &dyn GuestMem, moved: &mut Moved) -> Option<queue::Chain> {
        if !self.ports[to].t.live() {
            return None;
        }
        match self.ports[to].t.queues[RX].pop(mem, true, u64::from(u32::MAX)) {
            Ok(c) => c,
            Err(e) => {
                self.fail(to, e, moved);
                None
            }
        }
    }

    /// Writes `bytes` (when they fit) into receive buffer `chain` of side `to` and gives it
    /// back with the bytes written; the bytes written, or `None` on a queue error.
    fn fill(
        &mut self,
        to: usize,
        (chain, bytes): (&queue::Chain, &[u8]),
        mem: &dyn GuestMem,
        moved: &mut Moved,
    ) -> Option<u32> {
        let r = queue::scatter(mem, chain, bytes).and_then(|w| {
            let n = w.unwrap_or(0);
            self.ports[to].t.queues[RX].push(mem, chain.head, n).map(|()| n)
        });
        match r {
            Ok(n) => {
                moved.interrupt[to] = true;
                Some(n)
            }
            Err(e) => {
                self.fail(to, e, moved);
                None
            }
        }
    }

    /// Puts one frame into side `to`'s next receive buffer; false when dropped (a buffer
    /// too small for it goes back empty).
    fn deliver(&mut self, to: usize, frame: &[u8], mem: &dyn GuestMem, moved: &mut Moved) -> bool {
        let Some(chain) = self.next_rx(to, mem, moved) else { return false };
        let fits = frame.len() as u64 <= chain.total;
        self.fill(to, (&chain, frame), mem, moved).is_some() && fits
    }

    /// Console bytes into as many of side `to`'s receive buffers as they fill; false when
    /// some found none (they are dropped).
    fn deliver_bytes(&mut self, to: usize, mut bytes: &[u8], mem: &dyn GuestMem, moved: &mut Moved) -> bool {
        while !bytes.is_empty() {
            let Some(chain) = self.next_rx(to, mem, moved) else { return false };
            let n = (chain.total as usize).min(bytes.len());
            // A receive buffer of no bytes: nothing can be delivered into it.
            if self.fill(to, (&chain, &bytes[..n]), mem, moved).is_none() || n == 0 {
                return false;
            }
            bytes = &bytes[n..];
        }
        true
    }

    fn fail(&mut self, side: usize, e: QueueError, moved: &mut Moved) {
        self.ports[side].t.fail();
        moved.failed[side] = Some(e);
        moved.interrupt[side] = true;
    }
}
