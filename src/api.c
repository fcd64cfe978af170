/*
 * The public entry points: validate the arguments, find the kernel (one
 * lookup when it is loaded) and launch it on the caller's stream.
 */
#include "ctx.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MIN(a, b) ((a) < (b) ? (a) : (b))

/* The sizes of the structs in 0.1, the oldest callers this library accepts. */
#define NJ_NORM_ARGS_V1_SIZE (offsetof(normjit_norm_args, eps) + sizeof(float))
#define NJ_PREPARE_ARGS_V1_SIZE (offsetof(normjit_prepare_args, n_hidden) + sizeof(size_t))

static int misaligned(const void *p, int64_t bytes)
{
    return ((uintptr_t)p % (uint64_t)bytes) != 0;
}

/* Bytes a tensor of `rows` rows spans: (rows - 1) * stride + hidden elements. */
static int span_bytes(int64_t rows, int64_t stride, int64_t hidden, int size, int64_t *out)
{
    int64_t elems;
    if (rows > 1 && stride > (INT64_MAX - hidden) / (rows - 1))
        return 0;
    elems = (rows - 1) * stride + hidden;
    if (elems > INT64_MAX / size)
        return 0;
    *out = elems * size;
    return 1;
}

static int overlap(const void *a, int64_t a_len, const void *b, int64_t b_len)
{
    uintptr_t pa = (uintptr_t)a, pb = (uintptr_t)b;
    return a && b && pa < pb + (uint64_t)b_len && pb < pa + (uint64_t)a_len;
}

static int check_dtype(int32_t dtype, const char *what)
{
    if (!nj_dtype_size(dtype))
        return nj_fail(NORMJIT_EINVAL,
                       "%s %d is not a normjit dtype (NORMJIT_DTYPE_F32, _F16 or _BF16)", what,
                       (int)dtype);
    return NORMJIT_OK;
}

static int check_aligned(const void *p, int size, const char *what)
{
    if (p && misaligned(p, size))
        return nj_fail(NORMJIT_EINVAL, "%s (%p) is not aligned to its %d-byte elements", what, p,
                       size);
    return NORMJIT_OK;
}

static int check_stride(int64_t *stride, int64_t hidden, const char *what)
{
    if (*stride == 0)
        *stride = hidden;
    if (*stride < hidden)
        return nj_fail(NORMJIT_EINVAL, "%s (%lld) is smaller than hidden (%lld)", what,
                       (long long)*stride, (long long)hidden);
    return NORMJIT_OK;
}

/* Vector access of `vec` elements of `size` bytes needs this alignment. */
static int64_t access_align(int vec, int size)
{
    return MIN(NJ_MAX_ACCESS_BYTES, vec * size);
}

/* The widest vector every pointer, stride and the hidden size allow. */
static int widest_vec(const normjit_norm_args *a, int sx, int sy, int sw)
{
    int vec = NJ_MAX_ACCESS_BYTES / sx;
    while (vec > 1) {
        int64_t ax = access_align(vec, sx), ay = access_align(vec, sy),
                aw = access_align(vec, sw);
        int ok = a->hidden % vec == 0 && !misaligned(a->x, ax) && !misaligned(a->y, ay) &&
                 (!a->weight || !misaligned(a->weight, aw)) &&
                 (!a->bias || !misaligned(a->bias, aw)) &&
                 (a->rows <= 1 ||
                  ((a->x_row_stride * sx) % ax == 0 && (a->y_row_stride * sy) % ay == 0));
        if (ok)
            break;
        vec /= 2;
    }
    return vec;
}

/*
 * Check everything about a call; fill the normalized arguments and the
 * request. Returns NORMJIT_OK, or an error with its message. *noop is set
 * when there is nothing to launch (zero rows).
 */
