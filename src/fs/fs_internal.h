/*
 * fs_internal.h - the FUSE layer's private structures.
 *
 * Design note
 * -----------
 * Inodes: a file of the live store is known to the kernel by its store
 * object: its inode number is the object's address with the low bit set
 * (files.c). The kernel's lookups of it are the object's pins (the store's
 * pins.c), which keep the object alive until the kernel forgets them, so a
 * file costs the daemon nothing beyond its object. A renamed file keeps its
 * object (the store re-keys it), so it keeps its inode; a replaced one
 * (restore, load, import) is a new object, so its name leads to a new inode
 * and its pages go with the old one. An object no longer in the store that
 * no handle holds answers ESTALE: the kernel then looks the name up again.
 *
 * Everything else (directories, the control tree, snapshot views) is a
 * node: a (parent node, name) pair whose inode number is its address, as
 * in libfuse's passthrough examples (node and object addresses are even).
 * The kernel only sends numbers it holds a lookup of, so a number is valid
 * until the kernel forgets it; after that it may name a new node (tmpfs
 * and ext4 reuse inode numbers too). Code that drops fs->lock must not keep
 * a node or its number it does not pin. A node's key is found by walking
 * its parents, so renaming a directory renames one node and every node
 * below it follows. One hash table (xxhash) finds nodes by (parent, name).
 * The kernel's lookup count is kept per node; a node is freed when the
 * kernel has forgotten it (count 0), no handle has it open and no child
 * node refers to it. Root (inode 1) is pinned. A node keeps its name in
 * its own allocation (node_name).
 *
 * Nodes hold no object data: attributes come from the store at each request,
 * so a change behind the kernel's back (restore, load) is seen by the next
 * request. Open files hold a store object reference (struct fs_file), so an
 * unlinked or renamed file stays readable and writable through its handle.
 *
 * Locks: fs->lock (a mutex) guards the table and every node field. It may
 * be held while calling into the store (rename does, to be atomic); the
 * store never calls back. Nothing replies to FUSE with fs->lock held.
 */
#ifndef S3MEM_FS_INTERNAL_H
#define S3MEM_FS_INTERNAL_H

#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "s3mem/fs.h"
#include "s3mem/path.h"
#include "s3mem/util.h"

#define FS_ROOT_INO FUSE_ROOT_ID

enum fs_node_kind {
    NODE_PATH,                     /* a file or directory of a store */
    NODE_CONTROL_DIR,              /* .s3mem */
    NODE_CONTROL_FILE,             /* .s3mem/stats, ... */
    NODE_SNAPSHOTS_DIR,            /* .s3mem/snapshots */
    NODE_SNAPSHOT_ROOT,            /* .s3mem/snapshots/NAME: a read-only view */
};

struct s3m_snapshot;

struct fs_node {
    uint8_t kind;                  /* enum fs_node_kind, fixed at creation */
    uint8_t control_file;          /* NODE_CONTROL_FILE: enum s3m_ctl_file */
    bool is_dir;                   /* fixed at creation */
    bool linked;                   /* visible under (parent, name) */
    uint32_t open_count;           /* open file handles of this node */
    union {
        struct s3m_snapshot *snapshot; /* NODE_SNAPSHOT_ROOT: owned reference */
        struct s3m_object *open_obj;   /* NODE_PATH file with open_count > 0:
                                        * owned reference, for fstat after
                                        * unlink */
        uint64_t ghost_epoch;          /* NODE_PATH directory: store epoch + 1
                                        * when this implicit directory vanished
                                        * through a request of ours (0: never);
                                        * see fs_ghost */
    };
    struct fs_node *parent;        /* referenced: parent->children counts us;
                                    * NULL only for root */
    struct fs_node *name_next;     /* chain in the name table */
    uint64_t lookups;              /* kernel lookup count */
    uint32_t children;             /* nodes whose parent is this one */
    uint16_t name_len;             /* a name is at most 255 bytes */
    bool name_inline;              /* name_bytes holds the name; else (after
                                    * a rename) the address of an owned
                                    * copy, freed with the node */
    char name_bytes[];             /* at least NODE_NAME_ROOM bytes; see
                                    * node_name */
};

