/*
 * normjit: RMSNorm and LayerNorm forward kernels for NVIDIA GPUs, plain and
 * fused (residual add, quantized outputs, per-head QK-norm), specialized per
 * hidden size, dtype and epilogue at run time (NVRTC), cached on disk and
 * launched through the CUDA driver API.
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
 *  - Structs the caller fills in or receives start with `struct_size`: set
 *    it to sizeof(the struct). Fields added in later versions only ever go
 *    at the end. A caller built against an older header passes a smaller
 *    struct_size: the library reads the fields up to it and takes the
 *    rest as zero (which always means "off" or the default), and writes
 *    output structs only up to it. A larger struct_size from a newer
 *    header is accepted as long as the fields this version does not know
 *    are zero; otherwise the call fails with NORMJIT_EUNSUPPORTED.
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
#define NORMJIT_VERSION_MINOR 2
#define NORMJIT_VERSION_PATCH 0
#define NORMJIT_VERSION_STRING "0.2.0"
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
    NORMJIT_DTYPE_BF16 = 3,
    /* Quantized outputs only (y_dtype with a quant mode other than NORMJIT_QUANT_NONE). */
    NORMJIT_DTYPE_FP8_E4M3 = 4, /* OCP e4m3 (finite range +-448) */
    NORMJIT_DTYPE_FP8_E5M2 = 5, /* OCP e5m2 (finite range +-57344) */
    NORMJIT_DTYPE_INT8 = 6      /* symmetric, +-127 */
} normjit_dtype;

/*
 * The operations. Every one normalizes rows of `hidden` elements and takes
 * normjit_norm_args; the fused ones use more of its fields.
 *
 *   RMSNORM        y = x * rsqrt(mean(x^2) + eps) * w
 *   LAYERNORM      y = (x - mean(x)) * rsqrt(var(x) + eps) * w + b   (biased variance)
 *   ADD_RMSNORM    s = x + residual (fp32, rounded once to residual_dtype) is written to
 *                  residual_out, then y = RMSNorm(s): bit for bit what adding in that
 *                  dtype and then calling RMSNORM gives
 *   ADD_LAYERNORM  the same with LayerNorm
 *   QK_RMSNORM     RMSNorm over head_dim (`hidden`) of each head of a [rows = tokens,
 *                  heads, head_dim] view with its own token and head strides (the q or
 *                  k slice of a fused qkv projection), weight of head_dim elements
 */
typedef enum normjit_op {
    NORMJIT_OP_RMSNORM = 1,
    NORMJIT_OP_LAYERNORM = 2,
    NORMJIT_OP_ADD_RMSNORM = 3,
    NORMJIT_OP_ADD_LAYERNORM = 4,
    NORMJIT_OP_QK_RMSNORM = 5
    /* Reserved for later versions: backward passes. */
} normjit_op;

/*
 * Quantized outputs (every op but QK_RMSNORM). y_dtype is then FP8_E4M3,
 * FP8_E5M2 or INT8, and each code is q = saturate(round-to-nearest-even(v * (1/s)))
 * where v is the fp32 normalized value (never a rounded 16-bit y), s the
 * dequantization scale of its tensor, row or group (v ~= q * s), and 1/s is
 * computed once in fp32 (as vLLM's kernels do). qmax is 448 (e4m3), 57344
 * (e5m2) or 127 (int8).
 *
 *   TENSOR  s = *scale, given by the caller (a device pointer), as a static fp8
 *           quantization
 *   TOKEN   per row: s = max(min(amax(row), *scale if scale) / qmax, min_scale),
 *           written to scales[row] (fp32); `scale`, if not NULL, caps amax
 *   GROUP   per group_size (64 or 128) consecutive elements of a row:
 *           s = max(amax(group) / qmax, min_scale), rounded up to a power of two
 *           with NORMJIT_NORM_SCALES_POW2; written row-major to
 *           scales[row * scales_stride + group] or, with
 *           NORMJIT_NORM_SCALES_COLUMN_MAJOR, to scales[group * scales_stride + row]
 *           (the layout block-scaled fp8 GEMMs read)
 *
 * NaN and infinity: amax ignores NaN (fmax); a NaN value gives a NaN code
 * (fp8) or 0 (int8); a value beyond the range saturates to +-qmax (fp8
 * codes are never infinite); an infinite amax gives an infinite scale, and
 * then every finite value of its row or group quantizes to 0.
 */