static int validate(int op, const normjit_norm_args *in, normjit_norm_args *a, nj_request *r,
                    int *noop)
{
    const char *name = nj_op_name(op);
    int sx, sy, sw, status;
    int64_t x_bytes, y_bytes;

    *noop = 0;
    if (!in)
        return nj_fail(NORMJIT_EINVAL, "%s: args is NULL", name);
    if (in->struct_size == sizeof *a)
        *a = *in;
    else if ((status = nj_copy_versioned(a, sizeof *a, NJ_NORM_ARGS_V1_SIZE, in, in->struct_size,
                                         "normjit_norm_args")) != NORMJIT_OK)
        return status;
    if (a->flags & ~NORMJIT_NORM_WEIGHT_PLUS_ONE)
        return nj_fail(NORMJIT_EINVAL, "%s: unknown flags 0x%x", name,
                       a->flags & ~NORMJIT_NORM_WEIGHT_PLUS_ONE);
    if ((status = check_dtype(a->x_dtype, "x_dtype")) != NORMJIT_OK ||
        (status = check_dtype(a->y_dtype, "y_dtype")) != NORMJIT_OK)
        return status;
    if (a->hidden < 1)
        return nj_fail(NORMJIT_EINVAL, "%s: hidden (%lld) must be at least 1", name,
                       (long long)a->hidden);
    if (a->hidden > NJ_MAX_HIDDEN)
        return nj_fail(NORMJIT_EUNSUPPORTED, "%s: hidden (%lld) is larger than %d", name,
                       (long long)a->hidden, NJ_MAX_HIDDEN);
    if (a->rows < 0)
        return nj_fail(NORMJIT_EINVAL, "%s: rows (%lld) is negative", name, (long long)a->rows);
    if (!(a->eps >= 0.0f) || isinf(a->eps))
        return nj_fail(NORMJIT_EINVAL, "%s: eps (%g) must be finite and not negative", name,
                       (double)a->eps);
    if ((status = check_stride(&a->x_row_stride, a->hidden, "x_row_stride")) != NORMJIT_OK ||
        (status = check_stride(&a->y_row_stride, a->hidden, "y_row_stride")) != NORMJIT_OK)
        return status;
    if (a->weight || a->bias) {
        if ((status = check_dtype(a->weight_dtype, "weight_dtype")) != NORMJIT_OK)
            return status;
        if (a->weight_dtype != a->x_dtype && a->weight_dtype != NORMJIT_DTYPE_F32)
            return nj_fail(NORMJIT_EUNSUPPORTED,
                           "%s: weight_dtype %s with x_dtype %s: weight and bias must be %s "
                           "or f32",
                           name, nj_dtype_name(a->weight_dtype), nj_dtype_name(a->x_dtype),
                           nj_dtype_name(a->x_dtype));
    } else {
        a->weight_dtype = a->x_dtype; /* unused; one kernel serves every weight dtype */
    }
    if ((a->flags & NORMJIT_NORM_WEIGHT_PLUS_ONE) && !a->weight)
        return nj_fail(NORMJIT_EINVAL, "%s: NORMJIT_NORM_WEIGHT_PLUS_ONE needs a weight", name);
    if (op == NORMJIT_OP_RMSNORM && a->bias)
        return nj_fail(NORMJIT_EINVAL, "rmsnorm: bias is a LayerNorm argument; pass NULL");
    if (op == NORMJIT_OP_RMSNORM && a->mean)
        return nj_fail(NORMJIT_EINVAL, "rmsnorm: mean is a LayerNorm output; pass NULL");

    sx = nj_dtype_size(a->x_dtype);
    sy = nj_dtype_size(a->y_dtype);
    sw = nj_dtype_size(a->weight_dtype);
    r->op = op;
    r->tx = a->x_dtype;
    r->ty = a->y_dtype;
    r->tw = a->weight_dtype;
    r->hidden = a->hidden;
    if (a->rows == 0) {
        *noop = 1;
        return NORMJIT_OK;
    }

    if (!a->x)
        return nj_fail(NORMJIT_EINVAL, "%s: x is NULL", name);
    if (!a->y)
        return nj_fail(NORMJIT_EINVAL, "%s: y is NULL", name);
    if ((status = check_aligned(a->x, sx, "x")) != NORMJIT_OK ||
        (status = check_aligned(a->y, sy, "y")) != NORMJIT_OK ||
        (status = check_aligned(a->weight, sw, "weight")) != NORMJIT_OK ||
        (status = check_aligned(a->bias, sw, "bias")) != NORMJIT_OK ||
        (status = check_aligned(a->rstd, 4, "rstd")) != NORMJIT_OK ||
        (status = check_aligned(a->mean, 4, "mean")) != NORMJIT_OK)
        return status;
    if (!span_bytes(a->rows, a->x_row_stride, a->hidden, sx, &x_bytes) ||
        !span_bytes(a->rows, a->y_row_stride, a->hidden, sy, &y_bytes) ||
        (uintptr_t)a->x > UINTPTR_MAX - (uint64_t)x_bytes ||
        (uintptr_t)a->y > UINTPTR_MAX - (uint64_t)y_bytes)
        return nj_fail(NORMJIT_EINVAL, "%s: rows (%lld) x row stride overflows the address space",
                       name, (long long)a->rows);
    if (a->rows > INT64_MAX / 4)
        return nj_fail(NORMJIT_EINVAL, "%s: rows (%lld) is too large", name, (long long)a->rows);
    if (a->x == a->y) {
        if (sx != sy || a->x_row_stride != a->y_row_stride)
            return nj_fail(NORMJIT_EINVAL,
                           "%s: in place (y == x) needs the same element size and row stride "
                           "for x and y",
                           name);
    } else if (overlap(a->x, x_bytes, a->y, y_bytes)) {
        return nj_fail(NORMJIT_EINVAL, "%s: x and y overlap without being the same tensor", name);
    }
    if (overlap(a->rstd, a->rows * 4, a->y, y_bytes) ||
        overlap(a->mean, a->rows * 4, a->y, y_bytes) ||
        overlap(a->rstd, a->rows * 4, a->x, x_bytes) ||
        overlap(a->mean, a->rows * 4, a->x, x_bytes) ||
        overlap(a->rstd, a->rows * 4, a->mean, a->rows * 4))
        return nj_fail(NORMJIT_EINVAL, "%s: rstd or mean overlaps x, y or each other", name);

    r->vec = widest_vec(a, sx, sy, sw);
    r->bucket = nj_bucket_of_rows(a->rows);
    return NORMJIT_OK;
}

