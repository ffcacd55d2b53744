//! Whole connections over an in-memory stream (`tokio::io::duplex`): the
//! HTTP/1.1 and uwsgi connection loops driven by small handlers written
//! here, no Python and no socket. Each test checks the exact bytes the
//! client receives (the `Date` value, which changes, is read as `<date>`).

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::{mpsc, watch};

use super::tests::context_for;
use super::{ConnContext, Ends, serve_connection};
use crate::body_stream::BodyStream;
use crate::handler::{
    Handler, HandlerFuture, Request, Response, ResponseBody, ResponseMeta, StreamItem,
};

/// A connection context answering with `handler`.
fn ctx_for(handler: Arc<dyn Handler>) -> Arc<ConnContext> {
    Arc::new(context_for(handler))
}

/// A handler from a closure.
struct FnHandler<F>(F);

impl<F> Handler for FnHandler<F>
where
    F: Fn(Request) -> HandlerFuture + Send + Sync + 'static,
{
    fn handle(&self, request: Request) -> HandlerFuture {
        (self.0)(request)
    }
}

fn handler<F>(f: F) -> Arc<dyn Handler>
where
    F: Fn(Request) -> HandlerFuture + Send + Sync + 'static,
{
    Arc::new(FnHandler(f))
}

fn response(status: u16, reason: &'static str, body: ResponseBody) -> Response {
    Response {
        status,
        reason: Bytes::from_static(reason.as_bytes()),
        headers: vec![(Bytes::from_static(b"X-Test"), Bytes::from_static(b"1"))],
        body,
        meta: ResponseMeta::default(),
    }
}

/// Answers `METHOD URI|BODY`, the body read to its end by the handler.
fn echo() -> Arc<dyn Handler> {
    handler(|mut request| {
        HandlerFuture::new(move || async move {
            let mut text = request.method().to_vec();
            text.push(b' ');
            text.extend_from_slice(request.uri());
            text.push(b'|');
            while let Some(piece) = request.body.next().await {
                match piece {
                    Ok(data) => text.extend_from_slice(&data),
                    Err(_) => return Response::internal_error(),
                }
            }
            response(200, "OK", ResponseBody::Full(Bytes::from(text)))
        })
    })
}

/// Runs one HTTP connection on the server end of a duplex pair while
/// `client` drives the other end; the server's end is dropped (the client
/// sees EOF) when the connection ends.
async fn with_http<C, Fut>(ctx: &Arc<ConnContext>, client: C)
where
    C: FnOnce(DuplexStream) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let (client_end, server_end) = tokio::io::duplex(64 * 1024);
    let server = async move {
        let (mut reader, mut writer) = tokio::io::split(server_end);
        let ends = Ends::new(None, None, None);
        serve_connection(&mut reader, &mut writer, &ends, ctx, &mut BytesMut::new()).await;
    };
    tokio::join!(server, client(client_end));
}

/// Reads until EOF, with the `Date` value replaced by `<date>`.
async fn read_all(client: &mut DuplexStream) -> String {
    let mut got = Vec::new();
    let Ok(_) = client.read_to_end(&mut got).await else {
        panic!("the client's read failed")
    };
    without_dates(&got)
}

/// Reads exactly as many bytes as `expected` stands for and checks them.
async fn expect_bytes(client: &mut DuplexStream, expected: &str) {
    // An HTTP date is 29 bytes; `<date>` is 6.
    let len = expected.len() + expected.matches("<date>").count() * 23;
    let mut got = vec![0u8; len];
    let Ok(_) = client.read_exact(&mut got).await else {
        panic!("the connection ended before {len} bytes: expected {expected:?}")
    };
    assert_eq!(without_dates(&got), expected);
}

fn without_dates(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw).into_owned();
    let mut out = String::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("\r\nDate: ") {
        let value = at + "\r\nDate: ".len();
        out.push_str(&rest[..value]);
        out.push_str("<date>");
        rest = rest.get(value + 29..).unwrap_or_default();
    }
    out.push_str(rest);
    out
}

