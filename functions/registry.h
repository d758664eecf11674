/* registry.h — the table of functions function-host serves: one entry per function, each one
 * implemented in its own functions/<name>.c. Adding a function = one file + one table row. */
#ifndef SF_REGISTRY_H
#define SF_REGISTRY_H

#include <stdio.h>

struct sf_stub_req;

/* A function's entry point: r is the request, rest its path below the function's prefix ("" or
 * "/…"). It answers r with one sf_stub_reply_*() call, as every stub handler does. */
typedef void (*sf_registry_handler)(struct sf_stub_req *r, const char *rest);

/* Serves r with the first function whose prefix contains its path (on segment boundaries) and
 * returns 0; returns -1, leaving r unanswered, when no function does. */
int sf_registry_dispatch(struct sf_stub_req *r);

/* Lists the functions (name, prefix, what they serve) for --help. */
void sf_registry_print(FILE *out);

#endif
