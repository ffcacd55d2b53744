//! The typed configuration built from settings, and its validation.

use std::path::PathBuf;
use std::time::Duration;

use crate::argv::parse_bool;
pub use crate::client::ClientOptions;
use crate::compress_options::CompressOptions;
use crate::{ConfigError, Setting};

/// The wire protocol a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1 (`--http`, `--http-socket`).
    Http,
    /// The uwsgi binary protocol (`--socket`), as nginx's `uwsgi_pass` speaks it.
    Uwsgi,
}

/// Where a listener binds, as the user wrote it (resolved at bind time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    /// `host:port`; an empty host (`:port`) means every IPv4 interface.
    Tcp { host: String, port: u16 },
    /// A unix socket path (an address without `:`).
    Unix(PathBuf),
}

/// One listening socket to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub protocol: Protocol,
    pub addr: ListenAddr,
    /// The option and value it came from, for messages (`--http :8000`).
    pub spec: String,
    /// HTTP/2 on this listener (`--http2`, `listen ... http2`), with its
    /// limits: prior-knowledge h2c beside HTTP/1.1 on a plain listener.
    pub http2: Option<Http2Settings>,
    /// TLS on this listener (`--https`, `listen ... ssl`).
    pub tls: Option<ListenerTls>,
}

/// HTTP/2 limits of a listener (nginx's `http2_*` directives; the same
/// defaults for the option style).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Http2Settings {
    /// Streams a client may have open at once (`http2_max_concurrent_streams`, 128).
    pub max_concurrent_streams: u32,
    /// Largest decoded header list of a request, in bytes (nginx's
    /// `large_client_header_buffers` product, `http2_max_header_size`; 32 KiB).
    pub max_header_list_size: u32,
    /// Largest DATA frame payload sent (`http2_chunk_size`, 8 KiB).
    pub chunk_size: u32,
    /// Request body bytes a stream may have in flight before the app reads
    /// them (its receive window; `http2_recv_buffer_size`, 256 KiB).
    pub recv_window: u32,
    /// An idle connection is closed after this (`http2_idle_timeout`,
    /// `keepalive_timeout`; 75 s).
    pub idle_timeout: Duration,
    /// Streams one connection carries before it is closed with GOAWAY
    /// (`keepalive_requests`, as nginx 1.19.7+ counts them; 1000 in
    /// nginx.conf); `None`: no limit (the option style).
    pub max_requests: Option<u64>,
}

impl Default for Http2Settings {
    fn default() -> Self {
        Http2Settings {
            max_concurrent_streams: 128,
            max_header_list_size: 32 * 1024,
            chunk_size: 8 * 1024,
            recv_window: 256 * 1024,
            idle_timeout: Duration::from_secs(75),
            max_requests: None,
        }
    }
}

/// Where a TLS listener's settings come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenerTls {
    /// The `ssl_*` settings of the site's servers on the address (nginx).
    Site,
    /// `--https ADDR,CERT,KEY[,CIPHERS[,CA]]`.
    Own(Box<crate::site::TlsSettings>),
}

/// An app mounted under a URL prefix (`--mount /prefix=app.py`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The prefix, without a trailing `/` (empty for the root).
    pub mountpoint: String,
    pub app: AppSource,
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
    pub process: ProcessConfig,
    pub mounts: Vec<Mount>,
    /// Route by mountpoint and set SCRIPT_NAME/PATH_INFO from it.
    pub manage_script_name: bool,
    /// Largest uwsgi vars block accepted (`--buffer-size`).
    pub buffer_size: usize,
    /// Largest request body accepted, in bytes; 0 for no limit (`--limit-post`).
    pub limit_post: u64,
    /// Client connections a worker holds at most (`--worker-connections`,
    /// nginx's `worker_connections`); 0 for no limit.
    pub worker_connections: usize,
    /// How client connections are read and timed (`--post-buffering`,
    /// `--http-timeout`, `--socket-timeout`; nginx's `client_*` directives).
    pub client: ClientOptions,
    /// Mode for unix sockets (`--chmod-socket`), if any.
    pub chmod_socket: Option<u32>,
    /// Owner for unix sockets (`--chown-socket USER[:GROUP]`).
    pub chown_socket: Option<String>,
    pub statics: StaticOptions,
    /// Compression on the fly (`--gzip`, `--brotli` and companions).
    pub compress: CompressOptions,
    /// Print the configuration as an ini file and exit (`--show-config`).
    pub show_config: bool,
    /// Unknown keys in config files are fatal (`--strict`; applied when the files are read).
    pub strict: bool,
    /// Report each worker's memory after every request (`--memory-report`).
    pub memory_report: bool,
    /// Stats server, Prometheus metrics, request-log format and filters.
    pub observe: crate::ObserveOptions,
}

