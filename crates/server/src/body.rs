//! Request bodies: the consumer's end ([`RequestBody`], read by a handler on
//! any thread) and the connection's end ([`BodyPump`], which decodes bytes
//! from the socket and either receives the whole body first
//! ([`BodyPump::receive`] into a [`BodySpool`]) or feeds it on demand through
//! a bounded channel).
//!
//! Whatever part of the body arrived with the head is decoded before the
//! handler is called, so a small body never needs a channel at all, and a
//! malformed chunked body that arrived whole is refused before any app runs.
//! Every read from the client waits at most the body timeout
//! (`client_body_timeout`) for the next byte.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use portico_proto::http1::{BodyFraming, ChunkedDecoder, ChunkedStep};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{Notify, mpsc};
use tokio::time::{Instant, sleep_until};

use crate::body_spool::{BodySpool, SpoolFile};
use crate::receive::BodySource;

/// How many decoded pieces may wait between the socket and the consumer.
const BODY_CHANNEL_CAPACITY: usize = 4;

/// Longest wait for the client's next body byte unless the connection sets
/// its own: nginx's `client_body_timeout` default.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a request body could not be read to its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// The client sent bytes that are not a valid body (bad chunk framing).
    Malformed(&'static str),
    /// The client closed the connection before the body ended.
    Incomplete,
    /// Reading from the socket failed.
    Io(String),
    /// The client sent nothing for the body timeout (`client_body_timeout`).
    TimedOut(Duration),
    /// The body is over the largest allowed, in bytes.
    TooLarge(u64),
    /// The body could not be kept (a temporary file failed).
    Spool(String),
}

impl BodyError {
    /// True when the client was too slow (answered 408).
    pub fn is_timeout(&self) -> bool {
        matches!(self, BodyError::TimedOut(_))
    }
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::Malformed(why) => write!(f, "malformed request body: {why}"),
            BodyError::Incomplete => {
                f.write_str("client closed the connection before the body ended")
            }
            BodyError::Io(e) => write!(f, "error reading the request body: {e}"),
            BodyError::TimedOut(t) => write!(
                f,
                "client sent no request body data for {} s (client_body_timeout)",
                t.as_secs_f64()
            ),
            BodyError::TooLarge(max) => {
                write!(f, "request body is over the limit of {max} bytes")
            }
            BodyError::Spool(e) => write!(f, "cannot keep the request body: {e}"),
        }
    }
}

impl std::error::Error for BodyError {}

pub(crate) type Piece = Result<Bytes, BodyError>;

/// The handler's view of a request body: bytes in memory, then (for a body
/// received first) the rest in a temporary file, or (for a streamed body)
/// pieces still arriving.
pub struct RequestBody {
    buffered: Bytes,
    file: Option<SpoolFile>,
    stream: Option<Feed>,
}

/// The feeding end of a [`RequestBody`] made by [`RequestBody::channel`],
/// for a body that arrives from elsewhere (an HTTP/2 stream). Dropping it
/// ends the body cleanly; [`BodySender::fail`] ends it with an error.
pub struct BodySender {
    tx: mpsc::Sender<Piece>,
    demand: Arc<Notify>,
}

impl BodySender {
    /// Pass on the next piece; false when the consumer is gone.
    pub async fn send(&self, data: Bytes) -> bool {
        self.tx.send(Ok(data)).await.is_ok()
    }

    /// End the body with an error (the consumer's next read gets it).
    pub async fn fail(self, error: BodyError) {
        let _ = self.tx.send(Err(error)).await;
    }

    /// Resolves once the consumer first asks for data (`100 Continue`).
    pub async fn demanded(&self) {
        self.demand.notified().await
    }
}

struct Feed {
    rx: mpsc::Receiver<Piece>,
    /// Tells the connection the consumer wants data (sends `100 Continue`).
    demand: Arc<Notify>,
    demanded: bool,
}

/// The result of a non-blocking read attempt.
pub enum TryNext {
    /// The next piece of the body.
    Data(Bytes),
    /// The body is complete.
    End,
    /// The body failed (client gone, bad chunk, limit exceeded, ...).
    Error(BodyError),
    /// Nothing available yet: wait with [`RequestBody::blocking_next`].
    WouldBlock,
}

impl RequestBody {
    /// A body that is already complete (possibly empty).
    pub fn complete(data: Bytes) -> RequestBody {
        RequestBody {
            buffered: data,
            file: None,
            stream: None,
        }
    }

