/*
 * main.c - the s3mem daemon: parses options, makes the store and the FUSE
 * layer, mounts, and runs the request loop: s3mem/loop.h's workers, libfuse's
 * multithreaded loop (-o libfuse_loop, clone_fd, or over 8 CPUs), or one
 * thread (-s).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "s3mem/ctl.h"
#include "s3mem/format.h"
#include "s3mem/fs.h"
#include "s3mem/loop.h"
#include "s3mem/store.h"
#include "s3mem/util.h"

struct options {
    char *bucket;
    char *key_prefix;
    char *control_dir;
    char *metadata_limit;
    char *max_object_size;
    char *max_memory;
    char *ready_file;
    char *timeout;
    char *persist;
    unsigned autopersist_ms;
    int autopersist;
    int enforce_limits;
    int verbose;
    int libfuse_loop;
};

#define OPTION(spec, field, value) {spec, offsetof(struct options, field), value}

static const struct fuse_opt option_spec[] = {
    OPTION("bucket=%s", bucket, 0),
    OPTION("key_prefix=%s", key_prefix, 0),
    OPTION("control_dir=%s", control_dir, 0),
    OPTION("metadata_limit=%s", metadata_limit, 0),
    OPTION("max_object_size=%s", max_object_size, 0),
    OPTION("max_memory=%s", max_memory, 0),
    OPTION("ready_file=%s", ready_file, 0),
    OPTION("timeout=%s", timeout, 0),
    OPTION("persist=%s", persist, 0),
    OPTION("autopersist", autopersist, 1),
    OPTION("autopersist=%u", autopersist_ms, 0),
    OPTION("enforce_limits", enforce_limits, 1),
    OPTION("verbose", verbose, 1),
    OPTION("libfuse_loop", libfuse_loop, 1),
    FUSE_OPT_END,
};

static void usage(const char *program)
{
    printf("usage: %s [options] MOUNTPOINT\n\n"
           "An in-memory object store with S3 semantics, mounted with FUSE.\n\n"
           "s3mem options:\n"
           "    -o bucket=NAME         bucket name (default: s3mem)\n"
           "    -o key_prefix=P/       show only keys under P/ (must end in '/')\n"
           "    -o control_dir=NAME    name of the control directory (default: .s3mem)\n"
           "    -o enforce_limits      apply metadata_limit and max_object_size\n"
           "    -o metadata_limit=N    metadata bytes per object (default: 2048)\n"
           "    -o max_object_size=N   largest body, e.g. 5G (default: 5G)\n"
           "    -o max_memory=N        memory for bodies, e.g. 512M; writes beyond\n"
           "                           it fail with ENOSPC (default: no limit; df\n"
           "                           shows physical memory)\n"
           "    -o persist=PATH        load PATH at mount when it exists, save it at\n"
           "                           unmount and SIGTERM (s3db.js snapshot JSON)\n"
           "    -o autopersist[=MS]    also save in the background at most every MS\n"
           "                           milliseconds after changes (default: 1000)\n"
           "    -o timeout=SECONDS     kernel entry/attribute cache timeout; control\n"
           "                           commands drop the caches (default: 60, 0 = none)\n"
           "    -o verbose             log one line per store operation\n"
           "    -o libfuse_loop        libfuse's request loop instead of a worker\n"
           "                           pinned to each CPU (also with clone_fd)\n"
           "    -o ready_file=PATH     write \"ready\" to PATH (e.g. a FIFO) once mounted\n"
           "    --version              print the version\n\n",
           program);
    fuse_cmdline_help();
    fuse_lowlevel_help();
}

/* Parses "123", "64K", "512M", "2G", "1T" (powers of 1024). */
static int parse_size(const char *name, const char *text, uint64_t *out)
{
    if (!text)
        return 0;
    char *end;
    errno = 0;
    unsigned long long value = strtoull(text, &end, 10);
    unsigned shift = 0;
    switch (*end) {
    case 'k': case 'K': shift = 10; end++; break;
    case 'm': case 'M': shift = 20; end++; break;
    case 'g': case 'G': shift = 30; end++; break;
    case 't': case 'T': shift = 40; end++; break;
    default: break;
    }
    if (*end == 'i')
        end++;
    if (*end == 'B' || *end == 'b')
        end++;
    if (errno || end == text || *end || text[0] == '-' ||
        (shift && value > (UINT64_MAX >> shift))) {
        fprintf(stderr, "s3mem: bad value for %s: '%s' (expected a size like 64M)\n",
                name, text);
        return -EINVAL;
    }
    *out = (uint64_t)value << shift;
    return 0;
}

