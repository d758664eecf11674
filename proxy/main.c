/* strangler: the command line. Subcommands in the style of git and caddy; exit 0 on success,
 * 1 on a failure explained on stderr, 2 on a usage error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ssl.h>

#include "cli.h"
#include "diag.h"
#include "log.h"
#include "server.h"
#include "settings.h"
#include "table.h"

#define SF_VERSION "0.1.0"

static const char usage_main[] =
    "usage: strangler [-c FILE] COMMAND [ARGS]\n"
    "\n"
    "A reverse proxy for strangler-fig migrations: it stands in front of a legacy monolith\n"
    "and serves chosen routes from new function endpoints.\n"
    "\n"
    "Commands:\n"
    "  run                  run the proxy in the foreground (logs to stderr; SIGTERM or\n"
    "                       SIGINT drains in-flight requests, then exits 0)\n"
    "  check [ROUTES_FILE]  validate strangler.yaml and the routes file without starting;\n"
    "                       errors are printed as FILE:LINE:COL: message\n"
    "  routes [--json]      the live route table of the running proxy (the file on disk when\n"
    "                       none runs): match, function, cutover, shadow, guard, state\n"
    "  reload               ask the running proxy to reload the routes file; prints what\n"
    "                       changed, or the error\n"
    "  cutover ROUTE PERCENT [--reason TEXT]\n"
    "                       set a route's cutover: edits the routes file in place, records\n"
    "                       it in the audit log, applies it\n"
    "  rollback ROUTE|--all [--reason TEXT]\n"
    "                       set a route's (or every route's) cutover to 0, persisted the same\n"
    "                       way; prints the command that restores it\n"
    "  history [ROUTE] [--json] [--limit N]\n"
    "                       the audit log of cutover changes and rollbacks\n"
    "  stats [ROUTE] [--json] [--watch [--count N]]\n"
    "                       per-route traffic of the running proxy: requests/s, error ratios\n"
    "                       and p50/p99 per backend, and the share the monolith still serves\n"
    "  diffs ROUTE [--json] [--limit N]\n"
    "                       the latest shadow mismatches of a route: each with its request id,\n"
    "                       method and path, and every differing path with both values\n"
    "\n"
    "Options (before or after the command):\n"
    "  -c FILE      the server settings (default: $STRANGLER_CONF, else conf/strangler.yaml)\n"
    "  --admin URL  the running proxy's admin API, http://HOST:PORT (default: admin.address\n"
    "               of FILE), for routes, reload, cutover, rollback, stats and diffs\n"
    "  -h, --help   this help; 'strangler COMMAND --help' for a command\n"
    "  --version    print the version\n";

static const char usage_run[] =
    "usage: strangler run [-c FILE]\n"
    "\n"
    "Loads FILE (strangler.yaml) and the routes file it names, binds the listeners and the\n"
    "admin address, and proxies in the foreground. Invalid configuration: every error is\n"
    "printed as FILE:LINE:COL: message and strangler exits 1 before binding any port.\n"
    "Signals: SIGTERM/SIGINT drain (stop accepting, finish in-flight requests up to\n"
    "timeouts.drain, exit 0; a second signal closes at once); SIGUSR1 reopens the access log.\n";

static const char usage_check[] =
    "usage: strangler check [-c FILE] [ROUTES_FILE]\n"
    "\n"
    "Validates FILE (strangler.yaml) and ROUTES_FILE (default: the routes_file FILE names)\n"
    "without starting anything. Prints every error and warning as FILE:LINE:COL: message.\n"
    "Warnings (an unreachable route, verify: false) do not fail it. Exit 0 when valid, 1 when\n"
    "not.\n";

/* Loads the TLS listeners' certificates and keys as run does, so that check reports what run
 * would refuse and run refuses it before binding anything; prints each problem as
 * FILE:LINE:COL: message. Returns how many listeners failed. */
static int check_listener_tls(const sf_settings *s)
{
    int bad = 0;
    for (size_t i = 0; i < s->nlisten; i++) {
        char err[1024];
        if (s->listen[i].tls_cert == NULL)
            continue;
        SSL_CTX *ctx = sf_server_listener_tls(s, &s->listen[i], err, sizeof(err));
        if (ctx == NULL) {
            fprintf(stderr, "%s\n", err);
            bad++;
        }
        SSL_CTX_free(ctx);
    }
    return bad;
}

/* Loads settings and table; prints diagnostics. Returns 0 when both are valid. */
static int load_all(const char *conf, const char *routes_override, sf_settings *s,
                    sf_route_table **t, int *warnings)
{
    sf_diags d;
    sf_diags_init(&d);
    *t = NULL;
    int rc = sf_settings_load(conf, s, &d);
    if (rc == 0 || s->routes_file != NULL) {
        const char *rf = routes_override ? routes_override : s->routes_file;
        *t = sf_table_load(rf, &d);
    }
    sf_diags_print(&d, stderr);
    int ok = d.errors == 0 && *t != NULL;
    if (rc == 0 && check_listener_tls(s) > 0)
        ok = 0;
    if (warnings != NULL)
        *warnings = d.warnings;
    sf_diags_dispose(&d);
    return ok ? 0 : -1;
}

