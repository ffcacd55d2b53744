//! `HttpProxy` behind Portico's real HTTP server, through a tiny handler
//! that forwards the client's request as it is: a chunked request body that
//! arrives after the head is re-chunked to an HTTP/1.1 upstream as it comes
//! (`proxy_request_buffering off`), or read whole and sent with
//! `Content-Length` to an HTTP/1.0 one (as nginx does); the answer comes
//! back through the server's writer.

// Test code: a failed expect is a failed test (clippy.toml exempts #[test] fns only).
#![allow(clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use portico_config::site::{ProxySettings, UpstreamTarget};
use portico_proto::http1::Version;
use portico_proxy::HttpProxy;
use portico_server::{
    Handler, HandlerFuture, ListenAddress, ListenerSpec, ProxyCall, ProxyUpstream, Request,
    RequestSource, ServeOptions, SpoolConfig, Wire, bind_tcp, serve,
};

/// The engine's part, reduced to nothing: the client's head goes as is
/// (at `version`).
struct Forward {
    proxy: HttpProxy,
    version: Version,
}

impl Handler for Forward {
    fn handle(&self, mut request: Request) -> HandlerFuture {
        if let RequestSource::Http(head) = &mut request.source {
            head.version = self.version;
        }
        let call = ProxyCall {
            client_ip: request.peer.map(|p| p.ip()),
            request,
            hash_key: None,
            started: Instant::now(),
            authority: None,
            encoded_head: None,
        };
        let outcome = self.proxy.forward(call);
        HandlerFuture::new(move || async move { outcome.await.response })
    }
}

/// A backend that reads one request until `until` appears, then answers.
fn backend(until: &'static [u8]) -> (u16, thread::JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind backend");
    let port = listener.local_addr().expect("addr").port();
    let task = thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut got = Vec::new();
        let mut piece = [0u8; 4096];
        while !got.ends_with(until) {
            let n = s.read(&mut piece).expect("request bytes");
            assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&piece[..n]);
        }
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nServer: backend\r\n\r\nyes")
            .expect("answer");
        got
    });
    (port, task)
}

fn portico(backend_port: u16, version: Version) -> u16 {
    let spec = ListenerSpec {
        wire: Wire::Http,
        spec: "--http 127.0.0.1:0",
        backlog: 16,
        buffer_size: 4096,
        http2: None,
    };
    let bound = bind_tcp("127.0.0.1", 0, &spec).expect("bind portico");
    let ListenAddress::Tcp(addr) = bound.info.addr.clone() else {
        panic!("a TCP listener");
    };
    let settings = ProxySettings {
        request_buffering: false,
        ..ProxySettings::default()
    };
    let target = UpstreamTarget::Tcp {
        host: "127.0.0.1".into(),
        port: backend_port,
    };
    let proxy = HttpProxy::to_address(&target, Arc::new(settings)).expect("one peer");
    let handler = Forward { proxy, version };
    // The serving thread runs until the test process ends.
    thread::spawn(move || {
        serve(
            vec![bound],
            Arc::new(handler),
            ServeOptions {
                // Bodies stream to the handler as they arrive (the server
                // receives them whole first by default).
                spool: SpoolConfig {
                    memory: 0,
                    ..SpoolConfig::default()
                },
                ..ServeOptions::default()
            },
            || {},
        )
    });
    addr.port()
}

/// Sends a chunked POST whose chunks come late; returns the answer.
fn post_late_chunks(port: u16) -> String {
    let mut client = TcpStream::connect(("127.0.0.1", port)).expect("connect portico");
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    client
        .write_all(b"POST /up HTTP/1.1\r\nHost: app\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n")
        .expect("head");
    thread::sleep(Duration::from_millis(50));
    client.write_all(b"5\r\n01234\r\n").expect("chunk 1");
    thread::sleep(Duration::from_millis(50));
    client
        .write_all(b"5\r\n56789\r\n0\r\n\r\n")
        .expect("chunk 2");
    let mut answer = Vec::new();
    client.read_to_end(&mut answer).expect("answer until close");
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn a_late_chunked_body_is_rechunked_to_an_http_1_1_upstream() {
    let (backend_port, backend) = backend(b"0\r\n\r\n");
    let port = portico(backend_port, Version::Http11);
    let answer = post_late_chunks(port);
    let seen = String::from_utf8_lossy(&backend.join().expect("backend")).into_owned();
    assert!(
        seen.starts_with("POST /up HTTP/1.1\r\nHost: app\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"),
        "{seen:?}"
    );
    let body = &seen[seen.find("\r\n\r\n").map_or(0, |i| i + 4)..];
    assert!(body.contains("01234") && body.contains("56789") && body.ends_with("0\r\n\r\n"));
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer:?}");
    assert!(
        !answer.contains("backend"),
        "the upstream's Server is hidden"
    );
    assert!(answer.ends_with("\r\n\r\nyes"), "{answer:?}");
}

#[test]
fn a_chunked_body_goes_whole_with_its_length_to_an_http_1_0_upstream() {
    let (backend_port, backend) = backend(b"0123456789");
    let port = portico(backend_port, Version::Http10);
    let answer = post_late_chunks(port);
    let seen = String::from_utf8_lossy(&backend.join().expect("backend")).into_owned();
    assert_eq!(
        seen,
        "POST /up HTTP/1.0\r\nHost: app\r\nConnection: close\r\nContent-Length: 10\r\n\r\n0123456789"
    );
    assert!(answer.ends_with("\r\n\r\nyes"), "{answer:?}");
}
