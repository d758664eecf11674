/* strangler.yaml loader. Unknown keys and bad values are errors at FILE:LINE:COL; all of them
 * are reported, and nothing is started until the whole file is valid. */
#include "settings.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "yconf.h"

char *sf_path_join(const char *dir, const char *rel)
{
    if (rel[0] == '/' || dir == NULL || dir[0] == '\0')
        return strdup(rel);
    size_t a = strlen(dir), b = strlen(rel);
    char *p = malloc(a + b + 2);
    if (p == NULL)
        return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, rel, b + 1);
    return p;
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

/* Checks "host:port" syntax (IPv4, name, or [IPv6]) with a port 1..65535. */
static int check_address(sf_ydoc *y, const yaml_node_t *n, const char *what, const char *a)
{
    const char *colon = strrchr(a, ':');
    if (colon == NULL || colon == a || colon[1] == '\0') {
        sf_ydoc_error(y, n, "%s must be host:port, not '%s'", what, a);
        return -1;
    }
    long port = 0;
    for (const char *p = colon + 1; *p; p++) {
        if (*p < '0' || *p > '9' || port > 65535)
            goto badport;
        port = port * 10 + (*p - '0');
    }
    if (port < 1 || port > 65535)
        goto badport;
    return 0;
badport:
    sf_ydoc_error(y, n, "%s has an invalid port in '%s' (1..65535)", what, a);
    return -1;
}

static void load_path(sf_ydoc *y, sf_settings *s, const yaml_node_t *n, const char *what,
                      char **out)
{
    char *rel = NULL;
    if (sf_yget_string(y, n, what, &rel) == 0) {
        free(*out);
        *out = sf_path_join(s->dir, rel);
    }
    free(rel);
}

static void load_listen(sf_ydoc *y, sf_settings *s, yaml_node_t *n)
{
    static const char *const keys[] = {"address", "tls", NULL};
    static const char *const tls_keys[] = {"cert", "key", NULL};
    if (n->type != YAML_SEQUENCE_NODE) {
        sf_ydoc_error(y, n, "listen must be a list of {address: host:port}");
        return;
    }
    size_t count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (count == 0) {
        sf_ydoc_error(y, n, "listen must name at least one address");
        return;
    }
    s->listen = calloc(count, sizeof(*s->listen));
    if (s->listen == NULL)
        return;
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        yaml_node_t *e = sf_ydoc_node(y, *it);
        sf_listen_conf *l = &s->listen[s->nlisten++];
        l->line = (int)e->start_mark.line + 1;
        l->col = (int)e->start_mark.column + 1;
        if (sf_ynode_check_map(y, e, "a listen entry", keys) < 0)
            continue;
        yaml_node_t *k, *v;
        SF_YMAP_EACH(y, e, k, v)
        {
            if (sf_ynode_skip_key(y, e, k, "a listen entry"))
                continue;
            const char *key = (const char *)k->data.scalar.value;
            if (strcmp(key, "address") == 0) {
                if (sf_yget_string(y, v, "listen address", &l->address) == 0)
                    check_address(y, v, "listen address", l->address);
            } else if (strcmp(key, "tls") == 0) {
                if (sf_ynode_check_map(y, v, "listen tls", tls_keys) < 0)
                    continue;
                yaml_node_t *tk, *tv;
                SF_YMAP_EACH(y, v, tk, tv)
                {
                    if (sf_ynode_skip_key(y, v, tk, "listen tls"))
                        continue;
                    if (strcmp((const char *)tk->data.scalar.value, "cert") == 0) {
                        load_path(y, s, tv, "tls cert", &l->tls_cert);
                        l->cert_line = (int)tv->start_mark.line + 1;
                        l->cert_col = (int)tv->start_mark.column + 1;
                    } else if (strcmp((const char *)tk->data.scalar.value, "key") == 0) {
                        load_path(y, s, tv, "tls key", &l->tls_key);
                        l->key_line = (int)tv->start_mark.line + 1;
                        l->key_col = (int)tv->start_mark.column + 1;
                    }
                }
                /* the files themselves are loaded by the proxy (they hold keys, not YAML) */
                if (l->tls_cert == NULL || l->tls_key == NULL)
                    sf_ydoc_error(y, v, "listen tls needs both cert and key");
            }
        }
        if (l->address == NULL)
            sf_ydoc_error(y, e, "a listen entry needs an address");
    }
}

/* The host of "host:port" into out, spelled one way for comparisons: "localhost" as
 * 127.0.0.1, any wildcard ("", 0.0.0.0, [::], *) as "*". */
