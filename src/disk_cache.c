#include "disk_cache.h"

#include "cache_entry.h"
#include "cache_key.h"
#include "paths.h"

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
    WARN_READ = 1u << 5
};

enum { ROOT_UNCHECKED = 0, ROOT_USABLE = 1, ROOT_DISABLED = -1 };

struct nj_disk_cache {
    char *root;
    const nj_logger *log;
    nj_disk_io io;
    pthread_mutex_t mu; /* guards the root check */
    atomic_int state;
    int writable;
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

int nj_disk_trusted(const struct stat *st)
{
    return st->st_uid == geteuid() && (st->st_mode & (S_IWGRP | S_IWOTH)) == 0;
}

static void check_root(nj_disk_cache *c)
{
    struct stat st;
    int state = ROOT_DISABLED;

    if (nj_mkdir_p(c->root, 0700) != 0) {
        warn_once(c, WARN_UNUSABLE,
                  "cannot create kernel cache directory %s: %s; compiled kernels are kept in "
                  "memory only (set NORMJIT_CACHE_DIR to a writable directory)",
                  c->root, strerror(errno));
    } else if (stat(c->root, &st) != 0) {
        warn_once(c, WARN_UNUSABLE, "cannot use kernel cache directory %s: %s", c->root,
                  strerror(errno));
    } else if (!nj_disk_trusted(&st)) {
        warn_once(c, WARN_UNUSABLE,
                  "not using kernel cache directory %s: it is %s, and a cached kernel is code "
                  "that would run in this process; kernels are kept in memory only (make it "
                  "yours with mode 0700, or set NORMJIT_CACHE_DIR)",
                  c->root,
                  st.st_uid != geteuid() ? "owned by another user"
                                         : "writable by group or others");
    } else {
        state = ROOT_USABLE;
        c->writable = access(c->root, W_OK) == 0;
        if (!c->writable)
            warn_once(c, WARN_READONLY,
                      "kernel cache directory %s is not writable: cached kernels are loaded "
                      "from it, newly compiled ones are kept in memory only",
                      c->root);
    }
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

static int read_all(int fd, size_t len, nj_buf *out)
{
    nj_buf_reset(out);
    if (!nj_buf_reserve(out, len))
        return 0;
    while (out->len < len) {
        ssize_t n = read(fd, out->data + out->len, len - out->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return 0;
        out->len += (size_t)n;
    }
    out->data[out->len] = '\0';
    return 1;
}

int nj_disk_cache_load(nj_disk_cache *c, const char *target, const char *digest,
                       const char *key, size_t key_len, nj_buf *payload)
{
    char path[PATH_MAX];
    struct stat st;
    nj_buf file = {0};
    nj_entry_view view;
    int fd, result, hit = 0;

    if (!nj_disk_cache_usable(c))
        return 0;
    nj_disk_cache_entry_path(c->root, target, digest, path, sizeof path);
    fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno != ENOENT && errno != ENOTDIR)
            warn_once(c, WARN_READ, "cannot open kernel cache entry %s: %s; recompiling", path,
                      strerror(errno));
        return 0;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || !nj_disk_trusted(&st)) {
        warn_once(c, WARN_UNTRUSTED_ENTRY,
                  "not loading kernel cache entry %s: not a regular file of this user that "
                  "only this user can write; recompiling",
                  path);
        goto done;
    }
    if ((uint64_t)st.st_size > NJ_ENTRY_HEADER_SIZE + (uint64_t)NJ_ENTRY_MAX_KEY +
                                   NJ_ENTRY_MAX_PAYLOAD) {
        warn_once(c, WARN_CORRUPT, "ignoring oversized kernel cache entry %s; recompiling",
                  path);
        goto done;
    }
    if (!read_all(fd, (size_t)st.st_size, &file)) {
        warn_once(c, WARN_READ, "cannot read kernel cache entry %s; recompiling", path);
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
                         const char *key, size_t key_len, const void *payload,
                         size_t payload_len)
{
    char path[PATH_MAX], tmp[PATH_MAX + 32], *slash;
    nj_buf entry = {0};
    int fd = -1, saved;
    const char *step = "encode";

    if (!nj_disk_cache_usable(c) || !c->writable)
        return nj_fail(NORMJIT_EIO, "kernel cache directory %s is not %s", c->root,
                       nj_disk_cache_usable(c) ? "writable" : "usable");
    nj_disk_cache_entry_path(c->root, target, digest, path, sizeof path);
    if (nj_entry_encode(key, key_len, payload, payload_len, &entry) != NORMJIT_OK) {
        errno = ENOMEM;
        goto fail;
    }
    snprintf(tmp, sizeof tmp, "%s", path);
    slash = strrchr(tmp, '/');
    *slash = '\0';
    step = "create directory";
    if (nj_mkdir_p(tmp, 0700) != 0)
        goto fail;
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
    warn_once(c, WARN_WRITE,
              "cannot store a kernel in cache directory %s (%s: %s); compiled kernels that "
              "fail to store are kept in memory only",
              c->root, step, strerror(errno));
    saved = errno;
    nj_buf_free(&entry);
    return nj_fail(NORMJIT_EIO, "cannot store %s (%s: %s)", path, step, strerror(saved));
}

void nj_disk_cache_remove(nj_disk_cache *c, const char *target, const char *digest)
{
    char path[PATH_MAX];
    if (!nj_disk_cache_usable(c))
        return;
    nj_disk_cache_entry_path(c->root, target, digest, path, sizeof path);
    unlink(path);
}
