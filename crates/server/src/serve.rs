//! The serving loop of one process: a single-threaded async runtime built
//! in the process that serves (after any fork), accept loops over inherited
//! listeners, and the stop rules: SIGTERM or SIGHUP finish in-flight
//! requests then return; SIGINT or SIGQUIT return at once; a worker that
//! retires (its hooks asked for it) stops like SIGTERM.
//!
//! With `fair_accept`, each listener is accepted on a blocking thread:
//! the kernel wakes blocked `accept()` callers one at a time in FIFO order,
//! so several worker processes sharing a socket get even shares, where
//! epoll wakes them all and the least busy tends to win every race.
//!
//! Background tasks (an upstream block's health checks and name
//! re-resolution) are spawned before the first accept and end with the
//! runtime.
//!
//! A failing `accept()` (out of descriptors) pauses that loop briefly and is
//! logged once per episode, with its count when accepting works again
//! (`accept_errors.rs`).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use portico_proto::http1::HeadLimits;
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Notify, mpsc, watch};

use crate::accept_errors::{ACCEPT_PAUSE, AcceptTrouble};
use crate::conn::{ConnContext, Ends, serve_connection};
use crate::gate::{Gate, Slot};
use crate::handler::Handler;
use crate::handoff::Handoff;
use crate::hooks::WorkerHooks;
use crate::listener::{BoundListener, ListenSocket, Wire};
use crate::log::{AccessLog, LogConfig};
use crate::uwsgi_conn::serve_uwsgi_connection;
use crate::write::SendFile;

/// A task a process runs beside serving: made when the runtime starts,
/// spawned before the first accept, dropped when serving ends.
pub type BackgroundTask = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// How serving behaves.
#[derive(Clone)]
pub struct ServeOptions {
    /// What the request log writes.
    pub log: LogConfig,
    /// Called on SIGUSR2: reopen the log file (after logrotate).
    pub reopen_log: Option<Arc<dyn Fn() + Send + Sync>>,
    /// After a graceful stop begins, how long in-flight requests may take.
    pub shutdown_grace: Duration,
    /// Accept on blocking threads for an even spread over processes, and
    /// only while fewer than `capacity` requests are in hand.
    pub fair_accept: bool,
    /// Requests this process can run at once (its Python threads).
    pub capacity: usize,
    /// Per-request callbacks of the process model.
    pub hooks: Option<Arc<dyn WorkerHooks>>,
    /// Refused requests get nginx's HTML error pages (`-c nginx.conf`).
    pub nginx_pages: bool,
    /// Largest request body, in bytes (`--limit-post`); 0 for no limit. A
    /// request announcing more is answered 413 before the app is called.
    pub limit_post: u64,
    /// Tasks to run beside serving (upstream health checks, re-resolving).
    pub background: Vec<BackgroundTask>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            log: LogConfig::default(),
            reopen_log: None,
            shutdown_grace: Duration::from_secs(60),
            fair_accept: false,
            capacity: 1,
            hooks: None,
            nginx_pages: false,
            limit_post: 0,
            background: Vec::new(),
        }
    }
}

/// Why `serve` returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// SIGTERM or SIGHUP: in-flight requests were finished (or the grace ran out).
    Graceful,
    /// SIGINT or SIGQUIT: returned at once.
    Immediate,
    /// The hooks asked the worker to retire; in-flight requests were finished.
    Retired,
}

/// How often a blocking acceptor looks at the stop flag.
const ACCEPT_POLL: Duration = Duration::from_millis(200);

