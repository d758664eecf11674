/* GET /stats and GET /metrics, on the primary's loop: from its own stats shard with one worker,
 * else from a merge of every worker's (sf_server_stats_view). */
#include "report.h"

#include <event2/buffer.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "admin.h"
#include "audit.h"
#include "guard.h"
#include "log.h"

/* ---- the audit log's view ---- */

/* "2026-11-24T08:30:00.123Z" as seconds since the epoch; -1 when it is not that form. */
static double parse_ts(const char *ts)
{
    struct tm tm = {0};
    int ms = 0;
    if (ts == NULL || sscanf(ts, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon,
                             &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) != 7)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (double)timegm(&tm) + ms / 1000.0;
}

void sf_report_audit_refresh(sf_server *s)
{
    struct stat st;
    int exists = stat(s->cfg->audit_log, &st) == 0;
    if (!exists)
        memset(&st, 0, sizeof(st));
    if (s->audit.read && st.st_ino == s->audit.ino && st.st_size == s->audit.size &&
        st.st_mtim.tv_sec == s->audit.mtime.tv_sec && st.st_mtim.tv_nsec == s->audit.mtime.tv_nsec)
        return;
    char err[256];
    size_t malformed = 0;
    json_t *all = sf_audit_read(s->cfg->audit_log, NULL, 0, &malformed, err, sizeof(err));
    s->audit.ino = st.st_ino; /* a failure is reported once, not on every poll */
    s->audit.size = st.st_size;
    s->audit.mtime = st.st_mtim;
    s->audit.read = 1;
    if (all == NULL) {
        sf_warn("audit log: %s (route states and rollback counts not updated)", err);
        return;
    }
    json_t *last = json_object(), *rollbacks = json_object();
    size_t i;
    json_t *e;
    json_array_foreach(all, i, e)
    {
        const char *route = json_string_value(json_object_get(e, "route"));
        const char *action = json_string_value(json_object_get(e, "action"));
        if (route == NULL || action == NULL)
            continue;
        json_object_set_new(last, route, json_string(action));
        const char *trigger = strcmp(action, "rollback") == 0 ? "manual"
                              : strcmp(action, "guard") == 0  ? "guard"
                                                              : NULL;
        /* counters since this process started, as Prometheus expects */
        if (trigger == NULL ||
            parse_ts(json_string_value(json_object_get(e, "ts"))) < s->started_wall - 1)
            continue;
        json_t *r = json_object_get(rollbacks, route);
        if (r == NULL) {
            r = json_pack("{s:i,s:i}", "manual", 0, "guard", 0);
            json_object_set_new(rollbacks, route, r);
        }
        json_object_set_new(r, trigger,
                            json_integer(json_integer_value(json_object_get(r, trigger)) + 1));
    }
    json_decref(all);
    json_decref(s->audit.last_actions);
    json_decref(s->audit.rollbacks);
    s->audit.last_actions = last;
    s->audit.rollbacks = rollbacks;
}

/* ---- which slots, in which order ---- */

/* A slot with what the live table says about its route (route NULL: _default or removed). */
typedef struct {
    int slot;
    const sf_route *route;
} row;

/* The table's routes in file order, _default, then slots whose route left the table. Returns
 * the count, rows malloc'd in *out (NULL when out of memory). */
static int rows_of(const sf_server *s, const sf_stats *st, row **out)
{
    int n = sf_stats_count(st);
    size_t nr;
    const sf_route *routes = sf_table_routes(s->rt->table, &nr);
    row *v = calloc((size_t)n + 1, sizeof(*v));
    char *seen = calloc((size_t)n + 1, 1);
    *out = v;
    if (v == NULL || seen == NULL) {
        free(v);
        free(seen);
        *out = NULL;
        return 0;
    }
    int k = 0;
    for (size_t i = 0; i < nr; i++) {
        int sl = s->rt->route_slot[i];
        v[k++] = (row){sl, &routes[i]};
        seen[sl] = 1;
    }
    v[k++] = (row){s->default_slot, NULL};
    seen[s->default_slot] = 1;
    for (int sl = 0; sl < n; sl++)
        if (!seen[sl])
            v[k++] = (row){sl, NULL};
    free(seen);
    return k;
}

/* ---- GET /stats ---- */

/* Seconds of a rate's window that the proxy has been up for: the current second counts. */
static double window(const sf_server *s, uint64_t now, unsigned sec)
{
    uint64_t up = now - s->started_mono + 1;
    return (double)(up < sec ? up : sec);
}

