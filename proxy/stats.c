/* Per-route traffic statistics: plain counters in per-thread shards, a log-linear latency
 * histogram (HdrHistogram's layout) and a per-second ring for windowed rates. */
#include "stats.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Histogram layout: values 0..127 us have a bucket each; above, each power of two [2^e, 2^e+1)
 * is cut into 64 equal buckets of width 2^(e-6). A value's bucket is (s << 6) + (v >> s) with
 * s = max(e - 6, 0), so a value v is at least 64 times its bucket's width and the bucket's
 * midpoint is within 1/128 of v. Up to 2^27 - 1 us (134 s): 22 groups of 64 buckets. */
#define SUB_BITS    6
#define MAX_EXP     26
#define HIST_MAX_US ((UINT64_C(1) << (MAX_EXP + 1)) - 1)
#define HIST_N      (((MAX_EXP - SUB_BITS) << SUB_BITS) + (2 << SUB_BITS))

const double sf_stats_le_seconds[SF_STATS_LE_N] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, INFINITY,
};

/* The same bounds in microseconds; +Inf is above any value a histogram holds. */
static const uint64_t le_us[SF_STATS_LE_N] = {
    500,    1000,   2500,    5000,    10000,   25000,    50000,      100000,
    250000, 500000, 1000000, 2500000, 5000000, 10000000, UINT64_MAX,
};

struct backend_stats {
    uint64_t requests, errors, bytes_in, bytes_out;
    uint64_t classes[6];
    uint64_t upstream[SF_STATS_UPSTREAM_KINDS];
    uint64_t sum_us, min_us, max_us;
    uint64_t le[SF_STATS_LE_N]; /* per bucket, not cumulative */
    uint64_t hist[HIST_N];
};

/* Coarse latency buckets per second, for percentiles over a window (guards): bucket 0 below
 * 16 us, then powers of 1.5 (each bucket's values within 25% of its upper bound). */
#define WLAT_N 40
typedef uint32_t wlat_row[SF_STATS_BACKENDS][WLAT_N];
static uint64_t wlat_upper[WLAT_N]; /* bucket i holds values < wlat_upper[i] (the last: all) */

/* One second of the ring. */
struct tick {
    uint32_t requests[SF_STATS_BACKENDS];
    uint32_t errors[SF_STATS_BACKENDS];
    uint32_t fallbacks;            /* requests counted under both backends (see sf_stats_sample) */
    uint32_t compared, mismatched; /* shadow comparisons (match, mismatch, noise), mismatches */
};

/* The ring holds the seconds (last_sec - RING_SECONDS, last_sec]: second t at ring[t % RING]. */
struct slot {
    char *name;
    uint64_t last_sec;
    unsigned last_pos; /* last_sec % RING_SECONDS, saving a division per record */
    uint64_t fallbacks;
    uint64_t shadow[SF_STATS_SHADOW_RESULTS];
    uint64_t shadow_reason[SF_STATS_SHADOW_REASONS];
    struct backend_stats b[SF_STATS_BACKENDS];
    struct tick ring[SF_STATS_RING_SECONDS];
    wlat_row *wlat; /* per-second latency buckets, parallel to ring; NULL unless asked for */
};

struct sf_stats {
    /* A shard that another thread merges (sf_stats_share): every change, and that merge, under
     * mu. Unshared shards never touch it. */
    int shared;
    pthread_mutex_t mu;
    struct slot **slots;
    int n, cap;
    int *index; /* open addressing on name hashes: slot + 1, 0 when free */
    unsigned index_cap;
    /* For a histogram bucket, the first Prometheus bucket whose bound is at or above the bucket's
     * lower end. The bounds are further apart than any histogram bucket is wide, so a value is in
     * that Prometheus bucket or the next one. */
    uint8_t le_of[HIST_N];
};

