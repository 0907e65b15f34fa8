/*
 * hash.c - the 64-bit hash used by every hash table (XXH3).
 */
#include "s3mem/util.h"

#include <xxhash.h>

uint64_t s3m_hash(const void *data, size_t len)
{
    return XXH3_64bits(data, len);
}
