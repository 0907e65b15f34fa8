/*
 * fuzz_import.c - libFuzzer target for s3m_format_import_backup.
 *
 * Input: one flag byte, then s3db.json up to the first NUL byte (a valid
 * s3db.json holds none), then the resource file. Flags:
 *   bits 0-1  how the resource file is written: 0 <name>.jsonl as is;
 *             1 <name>.jsonl.gz, gzip of the bytes (zlib); 2 the bytes as
 *             is under <name>.jsonl.gz (not gzip, or a mutated gzip);
 *             3 gzip of the bytes with its last (bits 5-7) + 1 bytes cut
 *   bit 2     the resource is "posts" (else "users")
 *   bit 3     key_prefix "p/"
 *   bit 4     the resources filter names the resource ("users" or "posts")
 *   bit 5     also an empty <other>.jsonl, for manifests that list both
 *
 * Each input is imported twice, into fresh stores that already hold two
 * objects: without clear, then with clear. Invariants: a failing call
 * leaves the store as it was; without clear, every non-blank line is a
 * record, a merge or an error (lines == records + merges + error_count) and
 * no old key is lost; with clear, success leaves exactly the records and
 * failure stores nothing; the report's JSON is valid; nothing fails with
 * -ENOMEM; the report's errors are in line order. (These last three found
 * bugs, fixed since: tests/unit/test_format_fuzz_regressions.c.)
 *
 * Seeds: built by run.sh from tests/fixtures/s3db-12.4.0/shop-backup-*.
 */
#include "fuzz_common.h"

#include <zlib.h>

#include "s3mem/format.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define OLD_KEY "keep/me"
#define OLD_RECORD_KEY "resource=users/data/id=admin"

static const char *backup_dir;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_setup();
    backup_dir = fuzz_path("backup");
    FUZZ_CHECK(mkdir(backup_dir, 0700) == 0);
    backup_dir = strdup(backup_dir);
    FUZZ_CHECK(backup_dir != NULL);
    return 0;
}

static const char *backup_file(const char *name)
{
    static char path[600];
    snprintf(path, sizeof(path), "%s/%s", backup_dir, name);
    return path;
}

