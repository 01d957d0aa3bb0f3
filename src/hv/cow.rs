//! Copy-on-write kernel pages: a domain's kernel pages mapped read-only from their boot
//! module (shared by every domain that boots it), each copied into the domain's own RAM the
//! first time it is written. The policy lives here; the machine reads and replaces the
//! stage-2 descriptors.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use spin::Mutex;

use super::machine::{HostMem, Machine};
use super::ram::Ram;
use crate::memmap::Range;
use crate::pgtable::OA_MASK;

pub const PAGE: u64 = 4096;

/// Where a guest page of the shared range is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// Still the module's page (read-only to the guest).
    Shared(HostMem),
    /// Copied: the domain's own page.
    Private(HostMem),
}

pub struct Cow {
    /// Guest addresses of the shared pages.
    pub ipa: Range,
    /// The module's pages behind them.
    pub module: HostMem,
    /// The level-3 tables mapping them, one per 2 MiB of guest address space.
    pub tables: Vec<HostMem>,
    /// A writable page descriptor without its output address.
    pub private_attrs: u64,
    lock: Mutex<()>,
    /// Pages copied so far.
    pub copied: AtomicU64,
}

impl Cow {
    pub fn new(ipa: Range, module: HostMem, tables: Vec<HostMem>, private_attrs: u64) -> Cow {
        Cow { ipa, module, tables, private_attrs, lock: Mutex::new(()), copied: AtomicU64::new(0) }
    }

    /// The stage-2 descriptor of shared guest page `page`.
    fn entry(&self, page: u64) -> Option<HostMem> {
        let table = self.tables.get(((page >> 21) - (self.ipa.start >> 21)) as usize)?;
        table.sub(((page >> 12) & 511) * 8, 8)
    }

    fn module_page(&self, page: u64) -> Option<HostMem> {
        self.module.sub(page - self.ipa.start, PAGE)
    }

    /// Where guest page `page` (inside the shared range) is now.
    pub fn page(&self, m: &dyn Machine, ram: &Ram, page: u64) -> Option<Page> {
        let page = page & !(PAGE - 1);
        if !self.ipa.contains(page) {
            return None;
        }
        let own = ram.host(page, PAGE)?;
        let entry = self.entry(page)?;
        if m.read_entry(entry) & OA_MASK == own.start() {
            Some(Page::Private(own))
        } else {
            self.module_page(page).map(Page::Shared)
        }
    }

    /// Makes guest page `page` the domain's own (copying the module's bytes) if it is not
    /// yet. Returns its own page.
    pub fn make_private(&self, m: &dyn Machine, ram: &Ram, page: u64, local: bool) -> Option<HostMem> {
        let page = page & !(PAGE - 1);
        if !self.ipa.contains(page) {
            return None;
        }
        let _g = self.lock.lock();
        let own = ram.host(page, PAGE)?;
        let entry = self.entry(page)?;
        if m.read_entry(entry) & OA_MASK != own.start() {
            m.copy(own, self.module_page(page)?);
            m.replace_entry(entry, self.private_attrs | own.start(), page, local);
            self.copied.fetch_add(1, Ordering::Relaxed);
        }
        Some(own)
    }

    /// A stage-2 fault at `ipa` that sharing explains: a write to a shared page (copied
    /// now), or a translation fault while another vCPU of the domain was replacing the
    /// page. True when the access is to be retried: only when the page is mapped now, so a
    /// fault sharing does not explain (a permission fault on a read or an instruction
    /// fetch, an entry not valid) is never retried for ever.
    pub fn fault(&self, m: &dyn Machine, ram: &Ram, ipa: u64, write: bool, perm: bool, local: bool) -> bool {
        if !self.ipa.contains(ipa) || (perm && !write) {
            return false;
        }
        if !perm {
            // A translation fault while the entry was being replaced: in place now (the
            // lock orders this after the replacement).
            let _g = self.lock.lock();
            let page = ipa & !(PAGE - 1);
            return ram.host(page, PAGE).is_some()
                && self.entry(page).is_some_and(|e| m.read_entry(e) & crate::pgtable::VALID != 0);
        }
        self.make_private(m, ram, ipa, local).is_some()
    }

    /// For a restart: every page already copied gets the module's bytes again.
    pub fn restore_private(&self, m: &dyn Machine, ram: &Ram) {
        let _g = self.lock.lock();
        let mut page = self.ipa.start;
        while page < self.ipa.end {
            if let (Some(entry), Some(own), Some(src)) =
                (self.entry(page), ram.host(page, PAGE), self.module_page(page))
                && m.read_entry(entry) & OA_MASK == own.start()
            {
                m.copy(own, src);
            }
            page += PAGE;
        }
    }
}
