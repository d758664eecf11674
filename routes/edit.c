/* Sets one route's cutover in routes.yaml by rewriting only the bytes of that value, found with
 * libyaml's event marks, then swaps the file in atomically (temp file, fsync, rename). */
#include "edit.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "diag.h"
#include "table.h"

#define FILE_MAX_BYTES (64u << 20) /* as the loader: a routes file is never larger */
#define MAX_DEPTH      256         /* nesting the walker follows; the loader needs far less */

const char *sf_format_percent(uint32_t bp, char *out, size_t len)
{
    uint32_t whole = bp / 100, frac = bp % 100;
    if (frac == 0)
        snprintf(out, len, "%u", whole);
    else if (frac % 10 == 0)
        snprintf(out, len, "%u.%u", whole, frac / 10);
    else
        snprintf(out, len, "%u.%02u", whole, frac);
    return out;
}

/* libyaml's marks count characters (a CRLF is two), not bytes, and start after a BOM: this maps
 * them to byte offsets. Queries usually go forward, so it resumes where the last one ended. */
typedef struct {
    const unsigned char *buf;
    size_t len, base;
    size_t ci, bi; /* character ci starts at byte bi */
} charmap;

static void charmap_init(charmap *m, const unsigned char *buf, size_t len)
{
    m->buf = buf;
    m->len = len;
    m->base = len >= 3 && buf[0] == 0xef && buf[1] == 0xbb && buf[2] == 0xbf ? 3 : 0;
    m->ci = 0;
    m->bi = m->base;
}

static size_t byte_at(charmap *m, size_t ci)
{
    if (ci < m->ci) {
        m->ci = 0;
        m->bi = m->base;
    }
    while (m->ci < ci && m->bi < m->len) {
        unsigned char c = m->buf[m->bi];
        m->bi += c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
        m->ci++;
    }
    return m->bi < m->len ? m->bi : m->len;
}

/* The end of the last content seen in a route's mapping: where a new key goes after. */
typedef struct {
    size_t end;    /* character index just past it */
    int keep_tail; /* a block scalar whose kept trailing blank lines are part of its value */
} tail;

static void note(tail *t, const yaml_event_t *e)
{
    if (t == NULL || e->end_mark.index <= e->start_mark.index || e->end_mark.index < t->end)
        return;
    t->end = e->end_mark.index;
    t->keep_tail = 0;
    if (e->type == YAML_SCALAR_EVENT && (e->data.scalar.style == YAML_LITERAL_SCALAR_STYLE ||
                                         e->data.scalar.style == YAML_FOLDED_SCALAR_STYLE)) {
        size_t n = e->data.scalar.length;
        const yaml_char_t *v = e->data.scalar.value;
        t->keep_tail = n >= 2 && v[n - 1] == '\n' && v[n - 2] == '\n';
    }
}

typedef struct {
    yaml_parser_t parser;
    yaml_event_t ev;
    int have; /* ev holds an event to delete */
    const char *file;
    char *err;
    size_t errlen;
} walker;

static int next(walker *w)
{
    if (w->have) {
        yaml_event_delete(&w->ev);
        w->have = 0;
    }
    if (!yaml_parser_parse(&w->parser, &w->ev)) {
        snprintf(w->err, w->errlen, "%s:%zu:%zu: %s", w->file, w->parser.problem_mark.line + 1,
                 w->parser.problem_mark.column + 1,
                 w->parser.problem ? w->parser.problem : "YAML syntax error");
        return -1;
    }
    w->have = 1;
    return 0;
}

/* Consumes the node whose first event is the current one, noting its content in t (NULL: not
 * tracked). Block collections' end marks point at the next token, so only flow ends count. */
