/*
 * import_records.c - the records of a backup, held flat while it is read.
 *
 * Design note: import keeps every record until all its files are read (a
 * truncated file must stop it before the store changes, and a later line
 * merges into the earlier record of its id). Kept as jansson trees, the
 * records cost about ten allocations each, and freeing them was a quarter
 * of the import (perf, 20,000 records). Here a line is parsed member by
 * member (fmt_json_parse_flat) into a struct import_line, whose arrays are
 * reused from line to line, and becomes a record of one allocation: its
 * members' names and texts (a string's bytes; any other value's JSON as
 * JSON.stringify writes it) packed behind an array of fields. Records are
 * found by id in an open-addressing table and kept in first-seen order.
 *
 * Not thread-shared: one import owns its line and its table.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "s3mem/util.h"

/* The text a member that is not a string stands for: its JSON as
 * JSON.stringify writes it. New string (len bytes plus a NUL), or NULL. */
static char *value_json(const json_t *value, size_t *len)
{
    struct fmt_out out;              /* staged bytes need no zeroing */
    char *text = NULL, *copy;
    size_t size = 0;

    out.gz = NULL;
    out.bytes = 0;
    out.error = 0;
    out.staged_len = 0;
    out.stage = NULL;
    out.file = open_memstream(&text, &size);
    if (!out.file)
        return NULL;
    fmt_out_json_js(&out, value);
    fmt_out_flush(&out);
    if (fclose(out.file) != 0 || out.error) {
        free(text);
        return NULL;
    }
    copy = s3m_memdup(text, size + 1);
    *len = size;
    free(text);
    return copy;
}

/* ---- one line ------------------------------------------------------------ */

void import_line_release(struct import_line *line)
{
    free(line->members);
    free(line->bytes);
    *line = (struct import_line){0};
}

/* Copies len bytes and a NUL into line's bytes; their offset, or
 * (size_t)-1 without memory. */
static size_t line_keep(struct import_line *line, const char *bytes, size_t len)
{
    char *grown = s3m_grow(line->bytes, &line->bytes_cap, line->used + len + 1);
    if (!grown)
        return (size_t)-1;
    line->bytes = grown;
    size_t at = line->used;
    memcpy(line->bytes + at, bytes, len);
    line->bytes[at + len] = '\0';
    line->used += len + 1;
    return at;
}

/* The member named name (name_len bytes), or NULL. */
static struct import_member *line_find(const struct import_line *line,
                                       const char *name, size_t name_len)
{
    for (size_t i = 0; i < line->count; i++) {
        struct import_member *m = &line->members[i];
        if (m->name_len == name_len &&
            memcmp(line->bytes + m->name_at, name, name_len) == 0)
            return m;
    }
    return NULL;
}

/* fmt_json_flat_fn: sets the member (a later one of a name takes the
 * earlier one's place, as jansson does). */
static int line_member(void *ctx, const char *key, size_t key_len,
                       const char *bytes, size_t len, json_t *value)
{
    struct import_line *line = ctx;
    char *owned = NULL;
    struct import_member m = {.name_len = key_len, .text_len = len};

    if (value) {
        m.is_null = json_is_null(value);
        m.nonzero_integer =
            json_is_integer(value) && json_integer_value(value) != 0;
        if (!(bytes = owned = value_json(value, &m.text_len)))
            return -ENOMEM;
    } else {
        m.is_string = true;
    }
    struct import_member *same = line_find(line, key, key_len);
    m.name_at = same ? same->name_at : line_keep(line, key, key_len);
    m.text_at = m.name_at == (size_t)-1 ? (size_t)-1
                                        : line_keep(line, bytes, m.text_len);
    free(owned);
    if (m.text_at == (size_t)-1)
        return -ENOMEM;
    if (same) {
        *same = m;
        return 0;
    }
    if (line->count == line->cap) {
        size_t cap = line->cap ? line->cap * 2 : 16;
        struct import_member *grown =
            s3m_realloc(line->members, cap * sizeof(*grown));
        if (!grown)
            return -ENOMEM;
        line->members = grown;
        line->cap = cap;
    }
    line->members[line->count++] = m;
    return 0;
}

int import_line_parse(struct import_line *line, const char *text, size_t len,
                      struct fmt_json_error *error)
{
    line->count = 0;
    line->used = 0;
    return fmt_json_parse_flat(text, len, line_member, line, error);
}

const char *import_line_id(const struct import_line *line, size_t *len)
{
    static const char *const names[] = {"id", "_id"};

    for (size_t i = 0; i < 2; i++) {
        const struct import_member *m = line_find(line, names[i], strlen(names[i]));
        if (m && ((m->is_string && m->text_len > 0) || m->nonzero_integer)) {
            *len = m->text_len;
            return line->bytes + m->text_at;
        }
    }
    return NULL;
}

/* ---- records ------------------------------------------------------------- */

/* A field from a line's member, pointing into the line. */
static struct import_field field_of(const struct import_line *line,
                                    const struct import_member *m)
{
    return (struct import_field){
        .name = line->bytes + m->name_at, .name_len = m->name_len,
        .text = line->bytes + m->text_at, .text_len = m->text_len,
        .is_null = m->is_null};
}

