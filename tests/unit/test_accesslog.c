/* The access log on real files and pipes: lines are valid JSON with the DESIGN §7 fields even
 * when cut at the line cap, a quiet buffer reaches the file within its flush interval, a reopen
 * splits old and new lines exactly, and a log nobody reads costs dropped lines, never a blocked
 * caller or a hung close. */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "accesslog.h"
#include "tap.h"

static char dir[64];
static struct event_base *base;

static const char *const fields[] = {
    "ts",     "request_id",  "client",      "method",   "path",      "route",  "backend",
    "status", "duration_ms", "upstream_ms", "bytes_in", "bytes_out", "shadow",
};

static sf_access_entry entry(const char *path)
{
    sf_access_entry e = {
        .request_id = "req-1",
        .client = "127.0.0.1",
        .method = "GET",
        .path = path,
        .route = "orders",
        .backend = "function",
        .status = 200,
        .duration_ms = 1.5,
        .upstream_ms = 1.25,
        .bytes_in = 10,
        .bytes_out = 20,
    };
    return e;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        *len = 0;
        return calloc(1, 1);
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    size_t r;
    while (buf != NULL && (r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            char *nb = realloc(buf, cap * 2 + 1);
            if (nb == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf == NULL)
        abort();
    buf[n] = '\0';
    *len = n;
    return buf;
}

static size_t count_nl(const char *p, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += p[i] == '\n';
    return n;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The error log goes to stderr: these catch it in a file for a test to read. */
static int saved_stderr = -1;
static char errpath[PATH_MAX];

static void capture_stderr(void)
{
    snprintf(errpath, sizeof(errpath), "%s/stderr.txt", dir);
    int fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    fflush(stderr);
    saved_stderr = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    close(fd);
}

static char *release_stderr(void)
{
    fflush(stderr);
    dup2(saved_stderr, STDERR_FILENO);
    close(saved_stderr);
    size_t len;
    return slurp(errpath, &len);
}

static sf_accesslog *open_log(const char *path)
{
    char err[256] = "";
    sf_accesslog *l = sf_accesslog_open(base, path, err, sizeof(err));
    if (l == NULL)
        diag("cannot open %s: %s", path, err);
    return l;
}

/* Strings made of the bytes that cost the most to escape, longer than any budget. */
static void test_line_cap_keeps_json_valid(void)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/cap.log", dir);
    sf_accesslog *l = open_log(path);
    if (!ok(l != NULL, "open a file log"))
        return;
    static char nasty[8192];
    for (size_t i = 0; i < sizeof(nasty) - 1; i++)
        nasty[i] = i % 3 == 0 ? '\x01' : i % 3 == 1 ? '"' : '\xff';
    sf_access_entry e = {
        .request_id = nasty,
        .client = nasty,
        .method = nasty,
        .path = nasty,
        .route = nasty,
        .backend = nasty,
        .status = -2147483647 - 1,
        .duration_ms = 1e300,
        .upstream_ms = NAN,
        .bytes_in = UINT64_MAX,
        .bytes_out = UINT64_MAX,
        .shadow = nasty,
        .error = nasty,
        .fallback = 1,
    };
    sf_accesslog_write(l, &e);
    e.duration_ms = -1;
    e.upstream_ms = 1e300;
    sf_accesslog_write(l, &e);
    sf_accesslog_close(l);

    size_t len;
    char *data = slurp(path, &len);
    is((long long)count_nl(data, len), 2, "two worst-case entries give two lines");
    char *line = data;
    for (int i = 0; i < 2 && line < data + len; i++) {
        char *nl = strchr(line, '\n');
        size_t n = nl != NULL ? (size_t)(nl - line) + 1 : strlen(line);
        ok(n <= 4096, "worst-case line %d fits the 4 KiB cap (%zu bytes)", i, n);
        json_error_t jerr;
        /* INT_AS_REAL: jansson's integers stop at INT64_MAX, bytes_in goes to UINT64_MAX */
        json_t *j = json_loadb(line, n, JSON_DECODE_INT_AS_REAL, &jerr);
        if (!ok(json_is_object(j), "worst-case line %d is one JSON object", i))
            diag("%s: %s", jerr.text, tap_esc(line, n));
        int all = 1;
        for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]); f++)
            if (json_object_get(j, fields[f]) == NULL) {
                diag("no %s", fields[f]);
                all = 0;
            }
        ok(all, "worst-case line %d still has every DESIGN field", i);
        const char *p = json_string_value(json_object_get(j, "path"));
        ok(p != NULL && strlen(p) >= 300, "worst-case line %d keeps a long share of the path", i);
        ok(json_is_number(json_object_get(j, "duration_ms")),
           "worst-case line %d has a number for duration_ms", i);
        json_decref(j);
        line += n;
    }
    free(data);
}

