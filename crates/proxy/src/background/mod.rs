//! What an `upstream {}` block does in the background of a worker, beside
//! the requests: active health checks (`health_check`, [`check`]) and
//! re-resolving `server NAME resolve` lines ([`reresolve`]). Both run as
//! tasks on the worker's runtime (the caller hands them to
//! `portico_server::ServeOptions::background`, which spawns them before
//! the first accept, so the first round of checks is under way when
//! requests start), and both work on a [`GroupSlot`]: the group every
//! location of the block uses, which re-resolution replaces whole.

pub mod check;
pub mod reresolve;

use std::sync::{Arc, RwLock};

use crate::balance::UpstreamGroup;

/// The current group of an `upstream {}` block in this worker: requests
/// take it at their start (an attempt keeps the group it started on);
/// re-resolution swaps in a rebuilt one.
#[derive(Debug)]
pub struct GroupSlot {
    current: RwLock<Arc<UpstreamGroup>>,
}

impl GroupSlot {
    pub fn new(group: Arc<UpstreamGroup>) -> GroupSlot {
        GroupSlot {
            current: RwLock::new(group),
        }
    }

    /// The group now.
    pub fn current(&self) -> Arc<UpstreamGroup> {
        // A panic elsewhere cannot leave the slot unusable.
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Put `group` in place of the current one.
    pub fn replace(&self, group: Arc<UpstreamGroup>) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = group;
    }
}
