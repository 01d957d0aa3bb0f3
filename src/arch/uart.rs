//! Drivers for the physical console UART: PL011 (through `arm_pl011`), the Cadence UART of
//! Zynq UltraScale+ and the BCM2711 mini UART of the Raspberry Pi 4 (their register blocks
//! as tock-registers structs). Each is left configured as the firmware set it up.

use arm_pl011::Pl011Uart;
use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::register_structs;
use tock_registers::registers::{ReadOnly, ReadWrite, WriteOnly};

use crate::platform::{Uart, UartKind};

register_structs! {
    /// Cadence UART (Zynq UltraScale+ TRM, UART chapter): what the console uses.
    pub CadenceRegs {
        (0x00 => cr: ReadWrite<u32>),
        (0x04 => _reserved0),
        (0x08 => ier: WriteOnly<u32>),
        (0x0c => _reserved1),
        (0x14 => isr: ReadWrite<u32>),
        (0x18 => _reserved2),
        (0x1c => rxtout: ReadWrite<u32>),
        (0x20 => rxwm: ReadWrite<u32>),
        (0x24 => _reserved3),
        (0x2c => sr: ReadOnly<u32>),
        (0x30 => fifo: ReadWrite<u32>),
        (0x34 => @END),
    }
}

register_structs! {
    /// BCM2835/BCM2711 mini UART (AUX_MU_*), from its IO register on.
    pub MiniRegs {
        (0x00 => io: ReadWrite<u32>),
        (0x04 => ier: ReadWrite<u32>),
        (0x08 => iir: ReadWrite<u32>),
        (0x0c => _reserved0),
        (0x14 => lsr: ReadOnly<u32>),
        (0x18 => @END),
    }
}

const CDNS_CR_RXEN: u32 = 1 << 2;
const CDNS_CR_RXDIS: u32 = 1 << 3;
const CDNS_CR_TXEN: u32 = 1 << 4;
const CDNS_CR_TXDIS: u32 = 1 << 5;
const CDNS_SR_RXEMPTY: u32 = 1 << 1;
const CDNS_SR_TXFULL: u32 = 1 << 4;
/// Receive trigger (RXWM reached) and receive timeout.
const CDNS_RXTRIG_TIMEOUT: u32 = 1 | (1 << 8);
/// AUX_MU_LSR: data ready; transmitter can accept a byte.
const MINI_LSR_DR: u32 = 1;
const MINI_LSR_THRE: u32 = 1 << 5;
/// AUX_MU_IER: receive interrupt.
const MINI_IER_RX: u32 = 1;

/// The physical UART the hypervisor's console writes to.
pub enum PhysUart {
    Pl011(Pl011Uart),
    Cadence(&'static CadenceRegs),
    Mini(&'static MiniRegs),
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
                // SAFETY: the Cadence UART's register block from the DTB, mapped as device
                // memory for the hypervisor's lifetime; tock-registers accesses it volatile.
                let r = unsafe { &*(desc.base as *const CadenceRegs) };
                // Enabling the transmitter and receiver changes nothing else (firmware
                // normally leaves them enabled; QEMU resets them disabled).
                let cr = r.cr.get();
                let want = (cr & !(CDNS_CR_TXDIS | CDNS_CR_RXDIS)) | CDNS_CR_TXEN | CDNS_CR_RXEN;
                if cr != want {
                    r.cr.set(want);
                }
                PhysUart::Cadence(r)
            }
            // SAFETY: the mini UART's registers from the DTB, mapped as device memory for the
            // hypervisor's lifetime; tock-registers accesses them volatile.
            UartKind::MiniUart => PhysUart::Mini(unsafe { &*(desc.base as *const MiniRegs) }),
        }
    }

    /// Writes one byte, waiting while the transmitter is full.
    pub fn putc(&mut self, c: u8) {
        match self {
            PhysUart::Pl011(u) => u.putchar(c),
            PhysUart::Cadence(r) => {
                while r.sr.get() & CDNS_SR_TXFULL != 0 {}
                r.fifo.set(u32::from(c));
            }
            PhysUart::Mini(r) => {
                while r.lsr.get() & MINI_LSR_THRE == 0 {}
                r.io.set(u32::from(c));
            }
        }
    }

    /// Writes one byte if the transmitter has room for it (false: it is full).
    pub fn try_putc(&mut self, c: u8) -> bool {
        match self {
            PhysUart::Pl011(u) => u.try_putchar(c),
            PhysUart::Cadence(r) => {
                if r.sr.get() & CDNS_SR_TXFULL != 0 {
                    return false;
                }
                r.fifo.set(u32::from(c));
                true
            }
            PhysUart::Mini(r) => {
                if r.lsr.get() & MINI_LSR_THRE == 0 {
                    return false;
                }
                r.io.set(u32::from(c));
                true
            }
        }
    }

    /// A received byte, if one waits.
    pub fn getc(&mut self) -> Option<u8> {
        match self {
            PhysUart::Pl011(u) => u.getchar(),
            PhysUart::Cadence(r) => (r.sr.get() & CDNS_SR_RXEMPTY == 0).then(|| r.fifo.get() as u8),
            PhysUart::Mini(r) => (r.lsr.get() & MINI_LSR_DR != 0).then(|| r.io.get() as u8),
        }
    }

    /// Turns on the receive interrupts (PL011: receive and receive timeout; Cadence: the
    /// receive trigger at one byte and the receive timeout; mini UART: receive), leaving
    /// the line settings as the firmware made them.
    pub fn enable_rx_interrupt(&mut self, base: u64) {
        match self {
            PhysUart::Cadence(r) => {
                r.rxwm.set(1);
                r.rxtout.set(10);
                r.ier.set(CDNS_RXTRIG_TIMEOUT);
            }
            PhysUart::Mini(r) => r.ier.set(MINI_IER_RX),
            PhysUart::Pl011(_) => {
                const IMSC: u64 = 0x38;
                const RXIM_RTIM: u32 = (1 << 4) | (1 << 6);
                // SAFETY: IMSC of the PL011 this driver owns, mapped as device memory;
                // unmasking its receive interrupts changes nothing about transmission.
                unsafe { core::ptr::write_volatile((base + IMSC) as *mut u32, RXIM_RTIM) };
            }
        }
    }

    /// Clears latched receive interrupt status once the FIFO has been drained (PL011 and
    /// mini UART status follows the FIFO level by itself).
    pub fn ack_rx(&mut self) {
        if let PhysUart::Cadence(r) = self {
            // Write one to clear.
            r.isr.set(0x3fff);
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
