/* Cutover edits of routes.yaml: the exact bytes each edit leaves, the refusals (unknown route,
 * a file that does not load, a file changed underneath) and the atomic write's promises (mode,
 * symlink, no temp file left). */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "edit.h"
#include "table.h"
#include "tap.h"

static char dir[64];
static char file[96]; /* dir/routes.yaml */

#define HEAD                                                                                       \
    "legacy: http://127.0.0.1:8081\n"                                                              \
    "functions:\n"                                                                                 \
    "  orders: http://127.0.0.1:8082\n"                                                            \
    "routes:\n"
#define HEAD_CRLF                                                                                  \
    "legacy: http://127.0.0.1:8081\r\n"                                                            \
    "functions:\r\n"                                                                               \
    "  orders: http://127.0.0.1:8082\r\n"                                                          \
    "routes:\r\n"

static int put(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        return -1;
    size_t w = fwrite(text, 1, len, f);
    return fclose(f) == 0 && w == len ? 0 : -1;
}

static char *get(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t cap = 0, n = 0;
    *len = 0;
    if (f == NULL)
        return NULL;
    for (;;) {
        if (n == cap) {
            char *b = realloc(buf, cap = cap ? cap * 2 : 4096);
            if (b == NULL) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = b;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    fclose(f);
    *len = n;
    return buf;
}

/* Entries of folder other than routes.yaml and keep: leftovers. */
static int leftovers_in(const char *folder, const char *keep)
{
    DIR *d = opendir(folder);
    struct dirent *e;
    int n = 0;
    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
            strcmp(e->d_name, "routes.yaml") == 0 || (keep && strcmp(e->d_name, keep) == 0))
            continue;
        diag("left in the folder: %s", e->d_name);
        n++;
    }
    closedir(d);
    return n;
}

static int leftovers(const char *keep)
{
    return leftovers_in(dir, keep);
}

static int file_is(const char *path, const char *want, size_t want_len, const char *what)
{
    size_t len;
    char *got = get(path, &len);
    int pass = is_mem(got, len, want, want_len, "%s", what);
    free(got);
    return pass;
}

typedef struct {
    const char *name;
    const char *before;
    const char *route;
    uint32_t bp;
    const char *after;
    int had_key;
    uint32_t old_bp;
    const char *old_text;
} edit_case;

