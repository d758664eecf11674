/* knobs.h — the per-request fault knobs both stand-in servers obey, read from the query string
 * or from X-Stub-* request headers. */
#ifndef SF_KNOBS_H
#define SF_KNOBS_H

#include <stddef.h>

struct evkeyvalq;

/* Upper bound of delay_ms: ten minutes. */
#define SF_KNOBS_MAX_MS 600000L
/* Upper bound of slow_ms: nine gaps of 10 s stay under the servers' 120 s I/O timeout, which
 * would otherwise cut a slow reply short. */
#define SF_KNOBS_MAX_SLOW_MS 10000L

enum sf_knobs_reset {
    SF_KNOBS_RESET_NONE,
    SF_KNOBS_RESET_BEFORE, /* read the request, then RST without answering */
    SF_KNOBS_RESET_MID,    /* send the head (full Content-Length) and half the body, then RST */
};

struct sf_knobs {
    long delay_ms;             /* wait before answering; 0 = none */
    int status;                /* status code that replaces the handler's; 0 = keep it */
    enum sf_knobs_reset reset; /* abort the connection with an RST */
    long slow_ms;              /* body in SF_KNOBS_SLOW_PIECES pieces, this far apart; -1 = off */
    int chunked;               /* Transfer-Encoding: chunked instead of Content-Length */
};

#define SF_KNOBS_SLOW_PIECES 10

/* The knobs of a request that sets none. */
void sf_knobs_init(struct sf_knobs *k);

/* Reads the knobs from query (the URL's query string without '?', may be NULL) and headers (the
 * request's, may be NULL); a query parameter wins over the header of the same knob. Returns 0, or
 * -1 with a message in err (k then holds no knobs) when a value is malformed or out of range. */
int sf_knobs_parse(struct sf_knobs *k, const char *query, const struct evkeyvalq *headers,
                   char *err, size_t errlen);

/* The knobs' part of --help: names, headers, values and how they combine. */
extern const char sf_knobs_help[];

#endif
