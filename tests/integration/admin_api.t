#!/usr/bin/env python3
# The admin API (DESIGN §6): GET /routes, cutover and rollback persisted to routes.yaml (one
# value changes, comments stay), applied at once and audited, GET /history, method rules, the
# bearer token, and the refusal of a non-loopback admin address without a token.
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F403

t = Tap()
legacy = start_legacy()
fn = start_functions()
F = f"http://127.0.0.1:{fn.port}"
FN_HOST = f"127.0.0.1:{fn.port}"

ROUTES = f"""# Routes for the admin API test.
functions:
  fn: {F}     # the function host

routes:
  # moves through the API
  - name: orders
    match: {{ path: /__echo/orders, methods: [GET, POST] }}
    function: fn
    cutover: 10   # ten percent
    sticky: header:x-user-id

  - name: users        # no cutover key yet
    match:
      regex: '^/__echo/users/[0-9]+$'
    function: fn
"""
proxy = Proxy(f"http://127.0.0.1:{legacy.port}", routes_yaml=ROUTES,
              settings="audit_log: audit.log\n")
P, A = proxy.port, proxy.admin_port
audit = os.path.join(proxy.dir, "audit.log")


def admin(method, path, body=None, headers=None, port=None):
    h = dict(headers or {})
    data = None
    if body is not None:
        data = json.dumps(body).encode() if not isinstance(body, bytes) else body
        h["Content-Type"] = "application/json"
    st, hd, raw_ = request(port or A, method, path, body=data, headers=h)
    try:
        return st, hd, json.loads(raw_)
    except ValueError:
        return st, hd, raw_


def file_text():
    with open(proxy.routes) as f:
        return f.read()


def who():
    st, js = echo(P, path="/__echo/orders", headers={"X-User-Id": "u1"})
    return "function" if echoed_headers(js).get("host", [""])[0] == FN_HOST else "legacy"


# GET /routes: the live table.
st, hd, js = admin("GET", "/routes")
t.eq(st, 200, "GET /routes is 200")
t.ok("json" in hd.get("content-type", ""), "GET /routes is JSON")
names = [r.get("name") for r in js.get("routes", [])]
t.eq(names, ["orders", "users"], "GET /routes lists the routes in file order")
o = js["routes"][0]
t.eq((o.get("cutover"), o.get("function"), o.get("sticky"), o.get("state")),
     (10, "fn", "header:x-user-id", "active"), "a route's cutover, function, sticky and state")
t.eq(o.get("match"), {"path": "/__echo/orders", "methods": ["GET", "POST"], "headers": {}},
     "a route's match")
t.ok(len(js.get("version", "")) == 16 and js.get("loaded_at", "").endswith("Z"),
     "version hash and loaded_at", js.get("version"))

# POST /routes/NAME/cutover: the file changes in exactly one value, the proxy applies it.
before = file_text()
st, _, js = admin("POST", "/routes/orders/cutover", {"percent": 100, "reason": "canary clean"})
t.eq((st, js.get("from"), js.get("to")), (200, 10, 100), "cutover 10 -> 100 through the API")
after = file_text()
t.eq(after, before.replace("cutover: 10   # ten percent", "cutover: 100   # ten percent"),
     "only the cutover value changed in routes.yaml; comments and blank lines kept")
t.eq(who(), "function", "the new cutover is live at once")
t.ok((js.get("reload") or {}).get("ok") is True, "the answer includes the reload result", js)

# A route without a cutover key gets one.
st, _, js = admin("POST", "/routes/users/cutover", {"percent": 12.5})
t.eq((st, js.get("from"), js.get("to")), (200, 0, 12.5), "cutover of a route without the key")
t.ok("    function: fn\n    cutover: 12.5\n" in file_text(), "cutover: 12.5 inserted at the "
     "route's indentation", file_text())

# The watcher sees the same edit 200 ms later: that no-op must not hide what the API applied.
time.sleep(0.8 * SLOW)
st, _, js = admin("GET", "/routes")
lr = js.get("last_reload") or {}
t.ok(lr.get("trigger") == "api" and any("users: cutover" in c for c in lr.get("changes", [])),
     "GET /routes still shows the API's reload and its changes after the watcher fired", lr)

# Rollback: to 0, state rolled_back.
st, _, js = admin("POST", "/routes/orders/rollback", {"reason": "errors up"})
t.eq((st, js.get("from"), js.get("to"), js.get("action")), (200, 100, 0, "rollback"),
     "rollback 100 -> 0")
t.eq(who(), "legacy", "after the rollback the route is served by legacy")
st, _, js = admin("GET", "/routes")
t.eq(js["routes"][0].get("state"), "rolled_back", "GET /routes shows the route as rolled_back")

# The audit log and GET /history.
with open(audit) as f:
    lines = [json.loads(x) for x in f if x.strip()]
t.eq([(e["route"], e["from"], e["to"], e["action"], e["actor"]) for e in lines],
     [("orders", 10, 100, "cutover", "admin-api"), ("users", 0, 12.5, "cutover", "admin-api"),
      ("orders", 100, 0, "rollback", "admin-api")], "every change is in the audit log")
t.eq(lines[0].get("reason"), "canary clean", "the reason is audited")
st, _, js = admin("GET", "/history")
t.eq((st, len(js)), (200, 3), "GET /history returns the three entries")
st, _, js = admin("GET", "/history?route=orders&limit=1")
t.eq([(e["action"], e["to"]) for e in js], [("rollback", 0)], "GET /history?route=&limit=")

