//! Building the PEP 3333 environ for a request. The constant part is a
//! template dict copied per request (for HTTP, with a slot for every
//! variable each request sets, so the copy is rarely resized); keys,
//! methods and protocols are interned once; header names map to their
//! `HTTP_*` keys, and repeated values (Host, Accept, the client's address)
//! to their `str`, through small caches (`environ_cache.rs`). Byte strings
//! from the wire become latin-1 `str`, as PEP 3333 says.

use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;
use portico_server::request_view::path_info;
use portico_server::tls::TlsFacts;
use portico_server::{ListenerInfo, Request, RequestHead, RequestSource, Version};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};

use crate::environ_cache::{Caches, Key, PRESET_VARS};
use crate::errors::WsgiErrors;
use crate::file_wrapper::FileWrapper;
use crate::input::Inputs;

/// Facts about the process that the environ reports.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProcessModel {
    pub multithread: bool,
    pub multiprocess: bool,
}

pub(crate) struct Keys {
    request_method: Key,
    path_info: Key,
    query_string: Key,
    request_uri: Key,
    server_protocol: Key,
    server_name: Key,
    server_port: Key,
    remote_addr: Key,
    remote_port: Key,
    content_type: Key,
    content_length: Key,
    wsgi_input: Py<PyString>,
    script_name: Py<PyString>,
    pub(crate) wsgi_url_scheme: Py<PyString>,
    http10: Py<PyString>,
    http11: Py<PyString>,
    http2: Py<PyString>,
    pub(crate) http: Py<PyString>,
    pub(crate) https: Py<PyString>,
}

/// The methods whose `str` is made once.
const METHODS: [&str; 7] = ["GET", "POST", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS"];

/// Everything built once per process to make environs quickly.
pub(crate) struct EnvironBuilder {
    /// The variables every environ has (`wsgi.*`, SCRIPT_NAME,
    /// SERVER_SOFTWARE), plus a placeholder for each var of nginx's stock
    /// `uwsgi_params` ([`PRESET_VARS`]) and for `wsgi.url_scheme` and
    /// `wsgi.input`: a uwsgi packet's start (placeholders it does not
    /// replace are removed).
    pub(crate) uwsgi_template: Py<PyDict>,
    /// The interned keys of [`PRESET_VARS`], in order.
    pub(crate) presets: Vec<Py<PyString>>,
    /// The same, plus a placeholder for each variable that every HTTP
    /// request sets, overwritten each time: an HTTP request's start.
    http_template: Py<PyDict>,
    /// `wsgi.input`, reused while nobody keeps it.
    inputs: Inputs,
    pub(crate) keys: Keys,
    methods: [Py<PyString>; METHODS.len()],
    caches: Mutex<Caches>,
}

pub(crate) fn latin1<'py>(py: Python<'py>, bytes: &[u8]) -> PyResult<Bound<'py, PyString>> {
    // SAFETY: the pointer and length describe a live slice; CPython copies it
    // and returns a new reference or NULL with an exception set.
    unsafe {
        let ptr = ffi::PyUnicode_DecodeLatin1(
            bytes.as_ptr().cast(),
            bytes.len() as ffi::Py_ssize_t,
            std::ptr::null(),
        );
        Ok(Bound::from_owned_ptr_or_err(py, ptr)?.cast_into_unchecked())
    }
}

fn interned(py: Python<'_>, s: &str) -> Py<PyString> {
    PyString::intern(py, s).unbind()
}

