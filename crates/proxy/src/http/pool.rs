//! The keep-alive pool of idle upstream connections (nginx's `keepalive N`
//! in an `upstream {}` block): per worker (each worker process has its own
//! runtime and its own pools), an LRU cache of at most N idle connections
//! over all the group's peers, not a cap on open connections.
//!
//! A connection comes back only after a response that was read to its end
//! cleanly and allows keep-alive (the caller decides; see `http/mod.rs`). It
//! is dropped instead once it served `keepalive_requests` requests or lived
//! `keepalive_time`; an idle one is dropped after `keepalive_timeout`, or
//! when the peer closed it or sent something unasked (checked when taken).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::target::{PeerAddr, PeerStream};

/// nginx 1.29.7+'s implicit `keepalive 32` for an explicit upstream.
pub const DEFAULT_KEEPALIVE: usize = 32;
/// `keepalive_timeout` of an upstream block: 60s.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// `keepalive_requests` of an upstream block: 1000.
pub const DEFAULT_MAX_REQUESTS: u64 = 1000;
/// `keepalive_time` of an upstream block: 1h.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(3600);

/// How a pool keeps connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSettings {
    /// Idle connections kept (`keepalive N`); 0 keeps none.
    pub max_idle: usize,
    pub idle_timeout: Duration,
    pub max_requests: u64,
    pub max_age: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            max_idle: DEFAULT_KEEPALIVE,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_requests: DEFAULT_MAX_REQUESTS,
            max_age: DEFAULT_MAX_AGE,
        }
    }
}

/// A connection with its history.
#[derive(Debug)]
pub struct PooledConn {
    pub stream: PeerStream,
    /// Requests it carried so far.
    pub requests: u64,
    pub born: Instant,
    /// The buffer its last response head was read into, kept for the next
    /// one (empty, or its allocation shared until that response is sent;
    /// reused then instead of a new allocation per request).
    pub buf: bytes::BytesMut,
    /// TCP_NODELAY is set (for requests with a body; see `http/mod.rs`).
    pub nodelay: bool,
    /// `proxy_read_timeout` while a response head is awaited, kept from
    /// request to request and reset for each (`io::within_kept`).
    pub timer: crate::io::KeptTimer,
}

struct Idle {
    peer: PeerAddr,
    conn: PooledConn,
    /// Its `keepalive_timeout` ends (entries are in the order they came
    /// back, so in this order too).
    expires: Instant,
}

/// Idle connections of one upstream group.
pub struct ConnPool {
    settings: PoolSettings,
    idle: Mutex<VecDeque<Idle>>,
}

impl ConnPool {
    pub fn new(settings: PoolSettings) -> ConnPool {
        ConnPool {
            settings,
            idle: Mutex::new(VecDeque::new()),
        }
    }

    pub fn settings(&self) -> &PoolSettings {
        &self.settings
    }

