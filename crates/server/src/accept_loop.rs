//! The accept loop of one listener in one worker: waits for the listener
//! on the event loop, takes a connection when the accept gate has room and
//! it is this worker's turn (`accept_board.rs`), rests while a sibling
//! keeps up (`accept_rest.rs`), and serves each new connection in place
//! (`serve::spawn_connection`). Moved out of serve.rs unchanged.

use std::io;
use std::sync::Arc;
use std::time::Instant;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::{mpsc, watch};

use crate::accept_between::Registered;
use crate::accept_board::rest::{AcceptLoop, PEEK};
use crate::accept_board::{DEFER_AT_MOST, Turn, Withdraw};
use crate::accept_errors::{ACCEPT_PAUSE, AcceptTrouble};
use crate::accept_socket::{
    accept_connection, has_pending_connection, is_per_connection_error, queued_connections,
};
use crate::conn::ConnContext;
use crate::listener::ListenSocket;
use crate::serve::spawn_connection;

/// How long a listener seen holding more than one connection counts as
/// crowded (the turn by accepts alone is not kept then: accept_board.rs).
const CROWDED_FOR_NS: u64 = 1_000_000;

/// Accept connections on one listener until the stop signal, each served
/// by its own task. With a gate (several workers share the listener), a
/// connection is taken only while the worker has Python capacity and it is
/// this worker's turn (`accept_board.rs`), and the loop lets each new
/// connection run its first request before it looks at the gate again, so
/// the work that request brings is counted. Without a gate, every pending
/// connection is taken at once.
pub(crate) async fn accept_loop(
    socket: ListenSocket,
    ctx: Arc<ConnContext>,
    turn: Option<Arc<Turn>>,
    mut stop: watch::Receiver<bool>,
    // held until the loop ends: a graceful stop waits for it
    _alive: mpsc::Sender<()>,
    // dropped when the loop first waits for a connection: the worker is ready
    listening: mpsc::Sender<()>,
) -> io::Result<()> {
    let mut listening = Some(listening);
    let fd = socket.as_raw_fd();
    let unix = matches!(socket, ListenSocket::Unix(_));
    let socket = socket2::Socket::from(std::os::fd::OwnedFd::from(socket));
    socket.set_nonblocking(true)?;
    // Watched through its descriptor (the loop owns the socket): a resting
    // worker takes it out of its epoll set and puts it back.
    let watch = || {
        // SAFETY: `socket` owns the descriptor and outlives every watch
        // (declared before it, dropped after it).
        unsafe { AsyncFd::register_with_interest(ListenFd(fd), Interest::READABLE) }
            .map_err(|e| io::Error::other(format!("cannot watch the listener: {e}")))
    };
    let mut listener = watch()?;
    let _withdraw = Withdraw(turn.clone());
    // Dropped before the listener (declared after it): connections take
    // from it between long requests only while it is open.
    let registered = Registered::new(fd, unix, ctx.clone(), turn.clone());
    let door = registered.door();
    let _counted = turn.as_ref().map(|_| AcceptLoop::enter());
    let mut trouble = AcceptTrouble::default();
    let mut draining = false;
    // When the listener was last seen holding more than one connection
    // (`crowded`, below): trusted for `CROWDED_FOR_NS` without asking the kernel again.
    // (An atomic only because the loop's future must be `Send`.)
    let crowded_at = std::sync::atomic::AtomicU64::new(0);
    loop {
        if let Some(gate) = &ctx.gate {
            if !gate.has_room()
                && let Some(t) = &turn
            {
                t.set_idle(false);
            }
            let pending = || has_pending_connection(fd);
            let room = tokio::select! {
                room = gate.wait_for_room(&pending) => room,
                _ = stop.changed() => false,
            };
            if !room {
                return Ok(());
            }
        }
        if let Some(t) = &turn {
            if !draining && t.rest(|| queued_connections(fd)) {
                // A sibling keeps up: stop being woken by every arrival
                // (accept_rest.rs) and look again every PEEK.
                drop(listener);
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(PEEK) => {}
                        _ = stop.changed() => return Ok(()),
                    }
                    if !t.rest(|| queued_connections(fd)) {
                        break;
                    }
                }
                t.end_rest();
                listener = watch()?;
                // Connections that came meanwhile raised no readiness
                // this registration saw: take what is queued first.
                draining = true;
            }
            t.set_idle(true);
        }
        // After a wait that cleared the readiness, the queue is emptied
        // without waiting for it (connections may be there, with no new
        // one coming to wake the loop).
        listening.take();
        let mut ready = if draining {
            None
        } else {
            tokio::select! {
                ready = listener.readable() => Some(ready?),
                _ = stop.changed() => return Ok(()),
            }
        };
        // Under load the queue stays crowded: one `TCP_INFO` read per
        // `CROWDED_FOR_NS` instead of one per accept (behind nginx it was 0.77
        // `getsockopt` per request; design-notes §2, fifth pass, uwsgi5).
        let crowded = || {
            let now = crate::accept_board::monotonic_ns();
            let at = crowded_at.load(std::sync::atomic::Ordering::Relaxed);
            if at != 0 && now.saturating_sub(at) < CROWDED_FOR_NS {
                return true;
            }
            let crowded = queued_connections(fd).is_some_and(|n| n > 1);
            let at = if crowded { now.max(1) } else { 0 };
            crowded_at.store(at, std::sync::atomic::Ordering::Relaxed);
            crowded
        };
        if let Some(t) = &turn
            && t.should_defer(crowded)
        {
            // A sibling behind this worker (idle with fewer connections
            // open, or as many and fewer accepted; or busy for a moment
            // with fewer open, as when the scheduler preempted it just
            // after an accept) was woken too or will be back soon: leave
            // the connection to it for a moment, then take it if it is
            // still there. Every connection that arrives meanwhile wakes this
            // loop to look again, so it takes its turn as soon as the
            // sibling has caught up, not after the whole wait (in a burst
            // the sibling would take everything meanwhile).
            // The wait is counted from the connection's first sighting,
            // between requests (accept_between.rs) or here.
            let now = Instant::now();
            let left = now.duration_since(door.left_since(now));
            let until = tokio::time::Instant::now() + DEFER_AT_MOST.saturating_sub(left);
            loop {
                if let Some(ready) = ready.as_mut() {
                    ready.clear_ready();
                }
                tokio::select! {
                    again = listener.readable() => ready = Some(again?),
                    _ = tokio::time::sleep_until(until) => {
                        // Connections may be queued with the readiness
                        // cleared: accept until the queue is empty.
                        draining = true;
                        break;
                    }
                    _ = stop.changed() => return Ok(()),
                }
                if !t.should_defer(crowded) {
                    break;
                }
            }
        }
        match accept_connection(fd, unix) {
            Ok((conn, peer)) => {
                if let Some(line) = trouble.succeeded(&ctx.listener.spec, Instant::now()) {
                    crate::logln!("{line}");
                }
                door.clear_left();
                if let Some(t) = &turn {
                    t.accepted();
                }
                let Some(held) = ctx.open.admit(conn, &ctx.listener) else {
                    continue;
                };
                spawn_connection(held, peer, &ctx);
                if let Some(gate) = &ctx.gate {
                    // The new connection's first request (already there,
                    // with TCP_DEFER_ACCEPT) reaches the app or is queued
                    // for it before this loop looks at the gate again.
                    gate.settled().await;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                draining = false;
                door.clear_left();
                if let Some(ready) = ready.as_mut() {
                    ready.clear_ready();
                }
            }
            Err(e) if is_per_connection_error(&e) => {}
            Err(e) => {
                if let Some(line) = trouble.failed(&ctx.listener.spec, &e, Instant::now()) {
                    crate::logln!("{line}");
                }
                tokio::time::sleep(ACCEPT_PAUSE).await;
            }
        }
    }
}

/// A listener's descriptor as the event loop watches it: owned by the
/// accept loop's socket, so dropping the watch (a resting worker) leaves
/// it open.
struct ListenFd(std::os::fd::RawFd);

impl std::os::fd::AsRawFd for ListenFd {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0
    }
}
