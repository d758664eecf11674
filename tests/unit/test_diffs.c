/* The store of shadow mismatches: the ring's bound and order, routes kept apart, top paths and
 * their bound, secrets never stored, truncation to valid UTF-8, and the JSON the admin API
 * serves. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diffs.h"
#include "tap.h"

#define TS0 1795509000123LL /* 2026-11-24T08:30:00.123Z */

static const json_t *get(const json_t *o, const char *key)
{
    return json_object_get(o, key);
}

static const char *str(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static long long num(const json_t *o, const char *key)
{
    return (long long)json_integer_value(json_object_get(o, key));
}

/* Records mismatch number i of route: request id "req-<i>", one differing path. */
static void record_one(sf_diffs *d, const char *route, int i)
{
    char id[32], path[32], lv[16], fv[16];
    snprintf(id, sizeof(id), "req-%d", i);
    snprintf(path, sizeof(path), "/api/items/%d", i);
    snprintf(lv, sizeof(lv), "%d", i);
    snprintf(fv, sizeof(fv), "%d.5", i);
    sf_diff_item it = {"/price", lv, fv};
    sf_diffs_record(d, route, id, TS0 + i, "GET", path, 200, 200, &it, 1, 0);
}

/* The JSON text of v, for searching (caller frees). */
static char *dump(const json_t *v)
{
    return json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);
}

static void test_empty(void)
{
    sf_diffs *d = sf_diffs_create();
    ok(d != NULL, "a store is created");
    json_t *js = sf_diffs_json(d, "orders", 0, NULL, 0);
    is_str(str(js, "route"), "orders", "empty: the route is named");
    is(num(js, "total"), 0, "empty: total 0");
    is(num(js, "kept"), 0, "empty: kept 0");
    ok(json_is_array(get(js, "diffs")) && json_array_size(get(js, "diffs")) == 0,
       "empty: diffs is an empty array");
    ok(json_is_array(get(js, "top_paths")) && json_array_size(get(js, "top_paths")) == 0,
       "empty: top_paths is an empty array");
    ok(json_is_array(get(js, "noise_paths")) && json_array_size(get(js, "noise_paths")) == 0,
       "empty: noise_paths is an empty array");
    json_decref(js);
    js = sf_diffs_json(NULL, "orders", 0, NULL, 0);
    ok(js != NULL && num(js, "total") == 0 && json_array_size(get(js, "diffs")) == 0,
       "a NULL store renders as an empty one");
    json_decref(js);
    sf_diffs_record(NULL, "orders", "r", 0, "GET", "/", 200, 200, NULL, 0, 0);
    ok(1, "recording into a NULL store is a no-op");
    sf_diffs_destroy(d);
    sf_diffs_destroy(NULL);
}

