//! Request-log lines rendered from fixed entries: uWSGI's default line,
//! custom formats with hostile values, JSON lines, and the filters.

use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use portico_proto::uwsgi::UwsgiPacket;

use super::*;
use crate::handler::Request;

/// The fields of an HTTP request for `target` with `headers`, as parsed.
fn http_fields(target: &str, headers: &[(&str, &[u8])]) -> LogFields {
    let mut raw = format!("GET {target} HTTP/1.0\r\n").into_bytes();
    for (name, value) in headers {
        raw.extend_from_slice(name.as_bytes());
        raw.extend_from_slice(b": ");
        raw.extend_from_slice(value);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"\r\n");
    let request = Request::from_http_bytes(&raw, None, None).expect("parses");
    LogFields::Request(Box::new(request.source))
}

fn entry<'a>(fields: &'a LogFields, uri: &'a [u8], status: u16) -> LogEntry<'a> {
    LogEntry {
        peer: "127.0.0.1",
        user: b"",
        app_id: 0,
        vars: 24,
        vars_bytes: 244,
        core: 0,
        started: UNIX_EPOCH + Duration::from_secs(1_795_210_864),
        method: b"GET",
        uri,
        body_bytes: 16,
        elapsed: Duration::from_micros(1_500),
        protocol: b"HTTP/1.1",
        status,
        header_count: 2,
        header_bytes: 58,
        fields,
        total: Some(7),
    }
}

fn render(config: LogConfig, e: &LogEntry<'_>) -> Option<String> {
    let log = AccessLog::new(config);
    log.render(e, 3)
        .map(|l| String::from_utf8(l).expect("lines are ASCII"))
}

fn custom(format: &str) -> LogConfig {
    LogConfig {
        format: LogFormat::Custom(format.into()),
        ..LogConfig::default()
    }
}

#[test]
fn default_line_has_every_uwsgi_field() {
    let fields = LogFields::None;
    let line = render(LogConfig::default(), &entry(&fields, b"/", 200)).expect("logged");
    let date = ctime(UNIX_EPOCH + Duration::from_secs(1_795_210_864));
    assert_eq!(
        line,
        format!(
            "[pid: {}|app: 0|req: 3/7] 127.0.0.1 () {{24 vars in 244 bytes}} [{date}] GET / => generated 16 bytes in 1 msecs (HTTP/1.1 200) 2 headers in 58 bytes (1 switches on core 0)\n",
            std::process::id()
        )
    );
}

#[test]
fn default_line_escapes_control_bytes_and_can_use_x_forwarded_for() {
    let fields = http_fields("/", &[("X-Forwarded-For", b" 10.1.2.3, 10.0.0.1")]);
    let config = LogConfig {
        x_forwarded_for: true,
        micros: true,
        ..LogConfig::default()
    };
    let line = render(config, &entry(&fields, b"/a\nb\x7f", 200)).expect("logged");
    assert!(line.contains("] 10.1.2.3 () {"), "{line}");
    assert!(line.contains(" GET /a\\x0ab\\x7f => "), "{line}");
    assert!(line.contains(" in 1500 usecs "), "{line}");
    assert_eq!(line.matches('\n').count(), 1);
}

