/* Unit tests for proxy/http_parse: request and response heads, error statuses and the chunked
 * decoder. Every input is copied into a buffer of exactly its length, so a read past the end is
 * caught by the sanitized build, and every input is also fed at every split point. */
#include <stdlib.h>
#include <string.h>

#include "http_parse.h"
#include "tap.h"

#define CAP         128 /* header array given to the parser unless a case says otherwise */
#define MAX_HEAD    8192
#define MAX_HEADERS 100

/* Table helpers. IN() gives an input with its length, so inputs may hold NUL bytes. AT() and
 * CL() store an expected index or length plus one, so that a field left out of a table entry
 * (zero) means "absent" (-1). */
#define IN(s) .in = (s), .len = sizeof(s) - 1
#define AT(i) ((i) + 1)
#define CL(n) ((n) + 1)

typedef struct {
    size_t max_head, max_headers, capacity; /* 0: MAX_HEAD, MAX_HEADERS, CAP */
} limits_spec;

typedef struct {
    const char *name, *value;
} header_want;

static char *dup_exact(const char *in, size_t len)
{
    char *b = malloc(len ? len : 1);
    if (b == NULL)
        abort();
    if (len)
        memcpy(b, in, len);
    return b;
}

static sf_http_limits limits_of(limits_spec l)
{
    sf_http_limits lim = {l.max_head ? l.max_head : MAX_HEAD,
                          l.max_headers ? l.max_headers : MAX_HEADERS};
    return lim;
}

static size_t capacity_of(limits_spec l)
{
    return l.capacity ? l.capacity : CAP;
}

static const char *code_name(long long rc)
{
    switch (rc) {
    case SF_HTTP_INCOMPLETE:
        return "SF_HTTP_INCOMPLETE";
    case SF_HTTP_E_SYNTAX:
        return "SF_HTTP_E_SYNTAX";
    case SF_HTTP_E_METHOD:
        return "SF_HTTP_E_METHOD";
    case SF_HTTP_E_CONNECT:
        return "SF_HTTP_E_CONNECT";
    case SF_HTTP_E_TARGET:
        return "SF_HTTP_E_TARGET";
    case SF_HTTP_E_VERSION:
        return "SF_HTTP_E_VERSION";
    case SF_HTTP_E_URI_TOO_LONG:
        return "SF_HTTP_E_URI_TOO_LONG";
    case SF_HTTP_E_HEADERS_TOO_BIG:
        return "SF_HTTP_E_HEADERS_TOO_BIG";
    case SF_HTTP_E_HEADER:
        return "SF_HTTP_E_HEADER";
    case SF_HTTP_E_HOST:
        return "SF_HTTP_E_HOST";
    case SF_HTTP_E_CONTENT_LENGTH:
        return "SF_HTTP_E_CONTENT_LENGTH";
    case SF_HTTP_E_TRANSFER_ENCODING:
        return "SF_HTTP_E_TRANSFER_ENCODING";
    case SF_HTTP_E_CL_AND_TE:
        return "SF_HTTP_E_CL_AND_TE";
    case SF_HTTP_E_STATUS:
        return "SF_HTTP_E_STATUS";
    default:
        return rc >= 0 ? "head length" : "?";
    }
}

static const char *chunk_code_name(long long rc)
{
    switch (rc) {
    case 0:
        return "ok";
    case SF_CHUNK_E_SYNTAX:
        return "SF_CHUNK_E_SYNTAX";
    case SF_CHUNK_E_OVERFLOW:
        return "SF_CHUNK_E_OVERFLOW";
    case SF_CHUNK_E_TRAILER:
        return "SF_CHUNK_E_TRAILER";
    default:
        return "?";
    }
}

static const char *flags_str(unsigned f)
{
    static const char *const names[] = {"CHUNKED",       "CONN_CLOSE",      "CONN_KEEPALIVE",
                                        "CONN_UPGRADE",  "EXPECT_CONTINUE", "CONN_OTHER",
                                        "ABSOLUTE_FORM", "ASTERISK_FORM"};
    static char buf[256];
    size_t o = 0;
    buf[0] = '\0';
    for (unsigned i = 0; i < 32; i++) {
        if (!(f & (1u << i)))
            continue;
        const char *n = i < sizeof(names) / sizeof(names[0]) ? names[i] : "?";
        o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s%s", o ? "|" : "", n);
        if (o >= sizeof(buf))
            break;
    }
    return o ? buf : "0";
}

/* What differed in the current case, one line each; printed after its "not ok". */
static char why[8192];
static size_t why_len;

