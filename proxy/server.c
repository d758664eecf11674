/* The server: one event loop, its listeners (proxy and admin), the upstream pool, signals,
 * and the drain on SIGTERM/SIGINT. */
#include "server.h"

#include <errno.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "diff.h"
#include "edit.h"
#include "guard.h"
#include "diffs.h"
#include "log.h"
#include "shadow.h"
#include "match.h"
#include "netio.h"
#include "tls.h"
#include "watch.h"

#define LISTEN_BACKLOG     4096
#define ACCEPTS_PER_WAKEUP 64
/* Idle pooled connections are closed before a typical backend's own keep-alive timeout
 * (nginx 75 s, Node 5 s is the odd one out: replays cover that race). */
#define POOL_IDLE_MS  30000
#define POOL_MAX_IDLE 1024
#define LINGER_MS     2000
/* Editors write a file in several steps: reload once it has been quiet this long. */
#define WATCH_DEBOUNCE_MS 200

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t sf_server_random(sf_server *s)
{
    uint64_t *st = s->rng;
    uint64_t result = rotl(st[1] * 5, 7) * 9;
    uint64_t t = st[1] << 17;
    st[2] ^= st[0];
    st[3] ^= st[1];
    st[1] ^= st[2];
    st[0] ^= st[3];
    st[2] ^= t;
    st[3] = rotl(st[3], 45);
    return result;
}

ssize_t sf_server_parse_response(sf_server *s, struct evbuffer *in, sf_http_response *resp)
{
    size_t len = evbuffer_get_length(in);
    if (len == 0)
        return SF_HTTP_INCOMPLETE;
    size_t look = len < SF_RESP_HEAD_MAX + 64 ? len : SF_RESP_HEAD_MAX + 64;
    const char *buf = (const char *)evbuffer_pullup(in, (ev_ssize_t)look);
    sf_http_limits lim = {SF_RESP_HEAD_MAX, s->hdrs_cap};
    return sf_http_parse_response(buf, look, resp, s->hdrs, s->hdrs_cap, &lim);
}

static void seed_rng(sf_server *s)
{
    if (getrandom(s->rng, sizeof(s->rng), 0) != (ssize_t)sizeof(s->rng)) {
        /* no entropy source: time and pid still make ids distinct between processes */
        s->rng[0] = (uint64_t)time(NULL) ^ 0x9e3779b97f4a7c15ULL;
        s->rng[1] = (uint64_t)getpid() * 0xbf58476d1ce4e5b9ULL;
        s->rng[2] = (uint64_t)clock();
        s->rng[3] = 0x94d049bb133111ebULL;
    }
    if ((s->rng[0] | s->rng[1] | s->rng[2] | s->rng[3]) == 0)
        s->rng[0] = 1;
}

static const struct timeval *common_tv(struct event_base *base, uint64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    return event_base_init_common_timeout(base, &tv);
}

static void pause_listeners(sf_server *s, int pause)
{
    if (s->listeners_paused == pause)
        return;
    s->listeners_paused = pause;
    for (size_t i = 0; i < s->nlisteners; i++) {
        sf_listener *l = &s->listeners[i];
        if (l->admin || l->fd < 0)
            continue;
        if (pause)
            event_del(&l->ev);
        else
            event_add(&l->ev, NULL);
    }
}

static void on_accept(evutil_socket_t fd, short what, void *arg)
{
    sf_listener *l = arg;
    sf_server *s = l->srv;
    (void)what;
    for (int i = 0; i < ACCEPTS_PER_WAKEUP; i++) {
        if (!l->admin && s->nclients >= s->cfg->max_connections) {
            /* new connections wait in the backlog until we are below the limit */
            pause_listeners(s, 1);
            return;
        }
        struct sockaddr_storage peer;
        socklen_t plen = sizeof(peer);
        int cfd = accept4(fd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno == EMFILE || errno == ENFILE) {
                sf_warn("accept on %s: %s; pausing until a connection closes", l->name,
                        strerror(errno));
                if (s->nclients > 0)
                    pause_listeners(s, 1);
            }
            return;
        }
        sf_session_accept(s, cfd, &peer, l->admin, l->tls);
    }
}