static void canonical_host(const char *hostport, char *out, size_t cap)
{
    const char *colon = strrchr(hostport, ':');
    size_t n = colon != NULL ? (size_t)(colon - hostport) : strlen(hostport);
    if (n >= cap)
        n = cap - 1;
    memcpy(out, hostport, n);
    out[n] = '\0';
    if (strcmp(out, "localhost") == 0)
        snprintf(out, cap, "127.0.0.1");
    else if (n == 0 || strcmp(out, "0.0.0.0") == 0 || strcmp(out, "[::]") == 0 ||
             strcmp(out, "*") == 0)
        snprintf(out, cap, "*");
}

/* True when binding both addresses would put them on the same socket address: the same port,
 * and the same host or a wildcard on either side. */
static int same_listen_address(const char *a, const char *b)
{
    const char *pa = strrchr(a, ':'), *pb = strrchr(b, ':');
    char ha[300], hb[300];
    if (pa == NULL || pb == NULL || atoi(pa + 1) != atoi(pb + 1))
        return 0;
    canonical_host(a, ha, sizeof(ha));
    canonical_host(b, hb, sizeof(hb));
    return strcmp(ha, hb) == 0 || strcmp(ha, "*") == 0 || strcmp(hb, "*") == 0;
}

/* The admin API never shares a listener with proxied traffic: its token and its reload or
 * cutover calls must not be reachable through the address clients use. */
static void check_admin_separate(sf_settings *s, sf_diags *d)
{
    for (size_t i = 0; i < s->nlisten; i++) {
        const sf_listen_conf *l = &s->listen[i];
        if (l->address == NULL || s->admin_address == NULL ||
            !same_listen_address(l->address, s->admin_address))
            continue;
        if (s->admin_line > 0)
            sf_diags_add(d, 0, s->path, s->admin_line, s->admin_col,
                         "admin address %s is also a listen address (line %d): the admin API "
                         "needs an address of its own",
                         s->admin_address, l->line);
        else
            sf_diags_add(d, 0, s->path, l->line, l->col,
                         "listen address %s is the admin API's default address: set "
                         "admin.address to another one",
                         l->address);
    }
}

/* True for an address only this machine can reach: 127.0.0.0/8, [::1], localhost. */
static int is_loopback(const char *hostport)
{
    return strncmp(hostport, "127.", 4) == 0 || strncmp(hostport, "[::1]:", 6) == 0 ||
           strncmp(hostport, "localhost:", 10) == 0;
}

/* The token: the file's first line without surrounding whitespace, at least 16 bytes. */
static void load_token(sf_ydoc *y, sf_settings *s, yaml_node_t *n)
{
    FILE *f = fopen(s->admin_token_file, "r");
    char buf[512];
    if (f == NULL) {
        sf_ydoc_error(y, n, "cannot read admin token_file %s: %s", s->admin_token_file,
                      strerror(errno));
        return;
    }
    size_t len = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[len] = '\0';
    if (len == sizeof(buf) - 1 && strchr(buf, '\n') == NULL) {
        sf_ydoc_error(y, n, "admin token_file %s: the token is longer than %zu bytes",
                      s->admin_token_file, sizeof(buf) - 2);
        return;
    }
    char *p = buf;
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
        p++;
    size_t n_ = strcspn(p, "\r\n");
    while (n_ > 0 && (p[n_ - 1] == ' ' || p[n_ - 1] == '\t'))
        n_--;
    if (n_ < 16) {
        sf_ydoc_error(y, n, "admin token_file %s must hold a token of at least 16 characters",
                      s->admin_token_file);
        return;
    }
    s->admin_token = strndup(p, n_);
}

static void load_admin(sf_ydoc *y, sf_settings *s, yaml_node_t *n)
{
    static const char *const keys[] = {"address", "token_file", NULL};
    if (sf_ynode_check_map(y, n, "admin", keys) < 0)
        return;
    yaml_node_t *k, *v, *addr = NULL;
    SF_YMAP_EACH(y, n, k, v)
    {
        if (sf_ynode_skip_key(y, n, k, "admin"))
            continue;
        const char *key = (const char *)k->data.scalar.value;
        if (strcmp(key, "address") == 0) {
            addr = v;
            s->admin_line = (int)v->start_mark.line + 1;
            s->admin_col = (int)v->start_mark.column + 1;
            if (sf_yget_string(y, v, "admin address", &s->admin_address) == 0)
                check_address(y, v, "admin address", s->admin_address);
        } else if (strcmp(key, "token_file") == 0 && !sf_ynode_is_null(v)) {
            load_path(y, s, v, "admin token_file", &s->admin_token_file);
            if (s->admin_token_file != NULL)
                load_token(y, s, v);
        }
    }
    if (addr != NULL && s->admin_token_file == NULL && s->admin_address != NULL &&
        !is_loopback(s->admin_address))
        sf_ydoc_error(y, addr,
                      "admin address %s is reachable from other machines: set admin.token_file "
                      "(every admin call then needs \"Authorization: Bearer <token>\"), or "
                      "listen on 127.0.0.1",
                      s->admin_address);
}

