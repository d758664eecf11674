"""Test certificates, made with the openssl CLI into a fresh folder (EC P-256: quick):

  ca_cert, ca_key          a test CA
  server_cert, server_key  signed by that CA, for DNS:localhost and IP:127.0.0.1 (SAN)
  other_ca_cert            an unrelated CA that signed nothing here
  self_cert, self_key      a self-signed server certificate for SELF_NAME only

make_server_cert(certs, name) adds one more server certificate from the same CA (another key:
a certificate swapped on a running server). Used as a module (make_certs()) or run as a script:
certs.py [DIR] prints the paths."""

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from types import SimpleNamespace

SELF_NAME = "other.invalid"  # RFC 2606: can never be a real host
DAYS = "2"
EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
CA_EXT = ["-addext", "basicConstraints=critical,CA:TRUE",
          "-addext", "keyUsage=critical,keyCertSign,cRLSign"]


def _openssl(*args, cwd):
    r = subprocess.run(["openssl", *args], cwd=cwd, stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed:\n"
                           f"{r.stdout.decode('utf-8', 'replace')}")


def _ca(d, name, cn):
    _openssl("req", "-x509", "-new", *EC, "-keyout", f"{name}.key", "-out", f"{name}.pem",
             "-days", DAYS, "-subj", f"/CN={cn}", *CA_EXT, cwd=d)


def _server(d, name):
    """name.pem and name.key in d: a server certificate for localhost and 127.0.0.1 from ca."""
    _openssl("req", "-new", *EC, "-keyout", f"{name}.key", "-out", f"{name}.csr",
             "-subj", "/CN=localhost", cwd=d)
    with open(os.path.join(d, "server.ext"), "w") as f:
        f.write("basicConstraints = critical, CA:FALSE\n"
                "keyUsage = critical, digitalSignature\n"
                "extendedKeyUsage = serverAuth\n"
                "subjectAltName = DNS:localhost, IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-set_serial", "0x" + os.urandom(8).hex(), "-days", DAYS,
             "-extfile", "server.ext", "-out", f"{name}.pem", cwd=d)


def make_server_cert(certs, name):
    """Another server certificate (and key) from certs' CA, for the same names; returns
    (cert path, key path)."""
    _server(certs.dir, name)
    return os.path.join(certs.dir, f"{name}.pem"), os.path.join(certs.dir, f"{name}.key")


def make_certs(folder=None):
    """Makes every certificate; returns a namespace of absolute paths (plus dir, self_name).
    Without a folder, a temporary one is made and removed when the process exits."""
    if folder is None:
        folder = tempfile.mkdtemp(prefix="sf-certs-")
        atexit.register(shutil.rmtree, folder, True)
    os.makedirs(folder, exist_ok=True)
    d = os.path.abspath(folder)

    _ca(d, "ca", "strangler test CA")
    _ca(d, "other-ca", "strangler unrelated CA")

    _server(d, "server")

    _openssl("req", "-x509", "-new", *EC, "-keyout", "self.key", "-out", "self.pem",
             "-days", DAYS, "-subj", f"/CN={SELF_NAME}",
             "-addext", f"subjectAltName=DNS:{SELF_NAME}", cwd=d)

    p = lambda name: os.path.join(d, name)  # noqa: E731
    return SimpleNamespace(dir=d, ca_cert=p("ca.pem"), ca_key=p("ca.key"),
                           server_cert=p("server.pem"), server_key=p("server.key"),
                           other_ca_cert=p("other-ca.pem"), self_cert=p("self.pem"),
                           self_key=p("self.key"), self_name=SELF_NAME)


if __name__ == "__main__":
    if len(sys.argv) > 2 or (len(sys.argv) == 2 and sys.argv[1].startswith("-")):
        print("usage: certs.py [DIR]", file=sys.stderr)
        sys.exit(2)
    c = make_certs(sys.argv[1] if len(sys.argv) == 2 else tempfile.mkdtemp(prefix="sf-certs-"))
    for k, v in sorted(vars(c).items()):
        print(f"{k} {v}")
