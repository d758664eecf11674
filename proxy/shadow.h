/* Shadow traffic (DESIGN §5 steps 6-7, issue 6): a copy of a request legacy serves, sent to the
 * route's function on its own connection, its answer compared with legacy's once both are in.
 * The client's exchange only feeds it (the request body as it streams, legacy's response as it
 * is relayed) and never waits for it: a slow, failing or dead function changes neither what the
 * client gets nor when. */
#ifndef SF_SHADOW_H
#define SF_SHADOW_H

#include <event2/buffer.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "accesslog.h"
#include "http_parse.h"
#include "server.h"
#include "stats.h"

typedef struct sf_shadow sf_shadow;

/* What a shadow is started with. The heads are complete request heads (X-Strangler-Shadow: 1
 * included); the shadow takes ownership of both (free()d by it). */
typedef struct {
    sf_runtime *rt;        /* the exchange's runtime: the shadow takes its own reference */
    const sf_route *route; /* of rt's table, with a shadow block */
    int slot;              /* the route's stats slot */
    sf_backend *fn;        /* the route's function, from rt */
    char *fn_head;
    size_t fn_head_len;
    char *learn_head; /* the same request for legacy, to learn noise from; NULL: not this time */
    size_t learn_head_len;
    int has_body; /* request body bytes follow through sf_shadow_body */
    const char *request_id, *method, *path;
} sf_shadow_params;

/* Why this request is not shadowed (an sf_stats_shadow_reason), or -1 when it may be: the
 * in-flight caps, global and the route's (r of rt's table), over all workers. The caller counts
 * the skip. */
int sf_shadow_admit(sf_server *s, const sf_runtime *rt, const sf_route *r, int slot);

/* Starts a shadow: connects to the function and sends the head. Returns NULL when out of
 * memory (counted as an error). */
sf_shadow *sf_shadow_start(sf_server *s, const sf_shadow_params *p);

/* Request body bytes as sent to legacy: len bytes of src starting at offset from (in the same
 * framing as the head announced). Past shadow.max_body_bytes the shadow is abandoned and
 * counted as skipped (body_too_large). */
void sf_shadow_body(sf_shadow *sh, struct evbuffer *src, size_t from, size_t len);

/* The request body is complete (every byte went through sf_shadow_body). Until then the
 * function's connection is never reused, whatever the function answered. */
void sf_shadow_body_end(sf_shadow *sh);

/* Legacy's response head, and its body bytes as relayed: the first len bytes of src. */
void sf_shadow_primary_head(sf_shadow *sh, const sf_http_response *resp);
void sf_shadow_primary_body(sf_shadow *sh, struct evbuffer *src, size_t len);

/* The client's exchange is over; ok: the request went to legacy whole and its response was
 * relayed whole (otherwise the shadow is given up at once, as skipped). log: the exchange's
 * access-log line (copied), written once the comparison's outcome is known, with it. The
 * caller must not use sh again. */
void sf_shadow_primary_done(sf_shadow *sh, int ok, const sf_access_entry *log);

/* Shadows of one worker: created with it, destroyed with it (closing any in flight). shared:
 * another thread reads the noise learned (sf_shadows_noise_collect). */
struct sf_shadows *sf_shadows_create(int shared);
void sf_shadows_destroy(struct sf_shadows *all);

/* The noise paths learned for a stats slot (route), or NULL. The owner's thread only. */
struct sf_noise *sf_shadows_noise(struct sf_shadows *all, int slot);

/* Appends to the JSON array into the noise paths learned for route (strongest first) that it
 * does not hold yet, until it holds max. Any thread. */
void sf_shadows_noise_collect(struct sf_shadows *all, const char *route, json_t *into, size_t max);

#endif
