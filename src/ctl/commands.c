/*
 * commands.c - the commands written to .s3mem/ files. Each parses its line,
 * then either changes the store completely or not at all, filling the
 * result's message (success) or error (failure).
 *
 * Line syntax: words separated by spaces; a word may be double-quoted to
 * hold spaces ("/tmp/my dir"). Options are NAME=VALUE words or flags.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_internal.h"
#include "s3mem/format.h"
#include "s3mem/path.h"

#define MAX_WORDS 8

struct words {
    char *word[MAX_WORDS];
    int count;
};

/* Splits line in place into words. -EINVAL on an unclosed quote or too many
 * words. */
static int split_words(char *line, struct words *w, struct s3m_error *err)
{
    w->count = 0;
    char *p = line;
    while (*p) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p)
            break;
        if (w->count == MAX_WORDS)
            return s3m_error_set(err, EINVAL, "too many words in command");
        char *start = p;
        if (*p == '"') {
            start = ++p;
            while (*p && *p != '"')
                p++;
            if (*p != '"')
                return s3m_error_set(err, EINVAL, "unclosed quote in command");
        } else {
            while (*p && *p != ' ' && *p != '\t')
                p++;
        }
        if (*p)
            *p++ = '\0';
        w->word[w->count++] = start;
    }
    return 0;
}

/* A command's file or directory: absolute, and outside the mount (the
 * daemon reading or writing it would send requests to itself; with one
 * thread it would wait on itself for ever). */
static int check_path(const struct s3m_ctl *ctl, const char *path,
                      const char *what, struct s3m_error *err)
{
    if (!path)
        return s3m_error_set(err, EINVAL, "%s needs an absolute path", what);
    if (path[0] != '/')
        return s3m_error_set(err, EINVAL,
                             "path must be absolute: '%s' (relative paths would "
                             "depend on the daemon's directory)", path);
    if (ctl->mountpoint && s3m_path_within(path, ctl->mountpoint))
        return s3m_error_set(err, EINVAL,
                             "'%s' is inside this mount (%s): %s there would go "
                             "through s3mem itself; use a path outside it",
                             path, ctl->mountpoint, what);
    return 0;
}

static int check_snapshot_name(const char *name, struct s3m_error *err)
{
    if (!name)
        return s3m_error_set(err, EINVAL, "missing snapshot name");
    size_t len = strlen(name);
    if (!s3m_path_segment_ok(name, len) || !s3m_utf8_valid(name, len))
        return s3m_error_set(err, EINVAL,
                             "bad snapshot name '%s': use a file name without '/'", name);
    return 0;
}

/* A copy of the store before a command changes it, when anyone listens for
 * changes (NULL otherwise, or without memory: then everything changed).
 * Only import without clear needs it: swaps, restores and clear name the
 * keys they change themselves. */
static struct s3m_store *before_change(struct s3m_ctl *ctl)
{
    return ctl->on_change ? s3m_store_snapshot(ctl->store) : NULL;
}

/* The keys a command changed, collected for the listener. */
struct changed_keys {
    char **keys;                   /* owned, grown as keys come */
    size_t count;
    size_t cap;
    size_t max;
    bool overflow;                 /* too many, or no memory: everything */
};

static int collect_changed(void *ctx, const char *key)
{
    struct changed_keys *changed = ctx;
    if (changed->count == changed->cap) {
        size_t cap = changed->cap * 2 < changed->max ? changed->cap * 2 : changed->max;
        char **keys = cap > changed->cap
                    ? s3m_realloc(changed->keys, cap * sizeof(char *)) : NULL;
        if (!keys) {               /* over max, or no memory */
            changed->overflow = true;
            return 1;
        }
        changed->keys = keys;
        changed->cap = cap;
    }
    if (!(changed->keys[changed->count] = s3m_strdup(key))) {
        changed->overflow = true;
        return 1;
    }
    changed->count++;
    return 0;
}

/* Starts collecting; returns the function that collects, or NULL when no
 * one listens or there is no memory (then everything counts as changed). */
