/* The reload log's table diff: each kind of change gives its exact line, several changes come in
 * a stable order, an unchanged (or only reformatted) file gives none, and header values never
 * show. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "diff.h"
#include "tap.h"
#include "table.h"

static char dir[PATH_MAX];

#define LEG      "legacy: http://127.0.0.1:8081\n"
#define F_ORDERS "  orders: http://127.0.0.1:8082\n"
#define F_CATALOG                                                                                  \
    "  catalog: {url: 'https://catalog.example.net', timeout: 2s, headers: {x-key: "               \
    "'secret-one'}}\n"
#define FNS "functions:\n" F_ORDERS F_CATALOG
#define R_ORDERS                                                                                   \
    "  - name: orders\n"                                                                           \
    "    match: {path: /api/orders, methods: [GET, POST]}\n"                                       \
    "    function: orders\n"                                                                       \
    "    cutover: 10\n"
#define R_CATALOG                                                                                  \
    "  - name: catalog\n"                                                                          \
    "    match: {path: /api/catalog}\n"                                                            \
    "    function: catalog\n"                                                                      \
    "    cutover: 100\n"
#define BASE LEG FNS "routes:\n" R_ORDERS R_CATALOG
/* orders with an extra line (key: value at route level) */
#define ORDERS_WITH(extra) R_ORDERS "    " extra "\n"

typedef struct {
    const char *name;
    const char *old, *new;
    const char *want[16]; /* NULL-terminated */
} diff_case;