static void test_shape(void)
{
    sf_diffs *d = sf_diffs_create();
    sf_diff_item items[] = {
        {"/items/0/price", "12.5", "12.50"},
        {"/gone", "\"x\"", NULL},
        {"header:etag", "\"abc\"", "\"def\""},
    };
    static const char *const noise[] = {"/generated_at", "/request_id"};
    sf_diffs_record(d, "catalog", "3f9a0c1d", TS0, "GET", "/api/catalog/sku-15", 200, 404, items, 3,
                    0);
    json_t *js = sf_diffs_json(d, "catalog", 0, noise, 2);
    json_t *m = json_array_get(get(js, "diffs"), 0);
    is(num(js, "total"), 1, "one mismatch: total 1");
    is(num(js, "kept"), 1, "one mismatch: kept 1");
    is_str(str(m, "request_id"), "3f9a0c1d", "the record's request id");
    is_str(str(m, "ts"), "2026-11-24T08:30:00.123Z", "ts in ISO 8601 UTC with milliseconds");
    is_str(str(m, "method"), "GET", "the method");
    is_str(str(m, "path"), "/api/catalog/sku-15", "the client's path");
    is(num(get(m, "status"), "legacy"), 200, "status.legacy");
    is(num(get(m, "status"), "function"), 404, "status.function");
    is(num(m, "more"), 0, "more is 0 when every path is listed");
    const json_t *diffs = get(m, "differences");
    is((long long)json_array_size(diffs), 3, "three differences");
    const json_t *d0 = json_array_get(diffs, 0);
    ok(strcmp(str(d0, "path"), "/items/0/price") == 0 && strcmp(str(d0, "legacy"), "12.5") == 0 &&
           strcmp(str(d0, "function"), "12.50") == 0,
       "a difference: path, legacy and function values, in the engine's order");
    ok(json_is_null(get(json_array_get(diffs, 1), "function")) &&
           strcmp(str(json_array_get(diffs, 1), "legacy"), "\"x\"") == 0,
       "a value absent on one side is null");
    is_str(str(json_array_get(diffs, 2), "path"), "header:etag", "a header diff keeps its path");
    is_str(str(json_array_get(diffs, 2), "function"), "\"def\"",
           "an ordinary header's values are kept");
    const json_t *np = get(js, "noise_paths");
    ok(json_array_size(np) == 2 &&
           strcmp(json_string_value(json_array_get(np, 0)), "/generated_at") == 0,
       "noise_paths are the ones given");
    /* the keys, in this order */
    static const char *const keys[] = {"route",     "total",       "kept",
                                       "top_paths", "noise_paths", "diffs"};
    const char *k;
    json_t *v;
    size_t i = 0;
    int in_order = json_object_size(js) == 6;
    json_object_foreach(js, k, v)
    {
        in_order = in_order && i < 6 && strcmp(k, keys[i]) == 0;
        i++;
    }
    ok(in_order, "the top-level keys: route, total, kept, top_paths, noise_paths, diffs");
    static const char *const mkeys[] = {"request_id", "ts",          "method", "path",
                                        "status",     "differences", "more"};
    i = 0;
    in_order = json_object_size(m) == 7;
    json_object_foreach(m, k, v)
    {
        in_order = in_order && i < 7 && strcmp(k, mkeys[i]) == 0;
        i++;
    }
    ok(in_order, "a mismatch's keys: request_id, ts, method, path, status, differences, more");
    json_decref(js);

    /* ts 0 is now */
    sf_diffs_record(d, "now", "r", 0, "GET", "/", 200, 200, items, 1, 0);
    js = sf_diffs_json(d, "now", 0, NULL, 0);
    const char *ts = str(json_array_get(get(js, "diffs"), 0), "ts");
    ok(ts != NULL && strlen(ts) == 24 && strncmp(ts, "20", 2) == 0 && ts[23] == 'Z' &&
           strcmp(ts, "2024") > 0,
       "ts_ms 0 records the current time (%s)", ts ? ts : "NULL");
    json_decref(js);
    sf_diffs_destroy(d);
}

static void test_ring(void)
{
    sf_diffs *d = sf_diffs_create();
    for (int i = 0; i < SF_DIFFS_RING + 50; i++)
        record_one(d, "orders", i);
    json_t *js = sf_diffs_json(d, "orders", 0, NULL, 0);
    const json_t *list = get(js, "diffs");
    is(num(js, "total"), SF_DIFFS_RING + 50, "total counts every mismatch since start");
    is(num(js, "kept"), SF_DIFFS_RING, "kept is bounded by the ring");
    is((long long)json_array_size(list), SF_DIFFS_RING, "limit 0: every kept mismatch");
    char want[32];
    int order = 1;
    for (size_t i = 0; i < json_array_size(list); i++) {
        snprintf(want, sizeof(want), "req-%d", SF_DIFFS_RING + 49 - (int)i);
        order = order && strcmp(str(json_array_get(list, i), "request_id"), want) == 0;
    }
    ok(order, "newest first, the oldest 50 dropped");
    is_str(str(json_array_get(list, 0), "path"), "/api/items/149", "the newest is first");
    json_decref(js);

    js = sf_diffs_json(d, "orders", 5, NULL, 0);
    list = get(js, "diffs");
    ok(json_array_size(list) == 5 &&
           strcmp(str(json_array_get(list, 0), "request_id"), "req-149") == 0 &&
           strcmp(str(json_array_get(list, 4), "request_id"), "req-145") == 0,
       "limit 5: the 5 newest, newest first");
    is(num(js, "kept"), SF_DIFFS_RING, "a limit does not change kept");
    json_decref(js);
    js = sf_diffs_json(d, "orders", 1000, NULL, 0);
    is((long long)json_array_size(get(js, "diffs")), SF_DIFFS_RING,
       "a limit above the ring gives what is kept");
    json_decref(js);

    /* a partly filled ring */
    sf_diffs *d2 = sf_diffs_create();
    for (int i = 0; i < 3; i++)
        record_one(d2, "x", i);
    js = sf_diffs_json(d2, "x", 0, NULL, 0);
    list = get(js, "diffs");
    ok(json_array_size(list) == 3 &&
           strcmp(str(json_array_get(list, 0), "request_id"), "req-2") == 0 &&
           strcmp(str(json_array_get(list, 2), "request_id"), "req-0") == 0,
       "a ring not yet full: newest first");
    json_decref(js);
    sf_diffs_destroy(d2);
    sf_diffs_destroy(d);
}

