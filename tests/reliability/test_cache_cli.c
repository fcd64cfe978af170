/*
 * normjit cache list | verify | prune | clear, run as a child process on a
 * cache that a real warm (NVRTC, no GPU) filled: listing, corruption found
 * and fixed, stale temporary files swept, least recently used entries
 * pruned, everything cleared, usage errors; and the bounded key parser.
 */
#include "cache_admin.h"
#include "cache_key.h"
#include "relutil.h"
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
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

/*
 * Every command removes temporary files dated more than an hour before or
 * after now (a writer at work gives its file the current time; a date far in
 * the future would otherwise keep a dead writer's file forever), and leaves
 * younger ones.
 */
static void test_sweep(void **state)
{
    static const char *const subs[] = {"list", "verify", "prune", "clear"};
    char dir[128], old_tmp[512], young_tmp[512], future_tmp[512], near_tmp[512], expect[80];
    char **paths;
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
        make_temp(paths[0], "FUT123", -30L * 86400, future_tmp, sizeof future_tmp);
        make_temp(paths[0], "NEAR12", -600, near_tmp, sizeof near_tmp);
        rel_free_paths(paths);
        rel_count(dir, &entries, &temps);
        assert_int_equal(temps, 4);

        out = cache_cmd(0, subs[s], dir, s == 2 ? "--max-size" : NULL, s == 2 ? "1G" : NULL);
        snprintf(expect, sizeof expect,
                 "swept 2 stale temporary files (dated over 1 hour before or after now)");
        if (!strstr(out, expect))
            fail_msg("cache %s: expected \"%s\" in:\n%s", subs[s], expect, out);
        free(out);
        assert_false(exists(old_tmp));
        assert_false(exists(future_tmp));
        if (s < 3) {
            assert_true(exists(young_tmp)); /* a writer may be at work on it */
            assert_true(exists(near_tmp));  /* within the hour: a clock that moved a little */
            assert_int_equal(unlink(young_tmp), 0);
            assert_int_equal(unlink(near_tmp), 0);
        } else {
            assert_false(exists(young_tmp)); /* clear removes every temporary file */
            assert_false(exists(near_tmp));
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
        {2, {"cache", "clear", "--cache-dir"}, "option '--cache-dir' needs a value"},
        {2, {"cache", "list", "--bogus"}, "unknown option '--bogus'"},
        {2, {"cache", "verify", "-z"}, "unknown option '-z'"},
        {2, {"cache", "verify", "--json"}, "--json goes with 'cache list'"},
        {2, {"cache", "prune", "--max-size", "2Gb"}, "'b' means bits"},
        {2, {"cache", "prune", "--max-size"}, "option '--max-size' needs a value"},
        {2, {"warm", "--arch", "sm_90.0"}, "'sm_90.0' is not an architecture"},
        {2, {"warm", "--arch", "sm_99.9"}, "'sm_99.9' is not an architecture"},
        {2, {"warm", "--arch", "sm_80,sm_70"}, "sm_70 is older than sm_80"},
        {2, {"warm", "--arch"}, "option '--arch' needs a value"},
        {2, {"warm", "--hidden", "4096,"}, "empty item in the list '4096,'"},
        {2, {"warm", "--hidden", ","}, "empty item in the list ','"},
        {2, {"warm", "--op", "rmsnorm,"}, "empty item in the op list"},
        {2, {"info", "--cache-dir"}, "option '--cache-dir' needs a value"},
        {2, {"bench", "--shape"}, "option '--shape' needs a value"},
        {2, {"tune", "--bogus"}, "unknown option '--bogus'"},
    };
    size_t i;
    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out = rel_expect(cases[i].status, cases[i].args);
        if (!strstr(out, cases[i].output))
            fail_msg("case %zu: output lacks \"%s\":\n%s", i, cases[i].output, out);
        /* One message, ours: not getopt's as well. */
        if (strstr(out, "requires an argument") || strstr(out, "unrecognized option") ||
            strstr(out, "invalid option"))
            fail_msg("case %zu: getopt's own message in:\n%s", i, out);
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

/* ------------------------------------------------------------------------ */
/* Hostile states                                                            */

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
    close(fd);
    return rc;
}

static int make_empty_dir(const char *path)
{
    return mkdir(path, 0700);
}

static int make_full_dir(const char *path)
{
    char inner[600];
    FILE *f;
    if (mkdir(path, 0700) != 0)
        return -1;
    snprintf(inner, sizeof inner, "%s/someone-elses-file", path);
    if (!(f = fopen(inner, "w")))
        return -1;
    fputs("not normjit's\n", f);
    return fclose(f);
}

