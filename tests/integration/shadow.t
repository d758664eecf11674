#!/usr/bin/env python3
# Shadow traffic (DESIGN §5 steps 6-7, issue 6): requests legacy serves are copied to the
# function and the answers compared; the client's response never waits for the shadow. Checks
# matches across key order, ignore, a real difference named by path, learned noise, methods,
# body limits, caps, slow and dead shadow targets, X-Strangler-Shadow, the access log.
import hashlib
import http.server
import json
import os
import sys
import subprocess
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F403

t = Tap()
legacy = start_legacy()
fn = start_functions()
F = f"http://127.0.0.1:{fn.port}"
dead = free_port()
alog = tempfile.mktemp(prefix="sf-access-", suffix=".log")


# A function that records what it received and answers {"ok": true}.
class Capture(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen = []

    def answer(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        Capture.seen.append((self.command, self.path, dict(self.headers), body))
        out = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = answer

    def log_message(self, *a):
        pass


cap = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Capture)
cap.handle_error = lambda *a: None  # an abandoned shadow resets its connection: expected
threading.Thread(target=cap.serve_forever, daemon=True).start()
C = f"http://127.0.0.1:{cap.server_address[1]}"

IGNORE = "ignore: [/generated_at, /request_id]"
routes = f"""
functions:
  fn: {F}
  capture: {C}
  dead: http://127.0.0.1:{dead}
  slow:
    url: {F}
    timeout: 300ms
    headers: {{ x-stub-delay-ms: "1000" }}
  lingering:
    url: {F}
    timeout: 5s
    headers: {{ x-stub-delay-ms: "2000" }}
routes:
  # /__echo's "peer" (the proxy's port towards the stand-in) differs from one connection to
  # the next: random in the monolith's own answers, it is learned as noise
  - name: learn
    match: {{ path: /__echo/learn }}
    function: fn
    cutover: 0
    shadow: {{ learn_noise: true, compare: {{ ignore: [/headers] }} }}
  - name: orders
    match: {{ path: /api/orders }}
    function: fn
    cutover: 0
    shadow: {{ percent: 100, compare: {{ {IGNORE} }} }}
  - name: catalog
    match: {{ path: /api/catalog }}
    function: fn
    cutover: 0
    shadow: {{ compare: {{ headers: [content-type], {IGNORE} }} }}
  - name: capture
    match: {{ path: /__echo/capture }}
    function: capture
    cutover: 0
    shadow: {{ methods: [GET, POST], compare: {{ body: none }} }}
  - name: slowshadow
    match: {{ path: /__echo/slow }}
    function: slow
    cutover: 0
    shadow: {{ compare: {{ body: none }} }}
  - name: deadshadow
    match: {{ path: /__echo/dead }}
    function: dead
    cutover: 0
    shadow: {{ compare: {{ body: none }} }}
  - name: capped
    match: {{ path: /__echo/capped }}
    function: lingering
    cutover: 0
    shadow: {{ max_inflight: 2, compare: {{ body: none }} }}
  - name: half
    match: {{ path: /__echo/half }}
    function: capture
    cutover: 0
    shadow: {{ percent: 50, compare: {{ body: none }} }}
  - name: big
    match: {{ path: /__bytes }}
    function: fn
    cutover: 0
    shadow: {{ compare: {{ body: bytes }} }}
  - name: plain
    match: {{ path: /__echo/plain }}
    function: fn
    cutover: 0
"""
proxy = Proxy(f"http://127.0.0.1:{legacy.port}", routes_yaml=routes, access=alog,
              settings="shadow: { max_inflight: 256, max_body_bytes: 1000, "
                       "compare_body_bytes: 65536 }\n")
P, A = proxy.port, proxy.admin_port


def stats():
    with urllib.request.urlopen(f"http://127.0.0.1:{A}/stats", timeout=10 * SLOW) as r:
        return {x["name"]: x for x in json.loads(r.read())["routes"]}


def shadow_of(route):
    return stats()[route]["shadow"]


def settle(route, want, timeout=10.0):
    """Waits until the route's compared + skipped + error shadows reach want (bounded)."""
    end = time.time() + timeout * SLOW
    while time.time() < end:
        sh = shadow_of(route)
        if sum(sh[k] for k in ("match", "mismatch", "noise", "skipped", "error")) >= want:
            return sh
        time.sleep(0.05)
    return shadow_of(route)


def get(path, headers=None):
    return request(P, "GET", path, headers=headers)


# ---- equal answers in another key order match ----
statuses = [get(f"/api/orders/{i}")[0] for i in range(1, 21)]
t.eq(set(statuses), {200}, "20 orders through legacy")
sh = settle("orders", 20)
t.eq((sh["match"], sh["mismatch"], sh["error"]), (20, 0, 0),
     "the function's JSON in another key order, generated_at and request_id ignored: 20 matches")
t.eq(stats()["orders"]["requests"], {"legacy": 20, "function": 0},
     "shadows are not requests: the client's were all legacy's")

# ---- a real difference is a mismatch naming the path ----
for sku in ("SKU-10015", "SKU-10016", "SKU-10020", "SKU-10021"):
    get(f"/api/catalog/{sku}")
sh = settle("catalog", 4)
t.eq((sh["match"], sh["mismatch"]), (2, 2), "SKUs divisible by 5 are priced differently: 2 mismatches")
with urllib.request.urlopen(f"http://127.0.0.1:{A}/routes/catalog/diffs", timeout=10) as r:
    diffs = json.loads(r.read())
t.eq(diffs.get("total"), 2, "two mismatches kept")
d0 = (diffs.get("diffs") or [{}])[0]
paths = [d["path"] for d in d0.get("differences", [])]
t.ok(d0.get("path") == "/api/catalog/SKU-10020" and paths == ["/price"],
     "the newest mismatch names the request and the differing path", d0)
dv = (d0.get("differences") or [{}])[0]
try:
    lv, fv = float(dv.get("legacy")), float(dv.get("function"))
    close = lv != fv and abs(lv - fv) < 0.011
except (TypeError, ValueError):
    close = False
t.ok(close, "with both values: the monolith's price and the function's, a cent apart", dv)
t.eq([p["path"] for p in diffs.get("top_paths", [])], ["/price"], "top differing paths")

# ---- noise learned from fields legacy itself changes ----
for i in range(1, 121):
    get(f"/__echo/learn?i={i}")
sh = settle("learn", 120)
t.ok(sh["noise"] > 0 and sh["match"] == 0 and sh["mismatch"] < 120,
     "peer differs in legacy's own answers: learned as noise", sh)
with urllib.request.urlopen(f"http://127.0.0.1:{A}/routes/learn/diffs", timeout=10) as r:
    noise = json.loads(r.read()).get("noise_paths", [])
t.ok("/peer" in noise, "the learned noise paths are listed", noise)
with urllib.request.urlopen(f"http://127.0.0.1:{A}/routes", timeout=10) as r:
    live = {x["name"]: x for x in json.loads(r.read())["routes"]}
t.ok("/peer" in live["learn"]["shadow"].get("noise_paths", []),
     "and shown in GET /routes", live["learn"]["shadow"])
before = shadow_of("learn")
for i in range(1, 11):
    get(f"/__echo/learn?i={i}")
after = settle("learn", sum(before[k] for k in before if k in
                            ("match", "mismatch", "noise", "skipped", "error")) + 10)
t.eq(after["mismatch"], before["mismatch"], "once learned, those fields are no mismatch")

# ---- bodies past compare_body_bytes are compared by their SHA-256 ----
for size in (1000, 3 * 1024 * 1024):
    st, _, data = get(f"/__bytes?size={size}")
    t.ok(st == 200 and len(data) == size, f"{size} bytes through legacy")
sh = settle("big", 2)
t.eq((sh["match"], sh["mismatch"]), (2, 0),
     "a small body compared by its bytes, a 3 MiB one (over compare_body_bytes) by its digest")

# ---- what the function gets ----
Capture.seen.clear()
st, _, _ = get("/__echo/capture?x=1", {"X-Strangler-Shadow": "spoofed"})
settle("capture", 1)
t.eq(st, 200, "the client gets legacy's answer")
seen = list(Capture.seen)
t.ok(len(seen) == 1 and seen[0][0] == "GET" and seen[0][1] == "/__echo/capture?x=1",
     "the function got the request once, same method, path and query", seen)
hdrs = {k.lower(): v for k, v in (seen[0][2].items() if seen else [])}
t.eq(hdrs.get("x-strangler-shadow"), "1", "marked X-Strangler-Shadow: 1 (the client's dropped)")
st, js = echo(P, path="/__echo/plain", headers={"X-Strangler-Shadow": "1"})
t.ok("x-strangler-shadow" not in echoed_headers(js), "a client cannot mark a request as a shadow")

body = os.urandom(700)
Capture.seen.clear()
st, _, _ = request(P, "POST", "/__echo/capture", body=body,
                   headers={"Content-Type": "application/octet-stream"})
sh = settle("capture", 2)
seen = list(Capture.seen)
t.ok(st == 200 and len(seen) == 1 and seen[0][3] == body,
     "a listed write is shadowed with its body, byte for byte", [(s[0], len(s[3])) for s in seen])
before = shadow_of("capture")["skipped_by"]["body_too_large"]
st, _, _ = request(P, "POST", "/__echo/capture", body=os.urandom(3000))
t.eq(st, 200, "a body over shadow.max_body_bytes still reaches legacy")
t.eq(shadow_of("capture")["skipped_by"]["body_too_large"], before + 1,
     "and is not shadowed: skipped body_too_large")

# a chunked body found too large while streaming
s = connect(P)
s.sendall(b"POST /__echo/capture HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
for _ in range(6):
    s.sendall(b"190\r\n" + b"a" * 400 + b"\r\n")
s.sendall(b"0\r\n\r\n")
st, _, _ = read_response(s)
s.close()
t.eq(st, 200, "a chunked body over the limit reaches legacy whole")
sh = settle("capture", 4)
t.eq(sh["skipped_by"]["body_too_large"], before + 2, "and its shadow is given up mid-stream")

# writes are not shadowed unless listed
for _ in range(3):
    request(P, "POST", "/api/orders", body=b"{}", headers={"Content-Type": "application/json"})
t.eq(shadow_of("orders")["skipped_by"]["method"], 3, "POST is not shadowed by default")

# ---- sampling ----
for _ in range(60):
    get("/__echo/half")
sh = settle("half", 60)
t.ok(10 <= sh["skipped_by"]["sampled_out"] <= 50 and sh["match"] + sh["skipped"] == 60,
     "percent 50: about half sampled out", sh)

# ---- a slow or dead shadow target changes nothing for the client ----
def timed(path, n=10):
    out = []
    for _ in range(n):
        t0 = time.time()
        st, _, _ = get(path)
        out.append((st, time.time() - t0))
    return out


base = timed("/__echo/plain")
slow = timed("/__echo/slow")
deadr = timed("/__echo/dead")
worst_base = max(d for _, d in base)
t.ok(all(st == 200 for st, _ in slow + deadr), "every client got 200")
t.ok(max(d for _, d in slow) < 0.25 * SLOW + worst_base,
     "a 1 s slow shadow target does not slow the client",
     [round(d, 3) for _, d in slow])
t.ok(max(d for _, d in deadr) < 0.25 * SLOW + worst_base,
     "a dead shadow target does not slow the client", [round(d, 3) for _, d in deadr])
sh = settle("slowshadow", 10)
t.eq(sh["errors_by"]["timeout"], 10, "the slow target's shadows time out (the function's timeout)")
sh = settle("deadshadow", 10)
t.eq(sh["errors_by"]["connect"], 10, "the dead target's: connect errors")

# ---- in-flight cap of the route ----
for _ in range(5):
    get("/__echo/capped")
sh = shadow_of("capped")
t.eq(sh["skipped_by"]["over_capacity"], 3, "max_inflight 2: the 3 others skipped over capacity")
r = subprocess.run([os.path.join(BIN, "strangler"), "stats", "-c", proxy.conf, "capped"],
                   capture_output=True, text=True, timeout=30)
t.ok(r.returncode == 0 and "  skipped: 3 over_capacity" in r.stdout,
     "strangler stats ROUTE shows why shadows were skipped", r.stdout + r.stderr)

# ---- the access log says what the shadow found ----
total = sum(r["requests"]["legacy"] + r["requests"]["function"] for r in stats().values())
proxy.stop()
t.ok(proxy.sanitizer_report() is None, "no sanitizer report", proxy.sanitizer_report())
lines = [json.loads(x) for x in open(alog) if x.strip()]
by_path = {}
for e in lines:
    if e["route"] != "learn":
        by_path.setdefault(e["path"], []).append(e["shadow"])
t.eq(by_path.get("/api/catalog/SKU-10020"), ["mismatch"], "access log: shadow mismatch")
t.eq(by_path.get("/api/orders/1"), ["match"], "access log: shadow match")
t.eq(by_path.get("/__echo/plain"), [None] * 11, "access log: null where nothing was shadowed")
t.eq(set(by_path.get("/__echo/slow", [])), {"error"}, "access log: shadow error")
slow_lines = [e for e in lines if e["path"] == "/__echo/slow"]
plain_after = [e for e in lines if e["path"] == "/__echo/dead"]
t.ok(slow_lines and plain_after and max(e["ts"] for e in slow_lines) <= min(e["ts"] for e in plain_after),
     "a shadowed request's line carries when the request ended, not when its shadow did",
     [e["ts"] for e in slow_lines[-2:]] + [e["ts"] for e in plain_after[:1]])
t.eq(len(lines), total, "one line per request, shadows still in flight at exit included")
cap.shutdown()