static void load_limits(sf_ydoc *y, sf_settings *s, yaml_node_t *n)
{
    static const char *const keys[] = {"max_header_bytes", "max_headers", "max_body_bytes",
                                       "max_connections", NULL};
    if (sf_ynode_check_map(y, n, "limits", keys) < 0)
        return;
    yaml_node_t *k, *v;
    SF_YMAP_EACH(y, n, k, v)
    {
        if (sf_ynode_skip_key(y, n, k, "limits"))
            continue;
        const char *key = (const char *)k->data.scalar.value;
        if (strcmp(key, "max_header_bytes") == 0)
            sf_yget_uint(y, v, "max_header_bytes", 256, 1 << 20, &s->max_header_bytes);
        else if (strcmp(key, "max_headers") == 0)
            sf_yget_uint(y, v, "max_headers", 1, 1000, &s->max_headers);
        else if (strcmp(key, "max_body_bytes") == 0)
            sf_yget_uint(y, v, "max_body_bytes", 0, INT64_MAX, &s->max_body_bytes);
        else if (strcmp(key, "max_connections") == 0)
            sf_yget_uint(y, v, "max_connections", 1, 10000000, &s->max_connections);
    }
}

static void load_timeouts(sf_ydoc *y, sf_settings *s, yaml_node_t *n)
{
    static const char *const keys[] = {
        "client_header",     "client_body", "keepalive", "upstream_connect",
        "upstream_response", "drain",       NULL};
    uint64_t *dst[] = {&s->client_header_ms,    &s->client_body_ms,       &s->keepalive_ms,
                       &s->upstream_connect_ms, &s->upstream_response_ms, &s->drain_ms};
    if (sf_ynode_check_map(y, n, "timeouts", keys) < 0)
        return;
    yaml_node_t *k, *v;
    SF_YMAP_EACH(y, n, k, v)
    {
        if (sf_ynode_skip_key(y, n, k, "timeouts"))
            continue;
        const char *key = (const char *)k->data.scalar.value;
        for (size_t i = 0; keys[i] != NULL; i++) {
            if (strcmp(key, keys[i]) != 0)
                continue;
            uint64_t ms;
            if (sf_yget_duration_ms(y, v, keys[i], &ms) < 0)
                break;
            if (ms == 0 && strcmp(key, "drain") != 0) {
                sf_ydoc_error(y, v, "timeout %s must be greater than zero", key);
                break;
            }
            *dst[i] = ms;
        }
    }
}

static void load_shadow(sf_ydoc *y, sf_settings *s, yaml_node_t *n)
{
    static const char *const keys[] = {"max_inflight", "max_body_bytes", "compare_body_bytes",
                                       NULL};
    if (sf_ynode_check_map(y, n, "shadow", keys) < 0)
        return;
    yaml_node_t *k, *v;
    SF_YMAP_EACH(y, n, k, v)
    {
        if (sf_ynode_skip_key(y, n, k, "shadow"))
            continue;
        const char *key = (const char *)k->data.scalar.value;
        if (strcmp(key, "max_inflight") == 0)
            sf_yget_uint(y, v, "shadow max_inflight", 0, 1000000, &s->shadow_max_inflight);
        else if (strcmp(key, "max_body_bytes") == 0)
            sf_yget_uint(y, v, "shadow max_body_bytes", 0, INT64_MAX, &s->shadow_max_body_bytes);
        else if (strcmp(key, "compare_body_bytes") == 0)
            sf_yget_uint(y, v, "shadow compare_body_bytes", 0, INT64_MAX,
                         &s->shadow_compare_body_bytes);
    }
}

static void load_log(sf_ydoc *y, sf_settings *s, yaml_node_t *n)
{
    static const char *const keys[] = {"level", "access", NULL};
    static const char *const levels[] = {"debug", "info", "warn", "error", NULL};
    if (sf_ynode_check_map(y, n, "log", keys) < 0)
        return;
    yaml_node_t *k, *v;
    SF_YMAP_EACH(y, n, k, v)
    {
        if (sf_ynode_skip_key(y, n, k, "log"))
            continue;
        const char *key = (const char *)k->data.scalar.value;
        if (strcmp(key, "level") == 0) {
            const char *lv = sf_ynode_scalar(y, v, "log level");
            if (lv == NULL)
                continue;
            int i;
            for (i = 0; levels[i] != NULL; i++)
                if (strcmp(lv, levels[i]) == 0)
                    break;
            if (levels[i] == NULL)
                sf_ydoc_error(y, v, "log level must be debug, info, warn or error, not '%s'", lv);
            else
                s->log_level = i;
        } else if (strcmp(key, "access") == 0) {
            const char *a = sf_ynode_scalar(y, v, "log access");
            if (a == NULL)
                continue;
            free(s->access_log);
            s->access_log = NULL;
            if (strcmp(a, "off") == 0 || sf_ynode_is_null(v) || strcmp(a, "false") == 0)
                continue;
            if (strcmp(a, "stderr") == 0)
                s->access_log = strdup("stderr");
            else
                load_path(y, s, v, "log access", &s->access_log);
        }
    }
}

