#include "ctx.h"

#include "templates.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    snprintf(ctx->device.name, sizeof ctx->device.name, "%s", ctx->device_name);
    ctx->device.sms = ctx->sm_count;
    ctx->device.cc = ctx->arch;
    {
        size_t mem = 0;
        if ((res = d->device_total_mem(&mem, ctx->dev)) != CUDA_SUCCESS)
            return nj_cu_fail(d, res, "cuDeviceTotalMem");
        ctx->device.memory_mib = (long long)(mem >> 20);
    }
    d->driver_get_version(&ctx->device.driver);
    if (ctx->arch < 80)
        return nj_fail(NORMJIT_EUNSUPPORTED,
                       "%s is sm_%d; normjit needs compute capability 8.0 (sm_80) or newer",
                       ctx->device_name, ctx->arch);
    return NORMJIT_OK;
}

/*
 * The user's tuning table: the explicit file (an error if unusable), else the
 * default path for this device if a file is there (a warning if unusable).
 */
static int load_user_tuning(normjit_ctx *ctx, const char *explicit_path)
{
    const char *path = explicit_path && *explicit_path ? explicit_path
                                                       : getenv("NORMJIT_TUNING_FILE");
    char *default_path = NULL;
    int status, is_explicit = path && *path;
    nj_tuning *t = NULL;

    if (!is_explicit) {
        if (ctx->offline || nj_tuning_default_path(&ctx->device, &default_path) != NORMJIT_OK ||
            access(default_path, F_OK) != 0) {
            free(default_path);
            return NORMJIT_OK;
        }
        path = default_path;
    }
    status = nj_tuning_load(path, &t);
    if (status != NORMJIT_OK) {
        if (!is_explicit) {
            nj_log(&ctx->log, NORMJIT_LOG_WARN, "ignoring tuning table: %s", normjit_last_error());
            status = NORMJIT_OK;
        }
    } else if (!ctx->offline && !nj_tuning_matches(t, &ctx->device)) {
        nj_log(&ctx->log, NORMJIT_LOG_WARN,
               "ignoring tuning table %s: it was measured on %s (%d SMs, sm_%d, %lld MiB), this "
               "is %s (%d SMs, sm_%d, %lld MiB)",
               path, t->device.name, t->device.sms, t->device.cc, t->device.memory_mib,
               ctx->device.name, ctx->device.sms, ctx->device.cc, ctx->device.memory_mib);
        nj_tuning_free(t);
    } else {
        ctx->user_tuning = t;
    }
    free(default_path);
    return status;
}

static void find_shipped_tuning(normjit_ctx *ctx)
{
    int n, i;
    const nj_tuning *const *tables = nj_shipped_tables(&n);
    if (ctx->offline)
        return;
    for (i = 0; i < n; i++)
        if (nj_tuning_matches(tables[i], &ctx->device)) {
            ctx->shipped_tuning = tables[i];
            return;
        }
}

static void note_stale(normjit_ctx *ctx, const nj_tuning *t)
{
    const nj_templates *templates;
    if (t && nj_templates_get(&templates) == NORMJIT_OK &&
        (strcmp(t->templates, templates->digest) || strcmp(t->library, NORMJIT_VERSION_STRING)))
        nj_log(&ctx->log, NORMJIT_LOG_INFO,
               "the tuning table for %s was measured with normjit %s (templates %s); this is "
               "%s (templates %s): its choices still apply, 'normjit tune' may find better ones",
               t->device.name, t->library, t->templates, NORMJIT_VERSION_STRING,
               templates->digest);
}

void nj_ctx_plan(const normjit_ctx *ctx, const nj_request *r, nj_plan *out)
{
    if (ctx->user_tuning && nj_tuning_lookup(ctx->user_tuning, r, ctx->arch, out))
        return;
    if (ctx->shipped_tuning && nj_tuning_lookup(ctx->shipped_tuning, r, ctx->arch, out))
        return;
    nj_plan_heuristic(r, ctx->arch, out);
}

static int add_plan(nj_plan *out, int n, int max, const nj_plan *p)
{
    int i;
    for (i = 0; i < n; i++)
        if (nj_variant_equal(&out[i].v, &p->v))
            return n;
    if (n < max)
        out[n++] = *p;
    return n;
}

int nj_ctx_plans(const normjit_ctx *ctx, const nj_request *r, nj_plan *out, int max)
{
    const nj_tuning *const *tables;
    nj_plan p;
    int n = 0, n_tables, i;
    if (!ctx->offline) {
        nj_ctx_plan(ctx, r, &out[0]);
        return 1;
    }
    if (ctx->user_tuning && nj_tuning_lookup(ctx->user_tuning, r, ctx->arch, &p))
        n = add_plan(out, n, max, &p);
    tables = nj_shipped_tables(&n_tables);
    for (i = 0; i < n_tables; i++)
        if (tables[i]->device.cc == ctx->arch && nj_tuning_lookup(tables[i], r, ctx->arch, &p))
            n = add_plan(out, n, max, &p);
    nj_plan_heuristic(r, ctx->arch, &p);
    return add_plan(out, n, max, &p);
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
    if (opt.log_level == 0)
        opt.log_level = NORMJIT_LOG_WARN;
    if (opt.log_level < NORMJIT_LOG_ERROR || opt.log_level > NORMJIT_LOG_DEBUG)
        return nj_fail(NORMJIT_EINVAL, "log_level %d outside NORMJIT_LOG_ERROR..DEBUG (or 0)",
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
    if ((status = load_user_tuning(ctx, opt.tuning_file)) != NORMJIT_OK)
        goto fail;
    find_shipped_tuning(ctx);
    note_stale(ctx, ctx->user_tuning ? ctx->user_tuning : ctx->shipped_tuning);
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
    nj_tuning_free(ctx->user_tuning);
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
    nj_tuning_free(ctx->user_tuning);
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
