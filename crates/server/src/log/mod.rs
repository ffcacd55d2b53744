//! The request log: one line per request, in uWSGI's default shape, in a
//! `--log-format` of uWSGI's `%(var)` placeholders, or as JSON; filtered by
//! `--disable-logging` and its exceptions (`--log-4xx`, `--log-5xx`,
//! `--log-slow`). Every line, request or not, is written with a single
//! write(2) on stderr (which `--logto`/`--daemonize` point at the log file),
//! so lines from several processes and threads never interleave.

mod format;

use std::borrow::Cow;
use std::ffi::CString;
use std::io::Write;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use crate::date::{ctime, strftime_local};
use crate::handler::RequestSource;
pub(crate) use format::LineFormat;

/// How request lines are shaped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// uWSGI's default line, field for field.
    #[default]
    Uwsgi,
    /// `--log-format`: uWSGI's `%(var)` placeholders, values escaped.
    Custom(String),
    /// `--log-format-json`: one JSON object per line.
    Json,
}

/// What the request log writes, and when.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// Log every request (off with `--disable-logging`).
    pub enabled: bool,
    /// Log 4xx / 5xx responses and slow requests even when not `enabled`.
    pub log_4xx: bool,
    /// Likewise for 5xx responses.
    pub log_5xx: bool,
    /// Log requests that took longer than this even when not `enabled` (`--log-slow`).
    pub slow: Option<Duration>,
    /// The line's layout: uWSGI's default or a `--log-format`.
    pub format: LogFormat,
    /// The logged address is X-Forwarded-For's first entry when present.
    pub x_forwarded_for: bool,
    /// uWSGI's `--memory-report` prefix (address space and RSS after the request).
    pub memory_report: bool,
    /// Durations in microseconds in the default line (`--log-micros`).
    pub micros: bool,
    /// This worker's number (`%(wid)`), 0 without a master.
    pub worker_id: u32,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            enabled: true,
            log_4xx: false,
            log_5xx: false,
            slow: None,
            format: LogFormat::Uwsgi,
            x_forwarded_for: false,
            memory_report: false,
            micros: false,
            worker_id: 0,
        }
    }
}

/// The request's own fields, kept only when the format needs them.
#[derive(Debug, Clone, Default)]
pub(crate) enum LogFields {
    #[default]
    None,
    /// The request as it arrived (a copy sharing its buffers), read
    /// through the same view as the handlers read it.
    /// Boxed: the connection's future stays small for the requests
    /// (most) whose log line needs no field.
    Request(Box<RequestSource>),
}

impl LogFields {
    /// The request kept, if any.
    pub(crate) fn source(&self) -> Option<&RequestSource> {
        match self {
            LogFields::None => None,
            LogFields::Request(source) => Some(source),
        }
    }
}

/// What one finished request contributes to the log.
pub(crate) struct LogEntry<'a> {
    pub peer: &'a str,
    /// REMOTE_USER, when the front server sent one.
    pub user: &'a [u8],
    pub app_id: i32,
    pub vars: u32,
    pub vars_bytes: u32,
    pub core: u32,
    pub started: SystemTime,
    pub method: &'a [u8],
    pub uri: &'a [u8],
    pub body_bytes: u64,
    pub elapsed: Duration,
    pub protocol: &'a [u8],
    pub status: u16,
    pub header_count: u32,
    pub header_bytes: u64,
    pub fields: &'a LogFields,
    /// The instance-wide request count (uWSGI's `req: A/B` B), when known.
    pub total: Option<u64>,
}

impl LogEntry<'_> {
    /// A request header by name (a uwsgi packet's `HTTP_*` var for it).
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.fields.source()?.header(name)
    }

    /// CONTENT_LENGTH or CONTENT_TYPE: the header `http_name`, or the
    /// uwsgi var `cgi_name` (which has no `HTTP_` prefix).
    fn content_header(&self, http_name: &str, cgi_name: &[u8]) -> Option<&[u8]> {
        match self.fields.source()? {
            RequestSource::Http(_) => self.header(http_name),
            RequestSource::Uwsgi(packet) => packet.var(cgi_name),
        }
    }

    /// The address to log: the peer, or X-Forwarded-For's first entry.
    fn addr(&self, x_forwarded_for: bool) -> &[u8] {
        if x_forwarded_for && let Some(xff) = self.header("x-forwarded-for") {
            let first = xff.split(|&b| b == b',').next().unwrap_or_default();
            let first = first.trim_ascii();
            if !first.is_empty() {
                return first;
            }
        }
        self.peer.as_bytes()
    }
}

/// The per-process request log.
pub struct AccessLog {
    config: LogConfig,
    line: Option<LineFormat>,
    /// The request's headers or vars are needed to render a line.
    needs_fields: bool,
    pid: u32,
    requests: AtomicU64,
}

impl AccessLog {
    /// An access log writing lines as `config` says.
    pub fn new(config: LogConfig) -> AccessLog {
        let line = match &config.format {
            LogFormat::Uwsgi => None,
            LogFormat::Custom(f) => Some(LineFormat::parse(f)),
            LogFormat::Json => Some(LineFormat::json()),
        };
        let needs_fields =
            config.x_forwarded_for || line.as_ref().is_some_and(LineFormat::needs_fields);
        AccessLog {
            config,
            line,
            needs_fields,
            pid: std::process::id(),
            requests: AtomicU64::new(0),
        }
    }

    /// True when [`LogEntry::fields`] should carry the request's headers.
    pub(crate) fn needs_fields(&self) -> bool {
        self.needs_fields && self.may_log()
    }

