#!/usr/bin/env python3
# The operator command line against a running proxy and without one: routes, reload, cutover,
# rollback (one route, --all, the restore command it prints), history, usage errors, a broken
# routes file, and the admin token.
import json
import os
import re
import shlex
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F403

t = Tap()
TOKEN = "t0ken-" + "x" * 26


cli = cli_run


def read(path):
    with open(path) as f:
        return f.read()


def audit_lines(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def live(conf):
    rc, out, err = cli("-c", conf, "routes", "--json")
    try:
        return json.loads(out)
    except ValueError:
        return {"rc": rc, "stdout": out, "stderr": err}


def route_of(js, name):
    for r in js.get("routes", []):
        if r.get("name") == name:
            return r
    return {}


legacy = start_legacy()
fn = start_functions()
F = f"http://127.0.0.1:{fn.port}"

ROUTES = f"""functions:
  fn: {F}

# routes under test: comments and blank lines must survive every edit
routes:
  - name: orders
    match: {{ path: /api/orders }}
    function: fn
    cutover: 0          # raised by the test

  - name: users
    match: {{ path: /api/users, methods: [GET] }}
    function: fn
    cutover: 40
    sticky: header:x-user-id
"""
proxy = Proxy(f"http://127.0.0.1:{legacy.port}", routes_yaml=ROUTES, settings="audit_log: audit.log\n")
P, CONF, RFILE = proxy.port, proxy.conf, proxy.routes
AUDIT = os.path.join(proxy.dir, "audit.log")


def count(port):
    _, _, body = request(port, "GET", "/__count")
    return json.loads(body)["requests"]


def served(path, headers=None):
    """'function' or 'legacy', from the stand-ins' request counters."""
    before = (count(fn.port), count(legacy.port))
    request(P, "GET", path, headers)
    after = (count(fn.port), count(legacy.port))
    if after == (before[0] + 1, before[1]):
        return "function"
    if after == (before[0], before[1] + 1):
        return "legacy"
    return f"unclear {before} -> {after}"


# --help everywhere; the top-level help lists every command.
rc, out, _ = cli("--help")
t.eq(rc, 0, "strangler --help exits 0")
t.ok(all(re.search(rf"^  {c}\b", out, re.M) for c in
         ("run", "check", "routes", "reload", "cutover", "rollback", "history")),
     "strangler --help lists run, check, routes, reload, cutover, rollback, history", out)
for c in ("run", "check", "routes", "reload", "cutover", "rollback", "history"):
    rc, out, _ = cli(c, "--help")
    t.ok(rc == 0 and out.startswith(f"usage: strangler {c}"), f"strangler {c} --help exits 0")
rc, out, _ = cli("help", "cutover")
t.ok(rc == 0 and out.startswith("usage: strangler cutover"), "strangler help cutover")
rc, _, err = cli("frobnicate")
t.ok(rc == 2 and "unknown command" in err, "an unknown command is a usage error (2)", err)
rc, _, err = cli("routes", "--frob")
t.ok(rc == 2 and "unknown option '--frob'" in err, "an unknown option is a usage error (2)", err)

# routes: the live table, in text and JSON.
js = live(CONF)
t.eq((route_of(js, "orders").get("cutover"), route_of(js, "users").get("cutover")), (0, 40),
     "routes --json: the live cutovers")
rc, out, err = cli("routes", "-c", CONF)
t.ok(rc == 0 and re.search(r"^version:\s+" + re.escape(js.get("version", "?")), out, re.M) and
     re.search(r"^NAME\s+MATCH\s+FUNCTION\s+CUTOVER\s+STICKY\s+FALLBACK\s+SHADOW\s+GUARD\s+STATE$",
               out, re.M),
     "routes (-c after the command): header with the version, then the table's columns", out + err)
t.ok(re.search(r"^users\s+/api/users GET\s+fn\s+40%\s+header:x-user-id\s+-\s+-\s+-\s+active$",
               out, re.M), "routes: a row per route (match with methods, cutover, sticky, state)",
     out)
t.ok(re.search(r"^last reload:\s+none", out, re.M), "routes: no reload yet", out)

# cutover: one value in the file changes, the proxy applies it, the audit log records it.
t.eq(served("/api/orders/1"), "legacy", "before: orders at 0% goes to legacy")
before = read(RFILE)
rc, out, err = cli("-c", CONF, "cutover", "orders", "100", "--reason", "canary is clean")
after = read(RFILE)
t.ok(rc == 0 and out.startswith("orders: cutover 0% -> 100% (") and
     out.rstrip().endswith("applied by the running proxy"),
     "cutover orders 100: prints the change and that the proxy applied it", out + err)
t.eq(after, before.replace("    cutover: 0          # raised", "    cutover: 100          # raised"),
     "cutover changed only that value: comments, blank lines and other bytes are kept")
t.ok(all(served("/api/orders/1") == "function" for _ in range(5)),
     "the running proxy applied it: orders now goes to the function")
entries = audit_lines(AUDIT)
e = entries[-1] if entries else {}
js = live(CONF)
want_actor = os.environ.get("USER") or __import__("pwd").getpwuid(os.getuid()).pw_name
t.eq((len(entries), e.get("route"), e.get("from"), e.get("to"), e.get("action"), e.get("reason"),
      e.get("actor"), e.get("version")),
     (1, "orders", 0, 100, "cutover", "canary is clean", want_actor, js.get("version")),
     "the audit log has the entry: route, from, to, action, reason, actor, the new version")
t.eq(route_of(js, "orders").get("cutover"), 100, "routes --json shows the new value")
rc, out, _ = cli("-c", CONF, "routes")
t.ok(re.search(r"^orders\s+/api/orders\s+fn\s+100%\s", out, re.M), "routes shows 100%", out)

# A no-op says so and is not audited; "25%" style is accepted.
rc, out, _ = cli("-c", CONF, "cutover", "users", "40%")
t.ok(rc == 0 and "already 40%" in out and len(audit_lines(AUDIT)) == 1,
     "cutover to the current value: says so, no audit entry", out)

# history: the table, a route filter, JSON with a limit.
rc, out, _ = cli("-c", CONF, "history")
t.ok(rc == 0 and re.search(r"orders\s+0% -> 100%\s+cutover\s+\S+\s+canary is clean", out),
     "history lists the cutover", out)
rc, out, _ = cli("-c", CONF, "history", "users")
t.ok(rc == 0 and "no cutover changes recorded for route users" in out,
     "history ROUTE: an empty history says so", out)

# rollback: prints the restore command; running it restores the value.
rc, out, err = cli("-c", CONF, "rollback", "orders", "--reason", "errors up")
m = re.search(r"^orders: rolled back 100% -> 0%\. To restore: (.+)$", out, re.M)
t.ok(rc == 0 and m and "applied by the running proxy" in out,
     "rollback orders: the old value and the command that restores it", out + err)
t.eq(served("/api/orders/1"), "legacy", "after the rollback orders goes to legacy")
t.eq(route_of(live(CONF), "orders").get("state"), "rolled_back", "routes: state rolled_back")
restore = shlex.split(m.group(1)) if m else ["strangler", "?"]
rc, out, err = cli(*restore[1:])
t.ok(rc == 0 and restore[0] == "strangler" and "-> 100%" in out,
     f"the printed restore command works: {' '.join(restore)}", out + err)
t.ok(route_of(live(CONF), "orders").get("cutover") == 100 and
     served("/api/orders/1") == "function", "the restore command put orders back at 100%")

# rollback --all: every route above 0, each audited, one restore command each.
n_before = len(audit_lines(AUDIT))
rc, out, err = cli("-c", CONF, "rollback", "--all")
js = live(CONF)
t.ok(rc == 0 and "orders: rolled back 100% -> 0%. To restore: " in out and
     "users: rolled back 40% -> 0%. To restore: " in out and
     [r.get("cutover") for r in js.get("routes", [])] == [0, 0],
     "rollback --all: both routes at 0, a restore command for each", out + err)
new = audit_lines(AUDIT)[n_before:]
t.eq([(x.get("route"), x.get("action"), x.get("from")) for x in new],
     [("orders", "rollback", 100), ("users", "rollback", 40)], "rollback --all: each audited")
t.eq(read(RFILE), before.replace("cutover: 40", "cutover: 0"),
     "after rollback --all the file differs from the start only in users' value")
rc, out, _ = cli("-c", CONF, "history", "users")
t.ok(rc == 0 and "users" in out and "orders" not in out, "history ROUTE filters", out)
rc, out, _ = cli("-c", CONF, "history", "--json", "--limit", "2")
try:
    h = json.loads(out)
except ValueError:
    h = None
t.ok(isinstance(h, list) and [x["route"] for x in h] == ["orders", "users"],
     "history --json --limit 2: the last two entries as JSON", out)
rc, out, _ = cli("-c", CONF, "rollback", "--all")
t.ok(rc == 0 and "nothing changed" in out, "rollback --all with everything at 0: nothing to do",
     out)

# Unknown route and bad percentages.
rc, out, err = cli("-c", CONF, "cutover", "nosuch", "5")
t.ok(rc == 1 and "nosuch" in err and "orders" in err and "users" in err,
     "cutover of an unknown route: exit 1, the message lists the routes", err)
rc, out, err = cli("-c", CONF, "rollback", "nosuch")
t.ok(rc == 1 and "orders" in err, "rollback of an unknown route: exit 1", err)
for bad in ("101", "12.345", "abc", "-5", "", "1e2", "50.", "100.01"):
    rc, out, err = cli("-c", CONF, "cutover", "orders", bad)
    t.ok(rc == 2 and "0 to 100" in err, f"cutover orders {bad!r}: usage error (2) saying what is allowed",
         err)
rc, _, err = cli("-c", CONF, "cutover", "orders")
t.eq(rc, 2, "cutover without a percent: usage error")
rc, _, err = cli("-c", CONF, "history", "--limit", "x")
t.eq(rc, 2, "history --limit x: usage error")
t.eq(len(audit_lines(AUDIT)), n_before + 2, "refused commands wrote no audit entry")

# reload.
rc, out, err = cli("-c", CONF, "reload")
t.ok(rc == 0 and "no changes" in out, "reload with nothing new: no changes", out + err)

# A broken routes file: reload fails with FILE:LINE:COL, routes shows it, the old table serves.
rc, out, _ = cli("-c", CONF, "cutover", "orders", "100")
good = read(RFILE)
with open(RFILE, "w") as f:
    f.write(good.replace("cutover: 0", "cutover: 150"))
rc, out, err = cli("-c", CONF, "reload")
t.ok(rc == 1 and re.search(re.escape(RFILE) + r":\d+:\d+: .*cutover", err),
     "reload of a broken file: exit 1, the error at FILE:LINE:COL", err)
rc, out, err = cli("-c", CONF, "routes")
t.ok(rc == 0 and re.search(r"^last reload:\s+FAILED .*" + re.escape(RFILE) + r":\d+:\d+:", out,
                           re.M), "routes shows the last reload's error in full", out)
t.ok(served("/api/orders/1") == "function" and route_of(live(CONF), "users").get("cutover") == 0,
     "the proxy keeps serving the old table")
rc, _, err = cli("-c", CONF, "cutover", "users", "10")
t.ok(rc == 1 and "does not load" in err, "cutover refuses to edit a file that does not load", err)
with open(RFILE, "w") as f:
    f.write(good)
rc, out, err = cli("-c", CONF, "reload")
t.eq(rc, 0, "reload of the repaired file succeeds")

# No proxy running: the file is the source of truth.
down = tempfile.mkdtemp(prefix="sf-conf-")
down_admin = free_port()
DCONF, DROUTES = os.path.join(down, "strangler.yaml"), os.path.join(down, "routes.yaml")
with open(DCONF, "w") as f:
    f.write(f"listen:\n  - address: 127.0.0.1:{free_port()}\nadmin:\n  address: "
            f"127.0.0.1:{down_admin}\nroutes_file: routes.yaml\naudit_log: audit.log\n")
with open(DROUTES, "w") as f:
    f.write(f"legacy: http://127.0.0.1:{legacy.port}\n" + ROUTES)
rc, out, err = cli("-c", DCONF, "cutover", "orders", "12.5")
t.ok(rc == 0 and out.startswith("orders: cutover 0% -> 12.5% (") and
     f"no strangler is running on 127.0.0.1:{down_admin}: the change applies when it starts" in out,
     "cutover without a proxy: edits the file, says the change applies at start", out + err)
t.ok("cutover: 12.5          # raised" in read(DROUTES) and
     len(audit_lines(os.path.join(down, "audit.log"))) == 1, "the file and the audit log have it")
rc, out, err = cli("-c", DCONF, "routes")
t.ok(rc == 0 and f"no strangler is answering on 127.0.0.1:{down_admin} (connection refused)" in err
     and re.search(r"^orders\s+/api/orders\s+fn\s+12.5%\s.*not running$", out, re.M),
     "routes without a proxy: says so, shows the file with STATE not running", out + err)
rc, out, err = cli("-c", DCONF, "routes", "--json")
try:
    ok = json.loads(out)["routes"][0]["state"] == "not running"
except (ValueError, KeyError, IndexError):
    ok = False
t.ok(rc == 0 and ok, "routes --json without a proxy: the file in the API's shape", out)
rc, out, err = cli("-c", DCONF, "reload")
t.ok(rc == 1 and "no strangler is answering" in err, "reload without a proxy: exit 1", err)
rc, out, err = cli("-c", DCONF, "rollback", "orders")
t.ok(rc == 0 and "To restore: strangler -c " in out and "applies when it starts" in out,
     "rollback without a proxy", out + err)

# The admin token: sent when configured, never printed; a wrong address fails cleanly.
tdir = tempfile.mkdtemp(prefix="sf-conf-")
tport, tadmin = free_port(), free_port()
TCONF = os.path.join(tdir, "strangler.yaml")
with open(os.path.join(tdir, "token"), "w") as f:
    f.write(TOKEN + "\n")
with open(TCONF, "w") as f:
    f.write(f"listen:\n  - address: 127.0.0.1:{tport}\nadmin:\n  address: 127.0.0.1:{tadmin}\n"
            f"  token_file: token\nroutes_file: routes.yaml\nlog: {{ level: info, access: off }}\n")
with open(os.path.join(tdir, "routes.yaml"), "w") as f:
    f.write(f"legacy: http://127.0.0.1:{legacy.port}\n" + ROUTES)
tproxy = Proc([STRANGLER, "run", "-c", TCONF], port=tport)
wait_port(tadmin)
st, _, _ = request(tadmin, "GET", "/routes")
t.eq(st, 401, "the token proxy refuses a call without the token")
rc, out, err = cli("-c", TCONF, "routes")
t.ok(rc == 0 and re.search(r"^orders\s", out, re.M) and "not running" not in out,
     "routes with admin.token_file: the CLI sends the token", out + err)
rc, out, err = cli("-c", TCONF, "cutover", "orders", "50")
t.ok(rc == 0 and "applied by the running proxy" in out, "cutover with a token", out + err)
rc, out, err = cli("-c", CONF, "routes", "--admin", f"http://127.0.0.1:{tadmin}")
t.ok(rc == 1 and "401" in err, "a call without the right token: exit 1 with the 401 explained",
     err)
wrong = free_port()
rc, out, err = cli("-c", TCONF, "reload", "--admin", f"http://127.0.0.1:{wrong}/")
t.ok(rc == 1 and f"127.0.0.1:{wrong} (connection refused)" in err,
     "a wrong --admin port: exit 1, no strangler answering there", err)
rc, out, err = cli("-c", TCONF, "routes", "--admin", f"http://127.0.0.1:{wrong}")
t.ok(rc == 0 and "showing" in err and "not running" in out,
     "routes with a wrong --admin port falls back to the file", err)
rc, out, err = cli("-c", TCONF, "routes", "--admin", "https://127.0.0.1:1")
t.eq(rc, 2, "--admin https://... is a usage error")
t.ok(not any(TOKEN in o for o in cli_outputs), "the token never appears in the CLI's output")

t.ok(not cli_sanitizer_hits, "no sanitizer report from any CLI run", "\n".join(cli_sanitizer_hits))
t.eq(tproxy.stop(), 0, "the token proxy exits 0 on SIGTERM")
t.eq(proxy.stop(), 0, "the proxy exits 0 on SIGTERM")
t.ok(proxy.sanitizer_report() is None and tproxy.sanitizer_report() is None,
     "no sanitizer report from the proxies", proxy.sanitizer_report() or tproxy.sanitizer_report())
