#include "hostref.h"

#include <math.h>
#include <string.h>

void nj_rng_init(nj_rng *r, uint64_t seed)
{
    r->s = seed ^ 0x9E3779B97F4A7C15ull;
}

uint64_t nj_rng_next(nj_rng *r)
{
    /* splitmix64 */
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double nj_rng_uniform(nj_rng *r)
{
    return (double)(nj_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

double nj_rng_normal(nj_rng *r)
{
    double u1 = nj_rng_uniform(r), u2 = nj_rng_uniform(r);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static uint32_t bits_of(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float float_of(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t nj_f32_to_f16(float f)
{
    uint32_t x = bits_of(f), sign = (x >> 16) & 0x8000u, mant;
    int exp;
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)(sign | 0x7e00u); /* NaN */
    exp = (int)((x >> 23) & 0xff) - 127 + 15;
    mant = x & 0x7fffffu;
    if (exp >= 31)
        return (uint16_t)(sign | 0x7c00u); /* overflow: inf */
    if (exp <= 0) {
        /* subnormal or zero: shift the full significand, round to nearest even */
        uint32_t m = mant | 0x800000u, shift = (uint32_t)(14 - exp), half, rest, q;
        if (shift > 24)
            return (uint16_t)sign;
        q = m >> shift;
        rest = m & ((1u << shift) - 1);
        half = 1u << (shift - 1);
        if (rest > half || (rest == half && (q & 1)))
            q++;
        return (uint16_t)(sign | q);
    }
    {
        uint32_t q = ((uint32_t)exp << 10) | (mant >> 13), rest = mant & 0x1fffu;
        if (rest > 0x1000u || (rest == 0x1000u && (q & 1)))
            q++; /* may carry into the exponent, up to inf: correct */
        return (uint16_t)(sign | q);
    }
}

float nj_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ffu;
    if (exp == 31)
        return float_of(sign | 0x7f800000u | (mant << 13));
    if (exp == 0) {
        float v = (float)mant * (1.0f / 16777216.0f); /* mant * 2^-24 */
        return sign ? -v : v;
    }
    return float_of(sign | ((exp + 112) << 23) | (mant << 13));
}

uint16_t nj_f32_to_bf16(float f)
{
    uint32_t x = bits_of(f);
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((x >> 16) | 0x40u);
    x += 0x7fffu + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

float nj_bf16_to_f32(uint16_t h)
{
    return float_of((uint32_t)h << 16);
}

void nj_host_put(void *base, int dtype, size_t i, double v)
{
    switch (dtype) {
    case NORMJIT_DTYPE_F32:
        ((float *)base)[i] = (float)v;
        break;
    case NORMJIT_DTYPE_F16:
        ((uint16_t *)base)[i] = nj_f32_to_f16((float)v);
        break;
    case NORMJIT_DTYPE_BF16:
        ((uint16_t *)base)[i] = nj_f32_to_bf16((float)v);
        break;
    }
}

/* The value of an fp8 code with `man` mantissa bits and exponent `bias`; e4m3 has no infinity. */
static double fp8_value(uint8_t c, int man, int bias, int has_inf)
{
    const int e = (c & 0x7f) >> man, m = c & ((1 << man) - 1), emax = 0x7f >> man;
    double v;
    if (e == emax && (has_inf ? 1 : m == (1 << man) - 1))
        v = has_inf && m == 0 ? INFINITY : NAN;
    else if (e == 0)
        v = ldexp((double)m, 1 - bias - man);
    else
        v = ldexp(1.0 + (double)m / (1 << man), e - bias);
    return c & 0x80 ? -v : v;
}

double nj_host_get(const void *base, int dtype, size_t i)
{
    switch (dtype) {
    case NORMJIT_DTYPE_F32:
        return ((const float *)base)[i];
    case NORMJIT_DTYPE_F16:
        return nj_f16_to_f32(((const uint16_t *)base)[i]);
    case NORMJIT_DTYPE_BF16:
        return nj_bf16_to_f32(((const uint16_t *)base)[i]);
    case NORMJIT_DTYPE_FP8_E4M3:
        return fp8_value(((const uint8_t *)base)[i], 3, 7, 0);
    case NORMJIT_DTYPE_FP8_E5M2:
        return fp8_value(((const uint8_t *)base)[i], 2, 15, 1);
    case NORMJIT_DTYPE_INT8:
        return ((const int8_t *)base)[i];
    }
    return NAN;
}

void nj_reference_row(int op, const double *x, const double *w, const double *b, int64_t hidden,
                      double eps, int weight_plus_one, double *y, double *rstd, double *mean)
{
    double m = 0, v = 0, r;
    int64_t i;
    if (op == NORMJIT_OP_LAYERNORM) {
        for (i = 0; i < hidden; i++)
            m += x[i];
        m /= (double)hidden;
        for (i = 0; i < hidden; i++)
            v += (x[i] - m) * (x[i] - m);
    } else {
        for (i = 0; i < hidden; i++)
            v += x[i] * x[i];
    }
    r = 1.0 / sqrt(v / (double)hidden + eps);
    for (i = 0; i < hidden; i++) {
        double t = (x[i] - m) * r;
        if (w)
            t *= w[i] + (weight_plus_one ? 1.0 : 0.0);
        if (b)
            t += b[i];
        y[i] = t;
    }
    if (rstd)
        *rstd = r;
    if (mean)
        *mean = m;
}

double nj_tolerance(int y_dtype)
{
    switch (y_dtype) {
    case NORMJIT_DTYPE_F32:
        return 3e-5;
    case NORMJIT_DTYPE_F16:
        return 1.5e-3;
    case NORMJIT_DTYPE_FP8_E4M3: /* codes: in steps of the code grid, one step */
    case NORMJIT_DTYPE_FP8_E5M2:
    case NORMJIT_DTYPE_INT8:
        return 1.0;
    default:
        return 1e-2;
    }
}

double nj_row_error(const void *y, int y_dtype, const double *ref, int64_t hidden)
{
    double err = 0, mag = 0;
    int64_t i;
    for (i = 0; i < hidden; i++) {
        double got = nj_host_get(y, y_dtype, (size_t)i);
        if (isnan(got))
            return INFINITY;
        if (fabs(got - ref[i]) > err)
            err = fabs(got - ref[i]);
        if (fabs(ref[i]) > mag)
            mag = fabs(ref[i]);
    }
    return mag > 0 ? err / mag : err;
}