static int skip_node(walker *w, tail *t, int depth)
{
    switch (w->ev.type) {
    case YAML_SCALAR_EVENT:
    case YAML_ALIAS_EVENT:
        note(t, &w->ev);
        return 0;
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
        int flow = w->ev.type == YAML_SEQUENCE_START_EVENT
                       ? w->ev.data.sequence_start.style == YAML_FLOW_SEQUENCE_STYLE
                       : w->ev.data.mapping_start.style == YAML_FLOW_MAPPING_STYLE;
        if (depth > MAX_DEPTH) {
            snprintf(w->err, w->errlen, "%s:%zu:%zu: nested more than %d levels deep", w->file,
                     w->ev.start_mark.line + 1, w->ev.start_mark.column + 1, MAX_DEPTH);
            return -1;
        }
        for (;;) {
            if (next(w) < 0)
                return -1;
            if (w->ev.type == YAML_SEQUENCE_END_EVENT || w->ev.type == YAML_MAPPING_END_EVENT) {
                if (flow)
                    note(t, &w->ev);
                return 0;
            }
            if (skip_node(w, t, depth + 1) < 0)
                return -1;
        }
    }
    default:
        snprintf(w->err, w->errlen, "%s:%zu:%zu: unexpected YAML event", w->file,
                 w->ev.start_mark.line + 1, w->ev.start_mark.column + 1);
        return -1;
    }
}

/* What the walk learns about one route's mapping. */
typedef struct {
    int found;
    int flow;       /* a flow mapping: { name: a, ... } */
    size_t key_col; /* column of its first key: the indentation of a block mapping's keys */
    tail last;
    int has_key;                /* a cutover: key */
    size_t vstart, vend;        /* its value's span in characters */
    int vtype;                  /* YAML_SCALAR_EVENT, YAML_ALIAS_EVENT, or a collection start */
    yaml_scalar_style_t vstyle; /* for a scalar */
    int decorated;              /* an anchor or a tag precedes the value */
    char text[32];              /* the value as the scalar reads, or "*anchor" */
    size_t line, col;           /* where the value starts, 0-based */
} route_scan;

/* A growing list of names for messages: "a, b, c". */
typedef struct {
    char *s;
    size_t len, cap;
} names;

static void names_add(names *ns, const char *name, size_t n)
{
    if (ns->len + n + 3 > ns->cap) {
        size_t cap = (ns->cap ? ns->cap * 2 : 64) + n;
        char *s = realloc(ns->s, cap);
        if (s == NULL)
            return; /* a shorter message, nothing worse */
        ns->s = s;
        ns->cap = cap;
    }
    if (ns->len > 0) {
        memcpy(ns->s + ns->len, ", ", 2);
        ns->len += 2;
    }
    memcpy(ns->s + ns->len, name, n);
    ns->len += n;
    ns->s[ns->len] = '\0';
}

static int scalar_is(const yaml_event_t *e, const char *s)
{
    size_t n = strlen(s);
    return e->type == YAML_SCALAR_EVENT && e->data.scalar.length == n &&
           memcmp(e->data.scalar.value, s, n) == 0;
}

enum { K_OTHER, K_NAME, K_CUTOVER };

/* The current event starts a route's mapping: consumes it, and fills out when its name is
 * route. */
