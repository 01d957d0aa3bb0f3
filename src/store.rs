//! Store connections: when a domain has the Xenstore function, every other domain (the
//! Boot Domain aside) gets one shared ring page with it and a doorbell interrupt in each
//! direction. Which domains connect, where the pages appear in each guest, and who may ring
//! whom; the layout inside the page is the store's business (docs/store-rings.md).
//!
//! The store has [`MAX_CLIENTS`] slots, each with its ring page, all mapped in the store
//! domain from the launch on. The launch's clients take the first slots in configuration
//! order; a domain created at run time takes the lowest free slot, and a destroyed
//! domain's slot becomes free. The store learns of either through its "clients changed"
//! interrupt and `HL_STORE_CLIENT`.

use alloc::vec::Vec;

use crate::config::Functions;

/// Where a client sees its ring page.
pub const CLIENT_RING: u64 = 0x2300_0000;
/// Where the store domain sees client slot 0's ring page; slot k is `k` pages further.
pub const SERVER_RINGS: u64 = 0x2400_0000;
/// A client's doorbell from the store: SPI 1 (INTID 33).
pub const CLIENT_SPI: u32 = 1;
/// The store's doorbell from client slot k: SPI 2 + k (INTID 34 + k).
pub const SERVER_SPI_BASE: u32 = 2;
/// The store's "clients changed" interrupt: SPI 1 (INTID 33), raised when a slot is taken
/// or freed at run time.
pub const CHANGED_SPI: u32 = 1;
// It is none of the doorbells and not the virtual UART's.
const _: () = assert!(CHANGED_SPI < SERVER_SPI_BASE && CHANGED_SPI != crate::guest::VUART_SPI);
/// Clients one store serves (the SPIs of a domain's 32).
pub const MAX_CLIENTS: usize = 30;
/// The guest address range the store windows may use.
pub const WINDOW_END: u64 = SERVER_RINGS + (MAX_CLIENTS as u64) * 4096;

/// The store domain and its clients, by slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub server: u16,
    /// Slot k's client ([`MAX_CLIENTS`] slots).
    pub slots: Vec<Option<u16>>,
    /// Domains left without a connection because the store has no slot left.
    pub unserved: Vec<u16>,
    /// Domains created at run time may join. Not when the store domain is also the
    /// hardware domain: its host devices' interrupts keep the SPIs the free slots' doorbells
    /// and the "clients changed" interrupt would use.
    pub open: bool,
}

/// What a domain's device tree and stage 2 get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// A client: its ring at [`CLIENT_RING`], doorbell SPI [`CLIENT_SPI`].
    Client { server: u16 },
    /// The store: client slot k's ring at `SERVER_RINGS + k * 4096`, its doorbell SPI
    /// `SERVER_SPI_BASE + k`; the slots' clients when the domain was built; whether domains
    /// created at run time may join (then every slot's page is mapped and the "clients
    /// changed" interrupt is its).
    Server { slots: Vec<Option<u16>>, open: bool },
}

impl Plan {
    /// The connections for `domains` (domid, functions) in configuration order; `None`
    /// without a Xenstore domain.
    pub fn new(domains: &[(u16, u32)]) -> Option<Plan> {
        let server = domains.iter().find(|d| d.1 & Functions::XENSTORE != 0)?.0;
        let mut clients: Vec<u16> =
            domains.iter().filter(|d| d.0 != server && d.1 & Functions::BOOT == 0).map(|d| d.0).collect();
        let unserved = if clients.len() > MAX_CLIENTS { clients.split_off(MAX_CLIENTS) } else { Vec::new() };
        let mut slots: Vec<Option<u16>> = clients.into_iter().map(Some).collect();
        slots.resize(MAX_CLIENTS, None);
        Some(Plan { server, slots, unserved, open: true })
    }

    /// The clients, in slot order.
    pub fn clients(&self) -> Vec<u16> {
        self.slots.iter().flatten().copied().collect()
    }

    pub fn slot(&self, domid: u16) -> Option<usize> {
        self.slots.iter().position(|&c| c == Some(domid))
    }

    pub fn role(&self, domid: u16) -> Option<Role> {
        if domid == self.server {
            Some(Role::Server { slots: self.slots.clone(), open: self.open })
        } else {
            self.slot(domid).map(|_| Role::Client { server: self.server })
        }
    }

    /// Domain `domid`, created at run time, takes the lowest free slot; `None` when it is
    /// the store, already has one, every slot is taken, or the store is not open.
    pub fn attach(&mut self, domid: u16) -> Option<usize> {
        if !self.open || domid == self.server || self.slot(domid).is_some() {
            return None;
        }
        let k = self.slots.iter().position(Option::is_none)?;
        self.slots[k] = Some(domid);
        Some(k)
    }

