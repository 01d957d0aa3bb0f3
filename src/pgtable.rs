//! Translation tables with the 4 KiB granule: building and walking them, for the
//! hypervisor's own EL2 stage 1 and for guests' stage 2. Pure code: tables live wherever a
//! [`TableStore`] keeps them, so the same builder runs on the host under `cargo test`.

use core::fmt;

/// Entries in one table.
pub const ENTRIES: usize = 512;
/// One translation table.
pub type Table = [u64; ENTRIES];

const PAGE_SHIFT: u32 = 12;
pub const VALID: u64 = 1 << 0;
const TABLE_OR_PAGE: u64 = 1 << 1;
const AF: u64 = 1 << 10;
const SH_INNER: u64 = 0b11 << 8;
const XN: u64 = 1 << 54;
/// The output-address bits of a descriptor.
pub const OA_MASK: u64 = 0x0000_ffff_ffff_f000;

/// MAIR_EL2 attribute index of device memory (nGnRE).
pub const MAIR_IDX_DEVICE: u64 = 0;
/// MAIR_EL2 attribute index of normal write-back cacheable memory.
pub const MAIR_IDX_NORMAL: u64 = 1;
/// The MAIR_EL2 value matching those indices.
pub const MAIR_EL2_VALUE: u64 = 0x04 | (0xff << 8);

/// Where tables come from. Addresses are physical; the store maps them to storage.
pub trait TableStore {
    /// A new zeroed table, by physical address; `None` when out of memory.
    fn alloc_table(&mut self) -> Option<u64>;
    /// The table at a physical address previously returned by `alloc_table`.
    fn table(&mut self, pa: u64) -> Option<&mut Table>;
}

/// Which descriptor format the tables use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// EL2 stage 1 (one exception level: AP[1] is RES1).
    El2,
    /// Stage 2 (guest IPA to PA).
    Stage2,
}

/// Memory type of a mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemType {
    Normal,
    Device,
}

/// Access permissions of a mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Perms {
    pub read: bool,
    pub write: bool,
    pub exec: bool,
}

impl Perms {
    pub const RW: Perms = Perms { read: true, write: true, exec: false };
    pub const RX: Perms = Perms { read: true, write: false, exec: true };
    pub const RO: Perms = Perms { read: true, write: false, exec: false };
    pub const RWX: Perms = Perms { read: true, write: true, exec: true };
}

/// Why a mapping could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapError {
    /// Address or size not a multiple of 4 KiB.
    Unaligned { va: u64, pa: u64, size: u64 },
    /// Beyond the input or output address range of the tables.
    OutOfRange { va: u64, size: u64 },
    /// The address is already mapped.
    Overlap { va: u64 },
    /// The table store has no more tables.
    OutOfTables,
    /// A table address the store does not know (a corrupt descriptor).
    BadTable { pa: u64 },
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MapError::Unaligned { va, pa, size } => {
                write!(f, "mapping {va:#x} -> {pa:#x} (+{size:#x}) is not page aligned")
            }
            MapError::OutOfRange { va, size } => {
                write!(f, "mapping {va:#x} (+{size:#x}) is outside the address space")
            }
            MapError::Overlap { va } => write!(f, "address {va:#x} is already mapped"),
            MapError::OutOfTables => write!(f, "out of translation table memory"),
            MapError::BadTable { pa } => write!(f, "no translation table at {pa:#x}"),
        }
    }
}

/// What a walk found for one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Translation {
    pub pa: u64,
    pub mem: MemType,
    pub perms: Perms,
    /// Size of the page or block that maps it (4 KiB, 2 MiB or 1 GiB).
    pub block_size: u64,
}

/// Counts of the leaf entries written by [`PageTables::map`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MapStats {
    pub pages_4k: u64,
    pub blocks_2m: u64,
    pub blocks_1g: u64,
}

fn level_shift(level: u32) -> u32 {
    PAGE_SHIFT + 9 * (3 - level)
}

/// A set of translation tables rooted at one table.
#[derive(Debug, Clone, Copy)]
pub struct PageTables {
    root: u64,
    format: Format,
    start_level: u32,
    /// Output addresses must stay below `1 << pa_bits`.
    pa_bits: u32,
}

impl PageTables {
    /// New empty tables whose walk starts at `start_level` (0 or 1): 48 or 39 bits of input
    /// address.
    pub fn new(
        store: &mut dyn TableStore,
        format: Format,
        start_level: u32,
        pa_bits: u32,
    ) -> Result<Self, MapError> {
        assert!(start_level <= 1, "walks start at level 0 or 1");
        let root = store.alloc_table().ok_or(MapError::OutOfTables)?;
        Ok(PageTables { root, format, start_level, pa_bits })
    }