/// The server's own small page for a refused request, closing.
fn refusal(status: &str) -> String {
    let body = format!("{status}\n");
    format!(
        "HTTP/1.1 {status}\r\nServer: portico\r\nDate: <date>\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
}

async fn send(client: &mut DuplexStream, bytes: &[u8]) {
    assert!(
        client.write_all(bytes).await.is_ok(),
        "the client's write failed"
    );
}

/// The echo handler's response: keep-alive is implied (no `Connection`
/// field), `close` is said.
fn ok(body: &str, close: bool) -> String {
    let connection = if close { "Connection: close\r\n" } else { "" };
    format!(
        "HTTP/1.1 200 OK\r\nX-Test: 1\r\nServer: portico\r\nDate: <date>\r\n\
         Content-Length: {}\r\n{connection}\r\n{body}",
        body.len()
    )
}

#[tokio::test]
async fn a_kept_alive_connection_answers_a_second_request_after_the_first() {
    let ctx = ctx_for(echo());
    with_http(&ctx, |mut client| async move {
        send(&mut client, b"GET /one HTTP/1.1\r\nHost: a\r\n\r\n").await;
        expect_bytes(&mut client, &ok("GET /one|", false)).await;
        send(&mut client, b"GET /two HTTP/1.1\r\nHost: a\r\n\r\n").await;
        expect_bytes(&mut client, &ok("GET /two|", false)).await;
        assert!(client.shutdown().await.is_ok());
        assert_eq!(read_all(&mut client).await, "");
    })
    .await;
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let ctx = ctx_for(echo());
    with_http(&ctx, |mut client| async move {
        send(
            &mut client,
            b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n\
              POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nxyz\
              GET /c HTTP/1.1\r\nHost: a\r\n\r\n",
        )
        .await;
        assert!(client.shutdown().await.is_ok());
        let expected = [
            ok("GET /a|", false),
            ok("POST /b|xyz", false),
            ok("GET /c|", false),
        ]
        .concat();
        assert_eq!(read_all(&mut client).await, expected);
    })
    .await;
}

#[tokio::test]
async fn a_chunked_request_body_reaches_the_handler_decoded() {
    let ctx = ctx_for(echo());
    with_http(&ctx, |mut client| async move {
        send(
            &mut client,
            b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
              4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nX-Trailer: t\r\n\r\n",
        )
        .await;
        expect_bytes(&mut client, &ok("POST /up|Wikipedia", false)).await;
    })
    .await;
}

/// Answers with a body streamed through a channel: the items given, sent
/// from another task.
fn streaming(items: fn() -> Vec<StreamItem>) -> Arc<dyn Handler> {
    handler(move |_request| {
        HandlerFuture::new(move || async move {
            let (tx, rx) = mpsc::channel(4);
            tokio::spawn(async move {
                for item in items() {
                    if tx.send(item).await.is_err() {
                        return;
                    }
                }
            });
            response(200, "OK", ResponseBody::Stream(BodyStream::channel(rx)))
        })
    })
}

const STREAM_HEAD: &str = "HTTP/1.1 200 OK\r\nX-Test: 1\r\nServer: portico\r\nDate: <date>\r\n\
                           Transfer-Encoding: chunked\r\n\r\n";

#[tokio::test]
async fn a_streamed_response_goes_out_chunked_and_the_connection_persists() {
    let ctx = ctx_for(streaming(|| {
        vec![
            StreamItem::Data(Bytes::from_static(b"hello ")),
            StreamItem::Data(Bytes::from_static(b"world")),
            StreamItem::End,
        ]
    }));
    with_http(&ctx, |mut client| async move {
        send(&mut client, b"GET /s HTTP/1.1\r\nHost: a\r\n\r\n").await;
        let body = "6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n";
        expect_bytes(&mut client, &format!("{STREAM_HEAD}{body}")).await;
        send(&mut client, b"GET /s HTTP/1.1\r\nHost: a\r\n\r\n").await;
        expect_bytes(&mut client, &format!("{STREAM_HEAD}{body}")).await;
    })
    .await;
}

#[tokio::test]
async fn an_aborted_stream_cuts_the_connection_without_the_last_chunk() {
    let ctx = ctx_for(streaming(|| {
        vec![
            StreamItem::Data(Bytes::from_static(b"partial")),
            StreamItem::Abort,
        ]
    }));
    with_http(&ctx, |mut client| async move {
        // A second request is waiting: it must not be answered.
        send(
            &mut client,
            b"GET /s HTTP/1.1\r\nHost: a\r\n\r\nGET /t HTTP/1.1\r\nHost: a\r\n\r\n",
        )
        .await;
        let expected = format!("{STREAM_HEAD}7\r\npartial\r\n");
        assert_eq!(read_all(&mut client).await, expected);
    })
    .await;
}

#[tokio::test]
async fn a_client_that_expects_100_continue_gets_it_before_sending_the_body() {
    let ctx = ctx_for(echo());
    with_http(&ctx, |mut client| async move {
        send(
            &mut client,
            b"PUT /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n",
        )
        .await;
        expect_bytes(&mut client, "HTTP/1.1 100 Continue\r\n\r\n").await;
        send(&mut client, b"data").await;
        expect_bytes(&mut client, &ok("PUT /x|data", false)).await;
    })
    .await;
}

#[tokio::test]
async fn a_malformed_head_is_answered_400_and_closed_without_the_handler() {
    let called = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = called.clone();
    let ctx = ctx_for(handler(move |_request| {
        seen.store(true, std::sync::atomic::Ordering::SeqCst);
        HandlerFuture::new(move || std::future::ready(Response::internal_error()))
    }));
    with_http(&ctx, |mut client| async move {
        send(
            &mut client,
            b"GET / HTTP/1.1\r\nHost: a\r\nNo colon here\r\n\r\nGET / HTTP/1.1\r\n\r\n",
        )
        .await;
        let got = read_all(&mut client).await;
        assert_eq!(got, refusal("400 Bad Request"));
    })
    .await;
    assert!(!called.load(std::sync::atomic::Ordering::SeqCst));
}

#[tokio::test]
async fn a_head_response_has_the_length_of_the_body_but_no_body() {
    let ctx = ctx_for(echo());
    with_http(&ctx, |mut client| async move {
        // The GET after it shows where the HEAD response ended.
        send(
            &mut client,
            b"HEAD /h HTTP/1.1\r\nHost: a\r\n\r\nGET /g HTTP/1.1\r\nHost: a\r\n\r\n",
        )
        .await;
        assert!(client.shutdown().await.is_ok());
        let head_only = ok("HEAD /h|", false).replace("HEAD /h|", "");
        let expected = format!("{head_only}{}", ok("GET /g|", false));
        assert_eq!(read_all(&mut client).await, expected);
    })
    .await;
}

#[tokio::test]
async fn connection_close_ends_the_connection_after_the_response() {
    let ctx = ctx_for(echo());
    with_http(&ctx, |mut client| async move {
        send(
            &mut client,
            b"GET /last HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n\
              GET /never HTTP/1.1\r\nHost: a\r\n\r\n",
        )
        .await;
        // No shutdown from the client: the server closes.
        assert_eq!(read_all(&mut client).await, ok("GET /last|", true));
    })
    .await;
}

#[tokio::test]
async fn an_http_1_0_request_without_keep_alive_is_closed_after_the_response() {
    let ctx = ctx_for(echo());
    with_http(&ctx, |mut client| async move {
        send(&mut client, b"GET /old HTTP/1.0\r\n\r\n").await;
        // The status line says the server's version (as nginx); HTTP/1.0
        // closes by default, so no `Connection` field is needed.
        assert_eq!(read_all(&mut client).await, ok("GET /old|", false));
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn an_idle_kept_alive_connection_is_closed_after_the_keepalive_timeout() {
    let ctx = ctx_for(echo());
    with_http(&ctx, |mut client| async move {
        send(&mut client, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
        expect_bytes(&mut client, &ok("GET /|", false)).await;
        let idle_since = tokio::time::Instant::now();
        // Nothing more is sent: the server closes without a word.
        assert_eq!(read_all(&mut client).await, "");
        assert_eq!(
            idle_since.elapsed(),
            crate::timeouts::DEFAULT_KEEPALIVE_TIMEOUT
        );
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_head_not_finished_in_time_is_answered_408() {
    let ctx = ctx_for(echo());
    with_http(&ctx, |mut client| async move {
        let start = tokio::time::Instant::now();
        send(&mut client, b"GET / HTTP/1.1\r\nHost: a\r\n").await;
        let got = read_all(&mut client).await;
        assert_eq!(got, refusal("408 Request Timeout"));
        assert_eq!(start.elapsed(), crate::timeouts::DEFAULT_HEADER_TIMEOUT);
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_stop_closes_an_idle_kept_alive_connection_at_once() {
    let (stop, shutdown) = watch::channel(false);
    let mut ctx = context_for(echo());
    ctx.shutdown = shutdown;
    let ctx = Arc::new(ctx);
    let open = ctx.open.clone();
    with_http(&ctx, |mut client| async move {
        send(&mut client, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
        expect_bytes(&mut client, &ok("GET /|", false)).await;
        let start = tokio::time::Instant::now();
        assert!(stop.send(true).is_ok());
        open.close_idle();
        assert_eq!(read_all(&mut client).await, "");
        assert_eq!(start.elapsed(), std::time::Duration::ZERO);
    })
    .await;
}

#[tokio::test]
async fn a_file_region_goes_out_through_the_fallback_of_an_in_memory_stream() {
    use std::io::Write;
    let ctx = ctx_for(handler(|_request| {
        HandlerFuture::new(move || async move {
            let Ok(mut file) = tempfile::tempfile() else {
                return Response::internal_error();
            };
            if file.write_all(b"0123456789").is_err() {
                return Response::internal_error();
            }
            let body = ResponseBody::File {
                file,
                offset: 2,
                len: 5,
            };
            response(200, "OK", body)
        })
    }));
    with_http(&ctx, |mut client| async move {
        send(&mut client, b"GET /f HTTP/1.1\r\nHost: a\r\n\r\n").await;
        expect_bytes(&mut client, &ok("23456", false)).await;
    })
    .await;
}

/// A uwsgi packet of `vars` and `body` (modifier 0).
fn uwsgi_packet(vars: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut block = Vec::new();
    for (k, v) in vars {
        block.extend_from_slice(&(k.len() as u16).to_le_bytes());
        block.extend_from_slice(k.as_bytes());
        block.extend_from_slice(&(v.len() as u16).to_le_bytes());
        block.extend_from_slice(v.as_bytes());
    }
    let mut packet = vec![0u8];
    packet.extend_from_slice(&(block.len() as u16).to_le_bytes());
    packet.push(0);
    packet.extend_from_slice(&block);
    packet.extend_from_slice(body);
    packet
}

async fn uwsgi_exchange(ctx: &ConnContext, input: Vec<u8>) -> String {
    let (mut client, server_end) = tokio::io::duplex(64 * 1024);
    let server = async move {
        let (mut reader, mut writer) = tokio::io::split(server_end);
        crate::uwsgi_conn::serve_uwsgi_connection(
            &mut reader,
            &mut writer,
            None,
            None,
            ctx,
            BytesMut::new(),
        )
        .await;
    };
    let client = async move {
        send(&mut client, &input).await;
        read_all(&mut client).await
    };
    tokio::join!(server, client).1
}

#[tokio::test]
async fn a_uwsgi_request_with_a_body_is_answered_as_the_app_framed_it_and_closed() {
    let ctx = ctx_for(echo());
    let input = uwsgi_packet(
        &[
            ("REQUEST_METHOD", "POST"),
            ("REQUEST_URI", "/u?q=1"),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
            ("CONTENT_LENGTH", "5"),
        ],
        b"hello",
    );
    let got = uwsgi_exchange(&ctx, input).await;
    assert_eq!(got, "HTTP/1.1 200 OK\r\nX-Test: 1\r\n\r\nPOST /u?q=1|hello");
}

#[tokio::test]
async fn a_uwsgi_stream_is_written_unchunked_and_an_abort_cuts_it() {
    let ctx = ctx_for(streaming(|| {
        vec![
            StreamItem::Data(Bytes::from_static(b"abc")),
            StreamItem::Abort,
            StreamItem::Data(Bytes::from_static(b"never")),
        ]
    }));
    let input = uwsgi_packet(
        &[("REQUEST_METHOD", "GET"), ("SERVER_PROTOCOL", "HTTP/1.1")],
        b"",
    );
    let got = uwsgi_exchange(&ctx, input).await;
    assert_eq!(got, "HTTP/1.1 200 OK\r\nX-Test: 1\r\n\r\nabc");
}

#[tokio::test]
async fn a_uwsgi_request_with_a_bad_content_length_is_answered_400() {
    let ctx = ctx_for(echo());
    let input = uwsgi_packet(&[("REQUEST_METHOD", "GET"), ("CONTENT_LENGTH", "x1")], b"");
    let got = uwsgi_exchange(&ctx, input).await;
    assert_eq!(
        got,
        "HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain\r\n\r\n400 Bad Request\n"
    );
}
