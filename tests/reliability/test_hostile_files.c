/*
 * Every file normjit reads that it does not control goes through one bounded,
 * non-blocking open (src/files.c): tuning tables, templates under
 * NORMJIT_KERNEL_DIR, the library named by NORMJIT_NVRTC (and cache entries,
 * in test_unit_disk_cache). Each kind of hostile file gets an error naming
 * the path and the reason, never a hang (a watchdog ends a blocked test),
 * never a silently cut file. Also: NORMJIT_LOG with an unknown value.
 *
 * Templates and NVRTC are loaded once per process, so those cases run in a
 * child each; a child reports through its exit status and its stderr.
 */
#include "compiler.h"
#include "files.h"
#include "status.h"
#include "templates.h"
#include "tuning.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#define WATCHDOG_SECONDS 60
#define TUNING_CAP (64ull << 20) /* tuning.c's limit */
#define TEMPLATE_CAP (4ull << 20) /* templates.c's limit */

static char dir[] = "/tmp/normjit-hostile-files-XXXXXX";

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    chmod(path, 0700);
    return remove(path);
}

static int setup(void **state)
{
    (void)state;
    unsetenv("NORMJIT_LOG");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void path_of(const char *name, char *out, size_t size)
{
    snprintf(out, size, "%s/%s", dir, name);
}

static void write_file(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    assert_int_equal(close(fd), 0);
}

/* A sparse file of `size` bytes whose first bytes are `head`. */
static void sparse_file(const char *path, const char *head, uint64_t size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, head, strlen(head)), (ssize_t)strlen(head));
    assert_int_equal(ftruncate(fd, (off_t)size), 0);
    assert_int_equal(close(fd), 0);
}

/* ------------------------------------------------------------------------ */
/* nj_file_open / nj_file_read                                               */

static void test_file_kinds(void **state)
{
    char reg[512], fifo[512], folder[512], link_reg[512], link_zero[512], empty[512], missing[512];
    nj_buf b = {0};
    nj_file_error e;
    (void)state;

    path_of("regular", reg, sizeof reg);
    path_of("fifo", fifo, sizeof fifo);
    path_of("folder", folder, sizeof folder);
    path_of("link-to-regular", link_reg, sizeof link_reg);
    path_of("link-to-zero", link_zero, sizeof link_zero);
    path_of("empty", empty, sizeof empty);
    path_of("missing", missing, sizeof missing);
    write_file(reg, "0123456789", 10);
    write_file(empty, "", 0);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_int_equal(mkdir(folder, 0700), 0);
    assert_int_equal(symlink(reg, link_reg), 0);
    assert_int_equal(symlink("/dev/zero", link_zero), 0);

    alarm(WATCHDOG_SECONDS);
    assert_int_equal(nj_file_read(AT_FDCWD, reg, 0, 10, &b, &e), 0);
    assert_int_equal(b.len, 10);
    assert_string_equal(b.data, "0123456789");
    assert_int_equal(nj_file_read(AT_FDCWD, empty, 0, 10, &b, &e), 0);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    assert_int_equal(nj_file_read(AT_FDCWD, link_reg, 0, 10, &b, &e), 0); /* followed */
    assert_int_equal(b.len, 10);

    /* One byte over the cap: refused whole, saying the size and the cap. */
    assert_int_equal(nj_file_read(AT_FDCWD, reg, 0, 9, &b, &e), -1);
    assert_int_equal(e.err, EFBIG);
    assert_string_equal(e.text, "is 10 bytes, over the limit of 9 bytes");

    assert_int_equal(nj_file_read(AT_FDCWD, link_reg, NJ_FILE_NOFOLLOW, 10, &b, &e), -1);
    assert_string_equal(e.text, "is a symbolic link, which is not followed here");
    assert_int_equal(nj_file_read(AT_FDCWD, fifo, 0, 10, &b, &e), -1);
    assert_string_equal(e.text, "is a FIFO, not a regular file");
    assert_int_equal(nj_file_read(AT_FDCWD, folder, 0, 10, &b, &e), -1);
    assert_string_equal(e.text, "is a directory, not a regular file");
    assert_int_equal(nj_file_read(AT_FDCWD, link_zero, 0, 10, &b, &e), -1);
    assert_string_equal(e.text, "is a character device, not a regular file");
    assert_int_equal(nj_file_read(AT_FDCWD, missing, 0, 10, &b, &e), -1);
    assert_int_equal(e.err, ENOENT);
    assert_string_equal(e.text, strerror(ENOENT));
    alarm(0);

    /* The message a caller gives: what, the path, the reason. */
    assert_int_equal(nj_file_read(AT_FDCWD, fifo, 0, 10, &b, &e), -1);
    assert_int_equal(nj_file_fail(NORMJIT_EIO, "cannot read tuning file", fifo, &e), NORMJIT_EIO);
    assert_non_null(strstr(normjit_last_error(), "cannot read tuning file "));
    assert_non_null(strstr(normjit_last_error(), fifo));
    assert_non_null(strstr(normjit_last_error(), ": is a FIFO, not a regular file"));
    nj_buf_free(&b);
}

