#!/usr/bin/env python3
# The access log (DESIGN §7): JSON lines that match the requests sent, `off` writes none,
# SIGUSR1 after a rename splits old and new lines exactly, and a log nobody reads (a FIFO) never
# stalls the proxy: lines beyond the writer's queue are dropped and counted, and exit does not
# hang on the stuck writer.
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F403
from harness import _reader  # noqa: E402  (the buffered reader read_response uses)

t = Tap()
legacy = start_legacy()
fn = start_functions()
L = f"http://127.0.0.1:{legacy.port}"
ROUTES = f"""
functions:
  fn: http://127.0.0.1:{fn.port}
routes:
  - name: echoes
    match: {{ path: /__echo/fn }}
    function: fn
    cutover: 100
  - name: kept
    match: {{ path: /__bytes }}
    function: fn
    cutover: 0
"""
FIELDS = ["ts", "request_id", "client", "method", "path", "route", "backend", "status",
          "duration_ms", "upstream_ms", "bytes_in", "bytes_out", "shadow"]
DROPPED = re.compile(r"access log: (\d+) line\(s\) dropped")


def wait_for(cond, timeout=5.0):
    """Polls cond() every 50 ms for up to timeout (scaled); returns its last value."""
    deadline = time.time() + timeout * SLOW
    v = cond()
    while not v and time.time() < deadline:
        time.sleep(0.05)
        v = cond()
    return v


