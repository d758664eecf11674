/* TLS towards backends: sf_tls_client_ctx's settings and errors, and upstream pools over TLS
 * against an in-process bufferevent_openssl echo server on the same event loop (handshake,
 * reuse, session resumption, key updates, backpressure, verification failures and closes).
 * TLS listeners: sf_tls_server_ctx's settings and errors, the digest and description of
 * certificate files, and an echo server built on the shared connection I/O (sf_tls_start,
 * _handshake, _read, _write, _arm) serving upstream pools: both sides of tls.c at once. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "tap.h"
#include "tls.h"
#include "upstream.h"

#define MAX_SERVED 32

static struct event_base *base;
static char tmpdir[PATH_MAX];

/* ---- certificates: self-signed, EC P-256, made in memory ---- */

static X509 *self_signed(EVP_PKEY *key, const char *cn, const char *san)
{
    static long serial = 1;
    X509 *x = X509_new();
    X509V3_CTX v3;
    X509_EXTENSION *ext;
    X509_NAME *name;

    if (x == NULL)
        return NULL;
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, name);
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints, "critical,CA:TRUE");
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    X509_sign(x, key, EVP_sha256());
    return x;
}

static void write_pem(const char *path, X509 *x)
{
    FILE *f = fopen(path, "w");
    if (f != NULL) {
        PEM_write_X509(f, x);
        fclose(f);
    }
}

static void write_key(const char *path, EVP_PKEY *key)
{
    FILE *f = fopen(path, "w");
    if (f != NULL) {
        PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
        fclose(f);
    }
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f != NULL) {
        fputs(text, f);
        fclose(f);
    }
}

/* ---- the echo server ---- */

typedef struct {
    SSL_CTX *ctx;
    struct evconnlistener *lst;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    struct bufferevent *served[MAX_SERVED];
    int nserved;
    int clean_eofs, dirty_closes; /* clients that closed with / without close_notify */
    int rst_on_accept;            /* close at once: a handshake that fails */
} server;

static void srv_forget(server *s, struct bufferevent *bev)
{
    for (int i = 0; i < s->nserved; i++)
        if (s->served[i] == bev)
            s->served[i] = s->served[--s->nserved];
    bufferevent_free(bev);
}

static void srv_read(struct bufferevent *bev, void *arg)
{
    (void)arg;
    bufferevent_write_buffer(bev, bufferevent_get_input(bev));
}

static void srv_event(struct bufferevent *bev, short what, void *arg)
{
    server *s = arg;
    if (what & BEV_EVENT_EOF)
        s->clean_eofs++;
    else if (what & BEV_EVENT_ERROR)
        s->dirty_closes++;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        srv_forget(s, bev);
}

static void srv_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
                       void *arg)
{
    server *s = arg;
    (void)l;
    (void)sa;
    (void)len;
    if (s->rst_on_accept || s->nserved == MAX_SERVED) {
        close(fd);
        return;
    }
    SSL *ssl = SSL_new(s->ctx);
    struct bufferevent *bev = bufferevent_openssl_socket_new(
        base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(bev, srv_read, NULL, srv_event, s);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    s->served[s->nserved++] = bev;
}

static int server_start(server *s, X509 *cert, EVP_PKEY *key, int max_version)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    memset(s, 0, sizeof(*s));
    s->ctx = SSL_CTX_new(TLS_server_method());
    if (s->ctx == NULL || !SSL_CTX_use_certificate(s->ctx, cert) ||
        !SSL_CTX_use_PrivateKey(s->ctx, key))
        return -1;
    if (max_version != 0)
        SSL_CTX_set_max_proto_version(s->ctx, max_version);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s->lst = evconnlistener_new_bind(base, srv_accept, s, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
                                     16, (struct sockaddr *)&sin, sizeof(sin));
    if (s->lst == NULL)
        return -1;
    s->addrlen = sizeof(s->addr);
    getsockname(evconnlistener_get_fd(s->lst), (struct sockaddr *)&s->addr, &s->addrlen);
    return 0;
}

static void server_stop(server *s)
{
    while (s->nserved > 0)
        srv_forget(s, s->served[0]);
    if (s->lst != NULL)
        evconnlistener_free(s->lst);
    SSL_CTX_free(s->ctx);
}

