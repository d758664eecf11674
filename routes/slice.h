/* Byte slices shared by the route library and the proxy: data-path strings are {ptr, len},
 * never assumed NUL-terminated. */
#ifndef SF_SLICE_H
#define SF_SLICE_H

#include <stddef.h>

typedef struct {
    const char *p;
    size_t len;
} sf_slice;

/* A header as it arrived: name as sent, value with surrounding whitespace removed. */
typedef struct {
    sf_slice name;
    sf_slice value;
} sf_kv;

#endif
