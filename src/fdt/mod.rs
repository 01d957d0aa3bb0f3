//! A bounds-checked, allocation-free reader for flattened Device Trees (DTB v17).
//!
//! Every accessor returns an error or `None` on malformed input; nothing here can panic or
//! read outside the slice it was given, whatever the bytes are.

use core::fmt;

const FDT_MAGIC: u32 = 0xd00d_feed;
const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;
const FDT_END: u32 = 9;
const HEADER_LEN: usize = 40;
/// Deepest node nesting accepted (Linux uses 64 as well).
pub const MAX_DEPTH: usize = 64;

/// Why a blob is not a usable Device Tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FdtError {
    /// Shorter than its header, or than the size the header gives.
    Truncated,
    /// The magic number is not 0xd00dfeed.
    BadMagic,
    /// A version older than 16 (this reader needs 16 or 17).
    BadVersion,
    /// A header offset or size points outside the blob.
    BadHeader,
    /// The structure block holds an unknown token or ends early, at this byte offset.
    BadStructure(usize),
    /// A property names a string outside the strings block, at this structure offset.
    BadString(usize),
    /// Nodes nest deeper than [`MAX_DEPTH`].
    TooDeep,
}

impl fmt::Display for FdtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FdtError::Truncated => write!(f, "device tree is truncated"),
            FdtError::BadMagic => write!(f, "not a device tree (bad magic)"),
            FdtError::BadVersion => write!(f, "unsupported device tree version"),
            FdtError::BadHeader => write!(f, "device tree header points outside the blob"),
            FdtError::BadStructure(o) => {
                write!(f, "corrupt device tree structure at offset {o:#x}")
            }
            FdtError::BadString(o) => {
                write!(f, "property name outside the strings block at offset {o:#x}")
            }
            FdtError::TooDeep => write!(f, "device tree nodes nest deeper than {MAX_DEPTH}"),
        }
    }
}

