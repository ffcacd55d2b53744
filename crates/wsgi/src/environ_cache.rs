//! The environ builder's caches: what repeats from request to request is
//! made into a Python `str` once. Header names map to their interned
//! `HTTP_*` key, and a uwsgi packet's var names to themselves interned,
//! each with the last value seen under it (Host, Accept, User-Agent, and
//! behind nginx nearly every var: the method, the URI, SERVER_NAME,
//! REMOTE_ADDR... rarely change); the client's address and the server's
//! name and port keep their last `str`. Each cache is bounded: at most
//! [`NAME_CACHE_LIMIT`] names of each kind, one value per name and no value
//! over [`VALUE_CACHE_MAX`] bytes, so hostile traffic cannot grow memory. A
//! `str` is immutable: handing the same one to two requests is safe.
//! Measured in docs/design-notes.md ("The WSGI keep-alive path", and "The
//! uwsgi request behind nginx").

use std::net::IpAddr;

use fnv::FnvHashMap;
use portico_server::request_view::{has_http_var, http_var_name};
use pyo3::prelude::*;
use pyo3::types::PyString;

use crate::environ::{latin1, split_host};
use crate::uwsgi_environ::Prepared;

/// Names remembered with their environ key, per kind; beyond this, keys
/// are built per request (so random names cannot grow memory).
const NAME_CACHE_LIMIT: usize = 512;

/// Longest value kept for reuse (a User-Agent fits; a cookie usually does
/// not, and changes anyway).
const VALUE_CACHE_MAX: usize = 256;

/// The uwsgi vars nginx's stock `uwsgi_params` sends with every request
/// (HTTPS only when on, so not here), in its order: the uwsgi template has
/// a slot for each (environ.rs), so a packet's vars replace entries of a
/// table already big enough instead of growing it; a slot the packet did
/// not fill is removed again. At most 32 (a bit each in a `u32`).
pub(crate) const PRESET_VARS: [&str; 14] = [
    "QUERY_STRING",
    "REQUEST_METHOD",
    "CONTENT_TYPE",
    "CONTENT_LENGTH",
    "REQUEST_URI",
    "PATH_INFO",
    "DOCUMENT_ROOT",
    "SERVER_PROTOCOL",
    "REQUEST_SCHEME",
    "REMOTE_ADDR",
    "REMOTE_PORT",
    "SERVER_PORT",
    "SERVER_NAME",
    "HTTP_HOST",
];

/// An interned environ key and its length in bytes (for uWSGI's datasize).
pub(crate) struct Key {
    pub name: Py<PyString>,
    pub len: usize,
}

impl Key {
    pub(crate) fn new(py: Python<'_>, name: &str) -> Key {
        Key {
            name: PyString::intern(py, name).unbind(),
            len: name.len(),
        }
    }
}

/// Name positions remembered (see `NameCache::by_position`).
const POSITIONS: usize = 64;

/// What a uwsgi var means to the environ besides itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VarRole {
    /// Nothing more.
    Plain,
    /// UWSGI_SCHEME or HTTP_X_FORWARDED_PROTO: names `wsgi.url_scheme`.
    Scheme,
    /// HTTPS: `on` or `1...` makes the scheme https.
    Https,
}

/// A name's environ key, and the last value seen under it.
pub(crate) struct NameEntry {
    /// The name as sent.
    name: Box<[u8]>,
    pub key: Py<PyString>,
    pub key_len: usize,
    /// For a uwsgi var: its role, and its slot in [`PRESET_VARS`].
    pub role: VarRole,
    pub preset: Option<u8>,
    /// The bytes of the last value (its buffer reused) and their `str`.
    last_bytes: Vec<u8>,
    last: Option<Py<PyString>>,
}

