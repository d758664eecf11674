/* Client connections and the request/response exchange with an upstream: strict parsing,
 * header rewriting, bodies streamed both ways with watermark backpressure, timeouts, and one
 * finalize() that turns every failure into a status or an aborted connection. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "body.h"
#include "log.h"
#include "match.h"
#include "netio.h"
#include "server.h"
#include "shadow.h"

/* Output above HIGH stops the producing side; it resumes below LOW. */
#define OUT_HIGH     (512 * 1024)
#define OUT_LOW      (128 * 1024)
#define PATH_LOG_MAX 512
#define REQID_MAX    64
/* One in this many shadowed GET/HEAD requests of a route with learn_noise also asks legacy a
 * second time. */
#define SHADOW_LEARN_EVERY 8
/* A request body is kept for a fallback to legacy up to this size; beyond it the function's
 * failure is the answer (Envoy's retry buffer works the same way). */
#define FALLBACK_BODY_MAX (1024 * 1024)
/* 1xx responses before the final one: more is an upstream stalling the response timer. */
#define INTERIM_MAX 16

enum { CS_HEAD, CS_BODY, CS_WAIT, CS_CLOSING, CS_LINGER };

typedef struct {
    sf_upconn *up;
    sf_pool *pool;                 /* be->pool */
    sf_backend *be;                /* where the request went */
    sf_runtime *rt;                /* a reference: the table and pools the request started with */
    const sf_route *route;         /* NULL: no route matched (_default) */
    struct timespec t_start, t_up; /* monotonic */
    struct timespec t_be;          /* when the backend serving the exchange was chosen */
    int64_t req_left;              /* Content-Length bytes still to forward */
    uint64_t req_body;             /* body bytes forwarded so far */
    sf_chunked req_ch;
    sf_body_reader resp; /* the response body's framing */
    uint64_t bytes_in, bytes_out;
    int status;
    unsigned req_chunked : 1, req_done : 1, resp_head : 1, up_reusable : 1, keepalive : 1,
        is_head : 1, http10 : 1, client_chunked : 1, up_paused : 1, retried : 1, active : 1,
        fallback : 1, flushing : 1, relayed : 1;
    uint8_t up_err;   /* sf_stats_upstream_error of the backend serving the exchange */
    uint8_t interim;  /* 1xx responses skipped so far */
    int write_err;    /* a write error raised while flush_up was flushing */
    char *retry_head; /* the upstream head, kept while a replay on a fresh connection is safe */
    size_t retry_len;
    char *fb_head; /* the request head for legacy, kept while a fallback is possible */
    size_t fb_len;
    struct evbuffer *fb_body; /* the body bytes sent to the function so far, for a fallback */
    sf_shadow *shadow;        /* the request's shadow, fed until the exchange ends */
    sf_shadow_params *shadow_pending; /* a shadow waiting for the primary's head to go out */
    const char *error;
    char method[24];
    char path[PATH_LOG_MAX];
    char reqid[REQID_MAX + 1];
} exchange;

struct sf_client {
    int fd;
    struct event rev, wev;
    sf_timer timer;
    struct evbuffer *in, *out;
    sf_server *srv;
    TAILQ_ENTRY(sf_client) link;
    char ip[48];
    uint8_t state;
    uint8_t wide_reads; /* sf_read_into's state */
    uint32_t gen;       /* bumped when an exchange starts or changes backend */
    unsigned admin : 1, wev_on : 1, rev_paused : 1, head_started : 1, timer_send : 1,
        in_advance : 1;
    /* accepted on a TLS listener (X-Forwarded-Proto: https); its first bytes were looked at
     * for plain HTTP */
    unsigned https : 1, tls_sniffed : 1;
    sf_tls_conn tls; /* tls.ssl NULL for plain HTTP, and once a TLS connection lingers */
    exchange x;
};

static void on_client_read(evutil_socket_t fd, short what, void *arg);
static void on_client_write(evutil_socket_t fd, short what, void *arg);
static void on_tls_event(evutil_socket_t fd, short what, void *arg);
static void on_client_timer(void *arg);
static int client_advance(sf_client *c);
static int client_flush(sf_client *c);
static int finalize(sf_client *c, int status, const char *error);

static void up_on_read(void *owner, sf_upconn *up, ssize_t n, int err);
static void up_on_connect(void *owner, sf_upconn *up, int err);
static void up_on_drained(void *owner, sf_upconn *up);
static int resume_body_if_drained(sf_client *c);
static int flush_up(sf_client *c);
static int can_retry(const exchange *x);
static void up_on_write_error(void *owner, sf_upconn *up, int err);
static void up_on_timeout(void *owner, sf_upconn *up);

static const sf_upconn_ops up_ops = {up_on_read, up_on_connect, up_on_drained, up_on_write_error,
                                     up_on_timeout};

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 401:
        return "Unauthorized";
    case 409:
        return "Conflict";
    case 411:
        return "Length Required";
    case 422:
        return "Unprocessable Content";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 431:
        return "Request Header Fields Too Large";
    case 499:
        return "Client Closed Request";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Error";
    }
}

static void now_mono(struct timespec *ts)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
}

static double ms_since(const struct timespec *from, const struct timespec *now)
{
    return (double)(now->tv_sec - from->tv_sec) * 1e3 +
           (double)(now->tv_nsec - from->tv_nsec) / 1e6;
}

/* Any timer set here replaces the send timer (client_flush arms that one). */
static void client_timer(sf_client *c, const struct timeval *tv)
{
    c->timer_send = 0;
    sf_timer_set(&c->timer, tv);
}

static void client_pause_read(sf_client *c)
{
    if (!c->rev_paused) {
        c->rev_paused = 1;
        if (!c->tls.wr) /* an SSL_write waiting to read still needs the read event */
            event_del(&c->rev);
    }
}

static void client_resume_read(sf_client *c)
{
    if (c->rev_paused) {
        c->rev_paused = 0;
        event_add(&c->rev, NULL);
        /* Decrypted bytes may wait in OpenSSL's buffer, where poll cannot see them. */
        if (c->tls.ssl != NULL)
            event_active(&c->rev, EV_READ, 1);
    }
}

static void shadow_params_free(sf_shadow_params *p)
{
    if (p != NULL) {
        free(p->fn_head);
        free(p->learn_head);
        free(p);
    }
}

static void exchange_reset(exchange *x)
{
    if (x->shadow != NULL)
        sf_shadow_primary_done(x->shadow, 0, NULL);
    shadow_params_free(x->shadow_pending);
    free(x->retry_head);
    free(x->fb_head);
    if (x->fb_body != NULL)
        evbuffer_free(x->fb_body);
    sf_runtime_unref(x->rt);
    memset(x, 0, sizeof(*x));
}

static const char *backend_kind(const exchange *x)
{
    return x->be == NULL ? "proxy" : x->be->fn != NULL ? "function" : "legacy";
}

static void client_free(sf_client *c, int abort)
{
    sf_server *s = c->srv;
    if (c->x.up != NULL)
        sf_upconn_close(c->x.up, 1);
    exchange_reset(&c->x);
    event_del(&c->rev);
    event_del(&c->wev);
    sf_timer_stop(&c->timer);
    sf_tls_close(&c->tls, abort);
    if (abort)
        sf_close_abort(c->fd);
    else
        close(c->fd);
    evbuffer_free(c->in);
    evbuffer_free(c->out);
    TAILQ_REMOVE(&s->clients, c, link);
    free(c);
    sf_server_client_gone(s);
}

void sf_session_accept(sf_server *s, int fd, const struct sockaddr_storage *peer, int admin,
                       SSL_CTX *tls)
{
    sf_client *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        close(fd);
        return;
    }
    c->fd = fd;
    c->srv = s;
    c->admin = admin ? 1 : 0;
    c->in = evbuffer_new();
    c->out = evbuffer_new();
    if (c->in == NULL || c->out == NULL || (tls != NULL && sf_tls_start(&c->tls, tls, fd, 1) < 0)) {
        sf_tls_close(&c->tls, 1);
        if (c->in)
            evbuffer_free(c->in);
        if (c->out)
            evbuffer_free(c->out);
        free(c);
        close(fd);
        return;
    }
    sf_socket_tune(fd);
    sf_addr_ip(peer, c->ip, sizeof(c->ip));
    /* TLS connections have event callbacks of their own: the plain path stays as it is */
    event_assign(&c->rev, s->base, fd, EV_READ | EV_PERSIST, tls ? on_tls_event : on_client_read,
                 c);
    event_assign(&c->wev, s->base, fd, EV_WRITE | EV_PERSIST, tls ? on_tls_event : on_client_write,
                 c);
    if (tls != NULL) {
        /* the handshake runs under client_header, as the head that follows it does */
        c->https = 1;
        c->tls.hs = 1;
    }
    sf_timer_init(&c->timer, s->base, on_client_timer, c);
    TAILQ_INSERT_TAIL(&s->clients, c, link);
    s->nclients++;
    c->state = CS_HEAD;
    event_add(&c->rev, NULL);
    /* The first request's head is due within client_header from the accept. */
    c->head_started = 1;
    client_timer(c, s->tv_client_header);
}

/* Graceful close: the response is flushed, then the write side is shut and what the client
 * still sends is read and dropped for a moment, so that our final response is not destroyed
 * by an RST the kernel would send for unread bytes (nginx's lingering close). */
static void client_plain_events(sf_client *c);

static void start_linger(sf_client *c)
{
    c->state = CS_LINGER;
    if (c->tls.ssl != NULL) {
        /* our close_notify; the lingering itself reads raw bytes and drops them */
        sf_tls_close(&c->tls, 0);
        client_plain_events(c);
    }
    shutdown(c->fd, SHUT_WR);
    evbuffer_drain(c->in, evbuffer_get_length(c->in));
    client_resume_read(c);
    client_timer(c, c->srv->tv_linger);
}

