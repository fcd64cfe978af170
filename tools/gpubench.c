#include "gpubench.h"

#include "hostref.h"
#include "ops.h"
#include "status.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int dsize(int dtype)
{
    return dtype == NORMJIT_DTYPE_F32 ? 4 : 2;
}

int nj_bench_gpu_open(nj_bench_gpu *g)
{
    nj_device_info info;
    CUresult res;
    int status;
    memset(g, 0, sizeof *g);
    if ((status = nj_driver_extra_load(&g->drv, &g->x)) != NORMJIT_OK)
        return status;
    if ((res = g->x->device_get(&g->dev, 0)) != CUDA_SUCCESS)
        return nj_cu_fail(g->drv, res, "cuDeviceGet(0)");
    if ((res = g->x->primary_ctx_retain(&g->cu, g->dev)) != CUDA_SUCCESS)
        return nj_cu_fail(g->drv, res, "cuDevicePrimaryCtxRetain");
    if ((res = g->drv->ctx_push_current(g->cu)) != CUDA_SUCCESS)
        return nj_cu_fail(g->drv, res, "cuCtxPushCurrent");
    if ((status = nj_device_query(g->drv, g->dev, &info)) != NORMJIT_OK)
        return status;
    snprintf(g->name, sizeof g->name, "%s", info.name);
    g->arch = info.arch;
    g->sms = info.sms;
    g->l2_bytes = info.l2_bytes;
    g->total_mem = (size_t)info.memory_mib << 20;
    if ((res = g->x->stream_create(&g->stream, CU_STREAM_NON_BLOCKING)) != CUDA_SUCCESS)
        return nj_cu_fail(g->drv, res, "cuStreamCreate");
    return NORMJIT_OK;
}

