/*
 * fuzz_load.c - libFuzzer target for s3m_format_load (the s3db.js save
 * file). The input is the file. It is handed over as /proc/self/fd/N of a
 * memfd (no disk), or as a file in the scratch directory when memfd_create
 * is missing.
 *
 * Invariants: a failed load leaves *out untouched and fills the error; a
 * successful one reports as many objects as the store holds, and the store
 * survives s3m_format_save then s3m_format_load unchanged (keys, bodies,
 * metadata, content type and encoding, mode, owner, mtime to the
 * millisecond the file keeps).
 *
 * Seeds: tests/fixtures/s3db-12.4.0/ *.snapshot.json.
 */
#include "fuzz_common.h"

#include <sys/mman.h>

#include "s3mem/format.h"

static int memory_fd = -1;
static char input_path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_setup();
    memory_fd = memfd_create("s3mem-fuzz-load", MFD_CLOEXEC);
    if (memory_fd >= 0)
        snprintf(input_path, sizeof(input_path), "/proc/self/fd/%d",
                 memory_fd);
    else
        snprintf(input_path, sizeof(input_path), "%s", fuzz_path("input.json"));
    return 0;
}

static void put_input(const uint8_t *data, size_t size)
{
    if (memory_fd < 0) {
        fuzz_write_file(input_path, data, size);
        return;
    }
    FUZZ_CHECK(ftruncate(memory_fd, 0) == 0);
    for (size_t at = 0; at < size;) {
        ssize_t done = pwrite(memory_fd, data + at, size - at, (off_t)at);
        FUZZ_CHECK(done > 0);
        at += (size_t)done;
    }
}

static int64_t floor_ms(int64_t ns)
{
    int64_t q = ns / 1000000;
    return ns % 1000000 < 0 ? q - 1 : q;
}

static bool same_text(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void check_same_meta(const struct s3m_meta *a, const struct s3m_meta *b)
{
    size_t a_count = a ? a->count : 0, b_count = b ? b->count : 0;

    FUZZ_CHECK(strcmp(s3m_meta_content_type(a), s3m_meta_content_type(b)) == 0);
    FUZZ_CHECK(same_text(a ? a->content_encoding : NULL,
                         b ? b->content_encoding : NULL));
    FUZZ_CHECK(a_count == b_count);
    for (size_t i = 0; i < a_count; i++) {
        const struct s3m_meta_entry *mine = &a->entries[i];
        const struct s3m_meta_entry *theirs = s3m_meta_find(b, mine->name);
        FUZZ_CHECK(theirs != NULL);
        FUZZ_CHECK(strcmp(theirs->name, mine->name) == 0);
        FUZZ_CHECK(theirs->value_len == mine->value_len);
        FUZZ_CHECK(memcmp(theirs->value, mine->value, mine->value_len) == 0);
    }
}

static void check_same_body(const struct s3m_body *a, const struct s3m_body *b)
{
    uint64_t size = s3m_body_size(a);
    FUZZ_CHECK(s3m_body_size(b) == size);
    if (size == 0)
        return;
    unsigned char *x = malloc(size), *y = malloc(size);
    FUZZ_CHECK(x && y);
    FUZZ_CHECK(s3m_body_read(a, 0, x, size) == size);
    FUZZ_CHECK(s3m_body_read(b, 0, y, size) == size);
    FUZZ_CHECK(memcmp(x, y, size) == 0);
    free(x);
    free(y);
}

/* foreach visitor over the first store: the same object is in the second. */
static int check_object(void *ctx, const char *key,
                        const struct s3m_object_info *info,
                        struct s3m_body *body)
{
    struct s3m_store *again = ctx;
    struct s3m_object_info other;
    struct s3m_body *other_body = NULL;

    FUZZ_CHECK(s3m_store_get(again, key, &other, &other_body) == 0);
    FUZZ_CHECK(other.size == info->size);
    FUZZ_CHECK(other.mode == info->mode);
    FUZZ_CHECK(other.uid == info->uid);
    FUZZ_CHECK(other.gid == info->gid);
    FUZZ_CHECK(floor_ms(other.mtime_ns) == floor_ms(info->mtime_ns));
    check_same_meta(info->meta, other.meta);
    check_same_body(body, other_body);
    s3m_body_unref(other_body);
    s3m_object_info_release(&other);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct s3m_store_config config = {.bucket = "fuzz", .default_uid = 1000,
                                      .default_gid = 1000};
    struct s3m_store *sentinel = (struct s3m_store *)&memory_fd;
    struct s3m_store *store = sentinel, *again = sentinel;
    struct s3m_load_report report = {0}, report_again = {0};
    struct s3m_save_report saved = {0};
    struct s3m_error err = {0};
    int rc;

    put_input(data, size);
    rc = s3m_format_load(input_path, &config, &store, &report, &err);
    if (rc) {
        FUZZ_CHECK(rc < 0);
        FUZZ_CHECK(store == sentinel);
        FUZZ_CHECK(err.code == -rc);
        FUZZ_CHECK(err.message[0] != '\0');
        return 0;
    }
    FUZZ_CHECK(store != sentinel && store != NULL);
    FUZZ_CHECK(err.code == 0);
    FUZZ_CHECK(report.objects == s3m_store_count(store, ""));

    /* what was loaded saves and loads back unchanged */
    const char *saved_path = fuzz_path("saved.json");
    rc = s3m_format_save(store, saved_path, &saved, &err);
    if (rc)
        fprintf(stderr, "save failed: %s\n", err.message);
    FUZZ_CHECK(rc == 0);
    FUZZ_CHECK(saved.objects == report.objects);
    rc = s3m_format_load(saved_path, &config, &again, &report_again, &err);
    if (rc)
        fprintf(stderr, "load of the saved file failed: %s\n", err.message);
    FUZZ_CHECK(rc == 0);
    FUZZ_CHECK(report_again.objects == report.objects);
    FUZZ_CHECK(report_again.body_bytes == report.body_bytes);
    FUZZ_CHECK(s3m_store_foreach(store, NULL, check_object, again) == 0);
    s3m_store_free(again);
    s3m_store_free(store);
    return 0;
}