/// Serve on `listeners` with `handler` until a stop signal or retirement.
/// Builds its own runtime: call it in the process that serves, after forking.
pub fn serve(
    listeners: Vec<BoundListener>,
    handler: Arc<dyn Handler>,
    options: ServeOptions,
    on_ready: impl FnOnce(),
) -> io::Result<StopReason> {
    let handoff = Handoff::new();
    let (on_park, on_unpark) = (handoff.clone(), handoff.clone());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .on_thread_park(move || on_park.before_park())
        .on_thread_unpark(move || on_unpark.after_unpark())
        .build()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot start the async runtime: {e}")))?;
    let reason = runtime.block_on(async move {
        let (stop_tx, stop_rx) = watch::channel(false);
        let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
        let log = Arc::new(AccessLog::new(options.log.clone()));
        let retire = Arc::new(Notify::new());
        let stop_acceptors = Arc::new(AtomicBool::new(false));
        let gate = options.fair_accept.then(|| Gate::new(options.capacity));
        tokio::spawn(handoff.clone().deliver());
        for task in &options.background {
            tokio::spawn(task());
        }
        for bound in listeners {
            let ctx = Arc::new(ConnContext {
                handler: handler.clone(),
                log: log.clone(),
                listener: Arc::new(bound.info),
                limits: HeadLimits::default(),
                hooks: options.hooks.clone(),
                limit_post: options.limit_post,
                retire: retire.clone(),
                handoff: handoff.clone(),
                gate: gate.clone(),
                nginx_pages: options.nginx_pages,
            });
            if options.fair_accept {
                let (conn_tx, conn_rx) = mpsc::unbounded_channel();
                spawn_blocking_acceptor(
                    bound.socket,
                    ctx.listener.spec.clone(),
                    conn_tx,
                    stop_acceptors.clone(),
                    gate.clone(),
                )?;
                tokio::spawn(adopt_loop(conn_rx, ctx, stop_rx.clone(), alive_tx.clone()));
            } else {
                tokio::spawn(accept_loop(
                    bound.socket,
                    ctx,
                    stop_rx.clone(),
                    alive_tx.clone(),
                ));
            }
        }
        drop(alive_tx);
        if let Some(reopen) = options.reopen_log.clone() {
            tokio::spawn(reopen_on_sigusr2(reopen));
        }
        on_ready();
        let reason = tokio::select! {
            signalled = wait_for_stop_signal() => signalled?,
            _ = retire.notified() => StopReason::Retired,
        };
        if reason == StopReason::Immediate {
            return Ok(reason);
        }
        stop_acceptors.store(true, Ordering::SeqCst);
        if let Some(gate) = &gate {
            gate.stop();
        }
        let _ = stop_tx.send(true);
        if tokio::time::timeout(options.shutdown_grace, alive_rx.recv())
            .await
            .is_err()
        {
            crate::logln!(
                "portico: requests still running after {} s, stopping anyway",
                options.shutdown_grace.as_secs()
            );
        }
        Ok::<_, io::Error>(reason)
    })?;
    // Do not wait for blocked acceptor threads or stuck connection tasks.
    runtime.shutdown_background();
    Ok(reason)
}

async fn wait_for_stop_signal() -> io::Result<StopReason> {
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut quit = signal(SignalKind::quit())?;
    Ok(tokio::select! {
        _ = term.recv() => StopReason::Graceful,
        _ = hup.recv() => StopReason::Graceful,
        _ = int.recv() => StopReason::Immediate,
        _ = quit.recv() => StopReason::Immediate,
    })
}

/// SIGUSR2 asks a worker to reopen its log file (the master sends it for
/// `--touch-logreopen`). Until this runs, the master has SIGUSR2 ignored
/// in the worker, so an early one is lost rather than fatal.
async fn reopen_on_sigusr2(reopen: Arc<dyn Fn() + Send + Sync>) {
    let Ok(mut usr2) = signal(SignalKind::user_defined2()) else {
        return;
    };
    while usr2.recv().await.is_some() {
        reopen();
    }
}

/// A connection accepted by a blocking acceptor, not yet on the runtime,
/// with the gate slot it holds until its first request is answered.
enum Accepted {
    Tcp(std::net::TcpStream, SocketAddr, Option<Slot>),
    Unix(std::os::unix::net::UnixStream, Option<Slot>),
}

