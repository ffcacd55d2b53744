//! The master's observability endpoints: uWSGI's stats server (`--stats`,
//! plain or `--stats-http`) and Prometheus metrics (`--metrics`), served
//! from the master's poll loop without ever blocking it. Listeners and
//! connections are non-blocking; each connection is a small state machine
//! (read the request if one is expected, then write the answer, then close)
//! with a deadline, and there are at most [`MAX_CLIENTS`] at a time.

mod json;
mod metrics;
mod queue;
mod stats;

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use portico_config::ListenAddr;

use crate::scoreboard::Scoreboard;

/// How long a stats or metrics client may take, from accept to close
/// (uWSGI's `socket-timeout` for stats-http).
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(4);

/// Stats and metrics connections served at once; more are closed at accept.
pub const MAX_CLIENTS: usize = 64;

/// The most request bytes read from an HTTP client (uWSGI reads ≤ 4096).
const MAX_REQUEST: usize = 4096;

/// `--stats`.
#[derive(Debug, Clone)]
pub struct StatsServer {
    pub addr: String,
    pub http: bool,
    pub minified: bool,
}

/// A listening socket as the stats and metrics describe it.
#[derive(Debug, Clone)]
pub struct SocketInfo {
    /// `127.0.0.1:9090` or the unix path.
    pub name: String,
    /// `http` or `uwsgi`.
    pub proto: &'static str,
    /// The listen backlog.
    pub max_queue: u32,
    /// The listening descriptor (TCP_INFO on it gives its queue).
    pub fd: RawFd,
}

/// An app as the stats describe it.
#[derive(Debug, Clone, Default)]
pub struct AppInfo {
    pub mountpoint: String,
    pub chdir: String,
    /// Seconds it took to load.
    pub startup_time: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Stats { http: bool, minified: bool },
    Metrics,
}

enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    fn fd(&self) -> RawFd {
        match self {
            Stream::Tcp(s) => s.as_raw_fd(),
            Stream::Unix(s) => s.as_raw_fd(),
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }
}

struct Endpoint {
    kind: Kind,
    listener: Listener,
}

enum State {
    /// Waiting for an HTTP request (these bytes so far).
    Reading(Vec<u8>),
    /// Writing the answer from this offset.
    Writing(Vec<u8>, usize),
}

struct Client {
    kind: Kind,
    stream: Stream,
    state: State,
    deadline: Instant,
}

/// The stats and metrics endpoints with their connections.
pub(crate) struct Observer {
    endpoints: Vec<Endpoint>,
    clients: Vec<Client>,
    board: Arc<Scoreboard>,
    sockets: Vec<SocketInfo>,
    apps: Vec<AppInfo>,
    cwd: String,
    pid: i32,
}

/// Bind `addr`, read as every socket option is (`ListenAddr::parse`):
/// `host:port` (`:port` = every interface) is TCP, anything else a unix
/// socket path (a stale file there is replaced).
fn bind(addr: &str) -> io::Result<Listener> {
    let invalid = |what: &str| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what} in \"{addr}\" (expected HOST:PORT, :PORT or a socket path)"),
        )
    };
    let parsed = ListenAddr::parse(addr).ok_or_else(|| invalid("no address"))?;
    let listener = match parsed {
        ListenAddr::Tcp { host, port } => {
            let host = if host.is_empty() { "0.0.0.0" } else { &host };
            let resolved = (host, port)
                .to_socket_addrs()?
                .next()
                .ok_or_else(|| invalid("no address"))?;
            let l = TcpListener::bind(resolved)?;
            l.set_nonblocking(true)?;
            Listener::Tcp(l)
        }
        ListenAddr::Unix(path) => bind_unix(&path)?,
    };
    Ok(listener)
}

/// A unix stats socket at `path`, replacing a stale one.
fn bind_unix(path: &Path) -> io::Result<Listener> {
    if std::fs::symlink_metadata(path)
        .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
    {
        let _ = std::fs::remove_file(path);
    }
    let l = UnixListener::bind(path)?;
    l.set_nonblocking(true)?;
    Ok(Listener::Unix(l))
}

