#include "driver.h"

#include "status.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef CUresult (*get_proc_v2_fn)(const char *, void **, int, cuuint64_t,
                                   CUdriverProcAddressQueryResult *);
typedef CUresult (*get_proc_v1_fn)(const char *, void **, int, cuuint64_t);

#define NJ_SYM(member, name) {name, offsetof(nj_driver, member)}
static const struct {
    const char *name;
    size_t offset;
} symbols[] = {
    NJ_SYM(init, "cuInit"),
    NJ_SYM(driver_get_version, "cuDriverGetVersion"),
    NJ_SYM(get_error_name, "cuGetErrorName"),
    NJ_SYM(get_error_string, "cuGetErrorString"),
    NJ_SYM(device_get, "cuDeviceGet"),
    NJ_SYM(device_get_count, "cuDeviceGetCount"),
    NJ_SYM(device_get_name, "cuDeviceGetName"),
    NJ_SYM(device_get_attribute, "cuDeviceGetAttribute"),
    NJ_SYM(device_total_mem, "cuDeviceTotalMem"),
    NJ_SYM(ctx_get_current, "cuCtxGetCurrent"),
    NJ_SYM(ctx_get_device, "cuCtxGetDevice"),
    NJ_SYM(ctx_push_current, "cuCtxPushCurrent"),
    NJ_SYM(ctx_pop_current, "cuCtxPopCurrent"),
    NJ_SYM(ctx_synchronize, "cuCtxSynchronize"),
    NJ_SYM(primary_ctx_retain, "cuDevicePrimaryCtxRetain"),
    NJ_SYM(primary_ctx_release, "cuDevicePrimaryCtxRelease"),
    NJ_SYM(module_load_data, "cuModuleLoadData"),
    NJ_SYM(module_unload, "cuModuleUnload"),
    NJ_SYM(module_get_function, "cuModuleGetFunction"),
    NJ_SYM(func_get_attribute, "cuFuncGetAttribute"),
    NJ_SYM(func_set_attribute, "cuFuncSetAttribute"),
    NJ_SYM(launch_kernel, "cuLaunchKernel"),
    NJ_SYM(stream_is_capturing, "cuStreamIsCapturing"),
    NJ_SYM(occupancy_max_active_blocks, "cuOccupancyMaxActiveBlocksPerMultiprocessor"),
    NJ_SYM(mem_alloc, "cuMemAlloc"),
    NJ_SYM(mem_free, "cuMemFree"),
    NJ_SYM(memcpy_htod, "cuMemcpyHtoD"),
    NJ_SYM(memcpy_dtoh, "cuMemcpyDtoH"),
    NJ_SYM(memcpy_dtod_async, "cuMemcpyDtoDAsync"),
    NJ_SYM(memset_d8, "cuMemsetD8"),
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

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static nj_driver loaded;
static int load_status;
static char load_message[512];

static void load(void)
{
    const char *path = getenv("NORMJIT_CUDA_DRIVER");
    void *lib, *sym;
    get_proc_v2_fn get_proc_v2 = NULL;
    get_proc_v1_fn get_proc_v1 = NULL;
    CUresult res;
    size_t i;

    if (!path || !*path)
        path = "libcuda.so.1";
    lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        load_status = NORMJIT_ENODRIVER;
        snprintf(load_message, sizeof load_message,
                 "cannot load the CUDA driver %s (%s); a GPU and its driver are needed here", path,
                 dlerror());
        return;
    }
    /* Resolve the lookup function itself, then every entry point through it. */
    sym = dlsym(lib, "cuGetProcAddress_v2");
    if (sym)
        memcpy(&get_proc_v2, &sym, sizeof sym);
    else if ((sym = dlsym(lib, "cuGetProcAddress")) != NULL)
        memcpy(&get_proc_v1, &sym, sizeof sym);
    if (!get_proc_v2 && !get_proc_v1) {
        load_status = NORMJIT_ENODRIVER;
        snprintf(load_message, sizeof load_message,
                 "the CUDA driver %s has no cuGetProcAddress; a driver for CUDA 12.0 or newer "
                 "is needed",
                 path);
        return;
    }
    for (i = 0; i < sizeof symbols / sizeof symbols[0]; i++) {
        void *fn = NULL;
        if (get_proc_v2) {
            CUdriverProcAddressQueryResult found = CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
            res = get_proc_v2(symbols[i].name, &fn, NJ_DRIVER_API_VERSION,
                              CU_GET_PROC_ADDRESS_DEFAULT, &found);
        } else {
            res = get_proc_v1(symbols[i].name, &fn, NJ_DRIVER_API_VERSION,
                              CU_GET_PROC_ADDRESS_DEFAULT);
        }
        if (res != CUDA_SUCCESS || !fn) {
            load_status = NORMJIT_ENODRIVER;
            snprintf(load_message, sizeof load_message,
                     "the CUDA driver %s lacks %s (CUDA %d.%d ABI); the driver is too old", path,
                     symbols[i].name, NJ_DRIVER_API_VERSION / 1000,
                     NJ_DRIVER_API_VERSION % 1000 / 10);
            return;
        }
        memcpy((char *)&loaded + symbols[i].offset, &fn, sizeof fn);
    }
    res = loaded.init(0);
    if (res != CUDA_SUCCESS) {
        const char *name = "unknown error";
        loaded.get_error_name(res, &name);
        load_status = res == CUDA_ERROR_NO_DEVICE ? NORMJIT_ENODEVICE : NORMJIT_ENODRIVER;
        snprintf(load_message, sizeof load_message, "cuInit failed: %s", name ? name : "?");
        return;
    }
    load_status = NORMJIT_OK;
}

int nj_driver_load(const nj_driver **out)
{
    pthread_once(&load_once, load);
    *out = load_status == NORMJIT_OK ? &loaded : NULL;
    if (load_status != NORMJIT_OK)
        return nj_fail(load_status, "%s", load_message);
    return NORMJIT_OK;
}

const char *nj_cu_name(const nj_driver *drv, CUresult res)
{
    const char *name = NULL;
    if (drv && drv->get_error_name && drv->get_error_name(res, &name) == CUDA_SUCCESS && name)
        return name;
    return "CUDA_ERROR_UNKNOWN";
}

int nj_cu_fail(const nj_driver *drv, CUresult res, const char *what)
{
    const char *desc = NULL;
    if (!drv || !drv->get_error_string || drv->get_error_string(res, &desc) != CUDA_SUCCESS)
        desc = NULL;
    return nj_fail(NORMJIT_EDRIVER, "%s failed: %s (%s)", what, nj_cu_name(drv, res),
                   desc ? desc : "no description");
}
