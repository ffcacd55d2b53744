//! The compressing body: decoded output equals the input whatever the
//! sizes, cuts and pauses of the input, for every kind of body (memory, a
//! file region, a stream with data and file pieces); a cut stream stays
//! cut; pauses flush what was fed.

use std::io::{Read, Write};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;

use super::decide::Coding;
use super::encode::{Compressing, PIECE, Params};
use crate::body_stream::{BodyStream, PullBody};
use crate::handler::{ResponseBody, StreamItem};

/// A stream of pieces; `None` in the list is a pause (one `Pending`).
struct Pieces {
    items: Vec<Option<StreamItem>>,
}

impl PullBody for Pieces {
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<StreamItem>> {
        if self.items.is_empty() {
            return Poll::Ready(None);
        }
        match self.items.remove(0) {
            Some(item) => Poll::Ready(Some(item)),
            None => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }
}

/// One piece, then nothing ready ever after (a producer that waits).
struct Stalled(Option<Bytes>);

impl PullBody for Stalled {
    fn poll_next(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<StreamItem>> {
        match self.0.take() {
            Some(data) => Poll::Ready(Some(StreamItem::Data(data))),
            None => Poll::Pending,
        }
    }
}

/// Every item of `body`, with the compressed bytes of each, polled with
/// a no-op waker (the test streams pause once, then go on).
fn drain(mut body: Compressing) -> (Vec<Vec<u8>>, Option<StreamItem>, usize) {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    let mut pieces = Vec::new();
    let mut pauses = 0;
    loop {
        match Pin::new(&mut body).poll_next(&mut cx) {
            Poll::Pending => {
                pauses += 1;
                assert!(pauses < 10_000, "stuck");
            }
            Poll::Ready(Some(StreamItem::Data(d))) => pieces.push(d.to_vec()),
            Poll::Ready(last) => return (pieces, last, pauses),
        }
    }
}

fn decode(coding: Coding, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let read = match coding {
        Coding::Gzip => flate2::read::GzDecoder::new(data).read_to_end(&mut out),
        Coding::Brotli => brotli::Decompressor::new(data, 4096).read_to_end(&mut out),
    };
    assert!(read.is_ok(), "{coding:?} does not decode: {read:?}");
    out
}

fn params(coding: Coding) -> Params {
    match coding {
        Coding::Gzip => Params {
            coding,
            level: 1,
            window_bits: 15,
        },
        Coding::Brotli => Params {
            coding,
            level: 4,
            window_bits: 19,
        },
    }
}

/// Some text that compresses, `n` bytes of it.
fn text(n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n);
    let mut i = 0u32;
    while out.len() < n {
        out.extend_from_slice(format!("{{\"id\":{i},\"name\":\"user {i}\"}},").as_bytes());
        i = i.wrapping_mul(7).wrapping_add(13) % 100_000;
    }
    out.truncate(n);
    out
}

fn compressed(body: ResponseBody, coding: Coding) -> Vec<u8> {
    let (pieces, last, _) = drain(Compressing::new(body, params(coding), None, None));
    assert!(matches!(last, Some(StreamItem::End)), "{last:?}");
    pieces.concat()
}

#[test]
fn decoded_bodies_equal_the_originals_across_sizes_and_kinds() {
    for coding in [Coding::Gzip, Coding::Brotli] {
        for size in [0, 1, 19, 20, 4096, PIECE - 1, PIECE + 1, 1 << 20] {
            let data = text(size);
            let full = compressed(ResponseBody::Full(Bytes::from(data.clone())), coding);
            assert_eq!(decode(coding, &full), data, "{coding:?} full {size}");
            let mut file = tempfile();
            assert!(file.write_all(b"skip").is_ok() && file.write_all(&data).is_ok());
            let region = ResponseBody::File {
                file,
                offset: 4,
                len: size as u64,
            };
            assert_eq!(
                decode(coding, &compressed(region, coding)),
                data,
                "{coding:?} file {size}"
            );
        }
        let empty = compressed(ResponseBody::Empty, coding);
        assert!(decode(coding, &empty).is_empty());
    }
}

#[test]
fn chunk_boundaries_and_pauses_do_not_change_the_decoded_output() {
    let big = text(200_000);
    for coding in [Coding::Gzip, Coding::Brotli] {
        for cut in [1usize, 7, 100, 4096, 70_000, 200_000] {
            // Byte-sized pieces on a shorter text (debug builds are slow).
            let data = if cut < 100 { &big[..3_000] } else { &big[..] };
            let mut items = Vec::new();
            for (i, piece) in data.chunks(cut).enumerate() {
                items.push(Some(StreamItem::Data(Bytes::copy_from_slice(piece))));
                if i % 5 == 0 {
                    items.push(None);
                }
            }
            items.push(Some(StreamItem::End));
            let body = ResponseBody::Stream(BodyStream::pull(Pieces { items }));
            let (pieces, last, _) = drain(Compressing::new(body, params(coding), None, None));
            assert!(matches!(last, Some(StreamItem::End)));
            assert_eq!(
                decode(coding, &pieces.concat()),
                data,
                "{coding:?} cut {cut}"
            );
        }
    }
}

#[test]
fn a_stream_mixing_data_and_file_pieces_decodes_whole() {
    let mut file = tempfile();
    assert!(file.write_all(b"0123456789").is_ok());
    let items = vec![
        Some(StreamItem::Data(Bytes::from_static(b"head-"))),
        Some(StreamItem::File {
            file,
            offset: 2,
            len: 5,
        }),
        None,
        Some(StreamItem::Data(Bytes::from_static(b"-tail"))),
        Some(StreamItem::End),
    ];
    let body = ResponseBody::Stream(BodyStream::pull(Pieces { items }));
    let (pieces, last, _) = drain(Compressing::new(body, params(Coding::Gzip), None, None));
    assert!(matches!(last, Some(StreamItem::End)));
    assert_eq!(decode(Coding::Gzip, &pieces.concat()), b"head-23456-tail");
}

#[test]
fn a_pause_flushes_what_was_fed_so_far() {
    for coding in [Coding::Gzip, Coding::Brotli] {
        let body = ResponseBody::Stream(BodyStream::pull(Stalled(Some(Bytes::from_static(
            b"event: one\n\n",
        )))));
        let mut c = Compressing::new(body, params(coding), None, None);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        // Everything yielded before the pause decodes to the event.
        let mut first = Vec::new();
        loop {
            match Pin::new(&mut c).poll_next(&mut cx) {
                Poll::Ready(Some(StreamItem::Data(d))) => first.extend_from_slice(&d),
                Poll::Pending => break,
                other => panic!("{coding:?}: {other:?}"),
            }
        }
        let mut out = Vec::new();
        match coding {
            Coding::Gzip => {
                let mut d = flate2::write::GzDecoder::new(&mut out);
                assert!(d.write_all(&first).is_ok() && d.flush().is_ok());
            }
            Coding::Brotli => {
                let mut d = brotli::DecompressorWriter::new(&mut out, 4096);
                assert!(d.write_all(&first).is_ok() && d.flush().is_ok());
            }
        }
        assert_eq!(out, b"event: one\n\n", "{coding:?}");
    }
}

#[test]
fn a_cut_stream_stays_cut() {
    for last in [Some(StreamItem::Abort), None] {
        let mut items = vec![Some(StreamItem::Data(Bytes::from(text(50_000))))];
        if let Some(item) = last {
            items.push(Some(item));
        }
        let body = ResponseBody::Stream(BodyStream::pull(Pieces { items }));
        let (_, end, _) = drain(Compressing::new(body, params(Coding::Gzip), None, None));
        assert!(matches!(end, Some(StreamItem::Abort)), "{end:?}");
    }
}

/// An anonymous temporary file.
fn tempfile() -> std::fs::File {
    let dir = std::env::temp_dir();
    let path = dir.join(format!(
        "portico-compress-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path);
    let _ = std::fs::remove_file(&path);
    match file {
        Ok(f) => f,
        Err(e) => panic!("temp file: {e}"),
    }
}

#[test]
fn a_stream_is_held_to_its_announced_length() {
    let stream = |pieces: &[&'static [u8]]| {
        let mut items: Vec<_> = pieces
            .iter()
            .map(|p| Some(StreamItem::Data(Bytes::from_static(p))))
            .collect();
        items.push(Some(StreamItem::End));
        ResponseBody::Stream(BodyStream::pull(Pieces { items }))
    };
    // Past the length: the rest is dropped, as the writer drops it.
    let (pieces, last, _) = drain(Compressing::new(
        stream(&[b"hello ", b"world"]),
        params(Coding::Gzip),
        Some(8),
        None,
    ));
    assert!(matches!(last, Some(StreamItem::End)));
    assert_eq!(decode(Coding::Gzip, &pieces.concat()), b"hello wo");
    // Short of it: a cut body.
    let (_, last, _) = drain(Compressing::new(
        stream(&[b"hello"]),
        params(Coding::Gzip),
        Some(8),
        None,
    ));
    assert!(matches!(last, Some(StreamItem::Abort)), "{last:?}");
}

#[test]
fn gzip_ratio_is_in_over_out_with_nginx_rounding_once_the_body_is_complete() {
    let tally = std::sync::Arc::new(super::encode::GzipTally::default());
    assert_eq!(tally.ratio_text(), None, "nothing before the end");
    let text = b"abcabcabc".repeat(1000);
    let body = ResponseBody::Full(bytes::Bytes::from(text.clone()));
    let (pieces, _, _) = drain(Compressing::new(
        body,
        params(Coding::Gzip),
        None,
        Some(tally.clone()),
    ));
    let out: usize = pieces.iter().map(|p| p.len()).sum();
    let (zin, zout) = (text.len() as u64, out as u64);
    let mut want = format!("{}.{:02}", zin / zout, (zin * 100 / zout) % 100);
    if (zin * 1000 / zout) % 10 > 4 {
        let hundredths = zin * 100 / zout + 1;
        want = format!("{}.{:02}", hundredths / 100, hundredths % 100);
    }
    assert_eq!(tally.ratio_text(), Some(want));
}

#[test]
fn gzip_ratio_text_rounds_the_third_decimal_half_up_as_nginx() {
    use super::ratio_text;
    assert_eq!(ratio_text(2125, 1000), "2.13");
    assert_eq!(ratio_text(2124, 1000), "2.12");
    assert_eq!(ratio_text(1999, 1000), "2.00");
    assert_eq!(ratio_text(100, 300), "0.33");
}
