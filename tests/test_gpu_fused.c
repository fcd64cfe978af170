/*
 * GPU suite of the fused operations: residual add, quantized outputs, cast
 * modes and QK-norm, against the double-precision reference of
 * tools/hostref.h on fresh random data.
 *
 * Every case runs twice, its outputs poisoned with 0xFF and then with 0x00
 * (int8 has no NaN, and a NaN output must show as written): what the call
 * writes must be the same both times and what it does not write must keep
 * its poison, or the input it held when in place. Then:
 *  - y against the reference: the normalized error against float64 and, for
 *    16-bit outputs, the bits of the cast mode's formula (>= 99.9% equal per
 *    test, the rest within one ulp); quantized codes within one step of the
 *    reference with >= 99.9% exact, scales within 1e-6 relative;
 *  - the fused add: residual_out bit for bit the host's rounded sum, and y,
 *    scales and statistics bit for bit what the plain op gives on that sum
 *    (once on the device's residual_out, once on the host's sum).
 * Exits 77 (skip) without a GPU. NORMJIT_TEST_QUICK=1 runs a subset.
 */
#include "gpu.h"
#include "testutil.h"
#include "tuning.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#define RMS NORMJIT_OP_RMSNORM
#define LN NORMJIT_OP_LAYERNORM
#define ARMS NORMJIT_OP_ADD_RMSNORM
#define ALN NORMJIT_OP_ADD_LAYERNORM
#define QK NORMJIT_OP_QK_RMSNORM
#define F32 NORMJIT_DTYPE_F32
#define F16 NORMJIT_DTYPE_F16
#define BF16 NORMJIT_DTYPE_BF16
#define E4M3 NORMJIT_DTYPE_FP8_E4M3
#define E5M2 NORMJIT_DTYPE_FP8_E5M2
#define INT8 NORMJIT_DTYPE_INT8
#define NONE_Q NORMJIT_QUANT_NONE
#define TENSOR NORMJIT_QUANT_TENSOR
#define TOKEN NORMJIT_QUANT_TOKEN
#define GROUP NORMJIT_QUANT_GROUP
#define CAST_NONE NORMJIT_CAST_NONE
#define LLAMA NORMJIT_CAST_LLAMA
#define GEMMA NORMJIT_CAST_GEMMA
#define COLMAJ NORMJIT_NORM_SCALES_COLUMN_MAJOR
#define POW2 NORMJIT_NORM_SCALES_POW2
#define PLUS1 NORMJIT_NORM_WEIGHT_PLUS_ONE

#define EPS 1e-5f
#define SCALE_TOL 1e-6     /* relative, on amax: the scales' tolerance */
#define EXACT_RATIO 0.999  /* bits equal (y) or codes exact, per test */
#define SLACK_BYTES 64     /* poisoned bytes after every buffer */
#define BATCH_ROWS 20000

static nj_gpu gpu;
static normjit_ctx *ctx;
static nj_rng rng;

/* ------------------------------------------------------------------------ */
/* Cases                                                                     */

enum { SPECIAL_NONE, SPECIAL_NONFINITE };

typedef struct fcase {
    int op;
    int tx, tr, ty, tw;     /* tr: residual dtype (ADD ops only); tw: weight and bias */
    int quant, group, cast;
    uint32_t flags;         /* NORMJIT_NORM_* */
    int64_t hidden, rows, heads;
    int64_t xs, ys, rs, ros; /* row strides in elements, 0: the default */
    int64_t xhs, yhs;        /* QK head strides, 0: hidden */
    int64_t x_off, y_off;    /* elements before the view in its buffer */
    int64_t r_off, ro_off;
    int64_t scales_pad;      /* GROUP: scales_stride = default + this (0: pass 0) */
    int weight, bias, stats;
    int in_place_y, in_place_res;
    int cap;                 /* TOKEN: pass an amax cap */
    double cap_value, tensor_scale, min_scale;
    double xscale, xshift, wscale;
    int special;
    int plain_check;         /* ADD ops: compare with the plain op on the sum */
    int expect_saturation;   /* at least 1% of the codes must be +-qmax */
    int unaligned;           /* narrower kernels: not in the parallel prepare */
} fcase;

typedef struct case_list {
    fcase *v;
    size_t n, cap;
} case_list;

static void push(case_list *l, const fcase *c)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->v = realloc(l->v, l->cap * sizeof *l->v);
        assert_non_null(l->v);
    }
    l->v[l->n] = *c;
    /* (1 + w) needs a weight (the API refuses it without one): a case without a weight
       does without the offset. */
    if (!c->weight) {
        l->v[l->n].flags &= ~(unsigned)PLUS1;
        if (c->cast == NORMJIT_CAST_GEMMA)
            l->v[l->n].weight = 1;
    }
    l->n++;
}

static int is_add(int op)
{
    return op == ARMS || op == ALN;
}

static int is_ln(int op)
{
    return op == LN || op == ALN;
}

static int plain_of(int op)
{
    return op == ARMS ? RMS : op == ALN ? LN : op;
}

static int in_dtype(const fcase *c)
{
    return is_add(c->op) ? c->tr : c->tx;
}

static const char *dname(int dtype)
{
    static const char *names[] = {"none", "f32", "f16", "bf16", "e4m3", "e5m2", "int8"};
    return dtype >= 0 && dtype <= 6 ? names[dtype] : "?";
}

static const char *opname(int op)
{
    static const char *names[] = {"?", "rmsnorm", "layernorm", "add_rmsnorm", "add_layernorm",
                                  "qk_rmsnorm"};
    return op >= 1 && op <= 5 ? names[op] : "?";
}

static void describe(const fcase *c, char *out, size_t size)
{
    snprintf(out, size,
             "%s x=%s res=%s y=%s w=%s hidden=%lld rows=%lld heads=%lld quant=%d group=%d "
             "cast=%d flags=0x%x strides=%lld/%lld/%lld/%lld head_strides=%lld/%lld "
             "offsets=%lld/%lld/%lld/%lld in_place=%d/%d cap=%d special=%d (seed %llu)",
             opname(c->op), dname(c->tx), dname(c->tr), dname(c->ty), dname(c->tw),
             (long long)c->hidden, (long long)c->rows, (long long)c->heads, c->quant, c->group,
             c->cast, c->flags, (long long)c->xs, (long long)c->ys, (long long)c->rs,
             (long long)c->ros, (long long)c->xhs, (long long)c->yhs, (long long)c->x_off,
             (long long)c->y_off, (long long)c->r_off, (long long)c->ro_off, c->in_place_y,
             c->in_place_res, c->cap, c->special, (unsigned long long)nj_test_seed());
}

static fcase mk(int op, int dtype, int64_t hidden, int64_t rows)
{
    fcase c;
    memset(&c, 0, sizeof c);
    c.op = op;
    c.tx = c.ty = c.tw = dtype;
    c.tr = is_add(op) ? dtype : 0;
    c.hidden = hidden;
    c.rows = rows;
    c.heads = 1;
    c.weight = 1;
    c.bias = is_ln(op);
    c.stats = op != QK;
    c.xscale = 1.0;
    c.xshift = is_ln(op) ? 0.5 : 0.0;
    c.wscale = 1.0;
    c.plain_check = is_add(op);
    return c;
}

/* The quantized outputs under test. */
typedef struct quant_spec {
    int ty, quant, group;
    uint32_t flags;
    double tensor_scale;
    int cap;
    double cap_value, min_scale;
    int64_t scales_pad;
} quant_spec;

static const quant_spec quant_specs[] = {
    {E4M3, TENSOR, 0, 0, 0.02, 0, 0, 0, 0},
    {E5M2, TENSOR, 0, 0, 0.001, 0, 0, 0, 0},
    {INT8, TENSOR, 0, 0, 0.03, 0, 0, 0, 0},
    {E4M3, TOKEN, 0, 0, 0, 0, 0, 0, 0},
    {E4M3, TOKEN, 0, 0, 0, 1, 2.0, 0, 0}, /* a cap below most rows' amax: they saturate */
    {E5M2, TOKEN, 0, 0, 0, 0, 0, 0, 0},
    {INT8, TOKEN, 0, 0, 0, 0, 0, 0, 0},
    {INT8, TOKEN, 0, 0, 0, 1, 2.0, 0.02, 0}, /* min_scale 0.02 > cap / 127: it decides */
    {E4M3, GROUP, 128, 0, 0, 0, 0, 0, 0},
    {E4M3, GROUP, 64, 0, 0, 0, 0, 0, 3},
    {E4M3, GROUP, 128, COLMAJ, 0, 0, 0, 0, 0},
    {E4M3, GROUP, 128, COLMAJ | POW2, 0, 0, 0, 0, 5},
    {E4M3, GROUP, 64, POW2, 0, 0, 0, 0, 0},
    {INT8, GROUP, 128, 0, 0, 0, 0, 0, 0},
    {E5M2, GROUP, 64, COLMAJ | POW2, 0, 0, 0, 1e-4, 0}, /* min_scale above most amax / 57344 */
};
#define N_QUANT_SPECS (sizeof quant_specs / sizeof quant_specs[0])

static void set_quant(fcase *c, const quant_spec *q)
{
    c->ty = q->ty;
    c->quant = q->quant;
    c->group = q->group;
    c->flags |= q->flags;
    c->tensor_scale = q->tensor_scale;
    c->cap = q->cap;
    c->cap_value = q->cap_value;
    c->min_scale = q->min_scale;
    c->scales_pad = q->scales_pad;
}

/* ------------------------------------------------------------------------ */
/* Buffers and views                                                         */

typedef struct buffer {
    CUdeviceptr dev;
    size_t bytes;          /* without the slack */
    unsigned char *init;   /* contents before the call; NULL: poisoned */
    unsigned char *got[2]; /* after the call, over poison 0xFF and 0x00 */
    unsigned char *mask;   /* 1 for every byte the call writes */
    int output;
} buffer;

static const unsigned char poisons[2] = {0xff, 0x00};

static void buffer_new(buffer *b, size_t bytes, int has_init, int output)
{
    memset(b, 0, sizeof *b);
    b->bytes = bytes;
    b->output = output;
    b->dev = nj_gpu_alloc(&gpu, bytes + SLACK_BYTES);
    if (has_init) {
        b->init = calloc(bytes + SLACK_BYTES, 1);
        assert_non_null(b->init);
    }
    if (output) {
        b->got[0] = malloc(bytes + SLACK_BYTES);
        b->got[1] = malloc(bytes + SLACK_BYTES);
        b->mask = calloc(bytes + SLACK_BYTES, 1);
        assert_non_null(b->got[0]);
        assert_non_null(b->got[1]);
        assert_non_null(b->mask);
    }
}

static void buffer_free(buffer *b)
{
    nj_gpu_free(&gpu, b->dev);
    free(b->init);
    free(b->got[0]);
    free(b->got[1]);
    free(b->mask);
    memset(b, 0, sizeof *b);
}

/* Contents before the call: the inputs, poison elsewhere (slack included). */
static void buffer_reset(const buffer *b, int k)
{
    if (b->init)
        nj_gpu_upload(&gpu, b->dev, b->init, b->bytes + SLACK_BYTES);
    else
        nj_gpu_fill(&gpu, b->dev, b->bytes + SLACK_BYTES, poisons[k]);
}

typedef struct view {
    buffer *buf;
    int dtype, esize;
    int64_t off, rows, heads, hidden, rs, hs; /* elements */
} view;

static view mkview(int dtype, int64_t off, int64_t rows, int64_t heads, int64_t hidden,
                   int64_t rs, int64_t hs)
{
    view v;
    v.buf = NULL;
    v.dtype = dtype;
    v.esize = nj_host_dtype_size(dtype);
    v.off = off;
    v.rows = rows;
    v.heads = heads;
    v.hidden = hidden;
    v.hs = hs ? hs : hidden;
    v.rs = rs ? rs : heads * v.hs;
    return v;
}

static size_t view_bytes(const view *v)
{
    return (size_t)(v->off + (v->rows - 1) * v->rs + (v->heads - 1) * v->hs + v->hidden) *
           (size_t)v->esize;
}

static int64_t vidx(const view *v, int64_t r, int64_t h, int64_t i)
{
    return v->off + nj_qk_offset(r, h, i, v->rs, v->hs);
}

static void *vptr(const view *v)
{
    return NJ_PTR(v->buf->dev + (CUdeviceptr)(v->off * v->esize));
}

static void mark_view(const view *v)
{
    int64_t r, h;
    for (r = 0; r < v->rows; r++)
        for (h = 0; h < v->heads; h++)
            memset(v->buf->mask + (size_t)vidx(v, r, h, 0) * v->esize, 1,
                   (size_t)(v->hidden * v->esize));
}

