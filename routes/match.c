/* Route matching, path normalization, the cutover decision and the function's target. */
#include "match.h"

#include <stdlib.h>
#include <string.h>

int sf_path_prefix_match(sf_slice prefix, sf_slice path)
{
    if (path.len < prefix.len || memcmp(path.p, prefix.p, prefix.len) != 0)
        return 0;
    return path.len == prefix.len || (prefix.len > 0 && prefix.p[prefix.len - 1] == '/') ||
           path.p[prefix.len] == '/';
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* RFC 3986 §2.3 */
static int unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

/* One pass over the input, one segment at a time: the segment is decoded straight into out after
 * a '/', then dropped again when it turns out to be a dot-segment. out holds the output buffer of
 * RFC 3986 §5.2.4 at every step, and out never gets ahead of in (a decoded segment is no longer
 * than its source), which is also why out may be in. Removing a segment walks back over bytes
 * that were written once, so the whole is linear. */
ssize_t sf_path_normalize(const char *in, size_t len, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t i = 0, o = 0;

    if (len == 0 || in[0] != '/')
        return -1;
    while (i < len) {
        size_t seg = o + 1; /* where the segment's bytes start in out */
        int dots = 0;       /* 1 or 2 while the decoded segment is only dots, else 3 */
        out[o] = '/';
        i++;
        o = seg;
        for (; i < len && in[i] != '/'; i++) {
            unsigned char c = (unsigned char)in[i];
            if (c == '%') {
                int hi, lo;
                if (len - i < 3 || (hi = hexval((unsigned char)in[i + 1])) < 0 ||
                    (lo = hexval((unsigned char)in[i + 2])) < 0)
                    return -1;
                c = (unsigned char)(hi << 4 | lo);
                i += 2;
                if (c == 0)
                    return -1;
                if (!unreserved(c)) {
                    out[o++] = '%';
                    out[o++] = hex[c >> 4];
                    out[o++] = hex[c & 15];
                    dots = 3;
                    continue;
                }
            } else if (c == 0) {
                return -1;
            }
            out[o++] = (char)c;
            dots = c == '.' && dots < 2 ? dots + 1 : 3;
        }
        if (dots == 0 || dots == 3)
            continue;
        /* "." or "..": drop it, and for ".." the output's last segment with its '/' too */
        o = seg - 1;
        if (dots == 2) {
            if (o == 0)
                return -1; /* above the root */
            while (out[--o] != '/')
                ;
        }
        if (i == len)
            out[o++] = '/'; /* "/a/." -> "/a/", "/a/b/.." -> "/a/" */
    }
    return (ssize_t)o;
}

pcre2_match_data *sf_match_data_create(void)
{
    return pcre2_match_data_create(SF_MAX_CAPTURES + 1, NULL);
}

static int lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

/* ASCII case-insensitive equality: header names are case-insensitive (RFC 9110 §5.1), and
 * strncasecmp would follow the locale. */
static int same_name(const char *a, size_t alen, sf_slice b)
{
    if (alen != b.len)
        return 0;
    for (size_t i = 0; i < alen; i++)
        if (lower((unsigned char)a[i]) != lower((unsigned char)b.p[i]))
            return 0;
    return 1;
}

/* m is NUL-terminated, s is not: compared without reading m past its end. */
static int same_token(const char *m, sf_slice s)
{
    size_t i;
    for (i = 0; i < s.len; i++)
        if (m[i] == '\0' || m[i] != s.p[i])
            return 0;
    return m[i] == '\0';
}

/* pcre2_match runs the JIT code when there is some. jit: the caller knows there is, and that the
 * pattern is not in UTF mode (pcre2_jit_match checks no UTF validity), so the fast path skips
 * pcre2_match's checks: 11 ns a call instead of 17 here. */
static int re_match(const pcre2_code *re, sf_slice s, pcre2_match_data *md, int jit)
{
    PCRE2_SPTR p = s.p != NULL ? (PCRE2_SPTR)s.p : (PCRE2_SPTR) "";
    if (jit)
        return pcre2_jit_match(re, p, s.len, 0, 0, md, NULL) >= 0;
    return pcre2_match(re, p, s.len, 0, 0, md, NULL) >= 0;
}

/* Whether re_match may take the fast path for re. */
static int jit_ready(const pcre2_code *re)
{
    size_t size = 0;
    uint32_t options = 0;
    pcre2_pattern_info(re, PCRE2_INFO_JITSIZE, &size);
    pcre2_pattern_info(re, PCRE2_INFO_ALLOPTIONS, &options);
    return size > 0 && !(options & PCRE2_UTF);
}

static int method_ok(const sf_route *r, sf_slice method)
{
    if (r->methods == NULL)
        return 1;
    for (size_t i = 0; i < r->nmethods; i++)
        if (same_token(r->methods[i], method))
            return 1;
    return 0;
}

static int header_ok(const sf_header_match *h, const sf_match_input *in, pcre2_match_data *md)
{
    for (size_t i = 0; i < in->nheaders; i++)
        if (same_name(h->name, h->name_len, in->headers[i].name) &&
            re_match(h->re, in->headers[i].value, md, 0))
            return 1;
    return 0;
}

/* Everything but the method; jit: see re_match. */
static int route_ok_rest(const sf_route *r, const sf_match_input *in, pcre2_match_data *md, int jit)
{
    if (r->path != NULL) {
        if (!sf_path_prefix_match((sf_slice){r->path, r->path_len}, in->path))
            return 0;
    } else if (r->regex == NULL || !re_match(r->regex, in->path, md, jit)) {
        return 0;
    }
    for (size_t i = 0; i < r->nheaders; i++)
        if (!header_ok(&r->headers[i], in, md))
            return 0;
    return 1;
}

static int route_ok(const sf_route *r, const sf_match_input *in, pcre2_match_data *md)
{
    return method_ok(r, in->method) && route_ok_rest(r, in, md, 0);
}

const sf_route *sf_routes_match(const sf_route *routes, size_t n, const sf_match_input *in,
                                pcre2_match_data *md)
{
    for (size_t i = 0; i < n; i++)
        if (route_ok(&routes[i], in, md))
            return &routes[i];
    return NULL;
}

const sf_route *sf_route_match(const sf_route_table *t, const sf_match_input *in,
                               pcre2_match_data *md)
{
    const sf_match_index *ix = sf_table_match_index(t);
    if (ix != NULL)
        return sf_match_index_lookup(ix, in, md);
    size_t n = 0;
    const sf_route *routes = sf_table_routes(t, &n);
    return sf_routes_match(routes, n, in, md);
}

/* --- the index -------------------------------------------------------------------------------
 * Each route has a literal prefix every path it matches starts with: its match.path, or what an
 * anchored regex begins with (regex_literal). A byte trie holds them; a node lists, in file order,
 * the routes whose literal ends there. A lookup walks the trie along the path and tries only the
 * routes listed on the nodes it passes (the root's: routes with no literal), merged back into file
 * order, so the first of them that matches is the first of all routes that matches. */

static const struct {
    const char *name;
    size_t len;
} known_methods[] = {{"GET", 3},   {"HEAD", 4},    {"POST", 4},    {"PUT", 3},  {"DELETE", 6},
                     {"PATCH", 5}, {"OPTIONS", 7}, {"CONNECT", 7}, {"TRACE", 5}};

/* The method's bit, or 0 for one outside known_methods. */
static unsigned method_bit(sf_slice m)
{
    for (size_t k = 0; k < sizeof(known_methods) / sizeof(known_methods[0]); k++)
        if (m.len == known_methods[k].len && memcmp(m.p, known_methods[k].name, m.len) == 0)
            return 1u << k;
    return 0;
}

typedef struct {
    unsigned mask;       /* the listed methods among known_methods */
    unsigned char any;   /* no methods: every method */
    unsigned char other; /* a listed method outside known_methods: compare the list */
    unsigned char jit;   /* match.regex may take re_match's fast path */
} route_hint;

typedef struct {
    uint32_t child, sibling; /* first child, next sibling; 0 = none (the root is nobody's child) */
    uint32_t list, nlist;    /* the routes whose literal ends here: ids[list .. list + nlist) */
    unsigned char byte;
} trie_node;

struct sf_match_index {
    const sf_route *routes;
    size_t n;
    route_hint *hints;
    trie_node *nodes;
    size_t nnodes, cap;
    uint32_t *ids;
};

#define MAX_LISTS 32 /* lists met on one walk; beyond that, the plain scan */

static int regex_meta(unsigned char c)
{
    return c <= ' ' || c >= 0x7f || strchr("\\^$.[]|()?*+{}#", c) != NULL;
}

/* Skips a character class starting at src[i] == '['; returns the index after its ']', or 0 when
 * it is not terminated. */
static size_t skip_class(const char *src, size_t i)
{
    i++;
    if (src[i] == '^')
        i++;
    if (src[i] == ']')
        i++;
    for (; src[i] != '\0'; i++) {
        if (src[i] == '\\') {
            i++;
            if (src[i] == '\0' || src[i] == 'Q' || src[i] == 'c')
                return 0; /* \Q..\E and \cX could hide a ']' */
        } else if (src[i] == '[' && (src[i + 1] == ':' || src[i + 1] == '.' || src[i + 1] == '=')) {
            return 0; /* a POSIX class, or not quite one: PCRE2's rules for telling are subtle */
        } else if (src[i] == ']') {
            return i + 1;
        }
    }
    return 0;
}

/* True when the pattern has no alternation at its top level and nothing that this scan cannot
 * follow (comments, callouts, verbs, \Q..\E, \cX, POSIX classes, extended mode): then a literal
 * at its start is required. */
static int single_branch(const char *src)
{
    int depth = 0;
    for (size_t i = 0; src[i] != '\0'; i++) {
        switch (src[i]) {
        case '\\':
            if (src[i + 1] == 'Q' || src[i + 1] == 'c' || src[i + 1] == '\0')
                return 0; /* \Q..\E and \cX could hide a '(', ')' or '|' */
            i++;
            break;
        case '[':
            i = skip_class(src, i);
            if (i == 0)
                return 0;
            i--;
            break;
        case '(':
            if (src[i + 1] == '*')
                return 0; /* a verb: its name may hold anything */
            if (src[i + 1] == '?') {
                size_t j = i + 2;
                int x = 0;
                if (src[j] == '#' || src[j] == 'C')
                    return 0; /* a comment or a callout: their text may hold anything */
                for (; (src[j] >= 'a' && src[j] <= 'z') || (src[j] >= 'A' && src[j] <= 'Z') ||
                       src[j] == '-' || src[j] == '^';
                     j++)
                    x |= src[j] == 'x';
                if (x && (src[j] == ')' || src[j] == ':'))
                    return 0; /* (?x): whitespace and # comments from here */
            }
            depth++;
            break;
        case ')':
            if (--depth < 0)
                return 0;
            break;
        case '|':
            if (depth == 0)
                return 0;
            break;
        default:
            break;
        }
    }
    return depth == 0;
}

/* The literal every subject the regex matches starts with, written to lit (room for
 * strlen(src) bytes); 0 when there is none or it cannot be told safely. '^/api/v2/items/[0-9]+'
 * gives "/api/v2/items/"; a character followed by a quantifier is left out ('^/ab?c' gives
 * "/a"). */
static size_t regex_literal(const pcre2_code *re, const char *src, char *lit)
{
    uint32_t all = 0, arg = 0, extra = 0;
    size_t i, n = 0;
    pcre2_pattern_info(re, PCRE2_INFO_ALLOPTIONS, &all);
    pcre2_pattern_info(re, PCRE2_INFO_ARGOPTIONS, &arg);
    pcre2_pattern_info(re, PCRE2_INFO_EXTRAOPTIONS, &extra);
    if (extra != 0 || (all & (PCRE2_CASELESS | PCRE2_EXTENDED | PCRE2_EXTENDED_MORE |
                              PCRE2_LITERAL | PCRE2_MULTILINE | PCRE2_ALLOW_EMPTY_CLASS)))
        return 0;
    if (!single_branch(src))
        return 0;
    if (src[0] == '^')
        i = 1;
    else if (src[0] == '\\' && src[1] == 'A')
        i = 2;
    else if (arg & PCRE2_ANCHORED)
        i = 0;
    else
        return 0;
    for (;;) {
        unsigned char c = (unsigned char)src[i];
        size_t w = 1;
        if (c == '\\') {
            c = (unsigned char)src[i + 1];
            w = 2;
            /* an escaped punctuation character is itself; \d, \x41, \Q... are not literals */
            if (c == '\0' || c >= 0x7f || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
                (c >= 'A' && c <= 'Z'))
                break;
        } else if (regex_meta(c)) {
            break;
        }
        char next = src[i + w];
        if (next == '?' || next == '*' || next == '{')
            break;
        lit[n++] = (char)c;
        i += w;
        if (next == '+')
            break;
    }
    return n;
}

static uint32_t trie_child(const sf_match_index *ix, uint32_t node, unsigned char b)
{
    for (uint32_t c = ix->nodes[node].child; c != 0; c = ix->nodes[c].sibling)
        if (ix->nodes[c].byte == b)
            return c;
    return 0;
}

/* The node for lit, made as needed; 0 (the root) for an empty lit, -1 when out of memory. */
static int64_t trie_insert(sf_match_index *ix, const char *lit, size_t len)
{
    uint32_t node = 0;
    for (size_t i = 0; i < len; i++) {
        uint32_t c = trie_child(ix, node, (unsigned char)lit[i]);
        if (c == 0) {
            if (ix->nnodes == ix->cap) {
                size_t cap = ix->cap * 2;
                trie_node *nodes =
                    cap > UINT32_MAX ? NULL : realloc(ix->nodes, cap * sizeof(*nodes));
                if (nodes == NULL)
                    return -1;
                ix->nodes = nodes;
                ix->cap = cap;
            }
            c = (uint32_t)ix->nnodes++;
            ix->nodes[c] = (trie_node){0, ix->nodes[node].child, 0, 0, (unsigned char)lit[i]};
            ix->nodes[node].child = c;
        }
        node = c;
    }
    return node;
}

static void hint_init(route_hint *h, const sf_route *r)
{
    h->any = r->methods == NULL;
    for (size_t i = 0; i < r->nmethods; i++) {
        unsigned bit = method_bit((sf_slice){r->methods[i], strlen(r->methods[i])});
        h->mask |= bit;
        h->other |= bit == 0;
    }
    h->jit = r->regex != NULL && jit_ready(r->regex);
}

sf_match_index *sf_match_index_create(const sf_route *routes, size_t n)
{
    sf_match_index *ix = calloc(1, sizeof(*ix));
    uint32_t *end = NULL;
    char *lit = NULL;
    if (ix == NULL || n >= UINT32_MAX)
        goto fail;
    ix->routes = routes;
    ix->n = n;
    ix->cap = 64;
    ix->nnodes = 1;
    ix->nodes = calloc(ix->cap, sizeof(*ix->nodes));
    ix->hints = calloc(n ? n : 1, sizeof(*ix->hints));
    ix->ids = calloc(n ? n : 1, sizeof(*ix->ids));
    end = calloc(n ? n : 1, sizeof(*end));
    if (ix->nodes == NULL || ix->hints == NULL || ix->ids == NULL || end == NULL)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        const sf_route *r = &routes[i];
        int64_t node = 0;
        hint_init(&ix->hints[i], r);
        if (r->path != NULL) {
            node = trie_insert(ix, r->path, r->path_len);
        } else if (r->regex != NULL && r->regex_src != NULL) {
            free(lit);
            lit = malloc(strlen(r->regex_src) + 1);
            if (lit == NULL)
                goto fail;
            node = trie_insert(ix, lit, regex_literal(r->regex, r->regex_src, lit));
        }
        if (node < 0)
            goto fail;
        end[i] = (uint32_t)node;
        ix->nodes[node].nlist++;
    }
    /* lists laid out one after the other; filled in route order, so each is in file order */
    uint32_t at = 0;
    for (size_t k = 0; k < ix->nnodes; k++) {
        ix->nodes[k].list = at;
        at += ix->nodes[k].nlist;
        ix->nodes[k].nlist = 0;
    }
    for (size_t i = 0; i < n; i++) {
        trie_node *t = &ix->nodes[end[i]];
        ix->ids[t->list + t->nlist++] = (uint32_t)i;
    }
    free(end);
    free(lit);
    return ix;
fail:
    free(end);
    free(lit);
    sf_match_index_destroy(ix);
    return NULL;
}