    /// Physical address of the root table (for TTBR0_EL2 / VTTBR_EL2).
    pub fn root(&self) -> u64 {
        self.root
    }

    /// Bits of input address the tables translate.
    pub fn va_bits(&self) -> u32 {
        level_shift(self.start_level) + 9
    }

    fn leaf_attrs(&self, mem: MemType, perms: Perms) -> u64 {
        let mut d = VALID | AF;
        match self.format {
            Format::El2 => {
                d |= match mem {
                    MemType::Normal => (MAIR_IDX_NORMAL << 2) | SH_INNER,
                    MemType::Device => MAIR_IDX_DEVICE << 2,
                };
                d |= 1 << 6; // AP[1]: RES1 in a one-exception-level regime
                if !perms.write {
                    d |= 1 << 7; // AP[2]: read-only
                }
            }
            Format::Stage2 => {
                d |= match mem {
                    MemType::Normal => (0b1111 << 2) | SH_INNER,
                    MemType::Device => 0b0001 << 2,
                };
                if perms.read {
                    d |= 1 << 6;
                }
                if perms.write {
                    d |= 1 << 7;
                }
            }
        }
        if !perms.exec {
            d |= XN;
        }
        d
    }

    fn decode_leaf(&self, d: u64) -> (MemType, Perms) {
        let exec = d & XN == 0;
        match self.format {
            Format::El2 => {
                let mem = if (d >> 2) & 7 == MAIR_IDX_NORMAL { MemType::Normal } else { MemType::Device };
                (mem, Perms { read: true, write: d & (1 << 7) == 0, exec })
            }
            Format::Stage2 => {
                let mem = if (d >> 2) & 0xf == 0b1111 { MemType::Normal } else { MemType::Device };
                (mem, Perms { read: d & (1 << 6) != 0, write: d & (1 << 7) != 0, exec })
            }
        }
    }

    /// Maps `[va, va + size)` to `[pa, pa + size)`, using 1 GiB and 2 MiB blocks wherever
    /// both addresses are aligned for them. Fails without overwriting any existing entry.
    pub fn map(
        &mut self,
        store: &mut dyn TableStore,
        va: u64,
        pa: u64,
        size: u64,
        mem: MemType,
        perms: Perms,
    ) -> Result<MapStats, MapError> {
        let mask = (1u64 << PAGE_SHIFT) - 1;
        if (va | pa | size) & mask != 0 {
            return Err(MapError::Unaligned { va, pa, size });
        }
        let va_end = va.checked_add(size).ok_or(MapError::OutOfRange { va, size })?;
        let pa_end = pa.checked_add(size).ok_or(MapError::OutOfRange { va, size })?;
        if va_end > 1u64 << self.va_bits() || pa_end > 1u64 << self.pa_bits {
            return Err(MapError::OutOfRange { va, size });
        }
        // Check first, so that a refused mapping leaves the tables as they were.
        let mut probe = va;
        while probe < va_end {
            match self.walk(store, probe) {
                Walk::Leaf { .. } => return Err(MapError::Overlap { va: probe }),
                Walk::Hole { size: hole } => {
                    probe = (probe & !(hole - 1)).saturating_add(hole);
                }
            }
        }
        let attrs = self.leaf_attrs(mem, perms);
        let mut stats = MapStats::default();
        self.map_level(store, self.start_level, self.root, va, pa, size, attrs, &mut stats)?;
        Ok(stats)
    }

    /// As [`PageTables::map`], with 4 KiB pages only (pages whose mapping will change one
    /// by one later, without splitting a block).
    pub fn map_pages(
        &mut self,
        store: &mut dyn TableStore,
        va: u64,
        pa: u64,
        size: u64,
        mem: MemType,
        perms: Perms,
    ) -> Result<MapStats, MapError> {
        let mut stats = MapStats::default();
        let mut off = 0;
        while off < size {
            // Each call maps one page: the block test never passes for 4 KiB.
            let s = self.map(store, va + off, pa + off, 1 << PAGE_SHIFT, mem, perms)?;
            stats.pages_4k += s.pages_4k;
            off += 1 << PAGE_SHIFT;
        }
        Ok(stats)
    }

