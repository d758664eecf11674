/* TLS for both sides of the proxy: client contexts for https backends, server contexts for
 * TLS listeners, and the non-blocking record I/O on raw fds that upstream connections
 * (upstream.c) and client connections (session.c) share: handshake, reads into an evbuffer,
 * writes out of one, the events to wait for, and why a connection failed. */
#ifndef SF_TLS_H
#define SF_TLS_H

#include <stddef.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/ssl.h>

/* A client context for one https backend: TLS 1.2 at least, ALPN "http/1.1", client-side
 * session caching (the pool keeps the last session and resumes with it), read-ahead.
 * ca_file: a PEM bundle trusted instead of the system store (NULL: the system's default
 * paths). verify: 0 turns certificate and name checks off (the caller warns about it).
 * Returns a context the caller frees with SSL_CTX_free, or NULL with a reason in err. */
SSL_CTX *sf_tls_client_ctx(const char *ca_file, int verify, char *err, size_t errlen);

/* Which of a server context's inputs an error is about (for the config line to point at). */
enum { SF_TLS_AT_CERT, SF_TLS_AT_KEY };

/* A server context for a TLS listener: the certificate chain (PEM, leaf first) and its
 * private key (PEM), checked to match; TLS 1.2 and 1.3 only; for TLS 1.2 ECDHE with AES-GCM
 * or ChaCha20-Poly1305 only, in the server's order; ALPN "http/1.1" (a client offering only
 * other protocols is refused with no_application_protocol, RFC 7301 §3.2; one offering none
 * proceeds); session resumption (server-side cache and tickets); no renegotiation, no
 * compression. Returns a context the caller frees with SSL_CTX_free, or NULL with the reason
 * in err and, in *at, which input it is about (SF_TLS_AT_*). */
SSL_CTX *sf_tls_server_ctx(const char *cert_file, const char *key_file, int *at, char *err,
                           size_t errlen);

/* SHA-256 over the bytes of both files, in out: tells a reload whether they changed. Returns
 * 0, or -1 (errno set, out untouched) when one cannot be read. */
int sf_tls_files_digest(const char *a, const char *b, unsigned char out[32]);

/* "CN=localhost, expires 2025-01-31 12:00:00 UTC, sha256 3F:A1:...:9C" (the fingerprint as
 * openssl x509 -fingerprint prints it) for ctx's certificate: what logs name a listener's
 * certificate by. */
void sf_tls_ctx_describe(SSL_CTX *ctx, char *out, size_t len);

/* The reason of the latest OpenSSL error queued on this thread ("certificate verify failed"),
 * or fallback when the queue is empty. Leaves the queue empty. */
const char *sf_tls_last_error(const char *fallback);

/* ---- one TLS connection on a non-blocking fd ----
 * The owner keeps its fd, its two events and its buffers; these functions drive OpenSSL and
 * say which events it waits for. Decrypted bytes can wait inside OpenSSL where poll cannot see
 * them: the owner activates its read event by hand whenever a read may have left some (a read
 * that ended with SF_TLS_DONE, a resume after a pause), after sf_tls_arm, never before: libevent
 * does not add an event that is active, so an activation then an add loses the event. */

typedef struct {
    SSL *ssl;              /* NULL: not TLS */
    unsigned long lib_err; /* the OpenSSL error behind SF_TLS_FAILED, 0 when none */
    int sys;               /* the errno behind SF_TLS_FAILED, 0 when none */
    /* handshaking; an SSL_read (or the handshake) waits for writability; an SSL_write
     * waits for readability; a fatal error or an EOF happened (no close_notify then) */
    unsigned hs : 1, rw : 1, wr : 1, dead : 1;
} sf_tls_conn;

typedef enum {
    SF_TLS_DONE,       /* handshake complete; write: the buffer is empty; read: the budget ran
                          out (more may wait inside OpenSSL) */
    SF_TLS_WANT_READ,  /* waits for the socket to be readable */
    SF_TLS_WANT_WRITE, /* waits for the socket to be writable */
    SF_TLS_CLOSED,     /* the peer's close_notify */
    SF_TLS_EOF,        /* the TCP connection ended without close_notify */
    SF_TLS_FAILED,     /* a fatal error: sf_tls_reason says which */
} sf_tls_status;

/* Starts TLS on fd with an SSL from ctx, as the server (server = 1) or the client; the
 * handshake itself begins when the caller sets t->hs and calls sf_tls_handshake. Returns 0, or
 * -1 when out of memory (t->ssl may be set: sf_tls_close frees it). */
int sf_tls_start(sf_tls_conn *t, SSL_CTX *ctx, int fd, int server);

/* Advances the handshake. SF_TLS_DONE clears t->hs; SF_TLS_WANT_WRITE sets t->rw. */
sf_tls_status sf_tls_handshake(sf_tls_conn *t);

/* Decrypts into in, in chunks like sf_read_into, at most two per call. Returns the bytes read
 * and in *st how the last SSL_read ended (SF_TLS_WANT_WRITE sets t->rw). */
size_t sf_tls_read(sf_tls_conn *t, struct evbuffer *in, sf_tls_status *st);

/* Encrypts and sends out, one record per SSL_write (partial writes allowed). SF_TLS_DONE when
 * out is empty; SF_TLS_WANT_READ sets t->wr; otherwise the connection failed. */
sf_tls_status sf_tls_write(sf_tls_conn *t, struct evbuffer *out);

/* Adds or deletes rev and wev for what the connection waits for now: a side waiting for the
 * other's event is disarmed (no busy loop on a socket ready for what OpenSSL cannot do yet).
 * out_pending: the owner has bytes to send; read_paused: the owner wants no input now (both
 * ignored while handshaking). Returns 1 when wev is armed. */
int sf_tls_arm(const sf_tls_conn *t, struct event *rev, struct event *wev, int out_pending,
               int read_paused);

/* The errno for a connection that ended with st: ECONNRESET for a close or EOF, the system
 * error, or EPROTO. */
int sf_tls_errno(const sf_tls_conn *t, sf_tls_status st);

/* Why a connection ended with st, for logs: "wrong version number", "Connection reset by
 * peer", "the <peer> closed the connection". */
void sf_tls_reason(const sf_tls_conn *t, sf_tls_status st, const char *peer, char *out, size_t len);

/* Ends TLS: one close_notify, best-effort and never waited for, unless abort is set (a
 * cut-off stream must not look like a clean end), the handshake is unfinished or the
 * connection is dead; then frees the SSL. The fd stays the caller's. Accepts t->ssl NULL. */
void sf_tls_close(sf_tls_conn *t, int abort);

#endif
