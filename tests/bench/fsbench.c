/*
 * fsbench - file system workloads for comparing s3mem with tmpfs (or any
 * other directory). A benchmark, not a test: it prints figures and never
 * judges a time. It exits non-zero only when something is incorrect: a
 * system call fails or data read back differs from what was written.
 *
 *   fsbench DIR [--scale F] [--threads N] [--json]
 *       Runs every workload in a fresh DIR/fsbench.PID and removes it.
 *       Text output is one line per workload,
 *           NAME  OPS ops  SECONDS s  RATE UNIT
 *       (UNIT is ops/s or MB/s, MB = 10^6 bytes); lines starting with '#'
 *       are notes. --json prints one JSON document instead.
 *
 *   fsbench DIR --populate N [--dirs D] [--size BYTES] [--name-len L]
 *       Creates N files in DIR (spread over D subdirectories d000.. when
 *       D > 0) and exits: the run-bench.sh control-plane and memory parts
 *       use it. Names are "id=<n>" (an s3db.js record key when DIR is
 *       .../resource=R/data), or 'f' plus the index zero-padded to L bytes.
 *       Bodies of 32 bytes or more are a JSON object padded to BYTES.
 *
 * Build: cc -std=c11 -Wall -Wextra -Werror -O2 -o fsbench fsbench.c -lpthread
 * Exit status: 0 ok, 1 incorrect result or failed system call, 2 usage.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

enum {
    SMALL_SIZE = 1024,
    SMALL_DIRS = 100,
    BLOCK_SIZE = 1 << 20,
    PAGE = 4096,
    XATTR_VALUE_MAX = 64,
};

/* Base sizes at --scale 1, from the issue. */
static const double BASE_SMALL_FILES = 10000;
static const double BASE_BIG_DIR = 20000;
static const double BASE_SEQ_BYTES = 1024.0 * 1024 * 1024;
static const double BASE_RANDOM_READS = 20000;
static const double BASE_RENAME_FILES = 1000;

static const char XATTR_NAME[] = "user.fsbench";

struct result {
    char name[32];
    uint64_t ops;
    uint64_t bytes;   /* non-zero: the rate is MB/s */
    double seconds;
    const char *skipped; /* reason, or NULL */
    const char *note;
};

static struct result results[32];
static int result_count;
static bool json_output;
static char root[4096];  /* DIR/fsbench.PID; empty until created */

/* ---- errors ---- */

static int remove_entry(const char *path, const struct stat *st, int type,
                        struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (type == FTW_DP)
        rmdir(path);
    else
        unlink(path);
    return 0;
}

/* Removes the work tree, best effort, so a failed run leaves no litter. */
static void remove_root(void)
{
    if (root[0])
        nftw(root, remove_entry, 64, FTW_DEPTH | FTW_PHYS);
    root[0] = '\0';
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("fsbench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    remove_root();
    exit(1);
}

static void fail_errno(const char *what, const char *path) __attribute__((noreturn));
static void fail_errno(const char *what, const char *path)
{
    fail("cannot %s '%s': %s", what, path, strerror(errno));
}

static void make_path(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void make_path(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= size)
        fail("path too long");
}

/* ---- time, data ---- */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* The content of small file INDEX: different for every file. */
static void fill_small(unsigned char *buf, uint64_t index)
{
    for (size_t w = 0; w < SMALL_SIZE / 8; w++) {
        uint64_t v = mix(index * 1000003ULL + w);
        memcpy(buf + w * 8, &v, 8);
    }
}

/* The big file is one random 1 MiB block repeated, with the first 8 bytes of
 * every 4 KiB page replaced by the page's file offset (mixed), so any misplaced
 * page is caught. */
static unsigned char *base_block;

static uint64_t page_tag(uint64_t offset)
{
    return mix(offset ^ 0x5eedULL);
}

static void patch_block(unsigned char *block, uint64_t offset)
{
    for (size_t p = 0; p < BLOCK_SIZE; p += PAGE) {
        uint64_t tag = page_tag(offset + p);
        memcpy(block + p, &tag, 8);
    }
}

static void xattr_value(char *buf, size_t size, uint64_t index)
{
    snprintf(buf, size, "value-%" PRIu64 "-%016" PRIx64, index, mix(index));
}

/* ---- I/O helpers ---- */

static void write_all(int fd, const void *buf, size_t len, const char *path)
{
    const unsigned char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fail_errno("write", path);
        }
        p += n;
        len -= (size_t)n;
    }
}

