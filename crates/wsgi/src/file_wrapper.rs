//! `wsgi.file_wrapper`: wraps a file-like object. When the app returns one
//! around a real file, the server sends the file with sendfile(2) from a
//! duplicate of its descriptor; otherwise it is iterated in blocks.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd};

use pyo3::exceptions::PyStopIteration;
use pyo3::prelude::*;

/// Default block size for iterating a wrapped file-like object.
const DEFAULT_BLOCK_SIZE: usize = 8192;

#[pyclass(module = "portico", frozen)]
pub(crate) struct FileWrapper {
    filelike: Py<PyAny>,
    blksize: usize,
}

#[pymethods]
impl FileWrapper {
    #[new]
    #[pyo3(signature = (filelike, blksize = DEFAULT_BLOCK_SIZE))]
    fn new(filelike: Py<PyAny>, blksize: usize) -> Self {
        FileWrapper {
            filelike,
            blksize: blksize.max(1),
        }
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let block = self
            .filelike
            .bind(py)
            .call_method1("read", (self.blksize,))?;
        if block.is_truthy()? {
            Ok(block.unbind())
        } else {
            Err(PyStopIteration::new_err(()))
        }
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let filelike = self.filelike.bind(py);
        if filelike.hasattr("close")? {
            filelike.call_method0("close")?;
        }
        Ok(())
    }
}

impl FileWrapper {
    /// The open file and the region still to send, when the wrapped object
    /// is a regular file with a descriptor; `None` means iterate it instead.
    pub(crate) fn as_file_region(&self, py: Python<'_>) -> Option<(File, u64, u64)> {
        let filelike = self.filelike.bind(py);
        let fd: i32 = filelike.call_method0("fileno").ok()?.extract().ok()?;
        let offset: u64 = filelike
            .call_method0("tell")
            .ok()
            .and_then(|pos| pos.extract().ok())
            .unwrap_or(0);
        // SAFETY: dup returns a new descriptor we own (or -1); the app keeps its own.
        let dup = unsafe { libc::dup(fd) };
        if dup < 0 {
            return None;
        }
        // SAFETY: `dup` is a fresh descriptor owned by nobody else.
        let file = unsafe { File::from_raw_fd(dup) };
        let meta = file.metadata().ok()?;
        if !meta.is_file() {
            return None;
        }
        let _ = file.as_raw_fd();
        Some((file, offset, meta.len().saturating_sub(offset)))
    }
}