impl EnvironBuilder {
    pub(crate) fn new(py: Python<'_>, model: ProcessModel) -> PyResult<EnvironBuilder> {
        let template = PyDict::new(py);
        template.set_item("wsgi.version", PyTuple::new(py, [1, 0])?)?;
        template.set_item("wsgi.multithread", model.multithread)?;
        template.set_item("wsgi.multiprocess", model.multiprocess)?;
        template.set_item("wsgi.run_once", false)?;
        template.set_item("wsgi.input_terminated", true)?;
        template.set_item("wsgi.errors", Bound::new(py, WsgiErrors)?)?;
        template.set_item("wsgi.file_wrapper", py.get_type::<FileWrapper>())?;
        template.set_item("SCRIPT_NAME", "")?;
        template.set_item(
            "SERVER_SOFTWARE",
            concat!("portico/", env!("CARGO_PKG_VERSION")),
        )?;
        let keys = Keys {
            request_method: Key::new(py, "REQUEST_METHOD"),
            path_info: Key::new(py, "PATH_INFO"),
            query_string: Key::new(py, "QUERY_STRING"),
            request_uri: Key::new(py, "REQUEST_URI"),
            server_protocol: Key::new(py, "SERVER_PROTOCOL"),
            server_name: Key::new(py, "SERVER_NAME"),
            server_port: Key::new(py, "SERVER_PORT"),
            remote_addr: Key::new(py, "REMOTE_ADDR"),
            remote_port: Key::new(py, "REMOTE_PORT"),
            content_type: Key::new(py, "CONTENT_TYPE"),
            content_length: Key::new(py, "CONTENT_LENGTH"),
            wsgi_input: interned(py, "wsgi.input"),
            script_name: interned(py, "SCRIPT_NAME"),
            wsgi_url_scheme: interned(py, "wsgi.url_scheme"),
            http10: interned(py, "HTTP/1.0"),
            http11: interned(py, "HTTP/1.1"),
            http2: interned(py, "HTTP/2"),
            http: interned(py, "http"),
            https: interned(py, "https"),
        };
        let http_template = template.copy()?;
        let empty = PyString::new(py, "");
        for key in [
            &keys.request_method,
            &keys.request_uri,
            &keys.path_info,
            &keys.query_string,
            &keys.server_protocol,
            &keys.remote_addr,
            &keys.server_name,
            &keys.server_port,
        ] {
            http_template.set_item(key.name.bind(py), &empty)?;
        }
        http_template.set_item(keys.wsgi_url_scheme.bind(py), &empty)?;
        http_template.set_item(keys.wsgi_input.bind(py), &empty)?;
        make_room(&http_template)?;
        // 25 entries: the table grows to 64 slots as it is filled (42
        // entries before the next growth, so a packet's headers fit), with
        // no removed entry, so its copies are the quick kind.
        let uwsgi_template = template.copy()?;
        let presets: Vec<Py<PyString>> = PRESET_VARS.iter().map(|v| interned(py, v)).collect();
        for key in &presets {
            uwsgi_template.set_item(key.bind(py), &empty)?;
        }
        uwsgi_template.set_item(keys.wsgi_url_scheme.bind(py), &empty)?;
        uwsgi_template.set_item(keys.wsgi_input.bind(py), &empty)?;
        Ok(EnvironBuilder {
            uwsgi_template: uwsgi_template.unbind(),
            presets,
            http_template: http_template.unbind(),
            methods: METHODS.map(|m| interned(py, m)),
            inputs: Inputs::default(),
            keys,
            caches: Mutex::new(Caches::default()),
        })
    }

    /// A request is over: its `wsgi.input`, if nobody kept it, lets the
    /// body go.
    pub(crate) fn release_input(&self, py: Python<'_>) {
        self.inputs.release(py);
    }

