//! The Site model: what a server does with each request, as a tree of
//! servers → locations → content. Both configuration styles end here:
//! nginx.conf (`crate::nginx`) converts into it block for block, and the
//! uWSGI options (`--http`, `--socket`, `--mount`, `--static-map`...)
//! convert into a one-server, one-location site ([`Site::from_options`]).
//! The router in `portico-server` is built from a `Site`, so there is one
//! router for both styles.
//!
//! Everything here is data, resolved at load time: nginx's inheritance of
//! directives from `http` to `server` to `location` is already applied, so
//! each [`Location`] carries the full [`LocationConfig`] it runs with.
//! Strings that may hold variables are [`Template`]s, parsed once; regexes
//! are compiled once ([`Pattern`]). Nothing here touches sockets or files.

mod app;
mod compress;
mod mime;
mod proxy;
mod sockets;
mod template;
mod tls;
mod upstream;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use compress::{
    CompressSettings, CompressTypes, DEFAULT_BROTLI_LEVEL, DEFAULT_BROTLI_WINDOW_BITS,
    DEFAULT_GZIP_LEVEL, DEFAULT_MIN_LENGTH, GzipProxied, MinHttpVersion,
};
pub use mime::MimeTypes;
pub use proxy::{
    DEFAULT_PROXY_TIMEOUT, NextUpstream, ProxyHttpVersion, ProxyPass, ProxyRedirect, ProxySettings,
    ProxyTarget, RedirectFrom, RedirectRule,
};
pub use template::{Template, TemplatePart, Variable};
pub use tls::{
    CertKeyPair, DEFAULT_CIPHERS, DEFAULT_SESSION_TIMEOUT, SessionCache, TlsSettings, TlsVersions,
    VerifyClient, VerifyFailure,
};
pub use upstream::{
    Balancer, DEFAULT_UPSTREAM_KEEPALIVE_REQUESTS, DEFAULT_UPSTREAM_KEEPALIVE_TIME,
    DEFAULT_UPSTREAM_KEEPALIVE_TIMEOUT, HealthCheck, HealthMatch, Resolver, StatusCondition,
    Upstream, UpstreamServer,
};

/// A whole configuration: every server with its locations, and what the
/// `http {}` and main contexts set for the process.
#[derive(Debug, Clone, Default)]
pub struct Site {
    /// In configuration order (the order decides the default server of a
    /// listen address when none is marked `default_server`).
    pub servers: Vec<Server>,
    /// `upstream NAME {}` blocks (parsed now, balanced by the proxy later).
    pub upstreams: Vec<Upstream>,
    /// `map $src $dst {}` blocks; [`Variable::Map`] indexes into this.
    pub maps: Vec<VarMap>,
    /// `log_format NAME ...;`, plus nginx's predefined `combined`.
    pub log_formats: Vec<LogFormatDef>,
    /// Main-context settings (`worker_processes`, `pid`, ...).
    pub main: MainSettings,
}

/// Settings of nginx's main and `events` contexts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MainSettings {
    /// `worker_processes N`; `None` for `auto` (one per CPU). Unset: 1.
    pub worker_processes: Option<usize>,
    /// `events { worker_connections N; }` (nginx's default 512).
    pub worker_connections: usize,
    /// `pid FILE` (absolute, resolved against the prefix).
    pub pid: Option<PathBuf>,
    /// `error_log FILE [level]`: the file (`None`: stderr).
    pub error_log: Option<PathBuf>,
    /// `user USER [GROUP]`.
    pub user: Option<(String, Option<String>)>,
}

/// One `server {}` block.
#[derive(Debug, Clone)]
pub struct Server {
    pub listens: Vec<Listen>,
    /// `server_name` entries in the order written (empty: `""`, no name).
    pub names: Vec<ServerName>,
    /// Server-level rewrite-module steps (`rewrite`, `return`), run before
    /// a location is chosen.
    pub rewrites: Vec<RewriteStep>,
    /// Top-level locations in configuration order (named ones excluded).
    pub locations: Vec<Location>,
    /// `location @name {}` blocks.
    pub named: Vec<Location>,
    /// The server's own settings: used when no location matches.
    pub config: Arc<LocationConfig>,
    /// Where the block starts, for messages (`site.conf:12`).
    pub origin: String,
    /// The `ssl_*` settings (inherited from `http {}`), when the server
    /// has certificates or a `listen ... ssl`; used on its TLS addresses.
    pub tls: Option<Arc<TlsSettings>>,
}

