//! The directives `http`, `server` and `location` share (root, index,
//! try_files, error_page, add_header, expires, allow/deny, sizes and
//! timeouts, types, access_log, uwsgi_param...): each one read into the
//! block's [`Layer`], with nginx's checks and messages. Which block a
//! directive may appear in is the reader's job; what the value means and
//! whether it is repeated is checked here.

use std::net::IpAddr;

use crate::site::{
    AccessLogTarget, AccessNet, AccessRule, AddHeader, DocRoot, ErrorPage, ErrorPageAnswer,
    ErrorPageTarget, Expires, MimeTypes, TryFallback, TryFiles, UwsgiParam,
};

use super::super::ast::{Directive, NginxError};
use super::Ctx;
use super::inherit::Layer;
use super::values::{arg, atoi, flag, invalid_value, msec, number, parse_time, size};
use super::vars::template;

fn duplicate(d: &Directive) -> NginxError {
    NginxError::at(d, format!("\"{}\" directive is duplicate", d.name))
}

/// Set a scalar once per block, as nginx's `ngx_conf_set_*_slot`.
pub(super) fn once<T>(slot: &mut Option<T>, d: &Directive, value: T) -> Result<(), NginxError> {
    if slot.is_some() {
        return Err(duplicate(d));
    }
    *slot = Some(value);
    Ok(())
}

/// Apply one shared directive to `layer`. `Ok(false)`: not one of these.
pub(super) fn apply(
    ctx: &mut Ctx,
    layer: &mut Layer,
    d: &Directive,
    in_named: bool,
) -> Result<bool, NginxError> {
    if layer.http2.apply(d)? {
        return Ok(true);
    }
    match d.name.as_str() {
        "root" | "alias" => doc_root(ctx, layer, d, in_named)?,
        "index" => index(ctx, layer, d)?,
        "try_files" => try_files(layer, d)?,
        "error_page" => layer
            .error_pages
            .get_or_insert_with(Vec::new)
            .extend(error_page(d)?),
        "add_header" => layer
            .add_headers
            .get_or_insert_with(Vec::new)
            .push(add_header(d)?),
        "expires" => {
            let value = expires(d)?;
            once(&mut layer.expires, d, value)?;
        }
        "allow" | "deny" => {
            let rule = access_rule(ctx, d)?;
            layer.access.get_or_insert_with(Vec::new).push(rule);
        }
        "client_max_body_size" => once(&mut layer.client_max_body_size, d, size(d)?)?,
        "keepalive_timeout" => {
            let t = parse_time(arg(d, 0)?, true).ok_or_else(|| invalid_value(d))?;
            once(&mut layer.keepalive_timeout, d, t)?;
        }
        "keepalive_requests" => once(&mut layer.keepalive_requests, d, number(d)?)?,
        "client_header_timeout" => once(&mut layer.client_header_timeout, d, msec(d)?)?,
        "client_body_timeout" => once(&mut layer.client_body_timeout, d, msec(d)?)?,
        "send_timeout" => once(&mut layer.send_timeout, d, msec(d)?)?,
        "client_body_buffer_size" => once(&mut layer.client_body_buffer_size, d, size(d)?)?,
        "client_body_temp_path" => {
            let path = ctx.full_path(arg(d, 0)?);
            once(&mut layer.client_body_temp_path, d, path)?
        }
        "server_tokens" => once(&mut layer.server_tokens, d, server_tokens(d)?)?,
        "types" => types(ctx, layer, d)?,
        "default_type" => once(&mut layer.default_type, d, arg(d, 0)?.to_string())?,
        "gzip_static" => once(&mut layer.gzip_static, d, gzip_static(d)?)?,
        "open_file_cache" => once(&mut layer.open_file_cache, d, open_file_cache(d)?)?,
        "open_file_cache_valid" => {
            let t = parse_time(arg(d, 0)?, true).ok_or_else(|| invalid_value(d))?;
            once(&mut layer.open_file_cache_valid, d, t)?;
        }
        "autoindex" => once(&mut layer.autoindex, d, flag(d)?)?,
        "access_log" => access_log(ctx, layer, d)?,
        "uwsgi_param" => layer
            .uwsgi_params
            .get_or_insert_with(Vec::new)
            .push(uwsgi_param(d)?),
        "uwsgi_connect_timeout" => once(&mut layer.uwsgi_connect_timeout, d, msec(d)?)?,
        "uwsgi_send_timeout" => once(&mut layer.uwsgi_send_timeout, d, msec(d)?)?,
        "uwsgi_read_timeout" => once(&mut layer.uwsgi_read_timeout, d, msec(d)?)?,
        "uwsgi_buffering" => once(&mut layer.uwsgi_buffering, d, flag(d)?)?,
        "uwsgi_intercept_errors" => once(&mut layer.uwsgi_intercept_errors, d, flag(d)?)?,
        "uwsgi_next_upstream" => {
            super::proxy::next_upstream(ctx, &mut layer.uwsgi_next_upstream, d, false)?
        }
        "uwsgi_next_upstream_tries" => {
            let n = super::proxy::tries(d)?;
            once(&mut layer.uwsgi_next_upstream_tries, d, n)?;
        }
        "uwsgi_next_upstream_timeout" => once(&mut layer.uwsgi_next_upstream_timeout, d, msec(d)?)?,
        "charset" => {
            let v = arg(d, 0)?;
            let value = (!v.eq_ignore_ascii_case("off")).then(|| v.to_string());
            once(&mut layer.charset, d, value)?;
        }
        "internal" => once(&mut layer.internal, d, true)?,
        "autoindex_exact_size" => once(&mut layer.autoindex_exact_size, d, flag(d)?)?,
        "autoindex_localtime" => once(&mut layer.autoindex_localtime, d, flag(d)?)?,
        "gzip_vary" => once(&mut layer.gzip_vary, d, flag(d)?)?,
        _ => {
            if super::compress::apply(ctx, &mut layer.compress, d)? {
                return Ok(true);
            }
            return super::proxy::apply(ctx, &mut layer.proxy, d);
        }
    }
    Ok(true)
}

