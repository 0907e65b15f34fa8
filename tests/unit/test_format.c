/*
 * test_format.c - unit tests for format.h: the s3db.js save file (load the
 * fixtures made by s3db.js 12.4.0, save, round trips, bad files), backups
 * (import the fixture directories, export byte-identical files, round trips,
 * bad backups) and allocation failures.
 */
#include "check.h"

#include "s3mem/format.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define FIXTURES S3MEM_FIXTURES "/s3db-12.4.0"

static char temp_root[64];

/* ---- helpers ------------------------------------------------------------ */

static struct s3m_store *new_store(const char *bucket)
{
    struct s3m_store_config config = {.bucket = bucket, .default_uid = 1000,
                                      .default_gid = 1000};
    return s3m_store_new(&config);
}

/* New path under this run's temp directory. */
static char *temp_path(const char *name)
{
    static char paths[64][256];
    static size_t next;
    char *path = paths[next++ % 64];

    snprintf(path, 256, "%s/%s", temp_root, name);
    return path;
}

static char *read_whole(const char *path, size_t *len)
{
    FILE *file = fopen(path, "rb");
    char *data = NULL;
    long size;

    if (!file)
        return NULL;
    fseek(file, 0, SEEK_END);
    size = ftell(file);
    fseek(file, 0, SEEK_SET);
    data = malloc((size_t)size + 1);
    if (data && fread(data, 1, (size_t)size, file) != (size_t)size) {
        free(data);
        data = NULL;
    }
    if (data)
        data[size] = '\0';
    *len = (size_t)size;
    fclose(file);
    return data;
}

static char *gunzip_whole(const char *path, size_t *len)
{
    gzFile gz = gzopen(path, "rb");
    size_t cap = 1 << 16, used = 0;
    char *data = malloc(cap);
    int got;

    while (gz && (got = gzread(gz, data + used, (unsigned)(cap - used))) > 0) {
        used += (size_t)got;
        if (used == cap)
            data = realloc(data, cap *= 2);
    }
    if (gz)
        gzclose(gz);
    *len = used;
    return data;
}

static void write_whole(const char *path, const void *data, size_t len)
{
    FILE *file = fopen(path, "wb");
    CHECK(file != NULL);
    if (!file)
        return;
    CHECK_INT(fwrite(data, 1, len, file), len);
    fclose(file);
}

static void copy_file(const char *from, const char *to)
{
    size_t len;
    char *data = read_whole(from, &len);
    CHECK(data != NULL);
    if (data)
        write_whole(to, data, len);
    free(data);
}

static char *body_of(struct s3m_store *store, const char *key, size_t *len)
{
    struct s3m_object_info info;
    struct s3m_body *body = NULL;
    char *data;

    if (s3m_store_get(store, key, &info, &body) != 0)
        return NULL;
    *len = (size_t)info.size;
    data = malloc(*len + 1);
    s3m_body_read(body, 0, data, *len);
    data[*len] = '\0';
    s3m_body_unref(body);
    s3m_object_info_release(&info);
    return data;
}

/* The metadata value of name at key (a new string), or NULL. */
static char *meta_of(struct s3m_store *store, const char *key,
                     const char *name)
{
    struct s3m_object_info info;
    const struct s3m_meta_entry *entry;
    char *value = NULL;

    if (s3m_store_head(store, key, &info) != 0)
        return NULL;
    entry = s3m_meta_find(info.meta, name);
    if (entry)
        value = strdup(entry->value);
    s3m_object_info_release(&info);
    return value;
}

static int remove_entry(const char *path, const struct stat *st, int flag,
                        struct FTW *ftw)
{
    return remove(path);
}

/* Object-by-object equality of two stores (a's lock is held, b is read). */
struct compare {
    struct s3m_store *other;
    bool compare_owner;
    size_t compared;
    int differences;
};

static int compare_object(void *arg, const char *key,
                          const struct s3m_object_info *info,
                          struct s3m_body *body)
{
    struct compare *cmp = arg;
    struct s3m_object_info other;
    struct s3m_body *other_body = NULL;
    int before = check_failures;

    cmp->compared++;
    if (s3m_store_get(cmp->other, key, &other, &other_body) != 0) {
        fprintf(stderr, "  missing key '%s'\n", key);
        check_failures++;
        cmp->differences++;
        return 0;
    }
    CHECK_INT(other.size, info->size);
    if (other.size == info->size && info->size) {
        char *x = malloc(info->size), *y = malloc(info->size);
        s3m_body_read(body, 0, x, info->size);
        s3m_body_read(other_body, 0, y, info->size);
        CHECK_MEM(x, y, info->size);
        free(x);
        free(y);
    }
    CHECK_INT(other.mtime_ns / 1000000, info->mtime_ns / 1000000);
    CHECK_STR(s3m_meta_content_type(other.meta),
              s3m_meta_content_type(info->meta));
    const char *enc_a = info->meta ? info->meta->content_encoding : NULL;
    const char *enc_b = other.meta ? other.meta->content_encoding : NULL;
    CHECK((enc_a == NULL) == (enc_b == NULL));
    if (enc_a && enc_b)
        CHECK_STR(enc_b, enc_a);
    size_t count = info->meta ? info->meta->count : 0;
    CHECK_INT(other.meta ? other.meta->count : 0, count);
    for (size_t i = 0; i < count && other.meta && i < other.meta->count; i++) {
        const struct s3m_meta_entry *a = &info->meta->entries[i];
        const struct s3m_meta_entry *b = &other.meta->entries[i];
        CHECK_STR(b->name, a->name);
        CHECK_INT(b->value_len, a->value_len);
        if (b->value_len == a->value_len)
            CHECK_MEM(b->value, a->value, a->value_len);
    }
    if (cmp->compare_owner) {
        CHECK_INT(other.mode, info->mode);
        CHECK_INT(other.uid, info->uid);
        CHECK_INT(other.gid, info->gid);
    }
    if (check_failures != before) {
        fprintf(stderr, "  (object '%s')\n", key);
        cmp->differences++;
    }
    s3m_body_unref(other_body);
    s3m_object_info_release(&other);
    return 0;
}

static void check_same_store(struct s3m_store *a, struct s3m_store *b,
                             bool compare_owner)
{
    struct compare cmp = {.other = b, .compare_owner = compare_owner};
    s3m_store_foreach(a, NULL, compare_object, &cmp);
    CHECK_INT(s3m_store_count(b, ""), cmp.compared);
    CHECK_INT(cmp.differences, 0);
}

/* Checks that store holds exactly the objects of the s3db.js save file. */
static void check_matches_file(struct s3m_store *store, const char *path)
{
    json_error_t error;
    json_t *root = json_load_file(path, 0, &error);
    json_t *objects = json_object_get(root, "objects"), *obj;
    const char *key;

    CHECK(root != NULL);
    CHECK_INT(s3m_store_count(store, ""), json_object_size(objects));
    json_object_foreach(objects, key, obj) {
        const char *b64 = json_string_value(json_object_get(obj, "body"));
        unsigned char *expected = malloc(strlen(b64) + 4);
        size_t expected_len = 0, len = 0;
        char etag[33], when[32];
        struct s3m_object_info info;
        json_t *metadata = json_object_get(obj, "metadata"), *value;
        const char *name;
        int before = check_failures;

        CHECK_INT(s3m_base64_decode(b64, strlen(b64), expected, &expected_len),
                  0);
        char *body = body_of(store, key, &len);
        CHECK(body != NULL);
        CHECK_INT(len, expected_len);
        if (body && len == expected_len)
            CHECK_MEM(body, expected, len);
        free(body);
        free(expected);
        CHECK_INT(s3m_store_etag(store, key, etag), 0);
        CHECK_STR(etag, json_string_value(json_object_get(obj, "etag")));
        CHECK_INT(s3m_store_head(store, key, &info), 0);
        CHECK_STR(s3m_meta_content_type(info.meta),
                  json_string_value(json_object_get(obj, "contentType")));
        s3m_time_format_iso(info.mtime_ns, when);
        CHECK_STR(when, json_string_value(json_object_get(obj, "lastModified")));
        CHECK_INT(info.meta ? info.meta->count : 0, json_object_size(metadata));
        json_object_foreach(metadata, name, value) {
            const struct s3m_meta_entry *entry = s3m_meta_find(info.meta, name);
            CHECK(entry != NULL);
            if (entry) {
                CHECK_STR(entry->name, name);   /* case kept */
                CHECK_STR(entry->value, json_string_value(value));
            }
        }
        s3m_object_info_release(&info);
        if (check_failures != before)
            fprintf(stderr, "  (key '%s')\n", key);
    }
    json_decref(root);
}

