#include "disk_cache.h"

#include "cache_entry.h"
#include "cache_key.h"
#include "paths.h"
#include "files.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Warning kinds, each logged once per cache. */
enum {
    WARN_UNUSABLE = 1u << 0,
    WARN_READONLY = 1u << 1,
    WARN_WRITE = 1u << 2,
    WARN_CORRUPT = 1u << 3,
    WARN_UNTRUSTED_ENTRY = 1u << 4,
    WARN_READ = 1u << 5,
    WARN_FOLDER = 1u << 6,
    WARN_ENTRY_KIND = 1u << 7
};

/* Why a file or folder others may change is never loaded from. */
static const char trust_reason[] = "a cached kernel is code that would run in this process";

enum { ROOT_UNCHECKED = 0, ROOT_USABLE = 1, ROOT_DISABLED = -1 };

struct nj_disk_cache {
    char *root;
    const nj_logger *log;
    nj_disk_io io;
    pthread_mutex_t mu; /* guards the root check */
    atomic_int state;
    int writable;
    char why[1536]; /* why the root is not usable (ROOT_DISABLED) or not writable */
    atomic_uint warned;
};

static ssize_t default_write(int fd, const void *data, size_t len)
{
    return write(fd, data, len);
}

static const nj_disk_io default_io = {default_write, fsync, rename};

static void warn_once(nj_disk_cache *c, unsigned kind, const char *fmt, ...) NJ_PRINTF(3, 4);

static void warn_once(nj_disk_cache *c, unsigned kind, const char *fmt, ...)
{
    char msg[1536];
    va_list ap;
    if (atomic_fetch_or(&c->warned, kind) & kind)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    nj_log(c->log, NORMJIT_LOG_WARN, "%s", msg);
}

int nj_disk_cache_resolve(const char *explicit_dir, char **out)
{
    int status = nj_user_path(explicit_dir, "NORMJIT_CACHE_DIR", "XDG_CACHE_HOME", "normjit",
                              ".cache/normjit", out);
    return status == NORMJIT_OK ? status : nj_fail_prefix(status, "no kernel cache directory");
}

int nj_disk_cache_open(const char *root, const nj_logger *log, nj_disk_cache **out)
{
    nj_disk_cache *c = calloc(1, sizeof *c);
    *out = NULL;
    if (!c || !(c->root = strdup(root))) {
        free(c);
        return nj_fail(NORMJIT_ENOMEM, "out of memory");
    }
    c->log = log;
    c->io = default_io;
    pthread_mutex_init(&c->mu, NULL);
    atomic_init(&c->state, ROOT_UNCHECKED);
    atomic_init(&c->warned, 0);
    *out = c;
    return NORMJIT_OK;
}

void nj_disk_cache_close(nj_disk_cache *c)
{
    if (!c)
        return;
    pthread_mutex_destroy(&c->mu);
    free(c->root);
    free(c);
}

const char *nj_disk_cache_root(const nj_disk_cache *c)
{
    return c->root;
}

void nj_disk_cache_set_io(nj_disk_cache *c, const nj_disk_io *io)
{
    c->io = io ? *io : default_io;
}

