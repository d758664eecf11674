/* Socket helpers shared by listeners, client connections and upstream pools. */
#include "netio.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

int sf_addr_resolve(const char *host, unsigned port, struct sockaddr_storage *addr, socklen_t *len,
                    char *err, size_t errlen)
{
    struct addrinfo hints, *res = NULL;
    char portstr[8];
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(portstr, sizeof(portstr), "%u", port);
    int rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0 || res == NULL) {
        snprintf(err, errlen, "cannot resolve '%s': %s", host, gai_strerror(rc));
        return -1;
    }
    memcpy(addr, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

int sf_addr_parse(const char *hostport, struct sockaddr_storage *addr, socklen_t *len, char *err,
                  size_t errlen)
{
    char host[256];
    const char *colon = strrchr(hostport, ':');
    if (colon == NULL || (size_t)(colon - hostport) >= sizeof(host)) {
        snprintf(err, errlen, "'%s' is not host:port", hostport);
        return -1;
    }
    const char *hs = hostport, *he = colon;
    if (*hs == '[' && he > hs && he[-1] == ']') {
        hs++;
        he--;
    }
    memcpy(host, hs, (size_t)(he - hs));
    host[he - hs] = '\0';
    return sf_addr_resolve(host, (unsigned)atoi(colon + 1), addr, len, err, errlen);
}

void sf_socket_tune(int fd)
{
    int one = 1;
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0 && !(fl & O_NONBLOCK))
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

int sf_listen_socket(const struct sockaddr_storage *addr, socklen_t len, int backlog, int flags)
{
    int one = 1;
    int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if ((flags & SF_LISTEN_REUSEPORT) &&
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    if (bind(fd, (const struct sockaddr *)addr, len) < 0 ||
        (!(flags & SF_LISTEN_PROBE) && listen(fd, backlog) < 0)) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int sf_connect_socket(const struct sockaddr_storage *addr, socklen_t len, int *in_progress)
{
    int one = 1;
    int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    *in_progress = 0;
    if (connect(fd, (const struct sockaddr *)addr, len) < 0) {
        if (errno != EINPROGRESS) {
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
        *in_progress = 1;
    }
    return fd;
}

ssize_t sf_read_into(struct evbuffer *buf, int fd, uint8_t *wide)
{
    struct evbuffer_iovec v[2];
    int n_vec = evbuffer_reserve_space(buf, (*wide ? 2 : 1) * SF_READ_CHUNK, v, *wide ? 2 : 1);
    if (n_vec < 1) {
        errno = ENOMEM;
        return -1;
    }
    ssize_t n = readv(fd, (struct iovec *)v, n_vec);
    if (n <= 0)
        return n;
    size_t left = (size_t)n;
    int used = 0;
    while (used < n_vec && left > 0) {
        if (v[used].iov_len > left)
            v[used].iov_len = left;
        left -= v[used].iov_len;
        used++;
    }
    evbuffer_commit_space(buf, v, used);
    /* A read that filled a whole chunk means large transfers: read two chunks at a time (a
     * 64 KiB body and its head in one call) until 16 reads in a row come back small. */
    if ((size_t)n >= SF_READ_CHUNK)
        *wide = 16;
    else if (*wide)
        (*wide)--;
    return n;
}

void sf_addr_ip(const struct sockaddr_storage *addr, char *out, size_t len)
{
    if (addr->ss_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)addr)->sin_addr, out, (socklen_t)len);
    else if (addr->ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)addr)->sin6_addr, out, (socklen_t)len);
    else
        snprintf(out, len, "unknown");
}

void sf_close_abort(int fd)
{
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
}

void sf_evbuffer_each(struct evbuffer *buf, size_t from, size_t len,
                      void (*fn)(void *arg, const void *bytes, size_t n), void *arg)
{
    struct evbuffer_ptr pos;
    if (len == 0 || evbuffer_ptr_set(buf, &pos, from, EVBUFFER_PTR_SET) < 0)
        return;
    while (len > 0) {
        struct evbuffer_iovec v[4];
        int n = evbuffer_peek(buf, (ev_ssize_t)len, &pos, v, 4);
        if (n <= 0)
            break;
        if (n > 4)
            n = 4; /* peek says how many it would need; it filled only 4 */
        for (int i = 0; i < n && len > 0; i++) {
            size_t k = v[i].iov_len < len ? v[i].iov_len : len;
            fn(arg, v[i].iov_base, k);
            len -= k;
            evbuffer_ptr_set(buf, &pos, k, EVBUFFER_PTR_ADD);
        }
    }
}

void sf_evbuffer_append_fn(void *arg, const void *bytes, size_t n)
{
    evbuffer_add(arg, bytes, n);
}

/* ---- timers ---- */

static uint64_t coarse_ms(void)
{
    /* the clock libevent 2.1 runs its timers on (without EVENT_BASE_FLAG_PRECISE_TIMER) */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A duration in ms; a common timeout's tv_usec carries libevent's marks above its low 20 bits. */
static uint64_t tv_ms(const struct timeval *tv)
{
    return (uint64_t)tv->tv_sec * 1000 + (uint64_t)(tv->tv_usec & 0xfffff) / 1000;
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    sf_timer *t = arg;
    (void)fd;
    (void)what;
    t->fire_ms = 0;
    if (t->due_ms == 0)
        return; /* cancelled since it was set */
    uint64_t now = coarse_ms();
    if (now + SF_TIMER_SLACK_MS < t->due_ms) {
        /* moved later since the event was added: wait for the rest */
        uint64_t left = t->due_ms - now;
        struct timeval tv = {(time_t)(left / 1000), (suseconds_t)((left % 1000) * 1000)};
        t->fire_ms = t->due_ms;
        event_add(&t->ev, &tv);
        return;
    }
    t->due_ms = 0;
    t->cb(t->arg);
}

void sf_timer_init(sf_timer *t, struct event_base *base, void (*cb)(void *arg), void *arg)
{
    evtimer_assign(&t->ev, base, on_timer, t);
    t->due_ms = t->fire_ms = 0;
    t->cb = cb;
    t->arg = arg;
}

void sf_timer_set(sf_timer *t, const struct timeval *tv)
{
    if (tv == NULL) {
        t->due_ms = 0; /* a pending event fires and finds nothing to do */
        return;
    }
    uint64_t due = coarse_ms() + tv_ms(tv);
    t->due_ms = due != 0 ? due : 1;
    if (t->fire_ms != 0 && t->fire_ms <= t->due_ms)
        return; /* fires no later than due, and sets itself again for the rest */
    t->fire_ms = t->due_ms;
    event_add(&t->ev, tv);
}

void sf_timer_stop(sf_timer *t)
{
    event_del(&t->ev);
    t->due_ms = t->fire_ms = 0;
}
