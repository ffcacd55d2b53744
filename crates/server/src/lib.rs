//! A worker's runtime: listeners, HTTP/1.1 connections, the [`Handler`]
//! trait that WSGI apps (and later static files and proxies) implement, and
//! the access log.
//!
//! This crate knows nothing about Python. A connection parses a request head
//! with `portico-proto`, hands a [`Request`] to the handler, streams the
//! request body to it on demand, and writes the [`Response`] it gets back.

#![warn(missing_docs)]

mod accept_between;
mod accept_board;
mod accept_errors;
mod accept_loop;
mod accept_socket;
mod body;
mod body_spool;
mod body_stream;
pub mod clock;
pub mod compress;
mod conn;
pub mod date;
mod exchange;
mod gate;
mod h2;
mod handler;
mod handoff;
mod hooks;
mod idle_class;
mod in_box;
mod in_place;
pub mod json;
mod lazy_socket;
mod listener;
mod log;
pub mod panic_guard;
pub mod procfs;
mod read_spare;
mod receive;
pub mod reopen_signal;
pub mod request_view;
mod reused_box;
mod serve;
mod site;
mod statics;
pub mod test_hooks;
mod timeouts;
pub mod tls;
mod upstream;
mod uwsgi_conn;
mod worker_conns;
mod write;

pub use body::{BodyError, BodySender, DEFAULT_BODY_TIMEOUT, RequestBody, TryNext};
pub use body_spool::{BodySpool, DEFAULT_BODY_MEMORY, SpoolConfig};
pub use body_stream::{BodyStream, PullBody};
pub use handler::{
    Handler, HandlerFuture, KeepAlive, NotFound, Request, RequestSource, Response, ResponseBody,
    ResponseMeta, StreamItem,
};
pub use handoff::{Handoff, ReplyFuture, ReplySender};
pub use hooks::{CoreTracker, RequestRecord, WorkerHooks};
pub use in_box::pin_in_box;
pub use in_place::InPlaceCall;
pub use listener::{
    BoundListener, ListenAddress, ListenSocket, ListenerInfo, ListenerSpec, Wire, bind_tcp,
    bind_unix, try_bind_tcp,
};
pub use log::{AccessLog, LogConfig, LogFormat, set_log_date, write_log_line};
/// The diagnostic-line macros (over `tracing`), re-exported so that
/// `portico_server::logln!` keeps working.
pub use portico_log::{log_debug, log_error, log_warn, logln};
pub use portico_proto::http1::{Header, Headers, RequestHead, Version};
pub use portico_proto::uwsgi::UwsgiPacket;
pub use reused_box::ReusedBox;
pub use serve::{BackgroundTask, ServeOptions, StopReason, serve};
pub use site::{
    LocationId, ProxyMap, SiteHandler, UpstreamMap, UwsgiLocationMap, nginx_error_response,
    nginx_reason, proxy_locations, uwsgi_locations,
};
pub use statics::{StaticConfig, StaticMap, WithStatic, mime_type};
pub use timeouts::{
    DEFAULT_HEADER_TIMEOUT, DEFAULT_KEEPALIVE_TIMEOUT, DEFAULT_SEND_TIMEOUT,
    DEFAULT_SOCKET_TIMEOUT, Timeouts,
};
pub use upstream::{ProxyCall, ProxyFuture, ProxyOutcome, ProxyUpstream, UpstreamTries};
