/*
 * path.h - how object keys map to filesystem paths, and which keys cannot be
 * shown as paths ("shadowed": kept in the store, never lost, listed in
 * .s3mem/shadowed). Pure functions, no store or FUSE; safe from any thread.
 *
 * A key under the mount's key prefix P is shown as path "/" + (key minus P),
 * split at '/'. A key ending in '/' is a directory marker.
 */
#ifndef S3MEM_PATH_H
#define S3MEM_PATH_H

#include <stdbool.h>
#include <stddef.h>

#define S3M_NAME_MAX 255

/* True when name (len bytes) can be one path segment: non-empty, not "."
 * or "..", at most 255 bytes, no '/' and no NUL. */
bool s3m_path_segment_ok(const char *name, size_t len);

/* 0 when a new entry called name may be created in a directory whose key
 * prefix is dir_key_len bytes long (is_dir adds the marker's '/'), else
 * -EILSEQ (not UTF-8), -ENAMETOOLONG (segment over 255 bytes or key over
 * 1024), -EINVAL (not a segment). */
int s3m_path_check_new(const char *name, size_t len, size_t dir_key_len,
                       bool is_dir);

/* Why a key (already known to start with the key prefix, given without it
 * as rest/rest_len) cannot be shown as a path by its segments alone: NULL
 * when it can, else a short reason ("empty segment", "'.' or '..' segment",
 * "segment over 255 bytes"). body_size matters for a marker (trailing '/'):
 * a marker with a body is shadowed ("directory marker with a body"). The
 * other rule, a file shadowed by a directory of the same name, needs the
 * store and is checked by the caller. */
const char *s3m_path_unshowable(const char *rest, size_t rest_len,
                                unsigned long long body_size);

#endif
