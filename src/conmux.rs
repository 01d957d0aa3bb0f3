//! The console multiplexer: every domain's virtual UART output onto the one physical
//! console as whole `DOMn: ` lines (a partial line, such as a shell prompt, is written
//! after a quiet time), with a per-domain output budget so that a flooding domain loses
//! its own bytes (counted and reported) instead of stalling the others; and physical input
//! to one domain at a time, Ctrl-A three times moving it to the next.

use alloc::vec::Vec;

use crate::vuart::LineBuffer;

/// A partial line is written out after this long without output (µs).
pub const QUIET_US: u64 = 100_000;
/// Output budget per domain and window: bytes beyond it are dropped and counted.
pub const BUDGET_BYTES: usize = 64 * 1024;
/// Length of a budget window (µs).
pub const WINDOW_US: u64 = 1_000_000;
/// The switch key: Ctrl-A.
pub const CTRL_A: u8 = 0x01;

/// Something to write on the physical console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Emit {
    /// A line (or a partial line after a quiet time) of a domain's output.
    Line { domid: u16, bytes: Vec<u8> },
    /// A domain's output beyond its budget was dropped.
    Dropped { domid: u16, bytes: u64 },
}

/// A domain's line as the console shows it: printable text (well-formed UTF-8) and tabs as
/// they are; every control character (the C0 set but tab, DEL, the C1 set) and every byte
/// of malformed UTF-8 as `\xNN`. No guest can move the terminal's cursor, forge a `(HL)` or
/// `DOMn:` line, or make the terminal answer a query into the console domain's input.
pub fn shown(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let escape = |out: &mut Vec<u8>, b: u8| {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        out.extend_from_slice(&[b'\\', b'x', HEX[(b >> 4) as usize], HEX[(b & 0xf) as usize]]);
    };
    for chunk in raw.utf8_chunks() {
        for c in chunk.valid().chars() {
            let mut buf = [0u8; 4];
            let bytes = c.encode_utf8(&mut buf).as_bytes();
            if c.is_control() && c != '\t' {
                bytes.iter().for_each(|&b| escape(&mut out, b));
            } else {
                out.extend_from_slice(bytes);
            }
        }
        chunk.invalid().iter().for_each(|&b| escape(&mut out, b));
    }
    out
}

/// What an input byte does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// Deliver the byte to this domain's UART.
    Deliver { domid: u16, byte: u8 },
    /// Input now goes to this domain.
    Switched { domid: u16 },
    /// Nobody takes input.
    Dropped,
}

struct Out {
    domid: u16,
    line: LineBuffer,
    last_us: u64,
    window_start: u64,
    window_bytes: usize,
    dropped: u64,
}

/// The multiplexer.
pub struct Mux {
    outs: Vec<Out>,
    target: Option<usize>,
    switching: bool,
    ctrl_a: u8,
}

impl Out {
    fn new(domid: u16) -> Out {
        Out { domid, line: LineBuffer::new(), last_us: 0, window_start: 0, window_bytes: 0, dropped: 0 }
    }
}

impl Mux {
    /// `domids`: the domains with a virtual UART, in configuration order; `console`: the
    /// one that gets input first.
    pub fn new(domids: &[u16], console: Option<u16>, switching: bool) -> Mux {
        let outs: Vec<Out> = domids.iter().map(|&domid| Out::new(domid)).collect();
        let target = console.and_then(|c| outs.iter().position(|o| o.domid == c));
        Mux { outs, target, switching, ctrl_a: 0 }
    }

    /// The domain that receives input.
    pub fn target(&self) -> Option<u16> {
        self.target.map(|i| self.outs[i].domid)
    }

    /// Makes `domid` the input target (e.g. the Boot Domain while it runs).
    pub fn set_target(&mut self, domid: u16) {
        if let Some(i) = self.outs.iter().position(|o| o.domid == domid) {
            self.target = Some(i);
        }
    }

    /// One byte of a domain's output at time `now` (µs).
    pub fn output(&mut self, domid: u16, byte: u8, now: u64, out: &mut Vec<Emit>) {
        let Some(o) = self.outs.iter_mut().find(|o| o.domid == domid) else { return };
        if now.saturating_sub(o.window_start) >= WINDOW_US {
            if o.dropped > 0 {
                out.push(Emit::Dropped { domid, bytes: o.dropped });
                o.dropped = 0;
            }
            o.window_start = now;
            o.window_bytes = 0;
        }
        if o.window_bytes >= BUDGET_BYTES {
            o.dropped += 1;
            return;
        }
        o.window_bytes += 1;
        o.last_us = now;
        if let Some(bytes) = o.line.push(byte) {
            out.push(Emit::Line { domid, bytes: shown(&bytes) });
        }
    }

