/*
 * churn.c - fsstress-like churn for one process in its own directory.
 *
 *   churn DIR OPS SEED
 *
 * Creates DIR (it must not exist) and does OPS random operations in it:
 * create, pwrite, append, truncate, rename (also over an existing file),
 * mkdir, rmdir, rename of a directory, unlink, setxattr/removexattr, and
 * write-after-unlink through a still-open descriptor. It keeps a model of
 * everything under DIR (nobody else writes there), so every result is known:
 * an unexpected errno, a wrong size, wrong bytes, a wrong xattr value or a
 * wrong directory listing stops it with a message and exit status 1. The
 * whole tree is checked against the model every 64 operations and at the
 * end. Exit status 2 is a usage error.
 *
 * Several instances run at once in sibling directories (tests/bats/
 * stress.bats runs 4), so the daemon sees concurrent, unrelated requests.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#define MAX_FILES 32
#define MAX_DIRS 8
#define MAX_XATTRS 4
#define MAX_SIZE (256 * 1024)
#define MAX_IO (48 * 1024)
#define CHECK_EVERY 64

struct file {
    bool used;
    int dir;                      /* index into dirs, -1 for the top */
    char name[64];
    unsigned char *data;          /* MAX_SIZE bytes, [0, size) meaningful */
    size_t size;
    bool has_xattr[MAX_XATTRS];
    char xattr[MAX_XATTRS][32];
};

struct dir {
    bool used;
    char name[64];
};

static const char *top;
static struct file files[MAX_FILES];
static struct dir dirs[MAX_DIRS];
static uint64_t rng_state;
static unsigned long counter;      /* makes every new name unique */
static long op_number;
static const char *op_name = "setup";
static unsigned long op_counts[16];
static unsigned char scratch[MAX_SIZE];

static uint64_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}

static size_t below(size_t n)
{
    return n ? (size_t)(rnd() % n) : 0;
}

static void fill_random(unsigned char *buf, size_t len)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (unsigned char)(rnd() >> 56);
}

