#!/usr/bin/env python3
# Limits and slow clients under load (DESIGN §3, §8): hundreds of slowloris heads and stalled
# bodies get 408 at their timeouts while normal requests keep succeeding, and every descriptor is
# given back; max_connections holds new connections in the backlog without touching the open
# ones; a client that never reads is cut off at the send timeout (client_body) with bounded
# memory, pipelining or not; idle keep-alive connections close silently; and what one costs.
import os
import resource
import select
import selectors
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F403

t = Tap()
MIB = 1024 * 1024

# Descriptors: this process holds every slow client socket, the proxy one per client plus one
# per upstream connection. Raise the soft limit where the hard one allows, else scale down.
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
want = 4096 if hard == resource.RLIM_INFINITY else min(4096, hard)
if soft < want:
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    except (ValueError, OSError):
        pass
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
scale = min(1.0, (soft - 150) / 800.0)
N_HEAD = max(20, int(300 * scale))   # slowloris: half trickle a byte every 300 ms, half go quiet
N_BODY = max(20, int(200 * scale))   # bodies that stall after 3 of 100 bytes
N_MUTE = max(5, int(20 * scale))     # connections that never send a byte
N_IDLE = max(50, min(1000, soft - 200))
if scale < 1.0:
    t.diag(f"ulimit -n {soft}: scaled down to {N_HEAD} slow heads, {N_BODY} slow bodies, "
           f"{N_IDLE} idle connections")


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def wait_for(pred, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def hangup(s):
    """Closes s for real: the harness's buffered reader keeps the descriptor open otherwise."""
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    s.close()


def spread(xs):
    return f"min {min(xs):.2f}s max {max(xs):.2f}s" if xs else "none"


legacy = start_legacy()
URL = f"http://127.0.0.1:{legacy.port}"

# ---- slowloris heads and stalled bodies, by the hundred, while normal traffic flows ----
HEAD_T, BODY_T, KEEP_T = 2.5, 1.5, 1.0
proxy = Proxy(URL, settings=f"timeouts: {{ client_header: {int(HEAD_T * 1000)}ms, "
                            f"client_body: {int(BODY_T * 1000)}ms, "
                            f"keepalive: {int(KEEP_T * 1000)}ms }}\n")
pid = proxy.p.pid
for _ in range(5):
    request(proxy.port, "GET", "/health")
time.sleep(0.2)
fd_base = fd_count(pid)

normal = []  # (start, end, ok, detail)
stop_normal = threading.Event()


def normal_traffic():
    # bounded: the phase ends in seconds, and each request has its own timeout
    while not stop_normal.is_set() and len(normal) < 100000:
        t0 = time.monotonic()
        try:
            st, _, _ = request(proxy.port, "GET", "/health", timeout=5)
            normal.append((t0, time.monotonic(), st == 200, st))
        except Exception as e:  # noqa: BLE001 - any failure is counted and reported
            normal.append((t0, time.monotonic(), False, repr(e)))


sel = selectors.DefaultSelector()
slow = []  # dicts: sock, kind, t0 (when it connected), data, t_end, how


def open_slow(kind, payload):
    t0 = time.monotonic()  # the proxy's timers start after this: elapsed is never short
    s = socket.create_connection(("127.0.0.1", proxy.port), timeout=5 * SLOW)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if payload:
        s.sendall(payload)
    s.setblocking(False)
    c = {"sock": s, "kind": kind, "t0": t0, "data": b"", "t_end": None,
         "how": None}
    sel.register(s, selectors.EVENT_READ, c)
    slow.append(c)


th = threading.Thread(target=normal_traffic)
th.start()
time.sleep(0.2)
for i in range(N_HEAD):
    open_slow("trickle" if i % 2 == 0 else "quiet", b"GET /health HTTP/1.1\r\nHost: a\r\nX-Slow: ")
for i in range(N_BODY):
    open_slow("body", b"POST /__echo HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nabc")
for i in range(N_MUTE):
    open_slow("mute", b"")
t_all_open = time.monotonic()
fd_peak = fd_count(pid)
next_trickle = time.monotonic() + 0.3
deadline = time.monotonic() + HEAD_T + 6 * SLOW
open_left = len(slow)
while open_left > 0 and time.monotonic() < deadline:
    now = time.monotonic()
    if now >= next_trickle:
        next_trickle = now + 0.3
        for c in slow:
            if c["kind"] == "trickle" and c["t_end"] is None:
                try:
                    c["sock"].send(b"a")  # never a line end: the head can never complete
                except OSError:
                    pass
        fd_peak = max(fd_peak, fd_count(pid))
    for key, _ in sel.select(timeout=max(0.0, min(0.3, next_trickle - time.monotonic()))):
        c = key.data
        try:
            b = c["sock"].recv(65536)
        except BlockingIOError:
            continue
        except ConnectionResetError:
            b, c["how"] = b"", "reset"
        if b:
            c["data"] += b
            continue
        c["t_end"] = time.monotonic()
        c["how"] = c["how"] or "fin"
        sel.unregister(c["sock"])
        c["sock"].close()
        open_left -= 1
stop_normal.set()
th.join(30)
for c in slow:
    if c["t_end"] is None:
        sel.unregister(c["sock"])
        c["sock"].close()

heads = [c for c in slow if c["kind"] in ("trickle", "quiet")]
bodies = [c for c in slow if c["kind"] == "body"]
mutes = [c for c in slow if c["kind"] == "mute"]
bad = [(c["kind"], c["data"][:40], c["how"]) for c in heads
       if status_of(c["data"]) != 408 or c["t_end"] is None]
t.ok(not bad, f"{len(heads)} slowloris heads (half trickling a byte every 300 ms): every one "
     f"408 and closed", bad[:5])
el = [c["t_end"] - c["t0"] for c in heads if c["t_end"] is not None]
t.ok(el and min(el) >= 0.9 * HEAD_T and max(el) <= HEAD_T + 2 * SLOW,
     f"each at about client_header ({HEAD_T}s), trickling or not", spread(el))
t.diag(f"408 for slow heads after {spread(el)} (client_header {HEAD_T}s)")
bad = [(c["data"][:40], c["how"]) for c in bodies if status_of(c["data"]) != 408 or
       c["t_end"] is None]
t.ok(not bad, f"{len(bodies)} bodies stalled after 3 of 100 bytes: every one 408 and closed",
     bad[:5])
el = [c["t_end"] - c["t0"] for c in bodies if c["t_end"] is not None]
t.ok(el and min(el) >= 0.9 * BODY_T and max(el) <= BODY_T + 2 * SLOW,
     f"each at about client_body ({BODY_T}s)", spread(el))
t.diag(f"408 for stalled bodies after {spread(el)} (client_body {BODY_T}s)")
bad = [(c["data"][:40], c["how"]) for c in mutes if c["data"] != b"" or c["how"] != "fin"]
el = [c["t_end"] - c["t0"] for c in mutes if c["t_end"] is not None]
t.ok(not bad and len(el) == len(mutes) and min(el) >= 0.9 * HEAD_T,
     f"{len(mutes)} connections that never sent a byte: closed at client_header without a "
     f"response", (bad[:5], spread(el)))
t.ok(fd_peak >= fd_base + N_HEAD + N_BODY,
     "the slow connections were all open in the proxy at once",
     f"fds: {fd_base} before, peak {fd_peak}")
first_408 = min((c["t_end"] for c in slow if c["t_end"] is not None), default=t_all_open)
during = [r for r in normal if r[0] >= t_all_open and r[1] <= first_408]
failed = [r for r in normal if not r[2]]
t.ok(not failed, f"no normal request failed ({len(normal)} sent during the slow phase)",
     failed[:5])
t.ok(len(during) >= 50 and all(r[2] for r in during),
     f"normal requests kept succeeding while {len(slow)} slow connections were open",
     f"{len(during)} in {first_408 - t_all_open:.2f}s")
t.diag(f"{len(during)} normal requests succeeded in the {first_408 - t_all_open:.2f}s all "
       f"{len(slow)} slow connections were open")
t.ok(wait_for(lambda: fd_count(pid) <= fd_base + 4, 5 * SLOW),
     "the proxy's descriptors are back to where they started",
     f"{fd_base} before, peak {fd_peak}, now {fd_count(pid)}")
out = proxy.output()
t.ok("not complete within client_header" in out and "stalled past client_body" in out,
     "both timeouts are logged")

# Idle keep-alive connections close silently: no bytes, a FIN (not a reset), at keepalive.
idle = []
for i in range(50):
    s = connect(proxy.port)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: a\r\n\r\n")
    idle.append(s)
answered = 0
for s in idle:
    st, _, _ = read_response(s)
    answered += st == 200
t0 = time.monotonic()
ends = []
for s in idle:
    s.settimeout(max(0.1, t0 + KEEP_T + 3 * SLOW - time.monotonic()))
    try:
        b = s.recv(100)
        ends.append(("fin" if b == b"" else b, time.monotonic() - t0))
    except socket.timeout:
        ends.append(("open", None))
    except ConnectionResetError:
        ends.append(("reset", time.monotonic() - t0))
    hangup(s)
t.eq(answered, 50, "50 keep-alive connections each served a request")
t.ok(all(e[0] == "fin" for e in ends), "every idle keep-alive connection was closed with a FIN "
     "and no bytes", [e for e in ends if e[0] != "fin"][:5])
el = [e[1] for e in ends if e[1] is not None]
t.ok(el and max(el) <= KEEP_T + 2 * SLOW and max(el) >= 0.8 * KEEP_T,
     f"at about keepalive ({KEEP_T}s)", spread(el))
t.eq(proxy.stop(), 0, "strangler exits 0")
t.ok(proxy.sanitizer_report() is None, "no sanitizer report", proxy.sanitizer_report())

# ---- max_connections ----
MAXC = 20
proxy = Proxy(URL, settings=f"limits: {{ max_connections: {MAXC} }}\n")


def get(s, path="/health"):
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: a\r\n\r\n".encode())
    return read_response(s, timeout=5)[0]


def waiting(s, secs):
    """True when nothing arrives on s for secs (the connection sits in the backlog)."""
    r, _, _ = select.select([s], [], [], secs)
    return not r


conns = [connect(proxy.port) for _ in range(MAXC)]
t.eq([get(s) for s in conns], [200] * MAXC, f"{MAXC} connections (max_connections) are served")
extra = connect(proxy.port)  # the kernel completes the handshake: it waits in the backlog
extra.sendall(b"GET /health HTTP/1.1\r\nHost: a\r\n\r\n")
t.ok(waiting(extra, 1.0), f"connection {MAXC + 1} is not served while {MAXC} are open")
codes = [get(s) for s in conns] + [get(s, "/api/orders/1") for s in conns]
t.eq(codes, [200] * (2 * MAXC), "the open connections keep working at the limit (keep-alive)")
t.ok(waiting(extra, 0.3), f"connection {MAXC + 1} still waits")
hangup(conns.pop(0))
st = None
try:
    st = read_response(extra, timeout=5)[0]
except (OSError, ConnectionError) as e:
    st = repr(e)
t.eq(st, 200, f"once one closes, connection {MAXC + 1} is accepted and its request answered")
conns.append(extra)
for _ in range(5):
    hangup(conns.pop(0))
fresh = [connect(proxy.port) for _ in range(5)]
t.eq([get(s) for s in fresh], [200] * 5, "below the limit, new connections are accepted again")
conns += fresh
late = connect(proxy.port)
late.sendall(b"GET /health HTTP/1.1\r\nHost: a\r\n\r\n")
t.ok(waiting(late, 0.5), "at the limit again, the next connection waits again")
for s in conns:
    hangup(s)
try:
    st = read_response(late, timeout=5)[0]
except (OSError, ConnectionError) as e:
    st = repr(e)
t.eq(st, 200, "and is served once the others close")
hangup(late)
st, _, _ = request(proxy.admin_port, "GET", "/healthz")
t.eq(st, 200, "the admin listener is not held by the client limit")
t.eq(proxy.stop(), 0, "strangler exits 0")
t.ok(proxy.sanitizer_report() is None, "no sanitizer report", proxy.sanitizer_report())

# ---- a client that never reads its response ----
SEND_T = 1.0
proxy = Proxy(URL, settings=f"timeouts: {{ client_body: {int(SEND_T * 1000)}ms }}\n")
pid = proxy.p.pid
st, _, body = request(proxy.port, "GET", f"/__bytes?size={4 * MIB}")
t.ok(st == 200 and len(body) == 4 * MIB, "warm-up: a 4 MiB response read in full")
time.sleep(0.2)
rss_base = rss_kib(pid)
fd_base = fd_count(pid)
rss_max = [rss_base]
stop_sampling = threading.Event()


def sample():
    while not stop_sampling.is_set():
        rss_max[0] = max(rss_max[0], rss_kib(pid))
        time.sleep(0.01)


def cut_off(s, timeout):
    """Waits (never reading) until the peer resets or closes s; returns the seconds it took."""
    p = select.poll()
    p.register(s, select.POLLERR | select.POLLHUP | select.POLLRDHUP)
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if p.poll(50):
            return time.monotonic() - t0
    return None


def drain(s, limit):
    s.settimeout(2 * SLOW)
    got = 0
    try:
        while got < limit:
            b = s.recv(1 << 20)
            if not b:
                break
            got += len(b)
    except OSError:
        pass
    return got


def small_rcvbuf_socket():
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", proxy.port))
    return s


sampler = threading.Thread(target=sample)
sampler.start()
size = 64 * MIB
s = small_rcvbuf_socket()
s.sendall(f"GET /__bytes?size={size} HTTP/1.1\r\nHost: a\r\n\r\n".encode())
el = cut_off(s, SEND_T + 8 * SLOW)
got = drain(s, size)
s.close()
stop_sampling.set()
sampler.join()
t.ok(el is not None and 0.9 * SEND_T <= el <= SEND_T + 4 * SLOW,
     f"a client that never reads a 64 MiB response is cut off at the send timeout "
     f"(client_body {SEND_T}s)", el)
t.ok(got < size, "it did not get the whole response", got)
t.ok("did not read its response for the send timeout" in proxy.output(), "the cut is logged")
growth = rss_max[0] - rss_base
if SANITIZED:
    t.skip("proxy RSS growth under 16 MiB", "RSS is not meaningful under ASan")
else:
    t.ok(growth < 16 * 1024, "the proxy's RSS grew by well under the response size",
         f"{growth} KiB")
t.diag(f"64 MiB to a client that never reads: cut after {el and round(el, 2)}s, proxy RSS "
       f"+{growth} KiB")

# A client that does read, but sends pipelined requests far faster than they are answered:
# what waits in the proxy's input is bounded too, and every request is answered in order.
NPIPE = 3000
pad = "p" * 12000
rss_base = rss_kib(pid)
rss_max = [rss_base]
stop_sampling.clear()
sampler = threading.Thread(target=sample)
sampler.start()
s = connect(proxy.port)
answers = []


def read_answers():
    try:
        for _ in range(NPIPE):
            st, _, body = read_response(s, timeout=10)
            answers.append((st, body[:1]))
    except Exception as e:  # noqa: BLE001 - reported through the count below
        answers.append(repr(e))


reader = threading.Thread(target=read_answers)
reader.start()
s.sendall(b"".join(f"GET /__bytes?size={1 + i % 7} HTTP/1.1\r\nHost: a\r\nX-Pad: {pad}\r\n\r\n"
                   .encode() for i in range(NPIPE)))
reader.join(60 * SLOW)
hangup(s)
stop_sampling.set()
sampler.join()
growth = rss_max[0] - rss_base
t.eq(answers, [(200, b"a")] * NPIPE, f"{NPIPE} pipelined requests of 12 KB each sent at once: "
     f"all answered, in order")
if SANITIZED:
    t.skip("proxy RSS growth under 16 MiB while the input waits",
           "RSS is not meaningful under ASan")
else:
    t.ok(growth < 16 * 1024, f"the proxy's RSS grew well under the {NPIPE * 12 // 1024} MiB sent",
         f"{growth} KiB")
t.diag(f"{NPIPE} pipelined 12 KB requests sent at once: proxy RSS +{growth} KiB")
# Pipelining small requests without ever reading: responses must not pile up without bound,
# and the send timeout still cuts the client off.
rss_base = rss_kib(pid)
rss_max = [rss_base]
stop_sampling.clear()
sampler = threading.Thread(target=sample)
sampler.start()
s = small_rcvbuf_socket()
s.setblocking(False)
one = b"GET /__bytes?size=2000 HTTP/1.1\r\nHost: a\r\n\r\n"
batch = one * 100
t0 = time.monotonic()
deadline = t0 + 4 + 3 * SLOW
sent = 0
el = None
p = select.poll()
p.register(s, select.POLLERR | select.POLLHUP | select.POLLRDHUP)
pending = memoryview(batch)
while time.monotonic() < deadline:
    if p.poll(0 if sent < 64 * MIB else 50):
        el = time.monotonic() - t0
        break
    if sent >= 64 * MIB:
        continue  # far more than any buffer between us holds: a failing proxy stops growing
    try:
        n = s.send(pending)
        sent += n
        pending = pending[n:] if n < len(pending) else memoryview(batch)
    except BlockingIOError:
        time.sleep(0.005)
    except OSError:
        el = time.monotonic() - t0
        break
s.close()
stop_sampling.set()
sampler.join()
growth = rss_max[0] - rss_base
t.ok(el is not None, "a client pipelining requests and never reading is cut off",
     f"still open after {time.monotonic() - t0:.1f}s, {sent // len(one)} requests sent")
if SANITIZED:
    t.skip("proxy RSS growth under 16 MiB while pipelining", "RSS is not meaningful under ASan")
else:
    t.ok(growth < 16 * 1024, "the proxy's RSS stays bounded while it pipelines",
         f"{growth} KiB")
t.diag(f"pipelining non-reader: cut after {el and round(el, 2)}s and {sent // len(one)} "
       f"requests, proxy RSS +{growth} KiB")
t.ok(wait_for(lambda: fd_count(pid) <= fd_base + 2, 5 * SLOW),
     "the client's and the upstream's descriptors are released", (fd_base, fd_count(pid)))
t.eq(proxy.stop(), 0, "strangler exits 0")
t.ok(proxy.sanitizer_report() is None, "no sanitizer report", proxy.sanitizer_report())

# ---- what an idle keep-alive connection costs ----
proxy = Proxy(URL)
pid = proxy.p.pid
BATCH = 25


def serve_batch(socks):
    for s in socks:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: a\r\n\r\n")
    return sum(read_response(s, timeout=5)[0] == 200 for s in socks)


warm = [connect(proxy.port) for _ in range(BATCH)]
serve_batch(warm)  # the upstream pool grows to the batch's concurrency before the baseline
for s in warm:
    hangup(s)
time.sleep(0.3)
rss0 = rss_kib(pid)
held = []
ok_count = 0
for i in range(0, N_IDLE, BATCH):
    socks = [connect(proxy.port) for _ in range(min(BATCH, N_IDLE - i))]
    ok_count += serve_batch(socks)
    held += socks
time.sleep(0.3)
rss1 = rss_kib(pid)
fds = fd_count(pid)
t.eq(ok_count, N_IDLE, f"{N_IDLE} keep-alive connections served a request each")
t.ok(fds >= N_IDLE, f"the {N_IDLE} connections are held open, idle", fds)
per = (rss1 - rss0) / N_IDLE
t.diag(f"RSS with {N_IDLE} idle keep-alive connections: {rss1} KiB vs {rss0} KiB with none: "
       f"{per:.2f} KiB per connection{' (ASan build: not meaningful)' if SANITIZED else ''}")
for s in held:
    hangup(s)
t.ok(wait_for(lambda: fd_count(pid) < fds - N_IDLE + 10, 5 * SLOW),
     "closing them gives their descriptors back", fd_count(pid))
t.eq(proxy.stop(), 0, "strangler exits 0")
t.ok(proxy.sanitizer_report() is None, "no sanitizer report", proxy.sanitizer_report())
t.ok(legacy.sanitizer_report() is None, "no sanitizer report from the stand-in",
     legacy.sanitizer_report())