static s3m_store_diff_fn changed_start(struct s3m_ctl *ctl,
                                       struct changed_keys *changed)
{
    size_t max = ctl->changed_keys_max;
    *changed = (struct changed_keys){.max = max, .cap = max < 64 ? max : 64};
    if (!ctl->on_change)
        return NULL;
    changed->keys = s3m_malloc(changed->cap * sizeof(char *));
    changed->overflow = !changed->keys;
    return changed->overflow ? NULL : collect_changed;
}

/* Tells the listener the keys collected (everything when they overflowed)
 * and frees them. */
static void changed_notify(struct s3m_ctl *ctl, struct changed_keys *changed)
{
    if (changed->overflow) {
        for (size_t i = 0; i < changed->count; i++)
            free(changed->keys[i]);
        free(changed->keys);
        changed->keys = NULL;
        changed->count = 0;
    }
    if (ctl->on_change)
        ctl->on_change(ctl->on_change_ctx, changed->keys, changed->count);
}

/* Tells the listener which keys the command changed: those where before
 * (taken) and the store differ. */
static void notify_change(struct s3m_ctl *ctl, struct s3m_store *before)
{
    struct changed_keys changed;
    s3m_store_diff_fn collect = changed_start(ctl, &changed);
    if (collect && before)
        s3m_store_diff(before, ctl->store, collect, &changed);
    else
        changed.overflow = true;
    s3m_store_free(before);
    changed_notify(ctl, &changed);
}

/* fmt takes up to three %zu (a, b, c in order; the unused ones are 0). */
static void set_counts(struct ctl_result *result, const char *fmt, size_t a,
                       size_t b, size_t c)
{
    char counts[160];
    snprintf(counts, sizeof(counts), fmt, a, b, c);
    result->counts_json = s3m_strdup(counts);
}

static int run_snapshot(struct s3m_ctl *ctl, struct words *w, struct ctl_result *r)
{
    const char *name = w->count > 0 ? w->word[0] : NULL;
    int rc = check_snapshot_name(name, &r->error);
    if (rc)
        return rc;
    if (w->count > 1)
        return s3m_error_set(&r->error, EINVAL, "snapshot takes one name");
    struct s3m_snapshot *existing = s3m_ctl_snapshot_find(ctl, name);
    if (existing) {
        s3m_snapshot_unref(existing);
        return s3m_error_set(&r->error, EEXIST,
                             "snapshot '%s' exists: remove it first with rmdir", name);
    }
    struct s3m_store *copy = s3m_store_snapshot(ctl->store);
    struct s3m_snapshot *snapshot = copy ? ctl_snapshot_new(name, copy) : NULL;
    if (!snapshot) {
        s3m_store_free(copy);
        return s3m_error_set(&r->error, ENOMEM, "no memory for snapshot '%s'", name);
    }
    rc = ctl_snapshot_add(ctl, snapshot);
    if (rc) {
        s3m_snapshot_unref(snapshot);
        return s3m_error_set(&r->error, EEXIST, "snapshot '%s' exists", name);
    }
    size_t count = s3m_store_count(copy, NULL);
    snprintf(r->message, sizeof(r->message), "snapshot '%s' taken: %zu objects",
             name, count);
    set_counts(r, "{\"objects\":%zu}", count, 0, 0);
    return 0;
}

static int run_restore(struct s3m_ctl *ctl, struct words *w, struct ctl_result *r)
{
    const char *name = w->count > 0 ? w->word[0] : NULL;
    int rc = check_snapshot_name(name, &r->error);
    if (rc)
        return rc;
    struct s3m_snapshot *snapshot = s3m_ctl_snapshot_find(ctl, name);
    if (!snapshot)
        return s3m_error_set(&r->error, ENOENT, "no snapshot named '%s'", name);
    /* the restore reports the keys it changes as it swaps */
    struct changed_keys changed;
    s3m_store_diff_fn collect = changed_start(ctl, &changed);
    rc = s3m_store_restore(ctl->store, s3m_snapshot_store(snapshot), collect,
                           &changed);
    size_t count = s3m_store_count(s3m_snapshot_store(snapshot), NULL);
    s3m_snapshot_unref(snapshot);
    changed_notify(ctl, &changed);
    if (rc)
        return s3m_error_set(&r->error, rc, "no memory to restore '%s'", name);
    snprintf(r->message, sizeof(r->message), "restored snapshot '%s': %zu objects",
             name, count);
    set_counts(r, "{\"objects\":%zu}", count, 0, 0);
    return 0;
}