/* Room for a name's address in name_bytes. Keeping the name there, not
 * behind a pointer, makes a node with a 24-byte name 80 bytes with
 * malloc's overhead instead of 96. */
#define NODE_NAME_ROOM sizeof(char *)

/* The node's name, NUL-ended; NULL for root. */
static inline const char *node_name(const struct fs_node *node)
{
    if (!node->parent)
        return NULL;
    if (node->name_inline)
        return node->name_bytes;
    const char *owned;
    memcpy(&owned, node->name_bytes, sizeof(owned));
    return owned;
}

/* Every node but root is in the table, under its current (parent, name),
 * linked or not, until it is freed. */
struct node_table {
    struct fs_node **by_name;
    size_t bucket_count;           /* power of two */
    size_t count;                  /* nodes in the table */
};

/* A node's inode number is its address (root's is FS_ROOT_INO): the kernel
 * only names inodes it holds a lookup of, and a node lives until the kernel
 * has forgotten it and no handle or child node needs it. */
static inline fuse_ino_t node_ino(const struct fs_node *node)
{
    return node->parent ? (fuse_ino_t)(uintptr_t)node : FS_ROOT_INO;
}

/* A file of the live store: its object's address with the low bit set
 * (see the design note; root is 1, nodes are even). */
static inline bool ino_is_object(fuse_ino_t ino)
{
    return (ino & 1) && ino != FS_ROOT_INO;
}

static inline struct s3m_object *ino_object(fuse_ino_t ino)
{
    return ino_is_object(ino) ? (struct s3m_object *)(uintptr_t)(ino - 1) : NULL;
}

static inline fuse_ino_t object_ino(const struct s3m_object *obj)
{
    return (fuse_ino_t)(uintptr_t)obj | 1;
}

/* Every open file and directory handle is on a list, so that the ones the
 * kernel never released (the daemon stopped with files open) are freed at
 * exit. */
struct fs_handle {
    struct fs_handle *prev;        /* guarded by fs->lock */
    struct fs_handle *next;        /* guarded by fs->lock */
    void (*destroy)(struct fs_handle *handle);
};
void fs_handle_track(struct s3m_fs *fs, struct fs_handle *handle,
                     void (*destroy)(struct fs_handle *handle));
void fs_handle_untrack(struct s3m_fs *fs, struct fs_handle *handle);

struct s3m_fs {
    pthread_mutex_t lock;          /* guards nodes and root_* fields */
    struct node_table nodes;       /* guarded by lock */
    struct fs_node *root;          /* pinned */
    struct fs_handle handles;      /* guarded by lock: list head (sentinel) */
    struct s3m_store *store;       /* borrowed */
    struct s3m_ctl *ctl;           /* borrowed, may be NULL */
    struct fuse_session *session;  /* set before the loop runs */
    char *key_prefix;              /* owned; "" or ends with '/' */
    size_t key_prefix_len;
    char *control_dir;             /* owned */
    uid_t uid;                     /* mounting user */
    gid_t gid;
    double timeout;
    bool verbose;
    int64_t start_ns;              /* times of implicit directories */
    uint32_t root_mode;            /* guarded by lock */
    uid_t root_uid;                /* guarded by lock */
    gid_t root_gid;                /* guarded by lock */
    int64_t root_mtime_ns;         /* guarded by lock */
    int64_t root_atime_ns;         /* guarded by lock */
    int64_t root_ctime_ns;         /* guarded by lock */
    /* notify.c: the cache notifier thread */
    pthread_t notify_thread;
    bool notify_running;           /* set before the session loop */
    pthread_mutex_t notify_lock;   /* guards the three fields below */
    pthread_cond_t notify_wake;
    pthread_cond_t notify_done_cond;
    bool notify_stop;              /* guarded by notify_lock */
    uint64_t notify_requested;     /* guarded by notify_lock */
    uint64_t notify_done;          /* guarded by notify_lock */
    char **notify_keys;            /* guarded by notify_lock: owned, pending */
    size_t notify_key_count;       /* guarded by notify_lock */
    bool notify_all;               /* guarded by notify_lock: drop everything */
    int epoch_support;             /* notifier thread only: enum in notify.c */
};

