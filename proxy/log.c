/* Error log writer: one line per call, written with a single write(2) so lines from a
 * signal-free single thread never interleave with the access log on the same stderr. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

int sf_log_level = SF_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void sf_log_timestamp(char *buf, size_t len)
{
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000));
}

void sf_log_write(int level, const char *fmt, ...)
{
    char line[2048];
    char ts[32];
    va_list ap;
    sf_log_timestamp(ts, sizeof(ts));
    int n = snprintf(line, sizeof(line), "%s [%s] ", ts, level_names[level & 3]);
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        m = 0;
    size_t len = (size_t)n + (size_t)m;
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2;
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}
