//! The access log: one line per request in uWSGI's default shape, written
//! with a single write so lines from several threads never interleave.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use crate::date::ctime;

/// What one finished request contributes to the log.
pub(crate) struct LogEntry<'a> {
    pub peer: &'a str,
    pub app_id: i32,
    pub vars: u32,
    pub vars_bytes: u32,
    pub started: SystemTime,
    pub method: &'a [u8],
    pub uri: &'a [u8],
    pub body_bytes: u64,
    pub elapsed: Duration,
    pub protocol: &'a [u8],
    pub status: u16,
    pub header_count: u32,
    pub header_bytes: u64,
}

/// The per-process request log.
pub struct AccessLog {
    enabled: bool,
    pid: u32,
    requests: AtomicU64,
}

impl AccessLog {
    pub fn new(enabled: bool) -> AccessLog {
        AccessLog {
            enabled,
            pid: std::process::id(),
            requests: AtomicU64::new(0),
        }
    }

    pub(crate) fn record(&self, e: &LogEntry<'_>) {
        let n = self.requests.fetch_add(1, Ordering::Relaxed) + 1;
        if !self.enabled {
            return;
        }
        let mut line = Vec::with_capacity(256);
        let _ = write!(
            line,
            "[pid: {}|app: {}|req: {}/{}] {} () {{{} vars in {} bytes}} [{}] ",
            self.pid,
            e.app_id,
            if e.app_id < 0 { -1 } else { n as i64 },
            n,
            e.peer,
            e.vars,
            e.vars_bytes,
            ctime(e.started),
        );
        line.extend_from_slice(&printable(e.method));
        line.push(b' ');
        line.extend_from_slice(&printable(e.uri));
        let _ = writeln!(
            line,
            " => generated {} bytes in {} msecs ({} {}) {} headers in {} bytes (1 switches on core 0)",
            e.body_bytes,
            e.elapsed.as_millis(),
            String::from_utf8_lossy(e.protocol),
            e.status,
            e.header_count,
            e.header_bytes,
        );
        let _ = std::io::stderr().lock().write_all(&line);
    }
}

/// Request bytes as they may appear in a log line: control bytes escaped.
fn printable(bytes: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if bytes.iter().all(|b| (0x20..0x7f).contains(b)) {
        return std::borrow::Cow::Borrowed(bytes);
    }
    let mut out = Vec::with_capacity(bytes.len() + 8);
    for &b in bytes {
        if (0x20..0x7f).contains(&b) {
            out.push(b);
        } else {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Write one log line to stderr with a single `write(2)`, so lines from the
/// master, the workers and their threads never interleave mid-line (a
/// plain `eprintln!` writes each formatted piece separately).
pub fn write_log_line(args: std::fmt::Arguments<'_>) {
    let mut line = args.to_string();
    line.push('\n');
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// `eprintln!`, but one write per line: see [`write_log_line`].
#[macro_export]
macro_rules! logln {
    ($($arg:tt)*) => {
        $crate::write_log_line(format_args!($($arg)*))
    };
}
