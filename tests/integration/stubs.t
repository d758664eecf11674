#!/usr/bin/env python3
"""The stand-in servers on their own, no proxy: legacy-stub and function-host answer every
endpoint with the documented shape, obey every fault knob (query and header forms), agree on data
while ordering keys differently, show the one deliberate catalog difference, and exit 0 on
SIGTERM/SIGINT with nothing for the sanitizers to report."""

import datetime
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BIN, SANITIZED, SLOW, Tap, connect, free_port, read_response,  # noqa: E402
                     request, rss_kib, start_functions, start_legacy)

t = Tap()
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
HEX32 = re.compile(r"^[0-9a-f]{32}$")
PER_RESPONSE = ("generated_at", "request_id")


def pattern(n):
    """What /__bytes?size=n must send: byte i = 'a' + i % 26."""
    alphabet = b"abcdefghijklmnopqrstuvwxyz"
    return (alphabet * (n // 26 + 1))[:n]


def get_json(port, path, method="GET", headers=None, body=None):
    st, h, data = request(port, method, path, headers, body)
    try:
        return st, h, json.loads(data)
    except ValueError:
        return st, h, {"unparsable": data[:300]}


def ordered_keys(data):
    """Top-level key order as sent, and the order of the first nested object of each key."""
    return json.loads(data, object_pairs_hook=lambda pairs: [k for k, _ in pairs])


def strip(js):
    return {k: v for k, v in js.items() if k not in PER_RESPONSE}


def exchange(port, data, timeout=10.0):
    """Sends data on a new connection and reads until the peer closes, resets or times out.
    Returns (bytes, how, arrivals) with how in eof/reset/timeout and arrivals a list of
    (monotonic time, byte count) per recv."""
    s = connect(port)
    s.settimeout(timeout * SLOW)
    chunks, arrivals, how = [], [], "timeout"
    try:
        s.sendall(data)
        while True:
            b = s.recv(65536)
            if not b:
                how = "eof"
                break
            chunks.append(b)
            arrivals.append((time.monotonic(), len(b)))
    except ConnectionResetError:
        how = "reset"
    except socket.timeout:
        pass
    finally:
        s.close()
    return b"".join(chunks), how, arrivals


def split_response(data):
    """(status, headers lowercased, body as received) of a possibly truncated response."""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return int(lines[0].split(" ")[1]), headers, body


def dechunk(body):
    out, pos = b"", 0
    while True:
        eol = body.index(b"\r\n", pos)
        size = int(body[pos:eol], 16)
        if size == 0:
            return out
        out += body[eol + 2:eol + 2 + size]
        pos = eol + 2 + size + 2


def get_raw(port, target, extra=b""):
    return (b"GET " + target.encode() + b" HTTP/1.1\r\nHost: stub.test\r\n" + extra +
            b"Connection: close\r\n\r\n")


def count(port):
    return get_json(port, "/__count")[2].get("requests")


def check_common(name, port):
    """Every built-in endpoint and every knob, on one server."""
    # /health and the per-response fields
    st, h, js = get_json(port, "/health")
    t.eq(st, 200, f"{name}: GET /health is 200")
    t.eq(h.get("content-type"), "application/json", f"{name}: /health is application/json")
    t.eq(js.get("status"), "ok", f"{name}: /health says ok")
    t.ok(ISO_MS.match(js.get("generated_at", "")), f"{name}: generated_at is UTC ISO-8601 with ms",
         js.get("generated_at"))
    gen = datetime.datetime.strptime(js.get("generated_at", "1970-01-01T00:00:00.000Z"),
                                     "%Y-%m-%dT%H:%M:%S.%fZ")
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    t.ok(abs((gen - now).total_seconds()) < 300,
         f"{name}: generated_at is now", js.get("generated_at"))
    rid1 = js.get("request_id", "")
    rid2 = get_json(port, "/health")[2].get("request_id", "")
    t.ok(HEX32.match(rid1) and HEX32.match(rid2) and rid1 != rid2,
         f"{name}: without X-Request-Id, request_id is fresh random hex", (rid1, rid2))
    js = get_json(port, "/health", headers={"X-Request-Id": "req-7f3a-42"})[2]
    t.eq(js.get("request_id"), "req-7f3a-42", f"{name}: request_id is the X-Request-Id sent")

    # /__echo: method, raw path, version, headers in order with duplicates, body
    body = b"hello world"
    req = (b"PUT /__echo?x=1&y=%20z HTTP/1.1\r\nHost: stub.test\r\nX-Dup: one\r\n"
           b"x-dup: two\r\nX-Mixed-Case: MiXeD value\r\nContent-Length: 11\r\n\r\n" + body)
    s = connect(port)
    s.sendall(req)
    st, h, data = read_response(s)
    s.close()
    js = json.loads(data)
    t.eq(st, 200, f"{name}: /__echo is 200")
    t.eq(js.get("method"), "PUT", f"{name}: echo reports the method")
    t.eq(js.get("path"), "/__echo?x=1&y=%20z", f"{name}: echo reports the raw target with query")
    t.eq(js.get("version"), "HTTP/1.1", f"{name}: echo reports the version")
    t.eq(js.get("headers"), [["Host", "stub.test"], ["X-Dup", "one"], ["x-dup", "two"],
                             ["X-Mixed-Case", "MiXeD value"], ["Content-Length", "11"]],
         f"{name}: echo reports headers in received order, names as sent, duplicates kept")
    t.eq(js.get("body_length"), 11, f"{name}: echo reports the body length")
    t.eq(js.get("body_sha256"), hashlib.sha256(body).hexdigest(), f"{name}: echo body sha256")
    big = os.urandom(1 << 20)
    js = get_json(port, "/__echo", "POST", {"Content-Type": "application/octet-stream"}, big)[2]
    t.ok(js.get("body_length") == len(big) and
         js.get("body_sha256") == hashlib.sha256(big).hexdigest(),
         f"{name}: echo of a 1 MiB body has its length and sha256", js)
    methods = {}
    for m in ("GET", "DELETE", "PATCH", "OPTIONS"):
        methods[m] = get_json(port, "/__echo", m)[2].get("method")
    t.eq(methods, {m: m for m in methods}, f"{name}: echo answers any method")
    js = get_json(port, "/__echo")[2]
    t.eq(js.get("body_sha256"), hashlib.sha256(b"").hexdigest(),
         f"{name}: echo of no body has the empty sha256")
    data, how, _ = exchange(port, b"GET /__echo HTTP/1.0\r\nX-Old: yes\r\n\r\n")
    st, _, raw_body = split_response(data)
    js = json.loads(raw_body) if st == 200 else {}
    t.ok(js.get("version") == "HTTP/1.0" and js.get("headers") == [["X-Old", "yes"]],
         f"{name}: echo of an HTTP/1.0 request", data[:400])

    # /__bytes: size and content, Content-Length or chunked
    for n in (0, 1, 26, 1000003):
        st, h, data = request(port, "GET", f"/__bytes?size={n}")
        t.ok(st == 200 and h.get("content-length") == str(n) and
             "transfer-encoding" not in h and data == pattern(n),
             f"{name}: /__bytes?size={n} is {n} pattern bytes, Content-Length framed",
             (st, h, len(data)))
    t.eq(h.get("content-type"), "application/octet-stream", f"{name}: /__bytes content type")
    st, h, data = request(port, "GET", "/__bytes?size=1000003&chunked=1")
    t.ok(st == 200 and h.get("transfer-encoding") == "chunked" and "content-length" not in h and
         hashlib.sha256(data).digest() == hashlib.sha256(pattern(1000003)).digest(),
         f"{name}: /__bytes with chunked=1 is chunked and has the right sha256", (st, h))
    st, h, data = request(port, "HEAD", "/__bytes?size=100")
    t.ok(st == 200 and h.get("content-length") == "100" and data == b"",
         f"{name}: HEAD /__bytes has the Content-Length and no body", (st, h, data))
    st, _, js = get_json(port, "/__bytes?size=lots")
    t.ok(st == 400 and js.get("error") == "bad_size", f"{name}: /__bytes with a bad size is 400",
         js)

    # /__count: everything but itself, including errors and resets
    c0 = count(port)
    request(port, "GET", "/health")
    request(port, "GET", "/no/such/path")
    exchange(port, get_raw(port, "/health?reset=before"))
    c1 = count(port)
    t.ok(isinstance(c0, int) and c1 == c0 + 3,
         f"{name}: /__count counts every request but itself", (c0, c1))

    # status
    st, _, js = get_json(port, "/api/orders/7?status=503")
    t.ok(st == 503 and js.get("id") == 7, f"{name}: status=503 answers 503, body still the order",
         (st, js))
    st, _, js = get_json(port, "/health", headers={"X-Stub-Status": "418"})
    t.ok(st == 418 and js.get("status") == "ok", f"{name}: X-Stub-Status: 418 answers 418",
         (st, js))
    st, h, data = request(port, "GET", "/health?status=204")
    t.ok(st == 204 and data == b"" and "content-length" not in h,
         f"{name}: status=204 sends no body", (st, h, data))

    # delay: measured, and the event loop keeps serving meanwhile
    delay = 1.5
    s = connect(port)
    t0 = time.monotonic()
    s.sendall(get_raw(port, f"/api/orders/3?delay_ms={int(delay * 1000)}"))
    st_other = request(port, "GET", "/health")[0]
    s.setblocking(False)
    try:
        early = s.recv(1)
    except BlockingIOError:
        early = None
    s.setblocking(True)
    t.ok(st_other == 200 and early is None,
         f"{name}: another request is served while a delayed one waits", (st_other, early))
    st, _, data = read_response(s)
    elapsed = time.monotonic() - t0
    s.close()
    t.ok(st == 200 and json.loads(data).get("id") == 3 and elapsed >= delay * 0.9,
         f"{name}: delay_ms={int(delay * 1000)} answers after the delay",
         f"status {st}, {elapsed:.3f}s")
    t0 = time.monotonic()
    st = request(port, "GET", "/health", {"X-Stub-Delay-Ms": "300"})[0]
    elapsed = time.monotonic() - t0
    t.ok(st == 200 and elapsed >= 0.27, f"{name}: X-Stub-Delay-Ms: 300 delays",
         f"{elapsed:.3f}s")
    t0 = time.monotonic()
    st, _, js = get_json(port, "/api/catalog/SKU-00042?delay_ms=250&status=500")
    elapsed = time.monotonic() - t0
    t.ok(st == 500 and js.get("sku") == "SKU-00042" and elapsed >= 0.22,
         f"{name}: delay and status combine", (st, f"{elapsed:.3f}s"))

    # reset=before: the request is read, then an RST and not one byte
    for how_sent, req in (("reset=before", get_raw(port, "/api/orders/1?reset=before")),
                          ("X-Stub-Reset: before",
                           get_raw(port, "/api/orders/1", b"X-Stub-Reset: before\r\n"))):
        data, how, _ = exchange(port, req)
        t.ok(data == b"" and how == "reset", f"{name}: {how_sent} resets with no bytes",
             (how, data[:200]))
    t0 = time.monotonic()
    data, how, _ = exchange(port, get_raw(port, "/health?reset=before&delay_ms=300"))
    elapsed = time.monotonic() - t0
    t.ok(data == b"" and how == "reset" and elapsed >= 0.27,
         f"{name}: delay then reset=before", (how, f"{elapsed:.3f}s"))

    # reset=mid: full Content-Length announced, about half the body, then an RST
    n = 2000000
    data, how, _ = exchange(port, get_raw(port, f"/__bytes?size={n}&reset=mid"))
    st, h, body = split_response(data)
    t.ok(st == 200 and h.get("content-length") == str(n) and 0 < len(body) < n and
         how == "reset" and body == pattern(len(body)),
         f"{name}: reset=mid on /__bytes sends part of the announced body, then resets",
         (st, h, len(body), how))
    data, how, _ = exchange(port, get_raw(port, "/api/orders/7", b"X-Stub-Reset: mid\r\n"))
    st, h, body = split_response(data)
    cl = int(h.get("content-length", "0"))
    t.ok(st == 200 and 0 < len(body) < cl and how == "reset",
         f"{name}: X-Stub-Reset: mid on JSON sends fewer bytes than Content-Length",
         (st, cl, len(body), how))
    data, how, _ = exchange(port, get_raw(port, "/__bytes?size=100000&reset=mid&chunked=1"))
    st, h, body = split_response(data)
    t.ok(st == 200 and h.get("transfer-encoding") == "chunked" and how == "reset" and
         not body.endswith(b"0\r\n\r\n"),
         f"{name}: reset=mid with chunked=1 never sends the last chunk", (st, h, how))

    # slow: ten pieces spread over time, content intact
    n, slow = 200000, 60
    data, how, arrivals = exchange(port, get_raw(port, f"/__bytes?size={n}&slow_ms={slow}"))
    st, h, body = split_response(data)
    spread = arrivals[-1][0] - arrivals[0][0] if arrivals else 0
    t.ok(st == 200 and body == pattern(n) and spread >= 8 * slow / 1000 * 0.9,
         f"{name}: slow_ms={slow} paces the body out in pieces",
         (st, len(body), f"first to last byte {spread:.3f}s"))
    t0 = time.monotonic()
    st, h, data = request(port, "GET", "/api/orders/7",
                          {"X-Stub-Slow-Ms": "40", "X-Stub-Chunked": "1"})
    elapsed = time.monotonic() - t0
    t.ok(st == 200 and h.get("transfer-encoding") == "chunked" and
         json.loads(data).get("id") == 7 and elapsed >= 9 * 0.040 * 0.9,
         f"{name}: X-Stub-Slow-Ms and X-Stub-Chunked combine on JSON", (st, h, f"{elapsed:.3f}s"))

    # chunked on JSON: same data, other framing
    st, h, data = request(port, "GET", "/api/orders/7?chunked=1")
    st2, h2, data2 = request(port, "GET", "/api/orders/7")
    t.ok(st == 200 and h.get("transfer-encoding") == "chunked" and "content-length" not in h and
         strip(json.loads(data)) == strip(json.loads(data2)) and "content-length" in h2,
         f"{name}: chunked=1 changes the framing, not the data", (h, h2))

    # malformed knobs are refused, not half applied
    for q in ("delay_ms=soon", "status=99", "status=600", "reset=sideways", "slow_ms=-1",
              "chunked=maybe", "delay_ms=600001"):
        st, _, js = get_json(port, f"/health?{q}")
        t.ok(st == 400 and js.get("error") == "bad_knob", f"{name}: ?{q} is a 400 bad_knob",
             (st, js))
    st, _, js = get_json(port, "/health", headers={"X-Stub-Delay-Ms": "+5"})
    t.ok(st == 400 and js.get("error") == "bad_knob", f"{name}: X-Stub-Delay-Ms: +5 is refused",
         (st, js))
    st = request(port, "GET", "/health?status=201", {"X-Stub-Status": "502"})[0]
    t.eq(st, 201, f"{name}: the query parameter wins over the header")

    # keep-alive: several answers, knobs included, on one connection
    s = connect(port)
    got = []
    for target in ("/health", "/api/orders/2?delay_ms=50", "/__bytes?size=5000&slow_ms=5",
                   "/api/catalog?chunked=1"):
        s.sendall(b"GET " + target.encode() + b" HTTP/1.1\r\nHost: stub.test\r\n\r\n")
        got.append(read_response(s)[0])
    s.close()
    t.eq(got, [200, 200, 200, 200], f"{name}: one keep-alive connection serves knobbed requests")

    # clients that vanish mid-delay, mid-stream or mid-reset cost the server nothing
    gone = []
    for target in ("/__bytes?size=10000000&slow_ms=100", "/health?delay_ms=200",
                   "/__bytes?size=100000000", "/__bytes?size=50000000&reset=mid",
                   "/api/orders/1?slow_ms=50&chunked=1"):
        s = connect(port)
        s.sendall(get_raw(port, target))
        gone.append(s)
    gone[0].recv(1000)
    gone[2].recv(100000)
    for s in gone:
        s.close()
    time.sleep(0.5 * SLOW)
    st, _, js = get_json(port, "/api/orders/5")
    t.ok(st == 200 and js.get("id") == 5, f"{name}: still serving after clients vanished mid-reply",
         (st, js))

    # unknown paths
    st, h, js = get_json(port, "/no/such/thing")
    t.ok(st == 404 and h.get("content-type") == "application/json" and
         js.get("error") == "not_found" and "request_id" in js,
         f"{name}: an unknown path is a 404 JSON error", (st, js))


def check_shop(name, port):
    """The shop endpoints both servers have."""
    st, h, js = get_json(port, "/api/orders")
    orders = js.get("orders", [])
    t.ok(st == 200 and len(orders) == js.get("count") and len(orders) >= 3 and
         [o.get("id") for o in orders] == list(range(1, len(orders) + 1)),
         f"{name}: GET /api/orders lists a few orders", js)
    st, h, js = get_json(port, "/api/orders/7")
    items = js.get("items", [])
    t.ok(st == 200 and js.get("id") == 7 and
         set(js.get("customer", {})) == {"id", "name", "email"} and len(items) >= 1 and
         all(set(i) == {"sku", "name", "qty", "price", "line_total"} for i in items) and
         js.get("status") in ("pending", "paid", "shipped", "delivered", "cancelled", "refunded"),
         f"{name}: GET /api/orders/7 has customer, items, status", js)
    t.ok(abs(sum(i["qty"] * i["price"] for i in items) - js.get("total", -1)) < 0.005,
         f"{name}: an order's total is the sum of its items", js)
    t.ok(all(k in js for k in PER_RESPONSE), f"{name}: orders carry generated_at and request_id")
    again = get_json(port, "/api/orders/7")[2]
    t.eq(strip(again), strip(js), f"{name}: an order is deterministic from its id")
    t.ok(strip(get_json(port, "/api/orders/8")[2]) != strip(js), f"{name}: orders differ by id")
    t.eq(get_json(port, "/api/orders/100000")[0], 200, f"{name}: order 100000 exists")
    for bad in ("0", "100001", "-1", "abc", "7x", "+7", ""):
        st, _, js = get_json(port, f"/api/orders/{bad}")
        t.ok(st == 404 and js.get("error") == "not_found" and "generated_at" in js,
             f"{name}: GET /api/orders/{bad} is a 404 JSON error", (st, js))
    st, h, js = get_json(port, "/api/orders/7", "DELETE")
    t.ok(st == 405 and "GET" in h.get("allow", ""), f"{name}: DELETE an order is 405 with Allow",
         (st, h))

    order = {"customer_id": 42, "items": [{"sku": "SKU-00007", "qty": 2},
                                          {"sku": "SKU-42", "qty": 1}]}
    st, h, js = get_json(port, "/api/orders", "POST", {"Content-Type": "application/json"},
                         json.dumps(order).encode())
    p7 = get_json(port, "/api/catalog/SKU-00007")[2].get("price")
    p42 = get_json(port, "/api/catalog/SKU-00042")[2].get("price")
    t.ok(st == 201 and js.get("id", 0) > 100000 and js.get("status") == "pending" and
         h.get("location") == f"/api/orders/{js.get('id')}" and
         js.get("customer", {}).get("id") == 42 and
         [(i["sku"], i["qty"]) for i in js.get("items", [])] == [("SKU-00007", 2),
                                                                 ("SKU-00042", 1)] and
         abs(js.get("total", 0) - (2 * p7 + p42)) < 0.005,
         f"{name}: POST /api/orders creates the order (201, Location, catalog prices)", (st, h, js))
    for what, body in (("invalid JSON", b"{\"items\": ["), ("a JSON array", b"[1, 2]"),
                       ("no items", b"{\"customer_id\": 1}"),
                       ("a bad sku", b"{\"items\": [{\"sku\": \"X\", \"qty\": 1}]}")):
        st, _, js = get_json(port, "/api/orders", "POST", {"Content-Type": "application/json"},
                             body)
        t.ok(st == 400 and js.get("error") in ("invalid_json", "invalid_order") and
             js.get("message"), f"{name}: POST /api/orders with {what} is a 400 JSON error",
             (st, js))

    st, _, js = get_json(port, "/api/catalog")
    products = js.get("products", [])
    t.ok(st == 200 and len(products) == js.get("count") and len(products) >= 10,
         f"{name}: GET /api/catalog lists products", js)
    st, _, js = get_json(port, "/api/catalog/SKU-00042")
    t.ok(st == 200 and js.get("sku") == "SKU-00042" and isinstance(js.get("price"), float) and
         isinstance(js.get("name"), str) and js.get("currency") == "EUR" and
         isinstance(js.get("in_stock"), bool),
         f"{name}: GET /api/catalog/SKU-00042 is the product", js)
    t.eq(strip(get_json(port, "/api/catalog/SKU-42")[2]), strip(js),
         f"{name}: SKU-42 and SKU-00042 are the same product")
    for bad in ("SKU-0", "SKU-100000", "nope", "sku-42"):
        st, _, js = get_json(port, f"/api/catalog/{bad}")
        t.ok(st == 404 and js.get("error") == "not_found", f"{name}: /api/catalog/{bad} is 404",
             (st, js))


def check_help_and_usage(prog, knob_names):
    out = subprocess.run([os.path.join(BIN, prog), "--help"], capture_output=True, text=True,
                         timeout=30)
    missing = [k for k in knob_names if k not in out.stdout]
    t.ok(out.returncode == 0 and not missing, f"{prog} --help exits 0 and names every knob",
         (out.returncode, missing))
    for args in (["--bogus"], ["--port", "70000"], ["stray"]):
        rc = subprocess.run([os.path.join(BIN, prog), *args], capture_output=True,
                            timeout=30).returncode
        t.eq(rc, 2, f"{prog} {' '.join(args)} is a usage error (exit 2)")


def stop_clean(proc, name, sig=signal.SIGTERM):
    rc = proc.stop(sig)
    t.eq(rc, 0, f"{name}: {signal.Signals(sig).name} exits 0")
    report = proc.sanitizer_report() if SANITIZED else None
    t.ok(report is None, f"{name}: no sanitizer report", report)


KNOBS = ["delay_ms", "X-Stub-Delay-Ms", "status", "X-Stub-Status", "reset=before", "reset=mid",
         "X-Stub-Reset", "slow_ms", "X-Stub-Slow-Ms", "chunked", "X-Stub-Chunked", "/__echo",
         "/__bytes", "/__count", "/health"]

legacy = start_legacy()
functions = start_functions()
t.ok(f"legacy-stub listening on 127.0.0.1:{legacy.port}" in legacy.output(),
     "legacy-stub logs where it listens", legacy.output())
t.ok(f"function-host listening on 127.0.0.1:{functions.port}" in functions.output(),
     "function-host logs where it listens", functions.output())

for name, proc in (("legacy-stub", legacy), ("function-host", functions)):
    check_common(name, proc.port)
    check_shop(name, proc.port)

# legacy-stub alone serves users
st, _, js = get_json(legacy.port, "/api/users/42")
t.ok(st == 200 and js.get("id") == 42 and "@" in js.get("email", "") and
     set(js.get("address", {})) == {"street", "city", "postcode", "country"} and
     all(k in js for k in PER_RESPONSE), "legacy-stub: GET /api/users/42 is the user", js)
t.eq(strip(get_json(legacy.port, "/api/users/42")[2]), strip(js),
     "legacy-stub: a user is deterministic from the id")
t.eq(get_json(legacy.port, "/api/users/0")[0], 404, "legacy-stub: user 0 is 404")
t.eq(get_json(functions.port, "/api/users/42")[0], 404, "function-host: no users function: 404")

# Same data, other key order: orders (single, list, created)
hdr = {"X-Request-Id": "same-id"}
for path in ("/api/orders/1", "/api/orders/7", "/api/orders/99999", "/api/orders"):
    _, _, a = request(legacy.port, "GET", path, hdr)
    _, _, b = request(functions.port, "GET", path, hdr)
    ja, jb = json.loads(a), json.loads(b)
    t.eq(strip(jb), strip(ja), f"function-host {path}: same data as legacy-stub")
    t.ok(ordered_keys(a) != ordered_keys(b) and ja["request_id"] == jb["request_id"],
         f"function-host {path}: keys in another order", (ordered_keys(a), ordered_keys(b)))
order = json.dumps({"customer_id": 7, "items": [{"sku": "SKU-00031", "qty": 3}]}).encode()
a = get_json(legacy.port, "/api/orders", "POST", {"Content-Type": "application/json"}, order)
b = get_json(functions.port, "/api/orders", "POST", {"Content-Type": "application/json"}, order)
t.ok(a[0] == b[0] == 201 and strip(a[2]) == strip(b[2]) and
     a[1].get("location") == b[1].get("location"),
     "function-host POST /api/orders: same created order as legacy-stub", (a, b))

# The deliberate difference: price of SKUs divisible by 5, and nothing else
for n in (5, 10, 15, 12345):
    sku = f"SKU-{n:05d}"
    a = strip(get_json(legacy.port, f"/api/catalog/{sku}")[2])
    b = strip(get_json(functions.port, f"/api/catalog/{sku}")[2])
    diff = round(a.get("price", 0) - b.get("price", 0), 2)
    a.pop("price", None)
    b.pop("price", None)
    t.ok(diff == 0.01 and a == b,
         f"function-host {sku}: price 0.01 lower than legacy-stub, every other field equal",
         (diff, a, b))
for n in (1, 7, 42, 12344):
    sku = f"SKU-{n:05d}"
    a = strip(get_json(legacy.port, f"/api/catalog/{sku}")[2])
    b = strip(get_json(functions.port, f"/api/catalog/{sku}")[2])
    t.eq(b, a, f"function-host {sku}: same product as legacy-stub")
la = get_json(legacy.port, "/api/catalog")[2].get("products", [])
lb = get_json(functions.port, "/api/catalog")[2].get("products", [])
differing = [p["sku"] for p, q in zip(la, lb) if p != q]
t.eq(differing, [p["sku"] for p in la if int(p["sku"][4:]) % 5 == 0],
     "function-host /api/catalog: exactly the SKUs divisible by 5 differ")

# A large body streams: the server's memory does not follow the body's size
size = 128 << 20
s = connect(legacy.port)
s.sendall(get_raw(legacy.port, f"/__bytes?size={size}"))
before = rss_kib(legacy.p.pid)
got, peak = 0, before
h = hashlib.sha256()
s.settimeout(30 * SLOW)
while True:
    b = s.recv(1 << 20)
    if not b:
        break
    h.update(b)
    got += len(b)
    if got % (16 << 20) < len(b):
        peak = max(peak, rss_kib(legacy.p.pid))
s.close()
t.ok(got > size and peak - before < 32 * 1024,
     f"legacy-stub: a {size >> 20} MiB /__bytes streams without the server holding it",
     f"received {got} bytes, server RSS {before} -> {peak} KiB")

check_help_and_usage("legacy-stub", KNOBS + ["/api/orders", "/api/catalog", "/api/users"])
check_help_and_usage("function-host", KNOBS + ["/api/orders", "/api/catalog", "divisible by 5"])

# Clean exits, also with requests in flight (a delayed one and a slow stream)
extra = start_legacy()
hanging = [connect(extra.port), connect(extra.port)]
hanging[0].sendall(get_raw(extra.port, "/api/orders/1?delay_ms=60000"))
hanging[1].sendall(get_raw(extra.port, "/__bytes?size=10000000&slow_ms=10000"))
time.sleep(0.3 * SLOW)
stop_clean(extra, "legacy-stub with requests in flight")
for s in hanging:
    s.close()
extra = start_functions()
s = connect(extra.port)
s.sendall(get_raw(extra.port, "/health?delay_ms=60000"))
time.sleep(0.2 * SLOW)
stop_clean(extra, "function-host with a request in flight", signal.SIGINT)
s.close()
stop_clean(legacy, "legacy-stub")
stop_clean(functions, "function-host")
t.ok("SIGTERM, exiting" in legacy.output(), "legacy-stub logs why it exits", legacy.output())
