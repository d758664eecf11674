/* The routes.yaml watcher on a real folder: each way an editor, a deploy script or Kubernetes
 * replaces the file gives one callback per burst, and changes to anything else give none. */
#include <event2/event.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tap.h"
#include "watch.h"

#define DEBOUNCE_MS 50
#define SETTLE_MS   250 /* the longest a step waits for its callbacks: 5 debounces */

static char root[PATH_MAX];
static struct event_base *base;
static int calls;

/* A case's loop ends at its deadline, or 2 debounces after a callback: long enough for a wrong
 * second callback to show. */
static struct event *deadline;

static void shorten_deadline(void)
{
    struct timeval tv = {0, 2 * DEBOUNCE_MS * 1000};
    evtimer_add(deadline, &tv);
}

static void on_change(void *arg)
{
    (void)arg;
    calls++;
    shorten_deadline();
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    event_base_loopbreak(base);
}

/* root/case/rel in a rotating static buffer. */
static const char *at(const char *c, const char *rel)
{
    static char bufs[8][PATH_MAX + 128];
    static unsigned next;
    char *p = bufs[next++ % 8];
    if (rel != NULL)
        snprintf(p, sizeof(bufs[0]), "%s/%s/%s", root, c, rel);
    else
        snprintf(p, sizeof(bufs[0]), "%s/%s", root, c);
    return p;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0)
        diag("cannot write %s", path);
}

static void must(int rc, const char *what)
{
    if (rc != 0)
        diag("%s failed", what);
}

/* Runs the loop for at most ms and returns the callbacks seen meanwhile. */
static int settle(unsigned ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (suseconds_t)(ms % 1000) * 1000};
    calls = 0;
    evtimer_add(deadline, &tv);
    event_base_dispatch(base);
    evtimer_del(deadline);
    return calls;
}

static sf_watch *watch(const char *path)
{
    char err[256] = "";
    sf_watch *w = sf_watch_create(base, path, DEBOUNCE_MS, on_change, NULL, err, sizeof(err));
    if (w == NULL)
        diag("sf_watch_create(%s): %s", path, err);
    return w;
}

/* A folder with routes.yaml in it, watched. */
static sf_watch *plain_case(const char *c)
{
    must(mkdir(at(c, NULL), 0700), "mkdir");
    write_file(at(c, "routes.yaml"), "v1\n");
    return watch(at(c, "routes.yaml"));
}

static void test_in_place_write(void)
{
    sf_watch *w = plain_case("inplace");
    ok(w != NULL, "in place: watch created");
    is(settle(SETTLE_MS), 0, "in place: nothing before a change");
    write_file(at("inplace", "routes.yaml"), "v2\n");
    is(settle(SETTLE_MS), 1, "in place: a write gives one callback");
    write_file(at("inplace", "routes.yaml"), "v3\n");
    is(settle(SETTLE_MS), 1, "in place: a later write gives another");
    must(chmod(at("inplace", "routes.yaml"), 0640), "chmod");
    is(settle(SETTLE_MS), 1, "in place: a mode change (IN_ATTRIB) gives one");
    sf_watch_destroy(w);
}

static void test_rename_over(void)
{
    sf_watch *w = plain_case("rename");
    write_file(at("rename", ".routes.yaml.swp"), "v2\n");
    must(rename(at("rename", ".routes.yaml.swp"), at("rename", "routes.yaml")), "rename");
    is(settle(SETTLE_MS), 1, "rename-over: one callback");
    /* the watch is on the folder, so it survives the old inode going away */
    write_file(at("rename", "routes.yaml"), "v3\n");
    is(settle(SETTLE_MS), 1, "rename-over: the new file is watched too");
    sf_watch_destroy(w);
}

static int burst_left;
static void on_burst(evutil_socket_t fd, short what, void *arg)
{
    struct event *ev = arg;
    char text[32];
    (void)fd;
    (void)what;
    snprintf(text, sizeof(text), "burst %d\n", burst_left);
    write_file(at("burst", "routes.yaml"), text);
    if (--burst_left > 0) {
        struct timeval tv = {0, 10000};
        evtimer_add(ev, &tv);
    }
}

