#include "plan.h"

/* Bytes of x each thread should have in flight: four 16-byte loads. */
#define NJ_TARGET_THREAD_BYTES 64
/* Threads per CTA the heuristic aims for when rows are short. */
#define NJ_TARGET_CTA_THREADS 128
/* Row bytes one CTA holds in registers: 1024 threads x 128 bytes. */
#define NJ_CTA_ROW_BYTES (NJ_MAX_CTA_THREADS * NJ_MAX_THREAD_BYTES)

static int round_threads(int64_t t)
{
    int p = 1;
    if (t > 32)
        return t >= NJ_MAX_CTA_THREADS ? NJ_MAX_CTA_THREADS : (int)((t + 31) / 32 * 32);
    while (p < t)
        p *= 2;
    return p;
}

void nj_plan_heuristic(const nj_request *r, int arch, nj_plan *out)
{
    nj_variant *v = &out->v;
    nj_knobs *k = &v->k;
    int sx = nj_dtype_size(r->tx);
    int64_t row_bytes = r->hidden * sx;
    int64_t nv = r->hidden / r->vec, per_cta;
    int per_thread = NJ_TARGET_THREAD_BYTES / (r->vec * sx);

    v->op = r->op;
    v->tx = r->tx;
    v->ty = r->ty;
    v->tw = r->tw;
    v->hidden = r->hidden;
    k->vec = r->vec;
    k->cluster = 1;
    k->rpc = 1;
    k->storage = NJ_STORAGE_REG;
    out->ctas_per_sm = 0;

    if (row_bytes > NJ_CTA_ROW_BYTES) {
        int64_t cl = (row_bytes + NJ_CTA_ROW_BYTES - 1) / NJ_CTA_ROW_BYTES;
        if (arch >= 90 && cl <= NJ_MAX_CLUSTER && nv >= cl) {
            k->cluster = (int)cl;
        } else {
            /* Too large to hold: read the row twice (the second read mostly hits L2). */
            k->storage = NJ_STORAGE_STREAM;
            k->tpr = NJ_MAX_CTA_THREADS / 2;
            return;
        }
    }
    if (per_thread < 1)
        per_thread = 1;
    per_cta = (nv + k->cluster - 1) / k->cluster;
    k->tpr = round_threads((per_cta + per_thread - 1) / per_thread);
    if (k->tpr < NJ_TARGET_CTA_THREADS)
        k->rpc = NJ_TARGET_CTA_THREADS / k->tpr;
}

