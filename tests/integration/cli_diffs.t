#!/usr/bin/env python3
# `strangler diffs ROUTE`: the header (route, mismatches since start, top differing paths aligned),
# each mismatch newest first with "- legacy" / "+ function" lines, colours on a terminal only
# (never with NO_COLOR), control characters from the server as '?', --json as received, --limit
# passed through, a 404's message, no proxy, usage errors. First against canned answers from a
# small fake admin server, then GET /routes/NAME/diffs and the command on a real proxy (a route
# without mismatches: an empty list; unknown route 404; POST 405).
import http.server
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F403

t = Tap()
TOKEN = "d1ffs-" + "z" * 26


cli = cli_run


on_pty = cli_on_pty


def mismatch(i, path, diffs, status=(200, 200), more=0, method="GET", rid=None):
    return {"request_id": rid or f"req{i:04d}", "ts": f"2026-11-24T08:{59 - i:02d}:00.123Z",
            "method": method, "path": path, "status": {"legacy": status[0], "function": status[1]},
            "differences": [{"path": p, "legacy": lv, "function": fv} for p, lv, fv in diffs],
            "more": more}


LONGV = "x" * 256 + "\u2026"
EVIL = "\u001b[31mEVIL\u009b2J\u0007"
DIFFS = [
    mismatch(0, "/api/catalog/sku-15", [("/items/0/price", "12.5", "12.50"),
                                        ("/gone", '"x"', None),
                                        ("header:authorization", "(redacted)", "(redacted)")],
             more=3, rid="3f9a0c1d2e3f4a5b"),
    mismatch(1, "/api/catalog/long", [("/description", LONGV, "short")], status=(200, 500)),
    mismatch(2, "/api/catalog/" + EVIL, [("/name" + EVIL, "a" + EVIL, EVIL)], method="POST"),
    mismatch(3, "/api/catalog/root", [("", "[1]", "{}")]),
] + [mismatch(i, f"/api/catalog/sku-{i}", [("/items/0/price", str(i), f"{i}.0")])
     for i in range(4, 12)]
CANNED = {
    "route": "catalog", "total": 57, "kept": 57,
    "top_paths": [{"path": "/items/0/price", "count": 41},
                  {"path": "/a/much/longer/differing/path", "count": 9},
                  {"path": "header:etag", "count": 1000},
                  {"path": EVIL, "count": 2}],
    "noise_paths": ["/generated_at", "/request_id"],
    "diffs": DIFFS,
}
EMPTY = {"route": "orders", "total": 0, "kept": 0, "top_paths": [], "noise_paths": [], "diffs": []}
KNOWN = "no such route 'nope' in the live table; routes: catalog, orders"


class Fake:
    """An admin API serving canned GET /routes/NAME/diffs answers: routes maps a name to its
    JSON; others get a 404 naming the known routes. replies: (status, body) used one per call
    first. paths: every path asked for."""

    def __init__(self, routes, token=None):
        self.routes, self.token, self.replies, self.paths = routes, token, [], []
        fake = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                fake.paths.append(self.path)
                m = re.match(r"^/routes/([^/?]+)/diffs(\?.*)?$", self.path)
                if fake.token and self.headers.get("Authorization") != f"Bearer {fake.token}":
                    status, body = 401, {"error": "unauthorized"}
                elif fake.replies:
                    status, body = fake.replies.pop(0)
                elif m and urllib.parse.unquote(m.group(1)) in fake.routes:
                    status, body = 200, fake.routes[urllib.parse.unquote(m.group(1))]
                else:
                    status, body = 404, {"error": KNOWN}
                json_reply(self, status, body)

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.srv.daemon_threads = True
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()


def block(out, head):
    """The lines of the mismatch whose first line starts with head, up to the next blank line."""
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(head):
            end = i + 1
            while end < len(lines) and lines[end].strip():
                end += 1
            return lines[i:end]
    return []


def controls(text):
    """Control characters (C0 but newline, DEL, C1) in text."""
    return [c for c in text if (ord(c) < 0x20 and c != "\n") or 0x7f <= ord(c) <= 0x9f]


