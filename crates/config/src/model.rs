//! The typed configuration built from settings, and its validation.

use std::path::PathBuf;

use crate::argv::parse_bool;
use crate::{ConfigError, Setting};

/// The wire protocol a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1 (`--http`, `--http-socket`).
    Http,
}

/// Where a listener binds, as the user wrote it (resolved at bind time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    /// `host:port`; an empty host (`:port`) means every IPv4 interface.
    Tcp { host: String, port: u16 },
}

/// One listening socket to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub protocol: Protocol,
    pub addr: ListenAddr,
    /// The option and value it came from, for messages (`--http :8000`).
    pub spec: String,
}

/// Where the WSGI callable comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppSource {
    /// `--wsgi-file FILE`.
    File(PathBuf),
    /// `--module mod[:callable]`, kept as written.
    Module(String),
}

/// Everything the program needs to start, fully typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub show_help: bool,
    pub show_version: bool,
    pub listeners: Vec<Listener>,
    pub app: Option<AppSource>,
    pub callable: String,
    pub pythonpath: Vec<PathBuf>,
    pub chdir: Option<PathBuf>,
    pub virtualenv: Option<PathBuf>,
    pub env: Vec<(String, String)>,
    pub threads: usize,
    /// No per-request access log line (`--disable-logging`).
    pub disable_logging: bool,
}

/// Default WSGI callable name, as in uWSGI.
pub const DEFAULT_CALLABLE: &str = "application";

/// Upper bound on `--threads`: beyond this a worker is better split into processes.
pub const MAX_THREADS: usize = 1024;

impl Default for Config {
    fn default() -> Self {
        Config {
            show_help: false,
            show_version: false,
            listeners: Vec::new(),
            app: None,
            callable: DEFAULT_CALLABLE.to_string(),
            pythonpath: Vec::new(),
            chdir: None,
            virtualenv: None,
            env: Vec::new(),
            threads: 1,
            disable_logging: false,
        }
    }
}

impl Config {
    /// Build the typed configuration from settings in order (later values win).
    pub fn from_settings(settings: &[Setting]) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        for s in settings {
            let bad = |expected: &str| ConfigError::BadValue {
                origin: s.origin.clone(),
                name: s.option.name.into(),
                value: s.value.clone(),
                expected: expected.into(),
            };
            match s.option.name {
                "help" => config.show_help = parse_bool(&s.value).unwrap_or(true),
                "version" => config.show_version = parse_bool(&s.value).unwrap_or(true),
                "disable-logging" => config.disable_logging = parse_bool(&s.value).unwrap_or(true),
                "http" | "http-socket" => config.listeners.push(Listener {
                    protocol: Protocol::Http,
                    addr: parse_addr(&s.value)
                        .ok_or_else(|| bad("an address (host:port, :port or [::1]:port)"))?,
                    spec: format!("--{} {}", s.option.name, s.value),
                }),
                "wsgi-file" => config.app = Some(AppSource::File(PathBuf::from(&s.value))),
                "module" => config.app = Some(AppSource::Module(s.value.clone())),
                "callable" => config.callable = s.value.clone(),
                "pythonpath" => config.pythonpath.push(PathBuf::from(&s.value)),
                "chdir" => config.chdir = Some(PathBuf::from(&s.value)),
                "virtualenv" => config.virtualenv = Some(PathBuf::from(&s.value)),
                "env" => {
                    let (k, v) = s
                        .value
                        .split_once('=')
                        .filter(|(k, _)| !k.is_empty())
                        .ok_or_else(|| bad("KEY=VALUE"))?;
                    config.env.push((k.to_string(), v.to_string()));
                }
                "threads" => {
                    config.threads = s
                        .value
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_THREADS).contains(n))
                        .ok_or_else(|| bad("a whole number from 1 to 1024"))?;
                }
                other => {
                    return Err(ConfigError::Invalid(format!(
                        "{}: option \"--{other}\" is not supported yet",
                        s.origin
                    )));
                }
            }
        }
        Ok(config)
    }

    /// Check the whole configuration for what a start-up needs.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.listeners.is_empty() {
            return Err(ConfigError::Invalid(
                "no listener: give at least one --http ADDR or --http-socket ADDR".into(),
            ));
        }
        if self.app.is_none() {
            return Err(ConfigError::Invalid(
                "no application: give --wsgi-file FILE or --module MODULE".into(),
            ));
        }
        Ok(())
    }
}

/// Parse `host:port`, `:port` or `[v6]:port`.
fn parse_addr(value: &str) -> Option<ListenAddr> {
    let (host, port) = value.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.strip_suffix(']')?.to_string(),
        None if host.contains(':') => return None,
        None => host.to_string(),
    };
    Some(ListenAddr::Tcp { host, port })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_args;

    fn config(args: &[&str]) -> Result<Config, ConfigError> {
        Config::from_settings(&parse_args(args.iter().copied())?)
    }

    #[test]
    fn addresses_accept_host_port_all_interfaces_and_ipv6() {
        let c = config(&[
            "--http",
            "127.0.0.1:80",
            "--http",
            ":8000",
            "--http-socket",
            "[::1]:0",
        ])
        .expect("valid");
        let addrs: Vec<_> = c.listeners.iter().map(|l| l.addr.clone()).collect();
        assert_eq!(
            addrs,
            vec![
                ListenAddr::Tcp {
                    host: "127.0.0.1".into(),
                    port: 80
                },
                ListenAddr::Tcp {
                    host: "".into(),
                    port: 8000
                },
                ListenAddr::Tcp {
                    host: "::1".into(),
                    port: 0
                },
            ]
        );
    }

    #[test]
    fn bad_address_names_option_value_and_kind() {
        let err = config(&["--http", "nowhere"]).expect_err("bad");
        assert_eq!(
            err.to_string(),
            "command line: option \"--http\": \"nowhere\" is not an address (host:port, :port or [::1]:port)"
        );
        assert!(config(&["--http", "::1:80"]).is_err());
    }

    #[test]
    fn threads_must_be_a_positive_number() {
        assert_eq!(config(&["--threads", "4"]).expect("ok").threads, 4);
        assert!(config(&["--threads", "many"]).is_err());
        assert!(config(&["--threads", "0"]).is_err());
    }

    #[test]
    fn env_needs_key_equals_value_and_keeps_later_equals_signs() {
        let c = config(&["--env", "A=1=2", "--env", "B="]).expect("ok");
        assert_eq!(
            c.env,
            vec![("A".into(), "1=2".into()), ("B".into(), "".into())]
        );
        assert!(config(&["--env", "novalue"]).is_err());
    }

    #[test]
    fn validate_requires_a_listener_and_an_app() {
        assert!(
            config(&["--wsgi-file", "a.py"])
                .expect("ok")
                .validate()
                .is_err()
        );
        assert!(config(&["--http", ":1"]).expect("ok").validate().is_err());
        assert!(
            config(&["--http", ":1", "-w", "m"])
                .expect("ok")
                .validate()
                .is_ok()
        );
    }
}
