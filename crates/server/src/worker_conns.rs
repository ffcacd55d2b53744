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

use std::collections::VecDeque;
use std::future::Future;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::time::Instant;

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

/// The idle connections, oldest first, by idle timeout. Each idle
/// connection owns a slot (its waker, and its ticket: the order it went
/// idle in, with the millisecond it did in its high bits) from entering to
/// leaving; each timeout class lists tickets in order in a `VecDeque`.
/// Leaving only empties the slot: the class's entry is dropped when the
/// drain or the timer reaches it (lazy removal, as cheap as nginx's queue
/// unlink; a `BTreeMap` insert and remove cost 535 instructions a
/// keep-alive request). A connection out of the queue (drained, timed out,
/// stop) keeps its slot with no waker until it leaves.
#[derive(Default)]
struct IdleQueue {
    /// The last ticket given.
    next: u64,
    /// The server stops: no connection stays idle any more.
    stopping: bool,
    /// One per idle timeout in use (a few: `client_header_timeout`,
    /// `keepalive_timeout`s): within one, tickets and deadlines are in the
    /// same order, so each class's first live entry is its next to time out.
    classes: Vec<IdleClass>,
    /// Every connection between entering and leaving owns one.
    slots: Vec<IdleSlot>,
    /// Slots no connection owns.
    free: Vec<u32>,
    /// Connections in the queue (a slot with a waker).
    idle: usize,
    /// The sweeper runs.
    sweeping: bool,
    /// When the sweeper wakes next (ms from `base`).
    armed: u64,
}

struct IdleClass {
    timeout_ms: u64,
    /// (ticket, slot), oldest first; an entry whose slot no longer holds
    /// its ticket with a waker is stale and skipped.
    waiting: VecDeque<(u64, u32)>,
}

#[derive(Default)]
struct IdleSlot {
    /// The owner's ticket (0: free).
    ticket: u64,
    /// Its task, while it is in the queue.
    waker: Option<Waker>,
}

/// A ticket's low bits: the order within one millisecond.
const TICKET_SEQ_BITS: u32 = 16;

impl IdleQueue {
    fn len(&self) -> usize {
        self.idle
    }

    /// The connection in `slot` is in the queue (not drained, timed out
    /// or stopped).
    fn contains(&self, slot: u32) -> bool {
        self.slots
            .get(slot as usize)
            .is_some_and(|s| s.waker.is_some())
    }

    /// `entry` still stands for a connection in the queue.
    fn live(&self, (ticket, slot): (u64, u32)) -> bool {
        self.slots
            .get(slot as usize)
            .is_some_and(|s| s.ticket == ticket && s.waker.is_some())
    }

    /// Take the waker of `slot` (out of the queue); its owner still owns it.
    fn take(&mut self, slot: u32) -> Option<Waker> {
        let waker = self.slots.get_mut(slot as usize)?.waker.take();
        if waker.is_some() {
            self.idle -= 1;
        }
        waker
    }

    /// The owner of `slot` leaves (its entry goes stale).
    fn release(&mut self, slot: u32) {
        drop(self.take(slot));
        if let Some(s) = self.slots.get_mut(slot as usize) {
            s.ticket = 0;
            self.free.push(slot);
        }
    }

    /// Drop the stale entries at the front of each class.
    fn skip_stale(&mut self) {
        for i in 0..self.classes.len() {
            while let Some(&front) = self.classes[i].waiting.front() {
                if self.live(front) {
                    break;
                }
                self.classes[i].waiting.pop_front();
            }
        }
    }

    /// The oldest idle connection, out of the queue.
    fn pop_oldest(&mut self) -> Option<Waker> {
        self.skip_stale();
        let class = self
            .classes
            .iter_mut()
            .filter_map(|c| c.waiting.front().map(|(t, _)| *t).zip(Some(c)))
            .min_by_key(|(t, _)| *t)?
            .1;
        let (_, slot) = class.waiting.pop_front()?;
        self.take(slot)
    }