/* Reads up to LEN bytes; returns how many (less only at end of file). */
static size_t read_full(int fd, void *buf, size_t len, const char *path)
{
    unsigned char *p = buf;
    size_t done = 0;
    while (done < len) {
        ssize_t n = read(fd, p + done, len - done);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fail_errno("read", path);
        }
        if (n == 0)
            break;
        done += (size_t)n;
    }
    return done;
}

static void make_dir(const char *path)
{
    if (mkdir(path, 0755) != 0)
        fail_errno("mkdir", path);
}

static void small_dir_path(char *buf, size_t size, const char *tree, unsigned d)
{
    make_path(buf, size, "%s/%s/d%03u", root, tree, d);
}

static void small_file_path(char *buf, size_t size, const char *tree,
                            uint64_t index, unsigned dirs)
{
    make_path(buf, size, "%s/%s/d%03u/f%06" PRIu64, root, tree,
              (unsigned)(index % dirs), index);
}

static void write_file(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        fail_errno("create", path);
    write_all(fd, data, len, path);
    if (close(fd) != 0)
        fail_errno("close", path);
}

static void read_and_verify(const char *path, const unsigned char *want, size_t len)
{
    unsigned char got[SMALL_SIZE + 1];
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        fail_errno("open", path);
    size_t n = read_full(fd, got, sizeof(got), path);
    if (close(fd) != 0)
        fail_errno("close", path);
    if (n != len || memcmp(got, want, len) != 0)
        fail("verification failed: '%s' read back %zu bytes that differ from "
             "the %zu written", path, n, len);
}

/* ---- results ---- */

static struct result *add_result(const char *name, uint64_t ops, uint64_t bytes,
                                 double seconds)
{
    if (result_count == (int)(sizeof(results) / sizeof(results[0])))
        fail("too many results");
    struct result *r = &results[result_count++];
    memset(r, 0, sizeof(*r));
    snprintf(r->name, sizeof(r->name), "%s", name);
    r->ops = ops;
    r->bytes = bytes;
    r->seconds = seconds;
    if (!json_output) {
        double rate = bytes ? (double)bytes / 1e6 / seconds : (double)ops / seconds;
        printf("%-14s %10" PRIu64 " ops %10.4f s %12.1f %s\n", name, ops, seconds,
               rate, bytes ? "MB/s" : "ops/s");
        fflush(stdout);
    }
    return r;
}

static void add_skipped(const char *name, const char *reason)
{
    struct result *r = &results[result_count++];
    memset(r, 0, sizeof(*r));
    snprintf(r->name, sizeof(r->name), "%s", name);
    r->skipped = reason;
    if (!json_output) {
        printf("%-14s n/a (%s)\n", name, reason);
        fflush(stdout);
    }
}

static void note(struct result *r, const char *text)
{
    r->note = text;
    if (!json_output) {
        printf("# %s: %s\n", r->name, text);
        fflush(stdout);
    }
}

static void print_json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            printf("\\u%04x", *s);
        else
            putchar(*s);
    }
    putchar('"');
}

static void print_json(const char *dir, double scale, int threads)
{
    printf("{\"dir\":");
    print_json_string(dir);
    printf(",\"scale\":%g,\"threads\":%d,\"results\":[", scale, threads);
    for (int i = 0; i < result_count; i++) {
        const struct result *r = &results[i];
        printf("%s\n{\"name\":", i ? "," : "");
        print_json_string(r->name);
        if (r->skipped) {
            printf(",\"skipped\":");
            print_json_string(r->skipped);
        } else {
            double rate = r->bytes ? (double)r->bytes / 1e6 / r->seconds
                                   : (double)r->ops / r->seconds;
            printf(",\"ops\":%" PRIu64 ",\"bytes\":%" PRIu64
                   ",\"seconds\":%.6f,\"rate\":%.3f,\"unit\":\"%s\"",
                   r->ops, r->bytes, r->seconds, rate, r->bytes ? "MB/s" : "ops/s");
        }
        if (r->note) {
            printf(",\"note\":");
            print_json_string(r->note);
        }
        putchar('}');
    }
    printf("]}\n");
}