static uint32_t load_bits(const unsigned char *base, int esize, int64_t i)
{
    uint32_t u = 0;
    memcpy(&u, base + (size_t)i * esize, (size_t)esize);
    return u;
}

/* The bits a value has in a dtype (v exactly representable, or rounded as the kernels do). */
static uint32_t encode_bits(int dtype, double v)
{
    float f = (float)v;
    uint32_t u;
    switch (dtype) {
    case F32:
        memcpy(&u, &f, 4);
        return u;
    case F16:
        return nj_f32_to_f16(f);
    case BF16:
        return nj_f32_to_bf16(f);
    default:
        return nj_quant_encode(dtype, f);
    }
}

static double decode_bits(int dtype, uint32_t bits)
{
    return nj_host_get(&bits, dtype, 0); /* little endian: the low bytes hold the element */
}

/* Bit equality, with every NaN equal to every NaN and +0 to -0. */
static int same_bits(int dtype, uint32_t a, uint32_t b)
{
    double va, vb;
    if (a == b)
        return 1;
    va = decode_bits(dtype, a);
    vb = decode_bits(dtype, b);
    return (isnan(va) && isnan(vb)) || (va == 0.0 && vb == 0.0);
}

/* Distance in units in the last place between two values of a 16-bit float dtype. */
static long ulp16(uint32_t a, uint32_t b)
{
    long oa = (a & 0x8000) ? -(long)(a & 0x7fff) : (long)(a & 0x7fff);
    long ob = (b & 0x8000) ? -(long)(b & 0x7fff) : (long)(b & 0x7fff);
    return labs(oa - ob);
}

/* ------------------------------------------------------------------------ */
/* Counts                                                                    */

typedef struct tally {
    long y_total, y_equal, y_ulp1; /* 16-bit outputs against the cast mode's formula */
    long codes, codes_exact, saturated;
    long scales;
    double scale_err; /* largest relative scale error where finite */
    long plain_compared; /* fused outputs compared bit for bit with the plain op */
    long cases, elements;
} tally;

static tally t_test, t_all;

static void tally_begin(void)
{
    memset(&t_test, 0, sizeof t_test);
}

/* Per test: >= 99.9% of y bits equal to the formula and of codes exact. */
static void tally_end(const char *test)
{
    t_all.y_total += t_test.y_total;
    t_all.y_equal += t_test.y_equal;
    t_all.y_ulp1 += t_test.y_ulp1;
    t_all.codes += t_test.codes;
    t_all.codes_exact += t_test.codes_exact;
    t_all.saturated += t_test.saturated;
    t_all.scales += t_test.scales;
    t_all.scale_err = fmax(t_all.scale_err, t_test.scale_err);
    t_all.plain_compared += t_test.plain_compared;
    t_all.cases += t_test.cases;
    t_all.elements += t_test.elements;
    printf("# %s: %ld cases, %ld elements", test, t_test.cases, t_test.elements);
    if (t_test.y_total)
        printf("; y bits equal to the formula %ld/%ld (%ld more within one ulp)", t_test.y_equal,
               t_test.y_total, t_test.y_ulp1);
    if (t_test.codes)
        printf("; codes exact %ld/%ld (%ld at +-qmax)", t_test.codes_exact, t_test.codes,
               t_test.saturated);
    if (t_test.scales)
        printf("; %ld scales, largest relative error %.2g", t_test.scales, t_test.scale_err);
    if (t_test.plain_compared)
        printf("; %ld fused outputs equal to the plain op's", t_test.plain_compared);
    printf("\n");
    if (t_test.y_total && (double)t_test.y_equal < EXACT_RATIO * (double)t_test.y_total)
        fail_msg("%s: only %ld of %ld output bits equal the formula (seed %llu)", test,
                 t_test.y_equal, t_test.y_total, (unsigned long long)nj_test_seed());
    if (t_test.codes && (double)t_test.codes_exact < EXACT_RATIO * (double)t_test.codes)
        fail_msg("%s: only %ld of %ld codes exact (seed %llu)", test, t_test.codes_exact,
                 t_test.codes, (unsigned long long)nj_test_seed());
}

/* ------------------------------------------------------------------------ */
/* One case                                                                  */

typedef struct layout {
    view x, y, r, ro, y2;
    buffer bx, by, br, bro, bw, bb, bstats, bscales, bscale;
    buffer by2, bstats2, bscales2, bsum; /* the plain op's outputs and the host's sum */
    int64_t groups, scales_stride, n_scales;
} layout;

static int64_t scales_count(const fcase *c, int64_t groups, int64_t stride)
{
    if (c->quant == TOKEN)
        return c->rows;
    if (c->quant != GROUP)
        return 0;
    return (c->flags & COLMAJ) ? (groups - 1) * stride + c->rows
                               : (c->rows - 1) * stride + groups;
}

static void mark_scales(const fcase *c, const layout *L, unsigned char *mask)
{
    int64_t r, g;
    if (c->quant == TOKEN)
        memset(mask, 1, (size_t)c->rows * 4);
    if (c->quant == GROUP)
        for (r = 0; r < c->rows; r++)
            for (g = 0; g < L->groups; g++)
                memset(mask + 4 * nj_group_scale_index(r, g, L->scales_stride,
                                                       (c->flags & COLMAJ) != 0),
                       1, 4);
}

static void fill_random(unsigned char *base, int dtype, size_t n, double shift, double scale)
{
    size_t i;
    for (i = 0; i < n; i++)
        nj_host_put(base, dtype, i, shift + scale * nj_rng_normal(&rng));
}

/* Non-finite inputs and an overflowing weight, on rows 1 to 4 and 5 on (see test_nonfinite). */
static void apply_special(const fcase *c, layout *L)
{
    const int64_t H = c->hidden, j0 = H / 2, j1 = H / 3, heads = L->x.heads;
    const int rms_kind = !is_ln(c->op);
    int64_t r;
    nj_host_put(L->bx.init, c->tx, (size_t)vidx(&L->x, 1, 1 % heads, 3), NAN);
    nj_host_put(L->bx.init, c->tx, (size_t)vidx(&L->x, 2, 2 % heads, 5), INFINITY);
    if (is_add(c->op)) {
        nj_host_put(L->br.init, c->tr, (size_t)vidx(&L->r, 3, 0, 7), -INFINITY);
        /* A sum that overflows fp32 (and every residual dtype). */
        nj_host_put(L->bx.init, c->tx, (size_t)vidx(&L->x, 4, 0, 9), 2e38);
        nj_host_put(L->br.init, c->tr, (size_t)vidx(&L->r, 4, 0, 9), 2e38);
    } else {
        nj_host_put(L->bx.init, c->tx, (size_t)vidx(&L->x, 3, 3 % heads, 7), -INFINITY);
    }
    if (!rms_kind || c->tw != F32)
        return;
    /* An fp32 weight of 3e38 turns x_hat = 8 into an infinite value (rows 5 on), 0 elsewhere. */
    nj_host_put(L->bw.init, F32, (size_t)j0, 3e38);
    nj_host_put(L->bw.init, F32, (size_t)j1, -3e38);
    for (r = 0; r < c->rows; r++) {
        int64_t h;
        for (h = 0; h < heads; h++) {
            nj_host_put(L->bx.init, c->tx, (size_t)vidx(&L->x, r, h, j0), r >= 5 ? 8.0 : 0.0);
            nj_host_put(L->bx.init, c->tx, (size_t)vidx(&L->x, r, h, j1), r >= 5 ? 8.0 : 0.0);
            if (is_add(c->op)) {
                nj_host_put(L->br.init, c->tr, (size_t)vidx(&L->r, r, h, j0), 0.0);
                nj_host_put(L->br.init, c->tr, (size_t)vidx(&L->r, r, h, j1), 0.0);
            }
        }
    }
}

static int special_row(const fcase *c, int64_t r)
{
    return c->special && r >= 1 && r <= 4;
}

/* The arguments of the case's call (plain: the plain op on `x_view` of residual dtype). */
static normjit_norm_args make_args(const fcase *c, const layout *L, const view *x, const view *y,
                                   const buffer *stats, const buffer *scales, int plain)
{
    normjit_norm_args a;
    memset(&a, 0, sizeof a);
    a.struct_size = sizeof a;
    a.flags = c->flags;
    a.rows = c->rows;
    a.hidden = c->hidden;
    a.x = vptr(x);
    a.y = vptr(y);
    a.x_row_stride = x->rs;
    a.y_row_stride = y->rs;
    a.weight = c->weight ? NJ_PTR(L->bw.dev) : NULL;
    a.bias = c->bias ? NJ_PTR(L->bb.dev) : NULL;
    a.rstd = c->stats ? NJ_PTR(stats->dev) : NULL;
    a.mean = c->stats && is_ln(c->op) ? NJ_PTR(stats->dev + (CUdeviceptr)(4 * c->rows)) : NULL;
    a.x_dtype = x->dtype;
    a.y_dtype = c->ty;
    a.weight_dtype = c->tw;
    a.eps = EPS;
    if (is_add(c->op) && !plain) {
        a.residual = vptr(&L->r);
        a.residual_out = vptr(&L->ro);
        a.residual_row_stride = L->r.rs;
        a.residual_out_row_stride = L->ro.rs;
        a.residual_dtype = c->tr;
    }
    a.quant = c->quant;
    if (c->quant == TENSOR || (c->quant == TOKEN && c->cap))
        a.scale = NJ_PTR(L->bscale.dev);
    if (c->quant == TOKEN || c->quant == GROUP)
        a.scales = NJ_PTR(scales->dev);
    if (c->quant == GROUP) {
        a.group_size = c->group;
        a.scales_stride = c->scales_pad ? L->scales_stride : 0;
    }
    a.min_scale = (float)c->min_scale;
    a.cast = c->cast;
    if (c->op == QK) {
        a.heads = c->heads;
        a.x_head_stride = x->hs;
        a.y_head_stride = y->hs;
    }
    return a;
}

static void call_ok(int op, const normjit_norm_args *a, const char *what)
{
    int status = normjit_norm(ctx, op, a, NULL);
    if (status != NORMJIT_OK)
        fail_msg("%s: %s: %s", what, normjit_status_name(status), normjit_last_error());
}

/* Written bytes equal over both poisons, the rest untouched. */
static void check_written(const buffer *b, const char *name, const char *what)
{
    size_t i;
    for (i = 0; i < b->bytes + SLACK_BYTES; i++) {
        int k;
        if (b->mask[i]) {
            if (b->got[0][i] != b->got[1][i])
                fail_msg("%s: %s byte %zu not written (differs over two poisons)", what, name, i);
            continue;
        }
        for (k = 0; k < 2; k++) {
            const unsigned char want = b->init ? b->init[i] : poisons[k];
            if (b->got[k][i] != want)
                fail_msg("%s: %s byte %zu written outside the tensor (0x%02x, was 0x%02x)", what,
                         name, i, b->got[k][i], want);
        }
    }
}

static void download(buffer *b, unsigned char *dst)
{
    nj_gpu_download(&gpu, dst, b->dev, b->bytes + SLACK_BYTES);
}

/* The fused call's outputs against another call's (the plain op's), element by element. */
static void compare_plain(const fcase *c, const layout *L, const char *what, const char *source)
{
    unsigned char *y2 = malloc(L->by2.bytes + SLACK_BYTES), *st2 = NULL, *sc2 = NULL;
    int64_t r, i;
    size_t k;
    assert_non_null(y2);
    nj_gpu_download(&gpu, y2, L->by2.dev, L->by2.bytes + SLACK_BYTES);
    for (r = 0; r < c->rows; r++)
        for (i = 0; i < c->hidden; i++) {
            const uint32_t a = load_bits(L->y.buf->got[0], L->y.esize, vidx(&L->y, r, 0, i)),
                           b = load_bits(y2, L->y.esize, vidx(&L->y2, r, 0, i));
            if (!same_bits(c->ty, a, b))
                fail_msg("%s: y[%lld][%lld] = 0x%x, the plain op on the %s gives 0x%x", what,
                         (long long)r, (long long)i, a, source, b);
        }
    if (c->stats) {
        st2 = malloc(L->bstats2.bytes + SLACK_BYTES);
        assert_non_null(st2);
        nj_gpu_download(&gpu, st2, L->bstats2.dev, L->bstats2.bytes + SLACK_BYTES);
        for (k = 0; k < L->bstats.bytes; k += 4)
            if (L->bstats.mask[k] && memcmp(L->bstats.got[0] + k, st2 + k, 4) &&
                !(isnan(nj_host_get(st2, F32, k / 4)) &&
                  isnan(nj_host_get(L->bstats.got[0], F32, k / 4))))
                fail_msg("%s: statistic %zu differs from the plain op's on the %s", what, k / 4,
                         source);
    }
    if (L->n_scales) {
        sc2 = malloc(L->bscales2.bytes + SLACK_BYTES);
        assert_non_null(sc2);
        nj_gpu_download(&gpu, sc2, L->bscales2.dev, L->bscales2.bytes + SLACK_BYTES);
        for (k = 0; k < L->bscales.bytes; k += 4)
            if (L->bscales.mask[k] && memcmp(L->bscales.got[0] + k, sc2 + k, 4))
                fail_msg("%s: scale %zu differs from the plain op's on the %s", what, k / 4,
                         source);
    }
    t_test.plain_compared++;
    free(y2);
    free(st2);
    free(sc2);
}