/* ---- the owner of upstream connections ---- */

typedef struct {
    int connected, connect_err, write_err, timed_out, closed, read_err;
    struct evbuffer *got; /* everything read */
    size_t want;          /* stop the loop once got holds this much */
    int pause_once;       /* pause reads after the first bytes, resume from a timer */
    int paused_seen;
    struct event *resume;
    sf_upconn *up;
    int done;
} owner;

static void on_read(void *arg, sf_upconn *up, ssize_t n, int err)
{
    owner *o = arg;
    if (n <= 0) {
        o->closed = 1;
        o->read_err = n < 0 ? err : 0;
        o->done = 1;
        return;
    }
    evbuffer_remove_buffer(up->in, o->got, evbuffer_get_length(up->in));
    if (o->pause_once) {
        o->pause_once = 0;
        o->paused_seen = 1;
        sf_upconn_pause_read(up);
        struct timeval tv = {0, 100 * 1000};
        event_add(o->resume, &tv);
    }
    if (evbuffer_get_length(o->got) >= o->want)
        o->done = 1;
}

static void on_connect(void *arg, sf_upconn *up, int err)
{
    owner *o = arg;
    o->connected = 1;
    o->connect_err = err;
    if (err != 0) {
        o->done = 1;
        return;
    }
    sf_upconn_flush(up);
    if (o->want == 0)
        o->done = 1;
}

static void on_drained(void *arg, sf_upconn *up)
{
    (void)arg;
    (void)up;
}

static void on_write_error(void *arg, sf_upconn *up, int err)
{
    owner *o = arg;
    (void)up;
    o->write_err = err;
    o->done = 1;
}

static void on_timeout(void *arg, sf_upconn *up)
{
    owner *o = arg;
    (void)up;
    o->timed_out = 1;
    o->done = 1;
}

static const sf_upconn_ops ops = {on_read, on_connect, on_drained, on_write_error, on_timeout};

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    owner *o = arg;
    (void)fd;
    (void)what;
    sf_upconn_resume_read(o->up);
}

static void owner_init(owner *o)
{
    memset(o, 0, sizeof(*o));
    o->got = evbuffer_new();
    o->resume = evtimer_new(base, on_resume, o);
}

static void owner_reset(owner *o)
{
    o->done = o->connected = o->closed = 0;
    o->connect_err = o->write_err = o->read_err = o->timed_out = 0;
    evbuffer_drain(o->got, evbuffer_get_length(o->got));
}

static void owner_dispose(owner *o)
{
    evbuffer_free(o->got);
    event_free(o->resume);
}

static int expired;

static void on_expire(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    expired = 1;
}

/* Runs the loop until *flag or 5 s have passed; returns *flag. */
static int run_until(const int *flag)
{
    struct timeval tv = {5, 0};
    struct event *t = evtimer_new(base, on_expire, NULL);
    expired = 0;
    evtimer_add(t, &tv);
    while (!*flag && !expired)
        event_base_loop(base, EVLOOP_ONCE);
    event_free(t);
    return *flag;
}

/* Runs the loop for ms milliseconds. */
static void run_for(int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
}

/* Sends data on up and waits for the echo of all of it. */
static int roundtrip(owner *o, sf_upconn *up, const void *data, size_t len)
{
    owner_reset(o);
    o->up = up;
    o->want = len;
    up->owner = o;
    evbuffer_add(up->out, data, len);
    if (!up->connecting)
        sf_upconn_flush(up);
    run_until(&o->done);
    return o->connect_err == 0 && o->write_err == 0 && !o->closed &&
           evbuffer_get_length(o->got) == len &&
           memcmp(evbuffer_pullup(o->got, -1), data, len) == 0;
}

/* 4 MiB both ways, with a pause of the reads in between. */
static int roundtrip_big(owner *o, sf_upconn *up)
{
    size_t big = 4u << 20;
    unsigned char *data = malloc(big);
    for (size_t i = 0; i < big; i++)
        data[i] = (unsigned char)(i * 131 + (i >> 13));
    o->pause_once = 1;
    o->paused_seen = 0;
    int good = roundtrip(o, up, data, big) && o->paused_seen;
    free(data);
    return good;
}

