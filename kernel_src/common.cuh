// normjit kernel prelude, shared by every op template.
//
// The renderer emits the variant's knobs as #defines, then this file, then
// the op's template (rmsnorm.cu or layernorm.cu):
//
//   NJ_KERNEL_NAME  extern "C" name of the kernel
//   NJ_TX NJ_TY NJ_TW  element types of x, y and weight/bias (float, nj_f16, nj_bf16)
//   NJ_H        hidden size (a compile-time constant: loops unroll, the row sits in registers)
//   NJ_VEC      elements per vector access; divides NJ_H; the dispatcher checked alignment
//   NJ_TPR      threads per row per CTA: a power of two up to 32, or a multiple of 32
//   NJ_RPC      rows per CTA
//   NJ_CLUSTER  CTAs that share one row through a thread-block cluster (sm_90), else 1
//   NJ_STORAGE  NJ_STORAGE_REG: the row stays in registers between reduction and output;
//               NJ_STORAGE_STREAM: the row is read twice (hidden sizes too large to hold)
//
// No CUDA toolkit header is included: the few fp16/bf16 conversions are PTX.
// Arithmetic is fp32; each output is rounded once.

#define NJ_STORAGE_REG 0
#define NJ_STORAGE_STREAM 1

typedef long long nj_i64;

#define NJ_THREADS (NJ_TPR * NJ_RPC)
#define NJ_NV (NJ_H / NJ_VEC)                            // vectors per row
#define NJ_NVC ((NJ_NV + NJ_CLUSTER - 1) / NJ_CLUSTER)   // vectors per CTA of a cluster
#define NJ_NPT ((NJ_NVC + NJ_TPR - 1) / NJ_TPR)          // vectors per thread (register storage)
#define NJ_WPR (NJ_TPR > 32 ? NJ_TPR / 32 : 1)           // warps per row
#define NJ_EXACT_SPLIT (NJ_NVC % NJ_TPR == 0 && NJ_NV % NJ_CLUSTER == 0)

#if NJ_CLUSTER > 1
#define NJ_CLUSTER_ATTR __cluster_dims__(NJ_CLUSTER, 1, 1)
#else
#define NJ_CLUSTER_ATTR
#endif

// ---------------------------------------------------------------------------
// Element types and conversions

struct nj_f16 { unsigned short bits; };
struct nj_bf16 { unsigned short bits; };

__device__ __forceinline__ float nj_to_f32(float v) { return v; }
__device__ __forceinline__ float nj_to_f32(nj_f16 v)
{
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(v.bits));
    return f;
}
__device__ __forceinline__ float nj_to_f32(nj_bf16 v)
{
    return __uint_as_float((unsigned)v.bits << 16);
}

template <typename T> __device__ __forceinline__ T nj_from_f32(float f);
template <> __device__ __forceinline__ float nj_from_f32<float>(float f) { return f; }
template <> __device__ __forceinline__ nj_f16 nj_from_f32<nj_f16>(float f)
{
    nj_f16 r;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(r.bits) : "f"(f));
    return r;
}
template <> __device__ __forceinline__ nj_bf16 nj_from_f32<nj_bf16>(float f)
{
    nj_bf16 r;
    asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(r.bits) : "f"(f));
    return r;
}

// ---------------------------------------------------------------------------
// Vectors: N elements moved with the widest access their size allows (at most
// 16 bytes; a 32-byte vector of floats is two 16-byte accesses).

template <int BYTES> struct nj_word;
template <> struct nj_word<2> { typedef unsigned short type; };
template <> struct nj_word<4> { typedef unsigned int type; };
template <> struct nj_word<8> { typedef uint2 type; };
template <> struct nj_word<16> { typedef uint4 type; };

template <typename T, int N> struct nj_vec {
    static constexpr int BYTES = (int)sizeof(T) * N;
    static constexpr int UNIT = BYTES < 16 ? BYTES : 16;
    static constexpr int WORDS = BYTES / UNIT;
    typedef typename nj_word<UNIT>::type word;
    union {
        T v[N];
        word w[WORDS];
    };
};

