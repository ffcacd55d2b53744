//! The uwsgi upstream behind Portico's real server: a client speaks uwsgi to
//! a Portico uwsgi listener whose handler is [`UwsgiUpstream`], which
//! forwards to a fake uwsgi backend. This drives what the unit-level tests
//! cannot: a request body that arrives after the head (streamed to the
//! upstream as it comes), and the server's writer draining the streamed body.

// Test code: a failed expect is a failed test (clippy.toml exempts #[test] fns only).
#![allow(clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use portico_config::site::UpstreamTarget;
use portico_proto::uwsgi::encode_packet;
use portico_proxy::{UwsgiSettings, UwsgiUpstream};
use portico_server::{ListenAddress, ListenerSpec, ServeOptions, Wire, bind_tcp, serve};

const VARS: &[(&[u8], &[u8])] = &[
    (b"REQUEST_METHOD", b"POST"),
    (b"REQUEST_URI", b"/upload"),
    (b"PATH_INFO", b"/upload"),
    (b"CONTENT_LENGTH", b"10"),
    (b"SERVER_PROTOCOL", b"HTTP/1.1"),
    (b"REMOTE_ADDR", b"127.0.0.1"),
];

/// A uwsgi backend that answers one request in two pieces, a pause between.
fn backend() -> (u16, thread::JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind backend");
    let port = listener.local_addr().expect("addr").port();
    let task = thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let want = encode_packet(0, 0, VARS).len() + 10;
        let mut got = vec![0u8; want];
        s.read_exact(&mut got).expect("packet and body");
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Seen: yes\r\n\r\nfirst,")
            .expect("write head");
        thread::sleep(Duration::from_millis(100));
        s.write_all(b"second").expect("write rest");
        got
    });
    (port, task)
}

/// Portico with a uwsgi listener on port 0, forwarding to `backend_port`.
fn portico(backend_port: u16) -> u16 {
    let spec = ListenerSpec {
        wire: Wire::Uwsgi,
        spec: "--socket 127.0.0.1:0",
        backlog: 16,
        buffer_size: 65535,
        http2: None,
    };
    let bound = bind_tcp("127.0.0.1", 0, &spec).expect("bind portico");
    let ListenAddress::Tcp(addr) = bound.info.addr.clone() else {
        panic!("a TCP listener");
    };
    let target = UpstreamTarget::Tcp {
        host: "127.0.0.1".into(),
        port: backend_port,
    };
    let upstream = UwsgiUpstream::new(target, UwsgiSettings::default()).expect("one peer");
    // The serving thread runs until the test process ends.
    thread::spawn(move || {
        serve(
            vec![bound],
            Arc::new(upstream),
            ServeOptions::default(),
            || {},
        )
    });
    addr.port()
}

#[test]
fn a_late_request_body_is_streamed_through_and_the_answer_streamed_back() {
    let (backend_port, backend) = backend();
    let port = portico(backend_port);
    let mut client = TcpStream::connect(("127.0.0.1", port)).expect("connect portico");
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let packet = encode_packet(0, 0, VARS);
    client.write_all(&packet).expect("packet");
    thread::sleep(Duration::from_millis(50));
    client.write_all(b"01234").expect("body 1");
    thread::sleep(Duration::from_millis(50));
    client.write_all(b"56789").expect("body 2");
    let mut answer = Vec::new();
    client.read_to_end(&mut answer).expect("answer until close");

    let mut want = packet.clone();
    want.extend_from_slice(b"0123456789");
    assert_eq!(
        backend.join().expect("backend"),
        want,
        "exact bytes upstream"
    );
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 200 OK\r\n"),
        "status line: {answer:?}"
    );
    assert!(answer.contains("\r\nX-Seen: yes\r\n"), "{answer:?}");
    assert!(answer.ends_with("\r\n\r\nfirst,second"), "{answer:?}");
}
