//! Portico's upstream side: clients that forward a request to another
//! server and stream its answer back, each behind `portico_server::Handler`.
//!
//! Now: the uwsgi client ([`UwsgiUpstream`], nginx's `uwsgi_pass` to one
//! peer); the HTTP client with keep-alive pools (`http/`) and `proxy_pass`
//! with nginx's retries ([`HttpProxy`], the server's `ProxyUpstream`); their
//! error type and nginx's error pages. Next to it: `upstream {}` groups with
//! nginx's balancers, passive and active health.

pub mod error;
pub mod error_page;
pub mod http;
mod io;
mod log;
mod peers_shim;
pub mod proxy;
mod pump;
pub mod target;
pub mod uwsgi;

pub use error::{ErrorKind, Phase, ProxyError, Side};
pub use error_page::{error_page_html, error_response, status_reason};
pub use http::{ConnPool, HeaderFilter, PoolSettings};
pub use peers_shim::UpstreamGroup;
pub use proxy::{HttpProxy, upstream_pool};
pub use target::{PeerAddr, PeerStream, TargetError};
pub use uwsgi::{UwsgiSettings, UwsgiUpstream};
