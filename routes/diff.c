/* The reload log's account of what changed between two route tables: one line per difference,
 * functions and routes compared by name, never a function's header values (they may be secrets). */
#include "diff.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "edit.h"

typedef struct {
    char **v;
    size_t n, cap;
    int oom; /* once an allocation failed, later lines are dropped */
} lines_buf;

static void add(lines_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void add(lines_buf *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 8;
        char **v = realloc(b->v, cap * sizeof(*v));
        if (v == NULL) {
            b->oom = 1;
            return;
        }
        b->v = v;
        b->cap = cap;
    }
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int len = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = len < 0 ? NULL : malloc((size_t)len + 1);
    if (s != NULL)
        vsnprintf(s, (size_t)len + 1, fmt, ap2);
    va_end(ap2);
    if (s == NULL) {
        b->oom = 1;
        return;
    }
    b->v[b->n++] = s;
}

/* A function timeout as written in routes.yaml: "5s", "250ms"; 0 is the settings' default. */
static const char *duration(uint64_t ms, char *buf, size_t len)
{
    if (ms == 0)
        snprintf(buf, len, "default");
    else if (ms % 1000 == 0)
        snprintf(buf, len, "%llus", (unsigned long long)(ms / 1000));
    else
        snprintf(buf, len, "%llums", (unsigned long long)ms);
    return buf;
}

static int same_str(const char *a, const char *b)
{
    return (a == NULL || b == NULL) ? a == b : strcmp(a, b) == 0;
}

static int strv_has(char *const *v, size_t n, const char *s, int nocase)
{
    for (size_t i = 0; i < n; i++)
        if (nocase ? strcasecmp(v[i], s) == 0 : strcmp(v[i], s) == 0)
            return 1;
    return 0;
}

/* Lists whose order carries no meaning (methods, header names, JSON Pointers). */
static int same_set(char *const *a, size_t na, char *const *b, size_t nb, int nocase)
{
    if (na != nb)
        return 0;
    for (size_t i = 0; i < na; i++)
        if (!strv_has(b, nb, a[i], nocase))
            return 0;
    for (size_t i = 0; i < nb; i++)
        if (!strv_has(a, na, b[i], nocase))
            return 0;
    return 1;
}

/* Header names are unique per function (the loader checks), so equal counts and every header of
 * a found in b with the same value means equal. */
static int same_fn_headers(const sf_function *a, const sf_function *b)
{
    if (a->nheaders != b->nheaders)
        return 0;
    for (size_t i = 0; i < a->nheaders; i++) {
        const sf_header_conf *h = &a->headers[i];
        size_t j;
        for (j = 0; j < b->nheaders; j++)
            if (strcasecmp(b->headers[j].name, h->name) == 0)
                break;
        if (j == b->nheaders || b->headers[j].value_len != h->value_len ||
            memcmp(b->headers[j].value, h->value, h->value_len) != 0)
            return 0;
    }
    return 1;
}

static int same_match_headers(const sf_route *a, const sf_route *b)
{
    if (a->nheaders != b->nheaders)
        return 0;
    for (size_t i = 0; i < a->nheaders; i++) {
        size_t j;
        for (j = 0; j < b->nheaders; j++)
            if (strcasecmp(b->headers[j].name, a->headers[i].name) == 0)
                break;
        if (j == b->nheaders || !same_str(b->headers[j].pattern, a->headers[i].pattern))
            return 0;
    }
    return 1;
}

static int same_match(const sf_route *a, const sf_route *b)
{
    return same_str(a->path, b->path) && same_str(a->regex_src, b->regex_src) &&
           same_set(a->methods, a->nmethods, b->methods, b->nmethods, 0) &&
           same_match_headers(a, b);
}

static int same_shadow(const sf_shadow_conf *a, const sf_shadow_conf *b)
{
    if (!a->enabled || !b->enabled)
        return a->enabled == b->enabled;
    return a->percent_bp == b->percent_bp &&
           same_set(a->methods, a->nmethods, b->methods, b->nmethods, 0) &&
           a->compare_status == b->compare_status &&
           same_set(a->compare_headers, a->ncompare_headers, b->compare_headers,
                    b->ncompare_headers, 1) &&
           a->body_mode == b->body_mode &&
           same_set(a->ignore, a->nignore, b->ignore, b->nignore, 0) &&
           a->learn_noise == b->learn_noise;
}

static int same_guard(const sf_guard_conf *a, const sf_guard_conf *b)
{
    if (!a->enabled || !b->enabled)
        return a->enabled == b->enabled;
    return a->window_ms == b->window_ms && a->min_requests == b->min_requests &&
           a->max_error_ratio == b->max_error_ratio &&
           a->max_mismatch_ratio == b->max_mismatch_ratio && a->max_p99_ratio == b->max_p99_ratio &&
           a->dry_run == b->dry_run;
}

static const sf_function *find_function(const sf_function *v, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i].name, name) == 0)
            return &v[i];
    return NULL;
}

