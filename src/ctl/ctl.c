/*
 * ctl.c - the control plane's lifecycle, its file table, named snapshots,
 * the status of the last command, persistence and the autopersist thread.
 */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl_internal.h"
#include "s3mem/format.h"

static const struct {
    const char *name;
    bool writable;
} files[S3M_CTL_FILE_COUNT] = {
    [S3M_CTL_STATS] = {"stats", false},
    [S3M_CTL_KEYS] = {"keys", false},
    [S3M_CTL_SHADOWED] = {"shadowed", false},
    [S3M_CTL_SNAPSHOT] = {"snapshot", true},
    [S3M_CTL_RESTORE] = {"restore", true},
    [S3M_CTL_SAVE] = {"save", true},
    [S3M_CTL_LOAD] = {"load", true},
    [S3M_CTL_EXPORT] = {"export", true},
    [S3M_CTL_IMPORT] = {"import", true},
    [S3M_CTL_CLEAR] = {"clear", true},
    [S3M_CTL_STATUS] = {"status", false},
};

const char *s3m_ctl_file_name(enum s3m_ctl_file file)
{
    return file < S3M_CTL_FILE_COUNT ? files[file].name : NULL;
}

int s3m_ctl_file_find(const char *name)
{
    for (int i = 0; i < S3M_CTL_FILE_COUNT; i++)
        if (strcmp(files[i].name, name) == 0)
            return i;
    return -1;
}

bool s3m_ctl_file_writable(enum s3m_ctl_file file)
{
    return file < S3M_CTL_FILE_COUNT && files[file].writable;
}

/* ---- snapshots ------------------------------------------------------------ */

struct s3m_snapshot *ctl_snapshot_new(const char *name, struct s3m_store *store)
{
    struct s3m_snapshot *snapshot = s3m_calloc(1, sizeof(*snapshot));
    if (!snapshot)
        return NULL;
    snapshot->name = s3m_strdup(name);
    if (!snapshot->name) {
        free(snapshot);
        return NULL;
    }
    atomic_init(&snapshot->refcount, 1);
    snapshot->store = store;
    return snapshot;
}

struct s3m_snapshot *s3m_snapshot_ref(struct s3m_snapshot *snapshot)
{
    if (snapshot)
        atomic_fetch_add_explicit(&snapshot->refcount, 1, memory_order_relaxed);
    return snapshot;
}

void s3m_snapshot_unref(struct s3m_snapshot *snapshot)
{
    if (!snapshot || atomic_fetch_sub_explicit(&snapshot->refcount, 1,
                                               memory_order_acq_rel) != 1)
        return;
    s3m_store_free(snapshot->store);
    free(snapshot->name);
    free(snapshot);
}

struct s3m_store *s3m_snapshot_store(const struct s3m_snapshot *snapshot)
{
    return snapshot->store;
}

const char *s3m_snapshot_name(const struct s3m_snapshot *snapshot)
{
    return snapshot->name;
}

int ctl_snapshot_add(struct s3m_ctl *ctl, struct s3m_snapshot *snapshot)
{
    pthread_mutex_lock(&ctl->lock);
    struct s3m_snapshot **link = &ctl->snapshots;
    int rc = 0;
    for (; *link; link = &(*link)->next)
        if (strcmp((*link)->name, snapshot->name) == 0)
            rc = -EEXIST;
    if (rc == 0)
        *link = snapshot;
    pthread_mutex_unlock(&ctl->lock);
    return rc;
}

struct s3m_snapshot *s3m_ctl_snapshot_find(struct s3m_ctl *ctl, const char *name)
{
    struct s3m_snapshot *found = NULL;
    pthread_mutex_lock(&ctl->lock);
    for (struct s3m_snapshot *s = ctl->snapshots; s && !found; s = s->next)
        if (strcmp(s->name, name) == 0)
            found = s3m_snapshot_ref(s);
    pthread_mutex_unlock(&ctl->lock);
    return found;
}

