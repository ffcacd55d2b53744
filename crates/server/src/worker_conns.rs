//! The client connections of one worker against `worker_connections`:
//! counting them, knowing which are idle, and making room for a new one by
//! closing the oldest idle ones, as nginx does with its reusable
//! connections (`ngx_drain_connections`).
//!
//! A connection is *idle* (reusable, in nginx's word) while it waits for
//! the first byte of a request: a keep-alive connection between requests,
//! or a new one that has sent nothing yet. It enters the idle queue when it
//! starts waiting and leaves it when bytes arrive or it closes. When a new
//! connection finds every slot taken, the oldest idle connections (the
//! ones that went idle first) are told to close: a eighth of the idle ones,
//! at least one and at most [`DRAIN_AT_MOST`]. The new connection is
//! admitted at once; the closed ones give their slots back as soon as
//! their tasks run. Only when no connection is idle is the new one refused
//! (503 on HTTP). A connection with a request in hand (head partly read,
//! body, app, response) is never closed for this.
//!
//! The same queue wakes every idle connection when the server stops
//! ([`OpenConnections::close_idle`]): an idle connection waits on its read,
//! its timer and this queue only (no stop future of its own: it is in
//! every connection's task, see docs/design-notes.md §9).

use std::collections::BTreeMap;
use std::future::Future;
use std::num::NonZeroU64;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};

use crate::lazy_socket::LazySocket;
use crate::listener::{ListenerInfo, Wire};

/// Most idle connections closed for one new connection (nginx: 32).
pub(crate) const DRAIN_AT_MOST: usize = 32;

/// An accepted connection (registered with the event loop only once it
/// has to wait: `lazy_socket.rs`).
pub(crate) enum Connection {
    Tcp(LazySocket),
    Unix(LazySocket),
    /// Taken by the task that serves it.
    None,
}

impl Connection {
    pub(crate) fn socket(&self) -> Option<&LazySocket> {
        match self {
            Connection::Tcp(s) | Connection::Unix(s) => Some(s),
            Connection::None => None,
        }
    }
}

/// The connections of this process, against `worker_connections`.
pub(crate) struct OpenConnections {
    count: AtomicUsize,
    limit: usize,
    /// Refusing or draining now: logged once per episode.
    short: AtomicBool,
    idle: Mutex<IdleQueue>,
    /// Notified when the last connection closes.
    closed: tokio::sync::Notify,
    /// Where the count is published for sibling workers (`accept_board.rs`).
    published: OnceLock<&'static AtomicU64>,
}

/// The idle connections, oldest first: ticket (the order they went idle
/// in) to the waker of their task. A ticket missing from `waiting` was
/// drained (or never entered).
#[derive(Default)]
struct IdleQueue {
    /// The last ticket given.
    next: u64,
    /// The server stops: no connection stays idle any more.
    stopping: bool,
    waiting: BTreeMap<u64, Waker>,
}

/// An admitted connection: counted until its task ends.
pub(crate) struct Held {
    pub conn: Connection,
    open: Arc<OpenConnections>,
}

impl Drop for Held {
    fn drop(&mut self) {
        let was = self.open.count.fetch_sub(1, Ordering::SeqCst);
        self.open.publish(was.saturating_sub(1));
        if was == 1 {
            self.open.closed.notify_waiters();
        }
    }
}

/// What [`OpenConnections::admit`] decided.
enum Admission {
    Room,
    /// At the limit: these many idle connections were told to close.
    Drained(usize),
    Full,
}

impl OpenConnections {
    /// The connections of one worker, at most `limit` (0: no limit).
    pub(crate) fn new(limit: usize) -> Arc<OpenConnections> {
        Arc::new(OpenConnections {
            count: AtomicUsize::new(0),
            limit,
            short: AtomicBool::new(false),
            idle: Mutex::new(IdleQueue::default()),
            closed: tokio::sync::Notify::new(),
            published: OnceLock::new(),
        })
    }

    /// Keep `counter` equal to the count of open connections from now on
    /// (the worker's seat on the accept board).
    pub(crate) fn publish_to(&self, counter: &'static AtomicU64) {
        if self.published.set(counter).is_ok() {
            self.publish(self.count.load(Ordering::SeqCst));
        }
    }

    fn publish(&self, open: usize) {
        if let Some(counter) = self.published.get() {
            counter.store(open as u64, Ordering::Relaxed);
        }
    }

    /// Idle connections now.
    #[cfg(test)]
    pub(crate) fn idle(&self) -> usize {
        self.queue().waiting.len()
    }