/// The static-file options (uWSGI's names).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StaticOptions {
    /// (URL prefix without trailing `/`, directory, keep the prefix in the file path).
    pub maps: Vec<(String, PathBuf, bool)>,
    pub check_static: Vec<PathBuf>,
    pub index: Vec<String>,
    pub expires_by_type: Vec<(String, u64)>,
    pub skip_ext: Vec<String>,
    pub safe: Vec<PathBuf>,
}

/// Default `--buffer-size`: the largest a uwsgi packet header can announce
/// (uWSGI's 4096 makes big cookies a 502; see docs/compat.md).
pub(crate) const DEFAULT_BUFFER_SIZE: usize = 65535;

/// The process model: master, workers, recycling, limits, daemon options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessConfig {
    pub master: bool,
    pub processes: usize,
    pub lazy_apps: bool,
    /// Listen queue of every socket.
    pub listen: u32,
    /// Recycle after this many requests (0: never).
    pub max_requests: u64,
    pub max_requests_delta: u64,
    pub max_requests_jitter: u64,
    pub min_worker_lifetime: Duration,
    /// RSS limits in bytes (0: none).
    pub reload_on_rss: u64,
    pub evil_reload_on_rss: u64,
    /// Address-space limit in bytes (0: none).
    pub limit_as: u64,
    /// Per-request wall-clock limit (zero: none).
    pub harakiri: Duration,
    pub harakiri_verbose: bool,
    pub reload_mercy: Duration,
    pub touch_reload: Vec<PathBuf>,
    pub daemonize: Option<PathBuf>,
    pub logto: Option<PathBuf>,
    pub pidfile: Option<PathBuf>,
    pub pidfile2: Option<PathBuf>,
    pub vacuum: bool,
    pub uid: Option<String>,
    pub gid: Option<String>,
}

/// Default listen queue (uWSGI's is 100, which overflows under bursts).
pub(crate) const DEFAULT_LISTEN: u32 = 1024;
/// uWSGI's `min-worker-lifetime` default.
pub(crate) const DEFAULT_MIN_WORKER_LIFETIME: Duration = Duration::from_secs(10);
/// uWSGI's `worker-reload-mercy` default.
pub(crate) const DEFAULT_RELOAD_MERCY: Duration = Duration::from_secs(60);
/// Upper bound on `--processes`.
pub(crate) const MAX_PROCESSES: usize = 1024;

impl Default for ProcessConfig {
    fn default() -> Self {
        ProcessConfig {
            master: false,
            processes: 1,
            lazy_apps: false,
            listen: DEFAULT_LISTEN,
            max_requests: 0,
            max_requests_delta: 0,
            max_requests_jitter: 0,
            min_worker_lifetime: DEFAULT_MIN_WORKER_LIFETIME,
            reload_on_rss: 0,
            evil_reload_on_rss: 0,
            limit_as: 0,
            harakiri: Duration::ZERO,
            harakiri_verbose: false,
            reload_mercy: DEFAULT_RELOAD_MERCY,
            touch_reload: Vec::new(),
            daemonize: None,
            logto: None,
            pidfile: None,
            pidfile2: None,
            vacuum: false,
            uid: None,
            gid: None,
        }
    }
}

/// Default WSGI callable name, as in uWSGI.
pub(crate) const DEFAULT_CALLABLE: &str = "application";

/// Upper bound on `--threads`: beyond this a worker is better split into processes.
pub(crate) const MAX_THREADS: usize = 1024;

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
            process: ProcessConfig::default(),
            mounts: Vec::new(),
            manage_script_name: false,
            buffer_size: DEFAULT_BUFFER_SIZE,
            limit_post: 0,
            worker_connections: crate::site::DEFAULT_WORKER_CONNECTIONS,
            client: ClientOptions::default(),
            chmod_socket: None,
            chown_socket: None,
            statics: StaticOptions::default(),
            compress: CompressOptions::default(),
            show_config: false,
            strict: false,
            memory_report: false,
            observe: crate::ObserveOptions::default(),
        }
    }
}

