//! `wsgi.errors`: a text stream whose writes go to the server log (stderr).

use std::io::Write;

use pyo3::prelude::*;

/// The object placed at `environ["wsgi.errors"]`, shared by every request.
#[pyclass(module = "portico", frozen)]
pub(crate) struct WsgiErrors;

#[pymethods]
impl WsgiErrors {
    fn write(&self, text: &str) -> usize {
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
        text.chars().count()
    }

    fn writelines(&self, lines: &Bound<'_, PyAny>) -> PyResult<()> {
        let mut out = std::io::stderr().lock();
        for line in lines.try_iter()? {
            let line = line?;
            let text: &str = line.extract()?;
            let _ = out.write_all(text.as_bytes());
        }
        Ok(())
    }

    fn flush(&self) {
        let _ = std::io::stderr().lock().flush();
    }

    #[getter]
    fn encoding(&self) -> &'static str {
        "utf-8"
    }

    fn writable(&self) -> bool {
        true
    }
}