static int not_ready(const nj_request *r, CUstream stream, const char *why)
{
    return nj_fail(NORMJIT_ENOTREADY,
                   "%s: no kernel is loaded yet for %s -> %s, hidden %lld, %d-element vectors, "
                   "%s rows, and stream %p %s; call normjit_prepare() before capturing",
                   nj_op_name(r->op), nj_dtype_name(r->tx), nj_dtype_name(r->ty),
                   (long long)r->hidden, r->vec, nj_bucket_name(r->bucket), (void *)stream, why);
}

/* The miss path of a launch: never compiles into a stream capture. */
static int get_for_launch(normjit_ctx *ctx, const nj_request *r, CUstream stream,
                          const nj_launch **out)
{
    CUstreamCaptureStatus capture = CU_STREAM_CAPTURE_STATUS_NONE;
    CUresult res = ctx->drv->stream_is_capturing(stream, &capture);
    if (res != CUDA_SUCCESS)
        return not_ready(r, stream, nj_cu_name(ctx->drv, res));
    if (capture != CU_STREAM_CAPTURE_STATUS_NONE)
        return not_ready(r, stream, "is being captured");
    return nj_kernels_get(ctx, r, out, NULL, NULL);
}

static int norm_fwd(int op, normjit_ctx *ctx, const normjit_norm_args *args, void *stream_ptr)
{
    normjit_norm_args a;
    nj_request r;
    const nj_launch *e;
    CUstream stream = (CUstream)stream_ptr;
    CUcontext current = NULL;
    CUresult res;
    int noop, status;

    if (!ctx)
        return nj_fail(NORMJIT_EINVAL, "%s: ctx is NULL", nj_op_name(op));
    if ((status = validate(op, args, &a, &r, &noop)) != NORMJIT_OK || noop)
        return status;
    if (ctx->offline)
        return nj_fail(NORMJIT_ENODEVICE, "%s: this is a compile-only context (%s) and cannot "
                                          "launch kernels",
                       nj_op_name(op), ctx->device_name);
    res = ctx->drv->ctx_get_current(&current);
    if (res != CUDA_SUCCESS || current != ctx->cu)
        return nj_fail(NORMJIT_ECONTEXT,
                       "%s: the current CUDA context (%p) is not the one this normjit context "
                       "was created in (%p)",
                       nj_op_name(op), (void *)current, (void *)ctx->cu);

    e = nj_kernels_find(&ctx->kernels, nj_request_key(&r));
    if (!e && (status = get_for_launch(ctx, &r, stream, &e)) != NORMJIT_OK)
        return status;
    res = nj_launch_run(ctx->drv, e, &a, stream);
    if (res != CUDA_SUCCESS)
        return nj_fail_prefix(nj_cu_fail(ctx->drv, res, "cuLaunchKernel"), "%s",
                              nj_op_name(op));
    return NORMJIT_OK;
}

