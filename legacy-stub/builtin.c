/* builtin.c — the test and health endpoints both stand-in servers share (see builtin.h). */
#include "builtin.h"
#include "query.h"
#include "stub.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h> /* TAILQ_FOREACH over evhttp headers */

#include <event2/http.h>
#include <event2/http_struct.h> /* major/minor: libevent 2.1 has no accessor for the version */
#include <event2/keyvalq_struct.h>
#include <openssl/evp.h>

/* /__bytes stops somewhere: 1 TiB is far beyond any test and still fits every counter. */
#define MAX_BYTES (1ULL << 40)

const char sf_builtin_help[] =
    "Built-in endpoints (no per-response fields unless noted):\n"
    "  ANY  /__echo[/...]    what reached the server: {\"method\", \"path\" (raw request-target\n"
    "                        with the query), \"version\", \"headers\": [[name, value], ...] in\n"
    "                        received order with duplicates, \"body_length\", \"body_sha256\",\n"
    "                        \"peer\": \"ip:port\" of the connection it came on}\n"
    "                        (methods: GET POST HEAD PUT DELETE OPTIONS TRACE PATCH)\n"
    "  GET  /__bytes?size=N  N bytes (0..2^40) of application/octet-stream, byte i = 'a' + i % "
    "26,\n"
    "                        Content-Length framed (chunked with the knob), streamed in 64 KiB\n"
    "                        pieces: the server never holds the body\n"
    "  GET  /__count         {\"requests\": N}: requests this process has taken, /__count "
    "excluded\n"
    "  GET  /health          {\"status\": \"ok\"} plus generated_at and request_id\n";

static void echo(struct sf_stub_req *r)
{
    struct evhttp_request *req = sf_stub_req_evhttp(r);
    const struct evkeyval *h;
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    char hex[2 * EVP_MAX_MD_SIZE + 1], version[16];
    json_t *out = NULL, *headers = NULL;
    const unsigned char *body;
    size_t len;

    headers = json_array();
    if (headers == NULL)
        goto fail;
    TAILQ_FOREACH(h, evhttp_request_get_input_headers(req), next)
    {
        if (json_array_append_new(headers, json_pack("[o,o]", sf_stub_json_text(h->key),
                                                     sf_stub_json_text(h->value))) < 0)
            goto fail;
    }
    body = sf_stub_req_body(r, &len);
    if (!EVP_Digest(body != NULL ? body : (const unsigned char *)"", len, digest, &dlen,
                    EVP_sha256(), NULL))
        goto fail;
    for (unsigned int i = 0; i < dlen; i++)
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    hex[2 * dlen] = '\0';
    snprintf(version, sizeof(version), "HTTP/%d.%d", req->major, req->minor);
    /* the connection's remote end: lets a test see whether a proxy reused its connection */
    char *peer_host = NULL;
    ev_uint16_t peer_port = 0;
    char peer[96];
    evhttp_connection_get_peer(evhttp_request_get_connection(req), &peer_host, &peer_port);
    snprintf(peer, sizeof(peer), "%s:%u", peer_host ? peer_host : "?", (unsigned)peer_port);

    out = json_pack("{s:s, s:o, s:s, s:o, s:I, s:s, s:s}", "method", sf_stub_req_method(r), "path",
                    sf_stub_json_text(evhttp_request_get_uri(req)), "version", version, "headers",
                    headers, "body_length", (json_int_t)len, "body_sha256", hex, "peer", peer);
    headers = NULL; /* json_pack's "o" took it, even on failure */
    sf_stub_reply_json(r, 200, out);
    return;

fail:
    json_decref(headers);
    sf_stub_reply_json(r, 500, NULL);
}

static void bytes(struct sf_stub_req *r)
{
    char v[32], *end;
    unsigned long long n;
    int rc;

    if (!sf_stub_req_is_read(r)) {
        sf_stub_reply_not_allowed(r, "GET, HEAD");
        return;
    }
    rc = sf_query_get(sf_stub_req_query(r), "size", v, sizeof(v));
    if (rc <= 0 || v[0] < '0' || v[0] > '9') {
        sf_stub_reply_error(r, 400, "bad_size", "/__bytes needs ?size=N (0..1099511627776)");
        return;
    }
    errno = 0;
    n = strtoull(v, &end, 10);
    if (errno != 0 || *end != '\0' || n > MAX_BYTES) {
        sf_stub_reply_error(r, 400, "bad_size", "size must be 0..1099511627776");
        return;
    }
    sf_stub_reply_pattern(r, 200, (uint64_t)n);
}

int sf_builtin_handle(struct sf_stub_req *r)
{
    const char *path = sf_stub_req_path(r);

    if (sf_stub_path_under(path, "/__echo") != NULL) {
        echo(r); /* also /__echo/anything: tests see rewritten and prefixed paths arrive */
    } else if (!strcmp(path, "/__bytes")) {
        bytes(r);
    } else if (!strcmp(path, "/__count")) {
        if (sf_stub_req_is_read(r))
            sf_stub_reply_json(r, 200,
                               json_pack("{s:I}", "requests", (json_int_t)sf_stub_req_count(r)));
        else
            sf_stub_reply_not_allowed(r, "GET, HEAD");
    } else if (!strcmp(path, "/health")) {
        if (sf_stub_req_is_read(r))
            sf_stub_reply_data(r, 200, json_pack("{s:s}", "status", "ok"));
        else
            sf_stub_reply_not_allowed(r, "GET, HEAD");
    } else {
        return 0;
    }
    return 1;
}
