/* Shadows: each is a small state machine with up to two legs (the function, and for noise
 * learning legacy asked a second time) and a capture of legacy's answer fed by the client's
 * exchange. It ends when the exchange and every leg are done: compared, counted, logged, freed. */
#include "shadow.h"

#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <time.h>

#include "body.h"
#include "compare.h"
#include "diffs.h"
#include "log.h"
#include "netio.h"

#define KEEP_HEADERS 32 /* header lines a capture keeps: content-type and the compared ones */

/* One response as the comparison needs it: status, a few headers, the body up to
 * compare_body_bytes and the digest of all of it. */
struct capture {
    int status;
    sf_http_header hdrs[KEEP_HEADERS]; /* slices of the copies below */
    char *owned[2 * KEEP_HEADERS];     /* malloc'd names and values */
    size_t nhdrs;
    char *body;  /* the bytes kept, contiguous for the comparison: malloc'd at the first byte */
    size_t kept; /* bytes in body */
    size_t room; /* bytes body can hold (grown up to cap) */
    size_t hint; /* the body's Content-Length when the head gave one (0: unknown) */
    size_t cap;  /* bytes kept: compare_body_bytes, 0 when bodies are not compared */
    uint64_t total;
    const EVP_MD *sha256; /* the server's, fetched once */
    EVP_MD_CTX *md;       /* hashing, only once the body outgrew cap: NULL before */
    unsigned char digest[32];
    int final; /* digest computed: no more bytes */
};

struct leg {
    sf_shadow *sh;
    sf_backend *be;
    sf_upconn *up;
    char *head; /* kept for one replay on a fresh connection when a pooled one was dead */
    size_t head_len;
    struct capture cap;
    sf_body_reader body;
    int fail; /* sf_stats_shadow_reason, -1: none */
    unsigned active : 1, running : 1, resp_head : 1, complete : 1, reusable : 1, retried : 1;
};

struct sf_shadow {
    sf_server *srv;
    sf_runtime *rt;
    const sf_route *route;
    int slot;
    struct leg fn, learn;
    struct capture primary;
    uint64_t body_sent;
    int abandoned; /* sf_stats_shadow_reason it was given up for, -1: not */
    unsigned primary_done : 1, primary_ok : 1, primary_head : 1, is_head : 1, has_body : 1,
        body_done : 1, /* the whole request body went to the function's connection */
        has_log : 1, freeing : 1;
    sf_access_entry log;
    const char *request_id, *method, *path; /* in text */
    char *log_text;                         /* the log line's strings, one allocation */
    TAILQ_ENTRY(sf_shadow) link;
    char text[]; /* request_id, method and path, each NUL-terminated */
};

struct sf_shadows {
    TAILQ_HEAD(, sf_shadow) list;
    EVP_MD *sha256; /* fetched once: a fetch per capture takes a lock */
    /* The noise learned, by stats slot, and the route each is for. With several workers the
     * primary's thread reads them (sf_shadows_noise_collect): under mu then, as are the
     * comparisons and the learning that use and change them. */
    struct sf_noise **noise;
    char **noise_route;
    size_t nslots;
    int shared;
    pthread_mutex_t mu;
};

static void leg_finish(struct leg *g, int fail);
static void maybe_end(sf_shadow *sh);

/* ---- captures ---- */

/* A capture keeping cap body bytes; with body_wanted 0 (compare.body: none), none at all. c is
 * zeroed (the shadow is calloc'd). */
static void capture_init(struct capture *c, const sf_server *s, int body_wanted)
{
    c->cap = body_wanted ? s->cfg->shadow_compare_body_bytes : 0;
    c->sha256 = body_wanted ? s->shadows->sha256 : NULL;
}

static void capture_dispose(struct capture *c)
{
    for (size_t i = 0; i < 2 * c->nhdrs; i++)
        free(c->owned[i]);
    c->nhdrs = 0;
    free(c->body);
    c->body = NULL;
    EVP_MD_CTX_free(c->md);
    c->md = NULL;
}

