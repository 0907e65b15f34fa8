/*
 * backup_import.c - reads a backup directory (s3db.json plus
 * <resource>.jsonl[.gz]) into the store, as s3db.js's importBackup does but
 * at the keys s3db.js resources read, merging duplicate ids.
 *
 * Design note: two phases. First every selected file is read (gzip or
 * plain, line by line) and its records are collected per resource, flat,
 * by id (import_records.c), merging repeats; a file that cannot be read
 * or a truncated gzip stream stops here, before the store is touched.
 * Then the records are applied: with clear, into a new store that is
 * swapped in only when all went in; without clear, into the store itself,
 * reporting records it refuses and undoing everything on -ENOMEM.
 */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "internal.h"

#define READ_PIECE (64 * 1024)

struct import_resource {
    char *name;
    char *files[2];           /* file names within the backup directory */
    size_t file_count;
    struct import_records records;  /* by id, in first-seen order */
};

struct import_state {
    const char *dir;
    bool clear;
    s3m_store_diff_fn changed;     /* with clear, for the swap */
    void *changed_ctx;
    const char *key_prefix;
    struct s3m_error *err;
    struct s3m_import_report report;
    struct import_resource *resources;
    size_t resource_count;
    struct import_line line;  /* the line being read, reused */
};

/* ---- the report -------------------------------------------------------- */

void s3m_import_report_release(struct s3m_import_report *report)
{
    if (!report)
        return;
    for (size_t i = 0; i < report->errors_kept; i++) {
        free(report->errors[i].resource);
        free(report->errors[i].file);
        free(report->errors[i].message);
    }
    free(report->errors);
    *report = (struct s3m_import_report){0};
}

char *s3m_import_report_json(const struct s3m_import_report *report)
{
    json_t *root, *errors;
    char *text = NULL, *copy = NULL;

    errors = json_array();
    for (size_t i = 0; errors && i < report->errors_kept; i++) {
        const struct s3m_import_error *e = &report->errors[i];
        /* names and messages may hold cut or foreign bytes: JSON needs UTF-8 */
        char *resource = e->resource ? s3m_utf8_sanitize(e->resource) : NULL;
        char *file = e->file ? s3m_utf8_sanitize(e->file) : NULL;
        char *message = e->message ? s3m_utf8_sanitize(e->message) : NULL;
        json_t *item = json_pack("{s:s?,s:s?,s:I,s:s?}", "resource", resource,
                                 "file", file, "line", (json_int_t)e->line,
                                 "message", message);
        free(resource);
        free(file);
        free(message);
        if (!item || json_array_append_new(errors, item)) {
            json_decref(errors);
            return NULL;
        }
    }
    if (!errors)
        return NULL;
    root = json_pack("{s:I,s:I,s:I,s:I,s:I,s:o}", "resources",
                     (json_int_t)report->resources, "lines",
                     (json_int_t)report->lines, "records",
                     (json_int_t)report->records, "merges",
                     (json_int_t)report->merges, "errorCount",
                     (json_int_t)report->error_count, "errors", errors);
    if (!root)
        return NULL;
    text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (text) {
        copy = s3m_strdup(text);
        free(text);
    }
    return copy;
}

/* Records one bad line; returns 0 or -ENOMEM. */
__attribute__((format(printf, 5, 6)))
static int report_error(struct import_state *state, const char *resource,
                        const char *file, size_t line, const char *format, ...)
{
    struct s3m_import_report *report = &state->report;
    struct s3m_import_error *e;
    char message[256];
    va_list args;

    report->error_count++;
    if (report->errors_kept >= S3M_IMPORT_ERRORS_MAX)
        return 0;
    if (!report->errors) {
        report->errors = s3m_calloc(S3M_IMPORT_ERRORS_MAX,
                                    sizeof(*report->errors));
        if (!report->errors)
            return -ENOMEM;
    }
    va_start(args, format);
    vsnprintf(message, sizeof(message), format, args);
    va_end(args);
    e = &report->errors[report->errors_kept];
    e->resource = s3m_strdup(resource);
    e->file = s3m_strdup(file);
    e->message = s3m_strdup(message);
    e->line = line;
    report->errors_kept++;
    if (!e->resource || !e->file || !e->message)
        return -ENOMEM;
    return 0;
}

