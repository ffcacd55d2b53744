//! Tests of variable values. Where a case says "nginx", nginx 1.22.1 gave
//! that answer for the same request (`return 200 "...$var..."`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use portico_config::site::{DocRoot, LocationConfig, Pattern, Server, ServerName, Template};

use super::*;

fn server(names: Vec<ServerName>) -> Server {
    Server {
        listens: Vec::new(),
        names,
        rewrites: Vec::new(),
        locations: Vec::new(),
        named: Vec::new(),
        config: Arc::new(LocationConfig::default()),
        origin: String::new(),
        tls: None,
    }
}

fn headers(list: &[(&str, &str)]) -> Headers {
    list.iter().copied().collect()
}

fn template(text: &str) -> Template {
    Template::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// The parts of a context that tests vary.
struct Fixture {
    headers: Headers,
    local: ConnAddr,
    server: Server,
    location: LocationConfig,
    captures: Captures,
    server_captures: Captures,
    maps: Vec<VarMap>,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            headers: headers(&[
                ("Host", "Example.COM:8080"),
                ("X-Foo", "one"),
                ("X-Foo", "two"),
                ("X_Foo", "under"),
                ("X-Forwarded-For", "a"),
                ("X-Forwarded-For", "b"),
                ("Cookie", "a=1; SID = v1 ;x=2"),
                ("Cookie", "sid=v2"),
                ("Authorization", "basic dXNlcjpwYXNz"),
                ("Content-Type", "text/x"),
                ("Content-Length", "0"),
            ]),
            local: ListenAddr::Tcp("127.0.0.1:8080".parse().unwrap_or_else(|_| unreachable!())),
            server: server(vec![
                ServerName::LeadingWildcard(".wild.test".into()),
                ServerName::Exact("second.test".into()),
            ]),
            location: LocationConfig::default(),
            captures: Captures::default(),
            server_captures: Captures::default(),
            maps: Vec::new(),
        }
    }

    fn cx(&self) -> VarContext<'_> {
        VarContext {
            method: b"GET",
            target: b"/x?q=1&Q=2&m=abc",
            request_uri: b"/x?q=1&Q=2&m=abc",
            uri: b"/x",
            args: b"q=1&Q=2&m=abc",
            headers: &self.headers,
            host: b"Example.COM:8080",
            peer: Some(SocketAddr::from(([10, 0, 0, 7], 54321))),
            local: &self.local,
            scheme: "http",
            tls: None,
            server_protocol: "HTTP/1.0",
            server: &self.server,
            location: &self.location,
            location_prefix: Some(b"/"),
            prefix: Path::new("/srv/prefix/"),
            captures: &self.captures,
            server_captures: &self.server_captures,
            response: ResponseFacts {
                status: 404,
                body_bytes_sent: 153,
                bytes_sent: 300,
                gzip: Some((2125, 1000)),
            },
            start: UNIX_EPOCH + Duration::from_millis(1_733_064_006_000),
            now: Some(UNIX_EPOCH + Duration::from_millis(1_733_064_006_123)),
            maps: &self.maps,
            proxy: None,
        }
    }
}

