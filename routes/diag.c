/* Diagnostics: a growable list of located messages. */
#include "diag.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void sf_diags_init(sf_diags *d)
{
    memset(d, 0, sizeof(*d));
}

void sf_diags_dispose(sf_diags *d)
{
    if (d == NULL)
        return;
    for (size_t i = 0; i < d->n; i++)
        free(d->lines[i]);
    free(d->lines);
    memset(d, 0, sizeof(*d));
}

void sf_diags_add(sf_diags *d, int warning, const char *file, int line, int col, const char *fmt,
                  ...)
{
    char msg[1024], full[1400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (line > 0)
        snprintf(full, sizeof(full), "%s:%d:%d: %s%s", file, line, col, warning ? "warning: " : "",
                 msg);
    else
        snprintf(full, sizeof(full), "%s: %s%s", file, warning ? "warning: " : "", msg);
    if (warning)
        d->warnings++;
    else
        d->errors++;
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 8;
        char **lines = realloc(d->lines, cap * sizeof(*lines));
        if (lines == NULL)
            return; /* counted, not kept: the caller still sees errors > 0 */
        d->lines = lines;
        d->cap = cap;
    }
    d->lines[d->n] = strdup(full);
    if (d->lines[d->n] != NULL)
        d->n++;
}

void sf_diags_print(const sf_diags *d, FILE *f)
{
    for (size_t i = 0; i < d->n; i++)
        fprintf(f, "%s\n", d->lines[i]);
}

const char *sf_diags_first_error(const sf_diags *d)
{
    for (size_t i = 0; i < d->n; i++)
        if (strstr(d->lines[i], ": warning: ") == NULL)
            return d->lines[i];
    return NULL;
}