static int out_of_memory(struct import_state *state)
{
    return s3m_error_set(state->err, ENOMEM,
                         "cannot import '%s': out of memory", state->dir);
}

/* ---- choosing the files ------------------------------------------------ */

/* 1 when dir/name is a regular file, 0 when not, or -ENOMEM. */
static int regular_file(const char *dir, const char *name)
{
    char *path = fmt_path_join(dir, name);
    struct stat st;
    int regular;

    if (!path)
        return -ENOMEM;
    regular = stat(path, &st) == 0 && S_ISREG(st.st_mode);
    free(path);
    return regular;
}

static struct import_resource *add_resource(struct import_state *state,
                                            const char *name, size_t len,
                                            size_t *cap)
{
    struct import_resource *resource;

    if (state->resource_count == *cap) {
        size_t more = *cap ? *cap * 2 : 8;
        struct import_resource *grown =
            s3m_realloc(state->resources, more * sizeof(*grown));
        if (!grown)
            return NULL;
        state->resources = grown;
        *cap = more;
    }
    resource = &state->resources[state->resource_count];
    *resource = (struct import_resource){0};
    resource->name = s3m_strndup(name, len);
    if (!resource->name)
        return NULL;
    state->resource_count++;
    return resource;
}

static int add_file(struct import_resource *resource, const char *file)
{
    resource->files[resource->file_count] = s3m_strdup(file);
    if (!resource->files[resource->file_count])
        return -ENOMEM;
    resource->file_count++;
    return 0;
}

