/* Access log writer. The loop thread formats each line into a 64 KiB buffer (no system call, no
 * lock); full buffers, and buffers 200 ms old, go through a bounded queue to one writer thread
 * that does the write(2) calls, so a slow or stuck disk costs log lines, never latency. */
#include "accesslog.h"

#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sys/stat.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <event2/event_struct.h>

#define BUF_CAP        65536
#define LINE_MAX_BYTES 4096
#define QUEUE_MAX      64 /* buffers waiting for the writer: 4 MiB of lines at most */
#define SPARE_MAX      4  /* written buffers kept for reuse instead of freed */
#define FLUSH_MS       200
#define WARN_EVERY_S   5
#define CLOSE_WAIT_MS  2000 /* for the writer to empty the queue at exit */
#define CANCEL_WAIT_MS 500  /* then for a cancelled writer to unwind */

/* Output budgets of the string fields, escapes and quotes included. Each string is cut to its
 * share rather than the line being cut at LINE_MAX_BYTES, so even a line of the longest and
 * most escaped values is one closed JSON object with every field. The path takes what the
 * others leave; TAIL_RESERVE covers everything written after it. */
#define BUDGET_ID     400 /* REQID_MAX (64) bytes, each escaped to 6 */
#define BUDGET_CLIENT 128
#define BUDGET_METHOD 64
#define BUDGET_NAME   256 /* route, backend, error */
#define BUDGET_SHADOW 64
#define FIXED_TAIL    256 /* keys, numbers, "}\n" after the path */
#define TAIL_RESERVE  (3 * BUDGET_NAME + BUDGET_SHADOW + FIXED_TAIL)
#define FIXED_HEAD    128 /* keys and the timestamp before the path */
_Static_assert(FIXED_HEAD + BUDGET_ID + BUDGET_CLIENT + BUDGET_METHOD + 512 + TAIL_RESERVE <=
                   LINE_MAX_BYTES,
               "a line must hold every field and at least 512 bytes of path");

typedef struct abuf {
    struct abuf *next;
    size_t len;
    uint64_t lines;
    char data[BUF_CAP];
} abuf;

struct sf_accesslog {
    /* Set at open, read-only after. */
    char *path; /* NULL for stderr */
    pthread_t writer;

    /* Loop thread only. */
    abuf *cur; /* the buffer lines go to; NULL after an allocation failure */
    struct event flush_ev;
    int flush_armed;
    time_t ts_sec; /* cached second of the timestamp */
    char ts_prefix[64];
    uint64_t qdropped, qdropped_reported;
    struct timespec qdropped_warned;

    /* Writer thread only (and sf_accesslog_close once the writer ended). */
    int fd;
    uint64_t lost_unreported;
    struct timespec lost_warned;

    /* Under mu. The writer waits on wake for buffers, a reopen or stop; close waits on ended. */
    pthread_mutex_t mu;
    pthread_cond_t wake, ended;
    abuf *qhead, *qtail;
    size_t qlen;
    abuf *spare;
    size_t nspare;
    abuf *inflight;         /* taken off the queue, being written */
    uint64_t enqueued;      /* buffers ever queued */
    uint64_t dequeued;      /* buffers ever taken by the writer */
    uint64_t reopen_after;  /* reopen once this many buffers were taken and written */
    int reopen, stop, done; /* done: the writer thread has finished (or was cancelled) */

    /* Statistics, any thread. */
    atomic_uint_fast64_t dropped, written;
};

static void now_mono(struct timespec *ts)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
}

/* 1 when WARN_EVERY_S passed since *last (or never warned), and then *last becomes now. */
static int warn_due(struct timespec *last)
{
    struct timespec now;
    now_mono(&now);
    if ((last->tv_sec != 0 || last->tv_nsec != 0) && now.tv_sec - last->tv_sec < WARN_EVERY_S)
        return 0;
    *last = now;
    return 1;
}

