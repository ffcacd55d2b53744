//! Unit tests of [`Config::from_settings`] and [`Config::validate`] (model/mod.rs, settings.rs).

use super::*;
use crate::{ConfigError, parse_args};

fn config(args: &[&str]) -> Result<Config, ConfigError> {
    Config::from_settings(&parse_args(args.iter().copied())?)
}

#[test]
fn https_takes_cert_key_ciphers_and_a_client_ca_as_uwsgi() {
    use crate::site::{VerifyClient, VerifyFailure};
    let c = config(&[
        "--https",
        ":8443,site.pem,site.key",
        "--https-socket",
        "127.0.0.1:9443,a.pem,a.key,ECDHE+AESGCM,!ca.pem",
        "--https",
        ":1,c.pem,c.key,,ca.pem",
    ])
    .expect("valid");
    let tls: Vec<_> = c
        .listeners
        .iter()
        .map(|l| match &l.tls {
            Some(ListenerTls::Own(s)) => s.as_ref().clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(tls[0].certificates[0].cert, PathBuf::from("site.pem"));
    assert_eq!(tls[0].certificates[0].key, PathBuf::from("site.key"));
    assert_eq!(tls[0].verify_client, VerifyClient::Off);
    assert_eq!(tls[1].ciphers, "ECDHE+AESGCM");
    assert_eq!(tls[1].client_ca, Some(PathBuf::from("ca.pem")));
    assert_eq!(tls[1].verify_client, VerifyClient::On);
    assert_eq!(tls[1].verify_failure, VerifyFailure::Handshake);
    assert_eq!(tls[2].ciphers, crate::site::DEFAULT_CIPHERS);
    assert_eq!(tls[2].verify_client, VerifyClient::Optional);
    assert!(config(&["--https", ":8443,only-a-cert.pem"]).is_err());
    assert!(config(&["--https", ":8443,a,b,c,d,e"]).is_err());
}

#[test]
fn addresses_accept_host_port_all_interfaces_and_ipv6() {
    let c = config(&[
        "--http",
        "127.0.0.1:80",
        "--http",
        ":8000",
        "--http-socket",
        "[::1]:0",
    ])
    .expect("valid");
    let addrs: Vec<_> = c.listeners.iter().map(|l| l.addr.clone()).collect();
    assert_eq!(
        addrs,
        vec![
            ListenAddr::Tcp {
                host: "127.0.0.1".into(),
                port: 80
            },
            ListenAddr::Tcp {
                host: "".into(),
                port: 8000
            },
            ListenAddr::Tcp {
                host: "::1".into(),
                port: 0
            },
        ]
    );
}

#[test]
fn post_buffering_defaults_on_and_zero_streams() {
    let c = config(&[]).expect("valid");
    assert_eq!(c.client.post_buffering, 16 * 1024);
    let c = config(&["--post-buffering", "0"]).expect("valid");
    assert_eq!(c.client.post_buffering, 0);
    let c = config(&[
        "--post-buffering",
        "8192",
        "--post-buffering-bufsize",
        "4096",
    ])
    .expect("valid");
    assert_eq!(c.client.post_buffering, 8192);
}

#[test]
fn socket_and_http_timeouts_set_their_listeners_limits() {
    let c = config(&[]).expect("valid");
    assert_eq!(c.client.socket_timeout, Duration::from_secs(4));
    assert_eq!(c.client.header_timeout, Duration::from_secs(60));
    let c = config(&["-z", "7", "--http-timeout", "9"]).expect("valid");
    assert_eq!(c.client.socket_timeout, Duration::from_secs(7));
    assert_eq!(
        (
            c.client.header_timeout,
            c.client.body_timeout,
            c.client.send_timeout
        ),
        (
            Duration::from_secs(9),
            Duration::from_secs(9),
            Duration::from_secs(9)
        )
    );
    assert_eq!(c.client.keepalive_timeout, Duration::from_secs(75));
    assert!(config(&["--socket-timeout", "0"]).is_err());
}

#[test]
fn worker_connections_defaults_to_nginx_s_512_and_zero_means_none() {
    assert_eq!(config(&[]).expect("valid").worker_connections, 512);
    let c = config(&["--worker-connections", "16"]).expect("valid");
    assert_eq!(c.worker_connections, 16);
    assert_eq!(
        config(&["--worker-connections", "0"])
            .expect("valid")
            .worker_connections,
        0
    );
    assert!(config(&["--worker-connections", "many"]).is_err());
}

#[test]
fn limit_post_is_a_byte_count_and_zero_means_none() {
    assert_eq!(config(&[]).expect("valid").limit_post, 0);
    let c = config(&["--limit-post", "1048576"]).expect("valid");
    assert_eq!(c.limit_post, 1_048_576);
    assert_eq!(
        crate::test_err::text(config(&["--limit-post", "1M"])),
        "command line: option \"--limit-post\": \"1M\" is not a whole number of at least 0"
    );
    assert_eq!(
        crate::test_err::text(config(&["--limit-post", "-1"])),
        "command line: option \"--limit-post\": \"-1\" is not a whole number of at least 0"
    );
}

#[test]
fn bad_address_names_option_value_and_kind() {
    let err = config(&["--http", "localhost:http"]).expect_err("bad");
    assert_eq!(
        err.to_string(),
        "command line: option \"--http\": \"localhost:http\" is not an address (host:port, :port, [::1]:port or a unix socket path)"
    );
    assert_eq!(
        crate::test_err::text(config(&["--http", "::1:80"])),
        "command line: option \"--http\": \"::1:80\" is not an address (host:port, :port, [::1]:port or a unix socket path)"
    );
}

#[test]
fn address_without_colon_is_a_unix_socket_and_socket_speaks_uwsgi() {
    let c = config(&["--socket", "/run/app.sock", "--http", ":80"]).expect("valid");
    assert_eq!(c.listeners[0].protocol, Protocol::Uwsgi);
    assert_eq!(
        c.listeners[0].addr,
        ListenAddr::Unix("/run/app.sock".into())
    );
    assert_eq!(c.listeners[1].protocol, Protocol::Http);
}

#[test]
fn mounts_take_files_or_modules_and_drop_trailing_slashes() {
    let c = config(&[
        "--mount",
        "/myapp/=server.py",
        "--mount",
        "/api=pkg.api:app",
    ])
    .expect("valid");
    assert_eq!(
        c.mounts,
        vec![
            Mount {
                mountpoint: "/myapp".into(),
                app: AppSource::File("server.py".into())
            },
            Mount {
                mountpoint: "/api".into(),
                app: AppSource::Module("pkg.api:app".into())
            },
        ]
    );
    assert_eq!(
        crate::test_err::text(config(&["--mount", "noslash=app.py"])),
        "command line: option \"--mount\": \"noslash=app.py\" is not /MOUNTPOINT=APP (a file or module[:callable])"
    );
    assert_eq!(
        crate::test_err::text(config(&["--mount", "/x"])),
        "command line: option \"--mount\": \"/x\" is not /MOUNTPOINT=APP (a file or module[:callable])"
    );
}

#[test]
fn chmod_socket_bare_means_666_and_takes_three_octal_digits() {
    assert_eq!(
        config(&["--chmod-socket"]).expect("ok").chmod_socket,
        Some(0o666)
    );
    assert_eq!(
        config(&["--chmod-socket", "660"]).expect("ok").chmod_socket,
        Some(0o660)
    );
    assert_eq!(
        config(&["--chmod-socket=664"]).expect("ok").chmod_socket,
        Some(0o664)
    );
    assert_eq!(
        crate::test_err::text(config(&["--chmod-socket=999"])),
        "command line: option \"--chmod-socket\": \"999\" is not a mode of three octal digits (e.g. 660)"
    );
    assert_eq!(
        crate::test_err::text(config(&["--chmod-socket=6666"])),
        "command line: option \"--chmod-socket\": \"6666\" is not a mode of three octal digits (e.g. 660)"
    );
}

#[test]
fn threads_must_be_a_positive_number() {
    assert_eq!(config(&["--threads", "4"]).expect("ok").threads, 4);
    assert_eq!(
        crate::test_err::text(config(&["--threads", "many"])),
        "command line: option \"--threads\": \"many\" is not a whole number from 1 to 1024"
    );
    assert_eq!(
        crate::test_err::text(config(&["--threads", "0"])),
        "command line: option \"--threads\": \"0\" is not a whole number from 1 to 1024"
    );
}

#[test]
fn env_needs_key_equals_value_and_keeps_later_equals_signs() {
    let c = config(&["--env", "A=1=2", "--env", "B="]).expect("ok");
    assert_eq!(
        c.env,
        vec![("A".into(), "1=2".into()), ("B".into(), "".into())]
    );
    assert_eq!(
        crate::test_err::text(config(&["--env", "novalue"])),
        "command line: option \"--env\": \"novalue\" is not KEY=VALUE"
    );
}

#[test]
fn validate_requires_a_listener_and_an_app() {
    assert_eq!(
        crate::test_err::text(config(&["--wsgi-file", "a.py"]).expect("ok").validate()),
        "no listener: give at least one --http ADDR, --http-socket ADDR or --socket ADDR (uwsgi protocol, for nginx's uwsgi_pass)"
    );
    assert_eq!(
        crate::test_err::text(config(&["--http", ":1"]).expect("ok").validate()),
        "nothing to serve: give --wsgi-file FILE, --module MODULE, --mount /PREFIX=APP or --static-map /URL=DIR"
    );
    assert!(
        config(&["--http", ":1", "-w", "m"])
            .expect("ok")
            .validate()
            .is_ok()
    );
}
