/* YAML document helpers for the loaders (libyaml's document API; marks are 0-based). */
#include "yconf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Loads the document from an initialised parser; the parser is deleted either way. */
static int load(sf_ydoc *y, yaml_parser_t *parser, const char *path, sf_diags *d)
{
    int rc = -1;
    if (!yaml_parser_load(parser, &y->doc)) {
        yaml_mark_t m = parser->problem_mark;
        sf_diags_add(d, 0, path, (int)m.line + 1, (int)m.column + 1, "YAML syntax: %s%s%s",
                     parser->problem ? parser->problem : "error", parser->context ? " " : "",
                     parser->context ? parser->context : "");
        goto out;
    }
    y->loaded = 1;
    if (yaml_document_get_root_node(&y->doc) == NULL) {
        sf_diags_add(d, 0, path, 1, 1, "the file is empty");
        goto out;
    }
    rc = 0;
out:
    yaml_parser_delete(parser);
    return rc;
}

int sf_ydoc_load(sf_ydoc *y, const char *path, sf_diags *d)
{
    yaml_parser_t parser;
    FILE *f = NULL;

    memset(y, 0, sizeof(*y));
    y->file = path;
    y->diags = d;
    f = fopen(path, "rb");
    if (f == NULL) {
        sf_diags_add(d, 0, path, 0, 0, "cannot open: %s", strerror(errno));
        return -1;
    }
    if (!yaml_parser_initialize(&parser)) {
        sf_diags_add(d, 0, path, 0, 0, "out of memory");
        fclose(f);
        return -1;
    }
    yaml_parser_set_input_file(&parser, f);
    int rc = load(y, &parser, path, d);
    fclose(f);
    return rc;
}

int sf_ydoc_load_buffer(sf_ydoc *y, const char *file, const unsigned char *buf, size_t len,
                        sf_diags *d)
{
    yaml_parser_t parser;

    memset(y, 0, sizeof(*y));
    y->file = file;
    y->diags = d;
    y->src = buf;
    y->srclen = len;
    if (!yaml_parser_initialize(&parser)) {
        sf_diags_add(d, 0, file, 0, 0, "out of memory");
        return -1;
    }
    yaml_parser_set_input_string(&parser, buf, len);
    return load(y, &parser, file, d);
}

void sf_ydoc_dispose(sf_ydoc *y)
{
    if (y != NULL && y->loaded) {
        yaml_document_delete(&y->doc);
        y->loaded = 0;
    }
}

yaml_node_t *sf_ydoc_root(sf_ydoc *y)
{
    return yaml_document_get_root_node(&y->doc);
}

yaml_node_t *sf_ydoc_node(sf_ydoc *y, int index)
{
    return yaml_document_get_node(&y->doc, index);
}

/* format(printf, 4, 0): the callers' own format attributes check the arguments; this lets
 * clang's -Wformat-nonliteral see that fmt is one. */
__attribute__((format(printf, 4, 0))) static void
vadd(sf_ydoc *y, int warning, const yaml_node_t *n, const char *fmt, va_list ap)
{
    char msg[900];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    sf_diags_add(y->diags, warning, y->file, n ? (int)n->start_mark.line + 1 : 0,
                 n ? (int)n->start_mark.column + 1 : 0, "%s", msg);
}

void sf_ydoc_error(sf_ydoc *y, const yaml_node_t *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vadd(y, 0, n, fmt, ap);
    va_end(ap);
}

void sf_ydoc_warning(sf_ydoc *y, const yaml_node_t *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vadd(y, 1, n, fmt, ap);
    va_end(ap);
}

/* Characters (not UTF-8 continuation bytes) in p[0..len): libyaml's columns count characters. */
static size_t chars(const unsigned char *p, size_t len)
{
    size_t c = 0;
    for (size_t i = 0; i < len; i++)
        c += (p[i] & 0xC0) != 0x80;
    return c;
}

/* Byte position in y->src of line/column (0-based, as libyaml counts them), or -1. */
static long src_pos(const sf_ydoc *y, size_t line, size_t col)
{
    const unsigned char *s = y->src;
    size_t i = 0, n = y->srclen;
    if (s == NULL)
        return -1;
    if (n >= 3 && s[0] == 0xEF && s[1] == 0xBB && s[2] == 0xBF)
        i = 3;
    for (size_t l = 0; l < line; l++) {
        while (i < n && s[i] != '\n' && s[i] != '\r')
            i++;
        if (i == n)
            return -1;
        i += (s[i] == '\r' && i + 1 < n && s[i + 1] == '\n') ? 2 : 1;
    }
    for (size_t c = 0; c < col; c++) {
        if (i >= n || s[i] == '\n' || s[i] == '\r')
            return -1;
        i++;
        while (i < n && (s[i] & 0xC0) == 0x80)
            i++;
    }
    return (long)i;
}