/* A file whose size fstat does not tell (procfs says 0) is still read with the cap. */
static void test_file_cap_while_reading(void **state)
{
    nj_buf b = {0};
    nj_file_error e;
    (void)state;
    assert_int_equal(nj_file_read(AT_FDCWD, "/proc/self/status", 0, 16, &b, &e), -1);
    assert_int_equal(e.err, EFBIG);
    assert_string_equal(e.text, "is over the limit of 16 bytes");
    assert_int_equal(nj_file_read(AT_FDCWD, "/proc/self/status", 0, 1 << 20, &b, &e), 0);
    assert_non_null(strstr(b.data, "Name:"));
    nj_buf_free(&b);
}

/* ------------------------------------------------------------------------ */
/* Tuning tables                                                             */

static void expect_tuning_error(const char *path, const char *reason)
{
    nj_tuning *t = (nj_tuning *)(uintptr_t)1;
    alarm(WATCHDOG_SECONDS);
    assert_int_equal(nj_tuning_load(path, &t), NORMJIT_EIO);
    alarm(0);
    assert_null(t);
    if (!strstr(normjit_last_error(), path) || !strstr(normjit_last_error(), reason))
        fail_msg("tuning file %s: \"%s\" lacks the path or \"%s\"", path, normjit_last_error(),
                 reason);
}

static void test_tuning_files(void **state)
{
    static const char header[] = "device: X\nsms: 1\ncc: 90\nmemory-mib: 1\ndriver: 1\n"
                                 "library: 0.2.0\ntemplates: x\n";
    char big[512], folder[512], fifo[512], zero[512];
    (void)state;

    /* Over 64 MiB (a valid head, then more): refused whole, not cut at 64 MiB. */
    path_of("big.tuning", big, sizeof big);
    sparse_file(big, header, TUNING_CAP + 1);
    expect_tuning_error(big, "is 67108865 bytes, over the limit of 64 MiB (67108864 bytes)");
    path_of("tuning-folder", folder, sizeof folder);
    assert_int_equal(mkdir(folder, 0700), 0);
    expect_tuning_error(folder, "is a directory, not a regular file");
    path_of("tuning-fifo", fifo, sizeof fifo);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    expect_tuning_error(fifo, "is a FIFO, not a regular file");
    path_of("tuning-zero", zero, sizeof zero);
    assert_int_equal(symlink("/dev/zero", zero), 0);
    expect_tuning_error(zero, "is a character device, not a regular file");
}

/* A tuning table this user cannot read: the reason is named (as user 65534 when run as root). */
static void test_tuning_unreadable(void **state)
{
    char path[512];
    pid_t pid;
    int status, drop = geteuid() == 0;
    (void)state;
    path_of("unreadable.tuning", path, sizeof path);
    write_file(path, "device: X\n", 10);
    assert_int_equal(chmod(path, 0), 0);
    assert_int_equal(chmod(dir, 0711), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        nj_tuning *t = NULL;
        if (drop && (setgid(65534) != 0 || setuid(65534) != 0))
            _exit(10);
        if (nj_tuning_load(path, &t) != NORMJIT_EIO || t)
            _exit(11);
        _exit(strstr(normjit_last_error(), path) &&
                      strstr(normjit_last_error(), "Permission denied")
                  ? 0
                  : 12);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_int_equal(chmod(dir, 0700), 0);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) == 10)
        print_message("skipped: cannot run as user 65534 here\n");
    else
        assert_int_equal(WEXITSTATUS(status), 0);
}

