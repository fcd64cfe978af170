/*
 * 'normjit warm' against hostile cache states, end to end (real NVRTC, no
 * GPU): it never hangs (every child runs under a watchdog), and it exits 0
 * only when every kernel asked for is in the disk cache afterwards. Otherwise
 * it exits 1 naming the kernels, and the library's warning names the path
 * and the reason: a cache directory that is a regular file, a dangling link,
 * another user's, writable by others or read-only, a target folder that is a
 * link, a folder at an entry's path. Also: --arch lists.
 */
#include "cache_key.h"
#include "relutil.h"
#include "testutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

/* A folder of this test's temporary directory, fresh. */
static void fresh_dir(const char *name, char *out, size_t size)
{
    snprintf(out, size, "%s/%s", rel_tmp, name);
    assert_int_equal(rel_rm_rf(out), 0);
}

/* Warm rmsnorm f16 hidden 4096 for sm_90 into `dir` as `uid` (-1: this user): its status. */
static int warm_as(int uid, const char *dir, char **out)
{
    const char *const args[] = {"warm", "--arch", "sm_90", "--op", "rmsnorm", "--dtype", "f16",
                                "--hidden", "4096", "--cache-dir", dir, "-j", "2", NULL};
    return rel_run_as(uid, args, out);
}

static char *warm_expect(int status, const char *dir)
{
    char *out;
    int got = warm_as(-1, dir, &out);
    if (got != status)
        fail_msg("warm into %s exited %d, expected %d:\n%s", dir, got, status, out);
    return out;
}

/* A failed warm: exit 1, the kernels named, the reason (and each of `needles`) in the output. */
static void expect_not_stored(const char *out, const char *const *needles, const char *what)
{
    const char *const common[] = {"rmsnorm f16 hidden=4096: ", "compiled but not stored",
                                  "not in the disk cache", "SOME NOT STORED", NULL};
    long kernels = rel_warm_kernels(out, NULL, NULL);
    if (kernels < 1)
        fail_msg("%s: no summary line in:\n%s", what, out);
    rel_expect_all(out, common, what);
    rel_expect_all(out, needles, what);
}

/* The first entry of a warmed cache. */
static void first_entry(const char *dir, char *out, size_t size)
{
    char **paths = rel_paths(dir, 0);
    assert_non_null(paths[0]);
    snprintf(out, size, "%s", paths[0]);
    rel_free_paths(paths);
}

