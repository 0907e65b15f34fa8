/*
 * notify.c - dropping the kernel's caches after a control command changed
 * the store behind its back (restore, load, import, clear).
 *
 * With entry/attribute timeouts above 0 and keep_cache, the kernel would go
 * on showing the old state. So the command, before it replies, hands the
 * keys that changed (the control plane diffs the store before and after) to
 * the notifier thread and waits for it. A changed file key is a new object
 * (no command changes an object in place), so its name must lead to a new
 * inode: for each whose
 * directory the kernel knows (its node exists) the thread sends
 * fuse_lowlevel_notify_inval_entry, and the kernel drops the old inode,
 * and its pages, with its last name. A directory of its path that no
 * longer exists is invalidated too (the kernel then drops all it cached
 * below it). A directory whose marker changed but which still exists only
 * has its attributes dropped: dropping its entry would throw away
 * everything cached below it (169 ms for 20,000 cached files). The cost
 * follows the number of changes, not the size of the store.
 *
 * When most of what the kernel knows changed (or too many keys changed to
 * list), one cache epoch (Linux 6.16) replaces the notes: every name the
 * kernel cached is looked up again at its next use. On an older kernel the
 * root's entries are invalidated instead: the kernel drops each directory
 * with everything below it (d_invalidate); a file at the top level keeps
 * its cached attributes until they time out, and its next open or lookup
 * past them meets ESTALE (files.c) and looks the name up again.
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
 * when they are at least half of the inodes the kernel knows (its nodes and
 * pinned files), one epoch replaces a note per key (3-4 us each, 36-83 ms
 * for 20,000). */
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
    fuse_ino_t ino;                /* 0 for a file key: only the entry */
    char *name;                    /* owned */
    size_t name_len;
    char *dir_key;                 /* owned: set for directories of a path,
                                    * noted only when gone from the store */
    bool marker;                   /* a directory's own marker changed: its
                                    * attributes always, its entry (which
                                    * drops all below it) only when gone */
    bool file;                     /* a file key: its entry always goes */
};

struct notes {
    struct entry_note *items;
    size_t count;
    size_t cap;
};

/* A new zeroed note, or NULL (best effort: the kernel's timeout still
 * applies). */
static struct entry_note *notes_next(struct notes *notes)
{
    if (notes->count == notes->cap) {
        size_t cap = notes->cap ? notes->cap * 2 : 64;
        struct entry_note *items = s3m_realloc(notes->items, cap * sizeof(*items));
        if (!items)
            return NULL;
        notes->items = items;
        notes->cap = cap;
    }
    struct entry_note *note = &notes->items[notes->count++];
    memset(note, 0, sizeof(*note));
    return note;
}

static void notes_add(struct notes *notes, fuse_ino_t parent, const struct fs_node *node,
                      const char *dir_key, size_t dir_key_len, bool marker)
{
    struct entry_note *note = notes_next(notes);
    if (!note)
        return;
    note->parent = parent;
    note->ino = node_ino(node);
    if (node_name(node)) {
        note->name = s3m_strndup(node_name(node), node->name_len);
        note->name_len = note->name ? node->name_len : 0;
    }
    if (dir_key)
        note->dir_key = s3m_strndup(dir_key, dir_key_len);
    note->marker = marker;
}

/* Notes the entry (parent, name) of a changed file key. */
static void notes_add_file(struct notes *notes, fuse_ino_t parent,
                           const char *name, size_t len)
{
    struct entry_note *note = notes_next(notes);
    if (!note)
        return;
    note->parent = parent;
    note->name = s3m_strndup(name, len);
    note->name_len = note->name ? len : 0;
    note->file = true;
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

/* Notes what the kernel may cache of key: its entry, and the directories of
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
        if (!slash) {               /* the file itself: it has no node */
            if (len)
                notes_add_file(notes, node_ino(node), rest, len);
            return;
        }
        struct fs_node *child = len ? node_find(fs, node, rest, len) : NULL;
        if (!child)
            return; /* the kernel knows nothing below */
        bool last = slash[1] == '\0';
        if (last) {                 /* a directory marker */
            notes_add(notes, node_ino(node), child, key, strlen(key), true);
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

struct replaced_ctx {
    struct s3m_fs *fs;
    struct notes *notes;
    fuse_ino_t last_dir[DEPTH_MAX];
};

static void note_replaced(void *arg, const char *key)
{
    struct replaced_ctx *ctx = arg;
    note_key(ctx->fs, key, ctx->notes, ctx->last_dir);
}

/*
 * An open file whose object the command replaced (restore, load, import
 * and clear put new objects in the store; handles keep the old one) is
 * like a file replaced by rename: its open descriptors go on with the old
 * file, and its name must lead to the new one. The open handle keeps the
 * old object from answering ESTALE, so its name is noted whatever the
 * command listed: otherwise a new open through the kernel's old entry
 * would read the old file. Walks the open handles (fs->lock held).
 */
static void note_replaced_open_files(struct s3m_fs *fs, struct notes *notes)
{
    struct replaced_ctx ctx = {.fs = fs, .notes = notes};
    fs_files_replaced(fs, note_replaced, &ctx);
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
        known += s3m_store_pinned(fs->store);
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

/* The epoch's notes: replaced open files, and the root's attributes (its
 * dentry is never looked up again). */
static void collect_epoch_notes(struct s3m_fs *fs, struct notes *notes)
{
    pthread_mutex_lock(&fs->lock);
    note_replaced_open_files(fs, notes);
    notes_add(notes, 0, fs->root, NULL, 0, false);
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

/* A note's entry goes when its name no longer leads where it did: a
 * changed file key (a new object, or none), a directory gone from the
 * store, or any other node noted (the root's children). */
static bool entry_gone(struct s3m_fs *fs, const struct entry_note *note)
{
    if (note->file)
        return true;
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
        if (note->ino && ((gone && !note->dir_key) || note->marker))
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
