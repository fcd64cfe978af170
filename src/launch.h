/*
 * One kernel launch: the immutable record a cached call finds (grid rule,
 * block size, function) and the launch itself, with the parameter block of
 * kernel_src/params.h passed by value.
 */
#ifndef NJ_LAUNCH_H
#define NJ_LAUNCH_H

#include "driver.h"
#include "variant.h"

#include "params.h" /* kernel_src/params.h: the kernels read the same block */

typedef struct nj_launch {
    uint64_t key;          /* nj_request_key() */
    CUfunction fn;
    unsigned threads;      /* per CTA */
    unsigned rpc;          /* rows per CTA */
    unsigned cluster;      /* CTAs per cluster */
    unsigned max_groups;   /* most row groups (clusters) in one grid */
    unsigned smem;         /* dynamic shared memory per CTA (staged storage) */
    int pdl_ok;            /* the device can launch it with programmatic dependent launch */
    struct nj_launch *all; /* every launch of the context, for destroy */
} nj_launch;

/*
 * Fill a launch for a plan whose kernel is `fn` (sm_count sizes a persistent grid). A
 * persistent grid of staged storage is also capped at the CTAs (clusters) the GPU holds at
 * once, as the driver computes it for `fn` (`drv` may be NULL in a compile-only context): a
 * CTA that started late would copy rows ahead while others finish.
 */
void nj_launch_init(nj_launch *e, uint64_t key, const nj_plan *p, CUfunction fn, int sm_count,
                    int arch, const nj_driver *drv);

/*
 * Launch `e` on `stream` for `params->rows` rows; with `pdl`, as a
 * programmatic dependent launch (ignored where the device cannot).
 */
CUresult nj_launch_run(const nj_driver *drv, const nj_launch *e, const nj_params *params, int pdl,
                       CUstream stream);

#endif
