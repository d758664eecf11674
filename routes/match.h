/* Matching a request against the route table and deciding where it goes (DESIGN §4, §5 steps
 * 2-3). Pure functions: no allocation, no I/O; the caller owns the PCRE2 match data (one per
 * thread). */
#ifndef SF_MATCH_H
#define SF_MATCH_H

#include <stdint.h>
#include <sys/types.h>

#include "table.h"

/* What the matcher looks at. */
typedef struct {
    sf_slice method;
    sf_slice path; /* normalized (sf_path_normalize), without the query */
    const sf_kv *headers;
    size_t nheaders;
    sf_slice client_ip; /* for sticky: client_ip */
} sf_match_input;

/* Normalizes the path of an origin-form request target (the part before '?', starting with
 * '/'): percent-encoded unreserved characters (ALPHA DIGIT - . _ ~) are decoded, other escapes
 * keep their encoding with uppercase hex (%2F stays %2F), then dot-segments are resolved
 * (RFC 3986 §5.2.4, after decoding, so %2E%2E is a dot-segment; empty segments are kept).
 * Writes at most len bytes to out, which may be in (normalizing in place). Returns the
 * normalized length, or -1 when the path cannot be normalized safely: an invalid escape, %00 or
 * a NUL byte, a dot-segment that climbs above the root ("/..", "/a/../.."), or no leading '/'.
 * Linear in len; no allocation. */
ssize_t sf_path_normalize(const char *in, size_t len, char *out);

/* True when prefix (a route's match.path) covers path on segment boundaries: "/api/orders"
 * covers "/api/orders" and "/api/orders/7", not "/api/ordersX"; a prefix ending in '/' covers
 * what follows it; "/" covers everything. */
int sf_path_prefix_match(sf_slice prefix, sf_slice path);

/* Match data big enough for every pattern a table may hold. Caller frees it with
 * pcre2_match_data_free. */
pcre2_match_data *sf_match_data_create(void);

/* The first route of t (file order) that in matches, or NULL: the request goes to legacy.
 * path: prefix on segment boundaries; regex: on the normalized path; methods: exact; headers:
 * every listed header present with a value matching its pattern (any occurrence). */
const sf_route *sf_route_match(const sf_route_table *t, const sf_match_input *in,
                               pcre2_match_data *md);
/* The same over an array of n routes. */
const sf_route *sf_routes_match(const sf_route *routes, size_t n, const sf_match_input *in,
                                pcre2_match_data *md);

/* An index over an array of routes that finds what sf_routes_match finds (the first route in
 * order that matches) without trying every route: each route's required literal prefix (its
 * match.path, or the literal start of an anchored regex such as "/api/v2/items/" for
 * '^/api/v2/items/[0-9]+$') goes into a byte trie, so a request only tries the routes whose
 * literal prefix its path starts with (and the routes with none), in file order; methods are
 * checked as a bitmask. Built once per table; immutable, shared by every thread. Borrows routes,
 * which must outlive it. Returns NULL when out of memory. */
sf_match_index *sf_match_index_create(const sf_route *routes, size_t n);
void sf_match_index_destroy(sf_match_index *ix); /* accepts NULL */
const sf_route *sf_match_index_lookup(const sf_match_index *ix, const sf_match_input *in,
                                      pcre2_match_data *md);

/* The route's sticky key in the request (a header's value, a cookie's value, the client ip).
 * Returns 1 with *key set (borrowed from in), or 0 when the request carries none. */
int sf_route_sticky_key(const sf_route *r, const sf_match_input *in, sf_slice *key);

/* The bucket (0..SF_CUTOVER_MAX-1) of key for the route named name: a stable hash of both, the
 * same on every instance and every version. */
uint32_t sf_sticky_bucket(sf_slice name, sf_slice key);

/* The request's bucket (0..SF_CUTOVER_MAX-1): the sticky key's, or rnd's (per-request random)
 * without sticky or without a key. */
uint32_t sf_route_bucket(const sf_route *r, const sf_match_input *in, uint64_t rnd);

/* Decides: 1 = the function, 0 = legacy. bucket < cutover_bp goes to the function. */
int sf_route_decide(const sf_route *r, const sf_match_input *in, uint64_t rnd);

/* For a request in bucket: 1 when legacy serves it (bucket >= cutover_bp) and it falls in the
 * share shadow.percent of legacy's buckets, so that with sticky the shadowed users are a
 * stable set. 0 without a shadow block. */
int sf_route_shadowed(const sf_route *r, uint32_t bucket);

/* The target the function gets: its URL's path prefix, the path rewritten by the route's
 * rewrite (unchanged when there is none or it does not match), then "?" query when query is
 * not empty (query excludes the '?'). Writes into out (cap bytes, not NUL-terminated).
 * Returns the length, or -1 when it does not fit, the substitution fails or the rewritten path
 * does not start with '/'. The rewrite replaces the first match only; an unset group in
 * rewrite.to inserts nothing. */
ssize_t sf_route_function_target(const sf_route *r, sf_slice path, sf_slice query,
                                 pcre2_match_data *md, char *out, size_t cap);

#endif
