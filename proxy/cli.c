/* The operator commands routes, reload, cutover, rollback and history: a blocking HTTP client
 * for the admin API, in-place edits of routes.yaml, and the audit log. */
#include "cli.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <poll.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "audit.h"
#include "diag.h"
#include "edit.h"
#include "netio.h"
#include "settings.h"
#include "table.h"

#define CONNECT_TIMEOUT_MS 5000
#define ANSWER_TIMEOUT_MS  30000       /* a reload compiles every pattern: give it time */
#define ANSWER_MAX         (64u << 20) /* an admin answer is never this large */

static const char usage_routes[] =
    "usage: strangler routes [-c FILE] [--admin URL] [--json]\n"
    "\n"
    "Shows the live route table of the running proxy: the routes file, its version, when it\n"
    "was loaded and how the last reload went (the error in full when it failed), then one row\n"
    "per route: NAME, MATCH, FUNCTION, CUTOVER, STICKY, FALLBACK, SHADOW, GUARD, STATE.\n"
    "When no proxy answers, says so on stderr and shows the routes file as it is on disk\n"
    "(STATE \"not running\").\n"
    "\n"
    "  --json       print the admin API's JSON (GET /routes) as it is\n"
    "  --admin URL  the admin API, http://HOST:PORT (default: admin.address of FILE)\n"
    "  -c FILE      the server settings (default: $STRANGLER_CONF, else conf/strangler.yaml)\n";

static const char usage_reload[] =
    "usage: strangler reload [-c FILE] [--admin URL]\n"
    "\n"
    "Asks the running proxy to load its routes file again. Prints what changed, one line per\n"
    "change (\"orders: cutover 10% -> 25%\"), or \"no changes\". An invalid file is rejected\n"
    "whole: the error is printed as FILE:LINE:COL: message, the proxy keeps serving the table\n"
    "it had, and strangler exits 1. Exits 1 too when no proxy answers.\n"
    "\n"
    "  --admin URL  the admin API, http://HOST:PORT (default: admin.address of FILE)\n"
    "  -c FILE      the server settings (default: $STRANGLER_CONF, else conf/strangler.yaml)\n";

static const char usage_cutover[] =
    "usage: strangler cutover [-c FILE] [--admin URL] ROUTE PERCENT [--reason TEXT]\n"
    "\n"
    "Sets the share of ROUTE's requests served by its function. PERCENT is 0 to 100 with at\n"
    "most two decimals (25, 12.5, 0.25; a trailing % is allowed). Edits only that route's\n"
    "cutover: value in the routes file, keeping every other byte, and replaces the file\n"
    "atomically; records the change in the audit log (see 'strangler history'); then asks the\n"
    "running proxy to reload. Without a running proxy the file is still changed: the change\n"
    "applies when the proxy starts.\n"
    "\n"
    "  --reason TEXT  why, for the audit log\n"
    "  --admin URL    the admin API, http://HOST:PORT (default: admin.address of FILE)\n"
    "  -c FILE        the server settings (default: $STRANGLER_CONF, else conf/strangler.yaml)\n";

static const char usage_rollback[] =
    "usage: strangler rollback [-c FILE] [--admin URL] ROUTE|--all [--reason TEXT]\n"
    "\n"
    "Sets ROUTE's cutover to 0 (every request to legacy), persisted, audited and applied as\n"
    "'strangler cutover' does, and prints the old value with the command that restores it.\n"
    "--all rolls back every route whose cutover is above 0, with one reload at the end.\n"
    "\n"
    "  --all          every route with a cutover above 0\n"
    "  --reason TEXT  why, for the audit log\n"
    "  --admin URL    the admin API, http://HOST:PORT (default: admin.address of FILE)\n"
    "  -c FILE        the server settings (default: $STRANGLER_CONF, else conf/strangler.yaml)\n";

static const char usage_history[] =
    "usage: strangler history [-c FILE] [ROUTE] [--json] [--limit N]\n"
    "\n"
    "The audit log of cutover changes and rollbacks (manual and automatic), oldest first:\n"
    "time, route, old and new cutover, action, who, and why. Reads the audit_log file of the\n"
    "settings directly: works whether or not the proxy runs.\n"
    "\n"
    "  ROUTE      only that route's entries\n"
    "  --limit N  only the last N entries\n"
    "  --json     the entries as a JSON array\n"
    "  -c FILE    the server settings (default: $STRANGLER_CONF, else conf/strangler.yaml)\n";

/* ---- arguments ---- */

static int is_help(const char *a)
{
    return strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0;
}

/* An option with a value: "--name VALUE" or "--name=VALUE". Returns 1 (value set, *i moved),
 * 0 (not this option) or -1 (no value; message printed). */
static int opt_value(int argc, char **argv, int *i, const char *name, const char **value,
                     const char *cmd)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0)
        return 0;
    if (a[n] == '=') {
        *value = a + n + 1;
        return 1;
    }
    if (a[n] != '\0')
        return 0;
    if (*i + 1 >= argc) {
        fprintf(stderr, "strangler%s%s: %s needs a value\n", cmd ? " " : "", cmd ? cmd : "", name);
        return -1;
    }
    *value = argv[++*i];
    return 1;
}

int sf_cli_common_opt(sf_cli_opts *o, int argc, char **argv, int *i, const char *cmd)
{
    const char *a = argv[*i];
    int r;
    if (is_help(a)) {
        o->help = 1;
        return 1;
    }
    if (strcmp(a, "-c") == 0) {
        if (*i + 1 >= argc) {
            fprintf(stderr, "strangler%s%s: -c needs a file\n", cmd ? " " : "", cmd ? cmd : "");
            return -1;
        }
        o->conf = argv[++*i];
        return 1;
    }
    if ((r = opt_value(argc, argv, i, "--config", &o->conf, cmd)) != 0)
        return r;
    return opt_value(argc, argv, i, "--admin", &o->admin, cmd);
}

