#!/usr/bin/env python3
# Routing through the proxy: path prefixes on segment boundaries, regex, methods, header
# conditions, normalization, rewrites, a function URL's path prefix and headers, Host handling,
# the cutover split with and without sticky keys, and the route in the access log.
import http.client
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F403

t = Tap()
legacy = start_legacy()
fn = start_functions()
F = f"http://127.0.0.1:{fn.port}"
FN_HOST = f"127.0.0.1:{fn.port}"
alog = tempfile.mktemp(prefix="sf-access-", suffix=".log")

routes = f"""
functions:
  fn: {F}
  keyed:
    url: {F}/__echo/prefix
    timeout: 3s
    headers: {{ x-functions-key: "${{env:SF_TEST_FN_KEY}}", x-extra: fixed }}
routes:
  - name: orders
    match: {{ path: /api/orders }}
    function: fn
    cutover: 100
  - name: items
    match: {{ regex: '^/items/[0-9]+$' }}
    function: fn
    rewrite: {{ regex: '^/items/([0-9]+)$', to: '/__echo/item/$1' }}
    cutover: 100
  - name: writes
    match: {{ path: /__echo/m, methods: [POST, PUT] }}
    function: fn
    cutover: 100
  - name: beta
    match:
      path: /__echo/h
      headers: {{ x-tenant: '^beta-' }}
    function: fn
    cutover: 100
  - name: keyed
    match: {{ path: /k }}
    function: keyed
    cutover: 100
  - name: split
    match: {{ path: /__echo/split }}
    function: fn
    cutover: 30
  - name: sticky
    match: {{ path: /__echo/sticky }}
    function: fn
    cutover: 30
    sticky: header:x-user-id
  - name: cookie
    match: {{ path: /__echo/cookie }}
    function: fn
    cutover: 50
    sticky: cookie:uid
  - name: zero
    match: {{ path: /__echo/zero }}
    function: fn
    cutover: 0
"""
proxy = Proxy(f"http://127.0.0.1:{legacy.port}", routes_yaml=routes, access=alog,
              env={"SF_TEST_FN_KEY": "s3cret-key"})
P = proxy.port


def count(port):
    st, _, body = request(port, "GET", "/__count")
    return json.loads(body)["requests"]


def served(path, method="GET", headers=None, body=None):
    """(status, 'function' | 'legacy') from the stand-ins' request counters."""
    before = (count(fn.port), count(legacy.port))
    st, _, _ = request(P, method, path, headers, body)
    after = (count(fn.port), count(legacy.port))
    if after[0] == before[0] + 1 and after[1] == before[1]:
        return st, "function"
    if after[1] == before[1] + 1 and after[0] == before[0]:
        return st, "legacy"
    return st, f"unclear {before} -> {after}"


def who(js):
    """Which backend an /__echo answer came from: a function gets its own authority as Host."""
    h = echoed_headers(js).get("host", [""])[0]
    return "function" if h == FN_HOST else "legacy"


# Path prefixes on segment boundaries (DESIGN §4).
for path, want in [("/api/orders", "function"), ("/api/orders/7", "function"),
                   ("/api/orders?x=1", "function"), ("/api/orders/", "function"),
                   ("/api/ordersX", "legacy"), ("/api/order", "legacy"), ("/api", "legacy"),
                   ("/API/orders", "legacy")]:
    st, by = served(path)
    t.eq(by, want, f"GET {path} goes to {want}")

# Normalization before matching; the normalized path is what the upstream receives.
for path, want in [("/api/./orders/7", "function"), ("/api/%6Frders/7", "function"),
                   ("/x/../api/orders", "function"), ("/api/orders/../users/1", "legacy"),
                   ("/api%2Forders", "legacy"), ("/api/orders%2F7", "legacy")]:
    st, by = served(path)
    t.eq(by, want, f"GET {path} goes to {want} (matched on the normalized path)")
st, js = echo(P, path="/__echo/./a/b/../%7Euser%2fx?q=%2E")
t.eq(js.get("path"), "/__echo/a/~user%2Fx?q=%2E",
     "legacy receives the normalized path; the query is passed as it came")
for path in ["/../etc/passwd", "/a/../../b", "/a%zz", "/a%0", "/a%00b"]:
    st, _, _ = request(P, "GET", path)
    t.eq(st, 400, f"GET {path}: a path that cannot be normalized safely is 400")

# Regex on the normalized path, with a rewrite for the function; the query is kept.
st, js = echo(P, path="/items/42?q=1&r=2")
t.eq((st, who(js), js.get("path")), (200, "function", "/__echo/item/42?q=1&r=2"),
     "regex route: /items/42 rewritten to /__echo/item/42 for the function, query kept")
st, by = served("/items/abc")
t.eq((st, by), (404, "legacy"), "a path the regex does not match goes to legacy unchanged")

# Methods.
st, js = echo(P, "POST", "/__echo/m", body=b"x")
t.eq(who(js), "function", "POST matches a route limited to POST, PUT")
st, js = echo(P, "GET", "/__echo/m")
t.eq(who(js), "legacy", "GET does not match a route limited to POST, PUT")

