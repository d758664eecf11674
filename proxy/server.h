/* The running proxy: event loop, listeners, upstream pools, signals and drain. */
#ifndef SF_SERVER_H
#define SF_SERVER_H

#include <event2/event.h>
#include <event2/event_struct.h>
#include <pthread.h>
#include <stdint.h>
#include <jansson.h>
#include <sys/queue.h>
#include <sys/types.h>

#include "accesslog.h"
#include "http_parse.h"
#include "settings.h"
#include "stats.h"
#include "table.h"
#include "upstream.h"

typedef struct sf_client sf_client;

typedef struct {
    int fd;
    int admin; /* the admin API listener */
    struct event ev;
    struct sf_server *srv;
    char name[80];
    /* TLS listeners: the context new connections get (swapped by a reload that loads a
     * changed certificate; connections keep the one they started with), and the digest of
     * the certificate and key files it was made from */
    const sf_listen_conf *conf; /* NULL for the admin listener */
    struct ssl_ctx_st *tls;     /* NULL: plain HTTP */
    unsigned char tls_digest[32];
} sf_listener;

/* A connection pool (and TLS context) shared by the runtimes whose backend has the same name,
 * URL and TLS settings, so a reload that changes a cutover keeps warm connections. */
typedef struct {
    int refs;
    char *key; /* name, URL, CA, verify */
    sf_pool *pool;
    struct ssl_ctx_st *tls; /* NULL for http:// */
} sf_upstream;

/* A count of shadows in flight that every worker changes. */
typedef struct {
    _Atomic uint32_t n;
} sf_inflight;

/* Where a request can go: the monolith or one function, with its pool and response timeout. */
typedef struct {
    const sf_function *fn; /* NULL: legacy; borrowed from the runtime's table */
    sf_upstream *upstream; /* one reference */
    sf_pool *pool;         /* upstream->pool */
    const struct timeval *tv_response;
    struct timeval tv_own; /* tv_response when no common timeout was available */
    char name[96];         /* "legacy" or "function orders", for logs */
} sf_backend;

/* What one routes.yaml version runs with: the table and a pool per backend. Immutable once
 * built; the server holds one reference and each exchange holds one, so a reload swaps in a new
 * runtime while requests in flight finish on the one they started with. */
typedef struct {
    int refs;
    sf_route_table *table; /* one reference */
    sf_backend legacy;
    sf_backend *fns; /* one per function of table, by function_index */
    size_t nfns;
    int *route_slot; /* the stats slot of each route, by route index */
    /* by route index: the route's shadows in flight, all workers (shared by route name, so a
     * reload keeps the count) */
    sf_inflight **shadows_inflight;
    double loaded_at; /* wall clock, seconds */
} sf_runtime;

sf_runtime *sf_runtime_ref(sf_runtime *rt);
void sf_runtime_unref(sf_runtime *rt); /* accepts NULL */

/* The outcome of the last reload, for GET /routes and the logs. */
typedef struct {
    int ok;           /* -1: none yet */
    double at;        /* wall clock */
    char trigger[16]; /* "signal", "file", "api", "cli" */
    char *error;      /* the first error line, NULL when ok */
    char **changes;   /* what changed, sf_table_diff's lines */
    size_t nchanges;
} sf_reload_result;

/* Messages to a worker's loop from the primary's, and the workers' exits back to the primary
 * (server.c). */
struct sf_inbox;

/* One event loop and what it serves (DESIGN §3 workers). The primary, worker 0, runs on the
 * main thread: the admin API, signals, reloads, guards and the routes watcher, and its share
 * of the traffic. Each other worker is an sf_server of its own on a thread of its own: its own
 * listening sockets on the same addresses (SO_REUSEPORT: the kernel spreads the connections),
 * upstream pools, stats shard, shadows and access-log writer, and a runtime built from the
 * primary's route table, which the workers share by reference. The primary hands each worker
 * every new table, certificate, log reopen and drain through its inbox; readers (GET /stats,
 * /metrics, guards) merge the workers' shards (sf_server_stats_view). */