static int header_wanted(const sf_shadow_conf *conf, sf_slice name)
{
    if (SF_HTTP_NAME_IS(name, "content-type"))
        return 1;
    for (size_t i = 0; i < conf->ncompare_headers; i++)
        if (strlen(conf->compare_headers[i]) == name.len &&
            strncasecmp(conf->compare_headers[i], name.p, name.len) == 0)
            return 1;
    return 0;
}

static char *slice_dup(sf_slice s)
{
    char *p = malloc(s.len + 1);
    if (p != NULL) {
        memcpy(p, s.p, s.len);
        p[s.len] = '\0';
    }
    return p;
}

static void capture_head(struct capture *c, const sf_shadow_conf *conf, const sf_http_response *r)
{
    c->status = r->status;
    for (size_t i = 0; i < r->num_headers && c->nhdrs < KEEP_HEADERS; i++) {
        if (!header_wanted(conf, r->headers[i].name))
            continue;
        char *n = slice_dup(r->headers[i].name), *v = slice_dup(r->headers[i].value);
        if (n == NULL || v == NULL) {
            free(n);
            free(v);
            continue;
        }
        c->owned[2 * c->nhdrs] = n;
        c->owned[2 * c->nhdrs + 1] = v;
        c->hdrs[c->nhdrs++] =
            (sf_http_header){{n, r->headers[i].name.len}, {v, r->headers[i].value.len}};
    }
    if (r->content_length > 0)
        c->hint = (uint64_t)r->content_length < c->cap ? (size_t)r->content_length : c->cap;
}

/* The body outgrew what is kept: from now on it is compared by digest, which starts with the
 * bytes kept so far. A body that fits is compared by its bytes, never hashed. */
static void start_digest(struct capture *c)
{
    c->md = EVP_MD_CTX_new();
    if (c->md == NULL || !EVP_DigestInit_ex(c->md, c->sha256, NULL)) {
        EVP_MD_CTX_free(c->md);
        c->md = NULL;
        c->sha256 = NULL; /* compared by the bytes kept and the lengths, noted by compare */
        return;
    }
    if (c->kept > 0)
        EVP_DigestUpdate(c->md, c->body, c->kept);
}

/* Room in body for n more bytes (n <= cap - kept): the Content-Length's worth at once when the
 * head gave one, else doubling. Returns -1 when out of memory. */
static int capture_room(struct capture *c, size_t n)
{
    if (c->kept + n <= c->room)
        return 0;
    size_t want = c->room > 0 ? 2 * c->room : c->hint > 0 ? c->hint : 4096;
    if (want < c->kept + n)
        want = c->kept + n;
    if (want > c->cap)
        want = c->cap;
    char *b = realloc(c->body, want);
    if (b == NULL)
        return -1;
    c->body = b;
    c->room = want;
    return 0;
}

static void capture_bytes(void *arg, const void *bytes, size_t n)
{
    struct capture *c = arg;
    if (c->final)
        return;
    if (c->md == NULL && c->sha256 != NULL && c->kept + n > c->cap)
        start_digest(c);
    if (c->md != NULL)
        EVP_DigestUpdate(c->md, bytes, n);
    size_t k = n < c->cap - c->kept ? n : c->cap - c->kept;
    if (k > 0 && capture_room(c, k) == 0) {
        memcpy(c->body + c->kept, bytes, k);
        c->kept += k;
    } else if (k > 0) {
        /* out of memory: compared by the bytes kept and the lengths from here on (noted) */
        c->cap = c->kept;
        c->sha256 = NULL;
    }
    c->total += n;
}

/* The first len bytes of src. */
static void capture_body(struct capture *c, struct evbuffer *src, size_t len)
{
    sf_evbuffer_each(src, 0, len, capture_bytes, c);
}

static void capture_side(struct capture *c, sf_cmp_side *side)
{
    unsigned dlen = 0;
    if (!c->final && c->md != NULL)
        EVP_DigestFinal_ex(c->md, c->digest, &dlen);
    c->final = 1;
    size_t kept = c->kept;
    memset(side, 0, sizeof(*side));
    side->status = c->status;
    side->headers = c->hdrs;
    side->nheaders = c->nhdrs;
    side->body = kept > 0 ? c->body : "";
    side->body_len = kept;
    side->body_total = c->total;
    side->body_truncated = c->total > kept;
    side->sha256 = c->md != NULL ? c->digest : NULL;
}

