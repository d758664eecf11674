#!/usr/bin/env python3
# Admin safety (issue 7): what a web page in a browser could do to a tokenless admin address on
# loopback (DNS rebinding, cross-site POSTs) is refused while tools keep working; the admin API is
# not reachable through the proxy listener; the token never shows in any log or CLI output.
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F403

t = Tap()
legacy = start_legacy()
fn = start_functions()
ROUTES = f"""functions:
  fn: http://127.0.0.1:{fn.port}
routes:
  - name: orders
    match: {{ path: /__echo/orders }}
    function: fn
    cutover: 10
"""
proxy = Proxy(f"http://127.0.0.1:{legacy.port}", routes_yaml=ROUTES,
              settings="audit_log: audit.log\n")
A = proxy.admin_port


def file_text():
    with open(proxy.routes) as f:
        return f.read()


def call(method, path, headers, body=None, port=None):
    h = dict(headers)
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    st, _, raw_ = request(port or A, method, path, body=data, headers=h)
    return st, raw_


before = file_text()
# DNS rebinding: a page on evil.example whose name now resolves to 127.0.0.1 reads and writes
# with Host: evil.example.
for method, path, body in (("GET", "/stats", None), ("GET", "/routes", None),
                           ("POST", "/routes/orders/rollback", {"reason": "x"}),
                           ("GET", "/", None)):
    st, b = call(method, path, {"Host": "evil.example:%d" % A}, body)
    t.ok(st == 403 and b"DNS rebinding" in b,
         f"{method} {path} with a foreign Host: 403 (DNS rebinding guard)", (st, b[:120]))
for host in ("localhost:%d" % A, "127.0.0.1:%d" % A, "127.0.0.2", "LOCALHOST", "[::1]:%d" % A):
    st, _ = call("GET", "/healthz", {"Host": host})
    t.eq(st, 200, f"Host {host} is local: served")
st, _ = call("GET", "/healthz", {"Host": "127.evil.example"})
t.eq(st, 403, "a name that only starts with 127. is not local")

# Cross-site POSTs: a form or fetch from another origin; the browser names it.
for hdrs, what in (({"Origin": "http://evil.example"}, "Origin of another site"),
                   ({"Origin": "null"}, "Origin null (sandboxed page, file://)"),
                   ({"Origin": f"http://127.0.0.1:{A + 1}"}, "Origin on another port"),
                   ({"Sec-Fetch-Site": "cross-site"}, "Sec-Fetch-Site: cross-site"),
                   ({"Sec-Fetch-Site": "same-site"}, "Sec-Fetch-Site: same-site")):
    st, b = call("POST", "/routes/orders/cutover", hdrs, {"percent": 100})
    t.ok(st == 403 and b"refused" in b, f"a cutover POST with {what}: 403", (st, b[:120]))
    st, _ = call("POST", "/reload", hdrs)
    t.eq(st, 403, f"a reload POST with {what}: 403")
t.eq(file_text(), before, "none of the refused calls changed routes.yaml")
st, b = call("GET", "/stats", {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"})
t.eq(st, 200, "a cross-site GET is answered (the browser keeps the answer from the page: no CORS)")

# The same origin (the dashboard's own page) and tools without those headers may change things.
st, b = call("POST", "/routes/orders/cutover",
             {"Origin": f"http://127.0.0.1:{A}", "Sec-Fetch-Site": "same-origin"},
             {"percent": 20, "reason": "same origin"})
t.eq(st, 200, "a POST from the admin address's own origin is served")
rc, out, err = cli_run("cutover", "orders", "30", "-c", proxy.conf)
t.ok(rc == 0 and "cutover: 30" in file_text(), "strangler cutover still works", out + err)

# The proxy listener never answers admin calls: they are ordinary paths sent to the monolith.
before_count = json.loads(request(legacy.port, "GET", "/__count")[2])["requests"]
for path in ("/stats", "/routes", "/metrics"):
    st, _, b = request(proxy.port, "GET", path)
    t.ok(b'"legacy_share"' not in b and b"strangler_requests_total" not in b,
         f"GET {path} on the proxy port is not the admin API", b[:120])
st, _, _ = request(proxy.port, "POST", "/routes/orders/rollback", body=b"{}")
t.ok("cutover: 30" in file_text(), "a rollback POST on the proxy port changes nothing")
after_count = json.loads(request(legacy.port, "GET", "/__count")[2])["requests"]
t.eq(after_count - before_count, 4, "those requests went to the monolith like any other")
t.eq(proxy.stop(), 0, "strangler exits 0")
t.ok(proxy.sanitizer_report() is None, "no sanitizer report", proxy.sanitizer_report())

# With a token: the Host guard steps aside (the token is what a page cannot have), the cross-site
# guard stays; the token shows in no log, no audit entry and no CLI output.
token = "tok-" + os.urandom(12).hex()
tokdir = tempfile.mkdtemp(prefix="sf-tok-")
tokfile = os.path.join(tokdir, "admin.token")
with open(tokfile, "w") as f:
    f.write(token + "\n")
p2 = Proxy(f"http://127.0.0.1:{legacy.port}", routes_yaml=ROUTES, access="access.log",
           settings="audit_log: audit.log\n", admin_extra=f"  token_file: {tokfile}\n")
auth = {"Authorization": f"Bearer {token}"}
st, _ = call("GET", "/stats", dict(auth, Host="strangler.internal:9901"), port=p2.admin_port)
t.eq(st, 200, "with a token, a call by any host name is served")
st, _ = call("POST", "/routes/orders/cutover", dict(auth, Origin="http://evil.example"),
             {"percent": 50}, port=p2.admin_port)
t.eq(st, 403, "with a token, a cross-origin POST is still refused")
st, _ = call("POST", "/routes/orders/cutover", {"Authorization": f"Bearer {token}x"},
             {"percent": 50}, port=p2.admin_port)
t.eq(st, 401, "a wrong token is 401")
st, _ = call("POST", "/routes/orders/cutover", auth, {"percent": 40, "reason": "token"},
             port=p2.admin_port)
t.eq(st, 200, "the right token changes the cutover")
rc, out, err = cli_run("rollback", "orders", "--reason", "cli", "-c", p2.conf)
t.eq(rc, 0, "strangler rollback with the token file works")
rc, out, err = cli_run("stats", "--json", "-c", p2.conf)
t.eq(rc, 0, "strangler stats with the token file works")
st, _, _ = request(p2.port, "GET", "/__echo", headers={"Authorization": f"Bearer {token}"})
t.eq(st, 200, "a proxied request carrying the token as a header")
p2.stop()
logs = p2.output()
for name in ("access.log", "audit.log", "routes.yaml", "strangler.yaml"):
    path = os.path.join(p2.dir, name)
    if os.path.exists(path):
        with open(path) as f:
            logs += f.read()
t.ok(token not in logs, "the token shows in no log, audit entry or config file")
t.ok(all(token not in o for o in cli_outputs), "nor in any CLI output")
t.ok(not cli_sanitizer_hits, "no sanitizer report from the CLI", cli_sanitizer_hits)
t.ok(p2.sanitizer_report() is None, "no sanitizer report", p2.sanitizer_report())
