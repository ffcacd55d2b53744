//! Loading the WSGI callable (file or module, uWSGI's rules) through the
//! embedded `loader.py`, with failures reported with their traceback and a
//! line that says what to do.

use std::fmt;
use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::PyModule;

use crate::respond::format_traceback;

const LOADER_SOURCE: &std::ffi::CStr = {
    const SRC: &str = concat!(include_str!("loader.py"), "\0");
    match std::ffi::CStr::from_bytes_with_nul(SRC.as_bytes()) {
        Ok(s) => s,
        Err(_) => panic!("loader.py contains a NUL byte"),
    }
};

/// Where the app comes from, as given on the command line.
#[derive(Debug, Clone)]
pub enum AppSpec {
    File(PathBuf),
    Module(String),
}

/// A loaded WSGI callable.
pub struct App {
    pub callable: Py<PyAny>,
    /// How it was named, for the banner and logs (`hello.py`, `mysite.wsgi:application`).
    pub description: String,
}

impl App {
    /// Another handle on the same callable (for a forked worker).
    pub fn clone_ref(&self) -> App {
        App {
            callable: Python::attach(|py| self.callable.clone_ref(py)),
            description: self.description.clone(),
        }
    }
}

/// Why the app did not load. `Display` is the one-line advice; the Python
/// traceback, if any, is in `traceback`.
#[derive(Debug)]
pub struct LoadError {
    pub description: String,
    pub summary: String,
    pub traceback: Option<String>,
    pub hint: &'static str,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unable to load app {} ({}): {}",
            self.description, self.summary, self.hint
        )
    }
}

impl std::error::Error for LoadError {}

fn hint_for(py: Python<'_>, err: &PyErr) -> &'static str {
    use pyo3::exceptions::*;
    if err.is_instance_of::<PyFileNotFoundError>(py) {
        "check the path (relative paths are taken from --chdir or the current directory)"
    } else if err.is_instance_of::<PyModuleNotFoundError>(py) {
        "check the module name, --pythonpath and --virtualenv"
    } else if err.is_instance_of::<PyImportError>(py) {
        "a module it imports is missing: install it, or set --virtualenv/--pythonpath"
    } else if err.is_instance_of::<PySyntaxError>(py) {
        "fix the syntax error shown above"
    } else if err.is_instance_of::<PyAttributeError>(py) {
        "check --callable (default \"application\") or the name after \":\" in --module"
    } else if err.is_instance_of::<PyTypeError>(py) {
        "point --callable at the WSGI function or object, not at a module or value"
    } else {
        "the app raised while loading: see the traceback above"
    }
}

/// Load the app. `pythonpath` entries go first on `sys.path`.
pub fn load(spec: &AppSpec, callable: &str, pythonpath: &[PathBuf]) -> Result<App, LoadError> {
    let description = match spec {
        AppSpec::File(p) => p.display().to_string(),
        AppSpec::Module(m) => m.clone(),
    };
    Python::attach(|py| {
        let attempt = || -> PyResult<Py<PyAny>> {
            let loader =
                PyModule::from_code(py, LOADER_SOURCE, c"portico_loader.py", c"portico_loader")?;
            let paths: Vec<String> = pythonpath.iter().map(|p| p.display().to_string()).collect();
            loader.call_method1("prepare", (paths,))?;
            let app = match spec {
                AppSpec::File(path) => {
                    loader.call_method1("load_file", (path.display().to_string(), callable))?
                }
                AppSpec::Module(target) => {
                    loader.call_method1("load_module", (target.as_str(), callable))?
                }
            };
            Ok(app.unbind())
        };
        attempt()
            .map(|callable| App {
                callable,
                description: description.clone(),
            })
            .map_err(|err| LoadError {
                description: description.clone(),
                summary: err.to_string(),
                traceback: format_traceback(py, &err),
                hint: hint_for(py, &err),
            })
    })
}