NORMJIT_API int normjit_norm(normjit_ctx *ctx, int op, const normjit_norm_args *args,
                             void *stream)
{
    if (op != NORMJIT_OP_RMSNORM && op != NORMJIT_OP_LAYERNORM)
        return nj_fail(NORMJIT_EUNSUPPORTED, "op %d is not implemented yet", op);
    return norm_fwd(op, ctx, args, stream);
}

NORMJIT_API int normjit_rmsnorm_fwd(normjit_ctx *ctx, const normjit_norm_args *args,
                                    void *stream)
{
    return norm_fwd(NORMJIT_OP_RMSNORM, ctx, args, stream);
}

NORMJIT_API int normjit_add_rmsnorm_fwd(normjit_ctx *ctx, const normjit_norm_args *args,
                                        void *stream)
{
    return normjit_norm(ctx, NORMJIT_OP_ADD_RMSNORM, args, stream);
}

NORMJIT_API int normjit_add_layernorm_fwd(normjit_ctx *ctx, const normjit_norm_args *args,
                                          void *stream)
{
    return normjit_norm(ctx, NORMJIT_OP_ADD_LAYERNORM, args, stream);
}

NORMJIT_API int normjit_qk_rmsnorm_fwd(normjit_ctx *ctx, const normjit_norm_args *args,
                                       void *stream)
{
    return normjit_norm(ctx, NORMJIT_OP_QK_RMSNORM, args, stream);
}

NORMJIT_API const char *normjit_op_name(int op)
{
    return nj_op_name(op);
}

NORMJIT_API int normjit_op_from_name(const char *name)
{
    return name ? nj_op_parse(name) : 0;
}

NORMJIT_API const char *normjit_dtype_name(int dtype)
{
    return nj_dtype_name(dtype);
}

NORMJIT_API int normjit_quant_from_name(const char *name, int32_t *y_dtype, int32_t *quant,
                                        int32_t *group_size)
{
    (void)name;
    (void)y_dtype;
    (void)quant;
    (void)group_size;
    return nj_fail(NORMJIT_EUNSUPPORTED, "quantized outputs are not implemented yet");
}

NORMJIT_API int normjit_layernorm_fwd(normjit_ctx *ctx, const normjit_norm_args *args,
                                      void *stream)
{
    return norm_fwd(NORMJIT_OP_LAYERNORM, ctx, args, stream);
}

/* Count a variant's outcome once per prepare call, however many requests share it. */
static void count_once(nj_variant *seen, int *n_seen, const nj_variant *v, int got,
                       normjit_prepare_stats *st)
{
    int i;
    for (i = 0; i < *n_seen; i++)
        if (nj_variant_equal(&seen[i], v))
            return;
    seen[(*n_seen)++] = *v;
    if (got == NJ_GOT_COMPILED || got == NJ_GOT_UNCACHED)
        st->compiled++;
    else if (got == NJ_GOT_FROM_DISK)
        st->from_disk++;
    else
        st->in_memory++;
    if (got == NJ_GOT_UNCACHED)
        st->not_cached++;
}

#define NJ_MAX_PLANS 8

static int prepare_request(normjit_ctx *ctx, const nj_request *r, nj_variant *seen, int *n_seen,
                           normjit_prepare_stats *st)
{
    nj_plan plans[NJ_MAX_PLANS];
    int n = nj_ctx_plans(ctx, r, plans, NJ_MAX_PLANS), i, status = NORMJIT_OK;
    for (i = 0; i < n && status == NORMJIT_OK; i++) {
        int got = NJ_GOT_IN_MEMORY;
        if (ctx->offline) {
            CUfunction fn;
            status = nj_kernels_get_variant(ctx, &plans[i].v, &fn, &got);
        } else {
            const nj_launch *e;
            status = nj_kernels_get(ctx, r, &e, NULL, &got);
        }
        if (status == NORMJIT_OK)
            count_once(seen, n_seen, &plans[i].v, got, st);
    }
    return status;
}

