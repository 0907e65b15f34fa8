/*
 * dir.c - the namespace handlers: lookup, forget, mkdir, rmdir, unlink,
 * rename. Each replies exactly once; fs->lock is never held while replying.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "fs_internal.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

/* The file key of (parent, name): parent's directory prefix + name. */
static int child_key(struct s3m_fs *fs, fuse_ino_t parent, const char *name,
                     struct fs_key *key)
{
    pthread_mutex_lock(&fs->lock);
    struct fs_node *node = node_by_ino(fs, parent);
    int rc = node ? node_dir_key(fs, node, key) : -ENOENT;
    pthread_mutex_unlock(&fs->lock);
    if (rc == 0)
        rc = key_append(key, name, strlen(name), false);
    return rc;
}

void fs_reply_new_entry(struct s3m_fs *fs, fuse_req_t req, fuse_ino_t parent,
                            const char *name, bool is_dir, const struct stat *st)
{
    pthread_mutex_lock(&fs->lock);
    struct fs_node *pnode = node_by_ino(fs, parent);
    struct fs_node *node = pnode ? node_lookup(fs, pnode, name, strlen(name), is_dir)
                                 : NULL;
    pthread_mutex_unlock(&fs->lock);
    if (!node) {
        fuse_reply_err(req, pnode ? ENOMEM : ENOENT);
        return;
    }
    fs_reply_entry(fs, req, node, st);
}

void fs_mark_ghosts(struct s3m_fs *fs, fuse_ino_t parent)
{
    uint64_t epoch = s3m_store_epoch(fs->store) + 1;
    /* fs->lock held throughout: the walk keeps node pointers */
    pthread_mutex_lock(&fs->lock);
    for (struct fs_node *node = node_by_ino(fs, parent); node && node != fs->root;
         node = node->parent) {
        struct fs_key key;
        if (node->kind != NODE_PATH || !node->is_dir ||
            node_dir_key(fs, node, &key) != 0 || key.readonly ||
            s3m_store_has_prefix(key.store, key.text))
            break;
        node->ghost_epoch = epoch;
    }
    pthread_mutex_unlock(&fs->lock);
}

/* True when node is an implicit directory that vanished through a request
 * of ours in the current epoch (fs->lock held). */
static bool node_is_ghost(struct s3m_fs *fs, const struct fs_node *node)
{
    return node->kind == NODE_PATH && node->is_dir && node->linked &&
           node->ghost_epoch == s3m_store_epoch(fs->store) + 1;
}

bool fs_ghost(struct s3m_fs *fs, fuse_ino_t ino)
{
    pthread_mutex_lock(&fs->lock);
    struct fs_node *node = node_by_ino(fs, ino);
    bool ghost = node && node_is_ghost(fs, node);
    pthread_mutex_unlock(&fs->lock);
    return ghost;
}

/* True when the kernel knows (parent, name) as a ghost directory. */
static bool known_ghost(struct s3m_fs *fs, fuse_ino_t parent, const char *name)
{
    pthread_mutex_lock(&fs->lock);
    struct fs_node *pnode = node_by_ino(fs, parent);
    struct fs_node *node = pnode ? node_find(fs, pnode, name, strlen(name)) : NULL;
    bool ghost = node && node_is_ghost(fs, node);
    pthread_mutex_unlock(&fs->lock);
    return ghost;
}

/* Stats whatever (file or directory) key names; sets *is_dir, and *obj
 * (a new reference) for a file of the live store. */
static int stat_key(struct s3m_fs *fs, struct fs_key *key, bool *is_dir,
                    struct stat *st, struct s3m_object **obj)
{
    int kind = fs_kind_of(fs, key);
    if (kind == 0)
        return -ENOENT;
    *is_dir = kind == S_IFDIR;
    int rc = 0;
    if (!*is_dir && !key->readonly)
        *obj = fs_open_file(key, st, &rc);
    else if (!*is_dir)
        rc = fs_stat_file(fs, key, st);
    if (!*is_dir)
        return rc;
    rc = key_append(key, "", 0, true);
    return rc ? rc : fs_stat_dir(fs, key, st);
}