void sf_match_index_destroy(sf_match_index *ix)
{
    if (ix == NULL)
        return;
    free(ix->hints);
    free(ix->nodes);
    free(ix->ids);
    free(ix);
}

static int method_hinted(const route_hint *h, const sf_route *r, unsigned bit, sf_slice method)
{
    return h->any || (bit & h->mask) || (bit == 0 && h->other && method_ok(r, method));
}

const sf_route *sf_match_index_lookup(const sf_match_index *ix, const sf_match_input *in,
                                      pcre2_match_data *md)
{
    const uint32_t *list[MAX_LISTS];
    uint32_t left[MAX_LISTS];
    size_t nl = 0;
    uint32_t node = 0;
    unsigned bit = method_bit(in->method);

    for (size_t i = 0;; i++) {
        const trie_node *t = &ix->nodes[node];
        if (t->nlist > 0) {
            if (nl == MAX_LISTS)
                return sf_routes_match(ix->routes, ix->n, in, md);
            list[nl] = ix->ids + t->list;
            left[nl++] = t->nlist;
        }
        if (i == in->path.len || (node = trie_child(ix, node, (unsigned char)in->path.p[i])) == 0)
            break;
    }
    /* merge the lists back into file order, trying each route once */
    for (;;) {
        size_t best = nl;
        for (size_t k = 0; k < nl; k++)
            if (left[k] > 0 && (best == nl || list[k][0] < list[best][0]))
                best = k;
        if (best == nl)
            return NULL;
        uint32_t id = *list[best]++;
        left[best]--;
        const sf_route *r = &ix->routes[id];
        const route_hint *h = &ix->hints[id];
        if (method_hinted(h, r, bit, in->method) && route_ok_rest(r, in, md, h->jit))
            return r;
    }
}

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static sf_slice trim(const char *p, const char *end)
{
    while (p < end && is_ows(*p))
        p++;
    while (end > p && is_ows(end[-1]))
        end--;
    return (sf_slice){p, (size_t)(end - p)};
}

