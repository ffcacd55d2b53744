//! The typed configuration built from settings, and its validation: the
//! types and their defaults here; reading the settings into them in
//! `settings.rs`.

use std::path::PathBuf;
use std::time::Duration;

pub use crate::client::ClientOptions;
use crate::compress_options::CompressOptions;

mod settings;
#[cfg(test)]
mod tests;

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