void fs_op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct s3m_fs *fs = fuse_req_userdata(req);
    if (fs_control_parent(fs, parent, name)) {
        fs_control_lookup(req, parent, name);
        return;
    }
    size_t len = strlen(name);
    struct fs_key key;
    struct stat st;
    struct s3m_object *obj = NULL;
    bool is_dir = false;
    int rc = len > S3M_NAME_MAX ? -ENAMETOOLONG : 0;
    if (rc == 0 && !s3m_path_segment_ok(name, len))
        rc = -ENOENT;
    if (rc == 0)
        rc = child_key(fs, parent, name, &key);
    if (rc == 0)
        rc = stat_key(fs, &key, &is_dir, &st, &obj);
    if (obj) {
        fs_reply_file_entry(fs, req, obj, &st);
        s3m_object_unref(obj);
        return;
    }
    if (rc == -ENOENT && known_ghost(fs, parent, name)) {
        fs_stat_implicit_dir(fs, &st);
        is_dir = true;
        rc = 0;
    }
    if (rc) {
        fuse_reply_err(req, -rc);
        return;
    }
    fs_reply_new_entry(fs, req, parent, name, is_dir, &st);
}

void fs_op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
    struct s3m_fs *fs = fuse_req_userdata(req);
    if (ino_is_object(ino)) {
        fs_unpin(fs, ino, nlookup);
        fuse_reply_none(req);
        return;
    }
    pthread_mutex_lock(&fs->lock);
    struct fs_node *node = node_by_ino(fs, ino);
    if (node)
        node_forget(fs, node, nlookup);
    pthread_mutex_unlock(&fs->lock);
    fuse_reply_none(req);
}

void fs_op_forget_multi(fuse_req_t req, size_t count,
                        struct fuse_forget_data *forgets)
{
    struct s3m_fs *fs = fuse_req_userdata(req);
    for (size_t i = 0; i < count; i++)
        if (ino_is_object(forgets[i].ino))
            fs_unpin(fs, forgets[i].ino, forgets[i].nlookup);
    pthread_mutex_lock(&fs->lock);
    for (size_t i = 0; i < count; i++) {
        struct fs_node *node = node_by_ino(fs, forgets[i].ino);
        if (node)
            node_forget(fs, node, forgets[i].nlookup);
    }
    pthread_mutex_unlock(&fs->lock);
    fuse_reply_none(req);
}

int fs_prepare_new(struct s3m_fs *fs, fuse_ino_t parent, const char *name,
                   bool is_dir, struct fs_key *key, struct stat *pst,
                   const char *op)
{
    pthread_mutex_lock(&fs->lock);
    struct fs_node *node = node_by_ino(fs, parent);
    int rc = node ? node_dir_key(fs, node, key) : -ENOENT;
    pthread_mutex_unlock(&fs->lock);
    if (rc)
        return rc;
    if (fs_dir_attrs(fs, key, pst)) {
        if (!fs_ghost(fs, parent))
            return -ENOENT; /* the parent vanished */
        fs_stat_implicit_dir(fs, pst); /* a new entry brings it back */
    }
    if (key->readonly)
        return -EROFS;
    size_t len = strlen(name);
    rc = s3m_path_check_new(name, len, key->len, is_dir);
    if (rc) {
        const char *why = rc == -EILSEQ ? "name is not valid UTF-8"
                        : rc == -ENAMETOOLONG ? "key would exceed 1024 bytes or name 255"
                        : "not a valid name";
        char what[sizeof(key->text) + S3M_NAME_MAX + 8];
        snprintf(what, sizeof(what), "%s%.*s", key->text, (int)len, name);
        fs_log_refusal(fs, op, what, rc, why);
        return rc;
    }
    rc = key_append(key, name, len, false);
    if (rc == 0 && fs_kind_of(fs, key))
        rc = -EEXIST;
    return rc;
}