static int scan_route(walker *w, const char *route, route_scan *out, names *ns)
{
    route_scan r;
    int first = 1, match = 0;

    memset(&r, 0, sizeof(r));
    r.flow = w->ev.data.mapping_start.style == YAML_FLOW_MAPPING_STYLE;
    for (;;) {
        if (next(w) < 0)
            return -1;
        if (w->ev.type == YAML_MAPPING_END_EVENT)
            break;
        if (first) {
            r.key_col = w->ev.start_mark.column;
            first = 0;
        }
        int kind = scalar_is(&w->ev, "name")      ? K_NAME
                   : scalar_is(&w->ev, "cutover") ? K_CUTOVER
                                                  : K_OTHER;
        if (skip_node(w, &r.last, 1) < 0 || next(w) < 0)
            return -1;
        const yaml_event_t *v = &w->ev;
        if (kind == K_NAME && v->type == YAML_SCALAR_EVENT) {
            match = strcmp((const char *)v->data.scalar.value, route) == 0;
            if (ns != NULL)
                names_add(ns, (const char *)v->data.scalar.value, v->data.scalar.length);
        } else if (kind == K_CUTOVER) {
            r.has_key = 1;
            r.vstart = v->start_mark.index;
            r.vend = v->end_mark.index;
            r.line = v->start_mark.line;
            r.col = v->start_mark.column;
            r.vtype = v->type;
            if (v->type == YAML_SCALAR_EVENT) {
                r.vstyle = v->data.scalar.style;
                r.decorated = v->data.scalar.anchor != NULL || v->data.scalar.tag != NULL;
                snprintf(r.text, sizeof(r.text), "%s", (const char *)v->data.scalar.value);
            } else if (v->type == YAML_ALIAS_EVENT) {
                snprintf(r.text, sizeof(r.text), "*%s", (const char *)v->data.alias.anchor);
            }
        }
        if (skip_node(w, &r.last, 1) < 0)
            return -1;
    }
    if (match) {
        *out = r;
        out->found = 1;
    }
    return 0;
}

/* Walks the first document of buf to the mapping under the top-level routes sequence whose
 * name is route. s->found = 0 when there is none; ns (may be NULL) collects the names seen. */
static int scan_file(const char *file, const unsigned char *buf, size_t len, const char *route,
                     route_scan *s, names *ns, char *err, size_t errlen)
{
    walker w;
    int rc = -1;

    memset(s, 0, sizeof(*s));
    memset(&w, 0, sizeof(w));
    w.file = file;
    w.err = err;
    w.errlen = errlen;
    if (!yaml_parser_initialize(&w.parser)) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    yaml_parser_set_input_string(&w.parser, buf, len);
    if (next(&w) < 0 || next(&w) < 0)
        goto out;
    if (w.ev.type != YAML_DOCUMENT_START_EVENT || next(&w) < 0)
        goto done; /* an empty stream */
    if (w.ev.type != YAML_MAPPING_START_EVENT)
        goto done;
    for (;;) {
        if (next(&w) < 0)
            goto out;
        if (w.ev.type == YAML_MAPPING_END_EVENT)
            goto done;
        int is_routes = scalar_is(&w.ev, "routes");
        if (skip_node(&w, NULL, 1) < 0 || next(&w) < 0)
            goto out;
        if (!is_routes || w.ev.type != YAML_SEQUENCE_START_EVENT) {
            if (skip_node(&w, NULL, 1) < 0)
                goto out;
            continue;
        }
        for (;;) {
            if (next(&w) < 0)
                goto out;
            if (w.ev.type == YAML_SEQUENCE_END_EVENT)
                goto done;
            if (w.ev.type == YAML_MAPPING_START_EVENT) {
                if (scan_route(&w, route, s, ns) < 0)
                    goto out;
                if (s->found)
                    goto done;
            } else if (skip_node(&w, NULL, 1) < 0) {
                goto out;
            }
        }
    }
done:
    rc = 0;
out:
    if (w.have)
        yaml_event_delete(&w.ev);
    yaml_parser_delete(&w.parser);
    return rc;
}

/* The file's line break, from its first line: "\r\n", "\r" or "\n". */
static const char *file_eol(const unsigned char *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (buf[i] == '\n')
            return "\n";
        if (buf[i] == '\r')
            return i + 1 < len && buf[i + 1] == '\n' ? "\r\n" : "\r";
    }
    return "\n";
}

