//! Tests of server and location selection. Every expected answer below was
//! given by nginx 1.22.1 for the same configuration (each location or
//! server answering `return 200 "<its label>"`).

use std::path::PathBuf;
use std::sync::Arc;

use portico_config::site::{
    Content, Listen, ListenAddr, ListenProtocol, Location, LocationConfig, LocationMatch, Pattern,
    Server, ServerName, Site, UpstreamTarget,
};

use super::*;

fn pattern(source: &str) -> Pattern {
    Pattern::new(source, false).unwrap_or_else(|e| panic!("{source}: {e}"))
}

/// A location labelled by its `origin`.
fn loc(label: &str, matcher: LocationMatch, nested: Vec<Location>) -> Location {
    Location {
        matcher,
        rewrites: Vec::new(),
        locations: nested,
        content: Content::Static,
        config: Arc::new(LocationConfig::default()),
        origin: label.to_string(),
    }
}

fn exact(uri: &str) -> LocationMatch {
    LocationMatch::Exact(uri.to_string())
}

fn prefix(uri: &str) -> LocationMatch {
    LocationMatch::Prefix {
        uri: uri.to_string(),
        stop_regex: false,
    }
}

fn stop(uri: &str) -> LocationMatch {
    LocationMatch::Prefix {
        uri: uri.to_string(),
        stop_regex: true,
    }
}

fn regex(source: &str) -> LocationMatch {
    LocationMatch::Regex(pattern(source))
}

fn uwsgi(mut location: Location) -> Location {
    location.content = Content::Uwsgi(UpstreamTarget::Tcp {
        host: "127.0.0.1".into(),
        port: 1,
    });
    location
}

/// The locations of the nginx test server, in the order written.
fn locations() -> Vec<Location> {
    vec![
        loc("exact", exact("/exact"), vec![]),
        loc("prefix-exact", prefix("/exact"), vec![]),
        loc("pre", prefix("/pre"), vec![]),
        loc("prefix", prefix("/prefix"), vec![]),
        loc("re-prefix-whole", regex("^/prefix$"), vec![]),
        loc("re-php", regex(r"\.php$"), vec![]),
        loc(
            "stop",
            stop("/stop"),
            vec![loc("stop-nested-php", regex(r"\.php$"), vec![])],
        ),
        loc(
            "nest",
            prefix("/nest"),
            vec![
                loc("nest-nested-php", regex(r"\.php$"), vec![]),
                loc(
                    "nest-inner",
                    prefix("/nest/inner"),
                    vec![loc("nest-inner-txt", regex(r"\.txt$"), vec![])],
                ),
                loc("nest-hard", stop("/nest/hard"), vec![]),
                loc("nest-eq", exact("/nest/eq.php"), vec![]),
            ],
        ),
        loc(
            "rx",
            regex(r"^/rx/(?<name>\w+)"),
            vec![loc("rx-deeper", regex(r"^/rx/(\w+)/deeper"), vec![])],
        ),
        uwsgi(loc("app", prefix("/app/"), vec![])),
        loc("re-app", regex("^/app$"), vec![]),
        uwsgi(loc("b-slash", prefix("/b/"), vec![])),
        loc("b-prefix", prefix("/b"), vec![]),
        uwsgi(loc("d-exact", exact("/d/"), vec![])),
    ]
}

fn label(found: &Option<Found<'_>>) -> String {
    match found {
        None => "none".to_string(),
        Some(f) if f.redirect_slash => format!("301 {}", f.location.origin),
        Some(f) => f.location.origin.clone(),
    }
}

