//! The pulled upstream body against a socket pair: pieces come as the
//! writer polls, with no task (unbuffered, or buffered with the body all
//! in); a body still coming is read ahead by a task; the connection is
//! pooled only after a clean end, and closed when the client goes away,
//! when the body is cut short or when the read times out.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use portico_proto::http1::ChunkedDecoder;
use portico_server::{BodyStream, StreamItem};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use super::{BodyReader, Buffered, Framing, Reuse, Unbuffered};
use crate::log::LogContext;
use crate::spool::Spool;
use crate::target::PeerStream;

/// A reader over one end of a socket pair; the other end plays the
/// upstream. `pooled` counts the connections handed to the pool.
fn pair_reader(framing: Framing, timeout: Duration) -> (BodyReader, UnixStream, Arc<AtomicUsize>) {
    let Ok((ours, theirs)) = UnixStream::pair() else {
        panic!("socket pair");
    };
    reader_on(ours, theirs, framing, timeout)
}

fn reader_on(
    ours: UnixStream,
    theirs: UnixStream,
    framing: Framing,
    timeout: Duration,
) -> (BodyReader, UnixStream, Arc<AtomicUsize>) {
    let pooled = Arc::new(AtomicUsize::new(0));
    let count = pooled.clone();
    let reuse: Reuse = Box::new(move |_stream| {
        count.fetch_add(1, Ordering::SeqCst);
    });
    let reader = BodyReader::new(
        PeerStream::Unix(ours),
        BytesMut::new(),
        framing,
        timeout,
        LogContext::blank(),
        Some(reuse),
    );
    (reader, theirs, pooled)
}

fn chunked() -> Framing {
    Framing::Chunked(Box::new(ChunkedDecoder::new()))
}

fn spool() -> Spool {
    Spool::new(64 * 1024, 0, std::env::temp_dir())
}

fn tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// Everything the body yields, and whether it ended cleanly.
async fn collect(mut body: BodyStream) -> (Vec<u8>, bool) {
    let mut all = Vec::new();
    while let Some(item) = body.next().await {
        match item {
            StreamItem::Data(d) => all.extend_from_slice(&d),
            StreamItem::End => return (all, true),
            _ => return (all, false),
        }
    }
    (all, false)
}

#[tokio::test]
async fn an_unbuffered_body_is_read_as_the_writer_polls_with_no_task() {
    let (reader, mut upstream, pooled) = pair_reader(Framing::Length(11), Duration::from_secs(5));
    let before = tasks();
    let mut body = Unbuffered::stream(reader);
    assert_eq!(format!("{body:?}"), "BodyStream::Pull");
    assert!(body.try_next().is_none(), "nothing sent yet");
    assert!(upstream.write_all(b"hello").await.is_ok());
    assert!(matches!(body.next().await, Some(StreamItem::Data(d)) if d == "hello"));
    assert!(upstream.write_all(b" world").await.is_ok());
    assert!(matches!(body.next().await, Some(StreamItem::Data(d)) if d == " world"));
    assert_eq!(tasks(), before, "no pump task");
    assert!(matches!(body.next().await, Some(StreamItem::End)));
    assert_eq!(pooled.load(Ordering::SeqCst), 1, "pooled at the clean end");
    assert!(body.next().await.is_none());
}

#[tokio::test]
async fn a_client_gone_mid_body_closes_the_upstream_connection() {
    let (reader, mut upstream, pooled) =
        pair_reader(Framing::Length(1 << 20), Duration::from_secs(5));
    let mut body = Unbuffered::stream(reader);
    assert!(upstream.write_all(&[b'x'; 4096]).await.is_ok());
    assert!(matches!(body.next().await, Some(StreamItem::Data(_))));
    drop(body); // the writer failed: the client went away
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(2), upstream.read_to_end(&mut rest)).await;
    assert!(
        matches!(read, Ok(Ok(0))),
        "the upstream sees its connection closed"
    );
    assert_eq!(pooled.load(Ordering::SeqCst), 0, "never pooled");
}

#[tokio::test]
async fn a_buffered_body_all_in_is_pooled_at_once_and_served_without_a_task() {
    let Ok((ours, mut upstream)) = UnixStream::pair() else {
        panic!("socket pair");
    };
    let body = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    assert!(upstream.write_all(body).await.is_ok());
    // As after the head was read: the runtime knows the socket is readable.
    assert!(ours.readable().await.is_ok());
    let (reader, _upstream, pooled) = reader_on(ours, upstream, chunked(), Duration::from_secs(5));
    let before = tasks();
    let body = Buffered::stream(reader, spool());
    assert_eq!(
        pooled.load(Ordering::SeqCst),
        1,
        "pooled before the client reads"
    );
    assert_eq!(tasks(), before, "no read-ahead task");
    assert_eq!(collect(body).await, (b"hello world".to_vec(), true));
}

#[tokio::test]
async fn a_buffered_body_still_coming_is_read_ahead_of_the_client() {
    let (reader, mut upstream, pooled) = pair_reader(Framing::Length(10), Duration::from_secs(5));
    assert!(upstream.write_all(b"01234").await.is_ok());
    let before = tasks();
    let body = Buffered::stream(reader, spool());
    assert_eq!(tasks(), before + 1, "a read-ahead task");
    assert!(upstream.write_all(b"56789").await.is_ok());
    for _ in 0..100 {
        if pooled.load(Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(pooled.load(Ordering::SeqCst), 1, "pooled with no reader");
    assert_eq!(collect(body).await, (b"0123456789".to_vec(), true));
}

#[tokio::test]
async fn an_upstream_that_closes_early_or_stalls_cuts_the_body_short() {
    let (reader, mut upstream, pooled) = pair_reader(Framing::Length(10), Duration::from_secs(5));
    assert!(upstream.write_all(b"0123").await.is_ok());
    drop(upstream);
    assert_eq!(
        collect(Unbuffered::stream(reader)).await,
        (b"0123".to_vec(), false)
    );
    assert_eq!(pooled.load(Ordering::SeqCst), 0);

    let (reader, _upstream, pooled) = pair_reader(Framing::Length(10), Duration::from_millis(50));
    let started = std::time::Instant::now();
    assert_eq!(
        collect(Unbuffered::stream(reader)).await,
        (Vec::new(), false)
    );
    assert!(
        started.elapsed() >= Duration::from_millis(50),
        "after the read timeout"
    );
    assert_eq!(pooled.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_close_delimited_body_ends_clean_at_eof_and_is_not_pooled() {
    let (reader, mut upstream, pooled) = pair_reader(Framing::Close, Duration::from_secs(5));
    assert!(upstream.write_all(b"all of it").await.is_ok());
    drop(upstream);
    let body = Buffered::stream(reader, spool());
    assert_eq!(collect(body).await, (b"all of it".to_vec(), true));
    assert_eq!(pooled.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn bytes_past_the_length_are_dropped_and_the_connection_not_pooled() {
    let (reader, mut upstream, pooled) = pair_reader(Framing::Length(3), Duration::from_secs(5));
    assert!(upstream.write_all(b"abcde").await.is_ok());
    let (got, clean) = collect(Unbuffered::stream(reader)).await;
    assert_eq!((got.as_slice(), clean), (&b"abc"[..], true));
    assert_eq!(pooled.load(Ordering::SeqCst), 0, "excess bytes: not reused");
}
