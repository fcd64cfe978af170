/*
 * normjit cache list | verify | prune | clear, run as a child process on a
 * cache that a real warm (NVRTC, no GPU) filled: listing, corruption found
 * and fixed, stale temporary files swept, least recently used entries
 * pruned, everything cleared, usage errors; and the bounded key parser.
 */
#include "cache_admin.h"
#include "relutil.h"
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#define MAX_LINES 256

/* A folder of this test's temporary directory, fresh. */
static void fresh_dir(const char *name, char *out, size_t size)
{
    snprintf(out, size, "%s/%s", rel_tmp, name);
    assert_int_equal(rel_rm_rf(out), 0);
}

/* Warm rmsnorm f16 at hidden 1024 and 2048 into `dir`: the kernel count. */
static size_t warm(const char *dir)
{
    const char *const args[] = {"warm", "--arch", "sm_90", "--op", "rmsnorm", "--dtype", "f16",
                                "--hidden", "1024,2048", "--cache-dir", dir, "-j", "2", NULL};
    char *out = rel_expect(0, args);
    long kernels = rel_warm_kernels(out, NULL, NULL);
    size_t entries, temps;
    if (kernels < 2)
        fail_msg("no summary line, or fewer than 2 kernels, in:\n%s", out);
    free(out);
    rel_count(dir, &entries, &temps);
    assert_int_equal(entries, (size_t)kernels);
    assert_int_equal(temps, 0);
    return entries;
}

/* `normjit cache <sub> --cache-dir dir [extra]` expecting `status`. */
static char *cache_cmd(int status, const char *sub, const char *dir, const char *extra1,
                       const char *extra2)
{
    const char *args[8] = {"cache", sub, "--cache-dir", dir, extra1, extra2, NULL};
    return rel_expect(status, args);
}

/* The digest of an entry's path (its file name without .njc), in a rotating static buffer. */
static const char *digest_of(const char *path)
{
    static char bufs[4][33];
    static int next;
    const char *slash = strrchr(path, '/');
    char *out = bufs[next++ % 4];
    snprintf(out, 33, "%s", slash ? slash + 1 : path);
    return out;
}

/* Flip one bit of the byte `from_end` bytes before the end of the file. */
static void flip_byte(const char *path, long offset, int whence)
{
    int fd = open(path, O_RDWR);
    unsigned char b;
    assert_true(fd >= 0);
    assert_true(lseek(fd, offset, whence) >= 0);
    assert_int_equal(read(fd, &b, 1), 1);
    b ^= 0x20;
    assert_true(lseek(fd, -1, SEEK_CUR) >= 0);
    assert_int_equal(write(fd, &b, 1), 1);
    close(fd);
}

/* A temporary file like a writer's, next to `entry`, `seconds_ago` old. */
static void make_temp(const char *entry, const char *suffix, long seconds_ago, char *out,
                      size_t size)
{
    FILE *f;
    snprintf(out, size, "%s.tmp.%s", entry, suffix);
    f = fopen(out, "wb");
    assert_non_null(f);
    fputs("NJCACHE half an entry", f);
    fclose(f);
    rel_age(out, seconds_ago);
}