/* Run the plain op on a view of the sum into the second set of outputs. */
static void run_plain(const fcase *c, layout *L, const view *sum, const char *what)
{
    normjit_norm_args a;
    nj_gpu_poison(&gpu, L->by2.dev, L->by2.bytes + SLACK_BYTES);
    if (c->stats)
        nj_gpu_poison(&gpu, L->bstats2.dev, L->bstats2.bytes + SLACK_BYTES);
    if (L->n_scales)
        nj_gpu_poison(&gpu, L->bscales2.dev, L->bscales2.bytes + SLACK_BYTES);
    a = make_args(c, L, sum, &L->y2, &L->bstats2, &L->bscales2, 1);
    call_ok(plain_of(c->op), &a, what);
    nj_gpu_sync(&gpu);
}

/* Per-row reference buffers. */
typedef struct rowref {
    double *in, *w, *b, *exact, *y, *q, *q_alt;
} rowref;

static void check_scale(const fcase *c, double lo, double hi, double got, const char *what,
                        int64_t r, int64_t g)
{
    const double qmax = nj_quant_qmax(c->ty);
    const double min_scale = nj_quant_min_scale(c->quant, c->ty, (float)c->min_scale);
    const double cap = (float)c->cap_value;
    const double *capp = c->quant == TOKEN && c->cap ? &cap : NULL;
    const int pow2 = (c->flags & POW2) != 0;
    const double ref_lo = nj_quant_scale(lo, capp, qmax, min_scale, pow2);
    const double ref_hi = nj_quant_scale(hi, capp, qmax, min_scale, pow2);
    /*
     * Within SCALE_TOL of the reference, either on amax (so that a power of
     * two may round the other way) or on the scale itself (a cap or
     * min_scale computed in fp32). The scale rule is monotone in amax.
     */
    const double amax_lo = lo * (1 - SCALE_TOL), amax_hi = hi * (1 + SCALE_TOL);
    const int near_amax = got >= nj_quant_scale(amax_lo, capp, qmax, min_scale, pow2) &&
                          got <= nj_quant_scale(amax_hi, capp, qmax, min_scale, pow2);
    const int near_scale = got >= ref_lo * (1 - SCALE_TOL) && got <= ref_hi * (1 + SCALE_TOL);
    if (!near_amax && !near_scale)
        fail_msg("%s: row %lld group %lld scale %.9g, expected %.9g (amax %.9g..%.9g)", what,
                 (long long)r, (long long)g, got, ref_lo, lo, hi);
    /* The error reported: of the scale itself (a power of two rounded the other way is not one). */
    if (near_scale && isfinite(got) && got < ref_lo)
        t_test.scale_err = fmax(t_test.scale_err, (ref_lo - got) / ref_lo);
    if (near_scale && isfinite(got) && got > ref_hi)
        t_test.scale_err = fmax(t_test.scale_err, (got - ref_hi) / ref_hi);
    t_test.scales++;
}

/* The codes of elements [j0, j1) of one row under scale s. */
static void check_codes(const fcase *c, const layout *L, const rowref *R, int64_t r, int64_t j0,
                        int64_t j1, double s, const char *what)
{
    const float inv = nj_quant_inv_scale(s);
    int64_t i;
    for (i = j0; i < j1; i++) {
        const uint8_t got = L->y.buf->got[0][vidx(&L->y, r, 0, i)];
        const uint8_t want = nj_quant_code(c->ty, R->q[i], inv);
        const uint8_t alt = nj_quant_code(c->ty, R->q_alt[i], inv);
        t_test.codes++;
        if (fabs(nj_quant_decode(c->ty, got)) == nj_quant_qmax(c->ty))
            t_test.saturated++;
        if (same_bits(c->ty, got, want)) {
            t_test.codes_exact++;
            continue;
        }
        /* An infinite value under an infinite scale: NaN (inf * 0) or saturated. */
        if (isinf(R->q[i]) && isinf(s)) {
            const int8_t want_sat = R->q[i] > 0 ? 127 : -127;
            if (c->ty == INT8 ? ((int8_t)got == 0 || (int8_t)got == want_sat)
                              : (nj_quant_is_nan(c->ty, got) ||
                                 got == nj_quant_encode(c->ty, (float)R->q[i])))
                continue;
        }
        if (nj_quant_is_nan(c->ty, want) || nj_quant_is_nan(c->ty, got) ||
            (labs((long)nj_quant_ordinal(c->ty, got) - nj_quant_ordinal(c->ty, want)) > 1 &&
             labs((long)nj_quant_ordinal(c->ty, got) - nj_quant_ordinal(c->ty, alt)) > 1))
            fail_msg("%s: row %lld element %lld code 0x%02x (%g), expected 0x%02x (%g) from %.9g "
                     "at scale %.9g",
                     what, (long long)r, (long long)i, got, nj_quant_decode(c->ty, got), want,
                     nj_quant_decode(c->ty, want), R->q[i], s);
    }
}

static void check_quant_row(const fcase *c, const layout *L, const rowref *R, int64_t r,
                            const char *what)
{
    const int64_t H = c->hidden;
    const int64_t gsize = c->quant == GROUP ? c->group : H;
    int64_t g;
    for (g = 0; g * gsize < H; g++) {
        const int64_t j0 = g * gsize, j1 = j0 + gsize;
        double s, lo = 0, hi = 0;
        int64_t i;
        if (c->quant == TENSOR) {
            s = (float)c->tensor_scale;
        } else {
            const int64_t k = c->quant == TOKEN ? r
                                                : nj_group_scale_index(r, g, L->scales_stride,
                                                                       (c->flags & COLMAJ) != 0);
            s = nj_host_get(L->bscales.got[0], F32, (size_t)k);
            for (i = j0; i < j1; i++) {
                const double a = fabs(R->q[i]), b = fabs(R->q_alt[i]);
                lo = fmax(lo, fmin(a, b)); /* fmax ignores NaN */
                hi = fmax(hi, fmax(a, b));
            }
            check_scale(c, lo, hi, s, what, r, g);
        }
        check_codes(c, L, R, r, j0, j1, s, what);
    }
}

/* y of one (row, head) against the double reference and the cast mode's formula. */
static void check_y_row(const fcase *c, const layout *L, const rowref *R, const nj_ref_epilogue *e,
                        const nj_ref_row_out *o, int64_t r, int64_t h, const char *what)
{
    const int64_t H = c->hidden;
    const int sixteen = c->ty == F16 || c->ty == BF16;
    double err = 0, mag = 0, absmax = 0;
    int64_t i;
    for (i = 0; i < H; i++)
        absmax = fmax(absmax, fabs(R->in[i]));
    for (i = 0; i < H; i++) {
        const uint32_t got_bits = load_bits(L->y.buf->got[0], L->y.esize, vidx(&L->y, r, h, i));
        const double got = decode_bits(c->ty, got_bits), model = R->y[i];
        uint32_t model_bits;
        if (isnan(model) || isinf(model)) {
            if (!(isnan(model) ? isnan(got) : got == model))
                fail_msg("%s: row %lld head %lld element %lld is %g, expected %g", what,
                         (long long)r, (long long)h, (long long)i, got, model);
            continue;
        }
        if (!isfinite(got))
            fail_msg("%s: row %lld head %lld element %lld is %g, expected %.9g", what,
                     (long long)r, (long long)h, (long long)i, got, R->exact[i]);
        /* LLAMA: x_hat may round to either neighbour where the kernel's fp32 error reaches. */
        err = fmax(err, fmin(fabs(got - R->exact[i]), fabs(got - R->q_alt[i])));
        mag = fmax(mag, fabs(R->exact[i]));
        if (!sixteen || special_row(c, r))
            continue;
        model_bits = encode_bits(c->ty, model);
        t_test.y_total++;
        if (same_bits(c->ty, got_bits, model_bits)) {
            t_test.y_equal++;
            continue;
        }
        {
            /* Within one ulp of the formula at x_hat, or at x_hat moved by fp32 error. */
            const float xh = nj_ref_xhat32(R->in[i], o->mean, o->rstd);
            const double wi = R->w ? R->w[i] : 1.0;
            const double *bi = R->b ? &R->b[i] : NULL;
            const double lo = nj_ref_model_y(e, (float)(xh * (1 - NJ_REF_XHAT_SLACK)), wi, bi);
            const double hi = nj_ref_model_y(e, (float)(xh * (1 + NJ_REF_XHAT_SLACK)), wi, bi);
            long d = ulp16(got_bits, model_bits);
            const long d_lo = ulp16(got_bits, encode_bits(c->ty, lo));
            const long d_hi = ulp16(got_bits, encode_bits(c->ty, hi));
            d = d < d_lo ? d : d_lo;
            d = d < d_hi ? d : d_hi;
            if (d <= 1) {
                t_test.y_ulp1++;
                continue;
            }
            /* LayerNorm: x - mean cancels; fp32 error of the mean is absolute, not relative.
               LLAMA then rounds x_hat to the input dtype, where that error may cross a
               rounding boundary: one step of x_hat more, times the weight. */
            {
                const double dx = 0x1p-20 * (fabs(o->mean) + absmax) * o->rstd;
                double step = 0;
                if (c->cast == LLAMA && (e->in_dtype == F16 || e->in_dtype == BF16)) {
                    const uint32_t xb = encode_bits(e->in_dtype, xh);
                    step = fabs(decode_bits(e->in_dtype, xb + 1) - decode_bits(e->in_dtype, xb));
                }
                if (is_ln(c->op) &&
                    fabs(got - model) <=
                        (dx + step) * fabs(wi + ((c->flags & PLUS1) || c->cast == GEMMA)) +
                            fabs(decode_bits(c->ty, model_bits + 1) - model)) {
                    t_test.y_ulp1++;
                    continue;
                }
            }
            fail_msg("%s: row %lld head %lld element %lld = %.9g (0x%x), the formula gives %.9g "
                     "(0x%x): %ld ulp apart",
                     what, (long long)r, (long long)h, (long long)i, got, got_bits, model,
                     model_bits, d);
        }
    }
    if (!special_row(c, r) && err > nj_tolerance(c->ty) * fmax(mag, 1e-30))
        fail_msg("%s: row %lld head %lld normalized error %.3g > %.3g", what, (long long)r,
                 (long long)h, err / mag, nj_tolerance(c->ty));
}

