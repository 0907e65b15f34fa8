/*
 * object.c - operations on an open object (a FUSE file handle's view): the
 * handle holds a reference, so the object outlives a delete or a move, as an
 * open file outlives unlink and rename.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "internal.h"
#include "s3mem/util.h"

struct s3m_object *s3m_store_open(struct s3m_store *store, const char *key,
                                  int *rc)
{
    size_t len = strlen(key);
    store_read_lock(store);
    struct s3m_object *obj = index_find(store, key, len, s3m_hash(key, len));
    if (obj)
        s3m_object_ref(obj);
    store_unlock(store);
    *rc = obj ? 0 : -ENOENT;
    return obj;
}

struct s3m_body *s3m_store_peek_body(struct s3m_store *store, const char *key,
                                     size_t key_len)
{
    store_read_lock(store);
    struct s3m_object *obj = index_find(store, key, key_len,
                                        s3m_hash(key, key_len));
    struct s3m_body *body = obj ? s3m_body_ref(obj->body) : NULL;
    store_unlock(store);
    return body;
}

int s3m_object_head(struct s3m_store *store, struct s3m_object *obj,
                    struct s3m_object_info *info)
{
    store_read_lock(store);
    object_fill_info(obj, info);
    store_unlock(store);
    return 0;
}

struct s3m_body *s3m_object_body(struct s3m_store *store, struct s3m_object *obj)
{
    store_read_lock(store);
    struct s3m_body *body = s3m_body_ref(obj->body);
    store_unlock(store);
    atomic_fetch_add_explicit(&store->reads, 1, memory_order_relaxed);
    return body;
}

/* Runs a body change under the write lock, keeping total_size and the times
 * right: a truncate to `offset`, or the first step of a write of len bytes
 * there (body_write_begin), after which the lock stays held on success. */
static int change_body(struct s3m_store *store, struct s3m_object *obj,
                       bool write, uint64_t offset, size_t len)
{
    const struct s3m_store_config *config = &store->config;
    uint64_t end = write ? offset + len : offset;
    if (config->enforce_limits && end > config->max_object_size)
        return -EFBIG;
    store_write_lock(store);
    uint64_t before = s3m_body_size(obj->body);
    /* max_memory is checked against the bytes a write adds past the end;
     * overwrites and truncates may go on when the store is full */
    uint64_t growth = write && end > before ? end - before : 0;
    if (growth > len)
        growth = len; /* a hole costs nothing */
    int rc = 0;
    if (memory_over(config, growth))
        rc = -ENOSPC;
    else if (write)
        rc = body_write_begin(&obj->body, offset, len);
    else
        rc = body_truncate(&obj->body, offset);
    if (rc == 0) {
        if (obj->attached)
            store->total_size += s3m_body_size(obj->body) - before;
        obj->mtime_ns = obj->ctime_ns = s3m_time_now_ns();
        STORE_CHANGED(store);
    }
    if (rc || !write)
        store_unlock(store);
    atomic_fetch_add_explicit(&store->writes, 1, memory_order_relaxed);
    return rc;
}

int s3m_object_write_begin(struct s3m_store *store, struct s3m_object *obj,
                           uint64_t offset, size_t len,
                           struct s3m_write_hold *hold)
{
    *hold = (struct s3m_write_hold){store, obj, offset, len};
    if (offset + len < offset)
        return -EFBIG;
    int rc = 0;
    if (len == 0)
        store_write_lock(store);   /* nothing changes; end unlocks */
    else
        rc = change_body(store, obj, true, offset, len);
    if (rc == 0)
        s3m_object_ref(obj);       /* the caller's may go once it answers */
    return rc;
}

int s3m_object_write_end(struct s3m_write_hold *hold, const void *data)
{
    int rc = body_write_fill(hold->obj->body, hold->offset, data, hold->len);
    store_unlock(hold->store);
    s3m_object_unref(hold->obj);
    return rc;
}

int s3m_object_write(struct s3m_store *store, struct s3m_object *obj,
                     uint64_t offset, const void *data, size_t len)
{
    struct s3m_write_hold hold;
    int rc = s3m_object_write_begin(store, obj, offset, len, &hold);
    return rc ? rc : s3m_object_write_end(&hold, data);
}

int s3m_object_truncate(struct s3m_store *store, struct s3m_object *obj,
                        uint64_t size)
{
    return change_body(store, obj, false, size, 0);
}

int s3m_object_set_attrs(struct s3m_store *store, struct s3m_object *obj,
                         const struct s3m_attr_update *update)
{
    int64_t now = s3m_time_now_ns();
    store_write_lock(store);
    if (update->flags & S3M_ATTR_MODE)
        obj->mode = (obj->mode & S_IFMT) | (update->mode & 07777);
    if (update->flags & S3M_ATTR_UID)
        obj->uid = update->uid;
    if (update->flags & S3M_ATTR_GID)
        obj->gid = update->gid;
    if (update->flags & S3M_ATTR_MTIME)
        obj->mtime_ns = update->mtime_ns;
    if (update->flags & S3M_ATTR_ATIME)
        obj->atime_ns = update->atime_ns;
    obj->ctime_ns = (update->flags & S3M_ATTR_CTIME) ? update->ctime_ns : now;
    STORE_CHANGED(store);
    store_unlock(store);
    return 0;
}

int s3m_object_replace_meta(struct s3m_store *store, struct s3m_object *obj,
                            const struct s3m_meta *expected,
                            const struct s3m_meta *meta)
{
    const struct s3m_store_config *config = &store->config;
    if (config->enforce_limits && s3m_meta_size(meta) > config->metadata_limit)
        return -ENOSPC;
    struct s3m_meta *old = NULL;
    int rc = 0;
    store_write_lock(store);
    if (obj->meta != expected) {
        rc = -EAGAIN;
    } else {
        old = obj->meta;
        obj->meta = s3m_meta_ref((struct s3m_meta *)meta);
        obj->mtime_ns = obj->ctime_ns = s3m_time_now_ns();
        STORE_CHANGED(store);
    }
    store_unlock(store);
    s3m_meta_unref(old);
    return rc;
}

int s3m_object_set_meta(struct s3m_store *store, struct s3m_object *obj,
                        const struct s3m_meta *meta)
{
    struct s3m_object_info info;
    int rc;
    do {
        s3m_object_head(store, obj, &info);
        rc = s3m_object_replace_meta(store, obj, info.meta, meta);
        s3m_object_info_release(&info);
    } while (rc == -EAGAIN);
    return rc;
}

int s3m_object_etag(struct s3m_store *store, struct s3m_object *obj,
                    char out[33])
{
    struct s3m_body *body = s3m_object_body(store, obj);
    body_etag(body, out);
    s3m_body_unref(body);
    return 0;
}

bool s3m_object_attached(struct s3m_store *store, struct s3m_object *obj)
{
    store_read_lock(store);
    bool attached = obj->attached;
    store_unlock(store);
    return attached;
}

int s3m_object_key(struct s3m_store *store, struct s3m_object *obj, char *out,
                   size_t cap)
{
    store_read_lock(store);
    size_t len = obj->key_len;
    if (len < cap)
        memcpy(out, object_key(obj), len + 1);
    store_unlock(store);
    return len < cap ? (int)len : -ENAMETOOLONG;
}

bool s3m_object_held(struct s3m_store *store, struct s3m_object *obj)
{
    store_read_lock(store);
    unsigned refs = atomic_load_explicit(&obj->refcount, memory_order_acquire);
    unsigned own = (obj->attached ? 1u : 0u) + (atomic_load(&obj->pins) ? 1u : 0u);
    store_unlock(store);
    return refs > own;
}
