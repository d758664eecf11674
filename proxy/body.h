/* Reading a response body off an upstream connection's buffer, whatever its framing (RFC 9112
 * §6.3): the proxy's relay and a shadow's capture take the same bytes the same way. */
#ifndef SF_BODY_H
#define SF_BODY_H

#include <event2/buffer.h>
#include <stdint.h>

#include "http_parse.h"

typedef struct {
    int mode;      /* SF_HTTP_BODY_* (sf_http_response_body) */
    int64_t left;  /* LENGTH: bytes still due */
    sf_chunked ch; /* CHUNKED: the decoder */
} sf_body_reader;

/* Starts reading a body of mode, content_length being the response's (for LENGTH). */
void sf_body_reader_init(sf_body_reader *r, int mode, int64_t content_length);

/* Takes the body bytes at the front of in: for each run of n data bytes now at the front (the
 * chunk framing removed), take(arg, in, n) must remove exactly those n bytes from in. Returns
 * 1 when the body is complete, 0 when more is due (always, for a close-delimited body), -1 on a
 * framing error. */
int sf_body_read(sf_body_reader *r, struct evbuffer *in,
                 void (*take)(void *arg, struct evbuffer *in, size_t n), void *arg);

#endif
