/* YAML document helpers for the loaders (libyaml's document API; marks are 0-based). */
#include "yconf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sf_ydoc_load(sf_ydoc *y, const char *path, sf_diags *d)
{
    yaml_parser_t parser;
    FILE *f = NULL;
    int rc = -1;

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
    if (!yaml_parser_load(&parser, &y->doc)) {
        yaml_mark_t m = parser.problem_mark;
        sf_diags_add(d, 0, path, (int)m.line + 1, (int)m.column + 1, "YAML syntax: %s%s%s",
                     parser.problem ? parser.problem : "error", parser.context ? " " : "",
                     parser.context ? parser.context : "");
        goto out;
    }
    y->loaded = 1;
    if (yaml_document_get_root_node(&y->doc) == NULL) {
        sf_diags_add(d, 0, path, 1, 1, "the file is empty");
        goto out;
    }
    rc = 0;
out:
    yaml_parser_delete(&parser);
    fclose(f);
    return rc;
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

static void vadd(sf_ydoc *y, int warning, const yaml_node_t *n, const char *fmt, va_list ap)
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
