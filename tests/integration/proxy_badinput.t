#!/usr/bin/env python3
# Malformed requests on a raw socket: each gets the status of DESIGN §8, the connection is
# closed where the framing is in doubt, and nothing reaches the monolith.
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F403

t = Tap()
legacy = start_legacy()
proxy = Proxy(f"http://127.0.0.1:{legacy.port}",
              settings="limits: { max_header_bytes: 4096, max_headers: 20 }\n")


def count():
    return json.loads(request(legacy.port, "GET", "/__count")[2])["requests"]


H = b"Host: a\r\n"
cases = [
    ("both Content-Length and Transfer-Encoding",
     b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("differing Content-Length",
     b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400),
    ("malformed Content-Length", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: +5\r\n\r\nhello", 400),
    ("Transfer-Encoding other than chunked",
     b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 400),
    ("chunk size with 0x prefix",
     b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk size with a sign",
     b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n+5\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk size overflow",
     b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\nx\r\n", 400),
    ("obs-fold", b"GET / HTTP/1.1\r\n" + H + b"X-A: 1\r\n  folded\r\n\r\n", 400),
    ("whitespace before the colon", b"GET / HTTP/1.1\r\n" + H + b"X-A : 1\r\n\r\n", 400),
    ("bare LF line ends", b"GET / HTTP/1.1\n" + H + b"\n", 400),
    ("bare CR in a header", b"GET / HTTP/1.1\r\n" + H + b"X-A: 1\r2\r\n\r\n", 400),
    ("NUL in a header value", b"GET / HTTP/1.1\r\n" + H + b"X-A: 1\x002\r\n\r\n", 400),
    ("non-token header name", b"GET / HTTP/1.1\r\n" + H + b"X(A): 1\r\n\r\n", 400),
    ("invalid method", b"G@T / HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("invalid version", b"GET / HTTP/1.2\r\n" + H + b"\r\n", 400),
    ("missing Host", b"GET / HTTP/1.1\r\n\r\n", 400),
    ("duplicate Host", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ("CONNECT", b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 405),
    ("absolute-form for another host", b"GET http://evil.example/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("request line over the limit", b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\n" + H + b"\r\n", 414),
    ("headers over max_header_bytes",
     b"GET / HTTP/1.1\r\n" + H + b"".join(b"X-%d: %s\r\n" % (i, b"v" * 300) for i in range(15)) + b"\r\n", 431),
    ("more headers than max_headers",
     b"GET / HTTP/1.1\r\n" + H + b"".join(b"X-%d: v\r\n" % i for i in range(25)) + b"\r\n", 431),
]

before = count()
for name, data, want in cases:
    resp, closed = raw(proxy.port, data)
    t.ok(status_of(resp) == want and closed, f"{name}: {want} and connection closed",
         f"got {resp[:80]!r} closed={closed}")
after = count()
t.eq(after, before, "none of the malformed requests reached the monolith")

# A good request pipelined after a bad one is never processed.
before = count()
resp, closed = raw(proxy.port, b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n"
                   b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /__echo HTTP/1.1\r\nHost: a\r\n\r\n")
t.ok(status_of(resp) == 400 and resp.count(b"HTTP/1.1") == 1 and closed,
     "a good request after a bad one gets no response", resp)
t.eq(count(), before, "and does not reach the monolith")

# An absolute-form target for the right host is accepted.
resp, closed = raw(proxy.port, b"GET http://a/health HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
t.eq(status_of(resp), 200, "absolute-form for the request's own host is served")

t.eq(proxy.stop(), 0, "strangler exits 0")
t.ok(proxy.sanitizer_report() is None, "no sanitizer report", proxy.sanitizer_report())
