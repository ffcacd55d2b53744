//! Streaming an upstream response body to the client, for every upstream
//! protocol (uwsgi, HTTP): a task reads the upstream socket and feeds a
//! bounded channel that the connection drains
//! ([`portico_server::ResponseBody::Stream`]). The body ends at the close of
//! the connection, or after `Content-Length` bytes, or at the last chunk.
//!
//! When the client goes away the channel's receiver is dropped, the task
//! notices (even while waiting on the upstream) and drops the upstream
//! connection. A body cut short ends with [`StreamItem::Abort`], so the
//! client sees the truncation instead of a short body that looks complete.
//! A body that ended cleanly, exactly at its framing's end, hands the
//! connection to the pump's `reuse` hook (a keep-alive pool), if it has one.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use portico_proto::http1::{ChunkedDecoder, ChunkedStep};
use portico_server::StreamItem;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use crate::error::{ErrorKind, Level, Phase, ProxyError};
use crate::log::LogContext;
use crate::spool::Spool;
use crate::target::PeerStream;

/// Bytes asked of the socket per read: a piece of body at most this big.
pub(crate) const READ_CHUNK: usize = 16 * 1024;

/// Body pieces waiting between the upstream and a slow client with
/// `uwsgi_buffering`/`proxy_buffering on`: the upstream is drained ahead of the client (up to
/// this many reads of [`READ_CHUNK`]), so it is freed sooner.
pub(crate) const BUFFERED_PIECES: usize = 16;
/// With buffering off: one piece in flight, the client sets the pace.
pub(crate) const UNBUFFERED_PIECES: usize = 1;

/// How the body is delimited.
pub(crate) enum Framing {
    /// This many bytes remain.
    Length(u64),
    Chunked(Box<ChunkedDecoder>),
    /// Until the upstream closes (the uwsgi default).
    Close,
}

/// Where a connection goes when its body ended cleanly (a keep-alive pool).
pub(crate) type Reuse = Box<dyn FnOnce(PeerStream) + Send>;

/// The task's state: the upstream socket and what is left of the body.
pub(crate) struct BodyPump {
    pub stream: PeerStream,
    /// Body bytes already read (with the head, or by the last read).
    pub buf: BytesMut,
    pub framing: Framing,
    pub read_timeout: Duration,
    pub log: LogContext,
    /// Called with the connection after a clean end (never for a
    /// close-delimited body, excess bytes, a failure or a client gone).
    pub reuse: Option<Reuse>,
}

/// What to do after looking at the buffer.
enum Next {
    Send(Bytes),
    End,
    Read,
}

impl BodyPump {
    /// Move the body to `tx` until it ends, fails, or the receiver is gone.
    /// With a `spool` (buffering on) the upstream is read ahead of the
    /// client; without one the client sets the pace.
    pub(crate) async fn run(mut self, tx: mpsc::Sender<StreamItem>, mut spool: Option<Spool>) {
        loop {
            let next = match self.next_piece() {
                Ok(next) => next,
                Err(e) => {
                    self.log.log(&e);
                    return self.finish(&tx, spool, false).await;
                }
            };
            match next {
                Next::Send(data) => match spool.as_mut() {
                    None => {
                        if tx.send(StreamItem::Data(data)).await.is_err() {
                            return; // the client is gone: drop the upstream
                        }
                    }
                    Some(spool) => {
                        if let Err(e) = spool.push(data) {
                            self.log.log(&spool_error(e));
                            return self.finish(&tx, None, false).await;
                        }
                    }
                },
                Next::End => {
                    if self.buf.is_empty()
                        && !matches!(self.framing, Framing::Close)
                        && let Some(reuse) = self.reuse.take()
                    {
                        if spool.as_ref().is_none_or(Spool::is_empty) && tx.is_closed() {
                            return; // the client is gone: not pooled
                        }
                        reuse(self.stream);
                    }
                    return Self::drain(&tx, spool, true, &self.log).await;
                }
                Next::Read => {
                    // Hand held pieces to the client while reading more.
                    let held = spool.as_ref().is_some_and(|s| !s.is_empty());
                    let room = !held || spool.as_ref().is_none_or(|s| !s.is_full());
                    self.buf.reserve(READ_CHUNK);
                    let read = tokio::select! {
                        permit = tx.reserve(), if held => {
                            let Ok(permit) = permit else { return };
                            match spool.as_mut().map(Spool::pop) {
                                Some(Ok(Some(item))) => permit.send(item),
                                Some(Err(e)) => {
                                    self.log.log(&spool_error(e));
                                    return;
                                }
                                _ => {}
                            }
                            continue;
                        }
                        r = tokio::time::timeout(self.read_timeout, self.stream.read_buf(&mut self.buf)), if room => r,
                        () = tx.closed() => return,
                    };
                    let failure = match read {
                        Ok(Ok(0)) => self.at_eof(),
                        Ok(Ok(_)) => None,
                        Ok(Err(e)) => Some(ProxyError::io(
                            ErrorKind::Read,
                            Phase::ReadingBody,
                            "recv()",
                            e,
                        )),
                        Err(_) => Some(ProxyError::timeout(Phase::ReadingBody)),
                    };
                    if let Some(e) = failure {
                        self.log.log(&e);
                        return self.finish(&tx, spool, false).await;
                    }
                    if matches!(self.framing, Framing::Close) && self.buf.is_empty() {
                        // EOF on a close-delimited body: the normal end.
                        return self.finish(&tx, spool, true).await;
                    }
                }
            }
        }
    }

