/* query.h — looks up one parameter of a URL query string; the fault knobs and /__bytes use it.
 * Pure: no allocation, no I/O. */
#ifndef SF_QUERY_H
#define SF_QUERY_H

#include <stddef.h>

/* Finds the first parameter called name in query (the part after '?', without it; may be NULL)
 * and copies its percent-decoded value ('+' decodes to a space) into out, NUL-terminated. A
 * parameter given without '=' has the empty value. Returns 1 when found, 0 when absent, -1 when
 * the value has a bad %-escape, decodes to a NUL byte, or does not fit in outlen bytes. */
int sf_query_get(const char *query, const char *name, char *out, size_t outlen);

/* Parses s as decimal digits only (strtol alone would take "+5", " 5" and "5abc") into *out
 * when lo <= value <= hi. Returns 0, or -1 when s is not such a number. */
int sf_parse_range(const char *s, long lo, long hi, long *out);

#endif
