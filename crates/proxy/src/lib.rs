//! Portico's upstream side: clients that forward a request to another
//! server and stream its answer back, each behind `portico_server::Handler`.
//!
//! Now: the uwsgi client ([`UwsgiUpstream`], nginx's `uwsgi_pass` to one
//! peer); the HTTP client with keep-alive pools (`http/`) and `proxy_pass`
//! with nginx's retries ([`HttpProxy`], the server's `ProxyUpstream`);
//! nginx's balancers over `upstream {}` groups with passive health
//! ([`balance`]); their error type and nginx's error pages; what an
//! upstream block does in the background (active health checks,
//! re-resolving names: [`background`]).

pub mod background;
pub mod balance;
pub mod dynamic;
pub mod error;
pub mod error_page;
pub mod http;
mod io;
mod log;
pub mod proxy;
mod pump;
mod retry;
mod spool;
pub mod target;
pub mod uwsgi;

pub use background::GroupSlot;
pub use balance::{
    Attempt, GroupError, Outcome, PeerState, PeerStats, PickInput, Picked, Released, UpstreamGroup,
};
pub use dynamic::DynamicProxy;
pub use error::{ErrorKind, Phase, ProxyError, Side};
pub use error_page::{error_response, status_reason};
pub use http::{ConnPool, HeaderFilter, PoolSettings};
pub use proxy::{HttpProxy, upstream_pool};
pub use target::{PeerAddr, PeerStream, TargetError};
pub use uwsgi::{UwsgiSettings, UwsgiUpstream};
