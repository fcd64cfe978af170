/*
 * The on-disk kernel cache.
 *
 * Layout: <root>/v<schema>/<target>/<first byte of digest>/<digest>.njc, one
 * self-contained entry per file (cache_entry.h). Directories are created with
 * mode 0700. Writes go to a unique temporary file in the same directory, are
 * fsynced, then renamed over the final name, so readers see a whole entry or
 * none. Anything wrong with an entry makes it a miss; the caller recompiles
 * and stores over it.
 *
 * A root owned by another user or writable by group or others is never read
 * from (a cached CUBIN is code). A root that cannot be created or written
 * leaves the context working from memory. Each kind of problem is logged once
 * per cache as a warning.
 *
 * Links: the root may be a symbolic link (it is followed, as any folder above
 * it: users move caches with links). Nothing below the root is followed: a
 * link, or anything but a directory of this user that only this user can
 * write, where the layout has a folder (v<N>, target, bucket) makes that
 * folder unusable, and anything but a regular file where it has an entry is
 * a miss. `normjit cache` walks the tree with the same rules
 * (nj_disk_root_check, nj_disk_folder_problem) and reports what they refuse.
 */
#ifndef NJ_DISK_CACHE_H
#define NJ_DISK_CACHE_H

#include "buf.h"

#include <sys/stat.h>
#include <sys/types.h>

typedef struct nj_disk_cache nj_disk_cache;

/* File operations behind the cache's writes, replaceable to inject faults in tests. */
typedef struct nj_disk_io {
    ssize_t (*write)(int fd, const void *data, size_t len);
    int (*fsync)(int fd);
    int (*rename)(const char *from, const char *to);
} nj_disk_io;

/*
 * The cache directory for an explicit path (may be NULL): that path, else
 * $NORMJIT_CACHE_DIR, else $XDG_CACHE_HOME/normjit, else ~/.cache/normjit,
 * made absolute. The caller frees *out.
 */
int nj_disk_cache_resolve(const char *explicit_dir, char **out);

/* A cache at `root` (nothing touches the file system until first use). */
int nj_disk_cache_open(const char *root, const struct nj_logger *log, nj_disk_cache **out);
void nj_disk_cache_close(nj_disk_cache *c);
const char *nj_disk_cache_root(const nj_disk_cache *c);
void nj_disk_cache_set_io(nj_disk_cache *c, const nj_disk_io *io);

/*
 * Look up the entry `digest` for `target` ("sm_90"). Returns 1 and fills
 * `payload` on a valid entry whose key equals `key`, 0 on a miss.
 */
int nj_disk_cache_load(nj_disk_cache *c, const char *target, const char *digest,
                       const char *key, size_t key_len, nj_buf *payload);

/*
 * Store an entry. NORMJIT_OK once it is in place; NORMJIT_EIO, with the entry's
 * path and the reason in the last error, when it could not be stored (also
 * when the cache is unusable or read-only). A failure to write is also
 * warned about, once per kind; the caller keeps the kernel in memory.
 */
int nj_disk_cache_store(nj_disk_cache *c, const char *target, const char *digest,
                        const char *key, size_t key_len, const void *payload, size_t payload_len);

/* Remove the entry, e.g. when the driver refused its image. */
void nj_disk_cache_remove(nj_disk_cache *c, const char *target, const char *digest);

/* 1 if the cache's root passed its checks and can be read (creating it if needed). */
int nj_disk_cache_usable(nj_disk_cache *c);

/* Path of an entry: <root>/v<schema>/<target>/<xx>/<digest>.njc. */
void nj_disk_cache_entry_path(const char *root, const char *target, const char *digest,
                              char *out, size_t size);

/* 1 if `st` describes something this user may trust: owned by us, not writable by others. */
int nj_disk_trusted(const struct stat *st);

/* Why not: NULL when trusted, else "owned by another user" or "writable by group or others". */
const char *nj_disk_untrusted(const struct stat *st);

/* Results of nj_disk_root_check. */
enum { NJ_ROOT_OK = 0, NJ_ROOT_MISSING = 1, NJ_ROOT_REFUSED = -1 };

/*
 * The root rule: NJ_ROOT_OK for a directory (links followed) of this user
 * that only this user can write; NJ_ROOT_MISSING when nothing is there (it
 * may be created); NJ_ROOT_REFUSED with "<root> is ..." in `why` otherwise
 * (a regular file, a dangling link, another user's, writable by others).
 */
int nj_disk_root_check(const char *root, char *why, size_t why_size);

/*
 * The rule for a folder below the root, from its lstat: NULL when it is a
 * directory (not a link) of this user that only this user can write, else
 * what it is instead ("a symbolic link, which is not followed below the
 * cache root", "owned by another user"), to follow "<path> is ".
 */
const char *nj_disk_folder_problem(const struct stat *lst);

/* Create `path` and missing parents with `mode`. 0 on success, else -1 with errno. */
int nj_mkdir_p(const char *path, mode_t mode);

#endif
