/*
 * body.c - sparse, copy-on-write object bodies.
 *
 * A body is a sorted array of slots (chunk index, chunk). A chunk holds up to
 * S3M_CHUNK_SIZE bytes; it is allocated with a smaller capacity for small
 * objects and grows by doubling. Bytes of the body that no chunk holds (holes,
 * or past a chunk's capacity) read as zeros.
 *
 * Sharing: bodies and chunks are refcounted. A body or chunk with refcount 1
 * belongs to one object and may be changed in place under that object's store
 * write lock; a shared one is never changed: writers copy it first. Readers
 * take a body reference, which makes it shared, so they copy without a lock.
 *
 * The MD5 cache: md5_state goes 0 (none) -> 1 (being written) -> 2 (valid)
 * with atomics, since a shared body may be read under different stores' locks.
 * In-place changes reset it to 0 (only possible while unshared).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "s3mem/util.h"

#define CHUNK_MIN_CAPACITY 64

#define NO_SLOT UINT32_MAX

struct s3m_chunk {
    atomic_uint refcount;
    uint32_t capacity;             /* bytes it holds; the rest reads as zero */
    uint32_t file_slot;            /* its slot in the chunk file (full
                                      chunks, chunk_file.c), or NO_SLOT:
                                      data holds the bytes */
    unsigned char data[];          /* empty for a chunk in the file */
};

struct chunk_slot {
    uint64_t index;                /* chunk number: offset / S3M_CHUNK_SIZE */
    struct s3m_chunk *chunk;       /* owned reference */
};

struct s3m_body {
    atomic_uint refcount;
    uint64_t size;
    size_t count;                  /* slots in use, sorted by index */
    size_t capacity;               /* slots allocated */
    struct chunk_slot *slots;      /* owned */
    atomic_int md5_state;
    unsigned char md5[16];         /* valid when md5_state == 2 */
};

static atomic_uint_fast64_t memory_used;
static const unsigned char zero_page[S3M_CHUNK_SIZE];

uint64_t s3m_body_memory_used(void)
{
    return atomic_load_explicit(&memory_used, memory_order_relaxed);
}

/* ---- chunks --------------------------------------------------------------- */

static const unsigned char *chunk_data(const struct s3m_chunk *chunk)
{
    return chunk->file_slot == NO_SLOT ? chunk->data : chunk_file_data(chunk->file_slot);
}

/* Copies len bytes into the chunk at `at`. 0, or -errno when the chunk file
 * could not take them (the bytes before may have landed). */
static int chunk_store(struct s3m_chunk *chunk, size_t at, const void *data,
                       size_t len)
{
    if (chunk->file_slot != NO_SLOT)
        return chunk_file_write(chunk->file_slot, at, data, len);
    memcpy(chunk->data + at, data, len);
    return 0;
}

static int chunk_zero(struct s3m_chunk *chunk, size_t at, size_t len)
{
    if (chunk->file_slot != NO_SLOT)
        return chunk_file_zero(chunk->file_slot, at, len);
    memset(chunk->data + at, 0, len);
    return 0;
}

/* A full chunk in the chunk file (all zeros: a slot is punched before it is
 * handed out), or NULL when the file is not running or full. */
static struct s3m_chunk *chunk_new_in_file(void)
{
    uint32_t slot;
    if (!chunk_file_take(&slot))
        return NULL;
    struct s3m_chunk *chunk = s3m_malloc(sizeof(*chunk));
    if (!chunk) {
        chunk_file_give(slot, 1);
        return NULL;
    }
    chunk->file_slot = slot;
    return chunk;
}

/* New chunk whose bytes [keep_from, keep_to) are left for the caller to
 * fill and every other byte is zero. */
static struct s3m_chunk *chunk_new_partial(uint32_t capacity, size_t keep_from,
                                           size_t keep_to)
{
    struct s3m_chunk *chunk = capacity == S3M_CHUNK_SIZE ? chunk_new_in_file() : NULL;
    if (!chunk) {
        chunk = s3m_malloc(sizeof(*chunk) + capacity);
        if (!chunk)
            return NULL;
        chunk->file_slot = NO_SLOT;
        if (keep_to > capacity)
            keep_to = capacity;
        if (keep_from > keep_to)
            keep_from = keep_to;
        memset(chunk->data, 0, keep_from);
        memset(chunk->data + keep_to, 0, capacity - keep_to);
    }
    atomic_init(&chunk->refcount, 1);
    chunk->capacity = capacity;
    atomic_fetch_add_explicit(&memory_used, capacity, memory_order_relaxed);
    return chunk;
}

