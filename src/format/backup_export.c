/*
 * backup_export.c - writes a backup directory as s3db.js's exportBackup
 * does: <resource>.jsonl[.gz] per resource and s3db.json.
 *
 * Design note: the store is copied (copy-on-write) into a private snapshot
 * and walked twice in key order under the prefix "resource=": once to learn
 * which resources hold records (so a bad filter fails before anything is
 * written), once to stream the records. A resource's keys are contiguous in
 * key order (they share "resource=<name>/"), so one file is open at a time
 * and each record is written as soon as it is built; nothing grows with the
 * store but the list of resource names. s3db.json is written last, through
 * a temp file and a rename, so its presence marks a complete backup.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

struct resource_stats {
    char *name;
    size_t records;
    uint64_t file_size;
};

struct export_state {
    const char *dir;
    bool compress;
    size_t prefix_len;            /* of key_prefix + "resource=" */
    size_t key_prefix_len;
    char **filter;                /* NULL = every resource */
    struct s3m_error *err;
    int rc;

    /* first pass: resources that hold records, in key order */
    char **names;
    size_t name_count, name_cap;

    /* second pass */
    struct resource_stats *stats; /* one per file written */
    size_t stat_count;
    struct resource_stats *current;
    char *current_path;           /* owned */
    struct fmt_out out;
    size_t skipped;
    size_t seen;                  /* keys under key_prefix + "resource=" */
    size_t records;
    char **created;               /* paths written, for clean-up */
    size_t created_count;
    unsigned char *buffer;        /* a body */
    size_t buffer_cap;
};

enum key_kind { KEY_OTHER, KEY_NOT_RECORD, KEY_RECORD };

/* Splits rest (a key after key_prefix + "resource=") into the resource name
 * and the record id. */
static enum key_kind parse_key(const char *rest, const char **name,
                               size_t *name_len, const char **id,
                               size_t *id_len)
{
    const char *slash = strchr(rest, '/'), *after;

    if (!slash || slash == rest)
        return KEY_OTHER;
    *name = rest;
    *name_len = (size_t)(slash - rest);
    after = slash + 1;
    if (strncmp(after, "data/id=", 8) == 0)
        *id = after + 8;
    else if (strncmp(after, "id=", 3) == 0)
        *id = after + 3;
    else
        return KEY_NOT_RECORD;
    *id_len = strlen(*id);
    if (*id_len == 0 || memchr(*id, '/', *id_len))
        return KEY_NOT_RECORD;
    return KEY_RECORD;
}

static int fail_nomem(struct export_state *state)
{
    state->rc = s3m_error_set(state->err, ENOMEM,
                              "cannot export to '%s': out of memory",
                              state->dir);
    return 1;
}

static int collect_name(void *arg, const char *key,
                        const struct s3m_object_info *info,
                        struct s3m_body *body)
{
    struct export_state *state = arg;
    const char *name = NULL, *id = NULL;
    size_t name_len = 0, id_len = 0;

    if (parse_key(key + state->prefix_len, &name, &name_len, &id, &id_len) !=
        KEY_RECORD)
        return 0;
    if (state->name_count &&
        strlen(state->names[state->name_count - 1]) == name_len &&
        memcmp(state->names[state->name_count - 1], name, name_len) == 0)
        return 0;
    if (state->name_count + 1 >= state->name_cap) {
        size_t cap = state->name_cap ? state->name_cap * 2 : 8;
        char **names = s3m_realloc(state->names, cap * sizeof(*names));
        if (!names)
            return fail_nomem(state);
        state->names = names;
        state->name_cap = cap;
    }
    state->names[state->name_count] = s3m_strndup(name, name_len);
    if (!state->names[state->name_count])
        return fail_nomem(state);
    state->names[++state->name_count] = NULL;
    return 0;
}

/* Closes the current file and records its size. */
static int finish_file(struct export_state *state)
{
    struct stat st;
    int rc = fmt_out_flush(&state->out) ? -state->out.error : 0;

    if (state->out.gz) {
        int zrc = gzclose_w(state->out.gz);
        if (!rc && zrc != Z_OK)
            rc = fmt_zlib_errno(zrc);
    } else if (state->out.file) {
        if (fclose(state->out.file) != 0 && !rc)
            rc = -errno;
    }
    state->out = (struct fmt_out){0};
    if (!rc && stat(state->current_path, &st) != 0)
        rc = -errno;
    if (rc) {
        state->rc = s3m_error_set(state->err, rc,
                                  "cannot export to '%s': write '%s': %s",
                                  state->dir, state->current_path,
                                  s3m_format_errno_text(rc));
        return 1;
    }
    state->current->file_size = (uint64_t)st.st_size;
    state->current = NULL;
    free(state->current_path);
    state->current_path = NULL;
    return 0;
}