/* ---- the whole server's shadows ---- */

struct sf_shadows *sf_shadows_create(int shared)
{
    struct sf_shadows *all = calloc(1, sizeof(*all));
    if (all == NULL)
        return NULL;
    TAILQ_INIT(&all->list);
    all->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (all->sha256 == NULL || (shared && pthread_mutex_init(&all->mu, NULL) != 0)) {
        EVP_MD_free(all->sha256);
        free(all);
        return NULL;
    }
    all->shared = shared;
    return all;
}

static void noise_lock(struct sf_shadows *all)
{
    if (all->shared)
        pthread_mutex_lock(&all->mu);
}

static void noise_unlock(struct sf_shadows *all)
{
    if (all->shared)
        pthread_mutex_unlock(&all->mu);
}

void sf_shadows_noise_collect(struct sf_shadows *all, const char *route, json_t *into, size_t max)
{
    const char *paths[64];
    if (all == NULL)
        return;
    noise_lock(all);
    for (size_t i = 0; i < all->nslots; i++) {
        if (all->noise_route[i] == NULL || strcmp(all->noise_route[i], route) != 0)
            continue;
        size_t n = sf_noise_paths(all->noise[i], paths, NULL, sizeof(paths) / sizeof(*paths));
        for (size_t k = 0; k < n && json_array_size(into) < max; k++) {
            size_t j, have = json_array_size(into);
            for (j = 0; j < have; j++)
                if (strcmp(json_string_value(json_array_get(into, j)), paths[k]) == 0)
                    break;
            if (j == have)
                json_array_append_new(into, json_string(paths[k]));
        }
        break;
    }
    noise_unlock(all);
}

static void shadow_free(sf_shadow *sh);

void sf_shadows_destroy(struct sf_shadows *all)
{
    if (all == NULL)
        return;
    sf_shadow *sh;
    while ((sh = TAILQ_FIRST(&all->list)) != NULL) {
        /* at exit: the exchange's line still goes out, its shadow unfinished (or given up) */
        if (sh->has_log) {
            sh->log.shadow = sf_stats_shadow_result_name(
                sh->abandoned >= 0 ? SF_STATS_SHADOW_SKIPPED : SF_STATS_SHADOW_ERROR);
            sf_accesslog_write(sh->srv->alog, &sh->log);
        }
        shadow_free(sh);
    }
    for (size_t i = 0; i < all->nslots; i++) {
        sf_noise_destroy(all->noise[i]);
        free(all->noise_route[i]);
    }
    free(all->noise);
    free(all->noise_route);
    if (all->shared)
        pthread_mutex_destroy(&all->mu);
    EVP_MD_free(all->sha256);
    free(all);
}

/* Makes the per-slot arrays cover slot. */
static int cover(struct sf_shadows *all, int slot)
{
    if ((size_t)slot < all->nslots)
        return 0;
    size_t n = (size_t)slot + 16;
    noise_lock(all);
    struct sf_noise **nz = realloc(all->noise, n * sizeof(*nz));
    if (nz != NULL)
        all->noise = nz;
    char **names = nz != NULL ? realloc(all->noise_route, n * sizeof(*names)) : NULL;
    if (names != NULL) {
        all->noise_route = names;
        for (size_t i = all->nslots; i < n; i++) {
            nz[i] = NULL;
            names[i] = NULL;
        }
        all->nslots = n;
    }
    noise_unlock(all);
    return names != NULL ? 0 : -1;
}

struct sf_noise *sf_shadows_noise(struct sf_shadows *all, int slot)
{
    return all != NULL && slot >= 0 && (size_t)slot < all->nslots ? all->noise[slot] : NULL;
}

/* The counts of shadows in flight that the caps are checked against: every worker's. */
static void count_inflight(sf_shadow *sh, int d)
{
    atomic_fetch_add_explicit(&sh->srv->shadows_inflight->n, (uint32_t)d, memory_order_relaxed);
    atomic_fetch_add_explicit(&sh->rt->shadows_inflight[sh->route->index]->n, (uint32_t)d,
                              memory_order_relaxed);
}