    /// Partial lines quiet for [`QUIET_US`] at `now`, and drop reports due.
    pub fn flush_quiet(&mut self, now: u64, out: &mut Vec<Emit>) {
        for o in &mut self.outs {
            if !o.line.is_empty() && now.saturating_sub(o.last_us) >= QUIET_US {
                out.push(Emit::Line { domid: o.domid, bytes: shown(&o.line.take()) });
            }
            if o.dropped > 0 && now.saturating_sub(o.window_start) >= WINDOW_US {
                out.push(Emit::Dropped { domid: o.domid, bytes: o.dropped });
                o.dropped = 0;
            }
        }
    }

    /// Everything a domain still holds (when it stops).
    pub fn flush_domain(&mut self, domid: u16, out: &mut Vec<Emit>) {
        if let Some(o) = self.outs.iter_mut().find(|o| o.domid == domid) {
            if !o.line.is_empty() {
                out.push(Emit::Line { domid, bytes: shown(&o.line.take()) });
            }
            if o.dropped > 0 {
                out.push(Emit::Dropped { domid, bytes: o.dropped });
                o.dropped = 0;
            }
        }
    }

    /// When the next partial line or drop report falls due, if any.
    pub fn next_deadline(&self) -> Option<u64> {
        self.outs
            .iter()
            .filter_map(|o| {
                let line = (!o.line.is_empty()).then_some(o.last_us + QUIET_US);
                let drop = (o.dropped > 0).then_some(o.window_start + WINDOW_US);
                line.into_iter().chain(drop).min()
            })
            .min()
    }

    /// Puts a restarted domain back (at the end of the input rotation).
    pub fn add(&mut self, domid: u16) {
        if self.outs.iter().any(|o| o.domid == domid) {
            return;
        }
        self.outs.push(Out::new(domid));
        if self.target.is_none() {
            self.target = Some(self.outs.len() - 1);
        }
    }

    /// Removes a stopped domain from input rotation (its output was flushed).
    pub fn remove(&mut self, domid: u16) {
        let Some(i) = self.outs.iter().position(|o| o.domid == domid) else { return };
        self.outs.remove(i);
        self.target = match self.target {
            Some(t) if t == i => (!self.outs.is_empty()).then(|| i % self.outs.len()),
            Some(t) if t > i => Some(t - 1),
            t => t,
        };
    }

