/*
 * store.h - the in-memory object store with S3 semantics.
 *
 * One store is one bucket: a map from keys (1..1024 bytes, any byte but NUL)
 * to objects. Each object has a body (bytes, sparse), immutable refcounted
 * metadata (user metadata, content type, content encoding), a lazily
 * computed MD5 etag, times, and POSIX mode/uid/gid. Nothing here knows FUSE.
 *
 * Threads: every function may be called from any thread. One rwlock per
 * store guards its index and every field of its objects (see store.c's
 * design note). Bodies and metadata are immutable once shared and are
 * refcounted, so callers copy data out of them without the store lock.
 *
 * Errors: functions return 0 or a negative errno and change nothing when
 * they fail. -ENOENT missing key, -EEXIST present key (with S3M_PUT_CREATE),
 * -ENAMETOOLONG key over 1024 bytes, -EINVAL empty key or bad argument,
 * -ENOSPC over max_memory or metadata over metadata_limit (enforce_limits),
 * -EFBIG body over max_object_size (enforce_limits), -ENOMEM.
 *
 * Ownership words: "new" - the caller owns the result and releases it;
 * "borrowed" - the caller keeps ownership, the callee copies or refs.
 */
#ifndef S3MEM_STORE_H
#define S3MEM_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#define S3M_KEY_MAX 1024
#define S3M_DEFAULT_CONTENT_TYPE "application/octet-stream"
#define S3M_DEFAULT_METADATA_LIMIT 2048
#define S3M_CHUNK_SIZE (64 * 1024)

struct s3m_store;
struct s3m_object;

/* ---- metadata ----------------------------------------------------------- */

struct s3m_meta_entry {
    char *name;               /* NUL-ended; case kept as given */
    char *value;              /* value_len bytes plus a NUL */
    size_t value_len;
};

/* Immutable once shared (refcount > 1 or attached to an object). */
struct s3m_meta {
    unsigned refcount;        /* atomic */
    char *content_type;       /* NULL means S3M_DEFAULT_CONTENT_TYPE */
    char *content_encoding;   /* NULL means none */
    size_t count;
    struct s3m_meta_entry *entries;
};

/* New empty metadata with refcount 1, or NULL. */
struct s3m_meta *s3m_meta_new(void);
/* Adds a reference; meta may be NULL (returns NULL). */
struct s3m_meta *s3m_meta_ref(struct s3m_meta *meta);
/* Drops a reference; frees at zero. NULL is fine. */
void s3m_meta_unref(struct s3m_meta *meta);
/* Borrowed entry whose name equals name case-insensitively, or NULL.
 * meta may be NULL. */
const struct s3m_meta_entry *s3m_meta_find(const struct s3m_meta *meta,
                                           const char *name);
/* New copy of meta (NULL = empty) with name set to value, replacing any
 * entry of the same name in any case (the new name's case is kept).
 * Returns NULL on -ENOMEM. */
struct s3m_meta *s3m_meta_with(const struct s3m_meta *meta, const char *name,
                               const void *value, size_t value_len);
/* Sets name to value in meta itself, which must still be private (refcount
 * 1, on no object): for building metadata without a copy per entry. 0, or
 * -ENOMEM leaving meta as it was. */
int s3m_meta_set(struct s3m_meta *meta, const char *name, const void *value,
                 size_t value_len);
/* New copy without name (any case); NULL on -ENOMEM. */
struct s3m_meta *s3m_meta_without(const struct s3m_meta *meta, const char *name);
/* New copy with content type / encoding replaced (value NULL clears it). */
struct s3m_meta *s3m_meta_with_type(const struct s3m_meta *meta,
                                    const char *content_type,
                                    const char *content_encoding);
/* New copy of meta with every entry of overlay set on top (merge). */
struct s3m_meta *s3m_meta_merge(const struct s3m_meta *meta,
                                const struct s3m_meta *overlay);
/* Bytes of every name plus every value, as S3 counts the 2 KiB limit. */
size_t s3m_meta_size(const struct s3m_meta *meta);
/* Content type, never NULL (the default when unset). */
const char *s3m_meta_content_type(const struct s3m_meta *meta);

