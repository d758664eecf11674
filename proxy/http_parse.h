/* Strict HTTP/1.1 message-head parser and chunked-body decoder (RFC 9112).
 * Pure functions: a buffer in, "consumed / need more / error" out; no allocation, no I/O. */
#ifndef SF_HTTP_PARSE_H
#define SF_HTTP_PARSE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "slice.h"

/* name and value (leading and trailing OWS removed) */
typedef sf_kv sf_http_header;

/* Results. SF_HTTP_INCOMPLETE: the head is not complete yet, feed more bytes. Every other
 * negative value is an error; sf_http_error_status() gives the status to answer with. */
enum {
    SF_HTTP_INCOMPLETE = -1,
    SF_HTTP_E_SYNTAX = -2,          /* malformed line, bare CR/LF, control byte, bad token: 400 */
    SF_HTTP_E_METHOD = -3,          /* method is not a token: 400 */
    SF_HTTP_E_CONNECT = -4,         /* CONNECT is not proxied: 405 */
    SF_HTTP_E_TARGET = -5,          /* request-target malformed or of a form not accepted: 400 */
    SF_HTTP_E_VERSION = -6,         /* not HTTP/1.0 or HTTP/1.1: 400 */
    SF_HTTP_E_URI_TOO_LONG = -7,    /* request line longer than the head limit: 414 */
    SF_HTTP_E_HEADERS_TOO_BIG = -8, /* head over max bytes or over max header count: 431 */
    SF_HTTP_E_HEADER = -9,          /* obs-fold, space before colon, bad name or value byte: 400 */
    SF_HTTP_E_HOST = -10,           /* missing, duplicate or malformed Host: 400 */
    SF_HTTP_E_CONTENT_LENGTH = -11, /* malformed, differing or overflowing Content-Length: 400 */
    SF_HTTP_E_TRANSFER_ENCODING = -12, /* anything but one final "chunked", or on HTTP/1.0: 400 */
    SF_HTTP_E_CL_AND_TE = -13,         /* both Content-Length and Transfer-Encoding: 400 */
    SF_HTTP_E_STATUS = -14,            /* response status line malformed (upstream: 502) */
};

/* Flags set while parsing a head. */
enum {
    SF_HTTP_F_CHUNKED = 1u << 0,         /* Transfer-Encoding: chunked */
    SF_HTTP_F_CONN_CLOSE = 1u << 1,      /* Connection: close */
    SF_HTTP_F_CONN_KEEPALIVE = 1u << 2,  /* Connection: keep-alive */
    SF_HTTP_F_CONN_UPGRADE = 1u << 3,    /* Connection: upgrade */
    SF_HTTP_F_EXPECT_CONTINUE = 1u << 4, /* Expect: 100-continue */
    SF_HTTP_F_CONN_OTHER = 1u << 5,      /* Connection names other headers (hop-by-hop) */
    SF_HTTP_F_ABSOLUTE_FORM = 1u << 6,   /* request-target was absolute-form; see authority */
    SF_HTTP_F_ASTERISK_FORM = 1u << 7,   /* request-target "*" (OPTIONS only) */
};

typedef struct {
    size_t max_head_bytes; /* request line + headers + final CRLF */
    size_t max_headers;    /* also bounded by the caller's array capacity */
} sf_http_limits;

/* Slices point into the buffer that was parsed; valid while it is. */
typedef struct {
    sf_slice method;
    sf_slice target;    /* as received (origin-form, absolute-form or "*") */
    sf_slice path;      /* origin-form part of target: "/p?q"; absolute-form: what follows the
                         * authority, which may be "" or start with '?' (send "/" first) */
    sf_slice authority; /* absolute-form only: host[:port] from the target */
    int minor_version;  /* 0 or 1 */
    unsigned flags;
    int64_t content_length;  /* -1 when absent */
    int host_index;          /* index of the Host header, -1 when absent */
    int request_id_index;    /* index of X-Request-Id, -1 when absent */
    int connection_index;    /* index of the first Connection header, -1 when absent */
    sf_http_header *headers; /* caller's array */
    size_t num_headers;
} sf_http_request;

