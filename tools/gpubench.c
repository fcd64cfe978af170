#include "gpubench.h"

#include "hostref.h"
#include "status.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int dsize(int dtype)
{
    return dtype == NORMJIT_DTYPE_F32 ? 4 : 2;
}

int nj_bench_gpu_open(nj_bench_gpu *g)
{
    CUresult res;
    int major = 0, minor = 0, status;
    memset(g, 0, sizeof *g);
    if ((status = nj_driver_load(&g->drv)) != NORMJIT_OK)
        return status;
    if ((res = g->drv->device_get(&g->dev, 0)) != CUDA_SUCCESS)
        return nj_cu_fail(g->drv, res, "cuDeviceGet(0)");
    if ((res = g->drv->primary_ctx_retain(&g->cu, g->dev)) != CUDA_SUCCESS)
        return nj_cu_fail(g->drv, res, "cuDevicePrimaryCtxRetain");
    if ((res = g->drv->ctx_push_current(g->cu)) != CUDA_SUCCESS)
        return nj_cu_fail(g->drv, res, "cuCtxPushCurrent");
    g->drv->device_get_name(g->name, (int)sizeof g->name, g->dev);
    g->drv->device_get_attribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, g->dev);
    g->drv->device_get_attribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, g->dev);
    g->drv->device_get_attribute(&g->sms, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, g->dev);
    g->drv->device_get_attribute(&g->l2_bytes, CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE, g->dev);
    g->drv->device_total_mem(&g->total_mem, g->dev);
    g->arch = major * 10 + minor;
    if ((res = g->drv->stream_create(&g->stream, CU_STREAM_NON_BLOCKING)) != CUDA_SUCCESS)
        return nj_cu_fail(g->drv, res, "cuStreamCreate");
    return NORMJIT_OK;
}

