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


# Upstreams that speak broken HTTP (DESIGN §8: 502, that connection closed, never reused).
class FakeUpstream:
    """A raw HTTP/1.1 upstream: answers each request (heads only, no bodies) with the bytes
    answers[path] names (default: a valid 200 "ok"), on connections it keeps open, and records
    per accepted connection the paths it served and whether the proxy closed it. With
    idle_close, it closes a connection itself after that many idle seconds."""

    OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    def __init__(self, idle_close=None):
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(64)
        self.port = self.srv.getsockname()[1]
        self.answers = {}
        self.conns = []  # {"paths": [...], "closed_by_peer": Event}, in accept order
        self.lock = threading.Lock()
        self.idle_close = idle_close
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            rec = {"paths": [], "closed_by_peer": threading.Event()}
            with self.lock:
                self.conns.append(rec)
            threading.Thread(target=self._serve, args=(c, rec), daemon=True).start()

    def _serve(self, c, rec):
        buf = b""
        try:
            while True:
                c.settimeout(self.idle_close or 60)
                while b"\r\n\r\n" not in buf:
                    try:
                        more = c.recv(65536)
                    except socket.timeout:
                        return  # idle: we close it ourselves
                    if not more:
                        rec["closed_by_peer"].set()
                        return
                    buf += more
                head, _, buf = buf.partition(b"\r\n\r\n")
                path = head.split(b" ")[1].decode()
                rec["paths"].append(path)
                answer = self.answers.get(path, self.OK)
                # a tuple: parts sent 200 ms apart (the proxy relays the first before the next)
                for k, part in enumerate(answer if isinstance(answer, tuple) else (answer,)):
                    if k:
                        time.sleep(0.2)
                    c.sendall(part)
        except OSError:
            rec["closed_by_peer"].set()  # reset by the proxy, or it closed before reading all
        finally:
            c.close()

    def conn_of(self, path):
        with self.lock:
            for i, rec in enumerate(self.conns):
                if path in rec["paths"]:
                    return i, rec
        return None, None

    def close(self):
        self.srv.close()


up = FakeUpstream()
pf = Proxy(f"http://127.0.0.1:{up.port}",
           settings="timeouts: { upstream_connect: 1s, upstream_response: 3s }\n")


def fetch(path):
    """GET path through the proxy on a fresh client connection (Connection: close)."""
    s = connect(pf.port)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".encode())
    data, closed = recv_all(s, 8)
    s.close()
    return data, closed