typedef struct sf_server {
    struct event_base *base;
    struct sf_server *primary;  /* worker 0; itself on the primary */
    struct sf_server **workers; /* primary only: nworkers of them, [0] the primary itself */
    unsigned nworkers;          /* all workers, primary included (every worker knows it) */
    unsigned worker_id;         /* 0 for the primary */
    struct sf_inbox *inbox;     /* NULL with a single worker */
    /* client connections, all workers (the primary's counter): max_connections' count */
    _Atomic uint64_t *nclients_all;
    _Atomic uint64_t clients_all; /* primary: the counter */
    struct event resume_ev;       /* paused at max_connections: look again soon */
    /* shadows in flight, all workers (the primary's counter): shadow.max_inflight's count */
    sf_inflight *shadows_inflight;
    sf_inflight shadows_inflight_all; /* primary: the counter */
    /* primary: a counter of shadows in flight per route name, all workers, kept across reloads
     * (sf_runtime.shadows_inflight), under mu */
    struct {
        pthread_mutex_t mu;
        int ready;
        char **names;
        sf_inflight **counts;
        size_t n;
    } route_shadows;
    sf_stats *view;   /* primary: the last merge of every worker's shard */
    sf_settings *cfg; /* borrowed */
    sf_runtime *rt;   /* the live table and backends: one reference */
    sf_reload_result last_reload;
    uint64_t reloads_ok, reloads_failed;
    sf_stats *stats;            /* this thread's shard (DESIGN §7) */
    struct sf_shadows *shadows; /* shadows in flight, caps, learned noise (shadow.c) */
    struct sf_diffs *diffs;     /* the latest mismatches per route (diffs.c) */
    struct sf_guards *guards;   /* guard breaches (guard.c) */
    struct event guard_ev;      /* every second: the guards */
    int default_slot;           /* stats slot of unmatched traffic, "_default" */
    /* requests answered before a backend was chosen, by status class (sf_server_rejected) */
    _Atomic uint64_t rejected[6];
    double started_wall;      /* wall clock, seconds */
    uint64_t started_mono;    /* monotonic clock, seconds */
    struct {                  /* the audit log as last read, for route states and rollback counts */
        json_t *last_actions; /* route name -> action of its latest entry */
        json_t *rollbacks;    /* route name -> {"manual": n, "guard": n} since the start */
        struct timespec mtime;
        off_t size;
        ino_t ino;
        int read;
    } audit;
    struct sf_watch *watch; /* routes file watcher, NULL when unavailable */
    pcre2_match_data *md;   /* route matching and rewrites (single thread) */
    char *pathbuf;          /* the normalized path of the request being started */
    char *targetbuf;        /* the target a function gets */
    size_t targetbuf_cap;
    sf_accesslog *alog; /* NULL when off */
    sf_http_limits limits;
    sf_http_header *hdrs; /* scratch header array for the parser (single thread) */
    size_t hdrs_cap;
    /* libevent common timeouts: O(1) add and remove for these durations */
    const struct timeval *tv_client_header, *tv_client_body, *tv_keepalive, *tv_up_connect,
        *tv_up_response, *tv_linger;
    sf_listener *listeners;
    size_t nlisteners;
    size_t nclients;
    int draining;
    int listeners_paused; /* at max_connections */
    struct event drain_ev;
    struct event *sig_ev[4];
    TAILQ_HEAD(, sf_client) clients;
    uint64_t rng[4]; /* xoshiro256** state: request ids */
} sf_server;

/* Builds the server from loaded settings and table (takes the table's reference), binds every
 * listener. Returns NULL with a reason in err; nothing is left bound then. */
sf_server *sf_server_create(sf_settings *cfg, sf_route_table *table, char *err, size_t errlen);

/* Runs until drained after SIGTERM/SIGINT. Returns the process exit code. */
int sf_server_run(sf_server *s);

void sf_server_destroy(sf_server *s);