static struct s3m_store *load_or_null(const char *path)
{
    struct s3m_store_config config = {.bucket = "loaded", .default_uid = 1000,
                                      .default_gid = 1000};
    struct s3m_store *store = NULL;
    struct s3m_error err = {0};
    int rc = s3m_format_load(path, &config, &store, NULL, &err);

    CHECK_INT(rc, 0);
    if (rc)
        fprintf(stderr, "  load: %s\n", err.message);
    return store;
}

/* Loads text as a save file and expects -EINVAL with a message holding
 * every needle. */
static void check_load_refused(const char *text, int code, const char *needle)
{
    const char *path = temp_path("bad.json");
    struct s3m_store *out = (struct s3m_store *)&out;   /* sentinel */
    struct s3m_error err = {0};

    write_whole(path, text, strlen(text));
    CHECK_INT(s3m_format_load(path, NULL, &out, NULL, &err), -code);
    CHECK(out == (struct s3m_store *)&out);
    CHECK_INT(err.code, code);
    if (!strstr(err.message, needle)) {
        fprintf(stderr, "  message \"%s\" lacks \"%s\"\n", err.message, needle);
        check_failures++;
    }
}

/* ---- save files ---------------------------------------------------------- */

static void test_load_shop_fixture(void)
{
    struct s3m_load_report report = {0};
    struct s3m_store *store = NULL;
    struct s3m_error err = {0};
    struct s3m_store_config config = {.bucket = "shop", .default_uid = 7,
                                      .default_gid = 8};
    struct s3m_object_info info;
    size_t len;

    CHECK_INT(s3m_format_load(FIXTURES "/shop.snapshot.json", &config, &store,
                              &report, &err), 0);
    if (!store)
        return;
    CHECK_INT(report.objects, 11);
    CHECK_INT(s3m_store_count(store, ""), 11);
    check_matches_file(store, FIXTURES "/shop.snapshot.json");

    char *body = body_of(store, "assets/logo.bin", &len);
    CHECK_INT(len, 8);
    CHECK_MEM(body, "\x00\x01\x02\xff\xfe\n\r\x00", 8);
    free(body);
    char *value = meta_of(store, "resource=users/data/id=u1", "1");
    CHECK_STR(value, "u:Zo%C3%AB%20%C3%9Cn%C3%AFc%C3%B6d%C3%A9");
    free(value);
    value = meta_of(store, "resource=users/data/id=u2", "1");
    CHECK_STR(value, "Bob \"quoted\" \\ back");
    free(value);
    CHECK_INT(s3m_store_head(store, "assets/readme.txt", &info), 0);
    CHECK_STR(s3m_meta_content_type(info.meta), "text/plain");
    CHECK_INT(info.uid, 7);       /* no owner in the file: the default */
    CHECK_INT(info.gid, 8);
    CHECK_INT(info.mode & 0777, 0644);
    s3m_object_info_release(&info);
    CHECK_INT(s3m_store_head(store, "empty-dir/", &info), 0);
    CHECK_INT(info.mode & 0777, 0755);
    s3m_object_info_release(&info);
    CHECK_STR(s3m_store_bucket(store), "shop");
    s3m_store_free(store);
}

static void test_load_edge_fixture_and_round_trip(void)
{
    struct s3m_store *store = load_or_null(FIXTURES "/edge.snapshot.json");
    struct s3m_save_report report = {0};
    struct s3m_error err = {0};
    const char *path = temp_path("edge.json");

    if (!store)
        return;
    CHECK_INT(s3m_store_count(store, ""), 7);
    check_matches_file(store, FIXTURES "/edge.snapshot.json");
    CHECK_INT(s3m_format_save(store, path, &report, &err), 0);
    CHECK_INT(report.objects, 7);
    struct s3m_store *again = load_or_null(path);
    if (again) {
        check_matches_file(again, FIXTURES "/edge.snapshot.json");
        check_same_store(store, again, true);
        s3m_store_free(again);
    }
    s3m_store_free(store);
}

/* The saved file has s3db.js's fields, values and layout. */
static void test_save_matches_s3db_layout(void)
{
    struct s3m_store *store = load_or_null(FIXTURES "/shop.snapshot.json");
    const char *path = temp_path("shop-saved.json");
    struct s3m_error err = {0};
    json_error_t error;
    json_t *saved, *fixture, *obj;
    const char *key;
    size_t len;

    if (!store)
        return;
    CHECK_INT(s3m_format_save(store, path, NULL, &err), 0);
    char *text = read_whole(path, &len);
    CHECK(text && strncmp(text, "{\n  \"timestamp\": \"", 18) == 0);
    CHECK(text && strstr(text, "\n  \"bucket\": \"loaded\",\n"
                               "  \"objectCount\": 11,\n  \"objects\": {\n"));
    CHECK(text && text[len - 1] == '}');
    free(text);
    saved = json_load_file(path, 0, &error);
    fixture = json_load_file(FIXTURES "/shop.snapshot.json", 0, &error);
    CHECK(saved && fixture);
    CHECK_INT(json_integer_value(json_object_get(saved, "objectCount")), 11);
    json_object_foreach(json_object_get(fixture, "objects"), key, obj) {
        json_t *mine = json_object_get(json_object_get(saved, "objects"), key);
        const char *field;
        json_t *value;
        CHECK(mine != NULL);
        if (!mine)
            continue;
        json_object_foreach(obj, field, value)
            CHECK(json_equal(value, json_object_get(mine, field)));
        CHECK(json_object_get(mine, "contentEncoding") == NULL);
        CHECK(json_is_integer(json_object_get(mine, "mode")));
        CHECK_INT(json_integer_value(json_object_get(mine, "uid")), 1000);
        CHECK_INT(json_integer_value(json_object_get(mine, "gid")), 1000);
    }
    json_decref(saved);
    json_decref(fixture);
    s3m_store_free(store);
}

/* Everything an object holds survives save then load, including what the
 * fixtures lack: owners, modes, content encoding, bytes that are not UTF-8,
 * NUL in values, control characters, a large body. */
static void test_save_load_round_trip_everything(void)
{
    struct s3m_store *store = new_store("round");
    const char *path = temp_path("round.json");
    struct s3m_error err = {0};
    struct s3m_meta *meta = s3m_meta_new(), *next;
    size_t big_len = 300000;
    char *big = malloc(big_len);

    for (size_t i = 0; i < big_len; i++)
        big[i] = (char)(i * 7 + i / 251);
    next = s3m_meta_with_type(meta, "text/x-odd; charset=\"x\"", "gzip");
    s3m_meta_unref(meta);
    meta = s3m_meta_with(next, "Mixed-Case", "v\x00\x01\"\\\n\t\xff end", 13);
    s3m_meta_unref(next);
    next = s3m_meta_with(meta, "bad\xfename", "\xc3\x28", 2);
    s3m_meta_unref(meta);
    meta = s3m_meta_with(next, "ünï", "Zoë \xe2\x80\xa8 \xf0\x9f\x98\x80", 14);
    s3m_meta_unref(next);
    struct s3m_put_attrs attrs = {.meta = meta, .mode = 0600,
                                  .has_owner = true, .uid = 4242, .gid = 77,
                                  .mtime_ns = 1234567890123000000LL};
    CHECK_INT(s3m_store_put(store, "odd/\x01key \"q\" \\ \xff\xfe/ü", big,
                            big_len, &attrs, 0), 0);
    attrs = (struct s3m_put_attrs){.mode = 0750, .mtime_ns = -5000000};
    CHECK_INT(s3m_store_put(store, "dir/", NULL, 0, &attrs, 0), 0);
    CHECK_INT(s3m_store_put(store, "plain", "x", 1, NULL, 0), 0);
    /* chmod 0: put cannot say it, load must still keep it */
    int rc;
    struct s3m_object *object = s3m_store_open(store, "plain", &rc);
    struct s3m_attr_update update = {.flags = S3M_ATTR_MODE, .mode = 0};
    CHECK(object != NULL);
    CHECK_INT(s3m_object_set_attrs(store, object, &update), 0);
    s3m_object_unref(object);
    /* a sparse body: bytes, a hole of whole and partial chunks, bytes that
     * straddle a chunk boundary (chunks do not hold whole base64 groups) */
    CHECK_INT(s3m_store_put(store, "sparse", "ab", 2, NULL, 0), 0);
    object = s3m_store_open(store, "sparse", &rc);
    CHECK(object != NULL);
    CHECK_INT(s3m_object_write(store, object, 3 * 65536 - 2, "hole", 4), 0);
    CHECK_INT(s3m_object_truncate(store, object, 3 * 65536 + 7), 0);
    s3m_object_unref(object);
    CHECK_INT(s3m_format_save(store, path, NULL, &err), 0);
    struct s3m_store *again = load_or_null(path);
    if (again) {
        check_same_store(store, again, true);
        s3m_store_free(again);
    }
    /* s3db.js-visible fields are still plain JSON */
    json_error_t error;
    json_t *root = json_load_file(path, JSON_ALLOW_NUL, &error);
    CHECK(root != NULL);
    CHECK_INT(json_object_size(json_object_get(root, "objects")), 4);
    json_t *dir = json_object_get(json_object_get(root, "objects"), "dir/");
    CHECK_INT(json_integer_value(json_object_get(dir, "mode")), 0750);
    json_decref(root);
    s3m_meta_unref(meta);
    free(big);
    s3m_store_free(store);
}

