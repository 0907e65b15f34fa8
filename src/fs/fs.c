/*
 * fs.c - the FUSE layer's lifecycle, its handler table, statfs, and the
 * requests an object store refuses (symlinks, hard links, device nodes).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "fs_internal.h"

struct s3m_fs *s3m_fs_new(const struct s3m_fs_config *config,
                          struct s3m_store *store)
{
    struct s3m_fs *fs = s3m_calloc(1, sizeof(*fs));
    if (!fs)
        return NULL;
    fs->key_prefix = s3m_strdup(config->key_prefix ? config->key_prefix : "");
    fs->control_dir = s3m_strdup(config->control_dir ? config->control_dir : ".s3mem");
    if (!fs->key_prefix || !fs->control_dir || nodes_init(fs) != 0) {
        free(fs->key_prefix);
        free(fs->control_dir);
        free(fs);
        return NULL;
    }
    fs->key_prefix_len = strlen(fs->key_prefix);
    fs->store = store;
    fs->ctl = config->ctl;
    fs->uid = config->uid;
    fs->gid = config->gid;
    fs->timeout = config->timeout;
    fs->verbose = config->verbose;
    fs->start_ns = s3m_time_now_ns();
    fs->root_mode = 0755;
    fs->root_uid = config->uid;
    fs->root_gid = config->gid;
    fs->root_mtime_ns = fs->root_atime_ns = fs->root_ctime_ns = fs->start_ns;
    pthread_mutex_init(&fs->lock, NULL);
    fs->handles.prev = fs->handles.next = &fs->handles;
    fs_notifier_init(fs);
    return fs;
}

void s3m_fs_free(struct s3m_fs *fs)
{
    if (!fs)
        return;
    if (fs->ctl)
        s3m_ctl_on_change(fs->ctl, NULL, NULL);
    fs_notifier_stop(fs);
    while (fs->handles.next != &fs->handles) {
        struct fs_handle *handle = fs->handles.next;
        fs_handle_untrack(fs, handle);
        handle->destroy(handle);
    }
    nodes_release(fs);
    if (fs->store)
        s3m_store_unpin_all(fs->store); /* the kernel forgets nothing at unmount */
    pthread_mutex_destroy(&fs->lock);
    free(fs->key_prefix);
    free(fs->control_dir);
    free(fs);
}

void fs_handle_track(struct s3m_fs *fs, struct fs_handle *handle,
                     void (*destroy)(struct fs_handle *handle))
{
    handle->destroy = destroy;
    pthread_mutex_lock(&fs->lock);
    handle->next = fs->handles.next;
    handle->prev = &fs->handles;
    fs->handles.next->prev = handle;
    fs->handles.next = handle;
    pthread_mutex_unlock(&fs->lock);
}

void fs_handle_untrack(struct s3m_fs *fs, struct fs_handle *handle)
{
    pthread_mutex_lock(&fs->lock);
    if (handle->next) {
        handle->prev->next = handle->next;
        handle->next->prev = handle->prev;
        handle->prev = handle->next = NULL;
    }
    pthread_mutex_unlock(&fs->lock);
}

void s3m_fs_set_session(struct s3m_fs *fs, struct fuse_session *session)
{
    fs->session = session;
}

struct s3m_store *s3m_fs_store(struct s3m_fs *fs)
{
    return fs->store;
}

static void fs_init(void *userdata, struct fuse_conn_info *conn)
{
    if (conn->capable & FUSE_CAP_READDIRPLUS)
        conn->want |= FUSE_CAP_READDIRPLUS;
    /* readdirplus always: ls -l needs no lookup per entry */
    conn->want &= ~(unsigned)FUSE_CAP_READDIRPLUS_AUTO;
    /* the kernel must not cache pages across opens: a control command may
     * change a body behind its back */
    conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
    /* every change reaches the kernel through this mount (it updates its
     * own pages) or through a control command, which invalidates what it
     * changed (notify.c): the kernel need not drop a file's pages each
     * time it sees a new mtime, so a file read after it was written comes
     * from the page cache */
    conn->want &= ~(unsigned)FUSE_CAP_AUTO_INVAL_DATA;
    if (conn->capable & FUSE_CAP_SPLICE_READ)
        conn->want &= ~(unsigned)FUSE_CAP_SPLICE_READ;
    conn->max_write = 1024 * 1024;      /* 1 MiB requests: fewer round trips */
    conn->max_readahead = 1024 * 1024;
}

