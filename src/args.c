#include "args.h"

#include "ops.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

#define MIN(a, b) ((a) < (b) ? (a) : (b))

/* The sizes of the structs in 0.1, the oldest callers this library accepts. */
#define NJ_NORM_ARGS_V1_SIZE (offsetof(normjit_norm_args, eps) + sizeof(float))
#define NJ_PREPARE_ARGS_V1_SIZE (offsetof(normjit_prepare_args, n_hidden) + sizeof(size_t))

#define NJ_KNOWN_FLAGS                                                                      \
    (NORMJIT_NORM_WEIGHT_PLUS_ONE | NORMJIT_NORM_SCALES_COLUMN_MAJOR |                     \
     NORMJIT_NORM_SCALES_POW2 | NORMJIT_NORM_PDL)

int nj_copy_versioned(void *dst, size_t dst_size, size_t min_size, const void *src,
                      uint32_t src_size, const char *what)
{
    const unsigned char *tail = (const unsigned char *)src + dst_size;
    size_t i;
    memset(dst, 0, dst_size);
    if (src_size < min_size)
        return nj_fail(NORMJIT_EINVAL,
                       "%s.struct_size is %u, expected sizeof(%s) (%zu); set it with sizeof",
                       what, src_size, what, dst_size);
    /* A newer caller's extra fields are fine as long as they ask for nothing. */
    for (i = dst_size; i < src_size; i++, tail++)
        if (*tail)
            return nj_fail(NORMJIT_EUNSUPPORTED,
                           "%s uses fields this normjit version (%s) does not know (byte %zu of "
                           "%u is set)",
                           what, NORMJIT_VERSION_STRING, i, src_size);
    memcpy(dst, src, src_size < dst_size ? src_size : dst_size);
    return NORMJIT_OK;
}

static int misaligned(const void *p, int64_t bytes)
{
    return ((uintptr_t)p % (uint64_t)bytes) != 0;
}

static int overlap(const void *a, int64_t a_len, const void *b, int64_t b_len)
{
    uintptr_t pa = (uintptr_t)a, pb = (uintptr_t)b;
    return a && b && pa < pb + (uint64_t)b_len && pb < pa + (uint64_t)a_len;
}

/* A dtype of values (x, weight, residual): f32, f16 or bf16. */
static int check_value_dtype(int32_t dtype, const char *what)
{
    if (nj_dtype_is_code(dtype))
        return nj_fail(NORMJIT_EINVAL, "%s %s is not an input dtype (f32, f16 or bf16)", what,
                       nj_dtype_name(dtype));
    if (!nj_dtype_is_float(dtype))
        return nj_fail(NORMJIT_EINVAL,
                       "%s %d is not a normjit dtype (NORMJIT_DTYPE_F32, _F16 or _BF16)", what,
                       (int)dtype);
    return NORMJIT_OK;
}

static int check_aligned(const void *p, int size, const char *what)
{
    if (p && misaligned(p, size))
        return nj_fail(NORMJIT_EINVAL, "%s (%p) is not aligned to its %d-byte elements", what, p,
                       size);
    return NORMJIT_OK;
}

static int check_stride(int64_t *stride, int64_t dflt, int64_t least, const char *what,
                        const char *least_what)
{
    if (*stride == 0)
        *stride = dflt;
    if (*stride < least)
        return nj_fail(NORMJIT_EINVAL, "%s (%lld) is smaller than %s (%lld)", what,
                       (long long)*stride, least_what, (long long)least);
    return NORMJIT_OK;
}

/* Vector access of `vec` elements of `size` bytes needs this alignment. */
static int64_t access_align(int vec, int size)
{
    return MIN(NJ_MAX_ACCESS_BYTES, vec * size);
}

/*
 * The widest vector the input dtype allows: 16 bytes of what is normalized.
 * Wider tensors (an fp32 x of a bf16 residual) move it in two 16-byte
 * accesses, so the fused op reduces with its unfused op's vector width and
 * gives its bits.
 */
static int first_vec(const nj_spec *s)
{
    return NJ_MAX_ACCESS_BYTES / nj_dtype_size(nj_spec_input_dtype(s));
}

int nj_widest_vec(const nj_spec *s)
{
    int vec = first_vec(s);
    while (vec > 1 && s->hidden % vec)
        vec /= 2;
    return vec;
}

/* A tensor the kernel moves in vectors: where it is, its element size and strides. */
typedef struct vtensor {
    const void *p;
    int size;
    int64_t row_stride, head_stride; /* elements */
} vtensor;