/* The value of the cookie named name in one Cookie header ("a=1; b=2", RFC 6265 §4.2.1), or an
 * empty slice. Lenient as user agents are not always exact: spaces around names and values and
 * missing spaces after ';' are tolerated, pairs without '=' are skipped, a value in double quotes
 * is unquoted. */
static sf_slice cookie_value(sf_slice header, const char *name, size_t name_len)
{
    const char *p = header.p, *end = header.p + header.len;
    while (p < end) {
        const char *semi = memchr(p, ';', (size_t)(end - p));
        const char *stop = semi != NULL ? semi : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        if (eq != NULL) {
            sf_slice n = trim(p, eq), v = trim(eq + 1, stop);
            if (v.len >= 2 && v.p[0] == '"' && v.p[v.len - 1] == '"')
                v = (sf_slice){v.p + 1, v.len - 2};
            if (v.len > 0 && n.len == name_len && memcmp(n.p, name, name_len) == 0)
                return v;
        }
        p = stop + (stop < end);
    }
    return (sf_slice){NULL, 0};
}

int sf_route_sticky_key(const sf_route *r, const sf_match_input *in, sf_slice *key)
{
    switch (r->sticky) {
    case SF_STICKY_HEADER:
        for (size_t i = 0; i < in->nheaders; i++)
            if (in->headers[i].value.len > 0 &&
                same_name(r->sticky_name, r->sticky_len, in->headers[i].name)) {
                *key = in->headers[i].value;
                return 1;
            }
        return 0;
    case SF_STICKY_COOKIE:
        for (size_t i = 0; i < in->nheaders; i++) {
            if (!same_name("cookie", 6, in->headers[i].name))
                continue;
            sf_slice v = cookie_value(in->headers[i].value, r->sticky_name, r->sticky_len);
            if (v.len > 0) {
                *key = v;
                return 1;
            }
        }
        return 0;
    case SF_STICKY_CLIENT_IP:
        if (in->client_ip.len == 0)
            return 0;
        *key = in->client_ip;
        return 1;
    default:
        return 0;
    }
}

