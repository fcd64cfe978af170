/*
 * Disk cache entries (cache_entry.h) and the cache directory (disk_cache.h).
 * A cached CUBIN is code that runs in the process, so every damaged,
 * foreign or unsafe entry must be a clean miss, and every failure to store
 * must be survived with exactly one warning per kind.
 */
#include "cache_entry.h"
#include "cache_key.h"
#include "cache_scan.h"
#include "disk_cache.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#define KEY_LEN 100
#define PAYLOAD_LEN 200
#define D1 "0123456789abcdef0123456789abcdef"
#define D2 "fedcba9876543210fedcba9876543210"
#define D3 "00112233445566778899aabbccddeeff"

static char tmp_root[] = "/tmp/normjit-test-disk-XXXXXX";
static char key[KEY_LEN + 1];
static unsigned char payload[PAYLOAD_LEN];

static int setup(void **state)
{
    int i;
    (void)state;
    if (!mkdtemp(tmp_root))
        return -1;
    /* K and P are even and have bits 0, 1 clear: the header flips below rely on it. */
    for (i = 0; i < KEY_LEN; i++)
        key[i] = "normjit-cache-key\n"[i % 18];
    for (i = 0; i < PAYLOAD_LEN; i++)
        payload[i] = (unsigned char)(i * 37); /* binary, with zero bytes */
    return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    chmod(path, 0700); /* a test may leave a directory read-only */
    return remove(path);
}

