//! Nodes and properties of a validated Device Tree: paths, children, descendants, values.

use core::fmt;

use super::*;

/// Displays a node's full path.
#[derive(Clone, Copy)]
pub struct NodePath<'a> {
    pub(super) fdt: Fdt<'a>,
    pub(super) node: Node<'a>,
}

impl fmt::Display for NodePath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fdt.write_path(&self.node, f)
    }
}

impl fmt::Debug for NodePath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A node of the tree.
#[derive(Clone, Copy)]
pub struct Node<'a> {
    pub(super) fdt: Fdt<'a>,
    /// Offset of this node's BEGIN_NODE token.
    pub(super) off: usize,
    pub(super) depth: usize,
}

impl fmt::Debug for Node<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Node({})", self.name())
    }
}

impl<'a> Node<'a> {
    /// The tree this node belongs to.
    pub fn fdt(&self) -> Fdt<'a> {
        self.fdt
    }

    /// This node's full path, for messages.
    pub fn path(&self) -> NodePath<'a> {
        self.fdt.path(self)
    }

    /// The full name, unit address included (`memory@40000000`); empty for the root.
    pub fn name(&self) -> &'a str {
        match self.fdt.token(self.off) {
            Ok((Token::Begin(n), _)) => n,
            _ => "",
        }
    }

    /// The name without its unit address.
    pub fn base_name(&self) -> &'a str {
        let n = self.name();
        n.split('@').next().unwrap_or(n)
    }

    /// The unit address part of the name, if any.
    pub fn unit_address(&self) -> Option<&'a str> {
        self.name().split_once('@').map(|(_, a)| a)
    }

    /// Depth below the root (the root is 0).
    pub fn depth(&self) -> usize {
        self.depth
    }

    fn body(&self) -> usize {
        self.fdt.token(self.off).map(|(_, next)| next).unwrap_or(usize::MAX)
    }

    /// This node's properties.
    pub fn properties(&self) -> Properties<'a> {
        Properties { fdt: self.fdt, off: self.body() }
    }

    /// The property called `name`.
    pub fn property(&self, name: &str) -> Option<Property<'a>> {
        self.properties().find(|p| p.name == name)
    }

    /// Direct children, in order.
    pub fn children(&self) -> Children<'a> {
        Children { fdt: self.fdt, off: self.body(), depth: self.depth + 1 }
    }

    /// The child called `name` (exact, else by base name).
    pub fn child(&self, name: &str) -> Option<Node<'a>> {
        self.children().find(|c| c.name() == name).or_else(|| self.children().find(|c| c.base_name() == name))
    }

    /// Every node below this one (not itself), in document order.
    pub fn descendants(&self) -> Descendants<'a> {
        Descendants {
            fdt: self.fdt,
            off: self.off,
            base_depth: self.depth,
            open: 0,
            include_self: false,
            done: false,
        }
    }

    /// True when the `compatible` list holds `value`.
    pub fn is_compatible(&self, value: &str) -> bool {
        self.property("compatible").is_some_and(|p| p.strings().any(|s| s == value))
    }

    /// False only when `status` says the node is disabled (absent means "okay").
    pub fn is_enabled(&self) -> bool {
        match self.property("status").and_then(|p| p.as_str()) {
            None => true,
            Some(s) => s == "okay" || s == "ok",
        }
    }

    /// `#address-cells` of this node (Device Tree default 2).
    pub fn address_cells(&self) -> Option<u32> {
        self.property("#address-cells").map_or(Some(2), |p| p.u32())
    }

    /// `#size-cells` of this node (Device Tree default 1).
    pub fn size_cells(&self) -> Option<u32> {
        self.property("#size-cells").map_or(Some(1), |p| p.u32())
    }
}

/// Iterator over a node's properties.
pub struct Properties<'a> {
    pub(super) fdt: Fdt<'a>,
    pub(super) off: usize,
}

impl<'a> Iterator for Properties<'a> {
    type Item = Property<'a>;
    fn next(&mut self) -> Option<Property<'a>> {
        match self.fdt.token(self.off).ok()? {
            (Token::Prop { name_off, value }, next) => {
                self.off = next;
                Some(Property { name: self.fdt.string(name_off)?, value })
            }
            _ => None,
        }
    }
}

/// Iterator over a node's direct children.
pub struct Children<'a> {
    pub(super) fdt: Fdt<'a>,
    pub(super) off: usize,
    pub(super) depth: usize,
}