static uint64_t us_between(const struct timespec *from, const struct timespec *to)
{
    if (from->tv_sec == 0)
        return 0; /* a head rejected before it parsed */
    return (uint64_t)(to->tv_sec - from->tv_sec) * 1000000u + (uint64_t)(to->tv_nsec / 1000) -
           (uint64_t)(from->tv_nsec / 1000);
}

/* Counts what the exchange's backend did, from when it was chosen to now, in the stats. */
static void record(sf_client *c, const struct timespec *now)
{
    sf_server *s = c->srv;
    exchange *x = &c->x;
    if (x->be == NULL) {
        /* answered by the proxy before a backend was chosen (a bad request) */
        sf_server_count_rejected(s, x->status);
        return;
    }
    sf_stats_sample smp = {
        .duration_us = us_between(&x->t_be, now),
        .bytes_in = x->bytes_in,
        .bytes_out = x->bytes_out,
        .now_sec = (uint64_t)now->tv_sec,
        .status = (uint16_t)x->status,
        .backend = x->be->fn != NULL ? SF_STATS_FUNCTION : SF_STATS_LEGACY,
        .upstream_error = x->up_err,
        .fallback = x->fallback,
    };
    int slot = x->route != NULL ? x->rt->route_slot[x->route->index] : s->default_slot;
    sf_stats_record(s->stats, slot, &smp);
}

/* Counts the exchange in the stats and writes its access-log line (DESIGN §5 step 7): once per
 * exchange, at its end, whatever the end was. */
static void account(sf_client *c)
{
    sf_server *s = c->srv;
    exchange *x = &c->x;
    if (c->admin)
        return;
    struct timespec now;
    now_mono(&now);
    record(c, &now);
    if (s->alog == NULL && x->shadow == NULL)
        return;
    sf_access_entry e = {
        .request_id = x->reqid,
        .client = c->ip,
        .method = x->method,
        .path = x->path,
        .route = x->route != NULL ? x->route->name : "_default",
        .backend = backend_kind(x),
        .fallback = x->fallback,
        .status = x->status,
        .duration_ms = (double)us_between(&x->t_start, &now) / 1000.0,
        .upstream_ms = x->t_up.tv_sec ? ms_since(&x->t_up, &now) : -1.0,
        .bytes_in = x->bytes_in,
        .bytes_out = x->bytes_out,
        .shadow = NULL,
        .error = x->error,
    };
    if (x->shadow != NULL) {
        /* the line waits for the comparison's outcome (the client does not), dated now */
        gettimeofday(&e.ts, NULL);
        sf_shadow_primary_done(x->shadow, x->relayed && x->req_done, s->alog != NULL ? &e : NULL);
        x->shadow = NULL;
        return;
    }
    sf_accesslog_write(s->alog, &e);
}

/* A complete local response (errors, admin API); headers: more header lines, each ending in
 * CRLF, or NULL. */
static void respond_local(sf_client *c, int status, const char *ctype, const char *body,
                          size_t body_len, int close_conn, const char *headers)
{
    exchange *x = &c->x;
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Cache-Control: no-store\r\n%s",
                     status, reason_phrase(status), ctype, body_len,
                     close_conn ? "Connection: close\r\n" : "");
    evbuffer_add(c->out, head, (size_t)n);
    if (headers != NULL) {
        size_t hl = strlen(headers);
        evbuffer_add(c->out, headers, hl);
        n += (int)hl;
    }
    evbuffer_add(c->out, "\r\n", 2);
    n += 2;
    if (!x->is_head)
        evbuffer_add(c->out, body, body_len);
    x->bytes_out += (size_t)n + (x->is_head ? 0 : body_len);
    x->status = status;
    x->resp_head = 1;
}

static void respond_error(sf_client *c, int status, int close_conn)
{
    char body[128];
    int n = snprintf(body, sizeof(body), "%d %s\n", status, reason_phrase(status));
    respond_local(c, status, "text/plain; charset=utf-8", body, (size_t)n, close_conn, NULL);
}

/* The single end of every exchange. status 0: the response was relayed in full; otherwise
 * the failure's status, answered to the client if no response byte went out yet, else the
 * client connection is aborted (no false end of a body). Returns -1 when c was freed. */
static int finalize(sf_client *c, int status, const char *error)
{
    sf_server *s = c->srv;
    exchange *x = &c->x;
    int abort_client = 0;

    if (error != NULL)
        x->error = error;
    if (status != 0) {
        if (x->resp_head) {
            abort_client = 1;
        } else {
            /* Callers rejecting a request (4xx) have cleared keepalive already; a body not read
             * to its end leaves the framing unknown. */
            if (!x->req_done)
                x->keepalive = 0;
            respond_error(c, status, !x->keepalive);
        }
        if (x->up != NULL) {
            sf_upconn_close(x->up, 1);
            x->up = NULL;
        }
    } else if (x->up != NULL) {
        x->relayed = 1;
        int reusable = x->up_reusable && x->req_done && !x->up->connecting;
        sf_pool_release(x->up, reusable);
        x->up = NULL;
    }
    if (x->status == 0)
        x->status = status;
    account(c);
    if (abort_client) {
        client_free(c, 1);
        return -1;
    }
    int keep = x->keepalive && x->req_done && !s->draining;
    exchange_reset(x);
    if (!keep) {
        c->state = CS_CLOSING;
        client_pause_read(c);
        return client_flush(c);
    }
    c->state = CS_HEAD;
    c->head_started = 0;
    if (client_flush(c) < 0)
        return -1;
    client_resume_read(c);
    /* A pipelined request may be waiting; client_advance's own loop handles it when we are
     * called from inside it. */
    if (evbuffer_get_length(c->in) > 0 && !c->in_advance)
        return client_advance(c);
    return 0;
}

/* Rejects a request before anything was forwarded: status, Connection: close, linger. */
static int reject(sf_client *c, ssize_t err)
{
    int status = sf_http_error_status(err);
    sf_info("rejected request from %s: %s (%d)", c->ip, sf_http_error_str(err), status);
    if (c->x.method[0] == '\0')
        snprintf(c->x.method, sizeof(c->x.method), "-");
    if (c->x.reqid[0] == '\0')
        snprintf(c->x.reqid, sizeof(c->x.reqid), "-");
    c->x.keepalive = 0;
    return finalize(c, status, sf_http_error_str(err));
}

/* X-Request-Id kept when it is 1..64 bytes of [A-Za-z0-9._:+/=@-]; generated otherwise. */
static int valid_request_id(sf_slice v)
{
    if (v.len == 0 || v.len > REQID_MAX)
        return 0;
    for (size_t i = 0; i < v.len; i++) {
        unsigned char ch = (unsigned char)v.p[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              strchr("._:+/=@-", ch) != NULL))
            return 0;
    }
    return 1;
}

static void make_request_id(sf_server *s, char *out)
{
    static const char hex[] = "0123456789abcdef";
    uint64_t a = sf_server_random(s), b = sf_server_random(s);
    for (int i = 0; i < 16; i++) {
        out[i] = hex[(a >> (i * 4)) & 15];
        out[16 + i] = hex[(b >> (i * 4)) & 15];
    }
    out[32] = '\0';
}

/* Hop-by-hop headers (RFC 9110 §7.6.1) and those we regenerate. */
enum { H_KEEP, H_DROP, H_XFF };

static int request_header_class(sf_slice n)
{
    switch (n.len) {
    case 2:
        return SF_HTTP_NAME_IS(n, "te") ? H_DROP : H_KEEP;
    case 6:
        return SF_HTTP_NAME_IS(n, "expect") ? H_DROP : H_KEEP;
    case 7:
        return SF_HTTP_NAME_IS(n, "trailer") || SF_HTTP_NAME_IS(n, "upgrade") ? H_DROP : H_KEEP;
    case 10:
        return SF_HTTP_NAME_IS(n, "connection") || SF_HTTP_NAME_IS(n, "keep-alive") ? H_DROP
                                                                                    : H_KEEP;
    case 12:
        return SF_HTTP_NAME_IS(n, "x-request-id") ? H_DROP : H_KEEP;
    case 14:
        return SF_HTTP_NAME_IS(n, "content-length") ? H_DROP : H_KEEP;
    case 15:
        if (SF_HTTP_NAME_IS(n, "x-forwarded-for"))
            return H_XFF;
        return H_KEEP;
    case 16:
        return SF_HTTP_NAME_IS(n, "proxy-connection") || SF_HTTP_NAME_IS(n, "x-forwarded-host")
                   ? H_DROP
                   : H_KEEP;
    case 17:
        return SF_HTTP_NAME_IS(n, "transfer-encoding") || SF_HTTP_NAME_IS(n, "x-forwarded-proto")
                   ? H_DROP
                   : H_KEEP;
    case 18:
        /* only the proxy marks a request as a shadow copy */
        return SF_HTTP_NAME_IS(n, "x-strangler-shadow") ? H_DROP : H_KEEP;
    default:
        return H_KEEP;
    }
}

static int response_header_drop(sf_slice n)
{
    switch (n.len) {
    case 2:
        return SF_HTTP_NAME_IS(n, "te");
    case 7:
        return SF_HTTP_NAME_IS(n, "trailer") || SF_HTTP_NAME_IS(n, "upgrade");
    case 10:
        return SF_HTTP_NAME_IS(n, "connection") || SF_HTTP_NAME_IS(n, "keep-alive");
    case 14:
        return SF_HTTP_NAME_IS(n, "content-length");
    case 16:
        return SF_HTTP_NAME_IS(n, "proxy-connection");
    case 17:
        return SF_HTTP_NAME_IS(n, "transfer-encoding");
    default:
        return 0;
    }
}

/* True when name is listed in one of the Connection headers (and so hop-by-hop). */
static int named_in_connection(const sf_http_header *h, size_t nh, sf_slice name)
{
    for (size_t i = 0; i < nh; i++) {
        if (!SF_HTTP_NAME_IS(h[i].name, "connection"))
            continue;
        const char *p = h[i].value.p, *end = p + h[i].value.len;
        while (p < end) {
            while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
                p++;
            const char *t = p;
            while (p < end && *p != ',' && *p != ' ' && *p != '\t')
                p++;
            if ((size_t)(p - t) == name.len && name.len > 0 &&
                strncasecmp(t, name.p, name.len) == 0)
                return 1;
        }
    }
    return 0;
}

