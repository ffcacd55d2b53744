//! The serving loop of one process: a single-threaded async runtime built
//! in the process that serves (after any fork), accept loops over inherited
//! listeners, and the stop rules: SIGTERM or SIGHUP finish in-flight
//! requests then return; SIGINT or SIGQUIT return at once; a worker that
//! retires (its hooks asked for it) stops like SIGTERM.
//!
//! Every listener is accepted on the event loop itself (`accept_loop.rs`),
//! so a connection goes from `accept()` to its first request with no
//! thread hand-off. With
//! `fair_accept` (several worker processes share the listeners), the accept
//! gate (`gate.rs`) lets a worker take connections only while it has Python
//! capacity: a busy worker is out of the race and an idle sibling gets the
//! connection, which spreads the load evenly (docs/design-notes.md §2).
//!
//! Background tasks (an upstream block's health checks and name
//! re-resolution) are spawned before the first accept and end with the
//! runtime.
//!
//! A connection is read as soon as it is accepted (with TCP_DEFER_ACCEPT its
//! request is there already) and served in place, inside the accept loop:
//! a request the app answers at once (one Python thread, the app run in
//! place) on a socket that never has to wait costs no task, no epoll
//! registration and no wake-up (`lazy_socket.rs`). A connection that has to
//! wait, at any point, goes on as a task of its own.
//!
//! A failing `accept()` (out of descriptors) pauses that loop briefly and is
//! logged once per episode, with its count when accepting works again
//! (`accept_errors.rs`).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Waker};
use std::time::Duration;

use bytes::BytesMut;
use portico_proto::http1::HeadLimits;
use tokio::net::TcpStream;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Notify, mpsc, watch};

use crate::accept_board::Turn;
use crate::accept_loop::accept_loop;
use crate::accept_socket::{FirstRead, local_address, prepare_listener, read_first};
use crate::body_spool::SpoolConfig;
use crate::conn::{ConnContext, Ends, serve_connection};
use crate::gate::{FIRST_BYTES_WAIT, Gate};
use crate::handler::Handler;
use crate::handoff::Handoff;
use crate::hooks::WorkerHooks;
use crate::listener::{BoundListener, Wire};
use crate::log::{AccessLog, LogConfig};
use crate::timeouts::Timeouts;
use crate::uwsgi_conn::serve_uwsgi_connection;
use crate::worker_conns::{Connection, Held, OpenConnections};
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
    /// Several processes share the listeners: accept only while fewer
    /// than `capacity` Python requests are in hand (the accept gate).
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
    /// Time limits of HTTP connections (nginx's names; `--http-timeout`).
    pub http_timeouts: Timeouts,
    /// Time limits of uwsgi connections (`--socket-timeout`).
    pub uwsgi_timeouts: Timeouts,
    /// How request bodies are received before the handler runs
    /// (`--post-buffering`, `client_body_buffer_size`).
    pub spool: SpoolConfig,
    /// Client connections this process holds at most (nginx's
    /// `worker_connections`); 0 for no limit. One over it is refused: an
    /// HTTP client gets a 503, a uwsgi one a closed connection.
    pub max_connections: usize,
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
            http_timeouts: Timeouts::HTTP,
            uwsgi_timeouts: Timeouts::UWSGI,
            spool: SpoolConfig::default(),
            max_connections: 0,
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
        .on_thread_park(move || {
            on_park.before_park();
            crate::accept_board::runtime_parks();
        })
        .on_thread_unpark(move || {
            crate::clock::refresh();
            crate::accept_board::runtime_wakes();
            on_unpark.after_unpark();
        })
        .build()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot start the async runtime: {e}")))?;
    let reason = runtime.block_on(async move {
        let signals = stop_signals();
        let (stop_tx, stop_rx) = watch::channel(false);
        let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
        // Each accept loop drops its sender when it first waits for a
        // connection: the worker says it is ready only then.
        let (listening_tx, mut listening_rx) = mpsc::channel::<()>(1);
        let log = Arc::new(AccessLog::new(options.log.clone()));
        let retire = Arc::new(Notify::new());
        let gate = options
            .fair_accept
            .then(|| Gate::new(options.capacity, handoff.clone()));
        let turn = options.fair_accept.then(Turn::take).flatten().map(Arc::new);
        let open = OpenConnections::new(options.max_connections);
        if let Some(t) = &turn {
            open.publish_to(t.open_counter());
        }
        tokio::spawn(handoff.clone().deliver());
        for task in &options.background {
            tokio::spawn(task());
        }
        for bound in listeners {
            let timeouts = match bound.info.wire {
                Wire::Http => options.http_timeouts,
                Wire::Uwsgi => options.uwsgi_timeouts,
            };
            prepare_listener(&bound.socket);
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
                timeouts,
                shutdown: stop_rx.clone(),
                spool: options.spool.clone(),
                open: open.clone(),
            });
            tokio::spawn(accept_loop(
                bound.socket,
                ctx,
                turn.clone(),
                stop_rx.clone(),
                alive_tx.clone(),
                listening_tx.clone(),
            ));
        }
        drop(alive_tx);
        drop(listening_tx);
        if let Some(reopen) = options.reopen_log.clone() {
            tokio::spawn(reopen_on_sigusr2(reopen));
        }
        // "Ready" means every listener is watched and this worker's turn
        // published (idle): said before, a sibling would not leave it a
        // connection (a burst that came at once went to the other worker).
        while listening_rx.recv().await.is_some() {}
        on_ready();
        let reason = tokio::select! {
            signalled = wait_for_stop_signal(signals) => signalled?,
            _ = retire.notified() => StopReason::Retired,
        };
        if reason == StopReason::Immediate {
            return Ok(reason);
        }
        if let Some(gate) = &gate {
            gate.stop();
        }
        let _ = stop_tx.send(true);
        open.close_idle();
        // The accept loops end, then every connection (each counted until
        // its task ends).
        let finished = async {
            let _ = alive_rx.recv().await;
            open.all_closed().await;
        };
        if tokio::time::timeout(options.shutdown_grace, finished)
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
    // Do not wait for stuck connection tasks.
    runtime.shutdown_background();
    Ok(reason)
}

