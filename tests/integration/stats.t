#!/usr/bin/env python3
# Per-route stats (DESIGN §7): GET /stats and GET /metrics count exactly the requests sent, per
# route and backend; errors by kind (connect, timeout, reset, protocol), fallbacks, 5xx;
# percentiles against the stand-in's delay knob; the legacy share; reload and rollback metrics;
# and the /metrics text passes `promtool check metrics`.
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F403

t = Tap()
legacy = start_legacy()
fn = start_functions()
F = f"http://127.0.0.1:{fn.port}"
dead = free_port()


# A function that answers every request with a response no HTTP parser accepts.
def garbage_server():
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)

    def serve():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            try:
                c.settimeout(5)
                c.recv(65536)
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: twelve\r\n\r\nhello")
            except OSError:
                pass
            finally:
                c.close()

    threading.Thread(target=serve, daemon=True).start()
    return srv


garbage = garbage_server()
G = f"http://127.0.0.1:{garbage.getsockname()[1]}"

routes = f"""
functions:
  fn: {F}
  dead: http://127.0.0.1:{dead}
  slowf:
    url: {F}
    headers: {{ x-stub-delay-ms: "150" }}
  stuck:
    url: {F}
    timeout: 200ms
    headers: {{ x-stub-delay-ms: "3000" }}
  resetting:
    url: {F}
    headers: {{ x-stub-reset: before }}
  broken:
    url: {F}
    headers: {{ x-stub-status: "500" }}
  garbage: {G}
  unavailable:
    url: {F}
    headers: {{ x-stub-status: "503" }}
  hanging:
    url: {F}
    timeout: 500ms
    headers: {{ x-stub-delay-ms: "3000" }}
routes:
  - {{ name: cut, match: {{ path: /__echo/cut }}, function: fn, cutover: 100 }}
  - {{ name: keep, match: {{ path: /__echo/keep }}, function: fn, cutover: 0 }}
  - {{ name: half, match: {{ path: /__echo/half }}, function: fn, cutover: 50 }}
  - {{ name: slowfn, match: {{ path: /__echo/slowfn }}, function: slowf, cutover: 100 }}
  - {{ name: dead, match: {{ path: /__echo/dead }}, function: dead, cutover: 100 }}
  - {{ name: fbdead, match: {{ path: /__echo/fbdead }}, function: dead, cutover: 100, fallback: true }}
  - {{ name: timeout, match: {{ path: /__echo/to }}, function: stuck, cutover: 100 }}
  - {{ name: proto, match: {{ path: /__echo/proto }}, function: garbage, cutover: 100 }}
  - {{ name: reset, match: {{ path: /__echo/reset }}, function: resetting, cutover: 100 }}
  - {{ name: e500, match: {{ path: /__echo/e500 }}, function: broken, cutover: 12.5 }}
  - {{ name: fb503, match: {{ path: /__echo/fb503 }}, function: unavailable, cutover: 100, fallback: true }}
  - {{ name: fbslow, match: {{ path: /__echo/fbslow }}, function: hanging, cutover: 100, fallback: true }}
"""
proxy = Proxy(f"http://127.0.0.1:{legacy.port}", routes_yaml=routes)
P, A = proxy.port, proxy.admin_port
FN_HOST = f"127.0.0.1:{fn.port}"


def admin_get(path):
    with urllib.request.urlopen(f"http://127.0.0.1:{A}{path}", timeout=10 * SLOW) as r:
        return r.status, r.headers.get("Content-Type"), r.read().decode()


def stats():
    return json.loads(admin_get("/stats")[2])


def by_name(js):
    return {r["name"]: r for r in js["routes"]}


# ---- traffic, with what each backend should have served ----
sent = {}  # route -> [legacy, function]


def count(route, backend, n=1):
    sent.setdefault(route, [0, 0])[backend == "function"] += n


def get(path, headers=None):
    return request(P, "GET", path, headers=headers)


for _ in range(7):
    get("/__echo/cut")
count("cut", "function", 7)
for _ in range(5):
    get("/__echo/keep")
for _ in range(10):
    get("/__echo/keep", {"X-Stub-Delay-Ms": "80"})
count("keep", "legacy", 15)
half_fn = 0
for _ in range(40):
    st, js = echo(P, path="/__echo/half")
    served_by_fn = echoed_headers(js).get("host") == [FN_HOST]
    half_fn += served_by_fn
    count("half", "function" if served_by_fn else "legacy")
t.ok(0 < half_fn < 40, "a 50% route sent requests both ways", half_fn)
for _ in range(6):
    get("/__echo/slowfn")
