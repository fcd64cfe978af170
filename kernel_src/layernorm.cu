// LayerNorm forward: y = (x - mean) * rsqrt(var + eps) * (w + w_offset) + b,
// with the biased variance.
//
// Work split as in rmsnorm.cu. Register storage computes the mean, then the
// variance as the mean of (x - mean)^2 over the values still in registers
// (two reductions, no cancellation). Stream storage makes one pass of sums shifted by the row's first element,
// which keeps E[d^2] - E[d]^2 accurate when the mean is large against the
// spread, then a second pass for the output.
// Knobs: NJ_VEC, NJ_TPR, NJ_RPC, NJ_CLUSTER, NJ_MIN_CTAS, NJ_STORAGE (see common.cuh).

extern "C" __global__ void NJ_BOUNDS NJ_CLUSTER_ATTR
NJ_KERNEL_NAME(NJ_KERNEL_PARAMS)
{
    const nj_slot s = nj_slot_of_thread();
    nj_reducer red = {0};
    NJ_FOR_EACH_ROW_GROUP(g)
    {
        const nj_i64 row = g * NJ_RPC + s.rloc;
        const bool live = row < rows;
        const NJ_TX *xr = x + row * x_stride;
        NJ_TY *yr = y + row * y_stride;

#if NJ_STORAGE == NJ_STORAGE_REG
        const nj_i64 off = nj_thread_offset(s);
        nj_row_regs r;
        nj_load_row(r, xr + off, live, s);
        float sum[1] = {0.f};
#pragma unroll
        for (int i = 0; i < NJ_NPT; ++i) {
#pragma unroll
            for (int k = 0; k < NJ_VEC; ++k)
                sum[0] += nj_to_f32(r.v[i].v[k]); // elements not owned are zero
        }
        nj_row_reduce<nj_sum<1>>(sum, s, red);
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
        const float rstd = rsqrtf(sq[0] / NJ_H + eps);
        nj_refresh_row(r, rstd);
        nj_store_row(r, yr + off, nj_advance(w, off), nj_advance(b, off), mean, rstd, w_offset,
                     live, s);
#else
        const float shift = live ? nj_to_f32(xr[0]) : 0.f;
        float sums[2] = {0.f, 0.f};
        if (live) {
#pragma unroll 4
            for (int j = s.lane; j < NJ_NV; j += NJ_TPR) {
                nj_xvec v;
                nj_load(v, xr + (nj_i64)j * NJ_VEC);
#pragma unroll
                for (int k = 0; k < NJ_VEC; ++k) {
                    const float d = nj_to_f32(v.v[k]) - shift;
                    sums[0] += d;
                    sums[1] += d * d;
                }
            }
        }
        nj_row_reduce<nj_sum<2>>(sums, s, red);
        const float dmean = sums[0] / NJ_H;
        const float mean = shift + dmean;
        const float var = fmaxf(sums[1] / NJ_H - dmean * dmean, 0.f);
        const float rstd = rsqrtf(var + eps);
        if (live) {
#pragma unroll 4
            for (int j = s.lane; j < NJ_NV; j += NJ_TPR) {
                const nj_i64 e = (nj_i64)j * NJ_VEC;
                nj_xvec v;
                nj_load(v, xr + e);
                nj_norm_vec(yr + e, nj_advance(w, e), nj_advance(b, e), v, mean, rstd, w_offset);
            }
        }
#endif
        nj_write_stats(rstd_out, mean_out, row, mean, rstd, live, s);
    }
    nj_cluster_exit();
}
