//! uwsgi_pass: the packet, the body, intercepted errors, a missing upstream.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use portico_config::site::*;

use super::*;
use crate::handler::{Handler, HandlerFuture, Request, RequestSource, Response};
use crate::site::engine::SiteHandler;

/// The vars and body an upstream was given.
type Seen = (Vec<(String, String)>, Bytes);

/// An upstream that records the request it was given.
struct Recorder {
    seen: Mutex<Vec<Seen>>,
    status: u16,
}

impl Handler for Recorder {
    fn handle(&self, mut request: Request) -> HandlerFuture {
        let vars = match &request.source {
            RequestSource::Uwsgi(p) => p
                .vars()
                .map(|(k, v)| {
                    (
                        String::from_utf8_lossy(k).into_owned(),
                        String::from_utf8_lossy(v).into_owned(),
                    )
                })
                .collect(),
            RequestSource::Http(_) => Vec::new(),
        };
        let body = match request.body.try_next() {
            crate::body::TryNext::Data(d) => d,
            _ => Bytes::new(),
        };
        if let Ok(mut seen) = self.seen.lock() {
            seen.push((vars, body));
        }
        let mut response = Response::plain(self.status, "X", "from app");
        response.reason = Bytes::from_static(b"X");
        HandlerFuture::new(move || std::future::ready(response))
    }
}

#[test]
fn uwsgi_pass_sends_params_then_headers_to_the_upstream() {
    let tree = static_tree();
    let base = config(&tree.path().join("html"));
    let target = UpstreamTarget::Unix("/run/app.sock".into());
    let app_config = with(&base, |c| {
        c.uwsgi_params = vec![
            UwsgiParam {
                key: "REQUEST_METHOD".into(),
                value: t("$request_method"),
                if_not_empty: false,
            },
            UwsgiParam {
                key: "QUERY_STRING".into(),
                value: t("$query_string"),
                if_not_empty: false,
            },
            UwsgiParam {
                key: "CONTENT_TYPE".into(),
                value: t("$content_type"),
                if_not_empty: true,
            },
            UwsgiParam {
                key: "CONTENT_LENGTH".into(),
                value: t("$content_length"),
                if_not_empty: false,
            },
            UwsgiParam {
                key: "PATH_INFO".into(),
                value: t("$document_uri"),
                if_not_empty: false,
            },
        ];
        c.client_max_body_size = 8;
        c.error_pages = vec![ErrorPage {
            codes: vec![503],
            answer: ErrorPageAnswer::Original,
            target: ErrorPageTarget::Uri(t("/404.html")),
        }];
    });
    let intercept = with(&app_config, |c| c.uwsgi_intercept_errors = true);
    let mut app = location(prefix("/app"), app_config);
    app.content = Content::Uwsgi(target.clone());
    let mut caught = location(prefix("/caught"), intercept);
    caught.content = Content::Uwsgi(target.clone());
    let site = Site {
        servers: vec![server(base, vec![app, caught], Vec::new())],
        ..Site::default()
    };
    let ok = Arc::new(Recorder {
        seen: Mutex::new(Vec::new()),
        status: 200,
    });
    let h = SiteHandler::new(
        Arc::new(site.clone()),
        tree.path().to_path_buf(),
        vec![(target.clone(), ok.clone() as Arc<dyn Handler>)],
    );
    let a = send(
        &h,
        "POST /app/x%20y?a=1 HTTP/1.1\r\nHost: example.com\r\nAccept: a\r\nX-Under_score: no\r\nContent-Length: 4\r\naccept: b\r\n\r\nbody",
    );
    assert_eq!((a.status, a.body.as_str()), (200, "from app"));
    let seen = ok.seen.lock().map(|s| s.clone()).unwrap_or_default();
    let (vars, body) = &seen[0];
    let want: Vec<(String, String)> = [
        ("REQUEST_METHOD", "POST"),
        ("QUERY_STRING", "a=1"),
        ("CONTENT_LENGTH", "4"),
        ("PATH_INFO", "/app/x y"),
        ("HTTP_HOST", "example.com"),
        ("HTTP_ACCEPT", "a, b"),
        ("HTTP_CONTENT_LENGTH", "4"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(vars, &want);
    assert_eq!(body.as_ref(), b"body");

    let a = send(
        &h,
        "POST /app/c HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
    );
    assert_eq!(a.status, 200);
    let seen = ok.seen.lock().map(|s| s.clone()).unwrap_or_default();
    let (vars, body) = &seen[1];
    assert_eq!(body.as_ref(), b"abcde", "a chunked body is read whole");
    assert!(
        vars.contains(&("CONTENT_LENGTH".into(), "5".into())),
        "{vars:?}"
    );

    let a = send(
        &h,
        "POST /app/c HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n5\r\nfghij\r\n0\r\n\r\n",
    );
    assert_eq!(a.status, 413, "a chunked body past client_max_body_size");

    let failing = Arc::new(Recorder {
        seen: Mutex::new(Vec::new()),
        status: 503,
    });
    let h = SiteHandler::new(
        Arc::new(site),
        tree.path().to_path_buf(),
        vec![(target, failing as Arc<dyn Handler>)],
    );
    let a = get(&h, "/app/x");
    assert_eq!(
        (a.status, a.body.as_str()),
        (503, "from app"),
        "not intercepted"
    );
    let a = get(&h, "/caught/x");
    assert_eq!(
        (a.status, a.body.as_str()),
        (503, "custom 404"),
        "intercepted"
    );
}

#[test]
fn a_missing_upstream_is_502() {
    let tree = static_tree();
    let base = config(&tree.path().join("html"));
    let mut app = location(prefix("/app"), Arc::new(base.clone()));
    app.content = Content::Uwsgi(UpstreamTarget::Tcp {
        host: "127.0.0.1".into(),
        port: 9,
    });
    let h = handler(server(base, vec![app], Vec::new()), &tree);
    let a = get(&h, "/app/");
    assert_eq!((a.status, a.body), (502, page("502 Bad Gateway")));
}

/// An upstream that redirects with a relative Location.
struct Redirector;

impl Handler for Redirector {
    fn handle(&self, _request: Request) -> HandlerFuture {
        let mut response = Response::plain(302, "FOUND", "");
        response.headers.push((
            Bytes::from_static(b"Location"),
            Bytes::from_static(b"/rel/target?x=1"),
        ));
        HandlerFuture::new(move || std::future::ready(response))
    }
}

/// nginx 1.22 passes an upstream's relative Location as it is (observed
/// with a uwsgi backend answering `Location: /rel/target?x=1`).
#[test]
fn an_upstream_relative_location_is_passed_as_it_is() {
    let tree = static_tree();
    let base = config(&tree.path().join("html"));
    let target = UpstreamTarget::Tcp {
        host: "127.0.0.1".into(),
        port: 18090,
    };
    let mut app = location(prefix("/up/"), Arc::new(base.clone()));
    app.content = Content::Uwsgi(target.clone());
    let site = Site {
        servers: vec![server(base, vec![app], Vec::new())],
        ..Site::default()
    };
    let h = SiteHandler::new(
        Arc::new(site),
        tree.path().to_path_buf(),
        vec![(target, Arc::new(Redirector) as Arc<dyn Handler>)],
    );
    let a = get(&h, "/up/x");
    assert_eq!((a.status, a.reason.as_str()), (302, "FOUND"));
    assert_eq!(a.header("Location"), Some("/rel/target?x=1"));
}
