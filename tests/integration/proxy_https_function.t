#!/usr/bin/env python3
# Routes to https functions: the proxy speaks TLS to the function-host over its pooled
# connections (certificate checked against the function's tls.ca, SNI/Host from the URL),
# keeps one upstream TLS connection per client stream, streams bodies both ways intact; a
# certificate from another CA, a hostname mismatch, a plain-HTTP server behind an https URL
# and a server that never finishes the handshake are 502/504 with a log line saying why;
# verify: false works against a self-signed certificate and `strangler check` warns about it.
import hashlib
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from certs import make_certs  # noqa: E402
from harness import *  # noqa: E402,F403

t = Tap()
certs = make_certs()
legacy = start_legacy()
fn = start_functions(extra=("--tls-cert", certs.server_cert, "--tls-key", certs.server_key))
selfsigned = start_functions(extra=("--tls-cert", certs.self_cert, "--tls-key", certs.self_key))
plain = start_functions()
# accepts TCP (the kernel's backlog) but never answers the ClientHello
mute = socket.socket()
mute.bind(("127.0.0.1", 0))
mute.listen(16)
MUTE_PORT = mute.getsockname()[1]


def route(name, function, prefix):
    """A route taking prefix to function, the prefix rewritten to the stub's /__echo."""
    return (f"  - name: {name}\n"
            f"    match: {{ path: {prefix} }}\n"
            f"    function: {function}\n"
            f"    rewrite: {{ regex: '^{prefix}(.*)$', to: '/__echo$1' }}\n"
            f"    cutover: 100\n")


routes = f"""
functions:
  secure:
    url: https://127.0.0.1:{fn.port}
    tls: {{ ca: {yaml_quote(certs.ca_cert)} }}
  wrongca:
    url: https://127.0.0.1:{fn.port}
    tls: {{ ca: {yaml_quote(certs.other_ca_cert)} }}
  noverify:
    url: https://127.0.0.1:{selfsigned.port}
    tls: {{ verify: false }}
  mismatch:
    url: https://localhost:{selfsigned.port}
    tls: {{ ca: {yaml_quote(certs.self_cert)} }}
  plaintext:
    url: https://127.0.0.1:{plain.port}
    tls: {{ verify: false }}
  mute:
    url: https://127.0.0.1:{MUTE_PORT}
    tls: {{ ca: {yaml_quote(certs.ca_cert)} }}
routes:
  - name: secure
    match: {{ path: /__echo }}
    function: secure
    cutover: 100
  - name: bytes
    match: {{ path: /__bytes }}
    function: secure
    cutover: 100
{route("wrongca", "wrongca", "/wrongca")}{route("noverify", "noverify", "/noverify")}\
{route("mismatch", "mismatch", "/mismatch")}{route("plaintext", "plaintext", "/plaintext")}\
{route("mute", "mute", "/mute")}"""

proxy = Proxy(f"http://127.0.0.1:{legacy.port}", routes_yaml=routes,
              settings="timeouts: { upstream_connect: 1s, upstream_response: 10s }\n")


def log_lines(p, *needles):
    """The proxy's log lines holding every needle (case-insensitive)."""
    return [ln for ln in p.output().splitlines()
            if all(n.lower() in ln.lower() for n in needles)]