/* out = buf with [at, at + cut) replaced by the parts given (NULL-terminated). */
static int stitch(const unsigned char *buf, size_t len, size_t at, size_t cut,
                  const char *const *parts, unsigned char **out, size_t *outlen)
{
    size_t add = 0;
    for (const char *const *p = parts; *p; p++)
        add += strlen(*p);
    unsigned char *o = malloc(len - cut + add + 1);
    if (o == NULL)
        return -1;
    memcpy(o, buf, at);
    size_t n = at;
    for (const char *const *p = parts; *p; p++) {
        memcpy(o + n, *p, strlen(*p));
        n += strlen(*p);
    }
    memcpy(o + n, buf + at + cut, len - at - cut);
    n += len - at - cut;
    *out = o;
    *outlen = n;
    return 0;
}

/* A new "cutover: N" line after the last line of a block mapping's content. */
static int insert_block(const unsigned char *buf, size_t len, charmap *m, const route_scan *s,
                        const char *value, unsigned char **out, size_t *outlen)
{
    char indent[MAX_DEPTH * 2 + 1];
    size_t col = s->key_col < sizeof(indent) - 1 ? s->key_col : sizeof(indent) - 1;
    memset(indent, ' ', col);
    indent[col] = '\0';
    size_t p = byte_at(m, s->last.end);

    if (s->last.keep_tail) {
        /* a |+ scalar's trailing blank lines are its value: the new line goes after them */
        while (p > 0 && (buf[p - 1] == ' ' || buf[p - 1] == '\t'))
            p--;
        if (p > 0 && (buf[p - 1] == '\n' || buf[p - 1] == '\r')) {
            const char *eol = buf[p - 1] == '\r'            ? "\r"
                              : p > 1 && buf[p - 2] == '\r' ? "\r\n"
                                                            : "\n";
            const char *parts[] = {indent, "cutover: ", value, eol, NULL};
            return stitch(buf, len, p, 0, parts, out, outlen);
        }
        p = byte_at(m, s->last.end);
    }
    /* a block scalar's end mark is past its trailing blank lines: back to its last text */
    while (p > 0 &&
           (buf[p - 1] == ' ' || buf[p - 1] == '\t' || buf[p - 1] == '\n' || buf[p - 1] == '\r'))
        p--;
    size_t q = p;
    while (q < len && buf[q] != '\n' && buf[q] != '\r')
        q++;
    if (q == len) {
        /* the last line has no line break: add one before the new line, none after */
        const char *parts[] = {file_eol(buf, len), indent, "cutover: ", value, NULL};
        return stitch(buf, len, len, 0, parts, out, outlen);
    }
    const char *eol = buf[q] == '\n' ? "\n" : q + 1 < len && buf[q + 1] == '\n' ? "\r\n" : "\r";
    const char *parts[] = {indent, "cutover: ", value, eol, NULL};
    return stitch(buf, len, q + strlen(eol), 0, parts, out, outlen);
}