/* The widest vector every pointer, stride and the hidden size allow. */
static int widest_vec(const nj_call *c, const vtensor *t, int n)
{
    const normjit_norm_args *a = &c->a;
    int vec = first_vec(&c->r.s), i;
    while (vec > 1) {
        int ok = a->hidden % vec == 0;
        for (i = 0; ok && i < n; i++) {
            int64_t al = access_align(vec, t[i].size);
            ok = !t[i].p ||
                 (!misaligned(t[i].p, al) &&
                  (a->rows <= 1 || (t[i].row_stride * t[i].size) % al == 0) &&
                  (a->heads <= 1 || (t[i].head_stride * t[i].size) % al == 0));
        }
        if (ok)
            break;
        vec /= 2;
    }
    return vec;
}

/* Bytes a tensor of `rows` rows spans: (rows - 1) * stride + width elements. */
static int span_bytes(int64_t rows, int64_t stride, int64_t width, int size, int64_t *out)
{
    int64_t elems;
    if (rows > 1 && stride > (INT64_MAX - width) / (rows - 1))
        return 0;
    elems = (rows - 1) * stride + width;
    if (elems > INT64_MAX / size)
        return 0;
    *out = elems * size;
    return 1;
}

/* The quantization fields: consistent with the op, the y dtype and each other. */
static int check_quant(const nj_op_desc *d, nj_call *c)
{
    normjit_norm_args *a = &c->a;
    const char *name = d->name;
    const int q = a->quant, column_major = (a->flags & NORMJIT_NORM_SCALES_COLUMN_MAJOR) != 0;

    if (q < NORMJIT_QUANT_NONE || q > NORMJIT_QUANT_GROUP)
        return nj_fail(NORMJIT_EINVAL, "%s: quant (%d) is not a normjit_quant", name, q);
    if (q && !d->quant)
        return nj_fail(NORMJIT_EUNSUPPORTED, "%s: quant must be NORMJIT_QUANT_NONE (this op "
                                             "has no quantized outputs)",
                       name);
    if (!q && nj_dtype_is_code(a->y_dtype))
        return nj_fail(NORMJIT_EINVAL, "%s: y_dtype %s needs a quant mode (tensor, token or "
                                       "group)",
                       name, nj_dtype_name(a->y_dtype));
    if (q && !nj_dtype_is_code(a->y_dtype))
        return nj_fail(NORMJIT_EINVAL,
                       "%s: quant %s needs y_dtype fp8e4m3, fp8e5m2 or int8 (NORMJIT_DTYPE_FP8_E4M3, "
                       "_FP8_E5M2, _INT8), not %d",
                       name, nj_quant_name(q), (int)a->y_dtype);
    /* Each field only with the modes that read it. */
    if (a->scales && q != NORMJIT_QUANT_TOKEN && q != NORMJIT_QUANT_GROUP)
        return nj_fail(NORMJIT_EINVAL, "%s: scales is only for quant TOKEN and GROUP", name);
    if (a->scale && q != NORMJIT_QUANT_TENSOR && q != NORMJIT_QUANT_TOKEN)
        return nj_fail(NORMJIT_EINVAL, "%s: scale is only for quant TENSOR and TOKEN", name);
    if ((a->group_size || a->scales_stride) && q != NORMJIT_QUANT_GROUP)
        return nj_fail(NORMJIT_EINVAL, "%s: %s is only for quant GROUP", name,
                       a->group_size ? "group_size" : "scales_stride");
    if (column_major && q != NORMJIT_QUANT_GROUP)
        return nj_fail(NORMJIT_EINVAL, "%s: NORMJIT_NORM_SCALES_COLUMN_MAJOR needs quant GROUP",
                       name);
    if ((a->flags & NORMJIT_NORM_SCALES_POW2) && q != NORMJIT_QUANT_GROUP)
        return nj_fail(NORMJIT_EINVAL, "%s: NORMJIT_NORM_SCALES_POW2 needs quant GROUP", name);
    if (a->min_scale != 0.0f && q != NORMJIT_QUANT_TOKEN && q != NORMJIT_QUANT_GROUP)
        return nj_fail(NORMJIT_EINVAL, "%s: min_scale is only for quant TOKEN and GROUP", name);
    if (!q)
        return NORMJIT_OK;
    if (!(a->min_scale >= 0.0f) || isinf(a->min_scale))
        return nj_fail(NORMJIT_EINVAL, "%s: min_scale (%g) must be finite and not negative", name,
                       (double)a->min_scale);
    if (q == NORMJIT_QUANT_GROUP) {
        const int64_t groups = a->group_size > 0 ? a->hidden / a->group_size : 0;
        const int64_t least = column_major ? a->rows : groups;
        if (a->group_size != 64 && a->group_size != 128)
            return nj_fail(NORMJIT_EINVAL, "%s: group_size (%d) must be 64 or 128", name,
                           (int)a->group_size);
        if (a->hidden % a->group_size)
            return nj_fail(NORMJIT_EINVAL, "%s: group_size (%d) does not divide hidden (%lld)",
                           name, (int)a->group_size, (long long)a->hidden);
        if (a->scales_stride == 0)
            a->scales_stride = least;
        if (a->scales_stride < least)
            return nj_fail(NORMJIT_EINVAL, "%s: scales_stride (%lld) is smaller than %s (%lld)",
                           name, (long long)a->scales_stride,
                           column_major ? "rows" : "hidden / group_size", (long long)least);
    }
    if (a->min_scale == 0.0f) {
        const float qmax = nj_dtype_qmax(a->y_dtype);
        /* The defaults of the engines each mode follows (normjit.h). */
        a->min_scale = q == NORMJIT_QUANT_GROUP ? 1e-10f / qmax : 1.0f / (qmax * 512.0f);
    }
    return NORMJIT_OK;
}

