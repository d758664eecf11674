/* Helpers shared by the libFuzzer targets in tests/fuzz/: invariant checks that name what
 * failed, exact-size copies (so that a read one byte past an input is an ASan report, not a
 * silent read of the fuzzer's next byte) and the header-line rules every parsed head obeys. */
#ifndef SF_FUZZ_H
#define SF_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant: on failure, say which one and where, then abort so libFuzzer keeps the input. */
#define FUZZ_CHECK(cond, ...)                                                                      \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant failed: %s: ", __FILE__, __LINE__, #cond);           \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* A heap copy of exactly len bytes (a 1-byte block for len 0, never read). */
static inline char *fuzz_dup(const void *p, size_t len)
{
    char *b = malloc(len ? len : 1);
    if (b == NULL)
        abort();
    if (len)
        memcpy(b, p, len);
    return b;
}

/* n bytes of heap (a 1-byte block for 0). */
static inline char *fuzz_alloc(size_t n)
{
    char *b = malloc(n ? n : 1);
    if (b == NULL)
        abort();
    return b;
}

/* True when s lies inside [lo, hi). An empty slice may sit at hi. */
static inline int fuzz_inside(sf_slice s, const char *lo, const char *hi)
{
    return s.p != NULL && s.p >= lo && s.p <= hi && s.len <= (size_t)(hi - s.p);
}

static inline int fuzz_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* field-value bytes (RFC 9110 §5.5): VCHAR, obs-text, SP, HTAB. */
static inline int fuzz_value_char(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/* 1*DIGIT, or a comma list of identical ones (RFC 9112 §6.3 item 5), below 10^18: the value,
 * or -1. Written apart from the parser's so that the two readings are compared. */
static inline int64_t fuzz_content_length(sf_slice v)
{
    int64_t result = -1;
    size_t i = 0;
    while (i <= v.len) {
        size_t start = i;
        int64_t n = 0;
        for (; i < v.len && v.p[i] >= '0' && v.p[i] <= '9'; i++) {
            if (i - start == 18)
                return -1;
            n = n * 10 + (v.p[i] - '0');
        }
        if (i == start || (result >= 0 && n != result))
            return -1;
        result = n;
        while (i < v.len && (v.p[i] == ' ' || v.p[i] == '\t'))
            i++;
        if (i == v.len)
            return result;
        if (v.p[i++] != ',')
            return -1;
        while (i < v.len && (v.p[i] == ' ' || v.p[i] == '\t'))
            i++;
    }
    return -1;
}

/* What every parsed head's header lines must satisfy, whoever sent it: each slice inside the
 * head's header section [lo, hi), each name a non-empty token starting a line and followed by
 * ':', each value free of CR, LF, NUL and other controls with no surrounding whitespace; the
 * Content-Length the parser reported is the one every Content-Length header spells; at most
 * one Transfer-Encoding, and chunked only with it and without Content-Length. */
static inline void fuzz_check_headers(const sf_http_header *h, size_t n, const char *lo,
                                      const char *hi, int64_t content_length, unsigned flags)
{
    int64_t cl = -1;
    size_t te = 0;
    const sf_http_header *prev = NULL;
    for (size_t i = 0; i < n; i++) {
        sf_slice name = h[i].name, value = h[i].value;
        FUZZ_CHECK(fuzz_inside(name, lo, hi), "header %zu name outside the head", i);
        FUZZ_CHECK(fuzz_inside(value, lo, hi), "header %zu value outside the head", i);
        FUZZ_CHECK(name.len > 0, "header %zu: empty name", i);
        FUZZ_CHECK(name.p == lo || (name.p - lo >= 2 && name.p[-2] == '\r' && name.p[-1] == '\n'),
                   "header %zu does not start a line", i);
        FUZZ_CHECK(prev == NULL || name.p > prev->value.p, "header %zu out of order", i);
        for (size_t j = 0; j < name.len; j++)
            FUZZ_CHECK(fuzz_tchar((unsigned char)name.p[j]), "header %zu: name byte 0x%02x", i,
                       (unsigned char)name.p[j]);
        FUZZ_CHECK(name.p + name.len < hi && name.p[name.len] == ':',
                   "header %zu: name not followed by ':'", i);
        FUZZ_CHECK(value.p > name.p + name.len, "header %zu: value before the colon", i);
        for (size_t j = 0; j < value.len; j++)
            FUZZ_CHECK(fuzz_value_char((unsigned char)value.p[j]), "header %zu: value byte 0x%02x",
                       i, (unsigned char)value.p[j]);
        if (value.len > 0) {
            FUZZ_CHECK(value.p[0] != ' ' && value.p[0] != '\t', "header %zu: leading OWS", i);
            FUZZ_CHECK(value.p[value.len - 1] != ' ' && value.p[value.len - 1] != '\t',
                       "header %zu: trailing OWS", i);
        }
        if (SF_HTTP_NAME_IS(name, "content-length")) {
            int64_t v = fuzz_content_length(value);
            FUZZ_CHECK(v >= 0, "accepted a malformed Content-Length (header %zu)", i);
            FUZZ_CHECK(cl < 0 || cl == v, "accepted differing Content-Lengths");
            cl = v;
        }
        if (SF_HTTP_NAME_IS(name, "transfer-encoding")) {
            FUZZ_CHECK(SF_HTTP_NAME_IS(value, "chunked"),
                       "accepted a Transfer-Encoding other than chunked");
            te++;
        }
        prev = &h[i];
    }
    FUZZ_CHECK(content_length == cl, "content_length %lld, headers say %lld",
               (long long)content_length, (long long)cl);
    FUZZ_CHECK(te <= 1, "accepted %zu Transfer-Encoding headers", te);
    FUZZ_CHECK(!!(flags & SF_HTTP_F_CHUNKED) == (te == 1), "chunked flag without the header");
    FUZZ_CHECK(te == 0 || cl < 0, "accepted both Content-Length and Transfer-Encoding");
}

#endif