/* ---- workloads ---- */

#define RENAME_TIMES 9 /* odd: the directory ends up renamed */

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

struct small_set {
    const char *tree;  /* subdirectory of root */
    uint64_t files;
    unsigned dirs;
};

static void make_small_dirs(const struct small_set *set)
{
    char path[4096];
    make_path(path, sizeof(path), "%s/%s", root, set->tree);
    make_dir(path);
    for (unsigned d = 0; d < set->dirs; d++) {
        small_dir_path(path, sizeof(path), set->tree, d);
        make_dir(path);
    }
}

static void create_range(const struct small_set *set, uint64_t from, uint64_t to)
{
    unsigned char data[SMALL_SIZE];
    char path[4096];
    for (uint64_t i = from; i < to; i++) {
        fill_small(data, i);
        small_file_path(path, sizeof(path), set->tree, i, set->dirs);
        write_file(path, data, SMALL_SIZE);
    }
}

static void read_range(const struct small_set *set, uint64_t from, uint64_t to)
{
    unsigned char data[SMALL_SIZE];
    char path[4096];
    for (uint64_t i = from; i < to; i++) {
        fill_small(data, i);
        small_file_path(path, sizeof(path), set->tree, i, set->dirs);
        read_and_verify(path, data, SMALL_SIZE);
    }
}

static void stat_range(const struct small_set *set, uint64_t from, uint64_t to)
{
    char path[4096];
    struct stat st;
    for (uint64_t i = from; i < to; i++) {
        small_file_path(path, sizeof(path), set->tree, i, set->dirs);
        if (stat(path, &st) != 0)
            fail_errno("stat", path);
        if (st.st_size != SMALL_SIZE || !S_ISREG(st.st_mode))
            fail("verification failed: '%s' has size %lld, want %d", path,
                 (long long)st.st_size, SMALL_SIZE);
    }
}

/* Returns false when the file system has no user.* xattrs (nothing timed). */
static bool xattr_workload(const struct small_set *set)
{
    char path[4096];
    char value[XATTR_VALUE_MAX], got[XATTR_VALUE_MAX];

    small_file_path(path, sizeof(path), set->tree, 0, set->dirs);
    if (setxattr(path, XATTR_NAME, "probe", 5, 0) != 0) {
        if (errno == ENOTSUP || errno == EPERM)
            return false;
        fail_errno("setxattr", path);
    }

    double t0 = now();
    for (uint64_t i = 0; i < set->files; i++) {
        small_file_path(path, sizeof(path), set->tree, i, set->dirs);
        xattr_value(value, sizeof(value), i);
        if (setxattr(path, XATTR_NAME, value, strlen(value), 0) != 0)
            fail_errno("setxattr", path);
    }
    add_result("xattr-set", set->files, 0, now() - t0);

    t0 = now();
    for (uint64_t i = 0; i < set->files; i++) {
        small_file_path(path, sizeof(path), set->tree, i, set->dirs);
        xattr_value(value, sizeof(value), i);
        ssize_t n = getxattr(path, XATTR_NAME, got, sizeof(got));
        if (n < 0)
            fail_errno("getxattr", path);
        if ((size_t)n != strlen(value) || memcmp(got, value, (size_t)n) != 0)
            fail("verification failed: %s of '%s' reads back a different value",
                 XATTR_NAME, path);
    }
    add_result("xattr-get", set->files, 0, now() - t0);
    return true;
}