#[test]
fn locations_are_chosen_as_nginx_chooses_them() {
    let locations = locations();
    let cases = [
        ("/exact", "exact"),
        ("/exact/x", "prefix-exact"),
        // A prefix equal to the whole URI still lets the regexes try.
        ("/prefix", "re-prefix-whole"),
        ("/prefixx", "prefix"),
        ("/prefix/a.php", "re-php"),
        ("/pre.php", "re-php"),
        // `^~` stops the regexes of its level, not the ones inside it.
        ("/stop/a.php", "stop-nested-php"),
        ("/stop/a", "stop"),
        // Regexes nested in the chosen prefix come first.
        ("/nest/a.php", "nest-nested-php"),
        ("/nest/x", "nest"),
        ("/nest/inner/a.txt", "nest-inner-txt"),
        ("/nest/inner/a.php", "nest-nested-php"),
        // A nested `^~` blocks its siblings' regexes but not the top level's.
        ("/nest/hard/a.php", "re-php"),
        ("/nest/eq.php", "nest-eq"),
        ("/nest/eq.phpx", "nest"),
        ("/rx/abc", "rx"),
        ("/rx/abc/deeper", "rx-deeper"),
        // The auto-redirect of a `uwsgi_pass` location beats the regexes...
        ("/app", "301 app"),
        ("/app/x", "app"),
        // ...but not a prefix equal to the URI.
        ("/b", "b-prefix"),
        ("/d", "301 d-exact"),
        ("/Exact", "none"),
        ("/other", "none"),
    ];
    for (uri, want) in cases {
        let found = find_location(&locations, uri.as_bytes());
        assert_eq!(label(&found), want, "{uri}");
    }
}

#[test]
fn regex_locations_return_their_captures_keeping_outer_names() {
    let locations = locations();
    let found = find_location(&locations, b"/rx/abc");
    let caps = found.map(|f| f.captures).unwrap_or_default();
    assert_eq!(caps.get(1), Some(&b"abc"[..]));
    assert_eq!(caps.named("name"), Some(&b"abc"[..]));

    // nginx answered "rx-deeper abc abc": $1 from the nested regex, $name
    // still set by the outer one.
    let found = find_location(&locations, b"/rx/abc/deeper");
    let caps = found.map(|f| f.captures).unwrap_or_default();
    assert_eq!(caps.get(0), Some(&b"/rx/abc/deeper"[..]));
    assert_eq!(caps.get(1), Some(&b"abc"[..]));
    assert_eq!(caps.named("name"), Some(&b"abc"[..]));
}

#[test]
fn prefix_matches_carry_no_captures() {
    let locations = locations();
    let found = find_location(&locations, b"/nest/x");
    assert!(found.is_some_and(|f| f.captures.is_empty()));
}

#[test]
fn aliases_replace_prefixes_not_regexes() {
    let cases = [
        (loc("p", prefix("/al/"), vec![]), Some(&b"/al/"[..])),
        (loc("e", exact("/x"), vec![]), Some(&b"/x"[..])),
        (loc("r", regex("^/r"), vec![]), None),
        (loc("n", LocationMatch::Named("n".into()), vec![]), None),
    ];
    for (location, want) in &cases {
        assert_eq!(alias_prefix(location), *want, "{}", location.origin);
    }
}

#[test]
fn named_locations_are_found_with_or_without_the_at_sign() {
    let mut server = server(vec![], vec![]);
    server.named = vec![loc(
        "fallback",
        LocationMatch::Named("fallback".into()),
        vec![],
    )];
    assert!(find_named(&server, "@fallback").is_some());
    assert!(find_named(&server, "fallback").is_some());
    assert!(find_named(&server, "@other").is_none());
}

fn listen(addr: &str, default_server: bool) -> Listen {
    let addr = match addr.strip_prefix("unix:") {
        Some(path) => ListenAddr::Unix(PathBuf::from(path)),
        None => ListenAddr::Tcp(addr.parse().unwrap_or_else(|e| panic!("{addr}: {e}"))),
    };
    Listen {
        addr,
        protocol: ListenProtocol::Http,
        default_server,
        backlog: None,
        reuseport: false,
        ssl: false,
        http2: false,
    }
}

fn server(listens: Vec<Listen>, names: Vec<ServerName>) -> Server {
    Server {
        listens,
        names,
        rewrites: Vec::new(),
        locations: Vec::new(),
        named: Vec::new(),
        config: Arc::new(LocationConfig::default()),
        origin: String::new(),
        tls: None,
    }
}