    /// Domain `domid` is gone: its slot (if it had one) is free.
    pub fn detach(&mut self, domid: u16) -> Option<usize> {
        let k = self.slot(domid)?;
        self.slots[k] = None;
        Some(k)
    }

    /// Where the store sees slot `k`'s ring.
    pub fn server_ring(k: usize) -> u64 {
        SERVER_RINGS + (k as u64) * 4096
    }

    /// `caller` rings `peer`: the domain to interrupt and the SPI (number from 0) to raise,
    /// or `None` when the two are not connected.
    pub fn doorbell(&self, caller: u16, peer: u16) -> Option<(u16, u32)> {
        if caller == self.server {
            self.slot(peer).map(|_| (peer, CLIENT_SPI))
        } else if peer == self.server {
            self.slot(caller).map(|k| (self.server, SERVER_SPI_BASE + k as u32))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const XS: u32 = Functions::XENSTORE;
    const BOOT: u32 = Functions::BOOT;

    #[test]
    fn everyone_but_the_boot_domain_connects() {
        let p = Plan::new(&[(0x7ff5, BOOT), (1, 0), (2, XS), (3, Functions::CONSOLE)]).unwrap();
        assert_eq!(p.server, 2);
        assert_eq!(p.clients(), [1, 3]);
        assert_eq!(p.slots.len(), MAX_CLIENTS);
        assert_eq!(p.role(1), Some(Role::Client { server: 2 }));
        let Some(Role::Server { slots, open: true }) = p.role(2) else { panic!("DOM2 serves") };
        assert_eq!(slots[..3], [Some(1), Some(3), None]);
        assert_eq!(p.role(0x7ff5), None);
        assert_eq!(Plan::server_ring(1), 0x2400_1000);
        assert!(Plan::new(&[(1, 0), (2, BOOT)]).is_none());
    }

    #[test]
    fn doorbells_only_between_connected_domains() {
        let p = Plan::new(&[(0x7ff5, BOOT), (1, 0), (2, XS), (3, 0)]).unwrap();
        assert_eq!(p.doorbell(1, 2), Some((2, SERVER_SPI_BASE)));
        assert_eq!(p.doorbell(3, 2), Some((2, SERVER_SPI_BASE + 1)));
        assert_eq!(p.doorbell(2, 3), Some((3, CLIENT_SPI)));
        assert_eq!(p.doorbell(1, 3), None, "clients do not ring each other");
        assert_eq!(p.doorbell(2, 0x7ff5), None, "the Boot Domain has no connection");
        assert_eq!(p.doorbell(0x7ff5, 2), None);
        assert_eq!(p.doorbell(2, 2), None);
    }

    #[test]
    fn slots_run_out_after_thirty() {
        let mut ds: Vec<(u16, u32)> = (1..=33).map(|i| (i, 0)).collect();
        ds.push((100, XS));
        let p = Plan::new(&ds).unwrap();
        assert_eq!(p.clients().len(), MAX_CLIENTS);
        assert_eq!(p.unserved, [31, 32, 33]);
        assert_eq!(p.role(31), None);
        let mut p = p;
        assert_eq!(p.attach(31), None, "every slot is taken");
        assert_eq!(p.detach(5), Some(4));
        assert_eq!(p.attach(31), Some(4), "a freed slot is taken again");
        assert!(Plan::server_ring(MAX_CLIENTS - 1) < WINDOW_END);
        assert!(SERVER_SPI_BASE + MAX_CLIENTS as u32 <= 32);
    }

    #[test]
    fn run_time_clients_take_free_slots_and_give_them_back() {
        let mut p = Plan::new(&[(1, XS), (2, 0)]).unwrap();
        assert_eq!(p.attach(1), None, "the store is not its own client");
        assert_eq!(p.attach(2), None, "DOM2 has its slot");
        assert_eq!(p.attach(7), Some(1));
        assert_eq!(p.attach(8), Some(2));
        assert_eq!(p.doorbell(7, 1), Some((1, SERVER_SPI_BASE + 1)));
        assert_eq!(p.doorbell(1, 8), Some((8, CLIENT_SPI)));
        assert_eq!(p.detach(7), Some(1));
        assert_eq!(p.detach(7), None);
        assert_eq!(p.doorbell(7, 1), None, "a detached domain rings no one");
        assert_eq!(p.doorbell(1, 7), None);
        assert_eq!(p.attach(9), Some(1), "the lowest free slot");
        assert_eq!(p.clients(), [2, 9, 8]);
        p.open = false;
        assert_eq!(p.attach(10), None, "a closed store takes no one at run time");
    }
}
