//! A point-to-point network link: two virtio-net devices (virtio 1.x, section 5.1), one per
//! domain, and the hypervisor moving each frame from one side's transmit queue into the
//! other side's receive queue, copying between the two guests' RAM itself. Neither guest
//! maps the other's memory. A frame with nowhere to go (the peer is not up, or has no
//! receive buffer that fits) is dropped and counted; a side whose driver breaks the queue
//! rules fails alone (DEVICE_NEEDS_RESET) until its driver resets it.

use super::mmio::{Effect, INT_USED, Transport};
use super::queue::{self, GuestMem, QueueError};

/// virtio device id of a network card.
pub const DEVICE_NET: u32 = 1;
/// VIRTIO_NET_F_MAC: the configuration space carries the MAC address.
pub const F_MAC: u64 = 1 << 5;
/// Queue 0 receives, queue 1 transmits.
pub const RX: usize = 0;
pub const TX: usize = 1;
/// The header before each frame (virtio 1.x: with `num_buffers`).
pub const HDR: usize = 12;
/// The most bytes one frame may carry (header, Ethernet header, 64 KiB payload).
pub const MAX_FRAME: u64 = (HDR + 14 + 65535) as u64;

/// One side: its transport, MAC, and what it sent and lost.
#[derive(Debug, Clone)]
pub struct Port {
    pub t: Transport,
    pub mac: [u8; 6],
    pub sent: u64,
    pub dropped: u64,
}

impl Port {
    pub fn new(mac: [u8; 6]) -> Port {
        Port { t: Transport::new(DEVICE_NET, F_MAC), mac, sent: 0, dropped: 0 }
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
    pub ports: [Port; 2],
}

impl Link {
    pub fn new(macs: [[u8; 6]; 2]) -> Link {
        Link { ports: [Port::new(macs[0]), Port::new(macs[1])] }
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
            return (p.t.read(offset, size, &p.mac), Moved::default());
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
            let mut frame = match frame {
                Ok(f) if f.len() >= HDR => f,
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
            // One receive buffer per frame: num_buffers = 1.
            frame[10..12].copy_from_slice(&1u16.to_le_bytes());
            if self.deliver(to, &frame, mem[to], &mut moved) {
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

    /// Puts one frame into side `to`'s next receive buffer; false when dropped.
    fn deliver(&mut self, to: usize, frame: &[u8], mem: &dyn GuestMem, moved: &mut Moved) -> bool {
        if !self.ports[to].t.live() {
            return false;
        }
        let popped = self.ports[to].t.queues[RX].pop(mem, true, u64::from(u32::MAX));
        let chain = match popped {
            Ok(Some(c)) => c,
            Ok(None) => return false,
            Err(e) => {
                self.fail(to, e, moved);
                return false;
            }
        };
        let written = match queue::scatter(mem, &chain, frame) {
            Ok(w) => w,
            Err(e) => {
                self.fail(to, e, moved);
                return false;
            }
        };
        // A buffer too small for the frame goes back empty.
        if let Err(e) = self.ports[to].t.queues[RX].push(mem, chain.head, written.unwrap_or(0)) {
            self.fail(to, e, moved);
            return false;
        }
        moved.interrupt[to] = true;
        written.is_some()
    }

    fn fail(&mut self, side: usize, e: QueueError, moved: &mut Moved) {
        self.ports[side].t.fail();
        moved.failed[side] = Some(e);
        moved.interrupt[side] = true;
    }
}