/// The big-endian 32-bit word at `off` of `buf`, if it lies inside.
pub(crate) fn be32(buf: &[u8], off: usize) -> Option<u32> {
    let b = buf.get(off..off.checked_add(4)?)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn be64(buf: &[u8], off: usize) -> Option<u64> {
    let b = buf.get(off..off.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Some(u64::from_be_bytes(a))
}

fn align4(x: usize) -> Option<usize> {
    x.checked_add(3).map(|v| v & !3)
}

/// A validated Device Tree blob.
#[derive(Clone, Copy)]
pub struct Fdt<'a> {
    blob: &'a [u8],
    structs: &'a [u8],
    strings: &'a [u8],
    rsvmap_off: usize,
}

/// One token of the structure block, with the offset of the token after it.
#[derive(Clone, Copy, Debug)]
enum Token<'a> {
    Begin(&'a str),
    End,
    Prop { name_off: usize, value: &'a [u8] },
    Finish,
}

impl<'a> Fdt<'a> {
    /// Reads the header of a blob and checks that its blocks lie inside it. Bytes past
    /// the header's `totalsize` are ignored.
    pub fn new(blob: &'a [u8]) -> Result<Self, FdtError> {
        if blob.len() < HEADER_LEN {
            return Err(FdtError::Truncated);
        }
        let h = |i: usize| be32(blob, i * 4).map(|v| v as usize).ok_or(FdtError::Truncated);
        if h(0)? as u32 != FDT_MAGIC {
            return Err(FdtError::BadMagic);
        }
        let total = h(1)?;
        if total > blob.len() {
            return Err(FdtError::Truncated);
        }
        if h(5)? < 16 {
            return Err(FdtError::BadVersion);
        }
        let blob = &blob[..total];
        let (off_struct, off_strings, off_rsv) = (h(2)?, h(3)?, h(4)?);
        let (size_strings, size_struct) = (h(8)?, h(9)?);
        let structs = off_struct
            .checked_add(size_struct)
            .and_then(|end| blob.get(off_struct..end))
            .ok_or(FdtError::BadHeader)?;
        let strings = off_strings
            .checked_add(size_strings)
            .and_then(|end| blob.get(off_strings..end))
            .ok_or(FdtError::BadHeader)?;
        if off_rsv % 8 != 0 || off_rsv >= total || off_struct % 4 != 0 {
            return Err(FdtError::BadHeader);
        }
        let fdt = Fdt { blob, structs, strings, rsvmap_off: off_rsv };
        fdt.check_structure()?;
        Ok(fdt)
    }

    /// The size the header declares (the whole blob).
    pub fn total_size(&self) -> usize {
        self.blob.len()
    }

    /// Reads just the `totalsize` field of a header (at least 8 bytes), to learn how much
    /// memory a blob in memory spans before reading it whole.
    pub fn peek_total_size(header: &[u8]) -> Result<usize, FdtError> {
        if be32(header, 0).ok_or(FdtError::Truncated)? != FDT_MAGIC {
            return Err(FdtError::BadMagic);
        }
        be32(header, 4).map(|v| v as usize).ok_or(FdtError::Truncated)
    }

    /// The `/memreserve/` entries: (address, size), stopping at the terminating empty one.
    pub fn mem_reservations(&self) -> impl Iterator<Item = (u64, u64)> + 'a {
        let blob = self.blob;
        let mut off = self.rsvmap_off;
        core::iter::from_fn(move || {
            let addr = be64(blob, off)?;
            let size = be64(blob, off + 8)?;
            if addr == 0 && size == 0 {
                return None;
            }
            off += 16;
            Some((addr, size))
        })
    }

    fn token(&self, off: usize) -> Result<(Token<'a>, usize), FdtError> {
        let bad = FdtError::BadStructure(off);
        let mut off = off;
        loop {
            let tok = be32(self.structs, off).ok_or(bad)?;
            let body = off + 4;
            match tok {
                FDT_NOP => off = body,
                FDT_BEGIN_NODE => {
                    let rest = self.structs.get(body..).ok_or(bad)?;
                    let len = rest.iter().position(|&b| b == 0).ok_or(bad)?;
                    let name = core::str::from_utf8(&rest[..len]).map_err(|_| bad)?;
                    let next = align4(body + len + 1).ok_or(bad)?;
                    return Ok((Token::Begin(name), next));
                }
                FDT_END_NODE => return Ok((Token::End, body)),
                FDT_PROP => {
                    let len = be32(self.structs, body).ok_or(bad)? as usize;
                    let name_off = be32(self.structs, body + 4).ok_or(bad)? as usize;
                    let start = body + 8;
                    let end = start.checked_add(len).ok_or(bad)?;
                    let value = self.structs.get(start..end).ok_or(bad)?;
                    if name_off >= self.strings.len() {
                        return Err(FdtError::BadString(off));
                    }
                    return Ok((Token::Prop { name_off, value }, align4(end).ok_or(bad)?));
                }
                FDT_END => return Ok((Token::Finish, body)),
                _ => return Err(bad),
            }
        }
    }

    /// Walks the whole structure block once, so that later walks can trust its shape.
    fn check_structure(&self) -> Result<(), FdtError> {
        let mut off = 0;
        let mut depth = 0usize;
        let mut seen_root = false;
        loop {
            let (tok, next) = self.token(off)?;
            match tok {
                Token::Begin(_) => {
                    if depth == 0 && seen_root {
                        return Err(FdtError::BadStructure(off));
                    }
                    seen_root = true;
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return Err(FdtError::TooDeep);
                    }
                }
                Token::End => {
                    depth = depth.checked_sub(1).ok_or(FdtError::BadStructure(off))?;
                }
                Token::Prop { name_off, .. } => {
                    if depth == 0 {
                        return Err(FdtError::BadStructure(off));
                    }
                    self.string(name_off).ok_or(FdtError::BadString(off))?;
                }
                Token::Finish => {
                    return if depth == 0 && seen_root { Ok(()) } else { Err(FdtError::BadStructure(off)) };
                }
            }
            off = next;
        }
    }

    fn string(&self, off: usize) -> Option<&'a str> {
        let rest = self.strings.get(off..)?;
        let len = rest.iter().position(|&b| b == 0)?;
        core::str::from_utf8(&rest[..len]).ok()
    }

    /// The root node.
    pub fn root(&self) -> Node<'a> {
        // check_structure proved that a root node opens the block (after NOPs).
        let mut off = 0;
        while be32(self.structs, off) == Some(FDT_NOP) {
            off += 4;
        }
        Node { fdt: *self, off, depth: 0 }
    }

    /// The node at an absolute path such as `/chosen/hypervisor`. A path component without
    /// a unit address matches a node name with one only when no exact match exists.
    pub fn find(&self, path: &str) -> Option<Node<'a>> {
        let mut node = self.root();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            node = node.child(part)?;
        }
        Some(node)
    }

    /// Resolves an alias (from `/aliases`) or an absolute path.
    pub fn resolve(&self, path_or_alias: &str) -> Option<Node<'a>> {
        if path_or_alias.starts_with('/') {
            return self.find(path_or_alias);
        }
        let target = self.find("/aliases")?.property(path_or_alias)?.as_str()?;
        if target.starts_with('/') { self.find(target) } else { None }
    }

    /// Every node of the tree in document order.
    pub fn all_nodes(&self) -> Descendants<'a> {
        let root = self.root();
        Descendants { fdt: *self, off: root.off, base_depth: 0, open: 0, include_self: true, done: false }
    }

    /// The chain of nodes from the root down to `node`'s parent (root first).
    fn ancestors(&self, node: &Node<'a>) -> ([usize; MAX_DEPTH], usize) {
        let mut stack = [0usize; MAX_DEPTH];
        let mut len = 0;
        let mut off = self.root().off;
        while let Ok((tok, next)) = self.token(off) {
            match tok {
                Token::Begin(_) => {
                    if off == node.off {
                        return (stack, len);
                    }
                    if len == MAX_DEPTH {
                        break;
                    }
                    stack[len] = off;
                    len += 1;
                }
                Token::End => len = len.saturating_sub(1),
                Token::Prop { .. } => {}
                Token::Finish => break,
            }
            off = next;
        }
        (stack, 0)
    }

    /// The parent of a node (`None` for the root).
    pub fn parent(&self, node: &Node<'a>) -> Option<Node<'a>> {
        let (stack, len) = self.ancestors(node);
        let off = *stack.get(len.checked_sub(1)?)?;
        Some(Node { fdt: *self, off, depth: len - 1 })
    }

    /// Translates an address in `node`'s `reg` space to a CPU physical address through the
    /// `ranges` of its ancestors. `None` when some ancestor's `ranges` does not cover it
    /// or is malformed.
    pub fn translate(&self, node: &Node<'a>, addr: u64) -> Option<u64> {
        let (stack, len) = self.ancestors(node);
        let mut addr = addr;
        // The bus the address lives on is the parent; walk upwards from it.
        for i in (1..len).rev() {
            let bus = Node { fdt: *self, off: stack[i], depth: i };
            let up = Node { fdt: *self, off: stack[i - 1], depth: i - 1 };
            let ranges = bus.property("ranges")?;
            if ranges.value.is_empty() {
                continue; // identity
            }
            let (ca, pa, cs) = (bus.address_cells()?, up.address_cells()?, bus.size_cells()?);
            let stride = ((ca + pa + cs) * 4) as usize;
            if !(1..=2).contains(&ca) || !(1..=2).contains(&pa) || !(1..=2).contains(&cs) {
                return None;
            }
            if ranges.value.len() % stride != 0 {
                return None;
            }
            let read = |off: usize, cells: u32| -> Option<u64> {
                if cells == 1 { be32(ranges.value, off).map(u64::from) } else { be64(ranges.value, off) }
            };
            let mut found = None;
            for e in 0..ranges.value.len() / stride {
                let o = e * stride;
                let child = read(o, ca)?;
                let parent = read(o + ca as usize * 4, pa)?;
                let size = read(o + (ca + pa) as usize * 4, cs)?;
                if addr >= child && addr - child < size {
                    found = Some(parent.checked_add(addr - child)?);
                    break;
                }
            }
            addr = found?;
        }
        Some(addr)
    }

    /// The `reg` entries of a node as CPU physical (address, size) pairs, using its parent's
    /// cell counts and translating through `ranges`. `None` when malformed or untranslatable.
    pub fn reg(&self, node: &Node<'a>) -> Option<impl Iterator<Item = (u64, u64)> + use<'a>> {
        let parent = self.parent(node)?;
        let prop = node.property("reg")?;
        let pairs = prop.reg_pairs(parent.address_cells()?, parent.size_cells()?)?;
        let fdt = *self;
        let node = *node;
        // Check every entry translates before handing out the iterator.
        let mut ok = true;
        for (a, _) in prop.reg_pairs(parent.address_cells()?, parent.size_cells()?)? {
            ok &= fdt.translate(&node, a).is_some();
        }
        ok.then(|| pairs.map(move |(a, s)| (fdt.translate(&node, a).unwrap_or(a), s)))
    }

    /// Writes the full path of a node (`/chosen/hypervisor/domain@1`).
    pub fn write_path(&self, node: &Node<'a>, out: &mut dyn fmt::Write) -> fmt::Result {
        let (stack, len) = self.ancestors(node);
        if len == 0 {
            return out.write_str("/");
        }
        for &off in &stack[1..len] {
            let n = Node { fdt: *self, off, depth: 0 };
            write!(out, "/{}", n.name())?;
        }
        write!(out, "/{}", node.name())
    }

    /// A displayable path of a node.
    pub fn path(&self, node: &Node<'a>) -> NodePath<'a> {
        NodePath { fdt: *self, node: *node }
    }

    /// The node whose `phandle` (or legacy `linux,phandle`) is `ph`.
    pub fn by_phandle(&self, ph: u32) -> Option<Node<'a>> {
        self.all_nodes().find(|n| {
            n.property("phandle").or_else(|| n.property("linux,phandle")).and_then(|p| p.u32()) == Some(ph)
        })
    }
}

mod node;
#[cfg(test)]
mod tests;

pub use node::{Children, Descendants, Node, NodePath, Properties, Property};
