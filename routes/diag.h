/* Diagnostics collected while loading configuration: every error and warning found, each
 * located at FILE:LINE:COL, so an operator sees all problems in one pass. */
#ifndef SF_DIAG_H
#define SF_DIAG_H

#include <stddef.h>
#include <stdio.h>

typedef struct {
    char **lines; /* "FILE:LINE:COL: message" or "FILE:LINE:COL: warning: message" */
    size_t n, cap;
    int errors;
    int warnings;
} sf_diags;

void sf_diags_init(sf_diags *d);
void sf_diags_dispose(sf_diags *d);

/* Records an error (warning = 0) or a warning at file:line:col (1-based; line 0: no
 * position, the message is prefixed with "FILE: " only). */
void sf_diags_add(sf_diags *d, int warning, const char *file, int line, int col, const char *fmt,
                  ...) __attribute__((format(printf, 6, 7)));

/* Prints every line to f, one per line. */
void sf_diags_print(const sf_diags *d, FILE *f);

/* The first error line, or NULL. Borrowed. */
const char *sf_diags_first_error(const sf_diags *d);

#endif
