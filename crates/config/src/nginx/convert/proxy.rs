//! The `proxy_*` settings of `http`, `server` and `location` blocks, read
//! into a [`ProxyLayer`] with nginx 1.22's checks and messages
//! (`ngx_http_proxy_module.c`'s command table and slots), merged down the
//! tree as `ngx_http_proxy_merge_loc_conf` merges them, and finished with
//! nginx's default request headers. The URL of `proxy_pass` itself is
//! read in `proxy_pass.rs`.
//!
//! Merging: a scalar set in a block wins; `proxy_set_header`,
//! `proxy_hide_header`, `proxy_pass_header` and `proxy_redirect` are taken
//! from the enclosing block only when this block sets none of them;
//! `proxy_next_upstream` and `proxy_ignore_headers` accumulate inside a
//! block (a value twice is nginx's `[warn] duplicate value`) and are
//! inherited whole.

use std::time::Duration;

use crate::site::{
    NextUpstream, ProxyHttpVersion, ProxyRedirect, ProxySettings, RedirectFrom, RedirectRule,
    Resolver, Template,
};

use super::super::ast::{Directive, NginxError};
use super::Ctx;
use super::common::once;
use super::proxy_pass::PassInfo;
use super::rewrite::compile;
use super::values::{arg, flag, invalid_value, msec, number, parse_size};
use super::vars::template;

/// The response headers `proxy_ignore_headers` takes (lower case).
const IGNORABLE: &[&str] = &[
    "x-accel-redirect",
    "x-accel-expires",
    "x-accel-limit-rate",
    "x-accel-buffering",
    "x-accel-charset",
    "expires",
    "cache-control",
    "set-cookie",
    "vary",
];

/// The `proxy_*` directives this block sets (`None`: inherit).
#[derive(Debug, Clone, Default)]
pub(super) struct ProxyLayer {
    /// This block's `proxy_pass`, for `proxy_redirect default`.
    pub pass: Option<PassInfo>,
    pub set_headers: Option<Vec<(String, Template)>>,
    pub http_version: Option<ProxyHttpVersion>,
    pub pass_request_headers: Option<bool>,
    pub pass_request_body: Option<bool>,
    pub hide_headers: Option<Vec<String>>,
    pub pass_headers: Option<Vec<String>>,
    pub ignore_headers: Option<Vec<String>>,
    /// `proxy_redirect`: `Off`, or the rules with whether each came from
    /// `default`.
    pub redirect: Option<RedirectLayer>,
    pub connect_timeout: Option<Duration>,
    pub send_timeout: Option<Duration>,
    pub read_timeout: Option<Duration>,
    /// The keywords read, and whether `off` was one of them.
    pub next_upstream: Option<(NextUpstream, bool)>,
    pub next_upstream_tries: Option<u32>,
    pub next_upstream_timeout: Option<Duration>,
    pub intercept_errors: Option<bool>,
    pub buffering: Option<bool>,
    pub request_buffering: Option<bool>,
    pub buffer_size: Option<usize>,
    pub buffers: Option<(usize, usize)>,
    pub busy_buffers_size: Option<usize>,
    pub temp_file_write_size: Option<usize>,
    pub max_temp_file_size: Option<u64>,
    pub resolver: Option<Resolver>,
    pub resolver_timeout: Option<Duration>,
}

#[derive(Debug, Clone)]
pub(super) enum RedirectLayer {
    Off,
    Rules(Vec<(bool, RedirectRule)>),
}

fn size_value(d: &Directive, i: usize) -> Result<usize, NginxError> {
    parse_size(arg(d, i)?)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| invalid_value(d))
}

