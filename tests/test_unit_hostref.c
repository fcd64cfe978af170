/*
 * The host numerics of tools/hostref.h against an independent formulation:
 * rounding by scaling to an integer (frexp, ldexp, nearbyint in double, exact
 * for every format here) instead of bit manipulation. Exhaustive where the
 * format is small (every fp8 code, every fp16 and bf16 value and the
 * midpoints between neighbours), millions of random floats elsewhere, plus
 * the scale rules and the epilogue formulas on hand-made rows.
 */
#include "testutil.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#define F32 NORMJIT_DTYPE_F32
#define F16 NORMJIT_DTYPE_F16
#define BF16 NORMJIT_DTYPE_BF16
#define E4M3 NORMJIT_DTYPE_FP8_E4M3
#define E5M2 NORMJIT_DTYPE_FP8_E5M2
#define INT8 NORMJIT_DTYPE_INT8

/* Random floats per format: bit patterns (every exponent) and values near the format's range. */
#define N_RANDOM 1000000

/*
 * v rounded to nearest even in a binary format of p significant bits whose
 * smallest normal is 2^emin, with an unbounded exponent above.
 */
static double ref_round(double v, int p, int emin)
{
    int e;
    if (isnan(v) || isinf(v) || v == 0.0)
        return v;
    frexp(v, &e); /* the leading bit of |v| is 2^(e - 1) */
    if (e - 1 < emin)
        e = emin + 1; /* subnormal: the quantum stays 2^(emin + 1 - p) */
    return ldexp(nearbyint(ldexp(v, p - e)), e - p);
}

typedef struct format {
    const char *name;
    int dtype;
    int p, emin;
    double max;   /* largest finite value */
    int saturate; /* beyond max: +-max (satfinite), else +-inf */
} format;

static const format formats[] = {
    {"f16", F16, 11, -14, 65504.0, 0},
    {"bf16", BF16, 8, -126, 0x1.fep127, 0},
    {"e4m3", E4M3, 4, -6, 448.0, 1},
    {"e5m2", E5M2, 3, -14, 57344.0, 1},
};
#define N_FORMATS (sizeof formats / sizeof formats[0])

/* What a float should become in a format, by the independent rule. */
static double expected(const format *f, float x)
{
    double r;
    if (isnan(x))
        return NAN;
    r = ref_round(x, f->p, f->emin);
    if (fabs(r) > f->max)
        r = copysign(f->saturate ? f->max : INFINITY, r);
    return r;
}

static double ref_int8(double v)
{
    double fl, d, r;
    if (isnan(v))
        return 0.0;
    fl = floor(v);
    d = v - fl;
    r = d > 0.5 ? fl + 1 : d < 0.5 ? fl : (fmod(fl, 2.0) == 0.0 ? fl : fl + 1);
    return fmax(-127.0, fmin(127.0, r));
}

/* Encode and decode through hostref. */
static uint32_t encode(int dtype, float x)
{
    switch (dtype) {
    case F16:
        return nj_f32_to_f16(x);
    case BF16:
        return nj_f32_to_bf16(x);
    default:
        return nj_quant_encode(dtype, x);
    }
}

static double decode(int dtype, uint32_t code)
{
    switch (dtype) {
    case F16:
        return nj_f16_to_f32((uint16_t)code);
    case BF16:
        return nj_bf16_to_f32((uint16_t)code);
    default:
        return nj_quant_decode(dtype, (uint8_t)code);
    }
}

static int same(double a, double b)
{
    return (isnan(a) && isnan(b)) || (a == b && signbit(a) == signbit(b));
}

static int check_one(const format *f, float x, long *failures)
{
    const uint32_t code = encode(f->dtype, x);
    const double got = decode(f->dtype, code), want = expected(f, x);
    if (same(got, want))
        return 1;
    if (++*failures <= 10)
        print_message("%s: %a (%.9g) -> code 0x%x = %.9g, expected %.9g\n", f->name, (double)x,
                      (double)x, code, got, want);
    return 0;
}

