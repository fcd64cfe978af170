/*
 * A CUDA driver table with no GPU behind it, for tests that drive the
 * public API through nj_ctx_create_with(). It reports one device and counts
 * the calls that would touch a GPU, so a test can assert that a rejected
 * call never reached module loading or a launch.
 */
#ifndef NJ_FAKE_DRIVER_H
#define NJ_FAKE_DRIVER_H

#include "driver.h"
#include "params.h"

#include <stdint.h>

/* The context the fake reports as current unless a test changes fake_drv.current. */
#define FAKE_CU_CTX ((CUcontext)(uintptr_t)0x1000)
#define FAKE_CU_OTHER_CTX ((CUcontext)(uintptr_t)0x2000)

typedef struct fake_driver_state {
    CUcontext current; /* what cuCtxGetCurrent returns */
    int cc_major, cc_minor, sm_count;
    int capturing; /* cuStreamIsCapturing reports an active capture */
    /* Calls counted. */
    int launches;
    int module_loads;
    int module_unloads;
    unsigned last_grid_x, last_block_x, last_smem;
    int smem_attribute;  /* the last CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES set */
    int resident_ctas;   /* what the occupancy queries answer: CTAs per SM, or clusters */
    CUresult set_attribute_result, occupancy_result; /* what those calls return */
    int pdl_launches;  /* launches through cuLaunchKernelEx asking for programmatic serialization */
    nj_params last_params; /* the parameter block of the last launch */
} fake_driver_state;

extern fake_driver_state fake_drv;

/* Fill `d` with the fakes and reset fake_drv (a 9.0 device with 132 SMs, FAKE_CU_CTX current). */
void fake_driver_init(nj_driver *d);

#endif
