/*
 * notify.c - dropping the kernel's caches after a control command changed
 * the store behind its back (restore, load, import, clear).
 *
 * With entry/attribute timeouts above 0 and keep_cache, the kernel would go
 * on showing the old state. So the command, before it replies, hands the
 * keys that changed (the control plane diffs the store before and after) to
 * the notifier thread and waits for it. For each changed key that the
 * kernel knows (its node exists) the thread sends
 * fuse_lowlevel_notify_inval_entry and _inval_inode, or only _inval_inode
 * for a file that is still a file (same name, same node); a directory of its path
 * that no longer exists is invalidated too (the kernel then drops all it
 * cached below it). A directory whose marker changed but which still exists
 * only has its attributes dropped: dropping its entry would throw away
 * everything cached below it (169 ms for 20,000 cached files). The cost
 * follows the number of changes, not the size of the store.
 *
 * When most of what the kernel knows changed (or too many keys changed to
 * list), one cache epoch (Linux 6.16) replaces the notes: every name the
 * kernel cached is looked up again at its next use, and file nodes leave
 * the name table first, so that each lookup gives a new inode. On an older
 * kernel the root's entries are invalidated instead: the kernel drops each
 * with everything below it (d_invalidate).
 *
 * Notifications are sent from that thread, never from a handler and never
 * with fs->lock held, as libfuse requires. The wait is bounded
 * (NOTIFY_WAIT_SECONDS): a stuck notification can make a command reply
 * before every cache is dropped, never hang it. With timeouts of 0 the
 * kernel caches nothing and nothing is sent.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fs_internal.h"
#include "s3mem/loop.h"

#define NOTIFY_WAIT_SECONDS 5
#define DEPTH_MAX 64
#define NOTIFY_SPLIT_MIN 2048

/* FUSE_NOTIFY_INC_EPOCH (Linux 6.16, protocol 7.44; libfuse 3.14 has no
 * call for it): no payload; every dentry the kernel cached before it fails
 * its next revalidation, so the next path walk looks each name up again.
 * Older kernels refuse the code with EINVAL. From EPOCH_MIN changed keys,
 * when they are at least half of the nodes the kernel knows, one epoch
 * replaces a note per key (3-4 us each, 36-83 ms for 20,000). */
#define NOTIFY_INC_EPOCH 8
#define EPOCH_MIN 512

enum epoch_support { EPOCH_UNTRIED, EPOCH_WORKS, EPOCH_REFUSED };

/* The kernel's struct fuse_out_header: a note is a reply whose unique is 0
 * and whose error is the note's code. */
struct note_header {
    uint32_t len;
    int32_t error;
    uint64_t unique;
};

struct entry_note {
    fuse_ino_t parent;             /* 0: no entry, only the inode */
    fuse_ino_t ino;
    char *name;                    /* owned */
    size_t name_len;
    char *dir_key;                 /* owned: set for directories of a path,
                                    * noted only when gone from the store */
    bool marker;                   /* a directory's own marker changed: its
                                    * attributes always, its entry (which
                                    * drops all below it) only when gone */
    const char *file_key;          /* borrowed from the command's key list
                                    * (outlives the notes): set for a file's
                                    * own key; while it is still a file only
                                    * its inode (attributes and pages) is
                                    * dropped, not its entry */
};

struct notes {
    struct entry_note *items;
    size_t count;
    size_t cap;
};

static void notes_add(struct notes *notes, fuse_ino_t parent, const struct fs_node *node,
                      const char *dir_key, size_t dir_key_len, bool marker)
{
    if (notes->count == notes->cap) {
        size_t cap = notes->cap ? notes->cap * 2 : 64;
        struct entry_note *items = s3m_realloc(notes->items, cap * sizeof(*items));
        if (!items)
            return; /* best effort: the kernel's timeout still applies */
        notes->items = items;
        notes->cap = cap;
    }
    struct entry_note *note = &notes->items[notes->count];
    memset(note, 0, sizeof(*note));
    note->parent = parent;
    note->ino = node_ino(node);
    if (node_name(node)) {
        note->name = s3m_strndup(node_name(node), node->name_len);
        note->name_len = note->name ? node->name_len : 0;
    }
    if (dir_key)
        note->dir_key = s3m_strndup(dir_key, dir_key_len);
    note->marker = marker;
    notes->count++;
}

/* Notes the root and its linked children (everything changed). */
static void note_top_level(struct s3m_fs *fs, struct notes *notes)
{
    struct node_table *t = &fs->nodes;
    notes_add(notes, 0, fs->root, NULL, 0, false);
    for (size_t b = 0; b < t->bucket_count; b++)
        for (struct fs_node *node = t->by_name[b]; node; node = node->name_next)
            if (node->kind == NODE_PATH && node->parent == fs->root && node->linked)
                notes_add(notes, FS_ROOT_INO, node, NULL, 0, false);
}

