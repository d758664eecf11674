#!/usr/bin/env python3
# Malformed requests on a raw socket: each gets the status of DESIGN §8 and exactly one response,
# the connection is closed where the framing is in doubt, and nothing reaches the monolith: the
# stand-in records every byte it receives (--record), read before and after each case.
# Sources of cases: RFC 9112 §2-§7, HAProxy's reg-tests (h1 transfer-encoding, request-target),
# ATS's "good request after bad", and HTTP Garden's list of parser bugs (TROPHIES.md).
#
# Choices where the RFCs leave room (the accepted forms are pinned down below the bad ones):
# - Transfer-Encoding: exactly one "chunked", case-insensitive (RFC 9112 §7), OWS trimmed; any
#   other coding, list or repeat is 400 (DESIGN §8), and so is any TE on HTTP/1.0 (§6.1).
# - Content-Length: identical repeats ("5, 5", two headers) are one length (RFC 9110 §8.6 MAY,
#   as HAProxy); leading zeros are digits. Either way one canonical value goes out.
# - Chunk sizes: HEXDIG only, no whitespace at all, though RFC 9112 §7.1.1 allows BWS before
#   ';' (DESIGN §8: spaces are 400). Extensions and trailers are checked and never forwarded.
# - A lowercase method is a token (RFC 9110 §9.1: a different, unknown method): forwarded, as
#   HAProxy does (nginx refuses it); the monolith answers it. OPTIONS * is forwarded too.
# - HTTP/1.2 is 400 although RFC 9110 §2.5 says to read it as 1.1: no such version exists.
# - An empty Host is 400: no http URI has an empty host (RFC 9110 §4.2.1).
# - Transfer_Encoding / Content_Length are valid tokens but refused: CGI-style servers fold
#   '_' into '-', which makes them framing headers in disguise (nginx drops them).
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F403

t = Tap()
record = tempfile.mktemp(prefix="sf-record-")
legacy = start_legacy(extra=("--record", record))
proxy = Proxy(f"http://127.0.0.1:{legacy.port}",
              settings="limits: { max_header_bytes: 4096, max_headers: 20, "
                       "max_body_bytes: 1000 }\n")


def received():
    with open(record, "rb") as f:
        return f.read()


H = b"Host: a\r\n"
TE = b"Transfer-Encoding: chunked\r\n"
GOOD = b"GET /__echo HTTP/1.1\r\nHost: a\r\n\r\n"  # pipelined after a bad one: never served


def post(headers, body=b"", path=b"/c"):
    return b"POST " + path + b" HTTP/1.1\r\n" + H + headers + b"\r\n" + body


def get(headers=b"", line=b"GET /c HTTP/1.1"):
    return line + b"\r\n" + headers + b"\r\n"


