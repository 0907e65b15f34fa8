/*
 * notify.c - dropping the kernel's caches after a control command changed
 * the store behind its back (restore, load, import, clear).
 *
 * With entry/attribute timeouts above 0 and keep_cache, the kernel would go
 * on showing the old state. So the command, before it replies, asks the
 * notifier thread to invalidate the root's entries (the kernel drops each
 * one with everything cached below it: d_invalidate) and the root inode
 * (fuse_lowlevel_notify_inval_entry / _inval_inode), and waits for it. Every
 * path is then looked up again, and each lookup reply refreshes the inode's
 * attributes; a changed size or mtime drops its pages (auto_inval_data).
 * This costs one notification per top-level name, not one per file. The
 * notifications are sent from that thread, never from a handler and never
 * with fs->lock held, as libfuse requires. With timeouts of 0 the kernel
 * asks us every time and nothing needs to be sent.
 *
 * The wait is bounded (NOTIFY_WAIT_SECONDS): a stuck notification can make
 * a command reply before every cache is dropped, never hang it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fs_internal.h"

#define NOTIFY_WAIT_SECONDS 5

struct entry_note {
    fuse_ino_t parent;
    fuse_ino_t ino;
    char *name;                    /* owned; NULL for root */
    size_t name_len;
};

/* Copies the root and its linked children under fs->lock. */
static struct entry_note *collect_notes(struct s3m_fs *fs, size_t *count)
{
    pthread_mutex_lock(&fs->lock);
    struct node_table *t = &fs->nodes;
    struct entry_note *notes = s3m_calloc(t->count ? t->count : 1, sizeof(*notes));
    size_t n = 0;
    for (size_t b = 0; notes && b < t->bucket_count; b++)
        for (struct fs_node *node = t->by_ino[b]; node; node = node->ino_next) {
            bool top = node == fs->root || (node->parent == fs->root && node->linked);
            if (node->kind != NODE_PATH || !top || n == t->count)
                continue;
            struct entry_note *note = &notes[n];
            note->ino = node->ino;
            if (node->parent && node->linked) {
                note->parent = node->parent->ino;
                note->name = s3m_strndup(node->name, node->name_len);
                note->name_len = note->name ? node->name_len : 0;
            }
            n++;
        }
    pthread_mutex_unlock(&fs->lock);
    *count = n;
    return notes;
}

static void send_notes(struct s3m_fs *fs)
{
    size_t count = 0;
    struct entry_note *notes = collect_notes(fs, &count);
    for (size_t i = 0; i < count; i++) {
        if (notes[i].name) {
            fuse_lowlevel_notify_inval_entry(fs->session, notes[i].parent,
                                             notes[i].name, notes[i].name_len);
            free(notes[i].name);
        }
        else
            fuse_lowlevel_notify_inval_inode(fs->session, notes[i].ino, 0, 0);
    }
    free(notes);
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
        pthread_mutex_unlock(&fs->notify_lock);
        if (fs->session)
            send_notes(fs);
        pthread_mutex_lock(&fs->notify_lock);
        fs->notify_done = target;
        pthread_cond_broadcast(&fs->notify_done_cond);
    }
    pthread_mutex_unlock(&fs->notify_lock);
    return NULL;
}

int fs_notifier_start(struct s3m_fs *fs)
{
    pthread_mutex_init(&fs->notify_lock, NULL);
    pthread_cond_init(&fs->notify_wake, NULL);
    pthread_cond_init(&fs->notify_done_cond, NULL);
    if (fs->timeout <= 0)
        return 0; /* nothing cached: nothing to drop */
    int rc = pthread_create(&fs->notify_thread, NULL, notifier_main, fs);
    if (rc == 0)
        fs->notify_running = true;
    return -rc;
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
    pthread_cond_destroy(&fs->notify_done_cond);
    pthread_cond_destroy(&fs->notify_wake);
    pthread_mutex_destroy(&fs->notify_lock);
}

void s3m_fs_invalidate_all(void *ctx)
{
    struct s3m_fs *fs = ctx;
    if (!fs->notify_running)
        return;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += NOTIFY_WAIT_SECONDS;
    pthread_mutex_lock(&fs->notify_lock);
    uint64_t target = ++fs->notify_requested;
    pthread_cond_signal(&fs->notify_wake);
    int rc = 0;
    while (fs->notify_done < target && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&fs->notify_done_cond, &fs->notify_lock, &until);
    pthread_mutex_unlock(&fs->notify_lock);
    if (rc == ETIMEDOUT)
        s3m_log("cache invalidation still running after %d s", NOTIFY_WAIT_SECONDS);
}
