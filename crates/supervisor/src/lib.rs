//! The master process and what workers share with it.
//!
//! The master is single-threaded and never serves requests: it forks the
//! workers (after the listening sockets are bound and, unless lazy, the app
//! is loaded), then only supervises them through signals, a pipe on which
//! workers announce that they retire, and a shared-memory [`Scoreboard`]
//! that workers update with atomics. This crate knows nothing of Python:
//! the binary passes in how to fork and what a worker runs.

mod daemon;
mod master;
mod observe;
mod peer_slot;
mod pgo;
mod reload;
mod scoreboard;
mod signals;
mod worker;

pub use daemon::{
    daemonize, drop_privileges, limit_address_space, redirect_output, remove_file_quietly,
    resolve_gid, resolve_uid, write_pidfile,
};
pub use master::{
    Forked, MasterExit, MasterOptions, ReloadCheck, ReopenHook, WorkerContext, run_master,
};
pub use observe::{AppInfo, CLIENT_TIMEOUT, MAX_CLIENTS, SocketInfo, StatsServer};
pub use peer_slot::{MAX_PEERS, PEER_STATES, PeerRecord, PeerSlot};
pub use portico_server::procfs::{memory_bytes, rss_bytes};
pub use reload::{exec_self, take_inherited_fds};
pub use scoreboard::{CoreRequest, CoreSlot, LATENCY_BUCKETS_US, MAX_APPS, Scoreboard, WorkerSlot};
pub use worker::{WorkerLimits, WorkerRuntime};
