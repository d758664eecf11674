/* The audit log: the exact line an entry appends, reading back all / by route / the last N,
 * lenient reading of bad lines and a missing file, and the terminal table. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "audit.h"
#include "tap.h"

static char dir[64];
static char logpath[96];

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0;
    if (f == NULL)
        return NULL;
    FILE *m = open_memstream(&buf, &len);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        fwrite(chunk, 1, n, m);
    fclose(m);
    fclose(f);
    return buf;
}

/* 2026-11-24T08:30:00.123Z */
#define T0 1795509000123LL

static void test_time(void)
{
    char ts[32];
    sf_audit_format_time(T0, ts);
    is_str(ts, "2026-11-24T08:30:00.123Z", "time: UTC with milliseconds");
    sf_audit_format_time(T0 - 123 + 7, ts);
    is_str(ts, "2026-11-24T08:30:00.007Z", "time: milliseconds zero-padded");
    sf_audit_format_time(0, ts);
    ok(strlen(ts) == 24 && ts[10] == 'T' && ts[23] == 'Z', "time: 0 is now (%s)", ts);
}

static void test_append(void)
{
    char err[256] = "";
    sf_audit_entry e = {.ts_ms = T0,
                        .route = "orders",
                        .from_bp = 1000,
                        .to_bp = 2500,
                        .action = "cutover",
                        .reason = "canary is clean",
                        .actor = "alice",
                        .version = "0123456789abcdef"};
    is(sf_audit_append(logpath, &e, err, sizeof(err)), 0, "append: succeeds");
    struct stat st;
    ok(stat(logpath, &st) == 0 && (st.st_mode & 0777) == 0644, "append: the file is created 0644");

    sf_audit_entry r = {.ts_ms = T0 + 60000,
                        .route = "catalog",
                        .from_bp = 1250,
                        .to_bp = 1,
                        .action = "cutover",
                        .reason = NULL,
                        .actor = "admin-api",
                        .version = "fedcba9876543210"};
    is(sf_audit_append(logpath, &r, err, sizeof(err)), 0, "append: a second entry");
    sf_audit_entry q = {.ts_ms = T0 + 120000,
                        .route = "orders",
                        .from_bp = 2500,
                        .to_bp = 0,
                        .action = "rollback",
                        .reason = "p99 \"spiked\"\n\tsee \\runbook/ é",
                        .actor = NULL,
                        .version = NULL};
    is(sf_audit_append(logpath, &q, err, sizeof(err)), 0, "append: a rollback with a hard reason");

    char *text = slurp(logpath);
    is_str(text,
           "{\"ts\":\"2026-11-24T08:30:00.123Z\",\"route\":\"orders\",\"from\":10,\"to\":25,"
           "\"action\":\"cutover\",\"reason\":\"canary is clean\",\"actor\":\"alice\","
           "\"version\":\"0123456789abcdef\"}\n"
           "{\"ts\":\"2026-11-24T08:31:00.123Z\",\"route\":\"catalog\",\"from\":12.5,\"to\":0.01,"
           "\"action\":\"cutover\",\"reason\":null,\"actor\":\"admin-api\","
           "\"version\":\"fedcba9876543210\"}\n"
           "{\"ts\":\"2026-11-24T08:32:00.123Z\",\"route\":\"orders\",\"from\":25,\"to\":0,"
           "\"action\":\"rollback\",\"reason\":\"p99 \\\"spiked\\\"\\n\\tsee \\\\runbook/ é\","
           "\"actor\":\"unknown\",\"version\":null}\n",
           "append: one JSON object per line, fields in order, numbers in percent, escapes");
    free(text);

    sf_audit_entry bad = {.ts_ms = T0, .route = NULL, .action = "cutover"};
    ok(sf_audit_append(logpath, &bad, err, sizeof(err)) < 0 && strstr(err, "route") != NULL,
       "append: an entry without a route is refused");
    sf_audit_entry inval = {
        .ts_ms = T0, .route = "orders", .action = "cutover", .reason = "bad \xff byte"};
    char other[128];
    snprintf(other, sizeof(other), "%s/other.log", dir);
    is(sf_audit_append(other, &inval, err, sizeof(err)), 0, "append: invalid UTF-8 is kept");
    text = slurp(other);
    ok(text != NULL && strstr(text, "\"reason\":\"bad ? byte\"") != NULL,
       "append: invalid UTF-8 bytes are written as '?'");
    free(text);
    unlink(other);

    snprintf(other, sizeof(other), "%s/no/such/dir.log", dir);
    ok(sf_audit_append(other, &e, err, sizeof(err)) < 0 && strstr(err, other) != NULL,
       "append: an unwritable path is an error naming it");
}