static struct s3m_chunk *chunk_new(uint32_t capacity)
{
    return chunk_new_partial(capacity, 0, 0);
}

/* Consecutive chunk-file slots freed together, given back in one call (a
 * big file's chunks mostly sit in consecutive slots). */
struct slot_run {
    uint32_t first;
    uint32_t count;
};

static void run_flush(struct slot_run *run)
{
    if (run->count)
        chunk_file_give(run->first, run->count);
    run->count = 0;
}

/* Drops a reference; the slot of a chunk freed here joins run. */
static void chunk_release(struct s3m_chunk *chunk, struct slot_run *run)
{
    if (atomic_fetch_sub_explicit(&chunk->refcount, 1, memory_order_acq_rel) != 1)
        return;
    atomic_fetch_sub_explicit(&memory_used, chunk->capacity, memory_order_relaxed);
    if (chunk->file_slot != NO_SLOT) {
        if (run->count == 0 || chunk->file_slot != run->first + run->count) {
            run_flush(run);
            run->first = chunk->file_slot;
        }
        run->count++;
    }
    free(chunk);
}

static void chunk_unref(struct s3m_chunk *chunk)
{
    struct slot_run run = {0, 0};
    chunk_release(chunk, &run);
    run_flush(&run);
}

/* Drops the references of slots [from, to) of a body. */
static void slots_release(struct chunk_slot *slots, size_t from, size_t to)
{
    struct slot_run run = {0, 0};
    for (size_t i = from; i < to; i++)
        chunk_release(slots[i].chunk, &run);
    run_flush(&run);
}

static uint32_t capacity_for(size_t needed)
{
    uint32_t capacity = CHUNK_MIN_CAPACITY;
    while (capacity < needed)
        capacity *= 2;
    return capacity > S3M_CHUNK_SIZE ? S3M_CHUNK_SIZE : capacity;
}

/* Makes *chunkp private and at least `needed` bytes large, keeping its bytes.
 * Returns 0 or -ENOMEM (then *chunkp is unchanged). */
static int chunk_make_writable(struct s3m_chunk **chunkp, size_t needed)
{
    struct s3m_chunk *old = *chunkp;
    bool shared = atomic_load_explicit(&old->refcount, memory_order_acquire) > 1;
    if (!shared && old->capacity >= needed)
        return 0;
    uint32_t capacity = capacity_for(needed > old->capacity ? needed : old->capacity);
    struct s3m_chunk *copy = chunk_new(capacity);
    if (!copy)
        return -ENOMEM;
    int rc = chunk_store(copy, 0, chunk_data(old), old->capacity);
    if (rc) {
        chunk_unref(copy);
        return rc;
    }
    chunk_unref(old);
    *chunkp = copy;
    return 0;
}

/* ---- bodies --------------------------------------------------------------- */

static struct s3m_body *body_new(void)
{
    struct s3m_body *body = s3m_calloc(1, sizeof(*body));
    if (!body)
        return NULL;
    atomic_init(&body->refcount, 1);
    atomic_init(&body->md5_state, 0);
    return body;
}

struct s3m_body *s3m_body_ref(struct s3m_body *body)
{
    if (body)
        atomic_fetch_add_explicit(&body->refcount, 1, memory_order_relaxed);
    return body;
}

void s3m_body_unref(struct s3m_body *body)
{
    if (!body || atomic_fetch_sub_explicit(&body->refcount, 1,
                                           memory_order_acq_rel) != 1)
        return;
    slots_release(body->slots, 0, body->count);
    free(body->slots);
    free(body);
}

uint64_t s3m_body_size(const struct s3m_body *body)
{
    return body ? body->size : 0;
}

/* Index of the first slot whose chunk index is >= index. */
static size_t slot_search(const struct s3m_body *body, uint64_t index)
{
    size_t low = 0, high = body->count;
    while (low < high) {
        size_t mid = low + (high - low) / 2;
        if (body->slots[mid].index < index)
            low = mid + 1;
        else
            high = mid;
    }
    return low;
}

/* Calls emit(ctx, pointer, length) for consecutive pieces of the range,
 * clipped to the body's size; pointer is zero_page for holes. Stops when emit
 * returns non-zero. Returns the bytes of the pieces emit accepted. */
typedef int (*piece_fn)(void *ctx, const unsigned char *data, size_t len);

