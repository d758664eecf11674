/* Client TLS contexts for https backends (see tls.h). */
#include "tls.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>

/* ALPN wire format: length-prefixed protocol names (RFC 7301 §3.1). */
static const unsigned char alpn_http11[] = "\x08http/1.1";

const char *sf_tls_last_error(const char *fallback)
{
    unsigned long e = ERR_peek_last_error();
    const char *why = e != 0 ? ERR_reason_error_string(e) : NULL;
    ERR_clear_error();
    return why != NULL ? why : fallback;
}

SSL_CTX *sf_tls_client_ctx(const char *ca_file, int verify, char *err, size_t errlen)
{
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        snprintf(err, errlen, "cannot create a TLS context: %s",
                 sf_tls_last_error("out of memory"));
        return NULL;
    }
    if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION)) {
        snprintf(err, errlen, "cannot require TLS 1.2: %s", sf_tls_last_error("unknown error"));
        goto fail;
    }
    if (ca_file != NULL) {
        /* A clearer message than OpenSSL's "system lib" for the common mistake. */
        if (access(ca_file, R_OK) < 0) {
            snprintf(err, errlen, "cannot read CA file %s: %s", ca_file, strerror(errno));
            goto fail;
        }
        if (!SSL_CTX_load_verify_file(ctx, ca_file)) {
            snprintf(err, errlen, "cannot load CA file %s: %s", ca_file,
                     sf_tls_last_error("no certificate found"));
            goto fail;
        }
    } else if (verify && !SSL_CTX_set_default_verify_paths(ctx)) {
        snprintf(err, errlen, "cannot load the system's CA certificates: %s",
                 sf_tls_last_error("unknown error"));
        goto fail;
    }
    SSL_CTX_set_verify(ctx, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    /* SSL_CTX_set_alpn_protos returns 0 on success, unlike the rest of the API. */
    if (SSL_CTX_set_alpn_protos(ctx, alpn_http11, sizeof(alpn_http11) - 1) != 0) {
        snprintf(err, errlen, "cannot set ALPN: %s", sf_tls_last_error("out of memory"));
        goto fail;
    }
    /* Writes go out of an evbuffer whose first chain may move between retries. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* Sessions are kept by each pool (its new-session callback), not in the context's cache. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    /* Read whole socket buffers, not a record header then its body: half the syscalls. */
    SSL_CTX_set_read_ahead(ctx, 1);
    return ctx;

fail:
    SSL_CTX_free(ctx);
    return NULL;
}
