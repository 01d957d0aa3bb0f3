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
    pub fn write(&self, m: &dyn Machine, ipa: u64, src: Src<'_>) -> bool {
        let (spans, whole) = self.spans(ipa, src.len());
        for (dst, done) in spans {
            match src {
                Src::Bytes(b) => m.write(dst, &b[done as usize..(done + dst.len()) as usize]),
                Src::Mem(s) => match s.sub(done, dst.len()) {
                    Some(s) => m.copy(dst, s),
                    None => return false,
                },
            }
        }
        whole
    }

    /// The host memory behind guest range `ipa..ipa + len`, split where the RAM's chunks
    /// are, each piece with its offset into the range; and whether all of it is RAM (else
    /// the pieces stop where the RAM does).
    fn spans(&self, mut ipa: u64, len: u64) -> (Vec<(HostMem, u64)>, bool) {
        let mut out = Vec::new();
        let mut done = 0u64;
        while done < len {
            let Some(&(mem, base)) = self.chunks.iter().find(|c| c.1 <= ipa && ipa - c.1 < c.0.len()) else {
                return (out, false);
            };
            let off = ipa - base;
            let n = (mem.len() - off).min(len - done);
            let Some(dst) = mem.sub(off, n) else { return (out, false) };
            out.push((dst, done));
            done += n;
            ipa += n;
        }
        (out, true)
    }

    /// The (destination, source) pieces of copying `src` to guest address `ipa`, split
    /// where the RAM's chunks are; `None` when part of it falls outside the RAM.
    fn copies(&self, ipa: u64, src: HostMem) -> Option<Vec<(HostMem, HostMem)>> {
        let (spans, whole) = self.spans(ipa, src.len());
        if !whole {
            return None;
        }
        spans.into_iter().map(|(dst, done)| Some((dst, src.sub(done, dst.len())?))).collect()
    }

    /// Puts `images` (guest address, bytes) in place. The rest of the RAM but `untouched`
    /// (guest address, length: the shared kernel pages) is returned to scrub before the
    /// domain first runs ([`Pending`]), on the CPU that will run it: building a domain
    /// does not wait for its RAM to be zeroed. With `defer`, images from memory that stays
    /// (boot modules at the launch and for a restart) are copied then too, not now.
    pub fn load_images(
        &self,
        m: &dyn Machine,
        images: &[(u64, Src<'_>)],
        untouched: (u64, u64),
        defer: bool,
    ) -> (LoadStats, Pending) {
        let mut written: Vec<(u64, u64)> = images.iter().map(|&(at, s)| (at, s.len())).collect();
        written.push(untouched);
        let mut left = Vec::new();
        for &(mem, ipa) in &self.chunks {
            for (a, b) in crate::guest::uncovered(ipa, ipa + mem.len(), &written) {
                left.extend(mem.sub(a - ipa, b - a));
            }
        }
        let t = m.now_us();
        let mut later = Vec::new();
        let mut copied = 0;
        for &(at, src) in images {
            match (defer, src) {
                (true, Src::Mem(s)) if let Some(c) = self.copies(at, s) => later.extend(c),
                _ => {
                    self.write(m, at, src);
                    copied += src.len();
                }
            }
        }
        let stats = LoadStats { copied, copy_us: m.now_us() - t };
        let mut pending = Pending::new(left);
        pending.copies = later;
        (stats, pending)
    }
}

/// A domain's RAM still to be zeroed, and images still to be copied into it, before any
/// vCPU of it runs (host ranges). Whatever the hypervisor writes into that RAM meanwhile
/// (a device tree written again) is taken out of what is to be zeroed with
/// [`Pending::keep`].
#[derive(Debug, Default)]
pub struct Pending {
    left: Vec<HostMem>,
    /// (destination, source) pieces still to copy.
    copies: Vec<(HostMem, HostMem)>,
    /// Bytes zeroed and copied so far, and the time it took (microseconds).
    pub bytes: u64,
    pub copied: u64,
    pub us: u64,
}

/// Zeroed in pieces of this size, the time checked between them.
const PIECE: u64 = 2 << 20;

impl Pending {
    pub fn new(left: Vec<HostMem>) -> Pending {
        Pending { left: left.into_iter().filter(|m| !m.is_empty()).collect(), ..Pending::default() }
    }

    /// Nothing is left to zero or copy.
    pub fn done(&self) -> bool {
        self.left.is_empty() && self.copies.is_empty()
    }

    /// Images are still to be copied from some of `src`.
    pub fn reads_from(&self, src: HostMem) -> bool {
        self.copies.iter().any(|(_, s)| s.start() < src.end() && src.start() < s.end())
    }

    /// Bytes left to zero.
    pub fn left_bytes(&self) -> u64 {
        self.left.iter().map(HostMem::len).sum()
    }

    /// `written` holds what the domain is to see: it is not zeroed afterwards.
    pub fn keep(&mut self, written: HostMem) {
        let mut out = Vec::with_capacity(self.left.len() + 1);
        for &p in &self.left {
            if p.end() <= written.start() || written.end() <= p.start() {
                out.push(p);
                continue;
            }
            if p.start() < written.start() {
                out.extend(p.sub(0, written.start() - p.start()));
            }
            if written.end() < p.end() {
                out.extend(p.at(written.end(), p.end() - written.end()));
            }
        }
        self.left = out;
    }

    /// Makes every copy still to be made now (the zeroing stays pending). Returns the
    /// bytes copied.
    pub fn finish_copies(&mut self, m: &dyn Machine) -> u64 {
        let t = m.now_us();
        let mut n = 0;
        for (dst, src) in core::mem::take(&mut self.copies) {
            m.copy(dst, src);
            n += dst.len();
        }
        self.copied += n;
        self.us += m.now_us().saturating_sub(t);
        n
    }

    /// Copies, then zeroes, pieces of what is left until none is, or `budget_us` has
    /// passed. True when nothing is left.
    pub fn step(&mut self, m: &dyn Machine, budget_us: u64) -> bool {
        let t = m.now_us();
        loop {
            if let Some((dst, src)) = self.copies.pop() {
                let ((d, d_rest), (s, s_rest)) = (piece(dst), piece(src));
                if let (Some(dr), Some(sr)) = (d_rest, s_rest) {
                    self.copies.push((dr, sr));
                }
                m.copy(d, s);
                self.copied += d.len();
            } else if let Some(p) = self.left.pop() {
                let (p, rest) = piece(p);
                self.left.extend(rest);
                m.zero(p);
                self.bytes += p.len();
            } else {
                break;
            }
            if m.now_us().saturating_sub(t) >= budget_us {
                break;
            }
        }
        self.us += m.now_us().saturating_sub(t);
        self.done()
    }
}

/// The first [`PIECE`] bytes of `r` (all of it when shorter), and the rest if any.
fn piece(r: HostMem) -> (HostMem, Option<HostMem>) {
    let n = r.len().min(PIECE);
    (r.sub(0, n).unwrap_or(r), r.sub(n, r.len() - n).filter(|rest| !rest.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn mem(start: u64, len: u64) -> HostMem {
        // SAFETY: a test value; nothing is dereferenced.
        #[allow(unsafe_code)]
        unsafe {
            HostMem::new(start, len)
        }
    }

    #[test]
    fn kept_ranges_leave_what_is_to_scrub() {
        let mut p = Pending::new(vec![mem(0x1000, 0x4000), mem(0x8000, 0x1000), mem(0x9000, 0)]);
        assert_eq!(p.left_bytes(), 0x5000);
        // The middle of the first, the whole second, and nothing of what is not pending.
        p.keep(mem(0x2000, 0x1000));
        p.keep(mem(0x8000, 0x1000));
        p.keep(mem(0x20000, 0x1000));
        assert_eq!(p.left, [mem(0x1000, 0x1000), mem(0x3000, 0x2000)]);
        // Across the end of one range and the start of the next.
        p.keep(mem(0x1800, 0x2000));
        assert_eq!(p.left, [mem(0x1000, 0x800), mem(0x3800, 0x1800)]);
        assert!(!p.done());
    }

    #[test]
    fn an_image_across_chunks_is_copied_in_pieces_of_each() {
        // Guest 0x4000_0000..+8 KiB is host 0x10_0000..; the next 8 KiB is host 0x30_0000...
        let ram = Ram {
            chunks: vec![(mem(0x10_0000, 0x2000), 0x4000_0000), (mem(0x30_0000, 0x2000), 0x4000_2000)],
            owned: true,
        };
        let c = ram.copies(0x4000_1000, mem(0x90_0000, 0x2000)).unwrap();
        assert_eq!(
            c,
            [
                (mem(0x10_1000, 0x1000), mem(0x90_0000, 0x1000)),
                (mem(0x30_0000, 0x1000), mem(0x90_1000, 0x1000))
            ]
        );
        assert_eq!(ram.copies(0x4000_3000, mem(0x90_0000, 0x2000)), None, "past the RAM");
    }
}
