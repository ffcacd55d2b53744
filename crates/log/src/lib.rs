//! Portico's diagnostic lines (start-up, lifecycle, errors): the `logln!`
//! family of macros, emitted as `tracing` events and written by one small
//! layer to stderr, one `write(2)` per line, as plain text (uWSGI's words,
//! after the `--log-date` prefix) or as one JSON object per line
//! (`--log-json`), filtered by `--log-level`.
//!
//! Not the access log: its lines and formats belong to `portico-server`
//! and are written whatever the level.

use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::str::FromStr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

#[doc(hidden)]
pub use tracing as __tracing;

/// The least severe diagnostic lines written (`--log-level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Failures only.
    Error = 1,
    /// Failures and warnings.
    Warn = 2,
    /// Everything uWSGI would print (the default).
    Info = 3,
    /// Also the details useful when looking into a problem.
    Debug = 4,
}

impl FromStr for LogLevel {
    type Err = String;
    fn from_str(s: &str) -> Result<LogLevel, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "error" => Ok(LogLevel::Error),
            "warn" | "warning" => Ok(LogLevel::Warn),
            "info" => Ok(LogLevel::Info),
            "debug" => Ok(LogLevel::Debug),
            other => Err(format!(
                "unknown log level \"{other}\" (expected error, warn, info or debug)"
            )),
        }
    }
}

static LEVEL: AtomicU8 = AtomicU8::new(LogLevel::Info as u8);
static JSON: AtomicBool = AtomicBool::new(false);
/// Writes the `--log-date` prefix of a text line (set by the server crate).
static PREFIX: OnceLock<fn(&mut Vec<u8>)> = OnceLock::new();

/// Write lines of `level` and more severe from now on.
pub fn set_level(level: LogLevel) {
    LEVEL.store(level as u8, Ordering::Relaxed);
}

/// Write JSON objects instead of text lines from now on.
pub fn set_json(json: bool) {
    JSON.store(json, Ordering::Relaxed);
}

/// Start every text line with what `prefix` writes (once; later calls are ignored).
pub fn set_prefix(prefix: fn(&mut Vec<u8>)) {
    let _ = PREFIX.set(prefix);
}

/// Make this process's diagnostic lines go to stderr. Call once, first
/// thing in `main`; the level and format may change afterwards.
pub fn install() {
    let subscriber = tracing_subscriber::registry().with(Lines);
    let _ = tracing::subscriber::set_global_default(subscriber);
}

fn rank(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 1,
        Level::WARN => 2,
        Level::INFO => 3,
        Level::DEBUG => 4,
        _ => 5,
    }
}

/// The layer that writes each event as one line.
struct Lines;

impl<S: Subscriber> Layer<S> for Lines {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        // The level can change at run time: ask `enabled` every time.
        Interest::sometimes()
    }

    fn enabled(&self, metadata: &Metadata<'_>, _: Context<'_, S>) -> bool {
        rank(metadata.level()) <= LEVEL.load(Ordering::Relaxed)
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let meta = event.metadata();
        let line = if JSON.load(Ordering::Relaxed) {
            json_line(meta.level(), meta.target(), &fields)
        } else {
            text_line(&fields)
        };
        let _ = std::io::stderr().write_all(&line);
    }
}

/// An event's message and other fields, in order.
#[derive(Default)]
struct Fields {
    message: String,
    others: Vec<(&'static str, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.others.push((field.name(), value.to_string()));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            self.others.push((field.name(), format!("{value:?}")));
        }
    }
}

fn text_line(fields: &Fields) -> Vec<u8> {
    let mut line = Vec::with_capacity(fields.message.len() + 64);
    if let Some(prefix) = PREFIX.get() {
        prefix(&mut line);
    }
    line.extend_from_slice(fields.message.as_bytes());
    for (name, value) in &fields.others {
        let _ = write!(line, " {name}={value}");
    }
    line.push(b'\n');
    line
}

fn json_line(level: &Level, target: &str, fields: &Fields) -> Vec<u8> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let mut object = serde_json::Map::new();
    object.insert(
        "time".into(),
        serde_json::Value::from(now.as_millis() as f64 / 1000.0),
    );
    object.insert("level".into(), level.as_str().to_ascii_lowercase().into());
    object.insert("target".into(), target.into());
    object.insert("message".into(), fields.message.clone().into());
    for (name, value) in &fields.others {
        object.insert((*name).into(), value.clone().into());
    }
    let mut line = serde_json::to_vec(&object).unwrap_or_default();
    line.push(b'\n');
    line
}

/// A diagnostic line at the info level: `eprintln!`'s arguments, one write per line.
#[macro_export]
macro_rules! logln {
    ($($arg:tt)*) => {
        $crate::__tracing::info!(target: "portico", "{}", format_args!($($arg)*))
    };
}

/// A diagnostic line at the error level.
#[macro_export]
macro_rules! log_error {
    ($($arg:tt)*) => {
        $crate::__tracing::error!(target: "portico", "{}", format_args!($($arg)*))
    };
}

/// A diagnostic line at the warn level.
#[macro_export]
macro_rules! log_warn {
    ($($arg:tt)*) => {
        $crate::__tracing::warn!(target: "portico", "{}", format_args!($($arg)*))
    };
}

/// A diagnostic line at the debug level.
#[macro_export]
macro_rules! log_debug {
    ($($arg:tt)*) => {
        $crate::__tracing::debug!(target: "portico", "{}", format_args!($($arg)*))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_by_name_and_order_by_severity() {
        assert_eq!("WARNING".parse(), Ok(LogLevel::Warn));
        assert_eq!("debug".parse(), Ok(LogLevel::Debug));
        assert!(matches!("loud".parse::<LogLevel>(), Err(e) if e.contains("\"loud\"")));
        assert!(LogLevel::Error < LogLevel::Info);
    }

    #[test]
    fn a_text_line_is_the_message_and_a_json_line_one_object() {
        let fields = Fields {
            message: "spawned uWSGI worker 1 (pid: 7, cores: 1)".into(),
            others: vec![("peer", "a\"b".into())],
        };
        assert_eq!(
            String::from_utf8_lossy(&text_line(&fields)),
            "spawned uWSGI worker 1 (pid: 7, cores: 1) peer=a\"b\n"
        );
        let line = json_line(&Level::WARN, "portico", &fields);
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(&line) else {
            panic!("not JSON: {}", String::from_utf8_lossy(&line));
        };
        assert_eq!(value["level"], "warn");
        assert_eq!(
            value["message"],
            "spawned uWSGI worker 1 (pid: 7, cores: 1)"
        );
        assert_eq!(value["peer"], "a\"b");
        assert_eq!(line.last(), Some(&b'\n'));
    }
}