#define PUT(w, s, n)                                                                               \
    do {                                                                                           \
        memcpy((w), (s), (n));                                                                     \
        (w) += (n);                                                                                \
    } while (0)
#define PUTLIT(w, lit) PUT(w, lit, sizeof(lit) - 1)

/* v in base 10 or 16 (lower case) at w, no NUL; returns the end. snprintf costs ~800
 * instructions a call, and every response head has a status and a length. */
static char *put_uint(char *w, uint64_t v, unsigned base)
{
    static const char digits[] = "0123456789abcdef";
    char tmp[20];
    int n = 0;
    do {
        tmp[n++] = digits[v % base];
        v /= base;
    } while (v != 0);
    while (n > 0)
        *w++ = tmp[--n];
    return w;
}

static char *put_content_length(char *w, int64_t len)
{
    PUTLIT(w, "Content-Length: ");
    w = put_uint(w, (uint64_t)len, 10);
    PUTLIT(w, "\r\n");
    return w;
}

static char *put_header(char *w, sf_slice name, sf_slice value)
{
    PUT(w, name.p, name.len);
    PUTLIT(w, ": ");
    PUT(w, value.p, value.len);
    PUTLIT(w, "\r\n");
    return w;
}

/* Moves n bytes from one buffer to the other without copying; with frame set, as one chunk of
 * the chunked coding (our own canonical framing, whatever the sender's was). Returns the bytes
 * added to "to". */
static size_t move_body(struct evbuffer *from, struct evbuffer *to, size_t n, int frame)
{
    size_t added = n;
    if (frame) {
        char hdr[24], *e = put_uint(hdr, n, 16);
        PUTLIT(e, "\r\n");
        evbuffer_add(to, hdr, (size_t)(e - hdr));
        added += (size_t)(e - hdr) + 2;
    }
    evbuffer_remove_buffer(from, to, n);
    if (frame)
        evbuffer_add(to, "\r\n", 2);
    return added;
}

/* True when a function's configured header replaces the client's header of that name. */
static int fn_header_override(const sf_function *fn, sf_slice name)
{
    for (size_t i = 0; i < fn->nheaders; i++)
        if (fn->headers[i].name_len == name.len &&
            strncasecmp(fn->headers[i].name, name.p, name.len) == 0)
            return 1;
    return 0;
}

/* An upper bound of the head write_head produces. */
static size_t head_bound(const sf_client *c, const sf_http_request *req, size_t head_len,
                         sf_slice target, const sf_backend *be)
{
    /* every header may grow by 2 bytes ("a:b" goes out as "a: b" with CRLF ends) */
    size_t n = head_len + 2 * req->num_headers + target.len +
               req->headers[req->host_index].value.len + strlen(c->ip) + strlen(c->x.reqid) + 288;
    if (be->fn != NULL) {
        n += strlen(be->fn->url.authority);
        for (size_t i = 0; i < be->fn->nheaders; i++)
            n += be->fn->headers[i].name_len + be->fn->headers[i].value_len + 4;
    }
    return n;
}

/* Writes the request head for backend be at w, with target as its request-target (origin
 * form). The monolith gets the client's Host; a function gets its URL's authority, and its
 * configured headers (DESIGN §5); a shadow's copy says so in X-Strangler-Shadow. Returns the
 * end of what was written. */
static char *write_head(sf_client *c, const sf_http_request *req, sf_slice target,
                        const sf_backend *be, int shadow, char *w)
{
    exchange *x = &c->x;
    const sf_function *fn = be->fn;
    sf_slice host = req->headers[req->host_index].value;

    PUT(w, req->method.p, req->method.len);
    *w++ = ' ';
    PUT(w, target.p, target.len);
    PUTLIT(w, " HTTP/1.1\r\n");

    int xff_seen = 0;
    for (size_t i = 0; i < req->num_headers; i++) {
        const sf_http_header *h = &req->headers[i];
        if ((int)i == req->host_index) {
            /* never dropped, even when named in Connection (RFC 9110 §7.2 needs it) */
            if (fn != NULL) {
                sf_slice auth = {fn->url.authority, strlen(fn->url.authority)};
                w = put_header(w, (sf_slice){"Host", 4}, auth);
            } else {
                w = put_header(w, h->name, h->value);
            }
            continue;
        }
        int cls = request_header_class(h->name);
        if (cls == H_DROP)
            continue;
        if ((req->flags & SF_HTTP_F_CONN_OTHER) &&
            named_in_connection(req->headers, req->num_headers, h->name))
            continue;
        if (cls == H_XFF) {
            /* X-Forwarded-For: the client's list, then the client itself (nginx's
             * $proxy_add_x_forwarded_for). Several header lines merge into one. */
            if (!xff_seen) {
                PUTLIT(w, "X-Forwarded-For: ");
                xff_seen = 1;
            } else {
                PUTLIT(w, ", ");
            }
            PUT(w, h->value.p, h->value.len);
            continue;
        }
        if (fn != NULL && fn->nheaders > 0 && fn_header_override(fn, h->name))
            continue;
        w = put_header(w, h->name, h->value);
    }
    size_t iplen = strlen(c->ip);
    if (xff_seen) {
        /* the merged value is still open: finish it with the client */
        PUTLIT(w, ", ");
        PUT(w, c->ip, iplen);
        PUTLIT(w, "\r\n");
    } else {
        PUTLIT(w, "X-Forwarded-For: ");
        PUT(w, c->ip, iplen);
        PUTLIT(w, "\r\n");
    }
    if (c->https)
        PUTLIT(w, "X-Forwarded-Proto: https\r\nX-Forwarded-Host: ");
    else
        PUTLIT(w, "X-Forwarded-Proto: http\r\nX-Forwarded-Host: ");
    PUT(w, host.p, host.len);
    PUTLIT(w, "\r\nX-Request-Id: ");
    PUT(w, x->reqid, strlen(x->reqid));
    PUTLIT(w, "\r\n");
    if (fn != NULL)
        for (size_t i = 0; i < fn->nheaders; i++) {
            const sf_header_conf *h = &fn->headers[i];
            w = put_header(w, (sf_slice){h->name, h->name_len}, (sf_slice){h->value, h->value_len});
        }
    if (shadow)
        PUTLIT(w, "X-Strangler-Shadow: 1\r\n");
    if (x->req_chunked) {
        PUTLIT(w, "Transfer-Encoding: chunked\r\n");
    } else if (req->content_length >= 0) {
        w = put_content_length(w, req->content_length);
    }
    PUTLIT(w, "\r\n");
    return w;
}

/* Writes the head for be into out; with copy set, also a malloc'd copy of it (for a replay).
 * Returns its length, or -1. */
static ssize_t build_upstream_head(sf_client *c, const sf_http_request *req, size_t head_len,
                                   sf_slice target, const sf_backend *be, struct evbuffer *out,
                                   char **copy)
{
    struct evbuffer_iovec v;
    size_t bound = head_bound(c, req, head_len, target, be);
    if (evbuffer_reserve_space(out, (ev_ssize_t)bound, &v, 1) < 1)
        return -1;
    char *start = v.iov_base;
    v.iov_len = (size_t)(write_head(c, req, target, be, 0, start) - start);
    if (copy != NULL) {
        *copy = malloc(v.iov_len);
        if (*copy != NULL)
            memcpy(*copy, start, v.iov_len);
    }
    evbuffer_commit_space(out, &v, 1);
    return (ssize_t)v.iov_len;
}

/* The head for be in a malloc'd buffer (a fallback's head). NULL when out of memory. */
static char *head_copy(sf_client *c, const sf_http_request *req, size_t head_len, sf_slice target,
                       const sf_backend *be, int shadow, size_t *len)
{
    char *buf = malloc(head_bound(c, req, head_len, target, be));
    if (buf != NULL)
        *len = (size_t)(write_head(c, req, target, be, shadow, buf) - buf);
    return buf;
}

/* A failure while talking to the upstream, logged with what we were doing. */
/* The upstream's timer: connect while connecting; upstream_response once the request is
 * sent or while the upstream's slowness holds the client back; none while the client is the
 * slow side (client_body covers that). */
static void arm_up_timer(sf_client *c)
{
    sf_upconn *up = c->x.up;
    if (up->connecting)
        sf_upconn_set_timer(up, c->srv->tv_up_connect);
    else if (c->x.up_paused)
        sf_upconn_set_timer(up, NULL); /* the client is the slow side: its send timer runs */
    else if (c->x.req_done || c->rev_paused)
        sf_upconn_set_timer(up, c->x.be->tv_response);
    else
        sf_upconn_set_timer(up, NULL);
}

static int fallback_to_legacy(sf_client *c, const char *what, const char *why);

/* Why a connection failed: the TLS layer's reason when it has one, else errno's. */
static const char *failure_reason(const exchange *x, int err)
{
    const char *tls = x->up != NULL ? sf_upconn_error(x->up) : NULL;
    return tls != NULL ? tls : err ? strerror(err) : NULL;
}

/* From here on the exchange is a fallback served by legacy (the caller moves the request). */
static void switch_to_legacy(sf_client *c)
{
    exchange *x = &c->x;
    /* the function's failed attempt counts as a function request of its own, so that its
     * error ratio shows the failures a fallback hides from clients */
    struct timespec now;
    now_mono(&now);
    record(c, &now);
    x->t_be = now;
    x->fallback = 1;
    x->up_err = SF_STATS_UPSTREAM_NONE;
    c->gen++;
    x->be = &x->rt->legacy;
    x->pool = x->be->pool;
}

/* The function failed before any response byte reached the client: legacy may still serve an
 * idempotent request on a route with fallback (DESIGN §5 step 5). */
static int can_fallback(const exchange *x)
{
    return x->fb_head != NULL && !x->resp_head && !x->fallback;
}

/* The upstream failed (kind: sf_stats_upstream_error): a fallback to legacy when the route
 * allows one, else status (or an aborted client once the response started). */
