//! A worker's runtime: listeners, HTTP/1.1 connections, the [`Handler`]
//! trait that WSGI apps (and later static files and proxies) implement, and
//! the access log.
//!
//! This crate knows nothing about Python. A connection parses a request head
//! with `portico-proto`, hands a [`Request`] to the handler, streams the
//! request body to it on demand, and writes the [`Response`] it gets back.

#![warn(missing_docs)]

mod accept_errors;
mod body;
mod body_stream;
mod conn;
mod date;
mod gate;
mod h2;
mod handler;
mod handoff;
mod hooks;
mod listener;
mod log;
pub mod request_view;
mod serve;
mod site;
mod statics;
pub mod tls;
mod upstream;
mod uwsgi_conn;
mod write;

pub use body::{BodyError, RequestBody, TryNext};
pub use body_stream::{BodyStream, PullBody};
pub use handler::{
    Handler, HandlerFuture, KeepAlive, NotFound, Request, RequestSource, Response, ResponseBody,
    ResponseMeta, StreamItem,
};
pub use handoff::{Handoff, ReplyFuture, ReplySender};
pub use hooks::{CoreTracker, RequestRecord, WorkerHooks};
pub use listener::{
    BoundListener, ListenAddress, ListenSocket, ListenerInfo, ListenerSpec, Wire, bind_tcp,
    bind_unix, try_bind_tcp,
};
pub use log::{AccessLog, LogConfig, LogFormat, set_log_date, write_log_line};
pub use portico_proto::http1::{Header, RequestHead, Version};
pub use portico_proto::uwsgi::UwsgiPacket;
pub use serve::{BackgroundTask, ServeOptions, StopReason, serve};
pub use site::{
    LocationId, ProxyMap, SiteHandler, UpstreamMap, UwsgiLocationMap, proxy_locations,
    uwsgi_locations,
};
pub use statics::{StaticConfig, StaticMap, WithStatic, mime_type};
pub use upstream::{ProxyCall, ProxyFuture, ProxyOutcome, ProxyUpstream};
