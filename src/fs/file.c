/*
 * file.c - attributes and file data: getattr, setattr, open, create, read,
 * write, flush, fsync, release. An open file is a struct fs_file holding a
 * reference to its store object (fi->fh); reads reply straight from the
 * body's chunks (fuse_reply_iov) while holding a body reference.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fs_internal.h"

#define READ_IOV_MAX 64
#define WRITE_ANSWER_FIRST_MIN (64 * 1024)  /* bytes; see fs_op_write */

static struct fs_file *file_of(const struct fuse_file_info *fi)
{
    return fi ? (struct fs_file *)(uintptr_t)fi->fh : NULL;
}

/* The key of inode ino (a file key, or a directory prefix) and its kind. */
static int ino_key(struct s3m_fs *fs, fuse_ino_t ino, struct fs_key *key,
                   bool *is_dir)
{
    pthread_mutex_lock(&fs->lock);
    struct fs_node *node = node_by_ino(fs, ino);
    int rc = node ? node_key(fs, node, key) : -ENOENT;
    if (node)
        *is_dir = node->is_dir;
    pthread_mutex_unlock(&fs->lock);
    return rc;
}

/* fstat of a file that was unlinked or replaced while open: the kernel
 * asks without the handle, so the node's open object answers. */
static int stat_open_object(struct s3m_fs *fs, fuse_ino_t ino, struct stat *st)
{
    struct s3m_store *store;
    struct s3m_object *obj = node_open_object(fs, ino, &store);
    if (!obj)
        return -ENOENT;
    struct s3m_object_info info;
    s3m_object_head(store, obj, &info);
    fs_stat_from_info(&info, false, st);
    st->st_nlink = 0; /* no name leads to it any more */
    s3m_object_info_release(&info);
    s3m_object_unref(obj);
    return 0;
}

static int stat_ino(struct s3m_fs *fs, fuse_ino_t ino, struct fs_file *file,
                    struct stat *st)
{
    int rc = 0;
    if (file) {
        struct s3m_object_info info;
        s3m_object_head(file->store, file->obj, &info);
        fs_stat_from_info(&info, false, st);
        s3m_object_info_release(&info);
    } else if (ino_is_object(ino)) {
        return fs_stat_object(fs, ino, st);
    } else {
        struct fs_key key;
        bool is_dir = false;
        rc = ino_key(fs, ino, &key, &is_dir);
        if (rc == 0)
            rc = is_dir ? fs_stat_dir(fs, &key, st) : fs_stat_file(fs, &key, st);
        if (rc == -ENOENT && !is_dir)
            rc = stat_open_object(fs, ino, st);
        if (rc == -ENOENT && is_dir && fs_ghost(fs, ino)) {
            fs_stat_implicit_dir(fs, st);
            rc = 0;
        }
    }
    st->st_ino = ino;
    return rc;
}

void fs_op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct s3m_fs *fs = fuse_req_userdata(req);
    if (fs_control_node(fs, ino)) {
        fs_control_getattr(req, ino);
        return;
    }
    struct stat st;
    int rc = stat_ino(fs, ino, file_of(fi), &st);
    if (rc)
        fuse_reply_err(req, -rc);
    else
        fuse_reply_attr(req, &st, fs->timeout);
}

static int64_t time_ns(const struct timespec *ts)
{
    return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

static void attr_update_from(const struct stat *attr, int to_set,
                             struct s3m_attr_update *update)
{
    int64_t now = s3m_time_now_ns();
    memset(update, 0, sizeof(*update));
    if (to_set & FUSE_SET_ATTR_MODE) {
        update->flags |= S3M_ATTR_MODE;
        update->mode = attr->st_mode & 07777;
    }
    if (to_set & FUSE_SET_ATTR_UID) {
        update->flags |= S3M_ATTR_UID;
        update->uid = attr->st_uid;
    }
    if (to_set & FUSE_SET_ATTR_GID) {
        update->flags |= S3M_ATTR_GID;
        update->gid = attr->st_gid;
    }
    if (to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW)) {
        update->flags |= S3M_ATTR_MTIME;
        update->mtime_ns = (to_set & FUSE_SET_ATTR_MTIME_NOW) ? now
                                                              : time_ns(&attr->st_mtim);
    }
    if (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_ATIME_NOW)) {
        update->flags |= S3M_ATTR_ATIME;
        update->atime_ns = (to_set & FUSE_SET_ATTR_ATIME_NOW) ? now
                                                              : time_ns(&attr->st_atim);
    }
    if (to_set & FUSE_SET_ATTR_CTIME) {
        update->flags |= S3M_ATTR_CTIME;
        update->ctime_ns = time_ns(&attr->st_ctim);
    }
}

