/* Upstream pools and connections. Idle connections keep their read event armed so that a
 * close by the backend is seen at once and the connection leaves the pool before reuse.
 * TLS connections have event callbacks of their own (tls_on_read, tls_on_write): the plain
 * path is the same code whether or not any pool does TLS. */
#include "upstream.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "log.h"
#include "netio.h"
#include "tls.h"

struct sf_pool {
    struct event_base *base;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char name[128];
    size_t max_idle, nidle;
    struct timeval idle_tv;
    TAILQ_HEAD(, sf_upconn) idle;
    /* TLS (ctx NULL for plain TCP) */
    SSL_CTX *ctx;
    char *host; /* SNI and the name or IP the certificate must carry, without [] */
    int host_is_ip;
    SSL_SESSION *session; /* the latest resumable session, offered by new connections */
};

static void on_up_read(evutil_socket_t fd, short what, void *arg);
static void on_up_write(evutil_socket_t fd, short what, void *arg);
static void on_up_timer(void *arg);
static void tls_on_read(evutil_socket_t fd, short what, void *arg);
static void tls_on_write(evutil_socket_t fd, short what, void *arg);
static int tls_new(sf_upconn *up);
static void tls_idle(sf_upconn *up);
static int tls_flush(sf_upconn *up);
static void tls_close(sf_upconn *up, int abort);

/* OpenSSL hands over each session it can resume with (after a TLS 1.2 handshake, with each
 * TLS 1.3 ticket): the pool keeps the latest. Returns 1 when it took the reference. */
static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
    sf_upconn *up = SSL_get_app_data(ssl);
    if (up == NULL || !SSL_SESSION_is_resumable(sess))
        return 0;
    sf_pool *p = up->pool;
    SSL_SESSION_free(p->session);
    p->session = sess;
    return 1;
}

static int pool_set_tls(sf_pool *p, const sf_pool_tls *tls)
{
    unsigned char ip[sizeof(struct in6_addr)];
    const char *h = tls->host != NULL ? tls->host : "";
    size_t n = strlen(h);
    if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
        h++;
        n -= 2;
    }
    p->host = strndup(h, n);
    if (p->host == NULL)
        return -1;
    p->host_is_ip = inet_pton(AF_INET, p->host, ip) == 1 || inet_pton(AF_INET6, p->host, ip) == 1;
    p->ctx = tls->ctx;
    SSL_CTX_sess_set_new_cb(p->ctx, on_new_session);
    return 0;
}

sf_pool *sf_pool_create(struct event_base *base, const struct sockaddr_storage *addr,
                        socklen_t addrlen, const char *name, size_t max_idle, unsigned idle_ms,
                        const sf_pool_tls *tls)
{
    sf_pool *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    if (tls != NULL && pool_set_tls(p, tls) < 0) {
        free(p);
        return NULL;
    }
    p->base = base;
    memcpy(&p->addr, addr, addrlen);
    p->addrlen = addrlen;
    snprintf(p->name, sizeof(p->name), "%s", name);
    p->max_idle = max_idle;
    p->idle_tv.tv_sec = idle_ms / 1000;
    p->idle_tv.tv_usec = (idle_ms % 1000) * 1000;
    TAILQ_INIT(&p->idle);
    return p;
}

static void upconn_free(sf_upconn *up, int abort)
{
    event_del(&up->rev);
    event_del(&up->wev);
    sf_timer_stop(&up->timer);
    if (up->tls.ssl != NULL)
        tls_close(up, abort);
    if (abort)
        sf_close_abort(up->fd);
    else
        close(up->fd);
    evbuffer_free(up->in);
    evbuffer_free(up->out);
    free(up);
}

void sf_pool_destroy(sf_pool *p)
{
    if (p == NULL)
        return;
    sf_upconn *up;
    while ((up = TAILQ_FIRST(&p->idle)) != NULL) {
        TAILQ_REMOVE(&p->idle, up, idle_link);
        upconn_free(up, 0);
    }
    SSL_SESSION_free(p->session);
    free(p->host);
    free(p);
}

const char *sf_pool_name(const sf_pool *p)
{
    return p->name;
}

