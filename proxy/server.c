/* The server: its workers' event loops, their listeners (proxy, and admin on the primary),
 * the upstream pools, signals, reloads handed to every worker, and the drain on SIGTERM/SIGINT. */
#include "server.h"

#include <errno.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
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
/* Paused at max_connections, a worker looks this often whether another worker's clients left. */
#define RESUME_CHECK_MS 20
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

/* ---- workers' inboxes ---- */

struct sf_inbox {
    pthread_mutex_t mu;
    int efd; /* eventfd: a message is waiting */
    struct event ev;
    pthread_t thread; /* a worker's */
    int started;      /* the thread runs (joined by sf_server_run) */
    /* Under mu. For a worker: what the primary asks of it; for the primary: worker exits. */
    sf_route_table *table; /* the table to run next (one reference), NULL: none */
    SSL_CTX **tls;         /* by listener: the certificate context to serve next (one reference) */
    size_t ntls;
    int reopen_log, drain, close_now;
    unsigned exited; /* primary: workers whose loop ended */
};

static void inbox_wake(struct sf_inbox *in)
{
    uint64_t one = 1;
    ssize_t w = write(in->efd, &one, sizeof(one));
    (void)w; /* the counter cannot overflow here; a wakeup already pending does as well */
}

static void on_inbox(evutil_socket_t fd, short what, void *arg);

static int inbox_create(sf_server *s, size_t ntls)
{
    struct sf_inbox *in = calloc(1, sizeof(*in));
    if (in == NULL)
        return -1;
    in->efd = -1;
    s->inbox = in;
    if (pthread_mutex_init(&in->mu, NULL) != 0) {
        free(in);
        s->inbox = NULL;
        return -1;
    }
    in->tls = ntls > 0 ? calloc(ntls, sizeof(*in->tls)) : NULL;
    in->ntls = ntls;
    in->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if ((ntls > 0 && in->tls == NULL) || in->efd < 0)
        return -1;
    event_assign(&in->ev, s->base, in->efd, EV_READ | EV_PERSIST, on_inbox, s);
    return event_add(&in->ev, NULL);
}

static void inbox_destroy(struct sf_inbox *in)
{
    if (in == NULL)
        return;
    if (in->ev.ev_base != NULL)
        event_del(&in->ev);
    if (in->efd >= 0)
        close(in->efd);
    sf_table_unref(in->table);
    for (size_t i = 0; in->tls != NULL && i < in->ntls; i++)
        SSL_CTX_free(in->tls[i]);
    free(in->tls);
    pthread_mutex_destroy(&in->mu);
    free(in);
}

/* A message: f fills in the inbox's fields (called with its lock held). */
typedef void (*post_fn)(struct sf_inbox *in, void *arg);

/* Posts a message to every worker of primary p but itself, and wakes each. */
static void post_all(sf_server *p, post_fn f, void *arg)
{
    for (unsigned i = 1; p->workers != NULL && i < p->nworkers; i++) {
        struct sf_inbox *in = p->workers[i]->inbox;
        pthread_mutex_lock(&in->mu);
        f(in, arg);
        pthread_mutex_unlock(&in->mu);
        inbox_wake(in);
    }
}

static void post_table(struct sf_inbox *in, void *arg)
{
    sf_table_unref(in->table); /* one the worker has not taken yet */
    in->table = sf_table_ref(arg);
}

typedef struct {
    size_t listener;
    SSL_CTX *ctx;
} tls_msg;

static void post_tls(struct sf_inbox *in, void *arg)
{
    const tls_msg *m = arg;
    SSL_CTX_up_ref(m->ctx);
    SSL_CTX_free(in->tls[m->listener]);
    in->tls[m->listener] = m->ctx;
}

static void post_reopen(struct sf_inbox *in, void *arg)
{
    (void)arg;
    in->reopen_log = 1;
}

static void post_drain(struct sf_inbox *in, void *arg)
{
    (void)arg;
    in->drain = 1;
}

static void post_close(struct sf_inbox *in, void *arg)
{
    (void)arg;
    in->close_now = 1;
}

static int workers_exited(sf_server *p)
{
    if (p->inbox == NULL)
        return 1;
    pthread_mutex_lock(&p->inbox->mu);
    unsigned n = p->inbox->exited;
    pthread_mutex_unlock(&p->inbox->mu);
    return n + 1 >= p->nworkers;
}