/* setattr on the root, whose attributes live in fs. */
static void set_root_attrs(struct s3m_fs *fs, const struct s3m_attr_update *u)
{
    pthread_mutex_lock(&fs->lock);
    if (u->flags & S3M_ATTR_MODE)
        fs->root_mode = u->mode;
    if (u->flags & S3M_ATTR_UID)
        fs->root_uid = u->uid;
    if (u->flags & S3M_ATTR_GID)
        fs->root_gid = u->gid;
    if (u->flags & S3M_ATTR_MTIME)
        fs->root_mtime_ns = u->mtime_ns;
    if (u->flags & S3M_ATTR_ATIME)
        fs->root_atime_ns = u->atime_ns;
    fs->root_ctime_ns = (u->flags & S3M_ATTR_CTIME) ? u->ctime_ns : s3m_time_now_ns();
    pthread_mutex_unlock(&fs->lock);
}

/* The object setattr changes: the open file's, or the key's (a directory's
 * marker is created when it is implicit). New reference or NULL (*root set
 * for the root, which has no object); *store is the object's store. */
static struct s3m_object *setattr_target(struct s3m_fs *fs, fuse_ino_t ino,
                                         struct fs_file *file, int to_set,
                                         struct s3m_store **store, bool *root,
                                         int *rc)
{
    *root = false;
    *rc = 0;
    if (file) {
        *store = file->store;
        *rc = file->readonly ? -EROFS : 0;
        return *rc ? NULL : s3m_object_ref(file->obj);
    }
    if (ino_is_object(ino)) {
        *store = fs->store;
        return fs_file_object(fs, ino, rc);
    }
    struct fs_key key;
    bool is_dir = false;
    *rc = ino_key(fs, ino, &key, &is_dir);
    if (*rc == -ENOENT && !is_dir) {
        struct s3m_object *obj = node_open_object(fs, ino, store);
        *rc = obj ? 0 : -ENOENT;
        return obj; /* fchmod and friends after unlink */
    }
    if (*rc == 0 && key.readonly)
        *rc = -EROFS;
    if (*rc == 0 && is_dir && (to_set & FUSE_SET_ATTR_SIZE))
        *rc = -EISDIR;
    if (*rc)
        return NULL;
    *store = key.store;
    if (is_dir && key.len == fs->key_prefix_len) {
        *root = true;
        return NULL;
    }
    if (is_dir && (*rc = fs_ensure_marker(fs, &key)) != 0)
        return NULL;
    return s3m_store_open(key.store, key.text, rc);
}

void fs_op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
                   int to_set, struct fuse_file_info *fi)
{
    struct s3m_fs *fs = fuse_req_userdata(req);
    if (fs_control_node(fs, ino)) {
        fs_control_setattr(req, ino, attr, to_set, fi);
        return;
    }
    struct s3m_attr_update update;
    struct s3m_store *store = NULL;
    bool root;
    int rc;
    attr_update_from(attr, to_set, &update);
    struct s3m_object *obj = setattr_target(fs, ino, file_of(fi), to_set,
                                            &store, &root, &rc);
    if (root)
        set_root_attrs(fs, &update);
    if (obj && (to_set & FUSE_SET_ATTR_SIZE))
        rc = s3m_object_truncate(store, obj, (uint64_t)attr->st_size);
    if (obj && rc == 0)
        rc = s3m_object_set_attrs(store, obj, &update);
    s3m_object_unref(obj);
    struct stat st;
    if (rc == 0)
        rc = stat_ino(fs, ino, file_of(fi), &st);
    if (rc) {
        if (rc == -EFBIG || rc == -ENOSPC)
            fs_log_refusal(fs, "truncate", "file", rc, rc == -EFBIG ?
                           "object over max_object_size" : "store over max_memory");
        fuse_reply_err(req, -rc);
    } else {
        fuse_reply_attr(req, &st, fs->timeout);
    }
}