/* True when node lies in a read-only snapshot view (whose objects belong
 * to the snapshot's store, which no command replaces). */
static bool in_snapshot_view(const struct fs_node *node)
{
    for (; node; node = node->parent)
        if (node->kind == NODE_SNAPSHOT_ROOT)
            return true;
    return false;
}

/*
 * An open file whose object the command replaced (restore, load, import
 * and clear put new objects in the store; handles keep the old one) is
 * like a file replaced by rename: its open descriptors go on with the old
 * file, and the name must lead to a new inode. Otherwise the kernel would
 * share one inode, and its pages, between the old file and the new one:
 * a new open could read pages of the old file, or what a descriptor
 * opened before the command wrote after it. So such a node leaves the name
 * table (the next lookup makes a new node) and its entry and pages are
 * dropped. Walks every node: about 0.2 ms for 20,000.
 */
static void note_replaced_open_files(struct s3m_fs *fs, struct notes *notes)
{
    struct node_table *t = &fs->nodes;
    for (size_t b = 0; b < t->bucket_count; b++)
        for (struct fs_node *node = t->by_name[b]; node; node = node->name_next) {
            if (node->kind != NODE_PATH || node->open_count == 0 ||
                !node->linked || !node->open_obj || in_snapshot_view(node) ||
                s3m_object_attached(fs->store, node->open_obj))
                continue;
            notes_add(notes, node_ino(node->parent), node, NULL, 0, false);
            node_unlink(fs, node);
        }
}

/* Notes what the kernel may cache of key: its node, and the directories of
 * its path (checked later against the store). last_dir[] skips directories
 * the previous (sorted) key already noted. */
static void note_key(struct s3m_fs *fs, const char *key, struct notes *notes,
                     fuse_ino_t *last_dir)
{
    if (strncmp(key, fs->key_prefix, fs->key_prefix_len) != 0)
        return;
    const char *rest = key + fs->key_prefix_len;
    struct fs_node *node = fs->root;
    size_t depth = 0;
    while (*rest) {
        const char *slash = strchr(rest, '/');
        size_t len = slash ? (size_t)(slash - rest) : strlen(rest);
        struct fs_node *child = len ? node_find(fs, node, rest, len) : NULL;
        if (!child)
            return; /* the kernel knows nothing below */
        bool last = !slash || slash[1] == '\0';
        if (last && slash) {        /* a directory marker */
            notes_add(notes, node_ino(node), child, key, strlen(key), true);
            return;
        }
        if (last) {
            size_t before = notes->count;
            notes_add(notes, node_ino(node), child, NULL, 0, false);
            if (notes->count > before)
                notes->items[before].file_key = key;
            return;
        }
        if (depth >= DEPTH_MAX || last_dir[depth] != node_ino(child)) {
            if (depth < DEPTH_MAX)
                last_dir[depth] = node_ino(child);
            notes_add(notes, node_ino(node), child, key, (size_t)(slash - key) + 1,
                      false);
        }
        depth++;
        node = child;
        rest = slash + 1;
    }
}

/* Takes the file nodes out of the name table, but for open ones (a
 * replaced open file left it already; one whose object stayed must keep
 * its inode, which its descriptors write through): the next lookup of each
 * name makes a new node, so the kernel gets a new inode for it, never one
 * with an old file's pages (keep_cache; a changed file may keep its size
 * and mtime). The kernel drops the old inodes anyway: the epoch fails
 * their names, and it keeps no inode without one. Directories keep their
 * nodes: the lookup after the epoch gives the kernel their attributes, and
 * it caches no directory contents. About 0.3 ms for 20,000 nodes. */
static void unlink_file_nodes(struct s3m_fs *fs)
{
    struct node_table *t = &fs->nodes;
    for (size_t b = 0; b < t->bucket_count; b++)
        for (struct fs_node *node = t->by_name[b]; node; node = node->name_next)
            if (node->kind == NODE_PATH && !node->is_dir && node->open_count == 0 &&
                !in_snapshot_view(node))
                node_unlink(fs, node);
}

static int send_epoch(struct s3m_fs *fs)
{
    struct note_header out = {.len = sizeof(out), .error = NOTIFY_INC_EPOCH};
    ssize_t n = write(fuse_session_fd(fs->session), &out, sizeof(out));
    if (n == (ssize_t)sizeof(out))
        return 0;
    return n < 0 ? -errno : -EIO;
}

