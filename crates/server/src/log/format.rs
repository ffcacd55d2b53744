//! `--log-format` (uWSGI's `%(var)` placeholders) and `--log-format-json`:
//! parsed once into chunks, rendered per request. Unlike uWSGI, every value
//! is escaped, so a quote or control byte in a URI cannot end a quoted
//! field or the line: `\"`, `\\` and `\xHH` in ordinary formats, `\"`, `\\`
//! and `\u00HH` in JSON ones (a format starting with `{`, and
//! `--log-format-json`). A value that renders empty is written `-`, as in
//! uWSGI (`""` in JSON).

use std::io::Write;
use std::time::SystemTime;

use crate::handler::RequestSource;
use crate::request_view::header_matches_var;

use super::{LOG_DATE, LogConfig, LogEntry};
use crate::date::{ctime, strftime_local, unix_micros};
use crate::json::{NonAscii, escape_json};

/// One `%(name)` of uWSGI's, or a request variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Var {
    Uri,
    Method,
    User,
    Addr,
    Host,
    Proto,
    Uagent,
    Referer,
    Status,
    Rsize,
    Hsize,
    Size,
    Cl,
    Micros,
    Msecs,
    Secs,
    Tmsecs,
    Tmicros,
    Time,
    Ltime,
    Ftime,
    Ctime,
    Epoch,
    Pid,
    Wid,
    Core,
    App,
    Switches,
    Vars,
    Headers,
    Pktsize,
    /// modifier1, modifier2, werr, rerr, ioerr: always 0 here.
    Zero,
    Rss,
    Vsz,
    RssM,
    VszM,
    /// `var.NAME`: a CGI/WSGI request variable.
    Request(Vec<u8>),
    /// An app log variable (uWSGI's `set_logvar`): always empty here.
    Unknown,
}

impl Var {
    fn parse(name: &str) -> Var {
        if let Some(var) = name.strip_prefix("var.") {
            return Var::Request(var.as_bytes().to_vec());
        }
        match name {
            "uri" => Var::Uri,
            "method" => Var::Method,
            "user" => Var::User,
            "addr" => Var::Addr,
            "host" => Var::Host,
            "proto" => Var::Proto,
            "uagent" => Var::Uagent,
            "referer" => Var::Referer,
            "status" => Var::Status,
            "rsize" => Var::Rsize,
            "hsize" => Var::Hsize,
            "size" => Var::Size,
            "cl" => Var::Cl,
            "micros" => Var::Micros,
            "msecs" => Var::Msecs,
            "secs" => Var::Secs,
            "tmsecs" => Var::Tmsecs,
            "tmicros" => Var::Tmicros,
            "time" => Var::Time,
            "ltime" => Var::Ltime,
            "ftime" => Var::Ftime,
            "ctime" => Var::Ctime,
            "epoch" => Var::Epoch,
            "pid" => Var::Pid,
            "wid" => Var::Wid,
            "core" => Var::Core,
            "app" => Var::App,
            "switches" => Var::Switches,
            "vars" => Var::Vars,
            "headers" => Var::Headers,
            "pktsize" => Var::Pktsize,
            "modifier1" | "modifier2" | "werr" | "rerr" | "ioerr" => Var::Zero,
            "rss" => Var::Rss,
            "vsz" => Var::Vsz,
            "rssM" => Var::RssM,
            "vszM" => Var::VszM,
            _ => Var::Unknown,
        }
    }

    fn needs_fields(&self) -> bool {
        matches!(
            self,
            Var::Host | Var::Uagent | Var::Referer | Var::Cl | Var::Request(_)
        )
    }

    fn needs_memory(&self) -> bool {
        matches!(self, Var::Rss | Var::Vsz | Var::RssM | Var::VszM)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Chunk {
    Literal(Vec<u8>),
    Var(Var),
}

/// How a JSON field's value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JsonKind {
    Number,
    Text,
}

/// The fields of `--log-format-json`, in order.
const JSON_FIELDS: &[(&str, JsonKind, &str)] = &[
    ("time", JsonKind::Number, "secs-start"),
    ("ltime", JsonKind::Text, "ltime"),
    ("addr", JsonKind::Text, "addr"),
    ("user", JsonKind::Text, "user"),
    ("method", JsonKind::Text, "method"),
    ("uri", JsonKind::Text, "uri"),
    ("proto", JsonKind::Text, "proto"),
    ("status", JsonKind::Number, "status"),
    ("size", JsonKind::Number, "size"),
    ("rsize", JsonKind::Number, "rsize"),
    ("hsize", JsonKind::Number, "hsize"),
    ("msecs", JsonKind::Number, "msecs"),
    ("micros", JsonKind::Number, "micros"),
    ("host", JsonKind::Text, "host"),
    ("referer", JsonKind::Text, "referer"),
    ("uagent", JsonKind::Text, "uagent"),
    ("pid", JsonKind::Number, "pid"),
    ("wid", JsonKind::Number, "wid"),
    ("core", JsonKind::Number, "core"),
    ("app", JsonKind::Number, "app"),
];

/// A parsed line format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LineFormat {
    Template {
        chunks: Vec<Chunk>,
        json: bool,
    },
    /// `--log-format-json`.
    Json,
}

