#!/usr/bin/env python3
# TLS termination on a listener (DESIGN §3 listen[].tls): curl over TLS 1.2 and 1.3 gets proxied
# answers (GET, a POST of a few MB, a large download, keep-alive reuse) with X-Forwarded-Proto:
# https; TLS 1.1 and 1.0 clients are refused by the server; ALPN picks http/1.1 and an h2-only
# client is refused (RFC 7301 §3.2); sessions resume (TLS 1.3 and 1.2); a certificate swapped on
# disk is served to new connections after SIGHUP or POST /reload while a keep-alive connection
# opened before goes on; a bad certificate on reload keeps the running one; a handshake that
# stalls is closed at client_header; plain HTTP to the TLS port gets a plain-text 400; bad
# certificates, keys that do not match and an admin address shared with a listener stop the
# start with FILE:LINE:COL before anything is bound.
import hashlib
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from certs import make_certs, make_server_cert  # noqa: E402
from harness import *  # noqa: E402,F403

t = Tap()
certs = make_certs()
cert2, key2 = make_server_cert(certs, "server2")
legacy = start_legacy()

CLIENT_HEADER_S = 2
TLS_LINE = "    tls: { cert: cert.pem, key: key.pem }\n"  # line 4 of TlsProxy's strangler.yaml
CERT_AT = f"4:{TLS_LINE.index('cert.pem') + 1}"
KEY_AT = f"4:{TLS_LINE.index('key.pem') + 1}"


def der_fingerprint(pem_path):
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(open(pem_path).read())).hexdigest()


class TlsProxy(Proc):
    """strangler run with a plain listener, a TLS listener (cert.pem and key.pem copied into
    its folder, so a test can swap them) and an admin address."""

    def __init__(self, settings=""):
        self.dir = tempfile.mkdtemp(prefix="sf-conf-")
        self.plain_port, self.tls_port, self.admin_port = free_port(), free_port(), free_port()
        self.cert = os.path.join(self.dir, "cert.pem")
        self.key = os.path.join(self.dir, "key.pem")
        shutil.copy(certs.server_cert, self.cert)
        shutil.copy(certs.server_key, self.key)
        self.conf = os.path.join(self.dir, "strangler.yaml")
        with open(self.conf, "w") as f:
            f.write(f"listen:\n"
                    f"  - address: 127.0.0.1:{self.plain_port}\n"
                    f"  - address: 127.0.0.1:{self.tls_port}\n" + TLS_LINE +
                    f"admin:\n  address: 127.0.0.1:{self.admin_port}\n"
                    f"routes_file: routes.yaml\n"
                    f"log: {{ level: info, access: off }}\n"
                    f"timeouts: {{ client_header: {CLIENT_HEADER_S}s }}\n" + settings)
        with open(os.path.join(self.dir, "routes.yaml"), "w") as f:
            f.write(f"legacy: http://127.0.0.1:{legacy.port}\nfunctions: {{}}\nroutes: []\n")
        super().__init__([STRANGLER, "run", "-c", self.conf], port=self.tls_port)

    def swap(self, cert, key):
        """Replaces the certificate and key on disk, each by a rename (never half-written)."""
        for src, dst in ((key, self.key), (cert, self.cert)):
            tmp = dst + ".tmp"
            shutil.copy(src, tmp)
            os.rename(tmp, dst)


def log_lines(p, *needles):
    return [ln for ln in p.output().splitlines() if all(n in ln for n in needles)]


def wait_log(p, *needles, count=1, timeout=10.0):
    end = time.monotonic() + timeout * SLOW
    while time.monotonic() < end:
        if len(log_lines(p, *needles)) >= count:
            return True
        time.sleep(0.05)
    return False


def curl(*args, timeout=30):
    """curl (verbose on stderr) against the test CA; returns (exit code, stdout bytes, stderr)."""
    r = subprocess.run(["curl", "-sS", "-v", "--cacert", certs.ca_cert, "--max-time",
                        str(int(timeout * SLOW)), *args],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout * SLOW + 10)
    return r.returncode, r.stdout, r.stderr.decode("utf-8", "replace")


def s_client(port, *args, stdin=b"", timeout=20):
    """openssl s_client; returns its stdout and stderr together."""
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
                        "-servername", "localhost", *args],
                       input=stdin, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=timeout * SLOW)
    return r.stdout.decode("utf-8", "replace")


