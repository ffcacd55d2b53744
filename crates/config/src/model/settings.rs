//! Reading the ordered settings into a [`Config`] (later values win), the
//! value parsers of the uWSGI options (numbers, mounts, `--https`,
//! addresses), and the start-up check of the whole configuration.

use std::path::PathBuf;
use std::time::Duration;

use super::{
    AppSource, Config, Http2Settings, ListenAddr, Listener, ListenerTls, MAX_PROCESSES,
    MAX_THREADS, Mount, Protocol,
};
use crate::argv::parse_bool;
use crate::{ConfigError, Setting};

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