    /// The most recently used live idle connection to `peer`, if any.
    /// Expired ones met on the way are closed.
    pub fn take(&self, peer: &PeerAddr, now: Instant) -> Option<PooledConn> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        // (Comparisons of instants: a subtraction is dearer, and the
        // expired ones are all at the front.)
        while idle.front().is_some_and(|i| i.expires <= now) {
            idle.pop_front();
        }
        while let Some(at) = idle.iter().rposition(|i| &i.peer == peer) {
            // The newest is usually the last: popped, not shifted out
            // (`remove` moved it three times, 144 bytes each).
            let entry = if at + 1 == idle.len() {
                idle.pop_back()?
            } else {
                idle.remove(at)?
            };
            if entry.conn.stream.looks_idle() {
                return Some(entry.conn);
            }
        }
        None
    }

    /// Keep `conn` (which just finished a request) for `peer`, unless it is
    /// worn out; the least recently used goes when the pool is full.
    pub fn put(&self, peer: PeerAddr, conn: PooledConn, now: Instant) {
        let s = &self.settings;
        if s.max_idle == 0
            || conn.requests >= s.max_requests
            || conn
                .born
                .checked_add(s.max_age)
                .is_none_or(|end| end <= now)
        {
            return;
        }
        let Some(expires) = now.checked_add(s.idle_timeout) else {
            return;
        };
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        while idle.len() >= s.max_idle {
            idle.pop_front();
        }
        idle.push_back(Idle {
            peer,
            conn,
            expires,
        });
    }

    /// Idle connections held now.
    pub fn idle_count(&self) -> usize {
        self.idle.lock().map_or(0, |i| i.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    /// A listener and `n` connections to it, with the accepted ends.
    async fn connections(n: usize) -> (PeerAddr, Vec<PooledConn>, Vec<TcpStream>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for _ in 0..n {
            let stream = TcpStream::connect(addr).await.expect("connect");
            theirs.push(listener.accept().await.expect("accept").0);
            ours.push(PooledConn {
                stream: PeerStream::Tcp(stream),
                requests: 1,
                born: Instant::now(),
                buf: bytes::BytesMut::new(),
                nodelay: false,
                timer: Default::default(),
            });
        }
        (PeerAddr::Tcp(addr), ours, theirs)
    }

    fn settings(max_idle: usize) -> PoolSettings {
        PoolSettings {
            max_idle,
            ..PoolSettings::default()
        }
    }

    #[tokio::test]
    async fn a_kept_connection_is_taken_again_for_its_peer_only() {
        let (peer, mut conns, _theirs) = connections(1).await;
        let pool = ConnPool::new(settings(4));
        let now = Instant::now();
        pool.put(peer.clone(), conns.remove(0), now);
        let other = PeerAddr::Unix("/nowhere".into());
        assert!(pool.take(&other, now).is_none());
        assert!(pool.take(&peer, now).is_some());
        assert!(pool.take(&peer, now).is_none(), "taken once");
    }

    #[tokio::test]
    async fn the_least_recently_used_goes_when_the_pool_is_full() {
        let (peer, conns, _theirs) = connections(3).await;
        let pool = ConnPool::new(settings(2));
        let now = Instant::now();
        for (i, mut c) in conns.into_iter().enumerate() {
            c.requests = i as u64 + 1;
            pool.put(peer.clone(), c, now);
        }
        assert_eq!(pool.idle_count(), 2);
        let got: Vec<u64> = (0..3)
            .filter_map(|_| pool.take(&peer, now))
            .map(|c| c.requests)
            .collect();
        assert_eq!(got, [3, 2], "most recent first; the first one was closed");
    }

    #[tokio::test]
    async fn worn_out_expired_and_closed_connections_are_not_reused() {
        let (peer, mut conns, mut theirs) = connections(4).await;
        let pool = ConnPool::new(PoolSettings {
            max_idle: 8,
            idle_timeout: Duration::from_secs(60),
            max_requests: 10,
            max_age: Duration::from_secs(3600),
        });
        let now = Instant::now();
        let mut worn = conns.remove(0);
        worn.requests = 10;
        pool.put(peer.clone(), worn, now);
        assert_eq!(pool.idle_count(), 0, "keepalive_requests reached");

        let mut old = conns.remove(0);
        old.born = now - Duration::from_secs(3600);
        pool.put(peer.clone(), old, now);
        assert_eq!(pool.idle_count(), 0, "keepalive_time reached");

        pool.put(peer.clone(), conns.remove(0), now - Duration::from_secs(61));
        assert!(
            pool.take(&peer, now).is_none(),
            "idle past keepalive_timeout"
        );

        // The peer closes an idle connection: it is noticed when taken.
        pool.put(peer.clone(), conns.remove(0), now);
        let mut closing = theirs.pop().expect("accepted");
        closing.shutdown().await.expect("shutdown");
        drop(closing);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            pool.take(&peer, Instant::now()).is_none(),
            "closed by the peer"
        );
    }
}