void nj_bench_gpu_close(nj_bench_gpu *g)
{
    CUcontext popped;
    if (!g->drv)
        return;
    g->x->stream_destroy(g->stream);
    g->drv->ctx_pop_current(&popped);
    g->x->primary_ctx_release(g->dev);
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

/*
 * Every launch is enqueued between its own pair of events and the host only
 * waits at the end, so each pair measures the kernel as the stream sees it,
 * without the host's submission time. With `flush`, each timed launch is
 * preceded by a memset of flush_bytes (the L2 starts cold, and the GPU stays
 * busy while the host enqueues); without, the launches run back to back.
 */
static double time_calls(nj_bench_gpu *g, nj_bench_launch_fn fn, void *user, int sets,
                         int warmup, int iters, CUdeviceptr flush, size_t flush_bytes,
                         int *status)
{
    CUevent *ev = calloc((size_t)iters * 2, sizeof *ev);
    double *t = malloc((size_t)iters * sizeof *t), m = -1;
    int i, made = 0;
    *status = NORMJIT_OK;
    if (!ev || !t) {
        *status = nj_fail(NORMJIT_ENOMEM, "out of memory");
        goto out;
    }
    for (made = 0; made < iters * 2; made++)
        if (g->x->event_create(&ev[made], CU_EVENT_DEFAULT) != CUDA_SUCCESS) {
            *status = nj_fail(NORMJIT_EDRIVER, "cuEventCreate failed");
            goto out;
        }
    for (i = 0; i < warmup; i++)
        if ((*status = fn(user, i % sets, g->stream)) != NORMJIT_OK)
            goto out;
    for (i = 0; i < iters; i++) {
        if (flush)
            g->x->memset_d8_async(flush, (unsigned char)i, flush_bytes, g->stream);
        g->x->event_record(ev[2 * i], g->stream);
        if ((*status = fn(user, (warmup + i) % sets, g->stream)) != NORMJIT_OK)
            goto out;
        g->x->event_record(ev[2 * i + 1], g->stream);
    }
    if (g->x->stream_synchronize(g->stream) != CUDA_SUCCESS) {
        *status = nj_fail(NORMJIT_EDRIVER, "a timed launch failed");
        goto out;
    }
    for (i = 0; i < iters; i++) {
        float ms = 0;
        if (g->x->event_elapsed_time(&ms, ev[2 * i], ev[2 * i + 1]) != CUDA_SUCCESS) {
            *status = nj_fail(NORMJIT_EDRIVER, "cuEventElapsedTime failed");
            goto out;
        }
        t[i] = ms;
    }
    m = median(t, iters);
out:
    for (i = 0; i < made; i++)
        g->x->event_destroy(ev[i]);
    free(ev);
    free(t);
    return m;
}

double nj_bench_median_ms(nj_bench_gpu *g, nj_bench_launch_fn fn, void *user, int sets,
                          int warmup, int iters, int *status)
{
    return time_calls(g, fn, user, sets, warmup, iters, 0, 0, status);
}

double nj_bench_cold_median_ms(nj_bench_gpu *g, nj_bench_launch_fn fn, void *user, int sets,
                               int iters, int *status)
{
    const size_t flush_bytes = (size_t)(g->l2_bytes > 0 ? g->l2_bytes : (50 << 20)) * 4;
    CUdeviceptr flush = 0;
    double m;
    if (g->x->mem_alloc(&flush, flush_bytes) != CUDA_SUCCESS) {
        *status = nj_fail(NORMJIT_EDRIVER, "cannot allocate the L2 flush buffer");
        return -1;
    }
    /* One untimed call first: module load and first-touch costs stay out. */
    m = time_calls(g, fn, user, sets, 1, iters, flush, flush_bytes, status);
    g->x->mem_free(flush);
    return m;
}

struct copy_user {
    nj_bench_gpu *g;
    CUdeviceptr src[NJ_BENCH_MAX_SETS], dst[NJ_BENCH_MAX_SETS];
    size_t bytes;
};

static int launch_copy(void *user, int set, CUstream stream)
{
    struct copy_user *c = user;
    return c->g->x->memcpy_dtod_async(c->dst[set], c->src[set], c->bytes, stream) == CUDA_SUCCESS
               ? NORMJIT_OK
               : nj_fail(NORMJIT_EDRIVER, "cuMemcpyDtoDAsync failed");
}

double nj_bench_copy_ms(nj_bench_gpu *g, size_t bytes, int iters)
{
    /* As many pairs as keep every copy's data out of L2, like the kernels' buffer sets. */
    const double want = 4.0 * (g->l2_bytes > 0 ? g->l2_bytes : (50 << 20));
    struct copy_user c;
    double ms = -1;
    int sets = (int)ceil(want / (2.0 * (double)(bytes ? bytes : 1))), i, made, status;
    memset(&c, 0, sizeof c);
    c.g = g;
    c.bytes = bytes ? bytes : 1;
    if (sets < 1)
        sets = 1;
    if (sets > NJ_BENCH_MAX_SETS)
        sets = NJ_BENCH_MAX_SETS;
    for (made = 0; made < sets; made++) {
        if (g->x->mem_alloc(&c.src[made], c.bytes) != CUDA_SUCCESS)
            break;
        if (g->x->mem_alloc(&c.dst[made], c.bytes) != CUDA_SUCCESS) {
            g->x->mem_free(c.src[made]);
            break;
        }
        g->x->memset_d8(c.src[made], 0x3c, c.bytes);
    }
    if (made == sets)
        ms = nj_bench_median_ms(g, launch_copy, &c, sets, 3, iters, &status);
    for (i = 0; i < made; i++) {
        g->x->mem_free(c.src[i]);
        g->x->mem_free(c.dst[i]);
    }
    return ms;
}

double nj_bench_copy_bandwidth(nj_bench_gpu *g, size_t bytes, int iters)
{
    double ms = nj_bench_copy_ms(g, bytes, iters);
    return ms > 0 ? 2.0 * (double)bytes / (ms * 1e-3) : -1;
}

nj_bench_op nj_bench_plain(int op, int dtype, int64_t rows, int64_t hidden)
{
    nj_bench_op b;
    memset(&b, 0, sizeof b);
    b.s.op = op;
    b.s.tx = b.s.ty = b.s.tw = dtype;
    b.s.hidden = hidden;
    b.rows = rows;
    b.heads = 1;
    b.bias = 1;
    return b;
}

static int has_bias(const nj_bench_op *op)
{
    const nj_op_desc *d = nj_op_desc_of(op->s.op);
    return op->bias && d && (d->tensors & NJ_T_B);
}

/* Rows the kernel normalizes (QK-norm: every head). */
static int64_t norm_rows(const nj_bench_op *op)
{
    return op->rows * (op->heads > 0 ? op->heads : 1);
}

double nj_bench_bytes(const nj_bench_op *op)
{
    return nj_spec_bytes(&op->s, norm_rows(op), 1, has_bias(op));
}

void nj_bench_free(nj_bench_gpu *g, nj_bench_buffers *b)
{
    int i;
    for (i = 0; i < b->sets; i++) {
        g->x->mem_free(b->x[i]);
        g->x->mem_free(b->y[i]);
        if (b->res[i])
            g->x->mem_free(b->res[i]);
        if (b->scales[i])
            g->x->mem_free(b->scales[i]);
    }
    if (b->w)
        g->x->mem_free(b->w);
    if (b->b)
        g->x->mem_free(b->b);
    if (b->scale)
        g->x->mem_free(b->scale);
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
        if (g->x->memcpy_htod(dst + off, h, len) != CUDA_SUCCESS) {
            free(h);
            return nj_fail(NORMJIT_EDRIVER, "cuMemcpyHtoD failed");
        }
    }
    free(h);
    return NORMJIT_OK;
}

