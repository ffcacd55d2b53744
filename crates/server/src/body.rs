//! Request bodies: the consumer's end ([`RequestBody`], read by a handler on
//! any thread) and the connection's end ([`BodyPump`], which decodes bytes
//! from the socket and feeds them on demand through a bounded channel).
//!
//! Whatever part of the body arrived with the head is decoded before the
//! handler is called, so a small body never needs a channel at all, and a
//! malformed chunked body that arrived whole is refused before any app runs.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use portico_proto::http1::{BodyFraming, ChunkedDecoder, ChunkedStep};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{Notify, mpsc};

/// How many decoded pieces may wait between the socket and the consumer.
const BODY_CHANNEL_CAPACITY: usize = 4;

/// Why a request body could not be read to its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// The client sent bytes that are not a valid body (bad chunk framing).
    Malformed(&'static str),
    /// The client closed the connection before the body ended.
    Incomplete,
    /// Reading from the socket failed.
    Io(String),
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::Malformed(why) => write!(f, "malformed request body: {why}"),
            BodyError::Incomplete => {
                f.write_str("client closed the connection before the body ended")
            }
            BodyError::Io(e) => write!(f, "error reading the request body: {e}"),
        }
    }
}

impl std::error::Error for BodyError {}

pub(crate) type Piece = Result<Bytes, BodyError>;

/// The handler's view of a request body.
pub struct RequestBody {
    buffered: Bytes,
    stream: Option<BodyStream>,
}

struct BodyStream {
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
            stream: Some(BodyStream {
                rx,
                demand: Arc::new(Notify::new()),
                demanded: false,
            }),
        };
        (body, tx)
    }

    /// True when no more data will come beyond what is buffered.
    pub fn is_complete(&self) -> bool {
        self.stream.is_none()
    }

    /// Take the next piece without waiting.
    pub fn try_next(&mut self) -> TryNext {
        if !self.buffered.is_empty() {
            return TryNext::Data(std::mem::take(&mut self.buffered));
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
        if !self.buffered.is_empty() {
            return Some(Ok(std::mem::take(&mut self.buffered)));
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
        if !self.buffered.is_empty() {
            return Some(Ok(std::mem::take(&mut self.buffered)));
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

impl BodyStream {
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
            stream: Some(BodyStream {
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
        };
        Ok((body, Some(pump)))
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
            match reader.read_buf(rbuf).await {
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