sf_upconn *sf_pool_acquire(sf_pool *p, void *owner, const sf_upconn_ops *ops, int fresh)
{
    sf_upconn *up = fresh ? NULL : TAILQ_FIRST(&p->idle);
    if (up != NULL) {
        TAILQ_REMOVE(&p->idle, up, idle_link);
        p->nidle--;
        sf_timer_set(&up->timer, NULL);
        up->owner = owner;
        up->ops = ops;
        up->reused = 1;
        return up;
    }
    int in_progress;
    int fd = sf_connect_socket(&p->addr, p->addrlen, &in_progress);
    if (fd < 0)
        return NULL;
    up = calloc(1, sizeof(*up));
    if (up == NULL) {
        close(fd);
        errno = ENOMEM;
        return NULL;
    }
    up->fd = fd;
    up->pool = p;
    up->owner = owner;
    up->ops = ops;
    up->in = evbuffer_new();
    up->out = evbuffer_new();
    if (up->in == NULL || up->out == NULL || (p->ctx != NULL && tls_new(up) < 0)) {
        if (up->in)
            evbuffer_free(up->in);
        if (up->out)
            evbuffer_free(up->out);
        sf_tls_close(&up->tls, 1);
        close(fd);
        free(up);
        errno = ENOMEM;
        return NULL;
    }
    if (p->ctx != NULL) {
        event_assign(&up->rev, p->base, fd, EV_READ | EV_PERSIST, tls_on_read, up);
        event_assign(&up->wev, p->base, fd, EV_WRITE | EV_PERSIST, tls_on_write, up);
        sf_timer_init(&up->timer, p->base, on_up_timer, up);
        /* Even a connect done at once goes through the write event: the handshake then starts
         * on the loop, where its failure can be reported through on_connect. */
        up->connecting = 1;
        up->wev_on = 1;
        event_add(&up->wev, NULL);
        return up;
    }
    event_assign(&up->rev, p->base, fd, EV_READ | EV_PERSIST, on_up_read, up);
    event_assign(&up->wev, p->base, fd, EV_WRITE | EV_PERSIST, on_up_write, up);
    sf_timer_init(&up->timer, p->base, on_up_timer, up);
    if (in_progress) {
        up->connecting = 1;
        up->wev_on = 1;
        event_add(&up->wev, NULL);
    } else {
        event_add(&up->rev, NULL);
    }
    return up;
}

void sf_pool_release(sf_upconn *up, int reusable)
{
    sf_pool *p = up->pool;
    if (!reusable || up->connecting || p->nidle >= p->max_idle || evbuffer_get_length(up->in) ||
        evbuffer_get_length(up->out)) {
        upconn_free(up, 0);
        return;
    }
    up->owner = NULL;
    up->ops = NULL;
    if (up->wev_on) {
        event_del(&up->wev);
        up->wev_on = 0;
    }
    if (up->read_paused) {
        up->read_paused = 0;
        event_add(&up->rev, NULL);
    }
    if (up->tls.ssl != NULL)
        tls_idle(up);
    sf_timer_set(&up->timer, &p->idle_tv);
    TAILQ_INSERT_HEAD(&p->idle, up, idle_link);
    p->nidle++;
}

void sf_upconn_close(sf_upconn *up, int abort)
{
    upconn_free(up, abort);
}

int sf_upconn_flush(sf_upconn *up)
{
    if (up->connecting)
        return 0;
    if (up->tls.ssl != NULL)
        return tls_flush(up);
    if (evbuffer_get_length(up->out) > 0) {
        ssize_t n = evbuffer_write(up->out, up->fd);
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
            up->ops->on_write_error(up->owner, up, errno);
            return -1;
        }
    }
    if (evbuffer_get_length(up->out) > 0) {
        if (!up->wev_on) {
            up->wev_on = 1;
            event_add(&up->wev, NULL);
        }
    } else if (up->wev_on) {
        up->wev_on = 0;
        event_del(&up->wev);
    }
    return 0;
}

void sf_upconn_pause_read(sf_upconn *up)
{
    if (!up->read_paused && !up->connecting) {
        up->read_paused = 1;
        if (!up->tls.wr) /* an SSL_write waiting to read still needs the read event */
            event_del(&up->rev);
    }
}

void sf_upconn_resume_read(sf_upconn *up)
{
    if (up->read_paused) {
        up->read_paused = 0;
        event_add(&up->rev, NULL);
        /* Decrypted bytes may wait in OpenSSL's buffer, where poll cannot see them. */
        if (up->tls.ssl != NULL)
            event_active(&up->rev, EV_READ, 1);
    }
}

void sf_upconn_set_timer(sf_upconn *up, const struct timeval *tv)
{
    sf_timer_set(&up->timer, tv);
}

static void idle_close(sf_upconn *up)
{
    sf_pool *p = up->pool;
    TAILQ_REMOVE(&p->idle, up, idle_link);
    p->nidle--;
    upconn_free(up, 0);
}

static void on_up_read(evutil_socket_t fd, short what, void *arg)
{
    sf_upconn *up = arg;
    (void)fd;
    (void)what;
    ssize_t n = sf_read_into(up->in, up->fd, &up->wide_reads);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (up->owner == NULL) {
        /* An idle connection: the backend closed it, or sent bytes nobody asked for. */
        idle_close(up);
        return;
    }
    up->ops->on_read(up->owner, up, n, n < 0 ? errno : 0);
}