NORMJIT_API int normjit_prepare(normjit_ctx *ctx, const normjit_prepare_args *args,
                                normjit_prepare_stats *stats)
{
    normjit_prepare_args a;
    normjit_prepare_stats st = {sizeof st, 0, 0, 0, 0};
    nj_variant *seen;
    int n_seen = 0, status = NORMJIT_OK, sx;
    size_t i;

    if (!ctx)
        return nj_fail(NORMJIT_EINVAL, "prepare: ctx is NULL");
    if (!args)
        return nj_fail(NORMJIT_EINVAL, "prepare: args is NULL");
    if ((status = nj_copy_versioned(&a, sizeof a, NJ_PREPARE_ARGS_V1_SIZE, args, args->struct_size,
                                    "normjit_prepare_args")) != NORMJIT_OK)
        return status;
    if (a.flags & ~NORMJIT_PREPARE_ALL_ALIGNMENTS)
        return nj_fail(NORMJIT_EINVAL, "prepare: unknown flags 0x%x",
                       a.flags & ~NORMJIT_PREPARE_ALL_ALIGNMENTS);
    if (!nj_op_name(a.op))
        return nj_fail(NORMJIT_EINVAL, "prepare: op %d is not a normjit_op", (int)a.op);
    if ((status = check_dtype(a.x_dtype, "x_dtype")) != NORMJIT_OK ||
        (status = check_dtype(a.y_dtype, "y_dtype")) != NORMJIT_OK)
        return status;
    if (a.weight_dtype == NORMJIT_DTYPE_NONE)
        a.weight_dtype = a.x_dtype;
    if ((status = check_dtype(a.weight_dtype, "weight_dtype")) != NORMJIT_OK)
        return status;
    if (a.weight_dtype != a.x_dtype && a.weight_dtype != NORMJIT_DTYPE_F32)
        return nj_fail(NORMJIT_EUNSUPPORTED, "prepare: weight_dtype must be x_dtype or f32");
    if (a.n_hidden && !a.hidden)
        return nj_fail(NORMJIT_EINVAL, "prepare: hidden is NULL but n_hidden is %zu",
                       a.n_hidden);
    for (i = 0; i < a.n_hidden; i++)
        if (a.hidden[i] < 1 || a.hidden[i] > NJ_MAX_HIDDEN)
            return nj_fail(a.hidden[i] < 1 ? NORMJIT_EINVAL : NORMJIT_EUNSUPPORTED,
                           "prepare: hidden[%zu] = %lld is outside 1..%d", i,
                           (long long)a.hidden[i], NJ_MAX_HIDDEN);
    if (a.n_hidden > SIZE_MAX / (NJ_BUCKETS * 8 * NJ_MAX_PLANS * sizeof *seen))
        return nj_fail(NORMJIT_EINVAL, "prepare: n_hidden %zu is too large", a.n_hidden);
    seen = malloc(a.n_hidden * NJ_BUCKETS * 8 * NJ_MAX_PLANS * sizeof *seen + 1);
    if (!seen)
        return nj_fail(NORMJIT_ENOMEM, "out of memory");

    sx = nj_dtype_size(a.x_dtype);
    for (i = 0; i < a.n_hidden && status == NORMJIT_OK; i++) {
        int vec = NJ_MAX_ACCESS_BYTES / sx, bucket;
        while (a.hidden[i] % vec)
            vec /= 2;
        for (; vec >= 1 && status == NORMJIT_OK; vec /= 2) {
            for (bucket = 0; bucket < NJ_BUCKETS && status == NORMJIT_OK; bucket++) {
                nj_request r = {a.op, a.x_dtype, a.y_dtype, a.weight_dtype, vec, bucket,
                                a.hidden[i]};
                status = prepare_request(ctx, &r, seen, &n_seen, &st);
            }
            if (!(a.flags & NORMJIT_PREPARE_ALL_ALIGNMENTS))
                break;
        }
    }
    free(seen);
    if (stats)
        memcpy(stats, &st, stats->struct_size < sizeof st ? stats->struct_size : sizeof st);
    return status;
}