static void test_routes_apart(void)
{
    sf_diffs *d = sf_diffs_create();
    for (int i = 0; i < 7; i++)
        record_one(d, "orders", i);
    for (int i = 100; i < 103; i++)
        record_one(d, "users", i);
    json_t *a = sf_diffs_json(d, "orders", 0, NULL, 0), *b = sf_diffs_json(d, "users", 0, NULL, 0);
    json_t *c = sf_diffs_json(d, "payments", 0, NULL, 0);
    is(num(a, "total"), 7, "orders: its own total");
    is(num(b, "total"), 3, "users: its own total");
    is_str(str(json_array_get(get(b, "diffs"), 0), "request_id"), "req-102",
           "users: its own newest mismatch");
    is_str(str(json_array_get(get(a, "diffs"), 0), "request_id"), "req-6",
           "orders: its own newest mismatch");
    ok(num(c, "total") == 0 && json_array_size(get(c, "diffs")) == 0,
       "a route without mismatches is empty even when others have some");
    is_str(str(b, "route"), "users", "the JSON names the route asked for");
    json_decref(a);
    json_decref(b);
    json_decref(c);

    /* the bound on routes */
    char name[32];
    for (int i = 0; i < SF_DIFFS_ROUTES_MAX; i++) {
        snprintf(name, sizeof(name), "r%d", i);
        sf_diffs_record(d, name, "id", TS0, "GET", "/", 200, 200, NULL, 0, 0);
    }
    /* orders and users took two: the last two are over the bound */
    is((long long)sf_diffs_dropped(d), 2, "mismatches of routes over the bound are dropped");
    snprintf(name, sizeof(name), "r%d", SF_DIFFS_ROUTES_MAX - 3);
    a = sf_diffs_json(d, name, 0, NULL, 0);
    is(num(a, "total"), 1, "the last route under the bound is kept");
    json_decref(a);
    snprintf(name, sizeof(name), "r%d", SF_DIFFS_ROUTES_MAX - 1);
    a = sf_diffs_json(d, name, 0, NULL, 0);
    is(num(a, "total"), 0, "a route over the bound has nothing");
    json_decref(a);
    record_one(d, "orders", 7);
    a = sf_diffs_json(d, "orders", 0, NULL, 0);
    is(num(a, "total"), 8, "routes already kept go on recording at the bound");
    json_decref(a);
    sf_diffs_destroy(d);
}

static long long top_count(const json_t *js, const char *path)
{
    size_t i;
    const json_t *v;
    json_array_foreach(get(js, "top_paths"), i, v)
    {
        if (strcmp(str(v, "path"), path) == 0)
            return num(v, "count");
    }
    return -1;
}