static int exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static void test_list(void **state)
{
    char dir[128], line[512], **paths;
    char *out, *p;
    size_t kernels, n_lines = 0, per_hidden[2] = {0, 0}, i;
    long long last_hidden = 0;
    (void)state;

    fresh_dir("list", dir, sizeof dir);
    kernels = warm(dir);
    print_message("warm made %zu kernels for 2 combinations\n", kernels);
    out = cache_cmd(0, "list", dir, NULL, NULL);
    paths = rel_paths(dir, 0);

    /* One line per entry: op, dtypes, hidden, knobs, target, size, age, digest. */
    for (p = out; *p;) {
        char op[16], x[8], y[8], w[8], knobs[5][16], storage[8], target[16], unit[8], age[8],
            digest[40];
        long long hidden;
        double size;
        size_t len = strcspn(p, "\n");
        snprintf(line, sizeof line, "%.*s", (int)len, p);
        p += len + (p[len] == '\n');
        if (sscanf(line,
                   "%15s %7[^-]->%7[^,], %7s %lld %15s %15s %15s %15s %15s %7s %15s %lf %7s %7s "
                   "%39s",
                   op, x, y, w, &hidden, knobs[0], knobs[1], knobs[2], knobs[3], knobs[4],
                   storage, target, &size, unit, age, digest) != 16)
            continue;
        n_lines++;
        assert_true(n_lines <= MAX_LINES);
        assert_string_equal(op, "rmsnorm");
        assert_string_equal(x, "f16");
        assert_string_equal(y, "f16");
        assert_string_equal(w, "f16");
        assert_string_equal(target, "sm_90");
        assert_true(hidden == 1024 || hidden == 2048);
        assert_true(hidden >= last_hidden); /* sorted by hidden size */
        last_hidden = hidden;
        per_hidden[hidden == 2048]++;
        assert_true(!strcmp(unit, "KiB") || !strcmp(unit, "B"));
        assert_true(strchr("smhd", age[strlen(age) - 1]) != NULL);
        /* The digest names a file of the cache. */
        for (i = 0; paths[i] && strcmp(digest_of(paths[i]), digest); i++)
            ;
        if (!paths[i] || strlen(digest) != 32)
            fail_msg("listed digest %s is no entry's; output:\n%s", digest, out);
    }
    if (n_lines != kernels || !per_hidden[0] || !per_hidden[1])
        fail_msg("expected %zu entry lines covering hidden 1024 and 2048; output:\n%s", kernels,
                 out);
    snprintf(line, sizeof line, "\n%zu entries, ", kernels);
    assert_non_null(strstr(out, line));
    assert_non_null(strstr(out, "; 0 temporary files"));
    assert_non_null(strstr(out, "swept 0 stale temporary files"));
    rel_free_paths(paths);
    free(out);

    /* The default directory is the library's: NORMJIT_CACHE_DIR. */
    {
        const char *const args[] = {"cache", "list", NULL};
        out = rel_expect(0, args);
        assert_non_null(strstr(out, getenv("NORMJIT_CACHE_DIR")));
        assert_non_null(strstr(out, "0 entries"));
        free(out);
    }
}

static void test_verify_corrupt_fix(void **state)
{
    char dir[128], expect[512], **paths;
    char *out;
    size_t kernels, entries, temps;
    (void)state;

    fresh_dir("verify", dir, sizeof dir);
    kernels = warm(dir);
    out = cache_cmd(0, "verify", dir, NULL, NULL);
    snprintf(expect, sizeof expect, "verify: %zu entries checked: %zu valid, 0 corrupt", kernels,
             kernels);
    if (!strstr(out, expect))
        fail_msg("expected \"%s\" in:\n%s", expect, out);
    free(out);

    /* A payload byte flipped (the payload ends the file): found, named, with the reason. */
    paths = rel_paths(dir, 0);
    assert_non_null(paths[0]);
    assert_non_null(paths[1]);
    flip_byte(paths[0], -100, SEEK_END);
    out = cache_cmd(1, "verify", dir, NULL, NULL);
    snprintf(expect, sizeof expect, "corrupt: %s: payload checksum mismatch", paths[0]);
    if (!strstr(out, expect) || rel_count_str(out, "corrupt: ") != 1)
        fail_msg("expected exactly \"%s\" in:\n%s", expect, out);
    free(out);

    /* A header byte (the magic) flipped: 'list' shows the entry as corrupt, verify says why. */
    flip_byte(paths[1], 2, SEEK_SET);
    out = cache_cmd(0, "list", dir, NULL, NULL);
    snprintf(expect, sizeof expect, "%s  (not a normjit cache entry (bad magic))",
             digest_of(paths[1]));
    if (!strstr(out, "\ncorrupt ") || !strstr(out, expect))
        fail_msg("expected a corrupt line ending \"%s\" in:\n%s", expect, out);
    free(out);

    /* --fix removes both and still exits 1; then all is well. */
    out = cache_cmd(1, "verify", dir, "--fix", NULL);
    snprintf(expect, sizeof expect, "corrupt: %s: payload checksum mismatch; removed", paths[0]);
    assert_non_null(strstr(out, expect));
    snprintf(expect, sizeof expect, "corrupt: %s: not a normjit cache entry (bad magic); removed",
             paths[1]);
    if (!strstr(out, expect) || !strstr(out, "2 corrupt (2 removed)"))
        fail_msg("expected \"%s\" in:\n%s", expect, out);
    free(out);
    assert_false(exists(paths[0]));
    assert_false(exists(paths[1]));
    out = cache_cmd(0, "verify", dir, NULL, NULL);
    assert_non_null(strstr(out, " 0 corrupt"));
    free(out);
    rel_count(dir, &entries, &temps);
    assert_int_equal(entries, kernels - 2);
    rel_free_paths(paths);

    /* A valid entry in the wrong place, and one of an older schema (stale, left alone). */
    {
        char misplaced[256], stale[256], cmd[600];
        paths = rel_paths(dir, 0);
        snprintf(misplaced, sizeof misplaced, "%s/v2/sm_90/zz", dir);
        assert_int_equal(mkdir(misplaced, 0700), 0);
        snprintf(misplaced, sizeof misplaced, "%s/v2/sm_90/zz/%s.njc", dir,
                 digest_of(paths[0]));
        snprintf(cmd, sizeof cmd, "cp '%s' '%s'", paths[0], misplaced);
        assert_int_equal(system(cmd), 0);
        snprintf(stale, sizeof stale, "%s/v1/sm_90/ab", dir);
        snprintf(cmd, sizeof cmd, "mkdir -p '%s' && echo old > '%s/%s'", stale, stale,
                 "abababababababababababababababab.njc");
        assert_int_equal(system(cmd), 0);
        out = cache_cmd(1, "verify", dir, "--fix", NULL);
        snprintf(expect, sizeof expect, "corrupt: %s: in the wrong folder", misplaced);
        if (!strstr(out, expect) || !strstr(out, "stale: ") || !strstr(out, "1 stale"))
            fail_msg("expected \"%s\" and a stale entry in:\n%s", expect, out);
        free(out);
        assert_false(exists(misplaced));
        assert_true(exists(paths[0]));
        out = cache_cmd(0, "verify", dir, NULL, NULL);
        assert_non_null(strstr(out, "0 corrupt, 1 stale"));
        free(out);
        rel_free_paths(paths);
    }
}

