//! The hypervisor's `log` backend: each record becomes one line
//! `(HL) [seconds.micros] LEVEL message`, written whole to the console, so the
//! hypervisor's own lines stand apart from the `DOMn: ` lines of domains.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicUsize, Ordering};

use log::{Level, LevelFilter, Log, Metadata, Record};

/// Where log lines go: the physical console, or a buffer in tests.
pub trait Console: Sync {
    /// Writes one complete line (the newline included), without interleaving with others.
    fn write_line(&self, line: fmt::Arguments<'_>);
    /// Microseconds since the machine started (the generic timer's count).
    fn uptime_us(&self) -> u64;
}

/// Prefix of every line the hypervisor itself prints.
pub const PREFIX: &str = "(HL)";

/// Formats the `(HL) [   1.234567] INFO  ` prefix.
pub fn write_prefix(out: &mut dyn Write, uptime_us: u64, level: Level) -> fmt::Result {
    let tag = match level {
        Level::Error => "ERROR",
        Level::Warn => "WARN ",
        Level::Info => "INFO ",
        Level::Debug => "DEBUG",
        Level::Trace => "TRACE",
    };
    write!(out, "{PREFIX} [{:4}.{:06}] {tag} ", uptime_us / 1_000_000, uptime_us % 1_000_000)
}

/// Parses a level name as given on the hypervisor command line (`loglvl=`).
pub fn parse_level(s: &str) -> Option<LevelFilter> {
    Some(match s {
        "off" | "none" => LevelFilter::Off,
        "error" => LevelFilter::Error,
        "warn" | "warning" => LevelFilter::Warn,
        "info" => LevelFilter::Info,
        "debug" => LevelFilter::Debug,
        "trace" | "all" => LevelFilter::Trace,
        _ => return None,
    })
}

/// A `log::Log` over a [`Console`].
pub struct Logger {
    /// Address of a `&'static dyn Console` cell, or 0 before [`Logger::set_console`].
    console: spin::Once<&'static dyn Console>,
    dropped: AtomicUsize,
}

impl Logger {
    pub const fn new() -> Self {
        Logger { console: spin::Once::new(), dropped: AtomicUsize::new(0) }
    }

    /// Connects the console; lines logged before are counted as dropped.
    pub fn set_console(&self, console: &'static dyn Console) {
        self.console.call_once(|| console);
    }

    /// Lines logged before a console existed.
    pub fn dropped(&self) -> usize {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Default for Logger {
    fn default() -> Self {
        Self::new()
    }
}

struct Line<'a> {
    uptime_us: u64,
    level: Level,
    args: &'a fmt::Arguments<'a>,
}

impl fmt::Display for Line<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_prefix(f, self.uptime_us, self.level)?;
        writeln!(f, "{}", self.args)
    }
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        match self.console.get() {
            Some(c) => {
                let line = Line { uptime_us: c.uptime_us(), level: record.level(), args: record.args() };
                c.write_line(format_args!("{line}"));
            }
            None => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn flush(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    struct Buf(Mutex<String>);

    impl Console for Buf {
        fn write_line(&self, line: fmt::Arguments<'_>) {
            self.0.lock().unwrap().push_str(&line.to_string());
        }
        fn uptime_us(&self) -> u64 {
            12_345_678
        }
    }

    #[test]
    fn lines_carry_prefix_time_and_level() {
        let buf: &'static Buf = Box::leak(Box::new(Buf(Mutex::new(String::new()))));
        let logger = Logger::new();
        let x = 5;
        log::set_max_level(LevelFilter::Trace);
        logger.log(&Record::builder().level(Level::Warn).args(format_args!("x={x}")).build());
        assert_eq!(logger.dropped(), 1);
        logger.set_console(buf);
        logger.log(&Record::builder().level(Level::Warn).args(format_args!("x={x}")).build());
        assert_eq!(buf.0.lock().unwrap().as_str(), "(HL) [  12.345678] WARN  x=5\n");
    }

    #[test]
    fn level_names() {
        assert_eq!(parse_level("debug"), Some(LevelFilter::Debug));
        assert_eq!(parse_level("warning"), Some(LevelFilter::Warn));
        assert_eq!(parse_level("loud"), None);
    }
}
