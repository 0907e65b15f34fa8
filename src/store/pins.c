/*
 * pins.c - holds an outside layer keeps on objects by number.
 *
 * Design note: the FUSE layer gives the kernel a file's object address as
 * its inode number, and the kernel counts its lookups of it until it
 * forgets them. Those counts are the object's pins: the first pin takes
 * one object reference, dropping the last one releases it, so the number
 * stays valid (the object may be detached meanwhile, as an unlinked file
 * stays). Each pinned object is in the store's pin table (its slot in the
 * object: the 4-byte count and the 4-byte slot make the header 8 bytes
 * longer, as the count alone would with alignment), so the pins the kernel never
 * dropped (it forgets nothing at unmount) are released with the store.
 * The table costs 8 to 16 bytes a pinned object; a list through the
 * objects would cost 16 on every object.
 *
 * Locking: pins.lock guards the table, pin_slot, and every change of pins
 * (atomic, so that readers such as keep_in_place need no lock). It is
 * taken inside the store lock or without it, and no lock is taken inside
 * it; object references are dropped after it is released.
 */
#include <errno.h>
#include <stdlib.h>

#include "internal.h"
#include "s3mem/util.h"

void pins_init(struct pin_table *pins)
{
    pthread_mutex_init(&pins->lock, NULL);
    pins->items = NULL;
    pins->count = pins->cap = 0;
}

/* Room for one more item (pins->lock held). */
static int pins_reserve(struct pin_table *pins)
{
    if (pins->count < pins->cap)
        return 0;
    if (pins->cap >= UINT32_MAX / 2)
        return -ENOMEM;
    uint32_t cap = pins->cap ? pins->cap * 2 : 1024;
    struct s3m_object **items = s3m_realloc(pins->items, cap * sizeof(*items));
    if (!items)
        return -ENOMEM;
    pins->items = items;
    pins->cap = cap;
    return 0;
}

int s3m_object_pin(struct s3m_store *store, struct s3m_object *obj, bool *first)
{
    struct pin_table *pins = &store->pins;
    int rc = 0;
    pthread_mutex_lock(&pins->lock);
    unsigned count = atomic_load(&obj->pins);
    *first = count == 0;
    if (count == UINT32_MAX)
        rc = -EOVERFLOW;
    else if (count == 0 && (rc = pins_reserve(pins)) == 0) {
        s3m_object_ref(obj);
        obj->pin_slot = pins->count;
        pins->items[pins->count++] = obj;
    }
    if (rc == 0)
        atomic_store(&obj->pins, count + 1);
    pthread_mutex_unlock(&pins->lock);
    return rc;
}

/* Takes obj out of the table (pins->lock held; obj is in it). */
static void pins_remove(struct pin_table *pins, struct s3m_object *obj)
{
    struct s3m_object *last = pins->items[--pins->count];
    pins->items[obj->pin_slot] = last;
    last->pin_slot = obj->pin_slot;
}

bool s3m_object_unpin(struct s3m_store *store, struct s3m_object *obj,
                      uint64_t count)
{
    struct pin_table *pins = &store->pins;
    pthread_mutex_lock(&pins->lock);
    unsigned old = atomic_load(&obj->pins);
    unsigned left = count >= old ? 0 : old - (unsigned)count;
    atomic_store(&obj->pins, left);
    bool last = old > 0 && left == 0;
    if (last)
        pins_remove(pins, obj);
    pthread_mutex_unlock(&pins->lock);
    if (last)
        s3m_object_unref(obj); /* may free it: not touched after */
    return last;
}

size_t s3m_store_pinned(struct s3m_store *store)
{
    pthread_mutex_lock(&store->pins.lock);
    size_t count = store->pins.count;
    pthread_mutex_unlock(&store->pins.lock);
    return count;
}

void s3m_store_unpin_all(struct s3m_store *store)
{
    struct pin_table *pins = &store->pins;
    pthread_mutex_lock(&pins->lock);
    struct s3m_object **items = pins->items;
    uint32_t count = pins->count;
    for (uint32_t i = 0; i < count; i++)
        atomic_store(&items[i]->pins, 0);
    pins->items = NULL;
    pins->count = pins->cap = 0;
    pthread_mutex_unlock(&pins->lock);
    for (uint32_t i = 0; i < count; i++)
        s3m_object_unref(items[i]);
    free(items);
}

void pins_release(struct pin_table *pins)
{
    free(pins->items); /* s3m_store_unpin_all ran, or nothing was pinned */
    pthread_mutex_destroy(&pins->lock);
}