static void test_top_paths(void)
{
    sf_diffs *d = sf_diffs_create();
    /* /a in every record, /b in every second, /c in every third; /z listed past the kept items */
    for (int i = 0; i < 12; i++) {
        sf_diff_item items[SF_DIFFS_ITEMS_MAX + 1];
        size_t n = 0;
        items[n++] = (sf_diff_item){"/a", "1", "2"};
        if (i % 2 == 0)
            items[n++] = (sf_diff_item){"/b", "1", "2"};
        if (i % 3 == 0)
            items[n++] = (sf_diff_item){"/c", "1", "2"};
        while (n < SF_DIFFS_ITEMS_MAX)
            items[n++] = (sf_diff_item){"/a", "1", "2"};
        if (i == 0)
            items[n++] = (sf_diff_item){"/z", "1", "2"};
        sf_diffs_record(d, "orders", "id", TS0, "GET", "/", 200, 200, items, i == 0 ? n : 3, 0);
    }
    json_t *js = sf_diffs_json(d, "orders", 0, NULL, 0);
    const json_t *top = get(js, "top_paths");
    is_str(str(json_array_get(top, 0), "path"), "/a", "the most frequent path first");
    is(top_count(js, "/b"), 6, "/b counted in every record that lists it");
    is(top_count(js, "/c"), 4, "/c counted likewise");
    is(top_count(js, "/z"), 1, "a path listed but not kept is still counted");
    ok(strcmp(str(json_array_get(top, 1), "path"), "/b") == 0 &&
           strcmp(str(json_array_get(top, 2), "path"), "/c") == 0,
       "by count, descending");
    json_decref(js);
    sf_diffs_destroy(d);

    /* ties by path; the bound on distinct paths and "(other)" */
    d = sf_diffs_create();
    char p[32];
    for (int i = 0; i < SF_DIFFS_PATHS_MAX + 40; i++) {
        snprintf(p, sizeof(p), "/f%03d", i);
        sf_diff_item it = {p, "1", "2"};
        for (int k = 0; k < (i < 3 ? 5 : 1); k++)
            sf_diffs_record(d, "wide", "id", TS0, "GET", "/", 200, 200, &it, 1, 0);
    }
    /* a path counted before the bound was reached is still counted after */
    sf_diff_item again = {"/f000", "1", "2"};
    sf_diffs_record(d, "wide", "id", TS0, "GET", "/", 200, 200, &again, 1, 0);
    js = sf_diffs_json(d, "wide", 0, NULL, 0);
    top = get(js, "top_paths");
    is((long long)json_array_size(top), SF_DIFFS_TOP, "top_paths holds at most SF_DIFFS_TOP");
    is_str(str(json_array_get(top, 0), "path"), "(other)",
           "paths past the bound count under (other)");
    is(top_count(js, "(other)"), 40, "(other) counts the 40 paths past the bound");
    is_str(str(json_array_get(top, 1), "path"), "/f000", "then the most frequent path");
    is(top_count(js, "/f000"), 6, "a known path is counted past the bound");
    ok(strcmp(str(json_array_get(top, 2), "path"), "/f001") == 0 &&
           strcmp(str(json_array_get(top, 3), "path"), "/f002") == 0 &&
           strcmp(str(json_array_get(top, 4), "path"), "/f003") == 0 &&
           strcmp(str(json_array_get(top, 5), "path"), "/f004") == 0,
       "equal counts in path order");
    is(top_count(js, "/f300"), -1, "a path past the bound is not listed by name");
    is(num(js, "total"), 3 * 5 + SF_DIFFS_PATHS_MAX + 40 - 3 + 1, "every record counted");
    json_decref(js);
    sf_diffs_destroy(d);
}