int nj_mkdir_p(const char *path, mode_t mode)
{
    char buf[PATH_MAX];
    size_t i, len = strlen(path);
    struct stat st;

    if (len == 0 || len >= sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(buf, path, len + 1);
    for (i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        buf[i] = '\0';
        if (mkdir(buf, mode) != 0 && errno != EEXIST)
            return -1;
        buf[i] = i == len ? '\0' : '/';
    }
    if (stat(path, &st) != 0)
        return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

const char *nj_disk_untrusted(const struct stat *st)
{
    if (st->st_uid != geteuid())
        return "owned by another user";
    if (st->st_mode & (S_IWGRP | S_IWOTH))
        return "writable by group or others";
    return NULL;
}

int nj_disk_trusted(const struct stat *st)
{
    return nj_disk_untrusted(st) == NULL;
}

int nj_disk_root_check(const char *root, char *why, size_t why_size)
{
    struct stat st, lst;
    if (stat(root, &st) != 0) {
        int err = errno;
        if (err == ENOENT && lstat(root, &lst) == 0 && S_ISLNK(lst.st_mode)) {
            snprintf(why, why_size, "%s is a symbolic link to a folder that does not exist",
                     root);
            return NJ_ROOT_REFUSED;
        }
        if (err == ENOENT || err == ENOTDIR)
            return NJ_ROOT_MISSING; /* ENOTDIR: a parent is a file; creating it says so */
        snprintf(why, why_size, "cannot look at %s: %s", root, strerror(err));
        return NJ_ROOT_REFUSED;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(why, why_size, "%s is %s, not a directory", root, nj_file_kind(st.st_mode));
        return NJ_ROOT_REFUSED;
    }
    if (!nj_disk_trusted(&st)) {
        snprintf(why, why_size,
                 "%s is %s, and %s", root, nj_disk_untrusted(&st), trust_reason);
        return NJ_ROOT_REFUSED;
    }
    return NJ_ROOT_OK;
}

const char *nj_disk_folder_problem(const struct stat *lst)
{
    if (S_ISLNK(lst->st_mode))
        return "a symbolic link, which is not followed below the cache root";
    if (S_ISREG(lst->st_mode))
        return "a regular file where the cache has a folder";
    if (!S_ISDIR(lst->st_mode))
        return "a special file (FIFO, socket or device) where the cache has a folder";
    return nj_disk_untrusted(lst);
}

static void check_root(nj_disk_cache *c)
{
    char why[sizeof c->why - 256];
    int state = ROOT_DISABLED, r = nj_disk_root_check(c->root, why, sizeof why);

    if (r == NJ_ROOT_MISSING) {
        if (nj_mkdir_p(c->root, 0700) != 0) {
            snprintf(c->why, sizeof c->why, "cannot create kernel cache directory %s: %s",
                     c->root, strerror(errno));
            warn_once(c, WARN_UNUSABLE,
                      "%s; compiled kernels are kept in memory only (set NORMJIT_CACHE_DIR to a "
                      "writable directory)",
                      c->why);
            goto done;
        }
        /* Made just now (or by another process meanwhile): checked like any other. */
        if ((r = nj_disk_root_check(c->root, why, sizeof why)) == NJ_ROOT_MISSING)
            snprintf(why, sizeof why, "%s was removed as it was created", c->root);
    }
    if (r != NJ_ROOT_OK) {
        snprintf(c->why, sizeof c->why, "not using kernel cache directory: %s", why);
        warn_once(c, WARN_UNUSABLE,
                  "%s; kernels are kept in memory only (make it a directory of yours with mode "
                  "0700, or set NORMJIT_CACHE_DIR)",
                  c->why);
        goto done;
    }
    state = ROOT_USABLE;
    c->writable = access(c->root, W_OK) == 0;
    if (!c->writable) {
        snprintf(c->why, sizeof c->why, "kernel cache directory %s is not writable", c->root);
        warn_once(c, WARN_READONLY,
                  "%s: cached kernels are loaded from it, newly compiled ones are kept in memory "
                  "only",
                  c->why);
    }
done:
    atomic_store(&c->state, state);
}

int nj_disk_cache_usable(nj_disk_cache *c)
{
    if (atomic_load(&c->state) == ROOT_UNCHECKED) {
        pthread_mutex_lock(&c->mu);
        if (atomic_load(&c->state) == ROOT_UNCHECKED)
            check_root(c);
        pthread_mutex_unlock(&c->mu);
    }
    return atomic_load(&c->state) == ROOT_USABLE;
}

void nj_disk_cache_entry_path(const char *root, const char *target, const char *digest,
                              char *out, size_t size)
{
    snprintf(out, size, "%s/v%d/%s/%.2s/%s.njc", root, NJ_CACHE_SCHEMA, target, digest, digest);
}

/*
 * Open the folder of `digest` (<root>/v<S>/<target>/<xx>) without following a
 * link below the root, each folder checked by nj_disk_folder_problem; with
 * `create`, missing folders are made (mode 0700). Returns the descriptor, or
 * -1: with why[0] == '\0' when a folder is missing, else with the reason.
 */
static int open_folder(nj_disk_cache *c, const char *target, const char *digest, int create,
                       char *why, size_t why_size)
{
    char schema[16], bucket[3], path[PATH_MAX];
    const char *parts[3];
    struct stat st;
    int fd, i;

    why[0] = '\0';
    snprintf(schema, sizeof schema, "v%d", NJ_CACHE_SCHEMA);
    snprintf(bucket, sizeof bucket, "%.2s", digest);
    parts[0] = schema;
    parts[1] = target;
    parts[2] = bucket;
    /* The root itself may be a link; it passed nj_disk_root_check, and must still now. */
    fd = open(c->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && create && nj_mkdir_p(c->root, 0700) == 0)
        fd = open(c->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        if (errno != ENOENT || create)
            snprintf(why, why_size, "cannot open %s: %s", c->root, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) != 0 || !nj_disk_trusted(&st)) {
        snprintf(why, why_size, "%s is no longer a directory of this user only", c->root);
        close(fd);
        return -1;
    }
    snprintf(path, sizeof path, "%s", c->root);
    for (i = 0; i < 3; i++) {
        const char *problem = NULL;
        int next, err;
        snprintf(path + strlen(path), sizeof path - strlen(path), "/%s", parts[i]);
        next = openat(fd, parts[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (next < 0 && errno == ENOENT && create) {
            if (mkdirat(fd, parts[i], 0700) != 0 && errno != EEXIST) {
                snprintf(why, why_size, "cannot create %s: %s", path, strerror(errno));
                close(fd);
                return -1;
            }
            next = openat(fd, parts[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK |
                                            O_CLOEXEC);
        }
        err = errno;
        if (next >= 0) {
            if (fstat(next, &st) != 0 || (problem = nj_disk_folder_problem(&st)) != NULL) {
                close(next);
                next = -1;
            }
        } else if (err != ENOENT && fstatat(fd, parts[i], &st, AT_SYMLINK_NOFOLLOW) == 0) {
            problem = nj_disk_folder_problem(&st);
        }
        close(fd);
        if (next < 0) {
            if (problem)
                snprintf(why, why_size, "%s is %s", path, problem);
            else if (err != ENOENT || create)
                snprintf(why, why_size, "cannot open %s: %s", path, strerror(err));
            return -1;
        }
        fd = next;
    }
    return fd;
}

int nj_disk_cache_load(nj_disk_cache *c, const char *target, const char *digest,
                       const char *key, size_t key_len, nj_buf *payload)
{
    char path[PATH_MAX], why[PATH_MAX + 128];
    const char *name, *untrusted;
    struct stat st;
    nj_buf file = {0};
    nj_entry_view view;
    nj_file_error e;
    int dir, fd, result, hit = 0;

    if (!nj_disk_cache_usable(c))
        return 0;
    nj_disk_cache_entry_path(c->root, target, digest, path, sizeof path);
    name = strrchr(path, '/') + 1;
    if ((dir = open_folder(c, target, digest, 0, why, sizeof why)) < 0) {
        if (why[0])
            warn_once(c, WARN_FOLDER, "not using kernel cache folder: %s; recompiling", why);
        return 0;
    }
    fd = nj_file_open(dir, name, NJ_FILE_NOFOLLOW, NJ_ENTRY_MAX_FILE, &st, &e);
    close(dir);
    if (fd < 0) {
        if (e.err == EFBIG)
            warn_once(c, WARN_CORRUPT, "ignoring kernel cache entry %s: it %s; recompiling it",
                      path, e.text);
        else if (e.err == 0)
            warn_once(c, WARN_ENTRY_KIND, "not loading kernel cache entry %s: it %s; recompiling",
                      path, e.text);
        else if (e.err != ENOENT)
            warn_once(c, WARN_READ, "cannot open kernel cache entry %s: %s; recompiling", path,
                      e.text);
        return 0;
    }
    if ((untrusted = nj_disk_untrusted(&st)) != NULL) {
        warn_once(c, WARN_UNTRUSTED_ENTRY,
                  "not loading kernel cache entry %s: it is %s, and %s; recompiling", path,
                  untrusted, trust_reason);
        goto done;
    }
    if (nj_file_read_fd(fd, NJ_ENTRY_MAX_FILE, &file, &e) != 0) {
        warn_once(c, WARN_READ, "cannot read kernel cache entry %s: %s; recompiling", path,
                  e.text);
        goto done;
    }
    result = nj_entry_parse(file.data, file.len, key, key_len, &view);
    if (result != NJ_ENTRY_OK) {
        warn_once(c, WARN_CORRUPT, "ignoring kernel cache entry %s (%s); recompiling it", path,
                  nj_entry_problem(result));
        goto done;
    }
    nj_buf_reset(payload);
    nj_buf_append(payload, view.payload, view.payload_len);
    hit = !payload->oom;
    futimens(fd, NULL); /* last use, for pruning least recently used entries */
done:
    nj_buf_free(&file);
    close(fd);
    return hit;
}

static int write_all(nj_disk_cache *c, int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = c->io.write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO;
            return -1;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

int nj_disk_cache_store(nj_disk_cache *c, const char *target, const char *digest,
                        const char *key, size_t key_len, const void *payload, size_t payload_len)
{
    char path[PATH_MAX], tmp[PATH_MAX + 32], why[PATH_MAX + 256];
    nj_buf entry = {0};
    int fd = -1, dir, saved;
    const char *step = "encode";

    nj_disk_cache_entry_path(c->root, target, digest, path, sizeof path);
    if (!nj_disk_cache_usable(c) || !c->writable)
        return nj_fail(NORMJIT_EIO, "kernel %s not stored: %s", path, c->why);
    if (nj_entry_encode(key, key_len, payload, payload_len, &entry) != NORMJIT_OK) {
        errno = ENOMEM;
        goto fail;
    }
    if ((dir = open_folder(c, target, digest, 1, why, sizeof why)) < 0) {
        nj_buf_free(&entry);
        warn_once(c, WARN_FOLDER,
                  "cannot store kernels in cache folder: %s; they are kept in memory only", why);
        return nj_fail(NORMJIT_EIO, "cannot store kernel cache entry %s: %s", path, why);
    }
    close(dir);
    snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path);
    step = "create";
    if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0)
        goto fail;
    step = "write";
    if (write_all(c, fd, entry.data, entry.len) != 0)
        goto fail_unlink;
    step = "fsync";
    if (c->io.fsync(fd) != 0)
        goto fail_unlink;
    step = "close";
    if (close(fd) != 0) {
        fd = -1;
        goto fail_unlink;
    }
    fd = -1;
    step = "rename";
    if (c->io.rename(tmp, path) != 0)
        goto fail_unlink;
    nj_buf_free(&entry);
    return NORMJIT_OK;

fail_unlink:
    saved = errno;
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    errno = saved;
fail:
    saved = errno;
    nj_buf_free(&entry);
    warn_once(c, WARN_WRITE,
              "cannot store kernel cache entry %s (%s: %s); kernels that cannot be stored are "
              "kept in memory only",
              path, step, strerror(saved));
    return nj_fail(NORMJIT_EIO, "cannot store kernel cache entry %s (%s: %s)", path, step,
                   strerror(saved));
}

void nj_disk_cache_remove(nj_disk_cache *c, const char *target, const char *digest)
{
    char path[PATH_MAX], why[PATH_MAX + 128];
    int dir;
    if (!nj_disk_cache_usable(c))
        return;
    nj_disk_cache_entry_path(c->root, target, digest, path, sizeof path);
    if ((dir = open_folder(c, target, digest, 0, why, sizeof why)) < 0)
        return;
    unlinkat(dir, strrchr(path, '/') + 1, 0);
    close(dir);
}