fn exact_name(name: &str) -> ServerName {
    ServerName::Exact(name.to_string())
}

/// The servers of the nginx test configuration; the label of each is its
/// index in this list.
fn site() -> Site {
    let on = |port: u16| listen(&format!("127.0.0.1:{port}"), false);
    let servers = vec![
        // 0, 1: port 1: a default_server and one without server_name.
        server(
            vec![listen("127.0.0.1:1", true)],
            vec![exact_name("a.test")],
        ),
        server(vec![on(1)], vec![]),
        // 2, 3: port 2: the name "" written on a server that is not default.
        server(vec![on(2)], vec![exact_name("x.test")]),
        server(vec![on(2)], vec![exact_name("y.test"), exact_name("")]),
        // 4, 5: port 3: a specific address and the wildcard.
        server(vec![on(3)], vec![exact_name("spec.test")]),
        server(
            vec![listen("0.0.0.0:3", false)],
            vec![exact_name("wild.test")],
        ),
        // 6..: port 4: every kind of name.
        server(vec![on(4)], vec![exact_name("exact.test")]),
        server(
            vec![on(4)],
            vec![ServerName::LeadingWildcard(".example.com".into())],
        ),
        server(
            vec![on(4)],
            vec![ServerName::LeadingWildcard(".www.example.com".into())],
        ),
        server(
            vec![on(4)],
            vec![ServerName::TrailingWildcard("mail.".into())],
        ),
        server(
            vec![on(4)],
            vec![ServerName::TrailingWildcard("mail.example.".into())],
        ),
        server(
            vec![on(4)],
            vec![
                ServerName::Regex(pattern(r"^(?<sub>[a-z]+)\.re\.test$")),
                ServerName::Regex(pattern(r"^(\d+)\.num$")),
            ],
        ),
        server(vec![on(4)], vec![ServerName::Regex(pattern("re"))]),
        server(
            vec![on(4)],
            vec![
                exact_name("dot.test"),
                ServerName::LeadingWildcard(".dot.test".into()),
            ],
        ),
        // 14: a unix socket.
        server(vec![listen("unix:/run/app.sock", false)], vec![]),
    ];
    Site {
        servers,
        ..Site::default()
    }
}

fn tcp(addr: &str) -> ConnAddr {
    ListenAddr::Tcp(addr.parse().unwrap_or_else(|e| panic!("{addr}: {e}")))
}

#[test]
fn servers_are_chosen_as_nginx_chooses_them() {
    let table = ServerTable::new(&site());
    let cases: &[(&str, &str, Option<usize>)] = &[
        // Without Host the name "" is looked up: the server without
        // server_name wins over the default_server...
        ("127.0.0.1:1", "", Some(1)),
        ("127.0.0.1:1", "zzz", Some(0)),
        // ...and so does an explicit "" over the first server.
        ("127.0.0.1:2", "", Some(3)),
        ("127.0.0.1:2", "zzz", Some(2)),
        // A specific address hides the wildcard's servers.
        ("127.0.0.1:3", "wild.test", Some(4)),
        ("127.0.0.2:3", "spec.test", Some(5)),
        ("[::ffff:127.0.0.2]:3", "spec.test", Some(5)),
        ("[::1]:3", "spec.test", None),
        ("127.0.0.1:9", "exact.test", None),
        ("127.0.0.1:4", "exact.test", Some(6)),
        ("127.0.0.1:4", "EXACT.TEST.", Some(6)),
        ("127.0.0.1:4", "exact.test:99", Some(6)),
        ("127.0.0.1:4", "a.example.com", Some(7)),
        ("127.0.0.1:4", "a.b.example.com", Some(7)),
        ("127.0.0.1:4", "example.com", Some(6)),
        ("127.0.0.1:4", "x.www.example.com", Some(8)),
        ("127.0.0.1:4", "www.example.com", Some(7)),
        ("127.0.0.1:4", "mail.foo", Some(9)),
        ("127.0.0.1:4", "mail.example.org", Some(10)),
        ("127.0.0.1:4", "mail.example", Some(9)),
        ("127.0.0.1:4", "abc.re.test", Some(11)),
        ("127.0.0.1:4", "42.num", Some(11)),
        ("127.0.0.1:4", "42.re.test", Some(12)),
        ("127.0.0.1:4", "dot.test", Some(13)),
        ("127.0.0.1:4", "a.dot.test", Some(13)),
        ("127.0.0.1:4", "[::1]:80", Some(6)),
    ];
    for &(local, host, want) in cases {
        let got = table.select(&tcp(local), host.as_bytes()).map(|s| s.index);
        assert_eq!(got, want, "{local} Host: {host}");
    }
    let unix = ListenAddr::Unix(PathBuf::from("/run/app.sock"));
    assert_eq!(table.select(&unix, b"x").map(|s| s.index), Some(14));
}

