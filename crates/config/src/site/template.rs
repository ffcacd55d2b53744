//! Strings with nginx variables in them (`"$scheme://$host$request_uri"`),
//! parsed once at load time into literal parts and [`Variable`]s. Only the
//! parsing lives here; the values come from a request, in `portico-server`.
//!
//! Syntax as nginx's `ngx_http_script`: `$name` (letters, digits, `_`),
//! `${name}` to end a name inside a word, `$1`..`$9` for regex captures.
//! A `$` not followed by a name is an error, as in nginx.

use std::fmt;

/// A string of literal text and variables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Template {
    pub parts: Vec<TemplatePart>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplatePart {
    Literal(String),
    Var(Variable),
}

/// A variable a template may name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Variable {
    Uri,
    DocumentUri,
    RequestUri,
    Args,
    QueryString,
    IsArgs,
    /// `$arg_NAME` (NAME as written).
    Arg(String),
    Host,
    /// `$http_NAME` (NAME lower-case with `_` for `-`, as written).
    Http(String),
    /// `$cookie_NAME`.
    Cookie(String),
    RemoteAddr,
    RemotePort,
    ServerAddr,
    ServerPort,
    ServerName,
    ServerProtocol,
    Scheme,
    Https,
    /// `$http2`: `h2` (TLS), `h2c` (prior knowledge), empty on HTTP/1.x.
    Http2,
    /// `$ssl_protocol`: `TLSv1.2`, `TLSv1.3` (empty without TLS).
    SslProtocol,
    /// `$ssl_cipher`: the suite's OpenSSL name.
    SslCipher,
    /// `$ssl_server_name`: the SNI name.
    SslServerName,
    /// `$ssl_client_s_dn`: the client certificate's subject (RFC 2253).
    SslClientSDn,
    /// `$ssl_client_i_dn`: its issuer.
    SslClientIDn,
    /// `$ssl_client_s_dn_legacy`: the subject as `/O=Example/CN=alice`.
    SslClientSDnLegacy,
    /// `$ssl_client_verify`: `SUCCESS`, `NONE`, `FAILED:reason`.
    SslClientVerify,
    /// `$ssl_session_reused`: `r` when the session was resumed, else `.`.
    SslSessionReused,
    RequestMethod,
    ContentType,
    ContentLength,
    DocumentRoot,
    RealpathRoot,
    RequestFilename,
    Status,
    BodyBytesSent,
    BytesSent,
    /// `$gzip_ratio`: input over output bytes of the gzip filter, two
    /// decimals; no value when the answer was not gzipped.
    GzipRatio,
    RequestTime,
    TimeLocal,
    TimeIso8601,
    Msec,
    Request,
    RemoteUser,
    Hostname,
    Pid,
    /// `$proxy_host`: the `proxy_pass` URL's host (`:port` unless 80).
    ProxyHost,
    /// `$proxy_port`.
    ProxyPort,
    /// `$proxy_add_x_forwarded_for`: the client's X-Forwarded-For values
    /// and `$remote_addr`, `, `-joined.
    ProxyAddXForwardedFor,
    /// `$upstream_addr`: every peer tried, `, `-separated.
    UpstreamAddr,
    /// `$upstream_status`.
    UpstreamStatus,
    /// `$upstream_response_time`.
    UpstreamResponseTime,
    /// `$1`..`$9`: the last regex match's numbered captures.
    Capture(usize),
    /// A named capture of the last regex match, or a variable set by `map`
    /// or by later modules: resolved at load time into one of the others
    /// where it can be, else kept by name.
    Named(String),
    /// The target of a `map` block (index into `Site::maps`).
    Map(usize),
}

/// Why a template did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateError {
    /// `$` with no name after it, or `${` without `}`.
    InvalidVariableName(String),
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TemplateError::InvalidVariableName(text) => {
                write!(f, "invalid variable name in \"{text}\"")
            }
        }
    }
}

impl std::error::Error for TemplateError {}

impl Template {
    /// A template that is only literal text.
    pub fn literal(text: &str) -> Template {
        if text.is_empty() {
            return Template::default();
        }
        Template {
            parts: vec![TemplatePart::Literal(text.to_string())],
        }
    }

    /// Parse `text`; variable names are classified with [`Variable::from_name`].
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(dollar) = rest.find('$') {
            literal.push_str(&rest[..dollar]);
            let after = &rest[dollar + 1..];
            let (name, consumed) = if let Some(braced) = after.strip_prefix('{') {
                let end = braced
                    .find('}')
                    .ok_or_else(|| TemplateError::InvalidVariableName(text.to_string()))?;
                (&braced[..end], end + 2)
            } else if after.starts_with(|c: char| c.is_ascii_digit()) {
                (&after[..1], 1)
            } else {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], end)
            };
            if name.is_empty() {
                return Err(TemplateError::InvalidVariableName(text.to_string()));
            }
            if !literal.is_empty() {
                parts.push(TemplatePart::Literal(std::mem::take(&mut literal)));
            }
            parts.push(TemplatePart::Var(Variable::from_name(name)));
            rest = &after[consumed..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(TemplatePart::Literal(literal));
        }
        Ok(Template { parts })
    }

    /// True when the template has no variables.
    pub fn is_literal(&self) -> bool {
        self.parts
            .iter()
            .all(|p| matches!(p, TemplatePart::Literal(_)))
    }

    /// The text of a template without variables (`None` if it has some).
    pub fn as_literal(&self) -> Option<String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                TemplatePart::Literal(text) => out.push_str(text),
                TemplatePart::Var(_) => return None,
            }
        }
        Some(out)
    }

    /// Every variable the template names, in order.
    pub fn variables(&self) -> impl Iterator<Item = &Variable> {
        self.parts.iter().filter_map(|p| match p {
            TemplatePart::Var(v) => Some(v),
            TemplatePart::Literal(_) => None,
        })
    }
}

