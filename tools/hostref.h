/*
 * Host-side numerics shared by the tool (bench, tune) and the tests: a small
 * random generator, conversions to and from every normjit dtype, and the
 * double-precision reference of every operation and epilogue (fused add,
 * cast modes, QK-norm addressing, quantization and its scale rules), each
 * rule a small function that tests/test_unit_hostref.c checks on its own.
 */
#ifndef NJ_HOSTREF_H
#define NJ_HOSTREF_H

#include "normjit.h"

#include <stddef.h>
#include <stdint.h>

typedef struct nj_rng {
    uint64_t s;
} nj_rng;
void nj_rng_init(nj_rng *r, uint64_t seed);
uint64_t nj_rng_next(nj_rng *r);
double nj_rng_uniform(nj_rng *r);  /* [0, 1) */
double nj_rng_normal(nj_rng *r);   /* mean 0, variance 1 */

uint16_t nj_f32_to_f16(float f);
float nj_f16_to_f32(uint16_t h);
uint16_t nj_f32_to_bf16(float f);
float nj_bf16_to_f32(uint16_t h);

/*
 * OCP fp8 and symmetric int8, as the kernels' saturating conversions give
 * them: round to nearest even; beyond the finite range (infinity included)
 * saturate to +-448 (e4m3), +-57344 (e5m2) or +-127 (int8); NaN gives the
 * NaN code 0x7f (fp8) or 0 (int8).
 */
uint8_t nj_f32_to_e4m3(float f);
uint8_t nj_f32_to_e5m2(float f);
int8_t nj_f32_to_int8(float f);
float nj_e4m3_to_f32(uint8_t q);
float nj_e5m2_to_f32(uint8_t q);

/* Bytes of one element of a dtype (1 for FP8_E4M3, FP8_E5M2 and INT8); 0 if unknown. */
int nj_host_dtype_size(int dtype);

/*
 * Store `v` at element i of a host array of any dtype: rounded as the
 * conversions above (through fp32 for f16 and bf16); read element i as a
 * double (the decoded code for the quantized dtypes).
 */
void nj_host_put(void *base, int dtype, size_t i, double v);
double nj_host_get(const void *base, int dtype, size_t i);

/* An fp32 value rounded to a dtype and read back: what a kernel stores, as a float. */
float nj_round_to(int dtype, float v);

/* ------------------------------------------------------------------------ */
/* Fused residual add and QK-norm addressing                                 */

/*
 * One element of the fused add: the fp32 sum of the two inputs (each exact
 * in fp32) rounded once to the residual dtype, as the kernels form it.
 */
float nj_ref_fused_sum(int residual_dtype, float x, float residual);

/*
 * A QK_RMSNORM view's strides in elements with the header's defaults
 * applied: head stride 0 is hidden, row (token) stride 0 is heads * head stride.
 */
void nj_qk_strides(int64_t hidden, int64_t heads, int64_t *head_stride, int64_t *row_stride);
/* Element i of head h of token t. */
int64_t nj_qk_offset(int64_t t, int64_t h, int64_t i, int64_t row_stride, int64_t head_stride);

/* ------------------------------------------------------------------------ */
/* Quantization: the scale rules of normjit_quant                            */

/* The largest code: 448 (FP8_E4M3), 57344 (FP8_E5M2), 127 (INT8); 0 for other dtypes. */
double nj_quant_qmax(int dtype);
/* A quantized dtype's code of an fp32 value (the conversions above), and its value. */
uint8_t nj_quant_encode(int dtype, float v);
double nj_quant_decode(int dtype, uint8_t code);
int nj_quant_is_nan(int dtype, uint8_t code);
/*
 * A non-NaN code's position on the number line: codes one step apart differ
 * by 1 and both zeros are 0 (fp8 infinities sit one past the largest finite).
 */
int nj_quant_ordinal(int dtype, uint8_t code);
/* The reciprocal of a scale as the kernels use it: 1/s rounded to fp32. */
float nj_quant_inv_scale(double scale);
/* The code of v under a reciprocal scale: sat(rne(fl32(v * inv))). */
uint8_t nj_quant_code(int dtype, double v, float inv_scale);
/*
 * The smallest scale of a row or group: `given` when it is positive, else
 * 1 / (qmax * 512) for TOKEN (as vLLM) and 1e-10 / qmax for GROUP.
 */
