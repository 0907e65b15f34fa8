/*
 * internal.h - the store's private structures, shared by the files of src/store only.
 *
 * Design note
 * -----------
 * Index: every object is in two structures at once, both intrusive (the
 * links live in the object, no extra allocation per key):
 *   - a chained hash table on xxh3(key) for exact lookup in O(1);
 *   - a skiplist ordered by key bytes (p = 1/4, as redis) for S3 listing.
 *     Listing one "directory" seeks to its prefix and jumps over each common
 *     prefix with one more seek, so it costs O(entries * log n), never a scan
 *     of the store.
 * Bodies: a sorted array of refcounted 64 KiB chunks (body.c). A write copies
 * only the chunks it touches, and only when they are shared; holes cost
 * nothing. Bodies and metadata are immutable while shared, so a snapshot is a
 * copy of the object headers with references to the same bodies and metadata.
 *
 * Locking: one rwlock per store guards the index, the counters total_size and
 * key_bytes, and every non-atomic field of the store's objects (key, body,
 * meta, times, mode, owner, attached). Refcounts are atomic. Nothing is
 * called out of the store with the lock held, except s3m_store_foreach's
 * visitor (documented), and s3m_object_write_begin returns holding it
 * until its caller's s3m_object_write_end (the FUSE layer answers the
 * write in between). Lock order for callers: a caller's own locks (the
 * FUSE node table) may be held while calling in; the store lock is always
 * the innermost.
 */
#ifndef S3MEM_STORE_INTERNAL_H
#define S3MEM_STORE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "s3mem/store.h"

#define SKIPLIST_MAX_LEVEL 24

struct s3m_object {
    atomic_uint refcount;          /* the index holds one; handles one each */
    uint16_t key_len;              /* guarded by store lock; <= S3M_KEY_MAX */
    uint8_t level;                 /* skiplist height, fixed at allocation */
    bool attached : 1;             /* guarded by store lock: in the index */
    bool key_owned : 1;            /* guarded by store lock: the key is an
                                    * owned allocation whose address is kept
                                    * after forward[] (after a rename); else
                                    * the key's bytes are there (object_key) */
    struct s3m_body *body;         /* guarded by store lock; owned ref; NULL = empty */
    struct s3m_meta *meta;         /* guarded by store lock; owned ref; NULL = empty */
    int64_t mtime_ns;              /* guarded by store lock */
    int64_t atime_ns;              /* guarded by store lock */
    int64_t ctime_ns;              /* guarded by store lock */
    uint32_t mode;                 /* guarded by store lock */
    uint32_t uid;                  /* guarded by store lock */
    uint32_t gid;                  /* guarded by store lock */
    uint32_t hash;                 /* guarded by store lock: xxh3 of key, low
                                    * 32 bits */
    atomic_uint pins;              /* outside holds by number (pins.c); written
                                    * under store->pins.lock */
    uint32_t pin_slot;             /* guarded by store->pins.lock: index in
                                    * pins.items while pins > 0 */
    struct s3m_object *hash_next;  /* guarded by store lock */
    struct s3m_object *forward[];  /* guarded by store lock: skiplist links;
                                    * the key (or its address) follows them */
};

/* The key of obj, NUL-ended (the caller holds the store lock, or obj is
 * not shared yet). Keeping it in the object's own allocation, not behind a
 * pointer, saves 8 bytes an object. */
static inline char *object_key(const struct s3m_object *obj)
{
    char *slot = (char *)&obj->forward[obj->level];
    if (!obj->key_owned)
        return slot;
    char *owned;
    memcpy(&owned, slot, sizeof(owned));
    return owned;
}

/* The pinned objects of a store (pins.c), so that the holds an outside
 * layer never dropped are released with the store. */
struct pin_table {
    pthread_mutex_t lock;          /* guards this table, every object's
                                    * pin_slot, and changes of pins */
    struct s3m_object **items;     /* owned array; each holds one reference */
    uint32_t count;
    uint32_t cap;
};