    fn queue(&self) -> MutexGuard<'_, IdleQueue> {
        // A panic while holding the lock left a consistent map (every
        // change is one insert or remove): go on with it.
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Count `conn` in; at the limit, make room by closing the oldest idle
    /// connections, or refuse it (HTTP: a 503) when none is idle. Each
    /// episode is logged once.
    pub(crate) fn admit(
        self: &Arc<Self>,
        conn: Connection,
        listener: &ListenerInfo,
    ) -> Option<Held> {
        let admission = self.make_room();
        let held = Held {
            conn,
            open: self.clone(),
        };
        match admission {
            Admission::Room => {
                if self.short.swap(false, Ordering::Relaxed) {
                    crate::logln!("portico: accepting connections on {} again", listener.spec);
                }
                Some(held)
            }
            Admission::Drained(n) => {
                if !self.short.swap(true, Ordering::Relaxed) {
                    crate::logln!(
                        "portico: {} worker_connections are not enough, closing idle keep-alive \
                         connections (oldest first; {n} now; logged once until there is room)",
                        self.limit
                    );
                }
                Some(held)
            }
            Admission::Full => {
                if !self.short.swap(true, Ordering::Relaxed) {
                    crate::logln!(
                        "portico: {} worker_connections are not enough: none is idle, refusing \
                         new connections on {} until some close (logged once until then)",
                        self.limit,
                        listener.spec
                    );
                }
                refuse_connection(&held.conn, listener.wire);
                None
            }
        }
    }

    /// Take a slot for a new connection (counted in every case; the
    /// caller's [`Held`] gives it back).
    fn make_room(&self) -> Admission {
        let open = self.count.fetch_add(1, Ordering::SeqCst);
        self.publish(open + 1);
        if self.limit == 0 || open < self.limit {
            return Admission::Room;
        }
        let drained = self.drain();
        if drained == 0 {
            Admission::Full
        } else {
            Admission::Drained(drained)
        }
    }

    /// Resolves once no connection is open (for a graceful stop).
    pub(crate) async fn all_closed(&self) {
        loop {
            let closed = self.closed.notified();
            tokio::pin!(closed);
            closed.as_mut().enable();
            if self.count.load(Ordering::SeqCst) == 0 {
                return;
            }
            closed.await;
        }
    }

    /// The server stops: wake every idle connection (it sees the stop and
    /// closes) and let none wait idle from now on.
    pub(crate) fn close_idle(&self) {
        let mut queue = self.queue();
        queue.stopping = true;
        for (_, waker) in std::mem::take(&mut queue.waiting) {
            waker.wake();
        }
    }

    /// Tell the oldest idle connections to close: an eighth of them, at
    /// least one, at most [`DRAIN_AT_MOST`] (nginx's measure). Returns how
    /// many were told.
    fn drain(&self) -> usize {
        let mut queue = self.queue();
        let n = (queue.waiting.len() / 8).clamp(1, DRAIN_AT_MOST);
        let mut told = 0;
        while told < n {
            let Some((_, waker)) = queue.waiting.pop_first() else {
                break;
            };
            waker.wake();
            told += 1;
        }
        told
    }
}

/// Resolves when this connection, idle, was chosen to close to make room
/// for a new one (never, with no limit). Enters the idle queue when first
/// polled and leaves it when dropped: create it when the connection starts
/// waiting for a request, drop it when bytes arrive.
pub(crate) struct Reusable<'a> {
    open: &'a OpenConnections,
    /// Its place in the queue, once entered (tickets start at 1).
    ticket: Option<NonZeroU64>,
}

impl<'a> Reusable<'a> {
    pub(crate) fn new(open: &'a OpenConnections) -> Self {
        Reusable { open, ticket: None }
    }

    /// True if the connection was drained while it was idle (its slot is
    /// given away: close it even if a request has just arrived, as nginx).
    pub(crate) fn drained(&self) -> bool {
        self.ticket
            .is_some_and(|t| !self.open.queue().waiting.contains_key(&t.get()))
    }
}

impl Future for Reusable<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut queue = self.open.queue();
        match self.ticket {
            None if queue.stopping => Poll::Ready(()),
            None => {
                queue.next += 1;
                let ticket = queue.next;
                queue.waiting.insert(ticket, cx.waker().clone());
                drop(queue);
                self.ticket = NonZeroU64::new(ticket);
                Poll::Pending
            }
            Some(t) => match queue.waiting.get_mut(&t.get()) {
                Some(waker) => {
                    if !waker.will_wake(cx.waker()) {
                        waker.clone_from(cx.waker());
                    }
                    Poll::Pending
                }
                None => Poll::Ready(()),
            },
        }
    }
}

impl Drop for Reusable<'_> {
    fn drop(&mut self) {
        if let Some(t) = self.ticket {
            self.open.queue().waiting.remove(&t.get());
        }
    }
}

/// A stop signal that never turns (for test contexts).
#[cfg(test)]
pub(crate) fn never_stopping() -> tokio::sync::watch::Receiver<bool> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    std::mem::forget(tx);
    rx
}

