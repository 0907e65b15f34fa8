/*
 * list.c - S3 ListObjectsV2 and the one-level listing the FUSE layer uses.
 *
 * Both walk the skiplist from the prefix; a common prefix is reported once
 * and jumped over with a single seek past it, so the cost follows the number
 * of entries returned, not the number of keys under them.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "s3mem/util.h"

struct string_list {
    char **items;
    size_t count;
    size_t capacity;
};

static int string_list_add(struct string_list *list, const char *text, size_t len)
{
    if (list->count == list->capacity) {
        size_t capacity = list->capacity ? list->capacity * 2 : 16;
        char **items = s3m_realloc(list->items, capacity * sizeof(*items));
        if (!items)
            return -ENOMEM;
        list->items = items;
        list->capacity = capacity;
    }
    char *copy = s3m_strndup(text, len);
    if (!copy)
        return -ENOMEM;
    list->items[list->count++] = copy;
    return 0;
}

static void string_list_release(char **items, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free(items[i]);
    free(items);
}

void s3m_list_result_release(struct s3m_list_result *result)
{
    if (!result)
        return;
    string_list_release(result->keys, result->key_count);
    string_list_release(result->prefixes, result->prefix_count);
    free(result->next_continuation);
    memset(result, 0, sizeof(*result));
}

static bool has_prefix(const struct s3m_object *obj, const char *prefix, size_t len)
{
    return obj->key_len >= len && memcmp(object_key(obj), prefix, len) == 0;
}

/* Where a listing resumes: after the token, and after everything under it
 * when it is a common prefix returned earlier. */
static struct s3m_object *list_start(const struct s3m_store *store,
                                     const struct s3m_list_request *req,
                                     const char *prefix, size_t prefix_len)
{
    struct s3m_object *node = index_seek(store, prefix, prefix_len, false);
    const char *token = req->continuation ? req->continuation : req->start_after;
    if (!token || strcmp(token, prefix) < 0)
        return node;
    size_t len = strlen(token);
    bool common = req->continuation && req->delimiter && len > prefix_len &&
                  token[len - 1] == req->delimiter &&
                  strncmp(token, prefix, prefix_len) == 0;
    return common ? index_seek_past_prefix(store, token, len)
                  : index_seek(store, token, len, true);
}

static int list_walk(struct s3m_store *store, const struct s3m_list_request *req,
                     struct string_list *keys, struct string_list *prefixes,
                     bool *truncated, const char **last, size_t *last_len)
{
    const char *prefix = req->prefix ? req->prefix : "";
    size_t prefix_len = strlen(prefix);
    size_t max = req->max_keys ? req->max_keys : 1000;
    struct s3m_object *node = list_start(store, req, prefix, prefix_len);
    while (node && has_prefix(node, prefix, prefix_len)) {
        if (keys->count + prefixes->count == max) {
            *truncated = true;
            return 0;
        }
        const char *key = object_key(node);
        const char *cut = req->delimiter ?
            memchr(key + prefix_len, req->delimiter, node->key_len - prefix_len) : NULL;
        int rc;
        if (cut) {
            size_t len = (size_t)(cut - key) + 1;
            rc = string_list_add(prefixes, key, len);
            if (rc)
                return rc;
            *last = prefixes->items[prefixes->count - 1];
            *last_len = len;
            node = index_seek_past_prefix(store, key, len);
        } else {
            rc = string_list_add(keys, key, node->key_len);
            if (rc)
                return rc;
            *last = key;
            *last_len = node->key_len;
            node = node->forward[0];
        }
    }
    return 0;
}