int sf_shadow_admit(sf_server *s, const sf_runtime *rt, const sf_route *r, int slot)
{
    if (cover(s->shadows, slot) < 0)
        return SF_STATS_SKIP_CAPACITY;
    if (atomic_load_explicit(&s->shadows_inflight->n, memory_order_relaxed) >=
            s->cfg->shadow_max_inflight ||
        atomic_load_explicit(&rt->shadows_inflight[r->index]->n, memory_order_relaxed) >=
            r->shadow.max_inflight)
        return SF_STATS_SKIP_CAPACITY;
    return -1;
}

/* ---- legs ---- */

static void up_read(void *owner, sf_upconn *up, ssize_t n, int err);
static void up_connect(void *owner, sf_upconn *up, int err);
static void up_drained(void *owner, sf_upconn *up);
static void up_write_error(void *owner, sf_upconn *up, int err);
static void up_timeout(void *owner, sf_upconn *up);

static const sf_upconn_ops leg_ops = {up_read, up_connect, up_drained, up_write_error, up_timeout};

/* Opens the leg's connection and queues its head. Returns -1 (the leg failed) when no socket
 * could be started. */
static int leg_open(struct leg *g, int fresh)
{
    sf_server *s = g->sh->srv;
    g->up = sf_pool_acquire(g->be->pool, g, &leg_ops, fresh);
    if (g->up == NULL)
        return -1;
    evbuffer_add(g->up->out, g->head, g->head_len);
    sf_upconn_set_timer(g->up, g->up->connecting ? s->tv_up_connect : g->be->tv_response);
    sf_upconn_flush(g->up);
    return 0;
}

static int leg_start(sf_shadow *sh, struct leg *g, sf_backend *be, char *head, size_t head_len)
{
    g->sh = sh;
    g->be = be;
    g->head = head;
    g->head_len = head_len;
    g->fail = -1;
    g->active = 1;
    g->running = 1;
    capture_init(&g->cap, sh->srv, sh->route->shadow.body_mode != SF_BODY_NONE);
    return leg_open(g, 0);
}

/* The leg is over: fail is its sf_stats_shadow_reason, -1 when it answered in full. */
static void leg_finish(struct leg *g, int fail)
{
    if (!g->running)
        return;
    g->running = 0;
    g->fail = fail;
    if (g->up != NULL) {
        /* a function that answered before it had the whole body leaves the rest of the body
         * unsent: that connection must never carry another request */
        int sent = (g != &g->sh->fn || g->sh->body_done) && evbuffer_get_length(g->up->out) == 0;
        if (fail < 0 && g->reusable && sent)
            sf_pool_release(g->up, 1);
        else
            sf_upconn_close(g->up, fail >= 0);
        g->up = NULL;
    }
    sf_shadow *sh = g->sh;
    if (g == &sh->fn)
        count_inflight(sh, -1);
    maybe_end(sh);
}

static int upstream_kind_reason(int err)
{
    return err == ETIMEDOUT ? SF_STATS_ERR_TIMEOUT : SF_STATS_ERR_RESET;
}

/* A run of n body bytes at the front of in: captured, then dropped. */
static void leg_take(void *arg, struct evbuffer *in, size_t n)
{
    capture_body(arg, in, n);
    evbuffer_drain(in, n);
}

/* Returns 1 while the leg still runs, 0 once it is over (the shadow may be gone then). */
static int leg_response(struct leg *g)
{
    sf_server *s = g->sh->srv;
    sf_upconn *up = g->up;
    while (!g->resp_head) {
        sf_http_response resp;
        ssize_t r = sf_server_parse_response(s, up->in, &resp);
        if (r == SF_HTTP_INCOMPLETE)
            return 1;
        if (r < 0 || resp.status == 101) {
            leg_finish(g, SF_STATS_ERR_PROTOCOL);
            return 0;
        }
        if (resp.status < 200) {
            evbuffer_drain(up->in, (size_t)r);
            continue;
        }
        capture_head(&g->cap, &g->sh->route->shadow, &resp);
        sf_body_reader_init(&g->body, sf_http_response_body(&resp, g->sh->is_head),
                            resp.content_length);
        g->reusable = sf_http_response_reusable(&resp, g->body.mode);
        evbuffer_drain(up->in, (size_t)r);
        g->resp_head = 1;
    }
    int done = sf_body_read(&g->body, up->in, leg_take, &g->cap);
    if (done < 0) {
        leg_finish(g, SF_STATS_ERR_PROTOCOL);
        return 0;
    }
    if (done) {
        if (evbuffer_get_length(up->in) > 0)
            g->reusable = 0;
        g->complete = 1;
        leg_finish(g, -1);
        return 0;
    }
    return 1;
}

