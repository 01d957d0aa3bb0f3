//! Split virtqueues (virtio 1.x, section 2.7) as the device side sees them, over a guest's
//! memory it reaches only through [`GuestMem`]: every index, address, length and chain a
//! driver hands over is checked, and a driver that breaks the rules gets a [`QueueError`]
//! (its device then fails), never a copy outside its memory or a loop.

use alloc::vec::Vec;
use core::fmt;

/// A guest's memory as the device reaches it: `false` when any byte is not the guest's RAM.
pub trait GuestMem {
    fn read(&self, ipa: u64, buf: &mut [u8]) -> bool;
    fn write(&self, ipa: u64, data: &[u8]) -> bool;
}

/// The largest queue the device offers.
pub const MAX_QUEUE: u16 = 256;

const DESC_F_NEXT: u16 = 1;
const DESC_F_WRITE: u16 = 2;
const DESC_F_INDIRECT: u16 = 4;

/// How a driver broke the queue rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueError {
    /// The queue is not set up (not ready, or a size that is not a power of two up to
    /// [`MAX_QUEUE`], or rings misaligned).
    NotReady,
    /// A ring lies outside the guest's RAM.
    RingOutside(u64),
    /// The available index ran more than a queue's worth ahead of the device.
    AvailIndex { avail: u16, seen: u16 },
    /// A descriptor index past the queue's end.
    DescIndex(u16),
    /// A chain longer than the queue: a loop.
    Loop,
    /// A chain carrying more bytes than the device takes.
    TooLong(u64),
    /// A buffer the device should read is marked write-only, or the reverse.
    Direction,
    /// An indirect descriptor (not offered).
    Indirect,
    /// A buffer outside the guest's RAM (or wrapping around the address space).
    BufferOutside(u64),
}

impl fmt::Display for QueueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueueError::NotReady => f.write_str("queue used while not set up"),
            QueueError::RingOutside(a) => write!(f, "ring at {a:#x} outside its RAM"),
            QueueError::AvailIndex { avail, seen } => {
                write!(f, "available index {avail} more than a queue ahead of {seen}")
            }
            QueueError::DescIndex(i) => write!(f, "descriptor index {i} past the queue"),
            QueueError::Loop => f.write_str("descriptor chain loops"),
            QueueError::TooLong(n) => write!(f, "descriptor chain of {n} bytes, more than a frame"),
            QueueError::Direction => f.write_str("buffer direction wrong for the queue"),
            QueueError::Indirect => f.write_str("indirect descriptor (not offered)"),
            QueueError::BufferOutside(a) => write!(f, "buffer at {a:#x} outside its RAM"),
        }
    }
}

/// One queue's configuration, as the driver wrote it, and the device's position in it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Queue {
    pub num: u16,
    pub ready: bool,
    pub desc: u64,
    pub avail: u64,
    pub used: u64,
    /// The next available entry the device will take.
    pub next_avail: u16,
    /// The used index the device last published.
    pub used_idx: u16,
}

/// A descriptor chain taken from the available ring: its head, and its buffers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub head: u16,
    pub bufs: Vec<(u64, u32)>,
    pub total: u64,
}

fn rd16(m: &dyn GuestMem, at: u64) -> Result<u16, QueueError> {
    let mut b = [0u8; 2];
    if m.read(at, &mut b) { Ok(u16::from_le_bytes(b)) } else { Err(QueueError::RingOutside(at)) }
}

impl Queue {
    /// Whether its configuration can be used: ready, a power-of-two size up to the
    /// maximum, rings aligned as the specification requires.
    pub fn usable(&self) -> bool {
        self.ready
            && self.num.is_power_of_two()
            && self.num <= MAX_QUEUE
            && self.desc.is_multiple_of(16)
            && self.avail.is_multiple_of(2)
            && self.used.is_multiple_of(4)
    }