static json_t *num_or_null(double v)
{
    return isnan(v) ? json_null() : json_real(v);
}

static json_t *ratio(uint64_t part, uint64_t whole)
{
    return whole ? json_real((double)part / (double)whole) : json_null();
}

typedef json_t *(*backend_field)(const sf_stats_backend_snapshot *b);

/* {"legacy": f(legacy), "function": f(function)} */
static json_t *per_backend(const sf_stats_snapshot *sn, backend_field f)
{
    return json_pack("{s:o,s:o}", "legacy", f(&sn->backend[SF_STATS_LEGACY]), "function",
                     f(&sn->backend[SF_STATS_FUNCTION]));
}

static json_t *requests(const sf_stats_backend_snapshot *b)
{
    return json_integer((json_int_t)b->requests);
}

static json_t *errors(const sf_stats_backend_snapshot *b)
{
    return json_integer((json_int_t)b->errors);
}

static json_t *error_ratio(const sf_stats_backend_snapshot *b)
{
    return ratio(b->errors, b->requests);
}

static json_t *error_ratio_60s(const sf_stats_backend_snapshot *b)
{
    return ratio(b->errors_60s, b->requests_60s);
}

static json_t *rate_60s(const sf_stats_backend_snapshot *b)
{
    return json_real(b->rate_60s);
}

static json_t *rate_300s(const sf_stats_backend_snapshot *b)
{
    return json_real(b->rate_300s);
}

static json_t *requests_60s(const sf_stats_backend_snapshot *b)
{
    return json_integer((json_int_t)b->requests_60s);
}

static json_t *errors_60s(const sf_stats_backend_snapshot *b)
{
    return json_integer((json_int_t)b->errors_60s);
}

static json_t *bytes(const sf_stats_backend_snapshot *b)
{
    return json_pack("{s:I,s:I}", "in", (json_int_t)b->bytes_in, "out", (json_int_t)b->bytes_out);
}

static json_t *latency(const sf_stats_backend_snapshot *b)
{
    if (b->requests == 0)
        return json_null();
    return json_pack("{s:f,s:f,s:f}", "p50", b->p50_ms, "p90", b->p90_ms, "p99", b->p99_ms);
}

static json_t *classes(const sf_stats_backend_snapshot *b)
{
    return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}", "none", (json_int_t)b->classes[0], "1xx",
                     (json_int_t)b->classes[1], "2xx", (json_int_t)b->classes[2], "3xx",
                     (json_int_t)b->classes[3], "4xx", (json_int_t)b->classes[4], "5xx",
                     (json_int_t)b->classes[5]);
}

static json_t *kinds(const sf_stats_backend_snapshot *b)
{
    json_t *o = json_object();
    for (int k = SF_STATS_UPSTREAM_CONNECT; k < SF_STATS_UPSTREAM_KINDS; k++)
        json_object_set_new(o, sf_stats_upstream_error_name(k),
                            json_integer((json_int_t)b->upstream_errors[k]));
    return o;
}

static json_t *series(const sf_stats *st, int slot, int backend, uint64_t now, unsigned n)
{
    uint32_t v[SF_REPORT_TOTAL_SERIES];
    sf_stats_series(st, slot, backend, now, n, v);
    json_t *a = json_array();
    for (unsigned i = 0; i < n; i++)
        json_array_append_new(a, json_integer(v[i]));
    return a;
}

static json_t *shadow_json(const sf_stats_snapshot *sn)
{
    json_t *o = json_object();
    for (int r = 0; r < SF_STATS_SHADOW_RESULTS; r++)
        json_object_set_new(o, sf_stats_shadow_result_name(r),
                            json_integer((json_int_t)sn->shadow[r]));
    /* noise is a difference the route has learned to ignore: as good as a match */
    uint64_t good = sn->shadow[SF_STATS_SHADOW_MATCH] + sn->shadow[SF_STATS_SHADOW_NOISE];
    json_object_set_new(o, "match_ratio", ratio(good, good + sn->shadow[SF_STATS_SHADOW_MISMATCH]));
    json_object_set_new(o, "mismatch_ratio_60s", ratio(sn->mismatch_60s, sn->compared_60s));
    json_t *skipped = json_object(), *errors = json_object();
    for (int r = 0; r < SF_STATS_SHADOW_REASONS; r++)
        json_object_set_new(r <= SF_STATS_SHADOW_SKIP_MAX ? skipped : errors,
                            sf_stats_shadow_reason_name(r),
                            json_integer((json_int_t)sn->shadow_reason[r]));
    json_object_set_new(o, "skipped_by", skipped);
    json_object_set_new(o, "errors_by", errors);
    return o;
}

