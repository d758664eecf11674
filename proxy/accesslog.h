/* The access log: one JSON object per request (DESIGN §7). The event loop only formats lines
 * into memory; a writer thread does the write(2) calls, so a slow disk never stalls a request. */
#ifndef SF_ACCESSLOG_H
#define SF_ACCESSLOG_H

#include <event2/event.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>

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
    struct timeval ts;  /* when the exchange ended (wall clock); 0: when the line is written */
} sf_access_entry;

/* Opens the log: target "stderr" or a file path (appended, created 0644; a FIFO must already
 * have a reader, the open never waits for one), and starts its writer thread. base runs the
 * 200 ms flush timer. Returns NULL with a reason in err. All other calls below, except the
 * counters, must come from the thread that runs base. */
sf_accesslog *sf_accesslog_open(struct event_base *base, const char *target, char *err,
                                size_t errlen);
/* Hands what is buffered to the writer, waits up to about 2.5 s for it to reach the file, stops
 * the writer and frees. A writer stuck in write(2) longer than that is cancelled and its lines
 * are lost (with a warning), so a dead disk cannot hang the exit. Accepts NULL. */
void sf_accesslog_close(sf_accesslog *l);
/* Appends one line; never blocks. When the writer is 4 MiB behind, the line is dropped and
 * counted (see sf_accesslog_dropped), with a warning at most every 5 s. Accepts NULL (off). */
void sf_accesslog_write(sf_accesslog *l, const sf_access_entry *e);
/* Asks the writer to reopen the file (log rotation) once the lines logged so far are written:
 * they go to the old file, later ones to the new. Never blocks; an open failure is logged by the
 * writer, which keeps the old file. No-op for stderr and NULL. */
void sf_accesslog_reopen(sf_accesslog *l);

/* Lines that never reached the log: dropped because the writer was too far behind, or lost to
 * a failed write. Safe from any thread; 0 for NULL. */
uint64_t sf_accesslog_dropped(const sf_accesslog *l);
/* Lines written to the log so far. Safe from any thread; 0 for NULL. */
uint64_t sf_accesslog_written(const sf_accesslog *l);

/* Appends s as a JSON string (quoted, escaped) to buf at *off, within cap: the string is cut
 * short rather than left unclosed; nothing is written when fewer than 3 bytes are left. */
void sf_json_str(char *buf, size_t cap, size_t *off, const char *s);

#endif