impl NameEntry {
    fn new(py: Python<'_>, name: &[u8], key: &[u8]) -> PyResult<NameEntry> {
        let text = latin1(py, key)?;
        let role = match key {
            b"UWSGI_SCHEME" | b"HTTP_X_FORWARDED_PROTO" => VarRole::Scheme,
            b"HTTPS" => VarRole::Https,
            _ => VarRole::Plain,
        };
        Ok(NameEntry {
            name: name.into(),
            key: PyString::intern(py, &text.to_cow()?).unbind(),
            key_len: key.len(),
            role,
            preset: PRESET_VARS
                .iter()
                .position(|p| p.as_bytes() == key)
                .and_then(|i| u8::try_from(i).ok()),
            last_bytes: Vec::new(),
            last: None,
        })
    }

    /// The `str` of `value`: the last one made if the bytes are the same.
    pub(crate) fn value<'py>(
        &mut self,
        py: Python<'py>,
        value: &[u8],
    ) -> PyResult<Bound<'py, PyString>> {
        if let Some(text) = &self.last
            && *self.last_bytes == *value
        {
            return Ok(text.bind(py).clone());
        }
        let text = latin1(py, value)?;
        if value.len() <= VALUE_CACHE_MAX {
            self.last_bytes.clear();
            self.last_bytes.extend_from_slice(value);
            self.last = Some(text.clone().unbind());
        }
        Ok(text)
    }
}

/// The names of one kind seen so far, each with its entry.
#[derive(Default)]
struct NameCache {
    /// Name as sent → its entry in `entries` (one hash a lookup).
    names: FnvHashMap<Box<[u8]>, usize>,
    entries: Vec<NameEntry>,
    /// The entry of the name last seen at each position: a client (or
    /// nginx) sends the same names in the same order, so most names are
    /// found by one comparison, without hashing.
    by_position: Vec<usize>,
    /// Made for a name the full cache could not keep (reused per request).
    overflow: Option<NameEntry>,
}

impl NameCache {
    /// The entry for `name`, the request's name number `position`; `key`
    /// makes its environ key on first sight (`None`: not passed to the app).
    fn entry(
        &mut self,
        py: Python<'_>,
        position: usize,
        name: &[u8],
        key: impl FnOnce(&[u8]) -> Option<Vec<u8>>,
    ) -> PyResult<Option<&mut NameEntry>> {
        if let Some(&i) = self.by_position.get(position)
            && self.entries.get(i).is_some_and(|e| *e.name == *name)
        {
            return Ok(self.entries.get_mut(i));
        }
        let i = match self.names.get(name) {
            Some(&i) => i,
            None => {
                let Some(key) = key(name) else {
                    return Ok(None);
                };
                let entry = NameEntry::new(py, name, &key)?;
                if self.entries.len() >= NAME_CACHE_LIMIT {
                    return Ok(Some(self.overflow.insert(entry)));
                }
                self.names.insert(name.into(), self.entries.len());
                self.entries.push(entry);
                self.entries.len() - 1
            }
        };
        if position < POSITIONS {
            if self.by_position.len() <= position {
                self.by_position.resize(position + 1, usize::MAX);
            }
            self.by_position[position] = i;
        }
        Ok(self.entries.get_mut(i))
    }
}

/// The Host value (and scheme) last split into SERVER_NAME and SERVER_PORT.
struct ServerEntry {
    host: Box<[u8]>,
    scheme: &'static str,
    name: (Py<PyString>, usize),
    port: (Py<PyString>, usize),
}

/// Everything the builder remembers between requests (behind one lock,
/// taken once per request, under the GIL).
#[derive(Default)]
pub(crate) struct Caches {
    /// HTTP header names.
    headers: NameCache,
    /// uwsgi var names.
    vars: NameCache,
    peer: Option<(IpAddr, Py<PyString>, usize)>,
    server: Option<ServerEntry>,
    /// The last uwsgi packet's environ (uwsgi_environ.rs).
    pub(crate) prepared: Option<Prepared>,
}

impl Caches {
    /// The environ entry for header `name`, the request's header number
    /// `position`, or None for names that are not passed to the app (with
    /// `_`, which would alias `-`).
    pub(crate) fn header(
        &mut self,
        py: Python<'_>,
        position: usize,
        name: &[u8],
    ) -> PyResult<Option<&mut NameEntry>> {
        self.headers.entry(py, position, name, |name| {
            has_http_var(name).then(|| {
                let mut key = Vec::with_capacity(name.len() + 5);
                http_var_name(name, &mut key);
                key
            })
        })
    }