struct s3m_store {
    pthread_rwlock_t lock;
    struct pin_table pins;            /* its own lock, taken inside none */
    struct s3m_store_config config;   /* immutable after new */
    char *bucket;                     /* owned; config.bucket points here */
    struct s3m_object **buckets;      /* guarded by lock: hash table */
    size_t bucket_count;              /* guarded by lock: power of two */
    size_t count;                     /* guarded by lock */
    struct s3m_object *head[SKIPLIST_MAX_LEVEL]; /* guarded by lock */
    int level;                        /* guarded by lock */
    uint64_t random_state;            /* guarded by lock (write side) */
    uint64_t total_size;              /* guarded by lock */
    uint64_t key_bytes;               /* guarded by lock */
    atomic_uint_fast64_t generation;  /* bumped by every change */
    atomic_uint_fast64_t epoch;       /* bumped when contents are replaced */
    atomic_uint_fast64_t puts, gets, heads, deletes, lists, copies, moves,
        writes, reads;
};

/* ---- index.c: hash table + skiplist; caller holds the write lock for
 * changes and at least the read lock for lookups. */
int index_init(struct s3m_store *store);
void index_release(struct s3m_store *store);
struct s3m_object *index_find(const struct s3m_store *store, const char *key,
                              size_t key_len, uint64_t hash);
/* First object whose key is >= key (or > key when strictly). */
struct s3m_object *index_seek(const struct s3m_store *store, const char *key,
                              size_t key_len, bool strictly);
/* First object whose key does not start with prefix and sorts after it. */
struct s3m_object *index_seek_past_prefix(const struct s3m_store *store,
                                          const char *prefix, size_t len);
struct s3m_object *index_first(const struct s3m_store *store);
/* Links obj (key and hash set, not present yet). Cannot fail. */
void index_insert(struct s3m_store *store, struct s3m_object *obj);
/* Unlinks obj; does not drop the index's reference. */
void index_remove(struct s3m_store *store, struct s3m_object *obj);
/* Makes the skiplist at least level high (new levels empty). */
void index_raise_level(struct s3m_store *store, int level);
/* Puts a where b is (b linked, a not; same key, same size), b leaving the
 * index. links[i] points at the link that leads to b, or past where b
 * would be, at level i; it is moved past a. For a walk that exchanges
 * many in key order with no search each (the swap's keep_known). */
void index_exchange(struct s3m_store *store, struct s3m_object **links[],
                    struct s3m_object *a, struct s3m_object *b);
/* A run of objects consecutive in key order, taken out of the index with
 * their skiplist links among themselves kept, so that it goes back in one
 * piece: a directory rename moves its keys' run in O(run + log n) instead
 * of a search per key. */
struct index_run {
    struct s3m_object *first[SKIPLIST_MAX_LEVEL]; /* per level; NULL: none */
    struct s3m_object *last[SKIPLIST_MAX_LEVEL];
    int level;                     /* levels the run has objects at */
};
/* Takes out objects[0..count), consecutive in the skiplist, as run. */
void index_cut(struct s3m_store *store, struct s3m_object *const *objects,
               size_t count, struct index_run *run);
/* Puts run back, its objects re-keyed (hash set) but still in the same
 * order, where its first key goes: no key of the store may sort between
 * its first and last keys. */
void index_paste(struct s3m_store *store, struct index_run *run);
/* Appending objects in increasing key order (copies of a sorted store):
 * O(1) per object instead of a search. */
struct index_tail {
    struct s3m_object **links[SKIPLIST_MAX_LEVEL];
};
void index_tail_init(struct s3m_store *store, struct index_tail *tail);
/* Links obj, whose key sorts after every key in the store. */
void index_append(struct s3m_store *store, struct index_tail *tail,
                  struct s3m_object *obj);
/* Sizes the hash table for count objects; failure is harmless. */
void index_reserve(struct s3m_store *store, size_t count);
/* Grows the hash table when it is full; failure is harmless. */
void index_maybe_grow(struct s3m_store *store);
uint8_t index_random_level(struct s3m_store *store);