/* The bucket must never change: a change moves users between legacy and the function. It is
 *   h = 0xcbf29ce484222325                                  (64-bit FNV-1a offset basis)
 *   for each byte b of name, then one 0x00 byte, then each byte b of key:
 *       h = (h ^ b) * 0x100000001b3                         (FNV-1a prime, mod 2^64)
 *   h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9                (splitmix64 finalizer)
 *   h = (h ^ (h >> 27)) * 0x94d049bb133111eb
 *   h =  h ^ (h >> 31)
 *   bucket = h % 10000
 * FNV-1a alone mixes its last bytes poorly into the low digits; the finalizer fixes that. The
 * 0x00 keeps ("ab", "c") and ("a", "bc") apart. tests/unit/test_match.c pins fixed vectors. */
uint32_t sf_sticky_bucket(sf_slice name, sf_slice key)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (size_t i = 0; i < name.len; i++)
        h = (h ^ (unsigned char)name.p[i]) * 0x100000001b3u;
    h = (h ^ 0) * 0x100000001b3u;
    for (size_t i = 0; i < key.len; i++)
        h = (h ^ (unsigned char)key.p[i]) * 0x100000001b3u;
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9u;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebu;
    h ^= h >> 31;
    return (uint32_t)(h % SF_CUTOVER_MAX);
}