OK_200 = (200, b"ok")
REUSED, FRESH = "reused", "fresh"
cases = [
    # (name, answer, client outcome, upstream connection afterwards)
    # framing in the head: nothing went to the client yet, so 502
    ("Content-Length and Transfer-Encoding",
     b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
     502, FRESH),
    ("Transfer-Encoding and Content-Length",
     b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
     502, FRESH),
    ("two differing Content-Length headers",
     b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!", 502, FRESH),
    ("a Content-Length list of differing values",
     b"HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\nok!", 502, FRESH),
    ("a non-numeric Content-Length", b"HTTP/1.1 200 OK\r\nContent-Length: two\r\n\r\nok", 502,
     FRESH),
    ("a negative Content-Length", b"HTTP/1.1 200 OK\r\nContent-Length: -2\r\n\r\nok", 502, FRESH),
    ("an empty Content-Length", b"HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\nok", 502, FRESH),
    ("Content-Length with a plus sign", b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok", 502,
     FRESH),
    ("Transfer-Encoding gzip", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nok", 502,
     FRESH),
    ("Transfer-Encoding chunked, chunked",
     b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", 502, FRESH),
    ("two Transfer-Encoding headers",
     b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"0\r\n\r\n", 502, FRESH),
    ("Transfer-Encoding on an HTTP/1.0 response",
     b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", 502, FRESH),
    ("Transfer_Encoding (framing header in disguise)",
     b"HTTP/1.1 200 OK\r\nTransfer_Encoding: chunked\r\nContent-Length: 2\r\n\r\nok", 502, FRESH),
    # syntax of the head
    ("a bare LF ending the status line", b"HTTP/1.1 200 OK\nContent-Length: 2\r\n\r\nok", 502,
     FRESH),
    ("a bare LF ending a header line", b"HTTP/1.1 200 OK\r\nX: a\nContent-Length: 2\r\n\r\nok",
     502, FRESH),
    ("a bare CR inside a header line",
     b"HTTP/1.1 200 OK\r\nX: a\rContent-Length: 2\r\n\r\nok", 502, FRESH),
    ("obs-fold", b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 2\r\n\r\nok", 502, FRESH),
    ("NUL in a header value", b"HTTP/1.1 200 OK\r\nX: a\x00b\r\nContent-Length: 2\r\n\r\nok",
     502, FRESH),
    ("a control byte in a header value",
     b"HTTP/1.1 200 OK\r\nX: a\x01b\r\nContent-Length: 2\r\n\r\nok", 502, FRESH),
    ("a header line without a colon",
     b"HTTP/1.1 200 OK\r\nBad Header\r\nContent-Length: 2\r\n\r\nok", 502, FRESH),
    ("a space before a colon", b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok", 502, FRESH),
    ("a non-token header name", b"HTTP/1.1 200 OK\r\nX(y): a\r\nContent-Length: 2\r\n\r\nok",
     502, FRESH),
    ("a garbage status line", b"FOO 200 OK\r\nContent-Length: 2\r\n\r\nok", 502, FRESH),
    ("version HTTP/2.0", b"HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\nok", 502, FRESH),
    ("version HTTP/1.2", b"HTTP/1.2 200 OK\r\nContent-Length: 2\r\n\r\nok", 502, FRESH),
    ("lowercase http/1.1", b"http/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 502, FRESH),
    ("two spaces before the status", b"HTTP/1.1  200 OK\r\nContent-Length: 2\r\n\r\nok", 502,
     FRESH),
    ("status 099 (under 100)", b"HTTP/1.1 099 Low\r\nContent-Length: 2\r\n\r\nok", 502, FRESH),
    ("status 600 (over 599)", b"HTTP/1.1 600 High\r\nContent-Length: 2\r\n\r\nok", 502, FRESH),
    ("a four-digit status", b"HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok", 502, FRESH),
    ("a two-digit status", b"HTTP/1.1 20 OK\r\nContent-Length: 2\r\n\r\nok", 502, FRESH),
    ("a control byte in the reason", b"HTTP/1.1 200 O\x01K\r\nContent-Length: 2\r\n\r\nok", 502,
     FRESH),
    ("a head over RESP_HEAD_MAX (64 KiB)",
     b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: %s\r\n" % (i, b"v" * 1000) for i in range(70)) +
     b"Content-Length: 2\r\n\r\nok", 502, FRESH),
    ("an unsolicited 101", b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
     b"Connection: upgrade\r\n\r\n", 502, FRESH),
    ("a 100 Continue then a broken final head",
     b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3"
     b"\r\n\r\nok!", 502, FRESH),
    # framing in the body, arriving with the head: nothing went to the client yet, so 502
    ("an invalid chunk size after a good chunk",
     b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0x5\r\nworld\r\n"
     b"0\r\n\r\n", 502, FRESH),
    ("chunk data longer than declared, then garbage",
     b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n", 502,
     FRESH),
    ("chunk data shorter than declared, then garbage",
     b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nhello\r\n0\r\n\r\nGARBAGE",
     502, FRESH),
    ("a bare LF after a chunk size",
     b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n", 502,
     FRESH),
    ("a chunk size overflowing 64 bits",
     b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000002\r\nok\r\n0\r\n\r\n",
     502, FRESH),
    ("a trailer line without a colon",
     b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nBad Trailer\r\n\r\n",
     502, FRESH),
    # framing in the body after the head went out: the client connection is aborted (no false
    # end of the body)
    ("an invalid chunk size after a good chunk, sent later",
     (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
      b"0x5\r\nworld\r\n0\r\n\r\n"), "abort", FRESH),
    ("chunk data longer than declared, sent later",
     (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", b"3\r\nhello\r\n0\r\n\r\n"),
     "abort", FRESH),
    ("a trailer line without a colon, sent later",
     (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n",
      b"0\r\nBad Trailer\r\n\r\n"), "abort", FRESH),
    ("17 interim responses (an upstream stalling the response timer)",
     b"HTTP/1.1 102 Processing\r\n\r\n" * 17 + b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
     502, FRESH),
    # valid responses: relayed, and the connection kept only when its framing is sound
    ("a valid response (control: the connection is reused)", FakeUpstream.OK, OK_200, REUSED),
    ("100 Continue before the response (interim, not relayed)",
     b"HTTP/1.1 100 Continue\r\n\r\n" + FakeUpstream.OK, OK_200, REUSED),
    ("103 Early Hints with headers, then a 102, then the response",
     b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\nHTTP/1.1 102 Processing"
     b"\r\n\r\n" + FakeUpstream.OK, OK_200, REUSED),
    ("a Content-Length list of identical values (2, 2)",
     b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok", OK_200, REUSED),
    ("a chunked response with extensions and trailers",
     b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;a=b\r\no\r\n1\r\nk\r\n0\r\n"
     b"X-Sum: 1\r\n\r\n", OK_200, REUSED),
    ("bytes past the end of a Content-Length body (relayed cut, never reused)",
     b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
     b"\r\nextra", OK_200, FRESH),
]

wait_s = 5 * SLOW
for i, (name, answer, want, after) in enumerate(cases, 1):
    path = f"/case{i}"
    up.answers[path] = answer
    data, closed = fetch(path)
    resps, rest = parse_responses(data)
    problems = []
    if want == 502:
        if [r[0] for r in resps] != [502]:
            problems.append(f"want one 502, got {[r[0] for r in resps]} + {rest[:80]!r}")
    elif want == "abort":
        if resps or not rest.startswith(b"HTTP/1.1 200 "):
            problems.append(f"want the 200 head then a cut body, got {resps} + {rest[:80]!r}")
        if not closed:
            problems.append("the client connection was not closed")
    else:
        if [(r[0], r[2]) for r in resps] != [want] or rest:
            problems.append(f"want {want}, got {[(r[0], r[2]) for r in resps]} + {rest[:80]!r}")
    idx, rec = up.conn_of(path)
    if rec is None:
        problems.append("the request never reached the upstream")
    else:
        n_before = len(up.conns)
        if after == FRESH:
            if not rec["closed_by_peer"].wait(wait_s):
                problems.append(f"the upstream connection was not closed within {wait_s}s")
        nxt = f"/next{i}"
        nd, _ = fetch(nxt)
        nresps, _ = parse_responses(nd)
        nidx, _ = up.conn_of(nxt)
        if [(r[0], r[2]) for r in nresps] != [OK_200]:
            problems.append(f"the next request got {nresps}")
        if after == FRESH and (nidx is None or nidx < n_before):
            problems.append(f"the next request went over connection {nidx}, not a fresh one")
        if after == REUSED and nidx != idx:
            problems.append(f"the next request went over connection {nidx}, not the kept {idx}")
        tail = [path, nxt] if after == REUSED else [path]
        if rec["paths"][-len(tail):] != tail:
            problems.append(f"that connection carried {rec['paths']}, want it to end {tail}")
    if want == 502:
        outcome = "502"
    elif want == "abort":
        outcome = "client aborted, no false end"
    else:
        outcome = f"{want[0]} relayed"
    t.ok(not problems, f"upstream response with {name}: {outcome}, connection " +
         ("closed and not reused" if after == FRESH else "kept and reused"),
         "\n".join(problems + [f"client got {data[:300]!r}"]))
pf.stop()
t.ok(pf.sanitizer_report() is None, "no sanitizer report (broken upstreams)",
     pf.sanitizer_report())
up.close()

# A keep-alive upstream connection that the backend closed while idle is replaced, not failed.
up_idle = FakeUpstream(idle_close=0.3)
p = Proxy(f"http://127.0.0.1:{up_idle.port}")
results = []
for i in range(3):
    st, _, b = request(p.port, "GET", "/x")
    results.append((st, b))
    time.sleep(0.5)  # the backend closes each connection 0.3 s after answering
t.eq(results, [(200, b"ok")] * 3, "a pooled connection closed by the backend is not used again")
t.eq(len(up_idle.conns), 3, "each request after an idle close went over a new connection")
p.stop()
up_idle.close()

out = proxy.output()
t.ok('"status":504' in out and '"status":502' in out, "access log records the 502s and 504s")
t.ok("while forwarding GET /api/orders/1" in out, "error log says what the proxy was doing",
     out[-2000:])
t.eq(proxy.stop(), 0, "strangler exits 0")
for p in (proxy, proxy_dead, proxy_slow):
    t.ok(p.sanitizer_report() is None, "no sanitizer report", p.sanitizer_report())