/* True when one epoch should replace the notes of keys (NULL: everything
 * changed). The first time, sends one to learn whether the kernel takes
 * it: an early epoch only costs lookups. */
static bool want_epoch(struct s3m_fs *fs, char **keys, size_t count)
{
    if (fs->epoch_support == EPOCH_REFUSED)
        return false;
    if (keys) {
        pthread_mutex_lock(&fs->lock);
        size_t known = fs->nodes.count;
        pthread_mutex_unlock(&fs->lock);
        if (count < EPOCH_MIN || count < known / 2)
            return false;
    }
    if (fs->epoch_support == EPOCH_UNTRIED) {
        int rc = send_epoch(fs);
        if (rc == 0)
            fs->epoch_support = EPOCH_WORKS;
        if (rc == -EINVAL) {
            fs->epoch_support = EPOCH_REFUSED;
            s3m_log("the kernel has no FUSE_NOTIFY_INC_EPOCH (Linux 6.16): "
                    "large changes are noted key by key");
        }
    }
    return fs->epoch_support == EPOCH_WORKS;
}

/* The epoch's notes: the root's attributes (its dentry is never looked up
 * again) and replaced open files; file nodes leave the table. */
static void collect_epoch_notes(struct s3m_fs *fs, struct notes *notes)
{
    pthread_mutex_lock(&fs->lock);
    note_replaced_open_files(fs, notes);
    notes_add(notes, 0, fs->root, NULL, 0, false);
    unlink_file_nodes(fs);
    pthread_mutex_unlock(&fs->lock);
}

static void collect_notes(struct s3m_fs *fs, char **keys, size_t count,
                          struct notes *notes)
{
    fuse_ino_t last_dir[DEPTH_MAX] = {0};
    pthread_mutex_lock(&fs->lock);
    note_replaced_open_files(fs, notes);
    if (!keys)
        note_top_level(fs, notes);
    for (size_t i = 0; keys && i < count; i++)
        note_key(fs, keys[i], notes, last_dir);
    pthread_mutex_unlock(&fs->lock);
}

/* True when key is still a file (fs_kind_of: not shadowed by a directory
 * of its name): its name still leads to the same node, and the kernel's
 * entry may stay (dropping 20,000 entries costs the kernel about 150 ms). */
static bool still_a_file(struct s3m_fs *fs, const char *key)
{
    struct fs_key file = {.store = fs->store, .len = strlen(key)};
    if (file.len >= sizeof(file.text))
        return false; /* drop the entry too: always safe */
    memcpy(file.text, key, file.len + 1);
    return fs_kind_of(fs, &file) == S_IFREG;
}

/* A note's entry goes when its name no longer leads where it did: a file
 * key that is no longer a file, a directory gone from the store, or any
 * other node noted (the root's children, replaced open files). */
static bool entry_gone(struct s3m_fs *fs, const struct entry_note *note)
{
    if (note->file_key)
        return !still_a_file(fs, note->file_key);
    return !note->dir_key || !s3m_store_has_prefix(fs->store, note->dir_key);
}

/* Sends count notes from items and frees their names. */
static void send_range(struct s3m_fs *fs, struct entry_note *items, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        struct entry_note *note = &items[i];
        bool gone = entry_gone(fs, note);
        if (gone && note->parent && note->name)
            fuse_lowlevel_notify_inval_entry(fs->session, note->parent, note->name,
                                             note->name_len);
        if ((gone && !note->dir_key) || note->marker || note->file_key)
            fuse_lowlevel_notify_inval_inode(fs->session, note->ino, 0, 0);
        free(note->name);
        free(note->dir_key);
    }
}

struct send_job {
    struct s3m_fs *fs;
    struct entry_note *items;      /* borrowed: a range of the notes */
    size_t count;
};

static void *send_job_main(void *arg)
{
    struct send_job *job = arg;
    send_range(job->fs, job->items, job->count);
    return NULL;
}

/* Sends every note. Each is one write to /dev/fuse (about 2 us, most of it
 * the kernel's); from NOTIFY_SPLIT_MIN notes on, a second thread sends the
 * second half, while the command that waits for them keeps the other CPUs
 * idle. The notes are independent, so their order does not matter. */
static void send_notes(struct s3m_fs *fs, struct notes *notes)
{
    size_t half = notes->count >= NOTIFY_SPLIT_MIN ? notes->count / 2 : 0;
    struct send_job job = {.fs = fs, .items = notes->items + half,
                           .count = notes->count - half};
    pthread_t helper;
    bool helped = half > 0 && s3m_loop_cpu_count() > 1 &&
                  pthread_create(&helper, NULL, send_job_main, &job) == 0;

    send_range(fs, notes->items, helped ? half : notes->count);
    if (helped)
        pthread_join(helper, NULL);
    free(notes->items);
}

