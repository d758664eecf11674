/* shopapi.h — the shop's HTTP API as the monolith serves it (orders, catalog, users), written
 * once: the monolith routes to it directly, the function host's functions call it and may
 * post-process the answer before it is sent. */
#ifndef SF_SHOPAPI_H
#define SF_SHOPAPI_H

#include <jansson.h>

struct sf_stub_req;

/* An answer not yet sent. */
struct sf_shopapi_result {
    int status;
    json_t *body;      /* owned: sf_shopapi_reply() sends and frees it; NULL means 500 */
    const char *allow; /* 405: the Allow header value */
    char location[48]; /* 201: the Location header value, "" when none */
};

/* Each takes the path below its prefix ("" or "/…") and fills res; r is only read. */
void sf_shopapi_orders(struct sf_stub_req *r, const char *rest, struct sf_shopapi_result *res);
void sf_shopapi_catalog(struct sf_stub_req *r, const char *rest, struct sf_shopapi_result *res);
void sf_shopapi_users(struct sf_stub_req *r, const char *rest, struct sf_shopapi_result *res);

/* Sends res (with the per-response fields generated_at and request_id) and frees its body. */
void sf_shopapi_reply(struct sf_stub_req *r, struct sf_shopapi_result *res);

/* The shop API's part of --help for the monolith. */
extern const char sf_shopapi_help[];

#endif