def tls_connect(port, ctx=None):
    ctx = ctx or ssl.create_default_context(cafile=certs.ca_cert)
    raw_sock = connect(port)
    return ctx.wrap_socket(raw_sock, server_hostname="localhost")


def get(sock, path="/__echo", headers=""):
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n".encode())
    return read_response(sock)


def served_fingerprint(port):
    s = tls_connect(port)
    try:
        return hashlib.sha256(s.getpeercert(binary_form=True)).hexdigest()
    finally:
        s.close()


proxy = TlsProxy()
T, P, A = proxy.tls_port, proxy.plain_port, proxy.admin_port
FP1, FP2 = der_fingerprint(certs.server_cert), der_fingerprint(cert2)
t.ok(log_lines(proxy, f"listening on 127.0.0.1:{T} (TLS), certificate CN=localhost"),
     "the start-up log names the TLS listener and its certificate", proxy.output()[-1500:])

# ---- curl over TLS 1.2 and 1.3: GET, a POST of a few MB, a download, keep-alive reuse ----
body = os.urandom(3 * 1024 * 1024 + 17)
body_path = os.path.join(proxy.dir, "body.bin")
with open(body_path, "wb") as f:
    f.write(body)
for label, flags in (("TLS 1.2", ["--tlsv1.2", "--tls-max", "1.2"]),
                     ("TLS 1.3", ["--tlsv1.3"])):
    url = f"https://localhost:{T}/__echo"
    rc, out, err = curl(*flags, url, url)
    ver = "TLSv1.2" if label == "TLS 1.2" else "TLSv1.3"
    t.ok(rc == 0 and f"SSL connection using {ver}" in err, f"{label}: curl connects with {ver}",
         err[-1500:])
    t.ok("ALPN: server accepted http/1.1" in err, f"{label}: ALPN negotiates http/1.1",
         err[-800:])
    t.ok("Re-using existing connection" in err and err.count("< HTTP/1.1 200") == 2,
         f"{label}: two GETs, the second on the same keep-alive TLS connection", err[-1500:])
    try:
        js = json.loads(out.split(b"}{")[0] + b"}")
    except ValueError:
        js = {}
    h = echoed_headers(js)
    t.eq(h.get("x-forwarded-proto"), ["https"], f"{label}: the upstream gets X-Forwarded-Proto: https")

    rc, out, err = curl(*flags, "-X", "POST", "--data-binary", f"@{body_path}",
                        "-H", "Content-Type: application/octet-stream", url)
    try:
        js = json.loads(out)
    except ValueError:
        js = {"raw": out[:300]}
    t.ok(rc == 0 and js.get("body_length") == len(body) and
         js.get("body_sha256") == hashlib.sha256(body).hexdigest(),
         f"{label}: a {len(body)}-byte POST reaches the upstream intact", (rc, js, err[-600:]))

    size = 5 * 1024 * 1024 + 3
    rc, out, err = curl(*flags, f"https://localhost:{T}/__bytes?size={size}")
    want = (b"abcdefghijklmnopqrstuvwxyz" * (size // 26 + 1))[:size]
    t.ok(rc == 0 and len(out) == size and out == want,
         f"{label}: a {size}-byte response comes back whole", (rc, len(out), err[-600:]))

# many requests on one TLS connection, pipelined in pairs
s = tls_connect(T)
statuses = []
for i in range(20):
    s.sendall(f"GET /__echo/{i} HTTP/1.1\r\nHost: localhost\r\n\r\n"
              f"GET /__echo/{i}b HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    statuses += [read_response(s)[0], read_response(s)[0]]
t.ok(statuses == [200] * 40, "40 requests, pipelined in pairs, on one TLS connection all 200",
     statuses)
s.close()

# a client that reads slowly: the proxy's output fills, the upstream is paused, and resumed as
# the TLS writes drain; every byte arrives, in order
size = 8 * 1024 * 1024
s = tls_connect(T)
s.sendall(f"GET /__bytes?size={size} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
f = s.makefile("rb")
head = b""
while not head.endswith(b"\r\n\r\n"):
    head += f.read(1)
got = bytearray()
deadline = time.monotonic() + 60 * SLOW
while len(got) < size and time.monotonic() < deadline:
    chunk = f.read(min(65536, size - len(got)))
    if not chunk:
        break
    got += chunk
    if len(got) < 2 * 1024 * 1024:
        time.sleep(0.01)  # slow at first: the proxy holds back, then catches up
want = (b"abcdefghijklmnopqrstuvwxyz" * (size // 26 + 1))[:size]
t.ok(head.startswith(b"HTTP/1.1 200") and bytes(got) == want,
     "a slow reader gets an 8 MiB response whole over TLS", (head[:60], len(got)))
st, _, _ = get(s)
t.eq(st, 200, "... and the connection serves the next request")
s.close()

# a client's own X-Forwarded-Proto never passes; the plain listener says http
s = tls_connect(T)
st, _, data = get(s, headers="X-Forwarded-Proto: http\r\n")
s.close()
t.eq(echoed_headers(json.loads(data)).get("x-forwarded-proto"), ["https"],
     "a client's X-Forwarded-Proto: http on the TLS listener is replaced by https")
st, js = echo(P)
t.ok(st == 200 and echoed_headers(js).get("x-forwarded-proto") == ["http"],
     "the plain listener still serves, with X-Forwarded-Proto: http", (st, js))

# ---- protocol versions, ALPN, resumption ----
# SECLEVEL=0: Debian's OpenSSL would not even offer TLS 1.0/1.1 otherwise; this way the refusal
# is the server's (its protocol_version alert)
for flag, name in (("-tls1_1", "TLS 1.1"), ("-tls1", "TLS 1.0")):
    out = s_client(T, flag, "-cipher", "DEFAULT@SECLEVEL=0")
    t.ok("alert protocol version" in out and "Cipher is (NONE)" in out,
         f"a {name} client is refused by the server (protocol_version alert)", out[-1500:])
t.ok(wait_log(proxy, "TLS handshake with 127.0.0.1 failed: unsupported protocol", count=2),
     "the proxy logs both refusals as unsupported protocol", proxy.output()[-1500:])

out = s_client(T, "-alpn", "h2,http/1.1", stdin=b"")
t.ok("ALPN protocol: http/1.1" in out, "a client offering h2 and http/1.1 gets http/1.1",
     out[-1000:])
out = s_client(T, "-alpn", "h2")
t.ok("alert no application protocol" in out,
     "an h2-only client is refused with no_application_protocol", out[-1000:])
out = s_client(T, "-ign_eof",
               stdin=b"GET /__echo HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
t.ok("No ALPN negotiated" in out and "HTTP/1.1 200" in out,
     "a client offering no ALPN proceeds without it", out[-1000:])

REQ = b"GET /__echo HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
for flag, name in (("-tls1_3", "TLS 1.3"), ("-tls1_2", "TLS 1.2")):
    sess = os.path.join(proxy.dir, f"sess{flag}")
    first = s_client(T, flag, "-ign_eof", "-sess_out", sess, stdin=REQ)
    second = s_client(T, flag, "-ign_eof", "-sess_in", sess, stdin=REQ)
    t.ok("\nNew, " in first and "\nReused, " in second and "HTTP/1.1 200" in second,
         f"{name}: a second connection resumes the first one's session (Reused)",
         (first[-600:], second[-600:]))

# TLS 1.2 suites: ECDHE + AEAD only, the server's order
out = s_client(T, "-tls1_2", "-cipher", "AES256-SHA:AES128-SHA256")
t.ok("Cipher is (NONE)" in out, "TLS 1.2 without ECDHE/AEAD suites: refused", out[-800:])
out = s_client(T, "-tls1_2", "-cipher",
               "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:"
               "ECDHE-ECDSA-AES128-GCM-SHA256", stdin=REQ)
t.ok("Cipher is ECDHE-ECDSA-AES128-GCM-SHA256" in out,
     "TLS 1.2: the server's preference (AES128-GCM) over the client's order", out[-800:])
out = s_client(T, "-tls1_2", "-cipher",
               "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256", stdin=REQ)
t.ok("Cipher is ECDHE-ECDSA-CHACHA20-POLY1305" in out,
     "TLS 1.2: a client that puts ChaCha20 first (no AES hardware) gets it", out[-800:])

# ---- handshake stalls are closed at client_header; plain HTTP gets a 400 ----
mute = connect(T)                       # TCP only, never a ClientHello
half = connect(T)
half.sendall(b"\x16\x03\x01\x02\x00\x01")  # the start of a ClientHello, then nothing
start = time.monotonic()
t.eq(served_fingerprint(T), FP1, "while two handshakes stall, new connections are served")
got_mute, closed_mute = recv_all(mute, timeout=CLIENT_HEADER_S + 8)
got_half, closed_half = recv_all(half, timeout=CLIENT_HEADER_S + 8)
t.ok(closed_mute and got_mute == b"", "a connection that never starts the handshake is closed",
     (got_mute[:100], closed_mute))
t.ok(closed_half and got_half == b"", "a connection with half a ClientHello is closed",
     (got_half[:100], closed_half))
t.ok(wait_log(proxy, "TLS handshake from 127.0.0.1 not complete within client_header", count=2),
     "both are logged as handshakes not complete within client_header", proxy.output()[-1500:])
mute.close()
half.close()

resp, closed = raw(T, b"GET /__echo HTTP/1.1\r\nHost: localhost\r\n\r\n")
t.ok(status_of(resp) == 400 and b"plain HTTP was sent to a TLS port" in resp and closed,
     "plain HTTP on the TLS port: a plain-text 400 that says so, then the close", resp[:300])
t.ok(b"Connection: close" in resp, "... with Connection: close", resp[:300])

# ---- certificates reloaded: SIGHUP, POST /reload; bad ones keep the running certificate ----
t.eq(served_fingerprint(T), FP1, "the configured certificate is served")
before = tls_connect(T)
st1, _, _ = get(before)
proxy.swap(cert2, key2)
proxy.send_signal(signal.SIGHUP)
t.ok(wait_log(proxy, "reload (signal): listener", "new TLS certificate CN=localhost"),
     "SIGHUP: the log says the listener has a new certificate", proxy.output()[-1500:])
fp_hup = served_fingerprint(T)
t.eq(fp_hup, FP2, "after SIGHUP a new connection gets the new certificate")
st2, _, data = get(before)
t.ok(st1 == 200 and st2 == 200 and json.loads(data).get("path") == "/__echo",
     "a keep-alive connection opened before the reload goes on", (st1, st2))
t.eq(hashlib.sha256(before.getpeercert(binary_form=True)).hexdigest(), FP1,
     "... still with the certificate it started with")
before.close()
fp_hex = ":".join(FP2.upper()[i:i + 2] for i in range(0, len(FP2), 2))
t.ok(log_lines(proxy, "new TLS certificate", fp_hex),
     "the reload log line carries the new certificate's SHA-256 fingerprint",
     proxy.output()[-1200:])

# a reload with nothing changed keeps the context (and so its sessions)
sess = os.path.join(proxy.dir, "sess-keep")
s_client(T, "-tls1_3", "-ign_eof", "-sess_out", sess, stdin=REQ)
proxy.send_signal(signal.SIGHUP)
n_new = len(log_lines(proxy, "new TLS certificate"))
time.sleep(0.3 * SLOW)
out = s_client(T, "-tls1_3", "-ign_eof", "-sess_in", sess, stdin=REQ)
t.ok("\nReused, " in out and len(log_lines(proxy, "new TLS certificate")) == n_new,
     "a reload that changes no certificate keeps it, and sessions still resume", out[-600:])

# a junk certificate: refused, logged with the place in the config; the running one stays
with open(proxy.cert + ".tmp", "w") as f:
    f.write("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
os.rename(proxy.cert + ".tmp", proxy.cert)
proxy.send_signal(signal.SIGHUP)
t.ok(wait_log(proxy, "reload (signal) kept the TLS certificate of listener",
              f"{proxy.conf}:{CERT_AT}: listen 127.0.0.1:{T}: cannot load certificate",
              "bad base64 decode"),
     "a bad certificate on reload is refused with FILE:LINE:COL and the reason",
     proxy.output()[-1500:])
t.eq(served_fingerprint(T), FP2, "... and the running certificate stays")

# a certificate with another certificate's key
shutil.copy(certs.server_cert, proxy.cert)  # key.pem is still key2
st, _, _ = request(A, "POST", "/reload")
t.ok(wait_log(proxy, "reload (api) kept the TLS certificate",
              f"{proxy.conf}:{KEY_AT}: listen 127.0.0.1:{T}: private key", "does not match"),
     "POST /reload: a key that does not match the certificate is refused, at the key's place",
     proxy.output()[-1500:])
t.eq(served_fingerprint(T), FP2, "... and the running certificate stays")

# back to the first certificate through POST /reload (what strangler reload calls)
proxy.swap(certs.server_cert, certs.server_key)
st, _, _ = request(A, "POST", "/reload")
t.ok(wait_log(proxy, "reload (api): listener", "new TLS certificate"),
     "POST /reload loads the changed certificate", proxy.output()[-1500:])
t.eq(served_fingerprint(T), FP1, "after POST /reload a new connection gets it")

rc = proxy.stop()
t.eq(rc, 0, "SIGTERM: the proxy drains and exits 0")
rep = proxy.sanitizer_report()
t.ok(rep is None, "no sanitizer report", (rep or "")[-3000:])

# ---- start-up errors: before anything is bound ----


def start_fails(cert, key, admin_same=False):
    """A strangler run that must fail: returns (exit code, stderr, conf path, the log lines
    that show it got as far as binding a port)."""
    d = tempfile.mkdtemp(prefix="sf-conf-")
    p, tp = free_port(), free_port()
    ap = p if admin_same else free_port()
    conf = os.path.join(d, "strangler.yaml")
    with open(conf, "w") as f:
        f.write(f"listen:\n  - address: 127.0.0.1:{p}\n  - address: 127.0.0.1:{tp}\n"
                f"    tls:\n      cert: {yaml_quote(cert)}\n      key: {yaml_quote(key)}\n"
                f"admin:\n  address: 127.0.0.1:{ap}\nlog: {{ level: info, access: off }}\n")
    with open(os.path.join(d, "routes.yaml"), "w") as f:
        f.write(f"legacy: http://127.0.0.1:{legacy.port}\n")
    # The test holds every port while the proxy runs: a proxy that bound any before checking
    # its certificates would fail on that bind ("cannot listen") instead of the error under
    # test. (Probing the ports after the exit could not tell, and under prove -j2 another
    # test's server may hold one of them by then.)
    with holding_ports(p, tp, ap):
        r = subprocess.run([STRANGLER, "run", "-c", conf], capture_output=True, text=True,
                           timeout=20 * SLOW, stdin=subprocess.DEVNULL)
    check_sanitizer(["run", "-c", conf], r.stderr)
    bound = [ln for ln in r.stderr.splitlines() if "cannot listen" in ln or "listening on" in ln]
    return r.returncode, r.stderr, conf, bound


junk = os.path.join(certs.dir, "junk.pem")
with open(junk, "w") as f:
    f.write("hello\n")
rc, err, conf, bound = start_fails(junk, certs.server_key)
t.ok(rc == 1 and f"{conf}:5:13: listen 127.0.0.1:" in err and
     f"cannot load certificate {junk}: no start line" in err and not bound,
     "a certificate file that is not one: exit 1 at cert's FILE:LINE:COL with OpenSSL's reason,"
     " nothing bound", (rc, err, bound))
rc, err, conf, bound = start_fails(certs.server_cert, key2)
t.ok(rc == 1 and f"{conf}:6:12: " in err and "does not match certificate" in err and not bound,
     "a key that does not match: exit 1 at key's FILE:LINE:COL, nothing bound", (rc, err, bound))
missing = os.path.join(certs.dir, "missing.key")
rc, err, conf, bound = start_fails(certs.server_cert, missing)
t.ok(rc == 1 and f"{conf}:6:12: " in err and
     f"cannot read key file {missing}: No such file or directory" in err and not bound,
     "a missing key file: exit 1 naming it, nothing bound", (rc, err, bound))
enc = os.path.join(certs.dir, "encrypted.key")
subprocess.run(["openssl", "pkey", "-in", certs.server_key, "-aes256", "-passout", "pass:x",
                "-out", enc], check=True, capture_output=True)
rc, err, conf, bound = start_fails(certs.server_cert, enc)
t.ok(rc == 1 and f"{conf}:6:12: " in err and f"cannot load private key {enc}" in err and
     "bad decrypt" in err and not bound,
     "an encrypted key: exit 1 at once (no passphrase prompt), nothing bound", (rc, err, bound))
rc, err, conf, bound = start_fails(certs.server_cert, certs.server_key, admin_same=True)
t.ok(rc == 1 and f"{conf}:8:12: admin address" in err and "also a listen address" in err and
     not bound, "an admin address equal to a listen address: exit 1 at admin's line:col",
     (rc, err, bound))
code, out, err = cli_run("check", "-c", conf)
t.ok(code == 1 and f"{conf}:8:12: admin address" in err, "strangler check reports it too",
     (code, out, err))
rc, err, conf, bound = start_fails(junk, certs.server_key)
code, out, err = cli_run("check", "-c", conf)
t.ok(code == 1 and f"{conf}:5:13: " in err and "cannot load certificate" in err,
     "strangler check loads the certificates as run does", (code, out, err))
t.eq(cli_sanitizer_hits, [], "no sanitizer report from the failed starts")
