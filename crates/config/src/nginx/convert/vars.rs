//! Variables in templates: parsing an argument into a [`Template`] with
//! nginx's messages, and the check run once the whole configuration is
//! read: a name that is not one of Portico's variables must be a `map`
//! target (it becomes [`Variable::Map`]), a named capture of some regex in
//! the configuration (nginx makes every named capture a variable), or a
//! variable nginx has that Portico leaves empty for now; anything else is
//! nginx's `unknown "name" variable` (which nginx prints without a place).

use std::collections::{BTreeSet, HashMap};

use crate::site::{Template, TemplatePart, Variable};

use super::super::ast::{Directive, NginxError};

/// Parse `text` as a template, with nginx's wording for a bad `$`.
pub(super) fn template(d: &Directive, text: &str) -> Result<Template, NginxError> {
    Template::parse(text).map_err(|_| {
        // Find the offending `$` to word the message as nginx does.
        let mut rest = text;
        while let Some(i) = rest.find('$') {
            let after = &rest[i + 1..];
            if let Some(braced) = after.strip_prefix('{').filter(|b| !b.contains('}')) {
                let name: String = braced
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                return NginxError::at(
                    d,
                    format!("the closing bracket in \"{name}\" variable is missing"),
                );
            }
            rest = after;
        }
        NginxError::at(d, "invalid variable name")
    })
}

/// Variables nginx 1.22 (with the modules a distribution builds) defines
/// that Portico does not compute yet: accepted, and empty at run time.
const NGINX_ONLY: &[&str] = &[
    "binary_remote_addr",
    "connection",
    "connection_requests",
    "connection_time",
    "request_length",
    "request_id",
    "request_body",
    "request_body_file",
    "request_completion",
    "nginx_version",
    "limit_rate",
    "pipe",
    "proxy_protocol_addr",
    "proxy_protocol_port",
    "realip_remote_addr",
    "realip_remote_port",
    "time_iso8601",
    "upstream_connect_time",
    "upstream_header_time",
    "upstream_response_length",
    "upstream_bytes_received",
    "upstream_bytes_sent",
    "upstream_cache_status",
    "uwsgi_script_name",
    "ssl_session_id",
    "remote_user",
    "tcpinfo_rtt",
    "tcpinfo_rttvar",
    "tcpinfo_snd_cwnd",
    "tcpinfo_rcv_space",
    "sent_http_content_type",
];

/// Families of nginx variables with a name after a prefix.
const NGINX_PREFIXES: &[&str] = &[
    "sent_http_",
    "sent_trailer_",
    "upstream_http_",
    "upstream_trailer_",
    "upstream_cookie_",
];

/// What a name may refer to once the whole configuration is known.
#[derive(Debug, Default)]
pub(super) struct VarScope {
    /// `map` targets (lower case) → index into `Site::maps` (the last map
    /// of a name wins, as in nginx).
    pub maps: HashMap<String, usize>,
    /// Named captures of every regex in the configuration.
    pub captures: BTreeSet<String>,
}

impl VarScope {
    /// Resolve the names in `t`, or say which one nginx would not know.
    pub(super) fn fix(&self, t: &mut Template) -> Result<(), NginxError> {
        for part in &mut t.parts {
            let TemplatePart::Var(var) = part else {
                continue;
            };
            let Variable::Named(name) = var else {
                continue;
            };
            let lower = name.to_ascii_lowercase();
            if let Some(&i) = self.maps.get(&lower) {
                *var = Variable::Map(i);
            } else if self.captures.contains(name.as_str())
                || NGINX_ONLY.contains(&lower.as_str())
                || NGINX_PREFIXES.iter().any(|p| lower.starts_with(p))
            {
                // Kept by name: a capture, or empty until Portico has it.
            } else {
                return Err(NginxError {
                    message: format!("unknown \"{name}\" variable"),
                    file: None,
                    line: None,
                });
            }
        }
        Ok(())
    }
}
