#!/usr/bin/env python3
# Live reload of routes.yaml (DESIGN §4): an edit in place, a rename-over and a symlink swap are
# seen and applied; a broken edit keeps the running table and is reported with FILE:LINE:COL;
# SIGHUP and POST /reload; requests in flight finish on the table they started with; thousands
# of keep-alive requests across dozens of reloads all succeed.
import http.client
import json
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F403

t = Tap()
legacy = start_legacy()
fn = start_functions()
F = f"http://127.0.0.1:{fn.port}"
FN_HOST = f"127.0.0.1:{fn.port}"


def routes_text(cutover, extra=""):
    return (f"# the routes under test\n"
            f"functions:\n  fn: {F}\n"
            f"routes:\n"
            f"  - name: r   # the route that moves\n"
            f"    match: {{ path: /__echo/r }}\n"
            f"    function: fn\n"
            f"    cutover: {cutover}\n" + extra)


proxy = Proxy(f"http://127.0.0.1:{legacy.port}", routes_yaml=routes_text(0))
P, A = proxy.port, proxy.admin_port
LEGACY_LINE = f"legacy: http://127.0.0.1:{legacy.port}\n"


def who(path="/__echo/r", headers=None):
    st, js = echo(P, path=path, headers=headers)
    if st != 200:
        return f"status {st}"
    return "function" if echoed_headers(js).get("host", [""])[0] == FN_HOST else "legacy"


def wait_for(want, timeout=5.0):
    end = time.monotonic() + timeout * SLOW
    got = None
    while time.monotonic() < end:
        got = who()
        if got == want:
            return got
        time.sleep(0.05)
    return got


def write_in_place(text):
    with open(proxy.routes, "w") as f:
        f.write(LEGACY_LINE + text)


def write_rename(text):
    tmp = proxy.routes + ".tmp"
    with open(tmp, "w") as f:
        f.write(LEGACY_LINE + text)
    os.replace(tmp, proxy.routes)


def admin(method, path, body=None):
    st, hd, data = request(A, method, path, body=body,
                           headers={"Content-Type": "application/json"} if body else None)
    try:
        return st, hd, json.loads(data)
    except ValueError:
        return st, hd, data


t.eq(who(), "legacy", "cutover 0: the route is served by legacy")

# An edit in place (as `echo > file` or most editors' save) is seen by the watcher.
write_in_place(routes_text(100))
t.eq(wait_for("function"), "function", "an in-place edit to cutover 100 takes effect")
out = proxy.output()
t.ok("reload (file)" in out and "r: cutover 0% -> 100%" in out,
     "the reload is logged with what changed", out[-1500:])

# A rename over the file (vim, atomic writers).
write_rename(routes_text(0))
t.eq(wait_for("legacy"), "legacy", "a rename-over back to cutover 0 takes effect")

# A symlink swap (how Kubernetes ConfigMaps update): routes.yaml -> v2.yaml.
v2 = os.path.join(proxy.dir, "v2.yaml")
with open(v2, "w") as f:
    f.write(LEGACY_LINE + routes_text(100))
link_tmp = os.path.join(proxy.dir, "routes.yaml.new")
os.symlink("v2.yaml", link_tmp)
os.replace(link_tmp, proxy.routes)
t.eq(wait_for("function"), "function", "a symlink swap to a file at cutover 100 takes effect")
os.remove(proxy.routes)
write_in_place(routes_text(0))  # a plain file again
t.eq(wait_for("legacy"), "legacy", "replacing the symlink by a file at cutover 0 takes effect")

# A broken edit: the running table stays, the error is logged and kept for GET /routes.
write_in_place(routes_text(100).replace("cutover: 100", "cutover: 150"))
time.sleep(1.0 * SLOW)
t.eq(who(), "legacy", "a broken edit (cutover 150) keeps the running table")
st, _, js = admin("GET", "/routes")
lr = js.get("last_reload") or {}
t.ok(st == 200 and lr.get("ok") is False and "routes.yaml:9:14:" in (lr.get("error") or ""),
     "GET /routes shows the failed reload with FILE:LINE:COL", lr)
t.ok("cutover must be between 0 and 100" in proxy.output(), "the error is in the log")
st, _, js = admin("POST", "/reload")
t.ok(st == 422 and js.get("ok") is False and ":9:14:" in js.get("error", ""),
     "POST /reload of the broken file answers 422 with the error", js)

