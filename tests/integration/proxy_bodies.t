#!/usr/bin/env python3
# Bodies through the proxy: 1 MiB both ways, chunked both ways, a 200 MiB response streamed
# with bounded memory, and max_body_bytes by Content-Length and by summed chunks.
import hashlib
import json
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F403

t = Tap()
legacy = start_legacy()
proxy = Proxy(f"http://127.0.0.1:{legacy.port}",
              settings="limits: { max_body_bytes: 4194304 }\n")


def pattern(n):
    """The stub's /__bytes content: byte i = 'a' + i % 26."""
    return (bytes(range(97, 123)) * (n // 26 + 1))[:n]


MIB = 1 << 20
payload = os.urandom(MIB)
sha = hashlib.sha256(payload).hexdigest()

# 1 MiB upload, Content-Length framed.
st, js = echo(proxy.port, "POST", body=payload, headers={"Content-Type": "application/octet-stream"})
t.eq((st, js.get("body_length"), js.get("body_sha256")), (200, MIB, sha),
     "a 1 MiB Content-Length upload arrives whole")

# 1 MiB upload, chunked, in uneven chunk sizes and uneven writes.
s = connect(proxy.port)
s.sendall(b"POST /__echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
off = 0
sizes = [1, 7, 4096, 65536, 100000, 3]
i = 0
while off < MIB:
    n = min(sizes[i % len(sizes)], MIB - off)
    s.sendall(b"%x\r\n" % n + payload[off:off + n] + b"\r\n")
    off += n
    i += 1
s.sendall(b"0\r\n\r\n")
st, h, b = read_response(s)
s.close()
js = json.loads(b)
t.eq((st, js.get("body_length"), js.get("body_sha256")), (200, MIB, sha),
     "a 1 MiB chunked upload arrives whole")
t.ok(["Transfer-Encoding", "chunked"] in [[k.title(), v] for k, v in js.get("headers", [])],
     "the upstream receives it chunked (streamed, not buffered)", js.get("headers"))

# 1 MiB download, Content-Length and chunked.
want = hashlib.sha256(pattern(MIB)).hexdigest()
st, h, b = request(proxy.port, "GET", f"/__bytes?size={MIB}")
t.eq((st, len(b), hashlib.sha256(b).hexdigest()), (200, MIB, want),
     "a 1 MiB Content-Length response arrives whole")
s = connect(proxy.port)
s.sendall(f"GET /__bytes?size={MIB}&chunked=1 HTTP/1.1\r\nHost: a\r\n\r\n".encode())
st, h, b = read_response(s)
s.close()
t.eq((st, h.get("transfer-encoding"), len(b), hashlib.sha256(b).hexdigest()),
     (200, "chunked", MIB, want), "a 1 MiB chunked response arrives whole, chunked")

# Over max_body_bytes: by Content-Length up front, by summed chunks as they come.
before = json.loads(request(legacy.port, "GET", "/__count")[2])["requests"]
resp, closed = raw(proxy.port, b"POST /__echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5000000\r\n\r\n"
                   + b"x" * 1000)
t.eq((status_of(resp), closed), (413, True), "Content-Length over max_body_bytes: 413, closed")
after = json.loads(request(legacy.port, "GET", "/__count")[2])["requests"]
t.eq(after, before, "nothing of the oversized request reached the monolith")

s = connect(proxy.port)
s.sendall(b"POST /__echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
resp = b""
try:
    for _ in range(80):
        s.sendall(b"10000\r\n" + b"y" * 65536 + b"\r\n")
except OSError:
    pass
resp, closed = recv_all(s, 5)
s.close()
t.eq(status_of(resp), 413, "chunks summing over max_body_bytes: 413")

# 200 MiB response through a client that starts reading late: the proxy must stop reading
# the upstream (backpressure) and its memory stay bounded.
size = 200 * MIB
rss_max = [0]
stop = threading.Event()


def sample():
    while not stop.is_set():
        rss_max[0] = max(rss_max[0], rss_kib(proxy.p.pid))
        time.sleep(0.02)


sampler = threading.Thread(target=sample)
sampler.start()
s = connect(proxy.port)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
s.sendall(f"GET /__bytes?size={size} HTTP/1.1\r\nHost: a\r\n\r\n".encode())
time.sleep(1.0)  # the upstream keeps sending; nobody reads yet
got = 0
digest = hashlib.sha256()
s.settimeout(60 * SLOW)
head = b""
while b"\r\n\r\n" not in head:
    head += s.recv(65536)
head, _, rest = head.partition(b"\r\n\r\n")
got += len(rest)
digest.update(rest)
while got < size:
    b = s.recv(1 << 20)
    if not b:
        break
    got += len(b)
    digest.update(b)
s.close()
stop.set()
sampler.join()
t.eq(got, size, "the 200 MiB response arrives whole")
if SANITIZED:
    # ASan's allocator quarantine holds freed buffers: RSS says nothing about our use there.
    t.skip("proxy RSS under 64 MiB while streaming 200 MiB", "RSS is not meaningful under ASan")
else:
    t.ok(rss_max[0] < 64 * 1024, "proxy RSS stays under 64 MiB while streaming 200 MiB",
         f"max RSS {rss_max[0]} KiB")
t.diag(f"max proxy RSS while streaming 200 MiB: {rss_max[0]} KiB")

t.eq(proxy.stop(), 0, "strangler exits 0")
t.ok(proxy.sanitizer_report() is None, "no sanitizer report", proxy.sanitizer_report())

# A slow reader: while the client holds the response back, upstream_response does not run (the
# upstream is waiting on us, not the other way round); the client's own progress keeps it.
slowp = Proxy(f"http://127.0.0.1:{legacy.port}",
              settings="timeouts: { upstream_response: 1s, client_body: 5s }\n")
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(("127.0.0.1", slowp.port))
size = 4 * 1024 * 1024
s.sendall(f"GET /__bytes?size={size} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
got = 0
deadline = time.monotonic() + 30 * SLOW
start = time.monotonic()
s.settimeout(10 * SLOW)
while got < size + 40 and time.monotonic() < deadline:
    try:
        b = s.recv(65536)
    except socket.timeout:
        break
    if not b:
        break
    got += len(b)
    if time.monotonic() - start < 3.0:
        time.sleep(0.01)  # about 3 s of slow reading: past upstream_response several times
s.close()
t.ok(got > size, f"a client reading slowly for 3 s gets all of a 4 MiB body (upstream_response 1s)",
     got)
t.ok("stalled past upstream_response" not in slowp.output(),
     "no upstream timeout is logged for a slow client")
t.eq(slowp.stop(), 0, "strangler exits 0")
