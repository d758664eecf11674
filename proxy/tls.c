/* TLS contexts (client for https backends, server for listeners) and the non-blocking record
 * I/O both kinds of connection share (see tls.h). */
#include "tls.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "netio.h"

/* ALPN wire format: length-prefixed protocol names (RFC 7301 §3.1). */
static const unsigned char alpn_http11[] = "\x08http/1.1";

/* Plaintext handed to one SSL_write: a full TLS record (RFC 8446 §5.1). */
#define TLS_RECORD 16384

/* TLS 1.2 suites with forward secrecy and AEAD only (Mozilla's "intermediate" list without
 * DHE): what every client of the last decade offers. TLS 1.3's suites are all of this kind
 * and stay OpenSSL's defaults. */
static const char tls12_ciphers[] = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                                    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                                    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

/* Sessions resumed from the server-side cache must come from this application. */
static const unsigned char session_id_context[] = "strangler";

const char *sf_tls_last_error(const char *fallback)
{
    unsigned long e = ERR_peek_last_error();
    const char *why = e != 0 ? ERR_reason_error_string(e) : NULL;
    ERR_clear_error();
    return why != NULL ? why : fallback;
}

/* The reason of the earliest error queued: loading a file, that is the cause ("no start
 * line", "bad base64 decode") and the latest only the wrapper ("PEM lib"). Leaves the queue
 * empty. */
static const char *first_error(const char *fallback)
{
    unsigned long e = ERR_peek_error();
    const char *why = e != 0 ? ERR_reason_error_string(e) : NULL;
    ERR_clear_error();
    return why != NULL ? why : fallback;
}

static SSL_CTX *ctx_new(const SSL_METHOD *method, char *err, size_t errlen)
{
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(method);
    if (ctx == NULL)
        snprintf(err, errlen, "cannot create a TLS context: %s",
                 sf_tls_last_error("out of memory"));
    return ctx;
}

/* A clearer message than OpenSSL's "system lib" for the common mistake: 0 when path can be
 * read, else -1 with "cannot read <what> <path>: <errno's reason>" in err. */
static int readable(const char *path, const char *what, char *err, size_t errlen)
{
    if (access(path, R_OK) == 0)
        return 0;
    snprintf(err, errlen, "cannot read %s %s: %s", what, path, strerror(errno));
    return -1;
}

SSL_CTX *sf_tls_client_ctx(const char *ca_file, int verify, char *err, size_t errlen)
{
    SSL_CTX *ctx = ctx_new(TLS_client_method(), err, errlen);
    if (ctx == NULL)
        return NULL;
    if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION)) {
        snprintf(err, errlen, "cannot require TLS 1.2: %s", sf_tls_last_error("unknown error"));
        goto fail;
    }
    if (ca_file != NULL) {
        if (readable(ca_file, "CA file", err, errlen) < 0)
            goto fail;
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

/* RFC 7301 §3.2: the server picks http/1.1 when the client offers it, and answers a client
 * that offers only protocols it does not speak (h2 alone) with no_application_protocol, as
 * nginx does since 1.21.4: such a client could not talk to us anyway. */
static int on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)ssl;
    (void)arg;
    for (unsigned i = 0; i < inlen;) {
        unsigned n = in[i];
        if (i + 1 + n > inlen)
            break;
        if (n == sizeof(alpn_http11) - 2 && memcmp(in + i + 1, alpn_http11 + 1, n) == 0) {
            *out = in + i + 1;
            *outlen = (unsigned char)n;
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + n;
    }
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

/* An encrypted key would make OpenSSL ask for its passphrase on the terminal: refuse it. */
static int no_passphrase(char *buf, int size, int rwflag, void *arg)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)arg;
    return 0;
}

