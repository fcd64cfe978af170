/*
 * What a call computes (nj_spec: op, dtypes, epilogue, hidden size), what it
 * asks for (nj_request: a spec plus the widest legal vector and the
 * row-count bucket, the in-memory table's key) and what gets compiled for it
 * (nj_variant: a spec plus the launch knobs).
 */
#ifndef NJ_VARIANT_H
#define NJ_VARIANT_H

#include "buf.h"

#include <stddef.h>
#include <stdint.h>

/* Largest hidden size accepted: every distinct size compiles its own kernel. */
#define NJ_MAX_HIDDEN (1 << 24)
/* Largest vector access, in bytes, of any tensor. */
#define NJ_MAX_ACCESS_BYTES 16
/* Bytes of a row one thread may hold in registers (32 registers). */
#define NJ_MAX_THREAD_BYTES 128
#define NJ_MAX_CTA_THREADS 1024
#define NJ_MAX_CLUSTER 8
#define NJ_MAX_SM_THREADS 2048
/* The largest normjit_dtype value. */
#define NJ_MAX_DTYPE NORMJIT_DTYPE_INT8

/* Where a row lives between the reduction and the output: registers, read again (stream),
   or registers filled from shared memory that a persistent CTA copied its next rows into
   while it worked on the current ones (staged; kernel_src/common.cuh). */
enum { NJ_STORAGE_REG = 0, NJ_STORAGE_STREAM = 1, NJ_STORAGE_STAGED = 2 };
/* When register storage reads the weights and bias: at each vector's output, or with the row
   (their latency hidden behind the row's; kernel_src/common.cuh, NJ_WLOAD). */
enum { NJ_WLOAD_LATE = 0, NJ_WLOAD_EARLY = 1 };

/* Row-count ranges that may use different launch knobs (but never a different reduction). */
enum { NJ_BUCKET_DECODE = 0, NJ_BUCKET_PREFILL = 1, NJ_BUCKET_LARGE = 2, NJ_BUCKETS = 3 };
#define NJ_DECODE_MAX_ROWS 64
#define NJ_PREFILL_MAX_ROWS 16384

/* What is computed. Every field is part of the kernel's identity. */
typedef struct nj_spec {
    int op;         /* normjit_op */
    int tx, ty, tw; /* normjit_dtype of x, y, weight/bias */
    int tr;         /* residual (and sum) dtype of the fused add, else 0 */
    int quant;      /* normjit_quant */
    int group;      /* NORMJIT_QUANT_GROUP: 64 or 128, else 0 */
    int pow2;       /* NORMJIT_QUANT_GROUP: scales rounded up to powers of two */
    int cast;       /* normjit_cast */
    int64_t hidden; /* QK-norm: head_dim */
} nj_spec;

typedef struct nj_request {
    nj_spec s;
    int vec;    /* widest vector (elements) the pointers, strides and hidden size allow */
    int bucket; /* NJ_BUCKET_* */
} nj_request;

/* The knobs the kernel templates take (see kernel_src/common.cuh). */
typedef struct nj_knobs {
    int vec;     /* elements per vector access */
    int tpr;     /* threads per row, per CTA: a power of two up to 32, or a multiple of 32 */
    int rpc;     /* rows per CTA */
    int cluster; /* CTAs sharing one row through a thread-block cluster (sm_90+) */
    int storage; /* NJ_STORAGE_* */
    int occ;     /* CTAs per SM the compiler must fit (__launch_bounds__), 0: its choice */
    int wload;   /* NJ_WLOAD_*: from the knobs and bucket (nj_plan_bucket_knobs); no arithmetic */
} nj_knobs;

typedef struct nj_variant {
    nj_spec s;
    nj_knobs k;
} nj_variant;

/* A variant plus the launch-time choice of grid size. */
typedef struct nj_plan {
    nj_variant v;
    int ctas_per_sm; /* 0: one CTA (cluster) per row group; N: at most N per SM, looping */
} nj_plan;

int nj_dtype_size(int dtype);
/* "f32", "f16", "bf16", "fp8e4m3", "fp8e5m2", "int8", or NULL. */
const char *nj_dtype_name(int dtype);
int nj_dtype_parse(const char *s); /* 0 if unknown */
/* 1 for the dtypes a tensor of values may have (f32, f16, bf16); 0 for codes and unknowns. */
int nj_dtype_is_float(int dtype);
/* 1 for the quantized-code dtypes (fp8e4m3, fp8e5m2, int8). */
int nj_dtype_is_code(int dtype);
/* The largest magnitude a code dtype holds (448, 57344, 127), 0 for others. */
float nj_dtype_qmax(int dtype);

const char *nj_op_name(int op); /* "rmsnorm", ..., or NULL */
int nj_op_parse(const char *s); /* 0 if unknown */
const char *nj_storage_name(int storage); /* "reg", "stream", "staged", or NULL */
const char *nj_quant_name(int quant); /* "none", "tensor", "token", "group", or NULL */
const char *nj_cast_name(int cast);   /* "none", "llama", "gemma", or NULL */
int nj_bucket_of_rows(int64_t rows);
const char *nj_bucket_name(int bucket);