/* The 1-based column of byte off of scalar n's value, or 0 when the source does not map
 * one-to-one onto the value up to there. */
static int offset_column(const sf_ydoc *y, const yaml_node_t *n, size_t off)
{
    if (n->type != YAML_SCALAR_NODE || n->start_mark.line != n->end_mark.line ||
        off > n->data.scalar.length)
        return 0;
    const unsigned char *v = n->data.scalar.value;
    size_t base = n->start_mark.column + 1;
    switch (n->data.scalar.style) {
    case YAML_PLAIN_SCALAR_STYLE:
        return (int)(base + chars(v, off));
    case YAML_SINGLE_QUOTED_SCALAR_STYLE:
        /* the only escape is '' for a quote */
        if (memchr(v, '\'', off) != NULL)
            return 0;
        return (int)(base + 1 + chars(v, off));
    case YAML_DOUBLE_QUOTED_SCALAR_STYLE: {
        long p = src_pos(y, n->start_mark.line, n->start_mark.column);
        if (p < 0 || (size_t)p + 1 + off > y->srclen || y->src[p] != '"')
            return 0;
        const unsigned char *s = y->src + p + 1;
        if (memchr(s, '\\', off) != NULL || memcmp(s, v, off) != 0)
            return 0;
        return (int)(base + 1 + chars(v, off));
    }
    default:
        return 0;
    }
}

void sf_ydoc_error_at(sf_ydoc *y, const yaml_node_t *n, size_t off, const char *fmt, ...)
{
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    int col = offset_column(y, n, off);
    if (col == 0)
        col = (int)n->start_mark.column + 1;
    sf_diags_add(y->diags, 0, y->file, (int)n->start_mark.line + 1, col, "%s", msg);
}

typedef struct {
    long line, col;
    size_t seq;
    char *text;
} located;

static int cmp_located(const void *a, const void *b)
{
    const located *x = a, *z = b;
    if (x->line != z->line)
        return x->line < z->line ? -1 : 1;
    if (x->col != z->col)
        return x->col < z->col ? -1 : 1;
    return x->seq < z->seq ? -1 : x->seq > z->seq;
}

void sf_ydoc_sort_diags(sf_ydoc *y, size_t first)
{
    sf_diags *d = y->diags;
    size_t flen = strlen(y->file);
    if (first >= d->n || d->n - first < 2)
        return;
    located *v = calloc(d->n - first, sizeof(*v));
    if (v == NULL)
        return; /* left in the order found */
    for (size_t i = first; i < d->n; i++) {
        located *e = &v[i - first];
        const char *s = d->lines[i];
        e->seq = i;
        e->text = d->lines[i];
        /* "FILE:LINE:COL: ..." as sf_diags_add writes it; "FILE: ..." sorts first */
        if (strncmp(s, y->file, flen) == 0 && s[flen] == ':') {
            char *end;
            e->line = strtol(s + flen + 1, &end, 10);
            if (*end == ':')
                e->col = strtol(end + 1, NULL, 10);
            else
                e->line = 0;
        }
    }
    qsort(v, d->n - first, sizeof(*v), cmp_located);
    for (size_t i = first; i < d->n; i++)
        d->lines[i] = v[i - first].text;
    free(v);
}

static const char *kind_name(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_SCALAR_NODE:
        return "a scalar";
    case YAML_SEQUENCE_NODE:
        return "a list";
    case YAML_MAPPING_NODE:
        return "a mapping";
    default:
        return "nothing";
    }
}

const char *sf_ynode_scalar(sf_ydoc *y, const yaml_node_t *n, const char *what)
{
    if (n->type != YAML_SCALAR_NODE) {
        sf_ydoc_error(y, n, "%s must be a single value, not %s", what, kind_name(n));
        return NULL;
    }
    return (const char *)n->data.scalar.value;
}

int sf_ynode_is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    const char *v = (const char *)n->data.scalar.value;
    return v[0] == '\0' || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
           strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0;
}

