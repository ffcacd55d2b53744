"""TLS on Portico's listeners (issue 13), against certificates made here with
the `openssl` CLI (tls_pki.py) and real clients: `curl` and Python's `ssl`.

- option style: `--https ADDR,CHAIN,KEY[,CIPHERS,CA]` serves the app with
  `wsgi.url_scheme` https and `HTTPS=on` (the `--http` listener beside it
  stays http), a chain with an intermediate that clients need, client
  certificates with `!CA`, nginx's 400 for plain HTTP on the TLS port;
- nginx style, answer by answer against the real nginx 1.22 on the same
  config (DiffPair): `$scheme`/`$https`/`$ssl_*`, RSA and ECDSA certificates
  in one server picked by the client's suites, SNI with two names each with
  its own certificate, no SNI (the default server), mTLS accepted and
  refused (nginx's 400 pages), `optional`, plain HTTP on the TLS port,
  session resumption (TLS 1.2 and 1.3, `session_reused` and
  `$ssl_session_reused`);
- an Ed25519 certificate; `-t` and start-up refuse a bad key naming the
  file; a reload re-reads a swapped certificate.
"""

import shutil
import signal
import socket
import ssl
import subprocess
import time
import warnings

import pytest

import nginx_diff
from conftest import APPS, BIN, binary_env, read_until_close
from nginxctl import public_dir
from ports import free_port
from tls_client import context, tls_get
from tls_pki import Pki

pytestmark = nginx_diff.live_mark()

PLAIN_400_HEAD = "<html>\r\n<head><title>400 The plain HTTP request was sent to HTTPS port</title></head>"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    p = Pki(tmp_path_factory.mktemp("pki"))
    p.rsa = p.leaf("localhost", kind="rsa")
    p.ec = p.leaf("localhost", kind="ecdsa")
    p.b = p.leaf("b.test")
    p.mtls = p.leaf("mtls.test")
    p.alice = p.client("alice", "Example")
    p.rogue = p.rogue_client()
    return p


def der_of(pem_path):
    return ssl.PEM_cert_to_DER_cert(pem_path.read_text().split("-----END CERTIFICATE-----")[0]
                                    + "-----END CERTIFICATE-----\n")


def curl(*args):
    path = shutil.which("curl")
    assert path, "curl is not installed; scripts/test.sh installs it"
    return subprocess.run([path, "-sS", "--max-time", "10", *map(str, args)],
                          capture_output=True, text=True)


# --- option style ---------------------------------------------------------------------


def test_https_option_serves_the_app_with_https_environ(portico_server, pki):
    srv = portico_server(
        "--https", f"127.0.0.1:0,{pki.rsa.chain},{pki.rsa.key}",
        "--wsgi-file", APPS / "tls_environ.py", listeners=2,
    )
    plain_port, tls_port = srv.addresses[0][1], srv.addresses[1][1]
    srv.wait_for_line(rf"^https socket 1 bound to TCP address 127\.0\.0\.1:{tls_port} fd")
    # curl trusts only the root: the intermediate must come from the chain file
    got = curl("--cacert", pki.root, "--resolve", f"localhost:{tls_port}:127.0.0.1",
               f"https://localhost:{tls_port}/x")
    assert got.returncode == 0, got.stderr
    assert "wsgi.url_scheme=https\nHTTPS=on\n" in got.stdout, got.stdout
    assert "SSL_PROTOCOL=TLSv1.3" in got.stdout
    plain = curl(f"http://127.0.0.1:{plain_port}/x")
    assert "wsgi.url_scheme=http\nHTTPS=\n" in plain.stdout, plain.stdout
    # TLS 1.2 is offered too; TLS 1.1 is not
    got = curl("--cacert", pki.root, "--resolve", f"localhost:{tls_port}:127.0.0.1",
               "--tlsv1.2", "--tls-max", "1.2", f"https://localhost:{tls_port}/")
    assert "SSL_PROTOCOL=TLSv1.2" in got.stdout, got.stderr
    with warnings.catch_warnings(), pytest.raises(ssl.SSLError):
        warnings.simplefilter("ignore", DeprecationWarning)
        tls_get(tls_port, cafile=pki.root, version=ssl.TLSVersion.TLSv1_1)