static void up_read(void *owner, sf_upconn *up, ssize_t n, int err)
{
    struct leg *g = owner;
    if (n > 0) {
        /* the timer restarts only when more is awaited: a whole answer in one read (the usual
         * case) never touches it before the connection goes back to the pool */
        if (leg_response(g))
            sf_upconn_set_timer(up, g->be->tv_response);
        return;
    }
    if (!g->resp_head && evbuffer_get_length(up->in) == 0 && up->reused && !g->retried &&
        !g->sh->has_body) {
        /* a pooled connection the function had closed: once more on a fresh one */
        g->retried = 1;
        sf_upconn_close(up, 1);
        g->up = NULL;
        if (leg_open(g, 1) < 0)
            leg_finish(g, SF_STATS_ERR_CONNECT);
        return;
    }
    if (g->resp_head && g->body.mode == SF_HTTP_BODY_CLOSE) {
        g->reusable = 0;
        g->complete = 1;
        leg_finish(g, -1);
        return;
    }
    leg_finish(g, n < 0 ? upstream_kind_reason(err) : SF_STATS_ERR_RESET);
}

static void up_connect(void *owner, sf_upconn *up, int err)
{
    struct leg *g = owner;
    if (err != 0) {
        leg_finish(g, SF_STATS_ERR_CONNECT);
        return;
    }
    sf_upconn_set_timer(up, g->be->tv_response);
    sf_upconn_flush(up);
}

static void up_drained(void *owner, sf_upconn *up)
{
    (void)owner;
    (void)up;
}

static void up_write_error(void *owner, sf_upconn *up, int err)
{
    (void)up;
    (void)err;
    leg_finish(owner, SF_STATS_ERR_RESET);
}

static void up_timeout(void *owner, sf_upconn *up)
{
    leg_finish(owner, up->connecting ? SF_STATS_ERR_CONNECT : SF_STATS_ERR_TIMEOUT);
}

/* ---- a shadow ---- */

/* Copies the n strings of in (NULL ones stay NULL) into one allocation: *block, freed alone.
 * Returns -1 when out of memory (out then all NULL). */
static int copy_strings(const char *const *in, const char **out, size_t n, char **block)
{
    size_t len[8], total = 0;
    for (size_t i = 0; i < n; i++) {
        len[i] = in[i] != NULL ? strlen(in[i]) + 1 : 0;
        total += len[i];
        out[i] = NULL;
    }
    char *b = *block = malloc(total > 0 ? total : 1);
    if (b == NULL)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (in[i] == NULL)
            continue;
        memcpy(b, in[i], len[i]);
        out[i] = b;
        b += len[i];
    }
    return 0;
}

static void shadow_free(sf_shadow *sh)
{
    sh->freeing = 1; /* closing a running leg below must not end the shadow again */
    struct leg *legs[2] = {&sh->fn, &sh->learn};
    for (int i = 0; i < 2; i++) {
        struct leg *g = legs[i];
        if (g->running)
            leg_finish(g, SF_STATS_ERR_RESET);
        capture_dispose(&g->cap);
        free(g->head);
    }
    capture_dispose(&sh->primary);
    TAILQ_REMOVE(&sh->srv->shadows->list, sh, link);
    sf_runtime_unref(sh->rt);
    free(sh->log_text);
    free(sh);
}

