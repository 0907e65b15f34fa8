/*
 * ctl_internal.h - the control plane's private structures (see ctl.h).
 */
#ifndef S3MEM_CTL_INTERNAL_H
#define S3MEM_CTL_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "s3mem/ctl.h"
#include "s3mem/util.h"

struct s3m_snapshot {
    atomic_uint refcount;
    char *name;                     /* owned */
    struct s3m_store *store;        /* owned: freed with the last reference */
    struct s3m_snapshot *next;      /* guarded by ctl->lock: the list */
};

struct s3m_ctl {
    struct s3m_store *store;        /* borrowed */
    char *key_prefix;               /* owned */
    char *persist_path;             /* owned, NULL = none */
    char *mountpoint;               /* owned, constant; NULL = none */
    pthread_mutex_t command_lock;   /* one command at a time */
    pthread_mutex_t lock;           /* guards the fields below */
    struct s3m_snapshot *snapshots; /* guarded by lock: oldest first */
    char *status;                   /* guarded by lock: owned JSON text */
    uint64_t saved_generation;      /* guarded by command_lock */
    bool saved_once;                /* guarded by command_lock */
    s3m_ctl_changed_fn on_change;   /* set once before use */
    void *on_change_ctx;
    size_t changed_keys_max;        /* constant: more changed keys than
                                     * this count as "everything" */
    /* autopersist thread */
    pthread_t autopersist_thread;
    bool autopersist_running;       /* guarded by lock */
    bool autopersist_stop;          /* guarded by lock */
    pthread_cond_t autopersist_wake;
    unsigned autopersist_ms;
};

/* What a command reports: message and counts for status. */
struct ctl_result {
    struct s3m_error error;         /* code 0 on success */
    char message[512];              /* on success */
    char *counts_json;              /* owned, NULL = {} */
};

/* ---- commands.c: each runs with command_lock held */
int ctl_run_command(struct s3m_ctl *ctl, enum s3m_ctl_file file,
                    const char *line, struct ctl_result *result);

/* ---- text.c */
int ctl_text_stats(struct s3m_ctl *ctl, char **text, size_t *len);
int ctl_text_keys(struct s3m_ctl *ctl, char **text, size_t *len);
int ctl_text_shadowed(struct s3m_ctl *ctl, char **text, size_t *len);
/* Counts the keys under the key prefix that cannot be shown as paths. */
size_t ctl_shadowed_count(struct s3m_ctl *ctl);

/* ---- ctl.c */
struct s3m_snapshot *ctl_snapshot_new(const char *name, struct s3m_store *store);
/* Adds snapshot to the list (taking the reference): -EEXIST when taken. */
int ctl_snapshot_add(struct s3m_ctl *ctl, struct s3m_snapshot *snapshot);
int ctl_save(struct s3m_ctl *ctl, const char *path, struct ctl_result *result);

#endif
