/*
 * The driver entry points the tool and the tests call beyond what the
 * library needs (memory, streams, events, graphs, device enumeration),
 * resolved from the same driver with nj_driver_resolve(). The library's own
 * table (src/driver.h) stays as small as the library's needs.
 */
#ifndef NJ_DRIVER_EXTRA_H
#define NJ_DRIVER_EXTRA_H

#include "driver.h"

typedef struct nj_driver_extra {
    CUresult (*device_get)(CUdevice *dev, int ordinal);
    CUresult (*device_get_count)(int *count);
    CUresult (*primary_ctx_retain)(CUcontext *ctx, CUdevice dev);
    CUresult (*primary_ctx_release)(CUdevice dev);
    CUresult (*ctx_synchronize)(void);
    CUresult (*func_get_attribute)(int *value, CUfunction_attribute attr, CUfunction fn);
    CUresult (*occupancy_max_active_blocks)(int *blocks, CUfunction fn, int block_size,
                                            size_t dynamic_shared);
    CUresult (*mem_alloc)(CUdeviceptr *ptr, size_t bytes);
    CUresult (*mem_free)(CUdeviceptr ptr);
    CUresult (*memcpy_htod)(CUdeviceptr dst, const void *src, size_t bytes);
    CUresult (*memcpy_dtoh)(void *dst, CUdeviceptr src, size_t bytes);
    CUresult (*memcpy_dtod_async)(CUdeviceptr dst, CUdeviceptr src, size_t bytes, CUstream stream);
    CUresult (*memset_d8)(CUdeviceptr ptr, unsigned char value, size_t bytes);
    CUresult (*memset_d8_async)(CUdeviceptr ptr, unsigned char value, size_t bytes,
                                CUstream stream);
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
} nj_driver_extra;

/*
 * The driver's table (as nj_driver_load) and the extra one, loaded once per
 * process. A status with the reason when there is no usable driver.
 */
int nj_driver_extra_load(const nj_driver **drv, const nj_driver_extra **extra);

#endif