int sf_routes_edit_buffer(const char *file, const unsigned char *buf, size_t len, const char *route,
                          uint32_t new_bp, unsigned char **out, size_t *outlen, sf_edit_result *res,
                          char *err, size_t errlen)
{
    route_scan s;
    names ns = {NULL, 0, 0};
    charmap m;
    char value[16], quoted[20];
    int rc = SF_EDIT_EFAIL;

    *out = NULL;
    *outlen = 0;
    if (new_bp > SF_CUTOVER_MAX) {
        snprintf(err, errlen, "cutover must be between 0 and 100, not %u basis points", new_bp);
        return SF_EDIT_EFAIL;
    }
    if (len >= 2 && ((buf[0] == 0xff && buf[1] == 0xfe) || (buf[0] == 0xfe && buf[1] == 0xff))) {
        snprintf(err, errlen, "%s is UTF-16: only UTF-8 files can be edited", file);
        return SF_EDIT_EFAIL;
    }
    sf_format_percent(new_bp, value, sizeof(value));
    if (scan_file(file, buf, len, route, &s, &ns, err, errlen) < 0)
        goto out;
    if (!s.found) {
        snprintf(err, errlen, "no route '%s' in %s (%s%s)", route, file,
                 ns.len ? "routes: " : "no routes", ns.len ? ns.s : "");
        rc = SF_EDIT_ENOROUTE;
        goto out;
    }
    charmap_init(&m, buf, len);
    if (s.has_key) {
        const char *where = "";
        if (s.vtype != YAML_SCALAR_EVENT && s.vtype != YAML_ALIAS_EVENT)
            where = "is not a single value";
        else if (s.decorated)
            where = "has an anchor or a tag";
        else if (s.vstyle == YAML_LITERAL_SCALAR_STYLE || s.vstyle == YAML_FOLDED_SCALAR_STYLE)
            where = "is a block scalar (| or >)";
        if (*where) {
            snprintf(err, errlen, "%s:%zu:%zu: the cutover of route '%s' %s; edit it by hand", file,
                     s.line + 1, s.col + 1, route, where);
            goto out;
        }
        /* a quoted value stays quoted: only the number changes */
        const char *v = value;
        if (s.vtype == YAML_SCALAR_EVENT && (s.vstyle == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
                                             s.vstyle == YAML_DOUBLE_QUOTED_SCALAR_STYLE)) {
            char q = s.vstyle == YAML_SINGLE_QUOTED_SCALAR_STYLE ? '\'' : '"';
            snprintf(quoted, sizeof(quoted), "%c%s%c", q, value, q);
            v = quoted;
        }
        size_t a = byte_at(&m, s.vstart), b = byte_at(&m, s.vend);
        /* an empty value ("cutover:") sits right after the colon: keep a space */
        const char *parts[] = {a == b ? " " : "", v, NULL};
        if (stitch(buf, len, a, b - a, parts, out, outlen) < 0)
            goto nomem;
    } else if (s.flow) {
        /* after the last entry; after a last key's colon when its value is empty ("x: }") */
        size_t p = byte_at(&m, s.last.end), q = p;
        while (q < len && (buf[q] == ' ' || buf[q] == '\t'))
            q++;
        if (q < len && buf[q] == ':') {
            for (p = q + 1; p < len && (buf[p] == ' ' || buf[p] == '\t');)
                p++;
        }
        const char *parts[] = {", cutover: ", value, NULL};
        if (stitch(buf, len, p, 0, parts, out, outlen) < 0)
            goto nomem;
    } else if (insert_block(buf, len, &m, &s, value, out, outlen) < 0) {
        goto nomem;
    }
    if (res != NULL) {
        res->had_key = s.has_key;
        snprintf(res->old_text, sizeof(res->old_text), "%s", s.has_key ? s.text : "");
    }

    /* The edit must read back as the route's cutover, on that route. */
    route_scan check;
    char why[256] = "";
    if (scan_file(file, *out, *outlen, route, &check, NULL, why, sizeof(why)) < 0 || !check.found ||
        !check.has_key || check.vtype != YAML_SCALAR_EVENT || strcmp(check.text, value) != 0) {
        snprintf(err, errlen, "setting the cutover of route '%s' in %s would not read back (%s)",
                 route, file, *why ? why : "the value is not where it was put");
        goto out;
    }
    rc = 0;
    goto out;
nomem:
    snprintf(err, errlen, "out of memory");
out:
    if (rc != 0) {
        free(*out);
        *out = NULL;
        *outlen = 0;
    }
    free(ns.s);
    return rc;
}