def test_a_request_body_with_100_continue_over_tls(portico_server, pki, tmp_path):
    """curl sends `Expect: 100-continue` for a large body and waits for the
    100 before sending it: the interim answer must leave the TLS stream."""
    srv = portico_server(
        "--https", f"127.0.0.1:0,{pki.rsa.chain},{pki.rsa.key}",
        "--wsgi-file", APPS / "tls_environ.py", listeners=2,
    )
    port = srv.addresses[1][1]
    payload = tmp_path / "body.bin"
    payload.write_bytes(b"x" * (1 << 20))
    got = curl("--cacert", pki.root, "--resolve", f"localhost:{port}:127.0.0.1",
               "--expect100-timeout", "30", "-H", "Expect: 100-continue",
               "--data-binary", f"@{payload}", f"https://localhost:{port}/upload")
    assert got.returncode == 0, got.stderr
    assert "BODY_LEN=1048576\n" in got.stdout, got.stdout


def test_plain_http_on_the_tls_port_gets_nginx_400_and_a_close(portico_server, pki):
    srv = portico_server(
        "--https", f"127.0.0.1:0,{pki.rsa.chain},{pki.rsa.key}",
        "--wsgi-file", APPS / "tls_environ.py", listeners=2,
    )
    tls_port = srv.addresses[1][1]
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", tls_port), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        answer = read_until_close(sock)
    assert time.monotonic() - started < 5, "the server hung instead of answering"
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n"), answer
    assert b"Connection: close" in head
    assert body.decode().startswith(PLAIN_400_HEAD), body


def test_https_with_mandatory_client_ca_verifies_in_the_handshake(portico_server, pki):
    srv = portico_server(
        "--https-socket",
        f"127.0.0.1:0,{pki.rsa.chain},{pki.rsa.key},HIGH,!{pki.client_ca}",
        "--wsgi-file", APPS / "tls_environ.py", listeners=2,
    )
    port = srv.addresses[1][1]
    r = tls_get(port, cafile=pki.root, cert=pki.alice)
    assert r.status == 200
    text = r.body.decode()
    assert "HTTPS_DN=/O=Example/CN=alice\n" in text, text
    assert "SSL_CLIENT_S_DN=CN=alice,O=Example\nSSL_CLIENT_VERIFY=SUCCESS\n" in text, text
    # uWSGI's `!CA`: without a certificate, or with one the CA did not sign, the
    # handshake fails (OpenSSL's SSL_VERIFY_FAIL_IF_NO_PEER_CERT in uWSGI)
    for cert in (None, pki.rogue):
        with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
            r = tls_get(port, cafile=pki.root, cert=cert)
            # TLS 1.3: the client learns of the refusal on its first read
            assert r.status == 200, "a refused client was served"


def test_an_ed25519_certificate_serves(portico_server, pki):
    leaf = pki.leaf("localhost", kind="ed25519")
    srv = portico_server(
        "--https", f"127.0.0.1:0,{leaf.chain},{leaf.key}",
        "--wsgi-file", APPS / "tls_environ.py", listeners=2,
    )
    r = tls_get(srv.addresses[1][1], cafile=pki.root)
    assert r.status == 200 and r.peer_der == der_of(leaf.cert)


# --- nginx style, against the real nginx ----------------------------------------------

