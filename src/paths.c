#include "paths.h"

#include "status.h"

#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *p = malloc(la + lb + 2);
    if (p) {
        memcpy(p, a, la);
        p[la] = '/';
        memcpy(p + la + 1, b, lb + 1);
    }
    return p;
}

int nj_user_path(const char *explicit_dir, const char *override_env, const char *xdg_env, const char *xdg_suffix,
                 const char *home_suffix, char **out)
{
    const char *base, *suffix = NULL;
    char *path, cwd[PATH_MAX];

    *out = NULL;
    if ((base = explicit_dir) && *base)
        ;
    else if ((base = getenv(override_env)) && *base)
        ;
    else if ((base = getenv(xdg_env)) && *base == '/')
        suffix = xdg_suffix;
    else {
        struct passwd *pw;
        base = getenv("HOME");
        if ((!base || !*base) && (pw = getpwuid(geteuid())) != NULL)
            base = pw->pw_dir;
        if (!base || !*base)
            return nj_fail(NORMJIT_EIO, "no home directory: set %s (HOME is not set)",
                           override_env);
        suffix = home_suffix;
    }
    path = suffix ? join(base, suffix) : strdup(base);
    if (path && path[0] != '/') {
        char *abs;
        if (!getcwd(cwd, sizeof cwd)) {
            free(path);
            return nj_fail(NORMJIT_EIO, "cannot resolve the relative directory in %s: %s",
                           override_env, strerror(errno));
        }
        abs = join(cwd, path);
        free(path);
        path = abs;
    }
    if (!path)
        return nj_fail(NORMJIT_ENOMEM, "out of memory");
    *out = path;
    return NORMJIT_OK;
}
