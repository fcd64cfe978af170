#include "cache_entry.h"

#include "cache_key.h"
#include "hash.h"

#include <string.h>

static const char magic[8] = {'N', 'J', 'C', 'A', 'C', 'H', 'E', '\0'};

static void put_le(unsigned char *p, uint64_t v, int bytes)
{
    int i;
    for (i = 0; i < bytes; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le(const unsigned char *p, int bytes)
{
    uint64_t v = 0;
    int i;
    for (i = bytes - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

int nj_entry_encode(const char *key, size_t key_len, const void *payload, size_t payload_len,
                    nj_buf *out)
{
    unsigned char h[NJ_ENTRY_HEADER_SIZE];
    if (key_len > NJ_ENTRY_MAX_KEY || payload_len > NJ_ENTRY_MAX_PAYLOAD)
        return nj_fail(NORMJIT_EINVAL, "cache entry too large (key %zu, payload %zu bytes)",
                       key_len, payload_len);
    memcpy(h, magic, sizeof magic);
    put_le(h + 8, NJ_CACHE_SCHEMA, 4);
    put_le(h + 12, key_len, 4);
    put_le(h + 16, payload_len, 8);
    put_le(h + 24, nj_checksum64(key, key_len), 8);
    put_le(h + 32, nj_checksum64(payload, payload_len), 8);
    nj_buf_reset(out);
    nj_buf_append(out, h, sizeof h);
    nj_buf_append(out, key, key_len);
    nj_buf_append(out, payload, payload_len);
    return nj_buf_status(out);
}

int nj_entry_read_header(const void *data, uint64_t file_size, nj_entry_header *h)
{
    const unsigned char *p = data;
    if (file_size < NJ_ENTRY_HEADER_SIZE)
        return NJ_ENTRY_TRUNCATED;
    h->schema = (uint32_t)get_le(p + 8, 4);
    h->key_len = get_le(p + 12, 4);
    h->payload_len = get_le(p + 16, 8);
    h->key_sum = get_le(p + 24, 8);
    h->payload_sum = get_le(p + 32, 8);
    if (memcmp(p, magic, sizeof magic))
        return NJ_ENTRY_BAD_MAGIC;
    if (h->schema != NJ_CACHE_SCHEMA)
        return NJ_ENTRY_BAD_SCHEMA;
    if (h->key_len > NJ_ENTRY_MAX_KEY || h->payload_len > NJ_ENTRY_MAX_PAYLOAD)
        return NJ_ENTRY_BAD_LENGTH;
    if (file_size < NJ_ENTRY_HEADER_SIZE + h->key_len + h->payload_len)
        return NJ_ENTRY_TRUNCATED;
    if (file_size > NJ_ENTRY_HEADER_SIZE + h->key_len + h->payload_len)
        return NJ_ENTRY_BAD_LENGTH;
    return NJ_ENTRY_OK;
}

int nj_entry_parse(const void *data, size_t len, const char *expect_key, size_t expect_key_len,
                   nj_entry_view *view)
{
    const unsigned char *p = data;
    nj_entry_header h;
    uint64_t key_len, payload_len;
    int result = nj_entry_read_header(data, len, &h);

    if (result != NJ_ENTRY_OK)
        return result;
    key_len = h.key_len;
    payload_len = h.payload_len;
    if (nj_checksum64(p + NJ_ENTRY_HEADER_SIZE, key_len) != h.key_sum)
        return NJ_ENTRY_BAD_KEY_SUM;
    if (nj_checksum64(p + NJ_ENTRY_HEADER_SIZE + key_len, payload_len) != h.payload_sum)
        return NJ_ENTRY_BAD_PAYLOAD_SUM;
    if (expect_key && (key_len != expect_key_len ||
                       memcmp(p + NJ_ENTRY_HEADER_SIZE, expect_key, expect_key_len)))
        return NJ_ENTRY_KEY_MISMATCH;
    view->key = (const char *)p + NJ_ENTRY_HEADER_SIZE;
    view->key_len = key_len;
    view->payload = p + NJ_ENTRY_HEADER_SIZE + key_len;
    view->payload_len = payload_len;
    return NJ_ENTRY_OK;
}

const char *nj_entry_problem(int result)
{
    switch (result) {
    case NJ_ENTRY_OK:
        return "valid";
    case NJ_ENTRY_TRUNCATED:
        return "truncated";
    case NJ_ENTRY_BAD_MAGIC:
        return "not a normjit cache entry (bad magic)";
    case NJ_ENTRY_BAD_SCHEMA:
        return "written by another cache schema";
    case NJ_ENTRY_BAD_LENGTH:
        return "length fields do not match the file size";
    case NJ_ENTRY_BAD_KEY_SUM:
        return "key checksum mismatch";
    case NJ_ENTRY_BAD_PAYLOAD_SUM:
        return "payload checksum mismatch";
    case NJ_ENTRY_KEY_MISMATCH:
        return "key differs from the one asked for";
    default:
        return "unknown problem";
    }
}
