/*
 * readdir.c - directory handles. opendir snapshots the directory's entries
 * (names, kinds and attributes) into the handle, so readdir pages through a
 * stable list: offset cookie = index + 1. readdirplus counts a lookup for
 * each entry that fits in the reply, never for "." and "..".
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fs_internal.h"

struct dir_entry {
    char *name;                    /* owned */
    bool is_dir;
    struct stat st;
};

struct dir_handle {
    struct fs_handle link;         /* first: on fs's handle list */
    struct s3m_fs *fs;             /* borrowed */
    bool control;                  /* a .s3mem directory: no lookups counted */
    struct dir_entry *entries;     /* owned */
    size_t count;
    size_t capacity;
};

static struct dir_handle *handle_of(const struct fuse_file_info *fi)
{
    return (struct dir_handle *)(uintptr_t)fi->fh;
}

static void handle_free(struct dir_handle *handle)
{
    if (!handle)
        return;
    if (handle->fs)
        fs_handle_untrack(handle->fs, &handle->link);
    for (size_t i = 0; i < handle->count; i++)
        free(handle->entries[i].name);
    free(handle->entries);
    free(handle);
}

static void handle_destroy(struct fs_handle *link)
{
    struct dir_handle *handle = (struct dir_handle *)link;
    handle->fs = NULL; /* already off the list */
    handle_free(handle);
}

static int handle_add(struct dir_handle *handle, const char *name, size_t len,
                      bool is_dir, const struct stat *st)
{
    if (handle->count == handle->capacity) {
        size_t capacity = handle->capacity ? handle->capacity * 2 : 32;
        struct dir_entry *entries = s3m_realloc(handle->entries,
                                                capacity * sizeof(*entries));
        if (!entries)
            return -ENOMEM;
        handle->entries = entries;
        handle->capacity = capacity;
    }
    char *copy = s3m_strndup(name, len);
    if (!copy)
        return -ENOMEM;
    struct dir_entry *entry = &handle->entries[handle->count++];
    entry->name = copy;
    entry->is_dir = is_dir;
    entry->st = *st;
    return 0;
}

static int add_control_entry(void *ctx, const char *name, bool is_dir,
                             const struct stat *st)
{
    return handle_add(ctx, name, strlen(name), is_dir, st);
}

struct collect {
    struct s3m_fs *fs;
    struct dir_handle *handle;
    bool at_root;
};

static int collect_entry(void *ctx, const struct s3m_level_entry *e)
{
    struct collect *c = ctx;
    if (!s3m_path_segment_ok(e->name, e->name_len) || e->shadowed)
        return 0; /* not showable: listed in .s3mem/shadowed */
    if (c->at_root && e->name_len == strlen(c->fs->control_dir) &&
        memcmp(e->name, c->fs->control_dir, e->name_len) == 0)
        return 0; /* hidden by the control directory */
    struct stat st;
    if (e->info)
        fs_stat_from_info(e->info, e->is_prefix, &st);
    else
        fs_stat_implicit_dir(c->fs, &st);
    st.st_ino = 0;
    return handle_add(c->handle, e->name, e->name_len, e->is_prefix, &st);
}

