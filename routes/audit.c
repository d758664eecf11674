/* The audit log: one JSON object per line, appended whole in one write() so that the CLI, the
 * admin API and the guard may write at once; read back leniently, a bad line costs only itself. */
#include "audit.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "edit.h"

void sf_audit_format_time(int64_t ts_ms, char out[32])
{
    struct tm tm;
    if (ts_ms <= 0) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        ts_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    }
    time_t sec = (time_t)(ts_ms / 1000);
    gmtime_r(&sec, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03dZ", (int)(ts_ms % 1000));
}

/* A percentage as a JSON number: 25, 12.5, 0.01. */
static json_t *percent(uint32_t bp)
{
    return bp % 100 == 0 ? json_integer(bp / 100) : json_real(bp / 100.0);
}

/* A JSON string of s, NULL -> null. jansson refuses invalid UTF-8: such bytes become '?'
 * rather than losing the entry. */
static json_t *text(const char *s)
{
    if (s == NULL)
        return json_null();
    json_t *j = json_string(s);
    if (j != NULL)
        return j;
    char *copy = strdup(s);
    if (copy == NULL)
        return NULL;
    for (char *c = copy; *c; c++)
        if ((unsigned char)*c >= 0x80)
            *c = '?';
    j = json_string(copy);
    free(copy);
    return j;
}

int sf_audit_append(const char *path, const sf_audit_entry *e, char *err, size_t errlen)
{
    char ts[32];
    char *line = NULL;
    int fd = -1, rc = -1;
    json_t *o = json_object();

    if (e->route == NULL || e->action == NULL) {
        snprintf(err, errlen, "an audit entry needs a route and an action");
        goto out;
    }
    sf_audit_format_time(e->ts_ms, ts);
    /* json_object_set_new takes the value even when it fails (and fails on a NULL value) */
    if (o == NULL || json_object_set_new(o, "ts", json_string(ts)) < 0 ||
        json_object_set_new(o, "route", text(e->route)) < 0 ||
        json_object_set_new(o, "from", percent(e->from_bp)) < 0 ||
        json_object_set_new(o, "to", percent(e->to_bp)) < 0 ||
        json_object_set_new(o, "action", text(e->action)) < 0 ||
        json_object_set_new(o, "reason", text(e->reason)) < 0 ||
        json_object_set_new(o, "actor", text(e->actor ? e->actor : "unknown")) < 0 ||
        json_object_set_new(o, "version", text(e->version)) < 0 ||
        (line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10))) ==
            NULL) {
        snprintf(err, errlen, "out of memory writing an audit entry");
        goto out;
    }
    size_t n = strlen(line);
    line[n++] = '\n'; /* over the NUL: the write below takes a length */
    if ((fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644)) < 0) {
        snprintf(err, errlen, "cannot open the audit log %s: %s", path, strerror(errno));
        goto out;
    }
    ssize_t w;
    do
        w = write(fd, line, n);
    while (w < 0 && errno == EINTR);
    if (w < 0 || (size_t)w != n) {
        snprintf(err, errlen, "cannot write the audit log %s: %s", path,
                 w < 0 ? strerror(errno) : "short write (disk full?)");
        goto out;
    }
    if (close(fd) < 0) {
        fd = -1;
        snprintf(err, errlen, "cannot write the audit log %s: %s", path, strerror(errno));
        goto out;
    }
    fd = -1;
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    free(line);
    json_decref(o);
    return rc;
}

static int blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
            return 0;
    return 1;
}