/// Where a server listens, resolved: the one TCP-or-unix address type of
/// the site model and of the server's bound listeners
/// (`portico_server::ListenAddress` is this type). The address as written,
/// before resolution, is [`crate::ListenAddr`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    /// A TCP address and port.
    Tcp(SocketAddr),
    /// A unix socket path.
    Unix(PathBuf),
}

impl std::fmt::Display for ListenAddr {
    /// `127.0.0.1:80`, `[::1]:80`, or the socket's path.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenAddr::Tcp(SocketAddr::V6(a)) => write!(f, "[{}]:{}", a.ip(), a.port()),
            ListenAddr::Tcp(a) => write!(f, "{a}"),
            ListenAddr::Unix(p) => write!(f, "{}", p.display()),
        }
    }
}

/// The protocol spoken on a listen address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenProtocol {
    Http,
    /// uwsgi packets (option style `--socket`).
    Uwsgi,
}

/// One `listen` directive (or one option-style listener).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    pub addr: ListenAddr,
    pub protocol: ListenProtocol,
    pub default_server: bool,
    /// `backlog=N` (the listen queue).
    pub backlog: Option<i32>,
    pub reuseport: bool,
    /// TLS on this address (`listen ... ssl`, `--https`); the certificates
    /// are the server block's.
    pub ssl: bool,
    /// HTTP/2 on this address (`listen ... http2`, `http2 on;`): by ALPN
    /// with TLS, by prior knowledge (h2c) without.
    pub http2: bool,
}

/// One `server_name` entry, classified as nginx classifies it.
#[derive(Debug, Clone)]
pub enum ServerName {
    /// `example.com` (lower-cased; `""` matches requests without a Host).
    Exact(String),
    /// `*.example.com` kept as `.example.com`; `.example.com` (which also
    /// matches `example.com`) is stored as this plus an `Exact`.
    LeadingWildcard(String),
    /// `mail.*` kept as `mail.`.
    TrailingWildcard(String),
    /// `~regex`, tried in configuration order.
    Regex(Pattern),
}

/// A compiled regular expression with its source, for messages and dumps.
/// It matches bytes: a decoded URI need not be UTF-8.
#[derive(Debug, Clone)]
pub struct Pattern {
    pub source: String,
    pub regex: regex::bytes::Regex,
}

impl Pattern {
    /// Compile `source` (case-insensitive when asked, as `~*` does).
    pub fn new(source: &str, case_insensitive: bool) -> Result<Pattern, regex::Error> {
        let regex = regex::bytes::RegexBuilder::new(source)
            .case_insensitive(case_insensitive)
            .build()?;
        Ok(Pattern {
            source: source.to_string(),
            regex,
        })
    }
}

/// How a location matches the URI.
#[derive(Debug, Clone)]
pub enum LocationMatch {
    /// `location = /uri`.
    Exact(String),
    /// `location /prefix` or, with `stop_regex`, `location ^~ /prefix`.
    Prefix { uri: String, stop_regex: bool },
    /// `location ~ re` or `location ~* re` (the pattern carries the case rule).
    Regex(Pattern),
    /// `location @name`.
    Named(String),
}

/// One `location {}` block.
#[derive(Debug, Clone)]
pub struct Location {
    pub matcher: LocationMatch,
    /// Rewrite-module steps run after this location is chosen.
    pub rewrites: Vec<RewriteStep>,
    /// Nested locations, searched inside this one (nginx's rules again).
    pub locations: Vec<Location>,
    /// What answers a request that ends in this location.
    pub content: Content,
    pub config: Arc<LocationConfig>,
    /// Where the block starts, for messages.
    pub origin: String,
}