static int upstream_failed(sf_client *c, int status, int kind, const char *what, int err)
{
    exchange *x = &c->x;
    const char *why = failure_reason(x, err);
    x->up_err = (uint8_t)kind;
    if (can_fallback(x))
        return fallback_to_legacy(c, what, why);
    sf_warn("%s %s (%s)%s%s while forwarding %s %s [req %s]", what,
            x->pool ? sf_pool_name(x->pool) : "upstream", status == 504 ? "timeout" : "error",
            why ? ": " : "", why ? why : "", x->method, x->path, x->reqid);
    return finalize(c, status, what);
}

static void copy_slice(char *dst, size_t cap, sf_slice s)
{
    size_t n = s.len < cap - 1 ? s.len : cap - 1;
    memcpy(dst, s.p, n);
    dst[n] = '\0';
}

static int admin_request(sf_client *c, const sf_http_request *req, size_t head_len);
static int forward_body(sf_client *c);

static int is_idempotent(sf_slice m)
{
    return (m.len == 3 && (memcmp(m.p, "GET", 3) == 0 || memcmp(m.p, "PUT", 3) == 0)) ||
           (m.len == 4 && memcmp(m.p, "HEAD", 4) == 0) ||
           (m.len == 6 && memcmp(m.p, "DELETE", 6) == 0) ||
           (m.len == 7 && memcmp(m.p, "OPTIONS", 7) == 0);
}

/* GET or HEAD: asking twice changes nothing. */
static int is_safe(sf_slice m)
{
    return (m.len == 3 && memcmp(m.p, "GET", 3) == 0) ||
           (m.len == 4 && memcmp(m.p, "HEAD", 4) == 0);
}

static int method_listed(char *const *methods, size_t n, sf_slice m)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(methods[i]) == m.len && memcmp(methods[i], m.p, m.len) == 0)
            return 1;
    return 0;
}

/* Prepares the shadow of a request legacy serves on a route with a shadow block (its heads in
 * p, while the request head's slices are valid), or counts why there is none (DESIGN §5:
 * sampled out, method, body too large, over capacity): then p->fn_head stays NULL. */
static void prepare_shadow(sf_client *c, const sf_http_request *req, size_t head_len,
                           sf_slice npath, sf_slice query, sf_slice legacy_target, int sampled,
                           sf_shadow_params *p)
{
    sf_server *s = c->srv;
    exchange *x = &c->x;
    const sf_route *r = x->route;
    int slot = x->rt->route_slot[r->index];
    int why = -1;
    if (!sampled)
        why = SF_STATS_SKIP_SAMPLED;
    else if (!method_listed(r->shadow.methods, r->shadow.nmethods, req->method))
        why = SF_STATS_SKIP_METHOD;
    else if (req->content_length > 0 &&
             (uint64_t)req->content_length > s->cfg->shadow_max_body_bytes)
        why = SF_STATS_SKIP_BODY;
    else
        why = sf_shadow_admit(s, x->rt, r, slot);
    if (why >= 0) {
        sf_stats_record_shadow_reason(s->stats, slot, (sf_stats_shadow_reason)why, sf_mono_sec());
        return;
    }
    sf_backend *fn = &x->rt->fns[r->function_index];
    ssize_t n = sf_route_function_target(r, npath, query, s->md, s->targetbuf, s->targetbuf_cap);
    *p = (sf_shadow_params){
        .rt = x->rt,
        .route = r,
        .slot = slot,
        .fn = fn,
        .has_body = !x->req_done,
        .request_id = x->reqid,
        .method = x->method,
        .path = x->path,
    };
    if (n >= 0)
        p->fn_head = head_copy(c, req, head_len, (sf_slice){s->targetbuf, (size_t)n}, fn, 1,
                               &p->fn_head_len);
    if (p->fn_head == NULL) {
        sf_stats_record_shadow_reason(s->stats, slot, SF_STATS_ERR_PROTOCOL, sf_mono_sec());
        return;
    }
    if (r->shadow.learn_noise && x->req_done && is_safe(req->method) &&
        sf_server_random(s) % SHADOW_LEARN_EVERY == 0)
        p->learn_head =
            head_copy(c, req, head_len, legacy_target, &x->rt->legacy, 1, &p->learn_head_len);
}

/* Sends the pending shadow once the primary's head is out to legacy (a write the route shadows
 * never reaches the function first), then lets the request body flow, to both. Returns -1 when
 * c was freed. */
static int launch_shadow(sf_client *c)
{
    exchange *x = &c->x;
    sf_shadow_params *p = x->shadow_pending;
    if (p == NULL || x->up == NULL || x->up->connecting || evbuffer_get_length(x->up->out) > 0)
        return 0;
    x->shadow_pending = NULL;
    x->shadow = sf_shadow_start(c->srv, p); /* takes the heads */
    if (x->shadow == NULL)
        sf_stats_record_shadow_reason(c->srv->stats, p->slot, SF_STATS_SKIP_CAPACITY,
                                      sf_mono_sec());
    free(p);
    if (x->req_done)
        return 0;
    client_resume_read(c);
    return forward_body(c);
}

/* A complete, valid request head is at the start of c->in. */
static int start_request(sf_client *c, const sf_http_request *req, size_t head_len)
{
    sf_server *s = c->srv;
    exchange *x = &c->x;

    x->active = 1;
    c->gen++;
    now_mono(&x->t_start);
    x->t_be = x->t_start;
    copy_slice(x->method, sizeof(x->method), req->method);
    copy_slice(x->path, sizeof(x->path), req->target);
    x->is_head = req->method.len == 4 && memcmp(req->method.p, "HEAD", 4) == 0;
    x->http10 = req->minor_version == 0;
    x->keepalive = req->minor_version == 1 ? !(req->flags & SF_HTTP_F_CONN_CLOSE)
                                           : !!(req->flags & SF_HTTP_F_CONN_KEEPALIVE);
    if (s->draining)
        x->keepalive = 0;
    if (req->request_id_index >= 0 && valid_request_id(req->headers[req->request_id_index].value))
        copy_slice(x->reqid, sizeof(x->reqid), req->headers[req->request_id_index].value);
    else
        make_request_id(s, x->reqid);
    x->bytes_in = head_len;

    if (req->flags & SF_HTTP_F_CHUNKED) {
        x->req_chunked = 1;
        sf_chunked_init(&x->req_ch);
    } else if (req->content_length > 0) {
        x->req_left = req->content_length;
    } else {
        x->req_done = 1;
    }

    /* An absolute-form target must name the host the request is for (RFC 9112 §3.2.2). */
    if ((req->flags & SF_HTTP_F_ABSOLUTE_FORM) &&
        !(req->authority.len == req->headers[req->host_index].value.len &&
          strncasecmp(req->authority.p, req->headers[req->host_index].value.p,
                      req->authority.len) == 0)) {
        evbuffer_drain(c->in, head_len);
        return reject(c, SF_HTTP_E_TARGET);
    }
    if (req->content_length > 0 && (uint64_t)req->content_length > s->cfg->max_body_bytes) {
        evbuffer_drain(c->in, head_len);
        x->keepalive = 0;
        sf_info("rejected request from %s: Content-Length %lld over max_body_bytes [req %s]", c->ip,
                (long long)req->content_length, x->reqid);
        return finalize(c, 413, "body too large");
    }

    if (c->admin)
        return admin_request(c, req, head_len);

    /* Route on the normalized path (DESIGN §4). Both backends get the normalized form, so the
     * path that matched is the path the upstream sees. */
    x->rt = sf_runtime_ref(s->rt);
    int acq_err = 0;
    int shadow_sampled = -1; /* legacy serves a route with a shadow: 1 sampled in, 0 out */
    sf_shadow_params shadow = {.fn_head = NULL};
    sf_slice target = req->path, npath = {"/", 1}, query = {NULL, 0};
    if (!(req->flags & SF_HTTP_F_ASTERISK_FORM)) {
        const char *qm = memchr(req->path.p, '?', req->path.len);
        size_t plen = qm != NULL ? (size_t)(qm - req->path.p) : req->path.len;
        if (qm != NULL)
            query = (sf_slice){qm + 1, req->path.len - plen - 1};
        if (plen > 0) {
            ssize_t n = sf_path_normalize(req->path.p, plen, s->pathbuf);
            if (n < 0) {
                evbuffer_drain(c->in, head_len);
                sf_info("rejected request from %s: path cannot be normalized safely: %s [req %s]",
                        c->ip, x->path, x->reqid);
                return finalize(c, 400, "path cannot be normalized");
            }
            npath = (sf_slice){s->pathbuf, (size_t)n};
        }
        if (npath.len != plen || memcmp(npath.p, req->path.p, plen) != 0) {
            /* the legacy target: the normalized path and the query as it came */
            char *w = s->pathbuf;
            if (npath.p != s->pathbuf)
                memcpy(w, npath.p, npath.len);
            npath.p = s->pathbuf;
            w += npath.len;
            if (qm != NULL) {
                *w++ = '?';
                memcpy(w, query.p, query.len);
                w += query.len;
            }
            target = (sf_slice){s->pathbuf, (size_t)(w - s->pathbuf)};
        }
        sf_match_input in = {
            req->method, npath, req->headers, req->num_headers, {c->ip, strlen(c->ip)}};
        x->route = sf_route_match(x->rt->table, &in, s->md);
        if (x->route != NULL && x->route->shadow.enabled) {
            uint32_t bucket = sf_route_bucket(x->route, &in, sf_server_random(s));
            if (bucket < x->route->cutover_bp)
                x->be = &x->rt->fns[x->route->function_index];
            else
                shadow_sampled = sf_route_shadowed(x->route, bucket) ? 1 : 0;
        } else if (x->route != NULL && sf_route_decide(x->route, &in, sf_server_random(s))) {
            x->be = &x->rt->fns[x->route->function_index];
        }
    }
    if (x->be == NULL) {
        x->be = &x->rt->legacy;
    } else {
        /* the function's target; the legacy one stays for a fallback */
        sf_slice legacy_target = target;
        ssize_t n =
            sf_route_function_target(x->route, npath, query, s->md, s->targetbuf, s->targetbuf_cap);
        if (n < 0) {
            evbuffer_drain(c->in, head_len);
            sf_error("route %s: the rewrite of %s gave no valid path for %s [req %s]",
                     x->route->name, x->path, x->be->name, x->reqid);
            x->be = NULL; /* the function was never asked: counted as the proxy's answer */
            return finalize(c, 500, "rewrite failed");
        }
        target = (sf_slice){s->targetbuf, (size_t)n};
        if (x->route->fallback && is_idempotent(req->method)) {
            x->fb_head = head_copy(c, req, head_len, legacy_target, &x->rt->legacy, 0, &x->fb_len);
            if (x->fb_head != NULL && !x->req_done)
                x->fb_body = evbuffer_new();
        }
        x->up = sf_pool_acquire(x->be->pool, c, &up_ops, 0);
        acq_err = errno;
        if (x->up == NULL && can_fallback(x)) {
            sf_info("connect to %s failed (%s) for %s %s; serving it from legacy (fallback) "
                    "[req %s]",
                    x->be->name, strerror(acq_err), x->method, x->path, x->reqid);
            x->up_err = SF_STATS_UPSTREAM_CONNECT;
            switch_to_legacy(c);
            target = legacy_target;
            free(x->fb_head);
            x->fb_head = NULL;
            if (x->fb_body != NULL)
                evbuffer_free(x->fb_body);
            x->fb_body = NULL;
        }
    }
    x->pool = x->be->pool;
    if (x->up == NULL && (x->be->fn == NULL || x->fallback)) {
        x->up = sf_pool_acquire(x->pool, c, &up_ops, 0);
        acq_err = errno;
    }
    if (x->up == NULL) {
        evbuffer_drain(c->in, head_len);
        return upstream_failed(c, 502, SF_STATS_UPSTREAM_CONNECT, "connect to", acq_err);
    }
    int replayable = x->up->reused && x->req_done && is_idempotent(req->method);
    if (build_upstream_head(c, req, head_len, target, x->be, x->up->out,
                            replayable ? &x->retry_head : NULL) < 0) {
        evbuffer_drain(c->in, head_len);
        free(x->fb_head); /* no fallback from here: the request state is not set up */
        x->fb_head = NULL;
        return upstream_failed(c, 502, SF_STATS_UPSTREAM_NONE,
                               "out of memory building the request for", ENOMEM);
    }
    if (x->retry_head != NULL)
        x->retry_len = evbuffer_get_length(x->up->out);
    if (shadow_sampled >= 0)
        prepare_shadow(c, req, head_len, npath, query, target, shadow_sampled, &shadow);
    now_mono(&x->t_up);
    evbuffer_drain(c->in, head_len);

    if ((req->flags & SF_HTTP_F_EXPECT_CONTINUE) && !x->req_done && !x->http10 &&
        evbuffer_get_length(c->in) == 0) {
        /* We answer the expectation ourselves: the body will be streamed as it comes. */
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        evbuffer_add(c->out, cont, sizeof(cont) - 1);
    }

    if (x->req_done) {
        c->state = CS_WAIT;
        client_timer(c, NULL);
    } else {
        c->state = CS_BODY;
        client_timer(c, s->tv_client_body);
    }
    arm_up_timer(c);
    if (client_flush(c) < 0) {
        free(shadow.fn_head);
        free(shadow.learn_head);
        return -1;
    }
    if (shadow.fn_head != NULL) {
        /* the body waits (the client paused) until the primary's head is out and the shadow
         * started: then both get every byte */
        x->shadow_pending = malloc(sizeof(*x->shadow_pending));
        if (x->shadow_pending == NULL) {
            free(shadow.fn_head);
            free(shadow.learn_head);
        } else {
            *x->shadow_pending = shadow;
            if (!x->req_done) {
                client_pause_read(c);
                client_timer(c, NULL); /* we are the ones waiting: the upstream's timer runs */
            }
            uint32_t gen = c->gen;
            int rc = flush_up(c);
            if (rc < 0 || c->gen != gen)
                return rc; /* c freed, or the exchange ended or moved */
            return launch_shadow(c);
        }
    }
    if (!x->req_done)
        return forward_body(c);
    return flush_up(c);
}