count("slowfn", "function", 6)
dead_statuses = [get("/__echo/dead")[0] for _ in range(3)]
count("dead", "function", 3)
t.eq(dead_statuses, [502] * 3, "a dead function: 502")
# a fallback is two requests in the stats: the function's failed attempt and legacy's answer
fb_statuses = [get("/__echo/fbdead")[0] for _ in range(4)]
count("fbdead", "legacy", 4)
count("fbdead", "function", 4)
t.eq(fb_statuses, [200] * 4, "a dead function with fallback: legacy serves")
fb_statuses = [get("/__echo/fb503")[0] for _ in range(3)]
count("fb503", "legacy", 3)
count("fb503", "function", 3)
t.eq(fb_statuses, [200] * 3, "a function answering 503 with fallback: legacy serves")
fb_statuses = [get("/__echo/fbslow")[0] for _ in range(2)]
count("fbslow", "legacy", 2)
count("fbslow", "function", 2)
t.eq(fb_statuses, [200] * 2, "a function timing out with fallback: legacy serves")
to_statuses = [get("/__echo/to")[0] for _ in range(2)]
count("timeout", "function", 2)
t.eq(to_statuses, [504] * 2, "a stuck function: 504")
proto_statuses = [get("/__echo/proto")[0] for _ in range(2)]
count("proto", "function", 2)
t.eq(proto_statuses, [502] * 2, "an invalid response: 502")
reset_statuses = [get("/__echo/reset")[0] for _ in range(2)]
count("reset", "function", 2)
t.eq(reset_statuses, [502] * 2, "a reset: 502")
e500 = [0, 0]
for _ in range(16):
    st, _, _ = get("/__echo/e500")
    e500[st == 500] += 1
count("e500", "legacy", e500[0])
count("e500", "function", e500[1])
for _ in range(9):
    get("/__echo/other")
count("_default", "legacy", 9)
bad = [status_of(raw(P, b"GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")[0]) for _ in range(3)]
t.eq(bad, [400] * 3, "bad requests are rejected before routing")

# ---- GET /stats ----
js = stats()
r = by_name(js)
for route, (nl, nf) in sorted(sent.items()):
    got = r.get(route, {}).get("requests")
    t.eq(got, {"legacy": nl, "function": nf}, f"/stats: {route} counts what was sent")
t.eq([x["name"] for x in js["routes"]],
     ["cut", "keep", "half", "slowfn", "dead", "fbdead", "timeout", "proto", "reset", "e500",
      "fb503", "fbslow", "_default"], "routes in table order, then _default")
t.eq(js["rejected"]["4xx"], 3, "rejected requests counted apart from every route")
t.eq((r["cut"]["cutover"], r["e500"]["cutover"], r["_default"]["cutover"]), (100, 12.5, None),
     "cutover in percent, null for _default")
t.eq((r["cut"]["function"], r["_default"]["function"]), ("fn", None), "function names")
t.eq(r["dead"]["upstream_errors"]["function"],
     {"connect": 3, "timeout": 0, "reset": 0, "protocol": 0}, "connect errors by kind")
t.eq(r["timeout"]["upstream_errors"]["function"]["timeout"], 2, "timeouts by kind")
t.eq(r["reset"]["upstream_errors"]["function"]["reset"], 2, "resets by kind")
t.eq(r["proto"]["upstream_errors"]["function"]["protocol"], 2, "invalid responses by kind")
t.eq((r["fbdead"]["fallbacks"], r["fbdead"]["upstream_errors"]["function"]["connect"],
      r["fbdead"]["errors"]), (4, 4, {"legacy": 0, "function": 4}),
     "fallbacks: served by legacy, the function's failures counted as its errors, by kind")
t.eq((r["fb503"]["fallbacks"], r["fb503"]["status"]["function"]["5xx"],
      r["fb503"]["error_ratio"]), (3, 3, {"legacy": 0.0, "function": 1.0}),
     "a function's 503 rescued by a fallback is its error, not hidden")
t.eq(r["fbslow"]["upstream_errors"]["function"]["timeout"], 2, "a timed-out attempt by kind")
lf = r["fbslow"]["latency_ms"]
# (percentiles come from log-linear buckets: within 1% of the true value)
t.ok(lf["function"]["p50"] >= 500 * 0.99 and lf["legacy"]["p99"] < 250 * SLOW,
     "a fallback's legacy latency starts when legacy was asked, not with the failed attempt",
     lf)
t.eq(r["dead"]["errors"]["function"], 3, "upstream failures are errors")
t.eq(r["dead"]["error_ratio"], {"legacy": None, "function": 1.0}, "error ratio, null without requests")
t.eq((r["e500"]["errors"]["function"], r["e500"]["status"]["function"]["5xx"]), (e500[1], e500[1]),
     "a function's 500s are errors and 5xx")
