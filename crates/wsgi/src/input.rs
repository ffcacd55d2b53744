//! `wsgi.input`: the request body as a binary stream. Reads never block
//! past the end of the body, return `b""` there, and release the GIL while
//! waiting for the client. A body received before the app was called
//! (the default) is read from memory or its temporary file and never
//! waits; a streamed one (`--post-buffering 0`) raises `TimeoutError` (an
//! `OSError`) when the client sends nothing for `client_body_timeout`, and
//! `OSError` when it breaks the body.

use bytes::BytesMut;
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