static size_t body_walk(const struct s3m_body *body, uint64_t offset,
                        size_t len, piece_fn emit, void *ctx)
{
    if (!body || offset >= body->size)
        return 0;
    if (len > body->size - offset)
        len = (size_t)(body->size - offset);
    size_t done = 0;
    size_t slot = slot_search(body, offset / S3M_CHUNK_SIZE);
    while (done < len) {
        uint64_t position = offset + done;
        uint64_t index = position / S3M_CHUNK_SIZE;
        size_t within = (size_t)(position % S3M_CHUNK_SIZE);
        size_t piece = S3M_CHUNK_SIZE - within;
        if (piece > len - done)
            piece = len - done;
        while (slot < body->count && body->slots[slot].index < index)
            slot++;
        const unsigned char *data = zero_page;
        if (slot < body->count && body->slots[slot].index == index) {
            const struct s3m_chunk *chunk = body->slots[slot].chunk;
            if (within < chunk->capacity) {
                data = chunk_data(chunk) + within;
                if (piece > chunk->capacity - within)
                    piece = chunk->capacity - within;
            }
        }
        if (emit(ctx, data, piece))
            break;
        done += piece;
    }
    return done;
}

static int copy_piece(void *ctx, const unsigned char *data, size_t len)
{
    unsigned char **dst = ctx;
    memcpy(*dst, data, len);
    *dst += len;
    return 0;
}

size_t s3m_body_read(const struct s3m_body *body, uint64_t offset, void *dst,
                     size_t len)
{
    unsigned char *cursor = dst;
    return body_walk(body, offset, len, copy_piece, &cursor);
}

struct iov_walk {
    struct iovec *iov;
    int used;
    int max;
};

static int iov_piece(void *ctx, const unsigned char *data, size_t len)
{
    struct iov_walk *walk = ctx;
    struct iovec *last = walk->used ? &walk->iov[walk->used - 1] : NULL;
    if (last && (const unsigned char *)last->iov_base + last->iov_len == data &&
        data != zero_page) {
        last->iov_len += len;
        return 0;
    }
    if (walk->used == walk->max)
        return 1;
    walk->iov[walk->used].iov_base = (void *)data;
    walk->iov[walk->used].iov_len = len;
    walk->used++;
    return 0;
}

int s3m_body_iov(const struct s3m_body *body, uint64_t offset, size_t len,
                 struct iovec *iov, int max_iov, size_t *total)
{
    struct iov_walk walk = {iov, 0, max_iov};
    *total = body_walk(body, offset, len, iov_piece, &walk);
    return walk.used;
}

static int md5_piece(void *ctx, const unsigned char *data, size_t len)
{
    s3m_md5_update(ctx, data, len);
    return 0;
}

/* Compares b's bytes with a piece of a's: ctx walks along a's piece. */
struct compare_state {
    const unsigned char *expected;
    bool same;
};

static int compare_inner(void *ctx, const unsigned char *data, size_t len)
{
    struct compare_state *state = ctx;
    if (data != state->expected && memcmp(data, state->expected, len) != 0) {
        state->same = false;
        return 1;
    }
    state->expected += len;
    return 0;
}

bool s3m_body_equals(const struct s3m_body *body, const void *data,
                     size_t len)
{
    struct compare_state state = {.expected = data, .same = true};

    if (s3m_body_size(body) != len)
        return false;
    body_walk(body, 0, len, compare_inner, &state);
    return state.same;
}

struct compare_outer {
    const struct s3m_body *other;
    uint64_t offset;
    bool same;
};

static int compare_outer(void *ctx, const unsigned char *data, size_t len)
{
    struct compare_outer *outer = ctx;
    struct compare_state inner = {.expected = data, .same = true};
    body_walk(outer->other, outer->offset, len, compare_inner, &inner);
    outer->offset += len;
    outer->same = inner.same;
    return inner.same ? 0 : 1;
}

bool body_same_bytes(const struct s3m_body *a, const struct s3m_body *b)
{
    unsigned char md5_a[16], md5_b[16];
    struct compare_outer outer = {.other = b, .same = true};

    if (a == b)
        return true;
    if (s3m_body_size(a) != s3m_body_size(b))
        return false;
    if (body_cached_md5(a, md5_a) && body_cached_md5(b, md5_b) &&
        memcmp(md5_a, md5_b, 16) != 0)
        return false;
    if (s3m_body_size(a) == 0)
        return true;
    body_walk(a, 0, (size_t)a->size, compare_outer, &outer);
    return outer.same;
}

void body_md5(const struct s3m_body *body, unsigned char md5[16])
{
    struct s3m_md5 ctx;
    s3m_md5_init(&ctx);
    body_walk(body, 0, body ? (size_t)body->size : 0, md5_piece, &ctx);
    s3m_md5_final(&ctx, md5);
}

