//! `proxy_pass URL`: the URL read as nginx 1.22's `ngx_http_proxy_pass`
//! and `ngx_parse_url` read it (`http://host[:port][/uri]`,
//! `http://unix:/path:[/uri]`, an upstream group's name, or a URL with
//! variables), with nginx's messages; then, once every `upstream {}` block
//! is known, the target: a group (by case-insensitive name, even defined
//! later), else nginx's implicit one-peer upstream, with `$proxy_host` and
//! `$proxy_port` computed as nginx computes them.

use std::path::PathBuf;

use crate::site::{ProxyPass, ProxyTarget, Template, Upstream, UpstreamTarget};

use super::super::ast::{Directive, NginxError};
use super::upstream::resolve_check;
use super::values::{arg, atoi};
use super::vars::template;

/// nginx's message for a URI part where the request URI cannot be mapped.
const URI_PART_NOT_ALLOWED: &str = "\"proxy_pass\" cannot have URI part in location given by \
     regular expression, or inside named location, or inside \"if\" statement, or inside \
     \"limit_except\" block";

/// A `proxy_pass` as read, before the upstream blocks are known.
#[derive(Debug, Clone)]
pub(super) struct RawProxyPass {
    pub directive: Directive,
    pub url: String,
    pub kind: RawKind,
    /// How many upstream blocks were read before this directive (nginx
    /// words a port clash by which of the two came first).
    pub upstreams_before: usize,
}

#[derive(Debug, Clone)]
pub(super) enum RawKind {
    /// A URL with variables (checked by the variable pass).
    Dynamic(Template),
    Unix {
        path: PathBuf,
        uri: Option<String>,
    },
    /// `host` as written (brackets kept for IPv6), `port` if written.
    Host {
        host: String,
        port: Option<u16>,
        uri: Option<String>,
    },
}

/// What `proxy_redirect default` needs to know about the block's `proxy_pass`.
#[derive(Debug, Clone)]
pub(super) struct PassInfo {
    pub url: String,
    pub dynamic: bool,
    pub has_uri: bool,
    /// The location's name (empty in regex and named locations).
    pub location: String,
}

impl RawProxyPass {
    pub(super) fn info(&self, location: &str) -> PassInfo {
        let has_uri = match &self.kind {
            RawKind::Dynamic(_) => false,
            RawKind::Unix { uri, .. } | RawKind::Host { uri, .. } => uri.is_some(),
        };
        PassInfo {
            url: self.url.clone(),
            dynamic: matches!(self.kind, RawKind::Dynamic(_)),
            has_uri,
            location: location.to_string(),
        }
    }

    /// The URL template of a dynamic `proxy_pass`, for the variable pass.
    pub(super) fn template_mut(&mut self) -> Option<&mut Template> {
        match &mut self.kind {
            RawKind::Dynamic(t) => Some(t),
            _ => None,
        }
    }
}

fn upstream_err(d: &Directive, what: &str, text: &str) -> NginxError {
    NginxError::at(d, format!("{what} in upstream \"{text}\""))
}

/// Read `proxy_pass URL`; `mapped` is false in regex and named locations,
/// where the URL may not have a URI part.
pub(super) fn read(
    d: &Directive,
    mapped: bool,
    upstreams_before: usize,
) -> Result<RawProxyPass, NginxError> {
    let url = arg(d, 0)?.to_string();
    if url.contains('$') {
        let t = template(d, &url)?;
        if matches!(t.parts.first(), Some(crate::site::TemplatePart::Literal(l))
            if l.len() >= 8 && l[..8].eq_ignore_ascii_case("https://"))
        {
            return Err(https_refused(d, &url));
        }
        return Ok(RawProxyPass {
            directive: d.clone(),
            url,
            kind: RawKind::Dynamic(t),
            upstreams_before,
        });
    }
    let rest = if url.len() >= 7 && url[..7].eq_ignore_ascii_case("http://") {
        &url[7..]
    } else if url.len() >= 8 && url[..8].eq_ignore_ascii_case("https://") {
        return Err(https_refused(d, &url));
    } else {
        return Err(NginxError::at(d, "invalid URL prefix"));
    };
    let kind = if rest.len() >= 5 && rest[..5].eq_ignore_ascii_case("unix:") {
        unix(d, rest)?
    } else {
        inet(d, rest)?
    };
    let has_uri = matches!(
        &kind,
        RawKind::Unix { uri: Some(_), .. } | RawKind::Host { uri: Some(_), .. }
    );
    if has_uri && !mapped {
        return Err(NginxError::at(d, URI_PART_NOT_ALLOWED));
    }
    Ok(RawProxyPass {
        directive: d.clone(),
        url,
        kind,
        upstreams_before,
    })
}

