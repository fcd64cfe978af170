#include "hostref.h"
#include "variant.h"

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

/*
 * The magnitude code of a finite float's magnitude bits `a` in a binary
 * format of `man` mantissa bits and exponent bias `bias`, rounded to nearest
 * even, without an upper bound (the caller saturates or overflows). Float
 * subnormals lie far below half the smallest subnormal of every format this
 * serves (f16, e4m3, e5m2), so they round to 0.
 */
static uint32_t round_magnitude(uint32_t a, int man, int bias)
{
    int e = (int)(a >> 23) - 127 + bias;
    uint32_t mant = a & 0x7fffffu, q, rest, half;
    int shift;
    if ((a >> 23) == 0)
        return 0;
    if (e >= 1) {
        shift = 23 - man;
        q = ((uint32_t)e << man) | (mant >> shift);
    } else {
        mant |= 0x800000u;
        shift = 23 - man + 1 - e;
        if (shift > 24)
            return 0;
        q = mant >> shift;
    }
    rest = mant & ((1u << shift) - 1);
    half = 1u << (shift - 1);
    if (rest > half || (rest == half && (q & 1)))
        q++; /* may carry into the exponent: correct */
    return q;
}

#define E4M3_MAX_CODE 0x7eu /* 448 */
#define E5M2_MAX_CODE 0x7bu /* 57344 */
#define FP8_NAN_CODE 0x7fu

static uint8_t f32_to_fp8(float f, int man, int bias, uint32_t max_code)
{
    uint32_t x = bits_of(f), sign = (x >> 24) & 0x80u, a = x & 0x7fffffffu, q;
    if (a > 0x7f800000u)
        return FP8_NAN_CODE;
    q = a == 0x7f800000u ? max_code : round_magnitude(a, man, bias);
    return (uint8_t)(sign | (q > max_code ? max_code : q));
}

uint8_t nj_f32_to_e4m3(float f)
{
    return f32_to_fp8(f, 3, 7, E4M3_MAX_CODE);
}

uint8_t nj_f32_to_e5m2(float f)
{
    return f32_to_fp8(f, 2, 15, E5M2_MAX_CODE);
}

int8_t nj_f32_to_int8(float f)
{
    if (isnan(f))
        return 0;
    if (f >= 127.0f)
        return 127;
    if (f <= -127.0f)
        return -127;
    return (int8_t)lrintf(f); /* the default rounding mode: to nearest even */
}

float nj_e4m3_to_f32(uint8_t q)
{
    int e = (q >> 3) & 0xf, m = q & 7;
    float v;
    if (e == 15 && m == 7)
        return NAN;
    v = e ? ldexpf((float)(8 + m), e - 10) : ldexpf((float)m, -9);
    return (q & 0x80) ? -v : v;
}

float nj_e5m2_to_f32(uint8_t q)
{
    int e = (q >> 2) & 0x1f, m = q & 3;
    float v;
    if (e == 31)
        v = m ? NAN : INFINITY;
    else
        v = e ? ldexpf((float)(4 + m), e - 17) : ldexpf((float)m, -16);
    return (q & 0x80) ? -v : v;
}

int nj_host_dtype_size(int dtype)
{
    return nj_dtype_size(dtype);
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
    case NORMJIT_DTYPE_FP8_E4M3:
    case NORMJIT_DTYPE_FP8_E5M2:
    case NORMJIT_DTYPE_INT8:
        ((uint8_t *)base)[i] = nj_quant_encode(dtype, (float)v);
        break;
    }
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
    case NORMJIT_DTYPE_FP8_E5M2:
    case NORMJIT_DTYPE_INT8:
        return nj_quant_decode(dtype, ((const uint8_t *)base)[i]);
    }
    return NAN;
}

float nj_round_to(int dtype, float v)
{
    switch (dtype) {
    case NORMJIT_DTYPE_F32:
        return v;
    case NORMJIT_DTYPE_F16:
        return nj_f16_to_f32(nj_f32_to_f16(v));
    case NORMJIT_DTYPE_BF16:
        return nj_bf16_to_f32(nj_f32_to_bf16(v));
    case NORMJIT_DTYPE_FP8_E4M3:
    case NORMJIT_DTYPE_FP8_E5M2:
    case NORMJIT_DTYPE_INT8:
        return (float)nj_quant_decode(dtype, nj_quant_encode(dtype, v));
    }
    return NAN;
}

