/* libFuzzer target: the response-head parser (sf_http_parse_response), the framing rules
 * that follow from a head (sf_http_response_body, sf_http_response_reusable) and the body
 * reader (sf_body_read) on what follows the head, as an upstream would send it.
 *
 * Input: one byte of options (bits 0-1 max_head_bytes, 2-3 max_headers, 4-5 the header array's
 * capacity, bit 6: the request was HEAD, bit 7: the body arrives in four pieces, not one),
 * then the bytes the upstream sent. Beyond "no crash", an accepted head ends at the first
 * CRLFCRLF within the limit, starts with "HTTP/1.x NNN" whose digits are the status (100-599),
 * its reason and headers lie inside it and obey the header-line rules (fuzz.h); its body is
 * delimited as RFC 9112 §6.3 says (HEAD, 204 and 304 have none; chunked; Content-Length; else
 * until close, and then the connection is not reusable, nor after Connection: close); the body
 * reader takes exactly what that framing covers — the first Content-Length bytes, the chunked
 * data the reference decoder finds (fuzz_body.h), or everything — and leaves the rest. Every
 * proper prefix of an accepted head is INCOMPLETE, and a prefix is refused only when the whole
 * is. */
#include "fuzz_body.h"

static const size_t head_limits[4] = {8192, 32, 200, 1000};
static const size_t header_limits[4] = {100, 1, 4, 16};
static const size_t capacities[4] = {128, 2, 8, 100};

static ssize_t verdict(const char *bytes, size_t len, size_t capacity, const sf_http_limits *lim,
                       sf_http_header *headers)
{
    sf_http_response r;
    char *b = fuzz_dup(bytes, len);
    ssize_t rc = sf_http_parse_response(b, len, &r, headers, capacity, lim);
    free(b);
    return rc;
}

static void check_head(const char *b, ssize_t rc, const sf_http_response *r,
                       const sf_http_header *headers, size_t capacity, const sf_http_limits *lim)
{
    const char *end = b + rc;
    FUZZ_CHECK((size_t)rc <= lim->max_head_bytes, "head of %zd bytes over the limit %zu", rc,
               lim->max_head_bytes);
    FUZZ_CHECK(rc >= 16 && memcmp(end - 4, "\r\n\r\n", 4) == 0, "head does not end CRLFCRLF");
    FUZZ_CHECK(memmem(b, (size_t)rc, "\r\n\r\n", 4) == end - 4,
               "head does not end at the first CRLFCRLF");
    FUZZ_CHECK(memcmp(b, "HTTP/1.", 7) == 0 && (r->minor_version == 0 || r->minor_version == 1) &&
                   b[7] == '0' + r->minor_version && b[8] == ' ',
               "version");
    FUZZ_CHECK(r->status >= 100 && r->status <= 599, "status %d", r->status);
    FUZZ_CHECK(b[9] - '0' == r->status / 100 && b[10] - '0' == r->status / 10 % 10 &&
                   b[11] - '0' == r->status % 10,
               "status %d is not the digits sent", r->status);
    const char *line_end = memchr(b, '\r', (size_t)rc);
    FUZZ_CHECK(line_end[1] == '\n' && line_end >= b + 12, "status line end");
    FUZZ_CHECK(line_end == b + 12 || b[12] == ' ', "no space after the status");
    FUZZ_CHECK(r->reason.p == (line_end == b + 12 ? b + 12 : b + 13) &&
                   r->reason.p + r->reason.len == line_end,
               "reason is not the rest of the status line");
    for (size_t i = 0; i < r->reason.len; i++)
        FUZZ_CHECK(fuzz_value_char((unsigned char)r->reason.p[i]), "reason byte 0x%02x",
                   (unsigned char)r->reason.p[i]);
    FUZZ_CHECK(r->headers == headers, "headers array");
    FUZZ_CHECK(r->num_headers <= capacity && r->num_headers <= lim->max_headers,
               "%zu headers for capacity %zu, limit %zu", r->num_headers, capacity,
               lim->max_headers);
    fuzz_check_headers(r->headers, r->num_headers, line_end + 2, end, r->content_length, r->flags);
    FUZZ_CHECK(!(r->flags & SF_HTTP_F_CHUNKED) || r->minor_version == 1, "chunked on HTTP/1.0");
}

