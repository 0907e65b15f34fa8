/*
 * xattr.c - object metadata as user.* extended attributes (DESIGN section 4).
 *
 * user.NAME is metadata NAME (stored lowercased, found in any case).
 * user.s3mem.content-type and user.s3mem.content-encoding are writable;
 * user.s3mem.etag, .last-modified and .key are read-only and not listed.
 * Other user.s3mem.* names are reserved (EINVAL); other namespaces ENOTSUP.
 */
#include <errno.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <linux/limits.h>
#include <stdio.h>
#include <sys/xattr.h>

#include "fs_internal.h"

#define USER_PREFIX "user."
#define RESERVED_PREFIX "user.s3mem."

enum xattr_kind {
    XATTR_META,            /* user metadata */
    XATTR_CONTENT_TYPE,
    XATTR_CONTENT_ENCODING,
    XATTR_ETAG,
    XATTR_LAST_MODIFIED,
    XATTR_KEY,
    XATTR_UNKNOWN_RESERVED,
    XATTR_FOREIGN,         /* not in the user namespace */
};

static enum xattr_kind classify(const char *name)
{
    static const struct { const char *name; enum xattr_kind kind; } reserved[] = {
        {"content-type", XATTR_CONTENT_TYPE},
        {"content-encoding", XATTR_CONTENT_ENCODING},
        {"etag", XATTR_ETAG},
        {"last-modified", XATTR_LAST_MODIFIED},
        {"key", XATTR_KEY},
    };
    if (strncmp(name, USER_PREFIX, strlen(USER_PREFIX)) != 0)
        return XATTR_FOREIGN;
    if (strncasecmp(name, RESERVED_PREFIX, strlen(RESERVED_PREFIX)) != 0)
        return XATTR_META;
    const char *rest = name + strlen(RESERVED_PREFIX);
    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
        if (strcasecmp(rest, reserved[i].name) == 0)
            return reserved[i].kind;
    return XATTR_UNKNOWN_RESERVED;
}

/* A file of the live store: its object, and its key as it is now. */
static struct s3m_object *file_target(struct s3m_fs *fs, fuse_ino_t ino,
                                      struct fs_key *key, int *rc)
{
    struct s3m_object *obj = fs_file_object(fs, ino, rc);
    if (!obj)
        return NULL;
    key->store = fs->store;
    key->readonly = false;
    int len = s3m_object_key(fs->store, obj, key->text, sizeof(key->text));
    key->len = len < 0 ? 0 : (size_t)len;
    return obj;
}

/* The object holding ino's metadata: a file, or a directory's marker (made
 * when create_marker and the directory is implicit). New reference, or NULL
 * with *rc; *key receives the object's key. */
static struct s3m_object *xattr_target(struct s3m_fs *fs, fuse_ino_t ino,
                                       bool create_marker, struct fs_key *key,
                                       int *rc)
{
    if (ino_is_object(ino))
        return file_target(fs, ino, key, rc);
    pthread_mutex_lock(&fs->lock);
    struct fs_node *node = node_by_ino(fs, ino);
    *rc = node ? node_key(fs, node, key) : -ENOENT;
    bool is_dir = node && node->is_dir;
    pthread_mutex_unlock(&fs->lock);
    if (*rc)
        return NULL;
    if (key->len == 0) {
        *rc = create_marker ? -ENOTSUP : -ENODATA; /* root without key_prefix */
        return NULL;
    }
    if (create_marker && key->readonly) {
        *rc = -EROFS;
        return NULL;
    }
    if (is_dir && create_marker && (*rc = fs_ensure_marker(fs, key)) != 0)
        return NULL;
    struct s3m_object *obj = s3m_store_open(key->store, key->text, rc);
    if (!obj && is_dir && !create_marker && s3m_store_has_prefix(key->store, key->text))
        *rc = -ENODATA; /* an implicit directory has no metadata */
    return obj;
}