static int make_device(const char *path)
{
    return mknod(path, S_IFCHR | 0600, makedev(1, 5)); /* /dev/zero's numbers */
}

static int make_link_to_zero(const char *path)
{
    return symlink("/dev/zero", path);
}

/*
 * Files of other kinds with an entry's name: 'list' shows each as corrupt
 * with its kind (and exits 0: it inspected them); 'verify' names each and
 * exits 1; --fix removes them (a folder only when empty: one that holds
 * something is named, with the reason, and the exit status stays 1); 'clear'
 * likewise. Nothing blocks (the children run under a watchdog).
 */
static void test_hostile_entry_kinds(void **state)
{
    static const struct {
        const char *what;
        int (*make)(const char *path);
        const char *kind;
        int removable;
    } kinds[] = {
        {"FIFO", make_fifo, "a FIFO", 1},
        {"socket", make_socket, "a socket", 1},
        {"empty folder", make_empty_dir, "a directory", 1},
        {"folder with a file", make_full_dir, "a directory", 0},
        {"device node", make_device, "a character device", 1},
        {"link to /dev/zero", make_link_to_zero, "a symbolic link", 1},
    };
    char dir[128], expect[700], **paths;
    char *out;
    size_t i, kernels, made = 0, entries, temps;
    int fix_status = 0, sub;
    (void)state;

    for (sub = 0; sub < 2; sub++) { /* verify --fix, then clear */
        fresh_dir(sub == 0 ? "hostile-verify" : "hostile-clear", dir, sizeof dir);
        kernels = warm(dir);
        paths = rel_paths(dir, 0);
        assert_true(kernels >= sizeof kinds / sizeof kinds[0]);
        made = 0;
        fix_status = 0;
        for (i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
            assert_int_equal(unlink(paths[i]), 0);
            if (kinds[i].make(paths[i]) != 0) {
                print_message("note: cannot make a %s here (%s); left out\n", kinds[i].what,
                              strerror(errno));
                continue;
            }
            made++;
            if (!kinds[i].removable)
                fix_status = 1;
        }

        out = cache_cmd(0, "list", dir, NULL, NULL);
        for (i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
            struct stat st;
            if (lstat(paths[i], &st) != 0 || S_ISREG(st.st_mode))
                continue;
            snprintf(expect, sizeof expect, "%s  (not a regular file: %s)", digest_of(paths[i]),
                     kinds[i].kind);
            if (!strstr(out, expect))
                fail_msg("list: expected \"%s\" in:\n%s", expect, out);
        }
        free(out);

        if (sub == 0) {
            out = cache_cmd(1, "verify", dir, NULL, NULL);
            for (i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
                struct stat st;
                if (lstat(paths[i], &st) != 0 || S_ISREG(st.st_mode))
                    continue;
                snprintf(expect, sizeof expect, "corrupt: %s: not a regular file (%s)", paths[i],
                         kinds[i].kind);
                if (!strstr(out, expect))
                    fail_msg("verify: expected \"%s\" in:\n%s", expect, out);
            }
            free(out);
            out = cache_cmd(1, "verify", dir, "--fix", NULL);
        } else {
            out = cache_cmd(fix_status, "clear", dir, NULL, NULL);
        }
        for (i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
            if (kinds[i].removable) {
                assert_false(exists(paths[i]));
                continue;
            }
            assert_true(exists(paths[i]));
            snprintf(expect, sizeof expect, sub == 0 ? "%s: not a regular file (a directory); "
                                                       "cannot remove it: Directory not empty"
                                                     : "cannot remove %s: Directory not empty",
                     paths[i]);
            if (!strstr(out, expect))
                fail_msg("expected \"%s\" in:\n%s", expect, out);
        }
        free(out);
        rel_count(dir, &entries, &temps);
        if (sub == 0)
            assert_int_equal(entries, kernels - made + (size_t)fix_status);
        else
            assert_int_equal(entries, (size_t)fix_status);
        rel_free_paths(paths);
    }
}

/*
 * A folder of the layout that is a link (at each level) or another user's:
 * the library neither reads nor writes through it, so every command names it
 * and exits 1, never follows it, and changes nothing behind it; 'info' says
 * so too.
 */
/* *.njc files under `dir`, links not followed (find -P). */
static size_t njc_files(const char *dir)
{
    char cmd[700], line[32] = "";
    FILE *p;
    snprintf(cmd, sizeof cmd, "find '%s' -name '*.njc' | wc -l", dir);
    p = popen(cmd, "r");
    assert_non_null(p);
    assert_non_null(fgets(line, sizeof line, p));
    assert_int_equal(pclose(p), 0);
    return (size_t)strtoul(line, NULL, 10);
}

