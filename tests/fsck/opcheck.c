/*
 * opcheck.c - a seeded, randomized data-integrity checker for a mounted s3mem.
 *
 * Design note. Each worker owns a directory of the mount and replays every
 * operation it makes on a model of what POSIX promises there: names map to
 * inodes; an inode has a body (holes read as zeros), user.* attributes (names
 * case-insensitive, stored lowercased) and a count of the names and open
 * descriptors that keep it alive, so a descriptor keeps its data across
 * rename and unlink. The model predicts every result, data, size, listing,
 * attribute value and errno (the VFS order of checks for rename); the first
 * difference stops the run, prints the last LOG_KEEP operations with their
 * arguments and exits 1. The same seed and options replay the same sequence.
 *
 * Snapshots (--snapshot-every N): every N operations the worker writes a name
 * to CTL/snapshot and keeps a deep copy of the model; it compares the
 * read-only view CTL/snapshots/NAME/ with that copy, sometimes restores one
 * (closing every descriptor first: a descriptor keeps the object it opened)
 * and drops old ones with rmdir. Restore changes the whole store, so it is
 * done only when a single worker runs (--procs 1) and not --no-restore.
 *
 * Usage: opcheck MOUNTPOINT [options]; opcheck --help lists them.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "s3mem/util.h"   /* s3m_md5_*: linked from src/util/md5.c */

#define LOG_KEEP 50
#define LOG_LINE 320
#define REL_PATH 128          /* a path inside the worker's directory */
#define MAX_FDS 8             /* descriptors a worker keeps open */
#define MAX_DIRS 8            /* directories in a worker's tree */
#define MAX_DEPTH 3           /* deepest directory (files go one deeper) */
#define MAX_SNAPSHOTS 3       /* snapshots kept before the oldest is dropped */
#define XATTR_VALUE_MAX 64
#define CHUNK (64 * 1024)     /* s3mem's body chunk: offsets are biased to it */

static const char *const dir_names[] = {"d0", "d1", "d2", "d3"};
#define DIR_NAME_COUNT (sizeof(dir_names) / sizeof(dir_names[0]))
/* Attribute names as stored (lowercase); calls use them in random case. */
static const char *const xattr_names[] = {"alpha", "bravo", "charlie-x",
                                          "delta_4", "echo.e", "foxtrot"};
#define XATTR_COUNT (sizeof(xattr_names) / sizeof(xattr_names[0]))

/* ---- options -------------------------------------------------------------- */

struct options {
    const char *mountpoint;
    const char *control_dir;
    uint64_t seed;
    uint64_t ops;
    unsigned files;
    uint64_t max_size;
    uint64_t snapshot_every;
    unsigned procs;
    bool verbose;
    bool no_restore;
    unsigned skip;             /* SKIP_* bits: known issues not checked */
};

/* Checks --skip can turn off while a known bug is open. */
enum {
    SKIP_UNLINKED_FSTAT = 1,   /* fstat of an open, unlinked file */
    SKIP_CONTROL_READ = 2,     /* reading CTL/snapshot to check the list */
};
static const struct { const char *name; unsigned bit; } skip_names[] = {
    {"unlinked-fstat", SKIP_UNLINKED_FSTAT},
    {"control-read", SKIP_CONTROL_READ},
};
#define SKIP_NAME_COUNT (sizeof(skip_names) / sizeof(skip_names[0]))

/* ---- the model ------------------------------------------------------------ */

struct xattr_slot {
    bool set;
    size_t len;
    unsigned char value[XATTR_VALUE_MAX];
};

struct inode {
    bool used;
    bool is_dir;
    int links;                 /* names that point here: 0 or 1 */
    int opens;                 /* open descriptors */
    unsigned char *data;       /* owned; bytes [size, capacity) are junk */
    uint64_t size, capacity;
    struct xattr_slot xattrs[XATTR_COUNT];
};

struct entry {
    char path[REL_PATH];       /* relative to the worker's directory */
    int ino;                   /* index in model.inodes */
};

struct model {
    struct inode *inodes;      /* owned, inode_count slots */
    size_t inode_count;
    struct entry *entries;     /* owned, entry_count used of entry_capacity */
    size_t entry_count, entry_capacity;
};

struct open_file {
    int fd;
    int ino;
    int flags;
    uint64_t pos;              /* the descriptor's file position */
    char path[REL_PATH];       /* its name when opened, for the log */
};

struct snapshot {
    char name[64];
    struct model model;
};

enum op_kind {
    OP_OPEN, OP_CLOSE, OP_WRITE, OP_PWRITE, OP_READ, OP_FTRUNCATE, OP_TRUNCATE,
    OP_VERIFY, OP_STAT, OP_RENAME_FILE, OP_RENAME_DIR, OP_UNLINK, OP_MKDIR,
    OP_RMDIR, OP_SETXATTR, OP_GETXATTR, OP_REMOVEXATTR, OP_LISTXATTR,
    OP_READDIR, OP_ETAG, OP_SNAPSHOT, OP_RESTORE, OP_DROP_SNAPSHOT,
    OP_CHECK_SNAPSHOT, OP_KIND_COUNT
};

static const char *const op_names[OP_KIND_COUNT] = {
    "open", "close", "write", "pwrite", "read", "ftruncate", "truncate",
    "verify", "stat", "rename-file", "rename-dir", "unlink", "mkdir", "rmdir",
    "setxattr", "getxattr", "removexattr", "listxattr", "readdir", "etag",
    "snapshot", "restore", "drop-snapshot", "check-snapshot",
};

/* Relative weights of the random operations (snapshots are on a schedule). */
static const unsigned op_weights[OP_KIND_COUNT] = {
    [OP_OPEN] = 8, [OP_CLOSE] = 5, [OP_WRITE] = 10, [OP_PWRITE] = 14,
    [OP_READ] = 15, [OP_FTRUNCATE] = 4, [OP_TRUNCATE] = 3, [OP_VERIFY] = 1,
    [OP_STAT] = 5, [OP_RENAME_FILE] = 3, [OP_RENAME_DIR] = 1, [OP_UNLINK] = 2,
    [OP_MKDIR] = 1, [OP_RMDIR] = 1, [OP_SETXATTR] = 4, [OP_GETXATTR] = 4,
    [OP_REMOVEXATTR] = 2, [OP_LISTXATTR] = 1, [OP_READDIR] = 1, [OP_ETAG] = 1,
};

struct checker {
    const struct options *opt;
    unsigned worker;
    uint64_t seed;
    bool restore_allowed;
    uint64_t rng[4];
    char workdir[64];          /* the worker's directory name in the mount */
    char root[PATH_MAX];       /* mountpoint/workdir */
    char control[PATH_MAX];    /* mountpoint/control_dir */
    struct model live;
    struct open_file fds[MAX_FDS];
    int fd_count;
    struct snapshot snapshots[MAX_SNAPSHOTS];
    int snapshot_count;
    unsigned snapshot_serial;
    unsigned char *scratch;    /* max_size + CHUNK bytes */
    uint64_t op;               /* number of the operation running */
    char log[LOG_KEEP][LOG_LINE];
    uint64_t log_count;
    uint64_t counts[OP_KIND_COUNT];
    uint64_t bytes_written, bytes_read;
};

/* ---- small helpers -------------------------------------------------------- */

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *errno_name(int e)
{
    static const struct { int e; const char *name; } names[] = {
        {0, "ok"}, {ENOENT, "ENOENT"}, {EEXIST, "EEXIST"}, {EISDIR, "EISDIR"},
        {ENOTDIR, "ENOTDIR"}, {ENOTEMPTY, "ENOTEMPTY"}, {EINVAL, "EINVAL"},
        {ENODATA, "ENODATA"}, {ERANGE, "ERANGE"}, {EBADF, "EBADF"},
        {ENOSPC, "ENOSPC"}, {EFBIG, "EFBIG"}, {EIO, "EIO"}, {EPERM, "EPERM"},
        {EACCES, "EACCES"}, {ENOTSUP, "ENOTSUP"}, {ENOMEM, "ENOMEM"},
        {ENOTCONN, "ENOTCONN"}, {EROFS, "EROFS"}, {ENAMETOOLONG, "ENAMETOOLONG"},
        {EXDEV, "EXDEV"}, {EBUSY, "EBUSY"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (names[i].e == e)
            return names[i].name;
    static _Thread_local char other[32];
    snprintf(other, sizeof(other), "errno %d", e);
    return other;
}

static void *xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (!p) {
        fprintf(stderr, "opcheck: out of memory (%zu bytes)\n", size);
        exit(2);
    }
    return p;
}

static void *xcalloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) {
        fprintf(stderr, "opcheck: out of memory\n");
        exit(2);
    }
    return p;
}

/* ---- random numbers (xoshiro256**, seeded with splitmix64) ---------------- */

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(struct checker *c)
{
    uint64_t *s = c->rng;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* Uniform in [0, n) (n == 0 gives 0). */
static uint64_t rng_below(struct checker *c, uint64_t n)
{
    return n ? rng_next(c) % n : 0;
}

/* Uniform in [lo, hi]. */
static uint64_t rng_range(struct checker *c, uint64_t lo, uint64_t hi)
{
    return hi <= lo ? lo : lo + rng_below(c, hi - lo + 1);
}

static bool chance(struct checker *c, unsigned percent)
{
    return rng_below(c, 100) < percent;
}

/* Random bytes with no zero byte, so a hole (zeros) never looks like data. */
static void fill_random(struct checker *c, unsigned char *buf, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint64_t r = rng_next(c);
        for (int k = 0; k < 8 && i < len; k++, r >>= 8) {
            unsigned char b = (unsigned char)r;
            buf[i++] = b ? b : 0x5a;
        }
    }
}