static int open_file(struct export_state *state, const char *name,
                     size_t name_len)
{
    struct resource_stats *stats = &state->stats[state->stat_count];
    size_t path_len;
    char *file_name;
    int rc;

    stats->name = s3m_strndup(name, name_len);
    state->stat_count++;          /* even when NULL: freed at the end */
    file_name = s3m_malloc(name_len + sizeof(".jsonl.gz"));
    if (!stats->name || !file_name) {
        free(file_name);
        return fail_nomem(state);
    }
    memcpy(file_name, name, name_len);
    strcpy(file_name + name_len, state->compress ? ".jsonl.gz" : ".jsonl");
    state->current_path = fmt_path_join(state->dir, file_name);
    free(file_name);
    if (!state->current_path)
        return fail_nomem(state);
    state->current = stats;
    path_len = strlen(state->current_path);
    state->created[state->created_count] = s3m_memdup(state->current_path,
                                                      path_len + 1);
    if (!state->created[state->created_count])
        return fail_nomem(state);
    state->created_count++;
    errno = 0;
    /* level 1, zlib's fastest: export of 20,000 records took 80 ms instead
     * of 115 ms at the default level 6, for a file 1.7x larger; s3db.js
     * reads any level */
    if (state->compress)
        state->out.gz = gzopen(state->current_path, "wb1e");
    else
        state->out.file = fopen(state->current_path, "we");
    if (!state->out.gz && !state->out.file) {
        rc = errno ? -errno : -ENOMEM;
        state->rc = s3m_error_set(state->err, rc,
                                  "cannot export to '%s': create '%s': %s",
                                  state->dir, state->current_path,
                                  s3m_format_errno_text(rc));
        state->created_count--;
        free(state->created[state->created_count]);
        return 1;
    }
    return 0;
}

/* Adds the metadata entries to record, decoded as s3db.js decodes them. */
static int add_metadata(json_t *record, const struct s3m_meta *meta)
{
    for (size_t i = 0; meta && i < meta->count; i++) {
        const struct s3m_meta_entry *entry = &meta->entries[i];
        char *decoded;
        size_t len;
        bool is_null;
        json_t *value;

        if (s3m_format_s3db_value_decode(entry->value, entry->value_len,
                                         &decoded, &len, &is_null))
            return -ENOMEM;
        value = is_null ? json_null() : json_stringn_nocheck(decoded, len);
        free(decoded);
        if (!value || json_object_setn_new_nocheck(record, entry->name,
                                                   strlen(entry->name), value))
            return -ENOMEM;
    }
    return 0;
}

/* Adds the body: its members when it is a JSON object, else "_body". */
static int add_body(struct export_state *state, json_t *record,
                    const struct s3m_body *body, uint64_t size)
{
    json_t *parsed = NULL, *text;

    if (size == 0)
        return 0;
    if (size > SIZE_MAX - 1)
        return -ENOMEM;
    if (state->buffer_cap < size) {
        unsigned char *buffer = s3m_realloc(state->buffer, (size_t)size);
        if (!buffer)
            return -ENOMEM;
        state->buffer = buffer;
        state->buffer_cap = (size_t)size;
    }
    s3m_body_read(body, 0, state->buffer, (size_t)size);
    if (state->buffer[0] == '{') {
        struct fmt_json_error error;
        parsed = fmt_json_parse((const char *)state->buffer, (size_t)size,
                                &error);
        if (!parsed && error.code == -ENOMEM)
            return -ENOMEM;
    }
    if (json_is_object(parsed)) {
        int rc = json_object_update(record, parsed) ? -ENOMEM : 0;
        json_decref(parsed);
        return rc;
    }
    json_decref(parsed);
    text = json_stringn_nocheck((const char *)state->buffer, (size_t)size);
    if (!text || json_object_set_new_nocheck(record, "_body", text))
        return -ENOMEM;
    return 0;
}

static int export_record(void *arg, const char *key,
                         const struct s3m_object_info *info,
                         struct s3m_body *body)
{
    struct export_state *state = arg;
    const char *name = NULL, *id = NULL;
    size_t name_len = 0, id_len = 0;
    enum key_kind kind;
    json_t *record, *existing;
    int rc;

    state->seen++;
    kind = parse_key(key + state->prefix_len, &name, &name_len, &id, &id_len);
    if (kind == KEY_OTHER)
        return 0;
    if (state->current && (strlen(state->current->name) != name_len ||
                           memcmp(state->current->name, name, name_len) != 0)) {
        if (finish_file(state))
            return 1;
    }
    if (state->filter) {
        char *wanted = s3m_strndup(name, name_len);
        if (!wanted)
            return fail_nomem(state);
        bool selected = fmt_list_has(state->filter, wanted);
        free(wanted);
        if (!selected)
            return 0;
    }
    if (kind == KEY_NOT_RECORD) {
        state->skipped++;
        return 0;
    }
    if (!state->current && open_file(state, name, name_len))
        return 1;