    /// The environ entry for uwsgi var `name`, the packet's var number
    /// `position`: the key is the name itself.
    pub(crate) fn var(
        &mut self,
        py: Python<'_>,
        position: usize,
        name: &[u8],
    ) -> PyResult<&mut NameEntry> {
        match self
            .vars
            .entry(py, position, name, |name| Some(name.to_vec()))?
        {
            Some(entry) => Ok(entry),
            None => Err(pyo3::exceptions::PyRuntimeError::new_err(
                "a uwsgi var without an environ entry",
            )),
        }
    }

    /// REMOTE_ADDR for `ip`, and its length.
    pub(crate) fn remote_addr<'py>(
        &mut self,
        py: Python<'py>,
        ip: IpAddr,
    ) -> PyResult<(Bound<'py, PyString>, usize)> {
        if let Some((last, text, len)) = &self.peer
            && *last == ip
        {
            return Ok((text.bind(py).clone(), *len));
        }
        let written = ip.to_string();
        let text = PyString::new(py, &written);
        self.peer = Some((ip, text.clone().unbind(), written.len()));
        Ok((text, written.len()))
    }

    /// SERVER_NAME and SERVER_PORT (each with its length) for a Host
    /// value (the scheme gives the default port).
    pub(crate) fn server<'py>(
        &mut self,
        py: Python<'py>,
        host: &[u8],
        scheme: &'static str,
    ) -> PyResult<(Bound<'py, PyString>, usize, Bound<'py, PyString>, usize)> {
        if let Some(e) = &self.server
            && *e.host == *host
            && e.scheme == scheme
        {
            return Ok((
                e.name.0.bind(py).clone(),
                e.name.1,
                e.port.0.bind(py).clone(),
                e.port.1,
            ));
        }
        let (name, port) = split_host(host, scheme);
        let (name_len, port_len) = (name.len(), port.len());
        let (name, port) = (latin1(py, name)?, latin1(py, port)?);
        if host.len() <= VALUE_CACHE_MAX {
            self.server = Some(ServerEntry {
                host: host.into(),
                scheme,
                name: (name.clone().unbind(), name_len),
                port: (port.clone().unbind(), port_len),
            });
        }
        Ok((name, name_len, port, port_len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_python(f: impl FnOnce(Python<'_>)) {
        Python::initialize();
        Python::attach(f);
    }

    #[test]
    fn a_repeated_header_value_is_the_same_str() {
        with_python(|py| {
            let mut caches = Caches::default();
            let Ok(Some(entry)) = caches.header(py, 0, b"Accept") else {
                panic!("no entry for Accept");
            };
            assert_eq!(
                entry.key.bind(py).to_cow().ok().as_deref(),
                Some("HTTP_ACCEPT")
            );
            let (Ok(a), Ok(b)) = (entry.value(py, b"*/*"), entry.value(py, b"*/*")) else {
                panic!("no value");
            };
            assert!(a.is(&b));
            let Ok(c) = entry.value(py, b"text/html") else {
                panic!("no value");
            };
            assert_eq!(c.to_cow().ok().as_deref(), Some("text/html"));
            assert!(!a.is(&c));
        });
    }

    #[test]
    fn a_name_at_a_remembered_position_is_compared_not_trusted() {
        with_python(|py| {
            let mut caches = Caches::default();
            for (name, want) in [
                (&b"Host"[..], Some("HTTP_HOST")),
                (b"Accept", Some("HTTP_ACCEPT")),
                (b"X_Under", None),
                (b"Host", Some("HTTP_HOST")),
                (b"host", Some("HTTP_HOST")),
            ] {
                let key = match caches.header(py, 0, name) {
                    Ok(Some(entry)) => Some(entry.key.bind(py).to_cow().map(|k| k.into_owned())),
                    Ok(None) => None,
                    Err(e) => panic!("{e}"),
                };
                assert_eq!(key.and_then(|k| k.ok()).as_deref(), want, "{name:?}");
            }
        });
    }

    #[test]
    fn a_uwsgi_var_is_its_own_key_with_its_role_and_template_slot() {
        with_python(|py| {
            let mut caches = Caches::default();
            for (name, role, preset) in [
                (&b"REMOTE_PORT"[..], VarRole::Plain, Some(10)),
                (b"HTTP_X_FORWARDED_PROTO", VarRole::Scheme, None),
                (b"UWSGI_SCHEME", VarRole::Scheme, None),
                (b"HTTPS", VarRole::Https, None),
                (b"X_Under_Score", VarRole::Plain, None),
            ] {
                let Ok(entry) = caches.var(py, 0, name) else {
                    panic!("no entry for {name:?}");
                };
                let key = entry.key.bind(py).to_cow().map(|k| k.into_owned());
                assert_eq!(key.ok().as_deref().map(str::as_bytes), Some(name));
                assert_eq!((entry.role, entry.preset), (role, preset), "{name:?}");
            }
            // A value that changes every time is made anew, and kept.
            let Ok(entry) = caches.var(py, 0, b"REMOTE_PORT") else {
                panic!("no entry");
            };
            let (Ok(a), Ok(b), Ok(c)) = (
                entry.value(py, b"40001"),
                entry.value(py, b"40002"),
                entry.value(py, b"40002"),
            ) else {
                panic!("no value");
            };
            assert_eq!(a.to_cow().ok().as_deref(), Some("40001"));
            assert!(!a.is(&b) && b.is(&c));
        });
    }

    #[test]
    fn a_header_name_with_underscore_has_no_entry() {
        with_python(|py| {
            let mut caches = Caches::default();
            assert!(matches!(caches.header(py, 0, b"X_Forwarded_For"), Ok(None)));
        });
    }

    #[test]
    fn names_beyond_the_limit_are_not_kept_but_still_answered() {
        with_python(|py| {
            let mut caches = Caches::default();
            for n in 0..NAME_CACHE_LIMIT + 10 {
                let name = format!("X-Name-{n}");
                let Ok(Some(entry)) = caches.header(py, n % 3, name.as_bytes()) else {
                    panic!("no entry for {name}");
                };
                let want = format!("HTTP_X_NAME_{n}");
                assert_eq!(entry.key.bind(py).to_cow().ok().as_deref(), Some(&*want));
            }
            assert_eq!(caches.headers.entries.len(), NAME_CACHE_LIMIT);
            assert_eq!(caches.headers.names.len(), NAME_CACHE_LIMIT);
        });
    }

    #[test]
    fn a_new_peer_or_host_replaces_the_cached_one() {
        with_python(|py| {
            let mut caches = Caches::default();
            let one: IpAddr = [10, 0, 0, 1].into();
            let two: IpAddr = [10, 0, 0, 22].into();
            let text = |c: &mut Caches, ip| match c.remote_addr(py, ip) {
                Ok((s, len)) => (s.to_cow().map(|s| s.into_owned()).unwrap_or_default(), len),
                Err(e) => panic!("{e}"),
            };
            assert_eq!(text(&mut caches, one), ("10.0.0.1".to_string(), 8));
            assert_eq!(text(&mut caches, two), ("10.0.0.22".to_string(), 9));
            assert_eq!(text(&mut caches, one), ("10.0.0.1".to_string(), 8));
            let server = |c: &mut Caches, host: &[u8], scheme| match c.server(py, host, scheme) {
                Ok((n, _, p, _)) => (
                    n.to_cow().map(|s| s.into_owned()).unwrap_or_default(),
                    p.to_cow().map(|s| s.into_owned()).unwrap_or_default(),
                ),
                Err(e) => panic!("{e}"),
            };
            let want = |n: &str, p: &str| (n.to_string(), p.to_string());
            assert_eq!(server(&mut caches, b"a:1", "http"), want("a", "1"));
            assert_eq!(server(&mut caches, b"b", "http"), want("b", "80"));
            assert_eq!(server(&mut caches, b"b", "https"), want("b", "443"));
            assert_eq!(server(&mut caches, b"a:1", "http"), want("a", "1"));
        });
    }
}
