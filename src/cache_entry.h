/*
 * The format of one disk cache entry: a self-contained file holding the full
 * key text and the kernel image, each with a checksum.
 *
 *   offset  size  field
 *        0     8  magic "NJCACHE\0"
 *        8     4  schema (NJ_CACHE_SCHEMA), little-endian
 *       12     4  key length K
 *       16     8  payload length P
 *       24     8  XXH3-64 of the key text
 *       32     8  XXH3-64 of the payload
 *       40     K  key text
 *     40+K     P  payload (CUBIN or PTX)
 *
 * The file is exactly 40 + K + P bytes long.
 */
#ifndef NJ_CACHE_ENTRY_H
#define NJ_CACHE_ENTRY_H

#include "buf.h"

#include <stddef.h>
#include <stdint.h>

#define NJ_ENTRY_HEADER_SIZE 40
#define NJ_ENTRY_MAX_KEY (16u << 20)
#define NJ_ENTRY_MAX_PAYLOAD (256u << 20)
/* The largest file that can be an entry: a larger one is refused before it is read. */
#define NJ_ENTRY_MAX_FILE ((uint64_t)NJ_ENTRY_HEADER_SIZE + NJ_ENTRY_MAX_KEY + NJ_ENTRY_MAX_PAYLOAD)

/* Why an entry was rejected (NJ_ENTRY_OK when it was not). */
enum {
    NJ_ENTRY_OK = 0,
    NJ_ENTRY_TRUNCATED,
    NJ_ENTRY_BAD_MAGIC,
    NJ_ENTRY_BAD_SCHEMA,
    NJ_ENTRY_BAD_LENGTH,
    NJ_ENTRY_BAD_KEY_SUM,
    NJ_ENTRY_BAD_PAYLOAD_SUM,
    NJ_ENTRY_KEY_MISMATCH
};

typedef struct nj_entry_view {
    const char *key; /* points into the parsed bytes; not NUL-terminated */
    size_t key_len;
    const void *payload;
    size_t payload_len;
} nj_entry_view;

/* The fixed header of an entry, decoded. */
typedef struct nj_entry_header {
    uint32_t schema;
    uint64_t key_len, payload_len;
    uint64_t key_sum, payload_sum;
} nj_entry_header;

/*
 * Decode and check the header of an entry whose file is `file_size` bytes
 * long (`data` holds at least the header): magic, schema, lengths against the
 * limits and the file size. Returns NJ_ENTRY_OK or the reason; the checksums
 * are left to the caller, who may not have read the rest.
 */
int nj_entry_read_header(const void *data, uint64_t file_size, nj_entry_header *h);

/* Serialize an entry into `out`. */
int nj_entry_encode(const char *key, size_t key_len, const void *payload, size_t payload_len,
                    nj_buf *out);

/*
 * Check an entry's bytes completely. With `expect_key`, the stored key must
 * equal it byte for byte. Returns NJ_ENTRY_OK and fills `view`, or the reason.
 */
int nj_entry_parse(const void *data, size_t len, const char *expect_key, size_t expect_key_len,
                   nj_entry_view *view);

/* A phrase for a parse result: "truncated", "payload checksum mismatch", ... */
const char *nj_entry_problem(int result);

#endif