/* ---- the operation log and failure ---------------------------------------- */

static char *log_slot(struct checker *c)
{
    return c->log[(c->log_count - 1) % LOG_KEEP];
}

/* Starts the log line of operation c->op. */
__attribute__((format(printf, 2, 3)))
static void log_begin(struct checker *c, const char *fmt, ...)
{
    c->log_count++;
    char *line = log_slot(c);
    int n = snprintf(line, LOG_LINE, "#%" PRIu64 " ", c->op);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, LOG_LINE - (size_t)n, fmt, ap);
    va_end(ap);
}

/* Appends the outcome to the current log line (and prints it with -v). */
__attribute__((format(printf, 2, 3)))
static void log_end(struct checker *c, const char *fmt, ...)
{
    char *line = log_slot(c);
    size_t n = strlen(line);
    if (n + 4 < LOG_LINE) {
        memcpy(line + n, " -> ", 4);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(line + n + 4, LOG_LINE - n - 4, fmt, ap);
        va_end(ap);
    }
    if (c->opt->verbose)
        printf("[w%u] %s\n", c->worker, line);
}

/* " --skip a,b" for the bits in skip, or "". */
static const char *skip_text(unsigned skip)
{
    static char text[256];
    size_t n = 0;
    text[0] = 0;
    for (size_t i = 0; i < SKIP_NAME_COUNT; i++)
        if (skip & skip_names[i].bit)
            n += (size_t)snprintf(text + n, sizeof(text) - n, "%s%s",
                                  n ? "," : " --skip ", skip_names[i].name);
    return text;
}

/* Prints what went wrong, the last operations and how to replay; exits 1. */
__attribute__((format(printf, 2, 3), noreturn))
static void fail(struct checker *c, const char *fmt, ...)
{
    const struct options *o = c->opt;
    fflush(stdout);
    flockfile(stderr);
    fprintf(stderr, "\nopcheck: worker %u (seed %" PRIu64 "): MISMATCH at op #%" PRIu64 ": ",
            c->worker, c->seed, c->op);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    uint64_t shown = c->log_count < LOG_KEEP ? c->log_count : LOG_KEEP;
    fprintf(stderr, "\nlast %" PRIu64 " operations (oldest first; paths are under %s):\n",
            shown, c->root);
    for (uint64_t i = c->log_count - shown; i < c->log_count; i++)
        fprintf(stderr, "  %s\n", c->log[i % LOG_KEEP]);
    fprintf(stderr, "open descriptors:");
    for (int i = 0; i < c->fd_count; i++)
        fprintf(stderr, " fd%d=%s(ino %d%s)", c->fds[i].fd, c->fds[i].path,
                c->fds[i].ino, c->live.inodes[c->fds[i].ino].links ? "" : ", unlinked");
    fprintf(stderr, "\nreplay on a fresh mount: opcheck MNT --seed %" PRIu64
            " --ops %" PRIu64 " --files %u --max-size %" PRIu64
            " --snapshot-every %" PRIu64 "%s%s%s%s\n",
            c->seed, o->ops, o->files, o->max_size, o->snapshot_every,
            c->restore_allowed ? "" : " --no-restore", skip_text(o->skip),
            strcmp(o->control_dir, ".s3mem") ? " --control-dir " : "",
            strcmp(o->control_dir, ".s3mem") ? o->control_dir : "");
    funlockfile(stderr);
    exit(1);
}

/* Checks the outcome of a call: rc < 0 failed with err. want is 0 for
 * success or the expected errno; alt is another accepted errno (or 0). */
static void expect(struct checker *c, const char *what, long rc, int err,
                   int want, int alt)
{
    int got = rc < 0 ? err : 0;
    log_end(c, "%s", errno_name(got));
    if (got == want || (alt && got == alt))
        return;
    if (want == 0)
        fail(c, "%s failed with %s (%s); expected success", what,
             errno_name(got), strerror(got));
    if (got == 0)
        fail(c, "%s succeeded; expected %s%s%s", what, errno_name(want),
             alt ? " or " : "", alt ? errno_name(alt) : "");
    fail(c, "%s failed with %s; expected %s%s%s", what, errno_name(got),
         errno_name(want), alt ? " or " : "", alt ? errno_name(alt) : "");
}

/* Fails, describing the first difference, when got differs from want. */
static void compare_data(struct checker *c, const char *what, uint64_t base,
                         const unsigned char *want, const unsigned char *got,
                         size_t len)
{
    if (len == 0 || memcmp(want, got, len) == 0)
        return;
    size_t first = 0;
    while (want[first] == got[first])
        first++;
    size_t last = first, differ = 0;
    bool got_zero = true;
    for (size_t i = first; i < len; i++)
        if (want[i] != got[i]) {
            last = i;
            differ++;
            if (got[i])
                got_zero = false;
        }
    char want_hex[64] = "", got_hex[64] = "";
    for (size_t i = first, k = 0; i < len && k < 16; i++, k++) {
        sprintf(want_hex + 3 * k, "%02x ", want[i]);
        sprintf(got_hex + 3 * k, "%02x ", got[i]);
    }
    fail(c, "%s: data differs at offset %" PRIu64 " (0x%" PRIx64 "): %zu bytes "
         "differ between there and offset %" PRIu64 "%s\n  expected: %s\n  got:      %s",
         what, base + first, base + first, differ, base + last,
         got_zero ? " (all read as zeros)" : "", want_hex, got_hex);
}

/* ---- model operations ----------------------------------------------------- */

static void model_init(struct model *m, size_t inode_count, size_t entry_capacity)
{
    m->inodes = xcalloc(inode_count, sizeof(*m->inodes));
    m->inode_count = inode_count;
    m->entries = xcalloc(entry_capacity, sizeof(*m->entries));
    m->entry_count = 0;
    m->entry_capacity = entry_capacity;
}

static void model_release(struct model *m)
{
    for (size_t i = 0; i < m->inode_count; i++)
        free(m->inodes[i].data);
    free(m->inodes);
    free(m->entries);
    memset(m, 0, sizeof(*m));
}

/* A deep copy of the named inodes of src (descriptors are not copied). */
static void model_copy(struct model *dst, const struct model *src)
{
    model_init(dst, src->inode_count, src->entry_capacity);
    dst->entry_count = src->entry_count;
    memcpy(dst->entries, src->entries, src->entry_count * sizeof(*src->entries));
    for (size_t i = 0; i < src->inode_count; i++) {
        const struct inode *from = &src->inodes[i];
        if (!from->used || from->links == 0)
            continue;
        struct inode *to = &dst->inodes[i];
        *to = *from;
        to->opens = 0;
        to->capacity = from->size;
        to->data = xmalloc(from->size);
        if (from->size)
            memcpy(to->data, from->data, from->size);
    }
}

static int model_find(const struct model *m, const char *path)
{
    for (size_t i = 0; i < m->entry_count; i++)
        if (strcmp(m->entries[i].path, path) == 0)
            return (int)i;
    return -1;
}

static struct inode *entry_inode(const struct model *m, int entry)
{
    return &m->inodes[m->entries[entry].ino];
}

static bool model_is_dir(const struct model *m, int entry)
{
    return entry >= 0 && entry_inode(m, entry)->is_dir;
}

static size_t model_count(const struct model *m, bool dirs)
{
    size_t n = 0;
    for (size_t i = 0; i < m->entry_count; i++)
        if (entry_inode(m, (int)i)->is_dir == dirs)
            n++;
    return n;
}

/* 0 for "", 1 for "a", 2 for "a/b". */
static int path_depth(const char *path)
{
    if (!*path)
        return 0;
    int depth = 1;
    for (; *path; path++)
        if (*path == '/')
            depth++;
    return depth;
}

/* True when path lies strictly under dir ("" is the root). */
static bool path_under(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    if (n == 0)
        return *path != 0;
    return strncmp(path, dir, n) == 0 && path[n] == '/';
}

/* True when path is a direct child of dir. */
static bool path_child(const char *path, const char *dir)
{
    if (!path_under(path, dir))
        return false;
    size_t n = strlen(dir);
    return strchr(path + n + (n ? 1 : 0), '/') == NULL;
}

static bool model_dir_empty(const struct model *m, const char *dir)
{
    for (size_t i = 0; i < m->entry_count; i++)
        if (path_under(m->entries[i].path, dir))
            return false;
    return true;
}

static int model_new_inode(struct model *m, bool is_dir)
{
    for (size_t i = 0; i < m->inode_count; i++)
        if (!m->inodes[i].used) {
            struct inode *in = &m->inodes[i];
            free(in->data);
            memset(in, 0, sizeof(*in));
            in->used = true;
            in->is_dir = is_dir;
            return (int)i;
        }
    fprintf(stderr, "opcheck: internal error: no free model inode\n");
    abort();
}

static void inode_maybe_free(struct inode *in)
{
    if (in->links == 0 && in->opens == 0) {
        free(in->data);
        memset(in, 0, sizeof(*in));
    }
}

static void model_add(struct model *m, const char *path, int ino)
{
    if (m->entry_count == m->entry_capacity) {
        fprintf(stderr, "opcheck: internal error: model entries full\n");
        abort();
    }
    struct entry *e = &m->entries[m->entry_count++];
    snprintf(e->path, sizeof(e->path), "%s", path);
    e->ino = ino;
    m->inodes[ino].links++;
}

static void model_remove(struct model *m, int entry)
{
    struct inode *in = entry_inode(m, entry);
    m->entries[entry] = m->entries[--m->entry_count];
    in->links--;
    inode_maybe_free(in);
}

