/* registry.c — the one table of functions (see registry.h). */
#include "registry.h"
#include "catalog.h"
#include "orders.h"
#include "stub.h"

#include <stddef.h>

struct function {
    const char *name;
    const char *prefix;
    sf_registry_handler handler;
    const char *help;
};

static const struct function functions[] = {
    {"orders", "/api/orders", sf_orders_handle, SF_ORDERS_HELP},
    {"catalog", "/api/catalog", sf_catalog_handle, SF_CATALOG_HELP},
};

int sf_registry_dispatch(struct sf_stub_req *r)
{
    for (size_t i = 0; i < sizeof(functions) / sizeof(functions[0]); i++) {
        const char *rest = sf_stub_path_under(sf_stub_req_path(r), functions[i].prefix);
        if (rest != NULL) {
            functions[i].handler(r, rest);
            return 0;
        }
    }
    return -1;
}

void sf_registry_print(FILE *out)
{
    fputs("Functions (JSON with sorted keys; every answer carries \"generated_at\" and\n"
          "\"request_id\" = X-Request-Id or a random hex id):\n",
          out);
    for (size_t i = 0; i < sizeof(functions) / sizeof(functions[0]); i++)
        fprintf(out, "  %-8s %s\n%s", functions[i].name, functions[i].prefix, functions[i].help);
    fputs("  anything else: 404 JSON error\n", out);
}
