/*
 * verify.c - checks loaded bodies against the MD5 their etag claims, on a
 * second thread while the loader parses on (load spent a sixth of its time
 * hashing while the other CPU idled).
 *
 * The loader stores each object without an MD5 and hands over a reference
 * to its body with the claim (the checker's s3m_body_md5 then caches the
 * real MD5). A bounded ring (VERIFY_RING items) keeps memory in check, the
 * loader waiting when it is full. Both sides move in batches
 * (VERIFY_BATCH): the checker wakes when a batch waits and takes it out
 * under one lock hold, and wakes a waiting loader once a batch of room is
 * free (woken per item, the two threads ping-ponged: a seventh of load's
 * time went to futex wake-ups once hashing became the slower side). The
 * first mismatch is kept with what its message needs; after it, bodies are
 * only freed. fmt_verifier_finish waits for every check, so
 * the loader reports a mismatch before any error it found later in the
 * file, as a sequential check would.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define VERIFY_RING 256
/* The checker is woken once this many wait: waking it for each body cost
 * the loader a system call per object, as much as the hashing it saved. */
#define VERIFY_BATCH 64

struct verify_item {
    struct s3m_body *body;         /* owned reference */
    unsigned char claimed[16];
    char shown[FMT_SHOWN_MAX];
    char etag[41];
};

struct fmt_verifier {
    pthread_t thread;
    pthread_mutex_t lock;          /* guards the fields below */
    pthread_cond_t more;           /* an item arrived, or closed */
    pthread_cond_t room;           /* a batch left, or a mismatch */
    struct verify_item ring[VERIFY_RING];
    size_t first, count;
    bool adder_waits;              /* the loader sleeps on room */
    bool closed;
    bool failed;
    struct fmt_verify_failure failure;
};

static void check_item(struct fmt_verifier *v, struct verify_item *item)
{
    unsigned char md5[16];
    s3m_body_md5(item->body, md5); /* computed from the bytes, then cached */
    if (memcmp(md5, item->claimed, 16) == 0)
        return;
    pthread_mutex_lock(&v->lock);
    if (!v->failed) {
        v->failed = true;
        memcpy(v->failure.shown, item->shown, sizeof(item->shown));
        memcpy(v->failure.etag, item->etag, sizeof(item->etag));
        s3m_md5_hex(md5, v->failure.actual);
        pthread_cond_broadcast(&v->room);
    }
    pthread_mutex_unlock(&v->lock);
}

/* Moves up to VERIFY_BATCH items from the ring into batch (lock held). */
static size_t take_batch(struct fmt_verifier *v, struct verify_item *batch)
{
    size_t n = v->count < VERIFY_BATCH ? v->count : VERIFY_BATCH;

    for (size_t i = 0; i < n; i++) {
        batch[i] = v->ring[v->first];
        v->first = (v->first + 1) % VERIFY_RING;
    }
    v->count -= n;
    return n;
}

static void *verifier_main(void *arg)
{
    struct fmt_verifier *v = arg;
    struct verify_item batch[VERIFY_BATCH];

    pthread_mutex_lock(&v->lock);
    for (;;) {
        while (v->count < VERIFY_BATCH && !v->closed)
            pthread_cond_wait(&v->more, &v->lock);
        size_t n = take_batch(v, batch);
        if (n == 0)
            break;                 /* closed and drained */
        bool failed = v->failed;
        if (v->adder_waits)        /* a batch of room: wake the loader */
            pthread_cond_signal(&v->room);
        pthread_mutex_unlock(&v->lock);
        for (size_t i = 0; i < n; i++) {
            if (!failed)
                check_item(v, &batch[i]);
            s3m_body_unref(batch[i].body);
        }
        pthread_mutex_lock(&v->lock);
    }
    pthread_mutex_unlock(&v->lock);
    return NULL;
}

struct fmt_verifier *fmt_verifier_start(void)
{
    struct fmt_verifier *v = s3m_calloc(1, sizeof(*v));
    if (!v)
        return NULL;
    if (pthread_mutex_init(&v->lock, NULL) != 0) {
        free(v);
        return NULL;
    }
    pthread_cond_init(&v->more, NULL);
    pthread_cond_init(&v->room, NULL);
    if (fmt_thread_start(&v->thread, verifier_main, v) != 0) {
        pthread_cond_destroy(&v->more);
        pthread_cond_destroy(&v->room);
        pthread_mutex_destroy(&v->lock);
        free(v);
        return NULL;
    }
    return v;
}

int fmt_verifier_add(struct fmt_verifier *v, struct s3m_body *body,
                     const unsigned char claimed[16], const char *shown,
                     const char *etag)
{
    pthread_mutex_lock(&v->lock);
    while (v->count == VERIFY_RING && !v->failed) {
        v->adder_waits = true;
        pthread_cond_wait(&v->room, &v->lock);
    }
    v->adder_waits = false;
    if (v->failed || v->closed) {
        pthread_mutex_unlock(&v->lock);
        s3m_body_unref(body);
        return -1;
    }
    struct verify_item *item = &v->ring[(v->first + v->count) % VERIFY_RING];
    item->body = body;
    memcpy(item->claimed, claimed, 16);
    snprintf(item->shown, sizeof(item->shown), "%s", shown);
    snprintf(item->etag, sizeof(item->etag), "%s", etag);
    if (++v->count == VERIFY_BATCH)
        pthread_cond_signal(&v->more);
    pthread_mutex_unlock(&v->lock);
    return 0;
}

bool fmt_verifier_finish(struct fmt_verifier *v, struct fmt_verify_failure *failure)
{
    pthread_mutex_lock(&v->lock);
    if (!v->closed) {
        v->closed = true;
        pthread_cond_signal(&v->more);
        pthread_mutex_unlock(&v->lock);
        pthread_join(v->thread, NULL);
        pthread_mutex_lock(&v->lock);
    }
    bool failed = v->failed;
    if (failed)
        *failure = v->failure;
    pthread_mutex_unlock(&v->lock);
    return failed;
}

void fmt_verifier_free(struct fmt_verifier *v)
{
    if (!v)
        return;
    struct fmt_verify_failure ignored;
    fmt_verifier_finish(v, &ignored);
    pthread_cond_destroy(&v->more);
    pthread_cond_destroy(&v->room);
    pthread_mutex_destroy(&v->lock);
    free(v);
}
