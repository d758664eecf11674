/* orders.c — the orders function. Same data as the monolith for every id and every POSTed
 * order: it answers from the shared shop model. Only the serialization differs (the host sorts
 * object keys), so a shadow comparison that is not JSON-aware reports false mismatches here. */
#include "orders.h"
#include "shopapi.h"

void sf_orders_handle(struct sf_stub_req *r, const char *rest)
{
    struct sf_shopapi_result res;

    sf_shopapi_orders(r, rest, &res);
    sf_shopapi_reply(r, &res);
}