static void test_folder_links(void **state)
{
    static const char *const subs[] = {"list", "verify", "prune", "clear"};
    char dir[128], folder[600], elsewhere[256], cmd[1400], **paths;
    char *out;
    size_t level, entries, temps, in_folder, i;
    int s;
    (void)state;

    for (level = 0; level < 3; level++) {
        const char *const needles[] = {folder, "is a symbolic link, which is not followed",
                                       "the library does not use it either", NULL};
        fresh_dir("links", dir, sizeof dir);
        snprintf(elsewhere, sizeof elsewhere, "%s/elsewhere", rel_tmp);
        assert_int_equal(rel_rm_rf(elsewhere), 0);
        warm(dir);
        paths = rel_paths(dir, 0);
        /* v<S>, then the target folder, then the first entry's bucket. */
        snprintf(folder, sizeof folder, "%s", paths[0]);
        for (i = 0; i < 3 - level; i++)
            *strrchr(folder, '/') = '\0';
        for (i = 0, in_folder = 0; paths[i]; i++)
            in_folder += !strncmp(paths[i], folder, strlen(folder));
        rel_free_paths(paths);
        snprintf(cmd, sizeof cmd, "mv '%s' '%s' && ln -s '%s' '%s'", folder, elsewhere, elsewhere,
                 folder);
        assert_int_equal(system(cmd), 0);

        for (s = 0; s < 4; s++) {
            out = cache_cmd(1, subs[s], dir, s == 2 ? "--max-size" : NULL, s == 2 ? "0" : NULL);
            rel_expect_all(out, needles, subs[s]);
            free(out);
        }
        {
            const char *const args[] = {"info", "--cache-dir", dir, NULL};
            out = rel_expect(0, args);
            if (!strstr(out, "1 folder not inspected"))
                fail_msg("info: expected \"1 folder not inspected\" in:\n%s", out);
            free(out);
        }
        /* clear removed what it could see, and nothing behind the link. */
        rel_count(dir, &entries, &temps);
        assert_int_equal(entries, 0);
        assert_int_equal(njc_files(elsewhere), in_folder);
        assert_true(in_folder > 0);
        assert_int_equal(rel_rm_rf(elsewhere), 0);
    }

    /* Another user's target folder (only root can make one). */
    if (geteuid() == 0) {
        const char *const needles[] = {"is owned by another user", NULL};
        size_t kernels;
        fresh_dir("foreign-folder", dir, sizeof dir);
        kernels = warm(dir);
        snprintf(folder, sizeof folder, "%s/v%d/sm_90", dir, NJ_CACHE_SCHEMA);
        snprintf(cmd, sizeof cmd, "chown -R 65534:65534 '%s'", folder);
        assert_int_equal(system(cmd), 0);
        out = cache_cmd(1, "clear", dir, NULL, NULL);
        rel_expect_all(out, needles, "clear");
        free(out);
        assert_int_equal(njc_files(folder), kernels);
        snprintf(cmd, sizeof cmd, "chown -R 0:0 '%s'", folder);
        assert_int_equal(system(cmd), 0);
    }
}

/* A cache directory that is a regular file or a dangling link: every command says so, exits 1. */
static void test_root_kinds(void **state)
{
    static const char *const subs[] = {"list", "verify", "prune", "clear"};
    static const char *const says[] = {"is a regular file, not a directory",
                                       "is a symbolic link to a folder that does not exist"};
    char dir[128];
    char *out;
    int kind, s;
    (void)state;
    for (kind = 0; kind < 2; kind++) {
        const char *const needles[] = {dir, says[kind], NULL};
        fresh_dir("root-kind", dir, sizeof dir);
        if (kind == 0) {
            FILE *f = fopen(dir, "w");
            assert_non_null(f);
            fclose(f);
        } else {
            assert_int_equal(symlink("/nonexistent/normjit-root", dir), 0);
        }
        for (s = 0; s < 4; s++) {
            out = cache_cmd(1, subs[s], dir, s == 2 ? "--max-size" : NULL, s == 2 ? "0" : NULL);
            rel_expect_all(out, needles, subs[s]);
            free(out);
        }
        {
            const char *const args[] = {"info", "--cache-dir", dir, NULL};
            const char *const info_needles[] = {"(not used: ", says[kind], NULL};
            out = rel_expect(0, args);
            rel_expect_all(out, info_needles, "info");
            free(out);
        }
        assert_int_equal(unlink(dir), 0);
    }
}

