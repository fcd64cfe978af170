/*
 * The context's kernels in memory.
 *
 * A call's request key (variant.h) maps to an immutable nj_launch through an
 * open-addressing table of atomic pointers: a cached call is one lookup with
 * acquire loads, no lock and no allocation. Misses take the context's build
 * lock only to coordinate: each distinct variant is compiled or loaded by
 * one thread while others that need it wait, and different variants build
 * in parallel. A table that fills up is replaced by a larger copy; the old
 * one stays allocated until the context is destroyed, since a launching
 * thread may still be reading it.
 */
#ifndef NJ_KERNELS_H
#define NJ_KERNELS_H

#include "driver.h"
#include "plan.h"

#include <cuda.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

typedef struct nj_launch {
    uint64_t key;          /* nj_request_key() */
    CUfunction fn;
    unsigned threads;      /* per CTA */
    unsigned rpc;          /* rows per CTA */
    unsigned cluster;      /* CTAs per cluster */
    unsigned max_groups;   /* most row groups (clusters) in one grid */
    struct nj_launch *all; /* every launch of the context, for destroy */
} nj_launch;

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
    struct nj_module *next;
} nj_module;

typedef struct nj_inflight {
    nj_variant v;
    struct nj_inflight *next;
} nj_inflight;

typedef struct nj_kernels {
    _Atomic(nj_table *) table;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    nj_module *modules;
    nj_inflight *inflight;
    nj_launch *launches;
} nj_kernels;

/* What getting a kernel took. UNCACHED: compiled, but not stored in the disk cache. */
enum { NJ_GOT_IN_MEMORY = 0, NJ_GOT_FROM_DISK = 1, NJ_GOT_COMPILED = 2, NJ_GOT_UNCACHED = 3 };

int nj_kernels_init(nj_kernels *k);
/* Free everything; modules are unloaded by the caller (ctx.c) first. */
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

struct normjit_ctx;

/* Fill a launch for a plan whose kernel is `fn` (sm_count sizes a persistent grid). */
void nj_launch_init(nj_launch *e, uint64_t key, const nj_plan *p, CUfunction fn, int sm_count);

/* Launch `e` on `stream` for checked arguments (row strides already resolved). */
CUresult nj_launch_run(const nj_driver *drv, const nj_launch *e, const normjit_norm_args *a,
                       CUstream stream);

/*
 * The miss path: plan the request, compile or load its variant (once per
 * context), publish the launch and return it. A compile-only context only
 * makes sure the variant is in the disk cache, and returns *out = NULL.
 * `variant` and `got` (each may be NULL) receive the planned variant and NJ_GOT_*.
 */
int nj_kernels_get(struct normjit_ctx *ctx, const nj_request *r, const nj_launch **out,
                   nj_variant *variant, int *got);

/* Like nj_kernels_get for an explicit variant, without publishing a launch (the tuner's path). */
int nj_kernels_get_variant(struct normjit_ctx *ctx, const nj_variant *v, CUfunction *fn,
                           int *got);

#endif
