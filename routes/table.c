/* routes.yaml loader (DESIGN §4) and the immutable table it builds. Every rule is checked and
 * every problem reported at FILE:LINE:COL, in file order, before a table is handed out. */
#include "table.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "match.h"
#include "settings.h"
#include "yconf.h"

#define NAME_MAX_LEN   64
#define FILE_MAX_BYTES (64u << 20)

struct sf_route_table {
    atomic_int refs; /* route tables are shared by the workers' threads */
    char *path;      /* as given */
    char *dir;       /* its folder: tls.ca is relative to it */
    sf_upstream_url legacy;
    sf_function *functions; /* allocated once: routes point into it */
    size_t nfunctions;
    sf_route *routes;
    size_t nroutes;
    sf_match_index *index; /* the routes by literal prefix, for sf_route_match */
    char version[17];
};

int sf_upstream_url_parse(const char *s, sf_upstream_url *u, char *err, size_t errlen)
{
    memset(u, 0, sizeof(*u));
    const char *p;
    if (strncmp(s, "http://", 7) == 0) {
        p = s + 7;
    } else if (strncmp(s, "https://", 8) == 0) {
        p = s + 8;
        u->tls = 1;
    } else {
        snprintf(err, errlen, "must start with http:// or https://");
        return -1;
    }
    const char *hs = p, *he;
    if (*p == '[') {
        he = strchr(p, ']');
        if (he == NULL) {
            snprintf(err, errlen, "has an unterminated [IPv6] host");
            return -1;
        }
        hs = p + 1;
        p = he + 1;
    } else {
        while (*p && *p != ':' && *p != '/' && *p != '?' && *p != '#')
            p++;
        he = p;
    }
    if (he == hs) {
        snprintf(err, errlen, "has no host");
        return -1;
    }
    for (const char *c = hs; c < he; c++) {
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '.' || *c == '-' || *c == ':' || *c == '_')) {
            snprintf(err, errlen, "has an invalid character in its host");
            return -1;
        }
    }
    long port = u->tls ? 443 : 80;
    if (*p == ':') {
        p++;
        port = 0;
        const char *ps = p;
        while (*p >= '0' && *p <= '9' && port <= 65535)
            port = port * 10 + (*p++ - '0');
        if (p == ps || port < 1 || port > 65535) {
            snprintf(err, errlen, "has an invalid port");
            return -1;
        }
    }
    if (*p != '\0' && *p != '/') {
        snprintf(err, errlen, "must be scheme://host[:port][/path] (no query or fragment)");
        return -1;
    }
    /* the path prefixes request targets: a query, a fragment or a space would corrupt them */
    for (const char *c = p; *c; c++) {
        if (*c == '?' || *c == '#') {
            snprintf(err, errlen, "must not have a query or fragment");
            return -1;
        }
        if ((unsigned char)*c <= ' ' || *c == 0x7f) {
            snprintf(err, errlen, "has a space or control character in its path");
            return -1;
        }
    }
    u->url = strdup(s);
    u->host = strndup(hs, (size_t)(he - hs));
    u->port = (uint16_t)port;
    /* authority as the client would write it: the port only when not the default */
    size_t alen = (size_t)(p - (s + (u->tls ? 8 : 7)));
    u->authority = strndup(s + (u->tls ? 8 : 7), alen);
    /* a trailing slash adds nothing to a prefix */
    size_t plen = strlen(p);
    while (plen > 0 && p[plen - 1] == '/')
        plen--;
    u->path = strndup(p, plen);
    if (!u->url || !u->host || !u->authority || !u->path) {
        sf_upstream_url_dispose(u);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

void sf_upstream_url_dispose(sf_upstream_url *u)
{
    free(u->url);
    free(u->host);
    free(u->authority);
    free(u->path);
    memset(u, 0, sizeof(*u));
}

/* RFC 9110 §5.6.2 tchar. */
static int is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int is_token(const char *s)
{
    if (*s == '\0')
        return 0;
    for (; *s; s++)
        if (!is_tchar((unsigned char)*s))
            return 0;
    return 1;
}

/* 1..64 letters, digits or one of extra. */
static int is_name(const char *s, const char *extra)
{
    size_t n = strlen(s);
    if (n == 0 || n > NAME_MAX_LEN)
        return 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              strchr(extra, c) != NULL))
            return 0;
    }
    return 1;
}

static int is_env_name(const char *s, size_t n)
{
    if (n == 0 || (s[0] >= '0' && s[0] <= '9'))
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              c == '_'))
            return 0;
    }
    return 1;
}

static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        return strdup(".");
    if (slash == path)
        return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

static int line_of(const yaml_node_t *n)
{
    return (int)n->start_mark.line + 1;
}

/* A scalar's text; NULL after an error when n is not a scalar or hides a NUL byte (the
 * loader works on C strings; "\0" in a double-quoted scalar would silently cut them). */
static const char *text(sf_ydoc *y, const yaml_node_t *n, const char *what)
{
    const char *s = sf_ynode_scalar(y, n, what);
    if (s != NULL && strlen(s) != n->data.scalar.length) {
        sf_ydoc_error(y, n, "%s contains a NUL byte", what);
        return NULL;
    }
    return s;
}

