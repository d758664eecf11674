#!/usr/bin/env python3
# Shadow edge cases found in review: a function that answers a shadowed write before it has
# the whole body must not leave a half-sent request on a pooled connection that real traffic
# then uses; a client that leaves mid-body, or a legacy that answers before the body is whole,
# ends its shadow at once (skipped, its in-flight slot freed) instead of letting it wait for
# the function.
import json
import os
import socket
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F403

t = Tap()
events = []  # (time, who, request line) in arrival order, over all the servers below
lock = threading.Lock()


def raw_server(who, answer_before_body):
    """A tiny HTTP/1.1 server: records each request line, answers 200 (before reading the body
    when answer_before_body, as an auth check or a 413 would), keeps the connection."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)

    def serve(c):
        f = c.makefile("rb")
        try:
            while True:
                line = f.readline()
                if not line:
                    return
                hdrs = {}
                while True:
                    h = f.readline()
                    if h in (b"\r\n", b""):
                        break
                    k, v = h.decode("latin-1").split(":", 1)
                    hdrs[k.strip().lower()] = v.strip()
                with lock:
                    events.append((time.monotonic(), who, line.strip().decode("latin-1")))
                ok = len(line.split()) == 3 and line.split()[2].startswith(b"HTTP/1.")
                body = b'{"ok": true}' if ok else b"bad"
                status = b"200 OK" if ok else b"400 Bad Request"
                resp = (b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n"
                        b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
                n = int(hdrs.get("content-length", "0"))
                if answer_before_body:
                    c.sendall(resp)
                    if n:
                        f.read(n)
                else:
                    if n:
                        f.read(n)
                    c.sendall(resp)
                if not ok:
                    return
        except OSError:
            pass
        finally:
            c.close()

    def accept():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(c,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return srv


early_fn = raw_server("function", answer_before_body=True)
early_legacy = raw_server("legacy", answer_before_body=True)
fn = start_functions()
routes = f"""
functions:
  early: http://127.0.0.1:{early_fn.getsockname()[1]}
  fn:
    url: http://127.0.0.1:{fn.port}
    timeout: 4s
  lingering:
    url: http://127.0.0.1:{fn.port}
    timeout: 5s
    headers: {{ x-stub-delay-ms: "2000" }}
routes:
  - name: up
    match: {{ path: /up }}
    function: early
    cutover: 0
    shadow: {{ methods: [POST], compare: {{ body: none }} }}
  - name: direct
    match: {{ path: /direct }}
    function: early
    cutover: 100
  - name: w
    match: {{ path: /w }}
    function: fn
    cutover: 0
    shadow: {{ methods: [GET, POST], max_inflight: 1, compare: {{ body: none }} }}
  - name: g
    match: {{ path: /g }}
    function: lingering
    cutover: 0
    shadow: {{ compare: {{ body: none }} }}
"""
proxy = Proxy(f"http://127.0.0.1:{early_legacy.getsockname()[1]}", routes_yaml=routes,
              settings="shadow: { max_inflight: 2 }\n")
P, A = proxy.port, proxy.admin_port


def shadow_of(route):
    with urllib.request.urlopen(f"http://127.0.0.1:{A}/stats", timeout=10 * SLOW) as r:
        return {x["name"]: x for x in json.loads(r.read())["routes"]}[route]["shadow"]


# ---- a function answering before the whole body ----
s = connect(P)
s.sendall(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n"
          b"\r\n" + b"a" * 10)
time.sleep(0.5 * SLOW)
s.sendall(b"b" * 90)
st, _, _ = read_response(s)
s.close()
t.eq(st, 200, "the client's POST is answered")
time.sleep(0.2 * SLOW)
statuses = [request(P, "GET", "/direct")[0] for _ in range(3)]
t.eq(statuses, [200] * 3,
     "real requests to that function afterwards are whole: no half-sent shadow body on a "
     "pooled connection")
with lock:
    lines = [e[2] for e in events if e[1] == "function"]
t.ok(all(x.startswith(("POST /up ", "GET /direct ")) for x in lines),
     "the function saw only whole request lines", lines)

# ---- legacy answers before the body is whole: the shadow is skipped at once ----
s = connect(P)
s.sendall(b"POST /w HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"a" * 10)
st, _, _ = read_response(s)
s.close()
time.sleep(0.3 * SLOW)
sh = shadow_of("w")
t.ok(st == 200 and sh["skipped_by"]["primary_failed"] == 1 and sh["error"] == 0,
     "legacy answered before the body was whole: skipped, not a timeout later", sh)

# ---- a client gone mid-body frees its shadow's slot at once ----
s = connect(P)
s.sendall(b"POST /w HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"a" * 10)
time.sleep(0.3 * SLOW)
s.close()
time.sleep(0.3 * SLOW)
st, _, _ = request(P, "GET", "/w")
time.sleep(0.3 * SLOW)
sh = shadow_of("w")
t.ok(st == 200 and sh["skipped_by"]["over_capacity"] == 0 and sh["skipped_by"]["primary_failed"] == 2,
     "with max_inflight 1, the next request is shadowed: the gone client's slot was freed", sh)

# ---- the global cap: shadow.max_inflight 2, the route's own cap (64) never reached ----
for _ in range(5):
    request(P, "GET", "/g")
sh = shadow_of("g")
t.eq(sh["skipped_by"]["over_capacity"], 3,
     "with 2 shadows in flight server-wide, the next 3 are skipped over capacity")

proxy.stop()
t.ok(proxy.sanitizer_report() is None, "no sanitizer report", proxy.sanitizer_report())
early_fn.close()
early_legacy.close()