static unsigned bucket_of(uint64_t v)
{
    if (v > HIST_MAX_US)
        v = HIST_MAX_US;
    unsigned e = 63u - (unsigned)__builtin_clzll(v | 1);
    unsigned s = e > SUB_BITS ? e - SUB_BITS : 0;
    return (s << SUB_BITS) + (unsigned)(v >> s);
}

static uint64_t bucket_lower(unsigned i)
{
    if (i < (2u << SUB_BITS))
        return i;
    unsigned s = (i >> SUB_BITS) - 1;
    return (uint64_t)(i - (s << SUB_BITS)) << s;
}

static uint64_t bucket_width(unsigned i)
{
    return i < (2u << SUB_BITS) ? 1 : UINT64_C(1) << ((i >> SUB_BITS) - 1);
}

static uint64_t hash_name(const char *name)
{
    uint64_t h = UINT64_C(1469598103934665603); /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * UINT64_C(1099511628211);
    return h;
}

sf_stats *sf_stats_create(void)
{
    sf_stats *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    if (wlat_upper[0] == 0) {
        double b = 16;
        for (unsigned i = 0; i < WLAT_N; i++, b *= 1.5)
            wlat_upper[i] = i == WLAT_N - 1 ? UINT64_MAX : (uint64_t)b;
    }
    unsigned k = 0;
    for (unsigned i = 0; i < HIST_N; i++) {
        while (le_us[k] < bucket_lower(i))
            k++;
        s->le_of[i] = (uint8_t)k;
    }
    return s;
}

int sf_stats_share(sf_stats *s)
{
    if (s->shared)
        return 0;
    if (pthread_mutex_init(&s->mu, NULL) != 0)
        return -1;
    s->shared = 1;
    return 0;
}

static void lock(sf_stats *s)
{
    if (s->shared)
        pthread_mutex_lock(&s->mu);
}

static void unlock(sf_stats *s)
{
    if (s->shared)
        pthread_mutex_unlock(&s->mu);
}

void sf_stats_destroy(sf_stats *s)
{
    if (s == NULL)
        return;
    if (s->shared)
        pthread_mutex_destroy(&s->mu);
    for (int i = 0; i < s->n; i++) {
        free(s->slots[i]->name);
        free(s->slots[i]->wlat);
        free(s->slots[i]);
    }
    free(s->slots);
    free(s->index);
    free(s);
}

/* The index position holding name, or the free one where it would go. */
static unsigned probe(const sf_stats *s, const char *name)
{
    unsigned mask = s->index_cap - 1;
    unsigned i = (unsigned)hash_name(name) & mask;
    while (s->index[i] != 0 && strcmp(s->slots[s->index[i] - 1]->name, name) != 0)
        i = (i + 1) & mask;
    return i;
}

int sf_stats_find(const sf_stats *s, const char *name)
{
    if (s->index_cap == 0)
        return -1;
    return s->index[probe(s, name)] - 1;
}

/* Keeps the index at most half full. */
static int grow_index(sf_stats *s)
{
    unsigned cap = s->index_cap ? s->index_cap * 2 : 16;
    int *index = calloc(cap, sizeof(*index));
    if (index == NULL)
        return -1;
    free(s->index);
    s->index = index;
    s->index_cap = cap;
    for (int i = 0; i < s->n; i++)
        s->index[probe(s, s->slots[i]->name)] = i + 1;
    return 0;
}

static int slot_locked(sf_stats *s, const char *name)
{
    int found = sf_stats_find(s, name);
    if (found >= 0)
        return found;
    if ((unsigned)(s->n + 1) * 2 > s->index_cap && grow_index(s) < 0)
        return -1;
    if (s->n == s->cap) {
        int cap = s->cap ? s->cap * 2 : 8;
        struct slot **slots = realloc(s->slots, (size_t)cap * sizeof(*slots));
        if (slots == NULL)
            return -1;
        s->slots = slots;
        s->cap = cap;
    }
    struct slot *sl = calloc(1, sizeof(*sl));
    char *copy = strdup(name);
    if (sl == NULL || copy == NULL) {
        free(sl);
        free(copy);
        return -1;
    }
    sl->name = copy;
    for (int b = 0; b < SF_STATS_BACKENDS; b++)
        sl->b[b].min_us = UINT64_MAX;
    s->slots[s->n] = sl;
    s->index[probe(s, name)] = s->n + 1;
    return s->n++;
}

