#include "driver_extra.h"

#include "status.h"

#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#define NJ_SYM(member, name) {name, offsetof(nj_driver_extra, member)}
static const struct {
    const char *name;
    size_t offset;
} symbols[] = {
    NJ_SYM(device_get, "cuDeviceGet"),
    NJ_SYM(device_get_count, "cuDeviceGetCount"),
    NJ_SYM(primary_ctx_retain, "cuDevicePrimaryCtxRetain"),
    NJ_SYM(primary_ctx_release, "cuDevicePrimaryCtxRelease"),
    NJ_SYM(ctx_synchronize, "cuCtxSynchronize"),
    NJ_SYM(func_get_attribute, "cuFuncGetAttribute"),
    NJ_SYM(occupancy_max_active_blocks, "cuOccupancyMaxActiveBlocksPerMultiprocessor"),
    NJ_SYM(mem_alloc, "cuMemAlloc"),
    NJ_SYM(mem_free, "cuMemFree"),
    NJ_SYM(memcpy_htod, "cuMemcpyHtoD"),
    NJ_SYM(memcpy_dtoh, "cuMemcpyDtoH"),
    NJ_SYM(memcpy_dtod_async, "cuMemcpyDtoDAsync"),
    NJ_SYM(memset_d8, "cuMemsetD8"),
    NJ_SYM(memset_d8_async, "cuMemsetD8Async"),
    NJ_SYM(stream_create, "cuStreamCreate"),
    NJ_SYM(stream_destroy, "cuStreamDestroy"),
    NJ_SYM(stream_synchronize, "cuStreamSynchronize"),
    NJ_SYM(stream_begin_capture, "cuStreamBeginCapture"),
    NJ_SYM(stream_end_capture, "cuStreamEndCapture"),
    NJ_SYM(graph_instantiate, "cuGraphInstantiateWithFlags"),
    NJ_SYM(graph_launch, "cuGraphLaunch"),
    NJ_SYM(graph_exec_destroy, "cuGraphExecDestroy"),
    NJ_SYM(graph_destroy, "cuGraphDestroy"),
    NJ_SYM(event_create, "cuEventCreate"),
    NJ_SYM(event_destroy, "cuEventDestroy"),
    NJ_SYM(event_record, "cuEventRecord"),
    NJ_SYM(event_synchronize, "cuEventSynchronize"),
    NJ_SYM(event_elapsed_time, "cuEventElapsedTime"),
};

static pthread_once_t once = PTHREAD_ONCE_INIT;
static nj_driver_extra loaded;
static const nj_driver *driver;
static int load_status;
static char load_message[512];

static void load(void)
{
    size_t i;
    if ((load_status = nj_driver_load(&driver)) != NORMJIT_OK) {
        snprintf(load_message, sizeof load_message, "%s", normjit_last_error());
        return;
    }
    for (i = 0; i < sizeof symbols / sizeof symbols[0]; i++) {
        void *fn;
        if ((load_status = nj_driver_resolve(symbols[i].name, &fn)) != NORMJIT_OK) {
            snprintf(load_message, sizeof load_message, "%s", normjit_last_error());
            return;
        }
        memcpy((char *)&loaded + symbols[i].offset, &fn, sizeof fn);
    }
}

int nj_driver_extra_load(const nj_driver **drv, const nj_driver_extra **extra)
{
    pthread_once(&once, load);
    *drv = load_status == NORMJIT_OK ? driver : NULL;
    *extra = load_status == NORMJIT_OK ? &loaded : NULL;
    return load_status == NORMJIT_OK ? NORMJIT_OK : nj_fail(load_status, "%s", load_message);
}
