//! Streaming an upstream response body to the client, for every upstream
//! protocol (uwsgi, HTTP), as a [`PullBody`] the connection's writer polls
//! in place: the upstream socket is read when the writer asks for the next
//! piece, so a piece goes from the upstream to the client with no task and
//! no channel hop. The body ends at the close of the connection, or after
//! `Content-Length` bytes, or at the last chunk.
//!
//! [`BodyReader`] is the one reader: it yields the body's pieces, and at a
//! clean end, exactly at its framing's end, hands the connection to its
//! `reuse` hook (a keep-alive pool) the moment the last byte is read. A
//! body cut short ends with [`StreamItem::Abort`], so the client sees the
//! truncation instead of a short body that looks complete. When the client
//! goes away the writer drops the body, and with it the upstream
//! connection: closed, never pooled.
//!
//! Two bodies use it:
//! - [`Unbuffered`] (`proxy_buffering off`): one piece at a time, the
//!   client sets the pace;
//! - [`Buffered`] (`proxy_buffering on`): whatever the upstream has ready
//!   when the head is in is read at once into a [`Spool`] (memory, then a
//!   temporary file). When that is the whole body (the usual case for a
//!   near upstream) it is served from the spool with no task, the
//!   connection already pooled; when more is still coming, a read-ahead
//!   task takes the reader and the spool, so a slow client does not hold
//!   the upstream: reading ahead is the point there.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use portico_proto::http1::{ChunkedDecoder, ChunkedStep};
use portico_server::{BodyStream, PullBody, StreamItem};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio::time::{Instant, Sleep};

use crate::error::{ErrorKind, Level, Phase, ProxyError};
use crate::log::LogContext;
use crate::spool::Spool;
use crate::target::PeerStream;

/// Bytes asked of the socket per read: a piece of body at most this big.
pub(crate) const READ_CHUNK: usize = 16 * 1024;

/// What `uwsgi_buffering on` reads ahead of a slow client (it has no
/// temporary file): this many pieces of [`READ_CHUNK`], in memory.
pub(crate) const BUFFERED_PIECES: usize = 16;

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

/// One step of the body.
pub(crate) enum Piece {
    Data(Bytes),
    /// The body is complete; the connection was pooled or closed.
    End,
    /// The body is cut short (logged); the connection was closed.
    Failed,
}

/// What to do after looking at the buffer.
enum Next {
    Send(Bytes),
    End,
    Read,
}

/// Reads one response body off the upstream connection.
pub(crate) struct BodyReader {
    /// `None` once the body ended (the connection pooled or closed).
    stream: Option<PeerStream>,
    /// Body bytes already read (with the head, or by the last read).
    buf: BytesMut,
    framing: Framing,
    read_timeout: Duration,
    /// `proxy_read_timeout` between two reads: armed when a read waits.
    timer: Option<Pin<Box<Sleep>>>,
    timer_armed: bool,
    log: LogContext,
    /// Called with the connection after a clean end (never for a
    /// close-delimited body, excess bytes, a failure or a client gone).
    reuse: Option<Reuse>,
}

impl BodyReader {
    pub(crate) fn new(
        stream: PeerStream,
        buf: BytesMut,
        framing: Framing,
        read_timeout: Duration,
        log: LogContext,
        reuse: Option<Reuse>,
    ) -> BodyReader {
        BodyReader {
            stream: Some(stream),
            buf,
            framing,
            read_timeout,
            timer: None,
            timer_armed: false,
            log,
            reuse,
        }
    }

    /// Whether the body is over (the connection no longer held).
    fn finished(&self) -> bool {
        self.stream.is_none()
    }

