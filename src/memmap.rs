//! Physical memory map: sets of address ranges, and the carving of free RAM out of the
//! host's memory minus everything that is already in use.

use core::fmt;

/// Smallest unit the hypervisor hands out.
pub const PAGE_SIZE: u64 = 4096;

/// A half-open physical address range `[start, end)`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Range {
    pub start: u64,
    pub end: u64,
}

impl fmt::Debug for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}..{:#x}", self.start, self.end)
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{:#x}, {:#x})", self.start, self.end)
    }
}

impl Range {
    /// The range of `size` bytes at `start`, or `None` if it wraps past the top of the
    /// address space.
    pub fn at(start: u64, size: u64) -> Option<Range> {
        start.checked_add(size).map(|end| Range { start, end })
    }

    pub fn size(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    pub fn overlaps(&self, o: &Range) -> bool {
        self.start < o.end && o.start < self.end
    }

    pub fn contains_range(&self, o: &Range) -> bool {
        self.start <= o.start && o.end <= self.end
    }

    pub fn contains(&self, addr: u64) -> bool {
        self.start <= addr && addr < self.end
    }

    /// Grown outwards to page boundaries (for things that must not be handed out).
    pub fn page_outer(&self) -> Range {
        Range {
            start: self.start & !(PAGE_SIZE - 1),
            end: self.end.saturating_add(PAGE_SIZE - 1) & !(PAGE_SIZE - 1),
        }
    }

    /// Shrunk inwards to page boundaries (for memory that may be handed out).
    pub fn page_inner(&self) -> Range {
        let start = self.start.saturating_add(PAGE_SIZE - 1) & !(PAGE_SIZE - 1);
        let end = self.end & !(PAGE_SIZE - 1);
        Range { start, end: end.max(start) }
    }
}

/// A set of disjoint, sorted ranges; adjacent or overlapping additions merge.
#[derive(Clone)]
pub struct RegionSet<const N: usize> {
    ranges: [Range; N],
    len: usize,
}

/// A region set ran out of slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegionSetFull;

impl fmt::Display for RegionSetFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "too many memory ranges")
    }
}

impl<const N: usize> Default for RegionSet<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> fmt::Debug for RegionSet<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<const N: usize> RegionSet<N> {
    pub const fn new() -> Self {
        RegionSet { ranges: [Range { start: 0, end: 0 }; N], len: 0 }
    }

    pub fn iter(&self) -> impl Iterator<Item = Range> + '_ {
        self.ranges[..self.len].iter().copied()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Total bytes covered.
    pub fn total(&self) -> u64 {
        self.iter().map(|r| r.size()).sum()
    }

    fn insert_at(&mut self, i: usize, r: Range) -> Result<(), RegionSetFull> {
        if self.len == N {
            return Err(RegionSetFull);
        }
        self.ranges.copy_within(i..self.len, i + 1);
        self.ranges[i] = r;
        self.len += 1;
        Ok(())
    }

    fn remove_at(&mut self, i: usize) {
        self.ranges.copy_within(i + 1..self.len, i);
        self.len -= 1;
    }

    /// Adds a range, merging it with any it touches.
    pub fn add(&mut self, r: Range) -> Result<(), RegionSetFull> {
        if r.is_empty() {
            return Ok(());
        }
        let mut merged = r;
        let mut i = 0;
        while i < self.len {
            let cur = self.ranges[i];
            if cur.end < merged.start {
                i += 1;
            } else if cur.start > merged.end {
                break;
            } else {
                merged.start = merged.start.min(cur.start);
                merged.end = merged.end.max(cur.end);
                self.remove_at(i);
            }
        }
        self.insert_at(i, merged)
    }

    /// Removes a range; a range that splits one in two needs a free slot.
    pub fn remove(&mut self, r: Range) -> Result<(), RegionSetFull> {
        if r.is_empty() {
            return Ok(());
        }
        let mut i = 0;
        while i < self.len {
            let cur = self.ranges[i];
            if !cur.overlaps(&r) {
                i += 1;
                continue;
            }
            let left = Range { start: cur.start, end: r.start };
            let right = Range { start: r.end, end: cur.end };
            match (left.is_empty() || r.start <= cur.start, right.is_empty() || r.end >= cur.end) {
                (true, true) => self.remove_at(i),
                (false, true) => {
                    self.ranges[i] = left;
                    i += 1;
                }
                (true, false) => {
                    self.ranges[i] = right;
                    i += 1;
                }
                (false, false) => {
                    self.ranges[i] = left;
                    self.insert_at(i + 1, right)?;
                    i += 2;
                }
            }
        }
        Ok(())
    }