/* New metadata: meta with the change that setxattr/removexattr asks. */
static struct s3m_meta *changed_meta(const struct s3m_meta *meta,
                                     enum xattr_kind kind, const char *name,
                                     const char *value, size_t size, bool remove,
                                     int flags, int *rc)
{
    *rc = 0;
    char text[4096];
    if (kind == XATTR_CONTENT_TYPE || kind == XATTR_CONTENT_ENCODING) {
        if (size >= sizeof(text) || (value && memchr(value, '\0', size))) {
            *rc = -EINVAL;
            return NULL;
        }
        if (!remove) {
            memcpy(text, value, size);
            text[size] = '\0';
        }
        const char *type = meta ? meta->content_type : NULL;
        const char *encoding = meta ? meta->content_encoding : NULL;
        if (kind == XATTR_CONTENT_TYPE)
            type = remove ? NULL : text;
        else if (remove && !encoding)
            *rc = -ENODATA;
        else
            encoding = remove ? NULL : text;
        return *rc ? NULL : s3m_meta_with_type(meta, type, encoding);
    }
    const char *meta_name = name + strlen(USER_PREFIX);
    bool exists = s3m_meta_find(meta, meta_name) != NULL;
    if ((remove || (flags & XATTR_REPLACE)) && !exists) {
        *rc = -ENODATA;
        return NULL;
    }
    if ((flags & XATTR_CREATE) && exists) {
        *rc = -EEXIST;
        return NULL;
    }
    if (remove)
        return s3m_meta_without(meta, meta_name);
    char lower[XATTR_NAME_MAX + 1];
    size_t len = strlen(meta_name);
    if (len == 0 || len > XATTR_NAME_MAX) {
        *rc = len ? -ERANGE : -EINVAL;
        return NULL;
    }
    for (size_t i = 0; i <= len; i++)
        lower[i] = (char)tolower((unsigned char)meta_name[i]);
    return s3m_meta_with(meta, lower, value, size);
}

static int refusal_for_kind(enum xattr_kind kind, bool remove)
{
    switch (kind) {
    case XATTR_FOREIGN:
        return -ENOTSUP;
    case XATTR_UNKNOWN_RESERVED:
        return remove ? -ENODATA : -EINVAL;
    case XATTR_ETAG:
    case XATTR_LAST_MODIFIED:
    case XATTR_KEY:
        return -EPERM;
    default:
        return 0;
    }
}

/* setxattr (remove false) and removexattr (remove true). */
static int change_xattr(struct s3m_fs *fs, fuse_ino_t ino, const char *name,
                        const char *value, size_t size, int flags, bool remove)
{
    enum xattr_kind kind = classify(name);
    int rc = fs_control_node(fs, ino) ? -ENOTSUP : refusal_for_kind(kind, remove);
    struct fs_key key = {.len = 0};
    struct s3m_object *obj = rc ? NULL : xattr_target(fs, ino, !remove, &key, &rc);
    while (obj) {
        struct s3m_object_info info;
        s3m_object_head(key.store, obj, &info);
        struct s3m_meta *meta = changed_meta(info.meta, kind, name, value, size,
                                             remove, flags, &rc);
        if (meta)
            rc = s3m_object_replace_meta(key.store, obj, info.meta, meta);
        else if (rc == 0)
            rc = -ENOMEM;
        s3m_meta_unref(meta);
        s3m_object_info_release(&info);
        if (rc != -EAGAIN)
            break;
    }
    s3m_object_unref(obj);
    if (rc && rc != -ENODATA && rc != -EEXIST)
        fs_log_refusal(fs, remove ? "removexattr" : "setxattr", name, rc,
                       rc == -ENOSPC ? "metadata over metadata_limit"
                       : rc == -EINVAL ? "unknown name under user.s3mem."
                       : rc == -EPERM ? "read-only attribute"
                       : rc == -ENOTSUP ? "only user.* attributes are stored" : NULL);
    return rc;
}

void fs_op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
                    const char *value, size_t size, int flags)
{
    struct s3m_fs *fs = fuse_req_userdata(req);
    fuse_reply_err(req, -change_xattr(fs, ino, name, value, size, flags, false));
}

void fs_op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
    struct s3m_fs *fs = fuse_req_userdata(req);
    fuse_reply_err(req, -change_xattr(fs, ino, name, NULL, 0, 0, true));
}

/* Replies with value (len bytes) the way getxattr/listxattr must: the size
 * alone when size is 0, ERANGE when it does not fit. */
