/* The shadow comparison engine: status, listed headers and bodies of two answers, JSON node by
 * node through jansson (after a quick strict check that settles the equal ones), and the noise
 * a route learns from legacy answering the same request twice. Differences are rendered only
 * when they are listed. */
#include "compare.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ELLIPSIS     "\xe2\x80\xa6" /* U+2026, what a cut string ends with */
#define ELLIPSIS_LEN 3
#define SLACK        64 /* room past a text's cap for the ellipsis and a body's length */

/* ---- bounded text: atoms (a character, an escape) are written whole or not at all ---- */

typedef struct {
    char *p;
    size_t len, cap;
    int cut; /* an atom did not fit: nothing more is written */
} text;

static int put(text *t, const char *s, size_t n)
{
    if (t->cut || n > t->cap - t->len) {
        t->cut = 1;
        return -1;
    }
    memcpy(t->p + t->len, s, n);
    t->len += n;
    return 0;
}

static int put1(text *t, char c)
{
    return put(t, &c, 1);
}

/* Past the cap, into the slack: only for the ellipsis and a body's length. */
static void put_tail(text *t, const char *s)
{
    size_t n = strlen(s);
    if (n > t->cap + SLACK - t->len)
        n = t->cap + SLACK - t->len;
    memcpy(t->p + t->len, s, n);
    t->len += n;
}

/* A malloc'd copy of t with "…" when it was cut; NULL when out of memory. */
static char *finish(text *t)
{
    if (t->cut)
        put_tail(t, ELLIPSIS);
    char *s = malloc(t->len + 1);
    if (s != NULL) {
        memcpy(s, t->p, t->len);
        s[t->len] = '\0';
    }
    return s;
}

/* Length of the well-formed UTF-8 sequence at s (n bytes available), 0 when ill-formed
 * (RFC 3629: no overlongs, no surrogates, nothing past U+10FFFF). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0], cp, min;
    size_t k;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        k = 2, cp = c & 0x1f, min = 0x80;
    else if ((c & 0xf0) == 0xe0)
        k = 3, cp = c & 0x0f, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4)
        k = 4, cp = c & 0x07, min = 0x10000;
    else
        return 0;
    if (n < k)
        return 0;
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return k;
}

/* The inside of a JSON string for s[0..n): control characters (C0, DEL and C1, which could
 * drive a terminal) escaped, ill-formed UTF-8 replaced by U+FFFD. */
static void put_escaped(text *t, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n && !t->cut;) {
        unsigned c = u[i];
        size_t k = utf8_len(u + i, n - i);
        if (k == 0) {
            put(t, "\xef\xbf\xbd", 3);
            i++;
            continue;
        }
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            put(t, e, 2);
        } else if (c == '\n') {
            put(t, "\\n", 2);
        } else if (c == '\r') {
            put(t, "\\r", 2);
        } else if (c == '\t') {
            put(t, "\\t", 2);
        } else if (c < 0x20 || c == 0x7f || (c == 0xc2 && u[i + 1] < 0xa0)) {
            unsigned cp = c == 0xc2 ? u[i + 1] : c;
            char e[6] = {'\\', 'u', '0', '0', hex[cp >> 4], hex[cp & 15]};
            put(t, e, 6);
        } else {
            put(t, s + i, k);
        }
        i += k;
    }
}

static void put_string(text *t, const char *s, size_t n)
{
    put1(t, '"');
    put_escaped(t, s, n);
    put1(t, '"');
}

/* The shortest of %.15g..%.17g that reads back as d, with ".0" when it looks like an integer
 * (so that 1.0 and 1 render apart when they are not compared as numbers). */
static void put_real(text *t, double d)
{
    char b[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(b, sizeof(b), "%.*g", prec, d);
        if (strtod(b, NULL) == d)
            break;
    }
    size_t n = strlen(b);
    put(t, b, n);
    if (strpbrk(b, ".eEni") == NULL)
        put(t, ".0", 2);
}

/* Compact JSON of v. Each level writes a byte before going deeper, so recursion is bounded by
 * the cap. */
static void put_json(text *t, json_t *v)
{
    char b[32];
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        put1(t, '{');
        int first = 1;
        for (void *it = json_object_iter(v); it != NULL && !t->cut;
             it = json_object_iter_next(v, it)) {
            if (!first)
                put1(t, ',');
            first = 0;
            put_string(t, json_object_iter_key(it), json_object_iter_key_len(it));
            put1(t, ':');
            put_json(t, json_object_iter_value(it));
        }
        put1(t, '}');
        break;
    }
    case JSON_ARRAY:
        put1(t, '[');
        for (size_t i = 0; i < json_array_size(v) && !t->cut; i++) {
            if (i > 0)
                put1(t, ',');
            put_json(t, json_array_get(v, i));
        }
        put1(t, ']');
        break;
    case JSON_STRING:
        put_string(t, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        snprintf(b, sizeof(b), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        put(t, b, strlen(b));
        break;
    case JSON_REAL:
        put_real(t, json_real_value(v));
        break;
    case JSON_TRUE:
        put(t, "true", 4);
        break;
    case JSON_FALSE:
        put(t, "false", 5);
        break;
    case JSON_NULL:
        put(t, "null", 4);
        break;
    }
}

static char *render_json(json_t *v)
{
    char buf[SF_CMP_VALUE_MAX + SLACK];
    text t = {buf, 0, SF_CMP_VALUE_MAX, 0};
    put_json(&t, v);
    return finish(&t);
}

/* ---- paths: the walk's stack of segments, rendered and matched as JSON Pointers ---- */

typedef struct {
    const char *key; /* NULL: an array index */
    size_t len;
    size_t index;
} seg;

/* RFC 6901 §3: '~' as ~0 and '/' as ~1. stars: indices as "*" (the learned form). */
static void put_path(text *t, const seg *s, int n, int stars)
{
    char b[24];
    for (int i = 0; i < n && !t->cut; i++) {
        put1(t, '/');
        if (s[i].key == NULL) {
            if (stars)
                put1(t, '*');
            else
                put(t, b, (size_t)snprintf(b, sizeof(b), "%zu", s[i].index));
            continue;
        }
        const unsigned char *k = (const unsigned char *)s[i].key;
        for (size_t j = 0; j < s[i].len && !t->cut;) {
            size_t c = utf8_len(k + j, s[i].len - j);
            if (k[j] == '~')
                put(t, "~0", 2);
            else if (k[j] == '/')
                put(t, "~1", 2);
            else if (c > 0)
                put(t, s[i].key + j, c);
            else
                put(t, "\xef\xbf\xbd", 3);
            j += c > 0 ? c : 1;
        }
    }
}

/* One pointer segment p[0..n) (escaped) against a segment of the walk. */
static int seg_matches(const char *p, size_t n, const seg *s)
{
    if (n == 1 && p[0] == '*')
        return 1;
    if (s->key == NULL) {
        char b[24];
        int k = snprintf(b, sizeof(b), "%zu", s->index);
        return (size_t)k == n && memcmp(b, p, n) == 0;
    }
    size_t j = 0;
    for (size_t i = 0; i < n; i++, j++) {
        char c = p[i];
        if (c == '~' && i + 1 < n && (p[i + 1] == '0' || p[i + 1] == '1'))
            c = p[++i] == '0' ? '~' : '/';
        if (j >= s->len || s->key[j] != c)
            return 0;
    }
    return j == s->len;
}

/* pat covers the path s[0..n): it names the path or one of its ancestors ("" names the root). */
static int covers(const char *pat, const seg *s, int n)
{
    int k = 0;
    if (pat[0] != '\0' && pat[0] != '/')
        return 0;
    while (*pat == '/') {
        const char *start = pat + 1, *end = strchr(start, '/');
        if (end == NULL)
            end = start + strlen(start);
        if (k >= n || !seg_matches(start, (size_t)(end - start), &s[k]))
            return 0;
        k++;
        pat = end;
    }
    return 1;
}

/* ---- noise ---- */

typedef struct {
    char *path;
    unsigned score;
    uint64_t round; /* the last round it differed in */
} noise_entry;

struct sf_noise {
    noise_entry e[SF_NOISE_MAX_PATHS];
    size_t n;
    uint64_t rounds;
};

static int noise_covers(const sf_noise *nz, const seg *s, int n)
{
    for (size_t i = 0; nz != NULL && i < nz->n; i++)
        if (covers(nz->e[i].path, s, n))
            return 1;
    return 0;
}