/* Sets the size, zero-filling what grows. */
static void inode_resize(struct inode *in, uint64_t size)
{
    if (size > in->capacity) {
        uint64_t cap = in->capacity ? in->capacity : 4096;
        while (cap < size)
            cap *= 2;
        unsigned char *data = realloc(in->data, cap);
        if (!data) {
            fprintf(stderr, "opcheck: out of memory\n");
            exit(2);
        }
        in->data = data;
        in->capacity = cap;
    }
    if (size > in->size)
        memset(in->data + in->size, 0, size - in->size);
    in->size = size;
}

static void inode_write(struct inode *in, uint64_t off, const unsigned char *buf,
                        size_t len)
{
    if (off + len > in->size)
        inode_resize(in, off + len);
    memcpy(in->data + off, buf, len);
}

/* ---- paths ---------------------------------------------------------------- */

/* dir/name, or name when dir is the root "". */
static void join(char *out, size_t size, const char *dir, const char *name)
{
    int n = *dir ? snprintf(out, size, "%s/%s", dir, name)
                 : snprintf(out, size, "%s", name);
    if (n < 0 || (size_t)n >= size) {
        fprintf(stderr, "opcheck: path too long: %s/%s\n", dir, name);
        exit(2);
    }
}

/* base/rel, or base when rel is the root "". */
static void full_path(char *out, size_t size, const char *base, const char *rel)
{
    if (*rel)
        join(out, size, base, rel);
    else
        join(out, size, "", base);
}

static const char *shown(const char *rel)
{
    return *rel ? rel : ".";
}

/* A random directory of the live model ("" is the root), no deeper than
 * max_depth. */
static void random_dir(struct checker *c, int max_depth, char *out)
{
    const struct model *m = &c->live;
    int candidates[MAX_DIRS + 1], n = 0;
    candidates[n++] = -1;
    for (size_t i = 0; i < m->entry_count && n <= MAX_DIRS; i++)
        if (entry_inode(m, (int)i)->is_dir && path_depth(m->entries[i].path) <= max_depth)
            candidates[n++] = (int)i;
    int pick = candidates[rng_below(c, (uint64_t)n)];
    snprintf(out, REL_PATH, "%s", pick < 0 ? "" : m->entries[pick].path);
}

/* A random existing entry of the given kind, or -1 when there is none. */
static int random_entry(struct checker *c, bool dirs)
{
    const struct model *m = &c->live;
    size_t n = model_count(m, dirs);
    if (n == 0)
        return -1;
    uint64_t k = rng_below(c, n);
    for (size_t i = 0; i < m->entry_count; i++)
        if (entry_inode(m, (int)i)->is_dir == dirs && k-- == 0)
            return (int)i;
    return -1;
}

/* A file path: an existing file with probability percent_existing, else a
 * random file name in a random directory (which may exist). */
static void random_file_path(struct checker *c, unsigned percent_existing, char *out)
{
    int e = chance(c, percent_existing) ? random_entry(c, false) : -1;
    if (e >= 0) {
        snprintf(out, REL_PATH, "%s", c->live.entries[e].path);
        return;
    }
    char dir[REL_PATH], name[16];
    random_dir(c, MAX_DEPTH, dir);
    snprintf(name, sizeof(name), "f%u", (unsigned)rng_below(c, c->opt->files));
    join(out, REL_PATH, dir, name);
}

/* A directory path: existing (not the root) or a random new one whose
 * depth is at most MAX_DEPTH. */
static void random_dir_path(struct checker *c, unsigned percent_existing, char *out)
{
    int e = chance(c, percent_existing) ? random_entry(c, true) : -1;
    if (e >= 0) {
        snprintf(out, REL_PATH, "%s", c->live.entries[e].path);
        return;
    }
    char dir[REL_PATH];
    random_dir(c, MAX_DEPTH - 1, dir);
    join(out, REL_PATH, dir, dir_names[rng_below(c, DIR_NAME_COUNT)]);
}

/* ---- descriptors ---------------------------------------------------------- */

static bool fd_readable(const struct open_file *f)
{
    return (f->flags & O_ACCMODE) != O_WRONLY;
}

static bool fd_writable(const struct open_file *f)
{
    return (f->flags & O_ACCMODE) != O_RDONLY;
}

/* A random open descriptor that can read (or write), or NULL. */
static struct open_file *random_fd(struct checker *c, bool writing)
{
    int candidates[MAX_FDS], n = 0;
    for (int i = 0; i < c->fd_count; i++)
        if (writing ? fd_writable(&c->fds[i]) : fd_readable(&c->fds[i]))
            candidates[n++] = i;
    return n ? &c->fds[candidates[rng_below(c, (uint64_t)n)]] : NULL;
}

static void close_fd(struct checker *c, int index)
{
    struct open_file *f = &c->fds[index];
    log_begin(c, "close fd%d (%s)", f->fd, f->path);
    int rc = close(f->fd);
    expect(c, "close", rc, errno, 0, 0);
    struct inode *in = &c->live.inodes[f->ino];
    in->opens--;
    inode_maybe_free(in);
    c->fds[index] = c->fds[--c->fd_count];
    c->counts[OP_CLOSE]++;
}

static void close_all(struct checker *c)
{
    while (c->fd_count > 0)
        close_fd(c, c->fd_count - 1);
}

/* ---- sizes and offsets ---------------------------------------------------- */

static uint64_t random_length(struct checker *c)
{
    uint64_t max = c->opt->max_size;
    uint64_t r = rng_below(c, 100), len;
    if (r < 50)
        len = rng_range(c, 1, 512);
    else if (r < 75)
        len = rng_range(c, 1, 8192);
    else if (r < 93)
        len = rng_range(c, 1, CHUNK + 4096);
    else
        len = rng_range(c, 1, 1024 * 1024);
    return len > max ? rng_range(c, 1, max) : len;
}

/* An offset for len bytes in a file of size, with off + len <= max_size:
 * inside, at the end, near chunk and small-capacity boundaries, or far
 * past the end (leaving a hole). */
static uint64_t random_offset(struct checker *c, uint64_t size, uint64_t len)
{
    uint64_t limit = c->opt->max_size - len, off;
    uint64_t r = rng_below(c, 100);
    if (r < 30)
        off = rng_below(c, size + 1);
    else if (r < 45)
        off = size;
    else if (r < 60) {
        uint64_t chunk = rng_below(c, c->opt->max_size / CHUNK + 1) * CHUNK;
        off = chunk + rng_below(c, 129);
        off = off >= 64 ? off - 64 : 0;
    } else if (r < 70) {
        uint64_t edge = (uint64_t)1 << rng_range(c, 6, 16);
        off = edge + rng_below(c, 9);
        off = off >= 4 ? off - 4 : 0;
    } else
        off = rng_below(c, limit + 1);
    return off > limit ? limit : off;
}

/* A new size for truncate: smaller, larger, zero, same or near a boundary. */
static uint64_t random_size(struct checker *c, uint64_t size)
{
    uint64_t max = c->opt->max_size, r = rng_below(c, 100);
    if (r < 40)
        return rng_below(c, size + 1);
    if (r < 70)
        return rng_range(c, size, max);
    if (r < 80)
        return 0;
    if (r < 88)
        return size;
    uint64_t edge = chance(c, 50) ? rng_below(c, max / CHUNK + 1) * CHUNK
                                  : (uint64_t)1 << rng_range(c, 6, 16);
    edge = edge + rng_below(c, 5);
    edge = edge >= 2 ? edge - 2 : 0;
    return edge > max ? max : edge;
}

/* ---- checks against the mount --------------------------------------------- */

/* Reads exactly len bytes at off through fd (pread until EOF); returns the
 * count read or -1 with errno. */
static ssize_t read_full(int fd, unsigned char *buf, size_t len, uint64_t off)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(fd, buf + done, len - done, (off_t)(off + done));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (n == 0)
            break;
        done += (size_t)n;
    }
    return (ssize_t)done;
}

/* Compares the whole file at path (base/rel) with inode in. */
static void verify_file(struct checker *c, const struct inode *in,
                        const char *base, const char *rel, const char *label)
{
    char path[PATH_MAX], what[PATH_MAX + 64];
    full_path(path, sizeof(path), base, rel);
    snprintf(what, sizeof(what), "%s %s", label, rel);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        fail(c, "%s: open failed: %s", what, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0)
        fail(c, "%s: fstat failed: %s", what, strerror(errno));
    if ((uint64_t)st.st_size != in->size)
        fail(c, "%s: size %lld, expected %" PRIu64, what, (long long)st.st_size, in->size);
    uint64_t off = 0;
    size_t step = (size_t)rng_range(c, 4096, 1024 * 1024);
    while (off < in->size) {
        size_t n = in->size - off < step ? (size_t)(in->size - off) : step;
        ssize_t got = read_full(fd, c->scratch, n, off);
        if (got < 0)
            fail(c, "%s: read at %" PRIu64 " failed: %s", what, off, strerror(errno));
        if ((size_t)got != n)
            fail(c, "%s: read %zu bytes at %" PRIu64 " returned %zd (file ends early)",
                 what, n, off, got);
        compare_data(c, what, off, in->data + off, c->scratch, n);
        off += n;
        c->bytes_read += n;
    }
    ssize_t extra = pread(fd, c->scratch, 4096, (off_t)in->size);
    if (extra != 0)
        fail(c, "%s: read at end of file (%" PRIu64 ") returned %zd, expected 0",
             what, in->size, extra);
    close(fd);
}

/* Fails unless the user.* attributes of path (excluding user.s3mem.*) are
 * exactly those of in, with the same values. */