/* ---- object.c */
/* New object with refcount 1, a copy of key, no body, or NULL. */
struct s3m_object *object_new(struct s3m_store *store, const char *key,
                              size_t key_len);
void object_fill_info(const struct s3m_object *obj,
                      struct s3m_object_info *info);

/* ---- body.c: in-place changes; the caller holds the owning store's write
 * lock and passes the object's body slot. Each either succeeds or leaves
 * the body's contents unchanged (it may have replaced a shared body by an
 * equal private copy), but for body_write_fill. */
/* A write in two steps under one hold of the lock: begin makes every chunk
 * of the range exist, private and large enough, and sets the new size (the
 * range's bytes are undefined until filled); fill copies the bytes. Fill
 * fails only when a chunk-file page cannot be had (the system is out of
 * memory): then -errno, and what it did not copy reads as zeros. */
int body_write_begin(struct s3m_body **slot, uint64_t offset, size_t len);
int body_write_fill(struct s3m_body *body, uint64_t offset, const void *data,
                    size_t len);
/* Both steps at once. */
int body_write(struct s3m_body **slot, uint64_t offset, const void *data,
               size_t len);
int body_truncate(struct s3m_body **slot, uint64_t size);
/* Cached MD5, when valid. */
bool body_cached_md5(const struct s3m_body *body, unsigned char md5[16]);
/* True when a and b (either may be NULL: no metadata) hold the same content
 * type (none counts as the default type), encoding and entries in the same
 * order. */
bool meta_equal(const struct s3m_meta *a, const struct s3m_meta *b);
/* True when a and b (either may be NULL: empty) hold the same bytes. */
bool body_same_bytes(const struct s3m_body *a, const struct s3m_body *b);
void body_set_md5(struct s3m_body *body, const unsigned char md5[16]);
void body_md5(const struct s3m_body *body, unsigned char md5[16]);
/* Hex MD5 of body, from the cache or computed (and cached) without a lock. */
void body_etag(struct s3m_body *body, char out[33]);

/* ---- store.c */
/* Drops the index's reference of every object of a detached list
 * (forward[0]) and frees its old hash table. */
void objects_release(struct s3m_object *first, struct s3m_object **buckets);

/* ---- pins.c */
void pins_init(struct pin_table *pins);
/* Frees the table; s3m_store_unpin_all released its objects first. */
void pins_release(struct pin_table *pins);
/* True when growth more bytes of bodies would pass config's max_memory,
 * once what the reaper holds is freed. */
bool memory_over(const struct s3m_store_config *config, uint64_t growth);

/* ---- reaper.c */
/* objects_release, on the reaper's thread when it runs. */
void reaper_release(struct s3m_object *first, struct s3m_object **buckets);
/* Waits until the reaper has freed all it was given; true when it had
 * anything. */
bool reaper_drain(void);

/* ---- chunk_file.c: full chunks in a memory file */
/* A zeroed slot of S3M_CHUNK_SIZE bytes; false when the file is not running
 * or full. The taker gives it back with chunk_file_give. */
bool chunk_file_take(uint32_t *slot);
/* Gives back slots [first, first + count), dropping their bytes (their
 * memory returns to the system). */
void chunk_file_give(uint32_t first, uint32_t count);
/* The slot's bytes, read-only, valid until it is given back. */
const unsigned char *chunk_file_data(uint32_t slot);
/* Writes bytes into a slot at `at` / zeroes a range of it. 0 or -errno
 * (-ENOSPC when the system has no memory for them). */
int chunk_file_write(uint32_t slot, size_t at, const void *data, size_t len);
int chunk_file_zero(uint32_t slot, size_t at, size_t len);

/* ---- store.c helpers shared with list.c and object.c */
#define STORE_CHANGED(store) \
    atomic_fetch_add_explicit(&(store)->generation, 1, memory_order_relaxed)
void store_read_lock(struct s3m_store *store);
void store_write_lock(struct s3m_store *store);
void store_unlock(struct s3m_store *store);

#endif