static const edit_case cases[] = {
    {"block: an integer value, its comment kept",
     HEAD "  - name: orders   # the first one\n"
          "    match: {path: /api/orders}\n"
          "    function: orders\n"
          "    cutover: 25        # a quarter\n"
          "    fallback: true\n",
     "orders", 3000,
     HEAD "  - name: orders   # the first one\n"
          "    match: {path: /api/orders}\n"
          "    function: orders\n"
          "    cutover: 30        # a quarter\n"
          "    fallback: true\n",
     1, 2500, "25"},
    {"block: a decimal value to a smaller one",
     HEAD "  - name: orders\n    match: {path: /a}\n    function: orders\n    cutover: 12.5\n",
     "orders", 1,
     HEAD "  - name: orders\n    match: {path: /a}\n    function: orders\n    cutover: 0.01\n", 1,
     1250, "12.5"},
    {"block: a double-quoted value stays double-quoted",
     HEAD "  - name: orders\n    cutover: \"25\"\n    match: {path: /a}\n    function: orders\n",
     "orders", 10000,
     HEAD "  - name: orders\n    cutover: \"100\"\n    match: {path: /a}\n    function: orders\n",
     1, 2500, "25"},
    {"block: a single-quoted value stays single-quoted",
     HEAD "  - name: orders\n    cutover: '25.50'\n    match: {path: /a}\n    function: orders\n",
     "orders", 750,
     HEAD "  - name: orders\n    cutover: '7.5'\n    match: {path: /a}\n    function: orders\n", 1,
     2550, "25.50"},
    {"block: a value on the line after its key",
     HEAD "  - name: orders\n    match: {path: /a}\n    function: orders\n    cutover:\n      5\n",
     "orders", 0,
     HEAD "  - name: orders\n    match: {path: /a}\n    function: orders\n    cutover:\n      0\n",
     1, 500, "5"},
    {"block: no cutover key, a route in the middle",
     HEAD "  - name: orders\n"
          "    match: {path: /a}\n"
          "    function: orders\n"
          "  - name: b\n"
          "    match: {path: /b}\n"
          "    function: orders\n",
     "orders", 1000,
     HEAD "  - name: orders\n"
          "    match: {path: /a}\n"
          "    function: orders\n"
          "    cutover: 10\n"
          "  - name: b\n"
          "    match: {path: /b}\n"
          "    function: orders\n",
     0, 0, ""},
    {"block: no key, the last route on a last line without a newline",
     HEAD "  - name: orders\n    match: {path: /a}\n    function: orders", "orders", 2500,
     HEAD "  - name: orders\n    match: {path: /a}\n    function: orders\n    cutover: 25", 0, 0,
     ""},
    {"block: no key, the last key's value is a nested block",
     HEAD "  - name: orders\n"
          "    function: orders\n"
          "    match:\n"
          "      path: /api/orders\n"
          "      methods:\n"
          "        - GET\n"
          "        - HEAD\n"
          "  - name: b\n"
          "    match: {path: /b}\n"
          "    function: orders\n",
     "orders", 5000,
     HEAD "  - name: orders\n"
          "    function: orders\n"
          "    match:\n"
          "      path: /api/orders\n"
          "      methods:\n"
          "        - GET\n"
          "        - HEAD\n"
          "    cutover: 50\n"
          "  - name: b\n"
          "    match: {path: /b}\n"
          "    function: orders\n",
     0, 0, ""},
    {"block: no key, the last key has a trailing comment",
     HEAD "  - name: orders\n"
          "    match: {path: /a}\n"
          "    function: orders    # cut over by hand: see the runbook\n"
          "  - name: b\n"
          "    match: {path: /b}\n"
          "    function: orders\n",
     "orders", 100,
     HEAD "  - name: orders\n"
          "    match: {path: /a}\n"
          "    function: orders    # cut over by hand: see the runbook\n"
          "    cutover: 1\n"
          "  - name: b\n"
          "    match: {path: /b}\n"
          "    function: orders\n",
     0, 0, ""},
    {"block: no key, comments and blank lines after the route stay after it",
     "# the routes of the shop\n"
     "\n" HEAD "\n"
     "  # orders first\n"
     "  - name: orders\n"
     "\n"
     "    match: {path: /a}   # prefix\n"
     "    # the function\n"
     "    function: orders\n"
     "\n"
     "    # end of orders\n"
     "\n"
     "  - name: b\n"
     "    match: {path: /b}\n"
     "    function: orders\n"
     "# the end\n",
     "orders", 3333,
     "# the routes of the shop\n"
     "\n" HEAD "\n"
     "  # orders first\n"
     "  - name: orders\n"
     "\n"
     "    match: {path: /a}   # prefix\n"
     "    # the function\n"
     "    function: orders\n"
     "    cutover: 33.33\n"
     "\n"
     "    # end of orders\n"
     "\n"
     "  - name: b\n"
     "    match: {path: /b}\n"
     "    function: orders\n"
     "# the end\n",
     0, 0, ""},
    {"block: no key, keys not on the dash line, deeper indentation",
     HEAD "-\n"
          "      name: orders\n"
          "      match: {path: /a}\n"
          "      function: orders\n"
          "# trailing comment at column 1\n",
     "orders", 2000,
     HEAD "-\n"
          "      name: orders\n"
          "      match: {path: /a}\n"
          "      function: orders\n"
          "      cutover: 20\n"
          "# trailing comment at column 1\n",
     0, 0, ""},
    {"block: no key, the last value is a folded scalar followed by blank lines",
     HEAD "  - name: orders\n"
          "    match: {path: /api/orders}\n"
          "    function: orders\n"
          "    rewrite:\n"
          "      regex: '^/api/orders(.*)$'\n"
          "      to: >-\n"
          "        /orders$1\n"
          "\n"
          "\n"
          "  - name: b\n"
          "    match: {path: /b}\n"
          "    function: orders\n",
     "orders", 500,
     HEAD "  - name: orders\n"
          "    match: {path: /api/orders}\n"
          "    function: orders\n"
          "    rewrite:\n"
          "      regex: '^/api/orders(.*)$'\n"
          "      to: >-\n"
          "        /orders$1\n"
          "    cutover: 5\n"
          "\n"
          "\n"
          "  - name: b\n"
          "    match: {path: /b}\n"
          "    function: orders\n",
     0, 0, ""},
    {"flow: no key, inserted before the closing brace",
     HEAD "  - { name: orders, match: {path: /a}, function: orders }\n", "orders", 2500,
     HEAD "  - { name: orders, match: {path: /a}, function: orders, cutover: 25 }\n", 0, 0, ""},
    {"flow: no key, a trailing comma and a comment",
     HEAD "  - {name: orders, match: {path: /a}, function: orders,}  # flow\n", "orders", 2500,
     HEAD "  - {name: orders, match: {path: /a}, function: orders, cutover: 25,}  # flow\n", 0, 0,
     ""},
    {"flow: no key, spread over lines, the last value a flow mapping",
     HEAD "  - { name: orders,\n"
          "      function: orders,\n"
          "      match: { path: /a }   # the path\n"
          "    }\n",
     "orders", 1000,
     HEAD "  - { name: orders,\n"
          "      function: orders,\n"
          "      match: { path: /a }, cutover: 10   # the path\n"
          "    }\n",
     0, 0, ""},
    {"flow: the value replaced in place",
     HEAD "  - {name: orders, cutover: 10, match: {path: /a}, function: orders}\n", "orders", 0,
     HEAD "  - {name: orders, cutover: 0, match: {path: /a}, function: orders}\n", 1, 1000, "10"},
    {"flow: routes as a flow sequence, the second route",
     HEAD "  [{name: a, match: {path: /a}, function: orders},\n"
          "   {name: b, match: {path: /b}, function: orders}]\n",
     "b", 9999,
     HEAD "  [{name: a, match: {path: /a}, function: orders},\n"
          "   {name: b, match: {path: /b}, function: orders, cutover: 99.99}]\n",
     0, 0, ""},
    {"CRLF: the value replaced, CRLFs kept",
     HEAD_CRLF "  - name: orders\r\n"
               "    match: {path: /a}\r\n"
               "    cutover: 25\r\n"
               "    function: orders\r\n",
     "orders", 7500,
     HEAD_CRLF "  - name: orders\r\n"
               "    match: {path: /a}\r\n"
               "    cutover: 75\r\n"
               "    function: orders\r\n",
     1, 2500, "25"},
    {"CRLF: an inserted line ends with CRLF",
     HEAD_CRLF "  - name: orders\r\n"
               "    match: {path: /a}\r\n"
               "    function: orders   # fn\r\n"
               "  - name: b\r\n"
               "    match: {path: /b}\r\n"
               "    function: orders\r\n",
     "orders", 7500,
     HEAD_CRLF "  - name: orders\r\n"
               "    match: {path: /a}\r\n"
               "    function: orders   # fn\r\n"
               "    cutover: 75\r\n"
               "  - name: b\r\n"
               "    match: {path: /b}\r\n"
               "    function: orders\r\n",
     0, 0, ""},
    {"CRLF: the last line without a line break gets a CRLF before the new one",
     HEAD_CRLF "  - name: orders\r\n    match: {path: /a}\r\n    function: orders", "orders", 100,
     HEAD_CRLF
     "  - name: orders\r\n    match: {path: /a}\r\n    function: orders\r\n    cutover: 1",
     0, 0, ""},
    {"two routes: only the named one changes",
     HEAD "  - name: a\n"
          "    match: {path: /a}\n"
          "    function: orders\n"
          "    cutover: 10\n"
          "  - name: b\n"
          "    match: {path: /b}\n"
          "    function: orders\n"
          "    cutover: 10\n",
     "b", 2000,
     HEAD "  - name: a\n"
          "    match: {path: /a}\n"
          "    function: orders\n"
          "    cutover: 10\n"
          "  - name: b\n"
          "    match: {path: /b}\n"
          "    function: orders\n"
          "    cutover: 20\n",
     1, 1000, "10"},
    {"name given after cutover",
     HEAD "  - cutover: 10\n    match: {path: /a}\n    function: orders\n    name: orders\n",
     "orders", 1500,
     HEAD "  - cutover: 15\n    match: {path: /a}\n    function: orders\n    name: orders\n", 1,
     1000, "10"},
    {"non-ASCII text before the value (marks count characters, not bytes)",
     "# déjà vu — routes ✓\n" HEAD "  - name: orders   # commandes é\n"
     "    match: {path: /a}\n"
     "    function: orders\n"
     "    cutover: 25\n",
     "orders", 5000,
     "# déjà vu — routes ✓\n" HEAD "  - name: orders   # commandes é\n"
     "    match: {path: /a}\n"
     "    function: orders\n"
     "    cutover: 50\n",
     1, 2500, "25"},
    {"a UTF-8 BOM and non-ASCII text, key inserted",
     "\xef\xbb\xbf# résumé\n" HEAD "  - name: orders\n    match: {path: /é}\n    function: orders\n"
     "  - name: b\n    match: {path: /b}\n    function: orders\n",
     "orders", 4200,
     "\xef\xbb\xbf# résumé\n" HEAD "  - name: orders\n    match: {path: /é}\n    function: orders\n"
     "    cutover: 42\n"
     "  - name: b\n    match: {path: /b}\n    function: orders\n",
     0, 0, ""},
};