def pattern(n):
    alphabet = b"abcdefghijklmnopqrstuvwxyz"
    return (alphabet * (n // 26 + 1))[:n]


# 1. https with the function's own CA
st, js = echo(proxy.port)
h = echoed_headers(js)
t.eq(st, 200, "GET /__echo through the proxy is 200 from the https function")
t.eq(h.get("host"), [f"127.0.0.1:{fn.port}"], "the function gets its URL's authority as Host")
t.eq(js.get("path"), "/__echo", "the function gets the path")

c = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10 * SLOW)
peers, statuses = set(), []
for i in range(10):
    c.request("GET", f"/__echo?i={i}")
    r = c.getresponse()
    data = r.read()
    statuses.append(r.status)
    peers.add(json.loads(data).get("peer") if r.status == 200 else None)
c.close()
t.eq(statuses, [200] * 10, "10 requests on one client connection all succeed over TLS")
t.ok(len(peers) == 1 and None not in peers,
     "the function saw one pooled TLS connection for 10 sequential requests", peers)
st, js2 = echo(proxy.port)
t.ok(st == 200 and js2.get("peer") in peers,
     "a new client connection reuses the idle upstream TLS connection", (js2.get("peer"), peers))

body = os.urandom(1 << 20)
st, js = echo(proxy.port, "POST", headers={"Content-Type": "application/octet-stream"}, body=body)
t.ok(st == 200 and js.get("body_length") == len(body) and
     js.get("body_sha256") == hashlib.sha256(body).hexdigest(),
     "a 1 MiB POST reaches the https function intact", (st, {k: js.get(k) for k in
                                                            ("body_length", "body_sha256")}))

n = 8 * 1000 * 1000 + 3
st, hd, data = request(proxy.port, "GET", f"/__bytes?size={n}", timeout=60)
t.ok(st == 200 and len(data) == n and
     hashlib.sha256(data).digest() == hashlib.sha256(pattern(n)).digest(),
     f"an {n}-byte response streams back from the https function intact", (st, len(data)))

# a slow reader: the upstream TLS reads pause and resume with the client's backpressure
s = connect(proxy.port)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
s.sendall(f"GET /__bytes?size={n} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
time.sleep(1.0 * SLOW)
got, hsh, head = 0, hashlib.sha256(), b""
s.settimeout(30 * SLOW)
while True:
    b = s.recv(1 << 16)
    if not b:
        break
    if head is not None:
        head += b
        if b"\r\n\r\n" in head:
            _, _, b = head.partition(b"\r\n\r\n")
            head = None
        else:
            continue
    got += len(b)
    hsh.update(b)
s.close()
t.ok(got == n and hsh.digest() == hashlib.sha256(pattern(n)).digest(),
     "a paused-then-resumed TLS download arrives whole", got)

results = []


def worker(k):
    for i in range(5):
        try:
            st, js = echo(proxy.port, path=f"/__echo?w={k}&i={i}")
            results.append(st)
        except Exception as e:  # noqa: BLE001
            results.append(repr(e))


threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
for th in threads:
    th.start()
for th in threads:
    th.join()
t.eq(results, [200] * 40, "8 concurrent clients x 5 requests over several TLS connections")

# 2. a CA that did not sign the function's certificate
st, _, body = request(proxy.port, "GET", "/wrongca")
t.eq(st, 502, "a function whose certificate the CA did not sign is 502")
lines = log_lines(proxy, "certificate verification failed", "wrongca")
t.ok(lines, "the log says the certificate verification failed, naming the function",
     proxy.output()[-2000:])
t.ok(any("unable to get local issuer certificate" in ln for ln in lines),
     "... and why (unable to get local issuer certificate)", lines)

# 3. verify: false against a self-signed certificate
st, js = echo(proxy.port, path="/noverify")
t.eq(st, 200, "verify: false accepts a self-signed certificate")
t.eq(echoed_headers(js).get("host"), [f"127.0.0.1:{selfsigned.port}"],
     "... and the function got its Host")
r = subprocess.run([os.path.join(BIN, "strangler"), "check", "-c", proxy.conf],
                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                   timeout=30 * SLOW)
out = r.stdout.decode("utf-8", "replace")
t.eq(r.returncode, 0, "strangler check accepts verify: false")
t.ok(any("verif" in ln.lower() and "noverify" in ln for ln in out.splitlines()),
     "strangler check warns that function noverify does not verify certificates", out)

# 4. the certificate is for another name
st, _, body = request(proxy.port, "GET", "/mismatch")
t.eq(st, 502, "a certificate for another name than the URL's host is 502")
lines = log_lines(proxy, "certificate verification failed", "mismatch")
t.ok(any("hostname mismatch" in ln for ln in lines),
     "the log says hostname mismatch, naming the function", proxy.output()[-2000:])

# 5. https URL, plain HTTP server
st, _, body = request(proxy.port, "GET", "/plaintext")
t.eq(st, 502, "an https URL to a plain HTTP server is 502")
t.ok(log_lines(proxy, "TLS handshake failed", "plaintext"),
     "the log says the TLS handshake failed, naming the function", proxy.output()[-2000:])

# 6. a server that never answers the handshake: the connect timeout covers it
t0 = time.monotonic()
st, _, body = request(proxy.port, "GET", "/mute")
el = time.monotonic() - t0
t.eq(st, 504, "a function that never completes the handshake is 504")
t.ok(el < 5 * SLOW, "the 504 comes at upstream_connect", el)

# the good function still works after all that
st, js = echo(proxy.port)
t.eq(st, 200, "the https function still answers after the failures")

mute.close()
t.eq(proxy.stop(), 0, "the proxy exits 0 on SIGTERM")
t.ok(proxy.sanitizer_report() is None, "no sanitizer report", proxy.sanitizer_report())
