/*
 * text.c - the text of .s3mem/stats, .s3mem/keys and .s3mem/shadowed.
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_internal.h"
#include "s3mem/path.h"

/* A growing text buffer. */
struct text {
    char *data;
    size_t len;
    size_t cap;
    int rc;
};

static void text_add(struct text *t, const char *s, size_t n)
{
    if (t->rc)
        return;
    if (t->len + n + 1 > t->cap) {
        size_t cap = (t->cap + n + 1) * 2;
        char *grown = s3m_realloc(t->data, cap);
        if (!grown) {
            t->rc = -ENOMEM;
            return;
        }
        t->data = grown;
        t->cap = cap;
    }
    memcpy(t->data + t->len, s, n);
    t->len += n;
    t->data[t->len] = '\0';
}

static int text_finish(struct text *t, char **out, size_t *len)
{
    text_add(t, "", 0);
    if (t->rc) {
        free(t->data);
        return t->rc;
    }
    *out = t->data;
    *len = t->len;
    return 0;
}

/* ---- keys ---------------------------------------------------------------- */

static int add_key_line(void *ctx, const char *key,
                        const struct s3m_object_info *info, struct s3m_body *body)
{
    struct text *t = ctx;
    text_add(t, key, strlen(key));
    text_add(t, "\n", 1);
    return t->rc;
}

int ctl_text_keys(struct s3m_ctl *ctl, char **out, size_t *len)
{
    struct text t = {0};
    s3m_store_foreach(ctl->store, NULL, add_key_line, &t);
    return text_finish(&t, out, len);
}

/* ---- shadowed ------------------------------------------------------------- */

struct key_list {
    char **keys;
    uint64_t *sizes;
    size_t count;
    size_t cap;
    int rc;
};

static int collect_key(void *ctx, const char *key,
                       const struct s3m_object_info *info, struct s3m_body *body)
{
    struct key_list *list = ctx;
    if (list->count == list->cap) {
        size_t cap = list->cap ? list->cap * 2 : 256;
        char **keys = s3m_realloc(list->keys, cap * sizeof(*keys));
        if (keys)
            list->keys = keys;
        uint64_t *sizes = keys ? s3m_realloc(list->sizes, cap * sizeof(*sizes)) : NULL;
        if (!sizes)
            return list->rc = -ENOMEM;
        list->sizes = sizes;
        list->cap = cap;
    }
    if (!(list->keys[list->count] = s3m_strdup(key)))
        return list->rc = -ENOMEM;
    list->sizes[list->count++] = info->size;
    return 0;
}

static void key_list_release(struct key_list *list)
{
    for (size_t i = 0; i < list->count; i++)
        free(list->keys[i]);
    free(list->keys);
    free(list->sizes);
}

/* True when some key after position i starts with keys[i] + "/". */
static bool has_directory(const struct key_list *list, size_t i)
{
    size_t len = strlen(list->keys[i]);
    size_t low = i + 1, high = list->count;
    while (low < high) { /* first key >= keys[i] + "/" */
        size_t mid = low + (high - low) / 2;
        int c = strncmp(list->keys[mid], list->keys[i], len);
        if (c < 0 || (c == 0 && (unsigned char)list->keys[mid][len] < '/'))
            low = mid + 1;
        else
            high = mid;
    }
    return low < list->count && strncmp(list->keys[low], list->keys[i], len) == 0 &&
           list->keys[low][len] == '/';
}

/* Calls fn for each key under the prefix that cannot be shown as a path. */
static int each_shadowed(struct s3m_ctl *ctl,
                         void (*fn)(void *ctx, const char *key), void *ctx)
{
    struct key_list list = {0};
    s3m_store_foreach(ctl->store, ctl->key_prefix, collect_key, &list);
    size_t prefix_len = strlen(ctl->key_prefix);
    for (size_t i = 0; list.rc == 0 && i < list.count; i++) {
        const char *rest = list.keys[i] + prefix_len;
        size_t rest_len = strlen(rest);
        bool marker = rest_len && rest[rest_len - 1] == '/';
        if (s3m_path_unshowable(rest, rest_len, list.sizes[i]) ||
            (!marker && has_directory(&list, i)))
            fn(ctx, list.keys[i]);
    }
    int rc = list.rc;
    key_list_release(&list);
    return rc;
}

