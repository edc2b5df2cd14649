//! klog-format logging on stderr (`I1128 13:15:01.123456   12345 file.rs:42] msg`) with `--v` levels.
//!
//! Callers never pass tokens, keys or certificate bodies here; values that might hold them are
//! logged by name or path only.

use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::timefmt::Civil;

static VERBOSITY: AtomicU8 = AtomicU8::new(0);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    fn letter(self) -> char {
        match self {
            Severity::Info => 'I',
            Severity::Warning => 'W',
            Severity::Error => 'E',
        }
    }
}

/// Sets the `--v` level; `vinfo!(n, ...)` lines print when `n <= level`.
pub fn set_verbosity(level: u8) {
    VERBOSITY.store(level, Ordering::Relaxed);
}

pub fn enabled(level: u8) -> bool {
    level <= VERBOSITY.load(Ordering::Relaxed)
}

/// Formats one log line (without writing it), so the format is testable.
pub fn format_line(
    sev: Severity,
    at: Civil,
    pid: u32,
    file: &str,
    line: u32,
    msg: fmt::Arguments,
) -> String {
    let base = file.rsplit('/').next().unwrap_or(file);
    format!(
        "{}{:02}{:02} {:02}:{:02}:{:02}.{:06} {:>7} {}:{}] {}\n",
        sev.letter(),
        at.month,
        at.day,
        at.hour,
        at.minute,
        at.second,
        at.micros,
        pid,
        base,
        line,
        msg
    )
}

/// Writes one line to stderr in a single write, so lines from threads never interleave.
pub fn write(sev: Severity, file: &str, line: u32, msg: fmt::Arguments) {
    let text = format_line(sev, Civil::now(), std::process::id(), file, line, msg);
    // A closed stderr must not take the agent down; there is nowhere else to report it.
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::log::write($crate::log::Severity::Info, file!(), line!(), format_args!($($arg)*)) };
}

#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::log::write($crate::log::Severity::Warning, file!(), line!(), format_args!($($arg)*)) };
}

#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::log::write($crate::log::Severity::Error, file!(), line!(), format_args!($($arg)*)) };
}

/// Info line printed only at `--v=level` or higher, like klog's `V(level).Info`.
#[macro_export]
macro_rules! vinfo {
    ($level:expr, $($arg:tt)*) => {
        if $crate::log::enabled($level) {
            $crate::log::write($crate::log::Severity::Info, file!(), line!(), format_args!($($arg)*))
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn klog_header_layout() {
        let at = Civil {
            year: 2026,
            month: 11,
            day: 28,
            hour: 3,
            minute: 15,
            second: 1,
            micros: 123,
        };
        let l = format_line(
            Severity::Warning,
            at,
            12345,
            "src/config/mod.rs",
            42,
            format_args!("x={}", 1),
        );
        assert_eq!(l, "W1128 03:15:01.000123   12345 mod.rs:42] x=1\n");
    }

    #[test]
    fn verbosity_gates_levels() {
        set_verbosity(2);
        assert!(enabled(0) && enabled(2) && !enabled(3));
        set_verbosity(0);
        assert!(!enabled(1));
    }
}
