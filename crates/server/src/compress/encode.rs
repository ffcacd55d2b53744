//! The compressing body: a [`PullBody`] that reads the response's own
//! body (in memory, a file region, or a stream) in pieces of at most
//! [`PIECE`] bytes, feeds them to a gzip (flate2 over zlib-rs) or brotli
//! encoder, and yields what the encoder gives back. Memory stays bounded
//! by the encoder's state plus one piece, whatever the body's size. When
//! the inner stream has nothing ready, what was fed so far is flushed
//! (a sync flush), so a slow producer's bytes reach the client without
//! waiting for the encoder's buffers to fill; at the end the stream is
//! finished. How the input is cut never changes the decoded output.
//! The gzip body counts its bytes in and out for `$gzip_ratio`.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;

use super::decide::Coding;
use crate::body_stream::{BodyStream, PullBody};
use crate::handler::{ResponseBody, StreamItem};

/// The most input fed to the encoder at once (and read from a file at once).
pub(crate) const PIECE: usize = 32 * 1024;

/// Pieces fed in one poll without any output before the body yields to
/// the other tasks of the worker (a slow level on a big body would
/// otherwise hold the event loop for milliseconds).
const PIECES_PER_POLL: u32 = 8;

/// brotli's internal buffer (the crate's `CompressorWriter` copies through it).
const BROTLI_BUFFER: usize = 16 * 1024;

/// The encoder, writing into a `Vec` that is drained after every piece.
enum Encoder {
    Gzip(Box<flate2::write::GzEncoder<Vec<u8>>>),
    Brotli(Box<brotli::CompressorWriter<Vec<u8>>>),
}

impl Encoder {
    fn new(params: Params) -> Encoder {
        match params.coding {
            Coding::Gzip => Encoder::Gzip(Box::new(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::new(params.level),
            ))),
            Coding::Brotli => Encoder::Brotli(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                BROTLI_BUFFER,
                params.level,
                params.window_bits,
            ))),
        }
    }

    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Encoder::Gzip(e) => e.write_all(data),
            Encoder::Brotli(e) => e.write_all(data),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Gzip(e) => e.flush(),
            Encoder::Brotli(e) => e.flush(),
        }
    }

    /// The output so far, taken out.
    fn take(&mut self) -> Vec<u8> {
        match self {
            Encoder::Gzip(e) => std::mem::take(e.get_mut()),
            Encoder::Brotli(e) => std::mem::take(e.get_mut()),
        }
    }

    /// Finish the stream; the rest of the output.
    fn finish(self) -> io::Result<Vec<u8>> {
        match self {
            Encoder::Gzip(e) => (*e).finish(),
            Encoder::Brotli(e) => Ok(e.into_inner()),
        }
    }
}

/// What the gzip filter took in and gave out (gzip header and trailer
/// included, as nginx counts them), for `$gzip_ratio`: set when the body
/// is complete, so a cut body has none.
#[derive(Debug, Default)]
pub struct GzipTally {
    zin: AtomicU64,
    zout: AtomicU64,
}

/// `$gzip_ratio` as nginx prints it (`ngx_http_gzip_ratio_variable`): in
/// over out with two decimals, the third rounding half up.
pub fn ratio_text(zin: u64, zout: u64) -> String {
    let zout = zout.max(1);
    let mut int = zin / zout;
    let mut frac = (zin * 100 / zout) % 100;
    if (zin * 1000 / zout) % 10 > 4 {
        frac += 1;
        if frac > 99 {
            int += 1;
            frac = 0;
        }
    }
    format!("{int}.{frac:02}")
}

impl GzipTally {
    /// Bytes in and out, once the body was completed.
    pub fn totals(&self) -> Option<(u64, u64)> {
        let (zin, zout) = (
            self.zin.load(Ordering::Relaxed),
            self.zout.load(Ordering::Relaxed),
        );
        (zout > 0).then_some((zin, zout))
    }

    /// [`ratio_text`] of the totals, once the body was completed.
    pub fn ratio_text(&self) -> Option<String> {
        self.totals().map(|(zin, zout)| ratio_text(zin, zout))
    }

    fn set(&self, zin: u64, zout: u64) {
        self.zin.store(zin, Ordering::Relaxed);
        self.zout.store(zout, Ordering::Relaxed);
    }
}

/// How to compress.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Params {
    pub coding: Coding,
    /// gzip 1..=9, brotli 0..=11.
    pub level: u32,
    /// brotli's window (log2); unused by gzip.
    pub window_bits: u32,
}

/// Where the uncompressed bytes come from.
enum Input {
    /// Bytes not yet fed (the whole body, or a stream's last piece).
    Bytes(Bytes),
    /// A file region not yet read.
    File { file: File, offset: u64, left: u64 },
}

/// What one step of feeding did.
enum Fed {
    /// A piece went into the encoder.
    Wrote,
    /// The body is complete.
    End,
    /// The inner stream has nothing ready.
    Pending,
    /// The inner body failed or was cut.
    Abort,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Running,
    /// The last bytes went out: `End` next.
    Ending,
    Done,
}

/// A response body, compressed as it is pulled.
pub(crate) struct Compressing {
    params: Params,
    encoder: Option<Encoder>,
    input: Option<Input>,
    stream: Option<BodyStream>,
    scratch: Vec<u8>,
    /// What the producer's Content-Length still allows of a streamed body
    /// (PEP 3333: never more; fewer is a cut body).
    left: Option<u64>,
    /// Input went in since the last flush.
    unflushed: bool,
    state: State,
    /// Bytes fed and bytes given out, and where they go at the end.
    zin: u64,
    zout: u64,
    tally: Option<Arc<GzipTally>>,
}