static int set_defaults(sf_settings *s, const char *path)
{
    memset(s, 0, sizeof(*s));
    s->path = strdup(path);
    s->dir = dir_of(path);
    s->admin_address = strdup("127.0.0.1:9901");
    s->workers = 1;
    s->max_header_bytes = 16384;
    s->max_headers = 100;
    s->max_body_bytes = 10485760;
    s->max_connections = 10000;
    s->client_header_ms = 10000;
    s->client_body_ms = 30000;
    s->keepalive_ms = 60000;
    s->upstream_connect_ms = 2000;
    s->upstream_response_ms = 30000;
    s->drain_ms = 10000;
    s->shadow_max_inflight = 256;
    s->shadow_max_body_bytes = 1048576;
    s->shadow_compare_body_bytes = 1048576;
    s->log_level = SF_LOG_INFO;
    s->access_log = strdup("stderr");
    if (s->dir == NULL)
        return -1;
    s->routes_file = sf_path_join(s->dir, "routes.yaml");
    s->audit_log = sf_path_join(s->dir, "routes.audit.log");
    return s->path && s->admin_address && s->access_log && s->routes_file && s->audit_log ? 0 : -1;
}

int sf_settings_load(const char *path, sf_settings *s, sf_diags *d)
{
    static const char *const keys[] = {"listen",   "admin",  "routes_file", "workers",   "limits",
                                       "timeouts", "shadow", "log",         "audit_log", NULL};
    sf_ydoc y;
    int errors_before = d->errors;

    if (set_defaults(s, path) < 0) {
        sf_diags_add(d, 0, path, 0, 0, "out of memory");
        return -1;
    }
    if (sf_ydoc_load(&y, path, d) < 0) {
        sf_ydoc_dispose(&y);
        return -1;
    }
    yaml_node_t *root = sf_ydoc_root(&y);
    if (sf_ynode_check_map(&y, root, "strangler.yaml", keys) == 0) {
        yaml_node_t *k, *v;
        int have_listen = 0;
        SF_YMAP_EACH(&y, root, k, v)
        {
            if (sf_ynode_skip_key(&y, root, k, "strangler.yaml"))
                continue;
            const char *key = (const char *)k->data.scalar.value;
            if (strcmp(key, "listen") == 0) {
                have_listen = 1;
                load_listen(&y, s, v);
            } else if (strcmp(key, "admin") == 0) {
                load_admin(&y, s, v);
            } else if (strcmp(key, "routes_file") == 0) {
                load_path(&y, s, v, "routes_file", &s->routes_file);
            } else if (strcmp(key, "workers") == 0) {
                const char *w = sf_ynode_scalar(&y, v, "workers");
                uint64_t n;
                if (w == NULL)
                    continue;
                if (strcmp(w, "auto") == 0)
                    s->workers = 0;
                else if (sf_yget_uint(&y, v, "workers", 1, SF_WORKERS_MAX, &n) == 0)
                    s->workers = (int)n;
            } else if (strcmp(key, "limits") == 0) {
                load_limits(&y, s, v);
            } else if (strcmp(key, "timeouts") == 0) {
                load_timeouts(&y, s, v);
            } else if (strcmp(key, "shadow") == 0) {
                load_shadow(&y, s, v);
            } else if (strcmp(key, "log") == 0) {
                load_log(&y, s, v);
            } else if (strcmp(key, "audit_log") == 0) {
                load_path(&y, s, v, "audit_log", &s->audit_log);
            }
        }
        if (!have_listen)
            sf_ydoc_error(&y, root,
                          "listen is required (e.g. listen: [{address: "
                          "127.0.0.1:8080}])");
        check_admin_separate(s, d);
    }
    sf_ydoc_dispose(&y);
    return d->errors > errors_before ? -1 : 0;
}

void sf_settings_dispose(sf_settings *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->nlisten; i++) {
        free(s->listen[i].address);
        free(s->listen[i].tls_cert);
        free(s->listen[i].tls_key);
    }
    free(s->listen);
    free(s->path);
    free(s->dir);
    free(s->admin_address);
    free(s->admin_token_file);
    free(s->admin_token);
    free(s->routes_file);
    free(s->access_log);
    free(s->audit_log);
    memset(s, 0, sizeof(*s));
}