static size_t seq_len(const yaml_node_t *n)
{
    return (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
}

static size_t map_len(const yaml_node_t *n)
{
    return (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
}

/* A growable string; oom is sticky and checked once at the end. */
typedef struct {
    char *p;
    size_t len, cap;
    int oom;
} strbuf;

static void sb_add(strbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (p == NULL) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

/* Expands every ${env:NAME} in s into *out (caller frees). Other text, a lone '$' included,
 * is literal. Every bad or missing reference is an error at n; returns -1 after any. */
static int expand_env(sf_ydoc *y, const yaml_node_t *n, const char *where, const char *s,
                      char **out)
{
    strbuf b = {0};
    int bad = 0;
    const char *p = s;
    *out = NULL;
    sb_add(&b, "", 0);
    for (;;) {
        const char *ref = strstr(p, "${env:");
        if (ref == NULL) {
            sb_add(&b, p, strlen(p));
            break;
        }
        sb_add(&b, p, (size_t)(ref - p));
        const char *name = ref + 6, *close = strchr(name, '}');
        if (close == NULL) {
            sf_ydoc_error(y, n, "unterminated ${env: in %s: write ${env:NAME}", where);
            bad = 1;
            break;
        }
        size_t len = (size_t)(close - name);
        if (!is_env_name(name, len)) {
            sf_ydoc_error(y, n,
                          "invalid environment variable name '%.*s' in %s: use letters, "
                          "digits and _, not starting with a digit",
                          (int)len, name, where);
            bad = 1;
        } else {
            char *var = strndup(name, len);
            const char *val = var ? getenv(var) : NULL;
            if (var != NULL && val == NULL && y->env_placeholders) {
                /* a tool that only edits the file: the proxy's environment is not ours */
                sf_ydoc_warning(y, n, "environment variable %s is not set here (${env:%s} in %s)",
                                var, var, where);
                sb_add(&b, "env-", 4);
                sb_add(&b, var, strlen(var));
            } else if (var != NULL && val == NULL) {
                sf_ydoc_error(y, n, "environment variable %s is not set (${env:%s} in %s)", var,
                              var, where);
                bad = 1;
            } else if (val != NULL) {
                sb_add(&b, val, strlen(val));
            } else {
                b.oom = 1;
            }
            free(var);
        }
        p = close + 1;
    }
    if (bad || b.oom) {
        if (b.oom && !bad)
            sf_ydoc_error(y, n, "out of memory");
        free(b.p);
        return -1;
    }
    *out = b.p;
    return 0;
}

/* Compiles a pattern as the matcher will run it: bytes (no UTF), JIT when available. A
 * compile error points at the offending character when the scalar's text allows. */
static pcre2_code *compile_re(sf_ydoc *y, const yaml_node_t *n, const char *what, const char *src)
{
    int code;
    PCRE2_SIZE off;
    /* paths and header values are bytes (non-ASCII stays percent-encoded): no (*UTF) either */
    pcre2_code *re =
        pcre2_compile((PCRE2_SPTR)src, PCRE2_ZERO_TERMINATED, PCRE2_NEVER_UTF, &code, &off, NULL);
    if (re == NULL) {
        PCRE2_UCHAR msg[256];
        if (pcre2_get_error_message(code, msg, sizeof(msg)) < 0)
            snprintf((char *)msg, sizeof(msg), "error %d", code);
        sf_ydoc_error_at(y, n, off, "%s does not compile: %s (at offset %zu)", what,
                         (const char *)msg, (size_t)off);
        return NULL;
    }
    uint32_t caps = 0;
    pcre2_pattern_info(re, PCRE2_INFO_CAPTURECOUNT, &caps);
    if (caps > SF_MAX_CAPTURES) {
        sf_ydoc_error(y, n, "%s has %u capture groups; at most %d are allowed", what, caps,
                      SF_MAX_CAPTURES);
        pcre2_code_free(re);
        return NULL;
    }
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* no JIT: the interpreter runs it */
    return re;
}

/* Headers the proxy writes itself (DESIGN §5), and why a function's config may not. */
static const char *owned_header(const char *name)
{
    static const struct {
        const char *name, *why;
    } owned[] = {
        {"host", "the proxy sends the function's URL authority as Host"},
        {"content-length", "the proxy frames the body itself"},
        {"transfer-encoding", "the proxy frames the body itself"},
        {"connection", "it is a hop-by-hop header the proxy manages"},
        {"keep-alive", "it is a hop-by-hop header the proxy manages"},
        {"te", "it is a hop-by-hop header the proxy manages"},
        {"trailer", "it is a hop-by-hop header the proxy manages"},
        {"upgrade", "it is a hop-by-hop header the proxy manages"},
        {"proxy-connection", "it is a hop-by-hop header the proxy manages"},
        {"x-request-id", "the proxy sets it on every request to trace it"},
        {"x-forwarded-for", "the proxy sets it from the client's connection"},
        {"x-forwarded-proto", "the proxy sets it from the client's connection"},
        {"x-forwarded-host", "the proxy sets it from the client's connection"},
    };
    for (size_t i = 0; i < sizeof(owned) / sizeof(owned[0]); i++)
        if (strcasecmp(name, owned[i].name) == 0)
            return owned[i].why;
    return NULL;
}

/* A URL (after ${env:}); messages quote it as written, so a secret from the environment never
 * lands in a log. */
static int load_url(sf_ydoc *y, const yaml_node_t *n, const char *what, const char *where,
                    sf_upstream_url *u)
{
    if (sf_ynode_is_null(n)) {
        sf_ydoc_error(y, n, "%s needs a URL (http://host:port or https://host)", what);
        return -1;
    }
    const char *s = text(y, n, what);
    char *url = NULL, err[128];
    if (s == NULL || expand_env(y, n, where, s, &url) < 0)
        return -1;
    int rc = sf_upstream_url_parse(url, u, err, sizeof(err));
    if (rc < 0)
        sf_ydoc_error(y, n, "%s URL '%s' %s", what, s, err);
    free(url);
    return rc;
}

/* Why path cannot serve as a CA bundle, or NULL when it holds at least one certificate. */
static const char *check_ca(const char *path, char *why, size_t cap)
{
    struct stat st;
    const char *res = NULL;
    if (stat(path, &st) < 0) {
        snprintf(why, cap, "%s", strerror(errno));
        return why;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(why, cap, "not a regular file");
        return why;
    }
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(why, cap, "%s", strerror(errno));
        return why;
    }
    /* keep the thread's OpenSSL error queue as the caller left it */
    ERR_set_mark();
    int certs = 0;
    X509 *x;
    while ((x = PEM_read_X509(f, NULL, NULL, NULL)) != NULL) {
        X509_free(x);
        certs++;
    }
    unsigned long e = ERR_peek_last_error();
    int at_end =
        e == 0 || (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE);
    if (!at_end) {
        const char *r = ERR_reason_error_string(e);
        snprintf(why, cap, "a certificate in it cannot be read (%s)", r ? r : "unknown error");
        res = why;
    } else if (certs == 0) {
        snprintf(why, cap, "it contains no PEM certificate (-----BEGIN CERTIFICATE-----)");
        res = why;
    }
    ERR_pop_to_mark();
    fclose(f);
    return res;
}

static void load_function_headers(sf_ydoc *y, sf_function *f, const yaml_node_t *n,
                                  const char *label)
{
    if (n->type != YAML_MAPPING_NODE) {
        sf_ydoc_error(y, n, "%s: headers must be a mapping of header-name: value", label);
        return;
    }
    char where[160];
    snprintf(where, sizeof(where), "functions.%s.headers", f->name);
    f->headers = calloc(map_len(n) ? map_len(n) : 1, sizeof(*f->headers));
    if (f->headers == NULL)
        return;
    yaml_node_t *k, *v;
    SF_YMAP_EACH(y, n, k, v)
    {
        const char *name = text(y, k, "a header name");
        if (name == NULL)
            continue;
        const char *why = owned_header(name);
        int bad = 0;
        if (!is_token(name)) {
            sf_ydoc_error(y, k, "%s: header name '%s' is not a valid HTTP token", label, name);
            bad = 1;
        } else if (why != NULL) {
            sf_ydoc_error(y, k, "%s: header %s cannot be set here: %s", label, name, why);
            bad = 1;
        } else {
            for (size_t i = 0; i < f->nheaders; i++) {
                if (strcasecmp(f->headers[i].name, name) == 0) {
                    sf_ydoc_error(y, k,
                                  "%s: header %s is given twice (header names are "
                                  "case-insensitive)",
                                  label, name);
                    bad = 1;
                    break;
                }
            }
        }
        char what[256];
        snprintf(what, sizeof(what), "%s: the value of header %s", label, name);
        const char *val = text(y, v, what);
        char *exp = NULL;
        if (val == NULL || expand_env(y, v, where, val, &exp) < 0)
            continue;
        for (const unsigned char *c = (const unsigned char *)exp; *c; c++) {
            if ((*c < 0x20 && *c != '\t') || *c == 0x7f) {
                sf_ydoc_error(y, v,
                              "%s has a control byte (0x%02x): CR, LF, NUL and other control "
                              "bytes are not allowed in a header value (tab is)",
                              what, *c);
                bad = 1;
                break;
            }
        }
        if (bad) {
            free(exp);
            continue;
        }
        sf_header_conf *h = &f->headers[f->nheaders];
        h->name = strdup(name);
        h->value = exp;
        if (h->name == NULL) {
            free(exp);
            continue;
        }
        h->name_len = strlen(h->name);
        h->value_len = strlen(h->value);
        f->nheaders++;
    }
}

static void load_function_tls(sf_ydoc *y, sf_route_table *t, sf_function *f, const yaml_node_t *n,
                              const char *label)
{
    static const char *const keys[] = {"ca", "verify", NULL};
    char what[256];
    snprintf(what, sizeof(what), "tls of function '%s'", f->name);
    if (sf_ynode_check_map(y, n, what, keys) < 0)
        return;
    if (f->url.url != NULL && !f->url.tls)
        sf_ydoc_error(y, n, "%s: tls is set but the URL is http://; use https:// or remove tls",
                      label);
    yaml_node_t *v[2];
    sf_ynode_fields(y, n, what, keys, NULL, v);
    if (v[0] != NULL) {
        char where[160], *rel = NULL;
        snprintf(what, sizeof(what), "%s: tls.ca", label);
        snprintf(where, sizeof(where), "functions.%s.tls.ca", f->name);
        const char *s = text(y, v[0], what);
        if (s != NULL && s[0] == '\0')
            sf_ydoc_error(y, v[0], "%s must be the path of a CA bundle, not empty", what);
        else if (s != NULL && expand_env(y, v[0], where, s, &rel) == 0) {
            char why[200];
            f->tls_ca = sf_path_join(t->dir, rel);
            if (f->tls_ca != NULL && check_ca(f->tls_ca, why, sizeof(why)) != NULL)
                sf_ydoc_error(y, v[0], "%s: CA file %s cannot be used: %s", label, f->tls_ca, why);
        }
        free(rel);
    }
    if (v[1] != NULL) {
        snprintf(what, sizeof(what), "%s: tls.verify", label);
        if (sf_yget_bool(y, v[1], what, &f->tls_verify) == 0 && !f->tls_verify)
            sf_ydoc_warning(y, v[1],
                            "certificate verification is off for function '%s': anyone on the "
                            "network path can impersonate it",
                            f->name);
    }
}

static void load_function_long(sf_ydoc *y, sf_route_table *t, sf_function *f, const yaml_node_t *n,
                               const char *label)
{
    static const char *const keys[] = {"url", "timeout", "headers", "tls", NULL};
    char what[256], where[160];
    snprintf(what, sizeof(what), "function '%s'", f->name);
    sf_ynode_check_map(y, n, what, keys);
    yaml_node_t *v[4];
    sf_ynode_fields(y, n, what, keys, NULL, v);
    if (v[0] == NULL) {
        sf_ydoc_error(y, n, "%s needs a url", label);
    } else {
        snprintf(where, sizeof(where), "functions.%s.url", f->name);
        load_url(y, v[0], label, where, &f->url);
    }
    if (v[1] != NULL) {
        uint64_t ms;
        snprintf(what, sizeof(what), "%s: timeout", label);
        if (sf_yget_duration_ms(y, v[1], what, &ms) == 0) {
            if (ms == 0)
                sf_ydoc_error(y, v[1], "%s must be greater than zero", what);
            else if (ms > 3600000)
                sf_ydoc_error(y, v[1], "%s must be at most 1h", what);
            else
                f->timeout_ms = ms;
        }
    }
    if (v[2] != NULL)
        load_function_headers(y, f, v[2], label);
    if (v[3] != NULL)
        load_function_tls(y, t, f, v[3], label);
}

static void function_dispose(sf_function *f)
{
    free(f->name);
    sf_upstream_url_dispose(&f->url);
    for (size_t i = 0; i < f->nheaders; i++) {
        free(f->headers[i].name);
        free(f->headers[i].value);
    }
    free(f->headers);
    free(f->tls_ca);
}

static void load_functions(sf_ydoc *y, sf_route_table *t, const yaml_node_t *n)
{
    if (sf_ynode_is_null(n))
        return;
    if (n->type != YAML_MAPPING_NODE) {
        sf_ydoc_error(y, n, "functions must be a mapping of name: URL or name: {url: ...}, not %s",
                      n->type == YAML_SEQUENCE_NODE ? "a list" : "a single value");
        return;
    }
    t->functions = calloc(map_len(n) ? map_len(n) : 1, sizeof(*t->functions));
    if (t->functions == NULL)
        return;
    yaml_node_t *k, *v;
    SF_YMAP_EACH(y, n, k, v)
    {
        const char *name = text(y, k, "a function name");
        if (name == NULL)
            continue;
        sf_function f = {.tls_verify = 1, .line = line_of(k), .col = (int)k->start_mark.column + 1};
        char label[96];
        int dup = 0;
        snprintf(label, sizeof(label), "function '%.64s'", name);
        if (!is_name(name, "_-"))
            sf_ydoc_error(y, k,
                          "function name '%s' is invalid: use 1 to 64 letters, digits, '_' or "
                          "'-'",
                          name);
        for (size_t i = 0; i < t->nfunctions; i++) {
            if (strcmp(t->functions[i].name, name) == 0) {
                sf_ydoc_error(y, k, "function '%s' is already defined at line %d", name,
                              t->functions[i].line);
                dup = 1;
                break;
            }
        }
        f.name = strdup(name);
        if (f.name == NULL)
            continue;
        if (v->type == YAML_MAPPING_NODE) {
            load_function_long(y, t, &f, v, label);
        } else if (v->type == YAML_SCALAR_NODE) {
            char where[160];
            snprintf(where, sizeof(where), "functions.%s", f.name);
            load_url(y, v, label, where, &f.url);
        } else {
            sf_ydoc_error(y, v, "%s must be a URL or a mapping with url, not a list", label);
        }
        if (dup)
            function_dispose(&f);
        else
            t->functions[t->nfunctions++] = f;
    }
}

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void route_dispose(sf_route *r)
{
    free(r->name);
    free(r->path);
    free(r->regex_src);
    pcre2_code_free(r->regex);
    free_strv(r->methods, r->nmethods);
    for (size_t i = 0; i < r->nheaders; i++) {
        free(r->headers[i].name);
        free(r->headers[i].pattern);
        pcre2_code_free(r->headers[i].re);
    }
    free(r->headers);
    free(r->sticky_name);
    pcre2_code_free(r->rewrite_re);
    free(r->rewrite_src);
    free(r->rewrite_to);
    free_strv(r->shadow.methods, r->shadow.nmethods);
    free_strv(r->shadow.compare_headers, r->shadow.ncompare_headers);
    free_strv(r->shadow.ignore, r->shadow.nignore);
}

/* A list of method tokens (case-sensitive, RFC 9110 §9.1), unique. field names it in
 * messages. Returns 0 when every entry is valid. */
static int load_methods(sf_ydoc *y, const yaml_node_t *n, const char *label, const char *field,
                        char ***out, size_t *nout)
{
    if (n->type != YAML_SEQUENCE_NODE) {
        sf_ydoc_error(y, n, "%s: %s must be a list of methods, e.g. [GET, HEAD]", label, field);
        return -1;
    }
    if (seq_len(n) == 0) {
        sf_ydoc_error(y, n, "%s: %s must list at least one method", label, field);
        return -1;
    }
    char **v = calloc(seq_len(n), sizeof(*v));
    size_t count = 0;
    int bad = 0;
    if (v == NULL)
        return -1;
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        yaml_node_t *e = sf_ydoc_node(y, *it);
        char what[256];
        snprintf(what, sizeof(what), "%s: an entry of %s", label, field);
        const char *m = text(y, e, what);
        if (m == NULL) {
            bad = 1;
            continue;
        }
        if (!is_token(m)) {
            sf_ydoc_error(y, e, "%s: '%s' in %s is not a method name (an HTTP token)", label, m,
                          field);
            bad = 1;
            continue;
        }
        char up[NAME_MAX_LEN + 1];
        size_t len = strlen(m), lower = 0;
        for (size_t i = 0; i < len; i++) { /* all of it: the hint alone stops at the cap */
            if (i < NAME_MAX_LEN)
                up[i] = m[i] >= 'a' && m[i] <= 'z' ? (char)(m[i] - 'a' + 'A') : m[i];
            lower += m[i] >= 'a' && m[i] <= 'z';
        }
        up[len < NAME_MAX_LEN ? len : NAME_MAX_LEN] = '\0';
        if (lower) {
            sf_ydoc_error(y, e, "%s: methods are case-sensitive: write %s", label, up);
            bad = 1;
            continue;
        }
        size_t i;
        for (i = 0; i < count && strcmp(v[i], m) != 0; i++)
            ;
        if (i < count) {
            sf_ydoc_error(y, e, "%s: method %s is listed twice in %s", label, m, field);
            bad = 1;
            continue;
        }
        if ((v[count] = strdup(m)) != NULL)
            count++;
    }
    *out = v;
    *nout = count;
    return bad ? -1 : 0;
}

static void load_match_headers(sf_ydoc *y, sf_route *r, const yaml_node_t *n, const char *label)
{
    if (n->type != YAML_MAPPING_NODE) {
        sf_ydoc_error(y, n, "%s: match.headers must be a mapping of header-name: regex", label);
        return;
    }
    r->headers = calloc(map_len(n) ? map_len(n) : 1, sizeof(*r->headers));
    if (r->headers == NULL)
        return;
    yaml_node_t *k, *v;
    SF_YMAP_EACH(y, n, k, v)
    {
        const char *name = text(y, k, "a header name");
        if (name == NULL)
            continue;
        int bad = 0;
        if (!is_token(name)) {
            sf_ydoc_error(y, k, "%s: header name '%s' in match.headers is not a valid HTTP token",
                          label, name);
            bad = 1;
        }
        for (size_t i = 0; !bad && i < r->nheaders; i++) {
            if (strcasecmp(r->headers[i].name, name) == 0) {
                sf_ydoc_error(y, k,
                              "%s: header %s is given twice in match.headers (header names are "
                              "case-insensitive)",
                              label, name);
                bad = 1;
            }
        }
        char what[256];
        snprintf(what, sizeof(what), "%s: the regex for header %s", label, name);
        const char *src = text(y, v, what);
        if (src == NULL || bad)
            continue;
        pcre2_code *re = compile_re(y, v, what, src);
        if (re == NULL)
            continue;
        sf_header_match *h = &r->headers[r->nheaders];
        h->name = strdup(name);
        h->pattern = strdup(src);
        h->re = re;
        h->name_len = h->name ? strlen(h->name) : 0;
        r->nheaders++;
    }
}

/* match.path: a prefix stored as the matcher sees request paths, normalized. */
static void load_path(sf_ydoc *y, sf_route *r, const yaml_node_t *n, const char *label)
{
    char what[256];
    snprintf(what, sizeof(what), "%s: match.path", label);
    const char *p = text(y, n, what);
    if (p == NULL)
        return;
    size_t len = strlen(p);
    if (p[0] != '/') {
        sf_ydoc_error(y, n, "%s must start with '/', not '%s'", what, p);
        return;
    }
    const char *bad = strpbrk(p, "?#");
    if (bad != NULL) {
        sf_ydoc_error(y, n, "%s must not contain '%c': routes match the path only", what, *bad);
        return;
    }
    /* normalizing never lengthens a path */
    if ((r->path = malloc(len + 1)) == NULL)
        return;
    ssize_t nl = sf_path_normalize(p, len, r->path);
    if (nl < 0) {
        sf_ydoc_error(y, n,
                      "%s '%s' cannot be normalized safely (an invalid escape, %%00 or '..' "
                      "above the root)",
                      what, p);
        free(r->path);
        r->path = NULL;
        return;
    }
    r->path[nl] = '\0';
    r->path_len = (size_t)nl;
}

/* Returns 1 when the match block is valid (the route can take part in reachability checks). */
static int load_match(sf_ydoc *y, sf_route *r, const yaml_node_t *n, const char *label)
{
    static const char *const keys[] = {"path", "regex", "methods", "headers", NULL};
    char what[256];
    int errors = y->diags->errors;
    snprintf(what, sizeof(what), "match of %s", label);
    if (sf_ynode_check_map(y, n, what, keys) < 0)
        return 0;
    yaml_node_t *k[4], *v[4];
    sf_ynode_fields(y, n, what, keys, k, v);
    if (v[0] == NULL && v[1] == NULL) {
        sf_ydoc_error(y, n, "%s: match needs a path or a regex", label);
    } else if (v[0] != NULL && v[1] != NULL) {
        const yaml_node_t *second = k[0]->start_mark.index > k[1]->start_mark.index ? k[0] : k[1];
        sf_ydoc_error(y, second, "%s: match has both path and regex; use one", label);
    }
    if (v[0] != NULL)
        load_path(y, r, v[0], label);
    if (v[1] != NULL) {
        snprintf(what, sizeof(what), "%s: match.regex", label);
        const char *src = text(y, v[1], what);
        if (src != NULL && (r->regex = compile_re(y, v[1], what, src)) != NULL)
            r->regex_src = strdup(src);
    }
    if (v[2] != NULL)
        load_methods(y, v[2], label, "match.methods", &r->methods, &r->nmethods);
    if (v[3] != NULL)
        load_match_headers(y, r, v[3], label);
    return y->diags->errors == errors;
}

/* Checks every '$' of a pcre2_substitute replacement against the pattern's groups. */
static void check_rewrite_to(sf_ydoc *y, const yaml_node_t *n, const char *label, const char *to,
                             const pcre2_code *re)
{
    uint32_t caps = 0;
    pcre2_pattern_info(re, PCRE2_INFO_CAPTURECOUNT, &caps);
    for (size_t i = 0; to[i] != '\0'; i++) {
        if (to[i] != '$')
            continue;
        const char *p = to + i + 1;
        if (*p == '$') {
            i++;
            continue;
        }
        if (*p >= '0' && *p <= '9') {
            unsigned long g = 0;
            size_t len = 0;
            for (; p[len] >= '0' && p[len] <= '9'; len++)
                g = g < 100000 ? g * 10 + (unsigned long)(p[len] - '0') : g;
            if (g > caps)
                sf_ydoc_error_at(y, n, i,
                                 "%s: rewrite.to refers to group $%.*s but the regex has %u "
                                 "capture group%s",
                                 label, (int)len, p, caps, caps == 1 ? "" : "s");
            i += len;
            continue;
        }
        if (*p == '{') {
            const char *close = strchr(p, '}');
            if (close == NULL) {
                sf_ydoc_error_at(y, n, i, "%s: rewrite.to has an unterminated ${ (at offset %zu)",
                                 label, i);
                return;
            }
            const char *in = p + 1;
            size_t len = (size_t)(close - in), digits = 0;
            while (digits < len && in[digits] >= '0' && in[digits] <= '9')
                digits++;
            if (len > 0 && digits == len) {
                unsigned long g = 0;
                for (size_t j = 0; j < len; j++)
                    g = g < 100000 ? g * 10 + (unsigned long)(in[j] - '0') : g;
                if (g > caps)
                    sf_ydoc_error_at(y, n, i,
                                     "%s: rewrite.to refers to group ${%.*s} but the regex has "
                                     "%u capture group%s",
                                     label, (int)len, in, caps, caps == 1 ? "" : "s");
            } else if (is_env_name(in, len) && len <= NAME_MAX_LEN) {
                char name[NAME_MAX_LEN + 1];
                memcpy(name, in, len);
                name[len] = '\0';
                if (pcre2_substring_number_from_name(re, (PCRE2_SPTR)name) < 0)
                    sf_ydoc_error_at(y, n, i,
                                     "%s: rewrite.to refers to ${%s} but the regex has no group "
                                     "named %s",
                                     label, name, name);
            } else {
                sf_ydoc_error_at(y, n, i,
                                 "%s: rewrite.to has '${%.*s}', which is neither a group number "
                                 "nor a group name",
                                 label, (int)len, in);
            }
            i += 1 + len + 1;
            continue;
        }
        sf_ydoc_error_at(y, n, i,
                         "%s: rewrite.to has a '$' that is not a reference (at offset %zu): "
                         "write $N or ${N} for a group, ${name} for a named group, $$ for a "
                         "dollar sign",
                         label, i);
    }
}

static void load_rewrite(sf_ydoc *y, sf_route *r, const yaml_node_t *n, const char *label)
{
    static const char *const keys[] = {"regex", "to", NULL};
    char what[256];
    snprintf(what, sizeof(what), "rewrite of %s", label);
    if (sf_ynode_check_map(y, n, what, keys) < 0)
        return;
    yaml_node_t *v[2];
    sf_ynode_fields(y, n, what, keys, NULL, v);
    if (v[0] == NULL)
        sf_ydoc_error(y, n, "%s: rewrite needs a regex", label);
    if (v[1] == NULL)
        sf_ydoc_error(y, n, "%s: rewrite needs to (the new path, with $1 for a group)", label);
    if (v[0] != NULL) {
        snprintf(what, sizeof(what), "%s: rewrite.regex", label);
        const char *src = text(y, v[0], what);
        if (src != NULL && (r->rewrite_re = compile_re(y, v[0], what, src)) != NULL)
            r->rewrite_src = strdup(src);
    }
    if (v[1] != NULL) {
        snprintf(what, sizeof(what), "%s: rewrite.to", label);
        const char *to = text(y, v[1], what);
        if (to != NULL && to[0] == '\0')
            sf_ydoc_error(y, v[1], "%s must not be empty", what);
        else if (to != NULL && (r->rewrite_to = strdup(to)) != NULL && r->rewrite_re != NULL)
            check_rewrite_to(y, v[1], label, to, r->rewrite_re);
    }
}

static void load_sticky(sf_ydoc *y, sf_route *r, const yaml_node_t *n, const char *label)
{
    char what[256];
    snprintf(what, sizeof(what), "%s: sticky", label);
    const char *s = text(y, n, what);
    if (s == NULL)
        return;
    const char *name = NULL, *kind = NULL;
    if (strcmp(s, "none") == 0) {
        r->sticky = SF_STICKY_NONE;
        return;
    }
    if (strcmp(s, "client_ip") == 0) {
        r->sticky = SF_STICKY_CLIENT_IP;
        return;
    }
    if (strncmp(s, "header:", 7) == 0) {
        name = s + 7;
        kind = "header";
    } else if (strncmp(s, "cookie:", 7) == 0) {
        name = s + 7;
        kind = "cookie";
    } else {
        sf_ydoc_error(y, n, "%s must be header:NAME, cookie:NAME, client_ip or none, not '%s'",
                      what, s);
        return;
    }
    if (name[0] == '\0') {
        sf_ydoc_error(y, n, "%s '%s:' needs a %s name, e.g. %s:%s", what, kind, kind, kind,
                      kind[0] == 'h' ? "x-user-id" : "session");
        return;
    }
    if (!is_token(name)) {
        sf_ydoc_error(y, n, "%s %s name '%s' is not a valid HTTP token", what, kind, name);
        return;
    }
    r->sticky = kind[0] == 'h' ? SF_STICKY_HEADER : SF_STICKY_COOKIE;
    r->sticky_name = strdup(name);
    r->sticky_len = r->sticky_name ? strlen(name) : 0;
}

/* RFC 6901: "" (the whole document) or '/'-separated segments where '~' only starts ~0 or ~1. */
static const char *pointer_problem(const char *p)
{
    if (p[0] != '\0' && p[0] != '/')
        return "it must be empty or start with '/'";
    for (; *p; p++)
        if (*p == '~' && p[1] != '0' && p[1] != '1')
            return "'~' must be followed by 0 or 1 (~0 is '~', ~1 is '/')";
    return NULL;
}

static void load_compare(sf_ydoc *y, sf_shadow_conf *s, const yaml_node_t *n, const char *label)
{
    static const char *const keys[] = {"status", "headers", "body", "ignore", NULL};
    static const char *const bodies[] = {"auto", "bytes", "json", "none", NULL};
    char what[256];
    snprintf(what, sizeof(what), "shadow.compare of %s", label);
    if (sf_ynode_check_map(y, n, what, keys) < 0)
        return;
    yaml_node_t *v[4];
    sf_ynode_fields(y, n, what, keys, NULL, v);
    if (v[0] != NULL) {
        snprintf(what, sizeof(what), "%s: shadow.compare.status", label);
        sf_yget_bool(y, v[0], what, &s->compare_status);
    }
    if (v[1] != NULL && v[1]->type != YAML_SEQUENCE_NODE) {
        sf_ydoc_error(y, v[1], "%s: shadow.compare.headers must be a list of header names", label);
    } else if (v[1] != NULL && seq_len(v[1]) > SF_SHADOW_HEADERS_MAX) {
        sf_ydoc_error(y, v[1], "%s: shadow.compare.headers lists %zu headers; at most %d", label,
                      seq_len(v[1]), SF_SHADOW_HEADERS_MAX);
    } else if (v[1] != NULL && (s->compare_headers = calloc(seq_len(v[1]) + 1, sizeof(char *)))) {
        for (yaml_node_item_t *it = v[1]->data.sequence.items.start;
             it < v[1]->data.sequence.items.top; it++) {
            yaml_node_t *e = sf_ydoc_node(y, *it);
            snprintf(what, sizeof(what), "%s: an entry of shadow.compare.headers", label);
            const char *h = text(y, e, what);
            if (h == NULL)
                continue;
            if (!is_token(h)) {
                sf_ydoc_error(y, e,
                              "%s: '%s' in shadow.compare.headers is not a header name (an HTTP "
                              "token)",
                              label, h);
                continue;
            }
            size_t i;
            for (i = 0; i < s->ncompare_headers && strcasecmp(s->compare_headers[i], h); i++)
                ;
            if (i < s->ncompare_headers) {
                sf_ydoc_error(y, e, "%s: header %s is listed twice in shadow.compare.headers",
                              label, h);
                continue;
            }
            char *low = strdup(h);
            if (low == NULL)
                continue;
            for (char *c = low; *c; c++)
                if (*c >= 'A' && *c <= 'Z')
                    *c = (char)(*c - 'A' + 'a');
            s->compare_headers[s->ncompare_headers++] = low;
        }
    }
    if (v[2] != NULL) {
        snprintf(what, sizeof(what), "%s: shadow.compare.body", label);
        const char *b = text(y, v[2], what);
        int i;
        for (i = 0; b != NULL && bodies[i] != NULL && strcmp(b, bodies[i]) != 0; i++)
            ;
        if (b != NULL && bodies[i] == NULL)
            sf_ydoc_error(y, v[2], "%s must be auto, bytes, json or none, not '%s'", what, b);
        else if (b != NULL)
            s->body_mode = i; /* bodies[] is in SF_BODY_* order */
    }
    if (v[3] != NULL && v[3]->type != YAML_SEQUENCE_NODE) {
        sf_ydoc_error(y, v[3], "%s: shadow.compare.ignore must be a list of JSON Pointers", label);
    } else if (v[3] != NULL && (s->ignore = calloc(seq_len(v[3]) + 1, sizeof(char *)))) {
        for (yaml_node_item_t *it = v[3]->data.sequence.items.start;
             it < v[3]->data.sequence.items.top; it++) {
            yaml_node_t *e = sf_ydoc_node(y, *it);
            snprintf(what, sizeof(what), "%s: an entry of shadow.compare.ignore", label);
            const char *p = text(y, e, what);
            const char *why = p ? pointer_problem(p) : NULL;
            if (p == NULL)
                continue;
            if (why != NULL) {
                sf_ydoc_error(y, e, "%s: '%s' in shadow.compare.ignore is not a JSON Pointer: %s",
                              label, p, why);
                continue;
            }
            if ((s->ignore[s->nignore] = strdup(p)) != NULL)
                s->nignore++;
        }
    }
}

static void load_shadow(sf_ydoc *y, sf_route *r, const yaml_node_t *n, const char *label)
{
    static const char *const keys[] = {"percent",     "methods",      "compare",
                                       "learn_noise", "max_inflight", NULL};
    sf_shadow_conf *s = &r->shadow;
    char what[256];
    snprintf(what, sizeof(what), "shadow of %s", label);
    if (sf_ynode_check_map(y, n, what, keys) < 0)
        return;
    s->enabled = 1;
    s->percent_bp = SF_CUTOVER_MAX;
    s->compare_status = 1;
    s->body_mode = SF_BODY_AUTO;
    s->max_inflight = SF_SHADOW_ROUTE_INFLIGHT;
    yaml_node_t *v[5];
    sf_ynode_fields(y, n, what, keys, NULL, v);
    if (v[0] != NULL) {
        snprintf(what, sizeof(what), "%s: shadow.percent", label);
        sf_yget_percent_bp(y, v[0], what, &s->percent_bp);
    }
    if (v[1] != NULL) {
        load_methods(y, v[1], label, "shadow.methods", &s->methods, &s->nmethods);
    } else if ((s->methods = calloc(2, sizeof(char *))) != NULL) {
        /* writes are never shadowed unless listed (DESIGN §4) */
        s->methods[0] = strdup("GET");
        s->methods[1] = strdup("HEAD");
        s->nmethods = 2;
    }
    if (v[2] != NULL)
        load_compare(y, s, v[2], label);
    if (v[3] != NULL) {
        snprintf(what, sizeof(what), "%s: shadow.learn_noise", label);
        sf_yget_bool(y, v[3], what, &s->learn_noise);
    }
    if (v[4] != NULL) {
        uint64_t cap;
        snprintf(what, sizeof(what), "%s: shadow.max_inflight", label);
        if (sf_yget_uint(y, v[4], what, 1, 1000000, &cap) == 0)
            s->max_inflight = (uint32_t)cap;
    }
}

static void load_guard(sf_ydoc *y, sf_route *r, const yaml_node_t *n, const char *label,
                       int has_shadow)
{
    static const char *const keys[] = {"window",
                                       "min_requests",
                                       "max_error_ratio",
                                       "max_mismatch_ratio",
                                       "max_p99_ratio",
                                       "dry_run",
                                       NULL};
    sf_guard_conf *g = &r->guard;
    char what[256];
    snprintf(what, sizeof(what), "guard of %s", label);
    if (sf_ynode_check_map(y, n, what, keys) < 0)
        return;
    g->enabled = 1;
    g->window_ms = 60000;
    g->min_requests = 100;
    yaml_node_t *k[6], *v[6];
    sf_ynode_fields(y, n, what, keys, k, v);
    if (v[0] != NULL) {
        uint64_t ms;
        snprintf(what, sizeof(what), "%s: guard.window", label);
        if (sf_yget_duration_ms(y, v[0], what, &ms) == 0) {
            if (ms < 1000 || ms > 300000)
                sf_ydoc_error(y, v[0],
                              "%s must be between 1s and 5m (the stats keep 5 minutes), not %s",
                              what, (const char *)v[0]->data.scalar.value);
            else
                g->window_ms = ms;
        }
    }
    if (v[1] != NULL) {
        snprintf(what, sizeof(what), "%s: guard.min_requests", label);
        sf_yget_uint(y, v[1], what, 1, 1000000000, &g->min_requests);
    }
    double *ratio[] = {&g->max_error_ratio, &g->max_mismatch_ratio, &g->max_p99_ratio};
    for (int i = 0; i < 3; i++) {
        if (v[2 + i] == NULL)
            continue;
        snprintf(what, sizeof(what), "%s: guard.%s", label, keys[2 + i]);
        double x;
        if (sf_yget_decimal(y, v[2 + i], what, 0, i == 2 ? 1000 : 1, &x) < 0)
            continue;
        if (i == 2 && x <= 0)
            sf_ydoc_error(y, v[2 + i], "%s must be greater than 0", what);
        else
            *ratio[i] = x;
    }
    if (v[5] != NULL) {
        snprintf(what, sizeof(what), "%s: guard.dry_run", label);
        sf_yget_bool(y, v[5], what, &g->dry_run);
    }
    if (v[2] == NULL && v[3] == NULL && v[4] == NULL)
        sf_ydoc_error(y, n,
                      "%s: guard checks nothing: set max_error_ratio, max_mismatch_ratio or "
                      "max_p99_ratio",
                      label);
    if (v[3] != NULL && !has_shadow)
        sf_ydoc_warning(y, k[3],
                        "%s: guard.max_mismatch_ratio has no effect: the route has no shadow, "
                        "so nothing is compared",
                        label);
}

static void load_route_function(sf_ydoc *y, sf_route_table *t, sf_route *r, const yaml_node_t *n,
                                const char *label)
{
    char what[256];
    snprintf(what, sizeof(what), "%s: function", label);
    const char *name = text(y, n, what);
    if (name == NULL)
        return;
    for (size_t i = 0; i < t->nfunctions; i++) {
        if (strcmp(t->functions[i].name, name) == 0) {
            r->function = &t->functions[i];
            r->function_index = i;
            return;
        }
    }
    char list[400];
    size_t off = 0;
    list[0] = '\0';
    for (size_t i = 0; i < t->nfunctions && off < sizeof(list) - 8; i++) {
        int w = snprintf(list + off, sizeof(list) - off, "%s%s",
                         i ? ", " : "defined: ", t->functions[i].name);
        off = w > 0 && off + (size_t)w < sizeof(list) ? off + (size_t)w : sizeof(list);
    }
    if (off >= sizeof(list) - 8)
        memcpy(list + sizeof(list) - 8, ", ...", 6);
    sf_ydoc_error(y, n, "%s: function '%s' is not defined under functions (%s)", label, name,
                  t->nfunctions ? list : "no function is defined");
}

/* True when every request b matches is matched by a first (DESIGN §4: first match wins). */
static int covers(const sf_route *a, const sf_route *b)
{
    if (a->methods != NULL) {
        if (b->methods == NULL)
            return 0;
        for (size_t i = 0; i < b->nmethods; i++) {
            size_t j;
            for (j = 0; j < a->nmethods && strcmp(a->methods[j], b->methods[i]) != 0; j++)
                ;
            if (j == a->nmethods)
                return 0;
        }
    }
    for (size_t i = 0; i < a->nheaders; i++) {
        size_t j;
        for (j = 0; j < b->nheaders; j++)
            if (strcasecmp(a->headers[i].name, b->headers[j].name) == 0 &&
                strcmp(a->headers[i].pattern, b->headers[j].pattern) == 0)
                break;
        if (j == b->nheaders)
            return 0;
    }
    if (a->path != NULL && strcmp(a->path, "/") == 0)
        return 1;
    if (a->path != NULL && b->path != NULL)
        return sf_path_prefix_match((sf_slice){a->path, a->path_len},
                                    (sf_slice){b->path, b->path_len});
    return a->regex_src != NULL && b->regex_src != NULL && strcmp(a->regex_src, b->regex_src) == 0;
}

enum {
    RK_NAME,
    RK_MATCH,
    RK_FUNCTION,
    RK_REWRITE,
    RK_CUTOVER,
    RK_STICKY,
    RK_FALLBACK,
    RK_SHADOW,
    RK_GUARD,
    RK_COUNT
};

/* Loads routes[i] from n. match_ok[j] says whether route j's match loaded cleanly. */
static void load_route(sf_ydoc *y, sf_route_table *t, size_t i, const yaml_node_t *n,
                       char *match_ok)
{
    static const char *const keys[] = {"name",   "match",    "function", "rewrite", "cutover",
                                       "sticky", "fallback", "shadow",   "guard",   NULL};
    sf_route *r = &t->routes[i];
    char label[96], what[256];
    r->index = i;
    r->line = line_of(n);
    r->col = (int)n->start_mark.column + 1;
    r->guard.max_error_ratio = r->guard.max_mismatch_ratio = r->guard.max_p99_ratio = -1;
    snprintf(label, sizeof(label), "route #%zu", i + 1);
    if (n->type != YAML_MAPPING_NODE) {
        sf_ydoc_error(y, n, "%s must be a mapping (name, match, function, ...)", label);
        return;
    }
    /* the name first: every other message names the route */
    yaml_node_t *k, *val, *v[RK_COUNT];
    SF_YMAP_EACH(y, n, k, val)
    {
        if (k->type == YAML_SCALAR_NODE &&
            strcmp((const char *)k->data.scalar.value, "name") == 0) {
            if (val->type == YAML_SCALAR_NODE &&
                is_name((const char *)val->data.scalar.value, "_.-"))
                snprintf(label, sizeof(label), "route '%s'", (const char *)val->data.scalar.value);
            break;
        }
    }
    sf_ynode_fields(y, n, label, keys, NULL, v);
    if (v[RK_NAME] == NULL) {
        sf_ydoc_error(y, n, "%s needs a name", label);
    } else {
        const char *name = text(y, v[RK_NAME], "a route name");
        if (name != NULL && !is_name(name, "_.-")) {
            sf_ydoc_error(y, v[RK_NAME],
                          "route name '%s' is invalid: use 1 to 64 letters, digits, '_', '.' or "
                          "'-'",
                          name);
        } else if (name != NULL) {
            if (strcmp(name, "_default") == 0)
                sf_ydoc_error(y, v[RK_NAME],
                              "route name '_default' is reserved: it names unmatched traffic in "
                              "the stats");
            for (size_t j = 0; j < i; j++) {
                if (t->routes[j].name != NULL && strcmp(t->routes[j].name, name) == 0) {
                    sf_ydoc_error(y, v[RK_NAME],
                                  "route name '%s' is already used by the route at line %d", name,
                                  t->routes[j].line);
                    break;
                }
            }
            r->name = strdup(name);
            r->name_len = r->name ? strlen(name) : 0;
        }
    }
    sf_ynode_check_map(y, n, label, keys);
    if (v[RK_MATCH] == NULL)
        sf_ydoc_error(y, n, "%s needs a match (a path or a regex)", label);
    else
        match_ok[i] = (char)load_match(y, r, v[RK_MATCH], label);
    if (v[RK_FUNCTION] == NULL)
        sf_ydoc_error(y, n, "%s needs a function (the name of an entry under functions)", label);
    else
        load_route_function(y, t, r, v[RK_FUNCTION], label);
    if (v[RK_REWRITE] != NULL)
        load_rewrite(y, r, v[RK_REWRITE], label);
    if (v[RK_CUTOVER] != NULL) {
        snprintf(what, sizeof(what), "%s: cutover", label);
        sf_yget_percent_bp(y, v[RK_CUTOVER], what, &r->cutover_bp);
    }
    if (v[RK_STICKY] != NULL)
        load_sticky(y, r, v[RK_STICKY], label);
    if (v[RK_FALLBACK] != NULL) {
        snprintf(what, sizeof(what), "%s: fallback", label);
        sf_yget_bool(y, v[RK_FALLBACK], what, &r->fallback);
    }
    if (v[RK_SHADOW] != NULL)
        load_shadow(y, r, v[RK_SHADOW], label);
    if (v[RK_GUARD] != NULL)
        load_guard(y, r, v[RK_GUARD], label, v[RK_SHADOW] != NULL);
    if (!match_ok[i])
        return;
    for (size_t j = 0; j < i; j++) {
        if (match_ok[j] && covers(&t->routes[j], r)) {
            sf_ydoc_warning(y, v[RK_NAME] ? v[RK_NAME] : v[RK_MATCH],
                            "%s can never match: %s%s%s (line %d) matches every request it would",
                            label, t->routes[j].name ? "route '" : "route #",
                            t->routes[j].name ? t->routes[j].name : "",
                            t->routes[j].name ? "'" : "", t->routes[j].line);
            break;
        }
    }
}

static void load_routes(sf_ydoc *y, sf_route_table *t, const yaml_node_t *n)
{
    if (sf_ynode_is_null(n))
        return;
    if (n->type != YAML_SEQUENCE_NODE) {
        sf_ydoc_error(y, n, "routes must be a list of routes (- name: ...), not %s",
                      n->type == YAML_MAPPING_NODE ? "a mapping" : "a single value");
        return;
    }
    size_t count = seq_len(n);
    char *match_ok = calloc(count ? count : 1, 1);
    t->routes = calloc(count ? count : 1, sizeof(*t->routes));
    if (t->routes == NULL || match_ok == NULL) {
        free(match_ok);
        sf_ydoc_error(y, n, "out of memory");
        return;
    }
    t->nroutes = count;
    for (size_t i = 0; i < count; i++)
        load_route(y, t, i, sf_ydoc_node(y, n->data.sequence.items.start[i]), match_ok);
    free(match_ok);
}

/* Reads the whole file: the digest and the parse see the same bytes even if it is replaced
 * meanwhile. */
static unsigned char *read_file(const char *path, size_t *len, sf_diags *d)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf = NULL;
    size_t cap = 0, n = 0;
    if (f == NULL) {
        sf_diags_add(d, 0, path, 0, 0, "cannot open: %s", strerror(errno));
        return NULL;
    }
    for (;;) {
        if (n == cap) {
            if (cap >= FILE_MAX_BYTES) {
                sf_diags_add(d, 0, path, 0, 0, "is larger than %u MiB", FILE_MAX_BYTES >> 20);
                goto fail;
            }
            cap = cap ? cap * 2 : 16384;
            unsigned char *b = realloc(buf, cap);
            if (b == NULL) {
                sf_diags_add(d, 0, path, 0, 0, "out of memory");
                goto fail;
            }
            buf = b;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f)) {
                sf_diags_add(d, 0, path, 0, 0, "cannot read: %s", strerror(errno));
                goto fail;
            }
            break;
        }
    }
    fclose(f);
    *len = n;
    return buf;
