//! The physical console's output queue: whole lines in, bytes out as fast as the UART takes
//! them. Writers never wait for the UART (a slow console cannot stall the CPU that logs, or
//! every CPU waiting for the console's lock); a line that does not fit is dropped whole and
//! counted, and the count is reported in the queue once there is room again. A fixed ring,
//! usable before there is a heap; `\n` is queued as `\r\n`.

use core::fmt;

/// A ring of `N` bytes.
pub struct OutQueue<const N: usize> {
    buf: [u8; N],
    head: usize,
    len: usize,
    /// Where the line being written started (its length before it).
    mark: usize,
    /// The line being written did not fit.
    overflow: bool,
    /// Lines dropped since the last report.
    dropped: u64,
}

impl<const N: usize> Default for OutQueue<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> OutQueue<N> {
    pub const fn new() -> Self {
        OutQueue { buf: [0; N], head: 0, len: 0, mark: 0, overflow: false, dropped: 0 }
    }

    fn push_raw(&mut self, b: u8) {
        if self.len == N {
            self.overflow = true;
            return;
        }
        self.buf[(self.head + self.len) % N] = b;
        self.len += 1;
    }

    /// Queues one byte of the current line (`\n` as `\r\n`).
    pub fn push(&mut self, b: u8) {
        if b == b'\n' {
            self.push_raw(b'\r');
        }
        self.push_raw(b);
    }

    /// Starts a line: a report of dropped lines goes first, if one is due and fits.
    pub fn begin_line(&mut self) {
        if self.dropped > 0 {
            self.mark = self.len;
            self.overflow = false;
            let dropped = self.dropped;
            let _ = fmt::write(
                self,
                format_args!("(HL) console: {dropped} line(s) dropped (output queue full)\n"),
            );
            if self.overflow {
                // No room for the report: this line is dropped too, so that no line shows
                // before the report of those dropped before it.
                self.len = self.mark;
                return;
            }
            self.dropped = 0;
        }
        self.mark = self.len;
        self.overflow = false;
    }

    /// Ends a line: kept whole, or dropped whole if it did not fit (false).
    pub fn end_line(&mut self) -> bool {
        if self.overflow {
            self.len = self.mark;
            self.dropped += 1;
            self.overflow = false;
            return false;
        }
        true
    }

    /// Hands queued bytes to `put` in order until it refuses one (the UART is full) or the
    /// queue is empty. Returns how many it took.
    pub fn drain(&mut self, mut put: impl FnMut(u8) -> bool) -> usize {
        let mut n = 0;
        while self.len > 0 && put(self.buf[self.head]) {
            self.head = (self.head + 1) % N;
            self.len -= 1;
            n += 1;
        }
        n
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn len(&self) -> usize {
        self.len
    }
}

impl<const N: usize> fmt::Write for OutQueue<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            self.push(b);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use core::fmt::Write;

    fn line<const N: usize>(q: &mut OutQueue<N>, s: &str) -> bool {
        q.begin_line();
        let _ = q.write_str(s);
        q.end_line()
    }

    fn all<const N: usize>(q: &mut OutQueue<N>) -> Vec<u8> {
        let mut out = Vec::new();
        q.drain(|b| {
            out.push(b);
            true
        });
        out
    }

    #[test]
    fn lines_go_out_in_order_as_the_uart_takes_them() {
        let mut q = OutQueue::<64>::new();
        assert!(line(&mut q, "DOM1: hello\n"));
        assert!(line(&mut q, "(HL) log\n"));
        let mut out = Vec::new();
        // A UART that takes 5 bytes, then is full.
        let mut room = 5;
        let n = q.drain(|b| {
            if room == 0 {
                return false;
            }
            room -= 1;
            out.push(b);
            true
        });
        assert_eq!((n, &out[..]), (5, &b"DOM1:"[..]));
        out.extend(all(&mut q));
        assert_eq!(out, b"DOM1: hello\r\n(HL) log\r\n");
        assert!(q.is_empty());
    }

    #[test]
    fn the_ring_wraps() {
        let mut q = OutQueue::<16>::new();
        let mut out = Vec::new();
        for i in 0..10 {
            assert!(line(&mut q, "abcdefg\n"), "line {i}");
            out.extend(all(&mut q));
        }
        assert_eq!(out.len(), 90);
        assert!(out.chunks(9).all(|c| c == b"abcdefg\r\n"));
    }

    #[test]
    fn a_full_queue_drops_whole_lines_and_says_so() {
        let mut q = OutQueue::<80>::new();
        assert!(line(&mut q, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n"));
        assert!(line(&mut q, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n"));
        // 64 bytes queued: a third line does not fit; dropped whole, not cut.
        assert!(!line(&mut q, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n"));
        assert_eq!(q.len(), 64);
        assert!(!line(&mut q, "short\n"), "the report (56 bytes) comes first and does not fit");
        let mut out = all(&mut q);
        // Room again: the report, then the line.
        assert!(line(&mut q, "after\n"));
        out.extend(all(&mut q));
        let text = core::str::from_utf8(&out).unwrap();
        assert!(text.ends_with("(HL) console: 2 line(s) dropped (output queue full)\r\nafter\r\n"), "{text}");
        assert_eq!(text.matches('x').count(), 60, "two whole lines of 30");
    }
}