/* The resources s3db.json lists, each with the file that holds it. */
static int resources_from_manifest(struct import_state *state,
                                   const json_t *listed, bool compressed)
{
    size_t cap = 0, len;
    const char *name;
    json_t *value;

    json_object_keylen_foreach((json_t *)listed, name, len, value) {
        char *plain, *gz;
        const char *chosen = NULL;

        if (len == 0 || strlen(name) != len || strchr(name, '/'))
            return s3m_error_set(state->err, EINVAL,
                                 "cannot import '%s': s3db.json lists a "
                                 "resource name that cannot be a file name",
                                 state->dir);
        plain = s3m_malloc(len + sizeof(".jsonl"));
        gz = s3m_malloc(len + sizeof(".jsonl.gz"));
        if (!plain || !gz) {
            free(plain);
            free(gz);
            return out_of_memory(state);
        }
        strcpy(plain, name);
        strcat(plain, ".jsonl");
        strcpy(gz, name);
        strcat(gz, ".jsonl.gz");
        int first = regular_file(state->dir, compressed ? gz : plain);
        int second = first ? 0 : regular_file(state->dir,
                                              compressed ? plain : gz);
        if (first < 0 || second < 0) {
            free(plain);
            free(gz);
            return out_of_memory(state);
        }
        if (first)
            chosen = compressed ? gz : plain;
        else if (second)
            chosen = compressed ? plain : gz;
        if (!chosen) {
            int rc = s3m_error_set(state->err, ENOENT,
                                   "cannot import '%s': s3db.json lists "
                                   "resource '%s' but there is no '%s' or "
                                   "'%s'", state->dir, name, plain, gz);
            free(plain);
            free(gz);
            return rc;
        }
        struct import_resource *resource = add_resource(state, name, len, &cap);
        int rc = resource ? add_file(resource, chosen) : -ENOMEM;
        free(plain);
        free(gz);
        if (rc)
            return out_of_memory(state);
    }
    return 0;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every <name>.jsonl and <name>.jsonl.gz in the directory, in name order. */
static int resources_from_directory(struct import_state *state)
{
    DIR *dir = opendir(state->dir);
    char **names = NULL;
    size_t count = 0, names_cap = 0, cap = 0;
    struct dirent *entry;
    int rc = 0;

    if (!dir) {
        rc = -errno;
        return s3m_error_set(state->err, rc, "cannot read '%s': %s",
                             state->dir, s3m_format_errno_text(rc));
    }
    while ((entry = readdir(dir))) {
        size_t len = strlen(entry->d_name);
        bool plain = len > 6 && strcmp(entry->d_name + len - 6, ".jsonl") == 0;
        bool gz = len > 9 && strcmp(entry->d_name + len - 9, ".jsonl.gz") == 0;
        if (!plain && !gz)
            continue;
        int regular = regular_file(state->dir, entry->d_name);
        if (regular < 0) {
            rc = -ENOMEM;
            break;
        }
        if (!regular)
            continue;
        if (count == names_cap) {
            size_t more = names_cap ? names_cap * 2 : 8;
            char **grown = s3m_realloc(names, more * sizeof(*grown));
            if (!grown) {
                rc = -ENOMEM;
                break;
            }
            names = grown;
            names_cap = more;
        }
        names[count] = s3m_strdup(entry->d_name);
        if (!names[count]) {
            rc = -ENOMEM;
            break;
        }
        count++;
    }
    closedir(dir);
    if (!rc)
        qsort(names, count, sizeof(*names), compare_names);
    for (size_t i = 0; !rc && i < count; i++) {
        size_t len = strlen(names[i]);
        size_t name_len = len - (names[i][len - 1] == 'z' ? 9 : 6);
        struct import_resource *last =
            state->resource_count ? &state->resources[state->resource_count - 1]
                                  : NULL;
        if (!last || strlen(last->name) != name_len ||
            memcmp(last->name, names[i], name_len) != 0) {
            last = add_resource(state, names[i], name_len, &cap);
            if (!last) {
                rc = -ENOMEM;
                break;
            }
        }
        rc = add_file(last, names[i]);
    }
    for (size_t i = 0; i < count; i++)
        free(names[i]);
    free(names);
    return rc ? out_of_memory(state) : 0;
}

static void resource_release(struct import_resource *resource)
{
    free(resource->name);
    free(resource->files[0]);
    free(resource->files[1]);
    import_records_release(&resource->records);
}

/* Keeps the resources the filter names; -ENOENT when none. */
static int apply_filter(struct import_state *state, const char *filter_text)
{
    char **filter;
    size_t count, kept = 0;
    char list[256];
    size_t used = 0;

    if (fmt_split_list(filter_text, &filter, &count))
        return out_of_memory(state);
    if (!filter)
        return 0;
    list[0] = '\0';
    for (size_t i = 0; i < state->resource_count; i++) {
        struct import_resource *resource = &state->resources[i];
        if (used < sizeof(list) - 1) {
            int n = snprintf(list + used, sizeof(list) - used, "%s%s",
                             i ? ", " : "", resource->name);
            used = n < 0 ? used : used + (size_t)n;
        }
        if (fmt_list_has(filter, resource->name))
            state->resources[kept++] = *resource;
        else
            resource_release(resource);
    }
    fmt_free_list(filter);
    state->resource_count = kept;
    if (kept == 0)
        return s3m_error_set(state->err, ENOENT,
                             "cannot import '%s': no resource matches '%s'; "
                             "%s%s", state->dir, filter_text,
                             list[0] ? "the backup has: "
                                     : "the backup has no resources", list);
    return 0;
}

/* ---- reading records --------------------------------------------------- */

/* A bad line: all or nothing with clear, else reported. */
__attribute__((format(printf, 5, 6)))
static int bad_line(struct import_state *state,
                    const struct import_resource *resource, const char *file,
                    size_t line, const char *format, ...)
{
    char message[256];
    va_list args;

    va_start(args, format);
    vsnprintf(message, sizeof(message), format, args);
    va_end(args);
    if (state->clear)
        return s3m_error_set(state->err, EINVAL,
                             "cannot import '%s': %s line %zu: %s",
                             state->dir, file, line, message);
    if (report_error(state, resource->name, file, line, "%s", message))
        return out_of_memory(state);
    return 0;
}

static bool blank(const char *text, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!strchr(" \t\r\n\v\f", text[i]) || text[i] == '\0')
            return false;
    return true;
}

