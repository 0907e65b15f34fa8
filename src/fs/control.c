/*
 * control.c - the .s3mem/ directory in the FUSE layer: its nodes, their
 * attributes, listings, and the files whose reads and writes go to the
 * control plane (ctl.h). .s3mem/snapshots/NAME/ is a read-only view of a
 * snapshot: its nodes are ordinary path nodes whose key resolves in the
 * snapshot's store (see node_dir_key).
 *
 * Control files are opened with direct_io: their size is not known ahead,
 * and every read must reach us. A write is one command, run at once, and
 * its errno goes back to the writer.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fs_internal.h"

#define SNAPSHOTS_NAME "snapshots"

static bool is_control_kind(int kind)
{
    return kind == NODE_CONTROL_DIR || kind == NODE_CONTROL_FILE ||
           kind == NODE_SNAPSHOTS_DIR;
}

bool fs_control_node(struct s3m_fs *fs, fuse_ino_t ino)
{
    if (ino == FS_ROOT_INO)
        return false;
    pthread_mutex_lock(&fs->lock);
    struct fs_node *node = node_by_ino(fs, ino);
    bool control = node && is_control_kind(node->kind);
    pthread_mutex_unlock(&fs->lock);
    return control;
}

bool fs_control_parent(struct s3m_fs *fs, fuse_ino_t parent, const char *name)
{
    if (parent == FS_ROOT_INO)
        return fs->ctl && strcmp(name, fs->control_dir) == 0;
    return fs_control_node(fs, parent);
}

int fs_node_kind_for(const struct s3m_fs *fs, const struct fs_node *parent,
                     const char *name, size_t len, uint8_t *control_file)
{
    *control_file = 0;
    if (parent == fs->root) {
        bool control = fs->ctl && len == strlen(fs->control_dir) &&
                       memcmp(name, fs->control_dir, len) == 0;
        return control ? NODE_CONTROL_DIR : NODE_PATH;
    }
    if (parent->kind == NODE_CONTROL_DIR) {
        if (len == strlen(SNAPSHOTS_NAME) && memcmp(name, SNAPSHOTS_NAME, len) == 0)
            return NODE_SNAPSHOTS_DIR;
        char copy[S3M_NAME_MAX + 1];
        snprintf(copy, sizeof(copy), "%.*s", (int)len, name);
        int file = s3m_ctl_file_find(copy);
        *control_file = file < 0 ? 0 : (uint8_t)file;
        return NODE_CONTROL_FILE;
    }
    if (parent->kind == NODE_SNAPSHOTS_DIR)
        return NODE_SNAPSHOT_ROOT;
    return NODE_PATH;
}

/* Attributes of a control node: directories 0755, command files 0644,
 * read-only files 0444, all owned by the mounting user. */
static void control_stat(struct s3m_fs *fs, int kind, int file, struct stat *st)
{
    bool dir = kind != NODE_CONTROL_FILE;
    uint32_t perms = dir ? 0755 : s3m_ctl_file_writable(file) ? 0644 : 0444;
    struct s3m_object_info info = {
        .mode = perms, .uid = fs->uid, .gid = fs->gid,
        .mtime_ns = fs->start_ns, .atime_ns = fs->start_ns, .ctime_ns = fs->start_ns,
    };
    fs_stat_from_info(&info, dir, st);
}

/* The kind and file of a control node, or -ENOENT. */
static int control_node_info(struct s3m_fs *fs, fuse_ino_t ino, int *kind, int *file)
{
    pthread_mutex_lock(&fs->lock);
    struct fs_node *node = node_by_ino(fs, ino);
    if (node) {
        *kind = node->kind;
        *file = node->control_file;
    }
    pthread_mutex_unlock(&fs->lock);
    return node ? 0 : -ENOENT;
}

