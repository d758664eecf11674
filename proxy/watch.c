/* routes.yaml watcher: inotify on the file's folder (and on the folder its symlink resolves to),
 * filtered to the entries that can change what the path reads, debounced with one timer. */
#include "watch.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#define WATCH_MASK                                                                                 \
    (IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_ATTRIB | IN_MOVED_FROM | IN_ONLYDIR)

struct sf_watch {
    int fd; /* inotify; closing it drops every watch */
    struct event *ev;
    struct event *timer; /* the debounce: re-armed on each relevant event */
    struct timeval quiet;
    void (*cb)(void *arg);
    void *arg;
    char *path; /* absolute */
    char *dir;  /* path's folder */
    char *name; /* path's last component */
    int dir_wd; /* -1 once the folder is gone */
    /* the first component of path's relative symlink target when it has several ("..data" for
     * "..data/routes.yaml"): swapping that entry changes what path reads */
    char *link_first;
    /* where path finally resolves (symlinks only): target_wd may equal dir_wd when the target
     * lives in the same folder (inotify gives one wd per inode) */
    int target_wd;
    char *target_name;
};

static char *join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 2);
    if (s == NULL)
        return NULL;
    memcpy(s, a, la);
    s[la] = '/';
    memcpy(s + la + 1, b, lb + 1);
    return s;
}

/* Splits an absolute path into a malloc'd folder and name. Returns -1 when out of memory or when
 * there is no name ("/", "/a/"). */
static int split(const char *abs, char **dir, char **name)
{
    const char *slash = strrchr(abs, '/');
    *dir = *name = NULL;
    if (slash == NULL || slash[1] == '\0')
        return -1;
    *dir = slash == abs ? strdup("/") : strndup(abs, (size_t)(slash - abs));
    *name = strdup(slash + 1);
    if (*dir == NULL || *name == NULL) {
        free(*dir);
        free(*name);
        *dir = *name = NULL;
        return -1;
    }
    return 0;
}

static void drop_target(sf_watch *w)
{
    if (w->target_wd >= 0 && w->target_wd != w->dir_wd)
        inotify_rm_watch(w->fd, w->target_wd);
    w->target_wd = -1;
    free(w->target_name);
    w->target_name = NULL;
}

/* Works out again which entries matter: the link's first component and the folder and name the
 * path resolves to. Events of a dropped target folder that are still queued carry a wd no
 * longer known and are ignored (the kernel does not reuse wds at once). */
static void resolve(sf_watch *w)
{
    char link[PATH_MAX];
    free(w->link_first);
    w->link_first = NULL;
    ssize_t n = readlink(w->path, link, sizeof(link) - 1);
    if (n < 0) {
        drop_target(w);
        return;
    }
    link[n] = '\0';
    const char *slash = strchr(link, '/');
    if (link[0] != '/' && slash != NULL) {
        size_t len = (size_t)(slash - link);
        if (!(len == 1 && link[0] == '.') && !(len == 2 && link[0] == '.' && link[1] == '.'))
            w->link_first = strndup(link, len);
    }
    char *real = realpath(w->path, NULL), *rdir = NULL, *rname = NULL;
    int wd = -1;
    if (real != NULL && split(real, &rdir, &rname) == 0)
        wd = inotify_add_watch(w->fd, rdir, WATCH_MASK);
    if (wd < 0) {
        drop_target(w);
    } else {
        if (w->target_wd >= 0 && w->target_wd != wd && w->target_wd != w->dir_wd)
            inotify_rm_watch(w->fd, w->target_wd);
        w->target_wd = wd;
        free(w->target_name);
        w->target_name = rname;
        rname = NULL;
    }
    free(real);
    free(rdir);
    free(rname);
}

static int same_name(const struct inotify_event *e, const char *name)
{
    return e->len > 0 && name != NULL && strcmp(e->name, name) == 0;
}

