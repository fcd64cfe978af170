// LayerNorm forward: y = (x - mean) * rsqrt(var + eps) * (w + w_offset) + b,
// with the biased variance; and the fused residual add (NJ_ADD: x is
// replaced by the rounded sum x + residual, which is also written out).
//
// Work split as in rmsnorm.cu. Register storage (and staged storage, whose
// rows arrive through shared memory) computes the mean, then the variance as
// the mean of (x - mean)^2 over the values still in registers (two
// reductions, no cancellation). Stream storage makes one pass of sums
// shifted by the mean of the row's first vector, which keeps E[d^2] - E[d]^2
// accurate when the mean is large against the spread, then a second pass for
// the output.
// Knobs: NJ_VEC, NJ_TPR, NJ_RPC, NJ_CLUSTER, NJ_MIN_CTAS, NJ_STORAGE, NJ_WLOAD (see common.cuh).
#ifndef NJ_RENDERED
#include "common.cuh"
#endif

#if NJ_STORAGE == NJ_STORAGE_STREAM
// The shift, read by every thread before any of them writes: with the fused
// add in place, the sum overwrites the residual.
__device__ __forceinline__ float nj_shift_of(const nj_row &r, bool live)
{
    const float shift = nj_row_shift(r, live);
#if NJ_ADD
    __syncthreads();
#endif
    return shift;
}

// Sums of d and d^2, d = x - shift.
struct nj_shifted_sums {
    __device__ __forceinline__ static void add(float (&a)[2], const nj_xvec &v, float shift)
    {
#pragma unroll
        for (int k = 0; k < NJ_VEC; ++k) {
            const float d = nj_to_f32(v.v[k]) - shift;
            a[0] += d;
            a[1] += d * d;
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

#if NJ_HOLDS_ROW
        const nj_i64 off = nj_thread_offset(s);
        nj_row_regs r;
        nj_load_row(r, p, rr, (const NJ_TW *)p.b, off, live, s, st, row);
        float sum[1] = {0.f};
#pragma unroll
        for (int i = 0; i < NJ_NPT; ++i) {
#pragma unroll
            for (int k = 0; k < NJ_VEC; ++k)
                sum[0] += nj_to_f32(r.v[i].v[k]); // elements not owned are zero
        }
        nj_row_reduce<nj_sum<1>>(sum, s, red);
        nj_store_sums(r, rr, off, live, s);
        const float mean = sum[0] / NJ_H;
        nj_refresh_row(r, mean);
        float sq[1] = {0.f};
#pragma unroll
        for (int i = 0; i < NJ_NPT; ++i) {
            if (live && nj_owns(i, s)) {
#pragma unroll
                for (int k = 0; k < NJ_VEC; ++k) {
                    const float d = nj_to_f32(r.v[i].v[k]) - mean;
                    sq[0] += d * d;
                }
            }
        }
        nj_row_reduce<nj_sum<1>>(sq, s, red);
        const float rstd = rsqrtf(sq[0] / NJ_H + p.eps);
        const nj_norm_coef c = {mean, rstd, p.w_offset};
        nj_refresh_row(r, rstd);
        nj_store_row(r, p, rr, (const NJ_TW *)p.b, row, off, c, live, s, red);
#else
        const float shift = nj_shift_of(rr, live);
        float sums[2] = {0.f, 0.f};
        nj_stream_pass<nj_shifted_sums>(rr, live, s, sums, shift);
        nj_row_reduce<nj_sum<2>>(sums, s, red);
        const float dmean = sums[0] / NJ_H;
        const float mean = shift + dmean;
        float var = sums[1] / NJ_H - dmean * dmean;
        var = var < 0.f ? 0.f : var; // rounding can make it negative; NaN stays NaN
        const float rstd = rsqrtf(var + p.eps);
        const nj_norm_coef c = {mean, rstd, p.w_offset};
        nj_stream_store_row<2>(p, rr, (const NJ_TW *)p.b, row, c, live, s, red);
#endif
        nj_write_stats(p.rstd, p.mean, row, mean, rstd, live, s);
    }
    nj_cluster_exit();
}
