/* Guards: the checks read the stats shard's per-second ring over the guard's window; a breach
 * is acted on once, then the guard rests for a window (a dry run would otherwise log every
 * second, and a rollback that failed is retried a window later). */
#include "guard.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edit.h"
#include "log.h"

struct sf_guards {
    uint64_t *breaches;   /* [slot * SF_GUARD_CHECKS + check] */
    uint64_t *rest_until; /* [slot]: no action before this second */
    size_t nslots;
};

const char *sf_guard_check_name(int check)
{
    static const char *const names[] = {"error_ratio", "mismatch_ratio", "p99_ratio"};
    return check >= 0 && check < SF_GUARD_CHECKS ? names[check] : "?";
}

sf_guards *sf_guards_create(void)
{
    return calloc(1, sizeof(sf_guards));
}

void sf_guards_destroy(sf_guards *g)
{
    if (g == NULL)
        return;
    free(g->breaches);
    free(g->rest_until);
    free(g);
}

static int cover(sf_guards *g, int slot)
{
    if ((size_t)slot < g->nslots)
        return 0;
    size_t n = (size_t)slot + 16;
    uint64_t *b = realloc(g->breaches, n * SF_GUARD_CHECKS * sizeof(*b));
    if (b == NULL)
        return -1;
    g->breaches = b;
    uint64_t *r = realloc(g->rest_until, n * sizeof(*r));
    if (r == NULL)
        return -1;
    g->rest_until = r;
    memset(b + g->nslots * SF_GUARD_CHECKS, 0, (n - g->nslots) * SF_GUARD_CHECKS * sizeof(*b));
    memset(r + g->nslots, 0, (n - g->nslots) * sizeof(*r));
    g->nslots = n;
    return 0;
}

uint64_t sf_guards_breaches(const sf_guards *g, int slot, int check)
{
    if (g == NULL || slot < 0 || (size_t)slot >= g->nslots || check < 0 || check >= SF_GUARD_CHECKS)
        return 0;
    return g->breaches[(size_t)slot * SF_GUARD_CHECKS + (size_t)check];
}

/* The first breached check of route r, with the evidence ("error ratio 0.31 > 0.05 over 60s,
 * n=120"); -1 when none is breached or there is not enough traffic to judge. */
static int breached(const sf_stats *st, const sf_route *r, int slot, uint64_t now, char *why,
                    size_t len)
{
    const sf_guard_conf *g = &r->guard;
    unsigned w = (unsigned)(g->window_ms / 1000);
    sf_stats_window sum;
    sf_stats_window_sum(st, slot, now, w, &sum);
    uint64_t n = sum.requests[SF_STATS_FUNCTION];
    if (g->max_error_ratio >= 0 && n >= g->min_requests && n > 0) {
        double ratio = (double)sum.errors[SF_STATS_FUNCTION] / (double)n;
        if (ratio > g->max_error_ratio) {
            snprintf(why, len, "error ratio %.3g > %.3g over %us, n=%llu", ratio,
                     g->max_error_ratio, w, (unsigned long long)n);
            return SF_GUARD_ERROR_RATIO;
        }
    }
    if (g->max_mismatch_ratio >= 0 && sum.compared >= g->min_requests && sum.compared > 0) {
        double ratio = (double)sum.mismatched / (double)sum.compared;
        if (ratio > g->max_mismatch_ratio) {
            snprintf(why, len, "mismatch ratio %.3g > %.3g over %us, n=%llu", ratio,
                     g->max_mismatch_ratio, w, (unsigned long long)sum.compared);
            return SF_GUARD_MISMATCH_RATIO;
        }
    }
    if (g->max_p99_ratio > 0 && n >= g->min_requests && n > 0) {
        uint64_t nf, nl;
        double pf = sf_stats_window_quantile_ms(st, slot, SF_STATS_FUNCTION, now, w, 0.99, &nf);
        double pl = sf_stats_window_quantile_ms(st, slot, SF_STATS_LEGACY, now, w, 0.99, &nl);
        /* legacy needs as much traffic of its own in the window to be the yardstick */
        if (!isnan(pf) && !isnan(pl) && pl > 0 && nl >= g->min_requests &&
            pf / pl > g->max_p99_ratio) {
            snprintf(why, len,
                     "p99 ratio %.3g > %.3g over %us (function %.1f ms, legacy %.1f ms), n=%llu",
                     pf / pl, g->max_p99_ratio, w, pf, pl, (unsigned long long)nf);
            return SF_GUARD_P99_RATIO;
        }
    }
    return -1;
}

static void act(sf_server *s, const sf_route *r, int check, const char *why)
{
    if (r->guard.dry_run) {
        sf_warn("guard (dry run): route %s would be rolled back: %s", r->name, why);
        return;
    }
    sf_edit_result res;
    char err[512];
    int applied;
    if (sf_server_set_cutover(s, r->name, 0, "guard", why, "guard", "guard", &res, &applied, err,
                              sizeof(err)) < 0) {
        sf_error("guard: route %s breached (%s) but the rollback failed: %s", r->name, why, err);
        return;
    }
    if (!res.changed) {
        /* the file says 0 already (an earlier rollback whose reload failed): apply it */
        applied = sf_server_reload(s, "guard") >= 0;
        sf_warn("guard: route %s breached (%s); the routes file already says 0%%: %s", r->name, why,
                applied ? "reloaded" : "the reload failed, the running table stays");
        return;
    }
    sf_warn("guard: route %s rolled back to 0%% (%s check): %s%s", r->name,
            sf_guard_check_name(check), why,
            applied ? "" : "; saved to the routes file, but the reload failed");
}

void sf_guard_tick(sf_server *s, uint64_t now)
{
    sf_guards *g = s->guards;
    /* a rollback reloads: keep the table walked alive until the walk ends */
    sf_runtime *rt = sf_runtime_ref(s->rt);
    const sf_stats *st = NULL; /* all workers' numbers, merged once a route needs them */
    size_t nr;
    const sf_route *routes = sf_table_routes(rt->table, &nr);
    for (size_t i = 0; i < nr; i++) {
        const sf_route *r = &routes[i];
        int slot = rt->route_slot[i];
        if (!r->guard.enabled || r->cutover_bp == 0 || cover(g, slot) < 0 ||
            now < g->rest_until[slot])
            continue;
        char why[256];
        if (st == NULL)
            st = sf_server_stats_view(s);
        int check = breached(st, r, slot, now, why, sizeof(why));
        if (check < 0)
            continue;
        g->breaches[(size_t)slot * SF_GUARD_CHECKS + (size_t)check]++;
        g->rest_until[slot] = now + r->guard.window_ms / 1000;
        act(s, r, check, why);
        if (s->rt != rt)
            break; /* the table changed: the next tick walks the new one */
    }
    sf_runtime_unref(rt);
}