static int teardown(void **state)
{
    (void)state;
    chmod(tmp_root, 0700);
    return nftw(tmp_root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ------------------------------------------------------------------------ */
/* Entries                                                                   */

static void encode(nj_buf *out)
{
    assert_int_equal(nj_entry_encode(key, KEY_LEN, payload, PAYLOAD_LEN, out), NORMJIT_OK);
    assert_int_equal(out->len, NJ_ENTRY_HEADER_SIZE + KEY_LEN + PAYLOAD_LEN);
}

static void test_entry_round_trip(void **state)
{
    nj_buf e = {0};
    nj_entry_view v;
    (void)state;
    encode(&e);
    assert_memory_equal(e.data, "NJCACHE\0", 8);
    assert_int_equal(nj_entry_parse(e.data, e.len, key, KEY_LEN, &v), NJ_ENTRY_OK);
    assert_int_equal(v.key_len, KEY_LEN);
    assert_memory_equal(v.key, key, KEY_LEN);
    assert_int_equal(v.payload_len, PAYLOAD_LEN);
    assert_memory_equal(v.payload, payload, PAYLOAD_LEN);
    assert_int_equal(nj_entry_parse(e.data, e.len, NULL, 0, &v), NJ_ENTRY_OK);

    /* An empty payload is an entry too. */
    assert_int_equal(nj_entry_encode(key, KEY_LEN, "", 0, &e), NORMJIT_OK);
    assert_int_equal(nj_entry_parse(e.data, e.len, key, KEY_LEN, &v), NJ_ENTRY_OK);
    assert_int_equal(v.payload_len, 0);
    nj_buf_free(&e);
}

static void test_entry_too_large_to_encode(void **state)
{
    nj_buf e = {0};
    (void)state;
    /* The lengths are checked before any byte is read. */
    assert_int_equal(nj_entry_encode(key, NJ_ENTRY_MAX_KEY + 1u, payload, 1, &e), NORMJIT_EINVAL);
    assert_int_equal(nj_entry_encode(key, 1, payload, NJ_ENTRY_MAX_PAYLOAD + 1u, &e),
                     NORMJIT_EINVAL);
    nj_buf_free(&e);
}

static void test_entry_truncated(void **state)
{
    static const size_t lengths[] = {
        0, 1, 8, NJ_ENTRY_HEADER_SIZE - 1,
        NJ_ENTRY_HEADER_SIZE, /* header only */
        NJ_ENTRY_HEADER_SIZE + KEY_LEN - 1, NJ_ENTRY_HEADER_SIZE + KEY_LEN,
        NJ_ENTRY_HEADER_SIZE + KEY_LEN + PAYLOAD_LEN - 1,
    };
    nj_buf e = {0};
    nj_entry_view v;
    size_t i;
    (void)state;
    encode(&e);
    for (i = 0; i < sizeof lengths / sizeof lengths[0]; i++) {
        /* A copy of exactly that many bytes, so a read past the end is caught by valgrind. */
        char *copy = malloc(lengths[i] ? lengths[i] : 1);
        assert_non_null(copy);
        memcpy(copy, e.data, lengths[i]);
        if (nj_entry_parse(copy, lengths[i], key, KEY_LEN, &v) != NJ_ENTRY_TRUNCATED)
            fail_msg("%zu of %zu bytes not reported truncated", lengths[i], e.len);
        free(copy);
    }
    nj_buf_free(&e);
}

static void test_entry_flipped_bytes(void **state)
{
    enum { H = NJ_ENTRY_HEADER_SIZE, K = KEY_LEN, P = PAYLOAD_LEN };
    static const struct {
        const char *where;
        size_t offset;
        unsigned char mask;
        int expect;
    } cases[] = {
        {"magic first byte", 0, 0x01, NJ_ENTRY_BAD_MAGIC},
        {"magic NUL", 7, 0x20, NJ_ENTRY_BAD_MAGIC},
        {"schema low byte", 8, 0x01, NJ_ENTRY_BAD_SCHEMA},
        {"schema high byte", 11, 0x80, NJ_ENTRY_BAD_SCHEMA},
        {"key length +1", 12, 0x01, NJ_ENTRY_TRUNCATED},
        {"key length -4", 12, 0x04, NJ_ENTRY_BAD_LENGTH},
        {"key length huge", 15, 0x80, NJ_ENTRY_BAD_LENGTH},
        {"payload length +1", 16, 0x01, NJ_ENTRY_TRUNCATED},
        {"payload length -8", 16, 0x08, NJ_ENTRY_BAD_LENGTH},
        {"payload length huge", 23, 0x80, NJ_ENTRY_BAD_LENGTH},
        {"payload length 2^32", 20, 0x01, NJ_ENTRY_BAD_LENGTH},
        {"key checksum low", 24, 0x01, NJ_ENTRY_BAD_KEY_SUM},
        {"key checksum high", 31, 0x80, NJ_ENTRY_BAD_KEY_SUM},
        {"payload checksum low", 32, 0x01, NJ_ENTRY_BAD_PAYLOAD_SUM},
        {"payload checksum high", 39, 0x80, NJ_ENTRY_BAD_PAYLOAD_SUM},
        {"key text first", H, 0x01, NJ_ENTRY_BAD_KEY_SUM},
        {"key text last", H + K - 1, 0x40, NJ_ENTRY_BAD_KEY_SUM},
        {"payload first", H + K, 0x01, NJ_ENTRY_BAD_PAYLOAD_SUM},
        {"payload middle", H + K + P / 2, 0x10, NJ_ENTRY_BAD_PAYLOAD_SUM},
        {"payload last", H + K + P - 1, 0x80, NJ_ENTRY_BAD_PAYLOAD_SUM},
    };
    nj_buf e = {0};
    nj_entry_view v;
    size_t i;
    int got;
    (void)state;
    encode(&e);
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        e.data[cases[i].offset] ^= (char)cases[i].mask;
        got = nj_entry_parse(e.data, e.len, key, KEY_LEN, &v);
        e.data[cases[i].offset] ^= (char)cases[i].mask;
        if (got != cases[i].expect)
            fail_msg("flipped %s: got \"%s\", expected \"%s\"", cases[i].where,
                     nj_entry_problem(got), nj_entry_problem(cases[i].expect));
    }
    assert_int_equal(nj_entry_parse(e.data, e.len, key, KEY_LEN, &v), NJ_ENTRY_OK);
    nj_buf_free(&e);
}

static void test_entry_wrong_key_schema_or_length(void **state)
{
    char other[KEY_LEN + 1];
    nj_buf e = {0};
    nj_entry_view v;
    (void)state;
    encode(&e);

    memcpy(other, key, KEY_LEN);
    other[KEY_LEN / 2] ^= 1;
    assert_int_equal(nj_entry_parse(e.data, e.len, other, KEY_LEN, &v), NJ_ENTRY_KEY_MISMATCH);
    assert_int_equal(nj_entry_parse(e.data, e.len, key, KEY_LEN - 1, &v), NJ_ENTRY_KEY_MISMATCH);
    other[KEY_LEN / 2] ^= 1;
    other[KEY_LEN] = 'x';
    assert_int_equal(nj_entry_parse(e.data, e.len, other, KEY_LEN + 1, &v), NJ_ENTRY_KEY_MISMATCH);

    e.data[8] = (char)(NJ_CACHE_SCHEMA + 1);
    assert_int_equal(nj_entry_parse(e.data, e.len, key, KEY_LEN, &v), NJ_ENTRY_BAD_SCHEMA);
    e.data[8] = (char)(NJ_CACHE_SCHEMA - 1);
    assert_int_equal(nj_entry_parse(e.data, e.len, key, KEY_LEN, &v), NJ_ENTRY_BAD_SCHEMA);
    e.data[8] = (char)NJ_CACHE_SCHEMA;

    nj_buf_append(&e, "x", 1);
    assert_int_equal(nj_entry_parse(e.data, e.len, key, KEY_LEN, &v), NJ_ENTRY_BAD_LENGTH);
    nj_buf_append(&e, payload, PAYLOAD_LEN);
    assert_int_equal(nj_entry_parse(e.data, e.len, key, KEY_LEN, &v), NJ_ENTRY_BAD_LENGTH);
    nj_buf_free(&e);
}

static void test_entry_problem_phrases(void **state)
{
    int i, j;
    (void)state;
    for (i = NJ_ENTRY_OK; i <= NJ_ENTRY_KEY_MISMATCH; i++) {
        assert_true(nj_entry_problem(i)[0] != '\0');
        assert_string_not_equal(nj_entry_problem(i), nj_entry_problem(-1));
        for (j = NJ_ENTRY_OK; j < i; j++)
            assert_string_not_equal(nj_entry_problem(i), nj_entry_problem(j));
    }
}

/* ------------------------------------------------------------------------ */
/* The cache directory                                                       */

typedef struct capture {
    int warnings;
    char last[2048];
} capture;

static void capture_log(void *user, int level, const char *message)
{
    capture *c = user;
    if (level == NORMJIT_LOG_WARN) {
        c->warnings++;
        snprintf(c->last, sizeof c->last, "%s", message);
    }
}

typedef struct cache_fixture {
    capture cap;
    nj_logger log;
    nj_disk_cache *cache;
    char root[PATH_MAX];
} cache_fixture;

/* A cache at <tmp_root>/<name>; the directory is not created until first use. */
static void open_cache(cache_fixture *f, const char *name)
{
    memset(&f->cap, 0, sizeof f->cap);
    nj_logger_init(&f->log, capture_log, &f->cap, NORMJIT_LOG_WARN);
    snprintf(f->root, sizeof f->root, "%s/%s", tmp_root, name);
    assert_int_equal(nj_disk_cache_open(f->root, &f->log, &f->cache), NORMJIT_OK);
    assert_string_equal(nj_disk_cache_root(f->cache), f->root);
}

/* Open another cache object on the same root, as another process would. */
static void reopen_cache(cache_fixture *f)
{
    nj_disk_cache_close(f->cache);
    memset(&f->cap, 0, sizeof f->cap);
    assert_int_equal(nj_disk_cache_open(f->root, &f->log, &f->cache), NORMJIT_OK);
}

/* Store an entry: its status (NORMJIT_OK, or NORMJIT_EIO with the reason in the last error). */
static int store(cache_fixture *f, const char *digest)
{
    return nj_disk_cache_store(f->cache, "sm_90", digest, key, KEY_LEN, payload, PAYLOAD_LEN);
}

/* 1 on a hit that returned exactly the stored payload, 0 on a miss. */
static int load(cache_fixture *f, const char *digest)
{
    nj_buf out = {0};
    int hit = nj_disk_cache_load(f->cache, "sm_90", digest, key, KEY_LEN, &out);
    if (hit) {
        assert_int_equal(out.len, PAYLOAD_LEN);
        assert_memory_equal(out.data, payload, PAYLOAD_LEN);
    }
    nj_buf_free(&out);
    return hit;
}

static void entry_path(const cache_fixture *f, const char *digest, char *out)
{
    nj_disk_cache_entry_path(f->root, "sm_90", digest, out, PATH_MAX);
}

static int file_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static int n_temps;

static int count_temp(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    if (strstr(path + ftw->base, ".tmp."))
        n_temps++;
    return 0;
}

/* Temporary files anywhere under the root. */
static int temps_under(const char *root)
{
    n_temps = 0;
    assert_int_equal(nftw(root, count_temp, 16, FTW_PHYS), 0);
    return n_temps;
}

static int count_entry(const nj_cache_file *file, void *user)
{
    if (!file->is_temp)
        ++*(int *)user;
    return 0;
}

static int entries_under(const char *root)
{
    int n = 0;
    assert_int_equal(nj_cache_scan(root, count_entry, &n), 0);
    return n;
}

static int n_njc;

static int count_njc(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)ftw;
    if (flag == FTW_F && strlen(path) > 4 && !strcmp(path + strlen(path) - 4, ".njc"))
        n_njc++;
    return 0;
}

