//! Drivers for the physical console UART: PL011 (through `arm_pl011`) and the Cadence UART
//! of Zynq UltraScale+. Both are left configured as the firmware set them up.

use arm_pl011::Pl011Uart;

use crate::platform::{Uart, UartKind};

/// Cadence UART registers used for polled output (Zynq UltraScale+ TRM, UART chapter).
const CDNS_CR: usize = 0x00;
const CDNS_CR_RXEN: u32 = 1 << 2;
const CDNS_CR_RXDIS: u32 = 1 << 3;
const CDNS_CR_TXEN: u32 = 1 << 4;
const CDNS_CR_TXDIS: u32 = 1 << 5;
const CDNS_SR: usize = 0x2c;
const CDNS_FIFO: usize = 0x30;
const CDNS_SR_TXFULL: u32 = 1 << 4;

/// The physical UART the hypervisor's console writes to.
pub enum PhysUart {
    Pl011(Pl011Uart),
    Cadence(*mut u32),
}

// SAFETY: the UART is only ever used behind the console's lock (or by the one CPU running
// before any other starts), so moving it between CPUs is sound.
unsafe impl Send for PhysUart {}

impl PhysUart {
    /// A driver for the UART the DTB names. Its registers must be mapped as device memory
    /// at their physical address (identity map) before the first write.
    pub fn new(desc: &Uart) -> PhysUart {
        match desc.kind {
            UartKind::Pl011 => PhysUart::Pl011(Pl011Uart::new(desc.base as *mut u8)),
            UartKind::Cadence => {
                let base = desc.base as *mut u32;
                // SAFETY: `base` is the Cadence UART's register block from the DTB, mapped as
                // device memory. Enabling the transmitter and receiver changes nothing else
                // (firmware normally leaves them enabled; QEMU resets them disabled).
                unsafe {
                    let cr = core::ptr::read_volatile(base.add(CDNS_CR / 4));
                    let want = (cr & !(CDNS_CR_TXDIS | CDNS_CR_RXDIS)) | CDNS_CR_TXEN | CDNS_CR_RXEN;
                    if cr != want {
                        core::ptr::write_volatile(base.add(CDNS_CR / 4), want);
                    }
                }
                PhysUart::Cadence(base)
            }
        }
    }

    /// Writes one byte, waiting while the transmit FIFO is full.
    pub fn putc(&mut self, c: u8) {
        match self {
            PhysUart::Pl011(u) => u.putchar(c),
            PhysUart::Cadence(base) => {
                let base = *base;
                // SAFETY: `base` is the Cadence UART's register block from the DTB, mapped as
                // device memory; SR and FIFO are 32-bit registers inside it.
                unsafe {
                    while core::ptr::read_volatile(base.add(CDNS_SR / 4)) & CDNS_SR_TXFULL != 0 {}
                    core::ptr::write_volatile(base.add(CDNS_FIFO / 4), u32::from(c));
                }
            }
        }
    }

    /// A received byte, if one waits.
    pub fn getc(&mut self) -> Option<u8> {
        match self {
            PhysUart::Pl011(u) => u.getchar(),
            PhysUart::Cadence(base) => {
                const CDNS_SR_RXEMPTY: u32 = 1 << 1;
                let base = *base;
                // SAFETY: the Cadence UART's SR and FIFO registers, mapped as device memory.
                unsafe {
                    if core::ptr::read_volatile(base.add(CDNS_SR / 4)) & CDNS_SR_RXEMPTY != 0 {
                        None
                    } else {
                        Some(core::ptr::read_volatile(base.add(CDNS_FIFO / 4)) as u8)
                    }
                }
            }
        }
    }

    /// Turns on the receive interrupts (PL011: receive and receive timeout; Cadence: the
    /// receive trigger at one byte and the receive timeout), leaving the line settings as
    /// the firmware made them.
    pub fn enable_rx_interrupt(&mut self, base: u64) {
        if let PhysUart::Cadence(regs) = self {
            const CDNS_IER: usize = 0x08;
            const CDNS_RXTOUT: usize = 0x1c;
            const CDNS_RXWM: usize = 0x20;
            const RXTRIG_TIMEOUT: u32 = 1 | (1 << 8);
            let regs = *regs;
            // SAFETY: the Cadence UART's interrupt-enable, receive-timeout and watermark
            // registers, mapped as device memory; none affects transmission.
            unsafe {
                core::ptr::write_volatile(regs.add(CDNS_RXWM / 4), 1);
                core::ptr::write_volatile(regs.add(CDNS_RXTOUT / 4), 10);
                core::ptr::write_volatile(regs.add(CDNS_IER / 4), RXTRIG_TIMEOUT);
            }
        }
        if let PhysUart::Pl011(_) = self {
            const IMSC: u64 = 0x38;
            const RXIM_RTIM: u32 = (1 << 4) | (1 << 6);
            // SAFETY: IMSC of the PL011 this driver owns, mapped as device memory; unmasking
            // its receive interrupts changes nothing about transmission.
            unsafe { core::ptr::write_volatile((base + IMSC) as *mut u32, RXIM_RTIM) };
        }
    }

    /// Clears latched receive interrupt status once the FIFO has been drained (PL011 status
    /// follows the FIFO level by itself).
    pub fn ack_rx(&mut self) {
        if let PhysUart::Cadence(regs) = self {
            const CDNS_ISR: usize = 0x14;
            let regs = *regs;
            // SAFETY: the Cadence UART's write-one-to-clear interrupt status register.
            unsafe { core::ptr::write_volatile(regs.add(CDNS_ISR / 4), 0x3fff) };
        }
    }

    /// Writes bytes, turning `\n` into `\r\n`.
    pub fn write_bytes(&mut self, s: &[u8]) {
        for &c in s {
            if c == b'\n' {
                self.putc(b'\r');
            }
            self.putc(c);
        }
    }
}

impl core::fmt::Write for PhysUart {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.write_bytes(s.as_bytes());
        Ok(())
    }
}
