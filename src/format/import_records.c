/*
 * import_records.c - the records of a backup, held flat while it is read.
 *
 * Design note: import keeps every record until all its files are read (a
 * truncated file must stop it before the store changes, and a later line
 * merges into the earlier record of its id). Kept as jansson trees, the
 * records cost about ten allocations each, and freeing them was a quarter
 * of the import (perf, 20,000 records). Here a record is one allocation:
 * its members' names and texts (a string's bytes; any other value's JSON as
 * JSON.stringify writes it) packed behind an array of fields. Records are
 * found by id in an open-addressing table and kept in first-seen order. The
 * parsed tree is freed by the caller as soon as its record is built, while
 * it is still in the cache.
 *
 * Not thread-shared: one import owns its table.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "s3mem/util.h"

/* One member while a record is built: borrowed name and text, or text
 * owned here (a non-string value's JSON). */
struct member {
    const char *name;
    size_t name_len;
    const char *text;
    size_t text_len;
    bool is_null;
    char *owned;
};

struct builder {
    struct member *members;   /* owned */
    size_t count;
    size_t cap;
};

char *fmt_json_value_text(const json_t *value, size_t *len)
{
    struct fmt_out out = {0};
    char *text = NULL, *copy;
    size_t size = 0;

    if (json_is_string(value)) {
        *len = json_string_length(value);
        return s3m_memdup(json_string_value(value), *len + 1);
    }
    out.file = open_memstream(&text, &size);
    if (!out.file)
        return NULL;
    fmt_out_json_js(&out, value);
    if (fclose(out.file) != 0 || out.error) {
        free(text);
        return NULL;
    }
    copy = s3m_memdup(text, size + 1);
    *len = size;
    free(text);
    return copy;
}

static void builder_release(struct builder *b)
{
    for (size_t i = 0; i < b->count; i++)
        free(b->members[i].owned);
    free(b->members);
}

/* Sets name to the member m (its name borrowed): replaces the text of a
 * member of that name, in its place, or appends. Takes m.owned, also on
 * failure. 0 or -ENOMEM. */
static int builder_set(struct builder *b, struct member m)
{
    for (size_t i = 0; i < b->count; i++) {
        struct member *old = &b->members[i];
        if (old->name_len == m.name_len &&
            memcmp(old->name, m.name, m.name_len) == 0) {
            free(old->owned);
            *old = m;
            return 0;
        }
    }
    if (b->count == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 8;
        struct member *grown = s3m_realloc(b->members, cap * sizeof(*grown));
        if (!grown) {
            free(m.owned);
            return -ENOMEM;
        }
        b->members = grown;
        b->cap = cap;
    }
    b->members[b->count++] = m;
    return 0;
}

/* Sets every member of object (borrowed). 0 or -ENOMEM. */
static int builder_add_object(struct builder *b, const json_t *object)
{
    const char *name;
    size_t name_len;
    json_t *value;

    json_object_keylen_foreach((json_t *)object, name, name_len, value) {
        struct member m = {.name = name, .name_len = name_len,
                           .is_null = json_is_null(value)};
        if (json_is_string(value)) {
            m.text = json_string_value(value);
            m.text_len = json_string_length(value);
        } else if (!(m.text = m.owned = fmt_json_value_text(value,
                                                            &m.text_len))) {
            return -ENOMEM;
        }
        if (builder_set(b, m))
            return -ENOMEM;
    }
    return 0;
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

/* A new record of the builder's members, or NULL. */
static struct import_record *record_new(const struct builder *b,
                                        const char *id, size_t id_len,
                                        size_t file_index, size_t line)
{
    size_t bytes = id_len + 1;
    for (size_t i = 0; i < b->count; i++)
        bytes += b->members[i].name_len + b->members[i].text_len + 2;
    struct import_record *record =
        s3m_malloc(sizeof(*record) + b->count * sizeof(record->fields[0]) +
                   bytes);
    if (!record)
        return NULL;
    char *at = (char *)&record->fields[b->count];
    record->id = pack(&at, id, id_len);
    record->id_len = id_len;
    record->file_index = file_index;
    record->line = line;
    record->field_count = b->count;
    for (size_t i = 0; i < b->count; i++) {
        const struct member *m = &b->members[i];
        struct import_field *f = &record->fields[i];
        f->name = pack(&at, m->name, m->name_len);
        f->name_len = m->name_len;
        f->text = pack(&at, m->text, m->text_len);
        f->text_len = m->text_len;
        f->is_null = m->is_null;
    }
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
                       size_t id_len, const json_t *object, size_t file_index,
                       size_t line)
{
    struct builder b = {0};
    struct import_record *existing = NULL, *record;
    size_t *slot;
    int rc = reserve_one(records);

    if (rc)
        return rc;
    slot = find_slot(records, id, id_len);
    if (*slot) {
        existing = records->order[*slot - 1];
        file_index = existing->file_index;
        line = existing->line;
        for (size_t i = 0; !rc && i < existing->field_count; i++) {
            const struct import_field *f = &existing->fields[i];
            rc = builder_set(&b, (struct member){
                .name = f->name, .name_len = f->name_len, .text = f->text,
                .text_len = f->text_len, .is_null = f->is_null});
        }
    }
    if (!rc)
        rc = builder_add_object(&b, object);
    record = rc ? NULL : record_new(&b, id, id_len, file_index, line);
    builder_release(&b);
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
