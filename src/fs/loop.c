/*
 * loop.c - the request loop described in s3mem/loop.h.
 *
 * Workers wait in a blocking read of the device, so the kernel wakes one
 * of them per request. Each worker owns its receive buffer. Signals
 * (SIGINT, SIGTERM, SIGHUP) are blocked in the workers, so libfuse's
 * handlers run on the main thread, which waits in s3m_loop_run; when the
 * session ends it interrupts the workers' reads with WAKE_SIGNAL (a
 * handler that does nothing, installed without SA_RESTART) until every
 * worker has gone.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "s3mem/loop.h"
#include "s3mem/util.h"

#define STUCK_CHECK_MS 10
#define WAKE_SIGNAL SIGRTMIN
#define WAKE_REPEAT_MS 10

/* A running worker, for stop_workers. */
struct listed_worker {
    pthread_t id;
    atomic_bool *reading;          /* the worker's own flag (on its stack,
                                    * valid while listed): set while it may
                                    * be waiting in read() */
};

struct loop {
    struct fuse_session *se;       /* borrowed */
    int device;                    /* the session's descriptor */
    sem_t wake;                    /* wakes the main thread: the session
                                    * ended, or no worker is waiting */
    atomic_uint idle;              /* workers waiting for a request */
    atomic_ulong served;           /* requests taken, for progress checks */
    atomic_bool watching;          /* main thread checks for stuck workers */
    unsigned max_threads;          /* constant */
    pthread_mutex_t lock;          /* guards the fields below */
    pthread_cond_t none_left;      /* signalled when threads drops to 0 */
    unsigned threads;              /* guarded by lock: workers started */
    unsigned listed;               /* guarded by lock: entries of running */
    struct listed_worker *running; /* guarded by lock: the workers that have
                                    * started running (max_threads slots;
                                    * owned, freed by s3m_loop_run) */
    int error;                     /* guarded by lock: first error, -errno */
};

struct worker {
    struct loop *loop;             /* borrowed */
    int cpu;                       /* pinned CPU, or -1 */
    bool overflow;                 /* ends once another worker waits */
};

static void loop_fail(struct loop *loop, int rc)
{
    pthread_mutex_lock(&loop->lock);
    if (!loop->error)
        loop->error = rc;
    pthread_mutex_unlock(&loop->lock);
    fuse_session_exit(loop->se);
}

/* WAKE_SIGNAL's handler: its only effect is that a read it interrupts
 * returns EINTR. */
static void on_wake_signal(int sig)
{
    (void)sig;
}

static void pin_to(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    /* best effort: an unpinned worker is slower, not wrong */
    (void)pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

static void start_worker(struct loop *loop, int cpu, bool overflow);

/* Lists the calling worker, so that the main thread can interrupt its
 * read when the loop stops (reading: the worker's flag). */
static void worker_list(struct loop *loop, atomic_bool *reading)
{
    pthread_mutex_lock(&loop->lock);
    loop->running[loop->listed++] =
        (struct listed_worker){.id = pthread_self(), .reading = reading};
    pthread_mutex_unlock(&loop->lock);
}

/* A worker ended (listed: the calling one) or never started: the last one
 * wakes s3m_loop_run. */
static void worker_gone(struct loop *loop, bool listed)
{
    pthread_mutex_lock(&loop->lock);
    for (unsigned i = 0; listed && i < loop->listed; i++) {
        if (pthread_equal(loop->running[i].id, pthread_self())) {
            loop->running[i] = loop->running[--loop->listed];
            break;
        }
    }
    if (--loop->threads == 0)
        pthread_cond_signal(&loop->none_left);
    pthread_mutex_unlock(&loop->lock);
}

/* Handles requests until the loop stops; an overflow worker also ends when
 * it finishes a request while another worker waits. Returns true when the
 * session ended (the caller wakes the main thread). */
static bool serve(struct loop *loop, bool overflow, atomic_bool *reading)
{
    struct fuse_buf buf = {0};
    bool ended = true;
    atomic_fetch_add(&loop->idle, 1);
    for (;;) {
        /* set before the check: a stop that comes after it interrupts
         * the read (or a later one, stop_workers repeats) */
        atomic_store(reading, true);
        if (fuse_session_exited(loop->se))
            break;
        int res = fuse_session_receive_buf(loop->se, &buf);
        atomic_store(reading, false);
        if (res == -EINTR)
            continue; /* WAKE_SIGNAL: the loop may be stopping */
        if (res <= 0) { /* 0: unmounted or exiting */
            if (res < 0)
                loop_fail(loop, res);
            break;
        }
        atomic_fetch_add(&loop->served, 1);
        if (atomic_fetch_sub(&loop->idle, 1) == 1 &&
            !atomic_exchange(&loop->watching, true))
            sem_post(&loop->wake); /* nobody left waiting: watch */
        fuse_session_process_buf(loop->se, &buf);
        if (overflow && atomic_load(&loop->idle) > 0) {
            ended = false;
            break;
        }
        atomic_fetch_add(&loop->idle, 1);
    }
    if (ended)
        atomic_fetch_sub(&loop->idle, 1);
    free(buf.mem);
    return ended;
}

static void *worker_main(void *arg)
{
    struct worker *worker = arg;
    struct loop *loop = worker->loop;
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &signals, NULL);
    sigemptyset(&signals);
    sigaddset(&signals, WAKE_SIGNAL);
    pthread_sigmask(SIG_UNBLOCK, &signals, NULL);
    atomic_bool reading;
    atomic_init(&reading, false);
    worker_list(loop, &reading);
    if (worker->cpu >= 0)
        pin_to(worker->cpu);
    bool overflow = worker->overflow;
    free(worker);
    if (serve(loop, overflow, &reading))
        sem_post(&loop->wake);
    worker_gone(loop, true);
    return NULL;
}