/* ---- bodies ------------------------------------------------------------- */

/* A body: sparse sorted array of refcounted fixed-size chunks. Immutable
 * while shared; readers hold a reference and copy without any lock. */
struct s3m_body;

/* Adds a reference; NULL is fine. */
struct s3m_body *s3m_body_ref(struct s3m_body *body);
void s3m_body_unref(struct s3m_body *body);
/* Size in bytes; 0 for NULL. */
uint64_t s3m_body_size(const struct s3m_body *body);
/* Copies up to len bytes from offset into dst (holes read as zeros).
 * Returns bytes copied (0 at or past the end). body may be NULL. */
size_t s3m_body_read(const struct s3m_body *body, uint64_t offset, void *dst,
                     size_t len);
/* Fills up to max_iov iovecs that describe bytes [offset, offset+len) of the
 * body without copying (holes point at a shared zero page). The iovecs
 * borrow from body: valid while the caller holds its reference. Returns the
 * number of iovecs used and sets *total to the bytes they cover. */
int s3m_body_iov(const struct s3m_body *body, uint64_t offset, size_t len,
                 struct iovec *iov, int max_iov, size_t *total);
/* True when body (NULL: empty) holds exactly the len bytes at data. */
bool s3m_body_equals(const struct s3m_body *body, const void *data,
                     size_t len);
/* New body holding a copy of len bytes (NULL for len 0 means empty body,
 * returned as NULL with rc 0). Returns 0 or -ENOMEM. */
int s3m_body_from_bytes(const void *data, size_t len, struct s3m_body **out);
/* The body's MD5 when it is cached (true), else false. body may be NULL. */
bool s3m_body_cached_md5(const struct s3m_body *body, unsigned char md5[16]);
/* Caches md5, which the caller computed from this very body's bytes (a
 * shared body never changes, so the value stays right). */
void s3m_body_remember_md5(struct s3m_body *body, const unsigned char md5[16]);
/* The body's MD5 (of no bytes for NULL), computed once and cached. Any
 * thread may call it without the store lock while it holds a reference:
 * a shared body never changes. */
void s3m_body_md5(struct s3m_body *body, unsigned char md5[16]);
/* Bytes of chunk memory held by every body of the process. */
uint64_t s3m_body_memory_used(void);

/* Starts the reaper thread, which frees the objects a swap, restore or
 * clear replaced after the call returns (without it they are freed inside
 * the call). Stop frees whatever is still waiting. 0 or -errno. */
int s3m_store_reaper_start(void);
void s3m_store_reaper_stop(void);
/* Starts the trimmer thread (trimmer.c): once the daemon has been idle
 * for interval_ms after activity (store unchanged, next to no CPU used)
 * and malloc holds at least min_free free bytes, it gives the heap's free
 * memory back to the system (malloc_trim) and logs it. interval_ms 0 starts nothing. store must
 * outlive the thread: stop it first. 0 or -errno. */
int s3m_store_trimmer_start(struct s3m_store *store, unsigned interval_ms,
                            size_t min_free);
void s3m_store_trimmer_stop(void);
/* Keeps full-size chunks in a memory file from now on (chunk_file.c): big
 * writes need no zeroed anonymous pages. Optional: without it every chunk
 * is on the heap. 0 or a negative errno. Stop releases the file once no
 * chunk is in it (call it after freeing every store). */
int s3m_body_file_start(void);
void s3m_body_file_stop(void);

/* ---- stores ------------------------------------------------------------- */

struct s3m_store_config {
    const char *bucket;        /* borrowed, copied; NULL = "s3mem" */
    bool enforce_limits;       /* metadata_limit and max_object_size apply */
    size_t metadata_limit;     /* 0 = S3M_DEFAULT_METADATA_LIMIT */
    uint64_t max_object_size;  /* 0 = 5 GiB */
    uint64_t max_memory;       /* 0 = no limit; writes past it get -ENOSPC */
    uid_t default_uid;         /* owner of objects put without one */
    gid_t default_gid;
    bool verbose;              /* log one line per operation to stderr */
};

