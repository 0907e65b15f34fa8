/*
 * error.c - the optional caller-owned error report where the first error
 * wins.
 */
#include "s3mem/util.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>

/* A code of 0 (or INT_MIN, which has no positive counterpart) would make
 * s3m_error_set look like success or overflow; both are reported as EIO. */
static int positive_errno(int code)
{
    if (code == 0 || code == INT_MIN)
        return EIO;
    return code < 0 ? -code : code;
}

int s3m_error_set(struct s3m_error *err, int code, const char *fmt, ...)
{
    va_list args;

    code = positive_errno(code);
    if (!err || err->code != 0)
        return -code;
    err->code = code;
    va_start(args, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, args);
    va_end(args);
    return -code;
}

void s3m_error_clear(struct s3m_error *err)
{
    if (!err)
        return;
    err->code = 0;
    err->message[0] = '\0';
}
