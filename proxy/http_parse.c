/* Strict HTTP/1.1 head parser and chunked decoder. Every rule that decides message framing
 * (RFC 9112 §6.3) is checked here, so a message this parser accepts has exactly one reading. */
#include "http_parse.h"

#include <string.h>

/* tchar (RFC 9110 §5.6.2) */
static const unsigned char tchar[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1,
    ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1,  ['~'] = 1, ['0'] = 1,
    ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1,  ['7'] = 1, ['8'] = 1,
    ['9'] = 1, ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1,  ['F'] = 1, ['G'] = 1,
    ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1,  ['N'] = 1, ['O'] = 1,
    ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1,  ['V'] = 1, ['W'] = 1,
    ['X'] = 1, ['Y'] = 1, ['Z'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1,  ['d'] = 1, ['e'] = 1,
    ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1,  ['l'] = 1, ['m'] = 1,
    ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1,  ['t'] = 1, ['u'] = 1,
    ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

/* Request-target bytes in origin-form: VCHAR except '#' (fragments are never sent) and
 * nothing outside ASCII. Space and controls end or break the line. */
static int target_char(unsigned char c)
{
    return c > 0x20 && c < 0x7f && c != '#';
}

/* field-value bytes: VCHAR, obs-text, SP, HTAB. NUL, CR, LF, other controls and DEL are not. */
static int value_char(unsigned char c)
{
    return c >= 0x20 ? c != 0x7f : c == '\t';
}

/* The end of the field-value bytes from p: the first byte that is not value_char, or end. Eight
 * bytes at a time while none is a control byte (< 0x20, HTAB included: the byte loop takes
 * those) or DEL; values are most of a head's bytes. */
static const char *scan_value(const char *p, const char *end)
{
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    while (end - p >= 8) {
        uint64_t x, d;
        memcpy(&x, p, 8);
        d = x ^ (0x7f * ones);
        /* a byte below 0x20, or a zero byte of d (a DEL): exact for "none" */
        if ((((x - 0x20 * ones) & ~x) | ((d - ones) & ~d)) & highs)
            break;
        p += 8;
    }
    while (p < end && value_char((unsigned char)*p))
        p++;
    return p;
}

/* unreserved / sub-delims (RFC 3986 §2.2-2.3): the bytes of a reg-name or IPv4address besides
 * pct-encoded triplets, and with ':' those of an IP-literal. */
static int host_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("-._~!$&'()*+,;=", c) != NULL);
}

static int is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

int sf_http_name_is(sf_slice name, const char *lc, size_t lclen)
{
    if (name.len != lclen)
        return 0;
    for (size_t i = 0; i < lclen; i++) {
        unsigned char c = (unsigned char)name.p[i];
        if (c >= 'A' && c <= 'Z')
            c |= 0x20;
        if (c != (unsigned char)lc[i])
            return 0;
    }
    return 1;
}

static int ieq(const char *p, size_t len, const char *lc, size_t lclen)
{
    sf_slice s = {p, len};
    return sf_http_name_is(s, lc, lclen);
}
#define IEQ(p, len, lit) ieq((p), (len), (lit), sizeof(lit) - 1)

/* Finds the end of the head: the offset just past CRLFCRLF, or 0 when not present yet.
 * Bare LF and bare CR are rejected later by the line scanner, so only CRLF counts here. */
static size_t find_head_end(const char *buf, size_t len)
{
    const char *p = buf, *end = buf + len;
    while (p + 3 < end) {
        const char *cr = memchr(p, '\r', (size_t)(end - p - 3));
        if (cr == NULL)
            return 0;
        if (cr[1] == '\n' && cr[2] == '\r' && cr[3] == '\n')
            return (size_t)(cr + 4 - buf);
        p = cr + 1;
    }
    return 0;
}

/* Parses a 1*DIGIT Content-Length value, which may be a comma list of identical values
 * (RFC 9112 §6.3 item 5). Returns the length, or -1 when malformed, differing or too large. */
