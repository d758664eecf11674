/* The store of shadow mismatches: per route, a ring of the latest records (each one allocation)
 * and a bounded count of the paths that differed. One per proxy, used from its event-loop thread
 * only: no locking. */
#include "diffs.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "audit.h"

/* Open-addressing maps from a name to an index, sized twice their bound so they never fill and
 * never grow. A slot holds index + 1; 0 is empty. */
#define PATH_SLOTS  (2 * SF_DIFFS_PATHS_MAX)
#define ROUTE_SLOTS (2 * SF_DIFFS_ROUTES_MAX)

static const char ellipsis[] = "\xe2\x80\xa6"; /* "…", the mark of a cut string */

typedef struct {
    const char *path, *legacy, *function; /* legacy, function: NULL when absent */
} item;

/* One mismatch: the struct, its items, then every string, in a single allocation so that
 * dropping the oldest is one free. */
typedef struct {
    int64_t ts_ms;
    int legacy_status, function_status;
    size_t nitems, more;
    const char *request_id, *method, *path;
    item items[];
} record;

typedef struct {
    char *path;
    uint64_t count;
} path_count;

typedef struct {
    char *name;
    uint64_t total;
    record *ring[SF_DIFFS_RING];
    size_t head; /* the slot the next record goes to */
    size_t kept;
    path_count paths[SF_DIFFS_PATHS_MAX];
    size_t npaths;
    uint16_t path_slots[PATH_SLOTS];
    uint64_t other; /* occurrences of paths beyond SF_DIFFS_PATHS_MAX distinct ones */
} route_diffs;

struct sf_diffs {
    pthread_mutex_t mu; /* the workers record, the admin thread reads */
    route_diffs **routes;
    size_t nroutes, cap;
    uint16_t route_slots[ROUTE_SLOTS];
    uint64_t dropped;
};

_Static_assert(SF_DIFFS_PATHS_MAX < 65535 && SF_DIFFS_ROUTES_MAX < 65535,
               "map slots hold an index + 1 in 16 bits");

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* ---- strings: valid UTF-8, bounded ---- */

/* The length of the valid UTF-8 sequence at s (1 to 4), or 0 when s[0] starts none: the rules
 * jansson applies (no overlong forms, no surrogates, nothing above U+10FFFF). */
static size_t utf8_seq(const unsigned char *s)
{
    unsigned c = s[0];
    size_t n;
    uint32_t v;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        v = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        v = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        v = c & 0x07;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) /* a NUL ends the string here too */
            return 0;
        v = (v << 6) | (s[i] & 0x3f);
    }
    if ((n == 3 && v < 0x800) || (n == 4 && v < 0x10000) || (v >= 0xd800 && v <= 0xdfff) ||
        v > 0x10ffff)
        return 0;
    return n;
}

/* Copies s (NULL: "") into out (NULL: only measure) as valid UTF-8 of at most max bytes, whole
 * characters only, invalid bytes as '?', then "…" when it was cut, and a NUL. Returns the length
 * written (without the NUL); at most max + 3. */
static size_t clean(const char *s, size_t max, char *out)
{
    const unsigned char *p = (const unsigned char *)(s != NULL ? s : "");
    size_t o = 0;
    while (*p) {
        size_t n = utf8_seq(p);
        size_t w = n > 0 ? n : 1;
        if (o + w > max) {
            if (out != NULL)
                memcpy(out + o, ellipsis, sizeof(ellipsis) - 1);
            o += sizeof(ellipsis) - 1;
            break;
        }
        if (out != NULL) {
            if (n > 0)
                memcpy(out + o, p, n);
            else
                out[o] = '?';
        }
        o += w;
        p += w;
    }
    if (out != NULL)
        out[o] = '\0';
    return o;
}

/* Reserves room for s cleaned in a record's string area and copies it there. */
static const char *place(char **at, const char *s, size_t max)
{
    char *dst = *at;
    *at += clean(s, max, dst) + 1;
    return dst;
}

