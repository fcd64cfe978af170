#include "ctx.h"

#include "args.h"
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

static int device_info(normjit_ctx *ctx)
{
    const nj_driver *d = ctx->drv;
    nj_device_info info;
    CUresult res;
    int status;

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
    if ((status = nj_device_query(d, ctx->dev, &info)) != NORMJIT_OK)
        return status;
    ctx->arch = info.arch;
    ctx->sm_count = info.sms;
    snprintf(ctx->device_name, sizeof ctx->device_name, "%s", info.name);
    snprintf(ctx->device.name, sizeof ctx->device.name, "%s", info.name);
    ctx->device.sms = info.sms;
    ctx->device.cc = info.arch;
    ctx->device.memory_mib = info.memory_mib;
    ctx->device.driver = info.driver;
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
        if (t->dropped)
            nj_log(&ctx->log, NORMJIT_LOG_WARN,
                   "tuning table %s: %zu records dropped with their configurations' other "
                   "buckets (%s)",
                   path, t->dropped, t->dropped_why);
    }
    free(default_path);
    return status;
}

/* A compile-only context plans with no table of a device; it leaves the shipped tables unread
   (their first reading was most of its creation), for `normjit warm` to read if it asks. */
static const nj_tuning *find_shipped_tuning(const normjit_ctx *ctx)
{
    int n, i;
    const nj_tuning *const *tables;
    if (ctx->offline)
        return NULL;
    tables = nj_shipped_tables(&n);
    for (i = 0; i < n; i++)
        if (nj_tuning_matches(tables[i], &ctx->device))
            return tables[i];
    return NULL;
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
    if (opt.flags & ~(NORMJIT_CTX_NO_DISK_CACHE | NORMJIT_CTX_PDL))
        return nj_fail(NORMJIT_EINVAL, "unknown normjit_ctx_options.flags bits 0x%x",
                       opt.flags & ~(NORMJIT_CTX_NO_DISK_CACHE | NORMJIT_CTX_PDL));
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
    ctx->flags = opt.flags;
    nj_logger_init(&ctx->log, opt.log, opt.log_user, opt.log_level);
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
    ctx->planner.arch = ctx->arch;
    ctx->planner.user = ctx->user_tuning;
    ctx->planner.shipped = find_shipped_tuning(ctx);
    note_stale(ctx, ctx->user_tuning ? ctx->user_tuning : ctx->planner.shipped);
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
    nj_builder_init(&ctx->builder, ctx->arch, nvrtc, ctx->disk, &ctx->log);
    if ((status = nj_kernels_init(&ctx->kernels, ctx->drv, &ctx->builder, &ctx->log)) !=
        NORMJIT_OK) {
        nj_builder_free(&ctx->builder);
        nj_disk_cache_close(ctx->disk);
        goto fail;
    }
    *out = ctx;
    return NORMJIT_OK;
fail:
    nj_tuning_free(ctx->user_tuning);
    free(ctx);
    return status;
}

NORMJIT_API int normjit_ctx_create(normjit_ctx **out, const normjit_ctx_options *options)
{
    return nj_ctx_create_with(out, options, NULL, NULL);
}

NORMJIT_API void normjit_ctx_destroy(normjit_ctx *ctx)
{
    int pushed = 0;
    if (!ctx)
        return;
    /* Modules belong to the bound context; unload them there. */
    if (ctx->drv)
        pushed = ctx->drv->ctx_push_current(ctx->cu) == CUDA_SUCCESS;
    nj_kernels_free(&ctx->kernels);
    if (pushed) {
        CUcontext popped;
        ctx->drv->ctx_pop_current(&popped);
    }
    nj_builder_free(&ctx->builder);
    nj_disk_cache_close(ctx->disk);
    nj_tuning_free(ctx->user_tuning);
    free(ctx);
}

NORMJIT_API const char *normjit_ctx_cache_dir(const normjit_ctx *ctx)
{
    return ctx && ctx->disk ? nj_disk_cache_root(ctx->disk) : NULL;
}