int s3m_ctl_snapshot_drop(struct s3m_ctl *ctl, const char *name)
{
    struct s3m_snapshot *dropped = NULL;
    pthread_mutex_lock(&ctl->lock);
    for (struct s3m_snapshot **link = &ctl->snapshots; *link; link = &(*link)->next)
        if (strcmp((*link)->name, name) == 0) {
            dropped = *link;
            *link = dropped->next;
            dropped->next = NULL;
            break;
        }
    pthread_mutex_unlock(&ctl->lock);
    if (dropped)
        s3m_log("snapshot '%s' dropped", name);
    s3m_snapshot_unref(dropped);
    return dropped ? 0 : -ENOENT;
}

char **s3m_ctl_snapshot_names(struct s3m_ctl *ctl, size_t *count)
{
    pthread_mutex_lock(&ctl->lock);
    size_t n = 0;
    for (struct s3m_snapshot *s = ctl->snapshots; s; s = s->next)
        n++;
    char **names = s3m_calloc(n + 1, sizeof(*names));
    size_t i = 0;
    for (struct s3m_snapshot *s = ctl->snapshots; names && s; s = s->next, i++)
        if (!(names[i] = s3m_strdup(s->name))) {
            while (i > 0)
                free(names[--i]);
            free(names);
            names = NULL;
        }
    pthread_mutex_unlock(&ctl->lock);
    *count = names ? n : 0;
    return names;
}

/* ---- lifecycle ---------------------------------------------------------------- */

static char *initial_status(void)
{
    return s3m_strdup("{\"command\":null,\"ok\":true,\"message\":\"no command yet\"}\n");
}

/* How many changed keys a command lists for the kernel cache notifier
 * before it reports "everything changed". The environment variable
 * S3MEM_CHANGED_KEYS_MAX lowers it for the tests of that path. */
static size_t changed_keys_max(void)
{
    const char *text = getenv("S3MEM_CHANGED_KEYS_MAX");
    char *end;
    unsigned long value = text ? strtoul(text, &end, 10) : 0;
    if (!text || *end || value == 0 || value > S3M_CTL_CHANGED_KEYS_MAX)
        return S3M_CTL_CHANGED_KEYS_MAX;
    return value;
}

struct s3m_ctl *s3m_ctl_new(const struct s3m_ctl_config *config,
                            struct s3m_store *store)
{
    struct s3m_ctl *ctl = s3m_calloc(1, sizeof(*ctl));
    if (!ctl)
        return NULL;
    ctl->store = store;
    ctl->key_prefix = s3m_strdup(config->key_prefix ? config->key_prefix : "");
    ctl->persist_path = config->persist_path ? s3m_strdup(config->persist_path) : NULL;
    ctl->mountpoint = config->mountpoint ? s3m_strdup(config->mountpoint) : NULL;
    ctl->status = initial_status();
    if (!ctl->key_prefix || !ctl->status ||
        (config->persist_path && !ctl->persist_path) ||
        (config->mountpoint && !ctl->mountpoint)) {
        free(ctl->key_prefix);
        free(ctl->persist_path);
        free(ctl->mountpoint);
        free(ctl->status);
        free(ctl);
        return NULL;
    }
    pthread_mutex_init(&ctl->command_lock, NULL);
    pthread_mutex_init(&ctl->lock, NULL);
    pthread_cond_init(&ctl->autopersist_wake, NULL);
    ctl->saved_generation = s3m_store_generation(store);
    ctl->changed_keys_max = changed_keys_max();
    return ctl;
}

void s3m_ctl_free(struct s3m_ctl *ctl)
{
    if (!ctl)
        return;
    s3m_ctl_stop_autopersist(ctl);
    while (ctl->snapshots) {
        struct s3m_snapshot *next = ctl->snapshots->next;
        s3m_snapshot_unref(ctl->snapshots);
        ctl->snapshots = next;
    }
    pthread_cond_destroy(&ctl->autopersist_wake);
    pthread_mutex_destroy(&ctl->lock);
    pthread_mutex_destroy(&ctl->command_lock);
    free(ctl->key_prefix);
    free(ctl->mountpoint);
    free(ctl->persist_path);
    free(ctl->status);
    free(ctl);
}