impl Variable {
    /// Classify a variable name (without `$`). Names nginx does not have
    /// become [`Variable::Named`]: a later pass (captures, `map` targets)
    /// resolves them or reports `unknown "name" variable`.
    pub fn from_name(name: &str) -> Variable {
        if let Ok(n) = name.parse::<usize>() {
            return Variable::Capture(n);
        }
        if let Some(rest) = name.strip_prefix("arg_") {
            return Variable::Arg(rest.to_string());
        }
        if let Some(rest) = name.strip_prefix("http_") {
            return Variable::Http(rest.to_ascii_lowercase());
        }
        if let Some(rest) = name.strip_prefix("cookie_") {
            return Variable::Cookie(rest.to_string());
        }
        match name {
            "uri" => Variable::Uri,
            "document_uri" => Variable::DocumentUri,
            "request_uri" => Variable::RequestUri,
            "args" => Variable::Args,
            "query_string" => Variable::QueryString,
            "is_args" => Variable::IsArgs,
            "host" => Variable::Host,
            "remote_addr" => Variable::RemoteAddr,
            "remote_port" => Variable::RemotePort,
            "server_addr" => Variable::ServerAddr,
            "server_port" => Variable::ServerPort,
            "server_name" => Variable::ServerName,
            "server_protocol" => Variable::ServerProtocol,
            "scheme" => Variable::Scheme,
            "https" => Variable::Https,
            "http2" => Variable::Http2,
            "ssl_protocol" => Variable::SslProtocol,
            "ssl_cipher" => Variable::SslCipher,
            "ssl_server_name" => Variable::SslServerName,
            "ssl_client_s_dn" => Variable::SslClientSDn,
            "ssl_client_i_dn" => Variable::SslClientIDn,
            "ssl_client_s_dn_legacy" => Variable::SslClientSDnLegacy,
            "ssl_client_verify" => Variable::SslClientVerify,
            "ssl_session_reused" => Variable::SslSessionReused,
            "request_method" => Variable::RequestMethod,
            "content_type" => Variable::ContentType,
            "content_length" => Variable::ContentLength,
            "document_root" => Variable::DocumentRoot,
            "realpath_root" => Variable::RealpathRoot,
            "request_filename" => Variable::RequestFilename,
            "status" => Variable::Status,
            "body_bytes_sent" => Variable::BodyBytesSent,
            "bytes_sent" => Variable::BytesSent,
            "gzip_ratio" => Variable::GzipRatio,
            "request_time" => Variable::RequestTime,
            "time_local" => Variable::TimeLocal,
            "time_iso8601" => Variable::TimeIso8601,
            "msec" => Variable::Msec,
            "request" => Variable::Request,
            "remote_user" => Variable::RemoteUser,
            "hostname" => Variable::Hostname,
            "pid" => Variable::Pid,
            "proxy_host" => Variable::ProxyHost,
            "proxy_port" => Variable::ProxyPort,
            "proxy_add_x_forwarded_for" => Variable::ProxyAddXForwardedFor,
            "upstream_addr" => Variable::UpstreamAddr,
            "upstream_status" => Variable::UpstreamStatus,
            "upstream_response_time" => Variable::UpstreamResponseTime,
            other => Variable::Named(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(s: &str) -> TemplatePart {
        TemplatePart::Literal(s.to_string())
    }

    #[test]
    fn parses_variables_braces_and_captures() {
        let t = Template::parse("$scheme://${host}x$request_uri/$1").unwrap_or_default();
        assert_eq!(
            t.parts,
            vec![
                TemplatePart::Var(Variable::Scheme),
                lit("://"),
                TemplatePart::Var(Variable::Host),
                lit("x"),
                TemplatePart::Var(Variable::RequestUri),
                lit("/"),
                TemplatePart::Var(Variable::Capture(1)),
            ]
        );
    }

    #[test]
    fn prefixed_families_keep_their_names() {
        let t = Template::parse("$http_user_agent $arg_q $cookie_sid $foo").unwrap_or_default();
        let vars: Vec<_> = t.variables().cloned().collect();
        assert_eq!(
            vars,
            vec![
                Variable::Http("user_agent".into()),
                Variable::Arg("q".into()),
                Variable::Cookie("sid".into()),
                Variable::Named("foo".into()),
            ]
        );
    }

    #[test]
    fn proxy_and_upstream_variables_are_known() {
        let t = Template::parse(
            "$proxy_host $proxy_port $proxy_add_x_forwarded_for \
             $upstream_addr $upstream_status $upstream_response_time",
        )
        .unwrap_or_default();
        let vars: Vec<_> = t.variables().cloned().collect();
        assert_eq!(
            vars,
            vec![
                Variable::ProxyHost,
                Variable::ProxyPort,
                Variable::ProxyAddXForwardedFor,
                Variable::UpstreamAddr,
                Variable::UpstreamStatus,
                Variable::UpstreamResponseTime,
            ]
        );
    }

    #[test]
    fn a_bare_dollar_is_an_error() {
        assert_eq!(
            Template::parse("a$"),
            Err(TemplateError::InvalidVariableName("a$".into()))
        );
        assert_eq!(
            Template::parse("${host"),
            Err(TemplateError::InvalidVariableName("${host".into()))
        );
    }

    #[test]
    fn literal_round_trips() {
        assert_eq!(
            Template::literal("abc").as_literal().as_deref(),
            Some("abc")
        );
        assert!(
            Template::parse("plain")
                .map(|t| t.is_literal())
                .unwrap_or(false)
        );
    }
}
