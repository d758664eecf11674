/* stub.c — the stand-in servers' HTTP engine (see stub.h): evhttp on one event loop (HTTPS
 * through bufferevent_openssl with --tls-cert/--tls-key), fault knobs applied around every
 * handler, and replies streamed piece by piece with backpressure. */
#include "stub.h"
#include "query.h"
#include "builtin.h"
#include "knobs.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <linux/sockios.h>
#include <netdb.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/http_struct.h> /* major/minor: libevent 2.1 has no accessor for the version */
#include <event2/keyvalq_struct.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

/* Bytes handed to evhttp at a time; the next piece goes out once the socket took this one. */
#define PIECE (64 * 1024)
/* The proxy keeps pooled keep-alive connections idle for a while: do not close them early. */
#define IDLE_TIMEOUT_S 120
/* evhttp buffers request bodies whole; this bounds what one request can make us hold. */
#define MAX_BODY       (64L * 1024 * 1024)
#define LISTEN_BACKLOG 1024
/* reset=mid waits (polling every FLUSH_POLL_MS, at most FLUSH_POLLS times) until the half body
 * has left the socket: an RST discards whatever is still queued, and the client must see bytes. */
#define FLUSH_POLL_MS 2
#define FLUSH_POLLS   500

struct sf_stub {
    const struct sf_stub_app *app;
    struct event_base *base;
    struct evhttp *http;
    uint64_t requests;
    struct sf_stub_req *inflight; /* every live sf_stub_req, so shutdown can free them */
    const char *stopped_by;
    SSL_CTX *tls;  /* HTTPS when set */
    int record_fd; /* --record: every byte received is appended here; -1 when off */
};

enum waiting { WAIT_NONE, WAIT_DELAY, WAIT_SLOW, WAIT_FLUSH };

struct sf_stub_req {
    struct sf_stub *srv;
    struct evhttp_request *req; /* NULL once evhttp or we have freed it */
    struct sf_stub_req *prev, *next;
    struct event *timer;
    enum waiting waiting;
    int flush_polls;
    struct sf_knobs knobs;
    char bad_knob[160]; /* non-empty: answer 400 with this */
    char *path;
    char *query;
    char *request_id;
    bool head;
    bool replied;
    bool in_handler; /* frees wait until the handler has returned */
    bool released;
    /* The response in flight. */
    struct evbuffer *body; /* in-memory body; NULL when the body is the /__bytes pattern */
    uint64_t total;        /* body length announced */
    uint64_t limit;        /* bytes to send before finishing (total/2 for reset=mid) */
    uint64_t sent;
    int piece; /* slow_ms: index of the piece being sent */
};

/* /__bytes pattern, one piece long plus a full alphabet so any offset starts a whole piece. */
static char pattern[PIECE + 26];

static void respond(struct sf_stub_req *r);
static void pump(struct sf_stub_req *r);

/* Request lifetime */

static void req_free(struct sf_stub_req *r)
{
    if (r == NULL)
        return;
    if (r->prev != NULL)
        r->prev->next = r->next;
    else
        r->srv->inflight = r->next;
    if (r->next != NULL)
        r->next->prev = r->prev;
    if (r->timer != NULL)
        event_free(r->timer);
    if (r->body != NULL)
        evbuffer_free(r->body);
    free(r->path);
    free(r->query);
    free(r->request_id);
    free(r);
}

/* Frees r now, or once the handler that may still hold it returns. */
static void release(struct sf_stub_req *r)
{
    if (r->in_handler)
        r->released = true;
    else
        req_free(r);
}

/* evhttp is tearing the connection down under a request we still hold: the client went away,
 * a write failed, or the server is being freed. */
static void on_conn_close(struct evhttp_connection *evcon, void *arg)
{
    struct sf_stub_req *r = arg;

    (void)evcon;
    /* evhttp detaches a request whose reply is unfinished from a failed connection and leaves
     * it to us; a request still attached is freed by evhttp right after this callback. */
    if (r->req != NULL && evhttp_request_get_connection(r->req) == NULL)
        evhttp_request_free(r->req);
    r->req = NULL;
    release(r);
}

