/* routes.yaml loader and the immutable table it builds. */
#include "table.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "yconf.h"

struct sf_route_table {
    int refs;
    sf_upstream_url legacy;
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

static void hash_file(const char *path, char out[17])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char buf[8192];
    size_t n;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    FILE *f = fopen(path, "rb");
    out[0] = '\0';
    if (ctx == NULL || f == NULL || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL))
        goto out;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        EVP_DigestUpdate(ctx, buf, n);
    if (EVP_DigestFinal_ex(ctx, md, &mdlen) && mdlen >= 8)
        for (int i = 0; i < 8; i++)
            snprintf(out + 2 * i, 3, "%02x", md[i]);
out:
    if (f != NULL)
        fclose(f);
    EVP_MD_CTX_free(ctx);
}

sf_route_table *sf_table_load(const char *path, sf_diags *d)
{
    static const char *const keys[] = {"legacy", "functions", "routes", NULL};
    sf_ydoc y;
    int errors_before = d->errors;
    sf_route_table *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->refs = 1;
    if (sf_ydoc_load(&y, path, d) < 0)
        goto fail;
    yaml_node_t *root = sf_ydoc_root(&y);
    if (sf_ynode_check_map(&y, root, "routes.yaml", keys) < 0)
        goto fail;
    yaml_node_t *k, *v;
    int have_legacy = 0;
    SF_YMAP_EACH(&y, root, k, v)
    {
        const char *key = (const char *)k->data.scalar.value;
        if (strcmp(key, "legacy") == 0) {
            const char *url = sf_ynode_scalar(&y, v, "legacy");
            char err[128];
            have_legacy = 1;
            if (url == NULL)
                continue;
            if (sf_upstream_url_parse(url, &t->legacy, err, sizeof(err)) < 0)
                sf_ydoc_error(&y, v, "legacy URL '%s' %s", url, err);
            else if (t->legacy.tls)
                sf_ydoc_error(&y, v, "an https legacy URL is not supported by this build yet");
        } else if (strcmp(key, "functions") == 0) {
            if (v->type != YAML_MAPPING_NODE && !sf_ynode_is_null(v))
                sf_ydoc_error(&y, v, "functions must be a mapping of name: URL");
            else if (v->type == YAML_MAPPING_NODE &&
                     v->data.mapping.pairs.top != v->data.mapping.pairs.start)
                sf_ydoc_error(&y, v,
                              "function endpoints are not supported by this build yet "
                              "(everything goes to legacy)");
        } else if (strcmp(key, "routes") == 0) {
            if (v->type != YAML_SEQUENCE_NODE && !sf_ynode_is_null(v))
                sf_ydoc_error(&y, v, "routes must be a list");
            else if (v->type == YAML_SEQUENCE_NODE &&
                     v->data.sequence.items.top != v->data.sequence.items.start)
                sf_ydoc_error(&y, v,
                              "routes are not supported by this build yet "
                              "(everything goes to legacy)");
        }
    }
    if (!have_legacy)
        sf_ydoc_error(&y, root, "legacy is required: the URL of the monolith");
    if (d->errors > errors_before)
        goto fail;
    sf_ydoc_dispose(&y);
    hash_file(path, t->version);
    return t;
fail:
    sf_ydoc_dispose(&y);
    sf_table_unref(t);
    return NULL;
}

sf_route_table *sf_table_ref(sf_route_table *t)
{
    t->refs++;
    return t;
}

void sf_table_unref(sf_route_table *t)
{
    if (t == NULL || --t->refs > 0)
        return;
    sf_upstream_url_dispose(&t->legacy);
    free(t);
}

const sf_upstream_url *sf_table_legacy(const sf_route_table *t)
{
    return &t->legacy;
}

const char *sf_table_version(const sf_route_table *t)
{
    return t->version;
}