/* The outcome of a non-blocking connect once the socket is writable: 0, EINPROGRESS (not yet),
 * or the error. */
static int connect_result(const sf_upconn *up)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(up->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    return err;
}

static void on_up_write(evutil_socket_t fd, short what, void *arg)
{
    sf_upconn *up = arg;
    (void)fd;
    (void)what;
    if (up->connecting) {
        int err = connect_result(up);
        if (err == EINPROGRESS)
            return;
        up->connecting = 0;
        if (err != 0) {
            up->ops->on_connect(up->owner, up, err);
            return;
        }
        event_add(&up->rev, NULL);
        up->ops->on_connect(up->owner, up, 0);
        return; /* the owner flushes (and so rearms or clears the write event) */
    }
    ssize_t n = evbuffer_write(up->out, up->fd);
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
        up->ops->on_write_error(up->owner, up, errno);
        return;
    }
    if (evbuffer_get_length(up->out) == 0) {
        up->wev_on = 0;
        event_del(&up->wev);
        up->ops->on_drained(up->owner, up);
    }
}

static void on_up_timer(void *arg)
{
    sf_upconn *up = arg;
    if (up->owner == NULL) {
        idle_close(up);
        return;
    }
    up->ops->on_timeout(up->owner, up);
}

const char *sf_upconn_error(const sf_upconn *up)
{
    return up->error;
}

/* ---- TLS ----
 * The handshake runs while up->connecting is set, so the owner's connect timer covers it and
 * the owner sees nothing until on_connect. Afterwards the events follow what OpenSSL asks
 * for (sf_tls_arm). Decrypted bytes can wait inside OpenSSL where poll does not see them:
 * whenever that may be so, the read event is activated by hand. After any callback to the
 * owner the connection may be gone, so every callback is the last thing done. */

static int tls_new(sf_upconn *up)
{
    sf_pool *p = up->pool;
    if (sf_tls_start(&up->tls, p->ctx, up->fd, 0) < 0)
        return -1; /* the caller frees up->tls */
    SSL *ssl = up->tls.ssl;
    SSL_set_app_data(ssl, up);
    /* RFC 6066 §3: no IP literals in SNI */
    if (!p->host_is_ip && p->host[0] != '\0' && !SSL_set_tlsext_host_name(ssl, p->host))
        return -1;
    if (SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER) {
        SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if (p->host_is_ip ? !X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), p->host)
                          : !SSL_set1_host(ssl, p->host))
            return -1;
    }
    /* A session the server no longer knows just means a full handshake. */
    if (p->session != NULL)
        (void)SSL_set_session(ssl, p->session);
    return 0;
}

/* Records why TLS ended with st (for sf_upconn_error) and returns the errno to report. */
static int tls_fail(sf_upconn *up, sf_tls_status st, const char *what)
{
    char msg[256], why[160];
    long vr = X509_V_OK;

    if (up->connecting && (SSL_get_verify_mode(up->tls.ssl) & SSL_VERIFY_PEER))
        vr = SSL_get_verify_result(up->tls.ssl);
    if (vr != X509_V_OK) {
        snprintf(msg, sizeof(msg), "TLS certificate verification failed: %s",
                 X509_verify_cert_error_string(vr));
    } else {
        sf_tls_reason(&up->tls, st, "server", why, sizeof(why));
        snprintf(msg, sizeof(msg), "%s: %s", what, why);
    }
    free(up->error);
    up->error = strdup(msg);
    return sf_tls_errno(&up->tls, st);
}

static void tls_arm(sf_upconn *up)
{
    up->wev_on = (unsigned)sf_tls_arm(&up->tls, &up->rev, &up->wev,
                                      evbuffer_get_length(up->out) > 0, up->read_paused);
}

static void tls_handshake(sf_upconn *up)
{
    sf_tls_status st = sf_tls_handshake(&up->tls);
    if (st == SF_TLS_DONE) {
        up->connecting = 0;
        tls_arm(up);
        up->ops->on_connect(up->owner, up, 0); /* the owner flushes */
        return;
    }
    if (st == SF_TLS_WANT_READ || st == SF_TLS_WANT_WRITE) {
        tls_arm(up);
        return;
    }
    int err = tls_fail(up, st, "TLS handshake failed");
    up->connecting = 0;
    up->ops->on_connect(up->owner, up, err);
}

