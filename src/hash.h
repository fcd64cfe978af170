/* Digests for cache keys, template bytes and entry checksums (XXH3). */
#ifndef NJ_HASH_H
#define NJ_HASH_H

#include <stddef.h>
#include <stdint.h>

/* 128-bit digest of `data` as 32 lowercase hex digits and a NUL. */
void nj_digest_hex(const void *data, size_t len, char out[33]);

/* 64-bit checksum of `data`. */
uint64_t nj_checksum64(const void *data, size_t len);

#endif