/* ------------------------------------------------------------------------ */
/* Templates and NVRTC: once per process, so one child per case              */

/*
 * Run `fn` in a child with stderr captured; returns its exit status (or
 * 128 + signal) and the stderr text in `err` (free it).
 */
static int in_child(int (*fn)(const char *arg), const char *arg, char **err)
{
    char log[512];
    pid_t pid;
    int status;
    path_of("child-stderr", log, sizeof log);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd < 0 || dup2(fd, STDERR_FILENO) < 0)
            _exit(99);
        alarm(WATCHDOG_SECONDS);
        _exit(fn(arg));
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (err) {
        FILE *f = fopen(log, "rb");
        size_t n;
        *err = calloc(1, 8192);
        assert_non_null(*err);
        if (f) {
            n = fread(*err, 1, 8191, f);
            (*err)[n] = '\0';
            fclose(f);
        }
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Child: load the templates from NORMJIT_KERNEL_DIR = arg; print the result on stderr. */
static int load_templates(const char *kernel_dir)
{
    const nj_templates *t;
    int status;
    setenv("NORMJIT_KERNEL_DIR", kernel_dir, 1);
    status = nj_templates_get(&t);
    fprintf(stderr, "%s: %s\n", normjit_status_name(status),
            status == NORMJIT_OK ? t->digest : normjit_last_error());
    return status == NORMJIT_OK ? 0 : 1;
}

/* A copy of the embedded templates in `kernel_dir`. */
static void copy_templates(const char *kernel_dir)
{
    int i;
    assert_int_equal(mkdir(kernel_dir, 0700), 0);
    for (i = 0; i < nj_embedded_template_count; i++) {
        char path[600];
        snprintf(path, sizeof path, "%s/%s", kernel_dir, nj_embedded_templates[i].name);
        write_file(path, nj_embedded_templates[i].text, nj_embedded_templates[i].len);
    }
}

static void test_templates(void **state)
{
    static const struct {
        const char *what;
        const char *reason;
    } cases[] = {
        {"link to /dev/zero", "is a character device, not a regular file"},
        {"FIFO", "is a FIFO, not a regular file"},
        {"directory", "is a directory, not a regular file"},
        {"over 4 MiB", "over the limit of 4 MiB"},
        {"NUL byte", "holds a NUL byte"},
    };
    const char *name = nj_embedded_templates[0].name;
    char kernel_dir[512], victim[600], *err, *good;
    size_t i;
    (void)state;

    /* The copy loads, with the embedded templates' digest. */
    path_of("kernels-good", kernel_dir, sizeof kernel_dir);
    copy_templates(kernel_dir);
    assert_int_equal(in_child(load_templates, kernel_dir, &good), 0);

    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int status;
        char sub[64];
        snprintf(sub, sizeof sub, "kernels-%zu", i);
        path_of(sub, kernel_dir, sizeof kernel_dir);
        copy_templates(kernel_dir);
        snprintf(victim, sizeof victim, "%s/%s", kernel_dir, name);
        assert_int_equal(unlink(victim), 0);
        switch (i) {
        case 0:
            assert_int_equal(symlink("/dev/zero", victim), 0);
            break;
        case 1:
            assert_int_equal(mkfifo(victim, 0600), 0);
            break;
        case 2:
            assert_int_equal(mkdir(victim, 0700), 0);
            break;
        case 3:
            sparse_file(victim, "/* big */\n", TEMPLATE_CAP + 1);
            break;
        default:
            write_file(victim, "int x;\0int y;\n", 14);
            break;
        }
        status = in_child(load_templates, kernel_dir, &err);
        if (status != 1 || !strstr(err, "NORMJIT_EIO") || !strstr(err, victim) ||
            !strstr(err, cases[i].reason) || !strstr(err, "NORMJIT_KERNEL_DIR"))
            fail_msg("template %s: status %d, output \"%s\"; expected NORMJIT_EIO naming %s and "
                     "\"%s\"",
                     cases[i].what, status, err, victim, cases[i].reason);
        free(err);
    }
    /* Last: this process's own (embedded) templates, loaded once, must not be loaded before. */
    {
        const nj_templates *t;
        unsetenv("NORMJIT_KERNEL_DIR");
        assert_int_equal(nj_templates_get(&t), NORMJIT_OK);
        assert_non_null(strstr(good, t->digest));
    }
    free(good);
}

