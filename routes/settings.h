/* strangler.yaml: the server settings (DESIGN §3), loaded strictly with located errors. */
#ifndef SF_SETTINGS_H
#define SF_SETTINGS_H

#include <stddef.h>
#include <stdint.h>

#include "diag.h"

/* The most event-loop threads workers may ask for. */
#define SF_WORKERS_MAX 256

typedef struct {
    char *address;            /* "host:port" as written */
    char *tls_cert, *tls_key; /* resolved paths, NULL without TLS */
    int line, col;
    /* where tls.cert and tls.key are written, for errors found when they are loaded */
    int cert_line, cert_col, key_line, key_col;
} sf_listen_conf;

enum { SF_LOG_DEBUG, SF_LOG_INFO, SF_LOG_WARN, SF_LOG_ERROR };

typedef struct {
    char *path; /* the file itself */
    char *dir;  /* its folder: relative paths are relative to it */
    sf_listen_conf *listen;
    size_t nlisten;
    char *admin_address;       /* always set: default 127.0.0.1:9901 */
    int admin_line, admin_col; /* where admin.address is written, 0 for the default */
    char *admin_token_file;
    char *admin_token; /* read from admin_token_file at load; NULL without one */
    char *routes_file; /* resolved */
    int workers;       /* 1..SF_WORKERS_MAX; 0 = auto (one per CPU the process may use) */
    uint64_t max_header_bytes, max_headers, max_body_bytes, max_connections;
    /* timeouts in milliseconds */
    uint64_t client_header_ms, client_body_ms, keepalive_ms, upstream_connect_ms,
        upstream_response_ms, drain_ms;
    uint64_t shadow_max_inflight, shadow_max_body_bytes, shadow_compare_body_bytes;
    int log_level;    /* SF_LOG_* */
    char *access_log; /* NULL = off, "stderr", or a resolved path */
    char *audit_log;  /* resolved */
} sf_settings;

/* Loads path into s (defaults for what the file leaves out). Returns 0, or -1 with every
 * problem recorded in d. s must be disposed of either way. */
int sf_settings_load(const char *path, sf_settings *s, sf_diags *d);
void sf_settings_dispose(sf_settings *s);

/* Resolves rel against dir (absolute rel is returned as is). Caller frees. */
char *sf_path_join(const char *dir, const char *rel);

#endif