typedef struct {
    int minor_version;
    int status;
    sf_slice reason;
    unsigned flags;
    int64_t content_length; /* -1 when absent */
    sf_http_header *headers;
    size_t num_headers;
} sf_http_response;

/* Parses a request head from buf[0..len). headers/capacity: the caller's array for header
 * slices. Leading empty lines (CRLF) before the request line are skipped (RFC 9112 §2.2).
 * Returns the number of bytes the head took (> 0), SF_HTTP_INCOMPLETE, or an SF_HTTP_E_* code.
 * Framing checks (Content-Length, Transfer-Encoding, Host) are part of the parse. An error is
 * returned as soon as it is certain: a bad request line as soon as its CRLF arrived, before the
 * headers; the verdict does not depend on how the input was split. */
ssize_t sf_http_parse_request(const char *buf, size_t len, sf_http_request *req,
                              sf_http_header *headers, size_t capacity, const sf_http_limits *lim);

/* Parses a response head; same contract as sf_http_parse_request. Status line errors are
 * SF_HTTP_E_STATUS; a caller talking to an upstream answers every error with 502. */
ssize_t sf_http_parse_response(const char *buf, size_t len, sf_http_response *resp,
                               sf_http_header *headers, size_t capacity, const sf_http_limits *lim);

/* How a response's body is delimited (RFC 9112 §6.3), given the request was HEAD or not. */
enum { SF_HTTP_BODY_NONE, SF_HTTP_BODY_LENGTH, SF_HTTP_BODY_CHUNKED, SF_HTTP_BODY_CLOSE };
int sf_http_response_body(const sf_http_response *resp, int is_head);

/* True when the connection may carry another request after this response, whose body is
 * delimited as sf_http_response_body said (a close-delimited body never leaves it reusable). */
int sf_http_response_reusable(const sf_http_response *resp, int body);

/* The HTTP status to answer a request-parse error with (400, 405, 414 or 431). */
int sf_http_error_status(ssize_t err);
/* A short phrase for logs, e.g. "both Content-Length and Transfer-Encoding". */
const char *sf_http_error_str(ssize_t err);

/* True when name equals the lowercase literal lc, case-insensitively (ASCII). */
int sf_http_name_is(sf_slice name, const char *lc, size_t lclen);
#define SF_HTTP_NAME_IS(s, lit) sf_http_name_is((s), (lit), sizeof(lit) - 1)

/* Chunked transfer-coding decoder (RFC 9112 §7.1), incremental over any split of the input.
 * Strict: chunk size is 1*HEXDIG with no prefix, sign or space, at most 15 hex digits;
 * extensions are syntax-checked and dropped; every line ends in CRLF; trailers are parsed like
 * header lines and dropped. */
typedef struct {
    int state;
    uint64_t remaining; /* data bytes left in the current chunk */
    unsigned digits;    /* hex digits seen in the current size line */
    size_t line_bytes;  /* bytes in the current size/extension/trailer line */
    size_t trailer_bytes;
} sf_chunked;

enum {
    SF_CHUNK_E_SYNTAX = -2,   /* bad size, extension or line end */
    SF_CHUNK_E_OVERFLOW = -3, /* size too large */
    SF_CHUNK_E_TRAILER = -4,  /* trailers too long or malformed */
};

void sf_chunked_init(sf_chunked *c);

/* Feeds buf[0..len). Consumes framing bytes up to the next data bytes and stops there.
 * Returns the number of framing bytes consumed (>= 0) and sets *data_len to the count of data
 * bytes that follow them in buf (0 when none follow yet); the caller consumes those data bytes
 * itself and calls sf_chunked_data(c, n). Returns an SF_CHUNK_E_* code on error. */
ssize_t sf_chunked_parse(sf_chunked *c, const char *buf, size_t len, size_t *data_len);

/* Tells the decoder that n data bytes (n <= the data_len it reported) were consumed. */
void sf_chunked_data(sf_chunked *c, size_t n);

/* True once the last chunk and the trailer section's final CRLF were consumed. */
int sf_chunked_done(const sf_chunked *c);

#endif