#[test]
fn custom_format_escapes_quotes_and_renders_empty_as_dash() {
    let fields = http_fields(
        "/",
        &[("User-Agent", b"ua \"quoted\" \\ end"), ("Referer", b"")],
    );
    let config = custom(
        r#"%(addr) - %(user) [%(ltime)] "%(method) %(uri) %(proto)" %(status) %(size) "%(referer)" "%(uagent)" %(nosuch)"#,
    );
    let line = render(config, &entry(&fields, b"/q?x=\"a b\"\x01", 404)).expect("logged");
    assert!(
        line.starts_with("127.0.0.1 - - ["),
        "empty user is a dash: {line}"
    );
    assert!(
        line.contains(r#""GET /q?x=\"a b\"\x01 HTTP/1.1" 404 74 "-" "ua \"quoted\" \\ end" -"#),
        "{line}"
    );
}

#[test]
fn a_format_that_looks_like_json_gets_json_escapes() {
    let fields = LogFields::None;
    let config = custom(r#"{"uri": "%(uri)", "status": %(status), "msecs": %(msecs)}"#);
    let line = render(config, &entry(&fields, b"/\"}\x02\xe9", 200)).expect("logged");
    assert_eq!(
        line,
        "{\"uri\": \"/\\\"}\\u0002\\u00e9\", \"status\": 200, \"msecs\": 1}\n"
    );
}

#[test]
fn json_lines_carry_the_main_fields() {
    let fields = http_fields("/", &[("Host", b"example.org")]);
    let config = LogConfig {
        format: LogFormat::Json,
        worker_id: 2,
        ..LogConfig::default()
    };
    let line = render(config, &entry(&fields, b"/x", 201)).expect("logged");
    assert!(line.starts_with("{\"time\":1795210864.000000,\"ltime\":\""));
    for part in [
        "\"addr\":\"127.0.0.1\"",
        "\"user\":\"\"",
        "\"method\":\"GET\"",
        "\"uri\":\"/x\"",
        "\"status\":201",
        "\"size\":74",
        "\"micros\":1500",
        "\"host\":\"example.org\"",
        "\"wid\":2",
        "\"app\":0}",
    ] {
        assert!(line.contains(part), "{part} in {line}");
    }
}

#[test]
fn request_vars_come_from_headers_or_the_request_line() {
    let fields = http_fields("/p%20q?a=1", &[("X-Request-Id", b"abc")]);
    let config =
        custom("%(var.HTTP_X_REQUEST_ID) %(var.QUERY_STRING) %(var.PATH_INFO) %(var.HTTP_NONE)");
    let line = render(config, &entry(&fields, b"/p%20q?a=1", 200)).expect("logged");
    assert_eq!(line, "abc a=1 /p q -\n");
    let fields = LogFields::Request(Box::new(RequestSource::Uwsgi(UwsgiPacket::from_vars(
        0,
        0,
        vec![(
            Bytes::from_static(b"DOCUMENT_ROOT"),
            Bytes::from_static(b"/srv"),
        )],
        0,
    ))));
    let line = render(custom("%(var.DOCUMENT_ROOT)"), &entry(&fields, b"/", 200)).expect("logged");
    assert_eq!(line, "/srv\n");
}

#[test]
fn disabled_logging_still_logs_errors_and_slow_requests_when_asked() {
    let fields = LogFields::None;
    let off = LogConfig {
        enabled: false,
        ..LogConfig::default()
    };
    assert!(render(off.clone(), &entry(&fields, b"/", 500)).is_none());
    let errors = LogConfig {
        log_4xx: true,
        log_5xx: true,
        ..off.clone()
    };
    assert!(render(errors.clone(), &entry(&fields, b"/", 200)).is_none());
    assert!(render(errors.clone(), &entry(&fields, b"/", 404)).is_some());
    assert!(render(errors, &entry(&fields, b"/", 503)).is_some());
    let slow = LogConfig {
        slow: Some(Duration::from_millis(1)),
        ..off
    };
    assert!(render(slow, &entry(&fields, b"/", 200)).is_some());
}

#[test]
fn memory_report_prefixes_the_default_line() {
    let fields = LogFields::None;
    let config = LogConfig {
        memory_report: true,
        ..LogConfig::default()
    };
    let line = render(config, &entry(&fields, b"/", 200)).expect("logged");
    assert!(line.starts_with("{address space usage: "), "{line}");
    assert!(line.contains("MB} {rss usage: "), "{line}");
    assert!(line.contains("MB} [pid: "), "{line}");
}

#[test]
fn request_vars_are_the_path_and_query_the_environ_holds() {
    let fields = http_fields("http://h/a%41?q=1", &[("X-Trace", b"t")]);
    let config = custom("%(var.PATH_INFO) %(var.QUERY_STRING) %(var.HTTP_X_TRACE)");
    let line = render(config, &entry(&fields, b"http://h/a%41?q=1", 200)).expect("logged");
    assert_eq!(line, "/aA q=1 t\n");
}

#[test]
fn a_uwsgi_packets_headers_are_its_http_vars() {
    let fields = LogFields::Request(Box::new(RequestSource::Uwsgi(UwsgiPacket::from_vars(
        0,
        0,
        vec![
            (
                Bytes::from_static(b"HTTP_HOST"),
                Bytes::from_static(b"a.test"),
            ),
            (
                Bytes::from_static(b"CONTENT_LENGTH"),
                Bytes::from_static(b"5"),
            ),
        ],
        0,
    ))));
    let line = render(custom("%(host) %(cl)"), &entry(&fields, b"/", 200)).expect("logged");
    assert_eq!(line, "a.test 5\n");
}
