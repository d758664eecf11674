/* shop.h — the stand-in shop's data: orders, catalog products and users, each a pure function
 * of its id or SKU, so the monolith and the functions give the same answer for the same key. */
#ifndef SF_SHOP_H
#define SF_SHOP_H

#include <stddef.h>

#include <jansson.h>

#define SF_SHOP_MAX_ID  100000L /* order and user ids are 1..SF_SHOP_MAX_ID */
#define SF_SHOP_MAX_SKU 99999L  /* SKU numbers are 1..SF_SHOP_MAX_SKU, written SKU-00042 */

/* An id in decimal digits, 1..SF_SHOP_MAX_ID; -1 for anything else ("0", "abc", "+7", ""). */
long sf_shop_parse_id(const char *s);
/* "SKU-" followed by decimal digits, number 1..SF_SHOP_MAX_SKU ("SKU-42" and "SKU-00042" are the
 * same product); returns the number, -1 for anything else. */
long sf_shop_parse_sku(const char *s);

/* A product's list price in thousandths of a euro. Always ends in 5 (a supplier's three-decimal
 * price): the catalog shows it rounded half-up to cents. */
long sf_shop_price_mills(long sku);

/* The objects below are new references (caller decrefs), NULL on allocation failure. Keys are
 * inserted in the monolith's order; serializers may reorder them. */

/* Order id (1..SF_SHOP_MAX_ID): id, status, customer, items (sku, name, qty, price,
 * line_total), item_count, total, currency, created_at. */
json_t *sf_shop_order(long id);
/* {"orders": [orders 1..5], "count": 5, "page": 1} */
json_t *sf_shop_orders(void);
/* The order a POST creates from in ({"customer_id": N (optional, default 1), "items": [{"sku":
 * "SKU-…", "qty": 1..1000}, …]}): status "pending", an id above SF_SHOP_MAX_ID derived from the
 * content (nothing is stored). NULL with a message in err when in is not such an object. */
json_t *sf_shop_order_create(const json_t *in, char *err, size_t errlen);

/* Product sku (1..SF_SHOP_MAX_SKU): sku, name, category, price, currency, stock, in_stock,
 * rating. */
json_t *sf_shop_product(long sku);
/* {"products": [products 1..12], "count": 12, "page": 1} */
json_t *sf_shop_catalog(void);

/* User id (1..SF_SHOP_MAX_ID): id, name, email, tier, address {street, city, postcode,
 * country}, created_at. */
json_t *sf_shop_user(long id);

#endif