static void test_fields_round_trip(void)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/fields.log", dir);
    sf_accesslog *l = open_log(path);
    if (!ok(l != NULL, "open a file log"))
        return;
    sf_access_entry e = entry("/api/orders/7?x=\"1\"");
    e.fallback = 1;
    e.error = "truncated";
    sf_accesslog_write(l, &e);
    e = entry("/plain");
    e.upstream_ms = -1;
    e.shadow = "match";
    e.request_id = "-";
    sf_accesslog_write(l, &e);
    sf_accesslog_close(l);

    size_t len;
    char *data = slurp(path, &len);
    char *second = strchr(data, '\n');
    json_t *a = json_loadb(data, second != NULL ? (size_t)(second - data) : len, 0, NULL);
    json_t *b = second != NULL ? json_loads(second + 1, 0, NULL) : NULL;
    ok(a != NULL && b != NULL, "both lines parse");
    is_str(json_string_value(json_object_get(a, "request_id")), "req-1", "request_id");
    is_str(json_string_value(json_object_get(a, "client")), "127.0.0.1", "client");
    is_str(json_string_value(json_object_get(a, "method")), "GET", "method");
    is_str(json_string_value(json_object_get(a, "path")), "/api/orders/7?x=\"1\"",
           "path, quotes escaped");
    is_str(json_string_value(json_object_get(a, "route")), "orders", "route");
    is_str(json_string_value(json_object_get(a, "backend")), "function", "backend");
    is(json_integer_value(json_object_get(a, "status")), 200, "status");
    ok(json_real_value(json_object_get(a, "duration_ms")) == 1.5, "duration_ms");
    ok(json_real_value(json_object_get(a, "upstream_ms")) == 1.25, "upstream_ms");
    is(json_integer_value(json_object_get(a, "bytes_in")), 10, "bytes_in");
    is(json_integer_value(json_object_get(a, "bytes_out")), 20, "bytes_out");
    ok(json_is_null(json_object_get(a, "shadow")), "shadow is null when not shadowed");
    ok(json_is_true(json_object_get(a, "fallback")), "fallback: true");
    is_str(json_string_value(json_object_get(a, "error")), "truncated", "error");
    ok(json_is_null(json_object_get(b, "upstream_ms")), "upstream_ms null without an upstream");
    is_str(json_string_value(json_object_get(b, "shadow")), "match", "shadow result");
    ok(json_object_get(b, "fallback") == NULL && json_object_get(b, "error") == NULL,
       "no fallback or error keys on a plain exchange");
    json_decref(a);
    json_decref(b);
    free(data);
}

static void on_poll(evutil_socket_t fd, short what, void *arg)
{
    const char *path = arg;
    (void)fd;
    (void)what;
    struct stat st;
    if (stat(path, &st) == 0 && st.st_size > 0)
        event_base_loopbreak(base);
}

static void test_quiet_buffer_is_flushed(void)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/quiet.log", dir);
    sf_accesslog *l = open_log(path);
    if (!ok(l != NULL, "open a file log"))
        return;
    sf_access_entry e = entry("/one");
    sf_accesslog_write(l, &e);
    struct event *poll_ev = event_new(base, -1, EV_PERSIST, on_poll, path);
    struct timeval every = {0, 20000}, limit = {10, 0};
    event_add(poll_ev, &every);
    event_base_loopexit(base, &limit);
    event_base_dispatch(base);
    event_free(poll_ev);
    struct stat st;
    ok(stat(path, &st) == 0 && st.st_size > 0,
       "one line reaches the file with the loop running, before close");
    is((long long)sf_accesslog_written(l), 1, "written counts it");
    sf_accesslog_close(l);
}

static void test_reopen_splits_old_and_new(void)
{
    char path[PATH_MAX], rotated[PATH_MAX];
    snprintf(path, sizeof(path), "%s/rot.log", dir);
    snprintf(rotated, sizeof(rotated), "%s/rot.log.1", dir);
    sf_accesslog *l = open_log(path);
    if (!ok(l != NULL, "open a file log"))
        return;
    sf_access_entry e = entry("/before");
    for (int i = 0; i < 10; i++)
        sf_accesslog_write(l, &e);
    ok(rename(path, rotated) == 0, "rename the log as logrotate does");
    sf_accesslog_reopen(l);
    e = entry("/after");
    for (int i = 0; i < 7; i++)
        sf_accesslog_write(l, &e);
    sf_accesslog_close(l);
    size_t n1, n2;
    char *old = slurp(rotated, &n1), *cur = slurp(path, &n2);
    is((long long)count_nl(old, n1), 10, "the renamed file has the 10 lines logged before");
    ok(strstr(old, "/after") == NULL, "and none of the later ones");
    is((long long)count_nl(cur, n2), 7, "the new file has the 7 lines logged after");
    ok(strstr(cur, "/before") == NULL, "and none of the earlier ones");
    free(old);
    free(cur);

    char err[256] = "";
    sf_accesslog *s = sf_accesslog_open(base, "stderr", err, sizeof(err));
    ok(s != NULL, "open the stderr log");
    sf_accesslog_reopen(s); /* a no-op for stderr */
    sf_accesslog_close(s);
    sf_accesslog_reopen(NULL);
    ok(sf_accesslog_dropped(NULL) == 0 && sf_accesslog_written(NULL) == 0, "NULL is off");
}