SITE = """
# nginx 1.22's default is TLSv1 TLSv1.1 TLSv1.2; Portico's (and nginx
# 1.23.4+'s, less the old two) is TLSv1.2 TLSv1.3: said once for both
ssl_protocols TLSv1.2 TLSv1.3;
server {
    listen 127.0.0.1:{port} ssl;
    server_name localhost;
    ssl_certificate {rsa_chain};
    ssl_certificate_key {rsa_key};
    ssl_certificate {ec_chain};
    ssl_certificate_key {ec_key};
    ssl_session_cache shared:SSL:1m;
    location / {
        return 200 "scheme=$scheme https=$https proto=$ssl_protocol cipher=$ssl_cipher sni=$ssl_server_name reused=$ssl_session_reused verify=$ssl_client_verify\\n";
    }
}
server {
    listen 127.0.0.1:{port} ssl;
    server_name b.test;
    ssl_certificate {b_chain};
    ssl_certificate_key {b_key};
    location / { return 200 "server b sni=$ssl_server_name host=$host\\n"; }
}
server {
    listen 127.0.0.1:{port2} ssl;
    server_name mtls.test;
    ssl_certificate {mtls_chain};
    ssl_certificate_key {mtls_key};
    ssl_client_certificate {client_ca};
    ssl_verify_client on;
    location / { return 200 "dn=$ssl_client_s_dn idn=$ssl_client_i_dn legacy=$ssl_client_s_dn_legacy verify=$ssl_client_verify\\n"; }
}
server {
    listen 127.0.0.1:{port2} ssl;
    server_name other.test;
    ssl_certificate {mtls_chain};
    ssl_certificate_key {mtls_key};
    ssl_client_certificate {client_ca};
    ssl_verify_client on;
    location / { return 200 "other\\n"; }
}
server {
    listen 127.0.0.1:{port3} ssl;
    server_name mtls.test;
    ssl_certificate {mtls_chain};
    ssl_certificate_key {mtls_key};
    ssl_client_certificate {client_ca};
    ssl_verify_client optional;
    location / { return 200 "optional verify=$ssl_client_verify dn=$ssl_client_s_dn\\n"; }
}
server {
    listen 127.0.0.1:{port4} ssl;
    server_name localhost;
    ssl_certificate {rsa_chain};
    ssl_certificate_key {rsa_key};
    ssl_session_tickets off;
    ssl_session_cache builtin:1000;
    location / { return 200 "cache only reused=$ssl_session_reused\\n"; }
}
server {
    listen 127.0.0.1:{port5} ssl;
    server_name localhost;
    ssl_certificate {rsa_chain};
    ssl_certificate_key {rsa_key};
    ssl_session_tickets off;
    ssl_session_cache off;
    location / { return 200 "no resumption reused=$ssl_session_reused\\n"; }
}
"""


@pytest.fixture(scope="module")
def pair(pki):
    subs = {
        "rsa_chain": pki.rsa.chain, "rsa_key": pki.rsa.key,
        "ec_chain": pki.ec.chain, "ec_key": pki.ec.key,
        "b_chain": pki.b.chain, "b_key": pki.b.key,
        "mtls_chain": pki.mtls.chain, "mtls_key": pki.mtls.key,
        "client_ca": pki.client_ca,
    }
    with nginx_diff.DiffPair(SITE, subs={k: str(v) for k, v in subs.items()}) as p:
        yield p


def both(pair, port="port", **kw):
    """The same TLS request to nginx and to Portico: (nginx's, Portico's)."""
    return tuple(tls_get(pair.sides[side].ports[port], **kw) for side in ("nginx", "portico"))


def same_page(a, b):
    """Bodies equal once the server token of an error page is set aside."""
    token = lambda body: body.replace(b"nginx/1.22.1", b"SERVER").replace(b"portico/0.1.0", b"SERVER")
    return a.status == b.status and token(a.body) == token(b.body)


def test_variables_match_nginx_over_tls13(pair, pki):
    a, b = both(pair, cafile=pki.root)
    assert a.status == b.status == 200
    assert a.body == b.body, (a.body, b.body)
    assert b.body.startswith(b"scheme=https https=on proto=TLSv1.3 cipher=TLS_"), b.body
    assert b"sni=localhost reused=. verify=NONE" in b.body


@pytest.mark.parametrize("cipher,leaf", [
    ("ECDHE-ECDSA-AES128-GCM-SHA256", "ec"),
    ("ECDHE-RSA-AES256-GCM-SHA384", "rsa"),
    ("ECDHE-RSA-CHACHA20-POLY1305", "rsa"),
])
def test_rsa_and_ecdsa_pairs_are_picked_by_the_suite_as_nginx_does(pair, pki, cipher, leaf):
    a, b = both(pair, cafile=pki.root, version=ssl.TLSVersion.TLSv1_2, ciphers=cipher)
    assert a.body == b.body, (a.body, b.body)
    assert f"proto=TLSv1.2 cipher={cipher} ".encode() in b.body, b.body
    want = der_of(getattr(pki, leaf).cert)
    assert a.peer_der == b.peer_der == want