void nj_bench_gpu_close(nj_bench_gpu *g)
{
    CUcontext popped;
    if (!g->drv)
        return;
    g->drv->stream_destroy(g->stream);
    g->drv->ctx_pop_current(&popped);
    g->drv->primary_ctx_release(g->dev);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double nj_bench_median_ms(nj_bench_gpu *g, nj_bench_launch_fn fn, void *user, int sets,
                          int warmup, int iters, int *status)
{
    /*
     * Every launch is enqueued between its own pair of events and the host
     * only waits at the end, so the GPU runs the launches back to back and
     * each pair measures the kernel as the stream sees it, without the
     * host's submission time.
     */
    CUevent *ev = calloc((size_t)iters * 2, sizeof *ev);
    double *t = malloc((size_t)iters * sizeof *t), m = -1;
    int i, made = 0;
    *status = NORMJIT_OK;
    if (!ev || !t) {
        *status = nj_fail(NORMJIT_ENOMEM, "out of memory");
        goto out;
    }
    for (made = 0; made < iters * 2; made++)
        if (g->drv->event_create(&ev[made], CU_EVENT_DEFAULT) != CUDA_SUCCESS) {
            *status = nj_fail(NORMJIT_EDRIVER, "cuEventCreate failed");
            goto out;
        }
    for (i = 0; i < warmup; i++)
        if ((*status = fn(user, i % sets, g->stream)) != NORMJIT_OK)
            goto out;
    for (i = 0; i < iters; i++) {
        g->drv->event_record(ev[2 * i], g->stream);
        if ((*status = fn(user, (warmup + i) % sets, g->stream)) != NORMJIT_OK)
            goto out;
        g->drv->event_record(ev[2 * i + 1], g->stream);
    }
    if (g->drv->stream_synchronize(g->stream) != CUDA_SUCCESS) {
        *status = nj_fail(NORMJIT_EDRIVER, "a timed launch failed");
        goto out;
    }
    for (i = 0; i < iters; i++) {
        float ms = 0;
        if (g->drv->event_elapsed_time(&ms, ev[2 * i], ev[2 * i + 1]) != CUDA_SUCCESS) {
            *status = nj_fail(NORMJIT_EDRIVER, "cuEventElapsedTime failed");
            goto out;
        }
        t[i] = ms;
    }
    m = median(t, iters);
out:
    for (i = 0; i < made; i++)
        g->drv->event_destroy(ev[i]);
    free(ev);
    free(t);
    return m;
}

struct copy_user {
    nj_bench_gpu *g;
    CUdeviceptr src, dst;
    size_t bytes;
};

static int launch_copy(void *user, int set, CUstream stream)
{
    struct copy_user *c = user;
    (void)set;
    return c->g->drv->memcpy_dtod_async(c->dst, c->src, c->bytes, stream) == CUDA_SUCCESS
               ? NORMJIT_OK
               : nj_fail(NORMJIT_EDRIVER, "cuMemcpyDtoDAsync failed");
}

double nj_bench_copy_bandwidth(nj_bench_gpu *g, size_t bytes, int iters)
{
    struct copy_user c = {g, 0, 0, bytes};
    double ms;
    int status;
    if (g->drv->mem_alloc(&c.src, bytes) != CUDA_SUCCESS)
        return -1;
    if (g->drv->mem_alloc(&c.dst, bytes) != CUDA_SUCCESS) {
        g->drv->mem_free(c.src);
        return -1;
    }
    g->drv->memset_d8(c.src, 0x3c, bytes);
    ms = nj_bench_median_ms(g, launch_copy, &c, 1, 3, iters, &status);
    g->drv->mem_free(c.src);
    g->drv->mem_free(c.dst);
    return ms > 0 ? 2.0 * (double)bytes / (ms * 1e-3) : -1;
}

double nj_bench_bytes(const nj_bench_op *op)
{
    double elems = (double)op->rows * (double)op->hidden;
    double params = (double)op->hidden * dsize(op->tw) * (op->bias ? 2 : 1);
    return elems * (dsize(op->tx) + dsize(op->ty)) + params;
}

void nj_bench_free(nj_bench_gpu *g, nj_bench_buffers *b)
{
    int i;
    for (i = 0; i < b->sets; i++) {
        g->drv->mem_free(b->x[i]);
        g->drv->mem_free(b->y[i]);
    }
    if (b->w)
        g->drv->mem_free(b->w);
    if (b->b)
        g->drv->mem_free(b->b);
    memset(b, 0, sizeof *b);
}

/* Upload `bytes` of data tiled from a host chunk of random values. */
static int fill_random(nj_bench_gpu *g, CUdeviceptr dst, size_t bytes, int dtype, nj_rng *rng,
                       double shift)
{
    const size_t chunk_bytes = 16u << 20;
    size_t n = (bytes < chunk_bytes ? bytes : chunk_bytes) / (size_t)dsize(dtype), i, off;
    unsigned char *h = malloc(n * (size_t)dsize(dtype) + 16);
    if (!h)
        return nj_fail(NORMJIT_ENOMEM, "out of memory");
    for (i = 0; i < n; i++)
        nj_host_put(h, dtype, i, shift + nj_rng_normal(rng));
    for (off = 0; off < bytes; off += n * (size_t)dsize(dtype)) {
        size_t len = bytes - off < n * (size_t)dsize(dtype) ? bytes - off : n * (size_t)dsize(dtype);
        if (g->drv->memcpy_htod(dst + off, h, len) != CUDA_SUCCESS) {
            free(h);
            return nj_fail(NORMJIT_EDRIVER, "cuMemcpyHtoD failed");
        }
    }
    free(h);
    return NORMJIT_OK;
}

int nj_bench_alloc(nj_bench_gpu *g, const nj_bench_op *op, uint64_t seed, nj_bench_buffers *b)
{
    const size_t xb = (size_t)(op->rows * op->hidden) * (size_t)dsize(op->tx);
    const size_t yb = (size_t)(op->rows * op->hidden) * (size_t)dsize(op->ty);
    const size_t wb = (size_t)op->hidden * (size_t)dsize(op->tw);
    double want = 4.0 * (g->l2_bytes > 0 ? g->l2_bytes : (50 << 20));
    nj_rng rng;
    int i, sets, status;

    memset(b, 0, sizeof *b);
    nj_rng_init(&rng, seed);
    sets = (int)ceil(want / (double)(xb + yb));
    if (sets < 1)
        sets = 1;
    if (sets > NJ_BENCH_MAX_SETS)
        sets = NJ_BENCH_MAX_SETS;
    for (i = 0; i < sets; i++) {
        if (g->drv->mem_alloc(&b->x[i], xb ? xb : 1) != CUDA_SUCCESS ||
            g->drv->mem_alloc(&b->y[i], yb ? yb : 1) != CUDA_SUCCESS) {
            if (b->x[i] && !b->y[i])
                g->drv->mem_free(b->x[i]);
            b->sets = i;
            nj_bench_free(g, b);
            return nj_fail(NORMJIT_EDRIVER, "cannot allocate %.1f GiB of device memory",
                           (double)(xb + yb) * (i + 1) / (1u << 30));
        }
        b->sets = i + 1;
        if ((status = fill_random(g, b->x[i], xb, op->tx, &rng, op->op == NORMJIT_OP_LAYERNORM
                                                                    ? 0.5
                                                                    : 0.0)) != NORMJIT_OK) {
            nj_bench_free(g, b);
            return status;
        }
        g->drv->memset_d8(b->y[i], 0xff, yb);
    }
    if (g->drv->mem_alloc(&b->w, wb) != CUDA_SUCCESS ||
        g->drv->mem_alloc(&b->b, wb) != CUDA_SUCCESS ||
        (status = fill_random(g, b->w, wb, op->tw, &rng, 1.0)) != NORMJIT_OK ||
        (status = fill_random(g, b->b, wb, op->tw, &rng, 0.0)) != NORMJIT_OK) {
        nj_bench_free(g, b);
        return nj_fail(NORMJIT_EDRIVER, "cannot set up weights");
    }
    return NORMJIT_OK;
}

void nj_bench_args(const nj_bench_op *op, const nj_bench_buffers *b, int set,
                   normjit_norm_args *a)
{
    memset(a, 0, sizeof *a);
    a->struct_size = sizeof *a;
    a->rows = op->rows;
    a->hidden = op->hidden;
    a->x_row_stride = a->y_row_stride = op->hidden;
    a->x = (const void *)(uintptr_t)b->x[set];
    a->y = (void *)(uintptr_t)b->y[set];
    a->weight = (const void *)(uintptr_t)b->w;
    a->bias = op->op == NORMJIT_OP_LAYERNORM && op->bias ? (const void *)(uintptr_t)b->b : NULL;
    a->x_dtype = op->tx;
    a->y_dtype = op->ty;
    a->weight_dtype = op->tw;
    a->eps = 1e-5f;
}

int nj_bench_launch_api(void *user, int set, CUstream stream)
{
    nj_bench_api_user *u = user;
    normjit_norm_args a;
    nj_bench_args(u->op, u->b, set, &a);
    return u->op->op == NORMJIT_OP_RMSNORM ? normjit_rmsnorm_fwd(u->ctx, &a, stream)
                                           : normjit_layernorm_fwd(u->ctx, &a, stream);
}

double nj_bench_check(nj_bench_gpu *g, const nj_bench_op *op, const nj_bench_buffers *b)
{
    const int64_t H = op->hidden, R = op->rows;
    const int sx = dsize(op->tx), sy = dsize(op->ty), sw = dsize(op->tw);
    unsigned char *hx = malloc((size_t)H * sx), *hy = malloc((size_t)H * sy);
    unsigned char *hw = malloc((size_t)H * sw), *hb = malloc((size_t)H * sw);
    double *xr = malloc((size_t)H * sizeof(double)), *wr = malloc((size_t)H * sizeof(double));
    double *br = malloc((size_t)H * sizeof(double)), *ref = malloc((size_t)H * sizeof(double));
    double worst = 0;
    int64_t k, j;
    int bad = !hx || !hy || !hw || !hb || !xr || !wr || !br || !ref;

    if (!bad && g->drv->stream_synchronize(g->stream) == CUDA_SUCCESS &&
        g->drv->memcpy_dtoh(hw, b->w, (size_t)H * sw) == CUDA_SUCCESS &&
        g->drv->memcpy_dtoh(hb, b->b, (size_t)H * sw) == CUDA_SUCCESS) {
        for (j = 0; j < H; j++) {
            wr[j] = nj_host_get(hw, op->tw, (size_t)j);
            br[j] = nj_host_get(hb, op->tw, (size_t)j);
        }
        for (k = 0; k < 192 && k < R; k++) {
            /* first 64 rows, last 64, and 64 spread between */
            int64_t row = k < 64 ? k : k < 128 ? R - 1 - (k - 64) : (k - 128) * (R / 64);
            double err;
            if (g->drv->memcpy_dtoh(hx, b->x[0] + (CUdeviceptr)(row * H * sx), (size_t)H * sx) !=
                    CUDA_SUCCESS ||
                g->drv->memcpy_dtoh(hy, b->y[0] + (CUdeviceptr)(row * H * sy), (size_t)H * sy) !=
                    CUDA_SUCCESS) {
                worst = -1;
                break;
            }
            for (j = 0; j < H; j++)
                xr[j] = nj_host_get(hx, op->tx, (size_t)j);
            nj_reference_row(op->op, xr, wr, op->op == NORMJIT_OP_LAYERNORM && op->bias ? br : NULL,
                             H, 1e-5, 0, ref, NULL, NULL);
            err = nj_row_error(hy, op->ty, ref, H);
            if (!(err <= worst))
                worst = err;
        }
    } else {
        worst = -1;
    }
    free(hx);
    free(hy);
    free(hw);
    free(hb);
    free(xr);
    free(wr);
    free(br);
    free(ref);
    return worst;
}
