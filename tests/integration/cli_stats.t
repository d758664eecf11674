#!/usr/bin/env python3
# `strangler stats`: the table (legacy share on top, one aligned row per route, "-" for null,
# ROLLED BACK, removed routes with recent traffic only), ROUTE detail, --json, --watch with
# --count, SIGINT and a tty, errors (no proxy, 401, unknown route, usage). First against a canned
# /stats from a small fake admin server, then end to end: the counts shown equal the requests
# sent per route and backend.
import http.server
import json
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F403

t = Tap()
TOKEN = "st4ts-" + "y" * 26


cli = cli_run


def pair(legacy_v, function_v):
    return {"legacy": legacy_v, "function": function_v}


def route(name, cutover, function, state="active", in_table=True, req=(0, 0), err=(0, 0),
          ratio=(None, None), rate=(0.0, 0.0), rate5=None, lat=(None, None), shadow=None,
          fallbacks=0):
    """A route object of GET /stats (the schema the proxy serves)."""
    counts = {"none": 0, "1xx": 0, "2xx": 0, "3xx": 0, "4xx": 0, "5xx": 0}
    kinds = {"connect": 0, "timeout": 0, "reset": 0, "protocol": 0}
    sh = {"match": 0, "mismatch": 0, "noise": 0, "skipped": 0, "error": 0, "match_ratio": None}
    sh.update(shadow or {})
    return {
        "name": name, "in_table": in_table, "cutover": cutover, "function": function,
        "state": state, "requests": pair(*req), "errors": pair(*err),
        "error_ratio": pair(*ratio), "error_ratio_60s": pair(*ratio), "rate": pair(*rate), "rate_5m": pair(*(rate5 or rate)),
        "requests_60s": pair(*req), "errors_60s": pair(*err),
        "latency_ms": pair(*lat),
        "status": pair(dict(counts, **{"2xx": req[0] - err[0], "5xx": err[0]}),
                       dict(counts, **{"2xx": req[1] - err[1], "5xx": err[1]})),
        "upstream_errors": pair(dict(kinds), dict(kinds, timeout=err[1])),
        "bytes": pair({"in": 1234, "out": 56789}, {"in": 0, "out": 0}),
        "shadow": sh, "fallbacks": fallbacks,
    }


LONG = "search-with-a-much-longer-route-name"
CANNED = {
    "generated_at": "2026-11-24T08:30:00.123Z", "uptime_s": 3725,
    "config_version": "9f2c1a0b3c4d5e6f", "legacy_share": 0.75, "legacy_share_5m": 0.8,
    "requests": pair(1200, 300), "rate": pair(20.0, 5.0),
    "reloads": {"ok": 3, "failed": 1, "last_ok": False},
    "routes": [
        route("orders", 25, "orders-fn", req=(900, 300), err=(2, 9), ratio=(0.0022, 0.03),
              rate=(15.0, 5.0), lat=({"p50": 1.2, "p90": 3.4, "p99": 12.5},
                                     {"p50": 2.0, "p90": 4.1, "p99": 30.2}),
              shadow={"match": 97, "mismatch": 3, "match_ratio": 0.97}, fallbacks=4),
        route(LONG, 12.5, "search-fn", req=(40, 0), ratio=(0.0, None), rate=(0.5, 0.0),
              lat=({"p50": 0.25, "p90": 0.5, "p99": 0.75}, None)),
        route("payments", 0, "pay-fn", state="rolled_back", req=(10, 5), ratio=(0.0, 0.0),
              rate=(0.1, 0.0), lat=({"p50": 3.0, "p90": 4.0, "p99": 5.0},
                                    {"p50": 150.0, "p90": 160.0, "p99": 170.0}),
              shadow={"match": 9999, "mismatch": 1, "match_ratio": 0.9999}),
        route("_default", None, None, req=(10000, 0), err=(1, 0), ratio=(0.0001, None),
              rate=(4.0, 0.0), lat=({"p50": 0.5, "p90": 0.7, "p99": 0.9}, None)),
        route("reports", None, None, in_table=False, req=(30, 0), ratio=(0.0, None),
              rate=(0.0, 0.0), rate5=(0.1, 0.0)),
        route("gone-quiet", None, None, in_table=False, req=(7, 0), ratio=(0.0, None)),
    ],
}