impl Config {
    /// Build the typed configuration from settings in order (later values win).
    pub fn from_settings(settings: &[Setting]) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        let mut http2 = false;
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
                "disable-logging" => config.disable_logging = flag(s),
                "show-config" => config.show_config = flag(s),
                "strict" => config.strict = flag(s),
                "memory-report" => config.memory_report = flag(s),
                name if crate::observe::OBSERVE_OPTIONS.contains(&name) => {
                    config.observe.apply(s)?
                }
                // Read by the config loader (files, placeholders) and by nothing after it.
                "ini" | "xml" | "yaml" | "json" | "include" | "set" | "set-placeholder"
                | "plugins" => {}
                "master" => config.process.master = flag(s),
                "processes" => {
                    config.process.processes = number(s, 1, MAX_PROCESSES as u64)? as usize
                }
                "enable-threads" | "die-on-term" | "harakiri-verbose" => {
                    config.process.harakiri_verbose |=
                        s.option.name == "harakiri-verbose" && flag(s)
                }
                "lazy-apps" => config.process.lazy_apps = flag(s),
                "listen" => config.process.listen = number(s, 1, 65535)? as u32,
                "max-requests" => config.process.max_requests = number(s, 0, u64::MAX)?,
                "max-requests-delta" => config.process.max_requests_delta = number(s, 0, u64::MAX)?,
                "max-requests-jitter" => {
                    config.process.max_requests_jitter = number(s, 0, u64::MAX)?
                }
                "min-worker-lifetime" => config.process.min_worker_lifetime = seconds(s)?,
                "reload-on-rss" => config.process.reload_on_rss = megabytes(s)?,
                "evil-reload-on-rss" => config.process.evil_reload_on_rss = megabytes(s)?,
                "limit-as" => config.process.limit_as = megabytes(s)?,
                "harakiri" => config.process.harakiri = seconds(s)?,
                "reload-mercy" => config.process.reload_mercy = seconds(s)?,
                "touch-reload" => config.process.touch_reload.push(PathBuf::from(&s.value)),
                "daemonize" => config.process.daemonize = Some(PathBuf::from(&s.value)),
                "logto" => config.process.logto = Some(PathBuf::from(&s.value)),
                "pidfile" => config.process.pidfile = Some(PathBuf::from(&s.value)),
                "pidfile2" => config.process.pidfile2 = Some(PathBuf::from(&s.value)),
                "vacuum" => config.process.vacuum = flag(s),
                "mount" => config.mounts.push(
                    parse_mount(&s.value)
                        .ok_or_else(|| bad("/MOUNTPOINT=APP (a file or module[:callable])"))?,
                ),
                "manage-script-name" => config.manage_script_name = flag(s),
                "buffer-size" => config.buffer_size = number(s, 1024, 65535)? as usize,
                "limit-post" => config.limit_post = number(s, 0, u64::MAX)?,
                "worker-connections" => config.worker_connections = number(s, 0, 1 << 24)? as usize,
                "post-buffering" => config.client.post_buffering = number(s, 0, 1 << 40)? as usize,
                "post-buffering-bufsize" => {
                    number(s, 0, 1 << 40)?;
                }
                "socket-timeout" => {
                    config.client.socket_timeout =
                        Duration::from_secs(number(s, 1, 365 * 24 * 3600)?)
                }
                "http-timeout" => {
                    let t = Duration::from_secs(number(s, 1, 365 * 24 * 3600)?);
                    config.client.header_timeout = t;
                    config.client.body_timeout = t;
                    config.client.send_timeout = t;
                }
                "chmod-socket" => {
                    config.chmod_socket = Some(
                        // Bare (`true`) or `1` means 666, as in uWSGI.
                        u32::from_str_radix(
                            if matches!(s.value.as_str(), "true" | "1") {
                                "666"
                            } else {
                                &s.value
                            },
                            8,
                        )
                        .ok()
                        .filter(|m| {
                            *m <= 0o777
                                && (s.value.len() == 3 || matches!(s.value.as_str(), "true" | "1"))
                        })
                        .ok_or_else(|| bad("a mode of three octal digits (e.g. 660)"))?,
                    )
                }
                "chown-socket" => config.chown_socket = Some(s.value.clone()),
                "static-map" | "static-map2" => {
                    let (url, dir) = s
                        .value
                        .split_once('=')
                        .filter(|(u, d)| u.starts_with('/') && !d.is_empty())
                        .ok_or_else(|| bad("/URL=DIR"))?;
                    let url = url.trim_end_matches('/').to_string();
                    config.statics.maps.push((
                        url,
                        PathBuf::from(dir),
                        s.option.name == "static-map2",
                    ));
                }
                "check-static" => config.statics.check_static.push(PathBuf::from(&s.value)),
                "static-index" => config.statics.index.push(s.value.clone()),
                "static-expires-type" => {
                    let (mime, secs) = s
                        .value
                        .split_once('=')
                        .and_then(|(m, n)| Some((m.to_string(), n.trim().parse::<u64>().ok()?)))
                        .ok_or_else(|| bad("MIME=SECONDS"))?;
                    config.statics.expires_by_type.push((mime, secs));
                }
                "static-skip-ext" => config.statics.skip_ext.push(s.value.clone()),
                "static-safe" => config.statics.safe.push(PathBuf::from(&s.value)),
                "gzip" => config.compress.gzip = flag(s),
                "brotli" => config.compress.brotli = flag(s),
                "http-auto-gzip" => config.compress.auto_gzip = flag(s),
                "gzip-types" => config
                    .compress
                    .types
                    .extend(s.value.split_whitespace().map(str::to_string)),
                "gzip-min-length" => config.compress.min_length = Some(number(s, 0, u64::MAX)?),
                "gzip-level" => config.compress.gzip_level = Some(number(s, 1, 9)? as u32),
                "brotli-level" => config.compress.brotli_level = Some(number(s, 0, 11)? as u32),
                "gzip-proxied" => {
                    let mut bits = config.compress.proxied.unwrap_or(0);
                    for word in s.value.split_whitespace() {
                        bits |= crate::site::GzipProxied::keyword(word)
                            .ok_or_else(|| bad("gzip_proxied keywords (off, any, expired, ...)"))?;
                    }
                    config.compress.proxied = Some(bits);
                }
                "offload-threads" => {
                    number(s, 0, 1024)?;
                }
                "uid" => config.process.uid = Some(s.value.clone()),
                "gid" => config.process.gid = Some(s.value.clone()),
                "http" | "http-socket" | "socket" => config.listeners.push(Listener {
                    protocol: if s.option.name == "socket" {
                        Protocol::Uwsgi
                    } else {
                        Protocol::Http
                    },
                    addr: parse_addr(&s.value).ok_or_else(|| {
                        bad("an address (host:port, :port, [::1]:port or a unix socket path)")
                    })?,
                    spec: format!("--{} {}", s.option.name, s.value),
                    http2: None,
                    tls: None,
                }),
                "https" | "https-socket" => {
                    let spec = format!("--{} {}", s.option.name, s.value);
                    let (addr, settings) = parse_https(&s.value, &spec).ok_or_else(|| {
                        bad("ADDR,CERT,KEY[,CIPHERS[,CA]] (CA with a leading ! makes client certificates mandatory)")
                    })?;
                    config.listeners.push(Listener {
                        protocol: Protocol::Http,
                        addr,
                        spec,
                        http2: None,
                        tls: Some(ListenerTls::Own(Box::new(settings))),
                    });
                }
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
                "threads" => config.threads = number(s, 1, MAX_THREADS as u64)? as usize,
                "http2" => http2 = flag(s),
                other => {
                    return Err(ConfigError::Invalid(format!(
                        "{}: option \"--{other}\" is not supported yet",
                        s.origin
                    )));
                }
            }
        }
        if http2 {
            // Portico's own switch: h2c beside HTTP/1.1 on the HTTP
            // listeners, ALPN `h2` on the HTTPS ones.
            for l in &mut config.listeners {
                if l.protocol == Protocol::Http {
                    l.http2 = Some(Http2Settings::default());
                }
            }
        }
        Ok(config)
    }

    /// Check the whole configuration for what a start-up needs.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.listeners.is_empty() {
            return Err(ConfigError::Invalid(
                "no listener: give at least one --http ADDR, --http-socket ADDR or --socket ADDR (uwsgi protocol, for nginx's uwsgi_pass)".into(),
            ));
        }
        let serves_files = !self.statics.maps.is_empty() || !self.statics.check_static.is_empty();
        if self.app.is_none() && self.mounts.is_empty() && !serves_files {
            return Err(ConfigError::Invalid(
                "nothing to serve: give --wsgi-file FILE, --module MODULE, --mount /PREFIX=APP or --static-map /URL=DIR"
                    .into(),
            ));
        }
        Ok(())
    }
}