#define DEFAULT_TIMEOUT 60.0

static int parse_timeout(const char *text, double *out)
{
    *out = DEFAULT_TIMEOUT;
    if (!text)
        return 0;
    char *end;
    *out = strtod(text, &end);
    if (end == text || *end || *out < 0) {
        fprintf(stderr, "s3mem: bad value for timeout: '%s' (expected seconds)\n", text);
        return -EINVAL;
    }
    return 0;
}

static int check_names(const struct options *opts)
{
    const char *prefix = opts->key_prefix;
    if (prefix && prefix[0] && prefix[strlen(prefix) - 1] != '/') {
        fprintf(stderr, "s3mem: key_prefix must end with '/': '%s'\n", prefix);
        return -EINVAL;
    }
    if (prefix && strlen(prefix) >= S3M_KEY_MAX) {
        fprintf(stderr, "s3mem: key_prefix is longer than a key may be\n");
        return -EINVAL;
    }
    const char *control = opts->control_dir;
    if (control && (!control[0] || strchr(control, '/') || strcmp(control, ".") == 0 ||
                    strcmp(control, "..") == 0)) {
        fprintf(stderr, "s3mem: control_dir must be a plain name: '%s'\n", control);
        return -EINVAL;
    }
    return 0;
}

static int build_store_config(const struct options *opts,
                              struct s3m_store_config *config)
{
    uint64_t metadata_limit = 0;
    memset(config, 0, sizeof(*config));
    if (parse_size("metadata_limit", opts->metadata_limit, &metadata_limit) ||
        parse_size("max_object_size", opts->max_object_size, &config->max_object_size) ||
        parse_size("max_memory", opts->max_memory, &config->max_memory))
        return -EINVAL;
    config->metadata_limit = (size_t)metadata_limit;
    config->bucket = opts->bucket;
    config->enforce_limits = opts->enforce_limits;
    config->verbose = opts->verbose;
    config->default_uid = getuid();
    config->default_gid = getgid();
    return 0;
}

/* Tells a waiting script that the mount is live. */
static void signal_ready(const char *path)
{
    if (!path)
        return;
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        s3m_log("cannot open ready_file '%s': %s", path, strerror(errno));
        return;
    }
    if (write(fd, "ready\n", 6) != 6)
        s3m_log("cannot write ready_file '%s': %s", path, strerror(errno));
    close(fd);
}

static void free_options(struct options *opts)
{
    free(opts->bucket);
    free(opts->key_prefix);
    free(opts->control_dir);
    free(opts->metadata_limit);
    free(opts->max_object_size);
    free(opts->max_memory);
    free(opts->ready_file);
    free(opts->timeout);
    free(opts->persist);
}

/* Loads the persist file into store when it exists. 0, or 1 after
 * printing the reason. */
static int load_persisted(const struct options *opts, struct s3m_store *store)
{
    if (!opts->persist || access(opts->persist, F_OK) != 0)
        return 0;
    struct s3m_error err = {0};
    struct s3m_store *loaded = NULL;
    struct s3m_load_report report;
    if (s3m_format_load(opts->persist, s3m_store_config(store), &loaded, &report,
                        &err) != 0) {
        fprintf(stderr, "s3mem: cannot load persist file: %s\n", err.message);
        return 1;
    }
    s3m_store_swap_in(store, loaded, S3M_KEEP_SAME_TO_MS, NULL, NULL);
    s3m_store_free(loaded);
    s3m_log("loaded %zu objects from '%s'", report.objects, opts->persist);
    return 0;
}

/* libfuse's max_threads (10 unless -o max_threads), or 0 when out of reason. */
static unsigned max_threads_of(const struct fuse_cmdline_opts *cmdline)
{
    return cmdline->max_threads <= 100000 ? cmdline->max_threads : 0;
}