static void test_burst(void)
{
    sf_watch *w = plain_case("burst");
    struct event *ev = event_new(base, -1, 0, NULL, NULL);
    /* five writes 10 ms apart: each within the debounce of the one before, 40 ms in all */
    event_assign(ev, base, -1, 0, on_burst, ev);
    burst_left = 5;
    struct timeval now = {0, 0};
    evtimer_add(ev, &now);
    is(settle(SETTLE_MS + 100), 1, "burst of 5 writes 10 ms apart: one callback");
    is(burst_left, 0, "burst: all 5 writes happened");
    event_free(ev);
    sf_watch_destroy(w);
}

static void test_unrelated(void)
{
    sf_watch *w = plain_case("unrelated");
    write_file(at("unrelated", "other.yaml"), "x\n");
    write_file(at("unrelated", ".other.tmp"), "x\n");
    must(rename(at("unrelated", ".other.tmp"), at("unrelated", "other.yaml")), "rename");
    write_file(at("unrelated", "routes.yaml.bak"), "x\n");
    must(unlink(at("unrelated", "routes.yaml.bak")), "unlink");
    must(mkdir(at("unrelated", "sub"), 0700), "mkdir");
    write_file(at("unrelated", "sub/routes.yaml"), "x\n");
    must(symlink("other.yaml", at("unrelated", "link.yaml")), "symlink");
    is(settle(SETTLE_MS), 0, "unrelated files in the folder: no callback");
    sf_watch_destroy(w);
}

static void test_symlink_swap(void)
{
    const char *c = "symlink";
    must(mkdir(at(c, NULL), 0700), "mkdir");
    write_file(at(c, "a.yaml"), "a\n");
    write_file(at(c, "b.yaml"), "b\n");
    must(symlink("a.yaml", at(c, "routes.yaml")), "symlink");
    sf_watch *w = watch(at(c, "routes.yaml"));
    ok(w != NULL, "symlink swap: watch created");
    write_file(at(c, "a.yaml"), "a2\n");
    is(settle(SETTLE_MS), 1, "symlink: an in-place write to the target gives one callback");
    must(symlink("b.yaml", at(c, ".routes.yaml.new")), "symlink");
    must(rename(at(c, ".routes.yaml.new"), at(c, "routes.yaml")), "rename");
    is(settle(SETTLE_MS), 1, "symlink swap by rename of a new link: one callback");
    write_file(at(c, "b.yaml"), "b2\n");
    is(settle(SETTLE_MS), 1, "symlink swap: the new target is watched");
    write_file(at(c, "a.yaml"), "a3\n");
    is(settle(SETTLE_MS), 0, "symlink swap: the old target no longer is");
    sf_watch_destroy(w);
}

static void test_target_elsewhere(void)
{
    const char *c = "elsewhere";
    must(mkdir(at(c, NULL), 0700), "mkdir");
    must(mkdir(at(c, "conf"), 0700), "mkdir");
    must(mkdir(at(c, "real"), 0700), "mkdir");
    must(mkdir(at(c, "real2"), 0700), "mkdir");
    write_file(at(c, "real/routes.yaml"), "1\n");
    write_file(at(c, "real2/routes.yaml"), "2\n");
    must(symlink("../real/routes.yaml", at(c, "conf/routes.yaml")), "symlink");
    sf_watch *w = watch(at(c, "conf/routes.yaml"));
    ok(w != NULL, "target in another folder: watch created");
    write_file(at(c, "real/routes.yaml"), "1b\n");
    is(settle(SETTLE_MS), 1, "target in another folder: an in-place write gives one callback");
    write_file(at(c, "real/other.yaml"), "x\n");
    is(settle(SETTLE_MS), 0, "target in another folder: its other files give none");
    must(symlink("../real2/routes.yaml", at(c, "conf/.new")), "symlink");
    must(rename(at(c, "conf/.new"), at(c, "conf/routes.yaml")), "rename");
    is(settle(SETTLE_MS), 1, "target moved to a third folder: one callback");
    write_file(at(c, "real2/routes.yaml"), "2b\n");
    is(settle(SETTLE_MS), 1, "the third folder is watched now");
    write_file(at(c, "real/routes.yaml"), "1c\n");
    is(settle(SETTLE_MS), 0, "the old target folder no longer is");
    sf_watch_destroy(w);
}

