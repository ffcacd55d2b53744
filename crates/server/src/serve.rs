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

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use portico_proto::http1::HeadLimits;
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Notify, mpsc, watch};

use crate::conn::{ConnContext, serve_connection};
use crate::handler::Handler;
use crate::handoff::Handoff;
use crate::hooks::WorkerHooks;
use crate::listener::BoundListener;
use crate::log::AccessLog;

/// How serving behaves.
#[derive(Clone)]
pub struct ServeOptions {
    /// Write one access-log line per request.
    pub access_log: bool,
    /// After a graceful stop begins, how long in-flight requests may take.
    pub shutdown_grace: Duration,
    /// Accept on blocking threads for an even spread over processes.
    pub fair_accept: bool,
    /// Per-request callbacks of the process model.
    pub hooks: Option<Arc<dyn WorkerHooks>>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            access_log: true,
            shutdown_grace: Duration::from_secs(60),
            fair_accept: false,
            hooks: None,
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

/// Pause after a failed accept (e.g. out of descriptors) before trying again.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

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
        let log = Arc::new(AccessLog::new(options.access_log));
        let retire = Arc::new(Notify::new());
        let stop_acceptors = Arc::new(AtomicBool::new(false));
        tokio::spawn(handoff.clone().deliver());
        for bound in listeners {
            let ctx = Arc::new(ConnContext {
                handler: handler.clone(),
                log: log.clone(),
                listener: Arc::new(bound.info),
                limits: HeadLimits::default(),
                hooks: options.hooks.clone(),
                retire: retire.clone(),
                handoff: handoff.clone(),
            });
            if options.fair_accept {
                let (conn_tx, conn_rx) = mpsc::unbounded_channel();
                spawn_blocking_acceptor(bound.socket, conn_tx, stop_acceptors.clone())?;
                tokio::spawn(adopt_loop(conn_rx, ctx, stop_rx.clone(), alive_tx.clone()));
            } else {
                bound.socket.set_nonblocking(true)?;
                let listener = TcpListener::from_std(bound.socket)?;
                tokio::spawn(accept_loop(
                    listener,
                    ctx,
                    stop_rx.clone(),
                    alive_tx.clone(),
                ));
            }
        }
        drop(alive_tx);
        on_ready();
        let reason = tokio::select! {
            signalled = wait_for_stop_signal() => signalled?,
            _ = retire.notified() => StopReason::Retired,
        };
        if reason == StopReason::Immediate {
            return Ok(reason);
        }
        stop_acceptors.store(true, Ordering::SeqCst);
        let _ = stop_tx.send(true);
        if tokio::time::timeout(options.shutdown_grace, alive_rx.recv())
            .await
            .is_err()
        {
            eprintln!(
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

async fn accept_loop(
    listener: TcpListener,
    ctx: Arc<ConnContext>,
    mut stop: watch::Receiver<bool>,
    alive: mpsc::Sender<()>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => return,
        };
        match accepted {
            Ok((stream, peer)) => spawn_connection(stream, peer, &ctx, &stop, &alive),
            Err(e) => {
                eprintln!("portico: accept() on {} failed: {e}", ctx.listener.spec);
                tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
            }
        }
    }
}

/// Serve the connections a blocking acceptor hands over, until it stops.
/// Keeps running after a stop signal so nothing already accepted is dropped.
async fn adopt_loop(
    mut accepted: mpsc::UnboundedReceiver<(std::net::TcpStream, SocketAddr)>,
    ctx: Arc<ConnContext>,
    stop: watch::Receiver<bool>,
    alive: mpsc::Sender<()>,
) {
    while let Some((stream, peer)) = accepted.recv().await {
        match TcpStream::from_std(stream) {
            Ok(stream) => spawn_connection(stream, peer, &ctx, &stop, &alive),
            Err(e) => eprintln!("portico: cannot adopt a connection from {peer}: {e}"),
        }
    }
}

fn spawn_blocking_acceptor(
    socket: std::net::TcpListener,
    accepted: mpsc::UnboundedSender<(std::net::TcpStream, SocketAddr)>,
    stop: Arc<AtomicBool>,
) -> io::Result<()> {
    // Blocking accept with a receive timeout, so the stop flag is seen.
    socket.set_nonblocking(false)?;
    let sock = socket2::SockRef::from(&socket);
    sock.set_read_timeout(Some(ACCEPT_POLL))?;
    std::thread::Builder::new()
        .name("acceptor".into())
        .spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match accept_nonblocking(&socket) {
                    Ok(conn) => {
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
                        eprintln!("portico: accept() failed: {e}");
                        std::thread::sleep(ACCEPT_ERROR_BACKOFF);
                    }
                }
            }
        })?;
    Ok(())
}

/// accept4() on a blocking listener, giving a non-blocking, close-on-exec socket.
fn accept_nonblocking(
    listener: &std::net::TcpListener,
) -> io::Result<(std::net::TcpStream, SocketAddr)> {
    let sock = socket2::SockRef::from(listener);
    let (conn, addr) = sock.accept()?;
    conn.set_nonblocking(true)?;
    let addr = addr.as_socket().ok_or_else(|| {
        io::Error::other(format!(
            "accepted a non-IP peer on fd {}",
            listener.as_raw_fd()
        ))
    })?;
    Ok((conn.into(), addr))
}

fn spawn_connection(
    stream: TcpStream,
    peer: SocketAddr,
    ctx: &Arc<ConnContext>,
    stop: &watch::Receiver<bool>,
    alive: &mpsc::Sender<()>,
) {
    let ctx = ctx.clone();
    let stop = stop.clone();
    let alive = alive.clone();
    tokio::spawn(async move {
        serve_tcp(stream, peer, &ctx, stop).await;
        drop(alive);
    });
}

async fn serve_tcp(
    mut stream: TcpStream,
    peer: SocketAddr,
    ctx: &ConnContext,
    stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().unwrap_or(ctx.listener.addr);
    let (mut reader, mut writer) = stream.split();
    serve_connection(&mut reader, &mut writer, peer, local, ctx, stop).await;
}
