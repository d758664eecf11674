/* Access log writer. Lines collect in a buffer flushed at 64 KiB or every 200 ms, whichever
 * comes first, so the request path costs one formatted copy and no system call. */
#include "accesslog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <event2/event_struct.h>

#define BUF_CAP        65536
#define LINE_MAX_BYTES 4096

struct sf_accesslog {
    int fd;
    int owns_fd;
    char *path;
    char buf[BUF_CAP];
    size_t len;
    struct event flush_ev;
    int flush_armed;
    time_t ts_sec; /* cached second for the timestamp */
    char ts_prefix[64];
};

static void flush(sf_accesslog *l)
{
    size_t off = 0;
    while (off < l->len) {
        ssize_t n = write(l->fd, l->buf + off, l->len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* a full or broken log must not stop the proxy: drop the batch */
        off += (size_t)n;
    }
    l->len = 0;
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    sf_accesslog *l = arg;
    (void)fd;
    (void)what;
    l->flush_armed = 0;
    flush(l);
}

sf_accesslog *sf_accesslog_open(struct event_base *base, const char *target, char *err,
                                size_t errlen)
{
    sf_accesslog *l = calloc(1, sizeof(*l));
    if (l == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (strcmp(target, "stderr") == 0) {
        l->fd = STDERR_FILENO;
    } else {
        l->path = strdup(target);
        l->fd = open(target, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (l->fd < 0) {
            snprintf(err, errlen, "cannot open access log %s: %s", target, strerror(errno));
            free(l->path);
            free(l);
            return NULL;
        }
        l->owns_fd = 1;
    }
    evtimer_assign(&l->flush_ev, base, on_flush, l);
    return l;
}

void sf_accesslog_close(sf_accesslog *l)
{
    if (l == NULL)
        return;
    flush(l);
    event_del(&l->flush_ev);
    if (l->owns_fd)
        close(l->fd);
    free(l->path);
    free(l);
}

int sf_accesslog_reopen(sf_accesslog *l)
{
    if (l == NULL || !l->owns_fd)
        return 0;
    flush(l);
    int fd = open(l->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    close(l->fd);
    l->fd = fd;
    return 0;
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

static void timestamp(sf_accesslog *l, char *out, size_t len)
{
    struct timeval tv;
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

void sf_accesslog_write(sf_accesslog *l, const sf_access_entry *e)
{
    if (l == NULL)
        return;
    char line[LINE_MAX_BYTES];
    char ts[80];
    size_t o = 0;
    timestamp(l, ts, sizeof(ts));
#define LIT(s)                                                                                     \
    do {                                                                                           \
        size_t n_ = sizeof(s) - 1;                                                                 \
        if (o + n_ < sizeof(line)) {                                                               \
            memcpy(line + o, s, n_);                                                               \
            o += n_;                                                                               \
        }                                                                                          \
    } while (0)
#define FMT(...)                                                                                   \
    do {                                                                                           \
        int n_ = snprintf(line + o, sizeof(line) - o, __VA_ARGS__);                                \
        if (n_ > 0 && (size_t)n_ < sizeof(line) - o)                                               \
            o += (size_t)n_;                                                                       \
    } while (0)
    LIT("{\"ts\":\"");
    FMT("%s", ts);
    LIT("\",\"request_id\":");
    sf_json_str(line, sizeof(line), &o, e->request_id);
    LIT(",\"client\":");
    sf_json_str(line, sizeof(line), &o, e->client);
    LIT(",\"method\":");
    sf_json_str(line, sizeof(line), &o, e->method);
    LIT(",\"path\":");
    sf_json_str(line, sizeof(line), &o, e->path);
    LIT(",\"route\":");
    sf_json_str(line, sizeof(line), &o, e->route);
    LIT(",\"backend\":");
    sf_json_str(line, sizeof(line), &o, e->backend);
    FMT(",\"status\":%d,\"duration_ms\":%.3f,", e->status, e->duration_ms);
    if (e->upstream_ms >= 0)
        FMT("\"upstream_ms\":%.3f,", e->upstream_ms);
    else
        LIT("\"upstream_ms\":null,");
    FMT("\"bytes_in\":%llu,\"bytes_out\":%llu,\"shadow\":", (unsigned long long)e->bytes_in,
        (unsigned long long)e->bytes_out);
    if (e->shadow)
        sf_json_str(line, sizeof(line), &o, e->shadow);
    else
        LIT("null");
    if (e->fallback)
        LIT(",\"fallback\":true");
    if (e->error) {
        LIT(",\"error\":");
        sf_json_str(line, sizeof(line), &o, e->error);
    }
    LIT("}\n");
#undef LIT
#undef FMT
    if (line[o - 1] != '\n') /* truncated by the line cap: keep the file line-structured */
        line[o - 1] = '\n';
    if (l->len + o > BUF_CAP)
        flush(l);
    memcpy(l->buf + l->len, line, o);
    l->len += o;
    if (!l->flush_armed) {
        static const struct timeval tv = {0, 200000};
        l->flush_armed = 1;
        event_add(&l->flush_ev, &tv);
    }
}