/* *.njc files under a tree given to another user (which nj_cache_scan, as the library, skips). */
static int njc_files_under(const char *root)
{
    n_njc = 0;
    assert_int_equal(nftw(root, count_njc, 16, FTW_PHYS), 0);
    return n_njc;
}

static void expect_mode(const char *path, mode_t mode)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    if ((st.st_mode & 07777) != mode)
        fail_msg("%s has mode %04o, expected %04o", path, (unsigned)(st.st_mode & 07777),
                 (unsigned)mode);
}

static void corrupt_file(const char *path, off_t offset, int truncate_to)
{
    if (truncate_to >= 0) {
        assert_int_equal(truncate(path, truncate_to), 0);
    } else {
        int fd = open(path, O_RDWR);
        unsigned char b;
        assert_true(fd >= 0);
        assert_int_equal(pread(fd, &b, 1, offset), 1);
        b ^= 0x5a;
        assert_int_equal(pwrite(fd, &b, 1, offset), 1);
        close(fd);
    }
}

static void test_cache_store_load_round_trip(void **state)
{
    cache_fixture f;
    char path[PATH_MAX], dir[PATH_MAX + 80];
    struct stat st;
    (void)state;
    open_cache(&f, "round-trip/nested/cache");
    assert_false(file_exists(f.root)); /* opening touches nothing */
    assert_int_equal(load(&f, D1), 0);
    assert_true(nj_disk_cache_usable(f.cache));

    assert_int_equal(store(&f, D1), NORMJIT_OK);
    assert_int_equal(load(&f, D1), 1);
    assert_int_equal(store(&f, D2), NORMJIT_OK);
    assert_int_equal(store(&f, D3), NORMJIT_OK);
    assert_int_equal(store(&f, D1), NORMJIT_OK); /* over an existing entry */
    assert_int_equal(load(&f, D1), 1);
    assert_int_equal(load(&f, D2), 1);
    assert_int_equal(load(&f, D3), 1);
    assert_int_equal(entries_under(f.root), 3);
    assert_int_equal(temps_under(f.root), 0);

    /* Every directory the cache made is private to this user. */
    snprintf(dir, sizeof dir, "%s/round-trip", tmp_root);
    expect_mode(dir, 0700);
    expect_mode(f.root, 0700);
    snprintf(dir, sizeof dir, "%s/v%d", f.root, NJ_CACHE_SCHEMA);
    expect_mode(dir, 0700);
    snprintf(dir, sizeof dir, "%s/v%d/sm_90", f.root, NJ_CACHE_SCHEMA);
    expect_mode(dir, 0700);
    snprintf(dir, sizeof dir, "%s/v%d/sm_90/01", f.root, NJ_CACHE_SCHEMA);
    expect_mode(dir, 0700);
    entry_path(&f, D1, path);
    snprintf(dir, sizeof dir, "%s/v%d/sm_90/01/" D1 ".njc", f.root, NJ_CACHE_SCHEMA);
    assert_string_equal(path, dir);
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_true(nj_disk_trusted(&st));
    assert_int_equal(st.st_size, NJ_ENTRY_HEADER_SIZE + KEY_LEN + PAYLOAD_LEN);

    /* Misses: another digest, another target, the right digest with another key. */
    assert_int_equal(load(&f, "99999999999999999999999999999999"), 0);
    {
        nj_buf out = {0};
        assert_int_equal(nj_disk_cache_load(f.cache, "sm_80", D1, key, KEY_LEN, &out), 0);
        assert_int_equal(f.cap.warnings, 0);
        assert_int_equal(nj_disk_cache_load(f.cache, "sm_90", D1, key, KEY_LEN - 1, &out), 0);
        assert_int_equal(f.cap.warnings, 1);
        assert_non_null(strstr(f.cap.last, "key differs"));
        nj_buf_free(&out);
    }

    entry_path(&f, D2, path);
    assert_true(file_exists(path));
    nj_disk_cache_remove(f.cache, "sm_90", D2);
    assert_false(file_exists(path));
    assert_int_equal(load(&f, D2), 0);
    assert_int_equal(entries_under(f.root), 2);
    assert_int_equal(f.cap.warnings, 1);
    nj_disk_cache_close(f.cache);
}