static void run_case(const edit_case *c)
{
    char err[512] = "";
    sf_edit_result res;
    memset(&res, 0xab, sizeof(res));
    if (put(file, c->before, strlen(c->before)) < 0) {
        ok(0, "%s: write the fixture", c->name);
        return;
    }
    int rc = sf_routes_set_cutover(file, c->route, c->bp, &res, err, sizeof(err));
    if (!is(rc, 0, "%s: succeeds", c->name))
        diag("error: %s", err);
    file_is(file, c->after, strlen(c->after), c->name);
    int fields = res.had_key == c->had_key && res.old_bp == c->old_bp &&
                 strcmp(res.old_text, c->old_text) == 0 && res.changed == 1;
    if (!ok(fields, "%s: the result tells the old value", c->name))
        diag("had_key %d old_bp %u old_text '%s' changed %d", res.had_key, res.old_bp, res.old_text,
             res.changed);
    is(leftovers(NULL), 0, "%s: no temp file left", c->name);
}

/* The version reported is what a load of the new file says. */
static void test_version(void)
{
    char err[512];
    sf_edit_result res;
    sf_diags d;
    const char *text = HEAD "  - name: orders\n    match: {path: /a}\n    function: orders\n";
    put(file, text, strlen(text));
    int rc = sf_routes_set_cutover(file, "orders", 1000, &res, err, sizeof(err));
    sf_diags_init(&d);
    sf_route_table *t = sf_table_load(file, &d);
    ok(rc == 0 && t != NULL, "version: the edited file loads");
    if (t != NULL) {
        is_str(res.version, sf_table_version(t), "version: the result's version is the file's");
        const sf_route *r = sf_table_route(t, "orders");
        is(r ? (long long)r->cutover_bp : -1, 1000, "version: the loaded cutover is the new one");
    }
    sf_table_unref(t);
    sf_diags_dispose(&d);

    /* the same value again: nothing written, the same file (inode) */
    struct stat before, after;
    stat(file, &before);
    memset(&res, 0, sizeof(res));
    rc = sf_routes_set_cutover(file, "orders", 1000, &res, err, sizeof(err));
    stat(file, &after);
    ok(rc == 0 && res.changed == 0 && res.had_key == 1 && res.old_bp == 1000,
       "same value: succeeds and says nothing changed");
    ok(before.st_ino == after.st_ino, "same value: the file is not rewritten");
    ok(strlen(res.version) == 16, "same value: the version is still given");
    rc = sf_routes_set_cutover(file, "orders", 1500, NULL, err, sizeof(err));
    is(rc, 0, "a NULL result is allowed");

    /* a route without the key is at 0 already: rolling it back writes nothing */
    static const char keyless[] =
        HEAD "  - name: keyless\n    match: {path: /k}\n    function: orders\n";
    put(file, keyless, sizeof(keyless) - 1);
    stat(file, &before);
    memset(&res, 0, sizeof(res));
    rc = sf_routes_set_cutover(file, "keyless", 0, &res, err, sizeof(err));
    stat(file, &after);
    ok(rc == 0 && res.changed == 0 && res.had_key == 0 && before.st_ino == after.st_ino,
       "0 on a route without a cutover key: nothing written, nothing changed");
}