/* What the kubelet does: the data lives in a timestamped folder, "..data" links to it and
 * routes.yaml links through "..data"; an update writes a new folder, renames a new "..data"
 * link over the old one, then removes the old folder. */
static void configmap_update(const char *c, const char *from, const char *to, const char *text)
{
    char rel[64];
    must(mkdir(at(c, to), 0700), "mkdir");
    snprintf(rel, sizeof(rel), "%s/routes.yaml", to);
    write_file(at(c, rel), text);
    must(symlink(to, at(c, "..data_tmp")), "symlink");
    must(rename(at(c, "..data_tmp"), at(c, "..data")), "rename");
    snprintf(rel, sizeof(rel), "%s/routes.yaml", from);
    must(unlink(at(c, rel)), "unlink");
    must(rmdir(at(c, from)), "rmdir");
}

static void test_configmap(void)
{
    const char *c = "configmap";
    must(mkdir(at(c, NULL), 0700), "mkdir");
    must(mkdir(at(c, "..2026_01"), 0700), "mkdir");
    write_file(at(c, "..2026_01/routes.yaml"), "1\n");
    must(symlink("..2026_01", at(c, "..data")), "symlink");
    must(symlink("..data/routes.yaml", at(c, "routes.yaml")), "symlink");
    sf_watch *w = watch(at(c, "routes.yaml"));
    ok(w != NULL, "configmap: watch created");
    configmap_update(c, "..2026_01", "..2026_02", "2\n");
    is(settle(SETTLE_MS), 1, "configmap: the ..data swap gives one callback");
    configmap_update(c, "..2026_02", "..2026_03", "3\n");
    is(settle(SETTLE_MS), 1, "configmap: a second swap gives one more");
    must(mkdir(at(c, "..2026_04"), 0700), "mkdir");
    write_file(at(c, "..2026_04/routes.yaml"), "4\n");
    is(settle(SETTLE_MS), 0, "configmap: a new data folder not yet linked gives none");
    sf_watch_destroy(w);
}

static void test_delete_recreate(void)
{
    sf_watch *w = plain_case("recreate");
    must(unlink(at("recreate", "routes.yaml")), "unlink");
    is(settle(SETTLE_MS), 1, "delete: one callback");
    write_file(at("recreate", "routes.yaml"), "again\n");
    is(settle(SETTLE_MS), 1, "recreate: one callback");
    must(unlink(at("recreate", "routes.yaml")), "unlink");
    write_file(at("recreate", "routes.yaml"), "again 2\n");
    ok(settle(SETTLE_MS) >= 1, "delete then recreate at once: fires");
    sf_watch_destroy(w);
}

static void test_missing_file(void)
{
    must(mkdir(at("missing", NULL), 0700), "mkdir");
    sf_watch *w = watch(at("missing", "routes.yaml"));
    ok(w != NULL, "a missing file in an existing folder can be watched");
    write_file(at("missing", "routes.yaml"), "v1\n");
    is(settle(SETTLE_MS), 1, "the file appearing gives one callback");
    sf_watch_destroy(w);
}

static void test_relative_path(void)
{
    char cwd[PATH_MAX];
    must(mkdir(at("relative", NULL), 0700), "mkdir");
    write_file(at("relative", "routes.yaml"), "v1\n");
    if (getcwd(cwd, sizeof(cwd)) == NULL || chdir(at("relative", NULL)) != 0) {
        ok(0, "relative path: cannot change folder");
        return;
    }
    sf_watch *w = watch("routes.yaml");
    must(chdir(cwd), "chdir back");
    ok(w != NULL, "relative path: watch created");
    write_file(at("relative", "routes.yaml"), "v2\n");
    is(settle(SETTLE_MS), 1, "relative path: a write gives one callback after a chdir");
    sf_watch_destroy(w);
}