int s3m_store_list(struct s3m_store *store, const struct s3m_list_request *req,
                   struct s3m_list_result *result)
{
    struct string_list keys = {0}, prefixes = {0};
    bool truncated = false;
    const char *last = NULL;
    size_t last_len = 0;
    memset(result, 0, sizeof(*result));
    store_read_lock(store);
    int rc = list_walk(store, req, &keys, &prefixes, &truncated, &last, &last_len);
    char *token = NULL;
    if (rc == 0 && truncated && !(token = s3m_strndup(last, last_len)))
        rc = -ENOMEM;
    store_unlock(store);
    atomic_fetch_add_explicit(&store->lists, 1, memory_order_relaxed);
    if (rc) {
        string_list_release(keys.items, keys.count);
        string_list_release(prefixes.items, prefixes.count);
        return rc;
    }
    result->keys = keys.items;
    result->key_count = keys.count;
    result->prefixes = prefixes.items;
    result->prefix_count = prefixes.count;
    result->truncated = truncated;
    result->next_continuation = token;
    return 0;
}

/* True when some key starts with key + delimiter (a "directory" of the same
 * name as the object). */
static bool shadowed_by_prefix(const struct s3m_store *store,
                               const struct s3m_object *obj, char delimiter)
{
    char probe[S3M_KEY_MAX + 2];
    memcpy(probe, object_key(obj), obj->key_len);
    probe[obj->key_len] = delimiter;
    struct s3m_object *next = index_seek(store, probe, obj->key_len + 1, false);
    return next && has_prefix(next, probe, obj->key_len + 1);
}

/* Reports one entry starting at node; returns the node after it. */
static struct s3m_object *level_entry(const struct s3m_store *store,
                                      struct s3m_object *node, size_t prefix_len,
                                      char delimiter, struct s3m_level_entry *entry,
                                      struct s3m_object **object)
{
    const char *rest = object_key(node) + prefix_len;
    size_t rest_len = node->key_len - prefix_len;
    const char *cut = memchr(rest, delimiter, rest_len);
    memset(entry, 0, sizeof(*entry));
    entry->name = rest;
    if (!cut) {
        entry->name_len = rest_len;
        entry->shadowed = shadowed_by_prefix(store, node, delimiter);
        *object = node;
        return node->forward[0];
    }
    entry->name_len = (size_t)(cut - rest);
    entry->is_prefix = true;
    size_t group_len = prefix_len + entry->name_len + 1;
    *object = node->key_len == group_len ? node : NULL;
    return index_seek_past_prefix(store, object_key(node), group_len);
}

int s3m_store_list_level(struct s3m_store *store, const char *prefix,
                         char delimiter, s3m_level_fn fn, void *ctx)
{
    size_t prefix_len = strlen(prefix);
    int rc = 0;
    store_read_lock(store);
    struct s3m_object *node = index_seek(store, prefix, prefix_len, false);
    while (rc == 0 && node && has_prefix(node, prefix, prefix_len)) {
        if (node->key_len == prefix_len) {
            node = node->forward[0];
            continue;
        }
        struct s3m_level_entry entry;
        struct s3m_object *object;
        node = level_entry(store, node, prefix_len, delimiter, &entry, &object);
        struct s3m_object_info info;
        if (object) {
            object_fill_info(object, &info);
            entry.info = &info;
        }
        rc = fn(ctx, &entry);
        if (object)
            s3m_meta_unref(info.meta);
    }
    store_unlock(store);
    atomic_fetch_add_explicit(&store->lists, 1, memory_order_relaxed);
    return rc;
}

size_t s3m_store_count_prefixes(struct s3m_store *store, const char *prefix,
                                char delimiter, size_t limit)
{
    size_t prefix_len = strlen(prefix), count = 0, walked = 0;
    store_read_lock(store);
    struct s3m_object *node = index_seek(store, prefix, prefix_len, false);
    while (node && has_prefix(node, prefix, prefix_len)) {
        if (++walked > limit) {
            count = SIZE_MAX;
            break;
        }
        const char *key = object_key(node);
        const char *cut = memchr(key + prefix_len, delimiter, node->key_len - prefix_len);
        if (!cut) {
            node = node->forward[0];
            continue;
        }
        count++;
        node = index_seek_past_prefix(store, key, (size_t)(cut - key) + 1);
    }
    store_unlock(store);
    return count;
}