static void test_unknown_route(void)
{
    char err[512], want[1024];
    const char *text = HEAD "  - name: a\n    match: {path: /a}\n    function: orders\n"
                            "  - name: b\n    match: {path: /b}\n    function: orders\n"
                            "  - name: c\n    match: {path: /c}\n    function: orders\n";
    put(file, text, strlen(text));
    int rc = sf_routes_set_cutover(file, "x", 1000, NULL, err, sizeof(err));
    is(rc, SF_EDIT_ENOROUTE, "unknown route: refused");
    snprintf(want, sizeof(want), "no route 'x' in %s (routes: a, b, c)", file);
    is_str(err, want, "unknown route: the error lists the routes");
    file_is(file, text, strlen(text), "unknown route: the file is untouched");

    const char *none = HEAD;
    put(file, none, strlen(none));
    rc = sf_routes_set_cutover(file, "x", 1000, NULL, err, sizeof(err));
    snprintf(want, sizeof(want), "no route 'x' in %s (no routes)", file);
    ok(rc == SF_EDIT_ENOROUTE && strcmp(err, want) == 0, "no routes at all: says so");
    if (strcmp(err, want) != 0)
        diag("err: %s", err);
}

static void test_does_not_load(void)
{
    char err[512], want[1024];
    const char *text = HEAD "  - name: orders\n    match: {path: /a}\n    function: nope\n"
                            "    cutover: 5\n";
    put(file, text, strlen(text));
    int rc = sf_routes_set_cutover(file, "orders", 1000, NULL, err, sizeof(err));
    is(rc, SF_EDIT_EINVALID, "a file that does not load: refused");
    snprintf(want, sizeof(want), "routes.yaml does not load: %s:7:15: ", file);
    if (!ok(strncmp(err, want, strlen(want)) == 0, "does not load: the first error, located"))
        diag("err: %s", err);
    size_t el = strlen(err), sl = strlen("; fix it first");
    ok(el > sl && strcmp(err + el - sl, "; fix it first") == 0, "does not load: says to fix it");
    file_is(file, text, strlen(text), "does not load: the file is untouched");
    is(leftovers(NULL), 0, "does not load: no temp file left");

    put(file, "legacy: [\n", 10);
    rc = sf_routes_set_cutover(file, "orders", 1000, NULL, err, sizeof(err));
    is(rc, SF_EDIT_EINVALID, "a YAML syntax error: refused");

    snprintf(want, sizeof(want), "%s/absent.yaml", dir);
    rc = sf_routes_set_cutover(want, "orders", 1000, NULL, err, sizeof(err));
    ok(rc == SF_EDIT_EFAIL && strstr(err, "No such file") != NULL, "a missing file: refused");
    rc = sf_routes_set_cutover(dir, "orders", 1000, NULL, err, sizeof(err));
    ok(rc == SF_EDIT_EFAIL && strstr(err, "not a regular file") != NULL, "a folder: refused");
}

