//! The store's connections at run time: doorbells between the store and a client, and the
//! slots domains created at run time take and destroyed ones give back (`crate::store`
//! decides which slot; this joins it to ring pages and interrupts).

use log::info;

use super::assign::StoreLink;
use super::domain::Domain;
use super::system::System;
use crate::hypercall as hc;
use crate::store::{self, Role};

type Ret = [u64; 4];

fn ret(x0: i64) -> Ret {
    [x0 as u64, 0, 0, 0]
}

impl System {
    /// HL_STORE_NOTIFY: `dom` rings the other end of its store connection with `domid`.
    pub(super) fn hc_store_notify(&self, dom: &Domain, domid: u16) -> Ret {
        let Some((peer, spi)) = self.store.as_ref().and_then(|p| p.lock().doorbell(dom.id, domid)) else {
            dom.notice(format_args!(
                "store doorbell to DOM{domid} refused: no store connection between them"
            ));
            return ret(hc::INVALID);
        };
        if let Some(d) = self.domain(peer) {
            d.raise(self.m(), crate::vgic::PRIVATE + spi);
        }
        ret(hc::SUCCESS)
    }

    /// HL_STORE_CLIENT: which domain holds slot `slot` (the store domain only).
    pub(super) fn hc_store_client(&self, dom: &Domain, slot: u64) -> Ret {
        let Some(plan) = self.store.as_ref() else {
            dom.notice(format_args!("store slot query refused: there is no store domain"));
            return ret(hc::DENIED);
        };
        let plan = plan.lock();
        if plan.server != dom.id {
            drop(plan);
            dom.notice(format_args!("store slot query refused: only the store domain asks"));
            return ret(hc::DENIED);
        }
        match usize::try_from(slot).ok().and_then(|k| plan.slots.get(k)) {
            Some(c) => [hc::SUCCESS as u64, c.map_or(hc::STORE_SLOT_FREE, u64::from), 0, 0],
            None => {
                let n = plan.slots.len();
                drop(plan);
                dom.notice(format_args!("store slot query refused: no slot {slot} (there are {n})"));
                ret(hc::INVALID)
            }
        }
    }

    /// Domain `domid`, about to be created, takes a free store slot: its ring page is
    /// zeroed and the connection returned for the build to map. `None` without a store or
    /// a free slot.
    pub(super) fn store_attach(&self, domid: u16) -> Option<StoreLink> {
        let mut plan = self.store.as_ref()?.lock();
        let k = plan.attach(domid)?;
        let Some(&page) = self.store_rings.get(k) else {
            plan.detach(domid);
            return None;
        };
        // The store may write the page at any time; what the new client finds is zero
        // unless the store wrote after this (it learns of the client only later).
        self.m().zero(page);
        Some(StoreLink {
            role: Role::Client { server: plan.server },
            pages: alloc::vec![(store::CLIENT_RING, page.start())],
        })
    }

    /// Domain `domid` is gone (or was never made): its slot is free. With `tell`, the
    /// store domain's "clients changed" interrupt is raised.
    pub(super) fn store_detach(&self, domid: u16, tell: bool) {
        let Some(plan) = self.store.as_ref() else { return };
        let (k, server) = {
            let mut p = plan.lock();
            (p.detach(domid), p.server)
        };
        if let Some(k) = k {
            info!("store: DOM{domid} left slot {k}");
            if tell {
                self.store_changed(server);
            }
        }
    }

    /// Domain `domid` was created: if it holds a slot, the store domain is told.
    pub(super) fn store_joined(&self, domid: u16) {
        let Some(plan) = self.store.as_ref() else { return };
        let (k, server) = {
            let p = plan.lock();
            (p.slot(domid), p.server)
        };
        if let Some(k) = k {
            info!("store: DOM{domid} took slot {k}");
            self.store_changed(server);
        }
    }

    /// Raises the store domain's "clients changed" interrupt.
    fn store_changed(&self, server: u16) {
        if let Some(d) = self.domain(server) {
            d.raise(self.m(), crate::vgic::PRIVATE + store::CHANGED_SPI);
        }
    }

    /// The store domain's id, when there is one.
    pub(super) fn store_server(&self) -> Option<u16> {
        self.store.as_ref().map(|p| p.lock().server)
    }
}
