/* libFuzzer target: the shadow comparison engine (proxy/compare.c), differentially: its quick
 * allocation-free equality walk against the jansson path that names differences.
 *
 * Input: byte 0 = the body mode (bits 0-1: auto, bytes, json, none), byte 1 = how many of a
 * fixed list of ignore patterns apply (bits 0-1), then two bodies, legacy's and the function's,
 * separated by the first 0xff byte (a byte valid JSON never holds; no 0xff: split in half).
 * Beyond "no crash, no leak": comparing with the quick check first or through jansson alone
 * gives the same outcome (result, every difference's path and values, notes); when the quick
 * check alone says "equal", jansson finds no difference; comparing in the other direction gives
 * the same result with each difference's values swapped; every outcome is well formed (MATCH
 * has no differences, at most SF_CMP_MAX_DIFFS are listed, paths and values cut to their caps,
 * counts that add up). The learned noise (from the two bodies as two answers of legacy) lists
 * at most SF_NOISE_MAX_PATHS paths, strongest first, each with the score sf_noise_score gives. */
#include "compare.h"
#include "fuzz.h"

/* The ellipsis a cut string ends with is 3 bytes; a byte body's value also carries its length
 * (" (N bytes)"), hence the slack. */
#define CUT_SLACK 64

static int same_str(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static void check_outcome(const sf_cmp_outcome *o, const char *what)
{
    FUZZ_CHECK(o->result == SF_CMP_MATCH || o->result == SF_CMP_MISMATCH ||
                   o->result == SF_CMP_NOISE,
               "%s: result %d", what, (int)o->result);
    FUZZ_CHECK(o->ndiffs <= SF_CMP_MAX_DIFFS && (o->ndiffs == 0) == (o->diffs == NULL),
               "%s: %zu diffs", what, o->ndiffs);
    switch (o->result) {
    case SF_CMP_MATCH:
        FUZZ_CHECK(o->ndiffs == 0 && o->more == 0 && o->nmismatch == 0 && o->nnoise == 0,
                   "%s: a match with differences", what);
        break;
    case SF_CMP_MISMATCH:
        FUZZ_CHECK(o->nmismatch > 0 && o->ndiffs + o->more == o->nmismatch,
                   "%s: mismatch counts %zu + %zu != %zu", what, o->ndiffs, o->more, o->nmismatch);
        break;
    case SF_CMP_NOISE:
        FUZZ_CHECK(o->nmismatch == 0 && o->nnoise > 0 && o->ndiffs + o->more == o->nnoise,
                   "%s: noise counts", what);
        break;
    }
    for (size_t i = 0; i < o->ndiffs; i++) {
        const sf_cmp_diff *d = &o->diffs[i];
        FUZZ_CHECK(d->path != NULL && strlen(d->path) <= SF_CMP_PATH_MAX + CUT_SLACK,
                   "%s: diff %zu path", what, i);
        FUZZ_CHECK(d->legacy != NULL || d->function != NULL, "%s: diff %zu has no value", what, i);
        FUZZ_CHECK(d->legacy == NULL || strlen(d->legacy) <= SF_CMP_VALUE_MAX + CUT_SLACK,
                   "%s: diff %zu legacy value of %zu bytes", what, i, strlen(d->legacy));
        FUZZ_CHECK(d->function == NULL || strlen(d->function) <= SF_CMP_VALUE_MAX + CUT_SLACK,
                   "%s: diff %zu function value of %zu bytes", what, i, strlen(d->function));
        /* Bodies differing as bytes are shown from just before the first differing byte, so
         * the two values differ, unless the bytes that differ are ill-formed UTF-8 (each
         * rendered as U+FFFD). */
        FUZZ_CHECK(strcmp(d->path, "body") != 0 || !same_str(d->legacy, d->function) ||
                       strstr(d->legacy, "\xef\xbf\xbd") != NULL,
                   "%s: the body differs, yet both sides render as %s", what, d->legacy);
    }
}

static void same_outcome(const sf_cmp_outcome *x, const sf_cmp_outcome *y, int swapped,
                         const char *what)
{
    unsigned nx = x->notes, ny = y->notes;
    if (swapped) { /* which side was not JSON swaps too */
        unsigned l = ny & SF_CMP_NOTE_LEGACY_NOT_JSON, f = ny & SF_CMP_NOTE_FUNCTION_NOT_JSON;
        ny &= ~(SF_CMP_NOTE_LEGACY_NOT_JSON | SF_CMP_NOTE_FUNCTION_NOT_JSON);
        ny |= (l ? SF_CMP_NOTE_FUNCTION_NOT_JSON : 0) | (f ? SF_CMP_NOTE_LEGACY_NOT_JSON : 0);
    }
    FUZZ_CHECK(x->result == y->result && x->ndiffs == y->ndiffs && x->more == y->more &&
                   x->nmismatch == y->nmismatch && x->nnoise == y->nnoise &&
                   x->body_as == y->body_as && nx == ny,
               "%s: result %d/%d, diffs %zu/%zu, more %zu/%zu, body_as %d/%d, notes %#x/%#x", what,
               (int)x->result, (int)y->result, x->ndiffs, y->ndiffs, x->more, y->more, x->body_as,
               y->body_as, nx, ny);
    /* Differences come in legacy's document order: the other way round, the same set in
     * another order (paths cut at SF_CMP_PATH_MAX may repeat: pair each with an unused one
     * that reads the same), and when some were not listed, maybe not the same ones. */
    if (swapped && x->more > 0)
        return;
    unsigned char used[SF_CMP_MAX_DIFFS] = {0};
    for (size_t i = 0; i < x->ndiffs; i++) {
        const sf_cmp_diff *a = &x->diffs[i];
        size_t j = swapped ? 0 : i, last = swapped ? y->ndiffs : i + 1;
        for (; j < last; j++) {
            const sf_cmp_diff *b = &y->diffs[j];
            const char *bl = swapped ? b->function : b->legacy;
            const char *bf = swapped ? b->legacy : b->function;
            if (!used[j] && strcmp(a->path, b->path) == 0 && same_str(a->legacy, bl) &&
                same_str(a->function, bf))
                break;
        }
        FUZZ_CHECK(j < last, "%s: diff %zu: %s (%s | %s) has no counterpart", what, i, a->path,
                   a->legacy ? a->legacy : "-", a->function ? a->function : "-");
        used[j] = 1;
    }
}

static void check_noise(const sf_noise *nz)
{
    const char *paths[SF_NOISE_MAX_PATHS];
    unsigned scores[SF_NOISE_MAX_PATHS];
    size_t n = sf_noise_paths(nz, paths, scores, SF_NOISE_MAX_PATHS);
    FUZZ_CHECK(n <= SF_NOISE_MAX_PATHS, "%zu noise paths", n);
    for (size_t i = 0; i < n; i++) {
        FUZZ_CHECK(scores[i] > 0 && scores[i] <= SF_NOISE_SCORE_MAX, "noise score %u", scores[i]);
        FUZZ_CHECK(i == 0 || scores[i] <= scores[i - 1], "noise paths not strongest first");
        FUZZ_CHECK(sf_noise_score(nz, paths[i]) == scores[i], "noise score of %s", paths[i]);
        FUZZ_CHECK(paths[i][0] == '\0' || paths[i][0] == '/', "noise path '%s'", paths[i]);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char i1[] = "/a/*/b", i2[] = "/x~1y", i3[] = "/*/0";
    static char *ignore[] = {i1, i2, i3};
    if (size < 2)
        return 0;
    sf_shadow_conf c;
    memset(&c, 0, sizeof(c));
    c.compare_status = 1;
    c.body_mode = data[0] & 3;
    c.ignore = ignore;
    c.nignore = data[1] & 3;
    data += 2;
    size -= 2;
    const uint8_t *sep = memchr(data, 0xff, size);
    size_t la = sep != NULL ? (size_t)(sep - data) : size / 2;
    size_t off = la + (sep != NULL);
    char *a = fuzz_dup(data, la), *b = fuzz_dup(data + off, size - off);
    size_t lb = size - off;

    static const sf_http_header json = {{"Content-Type", 12}, {"application/json", 16}};
    sf_cmp_side x = {200, &json, 1, a, la, la, 0, NULL}, y = {200, &json, 1, b, lb, lb, 0, NULL};
    sf_noise *nz = sf_noise_create();
    if (nz == NULL)
        abort();
    FUZZ_CHECK(sf_noise_learn(nz, &x, &y) >= 0, "learn");
    FUZZ_CHECK(sf_noise_learn(nz, &y, &x) >= 0, "learn");
    FUZZ_CHECK(sf_noise_rounds(nz) <= 2, "rounds");
    check_noise(nz);

    sf_cmp_outcome quick, slow, back;
    FUZZ_CHECK(sf_compare_bodies(&c, nz, a, la, b, lb, 0, &quick) == 0, "compare");
    FUZZ_CHECK(sf_compare_bodies(&c, nz, a, la, b, lb, SF_CMP_F_JANSSON_ONLY, &slow) == 0,
               "compare");
    check_outcome(&quick, "quick");
    check_outcome(&slow, "jansson");
    same_outcome(&quick, &slow, 0, "quick check, then jansson only");
    sf_cmp_outcome_dispose(&quick);
    sf_cmp_outcome_dispose(&slow);

    FUZZ_CHECK(sf_compare_bodies(&c, NULL, a, la, b, lb, 0, &quick) == 0, "compare");
    FUZZ_CHECK(sf_compare_bodies(&c, NULL, b, lb, a, la, 0, &back) == 0, "compare");
    check_outcome(&back, "reversed");
    same_outcome(&quick, &back, 1, "the other way round");
    sf_cmp_outcome_dispose(&quick);
    sf_cmp_outcome_dispose(&back);

    c.body_mode = SF_BODY_JSON;
    if (sf_cmp_json_equal(&c, a, la, b, lb)) {
        FUZZ_CHECK(sf_compare_bodies(&c, NULL, a, la, b, lb, SF_CMP_F_JANSSON_ONLY, &slow) == 0,
                   "compare");
        FUZZ_CHECK(slow.result == SF_CMP_MATCH,
                   "the quick check says equal, jansson finds %zu differences (first at %s)",
                   slow.nmismatch, slow.ndiffs ? slow.diffs[0].path : "?");
        sf_cmp_outcome_dispose(&slow);
    }
    sf_noise_destroy(nz);
    free(a);
    free(b);
    return 0;
}
