/* Admin API handlers. Every answer is JSON; every mutation is a POST, persisted to routes.yaml
 * first (the file is the source of truth), audited, then applied by a reload. */
#include "admin.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "compare.h"
#include "dashboard.h"
#include "diffs.h"
#include "edit.h"
#include "log.h"
#include "report.h"
#include "shadow.h"

static int slice_is(sf_slice s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && memcmp(s.p, lit, n) == 0;
}

static void iso_time(double t, char out[32])
{
    sf_audit_format_time((int64_t)(t * 1000.0), out);
}

/* Takes ownership of js. */
static void reply_json(sf_admin_response *out, int status, json_t *js)
{
    out->status = status;
    out->content_type = "application/json";
    out->body = js != NULL ? json_dumps(js, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(js);
    if (out->body == NULL) {
        out->status = 500;
        out->body = strdup("{\"error\": \"out of memory\"}");
    }
    out->len = out->body != NULL ? strlen(out->body) : 0;
    if (out->body != NULL) {
        /* a final newline: friendlier for curl in a terminal */
        char *b = realloc(out->body, out->len + 2);
        if (b != NULL) {
            b[out->len++] = '\n';
            b[out->len] = '\0';
            out->body = b;
        }
    }
}

static void reply_error(sf_admin_response *out, int status, const char *msg)
{
    reply_json(out, status, json_pack("{s:s}", "error", msg));
}

static double percent(uint32_t bp)
{
    return (double)bp / 100.0;
}

/* ---- GET /routes ---- */

static json_t *strings(char **v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

const char *sf_admin_route_state(const json_t *last_actions, const char *name, uint32_t cutover_bp)
{
    const char *last = json_string_value(json_object_get(last_actions, name));
    int back = cutover_bp == 0 && last != NULL &&
               (strcmp(last, "rollback") == 0 || strcmp(last, "guard") == 0);
    return back ? "rolled_back" : "active";
}

static json_t *route_json(const sf_route *r, const json_t *last_actions)
{
    char sticky[160];
    json_t *match = json_object();
    if (r->path != NULL)
        json_object_set_new(match, "path", json_string(r->path));
    else
        json_object_set_new(match, "regex", json_string(r->regex_src));
    json_object_set_new(match, "methods",
                        r->methods != NULL ? strings(r->methods, r->nmethods) : json_null());
    json_t *hm = json_object();
    for (size_t i = 0; i < r->nheaders; i++)
        json_object_set_new(hm, r->headers[i].name, json_string(r->headers[i].pattern));
    json_object_set_new(match, "headers", hm);

    json_t *shadow = json_null();
    if (r->shadow.enabled)
        shadow = json_pack(
            "{s:f,s:o,s:b,s:o,s:s,s:o,s:b}", "percent", percent(r->shadow.percent_bp), "methods",
            strings(r->shadow.methods, r->shadow.nmethods), "compare_status",
            r->shadow.compare_status, "compare_headers",
            strings(r->shadow.compare_headers, r->shadow.ncompare_headers), "body",
            (const char *[]){"auto", "bytes", "json", "none"}[r->shadow.body_mode], "ignore",
            strings(r->shadow.ignore, r->shadow.nignore), "learn_noise", r->shadow.learn_noise);
    json_t *guard = json_null();
    if (r->guard.enabled) {
        guard =
            json_pack("{s:I,s:I,s:b}", "window_ms", (json_int_t)r->guard.window_ms, "min_requests",
                      (json_int_t)r->guard.min_requests, "dry_run", r->guard.dry_run);
        if (r->guard.max_error_ratio >= 0)
            json_object_set_new(guard, "max_error_ratio", json_real(r->guard.max_error_ratio));
        if (r->guard.max_mismatch_ratio >= 0)
            json_object_set_new(guard, "max_mismatch_ratio",
                                json_real(r->guard.max_mismatch_ratio));
        if (r->guard.max_p99_ratio >= 0)
            json_object_set_new(guard, "max_p99_ratio", json_real(r->guard.max_p99_ratio));
    }
    /* rolled back: at 0% and the last audited change of the route was a rollback */
    const char *state = last_actions != NULL
                            ? sf_admin_route_state(last_actions, r->name, r->cutover_bp)
                            : "not running";
    return json_pack(
        "{s:s,s:o,s:s,s:f,s:s,s:b,s:o,s:o,s:o,s:s}", "name", r->name, "match", match, "function",
        r->function->name, "cutover", percent(r->cutover_bp), "sticky",
        sf_route_sticky_text(r, sticky, sizeof(sticky)), "fallback", r->fallback, "rewrite",
        r->rewrite_re != NULL ? json_pack("{s:s,s:s}", "regex", r->rewrite_src, "to", r->rewrite_to)
                              : json_null(),
        "shadow", shadow, "guard", guard, "state", state);
}

static json_t *reload_json(const sf_reload_result *r)
{
    char at[32];
    if (r->ok < 0)
        return json_null();
    iso_time(r->at, at);
    return json_pack("{s:b,s:s,s:s,s:o,s:o}", "ok", r->ok, "at", at, "trigger", r->trigger, "error",
                     r->error != NULL ? json_string(r->error) : json_null(), "changes",
                     strings(r->changes, r->nchanges));
}

json_t *sf_admin_table_json(const sf_route_table *t, const char *file, const json_t *last_actions)
{
    size_t nf, nr;
    const sf_function *fns = sf_table_functions(t, &nf);
    const sf_route *routes = sf_table_routes(t, &nr);
    json_t *jf = json_array(), *jr = json_array();
    for (size_t i = 0; i < nf; i++) {
        json_t *f = json_pack("{s:s,s:s}", "name", fns[i].name, "url", fns[i].url.url);
        if (fns[i].timeout_ms > 0)
            json_object_set_new(f, "timeout_ms", json_integer((json_int_t)fns[i].timeout_ms));
        if (fns[i].url.tls)
            json_object_set_new(f, "tls_verify", json_boolean(fns[i].tls_verify));
        json_array_append_new(jf, f); /* header values may be secrets: never shown */
    }
    for (size_t i = 0; i < nr; i++)
        json_array_append_new(jr, route_json(&routes[i], last_actions));
    return json_pack("{s:s,s:s,s:n,s:n,s:s,s:o,s:o}", "file", file, "version", sf_table_version(t),
                     "loaded_at", "last_reload", "legacy", sf_table_legacy(t)->url, "functions", jf,
                     "routes", jr);
}

#define NOISE_SHOWN 64

/* The noise paths route r has learned (every worker's), at most NOISE_SHOWN: a JSON array of
 * strings, into paths as well (borrowed from the array). */
static json_t *route_noise(sf_server *s, const sf_route *r, const char **paths, size_t *n)
{
    json_t *arr = sf_server_noise_paths(s, r->name, NOISE_SHOWN);
    *n = 0;
    for (size_t i = 0; arr != NULL && i < json_array_size(arr) && i < NOISE_SHOWN; i++)
        paths[(*n)++] = json_string_value(json_array_get(arr, i));
    return arr;
}

static json_t *routes_json(sf_server *s)
{
    char at[32];
    sf_report_audit_refresh(s);
    json_t *acts = s->audit.last_actions != NULL ? s->audit.last_actions : json_object();
    json_t *js = sf_admin_table_json(s->rt->table, s->cfg->routes_file, acts);
    if (acts != s->audit.last_actions)
        json_decref(acts);
    if (js == NULL)
        return NULL;
    iso_time(s->rt->loaded_at, at);
    /* replacing a key keeps its place in the object */
    json_object_set_new(js, "loaded_at", json_string(at));
    size_t nr, i;
    const sf_route *routes = sf_table_routes(s->rt->table, &nr);
    json_t *jr;
    json_array_foreach(json_object_get(js, "routes"), i, jr)
    {
        if (i >= nr || !routes[i].shadow.learn_noise)
            continue;
        const char *noise[NOISE_SHOWN];
        size_t nnoise;
        json_t *arr = route_noise(s, &routes[i], noise, &nnoise);
        json_object_set_new(json_object_get(jr, "shadow"), "noise_paths",
                            arr != NULL ? arr : json_array());
    }
    json_object_set_new(js, "last_reload", reload_json(&s->last_reload));
    return js;
}

/* ---- query strings ---- */

/* The value of name in a query string ("a=1&b=2"), copied into out; 0 when absent. */
static int query_param(sf_slice q, const char *name, char *out, size_t len)
{
    size_t n = strlen(name);
    const char *p = q.p, *end = q.p + q.len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *e = amp != NULL ? amp : end;
        if ((size_t)(e - p) > n && memcmp(p, name, n) == 0 && p[n] == '=') {
            size_t vl = (size_t)(e - p) - n - 1;
            if (vl >= len)
                vl = len - 1;
            memcpy(out, p + n + 1, vl);
            out[vl] = '\0';
            return 1;
        }
        p = e + 1;
    }
    return 0;
}

/* ---- POST /reload ---- */

/* ?trigger=cli says strangler reload (or cutover, rollback) asked; anything else is "api". */
static void reload(sf_server *s, const sf_admin_request *rq, sf_admin_response *out)
{
    char trigger[8];
    int cli =
        query_param(rq->query, "trigger", trigger, sizeof(trigger)) && strcmp(trigger, "cli") == 0;
    int rc = sf_server_reload(s, cli ? "cli" : "api");
    json_t *js;
    if (rc == 1) {
        /* the running version already: nothing changed by this call */
        sf_reload_result same = {.ok = 1, .at = sf_wall_now()};
        snprintf(same.trigger, sizeof(same.trigger), "%s", cli ? "cli" : "api");
        js = reload_json(&same);
    } else {
        js = reload_json(&s->last_reload);
    }
    json_object_set_new(js, "version", json_string(sf_table_version(s->rt->table)));
    reply_json(out, rc < 0 ? 422 : 200, js);
}

/* ---- POST /routes/NAME/cutover, /rollback ---- */

static void change_cutover(sf_server *s, const char *name, const sf_admin_request *rq, int rollback,
                           sf_admin_response *out)
{
    json_error_t jerr;
    json_t *body = NULL;
    uint32_t bp = 0;
    const char *reason = NULL;
    char err[1024];
    if (rq->body.len > 0) {
        body = json_loadb(rq->body.p, rq->body.len, 0, &jerr);
        if (!json_is_object(body)) {
            snprintf(err, sizeof(err), "the body must be a JSON object: %s", jerr.text);
            json_decref(body);
            reply_error(out, 400, err);
            return;
        }
        json_t *jr = json_object_get(body, "reason");
        if (jr != NULL && !json_is_string(jr) && !json_is_null(jr)) {
            json_decref(body);
            reply_error(out, 400, "reason must be a string");
            return;
        }
        reason = json_string_value(jr);
    }
    if (!rollback) {
        json_t *jp = json_object_get(body, "percent");
        double p = json_number_value(jp);
        double scaled = p * 100.0;
        if (!json_is_number(jp) || p < 0 || p > 100 ||
            scaled - (double)(uint32_t)(scaled + 0.5) > 1e-6 ||
            (double)(uint32_t)(scaled + 0.5) - scaled > 1e-6) {
            json_decref(body);
            reply_error(out, 400,
                        "percent must be a number from 0 to 100 with at most two decimals, "
                        "e.g. {\"percent\": 25, \"reason\": \"...\"}");
            return;
        }
        bp = (uint32_t)(scaled + 0.5);
    }
    sf_edit_result res;
    int applied;
    const char *action = rollback ? "rollback" : "cutover";
    int rc = sf_server_set_cutover(s, name, bp, action, reason, "admin-api", "api", &res, &applied,
                                   err, sizeof(err));
    if (rc == 0 && !res.changed) {
        json_decref(body);
        reply_json(out, 200,
                   json_pack("{s:s,s:s,s:f,s:f,s:s,s:b}", "route", name, "action",
                             rollback ? "rollback" : "cutover", "from", percent(res.old_bp), "to",
                             percent(bp), "version", res.version, "unchanged", 1));
        return;
    }
    if (rc < 0) {
        sf_warn("admin API: %s of %s refused: %s", rollback ? "rollback" : "cutover", name, err);
        json_decref(body);
        reply_error(out,
                    rc == SF_EDIT_ENOROUTE   ? 404
                    : rc == SF_EDIT_ECHANGED ? 409
                    : rc == SF_EDIT_EINVALID ? 422
                                             : 500,
                    err);
        return;
    }
    json_t *js =
        json_pack("{s:s,s:s,s:f,s:f,s:s,s:o}", "route", name, "action",
                  rollback ? "rollback" : "cutover", "from", percent(res.old_bp), "to", percent(bp),
                  "version", res.version, "reload", reload_json(&s->last_reload));
    if (!applied)
        json_object_set_new(js, "error",
                            json_string("saved to the routes file and audited, but the reload "
                                        "failed: the running table is unchanged (see reload)"));
    json_decref(body);
    reply_json(out, applied ? 200 : 500, js);
}

/* ---- GET /routes/NAME/diffs ---- */

/* "no such route 'x'; routes: a, b" for a 404, bounded; name shown with only the bytes a route
 * name may hold (it comes from the request line). */
static void no_such_route(const sf_route_table *t, const char *name, char *msg, size_t len)
{
    char shown[128];
    size_t nr, at, i;
    for (i = 0; name[i] != '\0' && i + 1 < sizeof(shown); i++)
        shown[i] = isalnum((unsigned char)name[i]) || strchr("_.-", name[i]) ? name[i] : '?';
    shown[i] = '\0';
    const sf_route *routes = sf_table_routes(t, &nr);
    at = (size_t)snprintf(msg, len, "no such route '%s' in the live table; %s", shown,
                          nr == 0 ? "it has no routes" : "routes:");
    for (i = 0; i < nr && at < len; i++) {
        if (at + strlen(routes[i].name) + 8 >= len) {
            snprintf(msg + at, len - at, ", ...");
            break;
        }
        at += (size_t)snprintf(msg + at, len - at, "%s %s", i ? "," : "", routes[i].name);
    }
}

/* ?limit=N: the newest N mismatches (0 or none: every one kept). */
static void route_diffs(sf_server *s, const char *name, const sf_admin_request *rq,
                        sf_admin_response *out)
{
    char limit[24], msg[2048];
    size_t lim = 0;
    const sf_route *r = sf_table_route(s->rt->table, name);
    if (r == NULL) {
        no_such_route(s->rt->table, name, msg, sizeof(msg));
        reply_error(out, 404, msg);
        return;
    }
    if (query_param(rq->query, "limit", limit, sizeof(limit))) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(limit, &end, 10);
        if (limit[0] < '0' || limit[0] > '9' || *end != '\0' || errno != 0) {
            reply_error(out, 400, "limit must be a whole number (0: every mismatch kept)");
            return;
        }
        lim = v > SF_DIFFS_RING ? SF_DIFFS_RING : (size_t)v;
    }
    const char *noise[NOISE_SHOWN];
    size_t nnoise;
    json_t *arr = route_noise(s, r, noise, &nnoise);
    reply_json(out, 200, sf_diffs_json(sf_server_diffs(s), name, lim, noise, nnoise));
    json_decref(arr);
}