/* Loading over a store shares the bodies that did not change (no new body
 * memory) and still takes every changed body from the file, and still
 * refuses an etag that does not match, even when the body is shared and
 * its MD5 is cached. */
static void test_load_over_shares_unchanged_bodies(void)
{
    struct s3m_store *store = new_store("over");
    const char *path = temp_path("over.json");
    struct s3m_error err = {0};
    size_t big_len = 200000, len = 0;
    char *big = malloc(big_len), etag[33], *text;

    for (size_t i = 0; i < big_len; i++)
        big[i] = (char)(i * 13 + i / 509);
    CHECK_INT(s3m_store_put(store, "same", big, big_len, NULL, 0), 0);
    CHECK_INT(s3m_store_put(store, "changed", "old bytes", 9, NULL, 0), 0);
    CHECK_INT(s3m_format_save(store, path, NULL, &err), 0);
    CHECK_INT(s3m_store_put(store, "changed", "new bytes!", 10, NULL, 0), 0);
    CHECK_INT(s3m_store_etag(store, "same", etag), 0);  /* MD5 now cached */

    uint64_t before = s3m_body_memory_used();
    struct s3m_store *loaded = NULL;
    CHECK_INT(s3m_format_load_over(path, NULL, store, &loaded, NULL, &err), 0);
    CHECK(s3m_body_memory_used() - before < 4096);  /* "same" was shared */
    if (loaded) {
        text = body_of(loaded, "same", &len);
        CHECK(text && len == big_len && memcmp(text, big, big_len) == 0);
        free(text);
        text = body_of(loaded, "changed", &len);
        CHECK_STR(text ? text : "(none)", "old bytes");
        free(text);
        s3m_store_free(loaded);
    }

    /* the same bytes under a wrong etag: refused, though shared */
    char *b64 = malloc(s3m_base64_encoded_length(big_len) + 1);
    s3m_base64_encode(big, big_len, b64);
    size_t doc_len = strlen(b64) + 200;
    char *doc = malloc(doc_len);
    snprintf(doc, doc_len, "{\"objects\": {\"same\": {\"body\": \"%s\", "
             "\"etag\": \"d41d8cd98f00b204e9800998ecf8427e\"}}}", b64);
    write_whole(path, doc, strlen(doc));
    loaded = NULL;
    CHECK_INT(s3m_format_load_over(path, NULL, store, &loaded, NULL, &err),
              -EINVAL);
    CHECK(loaded == NULL);
    CHECK(strstr(err.message, "object 'same': etag d41d8cd98f00b204e98009"
                              "98ecf8427e does not match the body") != NULL);
    free(doc);
    free(b64);
    free(big);
    s3m_store_free(store);
}

static void test_save_empty_store(void)
{
    struct s3m_store *store = new_store("empty");
    const char *path = temp_path("empty.json");
    struct s3m_error err = {0};
    size_t len;

    CHECK_INT(s3m_format_save(store, path, NULL, &err), 0);
    char *text = read_whole(path, &len);
    CHECK(text && strstr(text, "\"objectCount\": 0,\n  \"objects\": {}\n}"));
    free(text);
    struct s3m_store *again = load_or_null(path);
    if (again) {
        CHECK_INT(s3m_store_count(again, ""), 0);
        s3m_store_free(again);
    }
    s3m_store_free(store);
}

struct writer {
    struct s3m_store *store;
    atomic_bool stop;
    size_t puts;
};

static void *write_while_saving(void *arg)
{
    struct writer *writer = arg;
    char key[32], body[64];

    while (!atomic_load(&writer->stop)) {
        snprintf(key, sizeof(key), "w/%zu", writer->puts % 500);
        snprintf(body, sizeof(body), "body %zu", writer->puts);
        s3m_store_put(writer->store, key, body, strlen(body), NULL, 0);
        if (writer->puts % 7 == 0)
            s3m_store_delete(writer->store, key);
        writer->puts++;
    }
    return NULL;
}

/* Saves taken while another thread writes are each a consistent file. */
static void test_save_while_writing(void)
{
    struct writer writer = {.store = new_store("busy")};
    pthread_t thread;
    json_error_t error;

    pthread_create(&thread, NULL, write_while_saving, &writer);
    for (int i = 0; i < 5; i++) {
        struct s3m_error err = {0};
        const char *path = temp_path("busy.json");
        CHECK_INT(s3m_format_save(writer.store, path, NULL, &err), 0);
        json_t *root = json_load_file(path, 0, &error);
        CHECK(root != NULL);
        CHECK_INT(json_integer_value(json_object_get(root, "objectCount")),
                  json_object_size(json_object_get(root, "objects")));
        json_decref(root);
        struct s3m_store *loaded = load_or_null(path);
        if (loaded)
            s3m_store_free(loaded);
    }
    atomic_store(&writer.stop, true);
    pthread_join(thread, NULL);
    s3m_store_free(writer.store);
}

static void test_save_failures(void)
{
    struct s3m_store *store = new_store("fail");
    struct s3m_error err = {0};
    const char *file_parent = temp_path("a-file");
    char path[512];

    s3m_store_put(store, "k", "v", 1, NULL, 0);
    CHECK_INT(s3m_format_save(store, temp_path("no-such-dir/x.json"), NULL,
                              &err), -ENOENT);
    CHECK(strstr(err.message, "no-such-dir/x.json") != NULL);
    CHECK(strstr(err.message, "create temp file") != NULL);
    CHECK(strstr(err.message, "no such file or directory") != NULL);

    write_whole(file_parent, "x", 1);
    snprintf(path, sizeof(path), "%s/x.json", file_parent);
    s3m_error_clear(&err);
    CHECK_INT(s3m_format_save(store, path, NULL, &err), -ENOTDIR);
    CHECK(strstr(err.message, "not a directory") != NULL);

    /* /proc refuses new files even to root */
    s3m_error_clear(&err);
    int rc = s3m_format_save(store, "/proc/s3mem-test.json", NULL, &err);
    CHECK(rc == -EACCES || rc == -EROFS || rc == -ENOENT || rc == -EPERM);
    CHECK(err.code == -rc && strstr(err.message, "/proc/s3mem-test.json"));
    CHECK(access("/proc/s3mem-test.json", F_OK) != 0);

    /* a directory in the way of the rename: the temp file is removed */
    const char *blocked = temp_path("blocked");
    mkdir(blocked, 0755);
    snprintf(path, sizeof(path), "%s/inner", blocked);
    mkdir(path, 0755);
    s3m_error_clear(&err);
    CHECK_INT(s3m_format_save(store, blocked, NULL, &err), -EISDIR);
    CHECK(strstr(err.message, "rename") != NULL);
    snprintf(path, sizeof(path), "ls %s | grep -c blocked.tmp- >/dev/null",
             temp_root);
    CHECK(system(path) != 0);     /* no temp file left */

    /* saving over an existing file keeps its mode */
    const char *existing = temp_path("existing.json");
    write_whole(existing, "old", 3);
    chmod(existing, 0600);
    s3m_error_clear(&err);
    CHECK_INT(s3m_format_save(store, existing, NULL, &err), 0);
    struct stat st;
    CHECK_INT(stat(existing, &st), 0);
    CHECK_INT(st.st_mode & 0777, 0600);
    s3m_store_free(store);
}

