//! A domain's stage-2 tables as its build stages them: its RAM, store ring pages, the
//! GICv2 virtual CPU interface, the control window, host and passthrough devices, and
//! shared copy-on-write kernel pages read-only.

use alloc::vec::Vec;

use super::assign::StoreLink;
use super::build::{BuildError, Given};
use super::machine::HostMem;
use super::pool::Staged;
use super::ram::Ram;
use crate::guest;
use crate::memmap::Range;
use crate::pgtable::{Format, MemType, PageTables, Perms};

/// What stage 2 maps besides RAM and devices: store ring pages, the GICv2 virtual CPU
/// interface (guest, host address), the control window (guest address, memory), static
/// shared memory (guest address, host address, size).
pub(super) type Mapped<'a> =
    (Option<&'a StoreLink>, Option<(u64, u64)>, Option<(u64, HostMem)>, &'a [(u64, u64, u64)]);

/// The level-3 tables of shared kernel pages, and a writable page descriptor without its
/// address.
pub(super) type SharedTables = (Vec<u64>, u64);

/// Stages the domain's stage-2 tables: its RAM (but the shared kernel pages), store ring
/// pages, the GICv2 virtual CPU interface, host devices, passthrough devices, and the
/// shared kernel pages read-only.
/// Returns the root, the bytes of RAM mapped with 2 MiB or 1 GiB blocks, and, when pages are
/// shared, their level-3 tables and a writable page descriptor without its address.
pub(super) fn stage2(
    store: &mut Staged,
    pa_bits: u32,
    ram: &Ram,
    (shared, module_pa): (Range, u64),
    (link, gicv, window, shm): Mapped<'_>,
    g: &Given,
) -> Result<(u64, u64, Option<SharedTables>), BuildError> {
    let mut pt = PageTables::new(store, Format::Stage2, 1, pa_bits).map_err(BuildError::Map)?;
    let mut blocks = 0u64;
    for &(mem, ipa) in &ram.chunks {
        for (a, b) in guest::uncovered(ipa, ipa + mem.len(), &[(shared.start, shared.size())]) {
            let s = pt
                .map(store, a, mem.start() + (a - ipa), b - a, MemType::Normal, Perms::RWX)
                .map_err(BuildError::Map)?;
            blocks += (s.blocks_2m << 21) + (s.blocks_1g << 30);
        }
    }
    for &(ipa, pa) in link.map_or(&[][..], |l| &l.pages[..]) {
        pt.map(store, ipa, pa, 4096, MemType::Normal, Perms::RW).map_err(BuildError::Map)?;
    }
    if let Some((ipa, pa)) = gicv {
        pt.map(store, ipa, pa, 0x2000, MemType::Device, Perms::RW).map_err(BuildError::Map)?;
    }
    for &(ipa, pa, size) in shm {
        pt.map(store, ipa, pa, size, MemType::Normal, Perms::RW).map_err(BuildError::Map)?;
    }
    if let Some((ipa, w)) = window {
        pt.map(store, ipa, w.start(), w.len(), MemType::Normal, Perms::RW).map_err(BuildError::Map)?;
    }
    for r in g.hw.devices.iter().flat_map(|d| d.mmio.iter()) {
        // Devices can share a page range with another of the same domain: map once.
        if pt.translate(store, r.start).is_none() {
            pt.map(store, r.start, r.start, r.size(), MemType::Device, Perms::RW).map_err(BuildError::Map)?;
        }
    }
    for &(pa, size, ga) in g.passthrough.iter().flat_map(|p| p.regs.iter()) {
        pt.map(store, ga, pa, size, MemType::Device, Perms::RW).map_err(BuildError::Map)?;
    }
    if shared.is_empty() {
        return Ok((pt.root(), blocks, None));
    }
    pt.map_pages(store, shared.start, module_pa, shared.size(), MemType::Normal, Perms::RX)
        .map_err(BuildError::Map)?;
    let mut tables = Vec::new();
    let mut at = shared.start & !0x1f_ffff;
    while at < shared.end {
        tables.push(
            pt.page_table_of(store, at.max(shared.start)).ok_or(BuildError::Unsupported("no page table"))?,
        );
        at += 0x20_0000;
    }
    Ok((pt.root(), blocks, Some((tables, pt.page_desc(0, MemType::Normal, Perms::RWX)))))
}
