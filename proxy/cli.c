/* The operator commands routes, reload, cutover, rollback, history, stats and diffs: a blocking
 * HTTP client for the admin API, in-place edits of routes.yaml, the audit log, and terminal tables.
 */
#include "cli.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
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

static const char usage_stats[] =
    "usage: strangler stats [-c FILE] [--admin URL] [ROUTE] [--json] [--watch [--count N]]\n"
    "\n"
    "Per-route traffic of the running proxy (GET /stats). On top: the share of all requests\n"
    "the legacy monolith served in the last 60 s (and 5 min), the request rate, the routes\n"
    "file's version and the uptime. Then one row per route, _default being the requests no\n"
    "route matched: CUTOVER, STATE (ROLLED BACK when a rollback or the guard set it to 0),\n"
    "requests/s per backend over the last 60 s, the error ratio per backend since the start\n"
    "(5xx and upstream failures), p50/p99 latency per backend in ms, the SHADOW match ratio\n"
    "and FALLBACKS (requests the function failed and legacy served). \"-\" means no data. A\n"
    "route no longer in the routes file is shown (STATE removed) only while it had traffic\n"
    "in the last 5 minutes. Exits 1 when no proxy answers.\n"
    "\n"
    "  ROUTE        only that route, in detail: per backend the requests (all, last 60 s),\n"
    "               rates over 1 and 5 min, status classes, errors, upstream errors by kind,\n"
    "               p50/p90/p99, bytes in and out; shadow results and fallbacks. An unknown\n"
    "               ROUTE fails (exit 1) and lists the known ones\n"
    "  --json       the JSON as the proxy sends it, for scripts (with ROUTE: that route's\n"
    "               object)\n"
    "  --watch      redraw every second, like top, until SIGINT (Ctrl-C) or SIGTERM (exit 0);\n"
    "               when the proxy stops answering, says so and keeps trying. When stdout is\n"
    "               not a terminal, the frames follow each other after a blank line\n"
    "  --count N    with --watch: stop after N frames; exit 1 when the last one failed\n"
    "  --admin URL  the admin API, http://HOST:PORT (default: admin.address of FILE)\n"
    "  -c FILE      the server settings (default: $STRANGLER_CONF, else conf/strangler.yaml)\n";

static const char usage_diffs[] =
    "usage: strangler diffs [-c FILE] [--admin URL] ROUTE [--json] [--limit N]\n"
    "\n"
    "The latest shadow mismatches of ROUTE in the running proxy (GET /routes/ROUTE/diffs): on\n"
    "top, how many there were since the proxy started and the paths that differed most often;\n"
    "then each mismatch, newest first: its time (UTC), method and path, request id (as in the\n"
    "access log) and status (legacy/function), and under it every path that differed with the\n"
    "monolith's value (- legacy) and the function's (+ function). The proxy keeps the last 100\n"
    "mismatches of each route in memory (a restart empties them), values cut at 256 bytes, and\n"
    "never the values of Authorization or Cookie headers. Red and green when stdout is a\n"
    "terminal and NO_COLOR is not set. Exits 1 when ROUTE is not in the live route table (the\n"
    "known routes are listed) or when no proxy answers.\n"
    "\n"
    "  --limit N    the newest N mismatches (default 10)\n"
    "  --json       print the admin API's JSON as it is\n"
    "  --admin URL  the admin API, http://HOST:PORT (default: admin.address of FILE)\n"
    "  -c FILE      the server settings (default: $STRANGLER_CONF, else conf/strangler.yaml)\n";

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

/* A count on the command line ("--limit 20"): 1 to 10^9. Returns 0 with *n, or -1. */
static int parse_count(const char *s, size_t *n)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno != 0 || v == 0 || v > 1000000000ul)
        return -1;
    *n = (size_t)v;
    return 0;
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

/* Set by the SIGINT and SIGTERM handler of `stats --watch`: a wait it interrupts gives up, so
 * that Ctrl-C does not sit out a call to a proxy that stopped answering. */
static volatile sig_atomic_t stop_signal;

/* Waits for events on fd until deadline. Returns 1 when ready, 0 on timeout, -1 on error or
 * a stop signal. */
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
        if (errno != EINTR || stop_signal)
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

/* o[key] when it is a string, NULL otherwise; "?" when it holds control characters: what a
 * server sends must not reach the terminal as escape sequences. */