static const diff_case cases[] = {
    {"no change", BASE, BASE, {NULL}},
    {"reformatted only: comments, flow vs block, method order",
     "# the routes\n" LEG FNS "routes:\n"
     "  - name: orders\n"
     "    match:\n"
     "      path: /api/orders   # prefix\n"
     "      methods: [POST, GET]\n"
     "    function: orders\n"
     "    cutover: 10.00\n" R_CATALOG,
     BASE,
     {NULL}},
    {"legacy URL",
     BASE,
     "legacy: http://10.0.0.9:8081\n" FNS "routes:\n" R_ORDERS R_CATALOG,
     {"legacy: http://127.0.0.1:8081 -> http://10.0.0.9:8081", NULL}},

    /* functions */
    {"function added",
     BASE,
     LEG FNS "  users: http://127.0.0.1:8090/fn\n"
             "routes:\n" R_ORDERS R_CATALOG,
     {"function added: users (http://127.0.0.1:8090/fn)", NULL}},
    {"function removed",
     LEG FNS "  users: http://127.0.0.1:8090\n"
             "routes:\n" R_ORDERS R_CATALOG,
     BASE,
     {"function removed: users", NULL}},
    {"function url",
     BASE,
     LEG "functions:\n  orders: http://127.0.0.1:9092\n" F_CATALOG "routes:\n" R_ORDERS R_CATALOG,
     {"function orders: url http://127.0.0.1:8082 -> http://127.0.0.1:9092", NULL}},
    {"function timeout",
     BASE,
     LEG "functions:\n" F_ORDERS
         "  catalog: {url: 'https://catalog.example.net', timeout: 5s, headers: {x-key: "
         "'secret-one'}}\n"
         "routes:\n" R_ORDERS R_CATALOG,
     {"function catalog: timeout 2s -> 5s", NULL}},
    {"function timeout to default and from milliseconds",
     LEG "functions:\n"
         "  orders: {url: 'http://127.0.0.1:8082', timeout: 250ms}\n" F_CATALOG
         "routes:\n" R_ORDERS R_CATALOG,
     LEG "functions:\n" F_ORDERS
         "  catalog: {url: 'https://catalog.example.net', headers: {x-key: 'secret-one'}}\n"
         "routes:\n" R_ORDERS R_CATALOG,
     {"function orders: timeout 250ms -> default", "function catalog: timeout 2s -> default",
      NULL}},
    {"function header value changed: named, value not shown",
     BASE,
     LEG "functions:\n" F_ORDERS
         "  catalog: {url: 'https://catalog.example.net', timeout: 2s, headers: {x-key: "
         "'secret-two'}}\n"
         "routes:\n" R_ORDERS R_CATALOG,
     {"function catalog: headers changed", NULL}},
    {"function header added",
     BASE,
     LEG "functions:\n" F_ORDERS
         "  catalog: {url: 'https://catalog.example.net', timeout: 2s, headers: {x-key: "
         "'secret-one', x-other: 'secret-three'}}\n"
         "routes:\n" R_ORDERS R_CATALOG,
     {"function catalog: headers changed", NULL}},
    {"function header name case only: same header",
     BASE,
     LEG "functions:\n" F_ORDERS
         "  catalog: {url: 'https://catalog.example.net', timeout: 2s, headers: {X-Key: "
         "'secret-one'}}\n"
         "routes:\n" R_ORDERS R_CATALOG,
     {NULL}},
    {"function tls",
     BASE,
     LEG "functions:\n" F_ORDERS
         "  catalog: {url: 'https://catalog.example.net', timeout: 2s, headers: {x-key: "
         "'secret-one'}, tls: {verify: false}}\n"
         "routes:\n" R_ORDERS R_CATALOG,
     {"function catalog: tls changed", NULL}},

    /* routes */
    {"route added",
     BASE,
     BASE "  - name: users\n"
          "    match: {path: /api/users}\n"
          "    function: orders\n"
          "    cutover: 25\n",
     {"route added: users (cutover 25%)", NULL}},
    {"route added with decimal cutovers",
     BASE,
     BASE "  - name: users\n"
          "    match: {path: /api/users}\n"
          "    function: orders\n"
          "    cutover: 12.5\n"
          "  - name: tiny\n"
          "    match: {path: /api/tiny}\n"
          "    function: orders\n"
          "    cutover: 0.01\n"
          "  - name: none\n"
          "    match: {path: /api/none}\n"
          "    function: orders\n"
          "    cutover: 0\n",
     {"route added: users (cutover 12.5%)", "route added: tiny (cutover 0.01%)",
      "route added: none (cutover 0%)", NULL}},
    {"route removed", BASE, LEG FNS "routes:\n" R_CATALOG, {"route removed: orders", NULL}},
    {"cutover raised",
     BASE,
     LEG FNS "routes:\n"
             "  - name: orders\n"
             "    match: {path: /api/orders, methods: [GET, POST]}\n"
             "    function: orders\n"
             "    cutover: 25\n" R_CATALOG,
     {"orders: cutover 10% -> 25%", NULL}},
    {"cutover with decimals",
     LEG FNS "routes:\n" R_ORDERS "  - name: catalog\n"
             "    match: {path: /api/catalog}\n"
             "    function: catalog\n"
             "    cutover: 0.01\n",
     LEG FNS "routes:\n" R_ORDERS "  - name: catalog\n"
             "    match: {path: /api/catalog}\n"
             "    function: catalog\n"
             "    cutover: 33.33\n",
     {"catalog: cutover 0.01% -> 33.33%", NULL}},
    {"match path",
     BASE,
     LEG FNS "routes:\n"
             "  - name: orders\n"
             "    match: {path: /api/v2/orders, methods: [GET, POST]}\n"
             "    function: orders\n"
             "    cutover: 10\n" R_CATALOG,
     {"orders: match changed", NULL}},
    {"match path to regex",
     BASE,
     LEG FNS "routes:\n"
             "  - name: orders\n"
             "    match: {regex: '^/api/orders', methods: [GET, POST]}\n"
             "    function: orders\n"
             "    cutover: 10\n" R_CATALOG,
     {"orders: match changed", NULL}},
    {"match methods",
     BASE,
     LEG FNS "routes:\n"
             "  - name: orders\n"
             "    match: {path: /api/orders, methods: [GET]}\n"
             "    function: orders\n"
             "    cutover: 10\n" R_CATALOG,
     {"orders: match changed", NULL}},
    {"match methods removed (all methods)",
     BASE,
     LEG FNS "routes:\n"
             "  - name: orders\n"
             "    match: {path: /api/orders}\n"
             "    function: orders\n"
             "    cutover: 10\n" R_CATALOG,
     {"orders: match changed", NULL}},
    {"match headers",
     BASE,
     LEG FNS "routes:\n"
             "  - name: orders\n"
             "    match: {path: /api/orders, methods: [GET, POST], headers: {x-tenant: '^beta-'}}\n"
             "    function: orders\n"
             "    cutover: 10\n" R_CATALOG,
     {"orders: match changed", NULL}},
    {"match header pattern",
     LEG FNS "routes:\n"
             "  - name: orders\n"
             "    match: {path: /api/orders, methods: [GET, POST], headers: {x-tenant: '^beta-'}}\n"
             "    function: orders\n"
             "    cutover: 10\n" R_CATALOG,
     LEG FNS
     "routes:\n"
     "  - name: orders\n"
     "    match: {path: /api/orders, methods: [GET, POST], headers: {x-tenant: '^gamma-'}}\n"
     "    function: orders\n"
     "    cutover: 10\n" R_CATALOG,
     {"orders: match changed", NULL}},
    {"function of a route",
     BASE,
     LEG FNS "routes:\n"
             "  - name: orders\n"
             "    match: {path: /api/orders, methods: [GET, POST]}\n"
             "    function: catalog\n"
             "    cutover: 10\n" R_CATALOG,
     {"orders: function orders -> catalog", NULL}},
    {"sticky set",
     BASE,
     LEG FNS "routes:\n" ORDERS_WITH("sticky: header:x-user-id") R_CATALOG,
     {"orders: sticky none -> header:x-user-id", NULL}},
    {"sticky kind",
     LEG FNS "routes:\n" ORDERS_WITH("sticky: header:x-user-id") R_CATALOG,
     LEG FNS "routes:\n" ORDERS_WITH("sticky: cookie:session") R_CATALOG,
     {"orders: sticky header:x-user-id -> cookie:session", NULL}},
    {"sticky client_ip to none",
     LEG FNS "routes:\n" ORDERS_WITH("sticky: client_ip") R_CATALOG,
     LEG FNS "routes:\n" ORDERS_WITH("sticky: none") R_CATALOG,
     {"orders: sticky client_ip -> none", NULL}},
    {"explicit defaults: no change",
     BASE,
     LEG FNS "routes:\n" R_ORDERS "    sticky: none\n    fallback: false\n" R_CATALOG,
     {NULL}},
    {"fallback",
     BASE,
     LEG FNS "routes:\n" ORDERS_WITH("fallback: true") R_CATALOG,
     {"orders: fallback off -> on", NULL}},
    {"fallback off",
     LEG FNS "routes:\n" ORDERS_WITH("fallback: true") R_CATALOG,
     BASE,
     {"orders: fallback on -> off", NULL}},
    {"rewrite added",
     BASE,
     LEG FNS "routes:\n" ORDERS_WITH("rewrite: {regex: '^/api/orders(.*)$', to: '/orders$1'}")
         R_CATALOG,
     {"orders: rewrite changed", NULL}},
    {"rewrite target",
     LEG FNS "routes:\n" ORDERS_WITH("rewrite: {regex: '^/api/orders(.*)$', to: '/orders$1'}")
         R_CATALOG,
     LEG FNS "routes:\n" ORDERS_WITH("rewrite: {regex: '^/api/orders(.*)$', to: '/v2$1'}")
         R_CATALOG,
     {"orders: rewrite changed", NULL}},
    {"shadow added",
     BASE,
     LEG FNS "routes:\n" ORDERS_WITH("shadow: {percent: 100}") R_CATALOG,
     {"orders: shadow changed", NULL}},
    {"shadow percent",
     LEG FNS "routes:\n" ORDERS_WITH("shadow: {percent: 100}") R_CATALOG,
     LEG FNS "routes:\n" ORDERS_WITH("shadow: {percent: 50}") R_CATALOG,
     {"orders: shadow changed", NULL}},
    {"shadow compare ignore",
     LEG FNS "routes:\n" ORDERS_WITH("shadow: {percent: 100, compare: {ignore: [/a, /b]}}")
         R_CATALOG,
     LEG FNS "routes:\n" ORDERS_WITH("shadow: {percent: 100, compare: {ignore: [/a, /c]}}")
         R_CATALOG,
     {"orders: shadow changed", NULL}},
    {"shadow lists in another order: no change",
     LEG FNS "routes:\n" ORDERS_WITH(
         "shadow: {percent: 100, methods: [GET, HEAD], compare: {ignore: [/a, /b]}}") R_CATALOG,
     LEG FNS "routes:\n" ORDERS_WITH(
         "shadow: {percent: 100, methods: [HEAD, GET], compare: {ignore: [/b, /a]}}") R_CATALOG,
     {NULL}},
    {"guard added",
     BASE,
     LEG FNS "routes:\n" ORDERS_WITH("guard: {max_error_ratio: 0.05}") R_CATALOG,
     {"orders: guard changed", NULL}},
    {"guard ratio",
     LEG FNS "routes:\n" ORDERS_WITH("guard: {max_error_ratio: 0.05}") R_CATALOG,
     LEG FNS "routes:\n" ORDERS_WITH("guard: {max_error_ratio: 0.1}") R_CATALOG,
     {"orders: guard changed", NULL}},
    {"guard dry_run",
     LEG FNS "routes:\n" ORDERS_WITH("guard: {max_error_ratio: 0.05}") R_CATALOG,
     LEG FNS "routes:\n" ORDERS_WITH("guard: {max_error_ratio: 0.05, dry_run: true}") R_CATALOG,
     {"orders: guard changed", NULL}},

    /* order */
    {"routes reordered", BASE, LEG FNS "routes:\n" R_CATALOG R_ORDERS, {"routes reordered", NULL}},
    {"a route inserted before: not a reorder",
     BASE,
     LEG FNS "routes:\n"
             "  - name: first\n"
             "    match: {path: /first}\n"
             "    function: orders\n"
             "    cutover: 100\n" R_ORDERS R_CATALOG,
     {"route added: first (cutover 100%)", NULL}},
    {"the first route removed: not a reorder",
     LEG FNS "routes:\n"
             "  - name: first\n"
             "    match: {path: /first}\n"
             "    function: orders\n"
             "    cutover: 100\n" R_ORDERS R_CATALOG,
     BASE,
     {"route removed: first", NULL}},

    /* several at once: legacy, functions (removed, then new file order), routes (removed,
     * then new file order), reorder last */
    {"several changes in a stable order",
     LEG FNS "  users: http://127.0.0.1:8090\n"
             "routes:\n" R_ORDERS R_CATALOG "  - name: users\n"
             "    match: {path: /api/users}\n"
             "    function: users\n"
             "    cutover: 5\n",
     "legacy: https://monolith.example.net\n"
     "functions:\n"
     "  catalog: {url: 'https://catalog2.example.net', timeout: 3s, headers: {x-key: "
     "'secret-two'}}\n"
     "  orders: http://127.0.0.1:8082\n"
     "  search: http://127.0.0.1:8093\n"
     "routes:\n"
     "  - name: catalog\n"
     "    match: {path: /api/catalog, methods: [GET]}\n"
     "    function: orders\n"
     "    cutover: 50\n"
     "    fallback: true\n"
     "  - name: search\n"
     "    match: {path: /api/search}\n"
     "    function: search\n"
     "    cutover: 1.5\n"
     "  - name: orders\n"
     "    match: {path: /api/orders, methods: [GET, POST]}\n"
     "    function: orders\n"
     "    cutover: 10\n"
     "    sticky: cookie:sid\n",
     {"legacy: http://127.0.0.1:8081 -> https://monolith.example.net", "function removed: users",
      "function catalog: url https://catalog.example.net -> "
      "https://catalog2.example.net",
      "function catalog: timeout 2s -> 3s", "function catalog: headers changed",
      "function added: search (http://127.0.0.1:8093)", "route removed: users",
      "catalog: cutover 100% -> 50%", "catalog: match changed",
      "catalog: function catalog -> orders", "catalog: fallback off -> on",
      "route added: search (cutover 1.5%)", "orders: sticky none -> cookie:sid", "routes reordered",
      NULL}},
};

