/*
 * reaper.c - frees what a swap or clear took out of a store after the
 * command has returned, on a thread of its own (as redis's lazyfree).
 *
 * Design note: load, restore, import with clear and clear replace every
 * object; freeing the 20,000 they replaced (object, metadata, body and
 * chunk each) took 8 to 12 ms of the command's time. While the reaper
 * runs, store.c hands it the detached list instead (reaper_release); a
 * batch that cannot be queued (no memory, not running) is freed at once.
 * What waits here still counts in s3m_body_memory_used, so a write that
 * max_memory would refuse first waits for the reaper (reaper_drain), as
 * do store stats: nobody sees memory that is only waiting to be freed.
 * The objects are detached (no index holds them); open handles keep their
 * own references, which the atomic refcounts make safe to drop here.
 *
 * Locking: reaper.lock guards every field of reaper; no store lock is ever
 * taken here, so a thread holding one may wait for the reaper.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "internal.h"
#include "s3mem/util.h"

struct reap_batch {
    struct reap_batch *next;
    struct s3m_object *first;      /* owned: a detached list (forward[0]) */
    struct s3m_object **buckets;   /* owned: its old hash table */
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;           /* a batch came, or stop */
    pthread_cond_t idle;           /* nothing queued nor being freed */
    struct reap_batch *queue;      /* owned: batches waiting */
    bool busy;                     /* the thread is freeing a batch */
    bool running;
    bool stop;
    pthread_t thread;
} reaper = {.lock = PTHREAD_MUTEX_INITIALIZER,
            .wake = PTHREAD_COND_INITIALIZER,
            .idle = PTHREAD_COND_INITIALIZER};

static void *reaper_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&reaper.lock);
    for (;;) {
        while (!reaper.queue && !reaper.stop)
            pthread_cond_wait(&reaper.wake, &reaper.lock);
        struct reap_batch *batch = reaper.queue;
        if (!batch)
            break;                 /* stopped, and everything is freed */
        reaper.queue = batch->next;
        reaper.busy = true;
        pthread_mutex_unlock(&reaper.lock);
        objects_release(batch->first, batch->buckets);
        free(batch);
        pthread_mutex_lock(&reaper.lock);
        reaper.busy = false;
        if (!reaper.queue)
            pthread_cond_broadcast(&reaper.idle);
    }
    pthread_mutex_unlock(&reaper.lock);
    return NULL;
}

void reaper_release(struct s3m_object *first, struct s3m_object **buckets)
{
    struct reap_batch *batch = NULL;
    pthread_mutex_lock(&reaper.lock);
    if (reaper.running && !reaper.stop &&
        (batch = s3m_malloc(sizeof(*batch)))) {
        *batch = (struct reap_batch){.next = reaper.queue, .first = first,
                                     .buckets = buckets};
        reaper.queue = batch;
        pthread_cond_signal(&reaper.wake);
    }
    pthread_mutex_unlock(&reaper.lock);
    if (!batch)
        objects_release(first, buckets);
}

bool reaper_drain(void)
{
    pthread_mutex_lock(&reaper.lock);
    bool waited = reaper.queue || reaper.busy;
    while (reaper.queue || reaper.busy)
        pthread_cond_wait(&reaper.idle, &reaper.lock);
    pthread_mutex_unlock(&reaper.lock);
    return waited;
}

int s3m_store_reaper_start(void)
{
    pthread_mutex_lock(&reaper.lock);
    int rc = 0;
    if (!reaper.running) {
        reaper.stop = false;
        rc = -pthread_create(&reaper.thread, NULL, reaper_main, NULL);
        reaper.running = rc == 0;
    }
    pthread_mutex_unlock(&reaper.lock);
    return rc;
}

void s3m_store_reaper_stop(void)
{
    pthread_mutex_lock(&reaper.lock);
    bool running = reaper.running;
    reaper.stop = true;
    pthread_cond_signal(&reaper.wake);
    pthread_mutex_unlock(&reaper.lock);
    if (running)
        pthread_join(reaper.thread, NULL);
    pthread_mutex_lock(&reaper.lock);
    reaper.running = false;
    pthread_mutex_unlock(&reaper.lock);
}