SSL_CTX *sf_tls_server_ctx(const char *cert_file, const char *key_file, int *at, char *err,
                           size_t errlen)
{
    *at = SF_TLS_AT_CERT;
    SSL_CTX *ctx = ctx_new(TLS_server_method(), err, errlen);
    if (ctx == NULL)
        return NULL;
    SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
    if (readable(cert_file, "certificate file", err, errlen) < 0)
        goto fail;
    if (!SSL_CTX_use_certificate_chain_file(ctx, cert_file)) {
        snprintf(err, errlen, "cannot load certificate %s: %s", cert_file,
                 first_error("no certificate found"));
        goto fail;
    }
    *at = SF_TLS_AT_KEY;
    if (readable(key_file, "key file", err, errlen) < 0)
        goto fail;
    if (!SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM)) {
        /* OpenSSL checks a key of the certificate's type against it while loading */
        if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) {
            ERR_clear_error();
            snprintf(err, errlen, "private key %s does not match certificate %s", key_file,
                     cert_file);
        } else {
            snprintf(err, errlen, "cannot load private key %s (a PEM key, unencrypted): %s",
                     key_file, first_error("no key found"));
        }
        goto fail;
    }
    if (!SSL_CTX_check_private_key(ctx)) {
        snprintf(err, errlen, "private key %s does not match certificate %s: %s", key_file,
                 cert_file, sf_tls_last_error("key values mismatch"));
        goto fail;
    }
    *at = SF_TLS_AT_CERT;
    if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
        !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) ||
        !SSL_CTX_set_cipher_list(ctx, tls12_ciphers) ||
        !SSL_CTX_set_session_id_context(ctx, session_id_context, sizeof(session_id_context) - 1)) {
        snprintf(err, errlen, "cannot set the TLS protocol options: %s",
                 sf_tls_last_error("unknown error"));
        goto fail;
    }
    /* Our order of suites (ChaCha20 first only for clients that put it first: those without
     * AES instructions); renegotiation is an attack surface HTTP/1.1 does not need. */
    SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_PRIORITIZE_CHACHA |
                                 SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_alpn_select_cb(ctx, on_alpn, NULL);
    /* Resumption: TLS 1.3 and 1.2 tickets with OpenSSL's per-context keys, and the server
     * cache for TLS 1.2 clients resuming by session id. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    /* Writes go out of an evbuffer whose first chain may move between retries; an idle
     * keep-alive connection holds no record buffers (some 34 KiB each otherwise). */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_read_ahead(ctx, 1);
    return ctx;

fail:
    SSL_CTX_free(ctx);
    return NULL;
}

int sf_tls_files_digest(const char *a, const char *b, unsigned char out[32])
{
    const char *paths[2] = {a, b};
    unsigned char buf[16384];
    int rc = -1;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (md == NULL || !EVP_DigestInit_ex(md, EVP_sha256(), NULL)) {
        errno = ENOMEM;
        goto out;
    }
    for (int i = 0; i < 2; i++) {
        FILE *f = fopen(paths[i], "rb");
        if (f == NULL)
            goto out;
        size_t n;
        while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
            EVP_DigestUpdate(md, buf, n);
        int bad = ferror(f);
        fclose(f);
        if (bad) {
            errno = EIO;
            goto out;
        }
        /* the boundary counts: moving bytes from one file to the other is a change */
        EVP_DigestUpdate(md, "\0", 1);
    }
    rc = EVP_DigestFinal_ex(md, out, NULL) ? 0 : -1;
out:
    EVP_MD_CTX_free(md);
    OPENSSL_cleanse(buf, sizeof(buf)); /* it held key bytes */
    return rc;
}

void sf_tls_ctx_describe(SSL_CTX *ctx, char *out, size_t len)
{
    X509 *x = SSL_CTX_get0_certificate(ctx);
    char cn[128] = "-", expires[40] = "?", fp[3 * EVP_MAX_MD_SIZE + 1] = "";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    struct tm tm;
    if (x == NULL) {
        snprintf(out, len, "no certificate");
        return;
    }
    if (X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn)) < 0)
        snprintf(cn, sizeof(cn), "-");
    if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm))
        strftime(expires, sizeof(expires), "%Y-%m-%d %H:%M:%S UTC", &tm);
    if (X509_digest(x, EVP_sha256(), md, &mdlen)) {
        /* the form of openssl x509 -fingerprint -sha256 */
        static const char hex[] = "0123456789ABCDEF";
        for (unsigned i = 0; i < mdlen; i++) {
            fp[3 * i] = hex[md[i] >> 4];
            fp[3 * i + 1] = hex[md[i] & 15];
            fp[3 * i + 2] = i + 1 < mdlen ? ':' : '\0';
        }
    }
    ERR_clear_error();
    snprintf(out, len, "CN=%s, expires %s, sha256 %s", cn, expires, fp);
}

/* ---- connections ---- */

int sf_tls_start(sf_tls_conn *t, SSL_CTX *ctx, int fd, int server)
{
    memset(t, 0, sizeof(*t));
    t->ssl = SSL_new(ctx);
    if (t->ssl == NULL || !SSL_set_fd(t->ssl, fd)) {
        ERR_clear_error();
        return -1;
    }
    if (server)
        SSL_set_accept_state(t->ssl);
    else
        SSL_set_connect_state(t->ssl);
    return 0;
}

/* How a call that returned r <= 0 ended; sys is errno right after it (cleared before). A
 * failure records its reason and marks the connection dead: OpenSSL forbids SSL_shutdown after
 * a fatal error. */
