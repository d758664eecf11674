/* The operator commands of `strangler` (DESIGN §2) that read or steer the route table or show
 * its traffic: routes, reload, cutover, rollback, history, stats. They talk to a running proxy's
 * admin API with a small blocking HTTP client, and edit routes.yaml and the audit log directly (the
 * file is the source of truth, so cutover and rollback work without a proxy). */
#ifndef SF_CLI_H
#define SF_CLI_H

/* The options every subcommand takes, before or after its name. */
typedef struct {
    const char *conf;  /* -c FILE; NULL: $STRANGLER_CONF, else conf/strangler.yaml */
    const char *admin; /* --admin URL (http://HOST:PORT); NULL: admin.address of the settings */
    int help;          /* -h or --help was given */
} sf_cli_opts;

/* One subcommand. main gets the options given before the command's name in pre (borrowed) and
 * its own arguments as argv[0] = the command's name, argv[1..argc) the rest; it returns the
 * exit code: 0 success, 1 a failure explained on stderr, 2 a usage error. */
typedef struct {
    const char *name;
    const char *usage; /* the --help text */
    int (*main)(const sf_cli_opts *pre, int argc, char **argv);
} sf_cli_command;

/* The operator command called name, or NULL. The table is static. */
const sf_cli_command *sf_cli_find(const char *name);

/* If argv[*i] is a common option (-c FILE, --config FILE, --config=FILE, --admin URL,
 * --admin=URL, -h, --help), records it in o (borrowing argv), moves *i past its value and
 * returns 1. Returns 0 for any other argument, and -1 when the option's value is missing (the
 * message, prefixed with "strangler CMD: ", is printed on stderr). */
int sf_cli_common_opt(sf_cli_opts *o, int argc, char **argv, int *i, const char *cmd);

/* The settings file to use: given, else $STRANGLER_CONF when set, else conf/strangler.yaml.
 * Borrowed (from the argument or the environment). */
const char *sf_cli_conf_path(const char *given);

/* Parses an operator's percentage: 0 to 100 with at most two decimals, a trailing '%'
 * allowed ("25", "12.5", "0.25", "100%"). Returns 0 with *bp in basis points, or -1. */
int sf_cli_parse_percent(const char *s, unsigned *bp);

#endif
