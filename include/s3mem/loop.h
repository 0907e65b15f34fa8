/*
 * loop.h - the multithreaded request loop: a worker per CPU, each pinned to
 * its CPU and waiting in a blocking read of /dev/fuse, plus overflow
 * workers while all are busy.
 *
 * The kernel wakes one waiting reader per request (the one that has waited
 * longest). Until 2026-12-07 the workers waited in poll(), which wakes all
 * of them, so that the one pinned to the client's CPU could take the
 * request: on 2026-11-22 a round trip took 9 us on one CPU and 68 us across
 * CPUs, and that won. On 2026-12-07 this machine's round trips were 14.7
 * us on one CPU and 22.3 us across, and waking every worker for each
 * request cost more than it gained (26-29 us per round trip with poll(),
 * 19-22 us with blocking reads); three runs alternating the two loops
 * (fsbench --scale 0.5 --threads 2 on fresh mounts) gave create
 * 8,300-10,100/s against 7,400-7,800, stat 37,000-43,000 against
 * 31,000-32,500, small reads 17,600-19,700 against 13,400-15,200, and the
 * two-thread figures within the same spread. Pinned workers blocking in
 * read() also beat unpinned ones in two alternating runs (stat
 * 36,600-44,200/s against 32,500-34,800).
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
 * has finished the request it was handling; the main thread interrupts the
 * workers' reads with a signal (loop.c) until they have all gone.
 */
#ifndef S3MEM_LOOP_H
#define S3MEM_LOOP_H

#include "s3mem/fs.h"

#define S3M_LOOP_DEFAULT_MAX_THREADS 10
/* Above this many CPUs main.c runs libfuse's loop: a pinned worker per
 * CPU was measured on 2 CPUs only. */
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
