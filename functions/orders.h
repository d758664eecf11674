/* orders.h — the orders function: /api/orders as the monolith answers it. */
#ifndef SF_ORDERS_H
#define SF_ORDERS_H

struct sf_stub_req;

#define SF_ORDERS_HELP                                                                             \
    "           GET /api/orders, GET /api/orders/{id}, POST /api/orders: the monolith's data,\n"   \
    "           keys in a different order\n"

/* Serves GET /api/orders, GET /api/orders/{id} and POST /api/orders (see registry.h). */
void sf_orders_handle(struct sf_stub_req *r, const char *rest);

#endif
