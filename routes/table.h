/* The route table: routes.yaml loaded, validated and frozen (DESIGN §4). Immutable once built;
 * holders take a reference, and a reload swaps in a new table (STYLE: nginx cycles). The
 * structures are public for the matcher and the proxy to read; nothing may write them. */
#ifndef SF_TABLE_H
#define SF_TABLE_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stddef.h>
#include <stdint.h>

#include "diag.h"
#include "slice.h"

#define SF_CUTOVER_MAX  10000 /* basis points: cutover 100% */
#define SF_MAX_CAPTURES 99    /* capture groups per pattern; match data holds them all */

typedef struct {
    char *url;  /* as written (after ${env:} expansion) */
    int tls;    /* https */
    char *host; /* without brackets */
    uint16_t port;
    char *authority; /* host[:port] as it goes in Host and SNI */
    char *path;      /* path prefix without a trailing slash, "" when none */
} sf_upstream_url;

/* A header a function gets on every request (functions.NAME.headers). */
typedef struct {
    char *name; /* validated token, as written */
    char *value;
    size_t name_len, value_len;
} sf_header_conf;

typedef struct {
    char *name;
    sf_upstream_url url;
    uint64_t timeout_ms; /* response timeout; 0 = timeouts.upstream_response */
    sf_header_conf *headers;
    size_t nheaders;
    char *tls_ca;   /* resolved path of a CA bundle, NULL = the system's store */
    int tls_verify; /* 1 unless tls.verify: false */
    int line, col;  /* where it is defined */
} sf_function;

enum { SF_STICKY_NONE, SF_STICKY_HEADER, SF_STICKY_COOKIE, SF_STICKY_CLIENT_IP };
enum { SF_BODY_AUTO, SF_BODY_BYTES, SF_BODY_JSON, SF_BODY_NONE };

/* match.headers: the named header must be present and its value match re. */
typedef struct {
    char *name;
    size_t name_len;
    char *pattern;
    pcre2_code *re;
} sf_header_match;

typedef struct {
    int enabled;         /* a shadow: block is present */
    uint32_t percent_bp; /* 0..10000 */
    char **methods;      /* default GET, HEAD */
    size_t nmethods;
    int compare_status;     /* default true */
    char **compare_headers; /* lowercase */
    size_t ncompare_headers;
    int body_mode; /* SF_BODY_* (default auto) */
    char **ignore; /* JSON Pointers, '*' for one level */
    size_t nignore;
    int learn_noise;
    uint32_t max_inflight; /* this route's shadows in flight at most (the global cap also holds) */
} sf_shadow_conf;

/* Headers a shadow may compare (each answer keeps at most 32 header lines for it). */
#define SF_SHADOW_HEADERS_MAX 8

/* A route's shadow.max_inflight when not given. */
#define SF_SHADOW_ROUTE_INFLIGHT 64

typedef struct {
    int enabled;
    uint64_t window_ms;                                        /* default 60s */
    uint64_t min_requests;                                     /* default 100 */
    double max_error_ratio, max_mismatch_ratio, max_p99_ratio; /* < 0: not checked */
    int dry_run;
} sf_guard_conf;

typedef struct {
    char *name;
    size_t name_len;
    size_t index; /* position in the table */
    int line, col;
    /* match: exactly one of path and regex */
    char *path; /* prefix on segment boundaries, NULL when regex is used */
    size_t path_len;
    char *regex_src;
    pcre2_code *regex;
    char **methods; /* uppercase tokens; NULL = every method */
    size_t nmethods;
    sf_header_match *headers;
    size_t nheaders;
    /* decision */
    const sf_function *function; /* borrowed from the table */
    size_t function_index;
    uint32_t cutover_bp; /* 0..SF_CUTOVER_MAX */
    int sticky;          /* SF_STICKY_* */
    char *sticky_name;   /* header or cookie name, NULL otherwise */
    size_t sticky_len;
    int fallback;
    /* rewrite for the function: pcre2_substitute(rewrite_re, path, rewrite_to) */
    pcre2_code *rewrite_re;
    char *rewrite_src, *rewrite_to;
    sf_shadow_conf shadow;
    sf_guard_conf guard;
} sf_route;

typedef struct sf_route_table sf_route_table;
typedef struct sf_match_index sf_match_index; /* match.h */

/* Loads and validates path: every error and warning is recorded in d with FILE:LINE:COL, not
 * only the first. ${env:NAME} is expanded from the environment; relative paths (tls.ca) are
 * relative to the file's folder. Returns a table with one reference, or NULL when d has
 * errors. */
sf_route_table *sf_table_load(const char *path, sf_diags *d);

/* The same with flags. SF_TABLE_ENV_PLACEHOLDERS: an unset ${env:NAME} becomes the text
 * "env-NAME" with a warning, for tools that edit or show the file outside the proxy's
 * environment (strangler cutover, rollback, routes without a running proxy). */
#define SF_TABLE_ENV_PLACEHOLDERS 1u
sf_route_table *sf_table_load_ex(const char *path, sf_diags *d, unsigned flags);

sf_route_table *sf_table_ref(sf_route_table *t);
void sf_table_unref(sf_route_table *t);

/* The monolith's URL. Borrowed from t. */
const sf_upstream_url *sf_table_legacy(const sf_route_table *t);

/* Functions and routes in file order. Borrowed from t. */
const sf_function *sf_table_functions(const sf_route_table *t, size_t *n);
const sf_route *sf_table_routes(const sf_route_table *t, size_t *n);

/* The routes indexed for matching (match.h). Borrowed from t. */
const sf_match_index *sf_table_match_index(const sf_route_table *t);

/* The route's sticky setting as written in routes.yaml ("header:x-user-id", "none"): in buf,
 * or a constant. */
const char *sf_route_sticky_text(const sf_route *r, char *buf, size_t len);

/* A route by name, or NULL. */
const sf_route *sf_table_route(const sf_route_table *t, const char *name);

/* A short hex digest of the file's bytes: the table's version. Borrowed from t. */
const char *sf_table_version(const sf_route_table *t);

/* The file it was loaded from. Borrowed from t. */
const char *sf_table_path(const sf_route_table *t);

/* Parses an http:// or https:// URL with a host, optional port and optional path. Returns 0,
 * or -1 with a reason in err. */
int sf_upstream_url_parse(const char *s, sf_upstream_url *u, char *err, size_t errlen);
void sf_upstream_url_dispose(sf_upstream_url *u);

#endif
