/*
 * fuzz_common.h - what the libFuzzer targets share: a private scratch
 * directory per process (under $S3MEM_FUZZ_TMP, else /dev/shm, else /tmp;
 * removed at exit), whole-file writes, and FUZZ_CHECK, which reports a
 * broken invariant with file:line and aborts so libFuzzer saves the input.
 *
 * Header-only on purpose: each target is one translation unit built by
 * tests/fuzz/build.sh, and nothing here is part of s3mem itself.
 */
#ifndef S3MEM_FUZZ_COMMON_H
#define S3MEM_FUZZ_COMMON_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#define FUZZ_CHECK(cond)                                                      \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__,   \
                    __LINE__, #cond);                                         \
            abort();                                                          \
        }                                                                     \
    } while (0)

static char fuzz_scratch[256];

static inline int fuzz_remove_entry(const char *path, const struct stat *st, int type,
                             struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    remove(path);
    return 0;
}

static inline void fuzz_remove_scratch(void)
{
    if (fuzz_scratch[0])
        nftw(fuzz_scratch, fuzz_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* The process's scratch directory (borrowed, static), made on first use.
 * Aborts when none can be made: the target cannot run without it. */
static inline const char *fuzz_scratch_dir(void)
{
    if (fuzz_scratch[0])
        return fuzz_scratch;
    const char *bases[] = {getenv("S3MEM_FUZZ_TMP"), "/dev/shm", "/tmp"};
    for (size_t i = 0; i < sizeof(bases) / sizeof(bases[0]); i++) {
        if (!bases[i] || !bases[i][0])
            continue;
        snprintf(fuzz_scratch, sizeof(fuzz_scratch),
                 "%s/s3mem-fuzz-%ld-XXXXXX", bases[i], (long)getpid());
        if (mkdtemp(fuzz_scratch)) {
            atexit(fuzz_remove_scratch);
            return fuzz_scratch;
        }
    }
    fprintf(stderr, "fuzz: cannot make a scratch directory\n");
    abort();
}

/* New "scratch/name" in a static buffer of 8 (a few live at once). */
static inline const char *fuzz_path(const char *name)
{
    static char paths[8][512];
    static unsigned next;
    char *path = paths[next++ % 8];

    snprintf(path, sizeof(paths[0]), "%s/%s", fuzz_scratch_dir(), name);
    return path;
}

/* Writes len bytes to path, replacing it. Aborts on an I/O error (the
 * scratch directory is ours, so that is the harness's fault). */
static inline void fuzz_write_file(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    const char *at = data;

    FUZZ_CHECK(fd >= 0);
    while (len > 0) {
        ssize_t done = write(fd, at, len);
        if (done < 0 && errno == EINTR)
            continue;
        FUZZ_CHECK(done > 0);
        at += done;
        len -= (size_t)done;
    }
    FUZZ_CHECK(close(fd) == 0);
}

/* Same hash seed in every run, so coverage does not depend on it. */
static inline void fuzz_setup(void)
{
    json_object_seed(1);
    fuzz_scratch_dir();
}

#endif
