//! Portico's upstream side: clients that forward a request to another
//! server and stream its answer back, each behind `portico_server::Handler`.
//!
//! Now: the uwsgi client ([`UwsgiUpstream`], nginx's `uwsgi_pass` to one
//! peer), its error type, nginx's error pages, and nginx's balancers over
//! `upstream {}` groups with passive health ([`balance`]). Later, next to
//! it: HTTP upstreams (`proxy_pass`), active health, connection pools.

pub mod balance;
pub mod error;
pub mod error_page;
pub mod target;
pub mod uwsgi;

pub use balance::{
    Attempt, GroupError, Outcome, PeerState, PeerStats, PickInput, Picked, Released, UpstreamGroup,
};
pub use error::{ErrorKind, Phase, ProxyError, Side};
pub use error_page::{error_page_html, error_response, status_reason};
pub use target::{PeerAddr, PeerStream, TargetError};
pub use uwsgi::{UwsgiSettings, UwsgiUpstream};