/* An open file: a reference to its object, or a control file's text. */
struct fs_file {
    struct fs_handle handle;       /* first: the list link */
    struct s3m_fs *fs;             /* borrowed */
    fuse_ino_t ino;                /* counted in the node's open_count when set */
    struct s3m_object *obj;        /* owned reference; NULL for control files */
    struct s3m_store *store;       /* borrowed (see struct fs_key) */
    bool readonly;
    int control_file;              /* enum s3m_ctl_file, or -1 */
    char *text;                    /* owned: a control file's contents */
    size_t text_len;
};

/* A key being built: the key prefix, parents' names, the name; and the
 * store it is a key of (the live store, or a snapshot's: read-only). The
 * store is borrowed from the node tree: valid while the request runs. */
struct fs_key {
    struct s3m_store *store;
    bool readonly;
    char text[S3M_KEY_MAX + S3M_NAME_MAX + 4];
    size_t len;
};

/* ---- file.c: handle lifetime shared with control.c */
/* Puts a new file handle on fs's list (see struct fs_handle). */
void fs_file_track(struct s3m_fs *fs, struct fs_file *file);
/* Calls fn with the key of each open file of the live store whose object
 * is no longer in it (fs->lock held): replaced or removed while open. */
void fs_files_replaced(struct s3m_fs *fs,
                       void (*fn)(void *ctx, const char *key), void *ctx);
/* Frees fi's file handle (untracks it, closes it in its node). */
void fs_file_close(struct fuse_file_info *fi);

/* ---- files.c: inodes of the live store's files (see the design note) */
/* Opens the file key of the live store and fills st from it: a new
 * reference, or NULL with *rc set. */
struct s3m_object *fs_open_file(const struct fs_key *key, struct stat *st,
                                int *rc);
/* Counts one kernel lookup of obj (pins it): its inode number, or 0 with
 * *rc set. */
fuse_ino_t fs_pin(struct s3m_fs *fs, struct s3m_object *obj, int *rc);
/* The kernel forgot count lookups of a file inode. */
void fs_unpin(struct s3m_fs *fs, fuse_ino_t ino, uint64_t count);
/* The object of a file inode, as a new reference: while it is in the
 * store, or out of it but held open (an unlinked or replaced open file).
 * NULL with -ESTALE otherwise. */
struct s3m_object *fs_file_object(struct s3m_fs *fs, fuse_ino_t ino, int *rc);
/* Attributes of a file inode (nlink 0 once out of the store). */
int fs_stat_object(struct s3m_fs *fs, fuse_ino_t ino, struct stat *st);
/* Replies to an entry request with obj's inode and st, pinning it (undone
 * when the reply fails). */
void fs_reply_file_entry(struct s3m_fs *fs, fuse_req_t req,
                         struct s3m_object *obj, const struct stat *st);

/* ---- nodes.c (callers hold fs->lock unless a function says it takes it) */
int nodes_init(struct s3m_fs *fs);
void nodes_release(struct s3m_fs *fs);
/* The node of a number the kernel sent (see node_ino): no lookup, so the
 * number must be one the kernel holds; NULL for 0 and for a file of the
 * live store (ino_is_object). */
struct fs_node *node_by_ino(struct s3m_fs *fs, fuse_ino_t ino);
/* Finds or makes the node for (parent, name) of the given kind and counts
 * one lookup. A node of the other kind is unlinked and replaced. NULL on
 * -ENOMEM. */
struct fs_node *node_lookup(struct s3m_fs *fs, struct fs_node *parent,
                            const char *name, size_t len, bool is_dir);
struct fs_node *node_find(struct s3m_fs *fs, struct fs_node *parent,
                          const char *name, size_t len);
