/* TLS towards https backends: client contexts (verification, ALPN, session resumption).
 * The handshake and the record I/O themselves live with the connections, in upstream.c. */
#ifndef SF_TLS_H
#define SF_TLS_H

#include <stddef.h>

#include <openssl/ssl.h>

/* A client context for one https backend: TLS 1.2 at least, ALPN "http/1.1", client-side
 * session caching (the pool keeps the last session and resumes with it), read-ahead.
 * ca_file: a PEM bundle trusted instead of the system store (NULL: the system's default
 * paths). verify: 0 turns certificate and name checks off (the caller warns about it).
 * Returns a context the caller frees with SSL_CTX_free, or NULL with a reason in err. */
SSL_CTX *sf_tls_client_ctx(const char *ca_file, int verify, char *err, size_t errlen);

/* The reason of the latest OpenSSL error queued on this thread ("certificate verify failed"),
 * or fallback when the queue is empty. Leaves the queue empty. */
const char *sf_tls_last_error(const char *fallback);

#endif
