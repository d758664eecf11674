/* shop.c — the stand-in shop's deterministic data (see shop.h). Every value comes from a
 * splitmix64 stream seeded with the record's kind and key: no state, no clock, no randomness. */
#include "shop.h"
#include "query.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define N_ELEMS(a)    (sizeof(a) / sizeof((a)[0]))
#define EPOCH_2023    1672531200L /* 2023-01-01T00:00:00Z: records are "created" after it */
#define LIST_ORDERS   5
#define LIST_PRODUCTS 12
#define MAX_ITEMS     50
#define MAX_QTY       1000

enum kind { KIND_USER = 0x55, KIND_PRODUCT = 0x50, KIND_ORDER = 0x4f };

struct rng {
    uint64_t s;
};

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static struct rng seeded(enum kind kind, uint64_t key)
{
    struct rng g = {mix64(((uint64_t)kind << 56) ^ (key * 0x100000001b3ULL))};
    return g;
}

static long between(struct rng *g, long lo, long hi)
{
    g->s += 0x9e3779b97f4a7c15ULL;
    return lo + (long)(mix64(g->s) % (uint64_t)(hi - lo + 1));
}

static const char *pick(struct rng *g, const char *const *list, size_t n)
{
    return list[between(g, 0, (long)n - 1)];
}