/* Connects a new connection (fresh) and waits for on_connect. */
static sf_upconn *connect_fresh(sf_pool *p, owner *o)
{
    owner_reset(o);
    o->want = 0;
    sf_upconn *up = sf_pool_acquire(p, o, &ops, 1);
    if (up == NULL)
        return NULL;
    o->up = up;
    struct timeval tv = {3, 0};
    sf_upconn_set_timer(up, &tv);
    run_until(&o->done);
    sf_upconn_set_timer(up, NULL);
    return up;
}

/* ---- tests ---- */

static void test_ctx(const char *ca_path)
{
    char err[256] = "";
    SSL_CTX *ctx = sf_tls_client_ctx(ca_path, 1, err, sizeof(err));
    ok(ctx != NULL, "sf_tls_client_ctx with a CA file: a context (%s)", err);
    if (ctx != NULL) {
        is(SSL_CTX_get_verify_mode(ctx), SSL_VERIFY_PEER, "it verifies the peer");
        is(SSL_CTX_get_min_proto_version(ctx), TLS1_2_VERSION, "TLS 1.2 at least");
        is(SSL_CTX_get_mode(ctx) & SSL_MODE_ENABLE_PARTIAL_WRITE, SSL_MODE_ENABLE_PARTIAL_WRITE,
           "partial writes (a record at a time out of an evbuffer)");
        is(SSL_CTX_get_session_cache_mode(ctx) & SSL_SESS_CACHE_CLIENT, SSL_SESS_CACHE_CLIENT,
           "client-side session caching");
        SSL *ssl = SSL_new(ctx);
        const unsigned char *alpn = NULL;
        unsigned alpn_len = 0;
        /* the offered ALPN list is not readable back; its presence shows in the ClientHello
         * only, so check the context accepted it by making an SSL from it */
        ok(ssl != NULL, "an SSL from the context");
        SSL_get0_alpn_selected(ssl, &alpn, &alpn_len);
        is(alpn_len, 0, "no ALPN selected before a handshake");
        SSL_free(ssl);
        SSL_CTX_free(ctx);
    }

    ctx = sf_tls_client_ctx(NULL, 1, err, sizeof(err));
    ok(ctx != NULL, "sf_tls_client_ctx with the system's CA store (%s)", err);
    SSL_CTX_free(ctx);

    ctx = sf_tls_client_ctx(NULL, 0, err, sizeof(err));
    ok(ctx != NULL && SSL_CTX_get_verify_mode(ctx) == SSL_VERIFY_NONE,
       "sf_tls_client_ctx with verify 0 does not verify");
    SSL_CTX_free(ctx);

    char missing[PATH_MAX + 32];
    snprintf(missing, sizeof(missing), "%s/no-such-ca.pem", tmpdir);
    err[0] = '\0';
    ctx = sf_tls_client_ctx(missing, 1, err, sizeof(err));
    ok(ctx == NULL && strstr(err, missing) != NULL && strstr(err, "No such file") != NULL,
       "a missing CA file: NULL, naming the file and why (%s)", err);
    SSL_CTX_free(ctx);

    char junk[PATH_MAX + 32];
    snprintf(junk, sizeof(junk), "%s/junk.pem", tmpdir);
    FILE *f = fopen(junk, "w");
    if (f != NULL) {
        fputs("not a certificate\n", f);
        fclose(f);
    }
    err[0] = '\0';
    ctx = sf_tls_client_ctx(junk, 1, err, sizeof(err));
    ok(ctx == NULL && strstr(err, "cannot load CA file") != NULL,
       "a CA file without certificates: NULL with a reason (%s)", err);
    SSL_CTX_free(ctx);
}