/* Copies len bytes and a NUL to *at; returns where they went. */
static const char *pack(char **at, const char *bytes, size_t len)
{
    char *start = *at;
    memcpy(start, bytes, len);
    start[len] = '\0';
    *at += len + 1;
    return start;
}

/* A new record of count fields (borrowed; copied), or NULL. */
static struct import_record *record_new(const struct import_field *fields,
                                        size_t count, const char *id,
                                        size_t id_len, size_t file_index,
                                        size_t line)
{
    size_t bytes = id_len + 1;
    for (size_t i = 0; i < count; i++)
        bytes += fields[i].name_len + fields[i].text_len + 2;
    struct import_record *record =
        s3m_malloc(sizeof(*record) + count * sizeof(record->fields[0]) + bytes);
    if (!record)
        return NULL;
    char *at = (char *)&record->fields[count];
    record->id = pack(&at, id, id_len);
    record->id_len = id_len;
    record->file_index = file_index;
    record->line = line;
    record->field_count = count;
    for (size_t i = 0; i < count; i++) {
        struct import_field *f = &record->fields[i];
        *f = fields[i];
        f->name = pack(&at, fields[i].name, fields[i].name_len);
        f->text = pack(&at, fields[i].text, fields[i].text_len);
    }
    return record;
}

/* True when record has a field named name (name_len bytes). */
static bool record_has(const struct import_record *record, const char *name,
                       size_t name_len)
{
    for (size_t i = 0; i < record->field_count; i++)
        if (record->fields[i].name_len == name_len &&
            memcmp(record->fields[i].name, name, name_len) == 0)
            return true;
    return false;
}

/* A record of the line's members: onto old's fields when old is set (its
 * members keep their places and take the line's values; new ones follow),
 * at old's place of first sight. NULL without memory. */
static struct import_record *record_of_line(const struct import_record *old,
                                            const struct import_line *line,
                                            const char *id, size_t id_len,
                                            size_t file_index, size_t line_no)
{
    size_t old_count = old ? old->field_count : 0, count = 0;
    struct import_field *fields =
        s3m_malloc((old_count + line->count + 1) * sizeof(*fields));
    if (!fields)
        return NULL;
    for (size_t i = 0; i < old_count; i++) {
        const struct import_field *f = &old->fields[i];
        const struct import_member *m = line_find(line, f->name, f->name_len);
        fields[count++] = m ? field_of(line, m) : *f;
    }
    for (size_t i = 0; i < line->count; i++) {
        const struct import_member *m = &line->members[i];
        if (!old || !record_has(old, line->bytes + m->name_at, m->name_len))
            fields[count++] = field_of(line, m);
    }
    struct import_record *record =
        old ? record_new(fields, count, old->id, old->id_len, old->file_index,
                         old->line)
            : record_new(fields, count, id, id_len, file_index, line_no);
    free(fields);
    return record;
}

/* ---- the table ---------------------------------------------------------- */

void import_records_init(struct import_records *records)
{
    *records = (struct import_records){0};
}

void import_records_release(struct import_records *records)
{
    for (size_t i = 0; i < records->count; i++)
        free(records->order[i]);
    free(records->order);
    free(records->slots);
    *records = (struct import_records){0};
}

/* The slot of id: the one holding it, or the empty one where it goes. */
static size_t *find_slot(const struct import_records *records, const char *id,
                         size_t id_len)
{
    size_t mask = records->slot_count - 1;
    for (size_t i = s3m_hash(id, id_len) & mask;; i = (i + 1) & mask) {
        size_t *slot = &records->slots[i];
        if (*slot == 0)
            return slot;
        const struct import_record *record = records->order[*slot - 1];
        if (record->id_len == id_len && memcmp(record->id, id, id_len) == 0)
            return slot;
    }
}

/* Room for one more record: order grown, slots under half full. */
static int reserve_one(struct import_records *records)
{
    if (records->count == records->cap) {
        size_t cap = records->cap ? records->cap * 2 : 256;
        struct import_record **grown =
            s3m_realloc(records->order, cap * sizeof(*grown));
        if (!grown)
            return -ENOMEM;
        records->order = grown;
        records->cap = cap;
    }
    if ((records->count + 1) * 2 <= records->slot_count)
        return 0;
    size_t slot_count = records->slot_count ? records->slot_count * 2 : 512;
    size_t *slots = s3m_calloc(slot_count, sizeof(*slots));
    if (!slots)
        return -ENOMEM;
    size_t *old = records->slots;
    records->slots = slots;
    records->slot_count = slot_count;
    for (size_t i = 0; i < records->count; i++)
        *find_slot(records, records->order[i]->id, records->order[i]->id_len) =
            i + 1;
    free(old);
    return 0;
}

int import_records_add(struct import_records *records, const char *id,
                       size_t id_len, const struct import_line *line,
                       size_t file_index, size_t line_no)
{
    int rc = reserve_one(records);
    if (rc)
        return rc;
    size_t *slot = find_slot(records, id, id_len);
    struct import_record *existing = *slot ? records->order[*slot - 1] : NULL;
    struct import_record *record =
        record_of_line(existing, line, id, id_len, file_index, line_no);
    if (!record)
        return -ENOMEM;
    if (existing) {
        records->order[*slot - 1] = record;
        free(existing);
        return 1;
    }
    records->order[records->count++] = record;
    *slot = records->count;
    return 0;
}
