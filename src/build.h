/*
 * Building a variant's kernel image: render the source, derive the cache
 * key, look the image up in the disk cache, else compile it with NVRTC and
 * store it. The builder is handed everything it needs (architecture, NVRTC
 * table, disk cache, logger) by its owner; it knows nothing of contexts or
 * loaded modules.
 */
#ifndef NJ_BUILD_H
#define NJ_BUILD_H

#include "compiler.h"
#include "disk_cache.h"
#include "status.h"
#include "variant.h"

#include <pthread.h>

typedef struct nj_builder {
    int arch;              /* compute capability to build for */
    const nj_nvrtc *nvrtc; /* loaded on the first build unless given */
    nj_disk_cache *disk;   /* NULL: nothing is read from or written to disk */
    const nj_logger *log;
    pthread_mutex_t mu;    /* guards the target, set up once */
    nj_target target;
    int target_ready;
} nj_builder;

/* What building took. */
enum { NJ_GOT_IN_MEMORY = 0, NJ_GOT_FROM_DISK = 1, NJ_GOT_COMPILED = 2 };

typedef struct nj_built {
    nj_buf image;                   /* CUBIN (or NUL-terminated PTX) */
    char name[NJ_KERNEL_NAME_MAX];  /* the kernel's symbol */
    char digest[33];                /* the cache key's digest */
    int got;                        /* NJ_GOT_FROM_DISK or NJ_GOT_COMPILED */
    int cached;                     /* 1: the image is in the disk cache afterwards */
} nj_built;

void nj_builder_init(nj_builder *b, int arch, const nj_nvrtc *nvrtc, nj_disk_cache *disk,
                     const nj_logger *log);
void nj_builder_free(nj_builder *b);

/* The NVRTC target, loading NVRTC on first use. Thread safe. */
int nj_builder_target(nj_builder *b, const nj_target **out);

/*
 * Build `v` into `out` (zeroed first; free out->image). With `fresh`, skip
 * the disk lookup (the driver refused the cached image) and replace the entry.
 * Thread safe; different variants build in parallel.
 */
int nj_build(nj_builder *b, const nj_variant *v, int fresh, nj_built *out);

/* Remove the disk entry of a built image (the driver refused it). */
void nj_build_forget(nj_builder *b, const nj_built *built);

#endif