/* Takes node out of the (parent, name) table (unlink, rmdir, replaced). */
void node_unlink(struct s3m_fs *fs, struct fs_node *node);
/* Moves node to (parent, name); returns -ENOMEM leaving it unchanged. */
int node_move(struct s3m_fs *fs, struct fs_node *node, struct fs_node *parent,
              const char *name, size_t len);
/* Records that ino's object obj (borrowed, referenced) was opened, or that
 * one handle of it was closed; the node keeps the object while open so
 * that fstat works after unlink. Take fs->lock themselves. */
void node_opened(struct s3m_fs *fs, fuse_ino_t ino, struct s3m_object *obj);
void node_closed(struct s3m_fs *fs, fuse_ino_t ino);
/* New reference to the object ino has open, or NULL. Takes fs->lock. */
struct s3m_object *node_open_object(struct s3m_fs *fs, fuse_ino_t ino,
                                    struct s3m_store **store);
/* Drops count lookups and frees what is no longer needed. */
void node_forget(struct s3m_fs *fs, struct fs_node *node, uint64_t count);
/* The directory prefix of node (key prefix + path + '/'; the key prefix
 * alone for root). -ENAMETOOLONG when it does not fit, -ENOENT when node
 * or a parent was removed from the namespace. */
int node_dir_key(const struct s3m_fs *fs, const struct fs_node *node,
                 struct fs_key *key);
/* The key of node: its directory prefix without the trailing '/' for a
 * file; with it for a directory (its marker). */
int node_key(const struct s3m_fs *fs, const struct fs_node *node,
             struct fs_key *key);
/* Appends name (and '/' when is_dir) to key. */
int key_append(struct fs_key *key, const char *name, size_t len, bool is_dir);

/* ---- attrs.c */
/* What a key is right now: 0 nothing, S_IFREG, or S_IFDIR (a directory
 * wins over a file of the same name). key is the file key (no '/'). */
int fs_kind_of(struct s3m_fs *fs, const struct fs_key *key);
/* Fills st for a file key or a directory prefix (marker or implicit).
 * -ENOENT when it no longer exists. */
int fs_stat_file(struct s3m_fs *fs, const struct fs_key *key, struct stat *st);
int fs_stat_dir(struct s3m_fs *fs, const struct fs_key *dir_key, struct stat *st);
/* fs_stat_dir without the link count (left at 2), which walks the
 * directory's entries: for callers that need only its mode and owner. */
int fs_dir_attrs(struct s3m_fs *fs, const struct fs_key *dir_key,
                 struct stat *st);
/* A directory's st_nlink: 2 + its subdirectories (at the root, the control
 * directory too), or 1 when it has too many entries to count quickly. */
nlink_t fs_dir_links(struct s3m_fs *fs, const struct fs_key *dir_key);
void fs_stat_from_info(const struct s3m_object_info *info, bool is_dir,
                       struct stat *st);
void fs_stat_implicit_dir(const struct s3m_fs *fs, struct stat *st);
/* Makes sure a directory prefix has a marker object (setattr and setxattr on
 * an implicit directory create it). */
int fs_ensure_marker(struct s3m_fs *fs, const struct fs_key *dir_key);
/* Replies to an entry request for node with st, undoing the lookup when the
 * reply fails. Takes fs->lock itself. */
void fs_reply_entry(struct s3m_fs *fs, fuse_req_t req, struct fs_node *node,
                    const struct stat *st);
/* An entry was added to or removed from directory ino: its mtime and
 * ctime become now (the root's in fs, a marker's in the store; a directory
 * without a marker has no times of its own). */
void fs_touch_dir(struct s3m_fs *fs, fuse_ino_t ino);

/* ---- ghosts: an implicit directory (no marker) vanishes from the store
 * with its last key, as in S3. The kernel, which saw it a moment ago (rm -r
 * empties it, then removes it), still gets an empty directory for it until
 * it is removed, the kernel forgets it, or the store's contents are
 * replaced. */