fn render(text: &str, cx: &VarContext<'_>) -> String {
    let mut out = Vec::new();
    eval(&template(text), cx, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn request_variables_have_nginx_values() {
    let fixture = Fixture::new();
    let cx = fixture.cx();
    let cases: &[(&str, &str)] = &[
        ("$uri|$document_uri", "/x|/x"),
        ("$request_uri", "/x?q=1&Q=2&m=abc"),
        (
            "$args|$query_string|$is_args",
            "q=1&Q=2&m=abc|q=1&Q=2&m=abc|?",
        ),
        // nginx: case-insensitive, first occurrence, raw.
        ("[$arg_Q][$arg_m][$arg_none]", "[1][abc][]"),
        ("$host", "example.com"),
        ("$http_host", "Example.COM:8080"),
        // Joined as nginx 1.23+ joins them; `X_Foo` is dropped (nginx).
        ("$http_x_foo", "one, two"),
        ("$http_x_forwarded_for", "a, b"),
        ("$http_cookie", "a=1; SID = v1 ;x=2; sid=v2"),
        ("[$cookie_Sid]", "[v1 ]"),
        ("$remote_addr:$remote_port", "10.0.0.7:54321"),
        ("$server_addr:$server_port", "127.0.0.1:8080"),
        // nginx: the first name as written.
        ("$server_name", "*.wild.test"),
        ("$server_protocol $scheme [$https]", "HTTP/1.0 http []"),
        ("$request_method", "GET"),
        ("$content_type|$content_length", "text/x|0"),
        ("$request", "GET /x?q=1&Q=2&m=abc HTTP/1.0"),
        ("$remote_user", "user"),
        ("$status $body_bytes_sent $bytes_sent", "404 153 300"),
        ("$gzip_ratio", "2.13"),
        ("$request_time", "0.123"),
        ("$msec", "1733064006.123"),
        ("[$1][$name]", "[][]"),
    ];
    for &(text, want) in cases {
        assert_eq!(render(text, &cx), want, "{text}");
    }
}

#[test]
fn host_falls_back_to_the_server_name() {
    let mut fixture = Fixture::new();
    let cx = VarContext {
        host: b"",
        ..fixture.cx()
    };
    assert_eq!(render("$host", &cx), "*.wild.test");
    fixture.server = server(vec![]);
    let cx = VarContext {
        host: b"",
        ..fixture.cx()
    };
    assert_eq!(render("[$host][$server_name]", &cx), "[][]");
}

#[test]
fn server_names_print_as_written() {
    let regex = Pattern::new(r"^(www)\.x$", false).unwrap_or_else(|e| panic!("{e}"));
    let cases: Vec<(ServerName, &str)> = vec![
        (ServerName::Exact("a.test".into()), "a.test"),
        (ServerName::LeadingWildcard(".a.test".into()), "*.a.test"),
        (ServerName::TrailingWildcard("mail.".into()), "mail.*"),
        (ServerName::Regex(regex), r"~^(www)\.x$"),
    ];
    for (name, want) in cases {
        let mut fixture = Fixture::new();
        fixture.server = server(vec![name]);
        assert_eq!(render("$server_name", &fixture.cx()), want);
    }
}

#[test]
fn status_is_three_digits_before_a_response() {
    let fixture = Fixture::new();
    let cx = VarContext {
        response: ResponseFacts::default(),
        ..fixture.cx()
    };
    assert_eq!(render("$status", &cx), "000");
}

#[test]
fn times_have_nginx_shapes() {
    let fixture = Fixture::new();
    let cx = fixture.cx();
    let local = render("$time_local", &cx);
    let shape = regex::Regex::new(r"^\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}$");
    assert!(shape.is_ok_and(|re| re.is_match(&local)), "{local}");
    let iso = render("$time_iso8601", &cx);
    let shape = regex::Regex::new(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$");
    assert!(shape.is_ok_and(|re| re.is_match(&iso)), "{iso}");
    let cx = VarContext {
        now: Some(cx.start - Duration::from_secs(1)),
        ..cx
    };
    assert_eq!(render("$request_time", &cx), "0.000", "a clock step back");
}

#[test]
fn without_a_given_time_the_clock_is_read_once_per_template() {
    let fixture = Fixture::new();
    let cx = VarContext {
        now: None,
        ..fixture.cx()
    };
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let text = render("$msec $msec $msec", &cx);
    let parts: Vec<&str> = text.split(' ').collect();
    assert_eq!(parts.len(), 3, "{text}");
    assert!(parts.iter().all(|p| *p == parts[0]), "one reading: {text}");
    let secs: u64 = parts[0]
        .split('.')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    assert!(
        secs >= before && secs <= before + 5,
        "the clock's time: {text}"
    );
    // A template without time variables reads nothing and still renders.
    assert_eq!(render("$uri", &cx), "/x");
}

#[test]
fn unix_sockets_have_unix_addresses() {
    let mut fixture = Fixture::new();
    fixture.local = ListenAddr::Unix(PathBuf::from("/run/p.sock"));
    let cx = VarContext {
        peer: None,
        ..fixture.cx()
    };
    assert_eq!(
        render("$remote_addr|$remote_port|$server_addr|$server_port", &cx),
        "unix:||unix:/run/p.sock|"
    );
}

/// (root or alias, location prefix, uri) → ($document_root, $request_filename);
/// nginx's answers with `-p /tmp/rt/` (here `/srv/prefix/`).
#[test]
fn roots_and_aliases_map_uris_as_nginx_does() {
    let root = |t: &str| DocRoot::Root(template(t));
    let alias = |t: &str| DocRoot::Alias(template(t));
    type Case = (
        DocRoot,
        Option<&'static str>,
        &'static str,
        &'static str,
        &'static str,
    );
    let rxal = regex::bytes::Regex::new("^/rxal/(.*)$").unwrap_or_else(|e| panic!("{e}"));
    let cases: Vec<Case> = vec![
        (
            root("html"),
            Some("/"),
            "/x",
            "/srv/prefix/html",
            "/srv/prefix/html/x",
        ),
        (
            root("relroot/"),
            Some("/rel/"),
            "/rel/f",
            "/srv/prefix/relroot",
            "/srv/prefix/relroot/rel/f",
        ),
        (root("/"), Some("/"), "/f", "", "/f"),
        (root("/var/www/"), Some("/"), "/f", "/var/www", "/var/www/f"),
        (
            root("html/$arg_d/"),
            Some("/v"),
            "/v/x",
            "/srv/prefix/html/sub",
            "/srv/prefix/html/sub/v/x",
        ),
        (
            alias("/srv/x/"),
            Some("/al/"),
            "/al/a/b",
            "/srv/x/",
            "/srv/x/a/b",
        ),
        (alias("/srv/x/"), Some("/al/"), "/al/", "/srv/x/", "/srv/x/"),
        (
            alias("/srv/y"),
            Some("/alnoslash"),
            "/alnoslash/q",
            "/srv/y",
            "/srv/y/q",
        ),
        (
            alias("/srv/y"),
            Some("/alnoslash"),
            "/alnoslashX",
            "/srv/y",
            "/srv/yX",
        ),
        (
            alias("/srv/z/$1"),
            None,
            "/rxal/p/q",
            "/srv/z/p/q",
            "/srv/z/p/q",
        ),
    ];
    for (doc_root, prefix, uri, want_root, want_file) in cases {
        let mut fixture = Fixture::new();
        fixture.location.root = doc_root;
        fixture.captures = Captures::of_match(&rxal, uri.as_bytes()).unwrap_or_default();
        let cx = VarContext {
            uri: uri.as_bytes(),
            args: b"d=sub",
            location_prefix: prefix.map(str::as_bytes),
            ..fixture.cx()
        };
        assert_eq!(render("$document_root", &cx), want_root, "{uri}");
        assert_eq!(render("$request_filename", &cx), want_file, "{uri}");
    }
}

#[test]
fn an_alias_does_not_apply_to_a_rewritten_uri() {
    let mut fixture = Fixture::new();
    fixture.location.root = DocRoot::Alias(template("/srv/x/"));
    let cx = VarContext {
        uri: b"/elsewhere",
        location_prefix: Some(b"/al/"),
        ..fixture.cx()
    };
    let mut out = Vec::new();
    assert!(!request_filename(&cx, &mut out));
    assert_eq!(out, b"/srv/x/");
}

#[test]
fn numbered_captures_come_from_the_last_match_and_names_from_either() {
    let mut fixture = Fixture::new();
    let re = |s: &str| regex::bytes::Regex::new(s).unwrap_or_else(|e| panic!("{e}"));
    fixture.server_captures =
        Captures::of_match(&re(r"^(?<sub>\w+)\.(?<dom>\w+)$"), b"shop.test").unwrap_or_default();
    fixture.captures =
        Captures::of_match(&re(r"^/(?<sub>\w+)/(\d+)"), b"/api/42").unwrap_or_default();
    assert_eq!(render("$1 $2 $sub $dom", &fixture.cx()), "api 42 api test");
}

fn map(source: &str, hostnames: bool, exact: &[(&str, &str)], regexes: &[(&str, &str)]) -> VarMap {
    VarMap {
        source: template(source),
        target: "out".into(),
        default: template("dflt"),
        exact: exact
            .iter()
            .map(|(k, v)| (k.to_string(), template(v)))
            .collect(),
        regexes: regexes
            .iter()
            .map(|(k, v)| {
                (
                    Pattern::new(k, false).unwrap_or_else(|e| panic!("{k}: {e}")),
                    template(v),
                )
            })
            .collect(),
        hostnames,
    }
}

#[test]
fn maps_match_as_nginx_maps_do() {
    let mut fixture = Fixture::new();
    fixture.maps = vec![
        // nginx: `m=abc` matched key `ABC`; `m=re42` gave "re-42-42".
        map(
            "$arg_m",
            false,
            &[("ABC", "upper-key")],
            &[(r"^re(?<n>\d+)$", "re-$n-$1")],
        ),
        map(
            "$arg_h",
            true,
            &[
                ("*.example.com", "wild"),
                ("www.example.*", "tail"),
                ("exact.org", "exact"),
                (".dot.org", "dot"),
            ],
            &[],
        ),
        // A map of itself: a cycle ends empty instead of looping.
        map("$out", false, &[], &[]),
    ];
    fixture.maps[2].source = Template {
        parts: vec![TemplatePart::Var(Variable::Map(2))],
    };
    let use_map = |i: usize| Template {
        parts: vec![TemplatePart::Var(Variable::Map(i))],
    };
    let cases: &[(usize, &str, &str)] = &[
        (0, "m=abc", "upper-key"),
        (0, "m=re42", "re-42-42"),
        (0, "m=zzz", "dflt"),
        // nginx: lower-cased, one trailing dot removed.
        (1, "h=A.Example.com.", "wild"),
        (1, "h=www.example.org", "tail"),
        (1, "h=EXACT.org", "exact"),
        (1, "h=dot.org", "dot"),
        (1, "h=a.dot.org", "dot"),
        (1, "h=example.com", "dflt"),
        (2, "", "dflt"),
    ];
    for &(index, args, want) in cases {
        let cx = VarContext {
            args: args.as_bytes(),
            ..fixture.cx()
        };
        let mut out = Vec::new();
        eval(&use_map(index), &cx, &mut out);
        assert_eq!(String::from_utf8_lossy(&out), want, "map {index} {args}");
    }
}

#[test]
fn proxy_variables_come_from_the_proxied_request() {
    let fixture = Fixture::new();
    assert_eq!(
        render(
            "[$proxy_host][$upstream_addr][$proxy_add_x_forwarded_for]",
            &fixture.cx()
        ),
        "[][][a, b, 10.0.0.7]"
    );
    let mut upstream = crate::UpstreamTries::default();
    upstream.push("127.0.0.1:8000", 502, std::time::Duration::from_millis(1));
    upstream.push("127.0.0.1:8001", 200, std::time::Duration::from_millis(4));
    let facts = ProxyFacts {
        host: Bytes::from_static(b"app:8000"),
        port: Bytes::from_static(b"8000"),
        upstream,
    };
    let headers = headers(&[
        ("X-Forwarded-For", "1.2.3.4"),
        ("x-forwarded-for", "5.6.7.8, 9.9.9.9"),
    ]);
    let cx = VarContext {
        proxy: Some(&facts),
        headers: &headers,
        ..fixture.cx()
    };
    assert_eq!(
        render(
            "$proxy_host|$proxy_port|$upstream_addr|$upstream_status|$upstream_response_time",
            &cx
        ),
        "app:8000|8000|127.0.0.1:8000, 127.0.0.1:8001|502, 200|0.001, 0.004"
    );
    assert_eq!(
        render("$proxy_add_x_forwarded_for", &cx),
        "1.2.3.4, 5.6.7.8, 9.9.9.9, 10.0.0.7"
    );
}

#[test]
fn http2_is_h2c_in_the_clear_h2_over_tls_and_empty_otherwise() {
    let fixture = Fixture::new();
    let mut cx = fixture.cx();
    assert_eq!(render("[$http2]", &cx), "[]");
    cx.server_protocol = "HTTP/2.0";
    assert_eq!(render("[$http2]", &cx), "[h2c]");
    cx.scheme = "https";
    assert_eq!(render("[$http2]", &cx), "[h2]");
}
