//! The domains' virtual UART: a PL011 / SBSA UART register model (Linux drives it as
//! `ttyAMA0`), with a receive FIFO fed from the physical console and the interrupt
//! status a driver needs. Transmitted bytes leave at once (the transmit FIFO is always
//! empty), so output never blocks a guest.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

/// Register offsets.
pub const DR: u64 = 0x000;
pub const RSR: u64 = 0x004;
pub const FR: u64 = 0x018;
pub const ILPR: u64 = 0x020;
pub const IBRD: u64 = 0x024;
pub const FBRD: u64 = 0x028;
pub const LCR_H: u64 = 0x02c;
pub const CR: u64 = 0x030;
pub const IFLS: u64 = 0x034;
pub const IMSC: u64 = 0x038;
pub const RIS: u64 = 0x03c;
pub const MIS: u64 = 0x040;
pub const ICR: u64 = 0x044;
pub const DMACR: u64 = 0x048;

/// FR bits.
pub const FR_RXFE: u32 = 1 << 4;
pub const FR_TXFF: u32 = 1 << 5;
pub const FR_RXFF: u32 = 1 << 6;
pub const FR_TXFE: u32 = 1 << 7;
/// Interrupt bits (RIS/MIS/IMSC/ICR).
pub const INT_RX: u32 = 1 << 4;
pub const INT_TX: u32 = 1 << 5;
pub const INT_RT: u32 = 1 << 6;
pub const INT_OE: u32 = 1 << 10;
const INT_ALL: u32 = 0x7ff;
/// LCR_H.FEN: FIFOs enabled (else one-character holding registers).
const LCR_H_FEN: u32 = 1 << 4;
/// Receive FIFO depth.
pub const FIFO_DEPTH: usize = 32;

/// What a guest access did besides its register effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    None,
    /// A byte to transmit.
    Tx(u8),
    /// An offset the model does not implement (reads 0, writes ignored).
    Unknown,
}

/// One virtual PL011.
#[derive(Debug, Clone)]
pub struct Pl011 {
    rx: VecDeque<u8>,
    rsr: u32,
    cr: u32,
    lcr_h: u32,
    ifls: u32,
    imsc: u32,
    ris: u32,
    ibrd: u32,
    fbrd: u32,
    dmacr: u32,
}

impl Default for Pl011 {
    fn default() -> Self {
        Self::new()
    }
}

impl Pl011 {
    /// Reset state: enabled for transmit and receive, as firmware leaves a console UART.
    pub fn new() -> Self {
        Pl011 {
            rx: VecDeque::new(),
            rsr: 0,
            cr: 0x301,
            lcr_h: 0x70,
            ifls: 0x12,
            imsc: 0,
            ris: 0,
            ibrd: 0,
            fbrd: 0,
            dmacr: 0,
        }
    }

    fn depth(&self) -> usize {
        if self.lcr_h & LCR_H_FEN != 0 { FIFO_DEPTH } else { 1 }
    }

    /// Receive interrupt trigger level (IFLS.RXIFLSEL: 1/8 .. 7/8 of the FIFO).
    fn rx_trigger(&self) -> usize {
        let sel = ((self.ifls >> 3) & 7).min(4) as usize;
        let eighths = [1, 2, 4, 6, 7][sel];
        (self.depth() * eighths / 8).max(1)
    }

    fn update_rx_status(&mut self) {
        self.ris &= !(INT_RX | INT_RT);
        if self.rx.len() >= self.rx_trigger() {
            self.ris |= INT_RX;
        }
        if !self.rx.is_empty() {
            // Characters waiting below the trigger level: the receive timeout.
            self.ris |= INT_RT;
        }
    }

    /// A byte from the console for this UART; false (and an overrun) when it is full or
    /// not receiving.
    pub fn receive(&mut self, b: u8) -> bool {
        if self.cr & 1 == 0 || self.cr & (1 << 9) == 0 || self.rx.len() >= self.depth() {
            self.rsr |= 1 << 3;
            self.ris |= INT_OE;
            return false;
        }
        self.rx.push_back(b);
        self.update_rx_status();
        true
    }

    /// Room left in the receive FIFO.
    pub fn rx_room(&self) -> usize {
        self.depth().saturating_sub(self.rx.len())
    }

    /// The interrupt line: some raw status is unmasked.
    pub fn irq(&self) -> bool {
        self.ris & self.imsc != 0
    }