typedef enum normjit_quant {
    NORMJIT_QUANT_NONE = 0,
    NORMJIT_QUANT_TENSOR = 1,
    NORMJIT_QUANT_TOKEN = 2,
    NORMJIT_QUANT_GROUP = 3
} normjit_quant;

/*
 * Where the result is rounded, to match a model's own code bit for bit
 * (x_hat is the fp32 normalized value, before the weight):
 *
 *   NONE   y = round(x_hat * w + b): fp32 throughout, rounded once
 *   LLAMA  y = round(w * round(x_hat, input dtype)) [+ b, rounded again]: HuggingFace
 *          LlamaRMSNorm (also Qwen2/3, Mistral): normalize in fp32, cast to the input
 *          dtype, multiply by the weight in the result dtype
 *   GEMMA  y = round(x_hat * (1 + w) + b): HuggingFace Gemma/Gemma 2/Gemma 3 norms,
 *          fp32 throughout; implies NORMJIT_NORM_WEIGHT_PLUS_ONE
 *
 * The input dtype of the fused ops is residual_dtype (the rounded sum is
 * what is normalized). Quantized outputs use the fp32 value of NONE/GEMMA,
 * and of LLAMA the product w * round(x_hat) in fp32.
 */
typedef enum normjit_cast {
    NORMJIT_CAST_NONE = 0,
    NORMJIT_CAST_LLAMA = 1,
    NORMJIT_CAST_GEMMA = 2
} normjit_cast;

/* What an operation is called ("rmsnorm", "add_layernorm", ...: the CLI's --op names). */
NORMJIT_API const char *normjit_op_name(int op);
/* The normjit_op of a name, or 0. */
NORMJIT_API int normjit_op_from_name(const char *name);
/* The dtype's name ("f16", "fp8e4m3", ...), or NULL. */
NORMJIT_API const char *normjit_dtype_name(int dtype);
/*
 * Parse a quantized-output name, the CLI's --quant values: "none", or
 * "<fp8|fp8e5m2|int8>-<tensor|token|group64|group128>" ("fp8" is e4m3), into
 * the y_dtype, quant mode and group size of normjit_norm_args (0 where not
 * used; "none" gives y_dtype 0). NORMJIT_EINVAL for anything else.
 */
NORMJIT_API int normjit_quant_from_name(const char *name, int32_t *y_dtype, int32_t *quant,
                                        int32_t *group_size);

/* ------------------------------------------------------------------------ */
/* Context                                                                   */

typedef struct normjit_ctx normjit_ctx;

/* Log levels for normjit_log_fn and NORMJIT_LOG; 0 in the options means NORMJIT_LOG_WARN. */
enum { NORMJIT_LOG_ERROR = 1, NORMJIT_LOG_WARN = 2, NORMJIT_LOG_INFO = 3, NORMJIT_LOG_DEBUG = 4 };

/* Receives library messages at or below the context's log level. May be called from any thread. */
typedef void (*normjit_log_fn)(void *user, int level, const char *message);

/* Context option flags. */
#define NORMJIT_CTX_NO_DISK_CACHE 0x1u /* keep compiled kernels in memory only */
#define NORMJIT_CTX_PDL 0x2u /* every launch as with NORMJIT_NORM_PDL */

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
#define NORMJIT_NORM_SCALES_COLUMN_MAJOR 0x2u /* QUANT_GROUP: scales[group * stride + row] */
#define NORMJIT_NORM_SCALES_POW2 0x4u /* QUANT_GROUP: round each scale up to a power of two */
/*
 * Programmatic dependent launch (sm_90 and newer; ignored before): the
 * kernel may start while the previous kernel on the stream finishes; it waits
 * for it just before its first read of an input, and lets the next kernel
 * start once it has read its rows. A context flag (NORMJIT_CTX_PDL) sets it
 * for every call.
 */