static void test_pool(const char *ca_path, const char *other_ca_path, X509 *cert, EVP_PKEY *key,
                      int max_version, const char *label)
{
    server srv;
    owner o;
    char err[256];
    sf_pool_tls tls = {NULL, "127.0.0.1"};

    if (server_start(&srv, cert, key, max_version) < 0) {
        ok(0, "%s: the test server starts", label);
        return;
    }
    owner_init(&o);
    tls.ctx = sf_tls_client_ctx(ca_path, 1, err, sizeof(err));
    sf_pool *p = sf_pool_create(base, &srv.addr, srv.addrlen, "test", 4, 60000, &tls);

    /* handshake and a round trip */
    sf_upconn *up = connect_fresh(p, &o);
    ok(up != NULL && o.connected && o.connect_err == 0 && !up->connecting,
       "%s: the handshake completes before on_connect", label);
    if (up == NULL || o.connect_err != 0)
        goto out;
    is(SSL_session_reused(up->tls.ssl), 0, "%s: the first connection is a full handshake", label);

    /* idle in the pool at once, while the TLS 1.3 session tickets arrive: they are read and
     * the connection stays */
    sf_upconn *first = up;
    sf_pool_release(up, 1);
    run_for(50);
    up = sf_pool_acquire(p, &o, &ops, 0);
    ok(up == first && up->reused, "%s: the idle TLS connection is reused", label);
    if (up == NULL)
        goto out;
    ok(roundtrip(&o, up, "hello", 5), "%s: bytes go through TLS and come back", label);
    sf_pool_release(up, 1);
    up = sf_pool_acquire(p, &o, &ops, 0);
    ok(up == first && roundtrip(&o, up, "again", 5),
       "%s: a round trip on the connection reused again", label);
    sf_pool_release(up, 1);

    /* a second connection resumes the session the pool kept */
    sf_upconn *second = connect_fresh(p, &o);
    ok(second != NULL && o.connect_err == 0 && SSL_session_reused(second->tls.ssl) == 1,
       "%s: a new connection resumes the pool's session", label);
    if (second == NULL)
        goto out;
    if (o.connect_err != 0) {
        sf_upconn_close(second, 1);
        goto out;
    }

    ok(roundtrip_big(&o, second), "%s: 4 MiB echoed whole across partial writes and a read pause",
       label);

    /* a key update (TLS 1.3): requested by the server, then by the client */
    if (SSL_version(second->tls.ssl) == TLS1_3_VERSION) {
        int nserved = srv.nserved;
        for (int i = 0; i < nserved; i++)
            SSL_key_update(bufferevent_openssl_get_ssl(srv.served[i]), SSL_KEY_UPDATE_REQUESTED);
        ok(roundtrip(&o, second, "after server key update", 23),
           "%s: a round trip after the server asked for a key update", label);
        ok(SSL_key_update(second->tls.ssl, SSL_KEY_UPDATE_REQUESTED) == 1 &&
               roundtrip(&o, second, "after client key update", 23),
           "%s: a round trip after a client key update", label);
    }

    /* the server closing an idle connection takes it out of the pool */
    sf_pool_release(second, 1);
    while (srv.nserved > 0)
        srv_forget(&srv, srv.served[0]);
    run_for(100);
    up = sf_pool_acquire(p, &o, &ops, 0);
    ok(up != NULL && !up->reused, "%s: connections the server closed left the pool", label);
    if (up != NULL) {
        o.up = up;
        ok(roundtrip(&o, up, "new", 3), "%s: a new connection after that works", label);
        int before = srv.clean_eofs;
        sf_upconn_close(up, 0);
        run_for(100);
        is(srv.clean_eofs, before + 1, "%s: a close sends close_notify (a clean EOF)", label);
    }
    up = connect_fresh(p, &o);
    if (up != NULL) {
        int before = srv.dirty_closes;
        sf_upconn_close(up, 1);
        run_for(100);
        is(srv.dirty_closes, before + 1, "%s: an abort sends no close_notify", label);
    }

    /* the server closing a connection in use: on_read(0) */
    up = connect_fresh(p, &o);
    if (up != NULL && o.connect_err == 0) {
        /* let the server finish its side of the handshake first: closing with the client's
         * Finished unread would make its close an RST */
        run_for(50);
        owner_reset(&o);
        o.want = 1;
        while (srv.nserved > 0)
            srv_forget(&srv, srv.served[0]);
        run_until(&o.done);
        ok(o.closed && o.read_err == 0, "%s: the server's close_notify reads as n == 0 (err %d)",
           label, o.read_err);
        sf_upconn_close(up, 0);
    }

out:
    sf_pool_destroy(p);
    SSL_CTX_free(tls.ctx);

    /* a CA that did not sign the certificate */
    tls.ctx = sf_tls_client_ctx(other_ca_path, 1, err, sizeof(err));
    p = sf_pool_create(base, &srv.addr, srv.addrlen, "test", 4, 60000, &tls);
    up = connect_fresh(p, &o);
    const char *why = up != NULL ? sf_upconn_error(up) : NULL;
    ok(o.connect_err == EPROTO && why != NULL &&
           strcmp(why, "TLS certificate verification failed: self-signed certificate") == 0,
       "%s: an unknown issuer is EPROTO, \"%s\"", label, why ? why : "(null)");
    if (up != NULL)
        sf_upconn_close(up, 1);
    sf_pool_destroy(p);
    SSL_CTX_free(tls.ctx);

    /* the certificate is for 127.0.0.1 only */
    tls.ctx = sf_tls_client_ctx(ca_path, 1, err, sizeof(err));
    tls.host = "localhost";
    p = sf_pool_create(base, &srv.addr, srv.addrlen, "test", 4, 60000, &tls);
    up = connect_fresh(p, &o);
    why = up != NULL ? sf_upconn_error(up) : NULL;
    ok(o.connect_err == EPROTO && why != NULL &&
           strcmp(why, "TLS certificate verification failed: hostname mismatch") == 0,
       "%s: another host name is \"%s\"", label, why ? why : "(null)");
    if (up != NULL)
        sf_upconn_close(up, 1);
    sf_pool_destroy(p);
    tls.host = "127.0.0.2";
    p = sf_pool_create(base, &srv.addr, srv.addrlen, "test", 4, 60000, &tls);
    up = connect_fresh(p, &o);
    why = up != NULL ? sf_upconn_error(up) : NULL;
    ok(o.connect_err == EPROTO && why != NULL &&
           strcmp(why, "TLS certificate verification failed: IP address mismatch") == 0,
       "%s: another IP is \"%s\"", label, why ? why : "(null)");
    if (up != NULL)
        sf_upconn_close(up, 1);
    sf_pool_destroy(p);
    SSL_CTX_free(tls.ctx);

    /* verify off: the same server is fine under any name */
    tls.ctx = sf_tls_client_ctx(NULL, 0, err, sizeof(err));
    p = sf_pool_create(base, &srv.addr, srv.addrlen, "test", 4, 60000, &tls);
    up = connect_fresh(p, &o);
    ok(up != NULL && o.connect_err == 0 && roundtrip(&o, up, "anyone", 6),
       "%s: verify off connects to a certificate for another name", label);
    if (up != NULL)
        sf_upconn_close(up, 0);

    /* a server that closes instead of answering the ClientHello */
    srv.rst_on_accept = 1;
    up = connect_fresh(p, &o);
    why = up != NULL ? sf_upconn_error(up) : NULL;
    ok(o.connect_err != 0 && why != NULL && strncmp(why, "TLS handshake failed: ", 22) == 0,
       "%s: a close during the handshake: err %d, \"%s\"", label, o.connect_err,
       why ? why : "(null)");
    if (up != NULL)
        sf_upconn_close(up, 1);
    sf_pool_destroy(p);
    SSL_CTX_free(tls.ctx);

    owner_dispose(&o);
    run_for(20);
    server_stop(&srv);
}