uint32_t sf_route_bucket(const sf_route *r, const sf_match_input *in, uint64_t rnd)
{
    sf_slice key;
    if (r->sticky != SF_STICKY_NONE && sf_route_sticky_key(r, in, &key))
        return sf_sticky_bucket((sf_slice){r->name, r->name_len}, key);
    return (uint32_t)(rnd % SF_CUTOVER_MAX);
}

int sf_route_decide(const sf_route *r, const sf_match_input *in, uint64_t rnd)
{
    if (r->cutover_bp == 0)
        return 0;
    if (r->cutover_bp >= SF_CUTOVER_MAX)
        return 1;
    return sf_route_bucket(r, in, rnd) < r->cutover_bp;
}

int sf_route_shadowed(const sf_route *r, uint32_t bucket)
{
    if (!r->shadow.enabled || bucket < r->cutover_bp || r->shadow.percent_bp == 0)
        return 0;
    /* the bucket's place among legacy's buckets, scaled to 0..SF_CUTOVER_MAX */
    uint64_t span = SF_CUTOVER_MAX - r->cutover_bp;
    return (uint64_t)(bucket - r->cutover_bp) * SF_CUTOVER_MAX / span < r->shadow.percent_bp;
}

#define SUBST_OPTS (PCRE2_SUBSTITUTE_OVERFLOW_LENGTH | PCRE2_SUBSTITUTE_UNSET_EMPTY)