/*
 * A bucket folder this user cannot read (chmod 000): every command names it
 * with the reason and exits 1; nothing in it is counted as gone or removed.
 * Root reads through any mode, so as root the commands run as user 65534 on
 * a tree given to that user.
 */
static void test_unreadable_bucket(void **state)
{
    char dir[128], folder[600], cmd[800], **paths;
    char *out;
    size_t kernels, in_folder = 0, i;
    int uid = geteuid() == 0 ? 65534 : -1, s;
    static const char *const subs[] = {"list", "verify", "prune", "clear"};
    (void)state;

    fresh_dir("unreadable", dir, sizeof dir);
    kernels = warm(dir);
    paths = rel_paths(dir, 0);
    snprintf(folder, sizeof folder, "%s", paths[0]);
    *strrchr(folder, '/') = '\0';
    for (i = 0; paths[i]; i++)
        in_folder += !strncmp(paths[i], folder, strlen(folder));
    rel_free_paths(paths);
    if (uid != -1) {
        print_message("note: running as root: the commands run as user 65534\n");
        assert_int_equal(chmod(rel_tmp, 0711), 0);
        snprintf(cmd, sizeof cmd, "chown -R 65534:65534 '%s'", dir);
        assert_int_equal(system(cmd), 0);
    }
    assert_int_equal(chmod(folder, 0), 0);
    for (s = 0; s < 4; s++) {
        const char *args[8] = {"cache", subs[s], "--cache-dir", dir, NULL, NULL, NULL};
        const char *const needles[] = {folder, "cannot be read: Permission denied", NULL};
        int status;
        if (s == 2) {
            args[4] = "--max-size";
            args[5] = "0";
        }
        status = rel_run_as(uid, args, &out);
        if (status == REL_NOT_THAT_USER) {
            free(out);
            print_message("skipped: cannot run as user 65534 here\n");
            break;
        }
        if (status != 1)
            fail_msg("cache %s exited %d, expected 1:\n%s", subs[s], status, out);
        rel_expect_all(out, needles, subs[s]);
        free(out);
    }
    assert_int_equal(chmod(folder, 0700), 0);
    snprintf(cmd, sizeof cmd, "test $(find '%s' -name '*.njc' | wc -l) -eq %zu", folder,
             in_folder);
    assert_int_equal(system(cmd), 0);
    if (uid != -1) {
        snprintf(cmd, sizeof cmd, "chown -R 0:0 '%s'", dir);
        assert_int_equal(system(cmd), 0);
        assert_int_equal(chmod(rel_tmp, 0700), 0);
    }
    (void)kernels;
}

/* An entry removed between the walk and the check is gone, not corrupt. */
static void test_entry_vanishing(void **state)
{
    char dir[128];
    nj_admin_listing l;
    size_t kernels;
    int headers;
    (void)state;
    fresh_dir("vanishing", dir, sizeof dir);
    kernels = warm(dir);
    for (headers = 0; headers < 2; headers++) {
        assert_int_equal(nj_admin_collect(dir, headers, &l), 0);
        assert_int_equal(l.n, kernels - (size_t)headers);
        assert_int_equal(l.n_problems, 0);
        assert_int_equal(unlink(l.files[0].path), 0);
        assert_int_equal(nj_admin_verify(&l.files[0]), NJ_ADMIN_GONE);
        assert_null(l.files[0].problem);
        assert_int_equal(nj_admin_remove(&l.files[0]), 0); /* already gone: fine */
        assert_int_equal(nj_admin_verify(&l.files[1]), NJ_ADMIN_OK);
        nj_admin_listing_free(&l);
    }
    /* A listing made after the removal, then another removal before 'list' reads the header. */
    assert_int_equal(nj_admin_collect(dir, 0, &l), 0);
    assert_int_equal(unlink(l.files[0].path), 0);
    assert_int_equal(nj_admin_verify(&l.files[0]), NJ_ADMIN_GONE);
    nj_admin_listing_free(&l);
}

