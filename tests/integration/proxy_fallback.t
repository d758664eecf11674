#!/usr/bin/env python3
# Fallback (DESIGN §5 step 5): a GET/HEAD/OPTIONS/PUT/DELETE that the function fails (connect
# error, timeout, 502/503/504) before any byte reached the client is served by legacy when the
# route says fallback: true; other methods, and routes without fallback, get the failure.
import hashlib
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F403

t = Tap()
legacy = start_legacy()
fn = start_functions()
F = f"http://127.0.0.1:{fn.port}"
dead = free_port()  # nothing listens there
alog = tempfile.mktemp(prefix="sf-access-", suffix=".log")

# The failures are made by headers only the function gets (the stand-ins' fault knobs).
routes = f"""
functions:
  dead: http://127.0.0.1:{dead}
  ok: {F}
  unavailable:
    url: {F}
    headers: {{ x-stub-status: "503" }}
  bad-gateway:
    url: {F}
    headers: {{ x-stub-status: "502" }}
  broken:
    url: {F}
    headers: {{ x-stub-status: "500" }}
  slow:
    url: {F}
    timeout: 300ms
    headers: {{ x-stub-delay-ms: "3000" }}
  resetting:
    url: {F}
    headers: {{ x-stub-reset: before }}
  cut-mid:
    url: {F}
    headers: {{ x-stub-reset: mid }}
routes:
  - {{ name: fb-dead, match: {{ path: /__echo/dead }}, function: dead, cutover: 100, fallback: true }}
  - {{ name: nofb-dead, match: {{ path: /__echo/nofb }}, function: dead, cutover: 100 }}
  - {{ name: fb-503, match: {{ path: /__echo/u503 }}, function: unavailable, cutover: 100, fallback: true }}
  - {{ name: fb-502, match: {{ path: /__echo/u502 }}, function: bad-gateway, cutover: 100, fallback: true }}
  - {{ name: fb-500, match: {{ path: /__echo/u500 }}, function: broken, cutover: 100, fallback: true }}
  - {{ name: fb-slow, match: {{ path: /__echo/slow }}, function: slow, cutover: 100, fallback: true }}
  - {{ name: nofb-slow, match: {{ path: /__echo/nofbslow }}, function: slow, cutover: 100 }}
  - {{ name: fb-reset, match: {{ path: /__echo/reset }}, function: resetting, cutover: 100, fallback: true }}
  - {{ name: fb-mid, match: {{ path: /__bytes }}, function: cut-mid, cutover: 100, fallback: true }}
  - {{ name: fine, match: {{ path: /__echo/fine }}, function: ok, cutover: 100, fallback: true }}
"""
proxy = Proxy(f"http://127.0.0.1:{legacy.port}", routes_yaml=routes, access=alog)
P = proxy.port
FN_HOST = f"127.0.0.1:{fn.port}"


def who(js):
    h = echoed_headers(js).get("host", [""])[0]
    return "function" if h == FN_HOST else "legacy"


# Connect refused.
for m in ["GET", "HEAD", "OPTIONS", "DELETE"]:
    st, hd, body = request(P, m, "/__echo/dead")
    t.eq(st, 200, f"{m} to a dead function with fallback is served by legacy (200)")
st, js = echo(P, "GET", "/__echo/dead?x=1", headers={"X-Request-Id": "fb-get"})
t.eq((st, who(js), js.get("path")), (200, "legacy", "/__echo/dead?x=1"),
     "the fallback request reaches legacy with the client's Host, path and query")
st, js = echo(P, "POST", "/__echo/dead", body=b"payload")
t.eq(st, 502, "POST to a dead function gets 502 even with fallback (not idempotent)")
body = os.urandom(300000)
st, js = echo(P, "PUT", "/__echo/dead", body=body, headers={"X-Request-Id": "fb-put"})
t.eq((st, js.get("body_length"), js.get("body_sha256")),
     (200, len(body), hashlib.sha256(body).hexdigest()),
     "PUT with a 300 KB body falls back to legacy with the body intact")
big = os.urandom(1200 * 1024)
st, js = echo(P, "PUT", "/__echo/dead", body=big)
t.eq((st, js.get("body_length")), (200, len(big)),
     "a connect refused at once falls back before any body byte went out: any size streams")
