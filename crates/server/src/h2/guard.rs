//! Defences `h2` leaves to its user: a flood of control frames each of
//! which costs the server an answer (SETTINGS, each acknowledged; PING,
//! each echoed), and streams the client opens and then resets once the
//! server has started on them (rapid reset, CVE-2023-44487, in its form
//! that `h2`'s count of streams reset before they were accepted misses).
//!
//! The frame counter reads the frame headers as bytes go by on the read
//! side (no parsing beyond the 9-byte header); either defence trips the
//! connection's [`Trip`], on which the driver closes the connection with
//! GOAWAY ENHANCE_YOUR_CALM, as nginx does on "http2 flood detected".

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

/// Control frames (non-ACK SETTINGS and PING) allowed in a burst.
const CONTROL_BURST: u32 = 200;

/// Control frames allowed per second beyond the burst.
const CONTROL_PER_SECOND: u32 = 20;

/// Streams the client may reset after they were accepted, before the
/// ratio rule applies.
const RESET_FLOOR: u32 = 100;

const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const ACK: u8 = 0x1;

/// The connection has been found abusing: set once, waited on by the driver.
#[derive(Default)]
pub(crate) struct Trip {
    tripped: AtomicBool,
    notify: Notify,
    /// Streams accepted on the connection.
    accepted: AtomicU32,
    /// Of those, streams the client reset before their response was complete.
    reset: AtomicU32,
}

impl Trip {
    fn trip(&self) {
        if !self.tripped.swap(true, Ordering::SeqCst) {
            self.notify.notify_one();
        }
    }

    /// Whether the connection has been tripped.
    pub(crate) fn is_tripped(&self) -> bool {
        self.tripped.load(Ordering::SeqCst)
    }

    /// Wait until the connection is tripped.
    pub(crate) async fn tripped(&self) {
        if !self.is_tripped() {
            self.notify.notified().await;
        }
    }

    /// A stream was accepted.
    pub(crate) fn accepted(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
    }

    /// The client reset a stream the server was working on: beyond
    /// [`RESET_FLOOR`] such streams, and more than half of all the
    /// connection's streams, the connection is tripped.
    pub(crate) fn client_reset(&self) {
        let reset = self.reset.fetch_add(1, Ordering::Relaxed) + 1;
        let accepted = self.accepted.load(Ordering::Relaxed);
        if reset > RESET_FLOOR && reset.saturating_mul(2) > accepted {
            self.trip();
        }
    }
}

/// Reads frame headers out of the bytes a connection receives (after the
/// client preface) and counts the control frames.
pub(crate) struct FrameCounter {
    /// Preface bytes still to skip.
    preface_left: usize,
    header: [u8; 9],
    have: usize,
    /// Payload bytes of the current frame still to skip.
    skip: usize,
    tokens: u32,
    refilled: Instant,
}

impl FrameCounter {
    pub(crate) fn new(preface_len: usize) -> FrameCounter {
        FrameCounter {
            preface_left: preface_len,
            header: [0; 9],
            have: 0,
            skip: 0,
            tokens: CONTROL_BURST,
            refilled: Instant::now(),
        }
    }

    /// Account for `bytes` just read; false when the client is flooding.
    pub(crate) fn scan(&mut self, mut bytes: &[u8]) -> bool {
        let n = self.preface_left.min(bytes.len());
        self.preface_left -= n;
        bytes = &bytes[n..];
        while !bytes.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                bytes = &bytes[n..];
                continue;
            }
            let n = (9 - self.have).min(bytes.len());
            self.header[self.have..self.have + n].copy_from_slice(&bytes[..n]);
            self.have += n;
            bytes = &bytes[n..];
            if self.have < 9 {
                break;
            }
            self.have = 0;
            let h = self.header;
            self.skip = usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]);
            let (kind, flags) = (h[3], h[4]);
            if (kind == SETTINGS || kind == PING) && flags & ACK == 0 && !self.take_token() {
                return false;
            }
        }
        true
    }

    fn take_token(&mut self) -> bool {
        let now = Instant::now();
        let earned = now.duration_since(self.refilled).as_millis() as u64
            * u64::from(CONTROL_PER_SECOND)
            / 1000;
        if earned > 0 {
            self.tokens = (u64::from(self.tokens) + earned).min(u64::from(CONTROL_BURST)) as u32;
            self.refilled = now;
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

/// A connection's I/O with its received frames counted: once the client
/// floods, reads stop (the driver sends GOAWAY and closes).
pub(crate) struct Guarded<T> {
    pub io: T,
    pub counter: FrameCounter,
    pub trip: Arc<Trip>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Guarded<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.trip.is_tripped() {
            // Nothing more is read; the driver is closing the connection.
            return Poll::Pending;
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if polled.is_ready() && !this.counter.scan(&buf.filled()[before..]) {
            this.trip.trip();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Guarded<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut f = vec![
            (len >> 16) as u8,
            (len >> 8) as u8,
            len as u8,
            kind,
            flags,
            0,
            0,
            0,
            0,
        ];
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn a_settings_flood_is_caught_however_the_bytes_are_cut() {
        let mut counter = FrameCounter::new(3);
        let mut wire = b"PRI".to_vec();
        for _ in 0..CONTROL_BURST + 5 {
            wire.extend(frame(SETTINGS, 0, &[0, 3, 0, 0, 0, 100]));
        }
        let mut ok = true;
        for piece in wire.chunks(7) {
            ok &= counter.scan(piece);
        }
        assert!(!ok);
    }

    #[test]
    fn acks_and_data_frames_are_not_counted() {
        let mut counter = FrameCounter::new(0);
        for _ in 0..10 * CONTROL_BURST {
            assert!(counter.scan(&frame(SETTINGS, ACK, &[])));
            assert!(counter.scan(&frame(PING, ACK, &[0; 8])));
            assert!(counter.scan(&frame(0, 0, &[1; 100])));
        }
    }

    #[test]
    fn many_client_resets_trip_the_connection_only_when_most_streams_are_reset() {
        let trip = Trip::default();
        for _ in 0..1000 {
            trip.accepted();
        }
        for _ in 0..400 {
            trip.client_reset();
        }
        assert!(!trip.is_tripped());
        for _ in 0..200 {
            trip.client_reset();
        }
        assert!(trip.is_tripped());
    }
}