/* Fused-add and QK-norm fields, by what the op takes. */
static int check_op_fields(const nj_op_desc *d, nj_call *c)
{
    normjit_norm_args *a = &c->a;
    const char *name = d->name;
    int status;

    if (d->tensors & NJ_T_RES) {
        if (a->residual_dtype == NORMJIT_DTYPE_NONE)
            a->residual_dtype = a->x_dtype;
        if ((status = check_value_dtype(a->residual_dtype, "residual_dtype")) != NORMJIT_OK ||
            (status = check_stride(&a->residual_row_stride, a->hidden, a->hidden,
                                   "residual_row_stride", "hidden")) != NORMJIT_OK ||
            (status = check_stride(&a->residual_out_row_stride, a->hidden, a->hidden,
                                   "residual_out_row_stride", "hidden")) != NORMJIT_OK)
            return status;
    } else {
        const char *given = a->residual                  ? "residual"
                            : a->residual_out            ? "residual_out"
                            : a->residual_dtype          ? "residual_dtype"
                            : a->residual_row_stride     ? "residual_row_stride"
                            : a->residual_out_row_stride ? "residual_out_row_stride"
                                                         : NULL;
        if (given)
            return nj_fail(NORMJIT_EINVAL, "%s: %s is only for add_rmsnorm and add_layernorm",
                           name, given);
    }
    if (d->tensors & NJ_T_HEADS) {
        if (a->heads == 0)
            a->heads = 1;
        if (a->heads < 1)
            return nj_fail(NORMJIT_EINVAL, "%s: heads (%lld) must be at least 1", name,
                           (long long)a->heads);
        if ((status = check_stride(&a->x_head_stride, a->hidden, a->hidden, "x_head_stride",
                                   "hidden")) != NORMJIT_OK ||
            (status = check_stride(&a->y_head_stride, a->hidden, a->hidden, "y_head_stride",
                                   "hidden")) != NORMJIT_OK)
            return status;
    } else {
        const char *given = a->heads           ? "heads"
                            : a->x_head_stride ? "x_head_stride"
                            : a->y_head_stride ? "y_head_stride"
                                               : NULL;
        if (given)
            return nj_fail(NORMJIT_EINVAL, "%s: %s is only for qk_rmsnorm", name, given);
        a->heads = 1;
    }
    return NORMJIT_OK;
}

/*
 * A row stride: 0 means the heads of a token packed (heads x head stride, or
 * hidden); it must leave room for them.
 */
static int check_row_stride(const normjit_norm_args *a, int64_t *stride, int64_t head_stride,
                            const char *what, const char *head_what)
{
    if (a->heads > 1) {
        if (a->heads > INT64_MAX / head_stride)
            return nj_fail(NORMJIT_EINVAL, "%s: heads (%lld) x %s (%lld) overflows", what,
                           (long long)a->heads, head_what, (long long)head_stride);
        if (*stride == 0)
            *stride = a->heads * head_stride;
        if (*stride < a->heads * head_stride)
            return nj_fail(NORMJIT_EINVAL, "%s (%lld) is smaller than heads (%lld) x %s (%lld)",
                           what, (long long)*stride, (long long)a->heads, head_what,
                           (long long)head_stride);
        return NORMJIT_OK;
    }
    return check_stride(stride, a->hidden, a->hidden, what, "hidden");
}