    /// The level-3 table holding the page descriptor of `va`, when `va` is mapped by a
    /// 4 KiB page.
    pub fn page_table_of(&self, store: &mut dyn TableStore, va: u64) -> Option<u64> {
        let mut table = self.root;
        let mut level = self.start_level;
        loop {
            let shift = level_shift(level);
            let idx = ((va >> shift) & (ENTRIES as u64 - 1)) as usize;
            let d = store.table(table)?[idx];
            if d & VALID == 0 || (level < 3 && d & TABLE_OR_PAGE == 0) {
                return None;
            }
            if level == 3 {
                return Some(table);
            }
            table = d & OA_MASK;
            level += 1;
        }
    }

    /// The page descriptor mapping a 4 KiB page to `pa` with these attributes.
    pub fn page_desc(&self, pa: u64, mem: MemType, perms: Perms) -> u64 {
        (pa & OA_MASK) | self.leaf_attrs(mem, perms) | TABLE_OR_PAGE
    }

    #[allow(clippy::too_many_arguments)]
    fn map_level(
        &self,
        store: &mut dyn TableStore,
        level: u32,
        table_pa: u64,
        mut va: u64,
        mut pa: u64,
        mut size: u64,
        attrs: u64,
        stats: &mut MapStats,
    ) -> Result<(), MapError> {
        let shift = level_shift(level);
        let block = 1u64 << shift;
        while size > 0 {
            let idx = ((va >> shift) & (ENTRIES as u64 - 1)) as usize;
            let entry = store.table(table_pa).ok_or(MapError::BadTable { pa: table_pa })?[idx];
            let can_block =
                level >= 1 && va.is_multiple_of(block) && pa.is_multiple_of(block) && size >= block;
            if level == 3 || can_block {
                if entry & VALID != 0 {
                    return Err(MapError::Overlap { va });
                }
                let kind = if level == 3 { TABLE_OR_PAGE } else { 0 };
                store.table(table_pa).ok_or(MapError::BadTable { pa: table_pa })?[idx] =
                    (pa & OA_MASK) | attrs | kind;
                match level {
                    1 => stats.blocks_1g += 1,
                    2 => stats.blocks_2m += 1,
                    _ => stats.pages_4k += 1,
                }
                va += block;
                pa += block;
                size -= block;
                continue;
            }
            let next = if entry & VALID == 0 {
                let t = store.alloc_table().ok_or(MapError::OutOfTables)?;
                store.table(table_pa).ok_or(MapError::BadTable { pa: table_pa })?[idx] =
                    t | VALID | TABLE_OR_PAGE;
                t
            } else if entry & TABLE_OR_PAGE != 0 {
                entry & OA_MASK
            } else {
                return Err(MapError::Overlap { va });
            };
            let chunk = size.min(block - (va % block));
            self.map_level(store, level + 1, next, va, pa, chunk, attrs, stats)?;
            va += chunk;
            pa += chunk;
            size -= chunk;
        }
        Ok(())
    }

    fn walk(&self, store: &mut dyn TableStore, va: u64) -> Walk {
        let mut table = self.root;
        let mut level = self.start_level;
        loop {
            let shift = level_shift(level);
            let idx = ((va >> shift) & (ENTRIES as u64 - 1)) as usize;
            let Some(t) = store.table(table) else { return Walk::Hole { size: 1 << shift } };
            let d = t[idx];
            if d & VALID == 0 {
                return Walk::Hole { size: 1 << shift };
            }
            if level == 3 || d & TABLE_OR_PAGE == 0 {
                return Walk::Leaf { desc: d, shift };
            }
            table = d & OA_MASK;
            level += 1;
        }
    }

    /// Walks the tables for one address, as the hardware would.
    pub fn translate(&self, store: &mut dyn TableStore, va: u64) -> Option<Translation> {
        if va >= 1u64 << self.va_bits() {
            return None;
        }
        match self.walk(store, va) {
            Walk::Hole { .. } => None,
            Walk::Leaf { desc, shift } => {
                let size = 1u64 << shift;
                let (mem, perms) = self.decode_leaf(desc);
                Some(Translation {
                    pa: (desc & OA_MASK & !(size - 1)) | (va & (size - 1)),
                    mem,
                    perms,
                    block_size: size,
                })
            }
        }
    }
}

enum Walk {
    Hole { size: u64 },
    Leaf { desc: u64, shift: u32 },
}

/// A [`TableStore`] over a fixed array of tables at a known physical address: what the
/// hypervisor uses before it has a heap, and what tests use with any base address.
pub struct ArrayStore<'a> {
    tables: &'a mut [Table],
    base_pa: u64,
    used: usize,
}

impl<'a> ArrayStore<'a> {
    pub fn new(tables: &'a mut [Table], base_pa: u64) -> Self {
        ArrayStore { tables, base_pa, used: 0 }
    }

