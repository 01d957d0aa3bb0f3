//! Free RAM handed out as [`HostMem`]: the frame allocator behind a type whose one unsafe
//! constructor carries the obligation that what it holds is RAM the hypervisor owns; and
//! stage-2 tables staged in hypervisor memory while a domain is prepared, written to their
//! frames only when it is committed.

use alloc::boxed::Box;
use alloc::vec::Vec;

use super::machine::{HostMem, Machine};
use crate::frames::Frames;
use crate::memmap::Range;
use crate::pgtable::{ENTRIES, Table, TableStore};

/// Free RAM.
pub struct Pool {
    frames: Frames,
}

impl Pool {
    /// # Safety
    /// Every range `frames` holds is RAM the hypervisor owns, identity mapped read-write at
    /// EL2, and used for nothing else (not the image, its heap, stacks or tables, not a
    /// reserved range, not a boot module still in use).
    #[allow(unsafe_code)]
    pub unsafe fn new(frames: Frames) -> Pool {
        Pool { frames }
    }

    /// `bytes` of contiguous memory (rounded up to a power of two of frames), aligned to
    /// that size; zeroed or not as the allocator finds it.
    pub fn alloc(&mut self, bytes: u64) -> Option<HostMem> {
        let pa = self.frames.alloc(bytes)?;
        // SAFETY: the frames come from the allocator this pool owns, which holds only RAM
        // the hypervisor owns (`Pool::new`'s obligation), and were just handed out.
        #[allow(unsafe_code)]
        Some(unsafe { HostMem::new(pa, bytes) })
    }

    /// Exactly `r`, if all of it is free (static memory of a domain created at run time):
    /// the power-of-two runs it was taken in, each given back with [`Pool::free`].
    pub fn take(&mut self, r: Range) -> Option<Vec<HostMem>> {
        let blocks = self.frames.take(r)?;
        // SAFETY: as in `alloc`: frames of this pool's allocator, just taken from it.
        #[allow(unsafe_code)]
        Some(blocks.into_iter().map(|b| unsafe { HostMem::new(b.start, b.size()) }).collect())
    }

    /// Gives back memory from [`Pool::alloc`].
    pub fn free(&mut self, m: HostMem) {
        self.frames.dealloc(m.start(), m.len());
    }

    /// Adds memory the hypervisor owns and no longer uses (a boot module after launch):
    /// the whole pages inside it.
    pub fn give(&mut self, m: HostMem) {
        self.frames.add(Range { start: m.start(), end: m.end() });
    }

    /// Bytes free.
    pub fn free_bytes(&self) -> u64 {
        self.frames.free()
    }
}

/// Stage-2 tables of a domain being prepared: each a frame from the pool, its contents in
/// hypervisor memory until [`Staged::commit`] writes them out.
pub struct Staged<'a> {
    pool: &'a mut Pool,
    pages: Vec<(HostMem, Box<Table>)>,
}

impl<'a> Staged<'a> {
    pub fn new(pool: &'a mut Pool) -> Self {
        Staged { pool, pages: Vec::new() }
    }

    /// The frame of the table at `pa`.
    pub fn page(&self, pa: u64) -> Option<HostMem> {
        self.pages.iter().find(|p| p.0.start() == pa).map(|p| p.0)
    }

    /// The staged tables, taken out (the pool is free again for other allocations); write
    /// them with [`Staged::write`].
    pub fn take(self) -> Vec<(HostMem, Box<Table>)> {
        self.pages
    }

    /// Writes staged tables to their frames; returns the frames (the domain's table pages).
    pub fn write(m: &dyn Machine, pages: Vec<(HostMem, Box<Table>)>) -> Vec<HostMem> {
        let mut bytes = alloc::vec![0u8; ENTRIES * 8];
        pages
            .into_iter()
            .map(|(mem, t)| {
                for (b, e) in bytes.chunks_exact_mut(8).zip(t.iter()) {
                    b.copy_from_slice(&e.to_le_bytes());
                }
                m.write(mem, &bytes);
                mem
            })
            .collect()
    }

    /// Gives every frame back (a domain that failed to build).
    pub fn release(self) {
        for (mem, _) in self.pages {
            self.pool.free(mem);
        }
    }
}

impl TableStore for Staged<'_> {
    fn alloc_table(&mut self) -> Option<u64> {
        let mem = self.pool.alloc(4096)?;
        self.pages.push((mem, Box::new([0; ENTRIES])));
        Some(mem.start())
    }

    fn table(&mut self, pa: u64) -> Option<&mut Table> {
        self.pages.iter_mut().find(|p| p.0.start() == pa).map(|p| &mut *p.1)
    }
}