static void test_out_of_range(void)
{
    char err[512];
    const char *text = HEAD "  - name: orders\n    match: {path: /a}\n    function: orders\n";
    put(file, text, strlen(text));
    int rc = sf_routes_set_cutover(file, "orders", 10001, NULL, err, sizeof(err));
    ok(rc == SF_EDIT_EFAIL && strstr(err, "between 0 and 100") != NULL, "over 100%%: refused");
    file_is(file, text, strlen(text), "over 100%%: the file is untouched");
}

/* sf_routes_replace checks the file against the bytes the edit started from. */
static void test_changed_underneath(void)
{
    char err[512], want[1024];
    const char *v1 = HEAD "  - name: orders\n    match: {path: /a}\n    function: orders\n";
    const char *v2 = HEAD "  - name: orders\n    match: {path: /b}\n    function: orders\n";
    const char *edited =
        HEAD "  - name: orders\n    match: {path: /a}\n    function: orders\n    cutover: 5\n";
    put(file, v2, strlen(v2)); /* someone saved v2 after the edit read v1 */
    char version[17] = "";
    int rc =
        sf_routes_replace(file, (const unsigned char *)v1, strlen(v1),
                          (const unsigned char *)edited, strlen(edited), version, err, sizeof(err));
    is(rc, SF_EDIT_ECHANGED, "changed underneath: refused");
    snprintf(want, sizeof(want),
             "%s changed while it was being edited; nothing was written, try again", file);
    is_str(err, want, "changed underneath: says to try again");
    file_is(file, v2, strlen(v2), "changed underneath: the other writer's bytes stay");
    is(leftovers(NULL), 0, "changed underneath: no temp file left");

    /* the same bytes: it goes through */
    rc =
        sf_routes_replace(file, (const unsigned char *)v2, strlen(v2),
                          (const unsigned char *)edited, strlen(edited), version, err, sizeof(err));
    is(rc, 0, "unchanged: replaced");
    file_is(file, edited, strlen(edited), "unchanged: the new bytes are in");
    is(strlen(version), 16, "unchanged: the version is given");

    /* new bytes that do not load are refused before anything is renamed */
    const char *bad = HEAD "  - name: orders\n    function: orders\n";
    rc = sf_routes_replace(file, (const unsigned char *)edited, strlen(edited),
                           (const unsigned char *)bad, strlen(bad), NULL, err, sizeof(err));
    is(rc, SF_EDIT_EINVALID, "new bytes that do not load: refused");
    snprintf(want, sizeof(want), "the edited %s would not load: %s:5:5: ", file, file);
    if (!ok(strncmp(err, want, strlen(want)) == 0,
            "new bytes that do not load: the error names the file, not the temp file"))
        diag("err: %s", err);
    file_is(file, edited, strlen(edited), "new bytes that do not load: the file is untouched");
    is(leftovers(NULL), 0, "new bytes that do not load: no temp file left");
}

