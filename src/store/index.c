/*
 * index.c - the store's two intrusive indexes over the same objects: a
 * chained hash table (exact lookup) and a skiplist (key order). See the
 * design note in internal.h. The caller holds the store lock.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "s3mem/util.h"

#define INITIAL_BUCKETS 64

int index_init(struct s3m_store *store)
{
    store->buckets = s3m_calloc(INITIAL_BUCKETS, sizeof(*store->buckets));
    if (!store->buckets)
        return -ENOMEM;
    store->bucket_count = INITIAL_BUCKETS;
    store->level = 1;
    memset(store->head, 0, sizeof(store->head));
    return 0;
}

void index_release(struct s3m_store *store)
{
    free(store->buckets);
    store->buckets = NULL;
    store->bucket_count = 0;
}

/* Byte-order comparison of two keys given with lengths. */
static int key_compare(const char *a, size_t a_len, const char *b, size_t b_len)
{
    size_t n = a_len < b_len ? a_len : b_len;
    int c = memcmp(a, b, n);
    if (c)
        return c;
    return a_len < b_len ? -1 : a_len > b_len;
}

struct s3m_object *index_find(const struct s3m_store *store, const char *key,
                              size_t key_len, uint64_t hash)
{
    struct s3m_object *obj = store->buckets[hash & (store->bucket_count - 1)];
    for (; obj; obj = obj->hash_next)
        if (obj->hash == (uint32_t)hash && obj->key_len == key_len &&
            memcmp(object_key(obj), key, key_len) == 0)
            return obj;
    return NULL;
}

static void rehash(struct s3m_store *store, size_t count)
{
    struct s3m_object **buckets = s3m_calloc(count, sizeof(*buckets));
    if (!buckets)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < store->bucket_count; i++) {
        struct s3m_object *obj = store->buckets[i];
        while (obj) {
            struct s3m_object *next = obj->hash_next;
            size_t b = obj->hash & (count - 1);
            obj->hash_next = buckets[b];
            buckets[b] = obj;
            obj = next;
        }
    }
    free(store->buckets);
    store->buckets = buckets;
    store->bucket_count = count;
}

/* Objects per bucket before the table doubles: two keep it at 4 to 8 bytes
 * an object; a lookup compares the 32-bit hashes of 1.5 to 2 objects
 * (against 8 to 16 bytes and 1.25 to 1.5 at one). */
#define OBJECTS_PER_BUCKET 2

void index_maybe_grow(struct s3m_store *store)
{
    if (store->count >= store->bucket_count * OBJECTS_PER_BUCKET)
        rehash(store, store->bucket_count * 2);
}

void index_reserve(struct s3m_store *store, size_t count)
{
    size_t buckets = store->bucket_count;
    while (buckets * OBJECTS_PER_BUCKET < count)
        buckets *= 2;
    if (buckets != store->bucket_count)
        rehash(store, buckets);
}

uint8_t index_random_level(struct s3m_store *store)
{
    /* xorshift64*; the store's write lock guards random_state */
    uint64_t x = store->random_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    store->random_state = x;
    uint64_t bits = x * 0x2545F4914F6CDD1DULL;
    uint8_t level = 1;
    while (level < SKIPLIST_MAX_LEVEL && (bits & 3) == 0) {
        level++;
        bits >>= 2;
    }
    return level;
}

/* Fills update[] with, per level, the link that precedes the first key >= key
 * (or > key when strictly): a pointer to head[i] or to some forward[i]. */
static void find_links(const struct s3m_store *store, const char *key,
                       size_t key_len, bool strictly,
                       struct s3m_object *const **update)
{
    struct s3m_object *const *links = store->head;
    for (int i = store->level - 1; i >= 0; i--) {
        struct s3m_object *next;
        while ((next = links[i]) != NULL) {
            int c = key_compare(object_key(next), next->key_len, key, key_len);
            if (c > 0 || (c == 0 && !strictly))
                break;
            links = next->forward;
        }
        update[i] = &links[i];
    }
}

struct s3m_object *index_seek(const struct s3m_store *store, const char *key,
                              size_t key_len, bool strictly)
{
    struct s3m_object *const *update[SKIPLIST_MAX_LEVEL];
    find_links(store, key, key_len, strictly, update);
    return *update[0];
}

struct s3m_object *index_seek_past_prefix(const struct s3m_store *store,
                                          const char *prefix, size_t len)
{
    /* the least string above every string starting with prefix: drop
     * trailing 0xff bytes, then add one to the last byte */
    char bound[S3M_KEY_MAX + 1];
    if (len > S3M_KEY_MAX)
        len = S3M_KEY_MAX;
    memcpy(bound, prefix, len);
    while (len > 0 && (unsigned char)bound[len - 1] == 0xff)
        len--;
    if (len == 0)
        return NULL;
    bound[len - 1] = (char)((unsigned char)bound[len - 1] + 1);
    return index_seek(store, bound, len, false);
}

struct s3m_object *index_first(const struct s3m_store *store)
{
    return store->head[0];
}

