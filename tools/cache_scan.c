#include "cache_scan.h"

#include "disk_cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int is_dot(const char *name)
{
    return name[0] == '.' && (!name[1] || (name[1] == '.' && !name[2]));
}

static int has_suffix(const char *s, const char *suffix)
{
    size_t ls = strlen(s), lx = strlen(suffix);
    return ls > lx && !strcmp(s + ls - lx, suffix);
}

/* A run of digits, whole and not empty. */
static int all_digits(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return 0;
    return 1;
}

int nj_cache_layout_name(const char *name, int depth)
{
    switch (depth) {
    case 0:
        return name[0] == 'v' && all_digits(name + 1);
    case 1:
        return (!strncmp(name, "sm_", 3) && all_digits(name + 3)) ||
               (!strncmp(name, "compute_", 8) && all_digits(name + 8));
    case 2:
        return strlen(name) == 2 && strspn(name, "0123456789abcdef") == 2;
    default:
        return 0;
    }
}

struct walk {
    nj_cache_visit_fn fn;
    nj_cache_problem_fn problem;
    void *user;
    int schema;
    const char *target;
};

static void report(struct walk *w, const char *path, const char *why)
{
    if (w->problem)
        w->problem(path, why, w->user);
}

/* "cannot be read: <errno's text>" */
static void report_errno(struct walk *w, const char *path, int err)
{
    char why[128];
    snprintf(why, sizeof why, "cannot be read: %s", strerror(err));
    report(w, path, why);
}

/* Open a folder already checked by lstat, without following a link swapped in since. */
static DIR *open_folder(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    DIR *d;
    if (fd < 0)
        return NULL;
    if (!(d = fdopendir(fd))) {
        int err = errno;
        close(fd);
        errno = err;
    }
    return d;
}

static int visit_files(struct walk *w, DIR *d, const char *dir)
{
    struct dirent *de;
    int rc = 0;
    while (!rc && (de = readdir(d)) != NULL) {
        char path[PATH_MAX];
        nj_cache_file f;
        if (is_dot(de->d_name))
            continue;
        f.is_temp = strstr(de->d_name, ".njc.tmp.") != NULL;
        if (!f.is_temp && !has_suffix(de->d_name, ".njc"))
            continue; /* not a name the library writes */
        if (snprintf(path, sizeof path, "%s/%s", dir, de->d_name) >= (int)sizeof path) {
            report(w, dir, "holds a name too long to handle");
            continue;
        }
        if (lstat(path, &f.st) != 0) {
            if (errno != ENOENT) /* ENOENT: removed since the folder was read */
                report_errno(w, path, errno);
            continue;
        }
        f.path = path;
        f.target = w->target;
        f.schema = w->schema;
        rc = w->fn(&f, w->user);
    }
    return rc;
}

/*
 * The folders inside `dir` at `depth` (0: v<N>, 1: targets, 2: buckets).
 * Folders the library would use are checked by its rule; other names are
 * walked when they are plain folders of this user (their entries are
 * misplaced, which 'verify' says), and otherwise left alone as not normjit's.
 */
static int visit_folders(struct walk *w, const char *dir, int depth)
{
    DIR *d = depth == 0 ? opendir(dir) : open_folder(dir);
    struct dirent *de;
    int rc = 0;

    if (!d) {
        if (errno == ENOENT)
            return 0; /* gone, or a missing root: nothing to see */
        if (depth == 0)
            return -1;
        report_errno(w, dir, errno);
        return 0;
    }
    if (depth == 3) {
        rc = visit_files(w, d, dir);
        closedir(d);
        return rc;
    }
    while (!rc && (de = readdir(d)) != NULL) {
        char path[PATH_MAX];
        const char *problem;
        int layout = nj_cache_layout_name(de->d_name, depth);
        struct stat st;
        if (is_dot(de->d_name) || (depth == 0 && !layout))
            continue; /* at the top, only v<N> folders are the cache's */
        if (snprintf(path, sizeof path, "%s/%s", dir, de->d_name) >= (int)sizeof path) {
            report(w, dir, "holds a name too long to handle");
            continue;
        }
        if (lstat(path, &st) != 0) {
            if (errno != ENOENT)
                report_errno(w, path, errno);
            continue;
        }
        if ((problem = nj_disk_folder_problem(&st)) != NULL) {
            char why[160];
            snprintf(why, sizeof why, "is %s", problem);
            if (layout)
                report(w, path, why);
            continue;
        }
        if (depth == 0) {
            long schema = strtol(de->d_name + 1, NULL, 10); /* LONG_MAX when too long */
            w->schema = schema > INT_MAX ? INT_MAX : (int)schema;
        }
        if (depth == 1)
            w->target = de->d_name;
        rc = visit_folders(w, path, depth + 1);
    }
    closedir(d);
    return rc;
}

int nj_cache_walk(const char *root, nj_cache_visit_fn fn, nj_cache_problem_fn problem,
                  void *user)
{
    struct walk w = {fn, problem, user, 0, NULL};
    return visit_folders(&w, root, 0);
}

int nj_cache_scan(const char *root, nj_cache_visit_fn fn, void *user)
{
    return nj_cache_walk(root, fn, NULL, user);
}
