/*
 * files.c - the inodes of the live store's files: each is its object,
 * pinned once per kernel lookup (see the design note in fs_internal.h).
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "fs_internal.h"

struct s3m_object *fs_open_file(const struct fs_key *key, struct stat *st,
                                int *rc)
{
    struct s3m_object *obj = s3m_store_open(key->store, key->text, rc);
    if (!obj)
        return NULL;
    struct s3m_object_info info;
    s3m_object_head(key->store, obj, &info);
    fs_stat_from_info(&info, false, st);
    s3m_object_info_release(&info);
    st->st_ino = object_ino(obj);
    return obj;
}

fuse_ino_t fs_pin(struct s3m_fs *fs, struct s3m_object *obj, int *rc)
{
    bool first;
    *rc = s3m_object_pin(fs->store, obj, &first);
    return *rc ? 0 : object_ino(obj);
}

void fs_unpin(struct s3m_fs *fs, fuse_ino_t ino, uint64_t count)
{
    s3m_object_unpin(fs->store, ino_object(ino), count);
}

struct s3m_object *fs_file_object(struct s3m_fs *fs, fuse_ino_t ino, int *rc)
{
    struct s3m_object *obj = ino_object(ino);
    if (!s3m_object_attached(fs->store, obj) && !s3m_object_held(fs->store, obj)) {
        /* replaced or removed behind the kernel's back, and not open: the
         * kernel drops the name it holds and looks it up again */
        *rc = -ESTALE;
        return NULL;
    }
    *rc = 0;
    return s3m_object_ref(obj);
}

int fs_stat_object(struct s3m_fs *fs, fuse_ino_t ino, struct stat *st)
{
    /* no reference needed: the kernel holds a lookup of ino while it asks */
    struct s3m_object *obj = ino_object(ino);
    struct s3m_object_info info;
    s3m_object_head(fs->store, obj, &info);
    bool stale = !info.attached && !s3m_object_held(fs->store, obj);
    if (!stale)
        fs_stat_from_info(&info, false, st);
    s3m_object_info_release(&info);
    if (stale)
        return -ESTALE; /* as in fs_file_object */
    if (!info.attached)
        st->st_nlink = 0; /* no name leads to it any more */
    st->st_ino = ino;
    return 0;
}

void fs_reply_file_entry(struct s3m_fs *fs, fuse_req_t req,
                         struct s3m_object *obj, const struct stat *st)
{
    int rc;
    fuse_ino_t ino = fs_pin(fs, obj, &rc);
    if (!ino) {
        fuse_reply_err(req, -rc);
        return;
    }
    struct fuse_entry_param entry;
    memset(&entry, 0, sizeof(entry));
    entry.ino = ino;
    entry.attr = *st;
    entry.attr.st_ino = ino;
    entry.attr_timeout = fs->timeout;
    entry.entry_timeout = fs->timeout;
    if (fuse_reply_entry(req, &entry) != 0)
        fs_unpin(fs, ino, 1);
}
