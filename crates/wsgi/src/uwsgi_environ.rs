//! The environ of a uwsgi request. Behind nginx one packet is much like the
//! last: the same vars in the same order, and the same values but for one
//! or two (REMOTE_PORT changes per connection). So the environ of the last
//! packet is kept, as a dict no app ever sees (the *prepared* dict), with
//! that packet's vars block; a packet with the same names in the same
//! order is compared with that block in one pass, the entries whose values
//! differ are replaced in the prepared dict, and the request gets a copy of
//! it (a new dict each time: an app may keep or change its environ). Any
//! other packet (other names, another order, a name twice, a url-scheme var
//! whose value changed, a packet built from a list) is built from the
//! template, var by var, through the caches (`environ_cache.rs`), and its
//! environ becomes the prepared one. Measured in docs/design-notes.md ("The
//! uwsgi request behind nginx", sixth pass).

use portico_server::UwsgiPacket;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use crate::environ::{EnvironBuilder, latin1};
use crate::environ_cache::{Caches, PRESET_VARS, VarRole};

/// Most vars of a packet whose environ is kept as the prepared one (a
/// packet with more is built from the template each time).
const PREPARED_MAX_VARS: usize = 128;

/// The environ of the last packet built from the template, with the vars
/// block it was made from.
pub(crate) struct Prepared {
    /// Every var's entry and `wsgi.url_scheme`; `wsgi.input` a placeholder.
    dict: Py<PyDict>,
    /// The vars block of the packet whose values `dict` holds.
    block: Vec<u8>,
    /// Each var's environ key, in the packet's order, and whether its
    /// value says more than its own entry (the url-scheme vars: a change
    /// rebuilds).
    keys: Vec<(Py<PyString>, bool)>,
}

impl Prepared {
    /// Bring the dict up to `block`'s values, if `block` has the same
    /// names in the same order; false (the dict then partly updated: drop
    /// it) if it has not.
    fn update(&mut self, py: Python<'_>, block: &[u8]) -> PyResult<bool> {
        let dict = self.dict.bind(py);
        let old = &self.block[..];
        // Offsets in the new block and the old, at the same var boundary
        // of both, and that var's number.
        let (mut n, mut o, mut i) = (0, 0, 0);
        let mut changed = false;
        loop {
            let (new_rest, old_rest) = (&block[n..], &old[o..]);
            let same = common_prefix(new_rest, old_rest);
            if same == new_rest.len() && same == old_rest.len() {
                break; // the same bytes from a boundary: the same vars
            }
            // The vars wholly inside the common bytes are the same vars.
            let run_end = n + same;
            while let Some(len) = var_len(&block[n..])
                && n + len <= run_end
            {
                n += len;
                o += len;
                i += 1;
            }
            let (Some((new_key, new_value, new_len)), Some((old_key, old_value, old_len))) =
                (var_at(&block[n..]), var_at(&old[o..]))
            else {
                return Ok(false); // more vars in one than in the other
            };
            let Some((key, scheme_var)) = self.keys.get(i) else {
                return Ok(false);
            };
            if new_key != old_key || *scheme_var {
                return Ok(false);
            }
            if new_value != old_value {
                dict.set_item(key.bind(py), latin1(py, new_value)?)?;
                changed = true;
            }
            n += new_len;
            o += old_len;
            i += 1;
        }
        if changed {
            self.block.clear();
            self.block.extend_from_slice(block);
        }
        Ok(true)
    }
}

