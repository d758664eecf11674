/* Unit tests for routes/match: path normalization, route matching, sticky keys, the cutover split
 * and its stability, and the function's target. Routes are built by hand (compiled with PCRE2 as
 * the loader does) and, at the end, loaded from YAML through sf_table_load. Every input is copied
 * into a buffer of exactly its length and every output buffer is exactly as large as allowed, so a
 * read or write past the end is caught by the sanitized build. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "match.h"
#include "tap.h"

#define IN(s) .in = (s), .len = sizeof(s) - 1

static char *dup_exact(const char *in, size_t len)
{
    char *b = malloc(len ? len : 1);
    if (b == NULL)
        abort();
    if (len)
        memcpy(b, in, len);
    return b;
}

/* An uninitialised buffer of exactly len bytes. */
static char *room(size_t len)
{
    char *b = malloc(len ? len : 1);
    if (b == NULL)
        abort();
    return b;
}

static char *xstrdup(const char *s)
{
    char *d = strdup(s);
    if (d == NULL)
        abort();
    return d;
}

static sf_slice S(const char *s)
{
    return (sf_slice){s, strlen(s)};
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* xoshiro256** seeded with splitmix64: the per-request random the proxy would pass. */
typedef struct {
    uint64_t s[4];
} prng;

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static void prng_seed(prng *g, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        g->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t prng_next(prng *g)
{
    uint64_t *s = g->s;
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

/* --- normalization --------------------------------------------------------------------------- */

typedef struct {
    const char *in;
    size_t len;
    const char *want; /* NULL: -1 */
} norm_case;

static const norm_case norm_cases[] = {
    {IN("/"), "/"},
    {IN("/a"), "/a"},
    {IN("/a/b/c"), "/a/b/c"},
    {IN("/api/orders/7"), "/api/orders/7"},
    /* dot-segments, RFC 3986 §5.2.4 */
    {IN("/a/./b"), "/a/b"},
    {IN("/a/b/../c"), "/a/c"},
    {IN("/a/.."), "/"},
    {IN("/a/b/.."), "/a/"},
    {IN("/a/."), "/a/"},
    {IN("/."), "/"},
    {IN("/./"), "/"},
    {IN("/a/./"), "/a/"},
    {IN("/a/../"), "/"},
    {IN("/a/b/../"), "/a/"},
    {IN("/a/b/../../"), "/"},
    {IN("/./././."), "/"},
    {IN("/a/./b/./c/."), "/a/b/c/"},
    {IN("/a/b/c/../../d"), "/a/d"},
    {IN("/a/b/c/./../../g"), "/a/g"},
    {IN("/mid/content=5/../6"), "/mid/6"},
    {IN("/a/..."), "/a/..."},
    {IN("/a/.../b"), "/a/.../b"},
    {IN("/a/.b"), "/a/.b"},
    {IN("/a/b."), "/a/b."},
    {IN("/a/..b/c"), "/a/..b/c"},
    {IN("/a/b../c"), "/a/b../c"},
    /* encoded dots are dot-segments once decoded */
    {IN("/a/%2E%2E/b"), "/b"},
    {IN("/a/%2e%2e/b"), "/b"},
    {IN("/a/.%2e/b"), "/b"},
    {IN("/a/%2E./b"), "/b"},
    {IN("/a/%2e"), "/a/"},
    {IN("/a/%2e/"), "/a/"},
    {IN("/a/b/%2e%2E"), "/a/"},
    {IN("/a/%2E%2E%2E"), "/a/..."},
    {IN("/a%2e%2e/b"), "/a../b"},
    /* climbing above the root */
    {IN("/.."), NULL},
    {IN("/../"), NULL},
    {IN("/../a"), NULL},
    {IN("/a/../.."), NULL},
    {IN("/a/../../b"), NULL},
    {IN("/./.."), NULL},
    {IN("/%2e%2e"), NULL},
    {IN("/%2E%2E/a"), NULL},
    {IN("/a/b/../../.."), NULL},
    /* empty segments are segments */
    {IN("//"), "//"},
    {IN("//a//b//"), "//a//b//"},
    {IN("/a//../b"), "/a/b"},
    {IN("//.."), "/"},
    {IN("///../.."), "/"},
    /* escapes: unreserved decoded, the rest kept with uppercase hex */
    {IN("/a%2fb"), "/a%2Fb"},
    {IN("/a%2Fb"), "/a%2Fb"},
    {IN("/a%2F..%2Fb"), "/a%2F..%2Fb"},
    {IN("/a/%2F../b"), "/a/%2F../b"},
    {IN("/%41%42%43"), "/ABC"},
    {IN("/%61%7a%30%39"), "/az09"},
    {IN("/%2D%2E%5F%7E"), "/-._~"},
    {IN("/%7e"), "/~"},
    {IN("/%20"), "/%20"},
    {IN("/a%20b"), "/a%20b"},
    {IN("/%c3%a9"), "/%C3%A9"},
    {IN("/%C3%a9"), "/%C3%A9"},
    {IN("/%25"), "/%25"},
    {IN("/%2525"), "/%2525"},
    {IN("/%3f%23%3B"), "/%3F%23%3B"},
    {IN("/%ff"), "/%FF"},
    {IN("/%01"), "/%01"},
    /* invalid escapes */
    {IN("/%zz"), NULL},
    {IN("/%4"), NULL},
    {IN("/%"), NULL},
    {IN("/a%"), NULL},
    {IN("/a%2"), NULL},
    {IN("/%4g"), NULL},
    {IN("/%g4"), NULL},
    {IN("/%%41"), NULL},
    {IN("/%00"), NULL},
    {IN("/a%00b"), NULL},
    {IN("/a\0b"), NULL},
    /* not an absolute path */
    {IN(""), NULL},
    {IN("a/b"), NULL},
    {IN("./a"), NULL},
    {IN("%2Fa"), NULL},
    {IN("*"), NULL},
};

static void test_normalize_table(void)
{
    for (size_t i = 0; i < sizeof(norm_cases) / sizeof(norm_cases[0]); i++) {
        const norm_case *c = &norm_cases[i];
        char *in = dup_exact(c->in, c->len);
        char *out = room(c->len); /* len bytes, not one more */
        ssize_t n = sf_path_normalize(in, c->len, out);
        if (c->want == NULL) {
            if (!is(n, -1, "normalize %s is refused", tap_esc(c->in, c->len)) && n >= 0)
                diag("gave %s", tap_esc(out, (size_t)n));
        } else if (n < 0) {
            ok(0, "normalize %s gives %s", tap_esc(c->in, c->len), c->want);
            diag("got -1");
        } else {
            is_mem(out, (size_t)n, c->want, strlen(c->want), "normalize %s gives %s",
                   tap_esc(c->in, c->len), c->want);
        }
        /* in place gives the same */
        ssize_t m = sf_path_normalize(in, c->len, in);
        ok(m == n && (n < 0 || memcmp(in, out, (size_t)n) == 0),
           "normalize %s in place gives the same", tap_esc(c->in, c->len));
        free(in);
        free(out);
    }
}

/* Builds count copies of unit after head, then tail. */
static char *repeat(const char *head, const char *unit, size_t count, const char *tail, size_t *len)
{
    size_t h = strlen(head), u = strlen(unit), t = strlen(tail);
    *len = h + u * count + t;
    char *b = malloc(*len ? *len : 1), *w = b;
    if (b == NULL)
        abort();
    memcpy(w, head, h);
    w += h;
    for (size_t i = 0; i < count; i++, w += u)
        memcpy(w, unit, u);
    memcpy(w, tail, t);
    return b;
}

static int all_a(const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (p[i] != 'A')
            return 0;
    return 1;
}

typedef struct {
    const char *head, *unit;
    size_t count;
    const char *tail;
    const char *want; /* NULL: -1; "=": the input itself */
} long_case;

static void test_normalize_long(void)
{
    static const long_case cases[] = {
        {"", "/.", 300000, "", "/"},
        {"", "/.", 300000, "/", "/"},
        {"", "/./", 3, "", "///"},
        {"", "/a/..", 300000, "", "/"},
        {"", "/a/..", 300000, "/b", "/b"},
        {"", "/%2e", 200000, "/x", "/x"},
        {"", "/abc", 200000, "", "="},
        {"", "/", 500000, "", "="},
        {"/x", "/a/b/../..", 100000, "", "/x/"},
        {"/x", "/a/b/../..", 100000, "/y", "/x/y"},
        {"/", "x", 1000000, "", "="},
        {"", "%41", 200000, "", NULL}, /* no leading '/' */
        {"/", "%41", 200000, "", "A"}, /* "A" repeated, checked below */
        {"/a/..", "/a/..", 100000, "/..", NULL},
    };
    double start = now_s();
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const long_case *c = &cases[i];
        size_t len;
        char *in = repeat(c->head, c->unit, c->count, c->tail, &len);
        char *out = room(len);
        ssize_t n = sf_path_normalize(in, len, out);
        char name[128];
        snprintf(name, sizeof(name), "normalize %s + %zu x %s + %s (%zu bytes)", c->head, c->count,
                 c->unit, c->tail, len);
        if (c->want == NULL)
            is(n, -1, "%s is refused", name);
        else if (strcmp(c->want, "=") == 0)
            is_mem(out, n < 0 ? 0 : (size_t)n, in, len, "%s is unchanged", name);
        else if (strcmp(c->want, "A") == 0)
            ok(n == (ssize_t)c->count + 1 && out[0] == '/' && all_a(out + 1, (size_t)n - 1),
               "%s decodes every escape", name);
        else
            is_mem(out, n < 0 ? 0 : (size_t)n, c->want, strlen(c->want), "%s gives %s", name,
                   c->want);
        free(in);
        free(out);
    }
    /* linear: the inputs above are 0.6 to 1.5 MB each; quadratic work would take minutes */
    double took = now_s() - start;
    ok(took < 5.0, "long inputs normalize in linear time (%.3f s)", took);
}

/* --- prefix ---------------------------------------------------------------------------------- */

static void test_prefix(void)
{
    static const struct {
        const char *prefix, *path;
        int want;
    } cases[] = {
        {"/api/orders", "/api/orders", 1},
        {"/api/orders", "/api/orders/", 1},
        {"/api/orders", "/api/orders/7", 1},
        {"/api/orders", "/api/orders/7/x", 1},
        {"/api/orders", "/api/ordersX", 0},
        {"/api/orders", "/api/order", 0},
        {"/api/orders", "/api", 0},
        {"/api/orders", "/API/orders", 0},
        {"/api/orders", "/api/orders%2F7", 0},
        {"/api/orders/", "/api/orders/7", 1},
        {"/api/orders/", "/api/orders/", 1},
        {"/api/orders/", "/api/orders", 0},
        {"/", "/", 1},
        {"/", "/anything/at/all", 1},
        {"/a", "/a", 1},
        {"/a", "/ab", 0},
        {"/a", "/a/b", 1},
        {"/api//x", "/api//x/y", 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t pl = strlen(cases[i].prefix), l = strlen(cases[i].path);
        char *p = dup_exact(cases[i].prefix, pl), *s = dup_exact(cases[i].path, l);
        is(sf_path_prefix_match((sf_slice){p, pl}, (sf_slice){s, l}), cases[i].want,
           "prefix %s %s %s", cases[i].prefix, cases[i].want ? "covers" : "does not cover",
           cases[i].path);
        free(p);
        free(s);
    }
}

/* --- hand-built routes ----------------------------------------------------------------------- */

static pcre2_code *compile_jit(const char *pattern, uint32_t options, int jit)
{
    int err;
    PCRE2_SIZE off;
    pcre2_code *re =
        pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, options, &err, &off, NULL);
    if (re == NULL) {
        fprintf(stderr, "bad pattern in test: %s\n", pattern);
        abort();
    }
    if (jit)
        pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    return re;
}

static pcre2_code *compile_opts(const char *pattern, uint32_t options)
{
    return compile_jit(pattern, options, 1);
}

static pcre2_code *compile(const char *pattern)
{
    return compile_opts(pattern, 0);
}

static void route_init(sf_route *r, const char *name)
{
    memset(r, 0, sizeof(*r));
    r->name = xstrdup(name);
    r->name_len = strlen(name);
    r->cutover_bp = SF_CUTOVER_MAX;
}

static void route_path(sf_route *r, const char *path)
{
    r->path = xstrdup(path);
    r->path_len = strlen(path);
}

static void route_regex(sf_route *r, const char *regex)
{
    r->regex_src = xstrdup(regex);
    r->regex = compile(regex);
}

/* methods: NULL-terminated */
static void route_methods(sf_route *r, const char *const *methods)
{
    size_t n = 0;
    while (methods[n] != NULL)
        n++;
    r->methods = calloc(n, sizeof(char *));
    if (r->methods == NULL)
        abort();
    for (size_t i = 0; i < n; i++)
        r->methods[i] = xstrdup(methods[i]);
    r->nmethods = n;
}

static void route_header(sf_route *r, const char *name, const char *pattern)
{
    sf_header_match *h = realloc(r->headers, (r->nheaders + 1) * sizeof(*h));
    if (h == NULL)
        abort();
    r->headers = h;
    h = &r->headers[r->nheaders++];
    h->name = xstrdup(name);
    h->name_len = strlen(name);
    h->pattern = xstrdup(pattern);
    h->re = compile(pattern);
}

static void route_sticky(sf_route *r, int kind, const char *name)
{
    r->sticky = kind;
    if (name != NULL) {
        r->sticky_name = xstrdup(name);
        r->sticky_len = strlen(name);
    }
}

static void route_rewrite(sf_route *r, const char *regex, const char *to)
{
    r->rewrite_src = xstrdup(regex);
    r->rewrite_re = compile(regex);
    r->rewrite_to = xstrdup(to);
}

static void route_dispose(sf_route *r)
{
    free(r->name);
    free(r->path);
    free(r->regex_src);
    pcre2_code_free(r->regex);
    for (size_t i = 0; i < r->nmethods; i++)
        free(r->methods[i]);
    free(r->methods);
    for (size_t i = 0; i < r->nheaders; i++) {
        free(r->headers[i].name);
        free(r->headers[i].pattern);
        pcre2_code_free(r->headers[i].re);
    }
    free(r->headers);
    free(r->sticky_name);
    pcre2_code_free(r->rewrite_re);
    free(r->rewrite_src);
    free(r->rewrite_to);
}

/* A request: method, path and up to 8 headers given as "name", "value" pairs, NULL-terminated.
 * Every string is copied to an exact-size buffer. */
typedef struct {
    sf_match_input in;
    sf_kv kv[8];
    char *bufs[20];
    size_t nbufs;
} request;

static sf_slice req_copy(request *q, const char *s)
{
    size_t len = strlen(s);
    char *b = dup_exact(s, len);
    q->bufs[q->nbufs++] = b;
    return (sf_slice){b, len};
}

static void req_init(request *q, const char *method, const char *path, const char *const *hdrs)
{
    memset(q, 0, sizeof(*q));
    q->in.method = req_copy(q, method);
    q->in.path = req_copy(q, path);
    for (size_t i = 0; hdrs != NULL && hdrs[2 * i] != NULL; i++) {
        q->kv[i].name = req_copy(q, hdrs[2 * i]);
        q->kv[i].value = req_copy(q, hdrs[2 * i + 1]);
        q->in.nheaders = i + 1;
    }
    q->in.headers = q->kv;
}

static void req_dispose(request *q)
{
    for (size_t i = 0; i < q->nbufs; i++)
        free(q->bufs[i]);
}

/* The name of the route method path (headers) matches in routes, "-" for none. */
static const char *match_name(const sf_route *routes, size_t n, const char *method,
                              const char *path, const char *const *hdrs, pcre2_match_data *md)
{
    request q;
    req_init(&q, method, path, hdrs);
    const sf_route *r = sf_routes_match(routes, n, &q.in, md);
    sf_match_index *ix = sf_match_index_create(routes, n);
    const sf_route *via = ix != NULL ? sf_match_index_lookup(ix, &q.in, md) : NULL;
    sf_match_index_destroy(ix);
    req_dispose(&q);
    if (ix == NULL || via != r)
        return "the index disagrees with the scan";
    return r != NULL ? r->name : "-";
}

#define H(...) ((const char *const[]){__VA_ARGS__, NULL})

static void test_matching(pcre2_match_data *md)
{
    static const char *const get_head[] = {"GET", "HEAD", NULL};
    static const char *const post[] = {"POST", NULL};
    sf_route rs[9];
    size_t n = 0;

    route_init(&rs[n], "beta-orders");
    route_path(&rs[n], "/api/orders");
    route_header(&rs[n], "X-Tenant", "^beta-");
    n++;
    route_init(&rs[n], "orders-read");
    route_path(&rs[n], "/api/orders");
    route_methods(&rs[n], get_head);
    n++;
    route_init(&rs[n], "orders-write");
    route_path(&rs[n], "/api/orders");
    route_methods(&rs[n], post);
    n++;
    route_init(&rs[n], "parts");
    route_regex(&rs[n], "^/api/v2/items/[0-9]+/parts$");
    n++;
    route_init(&rs[n], "both-headers");
    route_path(&rs[n], "/api/two");
    route_header(&rs[n], "x-a", "^1$");
    route_header(&rs[n], "x-b", "^2$");
    n++;
    route_init(&rs[n], "static");
    route_path(&rs[n], "/static/");
    n++;
    route_init(&rs[n], "encoded");
    route_regex(&rs[n], "^/files/a%2Fb$");
    n++;
    route_init(&rs[n], "empty-header");
    route_path(&rs[n], "/empty");
    route_header(&rs[n], "x-e", "^$");
    n++;
    route_init(&rs[n], "catch-api");
    route_path(&rs[n], "/api");
    n++;

    const struct {
        const char *method, *path;
        const char *const *hdrs;
        const char *want, *why;
    } cases[] = {
        {"GET", "/api/orders", NULL, "orders-read", "GET on the prefix"},
        {"GET", "/api/orders/7", NULL, "orders-read", "GET under the prefix"},
        {"HEAD", "/api/orders/7", NULL, "orders-read", "HEAD is listed"},
        {"POST", "/api/orders", NULL, "orders-write", "POST skips the GET/HEAD route"},
        {"PUT", "/api/orders/7", NULL, "catch-api", "PUT is on neither orders route"},
        {"get", "/api/orders", NULL, "catch-api", "methods are case-sensitive"},
        {"GETX", "/api/orders", NULL, "catch-api", "a method is compared whole (GETX)"},
        {"GE", "/api/orders", NULL, "catch-api", "a method is compared whole (GE)"},
        {"GET", "/api/ordersX", NULL, "catch-api", "prefix on segment boundaries"},
        {"DELETE", "/api/orders/7", H("X-Tenant", "beta-1"), "beta-orders",
         "header condition matches, first in file order"},
        {"GET", "/api/orders/7", H("x-tenant", "beta-1"), "beta-orders",
         "header names are case-insensitive (lower)"},
        {"GET", "/api/orders/7", H("X-TENANT", "beta-1"), "beta-orders",
         "header names are case-insensitive (upper)"},
        {"GET", "/api/orders/7", H("X-Tenant", "prod-1"), "orders-read",
         "header value not matching falls through"},
        {"GET", "/api/orders/7", H("X-Tenant", "prod-1", "X-Tenant", "beta-2"), "beta-orders",
         "any occurrence of a header may match"},
        {"GET", "/api/orders/7", H("X-Tenant", "beta-2", "X-Tenant", "prod-1"), "beta-orders",
         "any occurrence, first one"},
        {"GET", "/api/orders/7", H("X-Tenant-Id", "beta-1"), "orders-read",
         "a header name is compared whole"},
        {"GET", "/api/orders/7", H("X-Other", "beta-1"), "orders-read",
         "a missing header does not match"},
        {"GET", "/api/v2/items/42/parts", NULL, "parts", "regex on the path"},
        {"POST", "/api/v2/items/42/parts", NULL, "parts", "regex route with all methods"},
        {"GET", "/api/v2/items/x/parts", NULL, "catch-api", "regex not matching"},
        {"GET", "/api/v2/items/42/parts/", NULL, "catch-api", "regex anchored at the end"},
        {"GET", "/api/two", H("x-a", "1", "x-b", "2"), "both-headers", "every header condition"},
        {"GET", "/api/two", H("x-b", "2", "x-a", "1"), "both-headers", "in any order"},
        {"GET", "/api/two", H("x-a", "1"), "catch-api", "one header condition missing"},
        {"GET", "/api/two", H("x-a", "1", "x-b", "3"), "catch-api", "one header not matching"},
        {"GET", "/static/app.js", NULL, "static", "trailing-slash prefix"},
        {"GET", "/static/", NULL, "static", "trailing-slash prefix itself"},
        {"GET", "/static", NULL, "-", "trailing-slash prefix does not cover the bare path"},
        {"GET", "/files/a%2Fb", NULL, "encoded", "%2F stays encoded for regexes"},
        {"GET", "/empty", H("x-e", ""), "empty-header", "an empty value can match"},
        {"GET", "/empty", NULL, "-", "but a missing header does not"},
        {"GET", "/api", NULL, "catch-api", "catch-all prefix"},
        {"GET", "/", NULL, "-", "unmatched: legacy"},
        {"GET", "/apix", NULL, "-", "unmatched: not on a segment boundary"},
        {"GET", "/other/path", NULL, "-", "unmatched path"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        is_str(match_name(rs, n, cases[i].method, cases[i].path, cases[i].hdrs, md), cases[i].want,
               "match %s %s: %s", cases[i].method, cases[i].path, cases[i].why);

    is_str(match_name(rs, 0, "GET", "/api", NULL, md), "-", "match on no routes: legacy");
    is_str(match_name(rs + 1, 1, "GET", "/api/orders/1", NULL, md), "orders-read",
           "match over a sub-array");

    /* the same path through the normalizer */
    char out[64];
    const char *raw = "/api/v2/items/%34%32/./parts";
    ssize_t len = sf_path_normalize(raw, strlen(raw), out);
    request q;
    req_init(&q, "GET", "/", NULL);
    q.in.path = (sf_slice){out, len < 0 ? 0 : (size_t)len};
    const sf_route *r = sf_routes_match(rs, n, &q.in, md);
    is_str(r != NULL ? r->name : "-", "parts", "regex on the normalized path of %s", raw);
    req_dispose(&q);

    for (size_t i = 0; i < n; i++)
        route_dispose(&rs[i]);
}

/* --- sticky keys ----------------------------------------------------------------------------- */

static const char *key_of(const sf_route *r, const char *const *hdrs, const char *ip)
{
    static char buf[256];
    request q;
    sf_slice key = {NULL, 0};
    req_init(&q, "GET", "/", hdrs);
    q.in.client_ip = req_copy(&q, ip);
    int got = sf_route_sticky_key(r, &q.in, &key);
    if (got)
        snprintf(buf, sizeof(buf), "%.*s", (int)key.len, key.p);
    req_dispose(&q);
    return got ? buf : NULL;
}

static void test_sticky_keys(void)
{
    sf_route hdr, cookie, ip, none;
    route_init(&hdr, "r");
    route_sticky(&hdr, SF_STICKY_HEADER, "X-User-Id");
    route_init(&cookie, "r");
    route_sticky(&cookie, SF_STICKY_COOKIE, "sid");
    route_init(&ip, "r");
    route_sticky(&ip, SF_STICKY_CLIENT_IP, NULL);
    route_init(&none, "r");

    is_str(key_of(&hdr, H("x-user-id", "u1"), "1.2.3.4"), "u1", "header key, any case");
    is_str(key_of(&hdr, H("X-USER-ID", "u1"), ""), "u1", "header key, upper case");
    is_str(key_of(&hdr, H("x-user-id", "", "X-User-Id", "u2"), ""), "u2",
           "header key: the first non-empty value");
    is_str(key_of(&hdr, H("x-user-id", "u1", "x-user-id", "u2"), ""), "u1",
           "header key: the first occurrence");
    is_str(key_of(&hdr, H("x-user", "u1"), "1.2.3.4"), NULL, "header key: name compared whole");
    is_str(key_of(&hdr, NULL, "1.2.3.4"), NULL, "header key missing: none");

    const struct {
        const char *const *hdrs;
        const char *want, *why;
    } cookies[] = {
        {H("Cookie", "sid=abc"), "abc", "one cookie"},
        {H("Cookie", "a=1; sid=abc; b=2"), "abc", "among others"},
        {H("Cookie", "a=1;sid=abc;b=2"), "abc", "no spaces after ';'"},
        {H("Cookie", "a=1 ;  sid = abc ; b=2"), "abc", "spaces around name and value"},
        {H("Cookie", "sid=\"q v\""), "q v", "a quoted value is unquoted"},
        {H("Cookie", "sid=\"\"; sid=x"), "x", "an empty quoted value is skipped"},
        {H("Cookie", "sid=; sid=two"), "two", "an empty value is skipped"},
        {H("Cookie", "sid=one; sid=two"), "one", "the first of two"},
        {H("Cookie", "xsid=1; sidx=2; SID=3"), NULL, "names are exact and case-sensitive"},
        {H("Cookie", "sid"), NULL, "a name without '='"},
        {H("Cookie", "sid; a=1"), NULL, "a pair without '=' is skipped"},
        {H("Cookie", "junk; sid=ok"), "ok", "after a pair without '='"},
        {H("Cookie", ";;; sid=ok;;"), "ok", "empty pairs"},
        {H("Cookie", "sid=a=b"), "a=b", "the value runs to ';'"},
        {H("Cookie", "sid=\"x"), "\"x", "a lone quote is kept"},
        {H("Cookie", "a=1", "cookie", "sid=second"), "second", "a second Cookie header"},
        {H("Cookie", "sid=", "COOKIE", "sid=z"), "z", "empty in the first header"},
        {H("Set-Cookie", "sid=no"), NULL, "Set-Cookie is not Cookie"},
        {H("Cookie", ""), NULL, "an empty Cookie header"},
        {NULL, NULL, "no Cookie header"},
    };
    for (size_t i = 0; i < sizeof(cookies) / sizeof(cookies[0]); i++)
        is_str(key_of(&cookie, cookies[i].hdrs, "1.2.3.4"), cookies[i].want, "cookie key: %s",
               cookies[i].why);

    is_str(key_of(&ip, NULL, "10.0.0.7"), "10.0.0.7", "client_ip key");
    is_str(key_of(&ip, NULL, ""), NULL, "client_ip empty: none");
    is_str(key_of(&none, H("x-user-id", "u1"), "10.0.0.7"), NULL, "sticky none: no key");

    /* a request without its key is split at random: rnd decides */
    request q;
    req_init(&q, "GET", "/", NULL);
    hdr.cutover_bp = 5000;
    is(sf_route_decide(&hdr, &q.in, 4999), 1, "without a key, rnd %% 10000 < cutover: function");
    is(sf_route_decide(&hdr, &q.in, 5000), 0, "without a key, rnd %% 10000 >= cutover: legacy");
    is(sf_route_decide(&hdr, &q.in, 10000 + 4999), 1, "rnd is taken modulo 10000");
    req_dispose(&q);

    /* with a key, rnd plays no part */
    req_init(&q, "GET", "/", H("x-user-id", "alice"));
    int first = sf_route_decide(&hdr, &q.in, 0), same = 1;
    for (uint64_t rnd = 1; rnd < 10000; rnd += 7)
        same &= sf_route_decide(&hdr, &q.in, rnd) == first;
    ok(same, "with a key, the decision does not depend on rnd");
    req_dispose(&q);

    route_dispose(&hdr);
    route_dispose(&cookie);
    route_dispose(&ip);
    route_dispose(&none);
}

/* --- the split ------------------------------------------------------------------------------- */

/* The documented algorithm, written again from the comment in match.c. */
static uint32_t reference_bucket(const char *name, const char *key, size_t keylen)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (const char *p = name; *p; p++)
        h = (h ^ (unsigned char)*p) * 0x100000001b3u;
    h *= 0x100000001b3u;
    for (size_t i = 0; i < keylen; i++)
        h = (h ^ (unsigned char)key[i]) * 0x100000001b3u;
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9u;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebu;
    h ^= h >> 31;
    return (uint32_t)(h % 10000);
}

static void test_bucket_vectors(void)
{
    /* Computed once. If one of these changes, users move between legacy and the function on
     * upgrade: do not update the numbers, restore the hash. */
    static const struct {
        const char *name, *key;
        uint32_t bucket;
    } v[] = {
        {"orders", "alice", 9942},
        {"orders", "bob", 848},
        {"catalog", "alice", 459},
        {"orders", "", 4702},
        {"", "", 4608},
        {"orders", "10.0.0.7", 852},
        {"checkout", "user-123456", 4236},
        {"a", "bc", 4094},
        {"ab", "c", 794},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
        is(sf_sticky_bucket(S(v[i].name), S(v[i].key)), v[i].bucket, "bucket of (%s, %s)",
           v[i].name, v[i].key);

    int same = 1;
    char key[32];
    for (int i = 0; i < 2000; i++) {
        int len = snprintf(key, sizeof(key), "k%d", i * 7919);
        same &= sf_sticky_bucket(S("route-x"), (sf_slice){key, (size_t)len}) ==
                reference_bucket("route-x", key, (size_t)len);
    }
    ok(same, "sf_sticky_bucket follows the documented algorithm on 2000 keys");
    ok(sf_sticky_bucket(S("a"), S("bc")) != sf_sticky_bucket(S("ab"), S("c")),
       "the 0x00 separator keeps (a, bc) and (ab, c) apart");
    char bin[] = {'x', 0, 'y'};
    ok(sf_sticky_bucket(S("r"), (sf_slice){bin, 3}) == reference_bucket("r", bin, 3),
       "a key with a zero byte hashes all its bytes");
}

static sf_slice key_n(char *buf, size_t cap, unsigned i)
{
    int len = snprintf(buf, cap, "user-%u", i);
    return (sf_slice){buf, (size_t)len};
}

static void test_split(void)
{
    static const uint32_t cutovers[] = {0, 1, 100, 1000, 2500, 3333, 5000, 9999, 10000};
    const unsigned keys = 100000;
    sf_route r;
    route_init(&r, "orders");
    route_sticky(&r, SF_STICKY_HEADER, "x-user-id");
    sf_kv kv = {S("x-user-id"), {NULL, 0}};
    sf_match_input in = {S("GET"), S("/api/orders"), &kv, 1, S("")};
    char buf[32];

    for (size_t c = 0; c < sizeof(cutovers) / sizeof(cutovers[0]); c++) {
        r.cutover_bp = cutovers[c];
        unsigned fn = 0;
        for (unsigned i = 0; i < keys; i++) {
            kv.value = key_n(buf, sizeof(buf), i);
            fn += (unsigned)sf_route_decide(&r, &in, 0);
        }
        double share = 100.0 * fn / keys, want = cutovers[c] / 100.0;
        if (cutovers[c] == 0)
            is(fn, 0, "sticky split at 0%%: no key goes to the function");
        else if (cutovers[c] == SF_CUTOVER_MAX)
            is(fn, keys, "sticky split at 100%%: every key goes to the function");
        else
            ok(share >= want - 1 && share <= want + 1,
               "sticky split at %.2f%%: %.3f%% of %u keys go to the function", want, share, keys);
    }

    /* without sticky: the caller's PRNG decides */
    sf_route plain;
    route_init(&plain, "orders");
    prng g;
    prng_seed(&g, 42);
    for (size_t c = 0; c < sizeof(cutovers) / sizeof(cutovers[0]); c++) {
        plain.cutover_bp = cutovers[c];
        unsigned fn = 0;
        for (unsigned i = 0; i < keys; i++)
            fn += (unsigned)sf_route_decide(&plain, &in, prng_next(&g));
        double share = 100.0 * fn / keys, want = cutovers[c] / 100.0;
        if (cutovers[c] == 0)
            is(fn, 0, "random split at 0%%: none to the function");
        else if (cutovers[c] == SF_CUTOVER_MAX)
            is(fn, keys, "random split at 100%%: all to the function");
        else
            ok(share >= want - 1 && share <= want + 1,
               "random split at %.2f%%: %.3f%% of %u requests go to the function", want, share,
               keys);
    }
    /* sticky, but the request has no key: random too */
    r.cutover_bp = 2500;
    kv.name = S("x-other");
    kv.value = S("v");
    unsigned fn = 0;
    for (unsigned i = 0; i < keys; i++)
        fn += (unsigned)sf_route_decide(&r, &in, prng_next(&g));
    ok(fn > keys / 4 - keys / 100 && fn < keys / 4 + keys / 100,
       "sticky without the key in the request: random split, %u of %u at 25%%", fn, keys);

    route_dispose(&r);
    route_dispose(&plain);
}

/* 1,000,000 keys into 10,000 buckets (100 expected in each): the chi-square statistic (9999
 * degrees of freedom: mean 9999, sd 141) must be within 5 sd of its mean. A skewed hash lands far
 * above; one too regular to be a hash (a counter modulo 10000) lands far below. */
static void test_uniform(void)
{
    enum { NKEYS = 1000000 };
    uint32_t *count = calloc(SF_CUTOVER_MAX, sizeof(*count));
    char buf[32];
    if (count == NULL)
        abort();
    for (unsigned i = 0; i < NKEYS; i++)
        count[sf_sticky_bucket(S("orders"), key_n(buf, sizeof(buf), i))]++;
    double chi = 0, expect = (double)NKEYS / SF_CUTOVER_MAX;
    uint32_t lo = UINT32_MAX, hi = 0;
    for (int b = 0; b < SF_CUTOVER_MAX; b++) {
        double d = count[b] - expect;
        chi += d * d / expect;
        lo = count[b] < lo ? count[b] : lo;
        hi = count[b] > hi ? count[b] : hi;
    }
    ok(chi > 9999 - 5 * 141 && chi < 9999 + 5 * 141,
       "buckets uniform: chi-square %.0f over 9999 degrees of freedom (bucket sizes %u..%u)", chi,
       lo, hi);
    /* Poisson(100): a bucket under 45 or over 165 has a probability below 1e-9 each */
    ok(lo >= 45 && hi <= 165, "no bucket far from 100 keys (%u..%u)", lo, hi);

    /* the hundreds: 100 groups of 100 buckets, 10,000 keys each; 4.5 sd is 450 */
    int worst = 0;
    for (int gix = 0; gix < 100; gix++) {
        int sum = 0;
        for (int b = 0; b < 100; b++)
            sum += (int)count[gix * 100 + b];
        int dev = abs(sum - 10000);
        worst = dev > worst ? dev : worst;
    }
    ok(worst < 450, "every percent of buckets holds 1%% of keys (worst off by %d of 10000)", worst);
    free(count);

    /* the bucket depends on the route name: two routes split independently */
    int equal = 0, both = 0, first = 0;
    for (unsigned i = 0; i < 100000; i++) {
        sf_slice k = key_n(buf, sizeof(buf), i);
        uint32_t a = sf_sticky_bucket(S("orders"), k), b = sf_sticky_bucket(S("catalog"), k);
        equal += a == b;
        first += a < 5000;
        both += a < 5000 && b < 5000;
    }
    ok(equal < 100, "a key's bucket depends on the route name (%d of 100000 equal)", equal);
    ok(both > 24000 && both < 26000,
       "at 50%% on two routes, a quarter of keys go to both functions (%d of 100000)", both);
    ok(first > 49000 && first < 51000, "and half to the first (%d)", first);
}

/* Raising the cutover only ever moves keys from legacy to the function. */
static void test_monotonic(void)
{
    enum { NKEYS = 10000 };
    unsigned char *fn = malloc(NKEYS);
    sf_route r;
    sf_kv kv = {S("x-user-id"), {NULL, 0}};
    sf_match_input in = {S("GET"), S("/"), &kv, 1, S("")};
    char buf[32];
    prng g;
    if (fn == NULL)
        abort();
    prng_seed(&g, 7);
    route_init(&r, "ramp");
    route_sticky(&r, SF_STICKY_HEADER, "x-user-id");
    for (int ramp = 0; ramp < 10; ramp++) {
        int back = 0, steps = 0, never = 0;
        memset(fn, 0, NKEYS);
        uint32_t cut = 0;
        while (1) {
            r.cutover_bp = cut;
            for (unsigned i = 0; i < NKEYS; i++) {
                kv.value = key_n(buf, sizeof(buf), i + 1000000u * (unsigned)ramp);
                int d = sf_route_decide(&r, &in, prng_next(&g));
                if (fn[i] && !d)
                    back++;
                fn[i] |= (unsigned char)d;
            }
            steps++;
            if (cut == SF_CUTOVER_MAX)
                break;
            cut += 1 + (uint32_t)(prng_next(&g) % 2500);
            cut = cut > SF_CUTOVER_MAX ? SF_CUTOVER_MAX : cut;
        }
        for (unsigned i = 0; i < NKEYS; i++)
            never += !fn[i];
        ok(back == 0 && never == 0,
           "ramp %d, 0 -> 100%% in %d steps: no key went back to legacy (%d did), all reached the "
           "function",
           ramp + 1, steps, back);
    }
    route_dispose(&r);
    free(fn);
}

/* --- the index ------------------------------------------------------------------------------- */

/* Whether the index finds what the scan finds for path over routes; on a difference, says
 * which. */
static int same_as_scan(const sf_route *routes, size_t n, const sf_match_index *ix,
                        const sf_match_input *in, pcre2_match_data *md, const char *what)
{
    const sf_route *a = sf_routes_match(routes, n, in, md), *b = sf_match_index_lookup(ix, in, md);
    if (a == b)
        return 1;
    diag("%s: %s %s: the scan gives %s, the index %s", what, tap_esc(in->method.p, in->method.len),
         tap_esc(in->path.p, in->path.len), a ? a->name : "none", b ? b->name : "none");
    return 0;
}

/* Regexes whose literal start is easy to get wrong: each is tried on every path below, alone and
 * after routes that share its literal, and the index must agree with the scan (which asks PCRE2)
 * every time. Patterns that would give a wrong literal (an optional character, a top-level '|'
 * hidden by a comment or extended mode, a case-insensitive flag) make this fail. */
static void test_index_regex_literals(pcre2_match_data *md)
{
    static const struct {
        const char *re;
        uint32_t options;
    } pats[] = {
        {"^/api/v2/items/[0-9]+/parts$", 0},
        {"^/a|/b", 0},
        {"^/ab?c", 0},
        {"^/ab*c", 0},
        {"^/ab{0,2}c", 0},
        {"^/ab+c", 0},
        {"^/a\\.b", 0},
        {"^/a\\/b", 0},
        {"^\\/a", 0},
        {"^/a(?i)b", 0},
        {"(?i)^/A", 0},
        {"^/A", PCRE2_CASELESS},
        {"^/a b", PCRE2_EXTENDED},
        {"^/a(?x) b", 0},
        {"^/a(?x)#(\n|/b", 0},
        {"^/a(?x)#(\n|/b#)\n", 0},
        {"^/a(?#(|)b", 0},
        {"^/a(?#()|/b", 0},
        {"^/a\\Q(\\E|/b\\Q)\\E", 0},
        {"^/a[(]|/b[)]", 0},
        {"^/a\\c(|/b\\c)", 0},
        {"^/a[\\Q](\\E]|/b[\\Q])\\E]", 0},
        {"^/a[\\c](]|/b[\\c])]", 0},
        {"^/a(?C'(')|/b(?C')')", 0},
        {"^/a[[:a]|/b]", 0},
        {"^/a[[:alpha:]]", 0},
        {"^/a[]|/b]", PCRE2_ALLOW_EMPTY_CLASS},
        {"^/a(*MARK:()|/b", 0},
        {"^/\\101b", 0},
        {"^/a\\\xc3\xa9?", PCRE2_UTF},
        {"^/caf\xc3\xa9?", PCRE2_UTF},
        {"^/a[|(]b", 0},
        {"^/a[]|]b", 0},
        {"^/a[^]|]b", 0},
        {"^/a[[:alpha:]|]b", 0},
        {"^/a\\Q|\\E", 0},
        {"^/a(*MARK:x|y)b", 0},
        {"^/a(b|c)", 0},
        {"^(/a|/b)", 0},
        {"^/a(?|(b)|(c))", 0},
        {"/b$", 0},
        {"\\A/a/b", 0},
        {"/a/b", PCRE2_ANCHORED},
        {"^/b", PCRE2_MULTILINE},
        {"^/a\\d", 0},
        {"^/a\\x2Fb", 0},
        {"^/a$", 0},
        {"^/a%2Fb", 0},
        {"^/caf\xc3\xa9", 0},
        {"^/caf\xc3\xa9?", 0},
        {"^/a/b\\", 0 /* invalid: not compiled */},
        {"^/a(?-x:b)", 0},
        {"^/a(?x:\n)b", 0},
        {"^/a\\ b", 0},
        {"^$", 0},
        {"^", 0},
        {"", 0},
    };
    static const char *const paths[] = {
        "/",
        "/a",
        "/b",
        "/ab",
        "/ac",
        "/abc",
        "/abbc",
        "/abbbc",
        "/a.b",
        "/axb",
        "/a/b",
        "/aB",
        "/A",
        "/a b",
        "/a|b",
        "/a]b",
        "/a(b",
        "/a|",
        "/x/b",
        "/a1",
        "/a\n",
        "/a\n/b",
        "/a%2Fb",
        "/caf\xc3\xa9",
        "/caf",
        "/a/bc",
        "/abx",
        "/api/v2/items/7/parts",
        "/api/v2/items/x/parts",
        "/ad",
        "/a/b/c",
        "/ab/",
        "/aa",
        "/c",
        "/b)",
        "/Ab",
        "/b#",
        "/caf\xc3",
        "/a\xff",
        "/bi",
        "/b]",
    };
    size_t agree = 0, total = 0, compiled = 0;
    for (size_t i = 0; i < sizeof(pats) / sizeof(pats[0]); i++) {
        int err;
        PCRE2_SIZE off;
        pcre2_code *re = pcre2_compile((PCRE2_SPTR)pats[i].re, PCRE2_ZERO_TERMINATED,
                                       pats[i].options, &err, &off, NULL);
        if (re == NULL)
            continue;
        pcre2_code_free(re);
        compiled++;
        /* routes: filler sharing literals, the pattern, then filler after it */
        sf_route rs[4];
        route_init(&rs[0], "filler-a");
        route_path(&rs[0], "/a/b/c/d");
        route_init(&rs[1], "pattern");
        rs[1].regex_src = xstrdup(pats[i].re);
        rs[1].regex = compile_jit(pats[i].re, pats[i].options, i % 2); /* JIT or interpreter */
        route_init(&rs[2], "filler-ab");
        route_path(&rs[2], "/ab");
        route_init(&rs[3], "filler-root");
        route_path(&rs[3], "/");
        for (size_t k = 1; k <= 4; k++) {
            /* alone, then with what follows it (k routes from rs + 1, then from rs) */
            const sf_route *base = k <= 2 ? rs + 1 : rs;
            size_t n = k <= 2 ? k : k;
            if (base + n > rs + 4)
                n = (size_t)(rs + 4 - base);
            sf_match_index *ix = sf_match_index_create(base, n);
            for (size_t j = 0; j < sizeof(paths) / sizeof(paths[0]); j++) {
                request q;
                req_init(&q, "GET", paths[j], NULL);
                agree += (size_t)same_as_scan(base, n, ix, &q.in, md, pats[i].re);
                total++;
                req_dispose(&q);
            }
            sf_match_index_destroy(ix);
        }
        for (size_t k = 0; k < 4; k++)
            route_dispose(&rs[k]);
    }
    ok(compiled >= sizeof(pats) / sizeof(pats[0]) - 1, "the test patterns compile (%zu)", compiled);
    is((long long)agree, (long long)total,
       "index and scan agree on %zu tricky regexes x %zu paths x 4 route sets", compiled,
       sizeof(paths) / sizeof(paths[0]));
}

/* Random tables over a small alphabet, so literals overlap and nest, against random requests. */
static void test_index_random(pcre2_match_data *md)
{
    static const char *const segs[] = {"a", "b", "ab", "api", "v1", "x"};
    static const char *const tails[] = {"",   "$",     "/?$",   "[0-9]+$", "(/.*)?$",
                                        "b?", "/x|/a", "(x|y)", ".*",      "/[a-z]+/[0-9]+$"};
    static const char *const methods[] = {"GET", "HEAD", "POST", "PURGE", "get", "DELETE"};
    enum { TABLES = 150, REQS = 150, MAXR = 40 };
    prng g;
    prng_seed(&g, 2024);
    size_t agree = 0, total = 0, matched = 0;
    char buf[128];

    for (int t = 0; t < TABLES; t++) {
        sf_route rs[MAXR];
        size_t n = 1 + prng_next(&g) % MAXR;
        for (size_t i = 0; i < n; i++) {
            snprintf(buf, sizeof(buf), "r%zu", i);
            route_init(&rs[i], buf);
            size_t w = 0, nseg = prng_next(&g) % 4;
            int regex = prng_next(&g) % 3 == 0, anchored = prng_next(&g) % 5 != 0;
            if (regex && anchored)
                buf[w++] = '^';
            for (size_t k = 0; k < nseg; k++)
                w += (size_t)snprintf(buf + w, sizeof(buf) - w, "/%s",
                                      segs[prng_next(&g) % (sizeof(segs) / sizeof(segs[0]))]);
            if (regex) {
                snprintf(buf + w, sizeof(buf) - w, "%s",
                         tails[prng_next(&g) % (sizeof(tails) / sizeof(tails[0]))]);
                route_regex(&rs[i], buf);
            } else {
                if (w == 0 || prng_next(&g) % 6 == 0)
                    buf[w++] = '/';
                buf[w] = '\0';
                route_path(&rs[i], buf);
            }
            if (prng_next(&g) % 4 == 0) {
                const char *list[4] = {NULL, NULL, NULL, NULL};
                size_t nm = 1 + prng_next(&g) % 3;
                for (size_t k = 0; k < nm; k++)
                    list[k] = methods[prng_next(&g) % (sizeof(methods) / sizeof(methods[0]))];
                route_methods(&rs[i], list);
            }
            if (prng_next(&g) % 8 == 0)
                route_header(&rs[i], "x-t", "^b");
        }
        sf_match_index *ix = sf_match_index_create(rs, n);
        for (int q = 0; q < REQS; q++) {
            size_t w = 0, nseg = prng_next(&g) % 5;
            for (size_t k = 0; k < nseg; k++)
                w += (size_t)snprintf(buf + w, sizeof(buf) - w, "/%s",
                                      prng_next(&g) % 7 == 0
                                          ? "12"
                                          : segs[prng_next(&g) % (sizeof(segs) / sizeof(segs[0]))]);
            if (w == 0 || prng_next(&g) % 5 == 0)
                buf[w++] = '/';
            buf[w] = '\0';
            request rq;
            const char *m = methods[prng_next(&g) % (sizeof(methods) / sizeof(methods[0]))];
            if (prng_next(&g) % 3 == 0)
                req_init(&rq, m, buf, H("X-T", prng_next(&g) % 2 ? "beta" : "prod"));
            else
                req_init(&rq, m, buf, NULL);
            agree += (size_t)same_as_scan(rs, n, ix, &rq.in, md, "random table");
            matched += sf_routes_match(rs, n, &rq.in, md) != NULL;
            total++;
            req_dispose(&rq);
        }
        sf_match_index_destroy(ix);
        for (size_t i = 0; i < n; i++)
            route_dispose(&rs[i]);
    }
    is((long long)agree, (long long)total,
       "index and scan agree on %d random tables x %d requests (%zu matched a route)", TABLES, REQS,
       matched);
    ok(matched > total / 4 && matched < total - total / 10,
       "the random requests both match and miss (%zu of %zu match)", matched, total);
}

/* More nested literals on one path than the index merges: it falls back to the scan. */
static void test_index_deep(pcre2_match_data *md)
{
    enum { DEPTH = 40 };
    sf_route rs[DEPTH + 2];
    char path[4 * DEPTH + 8];
    size_t w = 0;
    for (size_t i = 0; i < DEPTH; i++) {
        w += (size_t)snprintf(path + w, sizeof(path) - w, "/a");
        char name[16];
        snprintf(name, sizeof(name), "d%zu", DEPTH - i);
        route_init(&rs[DEPTH - 1 - i], name); /* deepest first */
        route_path(&rs[DEPTH - 1 - i], path);
        route_methods(&rs[DEPTH - 1 - i], (const char *const[]){"POST", NULL});
    }
    route_init(&rs[DEPTH], "regex");
    route_regex(&rs[DEPTH], "^/a/a/a");
    route_init(&rs[DEPTH + 1], "root");
    route_path(&rs[DEPTH + 1], "/");
    sf_match_index *ix = sf_match_index_create(rs, DEPTH + 2);
    int same = 1;
    for (size_t len = 2; len <= w; len += 2) {
        for (int m = 0; m < 2; m++) {
            request q;
            char p[sizeof(path)];
            snprintf(p, sizeof(p), "%.*s/z", (int)len, path);
            req_init(&q, m ? "POST" : "GET", p, NULL);
            same &= same_as_scan(rs, DEPTH + 2, ix, &q.in, md, "deep");
            req_dispose(&q);
        }
    }
    ok(same, "%d nested prefixes on one path: the index agrees with the scan", DEPTH);
    sf_match_index_destroy(ix);
    for (size_t i = 0; i < DEPTH + 2; i++)
        route_dispose(&rs[i]);

    sf_match_index *none = sf_match_index_create(NULL, 0);
    request q;
    req_init(&q, "GET", "/", NULL);
    ok(none != NULL && sf_match_index_lookup(none, &q.in, md) == NULL,
       "an index over no routes finds none");
    req_dispose(&q);
    sf_match_index_destroy(none);
    sf_match_index_destroy(NULL);
}

/* --- the function's target ------------------------------------------------------------------- */

/* The target for path and query with exactly cap bytes of room, as a string ("-1" when it
 * fails). */
static const char *target(const sf_route *r, const char *path, const char *query, size_t cap,
                          pcre2_match_data *md)
{
    static char res[512];
    size_t pl = strlen(path), ql = strlen(query);
    char *p = dup_exact(path, pl), *q = dup_exact(query, ql), *out = room(cap);
    ssize_t n = sf_route_function_target(r, (sf_slice){p, pl}, (sf_slice){q, ql}, md, out, cap);
    if (n < 0)
        snprintf(res, sizeof(res), "-1");
    else if ((size_t)n > cap)
        snprintf(res, sizeof(res), "overflow: %zd > %zu", n, cap);
    else
        snprintf(res, sizeof(res), "%.*s", (int)n, out);
    free(p);
    free(q);
    free(out);
    return res;
}

static void test_function_target(pcre2_match_data *md)
{
    char prefix[] = "/api/orders-fn", empty[] = "";
    sf_function fn_prefix = {.url = {.path = prefix}};
    sf_function fn_root = {.url = {.path = empty}};
    sf_route rw, rw_root, plain, plain_root, bad, unset, grow;

    route_init(&rw, "rw");
    rw.function = &fn_prefix;
    route_rewrite(&rw, "^/api/orders(.*)$", "/orders$1");
    route_init(&rw_root, "rw-root");
    rw_root.function = &fn_root;
    route_rewrite(&rw_root, "^/api/orders(.*)$", "/orders$1");
    route_init(&plain, "plain");
    plain.function = &fn_prefix;
    route_init(&plain_root, "plain-root");
    plain_root.function = &fn_root;
    route_init(&bad, "bad");
    bad.function = &fn_root;
    route_rewrite(&bad, "^/api/", "");
    route_init(&unset, "unset");
    unset.function = &fn_root;
    route_rewrite(&unset, "^/api/orders(/.*)?$", "/o$1");
    route_init(&grow, "grow");
    grow.function = &fn_prefix;
    route_rewrite(&grow, "x/", "x$0");

    static const struct {
        const char *route, *path, *query, *want, *why;
    } cases[] = {
        {"rw", "/api/orders/7", "", "/api/orders-fn/orders/7", "prefix + rewrite"},
        {"rw", "/api/orders/7", "a=1&b=2", "/api/orders-fn/orders/7?a=1&b=2",
         "prefix + rewrite + query"},
        {"rw", "/api/orders", "", "/api/orders-fn/orders", "rewrite with an empty group"},
        {"rw", "/other", "q", "/api/orders-fn/other?q", "rewrite not matching: path unchanged"},
        {"rw-root", "/api/orders/7", "x", "/orders/7?x", "no prefix + rewrite + query"},
        {"rw-root", "/api/orders/7", "", "/orders/7", "no prefix + rewrite"},
        {"plain", "/api/orders/7", "", "/api/orders-fn/api/orders/7", "prefix, no rewrite"},
        {"plain", "/", "x=1", "/api/orders-fn/?x=1", "prefix, no rewrite, root path"},
        {"plain-root", "/api/orders/7", "a", "/api/orders/7?a", "neither prefix nor rewrite"},
        {"bad", "/api/orders", "", "-1", "a rewrite that leaves no leading '/'"},
        {"bad", "/other", "", "/other", "that rewrite not matching"},
        {"unset", "/api/orders", "", "/o", "an unset group is empty"},
        {"unset", "/api/orders/9", "", "/o/9", "a set group"},
        {"grow", "/a/x/b/x/c", "", "/api/orders-fn/a/xx/b/x/c",
         "first match only, and a rewrite may grow the path"},
    };
    const sf_route *by_name[] = {&rw, &rw_root, &plain, &plain_root, &bad, &unset, &grow};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const sf_route *r = NULL;
        for (size_t j = 0; j < sizeof(by_name) / sizeof(by_name[0]); j++)
            if (strcmp(by_name[j]->name, cases[i].route) == 0)
                r = by_name[j];
        is_str(target(r, cases[i].path, cases[i].query, 256, md), cases[i].want,
               "target %s %s ? %s: %s", cases[i].route, cases[i].path, cases[i].query,
               cases[i].why);
    }

    /* Every room from 0 to the exact length: -1 below it, the target at it, with and without
     * a prefix, a rewrite and a query (pcre2_substitute wants a byte for a terminating zero;
     * the result must not need it). */
    static const struct {
        const char *route, *path, *query;
    } fits[] = {
        {"rw", "/api/orders/7", ""},
        {"rw", "/api/orders/7", "a=1"},
        {"rw-root", "/api/orders/7", ""},
        {"rw-root", "/api/orders/7", "a=1"},
        {"plain", "/api/orders/7", ""},
        {"plain", "/api/orders/7", "a=1"},
        {"plain-root", "/api/orders", ""},
        {"plain-root", "/api/orders", "z"},
        {"grow", "/x/", ""},
        {"rw", "/other/path", ""},
    };
    for (size_t i = 0; i < sizeof(fits) / sizeof(fits[0]); i++) {
        const sf_route *r = NULL;
        for (size_t j = 0; j < sizeof(by_name) / sizeof(by_name[0]); j++)
            if (strcmp(by_name[j]->name, fits[i].route) == 0)
                r = by_name[j];
        char want[256];
        snprintf(want, sizeof(want), "%s", target(r, fits[i].path, fits[i].query, 256, md));
        size_t exact = strlen(want);
        int below = 1;
        for (size_t cap = 0; cap < exact; cap++)
            below &= strcmp(target(r, fits[i].path, fits[i].query, cap, md), "-1") == 0;
        ok(below, "target %s %s ? %s: -1 in fewer than %zu bytes", fits[i].route, fits[i].path,
           fits[i].query, exact);
        is_str(target(r, fits[i].path, fits[i].query, exact, md), want,
               "target %s %s ? %s: fits in exactly %zu bytes", fits[i].route, fits[i].path,
               fits[i].query, exact);
    }

    /* a long path rewritten with no prefix, exactly filling the room */
    size_t len;
    char *path = repeat("/api/orders", "/seg", 1000, "", &len);
    char *out = room(len - strlen("/api"));
    ssize_t n = sf_route_function_target(&rw_root, (sf_slice){path, len}, (sf_slice){NULL, 0}, md,
                                         out, len - strlen("/api"));
    ok(n == (ssize_t)(len - strlen("/api")) && memcmp(out, "/orders/seg/seg", 15) == 0,
       "a %zu-byte rewrite filling the room exactly", len - 4);
    free(out);
    free(path);

    route_dispose(&rw);
    route_dispose(&rw_root);
    route_dispose(&plain);
    route_dispose(&plain_root);
    route_dispose(&bad);
    route_dispose(&unset);
    route_dispose(&grow);
}

/* --- through the loader ---------------------------------------------------------------------- */

/* Loads text as a routes.yaml from a temporary file; NULL (with the diagnostics printed) when it
 * does not load. */
static sf_route_table *load_yaml(const char *text)
{
    char path[] = "/tmp/sf-test-match-XXXXXX.yaml";
    int fd = mkstemps(path, 5);
    if (fd < 0)
        return NULL;
    size_t len = strlen(text);
    int written = write(fd, text, len) == (ssize_t)len;
    close(fd);
    sf_diags d;
    sf_diags_init(&d);
    sf_route_table *t = written ? sf_table_load(path, &d) : NULL;
    if (t == NULL)
        sf_diags_print(&d, stderr);
    sf_diags_dispose(&d);
    unlink(path);
    return t;
}

static const char routes_yaml[] = "legacy: http://127.0.0.1:8081\n"
                                  "functions:\n"
                                  "  orders: http://127.0.0.1:8082/fn\n"
                                  "  catalog: http://127.0.0.1:8083\n"
                                  "routes:\n"
                                  "  - name: beta\n"
                                  "    match:\n"
                                  "      path: /api/orders\n"
                                  "      headers: { x-tenant: '^beta-' }\n"
                                  "    function: orders\n"
                                  "    cutover: 100\n"
                                  "  - name: orders\n"
                                  "    match:\n"
                                  "      path: /api/orders\n"
                                  "      methods: [GET, HEAD, POST]\n"
                                  "    function: orders\n"
                                  "    rewrite: { regex: '^/api/orders(.*)$', to: '/orders$1' }\n"
                                  "    cutover: 25\n"
                                  "    sticky: header:x-user-id\n"
                                  "  - name: parts\n"
                                  "    match:\n"
                                  "      regex: '^/api/v2/items/[0-9]+/parts$'\n"
                                  "    function: catalog\n"
                                  "    cutover: 33.33\n"
                                  "    sticky: cookie:sid\n"
                                  "  - name: off\n"
                                  "    match:\n"
                                  "      path: /api/off/\n"
                                  "    function: catalog\n"
                                  "    cutover: 0\n";

static void test_loaded(pcre2_match_data *md)
{
    sf_route_table *t = load_yaml(routes_yaml);
    if (!ok(t != NULL, "a routes.yaml loads through sf_table_load")) {
        diag("skipping the loaded-table tests");
        return;
    }
    size_t n = 0;
    const sf_route *routes = sf_table_routes(t, &n);
    is((long long)n, 4, "four routes");
    sf_match_index *ix = sf_match_index_create(routes, n);

    const struct {
        const char *method, *raw, *const *hdrs, *want;
    } cases[] = {
        {"GET", "/api/orders/7", NULL, "orders"},
        {"GET", "/api/orders/./7", NULL, "orders"},
        {"DELETE", "/api/orders/7", NULL, "-"},
        {"DELETE", "/api/orders/7", H("X-Tenant", "beta-1"), "beta"},
        {"GET", "/api/ordersX", NULL, "-"},
        {"GET", "/api/v2/items/42/parts", NULL, "parts"},
        {"GET", "/api/v2/items/%34%32/parts", NULL, "parts"},
        {"GET", "/api/v2/items/x/../42/parts", NULL, "parts"},
        {"GET", "/api/off/x", NULL, "off"},
        {"GET", "/api/off", NULL, "-"},
        {"GET", "/", NULL, "-"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        request q;
        char norm[64];
        size_t rl = strlen(cases[i].raw);
        ssize_t len = sf_path_normalize(cases[i].raw, rl, norm);
        req_init(&q, cases[i].method, "/", cases[i].hdrs);
        q.in.path = (sf_slice){norm, len < 0 ? 0 : (size_t)len};
        const sf_route *r = sf_route_match(t, &q.in, md);
        is_str(r != NULL ? r->name : "-", cases[i].want, "loaded: %s %s", cases[i].method,
               cases[i].raw);
        ok(sf_match_index_lookup(ix, &q.in, md) == r, "loaded, through the index: %s %s",
           cases[i].method, cases[i].raw);
        req_dispose(&q);
    }

    const sf_route *orders = sf_table_route(t, "orders"), *parts = sf_table_route(t, "parts"),
                   *off = sf_table_route(t, "off"), *beta = sf_table_route(t, "beta");
    if (orders != NULL && parts != NULL && off != NULL && beta != NULL) {
        is(orders->cutover_bp, 2500, "cutover 25 is 2500 basis points");
        is(parts->cutover_bp, 3333, "cutover 33.33 is 3333 basis points");
        /* the split as loaded: sticky by header and by cookie */
        unsigned to_fn = 0, by_cookie = 0;
        char buf[32], cookie[48];
        for (unsigned i = 0; i < 20000; i++) {
            sf_slice k = key_n(buf, sizeof(buf), i);
            sf_kv kv[2] = {{S("x-user-id"), k}, {S("Cookie"), {cookie, 0}}};
            kv[1].value.len = (size_t)snprintf(cookie, sizeof(cookie), "a=b; sid=%s", buf);
            sf_match_input in = {S("GET"), S("/api/orders/1"), kv, 2, S("")};
            int d = sf_route_decide(orders, &in, 0);
            to_fn += (unsigned)d;
            by_cookie += (unsigned)sf_route_decide(parts, &in, 0);
            if (d != (sf_sticky_bucket(S("orders"), k) < 2500)) {
                ok(0, "a loaded route decides by its name's bucket");
                break;
            }
        }
        ok(to_fn > 4800 && to_fn < 5200, "loaded, 25%% sticky by header: %u of 20000", to_fn);
        ok(by_cookie > 6466 && by_cookie < 6866, "loaded, 33.33%% sticky by cookie: %u of 20000",
           by_cookie);
        sf_match_input none = {S("GET"), S("/api/off/x"), NULL, 0, S("")};
        int any = 0;
        for (uint64_t rnd = 0; rnd < 10000; rnd++)
            any |= sf_route_decide(off, &none, rnd);
        ok(!any, "loaded, cutover 0: never the function");
        int all = 1;
        for (uint64_t rnd = 0; rnd < 10000; rnd++)
            all &= sf_route_decide(beta, &none, rnd);
        ok(all, "loaded, cutover 100: always the function");

        is_str(target(orders, "/api/orders/7", "a=1", 64, md), "/fn/orders/7?a=1",
               "loaded: the function's path prefix, the rewrite and the query");
        is_str(target(parts, "/api/v2/items/42/parts", "", 64, md), "/api/v2/items/42/parts",
               "loaded: no prefix, no rewrite");
    } else {
        ok(0, "sf_table_route finds the loaded routes");
    }
    sf_match_index_destroy(ix);
    sf_table_unref(t);
}

int main(void)
{
    pcre2_match_data *md = sf_match_data_create();
    ok(md != NULL, "match data");

    test_normalize_table();
    test_normalize_long();
    test_prefix();
    test_matching(md);
    test_index_regex_literals(md);
    test_index_random(md);
    test_index_deep(md);
    test_sticky_keys();
    test_bucket_vectors();
    test_split();
    test_uniform();
    test_monotonic();
    test_function_target(md);
    test_loaded(md);

    pcre2_match_data_free(md);
    return done_testing();
}