static void verify_xattrs(struct checker *c, const struct inode *in,
                          const char *path, const char *what)
{
    char list[4096];
    ssize_t n = listxattr(path, list, sizeof(list));
    if (n < 0)
        fail(c, "%s: listxattr failed: %s", what, strerror(errno));
    bool seen[XATTR_COUNT] = {false};
    for (ssize_t i = 0; i < n; i += (ssize_t)strlen(list + i) + 1) {
        const char *name = list + i;
        if (strncmp(name, "user.s3mem.", 11) == 0)
            continue;
        size_t k = 0;
        while (k < XATTR_COUNT && (strncmp(name, "user.", 5) != 0 ||
                                   strcmp(name + 5, xattr_names[k]) != 0))
            k++;
        if (k == XATTR_COUNT || !in->xattrs[k].set)
            fail(c, "%s: listxattr lists '%s', which is not set", what, name);
        if (seen[k])
            fail(c, "%s: listxattr lists '%s' twice", what, name);
        seen[k] = true;
    }
    for (size_t k = 0; k < XATTR_COUNT; k++) {
        if (in->xattrs[k].set != seen[k])
            fail(c, "%s: listxattr misses user.%s", what, xattr_names[k]);
        if (!in->xattrs[k].set)
            continue;
        char name[64];
        unsigned char value[XATTR_VALUE_MAX + 16];
        snprintf(name, sizeof(name), "user.%s", xattr_names[k]);
        ssize_t len = getxattr(path, name, value, sizeof(value));
        if (len < 0)
            fail(c, "%s: getxattr %s failed: %s", what, name, strerror(errno));
        if ((size_t)len != in->xattrs[k].len)
            fail(c, "%s: %s has %zd bytes, expected %zu", what, name, len,
                 in->xattrs[k].len);
        compare_data(c, name, 0, in->xattrs[k].value, value, (size_t)len);
    }
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Fails unless the directory base/dir lists exactly the children of dir in m. */
static void verify_listing(struct checker *c, const struct model *m,
                           const char *base, const char *dir, const char *label)
{
    char path[PATH_MAX];
    full_path(path, sizeof(path), base, dir);
    DIR *d = opendir(path);
    if (!d)
        fail(c, "%s: opendir %s failed: %s", label, shown(dir), strerror(errno));
    char *got[64], *want[64];
    size_t ngot = 0, nwant = 0;
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (ngot == 64)
            fail(c, "%s: %s lists more than 64 entries", label, shown(dir));
        got[ngot++] = strdup(de->d_name);
    }
    if (errno)
        fail(c, "%s: readdir %s failed: %s", label, shown(dir), strerror(errno));
    closedir(d);
    for (size_t i = 0; i < m->entry_count; i++)
        if (path_child(m->entries[i].path, dir)) {
            const char *slash = strrchr(m->entries[i].path, '/');
            want[nwant++] = strdup(slash ? slash + 1 : m->entries[i].path);
        }
    qsort(got, ngot, sizeof(*got), compare_names);
    qsort(want, nwant, sizeof(*want), compare_names);
    char got_text[1024] = "", want_text[1024] = "";
    for (size_t i = 0; i < ngot; i++)
        snprintf(got_text + strlen(got_text), sizeof(got_text) - strlen(got_text),
                 " %s", got[i]);
    for (size_t i = 0; i < nwant; i++)
        snprintf(want_text + strlen(want_text), sizeof(want_text) - strlen(want_text),
                 " %s", want[i]);
    for (size_t i = 0; i < ngot; i++)
        free(got[i]);
    for (size_t i = 0; i < nwant; i++)
        free(want[i]);
    if (strcmp(got_text, want_text) != 0)
        fail(c, "%s: directory %s lists [%s ], expected [%s ]", label, shown(dir),
             got_text, want_text);
}

/* Compares the whole tree under base with m: listings, types, sizes,
 * attributes, and the contents of every file (or of a few, when sample). */
static void verify_tree(struct checker *c, const struct model *m,
                        const char *base, const char *label, bool sample)
{
    verify_listing(c, m, base, "", label);
    for (size_t i = 0; i < m->entry_count; i++) {
        const struct entry *e = &m->entries[i];
        const struct inode *in = &m->inodes[e->ino];
        char path[PATH_MAX], what[PATH_MAX + 64];
        full_path(path, sizeof(path), base, e->path);
        snprintf(what, sizeof(what), "%s %s", label, e->path);
        struct stat st;
        if (stat(path, &st) != 0)
            fail(c, "%s: stat failed: %s", what, strerror(errno));
        if (in->is_dir) {
            if (!S_ISDIR(st.st_mode))
                fail(c, "%s: not a directory (mode %o)", what, (unsigned)st.st_mode);
            verify_listing(c, m, base, e->path, label);
        } else {
            if (!S_ISREG(st.st_mode))
                fail(c, "%s: not a regular file (mode %o)", what, (unsigned)st.st_mode);
            if ((uint64_t)st.st_size != in->size)
                fail(c, "%s: stat size %lld, expected %" PRIu64, what,
                     (long long)st.st_size, in->size);
            if (!sample || chance(c, 20))
                verify_file(c, in, base, e->path, label);
        }
        verify_xattrs(c, in, path, what);
    }
}

/* ---- the control plane ---------------------------------------------------- */

/* Writes "ARG\n" to CTL/file; returns 0 or -errno. */
static int control_write(struct checker *c, const char *file, const char *arg)
{
    char path[PATH_MAX + 64], line[128];
    snprintf(path, sizeof(path), "%s/%s", c->control, file);
    int len = snprintf(line, sizeof(line), "%s\n", arg);
    int fd = open(path, O_WRONLY);
    if (fd < 0)
        return -errno;
    ssize_t n = write(fd, line, (size_t)len);
    int err = n < 0 ? errno : n != len ? EIO : 0;
    if (close(fd) != 0 && !err)
        err = errno;
    return -err;
}

/* True when the snapshot list (CTL/snapshot) holds name as a line; with
 * --skip control-read, says what the model expects. */
static bool snapshot_listed(struct checker *c, const char *name, bool expected)
{
    if (c->opt->skip & SKIP_CONTROL_READ)
        return expected;
    char path[PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/snapshot", c->control);
    FILE *f = fopen(path, "r");
    if (!f)
        fail(c, "cannot read %s: %s", path, strerror(errno));
    char line[256];
    bool found = false;
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = 0;
        if (strcmp(line, name) == 0)
            found = true;
    }
    fclose(f);
    return found;
}

static void snapshot_base(struct checker *c, const struct snapshot *s, char *out,
                          size_t size)
{
    snprintf(out, size, "%s/snapshots/%s/%s", c->control, s->name, c->workdir);
}

static void do_snapshot(struct checker *c)
{
    if (c->snapshot_count == MAX_SNAPSHOTS) {
        struct snapshot *old = &c->snapshots[0];
        char path[PATH_MAX + 128];
        snprintf(path, sizeof(path), "%s/snapshots/%s", c->control, old->name);
        log_begin(c, "drop-snapshot %s (rmdir)", old->name);
        int rc = rmdir(path);
        expect(c, "rmdir of a snapshot", rc, errno, 0, 0);
        if (snapshot_listed(c, old->name, false))
            fail(c, "snapshot %s is still listed after rmdir", old->name);
        model_release(&old->model);
        memmove(&c->snapshots[0], &c->snapshots[1],
                (MAX_SNAPSHOTS - 1) * sizeof(c->snapshots[0]));
        c->snapshot_count--;
        c->counts[OP_DROP_SNAPSHOT]++;
    }
    struct snapshot *s = &c->snapshots[c->snapshot_count];
    snprintf(s->name, sizeof(s->name), "opcheck-w%u-%" PRIu64 "-%u", c->worker,
             c->seed, c->snapshot_serial++);
    log_begin(c, "snapshot %s", s->name);
    int rc = control_write(c, "snapshot", s->name);
    expect(c, "snapshot", rc, -rc, 0, 0);
    if (!snapshot_listed(c, s->name, true))
        fail(c, "snapshot %s is not listed in %s/snapshot", s->name, c->control);
    model_copy(&s->model, &c->live);
    c->snapshot_count++;
    c->counts[OP_SNAPSHOT]++;
}

/* Compares a snapshot's read-only view with the model kept when it was taken. */
static void check_snapshot(struct checker *c, const struct snapshot *s)
{
    char base[PATH_MAX + 192], label[128];
    snapshot_base(c, s, base, sizeof(base));
    snprintf(label, sizeof(label), "snapshot view %s:", s->name);
    log_begin(c, "check-snapshot %s", s->name);
    verify_tree(c, &s->model, base, label, true);
    log_end(c, "ok");
    c->counts[OP_CHECK_SNAPSHOT]++;
}

static void do_restore(struct checker *c, const struct snapshot *s)
{
    close_all(c);
    log_begin(c, "restore %s", s->name);
    int rc = control_write(c, "restore", s->name);
    expect(c, "restore", rc, -rc, 0, 0);
    model_release(&c->live);
    model_copy(&c->live, &s->model);
    c->counts[OP_RESTORE]++;
    log_begin(c, "verify whole tree after restore %s", s->name);
    verify_tree(c, &c->live, c->root, "after restore:", false);
    log_end(c, "ok");
}

static void snapshot_tick(struct checker *c)
{
    if (c->snapshot_count > 0 && chance(c, 50))
        check_snapshot(c, &c->snapshots[rng_below(c, (uint64_t)c->snapshot_count)]);
    if (c->restore_allowed && c->snapshot_count > 0 && chance(c, 35)) {
        do_restore(c, &c->snapshots[rng_below(c, (uint64_t)c->snapshot_count)]);
        return;
    }
    do_snapshot(c);
}