static void fs_statfs(fuse_req_t req, fuse_ino_t ino)
{
    struct s3m_fs *fs = fuse_req_userdata(req);
    const struct s3m_store_config *config = s3m_store_config(fs->store);
    struct s3m_store_stats stats;
    s3m_store_stats(fs->store, &stats);
    uint64_t total = config->max_memory;
    if (!total)
        total = (uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE);
    const uint64_t block = 4096;
    uint64_t used = (stats.memory_used + block - 1) / block;
    uint64_t blocks = total / block;
    struct statvfs st = {0};
    st.f_bsize = block;
    st.f_frsize = block;
    st.f_blocks = blocks;
    st.f_bfree = used > blocks ? 0 : blocks - used;
    st.f_bavail = st.f_bfree;
    st.f_files = stats.object_count + (st.f_bfree ? st.f_bfree : 1);
    st.f_ffree = st.f_files - stats.object_count;
    st.f_favail = st.f_ffree;
    st.f_namemax = S3M_NAME_MAX;
    fuse_reply_statfs(req, &st);
}

static void refuse(fuse_req_t req, const char *op, const char *name, int err,
                   const char *why)
{
    struct s3m_fs *fs = fuse_req_userdata(req);
    fs_log_refusal(fs, op, name, -err, why);
    fuse_reply_err(req, err);
}

static void fs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
                       const char *name)
{
    refuse(req, "symlink", name, EPERM, "symbolic links are not objects");
}

static void fs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
                    const char *newname)
{
    refuse(req, "link", newname, EPERM, "hard links are not objects");
}

/* mknod makes regular files (as create without opening); anything else is
 * not an object. */
static void fs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
                     mode_t mode, dev_t rdev)
{
    struct s3m_fs *fs = fuse_req_userdata(req);
    if (fs_control_parent(fs, parent, name)) {
        fuse_reply_err(req, EPERM);
        return;
    }
    if (!S_ISREG(mode)) {
        refuse(req, "mknod", name, EPERM,
               "device nodes, FIFOs and sockets are not objects");
        return;
    }
    struct fs_key key;
    struct stat pst, st;
    int rc = fs_prepare_new(fs, parent, name, false, &key, &pst, "mknod");
    if (rc == 0) {
        struct s3m_put_attrs attrs = {.mode = S_IFREG | (mode & 07777)};
        fs_new_owner(req, &pst, &attrs);
        rc = s3m_store_put(key.store, key.text, NULL, 0, &attrs, S3M_PUT_CREATE);
    }
    struct s3m_object *obj = rc ? NULL : fs_open_file(&key, &st, &rc);
    if (rc) {
        fuse_reply_err(req, -rc);
        return;
    }
    fs_touch_dir(fs, parent);
    fs_reply_file_entry(fs, req, obj, &st);
    s3m_object_unref(obj);
}

static const struct fuse_lowlevel_ops operations = {
    .init = fs_init,
    .lookup = fs_op_lookup,
    .forget = fs_op_forget,
    .forget_multi = fs_op_forget_multi,
    .getattr = fs_op_getattr,
    .setattr = fs_op_setattr,
    .mknod = fs_mknod,
    .mkdir = fs_op_mkdir,
    .unlink = fs_op_unlink,
    .rmdir = fs_op_rmdir,
    .symlink = fs_symlink,
    .rename = fs_op_rename,
    .link = fs_link,
    .open = fs_op_open,
    .read = fs_op_read,
    .write = fs_op_write,
    .flush = fs_op_flush,
    .release = fs_op_release,
    .fsync = fs_op_fsync,
    .opendir = fs_op_opendir,
    .readdir = fs_op_readdir,
    .readdirplus = fs_op_readdirplus,
    .releasedir = fs_op_releasedir,
    .statfs = fs_statfs,
    .setxattr = fs_op_setxattr,
    .getxattr = fs_op_getxattr,
    .listxattr = fs_op_listxattr,
    .removexattr = fs_op_removexattr,
    .create = fs_op_create,
};

const struct fuse_lowlevel_ops *s3m_fs_operations(void)
{
    return &operations;
}
