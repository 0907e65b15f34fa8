/*
 * path.c - the key <-> path rules of DESIGN section 2 (see path.h).
 */
#include <errno.h>
#include <string.h>

#include "s3mem/path.h"
#include "s3mem/store.h"
#include "s3mem/util.h"

bool s3m_path_segment_ok(const char *name, size_t len)
{
    if (len == 0 || len > S3M_NAME_MAX)
        return false;
    if (name[0] == '.' && (len == 1 || (len == 2 && name[1] == '.')))
        return false;
    return memchr(name, '/', len) == NULL && memchr(name, '\0', len) == NULL;
}

int s3m_path_check_new(const char *name, size_t len, size_t dir_key_len,
                       bool is_dir)
{
    if (len > S3M_NAME_MAX)
        return -ENAMETOOLONG;
    if (!s3m_path_segment_ok(name, len))
        return -EINVAL;
    if (!s3m_utf8_valid(name, len))
        return -EILSEQ;
    if (dir_key_len + len + (is_dir ? 1 : 0) > S3M_KEY_MAX)
        return -ENAMETOOLONG;
    return 0;
}

const char *s3m_path_unshowable(const char *rest, size_t rest_len,
                                unsigned long long body_size)
{
    if (rest_len == 0)
        return NULL; /* the root marker */
    bool marker = rest[rest_len - 1] == '/';
    size_t end = marker ? rest_len - 1 : rest_len;
    size_t start = 0;
    while (start <= end) {
        const char *slash = memchr(rest + start, '/', end - start);
        size_t stop = slash ? (size_t)(slash - rest) : end;
        size_t len = stop - start;
        if (len == 0)
            return "empty segment";
        if (len > S3M_NAME_MAX)
            return "segment over 255 bytes";
        if (!s3m_path_segment_ok(rest + start, len))
            return "'.' or '..' segment";
        start = stop + 1;
    }
    if (marker && body_size > 0)
        return "directory marker with a body";
    return NULL;
}