static int cmd_run(const char *conf)
{
    sf_settings s;
    sf_route_table *t;
    char err[512];
    if (load_all(conf, NULL, &s, &t, NULL) < 0) {
        fprintf(stderr, "strangler: not started: the configuration has errors\n");
        sf_table_unref(t);
        sf_settings_dispose(&s);
        return 1;
    }
    sf_log_level = s.log_level;
    sf_server *srv = sf_server_create(&s, t, err, sizeof(err));
    if (srv == NULL) {
        fprintf(stderr, "strangler: %s\n", err);
        sf_settings_dispose(&s);
        return 1;
    }
    int rc = sf_server_run(srv);
    sf_server_destroy(srv);
    sf_settings_dispose(&s);
    return rc;
}

static int cmd_check(const char *conf, const char *routes)
{
    sf_settings s;
    sf_route_table *t;
    int warnings = 0;
    int rc = load_all(conf, routes, &s, &t, &warnings);
    if (rc == 0) {
        size_t nf, nr;
        sf_table_functions(t, &nf);
        sf_table_routes(t, &nr);
        printf("%s: ok\n%s: ok: %zu function(s), %zu route(s), version %s", s.path,
               routes ? routes : s.routes_file, nf, nr, sf_table_version(t));
        if (warnings > 0)
            printf(", %d warning(s)", warnings);
        printf("\n");
    }
    sf_table_unref(t);
    sf_settings_dispose(&s);
    return rc == 0 ? 0 : 1;
}

/* Parses run's and check's arguments: the common -c and --help, --version, and at most
 * maxpos plain arguments into pos. Returns -1 to go on, else the exit code. */
static int parse_args(sf_cli_opts *o, int argc, char **argv, const char *usage, int maxpos,
                      const char **pos, int *npos)
{
    const char *cmd = argv[0];
    *npos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = sf_cli_common_opt(o, argc, argv, &i, cmd);
        if (r < 0) {
            fputs(usage, stderr);
            return 2;
        }
        if (r > 0)
            continue;
        if (strcmp(a, "--version") == 0) {
            printf("strangler %s\n", SF_VERSION);
            return 0;
        }
        if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "strangler %s: unknown option '%s'\n%s", cmd, a, usage);
            return 2;
        }
        if (*npos >= maxpos) {
            if (maxpos == 0)
                fprintf(stderr, "strangler %s: unexpected argument '%s'\n%s", cmd, a, usage);
            else
                fprintf(stderr, "strangler %s: too many arguments\n%s", cmd, usage);
            return 2;
        }
        pos[(*npos)++] = a;
    }
    if (o->help) {
        fputs(usage, stdout);
        return 0;
    }
    if (o->admin != NULL) {
        fprintf(stderr,
                "strangler %s: --admin is for the commands that talk to a running proxy\n%s", cmd,
                usage);
        return 2;
    }
    return -1;
}

static int main_run(const sf_cli_opts *pre, int argc, char **argv)
{
    sf_cli_opts o = *pre;
    int npos, rc = parse_args(&o, argc, argv, usage_run, 0, NULL, &npos);
    return rc >= 0 ? rc : cmd_run(sf_cli_conf_path(o.conf));
}

static int main_check(const sf_cli_opts *pre, int argc, char **argv)
{
    sf_cli_opts o = *pre;
    const char *pos[1] = {NULL};
    int npos, rc = parse_args(&o, argc, argv, usage_check, 1, pos, &npos);
    return rc >= 0 ? rc : cmd_check(sf_cli_conf_path(o.conf), pos[0]);
}

static const sf_cli_command own[] = {
    {"run", usage_run, main_run},
    {"check", usage_check, main_check},
};

static const sf_cli_command *find_command(const char *name)
{
    for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++)
        if (strcmp(own[i].name, name) == 0)
            return &own[i];
    return sf_cli_find(name);
}

/* Options before the command are the common ones (and --version); the command parses the
 * rest, its own options included. */
int main(int argc, char **argv)
{
    sf_cli_opts pre = {NULL, NULL, 0};
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        int r = sf_cli_common_opt(&pre, argc, argv, &i, NULL);
        if (r < 0) {
            fputs(usage_main, stderr);
            return 2;
        }
        if (r > 0)
            continue;
        if (strcmp(a, "--version") == 0) {
            printf("strangler %s\n", SF_VERSION);
            return 0;
        }
        if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "strangler: unknown option '%s'\n%s", a, usage_main);
            return 2;
        }
        break;
    }
    if (i >= argc) {
        fputs(usage_main, pre.help ? stdout : stderr);
        return pre.help ? 0 : 2;
    }
    const char *name = argv[i];
    if (strcmp(name, "help") == 0) {
        const sf_cli_command *c = i + 1 < argc ? find_command(argv[i + 1]) : NULL;
        fputs(c != NULL ? c->usage : usage_main, stdout);
        return 0;
    }
    const sf_cli_command *c = find_command(name);
    if (c == NULL) {
        fprintf(stderr, "strangler: unknown command '%s'\n%s", name, usage_main);
        return 2;
    }
    return c->main(&pre, argc - i, argv + i);
}
