/* The error log: leveled lines on stderr. The level is checked before any formatting. */
#ifndef SF_LOG_H
#define SF_LOG_H

#include "settings.h"

extern int sf_log_level;

void sf_log_write(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define sf_log(level, ...)                                                                         \
    do {                                                                                           \
        if ((level) >= sf_log_level)                                                               \
            sf_log_write((level), __VA_ARGS__);                                                    \
    } while (0)
#define sf_debug(...) sf_log(SF_LOG_DEBUG, __VA_ARGS__)
#define sf_info(...)  sf_log(SF_LOG_INFO, __VA_ARGS__)
#define sf_warn(...)  sf_log(SF_LOG_WARN, __VA_ARGS__)
#define sf_error(...) sf_log(SF_LOG_ERROR, __VA_ARGS__)

/* "2026-11-24T06:00:00.123Z" for the current time into buf (at least 25 bytes). */
void sf_log_timestamp(char *buf, size_t len);

#endif