/*
 * The tensor quantization's scale: the benchmark's normalized values (x_hat
 * times weights near 1 + N(0, 1)) stay below 32, so nothing saturates.
 */
static float tensor_scale(int code_dtype)
{
    return 32.0f / nj_dtype_qmax(code_dtype);
}

/*
 * The spacing of the codes of `dtype` around the code value q (= v / s):
 * 1 for int8; for fp8, a power of two set by q's binade (the subnormal
 * spacing below the smallest normal).
 */
static double code_step(int dtype, double q)
{
    const int man = dtype == NORMJIT_DTYPE_FP8_E4M3 ? 3 : 2;
    const int emin = dtype == NORMJIT_DTYPE_FP8_E4M3 ? -6 : -14;
    int e;
    if (dtype == NORMJIT_DTYPE_INT8)
        return 1.0;
    frexp(fabs(q), &e); /* |q| in [2^(e-1), 2^e) */
    return ldexp(1.0, (e - 1 < emin ? emin : e - 1) - man);
}

/* Scales per row of a quantized output (token: 1; group: hidden / group). */
static int64_t scales_per_row(const nj_spec *s)
{
    return s->quant == NORMJIT_QUANT_GROUP ? s->hidden / s->group
                                           : s->quant == NORMJIT_QUANT_TOKEN ? 1 : 0;
}

static int alloc_set(nj_bench_gpu *g, const nj_bench_op *op, nj_bench_buffers *b, int i,
                     nj_rng *rng)
{
    const int64_t elems = norm_rows(op) * op->s.hidden;
    const size_t xb = (size_t)elems * (size_t)dsize(op->s.tx);
    const size_t yb = (size_t)elems * (size_t)nj_dtype_size(op->s.ty);
    const size_t rb = op->s.tr ? (size_t)elems * (size_t)dsize(op->s.tr) : 0;
    const size_t sb = (size_t)(norm_rows(op) * scales_per_row(&op->s)) * 4;
    const double shift = nj_op_desc_of(op->s.op)->statistic_mean ? 0.5 : 0.0;
    int status;
    if (g->x->mem_alloc(&b->x[i], xb ? xb : 1) != CUDA_SUCCESS ||
        g->x->mem_alloc(&b->y[i], yb ? yb : 1) != CUDA_SUCCESS ||
        (rb && g->x->mem_alloc(&b->res[i], rb) != CUDA_SUCCESS) ||
        (sb && g->x->mem_alloc(&b->scales[i], sb) != CUDA_SUCCESS))
        return nj_fail(NORMJIT_EDRIVER, "cannot allocate %.1f GiB of device memory",
                       (double)(xb + yb + rb + sb) * (i + 1) / (1u << 30));
    if ((status = fill_random(g, b->x[i], xb, op->s.tx, rng, shift)) != NORMJIT_OK ||
        (rb && (status = fill_random(g, b->res[i], rb, op->s.tr, rng, 0.0)) != NORMJIT_OK))
        return status;
    g->x->memset_d8(b->y[i], 0xff, yb);
    return NORMJIT_OK;
}