/* ---- the server side: sf_tls_server_ctx and the shared connection I/O ---- */

static void test_server_ctx(const char *cert_path, const char *key_path, const char *other_key_path)
{
    char err[512] = "", junk[PATH_MAX + 32], missing[PATH_MAX + 32];
    int at = -1;
    SSL_CTX *ctx = sf_tls_server_ctx(cert_path, key_path, &at, err, sizeof(err));
    ok(ctx != NULL, "sf_tls_server_ctx with a matching certificate and key (%s)", err);
    if (ctx != NULL) {
        is(SSL_CTX_get_min_proto_version(ctx), TLS1_2_VERSION, "server: TLS 1.2 at least");
        is(SSL_CTX_get_max_proto_version(ctx), TLS1_3_VERSION, "server: TLS 1.3 at most");
        uint64_t opts = SSL_CTX_get_options(ctx);
        ok((opts & SSL_OP_NO_RENEGOTIATION) && (opts & SSL_OP_CIPHER_SERVER_PREFERENCE) &&
               (opts & SSL_OP_NO_COMPRESSION),
           "server: no renegotiation, the server's suite order, no compression");
        is(SSL_CTX_get_session_cache_mode(ctx) & SSL_SESS_CACHE_SERVER, SSL_SESS_CACHE_SERVER,
           "server: a session cache");
        int aead_ecdhe_only = 1, n12 = 0;
        STACK_OF(SSL_CIPHER) *suites = SSL_CTX_get_ciphers(ctx);
        for (int i = 0; i < sk_SSL_CIPHER_num(suites); i++) {
            const SSL_CIPHER *c = sk_SSL_CIPHER_value(suites, i);
            if (SSL_CIPHER_get_kx_nid(c) == NID_kx_any) /* a TLS 1.3 suite */
                continue;
            n12++;
            if (SSL_CIPHER_get_kx_nid(c) != NID_kx_ecdhe || !SSL_CIPHER_is_aead(c))
                aead_ecdhe_only = 0;
        }
        ok(n12 == 6 && aead_ecdhe_only, "server: six TLS 1.2 suites, all ECDHE with AEAD (%d)",
           n12);
        char desc[256];
        sf_tls_ctx_describe(ctx, desc, sizeof(desc));
        ok(strncmp(desc, "CN=test server, expires ", 24) == 0 && strstr(desc, " UTC, sha256 ") &&
               strlen(strstr(desc, "sha256 ")) == 7 + 95,
           "sf_tls_ctx_describe: \"%s\"", desc);
        SSL_CTX_free(ctx);
    }

    snprintf(missing, sizeof(missing), "%s/missing.pem", tmpdir);
    ctx = sf_tls_server_ctx(missing, key_path, &at, err, sizeof(err));
    ok(ctx == NULL && at == SF_TLS_AT_CERT && strstr(err, "cannot read certificate file") &&
           strstr(err, "No such file"),
       "a missing certificate: about the cert (%s)", err);
    snprintf(junk, sizeof(junk), "%s/junk-cert.pem", tmpdir);
    write_text(junk, "not a certificate\n");
    ctx = sf_tls_server_ctx(junk, key_path, &at, err, sizeof(err));
    ok(ctx == NULL && at == SF_TLS_AT_CERT && strstr(err, "cannot load certificate") &&
           strstr(err, "no start line"),
       "a file without a certificate: OpenSSL's first reason, not \"PEM lib\" (%s)", err);
    ctx = sf_tls_server_ctx(cert_path, missing, &at, err, sizeof(err));
    ok(ctx == NULL && at == SF_TLS_AT_KEY && strstr(err, "cannot read key file"),
       "a missing key: about the key (%s)", err);
    ctx = sf_tls_server_ctx(cert_path, junk, &at, err, sizeof(err));
    ok(ctx == NULL && at == SF_TLS_AT_KEY && strstr(err, "cannot load private key"),
       "a file without a key: about the key (%s)", err);
    ctx = sf_tls_server_ctx(cert_path, other_key_path, &at, err, sizeof(err));
    ok(ctx == NULL && at == SF_TLS_AT_KEY && strstr(err, "does not match certificate"),
       "another certificate's key: refused (%s)", err);
    unlink(junk);

    unsigned char d1[32], d2[32], d3[32];
    ok(sf_tls_files_digest(cert_path, key_path, d1) == 0 &&
           sf_tls_files_digest(cert_path, key_path, d2) == 0 && memcmp(d1, d2, 32) == 0,
       "sf_tls_files_digest: the same files, the same digest");
    ok(sf_tls_files_digest(cert_path, other_key_path, d3) == 0 && memcmp(d1, d3, 32) != 0,
       "sf_tls_files_digest: another key, another digest");
    errno = 0;
    ok(sf_tls_files_digest(cert_path, missing, d3) == -1 && errno == ENOENT,
       "sf_tls_files_digest: a missing file is -1 with errno");
}

