#include "hash.h"

#include <stdio.h>

/* Header-only use of xxHash: no run-time dependency on libxxhash. */
#define XXH_INLINE_ALL
#include <xxhash.h>

void nj_digest_hex(const void *data, size_t len, char out[33])
{
    XXH128_hash_t h = XXH3_128bits(data, len);
    snprintf(out, 33, "%016llx%016llx", (unsigned long long)h.high64,
             (unsigned long long)h.low64);
}

uint64_t nj_checksum64(const void *data, size_t len)
{
    return XXH3_64bits(data, len);
}