static float float_of(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Every fp8 code decodes to the value its fields say, and encodes back to itself. */
static void test_fp8_every_code(void **state)
{
    static const struct {
        int dtype, man, bias;
    } fp8[] = {{E4M3, 3, 7}, {E5M2, 2, 15}};
    size_t k;
    (void)state;
    for (k = 0; k < 2; k++) {
        const int dtype = fp8[k].dtype, man = fp8[k].man, bias = fp8[k].bias;
        const int exp_max = (1 << (8 - 1 - man)) - 1;
        double prev = -1.0;
        int c;
        for (c = 0; c < 256; c++) {
            const int e = (c & 0x7f) >> man, m = c & ((1 << man) - 1);
            const double got = nj_quant_decode(dtype, (uint8_t)c);
            double want;
            if (dtype == E4M3 && e == exp_max && m == (1 << man) - 1)
                want = NAN; /* e4m3 has no infinity: only S.1111.111 is NaN */
            else if (dtype == E5M2 && e == exp_max)
                want = m ? NAN : INFINITY;
            else if (e == 0)
                want = ldexp(m, 1 - bias - man);
            else
                want = ldexp((1 << man) + m, e - bias - man);
            if (c & 0x80)
                want = -want;
            if (!same(got, want))
                fail_msg("dtype %d code 0x%02x decodes to %g, expected %g", dtype, c, got, want);
            assert_int_equal(nj_quant_is_nan(dtype, (uint8_t)c), isnan(want));
            if (isnan(want))
                assert_int_equal(nj_quant_encode(dtype, (float)got), 0x7f);
            else if (isinf(want))
                /* satfinite: infinity saturates to the largest finite code */
                assert_int_equal(nj_quant_encode(dtype, (float)got), (c & 0x80) | 0x7b);
            else
                assert_int_equal(nj_quant_encode(dtype, (float)got), c);
            /* Magnitudes grow with the code, so neighbouring codes are one step apart. */
            if (c < 0x80 && !isnan(got)) {
                assert_true(got > prev || c == 0);
                assert_int_equal(nj_quant_ordinal(dtype, (uint8_t)c), c);
                assert_int_equal(nj_quant_ordinal(dtype, (uint8_t)(c | 0x80)), -c);
                prev = got;
            }
        }
    }
    /* Anchors from the OCP specification. */
    assert_true(nj_e4m3_to_f32(0x7e) == 448.0f);
    assert_true(nj_e4m3_to_f32(0x38) == 1.0f);
    assert_true(nj_e4m3_to_f32(0x08) == ldexpf(1, -6));
    assert_true(nj_e4m3_to_f32(0x01) == ldexpf(1, -9));
    assert_true(nj_e5m2_to_f32(0x7b) == 57344.0f);
    assert_true(nj_e5m2_to_f32(0x3c) == 1.0f);
    assert_true(nj_e5m2_to_f32(0x04) == ldexpf(1, -14));
    assert_true(nj_e5m2_to_f32(0x01) == ldexpf(1, -16));
    assert_true(isinf(nj_e5m2_to_f32(0x7c)) && nj_e5m2_to_f32(0xfc) < 0);
    assert_true(isnan(nj_e5m2_to_f32(0x7d)));
}

/*
 * For every pair of neighbouring finite codes of every format: the midpoint
 * (exact in fp32) rounds to the even code, the floats just beside it round
 * to the nearer code. Every 16-bit pattern of f16 and bf16 round-trips.
 */
static void test_every_value_and_midpoint(void **state)
{
    size_t k;
    long failures = 0, checked = 0;
    (void)state;
    for (k = 0; k < N_FORMATS; k++) {
        const format *f = &formats[k];
        const uint32_t n_codes = nj_host_dtype_size(f->dtype) == 1 ? 0x80u : 0x8000u;
        uint32_t c;
        for (c = 0; c < n_codes; c++) {
            const double lo = decode(f->dtype, c);
            int sign;
            if (isnan(lo) || isinf(lo))
                continue;
            for (sign = 0; sign < 2; sign++) {
                const float s = sign ? -1.0f : 1.0f;
                const uint32_t sbit = sign ? (n_codes == 0x80u ? 0x80u : 0x8000u) : 0;
                uint32_t want;
                float mid;
                double hi;
                if (encode(f->dtype, s * (float)lo) != (c | sbit) && ++failures <= 10)
                    print_message("%s: %g does not round-trip to 0x%x\n", f->name, s * lo,
                                  c | sbit);
                checked++;
                hi = decode(f->dtype, c + 1);
                if (lo == f->max)
                    hi = f->max + ldexp(1.0, ilogb(f->max) - (f->p - 1)); /* one step past max */
                else if (isnan(hi) || isinf(hi))
                    continue;
                mid = s * (float)((lo + hi) / 2.0);
                checked += 3;
                /* Ties to even; past max: infinity, or max when saturating. */
                want = (c & 1) ? c + 1 : c;
                if (lo == f->max)
                    want = f->saturate ? c : c + 1;
                if (encode(f->dtype, mid) != (want | sbit) && ++failures <= 10)
                    print_message("%s: midpoint %a -> 0x%x, expected 0x%x\n", f->name,
                                  (double)mid, encode(f->dtype, mid), want | sbit);
                if (encode(f->dtype, nextafterf(mid, 0.0f)) != (c | sbit) && ++failures <= 10)
                    print_message("%s: below midpoint %a -> 0x%x\n", f->name, (double)mid,
                                  encode(f->dtype, nextafterf(mid, 0.0f)));
                want = lo == f->max && f->saturate ? c : c + 1;
                if (encode(f->dtype, nextafterf(mid, s * INFINITY)) != (want | sbit) &&
                    ++failures <= 10)
                    print_message("%s: above midpoint %a -> 0x%x\n", f->name, (double)mid,
                                  encode(f->dtype, nextafterf(mid, s * INFINITY)));
            }
        }
    }
    print_message("%ld values and midpoints checked\n", checked);
    assert_int_equal(failures, 0);
}

/* Random floats: any bit pattern, and values spread over each format's exponents. */
static void test_random_floats(void **state)
{
    nj_rng rng;
    size_t k;
    long failures = 0, i;
    (void)state;
    nj_rng_init(&rng, nj_test_seed());
    for (k = 0; k < N_FORMATS; k++) {
        const format *f = &formats[k];
        const int e_lo = f->emin - f->p - 2, e_hi = ilogb(f->max) + 3;
        for (i = 0; i < N_RANDOM; i++) {
            float x;
            if (i & 1) {
                x = float_of((uint32_t)nj_rng_next(&rng));
            } else {
                const int e = e_lo + (int)(nj_rng_next(&rng) % (uint64_t)(e_hi - e_lo + 1));
                x = (float)ldexp(1.0 + nj_rng_uniform(&rng), e);
                if (nj_rng_next(&rng) & 1)
                    x = -x;
            }
            check_one(f, x, &failures);
        }
    }
    for (i = 0; i < N_RANDOM; i++) {
        const float x = (i & 1) ? float_of((uint32_t)nj_rng_next(&rng))
                                : (float)(600.0 * nj_rng_uniform(&rng) - 300.0);
        const double got = nj_f32_to_int8(x);
        if (got != ref_int8(x) && ++failures <= 10)
            print_message("int8: %a -> %g, expected %g\n", (double)x, got, ref_int8(x));
    }
    if (failures)
        fail_msg("%ld random conversions wrong (seed %llu)", failures,
                 (unsigned long long)nj_test_seed());
}

/* The edges of every format: zeros, infinities, NaN, max, just past max, subnormals, ties. */
static void test_boundaries(void **state)
{
    static const float common[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, FLT_MAX, -FLT_MAX,
                                   FLT_MIN, -FLT_MIN, FLT_TRUE_MIN, -FLT_TRUE_MIN, 1.0f, -1.0f};
    static const struct {
        int dtype;
        float in;
        double out;
    } hand[] = {
        {E4M3, 448.0f, 448.0},     {E4M3, 464.0f, 448.0},        {E4M3, 1e30f, 448.0},
        {E4M3, -INFINITY, -448.0}, {E4M3, 0x1p-10f, 0.0},        {E4M3, 0x1.000002p-10f, 0x1p-9},
        {E4M3, 0x1.8p-9f, 0x1p-8}, {E4M3, 17.0f, 16.0},          {E4M3, 19.0f, 20.0},
        {E5M2, 57344.0f, 57344.0}, {E5M2, 61440.0f, 57344.0},    {E5M2, INFINITY, 57344.0},
        {E5M2, 0x1p-17f, 0.0},     {E5M2, 0x1.000002p-17f, 0x1p-16},
        {F16, 65504.0f, 65504.0},  {F16, 65519.99f, 65504.0},    {F16, 65520.0f, INFINITY},
        {F16, 0x1p-25f, 0.0},      {F16, 0x1.000002p-25f, 0x1p-24}, {F16, 0x1.8p-24f, 0x1p-23},
        {BF16, 0x1.fep127f, 0x1.fep127}, {BF16, FLT_MAX, INFINITY}, {BF16, FLT_TRUE_MIN, 0.0},
        {BF16, 0x1.01p0f, 0x1p0},  {BF16, 0x1.03p0f, 0x1.04p0},
        {INT8, 0.5f, 0.0},         {INT8, 1.5f, 2.0},            {INT8, 2.5f, 2.0},
        {INT8, -0.5f, 0.0},        {INT8, -2.5f, -2.0},          {INT8, 126.5f, 126.0},
        {INT8, 127.5f, 127.0},     {INT8, -128.0f, -127.0},      {INT8, INFINITY, 127.0},
        {INT8, -INFINITY, -127.0}, {INT8, NAN, 0.0},             {INT8, 0x1.fffffep-2f, 0.0},
    };
    long failures = 0;
    size_t k, i;
    (void)state;
    for (k = 0; k < N_FORMATS; k++)
        for (i = 0; i < sizeof common / sizeof common[0]; i++)
            check_one(&formats[k], common[i], &failures);
    for (i = 0; i < sizeof hand / sizeof hand[0]; i++) {
        const double got = decode(hand[i].dtype, encode(hand[i].dtype, hand[i].in));
        if (!same(got, hand[i].out) && !(hand[i].out == 0.0 && got == 0.0) && ++failures <= 10)
            print_message("dtype %d: %a -> %a, expected %a\n", hand[i].dtype, (double)hand[i].in,
                          got, hand[i].out);
    }
    /* NaN codes are the canonical ones. */
    assert_int_equal(nj_f32_to_e4m3(NAN), 0x7f);
    assert_int_equal(nj_f32_to_e5m2(-NAN), 0x7f);
    assert_int_equal(nj_f32_to_e4m3(-0.0f), 0x80);
    assert_true(isnan(nj_round_to(F16, NAN)) && isnan(nj_round_to(BF16, NAN)));
    assert_true(nj_round_to(F32, 0.1f) == 0.1f);
    assert_true(nj_round_to(F16, 0.1f) == nj_f16_to_f32(nj_f32_to_f16(0.1f)));
    assert_true(nj_round_to(INT8, 3.5f) == 4.0f);
    assert_int_equal(failures, 0);
}

/* The fused add rounds the fp32 sum once: not the exact sum, and not each input separately. */
static void test_fused_sum(void **state)
{
    (void)state;
    /* A tie of f16 in fp32 goes to even... */
    assert_true(nj_ref_fused_sum(F16, 1.0f, 0x1p-11f) == 1.0f);
    assert_true(nj_ref_fused_sum(F16, 1.0f, 0x1.2p-11f) == 0x1.004p0f);
    /* ...and an exact sum just above the tie becomes the tie in fp32 first. */
    assert_true(nj_ref_fused_sum(F16, 0x1.002p0f, 0x1p-30f) == 1.0f);
    assert_true(nj_ref_fused_sum(F32, 0x1.002p0f, 0x1p-30f) == 0x1.002p0f);
    assert_true(nj_ref_fused_sum(BF16, 1.0f, 0x1p-8f) == 1.0f);
    assert_true(nj_ref_fused_sum(BF16, 0x1.02p0f, 0x1p-8f) == 0x1.04p0f);
    /* Overflow of the residual dtype, and of fp32 itself. */
    assert_true(isinf(nj_ref_fused_sum(F16, 60000.0f, 10000.0f)));
    assert_true(isinf(nj_ref_fused_sum(F32, 2e38f, 2e38f)));
    assert_true(isnan(nj_ref_fused_sum(BF16, INFINITY, -INFINITY)));
    assert_true(nj_ref_fused_sum(F16, -1.0f, 1.0f) == 0.0f);
}

static void test_qk_addressing(void **state)
{
    int64_t hs = 0, rs = 0;
    (void)state;
    nj_qk_strides(128, 8, &hs, &rs);
    assert_int_equal(hs, 128);
    assert_int_equal(rs, 1024);
    hs = 136;
    rs = 0;
    nj_qk_strides(128, 8, &hs, &rs);
    assert_int_equal(rs, 8 * 136);
    hs = 0;
    rs = 12 * 128; /* the q slice of a qkv projection with 8 + 2 + 2 heads */
    nj_qk_strides(128, 8, &hs, &rs);
    assert_int_equal(hs, 128);
    assert_int_equal(rs, 1536);
    assert_int_equal(nj_qk_offset(3, 2, 5, 1536, 128), 3 * 1536 + 2 * 128 + 5);
}

/* TENSOR: the reciprocal is rounded to fp32 before it multiplies, which can move a code. */
static void test_tensor_scale(void **state)
{
    const float inv7 = nj_quant_inv_scale(7.0);
    (void)state;
    assert_true(inv7 == (float)(1.0 / 7.0));
    /* 45.5 / 7 = 6.5 would round to 6; 45.5 * fl32(1/7) = 6.5000005 rounds to 7. */
    assert_int_equal((int8_t)nj_quant_code(INT8, 45.5, inv7), 7);
    assert_int_equal((int8_t)nj_quant_code(INT8, -1000.0, nj_quant_inv_scale(0.01)), -127);
    assert_int_equal(nj_quant_code(E4M3, 1.0, nj_quant_inv_scale(1e-3)), 0x7e);
    assert_int_equal(nj_quant_code(E5M2, -1.0, nj_quant_inv_scale(1e-6)), 0xfb);
    assert_int_equal(nj_quant_code(E4M3, NAN, 1.0f), 0x7f);
    assert_int_equal(nj_quant_code(INT8, NAN, 1.0f), 0);
    assert_int_equal(nj_quant_code(E4M3, 2.0, nj_quant_inv_scale(0.5)), 0x48); /* 4.0 */
    /* An infinite scale: every finite value quantizes to 0. */
    assert_true(nj_quant_inv_scale(INFINITY) == 0.0f);
    assert_int_equal(nj_quant_code(E4M3, 1e30, 0.0f), 0);
    assert_int_equal(nj_quant_ordinal(E4M3, nj_quant_code(E4M3, -5.0, 0.0f)), 0);
}

/* TOKEN: amax over the row ignoring NaN, the optional cap, the default and given min_scale. */
static void test_token_scale(void **state)
{
    const double row[] = {1.0, -3.0, 2.0, NAN, 0.5};
    const double zeros[] = {0.0, -0.0, NAN};
    const double inf_row[] = {1.0, -INFINITY, 2.0};
    const double qmax = nj_quant_qmax(E4M3), cap = 2.0, big_cap = 10.0;
    const double dflt = nj_quant_min_scale(NORMJIT_QUANT_TOKEN, E4M3, 0.0f);
    (void)state;
    assert_true(nj_quant_qmax(E5M2) == 57344.0 && nj_quant_qmax(INT8) == 127.0);
    assert_true(nj_quant_qmax(F16) == 0.0);
    assert_true(dflt == 1.0 / (448.0 * 512.0));
    assert_true(nj_quant_min_scale(NORMJIT_QUANT_TOKEN, INT8, 0.0f) == 1.0 / (127.0 * 512.0));
    assert_true(nj_quant_min_scale(NORMJIT_QUANT_TOKEN, E4M3, 0.25f) == 0.25);
    assert_true(nj_amax(row, 5) == 3.0);
    assert_true(nj_amax(zeros, 3) == 0.0);
    assert_true(isinf(nj_amax(inf_row, 3)));
    assert_true(nj_quant_scale(nj_amax(row, 5), NULL, qmax, dflt, 0) == 3.0 / 448.0);
    assert_true(nj_quant_scale(nj_amax(row, 5), &cap, qmax, dflt, 0) == 2.0 / 448.0);
    assert_true(nj_quant_scale(nj_amax(row, 5), &big_cap, qmax, dflt, 0) == 3.0 / 448.0);
    assert_true(nj_quant_scale(nj_amax(zeros, 3), NULL, qmax, dflt, 0) == dflt);
    assert_true(nj_quant_scale(nj_amax(row, 5), NULL, qmax, 0.25, 0) == 0.25);
    assert_true(isinf(nj_quant_scale(nj_amax(inf_row, 3), NULL, qmax, dflt, 0)));
    assert_true(nj_quant_scale(nj_amax(inf_row, 3), &cap, qmax, dflt, 0) == 2.0 / 448.0);
    /* The row's largest value maps to qmax; int8 rounds halves to even. */
    assert_int_equal(nj_quant_code(E4M3, -3.0, nj_quant_inv_scale(3.0 / 448.0)), 0xfe);
    assert_int_equal((int8_t)nj_quant_code(INT8, -63.5, 1.0f), -64);
    assert_int_equal((int8_t)nj_quant_code(INT8, 62.5, 1.0f), 62);
}

/* GROUP: per-group amax, min_scale 1e-10 / qmax, power-of-two rounding up, both layouts. */
static void test_group_scale(void **state)
{
    double row[256];
    const double qmax = nj_quant_qmax(E4M3);
    const double dflt = nj_quant_min_scale(NORMJIT_QUANT_GROUP, E4M3, 0.0f);
    int i;
    (void)state;
    for (i = 0; i < 256; i++)
        row[i] = i < 128 ? ldexp(i % 7, -6) : -0.25 * 448.0 * (i == 200);
    assert_true(dflt == 1e-10 / 448.0);
    assert_true(nj_quant_min_scale(NORMJIT_QUANT_GROUP, INT8, 0.0f) == 1e-10 / 127.0);
    assert_true(nj_amax(row, 128) == 0.09375);
    assert_true(nj_amax(row + 128, 128) == 112.0);
    assert_true(nj_quant_scale(0.09375, NULL, qmax, dflt, 0) == 0.09375 / 448.0);
    /* 0.09375 / 448 = 2.09e-4 rounds up to 2^-12; an exact power of two stays. */
    assert_true(nj_quant_scale(0.09375, NULL, qmax, dflt, 1) == ldexp(1, -12));
    assert_true(nj_quant_scale(112.0, NULL, qmax, dflt, 1) == 0.25);
    assert_true(nj_quant_scale(0.0, NULL, qmax, dflt, 0) == dflt);
    assert_true(nj_quant_scale(0.0, NULL, qmax, dflt, 1) == nj_pow2_ceil(dflt));
    assert_true(nj_pow2_ceil(1.0) == 1.0 && nj_pow2_ceil(0x1.000002p0) == 2.0);
    assert_true(nj_pow2_ceil(0.75) == 1.0 && nj_pow2_ceil(0x1p-140) == 0x1p-140);
    assert_true(nj_pow2_ceil(0x1.8p-140) == 0x1p-139);
    assert_true(isinf(nj_pow2_ceil(INFINITY)));
    /* Layouts: row-major [rows][groups], column-major [groups][rows], each with its stride. */
    assert_int_equal(nj_group_scales_stride(10, 4096, 128, 0, 0), 32);
    assert_int_equal(nj_group_scales_stride(10, 4096, 128, 1, 0), 10);
    assert_int_equal(nj_group_scales_stride(10, 4096, 128, 1, 16), 16);
    assert_int_equal(nj_group_scale_index(3, 5, 32, 0), 3 * 32 + 5);
    assert_int_equal(nj_group_scale_index(3, 5, 16, 1), 5 * 16 + 3);
}

/* The cast modes' formulas on elements built to tell them apart. */
static void test_cast_formulas(void **state)
{
    nj_ref_epilogue e = {NORMJIT_OP_RMSNORM, F16, F16, NORMJIT_CAST_NONE, 0, 0.0};
    const float xhat = 0x1.0021p0f; /* 1 + 2^-11 + 2^-16: above an f16 tie */
    const double b = 0x1p-12, w_gemma = 0.5;
    double alt, q;
    (void)state;
    /* NONE rounds x_hat * w once: 1.5 + 0.75 ulp -> 1.5 + 1 ulp. */
    assert_true(nj_ref_model_y(&e, xhat, 1.5, NULL) == 0x1.804p0);
    /* LLAMA rounds x_hat to f16 first (1 + 2^-10), then 1.5 * that = 1.5 + 1.5 ulp, a tie: even. */
    e.cast = NORMJIT_CAST_LLAMA;
    assert_true(nj_ref_model_y(&e, xhat, 1.5, NULL) == 0x1.808p0);
    /* LLAMA with a bias rounds again after adding it. */
    assert_true(nj_ref_model_y(&e, xhat, 1.5, &b) == 0x1.808p0);
    e.in_dtype = F32; /* nothing to round in fp32 */
    assert_true(nj_ref_model_y(&e, xhat, 1.5, NULL) == 0x1.804p0);
    e.in_dtype = BF16; /* LLAMA rounds to the input dtype, whatever y is */
    assert_true(nj_ref_model_y(&e, 0x1.03p0f, 1.0, NULL) == 0x1.04p0);
    /* GEMMA: x_hat * fl32(1 + w), fp32 throughout, rounded once. */
    e.cast = NORMJIT_CAST_GEMMA;
    e.in_dtype = F16;
    assert_true(nj_ref_model_y(&e, xhat, w_gemma, NULL) == 0x1.804p0);
    e.y_dtype = F32;
    assert_true(nj_ref_model_y(&e, 1.0f, 0x1.8p-24, NULL) == 0x1.000002p0); /* fl32(1 + 0.75 * 2^-23) */
    /* The plus-one flag with NONE is the same formula. */
    e.cast = NORMJIT_CAST_NONE;
    e.plus_one = 1;
    assert_true(nj_ref_model_y(&e, 1.0f, 0x1.8p-24, NULL) == 0x1.000002p0);

    /* Quantizer input: NONE uses the double x_hat; LLAMA its rounded fp32 x_hat, with an alternative. */
    e.plus_one = 0;
    e.y_dtype = E4M3;
    q = nj_ref_quant_input(&e, 1.0 / 3.0, (float)(1.0 / 3.0), 3.0, NULL, &alt);
    assert_true(q == (double)(float)1.0 && alt == q);
    e.cast = NORMJIT_CAST_LLAMA;
    e.in_dtype = F16;
    q = nj_ref_quant_input(&e, 0x1.002p0, nextafterf(0x1.002p0f, 2.0f), 2.0, NULL, &alt);
    assert_true(q == 2.0 * 0x1.004p0);
    assert_true(alt == 2.0); /* the other side of the tie */
    q = nj_ref_quant_input(&e, 1.25, 1.25f, 2.0, &b, &alt);
    assert_true(q == 2.5 + b && alt == q);
    /* fp32 overflow of the product is what the kernel quantizes. */
    e.cast = NORMJIT_CAST_NONE;
    assert_true(isinf(nj_ref_quant_input(&e, 8.0, 8.0f, 3e38, NULL, NULL)));
}

/* Statistics and whole rows, including the non-finite ones the header documents. */
static void test_rows(void **state)
{
    const double x[] = {3.0, 4.0}, ln[] = {1.0, 2.0, 3.0, 4.0}, w[] = {1.0, 2.0};
    const double nan_row[] = {1.0, NAN}, inf_row[] = {INFINITY, 1.0};
    double mean, rstd, exact[4], y[4], q[4], q_alt[4];
    nj_ref_epilogue e = {NORMJIT_OP_ADD_RMSNORM, F32, F32, NORMJIT_CAST_NONE, 0, 0.0};
    nj_ref_row_out out = {exact, y, q, q_alt, 0, 0};
    (void)state;
    nj_ref_stats(NORMJIT_OP_RMSNORM, x, 2, 0.0, &mean, &rstd);
    assert_true(mean == 0.0 && fabs(rstd - 1.0 / sqrt(12.5)) < 1e-15);
    nj_ref_stats(NORMJIT_OP_ADD_LAYERNORM, ln, 4, 2.75, &mean, &rstd);
    assert_true(mean == 2.5 && rstd == 0.5); /* var 1.25 + eps 2.75 */
    assert_true(nj_ref_xhat32(4.0, 2.5, 0.5) == 0.75f);

    nj_ref_row(&e, x, w, NULL, 2, &out);
    assert_true(fabs(exact[0] - 3.0 / sqrt(12.5)) < 1e-15);
    assert_true(fabs(exact[1] - 8.0 / sqrt(12.5)) < 1e-15);
    assert_true(y[1] == (float)(8.0 / sqrt(12.5)) && q[1] == y[1] && q_alt[1] == q[1]);

    /* NaN anywhere: every value NaN. Infinity (RMSNorm): rstd 0, x * 0 = 0, inf * 0 = NaN. */
    nj_ref_row(&e, nan_row, NULL, NULL, 2, &out);
    assert_true(isnan(out.rstd) && isnan(y[0]) && isnan(q[1]));
    nj_ref_row(&e, inf_row, NULL, NULL, 2, &out);
    assert_true(out.rstd == 0.0 && isnan(y[0]) && y[1] == 0.0 && q[1] == 0.0);
    e.op = NORMJIT_OP_LAYERNORM;
    nj_ref_row(&e, inf_row, NULL, NULL, 2, &out);
    assert_true(isnan(y[0]) && isnan(y[1]));

    /* Host storage of the quantized dtypes is their codes. */
    {
        uint8_t codes[3];
        nj_host_put(codes, E4M3, 0, 500.0);
        nj_host_put(codes, INT8, 1, -3.5);
        nj_host_put(codes, E5M2, 2, 0.0);
        assert_int_equal(codes[0], 0x7e);
        assert_true(nj_host_get(codes, INT8, 1) == -4.0);
        assert_true(nj_host_get(codes, E4M3, 0) == 448.0);
        assert_int_equal(nj_host_dtype_size(INT8), 1);
        assert_int_equal(nj_host_dtype_size(BF16), 2);
        assert_int_equal(nj_host_dtype_size(0), 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fp8_every_code),
        cmocka_unit_test(test_every_value_and_midpoint),
        cmocka_unit_test(test_random_floats),
        cmocka_unit_test(test_boundaries),
        cmocka_unit_test(test_fused_sum),
        cmocka_unit_test(test_qk_addressing),
        cmocka_unit_test(test_tensor_scale),
        cmocka_unit_test(test_token_scale),
        cmocka_unit_test(test_group_scale),
        cmocka_unit_test(test_cast_formulas),
        cmocka_unit_test(test_rows),
    };
    nj_test_seed_banner("hostref");
    return cmocka_run_group_tests_name("hostref", tests, NULL, NULL);
}