/* An echo server on sf_tls_conn: what it reads it writes back; one function for both events,
 * as session.c's on_tls_event. */
typedef struct {
    int fd;
    struct event rev, wev;
    struct evbuffer *buf;
    sf_tls_conn tls;
    int *open; /* the server's count of live connections */
} tconn;

static void tconn_free(tconn *t, int abort)
{
    event_del(&t->rev);
    event_del(&t->wev);
    sf_tls_close(&t->tls, abort);
    close(t->fd);
    evbuffer_free(t->buf);
    (*t->open)--;
    free(t);
}

static void tconn_event(evutil_socket_t fd, short what, void *arg)
{
    tconn *t = arg;
    sf_tls_status st;
    (void)fd;
    if (t->tls.hs) {
        st = sf_tls_handshake(&t->tls);
        if (st != SF_TLS_DONE && st != SF_TLS_WANT_READ && st != SF_TLS_WANT_WRITE) {
            tconn_free(t, 0);
            return;
        }
        if (st != SF_TLS_DONE) {
            sf_tls_arm(&t->tls, &t->rev, &t->wev, 0, 0);
            return;
        }
    }
    if ((what & EV_READ) && t->tls.wr)
        t->tls.wr = 0;
    if ((what & EV_WRITE) && t->tls.rw)
        t->tls.rw = 0;
    if (!t->tls.rw) {
        sf_tls_read(&t->tls, t->buf, &st);
        if (st == SF_TLS_CLOSED || st == SF_TLS_EOF || st == SF_TLS_FAILED) {
            tconn_free(t, st == SF_TLS_FAILED);
            return;
        }
        if (st == SF_TLS_DONE)
            event_active(&t->rev, EV_READ, 1);
    }
    if (!t->tls.wr) {
        st = sf_tls_write(&t->tls, t->buf);
        if (st != SF_TLS_DONE && st != SF_TLS_WANT_READ && st != SF_TLS_WANT_WRITE) {
            tconn_free(t, 1);
            return;
        }
    }
    sf_tls_arm(&t->tls, &t->rev, &t->wev, evbuffer_get_length(t->buf) > 0, 0);
}

