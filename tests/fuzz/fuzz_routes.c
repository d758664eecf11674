/* libFuzzer target: the configuration loaders, routes.yaml (sf_table_load, routes/table.c over
 * routes/yconf.c) and strangler.yaml (sf_settings_load), fed the same bytes, and the route
 * matcher's index (routes/match.c) on what loads.
 *
 * Input: the file's bytes, written to routes.yaml in a private temporary folder (in $TMPDIR,
 * else on /dev/shm when there is one), since the loaders take a path; relative paths in it (tls.ca,
 * token_file) resolve inside that folder, which holds nothing else. Beyond "no crash, no leak": a
 * load fails exactly when it recorded an error, and every diagnostic names the file with a line
 * within it (or none); a loaded table is well formed (names, exactly one of path and regex,
 * functions that exist, percentages within 0-100%, a 16-hex-digit version), each route is found
 * by its name, and the trie index finds the same route as trying every route in order for
 * paths taken from the routes themselves; a rewritten function target starts with '/'. A
 * loaded settings file has a listener, an admin address and a token of 16 bytes or more when it
 * has one. */
#include <ftw.h>
#include <stdint.h>
#include <unistd.h>

#include "fuzz.h"
#include "match.h"
#include "settings.h"
#include "table.h"

static char dir[256], path[300];

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void cleanup(void)
{
    if (dir[0] != '\0')
        nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* TMPDIR first: tests/fuzz/run.sh points it at its scratch folder, which it removes even
     * when a crash skips atexit */
    const char *base = getenv("TMPDIR");
    if (base == NULL || base[0] == '\0' || strlen(base) > 200)
        base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(dir, sizeof(dir), "%s/sf-fuzz-routes.XXXXXX", base);
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        abort();
    }
    snprintf(path, sizeof(path), "%s/routes.yaml", dir);
    atexit(cleanup);
    /* ${env:NAME} has something to expand */
    setenv("SF_FUZZ_URL", "http://127.0.0.1:9", 1);
    setenv("SF_FUZZ_KEY", "key-0123456789abcdef", 1);
    return 0;
}

/* An upper bound on the line numbers libyaml may give: it also counts CR, NEL, LS and PS. */
static long max_line(const uint8_t *data, size_t size)
{
    long lines = 2;
    for (size_t i = 0; i < size; i++)
        lines += data[i] == '\n' || data[i] == '\r' || data[i] == 0x85 || data[i] == 0xa8 ||
                 data[i] == 0xa9;
    return lines;
}

static void check_diags(const sf_diags *d, long lines)
{
    size_t plen = strlen(path);
    for (size_t i = 0; i < d->n; i++) {
        const char *s = d->lines[i];
        FUZZ_CHECK(strncmp(s, path, plen) == 0 && s[plen] == ':', "diagnostic without the file: %s",
                   s);
        s += plen + 1;
        if (*s == ' ')
            continue; /* no position: the file as a whole */
        char *e;
        long line = strtol(s, &e, 10), col = *e == ':' ? strtol(e + 1, &e, 10) : -1;
        FUZZ_CHECK(line >= 1 && line <= lines && col >= 1 && *e == ':',
                   "diagnostic position %ld:%ld out of the file (%ld lines): %s", line, col, lines,
                   d->lines[i]);
    }
}

static void check_url(const sf_upstream_url *u, const char *what)
{
    FUZZ_CHECK(u->url != NULL && u->host != NULL && u->authority != NULL && u->path != NULL,
               "%s URL fields", what);
    FUZZ_CHECK(u->tls == (strncmp(u->url, "https://", 8) == 0), "%s URL scheme", what);
    FUZZ_CHECK(u->path[0] == '\0' || (u->path[0] == '/' && u->path[strlen(u->path) - 1] != '/'),
               "%s URL path prefix '%s'", what, u->path);
}

#define MAX_PROBES 96
#define PROBE_LEN  128

typedef struct {
    char path[MAX_PROBES][PROBE_LEN];
    size_t n;
} probes;

static void add_probe(probes *p, const char *base, size_t len, const char *tail)
{
    if (p->n == MAX_PROBES)
        return;
    char *out = p->path[p->n++];
    size_t o = 0;
    if (len == 0 || base[0] != '/') /* a path the matcher is given starts with '/' */
        out[o++] = '/';
    if (len > PROBE_LEN - 16)
        len = PROBE_LEN - 16;
    memcpy(out + o, base, len);
    snprintf(out + o + len, PROBE_LEN - o - len, "%s", tail);
}

static int regex_meta(char c)
{
    return c != '\0' && strchr("\\[](){}.*+?|^$", c) != NULL;
}

/* Paths worth matching for a route: its prefix, below it, next to it; for a regex, its literal
 * start, the regex with its metacharacters dropped, and with optional atoms ("x?", "x*", a
 * group or class followed by ? or *) dropped too. */