int sf_stats_slot(sf_stats *s, const char *name)
{
    lock(s);
    int slot = slot_locked(s, name);
    unlock(s);
    return slot;
}

int sf_stats_count(const sf_stats *s)
{
    return s->n;
}

const char *sf_stats_name(const sf_stats *s, int slot)
{
    if (slot < 0 || slot >= s->n)
        return NULL;
    return s->slots[slot]->name;
}

/* Moves the ring forward to now, clearing the seconds skipped since the last move: each second
 * is cleared once, whatever the gap. */
static void advance(struct slot *sl, uint64_t now)
{
    if (now <= sl->last_sec)
        return;
    if (now - sl->last_sec >= SF_STATS_RING_SECONDS) {
        memset(sl->ring, 0, sizeof(sl->ring));
        if (sl->wlat != NULL)
            memset(sl->wlat, 0, SF_STATS_RING_SECONDS * sizeof(wlat_row));
    } else {
        for (uint64_t t = sl->last_sec + 1; t <= now; t++) {
            memset(&sl->ring[t % SF_STATS_RING_SECONDS], 0, sizeof(sl->ring[0]));
            if (sl->wlat != NULL)
                memset(sl->wlat[t % SF_STATS_RING_SECONDS], 0, sizeof(wlat_row));
        }
    }
    sl->last_sec = now;
    sl->last_pos = (unsigned)(now % SF_STATS_RING_SECONDS);
}

/* The ring entry of second now, or NULL when it is older than the ring. */
static struct tick *tick_at(struct slot *sl, uint64_t now)
{
    if (now == sl->last_sec)
        return &sl->ring[sl->last_pos];
    if (now > sl->last_sec) {
        advance(sl, now);
        return &sl->ring[sl->last_pos];
    }
    if (sl->last_sec - now < SF_STATS_RING_SECONDS)
        return &sl->ring[now % SF_STATS_RING_SECONDS];
    return NULL;
}

