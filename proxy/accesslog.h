/* The access log: one JSON object per request (DESIGN §7), buffered in memory and written in
 * batches so a request never waits on the log's disk. */
#ifndef SF_ACCESSLOG_H
#define SF_ACCESSLOG_H

#include <event2/event.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sf_accesslog sf_accesslog;

typedef struct {
    const char *request_id;
    const char *client;
    const char *method;
    const char *path; /* as received, may be truncated by the caller */
    const char *route;
    const char *backend;
    int status;
    double duration_ms;
    double upstream_ms; /* < 0: no upstream was reached */
    uint64_t bytes_in, bytes_out;
    const char *shadow; /* NULL: not shadowed */
    const char *error;  /* NULL, or why the exchange ended badly ("truncated", ...) */
    int fallback;       /* the function failed and legacy served the request */
} sf_access_entry;

/* Opens the log: target "stderr" or a file path (appended, created 0644). Returns NULL with a
 * reason in err. */
sf_accesslog *sf_accesslog_open(struct event_base *base, const char *target, char *err,
                                size_t errlen);
/* Flushes what is buffered and closes. Accepts NULL. */
void sf_accesslog_close(sf_accesslog *l);
/* Appends one line; accepts NULL (logging off). */
void sf_accesslog_write(sf_accesslog *l, const sf_access_entry *e);
/* Reopens the file (log rotation); no-op for stderr. */
int sf_accesslog_reopen(sf_accesslog *l);

/* Appends s as a JSON string (quoted, escaped) to buf at *off, within cap. */
void sf_json_str(char *buf, size_t cap, size_t *off, const char *s);

#endif
