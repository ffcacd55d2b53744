//! The request router built on the [`portico_config::site::Site`] model:
//! pure functions and tables, no sockets and no Python. `select` chooses the
//! server and the location, `uri` normalises request targets as nginx does,
//! `vars` gives nginx variables their values; the request-phase engine
//! (rewrite, access, content) is built on these: [`SiteHandler`] in
//! `engine.rs` runs nginx's phases (`phases.rs`, `content.rs`) over them.

// Until the request engine calls into it, most of the router is unused.
#![allow(dead_code, unused_imports)]

use bytes::Bytes;

mod access;
mod access_log;
mod answer;
mod autoindex;
mod captures;
mod content;
mod engine;
mod facts;
mod headers;
mod lookup;
mod pages;
mod phases;
mod proxy;
mod proxy_req;
mod rewrite;
mod select;
mod uri;
mod uwsgi_vars;
mod vars;

#[cfg(test)]
mod engine_tests;

pub(crate) use captures::Captures;
pub use engine::{
    LocationId, ProxyMap, SiteHandler, UpstreamMap, UwsgiLocationMap, proxy_locations,
    uwsgi_locations,
};
pub use pages::{error_response as nginx_error_response, reason as nginx_reason};
pub(crate) use select::{
    ConnAddr, Found, Selected, ServerTable, alias_prefix, find_location, find_named,
};
pub(crate) use uri::{NormalizedUri, UriError, normalize};
pub(crate) use vars::{ProxyFacts, ResponseFacts, VarContext, eval, eval_var, request_filename};

/// nginx's reason phrase and built-in page for a request refused before
/// it reached a site (a malformed head, a bad Host): what nginx sends.
pub(crate) fn refusal_page(status: u16) -> (&'static str, Bytes) {
    let style = pages::PageStyle {
        server_tokens: true,
        padding: false,
    };
    let response = pages::special_response(status, style, "text/html");
    let body = match response.body {
        crate::handler::ResponseBody::Full(bytes) => bytes,
        _ => Bytes::new(),
    };
    (pages::reason(response.status), body)
}