/* ---- the operations ------------------------------------------------------- */

static void op_open(struct checker *c)
{
    if (c->fd_count == MAX_FDS)
        close_fd(c, (int)rng_below(c, MAX_FDS));
    char rel[REL_PATH], path[PATH_MAX];
    random_file_path(c, 75, rel);
    full_path(path, sizeof(path), c->root, rel);
    int entry = model_find(&c->live, rel);
    uint64_t r = rng_below(c, 100);
    int flags = r < 15 ? O_RDONLY : r < 25 ? O_WRONLY : O_RDWR;
    bool writable = flags != O_RDONLY;
    if (chance(c, 50))
        flags |= O_CREAT;
    if ((flags & O_CREAT) && chance(c, 15))
        flags |= O_EXCL;
    if (writable && chance(c, 8))
        flags |= O_TRUNC;
    if (writable && chance(c, 10))
        flags |= O_APPEND;
    if (entry < 0 && (flags & O_CREAT) && model_count(&c->live, false) >= c->opt->files)
        flags &= ~(O_CREAT | O_EXCL);
    int want = 0;
    if (entry < 0 && !(flags & O_CREAT))
        want = ENOENT;
    else if (entry >= 0 && (flags & O_CREAT) && (flags & O_EXCL))
        want = EEXIST;
    log_begin(c, "open %s %s%s%s%s%s", rel,
              (flags & O_ACCMODE) == O_RDONLY ? "O_RDONLY"
              : (flags & O_ACCMODE) == O_WRONLY ? "O_WRONLY" : "O_RDWR",
              flags & O_CREAT ? "|O_CREAT" : "", flags & O_EXCL ? "|O_EXCL" : "",
              flags & O_TRUNC ? "|O_TRUNC" : "", flags & O_APPEND ? "|O_APPEND" : "");
    int fd = open(path, flags, 0644);
    int err = errno;
    if (fd >= 0) {
        char *line = log_slot(c);
        size_t n = strlen(line);
        snprintf(line + n, LOG_LINE - n, " = fd%d", fd);
    }
    expect(c, "open", fd, err, want, 0);
    c->counts[OP_OPEN]++;
    if (want)
        return;
    if (entry < 0) {
        int ino = model_new_inode(&c->live, false);
        model_add(&c->live, rel, ino);
        entry = model_find(&c->live, rel);
    }
    struct inode *in = entry_inode(&c->live, entry);
    if (flags & O_TRUNC)
        inode_resize(in, 0);
    in->opens++;
    struct open_file *f = &c->fds[c->fd_count++];
    f->fd = fd;
    f->ino = c->live.entries[entry].ino;
    f->flags = flags;
    f->pos = 0;
    snprintf(f->path, sizeof(f->path), "%s", rel);
}

/* write (positioned with lseek, or appending) and pwrite. */
static void op_write(struct checker *c, bool positional)
{
    struct open_file *f = random_fd(c, true);
    if (!f) {
        op_open(c);
        return;
    }
    struct inode *in = &c->live.inodes[f->ino];
    bool append = f->flags & O_APPEND;
    uint64_t len = random_length(c), off;
    if (append) {
        if (in->size >= c->opt->max_size) {
            log_begin(c, "ftruncate fd%d (%s, full) 0", f->fd, f->path);
            int rc = ftruncate(f->fd, 0);
            expect(c, "ftruncate", rc, errno, 0, 0);
            inode_resize(in, 0);
            c->counts[OP_FTRUNCATE]++;
            return;
        }
        if (in->size + len > c->opt->max_size)
            len = c->opt->max_size - in->size;
        off = in->size;
    } else {
        off = random_offset(c, in->size, len);
    }
    fill_random(c, c->scratch, len);
    ssize_t n;
    if (positional) {
        /* on Linux, pwrite on an O_APPEND descriptor appends */
        uint64_t asked = append ? random_offset(c, in->size, len) : off;
        log_begin(c, "pwrite fd%d (%s%s) off=%" PRIu64 " len=%" PRIu64 " [size %" PRIu64 "]",
                  f->fd, f->path, append ? ", O_APPEND" : "", asked, len, in->size);
        n = pwrite(f->fd, c->scratch, len, (off_t)asked);
    } else {
        if (!append) {
            uint64_t how = rng_below(c, 3);
            off_t got;
            if (how == 0)
                got = lseek(f->fd, (off_t)off, SEEK_SET);
            else if (how == 1)
                got = lseek(f->fd, (off_t)off - (off_t)f->pos, SEEK_CUR);
            else
                got = lseek(f->fd, (off_t)off - (off_t)in->size, SEEK_END);
            if (got != (off_t)off) {
                log_begin(c, "lseek fd%d (%s) to %" PRIu64 " %s [size %" PRIu64 ", pos %" PRIu64 "]",
                          f->fd, f->path, off, how == 0 ? "SEEK_SET" : how == 1 ? "SEEK_CUR"
                          : "SEEK_END", in->size, f->pos);
                log_end(c, "%lld", (long long)got);
                fail(c, "lseek returned %lld (%s), expected %" PRIu64,
                     (long long)got, got < 0 ? strerror(errno) : "wrong offset", off);
            }
        }
        log_begin(c, "write fd%d (%s%s) off=%" PRIu64 " len=%" PRIu64 " [size %" PRIu64 "]",
                  f->fd, f->path, append ? ", O_APPEND" : "", off, len, in->size);
        n = write(f->fd, c->scratch, len);
    }
    int err = errno;
    if (n >= 0 && (uint64_t)n != len) {
        log_end(c, "%zd", n);
        fail(c, "short write: %zd of %" PRIu64 " bytes", n, len);
    }
    expect(c, positional ? "pwrite" : "write", n, err, 0, 0);
    inode_write(in, off, c->scratch, len);
    if (!positional)
        f->pos = off + len;
    c->bytes_written += len;
    c->counts[positional ? OP_PWRITE : OP_WRITE]++;
}

static void op_read(struct checker *c)
{
    struct open_file *f = random_fd(c, false);
    if (!f) {
        op_open(c);
        return;
    }
    struct inode *in = &c->live.inodes[f->ino];
    uint64_t len = random_length(c);
    uint64_t off = chance(c, 90) ? rng_below(c, in->size + 1)
                                 : in->size + rng_below(c, 2 * CHUNK);
    if (chance(c, 20) && in->size > 0)
        off = (rng_below(c, in->size / CHUNK + 1) * CHUNK) + rng_below(c, 64);
    uint64_t want = off >= in->size ? 0 : in->size - off < len ? in->size - off : len;
    bool positional = chance(c, 60);
    ssize_t n;
    int err;
    if (positional) {
        log_begin(c, "pread fd%d (%s) off=%" PRIu64 " len=%" PRIu64 " [size %" PRIu64 "]",
                  f->fd, f->path, off, len, in->size);
        n = read_full(f->fd, c->scratch, len, off);
        err = errno;
    } else {
        log_begin(c, "read fd%d (%s) off=%" PRIu64 " len=%" PRIu64 " [size %" PRIu64 "]",
                  f->fd, f->path, off, len, in->size);
        off_t got = lseek(f->fd, (off_t)off, SEEK_SET);
        if (got != (off_t)off) {
            log_end(c, "lseek %lld", (long long)got);
            fail(c, "lseek to %" PRIu64 " returned %lld", off, (long long)got);
        }
        size_t done = 0;
        n = 0;
        while (done < len) {
            n = read(f->fd, c->scratch + done, len - done);
            if (n <= 0)
                break;
            done += (size_t)n;
        }
        err = errno;
        if (n >= 0)
            n = (ssize_t)done;
        f->pos = off + (n > 0 ? (uint64_t)n : 0);
    }
    if (n >= 0 && (uint64_t)n != want) {
        log_end(c, "%zd bytes", n);
        fail(c, "read of %" PRIu64 " bytes at %" PRIu64 " returned %zd, expected %" PRIu64
             " (model size %" PRIu64 ")", len, off, n, want, in->size);
    }
    expect(c, "read", n, err, 0, 0);
    char what[REL_PATH + 32];
    snprintf(what, sizeof(what), "read fd%d (%s)", f->fd, f->path);
    compare_data(c, what, off, in->data + off, c->scratch, (size_t)want);
    c->bytes_read += want;
    c->counts[OP_READ]++;
}

static void op_ftruncate(struct checker *c)
{
    struct open_file *f = random_fd(c, true);
    if (!f) {
        op_open(c);
        return;
    }
    struct inode *in = &c->live.inodes[f->ino];
    uint64_t size = random_size(c, in->size);
    log_begin(c, "ftruncate fd%d (%s) %" PRIu64 " [size %" PRIu64 "]", f->fd, f->path,
              size, in->size);
    int rc = ftruncate(f->fd, (off_t)size);
    expect(c, "ftruncate", rc, errno, 0, 0);
    inode_resize(in, size);
    c->counts[OP_FTRUNCATE]++;
}

static void op_truncate(struct checker *c)
{
    char rel[REL_PATH], path[PATH_MAX];
    random_file_path(c, 90, rel);
    full_path(path, sizeof(path), c->root, rel);
    int entry = model_find(&c->live, rel);
    uint64_t old = entry >= 0 ? entry_inode(&c->live, entry)->size : 0;
    uint64_t size = random_size(c, old);
    log_begin(c, "truncate %s %" PRIu64 " [size %" PRIu64 "]", rel, size, old);
    int rc = truncate(path, (off_t)size);
    expect(c, "truncate", rc, errno, entry < 0 ? ENOENT : 0, 0);
    if (entry >= 0)
        inode_resize(entry_inode(&c->live, entry), size);
    c->counts[OP_TRUNCATE]++;
}

