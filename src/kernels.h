/*
 * The kernels of a context in memory: modules built once per variant, and
 * the launch records a call finds by its request key.
 *
 * A call's request key (variant.h) maps to an immutable nj_launch through an
 * open-addressing table of atomic pointers: a cached call is one lookup with
 * acquire loads, no lock and no allocation. Misses take the table's lock
 * only to coordinate: each distinct variant is built and loaded by one
 * thread while others that need it wait, and different variants build in
 * parallel. A table that fills up is replaced by a larger copy; the old one
 * stays allocated until the table is freed, since a launching thread may
 * still be reading it.
 *
 * The owner hands in the driver (NULL: compile-only, nothing is loaded) and
 * the builder; the table knows nothing about plans or contexts.
 */
#ifndef NJ_KERNELS_H
#define NJ_KERNELS_H

#include "build.h"
#include "driver.h"
#include "launch.h"

#include <cuda.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

typedef struct nj_table {
    size_t mask;
    size_t count;
    _Atomic(nj_launch *) *slots;
    struct nj_table *retired;
} nj_table;

typedef struct nj_module {
    nj_variant v;
    CUmodule module;   /* NULL in a compile-only context */
    CUfunction fn;
    int cached;        /* its image was in the disk cache after building */
    struct nj_module *next;
} nj_module;

typedef struct nj_inflight {
    nj_variant v;
    struct nj_inflight *next;
} nj_inflight;

typedef struct nj_kernels {
    _Atomic(nj_table *) table;
    const nj_driver *drv; /* NULL: compile-only */
    nj_builder *builder;
    const nj_logger *log;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    nj_module *modules;
    nj_inflight *inflight;
    nj_launch *launches;
    atomic_uint warned;
} nj_kernels;

/* How a kernel was got (build.h's NJ_GOT_*), and whether the disk cache holds it. */
typedef struct nj_got {
    int how;
    int cached;
} nj_got;

int nj_kernels_init(nj_kernels *k, const nj_driver *drv, nj_builder *builder,
                    const nj_logger *log);
/* Unload every module (the bound CUDA context must be current), then free everything. */
void nj_kernels_free(nj_kernels *k);

static inline uint64_t nj_key_hash(uint64_t key)
{
    return (key * 0x9E3779B97F4A7C15ull) >> 32;
}

/* The hot path: the launch for `key`, or NULL. Lock-free. */
static inline const nj_launch *nj_kernels_find(nj_kernels *k, uint64_t key)
{
    const nj_table *t = atomic_load_explicit(&k->table, memory_order_acquire);
    size_t i = (size_t)nj_key_hash(key) & t->mask;
    for (;;) {
        const nj_launch *e = atomic_load_explicit(&t->slots[i], memory_order_acquire);
        if (!e || e->key == key)
            return e;
        i = (i + 1) & t->mask;
    }
}

/*
 * The kernel of `v`, built and loaded once per table (other threads asking
 * for it meanwhile wait). *fn is NULL in a compile-only table, where building
 * only makes sure the image is in the disk cache. `got` may be NULL.
 */
int nj_kernels_get(nj_kernels *k, const nj_variant *v, CUfunction *fn, nj_got *got);

/*
 * Publish `e` (a filled record; copied) for its key, unless a launch for the
 * key is there already; *out is the table's record either way.
 */
int nj_kernels_publish(nj_kernels *k, const nj_launch *e, const nj_launch **out);

#endif
