#!/usr/bin/env python3
# The proxy's life: command line, configuration errors before any port is bound, client
# timeouts (slowloris, stalled body, idle keep-alive), the access log, and drain on SIGTERM.
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F403

t = Tap()
STRANGLER = os.path.join(BIN, "strangler")


def run_cli(*args, env=None):
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run([STRANGLER, *args], capture_output=True, text=True, timeout=30, env=e)
    return p.returncode, p.stdout, p.stderr


# Command line.
rc, out, err = run_cli("--help")
t.ok(rc == 0 and "run" in out and "check" in out, "strangler --help lists the commands", out)
rc, out, err = run_cli("run", "--help")
t.ok(rc == 0 and "SIGTERM" in out, "strangler run --help explains run", out)
rc, out, err = run_cli("frobnicate")
t.ok(rc == 2 and "unknown command" in err, "an unknown command is a usage error (2)", err)
rc, out, err = run_cli("run", "--bogus")
t.eq(rc, 2, "an unknown option is a usage error (2)")


def write_conf(text, routes="legacy: http://127.0.0.1:1\nfunctions: {}\nroutes: []\n"):
    d = tempfile.mkdtemp(prefix="sf-conf-")
    with open(os.path.join(d, "strangler.yaml"), "w") as f:
        f.write(text)
    with open(os.path.join(d, "routes.yaml"), "w") as f:
        f.write(routes)
    return os.path.join(d, "strangler.yaml")


# Invalid configuration: every error at FILE:LINE:COL, exit 1, no port bound.
port = free_port()
conf = write_conf(f"listen:\n  - address: 127.0.0.1:{port}\n"
                  "timeouts: { client_header: 10 }\n"
                  "limits:\n  max_headers: many\n"
                  "colour: blue\n")
# The test holds the port while the proxy runs: a proxy that bound it before reporting the
# configuration's errors would fail on that bind instead ("cannot listen").
with holding_ports(port):
    rc, out, err = run_cli("run", "-c", conf)
run_err = err
t.eq(rc, 1, "strangler run with an invalid strangler.yaml exits 1")
t.ok(f"{conf}:3:28: client_header must be a duration" in err,
     "a duration without unit is reported at its line:col", err)
t.ok(f"{conf}:5:16: max_headers must be a whole number" in err,
     "a bad number is reported at its line:col", err)
t.ok(f"{conf}:6:1: unknown key 'colour'" in err, "an unknown key is an error at its line:col",
     err)
# A key given twice (libyaml keeps both): an error at the second, never "the last one wins"
# (a second listen: list once overran the first's array).
conf2 = write_conf(f"listen: [{{address: 127.0.0.1:{port}}}]\n"
                   f"listen: [{{address: 127.0.0.1:{free_port()}}}, {{address: 127.0.0.1:{free_port()}}}]\n"
                   "limits: { max_headers: 5, max_headers: 6 }\n")
rc, out, err = run_cli("check", "-c", conf2)
t.ok(rc == 1 and f"{conf2}:2:1: listen is given twice in strangler.yaml (first at line 1)" in err
     and f"{conf2}:3:27: max_headers is given twice in limits" in err,
     "a key given twice is an error at its second line:col", err)
t.ok("cannot listen" not in run_err and "listening on" not in run_err,
     "nothing was bound before the errors were reported", run_err)

conf = write_conf(f"listen:\n  - address: 127.0.0.1:{port}\n",
                  routes="legacy: ftp://x\nfunctions: {}\nroutes: []\nextra: 1\n")
rc, out, err = run_cli("check", "-c", conf)
t.eq(rc, 1, "strangler check on an invalid routes.yaml exits 1")
routes = os.path.join(os.path.dirname(conf), "routes.yaml")
t.ok(f"{routes}:1:9: legacy URL 'ftp://x' must start with http://" in err,
     "a bad legacy URL is reported at its line:col", err)
t.ok(f"{routes}:4:1: unknown key 'extra'" in err, "all errors are reported, not only the first",
     err)
conf = write_conf(f"listen:\n  - address: 127.0.0.1:{port}\n")
rc, out, err = run_cli("check", "-c", conf)
t.ok(rc == 0 and "ok" in out, "strangler check on a valid configuration exits 0", out + err)
rc, out, err = run_cli("check", env={"STRANGLER_CONF": conf})
t.eq(rc, 0, "$STRANGLER_CONF names the configuration")
conf = write_conf("listen:\n  - address: 127.0.0.1:notaport\n")
rc, out, err = run_cli("check", "-c", conf)
t.ok(rc == 1 and ":2:14: listen address has an invalid port" in err, "bad listen port", err)

# Timeouts and the access log.
legacy = start_legacy()
logdir = tempfile.mkdtemp(prefix="sf-log-")
access = os.path.join(logdir, "access.log")
proxy = Proxy(f"http://127.0.0.1:{legacy.port}", access=access,
              settings="timeouts: { client_header: 700ms, client_body: 700ms, keepalive: 700ms,"
                       " drain: 5s }\n")