/* path differed in round r. Returns -1 when out of memory. */
static int noise_raise(sf_noise *nz, const char *path, uint64_t r)
{
    size_t i, weakest = 0;
    for (i = 0; i < nz->n && strcmp(nz->e[i].path, path) != 0; i++)
        if (nz->e[i].score < nz->e[weakest].score)
            weakest = i;
    if (i < nz->n) {
        noise_entry *e = &nz->e[i];
        if (e->round != r) { /* /items/0/x and /items/1/x are one path: raised once a round */
            e->score = e->score + SF_NOISE_RAISE > SF_NOISE_SCORE_MAX ? SF_NOISE_SCORE_MAX
                                                                      : e->score + SF_NOISE_RAISE;
            e->round = r;
        }
        return 0;
    }
    if (nz->n == SF_NOISE_MAX_PATHS && nz->e[weakest].score >= SF_NOISE_RAISE)
        return 0;
    char *copy = strdup(path);
    if (copy == NULL)
        return -1;
    if (nz->n == SF_NOISE_MAX_PATHS)
        free(nz->e[weakest].path);
    else
        weakest = nz->n++;
    nz->e[weakest] = (noise_entry){copy, SF_NOISE_RAISE, r};
    return 0;
}

/* ---- the walk ---- */

typedef struct {
    const sf_shadow_conf *conf;
    const sf_noise *noise;
    sf_noise *learn; /* a learning round: differing paths raise their score here */
    seg path[SF_CMP_MAX_DEPTH];
    int depth;
    sf_cmp_diff real[SF_CMP_MAX_DIFFS], noisy[SF_CMP_MAX_DIFFS];
    size_t nreal, nnoisy, total_real, total_noisy;
    unsigned notes;
    int oom;
    int learned;    /* differences seen while learning */
    unsigned flags; /* SF_CMP_F_* */
} walk;

/* Field by field: the path and diff arrays are large and filled as the walk goes. */
static void walk_init(walk *w, const sf_shadow_conf *conf, const sf_noise *noise, sf_noise *learn,
                      unsigned flags)
{
    w->conf = conf;
    w->noise = noise;
    w->learn = learn;
    w->depth = 0;
    w->nreal = w->nnoisy = w->total_real = w->total_noisy = 0;
    w->notes = 0;
    w->oom = 0;
    w->learned = 0;
    w->flags = flags;
}

static int ignored(const walk *w, int body_level)
{
    for (size_t i = 0; w->conf != NULL && i < w->conf->nignore; i++) {
        const char *p = w->conf->ignore[i];
        if (body_level ? p[0] == '\0' : covers(p, w->path, w->depth))
            return 1;
    }
    return 0;
}

static void learn_here(walk *w)
{
    char buf[SF_CMP_PATH_MAX + SLACK];
    text t = {buf, 0, SF_CMP_PATH_MAX, 0};
    if (w->depth == 0) /* the root would be everything */
        return;
    w->learned++;
    put_path(&t, w->path, w->depth, 1);
    if (t.cut) /* a cut path names nothing */
        return;
    buf[t.len] = '\0';
    if (noise_raise(w->learn, buf, w->learn->rounds) < 0)
        w->oom = 1;
}

/* A difference at the current path (body_level: the body as bytes, path "body"). Returns 0
 * when it is ignored, else 1 with *slot the entry to fill, or NULL when it is only counted. */
static int classify(walk *w, int body_level, sf_cmp_diff **slot)
{
    *slot = NULL;
    if (ignored(w, body_level))
        return 0;
    if (w->learn != NULL) {
        if (!body_level)
            learn_here(w);
        return 1;
    }
    if (!body_level && noise_covers(w->noise, w->path, w->depth)) {
        /* once a real difference is in, noise ones are never listed: count only */
        if (w->total_noisy++ < SF_CMP_MAX_DIFFS && w->total_real == 0)
            *slot = &w->noisy[w->nnoisy++];
        return 1;
    }
    if (w->total_real++ < SF_CMP_MAX_DIFFS)
        *slot = &w->real[w->nreal++];
    return 1;
}

static void fill(walk *w, sf_cmp_diff *d, char *path, char *legacy, char *function, int want_legacy,
                 int want_function)
{
    d->path = path;
    d->legacy = legacy;
    d->function = function;
    if (path == NULL || (want_legacy && legacy == NULL) || (want_function && function == NULL))
        w->oom = 1;
}

static char *render_path(const walk *w)
{
    char buf[SF_CMP_PATH_MAX + SLACK];
    text t = {buf, 0, SF_CMP_PATH_MAX, 0};
    put_path(&t, w->path, w->depth, 0);
    return finish(&t);
}

/* a and b differ at the current path (either may be NULL: absent). Returns 1 when counted. */
static int differ(walk *w, json_t *a, json_t *b)
{
    sf_cmp_diff *d;
    if (!classify(w, 0, &d))
        return 0;
    if (d != NULL)
        fill(w, d, render_path(w), a ? render_json(a) : NULL, b ? render_json(b) : NULL, a != NULL,
             b != NULL);
    return 1;
}

static char *render_length(size_t n)
{
    char b[48];
    snprintf(b, sizeof(b), "(length %zu)", n);
    return strdup(b);
}

static int int_real_equal(json_int_t i, double r)
{
    /* the range check first: converting an out-of-range double is undefined */
    if (!(r >= -9223372036854775808.0 && r < 9223372036854775808.0))
        return 0;
    json_int_t t = (json_int_t)r;
    return (double)t == r && t == i;
}

static int num_equal(const json_t *a, const json_t *b)
{
    if (json_is_integer(a) && json_is_integer(b))
        return json_integer_value(a) == json_integer_value(b);
    if (json_is_real(a) && json_is_real(b))
        return json_real_value(a) == json_real_value(b);
    if (json_is_integer(a))
        return int_real_equal(json_integer_value(a), json_real_value(b));
    return int_real_equal(json_integer_value(b), json_real_value(a));
}

static int str_equal(const json_t *a, const json_t *b)
{
    size_t n = json_string_length(a);
    return n == json_string_length(b) && memcmp(json_string_value(a), json_string_value(b), n) == 0;
}

/* Equality of whole subtrees past SF_CMP_MAX_DEPTH, with the walk's rules. The parser refuses
 * nesting over JSON_PARSER_MAX_DEPTH (2048), which bounds the recursion. */
static int same(json_t *a, json_t *b)
{
    if (a == b)
        return 1;
    if (json_is_number(a) && json_is_number(b))
        return num_equal(a, b);
    if (json_typeof(a) != json_typeof(b))
        return 0;
    switch (json_typeof(a)) {
    case JSON_OBJECT:
        if (json_object_size(a) != json_object_size(b))
            return 0;
        for (void *it = json_object_iter(a); it != NULL; it = json_object_iter_next(a, it)) {
            json_t *vb =
                json_object_getn(b, json_object_iter_key(it), json_object_iter_key_len(it));
            if (vb == NULL || !same(json_object_iter_value(it), vb))
                return 0;
        }
        return 1;
    case JSON_ARRAY:
        if (json_array_size(a) != json_array_size(b))
            return 0;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!same(json_array_get(a, i), json_array_get(b, i)))
                return 0;
        return 1;
    case JSON_STRING:
        return str_equal(a, b);
    default:
        return 1; /* true, false, null: the type says it all */
    }
}

static int cmp_value(walk *w, json_t *a, json_t *b);

static int cmp_object(walk *w, json_t *a, json_t *b)
{
    int found = 0;
    size_t matched = 0;
    seg *s = &w->path[w->depth++];
    for (void *it = json_object_iter(a); it != NULL; it = json_object_iter_next(a, it)) {
        s->key = json_object_iter_key(it);
        s->len = json_object_iter_key_len(it);
        json_t *vb = json_object_getn(b, s->key, s->len);
        if (vb != NULL)
            matched++;
        found |= vb != NULL ? cmp_value(w, json_object_iter_value(it), vb)
                            : differ(w, json_object_iter_value(it), NULL);
    }
    if (matched != json_object_size(b)) /* keys only the function has */
        for (void *it = json_object_iter(b); it != NULL; it = json_object_iter_next(b, it)) {
            s->key = json_object_iter_key(it);
            s->len = json_object_iter_key_len(it);
            if (json_object_getn(a, s->key, s->len) == NULL)
                found |= differ(w, NULL, json_object_iter_value(it));
        }
    w->depth--;
    return found;
}

static int cmp_array(walk *w, json_t *a, json_t *b)
{
    size_t na = json_array_size(a), nb = json_array_size(b);
    size_t n = na > nb ? na : nb, listed = 0;
    int found = 0;
    if (na != nb) {
        sf_cmp_diff *d;
        if (!classify(w, 0, &d))
            return 0; /* the array is ignored, and so is everything in it */
        found = 1;
        if (d != NULL)
            fill(w, d, render_path(w), render_length(na), render_length(nb), 1, 1);
    }
    seg *s = &w->path[w->depth++];
    s->key = NULL;
    /* An element inserted or removed shifts every later one: past a few element differences
     * the positions say nothing more than the lengths already did. */
    for (size_t i = 0; i < n && (na == nb || listed < SF_CMP_ARRAY_SHIFT); i++) {
        s->index = i;
        int f = i < na && i < nb ? cmp_value(w, json_array_get(a, i), json_array_get(b, i))
                                 : differ(w, json_array_get(a, i), json_array_get(b, i));
        listed += (size_t)f;
        found |= f;
    }
    w->depth--;
    return found;
}