impl Observer {
    /// Bind the endpoints asked for; `None` when there are none.
    pub(crate) fn bind(
        stats: Option<&StatsServer>,
        metrics: Option<&str>,
        board: Arc<Scoreboard>,
        sockets: Vec<SocketInfo>,
        apps: Vec<AppInfo>,
    ) -> io::Result<Option<Observer>> {
        let mut endpoints = Vec::new();
        let mut wanted: Vec<(&str, Kind)> = Vec::new();
        if let Some(s) = stats {
            wanted.push((
                &s.addr,
                Kind::Stats {
                    http: s.http,
                    minified: s.minified,
                },
            ));
        }
        if let Some(addr) = metrics {
            wanted.push((addr, Kind::Metrics));
        }
        for (addr, kind) in wanted {
            let what = match kind {
                Kind::Stats { .. } => "--stats",
                Kind::Metrics => "--metrics",
            };
            let listener = bind(addr).map_err(|e| {
                io::Error::new(e.kind(), format!("{what} {addr}: cannot bind: {e}"))
            })?;
            // The address actually bound (the real port when 0 was asked).
            let (fd, shown) = match &listener {
                Listener::Tcp(l) => (
                    l.as_raw_fd(),
                    l.local_addr()
                        .map(|a| a.to_string())
                        .unwrap_or_else(|_| addr.to_string()),
                ),
                Listener::Unix(l) => (l.as_raw_fd(), addr.to_string()),
            };
            match kind {
                Kind::Stats { .. } => {
                    portico_log::logln!("*** Stats server enabled on {shown} fd: {fd} ***")
                }
                Kind::Metrics => {
                    portico_log::logln!("*** Prometheus metrics enabled on {shown} fd: {fd} ***")
                }
            }
            endpoints.push(Endpoint { kind, listener });
        }
        if endpoints.is_empty() {
            return Ok(None);
        }
        Ok(Some(Observer {
            endpoints,
            clients: Vec::new(),
            board,
            sockets,
            apps,
            cwd: std::env::current_dir()
                .map(|d| d.display().to_string())
                .unwrap_or_default(),
            pid: std::process::id() as i32,
        }))
    }

    /// Descriptors to poll: listeners for input, clients for what they wait for.
    pub(crate) fn poll_fds(&self) -> Vec<libc::pollfd> {
        let listeners = self.endpoints.iter().map(|e| libc::pollfd {
            fd: match &e.listener {
                Listener::Tcp(l) => l.as_raw_fd(),
                Listener::Unix(l) => l.as_raw_fd(),
            },
            events: libc::POLLIN,
            revents: 0,
        });
        let clients = self.clients.iter().map(|c| libc::pollfd {
            fd: c.stream.fd(),
            events: match c.state {
                State::Reading(_) => libc::POLLIN,
                State::Writing(..) => libc::POLLOUT,
            },
            revents: 0,
        });
        listeners.chain(clients).collect()
    }

    /// In a forked worker: close every descriptor of ours, so a client's
    /// connection is closed when the master closes it.
    pub(crate) fn close_in_child(&mut self) {
        self.clients.clear();
        self.endpoints.clear();
    }

    /// Accept, read, answer and close, as far as possible without blocking.
    pub(crate) fn service(&mut self) {
        let now = Instant::now();
        for i in 0..self.endpoints.len() {
            self.accept_all(i, now);
        }
        let mut clients = std::mem::take(&mut self.clients);
        clients.retain_mut(|c| self.advance(c, now));
        self.clients = clients;
    }

