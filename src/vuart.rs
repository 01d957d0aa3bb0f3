//! The domains' virtual UART, transmit side: register reads a polling driver needs, and
//! the line buffer that turns a domain's bytes into whole `DOMn: ` lines.

use alloc::vec::Vec;

/// PL011 register offsets.
pub const DR: u64 = 0x000;
pub const FR: u64 = 0x018;
/// FR: transmit FIFO empty, receive FIFO empty.
pub const FR_TXFE: u32 = 1 << 7;
pub const FR_RXFE: u32 = 1 << 4;

/// The value a guest reads at `offset` (transmit always ready, nothing to receive;
/// peripheral and PrimeCell ID registers of a PL011).
pub fn read(offset: u64) -> u32 {
    match offset {
        FR => FR_TXFE | FR_RXFE,
        0xfe0 => 0x11,
        0xfe4 => 0x10,
        0xfe8 => 0x14,
        0xfec => 0x00,
        0xff0 => 0x0d,
        0xff4 => 0xf0,
        0xff8 => 0x05,
        0xffc => 0xb1,
        _ => 0,
    }
}

/// Longest line kept before it is written out anyway.
pub const MAX_LINE: usize = 240;

/// Collects a domain's output into lines.
#[derive(Debug, Default)]
pub struct LineBuffer {
    buf: Vec<u8>,
}

impl LineBuffer {
    pub const fn new() -> Self {
        LineBuffer { buf: Vec::new() }
    }

    /// Adds a byte; returns a complete line (without its newline) when there is one.
    /// Carriage returns are dropped; an over-long line is cut at [`MAX_LINE`].
    pub fn push(&mut self, b: u8) -> Option<Vec<u8>> {
        match b {
            b'\r' => None,
            b'\n' => Some(core::mem::take(&mut self.buf)),
            _ => {
                self.buf.push(b);
                (self.buf.len() >= MAX_LINE).then(|| core::mem::take(&mut self.buf))
            }
        }
    }

    /// Whatever is buffered (a partial line), emptied.
    pub fn take(&mut self) -> Vec<u8> {
        core::mem::take(&mut self.buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_long_lines() {
        let mut l = LineBuffer::new();
        assert_eq!(l.push(b'h'), None);
        assert_eq!(l.push(b'\r'), None);
        assert_eq!(l.push(b'\n'), Some(b"h".to_vec()));
        for _ in 0..MAX_LINE - 1 {
            assert_eq!(l.push(b'x'), None);
        }
        assert_eq!(l.push(b'x').map(|v| v.len()), Some(MAX_LINE));
        l.push(b'p');
        assert_eq!(l.take(), b"p".to_vec());
    }

    #[test]
    fn registers() {
        assert_eq!(read(FR) & FR_TXFE, FR_TXFE);
        assert_eq!(read(0xfe0), 0x11);
        assert_eq!(read(0x44), 0);
    }
}
