/*
 * Fuzz target: the disk cache entry reader, nj_entry_parse (src/cache_entry.c).
 *
 * Each input is parsed as it is, without and with an expected key, and then
 * again with its two checksums recomputed over the lengths its header
 * claims, so that mutations reach the checks behind the checksums. Besides
 * memory safety (ASan, UBSan), the properties: a result is one of the
 * NJ_ENTRY_* reasons; an accepted entry spans exactly the input, its view
 * lies inside it, and encoding the view again gives the input byte for
 * byte; an expected key is accepted exactly when it equals the stored one.
 */
#include "cache_entry.h"
#include "cache_key.h"
#include "hash.h"

#include "fuzz_common.h"

#include <stdlib.h>
#include <string.h>

#define FIXED_KEY "normjit-fuzz-key\n"

static uint64_t get_le(const unsigned char *p, int bytes)
{
    uint64_t v = 0;
    int i;
    for (i = bytes - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static void put_le(unsigned char *p, uint64_t v, int bytes)
{
    int i;
    for (i = 0; i < bytes; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* Parse `data` every way; returns the result without an expected key. */
static int check_entry(const unsigned char *data, size_t size)
{
    nj_entry_view v, v2;
    int r, r2;

    memset(&v, 0, sizeof v);
    r = nj_entry_parse(data, size, NULL, 0, &v);
    FUZZ_CHECK(r >= NJ_ENTRY_OK && r <= NJ_ENTRY_BAD_PAYLOAD_SUM);
    FUZZ_CHECK(nj_entry_problem(r)[0] != '\0');

    /* A fixed expected key: accepted only if the entry is valid and holds exactly it. */
    r2 = nj_entry_parse(data, size, FIXED_KEY, sizeof FIXED_KEY - 1, &v2);
    if (r != NJ_ENTRY_OK)
        FUZZ_CHECK(r2 == r);
    else if (v.key_len == sizeof FIXED_KEY - 1 && !memcmp(v.key, FIXED_KEY, v.key_len))
        FUZZ_CHECK(r2 == NJ_ENTRY_OK);
    else
        FUZZ_CHECK(r2 == NJ_ENTRY_KEY_MISMATCH);

    if (r == NJ_ENTRY_OK) {
        nj_buf again = {0};
        char *key;
        const unsigned char *key_at = (const unsigned char *)v.key;
        const unsigned char *payload_at = v.payload;

        FUZZ_CHECK(size >= NJ_ENTRY_HEADER_SIZE);
        FUZZ_CHECK(v.key_len <= NJ_ENTRY_MAX_KEY && v.payload_len <= NJ_ENTRY_MAX_PAYLOAD);
        FUZZ_CHECK(NJ_ENTRY_HEADER_SIZE + v.key_len + v.payload_len == size);
        FUZZ_CHECK(key_at == data + NJ_ENTRY_HEADER_SIZE);
        FUZZ_CHECK(payload_at == key_at + v.key_len);
        FUZZ_CHECK(payload_at + v.payload_len == data + size);

        /* Its own key is accepted; any other (one byte changed, one shorter) is not. */
        FUZZ_CHECK(nj_entry_parse(data, size, v.key, v.key_len, &v2) == NJ_ENTRY_OK);
        if (v.key_len > 0) {
            key = malloc(v.key_len);
            FUZZ_CHECK(key != NULL);
            memcpy(key, v.key, v.key_len);
            key[v.key_len / 2] ^= 1;
            FUZZ_CHECK(nj_entry_parse(data, size, key, v.key_len, &v2) == NJ_ENTRY_KEY_MISMATCH);
            FUZZ_CHECK(nj_entry_parse(data, size, v.key, v.key_len - 1, &v2) ==
                       NJ_ENTRY_KEY_MISMATCH);
            free(key);
        }

        /* Encoding the view gives back the same bytes. */
        FUZZ_CHECK(nj_entry_encode(v.key, v.key_len, v.payload, v.payload_len, &again) ==
                   NORMJIT_OK);
        FUZZ_CHECK(again.len == size && !memcmp(again.data, data, size));
        nj_buf_free(&again);
    }
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_entry(data, size);

    /* The same bytes with checksums that match what the header claims. */
    if (size >= NJ_ENTRY_HEADER_SIZE) {
        unsigned char *copy = malloc(size);
        uint64_t key_len = get_le(data + 12, 4), payload_len = get_le(data + 16, 8);
        int r, header_ok;
        FUZZ_CHECK(copy != NULL);
        memcpy(copy, data, size);
        header_ok = !memcmp(copy, "NJCACHE", 8) && get_le(copy + 8, 4) == NJ_CACHE_SCHEMA &&
                    key_len <= NJ_ENTRY_MAX_KEY && payload_len <= NJ_ENTRY_MAX_PAYLOAD;
        if (header_ok && NJ_ENTRY_HEADER_SIZE + key_len + payload_len <= size) {
            put_le(copy + 24, nj_checksum64(copy + NJ_ENTRY_HEADER_SIZE, (size_t)key_len), 8);
            put_le(copy + 32,
                   nj_checksum64(copy + NJ_ENTRY_HEADER_SIZE + key_len, (size_t)payload_len), 8);
        }
        r = check_entry(copy, size);
        if (header_ok && NJ_ENTRY_HEADER_SIZE + key_len + payload_len == size)
            FUZZ_CHECK(r == NJ_ENTRY_OK);
        else if (header_ok)
            FUZZ_CHECK(r == (NJ_ENTRY_HEADER_SIZE + key_len + payload_len > size
                                 ? NJ_ENTRY_TRUNCATED
                                 : NJ_ENTRY_BAD_LENGTH));
        free(copy);
    }
    return 0;
}