/* Copies what was appended to out from offset "from" into the fallback's body, or gives up the
 * fallback once the body is over FALLBACK_BODY_MAX. */
static void keep_for_fallback(exchange *x, struct evbuffer *out, size_t from)
{
    size_t len = evbuffer_get_length(out) - from;
    if (evbuffer_get_length(x->fb_body) + len > FALLBACK_BODY_MAX) {
        evbuffer_free(x->fb_body);
        x->fb_body = NULL;
        free(x->fb_head);
        x->fb_head = NULL;
        return;
    }
    sf_evbuffer_each(out, from, len, sf_evbuffer_append_fn, x->fb_body);
}

/* Moves request body bytes from the client to the upstream. */
static int forward_body(sf_client *c)
{
    sf_server *s = c->srv;
    exchange *x = &c->x;
    sf_upconn *up = x->up;
    size_t before = evbuffer_get_length(up->out);

    if (x->req_chunked) {
        struct evbuffer_iovec v;
        while (!x->req_done && evbuffer_peek(c->in, -1, NULL, &v, 1) > 0 && v.iov_len > 0) {
            size_t dlen;
            ssize_t f = sf_chunked_parse(&x->req_ch, v.iov_base, v.iov_len, &dlen);
            if (f < 0) {
                sf_info("rejected request body from %s: malformed chunked framing [req %s]", c->ip,
                        x->reqid);
                x->keepalive = 0;
                return finalize(c, 400, "malformed chunked body");
            }
            evbuffer_drain(c->in, (size_t)f);
            x->bytes_in += (uint64_t)f;
            if (dlen > 0) {
                x->req_body += dlen;
                if (x->req_body > s->cfg->max_body_bytes) {
                    x->keepalive = 0;
                    return finalize(c, 413, "body too large");
                }
                move_body(c->in, up->out, dlen, 1);
                x->bytes_in += dlen;
                sf_chunked_data(&x->req_ch, dlen);
            }
            if (sf_chunked_done(&x->req_ch)) {
                evbuffer_add(up->out, "0\r\n\r\n", 5);
                x->req_done = 1;
            } else if (f == 0 && dlen == 0) {
                break;
            }
        }
    } else {
        size_t avail = evbuffer_get_length(c->in);
        size_t n = (uint64_t)x->req_left < avail ? (size_t)x->req_left : avail;
        if (n > 0) {
            evbuffer_remove_buffer(c->in, up->out, n);
            x->req_left -= (int64_t)n;
            x->bytes_in += n;
        }
        if (x->req_left == 0)
            x->req_done = 1;
    }
    if (x->fb_body != NULL)
        keep_for_fallback(x, up->out, before);
    if (x->shadow != NULL) {
        sf_shadow_body(x->shadow, up->out, before, evbuffer_get_length(up->out) - before);
        if (x->req_done)
            sf_shadow_body_end(x->shadow);
    }

    if (x->req_done) {
        c->state = CS_WAIT;
        if (!c->timer_send)
            client_timer(c, NULL);
        arm_up_timer(c);
        return flush_up(c);
    }
    if (evbuffer_get_length(up->out) >= OUT_HIGH) {
        client_pause_read(c); /* the upstream is slower than the client: wait for it */
        if (!c->timer_send)
            client_timer(c, NULL);
        arm_up_timer(c);
    } else if (!c->timer_send) {
        client_timer(c, s->tv_client_body);
    }
    uint32_t gen = c->gen;
    if (flush_up(c) < 0)
        return -1;
    if (c->gen != gen || !x->active || x->up == NULL)
        return 0; /* the exchange ended or moved to legacy while flushing */
    /* a flush that drained at once raises no on_drained: resume here */
    return resume_body_if_drained(c);
}

/* Serves the request from legacy after its function failed before any response byte went to
 * the client (connect error, timeout, 502/503/504): the legacy head and the body bytes kept so
 * far are sent on a legacy connection; the rest of the body, if any, follows as it comes. */
static int fallback_to_legacy(sf_client *c, const char *what, const char *why)
{
    exchange *x = &c->x;
    sf_info("%s %s failed%s%s for %s %s; serving it from legacy (fallback) [req %s]", what,
            x->be->name, why ? ": " : "", why ? why : "", x->method, x->path, x->reqid);
    if (x->up != NULL) {
        sf_upconn_close(x->up, 1);
        x->up = NULL;
    }
    switch_to_legacy(c);
    x->status = 0;
    free(x->retry_head);
    x->retry_head = NULL;
    x->retried = 0;
    x->up = sf_pool_acquire(x->pool, c, &up_ops, 0);
    if (x->up == NULL)
        return upstream_failed(c, 502, SF_STATS_UPSTREAM_CONNECT, "connect to", errno);
    evbuffer_add(x->up->out, x->fb_head, x->fb_len);
    if (x->fb_body == NULL && x->req_done && x->up->reused) {
        /* no body: the head alone can be replayed if this pooled connection is dead */
        x->retry_head = x->fb_head;
        x->retry_len = x->fb_len;
    } else {
        free(x->fb_head);
    }
    x->fb_head = NULL;
    if (x->fb_body != NULL) {
        evbuffer_add_buffer(x->up->out, x->fb_body);
        evbuffer_free(x->fb_body);
        x->fb_body = NULL;
    }
    now_mono(&x->t_up);
    arm_up_timer(c);
    uint32_t gen = c->gen;
    if (flush_up(c) < 0)
        return -1;
    if (c->gen != gen)
        return 0;
    return resume_body_if_drained(c);
}

static int advance(sf_client *c);

/* An admin call whose body has not all arrived: wait (1), or reject what the admin API does
 * not take, chunked or oversized bodies (2, or -1 when c is gone). Returns 0 when head and
 * body are both in buf[0..look). */