    /// True when some range of the set overlaps `r`.
    pub fn overlaps(&self, r: &Range) -> bool {
        self.iter().any(|c| c.overlaps(r))
    }

    /// True when `r` lies entirely inside one range of the set.
    pub fn covers(&self, r: &Range) -> bool {
        self.iter().any(|c| c.contains_range(r))
    }

    /// The largest range, if any.
    pub fn largest(&self) -> Option<Range> {
        self.iter().max_by_key(|r| r.size())
    }
}

/// What a region of RAM is used for, when it is not free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// `/memreserve/` in the DTB header.
    MemReserve,
    /// A `/reserved-memory` child.
    ReservedMemory,
    /// The hypervisor image, BSS and stacks.
    Hypervisor,
    /// The host device tree blob.
    DeviceTree,
    /// A boot module (kernel, ramdisk, LCM…) the loader placed.
    Module,
    /// Host memory a domain's `xen,static-mem` claims.
    StaticMem,
    /// Static shared memory (`xen,shared-mem`) domains are given.
    SharedMem,
}

impl Use {
    pub fn name(self) -> &'static str {
        match self {
            Use::MemReserve => "/memreserve/ entry",
            Use::ReservedMemory => "/reserved-memory region",
            Use::Hypervisor => "hypervisor image",
            Use::DeviceTree => "host device tree",
            Use::Module => "boot module",
            Use::StaticMem => "domain's static memory",
            Use::SharedMem => "static shared memory",
        }
    }
}

impl fmt::Display for Use {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Memory the hypervisor keeps for its heap out of `free` bytes of RAM: an eighth,
/// between 1 and 64 MiB.
pub fn hypervisor_heap_size(free: u64) -> u64 {
    (free / 8).clamp(1 << 20, 64 << 20) & !(PAGE_SIZE - 1)
}

/// Maximum RAM banks and reserved regions tracked.
pub const MAX_REGIONS: usize = 64;

/// RAM, the regions in use inside it, and what remains free.
#[derive(Clone, Debug)]
pub struct MemoryMap {
    /// RAM as the DTB describes it, page-aligned inwards.
    pub ram: RegionSet<MAX_REGIONS>,
    /// Everything that must not be handed out, page-aligned outwards.
    pub reserved: RegionSet<MAX_REGIONS>,
    /// Each reservation as given (exact, not merged), with what it is for.
    tags: [(Range, Use); MAX_REGIONS],
    ntags: usize,
}

impl Default for MemoryMap {
    fn default() -> Self {
        MemoryMap {
            ram: RegionSet::new(),
            reserved: RegionSet::new(),
            tags: [(Range::default(), Use::MemReserve); MAX_REGIONS],
            ntags: 0,
        }
    }
}

impl MemoryMap {
    pub fn add_ram(&mut self, r: Range) -> Result<(), RegionSetFull> {
        self.ram.add(r.page_inner())
    }

    /// Marks a range as in use. Ranges outside RAM are recorded too (they simply never
    /// intersect free memory).
    pub fn reserve(&mut self, r: Range, why: Use) -> Result<(), RegionSetFull> {
        let slot = self.tags.get_mut(self.ntags).ok_or(RegionSetFull)?;
        *slot = (r, why);
        self.ntags += 1;
        self.reserved.add(r.page_outer())
    }

    /// Every reservation as it was made, with its use.
    pub fn tagged(&self) -> impl Iterator<Item = (Range, Use)> + '_ {
        self.tags[..self.ntags].iter().copied()
    }