int sf_ynode_check_map(sf_ydoc *y, const yaml_node_t *n, const char *what, const char *const *known)
{
    if (n->type != YAML_MAPPING_NODE) {
        sf_ydoc_error(y, n, "%s must be a mapping, not %s", what, kind_name(n));
        return -1;
    }
    yaml_node_t *k, *v;
    SF_YMAP_EACH(y, n, k, v)
    {
        (void)v;
        if (k->type != YAML_SCALAR_NODE) {
            sf_ydoc_error(y, k, "keys in %s must be plain names", what);
            continue;
        }
        const char *key = (const char *)k->data.scalar.value;
        size_t i;
        for (i = 0; known[i] != NULL; i++)
            if (strcmp(key, known[i]) == 0)
                break;
        if (known[i] != NULL)
            continue;
        char list[512];
        size_t off = 0;
        list[0] = '\0';
        for (i = 0; known[i] != NULL && off < sizeof(list); i++)
            off +=
                (size_t)snprintf(list + off, sizeof(list) - off, "%s%s", i ? ", " : "", known[i]);
        sf_ydoc_error(y, k, "unknown key '%s' in %s (known keys: %s)", key, what, list);
    }
    return 0;
}

int sf_ynode_skip_key(sf_ydoc *y, const yaml_node_t *map, const yaml_node_t *key, const char *what)
{
    if (key->type != YAML_SCALAR_NODE)
        return 1; /* sf_ynode_check_map reported it */
    const char *name = (const char *)key->data.scalar.value;
    yaml_node_t *k, *v;
    SF_YMAP_EACH(y, map, k, v)
    {
        (void)v;
        if (k == key)
            return 0;
        if (k->type == YAML_SCALAR_NODE && strcmp((const char *)k->data.scalar.value, name) == 0) {
            sf_ydoc_error(y, key, "%s is given twice in %s (first at line %d)", name, what,
                          (int)k->start_mark.line + 1);
            return 1;
        }
    }
    return 0;
}

void sf_ynode_fields(sf_ydoc *y, const yaml_node_t *n, const char *what, const char *const *known,
                     yaml_node_t **keys, yaml_node_t **vals)
{
    size_t count = 0;
    while (known[count] != NULL)
        count++;
    for (size_t i = 0; i < count; i++) {
        vals[i] = NULL;
        if (keys != NULL)
            keys[i] = NULL;
    }
    if (n->type != YAML_MAPPING_NODE)
        return;
    yaml_node_t *k, *v, **firsts = calloc(count ? count : 1, sizeof(*firsts));
    if (firsts == NULL)
        return;
    SF_YMAP_EACH(y, n, k, v)
    {
        if (k->type != YAML_SCALAR_NODE)
            continue;
        for (size_t i = 0; i < count; i++) {
            if (strcmp((const char *)k->data.scalar.value, known[i]) != 0)
                continue;
            if (firsts[i] != NULL) {
                sf_ydoc_error(y, k, "%s is given twice in %s (first at line %d)", known[i], what,
                              (int)firsts[i]->start_mark.line + 1);
            } else {
                firsts[i] = k;
                vals[i] = v;
                if (keys != NULL)
                    keys[i] = k;
            }
            break;
        }
    }
    free(firsts);
}

int sf_yget_string(sf_ydoc *y, const yaml_node_t *n, const char *what, char **out)
{
    const char *s = sf_ynode_scalar(y, n, what);
    if (s == NULL)
        return -1;
    if (s[0] == '\0') {
        sf_ydoc_error(y, n, "%s must not be empty", what);
        return -1;
    }
    char *dup = strdup(s);
    if (dup == NULL)
        return -1;
    free(*out);
    *out = dup;
    return 0;
}