static void route_probes(const sf_route *r, probes *p)
{
    static const char *const tails[] = {"", "/", "/7", "x", "/a/b"};
    char lit[PROBE_LEN], bare[PROBE_LEN], opt[PROBE_LEN];
    size_t nl = 0, nb = 0, no = 0;
    if (r->path != NULL) {
        nl = r->path_len < PROBE_LEN ? r->path_len : PROBE_LEN - 1;
        memcpy(lit, r->path, nl);
    } else if (r->regex_src != NULL) {
        const char *re = r->regex_src + (r->regex_src[0] == '^');
        while (re[nl] != '\0' && nl < PROBE_LEN - 1 && !regex_meta(re[nl])) {
            lit[nl] = re[nl];
            nl++;
        }
        for (size_t i = 0; re[i] != '\0' && nb < PROBE_LEN - 1; i++) {
            if (re[i] == '\\' && re[i + 1] != '\0')
                bare[nb++] = re[++i];
            else if (!regex_meta(re[i]))
                bare[nb++] = re[i];
        }
        for (size_t i = 0; re[i] != '\0' && no < PROBE_LEN - 1; i++) {
            char next = re[i + 1];
            if (!regex_meta(re[i]) && (next == '?' || next == '*'))
                i++;
            else if (re[i] == '\\' && next != '\0')
                opt[no++] = re[++i];
            else if (!regex_meta(re[i]))
                opt[no++] = re[i];
        }
    }
    for (size_t i = 0; i < sizeof(tails) / sizeof(tails[0]); i++)
        add_probe(p, lit, nl, tails[i]);
    if (nb > 0)
        add_probe(p, bare, nb, "");
    if (no > 0)
        add_probe(p, opt, no, "");
}

static void check_table(sf_route_table *t)
{
    FUZZ_CHECK(strlen(sf_table_version(t)) == 16 &&
                   strspn(sf_table_version(t), "0123456789abcdef") == 16,
               "version '%s'", sf_table_version(t));
    FUZZ_CHECK(strcmp(sf_table_path(t), path) == 0, "table path");
    check_url(sf_table_legacy(t), "legacy");
    size_t nf = 0, nr = 0;
    const sf_function *fns = sf_table_functions(t, &nf);
    const sf_route *routes = sf_table_routes(t, &nr);
    for (size_t i = 0; i < nf; i++) {
        FUZZ_CHECK(fns[i].name != NULL && fns[i].name[0] != '\0', "function %zu name", i);
        check_url(&fns[i].url, fns[i].name);
        for (size_t j = 0; j < i; j++)
            FUZZ_CHECK(strcmp(fns[i].name, fns[j].name) != 0, "function '%s' twice", fns[i].name);
        for (size_t h = 0; h < fns[i].nheaders; h++)
            FUZZ_CHECK(fns[i].headers[h].name_len == strlen(fns[i].headers[h].name) &&
                           fns[i].headers[h].name_len > 0,
                       "function header name");
    }

    pcre2_match_data *md = sf_match_data_create();
    if (md == NULL)
        abort();
    /* Every header any route asks for, with its pattern as the value: some match, some not. */
    sf_kv hdrs[16];
    size_t nh = 0;
    for (size_t i = 0; i < nr; i++) {
        const sf_route *r = &routes[i];
        FUZZ_CHECK(r->index == i && r->name != NULL && r->name_len == strlen(r->name) &&
                       r->name_len > 0,
                   "route %zu name or index", i);
        FUZZ_CHECK(sf_table_route(t, r->name) == r, "route '%s' not found by its name", r->name);
        FUZZ_CHECK((r->path != NULL) != (r->regex != NULL), "route '%s': path and regex", r->name);
        FUZZ_CHECK(r->path == NULL || (r->path[0] == '/' && r->path_len == strlen(r->path)),
                   "route '%s': path", r->name);
        FUZZ_CHECK(r->function_index < nf && r->function == &fns[r->function_index],
                   "route '%s': function", r->name);
        FUZZ_CHECK(r->cutover_bp <= SF_CUTOVER_MAX && r->shadow.percent_bp <= SF_CUTOVER_MAX,
                   "route '%s': percentages", r->name);
        FUZZ_CHECK((r->sticky == SF_STICKY_HEADER || r->sticky == SF_STICKY_COOKIE) ==
                       (r->sticky_name != NULL),
                   "route '%s': sticky name", r->name);
        FUZZ_CHECK(r->shadow.body_mode >= SF_BODY_AUTO && r->shadow.body_mode <= SF_BODY_NONE,
                   "route '%s': shadow body mode %d", r->name, r->shadow.body_mode);
        for (size_t k = 0; k < r->shadow.nignore; k++)
            FUZZ_CHECK(r->shadow.ignore[k][0] == '\0' || r->shadow.ignore[k][0] == '/',
                       "route '%s': ignore '%s' is not a JSON Pointer", r->name,
                       r->shadow.ignore[k]);
        for (size_t m = 0; m < r->nmethods; m++)
            for (const char *c = r->methods[m]; *c; c++)
                FUZZ_CHECK(fuzz_tchar((unsigned char)*c) && !(*c >= 'a' && *c <= 'z'),
                           "route '%s': method '%s'", r->name, r->methods[m]);
        char buf[64];
        FUZZ_CHECK(sf_route_sticky_text(r, buf, sizeof(buf)) != NULL, "sticky text");
        for (size_t h = 0; h < r->nheaders && nh < sizeof(hdrs) / sizeof(hdrs[0]); h++) {
            hdrs[nh].name = (sf_slice){r->headers[h].name, r->headers[h].name_len};
            hdrs[nh].value = (sf_slice){r->headers[h].pattern, strlen(r->headers[h].pattern)};
            nh++;
        }
    }
    /* Every route's probes against the whole table: a route's path may be taken by another
     * before it. */
    static probes pr;
    pr.n = 0;
    for (size_t i = 0; i < nr; i++)
        route_probes(&routes[i], &pr);
    for (size_t k = 0; k < pr.n; k++) {
        for (size_t m = 0; m < 3; m++) {
            const sf_route *r = &routes[k * 7 % nr];
            const char *method = m == 0        ? "GET"
                                 : m == 1      ? "DELETE"
                                 : r->nmethods ? r->methods[0]
                                               : "X";
            sf_match_input in = {{method, strlen(method)},
                                 {pr.path[k], strlen(pr.path[k])},
                                 m > 0 ? hdrs : NULL,
                                 m > 0 ? nh : 0,
                                 {"127.0.0.1", 9}};
            const sf_route *a = sf_route_match(t, &in, md);
            const sf_route *b = sf_routes_match(routes, nr, &in, md);
            FUZZ_CHECK(a == b, "index finds '%s', the linear scan '%s' for %s %s",
                       a ? a->name : "(none)", b ? b->name : "(none)", method, pr.path[k]);
            if (a == NULL)
                continue;
            FUZZ_CHECK(sf_route_bucket(a, &in, 12345) < SF_CUTOVER_MAX, "bucket");
            char out[256];
            ssize_t n =
                sf_route_function_target(a, in.path, (sf_slice){"q=1", 3}, md, out, sizeof(out));
            FUZZ_CHECK(n == -1 || (n > 0 && (size_t)n <= sizeof(out) && out[0] == '/'),
                       "function target of %zd bytes for %s", n, pr.path[k]);
        }
    }
    pcre2_match_data_free(md);
}

