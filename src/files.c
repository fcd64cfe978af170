#include "files.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Read in pieces of this size when the file's size is not known in advance. */
#define READ_CHUNK 65536

const char *nj_file_kind(mode_t mode)
{
    if (S_ISREG(mode))
        return "a regular file";
    if (S_ISDIR(mode))
        return "a directory";
    if (S_ISLNK(mode))
        return "a symbolic link";
    if (S_ISFIFO(mode))
        return "a FIFO";
    if (S_ISSOCK(mode))
        return "a socket";
    if (S_ISCHR(mode))
        return "a character device";
    if (S_ISBLK(mode))
        return "a block device";
    return "an unknown kind of file";
}

static int fail_errno(nj_file_error *e, int err)
{
    e->err = err;
    snprintf(e->text, sizeof e->text, "%s", strerror(err));
    return -1;
}

static int fail_kind(nj_file_error *e, mode_t mode)
{
    e->err = 0;
    if (S_ISLNK(mode))
        snprintf(e->text, sizeof e->text, "is a symbolic link, which is not followed here");
    else
        snprintf(e->text, sizeof e->text, "is %s, not a regular file", nj_file_kind(mode));
    return -1;
}

/* "64 MiB (67108864 bytes)" or "1000 bytes". */
static void cap_text(uint64_t cap, char *out, size_t size)
{
    if (cap >= (1u << 20) && cap % (1u << 20) == 0)
        snprintf(out, size, "%llu MiB (%llu bytes)", (unsigned long long)(cap >> 20),
                 (unsigned long long)cap);
    else
        snprintf(out, size, "%llu bytes", (unsigned long long)cap);
}

/* How an over-cap file was found. */
enum { SIZE_FROM_FSTAT, SIZE_GREW, SIZE_WHILE_READING };

static int fail_size(nj_file_error *e, uint64_t size, int how, uint64_t cap)
{
    char limit[64];
    cap_text(cap, limit, sizeof limit);
    e->err = EFBIG;
    if (how == SIZE_FROM_FSTAT)
        snprintf(e->text, sizeof e->text, "is %llu bytes, over the limit of %s",
                 (unsigned long long)size, limit);
    else if (how == SIZE_GREW)
        snprintf(e->text, sizeof e->text, "grew past the limit of %s while being read", limit);
    else
        snprintf(e->text, sizeof e->text, "is over the limit of %s", limit);
    return -1;
}

int nj_file_open(int dirfd, const char *path, unsigned flags, uint64_t max_bytes,
                 struct stat *st, nj_file_error *e)
{
    int nofollow = (flags & NJ_FILE_NOFOLLOW) != 0, fd;
    struct stat before;

    /* Look first, so that a FIFO or a device is never opened at all. */
    if (fstatat(dirfd, path, &before, nofollow ? AT_SYMLINK_NOFOLLOW : 0) != 0)
        return fail_errno(e, errno);
    if (!S_ISREG(before.st_mode))
        return fail_kind(e, before.st_mode);
    fd = openat(dirfd, path,
                O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC | (nofollow ? O_NOFOLLOW : 0));
    if (fd < 0) {
        int err = errno;
        /* Replaced between the look and the open: say by what, if it is still there. */
        if (err != ENOENT && fstatat(dirfd, path, &before, AT_SYMLINK_NOFOLLOW) == 0 &&
            !S_ISREG(before.st_mode))
            return fail_kind(e, before.st_mode);
        return fail_errno(e, err);
    }
    if (fstat(fd, st) != 0) {
        int err = errno;
        close(fd);
        return fail_errno(e, err);
    }
    if (!S_ISREG(st->st_mode)) {
        close(fd);
        return fail_kind(e, st->st_mode);
    }
    if ((uint64_t)st->st_size > max_bytes) {
        close(fd);
        return fail_size(e, (uint64_t)st->st_size, SIZE_FROM_FSTAT, max_bytes);
    }
    return fd;
}

int nj_file_read_fd(int fd, uint64_t max_bytes, nj_buf *out, nj_file_error *e)
{
    struct stat st;
    size_t expect = READ_CHUNK;
    int sized = 0;

    nj_buf_reset(out);
    /* Room for the whole file at once when its size is known (procfs files say 0). */
    if (fstat(fd, &st) == 0 && st.st_size > 0 && (uint64_t)st.st_size <= max_bytes &&
        (uint64_t)st.st_size < SIZE_MAX / 2) {
        expect = (size_t)st.st_size + 1; /* +1: the read that finds the end */
        sized = 1;
    }
    for (;;) {
        size_t room;
        ssize_t n;
        if (!nj_buf_reserve(out, out->len < expect ? expect - out->len : READ_CHUNK))
            return fail_errno(e, ENOMEM);
        room = out->cap - out->len - 1;
        /* Never read more than one byte past the cap: enough to know it is over. */
        if (max_bytes < UINT64_MAX && room > max_bytes + 1 - out->len)
            room = (size_t)(max_bytes + 1 - out->len);
        n = read(fd, out->data + out->len, room);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return fail_errno(e, errno);
        if (n == 0)
            break;
        out->len += (size_t)n;
        if ((uint64_t)out->len > max_bytes)
            return fail_size(e, (uint64_t)out->len, sized ? SIZE_GREW : SIZE_WHILE_READING,
                             max_bytes);
    }
    out->data[out->len] = '\0';
    return 0;
}

int nj_file_read(int dirfd, const char *path, unsigned flags, uint64_t max_bytes, nj_buf *out,
                 nj_file_error *e)
{
    struct stat st;
    int fd = nj_file_open(dirfd, path, flags, max_bytes, &st, e), rc;
    if (fd < 0)
        return -1;
    rc = nj_file_read_fd(fd, max_bytes, out, e);
    close(fd);
    return rc;
}

int nj_file_fail(int status, const char *what, const char *path, const nj_file_error *e)
{
    return nj_fail(status, "%s %s: %s", what, path, e->text);
}
