/*
 * attrs.c - struct stat for files and directories, from the store.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "fs_internal.h"

void fs_stat_from_info(const struct s3m_object_info *info, bool is_dir,
                       struct stat *st)
{
    memset(st, 0, sizeof(*st));
    st->st_mode = (is_dir ? S_IFDIR : S_IFREG) | (info->mode & 07777);
    st->st_nlink = is_dir ? 2 : 1;
    st->st_uid = info->uid;
    st->st_gid = info->gid;
    st->st_size = is_dir ? 0 : (off_t)info->size;
    st->st_blksize = 4096;
    st->st_blocks = is_dir ? 0 : (blkcnt_t)((info->size + 511) / 512);
    st->st_mtim.tv_sec = info->mtime_ns / 1000000000;
    st->st_mtim.tv_nsec = info->mtime_ns % 1000000000;
    st->st_atim.tv_sec = info->atime_ns / 1000000000;
    st->st_atim.tv_nsec = info->atime_ns % 1000000000;
    st->st_ctim.tv_sec = info->ctime_ns / 1000000000;
    st->st_ctim.tv_nsec = info->ctime_ns % 1000000000;
    /* times before 1970: keep tv_nsec in [0, 1e9) */
    struct timespec *times[] = {&st->st_mtim, &st->st_atim, &st->st_ctim};
    for (int i = 0; i < 3; i++)
        if (times[i]->tv_nsec < 0) {
            times[i]->tv_nsec += 1000000000;
            times[i]->tv_sec -= 1;
        }
}

void fs_stat_implicit_dir(const struct s3m_fs *fs, struct stat *st)
{
    struct s3m_object_info info = {
        .mode = 0755, .uid = fs->uid, .gid = fs->gid,
        .mtime_ns = fs->start_ns, .atime_ns = fs->start_ns,
        .ctime_ns = fs->start_ns,
    };
    fs_stat_from_info(&info, true, st);
}

int fs_stat_file(struct s3m_fs *fs, const struct fs_key *key, struct stat *st)
{
    struct s3m_object_info info;
    int rc = s3m_store_head(key->store, key->text, &info);
    if (rc)
        return rc;
    fs_stat_from_info(&info, false, st);
    s3m_object_info_release(&info);
    return 0;
}

int fs_dir_attrs(struct s3m_fs *fs, const struct fs_key *dir_key,
                 struct stat *st)
{
    struct s3m_object_info info;
    if (dir_key->len == fs->key_prefix_len) {
        /* the root: always there; its attributes live in fs */
        pthread_mutex_lock(&fs->lock);
        struct s3m_object_info root = {
            .mode = fs->root_mode, .uid = fs->root_uid, .gid = fs->root_gid,
            .mtime_ns = fs->root_mtime_ns, .atime_ns = fs->root_atime_ns,
            .ctime_ns = fs->root_ctime_ns,
        };
        pthread_mutex_unlock(&fs->lock);
        fs_stat_from_info(&root, true, st);
        return 0;
    }
    if (s3m_store_head(dir_key->store, dir_key->text, &info) == 0) {
        fs_stat_from_info(&info, true, st);
        s3m_object_info_release(&info);
        return 0;
    }
    if (!s3m_store_has_prefix(dir_key->store, dir_key->text))
        return -ENOENT;
    fs_stat_implicit_dir(fs, st);
    return 0;
}

/* Above this many entries a directory's link count is not counted. */
#define DIR_LINKS_WALK_MAX 100000

nlink_t fs_dir_links(struct s3m_fs *fs, const struct fs_key *dir_key)
{
    size_t subdirs = s3m_store_count_prefixes(dir_key->store, dir_key->text,
                                              '/', DIR_LINKS_WALK_MAX);
    if (subdirs == SIZE_MAX)
        return 1;   /* "not counted", as find(1) and others read it */
    if (dir_key->len == fs->key_prefix_len && dir_key->store == fs->store &&
        fs->ctl)
        subdirs++;  /* the control directory */
    return (nlink_t)(2 + subdirs);
}

int fs_stat_dir(struct s3m_fs *fs, const struct fs_key *dir_key, struct stat *st)
{
    int rc = fs_dir_attrs(fs, dir_key, st);
    if (rc == 0)
        st->st_nlink = fs_dir_links(fs, dir_key);
    return rc;
}

int fs_kind_of(struct s3m_fs *fs, const struct fs_key *key)
{
    struct fs_key dir = *key;
    if (key_append(&dir, "", 0, true) == 0 && s3m_store_has_prefix(key->store, dir.text))
        return S_IFDIR;
    return s3m_store_head(key->store, key->text, NULL) == 0 ? S_IFREG : 0;
}

int fs_ensure_marker(struct s3m_fs *fs, const struct fs_key *dir_key)
{
    if (dir_key->readonly)
        return -EROFS;
    if (s3m_store_head(dir_key->store, dir_key->text, NULL) == 0)
        return 0;
    struct s3m_put_attrs attrs = {.mode = 0755, .has_owner = true,
                                  .uid = fs->uid, .gid = fs->gid,
                                  .mtime_ns = fs->start_ns};
    int rc = s3m_store_put(dir_key->store, dir_key->text, NULL, 0, &attrs,
                           S3M_PUT_CREATE);
    return rc == -EEXIST ? 0 : rc;
}

void fs_reply_entry(struct s3m_fs *fs, fuse_req_t req, struct fs_node *node,
                    const struct stat *st)
{
    struct fuse_entry_param entry;
    memset(&entry, 0, sizeof(entry));
    entry.ino = node_ino(node);
    entry.attr = *st;
    entry.attr.st_ino = node_ino(node);
    entry.attr_timeout = fs->timeout;
    entry.entry_timeout = fs->timeout;
    if (fuse_reply_entry(req, &entry) != 0) {
        pthread_mutex_lock(&fs->lock);
        node_forget(fs, node, 1);
        pthread_mutex_unlock(&fs->lock);
    }
}

void fs_touch_dir(struct s3m_fs *fs, fuse_ino_t ino)
{
    struct fs_key key;
    int64_t now = s3m_time_now_ns();
    pthread_mutex_lock(&fs->lock);
    struct fs_node *node = node_by_ino(fs, ino);
    int rc = node ? node_dir_key(fs, node, &key) : -ENOENT;
    bool root = rc == 0 && node == fs->root;
    if (root)
        fs->root_mtime_ns = fs->root_ctime_ns = now;
    pthread_mutex_unlock(&fs->lock);
    if (rc || root || key.readonly)
        return;
    struct s3m_object *marker = s3m_store_open(key.store, key.text, &rc);
    if (!marker)
        return;
    struct s3m_attr_update update = {
        .flags = S3M_ATTR_MTIME | S3M_ATTR_CTIME, .mtime_ns = now, .ctime_ns = now,
    };
    s3m_object_set_attrs(key.store, marker, &update);
    s3m_object_unref(marker);
}

void fs_log_refusal(struct s3m_fs *fs, const char *op, const char *what, int rc,
                    const char *why)
{
    s3m_log("%s '%s' refused: %s%s%s", op, what, strerror(-rc),
            why ? ": " : "", why ? why : "");
}
