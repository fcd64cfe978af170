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

typedef struct nj_driver {
    CUresult (*init)(unsigned int flags);
    CUresult (*driver_get_version)(int *version);
    CUresult (*get_error_name)(CUresult error, const char **str);
    CUresult (*get_error_string)(CUresult error, const char **str);
    CUresult (*device_get)(CUdevice *dev, int ordinal);
    CUresult (*device_get_count)(int *count);
    CUresult (*device_get_name)(char *name, int len, CUdevice dev);
    CUresult (*device_get_attribute)(int *value, CUdevice_attribute attr, CUdevice dev);
    CUresult (*device_total_mem)(size_t *bytes, CUdevice dev);
    CUresult (*ctx_get_current)(CUcontext *ctx);
    CUresult (*ctx_get_device)(CUdevice *dev);
    CUresult (*ctx_push_current)(CUcontext ctx);
    CUresult (*ctx_pop_current)(CUcontext *ctx);
    CUresult (*ctx_synchronize)(void);
    CUresult (*primary_ctx_retain)(CUcontext *ctx, CUdevice dev);
    CUresult (*primary_ctx_release)(CUdevice dev);
    CUresult (*module_load_data)(CUmodule *module, const void *image);
    CUresult (*module_unload)(CUmodule module);
    CUresult (*module_get_function)(CUfunction *fn, CUmodule module, const char *name);
    CUresult (*func_get_attribute)(int *value, CUfunction_attribute attr, CUfunction fn);
    CUresult (*func_set_attribute)(CUfunction fn, CUfunction_attribute attr, int value);
    CUresult (*launch_kernel)(CUfunction fn, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                              unsigned by, unsigned bz, unsigned shared_bytes, CUstream stream,
                              void **params, void **extra);
    CUresult (*stream_is_capturing)(CUstream stream, CUstreamCaptureStatus *status);
    CUresult (*occupancy_max_active_blocks)(int *blocks, CUfunction fn, int block_size,
                                            size_t dynamic_shared);
    /* Used by the tool, the tests and the benchmarks rather than the launch path. */
    CUresult (*mem_alloc)(CUdeviceptr *ptr, size_t bytes);
    CUresult (*mem_free)(CUdeviceptr ptr);
    CUresult (*memcpy_htod)(CUdeviceptr dst, const void *src, size_t bytes);
    CUresult (*memcpy_dtoh)(void *dst, CUdeviceptr src, size_t bytes);
    CUresult (*memcpy_dtod_async)(CUdeviceptr dst, CUdeviceptr src, size_t bytes, CUstream stream);
    CUresult (*memset_d8)(CUdeviceptr ptr, unsigned char value, size_t bytes);
    CUresult (*stream_create)(CUstream *stream, unsigned int flags);
    CUresult (*stream_destroy)(CUstream stream);
    CUresult (*stream_synchronize)(CUstream stream);
    CUresult (*stream_begin_capture)(CUstream stream, CUstreamCaptureMode mode);
    CUresult (*stream_end_capture)(CUstream stream, CUgraph *graph);
    CUresult (*graph_instantiate)(CUgraphExec *exec, CUgraph graph, unsigned long long flags);
    CUresult (*graph_launch)(CUgraphExec exec, CUstream stream);
    CUresult (*graph_exec_destroy)(CUgraphExec exec);
    CUresult (*graph_destroy)(CUgraph graph);
    CUresult (*event_create)(CUevent *event, unsigned int flags);
    CUresult (*event_destroy)(CUevent event);
    CUresult (*event_record)(CUevent event, CUstream stream);
    CUresult (*event_synchronize)(CUevent event);
    CUresult (*event_elapsed_time)(float *ms, CUevent start, CUevent end);
} nj_driver;

/*
 * The process's driver table, loaded and initialized (cuInit) on first use.
 * Returns NORMJIT_ENODRIVER with a message when there is no usable driver;
 * the answer is remembered. $NORMJIT_CUDA_DRIVER names another library file.
 */
int nj_driver_load(const nj_driver **out);

/* Set the last error to "<what>: CUDA_ERROR_X (description)" and return NORMJIT_EDRIVER. */
int nj_cu_fail(const nj_driver *drv, CUresult res, const char *what);

/* The driver's name of a result ("CUDA_ERROR_INVALID_IMAGE"), never NULL. */
const char *nj_cu_name(const nj_driver *drv, CUresult res);

#endif
