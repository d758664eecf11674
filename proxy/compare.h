/* The shadow comparison engine (DESIGN §4 shadow.compare, §5 step 6): legacy's answer against
 * the function's, and the noise a route learns from legacy answering the same request twice.
 * Pure: no I/O, no clock, no globals; it allocates only for parsed bodies and the outcome's
 * strings (a match of equal bytes, or of small JSON bodies that differ only in how they are
 * written, allocates nothing). Not thread-safe per sf_noise: the caller serializes. */
#ifndef SF_COMPARE_H
#define SF_COMPARE_H

#include <stddef.h>
#include <stdint.h>

#include "http_parse.h"
#include "table.h"

#define SF_CMP_MAX_DIFFS   32  /* differences listed per outcome; the rest are counted in more */
#define SF_CMP_VALUE_MAX   200 /* bytes of a rendered value before it is cut with "…" */
#define SF_CMP_PATH_MAX    240 /* bytes of a rendered path before it is cut with "…" */
#define SF_CMP_MAX_DEPTH   64  /* JSON nesting walked node by node; deeper compared whole */
#define SF_CMP_ARRAY_SHIFT 4   /* element differences listed under an array whose length differs */

/* One side of a comparison: what a backend answered. Everything is borrowed for the call. */
typedef struct {
    int status;                    /* 0: no response */
    const sf_http_header *headers; /* names in any case */
    size_t nheaders;
    const char *body; /* the bytes kept, at most compare_body_bytes; NULL when body_len is 0 */
    size_t body_len;
    uint64_t body_total;         /* the whole body's length (taken as body_len when smaller) */
    int body_truncated;          /* body_total > body_len: only the digest covers it all */
    const unsigned char *sha256; /* 32 bytes, digest of the whole body; may be NULL when the body
                                  * is whole (then the bytes themselves are compared) */
} sf_cmp_side;

/* A difference: where, and the two values as text. path is "status", "header:NAME" (NAME as
 * configured, lowercase), "body" (the bodies compared as bytes: bytes mode, or JSON that could
 * not be parsed) or a JSON Pointer (RFC 6901) into the body, "" being the whole document.
 * Values: status as a number ("(none)" for status 0), a header's occurrences joined with ", "
 * as a JSON string, a JSON node as compact JSON, a byte body as a JSON string of its bytes near
 * the first difference followed by its length ("\"<html>…\" (5120 bytes)"). Cut to
 * SF_CMP_VALUE_MAX (path: SF_CMP_PATH_MAX) bytes at a UTF-8 character boundary with "…" (three
 * bytes) appended. legacy or function is NULL where that side has no such member or header. The
 * strings are malloc'd; sf_cmp_outcome_dispose frees them. */
typedef struct {
    char *path;
    char *legacy;
    char *function;
} sf_cmp_diff;

typedef enum { SF_CMP_MATCH, SF_CMP_MISMATCH, SF_CMP_NOISE } sf_cmp_result;

/* Why a comparison was not as exact as its mode asks: flags in sf_cmp_outcome.notes. */
enum {
    SF_CMP_NOTE_TRUNCATED = 1u << 0,         /* a body over compare_body_bytes: JSON compared by
                                              * its digest as bytes */
    SF_CMP_NOTE_NO_DIGEST = 1u << 1,         /* truncated without a digest: only the kept bytes
                                              * and the lengths were compared */
    SF_CMP_NOTE_LEGACY_NOT_JSON = 1u << 2,   /* legacy's body is not valid JSON */
    SF_CMP_NOTE_FUNCTION_NOT_JSON = 1u << 3, /* the function's body is not valid JSON */
    SF_CMP_NOTE_JSON_UNSUPPORTED = 1u << 4,  /* valid JSON the parser cannot hold (a number out of
                                              * range, nesting over 2048, a NUL in a key):
                                              * compared as bytes */
    SF_CMP_NOTE_DEEP = 1u << 5,              /* nesting over SF_CMP_MAX_DEPTH: such subtrees
                                              * compared whole, a difference named at their root */
};

typedef struct {
    sf_cmp_result result;
    /* MISMATCH: the differences that are not noise; NOISE: the noise ones; MATCH: none. At
     * most SF_CMP_MAX_DIFFS, in document order (status, headers, then the body). NULL when 0. */
    sf_cmp_diff *diffs;
    size_t ndiffs;
    size_t more;      /* differences of the listed kind beyond the ones listed */
    size_t nmismatch; /* differences found that are not noise (listed or not) */
    size_t nnoise;    /* differences found on learned noise paths */
    int body_as;    /* how the bodies were compared: SF_BODY_NONE, SF_BODY_BYTES or SF_BODY_JSON */
    unsigned notes; /* SF_CMP_NOTE_* */
} sf_cmp_outcome;

typedef struct sf_noise sf_noise;

