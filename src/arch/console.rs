//! The physical console: whole lines into one output queue (so that they never interleave,
//! and no writer waits for a slow UART), drained as the UART takes bytes (now, and on the
//! hypervisor timer while bytes wait); the `log` backend connected to it, and an emergency
//! path for fatal errors that writes everything out, waiting.

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
/// Lines waiting for the UART (lock order: this, then the UART).
static OUTQ: Mutex<crate::outq::OutQueue<{ 64 * 1024 }>> = Mutex::new(crate::outq::OutQueue::new());
/// How soon a queue the UART could not take is drained again (µs).
const DRAIN_US: u64 = 1000;
static LOGGER: Logger = Logger::new();
/// Set once the MMU is on: before that, only the boot CPU runs and locks (exclusive
/// accesses to device memory) are avoided.
static LOCKS_USABLE: AtomicBool = AtomicBool::new(false);

/// Queues one line, written by `f`, then gives the UART what it takes.
fn queue_line(f: impl FnOnce(&mut crate::outq::OutQueue<{ 64 * 1024 }>)) {
    {
        let mut q = OUTQ.lock();
        q.begin_line();
        f(&mut q);
        q.end_line();
    }
    drain();
}

/// Gives the UART the queued bytes it has room for; while some wait, the hypervisor timer
/// comes back for them.
pub fn drain() {
    let pending = {
        let mut q = OUTQ.lock();
        if let Some(u) = CONSOLE.uart.lock().as_mut() {
            q.drain(|b| u.try_putc(b));
        }
        !q.is_empty()
    };
    let at = pending.then(|| super::timer::uptime_us() + DRAIN_US);
    super::timer::set_deadline(super::timer::Deadline::Drain, at);
}

impl Console for HwConsole {
    fn write_line(&self, line: fmt::Arguments<'_>) {
        queue_line(|q| {
            let _ = q.write_fmt(line);
        });
    }

    fn uptime_us(&self) -> u64 {
        super::timer::uptime_us()
    }
}