void s3m_ctl_on_change(struct s3m_ctl *ctl, s3m_ctl_changed_fn fn, void *ctx)
{
    ctl->on_change = fn;
    ctl->on_change_ctx = ctx;
}

/* ---- reading and commands --------------------------------------------------- */

static int copy_text(const char *source, char **text, size_t *len)
{
    *text = s3m_strdup(source);
    *len = *text ? strlen(*text) : 0;
    return *text ? 0 : -ENOMEM;
}

static int snapshot_list_text(struct s3m_ctl *ctl, char **text, size_t *len)
{
    size_t count, size = 1;
    char **names = s3m_ctl_snapshot_names(ctl, &count);
    if (!names)
        return -ENOMEM;
    for (size_t i = 0; i < count; i++)
        size += strlen(names[i]) + 1;
    char *out = s3m_malloc(size);
    size_t used = 0;
    for (size_t i = 0; i < count; i++) {
        if (out) {
            size_t n = strlen(names[i]);
            memcpy(out + used, names[i], n);
            out[used + n] = '\n';
            used += n + 1;
        }
        free(names[i]);
    }
    free(names);
    if (!out)
        return -ENOMEM;
    out[used] = '\0';
    *text = out;
    *len = used;
    return 0;
}

int s3m_ctl_read(struct s3m_ctl *ctl, enum s3m_ctl_file file, char **text,
                 size_t *len)
{
    int rc;
    switch (file) {
    case S3M_CTL_STATS: return ctl_text_stats(ctl, text, len);
    case S3M_CTL_KEYS: return ctl_text_keys(ctl, text, len);
    case S3M_CTL_SHADOWED: return ctl_text_shadowed(ctl, text, len);
    case S3M_CTL_SNAPSHOT: return snapshot_list_text(ctl, text, len);
    case S3M_CTL_STATUS:
        pthread_mutex_lock(&ctl->lock);
        rc = copy_text(ctl->status, text, len);
        pthread_mutex_unlock(&ctl->lock);
        return rc;
    default:
        return copy_text("", text, len);
    }
}

static double elapsed_ms(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) * 1e3 +
           (double)(now.tv_nsec - start->tv_nsec) / 1e6;
}

/* Records the status JSON of a finished command and logs it. */
static void record_status(struct s3m_ctl *ctl, const char *command,
                          const struct ctl_result *result, double ms)
{
    bool ok = result->error.code == 0;
    char *message = s3m_utf8_sanitize(ok ? result->message : result->error.message);
    json_t *counts = result->counts_json ? json_loads(result->counts_json, 0, NULL)
                                         : json_object();
    char when[32];
    s3m_time_format_iso(s3m_time_now_ns(), when);
    json_t *status = json_pack("{s:s, s:b, s:s, s:i, s:o, s:f, s:s}",
                               "command", command, "ok", ok,
                               "message", message ? message : "out of memory",
                               "errno", result->error.code,
                               "counts", counts ? counts : json_object(),
                               "durationMs", ms, "time", when);
    char *text = status ? json_dumps(status, JSON_COMPACT | JSON_REAL_PRECISION(6)) : NULL;
    json_decref(status);
    char *line = text ? s3m_malloc(strlen(text) + 2) : NULL;
    if (line) {
        strcpy(line, text);
        strcat(line, "\n");
        pthread_mutex_lock(&ctl->lock);
        free(ctl->status);
        ctl->status = line;
        pthread_mutex_unlock(&ctl->lock);
    }
    free(text);
    if (ok)
        s3m_log("%s: %s (%.1f ms)", command, message ? message : "", ms);
    else
        s3m_log("%s failed: %s", command, message ? message : "");
    free(message);
}

