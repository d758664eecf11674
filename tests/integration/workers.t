#!/usr/bin/env python3
# workers: N (DESIGN §3, issue 8): N event loops, each with its own socket on the proxy address
# (SO_REUSEPORT), pools, stats shard and shadows. Checks that the work is spread, that every
# worker takes a reload, that stats, shadow counters, diffs, rejected requests and the access
# log add up over the workers, that max_connections counts all of them, that a second proxy
# cannot take the port, that SIGTERM drains every worker, and that workers: auto counts CPUs.
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F403

t = Tap()
legacy = start_legacy()
L = f"http://127.0.0.1:{legacy.port}"
alog = tempfile.mktemp(prefix="sf-access-", suffix=".log")


# A function that answers every request with {"ok": true}: a mismatch for any legacy answer.
class Fn(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        out = b'{"ok": true, "from": "function"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *a):
        pass


fsrv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Fn)
fsrv.daemon_threads = True
threading.Thread(target=fsrv.serve_forever, daemon=True).start()
F = f"http://127.0.0.1:{fsrv.server_address[1]}"

ROUTES = f"""functions:
  fn: {{ url: {F} }}
routes:
  - name: orders
    match: {{ path: /api/orders }}
    function: fn
    cutover: 0
  - name: catalog
    match: {{ path: /api/catalog }}
    function: fn
    cutover: 0
    shadow: {{ percent: 100, compare: {{ body: json }} }}
"""

W = 4
proxy = Proxy(L, settings=f"workers: {W}\n", routes_yaml=ROUTES, access=alog)
P, A = proxy.port, proxy.admin_port


def admin(path, method="GET"):
    st, _, body = request(A, method, path)
    return st, json.loads(body) if body else None


def worker_threads():
    """{tid: CPU ns} of the proxy's worker threads (named "worker N") and the main thread."""
    out = {}
    base = f"/proc/{proxy.p.pid}/task"
    for tid in os.listdir(base):
        try:
            with open(f"{base}/{tid}/comm") as f:
                comm = f.read().strip()
            with open(f"{base}/{tid}/schedstat") as f:
                ns = int(f.read().split()[0])
        except OSError:
            continue
        if comm.startswith("worker ") or tid == str(proxy.p.pid):
            out[tid] = ns
    return out


def logged(proc, text, timeout=5.0):
    """Whether text appears in proc's log within timeout (the port opens before the log line)."""
    deadline = time.time() + timeout * SLOW
    while text not in proc.output() and time.time() < deadline:
        time.sleep(0.02)
    return text in proc.output()


t.ok(logged(proxy, f"{W} workers (event-loop threads)"), "the log says how many workers run",
     proxy.output())
before = worker_threads()
t.eq(len(before), W, f"{W} event-loop threads: the main one and {W - 1} named 'worker N'")

# 48 keep-alive connections, 5 requests each: the kernel spreads them over the workers.
conns = [connect(P) for _ in range(48)]


def get(s, path):
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    st, _, body = read_response(s)
    return st, body


statuses = [get(s, "/api/orders")[0] for _ in range(5) for s in conns]
t.eq(statuses, [200] * 240, "240 requests over 48 connections, all 200")
after = worker_threads()
busy = [tid for tid in after if after[tid] - before.get(tid, 0) > 2_000_000]
t.ok(len(busy) >= 2, "more than one worker served them (CPU time of each thread)",
     {tid: after[tid] - before.get(tid, 0) for tid in after})

st, js = admin("/stats")
orders = [r for r in js["routes"] if r["name"] == "orders"][0]
t.eq(orders["requests"]["legacy"], 240, "GET /stats adds up the workers' numbers")
st, _, metrics = request(A, "GET", "/metrics")
n = sum(float(ln.rsplit(" ", 1)[1]) for ln in metrics.decode().splitlines()
        if ln.startswith("strangler_requests_total{") and 'route="orders"' in ln
        and 'backend="legacy"' in ln)
t.eq(n, 240, "so does /metrics")

# Every worker takes a reload: every connection sees the new cutover at once.
with open(proxy.routes) as f:
    text = f.read()
with open(proxy.routes, "w") as f:
    f.write(text.replace("cutover: 0\n  - name: catalog", "cutover: 100\n  - name: catalog"))
st, js = admin("/reload", "POST")
t.eq(st, 200, "POST /reload applies the edit")
seen = []
deadline = time.time() + 2 * SLOW
for s in conns:
    while True:
        st, body = get(s, "/api/orders")
        if b'"function"' in body or time.time() > deadline:
            break
    seen.append(b'"function"' in body)
t.eq(seen, [True] * 48, "after the reload all 48 connections (every worker) go to the function")

# Shadow comparisons and diffs add up over the workers.
for _ in range(2):
    for s in conns[:40]:
        get(s, "/api/catalog")
deadline = time.time() + 5 * SLOW
while time.time() < deadline:
    st, js = admin("/stats")
    cat = [r for r in js["routes"] if r["name"] == "catalog"][0]
    if cat["shadow"]["mismatch"] >= 80:
        break
    time.sleep(0.05)
t.eq(cat["shadow"]["mismatch"], 80, "80 shadowed requests: 80 mismatches counted over the workers")
st, js = admin("/routes/catalog/diffs")
t.eq(js["total"], 80, "GET /routes/NAME/diffs holds every worker's mismatches")
t.ok(any(d["path"] == "/from" for d in js["top_paths"]), "... naming the differing path",
     js["top_paths"])

# Requests refused before a backend was chosen, on separate connections (several workers).
for _ in range(12):
    raw(P, b"GET / HTTP/1.1\r\n\r\n")  # no Host: 400