/* libfuse's multithreaded loop, with its thread options. */
static int run_libfuse_loop(struct fuse_session *se, const struct fuse_cmdline_opts *cmdline)
{
    struct fuse_loop_config *loop = fuse_loop_cfg_create();
    if (!loop)
        return 1;
    fuse_loop_cfg_set_clone_fd(loop, (unsigned)cmdline->clone_fd);
    if (cmdline->max_idle_threads != UINT_MAX) /* UINT_MAX: not given */
        fuse_loop_cfg_set_idle_threads(loop, cmdline->max_idle_threads);
    if (max_threads_of(cmdline) > 0)
        fuse_loop_cfg_set_max_threads(loop, max_threads_of(cmdline));
    int rc = fuse_session_loop_mt(se, loop);
    fuse_loop_cfg_destroy(loop);
    return rc;
}

/* The number in environment variable name (digits only), or fallback. */
static unsigned long env_number(const char *name, unsigned long fallback)
{
    const char *text = getenv(name);
    char *end;

    if (!text || !*text)
        return fallback;
    errno = 0;
    unsigned long value = strtoul(text, &end, 10);
    if (*end || errno || text[0] == '-' || value > UINT_MAX) {
        s3m_log("%s='%s' is not a number: using %lu", name, text, fallback);
        return fallback;
    }
    return value;
}

/* Starts the trimmer with S3MEM_TRIM_MS (how long the daemon must be idle,
 * 0 for never) and S3MEM_TRIM_MIN_MB (free heap worth trimming). */
static void start_trimmer(struct s3m_store *store)
{
    unsigned long ms = env_number("S3MEM_TRIM_MS", 2000);
    unsigned long min_mb = env_number("S3MEM_TRIM_MIN_MB", 16);
    if (s3m_store_trimmer_start(store, (unsigned)ms, (size_t)min_mb << 20) != 0)
        s3m_log("cannot start the heap trimmer: freed memory stays in the heap");
}

/* Starts the threads beside the request loop: the cache notifier, the
 * reaper, the heap trimmer and autopersist. They start with SIGINT, SIGTERM
 * and SIGHUP blocked, as the loop's workers do, so that libfuse's handlers
 * run on the thread that waits for them. */
static void start_helpers(struct s3m_store *store, struct s3m_fs *fs,
                          struct s3m_ctl *ctl, const struct options *opts)
{
    sigset_t signals, old;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &signals, &old);
    s3m_fs_start(fs);
    if (s3m_store_reaper_start() != 0)
        s3m_log("cannot start the reaper: commands free what they replace");
    start_trimmer(store);
    if ((opts->autopersist || opts->autopersist_ms) &&
        s3m_ctl_start_autopersist(ctl, opts->autopersist_ms) != 0)
        s3m_log("cannot start autopersist");
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static int run(struct fuse_args *args, struct fuse_cmdline_opts *cmdline,
               struct s3m_store *store, struct s3m_fs *fs,
               struct s3m_ctl *ctl, const struct options *opts)
{
    struct fuse_session *se = fuse_session_new(args, s3m_fs_operations(),
                                               sizeof(struct fuse_lowlevel_ops), fs);
    if (!se)
        return 1;
    int rc = 1;
    s3m_fs_set_session(fs, se);
    if (fuse_set_signal_handlers(se) != 0)
        goto destroy;
    if (fuse_session_mount(se, cmdline->mountpoint) != 0)
        goto signals;
    fuse_daemonize(cmdline->foreground);
    start_helpers(store, fs, ctl, opts); /* threads only after daemonize's fork */
    s3m_log("mounted bucket '%s' at %s", s3m_store_bucket(store), cmdline->mountpoint);
    /* the tunables malloc runs with (see heap_on_huge_pages): glibc cuts
     * the copy /proc/PID/environ shows at the first one */
    const char *tunables = getenv("GLIBC_TUNABLES");
    if (tunables)
        s3m_log("malloc: GLIBC_TUNABLES=%s", tunables);
    signal_ready(opts->ready_file);
    if (cmdline->singlethread)
        rc = fuse_session_loop(se);
    else if (opts->libfuse_loop || cmdline->clone_fd ||
             s3m_loop_cpu_count() > S3M_LOOP_CPUS_MAX)
        rc = run_libfuse_loop(se, cmdline);
    else
        rc = s3m_loop_run(se, &(struct s3m_loop_config){
                 .max_threads = max_threads_of(cmdline)});
    /* libfuse's loops return the signal that ended them (a clean stop),
     * s3m_loop_run 0 for any clean stop */
    bool by_signal = rc == SIGTERM || rc == SIGINT || rc == SIGHUP;
    rc = rc && !by_signal ? 1 : 0;
    s3m_ctl_stop_autopersist(ctl);
    if (s3m_ctl_persist(ctl, false) != 0)
        rc = 1;
    s3m_store_trimmer_stop();
    s3m_store_reaper_stop();
    fuse_session_unmount(se);
    s3m_log("unmounted %s", cmdline->mountpoint);
signals:
    fuse_remove_signal_handlers(se);
destroy:
    fuse_session_destroy(se);
    return rc;
}

