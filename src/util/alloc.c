/*
 * alloc.c - the allocation wrappers every module uses, and the test hook
 * that fails the Nth of them.
 *
 * Design note: the hook's state is in relaxed atomics. They give no ordering
 * (the hook is for single-threaded tests), but keep ThreadSanitizer builds
 * quiet when a multithreaded program allocates. Counting starts with the
 * first call to s3m_alloc_fail_after, so a program that never arms the hook
 * does not contend on a shared counter.
 */
#include "s3mem/util.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static atomic_bool hook_armed;
static atomic_size_t allocation_count;   /* allocation calls since last arm */
static atomic_size_t fail_at;            /* 1-based call to fail; 0: none */
static atomic_bool fail_sticky;

/* Counts one allocation call and returns true when the hook says it must
 * fail. */
static bool allocation_must_fail(void)
{
    size_t nth, target;

    if (!atomic_load_explicit(&hook_armed, memory_order_relaxed))
        return false;
    nth = atomic_fetch_add_explicit(&allocation_count, 1,
                                    memory_order_relaxed) + 1;
    target = atomic_load_explicit(&fail_at, memory_order_relaxed);
    if (target == 0)
        return false;
    return nth == target ||
           (nth > target &&
            atomic_load_explicit(&fail_sticky, memory_order_relaxed));
}

/* Counts failed calls too: the count is of attempts, so a test can fail
 * each of them in turn. */
size_t s3m_alloc_fail_after(size_t nth, bool sticky)
{
    size_t made = atomic_exchange_explicit(&allocation_count, 0,
                                           memory_order_relaxed);

    atomic_store_explicit(&fail_at, nth, memory_order_relaxed);
    atomic_store_explicit(&fail_sticky, sticky, memory_order_relaxed);
    atomic_store_explicit(&hook_armed, true, memory_order_relaxed);
    return made;
}

void *s3m_malloc(size_t size)
{
    return allocation_must_fail() ? NULL : malloc(size);
}

void *s3m_calloc(size_t count, size_t size)
{
    return allocation_must_fail() ? NULL : calloc(count, size);
}

/* On failure ptr is left allocated and unchanged, as with realloc. */
void *s3m_realloc(void *ptr, size_t size)
{
    return allocation_must_fail() ? NULL : realloc(ptr, size);
}

void *s3m_grow(void *buf, size_t *cap, size_t need)
{
    if (*cap >= need)
        return buf;
    size_t bigger = *cap > 32 ? *cap : 32;
    while (bigger < need)
        bigger = bigger > SIZE_MAX / 2 ? need : bigger * 2;
    void *grown = s3m_realloc(buf, bigger);
    if (grown)
        *cap = bigger;
    return grown;
}

char *s3m_strdup(const char *text)
{
    return s3m_memdup(text, strlen(text) + 1);
}

/* Copies at most len bytes of text, stopping at a NUL, and NUL-ends them. */
char *s3m_strndup(const char *text, size_t len)
{
    size_t used = strnlen(text, len);
    char *copy = s3m_malloc(used + 1);

    if (!copy)
        return NULL;
    memcpy(copy, text, used);
    copy[used] = '\0';
    return copy;
}

/* New copy of len bytes at data. A zero-length copy is still a distinct
 * non-NULL pointer, so NULL always means -ENOMEM. */
void *s3m_memdup(const void *data, size_t len)
{
    void *copy = s3m_malloc(len ? len : 1);

    if (copy && len)
        memcpy(copy, data, len);
    return copy;
}
