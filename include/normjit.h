/*
 * normjit: RMSNorm and LayerNorm forward kernels for NVIDIA GPUs, specialized
 * per hidden size and dtype at run time (NVRTC), cached on disk and launched
 * through the CUDA driver API.
 *
 * This is the whole public interface. It is C99, includes no CUDA header and
 * compiles as C++. CUDA streams and device pointers are passed as opaque
 * pointers: a CUstream (or cudaStream_t) converts to `void *`, a CUdeviceptr
 * is passed as `(void *)(uintptr_t)ptr`.
 *
 * Conventions
 *  - Every call that can fail returns an int status: NORMJIT_OK (0) or one of
 *    the negative NORMJIT_E* codes below. normjit_strerror() and
 *    normjit_status_name() describe a status; normjit_last_error() gives the
 *    detail of the most recent failure in the calling thread (which argument,
 *    the NVRTC log, the driver's error name).
 *  - On a failed call nothing has been launched and nothing has been written
 *    to the caller's outputs.
 *  - The library never prints, exits or aborts. Warnings (an unusable kernel
 *    cache directory, say) go to the log callback of the context options, or
 *    to stderr when the environment variable NORMJIT_LOG is set.
 *  - Structs the caller fills in start with `struct_size`: set it to
 *    sizeof(the struct). Fields added in later versions go at the end, so a
 *    caller built against an older header keeps working.
 */
#ifndef NORMJIT_H
#define NORMJIT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(NORMJIT_BUILDING_LIBRARY) && defined(__GNUC__)
#define NORMJIT_API __attribute__((visibility("default")))
#else
#define NORMJIT_API
#endif

/* ------------------------------------------------------------------------ */
/* Version                                                                   */

#define NORMJIT_VERSION_MAJOR 0
#define NORMJIT_VERSION_MINOR 1
#define NORMJIT_VERSION_PATCH 0
#define NORMJIT_VERSION_STRING "0.1.0"
/* One number that grows with every release: major * 10000 + minor * 100 + patch. */
#define NORMJIT_VERSION_HEX \
    (NORMJIT_VERSION_MAJOR * 10000 + NORMJIT_VERSION_MINOR * 100 + NORMJIT_VERSION_PATCH)

/* The version of the library actually loaded, as NORMJIT_VERSION_HEX. */
NORMJIT_API unsigned normjit_version(void);
/* The version of the library actually loaded, as "major.minor.patch". */
NORMJIT_API const char *normjit_version_string(void);

/* ------------------------------------------------------------------------ */
/* Status codes                                                              */

/* X(name, value, message): the one list of statuses, their names and messages. */
#define NORMJIT_STATUS_MAP(X)                                                        \
    X(OK, 0, "success")                                                              \
    X(EINVAL, -1, "invalid argument")                                                \
    X(EUNSUPPORTED, -2, "unsupported combination of operation, dtypes or features")  \
    X(ENOMEM, -3, "out of host memory")                                              \
    X(ENODRIVER, -4, "the CUDA driver (libcuda.so.1) could not be loaded")           \
    X(ENONVRTC, -5, "NVRTC (libnvrtc.so) could not be loaded")                       \
    X(ENODEVICE, -6, "no usable CUDA device or context")                             \
    X(ECONTEXT, -7, "the current CUDA context is not the one the normjit context "   \
                    "is bound to")                                                   \
    X(ECOMPILE, -8, "kernel compilation failed")                                     \
    X(EDRIVER, -9, "a CUDA driver call failed")                                      \
    X(ENOTREADY, -10, "kernel not prepared and the stream is being captured")        \
    X(EIO, -11, "file input/output error")                                           \
    X(EFORMAT, -12, "malformed file")

typedef enum normjit_status {
#define NORMJIT_STATUS_ENUM_(name, value, msg) NORMJIT_##name = (value),
    NORMJIT_STATUS_MAP(NORMJIT_STATUS_ENUM_)
#undef NORMJIT_STATUS_ENUM_
    NORMJIT_STATUS_MIN_ = -12 /* lowest status value; not a status */
} normjit_status;

/* A short message for a status ("invalid argument"); never NULL. */
NORMJIT_API const char *normjit_strerror(int status);
/* The status's name ("NORMJIT_EINVAL"); never NULL. */
NORMJIT_API const char *normjit_status_name(int status);
/*
 * The detailed message of the most recent failed call made by this thread
 * (for example "x_row_stride (100) is smaller than hidden (128)"), or "" if
 * none failed. The string stays valid until the thread's next normjit call.
 */