fn https_refused(d: &Directive, url: &str) -> NginxError {
    NginxError::at(
        d,
        format!(
            "\"proxy_pass {url}\": https upstreams are not supported by Portico yet \
             (its TLS is for its own listeners; use http:// to the upstream)"
        ),
    )
}

/// `unix:/path[:/uri]` (`ngx_parse_unix_domain_url`).
fn unix(d: &Directive, text: &str) -> Result<RawKind, NginxError> {
    let after = &text[5..];
    let (path, uri) = match after.split_once(':') {
        Some((p, u)) => (p, (!u.is_empty()).then(|| u.to_string())),
        None => (after, None),
    };
    if path.is_empty() {
        return Err(upstream_err(d, "no path in the unix domain socket", text));
    }
    // sizeof(sun_path) is 108 with the terminating NUL.
    if path.len() > 107 {
        return Err(upstream_err(
            d,
            "too long path in the unix domain socket",
            text,
        ));
    }
    Ok(RawKind::Unix {
        path: PathBuf::from(path),
        uri,
    })
}

/// `host[:port][/uri]` and `[v6][:port][/uri]` (`ngx_parse_inet_url`).
fn inet(d: &Directive, text: &str) -> Result<RawKind, NginxError> {
    // The URI part starts at the first `/` or `?`.
    let split = text.find(['/', '?']).unwrap_or(text.len());
    let (authority, uri) = text.split_at(split);
    let uri = (!uri.is_empty()).then(|| uri.to_string());
    let (host, port_text) = if authority.starts_with('[') {
        let Some(end) = authority.find(']') else {
            return Err(upstream_err(d, "invalid host", text));
        };
        let inside = &authority[1..end];
        if inside.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(upstream_err(d, "invalid IPv6 address", text));
        }
        let after = &authority[end + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return Err(upstream_err(d, "invalid host", text)),
        };
        (&authority[..=end], port)
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port_text {
        None => None,
        Some(p) => match atoi(p) {
            Some(n) if (1..=65535).contains(&n) => Some(n as u16),
            _ => return Err(upstream_err(d, "invalid port", text)),
        },
    };
    if host.is_empty() {
        return Err(upstream_err(d, "no host", text));
    }
    Ok(RawKind::Host {
        host: host.to_string(),
        port,
        uri,
    })
}

/// The `proxy_pass` of a location once every upstream block is known.
pub(super) fn resolve(upstreams: &[Upstream], raw: &RawProxyPass) -> Result<ProxyPass, NginxError> {
    let d = &raw.directive;
    let origin = d.origin();
    let literal_uri = |uri: &Option<String>| uri.as_deref().map(Template::literal);
    match &raw.kind {
        RawKind::Dynamic(t) => Ok(ProxyPass {
            target: ProxyTarget::Dynamic(t.clone()),
            uri: None,
            url: raw.url.clone(),
            proxy_host: String::new(),
            proxy_port: 0,
            origin,
        }),
        RawKind::Unix { path, uri } => Ok(ProxyPass {
            target: ProxyTarget::Peer(UpstreamTarget::Unix(path.clone())),
            uri: literal_uri(uri),
            url: raw.url.clone(),
            proxy_host: "localhost".to_string(),
            proxy_port: 0,
            origin,
        }),
        RawKind::Host { host, port, uri } => {
            let group = upstreams
                .iter()
                .position(|u| u.name.eq_ignore_ascii_case(host));
            let proxy_host = match port {
                Some(p) if *p != 80 => format!("{host}:{p}"),
                _ => host.clone(),
            };
            let proxy_port = port.unwrap_or(80);
            let target = match (group, port) {
                (Some(i), Some(p)) => {
                    // Block first: the URL's spelling; block later: the block's.
                    let name = if i < raw.upstreams_before {
                        host
                    } else {
                        &upstreams[i].name
                    };
                    return Err(NginxError::at(
                        d,
                        format!("upstream \"{name}\" may not have port {p}"),
                    ));
                }
                (Some(i), None) => ProxyTarget::Group(upstreams[i].name.clone()),
                (None, _) => {
                    let bare = host
                        .strip_prefix('[')
                        .and_then(|h| h.strip_suffix(']'))
                        .unwrap_or(host);
                    resolve_check(bare, proxy_port).ok_or_else(|| {
                        NginxError::at(d, format!("host not found in upstream \"{host}\""))
                    })?;
                    ProxyTarget::Peer(UpstreamTarget::Tcp {
                        host: bare.to_string(),
                        port: proxy_port,
                    })
                }
            };
            Ok(ProxyPass {
                target,
                uri: literal_uri(uri),
                url: raw.url.clone(),
                proxy_host,
                proxy_port,
                origin,
            })
        }
    }
}