static void run_case(const fcase *c)
{
    const int64_t H = c->hidden, Rn = c->rows, heads = c->op == QK ? c->heads : 1;
    const int add = is_add(c->op), quant = c->quant != NONE_Q;
    const int sw = nj_host_dtype_size(c->tw);
    layout L;
    rowref R;
    nj_ref_epilogue e;
    nj_ref_row_out o;
    char what[640];
    int64_t r, h, i;
    int k;

    memset(&L, 0, sizeof L);
    describe(c, what, sizeof what);
    L.x = mkview(c->tx, c->x_off, Rn, heads, H, c->xs, c->xhs);
    L.y = c->in_place_y ? L.x : mkview(c->ty, c->y_off, Rn, heads, H, c->ys, c->yhs);
    L.y.dtype = c->ty;
    L.y2 = L.y;
    buffer_new(&L.bx, view_bytes(&L.x), 1, c->in_place_y);
    L.x.buf = &L.bx;
    if (c->in_place_y) {
        L.y.buf = &L.bx;
    } else {
        buffer_new(&L.by, view_bytes(&L.y), 0, 1);
        L.y.buf = &L.by;
    }
    buffer_new(&L.by2, view_bytes(&L.y), 0, 0);
    L.y2.buf = &L.by2;
    if (add) {
        L.r = mkview(c->tr, c->r_off, Rn, 1, H, c->rs, 0);
        L.ro = c->in_place_res ? L.r : mkview(c->tr, c->ro_off, Rn, 1, H, c->ros, 0);
        buffer_new(&L.br, view_bytes(&L.r), 1, c->in_place_res);
        L.r.buf = &L.br;
        if (c->in_place_res) {
            L.ro.buf = &L.br;
        } else {
            buffer_new(&L.bro, view_bytes(&L.ro), 0, 1);
            L.ro.buf = &L.bro;
        }
        buffer_new(&L.bsum, view_bytes(&L.ro), 1, 0);
    }
    buffer_new(&L.bw, (size_t)H * sw, 1, 0);
    buffer_new(&L.bb, (size_t)H * sw, 1, 0);
    buffer_new(&L.bstats, (size_t)Rn * 8, 0, 1);
    buffer_new(&L.bstats2, (size_t)Rn * 8, 0, 0);
    L.groups = c->quant == GROUP ? H / c->group : 1;
    L.scales_stride = c->quant == GROUP
                          ? nj_group_scales_stride(Rn, H, c->group, (c->flags & COLMAJ) != 0, 0) +
                                c->scales_pad
                          : 0;
    L.n_scales = scales_count(c, L.groups, L.scales_stride);
    buffer_new(&L.bscales, (size_t)L.n_scales * 4, 0, 1);
    buffer_new(&L.bscales2, (size_t)L.n_scales * 4, 0, 0);
    buffer_new(&L.bscale, 4, 1, 0);

    /* Inputs, random everywhere (padding too, so in place it must survive). */
    fill_random(L.bx.init, c->tx, L.bx.bytes / L.x.esize, c->xshift, c->xscale);
    if (add)
        fill_random(L.br.init, c->tr, L.br.bytes / L.r.esize, 0.0, 1.0);
    for (i = 0; i < H; i++) {
        const double w = c->cast == GEMMA || (c->flags & PLUS1) ? 0.25 * nj_rng_normal(&rng)
                                                                : 1.0 + 0.25 * nj_rng_normal(&rng);
        nj_host_put(L.bw.init, c->tw, (size_t)i, c->wscale * w);
        nj_host_put(L.bb.init, c->tw, (size_t)i, 0.5 * nj_rng_normal(&rng));
    }
    nj_host_put(L.bscale.init, F32, 0, c->quant == TENSOR ? c->tensor_scale : c->cap_value);
    if (c->special)
        apply_special(c, &L);

    /* What the call writes. */
    mark_view(&L.y);
    if (add)
        mark_view(&L.ro);
    if (c->stats)
        memset(L.bstats.mask, 1, (size_t)Rn * (is_ln(c->op) ? 8 : 4));
    mark_scales(c, &L, L.bscales.mask);

    for (k = 0; k < 2; k++) {
        buffer *outs[] = {L.y.buf, add ? L.ro.buf : NULL, &L.bstats, &L.bscales};
        normjit_norm_args a;
        size_t b;
        buffer_reset(&L.bx, k);
        if (!c->in_place_y)
            buffer_reset(&L.by, k);
        if (add) {
            buffer_reset(&L.br, k);
            if (!c->in_place_res)
                buffer_reset(&L.bro, k);
        }
        buffer_reset(&L.bw, k);
        buffer_reset(&L.bb, k);
        buffer_reset(&L.bstats, k);
        buffer_reset(&L.bscales, k);
        buffer_reset(&L.bscale, k);
        a = make_args(c, &L, &L.x, &L.y, &L.bstats, &L.bscales, 0);
        call_ok(c->op, &a, what);
        nj_gpu_sync(&gpu);
        for (b = 0; b < 4; b++)
            if (outs[b])
                download(outs[b], outs[b]->got[k]);
    }
    check_written(c->in_place_y ? &L.bx : &L.by, "y", what);
    if (add)
        check_written(c->in_place_res ? &L.br : &L.bro, "residual_out", what);
    check_written(&L.bstats, "rstd/mean", what);
    check_written(&L.bscales, "scales", what);

    /* The reference, row by row (head by head for QK). */
    R.in = malloc((size_t)H * sizeof(double));
    R.w = c->weight ? malloc((size_t)H * sizeof(double)) : NULL;
    R.b = c->bias ? malloc((size_t)H * sizeof(double)) : NULL;
    R.exact = malloc((size_t)H * sizeof(double));
    R.y = malloc((size_t)H * sizeof(double));
    R.q = malloc((size_t)H * sizeof(double));
    R.q_alt = malloc((size_t)H * sizeof(double));
    assert_non_null(R.in);
    assert_non_null(R.exact);
    assert_non_null(R.y);
    assert_non_null(R.q);
    assert_non_null(R.q_alt);
    for (i = 0; i < H; i++) {
        if (R.w)
            R.w[i] = nj_host_get(L.bw.init, c->tw, (size_t)i);
        if (R.b)
            R.b[i] = nj_host_get(L.bb.init, c->tw, (size_t)i);
    }
    e.op = c->op;
    e.in_dtype = in_dtype(c);
    e.y_dtype = c->ty;
    e.cast = c->cast;
    e.plus_one = (c->flags & PLUS1) != 0;
    e.eps = EPS;
    o.exact = R.exact;
    o.y = quant ? NULL : R.y;
    o.q = R.q;
    o.q_alt = R.q_alt;
    for (r = 0; r < Rn; r++)
        for (h = 0; h < heads; h++) {
            for (i = 0; i < H; i++) {
                const double xv = nj_host_get(L.bx.init, c->tx, (size_t)vidx(&L.x, r, h, i));
                if (add) {
                    const double rv = nj_host_get(L.br.init, c->tr, (size_t)vidx(&L.r, r, 0, i));
                    const int64_t ro = vidx(&L.ro, r, 0, i);
                    const unsigned char *ro_got = (c->in_place_res ? &L.br : &L.bro)->got[0];
                    const uint32_t got = load_bits(ro_got, L.ro.esize, ro);
                    R.in[i] = nj_ref_fused_sum(c->tr, (float)xv, (float)rv);
                    if (!same_bits(c->tr, got, encode_bits(c->tr, R.in[i])))
                        fail_msg("%s: residual_out[%lld][%lld] = %g (0x%x), x + residual = %g + "
                                 "%g rounds to %g",
                                 what, (long long)r, (long long)i, decode_bits(c->tr, got), got, xv,
                                 rv, R.in[i]);
                    nj_host_put(L.bsum.init, c->tr, (size_t)ro, R.in[i]);
                } else {
                    R.in[i] = xv;
                }
            }
            nj_ref_row(&e, R.in, R.w, R.b, H, &o);
            if (quant)
                check_quant_row(c, &L, &R, r, what);
            else
                check_y_row(c, &L, &R, &e, &o, r, h, what);
            if (c->stats && !special_row(c, r)) {
                const double rstd = nj_host_get(L.bstats.got[0], F32, (size_t)r);
                if (!(fabs(rstd - o.rstd) <= 2e-5 * o.rstd))
                    fail_msg("%s: row %lld rstd %.9g, expected %.9g", what, (long long)r, rstd,
                             o.rstd);
                if (is_ln(c->op)) {
                    const double mean = nj_host_get(L.bstats.got[0], F32, (size_t)(Rn + r));
                    if (!(fabs(mean - o.mean) <= 2e-5 * (fabs(o.mean) + 1.0 / o.rstd)))
                        fail_msg("%s: row %lld mean %.9g, expected %.9g", what, (long long)r,
                                 mean, o.mean);
                }
            }
        }
    if (c->expect_saturation && t_test.saturated * 100 < t_test.codes)
        fail_msg("%s: only %ld of %ld codes saturated: the case does not test saturation", what,
                 t_test.saturated, t_test.codes);

    /* Fused add == add, then the plain op: on the device's sum and on the host's. */
    if (add && c->plain_check) {
        view sum = L.ro;
        run_plain(c, &L, &L.ro, what);
        compare_plain(c, &L, what, "device's residual_out");
        sum.buf = &L.bsum;
        nj_gpu_upload(&gpu, L.bsum.dev, L.bsum.init, L.bsum.bytes + SLACK_BYTES);
        run_plain(c, &L, &sum, what);
        compare_plain(c, &L, what, "host's rounded sum");
    }
    t_test.cases++;
    t_test.elements += Rn * heads * H;

    buffer_free(&L.bx);
    buffer_free(&L.by);
    buffer_free(&L.by2);
    buffer_free(&L.br);
    buffer_free(&L.bro);
    buffer_free(&L.bsum);
    buffer_free(&L.bw);
    buffer_free(&L.bb);
    buffer_free(&L.bstats);
    buffer_free(&L.bstats2);
    buffer_free(&L.bscales);
    buffer_free(&L.bscales2);
    buffer_free(&L.bscale);
    free(R.in);
    free(R.w);
    free(R.b);
    free(R.exact);
    free(R.y);
    free(R.q);
    free(R.q_alt);
}

static void run_list(const case_list *l, const char *test)
{
    size_t i;
    tally_begin();
    for (i = 0; i < l->n; i++)
        run_case(&l->v[i]);
    tally_end(test);
}

/* ------------------------------------------------------------------------ */
/* The case tables, built once (the parallel prepare reads them all).        */

enum { L_ADD, L_QUANT, L_CAST, L_QK, L_SPECIAL, L_SATURATION, L_IN_PLACE, L_UNALIGNED,
       L_BATCH, N_LISTS };
static case_list lists[N_LISTS];

static int quick_skip(size_t i, size_t every)
{
    return nj_test_quick() && i % every != 0;
}

static int64_t rows_for(int64_t hidden, size_t k)
{
    static const int64_t small[] = {1, 37, 130};
    if (hidden >= 65536)
        return 3;
    if (hidden > 16384)
        return 5;
    return small[k % 3];
}

/* Fused add: dtype pairs (equal and mixed) x a spread of hidden sizes, toggles rotating. */
static void gen_add(case_list *l)
{
    static const struct {
        int tx, tr, ty, tw;
    } pairs[] = {
        {F16, F16, F16, F16},    {BF16, BF16, BF16, BF16}, {F32, F32, F32, F32},
        {BF16, F32, BF16, F32},  {F16, F32, F16, F32},     {F32, BF16, BF16, BF16},
        {BF16, F16, F32, F16},
    };
    static const int64_t hidden[] = {1, 7, 127, 768, 2880, 4096, 5120, 8192, 65536, 131072, 99999};
    const size_t nh = sizeof hidden / sizeof hidden[0];
    size_t o, p, k, n = 0;
    for (o = 0; o < 2; o++)
        for (p = 0; p < sizeof pairs / sizeof pairs[0]; p++)
            for (k = 0; k < 3; k++, n++) {
                const int64_t H = hidden[(p * 3 + k + o * 5) % nh];
                fcase c = mk(o ? ALN : ARMS, pairs[p].tx, H, rows_for(H, k + p));
                if (quick_skip(n, 4))
                    continue;
                c.tr = pairs[p].tr;
                c.ty = pairs[p].ty;
                c.tw = pairs[p].tw;
                c.stats = n % 2 == 0;
                c.bias = c.bias && n % 3 != 2;
                c.in_place_res = n % 4 == 1 || n % 4 == 3;
                c.in_place_y = n % 4 == 1 && nj_host_dtype_size(c.tx) == nj_host_dtype_size(c.ty);
                if (n % 5 == 0)
                    c.flags |= NORMJIT_NORM_PDL;
                if (n % 7 == 3)
                    c.flags |= PLUS1;
                if (n % 11 == 6)
                    c.weight = 0, c.tw = c.tr;
                push(l, &c);
            }
}

/* Every quantized output x plain and fused ops; hidden sizes, dtypes and cast modes rotate. */
static void gen_quant(case_list *l)
{
    static const int ops[] = {RMS, LN, ARMS, ALN};
    static const int dtypes[] = {BF16, F16, F32};
    static const int64_t any[] = {7, 127, 2880, 4096, 5120, 65536, 1000};
    static const int64_t g64[] = {2880, 4160, 64, 65536};
    static const int64_t g128[] = {768, 4096, 7168, 131072, 128};
    size_t s, o, k, n = 0;
    for (s = 0; s < N_QUANT_SPECS; s++)
        for (o = 0; o < 4; o++) {
            const quant_spec *q = &quant_specs[s];
            const size_t i = s * 4 + o, n_sizes = q->quant == GROUP ? 1 : 2;
            for (k = 0; k < n_sizes; k++, n++) {
                int64_t H;
                fcase c;
                if (nj_test_quick() && (k > 0 || ops[o] == LN || ops[o] == ALN))
                    continue;
                if (q->quant != GROUP)
                    H = any[(i + 3 * k) % 7];
                else if (q->group == 64)
                    H = g64[i % 4];
                else
                    H = g128[i % 5];
                c = mk(ops[o], dtypes[(i + k) % 3], H, H >= 65536 ? 3 : (n % 2 ? 100 : 24));
                set_quant(&c, q);
                c.cast = i % 6 == 1 ? LLAMA : i % 6 == 4 ? GEMMA : CAST_NONE;
                c.in_place_res = is_add(c.op) && n % 3 == 0;
                if (is_add(c.op) && n % 5 == 2) {
                    c.tr = F32; /* a bf16/f16 stream with an fp32 residual */
                    c.tw = F32;
                }
                push(l, &c);
            }
        }
}