/* ---- GET /history ---- */

static void history(sf_server *s, const sf_admin_request *rq, sf_admin_response *out)
{
    char route[128], limit[16], err[256];
    int has_route = query_param(rq->query, "route", route, sizeof(route));
    size_t lim =
        query_param(rq->query, "limit", limit, sizeof(limit)) ? strtoul(limit, NULL, 10) : 0;
    size_t malformed = 0;
    json_t *arr = sf_audit_read(s->cfg->audit_log, has_route ? route : NULL, lim, &malformed, err,
                                sizeof(err));
    if (arr != NULL && malformed > 0)
        sf_warn("audit log %s: %zu malformed line(s) skipped", s->cfg->audit_log, malformed);
    if (arr == NULL) {
        reply_error(out, 500, err);
        return;
    }
    reply_json(out, 200, arr);
}

/* ---- GET / ---- */

static void dashboard(sf_admin_response *out)
{
    out->body = malloc(sf_dashboard_html_len);
    if (out->body == NULL) {
        reply_error(out, 500, "out of memory");
        return;
    }
    memcpy(out->body, sf_dashboard_html, sf_dashboard_html_len);
    out->len = sf_dashboard_html_len;
    out->status = 200;
    out->content_type = "text/html; charset=utf-8";
    /* the browser enforces what the page promises: nothing loaded from elsewhere, no request
     * but to this admin address */
    out->headers = "Content-Security-Policy: default-src 'none'; script-src 'unsafe-inline'; "
                   "style-src 'unsafe-inline'; img-src data:; connect-src 'self'; "
                   "base-uri 'none'; form-action 'none'; frame-ancestors 'none'\r\n"
                   "X-Content-Type-Options: nosniff\r\n";
}

