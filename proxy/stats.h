/* Per-route traffic statistics (DESIGN §7, issue 5): counters, latency histograms and a
 * per-second ring, recorded on the hot path of one worker thread and merged by readers. */
#ifndef SF_STATS_H
#define SF_STATS_H

#include <stdint.h>

/* A shard: every counter of every route slot. One shard belongs to one thread: record, slot and
 * shadow calls on it must come from that thread only, and so must any read of it, except
 * sf_stats_merge of a shared shard (sf_stats_share), which another thread may call at any time
 * to copy it into its own. */
typedef struct sf_stats sf_stats;

typedef enum {
    SF_STATS_LEGACY = 0,
    SF_STATS_FUNCTION = 1,
} sf_stats_backend;
#define SF_STATS_BACKENDS 2

/* Why the proxy got no usable response from an upstream. */
typedef enum {
    SF_STATS_UPSTREAM_NONE = 0,
    SF_STATS_UPSTREAM_CONNECT,
    SF_STATS_UPSTREAM_TIMEOUT,
    SF_STATS_UPSTREAM_RESET,
    SF_STATS_UPSTREAM_PROTOCOL,
} sf_stats_upstream_error;
#define SF_STATS_UPSTREAM_KINDS 5

/* A shadow comparison's outcome (DESIGN §5 step 6). */
typedef enum {
    SF_STATS_SHADOW_MATCH = 0,
    SF_STATS_SHADOW_MISMATCH,
    SF_STATS_SHADOW_NOISE,
    SF_STATS_SHADOW_SKIPPED,
    SF_STATS_SHADOW_ERROR,
} sf_stats_shadow_result;
#define SF_STATS_SHADOW_RESULTS 5

/* Why a shadow was skipped or failed: the detail under the results skipped and error. */
typedef enum {
    SF_STATS_SKIP_SAMPLED = 0, /* outside shadow.percent */
    SF_STATS_SKIP_METHOD,      /* a method the route does not shadow */
    SF_STATS_SKIP_BODY,        /* body_too_large: over shadow.max_body_bytes */
    SF_STATS_SKIP_CAPACITY,    /* over the global or the route's in-flight cap */
    SF_STATS_SKIP_PRIMARY,     /* legacy's answer failed: nothing to compare with */
    SF_STATS_ERR_TIMEOUT,
    SF_STATS_ERR_CONNECT,
    SF_STATS_ERR_RESET,
    SF_STATS_ERR_PROTOCOL,
    SF_STATS_ERR_5XX,
} sf_stats_shadow_reason;
#define SF_STATS_SHADOW_REASONS  10
#define SF_STATS_SHADOW_SKIP_MAX SF_STATS_SKIP_PRIMARY /* reasons up to this one are skips */

/* Seconds kept by the per-second ring: the longest window a rate can be asked for. */
#define SF_STATS_RING_SECONDS 300

/* Prometheus histogram buckets: the bounds sf_stats_le_seconds[0..SF_STATS_LE_N-1], the last
 * being +Inf (INFINITY). */
#define SF_STATS_LE_N 15
extern const double sf_stats_le_seconds[SF_STATS_LE_N];

/* One finished request, as the proxy saw it. */
typedef struct {
    uint64_t duration_us;   /* from the request's first byte to the response's last, microseconds */
    uint64_t bytes_in;      /* read from the client */
    uint64_t bytes_out;     /* written to the client */
    uint64_t now_sec;       /* monotonic clock, whole seconds: places the request in the ring */
    uint16_t status;        /* sent to the client; 0 when no response was sent */
    uint8_t backend;        /* sf_stats_backend that served the response */
    uint8_t upstream_error; /* sf_stats_upstream_error of that backend, NONE when it answered */
    uint8_t fallback; /* 1: served by legacy after the function failed (DESIGN §5 step 5); the
                         caller counts the function's failed attempt as a function request of
                         its own, so legacy_share counts such a request once */
} sf_stats_sample;

/* Returns an empty shard, or NULL when out of memory. */
sf_stats *sf_stats_create(void);
void sf_stats_destroy(sf_stats *s); /* accepts NULL */

/* Makes s mergeable from another thread: from now on every change to s (record, slot, shadow,
 * window latency) and every merge of it takes a mutex, uncontended but for the merges. Returns
 * 0, or -1 when the mutex cannot be made. */
int sf_stats_share(sf_stats *s);

/* The slot of the route called name ("_default" for unmatched traffic), created empty on first
 * use: a small index >= 0, the same for the same name for the shard's whole life, so a route
 * keeps its numbers across reloads. Copies name. Returns -1 when out of memory. Not for the hot
 * path: callers look a route's slot up once per route table and keep it. */
int sf_stats_slot(sf_stats *s, const char *name);

/* The slot of name if it exists, else -1; never creates one. */
int sf_stats_find(const sf_stats *s, const char *name);

/* Number of slots: they are 0..count-1. */
int sf_stats_count(const sf_stats *s);

/* Name of slot, borrowed from s (valid until it is destroyed); NULL for an unknown slot. */
const char *sf_stats_name(const sf_stats *s, int slot);

/* Counts one finished request in slot: O(1), no allocation, no lock. An unknown slot or backend
 * is ignored. Errors are 5xx responses and upstream failures (DESIGN §7), each request counted
 * once. A now_sec earlier than the slot's latest one still counts in the ring when that second
 * is still kept. Durations beyond 2^27 us (134 s) count in the histograms as 134 s. */
void sf_stats_record(sf_stats *s, int slot, const sf_stats_sample *x);

