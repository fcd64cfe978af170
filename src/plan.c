#include "plan.h"

/*
 * Heuristic targets, fitted to the choices of 'normjit tune' on an H100
 * (docs/PERFORMANCE.md), for hidden sizes no tuning table covers:
 *  - rows up to 2 KB: eight 16-byte vectors per thread, 128-thread CTAs of
 *    several rows;
 *  - rows up to 32 KB: about three vectors per thread (four for LayerNorm),
 *    up to 1024 threads;
 *  - longer rows: 512-thread CTAs holding up to 128 bytes each (RMSNorm),
 *    across a cluster (sm_90) once one CTA no longer holds the row, so that
 *    two CTAs fit an SM and one's loads overlap the other's reduction (512 x
 *    131072 and 256 x 262144 bf16: 84% and 78% of a same-size copy against
 *    81% and 74% with 1024-thread CTAs, bench/lab.py 2026-12-07); two passes
 *    over the row (LayerNorm, and anything larger); the compiler asked for
 *    the occupancy that fits.
 */
#define NJ_SHORT_ROW_BYTES 2048
#define NJ_SHORT_ROW_VECTORS 8
#define NJ_MID_ROW_BYTES (32 << 10)
#define NJ_TARGET_CTA_THREADS 128
#define NJ_LONG_ROW_THREADS 512

int nj_legal_tpr(int64_t t)
{
    int p = 1;
    if (t > 32)
        return t > NJ_MAX_CTA_THREADS ? 0 : (int)((t + 31) / 32 * 32);
    while (p < t)
        p *= 2;
    return p;
}

static int64_t ceil_div(int64_t a, int64_t b)
{
    return (a + b - 1) / b;
}

static void base_plan(const nj_request *r, nj_plan *out)
{
    nj_knobs *k = &out->v.k;
    out->v.s = r->s;
    k->vec = r->vec;
    k->tpr = 1;
    k->rpc = 1;
    k->cluster = 1;
    k->storage = NJ_STORAGE_REG;
    k->occ = 0;
    k->wload = NJ_WLOAD_LATE;
    out->ctas_per_sm = 0;
}

static int is_layernorm(int op)
{
    return op == NORMJIT_OP_LAYERNORM || op == NORMJIT_OP_ADD_LAYERNORM;
}

/* Rows per CTA for CTAs of about NJ_TARGET_CTA_THREADS threads. */
static int rpc_for(int tpr)
{
    return tpr < NJ_TARGET_CTA_THREADS ? NJ_TARGET_CTA_THREADS / tpr : 1;
}

void nj_plan_heuristic(const nj_request *r, int arch, nj_plan *out)
{
    nj_knobs *k = &out->v.k;
    const int sx = nj_dtype_size(nj_spec_input_dtype(&r->s)), vec_bytes = r->vec * sx;
    const int64_t nv = r->s.hidden / r->vec, row_bytes = r->s.hidden * sx;
    const int64_t max_npt = NJ_MAX_THREAD_BYTES / vec_bytes > 0 ? NJ_MAX_THREAD_BYTES / vec_bytes : 1;
    const int ln = is_layernorm(r->s.op);
    int64_t tpr;

    base_plan(r, out);
    if (row_bytes <= NJ_SHORT_ROW_BYTES) {
        tpr = ceil_div(nv, NJ_SHORT_ROW_VECTORS);
    } else if (row_bytes <= NJ_MID_ROW_BYTES) {
        tpr = ceil_div(nv, ln ? 4 : 3);
    } else if (!ln && ceil_div(nv, NJ_LONG_ROW_THREADS) <= max_npt) {
        tpr = NJ_LONG_ROW_THREADS;
    } else {
        int64_t cl = ceil_div(nv, NJ_LONG_ROW_THREADS * max_npt);
        tpr = ln && row_bytes <= 2 * NJ_MID_ROW_BYTES ? NJ_MAX_CTA_THREADS / 2
                                                      : NJ_MAX_CTA_THREADS;
        if (!ln && arch >= 90 && cl <= NJ_MAX_CLUSTER) {
            k->cluster = (int)cl;
            tpr = ceil_div(ceil_div(nv, cl), max_npt);
        } else {
            k->storage = NJ_STORAGE_STREAM;
        }
    }
    k->tpr = nj_legal_tpr(tpr < NJ_MAX_CTA_THREADS ? tpr : NJ_MAX_CTA_THREADS);
    k->rpc = rpc_for(k->tpr);
    if (k->tpr >= 512 && row_bytes > NJ_MID_ROW_BYTES)
        k->occ = nj_plan_occ_target(&out->v);
    nj_plan_fit(out, arch);
    nj_plan_bucket_knobs(&out->v, r->bucket);
}

