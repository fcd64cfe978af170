#include "gpu.h"

#include "ctx.h"
#include "testutil.h"
#include "tuning.h"

#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>

static void check(const nj_gpu *g, CUresult res, const char *what)
{
    if (res != CUDA_SUCCESS)
        fail_msg("%s failed: %s", what, nj_cu_name(g->drv, res));
}

int nj_gpu_open(nj_gpu *g)
{
    nj_device_info info;
    int count = 0;
    if (nj_driver_extra_load(&g->drv, &g->x) != NORMJIT_OK) {
        printf("# SKIP: no CUDA driver: %s\n", normjit_last_error());
        return NJ_TEST_SKIP;
    }
    if (g->x->device_get_count(&count) != CUDA_SUCCESS || count == 0) {
        printf("# SKIP: no CUDA device\n");
        return NJ_TEST_SKIP;
    }
    if (g->x->device_get(&g->dev, 0) != CUDA_SUCCESS ||
        g->x->primary_ctx_retain(&g->cu, g->dev) != CUDA_SUCCESS ||
        g->drv->ctx_push_current(g->cu) != CUDA_SUCCESS ||
        nj_device_query(g->drv, g->dev, &info) != NORMJIT_OK) {
        printf("# SKIP: cannot open GPU 0\n");
        return NJ_TEST_SKIP;
    }
    snprintf(g->name, sizeof g->name, "%s", info.name);
    g->arch = info.arch;
    printf("# GPU 0: %s (sm_%d)\n", g->name, g->arch);
    return 0;
}

void nj_gpu_close(nj_gpu *g)
{
    CUcontext popped;
    g->drv->ctx_pop_current(&popped);
    g->x->primary_ctx_release(g->dev);
}

void nj_gpu_bind(const nj_gpu *g)
{
    check(g, g->drv->ctx_push_current(g->cu), "cuCtxPushCurrent");
}

CUdeviceptr nj_gpu_alloc(const nj_gpu *g, size_t bytes)
{
    CUdeviceptr p = 0;
    check(g, g->x->mem_alloc(&p, bytes ? bytes : 1), "cuMemAlloc");
    return p;
}

void nj_gpu_free(const nj_gpu *g, CUdeviceptr p)
{
    if (p)
        check(g, g->x->mem_free(p), "cuMemFree");
}

void nj_gpu_upload(const nj_gpu *g, CUdeviceptr dst, const void *src, size_t bytes)
{
    check(g, g->x->memcpy_htod(dst, src, bytes), "cuMemcpyHtoD");
}

void nj_gpu_download(const nj_gpu *g, void *dst, CUdeviceptr src, size_t bytes)
{
    check(g, g->x->memcpy_dtoh(dst, src, bytes), "cuMemcpyDtoH");
}

void nj_gpu_poison(const nj_gpu *g, CUdeviceptr p, size_t bytes)
{
    check(g, g->x->memset_d8(p, 0xff, bytes), "cuMemsetD8");
}

void nj_gpu_fill(const nj_gpu *g, CUdeviceptr p, size_t bytes, unsigned char value)
{
    check(g, g->x->memset_d8(p, value, bytes), "cuMemsetD8");
}

void nj_gpu_sync(const nj_gpu *g)
{
    check(g, g->x->ctx_synchronize(), "cuCtxSynchronize");
}

normjit_ctx *nj_gpu_ctx_with_table(const char *table, nj_tuning **out_table)
{
    normjit_ctx_options o;
    normjit_ctx *ctx = NULL;
    *out_table = NULL;
    assert_int_equal(nj_tuning_parse(table, strlen(table), out_table), NORMJIT_OK);
    memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    o.log_level = NORMJIT_LOG_WARN;
    assert_int_equal(normjit_ctx_create(&ctx, &o), NORMJIT_OK);
    ctx->planner.user = *out_table;
    return ctx;
}
