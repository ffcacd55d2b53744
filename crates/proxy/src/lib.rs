//! Portico's upstream side: clients that forward a request to another
//! server and stream its answer back, each behind `portico_server::Handler`.
//!
//! Now: the uwsgi client ([`UwsgiUpstream`], nginx's `uwsgi_pass` to one
//! peer), its error type and nginx's error pages. Later, next to it: HTTP
//! upstreams (`proxy_pass`), `upstream {}` groups with nginx's balancers,
//! passive and active health, and connection pools.

pub mod error;
pub mod error_page;
mod io;
mod log;
mod pump;
pub mod target;
pub mod uwsgi;

pub use error::{ErrorKind, Phase, ProxyError, Side};
pub use error_page::{error_page_html, error_response, status_reason};
pub use target::{PeerAddr, PeerStream, TargetError};
pub use uwsgi::{UwsgiSettings, UwsgiUpstream};