#[test]
fn server_name_regexes_return_their_captures() {
    let table = ServerTable::new(&site());
    let selected = table.select(&tcp("127.0.0.1:4"), b"ABC.re.test");
    let caps = selected.map(|s| s.captures).unwrap_or_default();
    assert_eq!(caps.named("sub"), Some(&b"abc"[..]), "matched lower-cased");
    assert_eq!(caps.get(1), Some(&b"abc"[..]));

    let selected = table.select(&tcp("127.0.0.1:4"), b"42.num");
    let caps = selected.map(|s| s.captures).unwrap_or_default();
    assert_eq!(caps.get(1), Some(&b"42"[..]));
    assert_eq!(caps.named("sub"), None);
}

#[test]
fn a_lone_server_answers_every_host_and_still_runs_its_regex_names() {
    let site = Site {
        servers: vec![
            server(
                vec![listen("127.0.0.1:5", false)],
                vec![exact_name("only.test")],
            ),
            server(
                vec![listen("127.0.0.1:6", false)],
                vec![ServerName::Regex(pattern(r"^(\w+)\.lone$"))],
            ),
        ],
        ..Site::default()
    };
    let table = ServerTable::new(&site);
    for host in ["only.test", "other.test", "", "ONLY.TEST:80"] {
        let got = table.select(&tcp("127.0.0.1:5"), host.as_bytes());
        assert_eq!(got.map(|s| s.index), Some(0), "Host: {host}");
    }
    let selected = table.select(&tcp("127.0.0.1:6"), b"abc.lone");
    let caps = selected.map(|s| s.captures).unwrap_or_default();
    assert_eq!(caps.get(1), Some(&b"abc"[..]));
    let other = table.select(&tcp("127.0.0.1:6"), b"x.test");
    assert_eq!(other.map(|s| s.index), Some(1));
}

#[test]
fn host_keys_lose_their_port_and_one_trailing_dot() {
    let cases: &[(&str, &str)] = &[
        ("example.com", "example.com"),
        ("example.com:8080", "example.com"),
        ("example.com.", "example.com"),
        ("example.com.:80", "example.com"),
        ("[::1]:8080", "[::1]"),
        ("[::1]", "[::1]"),
        ("", ""),
    ];
    for &(host, want) in cases {
        assert_eq!(host_key(host.as_bytes()), want.as_bytes(), "{host}");
    }
}

#[test]
fn a_proxy_pass_location_auto_redirects_like_uwsgi_pass() {
    use portico_config::site::{ProxyPass, ProxyTarget};
    let mut api = loc("api", prefix("/api/"), Vec::new());
    api.content = Content::Proxy(ProxyPass {
        target: ProxyTarget::Group("app".into()),
        uri: None,
        url: "http://app".into(),
        proxy_host: "app".into(),
        proxy_port: 80,
        origin: String::new(),
    });
    let locations = vec![api, loc("re", regex("^/api"), Vec::new())];
    // nginx answers `/api` with a 301 to `/api/` (auto_redirect).
    let found = find_location(&locations, b"/api");
    assert_eq!(label(&found), "301 api");
}