/* Every command removes temporary files older than an hour and leaves younger ones. */
static void test_sweep(void **state)
{
    static const char *const subs[] = {"list", "verify", "prune", "clear"};
    char dir[128], old_tmp[512], young_tmp[512], expect[64], **paths;
    char *out;
    size_t s, entries, temps;
    (void)state;

    fresh_dir("sweep", dir, sizeof dir);
    warm(dir);
    for (s = 0; s < sizeof subs / sizeof subs[0]; s++) {
        paths = rel_paths(dir, 0);
        assert_non_null(paths[0]);
        make_temp(paths[0], "OLD123", 2 * 3600, old_tmp, sizeof old_tmp);
        make_temp(paths[0], "NEW123", 0, young_tmp, sizeof young_tmp);
        rel_free_paths(paths);
        rel_count(dir, &entries, &temps);
        assert_int_equal(temps, 2);

        out = cache_cmd(0, subs[s], dir, s == 2 ? "--max-size" : NULL, s == 2 ? "1G" : NULL);
        snprintf(expect, sizeof expect, "swept 1 stale temporary file (older than 1 hour)");
        if (!strstr(out, expect))
            fail_msg("cache %s: expected \"%s\" in:\n%s", subs[s], expect, out);
        free(out);
        assert_false(exists(old_tmp));
        if (s < 3) {
            assert_true(exists(young_tmp)); /* a writer may be at work on it */
            assert_int_equal(unlink(young_tmp), 0);
        } else {
            assert_false(exists(young_tmp)); /* clear removes every temporary file */
        }
    }
    rel_count(dir, &entries, &temps);
    assert_int_equal(entries, 0);
    assert_int_equal(temps, 0);
}