void fs_new_owner(fuse_req_t req, const struct stat *pst,
                  struct s3m_put_attrs *attrs)
{
    const struct fuse_ctx *ctx = fuse_req_ctx(req);
    attrs->has_owner = true;
    attrs->uid = ctx->uid;
    attrs->gid = (pst->st_mode & S_ISGID) ? pst->st_gid : ctx->gid;
}

void fs_op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
                 mode_t mode)
{
    struct s3m_fs *fs = fuse_req_userdata(req);
    if (fs_control_parent(fs, parent, name)) {
        fs_control_mkdir(req, parent, name);
        return;
    }
    struct fs_key key;
    struct stat pst, st;
    int rc = fs_prepare_new(fs, parent, name, true, &key, &pst, "mkdir");
    if (rc == 0)
        rc = key_append(&key, "", 0, true);
    if (rc == 0) {
        struct s3m_put_attrs attrs = {.mode = S_IFDIR | (mode & 07777)};
        fs_new_owner(req, &pst, &attrs);
        if (pst.st_mode & S_ISGID)
            attrs.mode |= S_ISGID;
        rc = s3m_store_put(key.store, key.text, NULL, 0, &attrs, S3M_PUT_CREATE);
    }
    if (rc == 0)
        rc = fs_stat_dir(fs, &key, &st);
    if (rc) {
        fuse_reply_err(req, -rc);
        return;
    }
    fs_touch_dir(fs, parent);
    fs_reply_new_entry(fs, req, parent, name, true, &st);
}

void fs_unlink_name(struct s3m_fs *fs, fuse_ino_t parent, const char *name)
{
    pthread_mutex_lock(&fs->lock);
    struct fs_node *pnode = node_by_ino(fs, parent);
    struct fs_node *node = pnode ? node_find(fs, pnode, name, strlen(name)) : NULL;
    if (node)
        node_unlink(fs, node);
    pthread_mutex_unlock(&fs->lock);
}

/* True when the kernel knows (parent, name) as a directory. */
static bool known_directory(struct s3m_fs *fs, fuse_ino_t parent, const char *name)
{
    pthread_mutex_lock(&fs->lock);
    struct fs_node *pnode = node_by_ino(fs, parent);
    struct fs_node *node = pnode ? node_find(fs, pnode, name, strlen(name)) : NULL;
    bool known = node && node->is_dir;
    pthread_mutex_unlock(&fs->lock);
    return known;
}

void fs_op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct s3m_fs *fs = fuse_req_userdata(req);
    if (fs_control_parent(fs, parent, name)) {
        fs_control_rmdir(req, parent, name);
        return;
    }
    struct fs_key key;
    int rc = child_key(fs, parent, name, &key);
    struct fs_key file_key = key;
    if (rc == 0 && key.readonly)
        rc = -EROFS;
    if (rc == 0)
        rc = key_append(&key, "", 0, true);
    if (rc == 0)
        rc = s3m_store_delete_marker(key.store, key.text);
    if (rc == -ENOENT && fs_kind_of(fs, &file_key) == S_IFREG)
        rc = -ENOTDIR;
    else if (rc == -ENOENT && known_directory(fs, parent, name))
        rc = 0; /* an implicit directory that vanished with its last key
                 * (rm -r emptied it): it is gone, as rmdir wanted */
    if (rc == 0) {
        fs_unlink_name(fs, parent, name);
        fs_touch_dir(fs, parent);
        fs_mark_ghosts(fs, parent);
    }
    fuse_reply_err(req, -rc);
}

void fs_op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct s3m_fs *fs = fuse_req_userdata(req);
    struct fs_key key;
    int rc = fs_control_parent(fs, parent, name) ? -EPERM
                                                 : child_key(fs, parent, name, &key);
    if (rc == 0 && key.readonly)
        rc = -EROFS;
    if (rc == 0 && fs_kind_of(fs, &key) == S_IFDIR)
        rc = -EISDIR;
    if (rc == 0)
        rc = s3m_store_delete(key.store, key.text);
    if (rc == 0) {
        fs_unlink_name(fs, parent, name);
        fs_touch_dir(fs, parent);
        fs_mark_ghosts(fs, parent);
    }
    fuse_reply_err(req, -rc);
}

