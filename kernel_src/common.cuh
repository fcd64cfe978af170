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
//   NJ_MIN_CTAS CTAs per SM the compiler must fit (__launch_bounds__), 0: its choice
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

#if NJ_MIN_CTAS > 0
#define NJ_BOUNDS __launch_bounds__(NJ_THREADS, NJ_MIN_CTAS)
#else
#define NJ_BOUNDS __launch_bounds__(NJ_THREADS)
#endif

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
    // bf16 is the high half of an fp32; build it with a register move, not a
    // shift of the 16-bit field (which the compiler may route through memory).
    float f;
    asm("mov.b32 %0, {%1, %2};" : "=f"(f) : "h"((unsigned short)0), "h"(v.bits));
    return f;
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
// of its CTA's slice of the row. Addresses are the thread's first vector plus
// compile-time offsets, so the loads and stores use immediate offsets instead
// of a 64-bit address register each.
#define NJ_STEP (NJ_TPR * NJ_VEC) // elements between a thread's vectors

__device__ __forceinline__ bool nj_owns(int i, const nj_slot &s)
{
    if (NJ_EXACT_SPLIT)
        return true;
    const int local = s.lane + i * NJ_TPR;
    return local < NJ_NVC && s.crank * NJ_NVC + local < NJ_NV;
}

// Element offset of the thread's first vector within its row.
__device__ __forceinline__ nj_i64 nj_thread_offset(const nj_slot &s)
{
    return (nj_i64)(s.crank * NJ_NVC + s.lane) * NJ_VEC;
}

