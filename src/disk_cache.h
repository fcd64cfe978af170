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
 * Store an entry. A failure is warned about once and returned (NORMJIT_EIO
 * with the path and the reason); the caller keeps its image either way.
 */
int nj_disk_cache_store(nj_disk_cache *c, const char *target, const char *digest,
                         const char *key, size_t key_len, const void *payload,
                         size_t payload_len);

/* Remove the entry, e.g. when the driver refused its image. */
void nj_disk_cache_remove(nj_disk_cache *c, const char *target, const char *digest);

/* 1 if the cache's root passed its checks and can be read (creating it if needed). */
int nj_disk_cache_usable(nj_disk_cache *c);

/* Path of an entry: <root>/v<schema>/<target>/<xx>/<digest>.njc. */
void nj_disk_cache_entry_path(const char *root, const char *target, const char *digest,
                              char *out, size_t size);

/* 1 if `st` describes something this user may trust: owned by us, not writable by others. */
int nj_disk_trusted(const struct stat *st);

/* Create `path` and missing parents with `mode`. 0 on success, else -1 with errno. */
int nj_mkdir_p(const char *path, mode_t mode);

#endif
