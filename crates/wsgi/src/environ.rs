//! Building the PEP 3333 environ for a request. The constant part is a
//! template dict copied per request; keys, methods and protocols are
//! interned once; header names map to their `HTTP_*` keys through a small
//! cache. Byte strings from the wire become latin-1 `str`, as PEP 3333 says.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;

use bytes::Bytes;
use portico_server::request_view::{has_http_var, http_var_name, path_info};
use portico_server::tls::TlsFacts;
use portico_server::{ListenerInfo, Request, RequestHead, RequestSource, UwsgiPacket, Version};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};

use crate::errors::WsgiErrors;
use crate::file_wrapper::FileWrapper;
use crate::input::WsgiInput;

/// Header names remembered with their environ key; beyond this, keys are
/// built per request (so random names cannot grow memory).
const HEADER_KEY_CACHE_LIMIT: usize = 512;

/// Facts about the process that the environ reports.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProcessModel {
    pub multithread: bool,
    pub multiprocess: bool,
}

struct Keys {
    request_method: Py<PyString>,
    path_info: Py<PyString>,
    query_string: Py<PyString>,
    request_uri: Py<PyString>,
    server_protocol: Py<PyString>,
    server_name: Py<PyString>,
    server_port: Py<PyString>,
    remote_addr: Py<PyString>,
    remote_port: Py<PyString>,
    content_type: Py<PyString>,
    content_length: Py<PyString>,
    wsgi_input: Py<PyString>,
    script_name: Py<PyString>,
    wsgi_url_scheme: Py<PyString>,
    http10: Py<PyString>,
    http11: Py<PyString>,
    http2: Py<PyString>,
}

/// Everything built once per process to make environs quickly.
pub(crate) struct EnvironBuilder {
    template: Py<PyDict>,
    keys: Keys,
    methods: HashMap<&'static [u8], Py<PyString>>,
    header_keys: Mutex<HashMap<Vec<u8>, Py<PyString>>>,
}