impl Compressing {
    /// Compress `body` with `params`; `declared`: the Content-Length its
    /// producer announced (held to for a streamed body). Nothing is done
    /// until it is polled.
    pub(crate) fn new(
        body: ResponseBody,
        params: Params,
        declared: Option<u64>,
        tally: Option<Arc<GzipTally>>,
    ) -> Compressing {
        let streamed = matches!(body, ResponseBody::Stream(_));
        let (input, stream) = match body {
            ResponseBody::Empty => (None, None),
            ResponseBody::Full(b) => (Some(Input::Bytes(b)), None),
            ResponseBody::File { file, offset, len } => (
                Some(Input::File {
                    file,
                    offset,
                    left: len,
                }),
                None,
            ),
            ResponseBody::Stream(s) => (None, Some(s)),
        };
        Compressing {
            params,
            encoder: None,
            input,
            stream,
            scratch: Vec::new(),
            left: declared.filter(|_| streamed),
            unflushed: false,
            state: State::Running,
            zin: 0,
            zout: 0,
            tally,
        }
    }

    /// Feed the encoder one piece, pulling from the inner stream when the
    /// current input is spent.
    fn feed(&mut self, cx: &mut Context<'_>) -> io::Result<Fed> {
        loop {
            let encoder = self
                .encoder
                .get_or_insert_with(|| Encoder::new(self.params));
            let allowed = self.left.unwrap_or(u64::MAX).min(PIECE as u64);
            match &mut self.input {
                Some(Input::Bytes(b)) if !b.is_empty() && allowed > 0 => {
                    let piece = b.split_to(b.len().min(allowed as usize));
                    encoder.write(&piece)?;
                    self.zin += piece.len() as u64;
                    self.left = self.left.map(|l| l - piece.len() as u64);
                    return Ok(Fed::Wrote);
                }
                Some(Input::File { file, offset, left }) if *left > 0 && allowed > 0 => {
                    let n = (*left).min(allowed) as usize;
                    self.scratch.resize(n, 0);
                    let got = file.read_at(&mut self.scratch[..n], *offset)?;
                    if got == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the file shrank while it was being sent",
                        ));
                    }
                    *offset += got as u64;
                    *left -= got as u64;
                    encoder.write(&self.scratch[..got])?;
                    self.zin += got as u64;
                    self.left = self.left.map(|l| l - got as u64);
                    return Ok(Fed::Wrote);
                }
                // Spent, or past the announced length (dropped).
                _ => self.input = None,
            }
            let Some(stream) = &mut self.stream else {
                return Ok(Fed::End);
            };
            match stream.poll_next(cx) {
                Poll::Pending => return Ok(Fed::Pending),
                Poll::Ready(Some(StreamItem::Data(b))) => self.input = Some(Input::Bytes(b)),
                Poll::Ready(Some(StreamItem::File { file, offset, len })) => {
                    self.input = Some(Input::File {
                        file,
                        offset,
                        left: len,
                    })
                }
                Poll::Ready(Some(StreamItem::End)) => {
                    self.stream = None;
                    if self.left.is_some_and(|l| l > 0) {
                        // Shorter than announced: the client must see a cut.
                        return Ok(Fed::Abort);
                    }
                    return Ok(Fed::End);
                }
                Poll::Ready(Some(StreamItem::Abort)) | Poll::Ready(None) => return Ok(Fed::Abort),
            }
        }
    }

    /// A piece of output, counted.
    fn out(&mut self, out: Vec<u8>) -> StreamItem {
        self.zout += out.len() as u64;
        StreamItem::Data(Bytes::from(out))
    }

    fn step(&mut self, cx: &mut Context<'_>) -> io::Result<Poll<Option<StreamItem>>> {
        let mut budget = PIECES_PER_POLL;
        loop {
            match self.state {
                State::Done => return Ok(Poll::Ready(None)),
                State::Ending => {
                    self.state = State::Done;
                    return Ok(Poll::Ready(Some(StreamItem::End)));
                }
                State::Running => {}
            }
            match self.feed(cx)? {
                Fed::Wrote => {
                    self.unflushed = true;
                    if let Some(out) = self.encoder.as_mut().map(Encoder::take)
                        && !out.is_empty()
                    {
                        return Ok(Poll::Ready(Some(self.out(out))));
                    }
                    budget -= 1;
                    if budget == 0 {
                        cx.waker().wake_by_ref();
                        return Ok(Poll::Pending);
                    }
                }
                Fed::End => {
                    let encoder = self
                        .encoder
                        .take()
                        .unwrap_or_else(|| Encoder::new(self.params));
                    let out = encoder.finish()?;
                    self.state = State::Ending;
                    if let Some(tally) = &self.tally {
                        tally.set(self.zin, self.zout + out.len() as u64);
                    }
                    if !out.is_empty() {
                        return Ok(Poll::Ready(Some(self.out(out))));
                    }
                }
                Fed::Pending => {
                    if self.unflushed
                        && let Some(encoder) = self.encoder.as_mut()
                    {
                        self.unflushed = false;
                        encoder.flush()?;
                        let out = encoder.take();
                        if !out.is_empty() {
                            return Ok(Poll::Ready(Some(self.out(out))));
                        }
                    }
                    return Ok(Poll::Pending);
                }
                Fed::Abort => {
                    self.state = State::Done;
                    return Ok(Poll::Ready(Some(StreamItem::Abort)));
                }
            }
        }
    }
}

impl PullBody for Compressing {
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<StreamItem>> {
        let this = self.get_mut();
        match this.step(cx) {
            Ok(poll) => poll,
            Err(e) => {
                crate::logln!("portico: compressing a response body failed: {e}");
                this.state = State::Done;
                this.encoder = None;
                Poll::Ready(Some(StreamItem::Abort))
            }
        }
    }
}
