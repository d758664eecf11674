/* Guards (DESIGN §4 `guard`, issue 6): automatic rollback. Every second each route of the live
 * table with a guard and a cutover above 0 is checked over its window, once min_requests
 * function requests (or, for the mismatch ratio, comparisons) are in it; a breach rolls the
 * route back through the same persisted path as `strangler rollback` (routes.yaml edited in
 * place, an audit entry with action "guard" and the evidence, a reload), or with dry_run only
 * logs and counts. */
#ifndef SF_GUARD_H
#define SF_GUARD_H

#include <stdint.h>

#include "server.h"

/* The checks a guard makes, for logs and metrics. */
enum { SF_GUARD_ERROR_RATIO, SF_GUARD_MISMATCH_RATIO, SF_GUARD_P99_RATIO };
#define SF_GUARD_CHECKS 3
const char *sf_guard_check_name(int check); /* "error_ratio", "mismatch_ratio", "p99_ratio" */

/* Breaches seen since the start, per stats slot and check (a breach lasting several seconds
 * counts once per window). */
typedef struct sf_guards sf_guards;
sf_guards *sf_guards_create(void);
void sf_guards_destroy(sf_guards *g);
uint64_t sf_guards_breaches(const sf_guards *g, int slot, int check);

/* One evaluation of every guarded route, at now_sec (monotonic). */
void sf_guard_tick(sf_server *s, uint64_t now_sec);

#endif
