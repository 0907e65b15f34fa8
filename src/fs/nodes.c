/*
 * nodes.c - the inode table (see the design note in fs_internal.h). Every
 * function here runs with fs->lock held by its caller.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "fs_internal.h"

#define INITIAL_BUCKETS 1024

static size_t name_bucket(const struct node_table *t, const struct fs_node *parent,
                          const char *name, size_t len)
{
    uint64_t h = s3m_hash(name, len) ^ ((uintptr_t)parent * 0x9E3779B97F4A7C15ULL);
    return h & (t->bucket_count - 1);
}

int nodes_init(struct s3m_fs *fs)
{
    struct node_table *t = &fs->nodes;
    t->by_name = s3m_calloc(INITIAL_BUCKETS, sizeof(*t->by_name));
    fs->root = s3m_calloc(1, sizeof(*fs->root));
    if (!t->by_name || !fs->root) {
        nodes_release(fs);
        return -ENOMEM;
    }
    t->bucket_count = INITIAL_BUCKETS;
    fs->root->is_dir = true;
    fs->root->lookups = 1;         /* pinned */
    return 0;
}

/* Drops what node holds, then frees it and its name. */
static void node_free(struct fs_node *node)
{
    if (node->kind == NODE_SNAPSHOT_ROOT)
        s3m_snapshot_unref(node->snapshot);
    else if (node->kind == NODE_PATH && !node->is_dir)
        s3m_object_unref(node->open_obj);
    if (node->parent && !node->name_inline)
        free((char *)node_name(node));
    free(node);
}

void nodes_release(struct s3m_fs *fs)
{
    struct node_table *t = &fs->nodes;
    for (size_t i = 0; t->by_name && i < t->bucket_count; i++) {
        struct fs_node *node = t->by_name[i];
        while (node) {
            struct fs_node *next = node->name_next;
            node_free(node);
            node = next;
        }
    }
    free(fs->root);
    free(t->by_name);
    memset(t, 0, sizeof(*t));
    fs->root = NULL;
}

/* Nodes per bucket before the table doubles: two keep the table at 4 to 8
 * bytes a node and a lookup at 1.5 to 2 nodes looked at, against 8 to 16
 * bytes and 1.25 to 1.5 at one. */
#define NODES_PER_BUCKET 2

static void grow(struct node_table *t)
{
    if (t->count < t->bucket_count * NODES_PER_BUCKET)
        return;
    size_t count = t->bucket_count * 2;
    struct fs_node **by_name = s3m_calloc(count, sizeof(*by_name));
    if (!by_name)
        return; /* longer chains, still correct */
    struct node_table bigger = {by_name, count, t->count};
    for (size_t i = 0; i < t->bucket_count; i++) {
        for (struct fs_node *n = t->by_name[i], *next; n; n = next) {
            next = n->name_next;
            size_t b = name_bucket(&bigger, n->parent, node_name(n), n->name_len);
            n->name_next = by_name[b];
            by_name[b] = n;
        }
    }
    free(t->by_name);
    *t = bigger;
}

struct fs_node *node_by_ino(struct s3m_fs *fs, fuse_ino_t ino)
{
    if (ino == FS_ROOT_INO)
        return fs->root;
    if (ino_is_object(ino))
        return NULL; /* a file of the live store: files.c */
    return (struct fs_node *)(uintptr_t)ino;
}

struct fs_node *node_find(struct s3m_fs *fs, struct fs_node *parent,
                          const char *name, size_t len)
{
    struct node_table *t = &fs->nodes;
    struct fs_node *node = t->by_name[name_bucket(t, parent, name, len)];
    for (; node; node = node->name_next)
        if (node->parent == parent && node->linked && node->name_len == len &&
            memcmp(node_name(node), name, len) == 0)
            return node;
    return NULL;
}

static void table_add(struct node_table *t, struct fs_node *node)
{
    size_t b = name_bucket(t, node->parent, node_name(node), node->name_len);
    node->name_next = t->by_name[b];
    t->by_name[b] = node;
}

static void table_remove(struct node_table *t, struct fs_node *node)
{
    struct fs_node **chain =
        &t->by_name[name_bucket(t, node->parent, node_name(node), node->name_len)];
    while (*chain != node)
        chain = &(*chain)->name_next;
    *chain = node->name_next;
    node->name_next = NULL;
}

void node_unlink(struct s3m_fs *fs, struct fs_node *node)
{
    (void)fs;
    node->linked = false;
}

/* Frees node when nothing needs it any more, then its parent likewise. */
static void node_maybe_free(struct s3m_fs *fs, struct fs_node *node)
{
    struct node_table *t = &fs->nodes;
    while (node && node != fs->root && node->lookups == 0 &&
           node->children == 0 && node->open_count == 0) {
        struct fs_node *parent = node->parent;
        table_remove(t, node);
        t->count--;
        node_free(node);
        parent->children--;
        node = parent;
    }
}

struct fs_node *node_lookup(struct s3m_fs *fs, struct fs_node *parent,
                            const char *name, size_t len, bool is_dir)
{
    struct fs_node *node = node_find(fs, parent, name, len);
    if (node && node->is_dir != is_dir) {
        node_unlink(fs, node);
        node = NULL;
    }
    if (node) {
        node->lookups++;
        return node;
    }
    if (len > UINT16_MAX)
        return NULL;          /* callers check names long before this */
    /* one allocation for the node and its name */
    size_t room = len + 1 > NODE_NAME_ROOM ? len + 1 : NODE_NAME_ROOM;
    node = s3m_calloc(1, offsetof(struct fs_node, name_bytes) + room);
    if (!node)
        return NULL;
    struct node_table *t = &fs->nodes;
    memcpy(node->name_bytes, name, len);
    node->parent = parent;
    node->name_inline = true;
    node->name_len = (uint16_t)len;
    node->is_dir = is_dir;
    node->kind = (uint8_t)fs_node_kind_for(fs, parent, name, len, &node->control_file);
    node->lookups = 1;
    node->linked = true;
    parent->children++;
    table_add(t, node);
    t->count++;
    grow(t);
    return node;
}