/* Drops the connection of r (and r) without a word: linger 0 makes the close an RST. */
static void drop(struct sf_stub_req *r, bool rst)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(r->req);

    if (evcon == NULL) {
        evhttp_request_free(r->req);
    } else {
        if (rst) {
            evutil_socket_t fd = bufferevent_getfd(evhttp_connection_get_bufferevent(evcon));
            if (fd >= 0) {
                struct linger lg = {.l_onoff = 1, .l_linger = 0};
                struct sockaddr sa = {.sa_family = AF_UNSPEC};
                (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
                /* evhttp_connection_free() calls shutdown(SHUT_WR) before close(), which would
                 * put a FIN ahead of the RST and let the client read a clean EOF first.
                 * Disconnecting the socket (AF_UNSPEC) sends the RST now; the later shutdown
                 * and close then act on an unconnected socket. */
                (void)connect(fd, &sa, sizeof(sa));
            }
        }
        evhttp_connection_set_closecb(evcon, NULL, NULL);
        evhttp_connection_free(evcon); /* frees r->req with it */
    }
    r->req = NULL;
    release(r);
}

static void on_timer(evutil_socket_t fd, short what, void *arg);

static void arm(struct sf_stub_req *r, enum waiting w, long ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};

    if (r->timer == NULL)
        r->timer = evtimer_new(r->srv->base, on_timer, r);
    if (r->timer == NULL || evtimer_add(r->timer, &tv) < 0) {
        fprintf(stderr, "%s: cannot arm a timer; dropping %s %s\n", r->srv->app->name,
                sf_stub_req_method(r), r->path);
        drop(r, false);
        return;
    }
    r->waiting = w;
}

/* Sending */

static bool http11(const struct sf_stub_req *r)
{
    return r->req->major > 1 || (r->req->major == 1 && r->req->minor >= 1);
}

static void start_reply(struct sf_stub_req *r, int status, const char *ctype, struct evbuffer *body,
                        uint64_t total)
{
    struct evkeyvalq *out = evhttp_request_get_output_headers(r->req);
    bool no_content, chunked;
    char len[24];

    r->replied = true;
    if (r->knobs.status != 0)
        status = r->knobs.status;
    no_content = status == 204 || status == 304; /* RFC 9110 §15.3.5, §15.4.5: never a body */
    chunked = r->knobs.chunked && http11(r);
    r->body = body;
    r->total = total;
    r->sent = 0;
    r->piece = 0;
    r->limit = r->knobs.reset == SF_KNOBS_RESET_MID ? total / 2 : total;
    if (!no_content) {
        evhttp_add_header(out, "Content-Type", ctype);
        /* Without a Content-Length, evhttp_send_reply_start() frames HTTP/1.1 as chunked. */
        if (!chunked) {
            snprintf(len, sizeof(len), "%" PRIu64, total);
            evhttp_add_header(out, "Content-Length", len);
        }
    }
    if (no_content || r->head)
        r->limit = 0;
    evhttp_send_reply_start(r->req, status, NULL);
    pump(r);
}

static void on_written(struct evhttp_connection *evcon, void *arg)
{
    (void)evcon;
    pump(arg);
}

static void send_piece(struct sf_stub_req *r, size_t n)
{
    struct evbuffer *buf = evbuffer_new();
    int rc;

    if (buf == NULL) {
        drop(r, false);
        return;
    }
    if (r->body != NULL)
        rc = evbuffer_remove_buffer(r->body, buf, n) == (int)n ? 0 : -1;
    else
        rc = evbuffer_add_reference(buf, pattern + r->sent % 26, n, NULL, NULL);
    if (rc < 0) {
        evbuffer_free(buf);
        drop(r, false);
        return;
    }
    r->sent += n;
    /* on_written runs once evhttp's output buffer has drained into the socket: that is the
     * backpressure that keeps at most one piece in memory however large the body. */
    evhttp_send_reply_chunk_with_cb(r->req, buf, on_written, r);
    evbuffer_free(buf);
}