#define NORMJIT_NORM_PDL 0x8u

/*
 * Arguments of one forward normalization of `rows` rows of `hidden` elements
 * (see normjit_op for what each op computes).
 *
 * Arithmetic is fp32 throughout; the result is rounded once to y_dtype
 * (unless `cast` says otherwise). Tensors are row-major with a row stride
 * counted in elements (0 means `hidden`, that is dense rows). Pointers must
 * be aligned to their element size; 16-byte aligned pointers and strides get
 * the fastest kernels, others a narrower one.
 *
 * Overlaps: y may be x itself (same pointer, element size and stride) and
 * residual_out may be residual itself (same pointer and stride): engines
 * overwrite both in place. Every other overlap between the tensors a call
 * reads and writes is refused with NORMJIT_EINVAL.
 *
 * Fields are only ever appended; a caller whose struct_size predates a field
 * gets it zero, which is "off" or the default.
 */
typedef struct normjit_norm_args {
    uint32_t struct_size;   /* sizeof(normjit_norm_args) */
    uint32_t flags;         /* NORMJIT_NORM_* bits */
    int64_t rows;           /* >= 0; 0 is a no-op that succeeds (QK_RMSNORM: tokens) */
    int64_t hidden;         /* >= 1 (QK_RMSNORM: head_dim) */
    const void *x;          /* device pointer, rows x hidden, x_dtype */
    void *y;                /* device pointer, rows x hidden, y_dtype */
    int64_t x_row_stride;   /* elements between rows of x; 0: hidden */
    int64_t y_row_stride;   /* elements between rows of y; 0: hidden */
    const void *weight;     /* device pointer, hidden elements of weight_dtype, or NULL (w = 1) */
    const void *bias;       /* LayerNorm only: device pointer, hidden elements, or NULL (b = 0) */
    float *rstd;            /* optional fp32 output, one per row: rsqrt(mean or var + eps) */
    float *mean;            /* optional fp32 output, LayerNorm only: the row mean */
    int32_t x_dtype;        /* NORMJIT_DTYPE_F32, _F16 or _BF16 */
    int32_t y_dtype;        /* F32, F16 or BF16; FP8_E4M3, FP8_E5M2 or INT8 with a quant mode */
    int32_t weight_dtype;   /* dtype of weight and bias: the input dtype or F32; ignored without them */
    float eps;              /* >= 0, finite */

    /* Since 0.2. Fused residual add (ADD_RMSNORM, ADD_LAYERNORM). */
    const void *residual;           /* device pointer, rows x hidden, residual_dtype */
    void *residual_out;             /* rows x hidden, residual_dtype: the rounded sum; may be residual */
    int64_t residual_row_stride;    /* 0: hidden */
    int64_t residual_out_row_stride; /* 0: hidden */
    int32_t residual_dtype;         /* F32, F16 or BF16 (0: x_dtype); the sum's dtype */

    /* Quantized output (see normjit_quant). */
    int32_t quant;          /* normjit_quant */
    const float *scale;     /* TENSOR: the fp32 scale (device pointer); TOKEN: optional amax cap */
    float *scales;          /* TOKEN: rows fp32 scales out; GROUP: rows x hidden / group_size */
    int64_t scales_stride;  /* GROUP: see normjit_quant; 0: hidden / group_size (row-major) or
                               rows (column-major) */
    int32_t group_size;     /* GROUP: 64 or 128 */
    float min_scale;        /* TOKEN and GROUP: smallest scale; 0: 1 / (qmax * 512) for TOKEN
                               (as vLLM), 1e-10 / qmax for GROUP */

    int32_t cast;           /* normjit_cast */
    int32_t reserved0;      /* must be 0 */

    /* QK_RMSNORM: rows are tokens, each of `heads` heads of `hidden` (head_dim) elements. */
    int64_t heads;          /* >= 1 (0: 1) */
    int64_t x_head_stride;  /* elements between the heads of a token in x; 0: hidden */
    int64_t y_head_stride;  /* the same in y; 0: hidden. Row strides default to heads * these */
} normjit_norm_args;

