/* Response body framing: Content-Length counted down, chunked decoded in place, or everything
 * until the connection closes. */
#include "body.h"

void sf_body_reader_init(sf_body_reader *r, int mode, int64_t content_length)
{
    r->mode = mode;
    r->left = content_length;
    if (mode == SF_HTTP_BODY_CHUNKED)
        sf_chunked_init(&r->ch);
}

int sf_body_read(sf_body_reader *r, struct evbuffer *in,
                 void (*take)(void *arg, struct evbuffer *in, size_t n), void *arg)
{
    switch (r->mode) {
    case SF_HTTP_BODY_NONE:
        return 1;
    case SF_HTTP_BODY_LENGTH: {
        size_t avail = evbuffer_get_length(in);
        size_t n = (uint64_t)r->left < avail ? (size_t)r->left : avail;
        if (n > 0) {
            take(arg, in, n);
            r->left -= (int64_t)n;
        }
        return r->left == 0;
    }
    case SF_HTTP_BODY_CHUNKED: {
        struct evbuffer_iovec v;
        while (evbuffer_peek(in, -1, NULL, &v, 1) > 0 && v.iov_len > 0) {
            size_t dlen;
            ssize_t f = sf_chunked_parse(&r->ch, v.iov_base, v.iov_len, &dlen);
            if (f < 0)
                return -1;
            evbuffer_drain(in, (size_t)f);
            if (dlen > 0) {
                take(arg, in, dlen);
                sf_chunked_data(&r->ch, dlen);
            }
            if (sf_chunked_done(&r->ch))
                return 1;
            if (f == 0 && dlen == 0)
                break;
        }
        return 0;
    }
    case SF_HTTP_BODY_CLOSE: {
        size_t n = evbuffer_get_length(in);
        if (n > 0)
            take(arg, in, n);
        return 0;
    }
    }
    return -1;
}