/* The route's object of GET /stats; its snapshot in snap (for the totals). */
static json_t *route_stats(sf_server *s, const sf_stats *st, const row *rw, uint64_t now,
                           int with_series, sf_stats_snapshot *snap)
{
    const sf_stats_snapshot *sn = snap;
    size_t nf;
    sf_stats_snapshot_slot(st, rw->slot, now, snap);
    /* in the first minutes, the seconds before the start are no traffic, not idle time */
    for (int b = 0; b < SF_STATS_BACKENDS; b++) {
        snap->backend[b].rate_60s = (double)snap->backend[b].requests_60s / window(s, now, 60);
        snap->backend[b].rate_300s = (double)snap->backend[b].requests_300s / window(s, now, 300);
    }
    const sf_route *r = rw->route;
    const sf_function *fns = sf_table_functions(s->rt->table, &nf);
    int in_table = r != NULL || rw->slot == s->default_slot;
    json_t *o = json_pack(
        "{s:s,s:b,s:o,s:o,s:s}", "name", sn->name, "in_table", in_table, "cutover",
        r != NULL ? json_real(r->cutover_bp / 100.0) : json_null(), "function",
        r != NULL ? json_string(fns[r->function_index].name) : json_null(), "state",
        r != NULL ? sf_admin_route_state(s->audit.last_actions, r->name, r->cutover_bp) : "active");
    static const struct {
        const char *key;
        backend_field f;
    } fields[] = {
        {"requests", requests},
        {"errors", errors},
        {"error_ratio", error_ratio},
        {"error_ratio_60s", error_ratio_60s},
        {"rate", rate_60s},
        {"rate_5m", rate_300s},
        {"requests_60s", requests_60s},
        {"errors_60s", errors_60s},
        {"latency_ms", latency},
        {"status", classes},
        {"upstream_errors", kinds},
        {"bytes", bytes},
    };
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        json_object_set_new(o, fields[i].key, per_backend(sn, fields[i].f));
    json_object_set_new(o, "shadow", shadow_json(sn));
    json_object_set_new(o, "fallbacks", json_integer((json_int_t)sn->fallbacks));
    if (with_series)
        json_object_set_new(
            o, "series",
            json_pack("{s:o,s:o}", "legacy",
                      series(st, rw->slot, SF_STATS_LEGACY, now, SF_REPORT_ROUTE_SERIES),
                      "function",
                      series(st, rw->slot, SF_STATS_FUNCTION, now, SF_REPORT_ROUTE_SERIES)));
    return o;
}

json_t *sf_report_stats_json(sf_server *s, int with_series)
{
    uint64_t now = sf_mono_sec();
    char at[32];
    sf_report_audit_refresh(s);
    sf_audit_format_time(0, at);
    row *rows;
    sf_stats *st = sf_server_stats_view(s);
    int n = rows_of(s, st, &rows);
    if (rows == NULL)
        return NULL;
    json_t *jr = json_array();
    uint64_t total[SF_STATS_BACKENDS] = {0}, recent[SF_STATS_BACKENDS] = {0};
    for (int i = 0; i < n; i++) {
        sf_stats_snapshot snap;
        json_t *o = route_stats(s, st, &rows[i], now, with_series, &snap);
        for (int be = 0; be < SF_STATS_BACKENDS; be++) {
            total[be] += snap.backend[be].requests;
            recent[be] += snap.backend[be].requests_60s;
        }
        json_array_append_new(jr, o);
    }
    free(rows);
    uint64_t rej[6];
    sf_server_rejected(s, rej);
    json_t *js = json_pack(
        "{s:s,s:I,s:s,s:o,s:o,s:{s:I,s:I},s:{s:f,s:f},s:{s:I,s:I,s:o},s:{s:I,s:I,s:I,s:I,s:I,s:I}}",
        "generated_at", at, "uptime_s", (json_int_t)(now - s->started_mono), "config_version",
        sf_table_version(s->rt->table), "legacy_share",
        num_or_null(sf_stats_legacy_share(st, now, 60)), "legacy_share_5m",
        num_or_null(sf_stats_legacy_share(st, now, 300)), "requests", "legacy",
        (json_int_t)total[SF_STATS_LEGACY], "function", (json_int_t)total[SF_STATS_FUNCTION],
        "rate", "legacy", recent[SF_STATS_LEGACY] / window(s, now, 60), "function",
        recent[SF_STATS_FUNCTION] / window(s, now, 60), "reloads", "ok", (json_int_t)s->reloads_ok,
        "failed", (json_int_t)s->reloads_failed, "last_ok",
        s->last_reload.ok < 0 ? json_null() : json_boolean(s->last_reload.ok), "rejected", "none",
        (json_int_t)rej[0], "1xx", (json_int_t)rej[1], "2xx", (json_int_t)rej[2], "3xx",
        (json_int_t)rej[3], "4xx", (json_int_t)rej[4], "5xx", (json_int_t)rej[5]);
    if (js == NULL) {
        json_decref(jr);
        return NULL;
    }
    json_object_set_new(js, "routes", jr);
    if (with_series)
        json_object_set_new(
            js, "series",
            json_pack("{s:i,s:o,s:o}", "step_s", 1, "legacy",
                      series(st, -1, SF_STATS_LEGACY, now, SF_REPORT_TOTAL_SERIES), "function",
                      series(st, -1, SF_STATS_FUNCTION, now, SF_REPORT_TOTAL_SERIES)));
    return js;
}

