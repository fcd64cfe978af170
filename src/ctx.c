#include "ctx.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

NORMJIT_API unsigned normjit_version(void)
{
    return NORMJIT_VERSION_HEX;
}

NORMJIT_API const char *normjit_version_string(void)
{
    return NORMJIT_VERSION_STRING;
}

int nj_copy_versioned(void *dst, size_t dst_size, size_t min_size, const void *src,
                      uint32_t src_size, const char *what)
{
    const unsigned char *tail = (const unsigned char *)src + dst_size;
    size_t i;
    memset(dst, 0, dst_size);
    if (src_size < min_size)
        return nj_fail(NORMJIT_EINVAL,
                       "%s.struct_size is %u, expected sizeof(%s) (%zu); set it with sizeof",
                       what, src_size, what, dst_size);
    /* A newer caller's extra fields are fine as long as they ask for nothing. */
    for (i = dst_size; i < src_size; i++, tail++)
        if (*tail)
            return nj_fail(NORMJIT_EUNSUPPORTED,
                           "%s uses fields this normjit version (%s) does not know (byte %zu of "
                           "%u is set)",
                           what, NORMJIT_VERSION_STRING, i, src_size);
    memcpy(dst, src, src_size < dst_size ? src_size : dst_size);
    return NORMJIT_OK;
}

static int device_info(normjit_ctx *ctx)
{
    const nj_driver *d = ctx->drv;
    int major = 0, minor = 0;
    CUresult res;

    res = d->ctx_get_current(&ctx->cu);
    if (res != CUDA_SUCCESS)
        return nj_cu_fail(d, res, "cuCtxGetCurrent");
    if (!ctx->cu)
        return nj_fail(NORMJIT_ENODEVICE,
                       "no CUDA context is current in this thread: make one current (any CUDA "
                       "runtime call does, or cuDevicePrimaryCtxRetain + cuCtxSetCurrent) before "
                       "normjit_ctx_create, or ask for a compile-only context (offline_arch)");
    if ((res = d->ctx_get_device(&ctx->dev)) != CUDA_SUCCESS)
        return nj_cu_fail(d, res, "cuCtxGetDevice");
    if ((res = d->device_get_attribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
                                       ctx->dev)) != CUDA_SUCCESS ||
        (res = d->device_get_attribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR,
                                       ctx->dev)) != CUDA_SUCCESS ||
        (res = d->device_get_attribute(&ctx->sm_count, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
                                       ctx->dev)) != CUDA_SUCCESS)
        return nj_cu_fail(d, res, "cuDeviceGetAttribute");
    if ((res = d->device_get_name(ctx->device_name, (int)sizeof ctx->device_name, ctx->dev)) !=
        CUDA_SUCCESS)
        return nj_cu_fail(d, res, "cuDeviceGetName");
    ctx->arch = major * 10 + minor;
    if (ctx->arch < 80)
        return nj_fail(NORMJIT_EUNSUPPORTED,
                       "%s is sm_%d; normjit needs compute capability 8.0 (sm_80) or newer",
                       ctx->device_name, ctx->arch);
    return NORMJIT_OK;
}