NORMJIT_API const char *normjit_last_error(void);

/* ------------------------------------------------------------------------ */
/* Data types and operations                                                 */

typedef enum normjit_dtype {
    NORMJIT_DTYPE_NONE = 0, /* "no tensor", where a tensor is optional */
    NORMJIT_DTYPE_F32 = 1,
    NORMJIT_DTYPE_F16 = 2,
    NORMJIT_DTYPE_BF16 = 3
    /* Reserved for later versions: fp8 outputs (e4m3, e5m2) with a scale. */
} normjit_dtype;

typedef enum normjit_op {
    NORMJIT_OP_RMSNORM = 1,
    NORMJIT_OP_LAYERNORM = 2
    /* Reserved for later versions: backward passes. */
} normjit_op;

/* ------------------------------------------------------------------------ */
/* Context                                                                   */

typedef struct normjit_ctx normjit_ctx;

/* Log levels for normjit_log_fn and NORMJIT_LOG; 0 in the options means NORMJIT_LOG_WARN. */
enum { NORMJIT_LOG_ERROR = 1, NORMJIT_LOG_WARN = 2, NORMJIT_LOG_INFO = 3, NORMJIT_LOG_DEBUG = 4 };

/* Receives library messages at or below the context's log level. May be called from any thread. */
typedef void (*normjit_log_fn)(void *user, int level, const char *message);

/* Context option flags. */
#define NORMJIT_CTX_NO_DISK_CACHE 0x1u /* keep compiled kernels in memory only */

typedef struct normjit_ctx_options {
    uint32_t struct_size;    /* sizeof(normjit_ctx_options) */
    uint32_t flags;          /* NORMJIT_CTX_* bits */
    const char *cache_dir;   /* kernel cache directory; NULL: $NORMJIT_CACHE_DIR, else
                                $XDG_CACHE_HOME/normjit, else ~/.cache/normjit */
    const char *tuning_file; /* tuning table to read first; NULL: $NORMJIT_TUNING_FILE */
    /*
     * 0: bind to the calling thread's current CUDA context (the usual case).
     * N > 0: a compile-only context for compute capability N (90 = sm_90)
     * that needs no GPU or driver; normjit_prepare() then compiles into the
     * disk cache, and launches fail with NORMJIT_ENODEVICE.
     */
    int32_t offline_arch;
    int32_t log_level;       /* NORMJIT_LOG_*; messages above it are dropped; 0: WARN */
    normjit_log_fn log;      /* NULL: stderr if $NORMJIT_LOG is set, else silent */
    void *log_user;
} normjit_ctx_options;

/*
 * Create a context bound to the calling thread's current CUDA context (or a
 * compile-only context, see offline_arch). `options` may be NULL.
 * Loads the CUDA driver; NVRTC is loaded only when a kernel must be compiled.
 * Returns NORMJIT_ENODRIVER without a driver, NORMJIT_ENODEVICE when no CUDA
 * context is current. On failure *out is set to NULL.
 */
NORMJIT_API int normjit_ctx_create(normjit_ctx **out, const normjit_ctx_options *options);

/*
 * Destroy a context and unload its kernels. NULL is accepted. No other call
 * may use the context at the same time or afterwards. The bound CUDA context
 * should still exist; if it does not, the kernels went with it.
 */
NORMJIT_API void normjit_ctx_destroy(normjit_ctx *ctx);

/*
 * The kernel cache directory the context uses (absolute path), or NULL when
 * it has none (NORMJIT_CTX_NO_DISK_CACHE). Valid until the context is destroyed.
 */
NORMJIT_API const char *normjit_ctx_cache_dir(const normjit_ctx *ctx);

/* ------------------------------------------------------------------------ */
/* Forward normalization                                                     */

/* Flags for normjit_norm_args.flags. */
#define NORMJIT_NORM_WEIGHT_PLUS_ONE 0x1u /* scale by (1 + w) instead of w (Gemma style) */