/* ------------------------------------------------------------------------ */

/* The exact sum of two floats rounded to double, then to float, is their fp32 sum (53 >= 2 * 24 + 1). */
float nj_ref_fused_sum(int residual_dtype, float x, float residual)
{
    return nj_round_to(residual_dtype, (float)((double)x + (double)residual));
}

void nj_qk_strides(int64_t hidden, int64_t heads, int64_t *head_stride, int64_t *row_stride)
{
    if (*head_stride == 0)
        *head_stride = hidden;
    if (*row_stride == 0)
        *row_stride = (heads > 0 ? heads : 1) * *head_stride;
}

int64_t nj_qk_offset(int64_t t, int64_t h, int64_t i, int64_t row_stride, int64_t head_stride)
{
    return t * row_stride + h * head_stride + i;
}

/* ------------------------------------------------------------------------ */

double nj_quant_qmax(int dtype)
{
    switch (dtype) {
    case NORMJIT_DTYPE_FP8_E4M3:
        return 448.0;
    case NORMJIT_DTYPE_FP8_E5M2:
        return 57344.0;
    case NORMJIT_DTYPE_INT8:
        return 127.0;
    default:
        return 0.0;
    }
}

uint8_t nj_quant_encode(int dtype, float v)
{
    switch (dtype) {
    case NORMJIT_DTYPE_FP8_E4M3:
        return nj_f32_to_e4m3(v);
    case NORMJIT_DTYPE_FP8_E5M2:
        return nj_f32_to_e5m2(v);
    default:
        return (uint8_t)nj_f32_to_int8(v);
    }
}

double nj_quant_decode(int dtype, uint8_t code)
{
    switch (dtype) {
    case NORMJIT_DTYPE_FP8_E4M3:
        return nj_e4m3_to_f32(code);
    case NORMJIT_DTYPE_FP8_E5M2:
        return nj_e5m2_to_f32(code);
    default:
        return (int8_t)code;
    }
}

int nj_quant_is_nan(int dtype, uint8_t code)
{
    return dtype != NORMJIT_DTYPE_INT8 && isnan(nj_quant_decode(dtype, code));
}

int nj_quant_ordinal(int dtype, uint8_t code)
{
    int mag = code & 0x7f;
    if (dtype == NORMJIT_DTYPE_INT8)
        return (int8_t)code;
    /* fp8 magnitudes are ordered like their codes. */
    return (code & 0x80) ? -mag : mag;
}

float nj_quant_inv_scale(double scale)
{
    return (float)(1.0 / (double)(float)scale); /* division is innocuous to double rounding */
}

uint8_t nj_quant_code(int dtype, double v, float inv_scale)
{
    /* v and inv are fp32 values: their product is exact in double, so this is fl32(v * inv). */
    return nj_quant_encode(dtype, (float)((double)(float)v * (double)inv_scale));
}

double nj_quant_min_scale(int quant, int dtype, float given)
{
    double qmax = nj_quant_qmax(dtype);
    if (given > 0.0f)
        return given;
    return quant == NORMJIT_QUANT_TOKEN ? 1.0 / (qmax * 512.0) : 1e-10 / qmax;
}

double nj_amax(const double *v, int64_t n)
{
    double m = 0.0;
    int64_t i;
    for (i = 0; i < n; i++)
        m = fmax(m, fabs(v[i]));
    return m;
}

double nj_pow2_ceil(double s)
{
    int e;
    double m;
    if (!(s > 0.0) || isinf(s))
        return s;
    m = frexp(s, &e); /* s = m * 2^e, 0.5 <= m < 1 */
    return m == 0.5 ? s : ldexp(1.0, e);
}

double nj_quant_scale(double amax, const double *cap, double qmax, double min_scale, int pow2)
{
    double s = (cap ? fmin(amax, *cap) : amax) / qmax;
    s = fmax(s, min_scale);
    return pow2 ? nj_pow2_ceil(s) : s;
}

int64_t nj_group_scales_stride(int64_t rows, int64_t hidden, int64_t group_size, int column_major,
                               int64_t given)
{
    if (given)
        return given;
    return column_major ? rows : hidden / group_size;
}