/// Apply one `proxy_*` directive to `layer`. `Ok(false)`: not one of these.
pub(super) fn apply(
    ctx: &mut Ctx,
    layer: &mut ProxyLayer,
    d: &Directive,
) -> Result<bool, NginxError> {
    match d.name.as_str() {
        "proxy_set_header" => {
            let value = template(d, arg(d, 1)?)?;
            layer
                .set_headers
                .get_or_insert_with(Vec::new)
                .push((arg(d, 0)?.to_string(), value));
        }
        "proxy_http_version" => {
            let v = match arg(d, 0)? {
                "1.0" => ProxyHttpVersion::Http10,
                "1.1" => ProxyHttpVersion::Http11,
                other => return Err(NginxError::at(d, format!("invalid value \"{other}\""))),
            };
            once(&mut layer.http_version, d, v)?;
        }
        "proxy_pass_request_headers" => once(&mut layer.pass_request_headers, d, flag(d)?)?,
        "proxy_pass_request_body" => once(&mut layer.pass_request_body, d, flag(d)?)?,
        "proxy_hide_header" => layer
            .hide_headers
            .get_or_insert_with(Vec::new)
            .push(arg(d, 0)?.to_ascii_lowercase()),
        "proxy_pass_header" => layer
            .pass_headers
            .get_or_insert_with(Vec::new)
            .push(arg(d, 0)?.to_ascii_lowercase()),
        "proxy_ignore_headers" => {
            let list = layer.ignore_headers.get_or_insert_with(Vec::new);
            for v in d.values() {
                let lower = v.to_ascii_lowercase();
                if !IGNORABLE.contains(&lower.as_str()) {
                    return Err(NginxError::at(d, format!("invalid value \"{v}\"")));
                }
                if list.contains(&lower) {
                    ctx.warn(d, &format!("duplicate value \"{v}\""));
                    continue;
                }
                list.push(lower);
            }
        }
        "proxy_redirect" => redirect(ctx, layer, d)?,
        "proxy_connect_timeout" => once(&mut layer.connect_timeout, d, msec(d)?)?,
        "proxy_send_timeout" => once(&mut layer.send_timeout, d, msec(d)?)?,
        "proxy_read_timeout" => once(&mut layer.read_timeout, d, msec(d)?)?,
        "proxy_next_upstream" => next_upstream(ctx, &mut layer.next_upstream, d, true)?,
        "proxy_next_upstream_tries" => once(&mut layer.next_upstream_tries, d, tries(d)?)?,
        "proxy_next_upstream_timeout" => once(&mut layer.next_upstream_timeout, d, msec(d)?)?,
        "proxy_intercept_errors" => once(&mut layer.intercept_errors, d, flag(d)?)?,
        "proxy_buffering" => once(&mut layer.buffering, d, flag(d)?)?,
        "proxy_request_buffering" => once(&mut layer.request_buffering, d, flag(d)?)?,
        "proxy_buffer_size" => once(&mut layer.buffer_size, d, size_value(d, 0)?)?,
        "proxy_busy_buffers_size" => once(&mut layer.busy_buffers_size, d, size_value(d, 0)?)?,
        "proxy_temp_file_write_size" => {
            once(&mut layer.temp_file_write_size, d, size_value(d, 0)?)?
        }
        "proxy_buffers" => {
            let num = super::values::atoi(arg(d, 0)?)
                .filter(|n| *n > 0)
                .ok_or_else(|| invalid_value(d))? as usize;
            let size = size_value(d, 1)?;
            if size == 0 {
                return Err(invalid_value(d));
            }
            once(&mut layer.buffers, d, (num, size))?;
        }
        "proxy_max_temp_file_size" => {
            let v = parse_size(arg(d, 0)?).ok_or_else(|| invalid_value(d))?;
            once(&mut layer.max_temp_file_size, d, v)?;
        }
        "resolver" => {
            let r = super::health::resolver(d)?;
            once(&mut layer.resolver, d, r)?;
        }
        "resolver_timeout" => once(&mut layer.resolver_timeout, d, msec(d)?)?,
        _ => return Ok(false),
    }
    Ok(true)
}

/// `proxy_next_upstream_tries N` / `uwsgi_next_upstream_tries N`.
pub(super) fn tries(d: &Directive) -> Result<u32, NginxError> {
    u32::try_from(number(d)?)
        .map_err(|_| NginxError::at(d, format!("\"{}\" directive invalid number", d.name)))
}

/// `proxy_next_upstream KEYWORD...` / `uwsgi_next_upstream KEYWORD...`
/// (`ngx_conf_set_bitmask_slot`: an unknown keyword is an error, a
/// repeated one a warning). The uwsgi module's mask has no `http_502` and
/// no `http_504` (`with_502_504` false: they are invalid values there).
pub(super) fn next_upstream(
    ctx: &mut Ctx,
    slot: &mut Option<(NextUpstream, bool)>,
    d: &Directive,
    with_502_504: bool,
) -> Result<(), NginxError> {
    let (set, off) = slot.get_or_insert((NextUpstream::OFF, false));
    for v in d.values() {
        let lower = v.to_ascii_lowercase();
        if !with_502_504 && matches!(lower.as_str(), "http_502" | "http_504") {
            return Err(NginxError::at(d, format!("invalid value \"{v}\"")));
        }
        let slot: Option<&mut bool> = match lower.as_str() {
            "error" => Some(&mut set.error),
            "timeout" => Some(&mut set.timeout),
            "invalid_header" => Some(&mut set.invalid_header),
            "non_idempotent" => Some(&mut set.non_idempotent),
            "http_500" => Some(&mut set.http_500),
            "http_502" => Some(&mut set.http_502),
            "http_503" => Some(&mut set.http_503),
            "http_504" => Some(&mut set.http_504),
            "http_403" => Some(&mut set.http_403),
            "http_404" => Some(&mut set.http_404),
            "http_429" => Some(&mut set.http_429),
            // `updating` only matters with proxy_cache (refused).
            "updating" => None,
            "off" => Some(&mut *off),
            _ => return Err(NginxError::at(d, format!("invalid value \"{v}\""))),
        };
        if let Some(slot) = slot {
            if *slot {
                ctx.warn(d, &format!("duplicate value \"{v}\""));
            }
            *slot = true;
        }
    }
    Ok(())
}

