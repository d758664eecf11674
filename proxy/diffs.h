/* Where shadow mismatches are kept (DESIGN §6 GET /routes/NAME/diffs, §2 `strangler diffs`):
 * per route, a bounded ring of the latest mismatches and counts of the paths that differed. */
#ifndef SF_DIFFS_H
#define SF_DIFFS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Mismatches kept per route; older ones are dropped. */
#define SF_DIFFS_RING 100
/* Differing paths kept per mismatch, at most SF_DIFFS_ITEMS_MAX of them and SF_DIFFS_ITEM_BYTES of
 * their texts (the first one always); the rest are only counted (the record's "more"). With the
 * ring, this bounds a route's store to about SF_DIFFS_RING * 9 KiB. */
#define SF_DIFFS_ITEMS_MAX  32
#define SF_DIFFS_ITEM_BYTES 8192
/* Distinct paths counted per route for top_paths; any other path counts under "(other)". */
#define SF_DIFFS_PATHS_MAX 256
/* Routes with a store of their own; mismatches of further routes are dropped (and counted in
 * sf_diffs_dropped): route names come from the operator's file, so this is only a backstop
 * against a long run of renames. */
#define SF_DIFFS_ROUTES_MAX 4096
/* top_paths in the JSON. */
#define SF_DIFFS_TOP 20
/* Bytes kept of each string, at a UTF-8 character boundary, "…" appended when cut. */
#define SF_DIFFS_VALUE_MAX   256 /* a legacy or function value */
#define SF_DIFFS_DPATH_MAX   256 /* a differing path */
#define SF_DIFFS_REQPATH_MAX 512 /* the client's request path */
#define SF_DIFFS_METHOD_MAX  32
#define SF_DIFFS_ID_MAX      64 /* request id */

/* The text a header diff of a secret-bearing header (Authorization, Proxy-Authorization, Cookie,
 * Set-Cookie) is stored with, in place of both values. */
#define SF_DIFFS_REDACTED "(redacted)"

typedef struct sf_diffs sf_diffs;

/* One differing path, as the comparison engine reports it: a JSON Pointer into the body
 * ("/items/0/price"), "status", "body" (bytes mode), or "header:NAME" (NAME lowercase). legacy and
 * function are the two values as text; NULL means absent on that side (kept as JSON null). */
typedef struct {
    const char *path, *legacy, *function;
} sf_diff_item;

/* An empty store. Returns NULL when out of memory. */
sf_diffs *sf_diffs_create(void);

/* Frees the store and everything in it; accepts NULL. */
void sf_diffs_destroy(sf_diffs *d);

/* Records one mismatch of route (the route's name; copied). Every string is borrowed and copied,
 * truncated to its SF_DIFFS_*_MAX and with invalid UTF-8 bytes replaced by '?', so that any
 * input renders as JSON; NULL strings are stored as "". items[0..nitems) are the differing paths
 * in the engine's order: the first ones are kept (see SF_DIFFS_ITEMS_MAX), the others added to
 * more (the number of paths the engine found but did not list). Values of secret-bearing headers
 * are never stored: their items keep the path with SF_DIFFS_REDACTED as both values. Every listed
 * path is counted for top_paths. ts_ms is wall-clock milliseconds since the epoch (0: now). Out of
 * memory drops the record but still counts it in the route's total. Never fails otherwise. */
void sf_diffs_record(sf_diffs *d, const char *route, const char *request_id, int64_t ts_ms,
                     const char *method, const char *path, int legacy_status, int function_status,
                     const sf_diff_item *items, size_t nitems, size_t more);

/* route's mismatches as GET /routes/NAME/diffs serves them, a new object (caller decrefs; NULL
 * when out of memory):
 *   {"route": NAME, "total": mismatches recorded since start, "kept": records in the ring,
 *    "top_paths": [{"path", "count"}] (count desc, then path; at most SF_DIFFS_TOP),
 *    "noise_paths": noise[0..nnoise) (borrowed; NULL with 0 for none),
 *    "diffs": [newest first, at most limit (0: all kept):
 *      {"request_id", "ts" ("2026-11-24T08:30:00.123Z"), "method", "path",
 *       "status": {"legacy": 200, "function": 200},
 *       "differences": [{"path", "legacy", "function"}], "more": n}]}
 * A route with no mismatches (or a NULL store) gives total 0 and empty arrays. Any thread: the
 * store has a lock (the workers record, the admin thread reads). */
json_t *sf_diffs_json(sf_diffs *d, const char *route, size_t limit, const char *const *noise,
                      size_t nnoise);

/* Mismatches dropped since start because SF_DIFFS_ROUTES_MAX routes already had a store. */
uint64_t sf_diffs_dropped(sf_diffs *d);

/* The store of the running proxy s, one for all its workers (NULL: none, served as empty).
 * Defined by server.c. */
struct sf_server;
sf_diffs *sf_server_diffs(struct sf_server *s);

#endif
