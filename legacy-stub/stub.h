/* stub.h — the HTTP server both stand-ins (legacy-stub, function-host) run on: command line,
 * evhttp on one event loop, the fault knobs, the built-in endpoints, and the reply helpers an
 * application's handler answers with. Shares no code with the proxy. */
#ifndef SF_STUB_H
#define SF_STUB_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

struct evhttp_request;

/* One request being served. Owned by the server; a handler borrows it and answers it with
 * exactly one sf_stub_reply_*() call before returning. The reply itself (delay, pacing, resets)
 * may finish later on the event loop. */
struct sf_stub_req;

typedef void (*sf_stub_handler)(struct sf_stub_req *r, void *arg);

/* What a program built on the stub server provides. */
struct sf_stub_app {
    const char *name;                   /* program name in logs and --help */
    int default_port;                   /* --port default; the host defaults to 127.0.0.1 */
    const char *summary;                /* first line of --help */
    void (*print_endpoints)(FILE *out); /* the program's own endpoints, for --help */
    sf_stub_handler handler;            /* every request the built-in endpoints do not take */
    void *arg;                          /* passed to handler */
    int sort_keys;                      /* serialize JSON objects with their keys sorted */
};

/* Parses --host/--port/--tls-cert/--tls-key/--help, listens (HTTPS when given a certificate and
 * key, else plain HTTP), serves until SIGTERM or SIGINT, frees everything.
 * Returns the process exit status: 0 after a signal or --help, 1 on a runtime failure (e.g.
 * the address is in use, an unreadable certificate), 2 on a usage error. */
int sf_stub_main(int argc, char **argv, const struct sf_stub_app *app);

/* Request accessors. Strings are borrowed from r and NUL-terminated. */
const char *sf_stub_req_method(const struct sf_stub_req *r); /* "GET", "POST", ... */
int sf_stub_req_is_read(const struct sf_stub_req *r);        /* GET or HEAD */
const char *sf_stub_req_path(const struct sf_stub_req *r);   /* request-target before '?' */
const char *sf_stub_req_query(const struct sf_stub_req *r);  /* after '?', or NULL */
/* X-Request-Id of the request when it has one, else a random 32-digit hex id. */
const char *sf_stub_req_id(const struct sf_stub_req *r);
/* The request body, made contiguous; *len gets its length. NULL when empty. */
const unsigned char *sf_stub_req_body(struct sf_stub_req *r, size_t *len);
/* The underlying evhttp request (borrowed), for what the accessors above do not cover. */
struct evhttp_request *sf_stub_req_evhttp(const struct sf_stub_req *r);
/* Requests this process has taken so far, /__count excluded. */
uint64_t sf_stub_req_count(const struct sf_stub_req *r);

/* Adds a response header; call before the reply. Returns 0 or -1. */
int sf_stub_set_header(struct sf_stub_req *r, const char *name, const char *value);

/* Answers with body serialized as is (Content-Type: application/json). Takes ownership of body;
 * a NULL body (allocation failed upstream) becomes a 500. */
void sf_stub_reply_json(struct sf_stub_req *r, int status, json_t *body);
/* Like sf_stub_reply_json, after adding the per-response fields "generated_at" (UTC, ISO 8601
 * with milliseconds) and "request_id" to the body object. Takes ownership of body. */
void sf_stub_reply_data(struct sf_stub_req *r, int status, json_t *body);
/* A JSON error: {"error": code, "message": message} with the per-response fields. */
void sf_stub_reply_error(struct sf_stub_req *r, int status, const char *code, const char *message);
/* 405 with an Allow header listing allow. */
void sf_stub_reply_not_allowed(struct sf_stub_req *r, const char *allow);
/* An application/octet-stream body of size bytes, byte i = 'a' + i % 26, generated while it
 * streams: the server never holds more than one piece of it. */
void sf_stub_reply_pattern(struct sf_stub_req *r, int status, uint64_t size);

/* If path is prefix or lies under it on a segment boundary ("/api/orders" takes "/api/orders"
 * and "/api/orders/7", not "/api/ordersX"), returns the rest of path ("" or "/..."), else NULL. */
const char *sf_stub_path_under(const char *path, const char *prefix);

/* A JSON string of s; bytes that are not UTF-8 are read as ISO-8859-1 (HTTP's obs-text) so any
 * header value can be reported. Returns a new reference, NULL on allocation failure. */
json_t *sf_stub_json_text(const char *s);

#endif
