/* Body framing helpers for the fuzz targets: a reference chunked decoder written apart from
 * proxy/http_parse.c (one pass over the whole input, straight from RFC 9112 §7.1 and the
 * contract in http_parse.h), and a driver that feeds sf_body_read (proxy/body.c) its input in
 * pieces, each a separate evbuffer segment in its own heap block. */
#ifndef SF_FUZZ_BODY_H
#define SF_FUZZ_BODY_H

#include <event2/buffer.h>

#include "body.h"
#include "fuzz.h"

/* The decoder's limits (http_parse.c): a size line's bytes after its digits' start, and the
 * trailer section's bytes, CRs counted, the LFs after trailer lines and the final LF not. */
#define FUZZ_CHUNK_LINE_MAX    4096
#define FUZZ_CHUNK_TRAILER_MAX 16384
#define FUZZ_CHUNK_MAX_DIGITS  15

enum { FUZZ_INCOMPLETE = 0, FUZZ_DONE = 1 }; /* else an SF_CHUNK_E_* code */

typedef struct {
    int verdict;
    size_t consumed; /* FUZZ_DONE: bytes up to the final LF */
    char *data;      /* the chunks' data, in order, up to where the verdict was reached */
    size_t len;
} fuzz_decoded;

static inline int fuzz_hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* strict_trailers: a trailer line is field-name ":" field-value, as http_parse.h promises
 * ("parsed like header lines"); else a token byte then any field-value bytes (what the decoder
 * checks today). Either reading is accepted from the decoder by the targets. */
static inline void fuzz_chunked_ref(const char *in, size_t n, int strict_trailers,
                                    fuzz_decoded *out)
{
    size_t i = 0, tb = 0;
    out->data = fuzz_alloc(n);
    out->len = 0;
    out->consumed = 0;
#define NEED()                                                                                     \
    do {                                                                                           \
        if (i >= n) {                                                                              \
            out->verdict = FUZZ_INCOMPLETE;                                                        \
            return;                                                                                \
        }                                                                                          \
    } while (0)
#define FAIL(code)                                                                                 \
    do {                                                                                           \
        out->verdict = (code);                                                                     \
        return;                                                                                    \
    } while (0)
#define TRAILER_BYTE()                                                                             \
    do {                                                                                           \
        if (++tb > FUZZ_CHUNK_TRAILER_MAX)                                                         \
            FAIL(SF_CHUNK_E_TRAILER);                                                              \
    } while (0)
    for (;;) {
        uint64_t size = 0;
        size_t digits = 0;
        int v;
        while (i < n && (v = fuzz_hexval((unsigned char)in[i])) >= 0) {
            if (++digits > FUZZ_CHUNK_MAX_DIGITS)
                FAIL(SF_CHUNK_E_OVERFLOW);
            size = size * 16 + (uint64_t)v;
            i++;
        }
        NEED();
        if (digits == 0)
            FAIL(SF_CHUNK_E_SYNTAX); /* no digit: "+1", "-1", " 1", "0x1", "" */
        if (in[i] == ';') {
            size_t line = digits;
            for (i++;; i++) {
                NEED();
                unsigned char c = (unsigned char)in[i];
                if (c != '\r' && c != '\t' && (c < 0x20 || c >= 0x7f))
                    FAIL(SF_CHUNK_E_SYNTAX);
                if (++line > FUZZ_CHUNK_LINE_MAX)
                    FAIL(SF_CHUNK_E_SYNTAX);
                if (c == '\r')
                    break;
            }
        } else if (in[i] != '\r') {
            FAIL(SF_CHUNK_E_SYNTAX);
        }
        i++;
        NEED();
        if (in[i++] != '\n')
            FAIL(SF_CHUNK_E_SYNTAX);
        if (size == 0)
            break;
        size_t take = size < n - i ? (size_t)size : n - i;
        memcpy(out->data + out->len, in + i, take);
        out->len += take;
        i += take;
        if (take < size)
            FAIL(FUZZ_INCOMPLETE);
        NEED();
        if (in[i++] != '\r')
            FAIL(SF_CHUNK_E_SYNTAX); /* data longer than its size */
        NEED();
        if (in[i++] != '\n')
            FAIL(SF_CHUNK_E_SYNTAX);
    }
    for (;;) {
        NEED();
        unsigned char c = (unsigned char)in[i];
        if (c == '\r') {
            TRAILER_BYTE();
            i++;
            NEED();
            if (in[i++] != '\n')
                FAIL(SF_CHUNK_E_SYNTAX);
            out->consumed = i;
            FAIL(FUZZ_DONE);
        }
        if (!fuzz_tchar(c))
            FAIL(SF_CHUNK_E_TRAILER);
        int colon = 0;
        for (;;) {
            TRAILER_BYTE();
            i++;
            NEED();
            c = (unsigned char)in[i];
            if (c == '\r')
                break;
            if (strict_trailers && !colon && c == ':')
                colon = 1;
            else if (strict_trailers && !colon ? !fuzz_tchar(c) : !fuzz_value_char(c))
                FAIL(SF_CHUNK_E_TRAILER);
        }
        if (strict_trailers && !colon)
            FAIL(SF_CHUNK_E_TRAILER);
        TRAILER_BYTE();
        i++;
        NEED();
        if (in[i++] != '\n')
            FAIL(SF_CHUNK_E_TRAILER);
    }
#undef NEED
#undef FAIL
#undef TRAILER_BYTE
}