static void test_mode_and_symlink(void)
{
    char err[512], target[128], link[128];
    struct stat st;
    const char *text = HEAD "  - name: orders\n    match: {path: /a}\n    function: orders\n";
    const char *after =
        HEAD "  - name: orders\n    match: {path: /a}\n    function: orders\n    cutover: 5\n";

    put(file, text, strlen(text));
    chmod(file, 0600);
    int rc = sf_routes_set_cutover(file, "orders", 500, NULL, err, sizeof(err));
    stat(file, &st);
    ok(rc == 0 && (st.st_mode & 07777) == 0600, "mode 0600 is kept");
    chmod(file, 0640);
    rc = sf_routes_set_cutover(file, "orders", 600, NULL, err, sizeof(err));
    stat(file, &st);
    ok(rc == 0 && (st.st_mode & 07777) == 0640, "mode 0640 is kept");
    unlink(file);

    /* routes.yaml -> real/routes-v1.yaml: the link stays, its target is edited */
    snprintf(target, sizeof(target), "%s/real", dir);
    mkdir(target, 0755);
    snprintf(target, sizeof(target), "%s/real/routes-v1.yaml", dir);
    put(target, text, strlen(text));
    if (symlink("real/routes-v1.yaml", file) < 0) {
        ok(0, "symlink: set up (%s)", strerror(errno));
        return;
    }
    rc = sf_routes_set_cutover(file, "orders", 500, NULL, err, sizeof(err));
    if (!is(rc, 0, "symlink: succeeds"))
        diag("err: %s", err);
    ok(lstat(file, &st) == 0 && S_ISLNK(st.st_mode), "symlink: routes.yaml is still a link");
    ssize_t n = readlink(file, link, sizeof(link) - 1);
    link[n > 0 ? n : 0] = '\0';
    is_str(link, "real/routes-v1.yaml", "symlink: it points where it pointed");
    file_is(target, after, strlen(after), "symlink: the target is edited");
    is(leftovers("real"), 0, "symlink: no temp file next to the link");
    snprintf(link, sizeof(link), "%s/real", dir);
    int others = leftovers_in(link, "routes-v1.yaml");
    is(others, 0, "symlink: no temp file next to the target");
    unlink(file);
    unlink(target);
    rmdir(link);
}