# ---- usage ----
rc, out, _ = cli("diffs", "--help")
t.ok(rc == 0 and out.startswith("usage: strangler diffs") and "--limit N" in out and
     "--json" in out and "default 10" in out and "NO_COLOR" in out,
     "diffs --help: usage with --limit, --json, the default and NO_COLOR", out)
rc, out, _ = cli("--help")
t.ok(rc == 0 and re.search(r"^  diffs ROUTE \[--json\] \[--limit N\]$", out, re.M),
     "strangler --help lists diffs", out)
rc, out, _ = cli("help", "diffs")
t.ok(rc == 0 and out.startswith("usage: strangler diffs"), "strangler help diffs", out)
for args, why in (([], "no route"), (["a", "b"], "two routes"), (["a", "--limit", "0"], "--limit 0"),
                  (["a", "--limit", "x"], "--limit x"), (["a", "--frob"], "an unknown option")):
    rc, out, err = cli("diffs", *args)
    t.ok(rc == 2 and out == "" and "usage: strangler diffs" in err,
         f"diffs: {why} is a usage error (2)", err)
rc, out, err = cli("diffs", "a", "--limit")
t.ok(rc == 2 and out == "" and "strangler diffs: --limit needs a value" in err,
     "diffs: --limit without N is a usage error (2)", err)

# ---- against canned answers ----
fake = Fake({"catalog": CANNED, "orders": EMPTY, "a b": EMPTY})
FCONF = conf_for(fake.port)
fake.paths.clear()
rc, out, err = cli("-c", FCONF, "diffs", "catalog")
t.eq(rc, 0, "diffs against the fake admin API exits 0")
t.eq(fake.paths, ["/routes/catalog/diffs?limit=10"], "the call: GET /routes/NAME/diffs?limit=10")
lines = out.splitlines()
t.eq(lines[0] if lines else "", "catalog: 57 shadow mismatches since the proxy started; the "
     "latest 12 of the 57 kept, newest first (times in UTC)",
     "the first line: route, total, shown and kept")
t.ok("learned noise (differences only there are not mismatches): /generated_at, /request_id"
     in lines, "the learned noise paths are listed", out)
top = []
for i, line in enumerate(lines):
    if line.startswith("DIFFERING PATH"):
        top = lines[i:i + 5]
t.ok(len(top) == 5 and len({len(x) for x in top}) == 1 and top[0].endswith("MISMATCHES"),
     "the top paths: a header and 4 rows, every line as wide (counts right-aligned)", out)
t.eq([re.split(r" {2,}", x) for x in top[1:]],
     [["/items/0/price", "41"], ["/a/much/longer/differing/path", "9"], ["header:etag", "1000"],
      ["?[31mEVIL?2J?", "2"]], "the top paths in the server's order, with their counts")

b = block(out, "2026-11-24 08:59:00")
t.eq(b, ["2026-11-24 08:59:00  GET /api/catalog/sku-15  req 3f9a0c1d2e3f4a5b  status 200/200",
         "  /items/0/price",
         "    - legacy:   12.5",
         "    + function: 12.50",
         "  /gone",
         '    - legacy:   "x"',
         "    + function: (absent)",
         "  header:authorization",
         "    - legacy:   (redacted)",
         "    + function: (redacted)",
         "  ... and 3 more differing paths, not kept"],
     "a mismatch: when (UTC), method, path, request id, statuses; each path with both values")
b = block(out, "2026-11-24 08:58:00")
t.ok(len(b) == 4 and b[0].endswith("status 200/500") and b[2] == "    - legacy:   " + LONGV and
     b[3] == "    + function: short", "a long value is printed whole, as the server cut it",
     "\n".join(b))
b = block(out, "2026-11-24 08:57:00")
t.eq(b, ["2026-11-24 08:57:00  POST /api/catalog/?[31mEVIL?2J?  req req0002  status 200/200",
         "  /name?[31mEVIL?2J?",
         "    - legacy:   a?[31mEVIL?2J?",
         "    + function: ?[31mEVIL?2J?"],
     "control characters from the server (C0, DEL and C1) print as '?'")