static void test_load_refuses_bad_files(void)
{
    struct s3m_store *out = NULL;
    struct s3m_error err = {0};

    CHECK_INT(s3m_format_load(temp_path("missing.json"), NULL, &out, NULL,
                              &err), -ENOENT);
    CHECK(out == NULL);
    CHECK(strstr(err.message, "cannot read '") != NULL);
    CHECK(strstr(err.message, "missing.json': no such file") != NULL);

    check_load_refused("not json at all", EINVAL, "not valid JSON at line 1, column ");
    check_load_refused("[1, 2]", EINVAL, "top level is not a JSON object");
    check_load_refused("{\"bucket\": \"x\"}", EINVAL, "\"objects\" is missing");
    check_load_refused("{\"objects\": []}", EINVAL,
                       "\"objects\" is not an object");
    check_load_refused("{\"objects\": {\"k\": {\"body\": \"!!!!\"}}}", EINVAL,
                       "object 'k': \"body\" is not valid base64");
    check_load_refused("{\"objects\": {\"k\": {}}}", EINVAL,
                       "object 'k': \"body\" is missing");
    check_load_refused("{\"objects\": {\"k\": {\"body\": 5}}}", EINVAL,
                       "\"body\" is not a string");
    check_load_refused("{\"objects\": {\"k\": {\"body\": \"eA==\", "
                       "\"size\": 2}}}", EINVAL,
                       "object 'k': the body has 1 bytes but \"size\" says 2");
    check_load_refused("{\"objects\": {\"k\": {\"body\": \"eA==\", "
                       "\"size\": \"1\"}}}", EINVAL, "\"size\"");
    check_load_refused("{\"objects\": {\"k\": {\"body\": \"eA==\", "
                       "\"metadata\": {\"n\": 1}}}}", EINVAL,
                       "object 'k': metadata 'n' is not a string");
    check_load_refused("{\"objects\": {\"k\": {\"body\": \"eA==\", "
                       "\"metadata\": []}}}", EINVAL,
                       "\"metadata\" is not an object");
    check_load_refused("{\"objects\": {\"k\": {\"body\": \"eA==\", "
                       "\"lastModified\": \"yesterday\"}}}", EINVAL,
                       "\"lastModified\" is not an ISO 8601 time");
    check_load_refused("{\"objects\": {\"k\": {\"body\": \"eA==\", "
                       "\"contentType\": 3}}}", EINVAL,
                       "\"contentType\" is not a string");
    check_load_refused("{\"objects\": {\"k\": {\"body\": \"eA==\", "
                       "\"mode\": -1}}}", EINVAL, "\"mode\"");
    check_load_refused("{\"objects\": {\"\": {\"body\": \"\"}}}", EINVAL,
                       "the key is empty");
    check_load_refused("{\"objects\": {\"k\": {\"body\": \"eA==\", "
                       "\"etag\": \"d41d8cd98f00b204e9800998ecf8427e\"}}}",
                       EINVAL, "object 'k': etag d41d8cd98f00b204e9800998ecf"
                       "8427e does not match the body (md5 "
                       "9dd4e461268c8034f5c8564e155c67a6)");
    check_load_refused("{\"objects\": {\"k\": {\"body\": \"eA==\", "
                       "\"etag\": \"\\\"d41d8cd98f00b204e9800998ecf8427e\\\"\""
                       "}}}", EINVAL, "does not match the body");
    /* a multipart etag cannot be checked and is accepted */
    const char *path = temp_path("multipart.json");
    const char *multipart = "{\"objects\": {\"k\": {\"body\": \"eA==\", "
                            "\"etag\": \"abc-2\", \"size\": 1, "
                            "\"contentEncoding\": null}}}";
    write_whole(path, multipart, strlen(multipart));
    struct s3m_store *store = load_or_null(path);
    if (store) {
        char etag[33];
        CHECK_INT(s3m_store_etag(store, "k", etag), 0);
        CHECK_STR(etag, "9dd4e461268c8034f5c8564e155c67a6");
        s3m_store_free(store);
    }

    /* the shop file cut anywhere is refused with its line and column */
    size_t len;
    char *text = read_whole(FIXTURES "/shop.snapshot.json", &len);
    for (size_t cut = 1; text && cut < len; cut += len / 7) {
        char saved = text[cut];
        text[cut] = '\0';
        check_load_refused(text, EINVAL, "not valid JSON at line ");
        text[cut] = saved;
    }
    /* a changed etag in a real file names the key */
    char *etag = text ? strstr(text, "dd2e843409823500b8dbd87f539398e5") : NULL;
    if (etag) {
        etag[0] = 'e';
        check_load_refused(text, EINVAL, "object 'assets/readme.txt': etag "
                                         "ed2e843409823500b8dbd87f539398e5");
    }
    free(text);
}

/* Loading within the store's limits: enforce_limits applies. */
/* A save file of count objects "k<i>" with body "x" (etag of "x"), except
 * that object bad_etag (when < count) claims the etag of "" and object
 * bad_body (when < count) has a body that is not base64. New text. */
static char *many_objects(size_t count, size_t bad_etag, size_t bad_body)
{
    size_t cap = 64 + count * 96, len = 0;
    char *text = malloc(cap);
    if (!text)
        return NULL;
    len += (size_t)snprintf(text + len, cap - len, "{\"objects\": {");
    for (size_t i = 0; i < count; i++)
        len += (size_t)snprintf(text + len, cap - len,
                                "%s\"k%zu\": {\"body\": \"%s\", \"etag\": \"%s\"}",
                                i ? ", " : "", i, i == bad_body ? "!!!!" : "eA==",
                                i == bad_etag ? "d41d8cd98f00b204e9800998ecf8427e"
                                              : "9dd4e461268c8034f5c8564e155c67a6");
    snprintf(text + len, cap - len, "}}");
    return text;
}

/* Etags are checked on a second thread while parsing goes on: the first
 * mismatch must still be the one reported, before any later error, and
 * nothing must be loaded. */
static void test_load_checks_etags_in_order(void)
{
    char *text = many_objects(1000, 1000, 1000);
    const char *path = temp_path("many.json");
    if (text) {
        write_whole(path, text, strlen(text));
        struct s3m_store *store = load_or_null(path);
        CHECK(store != NULL);
        if (store) {
            char etag[33];
            CHECK_INT((int)s3m_store_count(store, NULL), 1000);
            CHECK_INT(s3m_store_etag(store, "k999", etag), 0);
            CHECK_STR(etag, "9dd4e461268c8034f5c8564e155c67a6");
            s3m_store_free(store);
        }
        free(text);
    }
    text = many_objects(1000, 700, 1000);
    if (text)
        check_load_refused(text, EINVAL, "object 'k700': etag d41d8cd98f00b204e98"
                           "00998ecf8427e does not match the body (md5 "
                           "9dd4e461268c8034f5c8564e155c67a6)");
    free(text);
    text = many_objects(1000, 3, 900);
    if (text)
        check_load_refused(text, EINVAL, "object 'k3': etag");
    free(text);
    text = many_objects(1000, 900, 3);
    if (text)
        check_load_refused(text, EINVAL, "object 'k3': \"body\" is not valid base64");
    free(text);
}

static void test_load_enforces_limits(void)
{
    struct s3m_store_config config = {.enforce_limits = true,
                                      .max_object_size = 4};
    struct s3m_store *out = NULL;
    struct s3m_error err = {0};

    CHECK_INT(s3m_format_load(FIXTURES "/edge.snapshot.json", &config, &out,
                              NULL, &err), -EFBIG);
    CHECK(out == NULL);
    CHECK(strstr(err.message, "object '") != NULL);
}

/* ---- s3db.js value encoding -------------------------------------------- */

static void check_encode(const char *value, const char *expected)
{
    char *out = NULL, *back = NULL;
    size_t len, back_len;
    bool is_null;

    CHECK_INT(s3m_format_s3db_value_encode(value, strlen(value), &out, &len),
              0);
    CHECK_STR(out, expected);
    CHECK_INT(s3m_format_s3db_value_decode(out, len, &back, &back_len,
                                           &is_null), 0);
    CHECK_STR(back, value);
    free(out);
    free(back);
}