/* New handle for obj (taken) of key's store, with the open flags applied. */
static int file_open(const struct fs_key *key, struct s3m_object *obj,
                     struct fuse_file_info *fi, bool timeout_caching)
{
    int rc = 0;
    bool writing = (fi->flags & O_ACCMODE) != O_RDONLY;
    if (writing && key->readonly)
        rc = -EROFS;
    else if ((fi->flags & O_TRUNC) && writing)
        rc = s3m_object_truncate(key->store, obj, 0);
    struct fs_file *file = rc ? NULL : s3m_calloc(1, sizeof(*file));
    if (!file) {
        s3m_object_unref(obj);
        return rc ? rc : -ENOMEM;
    }
    file->obj = obj;
    file->store = key->store;
    file->readonly = key->readonly;
    file->control_file = -1;
    fi->fh = (uint64_t)(uintptr_t)file;
    /* pages stay cached across opens only when the kernel caches at all;
     * control commands drop them (notify.c) */
    fi->keep_cache = timeout_caching;
    return 0;
}

static void file_destroy(struct fs_handle *handle)
{
    struct fs_file *file = (struct fs_file *)handle;
    s3m_object_unref(file->obj);
    free(file->text);
    free(file);
}

void fs_files_replaced(struct s3m_fs *fs,
                       void (*fn)(void *ctx, const char *key), void *ctx)
{
    char key[S3M_KEY_MAX + 1];
    for (struct fs_handle *h = fs->handles.next; h != &fs->handles; h = h->next) {
        struct fs_file *file = (struct fs_file *)h;
        if (h->destroy != file_destroy || !file->obj || file->store != fs->store ||
            s3m_object_attached(fs->store, file->obj))
            continue;
        if (s3m_object_key(fs->store, file->obj, key, sizeof(key)) >= 0)
            fn(ctx, key);
    }
}

void fs_file_track(struct s3m_fs *fs, struct fs_file *file)
{
    file->fs = fs;
    fs_handle_track(fs, &file->handle, file_destroy);
}

/* Counts the handle in ino's node (see node_opened; a file of the live
 * store has none: its inode is the object the handle holds) and tracks
 * it. */
static void file_attach(struct s3m_fs *fs, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct fs_file *file = file_of(fi);
    file->ino = ino_is_object(ino) ? 0 : ino;
    if (file->ino)
        node_opened(fs, ino, file->obj);
    fs_file_track(fs, file);
}

void fs_file_close(struct fuse_file_info *fi)
{
    struct fs_file *file = file_of(fi);
    if (!file)
        return;
    if (file->fs)
        fs_handle_untrack(file->fs, &file->handle);
    if (file->ino)
        node_closed(file->fs, file->ino);
    file_destroy(&file->handle);
    fi->fh = 0;
}

void fs_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct s3m_fs *fs = fuse_req_userdata(req);
    if (fs_control_node(fs, ino)) {
        fs_control_open(req, ino, fi);
        return;
    }
    struct fs_key key = {.store = fs->store};
    bool is_dir = false;
    int rc = 0;
    struct s3m_object *obj = NULL;
    if (ino_is_object(ino)) {
        obj = fs_file_object(fs, ino, &rc);
    } else {
        rc = ino_key(fs, ino, &key, &is_dir);
        if (rc == 0 && is_dir)
            rc = -EISDIR;
        if (rc == 0)
            obj = s3m_store_open(key.store, key.text, &rc);
    }
    if (obj)
        rc = file_open(&key, obj, fi, fs->timeout > 0);
    if (rc) {
        fuse_reply_err(req, -rc);
        return;
    }
    file_attach(fs, ino, fi);
    if (fuse_reply_open(req, fi) != 0)
        fs_file_close(fi);
}

void fs_op_create(fuse_req_t req, fuse_ino_t parent, const char *name,
                  mode_t mode, struct fuse_file_info *fi)
{
    struct s3m_fs *fs = fuse_req_userdata(req);
    struct fs_key key;
    struct stat pst, st;
    int rc = fs_control_parent(fs, parent, name) ? -EPERM
           : fs_prepare_new(fs, parent, name, false, &key, &pst, "create");
    if (rc == 0) {
        struct s3m_put_attrs attrs = {.mode = S_IFREG | (mode & 07777)};
        fs_new_owner(req, &pst, &attrs);
        rc = s3m_store_put(key.store, key.text, NULL, 0, &attrs, S3M_PUT_CREATE);
    }
    if (rc == -EEXIST && !(fi->flags & O_EXCL) && fs_kind_of(fs, &key) == S_IFREG)
        rc = 0; /* created meanwhile by another request: open it */
    struct s3m_object *obj = rc ? NULL : s3m_store_open(key.store, key.text, &rc);
    if (obj)
        rc = file_open(&key, obj, fi, fs->timeout > 0);
    if (rc == 0 && (rc = stat_ino(fs, 0, file_of(fi), &st)) != 0)
        fs_file_close(fi);
    fuse_ino_t ino = 0;
    if (rc == 0 && (ino = fs_pin(fs, file_of(fi)->obj, &rc)) == 0)
        fs_file_close(fi);
    if (rc) {
        fuse_reply_err(req, -rc);
        return;
    }
    file_attach(fs, ino, fi);
    fs_touch_dir(fs, parent);
    struct fuse_entry_param entry = {.ino = ino, .attr = st,
                                     .attr_timeout = fs->timeout,
                                     .entry_timeout = fs->timeout};
    entry.attr.st_ino = ino;
    if (fuse_reply_create(req, &entry, fi) != 0) {
        fs_unpin(fs, ino, 1);
        fs_file_close(fi);
    }
}

