#!/usr/bin/env python3
# Edge cases of the routed exchange, each once a bug: a chunked body of many pieces copied for a
# fallback, hundreds of tiny headers (the head grows as it is rewritten), Host named in
# Connection, and a slow reader whose upload ends after the response has filled its buffer.
import hashlib
import json
import os
import socket
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F403

t = Tap()
legacy = start_legacy()
fn = start_functions()
F = f"http://127.0.0.1:{fn.port}"

# A function streaming 8 MB to whoever asks, for the slow reader.
TOTAL = 8_000_000
lsock = socket.socket()
lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
lsock.bind(("127.0.0.1", 0))
lsock.listen(8)
big_port = lsock.getsockname()[1]


def serve_big():
    while True:
        try:
            c, _ = lsock.accept()
        except OSError:
            return

        def one(c):
            buf = b""
            try:
                while b"\r\n\r\n" not in buf:
                    b = c.recv(65536)
                    if not b:
                        return
                    buf += b
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % TOTAL)
                threading.Thread(target=lambda: c.recv(65536), daemon=True).start()
                sent = 0
                while sent < TOTAL:
                    c.sendall(b"x" * min(65536, TOTAL - sent))
                    sent += 65536
            except OSError:
                pass
        threading.Thread(target=one, args=(c,), daemon=True).start()


threading.Thread(target=serve_big, daemon=True).start()

routes = f"""
functions:
  ok: {F}
  unavailable:
    url: {F}
    headers: {{ x-stub-status: "503" }}
  big: http://127.0.0.1:{big_port}
routes:
  - {{ name: fb, match: {{ path: /__echo/fb }}, function: ok, cutover: 100, fallback: true }}
  - {{ name: fb503, match: {{ path: /__echo/u503 }}, function: unavailable, cutover: 100, fallback: true }}
  - {{ name: plain, match: {{ path: /__echo/fn }}, function: ok, cutover: 100 }}
  - {{ name: big, match: {{ path: /big }}, function: big, cutover: 100 }}
"""
proxy = Proxy(f"http://127.0.0.1:{legacy.port}", routes_yaml=routes,
              settings="limits: { max_headers: 1000 }\n"
                       "timeouts: { upstream_response: 1s, client_body: 20s }\n")
P = proxy.port


def chunked_put(path, pieces, size):
    body = os.urandom(pieces * size)
    framed = b"".join(b"%x\r\n" % size + body[i * size:(i + 1) * size] + b"\r\n"
                      for i in range(pieces)) + b"0\r\n\r\n"
    s = connect(P)
    s.sendall(f"PUT {path} HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
              "Connection: close\r\n\r\n".encode())
    time.sleep(0.05)
    s.sendall(framed)
    st, hd, data = read_response(s)
    s.close()
    return body, st, json.loads(data)


# Many chunks arriving at once: the copy kept for a fallback spans many buffer segments.
body, st, js = chunked_put("/__echo/fb", 300, 3000)
t.eq((st, js.get("body_length"), js.get("body_sha256")),
     (200, len(body), hashlib.sha256(body).hexdigest()),
     "a chunked PUT of 300 pieces to a fallback route arrives whole at the function")
body, st, js = chunked_put("/__echo/u503", 300, 3000)
h = echoed_headers(js).get("host", [""])[0]
t.eq((st, js.get("body_sha256"), h == f"127.0.0.1:{fn.port}"),
     (200, hashlib.sha256(body).hexdigest(), False),
     "the same body, refused by a function (503), reaches legacy whole from the kept copy")

# 900 headers written "a:b": each grows by the space after the colon on the way out.
hdrs = b"".join(b"a:b\r\n" for _ in range(900))
for path in [b"/__echo/fb", b"/__echo/plain"]:
    resp, closed = raw(P, b"GET " + path + b" HTTP/1.1\r\nHost:h\r\n" + hdrs +
                       b"Connection: close\r\n\r\n", timeout=5)
    t.eq(status_of(resp), 200, f"GET {path.decode()} with 900 tiny headers is proxied (200)")

# Host named in Connection: a function still gets its own Host, legacy the client's.
resp, closed = raw(P, b"GET /__echo/fn HTTP/1.1\r\nHost: client.example\r\n"
                   b"Connection: close, host\r\n\r\n")
js = json.loads(resp.split(b"\r\n\r\n", 1)[1])
t.eq(echoed_headers(js).get("host"), [f"127.0.0.1:{fn.port}"],
     "a function gets its Host even when the client names Host in Connection")
resp, closed = raw(P, b"GET /__echo/legacy HTTP/1.1\r\nHost: client.example\r\n"
                   b"Connection: close, host\r\n\r\n")
js = json.loads(resp.split(b"\r\n\r\n", 1)[1])
t.eq(echoed_headers(js).get("host"), ["client.example"],
     "legacy gets the client's Host even when the client names it in Connection")

# A slow reader whose small upload ends after the response filled the proxy's buffer: the
# upstream waits on the client, so upstream_response (1s here) must not cut it off.
s = connect(P)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
s.sendall(b"POST /big HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n")
time.sleep(1.5 * SLOW)
s.sendall(b"hello")
got = 0
t0 = time.monotonic()
s.settimeout(5 * SLOW)
try:
    while got < TOTAL and time.monotonic() - t0 < 30 * SLOW:
        b = s.recv(65536)
        if not b:
            break
        got += len(b)
        if time.monotonic() - t0 < 3:
            time.sleep(0.01)
except OSError as e:
    t.diag(f"recv: {e}")
s.close()
t.ok(got >= TOTAL, f"a slow reader gets all 8 MB after its upload ended ({got} bytes)")

lsock.close()
t.eq(proxy.stop(), 0, "the proxy exits 0 on SIGTERM")
t.ok(proxy.sanitizer_report() is None, "no sanitizer report", proxy.sanitizer_report())