    /// The upstream part is over: close it, then deliver what is held.
    async fn finish(self, tx: &mpsc::Sender<StreamItem>, spool: Option<Spool>, clean: bool) {
        let BodyPump { stream, log, .. } = self;
        drop(stream);
        Self::drain(tx, spool, clean, &log).await;
    }

    /// Deliver what is held, then the end (or the abort).
    async fn drain(
        tx: &mpsc::Sender<StreamItem>,
        mut spool: Option<Spool>,
        clean: bool,
        log: &LogContext,
    ) {
        while let Some(spool) = spool.as_mut() {
            match spool.pop() {
                Ok(Some(item)) => {
                    if tx.send(item).await.is_err() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    log.log(&spool_error(e));
                    let _ = tx.send(StreamItem::Abort).await;
                    return;
                }
            }
        }
        let last = if clean {
            StreamItem::End
        } else {
            StreamItem::Abort
        };
        let _ = tx.send(last).await;
    }

    /// The next piece the buffer allows, or whether to read or stop.
    fn next_piece(&mut self) -> Result<Next, ProxyError> {
        match &mut self.framing {
            Framing::Length(0) => {
                if !self.buf.is_empty() {
                    self.log.log(&excess_data());
                    self.buf.clear();
                    self.reuse = None;
                }
                Ok(Next::End)
            }
            Framing::Length(remaining) => {
                if self.buf.is_empty() {
                    return Ok(Next::Read);
                }
                let n =
                    usize::try_from(*remaining).map_or(self.buf.len(), |r| r.min(self.buf.len()));
                *remaining -= n as u64;
                Ok(Next::Send(self.buf.split_to(n).freeze()))
            }
            Framing::Chunked(decoder) => match decoder.decode(&mut self.buf) {
                Ok(ChunkedStep::Data(d)) => Ok(Next::Send(d)),
                Ok(ChunkedStep::NeedMore) => Ok(Next::Read),
                Ok(ChunkedStep::Done) => Ok(Next::End),
                Err(_) => Err(ProxyError::new(
                    ErrorKind::InvalidHeader,
                    Phase::ReadingBody,
                    "upstream sent invalid chunked response",
                )),
            },
            Framing::Close if self.buf.is_empty() => Ok(Next::Read),
            Framing::Close => Ok(Next::Send(self.buf.split().freeze())),
        }
    }

    /// The upstream closed: fine for a close-delimited body, a failure
    /// for one whose length or last chunk has not arrived.
    fn at_eof(&mut self) -> Option<ProxyError> {
        match self.framing {
            Framing::Close => None,
            Framing::Length(0) => None,
            _ => Some(ProxyError::new(
                ErrorKind::ClosedEarly,
                Phase::ReadingBody,
                "upstream prematurely closed connection",
            )),
        }
    }
}

/// nginx's warning when the upstream sends past its `Content-Length`.
pub(crate) fn excess_data() -> ProxyError {
    ProxyError::new(
        ErrorKind::InvalidHeader,
        Phase::ReadingBody,
        "upstream sent more data than specified in \"Content-Length\" header",
    )
    .with_level(Level::Warn)
}

/// The temporary file failed (nginx logs the system call and errno).
fn spool_error(e: std::io::Error) -> ProxyError {
    ProxyError::new(
        ErrorKind::Read,
        Phase::ReadingBody,
        format!("buffering the response to a temporary file failed: {e}"),
    )
    .with_level(Level::Crit)
}