/* A random file of the model, or (when there is none) an op_open instead:
 * false then, and the caller's operation is done. */
static bool pick_file(struct checker *c, const struct entry **e,
                      const struct inode **in)
{
    int entry = random_entry(c, false);
    if (entry < 0) {
        op_open(c);
        return false;
    }
    *e = &c->live.entries[entry];
    *in = entry_inode(&c->live, entry);
    return true;
}

static void op_verify(struct checker *c)
{
    const struct entry *e;
    const struct inode *in;
    if (!pick_file(c, &e, &in))
        return;
    log_begin(c, "verify %s (whole file, %" PRIu64 " bytes)", e->path, in->size);
    verify_file(c, in, c->root, e->path, "verify");
    log_end(c, "ok");
    c->counts[OP_VERIFY]++;
}

static void op_stat(struct checker *c)
{
    struct open_file *f = c->fd_count && chance(c, 30)
                        ? &c->fds[rng_below(c, (uint64_t)c->fd_count)] : NULL;
    if (f && (c->opt->skip & SKIP_UNLINKED_FSTAT) && c->live.inodes[f->ino].links == 0)
        f = NULL;
    struct stat st;
    if (f) {
        const struct inode *in = &c->live.inodes[f->ino];
        log_begin(c, "fstat fd%d (%s%s) [size %" PRIu64 "]", f->fd, f->path,
                  in->links ? "" : ", unlinked", in->size);
        int rc = fstat(f->fd, &st);
        expect(c, "fstat", rc, errno, 0, 0);
        if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != in->size)
            fail(c, "fstat: mode %o size %lld, expected a regular file of %" PRIu64,
                 (unsigned)st.st_mode, (long long)st.st_size, in->size);
    } else {
        char rel[REL_PATH], path[PATH_MAX];
        if (chance(c, 20))
            random_dir_path(c, 70, rel);
        else
            random_file_path(c, 80, rel);
        full_path(path, sizeof(path), c->root, rel);
        int entry = model_find(&c->live, rel);
        log_begin(c, "stat %s", rel);
        int rc = stat(path, &st);
        expect(c, "stat", rc, errno, entry < 0 ? ENOENT : 0, 0);
        if (entry >= 0) {
            const struct inode *in = entry_inode(&c->live, entry);
            if (in->is_dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode))
                fail(c, "stat %s: mode %o, expected a %s", rel, (unsigned)st.st_mode,
                     in->is_dir ? "directory" : "regular file");
            if (!in->is_dir && (uint64_t)st.st_size != in->size)
                fail(c, "stat %s: size %lld, expected %" PRIu64, rel,
                     (long long)st.st_size, in->size);
        }
    }
    c->counts[OP_STAT]++;
}

/* The errno rename(src, dst) must give (VFS order of checks), 0 for success;
 * *alt is another accepted errno. */
static int rename_expect(const struct model *m, const char *src, const char *dst,
                         bool noreplace, int *alt)
{
    int s = model_find(m, src), d = model_find(m, dst);
    *alt = 0;
    if (s < 0)
        return ENOENT;
    if (noreplace && d >= 0)
        return EEXIST;
    if (strcmp(src, dst) == 0)
        return 0;
    if (path_under(dst, src))
        return EINVAL;
    if (path_under(src, dst))
        return ENOTEMPTY;
    bool src_dir = model_is_dir(m, s);
    if (d >= 0 && src_dir && !model_is_dir(m, d))
        return ENOTDIR;
    if (d >= 0 && !src_dir && model_is_dir(m, d))
        return EISDIR;
    if (d >= 0 && src_dir && !model_dir_empty(m, dst)) {
        *alt = EEXIST;
        return ENOTEMPTY;
    }
    return 0;
}

/* Applies a successful rename to the model. */
static void model_rename(struct model *m, const char *src, const char *dst)
{
    if (strcmp(src, dst) == 0)
        return;
    int d = model_find(m, dst);
    if (d >= 0)
        model_remove(m, d);
    size_t n = strlen(src);
    for (size_t i = 0; i < m->entry_count; i++) {
        char *p = m->entries[i].path;
        if (strcmp(p, src) == 0 || path_under(p, src)) {
            char moved[REL_PATH];
            snprintf(moved, sizeof(moved), "%s%s", dst, p + n);
            snprintf(p, REL_PATH, "%s", moved);
        }
    }
}

/* Height of the directory subtree at dir (0 for a file or a leaf). */
static int subtree_height(const struct model *m, const char *dir)
{
    int base = path_depth(dir), height = 0;
    for (size_t i = 0; i < m->entry_count; i++)
        if (entry_inode(m, (int)i)->is_dir && path_under(m->entries[i].path, dir)) {
            int h = path_depth(m->entries[i].path) - base;
            if (h > height)
                height = h;
        }
    return height;
}

static void op_rename(struct checker *c, bool dirs)
{
    char src[REL_PATH], dst[REL_PATH];
    for (int attempt = 0;; attempt++) {
        uint64_t r = rng_below(c, 100);
        if (dirs) {
            random_dir_path(c, 90, src);
            if (r < 10) {
                int e = random_entry(c, false);
                if (e >= 0)
                    snprintf(dst, sizeof(dst), "%s", c->live.entries[e].path);
                else
                    random_dir_path(c, 30, dst);
            } else {
                random_dir_path(c, r < 45 ? 60 : 10, dst);
            }
        } else {
            random_file_path(c, 90, src);
            if (r < 5) {
                int e = random_entry(c, true);
                if (e >= 0)
                    snprintf(dst, sizeof(dst), "%s", c->live.entries[e].path);
                else
                    random_file_path(c, 40, dst);
            } else {
                random_file_path(c, 40, dst);
            }
        }
        int alt;
        if (rename_expect(&c->live, src, dst, false, &alt) != 0 || !dirs)
            break;
        /* a directory move that succeeds must keep the tree within MAX_DEPTH */
        if (path_depth(dst) + subtree_height(&c->live, src) <= MAX_DEPTH)
            break;
        if (attempt == 10)
            return;
    }
    bool noreplace = chance(c, 10);
    int alt, want = rename_expect(&c->live, src, dst, noreplace, &alt);
    char from[PATH_MAX], to[PATH_MAX];
    full_path(from, sizeof(from), c->root, src);
    full_path(to, sizeof(to), c->root, dst);
    log_begin(c, "rename%s %s %s%s", dirs ? "(dir)" : "", src, dst,
              noreplace ? " RENAME_NOREPLACE" : "");
    int rc = noreplace ? renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE)
                       : rename(from, to);
    expect(c, "rename", rc, errno, want, alt);
    if (want == 0)
        model_rename(&c->live, src, dst);
    c->counts[dirs ? OP_RENAME_DIR : OP_RENAME_FILE]++;
}

static void op_unlink(struct checker *c)
{
    char rel[REL_PATH], path[PATH_MAX];
    int e = chance(c, 5) ? random_entry(c, true) : -1;
    if (e >= 0)
        snprintf(rel, sizeof(rel), "%s", c->live.entries[e].path);
    else
        random_file_path(c, 85, rel);
    full_path(path, sizeof(path), c->root, rel);
    int entry = model_find(&c->live, rel);
    int want = entry < 0 ? ENOENT : model_is_dir(&c->live, entry) ? EISDIR : 0;
    log_begin(c, "unlink %s", rel);
    int rc = unlink(path);
    expect(c, "unlink", rc, errno, want, 0);
    if (want == 0)
        model_remove(&c->live, entry);
    c->counts[OP_UNLINK]++;
}

static void op_mkdir(struct checker *c)
{
    char rel[REL_PATH], path[PATH_MAX];
    random_dir_path(c, model_count(&c->live, true) >= MAX_DIRS ? 100 : 15, rel);
    full_path(path, sizeof(path), c->root, rel);
    int entry = model_find(&c->live, rel);
    if (entry < 0 && model_count(&c->live, true) >= MAX_DIRS)
        return;
    log_begin(c, "mkdir %s", rel);
    int rc = mkdir(path, 0755);
    expect(c, "mkdir", rc, errno, entry >= 0 ? EEXIST : 0, 0);
    if (entry < 0)
        model_add(&c->live, rel, model_new_inode(&c->live, true));
    c->counts[OP_MKDIR]++;
}

static void op_rmdir(struct checker *c)
{
    char rel[REL_PATH], path[PATH_MAX];
    uint64_t r = rng_below(c, 100);
    int e = -1;
    if (r < 10)
        e = random_entry(c, false);
    if (e < 0 && r < 60) {
        /* prefer an empty directory, so that some rmdirs succeed */
        for (size_t i = 0; i < c->live.entry_count; i++)
            if (model_is_dir(&c->live, (int)i) &&
                model_dir_empty(&c->live, c->live.entries[i].path) && chance(c, 60)) {
                e = (int)i;
                break;
            }
    }
    if (e >= 0)
        snprintf(rel, sizeof(rel), "%s", c->live.entries[e].path);
    else
        random_dir_path(c, 85, rel);
    full_path(path, sizeof(path), c->root, rel);
    int entry = model_find(&c->live, rel);
    int want = entry < 0 ? ENOENT : !model_is_dir(&c->live, entry) ? ENOTDIR
             : !model_dir_empty(&c->live, rel) ? ENOTEMPTY : 0;
    log_begin(c, "rmdir %s", rel);
    int rc = rmdir(path);
    expect(c, "rmdir", rc, errno, want, want == ENOTEMPTY ? EEXIST : 0);
    if (want == 0)
        model_remove(&c->live, entry);
    c->counts[OP_RMDIR]++;
}

/* A path for an xattr call: any existing entry, or now and then a missing
 * file. Returns the model entry or -1. */