static void remove_small(const struct small_set *set, uint64_t *ops)
{
    char path[4096];
    for (uint64_t i = 0; i < set->files; i++) {
        small_file_path(path, sizeof(path), set->tree, i, set->dirs);
        if (unlink(path) != 0)
            fail_errno("unlink", path);
    }
    *ops += set->files;
    for (unsigned d = 0; d < set->dirs; d++) {
        small_dir_path(path, sizeof(path), set->tree, d);
        if (rmdir(path) != 0)
            fail_errno("rmdir", path);
    }
    make_path(path, sizeof(path), "%s/%s", root, set->tree);
    if (rmdir(path) != 0)
        fail_errno("rmdir", path);
    *ops += set->dirs + 1;
}

/* Files "e<index>" in one directory; empty. */
static void create_flat(const char *dir, uint64_t count)
{
    char path[4096];
    make_dir(dir);
    for (uint64_t i = 0; i < count; i++) {
        make_path(path, sizeof(path), "%s/e%07" PRIu64, dir, i);
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
        if (fd < 0)
            fail_errno("create", path);
        if (close(fd) != 0)
            fail_errno("close", path);
    }
}

static void remove_flat(const char *dir, uint64_t count, uint64_t *ops)
{
    char path[4096];
    for (uint64_t i = 0; i < count; i++) {
        make_path(path, sizeof(path), "%s/e%07" PRIu64, dir, i);
        if (unlink(path) != 0)
            fail_errno("unlink", path);
    }
    if (rmdir(dir) != 0)
        fail_errno("rmdir", dir);
    *ops += count + 1;
}

/* ls -l: readdir plus fstatat of each entry. Returns the entries seen. */
static uint64_t list_long(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        fail_errno("open", dir);
    DIR *d = fdopendir(fd);
    if (!d)
        fail_errno("opendir", dir);
    uint64_t seen = 0;
    struct dirent *e;
    struct stat st;
    errno = 0;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            fail_errno("fstatat", e->d_name);
        if (!S_ISREG(st.st_mode) || st.st_size != 0)
            fail("verification failed: '%s/%s' is not an empty file", dir, e->d_name);
        seen++;
        errno = 0;
    }
    if (errno != 0)
        fail_errno("readdir", dir);
    closedir(d);
    return seen;
}

static void seq_write(const char *path, uint64_t bytes)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        fail_errno("create", path);
    for (uint64_t off = 0; off < bytes; off += BLOCK_SIZE) {
        patch_block(base_block, off);
        write_all(fd, base_block, BLOCK_SIZE, path);
    }
    if (fsync(fd) != 0)
        fail_errno("fsync", path);
    if (close(fd) != 0)
        fail_errno("close", path);
}

static void seq_read(const char *path, uint64_t bytes, unsigned char *buf)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        fail_errno("open", path);
    for (uint64_t off = 0; off < bytes; off += BLOCK_SIZE) {
        size_t n = read_full(fd, buf, BLOCK_SIZE, path);
        patch_block(base_block, off);
        if (n != BLOCK_SIZE || memcmp(buf, base_block, BLOCK_SIZE) != 0)
            fail("verification failed: '%s' block at %" PRIu64 " differs", path, off);
    }
    if (read_full(fd, buf, 1, path) != 0)
        fail("verification failed: '%s' is longer than written", path);
    if (close(fd) != 0)
        fail_errno("close", path);
}

static void random_reads(const char *path, uint64_t bytes, uint64_t count)
{
    unsigned char buf[PAGE];
    uint64_t pages = bytes / PAGE;
    uint64_t state = 12345;
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        fail_errno("open", path);
    for (uint64_t i = 0; i < count; i++) {
        state = mix(state);
        uint64_t off = (state % pages) * PAGE;
        ssize_t n;
        do
            n = pread(fd, buf, PAGE, (off_t)off);
        while (n < 0 && errno == EINTR);
        if (n < 0)
            fail_errno("pread", path);
        uint64_t tag = page_tag(off);
        size_t in_block = (size_t)(off % BLOCK_SIZE);
        if (n != PAGE || memcmp(buf, &tag, 8) != 0 ||
            memcmp(buf + 8, base_block + in_block + 8, PAGE - 8) != 0)
            fail("verification failed: '%s' page at %" PRIu64 " differs", path, off);
    }
    if (close(fd) != 0)
        fail_errno("close", path);
}

