/*
 * The CUDA driver, reached only through this table. nj_driver_load() fills it
 * from libcuda.so.1 at run time (cuGetProcAddress with an explicit CUDA
 * version, so no `_v2` symbol names are involved); tests pass tables of
 * fakes instead. The library does not link libcuda.
 */
#ifndef NJ_DRIVER_H
#define NJ_DRIVER_H

#include <cuda.h>

/* The CUDA version whose entry-point ABI we ask cuGetProcAddress for. */
#define NJ_DRIVER_API_VERSION 12000

/* What the library itself calls; tools and tests resolve more with nj_driver_resolve(). */
typedef struct nj_driver {
    CUresult (*init)(unsigned int flags);
    CUresult (*driver_get_version)(int *version);
    CUresult (*get_error_name)(CUresult error, const char **str);
    CUresult (*get_error_string)(CUresult error, const char **str);
    CUresult (*device_get_name)(char *name, int len, CUdevice dev);
    CUresult (*device_get_attribute)(int *value, CUdevice_attribute attr, CUdevice dev);
    CUresult (*device_total_mem)(size_t *bytes, CUdevice dev);
    CUresult (*ctx_get_current)(CUcontext *ctx);
    CUresult (*ctx_get_device)(CUdevice *dev);
    CUresult (*ctx_push_current)(CUcontext ctx);
    CUresult (*ctx_pop_current)(CUcontext *ctx);
    CUresult (*module_load_data)(CUmodule *module, const void *image);
    CUresult (*module_unload)(CUmodule module);
    CUresult (*module_get_function)(CUfunction *fn, CUmodule module, const char *name);
    CUresult (*launch_kernel)(CUfunction fn, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                              unsigned by, unsigned bz, unsigned shared_bytes, CUstream stream,
                              void **params, void **extra);
    CUresult (*launch_kernel_ex)(const CUlaunchConfig *config, CUfunction fn, void **params,
                                 void **extra);
    CUresult (*stream_is_capturing)(CUstream stream, CUstreamCaptureStatus *status);
    /* Staged storage: its dynamic shared memory, and how many CTAs (clusters) fit at once. */
    CUresult (*func_set_attribute)(CUfunction fn, CUfunction_attribute attr, int value);
    CUresult (*occupancy_max_active_blocks)(int *blocks, CUfunction fn, int block_size,
                                            size_t dynamic_smem);
    CUresult (*occupancy_max_active_clusters)(int *clusters, CUfunction fn,
                                              const CUlaunchConfig *config);
} nj_driver;

/*
 * The process's driver table, loaded and initialized (cuInit) on first use.
 * Returns NORMJIT_ENODRIVER with a message when there is no usable driver;
 * the answer is remembered. $NORMJIT_CUDA_DRIVER names another library file.
 */
int nj_driver_load(const nj_driver **out);

/*
 * Another driver entry point by name (CUDA 12.0's ABI), for the tool and
 * the tests: loads the driver like nj_driver_load(). A status with a message
 * naming the function when the driver lacks it.
 */
int nj_driver_resolve(const char *name, void **fn);

/* What the library needs to know about a device. */
typedef struct nj_device_info {
    char name[256];
    int arch;             /* compute capability, major * 10 + minor */
    int sms;
    int l2_bytes;         /* 0 if unknown */
    long long memory_mib;
    int driver;           /* cuDriverGetVersion */
} nj_device_info;

/* Query `dev` (the one place device attributes are read). */
int nj_device_query(const nj_driver *drv, CUdevice dev, nj_device_info *out);

/* Set the last error to "<what>: CUDA_ERROR_X (description)" and return NORMJIT_EDRIVER. */
int nj_cu_fail(const nj_driver *drv, CUresult res, const char *what);

/* The driver's name of a result ("CUDA_ERROR_INVALID_IMAGE"), never NULL. */
const char *nj_cu_name(const nj_driver *drv, CUresult res);

#endif
