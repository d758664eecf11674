#!/usr/bin/env python3
# Forwarding through the proxy: the monolith answers, keep-alive on both sides, the forwarding
# headers, hop-by-hop removal, HEAD/204/304, HTTP/1.0, pipelining and 100-continue.
import http.client
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F403

t = Tap()
legacy = start_legacy()
proxy = Proxy(f"http://127.0.0.1:{legacy.port}")

# The monolith's JSON comes back unchanged.
st, hdrs, body = request(proxy.port, "GET", "/api/orders/1")
t.eq(st, 200, "GET /api/orders/1 through the proxy is 200")
js = json.loads(body)
t.eq(js.get("id"), 1, "the order body is the monolith's")
t.ok("content-type" in hdrs and "json" in hdrs["content-type"], "Content-Type is relayed",
     hdrs)

# Keep-alive: many requests on one client connection, one upstream connection reused.
c = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
peers = set()
statuses = []
for i in range(20):
    c.request("GET", f"/__echo?i={i}")
    r = c.getresponse()
    data = r.read()
    statuses.append(r.status)
    peers.add(json.loads(data).get("peer"))
t.eq(statuses, [200] * 20, "20 requests on one client connection all succeed")
t.ok(c.sock is not None, "the client connection stayed open (keep-alive)")
c.close()
t.ok(len(peers) == 1 and None not in peers,
     "the upstream saw one pooled connection for 20 sequential requests", peers)

# Forwarding headers.
st, js = echo(proxy.port, headers={"Host": "shop.example.com"})
h = echoed_headers(js)
t.eq(h.get("host"), ["shop.example.com"], "Host reaches the monolith unchanged")
t.eq(h.get("x-forwarded-for"), ["127.0.0.1"], "X-Forwarded-For is the client address")
t.eq(h.get("x-forwarded-proto"), ["http"], "X-Forwarded-Proto: http")
t.eq(h.get("x-forwarded-host"), ["shop.example.com"], "X-Forwarded-Host is the client's Host")
rid = h.get("x-request-id", [""])[0]
t.ok(len(rid) == 32 and all(ch in "0123456789abcdef" for ch in rid),
     "a request without X-Request-Id gets a generated one", rid)

st, js = echo(proxy.port, headers={"X-Forwarded-For": "203.0.113.7",
                                   "X-Request-Id": "abc-123_x.y"})
h = echoed_headers(js)
t.eq(h.get("x-forwarded-for"), ["203.0.113.7, 127.0.0.1"],
     "an incoming X-Forwarded-For is kept and the client appended")
t.eq(h.get("x-request-id"), ["abc-123_x.y"], "a valid incoming X-Request-Id is kept")

st, js = echo(proxy.port, headers={"X-Request-Id": "bad id with spaces"})
rid = echoed_headers(js).get("x-request-id", [""])[0]
t.ok(rid != "bad id with spaces" and len(rid) == 32,
     "an invalid X-Request-Id is replaced", rid)

# Hop-by-hop headers are removed, and those named in Connection too.
s = connect(proxy.port)
s.sendall(b"GET /__echo HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Hop\r\n"
          b"Keep-Alive: timeout=5\r\nX-Hop: secret\r\nTE: trailers\r\nTrailer: X-T\r\n"
          b"Upgrade: websocket\r\nProxy-Connection: keep-alive\r\nX-Keep: 1\r\n"
          b"X-Dup: a\r\nX-Dup: b\r\n\r\n")
st, rh, body = read_response(s)
s.close()
h = echoed_headers(json.loads(body))
for name in ("connection", "keep-alive", "x-hop", "te", "trailer", "upgrade",
             "proxy-connection"):
    t.ok(name not in h, f"hop-by-hop header {name} is not forwarded", h.get(name))
t.eq(h.get("x-keep"), ["1"], "end-to-end headers are forwarded")
t.eq(h.get("x-dup"), ["a", "b"], "repeated headers keep their order")

# HEAD: headers (with the length) but no body; 204 and 304 have no body either.
s = connect(proxy.port)
s.sendall(b"HEAD /api/orders/1 HTTP/1.1\r\nHost: a\r\n\r\nGET /health HTTP/1.1\r\nHost: a\r\n\r\n")
st1, h1, b1 = read_response(s, head_only=True)
st2, h2, b2 = read_response(s)
s.close()
t.eq(st1, 200, "HEAD is answered")
t.ok(int(h1.get("content-length", "0")) > 0, "HEAD keeps the representation's length", h1)
t.eq(st2, 200, "the request after a HEAD parses cleanly (no body was sent for HEAD)")
for code in (204, 304):
    s = connect(proxy.port)
    s.sendall(f"GET /api/orders/1?status={code} HTTP/1.1\r\nHost: a\r\n\r\n"
              f"GET /health HTTP/1.1\r\nHost: a\r\n\r\n".encode())
    sa, ha, ba = read_response(s)
    sb, hb, bb = read_response(s)
    s.close()
    t.eq((sa, ba, sb), (code, b"", 200), f"{code} has no body and the next response follows")

# HTTP/1.0 client: answered, connection closed after.
resp, closed = raw(proxy.port, b"GET /api/orders/2 HTTP/1.0\r\nHost: a\r\n\r\n")
t.eq(status_of(resp), 200, "an HTTP/1.0 request is answered")
t.ok(closed, "an HTTP/1.0 request without keep-alive closes the connection")
t.ok(b'"id":2' in resp.replace(b" ", b""), "HTTP/1.0 response carries the body", resp[-200:])
resp, closed = raw(proxy.port, b"GET /__bytes?size=1000&chunked=1 HTTP/1.0\r\nHost: a\r\n\r\n")
head, _, body = resp.partition(b"\r\n\r\n")
t.ok(b"chunked" not in head.lower() and len(body) == 1000 and closed,
     "a chunked upstream body goes to an HTTP/1.0 client raw, ended by close",
     (head, len(body), closed))

# Pipelining: three requests in one write, three responses in order.
s = connect(proxy.port)
s.sendall(b"".join(f"GET /__echo?n={i} HTTP/1.1\r\nHost: a\r\n\r\n".encode() for i in range(3)))
paths = []
for i in range(3):
    st, h, b = read_response(s)
    paths.append(json.loads(b)["path"])
s.close()
t.eq(paths, ["/__echo?n=0", "/__echo?n=1", "/__echo?n=2"], "pipelined responses keep order")

# Expect: 100-continue: the interim answer comes before the body is sent.
s = connect(proxy.port)
s.sendall(b"POST /__echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
s.settimeout(5 * SLOW)
interim = s.recv(100)
t.ok(interim.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), "100 Continue is sent", interim)
s.sendall(b"hello")
st, h, b = read_response(s)
s.close()
js = json.loads(b)
t.eq((st, js.get("body_length")), (200, 5), "the body sent after 100 Continue arrives")
t.ok("expect" not in echoed_headers(js), "Expect is handled by the proxy, not forwarded")

# Request ids are in the access log? (covered in proxy_lifecycle.t). Sanity: still alive.
st, _, _ = request(proxy.port, "GET", "/health")
t.eq(st, 200, "the proxy is still serving")
t.eq(proxy.stop(), 0, "strangler exits 0 on SIGTERM")
t.ok(proxy.sanitizer_report() is None, "no sanitizer report", proxy.sanitizer_report())