fn flag(s: &Setting) -> bool {
    parse_bool(&s.value).unwrap_or(true)
}

fn number(s: &Setting, min: u64, max: u64) -> Result<u64, ConfigError> {
    s.value
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| ConfigError::BadValue {
            origin: s.origin.clone(),
            name: s.option.name.into(),
            value: s.value.clone(),
            expected: if max == u64::MAX {
                format!("a whole number of at least {min}")
            } else {
                format!("a whole number from {min} to {max}")
            },
        })
}

fn seconds(s: &Setting) -> Result<Duration, ConfigError> {
    number(s, 0, 365 * 24 * 3600).map(Duration::from_secs)
}

fn megabytes(s: &Setting) -> Result<u64, ConfigError> {
    number(s, 0, 1 << 40).map(|mb| mb * 1024 * 1024)
}

/// `/prefix=app.py` or `/prefix=module:callable`; the prefix loses a trailing `/`.
fn parse_mount(value: &str) -> Option<Mount> {
    let (mountpoint, target) = value.split_once('=')?;
    if !(mountpoint.is_empty() || mountpoint.starts_with('/')) || target.is_empty() {
        return None;
    }
    let mountpoint = mountpoint.trim_end_matches('/').to_string();
    let is_file = target.ends_with(".py") || target.ends_with(".wsgi") || target.contains('/');
    let app = if is_file {
        AppSource::File(PathBuf::from(target))
    } else {
        AppSource::Module(target.to_string())
    };
    Some(Mount { mountpoint, app })
}

