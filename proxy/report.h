/* What the proxy tells about its traffic (DESIGN §7): GET /stats as JSON and GET /metrics in the
 * Prometheus text format, both rendered from the stats shard, the live route table, the reload
 * record and the audit log. */
#ifndef SF_REPORT_H
#define SF_REPORT_H

#include <jansson.h>
#include <stddef.h>

#include "server.h"

/* Seconds of per-second series in GET /stats?series=1: per route, and for all traffic. */
#define SF_REPORT_ROUTE_SERIES 60
#define SF_REPORT_TOTAL_SERIES 300

/* Re-reads the audit log when it changed since the last call (a stat() otherwise), keeping in s
 * each route's latest action and the rollbacks counted since the proxy started. A log that
 * cannot be read keeps the last view. */
void sf_report_audit_refresh(sf_server *s);

/* The GET /stats document; with_series adds the per-second series. A new reference, or NULL
 * when out of memory. */
json_t *sf_report_stats_json(sf_server *s, int with_series);

/* The GET /metrics text, malloc'd (caller frees), its length in *len; NULL when out of memory. */
char *sf_report_metrics(sf_server *s, size_t *len);

#endif
