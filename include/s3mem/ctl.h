/*
 * ctl.h - the control plane behind .s3mem/ (DESIGN section 5): named
 * snapshots, the text of the readable control files, and the commands
 * written to the others. Nothing here knows FUSE: the FUSE layer maps
 * .s3mem/ paths to these calls.
 *
 * Every command either succeeds or leaves the store exactly as it was; it
 * returns 0 or -errno, and records in the status (the text of
 * .s3mem/status) a JSON object: command, ok, message, counts, durationMs.
 * A failure is also logged with its reason.
 *
 * Threads: any function may be called from any thread. ctl->lock (a mutex)
 * guards the snapshot list and the status; commands run one at a time
 * (command_lock), so two restores never interleave. Lock order: command_lock,
 * then the store's lock (inside store calls), then ctl->lock is taken only
 * briefly and never while calling into the store.
 */
#ifndef S3MEM_CTL_H
#define S3MEM_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "s3mem/store.h"

/* The files of .s3mem/, in the order readdir lists them. */
enum s3m_ctl_file {
    S3M_CTL_STATS,
    S3M_CTL_KEYS,
    S3M_CTL_SHADOWED,
    S3M_CTL_SNAPSHOT,
    S3M_CTL_RESTORE,
    S3M_CTL_SAVE,
    S3M_CTL_LOAD,
    S3M_CTL_EXPORT,
    S3M_CTL_IMPORT,
    S3M_CTL_CLEAR,
    S3M_CTL_STATUS,
    S3M_CTL_FILE_COUNT,
};

/* The name of a control file ("stats", ...). */
const char *s3m_ctl_file_name(enum s3m_ctl_file file);
/* The file called name, or -1. */
int s3m_ctl_file_find(const char *name);
/* True for files that take commands (written), false for read-only ones. */
bool s3m_ctl_file_writable(enum s3m_ctl_file file);

/* A named snapshot: a copy-on-write store, refcounted so that a view of it
 * (.s3mem/snapshots/NAME/) can outlive its removal from the list. */
struct s3m_snapshot;
struct s3m_snapshot *s3m_snapshot_ref(struct s3m_snapshot *snapshot);
void s3m_snapshot_unref(struct s3m_snapshot *snapshot);  /* NULL is fine */
struct s3m_store *s3m_snapshot_store(const struct s3m_snapshot *snapshot);
const char *s3m_snapshot_name(const struct s3m_snapshot *snapshot);

struct s3m_ctl_config {
    const char *key_prefix;     /* borrowed, copied: the mount's key prefix */
    const char *persist_path;   /* borrowed, copied; NULL = none (save needs PATH) */
    const char *mountpoint;     /* borrowed, copied; canonical; paths inside it
                                 * are refused (the daemon would wait on its
                                 * own requests); NULL = no check */
};

struct s3m_ctl;

/* New control plane over store (borrowed: outlives ctl), or NULL. */
struct s3m_ctl *s3m_ctl_new(const struct s3m_ctl_config *config,
                            struct s3m_store *store);
void s3m_ctl_free(struct s3m_ctl *ctl);

/* The current text of a readable control file (stats, keys, shadowed,
 * snapshot, status; the command files read as empty). *text is new
 * (free it); 0 or -ENOMEM. */
int s3m_ctl_read(struct s3m_ctl *ctl, enum s3m_ctl_file file, char **text,
                 size_t *len);

/* Runs the command written to file: data (len bytes, one line; a trailing
 * newline is ignored). Returns 0 or -errno; -EINVAL for a read-only file or
 * a malformed command. */
int s3m_ctl_command(struct s3m_ctl *ctl, enum s3m_ctl_file file,
                    const char *data, size_t len);

/* New reference to the snapshot called name, or NULL. */
struct s3m_snapshot *s3m_ctl_snapshot_find(struct s3m_ctl *ctl, const char *name);
/* Drops the snapshot called name: 0 or -ENOENT. */
int s3m_ctl_snapshot_drop(struct s3m_ctl *ctl, const char *name);
/* New NULL-terminated array of new name strings (free each and the array),
 * in the order taken; NULL on -ENOMEM. */
char **s3m_ctl_snapshot_names(struct s3m_ctl *ctl, size_t *count);

/* Called after a command replaced the store's contents (restore, load,
 * import, clear), so the FUSE layer can drop the kernel's caches: keys (new,
 * taken: free each and the array) are the keys that changed, or NULL when
 * too many changed to list (drop everything): more than
 * S3M_CTL_CHANGED_KEYS_MAX, or fewer when the environment variable
 * S3MEM_CHANGED_KEYS_MAX says so (for tests). Listing each key lets the
 * kernel keep its entries for files that are still files. */
#define S3M_CTL_CHANGED_KEYS_MAX 65536
typedef void (*s3m_ctl_changed_fn)(void *ctx, char **keys, size_t count);
void s3m_ctl_on_change(struct s3m_ctl *ctl, s3m_ctl_changed_fn fn, void *ctx);

/* Saves to the persist path now (unmount, SIGTERM, autopersist): 0 when
 * saved or when there is no persist path, else -errno (logged). When
 * only_if_changed, skips the save while the store is unchanged since the
 * last one. */
int s3m_ctl_persist(struct s3m_ctl *ctl, bool only_if_changed);

/* Starts a thread that saves to the persist path every interval_ms
 * milliseconds while the store changed since the last save. The save works
 * on a snapshot: FUSE requests go on meanwhile. 0, -EINVAL without a
 * persist path, or -errno. */
int s3m_ctl_start_autopersist(struct s3m_ctl *ctl, unsigned interval_ms);
/* Stops that thread (waits for a save in progress); fine when not started. */
void s3m_ctl_stop_autopersist(struct s3m_ctl *ctl);

#endif
