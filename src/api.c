/*
 * The public entry points: check the arguments (args.c), find the kernel
 * (one lookup when it is loaded; otherwise plan once, build once) and launch
 * it on the caller's stream.
 */
#include "args.h"
#include "ctx.h"
#include "ops.h"

#include <stdlib.h>
#include <string.h>

static int not_ready(const nj_request *r, CUstream stream, const char *why)
{
    return nj_fail(NORMJIT_ENOTREADY,
                   "%s: no kernel is loaded yet for %s -> %s, hidden %lld, %d-element vectors, "
                   "%s rows, and stream %p %s; call normjit_prepare() before capturing",
                   nj_op_name(r->s.op), nj_dtype_name(r->s.tx), nj_dtype_name(r->s.ty),
                   (long long)r->s.hidden, r->vec, nj_bucket_name(r->bucket), (void *)stream, why);
}

/* Plan a request (once), get its kernel, publish its launch; `plan` may be NULL. */
static int get_launch(normjit_ctx *ctx, const nj_request *r, const nj_launch **out, nj_got *got,
                      nj_plan *planned)
{
    nj_plan local, *plan = planned ? planned : &local;
    nj_launch e;
    CUfunction fn;
    int status;
    nj_planner_plan(&ctx->planner, r, plan);
    if ((status = nj_kernels_get(&ctx->kernels, &plan->v, &fn, got)) != NORMJIT_OK)
        return status;
    nj_launch_init(&e, nj_request_key(r), plan, fn, ctx->sm_count, ctx->arch, ctx->drv);
    return nj_kernels_publish(&ctx->kernels, &e, out);
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
    return get_launch(ctx, r, out, NULL, NULL);
}

static int norm(int op, normjit_ctx *ctx, const normjit_norm_args *args, void *stream_ptr)
{
    const nj_op_desc *d = nj_op_desc_of(op);
    nj_call c;
    nj_params params;
    const nj_launch *e;
    CUstream stream = (CUstream)stream_ptr;
    CUcontext current = NULL;
    CUresult res;
    int status;

    if (!ctx)
        return nj_fail(NORMJIT_EINVAL, "%s: ctx is NULL", d ? d->name : "normjit_norm");
    if ((status = nj_call_check(op, args, &c)) != NORMJIT_OK || c.noop)
        return status;
    if (ctx->offline)
        return nj_fail(NORMJIT_ENODEVICE, "%s: this is a compile-only context (%s) and cannot "
                                          "launch kernels",
                       d->name, ctx->device_name);
    res = ctx->drv->ctx_get_current(&current);
    if (res != CUDA_SUCCESS || current != ctx->cu)
        return nj_fail(NORMJIT_ECONTEXT,
                       "%s: the current CUDA context (%p) is not the one this normjit context "
                       "was created in (%p)",
                       d->name, (void *)current, (void *)ctx->cu);

    e = nj_kernels_find(&ctx->kernels, nj_request_key(&c.r));
    if (!e && (status = get_for_launch(ctx, &c.r, stream, &e)) != NORMJIT_OK)
        return status;
    nj_call_params(&c, &params);
    res = nj_launch_run(ctx->drv, e, &params,
                        (c.a.flags & NORMJIT_NORM_PDL) || (ctx->flags & NORMJIT_CTX_PDL), stream);
    if (res != CUDA_SUCCESS)
        return nj_fail_prefix(nj_cu_fail(ctx->drv, res, "cuLaunchKernel"), "%s", d->name);
    return NORMJIT_OK;
}

NORMJIT_API int normjit_norm(normjit_ctx *ctx, int op, const normjit_norm_args *args,
                             void *stream)
{
    return norm(op, ctx, args, stream);
}

NORMJIT_API int normjit_rmsnorm_fwd(normjit_ctx *ctx, const normjit_norm_args *args,
                                    void *stream)
{
    return norm(NORMJIT_OP_RMSNORM, ctx, args, stream);
}

NORMJIT_API int normjit_layernorm_fwd(normjit_ctx *ctx, const normjit_norm_args *args,
                                      void *stream)
{
    return norm(NORMJIT_OP_LAYERNORM, ctx, args, stream);
}

NORMJIT_API int normjit_add_rmsnorm_fwd(normjit_ctx *ctx, const normjit_norm_args *args,
                                        void *stream)
{
    return norm(NORMJIT_OP_ADD_RMSNORM, ctx, args, stream);
}

NORMJIT_API int normjit_add_layernorm_fwd(normjit_ctx *ctx, const normjit_norm_args *args,
                                          void *stream)
{
    return norm(NORMJIT_OP_ADD_LAYERNORM, ctx, args, stream);
}

NORMJIT_API int normjit_qk_rmsnorm_fwd(normjit_ctx *ctx, const normjit_norm_args *args,
                                       void *stream)
{
    return norm(NORMJIT_OP_QK_RMSNORM, ctx, args, stream);
}

NORMJIT_API const char *normjit_op_name(int op)
{
    return nj_op_name(op);
}

NORMJIT_API int normjit_op_from_name(const char *name)
{
    return nj_op_parse(name);
}

