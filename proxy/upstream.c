/* Upstream pools and connections. Idle connections keep their read event armed so that a
 * close by the backend is seen at once and the connection leaves the pool before reuse.
 * TLS connections have event callbacks of their own (tls_on_read, tls_on_write): the plain
 * path is the same code whether or not any pool does TLS. */
#include "upstream.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "log.h"
#include "netio.h"
#include "tls.h"

/* Plaintext handed to one SSL_write: a full TLS record (RFC 8446 §5.1). */
#define TLS_RECORD 16384

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
static void on_up_timer(evutil_socket_t fd, short what, void *arg);
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
    event_del(&up->tev);
    if (up->ssl != NULL)
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
        event_del(&up->tev);
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
        SSL_free(up->ssl);
        ERR_clear_error();
        close(fd);
        free(up);
        errno = ENOMEM;
        return NULL;
    }
    if (p->ctx != NULL) {
        event_assign(&up->rev, p->base, fd, EV_READ | EV_PERSIST, tls_on_read, up);
        event_assign(&up->wev, p->base, fd, EV_WRITE | EV_PERSIST, tls_on_write, up);
        evtimer_assign(&up->tev, p->base, on_up_timer, up);
        /* Even a connect done at once goes through the write event: the handshake then starts
         * on the loop, where its failure can be reported through on_connect. */
        up->connecting = 1;
        up->wev_on = 1;
        event_add(&up->wev, NULL);
        return up;
    }
    event_assign(&up->rev, p->base, fd, EV_READ | EV_PERSIST, on_up_read, up);
    event_assign(&up->wev, p->base, fd, EV_WRITE | EV_PERSIST, on_up_write, up);
    evtimer_assign(&up->tev, p->base, on_up_timer, up);
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
    if (up->ssl != NULL)
        tls_idle(up);
    event_add(&up->tev, &p->idle_tv);
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
    if (up->ssl != NULL)
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
        if (!up->tls_wr) /* an SSL_write waiting to read still needs the read event */
            event_del(&up->rev);
    }
}

void sf_upconn_resume_read(sf_upconn *up)
{
    if (up->read_paused) {
        up->read_paused = 0;
        event_add(&up->rev, NULL);
        /* Decrypted bytes may wait in OpenSSL's buffer, where poll cannot see them. */
        if (up->ssl != NULL)
            event_active(&up->rev, EV_READ, 1);
    }
}