static void finish(struct sf_stub_req *r)
{
    struct evhttp_connection *evcon;

    if (r->knobs.reset == SF_KNOBS_RESET_MID) {
        /* Always through the loop, so the RST never happens inside the handler's call. */
        r->flush_polls = 0;
        arm(r, WAIT_FLUSH, 0);
        return;
    }
    evcon = evhttp_request_get_connection(r->req);
    if (evcon != NULL)
        evhttp_connection_set_closecb(evcon, NULL, NULL);
    evhttp_send_reply_end(r->req); /* evhttp owns and frees the request from here */
    r->req = NULL;
    release(r);
}

/* Sends the next piece, waits between slow pieces, or finishes. */
static void pump(struct sf_stub_req *r)
{
    uint64_t stop = r->limit;

    if (r->knobs.slow_ms >= 0) {
        uint64_t piece_end = r->total * (uint64_t)(r->piece + 1) / SF_KNOBS_SLOW_PIECES;
        if (piece_end < stop)
            stop = piece_end;
    }
    if (r->sent < stop) {
        uint64_t n = stop - r->sent;
        send_piece(r, n < PIECE ? (size_t)n : PIECE);
        return;
    }
    if (r->sent >= r->limit) {
        finish(r);
        return;
    }
    r->piece++;
    arm(r, WAIT_SLOW, r->knobs.slow_ms);
}

/* reset=mid: RST once what we sent has left the socket, or after FLUSH_POLLS tries. */
static void flush_then_reset(struct sf_stub_req *r)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(r->req);
    struct bufferevent *bev = evcon != NULL ? evhttp_connection_get_bufferevent(evcon) : NULL;
    int queued = 0;

    if (bev != NULL) {
        evutil_socket_t fd = bufferevent_getfd(bev);
        if (fd >= 0 && ioctl(fd, SIOCOUTQ, &queued) < 0)
            queued = 0;
        if ((evbuffer_get_length(bufferevent_get_output(bev)) > 0 || queued > 0) &&
            r->flush_polls++ < FLUSH_POLLS) {
            arm(r, WAIT_FLUSH, FLUSH_POLL_MS);
            return;
        }
    }
    drop(r, true);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct sf_stub_req *r = arg;
    enum waiting w = r->waiting;

    (void)fd;
    (void)what;
    r->waiting = WAIT_NONE;
    switch (w) {
    case WAIT_DELAY:
        respond(r);
        break;
    case WAIT_SLOW:
        pump(r);
        break;
    case WAIT_FLUSH:
        flush_then_reset(r);
        break;
    case WAIT_NONE:
        break;
    }
}

/* Request dispatch */

static void respond(struct sf_stub_req *r)
{
    if (r->knobs.reset == SF_KNOBS_RESET_BEFORE) {
        drop(r, true);
        return;
    }
    r->in_handler = true;
    if (r->bad_knob[0] != '\0')
        sf_stub_reply_error(r, 400, "bad_knob", r->bad_knob);
    else if (!sf_builtin_handle(r))
        r->srv->app->handler(r, r->srv->app->arg);
    if (!r->replied)
        sf_stub_reply_error(r, 500, "no_reply", "the handler did not answer");
    r->in_handler = false;
    if (r->released)
        req_free(r);
}