st, _, _ = request(P, "GET", "/__echo/nofb")
t.eq(st, 502, "GET to a dead function without fallback is 502")

# The function answers 503 / 502: legacy serves it; 500 is the function's answer.
st, js = echo(P, "GET", "/__echo/u503", headers={"X-Request-Id": "fb-503"})
t.eq((st, who(js)), (200, "legacy"), "function 503: served by legacy")
t.ok("x-stub-status" not in echoed_headers(js), "legacy does not get the function's headers")
st, js = echo(P, "GET", "/__echo/u502")
t.eq((st, who(js)), (200, "legacy"), "function 502: served by legacy")
st, _, _ = request(P, "POST", "/__echo/u503", body=b"x")
t.eq(st, 503, "POST: the function's 503 is relayed (no fallback for writes)")
st, _, _ = request(P, "PUT", "/__echo/u503", body=big)
t.eq(st, 503, "PUT over the 1 MiB fallback buffer, already sent to the function: its 503 is "
     "the answer")
st, js = echo(P, "PUT", "/__echo/u503", body=body)
t.eq((st, who(js), js.get("body_sha256")), (200, "legacy", hashlib.sha256(body).hexdigest()),
     "PUT with 300 KB already sent to a function that answers 503: legacy gets the kept body")
st, js = echo(P, "GET", "/__echo/u500")
t.eq((st, who(js)), (500, "function"), "function 500 is not a fallback case: relayed")

# Timeout (the function's own 300ms, not the global 30s).
t0 = time.monotonic()
st, js = echo(P, "GET", "/__echo/slow", headers={"X-Request-Id": "fb-slow"})
dt = time.monotonic() - t0
t.eq((st, who(js)), (200, "legacy"), "function past its timeout: served by legacy")
t.ok(dt < 2.5 * SLOW, f"the fallback came after the function's 300ms timeout ({dt:.2f}s)")
t0 = time.monotonic()
st, _, _ = request(P, "GET", "/__echo/nofbslow")
dt = time.monotonic() - t0
t.eq(st, 504, "function past its timeout without fallback: 504")
t.ok(dt < 2.5 * SLOW, f"the 504 came after the function's timeout ({dt:.2f}s)")

# Reset before any response byte: fallback.
st, js = echo(P, "GET", "/__echo/reset")
t.eq((st, who(js)), (200, "legacy"), "function resets before answering: served by legacy")

# Bytes already reached the client: no fallback, the client connection is aborted.
s = connect(P)
s.sendall(b"GET /__bytes?size=200000 HTTP/1.1\r\nHost: x\r\n\r\n")
data, closed = recv_all(s, 5)
s.close()
t.ok(closed and data.startswith(b"HTTP/1.1 200") and len(data) < 200000,
     "a function failing mid-body is not retried: the client connection is cut", len(data))

# A healthy function is untouched by the fallback machinery.
st, js = echo(P, "GET", "/__echo/fine")
t.eq((st, who(js)), (200, "function"), "a working function serves its route")
st, js = echo(P, "PUT", "/__echo/fine", body=b"z" * 5000)
t.eq((st, who(js), js.get("body_length")), (200, "function", 5000),
     "a PUT with a body to a working function on a fallback route arrives whole")

# Fallbacks are counted in the access log.
proxy.send_signal(signal.SIGUSR1)
time.sleep(0.6 * SLOW)
entries = {}
with open(alog) as f:
    for line in f:
        e = json.loads(line)
        entries[e["request_id"]] = e
for rid, route in [("fb-get", "fb-dead"), ("fb-put", "fb-dead"), ("fb-503", "fb-503"),
                   ("fb-slow", "fb-slow")]:
    e = entries.get(rid, {})
    t.eq((e.get("route"), e.get("backend"), e.get("fallback")), (route, "legacy", True),
         f"access log: {rid} on route {route} served by legacy as a fallback")
out = proxy.output()
t.ok("serving it from legacy (fallback)" in out and "function dead" in out,
     "the error log says which function failed and that legacy served it")

t.eq(proxy.stop(), 0, "the proxy exits 0 on SIGTERM")
t.ok(proxy.sanitizer_report() is None, "no sanitizer report", proxy.sanitizer_report())
