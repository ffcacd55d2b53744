//! `wsgi.input`: the request body as a binary stream. Reads never block
//! past the end of the body, return `b""` there, and release the GIL while
//! waiting for the client. A body received before the app was called
//! (the default) is read from memory or its temporary file and never
//! waits; a streamed one (`--post-buffering 0`) raises `TimeoutError` (an
//! `OSError`) when the client sends nothing for `client_body_timeout`, and
//! `OSError` when it breaks the body.
//!
//! A worker reuses one `wsgi.input` object from request to request as it
//! reuses `start_response` (responder.rs): when nothing but the worker holds
//! it, it is given the next body instead of a new object being made (an
//! allocation, its initialisation and its deallocation per request). An app
//! that keeps its `wsgi.input` (or the environ) past the request keeps that
//! object, which goes on reading its own body; the next request gets a new one.

use std::sync::Mutex;

use bytes::{Bytes, BytesMut};
use portico_server::{RequestBody, TryNext};
use pyo3::exceptions::{PyOSError, PyStopIteration, PyTimeoutError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

#[pyclass(module = "portico")]
pub(crate) struct WsgiInput {
    body: RequestBody,
    buffer: BytesMut,
    eof: bool,
}

impl WsgiInput {
    pub(crate) fn new(body: RequestBody) -> WsgiInput {
        WsgiInput {
            body,
            buffer: BytesMut::new(),
            eof: false,
        }
    }

    /// Read `body` from now on, as a new object would.
    fn reset(&mut self, body: RequestBody) {
        self.body = body;
        self.buffer = BytesMut::new();
        self.eof = false;
    }

    /// Add the next piece of body to the buffer; false at the end.
    fn fill(&mut self, py: Python<'_>) -> PyResult<bool> {
        if self.eof {
            return Ok(false);
        }
        let piece = match self.body.try_next() {
            TryNext::Data(d) => Some(Ok(d)),
            TryNext::End => None,
            TryNext::Error(e) => Some(Err(e)),
            TryNext::WouldBlock => {
                let body = &mut self.body;
                py.detach(|| body.blocking_next())
            }
        };
        match piece {
            Some(Ok(data)) => {
                self.buffer.extend_from_slice(&data);
                Ok(true)
            }
            Some(Err(e)) => {
                self.eof = true;
                // OSError's family, as a socket read raises: TimeoutError
                // for a client that stopped sending (client_body_timeout).
                Err(if e.is_timeout() {
                    PyTimeoutError::new_err(e.to_string())
                } else {
                    PyOSError::new_err(e.to_string())
                })
            }
            None => {
                self.eof = true;
                Ok(false)
            }
        }
    }

    fn take<'py>(&mut self, py: Python<'py>, n: usize) -> Bound<'py, PyBytes> {
        let n = n.min(self.buffer.len());
        let out = PyBytes::new(py, &self.buffer[..n]);
        let _ = self.buffer.split_to(n);
        out
    }

    fn line<'py>(
        &mut self,
        py: Python<'py>,
        limit: Option<usize>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let mut searched = 0;
        loop {
            if let Some(i) = memchr_newline(&self.buffer[searched..]) {
                let end = searched + i + 1;
                return Ok(self.take(py, limit.map_or(end, |l| l.min(end))));
            }
            searched = self.buffer.len();
            if let Some(l) = limit
                && self.buffer.len() >= l
            {
                return Ok(self.take(py, l));
            }
            if !self.fill(py)? {
                let n = self.buffer.len();
                return Ok(self.take(py, n));
            }
        }
    }
}

fn memchr_newline(haystack: &[u8]) -> Option<usize> {
    memchr::memchr(b'\n', haystack)
}

/// A size argument: None or negative means "no limit".
fn limit(size: Option<isize>) -> Option<usize> {
    size.and_then(|s| usize::try_from(s).ok())
}

#[pymethods]
impl WsgiInput {
    #[pyo3(signature = (size = None))]
    fn read<'py>(&mut self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        match limit(size) {
            None => {
                while self.fill(py)? {}
                let n = self.buffer.len();
                Ok(self.take(py, n))
            }
            Some(n) => {
                while self.buffer.len() < n && self.fill(py)? {}
                Ok(self.take(py, n))
            }
        }
    }

    #[pyo3(signature = (size = None))]
    fn readline<'py>(
        &mut self,
        py: Python<'py>,
        size: Option<isize>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        self.line(py, limit(size))
    }

    #[pyo3(signature = (hint = None))]
    fn readlines<'py>(
        &mut self,
        py: Python<'py>,
        hint: Option<isize>,
    ) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let hint = limit(hint).filter(|&h| h > 0);
        let mut lines = Vec::new();
        let mut total = 0;
        loop {
            let line = self.line(py, None)?;
            let len = line.as_bytes().len();
            if len == 0 {
                break;
            }
            lines.push(line);
            total += len;
            if hint.is_some_and(|h| total >= h) {
                break;
            }
        }
        Ok(lines)
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let line = self.line(py, None)?;
        if line.as_bytes().is_empty() {
            Err(PyStopIteration::new_err(()))
        } else {
            Ok(line)
        }
    }

    fn readable(&self) -> bool {
        true
    }
}

