//! `location` blocks: the modifiers (`=`, `^~`, `~`, `~*`, `@name`, none),
//! nginx's nesting rules and messages, duplicate detection among siblings,
//! and the directives only a location has (`uwsgi_pass`, `proxy_pass`,
//! `health_check`). The result is a
//! [`RawLocation`]: this block's own settings, merged later with its parents'.

use crate::site::{HealthCheck, LocationMatch, RewriteStep};

use super::super::ast::{Directive, NginxError};
use super::inherit::Layer;
use super::proxy_pass::{self, RawProxyPass};
use super::rewrite::{compile, return_step, rewrite};
use super::upstream::{PassAddr, pass_addr};
use super::{Ctx, common};

/// A location as read, before inheritance.
#[derive(Debug)]
pub(super) struct RawLocation {
    pub matcher: LocationMatch,
    /// The name as nginx prints it in messages (after the modifier).
    pub name: String,
    pub layer: Layer,
    pub rewrites: Vec<RewriteStep>,
    /// `uwsgi_pass` with the directive, for messages after upstreams are known.
    pub pass: Option<(Directive, PassAddr)>,
    /// `proxy_pass`, resolved once upstreams are known.
    pub proxy_pass: Option<RawProxyPass>,
    /// Whether `proxy_pass` came after `uwsgi_pass` (both in one location:
    /// the last one is the content, as in nginx).
    pub proxy_last: bool,
    /// `health_check` lines with their `match=` names.
    pub health_checks: Vec<(Directive, HealthCheck, Option<String>)>,
    pub locations: Vec<RawLocation>,
    pub origin: String,
    /// Where the block is, for errors raised after reading.
    pub file: std::path::PathBuf,
    pub line: usize,
}

impl RawLocation {
    fn is_exact(&self) -> bool {
        matches!(self.matcher, LocationMatch::Exact(_))
    }
    pub(super) fn is_named(&self) -> bool {
        matches!(self.matcher, LocationMatch::Named(_))
    }
    fn is_regex(&self) -> bool {
        matches!(self.matcher, LocationMatch::Regex(_))
    }
}

/// Read the modifier and name (`ngx_http_core_location`).
fn matcher(ctx: &mut Ctx, d: &Directive) -> Result<(LocationMatch, String), NginxError> {
    let values: Vec<&str> = d.values().collect();
    let (modifier, name) = match values.as_slice() {
        [m, name] => (Some(*m), *name),
        [name] => (None, *name),
        _ => {
            return Err(NginxError::at(
                d,
                "invalid number of arguments in \"location\" directive",
            ));
        }
    };
    let regex = |ctx: &mut Ctx, source: &str, caseless: bool| {
        compile(ctx, d, source, caseless).map(|p| (LocationMatch::Regex(p), source.to_string()))
    };
    match modifier {
        Some("=") => Ok((LocationMatch::Exact(name.to_string()), name.to_string())),
        Some("^~") => Ok((
            LocationMatch::Prefix {
                uri: name.to_string(),
                stop_regex: true,
            },
            name.to_string(),
        )),
        Some("~") => regex(ctx, name, false),
        Some("~*") => regex(ctx, name, true),
        Some(other) => Err(NginxError::at(
            d,
            format!("invalid location modifier \"{other}\""),
        )),
        None => {
            if let Some(rest) = name.strip_prefix('=') {
                Ok((LocationMatch::Exact(rest.to_string()), rest.to_string()))
            } else if let Some(rest) = name.strip_prefix("~*") {
                regex(ctx, rest, true)
            } else if let Some(rest) = name.strip_prefix('~') {
                regex(ctx, rest, false)
            } else if name.starts_with('@') {
                Ok((LocationMatch::Named(name.to_string()), name.to_string()))
            } else {
                Ok((
                    LocationMatch::Prefix {
                        uri: name.to_string(),
                        stop_regex: false,
                    },
                    name.to_string(),
                ))
            }
        }
    }
}

/// Read one `location` block; `parent` is the enclosing location, if any.
pub(super) fn location(
    ctx: &mut Ctx,
    d: &Directive,
    parent: Option<&RawLocation>,
) -> Result<RawLocation, NginxError> {
    let (matcher, name) = matcher(ctx, d)?;
    let mut loc = RawLocation {
        matcher,
        name,
        layer: Layer::default(),
        rewrites: Vec::new(),
        pass: None,
        proxy_pass: None,
        proxy_last: false,
        health_checks: Vec::new(),
        locations: Vec::new(),
        origin: d.origin(),
        file: d.file.as_ref().clone(),
        line: d.line,
    };
    if let Some(p) = parent {
        if p.is_exact() {
            return Err(NginxError::at(
                d,
                format!(
                    "location \"{}\" cannot be inside the exact location \"{}\"",
                    loc.name, p.name
                ),
            ));
        }
        if p.is_named() {
            return Err(NginxError::at(
                d,
                format!(
                    "location \"{}\" cannot be inside the named location \"{}\"",
                    loc.name, p.name
                ),
            ));
        }
        if loc.is_named() {
            return Err(NginxError::at(
                d,
                format!(
                    "named location \"{}\" can be on the server level only",
                    loc.name
                ),
            ));
        }
        if !loc.is_regex() && !loc.name.starts_with(p.name.as_str()) {
            return Err(NginxError::at(
                d,
                format!(
                    "location \"{}\" is outside location \"{}\"",
                    loc.name, p.name
                ),
            ));
        }
    }
    let in_named = loc.is_named();
    for c in d.children.iter().flatten() {
        if common::apply(ctx, &mut loc.layer, c, in_named)? {
            continue;
        }
        match c.name.as_str() {
            "location" => {
                let child = location(ctx, c, Some(&loc))?;
                check_duplicate(&loc.locations, &child, c)?;
                loc.locations.push(child);
            }
            "rewrite" => loc.rewrites.push(rewrite(ctx, c)?),
            "return" => loc.rewrites.push(return_step(c)?),
            "uwsgi_pass" => {
                if loc.pass.is_some() {
                    return Err(NginxError::at(c, "\"uwsgi_pass\" directive is duplicate"));
                }
                loc.pass = Some((c.clone(), pass_addr(ctx, c)?));
                loc.proxy_last = false;
            }
            "proxy_pass" => {
                if loc.proxy_pass.is_some() {
                    return Err(NginxError::at(c, "\"proxy_pass\" directive is duplicate"));
                }
                let mapped = !loc.is_regex() && !in_named;
                let raw = proxy_pass::read(c, mapped, ctx.upstreams.len())?;
                let name = if mapped { loc.name.as_str() } else { "" };
                loc.layer.proxy.pass = Some(raw.info(name));
                loc.proxy_pass = Some(raw);
                loc.proxy_last = true;
            }
            "health_check" => {
                let (hc, matcher) = super::health::health_check(c)?;
                loc.health_checks.push((c.clone(), hc, matcher));
            }
            name => ctx.other(c, name)?,
        }
    }
    Ok(loc)
}

/// nginx's `duplicate location "x"`: the same prefix (with or without
/// `^~`), or the same exact URI, twice among siblings.
pub(super) fn check_duplicate(
    siblings: &[RawLocation],
    new: &RawLocation,
    d: &Directive,
) -> Result<(), NginxError> {
    if new.is_regex() || new.is_named() {
        return Ok(());
    }
    let clash = siblings.iter().any(|s| {
        !s.is_regex() && !s.is_named() && s.name == new.name && s.is_exact() == new.is_exact()
    });
    if clash {
        return Err(NginxError::at(
            d,
            format!("duplicate location \"{}\"", new.name),
        ));
    }
    Ok(())
}
