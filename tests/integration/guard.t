#!/usr/bin/env python3
# Guards (DESIGN §4 guard, issue 6): a breach of max_error_ratio, max_mismatch_ratio or
# max_p99_ratio over the window rolls the route back through the persisted path (routes.yaml
# edited in place, an audit entry with action guard and the evidence, a reload), counted in
# strangler_rollbacks_total{trigger="guard"}; dry_run logs and counts only.
import json
import os
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F403

t = Tap()
legacy = start_legacy()
fn = start_functions()
F = f"http://127.0.0.1:{fn.port}"

GUARD = "window: 5s, min_requests: 10"
routes = f"""
functions:
  fn: {F}
  broken:
    url: {F}
    headers: {{ x-stub-status: "500" }}
  sluggish:
    url: {F}
    headers: {{ x-stub-delay-ms: "150" }}
routes:
  # the guard rolls this one back: half its requests meet a function answering 500
  - name: risky
    match: {{ path: /__echo/risky }}
    function: broken
    cutover: 50          # raised by hand, guarded
    guard: {{ {GUARD}, max_error_ratio: 0.2 }}

  - name: watched
    match: {{ path: /__echo/watched }}
    function: broken
    cutover: 50
    guard: {{ {GUARD}, max_error_ratio: 0.2, dry_run: true }}
  - name: slow
    match: {{ path: /__echo/slow }}
    function: sluggish
    cutover: 50
    guard: {{ {GUARD}, max_p99_ratio: 3 }}
  - name: catalog
    match: {{ path: /api/catalog }}
    function: fn
    cutover: 1
    shadow: {{ compare: {{ ignore: [/generated_at, /request_id] }} }}
    guard: {{ {GUARD}, max_mismatch_ratio: 0.1 }}
  - name: healthy
    match: {{ path: /__echo/healthy }}
    function: fn
    cutover: 50
    guard: {{ {GUARD}, max_error_ratio: 0.2, max_p99_ratio: 50 }}
"""
proxy = Proxy(f"http://127.0.0.1:{legacy.port}", routes_yaml=routes,
              settings="audit_log: audit.log\n")
P, A = proxy.port, proxy.admin_port


def admin_json(path):
    with urllib.request.urlopen(f"http://127.0.0.1:{A}{path}", timeout=10 * SLOW) as r:
        return json.loads(r.read())


def metrics():
    with urllib.request.urlopen(f"http://127.0.0.1:{A}/metrics", timeout=10 * SLOW) as r:
        out = {}
        for line in r.read().decode().splitlines():
            if line and not line.startswith("#"):
                k, v = line.rsplit(" ", 1)
                out[k] = float(v)
        return out


def cutover_of(name):
    return {r["name"]: r["cutover"] for r in admin_json("/routes")["routes"]}[name]


def wait_for(cond, timeout=8.0):
    end = time.time() + timeout * SLOW
    while time.time() < end:
        if cond():
            return True
        time.sleep(0.1)
    return cond()


for _ in range(40):
    for path in ("/__echo/risky", "/__echo/watched", "/__echo/slow", "/__echo/healthy"):
        request(P, "GET", path)
for i in range(12):
    request(P, "GET", f"/api/catalog/SKU-1{i:03d}5")  # every one priced differently

t.ok(wait_for(lambda: cutover_of("risky") == 0), "the erroring route is rolled back",
     cutover_of("risky"))
with open(proxy.routes) as f:
    text = f.read()
t.ok("    cutover: 0          # raised by hand, guarded" in text,
     "routes.yaml edited in place: the value only, the comment kept")
hist = admin_json("/history?route=risky")
t.ok(len(hist) == 1 and hist[0]["action"] == "guard" and hist[0]["actor"] == "guard" and
     hist[0]["from"] == 50 and hist[0]["to"] == 0 and
     "error ratio" in (hist[0]["reason"] or "") and "over 5s, n=" in hist[0]["reason"],
     "the history says the guard did it, with the evidence", hist)
t.ok(wait_for(lambda: cutover_of("slow") == 0), "the slow function's route is rolled back")
hist = admin_json("/history?route=slow")
t.ok(hist and "p99 ratio" in (hist[-1]["reason"] or ""), "by its p99 ratio", hist)
t.ok(wait_for(lambda: cutover_of("catalog") == 0), "the mismatching route is rolled back")
hist = admin_json("/history?route=catalog")
t.ok(hist and "mismatch ratio" in (hist[-1]["reason"] or ""), "by its mismatch ratio", hist)

t.eq(cutover_of("watched"), 50, "a dry-run guard changes nothing")
t.eq(admin_json("/history?route=watched"), [], "and audits nothing")
t.eq(cutover_of("healthy"), 50, "a healthy route stays")

m = metrics()
t.eq(m.get('strangler_rollbacks_total{route="risky",trigger="guard"}'), 1,
     "strangler_rollbacks_total counts the guard's rollback")
t.ok(m.get('strangler_guard_breaches_total{route="watched",check="error_ratio"}', 0) >= 1,
     "the dry run's breach is counted")
t.eq(m.get('strangler_guard_breaches_total{route="healthy",check="error_ratio"}'), 0,
     "no breach on the healthy route")
states = {r["name"]: r["state"] for r in admin_json("/stats")["routes"]}
t.eq((states["risky"], states["healthy"]), ("rolled_back", "active"), "states in /stats")
out = proxy.output()
t.ok("guard: route risky rolled back to 0% (error_ratio check): error ratio" in out,
     "a warning says what the guard did and why", out[-2000:])
t.ok("guard (dry run): route watched would be rolled back: error ratio" in out,
     "the dry run says what it would have done")
# once rolled back, the route serves legacy only and the guard rests
st = [request(P, "GET", "/__echo/risky")[0] for _ in range(10)]
t.eq(set(st), {200}, "the rolled-back route serves legacy's 200s")
proxy.stop()
t.ok(proxy.sanitizer_report() is None, "no sanitizer report", proxy.sanitizer_report())