static uint64_t count_lines(const char *p, size_t len)
{
    uint64_t n = 0;
    const char *end = p + len;
    while (p < end && (p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        n++;
        p++;
    }
    return n;
}

static void free_list(abuf *b)
{
    while (b != NULL) {
        abuf *next = b->next;
        free(b);
        b = next;
    }
}

/* Never waits for a FIFO's reader (O_NONBLOCK: ENXIO instead), then blocking writes: the writer
 * thread is the one that waits. */
static int open_log(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK, 0644);
    if (fd < 0)
        return -1;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* ---- writer thread ---- */

static void note_lost(sf_accesslog *l, uint64_t lines, const char *why)
{
    atomic_fetch_add_explicit(&l->dropped, lines, memory_order_relaxed);
    l->lost_unreported += lines;
    if (warn_due(&l->lost_warned)) {
        sf_warn("access log: writing to %s failed (%s): %llu line(s) lost",
                l->path ? l->path : "stderr", why, (unsigned long long)l->lost_unreported);
        l->lost_unreported = 0;
    }
}

static void write_buf(sf_accesslog *l, abuf *b)
{
    size_t off = 0;
    struct stat st;
    /* stderr is shared with the error log, and a file with the other workers' writers: on
     * anything but a regular file (whose O_APPEND writes do not interleave), whole lines of at
     * most PIPE_BUF bytes per write keep every line whole */
    int whole_lines = l->path == NULL || fstat(l->fd, &st) < 0 || !S_ISREG(st.st_mode);
    while (off < b->len) {
        size_t n = b->len - off;
        if (whole_lines && n > PIPE_BUF) {
            const char *nl = memrchr(b->data + off, '\n', PIPE_BUF);
            n = nl != NULL ? (size_t)(nl - (b->data + off)) + 1 : PIPE_BUF;
        }
        /* The only cancellation points (with the poll below): close cancels a writer stuck
         * here, never one holding mu. */
        pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL);
        ssize_t w = write(l->fd, b->data + off, n);
        int err = errno;
        pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
        if (w < 0 && err == EINTR)
            continue;
        if (w < 0 && (err == EAGAIN || err == EWOULDBLOCK)) {
            /* a stderr some other process made non-blocking: wait as a blocking write would */
            struct pollfd pfd = {.fd = l->fd, .events = POLLOUT};
            pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL);
            poll(&pfd, 1, 1000);
            pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
            continue;
        }
        if (w <= 0) {
            uint64_t lost = count_lines(b->data + off, b->len - off);
            atomic_fetch_add_explicit(&l->written, b->lines - lost, memory_order_relaxed);
            note_lost(l, lost, w < 0 ? strerror(err) : "nothing written");
            return;
        }
        off += (size_t)w;
    }
    atomic_fetch_add_explicit(&l->written, b->lines, memory_order_relaxed);
}

static void reopen_now(sf_accesslog *l)
{
    int fd = open_log(l->path);
    if (fd < 0) {
        sf_error("access log: cannot reopen %s: %s; still writing to the file open before", l->path,
                 strerror(errno));
        return;
    }
    close(l->fd);
    l->fd = fd;
}

static void on_writer_end(void *arg)
{
    sf_accesslog *l = arg;
    pthread_mutex_lock(&l->mu);
    l->done = 1;
    pthread_cond_broadcast(&l->ended);
    pthread_mutex_unlock(&l->mu);
}

static void writer_loop(sf_accesslog *l)
{
    pthread_mutex_lock(&l->mu);
    for (;;) {
        /* dequeued counts buffers already written: every line logged before the reopen
         * request is in the old file */
        if (l->reopen && l->dequeued >= l->reopen_after) {
            l->reopen = 0;
            pthread_mutex_unlock(&l->mu);
            reopen_now(l);
            pthread_mutex_lock(&l->mu);
            continue;
        }
        abuf *b = l->qhead;
        if (b != NULL) {
            l->qhead = b->next;
            if (l->qhead == NULL)
                l->qtail = NULL;
            l->qlen--;
            l->dequeued++;
            l->inflight = b;
            pthread_mutex_unlock(&l->mu);
            write_buf(l, b);
            pthread_mutex_lock(&l->mu);
            l->inflight = NULL;
            if (l->nspare < SPARE_MAX) {
                b->next = l->spare;
                l->spare = b;
                l->nspare++;
            } else {
                free(b);
            }
            continue;
        }
        if (l->stop)
            break;
        pthread_cond_wait(&l->wake, &l->mu);
    }
    pthread_mutex_unlock(&l->mu);
    if (l->lost_unreported > 0)
        sf_warn("access log: %llu more line(s) lost to failed writes",
                (unsigned long long)l->lost_unreported);
}

static void *writer_main(void *arg)
{
    sf_accesslog *l = arg;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
    pthread_cleanup_push(on_writer_end, l);
    writer_loop(l);
    pthread_cleanup_pop(1);
    return NULL;
}

/* ---- loop thread ---- */

/* Under mu. */
static void enqueue(sf_accesslog *l, abuf *b)
{
    b->next = NULL;
    if (l->qtail != NULL)
        l->qtail->next = b;
    else
        l->qhead = b;
    l->qtail = b;
    l->qlen++;
    l->enqueued++;
    pthread_cond_signal(&l->wake);
}

