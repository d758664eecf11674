/* A tiny TAP producer for the unit tests: ok(), is(), is_str(), is_mem(), diag(), done_testing().
 * Header-only; the counters live in a function-local static, so each test program has its own. */
#ifndef SF_TAP_H
#define SF_TAP_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#define TAP_PRINTF(f, a) __attribute__((format(printf, f, a)))

typedef struct {
    int run;
    int failed;
} tap_counts;

static inline tap_counts *tap_state(void)
{
    static tap_counts counts;
    return &counts;
}

/* Diagnostics go to stderr so that prove shows them without -v; stdout is flushed first to keep
 * them next to the "not ok" line they explain. */
static inline TAP_PRINTF(1, 0) void tap_vdiag(const char *fmt, va_list ap)
{
    fflush(stdout);
    fputs("#   ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

static inline TAP_PRINTF(1, 2) void diag(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tap_vdiag(fmt, ap);
    va_end(ap);
}

static inline TAP_PRINTF(2, 0) int tap_vok(int pass, const char *fmt, va_list ap)
{
    tap_counts *t = tap_state();
    t->run++;
    if (!pass)
        t->failed++;
    char name[1024];
    vsnprintf(name, sizeof(name), fmt, ap);
    printf("%sok %d - ", pass ? "" : "not ", t->run);
    /* '#' would start a TAP directive and a newline a new TAP line: escape both. */
    for (const char *c = name; *c; c++) {
        if (*c == '#')
            fputs("\\#", stdout);
        else
            putchar(*c == '\n' ? ' ' : *c);
    }
    putchar('\n');
    return pass;
}

/* Records one test; returns cond so a caller can add diagnostics on failure. */
static inline TAP_PRINTF(2, 3) int ok(int cond, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int pass = tap_vok(cond != 0, fmt, ap);
    va_end(ap);
    return pass;
}

/* C-escaped, quoted copy of p[0..len) for diagnostics (NULL prints as NULL). The result lives in
 * one of a few rotating static buffers, so several may appear in one printf; long inputs are cut
 * with "...". */
static inline const char *tap_esc(const void *p, size_t len)
{
    static char bufs[8][1024];
    static unsigned next;
    char *out = bufs[next++ % 8];
    const unsigned char *s = p;
    size_t o = 0, cap = sizeof(bufs[0]);

    if (s == NULL)
        return "NULL";
    out[o++] = '"';
    for (size_t i = 0; i < len; i++) {
        if (o + 8 >= cap) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        unsigned char c = s[i];
        if (c == '\r')
            o += (size_t)snprintf(out + o, cap - o, "\\r");
        else if (c == '\n')
            o += (size_t)snprintf(out + o, cap - o, "\\n");
        else if (c == '\t')
            o += (size_t)snprintf(out + o, cap - o, "\\t");
        else if (c == '"' || c == '\\')
            o += (size_t)snprintf(out + o, cap - o, "\\%c", c);
        else if (c < 0x20 || c >= 0x7f)
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
        else
            out[o++] = (char)c;
    }
    out[o++] = '"';
    out[o] = '\0';
    return out;
}

/* Integers: passes when got == want, else prints both. */
static inline TAP_PRINTF(3, 4) int is(long long got, long long want, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int pass = tap_vok(got == want, fmt, ap);
    va_end(ap);
    if (!pass)
        diag("got %lld, want %lld", got, want);
    return pass;
}

/* NUL-terminated strings; NULL equals only NULL. */
static inline TAP_PRINTF(3, 4) int is_str(const char *got, const char *want, const char *fmt, ...)
{
    int same = (got == NULL || want == NULL) ? got == want : strcmp(got, want) == 0;
    va_list ap;
    va_start(ap, fmt);
    int pass = tap_vok(same, fmt, ap);
    va_end(ap);
    if (!pass)
        diag("got %s, want %s", tap_esc(got, got ? strlen(got) : 0),
             tap_esc(want, want ? strlen(want) : 0));
    return pass;
}

/* Byte strings given as pointer and length. */
static inline TAP_PRINTF(5, 6) int is_mem(const void *got, size_t got_len, const void *want,
                                          size_t want_len, const char *fmt, ...)
{
    int same = got_len == want_len && (want_len == 0 || memcmp(got, want, want_len) == 0);
    va_list ap;
    va_start(ap, fmt);
    int pass = tap_vok(same, fmt, ap);
    va_end(ap);
    if (!pass)
        diag("got %s (%zu bytes), want %s (%zu bytes)", tap_esc(got, got_len), got_len,
             tap_esc(want, want_len), want_len);
    return pass;
}

/* Prints the plan; returns the exit status: 0 when every test passed, else the failure count
 * (capped at 254, as Test::More does). */
static inline int done_testing(void)
{
    tap_counts *t = tap_state();
    printf("1..%d\n", t->run);
    fflush(stdout);
    if (t->failed)
        diag("failed %d of %d tests", t->failed, t->run);
    return t->failed > 254 ? 254 : t->failed;
}

#endif
