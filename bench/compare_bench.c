/* Micro-benchmark of the shadow comparison engine (proxy/compare.c): ns per sf_compare of two
 * JSON product listings of about 200 B, 2 KB, 20 KB and 200 KB that are identical (the byte
 * fast path), equal with the keys in another order (the quick check, then with jansson alone),
 * one price apart, apart only on a learned noise field; one noise-learning round; and jansson's
 * parse alone, for scale. Prints the median over a few rounds. Not run by CI.
 * compare_bench A B [N]: the bodies in files A and B instead (e.g. bench/data/order.json and
 * bench/data/order-reordered.json): ns per quick check and per sf_compare_bodies; with N, just N
 * calls of each (for callgrind). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "compare.h"

#define ROUNDS    5
#define BUDGET_NS 150000000.0 /* per measurement and round */

static const int sizes[] = {1, 10, 100, 1000}; /* products per listing */

/* A listing of n products. diff: product n/2 costs one more; order: keys in another order;
 * rid: the request id at the top. */
static char *listing(int n, int diff, int order, const char *rid, size_t *len)
{
    size_t cap = (size_t)n * 160 + 128, at = 0;
    char *b = malloc(cap);
    if (b == NULL)
        return NULL;
    at +=
        (size_t)snprintf(b + at, cap - at, "{\"request_id\":\"%s\",\"page\":1,\"products\":[", rid);
    for (int i = 0; i < n; i++) {
        double price = 10.5 + i + (diff && i == n / 2 ? 1 : 0);
        if (order)
            at += (size_t)snprintf(b + at, cap - at,
                                   "%s{\"tags\":[\"a\",\"b\"],\"price\":%.2f,\"name\":\"Product "
                                   "number %d\",\"stock\":%d,\"id\":%d,\"sku\":\"SKU-%05d\"}",
                                   i ? "," : "", price, i, 100 - i, 1000 + i, i);
        else
            at += (size_t)snprintf(b + at, cap - at,
                                   "%s{\"id\":%d,\"sku\":\"SKU-%05d\",\"name\":\"Product number "
                                   "%d\",\"price\":%.2f,\"stock\":%d,\"tags\":[\"a\",\"b\"]}",
                                   i ? "," : "", 1000 + i, i, i, price, 100 - i);
    }
    at += (size_t)snprintf(b + at, cap - at, "]}");
    *len = at;
    return b;
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, size_t n)
{
    qsort(v, n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

typedef struct {
    const char *a, *b;
    size_t la, lb;
    const sf_noise *noise;
    unsigned flags;
    sf_cmp_result want;
    int bad;
} job;

static double run_compare(job *j)
{
    static const sf_shadow_conf conf = {
        .enabled = 1, .compare_status = 1, .body_mode = SF_BODY_AUTO};
    double start = now_ns(), end;
    long done = 0;
    do {
        sf_cmp_outcome o;
        if (sf_compare_bodies(&conf, j->noise, j->a, j->la, j->b, j->lb, j->flags, &o) != 0 ||
            o.result != j->want)
            j->bad = 1;
        sf_cmp_outcome_dispose(&o);
        done++;
        end = now_ns();
    } while (end - start < BUDGET_NS);
    return (end - start) / (double)done;
}

static double run_learn(const char *a, size_t la, const char *b, size_t lb)
{
    static const sf_http_header json_type = {{"Content-Type", 12}, {"application/json", 16}};
    sf_cmp_side x = {200, &json_type, 1, a, la, la, 0, NULL};
    sf_cmp_side y = {200, &json_type, 1, b, lb, lb, 0, NULL};
    sf_noise *n = sf_noise_create();
    double start = now_ns(), end;
    long done = 0;
    do {
        sf_noise_learn(n, &x, &y);
        done++;
        end = now_ns();
    } while (end - start < BUDGET_NS);
    sf_noise_destroy(n);
    return (end - start) / (double)done;
}

static double run_parse(const char *a, size_t la)
{
    double start = now_ns(), end;
    long done = 0;
    do {
        json_error_t e;
        json_decref(json_loadb(a, la, JSON_DECODE_ANY, &e));
        done++;
        end = now_ns();
    } while (end - start < BUDGET_NS);
    return (end - start) / (double)done;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *b = NULL;
    long n;
    if (f != NULL && fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 &&
        fseek(f, 0, SEEK_SET) == 0 && (b = malloc((size_t)n + 1)) != NULL &&
        fread(b, 1, (size_t)n, f) == (size_t)n) {
        *len = (size_t)n;
    } else {
        free(b);
        b = NULL;
    }
    if (f != NULL)
        fclose(f);
    return b;
}

static int run_pair(const char *pa, const char *pb, long calls)
{
    static const sf_shadow_conf conf = {
        .enabled = 1, .compare_status = 1, .body_mode = SF_BODY_AUTO};
    size_t la, lb;
    char *a = slurp(pa, &la), *b = slurp(pb, &lb);
    int rc = 0;
    if (a == NULL || b == NULL) {
        fprintf(stderr, "compare_bench: cannot read %s or %s\n", pa, pb);
        free(a);
        free(b);
        return 1;
    }
    int eq = sf_cmp_json_equal(&conf, a, la, b, lb);
    printf("%s (%zu bytes) vs %s (%zu bytes): quick check says %s\n", pa, la, pb, lb,
           eq ? "equal" : "not sure");
    for (int which = 0; which < 2; which++) {
        double per[ROUNDS];
        for (int round = 0; round < (calls > 0 ? 1 : ROUNDS); round++) {
            double start = now_ns(), end;
            long done = 0;
            do {
                if (which == 0) {
                    if (sf_cmp_json_equal(&conf, a, la, b, lb) != eq)
                        rc = 1;
                } else {
                    sf_cmp_outcome o;
                    if (sf_compare_bodies(&conf, NULL, a, la, b, lb, 0, &o) != 0)
                        rc = 1;
                    sf_cmp_outcome_dispose(&o);
                }
                done++;
                end = now_ns();
            } while (calls > 0 ? done < calls : end - start < BUDGET_NS);
            per[round] = (end - start) / (double)done;
        }
        printf("%-20s %8.0f ns per call\n", which == 0 ? "quick check" : "sf_compare_bodies",
               calls > 0 ? per[0] : median(per, ROUNDS));
    }
    free(a);
    free(b);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc >= 3)
        return run_pair(argv[1], argv[2], argc > 3 ? atol(argv[3]) : 0);
    enum { IDENT, REORDER, REORDER_J, DIFF, NOISE, NJOBS, LEARN = NJOBS, PARSE, NCOLS };
    static const char *const cols[] = {"identical",  "reordered", "(jansson only)", "one diff",
                                       "noise only", "learn",     "jansson parse"};
    int rc = 0;
    printf("sf_compare, body auto with JSON types, median of %d rounds, ns per call\n", ROUNDS);
    printf("%10s", "bytes");
    for (int c = 0; c < NCOLS; c++)
        printf(" %14s", cols[c]);
    printf("\n");
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        size_t la, lr, ld, ln, ll;
        char *a = listing(sizes[s], 0, 0, "r-1", &la), *r = listing(sizes[s], 0, 1, "r-1", &lr);
        char *d = listing(sizes[s], 1, 0, "r-1", &ld), *n = listing(sizes[s], 0, 0, "r-2", &ln);
        char *l = listing(sizes[s], 0, 0, "r-3", &ll);
        sf_noise *noise = sf_noise_create();
        if (a == NULL || r == NULL || d == NULL || n == NULL || l == NULL || noise == NULL) {
            fprintf(stderr, "compare_bench: out of memory\n");
            return 1;
        }
        static const sf_http_header json_type = {{"Content-Type", 12}, {"application/json", 16}};
        sf_cmp_side x = {200, &json_type, 1, a, la, la, 0, NULL};
        sf_cmp_side y = {200, &json_type, 1, l, ll, ll, 0, NULL};
        sf_noise_learn(noise, &x, &y); /* /request_id is noise from here on */
        job jobs[NJOBS] = {{a, a, la, la, NULL, 0, SF_CMP_MATCH, 0},
                           {a, r, la, lr, NULL, 0, SF_CMP_MATCH, 0},
                           {a, r, la, lr, NULL, SF_CMP_F_JANSSON_ONLY, SF_CMP_MATCH, 0},
                           {a, d, la, ld, NULL, 0, SF_CMP_MISMATCH, 0},
                           {a, n, la, ln, noise, 0, SF_CMP_NOISE, 0}};
        double per[NCOLS][ROUNDS];
        for (int round = 0; round < ROUNDS; round++) {
            for (int c = 0; c < NJOBS; c++)
                per[c][round] = run_compare(&jobs[c]);
            per[LEARN][round] = run_learn(a, la, n, ln);
            per[PARSE][round] = run_parse(a, la);
        }
        printf("%10zu", la);
        for (int c = 0; c < NCOLS; c++)
            printf(" %14.0f", median(per[c], ROUNDS));
        printf("\n");
        for (int c = 0; c < NJOBS; c++)
            if (jobs[c].bad) {
                fprintf(stderr, "compare_bench: %s at %zu bytes gave the wrong outcome\n", cols[c],
                        la);
                rc = 1;
            }
        sf_noise_destroy(noise);
        free(a);
        free(r);
        free(d);
        free(n);
        free(l);
    }
    return rc;
}