typedef void (*range_fn)(const struct small_set *set, uint64_t from, uint64_t to);

struct thread_job {
    const struct small_set *set;
    uint64_t from, to;
    range_fn fn;
};

static void *thread_main(void *arg)
{
    struct thread_job *job = arg;
    job->fn(job->set, job->from, job->to);
    return NULL;
}

/* Splits the files into THREADS contiguous ranges, one per thread. */
static double run_threads(const struct small_set *set, int threads, range_fn fn)
{
    pthread_t tid[64];
    struct thread_job job[64];
    double t0 = now();
    for (int t = 0; t < threads; t++) {
        job[t] = (struct thread_job){set, set->files * (uint64_t)t / (uint64_t)threads,
                                     set->files * (uint64_t)(t + 1) / (uint64_t)threads,
                                     fn};
        int rc = pthread_create(&tid[t], NULL, thread_main, &job[t]);
        if (rc)
            fail("cannot start a thread: %s", strerror(rc));
    }
    for (int t = 0; t < threads; t++)
        pthread_join(tid[t], NULL);
    return now() - t0;
}

static uint64_t scaled(double base, double scale)
{
    double n = base * scale + 0.5;
    return n < 1 ? 1 : (uint64_t)n;
}

static void run_all(const char *dir, double scale, int threads)
{
    char path[4096], other[4096];
    uint64_t small_files = scaled(BASE_SMALL_FILES, scale);
    uint64_t big_dir = scaled(BASE_BIG_DIR, scale);
    uint64_t seq_bytes = scaled(BASE_SEQ_BYTES / BLOCK_SIZE, scale) * BLOCK_SIZE;
    uint64_t random_count = scaled(BASE_RANDOM_READS, scale);
    uint64_t rename_files = scaled(BASE_RENAME_FILES, scale);
    unsigned dirs = small_files < SMALL_DIRS ? (unsigned)small_files : SMALL_DIRS;
    struct small_set set = {"small", small_files, dirs};
    uint64_t delete_ops = 0;
    double t0;

    make_path(root, sizeof(root), "%s/fsbench.%ld", dir, (long)getpid());
    if (mkdir(root, 0755) != 0) {
        int saved = errno;
        root[0] = '\0';
        errno = saved;
        fail_errno("mkdir", dir);
    }
    if (!json_output) {
        printf("# fsbench in %s: scale %g, %" PRIu64 " small files in %u dirs, "
               "%" PRIu64 " entries in one dir, %" PRIu64 " MiB sequential, "
               "%d threads\n", root, scale, small_files, dirs, big_dir,
               seq_bytes >> 20, threads);
        printf("%-14s %10s     %10s   %12s\n", "workload", "ops", "seconds", "rate");
        fflush(stdout);
    }

    /* Small files: create, stat, read, xattrs. */
    make_small_dirs(&set);
    t0 = now();
    create_range(&set, 0, small_files);
    add_result("create", small_files, 0, now() - t0);

    t0 = now();
    stat_range(&set, 0, small_files);
    add_result("stat", small_files, 0, now() - t0);

    t0 = now();
    read_range(&set, 0, small_files);
    add_result("read", small_files, 0, now() - t0);

    if (!xattr_workload(&set)) {
        add_skipped("xattr-set", "no user.* xattrs here");
        add_skipped("xattr-get", "no user.* xattrs here");
    }

    /* One big directory: creating it, then ls -l. */
    make_path(path, sizeof(path), "%s/bigdir", root);
    t0 = now();
    create_flat(path, big_dir);
    add_result("create-bigdir", big_dir, 0, now() - t0);

    t0 = now();
    uint64_t seen = list_long(path);
    add_result("ls-l", seen, 0, now() - t0);
    if (seen != big_dir)
        fail("verification failed: listing '%s' found %" PRIu64 " entries, want %"
             PRIu64, path, seen, big_dir);

    /* Sequential write + fsync, sequential read, random reads. */
    make_path(path, sizeof(path), "%s/seq", root);
    t0 = now();
    seq_write(path, seq_bytes);
    add_result("seq-write", seq_bytes / BLOCK_SIZE, seq_bytes, now() - t0);

    unsigned char *buf = malloc(BLOCK_SIZE);
    if (!buf)
        fail("out of memory");
    t0 = now();
    seq_read(path, seq_bytes, buf);
    struct result *r = add_result("seq-read", seq_bytes / BLOCK_SIZE, seq_bytes,
                                  now() - t0);
    note(r, "new fd, caches not dropped: both read their page cache");

    /* The same after dropping the file's pages: s3mem's reads then go
     * through FUSE; tmpfs cannot drop its pages (they are the file). */
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        fail_errno("open", path);
    int advice = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    if (advice != 0) {
        errno = advice;
        fail_errno("posix_fadvise", path);
    }
    close(fd);
    t0 = now();
    seq_read(path, seq_bytes, buf);
    r = add_result("seq-read-nc", seq_bytes / BLOCK_SIZE, seq_bytes, now() - t0);
    note(r, "pages dropped first (fadvise DONTNEED): s3mem reads through FUSE");
    free(buf);

    t0 = now();
    random_reads(path, seq_bytes, random_count);
    add_result("rand-read-4k", random_count, 0, now() - t0);

    /* Rename of a directory holding many files: the median of RENAME_TIMES
     * rename() calls, back and forth, ending at other. */
    make_path(path, sizeof(path), "%s/ren-a", root);
    make_path(other, sizeof(other), "%s/ren-b", root);
    create_flat(path, rename_files);
    double rename_seconds[RENAME_TIMES];
    for (int i = 0; i < RENAME_TIMES; i++) {
        const char *from = i % 2 ? other : path, *to = i % 2 ? path : other;
        t0 = now();
        if (rename(from, to) != 0)
            fail_errno("rename", from);
        rename_seconds[i] = now() - t0;
    }
    qsort(rename_seconds, RENAME_TIMES, sizeof(double), compare_doubles);
    r = add_result("rename-dir", 1, 0, rename_seconds[RENAME_TIMES / 2]);
    static char rename_note[96];
    snprintf(rename_note, sizeof(rename_note), "median of %d rename() calls of a "
             "dir of %" PRIu64 " files", RENAME_TIMES, rename_files);
    note(r, rename_note);
    struct stat st;
    make_path(path, sizeof(path), "%s/e%07" PRIu64, other, rename_files - 1);
    if (stat(path, &st) != 0)
        fail("verification failed: '%s' missing after the rename: %s", path,
             strerror(errno));
    make_path(path, sizeof(path), "%s/ren-a", root);
    if (stat(path, &st) == 0 || errno != ENOENT)
        fail("verification failed: '%s' still exists after the rename", path);

    /* Delete everything. */
    t0 = now();
    remove_small(&set, &delete_ops);
    make_path(path, sizeof(path), "%s/bigdir", root);
    remove_flat(path, big_dir, &delete_ops);
    remove_flat(other, rename_files, &delete_ops);
    make_path(path, sizeof(path), "%s/seq", root);
    if (unlink(path) != 0)
        fail_errno("unlink", path);
    delete_ops++;
    add_result("delete", delete_ops, 0, now() - t0);

    /* Create, stat and read with several client threads: the same sequence
     * as with one, so that each figure compares with its one-thread twin (a
     * read right after a write would ask for the attributes the write made
     * stale; after the stat it does not, as in the one-thread read). */
    struct small_set mt = {"mt", small_files, dirs};
    char name[32];
    make_small_dirs(&mt);
    snprintf(name, sizeof(name), "create-%dt", threads);
    add_result(name, small_files, 0, run_threads(&mt, threads, create_range));
    snprintf(name, sizeof(name), "stat-%dt", threads);
    add_result(name, small_files, 0, run_threads(&mt, threads, stat_range));
    snprintf(name, sizeof(name), "read-%dt", threads);
    add_result(name, small_files, 0, run_threads(&mt, threads, read_range));
    delete_ops = 0;
    remove_small(&mt, &delete_ops);

    if (rmdir(root) != 0)
        fail_errno("rmdir", root);
    root[0] = '\0';
}

