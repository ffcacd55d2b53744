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
//! ([`OpenConnections::close_idle`]) and when its idle timeout passes (one
//! timer per worker, [`sweep`], as nginx's timer tree): an idle connection
//! waits on its read and this queue only (no stop future or timer of its
//! own: they would be in every connection's task, docs/design-notes.md §9).

use std::future::Future;
use std::num::NonZeroU64;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::time::Instant;

use crate::idle_class::IdleClass;
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
    /// Tells the sweeper an idle deadline earlier than its own came.
    rearm: tokio::sync::Notify,
    /// Itself, for spawning the sweeper.
    me: Weak<OpenConnections>,
    /// Tickets count milliseconds from here.
    base: Instant,
    /// Where the count is published for sibling workers (`accept_board.rs`).
    published: OnceLock<&'static AtomicU64>,
}

/// The idle connections, oldest first, by idle timeout: ticket (the order
/// they went idle in, with the millisecond they did in its high bits) to
/// the waker of their task. A ticket missing from its class was drained,
/// timed out (or never entered).
#[derive(Default)]
struct IdleQueue {
    /// The last ticket given.
    next: u64,
    /// The server stops: no connection stays idle any more.
    stopping: bool,
    /// One per idle timeout in use (a few: `client_header_timeout`,
    /// `keepalive_timeout`s), never removed (a connection keeps its
    /// class's index): within one, tickets and deadlines are in the same
    /// order, so each class's first entry is its next to time out.
    classes: Vec<(u64, IdleClass)>,
    /// The sweeper runs.
    sweeping: bool,
    /// When the sweeper wakes next (ms from `base`).
    armed: u64,
}

/// A ticket's low bits: the order within one millisecond.
const TICKET_SEQ_BITS: u32 = 16;

impl IdleQueue {
    fn len(&self) -> usize {
        self.classes.iter().map(|(_, c)| c.len()).sum()
    }

    fn class(&mut self, place: Place) -> Option<&mut IdleClass> {
        self.classes.get_mut(place.class()).map(|(_, c)| c)
    }

    /// The oldest idle connection, out of the queue.
    fn pop_oldest(&mut self) -> Option<Waker> {
        let class = self
            .classes
            .iter_mut()
            .filter_map(|(_, c)| c.first().zip(Some(c)))
            .min_by_key(|(t, _)| *t)?
            .1;
        class.pop_first().map(|(_, w)| w)
    }

    /// Wake (and take out) every connection whose deadline is `now_ms` or
    /// earlier; the earliest deadline left.
    fn expire(&mut self, now_ms: u64) -> Option<u64> {
        let mut earliest: Option<u64> = None;
        for (timeout_ms, class) in &mut self.classes {
            while let Some(ticket) = class.first() {
                let deadline = (ticket >> TICKET_SEQ_BITS).saturating_add(*timeout_ms);
                if deadline > now_ms {
                    earliest = Some(earliest.map_or(deadline, |e| e.min(deadline)));
                    break;
                }
                if let Some((_, waker)) = class.pop_first() {
                    waker.wake();
                }
            }
        }
        earliest
    }
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
        Arc::new_cyclic(|me| OpenConnections {
            count: AtomicUsize::new(0),
            limit,
            short: AtomicBool::new(false),
            idle: Mutex::new(IdleQueue::default()),
            closed: tokio::sync::Notify::new(),
            rearm: tokio::sync::Notify::new(),
            me: me.clone(),
            base: Instant::now(),
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
        self.queue().len()
    }

    fn queue(&self) -> MutexGuard<'_, IdleQueue> {
        // A panic while holding the lock left a consistent map (every
        // change is one insert or remove): go on with it.
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(crate::clock::since(self.base.into_std()).as_millis())
            .unwrap_or(u64::MAX >> TICKET_SEQ_BITS)
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
        for (_, class) in &mut queue.classes {
            class.take_all().for_each(Waker::wake);
        }
        drop(queue);
        self.rearm.notify_one();
    }

    /// Tell the oldest idle connections to close: an eighth of them, at
    /// least one, at most [`DRAIN_AT_MOST`] (nginx's measure). Returns how
    /// many were told.
    fn drain(&self) -> usize {
        let mut queue = self.queue();
        let n = (queue.len() / 8).clamp(1, DRAIN_AT_MOST);
        let mut told = 0;
        while told < n {
            let Some(waker) = queue.pop_oldest() else {
                break;
            };
            waker.wake();
            told += 1;
        }
        told
    }