# Who asked for a reload is recorded.
st, _, js = admin("POST", "/reload?trigger=cli")
t.eq((st, js.get("trigger"), js.get("changes")), (200, "cli", []),
     "POST /reload?trigger=cli of an unchanged file: trigger cli, no changes")
st, _, js = admin("POST", "/reload?trigger=bogus")
t.eq(js.get("trigger"), "api", "any other trigger is api")

# A request after empty lines (RFC 9112 §2.2 lets a server skip them), pipelined with another:
# the body is read from the right place.
s_ = connect(A)
body = b'{"percent": 10, "reason": "leading CRLF"}'
s_.sendall(b"\r\n\r\nPOST /routes/orders/cutover HTTP/1.1\r\nHost: localhost\r\nContent-Type: "
           b"application/json\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" +
           body + b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
st1, _, b1 = read_response(s_)
st2, _, b2 = read_response(s_)
s_.close()
t.eq((st1, json.loads(b1).get("to"), st2), (200, 10, 200),
     "an admin POST after empty lines, pipelined with a GET: both answered right")

# Errors.
st, _, js = admin("POST", "/routes/nope/cutover", {"percent": 5})
t.ok(st == 404 and "orders" in js.get("error", "") and "users" in js.get("error", ""),
     "an unknown route is 404 and the message lists the routes", js)
for bad in [{"percent": 101}, {"percent": -1}, {"percent": "25"}, {"percent": 1.234}, {}]:
    st, _, js = admin("POST", "/routes/orders/cutover", bad)
    t.eq(st, 400, f"cutover body {bad} is 400")
st, _, js = admin("POST", "/routes/orders/cutover", b"{not json")
t.eq(st, 400, "a body that is not JSON is 400")
st, hd, _ = admin("GET", "/routes/orders/cutover")
t.eq((st, hd.get("allow")), (405, "POST"), "GET on a mutation is 405 with Allow: POST")
st, hd, _ = admin("POST", "/routes")
t.eq((st, hd.get("allow")), (405, "GET, HEAD"), "POST /routes is 405 with Allow: GET, HEAD")
st, _, _ = admin("GET", "/nothing")
t.eq(st, 404, "an unknown admin path is 404")
t.eq(file_text().count("cutover:"), 2, "refused calls changed nothing in the file")

# A token: every call needs it; it never shows in the logs.
token = "s3cret-token-0123456789"
tokfile = os.path.join(proxy.dir, "admin.token")
with open(tokfile, "w") as f:
    f.write(token + "\n")
p2 = Proxy(f"http://127.0.0.1:{legacy.port}", routes_yaml=ROUTES,
           settings=f"audit_log: audit.log\n",
           admin_extra=f"  token_file: {tokfile}\n")
st, hd, _ = admin("GET", "/healthz", port=p2.admin_port)
t.eq((st, hd.get("www-authenticate")), (401, "Bearer"),
     "with a token configured, a call without Authorization is 401 with WWW-Authenticate")
st, _, _ = admin("GET", "/routes", headers={"Authorization": "Bearer wrong-token-000000000"},
                 port=p2.admin_port)
t.eq(st, 401, "a wrong token is 401")
st, _, js = admin("POST", "/routes/orders/cutover", {"percent": 50},
                  headers={"Authorization": "Bearer nope"}, port=p2.admin_port)
t.eq(st, 401, "a mutation with a wrong token is 401")
st, _, js = admin("GET", "/routes", headers={"Authorization": f"Bearer {token}"},
                  port=p2.admin_port)
t.eq(st, 200, "the right token is 200")
for path in ("/stats", "/metrics"):
    st, _, _ = admin("GET", path, port=p2.admin_port)
    t.eq(st, 401, f"GET {path} without the token is 401")
st, hd, page = admin("GET", "/", port=p2.admin_port)
t.ok(st == 200 and hd.get("content-type", "").startswith("text/html") and
     b"<html" in page.lower() if isinstance(page, bytes) else False,
     "the dashboard page itself is served without the token (it holds no data)", (st, hd))
csp = hd.get("content-security-policy", "")
t.ok("default-src 'none'" in csp and "connect-src 'self'" in csp,
     "the page may load nothing and talk only to the admin address (CSP)", csp)
st, hd, _ = admin("POST", "/", port=p2.admin_port)
t.eq((st, hd.get("allow")), (405, "GET, HEAD"), "POST / is 405")
p2.stop()
t.ok(token not in p2.output(), "the token is never logged")

# A non-loopback admin address needs a token: a start-up error.
conf = os.path.join(proxy.dir, "open.yaml")
with open(conf, "w") as f:
    f.write(f"listen:\n  - address: 127.0.0.1:{free_port()}\nadmin:\n  address: 0.0.0.0:{free_port()}\n"
            "routes_file: routes.yaml\n")
r = subprocess.run([os.path.join(BIN, "strangler"), "run", "-c", conf], capture_output=True,
                   text=True, timeout=20)
t.ok(r.returncode == 1 and "open.yaml:4:12:" in r.stderr and "token_file" in r.stderr,
     "a non-loopback admin address without token_file is refused at start", r.stderr)

t.eq(proxy.stop(), 0, "the proxy exits 0 on SIGTERM")
t.ok(proxy.sanitizer_report() is None, "no sanitizer report", proxy.sanitizer_report())