static const char *jstr(const json_t *o, const char *key)
{
    const char *v = json_string_value(json_object_get(o, key));
    for (const char *p = v; p != NULL && *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return "?";
    return v;
}

/* A count or a number of seconds from the JSON: -1 when it is not a number in range (a cast of
 * an out-of-range double is undefined). */
static long long jwhole(const json_t *v)
{
    if (json_is_integer(v))
        return (long long)json_integer_value(v);
    double d = json_number_value(v);
    return json_is_real(v) && d >= 0 && d < 9e18 ? (long long)d : -1;
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

/* ---- tables for a terminal ---- */

enum { TABLE_COLS_MAX = 12 };

/* Rows of text cells, printed with each column as wide as its widest cell, two spaces apart:
 * the layout of the routes and stats tables. */
typedef struct {
    int ncols;
    const char *const *head; /* ncols headings */
    const char *right;       /* ncols flags, 1: right-aligned (numbers); NULL: all left */
    char **cells;            /* row-major; a NULL cell (out of memory) prints empty */
    size_t ncells, cap;
    int broken; /* a cell could not be stored: the rows would shift, print nothing */
} table;

/* Headings over runs of columns: label spans ncols columns from first. */
typedef struct {
    const char *label;
    int first, ncols;
} table_group;

static void table_init(table *t, int ncols, const char *const *head, const char *right)
{
    memset(t, 0, sizeof(*t));
    t->ncols = ncols < TABLE_COLS_MAX ? ncols : TABLE_COLS_MAX;
    t->head = head;
    t->right = right;
}

static void table_dispose(table *t)
{
    for (size_t i = 0; i < t->ncells; i++)
        free(t->cells[i]);
    free(t->cells);
}

/* Appends the next cell, printf-style; control characters become spaces so that a name from
 * the JSON cannot move the cursor. */
static void table_add(table *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void table_add(table *t, const char *fmt, ...)
{
    char *s = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    for (char *p = s; p != NULL && *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
    if (t->ncells == t->cap) {
        size_t ncap = t->cap ? t->cap * 2 : 64;
        char **nc = realloc(t->cells, ncap * sizeof(*nc));
        if (nc == NULL) {
            free(s);
            t->broken = 1;
            return;
        }
        t->cells = nc;
        t->cap = ncap;
    }
    t->cells[t->ncells++] = s;
}

static size_t table_rows(const table *t)
{
    return t->ncells / (size_t)t->ncols;
}

/* Columns on a terminal, not bytes: UTF-8 continuation bytes take no room. */
static size_t text_width(const char *s)
{
    size_t w = 0;
    for (; s != NULL && *s; s++)
        if (((unsigned char)*s & 0xc0) != 0x80)
            w++;
    return w;
}

static void table_line(const table *t, FILE *out, const char *const *cells, const size_t *w)
{
    for (int k = 0; k < t->ncols; k++) {
        const char *s = cells[k] ? cells[k] : "";
        size_t pad = w[k] - text_width(s);
        int last = k == t->ncols - 1;
        if (t->right != NULL && t->right[k])
            fprintf(out, "%*s%s%s", (int)pad, "", s, last ? "\n" : "  ");
        else if (last)
            fprintf(out, "%s\n", s); /* a left-aligned last column is not padded */
        else
            fprintf(out, "%s%*s", s, (int)pad + 2, "");
    }
}

static void dashes(FILE *out, size_t n)
{
    while (n-- > 0)
        fputc('-', out);
}

/* "---- label ----" over each group's columns (groups in column order, not overlapping),
 * widening a group's last column when the label needs more room. */
static void table_groups(FILE *out, const table_group *g, int ng, size_t *w)
{
    size_t pos = 0; /* the columns written on this line so far */
    for (int i = 0; i < ng; i++) {
        int end = g[i].first + g[i].ncols;
        size_t lw = text_width(g[i].label), start = 0, span = 0;
        for (int k = 0; k < g[i].first; k++)
            start += w[k] + 2;
        for (int k = g[i].first; k < end; k++)
            span += w[k] + (k > g[i].first ? 2 : 0);
        if (span < lw + 6) {
            w[end - 1] += lw + 6 - span;
            span = lw + 6;
        }
        size_t n = span - lw - 2;
        fprintf(out, "%*s", (int)(start - pos), "");
        dashes(out, n / 2);
        fprintf(out, " %s ", g[i].label);
        dashes(out, n - n / 2);
        pos = start + span;
    }
    fputc('\n', out);
}

static void table_print(const table *t, FILE *out, const table_group *groups, int ngroups)
{
    size_t w[TABLE_COLS_MAX], rows = table_rows(t);
    if (t->broken) {
        fputs("(out of memory)\n", out);
        return;
    }
    for (int k = 0; k < t->ncols; k++) {
        w[k] = text_width(t->head[k]);
        for (size_t r = 0; r < rows; r++)
            if (text_width(t->cells[r * (size_t)t->ncols + (size_t)k]) > w[k])
                w[k] = text_width(t->cells[r * (size_t)t->ncols + (size_t)k]);
    }
    if (ngroups > 0)
        table_groups(out, groups, ngroups, w);
    table_line(t, out, t->head, w);
    for (size_t r = 0; r < rows; r++)
        table_line(t, out, (const char *const *)(t->cells + r * (size_t)t->ncols), w);
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

static void print_route_table(const json_t *routes)
{
    static const char *const head[] = {"NAME",     "MATCH",  "FUNCTION", "CUTOVER", "STICKY",
                                       "FALLBACK", "SHADOW", "GUARD",    "STATE"};
    table t;
    size_t i;
    const json_t *r;
    table_init(&t, (int)(sizeof(head) / sizeof(head[0])), head, NULL);
    json_array_foreach(routes, i, r)
    {
        char pct[16];
        cell m = {NULL, 0};
        match_text(json_object_get(r, "match"), &m);
        const char *sticky = jstr(r, "sticky");
        const json_t *shadow = json_object_get(r, "shadow");
        const json_t *guard = json_object_get(r, "guard");
        table_add(&t, "%s", jstr(r, "name") ? jstr(r, "name") : "?");
        table_add(&t, "%s", m.s != NULL ? m.s : "");
        free(m.s);
        table_add(&t, "%s", jstr(r, "function") ? jstr(r, "function") : "?");
        json_percent(json_object_get(r, "cutover"), pct, sizeof(pct));
        table_add(&t, "%s%%", pct);
        table_add(&t, "%s", sticky == NULL || strcmp(sticky, "none") == 0 ? "-" : sticky);
        table_add(&t, "%s", json_is_true(json_object_get(r, "fallback")) ? "yes" : "-");
        json_percent(json_object_get(shadow, "percent"), pct, sizeof(pct));
        table_add(&t, "%s%s", json_is_object(shadow) ? pct : "-",
                  json_is_object(shadow) ? "%" : "");
        table_add(&t, "%s",
                  !json_is_object(guard)                            ? "-"
                  : json_is_true(json_object_get(guard, "dry_run")) ? "yes (dry run)"
                                                                    : "yes");
        table_add(&t, "%s", jstr(r, "state") ? jstr(r, "state") : "?");
    }
    table_print(&t, stdout, NULL, 0);
    table_dispose(&t);
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
    if (limit_text != NULL && parse_count(limit_text, &limit) < 0)
        return usage_error(cmd, usage_history, "--limit takes a positive number, not '%s'",
                           limit_text);
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

/* ---- strangler stats ---- */

static const char *const backends[2] = {"legacy", "function"};

/* What the command line asked of `strangler stats`. */
typedef struct {
    const char *route; /* one route in detail, or NULL for the table */
    int json, watch;
    size_t count; /* with watch: the frames to draw, 0 for no end */
} stats_opts;

/* The formatting of one JSON value into a cell; "-" for null or a missing value. */
typedef void (*fmt_fn)(const json_t *v, char *out, size_t len);

static const json_t *jget2(const json_t *o, const char *a, const char *b)
{
    return json_object_get(json_object_get(o, a), b);
}

static void fmt_int(const json_t *v, char *out, size_t len)
{
    if (json_is_integer(v))
        snprintf(out, len, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v))
        snprintf(out, len, "%.0f", json_real_value(v));
    else
        snprintf(out, len, "-");
}

/* Requests per second: two decimals under 10, so that a little curl traffic still shows. */
static void rate_text(double x, char *out, size_t len)
{
    snprintf(out, len, x < 10 ? "%.2f" : x < 1000 ? "%.1f" : "%.0f", x);
}

static void fmt_rate(const json_t *v, char *out, size_t len)
{
    if (json_is_number(v))
        rate_text(json_number_value(v), out, len);
    else
        snprintf(out, len, "-");
}

/* A ratio 0..1 as a percentage. A few errors among many requests, or a few shadow mismatches,
 * must not round away to 0% or 100%. */
static void fmt_share(const json_t *v, char *out, size_t len)
{
    double p = json_number_value(v) * 100;
    if (!json_is_number(v))
        snprintf(out, len, "-");
    else if (p > 0 && p < 0.05)
        snprintf(out, len, "<0.1%%");
    else if (p < 100 && p >= 99.95)
        snprintf(out, len, ">99.9%%");
    else
        snprintf(out, len, "%.1f%%", p);
}

static void fmt_ms(const json_t *v, char *out, size_t len)
{
    double x = json_number_value(v);
    if (!json_is_number(v))
        snprintf(out, len, "-");
    else
        snprintf(out, len, x < 1 ? "%.2f" : x < 100 ? "%.1f" : "%.0f", x);
}

/* A latency object as "p50/p99". */
static void fmt_p50_p99(const json_t *v, char *out, size_t len)
{
    char p50[32], p99[32];
    if (!json_is_object(v)) {
        snprintf(out, len, "-");
        return;
    }
    fmt_ms(json_object_get(v, "p50"), p50, sizeof(p50));
    fmt_ms(json_object_get(v, "p99"), p99, sizeof(p99));
    snprintf(out, len, "%s/%s", p50, p99);
}

static void fmt_cutover(const json_t *v, char *out, size_t len)
{
    char pct[16];
    if (!json_is_number(v)) {
        snprintf(out, len, "-");
        return;
    }
    json_percent(v, pct, sizeof(pct));
    snprintf(out, len, "%s%%", pct);
}

/* "42s", "12m05s", "1h02m", "3d04h". */
static void fmt_uptime(const json_t *v, char *out, size_t len)
{
    long long s = jwhole(v);
    if (s < 0)
        snprintf(out, len, "-");
    else if (s < 60)
        snprintf(out, len, "%llds", s);
    else if (s < 3600)
        snprintf(out, len, "%lldm%02llds", s / 60, s % 60);
    else if (s < 86400)
        snprintf(out, len, "%lldh%02lldm", s / 3600, s % 3600 / 60);
    else
        snprintf(out, len, "%lldd%02lldh", s / 86400, s % 86400 / 3600);
}

static long long jcount(const json_t *v)
{
    long long n = jwhole(v);
    return n > 0 ? n : 0;
}

/* The lines on top: the monolith's share first, then the totals. */
static void print_summary(const json_t *js, FILE *out)
{
    char share[16], share5[16], rate[32], up[32];
    const json_t *reloads = json_object_get(js, "reloads");
    const json_t *last_ok = json_object_get(reloads, "last_ok");
    fmt_share(json_object_get(js, "legacy_share"), share, sizeof(share));
    fmt_share(json_object_get(js, "legacy_share_5m"), share5, sizeof(share5));
    rate_text(json_number_value(jget2(js, "rate", "legacy")) +
                  json_number_value(jget2(js, "rate", "function")),
              rate, sizeof(rate));
    fmt_uptime(json_object_get(js, "uptime_s"), up, sizeof(up));
    fprintf(out, "legacy share (last 60s): %s  (5m: %s)  · %s req/s · config %s · up %s\n", share,
            share5, rate, jstr(js, "config_version") ? jstr(js, "config_version") : "?", up);
    fprintf(out,
            "since start: %lld legacy, %lld function requests · reloads: %lld ok, %lld failed%s\n",
            jcount(jget2(js, "requests", "legacy")), jcount(jget2(js, "requests", "function")),
            jcount(json_object_get(reloads, "ok")), jcount(json_object_get(reloads, "failed")),
            json_is_false(last_ok) ? " (the last one FAILED: see 'strangler routes')" : "");
}

/* The STATE column: what an operator must notice first. */
static const char *state_text(const json_t *r)
{
    const char *state = jstr(r, "state");
    if (json_is_false(json_object_get(r, "in_table")))
        return "removed";
    if (jstr(r, "function") == NULL)
        return "-";
    if (state != NULL && strcmp(state, "rolled_back") == 0)
        return "ROLLED BACK";
    return state != NULL ? state : "-";
}

/* A route without a function (_default) shows "-" for the function's numbers, not zeros. */
static int has_function(const json_t *r)
{
    return jstr(r, "function") != NULL || jcount(jget2(r, "requests", "function")) > 0;
}

/* The legacy and the function cell of r's field key, formatted by f. */
static void add_pair(table *t, const json_t *r, const char *key, fmt_fn f)
{
    char buf[64];
    for (int b = 0; b < 2; b++) {
        if (b == 1 && !has_function(r))
            snprintf(buf, sizeof(buf), "-");
        else
            f(jget2(r, key, backends[b]), buf, sizeof(buf));
        table_add(t, "%s", buf);
    }
}

/* Routes gone from the table stay in the stats; they are noise once they have no traffic. */
static int route_shown(const json_t *r)
{
    return !json_is_false(json_object_get(r, "in_table")) ||
           json_number_value(jget2(r, "rate_5m", "legacy")) > 0 ||
           json_number_value(jget2(r, "rate_5m", "function")) > 0;
}

static void print_stats_table(const json_t *js, FILE *out)
{
    static const char *const head[] = {"ROUTE",    "CUTOVER", "STATE",    "LEGACY",
                                       "FUNCTION", "LEGACY",  "FUNCTION", "LEGACY",
                                       "FUNCTION", "SHADOW",  "FALLBACKS"};
    static const char right[] = {0, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1};
    static const table_group groups[] = {
        {"req/s", 3, 2}, {"errors 1m", 5, 2}, {"p50/p99 ms", 7, 2}};
    table t;
    size_t i;
    const json_t *r;
    char buf[64];
    table_init(&t, (int)(sizeof(head) / sizeof(head[0])), head, right);
    json_array_foreach(json_object_get(js, "routes"), i, r)
    {
        if (!route_shown(r))
            continue;
        table_add(&t, "%s", jstr(r, "name") ? jstr(r, "name") : "?");
        fmt_cutover(json_object_get(r, "cutover"), buf, sizeof(buf));
        table_add(&t, "%s", buf);
        table_add(&t, "%s", state_text(r));
        add_pair(&t, r, "rate", fmt_rate);
        add_pair(&t, r, "error_ratio_60s", fmt_share);
        add_pair(&t, r, "latency_ms", fmt_p50_p99);
        fmt_share(jget2(r, "shadow", "match_ratio"), buf, sizeof(buf));
        table_add(&t, "%s", buf);
        fmt_int(json_object_get(r, "fallbacks"), buf, sizeof(buf));
        table_add(&t, "%s", buf);
    }
    fputc('\n', out);
    table_print(&t, out, groups, (int)(sizeof(groups) / sizeof(groups[0])));
    table_dispose(&t);
}

/* The rows of the one-route view: label, then r[key][backend] (or [key][backend][sub]). */
static const struct {
    const char *label, *key, *sub;
    fmt_fn f;
} detail_rows[] = {
    {"requests", "requests", NULL, fmt_int},
    {"  last 60 s", "requests_60s", NULL, fmt_int},
    {"req/s, last 1 min", "rate", NULL, fmt_rate},
    {"req/s, last 5 min", "rate_5m", NULL, fmt_rate},
    {"status 1xx", "status", "1xx", fmt_int},
    {"status 2xx", "status", "2xx", fmt_int},
    {"status 3xx", "status", "3xx", fmt_int},
    {"status 4xx", "status", "4xx", fmt_int},
    {"status 5xx", "status", "5xx", fmt_int},
    {"no status", "status", "none", fmt_int},
    {"errors", "errors", NULL, fmt_int},
    {"  last 60 s", "errors_60s", NULL, fmt_int},
    {"error ratio", "error_ratio", NULL, fmt_share},
    {"  last 60 s ratio", "error_ratio_60s", NULL, fmt_share},
    {"upstream connect", "upstream_errors", "connect", fmt_int},
    {"upstream timeout", "upstream_errors", "timeout", fmt_int},
    {"upstream reset", "upstream_errors", "reset", fmt_int},
    {"upstream protocol", "upstream_errors", "protocol", fmt_int},
    {"latency p50 ms", "latency_ms", "p50", fmt_ms},
    {"latency p90 ms", "latency_ms", "p90", fmt_ms},
    {"latency p99 ms", "latency_ms", "p99", fmt_ms},
    {"bytes in", "bytes", "in", fmt_int},
    {"bytes out", "bytes", "out", fmt_int},
};

static void print_route_head(const json_t *r, FILE *out)
{
    char cut[32];
    const char *name = jstr(r, "name") ? jstr(r, "name") : "?", *state = state_text(r);
    fmt_cutover(json_object_get(r, "cutover"), cut, sizeof(cut));
    fprintf(out, "\nroute:     %s\n", name);
    fprintf(out, "function:  %s\n", jstr(r, "function") ? jstr(r, "function") : "-");
    fprintf(out, "cutover:   %s\n", cut);
    if (json_is_false(json_object_get(r, "in_table")))
        fprintf(out, "state:     no longer in the route table (its numbers since start)\n");
    else if (jstr(r, "function") == NULL)
        fprintf(out, "state:     requests no route matched, served by legacy\n");
    else if (strcmp(state, "ROLLED BACK") == 0)
        fprintf(out, "state:     ROLLED BACK (see 'strangler history %s')\n", name);
    else
        fprintf(out, "state:     %s\n", state);
}

/* "  skipped: 3 over_capacity, 1 method" for the reasons with a count; nothing when none. */
static void print_reasons(FILE *out, const char *label, json_t *by)
{
    const char *k;
    const json_t *v;
    int n = 0;
    json_object_foreach(by, k, v)
    {
        if (jcount(v) == 0)
            continue;
        fprintf(out, "%s%lld %s", n++ ? ", " : label, jcount(v),
                strspn(k, "abcdefghijklmnopqrstuvwxyz_0123456789") == strlen(k) ? k : "?");
    }
    if (n > 0)
        fputc('\n', out);
}

static void print_route_detail(const json_t *r, FILE *out)
{
    static const char *const head[] = {"", "LEGACY", "FUNCTION"};
    static const char right[] = {0, 1, 1};
    const json_t *sh = json_object_get(r, "shadow");
    char buf[64];
    table t;
    print_route_head(r, out);
    table_init(&t, 3, head, right);
    for (size_t i = 0; i < sizeof(detail_rows) / sizeof(detail_rows[0]); i++) {
        table_add(&t, "%s", detail_rows[i].label);
        for (int b = 0; b < 2; b++) {
            const json_t *v = jget2(r, detail_rows[i].key, backends[b]);
            if (detail_rows[i].sub != NULL)
                v = json_object_get(v, detail_rows[i].sub);
            detail_rows[i].f(v, buf, sizeof(buf));
            table_add(&t, "%s", buf);
        }
    }
    fputc('\n', out);
    table_print(&t, out, NULL, 0);
    table_dispose(&t);
    fmt_share(json_object_get(sh, "match_ratio"), buf, sizeof(buf));
    fprintf(out,
            "\nshadow:    %lld match, %lld mismatch, %lld noise, %lld skipped, %lld error · "
            "match ratio %s\n",
            jcount(json_object_get(sh, "match")), jcount(json_object_get(sh, "mismatch")),
            jcount(json_object_get(sh, "noise")), jcount(json_object_get(sh, "skipped")),
            jcount(json_object_get(sh, "error")), buf);
    print_reasons(out, "  skipped: ", json_object_get(sh, "skipped_by"));
    print_reasons(out, "  errors:  ", json_object_get(sh, "errors_by"));
    fprintf(out, "fallbacks: %lld (requests the function failed and legacy served)\n",
            jcount(json_object_get(r, "fallbacks")));
}

static const json_t *find_route(const json_t *js, const char *name)
{
    size_t i;
    const json_t *r;
    json_array_foreach(json_object_get(js, "routes"), i, r)
    {
        if (jstr(r, "name") != NULL && strcmp(jstr(r, "name"), name) == 0)
            return r;
    }
    return NULL;
}

static void unknown_route(const cli *c, const json_t *js, const char *name, char *err,
                          size_t errlen)
{
    size_t i, at;
    const json_t *r;
    at = (size_t)snprintf(err, errlen,
                          "no route named '%s' in the stats of %s; known routes:", name, c->addr);
    json_array_foreach(json_object_get(js, "routes"), i, r)
    {
        if (at < errlen)
            at += (size_t)snprintf(err + at, errlen - at, "%s %s", i ? "," : "",
                                   jstr(r, "name") ? jstr(r, "name") : "?");
    }
}

/* GET /stats. Returns 0 with *js (caller decrefs) and r (caller frees r->body), else -1 with
 * err set (the address named) and nothing to free. */
static int fetch_stats(const cli *c, reply *r, json_t **js, char *err, size_t errlen)
{
    char e[512];
    json_error_t jerr;
    *js = NULL;
    int rc = admin_call(c, "GET", "/stats", r, e, sizeof(e));
    if (rc == CALL_DOWN) {
        snprintf(err, errlen, "no strangler is answering on %s (%s)", c->addr, e);
        return -1;
    }
    if (rc != CALL_OK) {
        snprintf(err, errlen, "GET /stats on %s failed: %s", c->addr, e);
        return -1;
    }
    *js = json_loadb(r->body, r->len, 0, &jerr);
    if (r->status == 401)
        explain_401(c, err, errlen);
    else if (r->status != 200)
        snprintf(err, errlen, "GET /stats on %s answered %d: %s", c->addr, r->status,
                 jstr(*js, "error") ? jstr(*js, "error") : "(no error message)");
    else if (!json_is_object(*js))
        snprintf(err, errlen, "the answer of %s to GET /stats is not a JSON object: %s", c->addr,
                 *js == NULL ? jerr.text : "another JSON value");
    else
        return 0;
    json_decref(*js);
    *js = NULL;
    free(r->body);
    return -1;
}

/* One picture of the stats, as so asks, on out. Returns 0, or 1 with err set. */
static int stats_frame(const cli *c, const stats_opts *so, FILE *out, char *err, size_t errlen)
{
    reply r;
    json_t *js;
    const json_t *route = NULL;
    int rc = 0;
    if (fetch_stats(c, &r, &js, err, errlen) < 0)
        return 1;
    if (so->route != NULL && (route = find_route(js, so->route)) == NULL) {
        unknown_route(c, js, so->route, err, errlen);
        rc = 1;
    } else if (so->json && route != NULL) {
        char *text = json_dumps(route, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (text != NULL)
            fprintf(out, "%s\n", text);
        else
            rc = snprintf(err, errlen, "out of memory") > 0;
        free(text);
    } else if (so->json) {
        fwrite(r.body, 1, r.len, out);
        if (r.len == 0 || r.body[r.len - 1] != '\n')
            fputc('\n', out);
    } else {
        print_summary(js, out);
        if (route != NULL)
            print_route_detail(route, out);
        else
            print_stats_table(js, out);
    }
    json_decref(js);
    free(r.body);
    return rc;
}

static void on_stop(int sig)
{
    stop_signal = sig;
}

/* Sleeps until deadline (CLOCK_MONOTONIC ms) or a stop signal. */
static void sleep_until(long long deadline)
{
    for (long long left; !stop_signal && (left = deadline - now_ms()) > 0;)
        poll(NULL, 0, (int)left);
}

/* One frame of --watch. A tty gets the screen cleared and the frame written in one go (no
 * flicker); a pipe gets the frames one after the other, a blank line between. */
static int watch_frame(const cli *c, const stats_opts *so, int tty, size_t n)
{
    char *text = NULL, err[4096], when[32];
    size_t len = 0;
    time_t now = time(NULL);
    struct tm tm;
    FILE *m = open_memstream(&text, &len);
    if (m == NULL)
        return 1;
    strftime(when, sizeof(when), "%H:%M:%S", localtime_r(&now, &tm));
    if (!so->json)
        fprintf(m, "strangler stats on %s at %s, every 1 s (Ctrl-C quits)\n", c->addr, when);
    int rc = stats_frame(c, so, m, err, sizeof(err));
    if (rc != 0 && !so->json)
        fprintf(m, "\nerror: %s; trying again every second\n", err);
    fclose(m);
    if (rc != 0 && so->json)
        fprintf(stderr, "strangler stats: %s\n", err);
    if (!stop_signal && text != NULL && (len > 0 || tty)) {
        fputs(tty ? "\033[H\033[2J" : n > 0 ? "\n" : "", stdout);
        fwrite(text, 1, len, stdout);
        fflush(stdout);
    }
    free(text);
    return rc;
}

/* Redraws every second until a stop signal (exit 0) or so->count frames (the last frame's
 * outcome). */
static int stats_watch(const cli *c, const stats_opts *so)
{
    struct sigaction sa, old_int, old_term;
    int tty = isatty(STDOUT_FILENO), rc = 0;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop; /* no SA_RESTART: a signal cuts a wait short */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    for (size_t n = 0; !stop_signal && (so->count == 0 || n < so->count); n++) {
        long long next = now_ms() + 1000;
        rc = watch_frame(c, so, tty, n);
        if (so->count == 0 || n + 1 < so->count)
            sleep_until(next);
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    return stop_signal ? 0 : rc;
}

static int cmd_stats(const sf_cli_opts *pre, int argc, char **argv)
{
    static const char cmd[] = "stats";
    const char *count_text = NULL;
    stats_opts so = {NULL, 0, 0, 0};
    int rc;
    arg_spec a = {.cmd = cmd,
                  .usage = usage_stats,
                  .opts = {{"--json", NULL, &so.json},
                           {"--watch", NULL, &so.watch},
                           {"--count", &count_text, NULL}},
                  .pos = &so.route,
                  .maxpos = 1};
    if ((rc = parse_args(&a, pre, argc, argv)) != ARGS_GO)
        return rc;
    if (count_text != NULL && parse_count(count_text, &so.count) < 0)
        return usage_error(cmd, usage_stats, "--count takes a positive number, not '%s'",
                           count_text);
    if (count_text != NULL && !so.watch)
        return usage_error(cmd, usage_stats, "%s", "--count goes with --watch");
    cli c;
    if ((rc = cli_setup(&c, cmd, &a.o, 1)) != 0)
        return rc;
    if (so.watch) {
        rc = stats_watch(&c, &so);
    } else {
        char err[4096];
        rc = stats_frame(&c, &so, stdout, err, sizeof(err));
        if (rc != 0)
            fprintf(stderr, "strangler stats: %s\n", err);
    }
    cli_dispose(&c);
    return rc;
}

/* ---- strangler diffs ---- */

/* s on out with every control character as '?', C1 ones (U+0080..U+009F) included: a terminal
 * may take those as escape sequences too. */
static void put_clean(const char *s, FILE *out)
{
    for (const unsigned char *p = (const unsigned char *)s; p != NULL && *p; p++) {
        if (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) {
            fputc('?', out);
            p++;
        } else {
            fputc(*p < 0x20 || *p == 0x7f ? '?' : *p, out);
        }
    }
}

/* put_clean into a new string (caller frees; NULL when out of memory). */
static char *clean_copy(const char *s)
{
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    if (m == NULL)
        return NULL;
    put_clean(s, m);
    fclose(m);
    return text;
}

/* A route name into a URL path segment: what a route name cannot hold is percent-encoded, so the
 * proxy answers "no such route" (with the list) rather than the call being malformed. */
static void path_segment(const char *s, char *out, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p && o + 4 < len; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr("_.-", *p) != NULL) {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    out[o] = '\0';
}

/* o[key] when it is a string (control characters and all: put_clean prints it), else "?". */
static const char *jtext(const json_t *o, const char *key)
{
    const char *v = json_string_value(json_object_get(o, key));
    return v != NULL ? v : "?";
}

/* A value of a difference: its text, "(absent)" for null (the path is missing on that side). */
static const char *diff_value(const json_t *v)
{
    if (json_is_null(v))
        return "(absent)";
    return json_string_value(v) != NULL ? json_string_value(v) : "?";
}

static void print_diff_side(const char *sign, const char *label, const json_t *v, const char *on,
                            const char *off, FILE *out)
{
    fprintf(out, "%s    %s %-9s ", on, sign, label);
    put_clean(diff_value(v), out);
    fprintf(out, "%s\n", off);
}

/* One mismatch: a line with when, what and the statuses, then each differing path with both
 * values, as a diff reads (legacy the old side, the function the new one). */
static void print_mismatch(const json_t *m, int colour, FILE *out)
{
    const char *ts = json_string_value(json_object_get(m, "ts"));
    const json_t *st = json_object_get(m, "status");
    const json_t *list = json_object_get(m, "differences");
    const json_t *d;
    size_t i;
    char when[20], ls[32], fs[32];
    if (ts != NULL && strlen(ts) >= 19 && ts[10] == 'T') {
        memcpy(when, ts, 19); /* "2026-11-24T08:30:00.123Z" as "2026-11-24 08:30:00" (UTC) */
        when[10] = ' ';
        when[19] = '\0';
        ts = when;
    }
    fputc('\n', out);
    put_clean(ts != NULL ? ts : "?", out);
    fputs("  ", out);
    put_clean(jtext(m, "method"), out);
    fputc(' ', out);
    put_clean(jtext(m, "path"), out);
    fputs("  req ", out);
    put_clean(jtext(m, "request_id"), out);
    fmt_int(json_object_get(st, "legacy"), ls, sizeof(ls));
    fmt_int(json_object_get(st, "function"), fs, sizeof(fs));
    fprintf(out, "  status %s/%s\n", ls, fs);
    json_array_foreach(list, i, d)
    {
        const char *path = json_string_value(json_object_get(d, "path"));
        fputs("  ", out);
        put_clean(path == NULL ? "?" : path[0] == '\0' ? "(the whole body)" : path, out);
        fputc('\n', out);
        print_diff_side("-", "legacy:", json_object_get(d, "legacy"), colour ? "\033[31m" : "",
                        colour ? "\033[0m" : "", out);
        print_diff_side("+", "function:", json_object_get(d, "function"), colour ? "\033[32m" : "",
                        colour ? "\033[0m" : "", out);
    }
    long long more = jcount(json_object_get(m, "more"));
    if (more > 0)
        fprintf(out, "  ... and %lld more differing path%s, not kept\n", more,
                more == 1 ? "" : "s");
    if (json_array_size(list) == 0 && more == 0)
        fputs("  (no differing path recorded)\n", out);
}

static void print_diffs(const json_t *js, const char *asked, int colour, FILE *out)
{
    const json_t *list = json_object_get(js, "diffs");
    const json_t *noise = json_object_get(js, "noise_paths");
    const json_t *top = json_object_get(js, "top_paths");
    const json_t *v;
    size_t i, n = json_array_size(list);
    long long total = jcount(json_object_get(js, "total")),
              kept = jcount(json_object_get(js, "kept"));
    const char *route = json_string_value(json_object_get(js, "route"));
    put_clean(route != NULL ? route : asked, out);
    if (total == 0 && n == 0)
        fprintf(out, ": no shadow mismatches since the proxy started\n");
    else
        fprintf(out,
                ": %lld shadow mismatch%s since the proxy started; the latest %zu of the %lld "
                "kept, newest first (times in UTC)\n",
                total, total == 1 ? "" : "es", n, kept);
    if (json_array_size(noise) > 0) {
        fputs("learned noise (differences only there are not mismatches): ", out);
        json_array_foreach(noise, i, v)
        {
            fputs(i ? ", " : "", out);
            put_clean(json_string_value(v) != NULL ? json_string_value(v) : "?", out);
        }
        fputc('\n', out);
    }
    if (json_array_size(top) > 0) {
        static const char *const head[] = {"DIFFERING PATH", "MISMATCHES"};
        static const char right[] = {0, 1};
        table t;
        char count[32];
        table_init(&t, 2, head, right);
        json_array_foreach(top, i, v)
        {
            const char *path = json_string_value(json_object_get(v, "path"));
            char *c = clean_copy(path == NULL ? "?" : path[0] == '\0' ? "(the whole body)" : path);
            table_add(&t, "%s", c != NULL ? c : "?");
            free(c);
            fmt_int(json_object_get(v, "count"), count, sizeof(count));
            table_add(&t, "%s", count);
        }
        fputc('\n', out);
        table_print(&t, out, NULL, 0);
        table_dispose(&t);
    }
    json_array_foreach(list, i, v)
    {
        print_mismatch(v, colour, out);
    }
}

static int cmd_diffs(const sf_cli_opts *pre, int argc, char **argv)
{
    static const char cmd[] = "diffs";
    const char *route = NULL, *limit_text = NULL;
    int json = 0, rc;
    arg_spec a = {.cmd = cmd,
                  .usage = usage_diffs,
                  .opts = {{"--limit", &limit_text, NULL}, {"--json", NULL, &json}},
                  .pos = &route,
                  .maxpos = 1};
    if ((rc = parse_args(&a, pre, argc, argv)) != ARGS_GO)
        return rc;
    if (route == NULL)
        return usage_error(cmd, usage_diffs, "%s", "which route?");
    size_t limit = 10;
    if (limit_text != NULL && parse_count(limit_text, &limit) < 0)
        return usage_error(cmd, usage_diffs, "--limit takes a positive number, not '%s'",
                           limit_text);
    cli c;
    if ((rc = cli_setup(&c, cmd, &a.o, 1)) != 0)
        return rc;
    char seg[3 * 256 + 1], path[sizeof(seg) + 64], err[4096];
    reply r;
    path_segment(route, seg, sizeof(seg));
    snprintf(path, sizeof(path), "/routes/%s/diffs?limit=%zu", seg, limit);
    rc = admin_call(&c, "GET", path, &r, err, sizeof(err));
    if (rc == CALL_DOWN) {
        fprintf(stderr, "strangler diffs: no strangler is answering on %s (%s)\n", c.addr, err);
        cli_dispose(&c);
        return 1;
    }
    if (rc != CALL_OK) {
        fprintf(stderr, "strangler diffs: GET /routes/%s/diffs on %s failed: %s\n", seg, c.addr,
                err);
        cli_dispose(&c);
        return 1;
    }
    json_error_t jerr;
    json_t *js = json_loadb(r.body, r.len, 0, &jerr);
    const char *e = json_string_value(json_object_get(js, "error"));
    rc = 1;
    if (r.status == 401) {
        explain_401(&c, err, sizeof(err));
        fprintf(stderr, "strangler diffs: %s\n", err);
    } else if (r.status == 404 && e != NULL) {
        fputs("strangler diffs: ", stderr);
        put_clean(e, stderr);
        fputc('\n', stderr);
    } else if (r.status != 200) {
        fprintf(stderr, "strangler diffs: GET /routes/%s/diffs on %s answered %d: ", seg, c.addr,
                r.status);
        put_clean(e != NULL ? e : "(no error message)", stderr);
        fputc('\n', stderr);
    } else if (!json_is_object(js)) {
        fprintf(stderr, "strangler diffs: the answer of %s is not a JSON object: %s\n", c.addr,
                js == NULL ? jerr.text : "another JSON value");
    } else if (json) {
        rc = fwrite(r.body, 1, r.len, stdout) == r.len ? 0 : 1;
        if (r.len > 0 && r.body[r.len - 1] != '\n')
            fputc('\n', stdout);
    } else {
        const char *nc = getenv("NO_COLOR");
        print_diffs(js, route, isatty(STDOUT_FILENO) && (nc == NULL || nc[0] == '\0'), stdout);
        rc = 0;
    }
    json_decref(js);
    free(r.body);
    cli_dispose(&c);
    return rc;
}

/* ---- the table ---- */

static const sf_cli_command commands[] = {
    {"routes", usage_routes, cmd_routes},    {"reload", usage_reload, cmd_reload},
    {"cutover", usage_cutover, cmd_cutover}, {"rollback", usage_rollback, cmd_rollback},
    {"history", usage_history, cmd_history}, {"stats", usage_stats, cmd_stats},
    {"diffs", usage_diffs, cmd_diffs},
};

const sf_cli_command *sf_cli_find(const char *name)
{
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}
