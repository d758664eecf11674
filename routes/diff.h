/* What changed between two route tables, as human lines for the reload log (DESIGN §4). */
#ifndef SF_DIFF_H
#define SF_DIFF_H

#include <stddef.h>

#include "table.h"

/* The differences between two tables as human lines, in a stable order: the legacy URL, then
 * functions (removed in old file order, then added or changed in new file order), then routes
 * the same way, then "routes reordered" when the routes present in both changed relative order
 * (first match depends on it). Functions and routes are compared by name. Header values of
 * functions are never printed (they may hold secrets). Either table may be NULL (an empty table
 * without a legacy URL). Borrows both tables. Returns the number of lines (0 = no change) and
 * sets *lines to a malloc'd array of malloc'd strings (NULL when 0), which the caller frees with
 * sf_diff_free. When out of memory, returns the lines built so far. */
size_t sf_table_diff(const sf_route_table *old, const sf_route_table *new, char ***lines);

/* Frees what sf_table_diff returned; accepts NULL. */
void sf_diff_free(char **lines, size_t n);

#endif
