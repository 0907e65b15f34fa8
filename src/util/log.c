/*
 * log.c - the daemon's log: one line per event on stderr, with a UTC time.
 */
#include <stdarg.h>
#include <stdio.h>

#include "s3mem/util.h"

void s3m_log(const char *fmt, ...)
{
    char when[32];
    char line[2048];
    va_list args;
    s3m_time_format_iso(s3m_time_now_ns(), when);
    va_start(args, fmt);
    vsnprintf(line, sizeof(line), fmt, args);
    va_end(args);
    fprintf(stderr, "%s s3mem: %s\n", when, line);
}
