#include "plan.h"

/*
 * Heuristic targets, fitted to the choices of 'normjit tune' on an H100
 * (docs/PERFORMANCE.md), for hidden sizes no tuning table covers:
 *  - rows up to 2 KB: eight 16-byte vectors per thread, 128-thread CTAs of
 *    several rows;
 *  - rows up to 32 KB: about three vectors per thread (four for LayerNorm),
 *    up to 1024 threads;
 *  - longer rows: 1024 threads holding up to 128 bytes each (RMSNorm), then
 *    a cluster (RMSNorm, sm_90) or two passes over the row (LayerNorm, and
 *    anything larger), with the compiler asked for the occupancy that fits.
 */
#define NJ_SHORT_ROW_BYTES 2048
#define NJ_SHORT_ROW_VECTORS 8
#define NJ_MID_ROW_BYTES (32 << 10)
#define NJ_TARGET_CTA_THREADS 128

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

static void base_variant(const nj_request *r, nj_plan *out)
{
    nj_variant *v = &out->v;
    v->op = r->op;
    v->tx = r->tx;
    v->ty = r->ty;
    v->tw = r->tw;
    v->hidden = r->hidden;
    v->k.vec = r->vec;
    v->k.tpr = 1;
    v->k.rpc = 1;
    v->k.cluster = 1;
    v->k.storage = NJ_STORAGE_REG;
    v->k.occ = 0;
    out->ctas_per_sm = 0;
}

void nj_plan_heuristic(const nj_request *r, int arch, nj_plan *out)
{
    nj_knobs *k = &out->v.k;
    const int vec_bytes = r->vec * nj_dtype_size(r->tx);
    const int64_t nv = r->hidden / r->vec, row_bytes = r->hidden * nj_dtype_size(r->tx);
    const int64_t max_npt = NJ_MAX_THREAD_BYTES / vec_bytes > 0 ? NJ_MAX_THREAD_BYTES / vec_bytes : 1;
    int64_t tpr;

    base_variant(r, out);
    if (row_bytes <= NJ_SHORT_ROW_BYTES) {
        tpr = ceil_div(nv, NJ_SHORT_ROW_VECTORS);
    } else if (row_bytes <= NJ_MID_ROW_BYTES) {
        tpr = ceil_div(nv, r->op == NORMJIT_OP_LAYERNORM ? 4 : 3);
    } else if (r->op == NORMJIT_OP_RMSNORM && ceil_div(nv, NJ_MAX_CTA_THREADS) <= max_npt) {
        tpr = NJ_MAX_CTA_THREADS;
    } else {
        int64_t cl = ceil_div(nv, NJ_MAX_CTA_THREADS * max_npt);
        tpr = r->op == NORMJIT_OP_LAYERNORM && row_bytes <= 2 * NJ_MID_ROW_BYTES
                  ? NJ_MAX_CTA_THREADS / 2
                  : NJ_MAX_CTA_THREADS;
        if (r->op == NORMJIT_OP_RMSNORM && arch >= 90 && cl <= NJ_MAX_CLUSTER) {
            k->cluster = (int)cl;
            tpr = ceil_div(ceil_div(nv, cl), max_npt);
        } else {
            k->storage = NJ_STORAGE_STREAM;
        }
    }
    k->tpr = nj_legal_tpr(tpr < NJ_MAX_CTA_THREADS ? tpr : NJ_MAX_CTA_THREADS);
    if (k->tpr < NJ_TARGET_CTA_THREADS)
        k->rpc = NJ_TARGET_CTA_THREADS / k->tpr;
    if (k->tpr >= 512 && row_bytes > NJ_MID_ROW_BYTES)
        k->occ = nj_plan_occ_target(&out->v);
}

static int add_layout(nj_knobs *out, int n, int max, const nj_knobs *k)
{
    int i;
    for (i = 0; i < n; i++)
        if (out[i].tpr == k->tpr && out[i].cluster == k->cluster && out[i].storage == k->storage)
            return n;
    if (n < max)
        out[n++] = *k;
    return n;
}

int nj_plan_layouts(const nj_request *r, int arch, nj_knobs *out, int max)
{
    static const int npts[] = {1, 2, 3, 4, 6, 8, 12, 16};
    const int sx = nj_dtype_size(r->tx), vec_bytes = r->vec * sx;
    const int64_t nv = r->hidden / r->vec, row_bytes = r->hidden * sx;
    nj_knobs k;
    int n = 0, cl;
    size_t i;

    k.vec = r->vec;
    k.rpc = 1;
    k.occ = 0;
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

int nj_plan_occ_target(const nj_variant *v)
{
    /* Registers a thread needs: its share of x plus about 24 for everything
       else, and never fewer than 40 (below that the compiler spills). */
    const int threads = v->k.tpr * v->k.rpc;
    const int data_regs =
        nj_variant_vectors_per_thread(v) * v->k.vec * nj_dtype_size(v->tx) / 4;
    const int regs = data_regs + 24 > 40 ? data_regs + 24 : 40;
    int occ = 65536 / (threads * regs);
    if (occ > NJ_MAX_SM_THREADS / threads)
        occ = NJ_MAX_SM_THREADS / threads;
    return occ >= 2 ? occ : 0;
}

int nj_plan_rpc_options(int tpr, int *out)
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