    /// A body fed piece by piece by the returned [`BodySender`] (at most
    /// `capacity` pieces wait between the two).
    pub fn channel(capacity: usize) -> (BodySender, RequestBody) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let demand = Arc::new(Notify::new());
        let body = RequestBody {
            buffered: Bytes::new(),
            file: None,
            stream: Some(Feed {
                rx,
                demand: demand.clone(),
                demanded: false,
            }),
        };
        (BodySender { tx, demand }, body)
    }

    /// Bytes held in memory, not read yet.
    pub(crate) fn buffered_len(&self) -> u64 {
        self.buffered.len() as u64
    }

    pub(crate) fn spooled(file: SpoolFile) -> RequestBody {
        RequestBody {
            buffered: Bytes::new(),
            file: Some(file),
            stream: None,
        }
    }
    /// A body fed piece by piece through the returned sender by a
    /// connection other than HTTP/1.1's [`BodyPump`] (an HTTP/2 stream):
    /// at most [`BODY_CHANNEL_CAPACITY`] pieces wait for the consumer.
    /// Closing the sender without an error ends the body.
    pub(crate) fn fed() -> (RequestBody, mpsc::Sender<Piece>) {
        let (tx, rx) = mpsc::channel(BODY_CHANNEL_CAPACITY);
        let body = RequestBody {
            buffered: Bytes::new(),
            file: None,
            stream: Some(Feed {
                rx,
                demand: Arc::new(Notify::new()),
                demanded: false,
            }),
        };
        (body, tx)
    }

    /// True when no more data will come beyond what is buffered (in memory
    /// or in a temporary file): reading never waits for the client.
    pub fn is_complete(&self) -> bool {
        self.stream.is_none()
    }

    /// The bytes left to read, when the whole body is already here.
    pub fn complete_len(&self) -> Option<u64> {
        if self.stream.is_some() {
            return None;
        }
        Some(self.buffered.len() as u64 + self.file.as_ref().map_or(0, SpoolFile::left))
    }

    /// What a complete body has next without waiting: `None` when it must
    /// wait for (or ask) the stream.
    fn next_here(&mut self) -> Option<Option<Piece>> {
        if !self.buffered.is_empty() {
            return Some(Some(Ok(std::mem::take(&mut self.buffered))));
        }
        if let Some(file) = self.file.as_mut() {
            match file.next_piece() {
                Some(piece) => return Some(Some(piece)),
                None => self.file = None,
            }
        }
        if self.stream.is_none() {
            return Some(None);
        }
        None
    }

    /// Take the next piece without waiting.
    pub fn try_next(&mut self) -> TryNext {
        match self.next_here() {
            Some(Some(Ok(data))) => return TryNext::Data(data),
            Some(Some(Err(e))) => return TryNext::Error(e),
            Some(None) => return TryNext::End,
            None => {}
        }
        let Some(stream) = self.stream.as_mut() else {
            return TryNext::End;
        };
        stream.ask();
        match stream.rx.try_recv() {
            Ok(Ok(data)) => TryNext::Data(data),
            Ok(Err(e)) => {
                self.stream = None;
                TryNext::Error(e)
            }
            Err(mpsc::error::TryRecvError::Empty) => TryNext::WouldBlock,
            Err(mpsc::error::TryRecvError::Disconnected) => {
                self.stream = None;
                TryNext::End
            }
        }
    }

    /// Wait for the next piece; `None` at the end. For threads outside the
    /// async runtime (the Python threads): it blocks the calling thread.
    pub fn blocking_next(&mut self) -> Option<Piece> {
        if let Some(here) = self.next_here() {
            return here;
        }
        let stream = self.stream.as_mut()?;
        stream.ask();
        let piece = stream.rx.blocking_recv();
        if !matches!(piece, Some(Ok(_))) {
            self.stream = None;
        }
        piece
    }

    /// Wait for the next piece; `None` at the end. For async handlers.
    pub async fn next(&mut self) -> Option<Piece> {
        if let Some(here) = self.next_here() {
            return here;
        }
        let stream = self.stream.as_mut()?;
        stream.ask();
        let piece = stream.rx.recv().await;
        if !matches!(piece, Some(Ok(_))) {
            self.stream = None;
        }
        piece
    }
}

impl Feed {
    fn ask(&mut self) {
        if !self.demanded {
            self.demanded = true;
            self.demand.notify_one();
        }
    }
}

enum Framing {
    Length(u64),
    Chunked(Box<ChunkedDecoder>),
}