bool body_cached_md5(const struct s3m_body *body, unsigned char md5[16])
{
    if (!body || atomic_load_explicit(&body->md5_state, memory_order_acquire) != 2)
        return false;
    memcpy(md5, body->md5, 16);
    return true;
}

void body_set_md5(struct s3m_body *body, const unsigned char md5[16])
{
    int expected = 0;
    if (!body || !atomic_compare_exchange_strong(&body->md5_state, &expected, 1))
        return;
    memcpy(body->md5, md5, 16);
    atomic_store_explicit(&body->md5_state, 2, memory_order_release);
}

bool s3m_body_cached_md5(const struct s3m_body *body, unsigned char md5[16])
{
    return body_cached_md5(body, md5);
}

void s3m_body_remember_md5(struct s3m_body *body, const unsigned char md5[16])
{
    body_set_md5(body, md5);
}

void s3m_body_md5(struct s3m_body *body, unsigned char md5[16])
{
    if (body_cached_md5(body, md5))
        return;
    body_md5(body, md5);
    body_set_md5(body, md5);
}

void body_etag(struct s3m_body *body, char out[33])
{
    unsigned char md5[16];
    s3m_body_md5(body, md5);
    s3m_md5_hex(md5, out);
}

/* ---- changes ---------------------------------------------------------------- */

/* Returns a private body equal to *slot (a new empty one for NULL), without
 * changing *slot; the caller installs it. NULL on -ENOMEM. */
static struct s3m_body *body_private_copy(struct s3m_body *body)
{
    struct s3m_body *copy = body_new();
    if (!copy || !body)
        return copy;
    if (body->count) {
        copy->slots = s3m_malloc(body->count * sizeof(*copy->slots));
        if (!copy->slots) {
            free(copy);
            return NULL;
        }
        memcpy(copy->slots, body->slots, body->count * sizeof(*copy->slots));
        for (size_t i = 0; i < body->count; i++)
            atomic_fetch_add(&copy->slots[i].chunk->refcount, 1);
    }
    copy->count = copy->capacity = body->count;
    copy->size = body->size;
    return copy;
}

/* A body that may be changed in place with the contents of *slot: *slot
 * itself when unshared (its MD5 cache dropped), else a private copy that the
 * caller installs on success or unrefs on failure. NULL on -ENOMEM. */
static struct s3m_body *body_writable(struct s3m_body *body)
{
    if (body && atomic_load_explicit(&body->refcount, memory_order_acquire) == 1) {
        atomic_store_explicit(&body->md5_state, 0, memory_order_relaxed);
        return body;
    }
    return body_private_copy(body);
}

/* Ends a change made on work (from body_writable of *slot). */
static int body_finish(struct s3m_body **slot, struct s3m_body *work, int rc)
{
    if (work == *slot)
        return rc;
    if (rc) {
        s3m_body_unref(work);
        return rc;
    }
    s3m_body_unref(*slot);
    *slot = work;
    return 0;
}

/* Ensures a slot for chunk `index` exists at position *pos (found by search). */
/* Inserts a slot for chunk `index` at pos, at least `needed` bytes large,
 * its bytes zero except, when `unzeroed`, [from, needed): the caller writes
 * them. */
static int slot_insert(struct s3m_body *body, size_t pos, uint64_t index,
                       size_t needed, bool unzeroed, size_t from)
{
    if (body->count == body->capacity) {
        size_t capacity = body->capacity ? body->capacity * 2 : 4;
        struct chunk_slot *slots = s3m_realloc(body->slots,
                                               capacity * sizeof(*slots));
        if (!slots)
            return -ENOMEM;
        body->slots = slots;
        body->capacity = capacity;
    }
    struct s3m_chunk *chunk = unzeroed
        ? chunk_new_partial(capacity_for(needed), from, needed)
        : chunk_new(capacity_for(needed));
    if (!chunk)
        return -ENOMEM;
    memmove(&body->slots[pos + 1], &body->slots[pos],
            (body->count - pos) * sizeof(*body->slots));
    body->slots[pos].index = index;
    body->slots[pos].chunk = chunk;
    body->count++;
    return 0;
}

/* Phase one of a write: every chunk the range touches exists, is private and
 * large enough. Changes no byte of the contents, with one exception undone
 * on failure: chunks appended after the last slot (the common case of a
 * growing file) are not zeroed where the write will fill them, so on
 * failure they are removed again. */