static void free_keys(char **keys, size_t count)
{
    for (size_t i = 0; keys && i < count; i++)
        free(keys[i]);
    free(keys);
}

static void *notifier_main(void *arg)
{
    struct s3m_fs *fs = arg;
    pthread_mutex_lock(&fs->notify_lock);
    while (!fs->notify_stop) {
        if (fs->notify_done == fs->notify_requested) {
            pthread_cond_wait(&fs->notify_wake, &fs->notify_lock);
            continue;
        }
        uint64_t target = fs->notify_requested;
        char **keys = fs->notify_all ? NULL : fs->notify_keys;
        size_t count = fs->notify_key_count;
        if (fs->notify_all)
            free_keys(fs->notify_keys, fs->notify_key_count);
        fs->notify_keys = NULL;
        fs->notify_all = false;
        pthread_mutex_unlock(&fs->notify_lock);
        struct notes notes = {0};
        if (fs->session && want_epoch(fs, keys, count)) {
            collect_epoch_notes(fs, &notes);
            if (send_epoch(fs) != 0)
                s3m_log("cannot send a cache epoch: names stay cached until they time out");
            send_notes(fs, &notes);
        } else if (fs->session) {
            collect_notes(fs, keys, count, &notes);
            send_notes(fs, &notes);
        }
        free_keys(keys, count);
        pthread_mutex_lock(&fs->notify_lock);
        fs->notify_done = target;
        pthread_cond_broadcast(&fs->notify_done_cond);
    }
    pthread_mutex_unlock(&fs->notify_lock);
    return NULL;
}

void fs_notifier_init(struct s3m_fs *fs)
{
    pthread_mutex_init(&fs->notify_lock, NULL);
    pthread_cond_init(&fs->notify_wake, NULL);
    pthread_cond_init(&fs->notify_done_cond, NULL);
}

int s3m_fs_start(struct s3m_fs *fs)
{
    if (fs->timeout <= 0 || fs->notify_running)
        return 0; /* nothing cached: nothing to drop */
    /* S3MEM_CACHE_EPOCH=0 sends notes as on kernels before 6.16 (tests) */
    const char *epoch = getenv("S3MEM_CACHE_EPOCH");
    if (epoch && strcmp(epoch, "0") == 0)
        fs->epoch_support = EPOCH_REFUSED;
    int rc = pthread_create(&fs->notify_thread, NULL, notifier_main, fs);
    if (rc) {
        s3m_log("cannot start the cache notifier: caches stay until they time out");
        return -rc;
    }
    fs->notify_running = true;
    if (fs->ctl)
        s3m_ctl_on_change(fs->ctl, s3m_fs_invalidate, fs);
    return 0;
}

void fs_notifier_stop(struct s3m_fs *fs)
{
    if (fs->notify_running) {
        pthread_mutex_lock(&fs->notify_lock);
        fs->notify_stop = true;
        pthread_cond_signal(&fs->notify_wake);
        pthread_mutex_unlock(&fs->notify_lock);
        pthread_join(fs->notify_thread, NULL);
        fs->notify_running = false;
    }
    free_keys(fs->notify_keys, fs->notify_key_count);
    fs->notify_keys = NULL;
    pthread_cond_destroy(&fs->notify_done_cond);
    pthread_cond_destroy(&fs->notify_wake);
    pthread_mutex_destroy(&fs->notify_lock);
}

void s3m_fs_invalidate(void *ctx, char **keys, size_t count)
{
    struct s3m_fs *fs = ctx;
    if (!fs->notify_running) {
        free_keys(keys, count);
        return;
    }
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += NOTIFY_WAIT_SECONDS;
    pthread_mutex_lock(&fs->notify_lock);
    if (fs->notify_done < fs->notify_requested || !keys) {
        /* an earlier request is still going: drop everything this time */
        free_keys(keys, count);
        free_keys(fs->notify_keys, fs->notify_key_count);
        fs->notify_keys = NULL;
        fs->notify_all = true;
    } else {
        fs->notify_keys = keys;
        fs->notify_key_count = count;
        fs->notify_all = false;
    }
    uint64_t target = ++fs->notify_requested;
    pthread_cond_signal(&fs->notify_wake);
    int rc = 0;
    while (fs->notify_done < target && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&fs->notify_done_cond, &fs->notify_lock, &until);
    pthread_mutex_unlock(&fs->notify_lock);
    if (rc == ETIMEDOUT)
        s3m_log("cache invalidation still running after %d s", NOTIFY_WAIT_SECONDS);
}
