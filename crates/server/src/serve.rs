//! The serving loop of one process: a single-threaded async runtime built
//! in the process that serves (after any fork), accept loops over inherited
//! listeners, and a graceful stop on SIGTERM/SIGINT/SIGQUIT.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use portico_proto::http1::HeadLimits;
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};

use crate::conn::{ConnContext, serve_connection};
use crate::handler::Handler;
use crate::listener::BoundListener;
use crate::log::AccessLog;

/// How serving behaves.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Write one access-log line per request.
    pub access_log: bool,
    /// After a stop signal, how long in-flight requests may take to finish.
    pub shutdown_grace: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            access_log: true,
            shutdown_grace: Duration::from_secs(60),
        }
    }
}

/// Pause after a failed accept (e.g. out of descriptors) before trying again.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// Serve on `listeners` with `handler` until a stop signal, then drain.
/// Builds its own runtime: call it in the process that serves, after forking.
pub fn serve(
    listeners: Vec<BoundListener>,
    handler: Arc<dyn Handler>,
    options: ServeOptions,
    on_ready: impl FnOnce(),
) -> io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async move {
        let (stop_tx, stop_rx) = watch::channel(false);
        let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
        let log = Arc::new(AccessLog::new(options.access_log));
        for bound in listeners {
            bound.socket.set_nonblocking(true)?;
            let listener = TcpListener::from_std(bound.socket)?;
            let ctx = Arc::new(ConnContext {
                handler: handler.clone(),
                log: log.clone(),
                listener: Arc::new(bound.info),
                limits: HeadLimits::default(),
            });
            tokio::spawn(accept_loop(
                listener,
                ctx,
                stop_rx.clone(),
                alive_tx.clone(),
            ));
        }
        drop(alive_tx);
        on_ready();
        wait_for_stop_signal().await?;
        eprintln!("portico: stop signal received, finishing in-flight requests...");
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
        Ok(())
    })
}

async fn wait_for_stop_signal() -> io::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut quit = signal(SignalKind::quit())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
        _ = quit.recv() => {}
    }
    Ok(())
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
            Ok((stream, peer)) => {
                let ctx = ctx.clone();
                let stop = stop.clone();
                let alive = alive.clone();
                tokio::spawn(async move {
                    serve_tcp(stream, peer, &ctx, stop).await;
                    drop(alive);
                });
            }
            Err(e) => {
                eprintln!("portico: accept() on {} failed: {e}", ctx.listener.spec);
                tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
            }
        }
    }
}

async fn serve_tcp(
    mut stream: TcpStream,
    peer: std::net::SocketAddr,
    ctx: &ConnContext,
    stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().unwrap_or(ctx.listener.addr);
    let (mut reader, mut writer) = stream.split();
    serve_connection(&mut reader, &mut writer, peer, local, ctx, stop).await;
}
