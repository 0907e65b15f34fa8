/*
 * hasher.c - MD5s of a snapshot's bodies, computed on a second thread ahead
 * of the writer that streams them (save): the first save of a store spends
 * about a third of its time hashing, and the other CPU is idle meanwhile.
 *
 * The hasher walks the bodies in the snapshot's order, skipping any the
 * writer has reached (the writer hashes what is not cached yet itself), and
 * caches each result in the body (s3m_body_md5). Where both hash the same
 * body at once, the first result is kept; they are equal.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "internal.h"

/* Below this many bytes to hash a thread costs more than it saves. */
#define HASHER_MIN_BYTES (256 * 1024)

struct fmt_hasher {
    struct s3m_body **bodies;      /* owned array of owned references
                                    * (NULL: empty or cached) */
    size_t count;                  /* bodies filled */
    size_t cap;
    uint64_t bytes;                /* bytes not hashed yet */
    atomic_size_t writer;          /* index the writer is at */
    atomic_bool stop;
    pthread_t thread;
};

static int collect(void *ctx, const char *key, const struct s3m_object_info *info,
                   struct s3m_body *body)
{
    struct fmt_hasher *hasher = ctx;
    unsigned char md5[16];
    if (hasher->count == hasher->cap) {
        size_t cap = hasher->cap ? hasher->cap * 2 : 1024;
        struct s3m_body **bodies = s3m_realloc(hasher->bodies, cap * sizeof(*bodies));
        if (!bodies)
            return 1;
        hasher->bodies = bodies;
        hasher->cap = cap;
    }
    bool todo = s3m_body_size(body) > 0 && !s3m_body_cached_md5(body, md5);
    hasher->bodies[hasher->count++] = todo ? s3m_body_ref(body) : NULL;
    if (todo)
        hasher->bytes += s3m_body_size(body);
    return 0;
}

static void hasher_free(struct fmt_hasher *hasher)
{
    for (size_t i = 0; i < hasher->count; i++)
        s3m_body_unref(hasher->bodies[i]);
    free(hasher->bodies);
    free(hasher);
}

static void *hasher_main(void *arg)
{
    struct fmt_hasher *hasher = arg;
    unsigned char md5[16];
    for (size_t i = 0; i < hasher->count && !atomic_load(&hasher->stop); i++) {
        size_t at = atomic_load_explicit(&hasher->writer, memory_order_relaxed);
        if (i <= at)
            i = at; /* the writer hashes what it reached: go past it */
        else if (hasher->bodies[i])
            s3m_body_md5(hasher->bodies[i], md5);
    }
    return NULL;
}

struct fmt_hasher *fmt_hasher_start(struct s3m_store *snapshot)
{
    struct fmt_hasher *hasher = s3m_calloc(1, sizeof(*hasher));
    if (!hasher)
        return NULL;
    atomic_init(&hasher->writer, 0);
    atomic_init(&hasher->stop, false);
    if (s3m_store_foreach(snapshot, NULL, collect, hasher) != 0 ||
        hasher->bytes < HASHER_MIN_BYTES ||
        fmt_thread_start(&hasher->thread, hasher_main, hasher) != 0) {
        hasher_free(hasher);
        return NULL; /* the writer hashes everything itself */
    }
    return hasher;
}

void fmt_hasher_at(struct fmt_hasher *hasher, size_t index)
{
    if (hasher)
        atomic_store_explicit(&hasher->writer, index, memory_order_relaxed);
}

void fmt_hasher_stop(struct fmt_hasher *hasher)
{
    if (!hasher)
        return;
    atomic_store(&hasher->stop, true);
    pthread_join(hasher->thread, NULL);
    hasher_free(hasher);
}