static unsigned wlat_bucket(uint64_t us)
{
    unsigned lo = 0, hi = WLAT_N - 1; /* the first bucket whose upper bound is above us */
    while (lo < hi) {
        unsigned mid = (lo + hi) / 2;
        if (us < wlat_upper[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

static int window_latency_locked(sf_stats *s, int slot)
{
    if ((unsigned)slot >= (unsigned)s->n)
        return -1;
    struct slot *sl = s->slots[slot];
    if (sl->wlat == NULL)
        sl->wlat = calloc(SF_STATS_RING_SECONDS, sizeof(wlat_row));
    return sl->wlat != NULL ? 0 : -1;
}

int sf_stats_window_latency(sf_stats *s, int slot)
{
    lock(s);
    int rc = window_latency_locked(s, slot);
    unlock(s);
    return rc;
}

double sf_stats_window_quantile_ms(const sf_stats *s, int slot, int backend, uint64_t now_sec,
                                   unsigned window_sec, double q, uint64_t *count)
{
    *count = 0;
    if ((unsigned)slot >= (unsigned)s->n || (unsigned)backend >= SF_STATS_BACKENDS)
        return NAN;
    const struct slot *sl = s->slots[slot];
    if (sl->wlat == NULL)
        return NAN;
    if (window_sec > SF_STATS_RING_SECONDS)
        window_sec = SF_STATS_RING_SECONDS;
    uint64_t sum[WLAT_N] = {0}, total = 0;
    uint64_t kept =
        sl->last_sec >= SF_STATS_RING_SECONDS - 1 ? sl->last_sec - (SF_STATS_RING_SECONDS - 1) : 0;
    uint64_t lo = now_sec >= window_sec - 1 ? now_sec - (window_sec - 1) : 0;
    uint64_t hi = now_sec < sl->last_sec ? now_sec : sl->last_sec;
    for (uint64_t t = lo < kept ? kept : lo; window_sec > 0 && t <= hi; t++)
        for (unsigned i = 0; i < WLAT_N; i++) {
            sum[i] += sl->wlat[t % SF_STATS_RING_SECONDS][backend][i];
            total += sl->wlat[t % SF_STATS_RING_SECONDS][backend][i];
        }
    *count = total;
    if (total == 0)
        return NAN;
    uint64_t rank = (uint64_t)ceil(q * (double)total), seen = 0;
    if (rank == 0)
        rank = 1;
    for (unsigned i = 0; i < WLAT_N; i++) {
        seen += sum[i];
        if (seen >= rank) /* the bucket's upper bound; the last one's lower bound times 1.5 */
            return (double)(i < WLAT_N - 1 ? wlat_upper[i] : wlat_upper[WLAT_N - 2] * 3 / 2) /
                   1000.0;
    }
    return NAN;
}

static void record_locked(sf_stats *s, int slot, const sf_stats_sample *x)
{
    if ((unsigned)slot >= (unsigned)s->n || x->backend >= SF_STATS_BACKENDS)
        return;
    struct slot *sl = s->slots[slot];
    struct backend_stats *b = &sl->b[x->backend];
    uint64_t v = x->duration_us;
    unsigned i = bucket_of(v);
    unsigned k = s->le_of[i];
    unsigned cls = x->status / 100u;
    unsigned err = cls == 5 || x->upstream_error != SF_STATS_UPSTREAM_NONE;

    b->requests++;
    b->errors += err;
    b->classes[cls <= 5 ? cls : 0]++;
    if (x->upstream_error < SF_STATS_UPSTREAM_KINDS)
        b->upstream[x->upstream_error]++;
    b->bytes_in += x->bytes_in;
    b->bytes_out += x->bytes_out;
    b->sum_us += v;
    if (v < b->min_us)
        b->min_us = v;
    if (v > b->max_us)
        b->max_us = v;
    b->hist[i]++;
    b->le[k + (v > le_us[k])]++;
    sl->fallbacks += x->fallback != 0;

    struct tick *t = tick_at(sl, x->now_sec);
    if (t != NULL) {
        t->requests[x->backend]++;
        t->errors[x->backend] += err;
        t->fallbacks += x->fallback != 0;
        if (sl->wlat != NULL)
            sl->wlat[t - sl->ring][x->backend][wlat_bucket(v)]++;
    }
}

void sf_stats_record(sf_stats *s, int slot, const sf_stats_sample *x)
{
    lock(s);
    record_locked(s, slot, x);
    unlock(s);
}

static void record_shadow_locked(sf_stats *s, int slot, sf_stats_shadow_result r, uint64_t now_sec)
{
    if ((unsigned)slot >= (unsigned)s->n || (unsigned)r >= SF_STATS_SHADOW_RESULTS)
        return;
    struct slot *sl = s->slots[slot];
    sl->shadow[r]++;
    if (r > SF_STATS_SHADOW_NOISE)
        return;
    struct tick *t = tick_at(sl, now_sec);
    if (t != NULL) {
        t->compared++;
        t->mismatched += r == SF_STATS_SHADOW_MISMATCH;
    }
}

void sf_stats_record_shadow(sf_stats *s, int slot, sf_stats_shadow_result r, uint64_t now_sec)
{
    lock(s);
    record_shadow_locked(s, slot, r, now_sec);
    unlock(s);
}

void sf_stats_record_shadow_reason(sf_stats *s, int slot, sf_stats_shadow_reason why,
                                   uint64_t now_sec)
{
    if ((unsigned)slot >= (unsigned)s->n || (unsigned)why >= SF_STATS_SHADOW_REASONS)
        return;
    lock(s);
    s->slots[slot]->shadow_reason[why]++;
    record_shadow_locked(
        s, slot, why <= SF_STATS_SHADOW_SKIP_MAX ? SF_STATS_SHADOW_SKIPPED : SF_STATS_SHADOW_ERROR,
        now_sec);
    unlock(s);
}

static void add_backend(struct backend_stats *d, const struct backend_stats *b)
{
    d->requests += b->requests;
    d->errors += b->errors;
    d->bytes_in += b->bytes_in;
    d->bytes_out += b->bytes_out;
    for (int i = 0; i < 6; i++)
        d->classes[i] += b->classes[i];
    for (int i = 0; i < SF_STATS_UPSTREAM_KINDS; i++)
        d->upstream[i] += b->upstream[i];
    d->sum_us += b->sum_us;
    if (b->min_us < d->min_us)
        d->min_us = b->min_us;
    if (b->max_us > d->max_us)
        d->max_us = b->max_us;
    for (int i = 0; i < SF_STATS_LE_N; i++)
        d->le[i] += b->le[i];
    for (int i = 0; i < HIST_N; i++)
        d->hist[i] += b->hist[i];
}

static int merge_locked(sf_stats *dst, const sf_stats *src)
{
    for (int i = 0; i < src->n; i++) {
        const struct slot *from = src->slots[i];
        int j = slot_locked(dst, from->name);
        if (j < 0)
            return -1;
        struct slot *to = dst->slots[j];
        to->fallbacks += from->fallbacks;
        for (int r = 0; r < SF_STATS_SHADOW_RESULTS; r++)
            to->shadow[r] += from->shadow[r];
        for (int r = 0; r < SF_STATS_SHADOW_REASONS; r++)
            to->shadow_reason[r] += from->shadow_reason[r];
        for (int b = 0; b < SF_STATS_BACKENDS; b++)
            add_backend(&to->b[b], &from->b[b]);

        /* The seconds both rings still hold. */
        advance(to, from->last_sec);
        uint64_t first = to->last_sec >= SF_STATS_RING_SECONDS - 1
                             ? to->last_sec - (SF_STATS_RING_SECONDS - 1)
                             : 0;
        for (uint64_t t = first; t <= from->last_sec; t++) {
            unsigned p = (unsigned)(t % SF_STATS_RING_SECONDS);
            for (int b = 0; b < SF_STATS_BACKENDS; b++) {
                to->ring[p].requests[b] += from->ring[p].requests[b];
                to->ring[p].errors[b] += from->ring[p].errors[b];
            }
            to->ring[p].fallbacks += from->ring[p].fallbacks;
            to->ring[p].compared += from->ring[p].compared;
            to->ring[p].mismatched += from->ring[p].mismatched;
            if (from->wlat != NULL && (to->wlat != NULL || window_latency_locked(dst, j) == 0))
                for (int b = 0; b < SF_STATS_BACKENDS; b++)
                    for (unsigned q = 0; q < WLAT_N; q++)
                        to->wlat[p][b][q] += from->wlat[p][b][q];
        }
    }
    return 0;
}

int sf_stats_merge(sf_stats *dst, sf_stats *src)
{
    lock(src);
    lock(dst);
    int rc = merge_locked(dst, src);
    unlock(dst);
    unlock(src);
    return rc;
}

/* Values at the quantiles qs[0..n) (ascending), in microseconds, in one walk. The value of a
 * bucket is its midpoint, kept within the smallest and largest value seen. */
static void quantiles(const struct backend_stats *b, const double *qs, double *out, int n)
{
    int k = 0;
    uint64_t cum = 0;
    for (unsigned i = 0; i < HIST_N && k < n; i++) {
        cum += b->hist[i];
        while (k < n) {
            double q = qs[k] < 0 ? 0 : qs[k] > 1 ? 1 : qs[k];
            /* The epsilon keeps q * count from rounding up past an exact rank. */
            double rank = ceil(q * (double)b->requests - 1e-9);
            if (rank < 1)
                rank = 1;
            if ((double)cum < rank)
                break;
            double v = (double)bucket_lower(i) + (double)(bucket_width(i) - 1) / 2;
            if (v < (double)b->min_us)
                v = (double)b->min_us;
            if (v > (double)b->max_us)
                v = (double)b->max_us;
            out[k++] = v;
        }
    }
    for (; k < n; k++)
        out[k] = NAN;
}

double sf_stats_quantile_us(const sf_stats *s, int slot, int backend, double q)
{
    if (slot < 0 || slot >= s->n || backend < 0 || backend >= SF_STATS_BACKENDS)
        return NAN;
    const struct backend_stats *b = &s->slots[slot]->b[backend];
    double v;
    if (b->requests == 0)
        return NAN;
    quantiles(b, &q, &v, 1);
    return v;
}

/* Sums the ring over the seconds (now - window, now] that it still holds. */
static void window_sum(const struct slot *sl, uint64_t now, unsigned window, sf_stats_window *w)
{
    memset(w, 0, sizeof(*w));
    if (window > SF_STATS_RING_SECONDS)
        window = SF_STATS_RING_SECONDS;
    if (window == 0)
        return;
    uint64_t lo = now >= window - 1 ? now - (window - 1) : 0;
    uint64_t kept =
        sl->last_sec >= SF_STATS_RING_SECONDS - 1 ? sl->last_sec - (SF_STATS_RING_SECONDS - 1) : 0;
    uint64_t hi = now < sl->last_sec ? now : sl->last_sec;
    if (lo < kept)
        lo = kept;
    for (uint64_t t = lo; t <= hi; t++) {
        const struct tick *k = &sl->ring[t % SF_STATS_RING_SECONDS];
        for (int b = 0; b < SF_STATS_BACKENDS; b++) {
            w->requests[b] += k->requests[b];
            w->errors[b] += k->errors[b];
        }
        w->fallbacks += k->fallbacks;
        w->compared += k->compared;
        w->mismatched += k->mismatched;
    }
}

void sf_stats_window_sum(const sf_stats *s, int slot, uint64_t now_sec, unsigned window_sec,
                         sf_stats_window *out)
{
    if ((unsigned)slot >= (unsigned)s->n) {
        memset(out, 0, sizeof(*out));
        return;
    }
    window_sum(s->slots[slot], now_sec, window_sec, out);
}

/* Adds slot's requests of backend per second for the n seconds up to now into out. */
static void series_add(const struct slot *sl, int backend, uint64_t now, unsigned n, uint32_t *out)
{
    uint64_t kept =
        sl->last_sec >= SF_STATS_RING_SECONDS - 1 ? sl->last_sec - (SF_STATS_RING_SECONDS - 1) : 0;
    for (unsigned i = 0; i < n; i++) {
        uint64_t back = n - 1 - i;
        if (back > now)
            continue;
        uint64_t t = now - back;
        if (t >= kept && t <= sl->last_sec)
            out[i] += sl->ring[t % SF_STATS_RING_SECONDS].requests[backend];
    }
}

void sf_stats_series(const sf_stats *s, int slot, int backend, uint64_t now_sec, unsigned n,
                     uint32_t *out)
{
    memset(out, 0, n * sizeof(*out));
    if ((unsigned)backend >= SF_STATS_BACKENDS)
        return;
    for (int i = 0; i < s->n; i++)
        if (slot < 0 || slot == i)
            series_add(s->slots[i], backend, now_sec, n, out);
}

double sf_stats_legacy_share(const sf_stats *s, uint64_t now_sec, unsigned window_sec)
{
    uint64_t legacy = 0, all = 0;
    for (int i = 0; i < s->n; i++) {
        sf_stats_window w;
        window_sum(s->slots[i], now_sec, window_sec, &w);
        legacy += w.requests[SF_STATS_LEGACY];
        /* a fallback is one client request, counted under both backends */
        all += w.requests[SF_STATS_LEGACY] + w.requests[SF_STATS_FUNCTION] - w.fallbacks;
    }
    return all ? (double)legacy / (double)all : NAN;
}

int sf_stats_snapshot_slot(const sf_stats *s, int slot, uint64_t now_sec, sf_stats_snapshot *out)
{
    if (slot < 0 || slot >= s->n)
        return -1;
    const struct slot *sl = s->slots[slot];
    sf_stats_window w60, w300;
    window_sum(sl, now_sec, 60, &w60);
    window_sum(sl, now_sec, 300, &w300);

    memset(out, 0, sizeof(*out));
    out->name = sl->name;
    out->fallbacks = sl->fallbacks;
    memcpy(out->shadow, sl->shadow, sizeof(out->shadow));
    memcpy(out->shadow_reason, sl->shadow_reason, sizeof(out->shadow_reason));
    out->compared_60s = w60.compared;
    out->mismatch_60s = w60.mismatched;
    for (int i = 0; i < SF_STATS_BACKENDS; i++) {
        const struct backend_stats *b = &sl->b[i];
        sf_stats_backend_snapshot *o = &out->backend[i];
        o->requests = b->requests;
        memcpy(o->classes, b->classes, sizeof(o->classes));
        o->errors = b->errors;
        memcpy(o->upstream_errors, b->upstream, sizeof(o->upstream_errors));
        o->upstream_errors[SF_STATS_UPSTREAM_NONE] = 0;
        o->bytes_in = b->bytes_in;
        o->bytes_out = b->bytes_out;
        static const double qs[3] = {0.5, 0.9, 0.99};
        double v[3] = {NAN, NAN, NAN};
        if (b->requests > 0)
            quantiles(b, qs, v, 3);
        o->p50_ms = v[0] / 1000;
        o->p90_ms = v[1] / 1000;
        o->p99_ms = v[2] / 1000;
        o->requests_60s = w60.requests[i];
        o->errors_60s = w60.errors[i];
        o->requests_300s = w300.requests[i];
        o->errors_300s = w300.errors[i];
        o->rate_60s = (double)w60.requests[i] / 60;
        o->rate_300s = (double)w300.requests[i] / 300;
        uint64_t cum = 0;
        for (int k = 0; k < SF_STATS_LE_N; k++) {
            cum += b->le[k];
            o->le_cumulative[k] = cum;
        }
        o->sum_seconds = (double)b->sum_us / 1e6;
    }
    return 0;
}

const char *sf_stats_backend_name(int backend)
{
    static const char *const names[] = {"legacy", "function"};
    return backend >= 0 && backend < SF_STATS_BACKENDS ? names[backend] : "?";
}

const char *sf_stats_upstream_error_name(int kind)
{
    static const char *const names[] = {"none", "connect", "timeout", "reset", "protocol"};
    return kind >= 0 && kind < SF_STATS_UPSTREAM_KINDS ? names[kind] : "?";
}

const char *sf_stats_shadow_reason_name(int reason)
{
    static const char *const names[] = {
        "sampled_out", "method",  "body_too_large", "over_capacity", "primary_failed",
        "timeout",     "connect", "reset",          "protocol",      "5xx"};
    return reason >= 0 && reason < SF_STATS_SHADOW_REASONS ? names[reason] : "?";
}

const char *sf_stats_shadow_result_name(int result)
{
    static const char *const names[] = {"match", "mismatch", "noise", "skipped", "error"};
    return result >= 0 && result < SF_STATS_SHADOW_RESULTS ? names[result] : "?";
}