def read_lines(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8").splitlines()
    except FileNotFoundError:
        return []


def parse(lines):
    """The lines as JSON objects; (objects, first bad line or None)."""
    out, bad = [], None
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:
            bad = bad or line
    return out, bad


def exchange(sock, data):
    """Sends one raw request on a kept-alive socket; returns (status, raw response length)."""
    sock.sendall(data)
    f = _reader(sock)
    n = 0
    line = f.readline()
    n += len(line)
    status = int(line.split(b" ")[1])
    length = 0
    while True:
        h = f.readline()
        n += len(h)
        if h in (b"\r\n", b""):
            break
        k, v = h.split(b":", 1)
        if k.strip().lower() == b"content-length":
            length = int(v)
    n += len(f.read(length))
    return status, n


def get(path, rid=None, extra=b""):
    head = b"GET " + path + b" HTTP/1.1\r\nHost: a\r\n"
    if rid:
        head += b"X-Request-Id: " + rid.encode() + b"\r\n"
    return head + extra + b"\r\n"


# (1) Lines parse and match what was sent: route, backend, status, exact byte counts.
logdir = tempfile.mkdtemp(prefix="sf-alog-")
alog = os.path.join(logdir, "access.log")
proxy = Proxy(L, routes_yaml=ROUTES, access=alog)
body = b"x" * 100
sent = [  # (request id, raw request, method, path, route, backend)
    ("al-fn", get(b"/__echo/fn/1?q=2", "al-fn"), "GET", "/__echo/fn/1?q=2", "echoes", "function"),
    ("al-kept", get(b"/__bytes?size=1000", "al-kept"), "GET", "/__bytes?size=1000", "kept",
     "legacy"),
    ("al-default", get(b"/__echo/other", "al-default"), "GET", "/__echo/other", "_default",
     "legacy"),
    ("al-post", b"POST /__echo/fn/p HTTP/1.1\r\nHost: a\r\nX-Request-Id: al-post\r\n"
     b"Content-Length: 100\r\n\r\n" + body, "POST", "/__echo/fn/p", "echoes", "function"),
    ("al-quote", get(b'/__echo/%22q%22/"raw"\\', "al-quote"), "GET", '/__echo/%22q%22/"raw"\\',
     "_default", "legacy"),
    ("al-long", get(b"/__bytes?size=1&pad=" + b"p" * 3000, "al-long"), "GET", None, "kept",
     "legacy"),
]
got = {}
s = connect(proxy.port)
for rid, data, *_ in sent:
    got[rid] = exchange(s, data) + (len(data),)
exchange(s, get(b"/__echo/noid"))  # no X-Request-Id: the proxy makes one
s.close()

lines = wait_for(lambda: len(read_lines(alog)) >= len(sent) + 1 and read_lines(alog))
objs, bad = parse(lines or [])
t.ok(lines and bad is None, "every access-log line is valid JSON", bad)
t.eq(len(objs), len(sent) + 1, "one line per request")
byid = {o.get("request_id"): o for o in objs}
for rid, data, method, path, route, backend in sent:
    o = byid.get(rid, {})
    status, nout, nin = got[rid]
    t.eq([f for f in FIELDS if f not in o], [], f"{rid}: the line carries every DESIGN field")
    want = (method, route, backend, status, nin, nout, "127.0.0.1", None)
    t.eq((o.get("method"), o.get("route"), o.get("backend"), o.get("status"),
          o.get("bytes_in"), o.get("bytes_out"), o.get("client"), o.get("shadow")), want,
         f"{rid}: method, route, backend, status, bytes in/out, client, shadow")
    if path is not None:
        t.eq(o.get("path"), path, f"{rid}: the path as sent")
    t.ok(isinstance(o.get("duration_ms"), (int, float)) and o["duration_ms"] >= 0 and
         isinstance(o.get("upstream_ms"), (int, float)), f"{rid}: durations are numbers", o)
long_path = byid.get("al-long", {}).get("path", "")
t.ok(len(long_path) > 200 and ("/__bytes?size=1&pad=" + "p" * 3000).startswith(long_path),
     "a long path is logged as a prefix of what was sent", long_path)
noid = [o for o in objs if o.get("path") == "/__echo/noid"]
t.ok(len(noid) == 1 and noid[0].get("request_id") not in (None, "", "-"),
     "a request without X-Request-Id is logged with the id the proxy made", noid)
t.ok(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", objs[0].get("ts", "") if objs else ""),
     "ts is an ISO 8601 UTC time with milliseconds", objs[:1])

# (3) Rotation: rename, SIGUSR1, then more requests. Lines logged before the signal go to the
# renamed file (even those still in memory), lines after it to the new file.
EARLY, LATE = 40, 25
s = connect(proxy.port)
for i in range(EARLY):
    exchange(s, get(b"/__echo/fn/rot", f"early-{i}"))
os.rename(alog, alog + ".1")
proxy.send_signal(signal.SIGUSR1)
t.ok(wait_for(lambda: "SIGUSR1" in proxy.output()),
     "SIGUSR1 is acknowledged in the error log", proxy.output()[-2000:])
for i in range(LATE):
    exchange(s, get(b"/__echo/fn/rot", f"late-{i}"))
s.close()
wait_for(lambda: len(read_lines(alog)) >= LATE)
old, bad_old = parse(read_lines(alog + ".1"))
new, bad_new = parse(read_lines(alog))
old_ids = [o["request_id"] for o in old if o.get("request_id", "").startswith(("early", "late"))]
new_ids = [o.get("request_id") for o in new]
t.eq(old_ids, [f"early-{i}" for i in range(EARLY)],
     "the renamed file has every line logged before SIGUSR1, in order")
t.eq(new_ids, [f"late-{i}" for i in range(LATE)], "the new file has exactly the later lines")
t.ok(bad_old is None and bad_new is None, "both files are valid JSON lines", bad_old or bad_new)
t.eq(proxy.stop(), 0, "the proxy exits 0")
t.ok(proxy.sanitizer_report() is None, "no sanitizer report", proxy.sanitizer_report())

# (2) off: no line anywhere, neither on stderr nor as a file next to the configuration.
proxy = Proxy(L, routes_yaml=ROUTES, access="off")
s = connect(proxy.port)
for i in range(20):
    exchange(s, get(b"/__echo/fn/off", f"off-{i}"))
s.close()
time.sleep(0.5 * SLOW)  # longer than the 200 ms flush: a line would be out by now
t.eq(proxy.stop(), 0, "the proxy with the access log off exits 0")
out = proxy.output()
t.ok("off-1" not in out and '"request_id"' not in out, "access: off writes nothing to stderr",
     out[-2000:])
t.eq(sorted(f for f in os.listdir(proxy.dir) if not f.endswith(".audit.log")),
     ["routes.yaml", "strangler.yaml"], "access: off creates no file")

# "stderr": the lines are whole among the error log's.
proxy = Proxy(L, routes_yaml=ROUTES, access="stderr")
s = connect(proxy.port)
for i in range(50):
    exchange(s, get(b"/__echo/fn/err", f"err-{i}"))
s.close()
t.eq(proxy.stop(), 0, "the proxy logging to stderr exits 0")
js, bad = parse([l for l in proxy.output().splitlines() if l.startswith("{")])
t.ok(bad is None and [o.get("request_id") for o in js] == [f"err-{i}" for i in range(50)],
     "access: stderr gives one whole JSON line per request", bad)

# (4) A log nobody reads: a FIFO with a reader that does not read. The writer blocks after the
# pipe's 64 KiB; the proxy must go on serving, drop what exceeds its queue, and count it.
fifo = os.path.join(logdir, "slow.fifo")
os.mkfifo(fifo)
rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader exists: the proxy's open succeeds
proxy = Proxy(L, routes_yaml=ROUTES, access=fifo)
N, BATCH = 7000, 50  # ~5 MB of lines at ~750 bytes each: more than the pipe and the 4 MiB queue
PAD = b"/__bytes?size=0&pad=" + b"p" * 480
s = connect(proxy.port)
batch = b"".join(get(PAD, f"slow-{i:03d}") for i in range(BATCH))
t0 = time.time()
worst, statuses, failure = 0.0, {}, None
try:
    for b in range(N // BATCH):
        b0 = time.time()
        s.sendall(batch)
        for i in range(BATCH):
            st, _, _ = read_response(s, timeout=5.0)
            statuses[st] = statuses.get(st, 0) + 1
        worst = max(worst, time.time() - b0)
        if time.time() - t0 > 60 * SLOW:
            failure = f"stopped after {b + 1} batches: too slow"
            break
except (OSError, ValueError, ConnectionError) as e:
    worst = max(worst, time.time() - b0)
    failure = f"{type(e).__name__}: {e}"
total = time.time() - t0
s.close()
t.diag(f"{N} requests in {total:.1f} s, the slowest batch of {BATCH} took {worst:.2f} s")
t.eq((statuses, failure), ({200: N}, None),
     "every request is served while the log's reader reads nothing")
t.ok(worst < 2.0 * SLOW, f"no batch waited on the log (slowest {worst:.2f} s)")
drops = lambda: sum(int(n) for n in DROPPED.findall(proxy.output()))  # noqa: E731
t.ok(wait_for(lambda: drops() > 0), "the dropped lines are reported in the error log",
     proxy.output()[-2000:])

# Drain the FIFO while the proxy stops: it writes what it kept, then closes (EOF here).
os.set_blocking(rfd, True)
got_lines = []


def drain():
    buf = b""
    while True:
        chunk = os.read(rfd, 65536)
        if not chunk:
            break
        buf += chunk
    got_lines.extend(buf.splitlines())


reader = threading.Thread(target=drain, daemon=True)
reader.start()
t0 = time.time()
rc = proxy.stop(timeout=15.0)
stop_s = time.time() - t0
reader.join(10 * SLOW)
os.close(rfd)
t.eq(rc, 0, f"the proxy exits 0 once the FIFO is read ({stop_s:.1f} s)")
objs, bad = parse(got_lines)
t.ok(bad is None, "the lines that made it are whole JSON lines", bad)
t.eq(len(objs) + drops(), N, f"lines read ({len(objs)}) + lines reported dropped = requests sent")
t.ok(proxy.sanitizer_report() is None, "no sanitizer report", proxy.sanitizer_report())

# A reader that never reads at all: exit gives up on the stuck writer instead of hanging.
fifo2 = os.path.join(logdir, "dead.fifo")
os.mkfifo(fifo2)
rfd = os.open(fifo2, os.O_RDONLY | os.O_NONBLOCK)
proxy = Proxy(L, routes_yaml=ROUTES, access=fifo2)
s = connect(proxy.port)
for b in range(400 // BATCH):
    s.sendall(b"".join(get(PAD, f"dead-{i}") for i in range(BATCH)))
    for i in range(BATCH):
        read_response(s)
s.close()
time.sleep(0.5 * SLOW)  # the 200 ms flush hands the last lines to the writer
t0 = time.time()
rc = proxy.stop(timeout=15.0)
took = time.time() - t0
os.close(rfd)
t.eq(rc, 0, f"the proxy exits 0 although its log is never read ({took:.1f} s)")
t.ok("giving up on" in proxy.output(), "it says it gave up on the queued lines",
     proxy.output()[-2000:])
t.ok(proxy.sanitizer_report() is None, "no sanitizer report", proxy.sanitizer_report())

# A FIFO without any reader is a startup error, not a hang.
fifo3 = os.path.join(logdir, "none.fifo")
os.mkfifo(fifo3)
proxy = Proxy(L, routes_yaml=ROUTES, access=fifo3, wait=False)
try:
    proxy.p.wait(10 * SLOW)
except subprocess.TimeoutExpired:
    pass
t.ok(proxy.p.returncode not in (None, 0) and "a FIFO without a reader" in proxy.output(),
     "a FIFO nobody has open is refused at startup", proxy.output()[-2000:])

for p in (legacy, fn):
    p.stop()
    t.ok(p.sanitizer_report() is None, "no sanitizer report from the stand-ins",
         p.sanitizer_report())