json_t *sf_audit_read(const char *path, const char *route, size_t limit, size_t *malformed,
                      char *err, size_t errlen)
{
    char *line = NULL;
    size_t cap = 0, bad = 0;
    ssize_t n;
    json_t *all = json_array();
    FILE *f = NULL;

    if (malformed != NULL)
        *malformed = 0;
    if (all == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if ((f = fopen(path, "re")) == NULL) {
        if (errno == ENOENT)
            return all;
        snprintf(err, errlen, "cannot open the audit log %s: %s", path, strerror(errno));
        goto fail;
    }
    while ((n = getline(&line, &cap, f)) >= 0) {
        if (blank(line, (size_t)n))
            continue;
        json_t *o = json_loadb(line, (size_t)n, 0, NULL);
        json_t *r = json_object_get(o, "route");
        if (!json_is_object(o) || !json_is_string(r)) {
            json_decref(o);
            bad++;
            continue;
        }
        if (route != NULL && strcmp(json_string_value(r), route) != 0) {
            json_decref(o);
            continue;
        }
        if (json_array_append_new(all, o) < 0) {
            snprintf(err, errlen, "out of memory reading the audit log %s", path);
            goto fail;
        }
    }
    if (ferror(f)) {
        snprintf(err, errlen, "cannot read the audit log %s: %s", path, strerror(errno));
        goto fail;
    }
    fclose(f);
    free(line);
    if (malformed != NULL)
        *malformed = bad;
    size_t total = json_array_size(all);
    if (limit == 0 || total <= limit)
        return all;
    json_t *tail = json_array();
    for (size_t i = total - limit; tail != NULL && i < total; i++) {
        if (json_array_append(tail, json_array_get(all, i)) < 0) {
            json_decref(tail);
            tail = NULL;
        }
    }
    json_decref(all);
    if (tail == NULL)
        snprintf(err, errlen, "out of memory reading the audit log %s", path);
    return tail;
fail:
    if (f != NULL)
        fclose(f);
    free(line);
    json_decref(all);
    return NULL;
}

/* Table cells: texts for a terminal, widths in characters (UTF-8 continuation bytes do not
 * count). */
#define NCOLS 6

static size_t width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xc0) != 0x80)
            w++;
    return w;
}

/* A copy of s fit for one line of a terminal: control characters become spaces. */
static char *cell(const char *s)
{
    char *c = strdup(s != NULL && *s ? s : "-");
    if (c != NULL)
        for (char *p = c; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f)
                *p = ' ';
    return c;
}

static void percent_text(const json_t *v, char *out, size_t len)
{
    char num[16];
    if (json_is_integer(v)) {
        snprintf(out, len, "%lld%%", (long long)json_integer_value(v));
    } else if (json_is_real(v) && json_real_value(v) >= 0 && json_real_value(v) <= 100) {
        sf_format_percent((uint32_t)lround(json_real_value(v) * 100), num, sizeof(num));
        snprintf(out, len, "%s%%", num);
    } else {
        snprintf(out, len, "?");
    }
}

static const char *string_of(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key)); /* NULL when absent or not a string */
}

void sf_audit_print_table(const json_t *entries, FILE *out)
{
    static const char *const heads[NCOLS] = {"TIME (UTC)", "ROUTE", "CUTOVER",
                                             "ACTION",     "ACTOR", "REASON"};
    size_t rows = json_array_size(entries);
    size_t w[NCOLS];
    char **cells;

    if (rows == 0) {
        fputs("no cutover changes recorded\n", out);
        return;
    }
    if ((cells = calloc((rows + 1) * NCOLS, sizeof(*cells))) == NULL)
        return;
    for (int c = 0; c < NCOLS; c++)
        cells[c] = cell(heads[c]);
    for (size_t r = 0; r < rows; r++) {
        const json_t *e = json_array_get(entries, r);
        char **row = cells + (r + 1) * NCOLS;
        char ts[32], from[24], to[24], change[56];
        const char *t = string_of(e, "ts");
        if (t != NULL && strlen(t) >= 19 && t[10] == 'T') {
            snprintf(ts, sizeof(ts), "%.10s %.8s", t, t + 11);
            t = ts;
        }
        percent_text(json_object_get(e, "from"), from, sizeof(from));
        percent_text(json_object_get(e, "to"), to, sizeof(to));
        snprintf(change, sizeof(change), "%s -> %s", from, to);
        row[0] = cell(t);
        row[1] = cell(string_of(e, "route"));
        row[2] = cell(change);
        row[3] = cell(string_of(e, "action"));
        row[4] = cell(string_of(e, "actor"));
        row[5] = cell(string_of(e, "reason"));
    }
    for (int c = 0; c < NCOLS; c++) {
        w[c] = 0;
        for (size_t r = 0; r <= rows; r++)
            if (cells[r * NCOLS + c] != NULL && width(cells[r * NCOLS + c]) > w[c])
                w[c] = width(cells[r * NCOLS + c]);
    }
    for (size_t r = 0; r <= rows; r++) {
        for (int c = 0; c < NCOLS; c++) {
            const char *s = cells[r * NCOLS + c] ? cells[r * NCOLS + c] : "-";
            if (c == NCOLS - 1) {
                fprintf(out, "%s\n", s); /* the last column is not padded */
                break;
            }
            fprintf(out, "%s%*s", s, (int)(w[c] - width(s) + 2), "");
        }
    }
    for (size_t i = 0; i < (rows + 1) * NCOLS; i++)
        free(cells[i]);
    free(cells);
}
