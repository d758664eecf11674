/* strangler: the command line. Subcommands in the style of git and caddy; exit 0 on success,
 * 1 on a failure explained on stderr, 2 on a usage error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    "\n"
    "Options:\n"
    "  -c FILE    the server settings (default: $STRANGLER_CONF, else conf/strangler.yaml)\n"
    "  -h, --help this help; 'strangler COMMAND --help' for a command\n"
    "  --version  print the version\n";

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

static const char *conf_path(const char *given)
{
    if (given != NULL)
        return given;
    const char *env = getenv("STRANGLER_CONF");
    return env != NULL && env[0] != '\0' ? env : "conf/strangler.yaml";
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

static int is_help(const char *a)
{
    return strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0;
}

int main(int argc, char **argv)
{
    const char *conf = NULL, *cmd = NULL;
    const char *args[8];
    int nargs = 0, help = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "strangler: %s needs a file\n%s", a, usage_main);
                return 2;
            }
            conf = argv[++i];
        } else if (strncmp(a, "--config=", 9) == 0) {
            conf = a + 9;
        } else if (is_help(a)) {
            help = 1;
        } else if (strcmp(a, "--version") == 0) {
            printf("strangler %s\n", SF_VERSION);
            return 0;
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "strangler: unknown option '%s'\n%s", a, usage_main);
            return 2;
        } else if (cmd == NULL) {
            cmd = a;
        } else if (nargs < (int)(sizeof(args) / sizeof(args[0]))) {
            args[nargs++] = a;
        } else {
            fprintf(stderr, "strangler: too many arguments\n");
            return 2;
        }
    }
    if (cmd == NULL || strcmp(cmd, "help") == 0) {
        fputs(usage_main, help || cmd != NULL ? stdout : stderr);
        return help || cmd != NULL ? 0 : 2;
    }
    if (strcmp(cmd, "run") == 0) {
        if (help) {
            fputs(usage_run, stdout);
            return 0;
        }
        if (nargs > 0) {
            fprintf(stderr, "strangler run: unexpected argument '%s'\n%s", args[0], usage_run);
            return 2;
        }
        return cmd_run(conf_path(conf));
    }
    if (strcmp(cmd, "check") == 0) {
        if (help) {
            fputs(usage_check, stdout);
            return 0;
        }
        if (nargs > 1) {
            fprintf(stderr, "strangler check: too many arguments\n%s", usage_check);
            return 2;
        }
        return cmd_check(conf_path(conf), nargs ? args[0] : NULL);
    }
    fprintf(stderr, "strangler: unknown command '%s'\n%s", cmd, usage_main);
    return 2;
}
