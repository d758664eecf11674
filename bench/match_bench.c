/* Micro-benchmark of the request path's routing step: normalize + match + decide over a
 * generated routes.yaml of 200 routes (150 path prefixes, 50 regexes), loaded with
 * sf_table_load. Prints the median ns per request for requests that match early, in the
 * middle, late and not at all, and for the mix: with the plain scan (sf_routes_match, every
 * route tried in order) and with the index (sf_match_index_lookup). `make bench-match`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "match.h"

#define NROUTES   200
#define ROUNDS    9
#define BUDGET_NS 2000000000.0 /* the whole timed part */
#define BATCH     64

static const char *const resources[] = {"orders", "items",    "users",
                                        "carts",  "payments", "invoices"};

/* Route i: every fourth a regex (of three shapes), the others prefixes /api/v1/svcNN/RESOURCE;
 * a few prefixes with methods or a header condition, a few sticky. */
static void route_yaml(FILE *f, int i)
{
    int k = i / 4;
    fprintf(f, "  - name: r%03d\n    match:\n", i);
    if (i % 4 == 3) {
        switch (k % 3) {
        case 0:
            fprintf(f, "      regex: '^/api/v2/items%02d/[0-9]+/parts$'\n", k);
            break;
        case 1:
            fprintf(f, "      regex: '^/api/v2/svc%02d/[a-z]+/[0-9]+$'\n", k);
            break;
        default:
            fprintf(f, "      regex: '^/api/v3/(users|accounts)%02d/[0-9a-f-]{36}/settings$'\n", k);
            break;
        }
    } else {
        fprintf(f, "      path: /api/v1/svc%02d/%s\n", k, resources[i % 4 + 3 * (k % 2)]);
        if (i % 16 == 1)
            fprintf(f, "      methods: [GET, HEAD]\n");
        if (i % 16 == 2)
            fprintf(f, "      headers: { x-tenant: '^beta-' }\n");
    }
    fprintf(f, "    function: fn\n    cutover: %d\n", 10 + i % 80);
    if (i % 3 == 0)
        fprintf(f, "    sticky: header:x-user-id\n");
}

static int write_routes(char *path)
{
    int fd = mkstemps(path, 5);
    if (fd < 0)
        return -1;
    FILE *f = fdopen(fd, "w");
    if (f == NULL) {
        close(fd);
        return -1;
    }
    fprintf(f, "legacy: http://127.0.0.1:8081\nfunctions:\n  fn: http://127.0.0.1:8082\n"
               "routes:\n");
    for (int i = 0; i < NROUTES; i++)
        route_yaml(f, i);
    return fclose(f);
}

/* A request as it arrives: raw path (normalized on every iteration), method, the route it must
 * match ("-" for none). */
typedef struct {
    const char *method, *path, *want;
} bench_req;

enum { EARLY, MIDDLE, LATE, UNMATCHED, NCLASSES };
static const char *const class_names[NCLASSES] = {"early", "middle", "late", "unmatched"};

static const bench_req reqs[NCLASSES][4] = {
    [EARLY] = {{"GET", "/api/v1/svc00/orders/123", "r000"},
               {"GET", "/api/v1/svc00/items", "r001"},
               {"GET", "/api/v2/items00/42/parts", "r003"},
               {"POST", "/api/v1/svc01/./carts/%37", "r004"}},
    [MIDDLE] = {{"GET", "/api/v1/svc25/carts/9/lines", "r100"},
                {"GET", "/api/v1/svc25/payments", "r101"},
                {"DELETE", "/api/v1/svc25/invoices/1", "r102"},
                {"GET", "/api/v2/svc25/abc/77", "r103"}},
    [LATE] = {{"GET", "/api/v1/svc49/carts/1", "r196"},
              {"HEAD", "/api/v1/svc49/payments/x/../y", "r197"},
              {"GET", "/api/v1/svc49/invoices", "r198"},
              {"PUT", "/api/v2/svc49/thing/12345", "r199"}},
    [UNMATCHED] = {{"GET", "/static/js/app.0f3c7a.js", "-"},
                   {"GET", "/", "-"},
                   {"POST", "/api/v1/svc99/orders/1", "-"},
                   {"GET", "/api/v2/items00/abc/parts", "-"}},
};

/* The other headers of a typical browser or API request. */
static const sf_kv headers[] = {
    {{"Host", 4}, {"shop.example.com", 16}},
    {{"User-Agent", 10}, {"Mozilla/5.0 (X11; Linux x86_64) Firefox/126.0", 46}},
    {{"Accept", 6}, {"application/json", 16}},
    {{"Accept-Encoding", 15}, {"gzip, br", 8}},
    {{"Accept-Language", 15}, {"en-US,en;q=0.5", 14}},
    {{"Cookie", 6}, {"sid=8f14e45fceea167a; theme=dark", 33}},
    {{"X-User-Id", 9}, {"user-1234567", 12}},
    {{"X-Request-Id", 12}, {"9f2c1d7e4b", 10}},
};

