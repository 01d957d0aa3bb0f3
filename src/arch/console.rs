//! The physical console: one lock around the UART so that lines never interleave, the
//! `log` backend connected to it, and an emergency path for fatal errors.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, Ordering};

use spin::Mutex;

use super::uart::PhysUart;
use crate::logger::{Console, Logger};
use crate::platform::Uart;

struct HwConsole {
    uart: Mutex<Option<PhysUart>>,
}

static CONSOLE: HwConsole = HwConsole { uart: Mutex::new(None) };
static LOGGER: Logger = Logger::new();
/// Set once the MMU is on: before that, only the boot CPU runs and locks (exclusive
/// accesses to device memory) are avoided.
static LOCKS_USABLE: AtomicBool = AtomicBool::new(false);

impl Console for HwConsole {
    fn write_line(&self, line: fmt::Arguments<'_>) {
        if let Some(u) = self.uart.lock().as_mut() {
            let _ = u.write_fmt(line);
        }
    }

    fn uptime_us(&self) -> u64 {
        super::timer::uptime_us()
    }
}

/// One line of a domain's console output, prefixed `DOMn: `.
pub fn domain_line(domid: u16, line: &[u8]) {
    if let Some(u) = CONSOLE.uart.lock().as_mut() {
        let _ = write!(u, "DOM{domid}: ");
        u.write_bytes(line);
        u.write_bytes(b"\n");
    }
}

/// Writes a message before the MMU is on (no lock; only the boot CPU runs).
pub fn early_write(desc: &Uart, args: fmt::Arguments<'_>) {
    let mut u = PhysUart::new(desc);
    let _ = u.write_fmt(args);
}

/// Connects the console UART and the `log` backend. Call with the MMU on and the UART
/// mapped.
pub fn init(desc: Option<&Uart>, level: log::LevelFilter) {
    LOCKS_USABLE.store(true, Ordering::Release);
    *CONSOLE.uart.lock() = desc.map(PhysUart::new);
    LOGGER.set_console(&CONSOLE);
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}

/// Writes a fatal message even if the lock is held (by a CPU that faulted inside it).
pub fn emergency_write(args: fmt::Arguments<'_>) {
    if !LOCKS_USABLE.load(Ordering::Acquire) {
        return;
    }
    // Wait a little for a CPU that is mid-line, then write regardless.
    for _ in 0..1_000_000 {
        if let Some(mut g) = CONSOLE.uart.try_lock() {
            if let Some(u) = g.as_mut() {
                let _ = u.write_fmt(args);
            }
            return;
        }
        core::hint::spin_loop();
    }
    // SAFETY: the holder of the lock is stuck (it faulted); forcing the lock open risks at
    // worst interleaved characters on the console, which is better than printing nothing.
    unsafe { CONSOLE.uart.force_unlock() };
    if let Some(u) = CONSOLE.uart.lock().as_mut() {
        let _ = u.write_fmt(args);
    }
}