/// Everything a value may be taken from.
pub(super) struct Context<'a> {
    pub entry: &'a LogEntry<'a>,
    pub config: &'a LogConfig,
    pub pid: u32,
    /// (address space, RSS) in bytes, when sampled.
    pub memory: Option<(u64, u64)>,
}

impl LineFormat {
    /// Parse a `--log-format` string. Never fails: text that is not a
    /// complete `%(name)` is kept as it is.
    pub(crate) fn parse(format: &str) -> LineFormat {
        let mut chunks = Vec::new();
        let mut literal = Vec::new();
        let mut rest = format;
        while let Some(start) = rest.find("%(") {
            let after = &rest[start + 2..];
            let Some(end) = after.find(')') else { break };
            literal.extend_from_slice(&rest.as_bytes()[..start]);
            if !literal.is_empty() {
                chunks.push(Chunk::Literal(std::mem::take(&mut literal)));
            }
            chunks.push(Chunk::Var(Var::parse(&after[..end])));
            rest = &after[end + 1..];
        }
        literal.extend_from_slice(rest.as_bytes());
        if !literal.is_empty() {
            chunks.push(Chunk::Literal(literal));
        }
        LineFormat::Template {
            chunks,
            json: format.trim_start().starts_with('{'),
        }
    }

    pub(crate) fn json() -> LineFormat {
        LineFormat::Json
    }

    pub(crate) fn needs_fields(&self) -> bool {
        match self {
            LineFormat::Template { chunks, .. } => chunks
                .iter()
                .any(|c| matches!(c, Chunk::Var(v) if v.needs_fields())),
            LineFormat::Json => true,
        }
    }

    pub(crate) fn needs_memory(&self) -> bool {
        match self {
            LineFormat::Template { chunks, .. } => chunks
                .iter()
                .any(|c| matches!(c, Chunk::Var(v) if v.needs_memory())),
            LineFormat::Json => false,
        }
    }

    /// True for `--log-format-json` (whose lines carry no prefix).
    pub(crate) fn is_json_lines(&self) -> bool {
        matches!(self, LineFormat::Json)
    }

    /// Append one rendered line (without its newline) to `out`.
    pub(super) fn render(&self, out: &mut Vec<u8>, ctx: &Context<'_>) {
        let mut value = Vec::with_capacity(64);
        match self {
            LineFormat::Template { chunks, json } => {
                for chunk in chunks {
                    match chunk {
                        Chunk::Literal(text) => out.extend_from_slice(text),
                        Chunk::Var(var) => {
                            value.clear();
                            write_value(&mut value, var, ctx);
                            if value.is_empty() {
                                out.push(b'-');
                            } else if *json {
                                escape_json(out, &value, NonAscii::Latin1);
                            } else {
                                escape_text(out, &value);
                            }
                        }
                    }
                }
            }
            LineFormat::Json => {
                out.push(b'{');
                for (i, (key, kind, source)) in JSON_FIELDS.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    let _ = write!(out, "\"{key}\":");
                    value.clear();
                    json_source(&mut value, source, ctx);
                    match kind {
                        JsonKind::Number if !value.is_empty() => out.extend_from_slice(&value),
                        JsonKind::Number => out.push(b'0'),
                        JsonKind::Text => {
                            out.push(b'"');
                            escape_json(out, &value, NonAscii::Latin1);
                            out.push(b'"');
                        }
                    }
                }
                if let Some((vsz, rss)) = ctx.memory.filter(|_| ctx.config.memory_report) {
                    let _ = write!(out, ",\"vsz\":{vsz},\"rss\":{rss}");
                }
                out.push(b'}');
            }
        }
    }
}

fn json_source(out: &mut Vec<u8>, source: &str, ctx: &Context<'_>) {
    if source == "secs-start" {
        let t = u128::from(unix_micros(ctx.entry.started));
        let _ = write!(out, "{}.{:06}", t / 1_000_000, t % 1_000_000);
    } else {
        write_value(out, &Var::parse(source), ctx);
    }
}