static int take_line(struct import_state *state,
                     struct import_resource *resource, size_t file_index,
                     size_t line, const char *text, size_t len)
{
    const char *file = resource->files[file_index];
    struct fmt_json_error error;
    const char *id;
    size_t id_len;
    int rc;

    if (blank(text, len))
        return 0;
    state->report.lines++;
    rc = import_line_parse(&state->line, text, len, &error);
    if (rc == 1) {            /* not an object: valid JSON, or which error */
        json_t *value = fmt_json_parse(text, len, &error);
        json_decref(value);
        if (value)
            return bad_line(state, resource, file, line, "not a JSON object");
        rc = -1;
    }
    if (rc < 0) {
        if (error.code == -ENOMEM)
            return out_of_memory(state);
        return bad_line(state, resource, file, line,
                        "not a JSON object: %s at column %d", error.text,
                        error.column);
    }
    id = import_line_id(&state->line, &id_len);
    if (!id || memchr(id, '/', id_len) || strlen(id) != id_len)
        return bad_line(state, resource, file, line,
                        id ? "the id holds '/' or NUL"
                           : "the record has no \"id\" or \"_id\"");
    rc = import_records_add(&resource->records, id, id_len, &state->line,
                            file_index, line);
    if (rc < 0)
        return out_of_memory(state);
    state->report.merges += (size_t)rc;
    return 0;
}

/* Reads one file line by line (gzip or plain; a .gz must be gzip). */
static int read_file(struct import_state *state,
                     struct import_resource *resource, size_t file_index)
{
    const char *file = resource->files[file_index];
    size_t file_len = strlen(file);
    bool must_be_gzip = file_len > 3 && strcmp(file + file_len - 3, ".gz") == 0;
    char *path = fmt_path_join(state->dir, file);
    char *piece = s3m_malloc(READ_PIECE);
    char *line = NULL;
    size_t line_len = 0, line_cap = 0, line_number = 0;
    bool checked = false;
    gzFile gz = NULL;
    int rc = 0, zlib_code;

    if (!path || !piece) {
        rc = out_of_memory(state);
        goto out;
    }
    errno = 0;
    gz = gzopen(path, "rbe");
    if (!gz) {
        rc = errno ? -errno : -ENOMEM;
        s3m_error_set(state->err, rc, "cannot read '%s': %s", path,
                      s3m_format_errno_text(rc));
        goto out;
    }
    for (;;) {
        int got = gzread(gz, piece, READ_PIECE);
        if (got <= 0) {
            /* the end, or an error: a truncated stream ends in an error,
             * checked before the last (partial) line is looked at */
            gzerror(gz, &zlib_code);
            if (got < 0 || zlib_code != Z_OK) {
                rc = fmt_zlib_errno(zlib_code);
                if (rc == 0 || rc == -EINVAL)
                    rc = s3m_error_set(state->err, EINVAL,
                                       "cannot import '%s': '%s' is truncated "
                                       "or corrupt (%s)", state->dir, path,
                                       gzerror(gz, &zlib_code));
                else
                    s3m_error_set(state->err, rc, "cannot read '%s': %s",
                                  path, s3m_format_errno_text(rc));
                goto out;
            }
            if (line_len > 0)
                rc = take_line(state, resource, file_index, line_number + 1,
                               line, line_len);
            break;
        }
        if (!checked && must_be_gzip && gzdirect(gz)) {
            rc = s3m_error_set(state->err, EINVAL,
                               "cannot import '%s': '%s' is not a gzip file",
                               state->dir, path);
            goto out;
        }
        checked = true;
        for (size_t at = 0; at < (size_t)got;) {
            const char *newline = memchr(piece + at, '\n', (size_t)got - at);
            size_t take = newline ? (size_t)(newline - (piece + at))
                                  : (size_t)got - at;
            if (line_len + take + 1 > line_cap) {
                size_t more = (line_len + take + 1) * 2;
                char *grown = s3m_realloc(line, more);
                if (!grown) {
                    rc = out_of_memory(state);
                    goto out;
                }
                line = grown;
                line_cap = more;
            }
            memcpy(line + line_len, piece + at, take);
            line_len += take;
            at += take;
            if (!newline)
                break;
            line_number++;
            rc = take_line(state, resource, file_index, line_number, line,
                           line_len);
            line_len = 0;
            if (rc)
                goto out;
            at++;         /* past the newline */
        }
    }
out:
    if (gz) {
        int close_code = gzclose_r(gz);
        if (!rc && close_code != Z_OK) {
            rc = fmt_zlib_errno(close_code);
            if (!rc)
                rc = -EIO;
            s3m_error_set(state->err, rc, "cannot import '%s': '%s' is "
                          "truncated or corrupt", state->dir, path);
        }
    }
    free(line);
    free(piece);
    free(path);
    return rc;
}

