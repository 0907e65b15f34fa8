/*
 * meta.c - immutable, refcounted object metadata.
 *
 * Every change makes a new struct s3m_meta (copy, then edit the copy), so a
 * struct that an object or a snapshot holds never changes and readers need
 * no lock. Names compare case-insensitively (ASCII), as S3 does.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "s3mem/store.h"
#include "internal.h"
#include "s3mem/util.h"

static atomic_uint *meta_refcount(struct s3m_meta *meta)
{
    return (atomic_uint *)&meta->refcount;
}

struct s3m_meta *s3m_meta_new(void)
{
    struct s3m_meta *meta = s3m_calloc(1, sizeof(*meta));
    if (meta)
        atomic_init(meta_refcount(meta), 1);
    return meta;
}

struct s3m_meta *s3m_meta_ref(struct s3m_meta *meta)
{
    if (meta)
        atomic_fetch_add_explicit(meta_refcount(meta), 1, memory_order_relaxed);
    return meta;
}

static void entry_release(struct s3m_meta_entry *entry)
{
    free(entry->name);
    free(entry->value);
}

void s3m_meta_unref(struct s3m_meta *meta)
{
    if (!meta || atomic_fetch_sub_explicit(meta_refcount(meta), 1,
                                           memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < meta->count; i++)
        entry_release(&meta->entries[i]);
    free(meta->entries);
    free(meta->content_type);
    free(meta->content_encoding);
    free(meta);
}

static ssize_t find_index(const struct s3m_meta *meta, const char *name)
{
    if (!meta)
        return -1;
    for (size_t i = 0; i < meta->count; i++)
        if (strcasecmp(meta->entries[i].name, name) == 0)
            return (ssize_t)i;
    return -1;
}

const struct s3m_meta_entry *s3m_meta_find(const struct s3m_meta *meta,
                                           const char *name)
{
    ssize_t i = find_index(meta, name);
    return i < 0 ? NULL : &meta->entries[i];
}

static int entry_copy(struct s3m_meta_entry *dst, const char *name,
                      const void *value, size_t value_len)
{
    dst->name = s3m_strdup(name);
    dst->value = s3m_malloc(value_len + 1);
    if (!dst->name || !dst->value) {
        entry_release(dst);
        return -ENOMEM;
    }
    memcpy(dst->value, value, value_len);
    dst->value[value_len] = '\0';
    dst->value_len = value_len;
    return 0;
}

static int copy_optional(char **dst, const char *text)
{
    *dst = NULL;
    if (!text)
        return 0;
    *dst = s3m_strdup(text);
    return *dst ? 0 : -ENOMEM;
}

/* New copy of meta (NULL = empty), or NULL. */
static struct s3m_meta *meta_copy(const struct s3m_meta *meta)
{
    struct s3m_meta *copy = s3m_meta_new();
    if (!copy)
        return NULL;
    size_t count = meta ? meta->count : 0;
    if (count) {
        copy->entries = s3m_calloc(count, sizeof(*copy->entries));
        if (!copy->entries)
            goto fail;
    }
    if (meta) {
        if (copy_optional(&copy->content_type, meta->content_type) ||
            copy_optional(&copy->content_encoding, meta->content_encoding))
            goto fail;
        for (size_t i = 0; i < count; i++) {
            const struct s3m_meta_entry *e = &meta->entries[i];
            if (entry_copy(&copy->entries[i], e->name, e->value, e->value_len))
                goto fail;
            copy->count++;
        }
    }
    return copy;
fail:
    s3m_meta_unref(copy);
    return NULL;
}

int s3m_meta_set(struct s3m_meta *meta, const char *name, const void *value,
                 size_t value_len)
{
    ssize_t i = find_index(meta, name);
    if (i < 0) {
        struct s3m_meta_entry *grown =
            s3m_realloc(meta->entries, (meta->count + 1) * sizeof(*grown));
        if (!grown)
            return -ENOMEM;
        meta->entries = grown;
    }
    struct s3m_meta_entry entry;
    if (entry_copy(&entry, name, value, value_len))
        return -ENOMEM;
    if (i >= 0) {
        entry_release(&meta->entries[i]);
        meta->entries[i] = entry;
    } else {
        meta->entries[meta->count++] = entry;
    }
    return 0;
}