void fs_control_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct s3m_fs *fs = fuse_req_userdata(req);
    int parent_kind = NODE_PATH, unused, rc = 0;
    struct s3m_snapshot *snapshot = NULL;
    struct stat st;
    if (parent != FS_ROOT_INO)
        rc = control_node_info(fs, parent, &parent_kind, &unused);
    if (rc == 0 && parent_kind == NODE_CONTROL_DIR && strcmp(name, SNAPSHOTS_NAME) != 0 &&
        s3m_ctl_file_find(name) < 0)
        rc = -ENOENT;
    if (rc == 0 && parent_kind == NODE_SNAPSHOTS_DIR &&
        !(snapshot = s3m_ctl_snapshot_find(fs->ctl, name)))
        rc = -ENOENT;
    if (rc == 0 && parent_kind == NODE_CONTROL_FILE)
        rc = -ENOTDIR;
    if (rc) {
        fuse_reply_err(req, -rc);
        return;
    }
    pthread_mutex_lock(&fs->lock);
    struct fs_node *pnode = node_by_ino(fs, parent);
    struct fs_node *node = NULL;
    if (pnode && snapshot) {
        struct fs_node *old = node_find(fs, pnode, name, strlen(name));
        if (old && old->snapshot != snapshot)
            node_unlink(fs, old); /* a dropped snapshot's view */
    }
    if (pnode)
        node = node_lookup(fs, pnode, name, strlen(name), parent_kind != NODE_CONTROL_DIR ||
                                                        s3m_ctl_file_find(name) < 0);
    if (node && snapshot && !node->snapshot) {
        node->snapshot = snapshot;
        snapshot = NULL;
    }
    int kind = node ? node->kind : 0, file = node ? node->control_file : 0;
    pthread_mutex_unlock(&fs->lock);
    s3m_snapshot_unref(snapshot);
    if (!node) {
        fuse_reply_err(req, pnode ? ENOMEM : ENOENT);
        return;
    }
    if (kind == NODE_SNAPSHOT_ROOT)
        fs_stat_implicit_dir(fs, &st);
    else
        control_stat(fs, kind, file, &st);
    fs_reply_entry(fs, req, node, &st);
}

void fs_control_getattr(fuse_req_t req, fuse_ino_t ino)
{
    struct s3m_fs *fs = fuse_req_userdata(req);
    int kind, file;
    struct stat st;
    int rc = control_node_info(fs, ino, &kind, &file);
    if (rc) {
        fuse_reply_err(req, -rc);
        return;
    }
    control_stat(fs, kind, file, &st);
    st.st_ino = ino;
    fuse_reply_attr(req, &st, fs->timeout);
}

void fs_control_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
                        int to_set, struct fuse_file_info *fi)
{
    /* a shell's "echo x > .s3mem/save" truncates first: allow size only */
    if (to_set & ~(FUSE_SET_ATTR_SIZE | FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_ATIME |
                   FUSE_SET_ATTR_MTIME_NOW | FUSE_SET_ATTR_ATIME_NOW |
                   FUSE_SET_ATTR_CTIME)) {
        fuse_reply_err(req, EPERM);
        return;
    }
    fs_control_getattr(req, ino);
}

static bool may_command(struct s3m_fs *fs, fuse_req_t req)
{
    const struct fuse_ctx *ctx = fuse_req_ctx(req);
    return ctx->uid == 0 || ctx->uid == fs->uid;
}

void fs_control_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct s3m_fs *fs = fuse_req_userdata(req);
    int kind, file;
    int rc = control_node_info(fs, ino, &kind, &file);
    bool writing = (fi->flags & O_ACCMODE) != O_RDONLY;
    if (rc == 0 && kind != NODE_CONTROL_FILE)
        rc = -EISDIR;
    if (rc == 0 && writing && !s3m_ctl_file_writable(file))
        rc = -EACCES;
    if (rc == 0 && writing && !may_command(fs, req)) {
        fs_log_refusal(fs, "open", s3m_ctl_file_name(file), -EACCES,
                       "only the mounting user and root may run commands");
        rc = -EACCES;
    }
    struct fs_file *handle = rc ? NULL : s3m_calloc(1, sizeof(*handle));
    if (rc == 0 && !handle)
        rc = -ENOMEM;
    if (rc == 0) {
        handle->control_file = file;
        if (!writing)
            rc = s3m_ctl_read(fs->ctl, file, &handle->text, &handle->text_len);
    }
    if (rc) {
        free(handle);
        fuse_reply_err(req, -rc);
        return;
    }
    fi->fh = (uint64_t)(uintptr_t)handle;
    fi->direct_io = 1;
    fs_file_track(fs, handle);
    if (fuse_reply_open(req, fi) != 0)
        fs_file_close(fi);
}

