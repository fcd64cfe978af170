/*
 * Measuring kernels on the GPU, shared by `normjit bench` and `normjit tune`:
 * buffers of fresh random data rotated so that every launch starts with a
 * cold L2, checks against the double-precision reference, CUDA-event timing
 * with the median of many runs, and the device-to-device copy bandwidth that
 * is the yardstick.
 */
#ifndef NJ_GPUBENCH_H
#define NJ_GPUBENCH_H

#include "driver_extra.h"
#include "variant.h"
#include "normjit.h"

#include <stdint.h>

typedef struct nj_bench_gpu {
    const nj_driver *drv;
    const nj_driver_extra *x;
    CUdevice dev;
    CUcontext cu;
    CUstream stream;
    char name[256];
    int arch, sms;
    int l2_bytes;
    size_t total_mem;
} nj_bench_gpu;

/* Open GPU 0, make its primary context current and create a stream. Returns a status. */
int nj_bench_gpu_open(nj_bench_gpu *g);
void nj_bench_gpu_close(nj_bench_gpu *g);

/*
 * Median time of a device-to-device copy of `bytes` (milliseconds; negative
 * on failure), rotating over enough buffers that each copy starts with a
 * cold L2, as the kernels are timed. A same-size copy of a call moves
 * exactly the bytes the call moves: bytes = nj_bench_bytes() / 2.
 */
double nj_bench_copy_ms(nj_bench_gpu *g, size_t bytes, int iters);

/* Device-to-device copy bandwidth in bytes per second (bytes read plus written), median. */
double nj_bench_copy_bandwidth(nj_bench_gpu *g, size_t bytes, int iters);

/* One normalization to measure. */
typedef struct nj_bench_op {
    nj_spec s;       /* op, dtypes, epilogue, hidden size */
    int64_t rows;    /* QK-norm: tokens */
    int64_t heads;   /* QK-norm: heads per token (dense); else 1 */
    int bias;        /* LayerNorm ops with a bias (weights are always present) */
} nj_bench_op;

/* A plain op of one dtype (x, y and weight): the seed benchmark's kind. */
nj_bench_op nj_bench_plain(int op, int dtype, int64_t rows, int64_t hidden);

/* Bytes the operation must move (nj_spec_bytes: each tensor once). */
double nj_bench_bytes(const nj_bench_op *op);

/* Rotating buffer sets for one operation. */
#define NJ_BENCH_MAX_SETS 32
typedef struct nj_bench_buffers {
    CUdeviceptr x[NJ_BENCH_MAX_SETS], y[NJ_BENCH_MAX_SETS];
    CUdeviceptr res[NJ_BENCH_MAX_SETS];    /* fused add: the residual, updated in place */
    CUdeviceptr scales[NJ_BENCH_MAX_SETS]; /* token and group quantization */
    CUdeviceptr w, b, scale;               /* scale: the tensor quantization's */
    int sets;
} nj_bench_buffers;

/*
 * Allocate enough sets that each launch finds its data out of L2 (at least
 * four times the L2 size in total), fill x (and the residual) with random
 * data (seeded), w and b too. Returns a status; frees what it allocated on
 * failure.
 */
int nj_bench_alloc(nj_bench_gpu *g, const nj_bench_op *op, uint64_t seed, nj_bench_buffers *b);
void nj_bench_free(nj_bench_gpu *g, nj_bench_buffers *b);

/* Fill `a` for a launch of `op` on buffer set `set` (the residual is updated in place). */
void nj_bench_args(const nj_bench_op *op, const nj_bench_buffers *b, int set,
                   normjit_norm_args *a);

/*
 * Compare the output of set 0 (already computed on g->stream, once) against
 * the reference on up to 192 rows spread over the tensor: of the sum the
 * fused add wrote, and quantized codes against the reference divided by their
 * scale. Returns the worst normalized error, for quantized outputs in steps
 * of the code grid (INFINITY on a NaN, a negative value on a driver error);
 * compare it with nj_tolerance(op->s.ty).
 */
double nj_bench_check(nj_bench_gpu *g, const nj_bench_op *op, const nj_bench_buffers *b);

/* A launch of set `set` on `stream`; returns a normjit status. */
typedef int (*nj_bench_launch_fn)(void *user, int set, CUstream stream);

/*
 * Time launches with CUDA events, one event pair per launch, rotating over
 * `sets`: `warmup` untimed launches, then `iters` timed, all enqueued before
 * the host waits. Returns the median in milliseconds, or a negative value
 * with the status in *status.
 */
double nj_bench_median_ms(nj_bench_gpu *g, nj_bench_launch_fn fn, void *user, int sets,
                          int warmup, int iters, int *status);

/*
 * Time single cold calls: before each one the L2 is flushed by a device
 * memset far larger than it (which also keeps the GPU busy while the host
 * queues the call), and the event pair encloses the call alone. Back-to-back
 * timing lets a kernel's tail overlap the next one's head and ranks small
 * layouts wrongly (docs/PERFORMANCE.md). Median in milliseconds, or a
 * negative value with the status in *status.
 */
double nj_bench_cold_median_ms(nj_bench_gpu *g, nj_bench_launch_fn fn, void *user, int sets,
                               int iters, int *status);

/* Launch the public API (normjit_norm) for an op: `user` is a struct nj_bench_api_user. */
typedef struct nj_bench_api_user {
    normjit_ctx *ctx;
    const nj_bench_op *op;
    const nj_bench_buffers *b;
} nj_bench_api_user;
int nj_bench_launch_api(void *user, int set, CUstream stream);

#endif