// p + n, keeping a null pointer null (optional weights and bias).
template <typename T> __device__ __forceinline__ const T *nj_advance(const T *p, nj_i64 n)
{
    return p ? p + n : p;
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
// Row reduction: combines per-thread partial results over the NJ_TPR threads
// of a row (and the CTAs of a cluster) and gives every one of them the total.
// `Op` says what a partial result is (K floats) and how two are combined
// (nj_sum<K>: K independent sums). A one-pass LayerNorm merging (count, mean,
// M2) with Chan's formula through this same interface measured slower than
// two sum reductions, at every size tried (docs/PERFORMANCE.md).
//
// The order of combination depends only on NJ_TPR and NJ_CLUSTER: a butterfly
// within the warp, in which both partners combine (lower lane, higher lane)
// so all lanes agree bit for bit; then the warps as a fixed binary tree; then
// CTAs in rank order. A row's result therefore never depends on which other rows
// share the launch.
//
// Shared buffers are double-buffered by `phase` (reduction k uses buffer
// k % 2): a thread that writes a buffer again has passed the barrier of the
// reduction in between, which every reader of its old contents reached
// first. So each reduction needs one CTA barrier (plus one cluster barrier),
// not two. Every thread of the CTA must call it, in the same order.

template <int N> struct nj_sum {
    static constexpr int K = N;
    __device__ __forceinline__ static void combine(float (&lo)[K], const float (&hi)[K])
    {
#pragma unroll
        for (int k = 0; k < K; ++k)
            lo[k] += hi[k];
    }
};

struct nj_reducer {
    int phase;
};

template <typename Op>
__device__ __forceinline__ void nj_row_reduce(float (&v)[Op::K], const nj_slot &s,
                                              nj_reducer &red)
{
    constexpr int K = Op::K;
    const int buf = red.phase & 1;
    red.phase++;
    (void)buf;
#pragma unroll
    for (int o = (NJ_TPR < 32 ? NJ_TPR : 32) / 2; o > 0; o >>= 1) {
        float lo[K], hi[K];
        const bool upper = (s.lane & o) != 0;
#pragma unroll
        for (int k = 0; k < K; ++k) {
            const float other = __shfl_xor_sync(0xffffffffu, v[k], o);
            lo[k] = upper ? other : v[k];
            hi[k] = upper ? v[k] : other;
        }
        Op::combine(lo, hi);
#pragma unroll
        for (int k = 0; k < K; ++k)
            v[k] = lo[k];
    }
#if NJ_TPR > 32
    __shared__ float warp_part[2][NJ_RPC][NJ_WPR][K];
    if ((s.lane & 31) == 0) {
#pragma unroll
        for (int k = 0; k < K; ++k)
            warp_part[buf][s.rloc][s.lane >> 5][k] = v[k];
    }
    __syncthreads();
    {
        // The warps' partials, combined as a fixed binary tree (warp 0 with 1,
        // 2 with 3, ..., then pairs of pairs): the same order in every thread,
        // and log2(warps) dependent steps instead of one per warp.
        float p[NJ_WPR][K];
#pragma unroll
        for (int w = 0; w < NJ_WPR; ++w) {
#pragma unroll
            for (int k = 0; k < K; ++k)
                p[w][k] = warp_part[buf][s.rloc][w][k];
        }
#pragma unroll
        for (int step = 1; step < NJ_WPR; step *= 2) {
#pragma unroll
            for (int w = 0; w + step < NJ_WPR; w += 2 * step)
                Op::combine(p[w], p[w + step]);
        }
#pragma unroll
        for (int k = 0; k < K; ++k)
            v[k] = p[0][k];
    }
#endif
#if NJ_CLUSTER > 1
    // One warp gathers the CTAs' partial results (lane r from CTA r) and
    // combines them in rank order; the CTA reads the total from shared memory.
    __shared__ float cta_part[2][K];
    __shared__ float cluster_total[2][K];
    if (threadIdx.x == 0) {
#pragma unroll
        for (int k = 0; k < K; ++k)
            cta_part[buf][k] = v[k];
    }
    nj_cluster_sync();
    if (threadIdx.x < 32) {
        float mine[K], t[K];
#pragma unroll
        for (int k = 0; k < K; ++k) {
            mine[k] = threadIdx.x < NJ_CLUSTER ? nj_cluster_load(&cta_part[buf][k], threadIdx.x)
                                               : 0.f;
            t[k] = __shfl_sync(0xffffffffu, mine[k], 0);
        }
#pragma unroll
        for (int r = 1; r < NJ_CLUSTER; ++r) {
            float next[K];
#pragma unroll
            for (int k = 0; k < K; ++k)
                next[k] = __shfl_sync(0xffffffffu, mine[k], r);
            Op::combine(t, next);
        }
        if (threadIdx.x == 0) {
#pragma unroll
            for (int k = 0; k < K; ++k)
                cluster_total[buf][k] = t[k];
        }
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < K; ++k)
        v[k] = cluster_total[buf][k];
#endif
}

// Before a CTA of a cluster exits, every CTA must be done reading its shared memory.
__device__ __forceinline__ void nj_cluster_exit()
{
#if NJ_CLUSTER > 1
    nj_cluster_sync();
#endif
}

typedef nj_vec<NJ_TW, NJ_VEC> nj_wvec;

// ---------------------------------------------------------------------------
// Output: y = (x - mean) * rstd * (w + w_offset) + b for one vector, in fp32,
// rounded once. y, w and b point at the vector; w and b may be null (1, 0).

__device__ __forceinline__ void nj_norm_vec(NJ_TY *y, const NJ_TW *w, const NJ_TW *b,
                                            const nj_xvec &xv, float mean, float rstd,
                                            float w_offset)
{
    nj_wvec wv, bv;
    nj_vec<NJ_TY, NJ_VEC> out;
    if (w)
        nj_load(wv, w);
    if (b)
        nj_load(bv, b);
#pragma unroll
    for (int k = 0; k < NJ_VEC; ++k) {
        float f = (nj_to_f32(xv.v[k]) - mean) * rstd;
        if (w)
            f *= nj_to_f32(wv.v[k]) + w_offset;
        if (b)
            f += nj_to_f32(bv.v[k]);
        out.v[k] = nj_from_f32<NJ_TY>(f);
    }
    nj_store(y, out);
}

#if NJ_STORAGE == NJ_STORAGE_REG
// The part of one row a thread holds in registers.
struct nj_row_regs {
    nj_xvec v[NJ_NPT];
};

// Load this thread's vectors of the row (zeros for vectors it does not own).
// xt points at the thread's first vector (nj_thread_offset). Weights are read
// only when the output is written: loading them early (even as an L1
// prefetch) measured up to 25% slower for short rows (docs/PERFORMANCE.md).
__device__ __forceinline__ void nj_load_row(nj_row_regs &r, const NJ_TX *xt, bool live,
                                            const nj_slot &s)
{
#pragma unroll
    for (int i = 0; i < NJ_NPT; ++i) {
        if (live && nj_owns(i, s)) {
            nj_load(r.v[i], xt + i * NJ_STEP);
        } else {
#pragma unroll
            for (int k = 0; k < nj_xvec::WORDS; ++k)
                r.v[i].w[k] = typename nj_xvec::word();
        }
    }
}

// After a reduction, pass the row's packed 16-bit inputs through an identity
// permutation whose selector depends on the reduction's result. ptxas cannot
// see through it, so it converts x to fp32 again after the reduction instead
// of keeping every converted value alive across it (twice the registers, half
// the occupancy). The selector differs from the identity only when `dep` is
// NaN, and then every output is NaN whatever x holds.
__device__ __forceinline__ void nj_permute(unsigned &w, unsigned sel)
{
    asm("prmt.b32 %0, %0, 0, %1;" : "+r"(w) : "r"(sel));
}
__device__ __forceinline__ void nj_permute(uint2 &w, unsigned sel)
{
    nj_permute(w.x, sel);
    nj_permute(w.y, sel);
}
__device__ __forceinline__ void nj_permute(uint4 &w, unsigned sel)
{
    nj_permute(w.x, sel);
    nj_permute(w.y, sel);
    nj_permute(w.z, sel);
    nj_permute(w.w, sel);
}
__device__ __forceinline__ void nj_permute(unsigned short &, unsigned) {}

__device__ __forceinline__ void nj_refresh_row(nj_row_regs &r, float dep)
{
    if constexpr (sizeof(NJ_TX) == 2) {
        const unsigned sel = 0x3210u + (dep != dep ? 1u : 0u);
#pragma unroll
        for (int i = 0; i < NJ_NPT; ++i) {
#pragma unroll
            for (int k = 0; k < nj_xvec::WORDS; ++k)
                nj_permute(r.v[i].w[k], sel);
        }
    }
}

__device__ __forceinline__ void nj_store_row(const nj_row_regs &r, NJ_TY *yt, const NJ_TW *wt,
                                             const NJ_TW *bt, float mean, float rstd,
                                             float w_offset, bool live, const nj_slot &s)
{
#pragma unroll
    for (int i = 0; i < NJ_NPT; ++i)
        if (live && nj_owns(i, s))
            nj_norm_vec(yt + i * NJ_STEP, nj_advance(wt, i * NJ_STEP), nj_advance(bt, i * NJ_STEP),
                        r.v[i], mean, rstd, w_offset);
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
