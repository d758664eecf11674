#!/usr/bin/env python3
"""The stand-in servers over HTTPS (--tls-cert/--tls-key), no proxy: curl trusting the test CA
gets the same endpoints as over plain HTTP (/__echo with its peer, bodies both ways, keep-alive,
knobs); curl trusting nothing, or another CA, fails verification; bad flags are refused; both
programs exit 0 with nothing for the sanitizers to report."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from certs import make_certs  # noqa: E402
from harness import (BIN, SANITIZED, SLOW, Tap, free_port, request,  # noqa: E402
                     start_functions, start_legacy)

t = Tap()
certs = make_certs()
CURL_EXIT_VERIFY = 60  # curl: "Peer certificate cannot be authenticated with known CA certificates"


def curl(url, *args, timeout=30):
    """Runs curl; returns (exit code, stdout bytes, stderr text)."""
    r = subprocess.run(["curl", "-sS", "--http1.1", "--max-time", str(int(timeout * SLOW)), *args,
                        url], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    return r.returncode, r.stdout, r.stderr.decode("utf-8", "replace")


def json_docs(data):
    """The JSON documents written back to back (curl with several URLs)."""
    dec, out, text, pos = json.JSONDecoder(), [], data.decode("utf-8", "replace"), 0
    while pos < len(text):
        doc, pos = dec.raw_decode(text, pos)
        out.append(doc)
    return out


def pattern(n):
    alphabet = b"abcdefghijklmnopqrstuvwxyz"
    return (alphabet * (n // 26 + 1))[:n]


def run_prog(name, *args):
    r = subprocess.run([os.path.join(BIN, name), *args], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30 * SLOW)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


def stop_clean(proc, name):
    rc = proc.stop(signal.SIGTERM)
    t.eq(rc, 0, f"{name}: exits 0 on SIGTERM")
    report = proc.sanitizer_report() if SANITIZED else None
    t.ok(report is None, f"{name}: no sanitizer report", report)


# function-host with the CA-signed certificate for localhost / 127.0.0.1
fn = start_functions(extra=("--tls-cert", certs.server_cert, "--tls-key", certs.server_key))
base = f"https://127.0.0.1:{fn.port}"
ca = ("--cacert", certs.ca_cert)
t.ok("(HTTPS)" in fn.output(), "function-host says it serves HTTPS", fn.output())

rc, out, err = curl(base + "/__echo", *ca)
js = json_docs(out)[0] if rc == 0 else {}
t.ok(rc == 0 and js.get("method") == "GET" and js.get("version") == "HTTP/1.1",
     "function-host: GET /__echo over https with --cacert", (rc, out[:300], err))
t.ok(str(js.get("peer", "")).startswith("127.0.0.1:") and
     js.get("peer") != "127.0.0.1:0", "function-host: /__echo over TLS reports its peer", js)
t.eq(dict((k.lower(), v) for k, v in js.get("headers", [])).get("host"),
     f"127.0.0.1:{fn.port}", "function-host: echo shows the Host curl sent")

rc, out, err = curl(f"https://localhost:{fn.port}/health", *ca)
t.ok(rc == 0 and json_docs(out)[0].get("status") == "ok",
     "function-host: https://localhost matches the certificate's DNS name", (rc, out, err))

# two URLs in one curl: one TLS connection, kept alive
rc, out, err = curl(base + "/__echo?a=1", *ca, base + "/__echo?a=2")
docs = json_docs(out) if rc == 0 else []
peers = {d.get("peer") for d in docs}
t.ok(len(docs) == 2 and len(peers) == 1, "function-host: keep-alive over TLS (one peer for two "
     "requests)", (rc, docs, err))

# a 1 MiB body up, a 1 MB body down
body = os.urandom(1 << 20)
with tempfile.NamedTemporaryFile(prefix="sf-body-", delete=False) as f:
    f.write(body)
    body_path = f.name
rc, out, err = curl(base + "/__echo", *ca, "--data-binary", "@" + body_path,
                    "-H", "Content-Type: application/octet-stream")
os.unlink(body_path)
js = json_docs(out)[0] if rc == 0 else {}
t.ok(js.get("body_length") == len(body) and
     js.get("body_sha256") == hashlib.sha256(body).hexdigest(),
     "function-host: a 1 MiB POST over TLS arrives intact", (rc, js, err))
n = 1000003
rc, out, err = curl(base + f"/__bytes?size={n}", *ca)
t.ok(rc == 0 and out == pattern(n), f"function-host: /__bytes?size={n} over TLS",
     (rc, len(out), err))
rc, out, err = curl(base + f"/__bytes?size={n}&chunked=1", *ca, "-D", "-")
t.ok(rc == 0 and b"transfer-encoding: chunked" in out.lower() and out.endswith(pattern(n)),
     "function-host: chunked=1 over TLS", (rc, out[:300], err))

# knobs behave the same over TLS
rc, out, err = curl(base + "/api/orders/7?status=503", *ca, "-o", "/dev/null",
                    "-w", "%{http_code}")
t.eq((rc, out), (0, b"503"), "function-host: status=503 over TLS")
rc, out, err = curl(base + "/health?reset=before", *ca)
t.ok(rc != 0, "function-host: reset=before over TLS drops the connection", (rc, out, err))
rc, out, err = curl(base + "/__bytes?size=1000000&reset=mid", *ca)
t.ok(rc != 0 and out == pattern(500000),
     "function-host: reset=mid over TLS sends half the body, then resets", (rc, len(out), err))

# verification failures on the client side
rc, out, err = curl(base + "/__echo")
t.eq(rc, CURL_EXIT_VERIFY, "function-host: curl without --cacert fails verification")
rc, out, err = curl(base + "/__echo", "--cacert", certs.other_ca_cert)
t.eq(rc, CURL_EXIT_VERIFY, "function-host: curl trusting an unrelated CA fails verification")
rc, out, err = curl(f"http://127.0.0.1:{fn.port}/__echo")
t.ok(rc != 0 or not out.startswith(b"{"), "function-host: plain HTTP to the HTTPS port is no "
     "answer", (rc, out[:200]))
rc, out, err = curl(base + "/health", *ca)
t.ok(rc == 0, "function-host: still serving after the failed handshakes", (rc, err))

# legacy-stub with the self-signed certificate, trusted as its own CA
lg = start_legacy(extra=("--tls-cert", certs.self_cert, "--tls-key", certs.self_key))
name = certs.self_name
rc, out, err = curl(f"https://{name}:{lg.port}/api/orders/1", "--cacert", certs.self_cert,
                    "--resolve", f"{name}:{lg.port}:127.0.0.1")
js = json_docs(out)[0] if rc == 0 else {}
t.eq(js.get("id"), 1, "legacy-stub: /api/orders/1 over https (self-signed, trusted)")
rc, out, err = curl(f"https://127.0.0.1:{lg.port}/api/orders/1", "--cacert", certs.self_cert)
t.eq(rc, CURL_EXIT_VERIFY, "legacy-stub: a certificate for another name fails for 127.0.0.1")
rc, out, err = curl(f"https://127.0.0.1:{lg.port}/__echo", "-k")
js = json_docs(out)[0] if rc == 0 else {}
t.ok(str(js.get("peer", "")).startswith("127.0.0.1:"), "legacy-stub: /__echo peer over TLS "
     "(curl -k)", (rc, out[:300], err))

# plain HTTP stays the default
plain = start_legacy()
st, _, data = request(plain.port, "GET", "/health")
t.eq(st, 200, "legacy-stub without --tls-cert serves plain HTTP")

# flags
for prog in ("legacy-stub", "function-host"):
    rc, out, err = run_prog(prog, "--help")
    t.ok(rc == 0 and "--tls-cert FILE" in out and "--tls-key FILE" in out,
         f"{prog} --help documents --tls-cert and --tls-key", out)
    rc, out, err = run_prog(prog, "--port", str(free_port()), "--tls-cert", certs.server_cert)
    t.ok(rc == 2 and "--tls-key" in err, f"{prog}: --tls-cert without --tls-key is a usage error",
         (rc, err))
    rc, out, err = run_prog(prog, "--port", str(free_port()), "--tls-cert", "/nonexistent.pem",
                            "--tls-key", certs.server_key)
    t.ok(rc == 1 and "--tls-cert" in err, f"{prog}: an unreadable certificate exits 1 saying "
         "which", (rc, err))
    rc, out, err = run_prog(prog, "--port", str(free_port()), "--tls-cert", certs.server_cert,
                            "--tls-key", certs.self_key)
    t.ok(rc == 1 and "--tls-key" in err and "mismatch" in err,
         f"{prog}: a key that does not match the certificate exits 1 saying so",
         (rc, err))

stop_clean(fn, "function-host (HTTPS)")
stop_clean(lg, "legacy-stub (HTTPS)")
stop_clean(plain, "legacy-stub (HTTP)")
