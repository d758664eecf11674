/* The admin API (DESIGN §6): health, the live route table, reloads, cutover and rollback
 * persisted to routes.yaml, and the audit history. JSON in and out; one call in, one complete
 * response out, so the session code only moves bytes. */
#ifndef SF_ADMIN_H
#define SF_ADMIN_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "server.h"
#include "slice.h"
#include "table.h"

/* Admin request bodies are small JSON objects. */
#define SF_ADMIN_BODY_MAX 65536

typedef struct {
    sf_slice method;
    sf_slice path;          /* without the query */
    sf_slice query;         /* without the '?', may be empty */
    sf_slice body;          /* complete (Content-Length framed), may be empty */
    sf_slice authorization; /* the Authorization header's value; len 0 when absent */
    sf_slice host;          /* Host, Origin and Sec-Fetch-Site: the browser guards; len 0 when */
    sf_slice origin;        /* absent */
    sf_slice fetch_site;
} sf_admin_request;

typedef struct {
    int status;
    char *body; /* malloc'd, caller frees */
    size_t len;
    const char *content_type;
    const char *headers; /* more header lines (static), each ending in CRLF, or NULL */
} sf_admin_response;

/* The route table t as GET /routes shows it: file (as given, borrowed), version, loaded_at and
 * last_reload (null: the caller sets them when a proxy runs), legacy, functions (never their
 * header values: they may be secrets) and routes. A route's state is "rolled_back" when it is at
 * 0% and last_actions (route name -> action of its latest audit entry, borrowed) says
 * "rollback", else "active"; with last_actions NULL (no proxy runs) it is "not running". Returns
 * a new reference (caller decrefs), or NULL when out of memory. */
json_t *sf_admin_table_json(const sf_route_table *t, const char *file, const json_t *last_actions);

/* "rolled_back" when a route at cutover_bp 0 had a rollback (manual or by a guard) as its latest
 * audited change, per last_actions (route name -> action), else "active". */
const char *sf_admin_route_state(const json_t *last_actions, const char *name, uint32_t cutover_bp);

/* Answers one admin call. Never fails: errors are JSON bodies with a 4xx/5xx status. */
void sf_admin_handle(sf_server *s, const sf_admin_request *rq, sf_admin_response *out);

#endif
