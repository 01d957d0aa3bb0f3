//! The physical frame allocator: free RAM in 4 KiB frames, handed out in power-of-two
//! runs aligned to their size (so a 2 MiB request can be mapped as one block), over
//! `buddy_system_allocator`'s frame allocator.

use buddy_system_allocator::FrameAllocator;

use crate::memmap::{PAGE_SIZE, Range};

/// Free RAM, by frame.
pub struct Frames {
    inner: FrameAllocator<32>,
    total: u64,
    free: u64,
}

impl Default for Frames {
    fn default() -> Self {
        Self::new()
    }
}

impl Frames {
    pub const fn new() -> Self {
        Frames { inner: FrameAllocator::new(), total: 0, free: 0 }
    }

    /// Adds a range of free RAM (shrunk to whole frames).
    pub fn add(&mut self, r: Range) {
        let r = r.page_inner();
        if r.is_empty() {
            return;
        }
        self.inner.add_frame((r.start / PAGE_SIZE) as usize, (r.end / PAGE_SIZE) as usize);
        self.total += r.size();
        self.free += r.size();
    }

    /// `bytes` of physically contiguous memory (rounded up to a power of two of frames),
    /// aligned to that size. Returns the physical address.
    pub fn alloc(&mut self, bytes: u64) -> Option<u64> {
        let frames = Self::frames_for(bytes);
        let first = self.inner.alloc(frames)?;
        self.free -= frames as u64 * PAGE_SIZE;
        Some(first as u64 * PAGE_SIZE)
    }

    /// Returns memory from [`Frames::alloc`] with the same `bytes`.
    pub fn dealloc(&mut self, pa: u64, bytes: u64) {
        let frames = Self::frames_for(bytes);
        self.inner.dealloc((pa / PAGE_SIZE) as usize, frames);
        self.free += frames as u64 * PAGE_SIZE;
    }

    fn frames_for(bytes: u64) -> usize {
        (bytes.div_ceil(PAGE_SIZE).max(1) as usize).next_power_of_two()
    }

    /// Bytes handed to the allocator.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Bytes not allocated.
    pub fn free(&self) -> u64 {
        self.free
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocations_are_aligned_to_their_size_and_counted() {
        let mut f = Frames::new();
        f.add(Range { start: 0x4000_1000, end: 0x4100_0000 });
        assert_eq!(f.total(), 0x4100_0000 - 0x4000_1000);
        let a = f.alloc(2 << 20).unwrap();
        assert_eq!(a % (2 << 20), 0);
        let b = f.alloc(5000).unwrap(); // two frames
        assert_eq!(b % 0x2000, 0);
        assert_eq!(f.free(), f.total() - (2 << 20) - 0x2000);
        f.dealloc(a, 2 << 20);
        f.dealloc(b, 5000);
        assert_eq!(f.free(), f.total());
    }

    #[test]
    fn exhaustion_returns_none() {
        let mut f = Frames::new();
        f.add(Range { start: 0x1000, end: 0x5000 });
        assert!(f.alloc(0x8000).is_none());
        assert!(f.alloc(0x4000).is_none()); // 4 frames exist but not 4-aligned as a run
        assert!(f.alloc(0x1000).is_some());
    }
}
