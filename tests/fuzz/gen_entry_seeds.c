/*
 * Writes the seed corpus of fuzz_entry (tests/fuzz/corpus/entry/seed-*)
 * with nj_entry_encode: valid entries and near misses of each kind. The
 * files are committed; rerun after a format change:
 *
 *   build/tests/fuzz/gen_entry_seeds tests/fuzz/corpus/entry
 */
#include "cache_entry.h"
#include "cache_key.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *dir;
static int failures;

static void put(const char *name, const void *data, size_t len)
{
    char path[4096];
    FILE *f;
    snprintf(path, sizeof path, "%s/seed-%s", dir, name);
    f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
        fprintf(stderr, "cannot write %s\n", path);
        failures++;
        return;
    }
    printf("%s (%zu bytes)\n", path, len);
}

static void encode(const char *key, size_t key_len, const void *payload, size_t payload_len,
                   nj_buf *out)
{
    if (nj_entry_encode(key, key_len, payload, payload_len, out) != NORMJIT_OK) {
        fprintf(stderr, "nj_entry_encode: %s\n", normjit_last_error());
        exit(1);
    }
}

int main(int argc, char **argv)
{
    /* A key like nj_cache_key writes, and a small stand-in CUBIN with zero bytes. */
    static const char key[] =
        "normjit-cache-key\nschema: 2\nlibrary: 0.1.0\ntemplates: "
        "aebc90e09fb8f362b18a01e986a8d125\nnvrtc: 13.0\ntarget: sm_90\noptions: "
        "--gpu-architecture=sm_90 -default-device --std=c++17\nkernel: "
        "nj_rmsnorm_f16_f16_f16_h4096_v8_t192_r1_c1_o0_reg\nvariant: op=rmsnorm x=f16 y=f16 "
        "w=f16 hidden=4096 vec=8 tpr=192 rpc=1 cluster=1 occ=0 storage=reg\nsource: 9000 "
        "bytes, digest 0123456789abcdef0123456789abcdef\n";
    static const char fixed_key[] = "normjit-fuzz-key\n"; /* FIXED_KEY of fuzz_entry.c */
    unsigned char payload[96];
    nj_buf e = {0}, m = {0};
    size_t i;

    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    dir = argv[1];
    memcpy(payload, "\x7f" "ELF\x02\x01\x01", 7);
    for (i = 7; i < sizeof payload; i++)
        payload[i] = (unsigned char)(i * 29);

    encode(key, sizeof key - 1, payload, sizeof payload, &e);
    put("valid", e.data, e.len);
    put("truncated", e.data, e.len - 7);
    put("header-only", e.data, NJ_ENTRY_HEADER_SIZE);
    put("short-header", e.data, NJ_ENTRY_HEADER_SIZE - 1);

    nj_buf_reset(&m);
    nj_buf_append(&m, e.data, e.len);
    nj_buf_append(&m, "", 1);
    put("trailing-byte", m.data, m.len);

    m.len = e.len;
    m.data[3] ^= 0x20;
    put("bad-magic", m.data, m.len);
    memcpy(m.data, e.data, e.len);
    m.data[8] = NJ_CACHE_SCHEMA + 1;
    put("other-schema", m.data, m.len);
    memcpy(m.data, e.data, e.len);
    m.data[NJ_ENTRY_HEADER_SIZE + 5] ^= 1;
    put("bad-key-sum", m.data, m.len);
    memcpy(m.data, e.data, e.len);
    m.data[e.len - 1] ^= 0x80;
    put("bad-payload-sum", m.data, m.len);
    memcpy(m.data, e.data, e.len);
    memset(m.data + 12, 0xff, 4); /* key length 4 GiB - 1 */
    put("huge-key-length", m.data, m.len);
    memcpy(m.data, e.data, e.len);
    memset(m.data + 16, 0xff, 8); /* payload length 2^64 - 1 */
    put("huge-payload-length", m.data, m.len);

    encode(fixed_key, sizeof fixed_key - 1, payload, sizeof payload, &e);
    put("fixed-key", e.data, e.len);
    encode(key, sizeof key - 1, "", 0, &e);
    put("empty-payload", e.data, e.len);
    encode("", 0, payload, 16, &e);
    put("empty-key", e.data, e.len);
    encode("", 0, "", 0, &e);
    put("empty", e.data, e.len);

    nj_buf_free(&e);
    nj_buf_free(&m);
    return failures ? 1 : 0;
}