static char *random_id(void)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[16];
    char *id = malloc(2 * sizeof(raw) + 1);

    if (id == NULL)
        return NULL;
    if (getrandom(raw, sizeof(raw), GRND_NONBLOCK) != (ssize_t)sizeof(raw)) {
        /* Entropy is not a correctness matter here: the id only has to look unique. */
        struct timespec ts;
        uint64_t x;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        x = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ULL ^ (uint64_t)ts.tv_sec;
        for (size_t i = 0; i < sizeof(raw); i++) {
            x ^= x >> 33;
            x *= 0xff51afd7ed558ccdULL;
            raw[i] = (unsigned char)(x >> 56);
        }
    }
    for (size_t i = 0; i < sizeof(raw); i++) {
        id[2 * i] = hex[raw[i] >> 4];
        id[2 * i + 1] = hex[raw[i] & 15];
    }
    id[2 * sizeof(raw)] = '\0';
    return id;
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct sf_stub *srv = arg;
    struct sf_stub_req *r = calloc(1, sizeof(*r));
    const char *uri = evhttp_request_get_uri(req);
    const char *q, *rid;

    if (r == NULL)
        goto fail;
    r->srv = srv;
    r->req = req;
    r->next = srv->inflight;
    if (srv->inflight != NULL)
        srv->inflight->prev = r;
    srv->inflight = r;
    sf_knobs_init(&r->knobs);
    r->head = evhttp_request_get_command(req) == EVHTTP_REQ_HEAD;

    q = strchr(uri, '?');
    r->path = q != NULL ? strndup(uri, (size_t)(q - uri)) : strdup(uri);
    r->query = q != NULL ? strdup(q + 1) : NULL;
    rid = evhttp_find_header(evhttp_request_get_input_headers(req), "X-Request-Id");
    r->request_id = rid != NULL && rid[0] != '\0' ? strdup(rid) : random_id();
    if (r->path == NULL || (q != NULL && r->query == NULL) || r->request_id == NULL)
        goto fail;

    /* Until the reply is done, a vanished client must free r, not leave it dangling. */
    evhttp_connection_set_closecb(evhttp_request_get_connection(req), on_conn_close, r);

    if (strcmp(r->path, "/__count") != 0)
        srv->requests++;
    if (sf_knobs_parse(&r->knobs, r->query, evhttp_request_get_input_headers(req), r->bad_knob,
                       sizeof(r->bad_knob)) < 0 &&
        r->bad_knob[0] == '\0')
        snprintf(r->bad_knob, sizeof(r->bad_knob), "malformed knob");

    /* reset=before also goes through the loop: freeing the connection from inside evhttp's
     * request callback is not something evhttp promises to survive. */
    if (r->knobs.delay_ms > 0 || r->knobs.reset == SF_KNOBS_RESET_BEFORE) {
        arm(r, WAIT_DELAY, r->knobs.delay_ms);
        return;
    }
    respond(r);
    return;

fail:
    fprintf(stderr, "%s: out of memory taking a request\n", srv->app->name);
    if (r != NULL) {
        r->req = NULL;
        req_free(r);
    }
    evhttp_send_error(req, 500, NULL);
}

/* Accessors and reply helpers */

const char *sf_stub_req_method(const struct sf_stub_req *r)
{
    switch (evhttp_request_get_command(r->req)) {
    case EVHTTP_REQ_GET:
        return "GET";
    case EVHTTP_REQ_POST:
        return "POST";
    case EVHTTP_REQ_HEAD:
        return "HEAD";
    case EVHTTP_REQ_PUT:
        return "PUT";
    case EVHTTP_REQ_DELETE:
        return "DELETE";
    case EVHTTP_REQ_OPTIONS:
        return "OPTIONS";
    case EVHTTP_REQ_TRACE:
        return "TRACE";
    case EVHTTP_REQ_CONNECT:
        return "CONNECT";
    case EVHTTP_REQ_PATCH:
        return "PATCH";
    }
    return "UNKNOWN";
}

int sf_stub_req_is_read(const struct sf_stub_req *r)
{
    enum evhttp_cmd_type c = evhttp_request_get_command(r->req);
    return c == EVHTTP_REQ_GET || c == EVHTTP_REQ_HEAD;
}

const char *sf_stub_req_path(const struct sf_stub_req *r)
{
    return r->path;
}

const char *sf_stub_req_query(const struct sf_stub_req *r)
{
    return r->query;
}

const char *sf_stub_req_id(const struct sf_stub_req *r)
{
    return r->request_id;
}

const unsigned char *sf_stub_req_body(struct sf_stub_req *r, size_t *len)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(r->req);

    *len = evbuffer_get_length(in);
    return *len > 0 ? evbuffer_pullup(in, -1) : NULL;
}

