/*
 * storemem.c - the store's own memory per object, without FUSE.
 *
 *   storemem [COUNT]
 *
 * Puts COUNT (default 100,000) empty objects with the keys the bench's
 * memory part makes through a mount ("mem/dNNN/f<23 digits>": 24-byte
 * names in 100 directories, plus the 100 directory markers) into a new
 * store and prints the process's RSS growth per object. The daemon's
 * figure (run-bench.sh) is this plus the filesystem's node per file: the
 * difference is what one record per file for both layers would save.
 * Run it on small pages (no GLIBC_TUNABLES): 4 KiB steps blur nothing.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "s3mem/store.h"

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kib = strtol(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return kib;
}

int main(int argc, char **argv)
{
    uint64_t count = argc > 1 ? strtoull(argv[1], NULL, 10) : 100000;
    const unsigned dirs = 100;
    struct s3m_store_config config = {0};
    char key[64];

    struct s3m_store *store = s3m_store_new(&config);
    if (!store || count == 0) {
        fprintf(stderr, "storemem: %s\n", store ? "COUNT must be > 0" : "out of memory");
        return 1;
    }
    long before = rss_kib();
    for (unsigned d = 0; d < dirs; d++) {
        snprintf(key, sizeof(key), "mem/d%03u/", d);
        if (s3m_store_put(store, key, "", 0, NULL, 0) != 0)
            return fprintf(stderr, "storemem: put %s failed\n", key), 1;
    }
    for (uint64_t i = 0; i < count; i++) {
        snprintf(key, sizeof(key), "mem/d%03u/f%023" PRIu64, (unsigned)(i % dirs), i);
        if (s3m_store_put(store, key, "", 0, NULL, 0) != 0)
            return fprintf(stderr, "storemem: put %s failed\n", key), 1;
    }
    long after = rss_kib();
    if (s3m_store_count(store, NULL) != count + dirs)
        return fprintf(stderr, "storemem: the store holds %zu objects, not %" PRIu64 "\n",
                       s3m_store_count(store, NULL), count + dirs), 1;
    double per = (double)(after - before) * 1024.0 / (double)count;
    printf("store alone: %" PRIu64 " empty objects, RSS +%.1f MiB: %.0f bytes per object, "
           "%.0f beyond the 24-byte name\n", count, (double)(after - before) / 1024.0,
           per, per - 24);
    s3m_store_free(store);
    return 0;
}