    /// The next chain the driver made available, if any; its buffers must all be
    /// device-writable (`writable`) or all device-readable, and carry at most `max` bytes.
    pub fn pop(&mut self, m: &dyn GuestMem, writable: bool, max: u64) -> Result<Option<Chain>, QueueError> {
        if !self.usable() {
            return Err(QueueError::NotReady);
        }
        let avail = rd16(m, self.avail + 2)?;
        let ahead = avail.wrapping_sub(self.next_avail);
        if ahead == 0 {
            return Ok(None);
        }
        if ahead > self.num {
            return Err(QueueError::AvailIndex { avail, seen: self.next_avail });
        }
        let slot = u64::from(self.next_avail % self.num);
        let head = rd16(m, self.avail + 4 + 2 * slot)?;
        let mut chain = Chain { head, bufs: Vec::new(), total: 0 };
        let mut i = head;
        for _ in 0..self.num {
            if i >= self.num {
                return Err(QueueError::DescIndex(i));
            }
            let at = self.desc + 16 * u64::from(i);
            let mut d = [0u8; 16];
            if !m.read(at, &mut d) {
                return Err(QueueError::RingOutside(at));
            }
            let addr = u64::from_le_bytes(d[0..8].try_into().unwrap_or_default());
            let len = u32::from_le_bytes(d[8..12].try_into().unwrap_or_default());
            let flags = u16::from_le_bytes([d[12], d[13]]);
            let next = u16::from_le_bytes([d[14], d[15]]);
            if flags & DESC_F_INDIRECT != 0 {
                return Err(QueueError::Indirect);
            }
            if (flags & DESC_F_WRITE != 0) != writable {
                return Err(QueueError::Direction);
            }
            if addr.checked_add(u64::from(len)).is_none() {
                return Err(QueueError::BufferOutside(addr));
            }
            chain.total += u64::from(len);
            if chain.total > max {
                return Err(QueueError::TooLong(chain.total));
            }
            chain.bufs.push((addr, len));
            if flags & DESC_F_NEXT == 0 {
                self.next_avail = self.next_avail.wrapping_add(1);
                return Ok(Some(chain));
            }
            i = next;
        }
        Err(QueueError::Loop)
    }

    /// Gives chain `head` back to the driver with `len` bytes written into it.
    pub fn push(&mut self, m: &dyn GuestMem, head: u16, len: u32) -> Result<(), QueueError> {
        if !self.usable() {
            return Err(QueueError::NotReady);
        }
        let slot = u64::from(self.used_idx % self.num);
        let mut e = [0u8; 8];
        e[..4].copy_from_slice(&u32::from(head).to_le_bytes());
        e[4..].copy_from_slice(&len.to_le_bytes());
        let at = self.used + 4 + 8 * slot;
        if !m.write(at, &e) {
            return Err(QueueError::RingOutside(at));
        }
        self.used_idx = self.used_idx.wrapping_add(1);
        // The entry before the index that publishes it.
        if !m.write(self.used + 2, &self.used_idx.to_le_bytes()) {
            return Err(QueueError::RingOutside(self.used + 2));
        }
        Ok(())
    }
}

/// Reads a chain's bytes (device-readable buffers) into one buffer.
pub fn gather(m: &dyn GuestMem, c: &Chain) -> Result<Vec<u8>, QueueError> {
    let mut out = alloc::vec![0u8; c.total as usize];
    let mut at = 0usize;
    for &(addr, len) in &c.bufs {
        let n = len as usize;
        if !m.read(addr, &mut out[at..at + n]) {
            return Err(QueueError::BufferOutside(addr));
        }
        at += n;
    }
    Ok(out)
}

/// Writes `data` across a chain's (device-writable) buffers; `None` when it does not fit.
pub fn scatter(m: &dyn GuestMem, c: &Chain, data: &[u8]) -> Result<Option<u32>, QueueError> {
    if (data.len() as u64) > c.total {
        return Ok(None);
    }
    let mut at = 0usize;
    for &(addr, len) in &c.bufs {
        if at == data.len() {
            break;
        }
        let n = (len as usize).min(data.len() - at);
        if !m.write(addr, &data[at..at + n]) {
            return Err(QueueError::BufferOutside(addr));
        }
        at += n;
    }
    Ok(Some(data.len() as u32))
}