/* Cast modes against the formulas of the model code they name, 16-bit inputs. */
static void gen_cast(case_list *l)
{
    static const int ops[] = {RMS, LN, ARMS, ALN};
    static const int casts[] = {CAST_NONE, LLAMA, GEMMA};
    static const int dtypes[] = {BF16, F16};
    static const int64_t hidden[] = {4096, 2880, 5120, 127, 8192, 1536};
    size_t o, m, d, k, n = 0;
    for (o = 0; o < 4; o++)
        for (m = 0; m < 3; m++)
            for (d = 0; d < 2; d++)
                for (k = 0; k < 2; k++, n++) {
                    const int64_t H = hidden[(n + k) % 6];
                    fcase c = mk(ops[o], dtypes[d], H, H < 1024 ? 1500 : 48);
                    if (nj_test_quick() && (k > 0 || o % 2))
                        continue;
                    c.cast = casts[m];
                    if (n % 2)
                        c.tw = F32;
                    if (n % 5 == 2)
                        c.ty = dtypes[1 - d]; /* y in the other 16-bit dtype */
                    if (is_add(c.op) && n % 4 == 3)
                        c.tr = c.tw = F32; /* the sum in fp32: LLAMA has nothing to round */
                    push(l, &c);
                }
}

/* QK-norm: head_dim 64/128/256 x dtypes x strided views of a qkv buffer, cast modes rotating. */
static void gen_qk(case_list *l)
{
    static const int64_t dims[] = {64, 128, 256};
    static const int dtypes[] = {BF16, F16, F32};
    static const int casts[] = {CAST_NONE, LLAMA, GEMMA};
    const int64_t qh = 8, kvh = 2; /* q heads and kv heads of the fused qkv projection */
    size_t d, t, layout, n = 0;
    for (d = 0; d < 3; d++)
        for (t = 0; t < 3; t++)
            for (layout = 0; layout < 3; layout++, n++) {
                const int64_t D = dims[d];
                fcase c = mk(QK, dtypes[t], D, n % 2 ? 300 : 40);
                if (quick_skip(n, 3))
                    continue;
                c.cast = casts[n % 3];
                if (layout == 0) { /* the q slice, in place */
                    c.heads = qh;
                    c.xs = (qh + 2 * kvh) * D;
                    c.in_place_y = 1;
                } else if (layout == 1) { /* the k slice into a dense [tokens, heads, D] */
                    c.heads = kvh;
                    c.xs = (qh + 2 * kvh) * D;
                    c.x_off = qh * D;
                } else { /* padded heads on both sides */
                    c.heads = 4;
                    c.xhs = D + 16;
                    c.xs = 4 * (D + 16) + 32;
                    c.yhs = D + 8;
                }
                push(l, &c);
            }
    if (!nj_test_quick()) {
        fcase c = mk(QK, BF16, 96, 64);
        c.heads = 6;
        c.cast = LLAMA;
        push(l, &c);
        c = mk(QK, F16, 80, 64);
        c.heads = 5;
        c.cast = GEMMA;
        c.xs = 3 * 5 * 80;
        push(l, &c);
    }
}

/* NaN and infinity as the header documents them, for each kind of output. */
static void gen_special(case_list *l)
{
    static const int ops[] = {ARMS, RMS, LN};
    static const int dtypes[] = {BF16, F16, F32};
    static const quant_spec outs[] = {
        {F16, NONE_Q, 0, 0, 0, 0, 0, 0, 0},
        {E4M3, TOKEN, 0, 0, 0, 0, 0, 0, 0},
        {E4M3, TOKEN, 0, 0, 0, 1, 2.0, 0, 0},
        {E4M3, TENSOR, 0, 0, 0.02, 0, 0, 0, 0},
        {INT8, TOKEN, 0, 0, 0, 0, 0, 0, 0},
        {E5M2, GROUP, 128, COLMAJ | POW2, 0, 0, 0, 0, 0},
        {INT8, GROUP, 64, 0, 0, 0, 0, 0, 0},
    };
    size_t o, q, n = 0;
    for (o = 0; o < 3; o++)
        for (q = 0; q < sizeof outs / sizeof outs[0]; q++, n++) {
            fcase c = mk(ops[o], dtypes[n % 3], 1024, 12);
            if (nj_test_quick() && o > 0)
                continue;
            set_quant(&c, &outs[q]);
            if (outs[q].quant == NONE_Q)
                c.ty = c.tx;
            if (!is_ln(c.op))
                c.tw = F32; /* room for the overflowing weight */
            c.xshift = 0.0;
            c.special = SPECIAL_NONFINITE;
            push(l, &c);
        }
    {
        fcase c = mk(QK, F16, 128, 12);
        c.heads = 4;
        c.tw = F32;
        c.special = SPECIAL_NONFINITE;
        push(l, &c);
        c.tx = c.ty = BF16;
        c.cast = LLAMA;
        push(l, &c);
    }
}

/* Values beyond qmax: a tiny tensor scale, a large weight, a small cap. */
static void gen_saturation(case_list *l)
{
    static const quant_spec sat[] = {
        {E4M3, TENSOR, 0, 0, 1e-4, 0, 0, 0, 0},
        {E5M2, TENSOR, 0, 0, 1e-6, 0, 0, 0, 0},
        {INT8, TENSOR, 0, 0, 1e-3, 0, 0, 0, 0},
        {E4M3, TOKEN, 0, 0, 0, 1, 0.05, 0, 0},
        {INT8, TOKEN, 0, 0, 0, 1, 0.05, 0, 0},
        {E4M3, TENSOR, 0, 0, 1.0, 0, 0, 0, 0}, /* with weights of 1000 */
    };
    size_t o, q;
    for (o = 0; o < 2; o++)
        for (q = 0; q < sizeof sat / sizeof sat[0]; q++) {
            fcase c = mk(o ? ARMS : RMS, BF16, 2880, 16);
            if (nj_test_quick() && o)
                continue;
            set_quant(&c, &sat[q]);
            if (q == 5)
                c.wscale = 1000.0;
            c.expect_saturation = 1;
            push(l, &c);
        }
}

/* In place as engines call it: y over x and residual_out over residual. */
static void gen_in_place(case_list *l)
{
    static const int dtypes[] = {F16, BF16, F32};
    static const int64_t hidden[] = {4096, 65536, 127};
    size_t o, d;
    fcase c;
    for (o = 0; o < 2; o++)
        for (d = 0; d < 3; d++) {
            const int64_t H = hidden[(o + d) % 3];
            if (quick_skip(o * 3 + d, 2))
                continue;
            c = mk(o ? ALN : ARMS, dtypes[d], H, H >= 65536 ? 3 : 21);
            c.in_place_y = c.in_place_res = 1;
            push(l, &c);
        }
    c = mk(RMS, BF16, 4096, 9); /* a plain norm in place with the Llama cast */
    c.in_place_y = 1;
    c.cast = LLAMA;
    push(l, &c);
    c = mk(ARMS, BF16, 4096, 9); /* quantized y, residual updated in place */
    set_quant(&c, &quant_specs[3]);
    c.in_place_res = 1;
    push(l, &c);
}

/* Views that only a narrower kernel can serve (compiled on first use, not prepared). */
static void gen_unaligned(case_list *l)
{
    fcase c = mk(ARMS, F16, 4096, 9);
    c.x_off = c.r_off = c.ro_off = c.y_off = 1; /* both compared calls get 2-byte vectors */
    c.unaligned = 1;
    push(l, &c);
    c = mk(ALN, BF16, 2880, 7);
    c.xs = c.rs = c.ros = 2880 + 3;
    c.ys = 2880 + 5;
    c.unaligned = 1;
    push(l, &c);
    if (nj_test_quick())
        return;
    c = mk(RMS, F16, 4096, 9);
    set_quant(&c, &quant_specs[3]);
    c.y_off = 3;
    c.unaligned = 1;
    push(l, &c);
    c = mk(ARMS, F16, 4096, 9);
    set_quant(&c, &quant_specs[0]);
    c.x_off = 1; /* only x: the fused kernel is narrower than the plain one, no comparison */
    c.plain_check = 0;
    c.unaligned = 1;
    push(l, &c);
    c = mk(QK, F16, 128, 33);
    c.heads = 4;
    c.xhs = 129;
    c.unaligned = 1;
    push(l, &c);
}

/* Batch invariance: every op with each kind of epilogue (hidden 1024; QK 8 heads of 128). */
static void gen_batch(case_list *l)
{
    static const int ops[] = {RMS, LN, ARMS, ALN};
    static const struct {
        int cast;
        const quant_spec *q;
    } epis[] = {
        {CAST_NONE, NULL},           {LLAMA, NULL},
        {GEMMA, NULL},               {CAST_NONE, &quant_specs[0]},
        {CAST_NONE, &quant_specs[4]}, {LLAMA, &quant_specs[6]},
        {CAST_NONE, &quant_specs[12]}, {GEMMA, &quant_specs[10]},
        {CAST_NONE, &quant_specs[14]},
    };
    const size_t n_epis = sizeof epis / sizeof epis[0];
    size_t o, k, n = 0;
    for (o = 0; o < 4; o++)
        for (k = 0; k < n_epis; k++, n++) {
            fcase c = mk(ops[o], o % 2 ? F16 : BF16, 1024, BATCH_ROWS);
            if (quick_skip(n, 4))
                continue;
            c.cast = epis[k].cast;
            if (epis[k].q)
                set_quant(&c, epis[k].q);
            c.scales_pad = 0;
            if (is_add(c.op) && k == 1)
                c.tr = c.tw = F32;
            push(l, &c);
        }
    for (k = 0; k < 3; k++) {
        fcase c = mk(QK, BF16, 128, BATCH_ROWS);
        c.heads = 8;
        c.cast = epis[k].cast;
        push(l, &c);
    }
}

static void build_lists(void)
{
    gen_add(&lists[L_ADD]);
    gen_quant(&lists[L_QUANT]);
    gen_cast(&lists[L_CAST]);
    gen_qk(&lists[L_QK]);
    gen_special(&lists[L_SPECIAL]);
    gen_saturation(&lists[L_SATURATION]);
    gen_in_place(&lists[L_IN_PLACE]);
    gen_unaligned(&lists[L_UNALIGNED]);
    gen_batch(&lists[L_BATCH]);
}

/* ------------------------------------------------------------------------ */
/* Parallel prepare of every configuration the suite uses                    */

typedef struct prep_job {
    normjit_prepare_args p;
    int64_t hidden;
    int status;
    char message[256];
} prep_job;

static prep_job *jobs;
static size_t n_jobs, next_job;
static pthread_mutex_t job_lock = PTHREAD_MUTEX_INITIALIZER;

static int same_prep(const normjit_prepare_args *a, int64_t ha, const normjit_prepare_args *b,
                     int64_t hb)
{
    return a->op == b->op && a->x_dtype == b->x_dtype && a->y_dtype == b->y_dtype &&
           a->weight_dtype == b->weight_dtype && a->residual_dtype == b->residual_dtype &&
           a->quant == b->quant && a->group_size == b->group_size && a->cast == b->cast &&
           a->norm_flags == b->norm_flags && ha == hb;
}

static void add_job(int op, int tx, int tr, const fcase *c)
{
    prep_job j;
    size_t i;
    memset(&j, 0, sizeof j);
    j.p.struct_size = sizeof j.p;
    j.p.op = op;
    j.p.x_dtype = tx;
    j.p.y_dtype = c->ty;
    j.p.weight_dtype = c->weight || c->bias ? c->tw : (tr ? tr : tx);
    j.p.residual_dtype = tr;
    j.p.quant = c->quant;
    j.p.group_size = c->quant == GROUP ? c->group : 0;
    j.p.cast = c->cast;
    j.p.norm_flags = c->flags;
    j.hidden = c->hidden;
    for (i = 0; i < n_jobs; i++)
        if (same_prep(&jobs[i].p, jobs[i].hidden, &j.p, j.hidden))
            return;
    jobs = realloc(jobs, (n_jobs + 1) * sizeof *jobs);
    assert_non_null(jobs);
    jobs[n_jobs++] = j;
}

static void *prepare_worker(void *arg)
{
    (void)arg;
    nj_gpu_bind(&gpu);
    for (;;) {
        prep_job *j;
        pthread_mutex_lock(&job_lock);
        j = next_job < n_jobs ? &jobs[next_job++] : NULL;
        pthread_mutex_unlock(&job_lock);
        if (!j)
            return NULL;
        j->p.hidden = &j->hidden;
        j->p.n_hidden = 1;
        j->status = normjit_prepare(ctx, &j->p, NULL);
        if (j->status != NORMJIT_OK)
            snprintf(j->message, sizeof j->message, "%s", normjit_last_error());
    }
}