/*
 * Parse a --quant name ("none", "fp8-token", "int8-tensor", "fp8e5m2-group128", ...):
 * 1 and the y dtype (0 for "none"), quant mode and group size; 0 if malformed.
 */
int nj_quant_parse(const char *name, int *ty, int *quant, int *group);

/* The dtype the op normalizes: the residual's for the fused add, else x's. */
int nj_spec_input_dtype(const nj_spec *s);
int nj_spec_equal(const nj_spec *a, const nj_spec *b);
/* 1 if the spec has an epilogue beyond the plain op (residual, quant, cast). */
int nj_spec_has_epilogue(const nj_spec *s);

/* The in-memory table's key of a request: one word, never 0. */
uint64_t nj_request_key(const nj_request *r);
/* The request a variant answers for one bucket (the widest vector it serves). */
void nj_request_of_variant(const nj_variant *v, int bucket, nj_request *r);
/*
 * Same configuration: the same spec and vector width, whatever the bucket.
 * Every bucket of one configuration must reduce a row the same way.
 */
int nj_request_same_config(const nj_request *a, const nj_request *b);

/*
 * The batch-invariance rule: two knob sets add a row's numbers in the same
 * order iff they agree on vec, tpr, cluster and storage (rows per CTA,
 * occupancy and grid size only change which CTA does the work). Staged and
 * register storage count as one: they hold the same vectors in the same
 * registers and differ only in the path the vectors take from memory.
 */
int nj_knobs_same_layout(const nj_knobs *a, const nj_knobs *b);

/* Vectors per row, per CTA of the cluster, and per thread. */
int nj_variant_vectors_per_thread(const nj_variant *v);

/* Dynamic shared memory a CTA of the variant takes at launch: staged storage's two buffers,
   else 0. */
int nj_variant_stage_bytes(const nj_variant *v);

/* Dynamic shared memory a kernel may take without opting in (cuFuncSetAttribute). */
#define NJ_DEFAULT_DYNAMIC_SMEM (48 * 1024)

/* The most dynamic shared memory a CTA may ask for on compute capability `arch` (opt-in). */
int nj_arch_max_dynamic_smem(int arch);

/* 1 if staged storage can copy this variant's vectors on `arch` (vector widths, shared
   memory); a fused op that inherits its plain op's staged plan may not fit. No error set. */
int nj_variant_staged_fits(const nj_variant *v, int arch);

int nj_variant_equal(const nj_variant *a, const nj_variant *b);

#define NJ_KERNEL_NAME_MAX 160

/*
 * The kernel's symbol name, unique per variant, e.g.
 * "nj_rmsnorm_f16_f16_f16_h4096_v8_t128_r1_c1_o0_reg"; early weights append
 * "_we", an epilogue "_r<dtype>", "_q<mode>[<group>][p2]" and "_c<cast>".
 */
void nj_variant_name(const nj_variant *v, char *out, size_t size);
/* The knobs as "key=value" words, e.g. "op=rmsnorm x=f16 ... storage=reg" (and
   "wload=early" when so). */
void nj_variant_describe(const nj_variant *v, nj_buf *out);
/* Parse what nj_variant_describe wrote; NORMJIT_EFORMAT with a message if malformed. */
int nj_variant_parse(const char *s, nj_variant *v);

/* The fields of a described variant, as bits of nj_variant_parse_fields' *seen. */
enum {
    NJ_VF_OP = 1u << 0, NJ_VF_X = 1u << 1, NJ_VF_Y = 1u << 2, NJ_VF_W = 1u << 3,
    NJ_VF_HIDDEN = 1u << 4,
    NJ_VF_KNOBS = 0x7e0u /* vec, tpr, rpc, cluster, occ, storage */
};
#define NJ_VARIANT_SKIP_UNKNOWN 0x1u /* ignore fields of later versions */

/*
 * The one parser of described variants: the fields present (bits of *seen),
 * each valid and at most once, any missing. nj_variant_parse requires all of
 * the variant's; `normjit cache` lists what a key names.
 */
int nj_variant_parse_fields(const char *s, nj_variant *v, unsigned flags, unsigned *seen);
/*
 * NORMJIT_OK if the variant is legal on compute capability `arch`, else
 * NORMJIT_EUNSUPPORTED with a message saying which knob is wrong.
 */
int nj_variant_check(const nj_variant *v, int arch);

/*
 * Bytes one call moves at the least: x and y (and the residual read and the
 * sum written) once per element, the weight and bias once, the scales.
 */
double nj_spec_bytes(const nj_spec *s, int64_t rows, int has_weight, int has_bias);

/* Epilogue words for a tuning record: "r=bf16,q=group128,p2,c=llama", or "-" when none. */
void nj_spec_epilogue_word(const nj_spec *s, char *out, size_t size);
/* Parse that word into `s` (op, dtypes and hidden are left alone); 0 if malformed. */
int nj_spec_parse_epilogue_word(const char *word, nj_spec *s);

#endif