async fn accept_loop(
    socket: ListenSocket,
    ctx: Arc<ConnContext>,
    mut stop: watch::Receiver<bool>,
    alive: mpsc::Sender<()>,
) -> io::Result<()> {
    enum Listener {
        Tcp(TcpListener),
        Unix(UnixListener),
    }
    let listener = match socket {
        ListenSocket::Tcp(s) => {
            s.set_nonblocking(true)?;
            Listener::Tcp(TcpListener::from_std(s)?)
        }
        ListenSocket::Unix(s) => {
            s.set_nonblocking(true)?;
            Listener::Unix(UnixListener::from_std(s)?)
        }
    };
    let mut trouble = AcceptTrouble::default();
    loop {
        let accepted = tokio::select! {
            accepted = async {
                match &listener {
                    Listener::Tcp(l) => l.accept().await.map(|(s, peer)| Connection::Tcp(s, peer)),
                    Listener::Unix(l) => l.accept().await.map(|(s, _)| Connection::Unix(s)),
                }
            } => accepted,
            _ = stop.changed() => return Ok(()),
        };
        match accepted {
            Ok(conn) => {
                if let Some(line) = trouble.succeeded(&ctx.listener.spec, Instant::now()) {
                    crate::logln!("{line}");
                }
                spawn_connection(conn, None, &ctx, &stop, &alive);
            }
            Err(e) => {
                if let Some(line) = trouble.failed(&ctx.listener.spec, &e, Instant::now()) {
                    crate::logln!("{line}");
                }
                tokio::time::sleep(ACCEPT_PAUSE).await;
            }
        }
    }
}

/// Serve the connections a blocking acceptor hands over, until it stops.
/// Keeps running after a stop signal so nothing already accepted is dropped.
async fn adopt_loop(
    mut accepted: mpsc::UnboundedReceiver<Accepted>,
    ctx: Arc<ConnContext>,
    stop: watch::Receiver<bool>,
    alive: mpsc::Sender<()>,
) {
    while let Some(conn) = accepted.recv().await {
        let (adopted, slot) = match conn {
            Accepted::Tcp(s, peer, slot) => (
                TcpStream::from_std(s).map(|s| Connection::Tcp(s, peer)),
                slot,
            ),
            Accepted::Unix(s, slot) => (UnixStream::from_std(s).map(Connection::Unix), slot),
        };
        match adopted {
            Ok(conn) => spawn_connection(conn, slot, &ctx, &stop, &alive),
            Err(e) => crate::logln!(
                "portico: cannot adopt a connection on {}: {e}",
                ctx.listener.spec
            ),
        }
    }
}

fn spawn_blocking_acceptor(
    socket: ListenSocket,
    spec: String,
    accepted: mpsc::UnboundedSender<Accepted>,
    stop: Arc<AtomicBool>,
    gate: Option<Arc<Gate>>,
) -> io::Result<()> {
    // Blocking accept with a receive timeout, so the stop flag is seen.
    let fd = socket.as_raw_fd();
    let sock = socket2::SockRef::from(&socket);
    sock.set_nonblocking(false)?;
    sock.set_read_timeout(Some(ACCEPT_POLL))?;
    std::thread::Builder::new()
        .name("acceptor".into())
        .spawn(move || {
            let listener = socket2::SockRef::from(&socket);
            let mut trouble = AcceptTrouble::default();
            while !stop.load(Ordering::SeqCst) {
                if let Some(gate) = &gate
                    && !gate.wait_for_room(OVERDUE_CHECK, &|| has_pending_connection(fd))
                {
                    return;
                }
                match accept_nonblocking(&listener, fd) {
                    Ok(mut conn) => {
                        if let Some(line) = trouble.succeeded(&spec, Instant::now()) {
                            crate::logln!("{line}");
                        }
                        if let Some(gate) = &gate {
                            let slot = Some(gate.enter());
                            match &mut conn {
                                Accepted::Tcp(_, _, s) | Accepted::Unix(_, s) => *s = slot,
                            }
                        }
                        if accepted.send(conn).is_err() {
                            return;
                        }
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                        ) => {}
                    Err(e) => {
                        if let Some(line) = trouble.failed(&spec, &e, Instant::now()) {
                            crate::logln!("{line}");
                        }
                        std::thread::sleep(ACCEPT_PAUSE);
                    }
                }
            }
        })?;
    Ok(())
}

/// How often a full worker looks whether a connection has been left
/// waiting in the listen queue (taken at the second look).
const OVERDUE_CHECK: Duration = Duration::from_millis(50);