int64_t nj_group_scale_index(int64_t r, int64_t g, int64_t stride, int column_major)
{
    return column_major ? g * stride + r : r * stride + g;
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

/* ------------------------------------------------------------------------ */

static int is_layernorm(int op)
{
    return op == NORMJIT_OP_LAYERNORM || op == NORMJIT_OP_ADD_LAYERNORM;
}

void nj_ref_stats(int op, const double *x, int64_t n, double eps, double *mean, double *rstd)
{
    double m = 0, v = 0;
    int64_t i;
    if (is_layernorm(op)) {
        for (i = 0; i < n; i++)
            m += x[i];
        m /= (double)n;
        for (i = 0; i < n; i++)
            v += (x[i] - m) * (x[i] - m);
    } else {
        for (i = 0; i < n; i++)
            v += x[i] * x[i];
    }
    *mean = m;
    *rstd = 1.0 / sqrt(v / (double)n + eps);
}

float nj_ref_xhat32(double x, double mean, double rstd)
{
    /* Each product and difference of two fp32 values is exact in double: one rounding each. */
    float d = (float)((double)(float)x - (double)(float)mean);
    return (float)((double)d * (double)(float)rstd);
}

static int plus_one(const nj_ref_epilogue *e)
{
    return e->plus_one || e->cast == NORMJIT_CAST_GEMMA;
}

/* The weight as the kernel uses it in fp32: w, or fl32(1 + w). */
static float weight32(const nj_ref_epilogue *e, double w)
{
    return plus_one(e) ? (float)(1.0 + w) : (float)w;
}

double nj_ref_model_y(const nj_ref_epilogue *e, float xhat32, double w, const double *b)
{
    float w32 = weight32(e, w), p;
    if (e->cast == NORMJIT_CAST_LLAMA) {
        float t = nj_round_to(e->in_dtype, xhat32);
        p = nj_round_to(e->y_dtype, (float)((double)w32 * t));
        if (b)
            p = nj_round_to(e->y_dtype, (float)((double)p + *b));
        return p;
    }
    p = (float)((double)xhat32 * w32);
    if (b)
        p = (float)((double)p + *b);
    return nj_round_to(e->y_dtype, p);
}

double nj_ref_quant_input(const nj_ref_epilogue *e, double xhat, float xhat32, double w,
                          const double *b, double *alt)
{
    double bias = b ? *b : 0.0, v;
    if (e->cast == NORMJIT_CAST_LLAMA) {
        const double w32 = weight32(e, w);
        const float t = nj_round_to(e->in_dtype, xhat32),
                    lo = nj_round_to(e->in_dtype, (float)(xhat32 * (1.0 - NJ_REF_XHAT_SLACK))),
                    hi = nj_round_to(e->in_dtype, (float)(xhat32 * (1.0 + NJ_REF_XHAT_SLACK)));
        v = (float)(w32 * t + bias);
        if (alt)
            *alt = (float)(w32 * (t == lo ? hi : lo) + bias);
        return v;
    }
    v = (float)(xhat * (plus_one(e) ? w + 1.0 : w) + bias);
    if (alt)
        *alt = v;
    return v;
}

void nj_ref_row(const nj_ref_epilogue *e, const double *x, const double *w, const double *b,
                int64_t n, nj_ref_row_out *out)
{
    int64_t i;
    nj_ref_stats(e->op, x, n, e->eps, &out->mean, &out->rstd);
    for (i = 0; i < n; i++) {
        const double xhat = (x[i] - out->mean) * out->rstd, wi = w ? w[i] : 1.0;
        const float xhat32 = nj_ref_xhat32(x[i], out->mean, out->rstd);
        const double *bi = b ? &b[i] : NULL;
        if (out->exact) {
            if (e->cast == NORMJIT_CAST_LLAMA)
                out->exact[i] = (plus_one(e) ? wi + 1.0 : wi) * nj_round_to(e->in_dtype, xhat32) +
                                (bi ? *bi : 0.0);
            else
                out->exact[i] = xhat * (plus_one(e) ? wi + 1.0 : wi) + (bi ? *bi : 0.0);
        }
        if (out->y)
            out->y[i] = nj_ref_model_y(e, xhat32, wi, bi);
        if (out->q || out->q_alt) {
            double alt, q = nj_ref_quant_input(e, xhat, xhat32, wi, bi, &alt);
            if (out->q)
                out->q[i] = q;
            if (out->q_alt)
                out->q_alt[i] = alt;
        }
    }
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