const char *sf_cli_conf_path(const char *given)
{
    if (given != NULL)
        return given;
    const char *env = getenv("STRANGLER_CONF");
    return env != NULL && env[0] != '\0' ? env : "conf/strangler.yaml";
}

int sf_cli_parse_percent(const char *s, unsigned *bp)
{
    unsigned whole = 0, frac = 0;
    int nd = 0, nf = 0;
    const char *p = s;
    while (*p >= '0' && *p <= '9') {
        if (++nd > 3)
            return -1;
        whole = whole * 10 + (unsigned)(*p++ - '0');
    }
    if (nd == 0)
        return -1;
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9') {
            if (++nf > 2)
                return -1;
            frac = frac * 10 + (unsigned)(*p++ - '0');
        }
        if (nf == 0)
            return -1;
        if (nf == 1)
            frac *= 10;
    }
    if (*p == '%')
        p++;
    if (*p != '\0' || whole * 100 + frac > SF_CUTOVER_MAX)
        return -1;
    *bp = whole * 100 + frac;
    return 0;
}

/* A negative number is an argument (a bad percentage), not an option. */
static int is_option(const char *a)
{
    return a[0] == '-' && a[1] != '\0' && !(a[1] >= '0' && a[1] <= '9');
}

/* Prints "strangler CMD: message" and the command's usage on stderr; returns 2. */
static int usage_error(const char *cmd, const char *usage, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int usage_error(const char *cmd, const char *usage, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "strangler %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n\n%s", usage);
    va_end(ap);
    return 2;
}

/* An option of one command, besides the common ones: a flag ("--json": *set = 1) or an option
 * with a value ("--reason TEXT" or "--reason=TEXT": *value = TEXT, borrowed from argv). */
typedef struct {
    const char *name;
    const char **value; /* NULL for a flag */
    int *set;
} opt_spec;

enum { CMD_OPTS_MAX = 3 }; /* the most options a command has of its own */

/* What a command accepts on its line, and what parse_args found there. */
typedef struct {
    const char *cmd, *usage;
    opt_spec opts[CMD_OPTS_MAX]; /* the command's own options; unused entries have a NULL name */
    const char **pos;            /* the positional arguments, in order */
    int maxpos;
    int npos;      /* out: how many were given */
    sf_cli_opts o; /* out: the common options, with those given before the command's name */
} arg_spec;

enum { ARGS_GO = -1 };

/* Parses argv[1..argc) into a: the common options (pre: those given before the command's name),
 * a's own options, "--" (every argument after it is positional) and up to maxpos positional
 * arguments. Returns ARGS_GO when the command should go on, else the exit code to return at
 * once: 0 after printing the usage for --help, 2 after a usage error (printed). */
static int parse_args(arg_spec *a, const sf_cli_opts *pre, int argc, char **argv)
{
    int dashdash = 0;
    a->o = *pre;
    a->npos = 0;
    for (int i = 1; i < argc; i++) {
        int r = 0;
        if (!dashdash)
            r = sf_cli_common_opt(&a->o, argc, argv, &i, a->cmd);
        for (const opt_spec *p = a->opts;
             r == 0 && !dashdash && p < a->opts + CMD_OPTS_MAX && p->name != NULL; p++) {
            if (p->value != NULL)
                r = opt_value(argc, argv, &i, p->name, p->value, a->cmd);
            else if (strcmp(argv[i], p->name) == 0)
                r = *p->set = 1;
        }
        if (r < 0)
            return 2;
        if (r > 0)
            continue;
        if (!dashdash && strcmp(argv[i], "--") == 0)
            dashdash = 1;
        else if (!dashdash && is_option(argv[i]))
            return usage_error(a->cmd, a->usage, "unknown option '%s'", argv[i]);
        else if (a->npos < a->maxpos)
            a->pos[a->npos++] = argv[i];
        else
            return usage_error(a->cmd, a->usage, "unexpected argument '%s'", argv[i]);
    }
    if (a->o.help) {
        fputs(a->usage, stdout);
        return 0;
    }
    return ARGS_GO;
}

/* ---- the command's context: settings and the admin address ---- */

typedef struct {
    const char *cmd;
    const char *conf;      /* the settings file */
    const char *conf_flag; /* -c as given on the line, NULL when defaulted */
    sf_settings s;
    char addr[300]; /* the admin API as host:port, for messages */
    struct sockaddr_storage sa;
    socklen_t salen;
} cli;

static void cli_dispose(cli *c)
{
    sf_settings_dispose(&c->s);
}

/* "http://HOST:PORT", "http://HOST:PORT/" or "HOST:PORT" into host:port. Returns 0 or -1. */
static int admin_url(const char *url, char *out, size_t len)
{
    if (strncmp(url, "http://", 7) == 0)
        url += 7;
    else if (strstr(url, "://") != NULL)
        return -1;
    size_t n = strcspn(url, "/");
    if (n == 0 || n >= len || (url[n] == '/' && url[n + 1] != '\0'))
        return -1;
    memcpy(out, url, n);
    out[n] = '\0';
    return 0;
}

/* Loads the settings and, when need_admin, resolves the admin address. Returns 0 (dispose of c
 * when done), or the exit code (1: explained on stderr, 2: a bad --admin) with c disposed of. */
