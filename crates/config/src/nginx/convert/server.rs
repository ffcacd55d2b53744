//! `server {}` blocks: `listen`, `server_name` (classified as nginx
//! classifies names), server-level `rewrite`/`return`, locations (named
//! ones kept apart) and the server's own settings layer.

use crate::site::{Listen, RewriteStep, ServerName};

use super::super::ast::{Directive, NginxError};
use super::inherit::Layer;
use super::listen::{self, ListenRegistry};
use super::location::{RawLocation, check_duplicate, location};
use super::rewrite::{compile, return_step, rewrite};
use super::{Ctx, common};

/// A server as read, before inheritance.
#[derive(Debug)]
pub(super) struct RawServer {
    pub listens: Vec<Listen>,
    pub names: Vec<ServerName>,
    pub rewrites: Vec<RewriteStep>,
    pub layer: Layer,
    pub locations: Vec<RawLocation>,
    pub named: Vec<RawLocation>,
    pub origin: String,
    /// The `server` directive without its block, for messages.
    pub at: Directive,
    /// Its `ssl_*` directives.
    pub tls: super::ssl::TlsLayer,
}

/// This machine's host name, for `server_name $hostname`.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_ascii_lowercase())
        .unwrap_or_else(|_| "localhost".to_string())
}

/// The entries of one `server_name` directive (`ngx_http_core_server_name`).
fn server_names(ctx: &mut Ctx, d: &Directive) -> Result<Vec<ServerName>, NginxError> {
    let mut out = Vec::new();
    for a in &d.args {
        let v = a.value.as_str();
        let bytes = v.as_bytes();
        if (bytes.first() == Some(&b'*') && (v.len() < 3 || bytes[1] != b'.'))
            || (bytes.first() == Some(&b'.') && v.len() < 2)
        {
            return Err(NginxError::at(d, format!("server name \"{v}\" is invalid")));
        }
        if v.contains('/') {
            ctx.warn(d, &format!("server name \"{v}\" has suspicious symbols"));
        }
        if let Some(source) = v.strip_prefix('~') {
            out.push(ServerName::Regex(compile(ctx, d, source, true)?));
            continue;
        }
        let name = if v.eq_ignore_ascii_case("$hostname") {
            hostname()
        } else {
            v.to_ascii_lowercase()
        };
        if let Some(rest) = name.strip_prefix("*.") {
            out.push(ServerName::LeadingWildcard(format!(".{rest}")));
        } else if let Some(rest) = name.strip_prefix('.') {
            out.push(ServerName::Exact(rest.to_string()));
            out.push(ServerName::LeadingWildcard(name.clone()));
        } else if let Some(rest) = name.strip_suffix(".*") {
            out.push(ServerName::TrailingWildcard(format!("{rest}.")));
        } else {
            out.push(ServerName::Exact(name));
        }
    }
    Ok(out)
}

/// Read one `server { ... }` block.
pub(super) fn server(
    ctx: &mut Ctx,
    registry: &mut ListenRegistry,
    d: &Directive,
) -> Result<RawServer, NginxError> {
    let mut s = RawServer {
        listens: Vec::new(),
        names: Vec::new(),
        rewrites: Vec::new(),
        layer: Layer::default(),
        locations: Vec::new(),
        named: Vec::new(),
        origin: d.origin(),
        at: Directive {
            name: d.name.clone(),
            args: Vec::new(),
            file: d.file.clone(),
            line: d.line,
            children: None,
        },
        tls: super::ssl::TlsLayer::default(),
    };
    for c in d.children.iter().flatten() {
        if common::apply(ctx, &mut s.layer, c, false)? {
            continue;
        }
        match c.name.as_str() {
            "listen" => {
                let mut warnings = Vec::new();
                let parsed =
                    listen::parse(c, &mut |d, m| warnings.push((d.clone(), m.to_string())))?;
                for (d, m) in warnings {
                    ctx.warn(&d, &m);
                }
                registry.add(c, &parsed, &s.listens)?;
                s.listens.extend(parsed.listens);
            }
            "server_name" => {
                let names = server_names(ctx, c)?;
                s.names.extend(names);
            }
            "location" => {
                let loc = location(ctx, c, None)?;
                if loc.is_named() {
                    s.named.push(loc);
                } else {
                    check_duplicate(&s.locations, &loc, c)?;
                    s.locations.push(loc);
                }
            }
            name if name.starts_with("ssl_") && super::ssl::apply(ctx.prefix, &mut s.tls, c)? => {}
            "rewrite" => s.rewrites.push(rewrite(ctx, c)?),
            "return" => s.rewrites.push(return_step(c)?),
            name => ctx.other(c, name)?,
        }
    }
    if s.listens.is_empty() {
        s.listens.push(listen::default_listen());
    }
    Ok(s)
}