/* ---- GET /metrics ---- */

static void family(struct evbuffer *o, const char *name, const char *type, const char *help)
{
    evbuffer_add_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value as the text format wants it: \, " and newline escaped. */
static const char *label(const char *v, char *buf, size_t cap)
{
    size_t o = 0;
    for (; *v && o + 3 < cap; v++) {
        if (*v == '\\' || *v == '"' || *v == '\n') {
            buf[o++] = '\\';
            buf[o++] = *v == '\n' ? 'n' : *v;
        } else {
            buf[o++] = *v;
        }
    }
    buf[o] = '\0';
    return buf;
}

/* A float the way Prometheus reads it: NaN and +Inf by name, else shortest round-trip form. */
static const char *fnum(double v, char buf[32])
{
    if (isnan(v))
        return "NaN";
    if (isinf(v))
        return v > 0 ? "+Inf" : "-Inf";
    for (int prec = 15; prec <= 17; prec++) { /* the shortest that reads back the same */
        snprintf(buf, 32, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    return buf;
}

typedef struct {
    row *rows;
    int n;
    sf_stats_snapshot *snaps;
} metric_ctx;

static void requests_total(struct evbuffer *o, const metric_ctx *m)
{
    static const char *const cls[6] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};
    char lb[256];
    family(o, "strangler_requests_total", "counter",
           "Requests answered, by route, backend that served them and status class (none: no "
           "response was sent).");
    for (int i = 0; i < m->n; i++)
        for (int be = 0; be < SF_STATS_BACKENDS; be++)
            for (int c = 0; c < 6; c++)
                evbuffer_add_printf(o,
                                    "strangler_requests_total{route=\"%s\",backend=\"%s\",code_"
                                    "class=\"%s\"} %llu\n",
                                    label(m->snaps[i].name, lb, sizeof(lb)),
                                    sf_stats_backend_name(be), cls[c],
                                    (unsigned long long)m->snaps[i].backend[be].classes[c]);
}

static void durations(struct evbuffer *o, const metric_ctx *m)
{
    char lb[256], f[32];
    family(o, "strangler_request_duration_seconds", "histogram",
           "Time from a request's first byte to its response's last, by route and backend.");
    for (int i = 0; i < m->n; i++)
        for (int be = 0; be < SF_STATS_BACKENDS; be++) {
            const sf_stats_backend_snapshot *b = &m->snaps[i].backend[be];
            label(m->snaps[i].name, lb, sizeof(lb));
            const char *bn = sf_stats_backend_name(be);
            for (int k = 0; k < SF_STATS_LE_N; k++)
                evbuffer_add_printf(o,
                                    "strangler_request_duration_seconds_bucket{route=\"%s\","
                                    "backend=\"%s\",le=\"%s\"} %llu\n",
                                    lb, bn, fnum(sf_stats_le_seconds[k], f),
                                    (unsigned long long)b->le_cumulative[k]);
            evbuffer_add_printf(
                o, "strangler_request_duration_seconds_sum{route=\"%s\",backend=\"%s\"} %s\n", lb,
                bn, fnum(b->sum_seconds, f));
            evbuffer_add_printf(
                o, "strangler_request_duration_seconds_count{route=\"%s\",backend=\"%s\"} %llu\n",
                lb, bn, (unsigned long long)b->requests);
        }
}

/* A counter family of shadow reasons first..last (sf_stats_shadow_reason), by route. */
static void reason_family(struct evbuffer *o, const metric_ctx *m, const char *name,
                          const char *help, int first, int last)
{
    char lb[256];
    family(o, name, "counter", help);
    for (int i = 0; i < m->n; i++)
        for (int r = first; r <= last; r++)
            evbuffer_add_printf(o, "%s{route=\"%s\",reason=\"%s\"} %llu\n", name,
                                label(m->snaps[i].name, lb, sizeof(lb)),
                                sf_stats_shadow_reason_name(r),
                                (unsigned long long)m->snaps[i].shadow_reason[r]);
}

static void per_route(struct evbuffer *o, const metric_ctx *m, const sf_server *s)
{
    char lb[256], f[32];
    family(o, "strangler_upstream_errors_total", "counter",
           "Upstream failures (no usable response), by route, backend and kind; a function's "
           "failure rescued by a fallback counts here too.");
    for (int i = 0; i < m->n; i++)
        for (int be = 0; be < SF_STATS_BACKENDS; be++)
            for (int k = SF_STATS_UPSTREAM_CONNECT; k < SF_STATS_UPSTREAM_KINDS; k++)
                evbuffer_add_printf(o,
                                    "strangler_upstream_errors_total{route=\"%s\",backend=\"%s\","
                                    "kind=\"%s\"} %llu\n",
                                    label(m->snaps[i].name, lb, sizeof(lb)),
                                    sf_stats_backend_name(be), sf_stats_upstream_error_name(k),
                                    (unsigned long long)m->snaps[i].backend[be].upstream_errors[k]);
    family(o, "strangler_shadow_comparisons_total", "counter",
           "Shadow comparison outcomes, by route and result.");
    for (int i = 0; i < m->n; i++)
        for (int r = 0; r < SF_STATS_SHADOW_RESULTS; r++)
            evbuffer_add_printf(
                o, "strangler_shadow_comparisons_total{route=\"%s\",result=\"%s\"} %llu\n",
                label(m->snaps[i].name, lb, sizeof(lb)), sf_stats_shadow_result_name(r),
                (unsigned long long)m->snaps[i].shadow[r]);
    reason_family(o, m, "strangler_shadow_skipped_total",
                  "Shadows not sent or given up, by route and reason (sampled_out, method, "
                  "body_too_large, over_capacity, primary_failed).",
                  0, SF_STATS_SHADOW_SKIP_MAX);
    reason_family(o, m, "strangler_shadow_errors_total",
                  "Shadows the function failed, by route and reason (timeout, connect, reset, "
                  "protocol, 5xx).",
                  SF_STATS_SHADOW_SKIP_MAX + 1, SF_STATS_SHADOW_REASONS - 1);
    family(o, "strangler_guard_breaches_total", "counter",
           "Guard checks found breached (once per window), by route and check; a breach rolls "
           "the route back unless the guard is a dry run.");
    for (int i = 0; i < m->n; i++)
        if (m->rows[i].route != NULL && m->rows[i].route->guard.enabled)
            for (int c = 0; c < SF_GUARD_CHECKS; c++)
                evbuffer_add_printf(
                    o, "strangler_guard_breaches_total{route=\"%s\",check=\"%s\"} %llu\n",
                    label(m->snaps[i].name, lb, sizeof(lb)), sf_guard_check_name(c),
                    (unsigned long long)sf_guards_breaches(s->guards, m->rows[i].slot, c));
    family(o, "strangler_fallbacks_total", "counter",
           "Requests the function failed before answering and legacy then served, by route.");
    for (int i = 0; i < m->n; i++)
        evbuffer_add_printf(o, "strangler_fallbacks_total{route=\"%s\"} %llu\n",
                            label(m->snaps[i].name, lb, sizeof(lb)),
                            (unsigned long long)m->snaps[i].fallbacks);
    family(o, "strangler_route_cutover_ratio", "gauge",
           "Share of a route's requests sent to its function (0..1), as configured.");
    for (int i = 0; i < m->n; i++)
        if (m->rows[i].route != NULL)
            evbuffer_add_printf(o, "strangler_route_cutover_ratio{route=\"%s\"} %s\n",
                                label(m->snaps[i].name, lb, sizeof(lb)),
                                fnum(m->rows[i].route->cutover_bp / 10000.0, f));
    family(o, "strangler_rollbacks_total", "counter",
           "Rollbacks since the proxy started, by route and trigger (manual or guard).");
    for (int i = 0; i < m->n; i++) {
        json_t *r = json_object_get(s->audit.rollbacks, m->snaps[i].name);
        if (m->rows[i].route == NULL && r == NULL)
            continue;
        for (int t = 0; t < 2; t++) {
            const char *trig = t == 0 ? "manual" : "guard";
            evbuffer_add_printf(o, "strangler_rollbacks_total{route=\"%s\",trigger=\"%s\"} %lld\n",
                                label(m->snaps[i].name, lb, sizeof(lb)), trig,
                                (long long)json_integer_value(json_object_get(r, trig)));
        }
    }
}

static void process(struct evbuffer *o, sf_server *s, const sf_stats *st, uint64_t now)
{
    static const char *const cls[6] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};
    char f[32];
    family(o, "strangler_legacy_share_ratio", "gauge",
           "Share of all requests in the last minute served by the monolith (NaN without "
           "traffic).");
    evbuffer_add_printf(o, "strangler_legacy_share_ratio %s\n",
                        fnum(sf_stats_legacy_share(st, now, 60), f));
    family(o, "strangler_rejected_requests_total", "counter",
           "Requests the proxy answered itself before choosing a backend (bad requests), by "
           "status class.");
    uint64_t rej[6], written, dropped;
    sf_server_rejected(s, rej);
    for (int c = 1; c < 6; c++)
        evbuffer_add_printf(o, "strangler_rejected_requests_total{code_class=\"%s\"} %llu\n",
                            cls[c], (unsigned long long)rej[c]);
    family(o, "strangler_config_reloads_total", "counter",
           "Reloads of the routes file by result: success (applied, or asked for and the "
           "file is the version running), failure (rejected: the running table stays).");
    evbuffer_add_printf(o, "strangler_config_reloads_total{result=\"success\"} %llu\n",
                        (unsigned long long)s->reloads_ok);
    evbuffer_add_printf(o, "strangler_config_reloads_total{result=\"failure\"} %llu\n",
                        (unsigned long long)s->reloads_failed);
    family(o, "strangler_config_last_reload_success", "gauge",
           "1 when the last reload was applied (or none was tried since the start), 0 when it "
           "was rejected and an older table runs.");
    evbuffer_add_printf(o, "strangler_config_last_reload_success %d\n",
                        s->last_reload.ok != 0 ? 1 : 0);
    sf_server_accesslog_counts(s, &written, &dropped);
    family(o, "strangler_access_log_lines_total", "counter",
           "Access log lines written, and dropped because the log's disk could not keep up.");
    evbuffer_add_printf(o, "strangler_access_log_lines_total{result=\"written\"} %llu\n",
                        (unsigned long long)written);
    evbuffer_add_printf(o, "strangler_access_log_lines_total{result=\"dropped\"} %llu\n",
                        (unsigned long long)dropped);
    family(o, "strangler_start_time_seconds", "gauge",
           "When the proxy started, seconds since the epoch.");
    evbuffer_add_printf(o, "strangler_start_time_seconds %s\n", fnum(floor(s->started_wall), f));
}

char *sf_report_metrics(sf_server *s, size_t *len)
{
    uint64_t now = sf_mono_sec();
    sf_report_audit_refresh(s);
    metric_ctx m = {0};
    sf_stats *st = sf_server_stats_view(s);
    m.n = rows_of(s, st, &m.rows);
    struct evbuffer *o = evbuffer_new();
    m.snaps = calloc((size_t)m.n + 1, sizeof(*m.snaps));
    char *text = NULL;
    if (m.rows == NULL || o == NULL || m.snaps == NULL)
        goto done;
    for (int i = 0; i < m.n; i++)
        sf_stats_snapshot_slot(st, m.rows[i].slot, now, &m.snaps[i]);
    requests_total(o, &m);
    durations(o, &m);
    per_route(o, &m, s);
    process(o, s, st, now);
    *len = evbuffer_get_length(o);
    text = malloc(*len + 1);
    if (text != NULL) {
        evbuffer_remove(o, text, *len);
        text[*len] = '\0';
    }
done:
    if (o != NULL)
        evbuffer_free(o);
    free(m.rows);
    free(m.snaps);
    return text;
}