int nj_ctx_create_with(normjit_ctx **out, const normjit_ctx_options *options,
                       const nj_driver *drv, const nj_nvrtc *nvrtc)
{
    normjit_ctx_options opt;
    normjit_ctx *ctx;
    int status;

    if (!out)
        return nj_fail(NORMJIT_EINVAL, "out (the normjit_ctx ** to fill) is NULL");
    *out = NULL;
    if (options) {
        status = nj_copy_versioned(&opt, sizeof opt, sizeof opt, options, options->struct_size,
                                   "normjit_ctx_options");
        if (status != NORMJIT_OK)
            return status;
    } else {
        memset(&opt, 0, sizeof opt);
        opt.log_level = NORMJIT_LOG_WARN;
    }
    if (opt.flags & ~NORMJIT_CTX_NO_DISK_CACHE)
        return nj_fail(NORMJIT_EINVAL, "unknown normjit_ctx_options.flags bits 0x%x",
                       opt.flags & ~NORMJIT_CTX_NO_DISK_CACHE);
    if (opt.offline_arch < 0 || (opt.offline_arch > 0 && opt.offline_arch < 80))
        return nj_fail(NORMJIT_EINVAL,
                       "offline_arch %d: give a compute capability of 80 (sm_80) or newer, or 0",
                       opt.offline_arch);
    if (opt.log_level < NORMJIT_LOG_ERROR || opt.log_level > NORMJIT_LOG_DEBUG)
        return nj_fail(NORMJIT_EINVAL, "log_level %d outside NORMJIT_LOG_ERROR..DEBUG",
                       opt.log_level);

    ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return nj_fail(NORMJIT_ENOMEM, "out of memory");
    atomic_init(&ctx->warned, 0);
    ctx->flags = opt.flags;
    ctx->nvrtc = nvrtc;
    nj_logger_init(&ctx->log, opt.log, opt.log_user, opt.log_level);
    if ((status = nj_kernels_init(&ctx->kernels)) != NORMJIT_OK) {
        free(ctx);
        return status;
    }
    if (opt.offline_arch) {
        ctx->offline = 1;
        ctx->arch = opt.offline_arch;
        snprintf(ctx->device_name, sizeof ctx->device_name, "compile-only sm_%d",
                 opt.offline_arch);
    } else {
        ctx->drv = drv;
        if ((!drv && (status = nj_driver_load(&ctx->drv)) != NORMJIT_OK) ||
            (status = device_info(ctx)) != NORMJIT_OK)
            goto fail;
    }
    if (!(opt.flags & NORMJIT_CTX_NO_DISK_CACHE)) {
        char *root = NULL;
        if ((status = nj_disk_cache_resolve(opt.cache_dir, &root)) == NORMJIT_OK) {
            status = nj_disk_cache_open(root, &ctx->log, &ctx->disk);
            free(root);
            if (status != NORMJIT_OK)
                goto fail;
        } else {
            /* No home directory to put a cache in: work from memory, say so once. */
            nj_log(&ctx->log, NORMJIT_LOG_WARN, "%s; kernels are kept in memory only",
                   normjit_last_error());
        }
    }
    *out = ctx;
    return NORMJIT_OK;
fail:
    nj_kernels_free(&ctx->kernels);
    free(ctx);
    return status;
}

NORMJIT_API int normjit_ctx_create(normjit_ctx **out, const normjit_ctx_options *options)
{
    return nj_ctx_create_with(out, options, NULL, NULL);
}

NORMJIT_API void normjit_ctx_destroy(normjit_ctx *ctx)
{
    nj_module *m;
    if (!ctx)
        return;
    if (ctx->drv) {
        /* Modules belong to the bound context; unload them there. */
        int pushed = ctx->drv->ctx_push_current(ctx->cu) == CUDA_SUCCESS;
        for (m = ctx->kernels.modules; m; m = m->next)
            if (m->module)
                ctx->drv->module_unload(m->module);
        if (pushed) {
            CUcontext popped;
            ctx->drv->ctx_pop_current(&popped);
        }
    }
    nj_kernels_free(&ctx->kernels);
    nj_disk_cache_close(ctx->disk);
    free(ctx);
}

NORMJIT_API const char *normjit_ctx_cache_dir(const normjit_ctx *ctx)
{
    return ctx && ctx->disk ? nj_disk_cache_root(ctx->disk) : NULL;
}

int nj_ctx_target(normjit_ctx *ctx, const nj_target **out)
{
    int status;
    if (!ctx->target_ready) {
        if (!ctx->nvrtc && (status = nj_nvrtc_load(&ctx->nvrtc)) != NORMJIT_OK)
            return status;
        if ((status = nj_target_init(&ctx->target, ctx->nvrtc, ctx->arch)) != NORMJIT_OK)
            return status;
        ctx->target_ready = 1;
    }
    *out = &ctx->target;
    return NORMJIT_OK;
}