/* Starts a detached worker (pinned to cpu unless -1) unless max_threads
 * run already; best effort. */
static void start_worker(struct loop *loop, int cpu, bool overflow)
{
    pthread_mutex_lock(&loop->lock);
    bool room = loop->threads < loop->max_threads;
    if (room)
        loop->threads++;
    pthread_mutex_unlock(&loop->lock);
    if (!room)
        return;
    struct worker *worker = s3m_malloc(sizeof(*worker)); /* freed by the worker */
    pthread_attr_t attr;
    bool started = false;
    if (worker && pthread_attr_init(&attr) == 0) {
        worker->loop = loop;
        worker->cpu = cpu;
        worker->overflow = overflow;
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        started = pthread_create(&(pthread_t){0}, &attr, worker_main, worker) == 0;
        pthread_attr_destroy(&attr);
    }
    if (!started) {
        free(worker);
        worker_gone(loop, false);
    }
}

/* The CPUs this thread may run on, and how many (0 when unknown). */
static int allowed_cpus(cpu_set_t *allowed)
{
    return sched_getaffinity(0, sizeof(*allowed), allowed) == 0 ? CPU_COUNT(allowed)
                                                                : 0;
}

unsigned s3m_loop_cpu_count(void)
{
    cpu_set_t allowed;
    int count = allowed_cpus(&allowed);
    return count > 0 ? (unsigned)count : 1;
}

/* One pinned worker per CPU this process may run on (or two unpinned). */
static void start_cpu_workers(struct loop *loop)
{
    cpu_set_t allowed;
    if (allowed_cpus(&allowed) < 2) {
        start_worker(loop, -1, false); /* two: one may wait for the other */
        start_worker(loop, -1, false);
        return;
    }
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (CPU_ISSET(cpu, &allowed))
            start_worker(loop, cpu, false);
    }
}

static bool device_readable(struct loop *loop)
{
    struct pollfd fd = {.fd = loop->device, .events = POLLIN};
    return poll(&fd, 1, 0) == 1;
}

static void wait_ms(struct loop *loop, long ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += ms * 1000000L;
    until.tv_sec += until.tv_nsec / 1000000000L;
    until.tv_nsec %= 1000000000L;
    sem_timedwait(&loop->wake, &until);
}

/* Runs on the main thread until a worker or a signal ends the session.
 * While every worker is busy it checks every STUCK_CHECK_MS whether any of
 * them made progress; when none did and a request waits, it starts an
 * overflow worker (a handler may be waiting for the kernel, which waits
 * for a reply only another worker can give). Otherwise it sleeps a second
 * at a time: a signal that lands just before the wait is seen then. */