    /// One byte typed on the physical console.
    pub fn input(&mut self, byte: u8, out: &mut Vec<Input>) {
        let Some(t) = self.target else {
            out.push(Input::Dropped);
            return;
        };
        if self.switching && byte == CTRL_A {
            self.ctrl_a += 1;
            if self.ctrl_a == 3 {
                self.ctrl_a = 0;
                let next = (t + 1) % self.outs.len();
                self.target = Some(next);
                out.push(Input::Switched { domid: self.outs[next].domid });
            }
            return;
        }
        let domid = self.outs[t].domid;
        // One or two Ctrl-As that did not make a switch belong to the domain.
        for _ in 0..core::mem::take(&mut self.ctrl_a) {
            out.push(Input::Deliver { domid, byte: CTRL_A });
        }
        out.push(Input::Deliver { domid, byte });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(m: &mut Mux, domid: u16, s: &[u8], now: u64) -> Vec<Emit> {
        let mut out = Vec::new();
        for &b in s {
            m.output(domid, b, now, &mut out);
        }
        out
    }

    fn line(domid: u16, s: &str) -> Emit {
        Emit::Line { domid, bytes: s.as_bytes().to_vec() }
    }

    #[test]
    fn lines_are_whole_and_prefixed_by_domain() {
        let mut m = Mux::new(&[1, 2], Some(1), true);
        // Two domains writing at once: each line comes out whole.
        assert_eq!(feed(&mut m, 1, b"hel", 0), vec![]);
        assert_eq!(feed(&mut m, 2, b"wor", 0), vec![]);
        assert_eq!(feed(&mut m, 1, b"lo\n", 1), vec![line(1, "hello")]);
        assert_eq!(feed(&mut m, 2, b"ld\r\n", 1), vec![line(2, "world")]);
    }

    #[test]
    fn control_characters_are_shown_escaped() {
        // A cursor move and a forged hypervisor line, a terminal query, NUL and DEL.
        assert_eq!(shown(b"\x1b[1A\x1b[2K(HL) FATAL: forged"), b"\\x1b[1A\\x1b[2K(HL) FATAL: forged");
        assert_eq!(shown(b"a\x1b[6nb\x00\x7f"), b"a\\x1b[6nb\\x00\\x7f");
        // Tabs, backspaces and bells: tab kept, the others escaped.
        assert_eq!(shown(b"a\tb\x08\x07"), b"a\tb\\x08\\x07");
        // UTF-8 text as it is; the C1 CSI raw (malformed UTF-8) or encoded, escaped.
        assert_eq!(shown("25 \u{b5}s \u{2713}".as_bytes()), "25 \u{b5}s \u{2713}".as_bytes());
        assert_eq!(shown(b"x\x9b2Jy"), b"x\\x9b2Jy");
        assert_eq!(shown("x\u{9b}y".as_bytes()), b"x\\xc2\\x9by");
        // Through the multiplexer: the line written is the escaped one.
        let mut m = Mux::new(&[1], Some(1), true);
        assert_eq!(feed(&mut m, 1, b"\x1b]0;title\x07ok\n", 0), [line(1, "\\x1b]0;title\\x07ok")]);
    }

    #[test]
    fn partial_line_flushed_after_quiet_time() {
        let mut m = Mux::new(&[1], Some(1), true);
        feed(&mut m, 1, b"# ", 1000);
        assert_eq!(m.next_deadline(), Some(1000 + QUIET_US));
        let mut out = Vec::new();
        m.flush_quiet(1000 + QUIET_US - 1, &mut out);
        assert!(out.is_empty());
        m.flush_quiet(1000 + QUIET_US, &mut out);
        assert_eq!(out, vec![line(1, "# ")]);
        assert_eq!(m.next_deadline(), None);
    }

    #[test]
    fn flooding_domain_loses_only_its_own_output() {
        let mut m = Mux::new(&[1, 2], Some(1), true);
        let flood = alloc::vec![b'x'; BUDGET_BYTES + 500];
        let emitted = feed(&mut m, 1, &flood, 10);
        let kept: usize =
            emitted.iter().map(|e| if let Emit::Line { bytes, .. } = e { bytes.len() } else { 0 }).sum();
        assert_eq!(kept, BUDGET_BYTES - BUDGET_BYTES % MAX_LINE_FOR_TEST);
        // The other domain is unaffected.
        assert_eq!(feed(&mut m, 2, b"ok\n", 11), vec![line(2, "ok")]);
        // The drop is reported when the window ends.
        let mut out = Vec::new();
        m.flush_quiet(10 + WINDOW_US, &mut out);
        assert!(out.contains(&Emit::Dropped { domid: 1, bytes: 500 }), "{out:?}");
    }

    const MAX_LINE_FOR_TEST: usize = crate::vuart::MAX_LINE;

    #[test]
    fn ctrl_a_three_times_switches_input() {
        let mut m = Mux::new(&[1, 2, 3], Some(2), true);
        let mut out = Vec::new();
        m.input(b'a', &mut out);
        for _ in 0..3 {
            m.input(CTRL_A, &mut out);
        }
        m.input(b'b', &mut out);
        assert_eq!(
            out,
            vec![
                Input::Deliver { domid: 2, byte: b'a' },
                Input::Switched { domid: 3 },
                Input::Deliver { domid: 3, byte: b'b' }
            ]
        );
        out.clear();
        // Wraps around; two Ctrl-As followed by a key reach the domain.
        for _ in 0..3 {
            m.input(CTRL_A, &mut out);
        }
        m.input(CTRL_A, &mut out);
        m.input(CTRL_A, &mut out);
        m.input(b'c', &mut out);
        assert_eq!(
            out,
            vec![
                Input::Switched { domid: 1 },
                Input::Deliver { domid: 1, byte: CTRL_A },
                Input::Deliver { domid: 1, byte: CTRL_A },
                Input::Deliver { domid: 1, byte: b'c' }
            ]
        );
    }

    #[test]
    fn switching_disabled_passes_ctrl_a_through() {
        let mut m = Mux::new(&[1, 2], Some(1), false);
        let mut out = Vec::new();
        for _ in 0..3 {
            m.input(CTRL_A, &mut out);
        }
        assert_eq!(out, vec![Input::Deliver { domid: 1, byte: CTRL_A }; 3]);
        assert_eq!(m.target(), Some(1));
    }

    #[test]
    fn stopped_domains_leave_the_rotation() {
        let mut m = Mux::new(&[1, 2, 3], Some(2), true);
        m.remove(2);
        assert_eq!(m.target(), Some(3));
        m.remove(1);
        assert_eq!(m.target(), Some(3));
        m.remove(3);
        assert_eq!(m.target(), None);
        let mut out = Vec::new();
        m.input(b'x', &mut out);
        assert_eq!(out, vec![Input::Dropped]);
    }

    #[test]
    fn a_restarted_domain_rejoins_the_rotation() {
        let mut m = Mux::new(&[1, 2], Some(1), true);
        m.remove(1);
        m.remove(2);
        let mut out = Vec::new();
        m.input(b'x', &mut out);
        assert_eq!(out, [Input::Dropped]);
        m.add(2);
        m.add(2);
        out.clear();
        m.input(b'y', &mut out);
        assert_eq!(out, [Input::Deliver { domid: 2, byte: b'y' }]);
        let mut emits = Vec::new();
        m.output(2, b'a', 0, &mut emits);
        m.output(2, b'\n', 0, &mut emits);
        assert_eq!(emits.len(), 1);
    }
}