int sf_yget_uint(sf_ydoc *y, const yaml_node_t *n, const char *what, uint64_t min, uint64_t max,
                 uint64_t *out)
{
    const char *s = sf_ynode_scalar(y, n, what);
    if (s == NULL)
        return -1;
    uint64_t v = 0;
    const char *p = s;
    if (*p == '\0')
        goto bad;
    for (; *p; p++) {
        if (*p < '0' || *p > '9' || v > (UINT64_MAX - 9) / 10)
            goto bad;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (v < min || v > max) {
        sf_ydoc_error(y, n, "%s must be between %llu and %llu, not %s", what,
                      (unsigned long long)min, (unsigned long long)max, s);
        return -1;
    }
    *out = v;
    return 0;
bad:
    sf_ydoc_error(y, n, "%s must be a whole number, not '%s'", what, s);
    return -1;
}

int sf_yget_bool(sf_ydoc *y, const yaml_node_t *n, const char *what, int *out)
{
    const char *s = sf_ynode_scalar(y, n, what);
    if (s == NULL)
        return -1;
    if (strcmp(s, "true") == 0 || strcmp(s, "yes") == 0 || strcmp(s, "on") == 0) {
        *out = 1;
        return 0;
    }
    if (strcmp(s, "false") == 0 || strcmp(s, "no") == 0 || strcmp(s, "off") == 0) {
        *out = 0;
        return 0;
    }
    sf_ydoc_error(y, n, "%s must be true or false, not '%s'", what, s);
    return -1;
}

int sf_yget_duration_ms(sf_ydoc *y, const yaml_node_t *n, const char *what, uint64_t *out)
{
    const char *s = sf_ynode_scalar(y, n, what);
    if (s == NULL)
        return -1;
    uint64_t v = 0;
    const char *p = s;
    while (*p >= '0' && *p <= '9' && v < 100000000)
        v = v * 10 + (uint64_t)(*p++ - '0');
    if (p == s)
        goto bad;
    if (strcmp(p, "ms") == 0)
        *out = v;
    else if (strcmp(p, "s") == 0)
        *out = v * 1000;
    else if (strcmp(p, "m") == 0)
        *out = v * 60000;
    else
        goto bad;
    if (*out > 86400000ULL) {
        sf_ydoc_error(y, n, "%s is too long (at most 24h)", what);
        return -1;
    }
    return 0;
bad:
    sf_ydoc_error(y, n, "%s must be a duration with a unit (e.g. 250ms, 10s, 2m), not '%s'", what,
                  s);
    return -1;
}

/* Strict decimal syntax: -?[0-9]+(.[0-9]+)? */
static int is_decimal(const char *s)
{
    const char *p = s;
    if (*p == '-')
        p++;
    if (*p < '0' || *p > '9')
        return 0;
    while (*p >= '0' && *p <= '9')
        p++;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return 0;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    return *p == '\0';
}

int sf_yget_decimal(sf_ydoc *y, const yaml_node_t *n, const char *what, double min, double max,
                    double *out)
{
    const char *s = sf_ynode_scalar(y, n, what);
    if (s == NULL)
        return -1;
    if (!is_decimal(s) || strlen(s) > 40) {
        sf_ydoc_error(y, n, "%s must be a number (e.g. 0.05), not '%s'", what, s);
        return -1;
    }
    double v = strtod(s, NULL);
    if (v < min || v > max) {
        sf_ydoc_error(y, n, "%s must be between %g and %g, not %s", what, min, max, s);
        return -1;
    }
    *out = v;
    return 0;
}

int sf_yget_percent_bp(sf_ydoc *y, const yaml_node_t *n, const char *what, uint32_t *out)
{
    const char *s = sf_ynode_scalar(y, n, what);
    if (s == NULL)
        return -1;
    size_t len = strlen(s);
    if (len > 1 && len < 40 && s[len - 1] == '%') {
        char num[40];
        memcpy(num, s, len - 1);
        num[len - 1] = '\0';
        if (is_decimal(num)) {
            sf_ydoc_error(y, n, "%s is a number of percent without the sign: write %s, not %s",
                          what, num, s);
            return -1;
        }
    }
    if (!is_decimal(s) || len > 40) {
        sf_ydoc_error(y, n,
                      "%s must be a number from 0 to 100 (decimals allowed, e.g. 25 or 0.5), "
                      "not '%s'",
                      what, s);
        return -1;
    }
    const char *p = s;
    int neg = *p == '-';
    uint64_t whole = 0, frac = 0;
    if (neg)
        p++;
    for (; *p >= '0' && *p <= '9'; p++)
        if (whole <= 1000)
            whole = whole * 10 + (uint64_t)(*p - '0');
    if (*p == '.') {
        p++;
        for (int i = 0; i < 2; i++) {
            frac *= 10;
            if (*p >= '0' && *p <= '9')
                frac += (uint64_t)(*p++ - '0');
        }
        for (; *p; p++) {
            if (*p != '0') {
                sf_ydoc_error(y, n,
                              "%s has more than two decimal places, not %s (the resolution is "
                              "0.01%%)",
                              what, s);
                return -1;
            }
        }
    }
    uint64_t bp = whole * 100 + frac;
    if ((neg && bp > 0) || bp > 10000) {
        sf_ydoc_error(y, n, "%s must be between 0 and 100, not %s", what, s);
        return -1;
    }
    *out = (uint32_t)bp;
    return 0;
}