/* Called by sessions: a client connection went away (resumes accepting if paused, ends the
 * loop once drained). */
void sf_server_client_gone(sf_server *s);

/* The TLS context of listener l (configured with tls): its certificate chain and key loaded
 * and checked to match (sf_tls_server_ctx). NULL with "FILE:LINE:COL: listen ADDRESS: why" in
 * err, located at the cert or the key the problem is with. */
struct ssl_ctx_st *sf_server_listener_tls(const sf_settings *cfg, const sf_listen_conf *l,
                                          char *err, size_t errlen);

/* Loads the routes file again; if it is valid, swaps it in (requests in flight keep the old
 * runtime) and logs what changed; if not, keeps the running table and logs the errors. trigger
 * names the cause for logs and GET /routes. A reload someone asked for ("signal", "api",
 * "cli") also loads the TLS listeners' certificates again: a changed one serves the new
 * connections, a bad one is logged and the old one stays (the result here is the routes').
 * Returns 0 when a new version went live (recorded in s->last_reload), 1 when the file is the
 * version already running (nothing recorded unless the last reload had failed), -1 when it
 * was rejected (recorded). */
int sf_server_reload(sf_server *s, const char *trigger);

/* Sets route's cutover to bp the way every change is made (DESIGN §2): routes.yaml edited in
 * place, an audit entry (action, reason, actor), a log line, then a reload (trigger) that
 * applies it. Returns 0 (res filled; *applied: the reload took it; nothing is done when
 * res->changed is 0) or an SF_EDIT_* code with the reason in err. */
struct sf_edit_result;
int sf_server_set_cutover(sf_server *s, const char *route, uint32_t bp, const char *action,
                          const char *reason, const char *actor, const char *trigger,
                          struct sf_edit_result *res, int *applied, char *err, size_t errlen);

/* Readers on the primary: the stats of all workers (s's own shard when there is one worker,
 * else a merge, by route name, made now; slot numbers are the primary's), valid until the next
 * call. */
sf_stats *sf_server_stats_view(sf_server *s);

/* Requests answered before a backend was chosen, all workers, by status class. */
void sf_server_rejected(sf_server *s, uint64_t out[6]);

/* Access-log lines written and dropped, all workers. */
void sf_server_accesslog_counts(sf_server *s, uint64_t *written, uint64_t *dropped);

/* The noise paths learned for route (all workers, the primary's first), as a new JSON array of
 * at most max strings. */
json_t *sf_server_noise_paths(sf_server *s, const char *route, size_t max);

/* Counts one request answered before a backend was chosen (any worker's thread). */
void sf_server_count_rejected(sf_server *s, int status);

/* The monotonic clock in whole seconds: the stats ring's clock. */
uint64_t sf_mono_sec(void);

/* The wall clock in seconds (for loaded_at, reload times). */
double sf_wall_now(void);

/* 64 random bits (fast PRNG seeded from the kernel). */
uint64_t sf_server_random(sf_server *s);

/* Upstream response heads may be larger than client request heads (cookies). */
#define SF_RESP_HEAD_MAX 65536

/* Parses the response head at the front of in (an upstream's input) into resp, with the
 * server's scratch header array: the head's length, SF_HTTP_INCOMPLETE (also when in is empty)
 * or a negative SF_HTTP_E_* error. resp's slices point into in, valid until in changes. */
ssize_t sf_server_parse_response(sf_server *s, struct evbuffer *in, sf_http_response *resp);

/* Session entry points (session.c). */
/* tls: the listener's TLS context (the connection takes its own reference), NULL for plain
 * HTTP. */
void sf_session_accept(sf_server *s, int fd, const struct sockaddr_storage *peer, int admin,
                       struct ssl_ctx_st *tls);
/* Starts draining: closes idle client connections, marks busy ones to close after their
 * response. */
void sf_session_drain(sf_server *s);
/* Closes every client connection at once (end of drain time). */
void sf_session_close_all(sf_server *s);

#endif