/* Counts one shadow comparison outcome in slot at now_sec; an unknown slot or result is
 * ignored. */
void sf_stats_record_shadow(sf_stats *s, int slot, sf_stats_shadow_result r, uint64_t now_sec);

/* Counts a skipped or failed shadow by its reason: the result (skipped or error) and the
 * reason's own counter. */
void sf_stats_record_shadow_reason(sf_stats *s, int slot, sf_stats_shadow_reason why,
                                   uint64_t now_sec);

/* Adds every counter of src into dst, slots matched by name (created in dst as needed); dst's
 * ring moves forward to src's latest second when that is later. Returns 0, or -1 when out of
 * memory (dst then holds part of src). */
int sf_stats_merge(sf_stats *dst, sf_stats *src);

/* The q-quantile (0..1, nearest rank) of the durations of slot's backend in microseconds, within
 * 1% of the exact value (up to 134 s); NAN when there is no request. */
double sf_stats_quantile_us(const sf_stats *s, int slot, int backend, double q);

/* Requests of all slots in the window_sec seconds up to now_sec (now_sec - window_sec, now_sec],
 * served by legacy, divided by all of them (a fallback, counted under both backends, once): 0..1,
 * or NAN when there was no request in the window.
 * window_sec is capped at SF_STATS_RING_SECONDS. */
double sf_stats_legacy_share(const sf_stats *s, uint64_t now_sec, unsigned window_sec);

/* Requests per second of slot's backend (slot -1: all slots) for the n seconds up to now_sec,
 * oldest first: out[n - 1] is second now_sec. Seconds older than the ring read as 0. */
void sf_stats_series(const sf_stats *s, int slot, int backend, uint64_t now_sec, unsigned n,
                     uint32_t *out);

/* Sums of a slot's seconds in a window. A fallback is in both backends' requests (see
 * sf_stats_sample); compared counts match, mismatch and noise. */
typedef struct {
    uint64_t requests[SF_STATS_BACKENDS];
    uint64_t errors[SF_STATS_BACKENDS];
    uint64_t fallbacks;
    uint64_t compared, mismatched;
} sf_stats_window;

/* The sums of slot's seconds (now_sec - window_sec, now_sec] (window capped at the ring). */
void sf_stats_window_sum(const sf_stats *s, int slot, uint64_t now_sec, unsigned window_sec,
                         sf_stats_window *out);

/* Keeps per-second latency buckets for slot from now on, so that sf_stats_window_quantile_ms
 * can answer (about 96 KiB per slot: only for routes whose guard checks p99). Returns 0, or -1
 * when out of memory or for an unknown slot. */
int sf_stats_window_latency(sf_stats *s, int slot);

/* The q-quantile of slot's backend durations in the window, in ms: the upper bound of a coarse
 * bucket (powers of 1.5 from 16 us, so within +50%/-0% of the true value: compare such values
 * with each other, not with exact ones). *count: the requests it covers. NAN when none, or when
 * the slot does not keep them. */
double sf_stats_window_quantile_ms(const sf_stats *s, int slot, int backend, uint64_t now_sec,
                                   unsigned window_sec, double q, uint64_t *count);

/* What a reader shows for one backend of one slot. Counters are totals since the slot was
 * created; windows are the seconds (now_sec - N, now_sec]. */
typedef struct {
    uint64_t requests;
    uint64_t classes[6];                               /* [0] no response, [1..5] 1xx..5xx */
    uint64_t errors;                                   /* 5xx or upstream error */
    uint64_t upstream_errors[SF_STATS_UPSTREAM_KINDS]; /* by kind; [NONE] is 0 */
    uint64_t bytes_in, bytes_out;
    double p50_ms, p90_ms, p99_ms; /* NAN when requests == 0 */
    uint64_t requests_60s, errors_60s, requests_300s, errors_300s;
    double rate_60s, rate_300s; /* requests per second over the window */
    uint64_t
        le_cumulative[SF_STATS_LE_N]; /* requests <= sf_stats_le_seconds[i]; last == requests */
    double sum_seconds;               /* of all durations */
} sf_stats_backend_snapshot;

typedef struct {
    const char *name; /* borrowed from the shard */
    uint64_t fallbacks;
    uint64_t shadow[SF_STATS_SHADOW_RESULTS]; /* by sf_stats_shadow_result */
    uint64_t shadow_reason[SF_STATS_SHADOW_REASONS];
    uint64_t compared_60s, mismatch_60s; /* match + mismatch + noise, and mismatches */
    sf_stats_backend_snapshot backend[SF_STATS_BACKENDS];
} sf_stats_snapshot;

/* Fills out with slot's numbers as of now_sec (the caller's monotonic clock). Returns 0, or -1
 * for an unknown slot. */
int sf_stats_snapshot_slot(const sf_stats *s, int slot, uint64_t now_sec, sf_stats_snapshot *out);

/* Names for labels and JSON keys: "legacy"/"function", "connect"/"timeout"/"reset"/"protocol"
 * ("none" for NONE), "match"/"mismatch"/"noise"/"skipped"/"error"; "?" when out of range. */
const char *sf_stats_backend_name(int backend);
const char *sf_stats_upstream_error_name(int kind);
const char *sf_stats_shadow_result_name(int result);
/* "sampled_out", "method", "body_too_large", "over_capacity", "primary_failed", "timeout",
 * "connect", "reset", "protocol", "5xx". */
const char *sf_stats_shadow_reason_name(int reason);

#endif