/* Header diffs that would carry credentials. */
static int secret_path(const char *p)
{
    static const char *const secret[] = {"header:authorization", "header:proxy-authorization",
                                         "header:cookie", "header:set-cookie"};
    for (size_t i = 0; p != NULL && i < sizeof(secret) / sizeof(secret[0]); i++)
        if (strcasecmp(p, secret[i]) == 0)
            return 1;
    return 0;
}

/* ---- routes ---- */

static route_diffs *find_route(const sf_diffs *d, const char *name)
{
    for (size_t i = hash(name) % ROUTE_SLOTS, probes = 0; probes < ROUTE_SLOTS;
         i = (i + 1) % ROUTE_SLOTS, probes++) {
        uint16_t v = d->route_slots[i];
        if (v == 0)
            return NULL;
        if (strcmp(d->routes[v - 1]->name, name) == 0)
            return d->routes[v - 1];
    }
    return NULL;
}

/* route's store, made when it has none; NULL when out of memory or over SF_DIFFS_ROUTES_MAX. */
static route_diffs *route_of(sf_diffs *d, const char *name)
{
    route_diffs *r = find_route(d, name);
    if (r != NULL || d->nroutes >= SF_DIFFS_ROUTES_MAX)
        return r;
    if (d->nroutes == d->cap) {
        size_t ncap = d->cap ? d->cap * 2 : 16;
        route_diffs **nr = realloc(d->routes, ncap * sizeof(*nr));
        if (nr == NULL)
            return NULL;
        d->routes = nr;
        d->cap = ncap;
    }
    r = calloc(1, sizeof(*r));
    if (r == NULL || (r->name = strdup(name)) == NULL) {
        free(r);
        return NULL;
    }
    size_t i = hash(name) % ROUTE_SLOTS;
    while (d->route_slots[i] != 0)
        i = (i + 1) % ROUTE_SLOTS;
    d->routes[d->nroutes++] = r;
    d->route_slots[i] = (uint16_t)d->nroutes;
    return r;
}

static void route_free(route_diffs *r)
{
    for (size_t i = 0; i < SF_DIFFS_RING; i++)
        free(r->ring[i]);
    for (size_t i = 0; i < r->npaths; i++)
        free(r->paths[i].path);
    free(r->name);
    free(r);
}

/* Counts one occurrence of path (already clean) for top_paths. */
static void count_path(route_diffs *r, const char *path)
{
    size_t i = hash(path) % PATH_SLOTS;
    for (size_t probes = 0; probes < PATH_SLOTS; i = (i + 1) % PATH_SLOTS, probes++) {
        uint16_t v = r->path_slots[i];
        if (v == 0)
            break;
        if (strcmp(r->paths[v - 1].path, path) == 0) {
            r->paths[v - 1].count++;
            return;
        }
    }
    char *copy = r->npaths < SF_DIFFS_PATHS_MAX ? strdup(path) : NULL;
    if (copy == NULL) {
        r->other++;
        return;
    }
    r->paths[r->npaths] = (path_count){copy, 1};
    r->path_slots[i] = (uint16_t)++r->npaths; /* i is the empty slot the probe stopped at */
}

/* ---- the store ---- */

sf_diffs *sf_diffs_create(void)
{
    sf_diffs *d = calloc(1, sizeof(sf_diffs));
    if (d != NULL && pthread_mutex_init(&d->mu, NULL) != 0) {
        free(d);
        d = NULL;
    }
    return d;
}

void sf_diffs_destroy(sf_diffs *d)
{
    if (d == NULL)
        return;
    for (size_t i = 0; i < d->nroutes; i++)
        route_free(d->routes[i]);
    free(d->routes);
    pthread_mutex_destroy(&d->mu);
    free(d);
}