def test_sni_picks_each_names_certificate_and_server(pair, pki):
    a, b = both(pair, cafile=pki.root, sni="b.test")
    assert a.body == b.body == b"server b sni=b.test host=b.test\n", (a.body, b.body)
    assert a.peer_der == b.peer_der == der_of(pki.b.cert)
    # TLS 1.3: the client's first signature scheme (ECDSA for OpenSSL's
    # clients) picks between the server's two pairs
    a, b = both(pair, cafile=pki.root, sni="localhost")
    assert a.peer_der == b.peer_der == der_of(pki.ec.cert)


def test_the_host_not_the_sni_name_chooses_the_server(pair, pki):
    """As in nginx, SNI picks the certificate and the Host the server: HTTP/1.0
    without Host gets the default server, another Host that server."""
    a, b = both(pair, cafile=pki.root, sni="b.test", host="")
    assert a.body == b.body, (a.body, b.body)
    assert b.body.startswith(b"scheme=https ") and b" sni=b.test " in b.body
    a, b = both(pair, cafile=pki.root, sni="localhost", host="b.test")
    assert a.body == b.body == b"server b sni=localhost host=b.test\n", (a.body, b.body)


def test_a_host_other_than_the_sni_name_on_a_verifying_server_is_421(pair, pki):
    """nginx's 421 Misdirected Request: a client certificate checked for one
    name does not let the client reach a server chosen by another Host."""
    a, b = both(pair, "port2", cafile=pki.root, sni="mtls.test", cert=pki.alice,
                host="other.test")
    assert a.status == b.status == 421, (a.head, b.head)
    assert same_page(a, b), (a.body, b.body)
    # a name no server has sets nothing (nginx keeps no SNI name): the Host rules
    a, b = both(pair, "port2", cafile=pki.root, sni="unknown.test", cert=pki.alice,
                host="other.test", verify=False)
    assert a.body == b.body == b"other\n", (a.body, b.body)
    # on an address with one server nginx has no name table: no 421 either
    a, b = both(pair, "port3", cafile=pki.root, sni="mtls.test", host="x.test")
    assert a.status == b.status == 200, (a.head, b.head)


def test_no_sni_gets_the_default_server(pair, pki):
    a, b = both(pair, sni=None, host="localhost")
    assert a.body == b.body, (a.body, b.body)
    assert b"sni= " in b.body
    assert a.peer_der == b.peer_der == der_of(pki.ec.cert)


def test_mtls_accepts_a_signed_client_and_names_it_as_nginx(pair, pki):
    a, b = both(pair, "port2", cafile=pki.root, sni="mtls.test", cert=pki.alice)
    assert a.body == b.body, (a.body, b.body)
    assert b.body == (b"dn=CN=alice,O=Example idn=CN=Portico Client CA "
                      b"legacy=/O=Example/CN=alice verify=SUCCESS\n")


@pytest.mark.parametrize("cert,page", [
    (None, b"No required SSL certificate was sent"),
    ("rogue", b"The SSL certificate error"),
])
def test_mtls_refuses_with_nginx_400_pages(pair, pki, cert, page):
    client = getattr(pki, cert) if cert else None
    a, b = both(pair, "port2", cafile=pki.root, sni="mtls.test", cert=client)
    assert a.status == b.status == 400
    assert same_page(a, b), (a.body, b.body)
    assert page in b.body


def test_optional_client_certificates_as_nginx(pair, pki):
    a, b = both(pair, "port3", cafile=pki.root, sni="mtls.test")
    assert a.body == b.body == b"optional verify=NONE dn=\n"
    a, b = both(pair, "port3", cafile=pki.root, sni="mtls.test", cert=pki.alice)
    assert a.body == b.body == b"optional verify=SUCCESS dn=CN=alice,O=Example\n"
    a, b = both(pair, "port3", cafile=pki.root, sni="mtls.test", cert=pki.rogue)
    assert a.status == b.status == 400 and same_page(a, b)


def test_plain_http_on_an_ssl_listen_is_nginx_400(pair):
    answers = []
    for side in ("nginx", "portico"):
        with socket.create_connection(("127.0.0.1", pair.sides[side].ports["port"]), timeout=10) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            answers.append(read_until_close(s).partition(b"\r\n\r\n")[2])
    norm = [x.replace(b"nginx/1.22.1", b"SERVER").replace(b"portico/0.1.0", b"SERVER") for x in answers]
    assert norm[0] == norm[1], answers
    assert norm[1].startswith(PLAIN_400_HEAD.encode())


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_sessions_resume_as_with_nginx(pair, pki, version):
    for side in ("nginx", "portico"):
        port = pair.sides[side].ports["port"]
        ctx = context(cafile=pki.root, version=version)
        first = tls_get(port, ctx=ctx)
        assert not first.reused and first.session is not None, side
        second = tls_get(port, ctx=ctx, session=first.session)
        assert second.reused, f"{side}: {version} session not resumed"
        assert b" reused=r " in second.body, (side, second.body)