static int64_t parse_content_length(const char *p, size_t len)
{
    int64_t result = -1;
    size_t i = 0;
    for (;;) {
        int64_t v = 0;
        size_t start = i;
        while (i < len && p[i] >= '0' && p[i] <= '9') {
            if (i - start >= 18) /* 10^18: well above any body we would accept */
                return -1;
            v = v * 10 + (p[i] - '0');
            i++;
        }
        if (i == start)
            return -1;
        if (result >= 0 && v != result)
            return -1;
        result = v;
        while (i < len && (p[i] == ' ' || p[i] == '\t'))
            i++;
        if (i == len)
            return result;
        if (p[i] != ',')
            return -1;
        i++;
        while (i < len && (p[i] == ' ' || p[i] == '\t'))
            i++;
    }
}

/* Merges one more Content-Length header into *cl (-1 = none so far). */
static int add_content_length(int64_t *cl, sf_slice v)
{
    int64_t n = parse_content_length(v.p, v.len);
    if (n < 0 || (*cl >= 0 && *cl != n))
        return -1;
    *cl = n;
    return 0;
}

/* True when name spells the lowercase lc with at least one '_' where lc has '-'
 * ("Transfer_Encoding"). Such a name is a valid token (RFC 9110 §5.1), but servers that map
 * header names to CGI-style variables (HTTP_TRANSFER_ENCODING) fold '_' and '-' together, so
 * it is a framing header in disguise to them and refused, as nginx drops it by default. */
static int disguised_name(sf_slice name, const char *lc, size_t lclen)
{
    int underscore = 0;
    if (name.len != lclen)
        return 0;
    for (size_t i = 0; i < lclen; i++) {
        unsigned char c = (unsigned char)name.p[i];
        if (c == '_' && lc[i] == '-') {
            underscore = 1;
            continue;
        }
        if (c >= 'A' && c <= 'Z')
            c |= 0x20;
        if (c != (unsigned char)lc[i])
            return 0;
    }
    return underscore;
}
#define DISGUISED(s, lit) disguised_name((s), (lit), sizeof(lit) - 1)

/* Connection: a comma list of tokens. */
static unsigned parse_connection(sf_slice v)
{
    unsigned flags = 0;
    size_t i = 0;
    while (i < v.len) {
        while (i < v.len && (v.p[i] == ' ' || v.p[i] == '\t' || v.p[i] == ','))
            i++;
        size_t s = i;
        while (i < v.len && v.p[i] != ',' && v.p[i] != ' ' && v.p[i] != '\t')
            i++;
        if (i == s)
            break;
        if (IEQ(v.p + s, i - s, "close"))
            flags |= SF_HTTP_F_CONN_CLOSE;
        else if (IEQ(v.p + s, i - s, "keep-alive"))
            flags |= SF_HTTP_F_CONN_KEEPALIVE;
        else if (IEQ(v.p + s, i - s, "upgrade"))
            flags |= SF_HTTP_F_CONN_UPGRADE;
        else
            flags |= SF_HTTP_F_CONN_OTHER;
    }
    return flags;
}

/* Transfer-Encoding: exactly one coding, "chunked". Anything else (other codings, "chunked"
 * twice, empty list members) is refused: we cannot frame a body we cannot decode. */
static int te_is_chunked(sf_slice v)
{
    return IEQ(v.p, v.len, "chunked");
}