/* Compares a with b at the current path. Returns 1 when a difference was counted under it. */
static int cmp_value(walk *w, json_t *a, json_t *b)
{
    if (a == b)
        return 0;
    if (json_is_number(a) && json_is_number(b))
        return num_equal(a, b) ? 0 : differ(w, a, b);
    if (json_typeof(a) != json_typeof(b))
        return differ(w, a, b);
    switch (json_typeof(a)) {
    case JSON_OBJECT:
    case JSON_ARRAY:
        if (w->depth >= SF_CMP_MAX_DEPTH) {
            w->notes |= SF_CMP_NOTE_DEEP;
            return same(a, b) ? 0 : differ(w, a, b);
        }
        return json_is_object(a) ? cmp_object(w, a, b) : cmp_array(w, a, b);
    case JSON_STRING:
        return str_equal(a, b) ? 0 : differ(w, a, b);
    default:
        return 0;
    }
}

/* ---- sides ---- */

static uint64_t total_len(const sf_cmp_side *s)
{
    return s->body_total > s->body_len ? s->body_total : s->body_len;
}

static int truncated(const sf_cmp_side *s)
{
    return s->body_truncated || s->body_total > s->body_len;
}

static const char *body_of(const sf_cmp_side *s)
{
    return s->body != NULL ? s->body : "";
}

/* 1 when the bodies are the same bytes. */
static int same_bytes(const sf_cmp_side *a, const sf_cmp_side *b, unsigned *notes)
{
    if (total_len(a) != total_len(b))
        return 0;
    if (!truncated(a) && !truncated(b))
        return a->body_len == 0 || memcmp(a->body, b->body, a->body_len) == 0;
    if (a->sha256 != NULL && b->sha256 != NULL)
        return memcmp(a->sha256, b->sha256, 32) == 0;
    *notes |= SF_CMP_NOTE_NO_DIGEST;
    size_t n = a->body_len < b->body_len ? a->body_len : b->body_len;
    return n == 0 || memcmp(a->body, b->body, n) == 0;
}

enum { PARSE_OK, PARSE_INVALID, PARSE_UNSUPPORTED, PARSE_OOM };

/* The body as JSON (any value at the top, strings with NUL allowed), or NULL with *why. An
 * integer past 64 bits is read again as a real rather than refused. */
static json_t *parse(const sf_cmp_side *s, int *why)
{
    json_error_t e;
    size_t flags = JSON_DECODE_ANY | JSON_ALLOW_NUL;
    json_t *v = json_loadb(body_of(s), s->body_len, flags, &e);
    if (v == NULL && json_error_code(&e) == json_error_numeric_overflow)
        v = json_loadb(body_of(s), s->body_len, flags | JSON_DECODE_INT_AS_REAL, &e);
    if (v != NULL) {
        *why = PARSE_OK;
        return v;
    }
    switch (json_error_code(&e)) {
    case json_error_out_of_memory:
        *why = PARSE_OOM;
        break;
    case json_error_numeric_overflow:
    case json_error_stack_overflow:
    case json_error_null_byte_in_key:
        *why = PARSE_UNSUPPORTED;
        break;
    default:
        *why = PARSE_INVALID;
    }
    return NULL;
}

/* Content-Type application/json or application/TYPE+json, parameters aside (RFC 6839 §3.1). */
static int json_typed(const sf_cmp_side *s)
{
    for (size_t i = 0; i < s->nheaders; i++) {
        const sf_http_header *h = &s->headers[i];
        if (h->name.len != 12 || strncasecmp(h->name.p, "content-type", 12) != 0)
            continue;
        const char *v = h->value.p, *end = v + h->value.len;
        while (v < end && (*v == ' ' || *v == '\t'))
            v++;
        const char *semi = memchr(v, ';', (size_t)(end - v));
        if (semi != NULL)
            end = semi;
        while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        size_t n = (size_t)(end - v);
        if (n < 12 || strncasecmp(v, "application/", 12) != 0)
            return 0;
        return (n == 16 && strncasecmp(v + 12, "json", 4) == 0) ||
               (n > 17 && strncasecmp(end - 5, "+json", 5) == 0);
    }
    return 0;
}

/* A body as a JSON string of its bytes from offset from, then its length. */
static char *render_body(const sf_cmp_side *s, size_t from)
{
    char buf[SF_CMP_VALUE_MAX + SLACK], len[40];
    text t = {buf, 0, SF_CMP_VALUE_MAX, 0};
    if (from > 0)
        put(&t, ELLIPSIS, ELLIPSIS_LEN);
    put1(&t, '"');
    put_escaped(&t, body_of(s) + from, s->body_len - from);
    if (truncated(s))
        t.cut = 1;
    else
        put1(&t, '"');
    if (t.cut)
        put_tail(&t, ELLIPSIS);
    t.cut = 0;
    snprintf(len, sizeof(len), " (%llu bytes)", (unsigned long long)total_len(s));
    put_tail(&t, len);
    return finish(&t);
}

/* The bodies differ as bytes: one difference at "body", shown from a little before the first
 * differing byte so that a long equal start does not hide it. */
static void body_differs(walk *w, const sf_cmp_side *l, const sf_cmp_side *f)
{
    sf_cmp_diff *d;
    if (!classify(w, 1, &d) || d == NULL)
        return;
    size_t n = l->body_len < f->body_len ? l->body_len : f->body_len, at = 0;
    const unsigned char *a = (const unsigned char *)body_of(l),
                        *b = (const unsigned char *)body_of(f);
    while (at < n && a[at] == b[at])
        at++;
    /* The window starts at the body's start when what precedes the difference renders short,
     * else 16 bytes before it. Counted as rendered, a control byte taking six (\u0001) and a
     * byte past ASCII at most that: the differing byte must fall inside both capped values. */
    size_t width = 0;
    for (size_t i = 0; i < at && width <= 48; i++)
        width += a[i] < 0x20 || a[i] >= 0x7f ? 6 : a[i] == '"' || a[i] == '\\' ? 2 : 1;
    size_t from = width > 48 && at > 16 ? at - 16 : 0;
    /* Not inside a character: back up over at most three continuation bytes (moving forward
     * could pass the differing byte and show two equal windows). from < at, so both bodies
     * hold the same bytes there and their windows start alike whichever side is legacy. */
    for (int k = 0; k < 3 && from > 0 && (a[from] & 0xc0) == 0x80; k++)
        from--;
    fill(w, d, strdup("body"), render_body(l, from), render_body(f, from), 1, 1);
}

/* ---- the quick equality check ----
 * Most comparisons of a healthy function are matches, and a function that serializes its own
 * way (another key order, 1.0 for 1, other spacing, escapes) never matches byte for byte. This
 * check decides "equal" for such bodies without jansson's allocation-heavy parse: one strict
 * pass over the first body into a flat array of nodes, then one pass over the second that
 * parses it against those nodes: each key looked up among its object's members (the one
 * expected next, or next to the one paired last, tried first, in the same bytes), a string or
 * number in the same bytes as its counterpart taken without decoding it, plain decimals compared
 * as integers and scales. It stops at the first difference. It only ever concludes equal; on a
 * difference, or on anything it is not sure to judge exactly as the jansson path would
 * (integers past 64 bits, nesting at the depth limit, many ignore patterns, keys so shuffled
 * in big objects that pairing them would cost more than QK_WORK allows), it says "not sure" and
 * jansson decides, and jansson alone names differences. Its parser is at least as strict as
 * jansson's, so a body jansson refuses is never judged equal here.
 */

#define QK_STACK    512 /* nodes of the first body on the stack before the heap */
#define QK_TOKEN    100 /* longer numbers: not sure */
#define QK_PATTERNS 8   /* more ignore patterns: not sure */
/* Key comparisons allowed for pairing object members, per node of the two bodies (the second
 * taken as the size of the first) and in all: members in the same order cost one each, shuffled
 * ones up to the object's size each. */
#define QK_WORK_PER_NODE 16
#define QK_WORK_BASE     4096

enum { QK_NULL, QK_FALSE, QK_TRUE, QK_NUM, QK_STR, QK_ARR, QK_OBJ };

