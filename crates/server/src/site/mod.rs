//! The request router built on the [`portico_config::site::Site`] model:
//! pure functions and tables, no sockets and no Python. `select` chooses the
//! server and the location, `uri` normalises request targets as nginx does,
//! `vars` gives nginx variables their values; the request-phase engine
//! (rewrite, access, content) is built on these.

// Until the request engine calls into it, most of the router is unused.
#![allow(dead_code, unused_imports)]

mod captures;
mod lookup;
mod select;
mod uri;
mod vars;

pub use captures::Captures;
pub use select::{ConnAddr, Found, Selected, ServerTable, alias_prefix, find_location, find_named};
pub use uri::{NormalizedUri, UriError, normalize};
pub use vars::{ResponseFacts, VarContext, eval, eval_var, request_filename};