fn doc_root(ctx: &Ctx, layer: &mut Layer, d: &Directive, in_named: bool) -> Result<(), NginxError> {
    let alias = d.name == "alias";
    if let Some((_, earlier)) = &layer.root {
        if *earlier == d.name {
            return Err(duplicate(d));
        }
        return Err(NginxError::at(
            d,
            format!(
                "\"{}\" directive is duplicate, \"{earlier}\" directive was specified earlier",
                d.name
            ),
        ));
    }
    if alias && in_named {
        return Err(NginxError::at(
            d,
            "the \"alias\" directive cannot be used inside the named location",
        ));
    }
    let mut text = arg(d, 0)?.to_string();
    for var in ["document_root", "realpath_root"] {
        if text.contains(&format!("${var}")) || text.contains(&format!("${{{var}}}")) {
            return Err(NginxError::at(
                d,
                format!(
                    "the ${var} variable cannot be used in the \"{}\" directive",
                    d.name
                ),
            ));
        }
    }
    if !alias && text.len() > 1 && text.ends_with('/') {
        text.pop();
    }
    if !text.starts_with('$') && !text.starts_with('/') {
        text = ctx.prefix.join(&text).to_string_lossy().into_owned();
    }
    let t = template(d, &text)?;
    layer.root = Some(if alias {
        (DocRoot::Alias(t), "alias")
    } else {
        (DocRoot::Root(t), "root")
    });
    Ok(())
}

fn index(ctx: &mut Ctx, layer: &mut Layer, d: &Directive) -> Result<(), NginxError> {
    let list = layer.index.get_or_insert_with(Vec::new);
    let n = d.args.len();
    for (i, a) in d.args.iter().enumerate() {
        if a.value.is_empty() {
            // nginx names the first argument here, whichever is empty.
            return Err(NginxError::at(
                d,
                format!(
                    "index \"{}\" in \"index\" directive is invalid",
                    d.args[0].value
                ),
            ));
        }
        if a.value.starts_with('/') && i + 1 != n {
            ctx.warn(
                d,
                "only the last index in \"index\" directive should be absolute",
            );
        }
        list.push(template(d, &a.value)?);
    }
    Ok(())
}