static sf_tls_status classify(sf_tls_conn *t, int r, int sys)
{
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ)
        return SF_TLS_WANT_READ;
    if (e == SSL_ERROR_WANT_WRITE)
        return SF_TLS_WANT_WRITE;
    if (e == SSL_ERROR_ZERO_RETURN)
        return SF_TLS_CLOSED;
    unsigned long lib = ERR_peek_last_error();
    ERR_clear_error();
    t->dead = 1;
    /* A close without close_notify, as many peers do: the HTTP framing decides whether what
     * came was complete (RFC 9112 §9.8), as with a plain FIN. */
    if ((e == SSL_ERROR_SSL && ERR_GET_REASON(lib) == SSL_R_UNEXPECTED_EOF_WHILE_READING) ||
        (e == SSL_ERROR_SYSCALL && sys == 0 && lib == 0))
        return SF_TLS_EOF;
    t->lib_err = lib;
    t->sys = e == SSL_ERROR_SYSCALL ? sys : 0;
    return SF_TLS_FAILED;
}

sf_tls_status sf_tls_handshake(sf_tls_conn *t)
{
    ERR_clear_error();
    errno = 0;
    int r = SSL_do_handshake(t->ssl);
    int sys = errno;
    t->rw = 0;
    if (r == 1) {
        t->hs = 0;
        return SF_TLS_DONE;
    }
    sf_tls_status st = classify(t, r, sys);
    if (st == SF_TLS_WANT_WRITE)
        t->rw = 1;
    return st;
}

size_t sf_tls_read(sf_tls_conn *t, struct evbuffer *in, sf_tls_status *st)
{
    size_t total = 0;
    *st = SF_TLS_DONE;
    for (int round = 0; round < 2 && *st == SF_TLS_DONE; round++) {
        struct evbuffer_iovec v;
        if (evbuffer_reserve_space(in, SF_READ_CHUNK, &v, 1) < 1) {
            t->sys = ENOMEM;
            *st = SF_TLS_FAILED;
            break;
        }
        size_t off = 0;
        while (off < v.iov_len) {
            size_t room = v.iov_len - off;
            ERR_clear_error();
            errno = 0;
            int r =
                SSL_read(t->ssl, (char *)v.iov_base + off, room > INT_MAX ? INT_MAX : (int)room);
            if (r > 0) {
                off += (size_t)r;
                continue;
            }
            *st = classify(t, r, errno);
            break;
        }
        if (off > 0) {
            v.iov_len = off;
            evbuffer_commit_space(in, &v, 1);
            total += off;
        }
    }
    if (*st == SF_TLS_WANT_WRITE)
        t->rw = 1;
    return total;
}

sf_tls_status sf_tls_write(sf_tls_conn *t, struct evbuffer *out)
{
    size_t len;
    while ((len = evbuffer_get_length(out)) > 0) {
        /* A retry after WANT_* must offer at least the bytes offered before: out only grows
         * at its end between retries, so the same prefix, no shorter, comes back. */
        int n = len < TLS_RECORD ? (int)len : TLS_RECORD;
        unsigned char *buf = evbuffer_pullup(out, n);
        if (buf == NULL) {
            t->sys = ENOMEM;
            return SF_TLS_FAILED;
        }
        ERR_clear_error();
        errno = 0;
        int r = SSL_write(t->ssl, buf, n);
        if (r > 0) {
            evbuffer_drain(out, (size_t)r);
            continue;
        }
        sf_tls_status st = classify(t, r, errno);
        if (st == SF_TLS_WANT_READ)
            t->wr = 1;
        return st;
    }
    return SF_TLS_DONE;
}

int sf_tls_arm(const sf_tls_conn *t, struct event *rev, struct event *wev, int out_pending,
               int read_paused)
{
    int w, r;
    if (t->hs) {
        w = t->rw;
        r = !t->rw;
    } else {
        w = t->rw || (!t->wr && out_pending);
        r = t->wr || (!read_paused && !t->rw);
    }
    /* adding an added event or deleting a deleted one costs no system call */
    if (w)
        event_add(wev, NULL);
    else
        event_del(wev);
    if (r)
        event_add(rev, NULL);
    else
        event_del(rev);
    return w;
}

int sf_tls_errno(const sf_tls_conn *t, sf_tls_status st)
{
    if (st == SF_TLS_CLOSED || st == SF_TLS_EOF)
        return ECONNRESET;
    return t->sys != 0 ? t->sys : EPROTO;
}

void sf_tls_reason(const sf_tls_conn *t, sf_tls_status st, const char *peer, char *out, size_t len)
{
    const char *why = NULL;
    if (st == SF_TLS_CLOSED || st == SF_TLS_EOF) {
        snprintf(out, len, "the %s closed the connection", peer);
        return;
    }
    if (t->lib_err != 0)
        why = ERR_reason_error_string(t->lib_err);
    if (why == NULL && t->sys != 0)
        why = strerror(t->sys);
    snprintf(out, len, "%s", why != NULL ? why : "protocol error");
}

void sf_tls_close(sf_tls_conn *t, int abort)
{
    if (t->ssl == NULL)
        return;
    if (!abort && !t->hs && !t->dead) {
        ERR_clear_error();
        (void)SSL_shutdown(t->ssl);
    }
    SSL_free(t->ssl);
    ERR_clear_error();
    memset(t, 0, sizeof(*t));
}