int nj_bench_alloc(nj_bench_gpu *g, const nj_bench_op *op, uint64_t seed, nj_bench_buffers *b)
{
    const int64_t elems = norm_rows(op) * op->s.hidden;
    const size_t per_set = (size_t)elems * (size_t)(dsize(op->s.tx) + nj_dtype_size(op->s.ty) +
                                                    (op->s.tr ? 2 * dsize(op->s.tr) : 0));
    const size_t wb = (size_t)op->s.hidden * (size_t)dsize(op->s.tw);
    double want = 4.0 * (g->l2_bytes > 0 ? g->l2_bytes : (50 << 20));
    nj_rng rng;
    int i, sets, status;

    memset(b, 0, sizeof *b);
    nj_rng_init(&rng, seed);
    sets = (int)ceil(want / (double)(per_set ? per_set : 1));
    if (sets < 1)
        sets = 1;
    if (sets > NJ_BENCH_MAX_SETS)
        sets = NJ_BENCH_MAX_SETS;
    for (i = 0; i < sets; i++) {
        b->sets = i + 1;
        if ((status = alloc_set(g, op, b, i, &rng)) != NORMJIT_OK) {
            nj_bench_free(g, b);
            return status;
        }
    }
    if (g->x->mem_alloc(&b->w, wb) != CUDA_SUCCESS ||
        g->x->mem_alloc(&b->b, wb) != CUDA_SUCCESS ||
        (status = fill_random(g, b->w, wb, op->s.tw, &rng, 1.0)) != NORMJIT_OK ||
        (status = fill_random(g, b->b, wb, op->s.tw, &rng, 0.0)) != NORMJIT_OK) {
        nj_bench_free(g, b);
        return nj_fail(NORMJIT_EDRIVER, "cannot set up weights");
    }
    if (op->s.quant == NORMJIT_QUANT_TENSOR) {
        float scale = tensor_scale(op->s.ty);
        if (g->x->mem_alloc(&b->scale, 4) != CUDA_SUCCESS ||
            g->x->memcpy_htod(b->scale, &scale, 4) != CUDA_SUCCESS) {
            nj_bench_free(g, b);
            return nj_fail(NORMJIT_EDRIVER, "cannot set up the quantization scale");
        }
    }
    return NORMJIT_OK;
}

void nj_bench_args(const nj_bench_op *op, const nj_bench_buffers *b, int set,
                   normjit_norm_args *a)
{
    memset(a, 0, sizeof *a);
    a->struct_size = sizeof *a;
    a->rows = op->rows;
    a->hidden = op->s.hidden;
    a->x = (const void *)(uintptr_t)b->x[set];
    a->y = (void *)(uintptr_t)b->y[set];
    a->weight = (const void *)(uintptr_t)b->w;
    a->bias = has_bias(op) ? (const void *)(uintptr_t)b->b : NULL;
    a->x_dtype = op->s.tx;
    a->y_dtype = op->s.ty;
    a->weight_dtype = op->s.tw;
    a->eps = 1e-5f;
    a->cast = op->s.cast;
    if (op->s.tr) {
        a->residual = a->residual_out = (void *)(uintptr_t)b->res[set];
        a->residual_dtype = op->s.tr;
    }
    if (op->heads > 1)
        a->heads = op->heads;
    a->quant = op->s.quant;
    a->group_size = op->s.group;
    if (op->s.pow2)
        a->flags |= NORMJIT_NORM_SCALES_POW2;
    if (op->s.quant == NORMJIT_QUANT_TENSOR)
        a->scale = (const float *)(uintptr_t)b->scale;
    else if (op->s.quant)
        a->scales = (float *)(uintptr_t)b->scales[set];
}

int nj_bench_launch_api(void *user, int set, CUstream stream)
{
    nj_bench_api_user *u = user;
    normjit_norm_args a;
    nj_bench_args(u->op, u->b, set, &a);
    return normjit_norm(u->ctx, u->op->s.op, &a, stream);
}

