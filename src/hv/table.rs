//! The domains, in a table of fixed capacity: the initial domains first, in configuration
//! order, then domains a Control domain creates. A slot holds its domain behind an `Arc`,
//! so that a CPU still holding a domain it looked up keeps it alive while the slot is
//! given to a new domain; a slot is reused only once its domain is reclaimed and no run
//! queue names it (the caller checks, [`Domains::vacate`] takes it).

use alloc::sync::Arc;
use alloc::vec::Vec;

use spin::RwLock;

use super::domain::Domain;

/// How many domains can exist at once (initial and created).
pub const MAX_DOMAINS: usize = 64;

pub struct Domains {
    slots: Vec<RwLock<Option<Arc<Domain>>>>,
}

impl Domains {
    /// The initial domains in slots 0, 1, …; at least [`MAX_DOMAINS`] slots in all.
    pub fn new(initial: Vec<Domain>) -> Domains {
        let n = initial.len().max(MAX_DOMAINS);
        let mut slots: Vec<RwLock<Option<Arc<Domain>>>> =
            initial.into_iter().map(|d| RwLock::new(Some(Arc::new(d)))).collect();
        slots.resize_with(n, || RwLock::new(None));
        Domains { slots }
    }

    /// The domain in slot `i`.
    pub fn get(&self, i: usize) -> Option<Arc<Domain>> {
        self.slots.get(i)?.read().clone()
    }

    /// Every domain, in slot order (a snapshot).
    pub fn all(&self) -> Vec<Arc<Domain>> {
        self.slots.iter().filter_map(|s| s.read().clone()).collect()
    }

    /// The domain with id `domid`.
    pub fn find(&self, domid: u16) -> Option<Arc<Domain>> {
        self.slots.iter().find_map(|s| s.read().as_ref().filter(|d| d.id == domid).cloned())
    }

    /// The slot `d` is in (`usize::MAX` if none).
    pub fn index_of(&self, d: &Domain) -> usize {
        self.slots
            .iter()
            .position(|s| s.read().as_ref().is_some_and(|e| core::ptr::eq(&**e, d)))
            .unwrap_or(usize::MAX)
    }

    /// Slots that are empty, or whose domain `done` says is finished with (reclaimed):
    /// candidates for a new domain.
    pub fn free_slots(&self, done: impl Fn(&Domain) -> bool) -> Vec<usize> {
        (0..self.slots.len()).filter(|&i| self.slots[i].read().as_ref().is_none_or(|d| done(d))).collect()
    }

    /// Empties slot `i` if `done` still says its domain is finished with; returns whether
    /// the slot is now empty.
    pub fn vacate(&self, i: usize, done: impl Fn(&Domain) -> bool) -> bool {
        let Some(s) = self.slots.get(i) else { return false };
        let mut s = s.write();
        if s.as_ref().is_some_and(|d| !done(d)) {
            return false;
        }
        *s = None;
        true
    }

    /// Puts `d` in empty slot `i`; gives it back (`Err`) if the slot is taken.
    pub fn put(&self, i: usize, d: Domain) -> Result<Arc<Domain>, Arc<Domain>> {
        let d = Arc::new(d);
        let Some(s) = self.slots.get(i) else { return Err(d) };
        let mut s = s.write();
        if s.is_some() {
            return Err(d);
        }
        *s = Some(d.clone());
        Ok(d)
    }

    /// How many slots there are.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }
}