/// uWSGI's `--https ADDR,CERT,KEY[,CIPHERS[,CA]]`: CIPHERS is an OpenSSL
/// cipher list (empty: the default); CA verifies client certificates, when
/// one is sent (`!CA`: one must be sent), and a failure ends the handshake,
/// as uWSGI's OpenSSL verify callback does.
fn parse_https(value: &str, spec: &str) -> Option<(ListenAddr, crate::site::TlsSettings)> {
    use crate::site::{CertKeyPair, TlsSettings, VerifyClient, VerifyFailure};
    let mut parts = value.split(',');
    let addr = parse_addr(parts.next()?)?;
    let cert = parts.next().filter(|p| !p.is_empty())?;
    let key = parts.next().filter(|p| !p.is_empty())?;
    let mut settings = TlsSettings {
        certificates: vec![CertKeyPair {
            cert: PathBuf::from(cert),
            key: PathBuf::from(key),
        }],
        verify_failure: VerifyFailure::Handshake,
        origin: spec.to_string(),
        ..TlsSettings::default()
    };
    if let Some(ciphers) = parts.next().filter(|p| !p.is_empty()) {
        // uWSGI sets SSL_OP_CIPHER_SERVER_PREFERENCE with its own list
        settings.ciphers = ciphers.to_string();
        settings.prefer_server_ciphers = true;
    }
    if let Some(ca) = parts.next().filter(|p| !p.is_empty()) {
        let (mandatory, ca) = match ca.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, ca),
        };
        settings.client_ca = Some(PathBuf::from(ca));
        settings.verify_client = if mandatory {
            VerifyClient::On
        } else {
            VerifyClient::Optional
        };
    }
    if parts.next().is_some() {
        return None;
    }
    Some((addr, settings))
}

impl ListenAddr {
    /// Read an address as uWSGI does for every socket option: one with a
    /// `:` is TCP (`host:port`, `:port`, `[v6]:port`), one without a unix
    /// socket path. The one place that rule is written.
    pub fn parse(value: &str) -> Option<ListenAddr> {
        parse_addr(value)
    }
}