static int admin_body_pending(sf_client *c, const sf_http_request *req, size_t head_len,
                              size_t look)
{
    if (req->flags & SF_HTTP_F_CHUNKED) {
        evbuffer_drain(c->in, head_len);
        c->x.keepalive = 0;
        snprintf(c->x.method, sizeof(c->x.method), "-");
        snprintf(c->x.reqid, sizeof(c->x.reqid), "-");
        return finalize(c, 411, "admin calls take Content-Length bodies") < 0 ? -1 : 2;
    }
    if (req->content_length > SF_ADMIN_BODY_MAX) {
        evbuffer_drain(c->in, head_len);
        c->x.keepalive = 0;
        snprintf(c->x.method, sizeof(c->x.method), "-");
        snprintf(c->x.reqid, sizeof(c->x.reqid), "-");
        return finalize(c, 413, "admin body too large") < 0 ? -1 : 2;
    }
    if (req->content_length > 0 && look < head_len + (size_t)req->content_length) {
        if (!c->head_started) {
            c->head_started = 1;
            client_timer(c, c->srv->tv_client_header);
        }
        return 1;
    }
    return 0;
}

static int client_advance(sf_client *c)
{
    c->in_advance = 1;
    int rc = advance(c);
    if (rc == 0)
        c->in_advance = 0; /* rc < 0: c is gone */
    return rc;
}

static int advance(sf_client *c)
{
    sf_server *s = c->srv;
    for (;;) {
        switch (c->state) {
        case CS_HEAD: {
            size_t len = evbuffer_get_length(c->in);
            if (len == 0)
                return 0;
            if (evbuffer_get_length(c->out) >= OUT_HIGH) {
                /* A pipelining client that does not read its responses: take no request until
                 * they drain (pipeline_resume), so they cannot pile up; the send timeout runs. */
                client_pause_read(c);
                return 0;
            }
            /* an admin call's body is read whole, with its head, before it is answered */
            size_t limit = s->limits.max_head_bytes + 64 + (c->admin ? SF_ADMIN_BODY_MAX : 0);
            size_t look = len < limit ? len : limit;
            const char *buf = (const char *)evbuffer_pullup(c->in, (ev_ssize_t)look);
            sf_http_request req;
            ssize_t r = sf_http_parse_request(buf, look, &req, s->hdrs, s->hdrs_cap, &s->limits);
            if (r > 0 && c->admin) {
                int rc = admin_body_pending(c, &req, (size_t)r, look);
                if (rc != 0)
                    return rc < 0 ? -1 : 0;
            }
            if (r == SF_HTTP_INCOMPLETE) {
                if (!c->head_started) {
                    c->head_started = 1;
                    client_timer(c, s->tv_client_header);
                }
                return 0;
            }
            if (r < 0)
                return reject(c, r);
            if (start_request(c, &req, (size_t)r) < 0)
                return -1;
            if (c->state == CS_HEAD || c->state == CS_WAIT)
                continue; /* answered locally: maybe a pipelined request follows; or bound
                           * what waits behind the exchange */
            return 0;
        }
        case CS_BODY:
            return forward_body(c);
        case CS_WAIT:
            /* Pipelined bytes wait for this exchange to end; bound what we hold. */
            if (evbuffer_get_length(c->in) > s->limits.max_head_bytes + SF_READ_CHUNK)
                client_pause_read(c);
            return 0;
        default:
            return 0;
        }
    }
}

/* Reads and drops what a lingering client still sends, until it closes. */
static void linger_read(sf_client *c)
{
    char sink[4096];
    ssize_t n = read(c->fd, sink, sizeof(sink));
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
        client_free(c, 0);
}

/* The client closed (reset: with an error). */
static void client_gone(sf_client *c, int reset)
{
    if (c->x.active) {
        /* The client went away mid-exchange (nginx's 499): stop the upstream side. */
        c->x.status = 499;
        c->x.error = reset ? "client reset" : "client closed";
        account(c);
    }
    client_free(c, reset);
}

static void on_client_read(evutil_socket_t fd, short what, void *arg)
{
    sf_client *c = arg;
    (void)fd;
    (void)what;
    if (c->state == CS_LINGER) {
        linger_read(c);
        return;
    }
    ssize_t n = sf_read_into(c->in, c->fd, &c->wide_reads);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        client_gone(c, n < 0);
        return;
    }
    client_advance(c);
}

static void client_tls_arm(sf_client *c);
static int client_tls_send(sf_client *c);

static int client_flush(sf_client *c)
{
    sf_server *s = c->srv;
    exchange *x = &c->x;
    size_t had = evbuffer_get_length(c->out);
    if (had > 0) {
        int failed;
        if (c->tls.ssl == NULL) {
            ssize_t n = evbuffer_write(c->out, c->fd);
            failed = n < 0 && errno != EAGAIN && errno != EINTR;
        } else {
            failed = client_tls_send(c) < 0;
        }
        if (failed) {
            if (x->active) {
                x->status = x->status ? x->status : 499;
                x->error = "client write failed";
                account(c);
            }
            client_free(c, 1);
            return -1;
        }
    }
    size_t left = evbuffer_get_length(c->out);
    if (left > 0) {
        if (!c->wev_on && c->tls.ssl == NULL) {
            c->wev_on = 1;
            event_add(&c->wev, NULL);
        }
        /* A client that does not read its response is cut off after client_body without
         * progress: the countdown restarts only when bytes went out (nginx's send_timeout). */
        if (!c->timer_send || left < had) {
            client_timer(c, s->tv_client_body);
            c->timer_send = 1;
        }
    } else {
        if (c->wev_on && c->tls.ssl == NULL) {
            c->wev_on = 0;
            event_del(&c->wev);
        }
        if (c->timer_send)
            client_timer(c, NULL);
        if (c->state == CS_CLOSING) {
            start_linger(c);
            return 0;
        }
        if (c->state == CS_HEAD && !c->head_started)
            client_timer(c, s->tv_keepalive);
        else if (c->state == CS_HEAD)
            client_timer(c, s->tv_client_header);
        else if (c->state == CS_BODY && !c->rev_paused)
            client_timer(c, s->tv_client_body);
    }
    if (c->tls.ssl != NULL)
        client_tls_arm(c);
    if (x->up_paused && left < OUT_LOW && x->up != NULL) {
        x->up_paused = 0;
        sf_upconn_resume_read(x->up);
        sf_upconn_set_timer(x->up, x->be->tv_response);
    }
    return 0;
}

/* After a write: pipelined requests held back by advance() while the responses were above
 * OUT_HIGH go on once they drained below OUT_LOW. */
static void pipeline_resume(sf_client *c)
{
    if (c->state != CS_HEAD || !c->rev_paused || evbuffer_get_length(c->out) >= OUT_LOW)
        return;
    client_resume_read(c);
    if (evbuffer_get_length(c->in) > 0)
        client_advance(c);
}

static void on_client_write(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    if (client_flush(arg) == 0)
        pipeline_resume(arg);
}

/* ---- TLS client connections ----
 * Their events run on_tls_event instead of the plain callbacks; past the record layer
 * (tls.c) everything is the plain path's: client_advance on new bytes, client_flush to send.
 * The handshake runs under the client_header timer set at the accept, so a client that never
 * finishes it is closed like a slowloris head. */

/* From here on the connection is plain TCP (a TLS one that lingers, or that got plain HTTP):
 * its events go to the plain callbacks. */
static void client_plain_events(sf_client *c)
{
    event_del(&c->rev);
    event_del(&c->wev);
    c->wev_on = 0;
    event_assign(&c->rev, c->srv->base, c->fd, EV_READ | EV_PERSIST, on_client_read, c);
    event_assign(&c->wev, c->srv->base, c->fd, EV_WRITE | EV_PERSIST, on_client_write, c);
    if (!c->rev_paused)
        event_add(&c->rev, NULL);
}

static void client_tls_arm(sf_client *c)
{
    c->wev_on = (unsigned)sf_tls_arm(&c->tls, &c->rev, &c->wev, evbuffer_get_length(c->out) > 0,
                                     c->rev_paused);
}

/* Logs why a TLS connection with the client ended (what: "handshake with", "read from"),
 * the reason formatted only when the line is logged. */
static void log_tls_end(const sf_client *c, int level, sf_tls_status st, const char *what)
{
    char why[160];
    if (level < sf_log_level)
        return;
    sf_tls_reason(&c->tls, st, "client", why, sizeof(why));
    sf_log_write(level, "TLS %s %s failed: %s", what, c->ip, why);
}

/* Sends what c->out holds. Returns 0, or -1 when the connection failed. */
static int client_tls_send(sf_client *c)
{
    if (c->tls.wr)
        return 0; /* an SSL_write waits for readability: tls_readable retries it */
    sf_tls_status st = sf_tls_write(&c->tls, c->out);
    if (st == SF_TLS_DONE || st == SF_TLS_WANT_READ || st == SF_TLS_WANT_WRITE)
        return 0;
    log_tls_end(c, SF_LOG_DEBUG, st, "write to");
    return -1;
}

static void client_tls_receive(sf_client *c)
{
    sf_tls_status st;
    size_t n = sf_tls_read(&c->tls, c->in, &st);
    int more = st == SF_TLS_WANT_READ || st == SF_TLS_WANT_WRITE || st == SF_TLS_DONE;
    client_tls_arm(c);
    if (n > 0) {
        /* the budget ran out: more may wait inside OpenSSL, come back for it */
        if (st == SF_TLS_DONE)
            event_active(&c->rev, EV_READ, 1);
        if (client_advance(c) < 0 || more)
            return;
        /* The end came behind the data. Reads held back (a response still going out) see it
         * when they resume, as a plain FIN waits in the socket; so does a lingering close. */
        if (c->rev_paused || c->state == CS_LINGER)
            return;
    } else if (more) {
        return;
    }
    if (st == SF_TLS_FAILED)
        log_tls_end(c, SF_LOG_DEBUG, st, "read from");
    client_gone(c, st == SF_TLS_FAILED);
}