    /// RAM minus every reserved range.
    pub fn free(&self) -> Result<RegionSet<MAX_REGIONS>, RegionSetFull> {
        let mut free = self.ram.clone();
        for r in self.reserved.iter() {
            free.remove(r)?;
        }
        Ok(free)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(start: u64, end: u64) -> Range {
        Range { start, end }
    }

    fn v<const N: usize>(s: &RegionSet<N>) -> Vec<Range> {
        s.iter().collect()
    }

    #[test]
    fn add_merges_overlapping_and_adjacent() {
        let mut s = RegionSet::<8>::new();
        s.add(r(0x3000, 0x4000)).unwrap();
        s.add(r(0x1000, 0x2000)).unwrap();
        s.add(r(0x2000, 0x3000)).unwrap();
        assert_eq!(v(&s), vec![r(0x1000, 0x4000)]);
        s.add(r(0x8000, 0x9000)).unwrap();
        s.add(r(0x3800, 0x8800)).unwrap();
        assert_eq!(v(&s), vec![r(0x1000, 0x9000)]);
    }

    #[test]
    fn remove_splits_and_trims() {
        let mut s = RegionSet::<8>::new();
        s.add(r(0x0, 0x10000)).unwrap();
        s.remove(r(0x4000, 0x5000)).unwrap();
        assert_eq!(v(&s), vec![r(0, 0x4000), r(0x5000, 0x10000)]);
        s.remove(r(0x0, 0x1000)).unwrap();
        s.remove(r(0xf000, 0x20000)).unwrap();
        assert_eq!(v(&s), vec![r(0x1000, 0x4000), r(0x5000, 0xf000)]);
        s.remove(r(0x3000, 0x6000)).unwrap();
        assert_eq!(v(&s), vec![r(0x1000, 0x3000), r(0x6000, 0xf000)]);
        s.remove(r(0, u64::MAX)).unwrap();
        assert!(s.is_empty());
    }

    #[test]
    fn full_set_reports_error() {
        let mut s = RegionSet::<2>::new();
        s.add(r(0, 0x1000)).unwrap();
        s.add(r(0x2000, 0x3000)).unwrap();
        assert_eq!(s.add(r(0x5000, 0x6000)), Err(RegionSetFull));
        let mut t = RegionSet::<1>::new();
        t.add(r(0, 0x10000)).unwrap();
        assert_eq!(t.remove(r(0x1000, 0x2000)), Err(RegionSetFull));
    }

    #[test]
    fn overlapping_reserved_ranges_carve_once() {
        let mut m = MemoryMap::default();
        m.add_ram(r(0x4000_0000, 0x8000_0000)).unwrap();
        m.reserve(r(0x4800_0000, 0x4810_0000), Use::DeviceTree).unwrap();
        m.reserve(r(0x480f_0000, 0x4900_0000), Use::ReservedMemory).unwrap();
        m.reserve(r(0x4000_0000, 0x4000_1000), Use::MemReserve).unwrap();
        let free = m.free().unwrap();
        assert_eq!(v(&free), vec![r(0x4000_1000, 0x4800_0000), r(0x4900_0000, 0x8000_0000)]);
        assert_eq!(free.total(), 0x4000_0000 - 0x1000 - 0x100_0000);
    }

    #[test]
    fn dtb_inside_ram_is_reserved_page_outer() {
        let mut m = MemoryMap::default();
        m.add_ram(r(0x4000_0000, 0x5000_0000)).unwrap();
        // A 0x2345-byte DTB at an odd spot: the pages it touches are all reserved.
        m.reserve(Range::at(0x4800_0123, 0x2345).unwrap(), Use::DeviceTree).unwrap();
        let free = m.free().unwrap();
        assert_eq!(v(&free), vec![r(0x4000_0000, 0x4800_0000), r(0x4800_3000, 0x5000_0000)]);
    }

    #[test]
    fn modules_at_odd_addresses_and_outside_ram() {
        let mut m = MemoryMap::default();
        m.add_ram(r(0x0, 0x3b40_0000)).unwrap();
        m.add_ram(r(0x4000_0000, 0x8000_0000)).unwrap();
        m.reserve(Range::at(0x1000_0001, 0x1000).unwrap(), Use::Module).unwrap();
        // Outside RAM: harmless.
        m.reserve(Range::at(0x3c00_0000, 0x1000).unwrap(), Use::Module).unwrap();
        // Straddling two banks' gap.
        m.reserve(r(0x3b3f_f800, 0x4000_0800), Use::Module).unwrap();
        let free = m.free().unwrap();
        assert_eq!(
            v(&free),
            vec![r(0, 0x1000_0000), r(0x1000_2000, 0x3b3f_f000), r(0x4000_1000, 0x8000_0000)]
        );
    }

    #[test]
    fn ram_is_page_aligned_inwards() {
        let mut m = MemoryMap::default();
        m.add_ram(r(0x4000_0800, 0x4010_0800)).unwrap();
        assert_eq!(v(&m.free().unwrap()), vec![r(0x4000_1000, 0x4010_0000)]);
        // A bank smaller than a page vanishes.
        let mut m = MemoryMap::default();
        m.add_ram(r(0x10, 0x800)).unwrap();
        assert!(m.free().unwrap().is_empty());
    }

    #[test]
    fn range_at_rejects_wrap() {
        assert!(Range::at(u64::MAX - 10, 100).is_none());
        assert_eq!(Range::at(0x1000, 0x10), Some(r(0x1000, 0x1010)));
    }
}