void fs_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct s3m_fs *fs = fuse_req_userdata(req);
    struct fs_key key;
    pthread_mutex_lock(&fs->lock);
    struct fs_node *node = node_by_ino(fs, ino);
    bool control = node && node->kind != NODE_PATH && node->kind != NODE_SNAPSHOT_ROOT;
    int rc = !node ? -ENOENT : control ? 0 : node_dir_key(fs, node, &key);
    fuse_ino_t parent = node && node->parent ? node_ino(node->parent) : ino;
    pthread_mutex_unlock(&fs->lock);
    struct dir_handle *handle = rc ? NULL : s3m_calloc(1, sizeof(*handle));
    struct stat st;
    if (!rc && !handle)
        rc = -ENOMEM;
    if (rc == 0 && control)
        fs_stat_implicit_dir(fs, &st);
    else if (rc == 0)
        rc = fs_stat_dir(fs, &key, &st);
    if (rc == -ENOENT && fs_ghost(fs, ino)) {
        fs_stat_implicit_dir(fs, &st); /* emptied a moment ago: empty */
        rc = 0;
    }
    if (rc == 0) {
        st.st_ino = ino;
        rc = handle_add(handle, ".", 1, true, &st);
    }
    if (rc == 0) {
        st.st_ino = parent;
        rc = handle_add(handle, "..", 2, true, &st);
    }
    struct collect c = {fs, handle, ino == FS_ROOT_INO};
    if (rc == 0 && c.at_root && fs->ctl) {
        st.st_ino = 0;
        rc = handle_add(handle, fs->control_dir, strlen(fs->control_dir), true, &st);
    }
    if (rc == 0 && control) {
        handle->control = true;
        rc = fs_control_list(fs, ino, add_control_entry, handle);
    }
    else if (rc == 0)
        rc = s3m_store_list_level(key.store, key.text, '/', collect_entry, &c);
    if (rc) {
        handle_free(handle);
        fuse_reply_err(req, -rc);
        return;
    }
    fi->fh = (uint64_t)(uintptr_t)handle;
    handle->fs = fs;
    fs_handle_track(fs, &handle->link, handle_destroy);
    if (fuse_reply_open(req, fi) != 0)
        handle_free(handle);
}

static bool is_dot(const char *name)
{
    return name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
}

/*
 * readdirplus gives the kernel an inode and its attributes, as a lookup
 * would, so they must be true now, not when the directory was opened: an
 * entry unlinked since would come back as a positive dentry (stress-ng's
 * filename stressor saw files that stat found after unlink), and a file's
 * size from opendir time would move an O_APPEND writer back over its own
 * lines. So each entry is looked up again here, with its attributes (a
 * directory's link count too). The kernel holds the directory's lock
 * while it reads it, so no unlink or create comes in between; a write to
 * the file after this read is newer than the request, and the kernel drops
 * these attributes for it (attr_version). False when the entry is gone or
 * is no longer of the kind listed. A file of the live store comes with its
 * object in *obj (a new reference): its inode.
 */
static bool entry_now(struct s3m_fs *fs, const struct fs_key *dir,
                      struct dir_entry *entry, struct s3m_object **obj)
{
    struct fs_key key = *dir;
    int rc;
    if (key_append(&key, entry->name, strlen(entry->name), entry->is_dir) != 0)
        return false;
    if (entry->is_dir)        /* -ENOENT: no marker and no key below */
        return fs_stat_dir(fs, &key, &entry->st) == 0;
    if (key.readonly)
        rc = fs_stat_file(fs, &key, &entry->st);
    else
        *obj = fs_open_file(&key, &entry->st, &rc);
    /* a directory of the same name wins over the file (as in fs_kind_of) */
    if (rc == 0 && key_append(&key, "", 0, true) == 0 &&
        !s3m_store_has_prefix(key.store, key.text))
        return true;
    s3m_object_unref(*obj);
    *obj = NULL;
    return false;
}

/* Adds the entry of a file of the live store (obj, borrowed), pinning it
 * (undone when it does not fit). */
static ssize_t add_file_entry(struct s3m_fs *fs, fuse_req_t req,
                              struct dir_entry *entry, struct s3m_object *obj,
                              char *buf, size_t room, off_t next)
{
    int rc;
    fuse_ino_t ino = fs_pin(fs, obj, &rc);
    if (!ino)
        return rc;
    struct fuse_entry_param param = {.ino = ino, .attr = entry->st,
                                     .attr_timeout = fs->timeout,
                                     .entry_timeout = fs->timeout};
    param.attr.st_ino = ino;
    size_t used = fuse_add_direntry_plus(req, buf, room, entry->name, &param, next);
    if (used <= room)
        return (ssize_t)used;
    fs_unpin(fs, ino, 1);
    return 0;
}