struct evhttp_request *sf_stub_req_evhttp(const struct sf_stub_req *r)
{
    return r->req;
}

uint64_t sf_stub_req_count(const struct sf_stub_req *r)
{
    return r->srv->requests;
}

int sf_stub_set_header(struct sf_stub_req *r, const char *name, const char *value)
{
    return evhttp_add_header(evhttp_request_get_output_headers(r->req), name, value);
}

static void free_dump(const void *data, size_t len, void *arg)
{
    (void)len;
    (void)arg;
    free((void *)(uintptr_t)data); /* json_dumps() memory, handed to evbuffer as a reference */
}

void sf_stub_reply_json(struct sf_stub_req *r, int status, json_t *body)
{
    size_t flags = JSON_COMPACT | JSON_REAL_PRECISION(12);
    struct evbuffer *buf = NULL;
    char *text = NULL;
    size_t len;

    if (r->replied) {
        fprintf(stderr, "%s: second reply to %s %s ignored\n", r->srv->app->name,
                sf_stub_req_method(r), r->path);
        json_decref(body);
        return;
    }
    if (r->srv->app->sort_keys)
        flags |= JSON_SORT_KEYS;
    if (body == NULL) {
        static const char oom[] = "{\"error\":\"internal\",\"message\":\"out of memory\"}";
        buf = evbuffer_new();
        if (buf == NULL || evbuffer_add_reference(buf, oom, sizeof(oom) - 1, NULL, NULL) < 0)
            goto fail;
        start_reply(r, 500, "application/json", buf, sizeof(oom) - 1);
        return;
    }
    text = json_dumps(body, flags);
    json_decref(body);
    buf = evbuffer_new();
    if (text == NULL || buf == NULL)
        goto fail;
    len = strlen(text);
    if (evbuffer_add_reference(buf, text, len, free_dump, NULL) < 0)
        goto fail;
    start_reply(r, status, "application/json", buf, len);
    return;

fail:
    free(text);
    if (buf != NULL)
        evbuffer_free(buf);
    r->replied = true;
    drop(r, false);
}

static void iso_now(char *out, size_t n)
{
    struct timespec ts;
    struct tm tm;
    size_t k;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    k = strftime(out, n, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + k, n - k, ".%03ldZ", ts.tv_nsec / 1000000);
}

void sf_stub_reply_data(struct sf_stub_req *r, int status, json_t *body)
{
    char now[40];

    if (json_is_object(body)) {
        iso_now(now, sizeof(now));
        if (json_object_set_new(body, "generated_at", json_string(now)) < 0 ||
            json_object_set_new(body, "request_id", sf_stub_json_text(r->request_id)) < 0) {
            json_decref(body);
            body = NULL;
        }
    }
    sf_stub_reply_json(r, status, body);
}

void sf_stub_reply_error(struct sf_stub_req *r, int status, const char *code, const char *message)
{
    sf_stub_reply_data(
        r, status, json_pack("{s:s, s:o*}", "error", code, "message", sf_stub_json_text(message)));
}

void sf_stub_reply_not_allowed(struct sf_stub_req *r, const char *allow)
{
    char msg[128];

    sf_stub_set_header(r, "Allow", allow);
    snprintf(msg, sizeof(msg), "%s is not allowed here; allowed: %s", sf_stub_req_method(r), allow);
    sf_stub_reply_error(r, 405, "method_not_allowed", msg);
}

void sf_stub_reply_pattern(struct sf_stub_req *r, int status, uint64_t size)
{
    if (r->replied)
        return;
    start_reply(r, status, "application/octet-stream", NULL, size);
}

const char *sf_stub_path_under(const char *path, const char *prefix)
{
    size_t n = strlen(prefix);

    if (strncmp(path, prefix, n) != 0)
        return NULL;
    if (path[n] != '\0' && path[n] != '/')
        return NULL;
    return path + n;
}

