/* The context: what a normjit_ctx holds, and creating one with given driver and NVRTC tables. */
#ifndef NJ_CTX_H
#define NJ_CTX_H

#include "compiler.h"
#include "disk_cache.h"
#include "driver.h"
#include "kernels.h"
#include "status.h"
#include "tuning.h"

#include <stdatomic.h>

/* Context warnings logged once. */
enum { NJ_WARN_REFUSED_IMAGE = 1u << 0 };

struct normjit_ctx {
    const nj_driver *drv; /* NULL in a compile-only context */
    const nj_nvrtc *nvrtc; /* loaded on first compile unless given */
    int offline;
    CUcontext cu;
    CUdevice dev;
    int arch;     /* compute capability, major * 10 + minor */
    int sm_count; /* 0 in a compile-only context */
    char device_name[256];
    nj_device_key device;
    nj_tuning *user_tuning;          /* owned */
    const nj_tuning *shipped_tuning; /* the shipped table for this device, if any */
    uint32_t flags;
    nj_logger log;
    nj_disk_cache *disk; /* NULL without a disk cache */
    nj_kernels kernels;
    nj_target target; /* valid once target_ready (under kernels.mu) */
    int target_ready;
    atomic_uint warned;
};

/*
 * Create a context with these tables. `drv` NULL: load the real driver
 * (unless options ask for a compile-only context). `nvrtc` NULL: load the
 * real NVRTC when first needed. Tests pass fakes.
 */
int nj_ctx_create_with(normjit_ctx **out, const normjit_ctx_options *options,
                       const nj_driver *drv, const nj_nvrtc *nvrtc);

/* The plan a launch of `r` uses: the user's table, the shipped table, else the heuristic. */
void nj_ctx_plan(const normjit_ctx *ctx, const nj_request *r, nj_plan *out);

/*
 * Every plan a launch of `r` may use (at most `max`): one for a context on a
 * GPU; for a compile-only context, the plan of each table for its
 * architecture plus the heuristic's, since the GPU is not known.
 */
int nj_ctx_plans(const normjit_ctx *ctx, const nj_request *r, nj_plan *out, int max);

/* The NVRTC target of the context, loading NVRTC on first use. Call with kernels.mu held. */
int nj_ctx_target(normjit_ctx *ctx, const nj_target **out);

/* Copy a caller's versioned struct into `dst` (zeroed first). Fails on too small or unknown tail. */
int nj_copy_versioned(void *dst, size_t dst_size, size_t min_size, const void *src,
                      uint32_t src_size, const char *what);

#endif