/* Ends s's loop once it is draining and has no client left (the primary also waits for the
 * other workers' loops, so that the admin API answers until the last of them is done). */
static void maybe_stop(sf_server *s)
{
    if (s->draining && s->nclients == 0 && (s->primary != s || workers_exited(s)))
        event_base_loopexit(s->base, NULL);
}

static const struct timeval resume_check = {0, RESUME_CHECK_MS * 1000};

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
    /* a connection another worker closes frees a place here too: look again soon */
    if (s->nworkers > 1 && pause)
        event_add(&s->resume_ev, &resume_check);
    else if (s->resume_ev.ev_base != NULL)
        event_del(&s->resume_ev);
}

static int below_limit(sf_server *s)
{
    return atomic_load_explicit(s->nclients_all, memory_order_relaxed) < s->cfg->max_connections;
}

static void on_resume_check(evutil_socket_t fd, short what, void *arg)
{
    sf_server *s = arg;
    (void)fd;
    (void)what;
    if (!s->listeners_paused || s->draining)
        return;
    if (below_limit(s)) {
        pause_listeners(s, 0);
    } else {
        event_add(&s->resume_ev, &resume_check);
    }
}

static void on_accept(evutil_socket_t fd, short what, void *arg)
{
    sf_listener *l = arg;
    sf_server *s = l->srv;
    (void)what;
    for (int i = 0; i < ACCEPTS_PER_WAKEUP; i++) {
        /* max_connections counts every worker's clients: a place is taken before the accept */
        uint64_t before = atomic_fetch_add_explicit(s->nclients_all, 1, memory_order_relaxed);
        if (!l->admin && before >= s->cfg->max_connections) {
            atomic_fetch_sub_explicit(s->nclients_all, 1, memory_order_relaxed);
            /* new connections wait in the backlog until we are below the limit */
            pause_listeners(s, 1);
            return;
        }
        struct sockaddr_storage peer;
        socklen_t plen = sizeof(peer);
        int cfd = accept4(fd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            atomic_fetch_sub_explicit(s->nclients_all, 1, memory_order_relaxed);
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
    atomic_fetch_sub_explicit(s->nclients_all, 1, memory_order_relaxed);
    if (s->listeners_paused && !s->draining && below_limit(s))
        pause_listeners(s, 0);
    maybe_stop(s);
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

/* Stops accepting (the admin listener stays so /readyz can say 503) and closes idle clients;
 * busy ones close after their response. */
static void start_drain(sf_server *s)
{
    s->draining = 1;
    close_listeners(s, 0);
    sf_session_drain(s);
    maybe_stop(s);
}

/* The primary at the end of timeouts.drain, or at a second signal: every worker closes its
 * connections now. */
static void stop_now(sf_server *s)
{
    sf_session_close_all(s);
    post_all(s, post_close, NULL);
    event_base_loopexit(s->base, NULL);
}

static void on_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
    sf_server *s = arg;
    (void)fd;
    (void)what;
    sf_warn("drain: %zu connection(s) still open after timeouts.drain; closing them%s", s->nclients,
            s->nworkers > 1 ? " (and the other workers' too)" : "");
    stop_now(s);
}

static void reload_certs(sf_server *s, const char *trigger);
static sf_runtime *runtime_create(sf_server *s, sf_route_table *table, const sf_runtime *prev,
                                  char *err, size_t errlen);

/* A worker's messages from the primary; the primary's: a worker's loop ended. */
static void on_inbox(evutil_socket_t fd, short what, void *arg)
{
    sf_server *s = arg;
    struct sf_inbox *in = s->inbox;
    uint64_t n;
    (void)what;
    ssize_t r = read(fd, &n, sizeof(n));
    (void)r; /* EAGAIN: another wakeup took it; the fields below tell what is waiting */
    if (s->primary == s) {
        maybe_stop(s);
        return;
    }
    pthread_mutex_lock(&in->mu);
    sf_route_table *t = in->table;
    in->table = NULL;
    for (size_t i = 0; i < in->ntls && i < s->nlisteners; i++) {
        if (in->tls[i] == NULL)
            continue;
        SSL_CTX_free(s->listeners[i].tls); /* connections keep theirs */
        s->listeners[i].tls = in->tls[i];
        in->tls[i] = NULL;
    }
    int reopen = in->reopen_log, drain = in->drain && !s->draining, close_now = in->close_now;
    in->reopen_log = 0;
    pthread_mutex_unlock(&in->mu);
    if (t != NULL) {
        char err[512];
        /* the same table on every worker, so the same outcome as the primary's, but for a
         * name that no longer resolves in the moment between them */
        sf_runtime *rt = runtime_create(s, t, s->rt, err, sizeof(err));
        if (rt == NULL) {
            sf_error("worker %u keeps routes version %s: %s", s->worker_id,
                     sf_table_version(s->rt->table), err);
        } else {
            sf_runtime *prev = s->rt;
            s->rt = rt;
            sf_runtime_unref(prev);
        }
    }
    if (reopen)
        sf_accesslog_reopen(s->alog);
    if (close_now) {
        sf_session_close_all(s);
        event_base_loopexit(s->base, NULL);
    } else if (drain) {
        start_drain(s);
    }
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
        post_all(s, post_reopen, NULL);
        if (s->alog != NULL)
            sf_info("SIGUSR1: reopening the access log");
        return;
    }
    if (s->draining) {
        sf_warn("%s again: closing %zu connection(s) now%s", strsignal((int)sig), s->nclients,
                s->nworkers > 1 ? " (and the other workers' too)" : "");
        stop_now(s);
        return;
    }
    sf_info("%s: draining %zu connection(s)%s, up to %llums", strsignal((int)sig), s->nclients,
            s->nworkers > 1 ? " on the primary worker and the others'" : "",
            (unsigned long long)s->cfg->drain_ms);
    post_all(s, post_drain, NULL);
    start_drain(s);
    struct timeval tv = {(time_t)(s->cfg->drain_ms / 1000),
                         (suseconds_t)((s->cfg->drain_ms % 1000) * 1000)};
    evtimer_assign(&s->drain_ev, s->base, on_drain_timeout, s);
    event_add(&s->drain_ev, &tv);
}

static int open_listener(sf_server *s, sf_listener *l, const char *address, int admin, int flags,
                         char *err, size_t errlen)
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
    if (flags & SF_LISTEN_PROBE) {
        /* SO_REUSEPORT would let this bind beside another process that listens there with it
         * (a second strangler): first make sure nobody does */
        int probe = sf_listen_socket(&addr, alen, 0, SF_LISTEN_PROBE);
        if (probe < 0) {
            snprintf(err, errlen, "cannot listen on %s: %s", l->name, strerror(errno));
            return -1;
        }
        close(probe);
        flags &= ~SF_LISTEN_PROBE;
    }
    l->fd = sf_listen_socket(&addr, alen, LISTEN_BACKLOG, flags);
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
    return s->primary->diffs;
}