st, js = admin("/stats")
t.eq(js["rejected"]["4xx"], 12, "rejected requests add up over the workers")

for s in conns:
    s.close()

# The access log: one line per request, whole, from every worker's writer.
total = 240 + 48 * 1 + 80
deadline = time.time() + 5 * SLOW
lines = []
while time.time() < deadline:
    with open(alog) as f:
        lines = f.read().splitlines()
    if len(lines) >= total + 12:
        break
    time.sleep(0.1)
bad = [ln for ln in lines if not ln.startswith("{") or not ln.endswith("}")]
t.ok(len(lines) >= total + 12 and not bad,
     f"the access log has a whole line for each of the {total + 12}+ requests",
     (len(lines), bad[:3]))

# A second proxy cannot share the port through SO_REUSEPORT.
other = Proxy(L, settings="workers: 2\n", port=P, wait=False)
rc = other.p.wait(10 * SLOW)
t.eq(rc, 1, "a second strangler on the same address exits 1")
t.ok("Address already in use" in other.output(), "... saying the address is in use",
     other.output())

# SIGTERM: requests in flight on every worker finish, then exit 0.
conns = [connect(P) for _ in range(16)]
for s in conns:
    s.sendall(b"GET /api/orders/1?delay_ms=700 HTTP/1.1\r\nHost: x\r\n\r\n")
time.sleep(0.2)
proxy.send_signal(signal.SIGTERM)
results = []
for s in conns:
    try:
        st, hdrs, _ = read_response(s, timeout=5)
    except Exception as e:  # noqa: BLE001
        st = str(e)
    results.append(st)
    s.close()
t.eq(results, [200] * 16, "SIGTERM: the 16 requests in flight all finish")
t.eq(proxy.stop(), 0, "... and the proxy exits 0")
t.ok(proxy.sanitizer_report() is None, "no sanitizer report", proxy.sanitizer_report())

# max_connections counts every worker's clients.
MAXC = 10
capped = Proxy(L, settings=f"workers: {W}\nlimits: {{ max_connections: {MAXC} }}\n")
held = [connect(capped.port) for _ in range(MAXC)]
t.eq([get(s, "/api/orders")[0] for s in held], [200] * MAXC,
     f"{MAXC} connections (max_connections) are served")
extra = connect(capped.port)
extra.sendall(b"GET /api/orders HTTP/1.1\r\nHost: x\r\n\r\n")
extra.settimeout(0.5)
try:
    waited = extra.recv(1) == b""
except socket.timeout:
    waited = True
t.ok(waited, "the next one waits, whichever worker the kernel gave it to")
gone = held.pop()
gone.shutdown(socket.SHUT_RDWR)  # read_response's file object keeps the fd open past close()
gone.close()
st, _, _ = read_response(extra, timeout=3)
t.eq(st, 200, "... and is served once one of the others closes")
for s in held + [extra]:
    s.close()
t.eq(capped.stop(), 0, "capped proxy exits 0")
t.ok(capped.sanitizer_report() is None, "no sanitizer report", capped.sanitizer_report())

# workers: auto is one per CPU the process may run on.
taskset = shutil.which("taskset")
if taskset is None or len(os.sched_getaffinity(0)) < 2:
    t.skip("workers: auto follows the CPU affinity", "needs taskset and 2 CPUs")
    t.skip("workers: auto on one CPU", "needs taskset and 2 CPUs")
else:
    cpus = sorted(os.sched_getaffinity(0))[:2]
    for want, mask in ((2, f"{cpus[0]},{cpus[1]}"), (1, str(cpus[0]))):
        port = free_port()
        d = tempfile.mkdtemp(prefix="sf-conf-")
        with open(os.path.join(d, "strangler.yaml"), "w") as f:
            f.write(f"listen:\n  - address: 127.0.0.1:{port}\nadmin:\n  address: 127.0.0.1:"
                    f"{free_port()}\nroutes_file: routes.yaml\nworkers: auto\n")
        with open(os.path.join(d, "routes.yaml"), "w") as f:
            f.write(f"legacy: {L}\nfunctions: {{}}\nroutes: []\n")
        p = Proc([taskset, "-c", mask, os.path.join(BIN, "strangler"), "run", "-c",
                  os.path.join(d, "strangler.yaml")], port=port)
        n = 1  # the main thread, and the others named "worker N" (not the log writers)
        for tid in os.listdir(f"/proc/{p.p.pid}/task"):
            with open(f"/proc/{p.p.pid}/task/{tid}/comm") as f:
                n += f.read().startswith("worker ")
        st, _, _ = request(port, "GET", "/api/orders")
        t.ok(st == 200 and n == want and
             logged(p, "2 workers (event-loop threads, auto", 0.5 if want == 1 else 5) ==
             (want == 2),
             f"workers: auto on {want} CPU(s) runs {want} event loop(s)", (st, n, p.output()))
        p.stop()

# SIGTERM again and again while it stops: the teardown keeps them pending, exit 0 every time
# (a signal that came once the loop's handlers were freed used to kill it: exit -15).
codes = []
for _ in range(6):
    p = Proxy(L, settings=f"workers: {W}\n")
    request(p.port, "GET", "/api/orders")
    for _ in range(400):
        p.send_signal(signal.SIGTERM)
        if p.p.poll() is not None:
            break
        time.sleep(0.0005)
    codes.append(p.stop())
t.eq(codes, [0] * 6, "SIGTERMs arriving during the teardown: exit 0 every time")

fsrv.shutdown()
stop_all()
