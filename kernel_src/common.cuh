// normjit kernel prelude, shared by every op template.
//
// The renderer emits the variant's knobs and the op's switches as #defines,
// then params.h, this file, and the op's template (rmsnorm.cu or
// layernorm.cu). Compiled on its own (nvcc -c rmsnorm.cu), a template gets
// the defaults below, so ptxas and editors can read it.
//
//   NJ_KERNEL_NAME  extern "C" name of the kernel
//   NJ_TX NJ_TY NJ_TW  element types of x, y and weight/bias (float, nj_f16, nj_bf16;
//               y also nj_e4m3, nj_e5m2, signed char with a quant mode)
//   NJ_TR       element type of the residual and of the sum (NJ_ADD), else NJ_TX
//   NJ_H        hidden size (a compile-time constant: loops unroll, the row sits in registers)
//   NJ_VEC      elements per vector access; divides NJ_H; the dispatcher checked alignment
//   NJ_TPR      threads per row per CTA: a power of two up to 32, or a multiple of 32
//   NJ_RPC      rows per CTA
//   NJ_CLUSTER  CTAs that share one row through a thread-block cluster (sm_90), else 1
//   NJ_MIN_CTAS CTAs per SM the compiler must fit (__launch_bounds__), 0: its choice
//   NJ_STORAGE  NJ_STORAGE_REG: the row stays in registers between reduction and output;
//               NJ_STORAGE_STREAM: the row is read again (hidden sizes too large to hold);
//               NJ_STORAGE_STAGED: as REG, but each CTA copies its next row group into
//               shared memory (cp.async) while it works on the current one (persistent
//               grids; the launch gives NJ_STAGE_BYTES of dynamic shared memory)
//   NJ_ADD      1: fused residual add: s = x + residual, rounded to NJ_TR, is written to
//               res_out and normalized
//   NJ_QK       1: rows are the heads of tokens (per-head strides)
//   NJ_QUANT    NJ_QUANT_NONE, _TENSOR, _TOKEN, _GROUP: quantized output (NJ_QMAX, NJ_GROUP)
//   NJ_POW2     1: group scales rounded up to a power of two
//   NJ_CAST     NJ_CAST_NONE, _LLAMA, _GEMMA: where the result is rounded (normjit.h)
//   NJ_WLOAD    register storage: when the weights and bias are read. NJ_WLOAD_LATE: each
//               vector's at its output; NJ_WLOAD_EARLY: with the row, so that their latency
//               hides behind the row's (latency-bound calls)
//
// No CUDA toolkit header is included: the few conversions are PTX.
// Arithmetic is fp32; each output is rounded once (unless NJ_CAST says otherwise).

#ifndef NJ_RENDERED // compiled on its own (nvcc -c rmsnorm.cu [-DNJ_H=...]): defaults for the knobs
#include "params.h"
#endif
#ifndef NJ_KERNEL_NAME
#define NJ_KERNEL_NAME nj_standalone
#endif
#ifndef NJ_TX
#define NJ_TX nj_bf16
#endif
#ifndef NJ_TY
#define NJ_TY nj_bf16
#endif
#ifndef NJ_TW
#define NJ_TW nj_bf16
#endif
#ifndef NJ_H
#define NJ_H 4096
#endif
#ifndef NJ_VEC
#define NJ_VEC 8
#endif
#ifndef NJ_TPR
#define NJ_TPR 128
#endif
#ifndef NJ_RPC
#define NJ_RPC 1
#endif
#ifndef NJ_CLUSTER
#define NJ_CLUSTER 1
#endif
#ifndef NJ_MIN_CTAS
#define NJ_MIN_CTAS 0
#endif
#ifndef NJ_STORAGE
#define NJ_STORAGE 0
#endif
#ifndef NJ_ADD
#define NJ_ADD 0
#endif
#ifndef NJ_QK
#define NJ_QK 0
#endif
#ifndef NJ_QUANT
#define NJ_QUANT 0
#endif
#ifndef NJ_GROUP
#define NJ_GROUP 128
#endif
#ifndef NJ_QMAX
#define NJ_QMAX 448.0f
#endif
#ifndef NJ_POW2
#define NJ_POW2 0
#endif
#ifndef NJ_CAST
#define NJ_CAST 0
#endif
#ifndef NJ_TR
#define NJ_TR NJ_TX
#endif
#ifndef NJ_WLOAD
#define NJ_WLOAD 0
#endif

#define NJ_STORAGE_REG 0
#define NJ_STORAGE_STREAM 1
#define NJ_STORAGE_STAGED 2
// The row is held in registers from its reduction to its output (REG and STAGED).
#define NJ_HOLDS_ROW (NJ_STORAGE != NJ_STORAGE_STREAM)
#define NJ_QUANT_NONE 0
#define NJ_QUANT_TENSOR 1
#define NJ_QUANT_TOKEN 2
#define NJ_QUANT_GROUP 3
#define NJ_CAST_NONE 0
#define NJ_CAST_LLAMA 1
#define NJ_CAST_GEMMA 2
#define NJ_WLOAD_LATE 0
#define NJ_WLOAD_EARLY 1

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
struct nj_e4m3 { unsigned char bits; };
struct nj_e5m2 { unsigned char bits; };

#if NJ_ADD
#define NJ_TIN NJ_TR // what is normalized: the rounded sum
#else
#define NJ_TIN NJ_TX
#endif

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