static void test_cache_corrupt_entry_is_miss_and_repaired(void **state)
{
    static const struct {
        const char *what;
        off_t offset;
        int truncate_to; /* -1: flip the byte at offset instead */
    } damage[] = {
        {"truncated to 50 bytes", 0, 50},
        {"truncated to the header", 0, NJ_ENTRY_HEADER_SIZE},
        {"emptied", 0, 0},
        {"payload byte flipped", NJ_ENTRY_HEADER_SIZE + KEY_LEN + 7, -1},
        {"key byte flipped", NJ_ENTRY_HEADER_SIZE + 3, -1},
        {"magic flipped", 2, -1},
    };
    cache_fixture f;
    char path[PATH_MAX];
    size_t i;
    (void)state;
    open_cache(&f, "corrupt");
    entry_path(&f, D1, path);
    for (i = 0; i < sizeof damage / sizeof damage[0]; i++) {
        store(&f, D1);
        assert_int_equal(load(&f, D1), 1);
        corrupt_file(path, damage[i].offset, damage[i].truncate_to);
        if (load(&f, D1))
            fail_msg("entry %s still loads", damage[i].what);
        store(&f, D1);
        if (!load(&f, D1))
            fail_msg("entry %s not repaired by a store", damage[i].what);
    }
    /* One warning for the kind "corrupt entry", however many were found. */
    assert_int_equal(f.cap.warnings, 1);
    assert_non_null(strstr(f.cap.last, "ignoring kernel cache entry"));
    assert_int_equal(temps_under(f.root), 0);
    nj_disk_cache_close(f.cache);
}

static void test_cache_unsafe_entry_files(void **state)
{
    cache_fixture f;
    char path[PATH_MAX];
    (void)state;
    open_cache(&f, "unsafe-entry");
    store(&f, D1);
    entry_path(&f, D1, path);

    assert_int_equal(chmod(path, 0666), 0);
    assert_int_equal(load(&f, D1), 0);
    assert_int_equal(f.cap.warnings, 1);
    assert_non_null(strstr(f.cap.last, "not loading kernel cache entry"));
    assert_int_equal(chmod(path, 0600), 0);
    assert_int_equal(load(&f, D1), 1);

    /* A symbolic link in place of an entry is not followed. */
    store(&f, D2);
    {
        char target[PATH_MAX];
        entry_path(&f, D2, target);
        assert_int_equal(unlink(path), 0);
        assert_int_equal(symlink(target, path), 0);
    }
    assert_int_equal(load(&f, D1), 0);
    assert_int_equal(f.cap.warnings, 2);
    assert_non_null(strstr(f.cap.last, "is a symbolic link"));
    assert_non_null(strstr(f.cap.last, path));
    nj_disk_cache_close(f.cache);
}

static void test_cache_world_writable_root_refused(void **state)
{
    cache_fixture f;
    (void)state;
    open_cache(&f, "world-writable");
    store(&f, D1);
    assert_int_equal(load(&f, D1), 1);
    assert_int_equal(chmod(f.root, 0777), 0);

    reopen_cache(&f);
    assert_int_equal(load(&f, D1), 0);
    assert_int_equal(f.cap.warnings, 1);
    assert_non_null(strstr(f.cap.last, "writable by group or others"));
    assert_false(nj_disk_cache_usable(f.cache));
    assert_int_equal(store(&f, D2), NORMJIT_EIO);
    assert_non_null(strstr(normjit_last_error(), "writable by group or others"));
    assert_int_equal(load(&f, D1), 0);
    assert_int_equal(f.cap.warnings, 1);
    assert_int_equal(entries_under(f.root), 1); /* D2 was not written */

    /* The entry was fine all along: with the mode repaired it loads. */
    assert_int_equal(chmod(f.root, 0700), 0);
    reopen_cache(&f);
    assert_int_equal(load(&f, D1), 1);
    assert_int_equal(f.cap.warnings, 0);
    nj_disk_cache_close(f.cache);
}

static void test_cache_root_of_another_user_refused(void **state)
{
    cache_fixture f;
    (void)state;
    if (geteuid() != 0) {
        print_message("skipped: only root can give a directory to another user\n");
        skip();
    }
    open_cache(&f, "foreign");
    store(&f, D1);
    assert_int_equal(chown(f.root, 65534, 65534), 0);
    reopen_cache(&f);
    assert_int_equal(load(&f, D1), 0);
    assert_int_equal(f.cap.warnings, 1);
    assert_non_null(strstr(f.cap.last, "owned by another user"));
    assert_int_equal(chown(f.root, 0, 0), 0);
    nj_disk_cache_close(f.cache);
}

static void test_cache_root_not_creatable(void **state)
{
    cache_fixture f;
    char file[PATH_MAX];
    FILE *fp;
    (void)state;
    /* Below a regular file no directory can be made, even by root. */
    snprintf(file, sizeof file, "%s/plain-file", tmp_root);
    fp = fopen(file, "w");
    assert_non_null(fp);
    fclose(fp);
    open_cache(&f, "plain-file/cache");
    assert_int_equal(load(&f, D1), 0);
    assert_int_equal(store(&f, D1), NORMJIT_EIO);
    assert_non_null(strstr(normjit_last_error(), "cannot create kernel cache directory"));
    assert_non_null(strstr(normjit_last_error(), f.root));
    assert_int_equal(load(&f, D1), 0);
    assert_false(nj_disk_cache_usable(f.cache));
    assert_int_equal(f.cap.warnings, 1);
    assert_non_null(strstr(f.cap.last, "cannot create kernel cache directory"));
    nj_disk_cache_close(f.cache);
}