/* prune keeps the most recently used entries (mtimes set to make the order certain). */
static void test_prune(void **state)
{
    char dir[128], size_arg[32], expect[128], **paths;
    char *out;
    size_t kernels, n, i, entries, temps;
    struct stat newest, second;
    (void)state;

    fresh_dir("prune", dir, sizeof dir);
    kernels = warm(dir);
    paths = rel_paths(dir, 0);
    for (n = 0; paths[n]; n++)
        rel_age(paths[n], (long)(n + 1) * 600); /* paths[0] is the most recently used */
    assert_int_equal(n, kernels);
    assert_int_equal(stat(paths[0], &newest), 0);
    assert_int_equal(stat(paths[1], &second), 0);

    /* Room for the two newest. */
    snprintf(size_arg, sizeof size_arg, "%lld", (long long)(newest.st_size + second.st_size));
    out = cache_cmd(0, "prune", dir, "--max-size", size_arg);
    snprintf(expect, sizeof expect, "prune: removed %zu entries", kernels - 2);
    if (!strstr(out, expect) || !strstr(out, "cache now 2 entries") ||
        rel_count_str(out, "\nremoved ") + (strncmp(out, "removed ", 8) == 0) != kernels - 2)
        fail_msg("expected \"%s\" in:\n%s", expect, out);
    /* Oldest first. */
    for (i = n - 1; i > 2; i--) {
        const char *a = strstr(out, digest_of(paths[i])), *b = strstr(out, digest_of(paths[i - 1]));
        assert_non_null(a);
        assert_non_null(b);
        assert_true(a < b);
    }
    free(out);
    assert_true(exists(paths[0]));
    assert_true(exists(paths[1]));
    for (i = 2; i < n; i++)
        assert_false(exists(paths[i]));

    /* Room for one: the newest stays. */
    snprintf(size_arg, sizeof size_arg, "%lld", (long long)newest.st_size);
    out = cache_cmd(0, "prune", dir, "--max-size", size_arg);
    if (!strstr(out, "prune: removed 1 entry") || !strstr(out, "cache now 1 entry"))
        fail_msg("expected one entry removed in:\n%s", out);
    assert_non_null(strstr(out, digest_of(paths[1])));
    free(out);
    assert_true(exists(paths[0]));
    assert_false(exists(paths[1]));
    rel_count(dir, &entries, &temps);
    assert_int_equal(entries, 1);

    /* Already small enough: nothing removed. */
    out = cache_cmd(0, "prune", dir, "--max-size", "1M");
    assert_non_null(strstr(out, "prune: removed 0 entries"));
    free(out);
    out = cache_cmd(0, "verify", dir, NULL, NULL);
    assert_non_null(strstr(out, "1 entry checked: 1 valid"));
    free(out);
    rel_free_paths(paths);
}

static void test_clear(void **state)
{
    char dir[128], tmp[512], other[512], expect[128], **paths;
    char *out;
    size_t kernels, entries, temps;
    FILE *f;
    (void)state;

    fresh_dir("clear", dir, sizeof dir);
    kernels = warm(dir);
    paths = rel_paths(dir, 0);
    make_temp(paths[0], "NEW456", 0, tmp, sizeof tmp);
    /* Not normjit's: must survive. */
    snprintf(other, sizeof other, "%s/v2/sm_90/notes.txt", dir);
    f = fopen(other, "w");
    assert_non_null(f);
    fputs("mine\n", f);
    fclose(f);

    out = cache_cmd(0, "clear", dir, NULL, NULL);
    snprintf(expect, sizeof expect, "clear: removed %zu entries (", kernels);
    if (!strstr(out, expect) || !strstr(out, "1 temporary file and"))
        fail_msg("expected \"%s\" in:\n%s", expect, out);
    free(out);
    rel_count(dir, &entries, &temps);
    assert_int_equal(entries, 0);
    assert_int_equal(temps, 0);
    assert_true(exists(other));
    assert_true(exists(dir));
    assert_false(exists(paths[0]));
    rel_free_paths(paths);

    out = cache_cmd(0, "list", dir, NULL, NULL);
    assert_non_null(strstr(out, "\n0 entries, 0 B; 0 temporary files"));
    free(out);
}

