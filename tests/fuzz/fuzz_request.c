/* libFuzzer target: the request-head parser (sf_http_parse_request) and the path normalizer the
 * proxy runs on what it accepts (sf_path_normalize).
 *
 * Input: one byte of limits (bits 0-1 max_head_bytes, 2-3 max_headers, 4-5 the header array's
 * capacity, so that the 414/431 paths are reached with small inputs), then the bytes a client
 * sent. Beyond "no crash", an accepted head must be one reading of those bytes: it ends at the
 * first CRLFCRLF after the skipped empty lines, within the limit; every slice lies inside it;
 * the method is a token, the target has no space or control byte, the path is the target's
 * tail; exactly one valid Host, found at host_index; Content-Length and Transfer-Encoding as the
 * header lines spell them (fuzz.h). The verdict must not depend on how the bytes arrived: every
 * proper prefix of an accepted head is INCOMPLETE, a prefix is refused only when the whole is
 * and with the same status (unless the prefix was refused for its size), and bytes after the
 * head change nothing. The normalized path starts with '/', holds no dot
 * segment and no escape of an unreserved character, normalizing it again changes nothing, and
 * normalizing in place gives the same bytes. Every parse reads an exact-size heap copy. */
#include "fuzz.h"
#include "match.h"

static const size_t head_limits[4] = {8192, 32, 200, 1000};
static const size_t header_limits[4] = {100, 1, 4, 16};
static const size_t capacities[4] = {128, 2, 8, 100};

/* Parses an exact-size copy of bytes[0..len) and frees it: for verdicts only. */
static ssize_t verdict(const char *bytes, size_t len, size_t capacity, const sf_http_limits *lim,
                       sf_http_header *headers)
{
    sf_http_request r;
    char *b = fuzz_dup(bytes, len);
    ssize_t rc = sf_http_parse_request(b, len, &r, headers, capacity, lim);
    free(b);
    return rc;
}

/* Leading empty lines the parser skips (RFC 9112 §2.2): at most four CRLFs. */
static size_t leading_crlf(const char *b, size_t len)
{
    size_t skip = 0;
    while (skip + 1 < len && skip < 8 && b[skip] == '\r' && b[skip + 1] == '\n')
        skip += 2;
    return skip;
}

static int unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

static int hexdig_upper(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

static int hexval(unsigned char c)
{
    return c <= '9' ? c - '0' : c - 'A' + 10;
}

static void check_normalized(const char *out, size_t n)
{
    FUZZ_CHECK(n > 0 && out[0] == '/', "normalized path does not start with '/'");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)out[i];
        FUZZ_CHECK(c != 0, "NUL in a normalized path");
        if (c == '%') {
            FUZZ_CHECK(i + 2 < n && hexdig_upper((unsigned char)out[i + 1]) &&
                           hexdig_upper((unsigned char)out[i + 2]),
                       "escape at %zu not %%XX with uppercase hex", i);
            int v = hexval((unsigned char)out[i + 1]) * 16 + hexval((unsigned char)out[i + 2]);
            FUZZ_CHECK(!unreserved((unsigned char)v) && v != 0,
                       "escape of 0x%02x left encoded at %zu", v, i);
        }
        if (c == '/') {
            size_t j = i + 1;
            while (j < n && out[j] != '/')
                j++;
            size_t seg = j - i - 1;
            FUZZ_CHECK(!(seg == 1 && out[i + 1] == '.') &&
                           !(seg == 2 && out[i + 1] == '.' && out[i + 2] == '.'),
                       "dot segment left at %zu", i);
        }
    }
}

static void check_normalize(const char *path, size_t len)
{
    char *in = fuzz_dup(path, len), *out = malloc(len ? len : 1), *again = malloc(len ? len : 1);
    if (out == NULL || again == NULL)
        abort();
    ssize_t n = sf_path_normalize(in, len, out);
    FUZZ_CHECK(n >= -1 && n <= (ssize_t)len, "normalize returned %zd for %zu bytes", n, len);
    if (n >= 0) {
        check_normalized(out, (size_t)n);
        ssize_t m = sf_path_normalize(out, (size_t)n, again);
        FUZZ_CHECK(m == n && memcmp(out, again, (size_t)n) == 0, "normalize is not idempotent");
    }
    ssize_t k = sf_path_normalize(in, len, in);
    FUZZ_CHECK(k == n && (n < 0 || memcmp(in, out, (size_t)n) == 0),
               "normalizing in place differs (%zd, %zd)", k, n);
    free(in);
    free(out);
    free(again);
}