/* ---- populate ---- */

static void populate(const char *dir, uint64_t count, unsigned dirs, size_t size,
                     unsigned name_len)
{
    char path[4096], name[300];
    char *body = malloc(size + 1);
    if (!body)
        fail("out of memory");
    if (name_len > 255)
        fail("--name-len must be at most 255");
    for (unsigned d = 0; d < dirs; d++) {
        make_path(path, sizeof(path), "%s/d%03u", dir, d);
        if (mkdir(path, 0755) != 0 && errno != EEXIST)
            fail_errno("mkdir", path);
    }
    double t0 = now();
    for (uint64_t i = 0; i < count; i++) {
        if (name_len)
            snprintf(name, sizeof(name), "f%0*" PRIu64, (int)name_len - 1, i);
        else
            snprintf(name, sizeof(name), "id=%" PRIu64, i);
        if (dirs)
            make_path(path, sizeof(path), "%s/d%03u/%s", dir, (unsigned)(i % dirs), name);
        else
            make_path(path, sizeof(path), "%s/%s", dir, name);
        if (size >= 32) {
            int n = snprintf(body, size + 1, "{\"id\":\"%" PRIu64 "\",\"pad\":\"", i);
            memset(body + n, 'x', size - (size_t)n - 2);
            memcpy(body + size - 2, "\"}", 2);
        } else {
            memset(body, 'x', size);
        }
        write_file(path, body, size);
    }
    double seconds = now() - t0;
    free(body);
    printf("populate %" PRIu64 " files of %zu bytes in %.3f s\n", count, size, seconds);
}