# (name, bytes, status, closed): every one is refused before anything is forwarded.
CLOSED = True
bad = [
    # Content-Length and Transfer-Encoding (RFC 9112 §6.1, §6.3)
    ("CL then TE", post(b"Content-Length: 5\r\n" + TE, b"0\r\n\r\n"), 400, CLOSED),
    ("TE then CL", post(TE + b"Content-Length: 5\r\n", b"0\r\n\r\n"), 400, CLOSED),
    ("CL and TE, CL of 0", post(b"Content-Length: 0\r\n" + TE, b"0\r\n\r\n"), 400, CLOSED),
    ("two differing CL headers", post(b"Content-Length: 5\r\nContent-Length: 6\r\n", b"hello!"),
     400, CLOSED),
    ("CL list of differing values (5, 6)", post(b"Content-Length: 5, 6\r\n", b"hello!"), 400,
     CLOSED),
    ("CL with a plus sign", post(b"Content-Length: +5\r\n", b"hello"), 400, CLOSED),
    ("negative CL", post(b"Content-Length: -5\r\n", b"hello"), 400, CLOSED),
    ("hexadecimal CL (0x5)", post(b"Content-Length: 0x5\r\n", b"hello"), 400, CLOSED),
    ("CL with a space inside (5 5)", post(b"Content-Length: 5 5\r\n", b"hello"), 400, CLOSED),
    ("CL with trailing junk (5a)", post(b"Content-Length: 5a\r\n", b"hello"), 400, CLOSED),
    ("empty CL", post(b"Content-Length: \r\n", b""), 400, CLOSED),
    ("empty CL then a valid one", post(b"Content-Length: \r\nContent-Length: 5\r\n", b"hello"),
     400, CLOSED),
    ("CL overflow (20 digits)", post(b"Content-Length: 18446744073709551621\r\n", b"hello"),
     400, CLOSED),
    ("TE gzip, chunked", post(b"Transfer-Encoding: gzip, chunked\r\n", b"0\r\n\r\n"), 400,
     CLOSED),
    ("TE chunked, chunked", post(b"Transfer-Encoding: chunked, chunked\r\n", b"0\r\n\r\n"), 400,
     CLOSED),
    ("two TE chunked headers", post(TE + TE, b"0\r\n\r\n"), 400, CLOSED),
    ("TE chunked, identity (chunked not final)",
     post(b"Transfer-Encoding: chunked, identity\r\n", b"0\r\n\r\n"), 400, CLOSED),
    ("TE xchunked", post(b"Transfer-Encoding: xchunked\r\n", b"0\r\n\r\n"), 400, CLOSED),
    ("TE ,chunked", post(b"Transfer-Encoding: ,chunked\r\n", b"0\r\n\r\n"), 400, CLOSED),
    ("TE with obs-text around chunked", post(b"Transfer-Encoding: \xa0chunked\xa0\r\n",
                                             b"0\r\n\r\n"), 400, CLOSED),
    ("TE with a vertical tab before chunked", post(b"Transfer-Encoding: \x0bchunked\r\n",
                                                   b"0\r\n\r\n"), 400, CLOSED),
    ("Transfer_Encoding (framing header in disguise)",
     post(b"Transfer_Encoding: chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n"), 400, CLOSED),
    ("Content_Length (framing header in disguise)", post(b"Content_Length: 5\r\n", b"hello"),
     400, CLOSED),
    ("space before the TE colon", post(b"Transfer-Encoding : chunked\r\n", b"0\r\n\r\n"), 400,
     CLOSED),
    ("TE name split over two lines", post(b"Transfer-\r\nEncoding: chunked\r\n", b"0\r\n\r\n"),
     400, CLOSED),
    ("TE in an HTTP/1.0 request",
     b"POST /c HTTP/1.0\r\n" + H + TE + b"\r\n5\r\nhello\r\n0\r\n\r\n", 400, CLOSED),
    # chunk sizes and chunk lines (RFC 9112 §7.1)
    ("chunk size 0x5", post(TE, b"0x5\r\nhello\r\n0\r\n\r\n"), 400, CLOSED),
    ("chunk size +5", post(TE, b"+5\r\nhello\r\n0\r\n\r\n"), 400, CLOSED),
    ("chunk size -5", post(TE, b"-5\r\nhello\r\n0\r\n\r\n"), 400, CLOSED),
    ("chunk size with a leading space", post(TE, b" 5\r\nhello\r\n0\r\n\r\n"), 400, CLOSED),
    ("chunk size with a trailing space", post(TE, b"5 \r\nhello\r\n0\r\n\r\n"), 400, CLOSED),
    ("chunk size 0_5 (underscore)", post(TE, b"0_5\r\nhello\r\n0\r\n\r\n"), 400, CLOSED),
    ("chunk size overflow (17 hex digits)", post(TE, b"10000000000000005\r\nhello\r\n"), 400,
     CLOSED),
    ("chunk size of 16 hex digits, all zero", post(TE, b"0000000000000000\r\n\r\n"), 400,
     CLOSED),
    ("empty chunk size line", post(TE, b"\r\nhello\r\n0\r\n\r\n"), 400, CLOSED),
    ("bare CR inside a chunk extension", post(TE, b"5;a\rb\r\nhello\r\n0\r\n\r\n"), 400,
     CLOSED),
    ("CR CR ending a chunk size line", post(TE, b"5\r\r;a\r\nhello\r\n0\r\n\r\n"), 400, CLOSED),
    ("control byte in a chunk extension", post(TE, b"5;a\x01\r\nhello\r\n0\r\n\r\n"), 400,
     CLOSED),
    ("chunk data longer than declared", post(TE, b"3\r\nhello\r\n0\r\n\r\n"), 400, CLOSED),
    ("chunk data shorter than declared", post(TE, b"5\r\nhi\r\n0\r\n\r\n"), 400, CLOSED),
    ("bare LF after the chunk size", post(TE, b"5\nhello\r\n0\r\n\r\n"), 400, CLOSED),
    ("no CRLF after the chunk data", post(TE, b"5\r\nhello0\r\n\r\n"), 400, CLOSED),
    ("bare LF after the chunk data", post(TE, b"5\r\nhello\n0\r\n\r\n"), 400, CLOSED),
    ("trailer line without a colon", post(TE, b"0\r\nX-T\r\n\r\n"), 400, CLOSED),
    ("trailer with a space before the colon", post(TE, b"0\r\nX-T : v\r\n\r\n"), 400, CLOSED),
    ("obs-fold in a trailer", post(TE, b"0\r\nX-T: v\r\n w\r\n\r\n"), 400, CLOSED),
    ("NUL in a trailer", post(TE, b"0\r\nX-T: v\x00w\r\n\r\n"), 400, CLOSED),
    # header lines (RFC 9112 §5, RFC 9110 §5)
    ("obs-fold", get(H + b"X-A: 1\r\n  folded\r\n"), 400, CLOSED),
    ("obs-fold with HTAB", get(H + b"X-A: 1\r\n\tfolded\r\n"), 400, CLOSED),
    ("whitespace before the first header", get(b" " + H), 400, CLOSED),
    ("space before the colon", get(H + b"X-A : 1\r\n"), 400, CLOSED),
    ("HTAB before the colon", get(H + b"X-A\t: 1\r\n"), 400, CLOSED),
    ("bare CR inside a header value", get(H + b"X-A: 1\r2\r\n"), 400, CLOSED),
    ("bare CR as a header line end", get(H + b"X-A: 1\rX-B: 2\r\n"), 400, CLOSED),
    ("bare LF as a header line end", get(H + b"X-A: 1\nX-B: 2\r\n"), 400, CLOSED),
    ("bare LF line ends everywhere", b"GET /c HTTP/1.1\nHost: a\n\n", 400, CLOSED),
    ("CR CR LF at a line end", get(H + b"X-A: 1\r\r\n"), 400, CLOSED),
    ("\\r\\n\\rX ending the head", b"GET /c HTTP/1.1\r\nHost: a\r\n\rZGET /evil HTTP/1.1\r\n"
     b"Host: a\r\n\r\n", 400, CLOSED),
    ("NUL in a header value", get(H + b"X-A: 1\x002\r\n"), 400, CLOSED),
    ("NUL in a header name", get(H + b"X\x00A: 1\r\n"), 400, CLOSED),
    ("0x01 in a header value", get(H + b"X-A: 1\x012\r\n"), 400, CLOSED),
    ("DEL (0x7f) in a header value", get(H + b"X-A: 1\x7f\r\n"), 400, CLOSED),
    ("0x01 in a header name", get(H + b"X\x01A: 1\r\n"), 400, CLOSED),
    ("non-token header name X(A)", get(H + b"X(A): 1\r\n"), 400, CLOSED),
    ("non-token header name X@A", get(H + b"X@A: 1\r\n"), 400, CLOSED),
    ("obs-text in a header name", get(H + b"X\xe9: 1\r\n"), 400, CLOSED),
    ("empty header name", get(H + b": x\r\n"), 400, CLOSED),
    ("header line without a colon", get(H + b"X-A 1\r\n"), 400, CLOSED),
    # request line (RFC 9112 §3)
    ("invalid method byte (G@T)", get(H, b"G@T /c HTTP/1.1"), 400, CLOSED),
    ("obs-text in the method", get(H, b"G\xc9T /c HTTP/1.1"), 400, CLOSED),
    ("NUL in the method", get(H, b"G\x00T /c HTTP/1.1"), 400, CLOSED),
    ("HTTP/1.2", get(H, b"GET /c HTTP/1.2"), 400, CLOSED),
    ("HTTP/2.0", get(H, b"GET /c HTTP/2.0"), 400, CLOSED),
    ("HTTP/1.10", get(H, b"GET /c HTTP/1.10"), 400, CLOSED),
    ("lowercase http/1.1", get(H, b"GET /c http/1.1"), 400, CLOSED),
    ("trailing space after the version", get(H, b"GET /c HTTP/1.1 "), 400, CLOSED),
    ("missing version (HTTP/0.9), answered at the end of its line", b"GET /c\r\n", 400, CLOSED),
    ("two spaces between method and target", get(H, b"GET  /c HTTP/1.1"), 400, CLOSED),
    ("two spaces between target and version", get(H, b"GET /c  HTTP/1.1"), 400, CLOSED),
    ("HTAB as the separator", get(H, b"GET\t/c\tHTTP/1.1"), 400, CLOSED),
    ("space inside the target", get(H, b"GET /a b HTTP/1.1"), 400, CLOSED),
    ("HTAB inside the target", get(H, b"GET /a\tb HTTP/1.1"), 400, CLOSED),
    ("control byte in the target", get(H, b"GET /a\x01b HTTP/1.1"), 400, CLOSED),
    ("DEL in the target", get(H, b"GET /a\x7fb HTTP/1.1"), 400, CLOSED),
    ("fragment in the target", get(H, b"GET /a#frag HTTP/1.1"), 400, CLOSED),
    ("non-ASCII in the target", get(H, b"GET /caf\xc3\xa9 HTTP/1.1"), 400, CLOSED),
    ("target not starting with /", get(H, b"GET c HTTP/1.1"), 400, CLOSED),
    ("authority-form with GET", get(H, b"GET a:80 HTTP/1.1"), 400, CLOSED),
    ("* target with GET", get(H, b"GET * HTTP/1.1"), 400, CLOSED),
    ("CONNECT", b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 405, CLOSED),
    ("absolute-form for another host", get(H, b"GET http://evil.example/c HTTP/1.1"), 400,
     CLOSED),
    ("absolute-form whose port differs from Host", get(H, b"GET http://a:8080/c HTTP/1.1"), 400,
     CLOSED),
    ("absolute-form with userinfo", get(H, b"GET http://u@a/c HTTP/1.1"), 400, CLOSED),
    ("absolute-form https:// on a plain listener", get(H, b"GET https://a/c HTTP/1.1"), 400,
     CLOSED),
    # Host (RFC 9112 §3.2, RFC 9110 §7.2)
    ("missing Host", get(b"", b"GET /c HTTP/1.1"), 400, CLOSED),
    ("missing Host on HTTP/1.0", get(b"", b"GET /c HTTP/1.0"), 400, CLOSED),
    ("empty Host", get(b"Host:\r\n"), 400, CLOSED),
    ("duplicate Host", get(b"Host: a\r\nHost: b\r\n"), 400, CLOSED),
    ("duplicate identical Host", get(b"Host: a\r\nHost: a\r\n"), 400, CLOSED),
    ("Host with a space", get(b"Host: a b\r\n"), 400, CLOSED),
    ("Host with a slash", get(b"Host: a/b\r\n"), 400, CLOSED),
    ("Host with userinfo", get(b"Host: u@a\r\n"), 400, CLOSED),
    ("Host with two colons", get(b"Host: a:b:80\r\n"), 400, CLOSED),
    ("Host with a non-digit port", get(b"Host: a:8o\r\n"), 400, CLOSED),
    ("Host with obs-text", get(b"Host: \xffa\xff\r\n"), 400, CLOSED),
    # limits
    ("request line over the limit", get(H, b"GET /" + b"a" * 5000 + b" HTTP/1.1"), 414, CLOSED),
    ("headers over max_header_bytes",
     get(H + b"".join(b"X-%d: %s\r\n" % (i, b"v" * 300) for i in range(15))), 431, CLOSED),
    ("more headers than max_headers", get(H + b"".join(b"X-%d: v\r\n" % i for i in range(25))),
     431, CLOSED),
    ("Content-Length over max_body_bytes", post(b"Content-Length: 1001\r\n", b"x" * 1001), 413,
     CLOSED),
    ("chunks summing over max_body_bytes", post(TE, b"258\r\n" + b"x" * 600 + b"\r\n258\r\n" +
                                                b"x" * 600 + b"\r\n0\r\n\r\n"), 413, CLOSED),
    # a good request pipelined after a bad one is never read (ATS "good request after bad")
    ("good request after CL+TE", post(b"Content-Length: 1\r\n" + TE, b"0\r\n\r\n" + GOOD), 400,
     CLOSED),
    ("good request after a bad chunk size", post(TE, b"0x0\r\n\r\n" + GOOD), 400, CLOSED),
    ("good request after chunk data longer than declared",
     post(TE, b"1\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n0\r\n\r\n" + GOOD), 400, CLOSED),
    ("good request after a chunked body over max_body_bytes",
     post(TE, b"3e9\r\n" + b"x" * 1001 + b"\r\n0\r\n\r\n" + GOOD), 413, CLOSED),
    ("good request after obs-fold", get(H + b"X-A: 1\r\n folded\r\n") + GOOD, 400, CLOSED),
    ("good request after a garbage chunk size line",
     post(TE, b"INVALID!!!\r\n" + GOOD), 400, CLOSED),
    ("good request after a bare LF in the request line", b"GET /c HTTP/1.1\n" + H + b"\r\n" + GOOD,
     400, CLOSED),
]