static const char *route_at(json_t *a, size_t i)
{
    return json_string_value(json_object_get(json_array_get(a, i), "route"));
}

static void test_read(void)
{
    char err[256] = "x";
    size_t bad = 99;
    json_t *a = sf_audit_read(logpath, NULL, 0, &bad, err, sizeof(err));
    is(json_array_size(a), 3, "read: all entries");
    is(bad, 0, "read: nothing malformed");
    is_str(route_at(a, 0), "orders", "read: in file order (1)");
    is_str(route_at(a, 1), "catalog", "read: in file order (2)");
    json_t *e1 = json_array_get(a, 1);
    ok(json_real_value(json_object_get(e1, "from")) == 12.5 &&
           json_is_null(json_object_get(e1, "reason")),
       "read: fields come back typed");
    json_t *e2 = json_array_get(a, 2);
    is_str(json_string_value(json_object_get(e2, "reason")), "p99 \"spiked\"\n\tsee \\runbook/ é",
           "read: the escaped reason round-trips");
    json_decref(a);

    a = sf_audit_read(logpath, "orders", 0, NULL, err, sizeof(err));
    ok(json_array_size(a) == 2 && strcmp(route_at(a, 1), "orders") == 0 &&
           strcmp(json_string_value(json_object_get(json_array_get(a, 1), "action")), "rollback") ==
               0,
       "read: by route");
    json_decref(a);

    a = sf_audit_read(logpath, NULL, 2, NULL, err, sizeof(err));
    ok(json_array_size(a) == 2 && strcmp(route_at(a, 0), "catalog") == 0 &&
           strcmp(route_at(a, 1), "orders") == 0,
       "read: the last 2");
    json_decref(a);
    a = sf_audit_read(logpath, "orders", 1, NULL, err, sizeof(err));
    ok(json_array_size(a) == 1 &&
           strcmp(json_string_value(json_object_get(json_array_get(a, 0), "action")), "rollback") ==
               0,
       "read: the last 1 of a route");
    json_decref(a);
    a = sf_audit_read(logpath, NULL, 10, NULL, err, sizeof(err));
    is(json_array_size(a), 3, "read: a limit above the count gives all");
    json_decref(a);
    a = sf_audit_read(logpath, "nope", 0, NULL, err, sizeof(err));
    ok(a != NULL && json_array_size(a) == 0, "read: an unknown route gives an empty array");
    json_decref(a);

    char missing[128];
    snprintf(missing, sizeof(missing), "%s/missing.log", dir);
    a = sf_audit_read(missing, NULL, 0, NULL, err, sizeof(err));
    ok(json_is_array(a) && json_array_size(a) == 0, "read: a missing file is an empty log");
    json_decref(a);
    a = sf_audit_read(dir, NULL, 0, NULL, err, sizeof(err));
    ok(a == NULL && strstr(err, "cannot read the audit log") != NULL, "read: a folder is an error");
    json_decref(a);

    /* malformed lines: skipped and counted; blank lines ignored */
    FILE *f = fopen(logpath, "a");
    fputs("not json\n\n   \n[1,2]\n{\"route\": 5}\n{\"ts\":\"x\",\"route\":\"orders\",\"from\":1,"
          "\"to\":2,\"action\":\"guard\"}\n{\"route\":\"orders\",\"trunc",
          f);
    fclose(f);
    a = sf_audit_read(logpath, NULL, 0, &bad, err, sizeof(err));
    is(json_array_size(a), 4, "malformed: the good lines are read");
    is(bad, 4, "malformed: 4 bad lines counted");
    is_str(route_at(a, 3), "orders", "malformed: a good line after bad ones");
    json_decref(a);
    a = sf_audit_read(logpath, "orders", 0, &bad, err, sizeof(err));
    ok(json_array_size(a) == 3, "malformed: by route");
    is(bad, 4, "malformed: counted over the whole file, whatever the route");
    json_decref(a);
}