    record = json_object();
    if (!record)
        return fail_nomem(state);
    rc = add_metadata(record, info->meta);
    if (!rc) {
        existing = json_object_get(record, "id");
        if (!existing || json_is_null(existing) ||
            (json_is_string(existing) && json_string_length(existing) == 0)) {
            json_t *id_value = json_stringn_nocheck(id, id_len);
            if (!id_value || json_object_set_new_nocheck(record, "id", id_value))
                rc = -ENOMEM;
        }
    }
    if (!rc)
        rc = add_body(state, record, body, info->size);
    if (rc) {
        json_decref(record);
        return fail_nomem(state);
    }
    if (state->current->records)
        fmt_out_write(&state->out, "\n", 1);
    fmt_out_json_js(&state->out, record);
    json_decref(record);
    state->current->records++;
    state->records++;
    if (state->out.error) {
        finish_file(state);   /* reports the error */
        return 1;
    }
    return 0;
}

/* Creates dir when missing; it must be a directory. */
static int make_directory(const char *dir, struct s3m_error *err)
{
    struct stat st;
    int rc;

    if (mkdir(dir, 0755) == 0)
        return 0;
    rc = -errno;
    if (rc == -EEXIST) {
        if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
            return 0;
        rc = -ENOTDIR;
    }
    return s3m_error_set(err, rc, "cannot create backup directory '%s': %s",
                         dir, s3m_format_errno_text(rc));
}

static void write_manifest_body(struct fmt_out *out, struct export_state *state,
                                const char *bucket, const char *key_prefix,
                                uint64_t total_size)
{
    char when[32];

    s3m_time_format_iso(s3m_time_now_ns(), when);
    fmt_out_printf(out, "{\n  \"version\": \"1.0\",\n  \"timestamp\": \"%s\",\n"
                        "  \"bucket\": ", when);
    fmt_out_json_string(out, bucket, strlen(bucket), FMT_BAD_UTF8_REPLACE);
    fmt_out_text(out, ",\n  \"keyPrefix\": ");
    fmt_out_json_string(out, key_prefix, strlen(key_prefix),
                        FMT_BAD_UTF8_REPLACE);
    fmt_out_printf(out, ",\n  \"compressed\": %s,\n  \"resources\": {",
                   state->compress ? "true" : "false");
    for (size_t i = 0; i < state->stat_count; i++) {
        const struct resource_stats *stats = &state->stats[i];
        fmt_out_text(out, i ? ",\n    " : "\n    ");
        fmt_out_json_string(out, stats->name, strlen(stats->name),
                            FMT_BAD_UTF8_REPLACE);
        fmt_out_printf(out, ": {\n      \"stats\": {\n"
                            "        \"recordCount\": %zu,\n"
                            "        \"fileSize\": %llu\n      }\n    }",
                       stats->records, (unsigned long long)stats->file_size);
    }
    fmt_out_printf(out, "%s,\n  \"totalRecords\": %zu,\n"
                        "  \"totalSize\": %llu\n}",
                   state->stat_count ? "\n  }" : "}", state->records,
                   (unsigned long long)total_size);
}

/* Writes s3db.json through a temp file and a rename. */
static int write_manifest(struct export_state *state, const char *bucket,
                          const char *key_prefix, uint64_t total_size)
{
    char *temp = fmt_path_join(state->dir, "s3db.json.tmp-XXXXXX");
    char *path = fmt_path_join(state->dir, "s3db.json");
    struct fmt_out out = {0};
    const char *step = "create";
    int fd = -1, rc = 0;

    if (!temp || !path) {
        free(temp);
        free(path);
        return s3m_error_set(state->err, ENOMEM,
                             "cannot export to '%s': out of memory",
                             state->dir);
    }
    fd = mkostemp(temp, O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        goto fail;
    }
    fchmod(fd, 0644);
    out.file = fdopen(fd, "w");
    if (!out.file) {
        rc = -errno;
        close(fd);
        unlink(temp);
        goto fail;
    }
    step = "write";
    write_manifest_body(&out, state, bucket, key_prefix, total_size);
    rc = -fmt_out_flush(&out);
    if (!rc && fflush(out.file) != 0)
        rc = -errno;
    if (!rc && fsync(fileno(out.file)) != 0)
        rc = -errno;
    if (fclose(out.file) != 0 && !rc)
        rc = -errno;
    if (!rc && rename(temp, path) != 0) {
        step = "rename";
        rc = -errno;
    }
    if (rc) {
        unlink(temp);
        goto fail;
    }
    free(temp);
    free(path);
    return 0;
fail:
    s3m_error_set(state->err, rc, "cannot export to '%s': %s '%s': %s",
                  state->dir, step, path, s3m_format_errno_text(rc));
    free(temp);
    free(path);
    return rc;
}