/* Reads a whole regular file, with its status. Returns 0, or -1 with errno set. */
static int read_all(const char *path, unsigned char **buf, size_t *len, struct stat *st)
{
    unsigned char *b = NULL;
    size_t n = 0, cap;
    int e = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    *buf = NULL;
    *len = 0;
    if (fd < 0)
        return -1;
    if (fstat(fd, st) < 0) {
        e = errno;
        goto fail;
    }
    if (!S_ISREG(st->st_mode)) {
        e = EINVAL;
        goto fail;
    }
    cap = (size_t)st->st_size + 1; /* +1: the end is seen without growing */
    if (st->st_size > (off_t)FILE_MAX_BYTES || (b = malloc(cap)) == NULL) {
        e = st->st_size > (off_t)FILE_MAX_BYTES ? EFBIG : ENOMEM;
        goto fail;
    }
    for (;;) {
        if (n == cap) {
            unsigned char *nb = cap > FILE_MAX_BYTES ? NULL : realloc(b, cap * 2);
            if (nb == NULL) {
                e = cap > FILE_MAX_BYTES ? EFBIG : ENOMEM;
                goto fail;
            }
            b = nb;
            cap *= 2;
        }
        ssize_t got = read(fd, b + n, cap - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            e = errno;
            goto fail;
        }
        if (got == 0)
            break;
        n += (size_t)got;
    }
    close(fd);
    *buf = b;
    *len = n;
    return 0;
fail:
    free(b);
    close(fd);
    errno = e;
    return -1;
}