/* Writes into value (size bytes) the user's tunables (have), then each of
 * ours that have does not already name. false when they do not fit. */
static bool tunables_with_ours(char *value, size_t size, const char *have)
{
    static const char *const ours[] = {"glibc.malloc.hugetlb=1",
                                       "glibc.malloc.top_pad=33554432",
                                       "glibc.malloc.arena_max=1"};
    size_t used = strlen(have);

    if (used >= size)
        return false;
    memcpy(value, have, used + 1);
    for (size_t i = 0; i < sizeof(ours) / sizeof(ours[0]); i++) {
        size_t name_len = strcspn(ours[i], "=");
        char name[64];
        int n;

        snprintf(name, sizeof(name), "%.*s=", (int)name_len, ours[i]);
        if (strstr(have, name))
            continue;
        n = snprintf(value + used, size - used, "%s%s", used ? ":" : "",
                     ours[i]);
        if (n < 0 || (size_t)n >= size - used)
            return false;
        used += (size_t)n;
    }
    return true;
}

/* The heap on transparent huge pages. On this project's VM the first touch
 * of a 4 KiB page costs about 10 us, of a 2 MiB one about 0.5 us per
 * 4 KiB: bodies written or loaded are fresh memory, so a 1 GiB write ran at
 * 210 to 320 MB/s on small pages and 530 to 850 MB/s on huge ones.
 * glibc's malloc takes huge pages (madvise) only when the GLIBC_TUNABLES
 * it read at startup say so, with a top pad that grows its heaps 32 MiB
 * at a time (huge pages need whole 2 MiB ranges), and in one arena: a
 * thread's own arena is advised for huge pages only as far as its first
 * 32 MiB (glibc 2.36 advises a thread heap when it maps it, not when it
 * grows), so an import's records landed on small pages (2,700 faults
 * where one arena takes 10). So the daemon sets them and runs itself
 * again, once, before anything else. A tunable the user already set is
 * kept. Skipped when the kernel has huge pages off, when GLIBC_TUNABLES
 * already names hugetlb (ours, or the user's choice) or with
 * S3MEM_HUGE_PAGES=0; a failed exec goes on with small pages. */
static void heap_on_huge_pages(char *argv[])
{
    const char *have = getenv("GLIBC_TUNABLES");
    const char *opt_out = getenv("S3MEM_HUGE_PAGES");
    char mode[128] = "";
    char value[1024], self[PATH_MAX];
    FILE *file;
    ssize_t len;

    if ((have && strstr(have, "glibc.malloc.hugetlb")) ||
        (opt_out && strcmp(opt_out, "0") == 0))
        return;
    file = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "re");
    if (!file)
        return;
    if (!fgets(mode, sizeof(mode), file))
        mode[0] = '\0';
    fclose(file);
    if (!strstr(mode, "[always]") && !strstr(mode, "[madvise]"))
        return;
    size_t have_len = have ? strlen(have) : 0;
    if (!tunables_with_ours(value, sizeof(value), have ? have : ""))
        return;
    /* the binary's own path, not /proc/self/exe: ps and pgrep name a
     * process after the file it ran */
    len = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (len <= 0 || (size_t)len >= sizeof(self) - 1)
        return;
    self[len] = '\0';
    if (setenv("GLIBC_TUNABLES", value, 1) != 0)
        return;
    execv(self, argv);
    /* still here: run on small pages with the user's variable, taken
     * back from value (setenv may have freed the string have points to) */
    value[have_len] = '\0';
    if (have)
        setenv("GLIBC_TUNABLES", value, 1);
    else
        unsetenv("GLIBC_TUNABLES");
}