/* Marks the directories of key's path that vanished. Takes fs->lock. */
void fs_mark_ghosts(struct s3m_fs *fs, fuse_ino_t parent);
/* True when ino is such a directory. Takes fs->lock. */
bool fs_ghost(struct s3m_fs *fs, fuse_ino_t ino);

/* ---- dir.c helpers for creating entries */
/* Checks that name may be created in parent and that nothing of that name
 * exists (-EEXIST); fills key with the file key and pst with the parent's
 * attributes. `op` names the request in the log line of a refusal. */
int fs_prepare_new(struct s3m_fs *fs, fuse_ino_t parent, const char *name,
                   bool is_dir, struct fs_key *key, struct stat *pst,
                   const char *op);
/* Owner of a new entry: the caller, or the parent's group when the parent
 * is set-group-ID (as Linux does). */
void fs_new_owner(fuse_req_t req, const struct stat *pst,
                  struct s3m_put_attrs *attrs);
/* Forgets the namespace entry (parent, name) after it was removed. Takes
 * fs->lock itself. */
void fs_unlink_name(struct s3m_fs *fs, fuse_ino_t parent, const char *name);
/* Counts a lookup of (parent, name) and replies with st. */
void fs_reply_new_entry(struct s3m_fs *fs, fuse_req_t req, fuse_ino_t parent,
                        const char *name, bool is_dir, const struct stat *st);

/* ---- handlers, one file per group */
void fs_op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name);
void fs_op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup);
void fs_op_forget_multi(fuse_req_t req, size_t count,
                        struct fuse_forget_data *forgets);
void fs_op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
                   int to_set, struct fuse_file_info *fi);
void fs_op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
                 mode_t mode);
void fs_op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name);
void fs_op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name);
void fs_op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
                  fuse_ino_t newparent, const char *newname, unsigned flags);
void fs_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                   struct fuse_file_info *fi);
void fs_op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi);
void fs_op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_op_create(fuse_req_t req, fuse_ino_t parent, const char *name,
                  mode_t mode, struct fuse_file_info *fi);
void fs_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                struct fuse_file_info *fi);
void fs_op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
                 off_t off, struct fuse_file_info *fi);
void fs_op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
                 struct fuse_file_info *fi);
void fs_op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
                    const char *value, size_t size, int flags);
void fs_op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
                    size_t size);
void fs_op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
void fs_op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name);

/* ---- control.c: the .s3mem/ directory */
bool fs_control_node(struct s3m_fs *fs, fuse_ino_t ino);
/* True when (parent, name) is in the control tree or is the control dir. */
bool fs_control_parent(struct s3m_fs *fs, fuse_ino_t parent, const char *name);
/* The kind of a new node (parent, name); sets *control_file for files. */
int fs_node_kind_for(const struct s3m_fs *fs, const struct fs_node *parent,
                     const char *name, size_t len, uint8_t *control_file);
void fs_control_lookup(fuse_req_t req, fuse_ino_t parent, const char *name);
void fs_control_getattr(fuse_req_t req, fuse_ino_t ino);
void fs_control_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
                        int to_set, struct fuse_file_info *fi);
void fs_control_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_control_read(fuse_req_t req, struct fs_file *file, size_t size, off_t off);
void fs_control_write(fuse_req_t req, struct fs_file *file, const char *buf,
                      size_t size);
/* Lists a control directory through add (stops at its first error). */
int fs_control_list(struct s3m_fs *fs, fuse_ino_t ino,
                    int (*add)(void *ctx, const char *name, bool is_dir,
                               const struct stat *st),
                    void *ctx);
void fs_control_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name);
void fs_control_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name);

/* ---- notify.c */
void fs_notifier_init(struct s3m_fs *fs);
void fs_notifier_stop(struct s3m_fs *fs);

/* Logs a refused request when it is worth a line (not ENOENT on lookup). */
void fs_log_refusal(struct s3m_fs *fs, const char *op, const char *what, int rc,
                    const char *why);

#endif