/* New empty store, or NULL. config is borrowed. */
struct s3m_store *s3m_store_new(const struct s3m_store_config *config);
void s3m_store_free(struct s3m_store *store);
/* The bucket name (borrowed, lives as long as the store). */
const char *s3m_store_bucket(const struct s3m_store *store);
/* The config the store was made with (borrowed). */
const struct s3m_store_config *s3m_store_config(const struct s3m_store *store);

/* What head/get report. Release with s3m_object_info_release. */
struct s3m_object_info {
    uint64_t size;
    int64_t mtime_ns;          /* last modified */
    int64_t atime_ns;
    int64_t ctime_ns;
    uint32_t mode;             /* permission bits and S_IFREG/S_IFDIR kind */
    uint32_t uid;
    uint32_t gid;
    bool attached;             /* in the store (false: deleted or replaced
                                * while a handle or pin held it) */
    struct s3m_meta *meta;     /* new reference, may be NULL (= empty) */
};
void s3m_object_info_release(struct s3m_object_info *info);

/* Attributes given to put; any field may be zero for "default". */
struct s3m_put_attrs {
    const struct s3m_meta *meta;  /* borrowed, referenced; NULL = empty */
    uint32_t mode;                /* 0 = 0644 (0755 for keys ending in '/');
                                     with S_IFMT bits set, the permission
                                     bits are taken as given, even 0 */
    bool has_owner;               /* else default_uid/default_gid */
    uint32_t uid;
    uint32_t gid;
    int64_t mtime_ns;             /* 0 = now */
    const unsigned char *md5;     /* 16 bytes known to be the body's MD5, or NULL */
};

enum s3m_put_flags {
    S3M_PUT_CREATE = 1,           /* fail with -EEXIST if the key exists */
};

/* Puts key with a body (borrowed, referenced; NULL = empty).
 * Replaces any object at key. */
int s3m_store_put_body(struct s3m_store *store, const char *key,
                       struct s3m_body *body, const struct s3m_put_attrs *attrs,
                       int flags);
/* Convenience: puts a copy of len bytes. */
int s3m_store_put(struct s3m_store *store, const char *key, const void *data,
                  size_t len, const struct s3m_put_attrs *attrs, int flags);
/* Fills info (may be NULL) and *body (may be NULL; new reference). */
int s3m_store_get(struct s3m_store *store, const char *key,
                  struct s3m_object_info *info, struct s3m_body **body);
int s3m_store_head(struct s3m_store *store, const char *key,
                   struct s3m_object_info *info);
/* Writes 32 hex digits and NUL: the MD5 of the body, computed outside the
 * lock on first use and cached until the body changes. */
int s3m_store_etag(struct s3m_store *store, const char *key, char out[33]);

enum s3m_metadata_directive {
    S3M_COPY_KEEP,     /* destination gets the source's metadata */
    S3M_COPY_MERGE,    /* source's metadata with `meta` set on top */
    S3M_COPY_REPLACE,  /* destination gets `meta` */
};
/* Copies src to dst, sharing the body. meta is borrowed (NULL = empty). */
int s3m_store_copy(struct s3m_store *store, const char *src, const char *dst,
                   enum s3m_metadata_directive directive,
                   const struct s3m_meta *meta);
int s3m_store_delete(struct s3m_store *store, const char *key);
/* Deletes a directory marker (a key ending in the delimiter) only when no
 * other key starts with it and its body is empty: -ENOTEMPTY otherwise,
 * -ENOENT when neither the marker nor any key under it exists. Atomic. */
int s3m_store_delete_marker(struct s3m_store *store, const char *marker);
/* Deletes every key that exists; sets *deleted (may be NULL) to how many. */
int s3m_store_delete_many(struct s3m_store *store, const char *const *keys,
                          size_t count, size_t *deleted);
/* Moves one key, keeping metadata, etag, times (like s3db.js moveObject).
 * Replaces dst unless noreplace (then -EEXIST). */
int s3m_store_move(struct s3m_store *store, const char *src, const char *dst,
                   bool noreplace);