/// Answer a connection over the limit without reading it, then close it:
/// an HTTP client gets a 503 (one non-blocking send; a full socket buffer
/// just means a plain close).
fn refuse_connection(conn: &Connection, wire: Wire) {
    const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n\
        Content-Length: 24\r\nConnection: close\r\n\r\n503 Service Unavailable\n";
    if wire != Wire::Http {
        return;
    }
    // Read what already came (the request, with TCP_DEFER_ACCEPT), so the
    // close is a FIN after the answer, not a reset that destroys it. Raw
    // calls: the runtime has not seen this socket ready yet.
    let Some(fd) = conn.socket().map(|s| s.as_raw_fd()) else {
        return;
    };
    let mut scratch = [0u8; 8192];
    for _ in 0..8 {
        // SAFETY: a non-blocking recv into our buffer on a socket we own.
        let n = unsafe {
            libc::recv(
                fd,
                scratch.as_mut_ptr().cast(),
                scratch.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n <= 0 {
            break;
        }
    }
    // SAFETY: a non-blocking send of a static buffer on a socket we own.
    unsafe {
        libc::send(
            fd,
            BUSY.as_ptr().cast(),
            BUSY.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Poll `r` once with a waker that counts its wakes.
    fn poll_counting(r: &mut Reusable<'_>, wakes: &Arc<WakeCount>) -> Poll<()> {
        let waker = Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        Pin::new(r).poll(&mut cx)
    }

    #[derive(Default)]
    struct WakeCount(AtomicUsize);

    impl std::task::Wake for WakeCount {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn fill(open: &Arc<OpenConnections>, n: usize) {
        for _ in 0..n {
            assert!(matches!(open.make_room(), Admission::Room));
        }
    }

    #[test]
    fn the_published_count_follows_open_and_closed_connections() {
        static COUNTER: AtomicU64 = AtomicU64::new(99);
        let open = OpenConnections::new(0);
        open.publish_to(&COUNTER);
        assert_eq!(COUNTER.load(Ordering::Relaxed), 0);
        let held: Vec<Held> = (0..3)
            .map(|_| Held {
                conn: Connection::None,
                open: {
                    assert!(matches!(open.make_room(), Admission::Room));
                    open.clone()
                },
            })
            .collect();
        assert_eq!(COUNTER.load(Ordering::Relaxed), 3);
        drop(held);
        assert_eq!(COUNTER.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn at_the_limit_the_oldest_idle_connection_is_told_to_close() {
        let open = OpenConnections::new(3);
        fill(&open, 3);
        let wakes: Vec<Arc<WakeCount>> = (0..3).map(|_| Arc::default()).collect();
        let mut idle: Vec<Reusable<'_>> = (0..3).map(|_| Reusable::new(&open)).collect();
        for (r, w) in idle.iter_mut().zip(&wakes) {
            assert!(poll_counting(r, w).is_pending());
        }
        assert_eq!(open.idle(), 3);
        assert!(matches!(open.make_room(), Admission::Drained(1)));
        assert_eq!(wakes[0].0.load(Ordering::SeqCst), 1, "the oldest is woken");
        assert_eq!(wakes[1].0.load(Ordering::SeqCst), 0);
        assert!(poll_counting(&mut idle[0], &wakes[0]).is_ready());
        assert!(idle[0].drained());
        assert!(poll_counting(&mut idle[1], &wakes[1]).is_pending());
        assert!(!idle[1].drained());
        assert_eq!(open.idle(), 2);
    }

    #[test]
    fn with_none_idle_a_connection_over_the_limit_is_refused() {
        let open = OpenConnections::new(2);
        fill(&open, 2);
        assert!(matches!(open.make_room(), Admission::Full));
        // a connection that stopped being idle is not drained
        let w = Arc::new(WakeCount::default());
        let mut r = Reusable::new(&open);
        assert!(poll_counting(&mut r, &w).is_pending());
        drop(r);
        assert_eq!(open.idle(), 0);
        assert!(matches!(open.make_room(), Admission::Full));
    }

    #[test]
    fn an_eighth_of_the_idle_connections_is_drained_at_most_32() {
        let open = OpenConnections::new(400);
        fill(&open, 400);
        let w = Arc::new(WakeCount::default());
        let mut idle: Vec<Reusable<'_>> = (0..400).map(|_| Reusable::new(&open)).collect();
        for r in &mut idle {
            assert!(poll_counting(r, &w).is_pending());
        }
        assert!(matches!(open.make_room(), Admission::Drained(32)));
        assert_eq!(open.idle(), 368);
        let drained: Vec<bool> = idle.iter().map(Reusable::drained).collect();
        assert!(drained[..32].iter().all(|d| *d), "the 32 oldest");
        assert!(drained[32..].iter().all(|d| !*d));
    }

    #[test]
    fn without_a_limit_none_is_drained() {
        let open = OpenConnections::new(0);
        let w = Arc::new(WakeCount::default());
        let mut r = Reusable::new(&open);
        assert!(poll_counting(&mut r, &w).is_pending());
        fill(&open, 10_000);
        assert!(!r.drained());
    }

    #[test]
    fn a_stop_wakes_every_idle_connection_and_keeps_new_ones_from_waiting() {
        let open = OpenConnections::new(0);
        let w = Arc::new(WakeCount::default());
        let mut idle: Vec<Reusable<'_>> = (0..3).map(|_| Reusable::new(&open)).collect();
        for r in &mut idle {
            assert!(poll_counting(r, &w).is_pending());
        }
        open.close_idle();
        assert_eq!(w.0.load(Ordering::SeqCst), 3);
        for r in &mut idle {
            assert!(poll_counting(r, &w).is_ready());
        }
        let mut late = Reusable::new(&open);
        assert!(poll_counting(&mut late, &w).is_ready());
    }
}