/* The scale of element j of a row whose scales were downloaded to `sc`. */
static double scale_of(const nj_bench_op *op, const float *sc, float tensor, int64_t j)
{
    if (op->s.quant == NORMJIT_QUANT_TENSOR)
        return tensor;
    return op->s.quant == NORMJIT_QUANT_GROUP ? sc[j / op->s.group] : sc[0];
}

double nj_bench_check(nj_bench_gpu *g, const nj_bench_op *op, const nj_bench_buffers *b)
{
    const int64_t H = op->s.hidden, R = norm_rows(op), spr = scales_per_row(&op->s);
    const int tin = nj_spec_input_dtype(&op->s);
    const int sin = dsize(tin), sy = nj_dtype_size(op->s.ty), sw = dsize(op->s.tw);
    /* The input of the normalization: x, or the sum the fused add wrote in place. */
    const CUdeviceptr in = op->s.tr ? b->res[0] : b->x[0];
    unsigned char *hx = malloc((size_t)H * sin), *hy = malloc((size_t)H * sy);
    unsigned char *hw = malloc((size_t)H * sw), *hb = malloc((size_t)H * sw);
    double *xr = malloc((size_t)H * sizeof(double)), *wr = malloc((size_t)H * sizeof(double));
    double *br = malloc((size_t)H * sizeof(double)), *ref = malloc((size_t)H * sizeof(double));
    double *got = malloc((size_t)H * sizeof(double));
    float *sc = malloc((size_t)(spr ? spr : 1) * 4), tensor = tensor_scale(op->s.ty);
    const int ln = nj_op_desc_of(op->s.op)->statistic_mean;
    double worst = 0;
    int64_t k, j;
    int bad = !hx || !hy || !hw || !hb || !xr || !wr || !br || !ref || !got || !sc;

    if (!bad && g->x->stream_synchronize(g->stream) == CUDA_SUCCESS &&
        g->x->memcpy_dtoh(hw, b->w, (size_t)H * sw) == CUDA_SUCCESS &&
        g->x->memcpy_dtoh(hb, b->b, (size_t)H * sw) == CUDA_SUCCESS) {
        for (j = 0; j < H; j++) {
            wr[j] = nj_host_get(hw, op->s.tw, (size_t)j);
            br[j] = nj_host_get(hb, op->s.tw, (size_t)j);
        }
        for (k = 0; k < 192 && k < R; k++) {
            /* first 64 rows, last 64, and 64 spread between */
            int64_t row = k < 64 ? k : k < 128 ? R - 1 - (k - 64) : (k - 128) * (R / 64);
            double mag = 0, err = 0;
            if (g->x->memcpy_dtoh(hx, in + (CUdeviceptr)(row * H * sin), (size_t)H * sin) !=
                    CUDA_SUCCESS ||
                g->x->memcpy_dtoh(hy, b->y[0] + (CUdeviceptr)(row * H * sy), (size_t)H * sy) !=
                    CUDA_SUCCESS ||
                (spr && g->x->memcpy_dtoh(sc, b->scales[0] + (CUdeviceptr)(row * spr * 4),
                                          (size_t)spr * 4) != CUDA_SUCCESS)) {
                worst = -1;
                break;
            }
            for (j = 0; j < H; j++)
                xr[j] = nj_host_get(hx, tin, (size_t)j);
            nj_reference_row(ln ? NORMJIT_OP_LAYERNORM : NORMJIT_OP_RMSNORM, xr, wr,
                             ln && has_bias(op) ? br : NULL, H, 1e-5, 0, ref, NULL, NULL);
            for (j = 0; j < H; j++) {
                double d;
                got[j] = nj_host_get(hy, op->s.ty, (size_t)j);
                if (op->s.quant) {
                    /* Quantized: the error in steps of the code grid at the reference. */
                    const double s = scale_of(op, sc, tensor, j);
                    d = fabs(got[j] - ref[j] / s) / code_step(op->s.ty, ref[j] / s);
                    mag = 1;
                } else {
                    d = fabs(got[j] - ref[j]);
                    if (fabs(ref[j]) > mag)
                        mag = fabs(ref[j]);
                }
                if (isnan(got[j]))
                    err = INFINITY;
                else if (d > err)
                    err = d;
            }
            err = mag > 0 ? err / mag : err;
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
    free(got);
    free(sc);
    return worst;
}