typedef struct {
    int fd;
    size_t lines, bytes;
} drain_arg;

static void *drain_main(void *arg)
{
    drain_arg *d = arg;
    char buf[65536];
    ssize_t n;
    while ((n = read(d->fd, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR))
        if (n > 0) {
            d->lines += count_nl(buf, (size_t)n);
            d->bytes += (size_t)n;
        }
    return NULL;
}

#define STUCK_LINES 30000

/* A log writing into a pipe that nobody reads yet; *rd is the pipe's read end. NULL (with the
 * failure reported) when it cannot be set up. */
static sf_accesslog *open_pipe_log(int *rd)
{
    int p[2];
    if (!ok(pipe(p) == 0, "make a pipe"))
        return NULL;
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", p[1]);
    sf_accesslog *l = open_log(path);
    close(p[1]);
    if (!ok(l != NULL, "open the pipe as the log")) {
        close(p[0]);
        return NULL;
    }
    *rd = p[0];
    return l;
}

/* A pipe nobody reads: the writer blocks after 64 KiB, the caller never does. */
static void test_stuck_pipe_drops_lines(void)
{
    int rd;
    sf_accesslog *l = open_pipe_log(&rd);
    if (l == NULL)
        return;
    char longpath[512];
    memset(longpath, 'a', sizeof(longpath) - 1);
    longpath[0] = '/';
    longpath[sizeof(longpath) - 1] = '\0';
    sf_access_entry e = entry(longpath);
    capture_stderr();
    for (int i = 0; i < STUCK_LINES; i++)
        sf_accesslog_write(l, &e);
    uint64_t dropped = sf_accesslog_dropped(l);
    ok(dropped > 0 && dropped < STUCK_LINES,
       "writing 16 MB to a stuck pipe returns and drops what exceeds the queue (%llu dropped)",
       (unsigned long long)dropped);
    drain_arg d = {rd, 0, 0};
    pthread_t t;
    pthread_create(&t, NULL, drain_main, &d);
    sf_accesslog_close(l);
    pthread_join(t, NULL);
    close(rd);
    char *err = release_stderr();
    unsigned long long reported = 0, n;
    for (const char *w = err; (w = strstr(w, "access log: ")) != NULL; w++)
        if (sscanf(w, "access log: %llu line(s) dropped", &n) == 1)
            reported += n;
    is((long long)reported, (long long)dropped,
       "the error log reports every dropped line (the first at once, the rest at close)");
    free(err);
    is((long long)(d.lines + dropped), STUCK_LINES,
       "once the pipe drains, every line was either written or counted as dropped");
    /* the queue's 64 buffers of 64 KiB, plus the pipe's 64 KiB, the one being written and the
     * current one */
    ok(d.bytes >= 60 * 65536 && d.bytes <= 68 * 65536,
       "the queue kept about 4 MiB of lines, no more (%zu bytes)", d.bytes);
}

static void test_close_gives_up_on_a_dead_reader(void)
{
    int rd;
    sf_accesslog *l = open_pipe_log(&rd);
    if (l == NULL)
        return;
    sf_access_entry e = entry("/x");
    for (int i = 0; i < 5000; i++)
        sf_accesslog_write(l, &e);
    capture_stderr();
    double t0 = now_s();
    sf_accesslog_close(l);
    double took = now_s() - t0;
    char *err = release_stderr();
    ok(strstr(err, "giving up on") != NULL, "close says it gave up on the queued lines");
    free(err);
    ok(took < 20, "close returns although the pipe is never read (%.1f s)", took);
    /* the writer's end was closed: the reader sees the 64 KiB the pipe held, then EOF */
    fcntl(rd, F_SETFL, O_NONBLOCK);
    char buf[65536];
    ssize_t n;
    size_t total = 0;
    while ((n = read(rd, buf, sizeof(buf))) > 0)
        total += (size_t)n;
    ok(n == 0, "the pipe reaches EOF after %zu bytes: the log's descriptor is closed", total);
    close(rd);
}

int main(void)
{
    alarm(60); /* a blocked write path must fail the test, not hang it */
    snprintf(dir, sizeof(dir), "/tmp/sf-accesslog-XXXXXX");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    base = event_base_new();
    test_line_cap_keeps_json_valid();
    test_fields_round_trip();
    test_quiet_buffer_is_flushed();
    test_reopen_splits_old_and_new();
    test_stuck_pipe_drops_lines();
    test_close_gives_up_on_a_dead_reader();
    event_base_free(base);
    const char *names[] = {"cap.log", "fields.log", "quiet.log",
                           "rot.log", "rot.log.1",  "stderr.txt"};
    char path[PATH_MAX];
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
    return done_testing();
}