t.eq(block(out, "2026-11-24 08:56:00")[1:2], ["  (the whole body)"],
     "an empty path (the whole document) is named")
heads = [x for x in lines if re.match(r"^2026-11-24 ", x)]
t.eq([x[:19] for x in heads], [f"2026-11-24 08:{59 - i:02d}:00" for i in range(12)],
     "every mismatch shown, in the server's order (newest first)")
t.ok(not controls(out), "no control character at all on a pipe (no colour either)",
     repr([c for c in out if ord(c) < 0x20 and c != "\n"][:10]))

rc, out, err = cli("-c", FCONF, "diffs", "catalog", "--limit", "3")
t.ok(rc == 0 and fake.paths[-1] == "/routes/catalog/diffs?limit=3", "--limit 3 is passed through",
     fake.paths[-1:])
rc, out, err = cli("-c", FCONF, "diffs", "--limit=250", "catalog")
t.ok(rc == 0 and fake.paths[-1] == "/routes/catalog/diffs?limit=250",
     "--limit=N before the route", fake.paths[-1:])

rc, out, err = cli("-c", FCONF, "diffs", "catalog", "--json")
try:
    js = json.loads(out)
except ValueError:
    js = None
t.eq(js, CANNED, "--json: the JSON as received")
t.ok(rc == 0 and out.endswith("\n") and out.count("\n") == 1,
     "--json: the body as it came (one line here), with a final newline", out[-40:])

rc, out, err = cli("-c", FCONF, "diffs", "orders")
t.ok(rc == 0 and out == "orders: no shadow mismatches since the proxy started\n" and err == "",
     "a route without mismatches says so", out + err)

# On a terminal: red and green, and still no escape from the server.
rc, got, err = on_pty("-c", FCONF, "diffs", "catalog")
text = got.decode("utf-8", "replace")
ours = re.sub(r"\x1b\[(31|32|0)m", "", text)
t.ok(rc == 0 and "\x1b[31m    - legacy:   12.5\x1b[0m\n" in text and
     "\x1b[32m    + function: 12.50\x1b[0m\n" in text,
     "on a terminal: legacy lines red, function lines green", repr(text[:600]) + err)
t.ok(not controls(ours) and "?[31mEVIL?2J?" in ours,
     "on a terminal: the only escapes are the colours; the server's still print as '?'",
     repr(controls(ours)[:10]))
rc, got, err = on_pty("-c", FCONF, "diffs", "catalog", env={"NO_COLOR": "1"})
t.ok(rc == 0 and b"\x1b" not in got and b"- legacy:   12.5" in got,
     "NO_COLOR: no colour on a terminal", repr(got[:300]) + err)
rc, got, err = on_pty("-c", FCONF, "diffs", "catalog", env={"NO_COLOR": ""})
t.ok(rc == 0 and b"\x1b[31m" in got, "an empty NO_COLOR does not count (no-color.org)",
     repr(got[:300]))

# Errors.
rc, out, err = cli("-c", FCONF, "diffs", "nope")
t.ok(rc == 1 and out == "" and err == f"strangler diffs: {KNOWN}\n",
     "an unknown route: exit 1 with the proxy's message listing the routes", err)
fake.paths.clear()
rc, out, err = cli("-c", FCONF, "diffs", "a b")
t.ok(rc == 0 and fake.paths == ["/routes/a%20b/diffs?limit=10"],
     "a route argument that is no route name is percent-encoded, not sent raw", fake.paths)
fake.replies = [(404, {"error": "no such route '\u001b[2J'"})]
rc, out, err = cli("-c", FCONF, "diffs", "x")
t.ok(rc == 1 and "no such route '?[2J'" in err and "\x1b" not in err,
     "a 404's message is printed without its control characters", repr(err))