/* Moves every key starting with src_prefix to dst_prefix + rest, atomically
 * for other callers. Fails with -EEXIST, moving nothing, when a destination
 * key exists, and -ENAMETOOLONG when one would exceed 1024 bytes. Sets
 * *moved (may be NULL). Moving nothing is success. */
int s3m_store_move_prefix(struct s3m_store *store, const char *src_prefix,
                          const char *dst_prefix, size_t *moved);
/* Called with each key whose object differs between two stores (only in
 * one, or another body, metadata, times, mode or owner), in key order, with
 * the stores locked (fn must not call into either). fn returns non-zero
 * to stop. */
typedef int (*s3m_store_diff_fn)(void *ctx, const char *key);

/* Deletes every object. changed (may be NULL) hears each key it deleted,
 * in key order, under the store's lock (see s3m_store_diff_fn). */
void s3m_store_clear(struct s3m_store *store, s3m_store_diff_fn changed,
                     void *ctx);
size_t s3m_store_count(struct s3m_store *store, const char *prefix);
/* True when some key starts with prefix (prefix may be ""). O(log n). */
bool s3m_store_has_prefix(struct s3m_store *store, const char *prefix);

/* ---- listing (S3 ListObjectsV2) ------------------------------------------ */

struct s3m_list_request {
    const char *prefix;          /* NULL = "" */
    char delimiter;              /* 0 = none */
    size_t max_keys;             /* 0 = 1000 */
    const char *start_after;     /* keys > start_after only; NULL = none */
    const char *continuation;    /* token from a previous result; NULL = none */
};

struct s3m_list_result {
    char **keys;                 /* new: sorted contents */
    size_t key_count;
    char **prefixes;             /* new: sorted common prefixes */
    size_t prefix_count;
    bool truncated;
    char *next_continuation;     /* new; NULL unless truncated */
};

/* Lists keys in byte order. Keys and common prefixes together count
 * against max_keys. Release result with s3m_list_result_release. */
int s3m_store_list(struct s3m_store *store, const struct s3m_list_request *req,
                   struct s3m_list_result *result);
void s3m_list_result_release(struct s3m_list_result *result);

/* One entry of a one-level ("directory") listing under a prefix. */
struct s3m_level_entry {
    const char *name;            /* borrowed: the key's part after the prefix, */
    size_t name_len;             /* up to (not including) the delimiter */
    bool is_prefix;              /* a common prefix: a sub-"directory" */
    bool shadowed;               /* a key whose name is also a common prefix */
    /* the object at prefix+name (+ delimiter for a common prefix: its
     * marker), borrowed; NULL for a common prefix without a marker */
    const struct s3m_object_info *info;
};
/* Visits the entries directly under prefix in key order, with the read
 * lock held (fn must not call into this store): each key without another
 * delimiter after the prefix, and each common prefix once. The object whose
 * key equals prefix itself is skipped. fn returns non-zero to stop. Costs
 * O(entries * log n). */
typedef int (*s3m_level_fn)(void *ctx, const struct s3m_level_entry *entry);
int s3m_store_list_level(struct s3m_store *store, const char *prefix,
                         char delimiter, s3m_level_fn fn, void *ctx);

/* The number of common prefixes directly under prefix (sub-"directories"),
 * or SIZE_MAX when more than `limit` entries would have to be walked to
 * know. Costs O(entries * log n), like list_level. */
size_t s3m_store_count_prefixes(struct s3m_store *store, const char *prefix,
                                char delimiter, size_t limit);

/* ---- whole-store operations -------------------------------------------- */

/* Calls fn for every object in key order, with the store's read lock held:
 * fn must not call back into this store. fn returns 0 to go on, non-zero to
 * stop (that value is returned). The info and body are borrowed for the
 * call (body may be NULL when empty). */
typedef int (*s3m_store_visit_fn)(void *ctx, const char *key,
                                  const struct s3m_object_info *info,
                                  struct s3m_body *body);
int s3m_store_foreach(struct s3m_store *store, const char *prefix,
                      s3m_store_visit_fn fn, void *ctx);