void sf_server_client_gone(sf_server *s)
{
    s->nclients--;
    if (s->listeners_paused && !s->draining && s->nclients < s->cfg->max_connections)
        pause_listeners(s, 0);
    if (s->draining && s->nclients == 0)
        event_base_loopexit(s->base, NULL);
}

static void close_listeners(sf_server *s, int admin_too)
{
    for (size_t i = 0; i < s->nlisteners; i++) {
        sf_listener *l = &s->listeners[i];
        if (l->fd < 0 || (l->admin && !admin_too))
            continue;
        event_del(&l->ev);
        close(l->fd);
        l->fd = -1;
    }
}

static void on_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
    sf_server *s = arg;
    (void)fd;
    (void)what;
    sf_warn("drain: %zu connection(s) still open after timeouts.drain; closing them", s->nclients);
    sf_session_close_all(s);
    event_base_loopexit(s->base, NULL);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    sf_server *s = arg;
    (void)what;
    if (sig == SIGHUP) {
        sf_server_reload(s, "signal");
        return;
    }
    if (sig == SIGUSR1) {
        /* the writer thread reopens it once the lines logged so far are written */
        sf_accesslog_reopen(s->alog);
        if (s->alog != NULL)
            sf_info("SIGUSR1: reopening the access log");
        return;
    }
    if (s->draining) {
        sf_warn("%s again: closing %zu connection(s) now", strsignal((int)sig), s->nclients);
        sf_session_close_all(s);
        event_base_loopexit(s->base, NULL);
        return;
    }
    s->draining = 1;
    sf_info("%s: draining %zu connection(s), up to %llums", strsignal((int)sig), s->nclients,
            (unsigned long long)s->cfg->drain_ms);
    close_listeners(s, 0); /* admin stays up so /readyz can say 503 */
    sf_session_drain(s);
    if (s->nclients == 0) {
        event_base_loopexit(s->base, NULL);
        return;
    }
    struct timeval tv = {(time_t)(s->cfg->drain_ms / 1000),
                         (suseconds_t)((s->cfg->drain_ms % 1000) * 1000)};
    evtimer_assign(&s->drain_ev, s->base, on_drain_timeout, s);
    event_add(&s->drain_ev, &tv);
}

static int open_listener(sf_server *s, sf_listener *l, const char *address, int admin, char *err,
                         size_t errlen)
{
    struct sockaddr_storage addr;
    socklen_t alen;
    l->srv = s;
    l->fd = -1;
    l->admin = admin;
    snprintf(l->name, sizeof(l->name), "%s%s", address,
             admin            ? " (admin)"
             : l->tls != NULL ? " (TLS)"
                              : "");
    if (sf_addr_parse(address, &addr, &alen, err, errlen) < 0)
        return -1;
    l->fd = sf_listen_socket(&addr, alen, LISTEN_BACKLOG);
    if (l->fd < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", l->name, strerror(errno));
        return -1;
    }
    event_assign(&l->ev, s->base, l->fd, EV_READ | EV_PERSIST, on_accept, l);
    return 0;
}

/* A backend's pool (and TLS context for https). fn NULL: the monolith. */
static void upstream_unref(sf_upstream *u)
{
    if (u == NULL || --u->refs > 0)
        return;
    sf_pool_destroy(u->pool);
    SSL_CTX_free(u->tls);
    free(u->key);
    free(u);
}

/* The upstream with this key in prev (the runtime being replaced), or NULL. */
static sf_upstream *find_upstream(const sf_runtime *prev, const char *key)
{
    if (prev == NULL)
        return NULL;
    if (prev->legacy.upstream != NULL && strcmp(prev->legacy.upstream->key, key) == 0)
        return prev->legacy.upstream;
    for (size_t i = 0; i < prev->nfns; i++)
        if (prev->fns[i].upstream != NULL && strcmp(prev->fns[i].upstream->key, key) == 0)
            return prev->fns[i].upstream;
    return NULL;
}