static void reply_value(fuse_req_t req, const char *value, size_t len, size_t size)
{
    if (size == 0)
        fuse_reply_xattr(req, len);
    else if (len > size)
        fuse_reply_err(req, ERANGE);
    else
        fuse_reply_buf(req, value, len);
}

static int value_of(struct s3m_object *obj, const struct fs_key *key,
                    enum xattr_kind kind, const char *name, char **out, size_t *len)
{
    struct s3m_object_info info;
    char text[40];
    const char *value = NULL;
    s3m_object_head(key->store, obj, &info);
    const struct s3m_meta_entry *entry = NULL;
    switch (kind) {
    case XATTR_CONTENT_TYPE: value = s3m_meta_content_type(info.meta); break;
    case XATTR_CONTENT_ENCODING: value = info.meta ? info.meta->content_encoding : NULL; break;
    case XATTR_ETAG: s3m_object_etag(key->store, obj, text); value = text; break;
    case XATTR_LAST_MODIFIED: s3m_time_format_iso(info.mtime_ns, text); value = text; break;
    case XATTR_KEY: value = key->text; break;
    default:
        entry = s3m_meta_find(info.meta, name + strlen(USER_PREFIX));
        break;
    }
    *len = entry ? entry->value_len : value ? strlen(value) : 0;
    *out = entry ? s3m_memdup(entry->value, *len) : value ? s3m_strdup(value) : NULL;
    int rc = (entry || value) ? (*out ? 0 : -ENOMEM) : -ENODATA;
    s3m_object_info_release(&info);
    return rc;
}

void fs_op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
    struct s3m_fs *fs = fuse_req_userdata(req);
    enum xattr_kind kind = classify(name);
    struct fs_key key;
    int rc = kind == XATTR_FOREIGN ? -ENOTSUP
           : kind == XATTR_UNKNOWN_RESERVED || fs_control_node(fs, ino) ? -ENODATA : 0;
    struct s3m_object *obj = rc ? NULL : xattr_target(fs, ino, false, &key, &rc);
    char *value = NULL;
    size_t len = 0;
    if (obj)
        rc = value_of(obj, &key, kind, name, &value, &len);
    s3m_object_unref(obj);
    if (rc)
        fuse_reply_err(req, -rc);
    else
        reply_value(req, value, len, size);
    free(value);
}

/* Appends "prefix" + name + NUL to the list buffer. */
static int list_add(char **buf, size_t *len, size_t *cap, const char *prefix,
                    const char *name)
{
    size_t need = strlen(prefix) + strlen(name) + 1;
    if (*len + need > *cap) {
        size_t bigger = (*cap + need) * 2;
        char *grown = s3m_realloc(*buf, bigger);
        if (!grown)
            return -ENOMEM;
        *buf = grown;
        *cap = bigger;
    }
    *len += (size_t)sprintf(*buf + *len, "%s%s", prefix, name) + 1;
    return 0;
}

void fs_op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
    struct s3m_fs *fs = fuse_req_userdata(req);
    struct fs_key key;
    int rc = fs_control_node(fs, ino) ? -ENODATA : 0;
    struct s3m_object *obj = rc ? NULL : xattr_target(fs, ino, false, &key, &rc);
    char *buf = NULL;
    size_t len = 0, cap = 0;
    if (obj) {
        struct s3m_object_info info;
        s3m_object_head(key.store, obj, &info);
        const struct s3m_meta *meta = info.meta;
        for (size_t i = 0; rc == 0 && meta && i < meta->count; i++)
            rc = list_add(&buf, &len, &cap, USER_PREFIX, meta->entries[i].name);
        if (rc == 0)
            rc = list_add(&buf, &len, &cap, RESERVED_PREFIX, "content-type");
        if (rc == 0 && meta && meta->content_encoding)
            rc = list_add(&buf, &len, &cap, RESERVED_PREFIX, "content-encoding");
        s3m_object_info_release(&info);
        s3m_object_unref(obj);
    } else if (rc == -ENODATA) {
        rc = 0; /* an implicit directory or the root: nothing to list */
    }
    if (rc)
        fuse_reply_err(req, -rc);
    else
        reply_value(req, buf, len, size);
    free(buf);
}