    fn accept_all(&mut self, endpoint: usize, now: Instant) {
        let kind = self.endpoints[endpoint].kind;
        loop {
            let accepted = match &self.endpoints[endpoint].listener {
                Listener::Tcp(l) => l.accept().map(|(s, _)| Stream::Tcp(s)),
                Listener::Unix(l) => l.accept().map(|(s, _)| Stream::Unix(s)),
            };
            let stream = match accepted {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            };
            if self.clients.len() >= MAX_CLIENTS {
                continue;
            }
            let nonblocking = match &stream {
                Stream::Tcp(s) => s.set_nonblocking(true),
                Stream::Unix(s) => s.set_nonblocking(true),
            };
            if nonblocking.is_err() {
                continue;
            }
            let state = match kind {
                Kind::Stats { http: false, .. } => State::Writing(self.answer(kind, None), 0),
                _ => State::Reading(Vec::new()),
            };
            self.clients.push(Client {
                kind,
                stream,
                state,
                deadline: now + CLIENT_TIMEOUT,
            });
        }
    }

    /// Move one client on; false when it is done (and is dropped, closing it).
    fn advance(&self, c: &mut Client, now: Instant) -> bool {
        if now > c.deadline {
            return false;
        }
        if let State::Reading(buf) = &mut c.state {
            let mut chunk = [0u8; 1024];
            loop {
                match c.stream.read(&mut chunk) {
                    Ok(0) => return false,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => return false,
                }
                if buf.len() >= MAX_REQUEST {
                    break;
                }
            }
            // uWSGI's stats-http answers after the first read; metrics
            // wait for the whole head.
            let complete = match c.kind {
                Kind::Stats { .. } => !buf.is_empty(),
                Kind::Metrics => {
                    buf.windows(4).any(|w| w == b"\r\n\r\n")
                        || buf.windows(2).any(|w| w == b"\n\n")
                        || buf.len() >= MAX_REQUEST
                }
            };
            if !complete {
                return true;
            }
            let request = std::mem::take(buf);
            c.state = State::Writing(self.answer(c.kind, Some(&request)), 0);
        }
        if let State::Writing(out, pos) = &mut c.state {
            while *pos < out.len() {
                match c.stream.write(&out[*pos..]) {
                    Ok(0) => return false,
                    Ok(n) => *pos += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                    Err(_) => return false,
                }
            }
            if let Stream::Tcp(s) = &c.stream {
                let _ = s.shutdown(std::net::Shutdown::Write);
            }
            return false;
        }
        true
    }

    fn queues(&self) -> Vec<u32> {
        self.sockets
            .iter()
            .map(|s| queue::listen_queue(s.fd).unwrap_or(0))
            .collect()
    }

    /// The bytes to send a client of `kind` (with its request, if it sent one).
    fn answer(&self, kind: Kind, request: Option<&[u8]>) -> Vec<u8> {
        let queues = self.queues();
        match kind {
            Kind::Stats { http, minified } => {
                let doc = stats::document(
                    &self.board,
                    &stats::Instance {
                        pid: self.pid,
                        cwd: &self.cwd,
                        sockets: &self.sockets,
                        queues: &queues,
                        apps: &self.apps,
                    },
                )
                .render(minified);
                if http {
                    let mut out = b"HTTP/1.0 200 OK\r\nConnection: close\r\nAccess-Control-Allow-Origin: *\r\nContent-Type: application/json\r\n\r\n".to_vec();
                    out.extend_from_slice(doc.as_bytes());
                    out
                } else {
                    doc.into_bytes()
                }
            }
            Kind::Metrics => {
                let request = request.unwrap_or_default();
                let method = request.split(|&b| b == b' ').next().unwrap_or_default();
                if method != b"GET" && method != b"HEAD" {
                    return b"HTTP/1.0 405 Method Not Allowed\r\nAllow: GET, HEAD\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec();
                }
                let body = metrics::exposition(&self.board, &self.sockets, &queues);
                let mut out = format!(
                    "HTTP/1.0 200 OK\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    metrics::CONTENT_TYPE,
                    body.len()
                )
                .into_bytes();
                if method == b"GET" {
                    out.extend_from_slice(body.as_bytes());
                }
                out
            }
        }
    }
}