static void test_cache_read_only_root(void **state)
{
    cache_fixture f;
    int can_still_write;
    (void)state;
    open_cache(&f, "read-only");
    store(&f, D1);
    assert_int_equal(chmod(f.root, 0500), 0);
    can_still_write = access(f.root, W_OK) == 0;

    reopen_cache(&f);
    assert_int_equal(load(&f, D1), 1); /* still read from */
    assert_int_equal(store(&f, D2), can_still_write ? NORMJIT_OK : NORMJIT_EIO);
    assert_int_equal(store(&f, D3), can_still_write ? NORMJIT_OK : NORMJIT_EIO);
    assert_int_equal(temps_under(f.root), 0);
    if (can_still_write) {
        print_message("note: running as root, chmod 0500 does not stop writes here; the "
                      "read-only warning is checked by test_cache_read_only_root_unprivileged\n");
    } else {
        assert_int_equal(f.cap.warnings, 1);
        assert_non_null(strstr(f.cap.last, "is not writable"));
        assert_int_equal(load(&f, D2), 0);
        assert_int_equal(f.cap.warnings, 1);
    }
    assert_int_equal(chmod(f.root, 0700), 0);
    nj_disk_cache_close(f.cache);
}

static int chown_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return lchown(path, 65534, 65534);
}

/*
 * The read-only checks in a child process running as an unprivileged user
 * (for root, whom chmod does not stop). No cmocka calls here: the exit
 * status says which check failed.
 */
static int read_only_child(const char *root)
{
    capture cap;
    nj_logger lg;
    nj_disk_cache *c;
    nj_buf out = {0};
    int hit, result = 0;

    if (setgid(65534) != 0 || setuid(65534) != 0)
        return 10;
    if (access(root, W_OK) == 0)
        return 11;
    memset(&cap, 0, sizeof cap);
    nj_logger_init(&lg, capture_log, &cap, NORMJIT_LOG_WARN);
    if (nj_disk_cache_open(root, &lg, &c) != NORMJIT_OK)
        return 12;
    hit = nj_disk_cache_load(c, "sm_90", D1, key, KEY_LEN, &out);
    if (!hit || out.len != PAYLOAD_LEN || memcmp(out.data, payload, PAYLOAD_LEN))
        result = 13;
    if (nj_disk_cache_store(c, "sm_90", D2, key, KEY_LEN, payload, PAYLOAD_LEN) != NORMJIT_EIO ||
        !strstr(normjit_last_error(), "is not writable"))
        result = 16;
    nj_disk_cache_store(c, "sm_90", D3, key, KEY_LEN, payload, PAYLOAD_LEN);
    if (!result && (cap.warnings != 1 || !strstr(cap.last, "is not writable")))
        result = 14;
    if (!result && nj_disk_cache_load(c, "sm_90", D2, key, KEY_LEN, &out))
        result = 15;
    nj_buf_free(&out);
    nj_disk_cache_close(c);
    return result;
}

static void test_cache_read_only_root_unprivileged(void **state)
{
    char dir[] = "/tmp/normjit-test-ro-XXXXXX";
    cache_fixture f;
    pid_t pid;
    int status;
    (void)state;
    if (geteuid() != 0) {
        print_message("skipped: test_cache_read_only_root checked this as this user\n");
        skip();
    }
    assert_non_null(mkdtemp(dir));
    memset(&f.cap, 0, sizeof f.cap);
    nj_logger_init(&f.log, capture_log, &f.cap, NORMJIT_LOG_WARN);
    snprintf(f.root, sizeof f.root, "%s/cache", dir);
    assert_int_equal(nj_disk_cache_open(f.root, &f.log, &f.cache), NORMJIT_OK);
    store(&f, D1);
    nj_disk_cache_close(f.cache);
    assert_int_equal(nftw(dir, chown_entry, 16, FTW_PHYS), 0);
    assert_int_equal(chmod(f.root, 0500), 0);

    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(read_only_child(f.root));
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) != 0)
        fail_msg("read-only check %d failed as user 65534 (see read_only_child)",
                 WEXITSTATUS(status));
    assert_int_equal(temps_under(f.root), 0);
    assert_int_equal(njc_files_under(f.root), 1);
    assert_int_equal(nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
}

/* Fault injection: each fake fails one way; the calls are counted. */
static int io_calls;

static ssize_t write_enospc(int fd, const void *data, size_t len)
{
    (void)fd, (void)data, (void)len;
    io_calls++;
    errno = ENOSPC;
    return -1;
}

static ssize_t write_nothing(int fd, const void *data, size_t len)
{
    (void)fd, (void)data, (void)len;
    io_calls++;
    return 0;
}

/* Short writes of at most 7 bytes, after one EINTR: a correct writer still stores it all. */
static ssize_t write_short(int fd, const void *data, size_t len)
{
    if (io_calls++ == 0) {
        errno = EINTR;
        return -1;
    }
    return write(fd, data, len < 7 ? len : 7);
}

static int fsync_eio(int fd)
{
    (void)fd;
    io_calls++;
    errno = EIO;
    return -1;
}

static int rename_exdev(const char *from, const char *to)
{
    (void)from, (void)to;
    io_calls++;
    errno = EXDEV;
    return -1;
}

static void test_cache_injected_failures(void **state)
{
    static const struct {
        const char *name;
        nj_disk_io io;
        const char *step; /* in the warning */
    } faults[] = {
        {"write ENOSPC", {write_enospc, fsync, rename}, "(write: No space left on device)"},
        {"write returns 0", {write_nothing, fsync, rename}, "(write: Input/output error)"},
        {"fsync EIO", {write, fsync_eio, rename}, "(fsync: Input/output error)"},
        {"rename EXDEV", {write, fsync, rename_exdev}, "(rename: Invalid cross-device link)"},
    };
    size_t i;
    (void)state;
    for (i = 0; i < sizeof faults / sizeof faults[0]; i++) {
        cache_fixture f;
        char name[64], path[PATH_MAX];
        snprintf(name, sizeof name, "fault-%zu", i);
        open_cache(&f, name);
        nj_disk_cache_set_io(f.cache, &faults[i].io);
        io_calls = 0;
        assert_int_equal(store(&f, D1), NORMJIT_EIO);
        assert_true(io_calls > 0);
        entry_path(&f, D1, path);
        /* The failed store names the entry and the step that failed. */
        if (!strstr(normjit_last_error(), path) ||
            !strstr(normjit_last_error(), faults[i].step))
            fail_msg("%s: last error \"%s\"", faults[i].name, normjit_last_error());
        if (f.cap.warnings != 1 || !strstr(f.cap.last, faults[i].step))
            fail_msg("%s: %d warnings, last \"%s\", expected one with \"%s\"", faults[i].name,
                     f.cap.warnings, f.cap.last, faults[i].step);
        assert_int_equal(temps_under(f.root), 0);
        assert_int_equal(entries_under(f.root), 0);
        assert_int_equal(load(&f, D1), 0);
        assert_int_equal(store(&f, D2), NORMJIT_EIO); /* again: no second warning */
        assert_int_equal(f.cap.warnings, 1);
        assert_int_equal(temps_under(f.root), 0);

        nj_disk_cache_set_io(f.cache, NULL); /* the real file operations again */
        assert_int_equal(store(&f, D1), NORMJIT_OK);
        assert_int_equal(load(&f, D1), 1);
        assert_int_equal(f.cap.warnings, 1);
        nj_disk_cache_close(f.cache);
    }
}