/* Plain HTTP sent to a TLS listener (http:// to an https port): a TLS connection starts with
 * a handshake record (0x16), a request line with a method's capital letters. Answered as
 * nginx does, with a plain-text 400 that says so, then closed: the person at the browser or
 * curl sees why. Returns 1 when it was that (c may be gone then). */
static int plain_http_sent(sf_client *c)
{
    static const char body[] = "400 Bad Request: plain HTTP was sent to a TLS port; use https://\n";
    unsigned char first;
    if (recv(c->fd, &first, 1, MSG_PEEK) != 1 || first < 'A' || first > 'Z')
        return 0;
    sf_info("plain HTTP request from %s on a TLS listener; 400", c->ip);
    sf_tls_close(&c->tls, 1);
    client_plain_events(c);
    snprintf(c->x.method, sizeof(c->x.method), "-");
    snprintf(c->x.reqid, sizeof(c->x.reqid), "-");
    c->x.keepalive = 0;
    respond_local(c, 400, "text/plain; charset=utf-8", body, sizeof(body) - 1, 1, NULL);
    finalize(c, 0, "plain HTTP on a TLS port");
    return 1;
}

static void client_tls_handshake(sf_client *c)
{
    if (!c->tls_sniffed) {
        c->tls_sniffed = 1;
        if (plain_http_sent(c))
            return;
    }
    sf_tls_status st = sf_tls_handshake(&c->tls);
    if (st == SF_TLS_DONE) {
        client_tls_arm(c);
        /* the first request may have come right behind the client's Finished */
        client_tls_receive(c);
        return;
    }
    if (st == SF_TLS_WANT_READ || st == SF_TLS_WANT_WRITE) {
        client_tls_arm(c);
        return;
    }
    /* scanners and clients with nothing in common with us are routine: info, not warn; a
     * client that hangs up (a port check) is not worth a line */
    log_tls_end(c, st == SF_TLS_FAILED ? SF_LOG_INFO : SF_LOG_DEBUG, st, "handshake with");
    client_free(c, 0);
}

static void tls_readable(sf_client *c)
{
    if (c->tls.wr) {
        /* an SSL_write was waiting for this; the read side's turn comes on the next pass */
        c->tls.wr = 0;
        if (client_flush(c) < 0)
            return;
        if (c->tls.ssl != NULL && !c->rev_paused)
            event_active(&c->rev, EV_READ, 1);
        pipeline_resume(c);
        return;
    }
    if (!c->rev_paused)
        client_tls_receive(c);
}

static void tls_writable(sf_client *c)
{
    if (c->tls.rw) {
        /* an SSL_read was waiting for this; paused, it is retried on resume */
        c->tls.rw = 0;
        if (c->rev_paused)
            client_tls_arm(c);
        else
            client_tls_receive(c);
        return;
    }
    if (client_flush(c) == 0)
        pipeline_resume(c);
}

/* Both events of a TLS connection: what OpenSSL waits for decides what each one means. */
static void on_tls_event(evutil_socket_t fd, short what, void *arg)
{
    sf_client *c = arg;
    (void)fd;
    if (c->tls.hs)
        client_tls_handshake(c);
    else if (what & EV_READ)
        tls_readable(c);
    else
        tls_writable(c);
}

static void on_client_timer(void *arg)
{
    sf_client *c = arg;
    if (c->timer_send && evbuffer_get_length(c->out) > 0) {
        sf_info("client %s did not read its response for the send timeout; closing", c->ip);
        if (c->x.active) {
            c->x.error = "client send timeout";
            account(c);
        }
        client_free(c, 1);
        return;
    }
    switch (c->state) {
    case CS_HEAD:
        if (c->head_started && evbuffer_get_length(c->in) > 0) {
            /* slowloris: a head that does not complete in time */
            sf_info("request head from %s not complete within client_header; 408", c->ip);
            snprintf(c->x.method, sizeof(c->x.method), "-");
            snprintf(c->x.reqid, sizeof(c->x.reqid), "-");
            c->x.keepalive = 0;
            finalize(c, 408, "request header timeout");
        } else {
            /* slowloris on TLS: a handshake that does not complete in time */
            if (c->tls.hs)
                sf_info("TLS handshake from %s not complete within client_header; closing", c->ip);
            client_free(c, 0); /* idle keep-alive connection, or nothing sent at all */
        }
        return;
    case CS_BODY:
        sf_info("request body from %s stalled past client_body; 408 [req %s]", c->ip, c->x.reqid);
        c->x.keepalive = 0;
        finalize(c, 408, "request body timeout");
        return;
    default:
        client_free(c, 0);
        return;
    }
}

/* ---- upstream side ---- */

static int retry_fresh(sf_client *c);

/* A write to the upstream failed: replay on a fresh connection when that is safe, else fail
 * (or fall back). Returns -1 when c was freed. */
static int write_failed(sf_client *c, int err)
{
    if (can_retry(&c->x))
        return retry_fresh(c);
    return upstream_failed(c, 502, SF_STATS_UPSTREAM_RESET, "sending the request failed to", err);
}

/* Flushes the upstream's output. A write error found on the way is handled here, after the
 * flush returned, so that the return value tells the caller the truth: -1 only when c was
 * freed. */
static int flush_up(sf_client *c)
{
    exchange *x = &c->x;
    x->flushing = 1;
    x->write_err = 0;
    int rc = sf_upconn_flush(x->up);
    x->flushing = 0;
    if (rc < 0 || x->write_err != 0)
        return write_failed(c, x->write_err != 0 ? x->write_err : EPIPE);
    return 0;
}

static int retry_fresh(sf_client *c)
{
    exchange *x = &c->x;
    sf_upconn_close(x->up, 1);
    x->retried = 1;
    x->up = sf_pool_acquire(x->pool, c, &up_ops, 1);
    if (x->up == NULL)
        return upstream_failed(c, 502, SF_STATS_UPSTREAM_CONNECT, "connect to", errno);
    evbuffer_add(x->up->out, x->retry_head, x->retry_len);
    arm_up_timer(c);
    return flush_up(c);
}

/* The idle pooled connection died as we reused it (the backend's keep-alive timeout raced
 * us): replay on a fresh connection when nothing can have been processed twice. */
static int can_retry(const exchange *x)
{
    return x->retry_head != NULL && !x->retried && x->up->reused && !x->resp_head &&
           evbuffer_get_length(x->up->in) == 0;
}

static void up_on_connect(void *owner, sf_upconn *up, int err)
{
    sf_client *c = owner;
    if (err != 0) {
        upstream_failed(c, 502, SF_STATS_UPSTREAM_CONNECT, "connect to", err);
        return;
    }
    (void)up;
    arm_up_timer(c);
    uint32_t gen = c->gen;
    if (flush_up(c) < 0 || c->gen != gen)
        return;
    if (c->x.shadow_pending != NULL) {
        launch_shadow(c);
        return;
    }
    resume_body_if_drained(c);
}

/* Resumes a client paused on a full upstream buffer (and forwards what it had sent). Returns
 * -1 when c was freed. */
static int resume_body(sf_client *c)
{
    if (c->state != CS_BODY || !c->rev_paused)
        return 0;
    client_resume_read(c);
    arm_up_timer(c);
    if (evbuffer_get_length(c->in) > 0)
        return forward_body(c);
    if (!c->timer_send)
        client_timer(c, c->srv->tv_client_body);
    return 0;
}

/* A flush that empties the buffer at once raises no on_drained: callers of flush_up outside
 * the write event check here. */
static int resume_body_if_drained(sf_client *c)
{
    if (c->x.up != NULL && evbuffer_get_length(c->x.up->out) < OUT_LOW)
        return resume_body(c);
    return 0;
}

static void up_on_drained(void *owner, sf_upconn *up)
{
    sf_client *c = owner;
    (void)up;
    if (c->x.shadow_pending != NULL) {
        launch_shadow(c);
        return;
    }
    resume_body(c);
}

static void up_on_write_error(void *owner, sf_upconn *up, int err)
{
    sf_client *c = owner;
    (void)up;
    if (c->x.flushing) {
        c->x.write_err = err; /* flush_up handles it once the flush returned */
        return;
    }
    write_failed(c, err);
}

static void up_on_timeout(void *owner, sf_upconn *up)
{
    sf_client *c = owner;
    if (up->connecting)
        upstream_failed(c, 504, SF_STATS_UPSTREAM_TIMEOUT, "connect timed out to", 0);
    else if (!c->x.resp_head)
        upstream_failed(c, 504, SF_STATS_UPSTREAM_TIMEOUT,
                        "no response within upstream_response from", 0);
    else
        upstream_failed(c, 504, SF_STATS_UPSTREAM_TIMEOUT,
                        "response body stalled past upstream_response from", 0);
}

/* Writes the client's response head from the upstream's. */
static int relay_head(sf_client *c, const sf_http_response *resp, size_t head_len)
{
    exchange *x = &c->x;
    struct evbuffer_iovec v;
    if (evbuffer_reserve_space(c->out, (ev_ssize_t)(head_len + 128), &v, 1) < 1)
        return -1;
    char *w = v.iov_base, *start = w;
    PUTLIT(w, "HTTP/1.1 ");
    w = put_uint(w, (uint64_t)resp->status, 10);
    PUTLIT(w, " ");
    PUT(w, resp->reason.p, resp->reason.len);
    PUTLIT(w, "\r\n");
    for (size_t i = 0; i < resp->num_headers; i++) {
        const sf_http_header *h = &resp->headers[i];
        if (response_header_drop(h->name))
            continue;
        if ((resp->flags & SF_HTTP_F_CONN_OTHER) &&
            named_in_connection(resp->headers, resp->num_headers, h->name))
            continue;
        w = put_header(w, h->name, h->value);
    }
    switch (x->resp.mode) {
    case SF_HTTP_BODY_LENGTH:
        w = put_content_length(w, resp->content_length);
        break;
    case SF_HTTP_BODY_NONE:
        /* HEAD and 304 keep the length of the representation; 1xx and 204 have none. */
        if (resp->content_length >= 0 && resp->status != 204)
            w = put_content_length(w, resp->content_length);
        break;
    default:
        if (!x->http10) {
            PUTLIT(w, "Transfer-Encoding: chunked\r\n");
            x->client_chunked = 1;
        } else {
            x->keepalive = 0; /* HTTP/1.0: the end of the body is the end of the connection */
        }
        break;
    }
    if (!x->keepalive || c->srv->draining)
        PUTLIT(w, "Connection: close\r\n");
    else if (x->http10)
        PUTLIT(w, "Connection: keep-alive\r\n");
    PUTLIT(w, "\r\n");
    v.iov_len = (size_t)(w - start);
    evbuffer_commit_space(c->out, &v, 1);
    x->bytes_out += v.iov_len;
    return 0;
}