static int is_version(const char *p, int *minor)
{
    if (memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1'))
        return 0;
    *minor = p[7] - '0';
    return 1;
}

/* Header lines from p to end (end points just past the head's final CRLF). Fills the
 * caller's array and the framing fields shared by requests and responses. */
typedef struct {
    int64_t content_length;
    unsigned flags;
    int host_index, request_id_index, connection_index;
    int te_seen;
    size_t n;
} header_scan;

static ssize_t parse_headers(const char *p, const char *end, sf_http_header *headers,
                             size_t capacity, size_t max_headers, header_scan *hs)
{
    hs->content_length = -1;
    hs->flags = 0;
    hs->host_index = hs->request_id_index = hs->connection_index = -1;
    hs->te_seen = 0;
    hs->n = 0;
    if (max_headers > capacity)
        max_headers = capacity;

    for (;;) {
        if (p + 2 > end)
            return SF_HTTP_E_SYNTAX;
        if (p[0] == '\r') {
            if (p[1] != '\n' || p + 2 != end)
                return SF_HTTP_E_SYNTAX;
            return 0;
        }
        if (p[0] == ' ' || p[0] == '\t')
            return SF_HTTP_E_HEADER; /* obs-fold (RFC 9112 §5.2): rejected */
        const char *name = p;
        while (p < end && tchar[(unsigned char)*p])
            p++;
        if (p == end || *p != ':' || p == name)
            return SF_HTTP_E_HEADER; /* empty or non-token name, or space before the colon */
        size_t name_len = (size_t)(p - name);
        p++;
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        const char *value = p;
        p = scan_value(p, end);
        if (p + 1 >= end || p[0] != '\r' || p[1] != '\n')
            return SF_HTTP_E_HEADER; /* control byte, bare CR or bare LF inside the line */
        const char *vend = p;
        while (vend > value && (vend[-1] == ' ' || vend[-1] == '\t'))
            vend--;
        p += 2;

        if (hs->n >= max_headers)
            return SF_HTTP_E_HEADERS_TOO_BIG;
        sf_http_header *h = &headers[hs->n];
        h->name.p = name;
        h->name.len = name_len;
        h->value.p = value;
        h->value.len = (size_t)(vend - value);

        /* Framing-relevant names, switched on length first to keep the common path short. */
        switch (name_len) {
        case 4:
            if (SF_HTTP_NAME_IS(h->name, "host")) {
                if (hs->host_index >= 0)
                    return SF_HTTP_E_HOST;
                hs->host_index = (int)hs->n;
            }
            break;
        case 6:
            if (SF_HTTP_NAME_IS(h->name, "expect") && IEQ(h->value.p, h->value.len, "100-continue"))
                hs->flags |= SF_HTTP_F_EXPECT_CONTINUE;
            break;
        case 10:
            if (SF_HTTP_NAME_IS(h->name, "connection")) {
                hs->flags |= parse_connection(h->value);
                if (hs->connection_index < 0)
                    hs->connection_index = (int)hs->n;
            }
            break;
        case 12:
            if (SF_HTTP_NAME_IS(h->name, "x-request-id") && hs->request_id_index < 0)
                hs->request_id_index = (int)hs->n;
            break;
        case 14:
            if (SF_HTTP_NAME_IS(h->name, "content-length")) {
                if (add_content_length(&hs->content_length, h->value) < 0)
                    return SF_HTTP_E_CONTENT_LENGTH;
            } else if (DISGUISED(h->name, "content-length")) {
                return SF_HTTP_E_HEADER;
            }
            break;
        case 17:
            if (SF_HTTP_NAME_IS(h->name, "transfer-encoding")) {
                if (hs->te_seen++ || !te_is_chunked(h->value))
                    return SF_HTTP_E_TRANSFER_ENCODING;
                hs->flags |= SF_HTTP_F_CHUNKED;
            } else if (DISGUISED(h->name, "transfer-encoding")) {
                return SF_HTTP_E_HEADER;
            }
            break;
        }
        hs->n++;
    }
}

/* Host = uri-host [ ":" port ] (RFC 9110 §7.2, RFC 3986 §3.2.2-3.2.3): an IP-literal in
 * brackets, or a non-empty reg-name / IPv4address (pct-encoded triplets complete); then at most
 * one ':' and digits. Userinfo, a second ':' outside brackets or a stray bracket is refused: a
 * Host two parsers could split differently is how "host of troubles" attacks start. An empty
 * Host is refused too: no http URI has an empty host (RFC 9110 §4.2.1). */
static int valid_host(sf_slice v)
{
    const char *p = v.p, *end = v.p + v.len;
    if (v.len == 0 || v.len > 255)
        return 0;
    if (*p == '[') {
        const char *close = memchr(p, ']', v.len);
        if (close == NULL || close == p + 1)
            return 0;
        for (p++; p < close; p++)
            if (!host_char((unsigned char)*p) && *p != ':')
                return 0;
        p++;
    } else {
        const char *start = p;
        while (p < end && *p != ':') {
            if (*p == '%') {
                if (end - p < 3 || !is_hex((unsigned char)p[1]) || !is_hex((unsigned char)p[2]))
                    return 0;
                p += 3;
                continue;
            }
            if (!host_char((unsigned char)*p))
                return 0;
            p++;
        }
        if (p == start)
            return 0;
    }
    if (p == end)
        return 1;
    if (*p++ != ':')
        return 0;
    for (; p < end; p++)
        if (*p < '0' || *p > '9')
            return 0;
    return 1;
}

/* request-line = method SP request-target SP HTTP-version (RFC 9112 §3), from m (a method
 * followed by SP, already checked) to line_end (the line's CR). Fills the request-line fields
 * of req; returns 0 or an SF_HTTP_E_* code. */
static ssize_t parse_request_line(const char *m, const char *line_end, sf_http_request *req)
{
    const char *p = m;
    while (tchar[(unsigned char)*p])
        p++;
    req->method.p = m;
    req->method.len = (size_t)(p - m);
    p++;

    const char *t = p;
    while (p < line_end && target_char((unsigned char)*p))
        p++;
    if (p == t || p == line_end || *p != ' ')
        return SF_HTTP_E_TARGET; /* also "GET /" alone: HTTP/0.9 is not spoken */
    req->target.p = t;
    req->target.len = (size_t)(p - t);
    p++;

    if (line_end - p != 8 || !is_version(p, &req->minor_version))
        return SF_HTTP_E_VERSION;

    req->flags = 0;
    req->authority.p = NULL;
    req->authority.len = 0;
    if (req->method.len == 7 && memcmp(req->method.p, "CONNECT", 7) == 0)
        return SF_HTTP_E_CONNECT;

    /* request-target forms (RFC 9112 §3.2) */
    if (t[0] == '/') {
        req->path = req->target;
    } else if (req->target.len == 1 && t[0] == '*') {
        if (!(req->method.len == 7 && memcmp(req->method.p, "OPTIONS", 7) == 0))
            return SF_HTTP_E_TARGET;
        req->path = req->target;
        req->flags |= SF_HTTP_F_ASTERISK_FORM;
    } else if (req->target.len > 7 && IEQ(t, 7, "http://")) {
        const char *a = t + 7, *tend = t + req->target.len;
        const char *slash = a;
        while (slash < tend && *slash != '/' && *slash != '?')
            slash++;
        req->authority.p = a;
        req->authority.len = (size_t)(slash - a);
        if (!valid_host(req->authority))
            return SF_HTTP_E_TARGET; /* also userinfo: '@' is not a host byte */
        /* The origin-form part: "/p?q", or "?q" / "" when the target has no path, which the
         * caller sends as "/?q" / "/" (RFC 9112 §3.2.2). */
        req->path.p = slash;
        req->path.len = (size_t)(tend - slash);
        req->flags |= SF_HTTP_F_ABSOLUTE_FORM;
    } else {
        return SF_HTTP_E_TARGET;
    }
    return 0;
}

ssize_t sf_http_parse_request(const char *buf, size_t len, sf_http_request *req,
                              sf_http_header *headers, size_t capacity, const sf_http_limits *lim)
{
    const char *p = buf, *end;
    size_t skip = 0;

    /* RFC 9112 §2.2: ignore at least one empty line before the request-line. */
    while (skip + 1 < len && buf[skip] == '\r' && buf[skip + 1] == '\n' && skip < 8)
        skip += 2;
    if (skip < len && (buf[skip] == '\r' || buf[skip] == '\n')) {
        if (buf[skip] == '\r' && len - skip == 1)
            return SF_HTTP_INCOMPLETE; /* the LF that follows decides */
        return SF_HTTP_E_SYNTAX;
    }
    p = buf + skip;
    size_t avail = len - skip;

    /* Checks run in the same order on a partial and on a whole head (method, bare CR or LF in
     * the request line, 414, the rest of the request line, 431, then the header lines), so a
     * message gets the same verdict however it was split. */
    size_t head_len = find_head_end(p, avail);
    if (head_len == 0) {
        /* Reject garbage before waiting for more: the method must be a non-empty token. */
        size_t i = 0;
        while (i < avail && tchar[(unsigned char)p[i]])
            i++;
        if (i < avail && (i == 0 || p[i] != ' '))
            return SF_HTTP_E_METHOD;
        /* The first LF ends the request line: bare, it is already known to be invalid. */
        const char *lf = memchr(p, '\n', avail);
        if (lf != NULL && (lf == p || lf[-1] != '\r'))
            return SF_HTTP_E_SYNTAX;
        if (lf != NULL) {
            /* The request line is complete: judge it now rather than after the headers (an
             * HTTP/0.9 "GET /" gets its 400 at once, not at the client_header timeout). */
            const char *cr = memchr(p, '\r', (size_t)(lf - p));
            if (cr != lf - 1)
                return SF_HTTP_E_SYNTAX; /* a bare CR inside the line */
            if ((size_t)(cr - p) > lim->max_head_bytes)
                return SF_HTTP_E_URI_TOO_LONG;
            ssize_t rc = parse_request_line(p, cr, req);
            if (rc < 0)
                return rc;
            return avail > lim->max_head_bytes ? SF_HTTP_E_HEADERS_TOO_BIG : SF_HTTP_INCOMPLETE;
        }
        /* Decide early on an over-long request line: 414 once it is over the limit, however
         * many bytes came with it; a line of exactly the limit whose CR is the last byte read
         * waits for its LF, as the whole head would be judged on its content first. */
        if (avail > lim->max_head_bytes) {
            size_t line = avail - (p[avail - 1] == '\r');
            return line > lim->max_head_bytes ? SF_HTTP_E_URI_TOO_LONG : SF_HTTP_INCOMPLETE;
        }
        return SF_HTTP_INCOMPLETE;
    }
    end = p + head_len;

    /* The method scan stops at the latest at the head's final CR (not a tchar). */
    const char *m = p;
    while (p < end && tchar[(unsigned char)*p])
        p++;
    if (p == m || *p != ' ')
        return SF_HTTP_E_METHOD;
    const char *line_end = memchr(p, '\r', (size_t)(end - p));
    if (line_end[1] != '\n' || memchr(m, '\n', (size_t)(line_end - m)) != NULL)
        return SF_HTTP_E_SYNTAX; /* bare CR or LF */
    if ((size_t)(line_end - m) > lim->max_head_bytes)
        return SF_HTTP_E_URI_TOO_LONG;
    ssize_t lrc = parse_request_line(m, line_end, req);
    if (lrc < 0)
        return lrc;
    if (head_len > lim->max_head_bytes)
        return SF_HTTP_E_HEADERS_TOO_BIG;

    header_scan hs;
    ssize_t rc = parse_headers(line_end + 2, end, headers, capacity, lim->max_headers, &hs);
    if (rc < 0)
        return rc;
    req->headers = headers;
    req->num_headers = hs.n;
    req->flags |= hs.flags;
    req->content_length = hs.content_length;
    req->host_index = hs.host_index;
    req->request_id_index = hs.request_id_index;
    req->connection_index = hs.connection_index;

    if (hs.te_seen) {
        if (req->content_length >= 0)
            return SF_HTTP_E_CL_AND_TE; /* RFC 9112 §6.3: smuggling vector, refuse */
        if (req->minor_version == 0)
            return SF_HTTP_E_TRANSFER_ENCODING; /* RFC 9112 §6.1: faulty framing */
    }
    if (req->host_index < 0 || !valid_host(headers[req->host_index].value))
        return SF_HTTP_E_HOST;
    return (ssize_t)(skip + head_len);
}

ssize_t sf_http_parse_response(const char *buf, size_t len, sf_http_response *resp,
                               sf_http_header *headers, size_t capacity, const sf_http_limits *lim)
{
    size_t head_len = find_head_end(buf, len);
    if (head_len == 0) {
        const char *lf = memchr(buf, '\n', len);
        if (lf != NULL && (lf == buf || lf[-1] != '\r'))
            return SF_HTTP_E_STATUS; /* the first LF ends the status line: as on a whole head */
        if (len > lim->max_head_bytes)
            return SF_HTTP_E_HEADERS_TOO_BIG;
        if (len >= 5 && memcmp(buf, "HTTP/", 5) != 0)
            return SF_HTTP_E_STATUS;
        return SF_HTTP_INCOMPLETE;
    }
    if (head_len > lim->max_head_bytes)
        return SF_HTTP_E_HEADERS_TOO_BIG;

    /* status-line = HTTP-version SP 3DIGIT SP [reason-phrase] CRLF; the SP after the code is
     * often missing in the wild when the reason is empty and is accepted. */
    const char *p = buf, *line_end = memchr(buf, '\r', head_len);
    if (line_end[1] != '\n' || line_end - p < 12 || !is_version(p, &resp->minor_version) ||
        p[8] != ' ')
        return SF_HTTP_E_STATUS;
    p += 9;
    if (p[0] < '1' || p[0] > '5' || p[1] < '0' || p[1] > '9' || p[2] < '0' || p[2] > '9')
        return SF_HTTP_E_STATUS;
    resp->status = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
    p += 3;
    if (p < line_end && *p != ' ')
        return SF_HTTP_E_STATUS;
    resp->reason.p = p < line_end ? p + 1 : p;
    resp->reason.len = (size_t)(line_end - resp->reason.p);
    for (const char *r = resp->reason.p; r < line_end; r++)
        if (!value_char((unsigned char)*r))
            return SF_HTTP_E_STATUS;

    header_scan hs;
    ssize_t rc =
        parse_headers(line_end + 2, buf + head_len, headers, capacity, lim->max_headers, &hs);
    if (rc < 0)
        return rc;
    resp->headers = headers;
    resp->num_headers = hs.n;
    resp->flags = hs.flags;
    resp->content_length = hs.content_length;
    if (hs.te_seen && resp->content_length >= 0)
        return SF_HTTP_E_CL_AND_TE;
    if (hs.te_seen && resp->minor_version == 0)
        return SF_HTTP_E_TRANSFER_ENCODING;
    return (ssize_t)head_len;
}

int sf_http_error_status(ssize_t err)
{
    switch (err) {
    case SF_HTTP_E_CONNECT:
        return 405;
    case SF_HTTP_E_URI_TOO_LONG:
        return 414;
    case SF_HTTP_E_HEADERS_TOO_BIG:
        return 431;
    default:
        return 400;
    }
}

const char *sf_http_error_str(ssize_t err)
{
    switch (err) {
    case SF_HTTP_INCOMPLETE:
        return "incomplete";
    case SF_HTTP_E_SYNTAX:
        return "malformed line or line ending";
    case SF_HTTP_E_METHOD:
        return "invalid method";
    case SF_HTTP_E_CONNECT:
        return "CONNECT not allowed";
    case SF_HTTP_E_TARGET:
        return "invalid request-target";
    case SF_HTTP_E_VERSION:
        return "invalid HTTP version";
    case SF_HTTP_E_URI_TOO_LONG:
        return "request line too long";
    case SF_HTTP_E_HEADERS_TOO_BIG:
        return "header section too large";
    case SF_HTTP_E_HEADER:
        return "invalid header line";
    case SF_HTTP_E_HOST:
        return "missing, duplicate or invalid Host";
    case SF_HTTP_E_CONTENT_LENGTH:
        return "invalid or differing Content-Length";
    case SF_HTTP_E_TRANSFER_ENCODING:
        return "unsupported Transfer-Encoding";
    case SF_HTTP_E_CL_AND_TE:
        return "both Content-Length and Transfer-Encoding";
    case SF_HTTP_E_STATUS:
        return "invalid status line";
    default:
        return "invalid message";
    }
}

/* Chunked decoder states. */
enum {
    CH_SIZE,    /* hex digits of a chunk size */
    CH_EXT,     /* after the size: chunk extensions up to CR */
    CH_SIZE_LF, /* CR seen after the size line, LF due */
    CH_DATA,    /* chunk data */
    CH_DATA_CR, /* CRLF after chunk data */
    CH_DATA_LF,
    CH_TRAILER,       /* start of a trailer line, or the final CRLF */
    CH_TRAILER_NAME,  /* field-name up to its ':' */
    CH_TRAILER_VALUE, /* field-value up to CR */
    CH_TRAILER_LF,
    CH_END_LF, /* the final CRLF's LF */
    CH_DONE,
};

/* Limits that keep a hostile peer from making us scan forever without progress. */
#define CHUNK_LINE_MAX    4096
#define CHUNK_TRAILER_MAX 16384
#define CHUNK_MAX_DIGITS  15

void sf_chunked_init(sf_chunked *c)
{
    memset(c, 0, sizeof(*c));
    c->state = CH_SIZE;
}

static int hexval(unsigned char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

ssize_t sf_chunked_parse(sf_chunked *c, const char *buf, size_t len, size_t *data_len)
{
    size_t i = 0;
    *data_len = 0;
    while (i < len) {
        unsigned char ch = (unsigned char)buf[i];
        switch (c->state) {
        case CH_SIZE: {
            int v = hexval(ch);
            if (v >= 0) {
                if (++c->digits > CHUNK_MAX_DIGITS)
                    return SF_CHUNK_E_OVERFLOW;
                c->remaining = (c->remaining << 4) | (uint64_t)v;
                i++;
                break;
            }
            if (c->digits == 0)
                return SF_CHUNK_E_SYNTAX; /* "", "+1", "-1", " 1", "0x1" all end here */
            if (ch == '\r') {
                c->state = CH_SIZE_LF;
            } else if (ch == ';') {
                c->state = CH_EXT;
                c->line_bytes = c->digits;
            } else {
                return SF_CHUNK_E_SYNTAX; /* "1 ", "1x", bare LF */
            }
            i++;
            break;
        }
        case CH_EXT:
            /* chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] ): checked loosely
             * for byte classes only; the extensions are dropped, never forwarded. */
            if (ch == '\r') {
                c->state = CH_SIZE_LF;
            } else if (!(tchar[ch] || ch == ';' || ch == '=' || ch == ' ' || ch == '\t' ||
                         ch == '"' || (ch >= 0x20 && ch != 0x7f && ch < 0x80))) {
                return SF_CHUNK_E_SYNTAX;
            }
            if (++c->line_bytes > CHUNK_LINE_MAX)
                return SF_CHUNK_E_SYNTAX;
            i++;
            break;
        case CH_SIZE_LF:
            if (ch != '\n')
                return SF_CHUNK_E_SYNTAX;
            i++;
            c->digits = 0;
            c->line_bytes = 0;
            c->state = c->remaining == 0 ? CH_TRAILER : CH_DATA;
            if (c->state == CH_DATA) {
                size_t n = len - i;
                *data_len = c->remaining < n ? (size_t)c->remaining : n;
                return (ssize_t)i;
            }
            break;
        case CH_DATA: {
            /* The caller has not taken the data yet: report it again. */
            size_t n = len - i;
            *data_len = c->remaining < n ? (size_t)c->remaining : n;
            return (ssize_t)i;
        }
        case CH_DATA_CR:
            if (ch != '\r')
                return SF_CHUNK_E_SYNTAX; /* chunk data longer than its size */
            c->state = CH_DATA_LF;
            i++;
            break;
        case CH_DATA_LF:
            if (ch != '\n')
                return SF_CHUNK_E_SYNTAX;
            c->state = CH_SIZE;
            c->remaining = 0;
            i++;
            break;
        case CH_TRAILER:
            if (ch == '\r') {
                c->state = CH_END_LF;
            } else if (tchar[ch]) {
                c->state = CH_TRAILER_NAME;
            } else {
                return SF_CHUNK_E_TRAILER; /* obs-fold, bare LF, non-token */
            }
            if (++c->trailer_bytes > CHUNK_TRAILER_MAX)
                return SF_CHUNK_E_TRAILER;
            i++;
            break;
        case CH_TRAILER_NAME:
            /* field-line = field-name ":" OWS field-value OWS (RFC 9112 §7.1.2, §5): a line
             * with no colon, a space before it or a non-token name is refused as in a head */
            if (ch == ':')
                c->state = CH_TRAILER_VALUE;
            else if (!tchar[ch])
                return SF_CHUNK_E_TRAILER;
            if (++c->trailer_bytes > CHUNK_TRAILER_MAX)
                return SF_CHUNK_E_TRAILER;
            i++;
            break;
        case CH_TRAILER_VALUE:
            if (ch == '\r')
                c->state = CH_TRAILER_LF;
            else if (!value_char(ch))
                return SF_CHUNK_E_TRAILER; /* NUL, control bytes, bare LF */
            if (++c->trailer_bytes > CHUNK_TRAILER_MAX)
                return SF_CHUNK_E_TRAILER;
            i++;
            break;
        case CH_TRAILER_LF:
            if (ch != '\n')
                return SF_CHUNK_E_TRAILER;
            c->state = CH_TRAILER;
            i++;
            break;
        case CH_END_LF:
            if (ch != '\n')
                return SF_CHUNK_E_SYNTAX;
            c->state = CH_DONE;
            i++;
            return (ssize_t)i;
        case CH_DONE:
            return (ssize_t)i;
        }
    }
    return (ssize_t)i;
}

void sf_chunked_data(sf_chunked *c, size_t n)
{
    /* n == 0 is allowed in any state (a caller may pass back every data_len it got) and must not
     * end a chunk that is not in its data, nor undo CH_DONE. */
    if (c->state != CH_DATA || n == 0)
        return;
    c->remaining -= n;
    if (c->remaining == 0)
        c->state = CH_DATA_CR;
}

int sf_chunked_done(const sf_chunked *c)
{
    return c->state == CH_DONE;
}

int sf_http_response_body(const sf_http_response *resp, int is_head)
{
    if (is_head || resp->status == 204 || resp->status == 304)
        return SF_HTTP_BODY_NONE;
    if (resp->flags & SF_HTTP_F_CHUNKED)
        return SF_HTTP_BODY_CHUNKED;
    if (resp->content_length >= 0)
        return resp->content_length > 0 ? SF_HTTP_BODY_LENGTH : SF_HTTP_BODY_NONE;
    return SF_HTTP_BODY_CLOSE;
}

int sf_http_response_reusable(const sf_http_response *resp, int body)
{
    return body != SF_HTTP_BODY_CLOSE && !(resp->flags & SF_HTTP_F_CONN_CLOSE) &&
           (resp->minor_version == 1 || (resp->flags & SF_HTTP_F_CONN_KEEPALIVE));
}