t.eq(r["keep"]["status"]["legacy"]["2xx"], 15, "status classes")
t.eq(r["keep"]["requests_60s"]["legacy"], 15, "the last minute's window")
t.eq(r["dead"]["error_ratio_60s"], {"legacy": None, "function": 1.0},
     "the last minute's error ratio")
t.ok(abs(r["keep"]["rate"]["legacy"] - 15 / min(60, js["uptime_s"] + 1)) < 1e-9,
     "rate: requests per second over the last 60 s (or the seconds up, when fewer)",
     (r["keep"]["rate"], js["uptime_s"]))
t.ok(r["keep"]["bytes"]["legacy"]["out"] > 15 * 200 and r["keep"]["bytes"]["legacy"]["in"] > 15 * 30,
     "bytes in and out", r["keep"]["bytes"])

# percentiles against the delay knob: 150 ms on every slowfn request, 80 ms on 10 of 15 keep
lat = r["slowfn"]["latency_ms"]["function"]
t.ok(150 * 0.99 <= lat["p50"] <= lat["p90"] <= lat["p99"] < 150 + 1000 * SLOW,
     "function p50/p90/p99 at or above the 150 ms delay, and sane", lat)
lk = r["keep"]["latency_ms"]["legacy"]
t.ok(80 * 0.99 <= lk["p50"] <= lk["p99"] < 80 + 1000 * SLOW, "legacy percentiles see the 80 ms delay", lk)
t.eq(r["cut"]["latency_ms"]["legacy"], None, "no latency for a backend without requests")
t.ok(r["cut"]["latency_ms"]["function"]["p99"] < 1000 * SLOW, "fast requests are fast",
     r["cut"]["latency_ms"])

total_l = sum(v[0] for v in sent.values())
total_f = sum(v[1] for v in sent.values())
fallbacks = 4 + 3 + 2  # counted under both backends, one request each
share = total_l / (total_l + total_f - fallbacks)
t.eq(js["requests"], {"legacy": total_l, "function": total_f}, "top-level totals")
t.ok(abs(js["legacy_share"] - share) < 1e-9,
     "legacy_share: the monolith's share of the last minute's requests",
     (js["legacy_share"], total_l, total_f))
t.ok(isinstance(js["uptime_s"], int) and 0 <= js["uptime_s"] < 600, "uptime_s", js["uptime_s"])
routes_js = json.loads(admin_get("/routes")[2])
t.eq(js["config_version"], routes_js["version"], "config_version is the table's version")
t.eq({k: r["cut"]["shadow"][k] for k in ("match", "mismatch", "noise", "skipped", "error",
                                         "match_ratio", "mismatch_ratio_60s")},
     {"match": 0, "mismatch": 0, "noise": 0, "skipped": 0, "error": 0, "match_ratio": None,
      "mismatch_ratio_60s": None}, "shadow counters present, empty")
t.eq(sum(r["cut"]["shadow"]["skipped_by"].values()) + sum(r["cut"]["shadow"]["errors_by"].values()),
     0, "and their reasons")
t.eq(js["reloads"], {"ok": 0, "failed": 0, "last_ok": None}, "no reload yet")

series = json.loads(admin_get("/stats?series=1")[2])
sr = by_name(series)
t.eq((len(series["series"]["legacy"]), len(sr["keep"]["series"]["legacy"])), (300, 60),
     "series: 300 s overall, 60 s per route")
t.eq(sum(sr["keep"]["series"]["legacy"]), 15, "a route's series holds its requests")
t.eq(sum(series["series"]["function"]), total_f, "the overall series holds every request")
t.ok("series" not in r["keep"] and "series" not in js, "series only when asked for")

# ---- GET /metrics ----
status, ctype, text = admin_get("/metrics")
t.eq(status, 200, "GET /metrics")
t.ok(ctype.startswith("text/plain; version=0.0.4"), "the Prometheus text content type", ctype)


def samples(text):
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_labels, value = line.rsplit(" ", 1)
        out[name_labels] = float(value)
    return out


m = samples(text)


def metric_sum(prefix, **labels):
    total = 0
    for k, v in m.items():
        if not k.startswith(prefix + "{") and k != prefix:
            continue
        if all(f'{lk}="{lv}"' in k for lk, lv in labels.items()):
            total += v
    return total


for route, (nl, nf) in sorted(sent.items()):
    got = (metric_sum("strangler_requests_total", route=route, backend="legacy"),
           metric_sum("strangler_requests_total", route=route, backend="function"))
    t.eq(got, (nl, nf), f"/metrics: {route} counts what was sent")
    t.eq(m[f'strangler_request_duration_seconds_count{{route="{route}",backend="legacy"}}'], nl,
         f"/metrics: {route} histogram count")
t.eq(m['strangler_request_duration_seconds_bucket{route="slowfn",backend="function",le="0.1"}'], 0,
     "no 150 ms request under the 0.1 s bucket")
