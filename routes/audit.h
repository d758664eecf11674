/* The audit log of cutover changes (DESIGN §2 `strangler history`, §6 GET /history): JSON
 * lines, one per change, appended by the CLI, the admin API and (issue 6) the guard. */
#ifndef SF_AUDIT_H
#define SF_AUDIT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct {
    int64_t ts_ms;     /* milliseconds since the epoch, UTC; 0 = now */
    const char *route; /* required */
    uint32_t from_bp;  /* the cutover before and after, in basis points */
    uint32_t to_bp;
    const char *action;  /* "cutover" | "rollback" | "guard"; required */
    const char *reason;  /* NULL: written as null */
    const char *actor;   /* the user who ran the command, or "admin-api"; NULL: "unknown" */
    const char *version; /* the routes file's version after the change; NULL: null */
} sf_audit_entry;

/* Appends e to the log at path as one line
 * {"ts":"2026-11-24T08:30:00.123Z","route":..,"from":25,"to":12.5,"action":..,"reason":..,
 *  "actor":..,"version":..} (from/to in percent), creating the file (0644) when missing. The
 * line goes in a single write() on an O_APPEND descriptor, so concurrent writers never
 * interleave. Returns 0, or -1 with a message in err. */
int sf_audit_append(const char *path, const sf_audit_entry *e, char *err, size_t errlen);

/* The entries of the log at path in file order, as a new JSON array of objects (caller
 * json_decref's): only route's when route is not NULL, and only the last limit of those when
 * limit > 0. A missing file is an empty log. A line that is not a JSON object with a string
 * "route" is skipped, not fatal, and counted in *malformed (over the whole file; malformed may
 * be NULL); blank lines are not counted. Returns NULL with a message in err when the file exists
 * but cannot be read. */
json_t *sf_audit_read(const char *path, const char *route, size_t limit, size_t *malformed,
                      char *err, size_t errlen);

/* ts_ms (0 = now) as the log writes it: "2026-11-24T08:30:00.123Z". */
void sf_audit_format_time(int64_t ts_ms, char out[32]);

/* Prints entries (as sf_audit_read returns) as an aligned table for a terminal:
 *   TIME (UTC)           ROUTE   CUTOVER     ACTION    ACTOR  REASON
 *   2026-11-24 08:30:00  orders  10% -> 25%  cutover   alice  canary is clean
 * Missing fields print "-"; control characters in texts print as spaces. An empty array
 * prints "no cutover changes recorded". */
void sf_audit_print_table(const json_t *entries, FILE *out);

#endif