int s3m_ctl_command(struct s3m_ctl *ctl, enum s3m_ctl_file file,
                    const char *data, size_t len)
{
    if (!s3m_ctl_file_writable(file))
        return -EINVAL;
    char line[4096];
    while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r'))
        len--;
    struct ctl_result result;
    memset(&result, 0, sizeof(result));
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    pthread_mutex_lock(&ctl->command_lock);
    if (len >= sizeof(line) || memchr(data, '\n', len) || memchr(data, '\0', len)) {
        s3m_error_set(&result.error, EINVAL,
                      "a command is one line of at most %zu bytes", sizeof(line) - 1);
    } else {
        memcpy(line, data, len);
        line[len] = '\0';
        ctl_run_command(ctl, file, line, &result);
    }
    pthread_mutex_unlock(&ctl->command_lock);
    record_status(ctl, files[file].name, &result, elapsed_ms(&start));
    free(result.counts_json);
    return -result.error.code;
}

/* ---- persistence ------------------------------------------------------------ */

int ctl_save(struct s3m_ctl *ctl, const char *path, struct ctl_result *result)
{
    uint64_t generation = s3m_store_generation(ctl->store);
    struct s3m_save_report report;
    int rc = s3m_format_save(ctl->store, path, &report, &result->error);
    if (rc)
        return rc;
    if (ctl->persist_path && strcmp(path, ctl->persist_path) == 0) {
        ctl->saved_generation = generation;
        ctl->saved_once = true;
    }
    snprintf(result->message, sizeof(result->message),
             "saved %zu objects to '%s'", report.objects, path);
    char counts[128];
    snprintf(counts, sizeof(counts), "{\"objects\":%zu,\"bytes\":%llu}",
             report.objects, (unsigned long long)report.file_bytes);
    result->counts_json = s3m_strdup(counts);
    return 0;
}

int s3m_ctl_persist(struct s3m_ctl *ctl, bool only_if_changed)
{
    if (!ctl->persist_path)
        return 0;
    struct ctl_result result;
    memset(&result, 0, sizeof(result));
    pthread_mutex_lock(&ctl->command_lock);
    int rc = 0;
    bool unchanged = s3m_store_generation(ctl->store) == ctl->saved_generation;
    if (!(only_if_changed && unchanged))
        rc = ctl_save(ctl, ctl->persist_path, &result);
    pthread_mutex_unlock(&ctl->command_lock);
    if (rc)
        s3m_log("persist to '%s' failed: %s", ctl->persist_path, result.error.message);
    free(result.counts_json);
    return rc;
}

static void *autopersist_main(void *arg)
{
    struct s3m_ctl *ctl = arg;
    pthread_mutex_lock(&ctl->lock);
    while (!ctl->autopersist_stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        uint64_t ns = (uint64_t)until.tv_nsec + (uint64_t)ctl->autopersist_ms * 1000000ULL;
        until.tv_sec += (time_t)(ns / 1000000000ULL);
        until.tv_nsec = (long)(ns % 1000000000ULL);
        pthread_cond_timedwait(&ctl->autopersist_wake, &ctl->lock, &until);
        if (ctl->autopersist_stop)
            break;
        pthread_mutex_unlock(&ctl->lock);
        s3m_ctl_persist(ctl, true);
        pthread_mutex_lock(&ctl->lock);
    }
    pthread_mutex_unlock(&ctl->lock);
    return NULL;
}

int s3m_ctl_start_autopersist(struct s3m_ctl *ctl, unsigned interval_ms)
{
    if (!ctl->persist_path)
        return -EINVAL;
    ctl->autopersist_ms = interval_ms ? interval_ms : 1000;
    ctl->autopersist_stop = false;
    int rc = pthread_create(&ctl->autopersist_thread, NULL, autopersist_main, ctl);
    if (rc)
        return -rc;
    ctl->autopersist_running = true;
    return 0;
}

void s3m_ctl_stop_autopersist(struct s3m_ctl *ctl)
{
    if (!ctl->autopersist_running)
        return;
    pthread_mutex_lock(&ctl->lock);
    ctl->autopersist_stop = true;
    pthread_cond_signal(&ctl->autopersist_wake);
    pthread_mutex_unlock(&ctl->lock);
    pthread_join(ctl->autopersist_thread, NULL);
    ctl->autopersist_running = false;
}