fn latin1<'py>(py: Python<'py>, bytes: &[u8]) -> PyResult<Bound<'py, PyString>> {
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
            request_method: interned(py, "REQUEST_METHOD"),
            path_info: interned(py, "PATH_INFO"),
            query_string: interned(py, "QUERY_STRING"),
            request_uri: interned(py, "REQUEST_URI"),
            server_protocol: interned(py, "SERVER_PROTOCOL"),
            server_name: interned(py, "SERVER_NAME"),
            server_port: interned(py, "SERVER_PORT"),
            remote_addr: interned(py, "REMOTE_ADDR"),
            remote_port: interned(py, "REMOTE_PORT"),
            content_type: interned(py, "CONTENT_TYPE"),
            content_length: interned(py, "CONTENT_LENGTH"),
            wsgi_input: interned(py, "wsgi.input"),
            script_name: interned(py, "SCRIPT_NAME"),
            wsgi_url_scheme: interned(py, "wsgi.url_scheme"),
            http10: interned(py, "HTTP/1.0"),
            http11: interned(py, "HTTP/1.1"),
            http2: interned(py, "HTTP/2"),
        };
        let methods = ["GET", "POST", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS"]
            .into_iter()
            .map(|m| (m.as_bytes(), interned(py, m)))
            .collect();
        Ok(EnvironBuilder {
            template: template.unbind(),
            keys,
            methods,
            header_keys: Mutex::new(HashMap::new()),
        })
    }

    /// The `HTTP_*` key for a header name, or None for names that are not
    /// passed to the app (with `_`, which would alias `-`; CGI-named ones).
    fn header_key<'py>(
        &self,
        py: Python<'py>,
        name: &[u8],
    ) -> PyResult<Option<Bound<'py, PyString>>> {
        if !has_http_var(name) {
            return Ok(None);
        }
        let mut cache = self.header_keys.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(key) = cache.get(name) {
            return Ok(Some(key.bind(py).clone()));
        }
        let mut key = Vec::with_capacity(name.len() + 5);
        http_var_name(name, &mut key);
        let key = latin1(py, &key)?;
        if cache.len() < HEADER_KEY_CACHE_LIMIT {
            cache.insert(name.to_vec(), PyString::intern(py, &key.to_cow()?).unbind());
        }
        Ok(Some(key))
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
        let env = self.template.bind(py).copy()?;
        let (vars, size) = match &source {
            RequestSource::Http(head) => {
                self.http_vars(py, &env, head, (peer, local), &listener, tls.as_deref())?
            }
            RequestSource::Uwsgi(packet) => self.uwsgi_vars(py, &env, packet)?,
        };
        if let Some((script_name, path_info)) = route {
            env.set_item(self.keys.script_name.bind(py), latin1(py, &script_name)?)?;
            env.set_item(self.keys.path_info.bind(py), latin1(py, &path_info)?)?;
        }
        let input = Bound::new(py, WsgiInput::new(body))?;
        env.set_item(self.keys.wsgi_input.bind(py), input)?;
        Ok((env, vars, size))
    }

    /// A uwsgi packet's vars, as sent (last wins), and the url scheme as
    /// uWSGI derives it: UWSGI_SCHEME or X-Forwarded-Proto, else HTTPS.
    fn uwsgi_vars(
        &self,
        py: Python<'_>,
        env: &Bound<'_, PyDict>,
        packet: &UwsgiPacket,
    ) -> PyResult<(u32, u32)> {
        let mut scheme: Option<&[u8]> = None;
        let mut https = false;
        for (key, value) in &packet.vars {
            env.set_item(latin1(py, key)?, latin1(py, value)?)?;
            match key.as_ref() {
                b"UWSGI_SCHEME" | b"HTTP_X_FORWARDED_PROTO" if !value.is_empty() => {
                    scheme = Some(value)
                }
                b"HTTPS" => https = value.eq_ignore_ascii_case(b"on") || value.starts_with(b"1"),
                _ => {}
            }
        }
        let scheme = match scheme {
            Some(s) if s.eq_ignore_ascii_case(b"https") => "https",
            Some(s) if s.eq_ignore_ascii_case(b"http") => "http",
            Some(s) => {
                return env
                    .set_item(self.keys.wsgi_url_scheme.bind(py), latin1(py, s)?)
                    .map(|()| counts(packet));
            }
            None if https => "https",
            None => "http",
        };
        env.set_item(self.keys.wsgi_url_scheme.bind(py), scheme)?;
        Ok(counts(packet))
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
        let mut vars = 0u32;
        let mut size = 0usize;
        let mut put =
            |key: &Py<PyString>, value: Bound<'py, PyString>, raw_len: usize| -> PyResult<()> {
                // uWSGI's datasize: each pair as the uwsgi packet encodes
                // it, two 2-byte lengths, the key, the value.
                vars += 1;
                size += 4 + key.bind(py).len().unwrap_or(0) + raw_len;
                env.set_item(key.bind(py), value)
            };

        let method = match self.methods.get(head.method.as_ref()) {
            Some(m) => m.bind(py).clone(),
            None => latin1(py, &head.method)?,
        };
        put(&k.request_method, method, head.method.len())?;
        put(&k.request_uri, latin1(py, &head.target)?, head.target.len())?;
        let path = path_info(head);
        put(&k.path_info, latin1(py, &path)?, path.len())?;
        put(&k.query_string, latin1(py, &head.query)?, head.query.len())?;
        let protocol = match head.version {
            Version::Http10 => &k.http10,
            Version::Http11 => &k.http11,
            // As Granian and Hypercorn say it (nginx's `$server_protocol` is `HTTP/2.0`).
            Version::Http2 => &k.http2,
        };
        let protocol_len = if head.version == Version::Http2 { 6 } else { 8 };
        put(&k.server_protocol, protocol.bind(py).clone(), protocol_len)?;
        match peer {
            Some(peer) => {
                let remote_addr = peer.ip().to_string();
                put(
                    &k.remote_addr,
                    PyString::new(py, &remote_addr),
                    remote_addr.len(),
                )?;
                let remote_port = peer.port().to_string();
                put(
                    &k.remote_port,
                    PyString::new(py, &remote_port),
                    remote_port.len(),
                )?;
            }
            None => put(&k.remote_addr, PyString::new(py, ""), 0)?,
        }

        // RFC 9112 §3.2.2: an absolute-form target's authority wins over Host.
        let authority = absolute_form_authority(&head.target).or(head.host.as_deref());
        let (server_name, server_port) = match (authority, local, &listener.addr) {
            (Some(host), _, _) if !host.is_empty() => split_host(host, listener.scheme),
            (_, Some(local), _) => (
                local.ip().to_string().into_bytes(),
                local.port().to_string().into_bytes(),
            ),
            (_, None, addr) => (addr.to_string().into_bytes(), Vec::new()),
        };
        put(&k.server_name, latin1(py, &server_name)?, server_name.len())?;
        put(&k.server_port, latin1(py, &server_port)?, server_port.len())?;
        env.set_item(k.wsgi_url_scheme.bind(py), listener.scheme)?;

        // Headers: repeated ones joined (", ", cookies "; "), in order.
        let mut joined: Vec<(Bound<'py, PyString>, Vec<u8>, bool)> =
            Vec::with_capacity(head.headers.len());
        for header in &head.headers {
            let name = header.name.as_ref();
            if name.eq_ignore_ascii_case(b"content-type") {
                put(
                    &k.content_type,
                    latin1(py, &header.value)?,
                    header.value.len(),
                )?;
                continue;
            }
            if name.eq_ignore_ascii_case(b"content-length") {
                put(
                    &k.content_length,
                    latin1(py, &header.value)?,
                    header.value.len(),
                )?;
                continue;
            }
            let Some(key) = self.header_key(py, name)? else {
                continue;
            };
            if let Some(existing) = joined
                .iter_mut()
                .find(|(k, _, _)| k.is(&key) || k.to_str().ok() == key.to_str().ok())
            {
                existing
                    .1
                    .extend_from_slice(if existing.2 { b"; " } else { b", " });
                existing.1.extend_from_slice(&header.value);
            } else {
                let is_cookie = name.eq_ignore_ascii_case(b"cookie");
                joined.push((key, header.value.to_vec(), is_cookie));
            }
        }
        for (key, value, _) in joined {
            vars += 1;
            size += 4 + key.len().unwrap_or(0) + value.len();
            env.set_item(key, latin1(py, &value)?)?;
        }
        if let Some(tls) = tls {
            // uWSGI's https router sets HTTPS and HTTPS_DN; SSL_CLIENT_*
            // are the names of nginx's and Apache's examples.
            let mut tls_var = |key: &str, value: &str| -> PyResult<()> {
                vars += 1;
                size += 4 + key.len() + value.len();
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
        Ok((vars * 2, size as u32))
    }
}

/// uWSGI's log counts for a packet: twice the pairs, and the block size.
fn counts(packet: &UwsgiPacket) -> (u32, u32) {
    (packet.vars.len() as u32 * 2, packet.datasize as u32)
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
fn split_host(host: &[u8], scheme: &str) -> (Vec<u8>, Vec<u8>) {
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
    (name.to_vec(), port.to_vec())
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
            (b"example.com".to_vec(), b"8080".to_vec())
        );
        assert_eq!(
            split_host(b"example.com", "http"),
            (b"example.com".to_vec(), b"80".to_vec())
        );
        assert_eq!(
            split_host(b"[::1]:9000", "http"),
            (b"::1".to_vec(), b"9000".to_vec())
        );
        assert_eq!(
            split_host(b"[::1]", "https"),
            (b"::1".to_vec(), b"443".to_vec())
        );
    }
}
