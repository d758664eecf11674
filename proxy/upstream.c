/* Upstream pools and connections. Idle connections keep their read event armed so that a
 * close by the backend is seen at once and the connection leaves the pool before reuse. */
#include "upstream.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "netio.h"

struct sf_pool {
    struct event_base *base;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char name[128];
    size_t max_idle, nidle;
    struct timeval idle_tv;
    TAILQ_HEAD(, sf_upconn) idle;
};

static void on_up_read(evutil_socket_t fd, short what, void *arg);
static void on_up_write(evutil_socket_t fd, short what, void *arg);
static void on_up_timer(evutil_socket_t fd, short what, void *arg);

sf_pool *sf_pool_create(struct event_base *base, const struct sockaddr_storage *addr,
                        socklen_t addrlen, const char *name, size_t max_idle, unsigned idle_ms,
                        const sf_pool_tls *tls)
{
    (void)tls;
    sf_pool *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
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
    if (up->in == NULL || up->out == NULL) {
        if (up->in)
            evbuffer_free(up->in);
        if (up->out)
            evbuffer_free(up->out);
        close(fd);
        free(up);
        errno = ENOMEM;
        return NULL;
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
        event_del(&up->rev);
    }
}

void sf_upconn_resume_read(sf_upconn *up)
{
    if (up->read_paused) {
        up->read_paused = 0;
        event_add(&up->rev, NULL);
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

static void on_up_write(evutil_socket_t fd, short what, void *arg)
{
    sf_upconn *up = arg;
    (void)fd;
    (void)what;
    if (up->connecting) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(up->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            err = errno;
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