static sf_upstream *upstream_create(sf_server *s, const char *key, const char *name,
                                    const sf_upstream_url *url, const char *ca, int verify,
                                    char *err, size_t errlen)
{
    struct sockaddr_storage addr;
    socklen_t alen;
    char why[256], label[160];
    sf_upstream *u = calloc(1, sizeof(*u));
    if (u == NULL || (u->key = strdup(key)) == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    u->refs = 1;
    if (sf_addr_resolve(url->host, url->port, &addr, &alen, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "%s (%s): %s", name, url->url, why);
        goto fail;
    }
    sf_pool_tls tls = {NULL, url->host};
    if (url->tls) {
        u->tls = sf_tls_client_ctx(ca, verify, why, sizeof(why));
        if (u->tls == NULL) {
            snprintf(err, errlen, "%s (%s): %s", name, url->url, why);
            goto fail;
        }
        tls.ctx = u->tls;
    }
    snprintf(label, sizeof(label), "%s (%s)", name, url->authority);
    u->pool = sf_pool_create(s->base, &addr, alen, label, POOL_MAX_IDLE, POOL_IDLE_MS,
                             url->tls ? &tls : NULL);
    if (u->pool == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    return u;
fail:
    upstream_unref(u);
    return NULL;
}

/* A backend of a new runtime: its upstream taken over from prev when nothing about the
 * connection changed (no new name resolution, warm pool, TLS sessions kept), else new. */
static int backend_init(sf_server *s, sf_backend *b, const sf_function *fn,
                        const sf_upstream_url *url, const sf_runtime *prev, char *err,
                        size_t errlen)
{
    char key[1024];
    const char *ca = fn != NULL ? fn->tls_ca : NULL;
    int verify = fn != NULL ? fn->tls_verify : 1;
    b->fn = fn;
    if (fn != NULL)
        snprintf(b->name, sizeof(b->name), "function %s", fn->name);
    else
        snprintf(b->name, sizeof(b->name), "legacy");
    snprintf(key, sizeof(key), "%s\n%s\n%s\n%d", b->name, url->url, ca ? ca : "", verify);
    b->upstream = find_upstream(prev, key);
    if (b->upstream != NULL)
        b->upstream->refs++;
    else
        b->upstream = upstream_create(s, key, b->name, url, ca, verify, err, errlen);
    if (b->upstream == NULL)
        return -1;
    b->pool = b->upstream->pool;
    b->tv_response = s->tv_up_response;
    if (fn != NULL && fn->timeout_ms > 0) {
        b->tv_own.tv_sec = (time_t)(fn->timeout_ms / 1000);
        b->tv_own.tv_usec = (suseconds_t)((fn->timeout_ms % 1000) * 1000);
        /* libevent keeps at most 256 common durations per base: past that, a plain one */
        b->tv_response = common_tv(s->base, fn->timeout_ms);
        if (b->tv_response == NULL)
            b->tv_response = &b->tv_own;
    }
    return 0;
}

static void backend_dispose(sf_backend *b)
{
    upstream_unref(b->upstream);
    memset(b, 0, sizeof(*b));
}

int sf_server_set_cutover(sf_server *s, const char *route, uint32_t bp, const char *action,
                          const char *reason, const char *actor, const char *trigger,
                          sf_edit_result *res, int *applied, char *err, size_t errlen)
{
    *applied = 0;
    int rc = sf_routes_set_cutover(s->cfg->routes_file, route, bp, res, err, errlen);
    if (rc < 0 || !res->changed)
        return rc;
    sf_audit_entry e = {
        .route = route,
        .from_bp = res->old_bp,
        .to_bp = bp,
        .action = action,
        .reason = reason,
        .actor = actor,
        .version = res->version,
    };
    char aerr[256], from[16], to[16];
    if (sf_audit_append(s->cfg->audit_log, &e, aerr, sizeof(aerr)) < 0)
        sf_error("%s of %s was saved but not audited: %s", action, route, aerr);
    sf_format_percent(res->old_bp, from, sizeof(from));
    sf_format_percent(bp, to, sizeof(to));
    sf_info("%s %s (%s): cutover %s%% -> %s%%%s%s", action, route, actor, from, to,
            reason ? ", reason: " : "", reason ? reason : "");
    *applied = sf_server_reload(s, trigger) >= 0;
    return 0;
}

sf_diffs *sf_server_diffs(sf_server *s)
{
    return s->diffs;
}

uint64_t sf_mono_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec;
}

double sf_wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A runtime for table (taking its reference): every backend's pool built. NULL with a reason in
 * err when a backend cannot be set up (name resolution, TLS context). */
static sf_runtime *runtime_create(sf_server *s, sf_route_table *table, const sf_runtime *prev,
                                  char *err, size_t errlen)
{
    sf_runtime *rt = calloc(1, sizeof(*rt));
    if (rt == NULL) {
        sf_table_unref(table);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    rt->refs = 1;
    rt->table = table;
    rt->loaded_at = sf_wall_now();
    if (backend_init(s, &rt->legacy, NULL, sf_table_legacy(table), prev, err, errlen) < 0)
        goto fail;
    size_t nfn;
    const sf_function *fns = sf_table_functions(table, &nfn);
    if (nfn > 0) {
        rt->fns = calloc(nfn, sizeof(*rt->fns));
        if (rt->fns == NULL) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
    }
    for (size_t i = 0; i < nfn; i++) {
        rt->nfns = i + 1;
        if (backend_init(s, &rt->fns[i], &fns[i], &fns[i].url, prev, err, errlen) < 0)
            goto fail;
    }
    /* a route keeps its stats slot (by name) across reloads */
    size_t nr;
    const sf_route *routes = sf_table_routes(table, &nr);
    rt->route_slot = calloc(nr ? nr : 1, sizeof(*rt->route_slot));
    if (rt->route_slot == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < nr; i++) {
        rt->route_slot[i] = sf_stats_slot(s->stats, routes[i].name);
        /* a guard comparing p99s needs them per window */
        if (rt->route_slot[i] >= 0 && routes[i].guard.enabled &&
            routes[i].guard.max_p99_ratio > 0 &&
            sf_stats_window_latency(s->stats, rt->route_slot[i]) < 0)
            rt->route_slot[i] = -1;
        if (rt->route_slot[i] < 0) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
    }
    return rt;
fail:
    sf_runtime_unref(rt);
    return NULL;
}

sf_runtime *sf_runtime_ref(sf_runtime *rt)
{
    rt->refs++;
    return rt;
}

void sf_runtime_unref(sf_runtime *rt)
{
    if (rt == NULL || --rt->refs > 0)
        return;
    backend_dispose(&rt->legacy);
    for (size_t i = 0; i < rt->nfns; i++)
        backend_dispose(&rt->fns[i]);
    free(rt->fns);
    free(rt->route_slot);
    sf_table_unref(rt->table);
    free(rt);
}

static void reload_result_clear(sf_reload_result *r)
{
    free(r->error);
    sf_diff_free(r->changes, r->nchanges);
    r->error = NULL;
    r->changes = NULL;
    r->nchanges = 0;
}

SSL_CTX *sf_server_listener_tls(const sf_settings *cfg, const sf_listen_conf *l, char *err,
                                size_t errlen)
{
    char why[768];
    int at;
    SSL_CTX *ctx = sf_tls_server_ctx(l->tls_cert, l->tls_key, &at, why, sizeof(why));
    if (ctx == NULL) {
        int key = at == SF_TLS_AT_KEY;
        snprintf(err, errlen, "%s:%d:%d: listen %s: %s", cfg->path,
                 key ? l->key_line : l->cert_line, key ? l->key_col : l->cert_col, l->address, why);
    }
    return ctx;
}

/* Loads a TLS listener's certificate and key when their files changed since they were
 * loaded: new connections get the new context, connections in progress keep theirs (each
 * SSL holds a reference to its context); if they do not load, the running ones stay. The
 * digest check keeps the context (its session cache and ticket keys, so resumption) across
 * the many reloads that change no certificate. */
static void reload_certs(sf_server *s, const char *trigger)
{
    for (size_t i = 0; i < s->nlisteners; i++) {
        sf_listener *l = &s->listeners[i];
        unsigned char digest[32] = {0};
        char err[1024], desc[256];
        if (l->tls == NULL)
            continue;
        /* unreadable files leave the digest zero: the load below says why */
        if (sf_tls_files_digest(l->conf->tls_cert, l->conf->tls_key, digest) == 0 &&
            memcmp(digest, l->tls_digest, sizeof(digest)) == 0) {
            sf_debug("reload (%s): listener %s: certificate and key unchanged", trigger,
                     l->conf->address);
            continue;
        }
        SSL_CTX *ctx = sf_server_listener_tls(s->cfg, l->conf, err, sizeof(err));
        if (ctx == NULL) {
            sf_error("reload (%s) kept the TLS certificate of listener %s: %s", trigger,
                     l->conf->address, err);
            continue;
        }
        SSL_CTX_free(l->tls);
        l->tls = ctx;
        memcpy(l->tls_digest, digest, sizeof(digest));
        sf_tls_ctx_describe(ctx, desc, sizeof(desc));
        sf_info("reload (%s): listener %s: new TLS certificate %s", trigger, l->conf->address,
                desc);
    }
}

int sf_server_reload(sf_server *s, const char *trigger)
{
    sf_reload_result *r = &s->last_reload;
    const char *file = s->cfg->routes_file;
    sf_route_table *old = s->rt->table;
    sf_diags d;
    char err[512];
    if (strcmp(trigger, "signal") == 0 || strcmp(trigger, "api") == 0 ||
        strcmp(trigger, "cli") == 0)
        reload_certs(s, trigger);
    sf_diags_init(&d);
    sf_route_table *t = sf_table_load(file, &d);
    for (size_t i = 0; i < d.n; i++)
        sf_warn("reload (%s): %s", trigger, d.lines[i]);
    if (t != NULL && strcmp(sf_table_version(t), sf_table_version(old)) == 0) {
        /* The same bytes: keep the runtime, and the last reload's record unless that one
         * failed (the file is back to what runs). A watcher firing after an API edit that was
         * already applied lands here. */
        sf_diags_dispose(&d);
        sf_table_unref(t);
        /* a reload someone asked for succeeded; the watcher's echo of one is no reload */
        if (strcmp(trigger, "file") != 0 || r->ok == 0)
            s->reloads_ok++;
        if (r->ok != 1) {
            reload_result_clear(r);
            r->ok = 1;
            r->at = sf_wall_now();
            snprintf(r->trigger, sizeof(r->trigger), "%s", trigger);
        }
        if (strcmp(trigger, "file") == 0)
            sf_debug("reload (file): %s unchanged (version %s)", file, sf_table_version(old));
        else
            sf_info("reload (%s): %s unchanged (version %s)", trigger, file, sf_table_version(old));
        return 1;
    }
    reload_result_clear(r);
    r->at = sf_wall_now();
    snprintf(r->trigger, sizeof(r->trigger), "%s", trigger);
    if (t == NULL) {
        const char *first = sf_diags_first_error(&d);
        r->ok = 0;
        r->error = strdup(first != NULL ? first : "the routes file could not be loaded");
        s->reloads_failed++;
        sf_error("reload (%s) rejected %s with %d error(s); still running version %s", trigger,
                 file, d.errors, sf_table_version(old));
        sf_diags_dispose(&d);
        return -1;
    }
    sf_diags_dispose(&d);
    r->nchanges = sf_table_diff(old, t, &r->changes);
    sf_runtime *rt = runtime_create(s, t, s->rt, err, sizeof(err));
    if (rt == NULL) {
        sf_diff_free(r->changes, r->nchanges);
        r->changes = NULL;
        r->nchanges = 0;
        r->ok = 0;
        r->error = strdup(err);
        s->reloads_failed++;
        sf_error("reload (%s) rejected %s: %s; still running version %s", trigger, file, err,
                 sf_table_version(old));
        return -1;
    }
    sf_info("reload (%s): %s version %s -> %s", trigger, file, sf_table_version(old),
            sf_table_version(t));
    for (size_t i = 0; i < r->nchanges; i++)
        sf_info("reload: %s", r->changes[i]);
    if (r->nchanges == 0)
        sf_info("reload: no change to routing (comments or formatting only)");
    sf_runtime *prev = s->rt;
    s->rt = rt;
    sf_runtime_unref(prev); /* freed once the last request that started on it ends */
    r->ok = 1;
    s->reloads_ok++;
    return 0;
}

static void on_guard_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sf_guard_tick(arg, sf_mono_sec());
}

static void on_routes_changed(void *arg)
{
    sf_server_reload(arg, "file");
}

sf_server *sf_server_create(sf_settings *cfg, sf_route_table *table, char *err, size_t errlen)
{
    sf_server *s = calloc(1, sizeof(*s));
    struct event_config *ec = NULL;
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        sf_table_unref(table);
        return NULL;
    }
    s->cfg = cfg;
    TAILQ_INIT(&s->clients);
    seed_rng(s);

    ec = event_config_new();
    if (ec == NULL)
        goto oom;
    event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK);
    event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    s->base = event_base_new_with_config(ec);
    event_config_free(ec);
    if (s->base == NULL)
        goto oom;

    s->limits.max_head_bytes = cfg->max_header_bytes;
    s->limits.max_headers = cfg->max_headers;
    s->hdrs_cap = cfg->max_headers;
    s->hdrs = calloc(s->hdrs_cap, sizeof(*s->hdrs));
    if (s->hdrs == NULL)
        goto oom;
    s->tv_client_header = common_tv(s->base, cfg->client_header_ms);
    s->tv_client_body = common_tv(s->base, cfg->client_body_ms);
    s->tv_keepalive = common_tv(s->base, cfg->keepalive_ms);
    s->tv_up_connect = common_tv(s->base, cfg->upstream_connect_ms);
    s->tv_up_response = common_tv(s->base, cfg->upstream_response_ms);
    s->tv_linger = common_tv(s->base, LINGER_MS);

    /* the normalized path is never longer than the head; a function's target adds its URL
     * prefix and what a rewrite adds */
    s->pathbuf = malloc(cfg->max_header_bytes + 1);
    s->targetbuf_cap = 2 * cfg->max_header_bytes + 4096;
    s->targetbuf = malloc(s->targetbuf_cap);
    s->md = sf_match_data_create();
    s->stats = sf_stats_create();
    s->shadows = sf_shadows_create();
    s->diffs = sf_diffs_create();
    s->guards = sf_guards_create();
    if (s->pathbuf == NULL || s->targetbuf == NULL || s->md == NULL || s->stats == NULL ||
        s->shadows == NULL || s->diffs == NULL || s->guards == NULL)
        goto oom;
    /* the ring's clock, and every route's slot before the first request */
    s->started_mono = sf_mono_sec();
    s->started_wall = sf_wall_now();
    s->default_slot = sf_stats_slot(s->stats, "_default");
    if (s->default_slot < 0)
        goto oom;
    s->rt = runtime_create(s, table, NULL, err, errlen);
    table = NULL; /* the runtime has it, or freed it */
    if (s->rt == NULL)
        goto fail;
    s->last_reload.ok = -1;
    char werr[256];
    s->watch = sf_watch_create(s->base, cfg->routes_file, WATCH_DEBOUNCE_MS, on_routes_changed, s,
                               werr, sizeof(werr));
    if (s->watch == NULL)
        sf_warn("not watching %s for changes (%s): reload with SIGHUP or strangler reload",
                cfg->routes_file, werr);

    if (cfg->access_log != NULL) {
        s->alog = sf_accesslog_open(s->base, cfg->access_log, err, errlen);
        if (s->alog == NULL)
            goto fail;
    }

    /* the proxy listeners, then the admin one */
    size_t n = cfg->nlisten + 1;
    s->listeners = calloc(n, sizeof(*s->listeners));
    if (s->listeners == NULL)
        goto oom;
    /* every certificate loads before any port is bound */
    for (size_t i = 0; i < cfg->nlisten; i++) {
        sf_listener *l = &s->listeners[i];
        l->fd = -1;
        l->conf = &cfg->listen[i];
        s->nlisteners = i + 1;
        if (l->conf->tls_cert == NULL)
            continue;
        /* unreadable files leave the digest zero: the load below says why */
        (void)sf_tls_files_digest(l->conf->tls_cert, l->conf->tls_key, l->tls_digest);
        l->tls = sf_server_listener_tls(cfg, l->conf, err, errlen);
        if (l->tls == NULL)
            goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        const char *address = i < cfg->nlisten ? cfg->listen[i].address : cfg->admin_address;
        int rc = open_listener(s, &s->listeners[i], address, i == cfg->nlisten, err, errlen);
        s->nlisteners = i + 1;
        if (rc < 0)
            goto fail;
    }
    for (size_t i = 0; i < n; i++)
        event_add(&s->listeners[i].ev, NULL);

    static const struct timeval second = {1, 0};
    event_assign(&s->guard_ev, s->base, -1, EV_PERSIST, on_guard_tick, s);
    event_add(&s->guard_ev, &second);

    int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGUSR1};
    for (size_t i = 0; i < 4; i++) {
        s->sig_ev[i] = evsignal_new(s->base, sigs[i], on_signal, s);
        if (s->sig_ev[i] == NULL || event_add(s->sig_ev[i], NULL) < 0)
            goto oom;
    }
    signal(SIGPIPE, SIG_IGN);
    return s;