static void test_s3db_value_encoding(void)
{
    /* values as s3db.js 12.4 encodes them */
    check_encode("plain ascii", "plain ascii");
    check_encode("", "");
    check_encode("Zoë Ünïcödé", "u:Zo%C3%AB%20%C3%9Cn%C3%AFc%C3%B6d%C3%A9");
    check_encode("ééé", "b:w6nDqcOp");
    check_encode("日本語", "b:5pel5pys6Kqe");
    check_encode("a\nb", "b:YQpi");
    check_encode("abcdefghij\n", "u:abcdefghij%0A");
    check_encode("x (y) 'z' *!~-_.", "x (y) 'z' *!~-_.");
    check_encode("é (y) 'z' *!~-_.", "u:%C3%A9%20(y)%20'z'%20*!~-_.");
    check_encode("a😀bcdefg", "u:a%F0%9F%98%80bcdefg");

    char *out;
    size_t len;
    bool is_null;
    CHECK_INT(s3m_format_s3db_value_decode("null", 4, &out, &len, &is_null), 0);
    CHECK(is_null);
    free(out);
    CHECK_INT(s3m_format_s3db_value_decode("u:%ZZ", 5, &out, &len, &is_null),
              0);
    CHECK_STR(out, "u:%ZZ");      /* malformed: kept */
    CHECK(!is_null);
    free(out);
    CHECK_INT(s3m_format_s3db_value_decode("u:%FF", 5, &out, &len, &is_null),
              0);
    CHECK_STR(out, "u:%FF");      /* not UTF-8: kept */
    free(out);
    CHECK_INT(s3m_format_s3db_value_decode("b:", 2, &out, &len, &is_null), 0);
    CHECK_STR(out, "b:");
    free(out);
    CHECK_INT(s3m_format_s3db_value_encode("\xff", 1, &out, &len), 0);
    CHECK_STR(out, "b:/w==");
    free(out);
}

/* Printable ASCII is checked eight bytes at a time: one byte just outside
 * 0x20..0x7e, at any place of a word or of the tail, must still be seen. */
static void test_s3db_value_plain_bounds(void)
{
    static const unsigned char outside[] = {0x01, 0x1f, 0x7f, 0x80, 0xc3};
    static const unsigned char inside[] = {0x20, 0x7e, 'a'};
    char value[18];

    for (size_t at = 0; at < 17; at++) {
        for (size_t k = 0; k < sizeof(outside); k++) {
            memset(value, 'x', 17);
            value[17] = '\0';
            value[at] = (char)outside[k];
            char *out;
            size_t len;
            CHECK_INT(s3m_format_s3db_value_encode(value, 17, &out, &len), 0);
            CHECK(len > 2 && out[1] == ':');      /* u: or b:, never as is */
            free(out);
        }
        for (size_t k = 0; k < sizeof(inside); k++) {
            memset(value, 'x', 17);
            value[17] = '\0';
            value[at] = (char)inside[k];
            check_encode(value, value);
        }
    }
}

/* ---- backups ------------------------------------------------------------ */

static void check_shop_records(struct s3m_store *store, bool with_posts)
{
    char *value;
    size_t len = 0;

    CHECK_INT(s3m_store_count(store, "resource=users/data/id="), 3);
    CHECK_INT(s3m_store_count(store, "resource=posts/data/id="),
              with_posts ? 2 : 0);
    value = meta_of(store, "resource=users/data/id=admin", "1");
    CHECK_STR(value, "Admin User");
    free(value);
    /* stored encoded, exactly as s3db.js had it */
    value = meta_of(store, "resource=users/data/id=u1", "1");
    CHECK_STR(value, "u:Zo%C3%AB%20%C3%9Cn%C3%AFc%C3%B6d%C3%A9");
    free(value);
    value = meta_of(store, "resource=users/data/id=u2", "1");
    CHECK_STR(value, "Bob \"quoted\" \\ back");
    free(value);
    value = meta_of(store, "resource=users/data/id=u2", "_v");
    CHECK_STR(value, "v1");
    free(value);
    value = meta_of(store, "resource=users/data/id=u2", "id");
    CHECK(value == NULL);
    char *body = body_of(store, "resource=users/data/id=u2", &len);
    CHECK(body != NULL);
    CHECK_INT(len, 0);
    free(body);
    if (with_posts) {
        value = meta_of(store, "resource=posts/data/id=p2", "3");
        CHECK(value && strncmp(value, "lorem ipsum", 11) == 0);
        free(value);
        value = meta_of(store, "resource=posts/data/id=p2", "_overflow");
        CHECK_STR(value, "true");
        free(value);
    }
}

static void test_import_fixture_backups(void)
{
    static const struct {
        const char *dir;
        bool posts;
    } cases[] = {
        {FIXTURES "/shop-backup-plain", true},
        {FIXTURES "/shop-backup-gz", true},
        {FIXTURES "/shop-backup-users-only", false},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        for (int clear = 0; clear < 2; clear++) {
            struct s3m_store *store = new_store("shop");
            struct s3m_import_options options = {.clear = clear};
            struct s3m_import_report report = {0};
            struct s3m_error err = {0};

            s3m_store_put(store, "other", "o", 1, NULL, 0);
            CHECK_INT(s3m_format_import_backup(store, cases[i].dir, &options,
                                               &report, &err), 0);
            if (err.code)
                fprintf(stderr, "  import: %s\n", err.message);
            check_shop_records(store, cases[i].posts);
            CHECK_INT(report.records, cases[i].posts ? 5 : 3);
            CHECK_INT(report.resources, cases[i].posts ? 2 : 1);
            CHECK_INT(report.error_count, 0);
            CHECK_INT(report.merges, 0);
            CHECK_INT(s3m_store_count(store, "other"), clear ? 0 : 1);
            CHECK_INT(s3m_store_count(store, ""),
                      (cases[i].posts ? 5 : 3) + (clear ? 0 : 1));
            char *json = s3m_import_report_json(&report);
            CHECK(json && strstr(json, "\"errorCount\":0"));
            free(json);
            s3m_import_report_release(&report);
            s3m_store_free(store);
        }
    }
}

/* Export of the loaded shop gives s3db.js's own files byte for byte. */
static void test_export_matches_fixture(void)
{
    struct s3m_store_config config = {.bucket = "shop"};
    struct s3m_store *store = NULL;
    struct s3m_export_options options;
    struct s3m_export_report report = {0};
    struct s3m_error err = {0};
    const char *dir = temp_path("export-plain");
    char path[512];
    size_t len, expected_len;

    CHECK_INT(s3m_format_load(FIXTURES "/shop.snapshot.json", &config, &store,
                              NULL, &err), 0);
    if (!store)
        return;
    s3m_export_options_init(&options);
    CHECK(options.compress);
    options.compress = false;
    CHECK_INT(s3m_format_export_backup(store, dir, &options, &report, &err), 0);
    if (err.code)
        fprintf(stderr, "  export: %s\n", err.message);
    CHECK_INT(report.resources, 2);
    CHECK_INT(report.records, 5);
    CHECK_INT(report.outside, 6); /* assets/..., deep/..., s3db.json, ... */
    static const char *const files[] = {"users.jsonl", "posts.jsonl"};
    for (size_t i = 0; i < 2; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
        char *mine = read_whole(path, &len);
        snprintf(path, sizeof(path), FIXTURES "/shop-backup-plain/%s",
                 files[i]);
        char *expected = read_whole(path, &expected_len);
        CHECK(mine && expected);
        CHECK_INT(len, expected_len);
        if (mine && expected && len == expected_len)
            CHECK_MEM(mine, expected, len);
        free(mine);
        free(expected);
    }
    snprintf(path, sizeof(path), "%s/s3db.json", dir);
    json_error_t error;
    json_t *mine = json_load_file(path, 0, &error);
    json_t *expected =
        json_load_file(FIXTURES "/shop-backup-plain/s3db.json", 0, &error);
    CHECK(mine && expected);
    static const char *const fields[] = {"version", "bucket", "keyPrefix",
                                         "compressed", "totalRecords",
                                         "totalSize"};
    for (size_t i = 0; i < 6; i++)
        CHECK(json_equal(json_object_get(mine, fields[i]),
                         json_object_get(expected, fields[i])));
    CHECK(json_is_string(json_object_get(mine, "timestamp")));
    CHECK_INT(json_object_size(json_object_get(mine, "resources")), 2);
    static const char *const names[] = {"users", "posts"};
    for (size_t i = 0; i < 2; i++) {
        json_t *a = json_object_get(json_object_get(mine, "resources"),
                                    names[i]);
        json_t *b = json_object_get(json_object_get(expected, "resources"),
                                    names[i]);
        CHECK(json_equal(json_object_get(a, "stats"),
                         json_object_get(b, "stats")));
    }
    json_decref(mine);
    json_decref(expected);
    /* s3db.json is laid out as JSON.stringify(_, null, 2) */
    char *text = read_whole(path, &len);
    CHECK(text && strncmp(text, "{\n  \"version\": \"1.0\",\n  \"timestamp\": ",
                          37) == 0);
    CHECK(text && strstr(text, "\"resources\": {\n    \"posts\": {\n"
                               "      \"stats\": {\n        \"recordCount\": 2,"
                               "\n        \"fileSize\": 4935\n      }\n    },"));
    CHECK(text && strstr(text, "\n  \"totalSize\": 5154\n}"));
    free(text);

    /* compressed: the same lines, gzip'd */
    const char *gz_dir = temp_path("export-gz");
    s3m_export_options_init(&options);
    CHECK_INT(s3m_format_export_backup(store, gz_dir, &options, &report, &err),
              0);
    for (size_t i = 0; i < 2; i++) {
        snprintf(path, sizeof(path), "%s/%s.gz", gz_dir, files[i]);
        char *lines = gunzip_whole(path, &len);
        snprintf(path, sizeof(path), FIXTURES "/shop-backup-plain/%s",
                 files[i]);
        char *expected_lines = read_whole(path, &expected_len);
        CHECK_INT(len, expected_len);
        if (len == expected_len)
            CHECK_MEM(lines, expected_lines, len);
        free(lines);
        free(expected_lines);
    }
    snprintf(path, sizeof(path), "%s/s3db.json", gz_dir);
    mine = json_load_file(path, 0, &error);
    CHECK(json_is_true(json_object_get(mine, "compressed")));
    CHECK_INT(json_integer_value(json_object_get(mine, "totalRecords")), 5);
    json_decref(mine);

    /* resources filter */
    const char *users_dir = temp_path("export-users");
    options.compress = false;
    options.resources = "users";
    CHECK_INT(s3m_format_export_backup(store, users_dir, &options, &report,
                                       &err), 0);
    snprintf(path, sizeof(path), "%s/users.jsonl", users_dir);
    CHECK(access(path, F_OK) == 0);
    snprintf(path, sizeof(path), "%s/posts.jsonl", users_dir);
    CHECK(access(path, F_OK) != 0);
    snprintf(path, sizeof(path), "%s/s3db.json", users_dir);
    mine = json_load_file(path, 0, &error);
    expected =
        json_load_file(FIXTURES "/shop-backup-users-only/s3db.json", 0, &error);
    CHECK(json_equal(json_object_get(mine, "resources"),
                     json_object_get(expected, "resources")));
    CHECK(json_equal(json_object_get(mine, "totalSize"),
                     json_object_get(expected, "totalSize")));
    json_decref(mine);
    json_decref(expected);
    s3m_store_free(store);
}