typedef struct {
    const char *p; /* QK_STR: the value (decoded when it had escapes); QK_NUM: the token */
    uint32_t len;
    uint32_t n;   /* QK_ARR, QK_OBJ: elements or members (an object's are key, value pairs);
                   * an object's key: the previous key (0 for the first) */
    uint32_t end; /* the node past this one's subtree */
    uint8_t type;
    uint8_t real;  /* QK_NUM: has a fraction or an exponent */
    uint8_t taken; /* a key of the first body: paired with one of the second's; QK_NUM: a plain
                    * decimal of its value n / 10^esc (see qnum) */
    uint8_t esc;   /* QK_STR: had escapes (p is then in the decoded text); QK_OBJ: keys that
                    * may be duplicates */
} qnode;

typedef struct {
    qnode *v;
    uint32_t n, cap;
    qnode *heap;
    char *text; /* decoded strings; a body's decoded strings are never longer than the body */
    size_t tlen, size;
} qdoc;

static void qdoc_dispose(qdoc *d)
{
    free(d->heap);
    free(d->text);
}

static int qgrow(qdoc *d)
{
    if (d->cap >= UINT32_MAX / 2)
        return -1;
    qnode *v = realloc(d->heap, 2 * (size_t)d->cap * sizeof(*v));
    if (v == NULL)
        return -1;
    if (d->heap == NULL)
        memcpy(v, d->v, d->n * sizeof(*v));
    d->v = d->heap = v;
    d->cap *= 2;
    return 0;
}

static inline int qpush(qdoc *d, int type)
{
    if (d->n == d->cap && qgrow(d) < 0)
        return -1;
    d->v[d->n] = (qnode){NULL, 0, 0, 0, (uint8_t)type, 0, 0, 0};
    return (int)d->n++;
}

static inline const char *qws(const char *p, const char *e)
{
    if (p < e && (unsigned char)*p > ' ')
        return p; /* compact JSON: no whitespace at all */
    while (p < e && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    return p;
}

/* p at c, whitespace aside: *pp past it, 1; else 0. */
static inline int qeat(const char **pp, const char *e, char c)
{
    const char *p = *pp;
    if (p < e && *p == c) {
        *pp = p + 1;
        return 1;
    }
    p = qws(p, e);
    if (p < e && *p == c) {
        *pp = p + 1;
        return 1;
    }
    *pp = p;
    return 0;
}

static int hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
                     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                     : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
                                            : 16u;
        if (d == 16)
            return -1;
        v = v << 4 | d;
    }
    *out = v;
    return 0;
}

/* s[0..end) with its escapes decoded into d->text (RFC 8259 §7; a lone surrogate is refused, as
 * jansson does, and so is NUL in a key, which jansson cannot hold): *sp, *lenp. */
static int qunescape(qdoc *d, const char *s, const char *end, int key, const char **sp,
                     uint32_t *lenp)
{
    if (d->text == NULL && (d->text = malloc(d->size)) == NULL)
        return -1;
    char *o = d->text + d->tlen, *start = o;
    while (s < end) {
        if (*s != '\\') {
            *o++ = *s++;
            continue;
        }
        s++;
        char c = *s++;
        unsigned cp;
        switch (c) {
        case '"':
        case '\\':
        case '/':
            *o++ = c;
            continue;
        case 'b':
            *o++ = '\b';
            continue;
        case 'f':
            *o++ = '\f';
            continue;
        case 'n':
            *o++ = '\n';
            continue;
        case 'r':
            *o++ = '\r';
            continue;
        case 't':
            *o++ = '\t';
            continue;
        case 'u':
            break;
        default:
            return -1;
        }
        if (end - s < 4 || hex4(s, &cp) < 0)
            return -1;
        s += 4;
        if (cp >= 0xd800 && cp <= 0xdbff) {
            unsigned lo;
            if (end - s < 6 || s[0] != '\\' || s[1] != 'u' || hex4(s + 2, &lo) < 0 || lo < 0xdc00 ||
                lo > 0xdfff)
                return -1;
            s += 6;
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        } else if (cp >= 0xdc00 && cp <= 0xdfff) {
            return -1;
        }
        if (cp == 0 && key)
            return -1;
        if (cp < 0x80) {
            *o++ = (char)cp;
        } else if (cp < 0x800) {
            *o++ = (char)(0xc0 | cp >> 6);
            *o++ = (char)(0x80 | (cp & 0x3f));
        } else if (cp < 0x10000) {
            *o++ = (char)(0xe0 | cp >> 12);
            *o++ = (char)(0x80 | (cp >> 6 & 0x3f));
            *o++ = (char)(0x80 | (cp & 0x3f));
        } else {
            *o++ = (char)(0xf0 | cp >> 18);
            *o++ = (char)(0x80 | (cp >> 12 & 0x3f));
            *o++ = (char)(0x80 | (cp >> 6 & 0x3f));
            *o++ = (char)(0x80 | (cp & 0x3f));
        }
    }
    *sp = start;
    *lenp = (uint32_t)(o - start);
    d->tlen += (size_t)(o - start);
    return 0;
}

/* p past the run of plain string bytes (printable ASCII but '"' and '\\') that starts there,
 * eight at a time: the first byte flagged in a word is exact (a borrow only ever flags bytes
 * above a byte that was flagged rightly). */
static inline const char *qplain(const char *p, const char *e)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    const uint64_t ones = 0x0101010101010101u, high = 0x8080808080808080u;
    while (e - p >= 8) {
        uint64_t w, q, b;
        memcpy(&w, p, 8);
        q = w ^ (ones * '"');
        b = w ^ (ones * '\\');
        uint64_t m = ((q - ones) & ~q) | ((b - ones) & ~b) | ((w - ones * 0x20) & ~w) | w;
        m &= high;
        if (m != 0)
            return p + (__builtin_ctzll(m) >> 3);
        p += 8;
    }
#endif
    while (p < e && (unsigned char)(*p - 0x20) < 0x60 && *p != '"' && *p != '\\')
        p++;
    return p;
}

/* x[0..n) and y[0..n) are the same bytes: up to 16 without a call, as two words that may
 * overlap. */
static inline __attribute__((always_inline)) int qbytes_equal(const char *x, const char *y,
                                                              uint32_t n)
{
    uint64_t a, b, c, d;
    uint32_t h, i, j, k;
    uint16_t s, t, u, v;
    if (n >= 8 && n <= 16) {
        memcpy(&a, x, 8);
        memcpy(&b, y, 8);
        memcpy(&c, x + n - 8, 8);
        memcpy(&d, y + n - 8, 8);
        return ((a ^ b) | (c ^ d)) == 0;
    }
    if (n >= 4 && n < 8) {
        memcpy(&h, x, 4);
        memcpy(&i, y, 4);
        memcpy(&j, x + n - 4, 4);
        memcpy(&k, y + n - 4, 4);
        return ((h ^ i) | (j ^ k)) == 0;
    }
    if (n >= 2 && n < 4) {
        memcpy(&s, x, 2);
        memcpy(&t, y, 2);
        memcpy(&u, x + n - 2, 2);
        memcpy(&v, y + n - 2, 2);
        return s == t && u == v;
    }
    if (n < 2)
        return n == 0 || x[0] == y[0];
    return x[0] == y[0] && memcmp(x, y, n) == 0;
}

/* *pp at the opening quote: the string's value in *sp, *lenp (decoded into d->text when it has
 * escapes), *pp past the closing quote. Returns 1 when it had escapes, 0 when not, -1 when it
 * is not valid. */
static inline int qstr(qdoc *d, const char **pp, const char *e, int key, const char **sp,
                       uint32_t *lenp)
{
    const char *p = *pp + 1, *s = p;
    int esc = 0;
    for (;;) {
        p = qplain(p, e);
        if (p >= e)
            return -1;
        unsigned char c = (unsigned char)*p;
        if (c == '"')
            break;
        if (c == '\\') {
            if (e - p < 2)
                return -1;
            esc = 1;
            p += 2;
        } else if (c < 0x20) {
            return -1;
        } else if (c < 0x80) {
            p++;
        } else {
            size_t k = utf8_len((const unsigned char *)p, (size_t)(e - p));
            if (k == 0)
                return -1;
            p += k;
        }
    }
    if (esc) {
        if (qunescape(d, s, p, key, sp, lenp) < 0)
            return -1;
    } else {
        *sp = s;
        *lenp = (uint32_t)(p - s);
    }
    *pp = p + 1;
    return esc;
}

