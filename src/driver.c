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
    NJ_SYM(device_get_name, "cuDeviceGetName"),
    NJ_SYM(device_get_attribute, "cuDeviceGetAttribute"),
    NJ_SYM(device_total_mem, "cuDeviceTotalMem"),
    NJ_SYM(ctx_get_current, "cuCtxGetCurrent"),
    NJ_SYM(ctx_get_device, "cuCtxGetDevice"),
    NJ_SYM(ctx_push_current, "cuCtxPushCurrent"),
    NJ_SYM(ctx_pop_current, "cuCtxPopCurrent"),
    NJ_SYM(module_load_data, "cuModuleLoadData"),
    NJ_SYM(module_unload, "cuModuleUnload"),
    NJ_SYM(module_get_function, "cuModuleGetFunction"),
    NJ_SYM(launch_kernel, "cuLaunchKernel"),
    NJ_SYM(launch_kernel_ex, "cuLaunchKernelEx"),
    NJ_SYM(stream_is_capturing, "cuStreamIsCapturing"),
    NJ_SYM(func_set_attribute, "cuFuncSetAttribute"),
    NJ_SYM(occupancy_max_active_blocks, "cuOccupancyMaxActiveBlocksPerMultiprocessor"),
    NJ_SYM(occupancy_max_active_clusters, "cuOccupancyMaxActiveClusters"),
};

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static nj_driver loaded;
static int load_status;
static char load_message[512];
static const char *lib_path;
static get_proc_v2_fn get_proc_v2;
static get_proc_v1_fn get_proc_v1;

/* One entry point through cuGetProcAddress, with CUDA 12.0's ABI. */
static CUresult lookup(const char *name, void **fn)
{
    *fn = NULL;
    if (get_proc_v2) {
        CUdriverProcAddressQueryResult found = CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
        return get_proc_v2(name, fn, NJ_DRIVER_API_VERSION, CU_GET_PROC_ADDRESS_DEFAULT, &found);
    }
    return get_proc_v1(name, fn, NJ_DRIVER_API_VERSION, CU_GET_PROC_ADDRESS_DEFAULT);
}

static void load(void)
{
    void *lib, *sym;
    CUresult res;
    size_t i;

    lib_path = getenv("NORMJIT_CUDA_DRIVER");
    if (!lib_path || !*lib_path)
        lib_path = "libcuda.so.1";
    lib = dlopen(lib_path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        load_status = NORMJIT_ENODRIVER;
        snprintf(load_message, sizeof load_message,
                 "cannot load the CUDA driver %s (%s); a GPU and its driver are needed here",
                 lib_path, dlerror());
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
                 lib_path);
        return;
    }
    for (i = 0; i < sizeof symbols / sizeof symbols[0]; i++) {
        void *fn;
        res = lookup(symbols[i].name, &fn);
        if (res != CUDA_SUCCESS || !fn) {
            load_status = NORMJIT_ENODRIVER;
            snprintf(load_message, sizeof load_message,
                     "the CUDA driver %s lacks %s (CUDA %d.%d ABI); the driver is too old",
                     lib_path, symbols[i].name, NJ_DRIVER_API_VERSION / 1000,
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

int nj_driver_resolve(const char *name, void **fn)
{
    const nj_driver *drv;
    int status = nj_driver_load(&drv);
    CUresult res;
    if (status != NORMJIT_OK)
        return status;
    res = lookup(name, fn);
    if (res != CUDA_SUCCESS || !*fn)
        return nj_fail(NORMJIT_ENODRIVER, "the CUDA driver %s lacks %s (CUDA %d.%d ABI)",
                       lib_path, name, NJ_DRIVER_API_VERSION / 1000,
                       NJ_DRIVER_API_VERSION % 1000 / 10);
    return NORMJIT_OK;
}

int nj_device_query(const nj_driver *d, CUdevice dev, nj_device_info *out)
{
    int major = 0, minor = 0;
    size_t mem = 0;
    CUresult res;
    memset(out, 0, sizeof *out);
    if ((res = d->device_get_attribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
                                       dev)) != CUDA_SUCCESS ||
        (res = d->device_get_attribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR,
                                       dev)) != CUDA_SUCCESS ||
        (res = d->device_get_attribute(&out->sms, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
                                       dev)) != CUDA_SUCCESS)
        return nj_cu_fail(d, res, "cuDeviceGetAttribute");
    /* For the benchmarks only: 0 when the driver does not say. */
    if (d->device_get_attribute(&out->l2_bytes, CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE, dev) !=
        CUDA_SUCCESS)
        out->l2_bytes = 0;
    if ((res = d->device_get_name(out->name, (int)sizeof out->name, dev)) != CUDA_SUCCESS)
        return nj_cu_fail(d, res, "cuDeviceGetName");
    if ((res = d->device_total_mem(&mem, dev)) != CUDA_SUCCESS)
        return nj_cu_fail(d, res, "cuDeviceTotalMem");
    out->arch = major * 10 + minor;
    out->memory_mib = (long long)(mem >> 20);
    d->driver_get_version(&out->driver);
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