/* The message listing what exists, for a filter that matched nothing. */
static int no_match(struct export_state *state, const char *filter)
{
    char list[256];
    size_t used = 0;

    list[0] = '\0';
    for (size_t i = 0; i < state->name_count && used < sizeof(list) - 8; i++) {
        int n = snprintf(list + used, sizeof(list) - used, "%s%s",
                         i ? ", " : "", state->names[i]);
        if (n < 0 || (size_t)n >= sizeof(list) - used) {
            strcpy(list + (used < sizeof(list) - 4 ? used : sizeof(list) - 4),
                   "...");
            break;
        }
        used += (size_t)n;
    }
    return s3m_error_set(state->err, ENOENT,
                         "cannot export to '%s': no resource matches '%s'; "
                         "%s%s", state->dir, filter,
                         state->name_count ? "the store has: "
                                           : "the store has no resources",
                         list);
}

void s3m_export_options_init(struct s3m_export_options *options)
{
    *options = (struct s3m_export_options){.compress = true};
}

int s3m_format_export_backup(struct s3m_store *store, const char *dir,
                             const struct s3m_export_options *options,
                             struct s3m_export_report *report,
                             struct s3m_error *err)
{
    struct s3m_export_options defaults;
    struct export_state state = {.dir = dir, .err = err};
    struct s3m_store *snapshot = NULL;
    char *prefix = NULL;
    const char *key_prefix;
    size_t filter_count, selected = 0, outside = 0;
    uint64_t total_size = 0;
    int rc;

    if (!options) {
        s3m_export_options_init(&defaults);
        options = &defaults;
    }
    key_prefix = options->key_prefix ? options->key_prefix : "";
    state.compress = options->compress;
    state.key_prefix_len = strlen(key_prefix);
    state.prefix_len = state.key_prefix_len + strlen("resource=");
    prefix = s3m_malloc(state.prefix_len + 1);
    if (!prefix || fmt_split_list(options->resources, &state.filter,
                                  &filter_count)) {
        rc = s3m_error_set(err, ENOMEM, "cannot export to '%s': out of memory",
                           dir);
        goto out;
    }
    memcpy(prefix, key_prefix, state.key_prefix_len);
    strcpy(prefix + state.key_prefix_len, "resource=");

    snapshot = s3m_store_snapshot(store);
    if (!snapshot) {
        rc = s3m_error_set(err, ENOMEM,
                           "cannot export to '%s': out of memory taking a "
                           "snapshot", dir);
        goto out;
    }
    s3m_store_foreach(snapshot, prefix, collect_name, &state);
    if (state.rc) {
        rc = state.rc;
        goto out;
    }
    for (size_t i = 0; i < state.name_count; i++)
        if (!state.filter || fmt_list_has(state.filter, state.names[i]))
            selected++;
    if (state.filter && selected == 0) {
        rc = no_match(&state, options->resources);
        goto out;
    }
    state.stats = s3m_calloc(selected + 1, sizeof(*state.stats));
    state.created = s3m_calloc(selected + 1, sizeof(*state.created));
    if (!state.stats || !state.created) {
        rc = s3m_error_set(err, ENOMEM, "cannot export to '%s': out of memory",
                           dir);
        goto out;
    }
    rc = make_directory(dir, err);
    if (rc)
        goto out;
    s3m_store_foreach(snapshot, prefix, export_record, &state);
    if (!state.rc && state.current)
        finish_file(&state);
    rc = state.rc;
    if (rc)
        goto out;
    outside = s3m_store_count(snapshot, key_prefix) - state.seen;
    s3m_store_free(snapshot);
    snapshot = NULL;
    for (size_t i = 0; i < state.stat_count; i++)
        total_size += state.stats[i].file_size;
    rc = write_manifest(&state, s3m_store_bucket(store), key_prefix,
                        total_size);
    if (rc)
        goto out;
    if (report) {
        report->resources = state.stat_count;
        report->records = state.records;
        report->skipped = state.skipped;
        report->outside = outside;
        report->total_size = total_size;
    }
out:
    if (state.out.gz)
        gzclose_w(state.out.gz);
    if (state.out.file)
        fclose(state.out.file);
    for (size_t i = 0; i < state.created_count; i++) {
        if (rc)
            unlink(state.created[i]);
        free(state.created[i]);
    }
    free(state.created);
    for (size_t i = 0; i < state.stat_count; i++)
        free(state.stats[i].name);
    free(state.stats);
    free(state.current_path);
    fmt_free_list(state.names);
    fmt_free_list(state.filter);
    free(state.buffer);
    free(prefix);
    if (snapshot)
        s3m_store_free(snapshot);
    return rc;
}