/// `proxy_redirect default | off | FROM TO` (`ngx_http_proxy_redirect`).
fn redirect(ctx: &mut Ctx, layer: &mut ProxyLayer, d: &Directive) -> Result<(), NginxError> {
    let duplicate = || NginxError::at(d, "\"proxy_redirect\" directive is duplicate");
    let values: Vec<&str> = d.values().collect();
    let has_rules = match &layer.redirect {
        Some(RedirectLayer::Off) => return Err(duplicate()),
        Some(RedirectLayer::Rules(_)) => true,
        None => false,
    };
    if values.len() == 1 {
        match values[0] {
            "off" => {
                if has_rules {
                    return Err(duplicate());
                }
                layer.redirect = Some(RedirectLayer::Off);
                return Ok(());
            }
            "default" => {}
            other => {
                return Err(NginxError::at(d, format!("invalid parameter \"{other}\"")));
            }
        }
        let Some(pass) = &layer.pass else {
            return Err(NginxError::at(
                d,
                "\"proxy_redirect default\" should be placed after the \"proxy_pass\" directive",
            ));
        };
        if pass.dynamic {
            return Err(NginxError::at(
                d,
                "\"proxy_redirect default\" cannot be used with \"proxy_pass\" directive with variables",
            ));
        }
        let rule = default_rule(pass);
        push_rule(layer, (true, rule));
        return Ok(());
    }
    let from_text = values[0];
    let from = if let Some(re) = from_text.strip_prefix('~') {
        let (source, caseless) = match re.strip_prefix('*') {
            Some(rest) => (rest, true),
            None => (re, false),
        };
        RedirectFrom::Regex(compile(ctx, d, source, caseless)?)
    } else {
        RedirectFrom::Text(template(d, from_text)?)
    };
    let to = template(d, arg(d, 1)?)?;
    push_rule(layer, (false, RedirectRule { from, to }));
    Ok(())
}

fn push_rule(layer: &mut ProxyLayer, rule: (bool, RedirectRule)) {
    match &mut layer.redirect {
        Some(RedirectLayer::Rules(rules)) => rules.push(rule),
        _ => layer.redirect = Some(RedirectLayer::Rules(vec![rule])),
    }
}

/// nginx's `proxy_redirect default`: the URL → the location's name when
/// the URL has a URI part, else the URL plus `/` → `/`.
fn default_rule(pass: &PassInfo) -> RedirectRule {
    let (from, to) = if pass.has_uri {
        (pass.url.clone(), pass.location.clone())
    } else {
        (format!("{}/", pass.url), "/".to_string())
    };
    RedirectRule {
        from: RedirectFrom::Text(Template::literal(&from)),
        to: Template::literal(&to),
    }
}

impl ProxyLayer {
    /// This layer over its parent's resolved settings.
    pub(super) fn resolve(&self, parent: &ProxySettings) -> ProxySettings {
        fn pick<T: Clone>(own: &Option<T>, parent: &T) -> T {
            own.clone().unwrap_or_else(|| parent.clone())
        }
        let next_upstream = match self.next_upstream {
            Some((_, true)) => NextUpstream::OFF,
            Some((set, false)) => set,
            None => parent.next_upstream,
        };
        let redirect = match &self.redirect {
            None => parent.redirect.clone(),
            Some(RedirectLayer::Off) => ProxyRedirect::Off,
            Some(RedirectLayer::Rules(rules)) if rules.iter().all(|(default, _)| *default) => {
                ProxyRedirect::Default
            }
            Some(RedirectLayer::Rules(rules)) => {
                ProxyRedirect::Rules(rules.iter().map(|(_, r)| r.clone()).collect())
            }
        };
        ProxySettings {
            set_headers: pick(&self.set_headers, &parent.set_headers),
            http_version: pick(&self.http_version, &parent.http_version),
            pass_request_headers: pick(&self.pass_request_headers, &parent.pass_request_headers),
            pass_request_body: pick(&self.pass_request_body, &parent.pass_request_body),
            hide_headers: pick(&self.hide_headers, &parent.hide_headers),
            pass_headers: pick(&self.pass_headers, &parent.pass_headers),
            ignore_headers: pick(&self.ignore_headers, &parent.ignore_headers),
            redirect,
            connect_timeout: pick(&self.connect_timeout, &parent.connect_timeout),
            send_timeout: pick(&self.send_timeout, &parent.send_timeout),
            read_timeout: pick(&self.read_timeout, &parent.read_timeout),
            next_upstream,
            next_upstream_tries: pick(&self.next_upstream_tries, &parent.next_upstream_tries),
            next_upstream_timeout: pick(&self.next_upstream_timeout, &parent.next_upstream_timeout),
            intercept_errors: pick(&self.intercept_errors, &parent.intercept_errors),
            buffering: pick(&self.buffering, &parent.buffering),
            request_buffering: pick(&self.request_buffering, &parent.request_buffering),
            buffer_size: pick(&self.buffer_size, &parent.buffer_size),
            buffers: pick(&self.buffers, &parent.buffers),
            max_temp_file_size: pick(&self.max_temp_file_size, &parent.max_temp_file_size),
            busy_buffers_size: self.busy_buffers_size.or(parent.busy_buffers_size),
            temp_file_write_size: self.temp_file_write_size.or(parent.temp_file_write_size),
            resolver: self
                .resolver
                .clone()
                .or_else(|| parent.resolver.clone())
                .map(|mut r| {
                    r.timeout = self
                        .resolver_timeout
                        .or(parent.resolver.as_ref().map(|p| p.timeout))
                        .unwrap_or(r.timeout);
                    r
                }),
        }
    }

