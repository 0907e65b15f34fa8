/*
 * test_format_fuzz_regressions.c - bugs found by the libFuzzer targets in
 * tests/fuzz/, each reduced to the smallest backup that shows it. These
 * tests fail until the bugs are fixed; then fuzz_import can check them by
 * default (see S3MEM_FUZZ_STRICT in tests/fuzz/fuzz_import.c).
 */
#include "check.h"

#include "s3mem/format.h"

#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char temp_root[64];

static int remove_entry(const char *path, const struct stat *st, int type,
                        struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    return remove(path);
}

static void write_file(const char *dir, const char *name, const char *data,
                       size_t len)
{
    char path[256];
    FILE *file;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    file = fopen(path, "wb");
    CHECK(file != NULL);
    if (!file)
        return;
    CHECK(fwrite(data, 1, len, file) == len);
    CHECK(fclose(file) == 0);
}

/* New backup directory under temp_root with s3db.json "{}" and
 * users.jsonl holding len bytes of records. Returns its path (static). */
static const char *users_backup(const char *name, const char *records,
                                size_t len)
{
    static char dir[128];

    snprintf(dir, sizeof(dir), "%s/%s", temp_root, name);
    CHECK(mkdir(dir, 0700) == 0);
    write_file(dir, "s3db.json", "{}", 2);
    write_file(dir, "users.jsonl", records, len);
    return dir;
}

static struct s3m_store *new_store(void)
{
    struct s3m_store_config config = {.bucket = "fuzz"};
    struct s3m_store *store = s3m_store_new(&config);
    CHECK(store != NULL);
    return store;
}

/* True when text is JSON that jansson parses. */
static bool parses(const char *text)
{
    json_error_t error;
    json_t *value = text ? json_loads(text, 0, &error) : NULL;
    bool ok = value != NULL;

    json_decref(value);
    return ok;
}

/* The report's JSON text exists and parses. */
static void check_report_json(const struct s3m_import_report *report)
{
    char *text = s3m_import_report_json(report);
    CHECK(text != NULL);
    CHECK(parses(text));
    free(text);
}

/*
 * A bad line whose jansson error text ends inside a UTF-8 sequence: the
 * message "invalid escape near '"\<0xc3>'" holds a lone lead byte, and
 * s3m_import_report_json (json_pack "s") refuses it and returns NULL, as
 * if out of memory: .s3mem/status then loses the whole import report.
 * Found by fuzz_import (check_report: text != NULL).
 */
static void test_report_json_with_partial_utf8_in_message(void)
{
    static const char records[] = "{\"id\":\"\\\xc3\xab\"}";
    const char *dir = users_backup("partial-utf8", records, sizeof(records) - 1);
    struct s3m_store *store = new_store();
    struct s3m_import_report report = {0};
    struct s3m_error err = {0};

    CHECK_INT(s3m_format_import_backup(store, dir, NULL, &report, &err), 0);
    CHECK_INT(report.error_count, 1);
    check_report_json(&report);
    s3m_import_report_release(&report);
    s3m_store_free(store);
}

/*
 * Without clear, a record whose key is over 1024 bytes must be reported by
 * line and the rest imported (format.h). Instead put_record's undo lookup,
 * s3m_store_get(target, key, ...), fails with -ENAMETOOLONG, which is
 * taken for -ENOMEM: the whole import is undone and fails with "out of
 * memory". The id also holds 'é' across the 80-byte cut of "%.80s" in the
 * refusal message, which must still give valid report JSON.
 */
static void test_long_key_without_clear_is_a_bad_line(void)
{
    char records[2048];
    size_t len = (size_t)snprintf(records, sizeof(records),
                                  "{\"id\":\"ok\",\"a\":\"1\"}\n{\"id\":\"");
    for (int i = 0; i < 79; i++)
        records[len++] = 'a';
    for (int i = 0; i < 600; i++) {
        records[len++] = '\xc3';
        records[len++] = '\xa9';
    }
    records[len++] = '"';
    records[len++] = '}';
    const char *dir = users_backup("long-key", records, len);
    struct s3m_store *store = new_store();
    struct s3m_import_report report = {0};
    struct s3m_error err = {0};

    CHECK_INT(s3m_format_import_backup(store, dir, NULL, &report, &err), 0);
    if (err.code)
        fprintf(stderr, "  import said: %s\n", err.message);
    CHECK_INT(report.lines, 2);
    CHECK_INT(report.records, 1);
    CHECK_INT(report.error_count, 1);
    CHECK_INT(report.errors_kept, 1);
    if (report.errors_kept == 1)
        CHECK_INT(report.errors[0].line, 2);
    CHECK_INT(s3m_store_head(store, "resource=users/data/id=ok", NULL), 0);
    check_report_json(&report);
    s3m_import_report_release(&report);
    s3m_store_free(store);
}

/*
 * format.h: report->errors are "in file and line order". A record the
 * store refuses (here: an empty field name, line 1) is reported when the
 * records are applied, after every line that failed to parse (line 2), so
 * the errors come out as line 2, line 1.
 */
static void test_errors_in_line_order(void)
{
    static const char records[] = "{\"id\":\"a\",\"\":\"x\"}\nnot json";
    const char *dir = users_backup("order", records, sizeof(records) - 1);
    struct s3m_store *store = new_store();
    struct s3m_import_report report = {0};
    struct s3m_error err = {0};

    CHECK_INT(s3m_format_import_backup(store, dir, NULL, &report, &err), 0);
    CHECK_INT(report.error_count, 2);
    CHECK_INT(report.errors_kept, 2);
    if (report.errors_kept == 2) {
        CHECK_INT(report.errors[0].line, 1);
        CHECK_INT(report.errors[1].line, 2);
    }
    s3m_import_report_release(&report);
    s3m_store_free(store);
}

int main(void)
{
    snprintf(temp_root, sizeof(temp_root), "/tmp/s3mem-fuzzreg-XXXXXX");
    if (!mkdtemp(temp_root)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_report_json_with_partial_utf8_in_message);
    RUN(test_long_key_without_clear_is_a_bad_line);
    RUN(test_errors_in_line_order);
    nftw(temp_root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    return CHECK_EXIT();
}