/// [`ListenAddr::parse`].
fn parse_addr(value: &str) -> Option<ListenAddr> {
    if !value.contains(':') {
        return (!value.is_empty()).then(|| ListenAddr::Unix(PathBuf::from(value)));
    }
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
    fn https_takes_cert_key_ciphers_and_a_client_ca_as_uwsgi() {
        use crate::site::{VerifyClient, VerifyFailure};
        let c = config(&[
            "--https",
            ":8443,site.pem,site.key",
            "--https-socket",
            "127.0.0.1:9443,a.pem,a.key,ECDHE+AESGCM,!ca.pem",
            "--https",
            ":1,c.pem,c.key,,ca.pem",
        ])
        .expect("valid");
        let tls: Vec<_> = c
            .listeners
            .iter()
            .map(|l| match &l.tls {
                Some(ListenerTls::Own(s)) => s.as_ref().clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(tls[0].certificates[0].cert, PathBuf::from("site.pem"));
        assert_eq!(tls[0].certificates[0].key, PathBuf::from("site.key"));
        assert_eq!(tls[0].verify_client, VerifyClient::Off);
        assert_eq!(tls[1].ciphers, "ECDHE+AESGCM");
        assert_eq!(tls[1].client_ca, Some(PathBuf::from("ca.pem")));
        assert_eq!(tls[1].verify_client, VerifyClient::On);
        assert_eq!(tls[1].verify_failure, VerifyFailure::Handshake);
        assert_eq!(tls[2].ciphers, crate::site::DEFAULT_CIPHERS);
        assert_eq!(tls[2].verify_client, VerifyClient::Optional);
        assert!(config(&["--https", ":8443,only-a-cert.pem"]).is_err());
        assert!(config(&["--https", ":8443,a,b,c,d,e"]).is_err());
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
    fn post_buffering_defaults_on_and_zero_streams() {
        let c = config(&[]).expect("valid");
        assert_eq!(c.client.post_buffering, 16 * 1024);
        let c = config(&["--post-buffering", "0"]).expect("valid");
        assert_eq!(c.client.post_buffering, 0);
        let c = config(&[
            "--post-buffering",
            "8192",
            "--post-buffering-bufsize",
            "4096",
        ])
        .expect("valid");
        assert_eq!(c.client.post_buffering, 8192);
    }

    #[test]
    fn socket_and_http_timeouts_set_their_listeners_limits() {
        let c = config(&[]).expect("valid");
        assert_eq!(c.client.socket_timeout, Duration::from_secs(4));
        assert_eq!(c.client.header_timeout, Duration::from_secs(60));
        let c = config(&["-z", "7", "--http-timeout", "9"]).expect("valid");
        assert_eq!(c.client.socket_timeout, Duration::from_secs(7));
        assert_eq!(
            (
                c.client.header_timeout,
                c.client.body_timeout,
                c.client.send_timeout
            ),
            (
                Duration::from_secs(9),
                Duration::from_secs(9),
                Duration::from_secs(9)
            )
        );
        assert_eq!(c.client.keepalive_timeout, Duration::from_secs(75));
        assert!(config(&["--socket-timeout", "0"]).is_err());
    }

    #[test]
    fn worker_connections_defaults_to_nginx_s_512_and_zero_means_none() {
        assert_eq!(config(&[]).expect("valid").worker_connections, 512);
        let c = config(&["--worker-connections", "16"]).expect("valid");
        assert_eq!(c.worker_connections, 16);
        assert_eq!(
            config(&["--worker-connections", "0"])
                .expect("valid")
                .worker_connections,
            0
        );
        assert!(config(&["--worker-connections", "many"]).is_err());
    }

    #[test]
    fn limit_post_is_a_byte_count_and_zero_means_none() {
        assert_eq!(config(&[]).expect("valid").limit_post, 0);
        let c = config(&["--limit-post", "1048576"]).expect("valid");
        assert_eq!(c.limit_post, 1_048_576);
        assert_eq!(
            crate::test_err::text(config(&["--limit-post", "1M"])),
            "command line: option \"--limit-post\": \"1M\" is not a whole number of at least 0"
        );
        assert_eq!(
            crate::test_err::text(config(&["--limit-post", "-1"])),
            "command line: option \"--limit-post\": \"-1\" is not a whole number of at least 0"
        );
    }

    #[test]
    fn bad_address_names_option_value_and_kind() {
        let err = config(&["--http", "localhost:http"]).expect_err("bad");
        assert_eq!(
            err.to_string(),
            "command line: option \"--http\": \"localhost:http\" is not an address (host:port, :port, [::1]:port or a unix socket path)"
        );
        assert_eq!(
            crate::test_err::text(config(&["--http", "::1:80"])),
            "command line: option \"--http\": \"::1:80\" is not an address (host:port, :port, [::1]:port or a unix socket path)"
        );
    }

    #[test]
    fn address_without_colon_is_a_unix_socket_and_socket_speaks_uwsgi() {
        let c = config(&["--socket", "/run/app.sock", "--http", ":80"]).expect("valid");
        assert_eq!(c.listeners[0].protocol, Protocol::Uwsgi);
        assert_eq!(
            c.listeners[0].addr,
            ListenAddr::Unix("/run/app.sock".into())
        );
        assert_eq!(c.listeners[1].protocol, Protocol::Http);
    }

    #[test]
    fn mounts_take_files_or_modules_and_drop_trailing_slashes() {
        let c = config(&[
            "--mount",
            "/myapp/=server.py",
            "--mount",
            "/api=pkg.api:app",
        ])
        .expect("valid");
        assert_eq!(
            c.mounts,
            vec![
                Mount {
                    mountpoint: "/myapp".into(),
                    app: AppSource::File("server.py".into())
                },
                Mount {
                    mountpoint: "/api".into(),
                    app: AppSource::Module("pkg.api:app".into())
                },
            ]
        );
        assert_eq!(
            crate::test_err::text(config(&["--mount", "noslash=app.py"])),
            "command line: option \"--mount\": \"noslash=app.py\" is not /MOUNTPOINT=APP (a file or module[:callable])"
        );
        assert_eq!(
            crate::test_err::text(config(&["--mount", "/x"])),
            "command line: option \"--mount\": \"/x\" is not /MOUNTPOINT=APP (a file or module[:callable])"
        );
    }

    #[test]
    fn chmod_socket_bare_means_666_and_takes_three_octal_digits() {
        assert_eq!(
            config(&["--chmod-socket"]).expect("ok").chmod_socket,
            Some(0o666)
        );
        assert_eq!(
            config(&["--chmod-socket", "660"]).expect("ok").chmod_socket,
            Some(0o660)
        );
        assert_eq!(
            config(&["--chmod-socket=664"]).expect("ok").chmod_socket,
            Some(0o664)
        );
        assert_eq!(
            crate::test_err::text(config(&["--chmod-socket=999"])),
            "command line: option \"--chmod-socket\": \"999\" is not a mode of three octal digits (e.g. 660)"
        );
        assert_eq!(
            crate::test_err::text(config(&["--chmod-socket=6666"])),
            "command line: option \"--chmod-socket\": \"6666\" is not a mode of three octal digits (e.g. 660)"
        );
    }

    #[test]
    fn threads_must_be_a_positive_number() {
        assert_eq!(config(&["--threads", "4"]).expect("ok").threads, 4);
        assert_eq!(
            crate::test_err::text(config(&["--threads", "many"])),
            "command line: option \"--threads\": \"many\" is not a whole number from 1 to 1024"
        );
        assert_eq!(
            crate::test_err::text(config(&["--threads", "0"])),
            "command line: option \"--threads\": \"0\" is not a whole number from 1 to 1024"
        );
    }

    #[test]
    fn env_needs_key_equals_value_and_keeps_later_equals_signs() {
        let c = config(&["--env", "A=1=2", "--env", "B="]).expect("ok");
        assert_eq!(
            c.env,
            vec![("A".into(), "1=2".into()), ("B".into(), "".into())]
        );
        assert_eq!(
            crate::test_err::text(config(&["--env", "novalue"])),
            "command line: option \"--env\": \"novalue\" is not KEY=VALUE"
        );
    }

    #[test]
    fn validate_requires_a_listener_and_an_app() {
        assert_eq!(
            crate::test_err::text(config(&["--wsgi-file", "a.py"]).expect("ok").validate()),
            "no listener: give at least one --http ADDR, --http-socket ADDR or --socket ADDR (uwsgi protocol, for nginx's uwsgi_pass)"
        );
        assert_eq!(
            crate::test_err::text(config(&["--http", ":1"]).expect("ok").validate()),
            "nothing to serve: give --wsgi-file FILE, --module MODULE, --mount /PREFIX=APP or --static-map /URL=DIR"
        );
        assert!(
            config(&["--http", ":1", "-w", "m"])
                .expect("ok")
                .validate()
                .is_ok()
        );
    }
}