sf_shadow *sf_shadow_start(sf_server *s, const sf_shadow_params *p)
{
    struct sf_shadows *all = s->shadows;
    size_t lid = strlen(p->request_id) + 1, lm = strlen(p->method) + 1, lp = strlen(p->path) + 1;
    sf_shadow *sh = calloc(1, sizeof(*sh) + lid + lm + lp);
    if (sh == NULL || cover(all, p->slot) < 0) {
        free(sh);
        free(p->fn_head);
        free(p->learn_head);
        return NULL;
    }
    sh->srv = s;
    sh->rt = sf_runtime_ref(p->rt);
    sh->route = p->route;
    sh->slot = p->slot;
    sh->abandoned = -1;
    sh->fn.fail = sh->learn.fail = -1;
    sh->has_body = p->has_body ? 1 : 0;
    sh->body_done = !sh->has_body;
    sh->is_head = strcmp(p->method, "HEAD") == 0;
    sh->request_id = memcpy(sh->text, p->request_id, lid);
    sh->method = memcpy(sh->text + lid, p->method, lm);
    sh->path = memcpy(sh->text + lid + lm, p->path, lp);
    TAILQ_INSERT_TAIL(&all->list, sh, link);
    count_inflight(sh, 1);
    if (all->noise[p->slot] == NULL && p->route->shadow.learn_noise) {
        struct sf_noise *nz = sf_noise_create();
        char *name = strdup(p->route->name);
        noise_lock(all);
        if (nz != NULL && name != NULL) {
            all->noise[p->slot] = nz;
            all->noise_route[p->slot] = name;
            nz = NULL;
            name = NULL;
        }
        noise_unlock(all);
        sf_noise_destroy(nz);
        free(name);
    }
    capture_init(&sh->primary, s, p->route->shadow.body_mode != SF_BODY_NONE);
    if (leg_start(sh, &sh->fn, p->fn, p->fn_head, p->fn_head_len) < 0) {
        if (sh->fn.head == NULL)
            free(p->fn_head);
        if (!sh->fn.running) {
            /* never started: undo the in-flight count leg_finish would have undone */
            count_inflight(sh, -1);
        } else {
            leg_finish(&sh->fn, SF_STATS_ERR_CONNECT);
        }
    }
    if (p->learn_head != NULL &&
        leg_start(sh, &sh->learn, &p->rt->legacy, p->learn_head, p->learn_head_len) < 0)
        leg_finish(&sh->learn, SF_STATS_ERR_CONNECT);
    return sh;
}

/* Gives the shadow up (counted once, as why); it still ends with the client's exchange. */
static void abandon(sf_shadow *sh, int why)
{
    if (sh->abandoned >= 0)
        return;
    sh->abandoned = why;
    sf_stats_record_shadow_reason(sh->srv->stats, sh->slot, (sf_stats_shadow_reason)why,
                                  sf_mono_sec());
    leg_finish(&sh->fn, why);
    leg_finish(&sh->learn, why);
}

void sf_shadow_body(sf_shadow *sh, struct evbuffer *src, size_t from, size_t len)
{
    if (sh->abandoned >= 0 || len == 0)
        return;
    sh->body_sent += len;
    if (sh->body_sent > sh->srv->cfg->shadow_max_body_bytes) {
        /* even when the function answered early: the request was not shadowed whole */
        abandon(sh, SF_STATS_SKIP_BODY);
        return;
    }
    if (!sh->fn.running)
        return;
    sf_evbuffer_each(src, from, len, sf_evbuffer_append_fn, sh->fn.up->out);
    sf_upconn_flush(sh->fn.up);
}

void sf_shadow_body_end(sf_shadow *sh)
{
    sh->body_done = 1;
}

void sf_shadow_primary_head(sf_shadow *sh, const sf_http_response *resp)
{
    capture_head(&sh->primary, &sh->route->shadow, resp);
    sh->primary_head = 1;
}

void sf_shadow_primary_body(sf_shadow *sh, struct evbuffer *src, size_t len)
{
    if (sh->abandoned < 0)
        capture_body(&sh->primary, src, len);
}

