#!/usr/bin/env python3
# Upstream faults through the proxy: each stub fault knob maps to the status of DESIGN §8,
# an upstream that is down, slow to accept, or speaks broken HTTP.
import json
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F403

t = Tap()
legacy = start_legacy()
proxy = Proxy(f"http://127.0.0.1:{legacy.port}", access="stderr",
              settings="timeouts: { upstream_connect: 500ms, upstream_response: 1s }\n")

# status knob: passed through as is.
for code in (404, 500, 503):
    st, _, _ = request(proxy.port, "GET", f"/api/orders/1?status={code}")
    t.eq(st, code, f"an upstream {code} is relayed as {code}")

# delay under the response timeout: fine; over it: 504.
t0 = time.time()
st, _, _ = request(proxy.port, "GET", "/api/orders/1?delay_ms=200")
t.eq(st, 200, "a 200 ms slow upstream is waited for")
t0 = time.time()
st, _, _ = request(proxy.port, "GET", "/api/orders/1?delay_ms=4000")
el = time.time() - t0
t.eq(st, 504, "no response within upstream_response: 504")
t.ok(el < 3.5 * SLOW, "the 504 comes at the timeout, not when the upstream answers", el)

# reset before the response: 502; the next request still works (fresh connection).
st, _, _ = request(proxy.port, "GET", "/api/orders/1?reset=before")
t.eq(st, 502, "upstream reset before the response: 502")
st, _, _ = request(proxy.port, "GET", "/api/orders/1")
t.eq(st, 200, "the next request is served after a reset")

# reset mid-body: the client connection is aborted, never a false complete body.
s = connect(proxy.port)
s.sendall(b"GET /__bytes?size=1000000&reset=mid HTTP/1.1\r\nHost: a\r\n\r\n")
data, closed = recv_all(s, 5)
s.close()
head, _, body = data.partition(b"\r\n\r\n")
cl = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0])
t.ok(closed and len(body) < cl, "upstream reset mid-body: fewer bytes than Content-Length, closed",
     (closed, len(body), cl))

s = connect(proxy.port)
s.sendall(b"GET /__bytes?size=1000000&reset=mid&chunked=1 HTTP/1.1\r\nHost: a\r\n\r\n")
data, closed = recv_all(s, 5)
s.close()
t.ok(closed and not data.endswith(b"0\r\n\r\n"),
     "upstream reset mid chunked body: no terminating chunk reaches the client", data[-20:])

# slow body and chunked knobs: complete and intact.
st, _, b = request(proxy.port, "GET", "/__bytes?size=100000&slow_ms=30")
t.eq((st, len(b)), (200, 100000), "a slowly sent body arrives whole")
st, h, b = request(proxy.port, "GET", "/api/catalog?chunked=1&slow_ms=10")
t.ok(st == 200 and json.loads(b), "a chunked, slow JSON body arrives whole and parses")

# Upstream down: 502 at once.
dead = free_port()
proxy_dead = Proxy(f"http://127.0.0.1:{dead}")
t0 = time.time()
st, _, _ = request(proxy_dead.port, "GET", "/api/orders/1")
t.eq(st, 502, "upstream refusing connections: 502")
t.ok(time.time() - t0 < 2 * SLOW, "the 502 for a refused connect is immediate")

# Upstream that does not accept (full backlog): connect timeout, 504.
blocker = socket.socket()
blocker.bind(("127.0.0.1", 0))
blocker.listen(0)
fillers = []
for _ in range(4):
    f = socket.socket()
    f.setblocking(False)
    try:
        f.connect(blocker.getsockname())
    except BlockingIOError:
        pass
    fillers.append(f)
time.sleep(0.2)
proxy_slow = Proxy(f"http://127.0.0.1:{blocker.getsockname()[1]}",
                   settings="timeouts: { upstream_connect: 500ms, upstream_response: 5s }\n")
t0 = time.time()
st, _, _ = request(proxy_slow.port, "GET", "/x")
el = time.time() - t0
t.ok(st in (504,), "an upstream that never accepts: 504", st)
t.ok(el < 3 * SLOW, "the 504 comes at upstream_connect", el)


# Upstreams that speak broken HTTP: 502, and the bad connection is not reused.
def bad_upstream(answers):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    conns = []

    def run():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            conns.append(c)
            try:
                c.settimeout(5)
                c.recv(65536)
                path_answer = answers[min(len(conns) - 1, len(answers) - 1)]
                c.sendall(path_answer)
                time.sleep(0.3)
                c.close()
            except OSError:
                pass

    threading.Thread(target=run, daemon=True).start()
    return srv, conns


cases = [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
     "both Content-Length and Transfer-Encoding"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
     "differing Content-Length"),
    (b"FOO 200 OK\r\n\r\n", "a garbage status line"),
    (b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n", "a header line without a colon"),
    (b"HTTP/1.1 200 OK\r\nX: a\nY: b\r\n\r\n", "a bare LF line end"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "an unknown transfer coding"),
]
for answer, what in cases:
    srv, conns = bad_upstream([answer])
    p = Proxy(f"http://127.0.0.1:{srv.getsockname()[1]}")
    st, _, _ = request(p.port, "GET", "/x")
    t.eq(st, 502, f"upstream response with {what}: 502")
    p.stop()
    srv.close()

# Bad chunk framing after the head went out: the client connection is aborted.
srv, conns = bad_upstream([b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                           b"5\r\nhello\r\n0x5\r\nworld\r\n0\r\n\r\n"])
p = Proxy(f"http://127.0.0.1:{srv.getsockname()[1]}")
s = connect(p.port)
s.sendall(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
data, closed = recv_all(s, 5)
s.close()
t.ok(closed and not data.endswith(b"0\r\n\r\n"),
     "an invalid chunk size from upstream aborts the client, no false end", data)
p.stop()
srv.close()

# A keep-alive upstream connection that the backend closed while idle is replaced, not failed.
srv, conns = bad_upstream([b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"])
p = Proxy(f"http://127.0.0.1:{srv.getsockname()[1]}")
results = []
for i in range(3):
    st, _, b = request(p.port, "GET", "/x")
    results.append((st, b))
    time.sleep(0.5)  # the backend closes each connection 0.3 s after answering
t.eq(results, [(200, b"ok")] * 3, "a pooled connection closed by the backend is not used again")
p.stop()
srv.close()

out = proxy.output()
t.ok('"status":504' in out and '"status":502' in out, "access log records the 502s and 504s")
t.ok("while forwarding GET /api/orders/1" in out, "error log says what the proxy was doing",
     out[-2000:])
t.eq(proxy.stop(), 0, "strangler exits 0")
for p in (proxy, proxy_dead, proxy_slow):
    t.ok(p.sanitizer_report() is None, "no sanitizer report", p.sanitizer_report())