void nj_plan_fit(nj_plan *p, int arch)
{
    nj_knobs *k = &p->v.k;
    const int64_t row_bytes = p->v.s.hidden * nj_dtype_size(nj_spec_input_dtype(&p->v.s));
    const int gv = p->v.s.group / k->vec;
    int64_t tpr;

    /* Staged storage holds the row as register storage does; where the epilogue's copies
       do not fit (the fused add's residual beside the row, wider vectors) or the layout is
       refitted below, the row is held in registers. */
    if (k->storage == NJ_STORAGE_STAGED && !nj_variant_staged_fits(&p->v, arch))
        k->storage = NJ_STORAGE_REG;
    if (p->v.s.quant != NORMJIT_QUANT_GROUP || nj_variant_check(&p->v, arch) == NORMJIT_OK)
        return;
    if (k->storage == NJ_STORAGE_STAGED)
        k->storage = NJ_STORAGE_REG;
    k->cluster = 1;
    k->occ = 0;
    if (gv <= 32) {
        /* A group within the lanes of one step: tpr a multiple of the group's vectors (a power
           of two up to 32, or a multiple of 32), at least the layout's and enough threads to
           hold the row in registers, else two passes. */
        tpr = k->tpr > gv ? k->tpr : gv;
        if (k->storage == NJ_STORAGE_REG && tpr < ceil_div(row_bytes, 2 * NJ_MAX_THREAD_BYTES))
            tpr = ceil_div(row_bytes, 2 * NJ_MAX_THREAD_BYTES);
        tpr = nj_legal_tpr(tpr);
        if (!tpr) {
            tpr = NJ_MAX_CTA_THREADS;
            k->storage = NJ_STORAGE_STREAM;
        }
        k->tpr = (int)tpr;
    } else {
        /* A group longer than a warp's lanes (narrow vectors): a warp's lanes over several
           steps, in registers when the row fits. */
        k->tpr = 32;
        k->storage = row_bytes <= 32 * 2 * NJ_MAX_THREAD_BYTES ? NJ_STORAGE_REG
                                                               : NJ_STORAGE_STREAM;
    }
    k->rpc = rpc_for(k->tpr);
}

static int add_layout(nj_knobs *out, int n, int max, const nj_knobs *k)
{
    int i;
    for (i = 0; i < n; i++)
        if (nj_knobs_same_layout(&out[i], k))
            return n;
    if (n < max)
        out[n++] = *k;
    return n;
}

/* Every layout (tpr, cluster, storage) worth measuring for `r`. */
static int layouts(const nj_request *r, int arch, nj_knobs *out, int max)
{
    static const int npts[] = {1, 2, 3, 4, 6, 8, 12, 16};
    const int sx = nj_dtype_size(nj_spec_input_dtype(&r->s)), vec_bytes = r->vec * sx;
    const int64_t nv = r->s.hidden / r->vec, row_bytes = r->s.hidden * sx;
    nj_knobs k;
    int n = 0, cl;
    size_t i;

    k.vec = r->vec;
    k.rpc = 1;
    k.occ = 0;
    k.wload = NJ_WLOAD_LATE;
    k.storage = NJ_STORAGE_REG;
    for (cl = 1; cl <= NJ_MAX_CLUSTER; cl *= 2) {
        int64_t per_cta = ceil_div(nv, cl);
        if (cl > 1 && (arch < 90 || row_bytes < (32 << 10) || per_cta < 32))
            break;
        k.cluster = cl;
        for (i = 0; i < sizeof npts / sizeof npts[0]; i++) {
            int64_t tpr = nj_legal_tpr(ceil_div(per_cta, npts[i]));
            if (!tpr || ceil_div(per_cta, tpr) * vec_bytes > 2 * NJ_MAX_THREAD_BYTES)
                continue;
            k.tpr = (int)tpr;
            n = add_layout(out, n, max, &k);
        }
    }
    if (row_bytes >= (64 << 10)) {
        k.cluster = 1;
        k.storage = NJ_STORAGE_STREAM;
        for (k.tpr = 256; k.tpr <= NJ_MAX_CTA_THREADS; k.tpr *= 2)
            n = add_layout(out, n, max, &k);
    }
    return n;
}

/* Rows per CTA to try with `tpr` threads per row: CTAs of 128 to 512 threads. */
static int rpc_options(int tpr, int *out)
{
    int n = 0, threads;
    if (tpr >= NJ_TARGET_CTA_THREADS) {
        out[0] = 1;
        return 1;
    }
    for (threads = NJ_TARGET_CTA_THREADS; threads <= 512; threads *= 2)
        out[n++] = threads / tpr;
    return n;
}

#define NJ_MAX_LAYOUTS 64

/* `v` (and outside the decode bucket `v` with an occupancy asked of the compiler) if legal;
   returns the new count. */