int main(int argc, char *argv[])
{
    struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
    struct options opts = {0};
    struct fuse_cmdline_opts cmdline = {0};
    struct s3m_store_config store_config;
    double timeout = 0;
    int rc = 1;
    heap_on_huge_pages(argv);
    /* No fastbins: with them, every allocation of 1 KiB or more (a body
     * chunk) first consolidated the small blocks freed before it; import
     * and load of 20,000 objects spent a quarter of their time there. */
    mallopt(M_MXFAST, 0);
    if (fuse_opt_parse(&args, &opts, option_spec, NULL) != 0 ||
        fuse_parse_cmdline(&args, &cmdline) != 0)
        goto out;
    if (cmdline.show_help) {
        usage(argv[0]);
        rc = 0;
        goto out;
    }
    if (cmdline.show_version) {
        printf("s3mem %s (libfuse %s)\n", S3MEM_VERSION, fuse_pkgversion());
        rc = 0;
        goto out;
    }
    if (!cmdline.mountpoint) {
        fprintf(stderr, "s3mem: no mountpoint given (see %s --help)\n", argv[0]);
        goto out;
    }
    if (check_names(&opts) || build_store_config(&opts, &store_config) ||
        parse_timeout(opts.timeout, &timeout))
        goto out;
    if ((opts.autopersist || opts.autopersist_ms) && !opts.persist) {
        fprintf(stderr, "s3mem: autopersist needs persist=PATH\n");
        goto out;
    }
    if (opts.persist && opts.persist[0] != '/') {
        fprintf(stderr, "s3mem: persist path must be absolute: '%s'\n", opts.persist);
        goto out;
    }
    /* libfuse made the mountpoint canonical (realpath) */
    if (opts.persist && s3m_path_within(opts.persist, cmdline.mountpoint)) {
        fprintf(stderr, "s3mem: persist path '%s' is inside the mountpoint %s: "
                "saving it would go through s3mem itself\n", opts.persist,
                cmdline.mountpoint);
        goto out;
    }
    fuse_opt_add_arg(&args, "-ofsname=s3mem,subtype=s3mem");
    /* before the persisted store loads, so its big bodies go there too; it
     * has no thread, so daemonize's fork keeps it */
    if (s3m_body_file_start() != 0)
        s3m_log("cannot make the chunk file: big bodies live on the heap");
    struct s3m_store *store = s3m_store_new(&store_config);
    struct s3m_ctl_config ctl_config = {.key_prefix = opts.key_prefix,
                                        .persist_path = opts.persist,
                                        .mountpoint = cmdline.mountpoint};
    struct s3m_ctl *ctl = store ? s3m_ctl_new(&ctl_config, store) : NULL;
    struct s3m_fs_config fs_config = {
        .key_prefix = opts.key_prefix, .control_dir = opts.control_dir,
        .uid = getuid(), .gid = getgid(), .timeout = timeout,
        .verbose = opts.verbose, .ctl = ctl,
    };
    struct s3m_fs *fs = ctl ? s3m_fs_new(&fs_config, store) : NULL;
    if (!fs)
        fprintf(stderr, "s3mem: out of memory\n");
    else if (load_persisted(&opts, store) == 0)
        rc = run(&args, &cmdline, store, fs, ctl, &opts);
    s3m_fs_free(fs);
    s3m_ctl_free(ctl);
    s3m_store_free(store);
    s3m_body_file_stop();
out:
    free(cmdline.mountpoint);
    free_options(&opts);
    fuse_opt_free_args(&args);
    return rc;
}