static int xattr_target(struct checker *c, char *rel)
{
    int e = -1;
    if (!chance(c, 8) && c->live.entry_count > 0)
        e = (int)rng_below(c, c->live.entry_count);
    if (e >= 0)
        snprintf(rel, REL_PATH, "%s", c->live.entries[e].path);
    else
        random_file_path(c, 0, rel);
    return model_find(&c->live, rel);
}

/* "user." + name k in random letter case. */
static void xattr_call_name(struct checker *c, size_t k, char *out)
{
    int n = snprintf(out, 64, "user.%s", xattr_names[k]);
    for (int i = 5; i < n; i++)
        if (chance(c, 40))
            out[i] = (char)toupper((unsigned char)out[i]);
}

static void op_setxattr(struct checker *c)
{
    char rel[REL_PATH], path[PATH_MAX], name[64];
    int entry = xattr_target(c, rel);
    size_t k = (size_t)rng_below(c, XATTR_COUNT);
    xattr_call_name(c, k, name);
    unsigned char value[XATTR_VALUE_MAX];
    size_t len = chance(c, 10) ? 0 : (size_t)rng_range(c, 1, XATTR_VALUE_MAX);
    if (chance(c, 50)) {
        for (size_t i = 0; i < len; i++)
            value[i] = (unsigned char)rng_range(c, 'a', 'z');
    } else {
        for (size_t i = 0; i < len; i++)
            value[i] = (unsigned char)rng_next(c);
    }
    uint64_t r = rng_below(c, 100);
    int flags = r < 15 ? XATTR_CREATE : r < 30 ? XATTR_REPLACE : 0;
    struct inode *in = entry >= 0 ? entry_inode(&c->live, entry) : NULL;
    int want = !in ? ENOENT
             : flags == XATTR_CREATE && in->xattrs[k].set ? EEXIST
             : flags == XATTR_REPLACE && !in->xattrs[k].set ? ENODATA : 0;
    full_path(path, sizeof(path), c->root, rel);
    log_begin(c, "setxattr %s %s len=%zu%s", shown(rel), name, len,
              flags == XATTR_CREATE ? " XATTR_CREATE"
              : flags == XATTR_REPLACE ? " XATTR_REPLACE" : "");
    int rc = setxattr(path, name, value, len, flags);
    expect(c, "setxattr", rc, errno, want, 0);
    if (want == 0) {
        in->xattrs[k].set = true;
        in->xattrs[k].len = len;
        memcpy(in->xattrs[k].value, value, len);
    }
    c->counts[OP_SETXATTR]++;
}

static void op_getxattr(struct checker *c)
{
    char rel[REL_PATH], path[PATH_MAX], name[64];
    int entry = xattr_target(c, rel);
    size_t k = (size_t)rng_below(c, XATTR_COUNT);
    xattr_call_name(c, k, name);
    struct inode *in = entry >= 0 ? entry_inode(&c->live, entry) : NULL;
    const struct xattr_slot *x = in ? &in->xattrs[k] : NULL;
    uint64_t r = rng_below(c, 100);
    size_t size = XATTR_VALUE_MAX + 16;
    if (r < 15)
        size = 0;                       /* asks for the length */
    else if (r < 30 && x && x->set && x->len > 0)
        size = x->len - 1;              /* too small: ERANGE */
    int want = !in ? ENOENT : !x->set ? ENODATA : size && size < x->len ? ERANGE : 0;
    unsigned char value[XATTR_VALUE_MAX + 16];
    full_path(path, sizeof(path), c->root, rel);
    log_begin(c, "getxattr %s %s size=%zu", shown(rel), name, size);
    ssize_t n = getxattr(path, name, size ? value : NULL, size);
    int err = errno;
    expect(c, "getxattr", n, err, want, 0);
    if (want == 0) {
        if ((size_t)n != x->len)
            fail(c, "getxattr %s %s returned %zd bytes, expected %zu", rel, name, n, x->len);
        if (size)
            compare_data(c, "getxattr value", 0, x->value, value, x->len);
    }
    c->counts[OP_GETXATTR]++;
}

static void op_removexattr(struct checker *c)
{
    char rel[REL_PATH], path[PATH_MAX], name[64];
    int entry = xattr_target(c, rel);
    size_t k = (size_t)rng_below(c, XATTR_COUNT);
    xattr_call_name(c, k, name);
    struct inode *in = entry >= 0 ? entry_inode(&c->live, entry) : NULL;
    int want = !in ? ENOENT : !in->xattrs[k].set ? ENODATA : 0;
    full_path(path, sizeof(path), c->root, rel);
    log_begin(c, "removexattr %s %s", shown(rel), name);
    int rc = removexattr(path, name);
    expect(c, "removexattr", rc, errno, want, 0);
    if (want == 0)
        in->xattrs[k].set = false;
    c->counts[OP_REMOVEXATTR]++;
}

static void op_listxattr(struct checker *c)
{
    if (c->live.entry_count == 0) {
        op_open(c);
        return;
    }
    int entry = (int)rng_below(c, c->live.entry_count);
    const struct entry *e = &c->live.entries[entry];
    char path[PATH_MAX];
    full_path(path, sizeof(path), c->root, e->path);
    log_begin(c, "listxattr+getxattr %s", e->path);
    verify_xattrs(c, entry_inode(&c->live, entry), path, e->path);
    log_end(c, "ok");
    c->counts[OP_LISTXATTR]++;
}

static void op_readdir(struct checker *c)
{
    char dir[REL_PATH];
    random_dir(c, MAX_DEPTH, dir);
    log_begin(c, "readdir %s", shown(dir));
    verify_listing(c, &c->live, c->root, dir, "readdir");
    log_end(c, "ok");
    c->counts[OP_READDIR]++;
}

/* user.s3mem.etag is the MD5 of the body; user.s3mem.key the full key. */
static void op_etag(struct checker *c)
{
    const struct entry *e;
    const struct inode *in;
    if (!pick_file(c, &e, &in))
        return;
    char path[PATH_MAX], want[64], got[PATH_MAX];
    full_path(path, sizeof(path), c->root, e->path);
    struct s3m_md5 md5;
    unsigned char digest[16];
    s3m_md5_init(&md5);
    s3m_md5_update(&md5, in->data, in->size);
    s3m_md5_final(&md5, digest);
    s3m_md5_hex(digest, want);
    log_begin(c, "getxattr %s user.s3mem.etag [%" PRIu64 " bytes]", e->path, in->size);
    ssize_t n = getxattr(path, "user.s3mem.etag", got, sizeof(got) - 1);
    expect(c, "getxattr user.s3mem.etag", n, errno, 0, 0);
    got[n] = 0;
    /* S3 shows the etag quoted; accept it with or without quotes */
    const char *hex = got[0] == '"' ? got + 1 : got;
    if (strncmp(hex, want, 32) != 0 || (hex[32] && strcmp(hex + 32, "\"") != 0))
        fail(c, "user.s3mem.etag of %s is '%s', expected MD5 %s", e->path, got, want);
    char key[PATH_MAX];
    snprintf(key, sizeof(key), "%s/%s", c->workdir, e->path);
    n = getxattr(path, "user.s3mem.key", got, sizeof(got) - 1);
    if (n < 0)
        fail(c, "getxattr user.s3mem.key of %s failed: %s", e->path, strerror(errno));
    got[n] = 0;
    if (strcmp(got, key) != 0)
        fail(c, "user.s3mem.key of %s is '%s', expected '%s'", e->path, got, key);
    c->counts[OP_ETAG]++;
}

static enum op_kind random_op(struct checker *c)
{
    unsigned total = 0;
    for (int k = 0; k < OP_KIND_COUNT; k++)
        total += op_weights[k];
    uint64_t r = rng_below(c, total);
    for (int k = 0; k < OP_KIND_COUNT; k++) {
        if (r < op_weights[k])
            return (enum op_kind)k;
        r -= op_weights[k];
    }
    return OP_READ;
}

static void run_op(struct checker *c, enum op_kind kind)
{
    switch (kind) {
    case OP_OPEN: op_open(c); break;
    case OP_CLOSE:
        if (c->fd_count)
            close_fd(c, (int)rng_below(c, (uint64_t)c->fd_count));
        else
            op_open(c);
        break;
    case OP_WRITE: op_write(c, false); break;
    case OP_PWRITE: op_write(c, true); break;
    case OP_READ: op_read(c); break;
    case OP_FTRUNCATE: op_ftruncate(c); break;
    case OP_TRUNCATE: op_truncate(c); break;
    case OP_VERIFY: op_verify(c); break;
    case OP_STAT: op_stat(c); break;
    case OP_RENAME_FILE: op_rename(c, false); break;
    case OP_RENAME_DIR: op_rename(c, true); break;
    case OP_UNLINK: op_unlink(c); break;
    case OP_MKDIR: op_mkdir(c); break;
    case OP_RMDIR: op_rmdir(c); break;
    case OP_SETXATTR: op_setxattr(c); break;
    case OP_GETXATTR: op_getxattr(c); break;
    case OP_REMOVEXATTR: op_removexattr(c); break;
    case OP_LISTXATTR: op_listxattr(c); break;
    case OP_READDIR: op_readdir(c); break;
    case OP_ETAG: op_etag(c); break;
    default: break;
    }
}

/* ---- a worker ------------------------------------------------------------- */

static void format_bytes(uint64_t n, char *out, size_t size)
{
    if (n >= (uint64_t)1 << 30)
        snprintf(out, size, "%.2f GiB", (double)n / (double)((uint64_t)1 << 30));
    else
        snprintf(out, size, "%.1f MiB", (double)n / (double)(1 << 20));
}

