/*
 * chunk_pool.c - full-size chunk allocations, faulted in ahead of need.
 *
 * Design note: writing a big file allocates one 64 KiB chunk per 64 KiB
 * written. On memory the process never touched, each chunk costs 16 page
 * faults in which the kernel zeroes the page: about 40% of the daemon's
 * time in a 1 GiB write (perf: clear_page_erms, exc_page_fault), all of it
 * on the CPU that serves the writer. A second write into freed memory ran
 * twice as fast. So a pool thread keeps up to POOL_MAX allocations of a
 * full chunk's size ready, every page touched, and chunk_pool_take hands
 * them out; the faults then happen on another CPU, ahead of the writer.
 *
 * The thread starts filling only once a full chunk was asked for, so a
 * store of small objects never holds the pool's memory. A pooled block is
 * an ordinary malloc allocation: whoever takes it frees it with free().
 *
 * Locking: pool.lock guards every field of pool.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "internal.h"
#include "s3mem/util.h"

#define POOL_MAX 128               /* 8 MiB of chunks ready */
#define POOL_LOW (POOL_MAX / 2)    /* below this the thread refills */

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    void *blocks[POOL_MAX];        /* owned: touched allocations */
    size_t count;
    bool wanted;                   /* a full chunk was asked for */
    bool running;
    bool stop;
    pthread_t thread;
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

/* A new allocation of size bytes with every page written once. */
static void *block_new_touched(size_t size, size_t page)
{
    volatile char *block = s3m_malloc(size);
    if (block)
        for (size_t at = 0; at < size; at += page)
            block[at] = 0;
    return (void *)block;
}

static bool needs_refill(void)
{
    return pool.wanted && pool.count < POOL_MAX;
}

static void *pool_main(void *arg)
{
    size_t size = chunk_alloc_size(S3M_CHUNK_SIZE);
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    (void)arg;
    pthread_mutex_lock(&pool.lock);
    while (!pool.stop) {
        if (!needs_refill()) {
            pthread_cond_wait(&pool.wake, &pool.lock);
            continue;
        }
        pthread_mutex_unlock(&pool.lock);
        void *block = block_new_touched(size, page);
        pthread_mutex_lock(&pool.lock);
        if (!block)
            pool.wanted = false;   /* no memory: wait for the next ask */
        else if (pool.count < POOL_MAX)
            pool.blocks[pool.count++] = block;
        else
            free(block);
    }
    pthread_mutex_unlock(&pool.lock);
    return NULL;
}

int s3m_body_pool_start(void)
{
    int rc = 0;
    pthread_mutex_lock(&pool.lock);
    if (!pool.running) {
        pool.stop = false;
        rc = pthread_create(&pool.thread, NULL, pool_main, NULL);
        pool.running = rc == 0;
    }
    pthread_mutex_unlock(&pool.lock);
    return -rc;
}

void s3m_body_pool_stop(void)
{
    pthread_mutex_lock(&pool.lock);
    bool running = pool.running;
    pool.stop = true;
    pthread_cond_signal(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
    if (running)
        pthread_join(pool.thread, NULL);
    pthread_mutex_lock(&pool.lock);
    while (pool.count > 0)
        free(pool.blocks[--pool.count]);
    pool.running = false;
    pool.wanted = false;
    pthread_mutex_unlock(&pool.lock);
}

void *chunk_pool_take(void)
{
    void *block = NULL;
    pthread_mutex_lock(&pool.lock);
    if (pool.running) {
        if (pool.count > 0)
            block = pool.blocks[--pool.count];
        if (!pool.wanted || pool.count < POOL_LOW) {
            pool.wanted = true;
            pthread_cond_signal(&pool.wake);
        }
    }
    pthread_mutex_unlock(&pool.lock);
    return block;
}