/* What the driver's take callback collects. */
typedef struct {
    struct evbuffer *in;
    char *data;
    size_t len, cap;
} fuzz_taken;

static inline void fuzz_on_take(void *arg, struct evbuffer *in, size_t n)
{
    fuzz_taken *t = arg;
    FUZZ_CHECK(in == t->in, "take called with another buffer");
    FUZZ_CHECK(n > 0 && n <= evbuffer_get_length(in), "take %zu of %zu buffered bytes", n,
               evbuffer_get_length(in));
    FUZZ_CHECK(n <= t->cap - t->len, "took more bytes than were fed");
    FUZZ_CHECK(evbuffer_remove(in, t->data + t->len, n) == (int)n, "evbuffer_remove");
    t->len += n;
}

static inline void fuzz_free_piece(const void *data, size_t len, void *arg)
{
    (void)len;
    (void)arg;
    free((void *)(uintptr_t)data);
}

/* Feeds bytes[0..n) to a body reader of mode in pieces ending at cuts[0..ncuts) (ascending,
 * each <= n; the last piece ends at n), calling sf_body_read after each piece until it returns
 * 1 or -1; the pieces after that are still added. Returns the last sf_body_read result; t gets
 * the data taken and *left the bytes still buffered at the end. */
static inline int fuzz_body_feed(int mode, int64_t content_length, const char *bytes, size_t n,
                                 const size_t *cuts, size_t ncuts, fuzz_taken *t, size_t *left)
{
    sf_body_reader r;
    struct evbuffer *in = evbuffer_new();
    if (in == NULL)
        abort();
    t->in = in;
    t->data = fuzz_alloc(n);
    t->len = 0;
    t->cap = n;
    sf_body_reader_init(&r, mode, content_length);
    int rc = 0, over = 0;
    size_t from = 0;
    for (size_t k = 0; k <= ncuts; k++) {
        size_t to = k < ncuts ? cuts[k] : n;
        if (to < from)
            to = from;
        if (to > from) {
            char *piece = fuzz_dup(bytes + from, to - from);
            if (evbuffer_add_reference(in, piece, to - from, fuzz_free_piece, NULL) < 0)
                abort();
        }
        from = to;
        if (!over) {
            size_t before = evbuffer_get_length(in), taken = t->len;
            rc = sf_body_read(&r, in, fuzz_on_take, t);
            FUZZ_CHECK(rc >= -1 && rc <= 1, "sf_body_read returned %d", rc);
            FUZZ_CHECK(evbuffer_get_length(in) + (t->len - taken) <= before,
                       "the buffer grew while reading");
            over = rc != 0;
        }
    }
    *left = evbuffer_get_length(in);
    evbuffer_free(in);
    return rc;
}

#endif