for status, body, want in ((500, {"error": "boom"}, "answered 500: boom"),
                           (503, b"", "answered 503: (no error message)"),
                           (200, b"<html>", "not a JSON object"),
                           (200, [1, 2], "not a JSON object")):
    fake.replies = [(status, body)]
    rc, out, err = cli("-c", FCONF, "diffs", "catalog")
    t.ok(rc == 1 and out == "" and want in err and f"127.0.0.1:{fake.port}" in err,
         f"an answer {status} {body!r}: exit 1, explained", err)
fake.replies = [(200, {"route": "catalog", "total": "many", "diffs": [1, {"status": "x"}],
                       "top_paths": [{"path": 5}], "noise_paths": "no"})]
rc, out, err = cli("-c", FCONF, "diffs", "catalog")
t.ok(rc == 0 and out.startswith("catalog: ") and not controls(out),
     "an odd but valid JSON object does not crash it", out + err)

tfake = Fake({"catalog": CANNED}, token=TOKEN)
rc, out, err = cli("-c", conf_for(tfake.port, TOKEN), "diffs", "catalog")
t.ok(rc == 0 and out.startswith("catalog: 57 shadow mismatches"), "the token is sent when "
     "configured", err)
rc, out, err = cli("-c", FCONF, "diffs", "catalog", "--admin", f"http://127.0.0.1:{tfake.port}")
t.ok(rc == 1 and "401" in err and TOKEN not in err + out, "a 401 is explained: exit 1", err)

dead = free_port()
rc, out, err = cli("-c", FCONF, "diffs", "catalog", "--admin", f"http://127.0.0.1:{dead}")
t.ok(rc == 1 and out == "" and
     f"no strangler is answering on 127.0.0.1:{dead} (connection refused)" in err,
     "nothing on the admin address: exit 1, the address named", err)

# ---- a real proxy ----
legacy = start_legacy()
fn = start_functions()  # it serves no /api/users: every shadowed request there is a mismatch
ROUTES = f"""functions:
  fn: http://127.0.0.1:{fn.port}
routes:
  - name: orders
    match: {{ path: /api/orders }}
    function: fn
    cutover: 0
  - name: users.v2
    match: {{ path: /api/users }}
    function: fn
    cutover: 0
    shadow: {{ percent: 100 }}
"""
proxy = Proxy(f"http://127.0.0.1:{legacy.port}", routes_yaml=ROUTES)
A = proxy.admin_port
for i in range(3):
    request(proxy.port, "GET", "/api/orders/1")
st, hd, body = request(A, "GET", "/routes/orders/diffs")
try:
    js = json.loads(body)
except ValueError:
    js = None
t.ok(st == 200 and hd.get("content-type", "").startswith("application/json"),
     "GET /routes/orders/diffs: 200 JSON", body)
t.eq(js, {"route": "orders", "total": 0, "kept": 0, "top_paths": [], "noise_paths": [],
          "diffs": []}, "a route without mismatches: total 0 and empty lists")
st, _, body = request(A, "GET", "/routes/users.v2/diffs?limit=5")
t.ok(st == 200 and json.loads(body).get("route") == "users.v2", "?limit=N is accepted", body)
st, _, body = request(A, "GET", "/routes/orders/diffs?limit=abc")
t.ok(st == 400 and "limit" in json.loads(body).get("error", ""), "?limit=abc: 400", body)
st, _, body = request(A, "HEAD", "/routes/orders/diffs")
t.ok(st == 200 and body == b"", "HEAD: 200 without a body", body)
st, _, body = request(A, "GET", "/routes/nope/diffs")
try:
    err_msg = json.loads(body).get("error", "")
except ValueError:
    err_msg = ""
t.ok(st == 404 and "no such route 'nope'" in err_msg and "orders, users.v2" in err_msg,
     "an unknown route: 404 naming the routes of the live table", body)