/* Partition references and odd keys are not records; ids from either key
 * form; bodies that are JSON objects, text, or empty; "null" values. */
static void test_export_record_shapes(void)
{
    struct s3m_store *store = new_store("shapes");
    struct s3m_export_options options = {.compress = false};
    struct s3m_export_report report = {0};
    struct s3m_error err = {0};
    const char *dir = temp_path("export-shapes");
    struct s3m_meta *meta = s3m_meta_with(NULL, "name", "b:w6nDqcOp", 10);
    struct s3m_meta *meta2 = s3m_meta_with(meta, "gone", "null", 4);
    struct s3m_put_attrs attrs = {.meta = meta2};
    char path[512];
    size_t len;

    s3m_store_put(store, "resource=things/data/id=a", "{\"b\":2,\"10\":1,\"2\":0}",
                  20, &attrs, 0);
    s3m_store_put(store, "resource=things/id=b", "just text\n", 10, NULL, 0);
    s3m_store_put(store, "resource=things/partition=byX/x=1/id=a", "", 0,
                  NULL, 0);
    s3m_store_put(store, "resource=things/data/id=c", "[1,2]", 5, NULL, 0);
    s3m_store_put(store, "resource=things/data/id=", "", 0, NULL, 0);
    s3m_store_put(store, "resource=things/data/id=d/e", "", 0, NULL, 0);
    s3m_store_put(store, "unrelated", "", 0, NULL, 0);
    CHECK_INT(s3m_format_export_backup(store, dir, &options, &report, &err), 0);
    CHECK_INT(report.records, 3);
    CHECK_INT(report.skipped, 3);
    CHECK_INT(report.outside, 1); /* "unrelated" */
    snprintf(path, sizeof(path), "%s/things.jsonl", dir);
    char *text = read_whole(path, &len);
    /* JavaScript's member order: integer-like names first */
    CHECK_STR(text,
              "{\"2\":0,\"10\":1,\"name\":\"ééé\",\"gone\":null,\"id\":\"a\","
              "\"b\":2}\n"
              "{\"id\":\"c\",\"_body\":\"[1,2]\"}\n"
              "{\"id\":\"b\",\"_body\":\"just text\\n\"}");
    free(text);

    /* import puts them where s3db.js resources read, encoded again */
    struct s3m_store *back = new_store("back");
    struct s3m_import_options import_options = {.clear = true};
    struct s3m_import_report import_report = {0};
    CHECK_INT(s3m_format_import_backup(back, dir, &import_options,
                                       &import_report, &err), 0);
    CHECK_INT(import_report.records, 3);
    char *value = meta_of(back, "resource=things/data/id=a", "name");
    CHECK_STR(value, "b:w6nDqcOp");
    free(value);
    value = meta_of(back, "resource=things/data/id=a", "gone");
    CHECK_STR(value, "null");
    free(value);
    value = meta_of(back, "resource=things/data/id=a", "10");
    CHECK_STR(value, "1");
    free(value);
    text = body_of(back, "resource=things/data/id=b", &len);
    CHECK_STR(text, "just text\n");
    free(text);
    s3m_import_report_release(&import_report);
    s3m_store_free(back);

    /* a filter that matches nothing */
    options.resources = "nope,nada";
    s3m_error_clear(&err);
    CHECK_INT(s3m_format_export_backup(store, temp_path("export-none"),
                                       &options, &report, &err), -ENOENT);
    CHECK(strstr(err.message, "no resource matches 'nope,nada'") != NULL);
    CHECK(strstr(err.message, "things") != NULL);
    CHECK(access(temp_path("export-none"), F_OK) != 0);

    /* the parent must exist */
    options.resources = NULL;
    s3m_error_clear(&err);
    CHECK_INT(s3m_format_export_backup(store, temp_path("none/deeper"),
                                       &options, &report, &err), -ENOENT);
    CHECK(strstr(err.message, "none/deeper") != NULL);
    s3m_meta_unref(meta);
    s3m_meta_unref(meta2);
    s3m_store_free(store);
}

/* export then import then export: the same files; the records' objects are
 * the same bytes as before. */
static void test_export_import_round_trip(void)
{
    struct s3m_store *store = load_or_null(FIXTURES "/shop.snapshot.json");
    struct s3m_export_options options = {.compress = true};
    struct s3m_import_options import_options = {.clear = true};
    struct s3m_import_report report = {0};
    struct s3m_error err = {0};
    const char *first = temp_path("trip-1"), *second = temp_path("trip-2");
    char a[512], b[512];
    size_t len_a, len_b;

    if (!store)
        return;
    /* records with empty bodies and several value encodings */
    const char *values[] = {"plain", "Zoë", "日本語", "a\tb", "{\"x\":1}", "7"};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        char *encoded, key[64];
        size_t encoded_len;
        s3m_format_s3db_value_encode(values[i], strlen(values[i]), &encoded,
                                     &encoded_len);
        struct s3m_meta *meta = s3m_meta_with(NULL, "v", encoded, encoded_len);
        struct s3m_put_attrs attrs = {.meta = meta};
        snprintf(key, sizeof(key), "resource=extra/data/id=r%zu", i);
        s3m_store_put(store, key, NULL, 0, &attrs, 0);
        s3m_meta_unref(meta);
        free(encoded);
    }
    CHECK_INT(s3m_format_export_backup(store, first, &options, NULL, &err), 0);
    struct s3m_store *back = new_store("shop");
    CHECK_INT(s3m_format_import_backup(back, first, &import_options, &report,
                                       &err), 0);
    CHECK_INT(report.records, 11);
    s3m_import_report_release(&report);
    CHECK_INT(s3m_format_export_backup(back, second, &options, NULL, &err), 0);
    static const char *const files[] = {"users.jsonl.gz", "posts.jsonl.gz",
                                        "extra.jsonl.gz"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(a, sizeof(a), "%s/%s", first, files[i]);
        snprintf(b, sizeof(b), "%s/%s", second, files[i]);
        char *x = gunzip_whole(a, &len_a), *y = gunzip_whole(b, &len_b);
        CHECK_INT(len_a, len_b);
        if (len_a == len_b)
            CHECK_MEM(x, y, len_a);
        free(x);
        free(y);
    }
    /* objects with empty bodies come back byte for byte */
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        char key[64];
        snprintf(key, sizeof(key), "resource=extra/data/id=r%zu", i);
        char *x = meta_of(store, key, "v"), *y = meta_of(back, key, "v");
        CHECK_STR(y, x);
        free(x);
        free(y);
    }
    char *x = meta_of(store, "resource=users/data/id=u1", "1");
    char *y = meta_of(back, "resource=users/data/id=u1", "1");
    CHECK_STR(y, x);
    free(x);
    free(y);
    s3m_store_free(back);
    s3m_store_free(store);
}

