/* libFuzzer target: the chunked decoder (sf_chunked_*, proxy/http_parse.c) and the response
 * body reader on top of it (sf_body_read, proxy/body.c), fed the same bytes in different splits.
 *
 * Input: byte 0 = how to feed (bits 0-2: number of cut points, bits 3-4: how much data the
 * caller takes per call: all, 1 byte, byte 1's value, or alternately 1 and all; bit 5: also
 * call sf_chunked_data(c, 0) after every framing step, which the contract allows in any
 * state), byte 1 = the take size, then one byte per cut point (a fraction of the body, in 255ths),
 * then the chunked body. Beyond "no crash": decoding in one piece, in the pieces the cuts make
 * with partial takes, and through sf_body_read over an evbuffer whose segments are those
 * pieces, must give the same verdict (done / more needed / the same error), the same data and,
 * when done, the same end (what follows is the next message and must stay untouched); and the
 * one-piece result must be the reference decoder's (fuzz_body.h). Each call reads an exact-size
 * heap copy, so a read past what was handed over is an ASan report. */
#include "fuzz_body.h"

#define MAX_CUTS 7

typedef struct {
    int take_mode; /* 0 all, 1 one byte, 2 take_size, 3 alternate 1 and all */
    size_t take_size;
    int zero_calls;
} feed_opts;

/* Decodes in pieces ending at cuts[] (ascending, <= n), the way a connection's input buffer is
 * drained: framing consumed, then data taken (maybe not all of it), the rest kept for the next
 * read. */
static void decode_pieces(const char *in, size_t n, const size_t *cuts, size_t ncuts,
                          const feed_opts *o, fuzz_decoded *out)
{
    sf_chunked c;
    sf_chunked_init(&c);
    out->data = fuzz_alloc(n);
    out->len = 0;
    out->consumed = 0;
    out->verdict = FUZZ_INCOMPLETE;
    size_t start = 0, end = 0, calls = 0;
    for (size_t k = 0; k <= ncuts; k++) {
        end = k < ncuts && cuts[k] > end ? cuts[k] : k < ncuts ? end : n;
        while (start < end) {
            FUZZ_CHECK(++calls <= 4 * n + 16, "no progress after %zu calls", calls);
            char *b = fuzz_dup(in + start, end - start);
            size_t dlen = 12345;
            ssize_t f = sf_chunked_parse(&c, b, end - start, &dlen);
            free(b);
            if (f < 0) {
                FUZZ_CHECK(f == SF_CHUNK_E_SYNTAX || f == SF_CHUNK_E_OVERFLOW ||
                               f == SF_CHUNK_E_TRAILER,
                           "unknown error %zd", f);
                out->verdict = (int)f;
                return;
            }
            FUZZ_CHECK((size_t)f <= end - start, "consumed %zd of %zu", f, end - start);
            FUZZ_CHECK(dlen <= end - start - (size_t)f, "data_len %zu past the %zu bytes left",
                       dlen, end - start - (size_t)f);
            start += (size_t)f;
            if (o->zero_calls)
                sf_chunked_data(&c, 0);
            size_t take = dlen;
            if (o->take_mode == 1 || (o->take_mode == 3 && calls % 2 == 0))
                take = dlen < 1 ? dlen : 1;
            else if (o->take_mode == 2 && take > o->take_size)
                take = o->take_size;
            memcpy(out->data + out->len, in + start, take);
            out->len += take;
            start += take;
            sf_chunked_data(&c, take);
            if (sf_chunked_done(&c)) {
                FUZZ_CHECK(dlen == 0, "done with %zu data bytes reported", dlen);
                out->verdict = FUZZ_DONE;
                out->consumed = start;
                /* Done is final: what follows belongs to the next message. */
                if (start < n) {
                    b = fuzz_dup(in + start, n - start);
                    f = sf_chunked_parse(&c, b, n - start, &dlen);
                    free(b);
                    FUZZ_CHECK(f == 0 && dlen == 0 && sf_chunked_done(&c),
                               "parse after done consumed %zd, data %zu", f, dlen);
                }
                return;
            }
            if (f == 0 && take == 0)
                break;
        }
    }
}

static void same(const char *what, const fuzz_decoded *a, const fuzz_decoded *b)
{
    FUZZ_CHECK(a->verdict == b->verdict, "%s: verdict %d, one piece %d", what, b->verdict,
               a->verdict);
    FUZZ_CHECK(a->len == b->len && memcmp(a->data, b->data, a->len) == 0,
               "%s: %zu data bytes, one piece %zu (or they differ)", what, b->len, a->len);
    FUZZ_CHECK(a->verdict != FUZZ_DONE || a->consumed == b->consumed,
               "%s: ends at %zu, one piece at %zu", what, b->consumed, a->consumed);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t ncuts = data[0] & 7;
    feed_opts o = {(data[0] >> 3) & 3, data[1] ? data[1] : 256, (data[0] >> 5) & 1};
    if (size < 2 + ncuts)
        return 0;
    const char *in = (const char *)data + 2 + ncuts;
    size_t n = size - 2 - ncuts, cuts[MAX_CUTS];
    for (size_t i = 0; i < ncuts; i++)
        cuts[i] = data[2 + i] * n / 255;
    for (size_t i = 1; i < ncuts; i++) /* ascending: insertion sort */
        for (size_t j = i; j > 0 && cuts[j - 1] > cuts[j]; j--) {
            size_t t = cuts[j];
            cuts[j] = cuts[j - 1];
            cuts[j - 1] = t;
        }

    static const feed_opts whole = {0, 0, 0};
    fuzz_decoded one, pieces, loose, strict;
    decode_pieces(in, n, NULL, 0, &whole, &one);
    decode_pieces(in, n, cuts, ncuts, &o, &pieces);
    same("in pieces", &one, &pieces);

    fuzz_chunked_ref(in, n, 0, &loose);
    fuzz_chunked_ref(in, n, 1, &strict);
    const fuzz_decoded *ref = loose.verdict == one.verdict ? &loose : &strict;
    same("reference decoder", ref, &one);

    fuzz_taken t;
    size_t left;
    int rc = fuzz_body_feed(SF_HTTP_BODY_CHUNKED, -1, in, n, cuts, ncuts, &t, &left);
    int want = one.verdict == FUZZ_DONE ? 1 : one.verdict == FUZZ_INCOMPLETE ? 0 : -1;
    FUZZ_CHECK(rc == want, "sf_body_read says %d, the decoder %d", rc, one.verdict);
    FUZZ_CHECK(t.len == one.len && memcmp(t.data, one.data, t.len) == 0,
               "sf_body_read took %zu bytes, the decoder gave %zu (or they differ)", t.len,
               one.len);
    FUZZ_CHECK(rc != 1 || left == n - one.consumed, "sf_body_read left %zu bytes, not %zu", left,
               n - one.consumed);

    free(one.data);
    free(pieces.data);
    free(loose.data);
    free(strict.data);
    free(t.data);
    return 0;
}