    /// Every template this layer holds, for the variable pass.
    pub(super) fn templates_mut(
        &mut self,
        f: &mut dyn FnMut(&mut Template) -> Result<(), NginxError>,
    ) -> Result<(), NginxError> {
        for (_, t) in self.set_headers.iter_mut().flatten() {
            f(t)?;
        }
        if let Some(RedirectLayer::Rules(rules)) = &mut self.redirect {
            for (_, rule) in rules {
                if let RedirectFrom::Text(t) = &mut rule.from {
                    f(t)?;
                }
                f(&mut rule.to)?;
            }
        }
        Ok(())
    }
}

/// nginx's merge-time checks of the buffer sizes
/// (`ngx_http_proxy_merge_loc_conf`), for a block's resolved settings.
/// nginx names the line where the `http {}` block ends; Portico names
/// the block whose settings fail (`at`).
pub(super) fn check_buffers(p: &ProxySettings, at: &Directive) -> Result<(), NginxError> {
    let fail = |m: &str| Err(NginxError::at(at, m.to_string()));
    let (num, one) = p.buffers;
    if num < 2 {
        return fail("there must be at least 2 \"proxy_buffers\"");
    }
    let size = p.buffer_size.max(one);
    let busy = p.busy_buffers_size.unwrap_or(2 * size);
    if busy < size {
        return fail(
            "\"proxy_busy_buffers_size\" must be equal to or greater than the maximum of \
             the value of \"proxy_buffer_size\" and one of the \"proxy_buffers\"",
        );
    }
    if busy > (num - 1) * one {
        return fail(
            "\"proxy_busy_buffers_size\" must be less than the size of all \"proxy_buffers\" \
             minus one buffer",
        );
    }
    if p.temp_file_write_size.unwrap_or(2 * size) < size {
        return fail(
            "\"proxy_temp_file_write_size\" must be equal to or greater than the maximum of \
             the value of \"proxy_buffer_size\" and one of the \"proxy_buffers\"",
        );
    }
    if p.max_temp_file_size != 0 && p.max_temp_file_size < size as u64 {
        return fail(
            "\"proxy_max_temp_file_size\" must be equal to zero to disable temporary files \
             usage or must be equal to or greater than the maximum of the value of \
             \"proxy_buffer_size\" and one of the \"proxy_buffers\"",
        );
    }
    Ok(())
}

/// nginx's default request headers after the configured ones
/// (`ngx_http_proxy_init_headers`): `Host $proxy_host` and `Connection`
/// unless a `proxy_set_header` names them. `Connection` is `close` with
/// HTTP/1.0 (nginx 1.22's wire) and empty, not sent, with HTTP/1.1 (nginx
/// 1.29.7+, where the default became 1.1 and `Connection` empty).
pub(super) fn finish(p: &mut ProxySettings) {
    let has = |name: &str| {
        p.set_headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    };
    let mut defaults = Vec::new();
    if !has("Host") {
        defaults.push((
            "Host".to_string(),
            Template {
                parts: vec![crate::site::TemplatePart::Var(
                    crate::site::Variable::ProxyHost,
                )],
            },
        ));
    }
    if !has("Connection") {
        let value = match p.http_version {
            ProxyHttpVersion::Http10 => Template::literal("close"),
            ProxyHttpVersion::Http11 => Template::default(),
        };
        defaults.push(("Connection".to_string(), value));
    }
    p.set_headers.extend(defaults);
}
