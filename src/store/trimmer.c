/*
 * trimmer.c - gives the heap's free memory back to the system once the
 * daemon has been idle for a while.
 *
 * Design note: glibc's malloc returns memory to the system only from the
 * top of its heap; what objects leave in the middle stays in the process.
 * 100,000 files of 1 KiB created and then removed with rm -rf left the
 * daemon at 136 MiB of RSS, where malloc_trim(0) brings it to 6 MiB. The
 * memory is reused by the next allocations, and on this project's VM fresh
 * memory costs (see README, Performance), so the trimmer waits for the
 * daemon to be idle: every interval it reads the store's generation, the
 * heap's free bytes (mallinfo2) and the process's CPU time; a change of
 * the first, a growth of the second by more than 1 MiB (the reaper frees
 * after commands return) or more than 1% of the interval in CPU time
 * (requests that change nothing, such as reads: malloc_trim holds malloc's
 * lock while it walks the heap, which would stall them) marks activity.
 * The next interval without any, with at least min_free bytes free, trims.
 * A busy daemon is never trimmed; an idle one once per burst.
 *
 * Locking: trimmer.lock guards every field of trimmer. malloc_trim and
 * mallinfo2 take malloc's own lock; no store lock is taken here (the
 * generation is an atomic), so the thread never waits for a request.
 */
#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "s3mem/util.h"

/* Growth of the heap's free bytes that counts as activity: requests that
 * change nothing still allocate and free a little. */
#define ACTIVITY_SLACK ((size_t)1 << 20)

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;           /* stop */
    struct s3m_store *store;       /* borrowed: outlives the thread */
    unsigned interval_ms;
    size_t min_free;
    bool running;
    bool stop;
    pthread_t thread;
} trimmer = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Resident memory of the process in MiB, or -1. */
static long rss_mib(void)
{
    long pages = -1, resident = -1;
    FILE *file = fopen("/proc/self/statm", "re");
    if (!file)
        return -1;
    if (fscanf(file, "%ld %ld", &pages, &resident) != 2)
        resident = -1;
    fclose(file);
    return resident < 0 ? -1 : resident * (sysconf(_SC_PAGESIZE) / 1024) / 1024;
}

/* CPU time of the whole process (every thread), in ms. */
static double process_cpu_ms(void)
{
    struct timespec t;
    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t) != 0)
        return 0;
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static size_t heap_free(void)
{
    struct mallinfo2 info = mallinfo2();
    return info.fordblks;
}

static void trim(void)
{
    long before = rss_mib();
    size_t free_bytes = heap_free();
    malloc_trim(0);
    s3m_log("heap: idle for %u ms; gave free memory back to the system "
            "(%zu MiB free in the heap; RSS %ld -> %ld MiB)",
            trimmer.interval_ms, free_bytes >> 20, before, rss_mib());
}

/* Waits one interval or until stop; true when stopped. Lock held. */
static bool wait_interval(void)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += trimmer.interval_ms / 1000;
    until.tv_nsec += (long)(trimmer.interval_ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    /* 0: woken (stop, or spuriously); anything else ends the interval */
    while (!trimmer.stop &&
           pthread_cond_timedwait(&trimmer.wake, &trimmer.lock, &until) == 0)
        ;
    return trimmer.stop;
}

static void *trimmer_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&trimmer.lock);
    uint64_t seen = s3m_store_generation(trimmer.store);
    size_t seen_free = heap_free();
    double seen_cpu = process_cpu_ms();
    double quiet_cpu = trimmer.interval_ms / 100.0;
    bool active = false;

    while (!wait_interval()) {
        uint64_t now = s3m_store_generation(trimmer.store);
        size_t now_free = heap_free();
        double now_cpu = process_cpu_ms();
        if (now != seen || now_free > seen_free + ACTIVITY_SLACK ||
            now_cpu - seen_cpu > quiet_cpu) {
            active = true;                  /* wait for a still interval */
        } else if (active) {
            active = false;
            if (now_free >= trimmer.min_free) {
                trim();
                now_free = heap_free();
                now_cpu = process_cpu_ms();   /* the trim's own time */
            }
        }
        seen = now;
        seen_free = now_free;
        seen_cpu = now_cpu;
    }
    pthread_mutex_unlock(&trimmer.lock);
    return NULL;
}

int s3m_store_trimmer_start(struct s3m_store *store, unsigned interval_ms,
                            size_t min_free)
{
    pthread_condattr_t attr;
    int rc = 0;

    if (interval_ms == 0)
        return 0;
    pthread_mutex_lock(&trimmer.lock);
    if (!trimmer.running) {
        rc = -pthread_condattr_init(&attr);
        if (rc == 0) {
            pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
            rc = -pthread_cond_init(&trimmer.wake, &attr);
            pthread_condattr_destroy(&attr);
        }
        if (rc == 0) {
            trimmer.store = store;
            trimmer.interval_ms = interval_ms;
            trimmer.min_free = min_free;
            trimmer.stop = false;
            rc = -pthread_create(&trimmer.thread, NULL, trimmer_main, NULL);
            if (rc)
                pthread_cond_destroy(&trimmer.wake);
        }
        trimmer.running = rc == 0;
    }
    pthread_mutex_unlock(&trimmer.lock);
    return rc;
}

void s3m_store_trimmer_stop(void)
{
    pthread_mutex_lock(&trimmer.lock);
    bool running = trimmer.running;
    trimmer.stop = true;
    if (running)
        pthread_cond_signal(&trimmer.wake);
    pthread_mutex_unlock(&trimmer.lock);
    if (!running)
        return;
    pthread_join(trimmer.thread, NULL);
    pthread_mutex_lock(&trimmer.lock);
    trimmer.running = false;
    pthread_cond_destroy(&trimmer.wake);
    pthread_mutex_unlock(&trimmer.lock);
}