for i, (name, data, want, must_close) in enumerate(bad, 1):
    before = len(received())
    resp, closed = raw(proxy.port, data)
    leaked = received()[before:]
    resps, rest = parse_responses(resp)
    statuses = [r[0] for r in resps]
    problems = []
    if statuses != [want]:
        problems.append(f"want exactly one {want} response, got {statuses} + {rest[:60]!r}")
    if must_close and not closed:
        problems.append("connection left open")
    if leaked:
        problems.append(f"the monolith received {leaked[:200]!r}")
    t.ok(not problems, f"bad {i}: {name}: {want}" + (", closed" if must_close else "") +
         ", nothing forwarded", "\n".join(problems + [f"sent {data[:200]!r}"]))


# Accepted forms: RFC-valid framing the proxy forwards in one canonical form. Each request goes
# to /__echo, whose answer is checked along with the exact bytes the monolith received.
def echo_req(headers, body=b"", line=b"POST /__echo HTTP/1.1"):
    return line + b"\r\nHost: a\r\nConnection: close\r\n" + headers + b"\r\n" + body


good = [
    # RFC 9110 §8.6: identical Content-Length values may be taken as one; forwarded once.
    ("identical CL headers are one length", echo_req(b"Content-Length: 5\r\nContent-Length: 5\r\n",
                                                     b"hello"), b"Content-Length: 5\r\n", b"hello"),
    ("CL list of identical values (5, 5)", echo_req(b"Content-Length: 5, 5\r\n", b"hello"),
     b"Content-Length: 5\r\n", b"hello"),
    ("CL with leading zeros (005) goes out as 5", echo_req(b"Content-Length: 005\r\n", b"hello"),
     b"Content-Length: 5\r\n", b"hello"),
    # RFC 9112 §7: transfer-coding names are case-insensitive; OWS (SP, HTAB) is trimmed.
    ("TE CHUNKED (coding names are case-insensitive)",
     echo_req(b"Transfer-Encoding: CHUNKED\r\n", b"5\r\nhello\r\n0\r\n\r\n"),
     b"Transfer-Encoding: chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n"),
    ("TE:<HTAB>chunked (OWS may be a tab)",
     echo_req(b"Transfer-Encoding:\tchunked\r\n", b"5\r\nhello\r\n0\r\n\r\n"),
     b"Transfer-Encoding: chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n"),
    ("TE with SP and HTAB around chunked",
     echo_req(b"Transfer-Encoding:  \t chunked \t\r\n", b"5\r\nhello\r\n0\r\n\r\n"),
     b"Transfer-Encoding: chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n"),
    ("chunk extensions are valid and dropped",
     echo_req(TE, b"5;name=value;q=\"a b\"\r\nhello\r\n0;last\r\n\r\n"),
     b"Transfer-Encoding: chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n"),
    ("trailers are valid and dropped", echo_req(TE, b"5\r\nhello\r\n0\r\nX-Sum: 1\r\n\r\n"),
     b"Transfer-Encoding: chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n"),
    ("chunk sizes with leading zeros and upper-case hex",
     echo_req(TE, b"0005\r\nhello\r\n0A\r\n0123456789\r\n000\r\n\r\n"),
     b"Transfer-Encoding: chunked\r\n", b"5\r\nhello\r\na\r\n0123456789\r\n0\r\n\r\n"),
    # A method is a case-sensitive token (RFC 9110 §9.1): "get" is an unknown method, not GET.
    # Forwarded as HAProxy does (nginx refuses it); the monolith answers it (evhttp: 501).
    ("lowercase method is a token, forwarded as sent", echo_req(b"", line=b"get /__echo HTTP/1.1"),
     b"get /__echo HTTP/1.1\r\n", b""),
    # OPTIONS * (RFC 9112 §3.2.4) is forwarded, as nginx and HAProxy do.
    ("OPTIONS * is forwarded", echo_req(b"", line=b"OPTIONS * HTTP/1.1"),
     b"OPTIONS * HTTP/1.1\r\n", b""),
    ("absolute-form for the request's own host goes out in origin-form",
     echo_req(b"", line=b"GET http://a/__echo?x=1 HTTP/1.1"), b"GET /__echo?x=1 HTTP/1.1\r\n", b""),
    ("empty lines before the request line are skipped (RFC 9112 §2.2)",
     b"\r\n\r\n" + echo_req(b"", line=b"GET /__echo HTTP/1.1"), b"GET /__echo HTTP/1.1\r\n", b""),
    ("underscores in other header names are ordinary",
     echo_req(b"X_Transfer_Encoding: chunked\r\n", line=b"GET /__echo HTTP/1.1"),
     b"X_Transfer_Encoding: chunked\r\n", b""),
]