static void test_secrets(void)
{
    static const char secret[] = "Bearer s3cr3t-t0k3n";
    sf_diffs *d = sf_diffs_create();
    sf_diff_item items[] = {
        {"header:authorization", secret, "Bearer other-s3cr3t"},
        {"header:Cookie", "session=s3cr3t", "session=s3cr3t2"},
        {"header:set-cookie", "sid=s3cr3t; HttpOnly", NULL},
        {"HEADER:PROXY-AUTHORIZATION", "Basic s3cr3t", "Basic s3cr3t"},
        {"header:x-cache", "HIT", "MISS"},
    };
    sf_diffs_record(d, "orders", "id", TS0, "GET", "/", 200, 200, items, 5, 0);
    json_t *js = sf_diffs_json(d, "orders", 0, NULL, 0);
    char *text = dump(js);
    if (!ok(text != NULL && strstr(text, "s3cr3t") == NULL,
            "no Authorization, Cookie, Set-Cookie or Proxy-Authorization value anywhere"))
        diag("%s", text ? text : "NULL");
    const json_t *list = get(json_array_get(get(js, "diffs"), 0), "differences");
    int redacted = json_array_size(list) == 5;
    for (size_t i = 0; i < 4 && redacted; i++)
        redacted = strcmp(str(json_array_get(list, i), "legacy"), SF_DIFFS_REDACTED) == 0 &&
                   strcmp(str(json_array_get(list, i), "function"), SF_DIFFS_REDACTED) == 0;
    ok(redacted, "their paths are kept with (redacted) as both values");
    is_str(str(json_array_get(list, 1), "path"), "header:Cookie",
           "a redacted path is kept as given");
    is_str(str(json_array_get(list, 4), "legacy"), "HIT", "another header's values are kept");
    is(top_count(js, "header:authorization"), 1, "a redacted path still counts in top_paths");
    free(text);
    json_decref(js);
    sf_diffs_destroy(d);
}

/* Is s valid UTF-8 to jansson (it refuses anything else)? */
static int valid_json_string(const char *s)
{
    json_t *j = json_string(s);
    json_decref(j);
    return j != NULL;
}

