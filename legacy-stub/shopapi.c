/* shopapi.c — routing, validation and errors of the shop's JSON API (see shopapi.h). */
#include "shopapi.h"
#include "shop.h"
#include "stub.h"

#include <stdio.h>
#include <string.h>

const char sf_shopapi_help[] =
    "Shop API (JSON; every answer carries \"generated_at\" and \"request_id\" = X-Request-Id\n"
    "or a random hex id; unknown ids and SKUs get a 404 JSON error):\n"
    "  GET  /api/orders            orders 1..5\n"
    "  GET  /api/orders/{id}       order id 1..100000, deterministic from the id\n"
    "  POST /api/orders            {\"customer_id\": N, \"items\": [{\"sku\": \"SKU-00042\", "
    "\"qty\": 2}]}\n"
    "                              -> 201 with the order (not stored); 400 on invalid JSON\n"
    "  GET  /api/catalog           products SKU-00001..SKU-00012\n"
    "  GET  /api/catalog/{sku}     product SKU-1..SKU-99999 (zero padding optional)\n"
    "  GET  /api/users/{id}        user id 1..100000\n";

static void set(struct sf_shopapi_result *res, int status, json_t *body)
{
    res->status = status;
    res->body = body;
}

static void error(struct sf_shopapi_result *res, int status, const char *code, const char *msg)
{
    /* The message may quote a path segment, which need not be UTF-8. */
    set(res, status, json_pack("{s:s, s:o*}", "error", code, "message", sf_stub_json_text(msg)));
}

static void not_found(struct sf_shopapi_result *res, const char *what, const char *key)
{
    char msg[160];

    snprintf(msg, sizeof(msg), "no %s %.100s", what, key);
    error(res, 404, "not_found", msg);
}

static void not_allowed(struct sf_shopapi_result *res, const char *allow)
{
    res->allow = allow;
    error(res, 405, "method_not_allowed", "method not allowed here");
}

static void init(struct sf_shopapi_result *res)
{
    memset(res, 0, sizeof(*res));
    res->status = 500;
}

static void create_order(struct sf_stub_req *r, struct sf_shopapi_result *res)
{
    json_error_t jerr;
    char msg[200];
    size_t len;
    const unsigned char *body = sf_stub_req_body(r, &len);
    json_t *in = json_loadb(body != NULL ? (const char *)body : "", len, 0, &jerr);
    json_t *order;

    if (in == NULL) {
        snprintf(msg, sizeof(msg), "invalid JSON at line %d column %d: %s", jerr.line, jerr.column,
                 jerr.text);
        error(res, 400, "invalid_json", msg);
        return;
    }
    order = sf_shop_order_create(in, msg, sizeof(msg));
    json_decref(in);
    if (order == NULL) {
        error(res, 400, "invalid_order", msg);
        return;
    }
    snprintf(res->location, sizeof(res->location), "/api/orders/%lld",
             (long long)json_integer_value(json_object_get(order, "id")));
    set(res, 201, order);
}

void sf_shopapi_orders(struct sf_stub_req *r, const char *rest, struct sf_shopapi_result *res)
{
    long id;

    init(res);
    if (*rest == '\0') {
        if (sf_stub_req_is_read(r))
            set(res, 200, sf_shop_orders());
        else if (!strcmp(sf_stub_req_method(r), "POST"))
            create_order(r, res);
        else
            not_allowed(res, "GET, HEAD, POST");
        return;
    }
    id = sf_shop_parse_id(rest + 1);
    if (id < 0)
        not_found(res, "order", rest + 1);
    else if (!sf_stub_req_is_read(r))
        not_allowed(res, "GET, HEAD");
    else
        set(res, 200, sf_shop_order(id));
}

void sf_shopapi_catalog(struct sf_stub_req *r, const char *rest, struct sf_shopapi_result *res)
{
    long sku;

    init(res);
    if (*rest == '\0') {
        if (sf_stub_req_is_read(r))
            set(res, 200, sf_shop_catalog());
        else
            not_allowed(res, "GET, HEAD");
        return;
    }
    sku = sf_shop_parse_sku(rest + 1);
    if (sku < 0)
        not_found(res, "product", rest + 1);
    else if (!sf_stub_req_is_read(r))
        not_allowed(res, "GET, HEAD");
    else
        set(res, 200, sf_shop_product(sku));
}

void sf_shopapi_users(struct sf_stub_req *r, const char *rest, struct sf_shopapi_result *res)
{
    long id;

    init(res);
    id = *rest == '/' ? sf_shop_parse_id(rest + 1) : -1;
    if (id < 0)
        not_found(res, "user", *rest == '/' ? rest + 1 : "(no id)");
    else if (!sf_stub_req_is_read(r))
        not_allowed(res, "GET, HEAD");
    else
        set(res, 200, sf_shop_user(id));
}

void sf_shopapi_reply(struct sf_stub_req *r, struct sf_shopapi_result *res)
{
    if (res->allow != NULL)
        sf_stub_set_header(r, "Allow", res->allow);
    if (res->location[0] != '\0')
        sf_stub_set_header(r, "Location", res->location);
    /* A NULL body (allocation failed) goes out as a 500 from sf_stub_reply_json. */
    sf_stub_reply_data(r, res->body != NULL ? res->status : 500, res->body);
    res->body = NULL;
}