/* Child: load NVRTC from NORMJIT_NVRTC = arg; print the result on stderr. */
static int load_nvrtc(const char *path)
{
    const nj_nvrtc *n;
    int status;
    setenv("NORMJIT_NVRTC", path, 1);
    status = nj_nvrtc_load(&n);
    fprintf(stderr, "%s: %s\n", normjit_status_name(status), normjit_last_error());
    return status == NORMJIT_ENONVRTC ? 0 : 1;
}

static void test_nvrtc_path(void **state)
{
    char fifo[512], folder[512], expect[600], *err;
    Dl_info info;
    (void)state;

    /* A real library that is not NVRTC (the one holding cos()): named in the message. */
    assert_true(dladdr((void *)(uintptr_t)&cos, &info) != 0);
    assert_non_null(info.dli_fname);
    assert_int_equal(in_child(load_nvrtc, info.dli_fname, &err), 0);
    snprintf(expect, sizeof expect, "cannot use %s (NORMJIT_NVRTC) as NVRTC: it lacks nvrtc",
             info.dli_fname);
    if (!strstr(err, expect))
        fail_msg("expected \"%s\" in \"%s\"", expect, err);
    free(err);

    /* A FIFO or a folder there: refused before dlopen, which would block or fail obscurely. */
    path_of("nvrtc-fifo", fifo, sizeof fifo);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_int_equal(in_child(load_nvrtc, fifo, &err), 0);
    snprintf(expect, sizeof expect, "cannot load NVRTC from %s (NORMJIT_NVRTC): is a FIFO", fifo);
    if (!strstr(err, expect))
        fail_msg("expected \"%s\" in \"%s\"", expect, err);
    free(err);
    path_of("nvrtc-folder", folder, sizeof folder);
    assert_int_equal(mkdir(folder, 0700), 0);
    assert_int_equal(in_child(load_nvrtc, folder, &err), 0);
    assert_non_null(strstr(err, "is a directory, not a regular file"));
    free(err);
}

/* ------------------------------------------------------------------------ */
/* NORMJIT_LOG                                                               */

/* Child: two loggers from NORMJIT_LOG = arg, one warning through each. */
static int two_loggers(const char *value)
{
    nj_logger a, b;
    setenv("NORMJIT_LOG", value, 1);
    nj_logger_init(&a, NULL, NULL, NORMJIT_LOG_WARN);
    nj_logger_init(&b, NULL, NULL, NORMJIT_LOG_WARN);
    nj_log(&a, NORMJIT_LOG_WARN, "first");
    nj_log(&b, NORMJIT_LOG_WARN, "second");
    nj_log(&b, NORMJIT_LOG_DEBUG, "debug detail");
    return 0;
}

static void test_log_env(void **state)
{
    static const char accepted[] = "is not one of 0, 1, error, warn, warning, info, debug";
    char *err;
    (void)state;
    /* An unknown value: warnings still print, and one line (per process) says what is accepted. */
    assert_int_equal(in_child(two_loggers, "bogus", &err), 0);
    if (!strstr(err, "NORMJIT_LOG=bogus") || !strstr(err, accepted) ||
        strstr(strstr(err, accepted) + 1, accepted) || !strstr(err, "first") ||
        !strstr(err, "second") || strstr(err, "debug detail"))
        fail_msg("NORMJIT_LOG=bogus printed:\n%s", err);
    free(err);
    /* Known values say nothing of the kind. */
    assert_int_equal(in_child(two_loggers, "DEBUG", &err), 0);
    if (strstr(err, accepted) || !strstr(err, "debug detail"))
        fail_msg("NORMJIT_LOG=DEBUG printed:\n%s", err);
    free(err);
    assert_int_equal(in_child(two_loggers, "0", &err), 0);
    assert_string_equal(err, "");
    free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_file_kinds),
        cmocka_unit_test(test_file_cap_while_reading),
        cmocka_unit_test(test_tuning_files),
        cmocka_unit_test(test_tuning_unreadable),
        cmocka_unit_test(test_templates),
        cmocka_unit_test(test_nvrtc_path),
        cmocka_unit_test(test_log_env),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