static void test_cache_short_writes(void **state)
{
    const nj_disk_io io = {write_short, fsync, rename};
    cache_fixture f;
    (void)state;
    open_cache(&f, "short-writes");
    nj_disk_cache_set_io(f.cache, &io);
    io_calls = 0;
    store(&f, D1);
    assert_true(io_calls > (NJ_ENTRY_HEADER_SIZE + KEY_LEN + PAYLOAD_LEN) / 7);
    assert_int_equal(load(&f, D1), 1);
    assert_int_equal(f.cap.warnings, 0);
    nj_disk_cache_close(f.cache);
}

/* ------------------------------------------------------------------------ */
/* Hostile file system states                                                */

/* A load that would hang (a blocking open) is ended by SIGALRM after this, failing the test. */
#define WATCHDOG_SECONDS 30

/* Remove a file or a whole tree (no links followed); a missing path is fine. */
static int remove_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : -1;
    return nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int make_fifo(const char *path)
{
    return mkfifo(path, 0600);
}

static int make_socket(const char *path)
{
    struct sockaddr_un a;
    int fd = socket(AF_UNIX, SOCK_STREAM, 0), rc;
    if (fd < 0 || strlen(path) >= sizeof a.sun_path)
        return -1;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    memcpy(a.sun_path, path, strlen(path) + 1);
    rc = bind(fd, (struct sockaddr *)&a, sizeof a);
    close(fd); /* the socket file stays */
    return rc;
}

static int make_dir(const char *path)
{
    return mkdir(path, 0700);
}

static int make_device(const char *path)
{
    return mknod(path, S_IFCHR | 0600, makedev(1, 5)); /* the numbers of /dev/zero */
}

static int make_link_to_zero(const char *path)
{
    return symlink("/dev/zero", path);
}

static int make_empty(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    return fd < 0 ? -1 : close(fd);
}

/* A sparse file one byte over the largest entry: refused without being read. */
static int make_oversized(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600), rc;
    if (fd < 0)
        return -1;
    rc = ftruncate(fd, (off_t)NJ_ENTRY_MAX_FILE + 1);
    close(fd);
    return rc;
}

/*
 * Something other than an entry at an entry's path: a miss with one warning
 * naming the path and what is there, never a hang; a store replaces it,
 * except a directory, which a store cannot replace: it says so (the kernel
 * is then not in the cache, and a warm reports it).
 */
static void test_cache_hostile_entry_kinds(void **state)
{
    static const struct {
        const char *what;
        int (*make)(const char *path);
        const char *warning;
        int replaceable;
    } kinds[] = {
        {"FIFO", make_fifo, "is a FIFO, not a regular file", 1},
        {"socket", make_socket, "is a socket, not a regular file", 1},
        {"directory", make_dir, "is a directory, not a regular file", 0},
        {"device node", make_device, "is a character device, not a regular file", 1},
        {"link to /dev/zero", make_link_to_zero, "is a symbolic link", 1},
        {"empty file", make_empty, "(truncated)", 1},
        {"oversized file", make_oversized, "over the limit of", 1},
    };
    size_t i;
    (void)state;
    for (i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        cache_fixture f;
        char name[32], path[PATH_MAX];
        snprintf(name, sizeof name, "hostile-entry-%zu", i);
        open_cache(&f, name);
        assert_int_equal(store(&f, D1), NORMJIT_OK); /* the folders exist */
        entry_path(&f, D1, path);
        assert_int_equal(unlink(path), 0);
        if (kinds[i].make(path) != 0) {
            print_message("note: cannot make a %s here (%s); that case is left out\n",
                          kinds[i].what, strerror(errno));
            nj_disk_cache_close(f.cache);
            continue;
        }
        alarm(WATCHDOG_SECONDS);
        if (load(&f, D1))
            fail_msg("a %s at the entry's path loaded as an entry", kinds[i].what);
        alarm(0);
        if (f.cap.warnings != 1 || !strstr(f.cap.last, kinds[i].warning) ||
            !strstr(f.cap.last, path))
            fail_msg("%s: %d warnings, last \"%s\"; expected one naming %s and saying \"%s\"",
                     kinds[i].what, f.cap.warnings, f.cap.last, path, kinds[i].warning);
        if (kinds[i].replaceable) {
            assert_int_equal(store(&f, D1), NORMJIT_OK);
            assert_int_equal(load(&f, D1), 1);
        } else {
            assert_int_equal(store(&f, D1), NORMJIT_EIO);
            if (!strstr(normjit_last_error(), path) ||
                !strstr(normjit_last_error(), "rename: Is a directory"))
                fail_msg("%s: last error \"%s\"", kinds[i].what, normjit_last_error());
            assert_int_equal(f.cap.warnings, 2);
            assert_non_null(strstr(f.cap.last, "rename: Is a directory"));
            assert_int_equal(load(&f, D1), 0);
        }
        assert_int_equal(temps_under(f.root), 0);
        nj_disk_cache_close(f.cache);
    }
}