/* Moves response body bytes from the upstream to the client. Returns 1 when the body is
 * complete, 0 when more is due, -1 on framing errors. */
/* A run of n body bytes at the front of in: to the client (framed again when the client gets
 * chunked), and to the shadow's capture. */
static void relay_take(void *arg, struct evbuffer *in, size_t n)
{
    sf_client *c = arg;
    exchange *x = &c->x;
    if (x->shadow != NULL)
        sf_shadow_primary_body(x->shadow, in, n);
    x->bytes_out += move_body(in, c->out, n, x->client_chunked);
}

static int relay_body(sf_client *c)
{
    exchange *x = &c->x;
    int done = sf_body_read(&x->resp, x->up->in, relay_take, c);
    if (done == 1 && x->resp.mode == SF_HTTP_BODY_CHUNKED && x->client_chunked) {
        evbuffer_add(c->out, "0\r\n\r\n", 5);
        x->bytes_out += 5;
    }
    return done;
}

/* Parses the upstream's response head (skipping interim 1xx) and relays what body there is. */
static int process_response(sf_client *c)
{
    sf_server *s = c->srv;
    exchange *x = &c->x;
    sf_upconn *up = x->up;

    /* c->out was empty and the head is relayed by this call: nothing of the response has
     * reached the client yet if the body turns out broken in the same read */
    int head_now = !x->resp_head && evbuffer_get_length(c->out) == 0;
    while (!x->resp_head) {
        sf_http_response resp;
        ssize_t r = sf_server_parse_response(s, up->in, &resp);
        if (r == SF_HTTP_INCOMPLETE)
            return 0;
        if (r < 0) {
            x->up_err = SF_STATS_UPSTREAM_PROTOCOL;
            if (can_fallback(x))
                return fallback_to_legacy(c, "response from", sf_http_error_str(r));
            sf_warn("invalid response from %s: %s, while forwarding %s %s [req %s]",
                    sf_pool_name(x->pool), sf_http_error_str(r), x->method, x->path, x->reqid);
            return finalize(c, 502, "invalid upstream response");
        }
        if (resp.status < 200) {
            if (resp.status == 101) {
                sf_warn("unexpected 101 from %s for %s %s [req %s]", sf_pool_name(x->pool),
                        x->method, x->path, x->reqid);
                x->up_err = SF_STATS_UPSTREAM_PROTOCOL;
                return finalize(c, 502, "unexpected protocol switch");
            }
            if (++x->interim > INTERIM_MAX) {
                sf_warn("more than %d interim responses from %s for %s %s [req %s]", INTERIM_MAX,
                        sf_pool_name(x->pool), x->method, x->path, x->reqid);
                x->up_err = SF_STATS_UPSTREAM_PROTOCOL;
                return finalize(c, 502, "too many interim responses");
            }
            evbuffer_drain(up->in, (size_t)r); /* interim responses are not relayed */
            continue;
        }
        if ((resp.status == 502 || resp.status == 503 || resp.status == 504) && can_fallback(x)) {
            char why[32];
            snprintf(why, sizeof(why), "it answered %d", resp.status);
            x->status = resp.status; /* the function's attempt is counted with it */
            return fallback_to_legacy(c, "request to", why);
        }
        x->status = resp.status;
        sf_body_reader_init(&x->resp, sf_http_response_body(&resp, x->is_head),
                            resp.content_length);
        x->up_reusable = sf_http_response_reusable(&resp, x->resp.mode);
        if (relay_head(c, &resp, (size_t)r) < 0)
            return finalize(c, 502, "out of memory");
        if (x->shadow != NULL)
            sf_shadow_primary_head(x->shadow, &resp);
        evbuffer_drain(up->in, (size_t)r);
        x->resp_head = 1;
        free(x->retry_head);
        x->retry_head = NULL;
    }

    int done = relay_body(c);
    if (done < 0) {
        sf_warn("invalid chunked body from %s while forwarding %s %s [req %s]",
                sf_pool_name(x->pool), x->method, x->path, x->reqid);
        x->up_err = SF_STATS_UPSTREAM_PROTOCOL;
        if (head_now) {
            /* the relayed head never left: the client can still get a clean 502 */
            evbuffer_drain(c->out, evbuffer_get_length(c->out));
            x->resp_head = 0;
            x->bytes_out = 0;
            x->status = 0;
        }
        return finalize(c, 502, "invalid upstream body framing");
    }
    if (done && evbuffer_get_length(up->in) > 0)
        x->up_reusable = 0; /* bytes past the end of the response: never reuse */
    if (!done && evbuffer_get_length(c->out) >= OUT_HIGH) {
        /* the client is the slow side now: its send timeout runs, not the upstream's */
        x->up_paused = 1;
        sf_upconn_pause_read(up);
        sf_upconn_set_timer(up, NULL);
    }
    if (done)
        return finalize(c, 0, NULL);
    return client_flush(c);
}

static void up_on_read(void *owner, sf_upconn *up, ssize_t n, int err)
{
    sf_client *c = owner;
    exchange *x = &c->x;
    if (n > 0) {
        sf_upconn_set_timer(up, c->x.be->tv_response);
        process_response(c);
        return;
    }
    if (!x->resp_head) {
        if (can_retry(x)) {
            retry_fresh(c);
            return;
        }
        /* process what arrived before the close: a complete head with a close-delimited
         * body is a valid response */
        if (evbuffer_get_length(up->in) > 0) {
            uint32_t gen = c->gen;
            if (process_response(c) < 0 || c->gen != gen || !x->active)
                return; /* c is gone, the exchange ended, or it fell back to legacy */
        }
        if (!x->resp_head) {
            upstream_failed(c, 502, SF_STATS_UPSTREAM_RESET,
                            n == 0 ? "upstream closed the connection before responding:"
                                   : "upstream reset the connection before responding:",
                            err);
            return;
        }
    }
    if (x->resp.mode == SF_HTTP_BODY_CLOSE) {
        /* end of a close-delimited body */
        if (x->client_chunked) {
            evbuffer_add(c->out, "0\r\n\r\n", 5);
            x->bytes_out += 5;
        }
        x->up_reusable = 0;
        finalize(c, 0, NULL);
        return;
    }
    sf_warn("%s %s mid-body while forwarding %s %s; aborting the client connection [req %s]",
            sf_pool_name(x->pool), n == 0 ? "closed" : "reset", x->method, x->path, x->reqid);
    x->up_err = SF_STATS_UPSTREAM_RESET;
    finalize(c, 502, "upstream truncated the response");
}

/* ---- admin API ---- */

/* The head (and its Content-Length body, complete in c->in) of an admin call: answered by
 * sf_admin_handle. */
static int admin_request(sf_client *c, const sf_http_request *req, size_t head_len)
{
    exchange *x = &c->x;
    static const sf_slice none = {"", 0};
    sf_admin_request rq = {req->method, req->path, none, none, none, none, none, none};
    const char *q = memchr(rq.path.p, '?', rq.path.len);
    if (q != NULL) {
        rq.query = (sf_slice){q + 1, rq.path.len - (size_t)(q - rq.path.p) - 1};
        rq.path.len = (size_t)(q - rq.path.p);
    }
    for (size_t i = 0; i < req->num_headers; i++) {
        const sf_http_header *h = &req->headers[i];
        if (SF_HTTP_NAME_IS(h->name, "authorization"))
            rq.authorization = h->value;
        else if (SF_HTTP_NAME_IS(h->name, "host"))
            rq.host = h->value;
        else if (SF_HTTP_NAME_IS(h->name, "origin"))
            rq.origin = h->value;
        else if (SF_HTTP_NAME_IS(h->name, "sec-fetch-site"))
            rq.fetch_site = h->value;
    }
    /* advance() made head and body contiguous before parsing, so this pullup moves nothing
     * (the head's slices stay valid); head_len counts any empty lines before the request */
    size_t body_len = req->content_length > 0 ? (size_t)req->content_length : 0;
    if (body_len > 0) {
        const char *all = (const char *)evbuffer_pullup(c->in, (ev_ssize_t)(head_len + body_len));
        rq.body = (sf_slice){all + head_len, body_len};
    }
    sf_admin_response out;
    sf_admin_handle(c->srv, &rq, &out);
    evbuffer_drain(c->in, head_len + body_len);
    x->bytes_in += body_len;
    x->req_done = 1;
    respond_local(c, out.status, out.content_type, out.body != NULL ? out.body : "", out.len,
                  !x->keepalive, out.headers);
    free(out.body);
    return finalize(c, 0, NULL);
}

/* ---- drain ---- */

void sf_session_drain(sf_server *s)
{
    sf_client *c, *next;
    for (c = TAILQ_FIRST(&s->clients); c != NULL; c = next) {
        next = TAILQ_NEXT(c, link);
        if (c->state == CS_HEAD && !c->x.active && evbuffer_get_length(c->in) == 0 &&
            evbuffer_get_length(c->out) == 0)
            client_free(c, 0);
        else
            c->x.keepalive = 0;
    }
}

void sf_session_close_all(sf_server *s)
{
    sf_client *c;
    while ((c = TAILQ_FIRST(&s->clients)) != NULL) {
        if (c->x.active) {
            c->x.error = "drain timeout";
            account(c);
        }
        client_free(c, 1);
    }
}