struct s3m_meta *s3m_meta_with(const struct s3m_meta *meta, const char *name,
                               const void *value, size_t value_len)
{
    struct s3m_meta *copy = meta_copy(meta);
    if (copy && s3m_meta_set(copy, name, value, value_len)) {
        s3m_meta_unref(copy);
        return NULL;
    }
    return copy;
}

struct s3m_meta *s3m_meta_without(const struct s3m_meta *meta, const char *name)
{
    struct s3m_meta *copy = meta_copy(meta);
    if (!copy)
        return NULL;
    ssize_t i = find_index(copy, name);
    if (i >= 0) {
        entry_release(&copy->entries[i]);
        memmove(&copy->entries[i], &copy->entries[i + 1],
                (copy->count - (size_t)i - 1) * sizeof(*copy->entries));
        copy->count--;
    }
    return copy;
}

struct s3m_meta *s3m_meta_with_type(const struct s3m_meta *meta,
                                    const char *content_type,
                                    const char *content_encoding)
{
    struct s3m_meta *copy = meta_copy(meta);
    if (!copy)
        return NULL;
    free(copy->content_type);
    free(copy->content_encoding);
    if (copy_optional(&copy->content_type, content_type) ||
        copy_optional(&copy->content_encoding, content_encoding)) {
        s3m_meta_unref(copy);
        return NULL;
    }
    return copy;
}

struct s3m_meta *s3m_meta_merge(const struct s3m_meta *meta,
                                const struct s3m_meta *overlay)
{
    struct s3m_meta *copy = meta_copy(meta);
    if (!copy || !overlay)
        return copy;
    for (size_t k = 0; k < overlay->count; k++) {
        const struct s3m_meta_entry *e = &overlay->entries[k];
        if (s3m_meta_set(copy, e->name, e->value, e->value_len)) {
            s3m_meta_unref(copy);
            return NULL;
        }
    }
    if (overlay->content_type || overlay->content_encoding) {
        char *type = NULL, *encoding = NULL;
        if (copy_optional(&type, overlay->content_type ? overlay->content_type
                                                       : copy->content_type) ||
            copy_optional(&encoding, overlay->content_encoding
                                         ? overlay->content_encoding
                                         : copy->content_encoding)) {
            free(type);
            s3m_meta_unref(copy);
            return NULL;
        }
        free(copy->content_type);
        free(copy->content_encoding);
        copy->content_type = type;
        copy->content_encoding = encoding;
    }
    return copy;
}

static bool same_text(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

bool meta_equal(const struct s3m_meta *a, const struct s3m_meta *b)
{
    size_t count_a = a ? a->count : 0, count_b = b ? b->count : 0;

    if (a == b)
        return true;
    if (count_a != count_b ||
        strcmp(s3m_meta_content_type(a), s3m_meta_content_type(b)) != 0 ||
        !same_text(a ? a->content_encoding : NULL,
                   b ? b->content_encoding : NULL))
        return false;
    for (size_t i = 0; i < count_a; i++) {
        const struct s3m_meta_entry *x = &a->entries[i], *y = &b->entries[i];
        if (strcmp(x->name, y->name) != 0 || x->value_len != y->value_len ||
            memcmp(x->value, y->value, x->value_len) != 0)
            return false;
    }
    return true;
}

size_t s3m_meta_size(const struct s3m_meta *meta)
{
    size_t size = 0;
    for (size_t i = 0; meta && i < meta->count; i++)
        size += strlen(meta->entries[i].name) + meta->entries[i].value_len;
    return size;
}

const char *s3m_meta_content_type(const struct s3m_meta *meta)
{
    return meta && meta->content_type ? meta->content_type
                                      : S3M_DEFAULT_CONTENT_TYPE;
}