/* Writers in several processes at once: every line whole, none lost. */
static void test_concurrent_append(void)
{
    char path[128], err[256];
    enum { PROCS = 4, EACH = 50 };
    snprintf(path, sizeof(path), "%s/concurrent.log", dir);
    for (int p = 0; p < PROCS; p++) {
        pid_t pid = fork();
        if (pid == 0) {
            static const char pad[] = "a reason long enough that the lines are not tiny ......";
            char route[32], actor[32];
            snprintf(route, sizeof(route), "r%d", p);
            for (int i = 0; i < EACH; i++) {
                snprintf(actor, sizeof(actor), "w%d-%d", p, i);
                sf_audit_entry e = {.route = route,
                                    .from_bp = 0,
                                    .to_bp = (uint32_t)i,
                                    .action = "cutover",
                                    .reason = pad,
                                    .actor = actor};
                if (sf_audit_append(path, &e, err, sizeof(err)) < 0)
                    _exit(1);
            }
            _exit(0);
        }
    }
    int all_ok = 1, status;
    for (int p = 0; p < PROCS; p++)
        if (wait(&status) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            all_ok = 0;
    ok(all_ok, "concurrent: every writer succeeded");
    size_t bad = 99;
    json_t *a = sf_audit_read(path, NULL, 0, &bad, err, sizeof(err));
    is(json_array_size(a), PROCS * EACH, "concurrent: every entry is there");
    is(bad, 0, "concurrent: no line is torn");
    json_decref(a);
    a = sf_audit_read(path, "r2", 0, NULL, err, sizeof(err));
    int in_order = json_array_size(a) == EACH;
    for (size_t i = 0; in_order && i < EACH; i++)
        in_order = json_number_value(json_object_get(json_array_get(a, i), "to")) == i / 100.0;
    ok(in_order, "concurrent: one writer's entries stay in its order");
    json_decref(a);
    unlink(path);
}

static char *table_of(json_t *a)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    sf_audit_print_table(a, m);
    fclose(m);
    return buf;
}

static void test_table(void)
{
    char err[256];
    json_t *a = sf_audit_read(logpath, NULL, 0, NULL, err, sizeof(err));
    char *t = table_of(a);
    is_str(t,
           "TIME (UTC)           ROUTE    CUTOVER         ACTION    ACTOR      REASON\n"
           "2026-11-24 08:30:00  orders   10% -> 25%      cutover   alice      canary is clean\n"
           "2026-11-24 08:31:00  catalog  12.5% -> 0.01%  cutover   admin-api  -\n"
           "2026-11-24 08:32:00  orders   25% -> 0%       rollback  unknown    p99 \"spiked\"  "
           "see \\runbook/ é\n"
           "x                    orders   1% -> 2%        guard     -          -\n",
           "table: aligned columns, '-' for missing, controls as spaces");
    free(t);
    json_decref(a);

    a = json_array();
    t = table_of(a);
    is_str(t, "no cutover changes recorded\n", "table: an empty log says so");
    free(t);
    json_decref(a);

    /* non-ASCII widths count characters */
    a = json_pack("[{s:s,s:s,s:i,s:i,s:s,s:s,s:s}]", "ts", "2026-11-24T08:30:00.123Z", "route", "a",
                  "from", 0, "to", 100, "action", "cutover", "actor", "zoë", "reason", "ok");
    t = table_of(a);
    is_str(t,
           "TIME (UTC)           ROUTE  CUTOVER     ACTION   ACTOR  REASON\n"
           "2026-11-24 08:30:00  a      0% -> 100%  cutover  zoë    ok\n",
           "table: widths in characters");
    free(t);
    json_decref(a);
}

int main(void)
{
    snprintf(dir, sizeof(dir), "/tmp/sf-audit-XXXXXX");
    if (mkdtemp(dir) == NULL) {
        printf("Bail out! cannot create a test folder under /tmp\n");
        return 1;
    }
    snprintf(logpath, sizeof(logpath), "%s/audit.log", dir);
    umask(022);
    test_time();
    test_append();
    test_read();
    test_concurrent_append();
    test_table();
    unlink(logpath);
    rmdir(dir);
    return done_testing();
}
