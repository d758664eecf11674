/* The stats engine: counters, quantiles against exact ones, the per-second ring against a
 * brute-force model, legacy share, shard merging, Prometheus buckets, and the cost of a record. */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "stats.h"
#include "tap.h"

static uint64_t rng_state = 88172645463325252ULL;

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static double unit(void) /* (0, 1] */
{
    return (double)((rnd() >> 11) + 1) / 9007199254740992.0;
}

static sf_stats_sample sample(int backend, int status, uint64_t us, uint64_t now)
{
    sf_stats_sample x = {0};
    x.backend = (uint8_t)backend;
    x.status = (uint16_t)status;
    x.duration_us = us;
    x.now_sec = now;
    return x;
}

static void test_counts_and_classes(void)
{
    sf_stats *s = sf_stats_create();
    int r = sf_stats_slot(s, "orders");
    static const int statuses[] = {0, 101, 200, 200, 204, 301, 404, 500, 503, 999};
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        sf_stats_sample x = sample(SF_STATS_FUNCTION, statuses[i], 1000, 10);
        x.bytes_in = 10;
        x.bytes_out = 100;
        sf_stats_record(s, r, &x);
    }
    sf_stats_sample x = sample(SF_STATS_LEGACY, 200, 1000, 10);
    sf_stats_record(s, r, &x);

    sf_stats_snapshot snap;
    is(sf_stats_snapshot_slot(s, r, 10, &snap), 0, "snapshot of a known slot succeeds");
    const sf_stats_backend_snapshot *f = &snap.backend[SF_STATS_FUNCTION];
    is_str(snap.name, "orders", "snapshot carries the slot's name");
    is((long long)f->requests, 10, "function requests counted");
    is((long long)snap.backend[SF_STATS_LEGACY].requests, 1, "legacy requests counted apart");
    is((long long)f->classes[0], 2, "status 0 and out-of-range status count as no response");
    is((long long)f->classes[1], 1, "1xx");
    is((long long)f->classes[2], 3, "2xx");
    is((long long)f->classes[3], 1, "3xx");
    is((long long)f->classes[4], 1, "4xx");
    is((long long)f->classes[5], 2, "5xx");
    is((long long)f->errors, 2,
       "errors are the 5xx (a status of 999 is neither a class nor an error)");
    is((long long)f->bytes_in, 100, "bytes in summed");
    is((long long)f->bytes_out, 1000, "bytes out summed");
    is(sf_stats_snapshot_slot(s, 5, 10, &snap), -1, "snapshot of an unknown slot fails");

    sf_stats_record(s, 7, &x);
    sf_stats_record(s, -1, &x);
    x.backend = 2;
    sf_stats_record(s, r, &x);
    sf_stats_snapshot_slot(s, r, 10, &snap);
    is((long long)(snap.backend[0].requests + snap.backend[1].requests), 11,
       "records with an unknown slot or backend are ignored");
    sf_stats_destroy(s);
}