static int write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        return -1;
    fputs(text, f);
    return fclose(f);
}

static sf_route_table *load(const char *name, const char *text)
{
    char path[PATH_MAX + 32];
    sf_diags d;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (write_file(path, text) < 0) {
        diag("cannot write %s", path);
        return NULL;
    }
    sf_diags_init(&d);
    sf_route_table *t = sf_table_load(path, &d);
    if (t == NULL) {
        diag("%s does not load:", name);
        sf_diags_print(&d, stderr);
    }
    sf_diags_dispose(&d);
    unlink(path);
    return t;
}

/* Compares the lines, names the first difference, and checks that no secret header value
 * (every test secret starts with "secret-") appears. */
static void check_lines(const char *name, char **lines, size_t n, const char *const *want)
{
    size_t nwant = 0;
    while (want[nwant] != NULL)
        nwant++;
    int same = n == nwant;
    for (size_t i = 0; same && i < n; i++)
        same = strcmp(lines[i], want[i]) == 0;
    if (!ok(same, "%s: %zu line(s) as expected", name, nwant)) {
        for (size_t i = 0; i < n; i++)
            diag("got  [%zu] %s", i, lines[i]);
        for (size_t i = 0; i < nwant; i++)
            diag("want [%zu] %s", i, want[i]);
    }
    int leak = 0;
    for (size_t i = 0; i < n; i++)
        if (strstr(lines[i], "secret-") != NULL)
            leak = 1;
    ok(!leak, "%s: no header value in the lines", name);
    if (nwant == 0)
        ok(lines == NULL, "%s: no change gives a NULL array", name);
}