    /// What [`LogEntry::fields`] keeps of the request: a copy of its
    /// source (`copy` is called only then) when a line may need its
    /// headers or vars, else nothing.
    pub(crate) fn fields_of(&self, copy: impl FnOnce() -> RequestSource) -> LogFields {
        if self.needs_fields() {
            LogFields::Request(Box::new(copy()))
        } else {
            LogFields::None
        }
    }

    fn may_log(&self) -> bool {
        let c = &self.config;
        c.enabled || c.log_4xx || c.log_5xx || c.slow.is_some()
    }

    fn wanted(&self, e: &LogEntry<'_>) -> bool {
        let c = &self.config;
        c.enabled
            || (c.log_4xx && (400..500).contains(&e.status))
            || (c.log_5xx && (500..600).contains(&e.status))
            || c.slow.is_some_and(|slow| e.elapsed > slow)
    }

    pub(crate) fn record(&self, e: &LogEntry<'_>) {
        let n = self.requests.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(line) = self.render(e, n) {
            let _ = std::io::stderr().lock().write_all(&line);
        }
    }

    /// The line for the `n`th request of this process, if it is to be logged.
    fn render(&self, e: &LogEntry<'_>, n: u64) -> Option<Vec<u8>> {
        if !self.wanted(e) {
            return None;
        }
        let mut line = Vec::with_capacity(256);
        // JSON lines stay pure JSON: no date or memory prefix.
        let json_lines = self.line.as_ref().is_some_and(LineFormat::is_json_lines);
        if !json_lines {
            date_prefix(&mut line);
        }
        let memory = (self.config.memory_report
            || self.line.as_ref().is_some_and(LineFormat::needs_memory))
        .then(|| crate::procfs::memory_bytes(None))
        .flatten();
        if self.config.memory_report
            && !json_lines
            && let Some((vsz, rss)) = memory
        {
            let _ = write!(
                line,
                "{{address space usage: {vsz} bytes/{}MB}} {{rss usage: {rss} bytes/{}MB}} ",
                vsz >> 20,
                rss >> 20
            );
        }
        match &self.line {
            None => self.uwsgi_line(&mut line, e, n),
            Some(format) => {
                let ctx = format::Context {
                    entry: e,
                    config: &self.config,
                    pid: self.pid,
                    memory,
                };
                format.render(&mut line, &ctx);
                line.push(b'\n');
            }
        }
        Some(line)
    }

    /// uWSGI's `uwsgi_logit_simple` line.
    fn uwsgi_line(&self, line: &mut Vec<u8>, e: &LogEntry<'_>, n: u64) {
        let _ = write!(
            line,
            "[pid: {}|app: {}|req: {}/{}] ",
            self.pid,
            e.app_id,
            if e.app_id < 0 { -1 } else { n as i64 },
            e.total.unwrap_or(n),
        );
        line.extend_from_slice(&printable(e.addr(self.config.x_forwarded_for)));
        line.extend_from_slice(b" (");
        line.extend_from_slice(&printable(e.user));
        let _ = write!(
            line,
            ") {{{} vars in {} bytes}} [{}] ",
            e.vars,
            e.vars_bytes,
            ctime(e.started),
        );
        line.extend_from_slice(&printable(e.method));
        line.push(b' ');
        line.extend_from_slice(&printable(e.uri));
        let (duration, unit) = if self.config.micros {
            (e.elapsed.as_micros(), "usecs")
        } else {
            (e.elapsed.as_millis(), "msecs")
        };
        let _ = write!(
            line,
            " => generated {} bytes in {duration} {unit} (",
            e.body_bytes
        );
        line.extend_from_slice(&printable(e.protocol));
        let _ = writeln!(
            line,
            " {}) {} headers in {} bytes (1 switches on core {})",
            e.status, e.header_count, e.header_bytes, e.core,
        );
    }
}

/// Request bytes as they may appear in the default line: control bytes,
/// DEL and non-ASCII escaped as `\xHH`, so a line is always one line.
fn printable(bytes: &[u8]) -> Cow<'_, [u8]> {
    if bytes.iter().all(|b| (0x20..0x7f).contains(b)) {
        return Cow::Borrowed(bytes);
    }
    let mut out = Vec::with_capacity(bytes.len() + 8);
    for &b in bytes {
        if (0x20..0x7f).contains(&b) {
            out.push(b);
        } else {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    Cow::Owned(out)
}

/// `--log-date`: `None` no prefix; `Some(None)` ctime; `Some(Some(f))` strftime.
static LOG_DATE: OnceLock<Option<Option<CString>>> = OnceLock::new();

/// Prefix every log line from now on with the date and ` - `, as uWSGI's
/// `--log-date` (ctime when `format` is empty, else a strftime format).
/// Set once, at start-up; later calls are ignored.
pub fn set_log_date(format: Option<&str>) {
    let value = format.map(|f| {
        if f.is_empty() {
            None
        } else {
            CString::new(f.replace('\0', "")).ok()
        }
    });
    let _ = LOG_DATE.set(value);
    portico_log::set_prefix(date_prefix);
}

fn date_prefix(line: &mut Vec<u8>) {
    let Some(Some(date)) = LOG_DATE.get() else {
        return;
    };
    let now = SystemTime::now();
    let text = match date {
        None => ctime(now),
        Some(format) => strftime_local(now, format).unwrap_or_default(),
    };
    line.extend_from_slice(text.as_bytes());
    line.extend_from_slice(b" - ");
}

/// Write one log line to stderr with a single `write(2)`, so lines from the
/// master, the workers and their threads never interleave mid-line (a
/// plain `eprintln!` writes each formatted piece separately).
pub fn write_log_line(args: std::fmt::Arguments<'_>) {
    let mut line = Vec::with_capacity(128);
    date_prefix(&mut line);
    let _ = line.write_fmt(args);
    line.push(b'\n');
    let _ = std::io::stderr().write_all(&line);
}

#[cfg(test)]
mod tests;