/// One line of a domain's console output, prefixed `DOMn: `.
pub fn domain_line(domid: u16, line: &[u8]) {
    queue_line(|q| {
        let _ = write!(q, "DOM{domid}: ");
        for &b in line {
            q.push(b);
        }
        q.push(b'\n');
    });
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

/// Writes a fatal message even if a lock is held (by a CPU that faulted inside it): what
/// the queue holds first, then the message, waiting for the UART.
pub fn emergency_write(args: fmt::Arguments<'_>) {
    if !LOCKS_USABLE.load(Ordering::Acquire) {
        return;
    }
    // Wait a little for a CPU that is mid-line, then write regardless.
    let mut q = None;
    for _ in 0..1_000_000 {
        if let Some(g) = OUTQ.try_lock() {
            q = Some(g);
            break;
        }
        core::hint::spin_loop();
    }
    let mut u = None;
    for _ in 0..1_000_000 {
        if let Some(g) = CONSOLE.uart.try_lock() {
            u = Some(g);
            break;
        }
        core::hint::spin_loop();
    }
    let mut u = match u {
        Some(g) => g,
        None => {
            // SAFETY: the holder of the lock is stuck (it faulted); forcing the lock open
            // risks at worst interleaved characters on the console, better than nothing.
            unsafe { CONSOLE.uart.force_unlock() };
            CONSOLE.uart.lock()
        }
    };
    if let Some(u) = u.as_mut() {
        if let Some(q) = q.as_mut() {
            q.drain(|b| {
                u.putc(b);
                true
            });
        }
        let _ = u.write_fmt(args);
    }
}

/// The console multiplexer, once domains exist.
static MUX: Mutex<Option<crate::conmux::Mux>> = Mutex::new(None);
/// The physical UART's receive interrupt (0: none).
static UART_IRQ: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

/// Starts multiplexing: `domids` have a virtual UART; `console` gets input first.
pub fn start_mux(desc: Option<&Uart>, domids: &[u16], console: Option<u16>, switching: bool) {
    *MUX.lock() = Some(crate::conmux::Mux::new(domids, console, switching));
    if let Some(c) = console {
        log::info!(
            "console input goes to DOM{c}{}",
            if switching { " (Ctrl-A three times switches)" } else { "" }
        );
    }
    if let Some((u, irq)) = desc.and_then(|u| u.irq.map(|i| (u, i))) {
        UART_IRQ.store(irq, Ordering::Release);
        if let Some(p) = CONSOLE.uart.lock().as_mut() {
            p.enable_rx_interrupt(u.base);
        }
        super::gic::route_spi(irq, 0);
    }
}

fn write_emits(emits: &[crate::conmux::Emit]) {
    for e in emits {
        match e {
            crate::conmux::Emit::Line { domid, bytes } => domain_line(*domid, bytes),
            crate::conmux::Emit::Dropped { domid, bytes } => {
                log::warn!("DOM{domid}: {bytes} bytes of console output dropped (over its budget)");
            }
        }
    }
}

/// One byte a domain transmitted.
pub fn domain_output(domid: u16, byte: u8) {
    let mut emits = alloc::vec::Vec::new();
    let now = super::timer::uptime_us();
    let deadline = {
        let mut m = MUX.lock();
        let Some(m) = m.as_mut() else { return };
        m.output(domid, byte, now, &mut emits);
        m.next_deadline()
    };
    write_emits(&emits);
    if deadline.is_some() {
        super::timer::set_deadline(super::timer::Deadline::Console, deadline);
    }
}

/// Console input goes to `domid` from now on.
pub fn set_input(domid: u16) {
    let changed = {
        let mut m = MUX.lock();
        let Some(m) = m.as_mut() else { return };
        let before = m.target();
        m.set_target(domid);
        before != m.target()
    };
    if changed {
        log::info!("console input now goes to DOM{domid}");
    }
}

/// A domain stopped: write what it still holds and take it out of the input rotation.
pub fn domain_stopped(domid: u16) {
    let mut emits = alloc::vec::Vec::new();
    let target = {
        let mut m = MUX.lock();
        let Some(m) = m.as_mut() else { return };
        let before = m.target();
        m.flush_domain(domid, &mut emits);
        m.remove(domid);
        (before != m.target()).then(|| m.target()).flatten()
    };
    write_emits(&emits);
    if let Some(t) = target {
        log::info!("console input now goes to DOM{t}");
    }
}

/// A restarted domain's output and input come back.
pub fn domain_restarted(domid: u16) {
    if let Some(m) = MUX.lock().as_mut() {
        m.add(domid);
    }
}

/// The hypervisor timer fired: partial lines quiet for long enough are written, and what
/// the UART could not take before is given to it.
pub fn flush_quiet() {
    drain();
    let mut emits = alloc::vec::Vec::new();
    let deadline = {
        let mut m = MUX.lock();
        let Some(m) = m.as_mut() else { return };
        m.flush_quiet(super::timer::uptime_us(), &mut emits);
        m.next_deadline()
    };
    write_emits(&emits);
    super::timer::set_deadline(super::timer::Deadline::Console, deadline);
}

/// The physical UART's receive interrupt.
pub fn is_uart_irq(intid: u32) -> bool {
    intid != 0 && intid == UART_IRQ.load(Ordering::Acquire)
}

/// Takes every byte waiting in the physical UART and hands each to `deliver` with its
/// destination domain.
pub fn drain_input(mut deliver: impl FnMut(u16, u8)) {
    loop {
        let byte = CONSOLE.uart.lock().as_mut().and_then(|u| u.getc());
        let Some(b) = byte else {
            if let Some(u) = CONSOLE.uart.lock().as_mut() {
                u.ack_rx();
            }
            break;
        };
        let mut inputs = alloc::vec::Vec::new();
        if let Some(m) = MUX.lock().as_mut() {
            m.input(b, &mut inputs);
        }
        for i in inputs {
            match i {
                crate::conmux::Input::Deliver { domid, byte } => deliver(domid, byte),
                crate::conmux::Input::Switched { domid } => {
                    log::info!("console input now goes to DOM{domid}")
                }
                crate::conmux::Input::Dropped => {}
            }
        }
    }
}
