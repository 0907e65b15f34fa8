/*
 * test_store.c - unit tests for store.h, without FUSE: put/get/head, keys,
 * etags, sparse bodies and copy-on-write, listing, copy/delete/move, limits,
 * open objects, whole-store operations, threads, and allocation failures
 * (each failing call must leave the store exactly as it was).
 *
 * Helpers that compare return bool and print what differs; callers wrap
 * them in CHECK so that a failure names the caller's line.
 */
#include "check.h"

#include "s3mem/store.h"
#include "s3mem/util.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#define KIB 1024u
#define MIB (1024u * 1024u)

/* ---- helpers --------------------------------------------------------------- */

/* xorshift64*: the tests' only source of randomness, seeded per test so a
 * failure repeats. */
static uint64_t random_next(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static uint64_t random_below(uint64_t *state, uint64_t bound)
{
    return bound ? random_next(state) % bound : 0;
}

static void fill_pattern(unsigned char *data, size_t len, uint64_t seed)
{
    uint64_t state = seed * 2 + 1;
    for (size_t i = 0; i < len; i++)
        data[i] = (unsigned char)(random_next(&state) >> 56);
}

static unsigned char *pattern_new(size_t len, uint64_t seed)
{
    unsigned char *data = malloc(len ? len : 1);
    fill_pattern(data, len, seed);
    return data;
}

static void md5_hex_of(const void *data, size_t len, char hex[33])
{
    struct s3m_md5 ctx;
    unsigned char digest[16];
    s3m_md5_init(&ctx);
    s3m_md5_update(&ctx, data, len);
    s3m_md5_final(&ctx, digest);
    s3m_md5_hex(digest, hex);
}

static struct s3m_store *store_with(const struct s3m_store_config *config)
{
    struct s3m_store *store = s3m_store_new(config);
    if (!store) {
        fprintf(stderr, "cannot make a store\n");
        exit(2);
    }
    return store;
}

static struct s3m_store *store_plain(void)
{
    struct s3m_store_config config = {.bucket = "test"};
    return store_with(&config);
}

/* A key of len bytes made of `fill`. New; free it. */
static char *key_of_length(size_t len, char fill)
{
    char *key = malloc(len + 1);
    memset(key, fill, len);
    key[len] = '\0';
    return key;
}

/* Reads the whole body with s3m_body_read (in uneven pieces) and through
 * s3m_body_iov (at most 3 iovecs a call), compares both with expected. */
static bool body_matches(const struct s3m_body *body, const void *expected,
                         size_t len)
{
    bool ok = true;
    if (s3m_body_size(body) != len) {
        fprintf(stderr, "  body size %llu, expected %zu\n",
                (unsigned long long)s3m_body_size(body), len);
        return false;
    }
    unsigned char *copy = malloc(len + 1);
    size_t done = 0, piece = 1;
    while (done < len) {
        size_t got = s3m_body_read(body, done, copy + done, piece);
        if (got == 0) {
            fprintf(stderr, "  s3m_body_read stopped at %zu of %zu\n", done, len);
            ok = false;
            break;
        }
        done += got;
        piece = piece * 3 + 7;
    }
    if (ok && len && memcmp(copy, expected, len) != 0) {
        size_t at = 0;
        while (copy[at] == ((const unsigned char *)expected)[at])
            at++;
        fprintf(stderr, "  s3m_body_read differs at byte %zu\n", at);
        ok = false;
    }
    if (s3m_body_read(body, len, copy, 1) != 0) {
        fprintf(stderr, "  s3m_body_read past the end returned bytes\n");
        ok = false;
    }
    memset(copy, 0xAA, len + 1);
    done = 0;
    while (done < len) {
        struct iovec iov[3];
        size_t total = 0;
        int used = s3m_body_iov(body, done, len - done, iov, 3, &total);
        if (used <= 0 || total == 0) {
            fprintf(stderr, "  s3m_body_iov stopped at %zu of %zu\n", done, len);
            ok = false;
            break;
        }
        size_t sum = 0;
        for (int i = 0; i < used; i++) {
            memcpy(copy + done + sum, iov[i].iov_base, iov[i].iov_len);
            sum += iov[i].iov_len;
        }
        if (sum != total) {
            fprintf(stderr, "  s3m_body_iov total %zu, iovecs hold %zu\n",
                    total, sum);
            ok = false;
            break;
        }
        done += total;
    }
    if (done == len && len && memcmp(copy, expected, len) != 0) {
        fprintf(stderr, "  s3m_body_iov contents differ\n");
        ok = false;
    }
    free(copy);
    return ok;
}

/* The object at key has exactly this body, size and etag. */
static bool key_holds(struct s3m_store *store, const char *key,
                      const void *expected, size_t len)
{
    struct s3m_object_info info = {0};
    struct s3m_body *body = NULL;
    int rc = s3m_store_get(store, key, &info, &body);
    if (rc) {
        fprintf(stderr, "  get '%.40s': %s\n", key, strerror(-rc));
        return false;
    }
    bool ok = body_matches(body, expected, len);
    if (info.size != len) {
        fprintf(stderr, "  info.size %llu, expected %zu\n",
                (unsigned long long)info.size, len);
        ok = false;
    }
    char etag[33], want[33];
    md5_hex_of(expected, len, want);
    if (s3m_store_etag(store, key, etag) != 0 || strcmp(etag, want) != 0) {
        fprintf(stderr, "  etag of '%.40s' is %s, expected %s\n", key, etag, want);
        ok = false;
    }
    s3m_object_info_release(&info);
    s3m_body_unref(body);
    return ok;
}

/* ---- a text picture of a whole store, to prove "nothing changed" ------------- */

struct dump {
    char *text;
    size_t len, cap;
};

static void dump_add(struct dump *d, const void *data, size_t len)
{
    if (d->len + len + 1 > d->cap) {
        d->cap = (d->len + len + 1) * 2;
        d->text = realloc(d->text, d->cap);
    }
    memcpy(d->text + d->len, data, len);
    d->len += len;
    d->text[d->len] = '\0';
}

static void dump_printf(struct dump *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void dump_printf(struct dump *d, const char *fmt, ...)
{
    char line[2200];
    va_list args;
    va_start(args, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, args);
    va_end(args);
    dump_add(d, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

static int dump_visit(void *ctx, const char *key, const struct s3m_object_info *info,
                      struct s3m_body *body)
{
    struct dump *d = ctx;
    uint64_t size = s3m_body_size(body);
    unsigned char *bytes = malloc(size ? size : 1);
    s3m_body_read(body, 0, bytes, size);
    char md5[33];
    md5_hex_of(bytes, size, md5);
    free(bytes);
    dump_printf(d, "%s size=%llu/%llu md5=%s mode=%o uid=%u gid=%u mtime=%lld type=%s",
                key, (unsigned long long)size, (unsigned long long)info->size,
                md5, info->mode, info->uid, info->gid, (long long)info->mtime_ns,
                s3m_meta_content_type(info->meta));
    for (size_t i = 0; info->meta && i < info->meta->count; i++)
        dump_printf(d, " %s=%s", info->meta->entries[i].name,
                    info->meta->entries[i].value);
    dump_add(d, "\n", 1);
    return 0;
}

/* New text: every object, its body's MD5, attributes and metadata, then the
 * store's count and total size. Call with the allocation hook off. */
static char *store_dump(struct s3m_store *store)
{
    struct dump d = {0};
    dump_add(&d, "", 0);
    s3m_store_foreach(store, NULL, dump_visit, &d);
    struct s3m_store_stats stats;
    s3m_store_stats(store, &stats);
    dump_printf(&d, "count=%zu total=%llu keybytes=%llu\n", stats.object_count,
                (unsigned long long)stats.total_size,
                (unsigned long long)stats.key_bytes);
    return d.text;
}

static bool dump_equal(const char *before, const char *after)
{
    if (strcmp(before, after) == 0)
        return true;
    fprintf(stderr, "  store changed:\n--- before\n%s--- after\n%s", before, after);
    return false;
}

/* ---- put / get / head -------------------------------------------------------- */

static void test_put_get_sizes(void)
{
    static const size_t sizes[] = {0, 1, 100, 64 * KIB, 64 * KIB + 1, MIB + 7};
    struct s3m_store *store = store_plain();
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        size_t len = sizes[i];
        unsigned char *data = pattern_new(len, i);
        char key[32];
        snprintf(key, sizeof(key), "size/%zu", len);
        CHECK_INT(s3m_store_put(store, key, data, len, NULL, 0), 0);
        CHECK(key_holds(store, key, data, len));
        struct s3m_object_info info = {0};
        CHECK_INT(s3m_store_head(store, key, &info), 0);
        CHECK_INT(info.size, len);
        CHECK_INT(info.mode, S_IFREG | 0644);
        CHECK(info.mtime_ns > 0);
        CHECK_STR(s3m_meta_content_type(info.meta), S3M_DEFAULT_CONTENT_TYPE);
        s3m_object_info_release(&info);
        /* a read from the middle copies only what is there */
        if (len > 10) {
            struct s3m_body *body = NULL;
            unsigned char buf[32];
            CHECK_INT(s3m_store_get(store, key, NULL, &body), 0);
            CHECK_INT(s3m_body_read(body, len - 5, buf, sizeof(buf)), 5);
            CHECK_MEM(buf, data + len - 5, 5);
            s3m_body_unref(body);
        }
        free(data);
    }
    /* the empty body: NULL body, size 0, etag of nothing */
    struct s3m_body *body = (struct s3m_body *)1;
    char etag[33];
    CHECK_INT(s3m_store_get(store, "size/0", NULL, &body), 0);
    CHECK(body == NULL);
    CHECK_INT(s3m_body_size(body), 0);
    CHECK_INT(s3m_body_read(body, 0, etag, 1), 0);
    CHECK_INT(s3m_store_etag(store, "size/0", etag), 0);
    CHECK_STR(etag, "d41d8cd98f00b204e9800998ecf8427e");
    /* a put with NULL data and length 0 is the empty body too */
    CHECK_INT(s3m_store_put(store, "empty2", NULL, 0, NULL, 0), 0);
    CHECK(key_holds(store, "empty2", "", 0));

    /* replacing a key replaces the body, the count stays */
    CHECK_INT(s3m_store_put(store, "size/1", "xyz", 3, NULL, 0), 0);
    CHECK(key_holds(store, "size/1", "xyz", 3));
    CHECK_INT(s3m_store_count(store, NULL), 7);

    /* missing keys */
    struct s3m_object_info info = {0};
    CHECK_INT(s3m_store_get(store, "nope", &info, &body), -ENOENT);
    CHECK_INT(s3m_store_head(store, "nope", &info), -ENOENT);
    CHECK_INT(s3m_store_etag(store, "nope", etag), -ENOENT);
    s3m_store_free(store);
}

static void test_put_attrs(void)
{
    struct s3m_store_config config = {.default_uid = 1234, .default_gid = 5678};
    struct s3m_store *store = store_with(&config);
    struct s3m_object_info info = {0};

    CHECK_STR(s3m_store_bucket(store), "s3mem");
    CHECK(s3m_store_config(store)->metadata_limit == S3M_DEFAULT_METADATA_LIMIT);
    CHECK_INT(s3m_store_put(store, "dir/", NULL, 0, NULL, 0), 0);
    CHECK_INT(s3m_store_head(store, "dir/", &info), 0);
    CHECK_INT(info.mode, S_IFDIR | 0755);
    CHECK_INT(info.uid, 1234);
    CHECK_INT(info.gid, 5678);
    s3m_object_info_release(&info);

    struct s3m_put_attrs attrs = {.mode = 0600, .has_owner = true, .uid = 1,
                                  .gid = 2, .mtime_ns = 1000000000LL};
    CHECK_INT(s3m_store_put(store, "f", "x", 1, &attrs, 0), 0);
    CHECK_INT(s3m_store_head(store, "f", &info), 0);
    CHECK_INT(info.mode, S_IFREG | 0600);
    CHECK_INT(info.uid, 1);
    CHECK_INT(info.gid, 2);
    CHECK_INT(info.mtime_ns, 1000000000LL);
    s3m_object_info_release(&info);

    /* S_IFMT bits given: permission bits taken as given, even 0 */
    attrs.mode = S_IFREG;
    CHECK_INT(s3m_store_put(store, "g", "x", 1, &attrs, 0), 0);
    CHECK_INT(s3m_store_head(store, "g", &info), 0);
    CHECK_INT(info.mode, S_IFREG);
    s3m_object_info_release(&info);

    /* a known MD5 given with the body is the etag */
    unsigned char fake[16];
    memset(fake, 0xab, sizeof(fake));
    struct s3m_put_attrs with_md5 = {.md5 = fake};
    char etag[33];
    CHECK_INT(s3m_store_put(store, "h", "hello", 5, &with_md5, 0), 0);
    CHECK_INT(s3m_store_etag(store, "h", etag), 0);
    CHECK_STR(etag, "abababababababababababababababab");
    s3m_store_free(store);
}

static void test_keys(void)
{
    struct s3m_store *store = store_plain();
    char *longest = key_of_length(S3M_KEY_MAX, 'k');
    char *too_long = key_of_length(S3M_KEY_MAX + 1, 'k');
    struct s3m_object_info info = {0};

    CHECK_INT(s3m_store_put(store, longest, "a", 1, NULL, 0), 0);
    CHECK(key_holds(store, longest, "a", 1));
    CHECK_INT(s3m_store_put(store, too_long, "a", 1, NULL, 0), -ENAMETOOLONG);
    CHECK_INT(s3m_store_head(store, too_long, &info), -ENAMETOOLONG);
    CHECK_INT(s3m_store_put(store, "", "a", 1, NULL, 0), -EINVAL);
    CHECK_INT(s3m_store_head(store, "", &info), -EINVAL);
    CHECK_INT(s3m_store_delete(store, ""), -EINVAL);
    CHECK_INT(s3m_store_delete(store, too_long), -ENAMETOOLONG);
    CHECK_INT(s3m_store_count(store, NULL), 1);

    /* S3M_PUT_CREATE */
    CHECK_INT(s3m_store_put(store, "c", "1", 1, NULL, S3M_PUT_CREATE), 0);
    CHECK_INT(s3m_store_put(store, "c", "22", 2, NULL, S3M_PUT_CREATE), -EEXIST);
    CHECK(key_holds(store, "c", "1", 1));
    CHECK_INT(s3m_store_put(store, longest, "b", 1, NULL, S3M_PUT_CREATE), -EEXIST);

    /* keys are bytes: never normalised, high bytes sort after ASCII */
    CHECK_INT(s3m_store_put(store, "a//b", "2", 1, NULL, 0), 0);
    CHECK_INT(s3m_store_put(store, "a/b", "1", 1, NULL, 0), 0);
    CHECK(key_holds(store, "a//b", "2", 1));
    CHECK(key_holds(store, "a/b", "1", 1));
    CHECK_INT(s3m_store_put(store, "\xc3\xa9t\xc3\xa9", "3", 1, NULL, 0), 0);
    CHECK(key_holds(store, "\xc3\xa9t\xc3\xa9", "3", 1));
    CHECK_INT(s3m_store_count(store, NULL), 5);
    free(longest);
    free(too_long);
    s3m_store_free(store);
}


/* ---- etags and sparse bodies ------------------------------------------------ */

#define MODEL_MAX (3 * MIB)

/* The object's body, size and etag equal the model. */
static bool object_matches(struct s3m_store *store, struct s3m_object *obj,
                           const unsigned char *model, size_t size)
{
    struct s3m_body *body = s3m_object_body(store, obj);
    bool ok = body_matches(body, model, size);
    s3m_body_unref(body);
    char etag[33], want[33];
    md5_hex_of(model, size, want);
    CHECK_INT(s3m_object_etag(store, obj, etag), 0);
    if (strcmp(etag, want) != 0) {
        fprintf(stderr, "  object etag %s, expected %s\n", etag, want);
        ok = false;
    }
    struct s3m_object_info info = {0};
    s3m_object_head(store, obj, &info);
    if (info.size != size) {
        fprintf(stderr, "  object size %llu, expected %zu\n",
                (unsigned long long)info.size, size);
        ok = false;
    }
    s3m_object_info_release(&info);
    return ok;
}

static void test_etag_random_writes(void)
{
    struct s3m_store *store = store_plain();
    unsigned char *model = calloc(1, MODEL_MAX);
    unsigned char *data = malloc(200 * KIB);
    size_t size = 0;
    uint64_t state = 0x5eed;
    int rc;
    char etag[33];

    CHECK_INT(s3m_store_put(store, "obj", NULL, 0, NULL, 0), 0);
    CHECK_INT(s3m_store_etag(store, "obj", etag), 0);
    CHECK_STR(etag, "d41d8cd98f00b204e9800998ecf8427e");
    struct s3m_object *obj = s3m_store_open(store, "obj", &rc);
    CHECK(obj != NULL);
    CHECK_INT(rc, 0);
    if (!obj)
        goto out;
    for (int step = 0; step < 150; step++) {
        uint64_t choice = random_below(&state, 10);
        if (choice < 7) {
            size_t len = 1 + (size_t)random_below(&state, choice < 4 ? 300 : 150 * KIB);
            size_t offset;
            if (choice == 6)        /* far past the end: leaves a hole */
                offset = size + S3M_CHUNK_SIZE + (size_t)random_below(&state, MIB);
            else
                offset = (size_t)random_below(&state, size + 1000);
            if (offset + len > MODEL_MAX)
                offset = MODEL_MAX - len - (size_t)random_below(&state, 1000);
            fill_pattern(data, len, state);
            CHECK_INT(s3m_object_write(store, obj, offset, data, len), 0);
            memcpy(model + offset, data, len);
            if (offset + len > size)
                size = offset + len;
        } else {
            size_t new_size = (size_t)random_below(&state, choice == 9 ? MODEL_MAX
                                                                       : size + 1);
            CHECK_INT(s3m_object_truncate(store, obj, new_size), 0);
            if (new_size < size)
                memset(model + new_size, 0, size - new_size);
            size = new_size;
        }
        if (!object_matches(store, obj, model, size)) {
            fprintf(stderr, "  after step %d (choice %llu)\n", step,
                    (unsigned long long)choice);
            CHECK(!"object equals the model");
            break;
        }
    }
    CHECK(key_holds(store, "obj", model, size));
    struct s3m_store_stats stats;
    s3m_store_stats(store, &stats);
    CHECK_INT(stats.total_size, size);
    s3m_object_unref(obj);
out:
    free(model);
    free(data);
    s3m_store_free(store);
}

/* With the chunk file running, full chunks live in its slots: random
 * writes, holes and truncates still read back exactly, a snapshot's chunks
 * are copied before a write changes them, and a slot handed out again after
 * a delete reads as zeros where nothing was written. */
static void test_chunk_file(void)
{
    CHECK_INT(s3m_body_file_start(), 0);
    CHECK_INT(s3m_body_file_start(), 0);      /* already running: nothing */
    for (int round = 0; round < 3; round++)
        test_etag_random_writes();

    struct s3m_store *store = store_plain();
    unsigned char *data = pattern_new(8 * MIB, 11);
    unsigned char *changed = pattern_new(8 * MIB, 12);
    int rc;
    CHECK_INT(s3m_store_put(store, "big", NULL, 0, NULL, 0), 0);
    struct s3m_object *obj = s3m_store_open(store, "big", &rc);
    for (size_t at = 0; obj && at < 8 * MIB; at += MIB)
        CHECK_INT(s3m_object_write(store, obj, at, data + at, MIB), 0);
    CHECK(key_holds(store, "big", data, 8 * MIB));

    struct s3m_store *snapshot = s3m_store_snapshot(store);
    CHECK(snapshot != NULL);
    memcpy(changed, data, 8 * MIB);
    memcpy(changed + 100, "changed", 7);
    CHECK_INT(s3m_object_write(store, obj, 100, "changed", 7), 0);
    CHECK(key_holds(store, "big", changed, 8 * MIB));
    CHECK(snapshot && key_holds(snapshot, "big", data, 8 * MIB));

    CHECK_INT(s3m_object_truncate(store, obj, 1000), 0);   /* cuts a full chunk */
    CHECK_INT(s3m_object_truncate(store, obj, 3000), 0);
    memset(changed + 1000, 0, 2000);
    CHECK(key_holds(store, "big", changed, 3000));
    s3m_object_unref(obj);
    s3m_store_free(snapshot);
    CHECK_INT(s3m_store_delete(store, "big"), 0);

    /* the freed slots come back: one byte at a full chunk's end */
    CHECK_INT(s3m_store_put(store, "again", NULL, 0, NULL, 0), 0);
    obj = s3m_store_open(store, "again", &rc);
    CHECK(obj && s3m_object_write(store, obj, S3M_CHUNK_SIZE - 1, "x", 1) == 0);
    memset(changed, 0, S3M_CHUNK_SIZE);
    changed[S3M_CHUNK_SIZE - 1] = 'x';
    CHECK(key_holds(store, "again", changed, S3M_CHUNK_SIZE));
    s3m_object_unref(obj);
    s3m_store_free(store);
    free(data);
    free(changed);
    CHECK_INT(s3m_body_memory_used(), 0);
    s3m_body_file_stop();
    s3m_body_file_stop();                     /* stopped already: nothing */
}

/* A write in two steps (the FUSE layer answers in between): the bytes are
 * there after end; a zero-length write changes nothing; a refused begin
 * returns without the lock (the calls after it would hang otherwise). */
static void test_write_in_two_steps(void)
{
    struct s3m_store_config config = {.enforce_limits = true,
                                      .max_object_size = 100 * KIB};
    struct s3m_store *store = store_with(&config);
    struct s3m_write_hold hold;
    int rc;
    CHECK_INT(s3m_store_put(store, "obj", "0123456789", 10, NULL, 0), 0);
    struct s3m_object *obj = s3m_store_open(store, "obj", &rc);
    CHECK(obj != NULL);
    if (!obj)
        goto out;
    CHECK_INT(s3m_object_write_begin(store, obj, 8, 5, &hold), 0);
    CHECK_INT(s3m_object_write_end(&hold, "hello"), 0);
    CHECK(key_holds(store, "obj", "01234567hello", 13));
    CHECK_INT(s3m_object_write_begin(store, obj, 50, 0, &hold), 0);
    CHECK_INT(s3m_object_write_end(&hold, ""), 0);
    CHECK(key_holds(store, "obj", "01234567hello", 13));
    CHECK_INT(s3m_object_write_begin(store, obj, 100 * KIB, 1, &hold), -EFBIG);
    CHECK_INT(s3m_object_write_begin(store, obj, UINT64_MAX, 2, &hold), -EFBIG);
    CHECK_INT(s3m_store_put(store, "after", "x", 1, NULL, 0), 0);
    CHECK(key_holds(store, "obj", "01234567hello", 13));
    s3m_object_unref(obj);
out:
    s3m_store_free(store);
}

/* With the reaper running, what a swap or restore replaced is freed on its
 * thread; nothing that only waits to be freed shows in stats or counts
 * against max_memory, and stopping frees what is left. */
static void test_reaper(void)
{
    enum { OBJECTS = 4000 };
    unsigned char *data = pattern_new(KIB, 5);
    unsigned char *big = pattern_new(1000 * KIB, 6);
    struct s3m_store_config config = {.bucket = "test",
                                      .max_memory = (OBJECTS + 1100) * KIB};
    struct s3m_store *store = store_with(&config);
    CHECK_INT(s3m_store_reaper_start(), 0);
    CHECK_INT(s3m_store_reaper_start(), 0);   /* already running: nothing */
    for (int round = 0; round < 4; round++) {
        struct s3m_store *source = store_plain();   /* no limit */
        for (int i = 0; i < OBJECTS; i++) {
            char key[32];
            snprintf(key, sizeof(key), "r%d/k%04d", round, i);
            CHECK_INT(s3m_store_put(source, key, data, KIB, NULL, 0), 0);
        }
        s3m_store_swap_in(store, source, S3M_KEEP_SAME_TO_MS, NULL, NULL);
        s3m_store_free(source);
        /* the old objects may still wait for the reaper: a put that fits
         * once they are freed goes in, and stats never show them (each
         * checked first in turn, while the reaper may still be at work) */
        struct s3m_store_stats stats;
        if (round % 2) {
            CHECK_INT(s3m_store_put(store, "big", big, 1000 * KIB, NULL, 0), 0);
            CHECK_INT(s3m_store_delete(store, "big"), 0);
        }
        s3m_store_stats(store, &stats);
        CHECK_INT(stats.object_count, OBJECTS);
        CHECK_INT(stats.memory_used, OBJECTS * KIB);
        if (round % 2 == 0) {
            CHECK_INT(s3m_store_put(store, "big", big, 1000 * KIB, NULL, 0), 0);
            CHECK_INT(s3m_store_delete(store, "big"), 0);
        }
    }
    /* a restore hands its old objects over too; stop frees what waits */
    struct s3m_store *empty = store_with(&config);
    CHECK_INT(s3m_store_restore(store, empty, NULL, NULL), 0);
    s3m_store_free(empty);
    s3m_store_reaper_stop();
    s3m_store_reaper_stop();                  /* stopped already: nothing */
    CHECK_INT(s3m_body_memory_used(), 0);
    s3m_store_free(store);
    free(big);
    free(data);
}

static void test_sparse_and_truncate(void)
{
    struct s3m_store *store = store_plain();
    unsigned char *data = pattern_new(100 * KIB, 7);
    unsigned char *expected = calloc(1, 200 * KIB);
    int rc;

    CHECK_INT(s3m_store_put(store, "t", data, 100 * KIB, NULL, 0), 0);
    struct s3m_object *obj = s3m_store_open(store, "t", &rc);
    /* down into the middle of the second chunk, then up: zeros */
    CHECK_INT(s3m_object_truncate(store, obj, 70000), 0);
    CHECK_INT(s3m_object_truncate(store, obj, 200 * KIB), 0);
    memcpy(expected, data, 70000);
    CHECK(key_holds(store, "t", expected, 200 * KIB));
    /* down to a chunk boundary, then a write past the end */
    CHECK_INT(s3m_object_truncate(store, obj, S3M_CHUNK_SIZE), 0);
    CHECK_INT(s3m_object_write(store, obj, 150 * KIB, "Z", 1), 0);
    memset(expected + S3M_CHUNK_SIZE, 0, 200 * KIB - S3M_CHUNK_SIZE);
    expected[150 * KIB] = 'Z';
    CHECK(key_holds(store, "t", expected, 150 * KIB + 1));
    /* to zero and back */
    CHECK_INT(s3m_object_truncate(store, obj, 0), 0);
    CHECK(key_holds(store, "t", "", 0));
    CHECK_INT(s3m_object_truncate(store, obj, 10), 0);
    CHECK(key_holds(store, "t", "\0\0\0\0\0\0\0\0\0\0", 10));
    /* truncate to the same size changes nothing */
    CHECK_INT(s3m_object_truncate(store, obj, 10), 0);
    CHECK(key_holds(store, "t", "\0\0\0\0\0\0\0\0\0\0", 10));
    /* a zero-length write changes nothing, even far away */
    CHECK_INT(s3m_object_write(store, obj, 1ULL << 40, "x", 0), 0);
    CHECK(key_holds(store, "t", "\0\0\0\0\0\0\0\0\0\0", 10));

    /* one byte past 2 GiB (pjdfstest): a hole costs no memory */
    uint64_t before = s3m_body_memory_used();
    uint64_t far = (2ULL << 30) + 1;
    CHECK_INT(s3m_object_write(store, obj, far, "!", 1), 0);
    CHECK(s3m_body_memory_used() - before <= S3M_CHUNK_SIZE);
    struct s3m_body *body = s3m_object_body(store, obj);
    CHECK_INT(s3m_body_size(body), far + 1);
    unsigned char probe[8] = "xxxxxxx";
    CHECK_INT(s3m_body_read(body, far - 6, probe, 8), 7);
    CHECK_MEM(probe, "\0\0\0\0\0\0!", 7);
    CHECK_INT(s3m_body_read(body, 1ULL << 30, probe, 4), 4);
    CHECK_MEM(probe, "\0\0\0\0", 4);
    struct iovec iov[4];
    size_t total = 0;
    int used = s3m_body_iov(body, 0, 3 * S3M_CHUNK_SIZE, iov, 4, &total);
    CHECK_INT(used, 3);
    CHECK_INT(total, 3 * S3M_CHUNK_SIZE);
    for (int i = 1; i < used; i++) {
        const unsigned char *zero = iov[i].iov_base;
        CHECK(zero[0] == 0 && zero[iov[i].iov_len - 1] == 0);
    }
    /* max_iov limits the iovecs; total says how far they reach */
    used = s3m_body_iov(body, 0, 3 * S3M_CHUNK_SIZE, iov, 1, &total);
    CHECK_INT(used, 1);
    CHECK(total > 0 && total <= S3M_CHUNK_SIZE);
    CHECK_INT(s3m_body_iov(body, far + 1, 10, iov, 4, &total), 0);
    CHECK_INT(total, 0);
    s3m_body_unref(body);
    struct s3m_store_stats stats;
    s3m_store_stats(store, &stats);
    CHECK_INT(stats.total_size, far + 1);
    s3m_object_unref(obj);
    s3m_store_free(store);

    /* s3m_body_from_bytes */
    CHECK_INT(s3m_body_from_bytes("abc", 3, &body), 0);
    CHECK(body_matches(body, "abc", 3));
    s3m_body_unref(body);
    body = (struct s3m_body *)1;
    CHECK_INT(s3m_body_from_bytes(NULL, 0, &body), 0);
    CHECK(body == NULL);
    free(data);
    free(expected);
}

/* ---- copy-on-write ------------------------------------------------------------ */

static void test_copy_on_write(void)
{
    struct s3m_store *store = store_plain();
    size_t len = 4 * MIB;
    unsigned char *old = pattern_new(len, 11);
    unsigned char *now = malloc(len);
    unsigned char patch[4 * KIB];
    int rc;

    memset(patch, 'P', sizeof(patch));
    CHECK_INT(s3m_store_put(store, "big", old, len, NULL, 0), 0);
    CHECK_INT(s3m_store_put(store, "small", "s", 1, NULL, 0), 0);
    struct s3m_object *obj = s3m_store_open(store, "big", &rc);

    /* a snapshot costs no chunk memory */
    uint64_t before = s3m_body_memory_used();
    struct s3m_store *snap = s3m_store_snapshot(store);
    CHECK(snap != NULL);
    CHECK_INT(s3m_body_memory_used(), before);
    CHECK_INT(s3m_store_count(snap, NULL), 2);
    CHECK_STR(s3m_store_bucket(snap), "test");

    /* a 4 KiB write into the shared 4 MiB body copies about one chunk */
    size_t offset = MIB + 100;
    CHECK_INT(s3m_object_write(store, obj, offset, patch, sizeof(patch)), 0);
    uint64_t growth = s3m_body_memory_used() - before;
    CHECK(growth >= sizeof(patch));
    CHECK(growth <= 2 * S3M_CHUNK_SIZE);
    memcpy(now, old, len);
    memcpy(now + offset, patch, sizeof(patch));
    CHECK(key_holds(store, "big", now, len));
    CHECK(key_holds(snap, "big", old, len));

    /* a second write to the same chunk, now private, costs nothing */
    before = s3m_body_memory_used();
    CHECK_INT(s3m_object_write(store, obj, offset + 10, "Q", 1), 0);
    now[offset + 10] = 'Q';
    CHECK_INT(s3m_body_memory_used(), before);
    CHECK(key_holds(store, "big", now, len));

    /* a reader's body reference is unchanged by later writes */
    struct s3m_body *reader = NULL;
    CHECK_INT(s3m_store_get(store, "big", NULL, &reader), 0);
    struct s3m_body *reader2 = s3m_object_body(store, obj);
    CHECK_INT(s3m_object_write(store, obj, 0, patch, sizeof(patch)), 0);
    CHECK_INT(s3m_object_truncate(store, obj, 2 * MIB), 0);
    CHECK(body_matches(reader, now, len));
    CHECK(body_matches(reader2, now, len));
    s3m_body_unref(reader);
    s3m_body_unref(reader2);
    memcpy(now, patch, sizeof(patch));
    CHECK(key_holds(store, "big", now, 2 * MIB));
    CHECK(key_holds(snap, "big", old, len));

    /* writes into the snapshot do not reach the store either */
    struct s3m_object *snap_obj = s3m_store_open(snap, "small", &rc);
    CHECK_INT(s3m_object_write(snap, snap_obj, 0, "S", 1), 0);
    CHECK(key_holds(snap, "small", "S", 1));
    CHECK(key_holds(store, "small", "s", 1));
    s3m_object_unref(snap_obj);
    CHECK_INT(s3m_store_put(snap, "small", "s", 1, NULL, 0), 0);

    /* restore brings the old contents back; the snapshot stays usable */
    CHECK_INT(s3m_store_put(store, "extra", "e", 1, NULL, 0), 0);
    CHECK_INT(s3m_store_delete(store, "small"), 0);
    CHECK_INT(s3m_store_restore(store, snap, NULL, NULL), 0);
    CHECK(key_holds(store, "big", old, len));
    CHECK(key_holds(store, "small", "s", 1));
    CHECK_INT(s3m_store_head(store, "extra", NULL), -ENOENT);
    CHECK_INT(s3m_store_count(store, NULL), 2);
    struct s3m_store_stats stats;
    s3m_store_stats(store, &stats);
    CHECK_INT(stats.object_count, 2);
    CHECK_INT(stats.total_size, len + 1);
    /* the handle opened before the restore is detached from the store */
    CHECK(!s3m_object_attached(store, obj));
    s3m_object_unref(obj);
    /* writing after the restore does not change the snapshot */
    obj = s3m_store_open(store, "big", &rc);
    CHECK_INT(s3m_object_write(store, obj, 5, "W", 1), 0);
    CHECK(key_holds(snap, "big", old, len));
    s3m_object_unref(obj);
    char *a = store_dump(snap);
    s3m_store_free(store);
    char *b = store_dump(snap);
    CHECK(dump_equal(a, b));
    free(a);
    free(b);
    s3m_store_free(snap);
    free(old);
    free(now);
}

/* ---- listing ---------------------------------------------------------------- */

/* Result's keys and prefixes joined as "k:KEY\n" / "p:PREFIX\n", in order. */
static char *list_text(const struct s3m_list_result *result)
{
    struct dump d = {0};
    dump_add(&d, "", 0);
    for (size_t i = 0; i < result->key_count; i++)
        dump_printf(&d, "k:%s\n", result->keys[i]);
    for (size_t i = 0; i < result->prefix_count; i++)
        dump_printf(&d, "p:%s\n", result->prefixes[i]);
    return d.text;
}

static bool list_is(struct s3m_store *store, const char *prefix, char delimiter,
                    const char *start_after, const char *expected)
{
    struct s3m_list_request req = {.prefix = prefix, .delimiter = delimiter,
                                   .start_after = start_after};
    struct s3m_list_result result;
    int rc = s3m_store_list(store, &req, &result);
    if (rc) {
        fprintf(stderr, "  list: %s\n", strerror(-rc));
        return false;
    }
    char *text = list_text(&result);
    bool ok = strcmp(text, expected) == 0 && !result.truncated &&
              result.next_continuation == NULL;
    if (!ok)
        fprintf(stderr, "  listed:\n%s  expected:\n%s  truncated %d\n", text,
                expected, result.truncated);
    free(text);
    s3m_list_result_release(&result);
    return ok;
}

static void test_list_basic(void)
{
    struct s3m_store *store = store_plain();
    static const char *const keys[] = {"a/c/d", "a", "a/b", "a-c", "b", "\xc3\xa9"};
    for (size_t i = 0; i < 6; i++)
        CHECK_INT(s3m_store_put(store, keys[i], "x", 1, NULL, 0), 0);

    /* everything, in byte order */
    CHECK(list_is(store, NULL, 0, NULL, "k:a\nk:a-c\nk:a/b\nk:a/c/d\nk:b\nk:\xc3\xa9\n"));
    /* delimiter grouping from the root */
    CHECK(list_is(store, "", '/', NULL, "k:a\nk:a-c\nk:b\nk:\xc3\xa9\np:a/\n"));
    /* prefix "a": "a", "a-c" and the group "a/" */
    CHECK(list_is(store, "a", '/', NULL, "k:a\nk:a-c\np:a/\n"));
    /* prefix "a/" */
    CHECK(list_is(store, "a/", '/', NULL, "k:a/b\np:a/c/\n"));
    CHECK(list_is(store, "a/", 0, NULL, "k:a/b\nk:a/c/d\n"));
    /* a prefix that matches nothing */
    CHECK(list_is(store, "zz", '/', NULL, ""));
    CHECK(list_is(store, "a/c/d/", '/', NULL, ""));
    /* start_after */
    CHECK(list_is(store, NULL, 0, "a-c", "k:a/b\nk:a/c/d\nk:b\nk:\xc3\xa9\n"));
    CHECK(list_is(store, NULL, 0, "a-", "k:a-c\nk:a/b\nk:a/c/d\nk:b\nk:\xc3\xa9\n"));
    CHECK(list_is(store, "a/", 0, "a", "k:a/b\nk:a/c/d\n"));
    CHECK(list_is(store, NULL, 0, "\xc3\xa9", ""));
    CHECK(list_is(store, "", '/', "a/b", "k:b\nk:\xc3\xa9\np:a/\n"));
    /* a marker object is listed as a key under its own prefix */
    CHECK_INT(s3m_store_put(store, "a/c/", NULL, 0, NULL, 0), 0);
    CHECK(list_is(store, "a/c/", '/', NULL, "k:a/c/\nk:a/c/d\n"));
    CHECK(list_is(store, "a/", '/', NULL, "k:a/b\np:a/c/\n"));

    /* max_keys counts keys and prefixes together */
    struct s3m_list_request req = {.delimiter = '/', .max_keys = 2};
    struct s3m_list_result result;
    CHECK_INT(s3m_store_list(store, &req, &result), 0);
    CHECK_INT(result.key_count, 2);
    CHECK_INT(result.prefix_count, 0);
    CHECK(result.truncated);
    CHECK_STR(result.next_continuation, "a-c");
    s3m_list_result_release(&result);
    /* a page that ends exactly at the last key is not truncated */
    req = (struct s3m_list_request){.prefix = "a/", .max_keys = 3};
    CHECK_INT(s3m_store_list(store, &req, &result), 0);
    CHECK_INT(result.key_count, 3);
    CHECK(!result.truncated);
    CHECK(result.next_continuation == NULL);
    s3m_list_result_release(&result);
    /* the empty store */
    s3m_store_clear(store, NULL, NULL);
    CHECK(list_is(store, NULL, '/', NULL, ""));
    s3m_store_free(store);
}

/* Lists with max_keys = page, following continuation tokens, and returns the
 * pages joined (new). Counts the pages; fails on an endless listing. */
static char *list_paged(struct s3m_store *store, const char *prefix,
                        char delimiter, const char *start_after, size_t page,
                        size_t *pages)
{
    struct dump d = {0};
    char *token = NULL;
    size_t limit = page ? page : 1000;
    dump_add(&d, "", 0);
    *pages = 0;
    for (;;) {
        struct s3m_list_request req = {.prefix = prefix, .delimiter = delimiter,
                                       .max_keys = page, .continuation = token,
                                       .start_after = start_after};
        struct s3m_list_result result;
        int rc = s3m_store_list(store, &req, &result);
        CHECK_INT(rc, 0);
        if (rc)
            break;
        ++*pages;
        CHECK(result.key_count + result.prefix_count <= limit);
        /* keys and prefixes of one page, merged in byte order */
        size_t k = 0, p = 0;
        while (k < result.key_count || p < result.prefix_count) {
            bool key = p == result.prefix_count ||
                       (k < result.key_count &&
                        strcmp(result.keys[k], result.prefixes[p]) < 0);
            dump_printf(&d, "%s\n", key ? result.keys[k++] : result.prefixes[p++]);
        }
        free(token);
        token = NULL;
        if (!result.truncated) {
            CHECK(result.next_continuation == NULL);
            s3m_list_result_release(&result);
            break;
        }
        CHECK(result.next_continuation != NULL);
        CHECK(result.key_count + result.prefix_count == limit);
        token = result.next_continuation ? strdup(result.next_continuation) : NULL;
        s3m_list_result_release(&result);
        if (!token || *pages > 100000)
            break;
    }
    free(token);
    return d.text;
}

static bool text_equal(const char *what, const char *actual, const char *expected)
{
    if (strcmp(actual, expected) == 0)
        return true;
    size_t at = 0;
    while (actual[at] && actual[at] == expected[at])
        at++;
    fprintf(stderr, "  %s differs at byte %zu: got \"%.60s\", expected \"%.60s\"\n",
            what, at, actual + at, expected + at);
    return false;
}

static void test_list_pagination(void)
{
    struct s3m_store *store = store_plain();
    struct dump all = {0}, grouped = {0}, under = {0}, after = {0};
    dump_add(&all, "", 0);
    dump_add(&grouped, "", 0);
    dump_add(&under, "", 0);
    dump_add(&after, "", 0);
    /* 1000 keys: d00/ .. d39/ hold 20 keys each (plus a marker for even
     * groups), and 200 keys "k000".. at the top level; inserted out of
     * order. Keys sort: "d00/..." < "k000" */
    char key[64];
    size_t n = 0;
    for (int i = 0; i < 1000; i++) {
        int j = (i * 379) % 1000;   /* a permutation of 0..999 */
        if (j < 800)
            snprintf(key, sizeof(key), "d%02d/f%02d", j / 20, j % 20);
        else
            snprintf(key, sizeof(key), "k%03d", j - 800);
        CHECK_INT(s3m_store_put(store, key, "v", 1, NULL, 0), 0);
        n++;
    }
    CHECK_INT(n, 1000);
    CHECK_INT(s3m_store_count(store, NULL), 1000);
    for (int g = 0; g < 40; g++) {
        for (int f = 0; f < 20; f++)
            dump_printf(&all, "d%02d/f%02d\n", g, f);
        dump_printf(&grouped, "d%02d/\n", g);
    }
    for (int k = 0; k < 200; k++) {
        dump_printf(&all, "k%03d\n", k);
        dump_printf(&grouped, "k%03d\n", k);
        if (k > 150)
            dump_printf(&after, "k%03d\n", k);
    }
    for (int f = 0; f < 20; f++)
        dump_printf(&under, "d07/f%02d\n", f);

    size_t pages;
    char *text = list_paged(store, NULL, 0, NULL, 7, &pages);
    CHECK(text_equal("all keys", text, all.text));
    CHECK_INT(pages, (1000 + 6) / 7);
    free(text);
    text = list_paged(store, NULL, '/', NULL, 7, &pages);
    CHECK(text_equal("grouped", text, grouped.text));
    CHECK_INT(pages, (240 + 6) / 7);
    free(text);
    text = list_paged(store, "d07/", '/', NULL, 7, &pages);
    CHECK(text_equal("under d07/", text, under.text));
    CHECK_INT(pages, 3);
    free(text);
    text = list_paged(store, "k", '/', "k150", 7, &pages);
    CHECK(text_equal("after k150", text, after.text));
    free(text);
    /* page sizes 1 and 1000 */
    text = list_paged(store, NULL, '/', NULL, 1, &pages);
    CHECK(text_equal("grouped by one", text, grouped.text));
    CHECK_INT(pages, 240);
    free(text);
    text = list_paged(store, NULL, 0, NULL, 0, &pages);
    CHECK(text_equal("default page", text, all.text));
    CHECK_INT(pages, 1);
    free(text);

    /* markers d00/, d02/... inside the groups change nothing grouped */
    for (int g = 0; g < 40; g += 2) {
        snprintf(key, sizeof(key), "d%02d/", g);
        CHECK_INT(s3m_store_put(store, key, NULL, 0, NULL, 0), 0);
    }
    text = list_paged(store, NULL, '/', NULL, 7, &pages);
    CHECK(text_equal("grouped with markers", text, grouped.text));
    free(text);
    free(all.text);
    free(grouped.text);
    free(under.text);
    free(after.text);
    s3m_store_free(store);
}

static void test_list_high_bytes(void)
{
    struct s3m_store *store = store_plain();
    static const char *const keys[] = {"\xff", "\xff\xff/a", "\xff\xff/b",
                                       "\xff\xff\xff", "a\xff" "b", "a\xff" "c",
                                       "a\xfe", "b"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        CHECK_INT(s3m_store_put(store, keys[i], "x", 1, NULL, 0), 0);
    size_t pages;
    char *text = list_paged(store, NULL, '/', NULL, 1, &pages);
    CHECK(text_equal("grouped by '/'", text,
                     "a\xfe\na\xff" "b\na\xff" "c\nb\n\xff\n\xff\xff/\n\xff\xff\xff\n"));
    free(text);
    text = list_paged(store, NULL, '\xff', NULL, 1, &pages);
    CHECK(text_equal("grouped by 0xff", text, "a\xfe\na\xff\nb\n\xff\n"));
    free(text);
    text = list_paged(store, "\xff\xff", '/', NULL, 1, &pages);
    CHECK(text_equal("under 0xff 0xff", text, "\xff\xff/\n\xff\xff\xff\n"));
    free(text);
    CHECK(list_is(store, NULL, 0, "\xff\xff/",
                  "k:\xff\xff/a\nk:\xff\xff/b\nk:\xff\xff\xff\n"));
    CHECK_INT(s3m_store_count(store, "\xff"), 4);
    s3m_store_free(store);
}

/* ---- one-level listing ----------------------------------------------------- */

struct level_seen {
    struct dump d;
    int stop_after;              /* 0 = never */
    int calls;
};

static int level_visit(void *ctx, const struct s3m_level_entry *entry)
{
    struct level_seen *seen = ctx;
    dump_printf(&seen->d, "%.*s%s%s%s%s", (int)entry->name_len, entry->name,
                entry->is_prefix ? " dir" : "", entry->shadowed ? " shadowed" : "",
                entry->info ? " info" : "",
                entry->info && entry->info->size ? " body" : "");
    /* a common prefix's info is its marker's: show the marker's mode */
    if (entry->is_prefix && entry->info)
        dump_printf(&seen->d, " mode=%o", entry->info->mode);
    dump_add(&seen->d, "\n", 1);
    return ++seen->calls == seen->stop_after ? 42 : 0;
}

static bool level_is(struct s3m_store *store, const char *prefix,
                     const char *expected)
{
    struct level_seen seen = {0};
    dump_add(&seen.d, "", 0);
    int rc = s3m_store_list_level(store, prefix, '/', level_visit, &seen);
    bool ok = rc == 0 && strcmp(seen.d.text, expected) == 0;
    if (!ok)
        fprintf(stderr, "  level '%s' rc %d:\n%s  expected:\n%s", prefix, rc,
                seen.d.text, expected);
    free(seen.d.text);
    return ok;
}

static void test_list_level(void)
{
    struct s3m_store *store = store_plain();
    static const char *const keys[] = {
        "a", "a/x", "a-c", "b/", "b/y", "c/d/e", "top", "a/sub/", "a/sub/z",
        "a/", "a/file",
    };
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        CHECK_INT(s3m_store_put(store, keys[i], i == 6 ? "body" : "", i == 6 ? 4 : 0,
                                NULL, 0), 0);
    /* root: "a" is shadowed by "a/"; "b/" has a marker, "c/" has none */
    CHECK(level_is(store, "", "a shadowed info\na-c info\na dir info mode=40755\n"
                              "b dir info mode=40755\nc dir\ntop info body\n"));
    /* "a/": its own key "a/" is skipped */
    CHECK(level_is(store, "a/", "file info\nsub dir info mode=40755\nx info\n"));
    CHECK(level_is(store, "a/sub/", "z info\n"));
    CHECK(level_is(store, "c/", "d dir\n"));
    CHECK(level_is(store, "nothing/", ""));
    CHECK(level_is(store, "b/", "y info\n"));

    /* the marker's info is the marker object's */
    struct s3m_attr_update update = {.flags = S3M_ATTR_MODE, .mode = 0700};
    int rc;
    struct s3m_object *marker = s3m_store_open(store, "b/", &rc);
    CHECK_INT(s3m_object_set_attrs(store, marker, &update), 0);
    s3m_object_unref(marker);
    CHECK(level_is(store, "", "a shadowed info\na-c info\na dir info mode=40755\n"
                              "b dir info mode=40700\nc dir\ntop info body\n"));

    /* early stop returns the visitor's value */
    struct level_seen seen = {.stop_after = 2};
    dump_add(&seen.d, "", 0);
    CHECK_INT(s3m_store_list_level(store, "", '/', level_visit, &seen), 42);
    CHECK_INT(seen.calls, 2);
    free(seen.d.text);

    /* the marker "a/" alone still shadows "a"; without it "a" is plain */
    CHECK_INT(s3m_store_delete(store, "a/x"), 0);
    CHECK_INT(s3m_store_delete(store, "a/file"), 0);
    CHECK_INT(s3m_store_delete(store, "a/sub/"), 0);
    CHECK_INT(s3m_store_delete(store, "a/sub/z"), 0);
    CHECK(level_is(store, "", "a shadowed info\na-c info\na dir info mode=40755\n"
                              "b dir info mode=40700\nc dir\ntop info body\n"));
    CHECK_INT(s3m_store_delete(store, "a/"), 0);
    CHECK(level_is(store, "", "a info\na-c info\nb dir info mode=40700\nc dir\n"
                              "top info body\n"));
    s3m_store_free(store);
}

/* ---- metadata ---------------------------------------------------------------- */

/* New metadata with the given name/value pairs (NULL-ended). */
static struct s3m_meta *meta_of(const char *name, ...)
{
    struct s3m_meta *meta = s3m_meta_new();
    va_list args;
    va_start(args, name);
    for (; name; name = va_arg(args, const char *)) {
        const char *value = va_arg(args, const char *);
        struct s3m_meta *next = s3m_meta_with(meta, name, value, strlen(value));
        s3m_meta_unref(meta);
        meta = next;
    }
    va_end(args);
    return meta;
}

static const char *meta_value(const struct s3m_meta *meta, const char *name)
{
    const struct s3m_meta_entry *entry = s3m_meta_find(meta, name);
    return entry ? entry->value : NULL;
}

static void test_meta_helpers(void)
{
    struct s3m_meta *empty = s3m_meta_new();
    CHECK(empty != NULL);
    CHECK_INT(empty->count, 0);
    CHECK_INT(s3m_meta_size(empty), 0);
    CHECK_INT(s3m_meta_size(NULL), 0);
    CHECK(s3m_meta_find(NULL, "x") == NULL);
    CHECK(s3m_meta_ref(NULL) == NULL);
    s3m_meta_unref(NULL);
    CHECK_STR(s3m_meta_content_type(NULL), S3M_DEFAULT_CONTENT_TYPE);

    /* with: case-insensitive replace keeps the new name's case */
    struct s3m_meta *a = s3m_meta_with(NULL, "Color", "red", 3);
    CHECK_INT(a->count, 1);
    CHECK_STR(meta_value(a, "color"), "red");
    CHECK_STR(meta_value(a, "COLOR"), "red");
    CHECK(s3m_meta_find(a, "colour") == NULL);
    struct s3m_meta *b = s3m_meta_with(a, "COLOR", "blue", 4);
    CHECK_INT(b->count, 1);
    CHECK_STR(b->entries[0].name, "COLOR");
    CHECK_STR(meta_value(b, "color"), "blue");
    CHECK_STR(meta_value(a, "color"), "red");     /* a is unchanged */
    CHECK_INT(s3m_meta_size(b), 5 + 4);
    /* values are bytes: an embedded NUL is kept */
    struct s3m_meta *c = s3m_meta_with(b, "bin", "x\0y", 3);
    CHECK_INT(c->count, 2);
    const struct s3m_meta_entry *bin = s3m_meta_find(c, "BIN");
    CHECK(bin != NULL);
    if (bin) {
        CHECK_INT(bin->value_len, 3);
        CHECK_MEM(bin->value, "x\0y", 4);
    }
    CHECK_INT(s3m_meta_size(c), 5 + 4 + 3 + 3);
    /* UTF-8 names and values count their bytes */
    struct s3m_meta *u = s3m_meta_with(NULL, "n\xc3\xa9", "\xe2\x82\xac", 3);
    CHECK_INT(s3m_meta_size(u), 3 + 3);
    s3m_meta_unref(u);

    /* without, in any case; a missing name gives an equal copy */
    struct s3m_meta *d = s3m_meta_without(c, "Color");
    CHECK_INT(d->count, 1);
    CHECK(s3m_meta_find(d, "color") == NULL);
    CHECK(s3m_meta_find(d, "bin") != NULL);
    CHECK_INT(c->count, 2);
    struct s3m_meta *e = s3m_meta_without(d, "nothing");
    CHECK_INT(e->count, 1);
    struct s3m_meta *f = s3m_meta_without(NULL, "x");
    CHECK(f != NULL && f->count == 0);

    /* with_type sets and clears type and encoding, keeping entries */
    struct s3m_meta *t = s3m_meta_with_type(c, "text/plain", "gzip");
    CHECK_STR(s3m_meta_content_type(t), "text/plain");
    CHECK_STR(t->content_encoding, "gzip");
    CHECK_INT(t->count, 2);
    CHECK_STR(s3m_meta_content_type(c), S3M_DEFAULT_CONTENT_TYPE);
    struct s3m_meta *t2 = s3m_meta_with_type(t, NULL, NULL);
    CHECK_STR(s3m_meta_content_type(t2), S3M_DEFAULT_CONTENT_TYPE);
    CHECK(t2->content_encoding == NULL);
    CHECK_INT(t2->count, 2);
    /* with copies the type along */
    struct s3m_meta *t3 = s3m_meta_with(t, "k", "v", 1);
    CHECK_STR(s3m_meta_content_type(t3), "text/plain");
    CHECK_STR(t3->content_encoding, "gzip");

    /* merge: overlay wins per name (any case), the rest is kept */
    struct s3m_meta *base = meta_of("a", "1", "B", "2", NULL);
    struct s3m_meta *over = meta_of("b", "20", "c", "30", NULL);
    struct s3m_meta *over_typed = s3m_meta_with_type(over, "image/png", NULL);
    struct s3m_meta *m = s3m_meta_merge(base, over_typed);
    CHECK_INT(m->count, 3);
    CHECK_STR(meta_value(m, "a"), "1");
    CHECK_STR(meta_value(m, "b"), "20");
    CHECK_STR(meta_value(m, "c"), "30");
    CHECK_STR(s3m_meta_content_type(m), "image/png");
    struct s3m_meta *m2 = s3m_meta_merge(t, over);  /* no type in overlay */
    CHECK_STR(s3m_meta_content_type(m2), "text/plain");
    CHECK_STR(m2->content_encoding, "gzip");
    struct s3m_meta *m3 = s3m_meta_merge(NULL, base);
    CHECK_INT(m3->count, 2);
    struct s3m_meta *m4 = s3m_meta_merge(base, NULL);
    CHECK_INT(m4->count, 2);

    struct s3m_meta *all[] = {empty, a, b, c, d, e, f, t, t2, t3, base, over,
                              over_typed, m, m2, m3, m4};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        s3m_meta_unref(all[i]);
}

/* ---- copy --------------------------------------------------------------------- */

static void test_copy(void)
{
    struct s3m_store *store = store_plain();
    size_t len = 2 * MIB;
    unsigned char *data = pattern_new(len, 3);
    struct s3m_meta *meta = meta_of("owner", "ann", "Color", "red", NULL);
    struct s3m_meta *typed = s3m_meta_with_type(meta, "text/csv", "gzip");
    struct s3m_put_attrs attrs = {.meta = typed, .mode = 0640, .has_owner = true,
                                  .uid = 7, .gid = 8, .mtime_ns = 5000000000LL};
    struct s3m_object_info info = {0};

    CHECK_INT(s3m_store_put(store, "src", data, len, &attrs, 0), 0);
    uint64_t before = s3m_body_memory_used();
    struct s3m_store_stats stats0, stats1;
    s3m_store_stats(store, &stats0);

    /* KEEP: same metadata, type, encoding, owner, mode; body shared */
    CHECK_INT(s3m_store_copy(store, "src", "keep", S3M_COPY_KEEP, NULL), 0);
    CHECK_INT(s3m_body_memory_used(), before);
    CHECK(key_holds(store, "keep", data, len));
    CHECK_INT(s3m_store_head(store, "keep", &info), 0);
    CHECK_STR(meta_value(info.meta, "owner"), "ann");
    CHECK_STR(meta_value(info.meta, "color"), "red");
    CHECK_STR(s3m_meta_content_type(info.meta), "text/csv");
    CHECK_STR(info.meta ? info.meta->content_encoding : NULL, "gzip");
    CHECK_INT(info.mode, S_IFREG | 0640);
    CHECK_INT(info.uid, 7);
    CHECK_INT(info.gid, 8);
    CHECK(info.mtime_ns != 5000000000LL);         /* a copy is a new object */
    s3m_object_info_release(&info);
    s3m_store_stats(store, &stats1);
    CHECK_INT(stats1.copies - stats0.copies, 1);
    CHECK_INT(stats1.object_count, 2);
    CHECK_INT(stats1.total_size, 2 * len);

    /* MERGE: overlay on top of the source's metadata and type */
    struct s3m_meta *overlay = meta_of("COLOR", "blue", "size", "xl", NULL);
    struct s3m_meta *overlay_typed = s3m_meta_with_type(overlay, "text/plain", NULL);
    CHECK_INT(s3m_store_copy(store, "src", "merge", S3M_COPY_MERGE, overlay_typed), 0);
    CHECK_INT(s3m_store_head(store, "merge", &info), 0);
    CHECK_INT(info.meta ? info.meta->count : 0, 3);
    CHECK_STR(meta_value(info.meta, "owner"), "ann");
    CHECK_STR(meta_value(info.meta, "color"), "blue");
    CHECK_STR(meta_value(info.meta, "size"), "xl");
    CHECK_STR(s3m_meta_content_type(info.meta), "text/plain");
    s3m_object_info_release(&info);
    /* MERGE with no overlay keeps everything */
    CHECK_INT(s3m_store_copy(store, "src", "merge0", S3M_COPY_MERGE, NULL), 0);
    CHECK_INT(s3m_store_head(store, "merge0", &info), 0);
    CHECK_INT(info.meta ? info.meta->count : 0, 2);
    CHECK_STR(s3m_meta_content_type(info.meta), "text/csv");
    s3m_object_info_release(&info);

    /* REPLACE: exactly the given metadata; NULL means empty */
    CHECK_INT(s3m_store_copy(store, "src", "replace", S3M_COPY_REPLACE, overlay), 0);
    CHECK_INT(s3m_store_head(store, "replace", &info), 0);
    CHECK_INT(info.meta ? info.meta->count : 0, 2);
    CHECK(s3m_meta_find(info.meta, "owner") == NULL);
    CHECK_STR(meta_value(info.meta, "color"), "blue");
    CHECK_STR(s3m_meta_content_type(info.meta), S3M_DEFAULT_CONTENT_TYPE);
    s3m_object_info_release(&info);
    CHECK_INT(s3m_store_copy(store, "src", "replace0", S3M_COPY_REPLACE, NULL), 0);
    CHECK_INT(s3m_store_head(store, "replace0", &info), 0);
    CHECK_INT(info.meta ? info.meta->count : 0, 0);
    CHECK_STR(s3m_meta_content_type(info.meta), S3M_DEFAULT_CONTENT_TYPE);
    s3m_object_info_release(&info);

    /* every copy shares the body: memory did not grow */
    CHECK_INT(s3m_body_memory_used(), before);
    /* writing into a copy copies one chunk, the source is unchanged */
    int rc;
    struct s3m_object *obj = s3m_store_open(store, "keep", &rc);
    CHECK_INT(s3m_object_write(store, obj, 10, "!", 1), 0);
    s3m_object_unref(obj);
    CHECK(s3m_body_memory_used() - before <= S3M_CHUNK_SIZE);
    CHECK(key_holds(store, "src", data, len));
    char etag_src[33], etag_keep[33];
    CHECK_INT(s3m_store_etag(store, "src", etag_src), 0);
    CHECK_INT(s3m_store_etag(store, "keep", etag_keep), 0);
    CHECK(strcmp(etag_src, etag_keep) != 0);

    /* onto itself, onto an existing key, errors */
    CHECK_INT(s3m_store_copy(store, "src", "src", S3M_COPY_MERGE, overlay), 0);
    CHECK(key_holds(store, "src", data, len));
    CHECK_INT(s3m_store_head(store, "src", &info), 0);
    CHECK_STR(meta_value(info.meta, "color"), "blue");
    s3m_object_info_release(&info);
    CHECK_INT(s3m_store_copy(store, "replace", "merge", S3M_COPY_KEEP, NULL), 0);
    CHECK_INT(s3m_store_head(store, "merge", &info), 0);
    CHECK(s3m_meta_find(info.meta, "owner") == NULL);
    s3m_object_info_release(&info);
    char *state = store_dump(store);
    char *too_long = key_of_length(S3M_KEY_MAX + 1, 'x');
    CHECK_INT(s3m_store_copy(store, "missing", "x", S3M_COPY_KEEP, NULL), -ENOENT);
    CHECK_INT(s3m_store_copy(store, "src", too_long, S3M_COPY_KEEP, NULL), -ENAMETOOLONG);
    CHECK_INT(s3m_store_copy(store, "src", "", S3M_COPY_KEEP, NULL), -EINVAL);
    CHECK_INT(s3m_store_copy(store, "", "x", S3M_COPY_KEEP, NULL), -EINVAL);
    CHECK_INT(s3m_store_copy(store, "src", "x", (enum s3m_metadata_directive)99, NULL),
              -EINVAL);
    char *after = store_dump(store);
    CHECK(dump_equal(state, after));
    free(state);
    free(after);
    free(too_long);

    /* a copy of a marker is a marker: the kind follows the key */
    CHECK_INT(s3m_store_put(store, "dir/", NULL, 0, NULL, 0), 0);
    CHECK_INT(s3m_store_copy(store, "dir/", "file", S3M_COPY_KEEP, NULL), 0);
    CHECK_INT(s3m_store_head(store, "file", &info), 0);
    CHECK_INT(info.mode & S_IFMT, S_IFREG);
    s3m_object_info_release(&info);

    struct s3m_meta *all[] = {meta, typed, overlay, overlay_typed};
    for (size_t i = 0; i < 4; i++)
        s3m_meta_unref(all[i]);
    free(data);
    s3m_store_free(store);
}

/* ---- delete ------------------------------------------------------------------- */

static void test_delete(void)
{
    struct s3m_store *store = store_plain();
    struct s3m_store_stats stats;

    CHECK_INT(s3m_store_put(store, "a", "1", 1, NULL, 0), 0);
    CHECK_INT(s3m_store_put(store, "b", "22", 2, NULL, 0), 0);
    CHECK_INT(s3m_store_put(store, "c", "333", 3, NULL, 0), 0);
    CHECK_INT(s3m_store_delete(store, "b"), 0);
    CHECK_INT(s3m_store_delete(store, "b"), -ENOENT);
    CHECK_INT(s3m_store_head(store, "b", NULL), -ENOENT);
    CHECK(key_holds(store, "a", "1", 1));
    CHECK(key_holds(store, "c", "333", 3));
    s3m_store_stats(store, &stats);
    CHECK_INT(stats.object_count, 2);
    CHECK_INT(stats.total_size, 4);
    CHECK_INT(stats.key_bytes, 2);

    /* delete_many counts what existed */
    const char *const keys[] = {"a", "nope", "c", "a", ""};
    size_t deleted = 99;
    CHECK_INT(s3m_store_put(store, "d", "4444", 4, NULL, 0), 0);
    CHECK_INT(s3m_store_delete_many(store, keys, 5, &deleted), 0);
    CHECK_INT(deleted, 2);
    CHECK_INT(s3m_store_count(store, NULL), 1);
    CHECK(key_holds(store, "d", "4444", 4));
    CHECK_INT(s3m_store_delete_many(store, keys, 0, &deleted), 0);
    CHECK_INT(deleted, 0);
    CHECK_INT(s3m_store_delete_many(store, keys, 2, NULL), 0);

    /* delete_marker */
    CHECK_INT(s3m_store_delete_marker(store, "dir/"), -ENOENT);
    CHECK_INT(s3m_store_put(store, "dir/", NULL, 0, NULL, 0), 0);
    CHECK_INT(s3m_store_put(store, "dir/x", "x", 1, NULL, 0), 0);
    CHECK_INT(s3m_store_put(store, "dir0", "x", 1, NULL, 0), 0);
    CHECK_INT(s3m_store_delete_marker(store, "dir/"), -ENOTEMPTY);
    CHECK_INT(s3m_store_head(store, "dir/", NULL), 0);
    CHECK_INT(s3m_store_delete(store, "dir/x"), 0);
    CHECK_INT(s3m_store_delete_marker(store, "dir/"), 0);
    CHECK_INT(s3m_store_head(store, "dir/", NULL), -ENOENT);
    CHECK_INT(s3m_store_head(store, "dir0", NULL), 0);
    CHECK_INT(s3m_store_delete_marker(store, "dir/"), -ENOENT);
    /* only implicit: keys under it but no marker */
    CHECK_INT(s3m_store_put(store, "imp/x", "x", 1, NULL, 0), 0);
    CHECK_INT(s3m_store_delete_marker(store, "imp/"), -ENOTEMPTY);
    CHECK_INT(s3m_store_head(store, "imp/x", NULL), 0);
    /* a marker with a body is not removed */
    CHECK_INT(s3m_store_put(store, "full/", "body", 4, NULL, 0), 0);
    CHECK_INT(s3m_store_delete_marker(store, "full/"), -ENOTEMPTY);
    CHECK(key_holds(store, "full/", "body", 4));
    CHECK_INT(s3m_store_delete_marker(store, ""), -EINVAL);

    /* clear */
    s3m_store_clear(store, NULL, NULL);
    s3m_store_stats(store, &stats);
    CHECK_INT(stats.object_count, 0);
    CHECK_INT(stats.total_size, 0);
    CHECK_INT(stats.key_bytes, 0);
    CHECK(!s3m_store_has_prefix(store, ""));
    CHECK_INT(s3m_store_head(store, "d", NULL), -ENOENT);
    CHECK(list_is(store, NULL, 0, NULL, ""));
    /* the store works after a clear */
    CHECK_INT(s3m_store_put(store, "again", "1", 1, NULL, 0), 0);
    CHECK(key_holds(store, "again", "1", 1));
    s3m_store_clear(store, NULL, NULL);
    s3m_store_clear(store, NULL, NULL);
    CHECK_INT(s3m_store_count(store, NULL), 0);
    s3m_store_free(store);
}

/* ---- move --------------------------------------------------------------------- */

static void test_move(void)
{
    struct s3m_store *store = store_plain();
    struct s3m_meta *meta = meta_of("m", "1", NULL);
    struct s3m_put_attrs attrs = {.meta = meta, .mtime_ns = 1234567000000LL,
                                  .mode = 0600};
    struct s3m_object_info info = {0};
    char etag[33], etag2[33];

    CHECK_INT(s3m_store_put(store, "src", "data", 4, &attrs, 0), 0);
    CHECK_INT(s3m_store_etag(store, "src", etag), 0);
    CHECK_INT(s3m_store_move(store, "src", "dst", false), 0);
    CHECK_INT(s3m_store_head(store, "src", NULL), -ENOENT);
    CHECK(key_holds(store, "dst", "data", 4));
    CHECK_INT(s3m_store_head(store, "dst", &info), 0);
    CHECK_STR(meta_value(info.meta, "m"), "1");
    CHECK_INT(info.mtime_ns, 1234567000000LL);
    CHECK_INT(info.mode, S_IFREG | 0600);
    s3m_object_info_release(&info);
    CHECK_INT(s3m_store_etag(store, "dst", etag2), 0);
    CHECK_STR(etag2, etag);
    CHECK_INT(s3m_store_count(store, NULL), 1);

    /* noreplace, replace, missing, onto itself */
    CHECK_INT(s3m_store_put(store, "other", "o", 1, NULL, 0), 0);
    CHECK_INT(s3m_store_move(store, "dst", "other", true), -EEXIST);
    CHECK(key_holds(store, "dst", "data", 4));
    CHECK(key_holds(store, "other", "o", 1));
    CHECK_INT(s3m_store_move(store, "dst", "other", false), 0);
    CHECK(key_holds(store, "other", "data", 4));
    CHECK_INT(s3m_store_count(store, NULL), 1);
    struct s3m_store_stats stats;
    s3m_store_stats(store, &stats);
    CHECK_INT(stats.total_size, 4);
    CHECK_INT(stats.key_bytes, 5);
    CHECK_INT(s3m_store_move(store, "missing", "x", false), -ENOENT);
    CHECK_INT(s3m_store_move(store, "missing", "other", true), -ENOENT);
    CHECK_INT(s3m_store_move(store, "other", "other", true), 0);
    CHECK(key_holds(store, "other", "data", 4));
    char *too_long = key_of_length(S3M_KEY_MAX + 1, 'x');
    CHECK_INT(s3m_store_move(store, "other", too_long, false), -ENAMETOOLONG);
    CHECK_INT(s3m_store_move(store, "other", "", false), -EINVAL);
    CHECK(key_holds(store, "other", "data", 4));
    free(too_long);
    s3m_meta_unref(meta);
    s3m_store_free(store);
}

static void test_move_prefix(void)
{
    struct s3m_store *store = store_plain();
    static const char *const keys[] = {"d/", "d/a", "d/b/c", "d/b/", "d0",
                                       "dx/1", "e/f", "d"};
    size_t moved = 99;
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        CHECK_INT(s3m_store_put(store, keys[i], keys[i], strlen(keys[i]), NULL, 0), 0);

    CHECK_INT(s3m_store_move_prefix(store, "d/", "n/m/", &moved), 0);
    CHECK_INT(moved, 4);
    CHECK(list_is(store, NULL, 0, NULL,
                  "k:d\nk:d0\nk:dx/1\nk:e/f\nk:n/m/\nk:n/m/a\nk:n/m/b/\nk:n/m/b/c\n"));
    CHECK(key_holds(store, "n/m/b/c", "d/b/c", 5));
    CHECK(key_holds(store, "d0", "d0", 2));
    CHECK_INT(s3m_store_count(store, "n/"), 4);
    CHECK(!s3m_store_has_prefix(store, "d/"));

    /* a destination exists: -EEXIST and nothing moves */
    CHECK_INT(s3m_store_put(store, "e/b/c", "block", 5, NULL, 0), 0);
    char *before = store_dump(store);
    moved = 99;
    CHECK_INT(s3m_store_move_prefix(store, "n/m/", "e/", &moved), -EEXIST);
    CHECK_INT(moved, 0);
    char *after = store_dump(store);
    CHECK(dump_equal(before, after));
    free(after);

    /* a new key over 1024 bytes: -ENAMETOOLONG and nothing moves */
    char *long_prefix = key_of_length(S3M_KEY_MAX - 2, 'p');
    CHECK_INT(s3m_store_move_prefix(store, "n/m/", long_prefix, &moved), -ENAMETOOLONG);
    CHECK_INT(moved, 0);
    after = store_dump(store);
    CHECK(dump_equal(before, after));
    free(after);
    /* exactly 1024 is fine: "n/m/b/c" -> long_prefix (1021) + "b/c" */
    CHECK_INT(s3m_store_delete(store, "n/m/"), 0);
    CHECK_INT(s3m_store_delete(store, "n/m/a"), 0);
    CHECK_INT(s3m_store_delete(store, "n/m/b/"), 0);
    long_prefix[S3M_KEY_MAX - 3] = '\0';
    CHECK_INT(s3m_store_move_prefix(store, "n/m/", long_prefix, &moved), 0);
    CHECK_INT(moved, 1);
    char *longest = malloc(S3M_KEY_MAX + 1);
    snprintf(longest, S3M_KEY_MAX + 1, "%sb/c", long_prefix);
    CHECK_INT(strlen(longest), S3M_KEY_MAX);
    CHECK(key_holds(store, longest, "d/b/c", 5));
    free(longest);
    free(long_prefix);
    free(before);

    /* moving nothing is success */
    CHECK_INT(s3m_store_move_prefix(store, "none/", "x/", &moved), 0);
    CHECK_INT(moved, 0);
    /* onto itself changes nothing */
    before = store_dump(store);
    CHECK_INT(s3m_store_move_prefix(store, "e/", "e/", NULL), 0);
    after = store_dump(store);
    CHECK(dump_equal(before, after));
    free(before);
    free(after);

    /* a destination under the source itself ("e/" -> "e/e/") */
    CHECK_INT(s3m_store_move_prefix(store, "e/", "e/e/", &moved), 0);
    CHECK_INT(moved, 2);
    CHECK(key_holds(store, "e/e/f", "e/f", 3));
    CHECK(key_holds(store, "e/e/b/c", "block", 5));
    CHECK_INT(s3m_store_count(store, "e/"), 2);

    /* 500 keys move, the rest stays */
    char key[64];
    for (int i = 0; i < 500; i++) {
        snprintf(key, sizeof(key), "big/%03d", i);
        CHECK_INT(s3m_store_put(store, key, key, strlen(key), NULL, 0), 0);
    }
    size_t total = s3m_store_count(store, NULL);
    CHECK_INT(s3m_store_move_prefix(store, "big/", "huge/", &moved), 0);
    CHECK_INT(moved, 500);
    CHECK_INT(s3m_store_count(store, NULL), total);
    CHECK_INT(s3m_store_count(store, "big/"), 0);
    CHECK_INT(s3m_store_count(store, "huge/"), 500);
    CHECK(key_holds(store, "huge/123", "big/123", 7));
    int missing = 0;
    for (int i = 0; i < 500; i++) {
        snprintf(key, sizeof(key), "huge/%03d", i);
        missing += s3m_store_head(store, key, NULL) != 0;
    }
    CHECK_INT(missing, 0);
    struct s3m_list_result list = {0};
    struct s3m_list_request request = {.prefix = "huge/", .max_keys = 1000};
    CHECK_INT(s3m_store_list(store, &request, &list), 0);
    CHECK_INT((int)list.key_count, 500);
    for (size_t i = 0; i < list.key_count; i++) {
        snprintf(key, sizeof(key), "huge/%03zu", i);
        missing += strcmp(list.keys[i], key) != 0;
    }
    CHECK_INT(missing, 0);
    s3m_list_result_release(&list);
    /* back, between other keys ("hugf", "hug") */
    CHECK_INT(s3m_store_put(store, "hug", "x", 1, NULL, 0), 0);
    CHECK_INT(s3m_store_put(store, "hugf", "x", 1, NULL, 0), 0);
    CHECK_INT(s3m_store_move_prefix(store, "huge/", "big/", &moved), 0);
    CHECK_INT(s3m_store_move_prefix(store, "big/", "huge/", &moved), 0);
    CHECK_INT(s3m_store_count(store, "huge/"), 500);
    CHECK(key_holds(store, "hugf", "x", 1));
    CHECK(key_holds(store, "huge/499", "big/499", 7));

    /* into a directory that has other keys: they merge in key order */
    CHECK_INT(s3m_store_put(store, "m/a", "1", 1, NULL, 0), 0);
    CHECK_INT(s3m_store_put(store, "m/c", "3", 1, NULL, 0), 0);
    CHECK_INT(s3m_store_put(store, "t/b", "2", 1, NULL, 0), 0);
    CHECK_INT(s3m_store_move_prefix(store, "m/", "t/", &moved), 0);
    CHECK_INT(moved, 2);
    CHECK(list_is(store, "t/", 0, NULL, "k:t/a\nk:t/b\nk:t/c\n"));
    CHECK(key_holds(store, "t/c", "3", 1));
    CHECK(!s3m_store_has_prefix(store, "m/"));
    s3m_store_free(store);
}

/* ---- count, has_prefix, stats -------------------------------------------------- */

static void test_count_and_stats(void)
{
    struct s3m_store *store = store_plain();
    struct s3m_store_stats s0, s1;
    s3m_store_stats(store, &s0);
    CHECK_INT(s0.object_count, 0);
    CHECK_INT(s0.puts + s0.gets + s0.heads + s0.deletes + s0.lists + s0.copies +
              s0.moves + s0.writes + s0.reads, 0);
    CHECK(!s3m_store_has_prefix(store, ""));
    CHECK_INT(s3m_store_count(store, ""), 0);

    CHECK_INT(s3m_store_put(store, "p/a", "12", 2, NULL, 0), 0);
    CHECK_INT(s3m_store_put(store, "p/b", "345", 3, NULL, 0), 0);
    CHECK_INT(s3m_store_put(store, "q", "6", 1, NULL, 0), 0);
    CHECK_INT(s3m_store_put(store, "p", "", 0, NULL, 0), 0);
    CHECK_INT(s3m_store_count(store, NULL), 4);
    CHECK_INT(s3m_store_count(store, ""), 4);
    CHECK_INT(s3m_store_count(store, "p"), 3);
    CHECK_INT(s3m_store_count(store, "p/"), 2);
    CHECK_INT(s3m_store_count(store, "p/a"), 1);
    CHECK_INT(s3m_store_count(store, "r"), 0);
    CHECK(s3m_store_has_prefix(store, ""));
    CHECK(s3m_store_has_prefix(store, "p/"));
    CHECK(s3m_store_has_prefix(store, "p/b"));
    CHECK(!s3m_store_has_prefix(store, "p/c"));
    CHECK(!s3m_store_has_prefix(store, "p/b/"));
    CHECK(!s3m_store_has_prefix(store, "a"));
    s3m_store_stats(store, &s1);
    CHECK_INT(s1.object_count, 4);
    CHECK_INT(s1.total_size, 6);
    CHECK_INT(s1.key_bytes, 3 + 3 + 1 + 1);
    CHECK_INT(s1.puts, 4);
    CHECK(s1.memory_used == s3m_body_memory_used());

    /* one of each operation moves its counter by one */
    s3m_store_stats(store, &s0);
    CHECK_INT(s3m_store_get(store, "q", NULL, NULL), 0);
    struct s3m_body *body = NULL;
    CHECK_INT(s3m_store_get(store, "q", NULL, &body), 0);
    s3m_body_unref(body);
    CHECK_INT(s3m_store_head(store, "q", NULL), 0);
    struct s3m_list_request req = {0};
    struct s3m_list_result result;
    CHECK_INT(s3m_store_list(store, &req, &result), 0);
    s3m_list_result_release(&result);
    CHECK_INT(s3m_store_copy(store, "q", "q2", S3M_COPY_KEEP, NULL), 0);
    CHECK_INT(s3m_store_move(store, "q2", "q3", false), 0);
    int rc;
    struct s3m_object *obj = s3m_store_open(store, "q3", &rc);
    CHECK_INT(s3m_object_write(store, obj, 0, "x", 1), 0);
    body = s3m_object_body(store, obj);
    s3m_body_unref(body);
    s3m_object_unref(obj);
    CHECK_INT(s3m_store_delete(store, "q3"), 0);
    s3m_store_stats(store, &s1);
    CHECK(s1.heads - s0.heads >= 2);        /* get without body counts as head */
    CHECK(s1.gets - s0.gets >= 1);
    CHECK_INT(s1.lists - s0.lists, 1);
    CHECK_INT(s1.copies - s0.copies, 1);
    CHECK_INT(s1.moves - s0.moves, 1);
    CHECK_INT(s1.writes - s0.writes, 1);
    CHECK(s1.reads - s0.reads >= 1);
    CHECK_INT(s1.deletes - s0.deletes, 1);
    CHECK_INT(s1.object_count, 4);
    CHECK_INT(s1.total_size, 6);
    s3m_store_free(store);
}

/* ---- limits ------------------------------------------------------------------- */

static void test_limits(void)
{
    struct s3m_store_config config = {.enforce_limits = true,
                                      .max_object_size = 100 * KIB};
    struct s3m_store *store = store_with(&config);
    CHECK_INT(s3m_store_config(store)->metadata_limit, 2048);
    unsigned char *data = pattern_new(200 * KIB, 5);
    char *value = key_of_length(2100, 'v');
    struct s3m_object_info info = {0};
    int rc;

    /* metadata: names plus values, 2048 bytes allowed, 2049 not */
    struct s3m_meta *fits = s3m_meta_with(NULL, "k", value, 2047);
    struct s3m_meta *over = s3m_meta_with(NULL, "k", value, 2048);
    struct s3m_meta *two = meta_of("abc", "x", NULL);
    struct s3m_meta *big2 = s3m_meta_with(two, "Z", value, 2044);   /* 4+1+2044 */
    CHECK_INT(s3m_meta_size(fits), 2048);
    CHECK_INT(s3m_meta_size(over), 2049);
    CHECK_INT(s3m_meta_size(big2), 2049);
    struct s3m_put_attrs fits_attrs = {.meta = fits}, over_attrs = {.meta = over},
                         big2_attrs = {.meta = big2};
    CHECK_INT(s3m_store_put(store, "m", "1", 1, &fits_attrs, 0), 0);
    char *before = store_dump(store);
    CHECK_INT(s3m_store_put(store, "m", "2", 1, &over_attrs, 0), -ENOSPC);
    CHECK_INT(s3m_store_put(store, "n", "2", 1, &big2_attrs, 0), -ENOSPC);
    /* a merge that grows past the limit */
    CHECK_INT(s3m_store_copy(store, "m", "m2", S3M_COPY_MERGE, two), -ENOSPC);
    /* metadata set on an open object */
    struct s3m_object *obj = s3m_store_open(store, "m", &rc);
    CHECK_INT(s3m_object_set_meta(store, obj, over), -ENOSPC);
    CHECK_INT(s3m_object_head(store, obj, &info), 0);
    CHECK_INT(s3m_object_replace_meta(store, obj, info.meta, over), -ENOSPC);
    s3m_object_info_release(&info);
    char *after = store_dump(store);
    CHECK(dump_equal(before, after));
    free(before);
    free(after);
    CHECK_INT(s3m_store_copy(store, "m", "m3", S3M_COPY_REPLACE, two), 0);

    /* body: max_object_size allowed, one more byte not */
    CHECK_INT(s3m_store_put(store, "b", data, 100 * KIB, NULL, 0), 0);
    before = store_dump(store);
    CHECK_INT(s3m_store_put(store, "b", data, 100 * KIB + 1, NULL, 0), -EFBIG);
    CHECK_INT(s3m_store_put(store, "c", data, 100 * KIB + 1, NULL, 0), -EFBIG);
    struct s3m_object *b = s3m_store_open(store, "b", &rc);
    CHECK_INT(s3m_object_write(store, b, 100 * KIB, "x", 1), -EFBIG);
    CHECK_INT(s3m_object_write(store, b, 100 * KIB - 1, "xy", 2), -EFBIG);
    CHECK_INT(s3m_object_write(store, b, 1ULL << 40, "x", 1), -EFBIG);
    CHECK_INT(s3m_object_write(store, b, UINT64_MAX - 1, "xyz", 3), -EFBIG);
    CHECK_INT(s3m_object_truncate(store, b, 100 * KIB + 1), -EFBIG);
    after = store_dump(store);
    CHECK(dump_equal(before, after));
    free(before);
    free(after);
    CHECK(key_holds(store, "b", data, 100 * KIB));
    CHECK_INT(s3m_object_write(store, b, 100 * KIB - 1, "x", 1), 0);
    CHECK_INT(s3m_object_truncate(store, b, 10), 0);
    s3m_object_unref(b);
    s3m_object_unref(obj);
    s3m_store_free(store);

    /* a custom metadata limit */
    config = (struct s3m_store_config){.enforce_limits = true, .metadata_limit = 10};
    store = store_with(&config);
    struct s3m_meta *ten = meta_of("12345", "67890", NULL);
    struct s3m_meta *eleven = meta_of("12345", "678901", NULL);
    struct s3m_put_attrs ten_attrs = {.meta = ten}, eleven_attrs = {.meta = eleven};
    CHECK_INT(s3m_store_put(store, "a", "", 0, &ten_attrs, 0), 0);
    CHECK_INT(s3m_store_put(store, "a", "", 0, &eleven_attrs, 0), -ENOSPC);
    s3m_store_free(store);

    /* without enforce_limits nothing is refused */
    config = (struct s3m_store_config){.metadata_limit = 10, .max_object_size = 10};
    store = store_with(&config);
    CHECK_INT(s3m_store_put(store, "a", data, 100, &eleven_attrs, 0), 0);
    CHECK_INT(s3m_store_put(store, "b", "", 0, &over_attrs, 0), 0);
    s3m_store_free(store);

    /* max_memory counts chunk bytes: over it, puts and writes get -ENOSPC */
    uint64_t used = s3m_body_memory_used();
    config = (struct s3m_store_config){.max_memory = used + MIB};
    store = store_with(&config);
    unsigned char *large = pattern_new(2 * MIB, 9);
    CHECK_INT(s3m_store_put(store, "small", large, 256 * KIB, NULL, 0), 0);
    before = store_dump(store);
    uint64_t used_before = s3m_body_memory_used();
    CHECK_INT(s3m_store_put(store, "large", large, 2 * MIB, NULL, 0), -ENOSPC);
    CHECK_INT(s3m_store_put(store, "small", large, 2 * MIB, NULL, 0), -ENOSPC);
    obj = s3m_store_open(store, "small", &rc);
    CHECK_INT(s3m_object_write(store, obj, 256 * KIB, large, MIB), -ENOSPC);
    CHECK_INT(s3m_object_write(store, obj, 4 * MIB, large, MIB), -ENOSPC);
    after = store_dump(store);
    CHECK(dump_equal(before, after));
    CHECK_INT(s3m_body_memory_used(), used_before);
    free(before);
    free(after);
    CHECK(key_holds(store, "small", large, 256 * KIB));
    /* under the limit, writes still work */
    CHECK_INT(s3m_object_write(store, obj, 256 * KIB, large + 256 * KIB, 256 * KIB), 0);
    CHECK(key_holds(store, "small", large, 512 * KIB));
    s3m_object_unref(obj);
    s3m_store_free(store);

    /* chunk rounding can leave the store over max_memory (1000 KiB of
     * body takes 1024 KiB of chunks); a truncate down frees memory and
     * must still work then */
    used = s3m_body_memory_used();
    config = (struct s3m_store_config){.max_memory = used + 1000 * KIB};
    store = store_with(&config);
    CHECK_INT(s3m_store_put(store, "f", large, 1000 * KIB, NULL, 0), 0);
    CHECK(s3m_body_memory_used() > used + 1000 * KIB);
    obj = s3m_store_open(store, "f", &rc);
    CHECK_INT(s3m_object_truncate(store, obj, 100), 0);
    CHECK(s3m_body_memory_used() <= used + 1000 * KIB);
    CHECK(key_holds(store, "f", large, 100));
    s3m_object_unref(obj);
    s3m_store_free(store);

    struct s3m_meta *all[] = {fits, over, two, big2, ten, eleven};
    for (size_t i = 0; i < 6; i++)
        s3m_meta_unref(all[i]);
    free(large);
    free(value);
    free(data);
}

/* ---- open objects --------------------------------------------------------------- */

static void test_open_objects(void)
{
    struct s3m_store *store = store_plain();
    struct s3m_store_stats stats;
    struct s3m_object_info info = {0};
    int rc = 0;

    CHECK(s3m_store_open(store, "missing", &rc) == NULL);
    CHECK_INT(rc, -ENOENT);

    /* open, then delete: the handle still reads and writes, detached */
    CHECK_INT(s3m_store_put(store, "f", "hello", 5, NULL, 0), 0);
    CHECK_INT(s3m_store_put(store, "other", "12", 2, NULL, 0), 0);
    struct s3m_object *obj = s3m_store_open(store, "f", &rc);
    CHECK(obj != NULL);
    CHECK(s3m_object_attached(store, obj));
    CHECK_INT(s3m_store_delete(store, "f"), 0);
    CHECK(!s3m_object_attached(store, obj));
    CHECK(object_matches(store, obj, (const unsigned char *)"hello", 5));
    CHECK_INT(s3m_object_write(store, obj, 5, " world", 6), 0);
    CHECK(object_matches(store, obj, (const unsigned char *)"hello world", 11));
    CHECK_INT(s3m_object_write(store, obj, 1 * MIB, "!", 1), 0);
    CHECK_INT(s3m_object_truncate(store, obj, 11), 0);
    CHECK(object_matches(store, obj, (const unsigned char *)"hello world", 11));
    s3m_store_stats(store, &stats);
    CHECK_INT(stats.object_count, 1);
    CHECK_INT(stats.total_size, 2);
    CHECK_INT(s3m_store_head(store, "f", NULL), -ENOENT);
    /* a new object at the old key is a different object */
    CHECK_INT(s3m_store_put(store, "f", "new", 3, NULL, 0), 0);
    CHECK_INT(s3m_object_write(store, obj, 0, "J", 1), 0);
    CHECK(key_holds(store, "f", "new", 3));
    CHECK(!s3m_object_attached(store, obj));
    s3m_store_stats(store, &stats);
    CHECK_INT(stats.total_size, 5);
    s3m_object_unref(obj);

    /* a put over an open key detaches the old object */
    obj = s3m_store_open(store, "f", &rc);
    CHECK_INT(s3m_store_put(store, "f", "newer", 5, NULL, 0), 0);
    CHECK(!s3m_object_attached(store, obj));
    CHECK_INT(s3m_object_write(store, obj, 0, "XXXXXXXXXX", 10), 0);
    CHECK(key_holds(store, "f", "newer", 5));
    s3m_store_stats(store, &stats);
    CHECK_INT(stats.total_size, 7);
    s3m_object_unref(obj);

    /* after a move the handle follows the object */
    obj = s3m_store_open(store, "f", &rc);
    struct s3m_object *second = s3m_object_ref(obj);
    CHECK(second == obj);
    CHECK_INT(s3m_store_move(store, "f", "g/h", false), 0);
    CHECK(s3m_object_attached(store, obj));
    CHECK_INT(s3m_object_write(store, obj, 5, "st", 2), 0);
    CHECK(key_holds(store, "g/h", "newerst", 7));
    s3m_store_stats(store, &stats);
    CHECK_INT(stats.total_size, 9);
    CHECK_INT(s3m_store_move_prefix(store, "g/", "i/", NULL), 0);
    CHECK_INT(s3m_object_write(store, second, 7, "!", 1), 0);
    CHECK(key_holds(store, "i/h", "newerst!", 8));
    CHECK(s3m_object_attached(store, second));
    s3m_store_stats(store, &stats);
    CHECK_INT(stats.total_size, 10);
    s3m_object_unref(second);

    /* metadata compare-and-swap */
    struct s3m_meta *m1 = meta_of("v", "1", NULL);
    struct s3m_meta *m2 = meta_of("v", "2", NULL);
    CHECK_INT(s3m_object_head(store, obj, &info), 0);
    struct s3m_meta *seen = s3m_meta_ref(info.meta);
    s3m_object_info_release(&info);
    CHECK_INT(s3m_object_set_meta(store, obj, m1), 0);
    CHECK_INT(s3m_object_replace_meta(store, obj, seen, m2), -EAGAIN);
    CHECK_INT(s3m_store_head(store, "i/h", &info), 0);
    CHECK_STR(meta_value(info.meta, "v"), "1");
    CHECK(info.meta == m1);
    CHECK_INT(s3m_object_replace_meta(store, obj, info.meta, m2), 0);
    s3m_object_info_release(&info);
    CHECK_INT(s3m_store_head(store, "i/h", &info), 0);
    CHECK_STR(meta_value(info.meta, "v"), "2");
    s3m_object_info_release(&info);
    CHECK_INT(s3m_object_replace_meta(store, obj, m1, NULL), -EAGAIN);
    CHECK_INT(s3m_object_set_meta(store, obj, NULL), 0);
    CHECK_INT(s3m_store_head(store, "i/h", &info), 0);
    CHECK(info.meta == NULL || info.meta->count == 0);
    s3m_object_info_release(&info);
    s3m_meta_unref(seen);
    s3m_meta_unref(m1);
    s3m_meta_unref(m2);

    /* attributes, each only with its flag */
    struct s3m_attr_update update = {.flags = S3M_ATTR_MODE | S3M_ATTR_MTIME,
                                     .mode = 0751, .uid = 99,
                                     .mtime_ns = 42000000000LL};
    CHECK_INT(s3m_object_set_attrs(store, obj, &update), 0);
    CHECK_INT(s3m_object_head(store, obj, &info), 0);
    CHECK_INT(info.mode, S_IFREG | 0751);
    CHECK_INT(info.uid, 0);
    CHECK_INT(info.mtime_ns, 42000000000LL);
    s3m_object_info_release(&info);
    update = (struct s3m_attr_update){.flags = S3M_ATTR_UID | S3M_ATTR_GID |
                                      S3M_ATTR_ATIME | S3M_ATTR_CTIME,
                                      .mode = 0, .uid = 5, .gid = 6,
                                      .atime_ns = 7, .ctime_ns = 8};
    CHECK_INT(s3m_object_set_attrs(store, obj, &update), 0);
    CHECK_INT(s3m_store_head(store, "i/h", &info), 0);
    CHECK_INT(info.mode, S_IFREG | 0751);
    CHECK_INT(info.uid, 5);
    CHECK_INT(info.gid, 6);
    CHECK_INT(info.atime_ns, 7);
    CHECK_INT(info.ctime_ns, 8);
    CHECK_INT(info.mtime_ns, 42000000000LL);
    s3m_object_info_release(&info);
    /* a write updates mtime and drops the cached etag */
    char etag[33], want[33];
    CHECK_INT(s3m_object_etag(store, obj, etag), 0);
    CHECK_INT(s3m_object_write(store, obj, 0, "N", 1), 0);
    CHECK_INT(s3m_store_head(store, "i/h", &info), 0);
    CHECK(info.mtime_ns > 42000000000LL);
    s3m_object_info_release(&info);
    CHECK_INT(s3m_object_etag(store, obj, etag), 0);
    md5_hex_of("Newerst!", 8, want);
    CHECK_STR(etag, want);
    s3m_object_unref(obj);
    s3m_store_free(store);

    /* a handle outlives its store's objects being freed with the store */
    store = store_plain();
    CHECK_INT(s3m_store_put(store, "k", "v", 1, NULL, 0), 0);
    obj = s3m_store_open(store, "k", &rc);
    s3m_store_clear(store, NULL, NULL);
    CHECK(!s3m_object_attached(store, obj));
    CHECK(object_matches(store, obj, (const unsigned char *)"v", 1));
    s3m_store_free(store);
    s3m_object_unref(obj);
}

/* ---- foreach, swap_in ------------------------------------------------------------ */

struct visit_log {
    struct dump d;
    int stop_after;
    int calls;
};

static int visit_record(void *ctx, const char *key, const struct s3m_object_info *info,
                        struct s3m_body *body)
{
    struct visit_log *log = ctx;
    dump_printf(&log->d, "%s:%llu:%s\n", key, (unsigned long long)info->size,
                body ? "body" : "null");
    if (s3m_body_size(body) != info->size)
        dump_printf(&log->d, "SIZE MISMATCH\n");
    return ++log->calls == log->stop_after ? -7 : 0;
}

static char *foreach_text(struct s3m_store *store, const char *prefix, int stop_after,
                          int *rc)
{
    struct visit_log log = {.stop_after = stop_after};
    dump_add(&log.d, "", 0);
    *rc = s3m_store_foreach(store, prefix, visit_record, &log);
    return log.d.text;
}

static void test_foreach_and_swap(void)
{
    struct s3m_store *store = store_plain();
    static const char *const keys[] = {"b", "a/2", "a/1", "c", "a", "", "ab"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        CHECK_INT(s3m_store_put(store, keys[i], keys[i], strlen(keys[i]), NULL, 0),
                  keys[i][0] ? 0 : -EINVAL);
    int rc;
    char *text = foreach_text(store, NULL, 0, &rc);
    CHECK_INT(rc, 0);
    CHECK_STR(text, "a:1:body\na/1:3:body\na/2:3:body\nab:2:body\nb:1:body\nc:1:body\n");
    free(text);
    text = foreach_text(store, "", 0, &rc);
    CHECK_STR(text, "a:1:body\na/1:3:body\na/2:3:body\nab:2:body\nb:1:body\nc:1:body\n");
    free(text);
    text = foreach_text(store, "a/", 0, &rc);
    CHECK_INT(rc, 0);
    CHECK_STR(text, "a/1:3:body\na/2:3:body\n");
    free(text);
    text = foreach_text(store, NULL, 2, &rc);
    CHECK_INT(rc, -7);
    CHECK_STR(text, "a:1:body\na/1:3:body\n");
    free(text);
    text = foreach_text(store, "zz", 0, &rc);
    CHECK_INT(rc, 0);
    CHECK_STR(text, "");
    free(text);
    CHECK_INT(s3m_store_put(store, "empty", NULL, 0, NULL, 0), 0);
    text = foreach_text(store, "e", 0, &rc);
    CHECK_STR(text, "empty:0:null\n");
    free(text);

    /* swap_in: the store takes the source's objects, old handles detach */
    struct s3m_object *old = s3m_store_open(store, "b", &rc);
    struct s3m_store *source = store_plain();
    CHECK_INT(s3m_store_put(source, "x", "xx", 2, NULL, 0), 0);
    CHECK_INT(s3m_store_put(source, "y/z", "yyy", 3, NULL, 0), 0);
    struct s3m_object *moved = s3m_store_open(source, "x", &rc);
    s3m_store_swap_in(store, source, S3M_KEEP_SAME_TO_MS, NULL, NULL);
    s3m_store_free(source);
    CHECK(!s3m_object_attached(store, old));
    CHECK(s3m_object_attached(store, moved));
    CHECK(list_is(store, NULL, 0, NULL, "k:x\nk:y/z\n"));
    CHECK(key_holds(store, "x", "xx", 2));
    struct s3m_store_stats stats;
    s3m_store_stats(store, &stats);
    CHECK_INT(stats.object_count, 2);
    CHECK_INT(stats.total_size, 5);
    CHECK_INT(stats.key_bytes, 4);
    CHECK_STR(s3m_store_bucket(store), "test");
    /* the swapped-in index works for changes */
    CHECK_INT(s3m_object_write(store, moved, 2, "x", 1), 0);
    CHECK(key_holds(store, "x", "xxx", 3));
    for (int i = 0; i < 200; i++) {
        char key[16];
        snprintf(key, sizeof(key), "n%03d", i);
        CHECK_INT(s3m_store_put(store, key, key, 4, NULL, 0), 0);
    }
    CHECK_INT(s3m_store_delete(store, "y/z"), 0);
    CHECK_INT(s3m_store_count(store, NULL), 201);
    CHECK(key_holds(store, "n150", "n150", 4));
    s3m_object_unref(old);
    s3m_object_unref(moved);
    s3m_store_free(store);
}

/* ---- odds and ends ------------------------------------------------------------- */

static void test_misc(void)
{
    /* a store with no config gets the defaults */
    struct s3m_store *store = s3m_store_new(NULL);
    CHECK(store != NULL);
    if (!store)
        return;
    CHECK_STR(s3m_store_bucket(store), "s3mem");
    CHECK_INT(s3m_store_config(store)->metadata_limit, S3M_DEFAULT_METADATA_LIMIT);
    CHECK(!s3m_store_config(store)->enforce_limits);

    /* put_body shares the caller's body between keys */
    unsigned char *data = pattern_new(200 * KIB, 31);
    struct s3m_body *body = NULL;
    CHECK_INT(s3m_body_from_bytes(data, 200 * KIB, &body), 0);
    uint64_t before = s3m_body_memory_used();
    CHECK_INT(s3m_store_put_body(store, "one", body, NULL, 0), 0);
    CHECK_INT(s3m_store_put_body(store, "two", body, NULL, S3M_PUT_CREATE), 0);
    CHECK_INT(s3m_store_put_body(store, "two", body, NULL, S3M_PUT_CREATE), -EEXIST);
    CHECK_INT(s3m_store_put_body(store, "empty", NULL, NULL, 0), 0);
    CHECK_INT(s3m_body_memory_used(), before);
    int rc;
    struct s3m_object *obj = s3m_store_open(store, "one", &rc);
    CHECK_INT(s3m_object_write(store, obj, 0, "!", 1), 0);
    s3m_object_unref(obj);
    CHECK(body_matches(body, data, 200 * KIB));
    CHECK(key_holds(store, "two", data, 200 * KIB));
    s3m_body_unref(body);
    CHECK(key_holds(store, "two", data, 200 * KIB));
    CHECK(key_holds(store, "empty", "", 0));
    CHECK(s3m_body_ref(NULL) == NULL);
    s3m_body_unref(NULL);

    /* restore from itself changes nothing */
    char *a = store_dump(store);
    CHECK_INT(s3m_store_restore(store, store, NULL, NULL), 0);
    char *b = store_dump(store);
    CHECK(dump_equal(a, b));
    free(a);
    free(b);

    /* a prefix move may not make an empty key */
    CHECK_INT(s3m_store_put(store, "p", "x", 1, NULL, 0), 0);
    a = store_dump(store);
    size_t moved = 99;
    CHECK_INT(s3m_store_move_prefix(store, "p", "", &moved), -EINVAL);
    CHECK_INT(moved, 0);
    b = store_dump(store);
    CHECK(dump_equal(a, b));
    free(a);
    free(b);
    s3m_store_free(store);

    /* clear works when it cannot allocate a fresh table */
    store = store_plain();
    for (int i = 0; i < 100; i++) {
        char key[16];
        snprintf(key, sizeof(key), "k%d", i);
        CHECK_INT(s3m_store_put(store, key, "v", 1, NULL, 0), 0);
    }
    s3m_alloc_fail_after(1, true);
    s3m_store_clear(store, NULL, NULL);
    s3m_alloc_fail_after(0, false);
    struct s3m_store_stats stats;
    s3m_store_stats(store, &stats);
    CHECK_INT(stats.object_count, 0);
    CHECK_INT(stats.total_size, 0);
    CHECK_INT(stats.key_bytes, 0);
    CHECK(!s3m_store_has_prefix(store, ""));
    CHECK_INT(s3m_store_put(store, "after", "v", 1, NULL, 0), 0);
    CHECK(key_holds(store, "after", "v", 1));
    s3m_store_free(store);
    free(data);
}

/* ---- threads ------------------------------------------------------------------- */

#define THREADS 8
#define THREAD_ITERATIONS 3000
#define THREAD_KEYS 24

struct worker {
    pthread_t thread;
    struct s3m_store *store;
    uint64_t seed;
    int errors;                  /* only this thread writes it */
    char first_error[160];
};

static void worker_fail(struct worker *w, const char *what, int rc)
{
    if (w->errors++ == 0)
        snprintf(w->first_error, sizeof(w->first_error), "%s: rc %d", what, rc);
}

static void worker_key(uint64_t *state, char *key, size_t size)
{
    static const char *const dirs[] = {"t/", "t/a/", "t/b/"};
    snprintf(key, size, "%s%d", dirs[random_below(state, 3)],
             (int)random_below(state, THREAD_KEYS));
}

static int level_count(void *ctx, const struct s3m_level_entry *entry)
{
    (void)entry;
    ++*(int *)ctx;
    return 0;
}

/* A page of a listing is sorted and has no duplicates. */
static bool page_sorted(const struct s3m_list_result *result)
{
    for (size_t i = 1; i < result->key_count; i++)
        if (strcmp(result->keys[i - 1], result->keys[i]) >= 0)
            return false;
    for (size_t i = 1; i < result->prefix_count; i++)
        if (strcmp(result->prefixes[i - 1], result->prefixes[i]) >= 0)
            return false;
    return true;
}

static void *worker_run(void *arg)
{
    struct worker *w = arg;
    uint64_t state = w->seed;
    unsigned char *buffer = malloc(128 * KIB);
    char key[64], key2[64];
    int rc;
    for (int i = 0; i < THREAD_ITERATIONS; i++) {
        worker_key(&state, key, sizeof(key));
        worker_key(&state, key2, sizeof(key2));
        uint64_t op = random_below(&state, 16);
        size_t len = (size_t)random_below(&state, 20000);
        switch (op) {
        case 0: case 1: case 2:
            memset(buffer, (int)op + 'a', len);
            if ((rc = s3m_store_put(w->store, key, buffer, len, NULL, 0)) != 0)
                worker_fail(w, "put", rc);
            break;
        case 3: case 4: {
            struct s3m_object_info info = {0};
            struct s3m_body *body = NULL;
            rc = s3m_store_get(w->store, key, &info, &body);
            if (rc == 0) {
                uint64_t size = s3m_body_size(body);
                if (size != info.size)
                    worker_fail(w, "get: size differs from info", (int)size);
                size_t n = size > 128 * KIB ? 128 * KIB : (size_t)size;
                if (s3m_body_read(body, 0, buffer, n) != n)
                    worker_fail(w, "get: short read", (int)n);
                s3m_object_info_release(&info);
                s3m_body_unref(body);
            } else if (rc != -ENOENT) {
                worker_fail(w, "get", rc);
            }
            break;
        }
        case 5:
            rc = s3m_store_delete(w->store, key);
            if (rc != 0 && rc != -ENOENT)
                worker_fail(w, "delete", rc);
            break;
        case 6: {
            struct s3m_list_request req = {
                .prefix = "t/", .delimiter = random_below(&state, 2) ? '/' : 0,
                .max_keys = 1 + (size_t)random_below(&state, 20)};
            struct s3m_list_result result;
            if ((rc = s3m_store_list(w->store, &req, &result)) != 0) {
                worker_fail(w, "list", rc);
                break;
            }
            if (!page_sorted(&result))
                worker_fail(w, "list: page not sorted", 0);
            if (result.truncated) {
                char *token = strdup(result.next_continuation);
                s3m_list_result_release(&result);
                req.continuation = token;
                if ((rc = s3m_store_list(w->store, &req, &result)) != 0)
                    worker_fail(w, "list page 2", rc);
                else if (result.key_count && strcmp(result.keys[0], token) <= 0)
                    worker_fail(w, "list page 2 goes back", 0);
                free(token);
            }
            s3m_list_result_release(&result);
            break;
        }
        case 7: case 8: case 9: {
            struct s3m_object *obj = s3m_store_open(w->store, key, &rc);
            if (!obj) {
                if (rc != -ENOENT)
                    worker_fail(w, "open", rc);
                break;
            }
            uint64_t offset = random_below(&state, 100000);
            if (op == 9)
                rc = s3m_object_truncate(w->store, obj, offset);
            else
                rc = s3m_object_write(w->store, obj, offset, buffer, 1 + len % 5000);
            if (rc)
                worker_fail(w, "write", rc);
            char etag[33];
            s3m_object_etag(w->store, obj, etag);
            s3m_object_unref(obj);
            break;
        }
        case 10:
            rc = s3m_store_copy(w->store, key, key2, (enum s3m_metadata_directive)
                                random_below(&state, 3), NULL);
            if (rc && rc != -ENOENT)
                worker_fail(w, "copy", rc);
            break;
        case 11:
            rc = s3m_store_move(w->store, key, key2, random_below(&state, 2));
            if (rc && rc != -ENOENT && rc != -EEXIST)
                worker_fail(w, "move", rc);
            break;
        case 12: {
            char etag[33];
            rc = s3m_store_etag(w->store, key, etag);
            if (rc && rc != -ENOENT)
                worker_fail(w, "etag", rc);
            int entries = 0;
            s3m_store_list_level(w->store, "t/", '/', level_count, &entries);
            break;
        }
        case 13: {
            const char *keys[] = {key, key2};
            size_t deleted;
            s3m_store_delete_many(w->store, keys, 2, &deleted);
            if (deleted > 2)
                worker_fail(w, "delete_many", (int)deleted);
            break;
        }
        case 14:
            rc = random_below(&state, 2) ?
                 s3m_store_move_prefix(w->store, "t/a/", "t/b/", NULL) :
                 s3m_store_move_prefix(w->store, "t/b/", "t/a/", NULL);
            if (rc && rc != -EEXIST)
                worker_fail(w, "move_prefix", rc);
            break;
        case 15:
            if (random_below(&state, 20) == 0) {
                struct s3m_store *snap = s3m_store_snapshot(w->store);
                if (!snap)
                    worker_fail(w, "snapshot", -ENOMEM);
                s3m_store_free(snap);
            } else {
                struct s3m_store_stats stats;
                s3m_store_stats(w->store, &stats);
                s3m_store_has_prefix(w->store, "t/a/");
                s3m_store_count(w->store, "t/");
            }
            break;
        }
    }
    free(buffer);
    return NULL;
}

static void test_threads(void)
{
    struct s3m_store *store = store_plain();
    struct worker workers[THREADS];
    for (int i = 0; i < THREADS; i++) {
        workers[i] = (struct worker){.store = store, .seed = 1000 + (uint64_t)i};
        CHECK_INT(pthread_create(&workers[i].thread, NULL, worker_run, &workers[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(workers[i].thread, NULL);
        if (workers[i].errors)
            fprintf(stderr, "  thread %d: %d errors, first %s\n", i,
                    workers[i].errors, workers[i].first_error);
        CHECK_INT(workers[i].errors, 0);
    }

    /* every listed key is readable, its etag is its body's MD5, and the
     * counts add up */
    struct s3m_store_stats stats;
    s3m_store_stats(store, &stats);
    size_t pages;
    char *text = list_paged(store, NULL, 0, NULL, 7, &pages);
    size_t listed = 0;
    uint64_t total = 0;
    for (char *line = text, *end; *line; line = end + 1) {
        end = strchr(line, '\n');
        *end = '\0';
        listed++;
        struct s3m_object_info info = {0};
        struct s3m_body *body = NULL;
        CHECK_INT(s3m_store_get(store, line, &info, &body), 0);
        uint64_t size = s3m_body_size(body);
        CHECK_INT(info.size, size);
        total += size;
        unsigned char *bytes = malloc(size ? size : 1);
        CHECK_INT(s3m_body_read(body, 0, bytes, size), size);
        char want[33], etag[33];
        md5_hex_of(bytes, size, want);
        CHECK_INT(s3m_store_etag(store, line, etag), 0);
        CHECK_STR(etag, want);
        free(bytes);
        s3m_body_unref(body);
        s3m_object_info_release(&info);
    }
    CHECK(listed > 0);
    CHECK_INT(stats.object_count, listed);
    CHECK_INT(s3m_store_count(store, NULL), listed);
    CHECK_INT(stats.total_size, total);
    free(text);
    s3m_store_free(store);
}

/* ---- allocation failures --------------------------------------------------------- */

typedef int (*alloc_op)(void *ctx);

/* Runs op with its nth allocation failing, n = 1, 2, ... until it succeeds.
 * Each failing run must return -ENOMEM and leave store and other (may be
 * NULL) exactly as they were, and, when check_memory, the body memory too.
 * Returns how many runs failed. */
static int alloc_failure_loop(const char *name, struct s3m_store *store,
                              struct s3m_store *other, bool check_memory,
                              alloc_op op, void *ctx)
{
    int failures = 0;
    for (size_t n = 1; n < 10000; n++) {
        char *before = store_dump(store);
        char *other_before = other ? store_dump(other) : NULL;
        uint64_t memory = s3m_body_memory_used();
        s3m_alloc_fail_after(n, false);
        int rc = op(ctx);
        s3m_alloc_fail_after(0, false);
        if (rc == 0) {
            free(before);
            free(other_before);
            return failures;
        }
        failures++;
        if (rc != -ENOMEM) {
            fprintf(stderr, "  %s with allocation %zu failing: rc %d\n", name, n, rc);
            CHECK_INT(rc, -ENOMEM);
        }
        char *after = store_dump(store);
        if (!dump_equal(before, after)) {
            fprintf(stderr, "  %s with allocation %zu failing changed the store\n",
                    name, n);
            CHECK(!"store unchanged");
        }
        if (other) {
            char *other_after = store_dump(other);
            if (!dump_equal(other_before, other_after)) {
                fprintf(stderr, "  %s with allocation %zu failing changed the "
                        "other store\n", name, n);
                CHECK(!"other store unchanged");
            }
            free(other_after);
        }
        if (check_memory && s3m_body_memory_used() != memory) {
            fprintf(stderr, "  %s with allocation %zu failing: body memory "
                    "%llu, was %llu\n", name, n,
                    (unsigned long long)s3m_body_memory_used(),
                    (unsigned long long)memory);
            CHECK(!"body memory unchanged");
        }
        free(before);
        free(after);
        free(other_before);
    }
    CHECK(!"the operation never succeeded");
    return failures;
}

struct op_ctx {
    struct s3m_store *store;
    struct s3m_store *snapshot;     /* made by op_snapshot */
    struct s3m_object *obj;
    const struct s3m_meta *meta;
    const char *key;
    const char *key2;
    const void *data;
    size_t len;
    uint64_t offset;
};

static int op_put(void *arg)
{
    struct op_ctx *c = arg;
    struct s3m_put_attrs attrs = {.meta = c->meta};
    return s3m_store_put(c->store, c->key, c->data, c->len, &attrs, 0);
}

static int op_write(void *arg)
{
    struct op_ctx *c = arg;
    return s3m_object_write(c->store, c->obj, c->offset, c->data, c->len);
}

static int op_truncate(void *arg)
{
    struct op_ctx *c = arg;
    return s3m_object_truncate(c->store, c->obj, c->offset);
}

static int op_copy(void *arg)
{
    struct op_ctx *c = arg;
    return s3m_store_copy(c->store, c->key, c->key2, S3M_COPY_MERGE, c->meta);
}

static int op_move(void *arg)
{
    struct op_ctx *c = arg;
    return s3m_store_move(c->store, c->key, c->key2, false);
}

static int op_move_prefix(void *arg)
{
    struct op_ctx *c = arg;
    size_t moved = 99;
    int rc = s3m_store_move_prefix(c->store, c->key, c->key2, &moved);
    if (rc && moved != 0)
        return -EPROTO;
    return rc;
}

static int op_snapshot(void *arg)
{
    struct op_ctx *c = arg;
    c->snapshot = s3m_store_snapshot(c->store);
    return c->snapshot ? 0 : -ENOMEM;
}

static int op_restore(void *arg)
{
    struct op_ctx *c = arg;
    return s3m_store_restore(c->store, c->snapshot, NULL, NULL);
}

static int op_list(void *arg)
{
    struct op_ctx *c = arg;
    struct s3m_list_request req = {.delimiter = '/', .max_keys = 3};
    struct s3m_list_result result;
    int rc = s3m_store_list(c->store, &req, &result);
    if (rc == 0)
        s3m_list_result_release(&result);
    else if (result.keys || result.key_count || result.next_continuation)
        return -EPROTO;
    return rc;
}

static int op_meta_merge(void *arg)
{
    struct op_ctx *c = arg;
    struct s3m_meta *with = s3m_meta_with(c->meta, "new", "v", 1);
    struct s3m_meta *merged = with ? s3m_meta_merge(c->meta, with) : NULL;
    struct s3m_meta *typed = merged ? s3m_meta_with_type(merged, "a/b", "c") : NULL;
    struct s3m_meta *without = typed ? s3m_meta_without(typed, "NEW") : NULL;
    int rc = without && without->count == c->meta->count ? 0 : -ENOMEM;
    s3m_meta_unref(with);
    s3m_meta_unref(merged);
    s3m_meta_unref(typed);
    s3m_meta_unref(without);
    return rc;
}

static int op_store_new(void *arg)
{
    struct op_ctx *c = arg;
    struct s3m_store_config config = {.bucket = "fresh"};
    struct s3m_store *store = s3m_store_new(&config);
    if (!store)
        return -ENOMEM;
    int rc = s3m_store_put(store, "k", c->data, c->len, NULL, 0);
    s3m_store_free(store);
    return rc;
}

static void test_allocation_failures(void)
{
    struct s3m_store *store = store_plain();
    unsigned char *data = pattern_new(300 * KIB, 21);
    struct s3m_meta *meta = meta_of("Owner", "ann", "tag", "x", NULL);
    struct s3m_meta *overlay = meta_of("tag", "y", "new", "z", NULL);
    struct s3m_put_attrs attrs = {.meta = meta};
    char key[32];
    int rc;

    for (int i = 0; i < 5; i++) {
        snprintf(key, sizeof(key), "m/%d", i);
        CHECK_INT(s3m_store_put(store, key, data, 1000 * (size_t)i, &attrs, 0), 0);
    }
    CHECK_INT(s3m_store_put(store, "w", data, 200 * KIB, &attrs, 0), 0);
    CHECK_INT(s3m_store_put(store, "other", "o", 1, NULL, 0), 0);
    struct op_ctx c = {.store = store, .meta = meta, .data = data};

    /* put of a new key with metadata, and over an existing key */
    c.key = "new";
    c.len = 150 * KIB;
    CHECK(alloc_failure_loop("put new", store, NULL, true, op_put, &c) >= 3);
    CHECK(key_holds(store, "new", data, 150 * KIB));
    c.key = "other";
    c.len = 70 * KIB;
    CHECK(alloc_failure_loop("put over", store, NULL, true, op_put, &c) >= 3);
    CHECK(key_holds(store, "other", data, 70 * KIB));

    /* a write into a body shared with a snapshot: touches a shared chunk
     * and adds one past the end */
    struct s3m_store *snap = s3m_store_snapshot(store);
    c.obj = s3m_store_open(store, "w", &rc);
    c.offset = 200 * KIB - 100;
    c.data = data + 1;
    c.len = 70 * KIB;
    CHECK(alloc_failure_loop("shared write", store, snap, true, op_write, &c) >= 3);
    unsigned char *model = calloc(1, 300 * KIB);
    memcpy(model, data, 200 * KIB);
    memcpy(model + c.offset, data + 1, c.len);
    CHECK(key_holds(store, "w", model, (size_t)c.offset + c.len));
    CHECK(key_holds(snap, "w", data, 200 * KIB));
    /* the same in place (the body is private now): contents unchanged */
    c.offset = 10;
    c.len = 3 * S3M_CHUNK_SIZE;
    memcpy(model + 10, data + 1, c.len);
    alloc_failure_loop("private write", store, snap, false, op_write, &c);
    CHECK(key_holds(store, "w", model, 200 * KIB - 100 + 70 * KIB));
    s3m_object_unref(c.obj);
    /* truncate of a shared body into the middle of a chunk */
    c.obj = s3m_store_open(snap, "w", &rc);
    s3m_store_free(store);
    store = c.store = s3m_store_snapshot(snap);
    c.store = snap;
    c.offset = 100 * KIB + 5;
    CHECK(alloc_failure_loop("shared truncate", snap, store, true, op_truncate, &c) >= 1);
    CHECK(key_holds(snap, "w", data, 100 * KIB + 5));
    CHECK(key_holds(store, "w", data, 200 * KIB));
    s3m_object_unref(c.obj);
    c.obj = NULL;
    s3m_store_free(snap);
    c.store = store;
    c.data = data;

    /* copy with merged metadata */
    c.meta = overlay;
    c.key = "m/3";
    c.key2 = "copied";
    CHECK(alloc_failure_loop("copy", store, NULL, true, op_copy, &c) >= 2);
    CHECK(key_holds(store, "copied", data, 3000));
    struct s3m_object_info info = {0};
    CHECK_INT(s3m_store_head(store, "copied", &info), 0);
    CHECK_STR(meta_value(info.meta, "tag"), "y");
    CHECK_STR(meta_value(info.meta, "owner"), "ann");
    s3m_object_info_release(&info);
    /* copy over an existing key */
    c.key = "m/4";
    CHECK(alloc_failure_loop("copy over", store, NULL, true, op_copy, &c) >= 2);
    CHECK(key_holds(store, "copied", data, 4000));

    /* move */
    c.key = "copied";
    c.key2 = "moved";
    CHECK(alloc_failure_loop("move", store, NULL, true, op_move, &c) >= 1);
    CHECK(key_holds(store, "moved", data, 4000));
    CHECK_INT(s3m_store_head(store, "copied", NULL), -ENOENT);

    /* move_prefix */
    c.key = "m/";
    c.key2 = "n/";
    CHECK(alloc_failure_loop("move_prefix", store, NULL, true, op_move_prefix, &c) >= 3);
    CHECK_INT(s3m_store_count(store, "m/"), 0);
    CHECK_INT(s3m_store_count(store, "n/"), 5);
    CHECK(key_holds(store, "n/2", data, 2000));

    /* snapshot, then restore from it */
    c.snapshot = NULL;
    CHECK(alloc_failure_loop("snapshot", store, NULL, true, op_snapshot, &c) >= 3);
    CHECK(c.snapshot != NULL);
    if (c.snapshot) {
        char *a = store_dump(store), *b = store_dump(c.snapshot);
        CHECK(dump_equal(a, b));
        free(a);
        free(b);
        CHECK_INT(s3m_store_put(store, "after", "x", 1, NULL, 0), 0);
        CHECK_INT(s3m_store_delete(store, "w"), 0);
        /* two keys differ: restored in place (the array of copies, one
         * copy) */
        CHECK(alloc_failure_loop("restore", store, c.snapshot, true, op_restore,
                                 &c) >= 2);
        a = store_dump(store);
        b = store_dump(c.snapshot);
        CHECK(dump_equal(a, b));
        free(a);
        free(b);
        /* 100 keys differ: a copy of the snapshot is swapped in */
        for (int i = 0; i < 100; i++) {
            char extra[16];
            snprintf(extra, sizeof(extra), "extra%d", i);
            CHECK_INT(s3m_store_put(store, extra, "x", 1, NULL, 0), 0);
        }
        CHECK(alloc_failure_loop("restore of many", store, c.snapshot, true,
                                 op_restore, &c) >= 3);
        a = store_dump(store);
        b = store_dump(c.snapshot);
        CHECK(dump_equal(a, b));
        free(a);
        free(b);
        s3m_store_free(c.snapshot);
    }

    /* a put that grows the hash table: that allocation may fail harmlessly */
    struct s3m_store *grow = store_plain();
    for (int i = 0; i < 63; i++) {
        snprintf(key, sizeof(key), "g%02d", i);
        CHECK_INT(s3m_store_put(grow, key, key, 3, NULL, 0), 0);
    }
    struct op_ctx g = {.store = grow, .key = "g63", .data = "g63", .len = 3};
    CHECK(alloc_failure_loop("put that grows", grow, NULL, true, op_put, &g) >= 3);
    for (int i = 64; i < 300; i++) {
        snprintf(key, sizeof(key), "g%02d", i);
        CHECK_INT(s3m_store_put(grow, key, key, strlen(key), NULL, 0), 0);
    }
    for (int i = 0; i < 300; i++) {
        snprintf(key, sizeof(key), "g%02d", i);
        CHECK(key_holds(grow, key, key, strlen(key)));
    }
    CHECK_INT(s3m_store_count(grow, NULL), 300);
    s3m_store_free(grow);

    /* metadata helpers, a new store */
    c.meta = meta;
    CHECK(alloc_failure_loop("meta helpers", store, NULL, true, op_meta_merge, &c) >= 8);
    c.len = 10;
    CHECK(alloc_failure_loop("store new", store, NULL, true, op_store_new, &c) >= 4);

    CHECK_INT(s3m_alloc_fail_after(0, false), 0);
    s3m_meta_unref(meta);
    s3m_meta_unref(overlay);
    free(model);
    free(data);
    s3m_store_free(store);
}

/* Runs last: when an allocation fails inside s3m_store_list while it adds a
 * common prefix, list_walk reads prefixes->items[count - 1] before checking
 * the error; with no array yet that is NULL[-1], which ends the program. */
static void test_list_allocation_failures(void)
{
    struct s3m_store *store = store_plain();
    static const char *const keys[] = {"a", "b/1", "b/2", "c/1", "d", "e/f/g"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        CHECK_INT(s3m_store_put(store, keys[i], "x", 1, NULL, 0), 0);
    struct op_ctx c = {.store = store};
    CHECK(alloc_failure_loop("list", store, NULL, true, op_list, &c) >= 2);
    s3m_store_free(store);
}

static void test_count_prefixes(void)
{
    struct s3m_store *store = store_plain();
    static const char *const keys[] = {"a/", "a/f", "a/b/", "a/b/c/d", "a/c/x",
                                       "a/c/y", "a/d", "a/e/", "ab/z", "b"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        CHECK_INT(s3m_store_put(store, keys[i], "", 0, NULL, 0), 0);
    CHECK_INT(s3m_store_count_prefixes(store, "a/", '/', 100), 3);  /* b c e */
    CHECK_INT(s3m_store_count_prefixes(store, "", '/', 100), 2);    /* a ab */
    CHECK_INT(s3m_store_count_prefixes(store, "a/b/", '/', 100), 1);
    CHECK_INT(s3m_store_count_prefixes(store, "a/c/", '/', 100), 0);
    CHECK_INT(s3m_store_count_prefixes(store, "zz/", '/', 100), 0);
    /* a/, a/b/, a/c/x, a/d, a/e/ and a/f are walked under a/: six */
    CHECK(s3m_store_count_prefixes(store, "a/", '/', 5) == SIZE_MAX);
    CHECK_INT(s3m_store_count_prefixes(store, "a/", '/', 6), 3);
    s3m_store_free(store);
}

/* swap_in (load) leaves an object identical to the one it replaces as it
 * was, to the nanosecond; anything that differs is replaced. */

/* Keys a change report named, space-separated; stops after stop_after. */
struct seen_keys {
    char text[256];
    int calls;
    int stop_after;                /* 0: never */
};

static int see_key(void *ctx, const char *key)
{
    struct seen_keys *seen = ctx;
    size_t used = strlen(seen->text);
    snprintf(seen->text + used, sizeof(seen->text) - used, "%s ", key);
    return ++seen->calls == seen->stop_after;
}

/* restore and clear name the keys they change, in one pass; a listener
 * can stop it */
/* A restore that changes few keys changes only them (an atime that alone
 * differs is set back, unnamed); an object open in a handle is replaced
 * even when unchanged, so the handle goes on with the old file as after a
 * swap, also unnamed. */
static void test_restore_in_place(void)
{
    struct s3m_store *store = store_plain();
    CHECK_INT(s3m_store_put(store, "changed", "2", 1, NULL, 0), 0);
    CHECK_INT(s3m_store_put(store, "gone", "3", 1, NULL, 0), 0);
    CHECK_INT(s3m_store_put(store, "open", "5", 1, NULL, 0), 0);
    CHECK_INT(s3m_store_put(store, "same", "1", 1, NULL, 0), 0);
    struct s3m_object_info before, after;
    CHECK_INT(s3m_store_head(store, "same", &before), 0);
    struct s3m_store *snap = s3m_store_snapshot(store);
    uint64_t epoch = s3m_store_epoch(store);
    int rc;
    struct s3m_object *same = s3m_store_open(store, "same", &rc);
    struct s3m_object *changed = s3m_store_open(store, "changed", &rc);
    struct s3m_object *open = s3m_store_open(store, "open", &rc);
    CHECK(snap && same && changed && open);
    if (!snap || !same || !changed || !open)
        goto out;
    struct s3m_attr_update atime = {.flags = S3M_ATTR_ATIME | S3M_ATTR_CTIME,
                                    .atime_ns = 5, .ctime_ns = before.ctime_ns};
    CHECK_INT(s3m_object_set_attrs(store, same, &atime), 0);
    s3m_object_unref(same);
    same = NULL;
    CHECK_INT(s3m_object_write(store, changed, 0, "x", 1), 0);
    CHECK_INT(s3m_store_delete(store, "gone"), 0);
    CHECK_INT(s3m_store_put(store, "new", "4", 1, NULL, 0), 0);
    struct seen_keys seen = {0};
    CHECK_INT(s3m_store_restore(store, snap, see_key, &seen), 0);
    CHECK_STR(seen.text, "changed gone new ");
    CHECK(!s3m_object_attached(store, changed));
    CHECK(!s3m_object_attached(store, open));
    CHECK(key_holds(store, "changed", "2", 1));
    CHECK(key_holds(store, "gone", "3", 1));
    CHECK_INT(s3m_store_head(store, "new", NULL), -ENOENT);
    CHECK_INT(s3m_store_head(store, "same", &after), 0);
    CHECK(after.atime_ns == before.atime_ns && after.ctime_ns == before.ctime_ns);
    s3m_object_info_release(&after);
    CHECK(s3m_store_epoch(store) != epoch);
    char *a = store_dump(store), *b = store_dump(snap);
    CHECK(dump_equal(a, b));
    free(a);
    free(b);
out:
    s3m_object_info_release(&before);
    s3m_object_unref(same);
    s3m_object_unref(changed);
    s3m_object_unref(open);
    s3m_store_free(snap);
    s3m_store_free(store);
}

/* Pins (the FUSE layer's inode numbers): an object stays valid while
 * pinned, out of the store or not; pins do not make it open to a restore;
 * the store releases the pins nobody dropped. */
static void test_pins(void)
{
    struct s3m_store *store = store_plain();
    int rc;
    bool first = false;
    CHECK_INT(s3m_store_put(store, "a", "1", 1, NULL, 0), 0);
    CHECK_INT(s3m_store_put(store, "kept", "2", 1, NULL, 0), 0);
    CHECK_INT(s3m_store_put(store, "left", "3", 1, NULL, 0), 0);
    struct s3m_object *a = s3m_store_open(store, "a", &rc);
    struct s3m_object *kept = s3m_store_open(store, "kept", &rc);
    struct s3m_object *left = s3m_store_open(store, "left", &rc);
    CHECK(a && kept && left);
    if (!a || !kept || !left)
        goto out;
    CHECK_INT(s3m_object_pin(store, a, &first), 0);
    CHECK(first);
    CHECK_INT(s3m_object_pin(store, a, &first), 0);
    CHECK(!first);
    CHECK_INT(s3m_object_pin(store, kept, &first), 0);
    CHECK_INT(s3m_object_pin(store, left, &first), 0);
    CHECK_INT((int)s3m_store_pinned(store), 3);
    CHECK(s3m_object_held(store, a));          /* our open reference */
    s3m_object_unref(a);
    s3m_object_unref(kept);
    s3m_object_unref(left);
    CHECK(!s3m_object_held(store, a));         /* the store and its pins */

    struct s3m_store *snap = s3m_store_snapshot(store);
    CHECK(snap != NULL);
    CHECK_INT(s3m_store_delete(store, "a"), 0);
    CHECK(!s3m_object_attached(store, a));
    CHECK(!s3m_object_held(store, a));
    struct s3m_object_info info;
    CHECK_INT(s3m_object_head(store, a, &info), 0); /* still valid: pinned */
    CHECK_INT((int)info.size, 1);
    s3m_object_info_release(&info);
    char key[8];
    CHECK_INT(s3m_object_key(store, a, key, sizeof(key)), 1);
    CHECK_STR(key, "a");
    CHECK_INT(s3m_object_key(store, a, key, 1), -ENAMETOOLONG);

    /* a restore keeps an unchanged pinned object in place */
    if (snap)
        CHECK_INT(s3m_store_restore(store, snap, NULL, NULL), 0);
    CHECK(s3m_object_attached(store, kept));
    CHECK(key_holds(store, "a", "1", 1));      /* a copy came back */

    CHECK(!s3m_object_unpin(store, a, 1));     /* one pin left */
    CHECK_INT((int)s3m_store_pinned(store), 3);
    CHECK(s3m_object_unpin(store, a, 5));      /* the last: a is freed */
    CHECK_INT((int)s3m_store_pinned(store), 2);
    CHECK(s3m_object_unpin(store, kept, 1));
    CHECK_INT((int)s3m_store_pinned(store), 1);
    s3m_store_free(snap);
out:
    s3m_store_free(store);                     /* drops left's pin */
}

/* Many pinned objects, every other one changed, kept through a swap: the
 * index (hash table and skiplist at every level) finds each kept object
 * by its key, and lists the keys in order. */
static void test_swap_keeps_many_pinned(void)
{
    enum { COUNT = 2000 };
    struct s3m_store *store = store_plain(), *source = store_plain();
    struct s3m_put_attrs when = {.mtime_ns = INT64_C(1700000000000000000)};
    static struct s3m_object *obj[COUNT];
    char key[32];
    bool first;
    int rc, bad = 0;
    for (int i = 0; i < COUNT; i++) {
        snprintf(key, sizeof(key), "k%05d", i);
        CHECK_INT(s3m_store_put(store, key, "x", 1, &when, 0), 0);
        CHECK_INT(s3m_store_put(source, key, i % 2 ? "y" : "x", 1, &when, 0), 0);
        obj[i] = s3m_store_open(store, key, &rc);
        if (obj[i] && s3m_object_pin(store, obj[i], &first) == 0)
            s3m_object_unref(obj[i]);
        else
            bad++;
    }
    CHECK_INT(bad, 0);
    s3m_store_swap_in(store, source, S3M_KEEP_SAME_BYTES, NULL, NULL);
    for (int i = 0; i < COUNT && !bad; i++) {
        snprintf(key, sizeof(key), "k%05d", i);
        struct s3m_object *now = s3m_store_open(store, key, &rc);
        bad += !now || (now == obj[i]) != (i % 2 == 0) ||
               !key_holds(store, key, i % 2 ? "y" : "x", 1);
        s3m_object_unref(now);
    }
    CHECK_INT(bad, 0);
    struct s3m_list_result list = {0};
    struct s3m_list_request request = {.max_keys = COUNT + 1};
    CHECK_INT(s3m_store_list(store, &request, &list), 0);
    for (size_t i = 0; i < list.key_count; i++) {
        snprintf(key, sizeof(key), "k%05zu", i);
        bad += strcmp(list.keys[i], key) != 0;
    }
    CHECK_INT((int)list.key_count, COUNT);
    CHECK_INT(bad, 0);
    s3m_list_result_release(&list);
    s3m_store_free(source);
    s3m_store_free(store);
}

/* A swap keeps a pinned object the kernel knows (not open) itself when
 * the incoming one is equal, so its inode stays valid; an open one, or a
 * changed one, is replaced. Restore by swap (most keys changed) likewise
 * keeps pinned objects it leaves unchanged. */
static void test_swap_keeps_pinned(void)
{
    struct s3m_store *store = store_plain(), *source = store_plain();
    struct s3m_put_attrs when = {.mtime_ns = INT64_C(1700000000000000000)};
    const char *keys[] = {"a", "b-open", "c-changed", "d-plain", "e-pinned"};
    struct s3m_object *obj[5] = {NULL};
    bool first;
    int rc;
    for (int i = 0; i < 5; i++) {
        CHECK_INT(s3m_store_put(store, keys[i], "x", 1, &when, 0), 0);
        CHECK_INT(s3m_store_put(source, keys[i], i == 2 ? "y" : "x", 1, &when, 0), 0);
        obj[i] = s3m_store_open(store, keys[i], &rc);
        CHECK(obj[i] != NULL);
        if (!obj[i])
            goto out;
        if (i != 3)
            CHECK_INT(s3m_object_pin(store, obj[i], &first), 0);
        if (i != 1)
            s3m_object_unref(obj[i]);  /* b-open stays open */
    }
    struct seen_keys seen = {0};
    s3m_store_swap_in(store, source, S3M_KEEP_SAME_BYTES, see_key, &seen);
    CHECK_STR(seen.text, "c-changed ");
    CHECK(s3m_object_attached(store, obj[0]));
    CHECK(!s3m_object_attached(store, obj[1]));     /* open: replaced */
    CHECK(!s3m_object_attached(store, obj[2]));     /* changed: replaced */
    CHECK(s3m_object_attached(store, obj[4]));
    CHECK(key_holds(store, "a", "x", 1));
    CHECK(key_holds(store, "c-changed", "y", 1));
    CHECK(list_is(store, NULL, 0, NULL,
                  "k:a\nk:b-open\nk:c-changed\nk:d-plain\nk:e-pinned\n"));
    struct s3m_store_stats stats;
    s3m_store_stats(store, &stats);
    CHECK_INT((int)stats.object_count, 5);
    CHECK_INT((int)stats.total_size, 5);

    /* restore by swap (more keys differ than restore changes in place):
     * every key but e-pinned changes, and 100 are added */
    struct s3m_store *snap = s3m_store_snapshot(store);
    CHECK(snap != NULL);
    for (int i = 0; snap && i < 4; i++)
        CHECK_INT(s3m_store_put(store, keys[i], "zz", 2, &when, 0), 0);
    for (int i = 0; snap && i < 100; i++) {
        char key[16];
        snprintf(key, sizeof(key), "new%d", i);
        CHECK_INT(s3m_store_put(store, key, "n", 1, &when, 0), 0);
    }
    if (snap)
        CHECK_INT(s3m_store_restore(store, snap, NULL, NULL), 0);
    CHECK(s3m_object_attached(store, obj[4]));
    CHECK(!s3m_object_attached(store, obj[0]));
    CHECK(key_holds(store, "a", "x", 1));
    CHECK_INT(s3m_store_head(store, "new7", NULL), -ENOENT);
    s3m_store_free(snap);
    s3m_object_unref(obj[1]);
out:
    s3m_store_free(source);
    s3m_store_free(store);
}

static void test_restore_reports_changes(void)
{
    struct s3m_store *store = store_plain();
    CHECK_INT(s3m_store_put(store, "a", "1", 1, NULL, 0), 0);
    CHECK_INT(s3m_store_put(store, "b", "2", 1, NULL, 0), 0);
    CHECK_INT(s3m_store_put(store, "c", "3", 1, NULL, 0), 0);
    struct s3m_store *snap = s3m_store_snapshot(store);
    CHECK(snap != NULL);
    CHECK_INT(s3m_store_put(store, "b", "changed", 7, NULL, 0), 0);
    CHECK_INT(s3m_store_delete(store, "c"), 0);
    CHECK_INT(s3m_store_put(store, "d", "4", 1, NULL, 0), 0);
    struct seen_keys seen = {0};
    CHECK_INT(s3m_store_restore(store, snap, see_key, &seen), 0);
    CHECK_STR(seen.text, "b c d ");
    CHECK(key_holds(store, "b", "2", 1));
    /* nothing differs now: nothing named */
    struct seen_keys none = {0};
    CHECK_INT(s3m_store_restore(store, snap, see_key, &none), 0);
    CHECK_INT(none.calls, 0);
    /* a listener that stops is not called again, and the restore completes */
    CHECK_INT(s3m_store_put(store, "a", "x", 1, NULL, 0), 0);
    CHECK_INT(s3m_store_put(store, "b", "x", 1, NULL, 0), 0);
    CHECK_INT(s3m_store_put(store, "e", "x", 1, NULL, 0), 0);
    struct seen_keys stop = {.stop_after = 1};
    CHECK_INT(s3m_store_restore(store, snap, see_key, &stop), 0);
    CHECK_STR(stop.text, "a ");
    CHECK(list_is(store, NULL, 0, NULL, "k:a\nk:b\nk:c\n"));
    /* clear names every key it deletes */
    struct seen_keys cleared = {0};
    s3m_store_clear(store, see_key, &cleared);
    CHECK_STR(cleared.text, "a b c ");
    CHECK_INT(s3m_store_count(store, NULL), 0);
    s3m_store_free(snap);
    s3m_store_free(store);
}

static void test_swap_in_keeps_identical(void)
{
    struct s3m_store *store = store_plain(), *source = store_plain();
    struct s3m_meta *meta = s3m_meta_with(NULL, "k", "v", 1);
    int64_t when = INT64_C(1700000000123456789);
    struct s3m_put_attrs precise = {.mtime_ns = when, .meta = meta};
    struct s3m_put_attrs in_file = {.mtime_ns = when / 1000000 * 1000000,
                                    .meta = meta};
    struct s3m_put_attrs other_ms = {.mtime_ns = when + 1000000, .meta = meta};
    struct s3m_put_attrs no_meta = {.mtime_ns = when / 1000000 * 1000000};
    struct s3m_object_info before = {0}, after = {0};

    CHECK(meta != NULL);
    CHECK_INT(s3m_store_put(store, "same", "abc", 3, &precise, 0), 0);
    CHECK_INT(s3m_store_put(store, "bytes", "abc", 3, &precise, 0), 0);
    CHECK_INT(s3m_store_put(store, "time", "abc", 3, &precise, 0), 0);
    CHECK_INT(s3m_store_put(store, "meta", "abc", 3, &precise, 0), 0);
    CHECK_INT(s3m_store_put(store, "dir/", NULL, 0, &precise, 0), 0);
    CHECK_INT(s3m_store_put(store, "gone", "x", 1, &precise, 0), 0);
    CHECK_INT(s3m_store_head(store, "same", &before), 0);

    CHECK_INT(s3m_store_put(source, "same", "abc", 3, &in_file, 0), 0);
    CHECK_INT(s3m_store_put(source, "bytes", "abd", 3, &in_file, 0), 0);
    CHECK_INT(s3m_store_put(source, "time", "abc", 3, &other_ms, 0), 0);
    CHECK_INT(s3m_store_put(source, "meta", "abc", 3, &no_meta, 0), 0);
    CHECK_INT(s3m_store_put(source, "dir/", "", 0, &in_file, 0), 0);
    CHECK_INT(s3m_store_put(source, "new", "n", 1, &in_file, 0), 0);
    struct seen_keys seen = {0};
    s3m_store_swap_in(store, source, S3M_KEEP_SAME_TO_MS, see_key, &seen);
    s3m_store_free(source);
    /* the keys the swap changed, in order: kept ones are not among them */
    CHECK_STR(seen.text, "bytes gone meta new time ");

    CHECK_INT(s3m_store_head(store, "same", &after), 0);
    CHECK_INT(after.mtime_ns, when);
    CHECK_INT(after.ctime_ns, before.ctime_ns);
    s3m_object_info_release(&after);
    CHECK_INT(s3m_store_head(store, "dir/", &after), 0);
    CHECK_INT(after.mtime_ns, when);
    s3m_object_info_release(&after);
    CHECK(key_holds(store, "bytes", "abd", 3));
    CHECK_INT(s3m_store_head(store, "bytes", &after), 0);
    CHECK_INT(after.mtime_ns, when / 1000000 * 1000000);
    s3m_object_info_release(&after);
    CHECK_INT(s3m_store_head(store, "time", &after), 0);
    CHECK_INT(after.mtime_ns, when + 1000000);
    s3m_object_info_release(&after);
    CHECK_INT(s3m_store_head(store, "meta", &after), 0);
    CHECK(after.meta == NULL || after.meta->count == 0);
    s3m_object_info_release(&after);
    CHECK(list_is(store, NULL, 0, NULL,
                  "k:bytes\nk:dir/\nk:meta\nk:new\nk:same\nk:time\n"));
    s3m_object_info_release(&before);
    s3m_meta_unref(meta);
    s3m_store_free(store);
}

/* A backup carries no times: an import keeps an object whose bytes,
 * metadata, mode and owner it would leave the same, whatever its mtime. */
static void test_swap_in_keeps_same_bytes(void)
{
    struct s3m_store *store = store_plain(), *source = store_plain();
    struct s3m_meta *meta = s3m_meta_with(NULL, "k", "v", 1);
    struct s3m_put_attrs old = {.mtime_ns = INT64_C(1577934245000000000), .meta = meta};
    struct s3m_put_attrs now = {.mtime_ns = INT64_C(1796000000000000000), .meta = meta};
    struct s3m_put_attrs now_0600 = {.mtime_ns = now.mtime_ns, .meta = meta,
                                     .mode = 0600};
    struct s3m_object_info info = {0};

    CHECK(meta != NULL);
    CHECK_INT(s3m_store_put(store, "same", "abc", 3, &old, 0), 0);
    CHECK_INT(s3m_store_put(store, "bytes", "abc", 3, &old, 0), 0);
    CHECK_INT(s3m_store_put(store, "mode", "abc", 3, &old, 0), 0);
    CHECK_INT(s3m_store_put(source, "same", "abc", 3, &now, 0), 0);
    CHECK_INT(s3m_store_put(source, "bytes", "abd", 3, &now, 0), 0);
    CHECK_INT(s3m_store_put(source, "mode", "abc", 3, &now_0600, 0), 0);
    struct seen_keys seen = {0};
    s3m_store_swap_in(store, source, S3M_KEEP_SAME_BYTES, see_key, &seen);
    s3m_store_free(source);
    CHECK_STR(seen.text, "bytes mode ");
    CHECK_INT(s3m_store_head(store, "same", &info), 0);
    CHECK_INT(info.mtime_ns, old.mtime_ns);
    s3m_object_info_release(&info);
    CHECK_INT(s3m_store_head(store, "bytes", &info), 0);
    CHECK_INT(info.mtime_ns, now.mtime_ns);
    s3m_object_info_release(&info);
    CHECK(key_holds(store, "bytes", "abd", 3));
    s3m_meta_unref(meta);
    s3m_store_free(store);
}

int main(void)
{
    RUN(test_put_get_sizes);
    RUN(test_put_attrs);
    RUN(test_restore_reports_changes);
    RUN(test_restore_in_place);
    RUN(test_pins);
    RUN(test_swap_keeps_pinned);
    RUN(test_swap_keeps_many_pinned);
    RUN(test_keys);
    RUN(test_etag_random_writes);
    RUN(test_chunk_file);
    RUN(test_write_in_two_steps);
    RUN(test_reaper);
    RUN(test_sparse_and_truncate);
    RUN(test_copy_on_write);
    RUN(test_list_basic);
    RUN(test_list_pagination);
    RUN(test_list_high_bytes);
    RUN(test_list_level);
    RUN(test_meta_helpers);
    RUN(test_copy);
    RUN(test_delete);
    RUN(test_move);
    RUN(test_move_prefix);
    RUN(test_count_and_stats);
    RUN(test_limits);
    RUN(test_open_objects);
    RUN(test_foreach_and_swap);
    RUN(test_swap_in_keeps_identical);
    RUN(test_swap_in_keeps_same_bytes);
    RUN(test_count_prefixes);
    RUN(test_misc);
    RUN(test_threads);
    RUN(test_allocation_failures);
    RUN(test_list_allocation_failures);
    return CHECK_EXIT();
}