/* A spare buffer, or NULL when there is none. Called with l->mu held. */
static abuf *take_spare(sf_accesslog *l)
{
    abuf *spare = l->spare;
    if (spare != NULL) {
        l->spare = spare->next;
        l->nspare--;
    }
    return spare;
}

static abuf *new_buf(abuf *spare)
{
    abuf *b = spare != NULL ? spare : malloc(sizeof(*b));
    if (b != NULL) {
        b->len = 0;
        b->lines = 0;
        b->next = NULL;
    }
    return b;
}

/* Queues the current buffer and starts a fresh one (NULL when out of memory). idle_only: only
 * when the writer has nothing queued, so that a writer behind the disk gets full buffers and
 * the queue's slots hold 64 KiB each. Returns -1 when the buffer stays current. */
static int handoff(sf_accesslog *l, int idle_only)
{
    pthread_mutex_lock(&l->mu);
    if (l->qlen >= QUEUE_MAX || (idle_only && l->qlen > 0)) {
        pthread_mutex_unlock(&l->mu);
        return -1;
    }
    enqueue(l, l->cur);
    abuf *spare = take_spare(l);
    pthread_mutex_unlock(&l->mu);
    l->cur = new_buf(spare);
    return 0;
}

static void warn_dropped(sf_accesslog *l, int force)
{
    uint64_t n = l->qdropped - l->qdropped_reported;
    if (n == 0 || (!warn_due(&l->qdropped_warned) && !force))
        return;
    sf_warn("access log: %llu line(s) dropped, the log's disk is too slow (%s)",
            (unsigned long long)n, l->path ? l->path : "stderr");
    l->qdropped_reported = l->qdropped;
}

static void arm_flush(sf_accesslog *l)
{
    static const struct timeval tv = {0, FLUSH_MS * 1000};
    if (!l->flush_armed) {
        l->flush_armed = 1;
        event_add(&l->flush_ev, &tv);
    }
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    sf_accesslog *l = arg;
    (void)fd;
    (void)what;
    l->flush_armed = 0;
    if (l->cur != NULL && l->cur->len > 0 && handoff(l, 1) < 0)
        arm_flush(l); /* the writer is busy: try again, and fill this one meanwhile */
    warn_dropped(l, 0);
    if (l->qdropped != l->qdropped_reported)
        arm_flush(l); /* report the rest when due, even if no request comes */
}

static int sync_init(sf_accesslog *l)
{
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0)
        return -1;
    int rc = -1;
    /* close's deadline must not move with the wall clock */
    if (pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
        pthread_mutex_init(&l->mu, NULL) != 0)
        goto done;
    if (pthread_cond_init(&l->wake, NULL) != 0) {
        pthread_mutex_destroy(&l->mu);
        goto done;
    }
    if (pthread_cond_init(&l->ended, &ca) != 0) {
        pthread_cond_destroy(&l->wake);
        pthread_mutex_destroy(&l->mu);
        goto done;
    }
    rc = 0;
done:
    pthread_condattr_destroy(&ca);
    return rc;
}

static void sync_dispose(sf_accesslog *l)
{
    pthread_cond_destroy(&l->ended);
    pthread_cond_destroy(&l->wake);
    pthread_mutex_destroy(&l->mu);
}