/* <root>/v<S>, <root>/v<S>/sm_90 or <root>/v<S>/sm_90/01: the folder of D1 at `level`. */
static void folder_at(const char *root, int level, char *out, size_t size)
{
    static const char *const tails[] = {"", "/sm_90", "/sm_90/01"};
    if (snprintf(out, size, "%s/v%d%s", root, NJ_CACHE_SCHEMA, tails[level]) >= (int)size)
        fail_msg("path too long under %s", root);
}

/*
 * The layout's folders are never followed through a link, nor used when
 * they are not a directory of this user only: a load misses with a warning
 * naming the folder, a store fails saying why, and nothing is written
 * through the link. The root itself may be a link.
 */
static void test_cache_hostile_folders(void **state)
{
    static const char *const what[] = {"a symbolic link", "a regular file", "group-writable",
                                       "another user's"};
    static const char *const says[] = {
        "is a symbolic link, which is not followed below the cache root",
        "is a regular file where the cache has a folder", "is writable by group or others",
        "is owned by another user"};
    int level, kind;
    (void)state;
    for (level = 0; level < 3; level++) {
        for (kind = 0; kind < 4; kind++) {
            cache_fixture f, elsewhere;
            char name[48], folder[PATH_MAX], other[PATH_MAX];
            if (kind == 3 && geteuid() != 0)
                continue; /* only root can give a folder away; the kind is the same check */
            snprintf(name, sizeof name, "hostile-folder-%d-%d", level, kind);
            open_cache(&f, name);
            snprintf(name, sizeof name, "elsewhere-%d-%d", level, kind);
            open_cache(&elsewhere, name);
            assert_int_equal(store(&elsewhere, D1), NORMJIT_OK);
            assert_int_equal(store(&f, D2), NORMJIT_OK); /* the root and v<S> exist */
            folder_at(f.root, level, folder, sizeof folder);
            folder_at(elsewhere.root, level, other, sizeof other);
            assert_int_equal(remove_tree(folder), 0);
            if (kind == 0) {
                assert_int_equal(symlink(other, folder), 0);
            } else if (kind == 1) {
                assert_int_equal(make_empty(folder), 0);
            } else {
                assert_int_equal(mkdir(folder, 0700), 0);
                if (kind == 2)
                    assert_int_equal(chmod(folder, 0770), 0);
                else
                    assert_int_equal(chown(folder, 65534, 65534), 0);
            }
            if (load(&f, D1))
                fail_msg("%s folder at level %d was used", what[kind], level);
            if (f.cap.warnings != 1 || !strstr(f.cap.last, folder) ||
                !strstr(f.cap.last, says[kind]))
                fail_msg("%s folder at level %d: %d warnings, last \"%s\"", what[kind], level,
                         f.cap.warnings, f.cap.last);
            assert_int_equal(store(&f, D1), NORMJIT_EIO);
            if (!strstr(normjit_last_error(), folder) ||
                !strstr(normjit_last_error(), says[kind]))
                fail_msg("%s folder at level %d: last error \"%s\"", what[kind], level,
                         normjit_last_error());
            /* Nothing went through the link. */
            assert_int_equal(entries_under(elsewhere.root), 1);
            assert_int_equal(temps_under(elsewhere.root), 0);
            if (kind == 3)
                assert_int_equal(chown(folder, 0, 0), 0);
            nj_disk_cache_close(f.cache);
            nj_disk_cache_close(elsewhere.cache);
        }
    }

    /* The root may be a link: it is followed. */
    {
        cache_fixture real, linked;
        char link_root[PATH_MAX];
        open_cache(&real, "real-root");
        assert_int_equal(store(&real, D1), NORMJIT_OK);
        snprintf(link_root, sizeof link_root, "%s/linked-root", tmp_root);
        assert_int_equal(symlink(real.root, link_root), 0);
        open_cache(&linked, "linked-root");
        assert_int_equal(load(&linked, D1), 1);
        assert_int_equal(store(&linked, D2), NORMJIT_OK);
        assert_int_equal(load(&real, D2), 1);
        assert_int_equal(linked.cap.warnings, 0);
        nj_disk_cache_close(real.cache);
        nj_disk_cache_close(linked.cache);
    }
}

/* A root that is a regular file or a dangling link: unusable, a warning, stores fail saying so. */
static void test_cache_unusable_roots(void **state)
{
    static const char *const says[] = {"is a regular file, not a directory",
                                       "is a symbolic link to a folder that does not exist"};
    int kind;
    (void)state;
    for (kind = 0; kind < 2; kind++) {
        cache_fixture f;
        open_cache(&f, kind == 0 ? "root-file" : "root-dangling");
        if (kind == 0)
            assert_int_equal(make_empty(f.root), 0);
        else
            assert_int_equal(symlink("/nonexistent/normjit-cache-target", f.root), 0);
        assert_int_equal(load(&f, D1), 0);
        assert_false(nj_disk_cache_usable(f.cache));
        assert_int_equal(store(&f, D1), NORMJIT_EIO);
        if (!strstr(normjit_last_error(), f.root) || !strstr(normjit_last_error(), says[kind]))
            fail_msg("root kind %d: last error \"%s\"", kind, normjit_last_error());
        assert_int_equal(f.cap.warnings, 1);
        assert_non_null(strstr(f.cap.last, says[kind]));
        nj_disk_cache_close(f.cache);
    }
}

/*
 * A bucket folder this user cannot read (chmod 000). Root reads through any
 * mode, so as root the check runs in a child as user 65534 on a tree given
 * to that user. No cmocka calls in the child: its exit status says which
 * check failed.
 */
