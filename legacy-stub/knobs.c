/* knobs.c — parsing of the fault knobs (see knobs.h). Names and ranges live here and in
 * sf_knobs_help only, so --help cannot drift from what the parser accepts. */
#include "knobs.h"
#include "query.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

const char sf_knobs_help[] =
    "Fault knobs (every endpoint; query parameter or request header, the query wins):\n"
    "  delay_ms=N      X-Stub-Delay-Ms: N    wait N ms (0..600000) before answering\n"
    "  status=N        X-Stub-Status: N      answer with status N (200..599); the body stays\n"
    "                                        what the endpoint would send (none for 204, 304)\n"
    "  reset=before    X-Stub-Reset: before  read the request, then abort the connection with\n"
    "                                        a TCP RST, sending nothing\n"
    "  reset=mid       X-Stub-Reset: mid     send the head (with the full Content-Length) and\n"
    "                                        half the body, then abort with a TCP RST\n"
    "  slow_ms=N       X-Stub-Slow-Ms: N     send the body in 10 pieces, N ms (0..10000) apart\n"
    "  chunked=1       X-Stub-Chunked: 1     Transfer-Encoding: chunked instead of\n"
    "                                        Content-Length (HTTP/1.1 requests only)\n"
    "  Knobs combine: the delay comes first, then the status, framing, pacing and reset\n"
    "  apply to the answer. A malformed knob value is answered with 400 and no knob applied.\n";

/* Looks a knob up: query parameter first, then the header. Returns 1 found, 0 absent, -1 bad. */
static int lookup(const char *query, const struct evkeyvalq *headers, const char *param,
                  const char *header, char *out, size_t outlen, char *err, size_t errlen)
{
    const char *v;
    size_t n;
    int rc = sf_query_get(query, param, out, outlen);

    if (rc < 0) {
        snprintf(err, errlen, "query parameter %s: malformed or too long value", param);
        return -1;
    }
    if (rc > 0)
        return 1;
    v = headers != NULL ? evhttp_find_header(headers, header) : NULL;
    if (v == NULL)
        return 0;
    n = strlen(v);
    if (n >= outlen) {
        snprintf(err, errlen, "header %s: value too long", header);
        return -1;
    }
    memcpy(out, v, n + 1);
    return 1;
}

static int parse_bool(const char *s, int *out)
{
    /* A bare "?chunked" switches the knob on. */
    if (!strcmp(s, "") || !strcmp(s, "1") || !strcmp(s, "true") || !strcmp(s, "yes") ||
        !strcmp(s, "on")) {
        *out = 1;
        return 0;
    }
    if (!strcmp(s, "0") || !strcmp(s, "false") || !strcmp(s, "no") || !strcmp(s, "off")) {
        *out = 0;
        return 0;
    }
    return -1;
}

/* A numeric knob: 1 and *out set when given and in lo..hi, 0 when absent, -1 with err set. */
static int range_knob(const char *query, const struct evkeyvalq *headers, const char *name,
                      const char *header, long lo, long hi, long *out, char *err, size_t errlen)
{
    char v[64];
    int rc = lookup(query, headers, name, header, v, sizeof(v), err, errlen);
    if (rc <= 0)
        return rc;
    if (sf_parse_range(v, lo, hi, out) < 0) {
        snprintf(err, errlen, "%s (%s) must be %ld..%ld, got \"%s\"", name, header, lo, hi, v);
        return -1;
    }
    return 1;
}

void sf_knobs_init(struct sf_knobs *k)
{
    k->delay_ms = 0;
    k->status = 0;
    k->reset = SF_KNOBS_RESET_NONE;
    k->slow_ms = -1;
    k->chunked = 0;
}

int sf_knobs_parse(struct sf_knobs *k, const char *query, const struct evkeyvalq *headers,
                   char *err, size_t errlen)
{
    char v[64];
    long n;
    int rc;

    sf_knobs_init(k);

    rc = range_knob(query, headers, "delay_ms", "X-Stub-Delay-Ms", 0, SF_KNOBS_MAX_MS, &n, err,
                    errlen);
    if (rc < 0)
        goto fail;
    if (rc > 0)
        k->delay_ms = n;

    /* 1xx are not final answers: evhttp would frame them as one and confuse every client. */
    rc = range_knob(query, headers, "status", "X-Stub-Status", 200, 599, &n, err, errlen);
    if (rc < 0)
        goto fail;
    if (rc > 0)
        k->status = (int)n;

    rc = lookup(query, headers, "reset", "X-Stub-Reset", v, sizeof(v), err, errlen);
    if (rc < 0)
        goto fail;
    if (rc > 0) {
        if (!strcmp(v, "before")) {
            k->reset = SF_KNOBS_RESET_BEFORE;
        } else if (!strcmp(v, "mid")) {
            k->reset = SF_KNOBS_RESET_MID;
        } else if (!strcmp(v, "none")) {
            k->reset = SF_KNOBS_RESET_NONE;
        } else {
            snprintf(err, errlen, "reset (X-Stub-Reset) must be before, mid or none, got \"%s\"",
                     v);
            goto fail;
        }
    }

    rc = range_knob(query, headers, "slow_ms", "X-Stub-Slow-Ms", 0, SF_KNOBS_MAX_SLOW_MS, &n, err,
                    errlen);
    if (rc < 0)
        goto fail;
    if (rc > 0)
        k->slow_ms = n;

    rc = lookup(query, headers, "chunked", "X-Stub-Chunked", v, sizeof(v), err, errlen);
    if (rc < 0)
        goto fail;
    if (rc > 0 && parse_bool(v, &k->chunked) < 0) {
        snprintf(err, errlen, "chunked (X-Stub-Chunked) must be 1 or 0, got \"%s\"", v);
        goto fail;
    }
    return 0;

fail:
    sf_knobs_init(k);
    return -1;
}