/// The content handler of a location. nginx does not inherit it into
/// nested locations, so it lives on the [`Location`], not in its config.
#[derive(Debug, Clone, Default)]
pub enum Content {
    /// Files under `root`/`alias`: `try_files`, `index`, `autoindex`.
    #[default]
    Static,
    /// `uwsgi_pass`: the uwsgi protocol to an address or, when the address
    /// is one of this process's own app sockets, to the app in process.
    Uwsgi(UpstreamTarget),
    /// The option-style app (with uWSGI's `--static-map` files in front):
    /// the request goes to the WSGI handler as an HTTP or uwsgi request.
    App,
    /// `proxy_pass`: HTTP to an upstream group or an address.
    Proxy(ProxyPass),
}

/// Where an upstream request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamTarget {
    /// `host:port` (a name is resolved at load time, as nginx does).
    Tcp { host: String, port: u16 },
    /// `unix:/path`.
    Unix(PathBuf),
    /// The name of an `upstream {}` block.
    Group(String),
}

/// A rewrite-module step, in the order written.
#[derive(Debug, Clone)]
pub enum RewriteStep {
    /// `rewrite REGEX REPLACEMENT [flag]`.
    Rewrite {
        pattern: Pattern,
        replacement: Template,
        flag: RewriteFlag,
        origin: String,
    },
    /// `return CODE [TEXT|URL]` or `return URL` (302).
    Return { code: u16, body: Option<Template> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RewriteFlag {
    /// No flag: go on with the next step.
    None,
    /// Stop and search the locations again with the new URI.
    Last,
    /// Stop and stay in this location.
    Break,
    /// 302 to the new URI.
    Redirect,
    /// 301 to the new URI.
    Permanent,
}

/// Where files come from.
#[derive(Debug, Clone)]
pub enum DocRoot {
    /// `root PATH`: file = PATH + URI.
    Root(Template),
    /// `alias PATH`: the location's prefix (or the regex match) replaced by PATH.
    Alias(Template),
}

/// `try_files FILE ... LAST`.
#[derive(Debug, Clone)]
pub struct TryFiles {
    /// Candidates tested as files (a trailing `/` tests a directory).
    pub files: Vec<Template>,
    pub fallback: TryFallback,
}

#[derive(Debug, Clone)]
pub enum TryFallback {
    /// An internal redirect to this URI.
    Uri(Template),
    /// `=CODE`.
    Code(u16),
    /// `@name`.
    Named(String),
}

/// `error_page CODE ... [=[RESPONSE]] TARGET`.
#[derive(Debug, Clone)]
pub struct ErrorPage {
    pub codes: Vec<u16>,
    pub answer: ErrorPageAnswer,
    pub target: ErrorPageTarget,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorPageAnswer {
    /// No `=`: the original code.
    Original,
    /// `=`: whatever the target answers.
    Target,
    /// `=CODE`.
    Code(u16),
}

#[derive(Debug, Clone)]
pub enum ErrorPageTarget {
    /// An internal redirect to a URI (may carry `?args`).
    Uri(Template),
    /// `@name`.
    Named(String),
    /// A URL with a scheme: a redirect (302, or the `=CODE` given).
    Redirect(Template),
}

/// `add_header NAME VALUE [always]`.
#[derive(Debug, Clone)]
pub struct AddHeader {
    pub name: String,
    pub value: Template,
    pub always: bool,
}

/// `expires`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expires {
    Off,
    /// `epoch`: Expires at 1970, `Cache-Control: no-cache`.
    Epoch,
    /// `max`: Expires in 2037, `Cache-Control: max-age=315360000`.
    Max,
    /// `[modified] [-]TIME`: seconds after now (or after the file's mtime).
    After {
        seconds: i64,
        from_modified: bool,
    },
    /// `@HH:MM`: the next time of day.
    DailyAt {
        seconds_of_day: u32,
    },
}

/// One `allow`/`deny` rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessRule {
    pub allow: bool,
    pub net: AccessNet,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessNet {
    All,
    /// An address and prefix length (a bare address is /32 or /128).
    Cidr {
        addr: IpAddr,
        prefix: u8,
    },
    /// `unix:`: connections on unix sockets.
    Unix,
}

/// `access_log`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLogTarget {
    Off,
    /// A path (or `stderr`/`/dev/stdout`), with a `log_format` name.
    File {
        path: PathBuf,
        format: String,
    },
}

/// `log_format NAME STRING...` (the strings joined).
#[derive(Debug, Clone)]
pub struct LogFormatDef {
    pub name: String,
    pub template: Template,
}

/// `map $source $target { ... }`.
#[derive(Debug, Clone)]
pub struct VarMap {
    pub source: Template,
    /// The variable it defines, without `$`.
    pub target: String,
    pub default: Template,
    /// Exact keys (compared as written, or lower-cased with `hostnames`).
    pub exact: Vec<(String, Template)>,
    /// `~re` / `~*re` keys, in order.
    pub regexes: Vec<(Pattern, Template)>,
    pub hostnames: bool,
}

/// `uwsgi_param KEY VALUE [if_not_empty]`.
#[derive(Debug, Clone)]
pub struct UwsgiParam {
    pub key: String,
    pub value: Template,
    pub if_not_empty: bool,
}

/// Everything a location runs with, inheritance already applied.
#[derive(Debug, Clone)]
pub struct LocationConfig {
    pub root: DocRoot,
    /// `index` files, in order (default `index.html`).
    pub index: Vec<Template>,
    pub try_files: Option<TryFiles>,
    pub error_pages: Vec<ErrorPage>,
    pub add_headers: Vec<AddHeader>,
    pub expires: Expires,
    pub access: Vec<AccessRule>,
    /// `client_max_body_size` in bytes; 0: no limit (default 1 MiB).
    pub client_max_body_size: u64,
    pub keepalive_timeout: Duration,
    /// `client_header_timeout` (60s): a whole request head.
    pub client_header_timeout: Duration,
    /// `client_body_timeout` (60s): between two body reads.
    pub client_body_timeout: Duration,
    /// `send_timeout` (60s): between two writes to the client.
    pub send_timeout: Duration,
    /// `client_body_buffer_size` (16k): a received body past it goes to a file.
    pub client_body_buffer_size: u64,
    /// `client_body_temp_path`: where those files go (`None`: `$TMPDIR`).
    pub client_body_temp_path: Option<PathBuf>,
    pub keepalive_requests: u64,
    pub server_tokens: bool,
    pub types: Arc<MimeTypes>,
    pub default_type: String,
    pub gzip_static: bool,
    /// `open_file_cache max=N` (`None`: off, nginx's default): a static
    /// file's metadata is looked up at most once per
    /// [`LocationConfig::open_file_cache_valid`], at most N paths kept.
    pub open_file_cache: Option<usize>,
    /// `open_file_cache_valid` (60s).
    pub open_file_cache_valid: Duration,
    pub autoindex: bool,
    pub access_log: Vec<AccessLogTarget>,
    pub uwsgi_params: Vec<UwsgiParam>,
    pub uwsgi_connect_timeout: Duration,
    pub uwsgi_send_timeout: Duration,
    pub uwsgi_read_timeout: Duration,
    pub uwsgi_buffering: bool,
    pub uwsgi_intercept_errors: bool,
    /// `uwsgi_next_upstream` (default `error timeout`; no `http_502`/`http_504`
    /// in nginx's uwsgi module): when a `uwsgi_pass` to a group tries the next peer.
    pub uwsgi_next_upstream: NextUpstream,
    /// `uwsgi_next_upstream_tries` (0: no limit).
    pub uwsgi_next_upstream_tries: u32,
    /// `uwsgi_next_upstream_timeout` (zero: no limit).
    pub uwsgi_next_upstream_timeout: Duration,
    /// `charset NAME`: added as `; charset=NAME` to the Content-Type of
    /// responses whose type is text/html, text/xml, text/plain,
    /// text/vnd.wap.wml, application/javascript or application/rss+xml and
    /// that carry no charset yet (nginx's `charset_types`); `None`: `off`.
    pub charset: Option<String>,
    /// `internal`: only internal redirects (index, try_files, error_page,
    /// rewrite ... last) may end here; a client's request gets 404.
    pub internal: bool,
    /// `autoindex_exact_size` (default on): sizes in bytes, else `2M`-style.
    pub autoindex_exact_size: bool,
    /// `autoindex_localtime` (default off): listing times in local time, else UTC.
    pub autoindex_localtime: bool,
    /// `gzip_vary` (default off): `Vary: Accept-Encoding` when `gzip_static`
    /// finds a `.gz` sibling, or an answer is of a type and size the gzip
    /// or brotli filter compresses (whether or not this client accepts it).
    pub gzip_vary: bool,
    /// Compression on the fly (`gzip*`, `brotli*`).
    pub compress: Arc<CompressSettings>,
    /// The `proxy_*` settings (used by `proxy_pass` locations).
    pub proxy: Arc<ProxySettings>,
    /// HTTP/2 (`http2 on`, `http2_*`): read at the server level, for
    /// the server's listen addresses.
    pub http2: Http2Config,
}

/// A server's HTTP/2: `http2 on;` (all its listen addresses speak it), and
/// the limits its connections run with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Http2Config {
    pub on: bool,
    pub settings: crate::Http2Settings,
}

