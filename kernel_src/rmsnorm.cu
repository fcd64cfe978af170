// RMSNorm forward: y = x * rsqrt(mean(x^2) + eps) * (w + w_offset), and the
// ops built on it: the fused residual add (NJ_ADD: x is replaced by the
// rounded sum x + residual, which is also written out) and QK-norm (NJ_QK:
// rows are the heads of tokens, with their own strides).
//
// One row per group of NJ_TPR threads (NJ_RPC rows per CTA, or one row split
// over the NJ_CLUSTER CTAs of a cluster). Each thread sums the squares of the
// elements it holds, nj_row_reduce() adds the sums, and each thread writes its
// own elements (rounded, or quantized: common.cuh). Register storage reads
// every element once (staged storage too, through shared memory, a row group
// ahead); stream storage reads the row a second time for the output.
// Knobs: NJ_VEC, NJ_TPR, NJ_RPC, NJ_CLUSTER, NJ_MIN_CTAS, NJ_STORAGE, NJ_WLOAD (see common.cuh).
#ifndef NJ_RENDERED
#include "common.cuh"
#endif

#if NJ_STORAGE == NJ_STORAGE_STREAM
struct nj_sum_squares {
    __device__ __forceinline__ static void add(float (&a)[1], const nj_xvec &v, float)
    {
#pragma unroll
        for (int k = 0; k < NJ_VEC; ++k) {
            const float f = nj_to_f32(v.v[k]);
            a[0] += f * f;
        }
    }
};
#endif

extern "C" __global__ void NJ_BOUNDS NJ_CLUSTER_ATTR NJ_KERNEL_NAME(const nj_params p)
{
    const nj_slot s = nj_slot_of_thread();
    nj_reducer red = {0};
    nj_pdl_wait();
    nj_pdl_release();
    nj_stage st = nj_stage_start(p, s);
    NJ_FOR_EACH_ROW_GROUP(g)
    {
        const nj_i64 row = g * NJ_RPC + s.rloc;
        const bool live = row < p.rows;
        const nj_row rr = nj_row_at(p, row);
        float sum[1] = {0.f};

#if NJ_HOLDS_ROW
        const nj_i64 off = nj_thread_offset(s);
        nj_row_regs r;
        nj_load_row(r, p, rr, nullptr, off, live, s, st, row);
#pragma unroll
        for (int i = 0; i < NJ_NPT; ++i) {
#pragma unroll
            for (int k = 0; k < NJ_VEC; ++k) {
                const float f = nj_to_f32(r.v[i].v[k]);
                sum[0] += f * f; // elements this thread does not own are zero
            }
        }
        nj_row_reduce<nj_sum<1>>(sum, s, red);
        nj_store_sums(r, rr, off, live, s);
        const float rstd = rsqrtf(sum[0] / NJ_H + p.eps);
        const nj_norm_coef c = {0.f, rstd, p.w_offset};
        nj_refresh_row(r, rstd);
        nj_store_row(r, p, rr, nullptr, row, off, c, live, s, red);
#else
        nj_stream_pass<nj_sum_squares>(rr, live, s, sum, 0.f);
        nj_row_reduce<nj_sum<1>>(sum, s, red);
        const float rstd = rsqrtf(sum[0] / NJ_H + p.eps);
        const nj_norm_coef c = {0.f, rstd, p.w_offset};
        nj_stream_store_row<4>(p, rr, nullptr, row, c, live, s, red);
#endif
        nj_write_stats(p.rstd, nullptr, row, 0.f, rstd, live, s);
    }
    nj_cluster_exit();
}