for i, (name, data, want_in_head, want_body) in enumerate(good, 1):
    before = len(received())
    resp, closed = raw(proxy.port, data)
    got = received()[before:]
    head, _, body = got.partition(b"\r\n\r\n")
    head += b"\r\n"
    resps, rest = parse_responses(resp)
    problems = []
    if len(resps) != 1 or rest:
        problems.append(f"want one response, got {resp[:200]!r}")
    elif name.startswith("lowercase"):
        if resps[0][0] != 501:
            problems.append(f"want the monolith's 501, got {resps[0][0]}")
    elif name.startswith("OPTIONS"):
        if resps[0][0] != 404:
            problems.append(f"want the monolith's 404 for OPTIONS *, got {resps[0][0]}")
    elif resps[0][0] != 200:
        problems.append(f"want 200, got {resps[0][0]}")
    if want_in_head not in head:
        problems.append(f"the monolith's head lacks {want_in_head!r}")
    framing = [ln for ln in head.lower().split(b"\r\n")
               if ln.startswith((b"content-length:", b"transfer-encoding:"))]
    if len(framing) > 1:
        problems.append(f"more than one framing header went out: {framing}")
    if body != want_body:
        problems.append(f"body went out as {body!r}, want {want_body!r}")
    t.ok(not problems, f"accepted {i}: {name}", "\n".join(problems + [f"received {got!r}"]))

