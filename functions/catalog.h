/* catalog.h — the catalog function: /api/catalog with one deliberate difference from the
 * monolith, for the shadow-comparison demo. */
#ifndef SF_CATALOG_H
#define SF_CATALOG_H

struct sf_stub_req;

#define SF_CATALOG_HELP                                                                            \
    "           GET /api/catalog, GET /api/catalog/{sku}: the monolith's data, keys in a\n"        \
    "           different order, and ONE DELIBERATE DIFFERENCE: for SKUs whose number is\n"        \
    "           divisible by 5 (SKU-00005, SKU-00010, ...) \"price\" is truncated to cents\n"      \
    "           where the monolith rounds half-up, so it is 0.01 lower (19.99 vs 20.00);\n"        \
    "           in the list too. Every other field and SKU is equal.\n"

/* Serves GET /api/catalog and GET /api/catalog/{sku} (see registry.h). */
void sf_catalog_handle(struct sf_stub_req *r, const char *rest);

#endif