static void watch(struct loop *loop)
{
    unsigned long served = atomic_load(&loop->served);
    while (!fuse_session_exited(loop->se)) {
        bool busy = atomic_load(&loop->watching);
        wait_ms(loop, busy ? STUCK_CHECK_MS : 1000);
        if (!busy || fuse_session_exited(loop->se))
            continue;
        unsigned long now = atomic_load(&loop->served);
        if (atomic_load(&loop->idle) > 0)
            atomic_store(&loop->watching, false);
        else if (now == served && device_readable(loop))
            start_worker(loop, -1, true);
        served = now;
    }
}

/* Waits until every worker has gone, interrupting the reads they wait in
 * every WAKE_REPEAT_MS: a worker that checked the session just before it
 * ended, and the signal came before its read began, still waits. A worker
 * busy in a handler is left alone (its system calls must not fail with
 * EINTR); it sees the session ended when it comes back. */
static void stop_workers(struct loop *loop)
{
    pthread_mutex_lock(&loop->lock);
    while (loop->threads > 0) {
        for (unsigned i = 0; i < loop->listed; i++)
            if (atomic_load(loop->running[i].reading))
                pthread_kill(loop->running[i].id, WAKE_SIGNAL);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += WAKE_REPEAT_MS * 1000000L;
        until.tv_sec += until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&loop->none_left, &loop->lock, &until);
    }
    pthread_mutex_unlock(&loop->lock);
}

/* WAKE_SIGNAL's handler for the loop's life; old gets the one before. */
static int catch_wake_signal(struct sigaction *old)
{
    struct sigaction action = {.sa_handler = on_wake_signal}; /* no SA_RESTART */
    sigemptyset(&action.sa_mask);
    return sigaction(WAKE_SIGNAL, &action, old) == 0 ? 0 : -errno;
}

static int loop_init(struct loop *loop, struct fuse_session *se, unsigned max_threads)
{
    if (max_threads == 0)
        max_threads = S3M_LOOP_DEFAULT_MAX_THREADS;
    /* two at least: a handler may wait for a reply only another can give */
    *loop = (struct loop){.se = se, .device = fuse_session_fd(se),
                          .max_threads = max_threads < 2 ? 2 : max_threads};
    atomic_init(&loop->idle, 0);
    atomic_init(&loop->served, 0);
    atomic_init(&loop->watching, false);
    int flags = fcntl(loop->device, F_GETFL);
    if (flags < 0 || fcntl(loop->device, F_SETFL, flags & ~O_NONBLOCK) != 0)
        return -errno;
    int rc = 0;
    loop->running = s3m_calloc(loop->max_threads, sizeof(*loop->running));
    if (!loop->running)
        return -ENOMEM;
    if (sem_init(&loop->wake, 0, 0) != 0) {
        rc = -errno;
        goto no_sem;
    }
    if ((rc = -pthread_mutex_init(&loop->lock, NULL)) != 0)
        goto no_mutex;
    if ((rc = -pthread_cond_init(&loop->none_left, NULL)) == 0)
        return 0;
    pthread_mutex_destroy(&loop->lock);
no_mutex:
    sem_destroy(&loop->wake);
no_sem:
    free(loop->running);
    return rc;
}

int s3m_loop_run(struct fuse_session *se, const struct s3m_loop_config *config)
{
    struct loop loop;
    struct sigaction old_action;
    int rc = loop_init(&loop, se, config->max_threads);
    if (rc)
        return rc;
    if ((rc = catch_wake_signal(&old_action)) == 0) {
        start_cpu_workers(&loop);
        pthread_mutex_lock(&loop.lock);
        bool started = loop.threads > 0;
        pthread_mutex_unlock(&loop.lock);
        if (started)
            watch(&loop);
        else
            loop.error = -EAGAIN;
        stop_workers(&loop);
        sigaction(WAKE_SIGNAL, &old_action, NULL);
        rc = loop.error;
    }
    pthread_cond_destroy(&loop.none_left);
    pthread_mutex_destroy(&loop.lock);
    sem_destroy(&loop.wake);
    free(loop.running);
    return rc;
}