double nj_quant_min_scale(int quant, int dtype, float given);
/* max |v| over n values, ignoring NaN (fmax from 0). */
double nj_amax(const double *v, int64_t n);
/* The smallest power of two >= s (s > 0; infinity stays infinite). */
double nj_pow2_ceil(double s);
/*
 * The TOKEN / GROUP scale of an amax: max(min(amax, *cap) / qmax, min_scale),
 * then rounded up to a power of two when pow2. cap may be NULL. Monotone in
 * amax, so bounds on amax give bounds on the scale.
 */
double nj_quant_scale(double amax, const double *cap, double qmax, double min_scale, int pow2);
/* GROUP scales: the stride with its default (0: hidden / group_size row-major, rows column-major). */
int64_t nj_group_scales_stride(int64_t rows, int64_t hidden, int64_t group_size, int column_major,
                               int64_t given);
/* Index of the scale of group g of row r. */
int64_t nj_group_scale_index(int64_t r, int64_t g, int64_t stride, int column_major);

/*
 * Reference forward pass of one row in double precision:
 * op = NORMJIT_OP_RMSNORM or _LAYERNORM; w, b may be NULL.
 */
void nj_reference_row(int op, const double *x, const double *w, const double *b, int64_t hidden,
                      double eps, int weight_plus_one, double *y, double *rstd, double *mean);

/* ------------------------------------------------------------------------ */
/* The reference of one row with its epilogue                                */

/* What is normalized and how the result is rounded (see normjit_cast). */
typedef struct nj_ref_epilogue {
    int op;       /* any normjit_op: ADD_* normalize like their plain op, QK_RMSNORM like RMSNORM */
    int in_dtype; /* dtype of what is normalized: x_dtype, or residual_dtype for the ADD ops */
    int y_dtype;  /* F32, F16, BF16 or a quantized dtype */
    int cast;     /* normjit_cast */
    int plus_one; /* NORMJIT_NORM_WEIGHT_PLUS_ONE (NORMJIT_CAST_GEMMA implies it) */
    double eps;
} nj_ref_epilogue;

/* mean (0 for the RMSNorm ops) and rstd of one row, in double. */
void nj_ref_stats(int op, const double *x, int64_t n, double eps, double *mean, double *rstd);

/*
 * x_hat as fp32 code computes it from the row's statistics (the model code
 * and the kernels): fl32(fl32(x - fl32(mean)) * fl32(rstd)).
 */
float nj_ref_xhat32(double x, double mean, double rstd);

/*
 * y of one element as the formula of the cast mode gives it, every step in
 * fp32 as the model code does, rounded to y_dtype (F32, F16 or BF16):
 *   NONE   round(x_hat * w' [+ b])         w' = w, or fl32(1 + w) with plus_one
 *   LLAMA  round(fl32(w' * round(x_hat, in_dtype))), then [round(+ b)]
 *   GEMMA  round(x_hat * fl32(1 + w) [+ b])
 * w is 1 without a weight; b is NULL without a bias.
 */
double nj_ref_model_y(const nj_ref_epilogue *e, float xhat32, double w, const double *b);

/*
 * The fp32 value a quantized output reads: x_hat * w' [+ b] (NONE, GEMMA;
 * x_hat in double) or w' * round(x_hat32, in_dtype) [+ b] (LLAMA), rounded
 * to fp32 (so that it overflows where the kernel's does). *alt receives the
 * value under the other rounding of x_hat where fp32 error of the kernel
 * (NJ_REF_XHAT_SLACK relative) could round it the other way, else the value.
 */
double nj_ref_quant_input(const nj_ref_epilogue *e, double xhat, float xhat32, double w,
                          const double *b, double *alt);
#define NJ_REF_XHAT_SLACK 1e-6

/* One row of every value above; NULL arrays are not filled. */
typedef struct nj_ref_row_out {
    double *exact; /* double precision, rounded only where the cast mode rounds (LLAMA's x_hat) */
    double *y;     /* nj_ref_model_y (y_dtype F32, F16 or BF16) */
    double *q;     /* nj_ref_quant_input */
    double *q_alt; /* its alternative */
    double mean, rstd;
} nj_ref_row_out;
void nj_ref_row(const nj_ref_epilogue *e, const double *x, const double *w, const double *b,
                int64_t n, nj_ref_row_out *out);

/*
 * Tolerance on max |y - ref| / max |ref| for an output dtype; for quantized
 * codes, on the error in steps of the code grid (one step).
 */
double nj_tolerance(int y_dtype);

/*
 * Normalized error of one output row against the reference:
 * max |y - ref| / max |ref|, or INFINITY if any y is NaN.
 */
double nj_row_error(const void *y, int y_dtype, const double *ref, int64_t hidden);

#endif
