/* Socket helpers: address parsing, listening and connecting sockets, and reads straight into
 * an evbuffer in large chunks (libevent 2.1's evbuffer_read caps reads at 4 KiB). */
#ifndef SF_NETIO_H
#define SF_NETIO_H

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <sys/socket.h>
#include <stdint.h>
#include <sys/types.h>

/* Bytes asked for per read: just under 64 KiB so an evbuffer chain (payload + header)
 * allocates exactly 64 KiB. */
#define SF_READ_CHUNK (65536 - 256)

/* A timeout that is cheap to move. Most timeouts are set again and again (each request restarts
 * its client's and its upstream connection's) and never fire: moving a pending deadline later
 * only writes the new deadline, and the event, firing at the old one, sets itself again for
 * what is left (nginx's timers work the same way). An event_add per change costs ~250
 * instructions, ~4 per request. A timer may fire up to SF_TIMER_SLACK_MS early. */
#define SF_TIMER_SLACK_MS 5
typedef struct {
    struct event ev;
    uint64_t due_ms;  /* when it expires (monotonic coarse clock); 0: not set */
    uint64_t fire_ms; /* when the pending event fires; 0: none pending */
    void (*cb)(void *arg);
    void *arg;
} sf_timer;

void sf_timer_init(sf_timer *t, struct event_base *base, void (*cb)(void *arg), void *arg);
/* Sets the timer to expire tv from now (a plain or a libevent common-timeout duration); NULL
 * cancels it. */
void sf_timer_set(sf_timer *t, const struct timeval *tv);
/* Removes its event from the loop: before the timer's memory goes. */
void sf_timer_stop(sf_timer *t);

/* Resolves "host:port" or "[v6]:port" (numeric or a name) into addr. Returns 0, or -1 with a
 * reason in err. */
int sf_addr_parse(const char *hostport, struct sockaddr_storage *addr, socklen_t *len, char *err,
                  size_t errlen);
/* Resolves host and port into addr (first result). */
int sf_addr_resolve(const char *host, unsigned port, struct sockaddr_storage *addr, socklen_t *len,
                    char *err, size_t errlen);

/* A non-blocking listening socket with SO_REUSEADDR. Flags: SF_LISTEN_REUSEPORT also sets
 * SO_REUSEPORT (one socket per worker on the same address, the kernel spreading connections);
 * SF_LISTEN_PROBE only binds (no listen): whether the address is free for a socket without
 * SO_REUSEPORT, which fails while any process listens there, SO_REUSEPORT or not. Returns the
 * fd or -1 (errno set). */
#define SF_LISTEN_REUSEPORT 1
#define SF_LISTEN_PROBE     2
int sf_listen_socket(const struct sockaddr_storage *addr, socklen_t len, int backlog, int flags);

/* Starts a non-blocking connect with TCP_NODELAY. Returns the fd (connect may be in
 * progress: *in_progress set) or -1 (errno set). */
int sf_connect_socket(const struct sockaddr_storage *addr, socklen_t len, int *in_progress);

/* Makes fd non-blocking with TCP_NODELAY. */
void sf_socket_tune(int fd);

/* Reads once from fd into buf: up to SF_READ_CHUNK bytes, or two chunks (one readv) while the
 * connection is moving large bodies. *wide is the caller's per-connection state (start at 0).
 * Returns bytes read, 0 on EOF, or -1 (errno set; EAGAIN means nothing to read now). */
ssize_t sf_read_into(struct evbuffer *buf, int fd, uint8_t *wide);

/* Calls fn(arg, bytes, n) over len bytes of buf from offset from, without copying them out
 * (the bytes stay in buf). */
void sf_evbuffer_each(struct evbuffer *buf, size_t from, size_t len,
                      void (*fn)(void *arg, const void *bytes, size_t n), void *arg);

/* fn for sf_evbuffer_each: appends the bytes to the evbuffer arg. */
void sf_evbuffer_append_fn(void *arg, const void *bytes, size_t n);

/* "ip" of a peer address into out. */
void sf_addr_ip(const struct sockaddr_storage *addr, char *out, size_t len);

/* Closes with an RST instead of a FIN (SO_LINGER 0): used to abort a stream so the peer can
 * never mistake a cut-off body for a complete one. */
void sf_close_abort(int fd);

#endif
