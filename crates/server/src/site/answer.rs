//! How a request is answered once the phases are done with it: the
//! answers Portico makes itself go through `error_page` (once; its
//! `=code` forms and named targets) or become nginx's built-in pages;
//! upstream answers are intercepted under `uwsgi_intercept_errors`; and
//! every answer passes nginx's response filters: the status an
//! `error_page` imposes, `expires`, `add_header`, absolute redirects.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use portico_config::site::{ErrorPageAnswer, ErrorPageTarget};

use super::access_log::{self, Record};
use super::content;
use super::headers;
use super::pages::{self, PageStyle};
use super::phases::{Req, Step, location_header, split_args};
use crate::compress;
use crate::handler::Response;

impl Req<'_> {
    /// An answer Portico makes itself with `status` (3xx, 4xx, 5xx):
    /// `error_page` if one applies and none ran yet, else the built-in page.
    pub(crate) fn special(&mut self, status: u16, extra: Vec<(Bytes, Bytes)>) -> Step {
        if status == 444 {
            // nginx's NGX_HTTP_CLOSE: no error_page, no filters; the
            // connection closes without answering (conn.rs, nginx mode).
            return Step::Out(pages::special_response(444, PageStyle::default(), ""));
        }
        if !self.error_page_used
            && self.uri_changes != 0
            && let Some(page) = self
                .loc
                .config
                .error_pages
                .iter()
                .find(|p| p.codes.contains(&status))
        {
            self.error_page_used = true;
            self.err_status = match page.answer {
                ErrorPageAnswer::Original => Some(status),
                ErrorPageAnswer::Code(code) => Some(code),
                ErrorPageAnswer::Target => None,
            };
            match &page.target {
                ErrorPageTarget::Uri(t) => {
                    let target = self.eval(t);
                    if self.method.as_ref() != b"HEAD" {
                        self.method = Bytes::from_static(b"GET");
                    }
                    let (uri, args) = split_args(target);
                    return self.internal_redirect(uri, args);
                }
                ErrorPageTarget::Named(name) => return self.named(name),
                ErrorPageTarget::Redirect(t) => {
                    let location = self.eval(t);
                    let status = match page.answer {
                        ErrorPageAnswer::Code(c @ (301 | 302 | 303 | 307 | 308)) => c,
                        _ => 302,
                    };
                    self.err_status = None;
                    return Step::Out(self.page(status, vec![location_header(location)]));
                }
            }
        }
        self.err_status = None;
        Step::Out(self.page(status, extra))
    }

    /// The built-in page for `status`, finished.
    fn page(&mut self, status: u16, extra: Vec<(Bytes, Bytes)>) -> Response {
        let style = PageStyle {
            server_tokens: self.loc.config.server_tokens,
            padding: self.facts.padding(),
        };
        let plain = self.content_type_of_uri();
        let mut response = pages::special_response(status, style, &plain);
        response.headers.extend(extra);
        self.finish(response)
    }

    /// The built-in page for `status`, with no `error_page` (a failure of
    /// the machinery itself: cycles, missing handlers).
    pub(crate) fn fail(&mut self, status: u16) -> Response {
        self.err_status = None;
        self.page(status, Vec::new())
    }

    /// An upstream's answer: `uwsgi_intercept_errors` sends an error with
    /// an `error_page` through it; anything else is finished and sent.
    pub(crate) fn after_upstream(&mut self, response: Response) -> Step {
        let status = response.status;
        if self.loc.config.uwsgi_intercept_errors
            && status >= 300
            && self
                .loc
                .config
                .error_pages
                .iter()
                .any(|p| p.codes.contains(&status))
        {
            return self.special(status, Vec::new());
        }
        Step::Out(self.finish_as(response, false))
    }

    /// The response filters: `expires`, `add_header`, the status an
    /// `error_page` imposes, and absolute redirects.
    pub(crate) fn finish(&mut self, response: Response) -> Response {
        self.finish_as(response, true)
    }

    /// [`Req::finish`] for an upstream's answer (its `Location` as sent).
    pub(crate) fn finish_upstream(&mut self, response: Response) -> Response {
        self.finish_as(response, false)
    }

    /// [`Req::finish`]; `own`: Portico made the answer, so a relative
    /// `Location` is made absolute (nginx passes an upstream's as it is).
    fn finish_as(&mut self, mut response: Response, own: bool) -> Response {
        if let Some(status) = self.err_status.take() {
            // nginx's send_header: the error_page status replaces the
            // target's before any filter runs, so Last-Modified goes
            // unless it is a 200/206/304, and ranges are offered on 200 only.
            response.status = status;
            response.reason = Bytes::from_static(pages::reason(status).as_bytes());
            let drop_modified = !matches!(status, 200 | 206 | 304);
            response.headers.retain(|(n, _)| {
                let stale_date = drop_modified && n.eq_ignore_ascii_case(b"last-modified");
                let no_ranges = status != 200 && n.eq_ignore_ascii_case(b"accept-ranges");
                !(stale_date || no_ranges)
            });
        }
        let config = self.loc.config;
        if let Some(charset) = &config.charset {
            headers::add_charset(&mut response, charset);
        }
        headers::decorate(&mut response, config, &mut |t| self.eval(t));
        // The gzip and brotli filters come after the headers filter, as
        // in nginx: they see add_header's and expires' headers.
        let gzip = self.compress_in_place(&mut response, own);
        if access_log::logs(config) {
            response.meta.log_tag = self.engine.logs.hold(self.log_record(gzip));
        }
        let relative_location = || {
            response
                .headers
                .iter()
                .any(|(n, v)| n.eq_ignore_ascii_case(b"location") && v.first() == Some(&b'/'))
        };
        if own && relative_location() {
            let base = headers::redirect_base(
                self.facts.scheme,
                &self.redirect_host(),
                self.facts.local.map(|a| a.port()),
            );
            headers::absolutize_location(&mut response, &base);
        }
        response
    }

    /// The gzip and brotli filters (`gzip*`, `brotli*`) of the current
    /// location over a finished answer; `own`: Portico made it (not an
    /// upstream or the app).
    pub(crate) fn compress(&self, mut response: Response, own: bool) -> Response {
        self.compress_in_place(&mut response, own);
        response
    }

    /// [`Req::compress`] where the answer lies, with the gzip body's tally
    /// (`$gzip_ratio`): a location without those filters leaves it
    /// untouched (no copies of the response in and out).
    fn compress_in_place(
        &self,
        response: &mut Response,
        own: bool,
    ) -> Option<Arc<compress::GzipTally>> {
        let config = self.loc.config;
        if !config.compress.any() {
            return None;
        }
        let facts = compress::RequestFacts {
            own_answer: own,
            ..self.compress_facts()
        };
        let answer = std::mem::replace(response, empty_response());
        let (compressed, tally) =
            compress::apply_tallied(answer, &facts, &config.compress, config.gzip_vary);
        *response = compressed;
        tally
    }

    /// What the compression filters (and `gzip_static`) read of the request.
    pub(crate) fn compress_facts(&self) -> compress::RequestFacts<'_> {
        compress::RequestFacts {
            accept_encoding: self.facts.header("accept-encoding"),
            user_agent: self.facts.header("user-agent"),
            via: self.facts.header("via").is_some(),
            authorization: self.facts.header("authorization").is_some(),
            version: compress::http_version(&self.facts.protocol),
            own_answer: false,
        }
    }

    /// The host of absolute redirects: the request's host, else the local
    /// address the connection arrived on (`server_name_in_redirect off`;
    /// an IPv6 address without brackets, as nginx writes it).
    pub(super) fn redirect_host(&self) -> Vec<u8> {
        let host = self.facts.host();
        if !host.is_empty() {
            return host;
        }
        match self.facts.local {
            Some(local) => local.ip().to_string().into_bytes(),
            None => b"localhost".to_vec(),
        }
    }

    /// The type nginx gives an answer by the URI's extension (`types`,
    /// else `default_type`).
    pub(crate) fn content_type_of_uri(&self) -> String {
        content::type_for(&self.uri, self.loc.config)
    }

    /// This request's facts for its access_log line.
    fn log_record(&self, gzip: Option<Arc<compress::GzipTally>>) -> Record {
        Record {
            server: self.server_index,
            location: self.loc.shared.clone(),
            location_prefix: self.location_prefix().map(<[u8]>::to_vec),
            method: self.method.clone(),
            target: self.facts.request_uri.clone(),
            request_uri: self.request_uri.clone(),
            uri: self.uri.clone(),
            args: self.args.clone(),
            headers: self.facts.headers.clone(),
            host: self.facts.host_raw.clone(),
            peer: self.facts.peer,
            local: self.conn_addr.clone(),
            scheme: self.facts.scheme,
            tls: self.facts.tls.clone(),
            protocol: String::from_utf8_lossy(&self.facts.protocol).into_owned(),
            captures: self.captures.clone(),
            server_captures: self.server_captures.clone(),
            start: self.start,
            proxy: self.proxy.clone(),
            gzip,
        }
    }
}

/// A placeholder answer (nothing allocated) for a moment's swap.
fn empty_response() -> Response {
    Response {
        status: 0,
        reason: Bytes::new(),
        headers: Vec::new(),
        body: crate::handler::ResponseBody::Empty,
        meta: crate::handler::ResponseMeta::default(),
    }
}