static TAP_PRINTF(1, 2) void differ(const char *fmt, ...)
{
    if (why_len + 2 >= sizeof(why))
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(why + why_len, sizeof(why) - why_len - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    why_len += (size_t)n;
    if (why_len > sizeof(why) - 2)
        why_len = sizeof(why) - 2;
    why[why_len++] = '\n';
    why[why_len] = '\0';
}

/* Ends a case: one TAP line, then the input and each difference when it failed. */
static TAP_PRINTF(3, 4) void verdict(const char *in, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int pass = tap_vok(why_len == 0, fmt, ap);
    va_end(ap);
    if (!pass) {
        diag("input: %s", tap_esc(in, len));
        for (char *line = why, *nl; (nl = strchr(line, '\n')) != NULL; line = nl + 1)
            diag("%.*s", (int)(nl - line), line);
    }
    why_len = 0;
    why[0] = '\0';
}

static void want_int(const char *what, long long got, long long want)
{
    if (got != want)
        differ("%s: got %lld, want %lld", what, got, want);
}

static void want_code(const char *what, long long got, long long want)
{
    if (got != want)
        differ("%s: got %lld (%s), want %lld (%s)", what, got, code_name(got), want,
               code_name(want));
}

static void want_flags(unsigned got, unsigned want)
{
    if (got != want) {
        char g[256];
        snprintf(g, sizeof(g), "%s", flags_str(got));
        differ("flags: got %s, want %s", g, flags_str(want));
    }
}

/* want NULL: the slice must be empty. */
static void want_slice(const char *what, sf_slice got, const char *want)
{
    size_t wl = want ? strlen(want) : 0;
    if (got.len != wl || (wl && memcmp(got.p, want, wl) != 0))
        differ("%s: got %s, want %s", what, tap_esc(got.p, got.len), tap_esc(want, wl));
}

/* Slices point into the parsed buffer, never at NULL, even when empty. */
static void want_inside(const char *what, sf_slice got, const char *buf, size_t len)
{
    if (got.p == NULL || got.p < buf || got.len > len || (size_t)(got.p - buf) > len - got.len)
        differ("%s: slice {%p, %zu} is not inside the buffer {%p, %zu}", what, (const void *)got.p,
               got.len, (const void *)buf, len);
}

static void want_headers(const sf_http_header *h, size_t n, const header_want *want,
                         size_t want_max)
{
    size_t wn = 0;
    while (wn < want_max && want[wn].name != NULL)
        wn++;
    want_int("num_headers", (long long)n, (long long)wn);
    for (size_t i = 0; i < n && i < wn; i++) {
        char what[48];
        snprintf(what, sizeof(what), "header %zu name", i);
        want_slice(what, h[i].name, want[i].name);
        snprintf(what, sizeof(what), "header %zu value", i);
        want_slice(what, h[i].value, want[i].value);
    }
}

/* Every prefix shorter than the head must be incomplete; every longer one must give the head
 * length (bytes after the head are the body's). */
static void want_prefixes_req(const char *in, size_t len, size_t head_len, limits_spec ls)
{
    sf_http_limits lim = limits_of(ls);
    sf_http_header hdrs[CAP];
    for (size_t k = 0; k <= len; k++) {
        char *b = dup_exact(in, k);
        sf_http_request req;
        ssize_t rc = sf_http_parse_request(b, k, &req, hdrs, capacity_of(ls), &lim);
        free(b);
        ssize_t want = k < head_len ? SF_HTTP_INCOMPLETE : (ssize_t)head_len;
        if (rc != want) {
            differ("first %zu bytes %s: got %lld (%s), want %lld (%s)", k, tap_esc(in, k),
                   (long long)rc, code_name(rc), (long long)want, code_name(want));
            return;
        }
    }
}

static void want_prefixes_resp(const char *in, size_t len, size_t head_len, limits_spec ls)
{
    sf_http_limits lim = limits_of(ls);
    sf_http_header hdrs[CAP];
    for (size_t k = 0; k <= len; k++) {
        char *b = dup_exact(in, k);
        sf_http_response resp;
        ssize_t rc = sf_http_parse_response(b, k, &resp, hdrs, capacity_of(ls), &lim);
        free(b);
        ssize_t want = k < head_len ? SF_HTTP_INCOMPLETE : (ssize_t)head_len;
        if (rc != want) {
            differ("first %zu bytes %s: got %lld (%s), want %lld (%s)", k, tap_esc(in, k),
                   (long long)rc, code_name(rc), (long long)want, code_name(want));
            return;
        }
    }
}

/* An invalid head: no prefix may be accepted, and a prefix either needs more bytes or already
 * fails with the same code as the whole input, so the status never depends on how the bytes
 * arrived. */
typedef ssize_t (*parse_fn)(const char *buf, size_t len, limits_spec ls);

static ssize_t parse_req_only(const char *buf, size_t len, limits_spec ls)
{
    sf_http_limits lim = limits_of(ls);
    sf_http_header hdrs[CAP];
    sf_http_request req;
    return sf_http_parse_request(buf, len, &req, hdrs, capacity_of(ls), &lim);
}

static ssize_t parse_resp_only(const char *buf, size_t len, limits_spec ls)
{
    sf_http_limits lim = limits_of(ls);
    sf_http_header hdrs[CAP];
    sf_http_response resp;
    return sf_http_parse_response(buf, len, &resp, hdrs, capacity_of(ls), &lim);
}

static void want_prefixes_fail(parse_fn parse, const char *in, size_t len, ssize_t err,
                               limits_spec ls)
{
    for (size_t k = 0; k <= len; k++) {
        char *b = dup_exact(in, k);
        ssize_t rc = parse(b, k, ls);
        free(b);
        if (rc != SF_HTTP_INCOMPLETE && rc != err) {
            differ("first %zu bytes %s: got %lld (%s), want %s or %s", k, tap_esc(in, k),
                   (long long)rc, code_name(rc), code_name(SF_HTTP_INCOMPLETE), code_name(err));
            return;
        }
    }
}

/* ---- requests accepted ---- */

typedef struct {
    const char *name;
    const char *in;
    size_t len;
    size_t body; /* input bytes after the head */
    const char *method;
    const char *target;
    const char *path;      /* NULL: same as target */
    const char *authority; /* NULL: none */
    int http10;
    unsigned flags;
    long long cl;        /* CL(n); 0: absent */
    int host, rid, conn; /* AT(i); 0: absent */
    header_want hdrs[8]; /* every header, in order */
    limits_spec lim;
} req_ok;

static const req_ok req_ok_cases[] = {
    {.name = "simple GET",
     IN("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"),
     .method = "GET",
     .target = "/",
     .host = AT(0),
     .hdrs = {{"Host", "example.com"}}},
    {.name = "OWS around header values is trimmed, inner whitespace kept",
     IN("GET / HTTP/1.1\r\nHost:example.com\r\nX-A: \t a  b \t\r\nX-Empty:\r\n"
        "X-Blank: \t \r\n\r\n"),
     .method = "GET",
     .target = "/",
     .host = AT(0),
     .hdrs = {{"Host", "example.com"}, {"X-A", "a  b"}, {"X-Empty", ""}, {"X-Blank", ""}}},
    {.name = "header names are matched case-insensitively and kept as sent",
     IN("GET / HTTP/1.1\r\nhOST: a\r\nx-REQUEST-id: r1\r\nCONNECTION: CLOSE\r\n\r\n"),
     .method = "GET",
     .target = "/",
     .flags = SF_HTTP_F_CONN_CLOSE,
     .host = AT(0),
     .rid = AT(1),
     .conn = AT(2),
     .hdrs = {{"hOST", "a"}, {"x-REQUEST-id", "r1"}, {"CONNECTION", "CLOSE"}}},
    {.name = "HTTP/1.0 request",
     IN("GET /x HTTP/1.0\r\nHost: a\r\n\r\n"),
     .method = "GET",
     .target = "/x",
     .http10 = 1,
     .host = AT(0),
     .hdrs = {{"Host", "a"}}},
    {.name = "HTTP/1.0 Connection: Keep-Alive sets the keep-alive flag",
     IN("GET / HTTP/1.0\r\nHost: a\r\nConnection: Keep-Alive\r\n\r\n"),
     .method = "GET",
     .target = "/",
     .http10 = 1,
     .flags = SF_HTTP_F_CONN_KEEPALIVE,
     .host = AT(0),
     .conn = AT(1),
     .hdrs = {{"Host", "a"}, {"Connection", "Keep-Alive"}}},
    {.name = "absolute-form sets the flag, the authority and the path",
     IN("GET http://example.com:8080/p?q=1 HTTP/1.1\r\nHost: example.com:8080\r\n\r\n"),
     .method = "GET",
     .target = "http://example.com:8080/p?q=1",
     .path = "/p?q=1",
     .authority = "example.com:8080",
     .flags = SF_HTTP_F_ABSOLUTE_FORM,
     .host = AT(0),
     .hdrs = {{"Host", "example.com:8080"}}},
    {.name = "absolute-form scheme is case-insensitive",
     IN("GET HTTP://a.example/x HTTP/1.1\r\nHost: a.example\r\n\r\n"),
     .method = "GET",
     .target = "HTTP://a.example/x",
     .path = "/x",
     .authority = "a.example",
     .flags = SF_HTTP_F_ABSOLUTE_FORM,
     .host = AT(0),
     .hdrs = {{"Host", "a.example"}}},
    {.name = "absolute-form without a path has an empty path",
     IN("GET http://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n"),
     .method = "GET",
     .target = "http://example.com",
     .path = "",
     .authority = "example.com",
     .flags = SF_HTTP_F_ABSOLUTE_FORM,
     .host = AT(0),
     .hdrs = {{"Host", "example.com"}}},
    /* The query stays in path; the caller puts "/" in front of a path starting with '?'. */
    {.name = "absolute-form with a query but no path keeps the query in path",
     IN("GET http://example.com?q=1 HTTP/1.1\r\nHost: example.com\r\n\r\n"),
     .method = "GET",
     .target = "http://example.com?q=1",
     .path = "?q=1",
     .authority = "example.com",
     .flags = SF_HTTP_F_ABSOLUTE_FORM,
     .host = AT(0),
     .hdrs = {{"Host", "example.com"}}},
    {.name = "absolute-form with an IP-literal authority",
     IN("GET http://[::1]:8080/ HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n"),
     .method = "GET",
     .target = "http://[::1]:8080/",
     .path = "/",
     .authority = "[::1]:8080",
     .flags = SF_HTTP_F_ABSOLUTE_FORM,
     .host = AT(0),
     .hdrs = {{"Host", "[::1]:8080"}}},
    {.name = "OPTIONS * is asterisk-form",
     IN("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"),
     .method = "OPTIONS",
     .target = "*",
     .flags = SF_HTTP_F_ASTERISK_FORM,
     .host = AT(0),
     .hdrs = {{"Host", "a"}}},
    {.name = "an empty line before the request line is skipped and counted in the head",
     IN("\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"),
     .method = "GET",
     .target = "/",
     .host = AT(0),
     .hdrs = {{"Host", "a"}}},
    {.name = "two empty lines before the request line are skipped",
     IN("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"),
     .method = "GET",
     .target = "/",
     .host = AT(0),
     .hdrs = {{"Host", "a"}}},
    {.name = "origin-form keeps the query and percent-encoding",
     IN("GET /a%20b/c?x=1&y=%2F;z HTTP/1.1\r\nHost: a\r\n\r\n"),
     .method = "GET",
     .target = "/a%20b/c?x=1&y=%2F;z",
     .host = AT(0),
     .hdrs = {{"Host", "a"}}},
    {.name = "any token is a method",
     IN("M-SEARCH /x HTTP/1.1\r\nHost: a\r\n\r\n"),
     .method = "M-SEARCH",
     .target = "/x",
     .host = AT(0),
     .hdrs = {{"Host", "a"}}},
    {.name = "token punctuation in a header name",
     IN("GET / HTTP/1.1\r\nHost: a\r\nX!#$%&'*+-.^_`|~9: v\r\n\r\n"),
     .method = "GET",
     .target = "/",
     .host = AT(0),
     .hdrs = {{"Host", "a"}, {"X!#$%&'*+-.^_`|~9", "v"}}},
    {.name = "HTAB and all VCHAR punctuation in a header value",
     IN("GET / HTTP/1.1\r\nHost: a\r\nX: a\tb !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~\r\n\r\n"),
     .method = "GET",
     .target = "/",
     .host = AT(0),
     .hdrs = {{"Host", "a"}, {"X", "a\tb !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"}}},
    {.name = "obs-text (bytes >= 0x80) is allowed in a header value",
     IN("GET / HTTP/1.1\r\nHost: a\r\nX-Name: caf\xc3\xa9 \x80\xff\r\n\r\n"),
     .method = "GET",
     .target = "/",
     .host = AT(0),
     .hdrs = {{"Host", "a"}, {"X-Name", "caf\xc3\xa9 \x80\xff"}}},
    {.name = "Content-Length gives the body length; the head ends before the body",
     IN("POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"),
     .body = 5,
     .method = "POST",
     .target = "/p",
     .cl = CL(5),
     .host = AT(0),
     .hdrs = {{"Host", "a"}, {"Content-Length", "5"}}},
    {.name = "Content-Length: 0",
     IN("POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"),
     .method = "POST",
     .target = "/p",
     .cl = CL(0),
     .host = AT(0),
     .hdrs = {{"Host", "a"}, {"Content-Length", "0"}}},
    {.name = "identical Content-Length headers are one length",
     IN("POST /p HTTP/1.1\r\nContent-Length: 5\r\nHost: a\r\ncontent-length: 5\r\n\r\nhello"),
     .body = 5,
     .method = "POST",
     .target = "/p",
     .cl = CL(5),
     .host = AT(1),
     .hdrs = {{"Content-Length", "5"}, {"Host", "a"}, {"content-length", "5"}}},
    {.name = "Content-Length list of identical values (5, 5) is one length",
     IN("POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n"),
     .method = "POST",
     .target = "/p",
     .cl = CL(5),
     .host = AT(0),
     .hdrs = {{"Host", "a"}, {"Content-Length", "5, 5"}}},
    {.name = "Content-Length list without and with extra OWS (5,5 ,\\t5)",
     IN("POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5,5 ,\t5\r\n\r\n"),
     .method = "POST",
     .target = "/p",
     .cl = CL(5),
     .host = AT(0),
     .hdrs = {{"Host", "a"}, {"Content-Length", "5,5 ,\t5"}}},
    {.name = "Content-Length with leading zeros",
     IN("POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\n\r\n"),
     .method = "POST",
     .target = "/p",
     .cl = CL(7),
     .host = AT(0),
     .hdrs = {{"Host", "a"}, {"Content-Length", "007"}}},
    {.name = "Content-Length of 18 digits fits",
     IN("POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 999999999999999999\r\n\r\n"),
     .method = "POST",
     .target = "/p",
     .cl = CL(999999999999999999LL),
     .host = AT(0),
     .hdrs = {{"Host", "a"}, {"Content-Length", "999999999999999999"}}},
    {.name = "Transfer-Encoding: chunked sets the chunked flag",
     IN("POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
        "0\r\n\r\n"),
     .body = 15,
     .method = "POST",
     .target = "/p",
     .flags = SF_HTTP_F_CHUNKED,
     .host = AT(0),
     .hdrs = {{"Host", "a"}, {"Transfer-Encoding", "chunked"}}},
    {.name = "Transfer-Encoding name and chunked value are case-insensitive",
     IN("POST /p HTTP/1.1\r\nHost: a\r\ntransfer-ENCODING: ChUnKeD\r\n\r\n"),
     .method = "POST",
     .target = "/p",
     .flags = SF_HTTP_F_CHUNKED,
     .host = AT(0),
     .hdrs = {{"Host", "a"}, {"transfer-ENCODING", "ChUnKeD"}}},
    {.name = "Transfer-Encoding value with HTAB and SP as OWS around chunked",
     IN("POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\t chunked \t\r\n\r\n"),
     .method = "POST",
     .target = "/p",
     .flags = SF_HTTP_F_CHUNKED,
     .host = AT(0),
     .hdrs = {{"Host", "a"}, {"Transfer-Encoding", "chunked"}}},
    {.name = "underscores in names are ordinary unless they spell a framing header",
     IN("GET / HTTP/1.1\r\nHost: a\r\nX_Transfer_Encoding: chunked\r\nContent_Type: x\r\n"
        "Content-Length_: 5\r\n\r\n"),
     .method = "GET",
     .target = "/",
     .host = AT(0),
     .hdrs = {{"Host", "a"},
              {"X_Transfer_Encoding", "chunked"},
              {"Content_Type", "x"},
              {"Content-Length_", "5"}}},
    {.name = "Host forms: percent-encoded reg-name with an empty port",
     IN("GET / HTTP/1.1\r\nHost: a%41b:\r\n\r\n"),
     .method = "GET",
     .target = "/",
     .host = AT(0),
     .hdrs = {{"Host", "a%41b:"}}},
    {.name = "Host forms: IPv4 address with a port",
     IN("GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"),
     .method = "GET",
     .target = "/",
     .host = AT(0),
     .hdrs = {{"Host", "127.0.0.1:8080"}}},
    {.name = "Connection: close",
     IN("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"),
     .method = "GET",
     .target = "/",
     .flags = SF_HTTP_F_CONN_CLOSE,
     .host = AT(0),
     .conn = AT(1),
     .hdrs = {{"Host", "a"}, {"Connection", "close"}}},
    {.name = "Connection: Upgrade sets the upgrade flag",
     IN("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"),
     .method = "GET",
     .target = "/ws",
     .flags = SF_HTTP_F_CONN_UPGRADE,
     .host = AT(0),
     .conn = AT(1),
     .hdrs = {{"Host", "a"}, {"Connection", "Upgrade"}, {"Upgrade", "websocket"}}},
    {.name = "Connection naming other headers sets CONN_OTHER next to known options",
     IN("GET / HTTP/1.1\r\nHost: a\r\nConnection: X-Trace,close ,\tTE\r\n\r\n"),
     .method = "GET",
     .target = "/",
     .flags = SF_HTTP_F_CONN_CLOSE | SF_HTTP_F_CONN_OTHER,
     .host = AT(0),
     .conn = AT(1),
     .hdrs = {{"Host", "a"}, {"Connection", "X-Trace,close ,\tTE"}}},
    {.name = "only other names in Connection set CONN_OTHER alone",
     IN("GET / HTTP/1.1\r\nHost: a\r\nConnection: X-Foo\r\n\r\n"),
     .method = "GET",
     .target = "/",
     .flags = SF_HTTP_F_CONN_OTHER,
     .host = AT(0),
     .conn = AT(1),
     .hdrs = {{"Host", "a"}, {"Connection", "X-Foo"}}},
    {.name = "several Connection headers merge their flags; the index is the first one",
     IN("GET / HTTP/1.1\r\nConnection: keep-alive\r\nHost: a\r\nConnection: upgrade\r\n\r\n"),
     .method = "GET",
     .target = "/",
     .flags = SF_HTTP_F_CONN_KEEPALIVE | SF_HTTP_F_CONN_UPGRADE,
     .host = AT(1),
     .conn = AT(0),
     .hdrs = {{"Connection", "keep-alive"}, {"Host", "a"}, {"Connection", "upgrade"}}},
    {.name = "Expect: 100-continue sets the flag, case-insensitively",
     IN("PUT /u HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n"),
     .method = "PUT",
     .target = "/u",
     .flags = SF_HTTP_F_EXPECT_CONTINUE,
     .cl = CL(3),
     .host = AT(0),
     .hdrs = {{"Host", "a"}, {"Expect", "100-Continue"}, {"Content-Length", "3"}}},
    {.name = "another expectation does not set the 100-continue flag",
     IN("GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue-ish\r\n\r\n"),
     .method = "GET",
     .target = "/",
     .host = AT(0),
     .hdrs = {{"Host", "a"}, {"Expect", "100-continue-ish"}}},
    {.name = "X-Request-Id index is found",
     IN("GET / HTTP/1.1\r\nHost: a\r\nAccept: */*\r\nX-Request-Id: 9f2c-01\r\n\r\n"),
     .method = "GET",
     .target = "/",
     .host = AT(0),
     .rid = AT(2),
     .hdrs = {{"Host", "a"}, {"Accept", "*/*"}, {"X-Request-Id", "9f2c-01"}}},
    {.name = "the first X-Request-Id is the one indexed",
     IN("GET / HTTP/1.1\r\nX-Request-Id: one\r\nHost: a\r\nX-Request-Id: two\r\n\r\n"),
     .method = "GET",
     .target = "/",
     .host = AT(1),
     .rid = AT(0),
     .hdrs = {{"X-Request-Id", "one"}, {"Host", "a"}, {"X-Request-Id", "two"}}},
    {.name = "exactly max_headers headers are accepted",
     IN("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n"),
     .method = "GET",
     .target = "/",
     .host = AT(0),
     .hdrs = {{"Host", "a"}, {"A", "1"}, {"B", "2"}},
     .lim = {.max_headers = 3}},
    {.name = "exactly as many headers as the array holds are accepted",
     IN("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n"),
     .method = "GET",
     .target = "/",
     .host = AT(0),
     .hdrs = {{"Host", "a"}, {"A", "1"}, {"B", "2"}},
     .lim = {.capacity = 3}},
};

static void run_req_ok(const req_ok *c)
{
    sf_http_limits lim = limits_of(c->lim);
    sf_http_header hdrs[CAP];
    sf_http_request req;
    size_t head_len = c->len - c->body;
    char *b = dup_exact(c->in, c->len);

    memset(&req, 0x5a, sizeof(req));
    ssize_t rc = sf_http_parse_request(b, c->len, &req, hdrs, capacity_of(c->lim), &lim);
    want_code("return", rc, (long long)head_len);
    if (rc > 0) {
        want_inside("method", req.method, b, c->len);
        want_inside("target", req.target, b, c->len);
        want_inside("path", req.path, b, c->len);
        if (c->authority)
            want_inside("authority", req.authority, b, c->len);
        for (size_t i = 0; i < req.num_headers && i < CAP; i++) {
            want_inside("header name", hdrs[i].name, b, c->len);
            want_inside("header value", hdrs[i].value, b, c->len);
        }
        want_slice("method", req.method, c->method);
        want_slice("target", req.target, c->target);
        want_slice("path", req.path, c->path ? c->path : c->target);
        want_slice("authority", req.authority, c->authority);
        want_int("minor_version", req.minor_version, c->http10 ? 0 : 1);
        want_flags(req.flags, c->flags);
        want_int("content_length", req.content_length, c->cl - 1);
        want_int("host_index", req.host_index, c->host - 1);
        want_int("request_id_index", req.request_id_index, c->rid - 1);
        want_int("connection_index", req.connection_index, c->conn - 1);
        if (req.headers != hdrs)
            differ("headers: not the caller's array");
        want_headers(hdrs, req.num_headers, c->hdrs, sizeof(c->hdrs) / sizeof(c->hdrs[0]));
    }
    free(b);
    verdict(c->in, c->len, "request accepted: %s", c->name);

    want_prefixes_req(c->in, c->len, head_len, c->lim);
    verdict(c->in, c->len, "request incomplete at every split, then accepted: %s", c->name);
}

/* ---- requests rejected ---- */

typedef struct {
    const char *name;
    const char *in;
    size_t len;
    ssize_t err;
    int status;
    limits_spec lim;
} req_bad;

#define REQ(line, headers) line "\r\n" headers "\r\n"
#define BAD(n, s, e, st)                                                                           \
    {                                                                                              \
        .name = (n), IN(s), .err = (e), .status = (st)                                             \
    }
#define BAD_LIM(n, s, e, st, ...)                                                                  \
    {                                                                                              \
        .name = (n), IN(s), .err = (e), .status = (st), .lim = { __VA_ARGS__ }                     \
    }

static const req_bad req_bad_cases[] = {
    /* message framing (RFC 9112 §6.3) */
    BAD("Content-Length and Transfer-Encoding together",
        REQ("POST / HTTP/1.1", "Host: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n"),
        SF_HTTP_E_CL_AND_TE, 400),
    BAD("Transfer-Encoding and Content-Length together, TE first",
        REQ("POST / HTTP/1.1", "Host: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n"),
        SF_HTTP_E_CL_AND_TE, 400),
    BAD("Content-Length headers that differ",
        REQ("POST / HTTP/1.1", "Host: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n"),
        SF_HTTP_E_CONTENT_LENGTH, 400),
    BAD("Content-Length list that differs (5, 6)",
        REQ("POST / HTTP/1.1", "Host: a\r\nContent-Length: 5, 6\r\n"), SF_HTTP_E_CONTENT_LENGTH,
        400),
    BAD("Content-Length with a plus sign (+5)",
        REQ("POST / HTTP/1.1", "Host: a\r\nContent-Length: +5\r\n"), SF_HTTP_E_CONTENT_LENGTH, 400),
    BAD("negative Content-Length (-1)", REQ("POST / HTTP/1.1", "Host: a\r\nContent-Length: -1\r\n"),
        SF_HTTP_E_CONTENT_LENGTH, 400),
    BAD("Content-Length with trailing junk (5a)",
        REQ("POST / HTTP/1.1", "Host: a\r\nContent-Length: 5a\r\n"), SF_HTTP_E_CONTENT_LENGTH, 400),
    BAD("empty Content-Length", REQ("POST / HTTP/1.1", "Host: a\r\nContent-Length:\r\n"),
        SF_HTTP_E_CONTENT_LENGTH, 400),
    BAD("Content-Length of only a space", REQ("POST / HTTP/1.1", "Host: a\r\nContent-Length: \r\n"),
        SF_HTTP_E_CONTENT_LENGTH, 400),
    BAD("hexadecimal Content-Length (0x5)",
        REQ("POST / HTTP/1.1", "Host: a\r\nContent-Length: 0x5\r\n"), SF_HTTP_E_CONTENT_LENGTH,
        400),
    BAD("decimal-point Content-Length (5.0)",
        REQ("POST / HTTP/1.1", "Host: a\r\nContent-Length: 5.0\r\n"), SF_HTTP_E_CONTENT_LENGTH,
        400),
    BAD("two numbers without a comma (5 5)",
        REQ("POST / HTTP/1.1", "Host: a\r\nContent-Length: 5 5\r\n"), SF_HTTP_E_CONTENT_LENGTH,
        400),
    BAD("empty Content-Length list member (5,,5)",
        REQ("POST / HTTP/1.1", "Host: a\r\nContent-Length: 5,,5\r\n"), SF_HTTP_E_CONTENT_LENGTH,
        400),
    BAD("trailing comma in Content-Length (5,)",
        REQ("POST / HTTP/1.1", "Host: a\r\nContent-Length: 5,\r\n"), SF_HTTP_E_CONTENT_LENGTH, 400),
    BAD("leading comma in Content-Length (,5)",
        REQ("POST / HTTP/1.1", "Host: a\r\nContent-Length: ,5\r\n"), SF_HTTP_E_CONTENT_LENGTH, 400),
    BAD("overflowing Content-Length (20 digits)",
        REQ("POST / HTTP/1.1", "Host: a\r\nContent-Length: 99999999999999999999\r\n"),
        SF_HTTP_E_CONTENT_LENGTH, 400),
    BAD("Content-Length of 19 digits is over the limit",
        REQ("POST / HTTP/1.1", "Host: a\r\nContent-Length: 1000000000000000000\r\n"),
        SF_HTTP_E_CONTENT_LENGTH, 400),
    BAD("valid Content-Length followed by a malformed one",
        REQ("POST / HTTP/1.1", "Host: a\r\nContent-Length: 5\r\nContent-Length: 5x\r\n"),
        SF_HTTP_E_CONTENT_LENGTH, 400),
    BAD("Transfer-Encoding: gzip", REQ("POST / HTTP/1.1", "Host: a\r\nTransfer-Encoding: gzip\r\n"),
        SF_HTTP_E_TRANSFER_ENCODING, 400),
    BAD("Transfer-Encoding: chunked, gzip (chunked not final)",
        REQ("POST / HTTP/1.1", "Host: a\r\nTransfer-Encoding: chunked, gzip\r\n"),
        SF_HTTP_E_TRANSFER_ENCODING, 400),
    BAD("Transfer-Encoding: gzip, chunked (a coding we do not decode)",
        REQ("POST / HTTP/1.1", "Host: a\r\nTransfer-Encoding: gzip, chunked\r\n"),
        SF_HTTP_E_TRANSFER_ENCODING, 400),
    BAD("Transfer-Encoding: chunked, chunked",
        REQ("POST / HTTP/1.1", "Host: a\r\nTransfer-Encoding: chunked, chunked\r\n"),
        SF_HTTP_E_TRANSFER_ENCODING, 400),
    BAD("two Transfer-Encoding headers",
        REQ("POST / HTTP/1.1",
            "Host: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"),
        SF_HTTP_E_TRANSFER_ENCODING, 400),
    BAD("Transfer-Encoding: xchunked",
        REQ("POST / HTTP/1.1", "Host: a\r\nTransfer-Encoding: xchunked\r\n"),
        SF_HTTP_E_TRANSFER_ENCODING, 400),
    BAD("Transfer-Encoding: chunkedx",
        REQ("POST / HTTP/1.1", "Host: a\r\nTransfer-Encoding: chunkedx\r\n"),
        SF_HTTP_E_TRANSFER_ENCODING, 400),
    BAD("Transfer-Encoding: identity",
        REQ("POST / HTTP/1.1", "Host: a\r\nTransfer-Encoding: identity\r\n"),
        SF_HTTP_E_TRANSFER_ENCODING, 400),
    BAD("empty Transfer-Encoding", REQ("POST / HTTP/1.1", "Host: a\r\nTransfer-Encoding:\r\n"),
        SF_HTTP_E_TRANSFER_ENCODING, 400),
    BAD("Transfer-Encoding on HTTP/1.0",
        REQ("POST / HTTP/1.0", "Host: a\r\nTransfer-Encoding: chunked\r\n"),
        SF_HTTP_E_TRANSFER_ENCODING, 400),
    BAD("Transfer-Encoding with a leading comma (,chunked)",
        REQ("POST / HTTP/1.1", "Host: a\r\nTransfer-Encoding: ,chunked\r\n"),
        SF_HTTP_E_TRANSFER_ENCODING, 400),
    BAD("Transfer-Encoding with obs-text around chunked (\\xa0chunked)",
        REQ("POST / HTTP/1.1", "Host: a\r\nTransfer-Encoding: \xa0"
                               "chunked\r\n"),
        SF_HTTP_E_TRANSFER_ENCODING, 400),
    BAD("Transfer-Encoding with a vertical tab before chunked",
        REQ("POST / HTTP/1.1", "Host: a\r\nTransfer-Encoding: \x0b"
                               "chunked\r\n"),
        SF_HTTP_E_HEADER, 400),
    BAD("Transfer_Encoding (underscore) is a framing header in disguise",
        REQ("POST / HTTP/1.1", "Host: a\r\nTransfer_Encoding: chunked\r\n"), SF_HTTP_E_HEADER, 400),
    BAD("content_length (underscore) is a framing header in disguise",
        REQ("POST / HTTP/1.1", "Host: a\r\ncontent_length: 5\r\n"), SF_HTTP_E_HEADER, 400),

    /* header lines (RFC 9112 §5) */
    BAD("obs-fold: a line starting with SP", REQ("GET / HTTP/1.1", "Host: a\r\nX-A: b\r\n c\r\n"),
        SF_HTTP_E_HEADER, 400),
    BAD("obs-fold: a line starting with HTAB",
        REQ("GET / HTTP/1.1", "Host: a\r\nX-A: b\r\n\tc\r\n"), SF_HTTP_E_HEADER, 400),
    BAD("whitespace between the request line and the first header",
        REQ("GET / HTTP/1.1", " Host: a\r\n"), SF_HTTP_E_HEADER, 400),
    BAD("SP before the colon", REQ("GET / HTTP/1.1", "Host : a\r\n"), SF_HTTP_E_HEADER, 400),
    BAD("HTAB before the colon", REQ("GET / HTTP/1.1", "Host: a\r\nX-A\t: b\r\n"), SF_HTTP_E_HEADER,
        400),
    BAD("empty header name", REQ("GET / HTTP/1.1", "Host: a\r\n: b\r\n"), SF_HTTP_E_HEADER, 400),
    BAD("header line without a colon", REQ("GET / HTTP/1.1", "Host: a\r\nX-A b\r\n"),
        SF_HTTP_E_HEADER, 400),
    BAD("non-token byte in a header name (parenthesis)",
        REQ("GET / HTTP/1.1", "Host: a\r\nX(a): b\r\n"), SF_HTTP_E_HEADER, 400),
    BAD("non-token byte in a header name (slash)", REQ("GET / HTTP/1.1", "Host: a\r\nX/Y: b\r\n"),
        SF_HTTP_E_HEADER, 400),
    BAD("non-token byte in a header name (obs-text)",
        REQ("GET / HTTP/1.1", "Host: a\r\nX\xe9: b\r\n"), SF_HTTP_E_HEADER, 400),
    BAD("NUL in a header name", REQ("GET / HTTP/1.1", "Host: a\r\nX\0Y: b\r\n"), SF_HTTP_E_HEADER,
        400),
    BAD("NUL in a header value", REQ("GET / HTTP/1.1", "Host: a\r\nX-A: b\0c\r\n"),
        SF_HTTP_E_HEADER, 400),
    BAD("control byte 0x01 in a header value", REQ("GET / HTTP/1.1", "Host: a\r\nX-A: b\x01\r\n"),
        SF_HTTP_E_HEADER, 400),
    BAD("ESC in a header value", REQ("GET / HTTP/1.1", "Host: a\r\nX-A: \x1b[31m\r\n"),
        SF_HTTP_E_HEADER, 400),
    BAD("DEL in a header value", REQ("GET / HTTP/1.1", "Host: a\r\nX-A: b\x7f\r\n"),
        SF_HTTP_E_HEADER, 400),
    BAD("control byte in the Host value", REQ("GET / HTTP/1.1", "Host: a\x0b\r\n"),
        SF_HTTP_E_HEADER, 400),

    /* line ends */
    BAD("bare CR ending the request line", "GET / HTTP/1.1\rHost: a\r\n\r\n", SF_HTTP_E_SYNTAX,
        400),
    BAD("bare LF ending the request line", "GET / HTTP/1.1\nHost: a\r\n\r\n", SF_HTTP_E_SYNTAX,
        400),
    BAD("bare CR inside the request line", "GET /\r HTTP/1.1\r\nHost: a\r\n\r\n", SF_HTTP_E_SYNTAX,
        400),
    BAD("bare LF line ends everywhere", "GET / HTTP/1.1\nHost: a\n\n", SF_HTTP_E_SYNTAX, 400),
    BAD("bare CR inside a header line", REQ("GET / HTTP/1.1", "Host: a\rX-A: b\r\n"),
        SF_HTTP_E_HEADER, 400),
    BAD("bare LF ending a header line", REQ("GET / HTTP/1.1", "Host: a\nX-A: b\r\n"),
        SF_HTTP_E_HEADER, 400),
    BAD("CR CR LF ending a header line", REQ("GET / HTTP/1.1", "Host: a\r\r\n"), SF_HTTP_E_HEADER,
        400),
    BAD("bare LF as the empty line ending the head", "GET / HTTP/1.1\r\nHost: a\r\n\n\r\n\r\n",
        SF_HTTP_E_HEADER, 400),
    BAD("bare CR before the request line", REQ("\rGET / HTTP/1.1", "Host: a\r\n"), SF_HTTP_E_SYNTAX,
        400),
    BAD("bare LF before the request line", REQ("\nGET / HTTP/1.1", "Host: a\r\n"), SF_HTTP_E_SYNTAX,
        400),

    /* method */
    BAD("non-token byte in the method", REQ("G(T / HTTP/1.1", "Host: a\r\n"), SF_HTTP_E_METHOD,
        400),
    BAD("obs-text in the method", REQ("G\xc9T / HTTP/1.1", "Host: a\r\n"), SF_HTTP_E_METHOD, 400),
    BAD("empty method", REQ(" / HTTP/1.1", "Host: a\r\n"), SF_HTTP_E_METHOD, 400),
    BAD("empty method is refused before the head is complete", " / HTTP/1.1\r\nHost: a\r\n",
        SF_HTTP_E_METHOD, 400),
    BAD("bare CR inside the method", REQ("GE\rT / HTTP/1.1", "Host: a\r\n"), SF_HTTP_E_METHOD, 400),
    BAD("a bad method is refused before the head is complete", "GET/ HTTP/1.1\r\nHost: a\r\n",
        SF_HTTP_E_METHOD, 400),
    BAD("a TLS ClientHello is refused before the line is complete",
        "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", SF_HTTP_E_METHOD, 400),
    BAD("CONNECT is answered 405",
        REQ("CONNECT example.com:443 HTTP/1.1", "Host: example.com:443\r\n"), SF_HTTP_E_CONNECT,
        405),

    /* version */
    BAD("HTTP/1.2", REQ("GET / HTTP/1.2", "Host: a\r\n"), SF_HTTP_E_VERSION, 400),
    BAD("HTTP/2.0", REQ("GET / HTTP/2.0", "Host: a\r\n"), SF_HTTP_E_VERSION, 400),
    BAD("HTTP/0.9", REQ("GET / HTTP/0.9", "Host: a\r\n"), SF_HTTP_E_VERSION, 400),
    BAD("lowercase http/1.1", REQ("GET / http/1.1", "Host: a\r\n"), SF_HTTP_E_VERSION, 400),
    BAD("HTTP/1.10", REQ("GET / HTTP/1.10", "Host: a\r\n"), SF_HTTP_E_VERSION, 400),
    BAD("HTTP/1 without a minor version", REQ("GET / HTTP/1", "Host: a\r\n"), SF_HTTP_E_VERSION,
        400),
    BAD("trailing SP after the version", REQ("GET / HTTP/1.1 ", "Host: a\r\n"), SF_HTTP_E_VERSION,
        400),
    BAD("empty version after the second SP", REQ("GET / ", "Host: a\r\n"), SF_HTTP_E_VERSION, 400),
    /* Without a second SP the line is read as an unterminated target. */
    BAD("missing version (HTTP/0.9-style line)", REQ("GET /", "Host: a\r\n"), SF_HTTP_E_TARGET,
        400),
    BAD("an HTTP/0.9 request is refused at the end of its line, not after headers", "GET /\r\n",
        SF_HTTP_E_TARGET, 400),
    BAD("a bad version is refused once the request line is complete",
        "GET / HTTP/1.2\r\nHost: a\r\n", SF_HTTP_E_VERSION, 400),
    BAD("CONNECT is refused once the request line is complete", "CONNECT a:443 HTTP/1.1\r\n",
        SF_HTTP_E_CONNECT, 405),
    BAD_LIM(
        "a bad request line is judged before the size of the header section",
        REQ("GET / HTTP/1.2", "Host: a\r\nX-Long: bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\r\n"),
        SF_HTTP_E_VERSION, 400, .max_head = 48),
    BAD_LIM("a request line of exactly max_head_bytes is judged on its content",
            REQ("GET /aaaaaaaaaaaaaaaaaa HTTP/1.2", "Host: a\r\n"), SF_HTTP_E_VERSION, 400,
            .max_head = 32),

    /* request-target (RFC 9112 §3.2) */
    BAD("empty target (two SP)", REQ("GET  HTTP/1.1", "Host: a\r\n"), SF_HTTP_E_TARGET, 400),
    /* The target ends at the first SP; what follows is not a version. */
    BAD("SP inside the target", REQ("GET /a b HTTP/1.1", "Host: a\r\n"), SF_HTTP_E_VERSION, 400),
    BAD("HTAB inside the target", REQ("GET /a\tb HTTP/1.1", "Host: a\r\n"), SF_HTTP_E_TARGET, 400),
    BAD("control byte in the target", REQ("GET /a\x01 HTTP/1.1", "Host: a\r\n"), SF_HTTP_E_TARGET,
        400),
    BAD("NUL in the target", REQ("GET /a\0 HTTP/1.1", "Host: a\r\n"), SF_HTTP_E_TARGET, 400),
    BAD("DEL in the target", REQ("GET /a\x7f HTTP/1.1", "Host: a\r\n"), SF_HTTP_E_TARGET, 400),
    BAD("fragment (#) in the target", REQ("GET /a#frag HTTP/1.1", "Host: a\r\n"), SF_HTTP_E_TARGET,
        400),
    BAD("non-ASCII bytes in the target", REQ("GET /caf\xc3\xa9 HTTP/1.1", "Host: a\r\n"),
        SF_HTTP_E_TARGET, 400),
    BAD("asterisk-form with GET", REQ("GET * HTTP/1.1", "Host: a\r\n"), SF_HTTP_E_TARGET, 400),
    BAD("https:// absolute-form", REQ("GET https://a/ HTTP/1.1", "Host: a\r\n"), SF_HTTP_E_TARGET,
        400),
    BAD("authority-form with GET", REQ("GET example.com:80 HTTP/1.1", "Host: example.com\r\n"),
        SF_HTTP_E_TARGET, 400),
    BAD("relative target without a leading slash", REQ("GET index.html HTTP/1.1", "Host: a\r\n"),
        SF_HTTP_E_TARGET, 400),
    BAD("absolute-form with nothing after http://", REQ("GET http:// HTTP/1.1", "Host: a\r\n"),
        SF_HTTP_E_TARGET, 400),
    BAD("absolute-form with an empty authority", REQ("GET http:///p HTTP/1.1", "Host: a\r\n"),
        SF_HTTP_E_TARGET, 400),
    BAD("absolute-form with userinfo", REQ("GET http://user@a/p HTTP/1.1", "Host: a\r\n"),
        SF_HTTP_E_TARGET, 400),

    /* Host (RFC 9112 §3.2) */
    BAD("missing Host", REQ("GET / HTTP/1.1", "Accept: */*\r\n"), SF_HTTP_E_HOST, 400),
    BAD("missing Host on HTTP/1.0 too (DESIGN §8)", REQ("GET / HTTP/1.0", "Accept: */*\r\n"),
        SF_HTTP_E_HOST, 400),
    BAD("duplicate Host, identical values", REQ("GET / HTTP/1.1", "Host: a\r\nHost: a\r\n"),
        SF_HTTP_E_HOST, 400),
    BAD("duplicate Host, different case", REQ("GET / HTTP/1.1", "Host: a\r\nhost: b\r\n"),
        SF_HTTP_E_HOST, 400),
    BAD("Host with a space", REQ("GET / HTTP/1.1", "Host: a b\r\n"), SF_HTTP_E_HOST, 400),
    BAD("Host with a slash", REQ("GET / HTTP/1.1", "Host: a/b\r\n"), SF_HTTP_E_HOST, 400),
    BAD("Host with userinfo (@)", REQ("GET / HTTP/1.1", "Host: u@a\r\n"), SF_HTTP_E_HOST, 400),
    BAD("empty Host", REQ("GET / HTTP/1.1", "Host:\r\n"), SF_HTTP_E_HOST, 400),
    BAD("Host with two colons (a:b:c)", REQ("GET / HTTP/1.1", "Host: a:b:c\r\n"), SF_HTTP_E_HOST,
        400),
    BAD("Host with a non-digit port (a:8x)", REQ("GET / HTTP/1.1", "Host: a:8x\r\n"),
        SF_HTTP_E_HOST, 400),
    BAD("Host with only a port (:80)", REQ("GET / HTTP/1.1", "Host: :80\r\n"), SF_HTTP_E_HOST, 400),
    BAD("Host with an unclosed IP-literal ([::1)", REQ("GET / HTTP/1.1", "Host: [::1\r\n"),
        SF_HTTP_E_HOST, 400),
    BAD("Host with an empty IP-literal ([])", REQ("GET / HTTP/1.1", "Host: []\r\n"), SF_HTTP_E_HOST,
        400),
    BAD("Host with a stray bracket (a]:80)", REQ("GET / HTTP/1.1", "Host: a]:80\r\n"),
        SF_HTTP_E_HOST, 400),
    BAD("Host with junk after an IP-literal ([::1]x)", REQ("GET / HTTP/1.1", "Host: [::1]x\r\n"),
        SF_HTTP_E_HOST, 400),
    BAD("Host with a bad percent-encoding (a%zz)", REQ("GET / HTTP/1.1", "Host: a%zz\r\n"),
        SF_HTTP_E_HOST, 400),
    BAD("Host with a cut percent-encoding (a%4)", REQ("GET / HTTP/1.1", "Host: a%4\r\n"),
        SF_HTTP_E_HOST, 400),
    BAD("absolute-form with two colons in the authority",
        REQ("GET http://a:b:c/ HTTP/1.1", "Host: a:b:c\r\n"), SF_HTTP_E_TARGET, 400),

    /* limits */
    BAD_LIM("request line over max_head_bytes",
            REQ("GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1", "Host: a\r\n"),
            SF_HTTP_E_URI_TOO_LONG, 414, .max_head = 32),
    BAD_LIM("request line over max_head_bytes, line not finished yet",
            "GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", SF_HTTP_E_URI_TOO_LONG, 414,
            .max_head = 32),
    BAD_LIM("request line over max_head_bytes, headers not finished yet",
            "GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\nHost: a",
            SF_HTTP_E_URI_TOO_LONG, 414, .max_head = 32),
    BAD_LIM("header section over max_head_bytes",
            REQ("GET / HTTP/1.1", "Host: a\r\nX-Long: bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\r\n"),
            SF_HTTP_E_HEADERS_TOO_BIG, 431, .max_head = 48),
    BAD_LIM("header section over max_head_bytes, head not finished yet",
            "GET / HTTP/1.1\r\nHost: a\r\nX-Long: bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
            SF_HTTP_E_HEADERS_TOO_BIG, 431, .max_head = 48),
    BAD_LIM("more headers than max_headers", REQ("GET / HTTP/1.1", "Host: a\r\nA: 1\r\nB: 2\r\n"),
            SF_HTTP_E_HEADERS_TOO_BIG, 431, .max_headers = 2),
    BAD_LIM("more headers than the array holds, max_headers larger",
            REQ("GET / HTTP/1.1", "Host: a\r\nA: 1\r\nB: 2\r\n"), SF_HTTP_E_HEADERS_TOO_BIG, 431,
            .max_headers = 100, .capacity = 2),
};

static void run_req_bad(const req_bad *c)
{
    sf_http_limits lim = limits_of(c->lim);
    sf_http_header hdrs[CAP];
    sf_http_request req;
    char *b = dup_exact(c->in, c->len);

    ssize_t rc = sf_http_parse_request(b, c->len, &req, hdrs, capacity_of(c->lim), &lim);
    free(b);
    want_code("return", rc, c->err);
    want_int("sf_http_error_status", sf_http_error_status(rc), c->status);
    verdict(c->in, c->len, "request rejected: %s", c->name);

    want_prefixes_fail(parse_req_only, c->in, c->len, c->err, c->lim);
    verdict(c->in, c->len, "request rejected the same way at every split: %s", c->name);
}

/* Heads built at run time: many headers, and the limits met exactly. */
static size_t build_head(char *buf, size_t cap, const char *line, size_t nheaders, size_t value_len)
{
    size_t o = (size_t)snprintf(buf, cap, "%s\r\nHost: a\r\n", line);
    for (size_t i = 1; i < nheaders && o < cap; i++) {
        o += (size_t)snprintf(buf + o, cap - o, "X-H%zu: ", i);
        for (size_t j = 0; j < value_len && o < cap; j++)
            buf[o++] = 'v';
        o += (size_t)snprintf(buf + o, cap - o, "\r\n");
    }
    o += (size_t)snprintf(buf + o, cap - o, "\r\n");
    if (o >= cap)
        abort();
    return o;
}

static void test_generated_limits(void)
{
    static char in[65536];
    sf_http_header hdrs[CAP];
    sf_http_request req;
    size_t n;
    ssize_t rc;
    char *b = NULL;

    n = build_head(in, sizeof(in), "GET / HTTP/1.1", MAX_HEADERS, 40);
    sf_http_limits lim = {MAX_HEAD, MAX_HEADERS};
    free(b);
    b = dup_exact(in, n);
    rc = sf_http_parse_request(b, n, &req, hdrs, CAP, &lim);
    want_code("return", rc, (long long)n);
    if (rc > 0) {
        want_int("num_headers", (long long)req.num_headers, MAX_HEADERS);
        want_slice("last header name", hdrs[MAX_HEADERS - 1].name, "X-H99");
        want_int("host_index", req.host_index, 0);
    }
    verdict(in, n, "many headers (%d, the maximum) are accepted", MAX_HEADERS);
    want_prefixes_req(in, n, n, (limits_spec){0});
    verdict(in, n, "many headers: incomplete at every split, then accepted");

    n = build_head(in, sizeof(in), "GET / HTTP/1.1", MAX_HEADERS + 1, 40);
    free(b);
    b = dup_exact(in, n);
    rc = sf_http_parse_request(b, n, &req, hdrs, CAP, &lim);
    want_code("return", rc, SF_HTTP_E_HEADERS_TOO_BIG);
    verdict(in, n, "one header over max_headers (%d) is refused", MAX_HEADERS);

    n = build_head(in, sizeof(in), "GET / HTTP/1.1", 20, 300);
    lim.max_head_bytes = n;
    free(b);
    b = dup_exact(in, n);
    rc = sf_http_parse_request(b, n, &req, hdrs, CAP, &lim);
    want_code("return", rc, (long long)n);
    verdict(in, n, "a head of exactly max_head_bytes (%zu) is accepted", n);
    lim.max_head_bytes = n - 1;
    free(b);
    b = dup_exact(in, n);
    rc = sf_http_parse_request(b, n, &req, hdrs, CAP, &lim);
    want_code("return", rc, SF_HTTP_E_HEADERS_TOO_BIG);
    verdict(in, n, "a head one byte over max_head_bytes is refused with 431");
    want_prefixes_fail(parse_req_only, in, n, SF_HTTP_E_HEADERS_TOO_BIG,
                       (limits_spec){.max_head = n - 1});
    verdict(in, n, "a head one byte over max_head_bytes: same error at every split");

    /* The request line alone at the limit is 431 (the head is over), one byte more is 414. */
    const char *line = "GET /0123456789012345678901234567890123456789 HTTP/1.1";
    size_t line_len = strlen(line);
    n = build_head(in, sizeof(in), line, 1, 0);
    limits_spec at = {.max_head = line_len}, over = {.max_head = line_len - 1};
    lim.max_head_bytes = line_len;
    free(b);
    b = dup_exact(in, n);
    rc = sf_http_parse_request(b, n, &req, hdrs, CAP, &lim);
    want_code("return", rc, SF_HTTP_E_HEADERS_TOO_BIG);
    want_prefixes_fail(parse_req_only, in, n, SF_HTTP_E_HEADERS_TOO_BIG, at);
    verdict(in, n, "a request line of exactly max_head_bytes is not 414");
    lim.max_head_bytes = line_len - 1;
    free(b);
    b = dup_exact(in, n);
    rc = sf_http_parse_request(b, n, &req, hdrs, CAP, &lim);
    want_code("return", rc, SF_HTTP_E_URI_TOO_LONG);
    want_prefixes_fail(parse_req_only, in, n, SF_HTTP_E_URI_TOO_LONG, over);
    verdict(in, n, "a request line one byte over max_head_bytes is 414 at every split");
    free(b);
}

/* ---- responses ---- */

typedef struct {
    const char *name;
    const char *in;
    size_t len;
    size_t body;
    int http10;
    int status;
    const char *reason;
    unsigned flags;
    long long cl; /* CL(n); 0: absent */
    header_want hdrs[8];
} resp_ok;

static const resp_ok resp_ok_cases[] = {
    {.name = "200 with a reason and a Content-Length body",
     IN("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"),
     .body = 5,
     .status = 200,
     .reason = "OK",
     .cl = CL(5),
     .hdrs = {{"Content-Length", "5"}}},
    {.name = "reason phrase with spaces",
     IN("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
     .status = 404,
     .reason = "Not Found",
     .cl = CL(0),
     .hdrs = {{"Content-Length", "0"}}},
    {.name = "reason phrase with HTAB and obs-text",
     IN("HTTP/1.1 200 \xc3\x9c\tber OK\r\n\r\n"),
     .status = 200,
     .reason = "\xc3\x9c\tber OK"},
    {.name = "missing reason without the SP after the code",
     IN("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n"),
     .status = 200,
     .reason = "",
     .cl = CL(0),
     .hdrs = {{"Content-Length", "0"}}},
    {.name = "missing reason with the SP after the code",
     IN("HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n"),
     .status = 200,
     .reason = "",
     .cl = CL(0),
     .hdrs = {{"Content-Length", "0"}}},
    {.name = "204 without a length",
     IN("HTTP/1.1 204 No Content\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\n\r\n"),
     .status = 204,
     .reason = "No Content",
     .hdrs = {{"Date", "Mon, 01 Jan 2024 00:00:00 GMT"}}},
    {.name = "chunked response",
     IN("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
     .body = 5,
     .status = 200,
     .reason = "OK",
     .flags = SF_HTTP_F_CHUNKED,
     .hdrs = {{"Transfer-Encoding", "chunked"}}},
    {.name = "HTTP/1.0 response with Connection: close",
     IN("HTTP/1.0 200 OK\r\nConnection: close\r\n\r\n"),
     .http10 = 1,
     .status = 200,
     .reason = "OK",
     .flags = SF_HTTP_F_CONN_CLOSE,
     .hdrs = {{"Connection", "close"}}},
    {.name = "100 Continue (lowest status)",
     IN("HTTP/1.1 100 Continue\r\n\r\n"),
     .status = 100,
     .reason = "Continue"},
    {.name = "599 (highest status)",
     IN("HTTP/1.1 599 Whatever\r\n\r\n"),
     .status = 599,
     .reason = "Whatever"},
    {.name = "101 Switching Protocols with Upgrade",
     IN("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"),
     .status = 101,
     .reason = "Switching Protocols",
     .flags = SF_HTTP_F_CONN_UPGRADE,
     .hdrs = {{"Connection", "Upgrade"}, {"Upgrade", "websocket"}}},
};

static void run_resp_ok(const resp_ok *c)
{
    sf_http_limits lim = {MAX_HEAD, MAX_HEADERS};
    sf_http_header hdrs[CAP];
    sf_http_response resp;
    size_t head_len = c->len - c->body;
    char *b = dup_exact(c->in, c->len);

    memset(&resp, 0x5a, sizeof(resp));
    ssize_t rc = sf_http_parse_response(b, c->len, &resp, hdrs, CAP, &lim);
    want_code("return", rc, (long long)head_len);
    if (rc > 0) {
        want_int("minor_version", resp.minor_version, c->http10 ? 0 : 1);
        want_int("status", resp.status, c->status);
        want_inside("reason", resp.reason, b, c->len);
        for (size_t i = 0; i < resp.num_headers && i < CAP; i++) {
            want_inside("header name", hdrs[i].name, b, c->len);
            want_inside("header value", hdrs[i].value, b, c->len);
        }
        want_slice("reason", resp.reason, c->reason);
        want_flags(resp.flags, c->flags);
        want_int("content_length", resp.content_length, c->cl - 1);
        if (resp.headers != hdrs)
            differ("headers: not the caller's array");
        want_headers(hdrs, resp.num_headers, c->hdrs, sizeof(c->hdrs) / sizeof(c->hdrs[0]));
    }
    free(b);
    verdict(c->in, c->len, "response accepted: %s", c->name);

    want_prefixes_resp(c->in, c->len, head_len, (limits_spec){0});
    verdict(c->in, c->len, "response incomplete at every split, then accepted: %s", c->name);
}

typedef struct {
    const char *name;
    const char *in;
    size_t len;
    ssize_t err;
    limits_spec lim;
} resp_bad;

#define RBAD(n, s, e)                                                                              \
    {                                                                                              \
        .name = (n), IN(s), .err = (e)                                                             \
    }
#define RBAD_LIM(n, s, e, ...)                                                                     \
    {                                                                                              \
        .name = (n), IN(s), .err = (e), .lim = { __VA_ARGS__ }                                     \
    }

static const resp_bad resp_bad_cases[] = {
    RBAD("Content-Length and Transfer-Encoding together",
         "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
         SF_HTTP_E_CL_AND_TE),
    RBAD("Content-Length headers that differ",
         "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\n",
         SF_HTTP_E_CONTENT_LENGTH),
    RBAD("malformed Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
         SF_HTTP_E_CONTENT_LENGTH),
    RBAD("Transfer-Encoding: gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
         SF_HTTP_E_TRANSFER_ENCODING),
    RBAD("Transfer-Encoding on an HTTP/1.0 response",
         "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", SF_HTTP_E_TRANSFER_ENCODING),
    RBAD("obs-fold in a response header", "HTTP/1.1 200 OK\r\nX-A: b\r\n c\r\n\r\n",
         SF_HTTP_E_HEADER),
    RBAD("NUL in a response header value", "HTTP/1.1 200 OK\r\nX-A: b\0c\r\n\r\n",
         SF_HTTP_E_HEADER),
    RBAD("Transfer_Encoding (underscore) in a response",
         "HTTP/1.1 200 OK\r\nTransfer_Encoding: chunked\r\n\r\n", SF_HTTP_E_HEADER),
    RBAD("Content-Length list that differs in a response (2, 3)",
         "HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\n", SF_HTTP_E_CONTENT_LENGTH),
    RBAD("two-digit status (20)", "HTTP/1.1 20 OK\r\n\r\n", SF_HTTP_E_STATUS),
    RBAD("four-digit status (2000)", "HTTP/1.1 2000 OK\r\n\r\n", SF_HTTP_E_STATUS),
    RBAD("status 600 is out of range", "HTTP/1.1 600 X\r\n\r\n", SF_HTTP_E_STATUS),
    RBAD("status 099 is out of range", "HTTP/1.1 099 X\r\n\r\n", SF_HTTP_E_STATUS),
    RBAD("status 000", "HTTP/1.1 000 X\r\n\r\n", SF_HTTP_E_STATUS),
    RBAD("non-digit in the status (2x0)", "HTTP/1.1 2x0 OK\r\n\r\n", SF_HTTP_E_STATUS),
    RBAD("no SP between version and status", "HTTP/1.1200 OK\r\n\r\n", SF_HTTP_E_STATUS),
    RBAD("two SP between version and status", "HTTP/1.1  200 OK\r\n\r\n", SF_HTTP_E_STATUS),
    RBAD("HTTP/1.2 status line", "HTTP/1.2 200 OK\r\n\r\n", SF_HTTP_E_STATUS),
    RBAD("HTTP/2 status line", "HTTP/2 200 OK\r\n\r\n", SF_HTTP_E_STATUS),
    RBAD("lowercase http/1.1", "http/1.1 200 OK\r\n\r\n", SF_HTTP_E_STATUS),
    RBAD("empty status line", "\r\n\r\n", SF_HTTP_E_STATUS),
    RBAD("control byte in the reason", "HTTP/1.1 200 O\x01K\r\n\r\n", SF_HTTP_E_STATUS),
    RBAD("NUL in the reason", "HTTP/1.1 200 O\0K\r\n\r\n", SF_HTTP_E_STATUS),
    RBAD("bare CR in the status line", "HTTP/1.1 200 OK\rX: y\r\n\r\n", SF_HTTP_E_STATUS),
    RBAD("bare LF ending the status line, head not finished yet", "HTTP/1.1 200 OK\nX: y\r\n",
         SF_HTTP_E_STATUS),
    RBAD("bare LF ending the status line", "HTTP/1.1 200 OK\nX: y\r\n\r\n", SF_HTTP_E_STATUS),
    RBAD("junk before the status line (XTTP/1.1)", "XTTP/1.1 200 OK\r\n\r\n", SF_HTTP_E_STATUS),
    RBAD_LIM("response head over max_head_bytes",
             "HTTP/1.1 200 OK\r\nX-Long: bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\r\n\r\n",
             SF_HTTP_E_HEADERS_TOO_BIG, .max_head = 32),
    RBAD_LIM("more response headers than max_headers", "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n",
             SF_HTTP_E_HEADERS_TOO_BIG, .max_headers = 1),
};

static void run_resp_bad(const resp_bad *c)
{
    sf_http_limits lim = limits_of(c->lim);
    sf_http_header hdrs[CAP];
    sf_http_response resp;
    char *b = dup_exact(c->in, c->len);

    ssize_t rc = sf_http_parse_response(b, c->len, &resp, hdrs, capacity_of(c->lim), &lim);
    free(b);
    want_code("return", rc, c->err);
    verdict(c->in, c->len, "response rejected: %s", c->name);

    want_prefixes_fail(parse_resp_only, c->in, c->len, c->err, c->lim);
    verdict(c->in, c->len, "response rejected the same way at every split: %s", c->name);
}

/* Junk where "HTTP/" belongs is refused as soon as five bytes are in, not after a whole head. */
static void test_response_junk_early(void)
{
    static const char in[] = "XTTP/1.1 200 OK\r\n";
    for (size_t k = 0; k <= 5; k++) {
        char *b = dup_exact(in, k);
        ssize_t rc = parse_resp_only(b, k, (limits_spec){0});
        free(b);
        want_code("return", rc, k < 5 ? SF_HTTP_INCOMPLETE : SF_HTTP_E_STATUS);
        if (why_len) {
            differ("after %zu bytes", k);
            break;
        }
    }
    verdict(in, sizeof(in) - 1, "junk before the status line is refused at its fifth byte");
}

/* ---- error statuses ---- */

static void test_error_status(void)
{
    static const struct {
        ssize_t err;
        int status;
    } map[] = {
        {SF_HTTP_E_SYNTAX, 400},
        {SF_HTTP_E_METHOD, 400},
        {SF_HTTP_E_CONNECT, 405},
        {SF_HTTP_E_TARGET, 400},
        {SF_HTTP_E_VERSION, 400},
        {SF_HTTP_E_URI_TOO_LONG, 414},
        {SF_HTTP_E_HEADERS_TOO_BIG, 431},
        {SF_HTTP_E_HEADER, 400},
        {SF_HTTP_E_HOST, 400},
        {SF_HTTP_E_CONTENT_LENGTH, 400},
        {SF_HTTP_E_TRANSFER_ENCODING, 400},
        {SF_HTTP_E_CL_AND_TE, 400},
    };
    is_str(sf_http_error_str(SF_HTTP_E_CL_AND_TE), "both Content-Length and Transfer-Encoding",
           "sf_http_error_str names the smuggling case as documented");
    const char *fallback = sf_http_error_str(-1000);
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        is(sf_http_error_status(map[i].err), map[i].status, "%s answers %d", code_name(map[i].err),
           map[i].status);
        const char *s = sf_http_error_str(map[i].err);
        ok(s != NULL && strcmp(s, fallback) != 0, "%s has its own phrase (%s)",
           code_name(map[i].err), s ? s : "NULL");
    }
}

static void test_name_is(void)
{
    sf_slice s = {"Content-LENGTH", 14};
    ok(SF_HTTP_NAME_IS(s, "content-length"), "SF_HTTP_NAME_IS ignores ASCII case");
    sf_slice shorter = {"Content-Lengt", 13};
    ok(!SF_HTTP_NAME_IS(shorter, "content-length"), "SF_HTTP_NAME_IS compares lengths");
    sf_slice other = {"content_length", 14};
    ok(!SF_HTTP_NAME_IS(other, "content-length"), "SF_HTTP_NAME_IS does not fold punctuation");
    /* Only A-Z fold: 0xc0..0xde must not match anything by |= 0x20. */
    sf_slice high = {"\xc1", 1};
    ok(!SF_HTTP_NAME_IS(high, "\xe1"), "SF_HTTP_NAME_IS folds ASCII letters only");
}

/* ---- chunked decoder ---- */

typedef struct {
    int err; /* 0, an SF_CHUNK_E_* code, or one of the contract breaches below */
    int done;
    char out[1024];
    size_t out_len;
    size_t rest; /* input bytes after the end of the body (the next message) */
} decoded;

enum {
    BROKE_CONTRACT = -100, /* consumed or reported more than it was given */
    STUCK = -101,          /* consumed nothing, reported no data, yet not done */
    TOO_MUCH = -102,       /* payload over the test's buffer */
};

/* Runs one decoder over the input given in pieces, as a connection would: each piece is a fresh
 * buffer of exactly its length; data bytes are taken and acknowledged with sf_chunked_data()
 * (also when there are none); leftovers after the end are counted, not decoded. */
static void decode(const sf_slice *pieces, size_t npieces, decoded *d)
{
    sf_chunked c;
    size_t consumed = 0, total = 0;

    sf_chunked_init(&c);
    memset(d, 0, sizeof(*d));
    for (size_t i = 0; i < npieces; i++)
        total += pieces[i].len;
    for (size_t i = 0; i < npieces && d->err == 0; i++) {
        char *b = dup_exact(pieces[i].p, pieces[i].len);
        size_t pos = 0, len = pieces[i].len;
        while (pos < len) {
            size_t dl = 12345;
            ssize_t rc = sf_chunked_parse(&c, b + pos, len - pos, &dl);
            if (rc < 0) {
                d->err = (int)rc;
                break;
            }
            if ((size_t)rc > len - pos || dl > len - pos - (size_t)rc) {
                d->err = BROKE_CONTRACT;
                break;
            }
            pos += (size_t)rc;
            if (d->out_len + dl > sizeof(d->out)) {
                d->err = TOO_MUCH;
                break;
            }
            memcpy(d->out + d->out_len, b + pos, dl);
            d->out_len += dl;
            pos += dl;
            sf_chunked_data(&c, dl);
            if (rc == 0 && dl == 0) {
                if (!sf_chunked_done(&c))
                    d->err = STUCK;
                break;
            }
        }
        consumed += pos;
        free(b);
        if (sf_chunked_done(&c))
            break;
    }
    d->done = sf_chunked_done(&c);
    d->rest = d->done ? total - consumed : 0;
}

static void decode_cuts(const char *in, size_t len, const size_t *cuts, size_t ncuts, decoded *d)
{
    sf_slice pieces[8];
    size_t from = 0, n = 0;
    for (size_t i = 0; i < ncuts; i++) {
        pieces[n++] = (sf_slice){in + from, cuts[i] - from};
        from = cuts[i];
    }
    pieces[n++] = (sf_slice){in + from, len - from};
    decode(pieces, n, d);
}

static int same_decoded(const decoded *a, const decoded *b)
{
    if (a->err != b->err)
        return 0;
    if (a->err != 0)
        return 1; /* the payload before an error may depend on the split; the error may not */
    return a->done == b->done && a->rest == b->rest && a->out_len == b->out_len &&
           memcmp(a->out, b->out, a->out_len) == 0;
}

static void describe(const char *what, const decoded *d)
{
    differ("%s: %s (%d), done %d, payload %s, rest %zu", what, chunk_code_name(d->err), d->err,
           d->done, tap_esc(d->out, d->out_len), d->rest);
}

typedef struct {
    const char *name;
    const char *in;
    size_t len;
    int err;
    const char *payload;
    size_t payload_len;
    int done;
    size_t rest;
} chunk_case;

#define OUT(s) .payload = (s), .payload_len = sizeof(s) - 1
#define CHUNK_BAD(n, s, e)                                                                         \
    {                                                                                              \
        .name = (n), IN(s), .err = (e)                                                             \
    }

static const chunk_case chunk_cases[] = {
    {.name = "two chunks and the last chunk",
     IN("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
     OUT("hello world"),
     .done = 1},
    {.name = "hex sizes in either case",
     IN("A\r\n0123456789\r\na\r\nabcdefghij\r\nF\r\nABCDEFGHIJKLMNO\r\n0\r\n\r\n"),
     OUT("0123456789abcdefghijABCDEFGHIJKLMNO"),
     .done = 1},
    {.name = "leading zeros in sizes", IN("005\r\nhello\r\n0000\r\n\r\n"), OUT("hello"), .done = 1},
    {.name = "15 hex digits are allowed",
     IN("000000000000001\r\nx\r\n0\r\n\r\n"),
     OUT("x"),
     .done = 1},
    {.name = "chunk extensions are accepted and dropped",
     IN("5;name=value\r\nhello\r\n6;a;b=\"q s\"\r\n world\r\n0;last\r\n\r\n"),
     OUT("hello world"),
     .done = 1},
    {.name = "trailers are accepted and dropped",
     IN("5\r\nhello\r\n0\r\nX-Checksum: abc\r\nX-Other:1\r\n\r\n"),
     OUT("hello"),
     .done = 1},
    {.name = "the last chunk alone is an empty body", IN("0\r\n\r\n"), OUT(""), .done = 1},
    {.name = "bytes after the final CRLF are left for the next message",
     IN("1\r\nx\r\n0\r\n\r\nGET / HTTP/1.1\r\n"),
     OUT("x"),
     .done = 1,
     .rest = 16},
    {.name = "data may hold CR, LF, NUL and high bytes",
     IN("6\r\n\r\n\0\xff\n\r\r\n0\r\n\r\n"),
     OUT("\r\n\0\xff\n\r"),
     .done = 1},
    {.name = "a truncated chunk is not done and not an error", IN("5\r\nhel"), OUT("hel")},
    {.name = "the last chunk without the final CRLF is not done",
     IN("2\r\nab\r\n0\r\n"),
     OUT("ab")},
    {.name = "a trailer without the final CRLF is not done", IN("0\r\nX: y\r\n"), OUT("")},
    {.name = "a trailer whose value looks like a request line is one field, dropped",
     IN("0\r\nX:POST / HTTP/1.1\r\n\r\n"),
     OUT(""),
     .done = 1},
    {.name = "a huge announced chunk streams what has arrived",
     IN("fffffffffffffff\r\nabc"),
     OUT("abc")},

    CHUNK_BAD("0x prefix (0x1)", "0x1\r\nx\r\n0\r\n\r\n", SF_CHUNK_E_SYNTAX),
    CHUNK_BAD("plus sign (+1)", "+1\r\nx\r\n0\r\n\r\n", SF_CHUNK_E_SYNTAX),
    CHUNK_BAD("minus sign (-1)", "-1\r\nx\r\n0\r\n\r\n", SF_CHUNK_E_SYNTAX),
    CHUNK_BAD("SP before the size", " 1\r\nx\r\n0\r\n\r\n", SF_CHUNK_E_SYNTAX),
    CHUNK_BAD("SP after the size", "1 \r\nx\r\n0\r\n\r\n", SF_CHUNK_E_SYNTAX),
    CHUNK_BAD("HTAB after the size", "1\t\r\nx\r\n0\r\n\r\n", SF_CHUNK_E_SYNTAX),
    CHUNK_BAD("SP before an extension", "1 ;a\r\nx\r\n0\r\n\r\n", SF_CHUNK_E_SYNTAX),
    CHUNK_BAD("junk after the size", "1x\r\nx\r\n0\r\n\r\n", SF_CHUNK_E_SYNTAX),
    CHUNK_BAD("empty size line", "\r\nx\r\n0\r\n\r\n", SF_CHUNK_E_SYNTAX),
    CHUNK_BAD("empty size line after a chunk", "1\r\nx\r\n\r\n0\r\n\r\n", SF_CHUNK_E_SYNTAX),
    CHUNK_BAD("16 hex digits overflow", "1000000000000000\r\nx\r\n0\r\n\r\n", SF_CHUNK_E_OVERFLOW),
    CHUNK_BAD("16 hex digits overflow even when zero", "0000000000000000\r\n\r\n",
              SF_CHUNK_E_OVERFLOW),
    CHUNK_BAD("data longer than its size (no CRLF where due)", "3\r\nhello\r\n0\r\n\r\n",
              SF_CHUNK_E_SYNTAX),
    CHUNK_BAD("data shorter than its size", "5\r\nabc\r\n0\r\n\r\n", SF_CHUNK_E_SYNTAX),
    CHUNK_BAD("bare LF after the size", "1\nx\r\n0\r\n\r\n", SF_CHUNK_E_SYNTAX),
    CHUNK_BAD("bare CR after the size", "1\rx\r\n0\r\n\r\n", SF_CHUNK_E_SYNTAX),
    CHUNK_BAD("bare LF after an extension", "1;a\nx\r\n0\r\n\r\n", SF_CHUNK_E_SYNTAX),
    CHUNK_BAD("bare LF after the data", "1\r\nx\n0\r\n\r\n", SF_CHUNK_E_SYNTAX),
    CHUNK_BAD("bare CR after the data", "1\r\nx\r0\r\n\r\n", SF_CHUNK_E_SYNTAX),
    CHUNK_BAD("control byte in an extension", "1;a\x01\r\nx\r\n0\r\n\r\n", SF_CHUNK_E_SYNTAX),
    CHUNK_BAD("obs-fold in a trailer", "0\r\nX: a\r\n b\r\n\r\n", SF_CHUNK_E_TRAILER),
    CHUNK_BAD("bare LF ending a trailer", "0\r\nX: a\n\r\n", SF_CHUNK_E_TRAILER),
    CHUNK_BAD("control byte in a trailer", "0\r\nX: a\x01\r\n\r\n", SF_CHUNK_E_TRAILER),
    CHUNK_BAD("non-token byte starting a trailer", "0\r\n(X: a\r\n\r\n", SF_CHUNK_E_TRAILER),
    CHUNK_BAD("trailer line without a colon", "0\r\nX-T\r\n\r\n", SF_CHUNK_E_TRAILER),
    CHUNK_BAD("SP before a trailer's colon", "0\r\nX-T : v\r\n\r\n", SF_CHUNK_E_TRAILER),
    CHUNK_BAD("non-token byte inside a trailer name", "0\r\nX(T: v\r\n\r\n", SF_CHUNK_E_TRAILER),
    CHUNK_BAD("empty trailer name", "0\r\n: v\r\n\r\n", SF_CHUNK_E_TRAILER),
    CHUNK_BAD("NUL in a trailer value", "0\r\nX: a\0b\r\n\r\n", SF_CHUNK_E_TRAILER),
    CHUNK_BAD("bare CR inside an extension", "5;a\rb\r\nhello\r\n0\r\n\r\n", SF_CHUNK_E_SYNTAX),
    CHUNK_BAD("CR CR ending a size line", "5\r\r;a\r\nhello\r\n0\r\n\r\n", SF_CHUNK_E_SYNTAX),
    CHUNK_BAD("bare LF as the final line", "0\r\n\n", SF_CHUNK_E_TRAILER),
    CHUNK_BAD("bare CR as the final line", "0\r\n\rx", SF_CHUNK_E_SYNTAX),
};

static void run_chunk_case(const chunk_case *c)
{
    decoded whole, split;

    decode_cuts(c->in, c->len, NULL, 0, &whole);
    if (whole.err != c->err)
        differ("result: got %s (%d), want %s (%d)", chunk_code_name(whole.err), whole.err,
               chunk_code_name(c->err), c->err);
    if (c->err == 0) {
        if (whole.out_len != c->payload_len || memcmp(whole.out, c->payload, c->payload_len))
            differ("payload: got %s, want %s", tap_esc(whole.out, whole.out_len),
                   tap_esc(c->payload, c->payload_len));
        want_int("done", whole.done, c->done);
        want_int("bytes left after the body", (long long)whole.rest, (long long)c->rest);
    }
    verdict(c->in, c->len, "chunked %s: %s", c->err ? "rejected" : "decoded", c->name);

    /* Every single split and every pair of splits, then one byte at a time. */
    for (size_t i = 0; i <= c->len && why_len == 0; i++) {
        for (size_t j = i; j <= c->len && why_len == 0; j++) {
            size_t cuts[2] = {i, j};
            decode_cuts(c->in, c->len, cuts, 2, &split);
            if (!same_decoded(&split, &whole)) {
                differ("split at %zu and %zu:", i, j);
                describe("  pieces", &split);
                describe("  whole", &whole);
            }
        }
    }
    if (why_len == 0 && c->len > 0) {
        sf_slice bytes[256];
        size_t n = c->len < 256 ? c->len : 256;
        for (size_t i = 0; i < n; i++)
            bytes[i] = (sf_slice){c->in + i, 1};
        if (n == c->len) {
            decode(bytes, n, &split);
            if (!same_decoded(&split, &whole)) {
                differ("one byte at a time:");
                describe("  pieces", &split);
                describe("  whole", &whole);
            }
        }
    }
    verdict(c->in, c->len, "chunked, same result at every split: %s", c->name);
}

/* A decoder must stop at the end of the body even when the next request follows in the same
 * buffer, and keep its state across calls that bring nothing. */
static void test_chunked_calls(void)
{
    sf_chunked c;
    size_t dl;
    ssize_t rc;

    sf_chunked_init(&c);
    ok(!sf_chunked_done(&c), "chunked: a fresh decoder is not done");
    rc = sf_chunked_parse(&c, "", 0, &dl);
    ok(rc == 0 && dl == 0 && !sf_chunked_done(&c), "chunked: an empty buffer changes nothing");

    static const char in[] = "3\r\nabc\r\n0\r\n\r\n";
    size_t pos = 0, n = sizeof(in) - 1;
    rc = sf_chunked_parse(&c, in, n, &dl);
    is(rc, 3, "chunked: stops after the size line");
    is((long long)dl, 3, "chunked: reports the data that follows");
    pos = (size_t)rc;
    /* The caller takes the data in two steps and asks again in between. */
    sf_chunked_data(&c, 1);
    pos += 1;
    rc = sf_chunked_parse(&c, in + pos, n - pos, &dl);
    ok(rc == 0 && dl == 2, "chunked: data partly taken is reported again (rc %lld, data %zu)",
       (long long)rc, dl);
    sf_chunked_data(&c, 2);
    pos += 2;
    rc = sf_chunked_parse(&c, in + pos, n - pos, &dl);
    ok(rc == (ssize_t)(n - pos) && dl == 0 && sf_chunked_done(&c),
       "chunked: the rest is framing up to done (rc %lld)", (long long)rc);
    rc = sf_chunked_parse(&c, "5\r\nhello", 8, &dl);
    ok(rc == 0 && dl == 0 && sf_chunked_done(&c), "chunked: after done nothing more is consumed");
}

/* Lines of framing are bounded: a peer cannot make the decoder scan forever. */
static void test_chunked_limits(void)
{
    static char in[70000];
    size_t o = 0;
    decoded d;

    o = (size_t)snprintf(in, sizeof(in), "1;");
    while (o < 10000)
        in[o++] = 'e';
    o += (size_t)snprintf(in + o, sizeof(in) - o, "\r\nx\r\n0\r\n\r\n");
    decode_cuts(in, o, NULL, 0, &d);
    is(d.err, SF_CHUNK_E_SYNTAX, "chunked: a 10000-byte extension line is refused");

    o = (size_t)snprintf(in, sizeof(in), "0\r\n");
    while (o < 65536)
        o += (size_t)snprintf(in + o, sizeof(in) - o, "X-Trailer: 0123456789\r\n");
    o += (size_t)snprintf(in + o, sizeof(in) - o, "\r\n");
    decode_cuts(in, o, NULL, 0, &d);
    is(d.err, SF_CHUNK_E_TRAILER, "chunked: 64 KiB of trailers are refused");
}

/* Body delimitation of a response and whether its connection can be reused. */
static void test_response_body(void)
{
    static const struct {
        const char *head;
        int is_head, body, reusable;
    } cases[] = {
        {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", 0, SF_HTTP_BODY_LENGTH, 1},
        {"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0, SF_HTTP_BODY_NONE, 1},
        {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", 1, SF_HTTP_BODY_NONE, 1},
        {"HTTP/1.1 204 No Content\r\n\r\n", 0, SF_HTTP_BODY_NONE, 1},
        {"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n", 0, SF_HTTP_BODY_NONE, 1},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 0, SF_HTTP_BODY_CHUNKED, 1},
        {"HTTP/1.1 200 OK\r\n\r\n", 0, SF_HTTP_BODY_CLOSE, 0},
        {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\n", 0,
         SF_HTTP_BODY_LENGTH, 0},
        {"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\n", 0, SF_HTTP_BODY_LENGTH, 0},
        {"HTTP/1.0 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\n", 0,
         SF_HTTP_BODY_LENGTH, 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sf_http_limits lim = {MAX_HEAD, MAX_HEADERS};
        sf_http_header hdrs[CAP];
        sf_http_response resp;
        size_t len = strlen(cases[i].head);
        char *b = dup_exact(cases[i].head, len);
        ssize_t rc = sf_http_parse_response(b, len, &resp, hdrs, CAP, &lim);
        int body = rc > 0 ? sf_http_response_body(&resp, cases[i].is_head) : -1;
        ok(body == cases[i].body && sf_http_response_reusable(&resp, body) == cases[i].reusable,
           "response body framing and reuse, case %zu", i);
        free(b);
    }
}

/* Every byte value at every position of a long field value: the word-at-a-time scan must agree
 * with the byte rule (HTAB, SP..0x7e and 0x80..0xff allowed), wherever the byte falls in a
 * word and whatever follows it. */
static void test_value_bytes(void)
{
    limits_spec ls = {0, 0, 0};
    int wrong = 0, checked = 0;
    for (int pos = 0; pos < 40; pos++)
        for (int b = 0; b < 256; b++) {
            char buf[160];
            int n = snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: a\r\nX-V: ");
            for (int i = 0; i < 40; i++)
                buf[n + i] = i == pos ? (char)b : (char)('a' + i % 26);
            n += 40;
            memcpy(buf + n, "\r\n\r\n", 4);
            n += 4;
            int allowed = b == '\t' || (b >= 0x20 && b != 0x7f);
            ssize_t rc = parse_req_only(buf, (size_t)n, ls);
            /* a CR or LF in the value is a line end too early: refused either way */
            int ok_now = rc == n;
            if (ok_now != allowed) {
                if (wrong++ < 5)
                    diag("byte 0x%02x at %d: %zd", b, pos, rc);
            }
            checked++;
        }
    ok(wrong == 0, "field-value bytes: %d values x positions judged as the byte rule says",
       checked);
}

int main(void)
{
    for (size_t i = 0; i < sizeof(req_ok_cases) / sizeof(req_ok_cases[0]); i++)
        run_req_ok(&req_ok_cases[i]);
    for (size_t i = 0; i < sizeof(req_bad_cases) / sizeof(req_bad_cases[0]); i++)
        run_req_bad(&req_bad_cases[i]);
    test_generated_limits();
    for (size_t i = 0; i < sizeof(resp_ok_cases) / sizeof(resp_ok_cases[0]); i++)
        run_resp_ok(&resp_ok_cases[i]);
    for (size_t i = 0; i < sizeof(resp_bad_cases) / sizeof(resp_bad_cases[0]); i++)
        run_resp_bad(&resp_bad_cases[i]);
    test_response_junk_early();
    test_response_body();
    test_error_status();
    test_name_is();
    test_value_bytes();
    for (size_t i = 0; i < sizeof(chunk_cases) / sizeof(chunk_cases[0]); i++)
        run_chunk_case(&chunk_cases[i]);
    test_chunked_calls();
    test_chunked_limits();
    return done_testing();
}