/// True if a connection waits in the listen queue of `fd`.
fn has_pending_connection(fd: RawFd) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: poll on one descriptor we own, without waiting.
    unsafe { libc::poll(&mut pfd, 1, 0) > 0 && pfd.revents & libc::POLLIN != 0 }
}

/// accept4() on a blocking listener, giving a non-blocking, close-on-exec socket.
fn accept_nonblocking(listener: &socket2::SockRef<'_>, fd: RawFd) -> io::Result<Accepted> {
    let (conn, addr) = listener.accept()?;
    conn.set_nonblocking(true)?;
    if let Some(peer) = addr.as_socket() {
        return Ok(Accepted::Tcp(conn.into(), peer, None));
    }
    if addr.is_unix() {
        return Ok(Accepted::Unix(conn.into(), None));
    }
    Err(io::Error::other(format!(
        "accepted an unknown peer kind on fd {fd}"
    )))
}

/// An accepted connection on the runtime.
enum Connection {
    Tcp(TcpStream, SocketAddr),
    Unix(UnixStream),
}

fn spawn_connection(
    conn: Connection,
    slot: Option<Slot>,
    ctx: &Arc<ConnContext>,
    stop: &watch::Receiver<bool>,
    alive: &mpsc::Sender<()>,
) {
    let ctx = ctx.clone();
    let stop = stop.clone();
    let alive = alive.clone();
    tokio::spawn(async move {
        match conn {
            Connection::Tcp(mut stream, peer) => {
                let _ = stream.set_nodelay(true);
                let local = stream.local_addr().ok();
                if let Some(tls) = ctx.listener.tls.clone() {
                    serve_tls(stream, (peer, local), &tls, &ctx, stop, slot).await;
                } else {
                    let (mut reader, mut writer) = stream.split();
                    let at = Ends {
                        peer: Some(peer),
                        local,
                        tls: None,
                    };
                    serve_stream(&mut reader, &mut writer, at, &ctx, stop, slot).await;
                }
            }
            Connection::Unix(mut stream) => {
                let (mut reader, mut writer) = stream.split();
                let at = Ends {
                    peer: None,
                    local: None,
                    tls: None,
                };
                serve_stream(&mut reader, &mut writer, at, &ctx, stop, slot).await;
            }
        }
        drop(alive);
    });
}

/// Handshake a TCP connection on a TLS listener, then serve it over the
/// TLS stream's halves; as HTTP/2 when ALPN chose `h2` (offered on
/// listeners with HTTP/2).
async fn serve_tls(
    stream: TcpStream,
    (peer, local): (SocketAddr, Option<SocketAddr>),
    tls: &crate::tls::TlsListener,
    ctx: &Arc<ConnContext>,
    stop: watch::Receiver<bool>,
    mut slot: Option<Slot>,
) {
    let h2 = ctx.listener.http2;
    let shaken = crate::tls::handshake(
        tls,
        stream,
        peer,
        local,
        &mut slot,
        stop.clone(),
        h2.is_some(),
    )
    .await;
    let Some((stream, facts)) = shaken else {
        return;
    };
    let at = Ends {
        peer: Some(peer),
        local,
        tls: Some(facts.clone()),
    };
    if let Some(settings) = h2
        && facts.alpn.as_deref() == Some(crate::tls::ALPN_H2)
    {
        crate::h2::serve_h2(stream, at, ctx.clone(), stop, slot, settings).await;
        return;
    }
    let (mut reader, mut writer) = tokio::io::split(stream);
    serve_stream(&mut reader, &mut writer, at, ctx, stop, slot).await;
}

async fn serve_stream<R, W>(
    reader: &mut R,
    writer: &mut W,
    at: Ends,
    ctx: &Arc<ConnContext>,
    stop: watch::Receiver<bool>,
    slot: Option<Slot>,
) where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + SendFile + Unpin,
{
    match ctx.listener.wire {
        Wire::Http => serve_connection(reader, writer, at, ctx, stop, slot).await,
        Wire::Uwsgi => serve_uwsgi_connection(reader, writer, at.peer, at.local, ctx, slot).await,
    }
}