static void test_usage_errors(void **state)
{
    static const struct {
        int status;
        const char *args[8];
        const char *output;
    } cases[] = {
        {0, {"cache", "--help"}, "usage: normjit cache <command>"},
        {0, {"cache", "list", "--help"}, "usage: normjit cache list"},
        {0, {"cache", "verify", "--help"}, "usage: normjit cache verify"},
        {0, {"cache", "prune", "--help"}, "usage: normjit cache prune"},
        {0, {"cache", "clear", "--help"}, "usage: normjit cache clear"},
        {2, {"cache"}, "missing command"},
        {2, {"cache", "nosuch"}, "unknown command 'nosuch'"},
        {2, {"cache", "--bogus"}, "unknown command '--bogus'"},
        {2, {"cache", "list", "--bogus"}, "(see 'normjit cache list --help')"},
        {2, {"cache", "verify", "--bogus"}, "(see 'normjit cache verify --help')"},
        {2, {"cache", "prune", "--bogus"}, "(see 'normjit cache prune --help')"},
        {2, {"cache", "clear", "--bogus"}, "(see 'normjit cache clear --help')"},
        {2, {"cache", "list", "extra"}, "unexpected argument 'extra'"},
        {2, {"cache", "list", "--fix"}, "--fix goes with 'cache verify'"},
        {2, {"cache", "verify", "--max-size", "1M"}, "--max-size goes with 'cache prune'"},
        {2, {"cache", "prune"}, "--max-size SIZE is required"},
        {2, {"cache", "prune", "--max-size", "12Q"}, "unknown size suffix"},
        {2, {"cache", "prune", "--max-size", "lots"}, "is not a size"},
        {2, {"cache", "clear", "--cache-dir"}, "(see 'normjit cache clear --help')"},
    };
    size_t i;
    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out = rel_expect(cases[i].status, cases[i].args);
        if (!strstr(out, cases[i].output))
            fail_msg("case %zu: output lacks \"%s\":\n%s", i, cases[i].output, out);
        free(out);
    }
}

static void test_empty_and_missing(void **state)
{
    char dir[128];
    char *out;
    (void)state;

    fresh_dir("missing", dir, sizeof dir);
    out = cache_cmd(0, "list", dir, NULL, NULL);
    assert_non_null(strstr(out, "(does not exist)"));
    assert_non_null(strstr(out, "\n0 entries, 0 B; 0 temporary files"));
    free(out);
    free(cache_cmd(0, "verify", dir, NULL, NULL));
    free(cache_cmd(0, "prune", dir, "--max-size", "0"));
    free(cache_cmd(0, "clear", dir, NULL, NULL));
    assert_false(exists(dir)); /* nothing creates it */

    assert_int_equal(mkdir(dir, 0700), 0);
    out = cache_cmd(0, "list", dir, NULL, NULL);
    assert_null(strstr(out, "does not exist"));
    assert_non_null(strstr(out, "\n0 entries, 0 B; 0 temporary files"));
    free(out);
    out = cache_cmd(0, "verify", dir, NULL, NULL);
    assert_non_null(strstr(out, "verify: 0 entries checked"));
    free(out);
}

/* A directory others may write to: 'list' warns, the others refuse and change nothing. */
static void test_untrusted_root(void **state)
{
    char dir[128], old_tmp[512], **paths;
    char *out;
    size_t kernels, entries, temps;
    (void)state;

    fresh_dir("untrusted", dir, sizeof dir);
    kernels = warm(dir);
    paths = rel_paths(dir, 0);
    make_temp(paths[0], "OLD789", 2 * 3600, old_tmp, sizeof old_tmp);
    rel_free_paths(paths);
    assert_int_equal(chmod(dir, 0777), 0);

    out = cache_cmd(0, "list", dir, NULL, NULL);
    if (!strstr(out, "warning: ") || !strstr(out, "writable by group or others"))
        fail_msg("expected a warning in:\n%s", out);
    free(out);
    free(cache_cmd(1, "verify", dir, "--fix", NULL));
    free(cache_cmd(1, "prune", dir, "--max-size", "0"));
    out = cache_cmd(1, "clear", dir, NULL, NULL);
    assert_non_null(strstr(out, "refusing"));
    free(out);
    rel_count(dir, &entries, &temps);
    assert_int_equal(entries, kernels);
    assert_int_equal(temps, 1); /* not even swept */
    assert_int_equal(chmod(dir, 0700), 0);
}