static void add_shadowed_line(void *ctx, const char *key)
{
    text_add(ctx, key, strlen(key));
    text_add(ctx, "\n", 1);
}

int ctl_text_shadowed(struct s3m_ctl *ctl, char **out, size_t *len)
{
    struct text t = {0};
    int rc = each_shadowed(ctl, add_shadowed_line, &t);
    if (rc) {
        free(t.data);
        return rc;
    }
    return text_finish(&t, out, len);
}

static void count_one(void *ctx, const char *key)
{
    (*(size_t *)ctx)++;
}

size_t ctl_shadowed_count(struct s3m_ctl *ctl)
{
    size_t count = 0;
    each_shadowed(ctl, count_one, &count);
    return count;
}

/* ---- stats ----------------------------------------------------------------- */

/* As s3db.js's formatBytes: "0 Bytes", "1.5 KB", "12.34 MB". */
static void format_bytes(uint64_t bytes, char out[32])
{
    static const char *units[] = {"Bytes", "KB", "MB", "GB", "TB", "PB"};
    if (bytes == 0) {
        snprintf(out, 32, "0 Bytes");
        return;
    }
    int i = (int)floor(log((double)bytes) / log(1024.0));
    if (i > 5)
        i = 5;
    double value = round((double)bytes / pow(1024.0, i) * 100.0) / 100.0;
    char number[24];
    snprintf(number, sizeof(number), "%.2f", value);
    char *end = number + strlen(number) - 1;
    while (*end == '0')
        *end-- = '\0';
    if (*end == '.')
        *end = '\0';
    snprintf(out, 32, "%s %s", number, units[i]);
}

static json_t *operations_json(const struct s3m_store_stats *s)
{
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
                     "puts", (json_int_t)s->puts, "gets", (json_int_t)s->gets,
                     "heads", (json_int_t)s->heads, "deletes", (json_int_t)s->deletes,
                     "lists", (json_int_t)s->lists, "copies", (json_int_t)s->copies,
                     "moves", (json_int_t)s->moves, "writes", (json_int_t)s->writes,
                     "reads", (json_int_t)s->reads);
}

static json_t *snapshots_json(struct s3m_ctl *ctl)
{
    size_t count;
    char **names = s3m_ctl_snapshot_names(ctl, &count);
    json_t *array = json_array();
    for (size_t i = 0; names && i < count; i++) {
        json_array_append_new(array, json_string(names[i]));
        free(names[i]);
    }
    free(names);
    return array;
}

int ctl_text_stats(struct s3m_ctl *ctl, char **out, size_t *len)
{
    struct s3m_store_stats s;
    s3m_store_stats(ctl->store, &s);
    char total[32], memory[32];
    format_bytes(s.total_size, total);
    format_bytes(s.memory_used, memory);
    json_t *stats = json_pack(
        "{s:I, s:I, s:s, s:s, s:s, s:I, s:s, s:I, s:I, s:o, s:o}",
        "objectCount", (json_int_t)s.object_count,
        "totalSize", (json_int_t)s.total_size,
        "totalSizeFormatted", total,
        "bucket", s3m_store_bucket(ctl->store),
        "keyPrefix", ctl->key_prefix,
        "memoryUsed", (json_int_t)s.memory_used,
        "memoryUsedFormatted", memory,
        "keyBytes", (json_int_t)s.key_bytes,
        "shadowedCount", (json_int_t)ctl_shadowed_count(ctl),
        "snapshots", snapshots_json(ctl),
        "operations", operations_json(&s));
    char *text = stats ? json_dumps(stats, JSON_INDENT(2)) : NULL;
    json_decref(stats);
    if (!text)
        return -ENOMEM;
    struct text t = {0};
    text_add(&t, text, strlen(text));
    text_add(&t, "\n", 1);
    free(text);
    return text_finish(&t, out, len);
}
