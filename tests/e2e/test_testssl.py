"""testssl.sh (Debian's `testssl` 3.0) against a Portico TLS listener
(`--https`, an RSA chain made by tls_pki.py): protocols (`-p`), cipher
categories (`-s`) and the vulnerability checks (`-U`), with `--fast` so the
run stays under a minute or two. Asserted from its JSON findings:

- nothing below TLS 1.2 is offered (SSLv2, SSLv3, TLS 1, TLS 1.1);
- no NULL, anonymous, export, LOW (DES/RC2/RC4), 3DES/IDEA or "average"
  (CBC) suites;
- no finding says VULNERABLE, and none is rated LOW, MEDIUM, HIGH or
  CRITICAL; the only WARN allowed is testssl's own "RC4 ciphers not
  supported by local OpenSSL" (it cannot test RC4 with Debian's OpenSSL 3).

A missing testssl FAILS the test: scripts/test.sh installs it.
"""

import json
import shutil
import subprocess

import pytest

from conftest import APPS
from tls_pki import Pki

TESTSSL_TIMEOUT = 240


def find_testssl():
    path = shutil.which("testssl") or shutil.which("testssl.sh")
    if path is None:
        pytest.fail("testssl is not installed; scripts/test.sh installs it "
                    "(apt-get install -y testssl.sh)", pytrace=False)
    return path


def test_testssl_finds_no_weak_protocol_suite_or_vulnerability(portico_server, tmp_path):
    pki = Pki(tmp_path / "pki")
    leaf = pki.leaf("localhost")
    srv = portico_server(
        "--https", f"127.0.0.1:0,{leaf.chain},{leaf.key}",
        "--wsgi-file", APPS / "tls_environ.py", listeners=2,
    )
    port = srv.addresses[1][1]
    report = tmp_path / "testssl.json"
    run = subprocess.run(
        [find_testssl(), "--quiet", "--color", "0", "--warnings", "off", "-p", "-s", "-U", "--fast",
         "--jsonfile", str(report), f"127.0.0.1:{port}"],
        capture_output=True, text=True, timeout=TESTSSL_TIMEOUT,
    )
    assert report.exists(), run.stdout + run.stderr
    findings = {f["id"]: f for f in json.loads(report.read_text())}
    summary = "\n".join(f"{f['id']}: {f['severity']}: {f['finding']}" for f in findings.values())
    for old in ("SSLv2", "SSLv3", "TLS1", "TLS1_1"):
        assert findings[old]["finding"] == "not offered", summary
    assert findings["TLS1_2"]["finding"] == "offered", summary
    assert findings["TLS1_3"]["finding"].startswith("offered"), summary
    for weak in ("cipherlist_NULL", "cipherlist_aNULL", "cipherlist_EXPORT", "cipherlist_LOW",
                 "cipherlist_3DES_IDEA", "cipherlist_AVERAGE"):
        assert findings[weak]["finding"] == "not offered", summary
    for vuln in ("heartbleed", "CCS", "ticketbleed", "ROBOT", "secure_renego", "CRIME_TLS",
                 "POODLE_SSL", "fallback_SCSV", "SWEET32", "FREAK", "DROWN", "LOGJAM", "BEAST",
                 "LUCKY13"):
        assert vuln in findings, f"testssl did not run {vuln}:\n{summary}"
    for f in findings.values():
        assert "VULNERABLE" not in f["finding"].upper().replace("NOT VULNERABLE", ""), summary
        assert f["severity"] not in ("LOW", "MEDIUM", "HIGH", "CRITICAL"), summary
        if f["severity"] == "WARN":
            assert f["id"] == "RC4" and "local OpenSSL" in f["finding"], summary