sf_stats *sf_server_stats_view(sf_server *s)
{
    if (s->nworkers <= 1)
        return s->stats;
    sf_stats_destroy(s->view);
    s->view = sf_stats_create();
    if (s->view == NULL)
        return s->stats; /* out of memory: the primary's share at least */
    /* the primary's shard first: its slot numbers stay those of its runtime */
    for (unsigned i = 0; i < s->nworkers; i++)
        if (sf_stats_merge(s->view, s->workers[i]->stats) < 0)
            sf_warn("stats: out of memory merging worker %u's numbers", i);
    return s->view;
}

void sf_server_count_rejected(sf_server *s, int status)
{
    int cls = status / 100 < 6 ? status / 100 : 0;
    atomic_fetch_add_explicit(&s->rejected[cls], 1, memory_order_relaxed);
}

void sf_server_rejected(sf_server *s, uint64_t out[6])
{
    for (int c = 0; c < 6; c++) {
        out[c] = 0;
        for (unsigned i = 0; i < s->nworkers; i++)
            out[c] += atomic_load_explicit(&s->workers[i]->rejected[c], memory_order_relaxed);
    }
}

void sf_server_accesslog_counts(sf_server *s, uint64_t *written, uint64_t *dropped)
{
    *written = *dropped = 0;
    for (unsigned i = 0; i < s->nworkers; i++) {
        *written += sf_accesslog_written(s->workers[i]->alog);
        *dropped += sf_accesslog_dropped(s->workers[i]->alog);
    }
}

