/*
 * Walking a kernel cache directory the way the library reads it
 * (disk_cache.h): the root is followed if it is a link; below it nothing is
 * followed, and a folder of the layout (v<N>, target, bucket) that is a link,
 * not a directory, another user's or writable by others is not entered but
 * reported, as the library refuses it too. Entries vanishing during the walk
 * are simply not visited.
 */
#ifndef NJ_CACHE_SCAN_H
#define NJ_CACHE_SCAN_H

#include <sys/stat.h>

typedef struct nj_cache_file {
    const char *path;   /* full path */
    const char *target; /* "sm_90", "compute_90" */
    int schema;         /* from the v<N> folder */
    int is_temp;        /* a writer's temporary file (<digest>.njc.tmp.XXXXXX) */
    struct stat st;     /* its lstat: any kind of file with an entry's name is visited */
} nj_cache_file;

/* Called for each file; a nonzero return stops the walk and is returned by nj_cache_walk. */
typedef int (*nj_cache_visit_fn)(const nj_cache_file *f, void *user);

/*
 * Called for what the walk could not or would not look into: the path and
 * why, a phrase to follow the path ("cannot be read: Permission denied", "is
 * a symbolic link, which is not followed below the cache root").
 */
typedef void (*nj_cache_problem_fn)(const char *path, const char *why, void *user);

/*
 * Visit every file named like an entry (*.njc) or a temporary file under
 * <root>/v<N>/<target>/<xx>/, reporting to `problem` (may be NULL) each
 * folder that is refused or cannot be read. A missing root is an empty
 * cache. Returns 0, the visitor's nonzero value, or -1 with errno if the root
 * cannot be read.
 */
int nj_cache_walk(const char *root, nj_cache_visit_fn fn, nj_cache_problem_fn problem,
                  void *user);

/* nj_cache_walk without problem reports (counting in tests and 'normjit info'). */
int nj_cache_scan(const char *root, nj_cache_visit_fn fn, void *user);

/* 1 if `name` is a folder name of the layout at `depth` (0: v<N>, 1: sm_N or compute_N, 2: xx). */
int nj_cache_layout_name(const char *name, int depth);

#endif