static void check_settings(const sf_settings *s)
{
    FUZZ_CHECK(s->nlisten >= 1 && s->listen != NULL, "no listener");
    for (size_t i = 0; i < s->nlisten; i++)
        FUZZ_CHECK(s->listen[i].address != NULL &&
                       (s->listen[i].tls_cert == NULL) == (s->listen[i].tls_key == NULL),
                   "listener %zu", i);
    FUZZ_CHECK(s->admin_address != NULL && s->routes_file != NULL && s->routes_file[0] == '/',
               "admin address or routes file");
    FUZZ_CHECK(s->admin_token == NULL || strlen(s->admin_token) >= 16, "short admin token");
    FUZZ_CHECK(s->log_level >= SF_LOG_DEBUG && s->log_level <= SF_LOG_ERROR, "log level %d",
               s->log_level);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL || (size > 0 && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        perror(path);
        abort();
    }
    long lines = max_line(data, size);

    sf_diags d;
    sf_diags_init(&d);
    sf_route_table *t = sf_table_load_ex(path, &d, size % 2 ? SF_TABLE_ENV_PLACEHOLDERS : 0);
    FUZZ_CHECK((t != NULL) == (d.errors == 0), "table %p with %d errors", (void *)t, d.errors);
    check_diags(&d, lines);
    if (t != NULL) {
        check_table(t);
        FUZZ_CHECK(sf_table_ref(t) == t, "ref");
        sf_table_unref(t);
        sf_table_unref(t);
    }
    sf_diags_dispose(&d);

    sf_settings s;
    memset(&s, 0, sizeof(s));
    sf_diags_init(&d);
    int rc = sf_settings_load(path, &s, &d);
    FUZZ_CHECK((rc == 0) == (d.errors == 0), "settings rc %d with %d errors", rc, d.errors);
    check_diags(&d, lines);
    if (rc == 0)
        check_settings(&s);
    sf_settings_dispose(&s);
    sf_diags_dispose(&d);
    return 0;
}