/* ---- dispatch ---- */

/* The host part of a Host value or of an Origin's authority: "[::1]:9901" -> "::1". */
static sf_slice host_part(sf_slice hp)
{
    if (hp.len > 0 && hp.p[0] == '[') {
        const char *end = memchr(hp.p, ']', hp.len);
        return end != NULL ? (sf_slice){hp.p + 1, (size_t)(end - hp.p - 1)} : (sf_slice){"", 0};
    }
    const char *colon = memchr(hp.p, ':', hp.len);
    return colon != NULL ? (sf_slice){hp.p, (size_t)(colon - hp.p)} : hp;
}

static int slice_is_nocase(sf_slice s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && strncasecmp(s.p, lit, n) == 0;
}

/* A name only this machine answers to: localhost, 127.0.0.0/8, ::1, or the admin address's own
 * host. */
static int host_is_local(const sf_server *s, sf_slice host)
{
    sf_slice h = host_part(host);
    if (slice_is_nocase(h, "localhost") || slice_is(h, "::1"))
        return 1;
    if (h.len >= 5 && memcmp(h.p, "127.", 4) == 0) {
        for (size_t i = 4; i < h.len; i++)
            if (!isdigit((unsigned char)h.p[i]) && h.p[i] != '.')
                return 0;
        return 1;
    }
    const char *admin = s->cfg->admin_address;
    if (admin == NULL || h.len == 0)
        return 0;
    sf_slice own = host_part((sf_slice){admin, strlen(admin)});
    return own.len == h.len && strncasecmp(own.p, h.p, h.len) == 0;
}

