/*
 * within.c - does a path lead into a directory (the daemon's own mount)?
 *
 * Design note: a control command that saves, loads, exports or imports
 * through a path inside the mount makes the daemon send requests to
 * itself; a single-threaded daemon then waits on itself forever, and the
 * writer of the command with it. realpath(3) cannot tell: it would stat
 * the mount's own entries, which is the same wait. So the path is resolved
 * here one component at a time, following the symlinks of the part outside
 * the mount (readlink there is safe) and stopping, without a system call,
 * as soon as the resolved prefix is the mount or lies under it.
 */
#include <limits.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "s3mem/util.h"

#define WITHIN_LINKS_MAX 40        /* as Linux's own limit on a path walk */

/* True when path (resolved, "" for "/") is root or lies under it. */
static bool under(const char *path, const char *root, size_t root_len)
{
    if (root_len == 0)             /* root is "/" */
        return true;
    return strncmp(path, root, root_len) == 0 &&
           (path[root_len] == '\0' || path[root_len] == '/');
}

/* Drops the last component of done (lexically: done has no symlinks). */
static void pop(char *done)
{
    char *slash = strrchr(done, '/');
    if (slash)
        *slash = '\0';
}

/* Makes todo "target/rest", where rest points into todo itself. */
static bool splice_link(const char *target, char *todo, const char *rest,
                        size_t todo_size)
{
    size_t target_len = strlen(target), rest_len = strlen(rest);
    if (target_len + 1 + rest_len + 1 > todo_size)
        return false;
    memmove(todo + target_len + 1, rest, rest_len + 1);
    memcpy(todo, target, target_len);
    todo[target_len] = '/';
    return true;
}

bool s3m_path_within(const char *path, const char *root)
{
    char todo[PATH_MAX * 2], done[PATH_MAX * 2] = "", link[PATH_MAX];
    size_t root_len = strlen(root);
    while (root_len > 0 && root[root_len - 1] == '/')
        root_len--;
    if (strlen(path) >= sizeof(todo))
        return true;               /* cannot tell: the caller refuses it */
    strcpy(todo, path);
    bool missing = false;          /* a component did not exist: the rest is
                                    * taken as written */
    int links = 0;
    char *next = todo;
    while (*next) {
        while (*next == '/')
            next++;
        char *end = strchr(next, '/');
        if (!end)
            end = next + strlen(next);
        size_t len = (size_t)(end - next);
        char *rest = *end ? end + 1 : end;
        if (len == 0 || (len == 1 && next[0] == '.')) {
            next = rest;
            continue;
        }
        if (len == 2 && next[0] == '.' && next[1] == '.') {
            pop(done);
            next = rest;
            continue;
        }
        size_t done_len = strlen(done);
        if (done_len + 1 + len + 1 > sizeof(done))
            return true;
        done[done_len] = '/';
        memcpy(done + done_len + 1, next, len);
        done[done_len + 1 + len] = '\0';
        if (under(done, root, root_len))
            return true;
        struct stat st;
        if (!missing && lstat(done, &st) != 0)
            missing = true;
        if (missing || !S_ISLNK(st.st_mode)) {
            next = rest;
            continue;
        }
        ssize_t n = readlink(done, link, sizeof(link) - 1);
        if (n < 0 || ++links > WITHIN_LINKS_MAX)
            return true;
        link[n] = '\0';
        if (link[0] == '/')
            done[0] = '\0';
        else
            pop(done);
        if (!splice_link(link, todo, rest, sizeof(todo)))
            return true;
        next = todo;
    }
    return under(done, root, root_len);
}