json_t *sf_stub_json_text(const char *s)
{
    json_t *j = json_string(s);
    size_t n, k = 0;
    char *u;

    if (j != NULL || s == NULL)
        return j;
    n = strlen(s);
    u = malloc(2 * n + 1);
    if (u == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) {
            u[k++] = (char)c;
        } else {
            u[k++] = (char)(0xC0 | (c >> 6));
            u[k++] = (char)(0x80 | (c & 0x3F));
        }
    }
    j = json_stringn(u, k);
    free(u);
    return j;
}

/* Server setup */

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct sf_stub *srv = arg;

    (void)what;
    srv->stopped_by = sig == SIGTERM ? "SIGTERM" : "SIGINT";
    event_base_loopbreak(srv->base);
}

static int listen_on(const char *host, int port, char *addr, size_t addrlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    char portstr[8], ip[INET6_ADDRSTRLEN];
    int fd = -1, one = 1, rc;

    snprintf(portstr, sizeof(portstr), "%d", port);
    rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0) {
        snprintf(addr, addrlen, "%s: %s", host, gai_strerror(rc));
        return -1;
    }
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0 &&
            bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, LISTEN_BACKLOG) == 0)
            break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        snprintf(addr, addrlen, "%s:%d: %s", host, port, strerror(errno));
        return -1;
    }
    if (getsockname(fd, (struct sockaddr *)&ss, &sslen) == 0 && ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
        snprintf(addr, addrlen, "[%s]:%d", ip, ntohs(s6->sin6_port));
    } else if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
        snprintf(addr, addrlen, "%s:%d", ip, ntohs(s4->sin_port));
    } else {
        snprintf(addr, addrlen, "%s:%d", host, port);
    }
    return fd;
}

/* HTTPS */

/* OpenSSL says "system lib" for a file it cannot open: say why instead. */
static bool readable(const char *name, const char *flag, const char *path)
{
    if (access(path, R_OK) == 0)
        return true;
    fprintf(stderr, "%s: cannot read %s %s: %s\n", name, flag, path, strerror(errno));
    return false;
}

/* A server context from a PEM certificate chain and its key. Returns NULL with a message on
 * stderr. */
static SSL_CTX *tls_server_ctx(const char *name, const char *cert, const char *key)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    const char *step = "cannot create a TLS context", *file = "";

    if (ctx == NULL)
        goto fail;
    step = "cannot require TLS 1.2";
    if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION))
        goto fail;
    if (!readable(name, "--tls-cert", cert) || !readable(name, "--tls-key", key))
        goto fail_quiet;
    step = "cannot use --tls-cert ";
    file = cert;
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
        goto fail;
    step = "cannot use --tls-key ";
    file = key;
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1)
        goto fail;
    return ctx;

fail:;
    unsigned long e = ERR_peek_last_error();
    const char *why = e != 0 ? ERR_reason_error_string(e) : NULL;
    fprintf(stderr, "%s: %s%s: %s\n", name, step, file, why != NULL ? why : "failed");
fail_quiet:
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return NULL;
}

/* --record: the bytes just added to a connection's input, appended to the record file as they
 * arrive, before evhttp parses them; a test reads the file to see what reached the server, even
 * bytes evhttp would refuse. Evbuffer callbacks run at once on each add, so the new bytes are
 * the buffer's tail. */
static void on_input_added(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    struct sf_stub *srv = arg;
    size_t len = evbuffer_get_length(buf), at = info->orig_size;
    struct evbuffer_ptr pos;
    char tmp[16384];

    if (info->n_added == 0 || at + info->n_added > len ||
        evbuffer_ptr_set(buf, &pos, at, EVBUFFER_PTR_SET) < 0)
        return;
    for (size_t left = info->n_added; left > 0;) {
        ev_ssize_t n =
            evbuffer_copyout_from(buf, &pos, tmp, left < sizeof(tmp) ? left : sizeof(tmp));
        if (n <= 0 || write(srv->record_fd, tmp, (size_t)n) != n) {
            fprintf(stderr, "%s: --record: write failed: %s\n", srv->app->name, strerror(errno));
            return;
        }
        left -= (size_t)n;
        evbuffer_ptr_set(buf, &pos, (size_t)n, EVBUFFER_PTR_ADD);
    }
}