/* Renames a directory prefix: dst must not exist or be an empty directory. */
static int rename_dir(struct s3m_fs *fs, struct fs_key *src, struct fs_key *dst,
                      int dst_kind, bool noreplace)
{
    if (dst_kind == S_IFREG)
        return -ENOTDIR;
    int rc = key_append(src, "", 0, true);
    if (rc == 0)
        rc = key_append(dst, "", 0, true);
    if (rc)
        return rc;
    if (dst_kind == S_IFDIR) {
        if (noreplace)
            return -EEXIST;
        rc = s3m_store_delete_marker(dst->store, dst->text);
        if (rc && rc != -ENOENT)
            return rc;
    }
    return s3m_store_move_prefix(src->store, src->text, dst->text, NULL);
}

/* Renames src to dst; *src_kind receives what src was. */
static int rename_keys(struct s3m_fs *fs, struct fs_key *src, struct fs_key *dst,
                       unsigned flags, int *src_kind_out)
{
    bool noreplace = flags & RENAME_NOREPLACE;
    if (src->readonly || dst->readonly)
        return -EROFS;
    if (src->store != dst->store)
        return -EXDEV;
    int src_kind = fs_kind_of(fs, src);
    int dst_kind = fs_kind_of(fs, dst);
    *src_kind_out = src_kind;
    if (src_kind == 0)
        return -ENOENT;
    if (src_kind == S_IFDIR)
        return rename_dir(fs, src, dst, dst_kind, noreplace);
    if (dst_kind == S_IFDIR)
        return -EISDIR;
    return s3m_store_move(src->store, src->text, dst->text, noreplace);
}

void fs_op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
                  fuse_ino_t newparent, const char *newname, unsigned flags)
{
    struct s3m_fs *fs = fuse_req_userdata(req);
    struct fs_key src = {.len = 0}, dst;
    if (fs_control_parent(fs, parent, name) ||
        fs_control_parent(fs, newparent, newname)) {
        fuse_reply_err(req, EPERM);
        return;
    }
    if (flags & ~(unsigned)RENAME_NOREPLACE) {
        fs_log_refusal(fs, "rename", name, -EINVAL, "only RENAME_NOREPLACE is supported");
        fuse_reply_err(req, EINVAL);
        return;
    }
    size_t newlen = strlen(newname);
    int src_kind = 0;
    pthread_mutex_lock(&fs->lock);
    struct fs_node *from = node_by_ino(fs, parent);
    struct fs_node *to = node_by_ino(fs, newparent);
    int rc = from && to ? node_dir_key(fs, from, &src) : -ENOENT;
    if (rc == 0)
        rc = node_dir_key(fs, to, &dst);
    if (rc == 0)
        rc = s3m_path_check_new(newname, newlen, dst.len, false);
    if (rc == 0)
        rc = key_append(&src, name, strlen(name), false);
    if (rc == 0)
        rc = key_append(&dst, newname, newlen, false);
    if (rc == 0)
        rc = rename_keys(fs, &src, &dst, flags, &src_kind);
    if (rc == 0) {
        /* a file of the live store has no node: its object moved */
        struct fs_node *replaced = node_find(fs, to, newname, newlen);
        struct fs_node *moved = src_kind == S_IFDIR
                              ? node_find(fs, from, name, strlen(name)) : NULL;
        if (replaced && replaced != moved)
            node_unlink(fs, replaced);
        if (moved)
            rc = node_move(fs, moved, to, newname, newlen);
        if (rc && moved)
            node_unlink(fs, moved); /* no memory: the kernel looks it up again */
        rc = 0;
    }
    pthread_mutex_unlock(&fs->lock);
    if (rc == 0) {
        fs_touch_dir(fs, parent);
        if (newparent != parent)
            fs_touch_dir(fs, newparent);
        fs_mark_ghosts(fs, parent);
    }
    if (rc && rc != -ENOENT && rc != -EEXIST && rc != -ENOTEMPTY)
        fs_log_refusal(fs, "rename", src.text, rc, NULL);
    fuse_reply_err(req, -rc);
}
