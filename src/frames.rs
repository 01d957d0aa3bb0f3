//! The physical frame allocator: free RAM in 4 KiB frames, handed out in power-of-two
//! runs aligned to their size (so a 2 MiB request can be mapped as one block), over
//! `buddy_system_allocator`'s frame allocator.

use alloc::vec::Vec;

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

    /// Takes exactly the frames of `r` (whole pages), if every one is free: as the runs
    /// [`Frames::blocks`] cuts it into, each given back with [`Frames::dealloc`]. Takes
    /// nothing when one is not free.
    pub fn take(&mut self, r: Range) -> Option<Vec<Range>> {
        let blocks = Self::blocks(r)?;
        for (i, b) in blocks.iter().enumerate() {
            let (start, count) = ((b.start / PAGE_SIZE) as usize, (b.size() / PAGE_SIZE) as usize);
            if self.inner.alloc_at(start, count).is_none() {
                for t in &blocks[..i] {
                    self.inner.dealloc((t.start / PAGE_SIZE) as usize, (t.size() / PAGE_SIZE) as usize);
                }
                return None;
            }
        }
        self.free -= r.size();
        Some(blocks)
    }

    /// `r` (page-aligned) cut into runs of a power of two of frames, each aligned to its
    /// size, largest first from the start: the runs a buddy allocator hands out.
    pub fn blocks(r: Range) -> Option<Vec<Range>> {
        if !r.start.is_multiple_of(PAGE_SIZE) || !r.end.is_multiple_of(PAGE_SIZE) || r.is_empty() {
            return None;
        }
        let mut out = Vec::new();
        let mut at = r.start;
        while at < r.end {
            let align = 1u64 << at.trailing_zeros().min(63);
            // The largest power of two that is aligned here and fits in what is left.
            let size = align.min(1u64 << (63 - (r.end - at).leading_zeros()));
            out.push(Range { start: at, end: at + size });
            at += size;
        }
        Some(out)
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
    fn a_given_range_is_taken_whole_or_not_at_all() {
        let mut f = Frames::new();
        f.add(Range { start: 0x4000_0000, end: 0x4100_0000 });
        // 0x4000_3000..0x4020_0000: runs of 1, 4, 8 ... frames, each aligned.
        let r = Range { start: 0x4000_3000, end: 0x4020_0000 };
        let blocks = Frames::blocks(r).unwrap();
        assert_eq!(blocks.first(), Some(&Range { start: 0x4000_3000, end: 0x4000_4000 }));
        assert!(blocks.iter().all(|b| b.size().is_power_of_two() && b.start % b.size() == 0));
        assert_eq!(blocks.iter().map(|b| b.size()).sum::<u64>(), r.size());
        let got = f.take(r).unwrap();
        assert_eq!(got, blocks);
        assert_eq!(f.free(), f.total() - r.size());
        assert!(f.take(Range { start: 0x401f_f000, end: 0x4020_1000 }).is_none(), "half of it is taken");
        assert_eq!(f.free(), f.total() - r.size(), "a refused take keeps nothing");
        // What is left around it is still allocatable, and the runs go back.
        assert!(f.take(Range { start: 0x4020_0000, end: 0x4020_1000 }).is_some());
        f.dealloc(0x4020_0000, 0x1000);
        for b in got {
            f.dealloc(b.start, b.size());
        }
        assert_eq!(f.free(), f.total());
        assert_eq!(f.alloc(0x100_0000), Some(0x4000_0000), "merged back whole");
        assert!(Frames::blocks(Range { start: 0x1000, end: 0x1800 }).is_none(), "not whole pages");
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