/// nginx's default `client_max_body_size` (1m).
pub const DEFAULT_CLIENT_MAX_BODY_SIZE: u64 = 1024 * 1024;
/// nginx's default `keepalive_timeout` (75s).
pub const DEFAULT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(75);
/// nginx's default `client_header_timeout`, `client_body_timeout`, `send_timeout` (60s).
pub const DEFAULT_CLIENT_TIMEOUT: Duration = Duration::from_secs(60);
/// nginx's default `client_body_buffer_size` on 64-bit platforms (16k).
pub const DEFAULT_CLIENT_BODY_BUFFER_SIZE: u64 = 16 * 1024;
/// nginx's default `keepalive_requests` (1000 since 1.19.10).
pub const DEFAULT_KEEPALIVE_REQUESTS: u64 = 1000;
/// nginx's default for `uwsgi_connect/send/read_timeout` (60s).
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(60);
/// nginx's default `worker_connections` (512).
pub const DEFAULT_WORKER_CONNECTIONS: usize = 512;

impl Default for LocationConfig {
    fn default() -> Self {
        LocationConfig {
            root: DocRoot::Root(Template::literal("html")),
            index: vec![Template::literal("index.html")],
            try_files: None,
            error_pages: Vec::new(),
            add_headers: Vec::new(),
            expires: Expires::Off,
            access: Vec::new(),
            client_max_body_size: DEFAULT_CLIENT_MAX_BODY_SIZE,
            keepalive_timeout: DEFAULT_KEEPALIVE_TIMEOUT,
            client_header_timeout: DEFAULT_CLIENT_TIMEOUT,
            client_body_timeout: DEFAULT_CLIENT_TIMEOUT,
            send_timeout: DEFAULT_CLIENT_TIMEOUT,
            client_body_buffer_size: DEFAULT_CLIENT_BODY_BUFFER_SIZE,
            client_body_temp_path: None,
            keepalive_requests: DEFAULT_KEEPALIVE_REQUESTS,
            server_tokens: true,
            types: Arc::new(MimeTypes::default()),
            default_type: "text/plain".to_string(),
            gzip_static: false,
            open_file_cache: None,
            open_file_cache_valid: Duration::from_secs(60),
            autoindex: false,
            access_log: Vec::new(),
            uwsgi_params: Vec::new(),
            uwsgi_connect_timeout: DEFAULT_UPSTREAM_TIMEOUT,
            uwsgi_send_timeout: DEFAULT_UPSTREAM_TIMEOUT,
            uwsgi_read_timeout: DEFAULT_UPSTREAM_TIMEOUT,
            uwsgi_buffering: true,
            uwsgi_intercept_errors: false,
            uwsgi_next_upstream: NextUpstream::default(),
            uwsgi_next_upstream_tries: 0,
            uwsgi_next_upstream_timeout: Duration::ZERO,
            charset: None,
            internal: false,
            autoindex_exact_size: true,
            autoindex_localtime: false,
            gzip_vary: false,
            compress: Arc::new(CompressSettings::default()),
            proxy: Arc::new(ProxySettings::default()),
            http2: Http2Config::default(),
        }
    }
}