static int unreadable_folder_child(const char *root, const char *folder, int drop)
{
    capture cap;
    nj_logger lg;
    nj_disk_cache *c;
    nj_buf out = {0};
    int result = 0;

    if (drop && (setgid(65534) != 0 || setuid(65534) != 0))
        return 10;
    memset(&cap, 0, sizeof cap);
    nj_logger_init(&lg, capture_log, &cap, NORMJIT_LOG_WARN);
    if (nj_disk_cache_open(root, &lg, &c) != NORMJIT_OK)
        return 11;
    if (nj_disk_cache_load(c, "sm_90", D1, key, KEY_LEN, &out))
        result = 12;
    else if (cap.warnings != 1 || !strstr(cap.last, folder) ||
             !strstr(cap.last, "Permission denied"))
        result = 13;
    else if (nj_disk_cache_store(c, "sm_90", D1, key, KEY_LEN, payload, PAYLOAD_LEN) !=
                 NORMJIT_EIO ||
             !strstr(normjit_last_error(), folder) ||
             !strstr(normjit_last_error(), "Permission denied"))
        result = 14;
    nj_buf_free(&out);
    nj_disk_cache_close(c);
    return result;
}

static void test_cache_unreadable_folder(void **state)
{
    char dir[] = "/tmp/normjit-test-unreadable-XXXXXX", folder[PATH_MAX];
    cache_fixture f;
    int drop = geteuid() == 0, status;
    pid_t pid;
    (void)state;
    assert_non_null(mkdtemp(dir));
    memset(&f.cap, 0, sizeof f.cap);
    nj_logger_init(&f.log, capture_log, &f.cap, NORMJIT_LOG_WARN);
    snprintf(f.root, sizeof f.root, "%s/cache", dir);
    assert_int_equal(nj_disk_cache_open(f.root, &f.log, &f.cache), NORMJIT_OK);
    assert_int_equal(store(&f, D1), NORMJIT_OK);
    nj_disk_cache_close(f.cache);
    if (drop) {
        print_message("note: running as root: the check runs as user 65534\n");
        assert_int_equal(chmod(dir, 0711), 0);
        assert_int_equal(nftw(f.root, chown_entry, 16, FTW_PHYS), 0);
    }
    folder_at(f.root, 2, folder, sizeof folder);
    assert_int_equal(chmod(folder, 0), 0);

    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(unreadable_folder_child(f.root, folder, drop));
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_int_equal(chmod(folder, 0700), 0);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) != 0)
        fail_msg("unreadable folder check %d failed (see unreadable_folder_child)",
                 WEXITSTATUS(status));
    assert_int_equal(njc_files_under(f.root), 1);
    assert_int_equal(nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
}

static void test_cache_resolve(void **state)
{
    char cwd[PATH_MAX], expect[PATH_MAX + 32], home[PATH_MAX], *saved_home = NULL;
    char *out;
    (void)state;
    if (getenv("HOME"))
        saved_home = strdup(getenv("HOME"));
    assert_non_null(getcwd(cwd, sizeof cwd));
    snprintf(home, sizeof home, "%s/home", tmp_root);
    setenv("HOME", home, 1);
    unsetenv("XDG_CACHE_HOME");

    setenv("NORMJIT_CACHE_DIR", "/from/env", 1);
    assert_int_equal(nj_disk_cache_resolve("/explicit/dir", &out), NORMJIT_OK);
    assert_string_equal(out, "/explicit/dir");
    free(out);
    assert_int_equal(nj_disk_cache_resolve("relative/dir", &out), NORMJIT_OK);
    snprintf(expect, sizeof expect, "%s/relative/dir", cwd);
    assert_string_equal(out, expect);
    free(out);
    assert_int_equal(nj_disk_cache_resolve(NULL, &out), NORMJIT_OK);
    assert_string_equal(out, "/from/env");
    free(out);
    assert_int_equal(nj_disk_cache_resolve("", &out), NORMJIT_OK);
    assert_string_equal(out, "/from/env");
    free(out);

    unsetenv("NORMJIT_CACHE_DIR");
    setenv("XDG_CACHE_HOME", "/xdg", 1);
    assert_int_equal(nj_disk_cache_resolve(NULL, &out), NORMJIT_OK);
    assert_string_equal(out, "/xdg/normjit");
    free(out);
    setenv("XDG_CACHE_HOME", "not-absolute", 1); /* the XDG spec says to ignore it */
    assert_int_equal(nj_disk_cache_resolve(NULL, &out), NORMJIT_OK);
    snprintf(expect, sizeof expect, "%s/.cache/normjit", home);
    assert_string_equal(out, expect);
    free(out);
    unsetenv("XDG_CACHE_HOME");
    assert_false(file_exists(home)); /* resolving creates nothing */
    if (saved_home)
        setenv("HOME", saved_home, 1);
    free(saved_home);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_entry_round_trip),
        cmocka_unit_test(test_entry_too_large_to_encode),
        cmocka_unit_test(test_entry_truncated),
        cmocka_unit_test(test_entry_flipped_bytes),
        cmocka_unit_test(test_entry_wrong_key_schema_or_length),
        cmocka_unit_test(test_entry_problem_phrases),
        cmocka_unit_test(test_cache_store_load_round_trip),
        cmocka_unit_test(test_cache_corrupt_entry_is_miss_and_repaired),
        cmocka_unit_test(test_cache_unsafe_entry_files),
        cmocka_unit_test(test_cache_world_writable_root_refused),
        cmocka_unit_test(test_cache_root_of_another_user_refused),
        cmocka_unit_test(test_cache_root_not_creatable),
        cmocka_unit_test(test_cache_read_only_root),
        cmocka_unit_test(test_cache_read_only_root_unprivileged),
        cmocka_unit_test(test_cache_injected_failures),
        cmocka_unit_test(test_cache_short_writes),
        cmocka_unit_test(test_cache_resolve),
        cmocka_unit_test(test_cache_hostile_entry_kinds),
        cmocka_unit_test(test_cache_hostile_folders),
        cmocka_unit_test(test_cache_unusable_roots),
        cmocka_unit_test(test_cache_unreadable_folder),
    };
    /* The cache must never fall back to the user's own directory here. */
    setenv("NORMJIT_CACHE_DIR", "/nonexistent/normjit-test-must-not-be-used", 1);
    unsetenv("NORMJIT_LOG");
    return cmocka_run_group_tests(tests, setup, teardown);
}