/// How many bytes `a` and `b` have in common from their start.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let (mut ca, mut cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let mut at = 0;
    for (x, y) in (&mut ca).zip(&mut cb) {
        let (Ok(x), Ok(y)) = (<[u8; 8]>::try_from(x), <[u8; 8]>::try_from(y)) else {
            break;
        };
        let diff = u64::from_le_bytes(x) ^ u64::from_le_bytes(y);
        if diff != 0 {
            return at + (diff.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    at + a[at..]
        .iter()
        .zip(&b[at..])
        .take_while(|(x, y)| x == y)
        .count()
}

/// The front var of a checked vars block: key, value and its whole length.
fn var_at(rest: &[u8]) -> Option<(&[u8], &[u8], usize)> {
    let (key, after) = field(rest)?;
    let (value, after) = field(after)?;
    Some((key, value, rest.len() - after.len()))
}

/// The length of the front var of a checked vars block.
fn var_len(rest: &[u8]) -> Option<usize> {
    var_at(rest).map(|(_, _, len)| len)
}

/// The front `u16`-prefixed field of `rest`, and what follows it.
fn field(rest: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = rest.split_first_chunk::<2>()?;
    let len = usize::from(u16::from_le_bytes(*len));
    (len <= rest.len()).then(|| rest.split_at(len))
}

impl EnvironBuilder {
    /// A uwsgi packet's environ, but for `wsgi.input` (a placeholder): a
    /// copy of the prepared dict if the packet is like the last one, else
    /// built from the template (and prepared for the next packet).
    pub(crate) fn uwsgi_environ<'py>(
        &self,
        py: Python<'py>,
        packet: &UwsgiPacket,
    ) -> PyResult<Bound<'py, PyDict>> {
        let mut caches = self.caches();
        let block = packet.block();
        if let (Some(block), Some(mut prepared)) = (block, caches.prepared.take())
            && prepared.update(py, block)?
        {
            let env = prepared.dict.bind(py).copy();
            caches.prepared = Some(prepared);
            return env;
        }
        let mut keys = Vec::new();
        let env = self.uwsgi_vars(py, &mut caches, packet, &mut keys)?;
        if let Some(block) = block
            && keys.len() <= PREPARED_MAX_VARS
            && !has_duplicate(&keys)
        {
            caches.prepared = Some(Prepared {
                dict: env.copy()?.unbind(),
                block: block.to_vec(),
                keys,
            });
        }
        Ok(env)
    }

    /// A uwsgi packet's vars into a copy of the uwsgi template, as sent
    /// (last wins), and the url scheme as uWSGI derives it:
    /// UWSGI_SCHEME or X-Forwarded-Proto, else HTTPS. Keys and repeated
    /// values come from the caches; the template's placeholders the packet
    /// did not replace are removed. Each var's key goes to `keys`.
    fn uwsgi_vars<'py>(
        &self,
        py: Python<'py>,
        caches: &mut Caches,
        packet: &UwsgiPacket,
        keys: &mut Vec<(Py<PyString>, bool)>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let env = self.uwsgi_template.bind(py).copy()?;
        let mut scheme: Option<&[u8]> = None;
        let mut https = false;
        let mut filled = 0u32;
        keys.reserve(packet.var_count().min(PREPARED_MAX_VARS + 1));
        for (i, (key, value)) in packet.vars().enumerate() {
            let entry = caches.var(py, i, key)?;
            match entry.role {
                VarRole::Plain => {}
                VarRole::Scheme if !value.is_empty() => scheme = Some(value),
                VarRole::Scheme => {}
                VarRole::Https => {
                    https = value.eq_ignore_ascii_case(b"on") || value.starts_with(b"1")
                }
            }
            if let Some(slot) = entry.preset {
                filled |= 1 << slot;
            }
            if keys.len() <= PREPARED_MAX_VARS {
                keys.push((entry.key.clone_ref(py), entry.role != VarRole::Plain));
            }
            let value = entry.value(py, value)?;
            env.set_item(entry.key.bind(py), value)?;
        }
        let unfilled = !filled & ((1u32 << PRESET_VARS.len()) - 1);
        if unfilled != 0 {
            for (slot, key) in self.presets.iter().enumerate() {
                if unfilled & (1 << slot) != 0 {
                    env.del_item(key.bind(py))?;
                }
            }
        }
        let k = &self.keys;
        let scheme = match scheme {
            Some(s) if s.eq_ignore_ascii_case(b"https") => k.https.bind(py).clone(),
            Some(s) if s.eq_ignore_ascii_case(b"http") => k.http.bind(py).clone(),
            Some(s) => latin1(py, s)?,
            None if https => k.https.bind(py).clone(),
            None => k.http.bind(py).clone(),
        };
        env.set_item(k.wsgi_url_scheme.bind(py), scheme)?;
        Ok(env)
    }
}