/* Runs one worker to the end; returns 0, or exits 1 at the first mismatch. */
static int run_worker(const struct options *o, unsigned worker)
{
    struct checker *c = xcalloc(1, sizeof(*c));
    c->opt = o;
    c->worker = worker;
    c->seed = o->seed + worker;
    c->restore_allowed = o->procs == 1 && !o->no_restore;
    uint64_t s = c->seed;
    for (int i = 0; i < 4; i++)
        c->rng[i] = splitmix64(&s);
    snprintf(c->workdir, sizeof(c->workdir), "opcheck-w%u", worker);
    snprintf(c->root, sizeof(c->root), "%s/%s", o->mountpoint, c->workdir);
    snprintf(c->control, sizeof(c->control), "%s/%s", o->mountpoint, o->control_dir);
    model_init(&c->live, o->files + MAX_DIRS + MAX_FDS + 2, o->files + MAX_DIRS + 1);
    c->scratch = xmalloc(o->max_size + CHUNK);

    double start = now_seconds();
    log_begin(c, "mkdir . (%s)", c->root);
    if (mkdir(c->root, 0755) != 0) {
        int err = errno;
        log_end(c, "%s", errno_name(err));
        fail(c, "cannot create %s: %s%s", c->root, strerror(err),
             err == EEXIST ? " (run on a fresh mount)" : "");
    }
    log_end(c, "ok");

    uint64_t progress_every = o->ops >= 100000 ? o->ops / 10 : 0;
    for (c->op = 1; c->op <= o->ops; c->op++) {
        if (o->snapshot_every && c->op % o->snapshot_every == 0)
            snapshot_tick(c);
        else
            run_op(c, random_op(c));
        if (progress_every && c->op % progress_every == 0 && c->op < o->ops)
            printf("opcheck: worker %u: %" PRIu64 " ops, %.1f s\n", worker, c->op,
                   now_seconds() - start);
    }
    c->op = o->ops + 1;
    close_all(c);
    log_begin(c, "final: verify the whole tree");
    verify_tree(c, &c->live, c->root, "final:", false);
    log_end(c, "ok");
    for (int i = 0; i < c->snapshot_count; i++) {
        check_snapshot(c, &c->snapshots[i]);
        char path[PATH_MAX + 128];
        snprintf(path, sizeof(path), "%s/snapshots/%s", c->control, c->snapshots[i].name);
        log_begin(c, "drop-snapshot %s (rmdir)", c->snapshots[i].name);
        int rc = rmdir(path);
        expect(c, "rmdir of a snapshot", rc, errno, 0, 0);
        model_release(&c->snapshots[i].model);
        c->counts[OP_DROP_SNAPSHOT]++;
    }
    double seconds = now_seconds() - start;

    char written[32], read_text[32], line[2048];
    format_bytes(c->bytes_written, written, sizeof(written));
    format_bytes(c->bytes_read, read_text, sizeof(read_text));
    int n = snprintf(line, sizeof(line),
                     "opcheck: worker %u seed %" PRIu64 ": %" PRIu64 " ops in %.1f s "
                     "(%.0f ops/s), written %s, read %s\n  ", worker, c->seed, o->ops,
                     seconds, (double)o->ops / (seconds > 0 ? seconds : 1), written,
                     read_text);
    for (int k = 0; k < OP_KIND_COUNT && n < (int)sizeof(line); k++)
        n += snprintf(line + n, sizeof(line) - (size_t)n, "%s=%" PRIu64 "%s", op_names[k],
                      c->counts[k], k + 1 < OP_KIND_COUNT ? " " : "\n");
    fputs(line, stdout);
    fflush(stdout);
    model_release(&c->live);
    free(c->scratch);
    free(c);
    return 0;
}

/* ---- main ----------------------------------------------------------------- */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: opcheck MOUNTPOINT [options]\n"
            "Random file operations on an s3mem mount, checked against a model.\n"
            "Stops at the first difference, prints the last %d operations, exits 1.\n"
            "  --seed S             random seed (default 1); worker i uses S+i\n"
            "  --ops N              operations per worker (default 10000)\n"
            "  --files K            most files at once per worker (default 16)\n"
            "  --max-size N[K|M|G]  largest file (default 4M)\n"
            "  --snapshot-every N   snapshot (and maybe restore) every N ops (0: off)\n"
            "  --procs P            P workers in parallel, each in its own directory;\n"
            "                       restores only happen with one worker\n"
            "  --no-restore         never restore a snapshot\n"
            "  --control-dir NAME   the control directory (default .s3mem)\n"
            "  --skip NAME[,NAME]   leave out a check for a known issue:\n"
            "                       unlinked-fstat, control-read\n"
            "  --verbose            print every operation\n"
            "Needs a fresh mount: worker i works in MOUNTPOINT/opcheck-wI.\n",
            LOG_KEEP);
}

static bool parse_number(const char *text, uint64_t *out, bool sizes)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || end == text)
        return false;
    if (sizes && *end) {
        int shift = *end == 'K' || *end == 'k' ? 10 : *end == 'M' || *end == 'm' ? 20
                  : *end == 'G' || *end == 'g' ? 30 : -1;
        if (shift < 0)
            return false;
        v <<= shift;
        end++;
    }
    if (*end)
        return false;
    *out = v;
    return true;
}

/* Adds the bits of a comma-separated list of skip names to *skip. */
static bool parse_skip(const char *text, unsigned *skip)
{
    while (*text) {
        size_t len = strcspn(text, ",");
        size_t i = 0;
        while (i < SKIP_NAME_COUNT && (strlen(skip_names[i].name) != len ||
                                       strncmp(skip_names[i].name, text, len) != 0))
            i++;
        if (i == SKIP_NAME_COUNT)
            return false;
        *skip |= skip_names[i].bit;
        text += len + (text[len] == ',');
    }
    return true;
}

int main(int argc, char **argv)
{
    struct options o = {.control_dir = ".s3mem", .seed = 1, .ops = 10000,
                        .files = 16, .max_size = 4 << 20, .procs = 1};
    static const struct option long_options[] = {
        {"seed", required_argument, NULL, 's'},
        {"ops", required_argument, NULL, 'n'},
        {"files", required_argument, NULL, 'k'},
        {"max-size", required_argument, NULL, 'm'},
        {"snapshot-every", required_argument, NULL, 'e'},
        {"procs", required_argument, NULL, 'p'},
        {"no-restore", no_argument, NULL, 'R'},
        {"control-dir", required_argument, NULL, 'c'},
        {"skip", required_argument, NULL, 'x'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    uint64_t v;
    while ((opt = getopt_long(argc, argv, "s:n:k:m:e:p:Rc:x:vh", long_options, NULL)) != -1) {
        bool ok = true;
        switch (opt) {
        case 's': ok = parse_number(optarg, &o.seed, false); break;
        case 'n': ok = parse_number(optarg, &o.ops, false); break;
        case 'k':
            ok = parse_number(optarg, &v, false) && v >= 1 && v <= 1000;
            o.files = (unsigned)v;
            break;
        case 'm':
            ok = parse_number(optarg, &o.max_size, true) && o.max_size >= 1 &&
                 o.max_size <= ((uint64_t)1 << 32);
            break;
        case 'e': ok = parse_number(optarg, &o.snapshot_every, false); break;
        case 'p':
            ok = parse_number(optarg, &v, false) && v >= 1 && v <= 64;
            o.procs = (unsigned)v;
            break;
        case 'R': o.no_restore = true; break;
        case 'c': o.control_dir = optarg; break;
        case 'x':
            ok = parse_skip(optarg, &o.skip);
            break;
        case 'v': o.verbose = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
        if (!ok) {
            size_t i = 0;
            while (long_options[i].name && long_options[i].val != opt)
                i++;
            fprintf(stderr, "opcheck: bad value for --%s: '%s'\n",
                    long_options[i].name ? long_options[i].name : "?", optarg);
            return 2;
        }
    }
    if (optind + 1 != argc) {
        usage(stderr);
        return 2;
    }
    o.mountpoint = argv[optind];
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("opcheck: %s seed %" PRIu64 ", %" PRIu64 " ops, %u files, max size %" PRIu64
           ", snapshot every %" PRIu64 ", %u proc%s%s%s\n", o.mountpoint, o.seed, o.ops,
           o.files, o.max_size, o.snapshot_every, o.procs, o.procs == 1 ? "" : "s",
           o.snapshot_every && (o.procs > 1 || o.no_restore) ? " (no restores)" : "",
           skip_text(o.skip));
    if (o.procs == 1)
        return run_worker(&o, 0);

    double start = now_seconds();
    pid_t pids[64];
    for (unsigned i = 0; i < o.procs; i++) {
        pids[i] = fork();
        if (pids[i] < 0) {
            perror("opcheck: fork");
            for (unsigned j = 0; j < i; j++)
                kill(pids[j], SIGTERM);
            return 2;
        }
        if (pids[i] == 0)
            _exit(run_worker(&o, i));
    }
    int result = 0;
    for (unsigned done = 0; done < o.procs; done++) {
        int status;
        pid_t pid = wait(&status);
        if (pid < 0)
            break;
        for (unsigned i = 0; i < o.procs; i++)
            if (pids[i] == pid)
                pids[i] = 0;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            if (result == 0)
                for (unsigned i = 0; i < o.procs; i++)
                    if (pids[i] > 0)
                        kill(pids[i], SIGTERM); /* our own workers, still running */
            result = 1;
        }
    }
    printf("opcheck: %u workers %s in %.1f s\n", o.procs, result ? "FAILED" : "passed",
           now_seconds() - start);
    return result;
}