class Fake:
    """An admin API that serves canned JSON on GET /stats. replies: a list of (status, body)
    used one per call, then `body` for good; close_after: stop listening after that many calls
    (the proxy going away)."""

    def __init__(self, body, token=None):
        self.body, self.token, self.replies, self.calls, self.close_after = body, token, [], 0, None
        fake = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                fake.calls += 1
                status, body = 200, fake.body
                if fake.token and self.headers.get("Authorization") != f"Bearer {fake.token}":
                    status, body = 401, {"error": "unauthorized"}
                elif self.path != "/stats":
                    status, body = 404, {"error": "not found"}
                elif fake.replies:
                    status, body = fake.replies.pop(0)
                json_reply(self, status, body)

            def log_message(self, *a):
                pass

        self.srv = http.server.HTTPServer(("127.0.0.1", 0), H)
        self.port = self.srv.server_address[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while self.close_after is None or self.calls < self.close_after:
            self.srv.handle_request()
        self.srv.server_close()


def table_lines(out):
    """The lines of the route table: the header row (starting ROUTE) to the next blank line."""
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("ROUTE "):
            end = i
            while end < len(lines) and lines[end].strip():
                end += 1
            return lines[i:end]
    return []


def row(out, name):
    """The cells of name's row, split on runs of 2+ spaces (cells hold at most one space)."""
    for line in table_lines(out)[1:]:
        cells = re.split(r" {2,}", line.strip())
        if cells and cells[0] == name:
            return cells
    return None


def detail(out, label):
    """The LEGACY and FUNCTION cells of a detail row."""
    m = re.search(rf"^{re.escape(label)}\s+(\S+)\s+(\S+)$", out, re.M)
    return (m.group(1), m.group(2)) if m else None


# ---- usage ----
rc, out, _ = cli("stats", "--help")
t.ok(rc == 0 and out.startswith("usage: strangler stats") and "--count N" in out and
     "--watch" in out and "5 minutes" in out, "stats --help: usage with --watch, --count and "
     "the rule for removed routes", out)
rc, out, _ = cli("--help")
t.ok(rc == 0 and re.search(r"^  stats \[ROUTE\] \[--json\] \[--watch", out, re.M),
     "strangler --help lists stats", out)
for args, why in ((["--count", "2"], "--count without --watch"),
                  (["--watch", "--count", "0"], "--count 0"),
                  (["--watch", "--count", "x"], "--count x"),
                  (["a", "b"], "two routes"), (["--frob"], "an unknown option")):
    rc, _, err = cli("stats", *args)
    t.ok(rc == 2 and "usage: strangler stats" in err, f"stats: {why} is a usage error (2)", err)

# ---- the table, against canned stats ----
fake = Fake(CANNED)
FCONF = conf_for(fake.port)
rc, out, err = cli("-c", FCONF, "stats")
t.eq(rc, 0, "stats against the fake admin API exits 0")
first = out.splitlines()[0] if out else ""
t.eq(first, "legacy share (last 60s): 75.0%  (5m: 80.0%)  · 25.0 req/s · config "
     "9f2c1a0b3c4d5e6f · up 1h02m", "the first line: the legacy share, rate, version, uptime")
t.ok("reloads: 3 ok, 1 failed (the last one FAILED" in out, "a failed last reload is named", out)
lines = table_lines(out)
t.ok(len(lines) == 6 and len({len(x) for x in lines}) == 1,
     "the table: a header and 5 rows, every line as wide (numbers right-aligned)", out)
t.ok(re.search(r"^ +-+ req/s -+  -+ errors 1m -+  -+ p50/p99 ms -+$", out, re.M),
     "group headings over the legacy/function pairs", out)
t.eq(re.split(r" {2,}", lines[0]) if lines else None,
     ["ROUTE", "CUTOVER", "STATE", "LEGACY", "FUNCTION", "LEGACY", "FUNCTION", "LEGACY",
      "FUNCTION", "SHADOW", "FALLBACKS"], "the columns")
t.eq(row(out, "orders"), ["orders", "25%", "active", "15.0", "5.00", "0.2%", "3.0%",
                          "1.2/12.5", "2.0/30.2", "97.0%", "4"], "a route with every figure")
t.eq(row(out, LONG), [LONG, "12.5%", "active", "0.50", "0.00", "0.0%", "-", "0.25/0.75", "-",
                      "-", "0"], "fractional cutover; null ratio, latency and shadow are '-'")
t.eq(row(out, "payments"), ["payments", "0%", "ROLLED BACK", "0.10", "0.00", "0.0%", "0.0%",
                            "3.0/5.0", "150/170", ">99.9%", "0"],
     "a rolled-back route is marked; 99.99% does not round to 100%")
t.eq(row(out, "_default"), ["_default", "-", "-", "4.00", "-", "<0.1%", "-", "0.50/0.90", "-",
                            "-", "0"], "_default: no cutover, no function; 0.01% is not 0%")
t.eq(row(out, "reports"), ["reports", "-", "removed", "0.00", "-", "0.0%", "-", "-", "-", "-",
                           "0"], "a route gone from the file, with traffic in 5 min: removed")
t.ok(row(out, "gone-quiet") is None, "a removed route without recent traffic is not shown", out)
t.eq([re.split(r" {2,}", x)[0] for x in lines[1:]],
     ["orders", LONG, "payments", "_default", "reports"], "the rows in the order of /stats")
t.ok("\033" not in out, "no escape codes when stdout is not a terminal", repr(out))

rc, out, err = cli("-c", FCONF, "stats", "orders")
t.ok(rc == 0 and out.startswith("legacy share (last 60s): 75.0%"),
     "stats ROUTE: the legacy share on top too", out + err)
t.ok(re.search(r"^route: +orders$", out, re.M) and re.search(r"^function: +orders-fn$", out, re.M)
     and re.search(r"^cutover: +25%$", out, re.M) and re.search(r"^state: +active$", out, re.M),
     "stats ROUTE: route, function, cutover, state", out)
for label, want in (("requests", ("900", "300")), ("req/s, last 1 min", ("15.0", "5.00")),
                    ("status 2xx", ("898", "291")), ("status 5xx", ("2", "9")),
                    ("error ratio", ("0.2%", "3.0%")), ("upstream timeout", ("0", "9")),
                    ("latency p90 ms", ("3.4", "4.1")), ("bytes out", ("56789", "0"))):
    t.eq(detail(out, label), want, f"stats ROUTE: {label}")
t.ok("shadow:    97 match, 3 mismatch, 0 noise, 0 skipped, 0 error · match ratio 97.0%" in out
     and re.search(r"^fallbacks: 4 ", out, re.M), "stats ROUTE: shadow results and fallbacks",
     out)
rc, out, _ = cli("-c", FCONF, "stats", "payments")
t.ok(rc == 0 and "state:     ROLLED BACK (see 'strangler history payments')" in out,
     "stats ROUTE: a rolled-back route says so", out)
rc, out, err = cli("-c", FCONF, "stats", "nope")
t.ok(rc == 1 and out == "" and "no route named 'nope'" in err and
     f"known routes: orders, {LONG}, payments, _default, reports, gone-quiet" in err,
     "an unknown ROUTE: exit 1, the known routes listed", err)

rc, out, _ = cli("-c", FCONF, "stats", "--json")
try:
    js = json.loads(out)
except ValueError:
    js = None
t.eq(js, CANNED, "--json: the JSON as received")
rc, out, _ = cli("-c", FCONF, "stats", "--json", "orders")
try:
    js = json.loads(out)
except ValueError:
    js = None
t.eq(js, CANNED["routes"][0], "--json ROUTE: that route's object")

fake.body = dict(CANNED, legacy_share=None, legacy_share_5m=None, rate=pair(0.0, 0.0))
rc, out, _ = cli("-c", FCONF, "stats")
t.ok(rc == 0 and out.startswith("legacy share (last 60s): -  (5m: -)  · 0.00 req/s"),
     "no traffic: the share is '-'", out)
fake.body = CANNED

# Errors from the admin API.
for status, body, want in ((500, {"error": "boom"}, "answered 500: boom"),
                           (200, b"<html>", "not a JSON object"),
                           (200, [1, 2], "not a JSON object")):
    fake.replies = [(status, body)]
    rc, out, err = cli("-c", FCONF, "stats")
    t.ok(rc == 1 and want in err and f"127.0.0.1:{fake.port}" in err,
         f"an answer {status} {body!r}: exit 1, explained", err)
tfake = Fake(CANNED, token=TOKEN)
rc, out, err = cli("-c", conf_for(tfake.port, TOKEN), "stats")
t.ok(rc == 0 and row(out, "orders") is not None, "the token is sent when configured", err)
rc, out, err = cli("-c", FCONF, "stats", "--admin", f"http://127.0.0.1:{tfake.port}")
t.ok(rc == 1 and "401" in err and TOKEN not in err + out, "a 401 is explained: exit 1", err)

# --watch: frames, a tty, the proxy going away, and signals.
rc, out, err = cli("-c", FCONF, "stats", "--watch", "--count", "2")
frames = out.split("\n\nstrangler stats on ")
t.ok(rc == 0 and len(frames) == 2 and out.startswith(f"strangler stats on 127.0.0.1:{fake.port}")
     and all(row(f, "orders") for f in frames) and "\033" not in out,
     "--watch --count 2 on a pipe: two frames, a blank line between, exit 0", out + err)
rc, out, err = cli("-c", FCONF, "stats", "--watch", "--count", "2", "--json")
try:
    docs = [json.loads(d) for d in out.split("\n\n") if d.strip()]
except ValueError:
    docs = []
t.ok(len(docs) == 2 and docs[0] == CANNED, "--watch --json: one JSON document per frame",
     out + err)

fake.replies = [(200, CANNED), (503, {"error": "draining"})]
rc, out, err = cli("-c", FCONF, "stats", "--watch", "--count", "3")
frames = out.split("\n\nstrangler stats on ")
t.ok(rc == 0 and len(frames) == 3 and row(frames[0], "orders") and
     "error: GET /stats on" in frames[1] and "answered 503: draining" in frames[1] and
     "trying again" in frames[1] and row(frames[2], "orders"),
     "--watch: a failed frame shows the error, the next one the stats again", out + err)

gone = Fake(CANNED)
gone.close_after = 1
rc, out, err = cli("-c", conf_for(gone.port), "stats", "--watch", "--count", "3")
frames = out.split("\n\nstrangler stats on ")
t.ok(rc == 1 and len(frames) == 3 and row(frames[0], "orders") and
     all(f"no strangler is answering on 127.0.0.1:{gone.port}" in f for f in frames[1:]),
     "--watch: the proxy goes away: each frame says so, exit 1 after --count", out + err)

rc, got, perr = cli_on_pty("-c", FCONF, "stats", "--watch", "--count", "2")
t.ok(rc == 0 and got.count(b"\033[H\033[2J") == 2 and got.startswith(b"\033[H\033[2J") and
     b"orders" in got, "--watch on a terminal: the screen is cleared before each frame",
     repr(got[:300]) + perr)

for sig in (signal.SIGINT, signal.SIGTERM):
    p = subprocess.Popen([STRANGLER, "-c", FCONF, "stats", "--watch"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    r, _, _ = select.select([p.stdout], [], [], 20 * SLOW)
    started = bool(r) and p.stdout.readline().startswith(b"strangler stats on")
    p.send_signal(sig)
    try:
        rc = p.wait(timeout=10 * SLOW)
    except subprocess.TimeoutExpired:
        p.kill()
        rc = p.wait()
    perr = p.stderr.read().decode()
    p.stdout.close()
    p.stderr.close()
    check_sanitizer(["stats", "--watch", sig.name], perr)
    t.ok(started and rc == 0, f"--watch stops on {sig.name} with exit 0", f"rc {rc}: {perr}")

# ---- end to end: the counts shown are the requests sent ----
legacy = start_legacy()
fn = start_functions()
ROUTES = f"""functions:
  fn: http://127.0.0.1:{fn.port}
routes:
  - name: orders
    match: {{ path: /api/orders }}
    function: fn
    cutover: 100
  - name: users
    match: {{ path: /api/users }}
    function: fn
    cutover: 0
"""
proxy = Proxy(f"http://127.0.0.1:{legacy.port}", routes_yaml=ROUTES)
SENT = {"orders": (0, 7), "users": (5, 0), "_default": (3, 0)}
PATHS = {"orders": "/api/orders/1", "users": "/api/users/1", "_default": "/__echo/unmatched"}
statuses = [request(proxy.port, "GET", PATHS[name])[0]
            for name, (lg, fc) in SENT.items() for _ in range(lg + fc)]
t.eq(set(statuses), {200}, "15 requests through the proxy, all 200")

rc, out, err = cli("-c", proxy.conf, "stats", "--json")
try:
    js = json.loads(out)
except ValueError:
    js = {}
got = {r["name"]: (r["requests"]["legacy"], r["requests"]["function"])
       for r in js.get("routes", [])}
t.eq(got, SENT, "stats --json: requests per route and backend are the requests sent")
got60 = {r["name"]: (r["requests_60s"]["legacy"], r["requests_60s"]["function"])
         for r in js.get("routes", [])}
t.eq(got60, SENT, "stats --json: the same in the last 60 s")
t.eq(js.get("requests"), {"legacy": 8, "function": 7}, "stats --json: the totals")

rc, out, err = cli("-c", proxy.conf, "stats")


def rate_of(n, cell):
    """Is cell n requests over the window a rate uses: the last 60 s, or the seconds the
    proxy has been up when that is less (a whole number of them)."""
    def text(x):  # the CLI's rate format: two decimals under 10, one under 1000
        return f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 1000 else f"{x:.0f}"
    return any(cell == text(n / w) for w in range(1, 61))


head = re.match(r"legacy share \(last 60s\): 53\.3%  \(5m: 53\.3%\)  · ([0-9.]+) req/s "
                r"· config (\S+) · up ", out)
t.ok(rc == 0 and head is not None and rate_of(15, head.group(1)) and
     head.group(2) == js.get("config_version"),
     "stats: 8 of 15 requests went to legacy; the total rate", out + err)
lines = table_lines(out)
t.ok(len(lines) == 4 and max(len(x) for x in lines) <= 120, "stats: 3 rows, under 120 columns",
     out)
for name, cut in (("orders", "100%"), ("users", "0%"), ("_default", "-")):
    lg, fc = SENT[name]
    got = (row(out, name) or [])[:5] + [""] * 5
    t.ok(got[:3] == [name, cut, "-" if name == "_default" else "active"] and
         rate_of(lg, got[3]) and (got[4] == "-" if name == "_default" else rate_of(fc, got[4])),
         f"stats: {name}: cutover and req/s per backend", got)
rc, out, err = cli("-c", proxy.conf, "stats", "orders")
t.ok(rc == 0 and detail(out, "requests") == ("0", "7") and detail(out, "status 2xx") == ("0", "7")
     and detail(out, "  last 60 s") == ("0", "7") and detail(out, "errors") == ("0", "0"),
     "stats orders: 7 function requests, all 2xx, no errors", out + err)
rc, out, err = cli("-c", proxy.conf, "stats", "users")
t.ok(rc == 0 and detail(out, "requests") == ("5", "0") and
     re.search(r"^latency p99 ms +[0-9.]+ +-$", out, re.M),
     "stats users: 5 legacy requests with a p99, none to the function", out + err)
rc, out, err = cli("-c", proxy.conf, "stats", "missing")
t.ok(rc == 1 and "known routes: orders, users, _default" in err,
     "stats with an unknown route: exit 1", err)
rc, out, err = cli("-c", proxy.conf, "stats", "--watch", "--count", "2")
t.ok(rc == 0 and out.count("strangler stats on ") == 2 and out.count("\nROUTE ") == 2,
     "stats --watch --count 2: two frames, exit 0", out + err)
dead = free_port()
rc, out, err = cli("-c", proxy.conf, "stats", "--admin", f"http://127.0.0.1:{dead}")
t.ok(rc == 1 and out == "" and
     f"no strangler is answering on 127.0.0.1:{dead} (connection refused)" in err,
     "stats with nothing on the admin address: exit 1, the address named", err)

t.ok(not cli_sanitizer_hits, "no sanitizer report from any CLI run", "\n".join(cli_sanitizer_hits))
t.eq(proxy.stop(), 0, "the proxy exits 0 on SIGTERM")
t.ok(proxy.sanitizer_report() is None, "no sanitizer report from the proxy",
     proxy.sanitizer_report())
