/* Walking a kernel cache directory: every entry and stray temporary file under it. */
#ifndef NJ_CACHE_SCAN_H
#define NJ_CACHE_SCAN_H

#include <sys/stat.h>

typedef struct nj_cache_file {
    const char *path;   /* full path */
    const char *target; /* "sm_90", "compute_90" */
    int schema;         /* from the v<N> folder */
    int is_temp;        /* a writer's temporary file (<digest>.njc.tmp.XXXXXX) */
    struct stat st;
} nj_cache_file;

/* Called for each file; a nonzero return stops the walk and is returned by nj_cache_scan. */
typedef int (*nj_cache_visit_fn)(const nj_cache_file *f, void *user);

/*
 * Visit every entry (*.njc) and temporary file under <root>/v<N>/<target>/<xx>/.
 * A missing root is an empty cache. Returns 0, the visitor's nonzero value,
 * or -1 with errno if the root cannot be read.
 */
int nj_cache_scan(const char *root, nj_cache_visit_fn fn, void *user);

#endif