/* A row's width in elements: one row, or all its heads through their stride. */
static int64_t row_width(const normjit_norm_args *a, int64_t head_stride)
{
    return (a->heads - 1) * head_stride + a->hidden;
}

int nj_call_check(int op, const normjit_norm_args *in, nj_call *c)
{
    const nj_op_desc *d = nj_op_desc_of(op);
    normjit_norm_args *a = &c->a;
    nj_spec *s = &c->r.s;
    const char *name = d ? d->name : "normjit_norm";
    int status, tin, sx, sy, sw, sr;
    int64_t x_bytes, y_bytes, r_bytes = 0, ro_bytes = 0, sc_bytes = 0;

    memset(c, 0, sizeof *c);
    if (!d)
        return nj_fail(NORMJIT_EINVAL, "normjit_norm: op %d is not a normjit_op", op);
    if (!in)
        return nj_fail(NORMJIT_EINVAL, "%s: args is NULL", name);
    if ((status = nj_copy_versioned(a, sizeof *a, NJ_NORM_ARGS_V1_SIZE, in, in->struct_size,
                                    "normjit_norm_args")) != NORMJIT_OK)
        return status;
    if (a->flags & ~NJ_KNOWN_FLAGS)
        return nj_fail(NORMJIT_EINVAL, "%s: unknown flags 0x%x", name, a->flags & ~NJ_KNOWN_FLAGS);
    if ((status = check_value_dtype(a->x_dtype, "x_dtype")) != NORMJIT_OK)
        return status;
    if (!nj_dtype_is_float(a->y_dtype) && !nj_dtype_is_code(a->y_dtype))
        return nj_fail(NORMJIT_EINVAL,
                       "y_dtype %d is not a normjit dtype (NORMJIT_DTYPE_F32, _F16, _BF16, or a "
                       "quantized dtype with a quant mode)",
                       (int)a->y_dtype);
    if (a->hidden < 1)
        return nj_fail(NORMJIT_EINVAL, "%s: hidden (%lld) must be at least 1", name,
                       (long long)a->hidden);
    if (a->hidden > NJ_MAX_HIDDEN)
        return nj_fail(NORMJIT_EUNSUPPORTED, "%s: hidden (%lld) is larger than %d", name,
                       (long long)a->hidden, NJ_MAX_HIDDEN);
    if (a->rows < 0)
        return nj_fail(NORMJIT_EINVAL, "%s: rows (%lld) is negative", name, (long long)a->rows);
    if (!(a->eps >= 0.0f) || isinf(a->eps))
        return nj_fail(NORMJIT_EINVAL, "%s: eps (%g) must be finite and not negative", name,
                       (double)a->eps);
    if (a->reserved0)
        return nj_fail(NORMJIT_EINVAL, "%s: reserved0 (%d) must be 0", name, (int)a->reserved0);
    if (a->cast < NORMJIT_CAST_NONE || a->cast > NORMJIT_CAST_GEMMA)
        return nj_fail(NORMJIT_EINVAL, "%s: cast (%d) is not a normjit_cast", name, (int)a->cast);
    if ((status = check_op_fields(d, c)) != NORMJIT_OK)
        return status;
    /* In place is one tensor: x's sizes and strides, before y's strides are checked. */
    if (a->x && a->x == a->y &&
        (nj_dtype_size(a->x_dtype) != nj_dtype_size(a->y_dtype) ||
         a->x_head_stride != a->y_head_stride ||
         (a->x_row_stride ? a->x_row_stride : a->hidden * a->heads) !=
             (a->y_row_stride ? a->y_row_stride : a->hidden * a->heads)))
        return nj_fail(NORMJIT_EINVAL,
                       "%s: in place (y == x) needs the same element size and row stride for x "
                       "and y",
                       name);
    if ((status = check_row_stride(a, &a->x_row_stride, a->x_head_stride, "x_row_stride",
                                   "x_head_stride")) != NORMJIT_OK ||
        (status = check_row_stride(a, &a->y_row_stride, a->y_head_stride, "y_row_stride",
                                   "y_head_stride")) != NORMJIT_OK)
        return status;
    tin = (d->tensors & NJ_T_RES) ? a->residual_dtype : a->x_dtype;
    if (a->weight || a->bias) {
        if (!nj_dtype_is_code(a->weight_dtype) &&
            (status = check_value_dtype(a->weight_dtype, "weight_dtype")) != NORMJIT_OK)
            return status;
        if (a->weight_dtype != tin && a->weight_dtype != NORMJIT_DTYPE_F32)
            return nj_fail(NORMJIT_EUNSUPPORTED,
                           "%s: weight_dtype %s with %s %s: weight and bias must be %s or f32",
                           name, nj_dtype_name(a->weight_dtype),
                           (d->tensors & NJ_T_RES) ? "residual_dtype" : "x_dtype",
                           nj_dtype_name(tin), nj_dtype_name(tin));
    } else {
        a->weight_dtype = tin; /* unused; one kernel serves every weight dtype */
    }
    if ((a->flags & NORMJIT_NORM_WEIGHT_PLUS_ONE) && !a->weight)
        return nj_fail(NORMJIT_EINVAL, "%s: NORMJIT_NORM_WEIGHT_PLUS_ONE needs a weight", name);
    if (a->cast == NORMJIT_CAST_GEMMA && !a->weight)
        return nj_fail(NORMJIT_EINVAL, "%s: NORMJIT_CAST_GEMMA needs a weight (it scales by 1 + "
                                       "weight)",
                       name);
    if (!(d->tensors & NJ_T_B) && a->bias)
        return nj_fail(NORMJIT_EINVAL, "%s: bias is a LayerNorm argument; pass NULL", name);
    if (!(d->tensors & NJ_T_MEAN) && a->mean)
        return nj_fail(NORMJIT_EINVAL, "%s: mean is a LayerNorm output; pass NULL", name);
    if ((status = check_quant(d, c)) != NORMJIT_OK)
        return status;

    s->op = op;
    s->tx = a->x_dtype;
    s->ty = a->y_dtype;
    s->tw = a->weight_dtype;
    s->tr = (d->tensors & NJ_T_RES) ? a->residual_dtype : 0;
    s->quant = a->quant;
    s->group = a->quant == NORMJIT_QUANT_GROUP ? a->group_size : 0;
    s->pow2 = (a->flags & NORMJIT_NORM_SCALES_POW2) != 0;
    s->cast = a->cast;
    s->hidden = a->hidden;
    if (a->rows == 0) {
        c->noop = 1;
        return NORMJIT_OK;
    }

    sx = nj_dtype_size(a->x_dtype);
    sy = nj_dtype_size(a->y_dtype);
    sw = nj_dtype_size(a->weight_dtype);
    sr = s->tr ? nj_dtype_size(s->tr) : 0;
    if (!a->x)
        return nj_fail(NORMJIT_EINVAL, "%s: x is NULL", name);
    if (!a->y)
        return nj_fail(NORMJIT_EINVAL, "%s: y is NULL", name);
    if ((d->required & NJ_T_RES) && !a->residual)
        return nj_fail(NORMJIT_EINVAL, "%s: residual is NULL", name);
    if ((d->required & NJ_T_RES_OUT) && !a->residual_out)
        return nj_fail(NORMJIT_EINVAL, "%s: residual_out is NULL (pass residual to update it in "
                                       "place)",
                       name);
    if (a->quant == NORMJIT_QUANT_TENSOR && !a->scale)
        return nj_fail(NORMJIT_EINVAL, "%s: scale is NULL (quant tensor reads the fp32 scale)",
                       name);
    if ((a->quant == NORMJIT_QUANT_TOKEN || a->quant == NORMJIT_QUANT_GROUP) && !a->scales)
        return nj_fail(NORMJIT_EINVAL, "%s: scales is NULL (quant %s writes the fp32 scales)",
                       name, nj_quant_name(a->quant));
    if ((status = check_aligned(a->x, sx, "x")) != NORMJIT_OK ||
        (status = check_aligned(a->y, sy, "y")) != NORMJIT_OK ||
        (status = check_aligned(a->weight, sw, "weight")) != NORMJIT_OK ||
        (status = check_aligned(a->bias, sw, "bias")) != NORMJIT_OK ||
        (sr && (status = check_aligned(a->residual, sr, "residual")) != NORMJIT_OK) ||
        (sr && (status = check_aligned(a->residual_out, sr, "residual_out")) != NORMJIT_OK) ||
        (status = check_aligned(a->rstd, 4, "rstd")) != NORMJIT_OK ||
        (status = check_aligned(a->mean, 4, "mean")) != NORMJIT_OK ||
        (status = check_aligned(a->scale, 4, "scale")) != NORMJIT_OK ||
        (status = check_aligned(a->scales, 4, "scales")) != NORMJIT_OK)
        return status;
    if (!span_bytes(a->rows, a->x_row_stride, row_width(a, a->x_head_stride), sx, &x_bytes) ||
        !span_bytes(a->rows, a->y_row_stride, row_width(a, a->y_head_stride), sy, &y_bytes) ||
        (sr && !span_bytes(a->rows, a->residual_row_stride, a->hidden, sr, &r_bytes)) ||
        (sr && !span_bytes(a->rows, a->residual_out_row_stride, a->hidden, sr, &ro_bytes)) ||
        (uintptr_t)a->x > UINTPTR_MAX - (uint64_t)x_bytes ||
        (uintptr_t)a->y > UINTPTR_MAX - (uint64_t)y_bytes ||
        (uintptr_t)a->residual > UINTPTR_MAX - (uint64_t)r_bytes ||
        (uintptr_t)a->residual_out > UINTPTR_MAX - (uint64_t)ro_bytes)
        return nj_fail(NORMJIT_EINVAL, "%s: rows (%lld) x row stride overflows the address space",
                       name, (long long)a->rows);
    if (a->rows > INT64_MAX / 4 / a->heads)
        return nj_fail(NORMJIT_EINVAL, "%s: rows (%lld) is too large", name, (long long)a->rows);
    if (a->quant == NORMJIT_QUANT_TOKEN)
        sc_bytes = a->rows * 4;
    else if (a->quant == NORMJIT_QUANT_GROUP &&
             !span_bytes(a->flags & NORMJIT_NORM_SCALES_COLUMN_MAJOR ? a->hidden / a->group_size
                                                                     : a->rows,
                         a->scales_stride,
                         a->flags & NORMJIT_NORM_SCALES_COLUMN_MAJOR ? a->rows
                                                                     : a->hidden / a->group_size,
                         4, &sc_bytes))
        return nj_fail(NORMJIT_EINVAL, "%s: scales_stride (%lld) overflows the address space",
                       name, (long long)a->scales_stride);

    /* Overlaps. y may be x and residual_out may be residual, as the same tensor. */
    if (a->x == a->y) {
        /* the sizes and strides were checked above */
    } else if (overlap(a->x, x_bytes, a->y, y_bytes)) {
        return nj_fail(NORMJIT_EINVAL, "%s: x and y overlap without being the same tensor", name);
    }
    if (sr && a->residual == a->residual_out) {
        if (a->residual_row_stride != a->residual_out_row_stride)
            return nj_fail(NORMJIT_EINVAL,
                           "%s: in place (residual_out == residual) needs the same row stride",
                           name);
    } else if (sr && overlap(a->residual, r_bytes, a->residual_out, ro_bytes)) {
        return nj_fail(NORMJIT_EINVAL,
                       "%s: residual and residual_out overlap without being the same tensor",
                       name);
    }
    {
        /* Every pair of which one is written or both are rows (the two pairs above excepted). */
        enum { T_X, T_Y, T_W, T_B, T_RES, T_RES_OUT, T_RSTD, T_MEAN, T_SCALE, T_SCALES, T_N };
        const struct {
            const void *p;
            int64_t bytes;
            const char *what;
            int written, row;
        } t[T_N] = {{a->x, x_bytes, "x", 0, 1},
                    {a->y, y_bytes, "y", 1, 1},
                    {a->weight, a->hidden * sw, "weight", 0, 0},
                    {a->bias, a->hidden * sw, "bias", 0, 0},
                    {sr ? a->residual : NULL, r_bytes, "residual", 0, 1},
                    {sr ? a->residual_out : NULL, ro_bytes, "residual_out", 1, 1},
                    {a->rstd, a->rows * a->heads * 4, "rstd", 1, 0},
                    {a->mean, a->rows * 4, "mean", 1, 0},
                    {a->scale, 4, "scale", 0, 0},
                    {a->scales, sc_bytes, "scales", 1, 0}};
        int i, j;
        for (i = 0; i < T_N; i++)
            for (j = i + 1; j < T_N; j++) {
                if (!(t[i].written || t[j].written || (t[i].row && t[j].row)))
                    continue;
                if ((i == T_X && j == T_Y) || (i == T_RES && j == T_RES_OUT))
                    continue; /* checked above */
                if (!overlap(t[i].p, t[i].bytes, t[j].p, t[j].bytes))
                    continue;
                /* Name the small outputs first: "rstd or mean overlaps y". */
                if (j == T_RSTD || j == T_MEAN)
                    return nj_fail(NORMJIT_EINVAL, "%s: rstd or mean overlaps %s", name,
                                   t[i].what);
                if (j == T_SCALE || j == T_SCALES)
                    return nj_fail(NORMJIT_EINVAL, "%s: %s overlaps %s", name, t[j].what,
                                   t[i].what);
                return nj_fail(NORMJIT_EINVAL, "%s: %s and %s overlap", name, t[i].what,
                               t[j].what);
            }
    }
    {
        const vtensor vt[] = {{a->x, sx, a->x_row_stride, a->x_head_stride},
                              {a->y, sy, a->y_row_stride, a->y_head_stride},
                              {a->weight, sw, 0, 0},
                              {a->bias, sw, 0, 0},
                              {sr ? a->residual : NULL, sr, a->residual_row_stride, 0},
                              {sr ? a->residual_out : NULL, sr, a->residual_out_row_stride, 0}};
        c->r.vec = widest_vec(c, vt, (int)(sizeof vt / sizeof vt[0]));
    }
    c->r.bucket = nj_bucket_of_rows(a->rows * a->heads);
    return NORMJIT_OK;
}