static int run_save(struct s3m_ctl *ctl, struct words *w, struct ctl_result *r)
{
    const char *path = w->count > 0 ? w->word[0] : ctl->persist_path;
    if (!path)
        return s3m_error_set(&r->error, EINVAL,
                             "save needs a path (no persist= path was given at mount)");
    if (w->count > 1)
        return s3m_error_set(&r->error, EINVAL, "save takes one path");
    int rc = check_path(ctl, path, "save", &r->error);
    return rc ? rc : ctl_save(ctl, path, r);
}

static int run_load(struct s3m_ctl *ctl, struct words *w, struct ctl_result *r)
{
    const char *path = w->count > 0 ? w->word[0] : NULL;
    int rc = check_path(ctl, path, "load", &r->error);
    if (rc)
        return rc;
    if (w->count > 1)
        return s3m_error_set(&r->error, EINVAL, "load takes one path");
    struct s3m_store *loaded = NULL;
    struct s3m_load_report report;
    /* bodies that did not change are shared with the store, not copied */
    rc = s3m_format_load_over(path, s3m_store_config(ctl->store), ctl->store,
                              &loaded, &report, &r->error);
    if (rc)
        return rc;
    struct changed_keys changed;
    s3m_store_diff_fn collect = changed_start(ctl, &changed);
    s3m_store_swap_in(ctl->store, loaded, S3M_KEEP_SAME_TO_MS, collect, &changed);
    s3m_store_free(loaded);
    changed_notify(ctl, &changed);
    snprintf(r->message, sizeof(r->message), "loaded %zu objects from '%s'",
             report.objects, path);
    set_counts(r, "{\"objects\":%zu}", report.objects, 0, 0);
    return 0;
}

/* Parses export/import options after the directory. */
static int parse_options(struct words *w, bool is_import, bool *flag,
                         const char **resources, struct s3m_error *err)
{
    for (int i = 1; i < w->count; i++) {
        const char *word = w->word[i];
        if (strncmp(word, "resources=", 10) == 0)
            *resources = word + 10;
        else if (is_import && strcmp(word, "clear") == 0)
            *flag = true;
        else if (!is_import && strcmp(word, "compress=true") == 0)
            *flag = true;
        else if (!is_import && strcmp(word, "compress=false") == 0)
            *flag = false;
        else
            return s3m_error_set(err, EINVAL, "unknown option '%s' (%s)", word,
                                 is_import ? "import DIR [clear] [resources=a,b]"
                                           : "export DIR [compress=true|false] [resources=a,b]");
    }
    return 0;
}

static int run_export(struct s3m_ctl *ctl, struct words *w, struct ctl_result *r)
{
    const char *dir = w->count > 0 ? w->word[0] : NULL;
    int rc = check_path(ctl, dir, "export", &r->error);
    struct s3m_export_options options;
    s3m_export_options_init(&options);
    options.key_prefix = ctl->key_prefix;
    if (rc == 0)
        rc = parse_options(w, false, &options.compress, &options.resources, &r->error);
    if (rc)
        return rc;
    struct s3m_export_report report;
    rc = s3m_format_export_backup(ctl->store, dir, &options, &report, &r->error);
    if (rc)
        return rc;
    int used = snprintf(r->message, sizeof(r->message),
                        "exported %zu records of %zu resources to '%s'",
                        report.records, report.resources, dir);
    /* a newcomer's export of plain files writes an empty backup: say so,
     * before an import with clear removes them */
    if (report.outside && used > 0 && (size_t)used < sizeof(r->message))
        snprintf(r->message + used, sizeof(r->message) - (size_t)used,
                 "; %zu objects outside resource=<name>/ are not in it (a "
                 "backup holds s3db.js resources; save keeps every object)",
                 report.outside);
    set_counts(r, "{\"records\":%zu,\"resources\":%zu,\"outside\":%zu}",
               report.records, report.resources, report.outside);
    return 0;
}