static void iso_date(long t, char *out, size_t n)
{
    time_t tt = (time_t)t;
    struct tm tm;

    gmtime_r(&tt, &tm);
    strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static json_t *money(long cents)
{
    return json_real((double)cents / 100.0);
}

/* Parsing keys */

/* An id: 1..max in plain decimal digits, or -1. */
static long parse_digits(const char *s, long max)
{
    long v;
    return sf_parse_range(s, 1, max, &v) == 0 ? v : -1;
}

long sf_shop_parse_id(const char *s)
{
    return parse_digits(s, SF_SHOP_MAX_ID);
}

long sf_shop_parse_sku(const char *s)
{
    if (strncmp(s, "SKU-", 4) != 0)
        return -1;
    return parse_digits(s + 4, SF_SHOP_MAX_SKU);
}

/* Users */

struct city {
    const char *name, *postcode, *country;
};

static const char *const first_names[] = {"Ada",    "Alan",    "Grace",   "Linus",   "Margaret",
                                          "Dennis", "Barbara", "Ken",     "Frances", "Edsger",
                                          "Radia",  "Donald",  "Hedy",    "John",    "Katherine",
                                          "Tim",    "Sophie",  "Niklaus", "Annie",   "Guido"};
static const char *const last_names[] = {
    "Lovelace", "Turing",      "Hopper",   "Torvalds", "Hamilton", "Ritchie",   "Liskov",
    "Thompson", "Allen",       "Dijkstra", "Perlman",  "Knuth",    "Lamarr",    "McCarthy",
    "Johnson",  "Berners-Lee", "Wilson",   "Wirth",    "Easley",   "van Rossum"};
static const char *const streets[] = {"Market Street", "Station Road",  "Harbour Lane",
                                      "Mill Way",      "Church Street", "Park Avenue",
                                      "Linden Allee",  "Rue de la Paix"};
static const struct city cities[] = {{"Berlin", "10115", "DE"},   {"Paris", "75002", "FR"},
                                     {"Amsterdam", "1012", "NL"}, {"Lisbon", "1100-148", "PT"},
                                     {"Vienna", "1010", "AT"},    {"Dublin", "D02", "IE"},
                                     {"Madrid", "28013", "ES"},   {"Copenhagen", "1050", "DK"}};
static const char *const tiers[] = {"standard", "standard", "silver", "gold", "platinum"};

struct user {
    long id;
    const char *first, *last, *street, *tier;
    const struct city *city;
    long house;
    long created;
    char name[64];
    char email[96];
};

/* Lower-cases s into out, dropping spaces ("van Rossum" -> "vanrossum"). Returns the length. */
static size_t email_word(char *out, size_t cap, const char *s)
{
    size_t k = 0;

    for (; *s != '\0' && k + 1 < cap; s++) {
        if (*s != ' ')
            out[k++] = (char)tolower((unsigned char)*s);
    }
    out[k] = '\0';
    return k;
}

static void make_user(long id, struct user *u)
{
    struct rng g = seeded(KIND_USER, (uint64_t)id);
    char first[32], last[32];

    u->id = id;
    u->first = pick(&g, first_names, N_ELEMS(first_names));
    u->last = pick(&g, last_names, N_ELEMS(last_names));
    u->street = pick(&g, streets, N_ELEMS(streets));
    u->house = between(&g, 1, 180);
    u->city = &cities[between(&g, 0, (long)N_ELEMS(cities) - 1)];
    u->tier = pick(&g, tiers, N_ELEMS(tiers));
    u->created = EPOCH_2023 + id * 311 + between(&g, 0, 300);
    snprintf(u->name, sizeof(u->name), "%s %s", u->first, u->last);
    email_word(first, sizeof(first), u->first);
    email_word(last, sizeof(last), u->last);
    snprintf(u->email, sizeof(u->email), "%s.%s%ld@example.com", first, last, id);
}

json_t *sf_shop_user(long id)
{
    struct user u;
    char created[32], street[64];

    make_user(id, &u);
    iso_date(u.created, created, sizeof(created));
    snprintf(street, sizeof(street), "%ld %s", u.house, u.street);
    return json_pack("{s:I, s:s, s:s, s:s, s:{s:s, s:s, s:s, s:s}, s:s}", "id", (json_int_t)id,
                     "name", u.name, "email", u.email, "tier", u.tier, "address", "street", street,
                     "city", u.city->name, "postcode", u.city->postcode, "country", u.city->country,
                     "created_at", created);
}

/* Products */

struct noun {
    const char *name, *category;
};

static const char *const adjectives[] = {
    "Sturdy", "Compact", "Classic", "Deluxe",     "Ergonomic", "Rustic",  "Modern", "Portable",
    "Quiet",  "Smart",   "Vintage", "Heavy-Duty", "Foldable",  "Premium", "Eco",    "Slim"};
static const char *const materials[] = {"Oak",     "Steel",  "Bamboo",    "Linen",
                                        "Ceramic", "Walnut", "Aluminium", "Wool",
                                        "Glass",   "Cork",   "Leather",   "Granite"};
static const struct noun nouns[] = {
    {"Chair", "furniture"}, {"Desk", "furniture"},        {"Lamp", "lighting"},
    {"Kettle", "kitchen"},  {"Mug", "kitchen"},           {"Backpack", "bags"},
    {"Blanket", "home"},    {"Shelf", "furniture"},       {"Speaker", "electronics"},
    {"Clock", "home"},      {"Cutting Board", "kitchen"}, {"Notebook", "stationery"},
    {"Pen", "stationery"},  {"Plant Pot", "garden"},      {"Headphones", "electronics"},
    {"Rug", "home"}};

struct product {
    long sku;
    char code[16];
    char name[64];
    const char *category;
    long mills;
    long stock;
    long rating10;
};

static void make_product(long sku, struct product *p)
{
    struct rng g = seeded(KIND_PRODUCT, (uint64_t)sku);
    const char *adj = pick(&g, adjectives, N_ELEMS(adjectives));
    const char *mat = pick(&g, materials, N_ELEMS(materials));
    const struct noun *noun = &nouns[between(&g, 0, (long)N_ELEMS(nouns) - 1)];

    p->sku = sku;
    snprintf(p->code, sizeof(p->code), "SKU-%05ld", sku);
    snprintf(p->name, sizeof(p->name), "%s %s %s", adj, mat, noun->name);
    p->category = noun->category;
    p->mills = between(&g, 99, 49999) * 10 + 5;
    p->stock = between(&g, -40, 250);
    if (p->stock < 0)
        p->stock = 0; /* about one product in seven is out of stock */
    p->rating10 = between(&g, 10, 50);
}

/* Half-up: 19.995 is shown as 20.00. */
static long price_cents(const struct product *p)
{
    return (p->mills + 5) / 10;
}

long sf_shop_price_mills(long sku)
{
    struct product p;

    make_product(sku, &p);
    return p.mills;
}

json_t *sf_shop_product(long sku)
{
    struct product p;

    make_product(sku, &p);
    return json_pack("{s:s, s:s, s:s, s:o, s:s, s:I, s:b, s:f}", "sku", p.code, "name", p.name,
                     "category", p.category, "price", money(price_cents(&p)), "currency", "EUR",
                     "stock", (json_int_t)p.stock, "in_stock", p.stock > 0, "rating",
                     (double)p.rating10 / 10.0);
}

/* One page of a listing: items 1..n under key, with count and page as the monolith pages. */
static json_t *list_page(const char *key, json_t *(*item)(long), long n)
{
    json_t *list = json_array();

    if (list == NULL)
        return NULL;
    for (long i = 1; i <= n; i++) {
        if (json_array_append_new(list, item(i)) < 0) {
            json_decref(list);
            return NULL;
        }
    }
    return json_pack("{s:o, s:i, s:i}", key, list, "count", (int)n, "page", 1);
}

json_t *sf_shop_catalog(void)
{
    return list_page("products", sf_shop_product, LIST_PRODUCTS);
}

/* Orders */

static const char *const order_states[] = {"pending",   "paid",      "shipped",
                                           "shipped",   "delivered", "delivered",
                                           "delivered", "cancelled", "refunded"};

struct line {
    long sku;
    long qty;
};

static json_t *build_order(long id, long customer, const char *status, const struct line *lines,
                           size_t n, long created)
{
    struct user u;
    json_t *items = json_array();
    long total = 0;
    char when[32];

    if (items == NULL)
        return NULL;
    make_user(customer, &u);
    for (size_t i = 0; i < n; i++) {
        struct product p;
        long cents;
        make_product(lines[i].sku, &p);
        cents = price_cents(&p);
        total += cents * lines[i].qty;
        if (json_array_append_new(items, json_pack("{s:s, s:s, s:I, s:o, s:o}", "sku", p.code,
                                                   "name", p.name, "qty", (json_int_t)lines[i].qty,
                                                   "price", money(cents), "line_total",
                                                   money(cents * lines[i].qty))) < 0) {
            json_decref(items);
            return NULL;
        }
    }
    iso_date(created, when, sizeof(when));
    return json_pack("{s:I, s:s, s:{s:I, s:s, s:s}, s:o, s:I, s:o, s:s, s:s}", "id", (json_int_t)id,
                     "status", status, "customer", "id", (json_int_t)customer, "name", u.name,
                     "email", u.email, "items", items, "item_count", (json_int_t)n, "total",
                     money(total), "currency", "EUR", "created_at", when);
}

/* Spread over 2023-2024, ten minutes apart on average. */
static long order_created(struct rng *g, long id)
{
    return EPOCH_2023 + (id % SF_SHOP_MAX_ID) * 601 + between(g, 0, 600);
}

json_t *sf_shop_order(long id)
{
    struct rng g = seeded(KIND_ORDER, (uint64_t)id);
    struct line lines[4];
    long customer = between(&g, 1, SF_SHOP_MAX_ID);
    const char *status = pick(&g, order_states, N_ELEMS(order_states));
    size_t n = (size_t)between(&g, 1, (long)N_ELEMS(lines));

    for (size_t i = 0; i < n; i++) {
        lines[i].sku = between(&g, 1, SF_SHOP_MAX_SKU);
        lines[i].qty = between(&g, 1, 5);
    }
    return build_order(id, customer, status, lines, n, order_created(&g, id));
}

json_t *sf_shop_orders(void)
{
    return list_page("orders", sf_shop_order, LIST_ORDERS);
}

static uint64_t fnv(uint64_t h, long v)
{
    for (int i = 0; i < 8; i++) {
        h ^= (uint64_t)v >> (8 * i) & 0xff;
        h *= 0x100000001b3ULL;
    }
    return h;
}

json_t *sf_shop_order_create(const json_t *in, char *err, size_t errlen)
{
    struct line lines[MAX_ITEMS];
    const json_t *items, *cust;
    uint64_t h = 0xcbf29ce484222325ULL;
    long customer = 1;
    size_t n;

    if (!json_is_object(in)) {
        snprintf(err, errlen, "the order must be a JSON object");
        return NULL;
    }
    cust = json_object_get(in, "customer_id");
    if (cust != NULL) {
        if (!json_is_integer(cust) || json_integer_value(cust) < 1 ||
            json_integer_value(cust) > SF_SHOP_MAX_ID) {
            snprintf(err, errlen, "customer_id must be an integer 1..%ld", SF_SHOP_MAX_ID);
            return NULL;
        }
        customer = (long)json_integer_value(cust);
    }
    items = json_object_get(in, "items");
    n = json_array_size(items);
    if (!json_is_array(items) || n == 0 || n > MAX_ITEMS) {
        snprintf(err, errlen, "items must be an array of 1..%d {\"sku\", \"qty\"} objects",
                 MAX_ITEMS);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        const json_t *it = json_array_get(items, i);
        const json_t *sku = json_object_get(it, "sku");
        const json_t *qty = json_object_get(it, "qty");
        long num = json_is_string(sku) ? sf_shop_parse_sku(json_string_value(sku)) : -1;
        if (num < 0) {
            snprintf(err, errlen, "items[%zu].sku must be a SKU such as \"SKU-00042\"", i);
            return NULL;
        }
        if (!json_is_integer(qty) || json_integer_value(qty) < 1 ||
            json_integer_value(qty) > MAX_QTY) {
            snprintf(err, errlen, "items[%zu].qty must be an integer 1..%d", i, MAX_QTY);
            return NULL;
        }
        lines[i].sku = num;
        lines[i].qty = (long)json_integer_value(qty);
    }
    /* The id comes from what was ordered, so a retried or shadowed POST names the same order. */
    h = fnv(h, customer);
    for (size_t i = 0; i < n; i++)
        h = fnv(fnv(h, lines[i].sku), lines[i].qty);
    {
        long id = SF_SHOP_MAX_ID + 1 + (long)(h % 899999);
        struct rng g = seeded(KIND_ORDER, (uint64_t)id);
        return build_order(id, customer, "pending", lines, n, order_created(&g, id));
    }
}