/* ---- applying records -------------------------------------------------- */

/* Sets a field in meta, encoded as s3db.js's client stores it. 0 or
 * -ENOMEM. */
static int set_field(struct s3m_meta *meta, const struct import_field *field)
{
    char *encoded;
    size_t encoded_len;
    int rc;

    if (fmt_s3db_value_plain(field->text, field->text_len)) /* as it is */
        return s3m_meta_set(meta, field->name, field->text, field->text_len);
    rc = s3m_format_s3db_value_encode(field->text, field->text_len, &encoded,
                                      &encoded_len);
    if (rc)
        return rc;
    rc = s3m_meta_set(meta, field->name, encoded, encoded_len);
    free(encoded);
    return rc;
}

static bool is_named(const struct import_field *field, const char *name)
{
    return strcmp(field->name, name) == 0;
}

/* A record's metadata: every field but id, _id and _body, encoded. New
 * metadata in *out; -EINVAL for an empty field name (the parser refuses
 * names with NUL), or -ENOMEM. */
static int record_metadata(const struct import_record *record,
                           struct s3m_meta **out)
{
    struct s3m_meta *meta = s3m_meta_new();
    int rc = 0;

    if (!meta)
        return -ENOMEM;
    for (size_t i = 0; !rc && i < record->field_count; i++) {
        const struct import_field *field = &record->fields[i];
        if (is_named(field, "id") || is_named(field, "_id") ||
            is_named(field, "_body"))
            continue;
        rc = field->name_len == 0 ? -EINVAL : set_field(meta, field);
    }
    if (rc) {
        s3m_meta_unref(meta);
        return rc;
    }
    *out = meta;
    return 0;
}

/* The record's body: the text of _body unless it is null or empty. */
static const struct import_field *record_body(const struct import_record *record)
{
    for (size_t i = 0; i < record->field_count; i++)
        if (is_named(&record->fields[i], "_body"))
            return record->fields[i].is_null || record->fields[i].text_len == 0
                       ? NULL : &record->fields[i];
    return NULL;
}

/* What a key held before an import wrote it, to put it back. */
struct undo {
    char *key;
    bool existed;
    struct s3m_object_info info;
    struct s3m_body *body;
};

static void undo_all(struct s3m_store *store, struct undo *undo, size_t count)
{
    for (size_t i = count; i-- > 0;) {
        if (undo[i].existed) {
            struct s3m_put_attrs attrs = {
                .meta = undo[i].info.meta,
                .mode = undo[i].info.mode & 07777u,
                .has_owner = true,
                .uid = undo[i].info.uid,
                .gid = undo[i].info.gid,
                .mtime_ns = undo[i].info.mtime_ns ? undo[i].info.mtime_ns : 1,
            };
            s3m_store_put_body(store, undo[i].key, undo[i].body, &attrs, 0);
        } else {
            s3m_store_delete(store, undo[i].key);
        }
    }
}

static void undo_release(struct undo *undo, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        free(undo[i].key);
        s3m_object_info_release(&undo[i].info);
        s3m_body_unref(undo[i].body);
    }
    free(undo);
}

/* Puts one record into target. Returns 0; 1 when the store refused it and
 * it was reported (without clear); else a negative errno: -ENOMEM, or with
 * clear the refusal itself (err filled). */