static const sf_route *find_route(const sf_route *v, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i].name, name) == 0)
            return &v[i];
    return NULL;
}

static void diff_function(lines_buf *b, const sf_function *o, const sf_function *n)
{
    char t1[32], t2[32];
    if (!same_str(o->url.url, n->url.url))
        add(b, "function %s: url %s -> %s", n->name, o->url.url, n->url.url);
    if (o->timeout_ms != n->timeout_ms)
        add(b, "function %s: timeout %s -> %s", n->name, duration(o->timeout_ms, t1, sizeof(t1)),
            duration(n->timeout_ms, t2, sizeof(t2)));
    if (!same_fn_headers(o, n))
        add(b, "function %s: headers changed", n->name);
    if (!same_str(o->tls_ca, n->tls_ca) || o->tls_verify != n->tls_verify)
        add(b, "function %s: tls changed", n->name);
}

static const char *function_name(const sf_route *r)
{
    return r->function != NULL ? r->function->name : "(none)";
}

static void diff_route(lines_buf *b, const sf_route *o, const sf_route *n)
{
    char s1[96], s2[96];
    if (o->cutover_bp != n->cutover_bp)
        add(b, "%s: cutover %s%% -> %s%%", n->name,
            sf_format_percent(o->cutover_bp, s1, sizeof(s1)),
            sf_format_percent(n->cutover_bp, s2, sizeof(s2)));
    if (!same_match(o, n))
        add(b, "%s: match changed", n->name);
    if (!same_str(function_name(o), function_name(n)))
        add(b, "%s: function %s -> %s", n->name, function_name(o), function_name(n));
    const char *st1 = sf_route_sticky_text(o, s1, sizeof(s1));
    const char *st2 = sf_route_sticky_text(n, s2, sizeof(s2));
    if (strcmp(st1, st2) != 0)
        add(b, "%s: sticky %s -> %s", n->name, st1, st2);
    if (!o->fallback != !n->fallback)
        add(b, "%s: fallback %s -> %s", n->name, o->fallback ? "on" : "off",
            n->fallback ? "on" : "off");
    if (!same_str(o->rewrite_src, n->rewrite_src) || !same_str(o->rewrite_to, n->rewrite_to))
        add(b, "%s: rewrite changed", n->name);
    if (!same_shadow(&o->shadow, &n->shadow))
        add(b, "%s: shadow changed", n->name);
    if (!same_guard(&o->guard, &n->guard))
        add(b, "%s: guard changed", n->name);
}

size_t sf_table_diff(const sf_route_table *old, const sf_route_table *new, char ***lines)
{
    lines_buf b = {0};
    size_t nof = 0, nnf = 0, nor = 0, nnr = 0;
    const sf_function *of = old ? sf_table_functions(old, &nof) : NULL;
    const sf_function *nf = new ? sf_table_functions(new, &nnf) : NULL;
    const sf_route *orr = old ? sf_table_routes(old, &nor) : NULL;
    const sf_route *nr = new ? sf_table_routes(new, &nnr) : NULL;
    char pct[16];

    if (old != NULL && new != NULL) {
        const char *a = sf_table_legacy(old)->url, *z = sf_table_legacy(new)->url;
        if (!same_str(a, z))
            add(&b, "legacy: %s -> %s", a ? a : "(none)", z ? z : "(none)");
    }

    for (size_t i = 0; i < nof; i++)
        if (find_function(nf, nnf, of[i].name) == NULL)
            add(&b, "function removed: %s", of[i].name);
    for (size_t i = 0; i < nnf; i++) {
        const sf_function *o = find_function(of, nof, nf[i].name);
        if (o == NULL)
            add(&b, "function added: %s (%s)", nf[i].name, nf[i].url.url);
        else
            diff_function(&b, o, &nf[i]);
    }

    for (size_t i = 0; i < nor; i++)
        if (find_route(nr, nnr, orr[i].name) == NULL)
            add(&b, "route removed: %s", orr[i].name);
    /* reordered: the routes in both tables, taken in new order, must keep increasing old
     * positions */
    int reordered = 0;
    size_t last = 0, seen = 0;
    for (size_t i = 0; i < nnr; i++) {
        const sf_route *o = find_route(orr, nor, nr[i].name);
        if (o == NULL) {
            add(&b, "route added: %s (cutover %s%%)", nr[i].name,
                sf_format_percent(nr[i].cutover_bp, pct, sizeof(pct)));
            continue;
        }
        diff_route(&b, o, &nr[i]);
        size_t pos = (size_t)(o - orr);
        if (seen++ && pos < last)
            reordered = 1;
        last = pos;
    }
    if (reordered)
        add(&b, "routes reordered");

    *lines = b.v;
    if (b.n == 0) {
        free(b.v);
        *lines = NULL;
    }
    return b.n;
}

void sf_diff_free(char **lines, size_t n)
{
    if (lines == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free(lines[i]);
    free(lines);
}