/* A FIFO at an entry's path: the warm neither blocks nor fails; the FIFO is replaced. */
static void test_fifo_at_entry(void **state)
{
    char dir[128], entry[600];
    const char *needles[] = {entry, "is a FIFO, not a regular file", NULL};
    struct stat st;
    size_t entries, temps, before;
    char *out;
    (void)state;

    fresh_dir("fifo", dir, sizeof dir);
    free(warm_expect(0, dir));
    rel_count(dir, &before, &temps);
    first_entry(dir, entry, sizeof entry);
    assert_int_equal(unlink(entry), 0);
    assert_int_equal(mkfifo(entry, 0600), 0);
    out = warm_expect(0, dir);
    rel_expect_all(out, needles, "warm over a FIFO");
    free(out);
    assert_int_equal(lstat(entry, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    rel_count(dir, &entries, &temps);
    assert_int_equal(entries, before);
    assert_int_equal(temps, 0);
    out = rel_expect(0, (const char *const[]){"cache", "verify", "--cache-dir", dir, NULL});
    assert_non_null(strstr(out, " 0 corrupt"));
    free(out);
}

/* Cache directories the library will not use: warm compiles, then says nothing was stored. */
static void test_unusable_roots(void **state)
{
    char dir[128];
    char *out;
    int kind;
    (void)state;
    for (kind = 0; kind < 4; kind++) {
        static const char *const says[] = {
            "is a regular file, not a directory",
            "is a symbolic link to a folder that does not exist",
            "is writable by group or others", "is owned by another user"};
        const char *needles[] = {dir, says[kind], NULL};
        fresh_dir("root", dir, sizeof dir);
        if (kind == 0) {
            FILE *f = fopen(dir, "w");
            assert_non_null(f);
            fclose(f);
        } else if (kind == 1) {
            assert_int_equal(symlink("/nonexistent/normjit-cache", dir), 0);
        } else {
            assert_int_equal(mkdir(dir, 0700), 0);
            if (kind == 2) {
                assert_int_equal(chmod(dir, 0777), 0);
            } else if (geteuid() != 0) {
                print_message("note: only root can give a folder to another user; left out\n");
                continue;
            } else {
                assert_int_equal(chown(dir, 65534, 65534), 0);
            }
        }
        out = warm_expect(1, dir);
        expect_not_stored(out, needles, says[kind]);
        free(out);
        if (kind >= 2) {
            size_t entries, temps;
            assert_int_equal(chmod(dir, 0700), 0);
            assert_int_equal(chown(dir, geteuid(), getegid()), 0);
            rel_count(dir, &entries, &temps);
            assert_int_equal(entries + temps, 0); /* nothing was written there */
        }
    }
}

/*
 * A read-only cache directory: kernels already there load, new ones cannot
 * be stored, warm says which. Root writes through any mode, so as root the
 * warm runs as user 65534 on a directory given to that user.
 */
static void test_read_only_root(void **state)
{
    char dir[128], cmd[400];
    const char *needles[] = {dir, "is not writable", NULL};
    int uid = geteuid() == 0 ? 65534 : -1, status;
    char *out;
    (void)state;

    fresh_dir("read-only", dir, sizeof dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    if (uid != -1) {
        assert_int_equal(chmod(rel_tmp, 0711), 0);
        snprintf(cmd, sizeof cmd, "chown -R 65534:65534 '%s'", dir);
        assert_int_equal(system(cmd), 0);
    }
    assert_int_equal(chmod(dir, 0500), 0);
    status = warm_as(uid, dir, &out);
    if (status == REL_NOT_THAT_USER) {
        print_message("skipped: cannot run as user 65534 here\n");
    } else {
        if (status != 1)
            fail_msg("warm into a read-only directory exited %d, expected 1:\n%s", status, out);
        expect_not_stored(out, needles, "read-only");
    }
    free(out);
    assert_int_equal(chmod(dir, 0700), 0);
    if (uid != -1) {
        snprintf(cmd, sizeof cmd, "chown -R 0:0 '%s'", dir);
        assert_int_equal(system(cmd), 0);
        assert_int_equal(chmod(rel_tmp, 0700), 0);
    }
}

/* A target folder that is a link: not followed; warm names it; nothing is written behind it. */
static void test_linked_target_folder(void **state)
{
    char dir[128], target[256], elsewhere[256];
    const char *needles[] = {target, "is a symbolic link, which is not followed", NULL};
    size_t entries, temps;
    char *out;
    (void)state;

    fresh_dir("linked-target", dir, sizeof dir);
    snprintf(elsewhere, sizeof elsewhere, "%s/elsewhere", rel_tmp);
    assert_int_equal(rel_rm_rf(elsewhere), 0);
    assert_int_equal(mkdir(elsewhere, 0700), 0);
    snprintf(target, sizeof target, "%s/v%d", dir, NJ_CACHE_SCHEMA);
    assert_int_equal(mkdir(dir, 0700), 0);
    assert_int_equal(mkdir(target, 0700), 0);
    snprintf(target, sizeof target, "%s/v%d/sm_90", dir, NJ_CACHE_SCHEMA);
    assert_int_equal(symlink(elsewhere, target), 0);
    out = warm_expect(1, dir);
    expect_not_stored(out, needles, "linked target folder");
    free(out);
    rel_count(elsewhere, &entries, &temps); /* as if it were a cache root: any entries at all */
    assert_int_equal(entries + temps, 0);
    assert_int_equal(rmdir(elsewhere), 0); /* still empty */
}

/*
 * A folder at an entry's path: each warm recompiles that kernel and says it
 * could not store it, naming the path (never silently); 'cache verify --fix'
 * removes the (empty) folder and the next warm succeeds.
 */
static void test_folder_at_entry(void **state)
{
    char dir[128], entry[600];
    const char *needles[] = {entry, "rename: Is a directory", NULL};
    unsigned compiled = 0, cached = 0;
    int round;
    char *out;
    (void)state;

    fresh_dir("folder-at-entry", dir, sizeof dir);
    free(warm_expect(0, dir));
    first_entry(dir, entry, sizeof entry);
    assert_int_equal(unlink(entry), 0);
    assert_int_equal(mkdir(entry, 0700), 0);
    for (round = 0; round < 2; round++) {
        out = warm_expect(1, dir);
        expect_not_stored(out, needles, "folder at an entry's path");
        assert_true(rel_warm_kernels(out, &compiled, &cached) > 0);
        assert_int_equal(compiled, 1);
        assert_non_null(strstr(out, "1 kernel compiled but not stored"));
        free(out);
    }
    out = rel_expect(1, (const char *const[]){"cache", "verify", "--fix", "--cache-dir", dir,
                                              NULL});
    assert_non_null(strstr(out, "not a regular file (a directory); removed"));
    free(out);
    out = warm_expect(0, dir);
    assert_true(rel_warm_kernels(out, &compiled, &cached) > 0);
    assert_int_equal(compiled, 1);
    free(out);
}

/* --arch takes a list; a repeated --arch adds to it; duplicates are warmed once. */
static void test_arch_list(void **state)
{
    char dir[128], folder[256];
    unsigned compiled = 0, cached = 0;
    long both, one;
    struct stat st;
    char *out;
    (void)state;

    fresh_dir("archs", dir, sizeof dir);
    out = rel_expect(0, (const char *const[]){"warm", "--arch", "sm_80,sm_90", "--op", "rmsnorm",
                                              "--dtype", "f16", "--hidden", "4096",
                                              "--cache-dir", dir, NULL});
    both = rel_warm_kernels(out, &compiled, &cached);
    if (both < 2 || !strstr(out, "for sm_80,sm_90 in"))
        fail_msg("expected kernels for sm_80 and sm_90 in:\n%s", out);
    assert_int_equal(compiled, (unsigned)both);
    free(out);
    snprintf(folder, sizeof folder, "%s/v%d/sm_80", dir, NJ_CACHE_SCHEMA);
    assert_int_equal(stat(folder, &st), 0);
    snprintf(folder, sizeof folder, "%s/v%d/sm_90", dir, NJ_CACHE_SCHEMA);
    assert_int_equal(stat(folder, &st), 0);

    /* The same set, given as two options and with a duplicate: nothing left to compile. */
    out = rel_expect(0, (const char *const[]){"warm", "--arch", "sm_80", "--arch", "sm_90,sm_80",
                                              "--op", "rmsnorm", "--dtype", "f16", "--hidden",
                                              "4096", "--cache-dir", dir, NULL});
    assert_int_equal(rel_warm_kernels(out, &compiled, &cached), both);
    assert_int_equal(compiled, 0);
    assert_non_null(strstr(out, "for sm_80,sm_90 in"));
    free(out);

    /* One of them alone is a part of it. */
    out = rel_expect(0, (const char *const[]){"warm", "--arch", "sm_90", "--op", "rmsnorm",
                                              "--dtype", "f16", "--hidden", "4096",
                                              "--cache-dir", dir, NULL});
    one = rel_warm_kernels(out, &compiled, &cached);
    assert_true(one > 0 && one < both);
    assert_int_equal(compiled, 0);
    free(out);
}

static int setup(void **state)
{
    (void)state;
    return rel_setup("test-hostile-cache");
}

static int teardown(void **state)
{
    (void)state;
    return rel_teardown();
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fifo_at_entry),
        cmocka_unit_test(test_unusable_roots),
        cmocka_unit_test(test_read_only_root),
        cmocka_unit_test(test_linked_target_folder),
        cmocka_unit_test(test_folder_at_entry),
        cmocka_unit_test(test_arch_list),
    };
    if (argc != 2) {
        fprintf(stderr, "usage: %s PATH-TO-normjit\n", argv[0]);
        return 2;
    }
    rel_tool = argv[1];
    return cmocka_run_group_tests(tests, setup, teardown);
}