fail:
    fclose(f);
    free(buf);
    return NULL;
}

static void hash_bytes(const unsigned char *p, size_t len, char out[17])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    out[0] = '\0';
    if (EVP_Digest(p, len, md, &mdlen, EVP_sha256(), NULL) && mdlen >= 8)
        for (int i = 0; i < 8; i++)
            snprintf(out + 2 * i, 3, "%02x", md[i]);
}

sf_route_table *sf_table_load(const char *path, sf_diags *d)
{
    return sf_table_load_ex(path, d, 0);
}

sf_route_table *sf_table_load_ex(const char *path, sf_diags *d, unsigned flags)
{
    static const char *const keys[] = {"legacy", "functions", "routes", NULL};
    sf_ydoc y;
    int errors_before = d->errors;
    size_t first = d->n;
    size_t len = 0;
    unsigned char *buf = NULL;
    sf_route_table *t = calloc(1, sizeof(*t));

    memset(&y, 0, sizeof(y));
    if (t == NULL || (t->path = strdup(path)) == NULL || (t->dir = dir_of(path)) == NULL) {
        sf_diags_add(d, 0, path, 0, 0, "out of memory");
        goto fail;
    }
    t->refs = 1;
    if ((buf = read_file(path, &len, d)) == NULL)
        goto fail;
    hash_bytes(buf, len, t->version);
    if (sf_ydoc_load_buffer(&y, path, buf, len, d) < 0)
        goto fail;
    y.env_placeholders = (flags & SF_TABLE_ENV_PLACEHOLDERS) != 0;
    yaml_node_t *root = sf_ydoc_root(&y);
    if (sf_ynode_check_map(&y, root, "routes.yaml", keys) < 0)
        goto fail;
    yaml_node_t *v[3];
    sf_ynode_fields(&y, root, "routes.yaml", keys, NULL, v);
    if (v[0] == NULL)
        sf_ydoc_error(&y, root, "legacy is required: the URL of the monolith");
    else
        load_url(&y, v[0], "legacy", "legacy", &t->legacy);
    if (v[1] != NULL)
        load_functions(&y, t, v[1]);
    if (v[2] != NULL)
        load_routes(&y, t, v[2]);
    sf_ydoc_sort_diags(&y, first);
    if (d->errors > errors_before)
        goto fail;
    t->index = sf_match_index_create(t->routes, t->nroutes);
    if (t->index == NULL) {
        sf_diags_add(d, 0, path, 0, 0, "out of memory indexing the routes");
        goto fail;
    }
    sf_ydoc_dispose(&y);
    free(buf);
    return t;
fail:
    sf_ydoc_dispose(&y);
    free(buf);
    sf_table_unref(t);
    return NULL;
}