typedef struct {
    SSL_CTX *ctx;
    struct evconnlistener *lst;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int open;
} tserver;

static void tserver_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                           int len, void *arg)
{
    tserver *s = arg;
    (void)l;
    (void)sa;
    (void)len;
    tconn *t = calloc(1, sizeof(*t));
    t->fd = fd;
    t->open = &s->open;
    t->buf = evbuffer_new();
    s->open++;
    evutil_make_socket_nonblocking(fd);
    if (sf_tls_start(&t->tls, s->ctx, fd, 1) < 0) {
        tconn_free(t, 1);
        return;
    }
    t->tls.hs = 1;
    event_assign(&t->rev, base, fd, EV_READ | EV_PERSIST, tconn_event, t);
    event_assign(&t->wev, base, fd, EV_WRITE | EV_PERSIST, tconn_event, t);
    event_add(&t->rev, NULL);
}

static void test_server_io(const char *ca_path, const char *cert_path, const char *key_path,
                           int max_version, const char *label)
{
    tserver srv = {0};
    owner o;
    char err[512];
    int at;
    struct sockaddr_in sin = {.sin_family = AF_INET};
    sf_pool_tls tls = {NULL, "127.0.0.1"};

    srv.ctx = sf_tls_server_ctx(cert_path, key_path, &at, err, sizeof(err));
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    srv.lst = srv.ctx == NULL ? NULL
                              : evconnlistener_new_bind(base, tserver_accept, &srv,
                                                        LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
                                                        16, (struct sockaddr *)&sin, sizeof(sin));
    if (srv.lst == NULL) {
        ok(0, "%s: the sf_tls server starts (%s)", label, err);
        SSL_CTX_free(srv.ctx);
        return;
    }
    srv.addrlen = sizeof(srv.addr);
    getsockname(evconnlistener_get_fd(srv.lst), (struct sockaddr *)&srv.addr, &srv.addrlen);
    owner_init(&o);
    tls.ctx = sf_tls_client_ctx(ca_path, 1, err, sizeof(err));
    if (max_version != 0)
        SSL_CTX_set_max_proto_version(tls.ctx, max_version);
    sf_pool *p = sf_pool_create(base, &srv.addr, srv.addrlen, "sf_tls server", 4, 60000, &tls);

    sf_upconn *up = connect_fresh(p, &o);
    ok(up != NULL && o.connect_err == 0, "%s: a pool connects to the sf_tls server", label);
    if (up == NULL || o.connect_err != 0)
        goto out;
    const unsigned char *alpn = NULL;
    unsigned alpn_len = 0;
    SSL_get0_alpn_selected(up->tls.ssl, &alpn, &alpn_len);
    ok(alpn_len == 8 && memcmp(alpn, "http/1.1", 8) == 0, "%s: the server selects http/1.1", label);
    ok(roundtrip(&o, up, "ping", 4), "%s: a round trip", label);
    sf_pool_release(up, 1);
    run_for(50); /* the TLS 1.3 tickets reach the pool */

    sf_upconn *second = connect_fresh(p, &o);
    ok(second != NULL && o.connect_err == 0 && SSL_session_reused(second->tls.ssl) == 1,
       "%s: a new connection resumes its session with the server", label);
    if (second == NULL)
        goto out;
    if (o.connect_err != 0) {
        sf_upconn_close(second, 1);
        goto out;
    }
    ok(roundtrip_big(&o, second),
       "%s: 4 MiB echoed whole by the sf_tls server, across partial writes and a read pause",
       label);
    if (SSL_version(second->tls.ssl) == TLS1_3_VERSION)
        ok(SSL_key_update(second->tls.ssl, SSL_KEY_UPDATE_REQUESTED) == 1 &&
               roundtrip(&o, second, "after key update", 16),
           "%s: a round trip after the client asks the server for a key update", label);
    ok(srv.open >= 1, "%s: the server holds the connections open (%d)", label, srv.open);
    sf_upconn_close(second, 0);
out:
    sf_pool_destroy(p);
    SSL_CTX_free(tls.ctx);
    owner_dispose(&o);
    for (int i = 0; i < 50 && srv.open > 0; i++)
        run_for(20);
    is(srv.open, 0, "%s: the server saw every connection end (close_notify or EOF)", label);
    evconnlistener_free(srv.lst);
    SSL_CTX_free(srv.ctx);
}

