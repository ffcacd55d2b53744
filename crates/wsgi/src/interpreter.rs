//! Starting the embedded CPython: program name (for the standard library
//! and virtualenv detection), no signal handlers of its own (the server owns
//! signals), unbuffered stdio so app prints reach the log at once.
//!
//! A virtualenv is honoured the way `venv/bin/python` itself finds it: the
//! interpreter is told its program is `VENV/bin/python`, reads the
//! `pyvenv.cfg` beside it, and sets `sys.prefix` to the venv. A directory
//! without `pyvenv.cfg` is taken as a Python home (`PYTHONHOME`), as
//! uWSGI's `--home` does.

use std::ffi::CString;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use pyo3::ffi;
use pyo3::prelude::*;

/// The `python` executable this binary was built against.
pub const PYTHON_EXECUTABLE: &str = env!("PORTICO_PYTHON_EXECUTABLE");
/// Its `major.minor` version.
pub const PYTHON_BUILD_VERSION: &str = env!("PORTICO_PYTHON_VERSION");

/// The embedded interpreter, started once per process tree.
pub struct Interpreter {
    /// `sys.version` as the interpreter reports it.
    pub version: String,
    /// `sys.executable`.
    pub executable: String,
    /// `sys.prefix` (the virtualenv when one is active).
    pub prefix: String,
}

/// Why the interpreter could not start.
#[derive(Debug)]
pub enum InterpreterError {
    /// The virtualenv directory does not look like one.
    BadVirtualenv { path: PathBuf, why: String },
    /// CPython refused to initialise.
    Init(String),
}

impl fmt::Display for InterpreterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InterpreterError::BadVirtualenv { path, why } => {
                write!(f, "virtualenv {}: {why}", path.display())
            }
            InterpreterError::Init(why) => write!(f, "cannot start Python: {why}"),
        }
    }
}

impl std::error::Error for InterpreterError {}

/// How the interpreter finds its prefix.
enum Home {
    /// The program name to report: a venv's `bin/python` or the build-time python.
    Program(PathBuf),
    /// A Python home directory (`PYTHONHOME` semantics).
    PythonHome(PathBuf),
}

fn choose_home(virtualenv: Option<&Path>) -> Result<Home, InterpreterError> {
    let Some(venv) = virtualenv else {
        return Ok(Home::Program(PathBuf::from(PYTHON_EXECUTABLE)));
    };
    let venv = std::path::absolute(venv).unwrap_or_else(|_| venv.to_path_buf());
    if !venv.is_dir() {
        return Err(InterpreterError::BadVirtualenv {
            path: venv,
            why: "no such directory".into(),
        });
    }
    if !venv.join("pyvenv.cfg").is_file() {
        return Ok(Home::PythonHome(venv));
    }
    if let Some(made_with) = venv_python_version(&venv)
        && made_with != PYTHON_BUILD_VERSION
    {
        return Err(InterpreterError::BadVirtualenv {
            path: venv,
            why: format!(
                "made with Python {made_with}, but this portico embeds Python \
                 {PYTHON_BUILD_VERSION}: use a venv of that Python, or build portico \
                 with {made_with} (README.md, \"Installing with pip\")"
            ),
        });
    }
    let python = ["python", "python3"]
        .iter()
        .map(|name| venv.join("bin").join(name))
        .find(|p| p.exists())
        .ok_or_else(|| InterpreterError::BadVirtualenv {
            path: venv.clone(),
            why: "has pyvenv.cfg but no bin/python".into(),
        })?;
    Ok(Home::Program(python))
}

/// The `major.minor` a venv was made with, from its `pyvenv.cfg` (`version`
/// as `venv` writes it, `version_info` as `virtualenv` does); none if unsaid.
fn venv_python_version(venv: &Path) -> Option<String> {
    let cfg = std::fs::read_to_string(venv.join("pyvenv.cfg")).ok()?;
    pyvenv_version(&cfg)
}

fn pyvenv_version(cfg: &str) -> Option<String> {
    cfg.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        if !matches!(key.trim(), "version" | "version_info") {
            return None;
        }
        let mut parts = value.trim().split('.');
        let (major, minor) = (parts.next()?, parts.next()?);
        Some(format!("{major}.{minor}"))
    })
}

fn c_path(path: &Path) -> Result<CString, InterpreterError> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| InterpreterError::Init(format!("path {} contains a NUL byte", path.display())))
}

