/* catalog.c — the catalog function. It answers from the shared shop model like the monolith,
 * then reprices on purpose: the shadow demo needs a function that is almost right.
 *
 * The deliberate difference: every list price has a half cent (19.995, see shop.h). The
 * monolith rounds it half-up (20.00); this function truncates it (19.99) for SKUs whose number is
 * divisible by 5, the kind of bug a rewrite ships when a float-to-int cast replaces a rounding
 * helper. Only "price" changes, only on those SKUs, in single products and in the list alike. */
#include "catalog.h"
#include "shop.h"
#include "shopapi.h"

static void reprice(json_t *product)
{
    const char *sku = json_string_value(json_object_get(product, "sku"));
    long n = sku != NULL ? sf_shop_parse_sku(sku) : -1;

    if (n > 0 && n % 5 == 0)
        json_object_set_new(product, "price",
                            json_real((double)(sf_shop_price_mills(n) / 10) / 100.0));
}

void sf_catalog_handle(struct sf_stub_req *r, const char *rest)
{
    struct sf_shopapi_result res;
    json_t *list, *product;
    size_t i;

    sf_shopapi_catalog(r, rest, &res);
    if (res.status == 200 && res.body != NULL) {
        list = json_object_get(res.body, "products");
        if (json_is_array(list)) {
            json_array_foreach(list, i, product) reprice(product);
        } else {
            reprice(res.body);
        }
    }
    sf_shopapi_reply(r, &res);
}
