#include "fake_driver.h"

#include <stdio.h>
#include <string.h>

fake_driver_state fake_drv;

static CUresult f_driver_get_version(int *version)
{
    *version = 13000;
    return CUDA_SUCCESS;
}

static CUresult f_get_error_name(CUresult error, const char **str)
{
    *str = error == CUDA_SUCCESS ? "CUDA_SUCCESS" : "CUDA_ERROR_FAKE";
    return CUDA_SUCCESS;
}

static CUresult f_get_error_string(CUresult error, const char **str)
{
    *str = error == CUDA_SUCCESS ? "no error" : "fake driver error";
    return CUDA_SUCCESS;
}

static CUresult f_device_get_name(char *name, int len, CUdevice dev)
{
    (void)dev;
    snprintf(name, (size_t)len, "Fake GPU");
    return CUDA_SUCCESS;
}

static CUresult f_device_get_attribute(int *value, CUdevice_attribute attr, CUdevice dev)
{
    (void)dev;
    switch (attr) {
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR:
        *value = fake_drv.cc_major;
        return CUDA_SUCCESS;
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR:
        *value = fake_drv.cc_minor;
        return CUDA_SUCCESS;
    case CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT:
        *value = fake_drv.sm_count;
        return CUDA_SUCCESS;
    default:
        return CUDA_ERROR_INVALID_VALUE;
    }
}

static CUresult f_device_total_mem(size_t *bytes, CUdevice dev)
{
    (void)dev;
    *bytes = (size_t)80 << 30;
    return CUDA_SUCCESS;
}

static CUresult f_ctx_get_current(CUcontext *ctx)
{
    *ctx = fake_drv.current;
    return CUDA_SUCCESS;
}

static CUresult f_ctx_get_device(CUdevice *dev)
{
    *dev = 0;
    return CUDA_SUCCESS;
}

static CUresult f_ctx_push_current(CUcontext ctx)
{
    (void)ctx;
    return CUDA_SUCCESS;
}

static CUresult f_ctx_pop_current(CUcontext *ctx)
{
    *ctx = fake_drv.current;
    return CUDA_SUCCESS;
}

static CUresult f_module_load_data(CUmodule *module, const void *image)
{
    (void)image;
    fake_drv.module_loads++;
    *module = (CUmodule)(uintptr_t)(0x10000 + fake_drv.module_loads);
    return CUDA_SUCCESS;
}

static CUresult f_module_unload(CUmodule module)
{
    (void)module;
    fake_drv.module_unloads++;
    return CUDA_SUCCESS;
}

static CUresult f_module_get_function(CUfunction *fn, CUmodule module, const char *name)
{
    (void)module;
    (void)name;
    *fn = (CUfunction)(uintptr_t)0x30000;
    return CUDA_SUCCESS;
}

static CUresult f_launch_kernel(CUfunction fn, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                                unsigned by, unsigned bz, unsigned shared_bytes, CUstream stream,
                                void **params, void **extra)
{
    (void)fn, (void)gy, (void)gz, (void)by, (void)bz, (void)stream;
    (void)extra;
    fake_drv.launches++;
    fake_drv.last_grid_x = gx;
    fake_drv.last_block_x = bx;
    fake_drv.last_smem = shared_bytes;
    memcpy(&fake_drv.last_params, params[0], sizeof fake_drv.last_params);
    return CUDA_SUCCESS;
}

static CUresult f_launch_kernel_ex(const CUlaunchConfig *cfg, CUfunction fn, void **params,
                                   void **extra)
{
    unsigned i;
    for (i = 0; i < cfg->numAttrs; i++)
        if (cfg->attrs[i].id == CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION &&
            cfg->attrs[i].value.programmaticStreamSerializationAllowed)
            fake_drv.pdl_launches++;
    return f_launch_kernel(fn, cfg->gridDimX, cfg->gridDimY, cfg->gridDimZ, cfg->blockDimX,
                           cfg->blockDimY, cfg->blockDimZ, cfg->sharedMemBytes, cfg->hStream,
                           params, extra);
}

static CUresult f_stream_is_capturing(CUstream stream, CUstreamCaptureStatus *status)
{
    (void)stream;
    *status = fake_drv.capturing ? CU_STREAM_CAPTURE_STATUS_ACTIVE : CU_STREAM_CAPTURE_STATUS_NONE;
    return CUDA_SUCCESS;
}

static CUresult f_func_set_attribute(CUfunction fn, CUfunction_attribute attr, int value)
{
    (void)fn;
    if (fake_drv.set_attribute_result != CUDA_SUCCESS)
        return fake_drv.set_attribute_result;
    if (attr == CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES)
        fake_drv.smem_attribute = value;
    return CUDA_SUCCESS;
}

static CUresult f_occupancy_max_active_blocks(int *blocks, CUfunction fn, int block_size,
                                              size_t dynamic_smem)
{
    (void)fn, (void)block_size, (void)dynamic_smem;
    *blocks = fake_drv.resident_ctas;
    return fake_drv.occupancy_result;
}

static CUresult f_occupancy_max_active_clusters(int *clusters, CUfunction fn,
                                                const CUlaunchConfig *config)
{
    (void)fn, (void)config;
    *clusters = fake_drv.resident_ctas;
    return fake_drv.occupancy_result;
}

void fake_driver_init(nj_driver *d)
{
    /* Entries left NULL are never reached by the paths under test; a call would crash loudly. */
    memset(d, 0, sizeof *d);
    d->driver_get_version = f_driver_get_version;
    d->get_error_name = f_get_error_name;
    d->get_error_string = f_get_error_string;
    d->device_get_name = f_device_get_name;
    d->device_get_attribute = f_device_get_attribute;
    d->device_total_mem = f_device_total_mem;
    d->ctx_get_current = f_ctx_get_current;
    d->ctx_get_device = f_ctx_get_device;
    d->ctx_push_current = f_ctx_push_current;
    d->ctx_pop_current = f_ctx_pop_current;
    d->module_load_data = f_module_load_data;
    d->module_unload = f_module_unload;
    d->module_get_function = f_module_get_function;
    d->launch_kernel = f_launch_kernel;
    d->launch_kernel_ex = f_launch_kernel_ex;
    d->stream_is_capturing = f_stream_is_capturing;
    d->func_set_attribute = f_func_set_attribute;
    d->occupancy_max_active_blocks = f_occupancy_max_active_blocks;
    d->occupancy_max_active_clusters = f_occupancy_max_active_clusters;

    memset(&fake_drv, 0, sizeof fake_drv);
    fake_drv.current = FAKE_CU_CTX;
    fake_drv.cc_major = 9;
    fake_drv.cc_minor = 0;
    fake_drv.sm_count = 132;
    fake_drv.resident_ctas = 1;
}
