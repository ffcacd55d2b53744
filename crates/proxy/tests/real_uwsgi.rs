//! Interop: the uwsgi upstream client against a real uWSGI 2.0 running
//! `tests/uwsgi_app.py`. Skipped (with a note) when no `uwsgi` binary is
//! found: set `PORTICO_TEST_UWSGI=/path/to/uwsgi`, or install one with
//! `python3 -m venv target/uwsgi-venv && target/uwsgi-venv/bin/pip install uwsgi`.

// Test code: a failed expect is a failed test (clippy.toml exempts #[test] fns only).
#![allow(clippy::expect_used)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use portico_config::site::UpstreamTarget;
use portico_proto::uwsgi::UwsgiPacket;
use portico_proxy::{UwsgiSettings, UwsgiUpstream};
use portico_server::{
    Handler, Handoff, ListenAddress, ListenerInfo, Request, RequestBody, RequestSource, Response,
    ResponseBody, StreamItem, Wire,
};

fn find_uwsgi() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PORTICO_TEST_UWSGI") {
        return Some(PathBuf::from(p));
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let venv = workspace.join("target/uwsgi-venv/bin/uwsgi");
    if venv.exists() {
        return Some(venv);
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("uwsgi"))
            .find(|p| p.exists())
    })
}

/// A running uWSGI, killed when dropped.
struct Uwsgi(Child);

impl Drop for Uwsgi {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_uwsgi(bin: &Path) -> (Uwsgi, u16) {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let app = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/uwsgi_app.py");
    let child = Command::new(bin)
        .args(["--socket", &format!("127.0.0.1:{port}")])
        .arg("--wsgi-file")
        .arg(&app)
        .args(["--processes", "1", "--disable-logging", "--die-on-term"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start uwsgi");
    let guard = Uwsgi(child);
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "uwsgi did not start listening");
        std::thread::sleep(Duration::from_millis(50));
    }
    (guard, port)
}

/// The vars nginx's `uwsgi_params` would send for this request.
fn request(method: &str, path: &str, body: &'static [u8]) -> Request {
    let length = if body.is_empty() {
        String::new()
    } else {
        body.len().to_string()
    };
    let vars: Vec<(&str, String)> = vec![
        ("QUERY_STRING", String::new()),
        ("REQUEST_METHOD", method.into()),
        ("CONTENT_TYPE", String::new()),
        ("CONTENT_LENGTH", length),
        ("REQUEST_URI", path.into()),
        ("PATH_INFO", path.into()),
        ("DOCUMENT_ROOT", "/srv".into()),
        ("SERVER_PROTOCOL", "HTTP/1.1".into()),
        ("REQUEST_SCHEME", "http".into()),
        ("REMOTE_ADDR", "127.0.0.1".into()),
        ("REMOTE_PORT", "40000".into()),
        ("SERVER_PORT", "80".into()),
        ("SERVER_NAME", "localhost".into()),
        ("HTTP_HOST", "localhost".into()),
    ];
    let vars: Vec<(Bytes, Bytes)> = vars
        .into_iter()
        .map(|(k, v)| (Bytes::from(k), Bytes::from(v)))
        .collect();
    let datasize = vars.iter().map(|(k, v)| 4 + k.len() + v.len()).sum();
    Request {
        source: RequestSource::Uwsgi(UwsgiPacket::from_vars(0, 0, vars, datasize)),
        peer: None,
        local: None,
        listener: Arc::new(ListenerInfo {
            addr: ListenAddress::Tcp(SocketAddr::from(([127, 0, 0, 1], 80))),
            wire: Wire::Http,
            scheme: "http",
            spec: "test".into(),
            buffer_size: 4096,
            http2: None,
            tls: None,
        }),
        body: RequestBody::complete(Bytes::from_static(body)),
        handoff: Arc::new(Handoff::default()),
        tls: None,
    }
}

async fn body_of(response: Response) -> (Vec<u8>, bool) {
    match response.body {
        ResponseBody::Empty => (Vec::new(), true),
        ResponseBody::Full(b) => (b.to_vec(), true),
        ResponseBody::Stream(mut rx) => {
            let mut out = Vec::new();
            while let Some(item) = rx.next().await {
                match item {
                    StreamItem::Data(d) => out.extend_from_slice(&d),
                    StreamItem::End => return (out, true),
                    _ => return (out, false),
                }
            }
            (out, false)
        }
        ResponseBody::File { .. } => (Vec::new(), false),
    }
}

fn header<'a>(response: &'a Response, name: &str) -> Option<&'a [u8]> {
    response
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
        .map(|(_, v)| v.as_ref())
}

#[tokio::test]
async fn a_real_uwsgi_answers_through_the_upstream_client() {
    let Some(bin) = find_uwsgi() else {
        eprintln!("skipped: no uwsgi binary (see this file's header)");
        return;
    };
    let (_uwsgi, port) = start_uwsgi(&bin);
    let target = UpstreamTarget::Tcp {
        host: "127.0.0.1".into(),
        port,
    };
    let upstream = UwsgiUpstream::new(target, UwsgiSettings::default()).expect("one peer");

    let r = upstream.handle(request("POST", "/echo", b"hello")).await;
    assert_eq!((r.status, &r.reason[..]), (200, &b"OK"[..]));
    assert_eq!(header(&r, "x-method"), Some(&b"POST"[..]));
    assert_eq!(body_of(r).await, (b"got:hello".to_vec(), true));

    let r = upstream.handle(request("GET", "/stream", b"")).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        body_of(r).await,
        (b"piece0;piece1;piece2;piece3;piece4;".to_vec(), true)
    );

    let r = upstream.handle(request("GET", "/missing", b"")).await;
    assert_eq!((r.status, &r.reason[..]), (404, &b"Not Found"[..]));
    assert_eq!(body_of(r).await, (b"nope".to_vec(), true));

    // An exception before start_response: uWSGI closes with zero bytes,
    // and nginx (so Portico) answers 502.
    let r = upstream.handle(request("GET", "/crash", b"")).await;
    assert_eq!(r.status, 502);
}