# --- loading, -t and reload -----------------------------------------------------------


def test_a_bad_key_fails_t_and_start_up_naming_the_file(pki, tmp_path):
    bad_key = tmp_path / "broken.key"
    bad_key.write_text("-----BEGIN PRIVATE KEY-----\nnot base64 at all\n-----END PRIVATE KEY-----\n")
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        "events {}\nhttp {\n server {\n  listen 127.0.0.1:1 ssl;\n"
        f"  ssl_certificate {pki.rsa.chain};\n  ssl_certificate_key {bad_key};\n }}\n}}\n"
    )
    t = subprocess.run([str(BIN), "-t", "-c", str(conf)], capture_output=True, text=True,
                       env=binary_env(), timeout=30)
    assert t.returncode == 1, t.stderr
    assert f'[emerg] cannot load certificate key "{bad_key}"' in t.stderr, t.stderr
    assert "test failed" in t.stderr
    run = subprocess.run([str(BIN), "-c", str(conf)], capture_output=True, text=True,
                         env=binary_env(), timeout=30)
    assert run.returncode != 0 and str(bad_key) in run.stderr, run.stderr
    missing = tmp_path / "missing.pem"
    conf.write_text(conf.read_text().replace(str(pki.rsa.chain), str(missing)))
    t = subprocess.run([str(BIN), "-t", "-c", str(conf)], capture_output=True, text=True,
                       env=binary_env(), timeout=30)
    assert t.returncode == 1 and f'cannot load certificate "{missing}"' in t.stderr, t.stderr
    # a key that is not the certificate's
    conf.write_text(
        "events {}\nhttp {\n server {\n  listen 127.0.0.1:1 ssl;\n"
        f"  ssl_certificate {pki.rsa.chain};\n  ssl_certificate_key {pki.b.key};\n }}\n}}\n"
    )
    t = subprocess.run([str(BIN), "-t", "-c", str(conf)], capture_output=True, text=True,
                       env=binary_env(), timeout=30)
    assert t.returncode == 1 and "do not match" in t.stderr, t.stderr


def test_a_reload_serves_a_swapped_certificate(pki, tmp_path):
    cert, key = tmp_path / "site.pem", tmp_path / "site.key"
    shutil.copy(pki.rsa.chain, cert)
    shutil.copy(pki.rsa.key, key)
    body = (
        "server {\n listen 127.0.0.1:{port} ssl;\n server_name localhost;\n"
        f" ssl_certificate {cert};\n ssl_certificate_key {key};\n"
        " location / { return 200 \"ok\\n\"; }\n}\n"
    )
    side = nginx_diff.PorticoSide("tls-reload", body, tmp_path, {})
    try:
        side.start()
        port = side.ports["port"]
        assert tls_get(port, cafile=pki.root).peer_der == der_of(pki.rsa.cert)
        renewed = pki.leaf("localhost", tag="-renewed")
        shutil.copy(renewed.chain, cert)
        shutil.copy(renewed.key, key)
        side.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 15
        served = None
        while time.monotonic() < deadline:
            try:
                served = tls_get(port, cafile=pki.root).peer_der
            except OSError:
                served = None
            if served == der_of(renewed.cert):
                break
            time.sleep(0.1)
        assert served == der_of(renewed.cert), side.log()
    finally:
        side.close()


def test_a_silent_tls_client_does_not_hold_a_graceful_stop(portico_server, pki):
    """A connection that never sends its ClientHello gets the same short grace
    as a plain connection that never sends its request: SIGTERM (graceful)
    ends the server in seconds, not after the 60 s handshake timeout."""
    srv = portico_server(
        "--https", f"127.0.0.1:0,{pki.rsa.chain},{pki.rsa.key}",
        "--wsgi-file", APPS / "tls_environ.py", listeners=2,
    )
    port = srv.addresses[1][1]
    with socket.create_connection(("127.0.0.1", port), timeout=10):
        time.sleep(0.3)
        started = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        srv.proc.wait(20)
        took = time.monotonic() - started
    assert took < 10, f"graceful stop took {took:.1f} s with a silent TLS client"
    assert srv.proc.returncode == 0, srv.log()