/* Reads and reports like on_up_read: bytes, the end (0), or a failure (-1 with errno). */
static void tls_receive(sf_upconn *up)
{
    sf_tls_status st;
    size_t n = sf_tls_read(&up->tls, up->in, &st);
    int end = st != SF_TLS_DONE && st != SF_TLS_WANT_READ && st != SF_TLS_WANT_WRITE;

    if (up->owner == NULL) {
        /* An idle connection: session tickets are read and forgotten; anything else (bytes
         * nobody asked for, the backend's close, an error) ends it. */
        if (n > 0 || end)
            idle_close(up);
        else
            tls_arm(up);
        return;
    }
    tls_arm(up);
    if (n > 0) {
        /* More may be waiting inside OpenSSL (the budget ran out), or the end behind the data:
         * come back for it. */
        if (st != SF_TLS_WANT_READ && st != SF_TLS_WANT_WRITE)
            event_active(&up->rev, EV_READ, 1);
        up->ops->on_read(up->owner, up, (ssize_t)n, 0);
        return;
    }
    if (!end)
        return;
    if (st == SF_TLS_CLOSED || st == SF_TLS_EOF) {
        /* close_notify, or a close without it as many servers do: the HTTP framing decides
         * whether what came was complete (RFC 9112 §9.8), as with a plain FIN */
        up->ops->on_read(up->owner, up, 0, 0);
        return;
    }
    int err = tls_fail(up, st, "TLS read failed");
    up->ops->on_read(up->owner, up, -1, err);
}

/* Sends up->out. Returns 1 once it is empty, 0 when the rest waits for an event (tls.wr set
 * if it waits to read), -1 with *err set. */
static int tls_send(sf_upconn *up, int *err)
{
    sf_tls_status st = sf_tls_write(&up->tls, up->out);
    if (st == SF_TLS_DONE)
        return 1;
    if (st == SF_TLS_WANT_READ || st == SF_TLS_WANT_WRITE)
        return 0;
    int e = tls_fail(up, st, "TLS write failed");
    /* the server's close_notify before our request was out: a write to a closed peer */
    *err = st == SF_TLS_CLOSED ? EPIPE : e;
    return -1;
}

static int tls_flush(sf_upconn *up)
{
    int err = 0;
    if (!up->tls.wr && tls_send(up, &err) < 0) {
        up->ops->on_write_error(up->owner, up, err);
        return -1;
    }
    tls_arm(up);
    return 0;
}

static void tls_idle(sf_upconn *up)
{
    tls_arm(up);
    if (SSL_has_pending(up->tls.ssl))
        event_active(&up->rev, EV_READ, 1);
}

static void tls_close(sf_upconn *up, int abort)
{
    sf_tls_close(&up->tls, abort || up->connecting);
    free(up->error);
    up->error = NULL;
}

static void tls_on_read(evutil_socket_t fd, short what, void *arg)
{
    sf_upconn *up = arg;
    (void)fd;
    (void)what;
    if (up->connecting) {
        if (up->tls.hs)
            tls_handshake(up);
        return;
    }
    if (up->tls.wr) {
        /* an SSL_write was waiting for this */
        int err = 0;
        up->tls.wr = 0;
        int r = tls_send(up, &err);
        if (r < 0) {
            up->ops->on_write_error(up->owner, up, err);
            return;
        }
        tls_arm(up);
        if (r == 1) {
            /* the read side's turn comes on the next pass */
            if (!up->read_paused)
                event_active(&up->rev, EV_READ, 1);
            up->ops->on_drained(up->owner, up);
            return;
        }
    }
    if (up->read_paused)
        return;
    tls_receive(up);
}

static void tls_on_write(evutil_socket_t fd, short what, void *arg)
{
    sf_upconn *up = arg;
    (void)fd;
    (void)what;
    if (up->connecting) {
        if (!up->tls.hs) {
            int err = connect_result(up);
            if (err == EINPROGRESS)
                return;
            if (err != 0) {
                up->connecting = 0;
                up->ops->on_connect(up->owner, up, err);
                return;
            }
            up->tls.hs = 1;
        }
        tls_handshake(up);
        return;
    }
    if (up->tls.rw) {
        /* an SSL_read was waiting for this; a pending write gets its turn on the next pass
         * (tls_arm keeps the write event). Paused, the read is retried on resume. */
        up->tls.rw = 0;
        if (up->read_paused && up->owner != NULL)
            tls_arm(up);
        else
            tls_receive(up);
        return;
    }
    int err = 0, had = evbuffer_get_length(up->out) > 0;
    int r = tls_send(up, &err);
    if (r < 0) {
        up->ops->on_write_error(up->owner, up, err);
        return;
    }
    tls_arm(up);
    if (r == 1 && had)
        up->ops->on_drained(up->owner, up);
}