/* An integer token's value; -1 past 64 bits. */
static int qint(const char *p, size_t n, json_int_t *out)
{
    int neg = *p == '-';
    uint64_t v = 0, limit = neg ? (uint64_t)1 << 63 : ((uint64_t)1 << 63) - 1;
    for (size_t i = (size_t)neg; i < n; i++) {
        uint64_t d = (uint64_t)(p[i] - '0');
        if (v > (limit - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = neg && v > 0 ? -(json_int_t)(v - 1) - 1 : (json_int_t)v;
    return 0;
}

/* A number token as a decimal: digits (no leading or trailing zeros) times 10^e10. */
typedef struct {
    int neg;
    size_t nd;
    long e10;
    char d[QK_TOKEN];
} qdec;

static int qdecimal(const char *p, size_t n, qdec *o)
{
    const char *e = p + n;
    long frac = 0, ex = 0;
    int dot = 0;
    o->neg = *p == '-';
    o->nd = 0;
    for (p += o->neg; p < e && *p != 'e' && *p != 'E'; p++) {
        if (*p == '.') {
            dot = 1;
            continue;
        }
        frac += dot;
        if (o->nd > 0 || *p != '0')
            o->d[o->nd++] = *p;
    }
    if (p < e) { /* the exponent, of at most 6 digits */
        int neg = *++p == '-';
        p += *p == '-' || *p == '+';
        if (e - p > 6)
            return -1;
        for (; p < e; p++)
            ex = ex * 10 + (*p - '0');
        ex = neg ? -ex : ex;
    }
    while (o->nd > 0 && o->d[o->nd - 1] == '0') {
        o->nd--;
        ex++;
    }
    o->e10 = ex - frac;
    return 0;
}

/* *pp at '-' or a digit: RFC 8259 §6. Returns 1 for a real (a fraction or an exponent), 0 for
 * an integer, -1 when invalid or not sure; *pp past the token. A plain decimal (no exponent, at
 * most 19 digits) is also read as *fm / 10^*ff with no trailing zero in *fm when *ff > 0 (one
 * value, one form); *ff is -1 for other tokens. */
static inline __attribute__((always_inline)) int qnum(const char **pp, const char *e, uint64_t *fm,
                                                      int *ff)
{
    const char *p = *pp, *s = p;
    int real = 0, exp = 0, nd = 0, f = 0;
    uint64_t v = 0;
    p += p < e && *p == '-';
    if (p < e && *p == '0') {
        p++;
    } else if (p < e && *p >= '1' && *p <= '9') {
        for (; p < e && *p >= '0' && *p <= '9'; p++, nd++)
            v = v * 10 + (uint64_t)(*p - '0');
    } else {
        return -1;
    }
    if (p < e && *p == '.') {
        real = 1;
        if (++p >= e || *p < '0' || *p > '9')
            return -1;
        for (; p < e && *p >= '0' && *p <= '9'; p++, nd++, f++)
            v = v * 10 + (uint64_t)(*p - '0');
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        real = exp = 1;
        p++;
        p += p < e && (*p == '+' || *p == '-');
        if (p >= e || *p < '0' || *p > '9')
            return -1;
        while (p < e && *p >= '0' && *p <= '9')
            p++;
    }
    size_t n = (size_t)(p - s);
    json_int_t iv;
    qdec dec;
    if (n > QK_TOKEN || (!real && n > 18 && qint(s, n, &iv) < 0))
        return -1; /* jansson reads a document with such an integer as all reals */
    /* jansson refuses a real that overflows a double: anything from 10^308 up is not sure */
    if (exp && (qdecimal(s, n, &dec) < 0 || (dec.nd > 0 && (long)dec.nd + dec.e10 > 308)))
        return -1;
    if (exp || nd > 19) { /* (digits counted past leading zeros of the fraction too) */
        f = -1;
    } else {
        while (f > 0 && v % 10 == 0) {
            v /= 10;
            f--;
        }
    }
    *fm = v;
    *ff = f;
    *pp = p;
    return real;
}

/* true, false or null at *pp: its type, or -1; *pp past it. */
static inline int qword(const char **pp, const char *e)
{
    const char *p = *pp;
    int t = *p == 'n' ? QK_NULL : *p == 'f' ? QK_FALSE : QK_TRUE;
    static const char *const words[] = {"null", "false", "true"};
    static const size_t lens[] = {4, 5, 4};
    if ((size_t)(e - p) < lens[t] || memcmp(p, words[t], lens[t]) != 0)
        return -1;
    *pp = p + lens[t];
    return t;
}

/* A string, number, true, false or null of the first body at *pp (no whitespace before it) as
 * one node. */
static inline __attribute__((always_inline)) int qscalar(qdoc *d, const char **pp, const char *e)
{
    const char *p = *pp;
    int i;
    if (*p == '"') {
        int esc;
        if ((i = qpush(d, QK_STR)) < 0 || (esc = qstr(d, &p, e, 0, &d->v[i].p, &d->v[i].len)) < 0)
            return -1;
        d->v[i].esc = (uint8_t)esc;
    } else if (*p == 't' || *p == 'f' || *p == 'n') {
        int t = qword(&p, e);
        if (t < 0 || (i = qpush(d, t)) < 0)
            return -1;
    } else {
        const char *s = p;
        uint64_t m;
        int f, real = qnum(&p, e, &m, &f);
        if (real < 0 || (i = qpush(d, QK_NUM)) < 0)
            return -1;
        qnode *y = &d->v[i];
        y->p = s;
        y->len = (uint32_t)(p - s);
        y->real = (uint8_t)real;
        if (f >= 0 && m <= UINT32_MAX) {
            y->taken = 1;
            y->n = (uint32_t)m;
            y->esc = (uint8_t)f;
        }
    }
    d->v[i].end = d->n;
    *pp = p;
    return 0;
}

/* The first body, parsed into d's nodes (scalars in a container without a call each). */
static int qvalue(qdoc *d, const char **pp, const char *e, int depth)
{
    const char *p = qws(*pp, e);
    if (p >= e)
        return -1;
    if (*p != '{' && *p != '[') {
        if (qscalar(d, &p, e) < 0)
            return -1;
        *pp = p;
        return 0;
    }
    int obj = *p == '{', i;
    char close = obj ? '}' : ']';
    uint32_t n = 0, prev = 0;
    uint64_t seen = 0; /* a key's first and last bytes and length, hashed to a bit */
    if (depth >= SF_CMP_MAX_DEPTH || (i = qpush(d, obj ? QK_OBJ : QK_ARR)) < 0)
        return -1;
    p = qws(p + 1, e);
    if (p < e && *p == close) {
        p++;
    } else {
        for (;;) {
            if (obj) {
                int k, esc;
                if (p >= e || *p != '"' || (k = qpush(d, QK_STR)) < 0 ||
                    (esc = qstr(d, &p, e, 1, &d->v[k].p, &d->v[k].len)) < 0)
                    return -1;
                qnode *y = &d->v[k];
                y->end = d->n;
                y->esc = (uint8_t)esc;
                y->n = prev;
                prev = (uint32_t)k;
                unsigned h = y->len == 0 ? 0
                                         : (unsigned char)y->p[0] * 7u +
                                               (unsigned char)y->p[y->len - 1] * 3u + y->len;
                if (seen & (uint64_t)1 << (h & 63))
                    d->v[i].esc = 1;
                seen |= (uint64_t)1 << (h & 63);
                if (!qeat(&p, e, ':'))
                    return -1;
                p = qws(p, e);
            }
            if (p >= e)
                return -1;
            if (*p == '{' || *p == '[' ? qvalue(d, &p, e, depth + 1) < 0 : qscalar(d, &p, e) < 0)
                return -1;
            n++;
            if (qeat(&p, e, ',')) {
                p = qws(p, e);
                continue;
            }
            if (qeat(&p, e, close))
                break;
            return -1;
        }
    }
    d->v[i].n = n;
    d->v[i].end = d->n;
    *pp = p;
    return 0;
}

/* A plain decimal token (no exponent, at most 19 digits) as m / 10^frac with no trailing zero
 * in m when frac > 0: one value, one form. -1 for other tokens. */
static inline int qfixed(const char *p, size_t n, uint64_t *m, int *frac)
{
    const char *e = p + n;
    uint64_t v = 0;
    int f = 0, dot = 0, nd = 0;
    for (p += *p == '-'; p < e; p++) {
        if (*p == '.') {
            dot = 1;
            continue;
        }
        if (*p == 'e' || *p == 'E' || ++nd > 19)
            return -1;
        v = v * 10 + (uint64_t)(*p - '0');
        f += dot;
    }
    while (f > 0 && v % 10 == 0) {
        v /= 10;
        f--;
    }
    *m = v;
    *frac = f;
    return 0;
}

static int qnum_equal(const char *xp, uint32_t xlen, int xreal, const char *yp, uint32_t ylen,
                      int yreal)
{
    if (xlen == ylen && qbytes_equal(xp, yp, xlen))
        return 1;
    json_int_t a, b;
    uint64_t mx, my;
    int fx, fy;
    if (qfixed(xp, xlen, &mx, &fx) == 0 && qfixed(yp, ylen, &my, &fy) == 0) {
        if (mx == 0 || my == 0) /* zero, of either sign, equals only zero */
            return mx == my;
        /* the same decimal: the same double, and an integer equals it as jansson checks it
         * unless it is beyond 2^53, where the real's double may be another integer */
        return (xp[0] == '-') == (yp[0] == '-') && mx == my && fx == fy &&
               (xreal == yreal || mx <= (uint64_t)1 << 53);
    }
    if (!xreal && !yreal)
        return qint(xp, xlen, &a) == 0 && qint(yp, ylen, &b) == 0 && a == b;
    qdec dx, dy;
    if (qdecimal(xp, xlen, &dx) < 0 || qdecimal(yp, ylen, &dy) < 0)
        return 0;
    if (dx.nd == 0 || dy.nd == 0) /* zero, of either sign, equals only zero */
        return dx.nd == dy.nd;
    if (dx.neg != dy.neg || dx.nd != dy.nd || dx.e10 != dy.e10 || memcmp(dx.d, dy.d, dx.nd) != 0)
        return 0;
    const char *ip = !xreal ? xp : !yreal ? yp : NULL;
    uint32_t il = !xreal ? xlen : ylen;
    return ip == NULL || (qint(ip, il, &a) == 0 && a >= -(1LL << 53) && a <= (1LL << 53));
}

typedef struct {
    qdoc a;                 /* the first body's nodes */
    qdoc b;                 /* the second body's decoded strings */
    const char *const *pat; /* ignore patterns, all starting with '/' */
    size_t npat;
    long work; /* key comparisons left for pairing members */
} qcmp;

/* Where each ignore pattern stands below the current node, for a child reached through s:
 * next[k] the rest of pattern k (NULL once it cannot match). Returns 1 when a pattern names the
 * child or one of its ancestors: the child is ignored. */
static int qdescend(const qcmp *c, const char *const *cur, const seg *s, const char **next)
{
    for (size_t k = 0; k < c->npat; k++) {
        next[k] = NULL;
        if (cur[k] == NULL)
            continue;
        const char *st = cur[k] + 1, *en = strchr(st, '/');
        if (en == NULL)
            en = st + strlen(st);
        if (seg_matches(st, (size_t)(en - st), s)) {
            if (*en == '\0')
                return 1;
            next[k] = en;
        }
    }
    return 0;
}

/* The string at p (at its opening quote) has the bytes of x, a string without escapes. */
static inline int qsame_plain(const qnode *x, const char *p, const char *e)
{
    return !x->esc && (size_t)(e - p) > (size_t)x->len + 1 && p[x->len + 1] == '"' &&
           qbytes_equal(p + 1, x->p, x->len);
}

/* The number at p is x's token (the same bytes, followed by none that would extend it). */
static inline __attribute__((always_inline)) int qsame_token(const qnode *x, const char *p,
                                                             const char *e)
{
    if ((size_t)(e - p) < x->len || !qbytes_equal(p, x->p, x->len))
        return 0;
    if ((size_t)(e - p) == x->len)
        return 1;
    char n = p[x->len];
    return !((n >= '0' && n <= '9') || n == '.' || n == 'e' || n == 'E' || n == '+' || n == '-');
}

/* A value of the second body that has no counterpart (an ignored one), checked as strictly as
 * qvalue checks the first: 0, or -1 when it is not valid (or not sure). */
static int qskip(qcmp *c, const char **pp, const char *e, int depth)
{
    const char *p = qws(*pp, e), *s;
    uint32_t len;
    if (p >= e)
        return -1;
    switch (*p) {
    case '{':
    case '[': {
        int obj = *p == '{';
        char close = obj ? '}' : ']';
        if (depth >= SF_CMP_MAX_DEPTH)
            return -1;
        p = qws(p + 1, e);
        if (p < e && *p == close) {
            p++;
            break;
        }
        for (;;) {
            if (obj) {
                if (p >= e || *p != '"' || qstr(&c->b, &p, e, 1, &s, &len) < 0)
                    return -1;
                if (!qeat(&p, e, ':'))
                    return -1;
            }
            if (qskip(c, &p, e, depth + 1) < 0)
                return -1;
            if (qeat(&p, e, ',')) {
                p = qws(p, e);
                continue;
            }
            if (qeat(&p, e, close))
                break;
            return -1;
        }
        break;
    }
    case '"':
        if (qstr(&c->b, &p, e, 0, &s, &len) < 0)
            return -1;
        break;
    case 't':
    case 'f':
    case 'n':
        if (qword(&p, e) < 0)
            return -1;
        break;
    default: {
        uint64_t m;
        int f;
        if (qnum(&p, e, &m, &f) < 0)
            return -1;
    }
    }
    *pp = p;
    return 0;
}

/* A string, number, true, false or null of the second body at *pp (no whitespace before it)
 * against the first body's node x: 1 when equal, *pp then past it; 0 when different, invalid or
 * not sure. */
static inline __attribute__((always_inline)) int qmatch_scalar(qcmp *c, const char **pp,
                                                               const char *e, const qnode *x)
{
    const char *p = *pp, *s;
    uint32_t len;
    switch (*p) {
    case '"':
        if (x->type != QK_STR)
            return 0;
        if (qsame_plain(x, p, e))
            p += x->len + 2; /* the same bytes: valid as the first body's */
        else if (qstr(&c->b, &p, e, 0, &s, &len) < 0 || x->len != len ||
                 !qbytes_equal(x->p, s, len))
            return 0;
        break;
    case 't':
    case 'f':
    case 'n':
        if (qword(&p, e) != x->type)
            return 0;
        break;
    default: {
        const char *t = p;
        if (x->type == QK_NUM && qsame_token(x, p, e)) {
            p += x->len; /* the same token: valid as the first body's */
            break;
        }
        uint64_t m;
        int f, real = qnum(&p, e, &m, &f);
        if (real < 0 || x->type != QK_NUM)
            return 0;
        if (x->taken && f >= 0) { /* both plain decimals: see qnum_equal */
            if (x->n == 0 || m == 0) {
                if (x->n != m)
                    return 0;
            } else if ((x->p[0] == '-') != (t[0] == '-') || x->n != m || x->esc != f ||
                       (x->real != real && m > (uint64_t)1 << 53)) {
                return 0;
            }
        } else if (!qnum_equal(x->p, x->len, x->real, t, (uint32_t)(p - t), real)) {
            return 0;
        }
    }
    }
    *pp = p;
    return 1;
}

/* The second body's value at *pp, parsed against the first body's node ia: 1 when equal
 * (ignored paths aside), *pp then past it; 0 when different, invalid or not sure (the rest of
 * the body is not read). */
static int qmatch(qcmp *c, const char **pp, const char *e, uint32_t ia, const char *const *cur,
                  int depth)
{
    const char *p = qws(*pp, e), *s;
    const qnode *x = &c->a.v[ia];
    const char *next[QK_PATTERNS];
    uint32_t len;
    if (p >= e)
        return 0;
    if (*p != '{' && *p != '[') {
        if (!qmatch_scalar(c, &p, e, x))
            return 0;
        *pp = p;
        return 1;
    }
    switch (*p) {
    case '{': {
        /* Each member of the second body is paired with the first unpaired member of the first
         * with its key. With duplicate keys (jansson keeps the last) the k-th of one body then
         * pairs with the k-th of the other, the last with the last, so equal pairs mean equal
         * objects to jansson too. */
        if (x->type != QK_OBJ || depth >= SF_CMP_MAX_DEPTH)
            return 0;
        qnode *v = c->a.v;
        uint32_t lo = ia + 1, nlo = 0, got = 0; /* the first unpaired member, its position */
        uint32_t last = 0;                      /* the member paired last */
        p = qws(p + 1, e);
        if (p < e && *p == '}') {
            p++;
        } else {
            for (;;) {
                uint32_t j = 0, m = x->n, found = 0;
                while (nlo < x->n && v[lo].taken) {
                    lo = v[lo + 1].end;
                    nlo++;
                }
                if (p >= e || *p != '"')
                    return 0;
                /* The key expected in the same bytes (valid as the first body's): the first
                 * unpaired one, or, when no key may be a duplicate, the one after or before the
                 * key paired last (the same or the reverse order). */
                if (nlo < x->n && qsame_plain(&v[lo], p, e)) {
                    j = lo;
                    found = 1;
                } else if (last != 0 && !x->esc) {
                    uint32_t after = v[last + 1].end, before = v[last].n;
                    if (after < x->end && !v[after].taken && qsame_plain(&v[after], p, e)) {
                        j = after;
                        found = 1;
                    } else if (before != 0 && !v[before].taken && qsame_plain(&v[before], p, e)) {
                        j = before;
                        found = 1;
                    }
                }
                if (found) {
                    s = v[j].p;
                    len = v[j].len;
                    p += len + 2;
                } else if (qstr(&c->b, &p, e, 1, &s, &len) < 0) {
                    return 0;
                }
                if (!qeat(&p, e, ':'))
                    return 0;
                seg sg = {s, len, 0};
                if (c->npat > 0 && qdescend(c, cur, &sg, next)) {
                    if (qskip(c, &p, e, depth + 1) < 0)
                        return 0; /* ignored: its counterpart stays unpaired, ignored too */
                } else {
                    if (!found) {
                        for (j = lo, m = nlo; m < x->n; m++, j = v[j + 1].end) {
                            if (--c->work <= 0)
                                return 0;
                            if (v[j].len == len && !v[j].taken && qbytes_equal(v[j].p, s, len))
                                break;
                        }
                        if (m == x->n)
                            return 0; /* a member only the second body has */
                    }
                    v[j].taken = 1;
                    last = j;
                    got++;
                    p = qws(p, e);
                    if (p < e && *p != '{' && *p != '[' ? !qmatch_scalar(c, &p, e, &v[j + 1])
                                                        : !qmatch(c, &p, e, j + 1, next, depth + 1))
                        return 0;
                }
                if (qeat(&p, e, ',')) {
                    p = qws(p, e);
                    continue;
                }
                if (qeat(&p, e, '}'))
                    break;
                return 0;
            }
        }
        if (got < x->n) /* members only the first body has, unless ignored */
            for (uint32_t j = ia + 1, m = 0; m < x->n; m++, j = v[j + 1].end) {
                seg sg = {v[j].p, v[j].len, 0};
                if (!v[j].taken && !(c->npat > 0 && qdescend(c, cur, &sg, next)))
                    return 0;
            }
        break;
    }
    case '[': {
        if (x->type != QK_ARR || depth >= SF_CMP_MAX_DEPTH)
            return 0;
        uint32_t k = 0, ja = ia + 1;
        p = qws(p + 1, e);
        if (p < e && *p == ']') {
            p++;
        } else {
            for (;;) {
                if (k >= x->n)
                    return 0;
                seg sg = {NULL, 0, k};
                if (c->npat > 0 && qdescend(c, cur, &sg, next)) {
                    if (qskip(c, &p, e, depth + 1) < 0)
                        return 0;
                } else {
                    p = qws(p, e);
                    if (p < e && *p != '{' && *p != '[' ? !qmatch_scalar(c, &p, e, &c->a.v[ja])
                                                        : !qmatch(c, &p, e, ja, next, depth + 1))
                        return 0;
                }
                ja = c->a.v[ja].end;
                k++;
                if (qeat(&p, e, ',')) {
                    p = qws(p, e);
                    continue;
                }
                if (qeat(&p, e, ']'))
                    break;
                return 0;
            }
        }
        if (k != x->n)
            return 0;
        break;
    }
    }
    *pp = p;
    return 1;
}

/* One strict pass over the first body into a flat array of nodes, then one over the second
 * that looks each of its values up there. */
static int quick_equal(const sf_shadow_conf *conf, const sf_cmp_side *l, const sf_cmp_side *f)
{
    qnode stack[QK_STACK];
    const char *cur[QK_PATTERNS];
    qcmp c;
    int eq = 0;
    if (conf->nignore > QK_PATTERNS || l->body_len >= UINT32_MAX || f->body_len >= UINT32_MAX)
        return 0;
    memset(&c, 0, sizeof(c));
    c.a.v = stack;
    c.a.cap = QK_STACK;
    c.a.size = l->body_len;
    c.b.size = f->body_len;
    c.pat = (const char *const *)conf->ignore;
    c.npat = conf->nignore;
    for (size_t k = 0; k < c.npat; k++)
        cur[k] = c.pat[k][0] == '/' ? c.pat[k] : NULL;
    const char *p = body_of(l), *e = p + l->body_len;
    if (qvalue(&c.a, &p, e, 0) == 0 && qws(p, e) == e) {
        c.work = QK_WORK_PER_NODE * 2 * (long)c.a.n + QK_WORK_BASE;
        p = body_of(f);
        e = p + f->body_len;
        eq = qmatch(&c, &p, e, 0, cur, 0) && qws(p, e) == e;
    }
    qdoc_dispose(&c.a);
    qdoc_dispose(&c.b);
    return eq;
}

static void compare_body(walk *w, const sf_cmp_side *l, const sf_cmp_side *f, sf_cmp_outcome *out)
{
    int mode = w->conf->body_mode;
    if (mode == SF_BODY_NONE) {
        out->body_as = SF_BODY_NONE;
        return;
    }
    int json = mode == SF_BODY_JSON || (mode == SF_BODY_AUTO && json_typed(l) && json_typed(f));
    if (json && (truncated(l) || truncated(f))) { /* a part of a document does not parse */
        w->notes |= SF_CMP_NOTE_TRUNCATED;
        json = 0;
    }
    out->body_as = json ? SF_BODY_JSON : SF_BODY_BYTES;
    if (ignored(w, 1))
        return; /* "" in the ignore list: the whole body */
    if (same_bytes(l, f, &w->notes))
        return; /* the common case, without parsing */
    if (!json) {
        body_differs(w, l, f);
        return;
    }
    if (!(w->flags & SF_CMP_F_JANSSON_ONLY) && quick_equal(w->conf, l, f))
        return;
    int wl, wf;
    json_t *dl = parse(l, &wl), *df = parse(f, &wf);
    if (dl != NULL && df != NULL) {
        cmp_value(w, dl, df);
    } else if (wl == PARSE_OOM || wf == PARSE_OOM) {
        w->oom = 1;
    } else {
        if (wl == PARSE_INVALID)
            w->notes |= SF_CMP_NOTE_LEGACY_NOT_JSON;
        if (wf == PARSE_INVALID)
            w->notes |= SF_CMP_NOTE_FUNCTION_NOT_JSON;
        if (wl == PARSE_UNSUPPORTED || wf == PARSE_UNSUPPORTED)
            w->notes |= SF_CMP_NOTE_JSON_UNSUPPORTED;
        out->body_as = SF_BODY_BYTES;
        body_differs(w, l, f);
    }
    json_decref(dl);
    json_decref(df);
}

/* name's occurrences in s joined with ", ": in buf when they fit in cap, else malloc'd (*heap).
 * NULL when absent (*present 0) or out of memory (*present 1). */
static const char *joined(const sf_cmp_side *s, const char *name, size_t nlen, char *buf,
                          size_t cap, size_t *len, char **heap, int *present)
{
    size_t need = 0, k = 0;
    *heap = NULL;
    for (size_t i = 0; i < s->nheaders; i++)
        if (s->headers[i].name.len == nlen && strncasecmp(s->headers[i].name.p, name, nlen) == 0)
            need += (k++ ? 2 : 0) + s->headers[i].value.len;
    *present = k > 0;
    *len = need;
    if (k == 0)
        return NULL;
    char *out = buf;
    if (need > cap && (out = *heap = malloc(need)) == NULL)
        return NULL;
    size_t at = 0;
    k = 0;
    for (size_t i = 0; i < s->nheaders; i++) {
        const sf_http_header *h = &s->headers[i];
        if (h->name.len != nlen || strncasecmp(h->name.p, name, nlen) != 0)
            continue;
        if (k++) {
            memcpy(out + at, ", ", 2);
            at += 2;
        }
        if (h->value.len > 0)
            memcpy(out + at, h->value.p, h->value.len);
        at += h->value.len;
    }
    return out;
}

static char *render_string(const char *s, size_t n)
{
    char buf[SF_CMP_VALUE_MAX + SLACK];
    text t = {buf, 0, SF_CMP_VALUE_MAX, 0};
    put_string(&t, s, n);
    return finish(&t);
}

static void compare_header(walk *w, const sf_cmp_side *l, const sf_cmp_side *f, const char *name)
{
    char bl[512], bf[512], *hl, *hf;
    size_t ll, lf, nlen = strlen(name);
    int pl, pf;
    const char *vl = joined(l, name, nlen, bl, sizeof(bl), &ll, &hl, &pl);
    const char *vf = joined(f, name, nlen, bf, sizeof(bf), &lf, &hf, &pf);
    if ((pl && vl == NULL) || (pf && vf == NULL)) {
        w->oom = 1;
    } else if (pl != pf || ll != lf || (pl && ll > 0 && memcmp(vl, vf, ll) != 0)) {
        sf_cmp_diff *d = w->total_real++ < SF_CMP_MAX_DIFFS ? &w->real[w->nreal++] : NULL;
        if (d != NULL) {
            char path[SF_CMP_PATH_MAX + SLACK];
            text t = {path, 0, SF_CMP_PATH_MAX, 0};
            put(&t, "header:", 7);
            put_escaped(&t, name, nlen);
            fill(w, d, finish(&t), pl ? render_string(vl, ll) : NULL,
                 pf ? render_string(vf, lf) : NULL, pl, pf);
        }
    }
    free(hl);
    free(hf);
}

static char *render_status(int status)
{
    char b[24];
    if (status == 0)
        return strdup("(none)");
    snprintf(b, sizeof(b), "%d", status);
    return strdup(b);
}

static void free_diffs(sf_cmp_diff *d, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(d[i].path);
        free(d[i].legacy);
        free(d[i].function);
    }
}

static const sf_shadow_conf default_conf = {.compare_status = 1, .body_mode = SF_BODY_AUTO};

int sf_cmp_json_equal(const sf_shadow_conf *conf, const char *a, size_t alen, const char *b,
                      size_t blen)
{
    sf_cmp_side l = {200, NULL, 0, a, alen, alen, 0, NULL};
    sf_cmp_side f = {200, NULL, 0, b, blen, blen, 0, NULL};
    return quick_equal(conf != NULL ? conf : &default_conf, &l, &f);
}

int sf_compare(const sf_shadow_conf *conf, const sf_noise *noise, const sf_cmp_side *legacy,
               const sf_cmp_side *function, sf_cmp_outcome *out)
{
    return sf_compare_ex(conf, noise, legacy, function, 0, out);
}

int sf_compare_ex(const sf_shadow_conf *conf, const sf_noise *noise, const sf_cmp_side *legacy,
                  const sf_cmp_side *function, unsigned flags, sf_cmp_outcome *out)
{
    memset(out, 0, sizeof(*out));
    out->result = SF_CMP_MATCH;
    out->body_as = SF_BODY_NONE;
    if (legacy == NULL || function == NULL)
        return -1;
    walk w;
    walk_init(&w, conf != NULL ? conf : &default_conf, noise, NULL, flags);

    if (w.conf->compare_status && legacy->status != function->status) {
        sf_cmp_diff *d = &w.real[w.nreal++];
        w.total_real++;
        fill(&w, d, strdup("status"), render_status(legacy->status),
             render_status(function->status), 1, 1);
    }
    for (size_t i = 0; i < w.conf->ncompare_headers; i++)
        compare_header(&w, legacy, function, w.conf->compare_headers[i]);
    compare_body(&w, legacy, function, out);

    out->notes = w.notes;
    out->nmismatch = w.total_real;
    out->nnoise = w.total_noisy;
    sf_cmp_diff *list = w.total_real > 0 ? w.real : w.noisy;
    size_t n = w.total_real > 0 ? w.nreal : w.nnoisy;
    if (w.total_real > 0)
        free_diffs(w.noisy, w.nnoisy);
    else
        free_diffs(w.real, w.nreal);
    if (n > 0 && !w.oom && (out->diffs = malloc(n * sizeof(*list))) != NULL) {
        memcpy(out->diffs, list, n * sizeof(*list));
        out->ndiffs = n;
    } else {
        free_diffs(list, n);
        if (n > 0)
            w.oom = 1;
    }
    if (w.oom) {
        sf_cmp_outcome_dispose(out);
        return -1;
    }
    out->result = w.total_real > 0    ? SF_CMP_MISMATCH
                  : w.total_noisy > 0 ? SF_CMP_NOISE
                                      : SF_CMP_MATCH;
    out->more = (w.total_real > 0 ? w.total_real : w.total_noisy) - n;
    return 0;
}

int sf_compare_bodies(const sf_shadow_conf *conf, const sf_noise *noise, const char *legacy,
                      size_t legacy_len, const char *function, size_t function_len, unsigned flags,
                      sf_cmp_outcome *out)
{
    static const sf_http_header json_type = {{"Content-Type", 12}, {"application/json", 16}};
    sf_cmp_side l = {200, &json_type, 1, legacy, legacy_len, legacy_len, 0, NULL};
    sf_cmp_side f = {200, &json_type, 1, function, function_len, function_len, 0, NULL};
    return sf_compare_ex(conf, noise, &l, &f, flags, out);
}

void sf_cmp_outcome_dispose(sf_cmp_outcome *o)
{
    if (o == NULL)
        return;
    free_diffs(o->diffs, o->ndiffs);
    free(o->diffs);
    memset(o, 0, sizeof(*o));
}

/* ---- learning ---- */

sf_noise *sf_noise_create(void)
{
    return calloc(1, sizeof(sf_noise));
}

void sf_noise_destroy(sf_noise *n)
{
    if (n == NULL)
        return;
    for (size_t i = 0; i < n->n; i++)
        free(n->e[i].path);
    free(n);
}

/* Whether the pattern p (escaped, "*" any one key or index) names a node of v: 1, 0, or -1
 * when *work ran out before it could tell. */
static int exists(json_t *v, const char *p, long *work)
{
    if (--*work < 0)
        return -1;
    if (*p == '\0')
        return 1;
    const char *s = p + 1, *end = strchr(s, '/');
    if (end == NULL)
        end = s + strlen(s);
    size_t n = (size_t)(end - s);
    if (n == 1 && *s == '*') {
        if (json_is_object(v)) {
            for (void *it = json_object_iter(v); it != NULL; it = json_object_iter_next(v, it)) {
                int r = exists(json_object_iter_value(it), end, work);
                if (r != 0)
                    return r;
            }
        } else if (json_is_array(v)) {
            for (size_t i = 0; i < json_array_size(v); i++) {
                int r = exists(json_array_get(v, i), end, work);
                if (r != 0)
                    return r;
            }
        }
        return 0;
    }
    if (json_is_object(v)) {
        char key[SF_CMP_PATH_MAX + 1];
        size_t k = 0;
        for (size_t i = 0; i < n && k < sizeof(key); i++)
            key[k++] = s[i] == '~' && i + 1 < n ? (s[++i] == '0' ? '~' : '/') : s[i];
        json_t *c = json_object_getn(v, key, k);
        return c != NULL ? exists(c, end, work) : 0;
    }
    if (json_is_array(v)) {
        size_t idx = 0;
        for (size_t i = 0; i < n; i++) {
            if (s[i] < '0' || s[i] > '9' || (i == 0 && s[i] == '0' && n > 1) || idx > 100000000)
                return 0;
            idx = idx * 10 + (size_t)(s[i] - '0');
        }
        json_t *c = n > 0 ? json_array_get(v, idx) : NULL;
        return c != NULL ? exists(c, end, work) : 0;
    }
    return 0;
}

int sf_noise_learn(sf_noise *n, const sf_cmp_side *first, const sf_cmp_side *second)
{
    if (n == NULL || first == NULL || second == NULL)
        return 0;
    n->rounds++;
    if (truncated(first) || truncated(second))
        return 0;
    unsigned notes = 0;
    int why, equal = same_bytes(first, second, &notes);
    json_t *a = parse(first, &why), *b = NULL;
    if (a == NULL)
        return why == PARSE_OOM ? -1 : 0;
    b = equal ? json_incref(a) : parse(second, &why);
    if (b == NULL) {
        json_decref(a);
        return why == PARSE_OOM ? -1 : 0;
    }
    walk w;
    walk_init(&w, &default_conf, NULL, n, 0);
    if (!equal)
        cmp_value(&w, a, b);
    /* Paths that did not differ this round and are there on both sides were equal: quieter. */
    long work = SF_NOISE_LEARN_WORK;
    for (size_t i = n->n; i-- > 0;) {
        noise_entry *e = &n->e[i];
        if (e->round == n->rounds || exists(a, e->path, &work) != 1 ||
            exists(b, e->path, &work) != 1)
            continue;
        if (--e->score == 0) {
            free(e->path);
            *e = n->e[--n->n];
        }
    }
    json_decref(a);
    json_decref(b);
    return w.oom ? -1 : w.learned;
}

static int stronger(const noise_entry *a, const noise_entry *b)
{
    return a->score != b->score ? a->score > b->score : strcmp(a->path, b->path) < 0;
}

size_t sf_noise_paths(const sf_noise *n, const char **paths, unsigned *scores, size_t max)
{
    if (n == NULL)
        return 0;
    /* a selection of the strongest max: the set is small and this is an admin call */
    const noise_entry *order[SF_NOISE_MAX_PATHS];
    for (size_t i = 0; i < n->n; i++) {
        size_t j = i;
        for (; j > 0 && stronger(&n->e[i], order[j - 1]); j--)
            order[j] = order[j - 1];
        order[j] = &n->e[i];
    }
    for (size_t i = 0; i < n->n && i < max; i++) {
        paths[i] = order[i]->path;
        if (scores != NULL)
            scores[i] = order[i]->score;
    }
    return n->n;
}

unsigned sf_noise_score(const sf_noise *n, const char *path)
{
    for (size_t i = 0; n != NULL && path != NULL && i < n->n; i++)
        if (strcmp(n->e[i].path, path) == 0)
            return n->e[i].score;
    return 0;
}

uint64_t sf_noise_rounds(const sf_noise *n)
{
    return n != NULL ? n->rounds : 0;
}