/*
 * Arguments of one forward normalization of `rows` rows of `hidden` elements.
 *
 *   RMSNorm:   y = x * rsqrt(mean(x^2) + eps) * w
 *   LayerNorm: y = (x - mean(x)) * rsqrt(var(x) + eps) * w + b   (biased variance)
 *
 * Arithmetic is fp32 throughout; the result is rounded once, to y_dtype.
 * Tensors are row-major with a row stride counted in elements (0 means
 * `hidden`, that is dense rows). y may be x itself (same pointer, dtype size
 * and stride) but may not otherwise overlap it. Pointers must be aligned to
 * their element size; 16-byte aligned pointers and strides get the fastest
 * kernels, others a narrower one.
 *
 * Fields appended in later versions (fused residual add, fp8 output scale)
 * default to "off" for callers whose struct_size predates them.
 */
typedef struct normjit_norm_args {
    uint32_t struct_size;   /* sizeof(normjit_norm_args) */
    uint32_t flags;         /* NORMJIT_NORM_* bits */
    int64_t rows;           /* >= 0; 0 is a no-op that succeeds */
    int64_t hidden;         /* >= 1 */
    const void *x;          /* device pointer, rows x hidden, x_dtype */
    void *y;                /* device pointer, rows x hidden, y_dtype */
    int64_t x_row_stride;   /* elements between rows of x; 0: hidden */
    int64_t y_row_stride;   /* elements between rows of y; 0: hidden */
    const void *weight;     /* device pointer, hidden elements of weight_dtype, or NULL (w = 1) */
    const void *bias;       /* LayerNorm only: device pointer, hidden elements, or NULL (b = 0) */
    float *rstd;            /* optional fp32 output, one per row: rsqrt(mean or var + eps) */
    float *mean;            /* optional fp32 output, LayerNorm only: the row mean */
    int32_t x_dtype;        /* NORMJIT_DTYPE_F32, _F16 or _BF16 */
    int32_t y_dtype;        /* NORMJIT_DTYPE_F32, _F16 or _BF16 */
    int32_t weight_dtype;   /* dtype of weight and bias: x_dtype or F32; ignored without them */
    float eps;              /* >= 0, finite */
} normjit_norm_args;

/*
 * Run RMSNorm forward on `stream` (a CUstream, NULL for the legacy default
 * stream). The first call for a new (dtypes, hidden size, alignment,
 * row-count range) compiles or loads a kernel; later calls only launch.
 * Thread safe: any number of threads may launch on one context.
 * During stream capture a kernel that is not loaded yet is not compiled:
 * the call fails with NORMJIT_ENOTREADY (use normjit_prepare() first).
 */
NORMJIT_API int normjit_rmsnorm_fwd(normjit_ctx *ctx, const normjit_norm_args *args, void *stream);

/* Run LayerNorm forward; otherwise as normjit_rmsnorm_fwd(). */
NORMJIT_API int normjit_layernorm_fwd(normjit_ctx *ctx, const normjit_norm_args *args,
                                      void *stream);

/* ------------------------------------------------------------------------ */
/* Ahead-of-time preparation                                                 */

/* Flags for normjit_prepare_args.flags. */
#define NORMJIT_PREPARE_ALL_ALIGNMENTS 0x1u /* also the narrower kernels for unaligned tensors */

typedef struct normjit_prepare_args {
    uint32_t struct_size;   /* sizeof(normjit_prepare_args) */
    uint32_t flags;         /* NORMJIT_PREPARE_* bits */
    int32_t op;             /* normjit_op */
    int32_t x_dtype;
    int32_t y_dtype;
    int32_t weight_dtype;   /* x_dtype or F32 */
    const int64_t *hidden;  /* hidden sizes to prepare */
    size_t n_hidden;
} normjit_prepare_args;

/* What normjit_prepare() did, counted in distinct kernels. */
typedef struct normjit_prepare_stats {
    uint32_t compiled;  /* compiled by NVRTC (and stored in the disk cache) */
    uint32_t from_disk; /* found in the disk cache */
    uint32_t in_memory; /* already loaded in this context */
} normjit_prepare_stats;

/*
 * Compile and load every kernel that calls with these dtypes and hidden sizes
 * would use for 16-byte aligned tensors at any row count (and for any
 * alignment with NORMJIT_PREPARE_ALL_ALIGNMENTS), so that later calls, for
 * example during CUDA graph capture, only launch. On a compile-only context
 * the kernels are compiled into the disk cache. `stats` may be NULL.
 * Thread safe; a kernel needed by several threads is compiled once.
 */
NORMJIT_API int normjit_prepare(normjit_ctx *ctx, const normjit_prepare_args *args,
                                normjit_prepare_stats *stats);

#ifdef __cplusplus
}
#endif

#endif /* NORMJIT_H */
