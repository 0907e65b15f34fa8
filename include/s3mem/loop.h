/*
 * loop.h - the multithreaded request loop: a worker per CPU, each pinned to
 * its CPU and waiting in poll(), plus overflow workers while all are busy.
 *
 * Why not libfuse's loop: its workers wait in a blocking read of /dev/fuse,
 * and the kernel wakes exactly one of them, the one that has waited
 * longest, wherever it last ran. On a virtual machine whose idle CPUs halt,
 * waking a thread on the other CPU is the most expensive part of a request:
 * a round trip measured 9 us with the client and the worker on one CPU and
 * 68 us across CPUs (tests/bench, README "Performance"). poll() wakes every
 * waiting worker; the one pinned to the client's CPU runs as soon as the
 * client blocks, so it usually takes the request, and the others find the
 * device empty (EAGAIN) and wait again.
 *
 * Overflow: while no worker waits, the main thread checks every 10 ms
 * whether any of them took a request since the last check. When none did
 * and a request is waiting, it starts an unpinned overflow worker (up to
 * max_threads in all): a handler may be waiting for the kernel, which waits
 * for a reply only another worker can give. An overflow worker ends as
 * soon as it finishes a request while another worker is waiting. Workers
 * are not started on the hot path: a thread per burst of requests costs
 * more than the burst.
 *
 * Stopping: the loop returns once the session has exited (fuse_session_exit
 * from the signal handlers, or the file system unmounted) and every worker
 * has finished the request it was handling.
 */
#ifndef S3MEM_LOOP_H
#define S3MEM_LOOP_H

#include "s3mem/fs.h"

#define S3M_LOOP_DEFAULT_MAX_THREADS 10
/* Above this many CPUs a request would wake too many pollers for the gain,
 * which was measured on 2: main.c then runs libfuse's loop. */
#define S3M_LOOP_CPUS_MAX 8

struct s3m_loop_config {
    unsigned max_threads;       /* workers in all (below 2 means 2); 0 = default */
};

/* The number of CPUs this process may run on (at least 1). */
unsigned s3m_loop_cpu_count(void);

/* Runs se's requests until the session exits. Call it from the thread that
 * receives the termination signals (the main thread): it waits there.
 * 0 when the session ended (signal or unmount), or -errno when the loop
 * could not start or a worker failed to read the device. */
int s3m_loop_run(struct fuse_session *se, const struct s3m_loop_config *config);

#endif