/* The key parser directly: bounded, and only names it knows. */
static void test_key_info(void **state)
{
    static const char good[] =
        "normjit-cache-key\nschema: 2\nlibrary: 0.1.0\ntarget: sm_90\noptions: -x\n"
        "kernel: k\nvariant: op=layernorm x=bf16 y=f32 w=f16 hidden=2880 vec=4 tpr=32 rpc=2 "
        "cluster=1 occ=0 storage=reg\nsource: 1 bytes\n";
    static const struct {
        const char *key;
        int has_variant;
    } bad[] = {
        {"variant: op=softmax x=f16 y=f16 w=f16 hidden=1024\n", 0},
        {"variant: op=rmsnorm x=f64 y=f16 w=f16 hidden=1024\n", 0},
        {"variant: op=rmsnorm x=f16 y=f16 w=f16\n", 0},
        {"variant: op=rmsnorm x=f16 y=f16 w=f16 hidden=0\n", 0},
        {"variant: op=rmsnorm x=f16 y=f16 w=f16 hidden=99999999999999\n", 0},
        {"variant: op=rmsnorm x=f16 y=f16 w=f16 hidden=-5\n", 0},
        {"variant: op=rmsnorm op=rmsnorm x=f16 y=f16 w=f16 hidden=64\n", 0},
        {"variant: op=\033[31mrmsnorm x=f16 y=f16 w=f16 hidden=64\n", 0},
        {"variant: op=rmsnormrmsnormrmsnorm x=f16 y=f16 w=f16 hidden=64\n", 0},
        {"variant:op=rmsnorm x=f16 y=f16 w=f16 hidden=64\n", 0},
        {"", 0},
        {"\n\n\n", 0},
        {"variant: op=rmsnorm x=f16 y=f16 w=f16 hidden=64 future=1", 1},
    };
    nj_key_info info;
    char *copy;
    size_t i, cut;
    (void)state;

    assert_int_equal(nj_key_info_parse(good, strlen(good), &info), 1);
    assert_string_equal(info.op, "layernorm");
    assert_string_equal(info.x, "bf16");
    assert_string_equal(info.y, "f32");
    assert_string_equal(info.w, "f16");
    assert_int_equal(info.hidden, 2880);
    assert_string_equal(info.knobs, "v4 t32 r2 c1 o0 reg");
    assert_string_equal(info.target, "sm_90");
    assert_int_equal(info.schema, 2);

    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int got = nj_key_info_parse(bad[i].key, strlen(bad[i].key), &info);
        if (got != bad[i].has_variant)
            fail_msg("key %zu \"%s\": has_variant %d", i, bad[i].key, got);
        if (!got)
            assert_string_equal(info.op, "?");
    }

    /* Every prefix, in a buffer of exactly that size: never a read past it (valgrind, ASan). */
    for (cut = 0; cut <= sizeof good - 1; cut++) {
        copy = malloc(cut ? cut : 1);
        assert_non_null(copy);
        memcpy(copy, good, cut);
        nj_key_info_parse(copy, cut, &info);
        free(copy);
    }
    /* Cut inside "hidden=2880": a shorter number, still bounded. */
    cut = (size_t)(strstr(good, "2880") - good) + 3;
    assert_int_equal(nj_key_info_parse(good, cut, &info), 1);
    assert_int_equal(info.hidden, 288);
    assert_string_equal(info.knobs, "?");
}

static void test_human(void **state)
{
    char s[32];
    (void)state;
    nj_admin_human_size(0, s, sizeof s);
    assert_string_equal(s, "0 B");
    nj_admin_human_size(1023, s, sizeof s);
    assert_string_equal(s, "1023 B");
    nj_admin_human_size(24678, s, sizeof s);
    assert_string_equal(s, "24.1 KiB");
    nj_admin_human_size(3u << 20, s, sizeof s);
    assert_string_equal(s, "3.0 MiB");
    nj_admin_human_age(1000, 1042, s, sizeof s);
    assert_string_equal(s, "42s");
    nj_admin_human_age(1000, 1000 + 180, s, sizeof s);
    assert_string_equal(s, "3m");
    nj_admin_human_age(1000, 1000 + 2 * 3600 + 5, s, sizeof s);
    assert_string_equal(s, "2h");
    nj_admin_human_age(1000, 1000 + 5 * 86400, s, sizeof s);
    assert_string_equal(s, "5d");
    nj_admin_human_age(2000, 1000, s, sizeof s);
    assert_string_equal(s, "0s");
}

static int setup(void **state)
{
    (void)state;
    return rel_setup("test-cache-cli");
}

static int teardown(void **state)
{
    (void)state;
    return rel_teardown();
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_info),
        cmocka_unit_test(test_human),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_empty_and_missing),
        cmocka_unit_test(test_list),
        cmocka_unit_test(test_verify_corrupt_fix),
        cmocka_unit_test(test_sweep),
        cmocka_unit_test(test_prune),
        cmocka_unit_test(test_clear),
        cmocka_unit_test(test_untrusted_root),
    };
    if (argc != 2) {
        fprintf(stderr, "usage: %s PATH-TO-normjit\n", argv[0]);
        return 2;
    }
    rel_tool = argv[1];
    return cmocka_run_group_tests(tests, setup, teardown);
}