/*
 * Run operation `op` (a normjit_op) on `stream` (a CUstream, NULL for the
 * legacy default stream). The first call for a new (op, dtypes, hidden size,
 * epilogue, alignment, row-count range) compiles or loads a kernel; later
 * calls only launch. Thread safe: any number of threads may launch on one
 * context. During stream capture a kernel that is not loaded yet is not
 * compiled: the call fails with NORMJIT_ENOTREADY (use normjit_prepare() first).
 */
NORMJIT_API int normjit_norm(normjit_ctx *ctx, int op, const normjit_norm_args *args,
                             void *stream);

/* normjit_norm() with NORMJIT_OP_RMSNORM. */
NORMJIT_API int normjit_rmsnorm_fwd(normjit_ctx *ctx, const normjit_norm_args *args, void *stream);

/* Run LayerNorm forward; otherwise as normjit_rmsnorm_fwd(). */
NORMJIT_API int normjit_layernorm_fwd(normjit_ctx *ctx, const normjit_norm_args *args,
                                      void *stream);

/* normjit_norm() with NORMJIT_OP_ADD_RMSNORM, _ADD_LAYERNORM and _QK_RMSNORM. */
NORMJIT_API int normjit_add_rmsnorm_fwd(normjit_ctx *ctx, const normjit_norm_args *args,
                                        void *stream);
NORMJIT_API int normjit_add_layernorm_fwd(normjit_ctx *ctx, const normjit_norm_args *args,
                                          void *stream);
NORMJIT_API int normjit_qk_rmsnorm_fwd(normjit_ctx *ctx, const normjit_norm_args *args,
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
    int32_t weight_dtype;   /* the input dtype or F32 (0: x_dtype) */
    const int64_t *hidden;  /* hidden sizes (QK_RMSNORM: head_dim) to prepare */
    size_t n_hidden;

    /* Since 0.2: the epilogue of the calls to prepare (as in normjit_norm_args). */
    int32_t residual_dtype; /* ADD_* ops; 0: x_dtype */
    int32_t quant;          /* normjit_quant */
    int32_t group_size;     /* QUANT_GROUP */
    int32_t cast;           /* normjit_cast */
    uint32_t norm_flags;    /* the NORMJIT_NORM_* flags of those calls */
    int32_t reserved0;      /* must be 0 */
} normjit_prepare_args;

/* What normjit_prepare() did, counted in distinct kernels. */
typedef struct normjit_prepare_stats {
    uint32_t struct_size; /* sizeof(normjit_prepare_stats): set it; fields past it are not written */
    uint32_t compiled;    /* compiled by NVRTC (stored in the disk cache unless counted
                             in not_cached too) */
    uint32_t from_disk;   /* found in the disk cache */
    uint32_t in_memory;   /* already loaded in this context */
    uint32_t not_cached;  /* compiled or loaded, but not in the disk cache afterwards (it
                             could not be written; the log says why): a warm that must
                             persist kernels fails when this is not 0 */
} normjit_prepare_stats;

/*
 * Compile and load every kernel that calls with these dtypes and hidden sizes
 * would use for 16-byte aligned tensors at any row count (and for any
 * alignment with NORMJIT_PREPARE_ALL_ALIGNMENTS), so that later calls, for
 * example during CUDA graph capture, only launch. On a compile-only context
 * the kernels are compiled into the disk cache. `stats` may be NULL; set its
 * struct_size (the library writes only the fields that fit).
 * Thread safe; a kernel needed by several threads is compiled once.
 */
NORMJIT_API int normjit_prepare(normjit_ctx *ctx, const normjit_prepare_args *args,
                                normjit_prepare_stats *stats);

#ifdef __cplusplus
}
#endif

#endif /* NORMJIT_H */
