//! Store connections: when a domain has the Xenstore function, every other domain (the
//! Boot Domain aside) gets one shared ring page with it and a doorbell interrupt in each
//! direction. Which domains connect, where the pages appear in each guest, and who may ring
//! whom; the layout inside the page is the store's business (docs/store-rings.md).

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
/// Clients one store serves (the SPIs of a domain's 32).
pub const MAX_CLIENTS: usize = 30;
/// The guest address range the store windows may use.
pub const WINDOW_END: u64 = SERVER_RINGS + (MAX_CLIENTS as u64) * 4096;

/// The store domain and its clients, by slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub server: u16,
    pub clients: Vec<u16>,
    /// Domains left without a connection because the store has no slot left.
    pub unserved: Vec<u16>,
}

/// What a domain's device tree and stage 2 get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// A client: its ring at [`CLIENT_RING`], doorbell SPI [`CLIENT_SPI`].
    Client { server: u16 },
    /// The store: client slot k's ring at `SERVER_RINGS + k * 4096`, its doorbell SPI
    /// `SERVER_SPI_BASE + k`.
    Server { clients: Vec<u16> },
}

impl Plan {
    /// The connections for `domains` (domid, functions) in configuration order; `None`
    /// without a Xenstore domain.
    pub fn new(domains: &[(u16, u32)]) -> Option<Plan> {
        let server = domains.iter().find(|d| d.1 & Functions::XENSTORE != 0)?.0;
        let mut clients: Vec<u16> =
            domains.iter().filter(|d| d.0 != server && d.1 & Functions::BOOT == 0).map(|d| d.0).collect();
        let unserved = if clients.len() > MAX_CLIENTS { clients.split_off(MAX_CLIENTS) } else { Vec::new() };
        Some(Plan { server, clients, unserved })
    }

    pub fn slot(&self, domid: u16) -> Option<usize> {
        self.clients.iter().position(|&c| c == domid)
    }

    pub fn role(&self, domid: u16) -> Option<Role> {
        if domid == self.server {
            Some(Role::Server { clients: self.clients.clone() })
        } else {
            self.slot(domid).map(|_| Role::Client { server: self.server })
        }
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
        assert_eq!(p.clients, [1, 3]);
        assert_eq!(p.role(1), Some(Role::Client { server: 2 }));
        assert_eq!(p.role(2), Some(Role::Server { clients: vec![1, 3] }));
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
        assert_eq!(p.clients.len(), MAX_CLIENTS);
        assert_eq!(p.unserved, [31, 32, 33]);
        assert_eq!(p.role(31), None);
        assert!(Plan::server_ring(MAX_CLIENTS - 1) < WINDOW_END);
        assert!(SERVER_SPI_BASE + MAX_CLIENTS as u32 <= 32);
    }
}