int node_move(struct s3m_fs *fs, struct fs_node *node, struct fs_node *parent,
              const char *name, size_t len)
{
    char *copy = len <= UINT16_MAX ? s3m_strndup(name, len) : NULL;
    if (!copy)
        return -ENOMEM;
    table_remove(&fs->nodes, node);
    struct fs_node *old_parent = node->parent;
    parent->children++;
    if (!node->name_inline)
        free((char *)node_name(node));
    memcpy(node->name_bytes, &copy, sizeof(copy));
    node->name_inline = false;
    node->name_len = (uint16_t)len;
    node->parent = parent;
    table_add(&fs->nodes, node);
    old_parent->children--;
    node_maybe_free(fs, old_parent);
    return 0;
}

void node_opened(struct s3m_fs *fs, fuse_ino_t ino, struct s3m_object *obj)
{
    pthread_mutex_lock(&fs->lock);
    struct fs_node *node = node_by_ino(fs, ino);
    struct s3m_object *old = NULL;
    if (node && node->kind == NODE_PATH && !node->is_dir) {
        node->open_count++;
        if (node->open_obj != obj) {
            old = node->open_obj;
            node->open_obj = s3m_object_ref(obj);
        }
    }
    pthread_mutex_unlock(&fs->lock);
    s3m_object_unref(old);
}

void node_closed(struct s3m_fs *fs, fuse_ino_t ino)
{
    pthread_mutex_lock(&fs->lock);
    struct fs_node *node = node_by_ino(fs, ino);
    struct s3m_object *old = NULL;
    if (node && node->kind == NODE_PATH && !node->is_dir &&
        node->open_count > 0 && --node->open_count == 0) {
        old = node->open_obj;
        node->open_obj = NULL;
        node_maybe_free(fs, node);
    }
    pthread_mutex_unlock(&fs->lock);
    s3m_object_unref(old);
}

struct s3m_object *node_open_object(struct s3m_fs *fs, fuse_ino_t ino,
                                    struct s3m_store **store)
{
    pthread_mutex_lock(&fs->lock);
    struct fs_node *node = node_by_ino(fs, ino);
    struct s3m_object *obj = NULL;
    if (node && node->kind == NODE_PATH && !node->is_dir && node->open_obj) {
        obj = s3m_object_ref(node->open_obj);
        /* the store of the node's view: the live one unless a snapshot's */
        *store = fs->store;
        const struct fs_node *n = node;
        while (n && n->kind == NODE_PATH && n != fs->root)
            n = n->parent;
        if (n && n->kind == NODE_SNAPSHOT_ROOT)
            *store = s3m_snapshot_store(n->snapshot);
    }
    pthread_mutex_unlock(&fs->lock);
    return obj;
}

void node_forget(struct s3m_fs *fs, struct fs_node *node, uint64_t count)
{
    if (node == fs->root)
        return;
    node->lookups = count > node->lookups ? 0 : node->lookups - count;
    node_maybe_free(fs, node);
}

int key_append(struct fs_key *key, const char *name, size_t len, bool is_dir)
{
    size_t extra = len + (is_dir ? 1 : 0);
    if (key->len + extra > S3M_KEY_MAX)
        return -ENAMETOOLONG;
    memcpy(key->text + key->len, name, len);
    key->len += len;
    if (is_dir)
        key->text[key->len++] = '/';
    key->text[key->len] = '\0';
    return 0;
}

/* Builds the key of node: key prefix, then each name from the view's root
 * down, each followed by '/' except the last one when !last_slash. */
static int build_key(const struct s3m_fs *fs, const struct fs_node *node,
                     struct fs_key *key, bool last_slash)
{
    const struct fs_node *chain[S3M_KEY_MAX];
    size_t depth = 0;
    const struct fs_node *n = node;
    for (; n && n != fs->root && n->kind == NODE_PATH; n = n->parent) {
        if (!n->linked)
            return -ENOENT; /* removed from the namespace */
        if (depth == S3M_KEY_MAX)
            return -ENAMETOOLONG;
        chain[depth++] = n;
    }
    if (n && n->kind != NODE_PATH && (n->kind != NODE_SNAPSHOT_ROOT || !n->linked))
        return -ENOENT;
    key->len = 0;
    key->text[0] = '\0';
    key->store = fs->store;
    key->readonly = false;
    if (n && n->kind == NODE_SNAPSHOT_ROOT) {
        key->store = s3m_snapshot_store(n->snapshot);
        key->readonly = true;
    }
    int rc = key_append(key, fs->key_prefix, fs->key_prefix_len, false);
    while (rc == 0 && depth > 0) {
        const struct fs_node *part = chain[--depth];
        rc = key_append(key, node_name(part), part->name_len, depth > 0 || last_slash);
    }
    return rc;
}

int node_dir_key(const struct s3m_fs *fs, const struct fs_node *node,
                 struct fs_key *key)
{
    return build_key(fs, node, key, true);
}

int node_key(const struct s3m_fs *fs, const struct fs_node *node,
             struct fs_key *key)
{
    return build_key(fs, node, key, node->is_dir);
}