uint64_t sf_diffs_dropped(sf_diffs *d)
{
    if (d == NULL)
        return 0;
    pthread_mutex_lock(&d->mu);
    uint64_t n = d->dropped;
    pthread_mutex_unlock(&d->mu);
    return n;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void record_locked(sf_diffs *d, const char *route, const char *request_id, int64_t ts_ms,
                          const char *method, const char *path, int legacy_status,
                          int function_status, const sf_diff_item *items, size_t nitems,
                          size_t more)
{
    char key[SF_DIFFS_DPATH_MAX + sizeof(ellipsis)];
    route_diffs *r = route_of(d, route);
    if (r == NULL) {
        d->dropped++;
        return;
    }
    r->total++;
    if (items == NULL)
        nitems = 0;
    for (size_t i = 0; i < nitems; i++) {
        clean(items[i].path, SF_DIFFS_DPATH_MAX, key);
        count_path(r, key);
    }

    /* the items kept: the first ones, up to SF_DIFFS_ITEMS_MAX and SF_DIFFS_ITEM_BYTES */
    size_t k = 0, item_bytes = 0;
    for (; k < nitems && k < SF_DIFFS_ITEMS_MAX; k++) {
        size_t n = clean(items[k].path, SF_DIFFS_DPATH_MAX, NULL) + 1;
        if (secret_path(items[k].path))
            n += 2 * sizeof(SF_DIFFS_REDACTED);
        else
            n += (items[k].legacy ? clean(items[k].legacy, SF_DIFFS_VALUE_MAX, NULL) + 1 : 0) +
                 (items[k].function ? clean(items[k].function, SF_DIFFS_VALUE_MAX, NULL) + 1 : 0);
        if (k > 0 && item_bytes + n > SF_DIFFS_ITEM_BYTES)
            break;
        item_bytes += n;
    }
    size_t size =
        sizeof(record) + k * sizeof(item) + item_bytes + clean(request_id, SF_DIFFS_ID_MAX, NULL) +
        clean(method, SF_DIFFS_METHOD_MAX, NULL) + clean(path, SF_DIFFS_REQPATH_MAX, NULL) + 3;
    record *rec = malloc(size);
    if (rec == NULL)
        return;
    char *at = (char *)&rec->items[k];
    rec->ts_ms = ts_ms > 0 ? ts_ms : now_ms();
    rec->legacy_status = legacy_status;
    rec->function_status = function_status;
    rec->nitems = k;
    rec->more = more + (nitems - k);
    rec->request_id = place(&at, request_id, SF_DIFFS_ID_MAX);
    rec->method = place(&at, method, SF_DIFFS_METHOD_MAX);
    rec->path = place(&at, path, SF_DIFFS_REQPATH_MAX);
    for (size_t i = 0; i < k; i++) {
        item *it = &rec->items[i];
        it->path = place(&at, items[i].path, SF_DIFFS_DPATH_MAX);
        if (secret_path(items[i].path)) {
            it->legacy = place(&at, SF_DIFFS_REDACTED, sizeof(SF_DIFFS_REDACTED));
            it->function = place(&at, SF_DIFFS_REDACTED, sizeof(SF_DIFFS_REDACTED));
        } else {
            it->legacy = items[i].legacy ? place(&at, items[i].legacy, SF_DIFFS_VALUE_MAX) : NULL;
            it->function =
                items[i].function ? place(&at, items[i].function, SF_DIFFS_VALUE_MAX) : NULL;
        }
    }
    free(r->ring[r->head]);
    r->ring[r->head] = rec;
    r->head = (r->head + 1) % SF_DIFFS_RING;
    if (r->kept < SF_DIFFS_RING)
        r->kept++;
}

void sf_diffs_record(sf_diffs *d, const char *route, const char *request_id, int64_t ts_ms,
                     const char *method, const char *path, int legacy_status, int function_status,
                     const sf_diff_item *items, size_t nitems, size_t more)
{
    if (d == NULL || route == NULL)
        return;
    pthread_mutex_lock(&d->mu);
    record_locked(d, route, request_id, ts_ms, method, path, legacy_status, function_status, items,
                  nitems, more);
    pthread_mutex_unlock(&d->mu);
}

/* ---- JSON ---- */

/* A JSON string of s, which may come from anywhere: cleaned (and bounded) when jansson refuses
 * it as it is. */
static json_t *text(const char *s)
{
    json_t *j = json_string(s != NULL ? s : "");
    if (j != NULL)
        return j;
    size_t n = clean(s, SF_DIFFS_DPATH_MAX, NULL);
    char *c = malloc(n + 1);
    if (c == NULL)
        return NULL;
    clean(s, SF_DIFFS_DPATH_MAX, c);
    j = json_string(c);
    free(c);
    return j;
}

/* Stored strings are valid UTF-8 already; NULL is an absent value. */
static json_t *value(const char *s)
{
    return s != NULL ? json_string(s) : json_null();
}

static int by_count(const void *a, const void *b)
{
    const path_count *x = *(const path_count *const *)a, *y = *(const path_count *const *)b;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    return strcmp(x->path, y->path);
}

static json_t *top_paths(const route_diffs *r)
{
    json_t *a = json_array();
    static char other_name[] = "(other)";
    path_count other = {other_name, r != NULL ? r->other : 0};
    const path_count *v[SF_DIFFS_PATHS_MAX + 1];
    size_t n = 0;
    if (a == NULL || r == NULL)
        return a;
    for (size_t i = 0; i < r->npaths; i++)
        v[n++] = &r->paths[i];
    if (other.count > 0)
        v[n++] = &other;
    qsort(v, n, sizeof(v[0]), by_count);
    for (size_t i = 0; i < n && i < SF_DIFFS_TOP; i++)
        json_array_append_new(
            a, json_pack("{s:o,s:I}", "path", value(v[i]->path), "count", (json_int_t)v[i]->count));
    return a;
}

static json_t *record_json(const record *rec)
{
    char ts[32];
    json_t *diffs = json_array();
    for (size_t i = 0; diffs != NULL && i < rec->nitems; i++)
        json_array_append_new(diffs, json_pack("{s:o,s:o,s:o}", "path", value(rec->items[i].path),
                                               "legacy", value(rec->items[i].legacy), "function",
                                               value(rec->items[i].function)));
    sf_audit_format_time(rec->ts_ms, ts);
    return json_pack("{s:o,s:s,s:o,s:o,s:{s:i,s:i},s:o,s:I}", "request_id", value(rec->request_id),
                     "ts", ts, "method", value(rec->method), "path", value(rec->path), "status",
                     "legacy", rec->legacy_status, "function", rec->function_status, "differences",
                     diffs, "more", (json_int_t)rec->more);
}

static json_t *json_locked(const sf_diffs *d, const char *route, size_t limit,
                           const char *const *noise, size_t nnoise)
{
    const route_diffs *r = d != NULL && route != NULL ? find_route(d, route) : NULL;
    json_t *noise_js = json_array(), *list = json_array();
    for (size_t i = 0; noise_js != NULL && noise != NULL && i < nnoise; i++)
        json_array_append_new(noise_js, text(noise[i]));
    size_t n = r != NULL ? r->kept : 0;
    if (limit > 0 && limit < n)
        n = limit;
    for (size_t i = 0; list != NULL && i < n; i++)
        json_array_append_new(
            list, record_json(r->ring[(r->head + SF_DIFFS_RING - 1 - i) % SF_DIFFS_RING]));
    /* "o" takes its reference even when the pack fails, and fails on NULL */
    return json_pack("{s:o,s:I,s:I,s:o,s:o,s:o}", "route", text(route), "total",
                     (json_int_t)(r != NULL ? r->total : 0), "kept",
                     (json_int_t)(r != NULL ? r->kept : 0), "top_paths", top_paths(r),
                     "noise_paths", noise_js, "diffs", list);
}

json_t *sf_diffs_json(sf_diffs *d, const char *route, size_t limit, const char *const *noise,
                      size_t nnoise)
{
    if (d != NULL)
        pthread_mutex_lock(&d->mu);
    json_t *js = json_locked(d, route, limit, noise, nnoise);
    if (d != NULL)
        pthread_mutex_unlock(&d->mu);
    return js;
}