/* evhttp asks for each accepted connection's bufferevent (set only with --tls-cert or
 * --record): a TLS one, accepting, or a plain one; with --record, its input is recorded. */
static struct bufferevent *on_new_bev(struct event_base *base, void *arg)
{
    struct sf_stub *srv = arg;
    struct bufferevent *bev;

    if (srv->tls != NULL) {
        SSL *ssl = SSL_new(srv->tls);
        if (ssl == NULL)
            return NULL;
        bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                             BEV_OPT_CLOSE_ON_FREE);
        if (bev == NULL) {
            SSL_free(ssl);
            return NULL;
        }
        /* Clients closing without close_notify are common and harmless for HTTP/1.1 framing. */
        bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    } else {
        bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
        if (bev == NULL)
            return NULL;
    }
    if (srv->record_fd >= 0 &&
        evbuffer_add_cb(bufferevent_get_input(bev), on_input_added, srv) == NULL) {
        bufferevent_free(bev);
        return NULL;
    }
    return bev;
}

static void usage(FILE *out, const struct sf_stub_app *app)
{
    fprintf(out,
            "usage: %s [--host H] [--port P] [--tls-cert FILE --tls-key FILE] [--record FILE] "
            "[--help]\n",
            app->name);
}

static void help(const struct sf_stub_app *app)
{
    printf("%s\n\n", app->summary);
    usage(stdout, app);
    printf("  --host H         address to listen on (default 127.0.0.1)\n"
           "  --port P         port to listen on (default %d; 0 picks a free one)\n"
           "  --tls-cert FILE  serve HTTPS (TLS 1.2 or later) with this PEM certificate chain\n"
           "  --tls-key FILE   ... and this PEM private key; both or neither (default: HTTP)\n"
           "  --record FILE    append every byte received, on every connection, to FILE as it\n"
           "                   arrives (before it is parsed): tests read it to see what reached\n"
           "                   the server\n"
           "  --help           this text\n\n",
           app->default_port);
    app->print_endpoints(stdout);
    printf("\n%s\n%s\n", sf_builtin_help, sf_knobs_help);
    printf("Serving: HTTP/1.1 (evhttp), over TLS with --tls-cert; idle keep-alive connections\n"
           "closed after %d s, request bodies up to %ld MiB (413 beyond). SIGTERM or SIGINT:\n"
           "exit 0.\n",
           IDLE_TIMEOUT_S, MAX_BODY / (1024 * 1024));
}

static int parse_port(const char *s, int *out)
{
    long v;
    if (sf_parse_range(s, 0, 65535, &v) < 0)
        return -1;
    *out = (int)v;
    return 0;
}

static void free_inflight(struct sf_stub *srv)
{
    while (srv->inflight != NULL) {
        struct sf_stub_req *r = srv->inflight;
        if (r->req != NULL) {
            struct evhttp_connection *evcon = evhttp_request_get_connection(r->req);
            if (evcon != NULL) {
                evhttp_connection_set_closecb(evcon, NULL, NULL);
                evhttp_connection_free(evcon);
            } else {
                evhttp_request_free(r->req);
            }
        }
        r->req = NULL;
        req_free(r);
    }
}