static void check_body(const char *body, size_t n, const sf_http_response *r, int is_head,
                       int split)
{
    int mode = sf_http_response_body(r, is_head);
    if (is_head || r->status == 204 || r->status == 304)
        FUZZ_CHECK(mode == SF_HTTP_BODY_NONE, "a body after HEAD, 204 or 304 (mode %d)", mode);
    else if (r->flags & SF_HTTP_F_CHUNKED)
        FUZZ_CHECK(mode == SF_HTTP_BODY_CHUNKED, "chunked response read as mode %d", mode);
    else if (r->content_length >= 0)
        FUZZ_CHECK(mode == (r->content_length ? SF_HTTP_BODY_LENGTH : SF_HTTP_BODY_NONE),
                   "Content-Length %lld read as mode %d", (long long)r->content_length, mode);
    else
        FUZZ_CHECK(mode == SF_HTTP_BODY_CLOSE, "no framing read as mode %d", mode);
    int reusable = sf_http_response_reusable(r, mode);
    FUZZ_CHECK(!reusable || (mode != SF_HTTP_BODY_CLOSE && !(r->flags & SF_HTTP_F_CONN_CLOSE)),
               "reusable after a close-delimited body or Connection: close");
    FUZZ_CHECK(!reusable || r->minor_version == 1 || (r->flags & SF_HTTP_F_CONN_KEEPALIVE),
               "HTTP/1.0 reusable without keep-alive");

    size_t cuts[3] = {n / 4, n / 2, n - n / 8};
    fuzz_taken t;
    size_t left;
    int rc = fuzz_body_feed(mode, r->content_length, body, n, cuts, split ? 3 : 0, &t, &left);
    switch (mode) {
    case SF_HTTP_BODY_NONE:
        FUZZ_CHECK(rc == 1 && t.len == 0 && left == n, "no body, yet %zu bytes taken", t.len);
        break;
    case SF_HTTP_BODY_LENGTH: {
        uint64_t cl = (uint64_t)r->content_length;
        size_t want = cl < n ? (size_t)cl : n;
        FUZZ_CHECK(rc == (cl <= n) && t.len == want && left == n - want &&
                       memcmp(t.data, body, want) == 0,
                   "Content-Length %llu over %zu bytes: took %zu, left %zu, rc %d",
                   (unsigned long long)cl, n, t.len, left, rc);
        break;
    }
    case SF_HTTP_BODY_CHUNKED: {
        fuzz_decoded loose, strict;
        fuzz_chunked_ref(body, n, 0, &loose);
        fuzz_chunked_ref(body, n, 1, &strict);
        int want_l = loose.verdict == FUZZ_DONE ? 1 : loose.verdict == FUZZ_INCOMPLETE ? 0 : -1;
        const fuzz_decoded *ref = rc == want_l ? &loose : &strict;
        int want = ref->verdict == FUZZ_DONE ? 1 : ref->verdict == FUZZ_INCOMPLETE ? 0 : -1;
        FUZZ_CHECK(rc == want, "chunked body: sf_body_read %d, reference %d", rc, ref->verdict);
        FUZZ_CHECK(t.len == ref->len && memcmp(t.data, ref->data, t.len) == 0,
                   "chunked body: took %zu bytes, reference %zu (or they differ)", t.len, ref->len);
        FUZZ_CHECK(rc != 1 || left == n - ref->consumed, "chunked body: left %zu, not %zu", left,
                   n - ref->consumed);
        free(loose.data);
        free(strict.data);
        break;
    }
    case SF_HTTP_BODY_CLOSE:
        FUZZ_CHECK(rc == 0 && t.len == n && memcmp(t.data, body, n) == 0 && left == 0,
                   "close-delimited body: took %zu of %zu, rc %d", t.len, n, rc);
        break;
    default:
        FUZZ_CHECK(0, "unknown body mode %d", mode);
    }
    free(t.data);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    sf_http_limits lim = {head_limits[data[0] & 3], header_limits[(data[0] >> 2) & 3]};
    size_t capacity = capacities[(data[0] >> 4) & 3];
    int is_head = (data[0] >> 6) & 1, split = data[0] >> 7;
    const char *bytes = (const char *)data + 1;
    size_t len = size - 1;
    sf_http_header *headers = malloc(capacity * sizeof(*headers));
    sf_http_header *scratch = malloc(capacity * sizeof(*scratch));
    if (headers == NULL || scratch == NULL)
        abort();

    char *copy = fuzz_dup(bytes, len);
    sf_http_response resp;
    memset(&resp, 0, sizeof(resp));
    ssize_t rc = sf_http_parse_response(copy, len, &resp, headers, capacity, &lim);
    FUZZ_CHECK(rc > 0 || (rc >= SF_HTTP_E_STATUS && rc < 0), "unknown result %zd", rc);
    /* Any error is a 502 for the caller, but one about the request line means the parsers
     * mixed up. (A second Host header is refused in a response too: the header scan is
     * shared.) */
    FUZZ_CHECK(rc != SF_HTTP_E_METHOD && rc != SF_HTTP_E_CONNECT && rc != SF_HTTP_E_TARGET &&
                   rc != SF_HTTP_E_VERSION && rc != SF_HTTP_E_URI_TOO_LONG,
               "a request-line error for a response: %s", sf_http_error_str(rc));
    if (rc > 0) {
        check_head(copy, rc, &resp, headers, capacity, &lim);
        check_body(copy + rc, len - (size_t)rc, &resp, is_head, split);
    }

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
    }
    free(copy);
    free(headers);
    free(scratch);
    return 0;
}
