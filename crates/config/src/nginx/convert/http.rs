//! The `http`-only directives that define names used elsewhere:
//! `log_format` (with nginx's predefined `combined`) and `map`.

use crate::site::{LogFormatDef, Template, VarMap};

use super::super::ast::{Directive, NginxError};
use super::Ctx;
use super::rewrite::compile;
use super::values::arg;
use super::vars::template;

/// nginx's predefined `combined` format.
pub(super) const COMBINED: &str = "$remote_addr - $remote_user [$time_local] \
\"$request\" $status $body_bytes_sent \"$http_referer\" \"$http_user_agent\"";

/// The `combined` definition every site starts with.
pub(super) fn combined() -> LogFormatDef {
    LogFormatDef {
        name: "combined".to_string(),
        template: Template::parse(COMBINED).unwrap_or_default(),
    }
}

/// `log_format NAME [escape=default] STRING...` (the strings joined).
pub(super) fn log_format(ctx: &mut Ctx, d: &Directive) -> Result<(), NginxError> {
    let name = arg(d, 0)?;
    if ctx.log_formats.iter().any(|f| f.name == name) {
        return Err(NginxError::at(
            d,
            format!("duplicate \"log_format\" name \"{name}\""),
        ));
    }
    let mut strings = d.values().skip(1).peekable();
    if let Some(escape) = strings.peek().and_then(|s| s.strip_prefix("escape=")) {
        match escape {
            "default" => {}
            "json" | "none" => {
                return Err(ctx.unsupported(d, &format!("log_format escape={escape}")));
            }
            other => {
                return Err(NginxError::at(
                    d,
                    format!("unknown log format escaping \"{other}\""),
                ));
            }
        }
        strings.next();
    }
    let text: String = strings.collect();
    ctx.log_formats.push(LogFormatDef {
        name: name.to_string(),
        template: template(d, &text)?,
    });
    Ok(())
}

/// `map $source $target { default V; hostnames; KEY V; ~RE V; ~*RE V; }`.
pub(super) fn map(ctx: &mut Ctx, d: &Directive) -> Result<VarMap, NginxError> {
    let source = template(d, arg(d, 0)?)?;
    let target_text = arg(d, 1)?;
    let Some(target) = target_text.strip_prefix('$') else {
        return Err(NginxError::at(
            d,
            format!("invalid variable name \"{target_text}\""),
        ));
    };
    let mut map = VarMap {
        source,
        target: target.to_string(),
        default: Template::default(),
        exact: Vec::new(),
        regexes: Vec::new(),
        hostnames: false,
    };
    let mut default_set = false;
    for c in d.children.iter().flatten() {
        let key = c.name.as_str();
        if c.args.is_empty() && (key == "hostnames" || key == "volatile") {
            map.hostnames |= key == "hostnames";
            continue;
        }
        if c.args.len() != 1 {
            return Err(NginxError::at(c, "invalid number of the map parameters"));
        }
        let value = template(c, &c.args[0].value)?;
        if key == "default" {
            if default_set {
                return Err(NginxError::at(c, "duplicate default map parameter"));
            }
            default_set = true;
            map.default = value;
        } else if let Some(re) = key.strip_prefix("~*") {
            let p = compile(ctx, c, re, true)?;
            map.regexes.push((p, value));
        } else if let Some(re) = key.strip_prefix('~') {
            let p = compile(ctx, c, re, false)?;
            map.regexes.push((p, value));
        } else {
            let key = key.strip_prefix('\\').unwrap_or(key);
            let key = if map.hostnames {
                key.to_ascii_lowercase()
            } else {
                key.to_string()
            };
            if map.exact.iter().any(|(k, _)| *k == key) {
                return Err(NginxError::at(
                    c,
                    format!("conflicting parameter \"{key}\""),
                ));
            }
            map.exact.push((key, value));
        }
    }
    Ok(map)
}