t.eq(m['strangler_request_duration_seconds_bucket{route="slowfn",backend="function",le="+Inf"}'], 6,
     "all of them under +Inf")
t.eq(m['strangler_upstream_errors_total{route="dead",backend="function",kind="connect"}'], 3,
     "upstream errors by kind")
t.eq(m['strangler_upstream_errors_total{route="proto",backend="function",kind="protocol"}'], 2,
     "protocol errors")
t.eq(m['strangler_fallbacks_total{route="fbdead"}'], 4, "fallbacks")
t.eq(m['strangler_route_cutover_ratio{route="e500"}'], 0.125, "cutover ratio 0..1")
t.ok('strangler_route_cutover_ratio{route="_default"}' not in m, "no cutover for _default")
t.ok(abs(m["strangler_legacy_share_ratio"] - share) < 1e-9, "legacy share gauge")
t.eq(m['strangler_shadow_comparisons_total{route="cut",result="match"}'], 0, "shadow counters")
t.eq(m['strangler_rollbacks_total{route="cut",trigger="manual"}'], 0, "rollbacks start at 0")
for fam in ("strangler_requests_total", "strangler_request_duration_seconds",
            "strangler_upstream_errors_total", "strangler_config_reloads_total",
            "strangler_config_last_reload_success", "strangler_legacy_share_ratio"):
    t.ok(f"# HELP {fam} " in text and f"# TYPE {fam} " in text, f"HELP and TYPE for {fam}")


def promtool(text, name):
    tool = shutil.which("promtool")
    if tool is None:
        t.ok(False, f"{name} (promtool is missing: make deps installs the prometheus package)")
        return
    p = subprocess.run([tool, "check", "metrics"], input=text.encode(), capture_output=True,
                       timeout=30)
    t.ok(p.returncode == 0, name, (p.stdout + p.stderr).decode())


promtool(text, "promtool check metrics passes")

# ---- reloads and rollbacks ----
with open(proxy.routes) as f:
    good = f.read()
with open(proxy.routes, "w") as f:
    f.write(good.replace("cutover: 12.5", "cutover: 250"))
st, _, body = request(A, "POST", "/reload")
t.eq(st, 422, "a bad routes file is rejected")
with open(proxy.routes, "w") as f:
    f.write(good.replace("cutover: 12.5", "cutover: 15"))
st, _, body = request(A, "POST", "/reload")
t.eq(st, 200, "a good one applies")
st, _, body = request(A, "POST", "/routes/cut/rollback", {"Content-Type": "application/json"},
                      b'{"reason": "stats test"}')
t.eq(st, 200, "rollback through the admin API")
m = samples(admin_get("/metrics")[2])
t.eq((m['strangler_config_reloads_total{result="success"}'],
      m['strangler_config_reloads_total{result="failure"}']), (2.0, 1.0),
     "reloads by result (the rollback reloads too)")
t.eq(m["strangler_config_last_reload_success"], 1, "the last reload succeeded")
t.eq(m['strangler_rollbacks_total{route="cut",trigger="manual"}'], 1, "a manual rollback counted")
t.eq(m['strangler_route_cutover_ratio{route="e500"}'], 0.15, "the new cutover")
js = stats()
r2 = by_name(js)
t.eq((r2["cut"]["state"], r2["keep"]["state"]), ("rolled_back", "active"),
     "a rolled-back route's state")
t.eq(r2["cut"]["requests"], {"legacy": 0, "function": 7}, "counts survive reloads")
t.eq(js["reloads"], {"ok": 2, "failed": 1, "last_ok": True}, "reloads in /stats")

# a route removed from the table keeps its numbers, marked out of the table
with open(proxy.routes, "w") as f:
    f.write(good.replace("  - { name: slowfn,", "  - { name: slowfn2,"))
request(A, "POST", "/reload")
r3 = by_name(stats())
t.eq((r3["slowfn"]["in_table"], r3["slowfn"]["cutover"], r3["slowfn"]["requests"]["function"]),
     (False, None, 6), "a removed route's numbers stay, out of the table")
t.eq(r3["slowfn2"]["requests"], {"legacy": 0, "function": 0}, "a new route starts at 0")
text = admin_get("/metrics")[2]
t.ok('strangler_requests_total{route="slowfn",backend="function",code_class="2xx"} 6' in text,
     "a removed route's counters stay in /metrics (counters never go back)")
promtool(text, "promtool check metrics after reloads and a rollback")

st, _, _ = request(A, "POST", "/stats")
t.eq(st, 405, "POST /stats: 405")
proxy.stop()
t.ok(proxy.sanitizer_report() is None, "no sanitizer report", proxy.sanitizer_report())
garbage.close()