static void test_truncation(void)
{
    sf_diffs *d = sf_diffs_create();
    char big[4096], path[2048], mixed[SF_DIFFS_VALUE_MAX + 8];
    memset(big, 'v', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    path[0] = '/';
    memset(path + 1, 'p', sizeof(path) - 2);
    path[sizeof(path) - 1] = '\0';
    /* a 2-byte character across the value bound: it must go whole or not at all */
    memset(mixed, 'a', SF_DIFFS_VALUE_MAX - 1);
    memcpy(mixed + SF_DIFFS_VALUE_MAX - 1, "\xc3\xa9xyz", 6);
    sf_diff_item items[] = {
        {"/long", big, "short"},
        {"/cut", mixed, "\xff\xfe bad \xc3"},
        {big, "1", "2"},
    };
    sf_diffs_record(d, "orders", big, TS0, big, path, 200, 200, items, 3, 0);
    json_t *js = sf_diffs_json(d, "orders", 0, NULL, 0);
    const json_t *m = json_array_get(get(js, "diffs"), 0);
    ok(m != NULL, "a record of oversized strings renders as JSON");
    const json_t *list = get(m, "differences");
    const char *lv = str(json_array_get(list, 0), "legacy");
    ok(lv != NULL && strlen(lv) == SF_DIFFS_VALUE_MAX + 3 &&
           strcmp(lv + SF_DIFFS_VALUE_MAX, "\xe2\x80\xa6") == 0,
       "a long value is cut at %d bytes and marked with an ellipsis", SF_DIFFS_VALUE_MAX);
    const char *cv = str(json_array_get(list, 1), "legacy");
    ok(cv != NULL && strlen(cv) == SF_DIFFS_VALUE_MAX - 1 + 3 &&
           strncmp(cv + SF_DIFFS_VALUE_MAX - 1, "\xe2\x80\xa6", 3) == 0,
       "a cut never splits a UTF-8 character");
    is_str(str(json_array_get(list, 1), "function"), "?? bad ?", "invalid UTF-8 bytes become '?'");
    const char *dp = str(json_array_get(list, 2), "path");
    ok(dp != NULL && strlen(dp) == SF_DIFFS_DPATH_MAX + 3, "a long differing path is cut");
    const char *rp = str(m, "path");
    ok(rp != NULL && strlen(rp) == SF_DIFFS_REQPATH_MAX + 3 && rp[0] == '/',
       "the request path is cut at %d bytes", SF_DIFFS_REQPATH_MAX);
    ok(strlen(str(m, "request_id")) == SF_DIFFS_ID_MAX + 3 &&
           strlen(str(m, "method")) == SF_DIFFS_METHOD_MAX + 3,
       "request id and method are bounded");
    ok(valid_json_string(lv) && valid_json_string(cv), "what is kept is valid UTF-8");
    json_decref(js);

    /* many paths: the first SF_DIFFS_ITEMS_MAX kept, the rest counted in more */
    sf_diff_item many[SF_DIFFS_ITEMS_MAX + 8];
    char names[SF_DIFFS_ITEMS_MAX + 8][16];
    for (int i = 0; i < SF_DIFFS_ITEMS_MAX + 8; i++) {
        snprintf(names[i], sizeof(names[i]), "/k%d", i);
        many[i] = (sf_diff_item){names[i], "1", "2"};
    }
    sf_diffs_record(d, "many", "id", TS0, "GET", "/", 200, 200, many, SF_DIFFS_ITEMS_MAX + 8, 5);
    js = sf_diffs_json(d, "many", 0, NULL, 0);
    m = json_array_get(get(js, "diffs"), 0);
    is((long long)json_array_size(get(m, "differences")), SF_DIFFS_ITEMS_MAX,
       "at most SF_DIFFS_ITEMS_MAX differences are kept");
    is(num(m, "more"), 8 + 5, "more: the paths not kept plus those the engine did not list");
    is_str(str(json_array_get(get(m, "differences"), 0), "path"), "/k0", "the first ones kept");
    json_decref(js);

    /* the byte budget: 32 full-size values would be ~16 KiB */
    sf_diff_item fat[SF_DIFFS_ITEMS_MAX];
    for (int i = 0; i < SF_DIFFS_ITEMS_MAX; i++)
        fat[i] = (sf_diff_item){names[i], big, big};
    sf_diffs_record(d, "fat", "id", TS0, "GET", "/", 200, 200, fat, SF_DIFFS_ITEMS_MAX, 0);
    js = sf_diffs_json(d, "fat", 0, NULL, 0);
    m = json_array_get(get(js, "diffs"), 0);
    size_t kept = json_array_size(get(m, "differences"));
    size_t per = 2 * (SF_DIFFS_VALUE_MAX + 4) + strlen("/k10") + 1;
    ok(kept > 0 && kept < SF_DIFFS_ITEMS_MAX && kept * per <= SF_DIFFS_ITEM_BYTES + per &&
           (size_t)num(m, "more") == SF_DIFFS_ITEMS_MAX - kept,
       "a record's values are bounded in bytes (%zu of %d kept, the rest in more)", kept,
       SF_DIFFS_ITEMS_MAX);
    json_decref(js);

    /* one huge item is still kept (cut): a record always shows its first difference */
    sf_diffs_record(d, "one", "id", TS0, "GET", "/", 200, 200, fat, 1, 0);
    js = sf_diffs_json(d, "one", 0, NULL, 0);
    is((long long)json_array_size(get(json_array_get(get(js, "diffs"), 0), "differences")), 1,
       "the first difference is always kept");
    json_decref(js);

    /* NULL strings */
    sf_diff_item nul = {NULL, NULL, NULL};
    sf_diffs_record(d, "nulls", NULL, TS0, NULL, NULL, 0, 0, &nul, 1, 0);
    js = sf_diffs_json(d, "nulls", 0, NULL, 0);
    m = json_array_get(get(js, "diffs"), 0);
    ok(m != NULL && strcmp(str(m, "request_id"), "") == 0 && strcmp(str(m, "path"), "") == 0 &&
           json_is_null(get(json_array_get(get(m, "differences"), 0), "legacy")),
       "NULL strings are stored empty, NULL values as null");
    json_decref(js);

    /* a route name or noise path that is not UTF-8 still renders */
    static const char *const noise[] = {"/ok", "/bad\xff"};
    js = sf_diffs_json(d, "bad\xfe", 0, noise, 2);
    ok(js != NULL && strcmp(str(js, "route"), "bad?") == 0 &&
           strcmp(json_string_value(json_array_get(get(js, "noise_paths"), 1)), "/bad?") == 0,
       "a route name or noise path that is not UTF-8 is cleaned");
    json_decref(js);
    sf_diffs_destroy(d);
}

int main(void)
{
    test_empty();
    test_shape();
    test_ring();
    test_routes_apart();
    test_top_paths();
    test_secrets();
    test_truncation();
    return done_testing();
}
