// RMSNorm forward: y = x * rsqrt(mean(x^2) + eps) * (w + w_offset).
//
// One row per group of NJ_TPR threads (NJ_RPC rows per CTA, or one row split
// over the NJ_CLUSTER CTAs of a cluster). Each thread sums the squares of the
// elements it holds, nj_row_reduce() adds the sums, and each thread writes its
// own elements. Register storage reads every element once; stream storage
// reads the row a second time for the output.
// Knobs: NJ_VEC, NJ_TPR, NJ_RPC, NJ_CLUSTER, NJ_MIN_CTAS, NJ_STORAGE (see common.cuh).

extern "C" __global__ void NJ_BOUNDS NJ_CLUSTER_ATTR
NJ_KERNEL_NAME(NJ_KERNEL_PARAMS)
{
    const nj_slot s = nj_slot_of_thread();
    nj_reducer red = {0};
    (void)mean_out;
    (void)b;
    NJ_FOR_EACH_ROW_GROUP(g)
    {
        const nj_i64 row = g * NJ_RPC + s.rloc;
        const bool live = row < rows;
        const NJ_TX *xr = x + row * x_stride;
        NJ_TY *yr = y + row * y_stride;
        float sum[1] = {0.f};

#if NJ_STORAGE == NJ_STORAGE_REG
        const nj_i64 off = nj_thread_offset(s);
        nj_row_regs r;
        nj_load_row(r, xr + off, live, s);
#pragma unroll
        for (int i = 0; i < NJ_NPT; ++i) {
#pragma unroll
            for (int k = 0; k < NJ_VEC; ++k) {
                const float f = nj_to_f32(r.v[i].v[k]);
                sum[0] += f * f; // elements this thread does not own are zero
            }
        }
        nj_row_reduce<nj_sum<1>>(sum, s, red);
        const float rstd = rsqrtf(sum[0] / NJ_H + eps);
        nj_refresh_row(r, rstd);
        nj_store_row(r, yr + off, nj_advance(w, off), nullptr, 0.f, rstd, w_offset, live, s);
#else
        if (live) {
#pragma unroll 4
            for (int j = s.lane; j < NJ_NV; j += NJ_TPR) {
                nj_xvec v;
                nj_load(v, xr + (nj_i64)j * NJ_VEC);
#pragma unroll
                for (int k = 0; k < NJ_VEC; ++k) {
                    const float f = nj_to_f32(v.v[k]);
                    sum[0] += f * f;
                }
            }
        }
        nj_row_reduce<nj_sum<1>>(sum, s, red);
        const float rstd = rsqrtf(sum[0] / NJ_H + eps);
        if (live) {
#pragma unroll 4
            for (int j = s.lane; j < NJ_NV; j += NJ_TPR) {
                const nj_i64 e = (nj_i64)j * NJ_VEC;
                nj_xvec v;
                nj_load(v, xr + e);
                nj_norm_vec(yr + e, nj_advance(w, e), nullptr, v, 0.f, rstd, w_offset);
            }
        }
#endif
        nj_write_stats(rstd_out, nullptr, row, 0.f, rstd, live, s);
    }
    nj_cluster_exit();
}
