//! The reverse proxy's part of the Site model: `proxy_pass` (the content of
//! a location) and the `proxy_*` settings a location runs with, nginx's
//! inheritance already applied. Data only; the HTTP upstream client, the
//! balancers and the retries live in `portico-proxy`, the request
//! rewriting (URI, headers) in `portico-server`'s site engine.

use std::time::Duration;

use super::{Pattern, Resolver, Template, UpstreamTarget};

/// `proxy_pass URL`.
#[derive(Debug, Clone)]
pub struct ProxyPass {
    pub target: ProxyTarget,
    /// The URI part of the URL (`http://app/base/` → `/base/`); `None`
    /// when the URL has none: the request URI goes as the client sent it
    /// (after rewrites, as nginx does). Always `None` for
    /// [`ProxyTarget::Dynamic`]: the evaluated URL's own URI part, if any,
    /// replaces the whole request URI (nginx's rule for URLs with
    /// variables).
    pub uri: Option<Template>,
    /// The URL as written, for messages and `$proxy_host`.
    pub url: String,
    /// `$proxy_host`: the URL's host as written (with `:port` unless it is
    /// 80; the group's name as written for an upstream group; `localhost`
    /// for `unix:`). Empty for [`ProxyTarget::Dynamic`]: computed per request.
    pub proxy_host: String,
    /// `$proxy_port` (80 when the URL has none; 0 for `unix:`, where nginx's
    /// value is empty, and for [`ProxyTarget::Dynamic`]).
    pub proxy_port: u16,
    pub origin: String,
}

/// Where `proxy_pass` sends requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyTarget {
    /// The name of an `upstream {}` block.
    Group(String),
    /// One address (`http://127.0.0.1:8000`, `http://unix:/path:`): nginx's
    /// implicit one-peer upstream (no failure accounting).
    Peer(UpstreamTarget),
    /// A URL with variables, evaluated per request: its host names an
    /// upstream block when one has that name, else is an address.
    Dynamic(Template),
}

/// `proxy_http_version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyHttpVersion {
    Http10,
    Http11,
}

/// `proxy_redirect`.
#[derive(Debug, Clone, Default)]
pub enum ProxyRedirect {
    /// `default` (and unset): the proxy_pass URL → the location's prefix.
    #[default]
    Default,
    Off,
    /// `proxy_redirect FROM TO;` rules in order (`~`/`~*` FROM is a regex).
    Rules(Vec<RedirectRule>),
}

#[derive(Debug, Clone)]
pub enum RedirectFrom {
    Text(Template),
    Regex(Pattern),
}

#[derive(Debug, Clone)]
pub struct RedirectRule {
    pub from: RedirectFrom,
    pub to: Template,
}

/// `proxy_next_upstream` (nginx's `NGX_HTTP_UPSTREAM_FT_*`): which failures
/// send the request to the next peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextUpstream {
    pub error: bool,
    pub timeout: bool,
    pub invalid_header: bool,
    pub http_500: bool,
    pub http_502: bool,
    pub http_503: bool,
    pub http_504: bool,
    pub http_403: bool,
    pub http_404: bool,
    pub http_429: bool,
    pub non_idempotent: bool,
}

impl NextUpstream {
    /// `off`: never retry.
    pub const OFF: NextUpstream = NextUpstream {
        error: false,
        timeout: false,
        invalid_header: false,
        http_500: false,
        http_502: false,
        http_503: false,
        http_504: false,
        http_403: false,
        http_404: false,
        http_429: false,
        non_idempotent: false,
    };

    /// Whether an upstream answer with `status` is retried.
    pub fn retries_status(&self, status: u16) -> bool {
        match status {
            500 => self.http_500,
            502 => self.http_502,
            503 => self.http_503,
            504 => self.http_504,
            403 => self.http_403,
            404 => self.http_404,
            429 => self.http_429,
            _ => false,
        }
    }
}