void nj_call_params(const nj_call *c, nj_params *p)
{
    const normjit_norm_args *a = &c->a;
    const int column_major = (a->flags & NORMJIT_NORM_SCALES_COLUMN_MAJOR) != 0;
    memset(p, 0, sizeof *p);
    p->x = a->x;
    p->y = a->y;
    p->w = a->weight;
    p->b = a->bias;
    p->res = c->r.s.tr ? a->residual : NULL;
    p->res_out = c->r.s.tr ? a->residual_out : NULL;
    p->rstd = a->rstd;
    p->mean = a->mean;
    p->scale = a->scale;
    p->scales = a->scales;
    p->rows = a->rows * a->heads;
    p->x_stride = a->x_row_stride;
    p->y_stride = a->y_row_stride;
    p->res_stride = a->residual_row_stride;
    p->res_out_stride = a->residual_out_row_stride;
    p->heads = a->heads;
    p->x_head_stride = a->x_head_stride;
    p->y_head_stride = a->y_head_stride;
    /* scales[row * row_stride + group * group_stride] */
    p->scales_row_stride = a->quant == NORMJIT_QUANT_GROUP && !column_major ? a->scales_stride : 1;
    p->scales_group_stride = column_major ? a->scales_stride : 1;
    p->eps = a->eps;
    p->w_offset =
        (a->flags & NORMJIT_NORM_WEIGHT_PLUS_ONE) || a->cast == NORMJIT_CAST_GEMMA ? 1.0f : 0.0f;
    p->min_scale = a->min_scale;
}