    /// A guest read.
    pub fn read(&mut self, offset: u64) -> (u32, Effect) {
        let v = match offset {
            DR => {
                let v = self.rx.pop_front().map_or(0, u32::from);
                self.update_rx_status();
                v
            }
            RSR => self.rsr,
            FR => {
                let mut fr = FR_TXFE;
                if self.rx.is_empty() {
                    fr |= FR_RXFE;
                }
                if self.rx.len() >= self.depth() {
                    fr |= FR_RXFF;
                }
                fr
            }
            ILPR => 0,
            IBRD => self.ibrd,
            FBRD => self.fbrd,
            LCR_H => self.lcr_h,
            CR => self.cr,
            IFLS => self.ifls,
            IMSC => self.imsc,
            RIS => self.ris,
            MIS => self.ris & self.imsc,
            ICR => 0,
            DMACR => self.dmacr,
            // PL011 peripheral and PrimeCell IDs.
            0xfe0 => 0x11,
            0xfe4 => 0x10,
            0xfe8 => 0x14,
            0xfec => 0x00,
            0xff0 => 0x0d,
            0xff4 => 0xf0,
            0xff8 => 0x05,
            0xffc => 0xb1,
            _ => return (0, Effect::Unknown),
        };
        (v, Effect::None)
    }

    /// A guest write.
    pub fn write(&mut self, offset: u64, v: u32) -> Effect {
        match offset {
            DR => {
                // The byte leaves at once: the transmit FIFO is empty again.
                self.ris |= INT_TX;
                if self.cr & 1 != 0 && self.cr & (1 << 8) != 0 {
                    return Effect::Tx(v as u8);
                }
            }
            RSR => self.rsr = 0,
            ILPR => {}
            IBRD => self.ibrd = v & 0xffff,
            FBRD => self.fbrd = v & 0x3f,
            LCR_H => {
                self.lcr_h = v & 0xff;
                while self.rx.len() > self.depth() {
                    self.rx.pop_back();
                }
                self.update_rx_status();
            }
            CR => self.cr = v & 0xffff,
            IFLS => {
                self.ifls = v & 0x3f;
                self.update_rx_status();
            }
            IMSC => self.imsc = v & INT_ALL,
            ICR => {
                self.ris &= !(v & INT_ALL);
                // Data still waiting keeps its receive status.
                if !self.rx.is_empty() {
                    self.update_rx_status();
                }
            }
            DMACR => self.dmacr = v & 7,
            _ => return Effect::Unknown,
        }
        Effect::None
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

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
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
        assert!(!l.is_empty());
        assert_eq!(l.take(), b"p".to_vec());
    }

    #[test]
    fn transmit_and_ids() {
        let mut u = Pl011::new();
        assert_eq!(u.write(DR, u32::from(b'A')), Effect::Tx(b'A'));
        assert_eq!(u.read(FR).0 & (FR_TXFE | FR_TXFF | FR_RXFE), FR_TXFE | FR_RXFE);
        assert_eq!(u.read(0xfe0).0, 0x11);
        assert_eq!(u.read(0xffc).0, 0xb1);
        // Transmit disabled: the byte goes nowhere.
        u.write(CR, 0x201);
        assert_eq!(u.write(DR, 0x42), Effect::None);
    }

    #[test]
    fn receive_fifo_full_and_empty() {
        let mut u = Pl011::new();
        // LCR_H reset value 0x70 has FEN set: a 32-byte FIFO.
        for i in 0..FIFO_DEPTH {
            assert!(u.receive(i as u8));
        }
        assert_eq!(u.read(FR).0 & FR_RXFF, FR_RXFF);
        assert!(!u.receive(0xff), "a full FIFO overruns");
        assert_eq!(u.read(RIS).0 & INT_OE, INT_OE);
        assert_eq!(u.read(RSR).0 & (1 << 3), 1 << 3);
        for i in 0..FIFO_DEPTH {
            assert_eq!(u.read(DR).0, i as u32);
        }
        assert_eq!(u.read(FR).0 & FR_RXFE, FR_RXFE);
        // FIFOs off: one character deep.
        u.write(LCR_H, 0x60);
        assert!(u.receive(1));
        assert!(!u.receive(2));
        assert_eq!(u.rx_room(), 0);
    }

    #[test]
    fn interrupt_status_masks_and_clear() {
        let mut u = Pl011::new();
        assert!(!u.irq());
        u.receive(b'x');
        // One byte is below the 1/2 trigger (IFLS reset 0x12): receive timeout, not RX.
        assert_eq!(u.read(RIS).0 & (INT_RX | INT_RT), INT_RT);
        assert!(!u.irq(), "masked");
        u.write(IMSC, INT_RT | INT_RX);
        assert!(u.irq());
        assert_eq!(u.read(MIS).0, INT_RT);
        // Clearing while data waits leaves the status asserted; reading the data clears it.
        u.write(ICR, INT_ALL);
        assert!(u.irq());
        u.read(DR);
        assert!(!u.irq());
        for _ in 0..16 {
            u.receive(b'y');
        }
        assert_eq!(u.read(RIS).0 & INT_RX, INT_RX);
        // Transmit interrupt after a write, cleared by ICR.
        u.write(IMSC, INT_TX);
        u.write(DR, 0x41);
        assert!(u.irq());
        u.write(ICR, INT_TX);
        assert!(!u.irq());
    }

    #[test]
    fn unknown_offsets() {
        let mut u = Pl011::new();
        assert_eq!(u.read(0x80), (0, Effect::Unknown));
        assert_eq!(u.write(0x80, 5), Effect::Unknown);
    }
}