static int cli_setup(cli *c, const char *cmd, const sf_cli_opts *o, int need_admin)
{
    sf_diags d;
    char err[512];
    memset(c, 0, sizeof(*c));
    c->cmd = cmd;
    c->conf = sf_cli_conf_path(o->conf);
    c->conf_flag = o->conf;
    sf_diags_init(&d);
    int rc = sf_settings_load(c->conf, &c->s, &d);
    if (rc < 0) {
        sf_diags_print(&d, stderr);
        fprintf(stderr, "strangler %s: %s has errors\n", cmd, c->conf);
    }
    sf_diags_dispose(&d);
    if (rc < 0) {
        rc = 1;
        goto fail;
    }
    if (!need_admin)
        return 0;
    if (o->admin != NULL) {
        if (admin_url(o->admin, c->addr, sizeof(c->addr)) < 0) {
            fprintf(stderr,
                    "strangler %s: --admin takes http://HOST:PORT (the admin API speaks plain "
                    "HTTP), not '%s'\n",
                    cmd, o->admin);
            rc = 2;
            goto fail;
        }
    } else {
        snprintf(c->addr, sizeof(c->addr), "%s", c->s.admin_address);
    }
    if (sf_addr_parse(c->addr, &c->sa, &c->salen, err, sizeof(err)) < 0) {
        fprintf(stderr, "strangler %s: admin address %s: %s\n", cmd, c->addr, err);
        rc = o->admin != NULL ? 2 : 1;
        goto fail;
    }
    return 0;
fail:
    cli_dispose(c);
    return rc;
}

/* ---- a blocking HTTP/1.1 client for the admin API ---- */

enum { CALL_OK = 0, CALL_DOWN = -1, CALL_FAIL = -2 };

typedef struct {
    int status;
    char *body; /* NUL-terminated, malloc'd */
    size_t len;
} reply;