fn try_files(layer: &mut Layer, d: &Directive) -> Result<(), NginxError> {
    if layer.try_files.is_some() {
        return Err(duplicate(d));
    }
    let values: Vec<&str> = d.values().collect();
    let Some((last, files)) = values.split_last() else {
        return Err(NginxError::at(
            d,
            "invalid number of arguments in \"try_files\" directive",
        ));
    };
    let fallback = if let Some(code) = last.strip_prefix('=') {
        match atoi(code) {
            Some(c) if c <= 999 => TryFallback::Code(c as u16),
            _ => return Err(NginxError::at(d, format!("invalid code \"{last}\""))),
        }
    } else if let Some(name) = last.strip_prefix('@') {
        TryFallback::Named(format!("@{name}"))
    } else {
        TryFallback::Uri(template(d, last)?)
    };
    let files = files
        .iter()
        .map(|f| template(d, f))
        .collect::<Result<Vec<_>, _>>()?;
    layer.try_files = Some(TryFiles { files, fallback });
    Ok(())
}

/// `error_page CODE... [=[CODE]] URI` (`ngx_http_core_error_page`): one
/// entry per answer, since 494..497 without `=` are answered 400.
pub(super) fn error_page(d: &Directive) -> Result<Vec<ErrorPage>, NginxError> {
    let values: Vec<&str> = d.values().collect();
    let n = values.len();
    if n < 2 {
        return Err(NginxError::at(
            d,
            "invalid number of arguments in \"error_page\" directive",
        ));
    }
    if n == 2 && values[0].starts_with('=') {
        return Err(NginxError::at(
            d,
            format!("invalid value \"{}\"", values[0]),
        ));
    }
    let (answer, codes_end) = match values[n - 2].strip_prefix('=') {
        Some("") => (ErrorPageAnswer::Target, n - 2),
        Some(code) => match atoi(code).and_then(|c| u16::try_from(c).ok()) {
            Some(c) => (ErrorPageAnswer::Code(c), n - 2),
            _ => {
                return Err(NginxError::at(
                    d,
                    format!("invalid value \"{}\"", values[n - 2]),
                ));
            }
        },
        None => (ErrorPageAnswer::Original, n - 1),
    };
    let mut codes = Vec::new();
    let mut bad_request = Vec::new();
    for v in &values[..codes_end] {
        let code = atoi(v)
            .filter(|c| *c != 499)
            .ok_or_else(|| NginxError::at(d, format!("invalid value \"{v}\"")))?;
        if !(300..=599).contains(&code) {
            return Err(NginxError::at(
                d,
                format!("value \"{v}\" must be between 300 and 599"),
            ));
        }
        // nginx answers its TLS and header-size errors 400 unless told.
        if answer == ErrorPageAnswer::Original && (494..=497).contains(&code) {
            bad_request.push(code as u16);
        } else {
            codes.push(code as u16);
        }
    }
    let uri = values[n - 1];
    let target = if let Some(name) = uri.strip_prefix('@') {
        ErrorPageTarget::Named(format!("@{name}"))
    } else if uri.starts_with('/') || (uri.starts_with('$') && !uri.starts_with("$scheme")) {
        ErrorPageTarget::Uri(template(d, uri)?)
    } else {
        ErrorPageTarget::Redirect(template(d, uri)?)
    };
    let mut pages = Vec::new();
    if !codes.is_empty() {
        pages.push(ErrorPage {
            codes,
            answer,
            target: target.clone(),
        });
    }
    if !bad_request.is_empty() {
        pages.push(ErrorPage {
            codes: bad_request,
            answer: ErrorPageAnswer::Code(400),
            target,
        });
    }
    Ok(pages)
}