// Read-only loads through the non-coherent path: x, w and b are never written
// by the kernel before being read (in place, each element is read before the
// same thread overwrites it).
template <typename T, int N>
__device__ __forceinline__ void nj_load(nj_vec<T, N> &out, const T *p)
{
    const typename nj_vec<T, N>::word *q = reinterpret_cast<const typename nj_vec<T, N>::word *>(p);
#pragma unroll
    for (int i = 0; i < nj_vec<T, N>::WORDS; ++i)
        out.w[i] = __ldg(q + i);
}

template <typename T, int N>
__device__ __forceinline__ void nj_store(T *p, const nj_vec<T, N> &in)
{
    typename nj_vec<T, N>::word *q = reinterpret_cast<typename nj_vec<T, N>::word *>(p);
#pragma unroll
    for (int i = 0; i < nj_vec<T, N>::WORDS; ++i)
        q[i] = in.w[i];
}

typedef nj_vec<NJ_TX, NJ_VEC> nj_xvec;

// ---------------------------------------------------------------------------
// Work split: which row and which vectors of it a thread handles.

struct nj_slot {
    int lane;  // thread within its row's group of NJ_TPR
    int rloc;  // row within the CTA
    int crank; // CTA within the cluster
};

__device__ __forceinline__ nj_slot nj_slot_of_thread()
{
    nj_slot s;
    s.lane = (int)threadIdx.x % NJ_TPR;
    s.rloc = (int)threadIdx.x / NJ_TPR;
    s.crank = (int)(blockIdx.x % NJ_CLUSTER);
    return s;
}

// Register storage: thread `lane` holds vectors lane, lane + TPR, lane + 2 TPR, ...
// of its CTA's slice of the row.
__device__ __forceinline__ bool nj_owns(int i, const nj_slot &s)
{
    if (NJ_EXACT_SPLIT)
        return true;
    const int local = s.lane + i * NJ_TPR;
    return local < NJ_NVC && s.crank * NJ_NVC + local < NJ_NV;
}

__device__ __forceinline__ int nj_vec_index(int i, const nj_slot &s)
{
    return s.crank * NJ_NVC + s.lane + i * NJ_TPR;
}

// ---------------------------------------------------------------------------
// Thread-block clusters (sm_90): a barrier, and reading a float from the
// shared memory of another CTA of the cluster.

#if NJ_CLUSTER > 1
__device__ __forceinline__ void nj_cluster_sync()
{
    asm volatile("barrier.cluster.arrive.release.aligned;\n\t"
                 "barrier.cluster.wait.acquire.aligned;" ::: "memory");
}

__device__ __forceinline__ float nj_cluster_load(const float *p, unsigned rank)
{
    unsigned local = (unsigned)__cvta_generic_to_shared(p), remote;
    float v;
    asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(remote) : "r"(local), "r"(rank));
    asm volatile("ld.shared::cluster.f32 %0, [%1];" : "=f"(v) : "r"(remote) : "memory");
    return v;
}
#endif

// ---------------------------------------------------------------------------
// Row reduction: sums N floats over the NJ_TPR threads of a row (and the
// CTAs of a cluster) and gives every one of them the total.
//
// The order of additions depends only on NJ_TPR and NJ_CLUSTER: a butterfly
// within the warp (both partners add the same two numbers, so all lanes agree
// bit for bit), then warps in index order, then CTAs in rank order. A row's
// result therefore never depends on which other rows share the launch.
// Every thread of the CTA must call it (it contains barriers).

template <int N>
__device__ __forceinline__ void nj_row_sum(float (&v)[N], const nj_slot &s)
{
#pragma unroll
    for (int o = (NJ_TPR < 32 ? NJ_TPR : 32) / 2; o > 0; o >>= 1) {
#pragma unroll
        for (int n = 0; n < N; ++n)
            v[n] += __shfl_xor_sync(0xffffffffu, v[n], o);
    }
#if NJ_TPR > 32
    __shared__ float warp_part[NJ_RPC][NJ_WPR][N];
    if ((s.lane & 31) == 0) {
#pragma unroll
        for (int n = 0; n < N; ++n)
            warp_part[s.rloc][s.lane >> 5][n] = v[n];
    }
    __syncthreads();
#pragma unroll
    for (int n = 0; n < N; ++n) {
        float t = warp_part[s.rloc][0][n];
#pragma unroll
        for (int w = 1; w < NJ_WPR; ++w)
            t += warp_part[s.rloc][w][n];
        v[n] = t;
    }
    __syncthreads(); // warp_part is reused by the next reduction
#endif
#if NJ_CLUSTER > 1
    __shared__ float cta_part[N];
    if (threadIdx.x == 0) {
#pragma unroll
        for (int n = 0; n < N; ++n)
            cta_part[n] = v[n];
    }
    nj_cluster_sync();
#pragma unroll
    for (int n = 0; n < N; ++n) {
        float t = nj_cluster_load(&cta_part[n], 0);
#pragma unroll
        for (unsigned r = 1; r < NJ_CLUSTER; ++r)
            t += nj_cluster_load(&cta_part[n], r);
        v[n] = t;
    }
    nj_cluster_sync(); // no CTA overwrites cta_part or exits while others read it
#endif
}