/// The connection's end: decodes the body from the socket's read buffer.
pub(crate) struct BodyPump {
    framing: Framing,
    done: bool,
    failed: bool,
    /// `None` once the consumer is gone or the response is finished: the
    /// rest of the body is read and discarded.
    tx: Option<mpsc::Sender<Piece>>,
    pub(crate) demand: Arc<Notify>,
    /// `Expect: 100-continue` was asked and no body byte has been asked for yet.
    pub(crate) awaiting_demand: bool,
    /// Longest wait for the client's next body byte (`client_body_timeout`).
    timeout: Duration,
    /// Since when a read for the consumer has been waiting (kept across
    /// cancelled `feed` calls, so a restarted feed does not restart the clock).
    waiting_since: Option<Instant>,
    /// Largest body fed to the consumer (0: none): a chunked body growing
    /// past it fails with `TooLarge` (`--limit-post` when streaming).
    limit: u64,
    /// Body bytes decoded so far.
    seen: u64,
}

impl BodyPump {
    /// Decode what the read buffer already holds; return the consumer's
    /// body and, when more is to come, the pump that will feed it.
    pub(crate) fn start(
        framing: BodyFraming,
        expect_continue: bool,
        rbuf: &mut BytesMut,
    ) -> Result<(RequestBody, Option<BodyPump>), BodyError> {
        let (prefix, framing) = match framing {
            BodyFraming::None | BodyFraming::Length(0) => {
                return Ok((RequestBody::complete(Bytes::new()), None));
            }
            BodyFraming::Length(n) => {
                if rbuf.len() as u64 >= n {
                    let body = rbuf.split_to(n as usize).freeze();
                    return Ok((RequestBody::complete(body), None));
                }
                let prefix = rbuf.split().freeze();
                let remaining = n - prefix.len() as u64;
                (prefix, Framing::Length(remaining))
            }
            BodyFraming::Chunked => {
                let mut decoder = Box::new(ChunkedDecoder::new());
                let mut prefix = BytesMut::new();
                loop {
                    match decoder.decode(rbuf) {
                        Ok(ChunkedStep::Data(d)) => prefix.extend_from_slice(&d),
                        Ok(ChunkedStep::Done) => {
                            return Ok((RequestBody::complete(prefix.freeze()), None));
                        }
                        Ok(ChunkedStep::NeedMore) => break,
                        Err(e) => return Err(BodyError::Malformed(e.reason())),
                    }
                }
                (prefix.freeze(), Framing::Chunked(decoder))
            }
        };
        let (tx, rx) = mpsc::channel(BODY_CHANNEL_CAPACITY);
        let demand = Arc::new(Notify::new());
        let awaiting_demand = expect_continue && prefix.is_empty();
        let body = RequestBody {
            buffered: prefix,
            file: None,
            stream: Some(Feed {
                rx,
                demand: demand.clone(),
                demanded: false,
            }),
        };
        let pump = BodyPump {
            framing,
            done: false,
            failed: false,
            tx: Some(tx),
            demand,
            awaiting_demand,
            timeout: DEFAULT_BODY_TIMEOUT,
            waiting_since: None,
            limit: 0,
            seen: 0,
        };
        Ok((body, Some(pump)))
    }

    /// Wait at most `timeout` for each of the client's body bytes.
    pub(crate) fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Fail the body once more than `limit` bytes of it (0: no limit)
    /// arrived, `already` of them decoded before the pump started.
    pub(crate) fn set_limit(&mut self, limit: u64, already: u64) {
        self.limit = limit;
        self.seen = already;
    }