static void clear_backup(void)
{
    static const char *const names[] = {
        "s3db.json", "users.jsonl", "users.jsonl.gz", "posts.jsonl",
        "posts.jsonl.gz"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        unlink(backup_file(names[i]));
}

/* New gzip of len bytes (zlib, gzip wrapper); sets *out_len. */
static unsigned char *gzip_bytes(const uint8_t *data, size_t len,
                                 size_t *out_len)
{
    z_stream stream = {0};
    FUZZ_CHECK(deflateInit2(&stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED,
                            15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK);
    size_t cap = deflateBound(&stream, len) + 32;
    unsigned char *out = malloc(cap);
    FUZZ_CHECK(out != NULL);
    stream.next_in = (Bytef *)data;
    stream.avail_in = (uInt)len;
    stream.next_out = out;
    stream.avail_out = (uInt)cap;
    FUZZ_CHECK(deflate(&stream, Z_FINISH) == Z_STREAM_END);
    *out_len = stream.total_out;
    deflateEnd(&stream);
    return out;
}

static struct s3m_store *store_with_old_objects(void)
{
    struct s3m_store_config config = {.bucket = "fuzz", .default_uid = 1000,
                                      .default_gid = 1000};
    struct s3m_store *store = s3m_store_new(&config);
    FUZZ_CHECK(store != NULL);
    FUZZ_CHECK(s3m_store_put(store, OLD_KEY, "old", 3, NULL, 0) == 0);
    FUZZ_CHECK(s3m_store_put(store, OLD_RECORD_KEY, "older", 5, NULL, 0) == 0);
    return store;
}

/* The store holds exactly the two objects it was made with. */
static void check_untouched(struct s3m_store *store)
{
    struct s3m_body *body = NULL;
    char bytes[8];

    FUZZ_CHECK(s3m_store_count(store, "") == 2);
    FUZZ_CHECK(s3m_store_get(store, OLD_KEY, NULL, &body) == 0);
    FUZZ_CHECK(s3m_body_read(body, 0, bytes, sizeof(bytes)) == 3);
    FUZZ_CHECK(memcmp(bytes, "old", 3) == 0);
    s3m_body_unref(body);
    body = NULL;
    FUZZ_CHECK(s3m_store_get(store, OLD_RECORD_KEY, NULL, &body) == 0);
    FUZZ_CHECK(s3m_body_read(body, 0, bytes, sizeof(bytes)) == 5);
    FUZZ_CHECK(memcmp(bytes, "older", 5) == 0);
    s3m_body_unref(body);
}

static void check_report(const struct s3m_import_report *report)
{
    size_t kept = report->error_count < S3M_IMPORT_ERRORS_MAX
                      ? report->error_count : S3M_IMPORT_ERRORS_MAX;
    FUZZ_CHECK(report->errors_kept == kept);
    for (size_t i = 0; i < report->errors_kept; i++) {
        FUZZ_CHECK(report->errors[i].resource && report->errors[i].file &&
                   report->errors[i].message);
        FUZZ_CHECK(report->errors[i].line >= 1);
    }
    /* "in file and line order" (format.h) */
    for (size_t i = 1; i < report->errors_kept; i++) {
        const struct s3m_import_error *a = &report->errors[i - 1];
        const struct s3m_import_error *b = &report->errors[i];
        if (strcmp(a->file, b->file) == 0 && a->line > b->line) {
            for (size_t k = 0; k < report->errors_kept; k++)
                fprintf(stderr, "error %zu: %s line %zu: %s\n", k,
                        report->errors[k].file, report->errors[k].line,
                        report->errors[k].message);
            FUZZ_CHECK(a->line <= b->line);
        }
    }
    /* NULL only on -ENOMEM (format.h) */
    char *text = s3m_import_report_json(report);
    FUZZ_CHECK(text != NULL);
    json_error_t error;
    json_t *parsed = json_loads(text, 0, &error);
    FUZZ_CHECK(json_is_object(parsed));
    json_decref(parsed);
    free(text);
}

static void import_once(const struct s3m_import_options *options)
{
    struct s3m_store *store = store_with_old_objects();
    struct s3m_import_report report = {0};
    struct s3m_error err = {0};
    int rc = s3m_format_import_backup(store, backup_dir, options, &report,
                                      &err);

    if (rc) {
        FUZZ_CHECK(rc < 0);
        /* inputs this small never run out of memory */
        FUZZ_CHECK(rc != -ENOMEM);
        FUZZ_CHECK(err.code == -rc && err.message[0]);
        FUZZ_CHECK(report.records == 0);
        check_untouched(store);
    } else if (options->clear) {
        FUZZ_CHECK(err.code == 0);
        FUZZ_CHECK(report.error_count == 0);
        FUZZ_CHECK(report.lines == report.records + report.merges);
        FUZZ_CHECK(s3m_store_count(store, "") == report.records);
        FUZZ_CHECK(s3m_store_count(store, OLD_KEY) == 0);
    } else {
        FUZZ_CHECK(err.code == 0);
        FUZZ_CHECK(report.lines ==
                   report.records + report.merges + report.error_count);
        FUZZ_CHECK(s3m_store_count(store, OLD_KEY) == 1);
        FUZZ_CHECK(s3m_store_count(store, "") >= 2);
        FUZZ_CHECK(s3m_store_count(store, "") <= 2 + report.records);
    }
    check_report(&report);
    s3m_import_report_release(&report);
    s3m_store_free(store);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned flags = data[0];
    const uint8_t *rest = data + 1;
    size_t rest_len = size - 1;
    const uint8_t *nul = memchr(rest, '\0', rest_len);
    size_t manifest_len = nul ? (size_t)(nul - rest) : rest_len;
    const uint8_t *records = nul ? nul + 1 : rest + rest_len;
    size_t records_len = (size_t)(rest + rest_len - records);
    const char *name = flags & 4 ? "posts" : "users";
    const char *other = flags & 4 ? "users" : "posts";
    char file[32];

    clear_backup();
    fuzz_write_file(backup_file("s3db.json"), rest, manifest_len);
    switch (flags & 3) {
    case 0:
        snprintf(file, sizeof(file), "%s.jsonl", name);
        fuzz_write_file(backup_file(file), records, records_len);
        break;
    case 2:
        snprintf(file, sizeof(file), "%s.jsonl.gz", name);
        fuzz_write_file(backup_file(file), records, records_len);
        break;
    default: {
        size_t gz_len, cut = (flags & 3) == 3 ? (flags >> 5) + 1u : 0;
        unsigned char *gz = gzip_bytes(records, records_len, &gz_len);
        snprintf(file, sizeof(file), "%s.jsonl.gz", name);
        fuzz_write_file(backup_file(file), gz, gz_len > cut ? gz_len - cut : 0);
        free(gz);
        break;
    }
    }
    if (flags & 32) {
        snprintf(file, sizeof(file), "%s.jsonl", other);
        fuzz_write_file(backup_file(file), "", 0);
    }

    struct s3m_import_options options = {
        .clear = false,
        .resources = flags & 16 ? name : NULL,
        .key_prefix = flags & 8 ? "p/" : NULL,
    };
    import_once(&options);
    options.clear = true;
    import_once(&options);
    return 0;
}