/* Adds one entry to buf; for plus, counts a lookup (undone when it does not
 * fit). Returns the bytes used, 0 when it did not fit, -errno on failure. */
static ssize_t add_entry(struct s3m_fs *fs, fuse_req_t req, fuse_ino_t dir,
                         const struct fs_key *dir_key, struct dir_entry *entry,
                         char *buf, size_t room, off_t next, bool plus,
                         bool counted)
{
    struct s3m_object *obj = NULL;
    if (counted && !entry_now(fs, dir_key, entry, &obj))
        counted = false;      /* gone: a name only, no inode for the kernel */
    if (obj) {
        ssize_t used = add_file_entry(fs, req, entry, obj, buf, room, next);
        s3m_object_unref(obj);
        return used;
    }
    if (!counted) {
        /* no entry for the kernel (nodeid 0): just a name; d_ino is a hint */
        struct fuse_entry_param param = {.ino = 0, .attr = entry->st};
        if (!param.attr.st_ino)
            param.attr.st_ino = UINT32_MAX;
        size_t used = plus ? fuse_add_direntry_plus(req, buf, room, entry->name,
                                                    &param, next)
                           : fuse_add_direntry(req, buf, room, entry->name,
                                               &param.attr, next);
        return used > room ? 0 : (ssize_t)used;
    }
    pthread_mutex_lock(&fs->lock);
    struct fs_node *parent = node_by_ino(fs, dir);
    struct fs_node *node = parent ? node_lookup(fs, parent, entry->name,
                                                strlen(entry->name), entry->is_dir)
                                  : NULL;
    pthread_mutex_unlock(&fs->lock);
    if (!node)
        return parent ? -ENOMEM : -ENOENT;
    struct fuse_entry_param param = {.ino = node_ino(node), .attr = entry->st,
                                     .attr_timeout = fs->timeout,
                                     .entry_timeout = fs->timeout};
    param.attr.st_ino = node_ino(node);
    size_t used = fuse_add_direntry_plus(req, buf, room, entry->name, &param, next);
    if (used <= room)
        return (ssize_t)used;
    pthread_mutex_lock(&fs->lock);
    node_forget(fs, node, 1);
    pthread_mutex_unlock(&fs->lock);
    return 0;
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi, bool plus)
{
    struct s3m_fs *fs = fuse_req_userdata(req);
    struct dir_handle *handle = handle_of(fi);
    char *buf = s3m_malloc(size ? size : 1);
    if (!buf) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    size_t used = 0;
    int rc = 0;
    struct fs_key dir_key;
    bool keyed = false;
    if (plus && !handle->control) {
        pthread_mutex_lock(&fs->lock);
        struct fs_node *node = node_by_ino(fs, ino);
        keyed = node && node_dir_key(fs, node, &dir_key) == 0;
        pthread_mutex_unlock(&fs->lock);
    }
    for (size_t i = off < 0 ? 0 : (size_t)off; i < handle->count; i++) {
        struct dir_entry *entry = &handle->entries[i];
        bool counted = keyed && !is_dot(entry->name) &&
                       !(ino == FS_ROOT_INO && fs->ctl &&
                         strcmp(entry->name, fs->control_dir) == 0);
        ssize_t n = add_entry(fs, req, ino, &dir_key, entry, buf + used,
                              size - used, (off_t)(i + 1), plus, counted);
        if (n <= 0) {
            rc = (int)n;
            break;
        }
        used += (size_t)n;
    }
    if (rc && used == 0)
        fuse_reply_err(req, -rc);
    else
        fuse_reply_buf(req, buf, used);
    free(buf);
}

void fs_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                   struct fuse_file_info *fi)
{
    do_readdir(req, ino, size, off, fi, false);
}

void fs_op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
    do_readdir(req, ino, size, off, fi, true);
}

void fs_op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    handle_free(handle_of(fi));
    fuse_reply_err(req, 0);
}
