/* Typed, located access to a YAML document for the config loaders: every problem becomes a
 * diagnostic at the offending node's FILE:LINE:COL, and loading goes on to find the rest. */
#ifndef SF_YCONF_H
#define SF_YCONF_H

#include <stddef.h>
#include <stdint.h>
#include <yaml.h>

#include "diag.h"

typedef struct {
    yaml_document_t doc;
    const char *file; /* borrowed: the path as given, used in messages */
    sf_diags *diags;  /* borrowed */
    int loaded;
    int env_placeholders; /* an unset ${env:NAME} is a warning, not an error (sf_table_load_ex) */
    const unsigned char *src; /* borrowed: the bytes parsed, when loaded from a buffer */
    size_t srclen;
} sf_ydoc;

/* Parses path into y. Returns 0, or -1 with a diagnostic (unreadable file, YAML syntax error
 * at its position, empty document). */
int sf_ydoc_load(sf_ydoc *y, const char *path, sf_diags *d);
/* The same from the bytes of file already read: buf is borrowed and must outlive y (messages
 * that point inside a scalar read it). */
int sf_ydoc_load_buffer(sf_ydoc *y, const char *file, const unsigned char *buf, size_t len,
                        sf_diags *d);
void sf_ydoc_dispose(sf_ydoc *y);
yaml_node_t *sf_ydoc_root(sf_ydoc *y);
yaml_node_t *sf_ydoc_node(sf_ydoc *y, int index);

/* An error (or warning) located at node n. */
void sf_ydoc_error(sf_ydoc *y, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void sf_ydoc_warning(sf_ydoc *y, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* An error at byte offset off of scalar n's value: at that character when the value is on one
 * line and its source reads the same as the value up to there (plain, or quoted with no escape
 * before off), else at the node's start. Needs a buffer-loaded y to look inside quotes. */
void sf_ydoc_error_at(sf_ydoc *y, const yaml_node_t *n, size_t off, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Puts the diagnostics recorded in y's list since index first in file order (line, then
 * column; stable), so a loader may check in whatever order its rules need. */
void sf_ydoc_sort_diags(sf_ydoc *y, size_t first);

/* The scalar's text (NUL-terminated, borrowed), or NULL with an error naming what was
 * expected when n is not a scalar. */
const char *sf_ynode_scalar(sf_ydoc *y, const yaml_node_t *n, const char *what);

/* True for a plain scalar null: "null", "~" or empty. */
int sf_ynode_is_null(const yaml_node_t *n);

/* Checks that n is a mapping whose keys are all among the NULL-terminated list known;
 * unknown keys are errors listing the known ones. Returns 0 when n is a mapping. */
int sf_ynode_check_map(sf_ydoc *y, const yaml_node_t *n, const char *what,
                       const char *const *known);

/* For loaders that walk a mapping pair by pair: 1 when key must be skipped, because it is not a
 * scalar (sf_ynode_check_map reports that) or repeats an earlier key of map (reported here as
 * "KEY is given twice in WHAT"), else 0. */
int sf_ynode_skip_key(sf_ydoc *y, const yaml_node_t *map, const yaml_node_t *key, const char *what);

/* Finds the values of a mapping's keys: vals[i] (and keys[i] when keys is not NULL) for
 * known[i], NULL when absent. A key given twice is an error at the second. Unknown keys are
 * skipped: report them with sf_ynode_check_map. n must be a mapping. */
void sf_ynode_fields(sf_ydoc *y, const yaml_node_t *n, const char *what, const char *const *known,
                     yaml_node_t **keys, yaml_node_t **vals);

/* Value parsers: each returns 0 and stores the value, or -1 after recording an error. */
int sf_yget_string(sf_ydoc *y, const yaml_node_t *n, const char *what, char **out);
int sf_yget_uint(sf_ydoc *y, const yaml_node_t *n, const char *what, uint64_t min, uint64_t max,
                 uint64_t *out);
int sf_yget_bool(sf_ydoc *y, const yaml_node_t *n, const char *what, int *out);
/* Durations take a unit: "250ms", "10s", "2m". */
int sf_yget_duration_ms(sf_ydoc *y, const yaml_node_t *n, const char *what, uint64_t *out);

/* A decimal number ("0.05", "3", "-1" is parsed and then refused by the range) between min and
 * max inclusive. No exponents, no "inf"/"nan", no "%". */
int sf_yget_decimal(sf_ydoc *y, const yaml_node_t *n, const char *what, double min, double max,
                    double *out);
/* A percentage 0..100 with at most two decimal places, in basis points (25 -> 2500, 0.5 -> 50,
 * 33.33 -> 3333). "25%" gets a hint. */
int sf_yget_percent_bp(sf_ydoc *y, const yaml_node_t *n, const char *what, uint32_t *out);

/* Iterate a mapping: for (pair...) with key text and value node. */
#define SF_YCAT_(a, b)               a##b
#define SF_YCAT(a, b)                SF_YCAT_(a, b)
#define SF_YMAP_EACH(y, map, k_, v_) SF_YMAP_EACH_(y, map, k_, v_, SF_YCAT(sf_pair_, __LINE__))
#define SF_YMAP_EACH_(y, map, k_, v_, it)                                                          \
    for (yaml_node_pair_t *it = (map)->data.mapping.pairs.start;                                   \
         it < (map)->data.mapping.pairs.top && ((k_) = sf_ydoc_node((y), it->key)) != NULL &&      \
         ((v_) = sf_ydoc_node((y), it->value)) != NULL;                                            \
         it++)

#endif