/// The raw (unescaped) value of `var` for this request.
fn write_value(out: &mut Vec<u8>, var: &Var, ctx: &Context<'_>) {
    let e = ctx.entry;
    let num = |out: &mut Vec<u8>, n: u128| {
        let _ = write!(out, "{n}");
    };
    match var {
        Var::Uri => out.extend_from_slice(e.uri),
        Var::Method => out.extend_from_slice(e.method),
        Var::User => out.extend_from_slice(e.user),
        Var::Addr => out.extend_from_slice(e.addr(ctx.config.x_forwarded_for)),
        Var::Host => out.extend_from_slice(e.header("host").unwrap_or_default()),
        Var::Proto => out.extend_from_slice(e.protocol),
        Var::Uagent => out.extend_from_slice(e.header("user-agent").unwrap_or_default()),
        Var::Referer => out.extend_from_slice(e.header("referer").unwrap_or_default()),
        Var::Status => num(out, e.status.into()),
        Var::Rsize => num(out, e.body_bytes.into()),
        Var::Hsize => num(out, e.header_bytes.into()),
        Var::Size => num(out, (e.body_bytes + e.header_bytes).into()),
        Var::Cl => out.extend_from_slice(
            e.content_header("content-length", b"CONTENT_LENGTH")
                .unwrap_or_default(),
        ),
        Var::Micros => num(out, e.elapsed.as_micros()),
        Var::Msecs => num(out, e.elapsed.as_millis()),
        Var::Secs => {
            let _ = write!(out, "{:.6}", e.elapsed.as_secs_f64());
        }
        Var::Tmsecs => num(out, u128::from(unix_micros(e.started)) / 1000),
        Var::Tmicros => num(out, u128::from(unix_micros(e.started))),
        Var::Time => num(out, u128::from(unix_micros(e.started)) / 1_000_000),
        Var::Ltime => out.extend_from_slice(
            strftime_local(e.started, c"%d/%b/%Y:%H:%M:%S %z")
                .unwrap_or_default()
                .as_bytes(),
        ),
        Var::Ftime => {
            let text = match LOG_DATE.get() {
                Some(Some(Some(format))) => strftime_local(e.started, format).unwrap_or_default(),
                _ => ctime(e.started),
            };
            out.extend_from_slice(text.as_bytes());
        }
        Var::Ctime => out.extend_from_slice(ctime(e.started).as_bytes()),
        Var::Epoch => num(out, u128::from(unix_micros(SystemTime::now())) / 1_000_000),
        Var::Pid => num(out, ctx.pid.into()),
        Var::Wid => num(out, ctx.config.worker_id.into()),
        Var::Core => num(out, e.core.into()),
        Var::App => {
            let _ = write!(out, "{}", e.app_id);
        }
        Var::Switches => out.push(b'1'),
        Var::Vars => num(out, e.vars.into()),
        Var::Headers => num(out, e.header_count.into()),
        Var::Pktsize => num(out, e.vars_bytes.into()),
        Var::Zero => out.push(b'0'),
        Var::Rss => num(out, ctx.memory.map_or(0, |m| m.1).into()),
        Var::Vsz => num(out, ctx.memory.map_or(0, |m| m.0).into()),
        Var::RssM => num(out, ctx.memory.map_or(0, |m| m.1 >> 20).into()),
        Var::VszM => num(out, ctx.memory.map_or(0, |m| m.0 >> 20).into()),
        Var::Request(name) => request_var(out, name, ctx),
        Var::Unknown => {}
    }
}

/// `var.NAME`: the uwsgi packet's var, or for HTTP the CGI variable the
/// environ holds (PATH_INFO and QUERY_STRING from the request view, HTTP_*
/// from the headers).
fn request_var(out: &mut Vec<u8>, name: &[u8], ctx: &Context<'_>) {
    let e = ctx.entry;
    let source = match e.fields.source() {
        Some(RequestSource::Uwsgi(packet)) => {
            if let Some(v) = packet.var(name) {
                out.extend_from_slice(v);
            }
            return;
        }
        http => http,
    };
    match name {
        b"REQUEST_METHOD" => out.extend_from_slice(e.method),
        b"REQUEST_URI" => out.extend_from_slice(e.uri),
        b"PATH_INFO" => {
            if let Some(source) = source {
                out.extend_from_slice(&source.path());
            }
        }
        b"QUERY_STRING" => out.extend_from_slice(source.map_or(&b""[..], |s| s.query())),
        b"SERVER_PROTOCOL" => out.extend_from_slice(e.protocol),
        b"REMOTE_ADDR" => out.extend_from_slice(e.peer.as_bytes()),
        b"REMOTE_USER" => out.extend_from_slice(e.user),
        b"CONTENT_LENGTH" => out.extend_from_slice(
            e.content_header("content-length", b"CONTENT_LENGTH")
                .unwrap_or_default(),
        ),
        b"CONTENT_TYPE" => out.extend_from_slice(
            e.content_header("content-type", b"CONTENT_TYPE")
                .unwrap_or_default(),
        ),
        _ => {
            let Some(suffix) = name.strip_prefix(b"HTTP_") else {
                return;
            };
            if let Some(RequestSource::Http(head)) = source
                && let Some(h) = head
                    .headers
                    .iter()
                    .find(|h| header_matches_var(h.name, suffix))
            {
                out.extend_from_slice(h.value);
            }
        }
    }
}

/// `"` and `\` backslashed, control bytes, DEL and non-ASCII as `\xHH`.
fn escape_text(out: &mut Vec<u8>, value: &[u8]) {
    for &b in value {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x20..=0x7e => out.push(b),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
}