/* A backup built by hand in the temp directory. */
static const char *make_backup(const char *name, const char *manifest,
                               const char *file, const char *lines)
{
    const char *dir = temp_path(name);
    char path[512];

    mkdir(dir, 0755);
    snprintf(path, sizeof(path), "%s/s3db.json", dir);
    write_whole(path, manifest, strlen(manifest));
    if (file) {
        snprintf(path, sizeof(path), "%s/%s", dir, file);
        write_whole(path, lines, strlen(lines));
    }
    return dir;
}

static void test_import_merges_and_bad_lines(void)
{
    const char *dir = make_backup(
        "merge", "{\"resources\": {\"users\": {}}}", "users.jsonl",
        "{\"name\":\"Ann\",\"role\":\"x\",\"id\":\"u1\"}\n"
        "[1,2]\n"
        "\n"
        "{\"_v\":\"v1\",\"id\":\"u1\"}\n"
        "not json\n"
        "{\"no\":\"id\"}\n"
        "{\"_id\":7,\"n\":{\"a\":[1,2.5]},\"flag\":true,\"_body\":\"text\"}\n"
        "{\"id\":\"u1\",\"role\":\"admin\"}");
    struct s3m_store *store = new_store("merge");
    struct s3m_import_report report = {0};
    struct s3m_error err = {0};
    char *value;
    size_t len;

    s3m_store_put(store, "keep", "k", 1, NULL, 0);
    CHECK_INT(s3m_format_import_backup(store, dir, NULL, &report, &err), 0);
    CHECK_INT(report.records, 2);
    CHECK_INT(report.merges, 2);
    CHECK_INT(report.lines, 7);
    CHECK_INT(report.error_count, 3);
    CHECK_INT(report.errors_kept, 3);
    if (report.errors_kept == 3) {
        CHECK_INT(report.errors[0].line, 2);
        CHECK_INT(report.errors[1].line, 5);
        CHECK_INT(report.errors[2].line, 6);
        CHECK_STR(report.errors[0].file, "users.jsonl");
        CHECK_STR(report.errors[0].resource, "users");
        CHECK(strstr(report.errors[0].message, "not a JSON object") != NULL);
        CHECK(strstr(report.errors[2].message, "no \"id\"") != NULL);
    }
    char *json = s3m_import_report_json(&report);
    CHECK(json && strstr(json, "\"merges\":2") &&
          strstr(json, "{\"resource\":\"users\",\"file\":\"users.jsonl\","
                       "\"line\":2,"));
    free(json);
    s3m_import_report_release(&report);
    value = meta_of(store, "resource=users/data/id=u1", "name");
    CHECK_STR(value, "Ann");
    free(value);
    value = meta_of(store, "resource=users/data/id=u1", "role");
    CHECK_STR(value, "admin");
    free(value);
    value = meta_of(store, "resource=users/data/id=u1", "_v");
    CHECK_STR(value, "v1");
    free(value);
    value = meta_of(store, "resource=users/data/id=7", "n");
    CHECK_STR(value, "{\"a\":[1,2.5]}");
    free(value);
    value = meta_of(store, "resource=users/data/id=7", "flag");
    CHECK_STR(value, "true");
    free(value);
    value = body_of(store, "resource=users/data/id=7", &len);
    CHECK_STR(value, "text");
    free(value);
    CHECK_INT(s3m_store_count(store, ""), 3);

    /* with clear, the first bad line refuses the whole import */
    struct s3m_import_options options = {.clear = true};
    s3m_error_clear(&err);
    CHECK_INT(s3m_format_import_backup(store, dir, &options, &report, &err),
              -EINVAL);
    CHECK(strstr(err.message, "users.jsonl line 2: not a JSON object") !=
          NULL);
    CHECK_INT(s3m_store_count(store, ""), 3);
    CHECK(s3m_store_count(store, "keep") == 1);
    s3m_import_report_release(&report);
    s3m_store_free(store);
}

static void test_import_refuses_bad_backups(void)
{
    struct s3m_store *store = new_store("bad");
    struct s3m_import_options clear = {.clear = true};
    struct s3m_import_report report = {0};
    struct s3m_error err = {0};
    char path[512];

    s3m_store_put(store, "keep", "k", 1, NULL, 0);

    /* missing directory */
    CHECK_INT(s3m_format_import_backup(store, temp_path("nowhere"), &clear,
                                       &report, &err), -ENOENT);
    CHECK(strstr(err.message, "nowhere': no such file or directory") != NULL);
    s3m_import_report_release(&report);

    /* no s3db.json */
    const char *empty = temp_path("empty-backup");
    mkdir(empty, 0755);
    s3m_error_clear(&err);
    CHECK_INT(s3m_format_import_backup(store, empty, NULL, &report, &err),
              -ENOENT);
    CHECK(strstr(err.message, "empty-backup/s3db.json': no such file") != NULL);
    s3m_import_report_release(&report);

    /* s3db.json not JSON, or not an object */
    const char *not_json = make_backup("not-json", "{\"version\": ", NULL, NULL);
    s3m_error_clear(&err);
    CHECK_INT(s3m_format_import_backup(store, not_json, NULL, &report, &err),
              -EINVAL);
    CHECK(strstr(err.message, "s3db.json': not valid JSON at line 1") != NULL);
    s3m_import_report_release(&report);
    const char *array = make_backup("array", "[]", NULL, NULL);
    s3m_error_clear(&err);
    CHECK_INT(s3m_format_import_backup(store, array, NULL, &report, &err),
              -EINVAL);
    s3m_import_report_release(&report);

    /* a listed resource without its file */
    const char *missing = make_backup("missing-file",
                                      "{\"resources\": {\"ghost\": {}}}", NULL,
                                      NULL);
    s3m_error_clear(&err);
    CHECK_INT(s3m_format_import_backup(store, missing, NULL, &report, &err),
              -ENOENT);
    CHECK(strstr(err.message, "'ghost.jsonl'") != NULL);
    s3m_import_report_release(&report);

    /* a truncated .jsonl.gz, with and without clear */
    const char *cut = temp_path("truncated");
    mkdir(cut, 0755);
    snprintf(path, sizeof(path), "%s/s3db.json", cut);
    copy_file(FIXTURES "/shop-backup-gz/s3db.json", path);
    snprintf(path, sizeof(path), "%s/posts.jsonl.gz", cut);
    copy_file(FIXTURES "/shop-backup-gz/posts.jsonl.gz", path);
    size_t len;
    char *gz = read_whole(FIXTURES "/shop-backup-gz/users.jsonl.gz", &len);
    snprintf(path, sizeof(path), "%s/users.jsonl.gz", cut);
    write_whole(path, gz, len - 20);
    for (int with_clear = 0; with_clear < 2; with_clear++) {
        s3m_error_clear(&err);
        CHECK_INT(s3m_format_import_backup(store, cut,
                                           with_clear ? &clear : NULL, &report,
                                           &err), -EINVAL);
        CHECK(strstr(err.message, "users.jsonl.gz' is truncated") != NULL);
        CHECK_INT(s3m_store_count(store, ""), 1);
        s3m_import_report_release(&report);
    }
    /* corrupt data in the middle */
    gz[len / 2] ^= 0x55;
    write_whole(path, gz, len);
    s3m_error_clear(&err);
    CHECK_INT(s3m_format_import_backup(store, cut, NULL, &report, &err),
              -EINVAL);
    CHECK(strstr(err.message, "users.jsonl.gz'") != NULL);
    s3m_import_report_release(&report);
    /* not gzip at all */
    write_whole(path, "{\"id\":\"x\"}", 10);
    s3m_error_clear(&err);
    CHECK_INT(s3m_format_import_backup(store, cut, NULL, &report, &err),
              -EINVAL);
    CHECK(strstr(err.message, "not a gzip file") != NULL);
    s3m_import_report_release(&report);
    CHECK_INT(s3m_store_count(store, ""), 1);
    free(gz);

    /* a filter that matches nothing lists what there is */
    struct s3m_import_options filtered = {.resources = "orders"};
    s3m_error_clear(&err);
    CHECK_INT(s3m_format_import_backup(store, FIXTURES "/shop-backup-plain",
                                       &filtered, &report, &err), -ENOENT);
    CHECK(strstr(err.message, "no resource matches 'orders'; the backup has: "
                              "users, posts") != NULL);
    s3m_import_report_release(&report);
    CHECK_INT(s3m_store_count(store, ""), 1);

    /* a filter that matches one */
    filtered.resources = "posts, orders";
    CHECK_INT(s3m_format_import_backup(store, FIXTURES "/shop-backup-gz",
                                       &filtered, &report, &err), 0);
    CHECK_INT(report.records, 2);
    CHECK_INT(s3m_store_count(store, "resource=posts/"), 2);
    CHECK_INT(s3m_store_count(store, "resource=users/"), 0);
    s3m_import_report_release(&report);
    s3m_store_free(store);
}