impl<'a> Iterator for Children<'a> {
    type Item = Node<'a>;
    fn next(&mut self) -> Option<Node<'a>> {
        // Skip the remaining properties, then expect a child or this node's end.
        let mut nesting = 0usize;
        loop {
            let (tok, next) = self.fdt.token(self.off).ok()?;
            match tok {
                Token::Prop { .. } => self.off = next,
                Token::Begin(_) if nesting == 0 => {
                    let child = Node { fdt: self.fdt, off: self.off, depth: self.depth };
                    // Advance past the child's whole subtree.
                    self.off = next;
                    nesting = 1;
                    loop {
                        let (tok, next) = self.fdt.token(self.off).ok()?;
                        self.off = next;
                        match tok {
                            Token::Begin(_) => nesting += 1,
                            Token::End => {
                                nesting -= 1;
                                if nesting == 0 {
                                    break;
                                }
                            }
                            Token::Prop { .. } => {}
                            Token::Finish => return None,
                        }
                    }
                    return Some(child);
                }
                Token::Begin(_) => nesting += 1,
                Token::End | Token::Finish => return None,
            }
        }
    }
}

/// Depth-first iterator over a subtree.
pub struct Descendants<'a> {
    pub(super) fdt: Fdt<'a>,
    pub(super) off: usize,
    pub(super) base_depth: usize,
    /// How many nodes of the subtree are open at `off`.
    pub(super) open: usize,
    pub(super) include_self: bool,
    pub(super) done: bool,
}

impl<'a> Iterator for Descendants<'a> {
    type Item = Node<'a>;
    fn next(&mut self) -> Option<Node<'a>> {
        while !self.done {
            let Ok((tok, next)) = self.fdt.token(self.off) else {
                self.done = true;
                return None;
            };
            let here = self.off;
            self.off = next;
            match tok {
                Token::Begin(_) => {
                    self.open += 1;
                    if self.open == 1 && !self.include_self {
                        continue;
                    }
                    let depth = self.base_depth + self.open - 1;
                    return Some(Node { fdt: self.fdt, off: here, depth });
                }
                Token::End => {
                    self.open = self.open.saturating_sub(1);
                    self.done = self.open == 0;
                }
                Token::Prop { .. } => {}
                Token::Finish => self.done = true,
            }
        }
        None
    }
}

/// One property: a name and its raw big-endian value.
#[derive(Clone, Copy, Debug)]
pub struct Property<'a> {
    pub name: &'a str,
    pub value: &'a [u8],
}

impl<'a> Property<'a> {
    /// A single u32 cell.
    pub fn u32(&self) -> Option<u32> {
        if self.value.len() == 4 { be32(self.value, 0) } else { None }
    }

    /// One u64 from two cells (or one, widened).
    pub fn u64(&self) -> Option<u64> {
        match self.value.len() {
            4 => be32(self.value, 0).map(u64::from),
            8 => be64(self.value, 0),
            _ => None,
        }
    }

    /// The value as one NUL-terminated string.
    pub fn as_str(&self) -> Option<&'a str> {
        let (last, body) = self.value.split_last()?;
        if *last != 0 || body.contains(&0) {
            return None;
        }
        core::str::from_utf8(body).ok()
    }

    /// The value as a string list (stops at the first malformed entry).
    pub fn strings(self) -> impl Iterator<Item = &'a str> + 'a {
        let v = self.value;
        let body = match v.split_last() {
            Some((0, body)) => body,
            _ => &[][..],
        };
        body.split(|&b| b == 0).map_while(|s| core::str::from_utf8(s).ok())
    }

    /// The value as big-endian u32 cells (None when its length is not a multiple of 4).
    pub fn cells(self) -> Option<impl Iterator<Item = u32> + 'a> {
        if !self.value.len().is_multiple_of(4) {
            return None;
        }
        let v = self.value;
        Some((0..v.len() / 4).filter_map(move |i| be32(v, i * 4)))
    }

    /// The value as (address, size) pairs with the given cell counts. `None` when the
    /// length is not a whole number of pairs or a count is outside 0..=2 (address: 1..=2).
    pub fn reg_pairs(
        self,
        address_cells: u32,
        size_cells: u32,
    ) -> Option<impl Iterator<Item = (u64, u64)> + 'a> {
        if !(1..=2).contains(&address_cells) || size_cells > 2 {
            return None;
        }
        let (ac, sc) = (address_cells as usize, size_cells as usize);
        let stride = (ac + sc) * 4;
        if self.value.is_empty() || !self.value.len().is_multiple_of(stride) {
            return None;
        }
        let v = self.value;
        let read = move |off: usize, cells: usize| -> u64 {
            match cells {
                0 => 0,
                1 => be32(v, off).map_or(0, u64::from),
                _ => be64(v, off).unwrap_or(0),
            }
        };
        Some((0..v.len() / stride).map(move |i| {
            let off = i * stride;
            (read(off, ac), read(off + ac * 4, sc))
        }))
    }
}