/* sf_routes_edit_buffer alone: YAML shapes the loader would refuse or that need no file. */
static void buffer_is(const char *name, const char *before, const char *route, uint32_t bp,
                      const char *after)
{
    unsigned char *out = NULL;
    size_t len = 0;
    char err[512] = "";
    int rc = sf_routes_edit_buffer("r.yaml", (const unsigned char *)before, strlen(before), route,
                                   bp, &out, &len, NULL, err, sizeof(err));
    if (after == NULL) {
        ok(rc != 0 && out == NULL, "%s: refused", name);
    } else {
        if (!is(rc, 0, "%s: succeeds", name))
            diag("err: %s", err);
        is_mem(out, len, after, strlen(after), "%s: bytes", name);
    }
    free(out);
}

static void buffer_err(const char *name, const char *before, const char *route, uint32_t bp,
                       int want_rc, const char *want_err)
{
    unsigned char *out = NULL;
    size_t len = 0;
    char err[512] = "";
    int rc = sf_routes_edit_buffer("r.yaml", (const unsigned char *)before, strlen(before), route,
                                   bp, &out, &len, NULL, err, sizeof(err));
    ok(rc == want_rc && out == NULL, "%s: refused", name);
    is_str(err, want_err, "%s: says why", name);
    free(out);
}

