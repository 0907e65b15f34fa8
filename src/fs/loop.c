/*
 * loop.c - the request loop described in s3mem/loop.h.
 *
 * The device descriptor is made nonblocking so that a worker woken by
 * poll() along with others, and beaten to the request, gets EAGAIN instead
 * of blocking in read(). Each worker owns its receive buffer. Signals
 * (SIGINT, SIGTERM, SIGHUP) are blocked in the workers, so libfuse's
 * handlers run on the main thread, which waits in s3m_loop_run.
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
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "s3mem/loop.h"
#include "s3mem/util.h"

#define STUCK_CHECK_MS 10

struct loop {
    struct fuse_session *se;       /* borrowed */
    int device;                    /* the session's descriptor, nonblocking */
    int stop_fd;                   /* eventfd, readable once the loop stops */
    sem_t wake;                    /* wakes the main thread: the session
                                    * ended, or no worker is waiting */
    atomic_uint idle;              /* workers waiting for a request */
    atomic_ulong served;           /* requests taken, for progress checks */
    atomic_bool watching;          /* main thread checks for stuck workers */
    unsigned max_threads;          /* constant */
    pthread_mutex_t lock;          /* guards the fields below */
    pthread_cond_t none_left;      /* signalled when threads drops to 0 */
    unsigned threads;              /* guarded by lock: workers started */
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

/* 1 when the device may have a request, 0 when the loop stops. */
static int wait_readable(struct loop *loop)
{
    struct pollfd fds[2] = {{.fd = loop->device, .events = POLLIN},
                            {.fd = loop->stop_fd, .events = POLLIN}};
    while (poll(fds, 2, -1) < 0) {
        if (errno != EINTR) {
            loop_fail(loop, -errno);
            return 0;
        }
    }
    return fds[1].revents ? 0 : 1;
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

/* A worker ended (or never started): the last one wakes s3m_loop_run. */
static void worker_gone(struct loop *loop)
{
    pthread_mutex_lock(&loop->lock);
    if (--loop->threads == 0)
        pthread_cond_signal(&loop->none_left);
    pthread_mutex_unlock(&loop->lock);
}

/* Handles requests until the loop stops; an overflow worker also ends when
 * it finishes a request while another worker waits. Returns true when the
 * session ended (the caller wakes the main thread). */
static bool serve(struct loop *loop, bool overflow)
{
    struct fuse_buf buf = {0};
    bool ended = true;
    atomic_fetch_add(&loop->idle, 1);
    while (!fuse_session_exited(loop->se) && wait_readable(loop)) {
        int res = fuse_session_receive_buf(loop->se, &buf);
        if (res == -EAGAIN || res == -EINTR)
            continue; /* another worker took it */
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
    if (worker->cpu >= 0)
        pin_to(worker->cpu);
    bool overflow = worker->overflow;
    free(worker);
    if (serve(loop, overflow))
        sem_post(&loop->wake);
    worker_gone(loop);
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
        worker_gone(loop);
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
    if (flags < 0 || fcntl(loop->device, F_SETFL, flags | O_NONBLOCK) != 0)
        return -errno;
    int rc = 0;
    loop->stop_fd = eventfd(0, EFD_CLOEXEC);
    if (loop->stop_fd < 0)
        return -errno;
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
    close(loop->stop_fd);
    return rc;
}

int s3m_loop_run(struct fuse_session *se, const struct s3m_loop_config *config)
{
    struct loop loop;
    int rc = loop_init(&loop, se, config->max_threads);
    if (rc)
        return rc;
    start_cpu_workers(&loop);
    pthread_mutex_lock(&loop.lock);
    bool started = loop.threads > 0;
    pthread_mutex_unlock(&loop.lock);
    if (started)
        watch(&loop);
    else
        loop.error = -EAGAIN;
    eventfd_write(loop.stop_fd, 1);
    pthread_mutex_lock(&loop.lock);
    while (loop.threads > 0)
        pthread_cond_wait(&loop.none_left, &loop.lock);
    rc = loop.error;
    pthread_mutex_unlock(&loop.lock);
    pthread_cond_destroy(&loop.none_left);
    pthread_mutex_destroy(&loop.lock);
    sem_destroy(&loop.wake);
    close(loop.stop_fd);
    return rc;
}