/* New store with the same config and objects, sharing bodies and metadata
 * copy-on-write: costs per object, not per byte. Returns NULL on -ENOMEM. */
struct s3m_store *s3m_store_snapshot(struct s3m_store *store);
/* Makes store's contents those of source (a copy-on-write copy of it; source
 * is unchanged and still owned by the caller). All or nothing. When few keys
 * differ only they are changed, and the store's other objects stay (but
 * for objects open in a handle, always replaced: the handle goes on with
 * the old object, as after a swap). changed (may be NULL) hears each key
 * the restore changed, as s3m_store_diff would tell them; nothing on
 * failure. */
int s3m_store_restore(struct s3m_store *store, struct s3m_store *source,
                      s3m_store_diff_fn changed, void *ctx);
/* Which objects of source a swap leaves as the store had them. */
enum s3m_swap_keep {
    /* same bytes, metadata, mode, owner, and mtime to the millisecond, as
     * save files keep it: reloading a file changes only what differs */
    S3M_KEEP_SAME_TO_MS,
    /* same bytes, metadata, mode and owner, any mtime: for backups, which
     * carry no times (an import that changes nothing about an object leaves
     * it, and the kernel's caches of it, as they were) */
    S3M_KEEP_SAME_BYTES,
};

/* Makes store's contents those of source (the objects move without
 * copying; store's old objects are released). Afterwards source may only be
 * freed. Used to swap in a fully loaded store. An object of source that is
 * identical to the store's object of the same key, as keep says, leaves
 * that object as it was, times (nanoseconds, ctime) included. changed (may
 * be NULL) hears each key the swap changed, in the same pass: no copy of
 * the store is needed to learn them. */
void s3m_store_swap_in(struct s3m_store *store, struct s3m_store *source,
                       enum s3m_swap_keep keep, s3m_store_diff_fn changed,
                       void *ctx);

/* Calls fn for every key whose object differs between before and after, in
 * key order, with both read locks held. Cost: O(objects of both). */
int s3m_store_diff(struct s3m_store *before, struct s3m_store *after,
                   s3m_store_diff_fn fn, void *ctx);

struct s3m_store_stats {
    size_t object_count;
    uint64_t total_size;         /* sum of body sizes */
    uint64_t memory_used;        /* chunk bytes held by all bodies */
    uint64_t key_bytes;          /* sum of key lengths */
    uint64_t puts, gets, heads, deletes, lists, copies, moves, writes, reads;
};
void s3m_store_stats(struct s3m_store *store, struct s3m_store_stats *stats);
/* A number that changes whenever the store's contents change (for
 * "save only when changed"). */
uint64_t s3m_store_generation(struct s3m_store *store);
/* A number that changes only when the whole contents are replaced
 * (restore, swap_in, clear). */
uint64_t s3m_store_epoch(struct s3m_store *store);

/* ---- open objects (the FUSE layer's file handles) ------------------------ */

/* A referenced object stays valid after delete or move (then detached or
 * re-keyed), like an open file after unlink or rename. */

/* New reference to the object at key, or NULL with *rc set (-ENOENT). */
struct s3m_object *s3m_store_open(struct s3m_store *store, const char *key,
                                  int *rc);
/* New reference to the body of the object at key (key_len bytes), or
 * NULL when there is none or it is empty. Counts no request: for a
 * loader that looks for bodies it can share instead of copying. */
struct s3m_body *s3m_store_peek_body(struct s3m_store *store, const char *key,
                                     size_t key_len);
/* Adds a reference (returns obj). */
struct s3m_object *s3m_object_ref(struct s3m_object *obj);
void s3m_object_unref(struct s3m_object *obj);
int s3m_object_head(struct s3m_store *store, struct s3m_object *obj,
                    struct s3m_object_info *info);
/* New reference to the current body (NULL when empty) and its size. */
struct s3m_body *s3m_object_body(struct s3m_store *store,
                                 struct s3m_object *obj);
/* Writes len bytes at offset (extending with a hole as needed); only the
 * chunks touched are copied when shared. Updates mtime/ctime, drops the
 * cached etag. */