void sf_shadow_primary_done(sf_shadow *sh, int ok, const sf_access_entry *log)
{
    sh->primary_ok = ok && sh->primary_head ? 1 : 0;
    /* nothing to compare with: stop the legs now rather than wait for the function (which may
     * wait for body bytes that will never come), freeing their in-flight slots */
    if (!sh->primary_ok || sh->primary.status >= 500)
        abandon(sh, SF_STATS_SKIP_PRIMARY);
    sh->primary_done = 1; /* only now: abandon() must not end the shadow between its legs */
    if (log != NULL) {
        const char *in[4] = {log->client, log->route, log->backend, log->error}, *out[4];
        sh->log = *log;
        copy_strings(in, out, 4, &sh->log_text); /* out of memory: a line without them */
        sh->log.request_id = sh->request_id;
        sh->log.method = sh->method;
        sh->log.path = sh->path;
        sh->log.client = out[0];
        sh->log.route = out[1];
        sh->log.backend = out[2];
        sh->log.error = out[3];
        sh->has_log = 1;
    }
    maybe_end(sh);
}

/* Compares legacy's answer with the function's: the outcome, counted; a mismatch kept. */
static int compare(sf_shadow *sh)
{
    sf_server *s = sh->srv;
    sf_cmp_side legacy, fn;
    sf_cmp_outcome out;
    capture_side(&sh->primary, &legacy);
    capture_side(&sh->fn.cap, &fn);
    struct sf_noise *noise = sf_shadows_noise(s->shadows, sh->slot);
    if (sf_compare(&sh->route->shadow, noise, &legacy, &fn, &out) < 0) {
        sf_cmp_outcome_dispose(&out);
        sf_warn("shadow of %s on route %s: out of memory comparing the answers", sh->request_id,
                sh->route->name);
        sf_stats_record_shadow(s->stats, sh->slot, SF_STATS_SHADOW_ERROR, sf_mono_sec());
        return SF_STATS_SHADOW_ERROR;
    }
    int result = out.result == SF_CMP_MATCH   ? SF_STATS_SHADOW_MATCH
                 : out.result == SF_CMP_NOISE ? SF_STATS_SHADOW_NOISE
                                              : SF_STATS_SHADOW_MISMATCH;
    if (result == SF_STATS_SHADOW_MISMATCH && sf_server_diffs(s) != NULL) {
        sf_diff_item items[32];
        size_t n = out.ndiffs < 32 ? out.ndiffs : 32;
        for (size_t i = 0; i < n; i++)
            items[i] =
                (sf_diff_item){out.diffs[i].path, out.diffs[i].legacy, out.diffs[i].function};
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        sf_diffs_record(sf_server_diffs(s), sh->route->name, sh->request_id,
                        (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, sh->method, sh->path,
                        legacy.status, fn.status, items, n, out.more + (out.ndiffs - n));
    }
    sf_cmp_outcome_dispose(&out);
    sf_stats_record_shadow(s->stats, sh->slot, (sf_stats_shadow_result)result, sf_mono_sec());
    return result;
}

/* Legacy's second answer against its first: what differs is noise for the route. */
static void learn(sf_shadow *sh)
{
    struct sf_noise *noise = sf_shadows_noise(sh->srv->shadows, sh->slot);
    if (noise == NULL || !sh->learn.complete || !sh->primary_ok)
        return;
    sf_cmp_side first, second;
    capture_side(&sh->primary, &first);
    capture_side(&sh->learn.cap, &second);
    if (first.status == second.status && first.status < 500)
        sf_noise_learn(noise, &first, &second);
}

static void maybe_end(sf_shadow *sh)
{
    if (sh->freeing || !sh->primary_done || sh->fn.running || sh->learn.running)
        return;
    int result;
    if (sh->abandoned >= 0) {
        result = SF_STATS_SHADOW_SKIPPED; /* counted when it was given up */
    } else if (sh->fn.fail >= 0 || sh->fn.cap.status >= 500) {
        int why = sh->fn.fail >= 0 ? sh->fn.fail : SF_STATS_ERR_5XX;
        sf_stats_record_shadow_reason(sh->srv->stats, sh->slot, (sf_stats_shadow_reason)why,
                                      sf_mono_sec());
        result = SF_STATS_SHADOW_ERROR;
    } else {
        noise_lock(sh->srv->shadows);
        learn(sh); /* first, so that this very comparison knows the noise */
        result = compare(sh);
        noise_unlock(sh->srv->shadows);
    }
    if (sh->has_log) {
        sh->log.shadow = sf_stats_shadow_result_name(result);
        sf_accesslog_write(sh->srv->alog, &sh->log);
    }
    shadow_free(sh);
}