/* Compile what the aligned cases use on all cores first; this also tests concurrent prepare. */
static void test_prepare_parallel(void **state)
{
    pthread_t threads[16];
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int n_threads = cpus < 2 ? 2 : cpus > 16 ? 16 : (int)cpus, t, failures = 0;
    double start = nj_now_seconds();
    size_t li, i;
    (void)state;
    for (li = 0; li < N_LISTS; li++)
        for (i = 0; i < lists[li].n; i++) {
            const fcase *c = &lists[li].v[i];
            if (c->unaligned)
                continue;
            add_job(c->op, c->tx, is_add(c->op) ? c->tr : 0, c);
            if (is_add(c->op) && c->plain_check)
                add_job(plain_of(c->op), c->tr, 0, c);
        }
    for (t = 0; t < n_threads; t++)
        assert_int_equal(pthread_create(&threads[t], NULL, prepare_worker, NULL), 0);
    for (t = 0; t < n_threads; t++)
        pthread_join(threads[t], NULL);
    for (i = 0; i < n_jobs; i++)
        if (jobs[i].status != NORMJIT_OK && ++failures <= 10)
            print_message("prepare %s x=%s res=%s y=%s w=%s quant=%d group=%d cast=%d flags=0x%x "
                          "hidden=%lld: %s: %s\n",
                          opname(jobs[i].p.op), dname(jobs[i].p.x_dtype),
                          dname(jobs[i].p.residual_dtype), dname(jobs[i].p.y_dtype),
                          dname(jobs[i].p.weight_dtype), jobs[i].p.quant, jobs[i].p.group_size,
                          jobs[i].p.cast, jobs[i].p.norm_flags, (long long)jobs[i].hidden,
                          normjit_status_name(jobs[i].status), jobs[i].message);
    printf("# prepared %zu configurations on %d threads in %.1f s\n", n_jobs, n_threads,
           nj_now_seconds() - start);
    assert_int_equal(failures, 0);
}

/* ------------------------------------------------------------------------ */
/* The tests over the tables                                                 */

static void test_fused_add(void **state)
{
    (void)state;
    run_list(&lists[L_ADD], "fused add");
}

static void test_quant(void **state)
{
    (void)state;
    run_list(&lists[L_QUANT], "quantized outputs");
}

static void test_cast_modes(void **state)
{
    (void)state;
    run_list(&lists[L_CAST], "cast modes");
}

static void test_qk_norm(void **state)
{
    (void)state;
    run_list(&lists[L_QK], "qk-norm");
}

static void test_nonfinite(void **state)
{
    (void)state;
    run_list(&lists[L_SPECIAL], "NaN and infinity");
}

static void test_saturation(void **state)
{
    size_t i;
    (void)state;
    /* Counted per case: the tally's saturation count is reset around each. */
    for (i = 0; i < lists[L_SATURATION].n; i++) {
        tally_begin();
        run_case(&lists[L_SATURATION].v[i]);
        tally_end("saturation");
    }
}

static void test_in_place(void **state)
{
    (void)state;
    run_list(&lists[L_IN_PLACE], "in place");
}

static void test_unaligned(void **state)
{
    (void)state;
    run_list(&lists[L_UNALIGNED], "narrow vectors");
}

/* ------------------------------------------------------------------------ */
/* Batch invariance                                                          */

typedef struct batch_bufs {
    CUdeviceptr x, r, y, ro, stats, scales, scale, w, b;
    size_t x_bytes, r_bytes, y_bytes, stats_bytes, scales_bytes;
    int64_t row_elems, groups, scales_stride;
    int sx, sy, sr, col;
} batch_bufs;

/* The call on rows [off, off + n) of the batch's tensors. */
static normjit_norm_args batch_args(const fcase *c, const batch_bufs *B, int64_t n, int64_t off)
{
    normjit_norm_args a;
    memset(&a, 0, sizeof a);
    a.struct_size = sizeof a;
    a.flags = c->flags;
    a.rows = n;
    a.hidden = c->hidden;
    a.x = NJ_PTR(B->x + (CUdeviceptr)(off * B->row_elems * B->sx));
    a.y = NJ_PTR(B->y + (CUdeviceptr)(off * B->row_elems * B->sy));
    a.x_row_stride = a.y_row_stride = B->row_elems;
    a.weight = NJ_PTR(B->w);
    a.bias = is_ln(c->op) ? NJ_PTR(B->b) : NULL;
    a.rstd = c->op == QK ? NULL : NJ_PTR(B->stats + (CUdeviceptr)(off * 4));
    a.mean = is_ln(c->op) ? NJ_PTR(B->stats + (CUdeviceptr)((c->rows + off) * 4)) : NULL;
    a.x_dtype = c->tx;
    a.y_dtype = c->ty;
    a.weight_dtype = c->tw;
    a.eps = EPS;
    if (B->sr) {
        a.residual = NJ_PTR(B->r + (CUdeviceptr)(off * c->hidden * B->sr));
        a.residual_out = NJ_PTR(B->ro + (CUdeviceptr)(off * c->hidden * B->sr));
        a.residual_dtype = c->tr;
    }
    a.quant = c->quant;
    if (c->quant == TENSOR || (c->quant == TOKEN && c->cap))
        a.scale = NJ_PTR(B->scale);
    if (c->quant == TOKEN)
        a.scales = NJ_PTR(B->scales + (CUdeviceptr)(off * 4));
    if (c->quant == GROUP) {
        /* The same layout as the whole batch's: a window starts `off` rows in. */
        a.scales = NJ_PTR(B->scales + (CUdeviceptr)((B->col ? off : off * B->scales_stride) * 4));
        a.scales_stride = B->scales_stride;
        a.group_size = c->group;
    }
    a.min_scale = (float)c->min_scale;
    a.cast = c->cast;
    if (c->op == QK)
        a.heads = c->heads;
    return a;
}

static void batch_poison(const batch_bufs *B)
{
    nj_gpu_poison(&gpu, B->y, B->y_bytes);
    nj_gpu_poison(&gpu, B->stats, B->stats_bytes);
    nj_gpu_poison(&gpu, B->scales, B->scales_bytes);
    if (B->sr)
        nj_gpu_poison(&gpu, B->ro, B->r_bytes);
}

/* Bytes [off, off + n) of a device buffer equal the same bytes of a host copy. */
static int same_range(CUdeviceptr dev, const unsigned char *host, size_t off, size_t n,
                      unsigned char *tmp)
{
    nj_gpu_download(&gpu, tmp, dev + off, n);
    return memcmp(tmp, host + off, n) == 0;
}

/* A row's bits at 1, 7, 64 and 1000 rows equal its bits in a call of 20000. */
static void check_batch(const fcase *c, const unsigned char *pool_x, const unsigned char *pool_r)
{
    static const int64_t windows[][2] = {{1, 12345}, {7, BATCH_ROWS - 7}, {64, 0}, {1000, 7000}};
    const int64_t R = c->rows, H = c->hidden;
    const int sw = nj_host_dtype_size(c->tw);
    batch_bufs B;
    unsigned char *big_y, *big_ro = NULL, *big_stats, *big_scales, *tmp;
    unsigned char hw[4 * 1024], hb[4 * 1024], hscale[4];
    normjit_norm_args a;
    char what[640];
    size_t w;
    int64_t i;

    describe(c, what, sizeof what);
    memset(&B, 0, sizeof B);
    B.row_elems = (c->op == QK ? c->heads : 1) * H;
    B.groups = c->quant == GROUP ? H / c->group : 1;
    B.col = (c->flags & COLMAJ) != 0;
    B.scales_stride = B.col ? R : B.groups;
    B.sx = nj_host_dtype_size(c->tx);
    B.sy = nj_host_dtype_size(c->ty);
    B.sr = is_add(c->op) ? nj_host_dtype_size(c->tr) : 0;
    B.x_bytes = (size_t)(R * B.row_elems) * B.sx;
    B.y_bytes = (size_t)(R * B.row_elems) * B.sy;
    B.r_bytes = (size_t)(R * H) * B.sr;
    B.stats_bytes = (size_t)R * 8;
    B.scales_bytes = (size_t)(R * B.groups) * 4;
    B.x = nj_gpu_alloc(&gpu, B.x_bytes);
    nj_gpu_upload(&gpu, B.x, pool_x, B.x_bytes);
    B.y = nj_gpu_alloc(&gpu, B.y_bytes);
    if (B.sr) {
        B.r = nj_gpu_alloc(&gpu, B.r_bytes);
        nj_gpu_upload(&gpu, B.r, pool_r, B.r_bytes);
        B.ro = nj_gpu_alloc(&gpu, B.r_bytes);
    }
    B.stats = nj_gpu_alloc(&gpu, B.stats_bytes);
    B.scales = nj_gpu_alloc(&gpu, B.scales_bytes);
    B.scale = nj_gpu_alloc(&gpu, 4);
    B.w = nj_gpu_alloc(&gpu, (size_t)H * sw);
    B.b = nj_gpu_alloc(&gpu, (size_t)H * sw);
    for (i = 0; i < H; i++) {
        nj_host_put(hw, c->tw, (size_t)i,
                    (c->cast == GEMMA ? 0.0 : 1.0) + 0.25 * nj_rng_normal(&rng));
        nj_host_put(hb, c->tw, (size_t)i, 0.5 * nj_rng_normal(&rng));
    }
    nj_host_put(hscale, F32, 0, c->quant == TENSOR ? c->tensor_scale : c->cap_value);
    nj_gpu_upload(&gpu, B.w, hw, (size_t)H * sw);
    nj_gpu_upload(&gpu, B.b, hb, (size_t)H * sw);
    nj_gpu_upload(&gpu, B.scale, hscale, 4);
    big_y = malloc(B.y_bytes);
    big_stats = malloc(B.stats_bytes);
    big_scales = malloc(B.scales_bytes);
    tmp = malloc(B.y_bytes > B.scales_bytes ? B.y_bytes : B.scales_bytes);
    assert_non_null(big_y);
    assert_non_null(big_stats);
    assert_non_null(big_scales);
    assert_non_null(tmp);

    /* The whole batch. */
    batch_poison(&B);
    a = batch_args(c, &B, R, 0);
    call_ok(c->op, &a, what);
    nj_gpu_sync(&gpu);
    nj_gpu_download(&gpu, big_y, B.y, B.y_bytes);
    nj_gpu_download(&gpu, big_stats, B.stats, B.stats_bytes);
    nj_gpu_download(&gpu, big_scales, B.scales, B.scales_bytes);
    if (B.sr) {
        big_ro = malloc(B.r_bytes);
        assert_non_null(big_ro);
        nj_gpu_download(&gpu, big_ro, B.ro, B.r_bytes);
    }

    /* Windows of it, at other row counts (other buckets) and positions. */
    for (w = 0; w < sizeof windows / sizeof windows[0]; w++) {
        const int64_t n = windows[w][0], off = windows[w][1];
        const size_t yrow = (size_t)B.row_elems * B.sy;
        int64_t r;
        batch_poison(&B);
        a = batch_args(c, &B, n, off);
        call_ok(c->op, &a, what);
        nj_gpu_sync(&gpu);
        if (!same_range(B.y, big_y, (size_t)off * yrow, (size_t)n * yrow, tmp))
            fail_msg("%s: y of rows %lld..%lld in a call of %lld rows differs from the call of "
                     "%lld",
                     what, (long long)off, (long long)(off + n - 1), (long long)n, (long long)R);
        if (B.sr && !same_range(B.ro, big_ro, (size_t)(off * H) * B.sr, (size_t)(n * H) * B.sr,
                                tmp))
            fail_msg("%s: residual_out of rows %lld.. differs in a call of %lld rows", what,
                     (long long)off, (long long)n);
        if (c->op != QK && !same_range(B.stats, big_stats, (size_t)off * 4, (size_t)n * 4, tmp))
            fail_msg("%s: rstd of rows %lld.. differs in a call of %lld rows", what,
                     (long long)off, (long long)n);
        if (is_ln(c->op) &&
            !same_range(B.stats, big_stats, (size_t)(R + off) * 4, (size_t)n * 4, tmp))
            fail_msg("%s: mean of rows %lld.. differs in a call of %lld rows", what,
                     (long long)off, (long long)n);
        if (c->quant != TOKEN && c->quant != GROUP)
            continue;
        nj_gpu_download(&gpu, tmp, B.scales, B.scales_bytes);
        for (r = off; r < off + n; r++) {
            int64_t g;
            for (g = 0; g < B.groups; g++) {
                const int64_t k = c->quant == TOKEN
                                      ? r
                                      : nj_group_scale_index(r, g, B.scales_stride, B.col);
                if (memcmp(tmp + 4 * k, big_scales + 4 * k, 4))
                    fail_msg("%s: scale of row %lld group %lld differs in a call of %lld rows",
                             what, (long long)r, (long long)g, (long long)n);
            }
        }
    }
    t_test.cases++;
    nj_gpu_free(&gpu, B.x);
    nj_gpu_free(&gpu, B.y);
    nj_gpu_free(&gpu, B.r);
    nj_gpu_free(&gpu, B.ro);
    nj_gpu_free(&gpu, B.stats);
    nj_gpu_free(&gpu, B.scales);
    nj_gpu_free(&gpu, B.scale);
    nj_gpu_free(&gpu, B.w);
    nj_gpu_free(&gpu, B.b);
    free(big_y);
    free(big_ro);
    free(big_stats);
    free(big_scales);
    free(tmp);
}