/* Replies from a copy: once the reply is written, the reader may close the
 * file and another thread free the handle's text while this call still
 * returns through fuse_reply_buf. */
void fs_control_read(fuse_req_t req, struct fs_file *file, size_t size, off_t off)
{
    if (off < 0 || (size_t)off >= file->text_len) {
        fuse_reply_buf(req, NULL, 0);
        return;
    }
    size_t left = file->text_len - (size_t)off;
    size_t len = size < left ? size : left;
    char *copy = s3m_memdup(file->text + off, len);
    if (!copy) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    fuse_reply_buf(req, copy, len);
    free(copy);
}

void fs_control_write(fuse_req_t req, struct fs_file *file, const char *buf,
                      size_t size)
{
    struct s3m_fs *fs = fuse_req_userdata(req);
    int rc = s3m_ctl_command(fs->ctl, file->control_file, buf, size);
    if (rc)
        fuse_reply_err(req, -rc);
    else
        fuse_reply_write(req, size);
}

int fs_control_list(struct s3m_fs *fs, fuse_ino_t ino,
                    int (*add)(void *ctx, const char *name, bool is_dir,
                               const struct stat *st),
                    void *ctx)
{
    int kind, file, rc = control_node_info(fs, ino, &kind, &file);
    struct stat st;
    if (rc == 0 && kind == NODE_CONTROL_DIR) {
        for (int i = 0; rc == 0 && i < S3M_CTL_FILE_COUNT; i++) {
            control_stat(fs, NODE_CONTROL_FILE, i, &st);
            rc = add(ctx, s3m_ctl_file_name(i), false, &st);
        }
        control_stat(fs, NODE_SNAPSHOTS_DIR, 0, &st);
        if (rc == 0)
            rc = add(ctx, SNAPSHOTS_NAME, true, &st);
    } else if (rc == 0 && kind == NODE_SNAPSHOTS_DIR) {
        size_t count;
        char **names = s3m_ctl_snapshot_names(fs->ctl, &count);
        fs_stat_implicit_dir(fs, &st);
        for (size_t i = 0; names && i < count; i++) {
            if (rc == 0)
                rc = add(ctx, names[i], true, &st);
            free(names[i]);
        }
        if (!names)
            rc = -ENOMEM;
        free(names);
    } else if (rc == 0) {
        rc = -ENOTDIR;
    }
    return rc;
}

/* mkdir .s3mem/snapshots/NAME takes a snapshot; rmdir drops it. */
void fs_control_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct s3m_fs *fs = fuse_req_userdata(req);
    int kind = NODE_CONTROL_DIR, file;
    if (parent != FS_ROOT_INO)
        control_node_info(fs, parent, &kind, &file);
    int rc = parent == FS_ROOT_INO ? -EEXIST : kind != NODE_SNAPSHOTS_DIR ? -EPERM
           : !may_command(fs, req) ? -EACCES
           : s3m_ctl_command(fs->ctl, S3M_CTL_SNAPSHOT, name, strlen(name));
    if (rc) {
        fuse_reply_err(req, -rc);
        return;
    }
    fs_control_lookup(req, parent, name);
}

void fs_control_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct s3m_fs *fs = fuse_req_userdata(req);
    int kind = NODE_CONTROL_DIR, file;
    if (parent != FS_ROOT_INO)
        control_node_info(fs, parent, &kind, &file);
    int rc = kind != NODE_SNAPSHOTS_DIR ? -EPERM
           : !may_command(fs, req) ? -EACCES
           : s3m_ctl_snapshot_drop(fs->ctl, name);
    if (rc == 0)
        fs_unlink_name(fs, parent, name);
    fuse_reply_err(req, -rc);
}