static void test_errors_and_kinds(void)
{
    sf_stats *s = sf_stats_create();
    int r = sf_stats_slot(s, "catalog");
    sf_stats_sample x = sample(SF_STATS_FUNCTION, 502, 5000, 1);
    x.upstream_error = SF_STATS_UPSTREAM_CONNECT;
    sf_stats_record(s, r, &x);
    x.upstream_error = SF_STATS_UPSTREAM_TIMEOUT;
    x.status = 504;
    sf_stats_record(s, r, &x);
    x.upstream_error = SF_STATS_UPSTREAM_RESET;
    x.status = 0;
    sf_stats_record(s, r, &x);
    x.upstream_error = SF_STATS_UPSTREAM_PROTOCOL;
    x.status = 502;
    sf_stats_record(s, r, &x);
    x.upstream_error = SF_STATS_UPSTREAM_CONNECT;
    x.status = 200; /* then served by legacy: counted on the function as an error */
    sf_stats_record(s, r, &x);
    sf_stats_sample l = sample(SF_STATS_LEGACY, 200, 3000, 1);
    l.fallback = 1;
    sf_stats_record(s, r, &l);
    sf_stats_record(s, r, &l);
    sf_stats_record_shadow(s, r, SF_STATS_SHADOW_MATCH, 1);
    sf_stats_record_shadow(s, r, SF_STATS_SHADOW_MATCH, 1);
    sf_stats_record_shadow(s, r, SF_STATS_SHADOW_MISMATCH, 1);
    sf_stats_record_shadow(s, r, SF_STATS_SHADOW_ERROR, 1);
    sf_stats_record_shadow(s, r, (sf_stats_shadow_result)9, 1);

    sf_stats_snapshot snap;
    sf_stats_snapshot_slot(s, r, 1, &snap);
    const sf_stats_backend_snapshot *f = &snap.backend[SF_STATS_FUNCTION];
    is((long long)f->errors, 5, "an upstream error with a 5xx counts once");
    is((long long)f->errors_60s, 5, "errors reach the ring");
    is((long long)f->upstream_errors[SF_STATS_UPSTREAM_CONNECT], 2, "connect errors by kind");
    is((long long)f->upstream_errors[SF_STATS_UPSTREAM_TIMEOUT], 1, "timeouts by kind");
    is((long long)f->requests, 5, "function requests");
    is((long long)f->upstream_errors[SF_STATS_UPSTREAM_RESET], 1, "resets by kind");
    is((long long)f->upstream_errors[SF_STATS_UPSTREAM_PROTOCOL], 1, "protocol errors by kind");
    is((long long)f->upstream_errors[SF_STATS_UPSTREAM_NONE], 0, "no count under kind none");
    is((long long)snap.backend[SF_STATS_LEGACY].errors, 0, "a 200 from legacy is no error");
    is((long long)snap.fallbacks, 2, "fallbacks counted per slot");
    is((long long)snap.backend[SF_STATS_LEGACY].requests, 2, "a fallback is a legacy request");
    is((long long)snap.shadow[SF_STATS_SHADOW_MATCH], 2, "shadow matches");
    is((long long)snap.shadow[SF_STATS_SHADOW_MISMATCH], 1, "shadow mismatches");
    is((long long)snap.shadow[SF_STATS_SHADOW_ERROR], 1, "shadow errors");
    is((long long)(snap.shadow[SF_STATS_SHADOW_NOISE] + snap.shadow[SF_STATS_SHADOW_SKIPPED]), 0,
       "unknown shadow results ignored");
    is((long long)snap.compared_60s, 3, "comparisons in the last minute: match, mismatch");
    is((long long)snap.mismatch_60s, 1, "mismatches in the last minute");
    sf_stats_record_shadow_reason(s, r, SF_STATS_SKIP_BODY, 1);
    sf_stats_record_shadow_reason(s, r, SF_STATS_ERR_TIMEOUT, 1);
    sf_stats_record_shadow_reason(s, r, (sf_stats_shadow_reason)99, 1);
    sf_stats_snapshot_slot(s, r, 1, &snap);
    ok(snap.shadow_reason[SF_STATS_SKIP_BODY] == 1 &&
           snap.shadow_reason[SF_STATS_ERR_TIMEOUT] == 1 &&
           snap.shadow[SF_STATS_SHADOW_SKIPPED] == 1 && snap.shadow[SF_STATS_SHADOW_ERROR] == 2,
       "a reason counts under its result and on its own");
    is((long long)snap.compared_60s, 3, "skips and errors are no comparisons");
    sf_stats_snapshot_slot(s, r, 200, &snap);
    is((long long)snap.compared_60s, 0, "comparisons leave the minute");
    is_str(sf_stats_shadow_reason_name(SF_STATS_SKIP_BODY), "body_too_large", "reason names");
    is_str(sf_stats_upstream_error_name(SF_STATS_UPSTREAM_TIMEOUT), "timeout", "kind names");
    is_str(sf_stats_shadow_result_name(SF_STATS_SHADOW_NOISE), "noise", "shadow result names");
    is_str(sf_stats_backend_name(SF_STATS_FUNCTION), "function", "backend names");
    is_str(sf_stats_backend_name(7), "?", "out-of-range names");
    sf_stats_destroy(s);
}