/* The rewritten path at out, in room bytes plus spare: pcre2_substitute always ends its output
 * with a zero, which may land on one spare byte past room that the caller overwrites later
 * (spare is 0 or 1). Returns the length, or -1 when it does not fit or fails. */
static ssize_t substitute(const sf_route *r, sf_slice path, pcre2_match_data *md, char *out,
                          size_t room, size_t spare)
{
    PCRE2_SIZE olen = room + spare;
    PCRE2_SPTR subject = path.p != NULL ? (PCRE2_SPTR)path.p : (PCRE2_SPTR) "";
    PCRE2_SPTR to = r->rewrite_to != NULL ? (PCRE2_SPTR)r->rewrite_to : (PCRE2_SPTR) "";
    int rc = pcre2_substitute(r->rewrite_re, subject, path.len, 0, SUBST_OPTS, md, NULL, to,
                              PCRE2_ZERO_TERMINATED, (PCRE2_UCHAR *)out, &olen);
    if (rc >= 0)
        return (ssize_t)olen;
    return rc == PCRE2_ERROR_NOMEMORY && spare == 0 && olen == room + 1 ? -2 : -1;
}

/* A rewritten path that fills out exactly with nothing before it to borrow: made on the stack
 * (cold path; a result over EXACT_FIT_MAX bytes gets -1 then). */