/* What a web page in a browser could make this API do, refused (see README, "Admin API
 * safety"). Without a token the admin address is trusted for being loopback, which a page
 * can reach too: by a DNS name of its own resolving to 127.0.0.1 (rebinding: the Host is that
 * name), or by a cross-site POST (the browser says so in Origin and Sec-Fetch-Site). Tools
 * (curl, the CLI, Prometheus) send none of those headers, or a local Host. Returns a message, or
 * NULL when the call may proceed. */
static const char *browser_guard(const sf_server *s, const sf_admin_request *rq, int post)
{
    if (s->cfg->admin_token == NULL && rq->host.len > 0 && !host_is_local(s, rq->host))
        return "this admin API answers only to a local Host (localhost, 127.0.0.1, [::1]) when no "
               "token is configured: a guard against DNS rebinding";
    if (!post)
        return NULL;
    if (slice_is_nocase(rq->fetch_site, "cross-site") ||
        slice_is_nocase(rq->fetch_site, "same-site"))
        return "a change requested by another site's page is refused";
    if (rq->origin.len > 0) {
        static const char http[] = "http://";
        sf_slice o = rq->origin;
        if (o.len <= sizeof(http) - 1 || strncasecmp(o.p, http, sizeof(http) - 1) != 0)
            return "a change requested from another origin is refused";
        o.p += sizeof(http) - 1;
        o.len -= sizeof(http) - 1;
        if (o.len != rq->host.len || strncasecmp(o.p, rq->host.p, o.len) != 0)
            return "a change requested from another origin is refused";
    }
    return NULL;
}

