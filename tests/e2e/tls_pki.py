"""Certificates for the TLS tests, made with the `openssl` CLI in a directory:
a root CA, an intermediate CA it signs, and leaves signed by the intermediate
(RSA, ECDSA P-256, Ed25519; any subject and DNS names), a client CA with a
client certificate, and a self-signed "rogue" client certificate.

    pki = Pki(tmp_dir)
    leaf = pki.leaf("localhost", kind="rsa")      # Leaf(cert, key, chain)
    pki.root                                      # the CA file clients trust

`chain` is the leaf followed by the intermediate, as `ssl_certificate` and
`--https` take it; clients trust only the root, so a chain missing from the
file fails their verification.
"""

import shutil
import subprocess
from collections import namedtuple
from pathlib import Path

import pytest

Leaf = namedtuple("Leaf", "cert key chain")

KEY_ARGS = {
    "rsa": ["-newkey", "rsa:2048"],
    "ecdsa": ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
    "ed25519": ["-newkey", "ed25519"],
}

CA_EXT = "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"


def openssl():
    path = shutil.which("openssl")
    if path is None:
        pytest.fail("openssl is not installed; scripts/test.sh installs it (apt-get install -y openssl)",
                    pytrace=False)
    return path


def run(*args):
    subprocess.run([openssl(), *map(str, args)], check=True, capture_output=True)


class Pki:
    def __init__(self, directory):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.serial = 1
        self.root = self._self_signed("root", "/CN=Portico Test Root", CA_EXT)
        self.inter = self._signed("inter", "/CN=Portico Test Intermediate", "root", CA_EXT, "rsa")
        self.client_ca = self._self_signed("client-ca", "/CN=Portico Client CA", CA_EXT)

    def _path(self, name, ext):
        return self.dir / f"{name}.{ext}"

    def _self_signed(self, name, subject, ext, kind="rsa"):
        extensions = []
        for line in ext.strip().splitlines():
            extensions += ["-addext", line]
        run("req", "-x509", *KEY_ARGS[kind], "-nodes", "-keyout", self._path(name, "key"),
            "-out", self._path(name, "pem"), "-days", "3650", "-subj", subject, *extensions)
        return self._path(name, "pem")

    def _signed(self, name, subject, issuer, ext, kind):
        key, csr, pem = self._path(name, "key"), self._path(name, "csr"), self._path(name, "pem")
        ext_file = self._path(name, "ext")
        ext_file.write_text(ext)
        run("req", *KEY_ARGS[kind], "-nodes", "-keyout", key, "-out", csr, "-subj", subject)
        self.serial += 1
        run("x509", "-req", "-in", csr, "-CA", self._path(issuer, "pem"),
            "-CAkey", self._path(issuer, "key"), "-set_serial", self.serial,
            "-out", pem, "-days", "365", "-extfile", ext_file)
        return pem

    def leaf(self, name, kind="rsa", dns=None, tag=""):
        """A server certificate for `name` (and `dns` names) signed by the intermediate."""
        label = f"leaf-{name}-{kind}{tag}"
        names = ",".join(f"DNS:{n}" for n in [name, *(dns or [])])
        ext = (f"basicConstraints=CA:FALSE\nsubjectAltName={names},IP:127.0.0.1\n"
               "extendedKeyUsage=serverAuth\n")
        cert = self._signed(label, f"/O=Portico Tests/CN={name}", "inter", ext, kind)
        chain = self._path(label, "chain.pem")
        chain.write_bytes(cert.read_bytes() + self.inter.read_bytes())
        return Leaf(cert, self._path(label, "key"), chain)

    def client(self, cn="alice", org="Example"):
        """A client certificate `/O=org/CN=cn` signed by the client CA: (cert, key)."""
        label = f"client-{cn}"
        ext = "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n"
        cert = self._signed(label, f"/O={org}/CN={cn}", "client-ca", ext, "rsa")
        return cert, self._path(label, "key")

    def rogue_client(self):
        """A client certificate no configured CA signed: (cert, key)."""
        label = "client-rogue"
        key, pem = self._path(label, "key"), self._path(label, "pem")
        run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", pem,
            "-days", "365", "-subj", "/O=Nobody/CN=mallory", "-addext", "basicConstraints=CA:FALSE",
            "-addext", "extendedKeyUsage=clientAuth")
        return pem, key