    pub(crate) fn caches(&self) -> MutexGuard<'_, Caches> {
        self.caches.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Build the environ; the request body moves into `wsgi.input`, and
    /// `route` (from the mount table) replaces SCRIPT_NAME and PATH_INFO.
    /// Returns the dict and the number and total size of its CGI variables.
    pub(crate) fn build<'py>(
        &self,
        py: Python<'py>,
        request: Request,
        route: Option<(Bytes, Bytes)>,
    ) -> PyResult<(Bound<'py, PyDict>, u32, u32)> {
        let Request {
            source,
            peer,
            local,
            listener,
            body,
            tls,
            ..
        } = request;
        let (env, (vars, size)) = match &source {
            RequestSource::Http(head) => {
                let env = self.http_template.bind(py).copy()?;
                let counts =
                    self.http_vars(py, &env, head, (peer, local), &listener, tls.as_deref())?;
                (env, counts)
            }
            RequestSource::Uwsgi(packet) => {
                let env = self.uwsgi_environ(py, packet)?;
                let counts = (packet.var_count() as u32 * 2, packet.datasize as u32);
                (env, counts)
            }
        };
        if let Some((script_name, path_info)) = route {
            env.set_item(self.keys.script_name.bind(py), latin1(py, &script_name)?)?;
            env.set_item(self.keys.path_info.name.bind(py), latin1(py, &path_info)?)?;
        }
        let input = self.inputs.take(py, body)?;
        env.set_item(self.keys.wsgi_input.bind(py), input)?;
        Ok((env, vars, size))
    }

    /// An HTTP request's CGI variables and headers.
    fn http_vars<'py>(
        &self,
        py: Python<'py>,
        env: &Bound<'py, PyDict>,
        head: &RequestHead,
        (peer, local): (Option<SocketAddr>, Option<SocketAddr>),
        listener: &ListenerInfo,
        tls: Option<&TlsFacts>,
    ) -> PyResult<(u32, u32)> {
        let k = &self.keys;
        let mut caches = self.caches();
        let mut counts = Counts::default();

        let method = match METHODS.iter().position(|m| m.as_bytes() == head.method) {
            Some(i) => self.methods[i].bind(py).clone(),
            None => latin1(py, &head.method)?,
        };
        counts.put(env, &k.request_method, &method, head.method.len())?;
        let target = latin1(py, &head.target)?;
        counts.put(env, &k.request_uri, &target, head.target.len())?;
        let path = path_info(head);
        // Without a query or escapes, PATH_INFO is REQUEST_URI: one `str`.
        let path_str = if *path == *head.target {
            target
        } else {
            latin1(py, &path)?
        };
        counts.put(env, &k.path_info, &path_str, path.len())?;
        counts.put(
            env,
            &k.query_string,
            &latin1(py, &head.query)?,
            head.query.len(),
        )?;
        let protocol = match head.version {
            Version::Http10 => &k.http10,
            Version::Http11 => &k.http11,
            // As Granian and Hypercorn say it (nginx's `$server_protocol` is `HTTP/2.0`).
            Version::Http2 => &k.http2,
        };
        let protocol_len = if head.version == Version::Http2 { 6 } else { 8 };
        counts.put(env, &k.server_protocol, protocol.bind(py), protocol_len)?;
        match peer {
            Some(peer) => {
                let (addr, addr_len) = caches.remote_addr(py, peer.ip())?;
                counts.put(env, &k.remote_addr, &addr, addr_len)?;
                let mut digits = itoa::Buffer::new();
                let port = digits.format(peer.port());
                counts.put(
                    env,
                    &k.remote_port,
                    &latin1(py, port.as_bytes())?,
                    port.len(),
                )?;
            }
            None => counts.put(env, &k.remote_addr, &PyString::new(py, ""), 0)?,
        }

        // RFC 9112 §3.2.2: an absolute-form target's authority wins over Host.
        let authority = absolute_form_authority(&head.target).or(head.host.as_deref());
        let (name, name_len, port, port_len) = match (authority, local, &listener.addr) {
            (Some(host), _, _) if !host.is_empty() => caches.server(py, host, listener.scheme)?,
            (_, Some(local), _) => {
                let name = local.ip().to_string();
                let port = local.port().to_string();
                (
                    PyString::new(py, &name),
                    name.len(),
                    PyString::new(py, &port),
                    port.len(),
                )
            }
            (_, None, addr) => {
                let name = addr.to_string();
                (
                    PyString::new(py, &name),
                    name.len(),
                    PyString::new(py, ""),
                    0,
                )
            }
        };
        counts.put(env, &k.server_name, &name, name_len)?;
        counts.put(env, &k.server_port, &port, port_len)?;
        let scheme = match listener.scheme {
            "https" => k.https.bind(py).clone(),
            "http" => k.http.bind(py).clone(),
            other => PyString::new(py, other),
        };
        env.set_item(k.wsgi_url_scheme.bind(py), scheme)?;

        // Headers: repeated ones joined (", ", cookies "; ") where the
        // first one stands, in order.
        let headers = &head.headers;
        for (i, header) in headers.iter().enumerate() {
            let name = header.name;
            if name.eq_ignore_ascii_case(b"content-type") {
                counts.put(
                    env,
                    &k.content_type,
                    &latin1(py, header.value)?,
                    header.value.len(),
                )?;
                continue;
            }
            if name.eq_ignore_ascii_case(b"content-length") {
                counts.put(
                    env,
                    &k.content_length,
                    &latin1(py, header.value)?,
                    header.value.len(),
                )?;
                continue;
            }
            // (Fields of another name length are passed over unread.)
            if headers.named_before(i, name) {
                continue; // joined where the first of its name stood
            }
            let Some(entry) = caches.header(py, i, name)? else {
                continue;
            };
            let (key, key_len) = (entry.key.bind(py).clone(), entry.key_len);
            let repeats = headers.values_from(name, i + 1);
            let (value, value_len) = if repeats.clone().next().is_none() {
                (entry.value(py, header.value)?, header.value.len())
            } else {
                let separator: &[u8] = if name.eq_ignore_ascii_case(b"cookie") {
                    b"; "
                } else {
                    b", "
                };
                let mut joined = header.value.to_vec();
                for repeat in repeats {
                    joined.extend_from_slice(separator);
                    joined.extend_from_slice(repeat);
                }
                (latin1(py, &joined)?, joined.len())
            };
            counts.add(key_len, value_len);
            env.set_item(key, value)?;
        }
        drop(caches);
        if let Some(tls) = tls {
            // uWSGI's https router sets HTTPS and HTTPS_DN; SSL_CLIENT_*
            // are the names of nginx's and Apache's examples.
            let mut tls_var = |key: &str, value: &str| -> PyResult<()> {
                counts.add(key.len(), value.len());
                env.set_item(key, value)
            };
            tls_var("HTTPS", "on")?;
            if let Some(dn) = &tls.client_s_dn_legacy {
                tls_var("HTTPS_DN", dn)?;
            }
            if let Some(dn) = &tls.client_s_dn {
                tls_var("SSL_CLIENT_S_DN", dn)?;
            }
            if let Some(dn) = &tls.client_i_dn {
                tls_var("SSL_CLIENT_I_DN", dn)?;
            }
            tls_var("SSL_CLIENT_VERIFY", &tls.client_verify)?;
            tls_var("SSL_PROTOCOL", tls.protocol)?;
            tls_var("SSL_CIPHER", tls.cipher)?;
        }
        Ok((counts.vars * 2, counts.size as u32))
    }
}