const sf_match_index *sf_table_match_index(const sf_route_table *t)
{
    return t->index;
}

sf_route_table *sf_table_ref(sf_route_table *t)
{
    atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
    return t;
}

void sf_table_unref(sf_route_table *t)
{
    if (t == NULL || atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) > 1)
        return;
    sf_match_index_destroy(t->index);
    for (size_t i = 0; i < t->nroutes; i++)
        route_dispose(&t->routes[i]);
    free(t->routes);
    for (size_t i = 0; i < t->nfunctions; i++)
        function_dispose(&t->functions[i]);
    free(t->functions);
    sf_upstream_url_dispose(&t->legacy);
    free(t->path);
    free(t->dir);
    free(t);
}

const sf_upstream_url *sf_table_legacy(const sf_route_table *t)
{
    return &t->legacy;
}

const sf_function *sf_table_functions(const sf_route_table *t, size_t *n)
{
    *n = t->nfunctions;
    return t->functions;
}

const sf_route *sf_table_routes(const sf_route_table *t, size_t *n)
{
    *n = t->nroutes;
    return t->routes;
}

const char *sf_route_sticky_text(const sf_route *r, char *buf, size_t len)
{
    switch (r->sticky) {
    case SF_STICKY_HEADER:
        snprintf(buf, len, "header:%s", r->sticky_name ? r->sticky_name : "");
        return buf;
    case SF_STICKY_COOKIE:
        snprintf(buf, len, "cookie:%s", r->sticky_name ? r->sticky_name : "");
        return buf;
    case SF_STICKY_CLIENT_IP:
        return "client_ip";
    default:
        return "none";
    }
}

const sf_route *sf_table_route(const sf_route_table *t, const char *name)
{
    for (size_t i = 0; i < t->nroutes; i++)
        if (t->routes[i].name != NULL && strcmp(t->routes[i].name, name) == 0)
            return &t->routes[i];
    return NULL;
}

const char *sf_table_version(const sf_route_table *t)
{
    return t->version;
}

const char *sf_table_path(const sf_route_table *t)
{
    return t->path;
}