/* ---- main ---- */

static void usage(void) __attribute__((noreturn));
static void usage(void)
{
    fprintf(stderr,
            "usage: fsbench DIR [--scale F] [--threads N] [--json]\n"
            "       fsbench DIR --populate N [--dirs D] [--size BYTES] [--name-len L]\n");
    exit(2);
}

static double parse_number(const char *s, double min, double max)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || v < min || v > max)
        usage();
    return v;
}

int main(int argc, char **argv)
{
    const char *dir = NULL;
    double scale = 1, populate_count = -1;
    int threads = 2;
    unsigned dirs = 0, name_len = 0;
    size_t size = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_value = i + 1 < argc;
        if (strcmp(a, "--scale") == 0 && has_value)
            scale = parse_number(argv[++i], 1e-6, 1000);
        else if (strcmp(a, "--threads") == 0 && has_value)
            threads = (int)parse_number(argv[++i], 1, 64);
        else if (strcmp(a, "--json") == 0)
            json_output = true;
        else if (strcmp(a, "--populate") == 0 && has_value)
            populate_count = parse_number(argv[++i], 0, 1e9);
        else if (strcmp(a, "--dirs") == 0 && has_value)
            dirs = (unsigned)parse_number(argv[++i], 0, 1000);
        else if (strcmp(a, "--size") == 0 && has_value)
            size = (size_t)parse_number(argv[++i], 0, 1 << 24);
        else if (strcmp(a, "--name-len") == 0 && has_value)
            name_len = (unsigned)parse_number(argv[++i], 0, 255);
        else if (a[0] == '-' || dir)
            usage();
        else
            dir = a;
    }
    if (!dir)
        usage();

    if (populate_count >= 0) {
        populate(dir, (uint64_t)populate_count, dirs, size, name_len);
        return 0;
    }

    base_block = malloc(BLOCK_SIZE);
    if (!base_block)
        fail("out of memory");
    for (size_t w = 0; w < BLOCK_SIZE / 8; w++) {
        uint64_t v = mix(w ^ 0xb10cULL);
        memcpy(base_block + w * 8, &v, 8);
    }
    run_all(dir, scale, threads);
    if (json_output)
        print_json(dir, scale, threads);
    free(base_block);
    return 0;
}