int nj_prepare_check(const normjit_prepare_args *in, normjit_prepare_args *a, nj_spec *s)
{
    const nj_op_desc *d;
    size_t i;
    int status, tin;

    if (!in)
        return nj_fail(NORMJIT_EINVAL, "prepare: args is NULL");
    if ((status = nj_copy_versioned(a, sizeof *a, NJ_PREPARE_ARGS_V1_SIZE, in, in->struct_size,
                                    "normjit_prepare_args")) != NORMJIT_OK)
        return status;
    if (a->flags & ~NORMJIT_PREPARE_ALL_ALIGNMENTS)
        return nj_fail(NORMJIT_EINVAL, "prepare: unknown flags 0x%x",
                       a->flags & ~NORMJIT_PREPARE_ALL_ALIGNMENTS);
    if (!(d = nj_op_desc_of(a->op)))
        return nj_fail(NORMJIT_EINVAL, "prepare: op %d is not a normjit_op", (int)a->op);
    if ((status = check_value_dtype(a->x_dtype, "x_dtype")) != NORMJIT_OK)
        return status;
    if (!nj_dtype_is_float(a->y_dtype) && !nj_dtype_is_code(a->y_dtype))
        return nj_fail(NORMJIT_EINVAL, "prepare: y_dtype %d is not a normjit dtype",
                       (int)a->y_dtype);
    if (a->reserved0)
        return nj_fail(NORMJIT_EINVAL, "prepare: reserved0 (%d) must be 0", (int)a->reserved0);
    if (a->norm_flags & ~NJ_KNOWN_FLAGS)
        return nj_fail(NORMJIT_EINVAL, "prepare: unknown norm_flags 0x%x",
                       a->norm_flags & ~NJ_KNOWN_FLAGS);
    if (d->tensors & NJ_T_RES) {
        if (a->residual_dtype == NORMJIT_DTYPE_NONE)
            a->residual_dtype = a->x_dtype;
        if ((status = check_value_dtype(a->residual_dtype, "residual_dtype")) != NORMJIT_OK)
            return status;
    } else if (a->residual_dtype) {
        return nj_fail(NORMJIT_EINVAL,
                       "prepare: residual_dtype is only for add_rmsnorm and add_layernorm");
    }
    tin = (d->tensors & NJ_T_RES) ? a->residual_dtype : a->x_dtype;
    if (a->weight_dtype == NORMJIT_DTYPE_NONE)
        a->weight_dtype = tin;
    if (!nj_dtype_is_code(a->weight_dtype) &&
        (status = check_value_dtype(a->weight_dtype, "weight_dtype")) != NORMJIT_OK)
        return status;
    if (a->weight_dtype != tin && a->weight_dtype != NORMJIT_DTYPE_F32)
        return nj_fail(NORMJIT_EUNSUPPORTED, "prepare: weight_dtype must be %s or f32",
                       (d->tensors & NJ_T_RES) ? "residual_dtype" : "x_dtype");
    if (a->cast < NORMJIT_CAST_NONE || a->cast > NORMJIT_CAST_GEMMA)
        return nj_fail(NORMJIT_EINVAL, "prepare: cast (%d) is not a normjit_cast", (int)a->cast);
    if (a->quant < NORMJIT_QUANT_NONE || a->quant > NORMJIT_QUANT_GROUP)
        return nj_fail(NORMJIT_EINVAL, "prepare: quant (%d) is not a normjit_quant",
                       (int)a->quant);
    if (a->quant && !d->quant)
        return nj_fail(NORMJIT_EUNSUPPORTED, "prepare: %s: quant must be NORMJIT_QUANT_NONE",
                       d->name);
    if (!a->quant && nj_dtype_is_code(a->y_dtype))
        return nj_fail(NORMJIT_EINVAL, "prepare: y_dtype %s needs a quant mode",
                       nj_dtype_name(a->y_dtype));
    if (a->quant && !nj_dtype_is_code(a->y_dtype))
        return nj_fail(NORMJIT_EINVAL, "prepare: quant %s needs y_dtype fp8e4m3, fp8e5m2 or int8",
                       nj_quant_name(a->quant));
    if ((a->norm_flags & NORMJIT_NORM_SCALES_POW2) && a->quant != NORMJIT_QUANT_GROUP)
        return nj_fail(NORMJIT_EINVAL, "prepare: NORMJIT_NORM_SCALES_POW2 needs quant GROUP");
    if ((a->quant == NORMJIT_QUANT_GROUP) != (a->group_size != 0) ||
        (a->group_size && a->group_size != 64 && a->group_size != 128))
        return nj_fail(NORMJIT_EINVAL, "prepare: group_size (%d) must be 64 or 128 with quant "
                                       "group, else 0",
                       (int)a->group_size);
    if (a->n_hidden && !a->hidden)
        return nj_fail(NORMJIT_EINVAL, "prepare: hidden is NULL but n_hidden is %zu",
                       a->n_hidden);
    for (i = 0; i < a->n_hidden; i++) {
        if (a->hidden[i] < 1 || a->hidden[i] > NJ_MAX_HIDDEN)
            return nj_fail(a->hidden[i] < 1 ? NORMJIT_EINVAL : NORMJIT_EUNSUPPORTED,
                           "prepare: hidden[%zu] = %lld is outside 1..%d", i,
                           (long long)a->hidden[i], NJ_MAX_HIDDEN);
        if (a->group_size && a->hidden[i] % a->group_size)
            return nj_fail(NORMJIT_EINVAL, "prepare: group_size (%d) does not divide hidden[%zu] "
                                           "= %lld",
                           (int)a->group_size, i, (long long)a->hidden[i]);
    }
    memset(s, 0, sizeof *s);
    s->op = a->op;
    s->tx = a->x_dtype;
    s->ty = a->y_dtype;
    s->tw = a->weight_dtype;
    s->tr = (d->tensors & NJ_T_RES) ? a->residual_dtype : 0;
    s->quant = a->quant;
    s->group = a->group_size;
    s->pow2 = a->quant == NORMJIT_QUANT_GROUP && (a->norm_flags & NORMJIT_NORM_SCALES_POW2);
    s->cast = a->cast;
    return NORMJIT_OK;
}