st, _, body = request(A, "GET", "/routes/_default/diffs")
t.eq(st, 404, "_default is not a route of the table: 404")
for method in ("POST", "PUT", "DELETE"):
    st, hd, body = request(A, method, "/routes/orders/diffs", body=b"")
    t.eq((st, hd.get("allow")), (405, "GET, HEAD"), f"{method}: 405 with Allow: GET, HEAD")
st, _, body = request(A, "GET", "/routes/orders/other")
t.ok(st == 404 and "/routes/NAME/diffs" in body.decode(), "another verb: 404 naming diffs", body)
st, _, body = request(A, "GET", "/routes/orders/cutover")
t.eq(st, 405, "GET on cutover is still 405")

rc, out, err = cli("-c", proxy.conf, "diffs", "orders")
t.ok(rc == 0 and out == "orders: no shadow mismatches since the proxy started\n",
     "strangler diffs on a real proxy: no mismatches", out + err)
rc, out, err = cli("-c", proxy.conf, "diffs", "orders", "--json", "--limit", "1")
try:
    js = json.loads(out)
except ValueError:
    js = None
t.ok(rc == 0 and js is not None and js.get("diffs") == [] and js.get("route") == "orders",
     "strangler diffs --json on a real proxy", out + err)
rc, out, err = cli("-c", proxy.conf, "diffs", "nope")
t.ok(rc == 1 and out == "" and
     "strangler diffs: no such route 'nope' in the live table; routes: orders, users.v2" in err,
     "strangler diffs with an unknown route: exit 1, the routes listed", err)

# Shadowed requests that differ: recorded with the request id the client sent, newest first.
IDS = [f"diffs-e2e-{i}" for i in range(3)]


def diffs_when(n):
    """GET /routes/users.v2/diffs once it counts n mismatches (comparisons end after the
    responses), or as it is at the deadline."""
    js = {}
    deadline = time.time() + 15 * SLOW
    while time.time() < deadline:
        st, _, body = request(A, "GET", "/routes/users.v2/diffs")
        js = json.loads(body) if st == 200 else {}
        if js.get("total", 0) >= n:
            break
        time.sleep(0.05)
    return js


for i, rid in enumerate(IDS):
    st, _, _ = request(proxy.port, "GET", f"/api/users/{i + 1}", headers={"X-Request-Id": rid})
    t.eq(st, 200, f"GET /api/users/{i + 1} through the proxy: legacy's 200")
    js = diffs_when(i + 1)  # one at a time: the order of the records is the order sent
got = js.get("diffs", [])
t.ok(js.get("total") == 3 and js.get("kept") == 3 and
     [d.get("request_id") for d in got] == IDS[::-1],
     "three shadow mismatches, newest first, with the clients' request ids", js)
t.ok(all(d.get("method") == "GET" and d.get("status") == {"legacy": 200, "function": 404} and
         d.get("differences") and re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", d.get("ts", ""))
         for d in got) and [d.get("path") for d in got] == ["/api/users/3", "/api/users/2",
                                                           "/api/users/1"],
     "each: method, path, both statuses, its differences and an ISO 8601 time", got)
top = js.get("top_paths", [])
t.ok(top and all(0 < x.get("count", 0) <= 3 for x in top), "top_paths counted", top)
rc, out, err = cli("-c", proxy.conf, "diffs", "users.v2", "--limit", "1")
heads = [x for x in out.splitlines() if re.match(r"^\d{4}-\d\d-\d\d ", x)]
t.ok(rc == 0 and out.startswith("users.v2: 3 shadow mismatches since the proxy started; the "
                                "latest 1 of the 3 kept") and len(heads) == 1 and
     heads[0].endswith("  GET /api/users/3  req diffs-e2e-2  status 200/404"),
     "strangler diffs --limit 1 on a real proxy: the newest mismatch", out + err)

t.ok(not cli_sanitizer_hits, "no sanitizer report from any CLI run", "\n".join(cli_sanitizer_hits))
t.eq(proxy.stop(), 0, "the proxy exits 0 on SIGTERM")
t.ok(proxy.sanitizer_report() is None, "no sanitizer report from the proxy",
     proxy.sanitizer_report())