static void test_folder_removed(void)
{
    sf_watch *w = plain_case("gone");
    must(unlink(at("gone", "routes.yaml")), "unlink");
    must(rmdir(at("gone", NULL)), "rmdir");
    is(settle(SETTLE_MS), 1, "folder removed: one callback");
    must(mkdir(at("gone", NULL), 0700), "mkdir");
    write_file(at("gone", "routes.yaml"), "v1\n");
    is(settle(SETTLE_MS), 0, "folder removed: watching has stopped");
    sf_watch_destroy(w);
}

static sf_watch *self_destroying;
static void on_change_destroy(void *arg)
{
    (void)arg;
    calls++;
    shorten_deadline();
    sf_watch_destroy(self_destroying);
    self_destroying = NULL;
}

static void test_destroy_in_callback(void)
{
    char err[256] = "";
    must(mkdir(at("destroy", NULL), 0700), "mkdir");
    write_file(at("destroy", "routes.yaml"), "v1\n");
    self_destroying = sf_watch_create(base, at("destroy", "routes.yaml"), DEBOUNCE_MS,
                                      on_change_destroy, NULL, err, sizeof(err));
    ok(self_destroying != NULL, "destroy in callback: watch created");
    write_file(at("destroy", "routes.yaml"), "v2\n");
    is(settle(SETTLE_MS), 1, "destroy in callback: called once");
    ok(self_destroying == NULL, "destroy in callback: the callback destroyed it");
    /* destroying with a debounce pending must cancel it */
    sf_watch *w = watch(at("destroy", "routes.yaml"));
    write_file(at("destroy", "routes.yaml"), "v3\n");
    settle(10); /* reads the event, arms the debounce */
    sf_watch_destroy(w);
    is(settle(SETTLE_MS), 0, "destroy with a debounce pending: no callback after");
}

static void test_errors(void)
{
    char err[256] = "";
    sf_watch *w = sf_watch_create(base, at("nope", "routes.yaml"), DEBOUNCE_MS, on_change, NULL,
                                  err, sizeof(err));
    ok(w == NULL, "missing folder: NULL");
    ok(strstr(err, "cannot watch folder") != NULL && strstr(err, "No such file") != NULL,
       "missing folder: the reason says so (%s)", err);
    err[0] = '\0';
    w = sf_watch_create(base, "/", DEBOUNCE_MS, on_change, NULL, err, sizeof(err));
    ok(w == NULL && strstr(err, "does not name a file") != NULL, "\"/\" is refused (%s)", err);
    write_file(at("a-file", NULL), "x\n");
    err[0] = '\0';
    w = sf_watch_create(base, at("a-file", "routes.yaml"), DEBOUNCE_MS, on_change, NULL, err,
                        sizeof(err));
    ok(w == NULL && err[0] != '\0', "a file as the folder is refused (%s)", err);
    sf_watch_destroy(NULL);
    ok(1, "sf_watch_destroy(NULL) is a no-op");
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(root, sizeof(root), "%s/test_watch.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(root) == NULL || (base = event_base_new()) == NULL ||
        (deadline = evtimer_new(base, on_deadline, NULL)) == NULL) {
        printf("Bail out! cannot set up a test folder or an event base\n");
        return 1;
    }
    test_in_place_write();
    test_rename_over();
    test_burst();
    test_unrelated();
    test_symlink_swap();
    test_target_elsewhere();
    test_configmap();
    test_delete_recreate();
    test_missing_file();
    test_relative_path();
    test_folder_removed();
    test_destroy_in_callback();
    test_errors();
    event_free(deadline);
    event_base_free(base);
    nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return done_testing();
}