/* Adds obj to the hash table and the counters. */
static void link_hash(struct s3m_store *store, struct s3m_object *obj)
{
    size_t b = obj->hash & (store->bucket_count - 1);
    obj->hash_next = store->buckets[b];
    store->buckets[b] = obj;
    obj->attached = true;
    store->count++;
    store->key_bytes += obj->key_len;
    store->total_size += s3m_body_size(obj->body);
}

void index_tail_init(struct s3m_store *store, struct index_tail *tail)
{
    for (int i = 0; i < SKIPLIST_MAX_LEVEL; i++) {
        struct s3m_object **link = &store->head[i];
        while (*link)
            link = &(*link)->forward[i];
        tail->links[i] = link;
    }
}

void index_append(struct s3m_store *store, struct index_tail *tail,
                  struct s3m_object *obj)
{
    if (obj->level > store->level)
        store->level = obj->level;
    for (int i = 0; i < obj->level; i++) {
        obj->forward[i] = NULL;
        *tail->links[i] = obj;
        tail->links[i] = &obj->forward[i];
    }
    link_hash(store, obj);
}

void index_raise_level(struct s3m_store *store, int level)
{
    for (int i = store->level; i < level; i++)
        store->head[i] = NULL;
    if (level > store->level)
        store->level = level;
}

void index_insert(struct s3m_store *store, struct s3m_object *obj)
{
    struct s3m_object *const *update[SKIPLIST_MAX_LEVEL];
    index_raise_level(store, obj->level);
    find_links(store, object_key(obj), obj->key_len, false, update);
    for (int i = 0; i < obj->level; i++) {
        struct s3m_object **link = (struct s3m_object **)update[i];
        obj->forward[i] = *link;
        *link = obj;
    }
    link_hash(store, obj);
}

/* The link in obj's hash chain that leads to obj (obj is in the table). */
static struct s3m_object **hash_link(struct s3m_store *store,
                                     const struct s3m_object *obj)
{
    struct s3m_object **chain = &store->buckets[obj->hash & (store->bucket_count - 1)];
    while (*chain != obj)
        chain = &(*chain)->hash_next;
    return chain;
}

/* Takes obj out of the hash table and the counters (not the skiplist). */
static void unlink_hash(struct s3m_store *store, struct s3m_object *obj)
{
    struct s3m_object **chain = hash_link(store, obj);
    *chain = obj->hash_next;
    obj->hash_next = NULL;
    obj->attached = false;
    store->count--;
    store->key_bytes -= obj->key_len;
    store->total_size -= s3m_body_size(obj->body);
}

void index_cut(struct s3m_store *store, struct s3m_object *const *objects,
               size_t count, struct index_run *run)
{
    memset(run, 0, sizeof(*run));
    if (count == 0)
        return;
    struct s3m_object *const *update[SKIPLIST_MAX_LEVEL];
    find_links(store, object_key(objects[0]), objects[0]->key_len, false, update);
    for (size_t n = 0; n < count; n++) {
        struct s3m_object *o = objects[n];
        for (int i = 0; i < o->level; i++) {
            if (!run->first[i])
                run->first[i] = o;
            run->last[i] = o;
        }
        if (o->level > run->level)
            run->level = o->level;
        unlink_hash(store, o);
    }
    for (int i = 0; i < run->level; i++) {
        struct s3m_object **link = (struct s3m_object **)update[i];
        *link = run->last[i]->forward[i];
    }
    while (store->level > 1 && store->head[store->level - 1] == NULL)
        store->level--;
}

void index_paste(struct s3m_store *store, struct index_run *run)
{
    struct s3m_object *first = run->first[0];
    if (!first)
        return;
    index_raise_level(store, run->level);
    struct s3m_object *const *update[SKIPLIST_MAX_LEVEL];
    find_links(store, object_key(first), first->key_len, false, update);
    for (int i = 0; i < run->level; i++) {
        struct s3m_object **link = (struct s3m_object **)update[i];
        run->last[i]->forward[i] = *link;
        *link = run->first[i];
    }
    for (struct s3m_object *o = first;; o = o->forward[0]) {
        link_hash(store, o);
        if (o == run->last[0])
            break;
    }
}

void index_exchange(struct s3m_store *store, struct s3m_object **links[],
                    struct s3m_object *a, struct s3m_object *b)
{
    int top = a->level > b->level ? a->level : b->level;
    for (int i = 0; i < top; i++) {
        struct s3m_object *after = i < b->level ? b->forward[i] : *links[i];
        if (i < a->level) {
            a->forward[i] = after;
            *links[i] = a;
            links[i] = &a->forward[i];
        } else {
            *links[i] = after;
        }
    }
    struct s3m_object **chain = hash_link(store, b);
    *chain = a;
    a->hash_next = b->hash_next;
    b->hash_next = NULL;
    a->attached = true;
    b->attached = false;
}

void index_remove(struct s3m_store *store, struct s3m_object *obj)
{
    struct s3m_object *const *update[SKIPLIST_MAX_LEVEL];
    find_links(store, object_key(obj), obj->key_len, false, update);
    for (int i = 0; i < obj->level; i++) {
        struct s3m_object **link = (struct s3m_object **)update[i];
        if (*link == obj)
            *link = obj->forward[i];
    }
    while (store->level > 1 && store->head[store->level - 1] == NULL)
        store->level--;
    unlink_hash(store, obj);
}