/* Replies with a copy when the range needs more iovecs than we keep. */
static void reply_copy(fuse_req_t req, struct s3m_body *body, size_t size,
                       off_t off)
{
    char *buffer = s3m_malloc(size ? size : 1);
    if (!buffer) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    size_t got = s3m_body_read(body, (uint64_t)off, buffer, size);
    fuse_reply_buf(req, buffer, got);
    free(buffer);
}

void fs_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                struct fuse_file_info *fi)
{
    struct fs_file *file = file_of(fi);
    if (file->control_file >= 0) {
        fs_control_read(req, file, size, off);
        return;
    }
    struct s3m_body *body = s3m_object_body(file->store, file->obj);
    struct iovec iov[READ_IOV_MAX];
    size_t total = 0;
    uint64_t body_size = s3m_body_size(body);
    size_t wanted = (uint64_t)off >= body_size ? 0
                  : (size_t)(body_size - (uint64_t)off < size ? body_size - (uint64_t)off : size);
    int count = s3m_body_iov(body, (uint64_t)off, size, iov, READ_IOV_MAX, &total);
    if (total < wanted)
        reply_copy(req, body, size, off);
    else
        fuse_reply_iov(req, iov, count);
    s3m_body_unref(body);
}

/* Answers a write the store refused, and logs why. */
static void write_refused(struct s3m_fs *fs, fuse_req_t req, fuse_ino_t ino,
                          int rc, const char *why)
{
    char what[32];
    snprintf(what, sizeof(what), "inode %lu", (unsigned long)ino);
    fs_log_refusal(fs, "write", what, rc, why);
    fuse_reply_err(req, -rc);
}

void fs_op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
                 off_t off, struct fuse_file_info *fi)
{
    struct s3m_fs *fs = fuse_req_userdata(req);
    struct fs_file *file = file_of(fi);
    if (file->control_file >= 0) {
        fs_control_write(req, file, buf, size);
        return;
    }
    struct s3m_write_hold hold;
    int rc = off < 0 ? -EINVAL
                     : s3m_object_write_begin(file->store, file->obj, (uint64_t)off,
                                              size, &hold);
    if (rc) {
        write_refused(fs, req, ino, rc,
                      rc == -EFBIG ? "object over max_object_size"
                      : rc == -ENOSPC ? "store over max_memory" : NULL);
        return;
    }
    /* A big write is answered before its bytes are copied: the writer fills
     * its next block while this one is copied, and no one sees the object
     * before the copy is done (begin returned holding the store's lock). A
     * small one is copied first: its copy costs less than holding the lock
     * over the answer. */
    if (size < WRITE_ANSWER_FIRST_MIN) {
        rc = s3m_object_write_end(&hold, buf);
        if (rc)
            write_refused(fs, req, ino, rc, "no memory for the chunk file");
        else
            fuse_reply_write(req, size);
        return;
    }
    fuse_reply_write(req, size);
    rc = s3m_object_write_end(&hold, buf);
    if (rc)
        s3m_log("write of %zu bytes at %lld to inode %lu lost after it was "
                "answered: %s (they read as zeros)", size, (long long)off,
                (unsigned long)ino, strerror(-rc));
}

/* Every write is already in the store, so close has nothing to flush.
 * ENOSYS tells the kernel so: close() still succeeds, and the kernel stops
 * sending FLUSH, saving a round trip on every close. */
void fs_op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    fuse_reply_err(req, ENOSYS);
}

void fs_op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
                 struct fuse_file_info *fi)
{
    fuse_reply_err(req, 0); /* memory is the medium: nothing to flush */
}

void fs_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    fs_file_close(fi);
    fuse_reply_err(req, 0);
}
