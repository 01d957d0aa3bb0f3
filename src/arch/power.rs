//! Stopping the machine: PSCI SYSTEM_OFF where there is PSCI, else every CPU parks; and
//! the fatal-error path, which prints by whatever means exist at that point of boot.

use core::fmt;
use core::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use log::error;

use super::{console, mmu, psci};
use crate::platform::{Conduit, Uart, UartKind};

/// The PSCI conduit for [`halt`]: 0 none, 1 SMC, 2 HVC. Plain stores only, so usable
/// before the MMU is on.
static HALT_CONDUIT: AtomicU8 = AtomicU8::new(0);
/// The console UART for messages before the MMU is on: base (0 = unknown) and kind.
static EARLY_UART: AtomicU64 = AtomicU64::new(0);
static EARLY_UART_KIND: AtomicU8 = AtomicU8::new(0);

fn early_uart() -> Option<Uart> {
    let base = EARLY_UART.load(Ordering::Relaxed);
    let kind = UartKind::from_code(EARLY_UART_KIND.load(Ordering::Relaxed));
    (base != 0).then_some(Uart { kind, base, size: 0x1000, irq: None })
}

/// Prints a fatal error by whatever path exists at this point of boot, then halts.
pub fn fatal(args: fmt::Arguments<'_>) -> ! {
    if mmu::is_enabled() {
        error!("{args}");
    } else if let Some(u) = early_uart() {
        console::early_write(&u, format_args!("(HL) FATAL: {args}\n"));
    }
    halt("fatal error")
}

/// Stops the machine: PSCI SYSTEM_OFF where there is PSCI (QEMU then exits 0), otherwise
/// every CPU parks in WFI.
pub fn halt(reason: &str) -> ! {
    let conduit = match HALT_CONDUIT.load(Ordering::Relaxed) {
        1 => Some(Conduit::Smc),
        2 => Some(Conduit::Hvc),
        _ => None,
    };
    let how = if conduit.is_some() { "powering off" } else { "no PSCI to power off: halted" };
    if mmu::is_enabled() {
        console::emergency_write(format_args!("(HL) stopping: {reason}; {how}\n"));
    } else if let Some(u) = early_uart() {
        console::early_write(&u, format_args!("(HL) stopping: {reason}; {how}\n"));
    }
    if let Some(c) = conduit {
        psci::system_off(c);
    }
    park()
}

/// Records the console UART and the PSCI conduit from the host DTB, before the MMU is on.
pub fn set_early(uart: Option<&Uart>, conduit: Option<Conduit>) {
    if let Some(u) = uart {
        EARLY_UART_KIND.store(u.kind.code(), Ordering::Relaxed);
        EARLY_UART.store(u.base, Ordering::Relaxed);
    }
    if let Some(c) = conduit {
        HALT_CONDUIT.store(if c == Conduit::Smc { 1 } else { 2 }, Ordering::Relaxed);
    }
}

/// Parks this CPU in WFI until an interrupt, forever.
pub fn park() -> ! {
    loop {
        aarch64_cpu::asm::wfi();
    }
}