/* Without a "resources" list (the BackupPlugin's shape), the files present
 * are read; key_prefix puts records under the mount's prefix; a store that
 * refuses a record (limits) reports it and takes the others. */
static void test_import_directory_listing_and_limits(void)
{
    const char *dir = make_backup("listing", "{\"type\": \"full\"}",
                                  "b.jsonl", "{\"id\":\"1\",\"x\":\"y\"}");
    char path[512];
    snprintf(path, sizeof(path), "%s/a.jsonl.gz", dir);
    gzFile gz = gzopen(path, "wb");
    gzputs(gz, "{\"id\":\"big\",\"v\":\"");
    for (int i = 0; i < 100; i++)
        gzputs(gz, "0123456789");
    gzputs(gz, "\"}\n{\"id\":\"small\"}\n");
    gzclose(gz);

    struct s3m_store_config config = {.enforce_limits = true,
                                      .metadata_limit = 100};
    struct s3m_store *store = s3m_store_new(&config);
    struct s3m_import_options options = {.key_prefix = "pre/"};
    struct s3m_import_report report = {0};
    struct s3m_error err = {0};

    CHECK_INT(s3m_format_import_backup(store, dir, &options, &report, &err), 0);
    CHECK_INT(report.resources, 2);
    CHECK_INT(report.records, 2);
    CHECK_INT(report.error_count, 1);
    if (report.errors_kept == 1) {
        CHECK_STR(report.errors[0].resource, "a");
        CHECK_INT(report.errors[0].line, 1);
        CHECK(strstr(report.errors[0].message, "no space") != NULL);
    }
    CHECK_INT(s3m_store_count(store, "pre/resource=a/data/id=small"), 1);
    CHECK_INT(s3m_store_count(store, "pre/resource=b/data/id=1"), 1);
    s3m_import_report_release(&report);

    /* with clear the refused record refuses everything */
    options.clear = true;
    s3m_error_clear(&err);
    CHECK_INT(s3m_format_import_backup(store, dir, &options, &report, &err),
              -EINVAL);
    CHECK(strstr(err.message, "a.jsonl.gz line 1") != NULL);
    CHECK_INT(s3m_store_count(store, ""), 2);
    s3m_import_report_release(&report);
    s3m_store_free(store);
}

/* ---- allocation failures ------------------------------------------------ */

/* Fails each allocation of fn in turn: each run must fail with -ENOMEM (or
 * succeed when the failure was harmless) and leak nothing (ASan). after,
 * when set, checks and resets the state with the hook off. */
static void fail_each_allocation(const char *what, int (*fn)(void *),
                                 void (*after)(void *, int), void *arg)
{
    size_t failures = 0;

    for (size_t nth = 1; nth < 100000; nth++) {
        s3m_alloc_fail_after(nth, false);
        int rc = fn(arg);
        size_t made = s3m_alloc_fail_after(0, false);
        if (after)
            after(arg, rc);
        if (rc != 0) {
            failures++;
            if (rc != -ENOMEM) {
                fprintf(stderr, "  %s: allocation %zu gave %d\n", what, nth,
                        rc);
                check_failures++;
            }
        }
        if (made < nth)
            break;                /* no allocation failed: done */
    }
    CHECK(failures > 0);
}

static int load_small(void *arg)
{
    struct s3m_store *store = NULL;
    struct s3m_error err = {0};
    int rc = s3m_format_load(FIXTURES "/edge.snapshot.json", NULL, &store,
                             NULL, &err);

    if (rc == 0) {
        CHECK_INT(s3m_store_count(store, ""), 7);
        s3m_store_free(store);
    } else {
        CHECK(store == NULL);
        CHECK_INT(err.code, -rc);
    }
    return rc;
}

static int import_small(void *arg)
{
    struct s3m_import_report report = {0};
    int rc = s3m_format_import_backup(arg, FIXTURES "/shop-backup-gz", NULL,
                                      &report, NULL);
    s3m_import_report_release(&report);
    return rc;
}

/* Without clear: all five records, or (undone) none. */
static void after_import(void *arg, int rc)
{
    CHECK_INT(s3m_store_count(arg, "resource="), rc == 0 ? 5 : 0);
    CHECK_INT(s3m_store_count(arg, "keep"), 1);
    s3m_store_clear(arg, NULL, NULL);
    s3m_store_put(arg, "keep", "k", 1, NULL, 0);
}

static int import_small_cleared(void *arg)
{
    struct s3m_import_options options = {.clear = true};
    return s3m_format_import_backup(arg, FIXTURES "/shop-backup-plain",
                                    &options, NULL, NULL);
}

static void after_import_cleared(void *arg, int rc)
{
    CHECK_INT(s3m_store_count(arg, ""), rc == 0 ? 5 : 1);
    CHECK_INT(s3m_store_count(arg, "keep"), rc == 0 ? 0 : 1);
    s3m_store_clear(arg, NULL, NULL);
    s3m_store_put(arg, "keep", "k", 1, NULL, 0);
}

static int save_small(void *arg)
{
    struct s3m_error err = {0};
    return s3m_format_save(arg, temp_path("alloc.json"), NULL, &err);
}

static int export_small(void *arg)
{
    struct s3m_export_options options = {.compress = false};
    return s3m_format_export_backup(arg, temp_path("alloc-export"), &options,
                                    NULL, NULL);
}

static void test_allocation_failures(void)
{
    fail_each_allocation("load", load_small, NULL, NULL);

    struct s3m_store *store = new_store("alloc");
    s3m_store_put(store, "keep", "k", 1, NULL, 0);
    fail_each_allocation("import", import_small, after_import, store);
    fail_each_allocation("import clear", import_small_cleared,
                         after_import_cleared, store);
    s3m_store_free(store);

    store = load_or_null(FIXTURES "/shop.snapshot.json");
    if (store) {
        fail_each_allocation("save", save_small, NULL, store);
        fail_each_allocation("export", export_small, NULL, store);
        s3m_store_free(store);
    }
}

int main(void)
{
    snprintf(temp_root, sizeof(temp_root), "/tmp/s3m-format-XXXXXX");
    if (!mkdtemp(temp_root)) {
        perror("mkdtemp");
        return 1;
    }
    /* jansson keeps its own malloc: it reports some of its allocation
     * failures as syntax errors, so failing them here would test jansson */
    RUN(test_load_shop_fixture);
    RUN(test_load_edge_fixture_and_round_trip);
    RUN(test_save_matches_s3db_layout);
    RUN(test_save_load_round_trip_everything);
    RUN(test_load_over_shares_unchanged_bodies);
    RUN(test_save_empty_store);
    RUN(test_save_while_writing);
    RUN(test_save_failures);
    RUN(test_load_refuses_bad_files);
    RUN(test_load_checks_etags_in_order);
    RUN(test_load_enforces_limits);
    RUN(test_s3db_value_encoding);
    RUN(test_s3db_value_plain_bounds);
    RUN(test_import_fixture_backups);
    RUN(test_export_matches_fixture);
    RUN(test_export_record_shapes);
    RUN(test_export_import_round_trip);
    RUN(test_import_merges_and_bad_lines);
    RUN(test_import_refuses_bad_backups);
    RUN(test_import_directory_listing_and_limits);
    RUN(test_allocation_failures);

    nftw(temp_root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    return CHECK_EXIT();
}
