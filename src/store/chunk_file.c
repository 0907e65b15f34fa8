/*
 * chunk_file.c - full-size chunks kept in a memory file instead of the heap.
 *
 * Design note: a new page of anonymous memory costs the kernel a page fault
 * and a page of zeros before the first byte lands in it, and on this VM a
 * first touch of any new mapping costs more again. Writing 1 GiB in 1 MiB
 * blocks (a small C program, three runs each): memcpy into fresh anonymous
 * memory 389-416 MB/s, on transparent huge pages 690-1,741 MB/s, pwrite into
 * a memfd 3,094-5,471 MB/s. A write into a memory file fills whole pages
 * through the kernel's own mapping, so nothing is zeroed and no user page
 * table changes. So every full chunk (S3M_CHUNK_SIZE bytes) lives in one
 * slot of a memfd: bytes go in with pwrite, come out through one read-only
 * shared mapping of the whole file (readers keep plain pointers), and a
 * freed slot is punched out (its memory returns to the system, its bytes
 * read as zeros again) before it is handed out anew.
 *
 * Optional: before s3m_body_file_start, or when the memfd cannot be made or
 * is full, chunks come from the heap (body.c). The file's size is the
 * machine's memory (sparse: only written pages use memory).
 *
 * Locking: file.lock guards free_slots, free_count, free_capacity, next and
 * in_use. fd, base and slot_count are set by start before any chunk is taken
 * and kept while any slot is in use (stop leaves them then), so readers use
 * them without the lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"
#include "s3mem/util.h"

static struct {
    pthread_mutex_t lock;
    int fd;                        /* the memfd; -1 when not running */
    unsigned char *base;           /* read-only shared mapping of the file */
    uint32_t slot_count;           /* slots the file and mapping hold */
    uint32_t next;                 /* slots below it were handed out once */
    uint32_t in_use;               /* slots handed out and not given back */
    uint32_t *free_slots;          /* owned: punched slots ready for reuse */
    uint32_t free_count;
    uint32_t free_capacity;
} file = {.lock = PTHREAD_MUTEX_INITIALIZER, .fd = -1};

static uint32_t slots_for_memory(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    uint64_t bytes = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
    uint64_t slots = bytes / S3M_CHUNK_SIZE;
    return slots >= UINT32_MAX ? UINT32_MAX - 1 : (uint32_t)slots;
}

int s3m_body_file_start(void)
{
    int rc = 0;
    pthread_mutex_lock(&file.lock);
    if (file.fd >= 0)
        goto out;
    uint32_t slots = slots_for_memory();
    size_t size = (size_t)slots * S3M_CHUNK_SIZE;
    int fd = memfd_create("s3mem-chunks", MFD_CLOEXEC);
    if (fd < 0 || slots == 0 || ftruncate(fd, (off_t)size) != 0) {
        rc = fd < 0 || slots == 0 ? -ENOSYS : -errno;
        goto fail;
    }
    void *base = mmap(NULL, size, PROT_READ, MAP_SHARED | MAP_NORESERVE, fd, 0);
    if (base == MAP_FAILED) {
        rc = -errno;
        goto fail;
    }
    file.fd = fd;
    file.base = base;
    file.slot_count = slots;
    file.next = 0;
    goto out;
fail:
    if (fd >= 0)
        close(fd);
out:
    pthread_mutex_unlock(&file.lock);
    return rc;
}

void s3m_body_file_stop(void)
{
    pthread_mutex_lock(&file.lock);
    free(file.free_slots);
    file.free_slots = NULL;
    file.free_count = file.free_capacity = 0;
    if (file.fd >= 0 && file.in_use == 0) {
        munmap(file.base, (size_t)file.slot_count * S3M_CHUNK_SIZE);
        close(file.fd);
        file.fd = -1;
        file.base = NULL;
        file.slot_count = 0;
    }
    /* with slots in use the file stays: their chunks still point into it */
    pthread_mutex_unlock(&file.lock);
}

bool chunk_file_take(uint32_t *slot)
{
    bool taken = true;
    pthread_mutex_lock(&file.lock);
    if (file.fd < 0)
        taken = false;
    else if (file.free_count > 0)
        *slot = file.free_slots[--file.free_count];
    else if (file.next < file.slot_count)
        *slot = file.next++;
    else
        taken = false;
    if (taken)
        file.in_use++;
    pthread_mutex_unlock(&file.lock);
    return taken;
}

static off_t slot_offset(uint32_t slot)
{
    return (off_t)slot * S3M_CHUNK_SIZE;
}

static int punch(off_t offset, size_t len)
{
    if (fallocate(file.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                  offset, (off_t)len) != 0)
        return -errno;
    return 0;
}

/* Room for `more` entries on the free stack; false when it cannot grow. */
static bool free_stack_reserve(uint32_t more)
{
    if (file.free_capacity - file.free_count >= more)
        return true;
    uint64_t capacity = file.free_capacity ? file.free_capacity : 1024;
    while (capacity - file.free_count < more)
        capacity *= 2;
    if (capacity > UINT32_MAX)
        return false;
    uint32_t *grown = s3m_realloc(file.free_slots, (size_t)capacity * sizeof(*grown));
    if (!grown)
        return false;
    file.free_slots = grown;
    file.free_capacity = (uint32_t)capacity;
    return true;
}

void chunk_file_give(uint32_t first, uint32_t count)
{
    /* slots that cannot be punched keep their bytes: never hand them out
     * again; nor those the free stack has no room for (their memory is
     * returned all the same) */
    bool reusable = punch(slot_offset(first), (size_t)count * S3M_CHUNK_SIZE) == 0;
    pthread_mutex_lock(&file.lock);
    file.in_use -= count;
    if (reusable && free_stack_reserve(count)) {
        /* pushed last first, so that the next takes come out in order */
        for (uint32_t i = count; i > 0; i--)
            file.free_slots[file.free_count++] = first + i - 1;
    }
    pthread_mutex_unlock(&file.lock);
}

const unsigned char *chunk_file_data(uint32_t slot)
{
    return file.base + slot_offset(slot);
}

int chunk_file_write(uint32_t slot, size_t at, const void *data, size_t len)
{
    const unsigned char *from = data;
    off_t offset = slot_offset(slot) + (off_t)at;
    while (len > 0) {
        ssize_t wrote = pwrite(file.fd, from, len, offset);
        if (wrote < 0 && errno == EINTR)
            continue;
        if (wrote == 0)
            return -ENOSPC;
        if (wrote < 0)
            return -errno;
        from += wrote;
        offset += wrote;
        len -= (size_t)wrote;
    }
    return 0;
}

int chunk_file_zero(uint32_t slot, size_t at, size_t len)
{
    return len ? punch(slot_offset(slot) + (off_t)at, len) : 0;
}