typedef struct {
    const sf_route *routes;
    size_t n;
    const sf_match_index *ix; /* NULL: the plain scan */
    pcre2_match_data *md;
    uint64_t rng;
    char pathbuf[256];
    uint64_t sink;
} bench_ctx;

static uint64_t next_random(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* The routing step of one request, as the proxy runs it. Returns the route or NULL. */
static const sf_route *route_one(bench_ctx *c, const bench_req *q)
{
    ssize_t n = sf_path_normalize(q->path, strlen(q->path), c->pathbuf);
    if (n < 0)
        return NULL;
    sf_match_input in = {{q->method, strlen(q->method)},
                         {c->pathbuf, (size_t)n},
                         headers,
                         sizeof(headers) / sizeof(headers[0]),
                         {"10.1.2.3", 8}};
    const sf_route *r = c->ix != NULL ? sf_match_index_lookup(c->ix, &in, c->md)
                                      : sf_routes_match(c->routes, c->n, &in, c->md);
    if (r != NULL)
        c->sink += (uint64_t)sf_route_decide(r, &in, next_random(&c->rng)) + r->index;
    return r;
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Runs the requests of q (nq of them, round robin) for about budget ns; returns ns/request. */
static double run(bench_ctx *c, const bench_req *const *q, size_t nq, double budget)
{
    double start = now_ns(), end;
    uint64_t done = 0;
    do {
        for (int b = 0; b < BATCH; b++)
            route_one(c, q[(done + (uint64_t)b) % nq]);
        done += BATCH;
        end = now_ns();
    } while (end - start < budget);
    return (end - start) / (double)done;
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

int main(void)
{
    char path[] = "/tmp/sf-match-bench-XXXXXX.yaml";
    sf_diags d;
    sf_route_table *t = NULL;
    pcre2_match_data *md = NULL;
    sf_match_index *ix = NULL;
    int rc = 1;

    sf_diags_init(&d);
    if (write_routes(path) < 0) {
        perror("match_bench: writing routes.yaml");
        goto out;
    }
    t = sf_table_load(path, &d);
    unlink(path);
    if (t == NULL) {
        fprintf(stderr, "match_bench: the generated routes.yaml does not load:\n");
        sf_diags_print(&d, stderr);
        goto out;
    }
    size_t n = 0, nregex = 0;
    const sf_route *routes = sf_table_routes(t, &n);
    for (size_t i = 0; i < n; i++)
        nregex += routes[i].regex != NULL;

    md = sf_match_data_create();
    ix = sf_match_index_create(routes, n);
    if (md == NULL || ix == NULL) {
        fprintf(stderr, "match_bench: out of memory\n");
        goto out;
    }
    bench_ctx c = {routes, n, NULL, md, 1, {0}, 0};
    static const char *const modes[] = {"scan", "index"};
    double per[2][NCLASSES + 1][ROUNDS];
    double budget = BUDGET_NS / ROUNDS / (NCLASSES + 1) / 2;
    const bench_req *all[NCLASSES * 4];
    size_t nall = 0;
    for (int k = 0; k < NCLASSES; k++)
        for (int j = 0; j < 4; j++)
            all[nall++] = &reqs[k][j];
    for (int m = 0; m < 2; m++) {
        c.ix = m ? ix : NULL;
        for (size_t i = 0; i < nall; i++) {
            const sf_route *r = route_one(&c, all[i]);
            const char *got = r != NULL ? r->name : "-";
            if (strcmp(got, all[i]->want) != 0) {
                fprintf(stderr, "match_bench: %s: %s %s matched %s, want %s\n", modes[m],
                        all[i]->method, all[i]->path, got, all[i]->want);
                goto out;
            }
        }
    }
    /* the two modes take turns, so that a noisy neighbour hits both alike */
    for (int round = 0; round < ROUNDS; round++)
        for (int m = 0; m < 2; m++) {
            c.ix = m ? ix : NULL;
            for (int k = 0; k < NCLASSES; k++)
                per[m][k][round] = run(&c, all + 4 * k, 4, budget);
            per[m][NCLASSES][round] = run(&c, all, nall, budget);
        }
    for (int m = 0; m < 2; m++) {
        printf("match (%s): %zu routes (%zu prefix, %zu regex): median %.0f ns/request (", modes[m],
               n, n - nregex, nregex, median(per[m][NCLASSES], ROUNDS));
        for (int k = 0; k < NCLASSES; k++)
            printf("%s%s %.0f", k ? ", " : "", class_names[k], median(per[m][k], ROUNDS));
        printf(")\n");
    }
    rc = c.sink == 0; /* keeps the work from being optimized away */
out:
    sf_match_index_destroy(ix);
    pcre2_match_data_free(md);
    sf_table_unref(t);
    sf_diags_dispose(&d);
    return rc;
}
