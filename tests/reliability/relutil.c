#include "relutil.h"

#include "cache_scan.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

const char *rel_tool;
char rel_tmp[64];

int rel_setup(const char *name)
{
    char dflt[sizeof rel_tmp + 16];
    snprintf(rel_tmp, sizeof rel_tmp, "/tmp/normjit-%s-XXXXXX", name);
    if (!mkdtemp(rel_tmp))
        return -1;
    /* Children inherit these: nothing may reach the user's own cache or tuning tables. */
    snprintf(dflt, sizeof dflt, "%s/default-cache", rel_tmp);
    setenv("NORMJIT_CACHE_DIR", dflt, 1);
    setenv("NORMJIT_TUNING_DIR", rel_tmp, 1);
    unsetenv("NORMJIT_TUNING_FILE");
    unsetenv("NORMJIT_LOG");
    unsetenv("XDG_CACHE_HOME");
    return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    if (flag == FTW_DP || flag == FTW_D)
        chmod(path, 0700); /* a test may have left a folder unwritable */
    return remove(path) != 0 && errno != ENOENT ? -1 : 0;
}

int rel_rm_rf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : -1;
    return nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int rel_teardown(void)
{
    return rel_tmp[0] ? rel_rm_rf(rel_tmp) : 0;
}

static void child_exec(const char *const *args, int fd)
{
    const char *argv[40];
    int n = 0;
    alarm(REL_CHILD_TIMEOUT); /* kept across execv */
    argv[n++] = rel_tool;
    while (*args && n < 39)
        argv[n++] = *args++;
    argv[n] = NULL;
    dup2(fd, STDOUT_FILENO);
    dup2(fd, STDERR_FILENO);
    if (fd > STDERR_FILENO)
        close(fd);
    execv(rel_tool, (char *const *)argv);
    _exit(127);
}

int rel_wait(pid_t pid)
{
    int status;
    while (waitpid(pid, &status, 0) != pid)
        if (errno != EINTR)
            fail_msg("waitpid(%d): %s", (int)pid, strerror(errno));
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

int rel_run(const char *const *args, char **out)
{
    return rel_run_as(-1, args, out);
}

int rel_run_as(int uid, const char *const *args, char **out)
{
    int fds[2];
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap);
    pid_t pid;

    assert_non_null(buf);
    assert_int_equal(pipe(fds), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        if (uid != -1 && (setgid((gid_t)uid) != 0 || setuid((uid_t)uid) != 0))
            _exit(REL_NOT_THAT_USER);
        child_exec(args, fds[1]);
    }
    close(fds[1]);
    for (;;) {
        ssize_t got;
        if (len + 1 == cap) {
            buf = realloc(buf, cap *= 2);
            assert_non_null(buf);
        }
        got = read(fds[0], buf + len, cap - len - 1);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        len += (size_t)got;
    }
    buf[len] = '\0';
    close(fds[0]);
    *out = buf;
    return rel_wait(pid);
}

char *rel_expect(int status, const char *const *args)
{
    char *out, cmd[512] = "";
    int got = rel_run(args, &out), i;
    if (got != status) {
        for (i = 0; args[i]; i++) {
            strncat(cmd, " ", sizeof cmd - strlen(cmd) - 1);
            strncat(cmd, args[i], sizeof cmd - strlen(cmd) - 1);
        }
        fail_msg("normjit%s exited %d, expected %d; output:\n%s", cmd, got, status, out);
    }
    return out;
}

pid_t rel_spawn(const char *const *args, const char *log)
{
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    pid_t pid;
    assert_true(fd >= 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        child_exec(args, fd);
    close(fd);
    return pid;
}

char *rel_slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long len;
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    len = ftell(f);
    rewind(f);
    buf = malloc((size_t)(len < 0 ? 0 : len) + 1);
    if (buf) {
        size_t got = fread(buf, 1, (size_t)(len < 0 ? 0 : len), f);
        buf[got] = '\0';
    }
    fclose(f);
    return buf;
}

static int tally(const nj_cache_file *f, void *user)
{
    size_t *counts = user;
    counts[f->is_temp ? 1 : 0]++;
    return 0;
}

void rel_count(const char *root, size_t *entries, size_t *temps)
{
    size_t counts[2] = {0, 0};
    assert_int_equal(nj_cache_scan(root, tally, counts), 0);
    *entries = counts[0];
    *temps = counts[1];
}

struct gather {
    char **paths;
    size_t n, cap;
    int is_temp;
};

static int gather_one(const nj_cache_file *f, void *user)
{
    struct gather *g = user;
    if (f->is_temp != g->is_temp)
        return 0;
    if (g->n + 2 > g->cap) {
        g->cap = g->cap ? g->cap * 2 : 16;
        g->paths = realloc(g->paths, g->cap * sizeof *g->paths);
        assert_non_null(g->paths);
    }
    g->paths[g->n] = strdup(f->path);
    assert_non_null(g->paths[g->n]);
    g->n++;
    return 0;
}

static int by_string(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

char **rel_paths(const char *root, int is_temp)
{
    struct gather g = {NULL, 0, 0, is_temp};
    assert_int_equal(nj_cache_scan(root, gather_one, &g), 0);
    if (!g.paths) {
        g.paths = calloc(1, sizeof *g.paths);
        assert_non_null(g.paths);
    }
    qsort(g.paths, g.n, sizeof *g.paths, by_string);
    g.paths[g.n] = NULL;
    return g.paths;
}

void rel_free_paths(char **paths)
{
    size_t i;
    for (i = 0; paths && paths[i]; i++)
        free(paths[i]);
    free(paths);
}

void rel_age(const char *path, long seconds_ago)
{
    struct timespec times[2];
    clock_gettime(CLOCK_REALTIME, &times[0]);
    times[0].tv_sec -= seconds_ago;
    times[1] = times[0];
    if (utimensat(AT_FDCWD, path, times, AT_SYMLINK_NOFOLLOW) != 0)
        fail_msg("utimensat %s: %s", path, strerror(errno));
}

long rel_warm_kernels(const char *out, unsigned *compiled, unsigned *cached)
{
    const char *line = strstr(out, "warm: "), *counts;
    unsigned kernels, c, d;
    if (!line || sscanf(line, "warm: %u kernel", &kernels) != 1 ||
        !(counts = strstr(line, " s: ")) ||
        sscanf(counts, " s: %u compiled, %u already cached", &c, &d) != 2)
        return -1;
    if (compiled)
        *compiled = c;
    if (cached)
        *cached = d;
    return (long)kernels;
}

void rel_expect_all(const char *hay, const char *const *needles, const char *what)
{
    size_t i;
    for (i = 0; needles[i]; i++)
        if (!strstr(hay, needles[i]))
            fail_msg("%s: expected \"%s\" in:\n%s", what, needles[i], hay);
}

size_t rel_count_str(const char *hay, const char *needle)
{
    size_t n = 0, len = strlen(needle);
    while ((hay = strstr(hay, needle)) != NULL) {
        n++;
        hay += len;
    }
    return n;
}

uint64_t rel_rand(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