def test_the_seed_stack_over_tls_gives_the_app_https(pki, tmp_path):
    """`listen ... ssl` in front of `uwsgi_pass` to the app's own socket (the
    seeds' deployment in one process): the vars from `uwsgi_params` (`HTTPS
    $https if_not_empty`) make the app see `wsgi.url_scheme` https and HTTPS=on."""
    own = f"127.0.0.1:{free_port()}"
    body = (
        "server {\n listen 127.0.0.1:{port} ssl;\n server_name localhost;\n"
        f" ssl_certificate {pki.rsa.chain};\n ssl_certificate_key {pki.rsa.key};\n"
        f" location / {{ include uwsgi_params; uwsgi_pass {own}; }}\n}}\n"
    )
    side = nginx_diff.PorticoSide("tls-stack", body, tmp_path, {},
                                  ("--socket", own, "--wsgi-file", APPS / "tls_environ.py"))
    try:
        side.start()
        r = tls_get(side.ports["port"], cafile=pki.root)
        assert r.status == 200, side.log()
        assert r.body.startswith(b"wsgi.url_scheme=https\nHTTPS=on\n"), r.body
    finally:
        side.close()


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_a_session_cache_without_tickets_resumes_and_neither_does_not(pair, pki, version):
    for side in ("nginx", "portico"):
        for port, resumes in (("port4", True), ("port5", False)):
            ctx = context(cafile=pki.root, version=version)
            first = tls_get(pair.sides[side].ports[port], ctx=ctx)
            second = tls_get(pair.sides[side].ports[port], ctx=ctx, session=first.session)
            assert second.reused == resumes, (side, port, version)
            assert second.body.endswith(b" reused=r\n" if resumes else b" reused=.\n")


def test_static_files_over_tls_arrive_whole(pki, tmp_path):
    """Files past the in-memory cache go out through the TLS writer's
    SendFile (read and encrypted in pieces, not sendfile(2)): every byte
    arrives, for a whole file and for a range."""
    data = bytes(range(256)) * 1200 + b"tail"  # 300 KiB and a bit
    with public_dir("portico-tls-static-") as root:  # 0755: the workers run as nobody
        (root / "big.bin").write_bytes(data)
        (root / "big.bin").chmod(0o644)
        body = (
            "server {\n listen 127.0.0.1:{port} ssl;\n server_name localhost;\n"
            f" ssl_certificate {pki.rsa.chain};\n ssl_certificate_key {pki.rsa.key};\n"
            f" root {root};\n}}\n"
        )
        side = nginx_diff.PorticoSide("tls-static", body, tmp_path, {})
        try:
            side.start()
            port = side.ports["port"]
            r = tls_get(port, "/big.bin", cafile=pki.root)
            assert r.status == 200 and r.body == data, (r.status, len(r.body))
            got = curl("--cacert", pki.root, "--resolve", f"localhost:{port}:127.0.0.1",
                       "-r", "1000-70999", "-o", tmp_path / "part",
                       f"https://localhost:{port}/big.bin")
            assert got.returncode == 0, got.stderr
            assert (tmp_path / "part").read_bytes() == data[1000:71000]
        finally:
            side.close()


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_tickets_resume_on_every_worker(portico_server, pki, version):
    """The ticket keys are made by the master before it forks, so a session
    resumes whichever worker accepts the next connection (the accept is
    spread over the workers, FIFO)."""
    srv = portico_server(
        "--https", f"127.0.0.1:0,{pki.rsa.chain},{pki.rsa.key}",
        "--wsgi-file", APPS / "tls_environ.py", "--processes", "2", "--master",
        listeners=2,
    )
    port = srv.addresses[1][1]
    ctx = context(cafile=pki.root, version=version)
    first = tls_get(port, ctx=ctx)
    resumed = [tls_get(port, ctx=ctx, session=first.session).reused for _ in range(8)]
    assert all(resumed), resumed