fn add_header(d: &Directive) -> Result<AddHeader, NginxError> {
    let always = match d.args.get(2).map(|a| a.value.as_str()) {
        None => false,
        Some("always") => true,
        Some(other) => return Err(NginxError::at(d, format!("invalid parameter \"{other}\""))),
    };
    Ok(AddHeader {
        name: arg(d, 0)?.to_string(),
        value: template(d, arg(d, 1)?)?,
        always,
    })
}

/// `expires [modified] TIME|epoch|max|off|@TIME` (`ngx_http_headers_expires`).
pub(super) fn expires(d: &Directive) -> Result<Expires, NginxError> {
    let directive_err = |msg: &str| NginxError::at(d, format!("\"expires\" directive {msg}"));
    let (modified, value) = match d.args.len() {
        1 => (false, arg(d, 0)?),
        _ => {
            if arg(d, 0)? != "modified" {
                return Err(invalid_value(d));
            }
            (true, arg(d, 1)?)
        }
    };
    match value {
        "epoch" => return Ok(Expires::Epoch),
        "max" => return Ok(Expires::Max),
        "off" => return Ok(Expires::Off),
        _ => {}
    }
    if let Some(daily) = value.strip_prefix('@') {
        if modified {
            return Err(directive_err(
                "daily time cannot be used with \"modified\" parameter",
            ));
        }
        let t = parse_time(daily, true).ok_or_else(|| invalid_value(d))?;
        if t.as_secs() > 24 * 60 * 60 {
            return Err(directive_err("daily time value must be less than 24 hours"));
        }
        return Ok(Expires::DailyAt {
            seconds_of_day: t.as_secs() as u32,
        });
    }
    let (negative, time) = match value.as_bytes().first() {
        Some(b'+') => (false, &value[1..]),
        Some(b'-') => (true, &value[1..]),
        _ => (false, value),
    };
    let secs = parse_time(time, true)
        .ok_or_else(|| invalid_value(d))?
        .as_secs() as i64;
    Ok(Expires::After {
        seconds: if negative { -secs } else { secs },
        from_modified: modified,
    })
}

/// `allow`/`deny ADDRESS|CIDR|all|unix:` (`ngx_http_access_rule`).
fn access_rule(ctx: &mut Ctx, d: &Directive) -> Result<AccessRule, NginxError> {
    let v = arg(d, 0)?;
    let allow = d.name == "allow";
    let net = match v {
        "all" => AccessNet::All,
        "unix:" => AccessNet::Unix,
        _ => {
            let bad = || NginxError::at(d, format!("invalid parameter \"{v}\""));
            let (addr_text, prefix_text) = match v.split_once('/') {
                Some((a, p)) => (a, Some(p)),
                None => (v, None),
            };
            let addr: IpAddr = addr_text.parse().map_err(|_| bad())?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let prefix = match prefix_text {
                Some(p) => match atoi(p) {
                    Some(n) if n <= max => n as u8,
                    _ => return Err(bad()),
                },
                None => max as u8,
            };
            let masked = mask(addr, prefix);
            if masked != addr {
                ctx.warn(d, &format!("low address bits of {v} are meaningless"));
            }
            AccessNet::Cidr {
                addr: masked,
                prefix,
            }
        }
    };
    Ok(AccessRule { allow, net })
}

/// `addr` with all but the first `prefix` bits cleared.
fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let m = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - prefix)
            };
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let m = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - prefix)
            };
            IpAddr::V6((bits & m).into())
        }
    }
}

fn server_tokens(d: &Directive) -> Result<bool, NginxError> {
    match arg(d, 0)? {
        "on" => Ok(true),
        "off" => Ok(false),
        // `build` is nginx's third value; Portico has no build name to add.
        "build" => Ok(true),
        other => Err(NginxError::at(d, format!("invalid value \"{other}\""))),
    }
}

fn gzip_static(d: &Directive) -> Result<bool, NginxError> {
    match arg(d, 0)? {
        "on" => Ok(true),
        "off" => Ok(false),
        "always" => Err(NginxError::at(
            d,
            "\"gzip_static always\" is not supported by Portico yet",
        )),
        other => Err(NginxError::at(d, format!("invalid value \"{other}\""))),
    }
}