static void test_slots_by_name(void)
{
    sf_stats *s = sf_stats_create();
    is(sf_stats_find(s, "_default"), -1, "find on an empty shard");
    int d = sf_stats_slot(s, "_default");
    int o = sf_stats_slot(s, "orders");
    ok(d >= 0 && o >= 0 && d != o, "two names, two slots");
    is(sf_stats_slot(s, "orders"), o, "the same name gives the same slot");
    int idx[200];
    char name[32];
    for (int i = 0; i < 200; i++) {
        snprintf(name, sizeof(name), "route-%d", i);
        idx[i] = sf_stats_slot(s, name);
    }
    int same = 1;
    for (int i = 0; i < 200; i++) {
        snprintf(name, sizeof(name), "route-%d", i);
        same &= sf_stats_slot(s, name) == idx[i] && sf_stats_find(s, name) == idx[i] &&
                strcmp(sf_stats_name(s, idx[i]), name) == 0;
    }
    ok(same, "slots stay put as the table grows (a reload keeps a route's numbers)");
    is(sf_stats_slot(s, "_default"), d, "the first slot still found after growth");
    is(sf_stats_count(s), 202, "one slot per name");
    is(sf_stats_find(s, "nope"), -1, "find does not create");
    ok(sf_stats_name(s, 202) == NULL, "no name for an unknown slot");
    sf_stats_destroy(s);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Nearest rank, as the engine defines it. */
static uint64_t exact_quantile(const uint64_t *sorted, size_t n, double q)
{
    double rank = ceil(q * (double)n - 1e-9);
    if (rank < 1)
        rank = 1;
    return sorted[(size_t)rank - 1];
}

enum { UNIFORM, EXPONENTIAL, BIMODAL };

static uint64_t draw(int dist)
{
    switch (dist) {
    case UNIFORM:
        return 1 + rnd() % 2000000; /* 1 us .. 2 s */
    case EXPONENTIAL:
        return (uint64_t)(-log(unit()) * 20000); /* mean 20 ms */
    default:
        if (rnd() % 10 < 8)
            return 800 + rnd() % 1500;                    /* a fast mode around 1.5 ms */
        return (uint64_t)(300000 - log(unit()) * 200000); /* a slow tail from 300 ms */
    }
}

static void test_quantile_error(void)
{
    static const char *const names[] = {"uniform", "exponential", "bimodal"};
    static const double qs[] = {0.01, 0.25, 0.5, 0.9, 0.99, 0.999};
    enum { N = 200000 };
    uint64_t *v = malloc(N * sizeof(*v));
    for (int dist = UNIFORM; dist <= BIMODAL; dist++) {
        sf_stats *s = sf_stats_create();
        int r = sf_stats_slot(s, "r");
        for (int i = 0; i < N; i++) {
            v[i] = draw(dist);
            sf_stats_sample x = sample(SF_STATS_LEGACY, 200, v[i], 1);
            sf_stats_record(s, r, &x);
        }
        qsort(v, N, sizeof(*v), cmp_u64);
        double worst = 0;
        double worst_q = 0;
        for (size_t k = 0; k < sizeof(qs) / sizeof(qs[0]); k++) {
            double exact = (double)exact_quantile(v, N, qs[k]);
            double got = sf_stats_quantile_us(s, r, SF_STATS_LEGACY, qs[k]);
            double err = exact == 0 ? fabs(got) : fabs(got - exact) / exact;
            if (err > worst) {
                worst = err;
                worst_q = qs[k];
            }
        }
        if (!ok(worst <= 0.01, "%s: quantile relative error <= 1%%", names[dist]))
            diag("worst %.4f%% at q=%g", worst * 100, worst_q);
        else
            diag("%s: worst relative error %.4f%% at q=%g", names[dist], worst * 100, worst_q);
        sf_stats_snapshot snap;
        sf_stats_snapshot_slot(s, r, 1, &snap);
        double e99 = (double)exact_quantile(v, N, 0.99) / 1000;
        ok(fabs(snap.backend[0].p99_ms - e99) <= 0.01 * e99, "%s: snapshot p99 in ms", names[dist]);
        sf_stats_destroy(s);
    }
    free(v);

    sf_stats *s = sf_stats_create();
    int r = sf_stats_slot(s, "r");
    ok(isnan(sf_stats_quantile_us(s, r, 0, 0.5)), "no requests: quantile is NAN");
    sf_stats_snapshot snap;
    sf_stats_snapshot_slot(s, r, 1, &snap);
    ok(isnan(snap.backend[1].p50_ms) && isnan(snap.backend[1].p99_ms), "no requests: p50/p99 NAN");
    sf_stats_destroy(s);
}

static void test_constant_values(void)
{
    static const uint64_t values[] = {0, 7, 1234, 250000, 99999999, 150000000};
    for (size_t k = 0; k < sizeof(values) / sizeof(values[0]); k++) {
        sf_stats *s = sf_stats_create();
        int r = sf_stats_slot(s, "r");
        for (int i = 0; i < 1000; i++) {
            sf_stats_sample x = sample(SF_STATS_FUNCTION, 200, values[k], 1);
            sf_stats_record(s, r, &x);
        }
        sf_stats_snapshot snap;
        sf_stats_snapshot_slot(s, r, 1, &snap);
        double ms = (double)values[k] / 1000;
        const sf_stats_backend_snapshot *f = &snap.backend[SF_STATS_FUNCTION];
        if (!ok(f->p50_ms == ms && f->p90_ms == ms && f->p99_ms == ms,
                "constant %llu us: p50, p90 and p99 exact", (unsigned long long)values[k]))
            diag("p50 %g p90 %g p99 %g, want %g", f->p50_ms, f->p90_ms, f->p99_ms, ms);
        sf_stats_destroy(s);
    }

    sf_stats *s = sf_stats_create();
    int r = sf_stats_slot(s, "r");
    for (int i = 0; i < 1000; i++) {
        sf_stats_sample x = sample(SF_STATS_LEGACY, 200, i < 980 ? 2000 : 400000, 1);
        sf_stats_record(s, r, &x);
    }
    sf_stats_snapshot snap;
    sf_stats_snapshot_slot(s, r, 1, &snap);
    ok(fabs(snap.backend[0].p50_ms - 2) <= 0.02 && fabs(snap.backend[0].p90_ms - 2) <= 0.02,
       "98%% at 2 ms: p50 and p90 are 2 ms within 1%%");
    ok(fabs(snap.backend[0].p99_ms - 400) <= 4, "2%% at 400 ms: p99 is 400 ms within 1%%");
    sf_stats_destroy(s);
}

/* The brute-force model of the ring: counts per absolute second. */
enum { T_MAX = 8000 };
static uint32_t model_req[SF_STATS_BACKENDS][T_MAX], model_err[SF_STATS_BACKENDS][T_MAX];

static void model_window(uint64_t now, unsigned w, uint64_t *req, uint64_t *err)
{
    for (int b = 0; b < SF_STATS_BACKENDS; b++) {
        req[b] = err[b] = 0;
        for (uint64_t t = now + 1 > w ? now + 1 - w : 0; t <= now && t < T_MAX; t++) {
            req[b] += model_req[b][t];
            err[b] += model_err[b][t];
        }
    }
}

static void test_ring_cases(void)
{
    sf_stats *s = sf_stats_create();
    int r = sf_stats_slot(s, "orders");
    sf_stats_snapshot snap;
    for (uint64_t t = 1000; t < 1060; t++) {
        sf_stats_sample x = sample(SF_STATS_FUNCTION, 200, 100, t);
        sf_stats_record(s, r, &x);
    }
    sf_stats_snapshot_slot(s, r, 1059, &snap);
    const sf_stats_backend_snapshot *f = &snap.backend[SF_STATS_FUNCTION];
    ok(f->rate_60s == 1.0, "1 request/s for 60 s: 1/s over 60 s");
    ok(fabs(f->rate_300s - 0.2) < 1e-12, "1 request/s for 60 s: 0.2/s over 300 s");
    sf_stats_snapshot_slot(s, r, 1089, &snap);
    is((long long)f->requests_60s, 30, "read 30 s later: half the minute left");
    sf_stats_snapshot_slot(s, r, 1200, &snap);
    is((long long)f->requests_60s, 0, "read after a quiet minute: nothing in 60 s");
    is((long long)f->requests_300s, 60, "... and all 60 in 300 s");

    sf_stats_sample x = sample(SF_STATS_FUNCTION, 500, 100, 1200);
    sf_stats_record(s, r, &x);
    sf_stats_snapshot_slot(s, r, 1200, &snap);
    is((long long)f->requests_60s, 1, "after a gap: one request in the minute");
    is((long long)f->requests_300s, 61, "after a gap: older seconds still in 300 s");
    is((long long)f->errors_300s, 1, "errors in the window");

    x.now_sec = 1350; /* wraps the ring: seconds up to 1050 are gone */
    sf_stats_record(s, r, &x);
    sf_stats_snapshot_slot(s, r, 1350, &snap);
    is((long long)f->requests_300s, 11, "after wrap-around: 1051..1059, 1200 and 1350");

    x.now_sec = 1340; /* a little late: still in the ring */
    sf_stats_record(s, r, &x);
    x.now_sec = 1000; /* older than the ring: only the totals */
    sf_stats_record(s, r, &x);
    sf_stats_snapshot_slot(s, r, 1350, &snap);
    is((long long)f->requests_60s, 2, "a late record counts in its own second");
    is((long long)f->requests_300s, 12, "a record older than the ring is not in windows");
    is((long long)f->requests, 64, "... but is in the totals");

    x.now_sec = 5000; /* a gap longer than the ring */
    sf_stats_record(s, r, &x);
    sf_stats_snapshot_slot(s, r, 5000, &snap);
    is((long long)f->requests_300s, 1, "after a gap longer than the ring: only the new second");
    is((long long)snap.backend[SF_STATS_LEGACY].requests_300s, 0, "other backend empty");
    sf_stats_destroy(s);
}

static void test_ring_random(void)
{
    memset(model_req, 0, sizeof(model_req));
    memset(model_err, 0, sizeof(model_err));
    sf_stats *s = sf_stats_create();
    int r = sf_stats_slot(s, "r");
    uint64_t now = 3;
    int bad = 0, checks = 0;
    while (now < T_MAX - 1000) {
        uint64_t g = rnd() % 100;
        now += g < 60 ? 0 : g < 95 ? 1 + rnd() % 5 : g < 99 ? 20 + rnd() % 200 : 300 + rnd() % 400;
        int n = (int)(rnd() % 4);
        for (int i = 0; i < n; i++) {
            int b = (int)(rnd() % 2);
            int status = rnd() % 5 == 0 ? 503 : 200;
            sf_stats_sample x = sample(b, status, 10, now);
            sf_stats_record(s, r, &x);
            model_req[b][now]++;
            model_err[b][now] += status == 503;
        }
        uint64_t at = now + (rnd() % 4 == 0 ? rnd() % 400 : 0);
        sf_stats_snapshot snap;
        sf_stats_snapshot_slot(s, r, at, &snap);
        for (int b = 0; b < SF_STATS_BACKENDS; b++) {
            uint64_t req60[2], err60[2], req300[2], err300[2];
            model_window(at, 60, req60, err60);
            model_window(at, 300, req300, err300);
            const sf_stats_backend_snapshot *o = &snap.backend[b];
            checks++;
            if (o->requests_60s != req60[b] || o->errors_60s != err60[b] ||
                o->requests_300s != req300[b] || o->errors_300s != err300[b]) {
                if (bad++ == 0)
                    diag("at %llu backend %d: 60s %llu/%llu want %llu/%llu, 300s %llu/%llu want "
                         "%llu/%llu",
                         (unsigned long long)at, b, (unsigned long long)o->requests_60s,
                         (unsigned long long)o->errors_60s, (unsigned long long)req60[b],
                         (unsigned long long)err60[b], (unsigned long long)o->requests_300s,
                         (unsigned long long)o->errors_300s, (unsigned long long)req300[b],
                         (unsigned long long)err300[b]);
            }
        }
    }
    ok(bad == 0,
       "random clock with gaps and wrap-arounds: 60 s and 300 s windows equal the model "
       "(%d checks)",
       checks);
    sf_stats_destroy(s);
}

static void test_legacy_share(void)
{
    sf_stats *s = sf_stats_create();
    ok(isnan(sf_stats_legacy_share(s, 100, 60)), "no traffic: share is NAN");
    int a = sf_stats_slot(s, "_default"), o = sf_stats_slot(s, "orders");
    for (int i = 0; i < 30; i++) {
        sf_stats_sample x = sample(SF_STATS_LEGACY, 200, 10, 100);
        sf_stats_record(s, a, &x);
        x = sample(i < 10 ? SF_STATS_LEGACY : SF_STATS_FUNCTION, 200, 10, 150);
        sf_stats_record(s, o, &x);
    }
    /* At 150 over 60 s: 10 legacy of 30 on orders; _default at 100 is in too. */
    ok(fabs(sf_stats_legacy_share(s, 150, 60) - 40.0 / 60) < 1e-12,
       "share over all slots in the last minute");
    ok(fabs(sf_stats_legacy_share(s, 200, 60) - 10.0 / 30) < 1e-12,
       "older seconds leave the minute");
    ok(fabs(sf_stats_legacy_share(s, 200, 300) - 40.0 / 60) < 1e-12, "a 5-minute window");
    ok(isnan(sf_stats_legacy_share(s, 1000, 60)), "a quiet minute: NAN");
    /* 10 requests the function failed and legacy served: each is a function attempt and a
     * legacy answer, one request of the share */
    for (int i = 0; i < 10; i++) {
        sf_stats_sample x = sample(SF_STATS_FUNCTION, 503, 10, 1000);
        sf_stats_record(s, o, &x);
        x = sample(SF_STATS_LEGACY, 200, 10, 1000);
        x.fallback = 1;
        sf_stats_record(s, o, &x);
    }
    sf_stats_sample y = sample(SF_STATS_FUNCTION, 200, 10, 1000);
    sf_stats_record(s, o, &y);
    ok(fabs(sf_stats_legacy_share(s, 1000, 60) - 10.0 / 11) < 1e-12,
       "a fallback counts once in the share, as legacy");
    sf_stats_destroy(s);
}

static int snapshots_equal(const sf_stats *a, const sf_stats *b, uint64_t now)
{
    if (sf_stats_count(a) != sf_stats_count(b))
        return 0;
    for (int i = 0; i < sf_stats_count(a); i++) {
        int j = sf_stats_find(b, sf_stats_name(a, i));
        sf_stats_snapshot x, y;
        if (j < 0 || sf_stats_snapshot_slot(a, i, now, &x) < 0 ||
            sf_stats_snapshot_slot(b, j, now, &y) < 0)
            return 0;
        x.name = y.name = NULL;
        for (int k = 0; k < SF_STATS_BACKENDS; k++) {
            /* NAN != NAN: compare quantiles apart, as bits. */
            double *px[] = {&x.backend[k].p50_ms, &x.backend[k].p90_ms, &x.backend[k].p99_ms};
            double *py[] = {&y.backend[k].p50_ms, &y.backend[k].p90_ms, &y.backend[k].p99_ms};
            for (int q = 0; q < 3; q++) {
                if (memcmp(px[q], py[q], sizeof(double)) != 0)
                    return 0;
                *px[q] = *py[q] = 0;
            }
        }
        if (memcmp(&x, &y, sizeof(x)) != 0)
            return 0;
    }
    for (int i = 0; i < 200; i++) {
        double q = (double)i / 200;
        double x = sf_stats_quantile_us(a, 0, 0, q);
        double y = sf_stats_quantile_us(b, sf_stats_find(b, sf_stats_name(a, 0)), 0, q);
        if (x != y)
            return 0;
    }
    return 1;
}

static void test_series(void)
{
    sf_stats *s = sf_stats_create();
    int a = sf_stats_slot(s, "a"), b = sf_stats_slot(s, "b");
    for (uint64_t t = 100; t < 110; t++)
        for (uint64_t k = 0; k < t - 99; k++) {
            sf_stats_sample x = sample(SF_STATS_LEGACY, 200, 100, t);
            sf_stats_record(s, a, &x);
            x.backend = SF_STATS_FUNCTION;
            sf_stats_record(s, b, &x);
            sf_stats_record(s, b, &x);
        }
    uint32_t out[12];
    sf_stats_series(s, a, SF_STATS_LEGACY, 109, 12, out);
    ok(out[0] == 0 && out[1] == 0 && out[2] == 1 && out[11] == 10, "series oldest first, to now");
    sf_stats_series(s, -1, SF_STATS_FUNCTION, 111, 12, out);
    ok(out[0] == 2 && out[9] == 20 && out[10] == 0 && out[11] == 0,
       "all slots; seconds after the last record are 0");
    sf_stats_series(s, a, SF_STATS_FUNCTION, 109, 12, out);
    ok(out[11] == 0 && out[5] == 0, "another backend's requests are not in the series");
    sf_stats_series(s, a, SF_STATS_LEGACY, 109 + SF_STATS_RING_SECONDS, 12, out);
    ok(out[0] == 0 && out[11] == 0, "seconds older than the ring read as 0");
    sf_stats_series(s, a, SF_STATS_LEGACY, 5, 12, out);
    ok(out[0] == 0 && out[11] == 0, "a window reaching before second 0");
    sf_stats_destroy(s);
}

static void test_window_latency(void)
{
    sf_stats *s = sf_stats_create();
    int a = sf_stats_slot(s, "a");
    uint64_t n;
    ok(isnan(sf_stats_window_quantile_ms(s, a, SF_STATS_LEGACY, 10, 60, 0.99, &n)) && n == 0,
       "no window latency unless asked for");
    ok(sf_stats_window_latency(s, a) == 0 && sf_stats_window_latency(s, 7) < 0,
       "asked for, for a known slot only");
    /* 100 requests a second for 10 s: 1 ms legacy, 10 ms function; one slow function request */
    for (uint64_t t = 100; t < 110; t++)
        for (int i = 0; i < 100; i++) {
            sf_stats_sample x = sample(SF_STATS_LEGACY, 200, 1000, t);
            sf_stats_record(s, a, &x);
            x = sample(SF_STATS_FUNCTION, i == 0 && t == 100 ? 500 : 200, 10000, t);
            sf_stats_record(s, a, &x);
        }
    double l = sf_stats_window_quantile_ms(s, a, SF_STATS_LEGACY, 109, 60, 0.99, &n);
    ok(l >= 1.0 && l <= 1.5 && n == 1000, "legacy p99 over the window, within +50%% (%.3f ms)", l);
    double f = sf_stats_window_quantile_ms(s, a, SF_STATS_FUNCTION, 109, 60, 0.99, &n);
    ok(f >= 10.0 && f <= 15.0, "function p99 (%.3f ms)", f);
    ok(f / l > 6 && f / l < 15, "their ratio is about 10 (%.2f)", f / l);
    sf_stats_window_quantile_ms(s, a, SF_STATS_LEGACY, 109, 5, 0.5, &n);
    is((long long)n, 500, "a 5 s window holds 5 s of requests");
    ok(isnan(sf_stats_window_quantile_ms(s, a, SF_STATS_LEGACY, 109 + 400, 60, 0.5, &n)),
       "seconds past the ring are gone");
    sf_stats_window w;
    sf_stats_window_sum(s, a, 109, 10, &w);
    ok(w.requests[SF_STATS_FUNCTION] == 1000 && w.errors[SF_STATS_FUNCTION] == 1 &&
           w.requests[SF_STATS_LEGACY] == 1000,
       "window sums of requests and errors");
    sf_stats_window_sum(s, a, 109, 1, &w);
    is((long long)w.requests[SF_STATS_LEGACY], 100, "a 1 s window");
    sf_stats *m = sf_stats_create();
    sf_stats_merge(m, s);
    sf_stats_window_quantile_ms(m, sf_stats_find(m, "a"), SF_STATS_LEGACY, 109, 60, 0.5, &n);
    is((long long)n, 1000, "window latency survives a merge");
    sf_stats_destroy(m);
    sf_stats_destroy(s);
}

/* A worker thread records while the primary's merges its shared shard again and again: no
 * request lost or counted twice, slots created meanwhile included. */
typedef struct {
    sf_stats *shard;
    int n;
} recorder_arg;

static void *recorder(void *p)
{
    recorder_arg *a = p;
    char name[16];
    for (int i = 0; i < a->n; i++) {
        snprintf(name, sizeof(name), "r%d", i % 37);
        sf_stats_sample x = sample(i % 2, 200, 1000 + (uint64_t)(i % 500), 100);
        sf_stats_record(a->shard, sf_stats_slot(a->shard, name), &x);
        sf_stats_record_shadow_reason(a->shard, sf_stats_slot(a->shard, name),
                                      SF_STATS_SKIP_CAPACITY, 100);
    }
    return NULL;
}

static uint64_t total_requests(sf_stats *s)
{
    uint64_t n = 0;
    for (int i = 0; i < sf_stats_count(s); i++) {
        sf_stats_snapshot sn;
        sf_stats_snapshot_slot(s, i, 100, &sn);
        n += sn.backend[0].requests + sn.backend[1].requests;
    }
    return n;
}

static void test_shared_merge(void)
{
    sf_stats *shard = sf_stats_create();
    ok(sf_stats_share(shard) == 0, "a shard can be shared");
    recorder_arg a = {shard, 200000};
    pthread_t th;
    pthread_create(&th, NULL, recorder, &a);
    uint64_t last = 0;
    int monotonic = 1, merges = 0;
    for (;; merges++) {
        sf_stats *view = sf_stats_create();
        sf_stats_merge(view, shard);
        uint64_t n = total_requests(view);
        sf_stats_destroy(view);
        monotonic &= n >= last;
        last = n;
        if (n == (uint64_t)a.n)
            break;
    }
    pthread_join(th, NULL);
    ok(monotonic, "merges taken while another thread records only ever see more requests");
    sf_stats *view = sf_stats_create();
    sf_stats_merge(view, shard);
    is((long long)total_requests(view), a.n, "the last merge holds every request");
    is(sf_stats_count(view), 37, "... in every slot created meanwhile");
    diag("%d merges during 200000 records", merges);
    sf_stats_destroy(view);
    sf_stats_destroy(shard);
}

static void test_merge(void)
{
    sf_stats *shard[2] = {sf_stats_create(), sf_stats_create()};
    sf_stats *all = sf_stats_create();
    static const char *const names[] = {"_default", "orders", "catalog", "users"};
    /* Slots created in different orders in each shard. */
    sf_stats_slot(shard[1], "users");
    sf_stats_slot(shard[1], "catalog");
    uint64_t now[2] = {1000, 1000};
    for (int i = 0; i < 50000; i++) {
        int w = (int)(rnd() % 2);
        now[w] += rnd() % 500 == 0 ? rnd() % 10 : 0;
        if (i == 30000)
            now[0] += 280; /* one shard moves far ahead of the other */
        const char *name = names[rnd() % (w == 0 ? 3 : 4)];
        sf_stats_sample x = sample((int)(rnd() % 2), 100 * (int)(rnd() % 6), draw(BIMODAL), now[w]);
        x.upstream_error = (uint8_t)(rnd() % 8 < 5 ? 0 : rnd() % 5);
        x.bytes_in = rnd() % 1000;
        x.bytes_out = rnd() % 100000;
        x.fallback = rnd() % 10 == 0;
        sf_stats_record(shard[w], sf_stats_slot(shard[w], name), &x);
        sf_stats_record(all, sf_stats_slot(all, name), &x);
        if (rnd() % 5 == 0) {
            sf_stats_shadow_result res = (sf_stats_shadow_result)(rnd() % 5);
            sf_stats_record_shadow(shard[w], sf_stats_slot(shard[w], name), res, 1);
            sf_stats_record_shadow(all, sf_stats_slot(all, name), res, 1);
        }
    }
    sf_stats *merged = sf_stats_create();
    ok(sf_stats_merge(merged, shard[0]) == 0 && sf_stats_merge(merged, shard[1]) == 0,
       "merging two shards succeeds");
    uint64_t end = now[0] > now[1] ? now[0] : now[1];
    ok(snapshots_equal(merged, all, end), "merge of two shards equals recording all in one");
    ok(snapshots_equal(merged, all, end - 100), "... also read at an earlier second");
    ok(fabs(sf_stats_legacy_share(merged, end, 60) - sf_stats_legacy_share(all, end, 60)) < 1e-12,
       "... and the legacy share");

    sf_stats *again = sf_stats_create();
    sf_stats_merge(again, shard[1]);
    sf_stats_merge(again, shard[0]);
    ok(snapshots_equal(again, all, end), "merging in the other order gives the same");
    for (int i = 0; i < 2; i++)
        sf_stats_destroy(shard[i]);
    sf_stats_destroy(all);
    sf_stats_destroy(merged);
    sf_stats_destroy(again);
}

static void test_prometheus_buckets(void)
{
    static const uint64_t le_us[SF_STATS_LE_N - 1] = {
        500,    1000,   2500,   5000,    10000,   25000,   50000,
        100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000,
    };
    sf_stats *s = sf_stats_create();
    int r = sf_stats_slot(s, "r");
    uint64_t want[SF_STATS_LE_N] = {0};
    uint64_t sum = 0;
    enum { N = 100000 };
    for (int i = 0; i < N; i++) {
        uint64_t v;
        if (i < 2 * (SF_STATS_LE_N - 1) * 3) /* each bound, and either side of it */
            v = le_us[i / 6 % (SF_STATS_LE_N - 1)] + (uint64_t)(i % 3) - 1;
        else
            v = (uint64_t)exp(unit() * log(3e7));
        sum += v;
        for (int k = 0; k < SF_STATS_LE_N; k++)
            want[k] += k == SF_STATS_LE_N - 1 || v <= le_us[k];
        sf_stats_sample x = sample(SF_STATS_FUNCTION, 200, v, 1);
        sf_stats_record(s, r, &x);
    }
    sf_stats_snapshot snap;
    sf_stats_snapshot_slot(s, r, 1, &snap);
    const sf_stats_backend_snapshot *f = &snap.backend[SF_STATS_FUNCTION];
    int monotone = 1, exact = 1;
    for (int k = 0; k < SF_STATS_LE_N; k++) {
        if (k > 0 && f->le_cumulative[k] < f->le_cumulative[k - 1])
            monotone = 0;
        if (f->le_cumulative[k] != want[k]) {
            if (exact)
                diag("le %g: %llu, want %llu", sf_stats_le_seconds[k],
                     (unsigned long long)f->le_cumulative[k], (unsigned long long)want[k]);
            exact = 0;
        }
    }
    ok(monotone, "Prometheus buckets are cumulative");
    ok(exact, "each bucket counts the values <= its bound, bounds included");
    is((long long)f->le_cumulative[SF_STATS_LE_N - 1], N, "the +Inf bucket equals the count");
    ok(isinf(sf_stats_le_seconds[SF_STATS_LE_N - 1]) && sf_stats_le_seconds[0] == 0.0005,
       "bounds in seconds, ending with +Inf");
    ok(fabs(f->sum_seconds - (double)sum / 1e6) < 1e-6 * f->sum_seconds, "sum in seconds");
    sf_stats_destroy(s);
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void bench_record(void)
{
    enum { SAMPLES = 4096, CALLS = 4000000 };
    static sf_stats_sample xs[SAMPLES];
    sf_stats *s = sf_stats_create();
    int slots[16];
    char name[16];
    for (int i = 0; i < 16; i++) {
        snprintf(name, sizeof(name), "r%d", i);
        slots[i] = sf_stats_slot(s, name);
    }
    for (int i = 0; i < SAMPLES; i++) {
        xs[i] = sample((int)(rnd() % 2), rnd() % 50 ? 200 : 503, draw(BIMODAL), 0);
        xs[i].bytes_out = rnd() % 10000;
    }
    double t0 = now_ns();
    for (int i = 0; i < CALLS; i++) {
        sf_stats_sample *x = &xs[i % SAMPLES];
        x->now_sec = 1000 + (uint64_t)(i >> 16); /* about 60 seconds */
        sf_stats_record(s, slots[i & 15], x);
    }
    double ns = (now_ns() - t0) / CALLS;
    /* a figure for the reader, never a pass/fail: timings are not tests */
    diag("sf_stats_record: %.1f ns per call over %d calls (16 slots, random durations)", ns, CALLS);
    sf_stats_snapshot snap;
    sf_stats_snapshot_slot(s, slots[0], 1000 + (CALLS >> 16), &snap);
    is((long long)(snap.backend[0].requests + snap.backend[1].requests), CALLS / 16,
       "every benchmark call counted");
    sf_stats_destroy(s);
}

int main(void)
{
    test_counts_and_classes();
    test_errors_and_kinds();
    test_slots_by_name();
    test_quantile_error();
    test_constant_values();
    test_ring_cases();
    test_ring_random();
    test_legacy_share();
    test_series();
    test_window_latency();
    test_merge();
    test_shared_merge();
    test_prometheus_buckets();
    bench_record();
    return done_testing();
}
