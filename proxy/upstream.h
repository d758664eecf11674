/* Upstream connection pools: one per backend address, keeping idle keep-alive connections
 * (LIFO, capped) and opening new ones on demand, over plain TCP or TLS. A connection in use
 * belongs to one owner, which receives its I/O through sf_upconn_ops. */
#ifndef SF_UPSTREAM_H
#define SF_UPSTREAM_H

#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/buffer.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "netio.h"
#include "tls.h"

typedef struct sf_pool sf_pool;
typedef struct sf_upconn sf_upconn;

typedef struct {
    /* Bytes arrived in up->in (n > 0), or the peer closed (n == 0) or failed (n < 0, err set). */
    void (*on_read)(void *owner, sf_upconn *up, ssize_t n, int err);
    /* The connect finished (for TLS: the handshake too): err 0 on success, else the errno
     * (EPROTO for a TLS failure; sf_upconn_error says more while the callback runs). */
    void (*on_connect)(void *owner, sf_upconn *up, int err);
    /* up->out was fully written (after having been non-empty). */
    void (*on_drained)(void *owner, sf_upconn *up);
    /* A write failed with err. */
    void (*on_write_error)(void *owner, sf_upconn *up, int err);
    /* The timer set with sf_upconn_set_timer fired. */
    void (*on_timeout)(void *owner, sf_upconn *up);
} sf_upconn_ops;

struct sf_upconn {
    int fd;
    struct event rev, wev;
    sf_timer timer;
    struct evbuffer *in, *out;
    sf_pool *pool;
    void *owner; /* NULL while idle in the pool */
    const sf_upconn_ops *ops;
    unsigned connecting : 1, reused : 1, read_paused : 1, wev_on : 1;
    uint8_t wide_reads; /* sf_read_into's state */
    sf_tls_conn tls;    /* tls.ssl NULL for plain TCP; tls.hs once TCP is connected */
    char *error;        /* why TLS failed, for sf_upconn_error (malloc'd, NULL if none) */
    TAILQ_ENTRY(sf_upconn) idle_link;
};

/* TLS towards a backend (https URLs). */
typedef struct {
    struct ssl_ctx_st *ctx; /* SSL_CTX, borrowed: outlives the pool (see sf_tls_client_ctx) */
    const char *host;       /* name for SNI and certificate checks (an IP literal: no SNI) */
} sf_pool_tls;

/* Creates a pool for the backend at addr. name is for logs ("legacy 127.0.0.1:8081").
 * max_idle bounds the idle connections kept; idle_ms closes those unused that long. tls:
 * NULL for plain TCP; otherwise (copied, the ctx borrowed) every connection does a TLS
 * handshake before on_connect: SNI and, when the ctx verifies, the certificate's name or IP
 * checked against tls->host; the pool keeps the last session it got and resumes with it (it
 * installs its new-session callback on the ctx, the same for every pool). Returns NULL when
 * out of memory. */
sf_pool *sf_pool_create(struct event_base *base, const struct sockaddr_storage *addr,
                        socklen_t addrlen, const char *name, size_t max_idle, unsigned idle_ms,
                        const sf_pool_tls *tls);
/* Closes every idle connection and frees the pool. Connections in use must be gone first. */
void sf_pool_destroy(sf_pool *p);
const char *sf_pool_name(const sf_pool *p);

/* A connection for owner: an idle one (reused = 1) unless fresh is set, else a new one
 * (connecting = 1 until on_connect). Returns NULL with errno set when a socket cannot even be
 * started (e.g. ECONNREFUSED reported at once on loopback). */
sf_upconn *sf_pool_acquire(sf_pool *p, void *owner, const sf_upconn_ops *ops, int fresh);

/* Hands a connection back: kept idle when reusable (and nothing is buffered), else closed. */
void sf_pool_release(sf_upconn *up, int reusable);

/* Closes a connection in use (abort = RST; a TLS connection closed without abort sends a
 * close_notify first, best-effort). */
void sf_upconn_close(sf_upconn *up, int abort);

/* Sends what is in up->out now (nothing while connecting); arms the write event for the rest.
 * Errors arrive through on_write_error. Returns -1 if the connection was found dead. */
int sf_upconn_flush(sf_upconn *up);

/* Stops or resumes reading (backpressure when the client side is full). */
void sf_upconn_pause_read(sf_upconn *up);
void sf_upconn_resume_read(sf_upconn *up);

/* Arms (tv != NULL) or clears the connection's one timer. */
void sf_upconn_set_timer(sf_upconn *up, const struct timeval *tv);

/* Why the connection failed beyond its errno, for the log: "TLS certificate verification
 * failed: unable to get local issuer certificate", "TLS handshake failed: wrong version
 * number". NULL when there is nothing more to say (plain TCP errors). Borrowed: valid until
 * the connection is closed. */
const char *sf_upconn_error(const sf_upconn *up);

#endif