/// `open_file_cache off | max=N [inactive=TIME]`: the most paths kept
/// (`inactive` is accepted: entries are bounded by `max` and checked again
/// after `open_file_cache_valid` whatever their use).
fn open_file_cache(d: &Directive) -> Result<Option<usize>, NginxError> {
    let first = arg(d, 0)?;
    if first == "off" && d.args.len() == 1 {
        return Ok(None);
    }
    let mut max = None;
    for value in d.args.iter().map(|a| a.value.as_str()) {
        if let Some(n) = value.strip_prefix("max=") {
            max = Some(
                n.parse::<usize>()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| invalid_value(d))?,
            );
        } else if let Some(t) = value.strip_prefix("inactive=") {
            parse_time(t, true).ok_or_else(|| invalid_value(d))?;
        } else {
            return Err(invalid_value(d));
        }
    }
    max.map(Some).ok_or_else(|| {
        NginxError::at(
            d,
            "\"open_file_cache\" must have the \"max\" parameter".to_string(),
        )
    })
}

/// `types { TYPE EXT...; }`: later blocks at the same level add to the table.
fn types(ctx: &mut Ctx, layer: &mut Layer, d: &Directive) -> Result<(), NginxError> {
    let table = layer.types.get_or_insert_with(MimeTypes::default);
    for entry in d.children.iter().flatten() {
        for ext in entry.values() {
            if let Some(previous) = table.insert(ext, entry.name.clone()) {
                let ext = ext.to_ascii_lowercase();
                ctx.warn(
                    entry,
                    &format!(
                        "duplicate extension \"{ext}\", content type: \"{}\", previous content type: \"{previous}\"",
                        entry.name
                    ),
                );
            }
        }
    }
    Ok(())
}

/// `access_log off | PATH [FORMAT [buffer=.. gzip flush=..]]`.
fn access_log(ctx: &mut Ctx, layer: &mut Layer, d: &Directive) -> Result<(), NginxError> {
    let list = layer.access_log.get_or_insert_with(Vec::new);
    let path = arg(d, 0)?;
    if path == "off" {
        if d.args.len() > 1 {
            return Err(NginxError::at(
                d,
                format!("invalid parameter \"{}\"", d.args[1].value),
            ));
        }
        list.clear();
        list.push(AccessLogTarget::Off);
        return Ok(());
    }
    if list.contains(&AccessLogTarget::Off) {
        // nginx: `off` at a level wins over any log at that level.
        return Ok(());
    }
    if path.starts_with("syslog:") {
        return Err(ctx.unsupported(d, "access_log to syslog"));
    }
    if path.contains('$') {
        return Err(ctx.unsupported(d, "an access_log path with variables"));
    }
    let format = d.args.get(1).map_or("combined", |a| a.value.as_str());
    if !ctx.log_formats.iter().any(|f| f.name == format) {
        return Err(NginxError::at(
            d,
            format!("unknown log format \"{format}\""),
        ));
    }
    for a in d.args.iter().skip(2) {
        let p = a.value.as_str();
        if p.starts_with("if=") {
            return Err(ctx.unsupported(d, "access_log if="));
        }
        let known = p.starts_with("buffer=") || p.starts_with("flush=") || p == "gzip";
        if !(known || p.starts_with("gzip=")) {
            return Err(NginxError::at(d, format!("invalid parameter \"{p}\"")));
        }
    }
    let path = if path == "stderr" {
        path.into()
    } else {
        ctx.full_path(path)
    };
    list.push(AccessLogTarget::File {
        path,
        format: format.to_string(),
    });
    Ok(())
}

fn uwsgi_param(d: &Directive) -> Result<UwsgiParam, NginxError> {
    let if_not_empty = match d.args.get(2).map(|a| a.value.as_str()) {
        None => false,
        Some("if_not_empty") => true,
        Some(other) => return Err(NginxError::at(d, format!("invalid parameter \"{other}\""))),
    };
    Ok(UwsgiParam {
        key: arg(d, 0)?.to_string(),
        value: template(d, arg(d, 1)?)?,
        if_not_empty,
    })
}