    /// The next piece, reading the upstream when the buffer has none.
    pub(crate) fn poll_piece(&mut self, cx: &mut Context<'_>) -> Poll<Piece> {
        loop {
            if self.finished() {
                return Poll::Ready(Piece::Failed);
            }
            match self.next_piece() {
                Ok(Next::Send(data)) => return Poll::Ready(Piece::Data(data)),
                Ok(Next::End) => {
                    self.release();
                    return Poll::Ready(Piece::End);
                }
                Ok(Next::Read) => {}
                Err(e) => return Poll::Ready(self.fail(&e)),
            }
            let Some(stream) = self.stream.as_mut() else {
                return Poll::Ready(Piece::Failed);
            };
            self.buf.reserve(READ_CHUNK);
            match pin!(stream.read_buf(&mut self.buf)).poll(cx) {
                Poll::Ready(Ok(0)) => {
                    if let Some(e) = self.at_eof() {
                        return Poll::Ready(self.fail(&e));
                    }
                    if matches!(self.framing, Framing::Close) && self.buf.is_empty() {
                        // EOF on a close-delimited body: the normal end.
                        self.stream = None;
                        return Poll::Ready(Piece::End);
                    }
                }
                Poll::Ready(Ok(_)) => self.timer_armed = false,
                Poll::Ready(Err(e)) => {
                    let e = ProxyError::io(ErrorKind::Read, Phase::ReadingBody, "recv()", e);
                    return Poll::Ready(self.fail(&e));
                }
                Poll::Pending => return self.poll_timer(cx),
            }
        }
    }