sf_accesslog *sf_accesslog_open(struct event_base *base, const char *target, char *err,
                                size_t errlen)
{
    sf_accesslog *l = calloc(1, sizeof(*l));
    if (l == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    l->fd = -1;
    if (strcmp(target, "stderr") == 0) {
        l->fd = STDERR_FILENO;
    } else {
        l->path = strdup(target);
        if (l->path == NULL) {
            snprintf(err, errlen, "out of memory");
            free(l);
            return NULL;
        }
        l->fd = open_log(target);
        if (l->fd < 0) {
            snprintf(err, errlen, "cannot open access log %s: %s%s", target, strerror(errno),
                     errno == ENXIO ? " (a FIFO without a reader)" : "");
            free(l->path);
            free(l);
            return NULL;
        }
    }
    l->cur = new_buf(NULL);
    if (l->cur == NULL || sync_init(l) < 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    /* Signals stay with the event loop, where libevent handles them: the writer blocks all. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&l->writer, NULL, writer_main, l);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start the access log writer: %s", strerror(rc));
        sync_dispose(l);
        goto fail;
    }
    evtimer_assign(&l->flush_ev, base, on_flush, l);
    return l;
fail:
    if (l->path != NULL)
        close(l->fd);
    free(l->cur);
    free(l->path);
    free(l);
    return NULL;
}

/* Under mu: 1 once the writer ended, 0 at the deadline. */
static int wait_ended(sf_accesslog *l, long ms)
{
    struct timespec dl;
    now_mono(&dl);
    dl.tv_sec += ms / 1000;
    dl.tv_nsec += (ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    while (!l->done)
        if (pthread_cond_timedwait(&l->ended, &l->mu, &dl) == ETIMEDOUT)
            break;
    return l->done;
}

/* Under mu: lines queued or being written. */
static uint64_t pending_lines(const sf_accesslog *l)
{
    uint64_t n = l->inflight != NULL ? l->inflight->lines : 0;
    for (const abuf *b = l->qhead; b != NULL; b = b->next)
        n += b->lines;
    return n;
}

void sf_accesslog_close(sf_accesslog *l)
{
    if (l == NULL)
        return;
    event_del(&l->flush_ev);
    warn_dropped(l, 1);
    pthread_mutex_lock(&l->mu);
    if (l->cur != NULL && l->cur->len > 0)
        enqueue(l, l->cur); /* past QUEUE_MAX if need be: this is the last one */
    else
        free(l->cur);
    l->cur = NULL;
    l->stop = 1;
    pthread_cond_signal(&l->wake);
    int ended = wait_ended(l, CLOSE_WAIT_MS);
    if (!ended) {
        uint64_t lost = pending_lines(l);
        pthread_mutex_unlock(&l->mu);
        sf_warn("access log: %s took nothing for %d ms; giving up on %llu line(s)",
                l->path ? l->path : "stderr", CLOSE_WAIT_MS, (unsigned long long)lost);
        pthread_cancel(l->writer);
        pthread_mutex_lock(&l->mu);
        ended = wait_ended(l, CANCEL_WAIT_MS);
    }
    pthread_mutex_unlock(&l->mu);
    if (!ended) {
        /* Stuck in an uninterruptible write (a dead NFS server): the thread still uses l, so l
         * stays allocated; the process is exiting. */
        sf_warn("access log: the writer does not respond; leaving it behind");
        pthread_detach(l->writer);
        return;
    }
    pthread_join(l->writer, NULL);
    if (l->path != NULL)
        close(l->fd);
    free(l->inflight); /* set only when the writer was cancelled in write() */
    free_list(l->qhead);
    free_list(l->spare);
    sync_dispose(l);
    free(l->path);
    free(l);
}

void sf_accesslog_reopen(sf_accesslog *l)
{
    if (l == NULL || l->path == NULL)
        return;
    /* The lines logged so far belong to the old file (logrotate renamed it already): hand
     * them over first. With the queue full they go to the new file instead, unlost. */
    if (l->cur != NULL && l->cur->len > 0)
        handoff(l, 0);
    pthread_mutex_lock(&l->mu);
    l->reopen = 1;
    l->reopen_after = l->enqueued;
    pthread_cond_signal(&l->wake);
    pthread_mutex_unlock(&l->mu);
}

uint64_t sf_accesslog_dropped(const sf_accesslog *l)
{
    return l != NULL ? atomic_load_explicit(&l->dropped, memory_order_relaxed) : 0;
}

uint64_t sf_accesslog_written(const sf_accesslog *l)
{
    return l != NULL ? atomic_load_explicit(&l->written, memory_order_relaxed) : 0;
}

void sf_json_str(char *buf, size_t cap, size_t *off, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = *off;
    if (o + 2 >= cap)
        return;
    buf[o++] = '"';
    for (; *s && o + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)c;
        } else if (c < 0x20 || c >= 0x7f) {
            /* control bytes and non-ASCII as \u00XX: the line stays valid JSON whatever the
             * client sent (JSON strings must be UTF-8) */
            buf[o++] = '\\';
            buf[o++] = 'u';
            buf[o++] = '0';
            buf[o++] = '0';
            buf[o++] = hex[c >> 4];
            buf[o++] = hex[c & 15];
        } else {
            buf[o++] = (char)c;
        }
    }
    buf[o++] = '"';
    *off = o;
}

/* The entry's end time (tv, when given), else now. */
static void timestamp(sf_accesslog *l, const struct timeval *at, char *out, size_t len)
{
    struct timeval tv;
    if (at != NULL && at->tv_sec != 0)
        tv = *at;
    else
        gettimeofday(&tv, NULL);
    if (tv.tv_sec != l->ts_sec) {
        struct tm tm;
        gmtime_r(&tv.tv_sec, &tm);
        snprintf(l->ts_prefix, sizeof(l->ts_prefix), "%04d-%02d-%02dT%02d:%02d:%02d",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        l->ts_sec = tv.tv_sec;
    }
    snprintf(out, len, "%s.%03dZ", l->ts_prefix, (int)(tv.tv_usec / 1000));
}

/* A string field within budget bytes and never past limit; NULL as null. */
static void jstr(char *line, size_t *o, const char *s, size_t budget, size_t limit)
{
    size_t cap = *o + budget < limit ? *o + budget : limit;
    if (s == NULL) {
        if (*o + 4 < cap) {
            memcpy(line + *o, "null", 4);
            *o += 4;
        }
        return;
    }
    sf_json_str(line, cap, o, s);
}

/* Milliseconds as JSON can carry them (no NaN) in a bounded width. */
static double ms_value(double v)
{
    if (!(v >= 0))
        return 0;
    return v > 1e12 ? 1e12 : v;
}

static size_t format_line(sf_accesslog *l, const sf_access_entry *e, char *line)
{
    char ts[80];
    size_t o = 0;
    const size_t cap = LINE_MAX_BYTES;
    timestamp(l, &e->ts, ts, sizeof(ts));
#define LIT(s)                                                                                     \
    do {                                                                                           \
        size_t n_ = sizeof(s) - 1;                                                                 \
        if (o + n_ < cap) {                                                                        \
            memcpy(line + o, s, n_);                                                               \
            o += n_;                                                                               \
        }                                                                                          \
    } while (0)
#define FMT(...)                                                                                   \
    do {                                                                                           \
        int n_ = snprintf(line + o, cap - o, __VA_ARGS__);                                         \
        if (n_ > 0 && (size_t)n_ < cap - o)                                                        \
            o += (size_t)n_;                                                                       \
    } while (0)
    LIT("{\"ts\":\"");
    FMT("%.30s", ts);
    LIT("\",\"request_id\":");
    jstr(line, &o, e->request_id, BUDGET_ID, cap);
    LIT(",\"client\":");
    jstr(line, &o, e->client, BUDGET_CLIENT, cap);
    LIT(",\"method\":");
    jstr(line, &o, e->method, BUDGET_METHOD, cap);
    LIT(",\"path\":");
    jstr(line, &o, e->path, cap, cap - TAIL_RESERVE);
    LIT(",\"route\":");
    jstr(line, &o, e->route, BUDGET_NAME, cap);
    LIT(",\"backend\":");
    jstr(line, &o, e->backend, BUDGET_NAME, cap);
    FMT(",\"status\":%d,\"duration_ms\":%.3f,", e->status, ms_value(e->duration_ms));
    if (e->upstream_ms >= 0)
        FMT("\"upstream_ms\":%.3f,", ms_value(e->upstream_ms));
    else
        LIT("\"upstream_ms\":null,");
    FMT("\"bytes_in\":%llu,\"bytes_out\":%llu,\"shadow\":", (unsigned long long)e->bytes_in,
        (unsigned long long)e->bytes_out);
    jstr(line, &o, e->shadow, BUDGET_SHADOW, cap);
    if (e->fallback)
        LIT(",\"fallback\":true");
    if (e->error != NULL) {
        LIT(",\"error\":");
        jstr(line, &o, e->error, BUDGET_NAME, cap);
    }
    LIT("}\n");
#undef LIT
#undef FMT
    return o;
}

void sf_accesslog_write(sf_accesslog *l, const sf_access_entry *e)
{
    if (l == NULL)
        return;
    char line[LINE_MAX_BYTES];
    size_t n = format_line(l, e, line);
    if (l->cur == NULL) {
        /* an earlier allocation failed: try once more, from the spares first */
        pthread_mutex_lock(&l->mu);
        abuf *spare = take_spare(l);
        pthread_mutex_unlock(&l->mu);
        l->cur = new_buf(spare);
    }
    if (l->cur != NULL && l->cur->len + n > BUF_CAP && handoff(l, 0) < 0) {
        /* 4 MiB behind: drop this line rather than wait or grow */
    } else if (l->cur != NULL) {
        memcpy(l->cur->data + l->cur->len, line, n);
        l->cur->len += n;
        l->cur->lines++;
        arm_flush(l);
        return;
    }
    l->qdropped++;
    atomic_fetch_add_explicit(&l->dropped, 1, memory_order_relaxed);
    warn_dropped(l, 0);
}