int s3m_object_write(struct s3m_store *store, struct s3m_object *obj,
                     uint64_t offset, const void *data, size_t len);
/* The same write in two steps, so that its caller can answer in between:
 * begin checks the limits and makes room for the bytes (the object's new
 * size and times are set) and, on success only, returns with the store's
 * write lock held, so no one sees the object until end has copied the
 * bytes and released it. The hold keeps its own reference to the object
 * (the caller's handle may be closed once it answered) but not to the
 * store. Between the two the caller must not call into this store. End fails only when the system has no memory for a page of
 * the chunk file: then the bytes it could not copy read as zeros. */
struct s3m_write_hold {
    struct s3m_store *store;
    struct s3m_object *obj;
    uint64_t offset;
    size_t len;
};
int s3m_object_write_begin(struct s3m_store *store, struct s3m_object *obj,
                           uint64_t offset, size_t len,
                           struct s3m_write_hold *hold);
int s3m_object_write_end(struct s3m_write_hold *hold, const void *data);
int s3m_object_truncate(struct s3m_store *store, struct s3m_object *obj,
                        uint64_t size);

/* Attribute changes; each field is applied only when its flag is set. */
enum s3m_attr_flags {
    S3M_ATTR_MODE = 1,
    S3M_ATTR_UID = 2,
    S3M_ATTR_GID = 4,
    S3M_ATTR_MTIME = 8,
    S3M_ATTR_ATIME = 16,
    S3M_ATTR_CTIME = 32,
};
struct s3m_attr_update {
    int flags;
    uint32_t mode;             /* permission bits only */
    uint32_t uid, gid;
    int64_t mtime_ns, atime_ns, ctime_ns;
};
int s3m_object_set_attrs(struct s3m_store *store, struct s3m_object *obj,
                         const struct s3m_attr_update *update);
/* Replaces the metadata (borrowed, referenced; NULL = empty). Enforces the
 * metadata limit when configured. Updates mtime and ctime. */
int s3m_object_set_meta(struct s3m_store *store, struct s3m_object *obj,
                        const struct s3m_meta *meta);
/* Replaces the metadata only while it is still `expected` (compare and
 * swap by pointer): -EAGAIN when another change came first. */
int s3m_object_replace_meta(struct s3m_store *store, struct s3m_object *obj,
                            const struct s3m_meta *expected,
                            const struct s3m_meta *meta);
/* Etag of the object's current body, as s3m_store_etag. */
int s3m_object_etag(struct s3m_store *store, struct s3m_object *obj,
                    char out[33]);
/* True while the object is still in the store (not deleted or replaced). */
bool s3m_object_attached(struct s3m_store *store, struct s3m_object *obj);
/* Copies obj's current key (NUL-ended) into out; its length, or
 * -ENAMETOOLONG when cap is too small. */
int s3m_object_key(struct s3m_store *store, struct s3m_object *obj, char *out,
                   size_t cap);
/* True when something besides the store and its pins holds obj (an open
 * handle, or a request in flight). */
bool s3m_object_held(struct s3m_store *store, struct s3m_object *obj);

/* ---- pins: holds by number (the FUSE layer's inode numbers, counted as
 * the kernel's lookups; see pins.c). A pinned object stays valid, attached
 * or not, until its pins are dropped; it does not count as open (restore
 * keeps an unchanged pinned object in place). */
/* Adds one pin; *first says whether it was the first. -ENOMEM (no room in
 * the pin table) or -EOVERFLOW leave it unpinned. */
int s3m_object_pin(struct s3m_store *store, struct s3m_object *obj, bool *first);
/* Drops count pins (all when count exceeds them); true when that dropped
 * the last one (obj may be freed then: do not touch it). */
bool s3m_object_unpin(struct s3m_store *store, struct s3m_object *obj,
                      uint64_t count);
/* Objects pinned now. */
size_t s3m_store_pinned(struct s3m_store *store);
/* Drops every pin (the outside layer is going away). s3m_store_free does it. */
void s3m_store_unpin_all(struct s3m_store *store);

#endif
