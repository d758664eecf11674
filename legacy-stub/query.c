/* query.c — one parameter out of a URL query string (see query.h). */
#include "query.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int decode(const char *s, const char *end, char *out, size_t outlen)
{
    size_t n = 0;

    while (s < end) {
        int c = (unsigned char)*s;
        if (c == '+') {
            c = ' ';
            s++;
        } else if (c == '%') {
            int hi, lo;
            if (end - s < 3)
                return -1;
            hi = hexval(s[1]);
            lo = hexval(s[2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = hi * 16 + lo;
            s += 3;
        } else {
            s++;
        }
        /* A NUL would silently truncate the value the caller sees. */
        if (c == 0 || n + 1 >= outlen)
            return -1;
        out[n++] = (char)c;
    }
    out[n] = '\0';
    return 1;
}

int sf_query_get(const char *query, const char *name, char *out, size_t outlen)
{
    size_t nlen = strlen(name);
    const char *p = query;

    if (query == NULL || outlen == 0)
        return 0;
    while (*p != '\0') {
        const char *end = strchr(p, '&');
        const char *eq, *kend;
        if (end == NULL)
            end = p + strlen(p);
        eq = memchr(p, '=', (size_t)(end - p));
        kend = eq != NULL ? eq : end;
        if ((size_t)(kend - p) == nlen && memcmp(p, name, nlen) == 0)
            return decode(eq != NULL ? eq + 1 : end, end, out, outlen);
        p = *end != '\0' ? end + 1 : end;
    }
    return 0;
}

int sf_parse_range(const char *s, long lo, long hi, long *out)
{
    char *end;
    long v;

    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}