# Header conditions: a regex on the value; a missing header does not match.
st, js = echo(P, path="/__echo/h", headers={"X-Tenant": "beta-7"})
t.eq(who(js), "function", "x-tenant: beta-7 matches '^beta-'")
st, js = echo(P, path="/__echo/h", headers={"X-Tenant": "alpha"})
t.eq(who(js), "legacy", "x-tenant: alpha does not match")
st, js = echo(P, path="/__echo/h")
t.eq(who(js), "legacy", "a request without x-tenant does not match")

# A function URL with a path prefixes it; Host is the function's authority, the client's host
# travels in X-Forwarded-Host; the function's headers are added and override the client's.
st, js = echo(P, path="/k/x?y=2", headers={"X-Functions-Key": "forged", "X-Other": "1"})
h = echoed_headers(js)
t.eq(js.get("path"), "/__echo/prefix/k/x?y=2", "the function URL's path prefixes the request path")
t.eq(h.get("host"), [FN_HOST], "a function gets its URL's authority as Host")
t.eq(h.get("x-forwarded-host"), [f"127.0.0.1:{P}"], "the client's Host is in X-Forwarded-Host")
t.eq(h.get("x-functions-key"), ["s3cret-key"],
     "the configured header (from ${env:}) replaces the client's")
t.eq(h.get("x-extra"), ["fixed"], "a second configured header is added")
t.eq(h.get("x-other"), ["1"], "other client headers pass")
st, js = echo(P, path="/__echo/plain")
t.eq(echoed_headers(js).get("host"), [f"127.0.0.1:{P}"], "legacy gets the client's Host unchanged")
t.ok("x-functions-key" not in echoed_headers(js), "legacy never gets a function's headers")

# Cutover without sticky: per-request random, on one keep-alive connection.
c = http.client.HTTPConnection("127.0.0.1", P, timeout=10 * SLOW)
N = 1000
to_fn = 0
for i in range(N):
    c.request("GET", f"/__echo/split?i={i}")
    r = c.getresponse()
    js = json.loads(r.read())
    to_fn += who(js) == "function"
share = to_fn / N
t.ok(0.22 <= share <= 0.38, f"cutover 30 without sticky: {share:.3f} of {N} went to the function")

# Sticky header: the documented hash decides, the same way every time and on every instance.
def bucket(name, key):
    h = 0xcbf29ce484222325
    for b in name.encode() + b"\0" + key.encode():
        h ^= b
        h = (h * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    h ^= h >> 30
    h = (h * 0xbf58476d1ce4e5b9) & 0xFFFFFFFFFFFFFFFF
    h ^= h >> 27
    h = (h * 0x94d049bb133111eb) & 0xFFFFFFFFFFFFFFFF
    h ^= h >> 31
    return h % 10000


wrong = []
seen = {}
for u in range(150):
    user = f"user-{u}"
    for rep in range(2):
        c.request("GET", "/__echo/sticky", headers={"X-User-Id": user})
        r = c.getresponse()
        by = who(json.loads(r.read()))
        seen.setdefault(user, set()).add(by)
        want = "function" if bucket("sticky", user) < 3000 else "legacy"
        if by != want:
            wrong.append((user, by, want))
t.eq(wrong, [], "sticky header: every user goes where bucket(route, key) < cutover*100 says")
t.ok(all(len(v) == 1 for v in seen.values()), "sticky header: each user always gets one backend")
fn_users = sum(1 for v in seen.values() if "function" in v)
t.ok(20 <= fn_users <= 70, f"sticky header: {fn_users} of 150 users on the function at 30%")

# Sticky cookie.
wrong = []
for u in range(60):
    c.request("GET", "/__echo/cookie", headers={"Cookie": f"a=1; uid=c{u}; z=2"})
    by = who(json.loads(c.getresponse().read()))
    want = "function" if bucket("cookie", f"c{u}") < 5000 else "legacy"
    if by != want:
        wrong.append((u, by, want))
t.eq(wrong, [], "sticky cookie: the uid cookie's value decides")

# No key: per-request random.
backs = set()
for i in range(60):
    c.request("GET", "/__echo/sticky")
    backs.add(who(json.loads(c.getresponse().read())))
t.eq(backs, {"function", "legacy"}, "without the sticky key, requests are split at random")

# cutover 0: nothing goes to the function.
backs = set()
for i in range(50):
    c.request("GET", "/__echo/zero")
    backs.add(who(json.loads(c.getresponse().read())))
t.eq(backs, {"legacy"}, "cutover 0 sends every request to legacy")
c.close()

# The access log names the route and the backend; unmatched traffic is _default.
request(P, "GET", "/api/orders/3", headers={"X-Request-Id": "route-log-1"})
request(P, "GET", "/__echo/none", headers={"X-Request-Id": "route-log-2"})
proxy.send_signal(signal.SIGUSR1)  # nothing to rotate; the batch is flushed within 200 ms
time.sleep(0.6 * SLOW)
lines = {}
with open(alog) as f:
    for line in f:
        e = json.loads(line)
        lines[e["request_id"]] = e
e1, e2 = lines.get("route-log-1", {}), lines.get("route-log-2", {})
t.eq((e1.get("route"), e1.get("backend")), ("orders", "function"),
     "access log: route orders, backend function")
t.eq((e2.get("route"), e2.get("backend")), ("_default", "legacy"),
     "access log: unmatched traffic is route _default on legacy")

t.eq(proxy.stop(), 0, "the proxy exits 0 on SIGTERM")
t.ok(proxy.sanitizer_report() is None, "no sanitizer report", proxy.sanitizer_report())
