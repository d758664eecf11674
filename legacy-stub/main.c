/* main.c — legacy-stub: a stand-in for the monolith being strangled. It serves the shop API
 * (orders, catalog, users) plus the built-in test endpoints, with per-request fault knobs. */
#include "shopapi.h"
#include "stub.h"

#include <stdio.h>

static void print_endpoints(FILE *out)
{
    fputs(sf_shopapi_help, out);
    fputs("  anything else               404 JSON error\n", out);
}

static void route(struct sf_stub_req *r, void *arg)
{
    const char *path = sf_stub_req_path(r);
    struct sf_shopapi_result res;
    const char *rest;

    (void)arg;
    if ((rest = sf_stub_path_under(path, "/api/orders")) != NULL) {
        sf_shopapi_orders(r, rest, &res);
    } else if ((rest = sf_stub_path_under(path, "/api/catalog")) != NULL) {
        sf_shopapi_catalog(r, rest, &res);
    } else if ((rest = sf_stub_path_under(path, "/api/users")) != NULL) {
        sf_shopapi_users(r, rest, &res);
    } else {
        sf_stub_reply_error(r, 404, "not_found", "no such endpoint");
        return;
    }
    sf_shopapi_reply(r, &res);
}

int main(int argc, char **argv)
{
    static const struct sf_stub_app app = {
        .name = "legacy-stub",
        .default_port = 8081,
        .summary = "legacy-stub: a stand-in monolith (shop API, test endpoints, fault knobs)",
        .print_endpoints = print_endpoints,
        .handler = route,
        .arg = NULL,
        .sort_keys = 0,
    };

    return sf_stub_main(argc, argv, &app);
}