static int write_all(int fd, const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* A diagnostic about the temp file, told as one about the file it stands for. */
static void retell(const char *line, const char *tmp, const char *path, char *out, size_t len)
{
    size_t tl = strlen(tmp);
    if (strncmp(line, tmp, tl) == 0)
        snprintf(out, len, "%s%s", path, line + tl);
    else
        snprintf(out, len, "%s", line);
}

int sf_routes_replace(const char *path, const unsigned char *expect, size_t expect_len,
                      const unsigned char *bytes, size_t len, char version[17], char *err,
                      size_t errlen)
{
    char *real = NULL, *tmp = NULL;
    unsigned char *now = NULL;
    size_t nowlen = 0;
    int fd = -1, rc = SF_EDIT_EFAIL;
    struct stat st, st2;
    sf_diags d;
    sf_route_table *t = NULL;

    sf_diags_init(&d);
    if ((real = realpath(path, NULL)) == NULL) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        goto out;
    }
    if (stat(real, &st) < 0) {
        snprintf(err, errlen, "cannot edit %s: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "cannot edit %s: not a regular file", path);
        goto out;
    }
    const char *slash = strrchr(real, '/'); /* realpath's answer is absolute */
    size_t dirlen = slash > real ? (size_t)(slash - real) : 1;
    size_t tmplen = strlen(real) + 16;
    if ((tmp = malloc(tmplen)) == NULL) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    snprintf(tmp, tmplen, "%.*s/.%s.XXXXXX", (int)(slash - real), real, slash + 1);
    if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0) {
        snprintf(err, errlen, "cannot create a temp file next to %s: %s", path, strerror(errno));
        free(tmp);
        tmp = NULL;
        goto out;
    }
    if (fchmod(fd, st.st_mode & 07777) < 0) {
        snprintf(err, errlen, "cannot set the mode of %s: %s", tmp, strerror(errno));
        goto out;
    }
    if ((st.st_uid != geteuid() || st.st_gid != getegid()) && fchown(fd, st.st_uid, st.st_gid)) {
        /* not ours to give away (not root): the file becomes ours, like any editor's save */
    }
    if (write_all(fd, bytes, len) < 0 || fsync(fd) < 0) {
        snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        goto out;
    }
    if (close(fd) < 0) {
        fd = -1;
        snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        goto out;
    }
    fd = -1;

    /* In the same folder, relative paths in it resolve as they will after the rename. */
    if ((t = sf_table_load_ex(tmp, &d, SF_TABLE_ENV_PLACEHOLDERS)) == NULL) {
        char line[1024];
        const char *first = sf_diags_first_error(&d);
        retell(first ? first : "does not load", tmp, path, line, sizeof(line));
        snprintf(err, errlen, "the edited %s would not load: %s; nothing was written", path, line);
        rc = SF_EDIT_EINVALID;
        goto out;
    }
    if (version != NULL)
        memcpy(version, sf_table_version(t), 17);

    if (read_all(real, &now, &nowlen, &st2) < 0) {
        snprintf(err, errlen, "cannot read %s again: %s", path, strerror(errno));
        goto out;
    }
    if (nowlen != expect_len || memcmp(now, expect, nowlen) != 0) {
        snprintf(err, errlen,
                 "%s changed while it was being edited; nothing was written, try again", path);
        rc = SF_EDIT_ECHANGED;
        goto out;
    }
    if (rename(tmp, real) < 0) {
        snprintf(err, errlen, "cannot replace %s: %s", path, strerror(errno));
        goto out;
    }
    free(tmp);
    tmp = NULL;
    /* the rename is durable once the folder is: a failure here leaves the edit done */
    real[dirlen] = '\0';
    int dfd = open(real, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    if (tmp != NULL)
        unlink(tmp);
    free(tmp);
    free(real);
    free(now);
    sf_table_unref(t);
    sf_diags_dispose(&d);
    return rc;
}

int sf_routes_set_cutover(const char *path, const char *route, uint32_t new_bp, sf_edit_result *res,
                          char *err, size_t errlen)
{
    sf_edit_result r;
    unsigned char *buf = NULL, *edited = NULL;
    size_t len = 0, elen = 0;
    struct stat st;
    sf_diags d;
    sf_route_table *t = NULL;
    int rc = SF_EDIT_EFAIL;

    memset(&r, 0, sizeof(r));
    sf_diags_init(&d);
    if (new_bp > SF_CUTOVER_MAX) {
        snprintf(err, errlen, "cutover must be between 0 and 100, not %u basis points", new_bp);
        goto out;
    }
    /* The bytes the edit starts from: the replace step checks the file still holds them. */
    if (read_all(path, &buf, &len, &st) < 0) {
        snprintf(err, errlen, "cannot read %s: %s", path,
                 errno == EINVAL ? "not a regular file" : strerror(errno));
        goto out;
    }
    if ((t = sf_table_load_ex(path, &d, SF_TABLE_ENV_PLACEHOLDERS)) == NULL) {
        const char *first = sf_diags_first_error(&d);
        snprintf(err, errlen, "routes.yaml does not load: %s; fix it first", first ? first : path);
        rc = SF_EDIT_EINVALID;
        goto out;
    }
    const sf_route *cur = sf_table_route(t, route);
    if (cur == NULL) {
        names ns = {NULL, 0, 0};
        size_t n;
        const sf_route *rs = sf_table_routes(t, &n);
        for (size_t i = 0; i < n; i++)
            names_add(&ns, rs[i].name, rs[i].name_len);
        snprintf(err, errlen, "no route '%s' in %s (%s%s)", route, path,
                 ns.len ? "routes: " : "no routes", ns.len ? ns.s : "");
        free(ns.s);
        rc = SF_EDIT_ENOROUTE;
        goto out;
    }
    r.old_bp = cur->cutover_bp;
    rc = sf_routes_edit_buffer(path, buf, len, route, new_bp, &edited, &elen, &r, err, errlen);
    if (rc == SF_EDIT_ENOROUTE) {
        snprintf(err, errlen,
                 "route '%s' in %s is not a mapping with a plain name (an alias?); edit its "
                 "cutover by hand",
                 route, path);
        rc = SF_EDIT_EFAIL;
    }
    if (rc != 0)
        goto out;
    if (r.old_bp == new_bp) { /* also no key and 0: the value it already has */
        memcpy(r.version, sf_table_version(t), sizeof(r.version));
        goto done;
    }
    if ((rc = sf_routes_replace(path, buf, len, edited, elen, r.version, err, errlen)) != 0)
        goto out;
    r.changed = 1;
done:
    if (res != NULL)
        *res = r;
    rc = 0;
out:
    free(buf);
    free(edited);
    sf_table_unref(t);
    sf_diags_dispose(&d);
    return rc;
}
