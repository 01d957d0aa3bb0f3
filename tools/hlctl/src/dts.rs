//! Device Tree source → blob, for the subset a domain's configuration uses: `/dts-v1/;`,
//! nodes, properties with no value, strings (lists), cells `<…>` (32-bit, decimal or hex,
//! `/bits/ 64` too), bytes `[…]`, mixed with commas, C and C++ comments, and labels
//! (read and ignored). No `/include/`, references or expressions: a clear error names the
//! line.

use std::fmt;

/// A source error: where and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DtsError {
    pub line: usize,
    pub what: String,
}

impl fmt::Display for DtsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.what)
    }
}

/// A node as parsed: properties (name, value) and children, in source order. A node
/// named twice is merged, as dtc does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub props: Vec<(String, Vec<u8>)>,
    pub children: Vec<Node>,
}

impl Node {
    fn merge(&mut self, other: Node) {
        for (n, v) in other.props {
            match self.props.iter_mut().find(|(m, _)| *m == n) {
                Some(p) => p.1 = v,
                None => self.props.push((n, v)),
            }
        }
        for c in other.children {
            match self.children.iter_mut().find(|d| d.name == c.name) {
                Some(d) => d.merge(c),
                None => self.children.push(c),
            }
        }
    }
}

struct Lexer<'a> {
    s: &'a [u8],
    at: usize,
    line: usize,
}

impl Lexer<'_> {
    fn err<T>(&self, what: impl Into<String>) -> Result<T, DtsError> {
        Err(DtsError { line: self.line, what: what.into() })
    }

    /// Skips blanks and comments.
    fn skip(&mut self) -> Result<(), DtsError> {
        loop {
            match self.s.get(self.at..) {
                Some([b'\n', ..]) => {
                    self.line += 1;
                    self.at += 1;
                }
                Some([c, ..]) if c.is_ascii_whitespace() => self.at += 1,
                Some([b'/', b'/', ..]) => {
                    while self.s.get(self.at).is_some_and(|&c| c != b'\n') {
                        self.at += 1;
                    }
                }
                Some([b'/', b'*', ..]) => {
                    let start = self.line;
                    self.at += 2;
                    loop {
                        match self.s.get(self.at..) {
                            Some([b'*', b'/', ..]) => {
                                self.at += 2;
                                break;
                            }
                            Some([c, ..]) => {
                                if *c == b'\n' {
                                    self.line += 1;
                                }
                                self.at += 1;
                            }
                            _ => return Err(DtsError { line: start, what: "comment not closed".into() }),
                        }
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    fn peek(&mut self) -> Result<Option<u8>, DtsError> {
        self.skip()?;
        Ok(self.s.get(self.at).copied())
    }

    fn eat(&mut self, c: u8) -> Result<bool, DtsError> {
        if self.peek()? == Some(c) {
            self.at += 1;
            return Ok(true);
        }
        Ok(false)
    }

    fn expect(&mut self, c: u8) -> Result<(), DtsError> {
        if !self.eat(c)? {
            let got = self.s.get(self.at).map_or("the end".into(), |&g| format!("'{}'", g as char));
            return self.err(format!("expected '{}', found {got}", c as char));
        }
        Ok(())
    }

    /// A node or property name, a label, `/` (the root) or a `/directive/`.
    fn word(&mut self) -> Result<String, DtsError> {
        self.skip()?;
        let start = self.at;
        if self.s.get(self.at) == Some(&b'/') {
            self.at += 1;
            while self.s.get(self.at).is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'-') {
                self.at += 1;
            }
            if self.at > start + 1 {
                if self.s.get(self.at) != Some(&b'/') {
                    return self.err("a /directive/ not closed by '/'");
                }
                self.at += 1;
            }
        } else {
            let ok = |c: u8| c.is_ascii_alphanumeric() || b",._+-?#@".contains(&c);
            while self.s.get(self.at).is_some_and(|&c| ok(c)) {
                self.at += 1;
            }
        }
        if self.at == start {
            return self.err("expected a name");
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.at]).into_owned())
    }

    fn number(&mut self) -> Result<u64, DtsError> {
        self.skip()?;
        let start = self.at;
        while self.s.get(self.at).is_some_and(|c| c.is_ascii_alphanumeric()) {
            self.at += 1;
        }
        let t = std::str::from_utf8(&self.s[start..self.at]).unwrap_or("");
        let v = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
            Some(h) => u64::from_str_radix(h, 16),
            None => t.parse(),
        };
        match v {
            Ok(v) => Ok(v),
            Err(_) if t.is_empty() => {
                self.err("expected a number (references and expressions are not supported)")
            }
            Err(_) => self.err(format!("'{t}' is not a number")),
        }
    }

    fn string(&mut self) -> Result<Vec<u8>, DtsError> {
        self.expect(b'"')?;
        let mut out = Vec::new();
        loop {
            let Some(&c) = self.s.get(self.at) else { return self.err("string not closed") };
            self.at += 1;
            match c {
                b'"' => break,
                b'\n' => return self.err("string not closed on its line"),
                b'\\' => {
                    let Some(&e) = self.s.get(self.at) else { return self.err("string not closed") };
                    self.at += 1;
                    out.push(match e {
                        b'n' => b'\n',
                        b't' => b'\t',
                        b'0' => 0,
                        other => other,
                    });
                }
                c => out.push(c),
            }
        }
        out.push(0);
        Ok(out)
    }

    /// One value after '=': strings, cell lists, byte lists, separated by commas.
    fn value(&mut self) -> Result<Vec<u8>, DtsError> {
        let mut out = Vec::new();
        loop {
            match self.peek()? {
                Some(b'"') => out.extend(self.string()?),
                Some(b'<') | Some(b'/') => {
                    let mut bits = 32;
                    if self.peek()? == Some(b'/') {
                        let w = self.word()?;
                        if w != "/bits/" {
                            return self.err(format!("'{w}' is not supported in a value"));
                        }
                        bits = self.number()?;
                        if bits != 32 && bits != 64 {
                            return self.err(format!("/bits/ {bits}: 32 or 64 only"));
                        }
                    }
                    self.expect(b'<')?;
                    while !self.eat(b'>')? {
                        let v = self.number()?;
                        if bits == 32 {
                            let v = u32::try_from(v)
                                .or_else(|_| self.err(format!("{v:#x} does not fit 32 bits")))?;
                            out.extend(v.to_be_bytes());
                        } else {
                            out.extend(v.to_be_bytes());
                        }
                    }
                }
                Some(b'[') => {
                    self.at += 1;
                    while !self.eat(b']')? {
                        self.skip()?;
                        let h = self.s.get(self.at..self.at + 2).unwrap_or(b"");
                        let b = std::str::from_utf8(h).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                        match b {
                            Some(b) => out.push(b),
                            None => return self.err("expected two hex digits in a byte list"),
                        }
                        self.at += 2;
                    }
                }
                _ => return self.err("expected a string, <cells> or [bytes]"),
            }
            if !self.eat(b',')? {
                return Ok(out);
            }
        }
    }

    /// The body of a node after its '{', up to and including '};'.
    fn body(&mut self, name: String) -> Result<Node, DtsError> {
        let mut node = Node { name, ..Default::default() };
        loop {
            if self.eat(b'}')? {
                self.expect(b';')?;
                return Ok(node);
            }
            if self.peek()?.is_none() {
                return self.err(format!("node '{}' not closed", node.name));
            }
            let mut w = self.word()?;
            // Labels: `label: name`.
            while self.eat(b':')? {
                w = self.word()?;
            }
            if w.starts_with('/') && w != "/" {
                return self.err(format!("'{w}' is not supported inside a node"));
            }
            if self.eat(b'{')? {
                let child = self.body(w)?;
                node.merge(Node { children: vec![child], ..Default::default() });
            } else if self.eat(b'=')? {
                let v = self.value()?;
                self.expect(b';')?;
                node.merge(Node { props: vec![(w, v)], ..Default::default() });
            } else {
                self.expect(b';')?;
                node.merge(Node { props: vec![(w, Vec::new())], ..Default::default() });
            }
        }
    }
}