    /// A read waits: arm `proxy_read_timeout` if it is not, and see
    /// whether it ran out.
    fn poll_timer(&mut self, cx: &mut Context<'_>) -> Poll<Piece> {
        let deadline = Instant::from_std(portico_server::clock::now()) + self.read_timeout;
        let timer = match &mut self.timer {
            Some(timer) => {
                if !self.timer_armed {
                    timer.as_mut().reset(deadline);
                }
                timer
            }
            None => self
                .timer
                .insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        self.timer_armed = true;
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(self.fail(&ProxyError::timeout(Phase::ReadingBody))),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Log `e` and close the connection.
    fn fail(&mut self, e: &ProxyError) -> Piece {
        self.log.log(e);
        self.stream = None;
        Piece::Failed
    }

    /// A clean end: the connection goes to its pool if it may.
    fn release(&mut self) {
        let stream = self.stream.take();
        if self.buf.is_empty()
            && !matches!(self.framing, Framing::Close)
            && let (Some(stream), Some(reuse)) = (stream, self.reuse.take())
        {
            reuse(stream);
        }
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
    fn at_eof(&self) -> Option<ProxyError> {
        match self.framing {
            Framing::Close | Framing::Length(0) => None,
            _ => Some(ProxyError::new(
                ErrorKind::ClosedEarly,
                Phase::ReadingBody,
                "upstream prematurely closed connection",
            )),
        }
    }
}

/// The body with buffering off: each poll reads the upstream as needed.
pub(crate) struct Unbuffered {
    reader: BodyReader,
    done: bool,
}

impl Unbuffered {
    pub(crate) fn stream(reader: BodyReader) -> BodyStream {
        BodyStream::pull(Unbuffered {
            reader,
            done: false,
        })
    }
}

impl PullBody for Unbuffered {
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<StreamItem>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        Poll::Ready(Some(match std::task::ready!(this.reader.poll_piece(cx)) {
            Piece::Data(data) => return Poll::Ready(Some(StreamItem::Data(data))),
            Piece::End => {
                this.done = true;
                StreamItem::End
            }
            Piece::Failed => {
                this.done = true;
                StreamItem::Abort
            }
        }))
    }
}

/// The body with buffering on (see the module notes).
pub(crate) struct Buffered {
    /// `None` once the upstream part is over, or handed to the task.
    reader: Option<BodyReader>,
    spool: Option<Spool>,
    /// How the upstream part ended (`true`: cleanly), until told.
    ended: Option<bool>,
    /// From the read-ahead task, once there is one.
    ahead: Option<mpsc::Receiver<StreamItem>>,
    log: LogContext,
}

impl Buffered {
    /// Reads what the upstream has ready now; if that is not the whole
    /// body, a read-ahead task takes over at once (the client may not ask
    /// for a byte for a while, and the upstream must not wait for it).
    pub(crate) fn stream(reader: BodyReader, spool: Spool) -> BodyStream {
        let log = reader.log.clone();
        let mut body = Buffered {
            reader: Some(reader),
            spool: Some(spool),
            ended: None,
            ahead: None,
            log,
        };
        // Nothing waits on this poll: a later one registers the real waker.
        body.read_ready(&mut Context::from_waker(std::task::Waker::noop()));
        if body.reader.is_some()
            && let (Some(reader), Some(spool)) = (body.reader.take(), body.spool.take())
        {
            let (tx, rx) = mpsc::channel(1);
            tokio::spawn(read_ahead(reader, spool, tx, body.log.clone()));
            body.ahead = Some(rx);
        }
        BodyStream::pull(body)
    }

    /// Read what the upstream has ready into the spool, without waiting.
    fn read_ready(&mut self, cx: &mut Context<'_>) {
        let (Some(reader), Some(spool)) = (self.reader.as_mut(), self.spool.as_mut()) else {
            return;
        };
        while !spool.is_full() {
            let ended = match reader.poll_piece(cx) {
                Poll::Pending => return,
                Poll::Ready(Piece::Data(data)) => match spool.push(data) {
                    Ok(()) => continue,
                    Err(e) => {
                        self.log.log(&spool_error(e));
                        false
                    }
                },
                Poll::Ready(Piece::End) => true,
                Poll::Ready(Piece::Failed) => false,
            };
            self.reader = None;
            self.ended = Some(ended);
            return;
        }
    }
}

impl PullBody for Buffered {
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<StreamItem>> {
        let this = self.get_mut();
        if let Some(rx) = this.ahead.as_mut() {
            return rx.poll_recv(cx);
        }
        match this.spool.as_mut().map(Spool::pop) {
            Some(Ok(Some(item))) => return Poll::Ready(Some(item)),
            Some(Err(e)) => {
                this.log.log(&spool_error(e));
                this.spool = None;
                this.ended = None;
                return Poll::Ready(Some(StreamItem::Abort));
            }
            Some(Ok(None)) | None => {}
        }
        Poll::Ready(this.ended.take().map(|clean| {
            if clean {
                StreamItem::End
            } else {
                StreamItem::Abort
            }
        }))
    }
}

/// Read the rest of the body into `spool` as fast as the upstream sends
/// it, while handing held pieces to the client as it takes them. Ends when
/// everything is delivered, or when the client is gone (the upstream
/// connection is then closed, unless its body was all in already).
async fn read_ahead(
    reader: BodyReader,
    mut spool: Spool,
    tx: mpsc::Sender<StreamItem>,
    log: LogContext,
) {
    let mut reader = Some(reader);
    let mut ended = None;
    loop {
        let held = !spool.is_empty();
        if !held && let Some(clean) = ended {
            let last = if clean {
                StreamItem::End
            } else {
                StreamItem::Abort
            };
            let _ = tx.send(last).await;
            return;
        }
        let reading = ended.is_none() && !spool.is_full();
        tokio::select! {
            permit = tx.reserve(), if held => {
                let Ok(permit) = permit else { return };
                match spool.pop() {
                    Ok(Some(item)) => permit.send(item),
                    Ok(None) => {}
                    Err(e) => {
                        log.log(&spool_error(e));
                        permit.send(StreamItem::Abort);
                        return;
                    }
                }
            }
            piece = poll_fn(|cx| match reader.as_mut() {
                Some(reader) => reader.poll_piece(cx),
                None => Poll::Ready(Piece::Failed),
            }), if reading => match piece {
                Piece::Data(data) => {
                    if let Err(e) = spool.push(data) {
                        log.log(&spool_error(e));
                        reader = None; // closes the upstream
                        ended = Some(false);
                    }
                }
                Piece::End => ended = Some(true),
                Piece::Failed => ended = Some(false),
            },
            () = tx.closed() => return, // the client is gone: drop the upstream
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

#[cfg(test)]
#[path = "pump_tests.rs"]
mod tests;
