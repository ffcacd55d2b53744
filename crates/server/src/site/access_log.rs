//! nginx's `access_log PATH [FORMAT]` with `log_format` (and the
//! predefined `combined`): one line per request, written once the response
//! is out, because `$status`, `$body_bytes_sent` and `$request_time` are
//! only known then. When the engine finishes an answer in a location that
//! logs, it keeps the request's facts as a [`Record`] under a tag it puts
//! in the response's `meta.log_tag`; the connection calls
//! [`crate::Handler::done`] with the sizes it wrote, and the line is
//! rendered with the router's variables (`vars.rs`) and appended to each
//! file with one `write(2)` (`O_APPEND`, so processes never interleave).
//!
//! Values are escaped as nginx's `escape=default` does (`"`, `\`, control
//! bytes and bytes above 0x7e as `\xHH`); a variable without a value is
//! written `-`. Records of responses that were never written (the client
//! left) are dropped after [`RECORD_TTL`].

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use portico_config::site::{
    AccessLogTarget, LocationConfig, Site, Template, TemplatePart, Variable,
};
use portico_proto::http1::Headers;

use super::captures::Captures;
use super::select::ConnAddr;
use super::vars::{self, ProxyFacts, ResponseFacts, VarContext};
use crate::handler::Sent;

/// How long a record waits for its response to be written before it is
/// dropped (a client that left mid-response never reports back).
const RECORD_TTL: Duration = Duration::from_secs(600);

/// Records kept before expired ones are swept.
const SWEEP_AT: usize = 4096;

/// Everything a log line may need about one request, owned.
pub(crate) struct Record {
    pub server: usize,
    pub location: Arc<LocationConfig>,
    pub location_prefix: Option<Vec<u8>>,
    pub method: Bytes,
    pub target: Bytes,
    pub request_uri: Bytes,
    pub uri: Bytes,
    pub args: Bytes,
    pub headers: Headers,
    pub host: Bytes,
    pub peer: Option<SocketAddr>,
    pub local: ConnAddr,
    pub scheme: &'static str,
    pub tls: Option<Arc<crate::tls::TlsFacts>>,
    pub protocol: String,
    pub captures: Captures,
    pub server_captures: Captures,
    pub start: SystemTime,
    /// `$proxy_host`, `$upstream_*` of a proxied request.
    pub proxy: Option<ProxyFacts>,
    /// The gzip filter's tally, if the answer was gzipped (`$gzip_ratio`).
    pub gzip: Option<Arc<crate::compress::GzipTally>>,
}

/// The records waiting for their responses, and the open log files.
#[derive(Default)]
pub(crate) struct AccessLogs {
    pending: Mutex<Pending>,
    /// Open files by path; `None`: it could not be opened (said once).
    files: Mutex<HashMap<PathBuf, Option<File>>>,
}

#[derive(Default)]
struct Pending {
    next: u64,
    records: HashMap<u64, (Instant, Record)>,
}

/// True when `config` writes request lines anywhere.
pub(crate) fn logs(config: &LocationConfig) -> bool {
    config
        .access_log
        .iter()
        .any(|t| matches!(t, AccessLogTarget::File { .. }))
}

impl AccessLogs {
    /// Keep `record` until its response is written; the tag for `meta.log_tag`.
    pub(crate) fn hold(&self, record: Record) -> u64 {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if pending.records.len() >= SWEEP_AT {
            let now = Instant::now();
            pending
                .records
                .retain(|_, (at, _)| now.duration_since(*at) < RECORD_TTL);
        }
        pending.next = pending.next.wrapping_add(1).max(1);
        let tag = pending.next;
        pending.records.insert(tag, (Instant::now(), record));
        tag
    }

    /// The response tagged `tag` is out (`sent`) or abandoned (`None`).
    pub(crate) fn done(&self, site: &Site, prefix: &Path, tag: u64, sent: Option<&Sent>) {
        let record = {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            pending.records.remove(&tag)
        };
        let (Some((_, record)), Some(sent)) = (record, sent) else {
            return;
        };
        let Some(server) = site.servers.get(record.server) else {
            return;
        };
        let cx = VarContext {
            method: &record.method,
            target: &record.target,
            request_uri: &record.request_uri,
            uri: &record.uri,
            args: &record.args,
            headers: &record.headers,
            host: &record.host,
            peer: record.peer,
            local: &record.local,
            scheme: record.scheme,
            tls: record.tls.as_deref(),
            server_protocol: &record.protocol,
            server,
            location: &record.location,
            location_prefix: record.location_prefix.as_deref(),
            prefix,
            captures: &record.captures,
            server_captures: &record.server_captures,
            response: ResponseFacts {
                status: sent.status,
                body_bytes_sent: sent.body_bytes,
                bytes_sent: sent.header_bytes + sent.body_bytes,
                gzip: record.gzip.as_ref().and_then(|t| t.totals()),
            },
            start: record.start,
            now: Some(SystemTime::now()),
            maps: &site.maps,
            proxy: record.proxy.as_ref(),
        };
        for target in &record.location.access_log {
            let AccessLogTarget::File { path, format } = target else {
                continue;
            };
            let Some(def) = site.log_formats.iter().find(|f| &f.name == format) else {
                continue;
            };
            let mut line = render(&def.template, &cx);
            line.push(b'\n');
            self.write(path, &line);
        }
    }

    fn write(&self, path: &Path, line: &[u8]) {
        if path == Path::new("stderr") {
            let _ = std::io::stderr().write_all(line);
            return;
        }
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        let file = files.entry(path.to_path_buf()).or_insert_with(|| {
            match OpenOptions::new().append(true).create(true).open(path) {
                Ok(file) => Some(file),
                Err(e) => {
                    crate::logln!("portico: open() \"{}\" failed: {e}", path.display());
                    None
                }
            }
        });
        if let Some(f) = file
            && let Err(e) = f.write_all(line)
        {
            crate::logln!("portico: write() to \"{}\" failed: {e}", path.display());
            *file = None;
        }
    }

    /// Close the log files: the next line opens them again (after a log
    /// rotation, nginx's `-s reopen`).
    pub(crate) fn reopen(&self) {
        self.files.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// One line of `template` (no newline): literals as written, each
/// variable escaped, `-` for one without a value.
pub(crate) fn render(template: &Template, cx: &VarContext<'_>) -> Vec<u8> {
    let mut line = Vec::with_capacity(256);
    let mut value = Vec::new();
    for part in &template.parts {
        match part {
            TemplatePart::Literal(text) => line.extend_from_slice(text.as_bytes()),
            TemplatePart::Var(var) => {
                value.clear();
                vars::eval_var(var, cx, &mut value);
                if value.is_empty() {
                    // nginx's "not found" dash; these are found but empty.
                    if !matches!(var, Variable::IsArgs | Variable::Https | Variable::Http2) {
                        line.push(b'-');
                    }
                } else {
                    escape(&mut line, &value);
                }
            }
        }
    }
    line
}

/// nginx's `escape=default` for log values.
fn escape(out: &mut Vec<u8>, value: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in value {
        if b == b'"' || b == b'\\' || !(0x20..=0x7e).contains(&b) {
            out.extend_from_slice(&[b'\\', b'x', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
        } else {
            out.push(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn values_are_escaped_as_nginx_escapes_them() {
        let mut out = Vec::new();
        escape(&mut out, b"a\"b\\c\x01\x7f\xe9 d");
        assert_eq!(out, b"a\\x22b\\x5Cc\\x01\\x7F\\xE9 d");
    }
}
