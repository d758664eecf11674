/* main.c — function-host: serves the new function endpoints that strangler cuts routes over to.
 * The functions live one per file and are listed in registry.c; the built-in test endpoints and
 * the fault knobs are the same as legacy-stub's. */
#include "registry.h"
#include "stub.h"

#include <stdio.h>

static void route(struct sf_stub_req *r, void *arg)
{
    (void)arg;
    if (sf_registry_dispatch(r) < 0)
        sf_stub_reply_error(r, 404, "not_found", "no function serves this path");
}

int main(int argc, char **argv)
{
    static const struct sf_stub_app app = {
        .name = "function-host",
        .default_port = 8082,
        .summary = "function-host: the new function endpoints (orders, catalog), test endpoints "
                   "and fault knobs",
        .print_endpoints = sf_registry_print,
        .handler = route,
        .arg = NULL,
        /* A different JSON library would order keys differently; sorting is the simplest
         * stand-in, and it makes byte-wise shadow comparison useless on purpose. */
        .sort_keys = 1,
    };

    return sf_stub_main(argc, argv, &app);
}