static void fail(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "churn %s: op %ld (%s): ", top, op_number, op_name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

/* out = a "/" b; a path too long for out is a usage error. */
static void join(char *out, size_t len, const char *a, const char *b)
{
    int n = snprintf(out, len, "%s/%s", a, b);
    if (n < 0 || (size_t)n >= len)
        fail("path too long: %s/%s", a, b);
}

static void dir_path(int d, char *out, size_t len)
{
    if (d < 0)
        snprintf(out, len, "%s", top);
    else
        join(out, len, top, dirs[d].name);
}

static void file_path(const struct file *f, char *out, size_t len)
{
    char dir[4096];
    dir_path(f->dir, dir, sizeof(dir));
    join(out, len, dir, f->name);
}

static int random_dir(void)
{
    int d = (int)below(MAX_DIRS + 1) - 1;
    return d >= 0 && dirs[d].used ? d : -1;
}

static struct file *random_file(void)
{
    size_t start = below(MAX_FILES);
    for (size_t i = 0; i < MAX_FILES; i++) {
        struct file *f = &files[(start + i) % MAX_FILES];
        if (f->used)
            return f;
    }
    return NULL;
}

static struct file *free_file(void)
{
    for (size_t i = 0; i < MAX_FILES; i++)
        if (!files[i].used)
            return &files[i];
    return NULL;
}

/* Model of a write of len bytes of buf at offset. */
static void model_write(struct file *f, size_t offset, const unsigned char *buf,
                        size_t len)
{
    if (offset > f->size)
        memset(f->data + f->size, 0, offset - f->size);
    memcpy(f->data + offset, buf, len);
    if (offset + len > f->size)
        f->size = offset + len;
}

static void model_truncate(struct file *f, size_t size)
{
    if (size > f->size)
        memset(f->data + f->size, 0, size - f->size);
    f->size = size;
}

static void full_pwrite(int fd, const unsigned char *buf, size_t len, off_t off,
                        const char *path)
{
    while (len) {
        ssize_t n = pwrite(fd, buf, len, off);
        if (n < 0)
            fail("pwrite %s at %lld: %s", path, (long long)off, strerror(errno));
        if (n == 0)
            fail("pwrite %s at %lld wrote nothing", path, (long long)off);
        buf += n;
        len -= (size_t)n;
        off += n;
    }
}

/* Reads all of fd (at most MAX_SIZE + 1 bytes) into scratch. */
static size_t read_all(int fd, const char *path)
{
    size_t got = 0;
    for (;;) {
        ssize_t n = pread(fd, scratch + got, sizeof(scratch) - got, (off_t)got);
        if (n < 0)
            fail("pread %s: %s", path, strerror(errno));
        if (n == 0 || got + (size_t)n == sizeof(scratch))
            return got + (size_t)n;
        got += (size_t)n;
    }
}

static void expect_contents(const struct file *f, int fd, const char *path)
{
    size_t got = read_all(fd, path);
    if (got != f->size)
        fail("%s: read %zu bytes, the model has %zu", path, got, f->size);
    for (size_t i = 0; i < got; i++)
        if (scratch[i] != f->data[i])
            fail("%s: byte %zu is 0x%02x, the model has 0x%02x (size %zu)",
                 path, i, scratch[i], f->data[i], f->size);
}

static void check_file(const struct file *f)
{
    char path[4096];
    file_path(f, path, sizeof(path));
    struct stat st;
    if (stat(path, &st) != 0)
        fail("stat %s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        fail("%s: not a regular file (mode 0%o)", path, (unsigned)st.st_mode);
    if ((size_t)st.st_size != f->size)
        fail("%s: stat size %lld, the model has %zu", path,
             (long long)st.st_size, f->size);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        fail("open %s: %s", path, strerror(errno));
    expect_contents(f, fd, path);
    close(fd);
    for (int x = 0; x < MAX_XATTRS; x++) {
        char name[32], value[64];
        snprintf(name, sizeof(name), "user.churn%d", x);
        ssize_t n = getxattr(path, name, value, sizeof(value));
        if (!f->has_xattr[x]) {
            if (n >= 0 || errno != ENODATA)
                fail("getxattr %s %s: want ENODATA, got %zd (%s)", path, name,
                     n, n < 0 ? strerror(errno) : "a value");
            continue;
        }
        if (n < 0)
            fail("getxattr %s %s: %s", path, name, strerror(errno));
        if ((size_t)n != strlen(f->xattr[x]) || memcmp(value, f->xattr[x], (size_t)n))
            fail("getxattr %s %s: '%.*s', the model has '%s'", path, name,
                 (int)n, value, f->xattr[x]);
    }
}

/* The names in directory d must be exactly the model's. */
static void check_listing(int d)
{
    char path[4096];
    dir_path(d, path, sizeof(path));
    DIR *dir = opendir(path);
    if (!dir)
        fail("opendir %s: %s", path, strerror(errno));
    int want = 0, seen = 0;
    for (int i = 0; i < MAX_FILES; i++)
        want += files[i].used && files[i].dir == d;
    if (d < 0)
        for (int i = 0; i < MAX_DIRS; i++)
            want += dirs[i].used;
    struct dirent *e;
    while ((e = readdir(dir))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        bool known = false;
        for (int i = 0; i < MAX_FILES && !known; i++)
            known = files[i].used && files[i].dir == d &&
                    !strcmp(files[i].name, e->d_name);
        for (int i = 0; d < 0 && i < MAX_DIRS && !known; i++)
            known = dirs[i].used && !strcmp(dirs[i].name, e->d_name);
        if (!known)
            fail("readdir %s: unexpected entry '%s'", path, e->d_name);
        seen++;
    }
    closedir(dir);
    if (seen != want)
        fail("readdir %s: %d entries, the model has %d", path, seen, want);
}

static void check_all(void)
{
    const char *saved = op_name;
    op_name = "check";
    check_listing(-1);
    for (int d = 0; d < MAX_DIRS; d++)
        if (dirs[d].used)
            check_listing(d);
    for (int i = 0; i < MAX_FILES; i++)
        if (files[i].used)
            check_file(&files[i]);
    op_name = saved;
}

static bool dir_empty(int d)
{
    for (int i = 0; i < MAX_FILES; i++)
        if (files[i].used && files[i].dir == d)
            return false;
    return true;
}

/* ---- operations ------------------------------------------------------------ */

static void op_create(void)
{
    struct file *f = free_file();
    if (!f)
        return;
    f->dir = random_dir();
    snprintf(f->name, sizeof(f->name), "f%lu", counter++);
    char path[4096];
    file_path(f, path, sizeof(path));
    int fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0644);
    if (fd < 0)
        fail("create %s: %s", path, strerror(errno));
    f->used = true;
    f->size = 0;
    memset(f->has_xattr, 0, sizeof(f->has_xattr));
    size_t len = below(MAX_IO);
    fill_random(scratch, len);
    full_pwrite(fd, scratch, len, 0, path);
    model_write(f, 0, scratch, len);
    if (close(fd) != 0)
        fail("close %s: %s", path, strerror(errno));
}

static void op_write(void)
{
    struct file *f = random_file();
    if (!f)
        return;
    char path[4096];
    file_path(f, path, sizeof(path));
    size_t len = 1 + below(MAX_IO);
    size_t limit = f->size + 16384 < MAX_SIZE - len ? f->size + 16384 : MAX_SIZE - len;
    size_t offset = below(limit + 1);
    int fd = open(path, O_WRONLY);
    if (fd < 0)
        fail("open %s for writing: %s", path, strerror(errno));
    fill_random(scratch, len);
    full_pwrite(fd, scratch, len, (off_t)offset, path);
    model_write(f, offset, scratch, len);
    if (rnd() % 8 == 0 && fsync(fd) != 0)
        fail("fsync %s: %s", path, strerror(errno));
    if (close(fd) != 0)
        fail("close %s: %s", path, strerror(errno));
}

static void op_append(void)
{
    struct file *f = random_file();
    if (!f || f->size >= MAX_SIZE - 1)
        return;
    char path[4096];
    file_path(f, path, sizeof(path));
    size_t len = 1 + below(MAX_SIZE - f->size < 8192 ? MAX_SIZE - f->size : 8192);
    int fd = open(path, O_WRONLY | O_APPEND);
    if (fd < 0)
        fail("open %s for appending: %s", path, strerror(errno));
    fill_random(scratch, len);
    ssize_t n = write(fd, scratch, len);
    if (n != (ssize_t)len)
        fail("append %zu bytes to %s: %zd (%s)", len, path, n,
             n < 0 ? strerror(errno) : "short");
    model_write(f, f->size, scratch, len);
    if (close(fd) != 0)
        fail("close %s: %s", path, strerror(errno));
}

static void op_truncate(void)
{
    struct file *f = random_file();
    if (!f)
        return;
    char path[4096];
    file_path(f, path, sizeof(path));
    size_t size = below((f->size * 2 < MAX_SIZE ? f->size * 2 : MAX_SIZE) + 1);
    if (rnd() % 2) {
        if (truncate(path, (off_t)size) != 0)
            fail("truncate %s to %zu: %s", path, size, strerror(errno));
    } else {
        int fd = open(path, O_RDWR);
        if (fd < 0)
            fail("open %s: %s", path, strerror(errno));
        if (ftruncate(fd, (off_t)size) != 0)
            fail("ftruncate %s to %zu: %s", path, size, strerror(errno));
        close(fd);
    }
    model_truncate(f, size);
}

static void op_rename(void)
{
    struct file *f = random_file();
    if (!f)
        return;
    char from[4096], to[4096];
    file_path(f, from, sizeof(from));
    struct file *victim = NULL;
    int dir;
    char name[64];
    if (rnd() % 3 == 0 && (victim = random_file()) != f && victim) {
        dir = victim->dir;               /* rename over an existing file */
        snprintf(name, sizeof(name), "%s", victim->name);
    } else {
        victim = NULL;
        dir = random_dir();
        snprintf(name, sizeof(name), "r%lu", counter++);
    }
    char dpath[4096];
    dir_path(dir, dpath, sizeof(dpath));
    join(to, sizeof(to), dpath, name);
    if (rename(from, to) != 0)
        fail("rename %s to %s: %s", from, to, strerror(errno));
    if (victim)
        victim->used = false;
    f->dir = dir;
    snprintf(f->name, sizeof(f->name), "%s", name);
}

static void op_mkdir(void)
{
    for (int d = 0; d < MAX_DIRS; d++) {
        if (dirs[d].used)
            continue;
        snprintf(dirs[d].name, sizeof(dirs[d].name), "d%lu", counter++);
        char path[4096];
        dir_path(d, path, sizeof(path));
        if (mkdir(path, 0755) != 0)
            fail("mkdir %s: %s", path, strerror(errno));
        dirs[d].used = true;
        return;
    }
}

static void op_rmdir(void)
{
    int d = random_dir();
    if (d < 0)
        return;
    char path[4096];
    dir_path(d, path, sizeof(path));
    bool empty = dir_empty(d);
    int rc = rmdir(path);
    if (empty && rc != 0)
        fail("rmdir of empty %s: %s", path, strerror(errno));
    if (!empty && (rc == 0 || (errno != ENOTEMPTY && errno != EEXIST)))
        fail("rmdir of non-empty %s: want ENOTEMPTY, got %s", path,
             rc == 0 ? "success" : strerror(errno));
    if (empty)
        dirs[d].used = false;
}

static void op_rename_dir(void)
{
    int d = random_dir();
    if (d < 0)
        return;
    char from[4096], to[4096];
    dir_path(d, from, sizeof(from));
    char name[64];
    snprintf(name, sizeof(name), "d%lu", counter++);
    join(to, sizeof(to), top, name);
    if (rename(from, to) != 0)
        fail("rename directory %s to %s: %s", from, to, strerror(errno));
    snprintf(dirs[d].name, sizeof(dirs[d].name), "%s", name);
}

static void op_unlink(void)
{
    struct file *f = random_file();
    if (!f)
        return;
    char path[4096];
    file_path(f, path, sizeof(path));
    if (unlink(path) != 0)
        fail("unlink %s: %s", path, strerror(errno));
    f->used = false;
}

static void op_xattr(void)
{
    struct file *f = random_file();
    if (!f)
        return;
    char path[4096], name[32];
    file_path(f, path, sizeof(path));
    int x = (int)below(MAX_XATTRS);
    snprintf(name, sizeof(name), "user.churn%d", x);
    if (f->has_xattr[x] && rnd() % 3 == 0) {
        if (removexattr(path, name) != 0)
            fail("removexattr %s %s: %s", path, name, strerror(errno));
        f->has_xattr[x] = false;
        return;
    }
    char value[32];
    snprintf(value, sizeof(value), "v%lu-%" PRIu64, counter++, rnd() % 1000000);
    if (setxattr(path, name, value, strlen(value), 0) != 0)
        fail("setxattr %s %s: %s", path, name, strerror(errno));
    snprintf(f->xattr[x], sizeof(f->xattr[x]), "%s", value);
    f->has_xattr[x] = true;
}

/* Unlink a file while it is open, then write and read through the descriptor. */
static void op_unlink_open(void)
{
    struct file *f = random_file();
    if (!f)
        return;
    char path[4096];
    file_path(f, path, sizeof(path));
    int fd = open(path, O_RDWR);
    if (fd < 0)
        fail("open %s: %s", path, strerror(errno));
    if (unlink(path) != 0)
        fail("unlink open %s: %s", path, strerror(errno));
    f->used = false;
    size_t len = 1 + below(4096);
    size_t offset = below(f->size + 1);
    fill_random(scratch, len);
    full_pwrite(fd, scratch, len, (off_t)offset, path);
    model_write(f, offset, scratch, len);
    struct stat st;
    if (fstat(fd, &st) != 0)
        fail("fstat unlinked %s: %s", path, strerror(errno));
    if ((size_t)st.st_size != f->size)
        fail("fstat unlinked %s: size %lld, the model has %zu", path,
             (long long)st.st_size, f->size);
    expect_contents(f, fd, path);
    close(fd);
    if (access(path, F_OK) == 0)
        fail("%s is still there after unlink", path);
    if (errno != ENOENT)
        fail("access %s after unlink: want ENOENT, got %s", path, strerror(errno));
}

static const struct {
    const char *name;
    void (*fn)(void);
    unsigned weight;
} ops[] = {
    {"create", op_create, 12},
    {"write", op_write, 16},
    {"append", op_append, 10},
    {"truncate", op_truncate, 6},
    {"rename", op_rename, 8},
    {"mkdir", op_mkdir, 3},
    {"rmdir", op_rmdir, 3},
    {"rename-dir", op_rename_dir, 2},
    {"unlink", op_unlink, 6},
    {"xattr", op_xattr, 8},
    {"unlink-open", op_unlink_open, 2},
};
#define NOPS (sizeof(ops) / sizeof(ops[0]))

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: churn DIR OPS SEED\n");
        return 2;
    }
    top = argv[1];
    long count = strtol(argv[2], NULL, 10);
    rng_state = strtoull(argv[3], NULL, 10) * 0x9E3779B97F4A7C15ULL + 1;
    if (count <= 0) {
        fprintf(stderr, "churn: OPS must be a positive number\n");
        return 2;
    }
    for (int i = 0; i < MAX_FILES; i++)
        if (!(files[i].data = malloc(MAX_SIZE)))
            fail("out of memory");
    if (mkdir(top, 0755) != 0)
        fail("mkdir %s: %s", top, strerror(errno));
    unsigned total = 0;
    for (size_t i = 0; i < NOPS; i++)
        total += ops[i].weight;
    for (op_number = 1; op_number <= count; op_number++) {
        unsigned pick = (unsigned)below(total);
        size_t i = 0;
        while (pick >= ops[i].weight)
            pick -= ops[i++].weight;
        op_name = ops[i].name;
        ops[i].fn();
        op_counts[i]++;
        if (op_number % CHECK_EVERY == 0)
            check_all();
    }
    check_all();
    printf("churn %s: %ld ops ok:", top, count);
    for (size_t i = 0; i < NOPS; i++)
        printf(" %s=%lu", ops[i].name, op_counts[i]);
    printf("\n");
    return 0;
}
