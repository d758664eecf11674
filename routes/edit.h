/* Persisted cutover changes: sets one route's cutover in routes.yaml in place (DESIGN §2), keeping
 * every other byte, and replaces the file atomically. The file stays the source of truth. */
#ifndef SF_EDIT_H
#define SF_EDIT_H

#include <stddef.h>
#include <stdint.h>

/* Return codes: 0 on success, else one of these (err says what happened). */
enum {
    SF_EDIT_EFAIL = -1,    /* I/O, memory, or a value written in a way this editor will not touch */
    SF_EDIT_ENOROUTE = -2, /* no route of that name (err lists the known ones) */
    SF_EDIT_EINVALID = -3, /* the file does not load, before or after the edit: nothing written */
    SF_EDIT_ECHANGED = -4, /* the file changed while it was being edited: nothing written */
};

typedef struct sf_edit_result {
    uint32_t old_bp;   /* the cutover before, in basis points; 0 when there was no key */
    int had_key;       /* 0: the route had no cutover: key and one was inserted */
    int changed;       /* 0: the value was already new_bp and the file was left alone */
    char old_text[32]; /* the old value's text as the scalar reads (no quotes), "" without a key */
    char version[17];  /* sf_table_version of the file now on disk */
} sf_edit_result;

/* Sets route's cutover to new_bp (0..SF_CUTOVER_MAX) in the routes file path. A symlink is
 * followed: the file it points to is edited and the link kept. Only the bytes of the cutover
 * value change (a quoted value keeps its quotes); a route without the key gets "cutover: N"
 * after its last line (block mapping) or ", cutover: N" after its last entry (flow mapping).
 * The file must load before (SF_EDIT_EINVALID otherwise, with its first error) and after the
 * edit; it is written to a temp file in the same folder with the same mode, fsync'd, checked
 * to load, and renamed over the original only if the original still holds the bytes read at
 * the start (SF_EDIT_ECHANGED otherwise). res is filled on success (may be NULL). Returns 0 or
 * an SF_EDIT_* code with a message in err naming path as given. */
int sf_routes_set_cutover(const char *path, const char *route, uint32_t new_bp, sf_edit_result *res,
                          char *err, size_t errlen);

/* bp as a percent without trailing zeros: 2500 -> "25", 2550 -> "25.5", 1 -> "0.01". Returns
 * out, for use inside a printf argument list. */
const char *sf_format_percent(uint32_t bp, char *out, size_t len);

/* The two steps of sf_routes_set_cutover, for tests and for callers that batch edits. */

/* Computes in *out (caller frees; *outlen bytes) the file bytes buf with route's cutover set to
 * new_bp. Pure: no I/O and no validation beyond YAML syntax; file names the buffer in messages.
 * Fills res->had_key and res->old_text (res may be NULL). Returns 0, SF_EDIT_ENOROUTE when no
 * mapping in routes has that name (err lists the names found), or SF_EDIT_EFAIL. */
int sf_routes_edit_buffer(const char *file, const unsigned char *buf, size_t len, const char *route,
                          uint32_t new_bp, unsigned char **out, size_t *outlen, sf_edit_result *res,
                          char *err, size_t errlen);

/* Replaces the file path (symlinks followed) with bytes[0..len) atomically, provided the new
 * bytes load as a routes file (SF_EDIT_EINVALID) and the file still holds expect[0..expect_len)
 * just before the rename (SF_EDIT_ECHANGED). version (may be NULL) gets the new file's
 * sf_table_version. No temp file is left behind on any path. Returns 0 or an SF_EDIT_* code. */
int sf_routes_replace(const char *path, const unsigned char *expect, size_t expect_len,
                      const unsigned char *bytes, size_t len, char version[17], char *err,
                      size_t errlen);

#endif