static int run_import(struct s3m_ctl *ctl, struct words *w, struct ctl_result *r)
{
    const char *dir = w->count > 0 ? w->word[0] : NULL;
    int rc = check_path(ctl, dir, "import", &r->error);
    struct s3m_import_options options = {.key_prefix = ctl->key_prefix};
    if (rc == 0)
        rc = parse_options(w, true, &options.clear, &options.resources, &r->error);
    if (rc)
        return rc;
    struct s3m_import_report report;
    memset(&report, 0, sizeof(report));
    /* with clear, the swap names the keys it changes; else a copy of the
     * store before is compared with it after */
    struct changed_keys changed;
    struct s3m_store *before = NULL;
    if (options.clear) {
        options.changed = changed_start(ctl, &changed);
        options.changed_ctx = &changed;
    } else {
        before = before_change(ctl);
    }
    size_t held = options.clear ? s3m_store_count(ctl->store, ctl->key_prefix) : 0;
    rc = s3m_format_import_backup(ctl->store, dir, &options, &report, &r->error);
    r->counts_json = s3m_import_report_json(&report);
    if (options.clear)
        changed_notify(ctl, &changed);
    else
        notify_change(ctl, before); /* also after a failure: nothing is assumed */
    if (rc == 0) {
        int used = snprintf(r->message, sizeof(r->message),
                            "imported %zu records from '%s' (%zu merged, %zu "
                            "bad lines)", report.records, dir, report.merges,
                            report.error_count);
        /* clear replaced everything: say what there was and what is left */
        if (options.clear && used > 0 && (size_t)used < sizeof(r->message))
            snprintf(r->message + used, sizeof(r->message) - (size_t)used,
                     "; clear: %zu objects before, %zu now", held,
                     s3m_store_count(ctl->store, ctl->key_prefix));
    }
    s3m_import_report_release(&report);
    return rc;
}

static int run_clear(struct s3m_ctl *ctl, struct words *w, struct ctl_result *r)
{
    size_t count = s3m_store_count(ctl->store, NULL);
    struct changed_keys changed;
    s3m_store_clear(ctl->store, changed_start(ctl, &changed), &changed);
    changed_notify(ctl, &changed);
    snprintf(r->message, sizeof(r->message), "cleared %zu objects", count);
    set_counts(r, "{\"objects\":%zu}", count, 0, 0);
    return 0;
}

int ctl_run_command(struct s3m_ctl *ctl, enum s3m_ctl_file file,
                    const char *line, struct ctl_result *result)
{
    char copy[4096];
    struct words w;
    snprintf(copy, sizeof(copy), "%s", line);
    int rc = split_words(copy, &w, &result->error);
    if (rc)
        return rc;
    switch (file) {
    case S3M_CTL_SNAPSHOT: return run_snapshot(ctl, &w, result);
    case S3M_CTL_RESTORE: return run_restore(ctl, &w, result);
    case S3M_CTL_SAVE: return run_save(ctl, &w, result);
    case S3M_CTL_LOAD: return run_load(ctl, &w, result);
    case S3M_CTL_EXPORT: return run_export(ctl, &w, result);
    case S3M_CTL_IMPORT: return run_import(ctl, &w, result);
    case S3M_CTL_CLEAR: return run_clear(ctl, &w, result);
    default:
        return s3m_error_set(&result->error, EINVAL, "%s takes no commands",
                             s3m_ctl_file_name(file));
    }
}