impl Interpreter {
    /// Start CPython in this process. Call once, before any thread exists;
    /// the GIL is released on return so Python threads can take it.
    pub fn start(virtualenv: Option<&Path>) -> Result<Interpreter, InterpreterError> {
        let home = choose_home(virtualenv)?;
        let program = match &home {
            Home::Program(p) => c_path(p)?,
            Home::PythonHome(_) => c_path(Path::new(PYTHON_EXECUTABLE))?,
        };
        let python_home = match &home {
            Home::PythonHome(h) => Some(c_path(h)?),
            Home::Program(_) => None,
        };
        let argv0 = c"portico";
        // SAFETY: the PyConfig is initialised by CPython before use and
        // cleared after; the strings outlive the calls that copy them; this
        // runs once, on the main thread, before any other thread exists.
        unsafe {
            let mut config: ffi::PyConfig = std::mem::zeroed();
            ffi::PyConfig_InitPythonConfig(&mut config);
            config.install_signal_handlers = 0;
            config.buffered_stdio = 0;
            config.parse_argv = 0;
            let mut status = ffi::PyConfig_SetBytesString(
                &mut config,
                &mut config.program_name,
                program.as_ptr(),
            );
            if ffi::PyStatus_Exception(status) == 0
                && let Some(h) = &python_home
            {
                status = ffi::PyConfig_SetBytesString(&mut config, &mut config.home, h.as_ptr());
            }
            if ffi::PyStatus_Exception(status) == 0 {
                let mut argv = [argv0.as_ptr()];
                status = ffi::PyConfig_SetBytesArgv(&mut config, 1, argv.as_mut_ptr());
            }
            if ffi::PyStatus_Exception(status) == 0 {
                status = ffi::Py_InitializeFromConfig(&config);
            }
            ffi::PyConfig_Clear(&mut config);
            if ffi::PyStatus_Exception(status) != 0 {
                let msg = if status.err_msg.is_null() {
                    "unknown error".to_string()
                } else {
                    std::ffi::CStr::from_ptr(status.err_msg)
                        .to_string_lossy()
                        .into_owned()
                };
                return Err(InterpreterError::Init(msg));
            }
            // Release the GIL taken by initialisation; threads attach as needed.
            ffi::PyEval_SaveThread();
        }
        Python::attach(|py| {
            let sys = py
                .import("sys")
                .map_err(|e| InterpreterError::Init(e.to_string()))?;
            let get = |name: &str| -> String {
                sys.getattr(name)
                    .and_then(|v| v.extract::<String>())
                    .unwrap_or_else(|_| "?".into())
            };
            Ok(Interpreter {
                version: get("version").replace('\n', " "),
                executable: get("executable"),
                prefix: get("prefix"),
            })
        })
    }
}

/// The two sides of a fork made with the interpreter's fork hooks.
pub enum ForkSide {
    Parent(i32),
    Child,
}

/// Fork this process with CPython's `PyOS_BeforeFork`/`AfterFork_*` hooks
/// around it (the import lock, threading state, `os.register_at_fork`
/// callbacks). Call only while the process has no other thread.
pub fn fork_with_python() -> std::io::Result<ForkSide> {
    Python::attach(|_py| {
        // SAFETY: the GIL is held as the hooks require; the process is
        // single-threaded, so fork duplicates a consistent state.
        unsafe {
            ffi::PyOS_BeforeFork();
            let pid = libc::fork();
            if pid == 0 {
                ffi::PyOS_AfterFork_Child();
                Ok(ForkSide::Child)
            } else {
                ffi::PyOS_AfterFork_Parent();
                if pid < 0 {
                    Err(std::io::Error::last_os_error())
                } else {
                    Ok(ForkSide::Parent(pid))
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::pyvenv_version;

    #[test]
    fn pyvenv_version_reads_venv_and_virtualenv_layouts() {
        let cases = [
            ("home = /usr/bin\nversion = 3.11.7\n", Some("3.11")),
            ("version_info = 3.12.1.final.0\n", Some("3.12")),
            ("home = /usr/bin\n", None),
            ("version = 3\n", None),
        ];
        for (cfg, want) in cases {
            assert_eq!(pyvenv_version(cfg).as_deref(), want, "{cfg:?}");
        }
    }
}