/// Parses Device Tree source into its root node.
pub fn parse(src: &str) -> Result<Node, DtsError> {
    let mut lx = Lexer { s: src.as_bytes(), at: 0, line: 1 };
    let mut root = Node::default();
    let mut version = false;
    while lx.peek()?.is_some() {
        let w = lx.word()?;
        match w.as_str() {
            "/dts-v1/" => {
                lx.expect(b';')?;
                version = true;
            }
            "/" => {
                lx.expect(b'{')?;
                let n = lx.body(String::new())?;
                root.merge(n);
            }
            "/memreserve/" | "/include/" | "/plugin/" | "/delete-node/" => {
                return lx.err(format!("{w} is not supported"));
            }
            _ => return lx.err(format!("expected '/ {{' or '/dts-v1/;', found '{w}'")),
        }
    }
    if !version {
        return Err(DtsError { line: 1, what: "no /dts-v1/; header".into() });
    }
    Ok(root)
}

/// Writes `root` as a DTB.
pub fn to_dtb(root: &Node) -> Result<Vec<u8>, String> {
    fn emit(w: &mut vm_fdt::FdtWriter, n: &Node) -> Result<(), vm_fdt::Error> {
        let h = w.begin_node(&n.name)?;
        for (name, v) in &n.props {
            w.property(name, v)?;
        }
        for c in &n.children {
            emit(w, c)?;
        }
        w.end_node(h)
    }
    let mut w = vm_fdt::FdtWriter::new().map_err(|e| e.to_string())?;
    emit(&mut w, root).map_err(|e| e.to_string())?;
    w.finish().map_err(|e| e.to_string())
}

/// A configuration file's bytes as a DTB: a DTB as it is, else Device Tree source.
pub fn compile(bytes: &[u8]) -> Result<Vec<u8>, String> {
    if bytes.starts_with(&[0xd0, 0x0d, 0xfe, 0xed]) {
        return Ok(bytes.to_vec());
    }
    let src =
        std::str::from_utf8(bytes).map_err(|_| "neither a DTB nor UTF-8 Device Tree source".to_string())?;
    let root = parse(src).map_err(|e| e.to_string())?;
    to_dtb(&root)
}