/* Compares legacy with function under conf (a route's shadow block; NULL: the defaults, status
 * compared, no headers, body auto, nothing ignored). noise (may be NULL) is the route's learned
 * noise: a difference at or under one of its paths is noise. Rules: status when compare_status;
 * each listed header by value (names case-insensitive, occurrences joined with ", ", absent
 * differs from present); the body by conf->body_mode:
 *   none  not compared;
 *   bytes equal length and digest (or equal bytes when both are whole);
 *   json  object key order ignored, numbers by value (1 equals 1.0 and 1e0; integers exact, an
 *         integer past 64 bits read as a real), strings by value (escapes decoded), arrays by
 *         position; a member on one side only differs at its path; an array of another length
 *         is one difference at its path ("(length N)" on each side) plus at most
 *         SF_CMP_ARRAY_SHIFT element differences under it; a body that is not valid JSON is a
 *         difference at "body" unless the bytes are equal; a truncated body is compared by
 *         digest (noted);
 *   auto  json when both Content-Types are JSON (application/json or a +json type such as
 *         application/problem+json, parameters aside), else bytes; json that does not parse
 *         falls back to bytes (noted).
 * Paths under conf->ignore (JSON Pointers, "*" matching any one key or index, "" the whole body)
 * never differ. Each difference is named at the deepest node that differs.
 * Cost: identical bodies are never parsed (tens of ns). JSON bodies that differ only in
 * serialization (key order, spacing, 1.0 for 1, escapes) are found equal by a quick strict
 * check with no per-node allocation that parses the second straight against the first (about
 * 1 ns per byte of the two bodies on the bench machine). Otherwise each body is parsed once by
 * jansson, which alone names differences: the bulk of the cost of a mismatch or noise (about
 * 20 us per KB of each body there, so tens of ms for bodies of a MiB).
 * Fills out (the caller disposes it, whatever the return). Returns 0, or -1 when out of memory
 * or given NULL sides (out then holds MATCH and no diffs). */
int sf_compare(const sf_shadow_conf *conf, const sf_noise *noise, const sf_cmp_side *legacy,
               const sf_cmp_side *function, sf_cmp_outcome *out);

/* Flags of sf_compare_ex. SF_CMP_F_JANSSON_ONLY: skip the quick equality check, so that JSON
 * bodies that differ in bytes always go through jansson (tests, and differential fuzzing: the
 * outcome must be the same either way). */
#define SF_CMP_F_JANSSON_ONLY 1u

/* sf_compare with flags. */
int sf_compare_ex(const sf_shadow_conf *conf, const sf_noise *noise, const sf_cmp_side *legacy,
                  const sf_cmp_side *function, unsigned flags, sf_cmp_outcome *out);

/* sf_compare_ex on two bodies alone, for fuzzing and tests: both sides status 200 with
 * Content-Type application/json, whole (not truncated), no digest. */
int sf_compare_bodies(const sf_shadow_conf *conf, const sf_noise *noise, const char *legacy,
                      size_t legacy_len, const char *function, size_t function_len, unsigned flags,
                      sf_cmp_outcome *out);

/* The quick equality check alone, on two bodies under conf's ignore list (NULL: none): 1 when
 * they are surely equal JSON (then the jansson path finds no difference either), 0 when they
 * differ or it cannot tell. For tests and differential fuzzing. */
int sf_cmp_json_equal(const sf_shadow_conf *conf, const char *a, size_t alen, const char *b,
                      size_t blen);

/* Frees the outcome's diffs and zeroes it; accepts NULL and a zeroed outcome. */
void sf_cmp_outcome_dispose(sf_cmp_outcome *o);

/* Learned noise. Each JSON path (an array index learned as "*", so that /items/7/etag and
 * /items/0/etag are one path) that differs between two answers legacy gave to the same request
 * raises its score by SF_NOISE_RAISE, up to SF_NOISE_SCORE_MAX; each learning round where the path
 * is present in both answers and equal lowers it by one. A path is noise while its score is above
 * 0, so one difference makes it noise at once and a field that became stable stops being noise
 * after SF_NOISE_SCORE_MAX quiet rounds. At most SF_NOISE_MAX_PATHS paths are kept; a new one
 * displaces the weakest when that is weaker than a new path, else it is dropped. */
#define SF_NOISE_MAX_PATHS  256
#define SF_NOISE_RAISE      16
#define SF_NOISE_SCORE_MAX  48
#define SF_NOISE_LEARN_WORK 200000 /* nodes visited per learning round checking for quiet paths */

/* An empty set. Returns NULL when out of memory. */
sf_noise *sf_noise_create(void);

/* Frees the set; accepts NULL. */
void sf_noise_destroy(sf_noise *n);

/* One learning round from legacy's two answers to one request (borrowed). Only bodies that are
 * whole and parse as JSON on both sides teach anything; status and headers are not learned.
 * Returns the number of differing paths seen (0 when nothing could be learned), or -1 when out
 * of memory (the set stays usable). */
int sf_noise_learn(sf_noise *n, const sf_cmp_side *first, const sf_cmp_side *second);

/* The paths currently noise: fills paths[0..max) (and scores, when not NULL) with borrowed
 * strings valid until the next sf_noise_learn or sf_noise_destroy, strongest first. Returns how
 * many paths are noise (which may exceed max). */
size_t sf_noise_paths(const sf_noise *n, const char **paths, unsigned *scores, size_t max);

/* path's score (as learned, with "*" for indices), 0 when it is not noise. */
unsigned sf_noise_score(const sf_noise *n, const char *path);

/* Learning rounds seen since creation. */
uint64_t sf_noise_rounds(const sf_noise *n);

#endif