static int relevant(sf_watch *w, const struct inotify_event *e)
{
    if (e->mask & IN_Q_OVERFLOW)
        return 1;
    int mine = 0;
    if (w->dir_wd >= 0 && e->wd == w->dir_wd) {
        mine = 1;
        if (same_name(e, w->name) || same_name(e, w->link_first))
            return 1;
    }
    if (w->target_wd >= 0 && e->wd == w->target_wd) {
        mine = 1;
        if (same_name(e, w->target_name))
            return 1;
    }
    if (mine && (e->mask & IN_IGNORED)) {
        /* the folder is gone (or unmounted): so is the file as it was */
        if (e->wd == w->dir_wd)
            w->dir_wd = -1;
        if (e->wd == w->target_wd)
            w->target_wd = -1;
        return 1;
    }
    return 0;
}

static void on_inotify(evutil_socket_t fd, short what, void *arg)
{
    sf_watch *w = arg;
    char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
    int seen = 0, fire = 0;
    (void)what;

    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* EAGAIN: drained */
        seen = 1;
        for (size_t off = 0; off + sizeof(struct inotify_event) <= (size_t)n;) {
            const struct inotify_event *e = (const struct inotify_event *)(buf + off);
            if (relevant(w, e))
                fire = 1;
            off += sizeof(struct inotify_event) + e->len;
        }
    }
    if (seen) {
        if (w->dir_wd < 0)
            drop_target(w); /* watching ends with the folder */
        else
            resolve(w);
    }
    if (fire)
        evtimer_add(w->timer, &w->quiet);
}

static void on_quiet(evutil_socket_t fd, short what, void *arg)
{
    sf_watch *w = arg;
    (void)fd;
    (void)what;
    w->cb(w->arg); /* last: cb may destroy w */
}

sf_watch *sf_watch_create(struct event_base *base, const char *path, unsigned debounce_ms,
                          void (*cb)(void *arg), void *arg, char *err, size_t errlen)
{
    sf_watch *w = calloc(1, sizeof(*w));
    char *cwd = NULL;
    if (w == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    w->fd = w->dir_wd = w->target_wd = -1;
    w->cb = cb;
    w->arg = arg;
    w->quiet.tv_sec = debounce_ms / 1000;
    w->quiet.tv_usec = (suseconds_t)(debounce_ms % 1000) * 1000;

    if (path[0] == '/') {
        w->path = strdup(path);
    } else if ((cwd = getcwd(NULL, 0)) == NULL) {
        snprintf(err, errlen, "cannot resolve %s: getcwd: %s", path, strerror(errno));
        goto fail;
    } else {
        w->path = join(cwd, path);
    }
    if (w->path == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (split(w->path, &w->dir, &w->name) < 0) {
        snprintf(err, errlen, "%s does not name a file", path);
        goto fail;
    }
    w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w->fd < 0) {
        snprintf(err, errlen, "inotify_init1: %s", strerror(errno));
        goto fail;
    }
    w->dir_wd = inotify_add_watch(w->fd, w->dir, WATCH_MASK);
    if (w->dir_wd < 0) {
        snprintf(err, errlen, "cannot watch folder %s: %s", w->dir, strerror(errno));
        goto fail;
    }
    resolve(w);
    w->ev = event_new(base, w->fd, EV_READ | EV_PERSIST, on_inotify, w);
    w->timer = evtimer_new(base, on_quiet, w);
    if (w->ev == NULL || w->timer == NULL || event_add(w->ev, NULL) < 0) {
        snprintf(err, errlen, "cannot add the inotify event to the event loop");
        goto fail;
    }
    free(cwd);
    return w;

fail:
    free(cwd);
    sf_watch_destroy(w);
    return NULL;
}

void sf_watch_destroy(sf_watch *w)
{
    if (w == NULL)
        return;
    if (w->ev != NULL)
        event_free(w->ev);
    if (w->timer != NULL)
        event_free(w->timer);
    if (w->fd >= 0)
        close(w->fd);
    free(w->path);
    free(w->dir);
    free(w->name);
    free(w->link_first);
    free(w->target_name);
    free(w);
}