// The value a float takes once stored as T (for the cast modes that round
// between steps).
template <typename T> __device__ __forceinline__ float nj_round_to(float f)
{
    return nj_to_f32(nj_from_f32<T>(f));
}

// fp8 codes, round to nearest even, finite values saturate to +-max and NaN
// stays NaN (the ".satfinite" rule). sm_89 and newer convert in hardware;
// older GPUs use nj_fp8_soft, the same rounding in integer arithmetic (which
// a unit test checks against the host reference on the CPU).
__device__ __forceinline__ unsigned nj_f32_bits(float f) { return __float_as_uint(f); }

// EXP, MAN: exponent and mantissa bits; BIAS; MAXCODE: the largest finite code.
template <int EXP, int MAN, int BIAS, int MAXCODE>
__device__ __forceinline__ unsigned char nj_fp8_soft(float f)
{
    const unsigned bits = nj_f32_bits(f), sign = (bits >> 24) & 0x80u;
    const float a = fabsf(f);
    int code;
    if (a != a)
        return 0x7f; // NaN
    if (a < __uint_as_float((unsigned)(127 + 1 - BIAS) << 23)) {
        // Below the smallest normal: a multiple of the subnormal step, exact
        // after scaling by a power of two, rounded half to even.
        code = __float2int_rn(a * __uint_as_float((unsigned)(127 + BIAS - 1 + MAN) << 23));
    } else {
        const int e = (int)((bits >> 23) & 0xffu) - 127;
        const unsigned m = bits & 0x7fffffu, shift = 23 - MAN, half = 1u << (shift - 1);
        unsigned r = m >> shift;
        const unsigned rem = m & ((1u << shift) - 1);
        if (rem > half || (rem == half && (r & 1u)))
            r++;
        // A carry out of the mantissa moves to the next binade on its own.
        code = e >= 32 ? MAXCODE + 1 : (int)(((unsigned)(e + BIAS) << MAN) + r);
    }
    if (code > MAXCODE)
        code = MAXCODE;
    return (unsigned char)(sign | (unsigned)code);
}

template <> __device__ __forceinline__ nj_e4m3 nj_from_f32<nj_e4m3>(float f)
{
    nj_e4m3 r;
#if __CUDA_ARCH__ >= 890
    unsigned short pair;
    asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(pair) : "f"(0.f), "f"(f));
    r.bits = (unsigned char)(pair & 0xffu);
#else
    r.bits = nj_fp8_soft<4, 3, 7, 0x7e>(f);
#endif
    return r;
}
template <> __device__ __forceinline__ nj_e5m2 nj_from_f32<nj_e5m2>(float f)
{
    nj_e5m2 r;
#if __CUDA_ARCH__ >= 890
    unsigned short pair;
    asm("cvt.rn.satfinite.e5m2x2.f32 %0, %1, %2;" : "=h"(pair) : "f"(0.f), "f"(f));
    r.bits = (unsigned char)(pair & 0xffu);
#else
    r.bits = nj_fp8_soft<5, 2, 15, 0x7b>(f);
#endif
    return r;
}
template <> __device__ __forceinline__ signed char nj_from_f32<signed char>(float f)
{
    // Round half to even, saturate to the symmetric range, NaN to 0.
    const float c = fminf(fmaxf(f, -127.f), 127.f);
    return (signed char)(f == f ? __float2int_rn(c) : 0);
}

// ---------------------------------------------------------------------------
// Vectors: N elements moved with the widest access their size allows (at most
// 16 bytes; a 32-byte vector of floats is two 16-byte accesses).

template <int BYTES> struct nj_word;
template <> struct nj_word<1> { typedef unsigned char type; };
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

// Loads of data the kernel may also write (x in place, the residual, the
// sum re-read in stream storage): ordinary coherent loads. The read-only
// non-coherent path (ld.global.nc) is only valid for memory no thread writes
// while the kernel runs, so it is kept for the weights and bias (nj_load_ro).
template <typename T, int N>
__device__ __forceinline__ void nj_load(nj_vec<T, N> &out, const T *p)
{
    const typename nj_vec<T, N>::word *q = reinterpret_cast<const typename nj_vec<T, N>::word *>(p);
#pragma unroll
    for (int i = 0; i < nj_vec<T, N>::WORDS; ++i)
        out.w[i] = q[i];
}

template <typename T, int N>
__device__ __forceinline__ void nj_load_ro(nj_vec<T, N> &out, const T *p)
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

typedef nj_vec<NJ_TIN, NJ_VEC> nj_xvec;
typedef nj_vec<NJ_TW, NJ_VEC> nj_wvec;

// ---------------------------------------------------------------------------
// Programmatic dependent launch (sm_90): wait for the previous kernel on the
// stream just before the first read of anything it may have written, and let
// the next one start once this CTA has read its rows. Both are no-ops when
// the launch did not ask for it.

