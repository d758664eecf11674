/* The route table: routes.yaml loaded, validated and frozen. Immutable once built; holders
 * take a reference, and a reload swaps in a new table (STYLE: nginx cycles). */
#ifndef SF_TABLE_H
#define SF_TABLE_H

#include <stdint.h>

#include "diag.h"

typedef struct {
    char *url;  /* as written */
    int tls;    /* https */
    char *host; /* without brackets */
    uint16_t port;
    char *authority; /* host[:port] as it goes in Host and SNI */
    char *path;      /* path prefix, "" when none */
} sf_upstream_url;

typedef struct sf_route_table sf_route_table;

/* Loads and validates path. Returns a table with one reference, or NULL with every problem
 * recorded in d. */
sf_route_table *sf_table_load(const char *path, sf_diags *d);

sf_route_table *sf_table_ref(sf_route_table *t);
void sf_table_unref(sf_route_table *t);

/* The monolith's URL. Borrowed from t. */
const sf_upstream_url *sf_table_legacy(const sf_route_table *t);

/* A short hex digest of the file's bytes: the table's version. Borrowed from t. */
const char *sf_table_version(const sf_route_table *t);

/* Parses an http:// or https:// URL with a host, optional port and optional path. Returns 0,
 * or -1 with a reason in err. */
int sf_upstream_url_parse(const char *s, sf_upstream_url *u, char *err, size_t errlen);
void sf_upstream_url_dispose(sf_upstream_url *u);

#endif
