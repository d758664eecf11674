/* Watching routes.yaml on disk so the proxy reloads it when it changes (DESIGN §4): in place, by
 * rename-over (editors), by a symlink swap, or by a Kubernetes ConfigMap's "..data" swap. */
#ifndef SF_WATCH_H
#define SF_WATCH_H

#include <event2/event.h>
#include <stddef.h>

typedef struct sf_watch sf_watch;

/* Watches the file at path for replacement or modification and calls cb(arg) once things have
 * been quiet for debounce_ms after the last relevant event (one call per burst). Uses inotify on
 * the file's folder (IN_CLOSE_WRITE, IN_MOVED_TO, IN_CREATE, IN_DELETE, IN_ATTRIB,
 * IN_MOVED_FROM) filtered to the file's name and, when path is a symlink whose relative target
 * goes through a folder entry (a ConfigMap's "routes.yaml -> ..data/routes.yaml"), to that
 * entry being swapped. When the file path finally resolves to lives in another folder, that
 * folder is watched too, filtered to the resolved name; the resolution is redone after every
 * batch of events since the target may change. An inotify queue overflow fires the callback
 * (the caller compares versions anyway). The file need not exist yet; its folder must. If the
 * folder itself is removed, the callback fires once and watching stops. A relative path is made
 * absolute at creation. cb may destroy the watch. Borrows base, which must outlive the watch.
 * Returns NULL with a reason in err. */
sf_watch *sf_watch_create(struct event_base *base, const char *path, unsigned debounce_ms,
                          void (*cb)(void *arg), void *arg, char *err, size_t errlen);

void sf_watch_destroy(sf_watch *w); /* accepts NULL */

#endif