/// The stop signals, registered with the runtime (before any accept, so
/// none is missed); SIGINT and SIGQUIT also end an app call running in
/// place at once (`in_place.rs`).
struct StopSignals {
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    quit: tokio::signal::unix::Signal,
}

fn stop_signals() -> io::Result<StopSignals> {
    let signals = StopSignals {
        term: signal(SignalKind::terminate())?,
        hup: signal(SignalKind::hangup())?,
        int: signal(SignalKind::interrupt())?,
        quit: signal(SignalKind::quit())?,
    };
    crate::in_place::wrap_stop_signals();
    Ok(signals)
}

async fn wait_for_stop_signal(signals: io::Result<StopSignals>) -> io::Result<StopReason> {
    let StopSignals {
        mut term,
        mut hup,
        mut int,
        mut quit,
    } = signals?;
    Ok(tokio::select! {
        _ = term.recv() => StopReason::Graceful,
        _ = hup.recv() => StopReason::Graceful,
        _ = int.recv() => StopReason::Immediate,
        _ = quit.recv() => StopReason::Immediate,
    })
}

/// SIGUSR2 asks a worker to reopen its log file (the master sends it for
/// `--touch-logreopen` and nginx's `-s reopen`). One that came before this
/// runs was remembered since the fork (`reopen_signal.rs`) and is acted on
/// here, once the runtime's handler is in place.
pub(crate) async fn reopen_on_sigusr2(reopen: Arc<dyn Fn() + Send + Sync>) {
    let Ok(mut usr2) = signal(SignalKind::user_defined2()) else {
        return;
    };
    if crate::reopen_signal::take_early_reopen() {
        reopen();
    }
    while usr2.recv().await.is_some() {
        reopen();
    }
}

/// Serve one accepted connection (from `peer`): read what it sent and
/// serve it in place; only a connection that has to wait (for its client,
/// for the app, for a full socket buffer) goes on as a task of its own.
pub(crate) fn spawn_connection(held: Held, peer: Option<SocketAddr>, ctx: &Arc<ConnContext>) {
    // A TLS connection's first bytes are its handshake's: left to rustls.
    let first = match held.conn.socket() {
        Some(sock) if ctx.listener.tls.is_none() => read_first(sock),
        _ => FirstRead::Nothing,
    };
    let (initial, waiting) = match first {
        FirstRead::Bytes(bytes) => (bytes, false),
        FirstRead::Nothing => (BytesMut::new(), true),
        FirstRead::Gone => return,
    };
    let local = match &held.conn {
        Connection::Tcp(sock) => local_address(&ctx.listener, sock),
        _ => None,
    };
    let at = Ends::new(peer, local, None);
    // A panic in a connection loses that connection only (panic_guard.rs).
    let mut serving = Box::pin(crate::panic_guard::contained(connection_task(
        held,
        at,
        ctx.clone(),
        initial,
        waiting,
    )));
    // In place first: a request that is all there, answered at once on a
    // socket that takes the answer, ends here. Whatever waits was
    // registered with this throwaway waker; the task's first poll (spawning
    // polls it at once) registers its own. A panic in that poll is caught
    // here, as tokio's harness would catch it in the connection's task: it
    // loses this connection (dropped with the future), not the accept loop.
    let polled = crate::panic_guard::contain(|| {
        serving
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
    });
    if !matches!(polled, Ok(std::task::Poll::Pending)) {
        return;
    }
    tokio::spawn(serving);
}