/// Entries a dict of this CPython takes before its first resize (a
/// 32-slot table holds 21).
const FIRST_RESIZE_AT: usize = 22;

/// Grow a template's table once, so that its copies (which keep the
/// table's size) take a request's headers without resizing: add entries
/// until it must grow (to 64 slots, 42 entries), then remove them. Its
/// copies stay the quick kind (a copy of the table, not entry by entry)
/// while under a third of the table's used slots are removed ones: true
/// of the HTTP template (19 entries, 3 removed); the uwsgi one has enough
/// entries of its own to grow without removals. Only speed depends on this; on another CPython it
/// may do nothing.
fn make_room(template: &Bound<'_, PyDict>) -> PyResult<()> {
    let py = template.py();
    let pads: Vec<String> = (template.len()..FIRST_RESIZE_AT)
        .map(|i| format!("portico.pad.{i}"))
        .collect();
    for pad in &pads {
        template.set_item(pad, py.None())?;
    }
    for pad in &pads {
        template.del_item(pad)?;
    }
    Ok(())
}

/// uWSGI's counts of an environ's CGI variables, for its log line.
#[derive(Default)]
struct Counts {
    vars: u32,
    /// uWSGI's datasize: each pair as the uwsgi packet encodes it, two
    /// 2-byte lengths, the key, the value.
    size: usize,
}

impl Counts {
    fn add(&mut self, key_len: usize, value_len: usize) {
        self.vars += 1;
        self.size += 4 + key_len + value_len;
    }

    fn put<'py>(
        &mut self,
        env: &Bound<'py, PyDict>,
        key: &Key,
        value: &Bound<'py, PyString>,
        raw_len: usize,
    ) -> PyResult<()> {
        self.add(key.len, raw_len);
        env.set_item(key.name.bind(env.py()), value)
    }
}

/// The `host[:port]` of an absolute-form target (`http://host:port/path`).
fn absolute_form_authority(target: &[u8]) -> Option<&[u8]> {
    let rest = target
        .strip_prefix(b"http://")
        .or_else(|| target.strip_prefix(b"https://"))?;
    let end = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(rest.len());
    Some(&rest[..end])
}

/// SERVER_NAME and SERVER_PORT from a Host value (`name`, `name:port`,
/// `[v6]:port`); the scheme's default port when none is given.
pub(crate) fn split_host<'a>(host: &'a [u8], scheme: &str) -> (&'a [u8], &'a [u8]) {
    let default_port = if scheme == "https" {
        &b"443"[..]
    } else {
        &b"80"[..]
    };
    let (name, port) = if let Some(rest) = host.strip_prefix(b"[") {
        match rest.iter().position(|&b| b == b']') {
            Some(end) => (
                &rest[..end],
                rest[end + 1..].strip_prefix(b":").unwrap_or(default_port),
            ),
            None => (host, default_port),
        }
    } else {
        match host.iter().rposition(|&b| b == b':') {
            Some(i) => (&host[..i], &host[i + 1..]),
            None => (host, default_port),
        }
    };
    let port = if port.is_empty() { default_port } else { port };
    (name, port)
}

#[cfg(test)]
mod tests {
    use super::split_host;

    #[test]
    fn absolute_form_target_names_the_server() {
        use super::absolute_form_authority;
        assert_eq!(
            absolute_form_authority(b"http://other.example:81/x?y"),
            Some(&b"other.example:81"[..])
        );
        assert_eq!(absolute_form_authority(b"https://h"), Some(&b"h"[..]));
        assert_eq!(absolute_form_authority(b"/x"), None);
    }

    #[test]
    fn host_splits_into_name_and_port_with_scheme_default() {
        assert_eq!(
            split_host(b"example.com:8080", "http"),
            (&b"example.com"[..], &b"8080"[..])
        );
        assert_eq!(
            split_host(b"example.com", "http"),
            (&b"example.com"[..], &b"80"[..])
        );
        assert_eq!(
            split_host(b"[::1]:9000", "http"),
            (&b"::1"[..], &b"9000"[..])
        );
        assert_eq!(split_host(b"[::1]", "https"), (&b"::1"[..], &b"443"[..]));
    }
}