static void test_batch_invariance(void **state)
{
    const size_t n = (size_t)BATCH_ROWS * 1024;
    unsigned char *pool[3][2]; /* [f32, f16, bf16][x, residual] */
    size_t d, k, i;
    (void)state;
    for (d = 0; d < 3; d++)
        for (k = 0; k < 2; k++) {
            pool[d][k] = malloc(n * 4);
            assert_non_null(pool[d][k]);
            for (i = 0; i < n; i++)
                nj_host_put(pool[d][k], (int)d + 1, i, 4.0 * nj_rng_uniform(&rng) - 2.0);
        }
    tally_begin();
    for (i = 0; i < lists[L_BATCH].n; i++) {
        const fcase *c = &lists[L_BATCH].v[i];
        check_batch(c, pool[c->tx - 1][0], is_add(c->op) ? pool[c->tr - 1][1] : NULL);
    }
    tally_end("batch invariance");
    for (d = 0; d < 3; d++)
        for (k = 0; k < 2; k++)
            free(pool[d][k]);
}

/* ------------------------------------------------------------------------ */
/* Refused overlaps on real buffers: EINVAL, and not a byte written          */

enum { ARENA = 1 << 20, T_X = 0, T_R = 64 << 10, T_RO = 128 << 10, T_Y = 192 << 10,
       T_W = 256 << 10, T_STATS = 320 << 10, T_SCALES = 384 << 10, T_SCALE = 448 << 10 };

typedef struct overlap_case {
    const char *name;
    int op;
    void (*change)(normjit_norm_args *a, CUdeviceptr base);
} overlap_case;

#define AT(off) NJ_PTR(base + (CUdeviceptr)(off))
static void ov_x_residual(normjit_norm_args *a, CUdeviceptr base)
{
    a->residual = AT(T_X + 4096);
}
static void ov_y_residual_out(normjit_norm_args *a, CUdeviceptr base)
{
    a->residual_out = AT(T_Y + 256);
}
static void ov_residual_partial(normjit_norm_args *a, CUdeviceptr base)
{
    a->residual_out = AT(T_R + 2048);
}
static void ov_y_is_residual(normjit_norm_args *a, CUdeviceptr base)
{
    a->y = AT(T_R);
}
static void ov_y_is_residual_out(normjit_norm_args *a, CUdeviceptr base)
{
    a->y = AT(T_RO);
}
static void ov_x_is_residual_out(normjit_norm_args *a, CUdeviceptr base)
{
    a->residual_out = AT(T_X);
}
static void ov_rstd_residual_out(normjit_norm_args *a, CUdeviceptr base)
{
    a->rstd = AT(T_RO + 64);
}
static void ov_in_place_strides(normjit_norm_args *a, CUdeviceptr base)
{
    a->residual_out = AT(T_R);
    a->residual_out_row_stride = 2 * a->hidden;
}
static void ov_scales_y(normjit_norm_args *a, CUdeviceptr base)
{
    a->y_dtype = E4M3;
    a->quant = TOKEN;
    a->scales = AT(T_Y + 64);
}
static void ov_scale_y(normjit_norm_args *a, CUdeviceptr base)
{
    a->y_dtype = INT8;
    a->quant = TENSOR;
    a->scale = AT(T_Y + 16);
}
static void ov_group_scales_residual_out(normjit_norm_args *a, CUdeviceptr base)
{
    a->y_dtype = E4M3;
    a->quant = GROUP;
    a->group_size = 128;
    a->flags = COLMAJ;
    a->scales = AT(T_RO + 4096);
}
static void ov_y_is_x_fp8(normjit_norm_args *a, CUdeviceptr base)
{
    a->y_dtype = E4M3;
    a->quant = TOKEN;
    a->scales = AT(T_SCALES);
    a->y = AT(T_X);
}
static void ov_qk_y_next_head(normjit_norm_args *a, CUdeviceptr base)
{
    a->y = AT(T_X + 256);
}
static void ov_none(normjit_norm_args *a, CUdeviceptr base)
{
    (void)a;
    (void)base;
}
#undef AT

/* A valid call whose tensors sit apart in one arena: 8 rows of 1024 f16 (QK: 4 heads of 128). */
static normjit_norm_args arena_args(int op, CUdeviceptr base)
{
    normjit_norm_args a;
    memset(&a, 0, sizeof a);
    a.struct_size = sizeof a;
    a.rows = 8;
    a.hidden = op == QK ? 128 : 1024;
    a.x = NJ_PTR(base + T_X);
    a.y = NJ_PTR(base + T_Y);
    a.weight = NJ_PTR(base + T_W);
    a.x_dtype = a.y_dtype = a.weight_dtype = F16;
    a.eps = EPS;
    if (op == QK) {
        a.heads = 4;
        a.x_row_stride = 6 * 128; /* the q slice of a qkv with 4 + 1 + 1 heads */
        return a;
    }
    a.rstd = NJ_PTR(base + T_STATS);
    if (is_add(op)) {
        a.residual = NJ_PTR(base + T_R);
        a.residual_out = NJ_PTR(base + T_RO);
        a.residual_dtype = F16;
    }
    return a;
}

static void test_refused_overlaps(void **state)
{
    static const overlap_case cases[] = {
        {"x and residual", ARMS, ov_x_residual},
        {"y and residual_out", ARMS, ov_y_residual_out},
        {"residual_out inside residual", ALN, ov_residual_partial},
        {"y over residual", ARMS, ov_y_is_residual},
        {"y over residual_out", ARMS, ov_y_is_residual_out},
        {"residual_out over x", ARMS, ov_x_is_residual_out},
        {"rstd inside residual_out", ARMS, ov_rstd_residual_out},
        {"residual in place with another stride", ARMS, ov_in_place_strides},
        {"scales inside y", RMS, ov_scales_y},
        {"tensor scale inside y", ARMS, ov_scale_y},
        {"group scales inside residual_out", ARMS, ov_group_scales_residual_out},
        {"fp8 y over f16 x", ARMS, ov_y_is_x_fp8},
        {"qk: y one head into x", QK, ov_qk_y_next_head},
    };
    const CUdeviceptr base = nj_gpu_alloc(&gpu, ARENA);
    unsigned char *pattern = malloc(ARENA), *after = malloc(ARENA);
    size_t i, j;
    (void)state;
    assert_non_null(pattern);
    assert_non_null(after);
    for (j = 0; j < ARENA; j += 2)
        nj_host_put(pattern, F16, j / 2, nj_rng_normal(&rng));
    /* The base calls are valid: the refusals below are about the overlaps. */
    for (i = 0; i < 3; i++) {
        const int op = i == 0 ? ARMS : i == 1 ? RMS : QK;
        normjit_norm_args a = arena_args(op, base);
        ov_none(&a, base);
        nj_gpu_upload(&gpu, base, pattern, ARENA);
        call_ok(op, &a, opname(op));
        nj_gpu_sync(&gpu);
    }
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        normjit_norm_args a = arena_args(cases[i].op, base);
        int status;
        cases[i].change(&a, base);
        nj_gpu_upload(&gpu, base, pattern, ARENA);
        status = normjit_norm(ctx, cases[i].op, &a, NULL);
        nj_gpu_sync(&gpu);
        if (status != NORMJIT_EINVAL)
            fail_msg("%s: %s \"%s\", expected NORMJIT_EINVAL", cases[i].name,
                     normjit_status_name(status), normjit_last_error());
        nj_gpu_download(&gpu, after, base, ARENA);
        if (memcmp(after, pattern, ARENA))
            fail_msg("%s: refused, but memory changed", cases[i].name);
    }
    printf("# %zu overlapping calls refused with nothing written\n", i);
    nj_gpu_free(&gpu, base);
    free(pattern);
    free(after);
}

/* ------------------------------------------------------------------------ */
/* CUDA graphs after normjit_prepare with the 0.2 fields                     */

typedef struct graph_io {
    int64_t rows;
    CUdeviceptr x, r, y, ro, stats, scales;
    size_t x_bytes, r_bytes, y_bytes, scales_bytes;
} graph_io;

static void graph_io_new(graph_io *g, int64_t rows, int64_t H)
{
    g->rows = rows;
    g->x_bytes = (size_t)(rows * H) * 2;
    g->r_bytes = (size_t)(rows * H) * 4;
    g->y_bytes = (size_t)(rows * H);
    g->scales_bytes = (size_t)(rows * (H / 128)) * 4;
    g->x = nj_gpu_alloc(&gpu, g->x_bytes);
    g->r = nj_gpu_alloc(&gpu, g->r_bytes);
    g->y = nj_gpu_alloc(&gpu, g->y_bytes);
    g->ro = nj_gpu_alloc(&gpu, g->r_bytes);
    g->stats = nj_gpu_alloc(&gpu, (size_t)rows * 4);
    g->scales = nj_gpu_alloc(&gpu, g->scales_bytes);
}

static void graph_io_free(graph_io *g)
{
    nj_gpu_free(&gpu, g->x);
    nj_gpu_free(&gpu, g->r);
    nj_gpu_free(&gpu, g->y);
    nj_gpu_free(&gpu, g->ro);
    nj_gpu_free(&gpu, g->stats);
    nj_gpu_free(&gpu, g->scales);
}

/* bf16 x + fp32 residual -> fp8 e4m3 with per-128 column-major power-of-two scales. */
static normjit_norm_args graph_add_args(const graph_io *g, int64_t H, CUdeviceptr w)
{
    normjit_norm_args a;
    memset(&a, 0, sizeof a);
    a.struct_size = sizeof a;
    a.flags = COLMAJ | POW2;
    a.rows = g->rows;
    a.hidden = H;
    a.x = NJ_PTR(g->x);
    a.y = NJ_PTR(g->y);
    a.weight = NJ_PTR(w);
    a.rstd = NJ_PTR(g->stats);
    a.x_dtype = BF16;
    a.y_dtype = E4M3;
    a.weight_dtype = F32;
    a.eps = EPS;
    a.residual = NJ_PTR(g->r);
    a.residual_out = NJ_PTR(g->ro);
    a.residual_dtype = F32;
    a.quant = GROUP;
    a.group_size = 128;
    a.scales = NJ_PTR(g->scales);
    return a;
}

/* Inputs of one replay: x, residual and the qkv buffer, kept on the host to upload twice. */
typedef struct graph_inputs {
    unsigned char *x8, *r8, *x3000, *r3000, *qkv;
} graph_inputs;

static unsigned char *random_bytes(int dtype, size_t n)
{
    unsigned char *p = malloc(n * (size_t)nj_host_dtype_size(dtype));
    size_t i;
    assert_non_null(p);
    for (i = 0; i < n; i++)
        nj_host_put(p, dtype, i, nj_rng_normal(&rng));
    return p;
}

static void upload_inputs(const graph_inputs *in, const graph_io *g8, const graph_io *g3000,
                          CUdeviceptr qkv, size_t qkv_bytes)
{
    const graph_io *gs[2] = {g8, g3000};
    size_t k;
    nj_gpu_upload(&gpu, g8->x, in->x8, g8->x_bytes);
    nj_gpu_upload(&gpu, g8->r, in->r8, g8->r_bytes);
    nj_gpu_upload(&gpu, g3000->x, in->x3000, g3000->x_bytes);
    nj_gpu_upload(&gpu, g3000->r, in->r3000, g3000->r_bytes);
    nj_gpu_upload(&gpu, qkv, in->qkv, qkv_bytes);
    for (k = 0; k < 2; k++) {
        nj_gpu_poison(&gpu, gs[k]->y, gs[k]->y_bytes);
        nj_gpu_poison(&gpu, gs[k]->ro, gs[k]->r_bytes);
        nj_gpu_poison(&gpu, gs[k]->stats, (size_t)gs[k]->rows * 4);
        nj_gpu_poison(&gpu, gs[k]->scales, gs[k]->scales_bytes);
    }
    /* Copies and memsets go to the legacy stream, which a non-blocking stream does not wait for. */
    nj_gpu_sync(&gpu);
}