/// The task of one connection: its size is what every open connection
/// costs in its task cell, idle ones included (`serve_tests.rs` pins it).
/// A plain function returning an `async move` block (see
/// [`serve_connection`]).
fn connection_task(
    mut held: Held,
    at: Ends,
    ctx: Arc<ConnContext>,
    mut initial: BytesMut,
    waiting: bool,
) -> impl Future<Output = ()> + Send {
    // Counted as work until its first bytes are there (gate.rs).
    let fresh = ctx
        .gate
        .as_ref()
        .filter(|_| waiting)
        .map(|g| g.provisional());
    // Every capture is used in place (no local copies, the connection's
    // two ends are lent, not moved): what is held across an await is in
    // the future once.
    async move {
        if fresh.is_some() {
            // Boxed: its timer and readiness wait (304 bytes) would be the
            // largest state of every connection's future.
            let _ = Box::pin(tokio::time::timeout(
                FIRST_BYTES_WAIT,
                first_bytes(&held.conn),
            ))
            .await;
            drop(fresh);
        }
        if let Some(tls) = &ctx.listener.tls {
            if let Connection::Tcp(sock) = std::mem::replace(&mut held.conn, Connection::None) {
                let stream = std::net::TcpStream::from(sock.into_fd());
                let Ok(stream) = TcpStream::from_std(stream) else {
                    return;
                };
                // boxed: a plain connection's task does not carry TLS state
                Box::pin(serve_tls(stream, &at, tls, &ctx)).await;
            }
        } else {
            match &mut held.conn {
                Connection::Tcp(sock) | Connection::Unix(sock) => {
                    let (mut reader, mut writer) = sock.split();
                    serve_stream(&mut reader, &mut writer, &at, &ctx, &mut initial).await;
                }
                Connection::None => {}
            }
        }
        drop(held);
    }
}

/// Resolves when the first bytes of a just-accepted connection are there.
async fn first_bytes(conn: &Connection) {
    if let Some(sock) = conn.socket() {
        let _ = sock.readable().await;
    }
}

/// Handshake a TCP connection on a TLS listener, then serve it over the
/// TLS stream's halves; as HTTP/2 when ALPN chose `h2` (offered on
/// listeners with HTTP/2).
async fn serve_tls(
    stream: TcpStream,
    plain: &Ends,
    tls: &crate::tls::TlsListener,
    ctx: &Arc<ConnContext>,
) {
    let h2 = ctx.listener.http2;
    let (Some(peer), local) = (plain.peer, plain.local) else {
        return;
    };
    let stop = ctx.shutdown.clone();
    let shaken = crate::tls::handshake(tls, stream, peer, local, stop, h2.is_some()).await;
    let Some((stream, facts)) = shaken else {
        return;
    };
    let at = Ends::new(Some(peer), local, Some(facts.clone()));
    if let Some(settings) = h2
        && facts.alpn.as_deref() == Some(crate::tls::ALPN_H2)
    {
        crate::h2::serve_h2(stream, at, ctx.clone(), ctx.shutdown.clone(), settings).await;
        return;
    }
    let (mut reader, mut writer) = tokio::io::split(stream);
    serve_stream(&mut reader, &mut writer, &at, ctx, &mut BytesMut::new()).await;
}

pin_project_lite::pin_project! {
    /// One of a connection's two serving futures, polled in place (an
    /// `async` wrapper would keep a second copy of their arguments in every
    /// connection's task).
    #[project = ServingProj]
    enum Serving<H, U> {
        Http { #[pin] inner: H },
        Uwsgi { #[pin] inner: U },
    }
}

impl<H: Future<Output = ()>, U: Future<Output = ()>> Future for Serving<H, U> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        match self.project() {
            ServingProj::Http { inner } => inner.poll(cx),
            ServingProj::Uwsgi { inner } => inner.poll(cx),
        }
    }
}

fn serve_stream<'a, R, W>(
    reader: &'a mut R,
    writer: &'a mut W,
    at: &'a Ends,
    ctx: &'a Arc<ConnContext>,
    initial: &'a mut BytesMut,
) -> impl Future<Output = ()> + 'a
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + SendFile + Unpin,
{
    match ctx.listener.wire {
        Wire::Http => Serving::Http {
            inner: serve_connection(reader, writer, at, ctx, initial),
        },
        Wire::Uwsgi => Serving::Uwsgi {
            inner: serve_uwsgi_connection(
                reader,
                writer,
                at.peer,
                at.local,
                ctx,
                std::mem::take(initial),
            ),
        },
    }
}

#[cfg(test)]
#[path = "serve_tests.rs"]
mod tests;