static void check_accepted(const char *b, size_t len, ssize_t rc, const sf_http_request *r,
                           const sf_http_header *headers, size_t capacity,
                           const sf_http_limits *lim)
{
    size_t skip = leading_crlf(b, len);
    const char *head = b + skip, *end = b + rc;
    FUZZ_CHECK((size_t)rc <= len && (size_t)rc > skip, "rc %zd for %zu bytes", rc, len);
    FUZZ_CHECK((size_t)rc - skip <= lim->max_head_bytes, "head of %zu bytes over the limit %zu",
               (size_t)rc - skip, lim->max_head_bytes);
    FUZZ_CHECK(rc - skip >= 4 && memcmp(end - 4, "\r\n\r\n", 4) == 0, "head does not end CRLFCRLF");
    const char *first = memmem(head, (size_t)(end - head), "\r\n\r\n", 4);
    FUZZ_CHECK(first == end - 4, "head does not end at the first CRLFCRLF");

    FUZZ_CHECK(fuzz_inside(r->method, head, end) && r->method.p == head && r->method.len > 0,
               "method slice");
    for (size_t i = 0; i < r->method.len; i++)
        FUZZ_CHECK(fuzz_tchar((unsigned char)r->method.p[i]), "method byte 0x%02x",
                   (unsigned char)r->method.p[i]);
    FUZZ_CHECK(!(r->method.len == 7 && memcmp(r->method.p, "CONNECT", 7) == 0), "CONNECT accepted");
    FUZZ_CHECK(r->method.p[r->method.len] == ' ' && r->target.p == r->method.p + r->method.len + 1,
               "target does not follow the method and one space");
    FUZZ_CHECK(fuzz_inside(r->target, head, end) && r->target.len > 0, "target slice");
    for (size_t i = 0; i < r->target.len; i++) {
        unsigned char c = (unsigned char)r->target.p[i];
        FUZZ_CHECK(c > 0x20 && c < 0x7f && c != '#', "target byte 0x%02x", c);
    }
    const char *v = r->target.p + r->target.len;
    FUZZ_CHECK(end - v >= 12 && memcmp(v, " HTTP/1.", 8) == 0 && v[8] == '0' + r->minor_version &&
                   (r->minor_version == 0 || r->minor_version == 1) && v[9] == '\r' &&
                   v[10] == '\n',
               "version does not follow the target");
    FUZZ_CHECK(fuzz_inside(r->path, r->target.p, v) && r->path.p + r->path.len == v,
               "path is not the target's tail");
    if (r->flags & SF_HTTP_F_ABSOLUTE_FORM) {
        FUZZ_CHECK(r->authority.len > 0 && r->authority.p == r->target.p + 7 &&
                       r->path.p == r->authority.p + r->authority.len &&
                       memchr(r->authority.p, '@', r->authority.len) == NULL,
                   "absolute-form authority");
        FUZZ_CHECK(r->path.len == 0 || r->path.p[0] == '/' || r->path.p[0] == '?',
                   "absolute-form path");
    } else {
        FUZZ_CHECK(r->authority.len == 0, "authority outside absolute-form");
        FUZZ_CHECK(r->path.p == r->target.p, "origin-form path is not the target");
        if (r->flags & SF_HTTP_F_ASTERISK_FORM)
            FUZZ_CHECK(r->target.len == 1 && r->target.p[0] == '*' && r->method.len == 7 &&
                           memcmp(r->method.p, "OPTIONS", 7) == 0,
                       "asterisk-form");
        else
            FUZZ_CHECK(r->target.p[0] == '/', "origin-form target does not start with '/'");
    }

    FUZZ_CHECK(r->headers == headers, "headers array");
    FUZZ_CHECK(r->num_headers <= capacity && r->num_headers <= lim->max_headers,
               "%zu headers for capacity %zu, limit %zu", r->num_headers, capacity,
               lim->max_headers);
    fuzz_check_headers(r->headers, r->num_headers, v + 11, end, r->content_length, r->flags);
    FUZZ_CHECK(!(r->flags & SF_HTTP_F_CHUNKED) || r->minor_version == 1, "chunked on HTTP/1.0");

    int hosts = 0, rid = -1, conn = -1;
    for (size_t i = 0; i < r->num_headers; i++) {
        if (SF_HTTP_NAME_IS(headers[i].name, "host"))
            hosts++;
        if (rid < 0 && SF_HTTP_NAME_IS(headers[i].name, "x-request-id"))
            rid = (int)i;
        if (conn < 0 && SF_HTTP_NAME_IS(headers[i].name, "connection"))
            conn = (int)i;
    }
    FUZZ_CHECK(hosts == 1, "%d Host headers accepted", hosts);
    FUZZ_CHECK(r->host_index >= 0 && (size_t)r->host_index < r->num_headers &&
                   SF_HTTP_NAME_IS(headers[r->host_index].name, "host"),
               "host_index %d", r->host_index);
    sf_slice host = headers[r->host_index].value;
    FUZZ_CHECK(host.len > 0 && host.len <= 255, "Host of %zu bytes", host.len);
    for (size_t i = 0; i < host.len; i++) {
        unsigned char c = (unsigned char)host.p[i];
        FUZZ_CHECK((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                       (c != 0 && strchr("-._~!$&'()*+,;=%[]:", c) != NULL),
                   "Host byte 0x%02x", c);
    }
    FUZZ_CHECK(r->request_id_index == rid, "request_id_index %d, first at %d", r->request_id_index,
               rid);
    FUZZ_CHECK(r->connection_index == conn, "connection_index %d, first at %d", r->connection_index,
               conn);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    sf_http_limits lim = {head_limits[data[0] & 3], header_limits[(data[0] >> 2) & 3]};
    size_t capacity = capacities[(data[0] >> 4) & 3];
    const char *bytes = (const char *)data + 1;
    size_t len = size - 1;
    sf_http_header *headers = malloc(capacity * sizeof(*headers)), *scratch = NULL;
    if (headers == NULL || (scratch = malloc(capacity * sizeof(*scratch))) == NULL)
        abort();

    char *copy = fuzz_dup(bytes, len);
    sf_http_request req;
    memset(&req, 0, sizeof(req));
    ssize_t rc = sf_http_parse_request(copy, len, &req, headers, capacity, &lim);
    FUZZ_CHECK(rc > 0 || (rc >= SF_HTTP_E_STATUS && rc < 0), "unknown result %zd", rc);
    FUZZ_CHECK(rc != SF_HTTP_E_STATUS, "a request refused as a bad status line");
    if (rc < SF_HTTP_INCOMPLETE) {
        int st = sf_http_error_status(rc);
        FUZZ_CHECK(st == 400 || st == 405 || st == 414 || st == 431, "status %d", st);
    }

    if (rc > 0) {
        check_accepted(copy, len, rc, &req, headers, capacity, &lim);
        /* What follows the head is the body or the next request: it must change nothing. */
        static const char more[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n\r\n\n\r\0";
        for (size_t extra = 1; extra < sizeof(more); extra += 9) {
            char *b = malloc((size_t)rc + extra);
            if (b == NULL)
                abort();
            memcpy(b, bytes, (size_t)rc);
            memcpy(b + rc, more, extra);
            sf_http_request r2;
            ssize_t rc2 =
                sf_http_parse_request(b, (size_t)rc + extra, &r2, scratch, capacity, &lim);
            FUZZ_CHECK(rc2 == rc && r2.num_headers == req.num_headers &&
                           r2.content_length == req.content_length && r2.flags == req.flags &&
                           r2.target.len == req.target.len,
                       "%zu bytes after the head changed the parse (%zd, then %zd)", extra, rc,
                       rc2);
            free(b);
        }
        if (!(req.flags & SF_HTTP_F_ASTERISK_FORM) && req.path.len > 0 && req.path.p[0] == '/') {
            const char *q = memchr(req.path.p, '?', req.path.len);
            check_normalize(req.path.p, q != NULL ? (size_t)(q - req.path.p) : req.path.len);
        }
    }

    /* Prefixes: all of them for short inputs, an even spread plus the last few for long ones. */
    size_t upto = rc > 0 ? (size_t)rc : len, step = upto <= 300 ? 1 : upto / 97;
    for (size_t k = 0; k < upto; k++) {
        if (k % step != 0 && k + 4 < upto)
            continue;
        ssize_t part = verdict(bytes, k, capacity, &lim, scratch);
        if (rc >= SF_HTTP_INCOMPLETE)
            FUZZ_CHECK(part == SF_HTTP_INCOMPLETE,
                       "prefix of %zu bytes gives %zd (%s), the whole %zd", k, part,
                       sf_http_error_str(part), rc);
        else
            FUZZ_CHECK(part <= SF_HTTP_INCOMPLETE,
                       "prefix of %zu bytes accepted (%zd), the whole refused (%s)", k, part,
                       sf_http_error_str(rc));
        /* The same status, unless the prefix was already over the size limit: a byte that
         * arrives later cannot turn an over-long head back into a 400. */
        if (rc < SF_HTTP_INCOMPLETE && part < SF_HTTP_INCOMPLETE &&
            part != SF_HTTP_E_URI_TOO_LONG && part != SF_HTTP_E_HEADERS_TOO_BIG)
            FUZZ_CHECK(sf_http_error_status(part) == sf_http_error_status(rc),
                       "prefix of %zu bytes: %s (%d), the whole: %s (%d)", k,
                       sf_http_error_str(part), sf_http_error_status(part), sf_http_error_str(rc),
                       sf_http_error_status(rc));
    }
    free(copy);
    free(headers);
    free(scratch);
    return 0;
}