# slowloris: a head that never completes gets 408 and the connection is closed.
s = connect(proxy.port)
s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ")
t0 = time.time()
data, closed = recv_all(s, 5)
s.close()
t.ok(status_of(data) == 408 and closed, "an incomplete head past client_header: 408, closed",
     data)
t.ok(time.time() - t0 < 3 * SLOW, "the 408 comes at client_header")

# A body that stalls: 408.
s = connect(proxy.port)
s.sendall(b"POST /__echo HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nabc")
data, closed = recv_all(s, 5)
s.close()
t.ok(status_of(data) == 408 and closed, "a stalled body past client_body: 408, closed", data)

# An idle keep-alive connection is closed silently.
s = connect(proxy.port)
s.sendall(b"GET /health HTTP/1.1\r\nHost: a\r\n\r\n")
st, _, _ = read_response(s)
s.settimeout(5 * SLOW)
t0 = time.time()
rest = s.recv(100)
t.ok(st == 200 and rest == b"" and time.time() - t0 < 4 * SLOW,
     "an idle keep-alive connection is closed after keepalive, without a response", rest)
s.close()

# The access log: one JSON line per request with the DESIGN §7 fields.
request(proxy.port, "GET", "/api/orders/3?x=1", headers={"X-Request-Id": "log-test-1"})
time.sleep(0.5)  # the log flushes within 200 ms
lines = [json.loads(l) for l in open(access) if l.strip()]
mine = [l for l in lines if l.get("request_id") == "log-test-1"]
t.eq(len(mine), 1, "the request has one access-log line")
if mine:
    e = mine[0]
    fields = ["ts", "request_id", "client", "method", "path", "route", "backend", "status",
              "duration_ms", "upstream_ms", "bytes_in", "bytes_out", "shadow"]
    t.eq([f for f in fields if f not in e], [], "the line carries every field")
    t.eq((e["method"], e["path"], e["route"], e["backend"], e["status"], e["client"]),
         ("GET", "/api/orders/3?x=1", "_default", "legacy", 200, "127.0.0.1"),
         "the line says what happened")
    t.ok(e["bytes_out"] > 0 and e["bytes_in"] > 0 and e["duration_ms"] >= 0,
         "sizes and duration are recorded", e)
t.ok(any(l.get("status") == 408 for l in lines), "rejected requests are logged too")

# Drain: SIGTERM during a slow request: it completes; new connections are refused; exit 0.
admin = proxy.admin_port
st, _, _ = request(admin, "GET", "/readyz")
t.eq(st, 200, "/readyz is 200 while serving")
result = {}


def slow():
    result["r"] = request(proxy.port, "GET", "/api/orders/1?delay_ms=1500")


th = threading.Thread(target=slow)
th.start()
time.sleep(0.4)
idle = connect(proxy.port)  # an idle keep-alive client: closed at once by the drain
time.sleep(0.1)
proxy.send_signal(signal.SIGTERM)
time.sleep(0.3)
st, _, _ = request(admin, "GET", "/readyz")
t.eq(st, 503, "/readyz is 503 while draining")
try:
    socket.create_connection(("127.0.0.1", proxy.port), timeout=1).close()
    refused = False
except OSError:
    refused = True
t.ok(refused, "new connections are refused while draining")
idle.settimeout(2)
try:
    t.eq(idle.recv(10), b"", "an idle client connection is closed by the drain")
except OSError as e:
    t.ok(False, "an idle client connection is closed by the drain", e)
th.join(10)
t.eq(result.get("r", (None,))[0], 200, "the in-flight request completes during the drain")
rc = proxy.p.wait(10)
t.eq(rc, 0, "strangler exits 0 after draining")
t.ok(proxy.sanitizer_report() is None, "no sanitizer report", proxy.sanitizer_report())

# Drain time is bounded: a request slower than timeouts.drain is cut, exit 0 anyway.
proxy2 = Proxy(f"http://127.0.0.1:{legacy.port}", settings="timeouts: { drain: 500ms }\n")
th = threading.Thread(target=lambda: result.update(r2=raw(proxy2.port,
                      b"GET /api/orders/1?delay_ms=5000 HTTP/1.1\r\nHost: a\r\n\r\n", 8)))
th.start()
time.sleep(0.3)
t0 = time.time()
proxy2.send_signal(signal.SIGTERM)
rc = proxy2.p.wait(10)
el = time.time() - t0
th.join(10)
t.eq(rc, 0, "strangler exits 0 when the drain time runs out")
t.ok(el < 3 * SLOW, "it exits at timeouts.drain", el)
t.ok(result.get("r2", (b"x", False))[0] == b"", "the cut request gets no false response",
     result.get("r2"))
t.ok(proxy2.sanitizer_report() is None, "no sanitizer report", proxy2.sanitizer_report())