json_t *sf_server_noise_paths(sf_server *s, const char *route, size_t max)
{
    json_t *arr = json_array();
    for (unsigned i = 0; arr != NULL && i < s->nworkers; i++)
        sf_shadows_noise_collect(s->workers[i]->shadows, route, arr, max);
    return arr;
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

/* Primary p's counter of route name's shadows in flight (made on first use, kept until the
 * end). NULL when out of memory. */
static sf_inflight *route_shadows(sf_server *p, const char *name)
{
    sf_inflight *c = NULL;
    pthread_mutex_lock(&p->route_shadows.mu);
    for (size_t i = 0; i < p->route_shadows.n && c == NULL; i++)
        if (strcmp(p->route_shadows.names[i], name) == 0)
            c = p->route_shadows.counts[i];
    if (c == NULL) {
        size_t n = p->route_shadows.n + 1;
        char **names = realloc(p->route_shadows.names, n * sizeof(*names));
        if (names != NULL)
            p->route_shadows.names = names;
        sf_inflight **counts =
            names != NULL ? realloc(p->route_shadows.counts, n * sizeof(*counts)) : NULL;
        if (counts != NULL) {
            p->route_shadows.counts = counts;
            c = calloc(1, sizeof(*c));
            names[n - 1] = strdup(name);
            if (c == NULL || names[n - 1] == NULL) {
                free(names[n - 1]);
                free(c);
                c = NULL;
            } else {
                counts[n - 1] = c;
                p->route_shadows.n = n;
            }
        }
    }
    pthread_mutex_unlock(&p->route_shadows.mu);
    return c;
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
    rt->shadows_inflight = calloc(nr ? nr : 1, sizeof(*rt->shadows_inflight));
    if (rt->route_slot == NULL || rt->shadows_inflight == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < nr; i++) {
        rt->shadows_inflight[i] = route_shadows(s->primary, routes[i].name);
        if (rt->shadows_inflight[i] == NULL) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
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
    free(rt->shadows_inflight);
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
        tls_msg m = {i, ctx};
        post_all(s, post_tls, &m);
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
    sf_runtime_unref(prev);     /* freed once the last request that started on it ends */
    post_all(s, post_table, t); /* each worker builds its runtime (its own pools) from it */
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

/* What every worker has: its loop, scratch buffers, timeouts, stats shard, shadows, and its
 * shares of the limits. */
static int loop_init(sf_server *s, sf_settings *cfg, sf_server *primary, unsigned id,
                     unsigned nworkers)
{
    struct event_config *ec;
    s->cfg = cfg;
    s->primary = primary != NULL ? primary : s;
    s->worker_id = id;
    s->nworkers = nworkers;
    s->nclients_all = &s->primary->clients_all;
    s->shadows_inflight = &s->primary->shadows_inflight_all;
    if (s->primary == s) {
        if (pthread_mutex_init(&s->route_shadows.mu, NULL) != 0)
            return -1;
        s->route_shadows.ready = 1;
    }
    TAILQ_INIT(&s->clients);
    seed_rng(s);

    ec = event_config_new();
    if (ec == NULL)
        return -1;
    /* each base is used by its own thread only: messages come through the inbox's eventfd */
    event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK);
    event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    s->base = event_base_new_with_config(ec);
    event_config_free(ec);
    if (s->base == NULL)
        return -1;

    s->limits.max_head_bytes = cfg->max_header_bytes;
    s->limits.max_headers = cfg->max_headers;
    s->hdrs_cap = cfg->max_headers;
    s->hdrs = calloc(s->hdrs_cap, sizeof(*s->hdrs));
    if (s->hdrs == NULL)
        return -1;
    s->tv_client_header = common_tv(s->base, cfg->client_header_ms);
    s->tv_client_body = common_tv(s->base, cfg->client_body_ms);
    s->tv_keepalive = common_tv(s->base, cfg->keepalive_ms);
    s->tv_up_connect = common_tv(s->base, cfg->upstream_connect_ms);
    s->tv_up_response = common_tv(s->base, cfg->upstream_response_ms);
    s->tv_linger = common_tv(s->base, LINGER_MS);
    evtimer_assign(&s->resume_ev, s->base, on_resume_check, s);

    /* the normalized path is never longer than the head; a function's target adds its URL
     * prefix and what a rewrite adds */
    s->pathbuf = malloc(cfg->max_header_bytes + 1);
    s->targetbuf_cap = 2 * cfg->max_header_bytes + 4096;
    s->targetbuf = malloc(s->targetbuf_cap);
    s->md = sf_match_data_create();
    s->stats = sf_stats_create();
    s->shadows = sf_shadows_create(nworkers > 1);
    if (s->pathbuf == NULL || s->targetbuf == NULL || s->md == NULL || s->stats == NULL ||
        s->shadows == NULL)
        return -1;
    /* another thread merges a worker's shard */
    if (primary != NULL && sf_stats_share(s->stats) < 0)
        return -1;
    /* the ring's clock, and every route's slot before the first request */
    s->started_mono = sf_mono_sec();
    s->started_wall = sf_wall_now();
    s->default_slot = sf_stats_slot(s->stats, "_default");
    return s->default_slot < 0 ? -1 : 0;
}

/* The number of workers: workers, or with 0 (auto) the CPUs this process may run on. */
static unsigned worker_count(const sf_settings *cfg)
{
    if (cfg->workers > 0)
        return (unsigned)cfg->workers;
    cpu_set_t set;
    int n = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : 0;
    if (n <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c > 0 ? (int)c : 1;
    }
    return n > SF_WORKERS_MAX ? SF_WORKERS_MAX : (unsigned)n;
}

/* Worker id of primary p: its loop, a runtime of its own for the primary's table, its access-log
 * writer and its own listening socket on every proxy address (SO_REUSEPORT). */
static sf_server *worker_create(sf_server *p, unsigned id, char *err, size_t errlen)
{
    sf_settings *cfg = p->cfg;
    sf_server *w = calloc(1, sizeof(*w));
    if (w == NULL || loop_init(w, cfg, p, id, p->nworkers) < 0)
        goto oom;
    w->rt = runtime_create(w, sf_table_ref(p->rt->table), NULL, err, errlen);
    if (w->rt == NULL)
        goto fail;
    if (cfg->access_log != NULL) {
        w->alog = sf_accesslog_open(w->base, cfg->access_log, err, errlen);
        if (w->alog == NULL)
            goto fail;
    }
    w->listeners = calloc(cfg->nlisten ? cfg->nlisten : 1, sizeof(*w->listeners));
    if (w->listeners == NULL)
        goto oom;
    for (size_t i = 0; i < cfg->nlisten; i++) {
        sf_listener *l = &w->listeners[i];
        l->conf = &cfg->listen[i];
        l->tls = p->listeners[i].tls;
        if (l->tls != NULL)
            SSL_CTX_up_ref(l->tls);
        memcpy(l->tls_digest, p->listeners[i].tls_digest, sizeof(l->tls_digest));
        w->nlisteners = i + 1;
        if (open_listener(w, l, cfg->listen[i].address, 0, SF_LISTEN_REUSEPORT, err, errlen) < 0)
            goto fail;
        event_add(&l->ev, NULL);
    }
    if (inbox_create(w, w->nlisteners) < 0)
        goto oom;
    return w;
oom:
    snprintf(err, errlen, "out of memory");
fail:
    sf_server_destroy(w);
    return NULL;
}

sf_server *sf_server_create(sf_settings *cfg, sf_route_table *table, char *err, size_t errlen)
{
    sf_server *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        sf_table_unref(table);
        return NULL;
    }
    s->primary = s;
    unsigned nworkers = worker_count(cfg);
    s->workers = calloc(nworkers, sizeof(*s->workers));
    if (s->workers == NULL || loop_init(s, cfg, NULL, 0, nworkers) < 0)
        goto oom;
    s->workers[0] = s;
    s->diffs = sf_diffs_create();
    s->guards = sf_guards_create();
    if (s->diffs == NULL || s->guards == NULL)
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
        int admin = i == cfg->nlisten;
        const char *address = admin ? cfg->admin_address : cfg->listen[i].address;
        int flags = !admin && nworkers > 1 ? SF_LISTEN_REUSEPORT | SF_LISTEN_PROBE : 0;
        int rc = open_listener(s, &s->listeners[i], address, admin, flags, err, errlen);
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

    /* the other workers, once the primary holds every port: theirs join them */
    if (nworkers > 1 && inbox_create(s, 0) < 0)
        goto oom;
    for (unsigned i = 1; i < nworkers; i++) {
        s->workers[i] = worker_create(s, i, err, errlen);
        if (s->workers[i] == NULL)
            goto fail;
    }
    return s;
oom:
    snprintf(err, errlen, "out of memory");
fail:
    sf_table_unref(table); /* NULL once the runtime took it */
    sf_server_destroy(s);
    return NULL;
}

static void *worker_main(void *arg)
{
    sf_server *w = arg;
    if (event_base_dispatch(w->base) < 0)
        sf_error("worker %u: event loop failed", w->worker_id);
    struct sf_inbox *in = w->primary->inbox;
    pthread_mutex_lock(&in->mu);
    in->exited++;
    pthread_mutex_unlock(&in->mu);
    inbox_wake(in);
    return NULL;
}

/* Starts the other workers' threads, with every signal blocked in them: signals are the
 * primary's. */
static int start_workers(sf_server *s)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = 0;
    for (unsigned i = 1; i < s->nworkers; i++) {
        struct sf_inbox *in = s->workers[i]->inbox;
        int e = pthread_create(&in->thread, NULL, worker_main, s->workers[i]);
        if (e != 0) {
            sf_error("cannot start worker %u: %s", i, strerror(e));
            rc = -1;
            break;
        }
        in->started = 1;
        char name[16]; /* what top -H and /proc/PID/task/TID/comm show */
        snprintf(name, sizeof(name), "worker %u", i % 1000u);
        pthread_setname_np(in->thread, name);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

static void join_workers(sf_server *s)
{
    for (unsigned i = 1; s->workers != NULL && i < s->nworkers; i++) {
        sf_server *w = s->workers[i];
        if (w != NULL && w->inbox != NULL && w->inbox->started) {
            pthread_join(w->inbox->thread, NULL);
            w->inbox->started = 0;
        }
    }
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
    int rc = 0;
    if (start_workers(s) < 0) {
        rc = 1;
    } else if (s->nworkers > 1) {
        sf_info("%u workers (event-loop threads%s), each with its own socket on every proxy "
                "address",
                s->nworkers, s->cfg->workers == 0 ? ", auto: one per CPU" : "");
    }
    if (rc == 0 && event_base_dispatch(s->base) < 0) {
        sf_error("event loop failed");
        rc = 1;
    }
    /* Stopping now. A signal during the teardown (a second SIGTERM, a late SIGHUP) would find
     * its default action once the loop's handlers are freed, and kill the process with it:
     * it stays pending until the exit instead. */
    sigset_t late;
    sigemptyset(&late);
    sigaddset(&late, SIGTERM);
    sigaddset(&late, SIGINT);
    sigaddset(&late, SIGHUP);
    sigaddset(&late, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &late, NULL);
    if (!workers_exited(s))
        post_all(s, post_close, NULL); /* the primary's loop failed, or the drain timed out */
    join_workers(s);
    if (rc == 0)
        sf_info("stopped");
    return rc;
}

void sf_server_destroy(sf_server *s)
{
    if (s == NULL)
        return;
    if (s->primary == s && s->workers != NULL) {
        /* their threads were joined by sf_server_run, or never started */
        join_workers(s);
        for (unsigned i = 1; i < s->nworkers; i++)
            sf_server_destroy(s->workers[i]);
        free(s->workers);
        s->workers = NULL;
    }
    inbox_destroy(s->inbox);
    s->inbox = NULL;
    close_listeners(s, 1);
    for (size_t i = 0; i < s->nlisteners; i++)
        SSL_CTX_free(s->listeners[i].tls);
    free(s->listeners);
    sf_session_close_all(s);
    if (s->drain_ev.ev_base != NULL)
        event_del(&s->drain_ev);
    if (s->resume_ev.ev_base != NULL)
        event_del(&s->resume_ev);
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
    sf_stats_destroy(s->view);
    if (s->route_shadows.ready) {
        for (size_t i = 0; i < s->route_shadows.n; i++) {
            free(s->route_shadows.names[i]);
            free(s->route_shadows.counts[i]);
        }
        free(s->route_shadows.names);
        free(s->route_shadows.counts);
        pthread_mutex_destroy(&s->route_shadows.mu);
    }
    json_decref(s->audit.last_actions);
    json_decref(s->audit.rollbacks);
    free(s->hdrs);
    if (s->base != NULL)
        event_base_free(s->base);
    free(s);
}
