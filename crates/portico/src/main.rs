//! The `portico` binary: reads the options, then hands over to `start`.
//!
//! A command line with `-c FILE` is read the nginx way (`nginx_cli`).
//!
//! Exit codes: 0 after a clean stop; 1 for a bad option or a start-up error
//! (a socket that cannot be bound, Python that cannot start); 22 when the
//! app cannot be loaded (uWSGI's need-app code).

mod front;
mod listeners;
mod nginx_cli;
mod peer_stats;
mod site_logs;
mod site_run;
mod start;
mod worker;

use std::process::ExitCode;

use anyhow::Result;
use portico_config::{Config, Setting, help_text, load, show_config};
use portico_wsgi::{PYTHON_BUILD_VERSION, PYTHON_EXECUTABLE};

/// uWSGI's exit code when no app could be loaded (`need-app`).
pub(crate) const EXIT_APP_LOAD_FAILED: u8 = 22;
/// Exit code for bad options and start-up failures.
pub(crate) const EXIT_FAILURE: u8 = 1;

pub(crate) const VERSION: &str = env!("CARGO_PKG_VERSION");

/// mimalloc for every Rust allocation (CPython keeps its own): a proxied
/// request makes about 37 allocations, and glibc's malloc/free were a
/// quarter of its instructions (docs/design-notes.md, "Allocator").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    portico_log::install();
    // Panics abort unless contained (one connection, one Python job).
    portico_server::panic_guard::install();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(parsed) = nginx_cli::parse_nginx_args(&args) {
        return match parsed {
            Ok(nginx_args) => nginx_cli::main(nginx_args),
            Err(e) => {
                eprintln!("portico: {e}");
                ExitCode::from(EXIT_FAILURE)
            }
        };
    }
    let (config, settings) = match read_config() {
        Ok(read) => read,
        Err(e) => {
            portico_server::logln!("portico: {e:#}");
            portico_server::logln!("Try \"portico --help\" for the list of options.");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    if let Some(level) = config.observe.log_level.as_deref()
        && let Ok(level) = level.parse()
    {
        portico_log::set_level(level);
    }
    portico_log::set_json(config.observe.log_json);
    if config.show_help {
        print!("{}", help_text());
        return ExitCode::SUCCESS;
    }
    if config.show_version {
        println!(
            "portico {VERSION} (built for Python {PYTHON_BUILD_VERSION} at {PYTHON_EXECUTABLE})"
        );
        return ExitCode::SUCCESS;
    }
    if config.show_config {
        print!("{}", show_config(&settings));
        return ExitCode::SUCCESS;
    }
    exit_code(start::run(config, None))
}

/// The process's exit code for how a run ended.
pub(crate) fn exit_code(run: Result<u8, start::Failure>) -> ExitCode {
    match run {
        Ok(code) => ExitCode::from(code),
        Err(start::Failure::AppLoad) => ExitCode::from(EXIT_APP_LOAD_FAILED),
        Err(start::Failure::Other(e)) => {
            portico_server::logln!("portico: {e:#}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// Read every source of options (environment, command line, config files),
/// log the notes and warnings that produced, and type and check the result.
/// The settings are returned too, for `--show-config`.
fn read_config() -> Result<(Config, Vec<Setting>)> {
    let env: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let loaded = load(std::env::args().skip(1), &env)?;
    for note in &loaded.notes {
        portico_server::logln!("portico: {note}");
    }
    let config = Config::from_settings(&loaded.settings)?;
    if !config.show_help && !config.show_version && !config.show_config {
        config.validate()?;
    }
    Ok((config, loaded.settings))
}