    /// Tables handed out so far.
    pub fn used(&self) -> usize {
        self.used
    }
}

impl TableStore for ArrayStore<'_> {
    fn alloc_table(&mut self) -> Option<u64> {
        let t = self.tables.get_mut(self.used)?;
        t.fill(0);
        self.used += 1;
        Some(self.base_pa + (self.used as u64 - 1) * 4096)
    }

    fn table(&mut self, pa: u64) -> Option<&mut Table> {
        let off = pa.checked_sub(self.base_pa)?;
        if off % 4096 != 0 || off / 4096 >= self.used as u64 {
            return None;
        }
        self.tables.get_mut((off / 4096) as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: u64 = 1 << 30;
    const M2: u64 = 2 << 20;
    const K4: u64 = 4096;

    fn store(n: usize) -> Vec<Table> {
        vec![[0u64; ENTRIES]; n]
    }

    #[test]
    fn uses_largest_blocks_alignment_allows() {
        let mut t = store(16);
        let mut s = ArrayStore::new(&mut t, 0x8000_0000);
        let mut pt = PageTables::new(&mut s, Format::El2, 0, 40).unwrap();
        // 0x4000_0000 + 1 GiB + 2 MiB + 4 KiB: one of each.
        let stats =
            pt.map(&mut s, 0x4000_0000, 0x4000_0000, G + M2 + K4, MemType::Normal, Perms::RWX).unwrap();
        assert_eq!(stats, MapStats { pages_4k: 1, blocks_2m: 1, blocks_1g: 1 });
        let tr = pt.translate(&mut s, 0x4000_1234).unwrap();
        assert_eq!((tr.pa, tr.block_size, tr.mem), (0x4000_1234, G, MemType::Normal));
        assert_eq!(pt.translate(&mut s, 0x8000_0000 + 5).unwrap().block_size, M2);
        assert_eq!(pt.translate(&mut s, 0x8020_0000 + 8).unwrap().block_size, K4);
        assert_eq!(pt.translate(&mut s, 0x8020_1000), None);
        assert_eq!(pt.translate(&mut s, 0x3fff_ffff), None);
    }

    #[test]
    fn pages_only_and_changing_one_page() {
        let mut t = store(16);
        let base = 0x9000_0000;
        let mut s = ArrayStore::new(&mut t, base);
        let mut pt = PageTables::new(&mut s, Format::Stage2, 1, 40).unwrap();
        // Aligned for blocks, mapped with pages anyway, read-only.
        let stats =
            pt.map_pages(&mut s, 0x4000_0000, 0x5000_0000, 2 * M2, MemType::Normal, Perms::RX).unwrap();
        assert_eq!(stats, MapStats { pages_4k: 1024, blocks_2m: 0, blocks_1g: 0 });
        let tr = pt.translate(&mut s, 0x4020_3008).unwrap();
        assert_eq!((tr.pa, tr.block_size, tr.perms), (0x5020_3008, K4, Perms::RX));
        // Point page 0x4020_3000 elsewhere, writable, through its level-3 table.
        let l3 = pt.page_table_of(&mut s, 0x4020_3000).unwrap();
        assert_eq!(pt.page_table_of(&mut s, 0x4020_3fff), Some(l3));
        assert_ne!(pt.page_table_of(&mut s, 0x4000_0000), Some(l3));
        let idx = (0x4020_3000 >> 12) & 511;
        s.table(l3).unwrap()[idx] = pt.page_desc(0x7777_7000, MemType::Normal, Perms::RWX);
        let tr = pt.translate(&mut s, 0x4020_3010).unwrap();
        assert_eq!((tr.pa, tr.perms), (0x7777_7010, Perms::RWX));
        assert_eq!(pt.translate(&mut s, 0x4020_4000).unwrap().pa, 0x5020_4000);
        // Blocks have no level-3 table; holes neither.
        pt.map(&mut s, 0x8000_0000, 0x8000_0000, M2, MemType::Normal, Perms::RW).unwrap();
        assert_eq!(pt.page_table_of(&mut s, 0x8000_1000), None);
        assert_eq!(pt.page_table_of(&mut s, 0x1000), None);
    }

    #[test]
    fn misaligned_pa_falls_back_to_smaller_blocks() {
        let mut t = store(16);
        let mut s = ArrayStore::new(&mut t, 0);
        let mut pt = PageTables::new(&mut s, Format::Stage2, 1, 40).unwrap();
        // IPA 1 GiB aligned but PA only 4 KiB aligned: no blocks possible.
        let stats = pt.map(&mut s, 0x4000_0000, 0x1234_5000, 4 * M2, MemType::Normal, Perms::RW).unwrap();
        assert_eq!(stats, MapStats { pages_4k: 4 * 512, blocks_2m: 0, blocks_1g: 0 });
        let tr = pt.translate(&mut s, 0x4010_0010).unwrap();
        assert_eq!(tr.pa, 0x1244_5010);
        assert_eq!(tr.perms, Perms::RW);
    }

    #[test]
    fn unaligned_start_then_blocks() {
        let mut t = store(16);
        let mut s = ArrayStore::new(&mut t, 0);
        let mut pt = PageTables::new(&mut s, Format::El2, 0, 40).unwrap();
        // From 4 KiB before a 2 MiB boundary through two more 2 MiB blocks.
        let stats = pt.map(&mut s, 0x1f_f000, 0x1f_f000, K4 + 2 * M2, MemType::Device, Perms::RW).unwrap();
        assert_eq!(stats, MapStats { pages_4k: 1, blocks_2m: 2, blocks_1g: 0 });
        assert_eq!(pt.translate(&mut s, 0x1f_f000).unwrap().mem, MemType::Device);
    }

    #[test]
    fn overlap_is_refused_and_leaves_tables_unchanged() {
        let mut t = store(16);
        let mut s = ArrayStore::new(&mut t, 0);
        let mut pt = PageTables::new(&mut s, Format::El2, 0, 40).unwrap();
        pt.map(&mut s, 0x20_0000, 0x20_0000, M2, MemType::Normal, Perms::RW).unwrap();
        let before = s.used();
        let err = pt.map(&mut s, 0x0, 0x0, 4 * M2, MemType::Normal, Perms::RW).unwrap_err();
        assert_eq!(err, MapError::Overlap { va: 0x20_0000 });
        assert_eq!(s.used(), before);
        assert_eq!(pt.translate(&mut s, 0x0), None);
        // A page inside an existing block is an overlap too.
        let err = pt.map(&mut s, 0x30_0000, 0x0, K4, MemType::Normal, Perms::RW).unwrap_err();
        assert_eq!(err, MapError::Overlap { va: 0x30_0000 });
    }

    #[test]
    fn range_and_alignment_errors() {
        let mut t = store(4);
        let mut s = ArrayStore::new(&mut t, 0);
        let mut pt = PageTables::new(&mut s, Format::Stage2, 1, 40).unwrap();
        assert!(matches!(
            pt.map(&mut s, 0x1001, 0, K4, MemType::Normal, Perms::RW),
            Err(MapError::Unaligned { .. })
        ));
        assert!(matches!(
            pt.map(&mut s, 1 << 39, 0, K4, MemType::Normal, Perms::RW),
            Err(MapError::OutOfRange { .. })
        ));
        assert!(matches!(
            pt.map(&mut s, 0, 1 << 40, K4, MemType::Normal, Perms::RW),
            Err(MapError::OutOfRange { .. })
        ));
    }

    #[test]
    fn running_out_of_tables_is_an_error() {
        let mut t = store(2);
        let mut s = ArrayStore::new(&mut t, 0);
        let mut pt = PageTables::new(&mut s, Format::El2, 0, 40).unwrap();
        let err = pt.map(&mut s, 0x1000, 0x1000, K4, MemType::Normal, Perms::RW).unwrap_err();
        assert_eq!(err, MapError::OutOfTables);
    }

    #[test]
    fn descriptor_bits_per_format() {
        let mut t = store(8);
        let mut s = ArrayStore::new(&mut t, 0);
        let mut pt = PageTables::new(&mut s, Format::El2, 1, 40).unwrap();
        pt.map(&mut s, 0, 0, G, MemType::Normal, Perms::RX).unwrap();
        let d = s.table(pt.root()).unwrap()[0];
        // Block, AF, inner shareable, normal index, AP[1] set, AP[2] read-only, executable.
        assert_eq!(d, VALID | AF | SH_INNER | (MAIR_IDX_NORMAL << 2) | (1 << 6) | (1 << 7));
        let mut t2 = store(8);
        let mut s2 = ArrayStore::new(&mut t2, 0);
        let mut pt2 = PageTables::new(&mut s2, Format::Stage2, 1, 40).unwrap();
        pt2.map(&mut s2, G, 0x900_0000 & !(G - 1), G, MemType::Device, Perms::RW).unwrap();
        let d = s2.table(pt2.root()).unwrap()[1];
        assert_eq!(d, VALID | AF | (0b0001 << 2) | (1 << 6) | (1 << 7) | XN);
    }
}