    /// Wake (and take out) every connection whose deadline is `now_ms` or
    /// earlier; the earliest deadline left.
    fn expire(&mut self, now_ms: u64) -> Option<u64> {
        let mut earliest: Option<u64> = None;
        for i in 0..self.classes.len() {
            let timeout_ms = self.classes[i].timeout_ms;
            while let Some(&(ticket, slot)) = self.classes[i].waiting.front() {
                if !self.live((ticket, slot)) {
                    self.classes[i].waiting.pop_front();
                    continue;
                }
                let deadline = (ticket >> TICKET_SEQ_BITS).saturating_add(timeout_ms);
                if deadline > now_ms {
                    earliest = Some(earliest.map_or(deadline, |e| e.min(deadline)));
                    break;
                }
                self.classes[i].waiting.pop_front();
                if let Some(waker) = self.take(slot) {
                    waker.wake();
                }
            }
        }
        earliest
    }

    /// Put `ticket` in the queue with `waker`, in class `class`: its slot.
    fn insert(&mut self, class: usize, ticket: u64, waker: Waker) -> u32 {
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.slots.push(IdleSlot::default());
                // (Never 2^32 connections at once in one worker.)
                u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
            }
        };
        if let Some(s) = self.slots.get_mut(slot as usize) {
            s.ticket = ticket;
            s.waker = Some(waker);
        }
        self.idle += 1;
        self.classes[class].waiting.push_back((ticket, slot));
        // Stale entries are bounded: a class holding more than twice the
        // idle connections is swept of them (amortised: at least as many
        // entries went in since the last sweep as it removes).
        if self.classes[class].waiting.len() > 2 * self.idle + 64 {
            let mut waiting = std::mem::take(&mut self.classes[class].waiting);
            waiting.retain(|e| self.live(*e));
            self.classes[class].waiting = waiting;
        }
        slot
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
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX >> TICKET_SEQ_BITS)
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
        for class in &mut queue.classes {
            class.waiting.clear();
        }
        queue.idle = 0;
        let wakers: Vec<Waker> = queue
            .slots
            .iter_mut()
            .filter_map(|s| s.waker.take())
            .collect();
        drop(queue);
        for waker in wakers {
            waker.wake();
        }
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

    /// Enter the idle queue with `timeout`: the slot, or `None` when the
    /// server stops. Starts the sweeper if none runs (on the runtime).
    fn enter(&self, timeout: Duration, waker: &Waker) -> Option<u32> {
        let now_ms = self.now_ms();
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let mut queue = self.queue();
        if queue.stopping {
            return None;
        }
        let ticket = (queue.next + 1).max(now_ms << TICKET_SEQ_BITS);
        queue.next = ticket;
        let class = match queue
            .classes
            .iter()
            .position(|c| c.timeout_ms == timeout_ms)
        {
            Some(i) => i,
            None => {
                queue.classes.push(IdleClass {
                    timeout_ms,
                    waiting: VecDeque::new(),
                });
                queue.classes.len() - 1
            }
        };
        let slot = queue.insert(class, ticket, waker.clone());
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
        Some(slot)
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
    /// Its slot in the queue (`None`: the server stops).
    slot: Option<u32>,
}

impl<'a> Reusable<'a> {
    /// Idle from now, for at most `timeout`. (Must be made on the runtime:
    /// it may start the worker's idle timer.)
    pub(crate) fn enter(open: &'a OpenConnections, timeout: Duration) -> Self {
        let slot = open.enter(timeout, Waker::noop());
        Reusable { open, slot }
    }

    /// True if the connection is out of the queue: timed out or drained
    /// while it was idle (drained: its slot is given away, close it even if
    /// a request has just arrived, as nginx).
    pub(crate) fn drained(&self) -> bool {
        self.slot.is_none_or(|s| !self.open.queue().contains(s))
    }
}

impl Future for Reusable<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let Some(slot) = self.slot else {
            return Poll::Ready(());
        };
        let mut queue = self.open.queue();
        match queue
            .slots
            .get_mut(slot as usize)
            .and_then(|s| s.waker.as_mut())
        {
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
        if let Some(slot) = self.slot {
            self.open.queue().release(slot);
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