/// Whether a key appears twice (the last value wins, which the prepared
/// dict's one-entry-per-var update would not keep).
fn has_duplicate(keys: &[(Py<PyString>, bool)]) -> bool {
    keys.iter()
        .enumerate()
        .any(|(i, (k, _))| keys[..i].iter().any(|(e, _)| e.as_ptr() == k.as_ptr()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::environ::ProcessModel;
    use bytes::BytesMut;
    use portico_proto::uwsgi::{encode_packet, parse_packet};

    const MODEL: ProcessModel = ProcessModel {
        multithread: false,
        multiprocess: false,
    };

    fn with_python(f: impl FnOnce(Python<'_>)) {
        Python::initialize();
        Python::attach(f);
    }

    fn packet(vars: &[(&[u8], &[u8])]) -> UwsgiPacket {
        let mut buf = BytesMut::from(&encode_packet(0, 0, vars)[..]);
        match parse_packet(&mut buf, 65535) {
            Ok(Some(p)) => p,
            other => panic!("not a packet: {other:?}"),
        }
    }

    /// nginx's stock `uwsgi_params`, with a header, REMOTE_PORT given.
    fn nginx(port: &'static [u8]) -> Vec<(&'static [u8], &'static [u8])> {
        vec![
            (b"QUERY_STRING", b"x=1"),
            (b"REQUEST_METHOD", b"GET"),
            (b"CONTENT_TYPE", b""),
            (b"CONTENT_LENGTH", b""),
            (b"REQUEST_URI", b"/hello/world?x=1"),
            (b"PATH_INFO", b"/hello/world"),
            (b"DOCUMENT_ROOT", b"/usr/share/nginx/html"),
            (b"SERVER_PROTOCOL", b"HTTP/1.1"),
            (b"REQUEST_SCHEME", b"http"),
            (b"REMOTE_ADDR", b"127.0.0.1"),
            (b"REMOTE_PORT", port),
            (b"SERVER_PORT", b"80"),
            (b"SERVER_NAME", b"localhost"),
            (b"HTTP_HOST", b"localhost"),
            (b"HTTP_USER_AGENT", b"load/1.0"),
        ]
    }

    fn with(
        mut vars: Vec<(&'static [u8], &'static [u8])>,
        key: &'static [u8],
        value: &'static [u8],
    ) -> Vec<(&'static [u8], &'static [u8])> {
        match vars.iter_mut().find(|(k, _)| *k == key) {
            Some(var) => var.1 = value,
            None => vars.push((key, value)),
        }
        vars
    }

    #[test]
    fn a_packet_like_the_last_gets_the_environ_a_fresh_build_gives() {
        let long: &'static [u8] = Box::leak(vec![b'a'; 300].into_boxed_slice());
        let mut reordered = nginx(b"40000");
        reordered.swap(2, 3);
        let mut fewer = nginx(b"40000");
        fewer.remove(6);
        let mut twice = nginx(b"40000");
        twice.push((b"QUERY_STRING", b"y=2"));
        let sequence = [
            nginx(b"40000"),
            nginx(b"40001"),
            nginx(b"40001"),
            nginx(b"9"),
            with(nginx(b"65535"), b"REQUEST_URI", b"/other?y=22"),
            with(nginx(b"65535"), b"PATH_INFO", b"/caf\xe9"),
            with(nginx(b"5"), b"HTTP_USER_AGENT", long),
            nginx(b"5"),
            with(nginx(b"5"), b"HTTP_USER_AGENT", long),
            with(nginx(b"5"), b"HTTPS", b"on"),
            with(nginx(b"6"), b"HTTPS", b"on"),
            with(nginx(b"6"), b"HTTPS", b"off"),
            with(nginx(b"6"), b"UWSGI_SCHEME", b"https"),
            with(nginx(b"6"), b"UWSGI_SCHEME", b"ws"),
            with(nginx(b"6"), b"SCRIPT_NAME", b"/app"),
            reordered,
            fewer.clone(),
            fewer,
            twice.clone(),
            with(twice.clone(), b"REMOTE_PORT", b"7"),
            with(twice, b"QUERY_STRING", b"z=3"), // the first of two: the last still wins
            vec![(b"A", b"1")],
            vec![(b"A", b"2")],
            vec![(b"B", b"2")],
            nginx(b"40000"),
        ];
        with_python(|py| {
            let Ok(kept) = EnvironBuilder::new(py, MODEL) else {
                panic!("a builder");
            };
            for vars in &sequence {
                let p = packet(vars);
                let (Ok(fresh), Ok(got)) = (
                    EnvironBuilder::new(py, MODEL).and_then(|b| b.uwsgi_environ(py, &p)),
                    kept.uwsgi_environ(py, &p),
                ) else {
                    panic!("an environ for {vars:?}");
                };
                // (Each builder has its own `wsgi.errors`.)
                let (Ok(()), Ok(())) = (got.del_item("wsgi.errors"), fresh.del_item("wsgi.errors"))
                else {
                    panic!("no wsgi.errors");
                };
                assert!(got.eq(&fresh).unwrap_or(false), "{got} != {fresh}");
            }
        });
    }

    #[test]
    fn a_packet_like_the_last_is_served_from_the_prepared_dict() {
        with_python(|py| {
            let Ok(builder) = EnvironBuilder::new(py, MODEL) else {
                panic!("a builder");
            };
            let prepared_block =
                |b: &EnvironBuilder| b.caches().prepared.as_ref().map(|p| p.block.clone());
            let (one, two) = (packet(&nginx(b"40000")), packet(&nginx(b"40001")));
            let Ok(first) = builder.uwsgi_environ(py, &one) else {
                panic!("an environ");
            };
            assert_eq!(prepared_block(&builder).as_deref(), one.block());
            let Ok(second) = builder.uwsgi_environ(py, &two) else {
                panic!("an environ");
            };
            assert_eq!(prepared_block(&builder).as_deref(), two.block());
            // Each request has a dict of its own: what an app does to one
            // is not in the next.
            assert!(!first.is(&second));
            let (Ok(()), Ok(())) = (first.set_item("X", 1), first.del_item("REMOTE_PORT")) else {
                panic!("a changed environ");
            };
            let Ok(third) = builder.uwsgi_environ(py, &two) else {
                panic!("an environ");
            };
            assert!(third.eq(&second).unwrap_or(false));
            assert!(!third.contains("X").unwrap_or(true));
            let port = |env: &Bound<'_, PyDict>| {
                env.get_item("REMOTE_PORT")
                    .ok()
                    .flatten()
                    .map(|v| v.to_string())
            };
            assert_eq!(port(&third).as_deref(), Some("40001"));
            assert_eq!(port(&first), None);
        });
    }

    #[test]
    fn common_prefix_counts_the_equal_leading_bytes() {
        let a: Vec<u8> = (0..40).collect();
        for at in 0..40 {
            let mut b = a.clone();
            b[at] = 255;
            assert_eq!(common_prefix(&a, &b), at);
            assert_eq!(common_prefix(&a[..at], &b), at);
        }
        assert_eq!(common_prefix(&a, &a), 40);
        assert_eq!(common_prefix(&a, &a[..17]), 17);
        assert_eq!(common_prefix(&[], &a), 0);
    }
}