# SIGHUP after a fix (the watcher would do it too: both are fine).
write_in_place(routes_text(100))
proxy.send_signal(signal.SIGHUP)
t.eq(wait_for("function"), "function", "the fixed file is live (SIGHUP or the watcher)")
st, _, js = admin("GET", "/routes")
t.eq((js.get("last_reload") or {}).get("ok"), True, "GET /routes: the last reload succeeded")

# POST /reload; GET is not allowed.
write_in_place(routes_text(0, "  - name: extra\n    match: { path: /x }\n    function: fn\n"))
st, _, js = admin("POST", "/reload")
t.ok(st == 200 and js.get("ok") is True, "POST /reload answers 200 ok", js)
t.ok(any("route added: extra" in c for c in js.get("changes", [])) or who() == "legacy",
     "POST /reload lists what changed (or the watcher got there first)", js)
st, hd, _ = admin("GET", "/reload")
t.eq((st, hd.get("allow")), (405, "POST"), "GET /reload is 405 with Allow: POST")
t.eq(wait_for("legacy"), "legacy", "the table after POST /reload is live")

# A reload that does not touch a backend keeps its warm connections (same upstream peer).
write_in_place(routes_text(100))
admin("POST", "/reload")
c1 = http.client.HTTPConnection("127.0.0.1", P, timeout=10 * SLOW)
c1.request("GET", "/__echo/r")
peer1 = json.loads(c1.getresponse().read()).get("peer")
write_in_place(routes_text(100, "  - name: other\n    match: { path: /other }\n    function: fn\n"))
st, _, js = admin("POST", "/reload")
c1.request("GET", "/__echo/r")
peer2 = json.loads(c1.getresponse().read()).get("peer")
c1.close()
t.ok(st == 200 and peer1 is not None and peer1 == peer2,
     "after a reload that adds a route, the function's pooled connection is reused",
     (peer1, peer2))

# In flight: a slow request started on cutover 100 finishes on that table after a reload to 0.
write_in_place(routes_text(100))
wait_for("function")
result = {}


def slow():
    st, js = echo(P, path="/__echo/r", headers={"X-Stub-Delay-Ms": "1500"})
    result["r"] = (st, echoed_headers(js).get("host", [""])[0] if st == 200 else None)


th = threading.Thread(target=slow)
th.start()
time.sleep(0.4 * SLOW)
write_in_place(routes_text(0))
admin("POST", "/reload")
th.join(10 * SLOW)
t.eq(result.get("r"), (200, FN_HOST),
     "a request in flight during a reload finishes on the table it started with")
t.eq(who(), "legacy", "new requests use the new table")

# Load across reloads: keep-alive clients, dozens of reloads, zero failures.
stop = threading.Event()
failures = []
counts = [0]
lock = threading.Lock()


def client(k):
    c = http.client.HTTPConnection("127.0.0.1", P, timeout=10 * SLOW)
    n = 0
    while not stop.is_set() and n < 3000:
        try:
            c.request("GET", f"/__echo/r?k={k}&n={n}")
            r = c.getresponse()
            r.read()
            if r.status != 200:
                failures.append(r.status)
        except Exception as e:  # noqa: BLE001
            failures.append(repr(e))
            c.close()
            c = http.client.HTTPConnection("127.0.0.1", P, timeout=10 * SLOW)
        n += 1
    with lock:
        counts[0] += n
    c.close()


import http.client  # noqa: E402

threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
for th in threads:
    th.start()
reloads = 0
deadline = time.monotonic() + 20 * SLOW
while reloads < 30 and time.monotonic() < deadline:
    write_in_place(routes_text(100 if reloads % 2 == 0 else 0))
    st, _, js = admin("POST", "/reload")
    if st == 200:
        reloads += 1
    time.sleep(0.05)
stop.set()
for th in threads:
    th.join(30 * SLOW)
t.ok(reloads >= 30, f"{reloads} reloads under load")
t.eq(failures[:5], [], f"{counts[0]} keep-alive requests across {reloads} reloads: no failure")
t.ok(counts[0] >= 1000, f"the load was real ({counts[0]} requests)")

t.eq(proxy.stop(), 0, "the proxy exits 0 on SIGTERM")
t.ok(proxy.sanitizer_report() is None, "no sanitizer report", proxy.sanitizer_report())