# Pipelining: a good request then a bad one. The first is served, the second refused, and only
# the first reaches the monolith.
before = len(received())
resp, closed = raw(proxy.port, b"GET /__echo?first=1 HTTP/1.1\r\nHost: a\r\n\r\n" +
                   post(b"Content-Length: 1\r\n" + TE, b"0\r\n\r\n"))
got = received()[before:]
resps, rest = parse_responses(resp)
t.ok([r[0] for r in resps] == [200, 400] and closed and
     got.count(b" HTTP/1.1\r\n") == 1 and got.startswith(b"GET /__echo?first=1 HTTP/1.1\r\n"),
     "a good request then a bad one: 200, 400, closed; only the first reached the monolith",
     f"statuses {[r[0] for r in resps]} closed={closed} received {got!r}")

# A path that cannot be normalized is refused (DESIGN §4); the framing is sound, so the
# connection may stay: the next request on it is served.
s = connect(proxy.port)
before = len(received())
s.sendall(b"GET /../etc/passwd HTTP/1.1\r\nHost: a\r\n\r\nGET /__echo?after=1 HTTP/1.1\r\n"
          b"Host: a\r\nConnection: close\r\n\r\n")
data, closed = recv_all(s, 5)
s.close()
resps, rest = parse_responses(data)
got = received()[before:]
t.ok([r[0] for r in resps] == [400, 200] and got.startswith(b"GET /__echo?after=1 ") and
     b"passwd" not in got,
     "a path escaping the root: 400, and the next request on the connection is served",
     f"{[r[0] for r in resps]} received {got!r}")

t.diag(f"{len(bad)} malformed and {len(good)} accepted raw-socket cases, "
       f"{len(bad) + len(good) + 2} in all")
t.ok(len(bad) + len(good) >= 45, "at least 45 raw-socket cases", len(bad) + len(good))

# Bytes that reached the monolith late would show here, after every case has ended.
time.sleep(0.2 * SLOW)
total = received()
t.ok(b"/smuggled" not in total and b"/evil" not in total and b"X-A: 1" not in total,
     "nothing of a malformed request ever reached the monolith", total[-400:])

t.eq(proxy.stop(), 0, "strangler exits 0")
t.ok(proxy.sanitizer_report() is None, "no sanitizer report", proxy.sanitizer_report())
t.eq(legacy.stop(), 0, "legacy-stub exits 0")
t.ok(legacy.sanitizer_report() is None, "no sanitizer report from the stand-in",
     legacy.sanitizer_report())
os.unlink(record)