void sf_upconn_set_timer(sf_upconn *up, const struct timeval *tv)
{
    if (tv != NULL)
        event_add(&up->tev, tv);
    else
        event_del(&up->tev);
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

static void on_up_timer(evutil_socket_t fd, short what, void *arg)
{
    sf_upconn *up = arg;
    (void)fd;
    (void)what;
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
 * for: an SSL_read may need the socket writable (tls_rw) and an SSL_write readable (tls_wr),
 * e.g. around a key update. Decrypted bytes can wait inside OpenSSL where poll does not see
 * them: whenever that may be so, the read event is activated by hand. After any callback to
 * the owner the connection may be gone, so every callback is the last thing done. */

static int tls_new(sf_upconn *up)
{
    sf_pool *p = up->pool;
    SSL *ssl = SSL_new(p->ctx);
    if (ssl == NULL)
        return -1;
    up->ssl = ssl; /* freed by the caller on failure */
    SSL_set_app_data(ssl, up);
    if (!SSL_set_fd(ssl, up->fd))
        return -1;
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
    SSL_set_connect_state(ssl);
    return 0;
}

/* Records why TLS failed (for sf_upconn_error) and returns the errno to report. ssl_err is
 * SSL_get_error's answer, sys the errno right after the failed call. */
static int tls_fail(sf_upconn *up, int ssl_err, int sys, const char *what)
{
    char msg[256];
    int err = EPROTO;
    long vr = X509_V_OK;

    if (up->connecting && (SSL_get_verify_mode(up->ssl) & SSL_VERIFY_PEER))
        vr = SSL_get_verify_result(up->ssl);
    if (vr != X509_V_OK) {
        snprintf(msg, sizeof(msg), "TLS certificate verification failed: %s",
                 X509_verify_cert_error_string(vr));
    } else if (ssl_err == SSL_ERROR_SYSCALL && sys != 0) {
        err = sys;
        snprintf(msg, sizeof(msg), "%s: %s", what, strerror(sys));
    } else if (ssl_err == SSL_ERROR_SYSCALL || ssl_err == SSL_ERROR_ZERO_RETURN) {
        err = ECONNRESET;
        snprintf(msg, sizeof(msg), "%s: the server closed the connection", what);
    } else {
        snprintf(msg, sizeof(msg), "%s: %s", what, sf_tls_last_error("protocol error"));
    }
    ERR_clear_error();
    up->tls_dead = 1; /* OpenSSL: no SSL_shutdown after a fatal error */
    free(up->error);
    up->error = strdup(msg);
    return err;
}

/* Arms the events an established connection needs now. A side waiting for the other's event
 * is disarmed (no busy loop on a socket that is ready for what OpenSSL cannot do yet). */
static void tls_arm(sf_upconn *up)
{
    int w = up->tls_rw || (!up->tls_wr && evbuffer_get_length(up->out) > 0);
    if (w && !up->wev_on) {
        up->wev_on = 1;
        event_add(&up->wev, NULL);
    } else if (!w && up->wev_on) {
        up->wev_on = 0;
        event_del(&up->wev);
    }
    if (up->tls_wr || (!up->read_paused && !up->tls_rw))
        event_add(&up->rev, NULL);
    else
        event_del(&up->rev);
}

static void tls_handshake(sf_upconn *up)
{
    ERR_clear_error();
    int r = SSL_connect(up->ssl);
    int sys = errno;
    if (r == 1) {
        up->connecting = 0;
        up->tls_hs = 0;
        tls_arm(up);
        up->ops->on_connect(up->owner, up, 0); /* the owner flushes */
        return;
    }
    int e = SSL_get_error(up->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        int w = e == SSL_ERROR_WANT_WRITE;
        if (w != up->wev_on) {
            up->wev_on = w;
            if (w)
                event_add(&up->wev, NULL);
            else
                event_del(&up->wev);
        }
        if (w)
            event_del(&up->rev);
        else
            event_add(&up->rev, NULL);
        return;
    }
    int err = tls_fail(up, e, sys, "TLS handshake failed");
    up->connecting = 0;
    up->ops->on_connect(up->owner, up, err);
}

/* Decrypts into up->in, in reserved chunks like sf_read_into, at most two per call. Returns
 * the bytes read; *ssl_err gets how the last SSL_read ended (SSL_ERROR_NONE: the budget ran
 * out first) and *sys the errno then. */
static size_t tls_read_into(sf_upconn *up, int *ssl_err, int *sys)
{
    size_t total = 0;
    *ssl_err = SSL_ERROR_NONE;
    *sys = 0;
    for (int round = 0; round < 2 && *ssl_err == SSL_ERROR_NONE; round++) {
        struct evbuffer_iovec v;
        if (evbuffer_reserve_space(up->in, SF_READ_CHUNK, &v, 1) < 1) {
            *ssl_err = SSL_ERROR_SYSCALL;
            *sys = ENOMEM;
            break;
        }
        size_t off = 0;
        while (off < v.iov_len) {
            size_t room = v.iov_len - off;
            ERR_clear_error();
            int r =
                SSL_read(up->ssl, (char *)v.iov_base + off, room > INT_MAX ? INT_MAX : (int)room);
            if (r > 0) {
                off += (size_t)r;
                continue;
            }
            *sys = errno;
            *ssl_err = SSL_get_error(up->ssl, r);
            break;
        }
        if (off > 0) {
            v.iov_len = off;
            evbuffer_commit_space(up->in, &v, 1);
            total += off;
        }
    }
    return total;
}

/* Reads and reports like on_up_read: bytes, the end (0), or a failure (-1 with errno). */
static void tls_receive(sf_upconn *up)
{
    int e, sys;
    size_t n = tls_read_into(up, &e, &sys);
    int end = e != SSL_ERROR_NONE && e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE;

    if (e == SSL_ERROR_WANT_WRITE)
        up->tls_rw = 1;
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
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
            event_active(&up->rev, EV_READ, 1);
        up->ops->on_read(up->owner, up, (ssize_t)n, 0);
        return;
    }
    if (!end)
        return;
    if (e == SSL_ERROR_ZERO_RETURN) {
        up->ops->on_read(up->owner, up, 0, 0); /* close_notify */
        return;
    }
    if ((e == SSL_ERROR_SSL &&
         ERR_GET_REASON(ERR_peek_last_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING) ||
        (e == SSL_ERROR_SYSCALL && sys == 0)) {
        /* A close without close_notify, as many servers do: the HTTP framing decides whether
         * what came was complete (RFC 9112 §9.8), as with a plain FIN. */
        ERR_clear_error();
        up->tls_dead = 1;
        up->ops->on_read(up->owner, up, 0, 0);
        return;
    }
    int err = tls_fail(up, e, sys, "TLS read failed");
    up->ops->on_read(up->owner, up, -1, err);
}

/* Encrypts and sends up->out, one record per SSL_write. Returns 1 once up->out is empty, 0
 * when the rest waits for an event (tls_wr set if it waits to read), -1 with *err set. */
static int tls_send(sf_upconn *up, int *err)
{
    size_t len;
    while ((len = evbuffer_get_length(up->out)) > 0) {
        /* A retry after WANT_* must offer at least the bytes offered before: up->out only
         * grows at its end between retries, so the same prefix, no shorter, comes back. */
        int n = len < TLS_RECORD ? (int)len : TLS_RECORD;
        unsigned char *buf = evbuffer_pullup(up->out, n);
        if (buf == NULL) {
            *err = ENOMEM;
            return -1;
        }
        ERR_clear_error();
        int r = SSL_write(up->ssl, buf, n);
        if (r > 0) {
            evbuffer_drain(up->out, (size_t)r);
            continue;
        }
        int sys = errno;
        int e = SSL_get_error(up->ssl, r);
        if (e == SSL_ERROR_WANT_WRITE)
            return 0;
        if (e == SSL_ERROR_WANT_READ) {
            up->tls_wr = 1;
            return 0;
        }
        *err = tls_fail(up, e, sys, "TLS write failed");
        if (*err == ECONNRESET && e == SSL_ERROR_ZERO_RETURN)
            *err = EPIPE;
        return -1;
    }
    return 1;
}

static int tls_flush(sf_upconn *up)
{
    int err = 0;
    if (!up->tls_wr && tls_send(up, &err) < 0) {
        up->ops->on_write_error(up->owner, up, err);
        return -1;
    }
    tls_arm(up);
    return 0;
}

static void tls_idle(sf_upconn *up)
{
    tls_arm(up);
    if (SSL_has_pending(up->ssl))
        event_active(&up->rev, EV_READ, 1);
}

static void tls_close(sf_upconn *up, int abort)
{
    /* One close_notify, best-effort and never waited for. Not on an abort: a cut-off stream
     * must not look like a clean end. */
    if (!abort && !up->connecting && !up->tls_dead) {
        ERR_clear_error();
        (void)SSL_shutdown(up->ssl);
    }
    SSL_free(up->ssl);
    ERR_clear_error();
    up->ssl = NULL;
    free(up->error);
    up->error = NULL;
}

static void tls_on_read(evutil_socket_t fd, short what, void *arg)
{
    sf_upconn *up = arg;
    (void)fd;
    (void)what;
    if (up->connecting) {
        if (up->tls_hs)
            tls_handshake(up);
        return;
    }
    if (up->tls_wr) {
        /* an SSL_write was waiting for this */
        int err = 0;
        up->tls_wr = 0;
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
        if (!up->tls_hs) {
            int err = connect_result(up);
            if (err == EINPROGRESS)
                return;
            if (err != 0) {
                up->connecting = 0;
                up->ops->on_connect(up->owner, up, err);
                return;
            }
            up->tls_hs = 1;
        }
        tls_handshake(up);
        return;
    }
    if (up->tls_rw) {
        /* an SSL_read was waiting for this; a pending write gets its turn on the next pass
         * (tls_arm keeps the write event). Paused, the read is retried on resume. */
        up->tls_rw = 0;
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
