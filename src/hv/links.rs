//! Network links at run time: each link's two virtio-net ports (`crate::virtio::net`), the
//! guests' memories they copy between, and the virtual interrupts that tell each side.
//! A frame is copied into the peer's RAM only while the peer runs (its lifecycle lock held
//! across the copy, so its memory cannot be reclaimed or rebuilt meanwhile).

use alloc::vec::Vec;

use spin::Mutex;

use super::domain::Domain;
use super::life::State;
use super::machine::Machine;
use super::ram::Src;
use super::system::System;
use crate::virtio::net::{Kind, Link};
use crate::virtio::queue::GuestMem;

/// One link: its ends (domain ids) and its ports.
pub struct NetLink {
    pub ends: [u16; 2],
    pub link: Mutex<Link>,
}

impl NetLink {
    /// Link `k` between `ends`: each port's MAC is 02:48:4c (locally administered, "HL"),
    /// the link's index, and the domain id.
    pub fn new(k: usize, (ends, kind): ([u16; 2], Kind)) -> NetLink {
        let mac = |id: u16| [0x02, 0x48, 0x4c, k as u8, (id >> 8) as u8, id as u8];
        NetLink { ends, link: Mutex::new(Link::new(kind, [mac(ends[0]), mac(ends[1])])) }
    }
}

/// A domain's RAM as the link reaches it (`None`: a peer that is not running: nothing).
struct DomMem<'a> {
    d: Option<&'a Domain>,
    m: &'a dyn Machine,
}

impl GuestMem for DomMem<'_> {
    fn read(&self, ipa: u64, buf: &mut [u8]) -> bool {
        let Some(bytes) = self.d.and_then(|d| d.read_guest(self.m, ipa, buf.len() as u64)) else {
            return false;
        };
        buf.copy_from_slice(&bytes);
        true
    }

    fn write(&self, ipa: u64, data: &[u8]) -> bool {
        self.d.is_some_and(|d| d.write_guest(self.m, ipa, Src::Bytes(data)))
    }
}

impl System {
    /// The interrupt (INTID) of link `k` in domain `domid`: its n-th link has SPI
    /// `VIRTIO_SPI + n`.
    fn link_intid(&self, k: usize, domid: u16) -> u32 {
        let n = self.links.iter().take(k).filter(|l| l.ends.contains(&domid)).count();
        crate::vgic::PRIVATE + crate::guest::VIRTIO_SPI + n as u32
    }

    /// `dom`'s access to the transport of link `k`; returns what a read reads.
    pub fn link_access(&self, dom: &Domain, k: usize, (offset, size): (u64, u8), write: Option<u64>) -> u64 {
        let Some(nl) = self.links.get(k) else { return 0 };
        let Some(side) = nl.ends.iter().position(|&e| e == dom.id) else { return 0 };
        let m = self.m();
        let peer = self.domain(nl.ends[1 - side]);
        let (value, moved, isr) = {
            let life = peer.as_ref().map(|p| p.life());
            let running =
                life.as_ref().is_some_and(|l| matches!(l.state(), State::Running | State::CtlPaused));
            let mine = DomMem { d: Some(dom), m };
            let theirs = DomMem { d: peer.as_deref().filter(|_| running), m };
            let mems: [&dyn GuestMem; 2] = if side == 0 { [&mine, &theirs] } else { [&theirs, &mine] };
            let mut l = nl.link.lock();
            let (value, moved) = l.access(side, (offset, size, write), mems);
            (value, moved, [l.ports[0].t.isr, l.ports[1].t.isr])
        };
        for (s, &line) in isr.iter().enumerate() {
            if let Some(e) = moved.failed[s] {
                let who = if s == side { Some(dom) } else { peer.as_deref() };
                if let Some(d) = who {
                    d.notice(format_args!("link {k}: its virtio device failed (reset it): {e}"));
                }
            }
            if !moved.interrupt[s] {
                continue;
            }
            let d = if s == side { Some(dom) } else { peer.as_deref() };
            if let Some(d) = d {
                let kick = d.vgic.lock().set_level(0, self.link_intid(k, d.id), line != 0);
                d.kick(m, kick);
            }
        }
        value
    }

    /// `domid`'s ports go back to their reset state (it is rebuilt or reclaimed).
    pub(super) fn reset_link_ports(&self, domid: u16) {
        for nl in &self.links {
            if let Some(side) = nl.ends.iter().position(|&e| e == domid) {
                let mut l = nl.link.lock();
                let (kind, mac) = (l.ports[side].kind, l.ports[side].mac);
                l.ports[side] = crate::virtio::net::Port::new(kind, mac);
            }
        }
    }

    /// Frames each link carried and dropped, by link (for the log).
    pub fn link_counts(&self) -> Vec<([u16; 2], [u64; 2], [u64; 2])> {
        self.links
            .iter()
            .map(|nl| {
                let l = nl.link.lock();
                (nl.ends, [l.ports[0].sent, l.ports[1].sent], [l.ports[0].dropped, l.ports[1].dropped])
            })
            .collect()
    }
}
