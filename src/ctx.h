/*
 * The context: what a normjit_ctx owns (device identity, tuning tables,
 * disk cache, builder, kernel table, logger) and how it is made with given
 * driver and NVRTC tables. It hands each lower module what that module
 * needs; none of them reads the context.
 */
#ifndef NJ_CTX_H
#define NJ_CTX_H

#include "build.h"
#include "compiler.h"
#include "disk_cache.h"
#include "driver.h"
#include "kernels.h"
#include "planner.h"
#include "status.h"
#include "tuning.h"

struct normjit_ctx {
    const nj_driver *drv; /* NULL in a compile-only context */
    int offline;
    CUcontext cu;
    CUdevice dev;
    int arch;     /* compute capability, major * 10 + minor */
    int sm_count; /* 0 in a compile-only context */
    char device_name[256];
    nj_device_key device;
    nj_tuning *user_tuning; /* owned */
    nj_planner planner;
    uint32_t flags;
    nj_logger log;
    nj_disk_cache *disk; /* NULL without a disk cache */
    nj_builder builder;
    nj_kernels kernels;
};

/*
 * Create a context with these tables. `drv` NULL: load the real driver
 * (unless options ask for a compile-only context). `nvrtc` NULL: load the
 * real NVRTC when first needed. Tests pass fakes.
 */
int nj_ctx_create_with(normjit_ctx **out, const normjit_ctx_options *options,
                       const nj_driver *drv, const nj_nvrtc *nvrtc);

#endif
