/*
 * What a call asks for (nj_request, the in-memory table's key) and what gets
 * compiled for it (nj_variant: op, dtypes, hidden size and the launch knobs).
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

/* Where a row lives between the reduction and the output. */
enum { NJ_STORAGE_REG = 0, NJ_STORAGE_STREAM = 1 };

/* Row-count ranges that may use different launch knobs (but never a different reduction). */
enum { NJ_BUCKET_DECODE = 0, NJ_BUCKET_PREFILL = 1, NJ_BUCKET_LARGE = 2, NJ_BUCKETS = 3 };
#define NJ_DECODE_MAX_ROWS 64
#define NJ_PREFILL_MAX_ROWS 16384

typedef struct nj_request {
    int op;         /* normjit_op */
    int tx, ty, tw; /* normjit_dtype of x, y, weight/bias */
    int vec;        /* widest vector (elements) the pointers, strides and hidden size allow */
    int bucket;     /* NJ_BUCKET_* */
    int64_t hidden;
} nj_request;

/* The knobs the kernel templates take (see kernel_src/common.cuh). */
typedef struct nj_knobs {
    int vec;     /* elements per vector access */
    int tpr;     /* threads per row, per CTA: a power of two up to 32, or a multiple of 32 */
    int rpc;     /* rows per CTA */
    int cluster; /* CTAs sharing one row through a thread-block cluster (sm_90+) */
    int storage; /* NJ_STORAGE_* */
    int occ;     /* CTAs per SM the compiler must fit (__launch_bounds__), 0: its choice */
} nj_knobs;

typedef struct nj_variant {
    int op, tx, ty, tw;
    int64_t hidden;
    nj_knobs k;
} nj_variant;

/* A variant plus the launch-time choice of grid size. */
typedef struct nj_plan {
    nj_variant v;
    int ctas_per_sm; /* 0: one CTA (cluster) per row group; N: at most N per SM, looping */
} nj_plan;

int nj_dtype_size(int dtype);
const char *nj_dtype_name(int dtype); /* "f32", "f16", "bf16", or NULL */
int nj_dtype_parse(const char *s);    /* 0 if unknown */
const char *nj_op_name(int op);       /* "rmsnorm", "layernorm", or NULL */
int nj_op_parse(const char *s);       /* 0 if unknown */
int nj_bucket_of_rows(int64_t rows);
const char *nj_bucket_name(int bucket);

uint64_t nj_request_key(const nj_request *r);
/* The request a variant answers for one bucket (the widest vector it serves). */
void nj_request_of_variant(const nj_variant *v, int bucket, nj_request *r);

/* Vectors per row, per CTA of the cluster, and per thread. */
int nj_variant_vectors_per_thread(const nj_variant *v);

int nj_variant_equal(const nj_variant *a, const nj_variant *b);

/* The kernel's symbol name, unique per variant, e.g. "nj_rmsnorm_f16_f16_f16_h4096_v8_t128_r1_c1_o0_reg". */
void nj_variant_name(const nj_variant *v, char *out, size_t size);
/* The knobs as "key=value" words, e.g. "op=rmsnorm x=f16 ... storage=reg". */
void nj_variant_describe(const nj_variant *v, nj_buf *out);
/* Parse what nj_variant_describe wrote; NORMJIT_EFORMAT with a message if malformed. */
int nj_variant_parse(const char *s, nj_variant *v);
/*
 * NORMJIT_OK if the variant is legal on compute capability `arch`, else
 * NORMJIT_EUNSUPPORTED with a message saying which knob is wrong.
 */
int nj_variant_check(const nj_variant *v, int arch);

#endif
