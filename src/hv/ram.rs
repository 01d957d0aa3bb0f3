//! A domain's RAM: host ranges and where the guest sees them; putting images in place
//! over scrubbed memory.

use alloc::vec::Vec;

use super::machine::{HostMem, Machine};

/// Where bytes to load come from.
#[derive(Clone, Copy)]
pub enum Src<'a> {
    /// Hypervisor memory (a device tree it wrote).
    Bytes(&'a [u8]),
    /// Memory it owns (a boot module).
    Mem(HostMem),
}

impl Src<'_> {
    pub fn len(&self) -> u64 {
        match self {
            Src::Bytes(b) => b.len() as u64,
            Src::Mem(m) => m.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What loading cost.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LoadStats {
    pub copied: u64,
    pub scrub_us: u64,
    pub copy_us: u64,
}

/// A domain's RAM.
#[derive(Debug, Clone)]
pub struct Ram {
    /// (host memory, guest address).
    pub chunks: Vec<(HostMem, u64)>,
    /// Allocated from the frame allocator (static memory is not given back).
    pub owned: bool,
}

impl Ram {
    /// Bytes of RAM.
    pub fn size(&self) -> u64 {
        self.chunks.iter().map(|c| c.0.len()).sum()
    }

    /// Guest RAM banks as the device tree gives them (adjacent chunks merged).
    pub fn banks(&self) -> Vec<(u64, u64)> {
        let mut banks: Vec<(u64, u64)> = Vec::new();
        let mut sorted: Vec<(u64, u64)> = self.chunks.iter().map(|&(m, ipa)| (ipa, m.len())).collect();
        sorted.sort_unstable();
        for (ipa, s) in sorted {
            match banks.last_mut() {
                Some(last) if last.0 + last.1 == ipa => last.1 += s,
                _ => banks.push((ipa, s)),
            }
        }
        banks
    }

    /// The host memory behind guest range `ipa..ipa + len`, when it lies in one chunk.
    pub fn host(&self, ipa: u64, len: u64) -> Option<HostMem> {
        self.chunks.iter().find_map(|&(m, base)| m.sub(ipa.checked_sub(base)?, len))
    }

    /// Copies `src` to guest address `ipa` (it may span chunks that are consecutive in the
    /// guest). False when part of it falls outside the RAM (the part inside is written).
    pub fn write(&self, m: &dyn Machine, mut ipa: u64, src: Src<'_>) -> bool {
        let mut done = 0u64;
        let total = src.len();
        while done < total {
            let Some(&(mem, base)) = self.chunks.iter().find(|c| c.1 <= ipa && ipa - c.1 < c.0.len()) else {
                return false;
            };
            let off = ipa - base;
            let n = (mem.len() - off).min(total - done);
            let Some(dst) = mem.sub(off, n) else { return false };
            match src {
                Src::Bytes(b) => m.write(dst, &b[done as usize..(done + n) as usize]),
                Src::Mem(s) => match s.sub(done, n) {
                    Some(s) => m.copy(dst, s),
                    None => return false,
                },
            }
            done += n;
            ipa += n;
        }
        true
    }

    /// Puts `images` (guest address, bytes) in place over RAM scrubbed everywhere else but
    /// `untouched` (guest address, length: the shared kernel pages).
    pub fn load_images(
        &self,
        m: &dyn Machine,
        images: &[(u64, Src<'_>)],
        untouched: (u64, u64),
    ) -> LoadStats {
        let mut written: Vec<(u64, u64)> = images.iter().map(|&(at, s)| (at, s.len())).collect();
        written.push(untouched);
        let t = m.now_us();
        self.scrub_except(m, &written);
        let scrubbed = m.now_us();
        for &(at, src) in images {
            self.write(m, at, src);
        }
        LoadStats {
            copied: images.iter().map(|i| i.1.len()).sum(),
            scrub_us: scrubbed - t,
            copy_us: m.now_us() - scrubbed,
        }
    }

    /// Zeroes all of it but the `written` (guest address, length) ranges.
    pub fn scrub_except(&self, m: &dyn Machine, written: &[(u64, u64)]) {
        for &(mem, ipa) in &self.chunks {
            for (a, b) in crate::guest::uncovered(ipa, ipa + mem.len(), written) {
                if let Some(part) = mem.sub(a - ipa, b - a) {
                    m.zero(part);
                }
            }
        }
    }
}