    /// Receive the rest of the body into `spool` (after the part the
    /// consumer's `body` already holds), with no consumer involved: the
    /// whole body is here when it returns `Ok`.
    pub(crate) async fn receive<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut R,
        rbuf: &mut BytesMut,
        body: RequestBody,
        spool: &mut BodySpool,
    ) -> Result<(), BodyError> {
        self.tx = None;
        let result = self.receive_inner(reader, rbuf, body, spool).await;
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    async fn receive_inner<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut R,
        rbuf: &mut BytesMut,
        body: RequestBody,
        spool: &mut BodySpool,
    ) -> Result<(), BodyError> {
        spool.push(&body.buffered)?;
        drop(body);
        let timeout = self.timeout;
        let mut source = SocketBody {
            pump: self,
            reader,
            rbuf,
        };
        crate::receive::fill(&mut source, spool, timeout).await
    }

    /// More body remains to be read from the socket.
    pub(crate) fn active(&self) -> bool {
        !self.done && !self.failed
    }

    /// The body could not be read to its end: the connection cannot be reused.
    pub(crate) fn failed(&self) -> bool {
        self.failed
    }

    /// Body bytes still to come, when the framing says (Content-Length).
    pub(crate) fn remaining(&self) -> Option<u64> {
        match &self.framing {
            Framing::Length(n) if self.active() => Some(*n),
            Framing::Length(_) => Some(0),
            Framing::Chunked(_) => None,
        }
    }

    /// From now on read the rest of the body only to throw it away.
    pub(crate) fn discard(&mut self) {
        self.tx = None;
    }

    /// Move one piece of body from the socket to the consumer. Cancel-safe:
    /// it may be dropped at any await point without losing bytes.
    pub(crate) async fn feed<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut R,
        rbuf: &mut BytesMut,
    ) -> Result<u64, BodyError> {
        // A clone, so the permit does not borrow `self` (a Sender clone is an Arc bump).
        let tx = self.tx.clone();
        let permit = match &tx {
            Some(tx) => tx.reserve().await.ok(),
            None => None,
        };
        loop {
            let step = self.decode(rbuf);
            match step {
                Ok(Some(data)) => {
                    let n = data.len() as u64;
                    self.seen += n;
                    if self.limit > 0 && self.seen > self.limit {
                        let e = BodyError::TooLarge(self.limit);
                        return Err(self.fail(permit, e));
                    }
                    if let Some(p) = permit {
                        p.send(Ok(data));
                    }
                    if self.done {
                        self.tx = None;
                    }
                    return Ok(n);
                }
                Ok(None) if self.done => {
                    self.tx = None;
                    return Ok(0);
                }
                Ok(None) => {}
                Err(e) => return Err(self.fail(permit, e)),
            }
            rbuf.reserve(16 * 1024);
            let since = *self.waiting_since.get_or_insert_with(Instant::now);
            let read = tokio::select! {
                biased;
                read = reader.read_buf(rbuf) => read,
                _ = sleep_until(since + self.timeout) => {
                    let e = BodyError::TimedOut(self.timeout);
                    return Err(self.fail(permit, e));
                }
            };
            self.waiting_since = None;
            match read {
                Ok(0) => return Err(self.fail(permit, BodyError::Incomplete)),
                Ok(_) => {}
                Err(e) => return Err(self.fail(permit, BodyError::Io(e.to_string()))),
            }
        }
    }

    fn fail(&mut self, permit: Option<mpsc::Permit<'_, Piece>>, e: BodyError) -> BodyError {
        self.failed = true;
        if let Some(p) = permit {
            p.send(Err(e.clone()));
        }
        self.tx = None;
        e
    }

    /// The next piece from the buffer, `None` if it needs more bytes (or is done).
    fn decode(&mut self, rbuf: &mut BytesMut) -> Result<Option<Bytes>, BodyError> {
        match &mut self.framing {
            Framing::Length(remaining) => {
                if *remaining == 0 {
                    self.done = true;
                    return Ok(None);
                }
                if rbuf.is_empty() {
                    return Ok(None);
                }
                let n = (*remaining).min(rbuf.len() as u64) as usize;
                *remaining -= n as u64;
                if *remaining == 0 {
                    self.done = true;
                }
                Ok(Some(rbuf.split_to(n).freeze()))
            }
            Framing::Chunked(decoder) => match decoder.decode(rbuf) {
                Ok(ChunkedStep::Data(d)) => Ok(Some(d)),
                Ok(ChunkedStep::NeedMore) => Ok(None),
                Ok(ChunkedStep::Done) => {
                    self.done = true;
                    Ok(None)
                }
                Err(e) => Err(BodyError::Malformed(e.reason())),
            },
        }
    }
}

/// A body read from the socket through its pump, as a [`BodySource`].
struct SocketBody<'a, R> {
    pump: &'a mut BodyPump,
    reader: &'a mut R,
    rbuf: &'a mut BytesMut,
}

impl<R: AsyncRead + Unpin> BodySource for SocketBody<'_, R> {
    async fn next_piece(&mut self) -> Result<Option<Bytes>, BodyError> {
        loop {
            match self.pump.decode(self.rbuf)? {
                Some(data) => return Ok(Some(data)),
                None if self.pump.done => return Ok(None),
                None => {}
            }
            self.rbuf.reserve(16 * 1024);
            match self.reader.read_buf(self.rbuf).await {
                Ok(0) => return Err(BodyError::Incomplete),
                Ok(_) => {}
                Err(e) => return Err(BodyError::Io(e.to_string())),
            }
        }
    }
}

#[cfg(test)]
#[path = "body_tests.rs"]
mod tests;
