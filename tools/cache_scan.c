#include "cache_scan.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int is_dot(const char *name)
{
    return name[0] == '.' && (!name[1] || (name[1] == '.' && !name[2]));
}

static int has_suffix(const char *s, const char *suffix)
{
    size_t ls = strlen(s), lx = strlen(suffix);
    return ls > lx && !strcmp(s + ls - lx, suffix);
}

/* Directory entries of `dir` that are directories themselves (by lstat: no symlinks followed). */
static int each_subdir(const char *dir, int (*fn)(const char *path, const char *name, void *u),
                       void *u)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int rc = 0;
    if (!d)
        return errno == ENOENT ? 0 : -1;
    while (!rc && (de = readdir(d)) != NULL) {
        char path[PATH_MAX];
        struct stat st;
        if (is_dot(de->d_name))
            continue;
        if (snprintf(path, sizeof path, "%s/%s", dir, de->d_name) >= (int)sizeof path)
            continue;
        if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
            rc = fn(path, de->d_name, u);
    }
    closedir(d);
    return rc;
}

struct walk {
    nj_cache_visit_fn fn;
    void *user;
    int schema;
    const char *target;
};

static int visit_bucket(const char *path, const char *name, void *u)
{
    struct walk *w = u;
    DIR *d = opendir(path);
    struct dirent *de;
    int rc = 0;
    (void)name;
    if (!d)
        return 0;
    while (!rc && (de = readdir(d)) != NULL) {
        char file[PATH_MAX];
        nj_cache_file f;
        if (is_dot(de->d_name))
            continue;
        if (snprintf(file, sizeof file, "%s/%s", path, de->d_name) >= (int)sizeof file)
            continue;
        if (lstat(file, &f.st) != 0 || !S_ISREG(f.st.st_mode))
            continue;
        f.is_temp = strstr(de->d_name, ".njc.tmp.") != NULL;
        if (!f.is_temp && !has_suffix(de->d_name, ".njc"))
            continue;
        f.path = file;
        f.target = w->target;
        f.schema = w->schema;
        rc = w->fn(&f, w->user);
    }
    closedir(d);
    return rc;
}

static int visit_target(const char *path, const char *name, void *u)
{
    struct walk *w = u;
    w->target = name;
    return each_subdir(path, visit_bucket, w);
}

static int visit_schema(const char *path, const char *name, void *u)
{
    struct walk *w = u;
    char *end;
    long schema;
    if (name[0] != 'v')
        return 0;
    schema = strtol(name + 1, &end, 10);
    if (*end || schema <= 0)
        return 0;
    w->schema = (int)schema;
    return each_subdir(path, visit_target, w);
}

int nj_cache_scan(const char *root, nj_cache_visit_fn fn, void *user)
{
    struct walk w = {fn, user, 0, NULL};
    return each_subdir(root, visit_schema, &w);
}