static int put_record(struct import_state *state, struct s3m_store *target,
                      const struct import_resource *resource,
                      const struct import_record *record, struct undo *undo)
{
    const char *file = resource->files[record->file_index];
    const char *id = record->id;
    size_t line = record->line, id_len = record->id_len;
    size_t prefix_len = strlen(state->key_prefix);
    size_t name_len = strlen(resource->name);
    const struct import_field *body = record_body(record);
    struct s3m_put_attrs attrs = {0};
    struct s3m_meta *meta = NULL;
    char *key;
    int rc;

    key = s3m_malloc(prefix_len + 9 + name_len + 9 + id_len + 1);
    if (!key)
        return -ENOMEM;
    sprintf(key, "%sresource=%s/data/id=", state->key_prefix, resource->name);
    memcpy(key + prefix_len + 9 + name_len + 9, id, id_len + 1);
    rc = record_metadata(record, &meta);
    if (rc == -EINVAL) {
        free(key);
        rc = bad_line(state, resource, file, line,
                      "a field name is empty or holds NUL");
        return rc ? rc : 1;
    }
    if (rc) {
        free(key);
        return rc;
    }
    if (undo) {
        rc = s3m_store_get(target, key, &undo->info, &undo->body);
        undo->existed = rc == 0;
        /* a key the store cannot hold is refused by the put below */
        if (rc && rc != -ENOENT && rc != -ENAMETOOLONG && rc != -EINVAL) {
            rc = -ENOMEM;
            goto out;
        }
    }
    attrs.meta = meta;
    rc = s3m_store_put(target, key, body ? body->text : NULL,
                       body ? body->text_len : 0, &attrs, 0);
    if (rc == 0) {
        state->report.records++;
        if (undo) {
            undo->key = key;
            key = NULL;
        }
    } else if (rc != -ENOMEM) {
        int refused = rc;
        rc = bad_line(state, resource, file, line,
                      "cannot store key 'resource=%s/data/id=%.80s': %s",
                      resource->name, id, s3m_format_errno_text(refused));
        if (!rc)
            rc = 1;
    }
    if (rc && undo) {
        s3m_object_info_release(&undo->info);
        s3m_body_unref(undo->body);
        *undo = (struct undo){0};
    }
out:
    s3m_meta_unref(meta);
    free(key);
    return rc;
}

static size_t record_total(const struct import_state *state)
{
    size_t total = 0;
    for (size_t i = 0; i < state->resource_count; i++)
        total += state->resources[i].records.count;
    return total;
}

/* Puts every record into target, freeing each once it is in; with undo,
 * remembers in undo[*used] what each put replaced. Records the store
 * refused without clear are reported and skipped. 0 or a negative errno
 * (see put_record). */
static int put_all(struct import_state *state, struct s3m_store *target,
                   struct undo *undo, size_t *used)
{
    for (size_t i = 0; i < state->resource_count; i++) {
        struct import_resource *resource = &state->resources[i];
        struct import_records *records = &resource->records;
        for (size_t j = 0; j < records->count; j++) {
            int rc = put_record(state, target, resource, records->order[j],
                                undo ? &undo[*used] : NULL);
            free(records->order[j]);
            records->order[j] = NULL;
            if (rc < 0)
                return rc;
            if (rc == 0 && undo)
                (*used)++;
        }
    }
    return 0;
}

/* Without clear: writes into store; -ENOMEM undoes every write. */
static int apply_in_place(struct import_state *state, struct s3m_store *store)
{
    size_t used = 0;
    struct undo *undo = s3m_calloc(record_total(state) + 1, sizeof(*undo));
    int rc;

    if (!undo)
        return out_of_memory(state);
    rc = put_all(state, store, undo, &used);
    if (rc) {
        undo_all(store, undo, used);
        state->report.records = 0;
        if (rc == -ENOMEM)
            out_of_memory(state);
    }
    undo_release(undo, used);
    return rc;
}

/* With clear: builds a new store and swaps it in when every record went in. */
static int apply_cleared(struct import_state *state, struct s3m_store *store)
{
    struct s3m_store *fresh = s3m_store_new(s3m_store_config(store));
    int rc;

    if (!fresh)
        return out_of_memory(state);
    rc = put_all(state, fresh, NULL, NULL);
    if (rc == -ENOMEM)
        out_of_memory(state);
    if (rc == 0)
        s3m_store_swap_in(store, fresh, S3M_KEEP_SAME_BYTES, state->changed,
                          state->changed_ctx);
    else
        state->report.records = 0;
    s3m_store_free(fresh);
    return rc;
}

/* ---- the whole import -------------------------------------------------- */

