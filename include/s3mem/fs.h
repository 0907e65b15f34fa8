/*
 * fs.h - the FUSE layer: translates libfuse low-level requests into store
 * operations (DESIGN sections 2 to 4). Paths are keys under key_prefix;
 * directories are key prefixes ending in '/'; user.* xattrs are metadata.
 *
 * Threads: the handlers run on libfuse's worker threads. Lock order, declared
 * once: the node table lock (fs/nodes.c) may be held while calling into the
 * store; the store lock is innermost and never held while taking the node
 * table lock.
 */
#ifndef S3MEM_FS_H
#define S3MEM_FS_H

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>
#include <stdbool.h>
#include <sys/types.h>

#include "s3mem/ctl.h"
#include "s3mem/store.h"

struct s3m_fs_config {
    const char *key_prefix;     /* borrowed, copied; "" or ends with '/' */
    const char *control_dir;    /* borrowed, copied; NULL = ".s3mem" */
    uid_t uid;                  /* the mounting user: owns implicit dirs */
    gid_t gid;
    double timeout;             /* entry and attribute timeout, seconds */
    bool verbose;               /* log every request */
    struct s3m_ctl *ctl;        /* borrowed; NULL = no control directory */
};

struct s3m_fs;

/* New FUSE layer over store (borrowed: outlives the fs), or NULL. */
struct s3m_fs *s3m_fs_new(const struct s3m_fs_config *config,
                          struct s3m_store *store);
void s3m_fs_free(struct s3m_fs *fs);
/* The handler table; pass fs as userdata to fuse_session_new. */
const struct fuse_lowlevel_ops *s3m_fs_operations(void);
/* Starts the fs's own thread (the cache notifier). Call it after
 * fuse_daemonize, whose fork keeps no threads, and before the loop runs.
 * 0 or -errno (then caches stay until they time out). */
int s3m_fs_start(struct s3m_fs *fs);
/* The session, for cache notifications (set once before the loop runs). */
void s3m_fs_set_session(struct s3m_fs *fs, struct fuse_session *session);
struct s3m_store *s3m_fs_store(struct s3m_fs *fs);
/* Drops what the kernel caches of keys (taken; NULL = everything), from
 * the notifier thread, and waits (bounded) until it is done. ctx is the fs:
 * this is the control plane's s3m_ctl_on_change callback. Never call it
 * with fs locks held. A no-op when the kernel caches nothing (timeout 0). */
void s3m_fs_invalidate(void *ctx, char **keys, size_t count);

#endif