__device__ __forceinline__ void nj_pdl_wait()
{
#if __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ __forceinline__ void nj_pdl_release()
{
#if __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;");
#endif
}

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

// Rows are handed out in groups of NJ_RPC, one group per CTA (cluster) at a
// time: a CTA's first group, and the groups between its turns (a grid
// smaller than the number of groups loops; staged storage copies the next).
#define NJ_FIRST_GROUP ((nj_i64)(blockIdx.x / NJ_CLUSTER))
#define NJ_GROUP_STRIDE ((nj_i64)(gridDim.x / NJ_CLUSTER))

// One row's tensors. Rows are consecutive in memory through their strides,
// except for QK-norm, where row r is head r % heads of token r / heads.
struct nj_row {
    const NJ_TX *x;
    NJ_TY *y;
    const NJ_TR *res;
    NJ_TR *res_out;
};

__device__ __forceinline__ nj_row nj_row_at(const nj_params &p, nj_i64 row)
{
    nj_row r;
#if NJ_QK
    // 32-bit division when it fits: a 64-bit one costs a call per row.
    nj_i64 token, head;
    if (p.rows <= 0x7fffffffll) {
        token = (unsigned)row / (unsigned)p.heads;
        head = (unsigned)row - (unsigned)token * (unsigned)p.heads;
    } else {
        token = row / p.heads;
        head = row - token * p.heads;
    }
    r.x = (const NJ_TX *)p.x + token * p.x_stride + head * p.x_head_stride;
    r.y = (NJ_TY *)p.y + token * p.y_stride + head * p.y_head_stride;
#else
    r.x = (const NJ_TX *)p.x + row * p.x_stride;
    r.y = (NJ_TY *)p.y + row * p.y_stride;
#endif
#if NJ_ADD
    r.res = (const NJ_TR *)p.res + row * p.res_stride;
    r.res_out = (NJ_TR *)p.res_out + row * p.res_out_stride;
#else
    r.res = nullptr;
    r.res_out = nullptr;
#endif
    return r;
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
// The input of the normalization: x, or for the fused add the sum
// s = x + residual in fp32, rounded once to NJ_TR, which the caller writes to
// res_out (nj_store_sum) once it has issued the loads of every vector it holds:
// a store between two loads makes the second wait for the first (the compiler
// cannot tell that res_out never overlaps the later vectors), which turned the
// loads of a thread's vectors into one memory round trip each.

// The input from x and the residual at those addresses (global or shared memory).
__device__ __forceinline__ void nj_input_at(nj_xvec &out, const NJ_TX *x, const NJ_TR *res)
{
#if NJ_ADD
    nj_vec<NJ_TX, NJ_VEC> xv;
    nj_load(xv, x);
    nj_load(out, res);
#pragma unroll
    for (int k = 0; k < NJ_VEC; ++k)
        out.v[k] = nj_from_f32<NJ_TR>(nj_to_f32(xv.v[k]) + nj_to_f32(out.v[k]));
#else
    (void)res;
    nj_load(out, x);
#endif
}

__device__ __forceinline__ void nj_load_input(nj_xvec &out, const nj_row &r, nj_i64 e)
{
#if NJ_ADD
    nj_input_at(out, r.x + e, r.res + e);
#else
    nj_input_at(out, r.x + e, nullptr);
#endif
}

__device__ __forceinline__ void nj_store_sum(const nj_xvec &v, const nj_row &r, nj_i64 e)
{
#if NJ_ADD
    nj_store(r.res_out + e, v);
#else
    (void)v, (void)r, (void)e;
#endif
}

// The mean of the row's first vector (x, or the rounded sums x + residual),
// the shift of LayerNorm's sums in stream storage: closer to the row's mean
// than one element, so E[d^2] - E[d]^2 loses less to cancellation. Every
// thread reads it, so nothing may write the first vector before every thread
// of the row has.
__device__ __forceinline__ float nj_row_shift(const nj_row &r, bool live)
{
    if (!live)
        return 0.f;
    nj_xvec v;
    nj_load_input(v, r, 0);
    float sum = 0.f;
#pragma unroll
    for (int k = 0; k < NJ_VEC; ++k)
        sum += nj_to_f32(v.v[k]);
    return sum / NJ_VEC;
}

// The input again, in stream storage: for the fused add, the sum this same
// thread wrote to res_out (an ordinary coherent load).
__device__ __forceinline__ void nj_reload_input(nj_xvec &out, const nj_row &r, nj_i64 e)
{
#if NJ_ADD
    nj_load(out, (const NJ_TR *)r.res_out + e);
#else
    nj_load(out, r.x + e);
#endif
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
// (nj_sum<K>: K independent sums; nj_max<K>: maxima). A one-pass LayerNorm
// merging (count, mean, M2) with Chan's formula through this same interface
// measured slower than two sum reductions, at every size tried
// (docs/PERFORMANCE.md).
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

// fmaxf ignores NaN, so an amax over values with NaNs is the largest number.
template <int N> struct nj_max {
    static constexpr int K = N;
    __device__ __forceinline__ static void combine(float (&lo)[K], const float (&hi)[K])
    {
#pragma unroll
        for (int k = 0; k < K; ++k)
            lo[k] = fmaxf(lo[k], hi[k]);
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

// The maximum over WIDTH aligned lanes of a warp (a power of two up to 32):
// the lanes of one quantization group. Only those lanes take part, so the
// other lanes of the warp may be elsewhere.
template <int WIDTH> __device__ __forceinline__ float nj_lanes_max(float v)
{
    const unsigned lane = threadIdx.x & 31u;
    const unsigned mask =
        WIDTH >= 32 ? 0xffffffffu : ((1u << (WIDTH & 31)) - 1u) << (lane & ~(unsigned)(WIDTH - 1));
#pragma unroll
    for (int o = WIDTH / 2; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(mask, v, o));
    return v;
}

// Before a CTA of a cluster exits, every CTA must be done reading its shared memory.
__device__ __forceinline__ void nj_cluster_exit()
{
#if NJ_CLUSTER > 1
    nj_cluster_sync();
#endif
}

// ---------------------------------------------------------------------------
// Output: the fp32 value of one element, rounded as the cast mode says, or
// quantized with a scale.

struct nj_norm_coef {
    float mean, rstd, w_offset;
};

// The fp32 value of element k of a vector: (x - mean) * rstd * (w + w_offset) + b,
// where LLAMA rounds (x - mean) * rstd to the input dtype before the weight.
__device__ __forceinline__ float nj_value(const nj_xvec &xv, int k, const nj_wvec &wv,
                                          const nj_wvec &bv, bool has_w, bool has_b,
                                          const nj_norm_coef &c)
{
    float f = (nj_to_f32(xv.v[k]) - c.mean) * c.rstd;
#if NJ_CAST == NJ_CAST_LLAMA
    f = nj_round_to<NJ_TIN>(f);
#endif
    if (has_w)
        f *= nj_to_f32(wv.v[k]) + c.w_offset;
    if (has_b)
        f += nj_to_f32(bv.v[k]);
    return f;
}

#if NJ_QUANT == NJ_QUANT_NONE
// y for one element without quantization. LLAMA rounds after the weight and
// again after the bias, as two separate tensor operations would.
__device__ __forceinline__ NJ_TY nj_output(const nj_xvec &xv, int k, const nj_wvec &wv,
                                           const nj_wvec &bv, bool has_w, bool has_b,
                                           const nj_norm_coef &c)
{
#if NJ_CAST == NJ_CAST_LLAMA
    float f = nj_round_to<NJ_TIN>((nj_to_f32(xv.v[k]) - c.mean) * c.rstd);
    if (has_w)
        f = nj_round_to<NJ_TY>(f * (nj_to_f32(wv.v[k]) + c.w_offset));
    if (has_b)
        f += nj_to_f32(bv.v[k]);
    return nj_from_f32<NJ_TY>(f);
#else
    return nj_from_f32<NJ_TY>(nj_value(xv, k, wv, bv, has_w, has_b, c));
#endif
}
#endif

// Weights and bias of one vector (read-only, through the non-coherent path).
__device__ __forceinline__ void nj_load_params(nj_wvec &wv, nj_wvec &bv, const NJ_TW *w,
                                               const NJ_TW *b)
{
    if (w)
        nj_load_ro(wv, w);
    if (b)
        nj_load_ro(bv, b);
}

// Write one vector of y: rounded values, or codes q = sat(rne(v * qinv)).
__device__ __forceinline__ void nj_out_vals(NJ_TY *y, const nj_wvec &wv, const nj_wvec &bv,
                                            bool has_w, bool has_b, const nj_xvec &xv,
                                            const nj_norm_coef &c, float qinv)
{
    nj_vec<NJ_TY, NJ_VEC> out;
#pragma unroll
    for (int k = 0; k < NJ_VEC; ++k) {
#if NJ_QUANT == NJ_QUANT_NONE
        out.v[k] = nj_output(xv, k, wv, bv, has_w, has_b, c);
#else
        out.v[k] = nj_from_f32<NJ_TY>(nj_value(xv, k, wv, bv, has_w, has_b, c) * qinv);
#endif
    }
    (void)qinv;
    nj_store(y, out);
}

// The same, reading the weights and bias of the vector first.
__device__ __forceinline__ void nj_out_vec(NJ_TY *y, const NJ_TW *w, const NJ_TW *b,
                                           const nj_xvec &xv, const nj_norm_coef &c, float qinv)
{
    nj_wvec wv, bv;
    nj_load_params(wv, bv, w, b);
    nj_out_vals(y, wv, bv, w != nullptr, b != nullptr, xv, c, qinv);
}

// The largest |v| of one vector (quantization scales).
__device__ __forceinline__ float nj_amax_vals(const nj_wvec &wv, const nj_wvec &bv, bool has_w,
                                              bool has_b, const nj_xvec &xv, const nj_norm_coef &c)
{
    float m = 0.f;
#pragma unroll
    for (int k = 0; k < NJ_VEC; ++k)
        m = fmaxf(m, fabsf(nj_value(xv, k, wv, bv, has_w, has_b, c)));
    return m;
}

__device__ __forceinline__ float nj_amax_vec(const NJ_TW *w, const NJ_TW *b, const nj_xvec &xv,
                                             const nj_norm_coef &c)
{
    nj_wvec wv, bv;
    nj_load_params(wv, bv, w, b);
    return nj_amax_vals(wv, bv, w != nullptr, b != nullptr, xv, c);
}

// Scale from an amax: max(amax / qmax, min_scale), a power of two with NJ_POW2.
__device__ __forceinline__ float nj_scale_of(float amax, float min_scale)
{
    float s = fmaxf(amax / NJ_QMAX, min_scale);
#if NJ_POW2
    unsigned u = __float_as_uint(s);
    if ((u & 0x7fffffu) && u < 0x7f800000u)
        u = (u & 0xff800000u) + 0x800000u; // the next power of two up
    s = __uint_as_float(u);
#endif
    return s;
}

#if NJ_QUANT == NJ_QUANT_GROUP
// Vectors per quantization group. A group is either gv consecutive lanes of
// one step (gv divides NJ_TPR, at most 32 lanes) or, when a row has fewer
// threads than a group has vectors, NJ_GV / NJ_TPR consecutive steps of every
// lane of the row (NJ_TPR <= 32). The dispatcher only builds variants that
// fit one of the two.
#define NJ_GV (NJ_GROUP / NJ_VEC)
#define NJ_GROUP_IN_LANES (NJ_TPR % NJ_GV == 0)
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

#if NJ_STORAGE == NJ_STORAGE_STAGED
// ---------------------------------------------------------------------------
// Staged storage: a CTA of a persistent grid copies the vectors its threads
// will hold for its next row group (x, and the residual for the fused add)
// into shared memory with cp.async, then works on the current group, so the
// next rows' memory latency hides behind this group's reductions and stores.
// Two buffers; each thread copies only the vectors it reads back itself, so
// cp.async.wait_group alone orders them (no barrier). Vector i of thread t
// sits at [i][t]: a warp reads consecutive bytes.
#define NJ_STAGE_XB (NJ_VEC * (int)sizeof(NJ_TX))
#if NJ_ADD
#define NJ_STAGE_RB (NJ_VEC * (int)sizeof(NJ_TR))
#else
#define NJ_STAGE_RB 0
#endif
#define NJ_STAGE_BUF (NJ_NPT * NJ_THREADS * (NJ_STAGE_XB + NJ_STAGE_RB)) // bytes per buffer
#define NJ_STAGE_BYTES (2 * NJ_STAGE_BUF)

extern __shared__ uint4 nj_stage_mem[];

template <int BYTES> __device__ __forceinline__ void nj_cp_async(unsigned dst, const void *src)
{
    if constexpr (BYTES == 16)
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(dst), "l"(src) : "memory");
    else
        asm volatile("cp.async.ca.shared.global [%0], [%1], %2;" ::"r"(dst), "l"(src), "n"(BYTES)
                     : "memory");
}

struct nj_stage {
    int k; // row groups this thread has taken from the stage
};

// Offsets of vector i of this thread in buffer `buf`: x's, then the residual's.
__device__ __forceinline__ int nj_stage_x(int buf, int i)
{
    return buf * NJ_STAGE_BUF + (i * NJ_THREADS + (int)threadIdx.x) * NJ_STAGE_XB;
}
__device__ __forceinline__ int nj_stage_res(int buf, int i)
{
    return buf * NJ_STAGE_BUF + NJ_NPT * NJ_THREADS * NJ_STAGE_XB +
           (i * NJ_THREADS + (int)threadIdx.x) * NJ_STAGE_RB;
}

// Start copying row `row_index` (this thread's vectors) into buffer `buf`;
// one commit group per row group, empty past the last row.
__device__ __forceinline__ void nj_stage_issue(const nj_params &p, nj_i64 row_index, int buf,
                                               const nj_slot &s)
{
    if (row_index < p.rows) {
        const nj_row r = nj_row_at(p, row_index);
        const nj_i64 e0 = nj_thread_offset(s);
        const unsigned base = (unsigned)__cvta_generic_to_shared(nj_stage_mem);
#pragma unroll
        for (int i = 0; i < NJ_NPT; ++i) {
            if (nj_owns(i, s)) {
                nj_cp_async<NJ_STAGE_XB>(base + nj_stage_x(buf, i), r.x + e0 + i * NJ_STEP);
#if NJ_ADD
                nj_cp_async<NJ_STAGE_RB>(base + nj_stage_res(buf, i), r.res + e0 + i * NJ_STEP);
#endif
            }
        }
    }
    asm volatile("cp.async.commit_group;" ::: "memory");
}

// The first row group of this CTA, copied before the loop over groups.
__device__ __forceinline__ nj_stage nj_stage_start(const nj_params &p, const nj_slot &s)
{
    nj_stage st = {0};
    nj_stage_issue(p, NJ_FIRST_GROUP * NJ_RPC + s.rloc, 0, s);
    return st;
}

// Start the copy of the CTA's next group (this row plus a grid of groups),
// then wait for the current one's.
__device__ __forceinline__ int nj_stage_advance(nj_stage &st, const nj_params &p, nj_i64 row_index,
                                                const nj_slot &s)
{
    const int buf = st.k & 1;
    st.k++;
    nj_stage_issue(p, row_index + NJ_GROUP_STRIDE * NJ_RPC, buf ^ 1, s);
    asm volatile("cp.async.wait_group 1;" ::: "memory");
    return buf;
}
#else
struct nj_stage {
    int unused;
};
__device__ __forceinline__ nj_stage nj_stage_start(const nj_params &, const nj_slot &)
{
    nj_stage st = {0};
    return st;
}
#endif

#if NJ_HOLDS_ROW
// The part of one row a thread holds in registers, and with NJ_WLOAD_EARLY the
// weights and bias of the same vectors.
struct nj_row_regs {
    nj_xvec v[NJ_NPT];
#if NJ_WLOAD == NJ_WLOAD_EARLY
    nj_wvec w[NJ_NPT], b[NJ_NPT];
#endif
};

// Read the weights and bias of every vector the thread owns (w and b point at
// its first vector).
__device__ __forceinline__ void nj_load_row_params(nj_row_regs &r, const NJ_TW *w, const NJ_TW *b,
                                                   bool live, const nj_slot &s)
{
#if NJ_WLOAD == NJ_WLOAD_EARLY
#pragma unroll
    for (int i = 0; i < NJ_NPT; ++i)
        if (live && nj_owns(i, s))
            nj_load_params(r.w[i], r.b[i], nj_advance(w, i * NJ_STEP), nj_advance(b, i * NJ_STEP));
#else
    (void)r, (void)w, (void)b, (void)live, (void)s;
#endif
}

// Output and amax of the thread's vector i, with its weights and bias held
// (NJ_WLOAD_EARLY) or read now; w and b point at its first vector.
__device__ __forceinline__ void nj_row_out(const nj_row_regs &r, int i, NJ_TY *y, const NJ_TW *w,
                                           const NJ_TW *b, const nj_norm_coef &c, float qinv)
{
#if NJ_WLOAD == NJ_WLOAD_EARLY
    nj_out_vals(y, r.w[i], r.b[i], w != nullptr, b != nullptr, r.v[i], c, qinv);
#else
    nj_out_vec(y, nj_advance(w, i * NJ_STEP), nj_advance(b, i * NJ_STEP), r.v[i], c, qinv);
#endif
}

__device__ __forceinline__ float nj_row_amax(const nj_row_regs &r, int i, const NJ_TW *w,
                                             const NJ_TW *b, const nj_norm_coef &c)
{
#if NJ_WLOAD == NJ_WLOAD_EARLY
    return nj_amax_vals(r.w[i], r.b[i], w != nullptr, b != nullptr, r.v[i], c);
#else
    return nj_amax_vec(nj_advance(w, i * NJ_STEP), nj_advance(b, i * NJ_STEP), r.v[i], c);
#endif
}

// Load this thread's vectors of the row (zeros for vectors it does not own),
// and with NJ_WLOAD_EARLY their weights and bias. `e0` is the offset of the
// thread's first vector (nj_thread_offset); `bias` is the op's (null for
// RMSNorm). The fused add's sums are written after the first reduction
// (nj_store_sums). Loading the weights early costs registers and L1 traffic
// per row: the planner asks for it where a call is latency-bound.
__device__ __forceinline__ void nj_load_row(nj_row_regs &r, const nj_params &p, const nj_row &row,
                                            const NJ_TW *bias, nj_i64 e0, bool live,
                                            const nj_slot &s, nj_stage &st, nj_i64 row_index)
{
#if NJ_STORAGE == NJ_STORAGE_STAGED
    const int buf = nj_stage_advance(st, p, row_index, s);
    const unsigned char *stage = reinterpret_cast<const unsigned char *>(nj_stage_mem);
#else
    (void)st, (void)row_index;
#endif
#pragma unroll
    for (int i = 0; i < NJ_NPT; ++i) {
        if (live && nj_owns(i, s)) {
#if NJ_STORAGE == NJ_STORAGE_STAGED
            nj_input_at(r.v[i], reinterpret_cast<const NJ_TX *>(stage + nj_stage_x(buf, i)),
                        NJ_ADD ? reinterpret_cast<const NJ_TR *>(stage + nj_stage_res(buf, i))
                               : nullptr);
#else
            nj_load_input(r.v[i], row, e0 + i * NJ_STEP);
#endif
        } else {
#pragma unroll
            for (int k = 0; k < nj_xvec::WORDS; ++k)
                r.v[i].w[k] = typename nj_xvec::word();
        }
    }
#if NJ_WLOAD == NJ_WLOAD_EARLY
    nj_load_row_params(r, nj_advance((const NJ_TW *)p.w, e0), nj_advance(bias, e0), live, s);
#else
    (void)p, (void)bias;
#endif
}

// The fused add's sums, held in registers, written to res_out (after the
// first reduction, so that the loads of every vector are issued first).
__device__ __forceinline__ void nj_store_sums(const nj_row_regs &r, const nj_row &row, nj_i64 e0,
                                              bool live, const nj_slot &s)
{
#if NJ_ADD
#pragma unroll
    for (int i = 0; i < NJ_NPT; ++i)
        if (live && nj_owns(i, s))
            nj_store_sum(r.v[i], row, e0 + i * NJ_STEP);
#else
    (void)r, (void)row, (void)e0, (void)live, (void)s;
#endif
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
    if constexpr (sizeof(NJ_TIN) == 2) {
        const unsigned sel = 0x3210u + (dep != dep ? 1u : 0u);
#pragma unroll
        for (int i = 0; i < NJ_NPT; ++i) {
#pragma unroll
            for (int k = 0; k < nj_xvec::WORDS; ++k)
                nj_permute(r.v[i].w[k], sel);
        }
    }
}

// Write the thread's part of the row: y, or the quantized codes and their scales.
// `bias` is the op's bias (null for RMSNorm, whose kernels then have no bias code).
__device__ __forceinline__ void nj_store_row(nj_row_regs &r, const nj_params &p, const nj_row &row,
                                             const NJ_TW *bias, nj_i64 row_index, nj_i64 e0,
                                             const nj_norm_coef &c, bool live, const nj_slot &s,
                                             nj_reducer &red)
{
    const NJ_TW *w = nj_advance((const NJ_TW *)p.w, e0), *b = nj_advance(bias, e0);
    float qinv = 1.f;
    (void)row_index;
    (void)red;
#if NJ_QUANT == NJ_QUANT_TENSOR
    qinv = 1.f / *p.scale;
#elif NJ_QUANT == NJ_QUANT_TOKEN
    {
        float amax[1] = {0.f};
#pragma unroll
        for (int i = 0; i < NJ_NPT; ++i)
            if (live && nj_owns(i, s))
                amax[0] = fmaxf(amax[0], nj_row_amax(r, i, w, b, c));
        nj_row_reduce<nj_max<1>>(amax, s, red);
        if (p.scale)
            amax[0] = fminf(amax[0], *p.scale);
        const float scale = nj_scale_of(amax[0], p.min_scale);
        qinv = 1.f / scale;
        if (live && s.lane == 0 && s.crank == 0)
            p.scales[row_index * p.scales_row_stride] = scale;
    }
#endif
#if NJ_QUANT == NJ_QUANT_GROUP
#if NJ_GROUP_IN_LANES
    // Each step's vector belongs to a group spread over NJ_GV aligned lanes.
#pragma unroll
    for (int i = 0; i < NJ_NPT; ++i) {
        if (live && nj_owns(i, s)) {
            const nj_i64 e = e0 + i * NJ_STEP;
            const float amax = nj_lanes_max<NJ_GV>(nj_row_amax(r, i, w, b, c));
            const float scale = nj_scale_of(amax, p.min_scale);
            nj_row_out(r, i, row.y + e, w, b, c, 1.f / scale);
            if ((s.lane % NJ_GV) == 0)
                p.scales[row_index * p.scales_row_stride +
                         (e / NJ_GROUP) * p.scales_group_stride] = scale;
        }
    }
#else
    // A group is NJ_GV / NJ_TPR consecutive steps of all the row's lanes.
    constexpr int steps = NJ_GV / NJ_TPR;
#pragma unroll
    for (int g = 0; g < NJ_NPT / steps; ++g) {
        float amax = 0.f;
#pragma unroll
        for (int i = g * steps; i < (g + 1) * steps; ++i)
            if (live)
                amax = fmaxf(amax, nj_row_amax(r, i, w, b, c));
        amax = nj_lanes_max<NJ_TPR>(amax);
        const float scale = nj_scale_of(amax, p.min_scale);
#pragma unroll
        for (int i = g * steps; i < (g + 1) * steps; ++i)
            if (live)
                nj_row_out(r, i, row.y + e0 + i * NJ_STEP, w, b, c, 1.f / scale);
        if (live && s.lane == 0)
            p.scales[row_index * p.scales_row_stride +
                     ((e0 + g * steps * NJ_STEP) / NJ_GROUP) * p.scales_group_stride] = scale;
    }
#endif
#else
#pragma unroll
    for (int i = 0; i < NJ_NPT; ++i)
        if (live && nj_owns(i, s))
            nj_row_out(r, i, row.y + e0 + i * NJ_STEP, w, b, c, qinv);
#endif
}
#else // NJ_STORAGE_STREAM

// Stream storage reads a thread's vectors in batches whose loads are issued
// together, before any store of the batch: the compiler keeps a load after a
// store it cannot prove apart (y may be x), which made every vector of the
// output pass one memory round trip of its own. NJ_SB vectors per batch in
// the reduction pass; the output pass takes its batch (vectors with their
// weights and bias) from the op: larger batches spill at 1024 threads.
#define NJ_SB 4
#define NJ_NPS ((NJ_NV + NJ_TPR - 1) / NJ_TPR) // vectors per thread

// Whether the thread has vector i (of NJ_NPS): j = lane + i * NJ_TPR.
__device__ __forceinline__ bool nj_stream_has(int i, int j)
{
    return i < NJ_NPS && (NJ_NV % NJ_TPR == 0 || j < NJ_NV);
}

// The reduction pass: each vector of the thread's part of the row, in order,
// reduced to partial results by Acc::add(part, v, shift) in fp32 and added
// to the thread's totals in fp64 (a thread adds up to hundreds of vectors:
// fp32 totals drifted by 1e-6 relative at hidden 131072); the fused add's
// sums are written here. `acc` gets the totals rounded to fp32.
template <typename Acc, int K>
__device__ __forceinline__ void nj_stream_pass(const nj_row &r, bool live, const nj_slot &s,
                                               float (&acc)[K], float shift)
{
    double total[K];
#pragma unroll
    for (int k = 0; k < K; ++k)
        total[k] = 0.0;
    if (live) {
#pragma unroll 1
        for (int i0 = 0; i0 < NJ_NPS; i0 += NJ_SB) {
            nj_xvec v[NJ_SB];
#pragma unroll
            for (int u = 0; u < NJ_SB; ++u) {
                const int j = s.lane + (i0 + u) * NJ_TPR;
                if (nj_stream_has(i0 + u, j))
                    nj_load_input(v[u], r, (nj_i64)j * NJ_VEC);
            }
#pragma unroll
            for (int u = 0; u < NJ_SB; ++u) {
                const int j = s.lane + (i0 + u) * NJ_TPR;
                if (nj_stream_has(i0 + u, j)) {
                    nj_store_sum(v[u], r, (nj_i64)j * NJ_VEC);
                    float part[K];
#pragma unroll
                    for (int k = 0; k < K; ++k)
                        part[k] = 0.f;
                    Acc::add(part, v[u], shift);
#pragma unroll
                    for (int k = 0; k < K; ++k)
                        total[k] += part[k];
                }
            }
        }
    }
#pragma unroll
    for (int k = 0; k < K; ++k)
        acc[k] = (float)total[k];
}

// Write a row read again from memory (stream storage), SBO vectors at a time.
// Token quantization first takes the amax in a pass of its own.
template <int SBO>
__device__ __forceinline__ void nj_stream_store_row(const nj_params &p, const nj_row &row,
                                                    const NJ_TW *b, nj_i64 row_index,
                                                    const nj_norm_coef &c, bool live,
                                                    const nj_slot &s, nj_reducer &red)
{
    const NJ_TW *w = (const NJ_TW *)p.w;
    float qinv = 1.f;
    (void)row_index;
    (void)red;
#if NJ_QUANT == NJ_QUANT_TENSOR
    qinv = 1.f / *p.scale;
#elif NJ_QUANT == NJ_QUANT_TOKEN
    {
        float amax[1] = {0.f};
        if (live) {
#pragma unroll 4
            for (int j = s.lane; j < NJ_NV; j += NJ_TPR) {
                const nj_i64 e = (nj_i64)j * NJ_VEC;
                nj_xvec v;
                nj_reload_input(v, row, e);
                amax[0] = fmaxf(amax[0], nj_amax_vec(nj_advance(w, e), nj_advance(b, e), v, c));
            }
        }
        nj_row_reduce<nj_max<1>>(amax, s, red);
        if (p.scale)
            amax[0] = fminf(amax[0], *p.scale);
        const float scale = nj_scale_of(amax[0], p.min_scale);
        qinv = 1.f / scale;
        if (live && s.lane == 0)
            p.scales[row_index * p.scales_row_stride] = scale;
    }
#endif
#if NJ_QUANT == NJ_QUANT_GROUP && !NJ_GROUP_IN_LANES
    // A group is NJ_GV / NJ_TPR consecutive steps of all the row's lanes (NJ_TPR <= 32):
    // hold one group's vectors, take its amax over the lanes, then write it.
    constexpr int steps = NJ_GV / NJ_TPR;
    if (live) {
        for (int g = 0; g < NJ_NV / NJ_GV; ++g) {
            nj_xvec v[steps];
            nj_wvec wv[steps], bv[steps];
            float amax = 0.f;
#pragma unroll
            for (int i = 0; i < steps; ++i) {
                const nj_i64 e = ((nj_i64)(g * steps + i) * NJ_TPR + s.lane) * NJ_VEC;
                nj_reload_input(v[i], row, e);
                nj_load_params(wv[i], bv[i], nj_advance(w, e), nj_advance(b, e));
            }
#pragma unroll
            for (int i = 0; i < steps; ++i)
                amax = fmaxf(amax, nj_amax_vals(wv[i], bv[i], w != nullptr, b != nullptr, v[i], c));
            const float scale = nj_scale_of(nj_lanes_max<NJ_TPR>(amax), p.min_scale);
#pragma unroll
            for (int i = 0; i < steps; ++i) {
                const nj_i64 e = ((nj_i64)(g * steps + i) * NJ_TPR + s.lane) * NJ_VEC;
                nj_out_vals(row.y + e, wv[i], bv[i], w != nullptr, b != nullptr, v[i], c,
                            1.f / scale);
            }
            if (s.lane == 0)
                p.scales[row_index * p.scales_row_stride + g * p.scales_group_stride] = scale;
        }
    }
#else
    if (live) {
#pragma unroll 1
        for (int i0 = 0; i0 < NJ_NPS; i0 += SBO) {
            nj_xvec v[SBO];
            nj_wvec wv[SBO], bv[SBO];
#pragma unroll
            for (int u = 0; u < SBO; ++u) {
                const int j = s.lane + (i0 + u) * NJ_TPR;
                const nj_i64 e = (nj_i64)j * NJ_VEC;
                if (nj_stream_has(i0 + u, j)) {
                    nj_reload_input(v[u], row, e);
                    nj_load_params(wv[u], bv[u], nj_advance(w, e), nj_advance(b, e));
                }
            }
#pragma unroll
            for (int u = 0; u < SBO; ++u) {
                const int j = s.lane + (i0 + u) * NJ_TPR;
                const nj_i64 e = (nj_i64)j * NJ_VEC;
                if (!nj_stream_has(i0 + u, j))
                    continue;
#if NJ_QUANT == NJ_QUANT_GROUP
                // A group within the lanes of one step.
                const float amax = nj_lanes_max<NJ_GV>(
                    nj_amax_vals(wv[u], bv[u], w != nullptr, b != nullptr, v[u], c));
                const float scale = nj_scale_of(amax, p.min_scale);
                nj_out_vals(row.y + e, wv[u], bv[u], w != nullptr, b != nullptr, v[u], c,
                            1.f / scale);
                if ((s.lane % NJ_GV) == 0)
                    p.scales[row_index * p.scales_row_stride +
                             (e / NJ_GROUP) * p.scales_group_stride] = scale;
#else
                nj_out_vals(row.y + e, wv[u], bv[u], w != nullptr, b != nullptr, v[u], c, qinv);
#endif
            }
        }
    }
#endif
    (void)qinv;
}
#endif

// The row groups of this CTA (cluster), NJ_FIRST_GROUP on.
#define NJ_FOR_EACH_ROW_GROUP(g)                                                              \
    for (nj_i64 g = NJ_FIRST_GROUP, groups_ = (p.rows + NJ_RPC - 1) / NJ_RPC; g < groups_;    \
         g += NJ_GROUP_STRIDE)