/* Reads s3db.json and chooses the resources and their files. */
static int choose_resources(struct import_state *state,
                            const char *filter_text)
{
    char *path = fmt_path_join(state->dir, "s3db.json");
    json_error_t error;
    json_t *manifest, *listed;
    struct stat st;
    FILE *file;
    int rc;

    if (!path)
        return out_of_memory(state);
    rc = stat(state->dir, &st) != 0 ? -errno
         : !S_ISDIR(st.st_mode)        ? -ENOTDIR
                                       : 0;
    if (rc) {
        free(path);
        return s3m_error_set(state->err, rc,
                             "cannot import '%s': %s", state->dir,
                             s3m_format_errno_text(rc));
    }
    file = fopen(path, "rbe");
    if (!file) {
        rc = -errno;
        s3m_error_set(state->err, rc, "cannot read '%s': %s", path,
                      s3m_format_errno_text(rc));
        free(path);
        return rc;
    }
    manifest = json_loadf(file, 0, &error);
    fclose(file);
    if (!manifest) {
        rc = fmt_json_errno(&error);
        if (rc == -ENOMEM)
            rc = out_of_memory(state);
        else
            s3m_error_set(state->err, EINVAL,
                          "cannot import '%s': not valid JSON at line %d, "
                          "column %d: %s", path, error.line, error.column,
                          error.text);
        free(path);
        return rc;
    }
    if (!json_is_object(manifest)) {
        json_decref(manifest);
        rc = s3m_error_set(state->err, EINVAL,
                           "cannot import '%s': not a JSON object", path);
        free(path);
        return rc;
    }
    free(path);
    listed = json_object_get(manifest, "resources");
    if (json_is_object(listed) && json_object_size(listed) > 0)
        rc = resources_from_manifest(
            state, listed, json_is_true(json_object_get(manifest, "compressed")));
    else
        rc = resources_from_directory(state);
    json_decref(manifest);
    if (!rc)
        rc = apply_filter(state, filter_text);
    return rc;
}

/* Orders errors by file (in the order files first appear) and line: lines
 * that failed to parse are found before records the store refused. */
static void sort_errors(struct s3m_import_report *report)
{
    size_t n = report->errors_kept;
    /* insertion sort (n <= S3M_IMPORT_ERRORS_MAX): stable, by file rank
     * then line; a file's rank is where it first appears */
    size_t rank[S3M_IMPORT_ERRORS_MAX];
    for (size_t i = 0; i < n; i++) {
        rank[i] = i;
        for (size_t j = 0; j < i; j++)
            if (report->errors[j].file && report->errors[i].file &&
                strcmp(report->errors[j].file, report->errors[i].file) == 0) {
                rank[i] = rank[j];
                break;
            }
    }
    for (size_t i = 1; i < n; i++) {
        struct s3m_import_error e = report->errors[i];
        size_t r = rank[i], j = i;
        while (j > 0 && (rank[j - 1] > r ||
                         (rank[j - 1] == r && report->errors[j - 1].line > e.line))) {
            report->errors[j] = report->errors[j - 1];
            rank[j] = rank[j - 1];
            j--;
        }
        report->errors[j] = e;
        rank[j] = r;
    }
}

int s3m_format_import_backup(struct s3m_store *store, const char *dir,
                             const struct s3m_import_options *options,
                             struct s3m_import_report *report,
                             struct s3m_error *err)
{
    static const struct s3m_import_options defaults;
    struct import_state state = {.dir = dir, .err = err};
    int rc;

    if (!options)
        options = &defaults;
    state.clear = options->clear;
    state.changed = options->changed;
    state.changed_ctx = options->changed_ctx;
    state.key_prefix = options->key_prefix ? options->key_prefix : "";
    rc = choose_resources(&state, options->resources);
    for (size_t i = 0; !rc && i < state.resource_count; i++) {
        struct import_resource *resource = &state.resources[i];
        import_records_init(&resource->records);
        for (size_t f = 0; !rc && f < resource->file_count; f++)
            rc = read_file(&state, resource, f);
        state.report.resources++;
    }
    if (!rc)
        rc = state.clear ? apply_cleared(&state, store)
                         : apply_in_place(&state, store);
    for (size_t i = 0; i < state.resource_count; i++)
        resource_release(&state.resources[i]);
    free(state.resources);
    import_line_release(&state.line);
    sort_errors(&state.report);
    if (report)
        *report = state.report;
    else
        s3m_import_report_release(&state.report);
    return rc;
}