static void run_case(const diff_case *c)
{
    sf_route_table *a = load("old.yaml", c->old), *b = load("new.yaml", c->new);
    if (!ok(a != NULL && b != NULL, "%s: both tables load", c->name))
        goto out;
    /* a sentinel shows whether *lines is set even when nothing changed */
    static char *unset[1];
    char **lines = unset;
    size_t n = sf_table_diff(a, b, &lines);
    if (!ok(lines != unset, "%s: *lines is set", c->name))
        goto out;
    check_lines(c->name, lines, n, c->want);
    sf_diff_free(lines, n);
out:
    sf_table_unref(a);
    sf_table_unref(b);
}

static void test_swapped_direction(void)
{
    sf_route_table *a = load("old.yaml", BASE),
                   *b = load("new.yaml", LEG FNS "  users: http://127.0.0.1:8090\n"
                                                 "routes:\n" R_CATALOG);
    char **lines = NULL;
    size_t n;
    if (!ok(a != NULL && b != NULL, "reverse: both tables load"))
        goto out;
    n = sf_table_diff(a, b, &lines);
    check_lines("forward", lines, n,
                (const char *const[]){"function added: users (http://127.0.0.1:8090)",
                                      "route removed: orders", NULL});
    sf_diff_free(lines, n);
    n = sf_table_diff(b, a, &lines);
    check_lines("reverse", lines, n,
                (const char *const[]){"function removed: users",
                                      "route added: orders (cutover 10%)", NULL});
    sf_diff_free(lines, n);
    n = sf_table_diff(a, a, &lines);
    check_lines("same table object", lines, n, (const char *const[]){NULL});
    sf_diff_free(lines, n);
out:
    sf_table_unref(a);
    sf_table_unref(b);
}

/* A first load compares against nothing: everything is added, no legacy line. */
static void test_null_old(void)
{
    sf_route_table *b = load("new.yaml", BASE);
    char **lines = NULL;
    size_t n;
    if (!ok(b != NULL, "null old: table loads"))
        return;
    n = sf_table_diff(NULL, b, &lines);
    check_lines("null old", lines, n,
                (const char *const[]){"function added: orders (http://127.0.0.1:8082)",
                                      "function added: catalog (https://catalog.example.net)",
                                      "route added: orders (cutover 10%)",
                                      "route added: catalog (cutover 100%)", NULL});
    sf_diff_free(lines, n);
    n = sf_table_diff(NULL, NULL, &lines);
    check_lines("null both", lines, n, (const char *const[]){NULL});
    sf_diff_free(lines, n);
    sf_diff_free(NULL, 0);
    ok(1, "sf_diff_free accepts NULL");
    sf_table_unref(b);
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof(dir), "%s/test_diff.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL) {
        printf("Bail out! cannot make a test folder under /tmp\n");
        return 1;
    }
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        run_case(&cases[i]);
    test_swapped_direction();
    test_null_old();
    rmdir(dir);
    return done_testing();
}