NORMJIT_API const char *normjit_dtype_name(int dtype)
{
    return nj_dtype_name(dtype);
}

NORMJIT_API int normjit_quant_from_name(const char *name, int32_t *y_dtype, int32_t *quant,
                                        int32_t *group_size)
{
    int ty, q, g;
    if (!nj_quant_parse(name, &ty, &q, &g))
        return nj_fail(NORMJIT_EINVAL,
                       "'%s' is not a quantized output: none, or "
                       "<fp8|fp8e5m2|int8>-<tensor|token|group64|group128>",
                       name ? name : "(null)");
    if (y_dtype)
        *y_dtype = ty;
    if (quant)
        *quant = q;
    if (group_size)
        *group_size = g;
    return NORMJIT_OK;
}

/* ------------------------------------------------------------------------ */
/* Ahead-of-time preparation                                                 */

#define NJ_MAX_PLANS 8

typedef struct prepare_state {
    nj_variant *seen; /* variants counted already */
    int n_seen;
    normjit_prepare_stats st;
} prepare_state;

/* Count a variant's outcome once per prepare call, however many requests share it. */
static void count_once(prepare_state *ps, const nj_variant *v, const nj_got *got)
{
    int i;
    for (i = 0; i < ps->n_seen; i++)
        if (nj_variant_equal(&ps->seen[i], v))
            return;
    ps->seen[ps->n_seen++] = *v;
    if (got->how == NJ_GOT_COMPILED)
        ps->st.compiled++;
    else if (got->how == NJ_GOT_FROM_DISK)
        ps->st.from_disk++;
    else
        ps->st.in_memory++;
    if (!got->cached)
        ps->st.not_cached++;
}

static int prepare_request(normjit_ctx *ctx, const nj_request *r, prepare_state *ps)
{
    nj_plan plans[NJ_MAX_PLANS];
    nj_got got;
    int n, i, status = NORMJIT_OK;

    if (!ctx->offline) {
        /* On a GPU the plan is known: load its kernel and publish its launch. */
        const nj_launch *e;
        if ((status = get_launch(ctx, r, &e, &got, &plans[0])) == NORMJIT_OK)
            count_once(ps, &plans[0].v, &got);
        return status;
    }
    n = nj_planner_plans_for_arch(&ctx->planner, r, plans, NJ_MAX_PLANS);
    for (i = 0; i < n && status == NORMJIT_OK; i++) {
        CUfunction fn;
        if ((status = nj_kernels_get(&ctx->kernels, &plans[i].v, &fn, &got)) == NORMJIT_OK)
            count_once(ps, &plans[i].v, &got);
    }
    return status;
}

NORMJIT_API int normjit_prepare(normjit_ctx *ctx, const normjit_prepare_args *args,
                                normjit_prepare_stats *stats)
{
    normjit_prepare_args a;
    nj_spec spec;
    prepare_state ps;
    int status = NORMJIT_OK;
    size_t i;

    if (!ctx)
        return nj_fail(NORMJIT_EINVAL, "prepare: ctx is NULL");
    if ((status = nj_prepare_check(args, &a, &spec)) != NORMJIT_OK)
        return status;
    if (stats && stats->struct_size < sizeof(uint32_t))
        return nj_fail(NORMJIT_EINVAL,
                       "prepare: stats->struct_size is %u; set it to sizeof(normjit_prepare_stats)",
                       stats->struct_size);
    if (a.n_hidden > SIZE_MAX / (NJ_BUCKETS * 8 * NJ_MAX_PLANS * sizeof(nj_variant)))
        return nj_fail(NORMJIT_EINVAL, "prepare: n_hidden %zu is too large", a.n_hidden);
    memset(&ps, 0, sizeof ps);
    ps.st.struct_size = sizeof ps.st;
    ps.seen = malloc(a.n_hidden * NJ_BUCKETS * 8 * NJ_MAX_PLANS * sizeof *ps.seen + 1);
    if (!ps.seen)
        return nj_fail(NORMJIT_ENOMEM, "out of memory");

    for (i = 0; i < a.n_hidden && status == NORMJIT_OK; i++) {
        nj_request r;
        int vec, bucket;
        r.s = spec;
        r.s.hidden = a.hidden[i];
        /* The widest vector with aligned tensors, then (ALL_ALIGNMENTS) every narrower one. */
        for (vec = nj_widest_vec(&r.s); vec >= 1 && status == NORMJIT_OK; vec /= 2) {
            r.vec = vec;
            for (bucket = 0; bucket < NJ_BUCKETS && status == NORMJIT_OK; bucket++) {
                r.bucket = bucket;
                status = prepare_request(ctx, &r, &ps);
            }
            if (!(a.flags & NORMJIT_PREPARE_ALL_ALIGNMENTS))
                break;
        }
    }
    free(ps.seen);
    if (stats) {
        /* Only the fields the caller's struct has, past its struct_size. */
        size_t n = stats->struct_size < sizeof ps.st ? stats->struct_size : sizeof ps.st;
        if (n > sizeof(uint32_t))
            memcpy((char *)stats + sizeof(uint32_t), (const char *)&ps.st + sizeof(uint32_t),
                   n - sizeof(uint32_t));
    }
    return status;
}