int sf_stub_main(int argc, char **argv, const struct sf_stub_app *app)
{
    static const struct option opts[] = {{"host", required_argument, NULL, 'H'},
                                         {"port", required_argument, NULL, 'p'},
                                         {"tls-cert", required_argument, NULL, 'c'},
                                         {"tls-key", required_argument, NULL, 'k'},
                                         {"record", required_argument, NULL, 'r'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    struct sf_stub srv = {.app = app, .record_fd = -1};
    struct event *sigterm = NULL, *sigint = NULL;
    const char *host = "127.0.0.1", *tls_cert = NULL, *tls_key = NULL, *record = NULL;
    SSL_CTX *tls = NULL;
    int port = app->default_port, fd = -1, c, status = 1;
    char addr[128];

    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'H':
            host = optarg;
            break;
        case 'p':
            if (parse_port(optarg, &port) < 0) {
                fprintf(stderr, "%s: --port: not a port number: %s\n", app->name, optarg);
                usage(stderr, app);
                return 2;
            }
            break;
        case 'c':
            tls_cert = optarg;
            break;
        case 'k':
            tls_key = optarg;
            break;
        case 'r':
            record = optarg;
            break;
        case 'h':
            help(app);
            return 0;
        default:
            usage(stderr, app);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument: %s\n", app->name, argv[optind]);
        usage(stderr, app);
        return 2;
    }
    if ((tls_cert == NULL) != (tls_key == NULL)) {
        fprintf(stderr, "%s: --tls-cert and --tls-key go together\n", app->name);
        usage(stderr, app);
        return 2;
    }
    if (tls_cert != NULL) {
        tls = tls_server_ctx(app->name, tls_cert, tls_key);
        if (tls == NULL)
            return 1;
    }
    srv.tls = tls;
    if (record != NULL) {
        srv.record_fd = open(record, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (srv.record_fd < 0) {
            fprintf(stderr, "%s: --record: cannot open %s: %s\n", app->name, record,
                    strerror(errno));
            SSL_CTX_free(tls);
            return 1;
        }
    }

    for (size_t i = 0; i < sizeof(pattern); i++)
        pattern[i] = (char)('a' + i % 26);
    /* A client closing mid-reply must cost us an EPIPE, not the process. */
    signal(SIGPIPE, SIG_IGN);

    srv.base = event_base_new();
    if (srv.base == NULL)
        goto fail;
    srv.http = evhttp_new(srv.base);
    if (srv.http == NULL)
        goto fail;
    evhttp_set_timeout(srv.http, IDLE_TIMEOUT_S);
    evhttp_set_max_body_size(srv.http, MAX_BODY);
    /* /__echo takes any method evhttp can parse, not just its default GET/POST/HEAD/PUT/DELETE. */
    evhttp_set_allowed_methods(
        srv.http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT |
                      EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE | EVHTTP_REQ_PATCH);
    evhttp_set_gencb(srv.http, on_request, &srv);
    if (tls != NULL || srv.record_fd >= 0)
        evhttp_set_bevcb(srv.http, on_new_bev, &srv);

    fd = listen_on(host, port, addr, sizeof(addr));
    if (fd < 0) {
        fprintf(stderr, "%s: cannot listen on %s\n", app->name, addr);
        goto fail;
    }
    if (evhttp_accept_socket_with_handle(srv.http, fd) == NULL) {
        fprintf(stderr, "%s: cannot accept on %s\n", app->name, addr);
        close(fd);
        goto fail;
    }

    sigterm = evsignal_new(srv.base, SIGTERM, on_signal, &srv);
    sigint = evsignal_new(srv.base, SIGINT, on_signal, &srv);
    if (sigterm == NULL || sigint == NULL || event_add(sigterm, NULL) < 0 ||
        event_add(sigint, NULL) < 0)
        goto fail;

    fprintf(stderr, "%s listening on %s%s\n", app->name, addr, tls != NULL ? " (HTTPS)" : "");
    if (event_base_dispatch(srv.base) < 0) {
        fprintf(stderr, "%s: event loop failed\n", app->name);
        goto fail;
    }
    fprintf(stderr, "%s: %s, exiting\n", app->name, srv.stopped_by ? srv.stopped_by : "stopped");
    status = 0;

fail:
    if (srv.http != NULL) {
        free_inflight(&srv);
        evhttp_free(srv.http);
    }
    if (sigterm != NULL)
        event_free(sigterm);
    if (sigint != NULL)
        event_free(sigint);
    if (srv.base != NULL)
        event_base_free(srv.base);
    SSL_CTX_free(tls);
    if (srv.record_fd >= 0)
        close(srv.record_fd);
    libevent_global_shutdown();
    return status;
}