impl Default for NextUpstream {
    /// nginx's default: `error timeout`.
    fn default() -> Self {
        NextUpstream {
            error: true,
            timeout: true,
            ..NextUpstream::OFF
        }
    }
}

/// nginx's default for `proxy_connect/send/read_timeout` (60s).
pub const DEFAULT_PROXY_TIMEOUT: Duration = Duration::from_secs(60);

/// Every `proxy_*` setting of a location.
#[derive(Debug, Clone)]
pub struct ProxySettings {
    /// `proxy_set_header NAME VALUE`, in order, inheritance applied (a
    /// level that sets any replaces all the inherited ones), then nginx's
    /// defaults for the names not set: `Host $proxy_host` and `Connection`:
    /// empty (not sent) with `proxy_http_version 1.1`, as nginx 1.29.7+
    /// sends it; `close` with 1.0, as nginx 1.22 sends it. An empty value
    /// means the header is not sent (not even the client's).
    pub set_headers: Vec<(String, Template)>,
    pub http_version: ProxyHttpVersion,
    pub pass_request_headers: bool,
    pub pass_request_body: bool,
    /// `proxy_hide_header` (lower case), besides nginx's default hidden set.
    pub hide_headers: Vec<String>,
    /// `proxy_pass_header` (lower case): default-hidden ones to pass.
    pub pass_headers: Vec<String>,
    /// `proxy_ignore_headers` (lower case).
    pub ignore_headers: Vec<String>,
    pub redirect: ProxyRedirect,
    pub connect_timeout: Duration,
    pub send_timeout: Duration,
    pub read_timeout: Duration,
    pub next_upstream: NextUpstream,
    /// `proxy_next_upstream_tries` (0: no limit).
    pub next_upstream_tries: u32,
    /// `proxy_next_upstream_timeout` (zero: no limit).
    pub next_upstream_timeout: Duration,
    pub intercept_errors: bool,
    /// `proxy_buffering`: read the response ahead of a slow client.
    pub buffering: bool,
    /// `proxy_request_buffering`: read the request body before connecting.
    pub request_buffering: bool,
    /// `proxy_buffer_size` (the response head) and `proxy_buffers N SIZE`.
    pub buffer_size: usize,
    pub buffers: (usize, usize),
    /// `proxy_max_temp_file_size` (0: never spill to disk).
    pub max_temp_file_size: u64,
    /// `proxy_busy_buffers_size` as set; `None`: twice the larger of
    /// `buffer_size` and one of `buffers` (nginx's default).
    pub busy_buffers_size: Option<usize>,
    /// `proxy_temp_file_write_size` as set; `None`: likewise twice.
    pub temp_file_write_size: Option<usize>,
    /// `resolver` (with `resolver_timeout`) of the location, for URLs with
    /// variables whose host is not an upstream group; `None`: the system's.
    pub resolver: Option<Resolver>,
}

impl Default for ProxySettings {
    fn default() -> Self {
        ProxySettings {
            set_headers: Vec::new(),
            http_version: ProxyHttpVersion::Http11,
            pass_request_headers: true,
            pass_request_body: true,
            hide_headers: Vec::new(),
            pass_headers: Vec::new(),
            ignore_headers: Vec::new(),
            redirect: ProxyRedirect::Default,
            connect_timeout: DEFAULT_PROXY_TIMEOUT,
            send_timeout: DEFAULT_PROXY_TIMEOUT,
            read_timeout: DEFAULT_PROXY_TIMEOUT,
            next_upstream: NextUpstream::default(),
            next_upstream_tries: 0,
            next_upstream_timeout: Duration::ZERO,
            intercept_errors: false,
            buffering: true,
            request_buffering: true,
            buffer_size: 4096,
            buffers: (8, 4096),
            max_temp_file_size: 1024 * 1024 * 1024,
            busy_buffers_size: None,
            temp_file_write_size: None,
            resolver: None,
        }
    }
}