static void test_buffer(void)
{
    buffer_is("an alias value is replaced by the number",
              "x: &c 10\nroutes:\n  - name: a\n    cutover: *c\n", "a", 2000,
              "x: &c 10\nroutes:\n  - name: a\n    cutover: 20\n");
    buffer_is("a kept block scalar's blank lines stay its own",
              "routes:\n  - name: a\n    note: |+\n      x\n\n  - name: b\n", "a", 100,
              "routes:\n  - name: a\n    note: |+\n      x\n\n    cutover: 1\n  - name: b\n");
    buffer_is("an empty value gets a space", "routes:\n  - name: a\n    cutover:\n", "a", 100,
              "routes:\n  - name: a\n    cutover: 1\n");
    buffer_is("routes later in the file than other keys, one-line file",
              "legacy: x\nroutes: [{name: a}]", "a", 100,
              "legacy: x\nroutes: [{name: a, cutover: 1}]");
    buffer_is("flow: a last key with an empty value keeps its colon",
              "routes: [{name: a, x: }, {name: b, y: ,}]", "a", 100,
              "routes: [{name: a, x: , cutover: 1}, {name: b, y: ,}]");
    buffer_is("flow: the same, with a trailing comma", "routes: [{name: a}, {name: b, y: ,}]", "b",
              100, "routes: [{name: a}, {name: b, y: , cutover: 1,}]");
    buffer_is("only the first document is edited",
              "routes:\n  - name: a\n---\nroutes:\n  - name: a\n", "a", 100,
              "routes:\n  - name: a\n    cutover: 1\n---\nroutes:\n  - name: a\n");
    buffer_err("an anchored value", "routes:\n  - name: a\n    cutover: &c 10\n", "a", 100,
               SF_EDIT_EFAIL,
               "r.yaml:3:14: the cutover of route 'a' has an anchor or a tag; edit it by hand");
    buffer_err("a tagged value", "routes:\n  - name: a\n    cutover: !!str 10\n", "a", 100,
               SF_EDIT_EFAIL,
               "r.yaml:3:14: the cutover of route 'a' has an anchor or a tag; edit it by hand");
    buffer_err("a literal block value", "routes:\n  - name: a\n    cutover: |\n      10\n", "a",
               100, SF_EDIT_EFAIL,
               "r.yaml:3:14: the cutover of route 'a' is a block scalar (| or >); edit it by "
               "hand");
    buffer_err("a list value", "routes:\n  - name: a\n    cutover: [1]\n", "a", 100, SF_EDIT_EFAIL,
               "r.yaml:3:14: the cutover of route 'a' is not a single value; edit it by hand");
    buffer_err("no such name", "routes:\n  - name: a\n  - name: b\n  - 7\n", "c", 100,
               SF_EDIT_ENOROUTE, "no route 'c' in r.yaml (routes: a, b)");
    buffer_err("routes nested deeper do not count", "x:\n  routes:\n    - name: a\n", "a", 100,
               SF_EDIT_ENOROUTE, "no route 'a' in r.yaml (no routes)");
    buffer_err("an empty file", "", "a", 100, SF_EDIT_ENOROUTE,
               "no route 'a' in r.yaml (no routes)");
    buffer_err("UTF-16", "\xff\xfer\0", "a", 100, SF_EDIT_EFAIL,
               "r.yaml is UTF-16: only UTF-8 files can be edited");
    buffer_err("a YAML syntax error", "routes:\n  - name: a\n    x: [\n", "a", 100, SF_EDIT_EFAIL,
               "r.yaml:4:1: did not find expected node content");

    unsigned char *out = NULL;
    size_t len = 0;
    char err[256];
    sf_edit_result res;
    memset(&res, 0, sizeof(res));
    const char *in = "routes:\n  - {name: a, cutover: \"12.50\"}\n";
    int rc = sf_routes_edit_buffer("r.yaml", (const unsigned char *)in, strlen(in), "a", 5000, &out,
                                   &len, &res, err, sizeof(err));
    ok(rc == 0 && res.had_key == 1 && strcmp(res.old_text, "12.50") == 0,
       "edit_buffer: old_text is the value as the scalar reads");
    const char *want = "routes:\n  - {name: a, cutover: \"50\"}\n";
    is_mem(out, len, want, strlen(want), "edit_buffer: quoted flow value");
    free(out);
}

static void test_format_percent(void)
{
    static const struct {
        uint32_t bp;
        const char *text;
    } fp[] = {{0, "0"},        {1, "0.01"},     {10, "0.1"},     {50, "0.5"},
              {99, "0.99"},    {100, "1"},      {2500, "25"},    {2550, "25.5"},
              {2505, "25.05"}, {3333, "33.33"}, {9999, "99.99"}, {10000, "100"}};
    for (size_t i = 0; i < sizeof(fp) / sizeof(fp[0]); i++) {
        char out[16];
        sf_format_percent(fp[i].bp, out, sizeof(out));
        is_str(out, fp[i].text, "sf_format_percent(%u)", fp[i].bp);
    }
}

int main(void)
{
    snprintf(dir, sizeof(dir), "/tmp/sf-edit-XXXXXX");
    if (mkdtemp(dir) == NULL) {
        printf("Bail out! cannot create a test folder under /tmp\n");
        return 1;
    }
    snprintf(file, sizeof(file), "%s/routes.yaml", dir);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        run_case(&cases[i]);
    test_version();
    test_unknown_route();
    test_does_not_load();
    test_out_of_range();
    test_changed_underneath();
    test_mode_and_symlink();
    test_buffer();
    test_format_percent();
    unlink(file);
    rmdir(dir);
    return done_testing();
}
