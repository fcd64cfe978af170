/*
 * Opening and reading files that normjit does not control: cache entries,
 * tuning tables, kernel templates under NORMJIT_KERNEL_DIR, the NVRTC library
 * named by NORMJIT_NVRTC. Every such file goes through nj_file_open, so each
 * is opened the same way:
 *
 *  - never blocking: what the name points at is checked before the open, so a
 *    FIFO, socket or device node is refused without being opened, and the
 *    open is O_NONBLOCK | O_NOCTTY anyway in case the name changed between;
 *  - with NJ_FILE_NOFOLLOW, never through a symbolic link at the last
 *    component (O_NOFOLLOW, and refused by the check before);
 *  - only a regular file (fstat of the opened descriptor) of at most a given
 *    size;
 *  - read with that cap: a file longer than the cap, or one that grows past
 *    it while being read, is an error naming the path and the cap, never
 *    silently cut.
 */
#ifndef NJ_FILES_H
#define NJ_FILES_H

#include "buf.h"

#include <stdint.h>
#include <sys/stat.h>

/* Refuse a symbolic link as the file itself (links in the folders above are followed). */
#define NJ_FILE_NOFOLLOW 0x1u

/* No size cap: for a file that is checked but never read here (the NVRTC library). */
#define NJ_FILE_ANY_SIZE UINT64_MAX

/* Why a file was refused. */
typedef struct nj_file_error {
    int err;         /* errno of the failing call (ENOENT: it is not there), or 0 for a wrong kind
                        of file, EFBIG for one over the cap */
    char text[160];  /* "is a FIFO, not a regular file", "is 70000000 bytes, over the ...",
                        or strerror(err) */
} nj_file_error;

/* What kind of file `mode` says, as a phrase: "a FIFO", "a directory", "a character device"... */
const char *nj_file_kind(mode_t mode);

/*
 * Open `path` for reading with the checks above; a relative path is taken
 * from the directory `dirfd` (AT_FDCWD: the working directory). Returns the
 * descriptor with *st describing it, or -1 with the reason in *e.
 */
int nj_file_open(int dirfd, const char *path, unsigned flags, uint64_t max_bytes,
                 struct stat *st, nj_file_error *e);

/*
 * Read the opened file `fd` to its end into `out` (NUL-terminated), at most
 * `max_bytes`: more is an error. 0, or -1 with the reason in *e.
 */
int nj_file_read_fd(int fd, uint64_t max_bytes, nj_buf *out, nj_file_error *e);

/* nj_file_open, then nj_file_read_fd; the file is closed again. 0, or -1 with *e. */
int nj_file_read(int dirfd, const char *path, unsigned flags, uint64_t max_bytes, nj_buf *out,
                 nj_file_error *e);

/* nj_fail(status, "<what> <path>: <reason>") for a refused file; returns status. */
int nj_file_fail(int status, const char *what, const char *path, const nj_file_error *e);

#endif