/* prune removes corrupt entries (here a large one, the most recently used) before valid ones. */
static void test_prune_corrupt_first(void **state)
{
    char dir[128], size_arg[32], expect[600], **paths;
    char *out;
    size_t kernels, n, entries, temps;
    uint64_t valid_bytes = 0;
    struct stat st;
    FILE *f;
    (void)state;

    fresh_dir("prune-corrupt", dir, sizeof dir);
    kernels = warm(dir);
    paths = rel_paths(dir, 0);
    for (n = 0; paths[n]; n++) {
        rel_age(paths[n], (long)(n + 2) * 600);
        assert_int_equal(stat(paths[n], &st), 0);
        if (n > 0)
            valid_bytes += (uint64_t)st.st_size;
    }
    /* paths[0]: a bad magic and 1 MiB more, used just now. */
    flip_byte(paths[0], 2, SEEK_SET);
    f = fopen(paths[0], "ab");
    assert_non_null(f);
    for (n = 0; n < 1024; n++)
        fputs("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
              "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
              "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
              "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
              "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
              "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
              "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
              "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
              "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
              "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
              "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
              "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
              "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
              "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
              "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
              "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
              f);
    assert_int_equal(fclose(f), 0);
    rel_age(paths[0], 0);

    /* Room for every valid entry: only the corrupt one goes. */
    snprintf(size_arg, sizeof size_arg, "%lluB", (unsigned long long)valid_bytes);
    out = cache_cmd(0, "prune", dir, "--max-size", size_arg);
    snprintf(expect, sizeof expect, "removed corrupt entry (sm_90) %s, not a normjit cache entry "
                                    "(bad magic)",
             digest_of(paths[0]));
    if (!strstr(out, expect) || !strstr(out, "prune: removed 1 entry"))
        fail_msg("expected \"%s\" and one removal in:\n%s", expect, out);
    free(out);
    assert_false(exists(paths[0]));
    rel_count(dir, &entries, &temps);
    assert_int_equal(entries, kernels - 1);
    rel_free_paths(paths);
}

/* 'cache list --json': one JSON document that Python reads, with what the text listing says. */
static void test_list_json(void **state)
{
    char dir[128], json_path[256], cmd[1200], **paths;
    char *out;
    size_t kernels;
    FILE *f;
    int rc;
    (void)state;

    fresh_dir("json", dir, sizeof dir);
    kernels = warm(dir);
    paths = rel_paths(dir, 0);
    assert_int_equal(unlink(paths[0]), 0);
    assert_int_equal(mkfifo(paths[0], 0600), 0);
    out = cache_cmd(0, "list", dir, "--json", NULL);
    snprintf(json_path, sizeof json_path, "%s/list.json", rel_tmp);
    f = fopen(json_path, "w");
    assert_non_null(f);
    fputs(out, f);
    assert_int_equal(fclose(f), 0);
    free(out);
    snprintf(cmd, sizeof cmd,
             "python3 -c 'import json, sys\n"
             "d = json.load(open(sys.argv[1]))\n"
             "assert d[\"cache\"] == sys.argv[2] and d[\"exists\"] and d[\"usable\"], d\n"
             "e = d[\"entries\"]\n"
             "assert len(e) == int(sys.argv[3]) == d[\"totals\"][\"entries\"], e\n"
             "bad = [x for x in e if x[\"state\"] != \"valid\"]\n"
             "assert len(bad) == 1 and bad[0][\"path\"] == sys.argv[4], bad\n"
             "assert bad[0][\"problem\"] == \"not a regular file\" and bad[0][\"detail\"] == "
             "\"a FIFO\", bad\n"
             "good = [x for x in e if x[\"state\"] == \"valid\"]\n"
             "assert all(x[\"op\"] == \"rmsnorm\" and x[\"hidden\"] in (1024, 2048) and "
             "x[\"bytes\"] > 0 for x in good), good\n"
             "assert d[\"problems\"] == [] and d[\"temporary_files\"] == [], d\n"
             "' '%s' '%s' %zu '%s'",
             json_path, dir, kernels, paths[0]);
    rc = system(cmd);
    if (WIFEXITED(rc) && WEXITSTATUS(rc) == 127) {
        print_message("note: no python3 to read the JSON with; checked by strstr only\n");
        out = cache_cmd(0, "list", dir, "--json", NULL);
        assert_non_null(strstr(out, "\"state\": \"corrupt\""));
        free(out);
    } else {
        assert_int_equal(rc, 0);
    }
    rel_free_paths(paths);
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
        cmocka_unit_test(test_hostile_entry_kinds),
        cmocka_unit_test(test_folder_links),
        cmocka_unit_test(test_unreadable_bucket),
        cmocka_unit_test(test_entry_vanishing),
        cmocka_unit_test(test_prune_corrupt_first),
        cmocka_unit_test(test_list_json),
        cmocka_unit_test(test_root_kinds),
    };
    if (argc != 2) {
        fprintf(stderr, "usage: %s PATH-TO-normjit\n", argv[0]);
        return 2;
    }
    rel_tool = argv[1];
    return cmocka_run_group_tests(tests, setup, teardown);
}