static int body_prepare_range(struct s3m_body *body, uint64_t offset, size_t len)
{
    uint64_t first = offset / S3M_CHUNK_SIZE;
    uint64_t last = (offset + len - 1) / S3M_CHUNK_SIZE;
    size_t pos = slot_search(body, first);
    size_t appended_from = SIZE_MAX;  /* first slot appended unzeroed */
    int rc = 0;
    for (uint64_t index = first; index <= last && rc == 0; index++, pos++) {
        uint64_t end = offset + len;
        uint64_t chunk_end = (index + 1) * S3M_CHUNK_SIZE;
        size_t needed = (size_t)((end < chunk_end ? end : chunk_end) -
                                 index * S3M_CHUNK_SIZE);
        size_t from = index == first ? (size_t)(offset % S3M_CHUNK_SIZE) : 0;
        if (pos < body->count && body->slots[pos].index == index) {
            rc = chunk_make_writable(&body->slots[pos].chunk, needed);
        } else if (pos == body->count) {
            if (appended_from == SIZE_MAX)
                appended_from = pos;
            rc = slot_insert(body, pos, index, needed, true, from);
        } else {
            rc = slot_insert(body, pos, index, needed, false, 0);
        }
    }
    if (rc && appended_from != SIZE_MAX) {
        while (body->count > appended_from)
            chunk_unref(body->slots[--body->count].chunk);
    }
    return rc;
}

int body_write_begin(struct s3m_body **slot, uint64_t offset, size_t len)
{
    if (len == 0)
        return 0;
    struct s3m_body *body = body_writable(*slot);
    if (!body)
        return -ENOMEM;
    int rc = body_prepare_range(body, offset, len);
    if (rc == 0 && offset + len > body->size)
        body->size = offset + len;
    return body_finish(slot, body, rc);
}

int body_write_fill(struct s3m_body *body, uint64_t offset, const void *data,
                    size_t len)
{
    const unsigned char *source = data;
    size_t pos = len ? slot_search(body, offset / S3M_CHUNK_SIZE) : 0;
    int rc = 0;
    for (size_t done = 0; done < len; pos++) {
        size_t within = (size_t)((offset + done) % S3M_CHUNK_SIZE);
        size_t piece = S3M_CHUNK_SIZE - within;
        if (piece > len - done)
            piece = len - done;
        struct s3m_chunk *chunk = body->slots[pos].chunk;
        if (rc == 0)
            rc = chunk_store(chunk, within, source + done, piece);
        if (rc)                    /* what was not copied reads as zeros */
            chunk_zero(chunk, within, piece);
        done += piece;
    }
    return rc;
}

int body_write(struct s3m_body **slot, uint64_t offset, const void *data,
               size_t len)
{
    int rc = body_write_begin(slot, offset, len);
    return rc || len == 0 ? rc : body_write_fill(*slot, offset, data, len);
}

/* Drops the chunks past size and zeroes the tail of a chunk cut in the
 * middle, so that growing again reads zeros. */
static int body_cut(struct s3m_body *body, uint64_t size)
{
    uint64_t index = size / S3M_CHUNK_SIZE;
    size_t within = (size_t)(size % S3M_CHUNK_SIZE);
    size_t pos = slot_search(body, index);
    if (within && pos < body->count && body->slots[pos].index == index) {
        int rc = chunk_make_writable(&body->slots[pos].chunk, 0);
        if (rc)
            return rc;
        struct s3m_chunk *chunk = body->slots[pos].chunk;
        if (within < chunk->capacity)
            rc = chunk_zero(chunk, within, chunk->capacity - within);
        if (rc)
            return rc;
        pos++;
    }
    slots_release(body->slots, pos, body->count);
    body->count = pos;
    return 0;
}

int body_truncate(struct s3m_body **slot, uint64_t size)
{
    if (s3m_body_size(*slot) == size)
        return 0;
    if (size == 0) {
        s3m_body_unref(*slot);
        *slot = NULL;
        return 0;
    }
    struct s3m_body *body = body_writable(*slot);
    if (!body)
        return -ENOMEM;
    int rc = size < body->size ? body_cut(body, size) : 0;
    if (rc == 0)
        body->size = size;
    return body_finish(slot, body, rc);
}

int s3m_body_from_bytes(const void *data, size_t len, struct s3m_body **out)
{
    *out = NULL;
    if (len == 0)
        return 0;
    struct s3m_body *body = NULL;
    int rc = body_write(&body, 0, data, len);
    if (rc)
        return rc;
    *out = body;
    return 0;
}