static void errno_text(int e, char *err, size_t errlen)
{
    snprintf(err, errlen, "%s", strerror(e));
    if (err[0] >= 'A' && err[0] <= 'Z')
        err[0] = (char)(err[0] - 'A' + 'a');
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for events on fd until deadline. Returns 1 when ready, 0 on timeout, -1 on error. */
static int wait_fd(int fd, short events, long long deadline)
{
    for (;;) {
        long long left = deadline - now_ms();
        if (left <= 0)
            return 0;
        struct pollfd p = {fd, events, 0};
        int n = poll(&p, 1, (int)left);
        if (n > 0)
            return 1;
        if (n == 0)
            return 0;
        if (errno != EINTR)
            return -1;
    }
}

static int case_prefix(const char *p, const char *end, const char *lit)
{
    size_t n = strlen(lit);
    return (size_t)(end - p) >= n && strncasecmp(p, lit, n) == 0;
}

/* Parses a whole response (read to EOF) in buf[0..len): status line, Content-Length body. */
static int parse_reply(char *buf, size_t len, reply *r, char *err, size_t errlen)
{
    char *end = buf + len;
    char *head_end = memmem(buf, len, "\r\n\r\n", 4);
    if (len < 12 || memcmp(buf, "HTTP/1.", 7) != 0 || buf[8] != ' ') {
        snprintf(err, errlen, "the answer is not HTTP");
        return -1;
    }
    if (head_end == NULL) {
        snprintf(err, errlen, "the connection closed in the middle of the answer's head");
        return -1;
    }
    int status = 0;
    for (int k = 9; k < 12; k++) {
        if (buf[k] < '0' || buf[k] > '9') {
            snprintf(err, errlen, "the answer has no status code");
            return -1;
        }
        status = status * 10 + (buf[k] - '0');
    }
    char *body = head_end + 4;
    size_t blen = (size_t)(end - body);
    for (char *line = (char *)memchr(buf, '\n', len) + 1; line < head_end;) {
        char *eol = memchr(line, '\n', (size_t)(head_end + 2 - line));
        if (eol == NULL)
            break;
        if (case_prefix(line, eol, "content-length:")) {
            char *q;
            errno = 0;
            unsigned long long cl = strtoull(line + 15, &q, 10);
            if (errno != 0 || q == line + 15) {
                snprintf(err, errlen, "the answer has an invalid Content-Length");
                return -1;
            }
            if (cl > blen) {
                snprintf(err, errlen, "the connection closed after %zu of %llu body bytes", blen,
                         cl);
                return -1;
            }
            blen = (size_t)cl;
        }
        line = eol + 1;
    }
    r->status = status;
    r->body = malloc(blen + 1);
    if (r->body == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    memcpy(r->body, body, blen);
    r->body[blen] = '\0';
    r->len = blen;
    return 0;
}

/* One call: connects (5 s), sends method path with the token when one is configured and
 * Connection: close, reads the answer to EOF. Returns CALL_OK with r filled (caller frees
 * r->body), CALL_DOWN when nothing answers at the address, CALL_FAIL for a failure after the
 * connection was made; err says what happened. */
static int admin_call(const cli *c, const char *method, const char *path, reply *r, char *err,
                      size_t errlen)
{
    int in_progress = 0, rc = CALL_FAIL, ready;
    char *req = NULL, *buf = NULL;
    size_t len = 0, cap = 0;
    const char *token = c->s.admin_token;
    memset(r, 0, sizeof(*r));

    int fd = sf_connect_socket(&c->sa, c->salen, &in_progress);
    if (fd < 0) {
        errno_text(errno, err, errlen);
        return CALL_DOWN;
    }
    if (in_progress) {
        ready = wait_fd(fd, POLLOUT, now_ms() + CONNECT_TIMEOUT_MS);
        int e = 0;
        socklen_t el = sizeof(e);
        if (ready == 0) {
            snprintf(err, errlen, "no connection within %d s", CONNECT_TIMEOUT_MS / 1000);
            rc = CALL_DOWN;
            goto out;
        }
        if (ready < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) < 0)
            e = errno;
        if (e != 0) {
            errno_text(e, err, errlen);
            rc = CALL_DOWN;
            goto out;
        }
    }

    int n = asprintf(&req,
                     "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: strangler-cli\r\n"
                     "Accept: application/json\r\nContent-Length: 0\r\nConnection: close\r\n"
                     "%s%s%s\r\n",
                     method, path, c->addr, token ? "Authorization: Bearer " : "",
                     token ? token : "", token ? "\r\n" : "");
    if (n < 0) {
        req = NULL;
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    long long deadline = now_ms() + ANSWER_TIMEOUT_MS;
    for (size_t off = 0; off < (size_t)n;) {
        ssize_t w = send(fd, req + off, (size_t)n - off, MSG_NOSIGNAL);
        if (w > 0) {
            off += (size_t)w;
        } else if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (wait_fd(fd, POLLOUT, deadline) <= 0) {
                snprintf(err, errlen, "the call could not be sent within %d s",
                         ANSWER_TIMEOUT_MS / 1000);
                goto out;
            }
        } else {
            char e[128];
            errno_text(errno, e, sizeof(e));
            snprintf(err, errlen, "sending the call failed: %s", e);
            goto out;
        }
    }
    for (;;) {
        if (cap - len < 4096) {
            size_t ncap = cap ? cap * 2 : 16384;
            char *nb = ncap <= ANSWER_MAX ? realloc(buf, ncap) : NULL;
            if (nb == NULL) {
                snprintf(err, errlen, "the answer is too large");
                goto out;
            }
            buf = nb;
            cap = ncap;
        }
        ssize_t got = recv(fd, buf + len, cap - len, 0);
        if (got > 0) {
            len += (size_t)got;
        } else if (got == 0) {
            break;
        } else if (errno == EAGAIN || errno == EINTR) {
            if (wait_fd(fd, POLLIN, deadline) <= 0) {
                snprintf(err, errlen, "no complete answer within %d s", ANSWER_TIMEOUT_MS / 1000);
                goto out;
            }
        } else {
            char e[128];
            errno_text(errno, e, sizeof(e));
            snprintf(err, errlen, "reading the answer failed: %s", e);
            goto out;
        }
    }
    if (len == 0) {
        snprintf(err, errlen, "the connection closed without an answer");
        goto out;
    }
    if (parse_reply(buf, len, r, err, errlen) == 0)
        rc = CALL_OK;
out:
    free(req);
    free(buf);
    close(fd);
    return rc;
}

/* Why a call got 401. The token itself is never shown. */
static void explain_401(const cli *c, char *err, size_t errlen)
{
    snprintf(err, errlen,
             "the admin API on %s refused the call (401): %s; check admin.token_file in %s",
             c->addr,
             c->s.admin_token ? "the token of admin.token_file is not the proxy's"
                              : "it needs a token and none is configured",
             c->conf);
}

/* A call whose answer is JSON. Returns it (caller decrefs) with *status, or NULL with *down set
 * when no proxy answers; err says why. A 401 is a failure: the token is wrong or missing. */
static json_t *api_json(const cli *c, const char *method, const char *path, int *status, int *down,
                        char *err, size_t errlen)
{
    reply r;
    char e[512];
    *down = 0;
    int rc = admin_call(c, method, path, &r, e, sizeof(e));
    if (rc != CALL_OK) {
        *down = rc == CALL_DOWN;
        snprintf(err, errlen, "%s", e);
        return NULL;
    }
    json_error_t jerr;
    json_t *js = json_loadb(r.body, r.len, 0, &jerr);
    *status = r.status;
    if (r.status == 401) {
        explain_401(c, err, errlen);
        json_decref(js);
        js = NULL;
    } else if (js == NULL) {
        snprintf(err, errlen, "the answer from %s (status %d) is not JSON: %s", c->addr, r.status,
                 jerr.text);
    }
    free(r.body);
    return js;
}

/* ---- shared helpers ---- */

static const char *jstr(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* A percentage from the JSON (a number) as text without a trailing '%'. */
static void json_percent(const json_t *v, char *out, size_t len)
{
    double p = json_number_value(v);
    if (!json_is_number(v) || p < 0 || p > 100) {
        snprintf(out, len, "?");
        return;
    }
    sf_format_percent((uint32_t)lround(p * 100.0), out, len);
}

static const char *login_name(void)
{
    const char *u = getenv("USER");
    if (u != NULL && u[0] != '\0')
        return u;
    struct passwd *pw = getpwuid(getuid());
    return pw != NULL && pw->pw_name != NULL ? pw->pw_name : "unknown";
}

/* s quoted for a POSIX shell when it needs it. */
static void shell_word(const char *s, char *out, size_t len)
{
    int plain = s[0] != '\0';
    for (const char *p = s; *p; p++)
        if (strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./:=@%+,",
                   *p) == NULL)
            plain = 0;
    if (plain) {
        snprintf(out, len, "%s", s);
        return;
    }
    size_t o = 0;
    if (len < 3) {
        if (len > 0)
            out[0] = '\0';
        return;
    }
    out[o++] = '\'';
    for (const char *p = s; *p && o + 5 < len; p++) {
        if (*p == '\'') {
            memcpy(out + o, "'\\''", 4);
            o += 4;
        } else {
            out[o++] = *p;
        }
    }
    out[o++] = '\'';
    out[o] = '\0';
}

/* ---- strangler routes ---- */

/* A growing string for one table cell. */
typedef struct {
    char *s;
    size_t len;
} cell;

static void cell_add(cell *c, const char *text)
{
    size_t n = strlen(text);
    char *s = realloc(c->s, c->len + n + 1);
    if (s == NULL)
        return;
    memcpy(s + c->len, text, n + 1);
    c->s = s;
    c->len += n;
}

/* The MATCH column: "/api/orders", or "~^/items/[0-9]+$" for a regex (nginx's location
 * notation), then the methods and the header conditions. */
static void match_text(const json_t *m, cell *out)
{
    const char *path = jstr(m, "path"), *regex = jstr(m, "regex");
    if (path != NULL) {
        cell_add(out, path);
    } else {
        cell_add(out, "~");
        cell_add(out, regex ? regex : "?");
    }
    const json_t *methods = json_object_get(m, "methods");
    size_t i;
    const json_t *v;
    json_array_foreach(methods, i, v)
    {
        cell_add(out, i == 0 ? " " : ",");
        cell_add(out, json_string_value(v) ? json_string_value(v) : "?");
    }
    const char *name;
    json_object_foreach(json_object_get(m, "headers"), name, v)
    {
        cell_add(out, " ");
        cell_add(out, name);
        cell_add(out, "~");
        cell_add(out, json_string_value(v) ? json_string_value(v) : "?");
    }
}

enum { COLS = 9 };

static void print_row(const char *const *cells, const size_t *w)
{
    for (int k = 0; k < COLS; k++) {
        if (k == COLS - 1)
            printf("%s\n", cells[k]);
        else
            printf("%-*s  ", (int)w[k], cells[k]);
    }
}

static void print_route_table(const json_t *routes)
{
    static const char *const head[COLS] = {"NAME",     "MATCH",  "FUNCTION", "CUTOVER", "STICKY",
                                           "FALLBACK", "SHADOW", "GUARD",    "STATE"};
    size_t n = json_array_size(routes), w[COLS];
    char **cells = calloc(n * COLS + 1, sizeof(char *));
    if (cells == NULL)
        return;
    for (int k = 0; k < COLS; k++)
        w[k] = strlen(head[k]);
    for (size_t i = 0; i < n; i++) {
        const json_t *r = json_array_get(routes, i);
        char pct[16], buf[64];
        char **row = cells + i * COLS;
        cell m = {NULL, 0};
        match_text(json_object_get(r, "match"), &m);
        const char *sticky = jstr(r, "sticky");
        const json_t *shadow = json_object_get(r, "shadow");
        const json_t *guard = json_object_get(r, "guard");
        json_percent(json_object_get(r, "cutover"), pct, sizeof(pct));
        row[0] = strdup(jstr(r, "name") ? jstr(r, "name") : "?");
        row[1] = m.s != NULL ? m.s : strdup("");
        row[2] = strdup(jstr(r, "function") ? jstr(r, "function") : "?");
        snprintf(buf, sizeof(buf), "%s%%", pct);
        row[3] = strdup(buf);
        row[4] = strdup(sticky == NULL || strcmp(sticky, "none") == 0 ? "-" : sticky);
        row[5] = strdup(json_is_true(json_object_get(r, "fallback")) ? "yes" : "-");
        if (json_is_object(shadow)) {
            json_percent(json_object_get(shadow, "percent"), pct, sizeof(pct));
            snprintf(buf, sizeof(buf), "%s%%", pct);
        } else {
            snprintf(buf, sizeof(buf), "-");
        }
        row[6] = strdup(buf);
        row[7] = strdup(!json_is_object(guard)                            ? "-"
                        : json_is_true(json_object_get(guard, "dry_run")) ? "yes (dry run)"
                                                                          : "yes");
        row[8] = strdup(jstr(r, "state") ? jstr(r, "state") : "?");
        for (int k = 0; k < COLS; k++) {
            if (row[k] == NULL)
                row[k] = strdup("");
            if (row[k] != NULL && strlen(row[k]) > w[k])
                w[k] = strlen(row[k]);
        }
    }
    print_row(head, w);
    for (size_t i = 0; i < n; i++) {
        const char *row[COLS];
        int complete = 1;
        for (int k = 0; k < COLS; k++)
            complete &= (row[k] = cells[i * COLS + k]) != NULL;
        if (complete)
            print_row(row, w);
    }
    for (size_t i = 0; i < n * COLS; i++)
        free(cells[i]);
    free(cells);
}

static void print_routes(const json_t *js, int live)
{
    const json_t *lr = json_object_get(js, "last_reload");
    const json_t *routes = json_object_get(js, "routes");
    const char *file = jstr(js, "file"), *version = jstr(js, "version");
    printf("file:        %s%s\n", file ? file : "?", live ? "" : " (on disk)");
    printf("version:     %s\n", version ? version : "?");
    if (live) {
        printf("loaded at:   %s\n", jstr(js, "loaded_at") ? jstr(js, "loaded_at") : "?");
        if (!json_is_object(lr)) {
            printf("last reload: none since the proxy started\n");
        } else if (json_is_true(json_object_get(lr, "ok"))) {
            size_t nc = json_array_size(json_object_get(lr, "changes"));
            printf("last reload: ok at %s (%s), %zu change%s\n", jstr(lr, "at"),
                   jstr(lr, "trigger"), nc, nc == 1 ? "" : "s");
        } else {
            printf("last reload: FAILED at %s (%s): %s\n", jstr(lr, "at"), jstr(lr, "trigger"),
                   jstr(lr, "error") ? jstr(lr, "error") : "unknown error");
            printf("             the proxy keeps serving version %s\n", version ? version : "?");
        }
    }
    printf("legacy:      %s\n\n", jstr(js, "legacy") ? jstr(js, "legacy") : "?");
    if (json_array_size(routes) == 0)
        printf("no routes: every request goes to legacy\n");
    else
        print_route_table(routes);
}

static int cmd_routes(const sf_cli_opts *pre, int argc, char **argv)
{
    int json = 0, rc;
    arg_spec a = {.cmd = "routes", .usage = usage_routes, .opts = {{"--json", NULL, &json}}};
    cli c;
    if ((rc = parse_args(&a, pre, argc, argv)) != ARGS_GO)
        return rc;
    if ((rc = cli_setup(&c, a.cmd, &a.o, 1)) != 0)
        return rc;
    char err[1024];
    reply r;
    rc = admin_call(&c, "GET", "/routes", &r, err, sizeof(err));
    if (rc == CALL_DOWN) {
        fprintf(stderr,
                "strangler routes: no strangler is answering on %s (%s); showing %s as it "
                "is on disk\n",
                c.addr, err, c.s.routes_file);
        sf_diags d;
        sf_diags_init(&d);
        sf_route_table *t = sf_table_load_ex(c.s.routes_file, &d, SF_TABLE_ENV_PLACEHOLDERS);
        if (t == NULL) {
            sf_diags_print(&d, stderr);
            fprintf(stderr, "strangler routes: %s does not load\n", c.s.routes_file);
            rc = 1;
        } else {
            json_t *js = sf_admin_table_json(t, sf_table_path(t), NULL);
            if (json) {
                char *s = json_dumps(js, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
                if (s != NULL)
                    printf("%s\n", s);
                free(s);
            } else {
                print_routes(js, 0);
            }
            json_decref(js);
            rc = 0;
        }
        sf_table_unref(t);
        sf_diags_dispose(&d);
    } else if (rc == CALL_FAIL) {
        fprintf(stderr, "strangler routes: GET /routes on %s failed: %s\n", c.addr, err);
        rc = 1;
    } else {
        json_error_t jerr;
        json_t *js = json_loadb(r.body, r.len, 0, &jerr);
        const char *e = json_is_object(js) ? jstr(js, "error") : NULL;
        rc = 1;
        if (r.status == 401) {
            explain_401(&c, err, sizeof(err));
            fprintf(stderr, "strangler routes: %s\n", err);
        } else if (r.status != 200) {
            fprintf(stderr, "strangler routes: GET /routes on %s answered %d: %s\n", c.addr,
                    r.status, e ? e : "(no error message)");
        } else if (!json_is_object(js)) {
            fprintf(stderr, "strangler routes: the answer of %s is not a JSON object: %s\n", c.addr,
                    jerr.text);
        } else if (json) {
            rc = fwrite(r.body, 1, r.len, stdout) == r.len ? 0 : 1;
        } else {
            print_routes(js, 1);
            rc = 0;
        }
        json_decref(js);
        free(r.body);
    }
    cli_dispose(&c);
    return rc;
}

/* ---- strangler reload ---- */

static int cmd_reload(const sf_cli_opts *pre, int argc, char **argv)
{
    int rc, status = 0, down = 0;
    arg_spec a = {.cmd = "reload", .usage = usage_reload};
    cli c;
    if ((rc = parse_args(&a, pre, argc, argv)) != ARGS_GO)
        return rc;
    if ((rc = cli_setup(&c, a.cmd, &a.o, 1)) != 0)
        return rc;
    char err[1024];
    json_t *js = api_json(&c, "POST", "/reload?trigger=cli", &status, &down, err, sizeof(err));
    rc = 1;
    if (js == NULL && down) {
        fprintf(stderr,
                "strangler reload: no strangler is answering on %s (%s): nothing to reload; a "
                "proxy reads %s when it starts\n",
                c.addr, err, c.s.routes_file);
    } else if (js == NULL) {
        fprintf(stderr, "strangler reload: POST /reload on %s failed: %s\n", c.addr, err);
    } else if (status == 200 && json_is_true(json_object_get(js, "ok"))) {
        const json_t *changes = json_object_get(js, "changes");
        size_t i;
        const json_t *v;
        json_array_foreach(changes, i, v)
        {
            printf("%s\n", json_string_value(v));
        }
        if (json_array_size(changes) == 0)
            printf("no changes: %s version %s is live\n", c.s.routes_file,
                   jstr(js, "version") ? jstr(js, "version") : "?");
        else
            printf("reloaded: %s version %s is live\n", c.s.routes_file,
                   jstr(js, "version") ? jstr(js, "version") : "?");
        rc = 0;
    } else if (status == 422) {
        fprintf(stderr,
                "strangler reload: %s\nstrangler reload: the routes file was rejected; the "
                "proxy keeps serving the table it had (version %s)\n",
                jstr(js, "error") ? jstr(js, "error") : "invalid routes file",
                jstr(js, "version") ? jstr(js, "version") : "?");
    } else {
        fprintf(stderr, "strangler reload: POST /reload on %s answered %d: %s\n", c.addr, status,
                jstr(js, "error") ? jstr(js, "error") : "(no error message)");
    }
    json_decref(js);
    cli_dispose(&c);
    return rc;
}

/* ---- strangler cutover, rollback ---- */

enum { APPLIED, NOT_RUNNING, NOT_APPLIED };

/* Asks the running proxy to reload after an edit; note says what happened. */
static int ask_reload(const cli *c, const char *version, char *note, size_t len)
{
    char err[1024];
    int status = 0, down = 0;
    json_t *js = api_json(c, "POST", "/reload?trigger=cli", &status, &down, err, sizeof(err));
    int rc = NOT_APPLIED;
    if (js == NULL && down) {
        snprintf(note, len, "no strangler is running on %s: the change applies when it starts",
                 c->addr);
        rc = NOT_RUNNING;
    } else if (js == NULL) {
        snprintf(note, len, "the running proxy on %s was not told to reload: %s", c->addr, err);
    } else if (status == 200 && json_is_true(json_object_get(js, "ok"))) {
        const char *live = jstr(js, "version");
        if (live != NULL && version != NULL && strcmp(live, version) != 0)
            snprintf(note, len,
                     "applied by the running proxy, which now serves version %s (the file "
                     "changed again since)",
                     live);
        else
            snprintf(note, len, "applied by the running proxy");
        rc = APPLIED;
    } else {
        snprintf(note, len, "the running proxy rejected the reload (%d): %s", status,
                 jstr(js, "error") ? jstr(js, "error") : "(no error message)");
    }
    json_decref(js);
    return rc;
}

/* Asks the running proxy to apply the edit that made version, and prints what (the edit's
 * summary) with the outcome: "WHAT; NOTE" on stdout, or, when the proxy was told but did not
 * apply it, WHAT on stdout and why on stderr. Returns APPLIED, NOT_RUNNING or NOT_APPLIED. */
static int apply_edit(const cli *c, const char *version, const char *what)
{
    char note[2048];
    int applied = ask_reload(c, version, note, sizeof(note));
    if (applied == NOT_APPLIED) {
        printf("%s\n", what);
        fprintf(stderr,
                "strangler %s: %s\nstrangler %s: the edit stands in %s; the proxy applies it on "
                "its next successful reload\n",
                c->cmd, note, c->cmd, c->s.routes_file);
    } else {
        printf("%s; %s\n", what, note);
    }
    return applied;
}

/* Sets route to bp in the routes file and audits it. Returns 0 (res filled), 1 when it was a
 * no-op, -1 on failure (printed). *audit_failed is set when the change is saved but not in the
 * audit log (printed). */
static int edit_one(const cli *c, const char *route, unsigned bp, const char *action,
                    const char *reason, sf_edit_result *res, int *audit_failed)
{
    char err[2048];
    int rc = sf_routes_set_cutover(c->s.routes_file, route, bp, res, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "strangler %s: %s\n", c->cmd, err);
        return -1;
    }
    if (!res->changed || res->old_bp == bp)
        return 1;
    sf_audit_entry e = {
        .route = route,
        .from_bp = res->old_bp,
        .to_bp = bp,
        .action = action,
        .reason = reason,
        .actor = login_name(),
        .version = res->version,
    };
    if (sf_audit_append(c->s.audit_log, &e, err, sizeof(err)) < 0) {
        fprintf(stderr, "strangler %s: %s is changed in %s but not in the audit log: %s\n", c->cmd,
                route, c->s.routes_file, err);
        *audit_failed = 1;
    }
    return 0;
}

static int cmd_cutover(const sf_cli_opts *pre, int argc, char **argv)
{
    static const char cmd[] = "cutover";
    const char *pos[2] = {NULL, NULL}, *reason = NULL;
    int rc;
    arg_spec a = {.cmd = cmd,
                  .usage = usage_cutover,
                  .opts = {{"--reason", &reason, NULL}},
                  .pos = pos,
                  .maxpos = 2};
    if ((rc = parse_args(&a, pre, argc, argv)) != ARGS_GO)
        return rc;
    if (a.npos < 2)
        return usage_error(cmd, usage_cutover, "%s",
                           a.npos == 0 ? "which route, and to what percent?"
                                       : "to what percent? (0 to 100)");
    unsigned bp;
    if (sf_cli_parse_percent(pos[1], &bp) < 0)
        return usage_error(cmd, usage_cutover,
                           "PERCENT must be a number from 0 to 100 with at most two decimals "
                           "(25, 12.5, 0.25 or 25%%), not '%s'",
                           pos[1]);
    cli c;
    if ((rc = cli_setup(&c, cmd, &a.o, 1)) != 0)
        return rc;
    sf_edit_result res;
    int audit_failed = 0;
    char from[16], to[16], what[8192];
    rc = edit_one(&c, pos[0], bp, "cutover", reason, &res, &audit_failed);
    sf_format_percent(bp, to, sizeof(to));
    if (rc < 0) {
        rc = 1;
    } else if (rc == 1) {
        printf("%s: cutover is already %s%% (%s version %s); nothing changed\n", pos[0], to,
               c.s.routes_file, res.version);
        rc = 0;
    } else {
        sf_format_percent(res.old_bp, from, sizeof(from));
        snprintf(what, sizeof(what), "%s: cutover %s%% -> %s%% (%s version %s)", pos[0], from, to,
                 c.s.routes_file, res.version);
        int applied = apply_edit(&c, res.version, what);
        rc = applied == NOT_APPLIED || audit_failed ? 1 : 0;
    }
    cli_dispose(&c);
    return rc;
}

/* "strangler [-c FILE] cutover ROUTE PERCENT", the -c only when it was given. */
static void restore_command(const cli *c, const char *route, uint32_t bp, char *out, size_t len)
{
    char conf[1024], name[512], pct[16];
    shell_word(route, name, sizeof(name));
    sf_format_percent(bp, pct, sizeof(pct));
    if (c->conf_flag != NULL) {
        shell_word(c->conf_flag, conf, sizeof(conf));
        snprintf(out, len, "strangler -c %s cutover %s %s", conf, name, pct);
    } else {
        snprintf(out, len, "strangler cutover %s %s", name, pct);
    }
}

static int cmd_rollback(const sf_cli_opts *pre, int argc, char **argv)
{
    static const char cmd[] = "rollback";
    const char *route = NULL, *reason = NULL;
    int all = 0, rc;
    arg_spec a = {.cmd = cmd,
                  .usage = usage_rollback,
                  .opts = {{"--reason", &reason, NULL}, {"--all", NULL, &all}},
                  .pos = &route,
                  .maxpos = 1};
    if ((rc = parse_args(&a, pre, argc, argv)) != ARGS_GO)
        return rc;
    if (all && route != NULL)
        return usage_error(cmd, usage_rollback, "give a ROUTE or --all, not both (%s)", route);
    if (!all && route == NULL)
        return usage_error(cmd, usage_rollback, "%s", "which route? (or --all)");

    cli c;
    if ((rc = cli_setup(&c, cmd, &a.o, 1)) != 0)
        return rc;
    /* The routes to roll back: one, or every route above 0 in the file as it is now. */
    char **names = NULL;
    size_t nnames = 0;
    if (all) {
        sf_diags d;
        sf_diags_init(&d);
        sf_route_table *t = sf_table_load_ex(c.s.routes_file, &d, SF_TABLE_ENV_PLACEHOLDERS);
        if (t == NULL) {
            sf_diags_print(&d, stderr);
            fprintf(stderr, "strangler rollback: %s does not load: fix it first\n",
                    c.s.routes_file);
        } else {
            size_t nr;
            const sf_route *rs = sf_table_routes(t, &nr);
            names = calloc(nr + 1, sizeof(char *));
            for (size_t i = 0; names != NULL && i < nr; i++)
                if (rs[i].cutover_bp > 0 && (names[nnames] = strdup(rs[i].name)) != NULL)
                    nnames++;
        }
        sf_table_unref(t);
        sf_diags_dispose(&d);
        if (names == NULL) {
            cli_dispose(&c);
            return 1;
        }
        if (nnames == 0) {
            printf("no route has a cutover above 0%% in %s; nothing changed\n", c.s.routes_file);
            free(names);
            cli_dispose(&c);
            return 0;
        }
    }

    int failed = 0, audit_failed = 0;
    size_t done = 0;
    const char *version = NULL;
    sf_edit_result res;
    char cmdline[2048], from[16], last_version[17] = "";
    for (size_t i = 0; i < (all ? nnames : 1); i++) {
        const char *name = all ? names[i] : route;
        int r = edit_one(&c, name, 0, "rollback", reason, &res, &audit_failed);
        if (r < 0) {
            failed = 1;
            continue;
        }
        if (r == 1) {
            printf("%s: already at 0%%; nothing changed\n", name);
            continue;
        }
        done++;
        memcpy(last_version, res.version, sizeof(last_version));
        version = last_version;
        sf_format_percent(res.old_bp, from, sizeof(from));
        restore_command(&c, name, res.old_bp, cmdline, sizeof(cmdline));
        printf("%s: rolled back %s%% -> 0%%. To restore: %s\n", name, from, cmdline);
    }
    if (done > 0) {
        char what[8192];
        snprintf(what, sizeof(what), "%s version %s", c.s.routes_file, version);
        if (apply_edit(&c, version, what) == NOT_APPLIED)
            failed = 1;
    }
    for (size_t i = 0; i < nnames; i++)
        free(names[i]);
    free(names);
    cli_dispose(&c);
    return failed || audit_failed ? 1 : 0;
}

/* ---- strangler history ---- */

static int cmd_history(const sf_cli_opts *pre, int argc, char **argv)
{
    static const char cmd[] = "history";
    const char *route = NULL, *limit_text = NULL;
    int json = 0, rc;
    arg_spec a = {.cmd = cmd,
                  .usage = usage_history,
                  .opts = {{"--limit", &limit_text, NULL}, {"--json", NULL, &json}},
                  .pos = &route,
                  .maxpos = 1};
    if ((rc = parse_args(&a, pre, argc, argv)) != ARGS_GO)
        return rc;
    size_t limit = 0;
    if (limit_text != NULL) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(limit_text, &end, 10);
        if (limit_text[0] < '0' || limit_text[0] > '9' || *end != '\0' || errno != 0 || v == 0 ||
            v > 1000000000ul)
            return usage_error(cmd, usage_history, "--limit takes a positive number, not '%s'",
                               limit_text);
        limit = (size_t)v;
    }
    if (a.o.admin != NULL)
        fprintf(stderr, "strangler history: --admin is not used: the audit log is read from "
                        "disk\n");
    cli c;
    if ((rc = cli_setup(&c, cmd, &a.o, 0)) != 0)
        return rc;
    char err[1024];
    size_t malformed = 0;
    json_t *arr = sf_audit_read(c.s.audit_log, route, limit, &malformed, err, sizeof(err));
    if (arr == NULL) {
        fprintf(stderr, "strangler history: %s\n", err);
        cli_dispose(&c);
        return 1;
    }
    if (malformed > 0)
        fprintf(stderr, "strangler history: %zu line%s of %s %s not an audit entry: skipped\n",
                malformed, malformed == 1 ? "" : "s", c.s.audit_log, malformed == 1 ? "is" : "are");
    if (json) {
        char *s = json_dumps(arr, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (s != NULL)
            printf("%s\n", s);
        free(s);
    } else if (json_array_size(arr) == 0) {
        if (route != NULL)
            printf("no cutover changes recorded for route %s in %s\n", route, c.s.audit_log);
        else
            printf("no cutover changes recorded in %s\n", c.s.audit_log);
    } else {
        sf_audit_print_table(arr, stdout);
    }
    json_decref(arr);
    cli_dispose(&c);
    return 0;
}

/* ---- the table ---- */

static const sf_cli_command commands[] = {
    {"routes", usage_routes, cmd_routes},    {"reload", usage_reload, cmd_reload},
    {"cutover", usage_cutover, cmd_cutover}, {"rollback", usage_rollback, cmd_rollback},
    {"history", usage_history, cmd_history},
};

const sf_cli_command *sf_cli_find(const char *name)
{
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}