static size_t download_outputs(const graph_io *g8, const graph_io *g3000, CUdeviceptr qkv,
                               size_t qkv_bytes, unsigned char *dst)
{
    const graph_io *gs[2] = {g8, g3000};
    size_t n = 0, k;
#define TAKE(ptr, bytes) (nj_gpu_download(&gpu, dst + n, ptr, bytes), n += (bytes))
    for (k = 0; k < 2; k++) {
        TAKE(gs[k]->y, gs[k]->y_bytes);
        TAKE(gs[k]->ro, gs[k]->r_bytes);
        TAKE(gs[k]->stats, (size_t)gs[k]->rows * 4);
        TAKE(gs[k]->scales, gs[k]->scales_bytes);
    }
    TAKE(qkv, qkv_bytes);
#undef TAKE
    return n;
}

static void test_graph_capture(void **state)
{
    const int64_t H = 4096, D = 128, tokens = 8, qh = 8;
    const int64_t qkv_elems = tokens * (qh + 4) * D;
    normjit_ctx *c2 = NULL;
    normjit_ctx_options opt;
    normjit_prepare_args p;
    normjit_prepare_stats st;
    normjit_norm_args a8, a3000, aq, missing;
    graph_io g8, g3000, g_missing;
    CUdeviceptr qkv, w, wq;
    CUstream stream;
    CUgraph graph;
    CUgraphExec exec;
    unsigned char *host, *from_graph, *direct;
    size_t i, out_bytes;
    int replay;
    (void)state;

    memset(&opt, 0, sizeof opt);
    opt.struct_size = sizeof opt;
    assert_int_equal(normjit_ctx_create(&c2, &opt), NORMJIT_OK); /* fresh: nothing in memory */
    memset(&p, 0, sizeof p);
    p.struct_size = sizeof p;
    p.op = ARMS;
    p.x_dtype = BF16;
    p.y_dtype = E4M3;
    p.weight_dtype = F32;
    p.hidden = &H;
    p.n_hidden = 1;
    p.residual_dtype = F32;
    p.quant = GROUP;
    p.group_size = 128;
    p.norm_flags = COLMAJ | POW2;
    memset(&st, 0, sizeof st);
    st.struct_size = sizeof st;
    if (normjit_prepare(c2, &p, &st) != NORMJIT_OK)
        fail_msg("prepare add_rmsnorm: %s", normjit_last_error());
    assert_true(st.compiled + st.from_disk >= 1);
    assert_int_equal(st.in_memory, 0);
    memset(&p, 0, sizeof p);
    p.struct_size = sizeof p;
    p.op = QK;
    p.x_dtype = p.y_dtype = p.weight_dtype = BF16;
    p.hidden = &D;
    p.n_hidden = 1;
    p.cast = LLAMA;
    if (normjit_prepare(c2, &p, NULL) != NORMJIT_OK)
        fail_msg("prepare qk_rmsnorm: %s", normjit_last_error());

    graph_io_new(&g8, 8, H);
    graph_io_new(&g3000, 3000, H);
    graph_io_new(&g_missing, 8, 4224);
    qkv = nj_gpu_alloc(&gpu, (size_t)qkv_elems * 2);
    w = nj_gpu_alloc(&gpu, (size_t)4224 * 4); /* also serves the unprepared size */
    wq = nj_gpu_alloc(&gpu, (size_t)D * 2);
    host = malloc((size_t)H * 4);
    out_bytes = g8.y_bytes + g8.r_bytes + 8 * 4 + g8.scales_bytes + g3000.y_bytes + g3000.r_bytes +
                3000 * 4 + g3000.scales_bytes + (size_t)qkv_elems * 2;
    from_graph = malloc(out_bytes);
    direct = malloc(out_bytes);
    assert_non_null(host);
    assert_non_null(from_graph);
    assert_non_null(direct);
    for (i = 0; i < (size_t)H; i++)
        nj_host_put(host, F32, i, 1.0 + 0.25 * nj_rng_normal(&rng));
    nj_gpu_upload(&gpu, w, host, (size_t)H * 4);
    for (i = 0; i < (size_t)D; i++)
        nj_host_put(host, BF16, i, 1.0 + 0.25 * nj_rng_normal(&rng));
    nj_gpu_upload(&gpu, wq, host, (size_t)D * 2);

    a8 = graph_add_args(&g8, H, w);
    a3000 = graph_add_args(&g3000, H, w);
    memset(&aq, 0, sizeof aq);
    aq.struct_size = sizeof aq;
    aq.rows = tokens;
    aq.hidden = D;
    aq.x = aq.y = NJ_PTR(qkv); /* the q slice, in place */
    aq.x_row_stride = aq.y_row_stride = (qh + 4) * D;
    aq.heads = qh;
    aq.weight = NJ_PTR(wq);
    aq.x_dtype = aq.y_dtype = aq.weight_dtype = BF16;
    aq.eps = EPS;
    aq.cast = LLAMA;
    missing = graph_add_args(&g_missing, 4224, w); /* a size nobody prepared */

    assert_int_equal(gpu.x->stream_create(&stream, CU_STREAM_NON_BLOCKING), CUDA_SUCCESS);
    assert_int_equal(gpu.x->stream_begin_capture(stream, CU_STREAM_CAPTURE_MODE_GLOBAL),
                     CUDA_SUCCESS);
    assert_int_equal(normjit_norm(c2, ARMS, &a8, stream), NORMJIT_OK);
    assert_int_equal(normjit_norm(c2, ARMS, &a3000, stream), NORMJIT_OK);
    assert_int_equal(normjit_norm(c2, QK, &aq, stream), NORMJIT_OK);
    assert_int_equal(normjit_norm(c2, ARMS, &missing, stream), NORMJIT_ENOTREADY);
    assert_non_null(strstr(normjit_last_error(), "normjit_prepare"));
    assert_int_equal(gpu.x->stream_end_capture(stream, &graph), CUDA_SUCCESS);
    assert_int_equal(gpu.x->graph_instantiate(&exec, graph, 0), CUDA_SUCCESS);

    /* Each replay reads new inputs; it must give what the same calls give launched directly. */
    for (replay = 0; replay < 2; replay++) {
        graph_inputs in;
        size_t n_graph, n_direct;
        in.x8 = random_bytes(BF16, g8.x_bytes / 2);
        in.r8 = random_bytes(F32, g8.r_bytes / 4);
        in.x3000 = random_bytes(BF16, g3000.x_bytes / 2);
        in.r3000 = random_bytes(F32, g3000.r_bytes / 4);
        in.qkv = random_bytes(BF16, (size_t)qkv_elems);
        upload_inputs(&in, &g8, &g3000, qkv, (size_t)qkv_elems * 2);
        assert_int_equal(gpu.x->graph_launch(exec, stream), CUDA_SUCCESS);
        assert_int_equal(gpu.x->stream_synchronize(stream), CUDA_SUCCESS);
        n_graph = download_outputs(&g8, &g3000, qkv, (size_t)qkv_elems * 2, from_graph);
        upload_inputs(&in, &g8, &g3000, qkv, (size_t)qkv_elems * 2);
        assert_int_equal(normjit_norm(c2, ARMS, &a8, stream), NORMJIT_OK);
        assert_int_equal(normjit_norm(c2, ARMS, &a3000, stream), NORMJIT_OK);
        assert_int_equal(normjit_norm(c2, QK, &aq, stream), NORMJIT_OK);
        assert_int_equal(gpu.x->stream_synchronize(stream), CUDA_SUCCESS);
        n_direct = download_outputs(&g8, &g3000, qkv, (size_t)qkv_elems * 2, direct);
        assert_int_equal(n_graph, n_direct);
        if (memcmp(from_graph, direct, n_graph))
            fail_msg("graph replay %d differs from the same calls launched directly (seed %llu)",
                     replay, (unsigned long long)nj_test_seed());
        free(in.x8);
        free(in.r8);
        free(in.x3000);
        free(in.r3000);
        free(in.qkv);
    }
    gpu.x->graph_exec_destroy(exec);
    gpu.x->graph_destroy(graph);
    gpu.x->stream_destroy(stream);
    graph_io_free(&g8);
    graph_io_free(&g3000);
    graph_io_free(&g_missing);
    nj_gpu_free(&gpu, qkv);
    nj_gpu_free(&gpu, w);
    nj_gpu_free(&gpu, wq);
    free(host);
    free(from_graph);
    free(direct);
    normjit_ctx_destroy(c2);
}

/* ------------------------------------------------------------------------ */


/*
 * Staged storage (rows copied ahead into shared memory by a persistent grid) under the fused
 * ops and quantized outputs: the plain ops' tuning records give it to the prefill bucket, the
 * fused ops inherit it (the fused add copies the residual too), and every case is checked as
 * the other tests check theirs, the fused add bit for bit against the plain op.
 */
static void test_staged_storage(void **state)
{
    static const char table[] =
        "device: any\nsms: 1\ncc: 90\nfields: " NJ_TUNING_FIELDS "\n"
        "rmsnorm bf16 bf16 bf16 16384 decode 8 1024 1 1 0 reg 0 1 -\n"
        "rmsnorm bf16 bf16 bf16 16384 prefill 8 1024 1 1 0 staged 8 1 -\n"
        "layernorm f16 f16 f16 8192 decode 8 512 1 1 0 reg 0 1 -\n"
        "layernorm f16 f16 f16 8192 prefill 8 512 1 1 0 staged 8 1 -\n"
        "rmsnorm bf16 bf16 bf16 131072 decode 8 1024 1 8 0 reg 0 1 -\n"
        "rmsnorm bf16 bf16 bf16 131072 prefill 8 1024 1 8 0 staged 8 1 -\n";
    normjit_ctx *shared = ctx, *staged;
    nj_tuning *t = NULL;
    case_list l = {0};
    size_t s;
    fcase c;
    (void)state;
    c = mk(ARMS, BF16, 16384, 300);
    push(&l, &c);
    c.in_place_res = c.in_place_y = 1;
    c.flags = PLUS1;
    push(&l, &c);
    c = mk(ALN, F16, 8192, 500);
    push(&l, &c);
    c.in_place_res = 1;
    c.cast = LLAMA;
    push(&l, &c);
    for (s = 0; s < N_QUANT_SPECS; s += 4) { /* tensor, token with a cap, group, group */
        c = mk(s % 8 ? RMS : ARMS, BF16, 16384, 200);
        set_quant(&c, &quant_specs[s]);
        push(&l, &c);
    }
    c = mk(ALN, F16, 8192, 100);
    set_quant(&c, &quant_specs[3]);
    push(&l, &c);
    if (gpu.arch >= 90) {
        c = mk(ARMS, BF16, 131072, 80);
        push(&l, &c);
        c = mk(RMS, BF16, 131072, 80);
        set_quant(&c, &quant_specs[8]);
        push(&l, &c);
    }
    staged = nj_gpu_ctx_with_table(table, &t);
    ctx = staged;
    run_list(&l, "staged storage");
    ctx = shared;
    normjit_ctx_destroy(staged);
    nj_tuning_free(t);
    free(l.v);
}

static int setup(void **state)
{
    normjit_ctx_options o;
    (void)state;
    memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    o.log_level = NORMJIT_LOG_WARN;
    if (normjit_ctx_create(&ctx, &o) != NORMJIT_OK) {
        fprintf(stderr, "normjit_ctx_create: %s\n", normjit_last_error());
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    size_t i;
    (void)state;
    printf("# %ld cases on %s, %ld elements checked against the double-precision reference; "
           "16-bit y bits equal to the cast formulas: %ld of %ld (%ld within one ulp); codes "
           "exact: %ld of %ld; %ld scales, largest relative error %.2g; %ld fused calls bit for "
           "bit the plain op's\n",
           t_all.cases, gpu.name, t_all.elements, t_all.y_equal, t_all.y_total, t_all.y_ulp1,
           t_all.codes_exact, t_all.codes, t_all.scales, t_all.scale_err, t_all.plain_compared);
    normjit_ctx_destroy(ctx);
    for (i = 0; i < N_LISTS; i++)
        free(lists[i].v);
    free(jobs);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prepare_parallel), cmocka_unit_test(test_fused_add),
        cmocka_unit_test(test_quant),            cmocka_unit_test(test_cast_modes),
        cmocka_unit_test(test_qk_norm),          cmocka_unit_test(test_nonfinite),
        cmocka_unit_test(test_saturation),       cmocka_unit_test(test_in_place),
        cmocka_unit_test(test_unaligned),        cmocka_unit_test(test_batch_invariance),
        cmocka_unit_test(test_refused_overlaps), cmocka_unit_test(test_graph_capture),
        cmocka_unit_test(test_staged_storage),
    };
    int rc;
    if ((rc = nj_gpu_open(&gpu)) != 0)
        return rc;
    nj_test_seed_banner(nj_test_quick() ? "gpu fused (quick mode)" : "gpu fused");
    nj_rng_init(&rng, nj_test_seed());
    build_lists();
    rc = cmocka_run_group_tests_name("gpu fused", tests, setup, teardown);
    nj_gpu_close(&gpu);
    return rc;
}