// ---------------------------------------------------------------------------
// Output: y[j] = (x[j] - mean) * rstd * (w[j] + w_offset) + b[j], computed in
// fp32 and rounded once. w and b may be null (1 and 0).

__device__ __forceinline__ void nj_write_vec(NJ_TY *yr, int j, const nj_xvec &xv, const NJ_TW *w,
                                             const NJ_TW *b, float mean, float rstd,
                                             float w_offset)
{
    nj_vec<NJ_TW, NJ_VEC> wv, bv;
    nj_vec<NJ_TY, NJ_VEC> out;
    if (w)
        nj_load(wv, w + (nj_i64)j * NJ_VEC);
    if (b)
        nj_load(bv, b + (nj_i64)j * NJ_VEC);
#pragma unroll
    for (int k = 0; k < NJ_VEC; ++k) {
        float f = (nj_to_f32(xv.v[k]) - mean) * rstd;
        if (w)
            f *= nj_to_f32(wv.v[k]) + w_offset;
        if (b)
            f += nj_to_f32(bv.v[k]);
        out.v[k] = nj_from_f32<NJ_TY>(f);
    }
    nj_store(yr + (nj_i64)j * NJ_VEC, out);
}

#if NJ_STORAGE == NJ_STORAGE_REG
// The part of one row a thread holds in registers.
struct nj_row_regs {
    nj_xvec v[NJ_NPT];
};

__device__ __forceinline__ void nj_load_row(nj_row_regs &r, const NJ_TX *xr, bool live,
                                            const nj_slot &s)
{
#pragma unroll
    for (int i = 0; i < NJ_NPT; ++i) {
        if (live && nj_owns(i, s)) {
            nj_load(r.v[i], xr + (nj_i64)nj_vec_index(i, s) * NJ_VEC);
        } else {
#pragma unroll
            for (int k = 0; k < nj_xvec::WORDS; ++k)
                r.v[i].w[k] = typename nj_xvec::word();
        }
    }
}

__device__ __forceinline__ void nj_store_row(const nj_row_regs &r, NJ_TY *yr, const NJ_TW *w,
                                             const NJ_TW *b, float mean, float rstd,
                                             float w_offset, bool live, const nj_slot &s)
{
#pragma unroll
    for (int i = 0; i < NJ_NPT; ++i)
        if (live && nj_owns(i, s))
            nj_write_vec(yr, nj_vec_index(i, s), r.v[i], w, b, mean, rstd, w_offset);
}
#endif

// Per-row fp32 statistics for a backward pass, written once per row.
__device__ __forceinline__ void nj_write_stats(float *rstd_out, float *mean_out, nj_i64 row,
                                               float mean, float rstd, bool live, const nj_slot &s)
{
    if (live && s.lane == 0 && s.crank == 0) {
        if (rstd_out)
            rstd_out[row] = rstd;
        if (mean_out)
            mean_out[row] = mean;
    }
}

// The kernel signature shared by every op.
#define NJ_KERNEL_PARAMS                                                                      \
    const NJ_TX *x, NJ_TY *y, const NJ_TW *w, const NJ_TW *b, float *rstd_out,               \
        float *mean_out, nj_i64 rows, nj_i64 x_stride, nj_i64 y_stride, float eps,           \
        float w_offset

// Rows are handed out in groups of NJ_RPC, one group per CTA (cluster) at a
// time; a grid smaller than the number of groups loops.
#define NJ_FOR_EACH_ROW_GROUP(g)                                                              \
    for (nj_i64 g = blockIdx.x / NJ_CLUSTER, groups_ = (rows + NJ_RPC - 1) / NJ_RPC; g < groups_; \
         g += gridDim.x / NJ_CLUSTER)
