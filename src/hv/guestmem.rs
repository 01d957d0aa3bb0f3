//! Guest buffers, seen the way the guest sees them (through its stage-2 view: its own RAM,
//! or a boot module's page where a copy-on-write kernel page is still shared), copied once
//! into hypervisor memory before anything looks at them.

use alloc::vec;
use alloc::vec::Vec;

use super::cow::{PAGE, Page};
use super::domain::Domain;
use super::machine::{HostMem, Machine};
use super::ram::Src;

impl Domain {
    /// The pieces (guest address, length) of `ipa..ipa + len`, split at page boundaries,
    /// when all of it is the domain's RAM.
    fn pieces(&self, ipa: u64, len: u64) -> Option<Vec<(u64, u64)>> {
        let end = ipa.checked_add(len)?;
        let mut out = Vec::new();
        let mut at = ipa;
        while at < end {
            let n = (PAGE - (at % PAGE)).min(end - at);
            self.ram.host(at, n)?;
            out.push((at, n));
            at += n;
        }
        Some(out)
    }

    /// Zeroes what is left of its RAM to scrub now: another domain (a link's peer) reaches
    /// it before it first ran.
    fn scrub_all(&self, m: &dyn Machine) {
        let mut s = self.scrub.lock();
        if !s.done() {
            s.step(m, u64::MAX);
        }
    }

    /// Where the guest's bytes at `ipa` (`n` bytes, inside one page) are for reading.
    fn readable(&self, m: &dyn Machine, ipa: u64, n: u64) -> Option<HostMem> {
        if let Some(Page::Shared(module)) = self.cow.as_ref().and_then(|c| c.page(m, &self.ram, ipa)) {
            return module.sub(ipa % PAGE, n);
        }
        self.ram.host(ipa, n)
    }

    /// Copies `len` bytes of the guest's memory at `ipa` into a buffer of the hypervisor's,
    /// once: what is checked afterwards is what is used, whatever the guest's other vCPUs
    /// write meanwhile. `None` when part of it is not the domain's RAM.
    pub fn read_guest(&self, m: &dyn Machine, ipa: u64, len: u64) -> Option<Vec<u8>> {
        let pieces = self.pieces(ipa, len)?;
        self.scrub_all(m);
        let mut buf = vec![0u8; len as usize];
        for (at, n) in pieces {
            let src = self.readable(m, at, n)?;
            let off = (at - ipa) as usize;
            m.read(src, &mut buf[off..off + n as usize]);
        }
        Some(buf)
    }

    /// Writes `src` into the guest's memory at `ipa`; a kernel page it still shares is made
    /// its own first (the module is never written). False, with nothing written, when part
    /// of it is not the domain's RAM.
    pub fn write_guest(&self, m: &dyn Machine, ipa: u64, src: Src<'_>) -> bool {
        let Some(pieces) = self.pieces(ipa, src.len()) else { return false };
        self.scrub_all(m);
        for (at, n) in pieces {
            let own = match self.cow.as_ref().and_then(|c| c.page(m, &self.ram, at)) {
                Some(Page::Shared(_)) => {
                    self.cow.as_ref().and_then(|c| c.make_private(m, &self.ram, at, self.local()))
                }
                _ => None,
            };
            let dst = match own {
                Some(page) => page.sub(at % PAGE, n),
                None => self.ram.host(at, n),
            };
            let Some(dst) = dst else { return false };
            let off = at - ipa;
            match src {
                Src::Bytes(b) => m.write(dst, &b[off as usize..(off + n) as usize]),
                Src::Mem(s) => match s.sub(off, n) {
                    Some(s) => m.copy(dst, s),
                    None => return false,
                },
            }
        }
        true
    }
}