oom:
    snprintf(err, errlen, "out of memory");
fail:
    sf_table_unref(table); /* NULL once the runtime took it */
    sf_server_destroy(s);
    return NULL;
}

int sf_server_run(sf_server *s)
{
    const sf_route_table *t = s->rt->table;
    for (size_t i = 0; i < s->nlisteners; i++) {
        const sf_listener *l = &s->listeners[i];
        char desc[256];
        if (l->tls != NULL) {
            sf_tls_ctx_describe(l->tls, desc, sizeof(desc));
            sf_info("listening on %s, certificate %s", l->name, desc);
        } else {
            sf_info("listening on %s", l->name);
        }
    }
    size_t nroutes;
    sf_table_routes(t, &nroutes);
    sf_info("legacy backend %s; %zu function(s), %zu route(s) from %s (version %s)",
            sf_table_legacy(t)->url, s->rt->nfns, nroutes, s->cfg->routes_file,
            sf_table_version(t));
    if (event_base_dispatch(s->base) < 0) {
        sf_error("event loop failed");
        return 1;
    }
    sf_info("stopped");
    return 0;
}

void sf_server_destroy(sf_server *s)
{
    if (s == NULL)
        return;
    close_listeners(s, 1);
    for (size_t i = 0; i < s->nlisteners; i++)
        SSL_CTX_free(s->listeners[i].tls);
    free(s->listeners);
    sf_session_close_all(s);
    if (s->drain_ev.ev_base != NULL)
        event_del(&s->drain_ev);
    for (size_t i = 0; i < 4; i++)
        if (s->sig_ev[i] != NULL)
            event_free(s->sig_ev[i]);
    sf_watch_destroy(s->watch);
    sf_runtime_unref(s->rt);
    reload_result_clear(&s->last_reload);
    if (s->md != NULL)
        pcre2_match_data_free(s->md);
    free(s->pathbuf);
    free(s->targetbuf);
    if (s->guard_ev.ev_base != NULL)
        event_del(&s->guard_ev);
    sf_guards_destroy(s->guards);
    sf_shadows_destroy(s->shadows); /* before the access log: their lines go out first */
    sf_diffs_destroy(s->diffs);
    sf_accesslog_close(s->alog);
    sf_stats_destroy(s->stats);
    json_decref(s->audit.last_actions);
    json_decref(s->audit.rollbacks);
    free(s->hdrs);
    if (s->base != NULL)
        event_base_free(s->base);
    free(s);
}