#define EXACT_FIT_MAX 8192
static __attribute__((noinline)) ssize_t exact_fit(const sf_route *r, sf_slice path,
                                                   pcre2_match_data *md, char *out, size_t cap)
{
    char buf[EXACT_FIT_MAX + 1];
    if (cap > EXACT_FIT_MAX)
        return -1;
    ssize_t n = substitute(r, path, md, buf, cap, 1);
    if (n >= 0)
        memcpy(out, buf, (size_t)n);
    return n;
}

ssize_t sf_route_function_target(const sf_route *r, sf_slice path, sf_slice query,
                                 pcre2_match_data *md, char *out, size_t cap)
{
    const char *prefix = r->function != NULL ? r->function->url.path : NULL;
    size_t plen = prefix != NULL ? strlen(prefix) : 0;
    size_t qlen = query.len > 0 ? query.len + 1 : 0;
    ssize_t n;

    if (plen + qlen > cap)
        return -1;
    if (plen > 0)
        memcpy(out, prefix, plen);
    if (r->rewrite_re == NULL) {
        if (path.len > cap - plen - qlen)
            return -1;
        if (path.len > 0)
            memcpy(out + plen, path.p, path.len);
        n = (ssize_t)path.len;
    } else {
        /* With a query the zero lands where '?' goes. Without one, a result that fills out to
         * the last byte is made one byte to the left, over the prefix's last byte, and moved. */
        n = substitute(r, path, md, out + plen, cap - plen - qlen, qlen > 0);
        if (n == -2 && plen > 0) {
            char keep = out[plen - 1];
            n = substitute(r, path, md, out + plen - 1, cap - plen + 1, 0);
            if (n >= 0)
                memmove(out + plen, out + plen - 1, (size_t)n);
            out[plen - 1] = keep;
        } else if (n == -2) {
            n = exact_fit(r, path, md, out, cap);
        }
        if (n <= 0 || out[plen] != '/')
            return -1;
    }
    if (qlen > 0) {
        out[plen + (size_t)n] = '?';
        memcpy(out + plen + (size_t)n + 1, query.p, query.len);
    }
    return (ssize_t)(plen + (size_t)n + qlen);
}