    /// Enter the idle queue with `timeout`: the place, or `None` when the
    /// server stops. Starts the sweeper if none runs (on the runtime).
    fn enter(&self, timeout: Duration, waker: &Waker) -> Option<Place> {
        let now_ms = self.now_ms();
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let mut queue = self.queue();
        if queue.stopping {
            return None;
        }
        let ticket = (queue.next + 1).max(now_ms << TICKET_SEQ_BITS);
        queue.next = ticket;
        let class = match queue.classes.iter().position(|(t, _)| *t == timeout_ms) {
            Some(i) => i,
            None => {
                queue.classes.push((timeout_ms, IdleClass::default()));
                queue.classes.len() - 1
            }
        };
        let seq = queue.classes[class].1.push(ticket, waker.clone());
        let Some(place) = Place::new(class, seq) else {
            queue.classes[class].1.remove(seq);
            return None;
        };
        let deadline = (ticket >> TICKET_SEQ_BITS).saturating_add(timeout_ms);
        if !queue.sweeping {
            // (No runtime: a unit test of the queue alone.)
            if let (Some(me), Ok(runtime)) =
                (self.me.upgrade(), tokio::runtime::Handle::try_current())
            {
                queue.sweeping = true;
                queue.armed = deadline;
                runtime.spawn(sweep(me));
            }
        } else if deadline < queue.armed {
            queue.armed = deadline;
            drop(queue);
            self.rearm.notify_one();
        }
        Some(place)
    }
}

/// Where an idle connection waits, in 8 bytes (it is in every idle
/// connection's future): its class's index in the top 16 bits, its
/// entry's sequence number there (`IdleClass::push`, never 0) below.
#[derive(Clone, Copy)]
struct Place(NonZeroU64);

const PLACE_SEQ_BITS: u32 = 48;

impl Place {
    /// `None` past 65,535 classes or 2^48 idle periods of one class (a
    /// connection then closes instead of waiting: neither happens).
    fn new(class: usize, seq: u64) -> Option<Place> {
        let class = u64::try_from(class).ok().filter(|c| *c < 1 << 16)?;
        let seq = Some(seq).filter(|s| *s < 1 << PLACE_SEQ_BITS)?;
        NonZeroU64::new(class << PLACE_SEQ_BITS | seq).map(Place)
    }

    fn class(self) -> usize {
        (self.0.get() >> PLACE_SEQ_BITS) as usize
    }

    fn seq(self) -> u64 {
        self.0.get() & ((1 << PLACE_SEQ_BITS) - 1)
    }
}

/// The worker's idle timer: closes the idle connections whose timeout has
/// passed (as nginx's timer tree does), so that an idle connection's task
/// holds no timer of its own (docs/design-notes.md §9). Runs while any
/// connection is idle; [`OpenConnections::enter`] starts it again.
async fn sweep(open: Arc<OpenConnections>) {
    loop {
        let rearmed = open.rearm.notified();
        tokio::pin!(rearmed);
        rearmed.as_mut().enable();
        let next = {
            let now_ms = open.now_ms();
            let mut queue = open.queue();
            match queue.expire(now_ms) {
                Some(next) => {
                    queue.armed = next;
                    next
                }
                None => {
                    queue.sweeping = false;
                    return;
                }
            }
        };
        // (u64::MAX ms at most: 584 million years, within the clock's range.)
        let at = open.base + Duration::from_millis(next);
        tokio::select! {
            _ = tokio::time::sleep_until(at) => {}
            _ = rearmed => {}
        }
    }
}

/// Resolves when this connection, idle, must close: its idle timeout
/// passed, its slot was needed for a new connection, or the server stops.
/// Enters the idle queue when made and leaves it when dropped: make it when
/// the connection starts waiting for a request, drop it when bytes arrive.
pub(crate) struct Reusable<'a> {
    open: &'a OpenConnections,
    /// Its place in the queue (`None`: the server stops).
    place: Option<Place>,
}

impl<'a> Reusable<'a> {
    /// Idle from now, for at most `timeout`. (Must be made on the runtime:
    /// it may start the worker's idle timer.)
    pub(crate) fn enter(open: &'a OpenConnections, timeout: Duration) -> Self {
        let place = open.enter(timeout, Waker::noop());
        Reusable { open, place }
    }

    /// True if the connection is out of the queue: timed out or drained
    /// while it was idle (drained: its slot is given away, close it even if
    /// a request has just arrived, as nginx).
    pub(crate) fn drained(&self) -> bool {
        self.place
            .is_none_or(|p| !(self.open.queue().class(p)).is_some_and(|c| c.contains(p.seq())))
    }
}

impl Future for Reusable<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let Some(place) = self.place else {
            return Poll::Ready(());
        };
        let mut queue = self.open.queue();
        match queue.class(place).and_then(|c| c.waker_mut(place.seq())) {
            Some(waker) => {
                if !waker.will_wake(cx.waker()) {
                    waker.clone_from(cx.waker());
                }
                Poll::Pending
            }
            None => Poll::Ready(()),
        }
    }
}

impl Drop for Reusable<'_> {
    fn drop(&mut self) {
        if let Some(place) = self.place
            && let Some(class) = self.open.queue().class(place)
        {
            class.remove(place.seq());
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
#[path = "worker_conns_tests.rs"]
mod tests;