/// The worker's `wsgi.input` object, kept for the next request.
#[derive(Default)]
pub(crate) struct Inputs {
    spare: Mutex<Option<Py<WsgiInput>>>,
}

impl Inputs {
    fn spare(&self) -> std::sync::MutexGuard<'_, Option<Py<WsgiInput>>> {
        self.spare.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A `wsgi.input` reading `body`: the kept object if nothing else holds
    /// it, else a new one (which is kept instead).
    pub(crate) fn take<'py>(
        &self,
        py: Python<'py>,
        body: RequestBody,
    ) -> PyResult<Bound<'py, WsgiInput>> {
        let mut spare = self.spare();
        if let Some(kept) = spare.as_ref().map(|k| k.bind(py))
            && is_only_ours(kept)
            && let Ok(mut input) = kept.try_borrow_mut()
        {
            input.reset(body);
            drop(input);
            return Ok(kept.clone());
        }
        let input = Bound::new(py, WsgiInput::new(body))?;
        *spare = Some(input.clone().unbind());
        Ok(input)
    }

    /// The request is over: if nothing else holds the kept object, let its
    /// body go now (a spooled body's file, a streamed body's channel) rather
    /// than at the next request.
    pub(crate) fn release(&self, py: Python<'_>) {
        let spare = self.spare();
        if let Some(kept) = spare.as_ref().map(|k| k.bind(py))
            && is_only_ours(kept)
            && let Ok(mut input) = kept.try_borrow_mut()
        {
            input.reset(RequestBody::complete(Bytes::new()));
        }
    }
}

/// Nothing but [`Inputs`] holds `input`.
fn is_only_ours(input: &Bound<'_, WsgiInput>) -> bool {
    // SAFETY: `input` is alive (bound) and the GIL is held: reading its
    // reference count is a plain load.
    unsafe { pyo3::ffi::Py_REFCNT(input.as_ptr()) == 1 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(text: &'static [u8]) -> RequestBody {
        RequestBody::complete(Bytes::from_static(text))
    }

    fn read_all(input: &Bound<'_, WsgiInput>) -> Vec<u8> {
        match input.call_method0("read") {
            Ok(data) => data.extract::<Vec<u8>>().unwrap_or_default(),
            Err(e) => panic!("read failed: {e}"),
        }
    }

    #[test]
    fn a_free_wsgi_input_is_reused_and_a_kept_one_is_not() {
        Python::initialize();
        Python::attach(|py| {
            let inputs = Inputs::default();
            let Ok(first) = inputs.take(py, body(b"one")) else {
                panic!("no input");
            };
            assert_eq!(read_all(&first), b"one");
            let first_ptr = first.as_ptr();
            drop(first);
            inputs.release(py);
            let Ok(second) = inputs.take(py, body(b"two")) else {
                panic!("no input");
            };
            assert_eq!(second.as_ptr(), first_ptr, "the free object is reused");
            assert_eq!(read_all(&second), b"two", "with the new body only");
            // The app keeps `second`: the next request gets another object,
            // and the kept one still reads its own (finished) body.
            let Ok(third) = inputs.take(py, body(b"three")) else {
                panic!("no input");
            };
            assert_ne!(third.as_ptr(), second.as_ptr());
            assert_eq!(read_all(&third), b"three");
            assert_eq!(read_all(&second), b"");
        });
    }

    #[test]
    fn a_released_wsgi_input_lets_its_body_go() {
        Python::initialize();
        Python::attach(|py| {
            let inputs = Inputs::default();
            let Ok(input) = inputs.take(py, body(b"unread")) else {
                panic!("no input");
            };
            drop(input);
            inputs.release(py);
            let spare = inputs.spare();
            let Some(kept) = spare.as_ref() else {
                panic!("kept for the next request");
            };
            let Ok(kept) = kept.bind(py).try_borrow() else {
                panic!("not borrowed");
            };
            assert_eq!(kept.body.complete_len(), Some(0));
        });
    }
}