int main(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/sf-test-tls-XXXXXX");
    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    /* as the proxy does (server.c): a peer gone mid-write is an EPIPE, not the end */
    signal(SIGPIPE, SIG_IGN);
    base = event_base_new();
    EVP_PKEY *key = EVP_EC_gen("P-256"), *other_key = EVP_EC_gen("P-256");
    X509 *cert = self_signed(key, "test server", "IP:127.0.0.1");
    X509 *other = self_signed(other_key, "unrelated", "DNS:other.invalid");
    char ca_path[PATH_MAX + 32], other_path[PATH_MAX + 32];
    snprintf(ca_path, sizeof(ca_path), "%s/ca.pem", tmpdir);
    snprintf(other_path, sizeof(other_path), "%s/other.pem", tmpdir);
    write_pem(ca_path, cert);
    write_pem(other_path, other);

    test_ctx(ca_path);
    test_pool(ca_path, other_path, cert, key, 0, "TLS 1.3");
    test_pool(ca_path, other_path, cert, key, TLS1_2_VERSION, "TLS 1.2");

    char key_path[PATH_MAX + 32], other_key_path[PATH_MAX + 32];
    snprintf(key_path, sizeof(key_path), "%s/key.pem", tmpdir);
    snprintf(other_key_path, sizeof(other_key_path), "%s/other-key.pem", tmpdir);
    write_key(key_path, key);
    write_key(other_key_path, other_key);
    test_server_ctx(ca_path, key_path, other_key_path);
    test_server_io(ca_path, ca_path, key_path, 0, "sf_tls server, TLS 1.3");
    test_server_io(ca_path, ca_path, key_path, TLS1_2_VERSION, "sf_tls server, TLS 1.2");
    unlink(key_path);
    unlink(other_key_path);

    X509_free(cert);
    X509_free(other);
    EVP_PKEY_free(key);
    EVP_PKEY_free(other_key);
    event_base_free(base);
    unlink(ca_path);
    unlink(other_path);
    char junk[PATH_MAX + 32];
    snprintf(junk, sizeof(junk), "%s/junk.pem", tmpdir);
    unlink(junk);
    rmdir(tmpdir);
    return done_testing();
}