/* Constant time whatever the token and the guess (their digests are compared). */
static int token_ok(const sf_server *s, sf_slice auth)
{
    static const char bearer[] = "Bearer ";
    if (auth.len <= sizeof(bearer) - 1 || strncasecmp(auth.p, bearer, sizeof(bearer) - 1) != 0)
        return 0;
    unsigned char a[SHA256_DIGEST_LENGTH], b[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)auth.p + 7, auth.len - 7, a);
    SHA256((const unsigned char *)s->cfg->admin_token, strlen(s->cfg->admin_token), b);
    return CRYPTO_memcmp(a, b, sizeof(a)) == 0;
}

void sf_admin_handle(sf_server *s, const sf_admin_request *rq, sf_admin_response *out)
{
    memset(out, 0, sizeof(*out));
    int get = slice_is(rq->method, "GET") || slice_is(rq->method, "HEAD");
    int post = slice_is(rq->method, "POST");
    sf_slice p = rq->path;

    const char *refused = browser_guard(s, rq, post);
    if (refused != NULL) {
        reply_error(out, 403, refused);
        return;
    }
    /* The dashboard page holds no data (it asks for the token to fetch /stats), so it is
     * served without one. */
    if (slice_is(p, "/")) {
        if (!get)
            goto not_allowed_get;
        dashboard(out);
        return;
    }
    if (s->cfg->admin_token != NULL && !token_ok(s, rq->authorization)) {
        reply_error(out, 401, "this admin API needs \"Authorization: Bearer <token>\"");
        out->headers = "WWW-Authenticate: Bearer\r\n";
        return;
    }
    if (slice_is(p, "/healthz")) {
        if (!get)
            goto not_allowed_get;
        reply_json(out, 200, json_pack("{s:s}", "status", "ok"));
    } else if (slice_is(p, "/readyz")) {
        if (!get)
            goto not_allowed_get;
        if (s->draining)
            reply_json(out, 503, json_pack("{s:s}", "status", "draining"));
        else
            reply_json(out, 200, json_pack("{s:s}", "status", "ready"));
    } else if (slice_is(p, "/routes")) {
        if (!get)
            goto not_allowed_get;
        reply_json(out, 200, routes_json(s));
    } else if (slice_is(p, "/stats")) {
        if (!get)
            goto not_allowed_get;
        char v[8];
        int with_series = query_param(rq->query, "series", v, sizeof(v)) && strcmp(v, "1") == 0;
        reply_json(out, 200, sf_report_stats_json(s, with_series));
    } else if (slice_is(p, "/metrics")) {
        if (!get)
            goto not_allowed_get;
        out->body = sf_report_metrics(s, &out->len);
        out->status = out->body != NULL ? 200 : 500;
        out->content_type = "text/plain; version=0.0.4; charset=utf-8";
    } else if (slice_is(p, "/history")) {
        if (!get)
            goto not_allowed_get;
        history(s, rq, out);
    } else if (slice_is(p, "/reload")) {
        if (!post)
            goto not_allowed_post;
        reload(s, rq, out);
    } else if (p.len > 8 && memcmp(p.p, "/routes/", 8) == 0) {
        static const char try_these[] =
            "not found: try /routes/NAME/diffs, /routes/NAME/cutover or /routes/NAME/rollback";
        const char *name = p.p + 8, *slash = memchr(name, '/', p.len - 8);
        if (slash == NULL || slash == name) {
            reply_error(out, 404, try_these);
            return;
        }
        char rname[128];
        size_t nl = (size_t)(slash - name);
        sf_slice verb = {slash + 1, (size_t)(p.p + p.len - slash - 1)};
        int cut = slice_is(verb, "cutover"), back = slice_is(verb, "rollback");
        int diffs = slice_is(verb, "diffs");
        if (!cut && !back && !diffs) {
            reply_error(out, 404, try_these);
            return;
        }
        if (diffs && !get)
            goto not_allowed_get;
        if (!diffs && !post)
            goto not_allowed_post;
        if (nl >= sizeof(rname)) {
            reply_error(out, 404, "no such route");
            return;
        }
        memcpy(rname, name, nl);
        rname[nl] = '\0';
        if (diffs)
            route_diffs(s, rname, rq, out);
        else
            change_cutover(s, rname, rq, back, out);
    } else {
        reply_error(out, 404, "not found");
    }
    return;
not_allowed_get:
    reply_error(out, 405, "method not allowed: use GET");
    out->headers = "Allow: GET, HEAD\r\n";
    return;
not_allowed_post:
    reply_error(out, 405, "method not allowed: changes are made with POST");
    out->headers = "Allow: POST\r\n";
}