static int add_candidate(nj_variant v, int bucket, int arch, nj_variant *out, int n, int max)
{
    int occ;
    v.k.occ = 0;
    nj_plan_bucket_knobs(&v, bucket);
    if (n >= max || nj_variant_check(&v, arch) != NORMJIT_OK)
        return n;
    out[n++] = v;
    if (bucket != NJ_BUCKET_DECODE && (occ = nj_plan_occ_target(&v)) > 0 && n < max) {
        v.k.occ = occ;
        out[n++] = v;
    }
    return n;
}

int nj_plan_candidates(const nj_request *r, int arch, const nj_knobs *layout, nj_variant *out,
                       int max)
{
    nj_knobs lay[NJ_MAX_LAYOUTS];
    int n_layouts, i, j, n = 0, rpcs[4], n_rpc;
    if (layout) {
        lay[0] = *layout;
        n_layouts = 1;
    } else {
        n_layouts = layouts(r, arch, lay, NJ_MAX_LAYOUTS);
    }
    for (i = 0; i < n_layouts; i++) {
        /* A cluster holds one row per CTA. */
        n_rpc = lay[i].cluster > 1 ? (rpcs[0] = 1) : rpc_options(lay[i].tpr, rpcs);
        for (j = 0; j < n_rpc && n < max; j++) {
            nj_variant v;
            v.s = r->s;
            v.k = lay[i];
            v.k.rpc = rpcs[j];
            /* A held row in registers. Staged storage is not tried: on the H100 it gained at
               most 2-3% on a few shapes and lost up to 20% elsewhere, where the same layout in
               registers on the same grid did as well (docs/PERFORMANCE.md); a tuning table's
               record still selects it. */
            if (v.k.storage == NJ_STORAGE_STAGED)
                v.k.storage = NJ_STORAGE_REG;
            n = add_candidate(v, r->bucket, arch, out, n, max);
        }
    }
    return n;
}

#define NJ_EARLY_WEIGHT_BYTES 32
/* Registers of an SM, the most one thread may have, and what a thread needs beyond the
   values it holds. */
#define NJ_SM_REGISTERS 65536
#define NJ_MAX_THREAD_REGS 255
#define NJ_THREAD_BASE_REGS 24

static int wload_for(const nj_variant *v, int bucket)
{
    const int elems = nj_variant_vectors_per_thread(v) * v->k.vec;
    const int row_bytes_per_thread = elems * nj_dtype_size(nj_spec_input_dtype(&v->s));
    const int threads = v->k.tpr * v->k.rpc;
    int regs, cap;
    if (v->k.storage == NJ_STORAGE_STREAM)
        return NJ_WLOAD_LATE;
    if (bucket == NJ_BUCKET_DECODE) {
        /* The row, its weights and LayerNorm's bias. */
        const int tensors = is_layernorm(v->s.op) ? 2 : 1;
        regs = (row_bytes_per_thread + tensors * elems * nj_dtype_size(v->s.tw) + 3) / 4 +
               NJ_THREAD_BASE_REGS;
        cap = NJ_SM_REGISTERS / threads < NJ_MAX_THREAD_REGS ? NJ_SM_REGISTERS / threads
                                                             : NJ_MAX_THREAD_REGS;
        if (regs <= cap)
            return NJ_WLOAD_EARLY;
    }
    return !is_layernorm(v->s.op) && row_bytes_per_thread <= NJ_EARLY_WEIGHT_BYTES
               ? NJ_WLOAD_EARLY
               : NJ_WLOAD_LATE;
}

void nj_plan_bucket_knobs(nj_variant *v, int bucket)
{
    if (bucket == NJ_BUCKET_DECODE)
        v->k.occ = 0;
    v->k.wload = wload_for(v, bucket);
}

int nj_plan_grid_options(int bucket, int *out, int max)
{
    static const int options[] = {0, 2, 8};
    int n = bucket == NJ_BUCKET_DECODE ? 1 : 3, i; /* a few rows never fill a persistent grid */
    for (i = 0; i < n && i < max; i++)
        out[i] = options[i];
    return i;
}

int nj_plan_occ_target(const nj_variant *v)
{
    /* Registers a thread needs: its share of x plus about 24 for everything
       else, and never fewer than 40 (below that the compiler spills). */
    const int threads = v->k.tpr * v->k.rpc;
    const int data_regs =
        nj_variant_vectors_per_thread(v) * v->k.vec * nj_dtype_size(nj_spec_input_dtype(&v->s)) / 4;
    const int regs = data_regs + NJ_THREAD_BASE_REGS > 40 ? data_regs + NJ_THREAD_BASE_REGS : 40;
    int occ = NJ_SM_REGISTERS / (threads * regs);
    if (occ > NJ_MAX_SM_THREADS / threads)
        occ = NJ_MAX_SM_THREADS / threads;
    return occ >= 2 ? occ : 0;
}
