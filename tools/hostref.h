/*
 * Host-side numerics shared by the tool (bench, tune) and the tests: a small
 * random generator, fp16/bf16 conversions and the double-precision reference.
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
 * Store `v` (rounded to the dtype: f32, f16, bf16) at element i of a host
 * array; read element i of any dtype (codes too: the value an fp8 or int8
 * code stands for) as a double.
 */
void nj_host_put(void *base, int dtype, size_t i, double v);
double nj_host_get(const void *base, int dtype, size_t i);

/*
 * Reference forward pass of one row in double precision:
 * op = NORMJIT_OP_RMSNORM or _LAYERNORM; w, b may be NULL.
 */
void nj_reference_row(int op, const double *x, const double *w, const double *b, int64_t hidden,
                      double eps, int weight_plus_one, double *y, double *rstd, double *mean);

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
