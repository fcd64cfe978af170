/*
 * GPU suite: every op and dtype combination against a double-precision CPU
 * reference on fresh random data, with outputs poisoned before each launch
 * and checked fully (and only) written. Exits 77 (skip) without a GPU.
 */
#include "gpu.h"
#include "testutil.h"
#include "tuning.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

static nj_gpu gpu;
static normjit_ctx *ctx;
static nj_rng rng;

static const int64_t all_hidden[] = {1,    7,    64,   127,  768,   1024,  2880,  3584,
                                     4096, 5120, 7168, 8192, 12288, 16384, 32768, 65536};
#define N_ALL_HIDDEN (sizeof all_hidden / sizeof all_hidden[0])
static const int dtypes[] = {NORMJIT_DTYPE_F32, NORMJIT_DTYPE_F16, NORMJIT_DTYPE_BF16};
static const int ops[] = {NORMJIT_OP_RMSNORM, NORMJIT_OP_LAYERNORM};

typedef struct norm_case {
    int op, tx, ty, tw;
    int64_t hidden, rows;
    int64_t x_stride, y_stride; /* elements; 0: dense */
    int64_t x_off, y_off, w_off; /* elements added to each pointer */
    int weight, bias, stats, plus_one, in_place;
    double scale, shift; /* x ~ shift + scale * N(0, 1) */
} norm_case;

static int cases_checked;

static void describe(const norm_case *c, char *out, size_t size)
{
    snprintf(out, size,
             "%s x=%d y=%d w=%d hidden=%lld rows=%lld strides=%lld/%lld offsets=%lld/%lld/%lld "
             "weight=%d bias=%d stats=%d plus_one=%d in_place=%d (seed %llu)",
             c->op == NORMJIT_OP_RMSNORM ? "rmsnorm" : "layernorm", c->tx, c->ty, c->tw,
             (long long)c->hidden, (long long)c->rows, (long long)c->x_stride,
             (long long)c->y_stride, (long long)c->x_off, (long long)c->y_off,
             (long long)c->w_off, c->weight, c->bias, c->stats, c->plus_one, c->in_place,
             (unsigned long long)nj_test_seed());
}

static int dsize(int dtype)
{
    return dtype == NORMJIT_DTYPE_F32 ? 4 : 2;
}

static int launch(int op, const normjit_norm_args *a, CUstream stream)
{
    return op == NORMJIT_OP_RMSNORM ? normjit_rmsnorm_fwd(ctx, a, stream)
                                    : normjit_layernorm_fwd(ctx, a, stream);
}

static int is_poison(const unsigned char *p, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (p[i] != 0xff)
            return 0;
    return 1;
}

/* Run one case end to end and check every output element, stat and untouched byte. */
static void run_case(const norm_case *c)
{
    const int64_t H = c->hidden, R = c->rows;
    const int64_t xs = c->x_stride ? c->x_stride : H, ys = c->in_place ? xs : (c->y_stride ? c->y_stride : H);
    const int sx = dsize(c->tx), sy = dsize(c->ty), sw = dsize(c->tw);
    const size_t x_elems = (size_t)(c->x_off + R * xs), y_elems = (size_t)(c->y_off + R * ys);
    unsigned char *hx = malloc(x_elems * sx), *hy = malloc(y_elems * sy);
    unsigned char *hw = malloc((size_t)(c->w_off + H) * sw), *hb = malloc((size_t)(c->w_off + H) * sw);
    float *hstats = malloc((size_t)R * 2 * sizeof(float));
    double *xr = malloc((size_t)H * sizeof(double)), *wr = malloc((size_t)H * sizeof(double));
    double *br = malloc((size_t)H * sizeof(double)), *ref = malloc((size_t)H * sizeof(double));
    CUdeviceptr dx, dy, dw, db, dstats;
    normjit_norm_args a;
    char what[512];
    size_t i;
    int64_t r, j;
    int status;

    assert_non_null(hx);
    assert_non_null(hy);
    assert_non_null(hw);
    assert_non_null(hb);
    assert_non_null(hstats);
    describe(c, what, sizeof what);
    for (i = 0; i < x_elems; i++)
        nj_host_put(hx, c->tx, i, c->shift + c->scale * nj_rng_normal(&rng));
    for (i = 0; i < (size_t)(c->w_off + H); i++) {
        nj_host_put(hw, c->tw, i, 1.0 + 0.25 * nj_rng_normal(&rng));
        nj_host_put(hb, c->tw, i, 0.5 * nj_rng_normal(&rng));
    }
    dx = nj_gpu_alloc(&gpu, x_elems * sx);
    nj_gpu_upload(&gpu, dx, hx, x_elems * sx);
    dy = c->in_place ? dx : nj_gpu_alloc(&gpu, y_elems * sy);
    if (!c->in_place)
        nj_gpu_poison(&gpu, dy, y_elems * sy);
    dw = nj_gpu_alloc(&gpu, (size_t)(c->w_off + H) * sw);
    db = nj_gpu_alloc(&gpu, (size_t)(c->w_off + H) * sw);
    nj_gpu_upload(&gpu, dw, hw, (size_t)(c->w_off + H) * sw);
    nj_gpu_upload(&gpu, db, hb, (size_t)(c->w_off + H) * sw);
    dstats = nj_gpu_alloc(&gpu, (size_t)R * 2 * sizeof(float) + 4);
    nj_gpu_poison(&gpu, dstats, (size_t)R * 2 * sizeof(float) + 4);

    memset(&a, 0, sizeof a);
    a.struct_size = sizeof a;
    a.flags = c->plus_one ? NORMJIT_NORM_WEIGHT_PLUS_ONE : 0;
    a.rows = R;
    a.hidden = H;
    a.x = NJ_PTR(dx + (CUdeviceptr)(c->x_off * sx));
    a.y = NJ_PTR(dy + (CUdeviceptr)(c->in_place ? c->x_off * sx : c->y_off * sy));
    a.x_row_stride = c->x_stride;
    a.y_row_stride = c->in_place ? c->x_stride : c->y_stride;
    a.weight = c->weight ? NJ_PTR(dw + (CUdeviceptr)(c->w_off * sw)) : NULL;
    a.bias = c->bias ? NJ_PTR(db + (CUdeviceptr)(c->w_off * sw)) : NULL;
    a.rstd = c->stats ? NJ_PTR(dstats) : NULL;
    a.mean = c->stats && c->op == NORMJIT_OP_LAYERNORM ? NJ_PTR(dstats + (CUdeviceptr)(R * 4))
                                                       : NULL;
    a.x_dtype = c->tx;
    a.y_dtype = c->ty;
    a.weight_dtype = c->tw;
    a.eps = 1e-5f;

    status = launch(c->op, &a, NULL);
    if (status != NORMJIT_OK)
        fail_msg("%s: %s: %s", what, normjit_status_name(status), normjit_last_error());
    nj_gpu_sync(&gpu);
    nj_gpu_download(&gpu, hy, dy, y_elems * sy);
    nj_gpu_download(&gpu, hstats, dstats, (size_t)R * 2 * sizeof(float));

    for (j = 0; j < H; j++) {
        wr[j] = nj_host_get(hw, c->tw, (size_t)(c->w_off + j));
        br[j] = nj_host_get(hb, c->tw, (size_t)(c->w_off + j));
    }
    /* Bytes before the first row are untouched. */
    if (!c->in_place && !is_poison(hy, (size_t)c->y_off * sy))
        fail_msg("%s: bytes before y were written", what);
    for (r = 0; r < R; r++) {
        double rstd, mean, err = 0, mag = 0;
        const unsigned char *yrow = hy + (size_t)(c->y_off + r * ys) * sy;
        for (j = 0; j < H; j++)
            xr[j] = nj_host_get(hx, c->tx, (size_t)(c->x_off + r * xs + j));
        nj_reference_row(c->op, xr, c->weight ? wr : NULL, c->bias ? br : NULL, H, 1e-5,
                         c->plus_one, ref, &rstd, &mean);
        for (j = 0; j < H; j++) {
            double got = nj_host_get(yrow, c->ty, (size_t)j);
            if (isnan(got))
                fail_msg("%s: row %lld element %lld not written (NaN)", what, (long long)r,
                         (long long)j);
            if (fabs(got - ref[j]) > err)
                err = fabs(got - ref[j]);
            if (fabs(ref[j]) > mag)
                mag = fabs(ref[j]);
        }
        if (err > nj_tolerance(c->ty) * (mag > 1e-30 ? mag : 1e-30))
            fail_msg("%s: row %lld normalized error %.3g > %.3g", what, (long long)r,
                     err / mag, nj_tolerance(c->ty));
        /* Padding between rows: poison when out of place, the input when in place. */
        if (ys > H) {
            const unsigned char *pad = yrow + (size_t)H * sy;
            const size_t n = (size_t)(ys - H) * sy;
            if (!c->in_place && !is_poison(pad, n))
                fail_msg("%s: padding after row %lld was written", what, (long long)r);
            if (c->in_place && memcmp(pad, hx + (size_t)(c->x_off + r * xs + H) * sx, n))
                fail_msg("%s: padding after row %lld changed in place", what, (long long)r);
        }
        if (c->stats) {
            if (fabs(hstats[r] - rstd) > 2e-5 * rstd)
                fail_msg("%s: row %lld rstd %.9g, expected %.9g", what, (long long)r,
                         (double)hstats[r], rstd);
            if (c->op == NORMJIT_OP_LAYERNORM &&
                fabs(hstats[R + r] - mean) > 2e-5 * (fabs(mean) + 1.0 / rstd))
                fail_msg("%s: row %lld mean %.9g, expected %.9g", what, (long long)r,
                         (double)hstats[R + r], mean);
        } else if (!is_poison((const unsigned char *)hstats, (size_t)R * 2 * sizeof(float))) {
            fail_msg("%s: statistics written although not asked for", what);
        }
    }
    cases_checked++;

    nj_gpu_free(&gpu, dx);
    if (!c->in_place)
        nj_gpu_free(&gpu, dy);
    nj_gpu_free(&gpu, dw);
    nj_gpu_free(&gpu, db);
    nj_gpu_free(&gpu, dstats);
    free(hx);
    free(hy);
    free(hw);
    free(hb);
    free(hstats);
    free(xr);
    free(wr);
    free(br);
    free(ref);
}

static norm_case base_case(int op, int dtype, int64_t hidden, int64_t rows)
{
    norm_case c;
    memset(&c, 0, sizeof c);
    c.op = op;
    c.tx = c.ty = c.tw = dtype;
    c.hidden = hidden;
    c.rows = rows;
    c.weight = 1;
    c.bias = op == NORMJIT_OP_LAYERNORM;
    c.stats = 1;
    c.scale = 1.0;
    c.shift = op == NORMJIT_OP_LAYERNORM ? 0.5 : 0.0;
    return c;
}

/* Compile what the suite needs in parallel first (also exercises concurrent prepare). */
typedef struct prep_job {
    int op, dtype;
} prep_job;

static void *prepare_worker(void *arg)
{
    const prep_job *j = arg;
    normjit_prepare_args p;
    int status;
    nj_gpu_bind(&gpu);
    memset(&p, 0, sizeof p);
    p.struct_size = sizeof p;
    p.op = j->op;
    p.x_dtype = p.y_dtype = p.weight_dtype = j->dtype;
    p.hidden = all_hidden;
    p.n_hidden = N_ALL_HIDDEN;
    status = normjit_prepare(ctx, &p, NULL);
    if (status != NORMJIT_OK)
        fprintf(stderr, "prepare failed: %s\n", normjit_last_error());
    return (void *)(intptr_t)status;
}

static void test_prepare_parallel(void **state)
{
    pthread_t t[6];
    prep_job jobs[6];
    int i;
    (void)state;
    for (i = 0; i < 6; i++) {
        jobs[i].op = ops[i / 3];
        jobs[i].dtype = dtypes[i % 3];
        assert_int_equal(pthread_create(&t[i], NULL, prepare_worker, &jobs[i]), 0);
    }
    for (i = 0; i < 6; i++) {
        void *ret;
        pthread_join(t[i], &ret);
        assert_int_equal((int)(intptr_t)ret, NORMJIT_OK);
    }
}

/* Every op, same-dtype combination and hidden size, at decode and prefill row counts. */
static void test_all_sizes(void **state)
{
    static const int64_t rows[] = {1, 67, 3};
    size_t o, d, h, r;
    (void)state;
    for (o = 0; o < 2; o++)
        for (d = 0; d < 3; d++)
            for (h = 0; h < N_ALL_HIDDEN; h++)
                for (r = 0; r < (nj_test_quick() ? 2u : 3u); r++) {
                    if (nj_test_quick() && h % 3 != 1 && all_hidden[h] != 65536)
                        continue;
                    norm_case c = base_case(ops[o], dtypes[d], all_hidden[h], rows[r]);
                    run_case(&c);
                }
}

/* Every input, output and weight dtype combination. */
static void test_dtype_matrix(void **state)
{
    static const int64_t hidden[] = {127, 2880, 4096, 65536};
    size_t o, x, y, w, h;
    (void)state;
    for (o = 0; o < 2; o++)
        for (x = 0; x < 3; x++)
            for (y = 0; y < 3; y++)
                for (w = 0; w < 2; w++)
                    for (h = 0; h < (nj_test_quick() ? 2u : 4u); h++) {
                        norm_case c = base_case(ops[o], dtypes[x], hidden[h], 5);
                        c.ty = dtypes[y];
                        c.tw = w ? NORMJIT_DTYPE_F32 : dtypes[x];
                        run_case(&c);
                    }
}

/* Without weight, bias or statistics; Gemma's (1 + w); LayerNorm with weight but no bias. */
static void test_optional_parts(void **state)
{
    size_t o, d;
    (void)state;
    for (o = 0; o < 2; o++)
        for (d = 0; d < 3; d++) {
            norm_case c = base_case(ops[o], dtypes[d], 4096, 9);
            c.weight = c.bias = c.stats = 0;
            run_case(&c);
            c = base_case(ops[o], dtypes[d], 2880, 9);
            c.plus_one = 1;
            c.bias = 0;
            run_case(&c);
        }
}

/* Row counts in the large bucket (more than 16384 rows). */
static void test_many_rows(void **state)
{
    static const int64_t hidden[] = {768, 64, 2880};
    size_t o, h;
    (void)state;
    for (o = 0; o < 2; o++)
        for (h = 0; h < (nj_test_quick() ? 1u : 3u); h++) {
            norm_case c = base_case(ops[o], NORMJIT_DTYPE_BF16, hidden[h], 20000);
            run_case(&c);
        }
}

/* Separate row strides for x and y; padding between rows must stay untouched. */
static void test_strided(void **state)
{
    static const int64_t hidden[] = {7, 768, 2880, 8192};
    size_t o, d, h;
    (void)state;
    for (o = 0; o < 2; o++)
        for (d = 0; d < 3; d++)
            for (h = 0; h < 4; h++) {
                norm_case c = base_case(ops[o], dtypes[d], hidden[h], 33);
                c.x_stride = hidden[h] + 24; /* keeps 16-byte alignment for 2- and 4-byte types */
                c.y_stride = hidden[h] + 40;
                run_case(&c);
                c.x_stride = hidden[h] + 3; /* breaks vector alignment of every row but the first */
                c.y_stride = hidden[h] + 5;
                run_case(&c);
            }
}

static void test_in_place(void **state)
{
    static const int64_t hidden[] = {127, 4096, 65536};
    size_t o, d, h;
    (void)state;
    for (o = 0; o < 2; o++)
        for (d = 0; d < 3; d++)
            for (h = 0; h < 3; h++) {
                norm_case c = base_case(ops[o], dtypes[d], hidden[h], 17);
                c.in_place = 1;
                run_case(&c);
                c.x_stride = hidden[h] + 8;
                run_case(&c);
            }
}

/* Pointers one element past an aligned address: the narrow path, still exact. */
static void test_offset_pointers(void **state)
{
    static const int64_t hidden[] = {768, 2880, 4096, 5120, 7168, 65536};
    size_t o, d, h;
    (void)state;
    for (o = 0; o < 2; o++)
        for (d = 0; d < 3; d++)
            for (h = 0; h < 6; h++) {
                norm_case c = base_case(ops[o], dtypes[d], hidden[h], 11);
                c.x_off = 1;
                run_case(&c);
                c.x_off = 0;
                c.y_off = 1;
                run_case(&c);
                c.y_off = 0;
                c.w_off = 1;
                run_case(&c);
                c.x_off = c.y_off = 3;
                run_case(&c);
            }
}

/* Large magnitudes: squares that overflow fp16 must not overflow the fp32 sums. */
static void test_large_values(void **state)
{
    norm_case c = base_case(NORMJIT_OP_RMSNORM, NORMJIT_DTYPE_F16, 4096, 8);
    (void)state;
    c.scale = 8000.0; /* |x| up to ~40000: x^2 overflows fp16 (65504), the inputs do not */
    run_case(&c);
    c = base_case(NORMJIT_OP_LAYERNORM, NORMJIT_DTYPE_F16, 4096, 8);
    c.scale = 1.0;
    c.shift = 3000.0; /* mean far larger than the spread */
    run_case(&c);
    c = base_case(NORMJIT_OP_LAYERNORM, NORMJIT_DTYPE_F32, 100000, 3); /* stream storage */
    c.shift = 1000.0;
    run_case(&c);
}

/* A row's bits do not depend on the number of rows in the call or its position. */
/*
 * Rows of a large launch against the same rows one at a time: a 1-row call is in the decode
 * bucket, the batch in another, and each row's bytes must be equal (the buckets share a
 * reduction layout).
 */
static void check_rows_alone(int op, int dtype, int64_t H, int64_t R)
{
    const int s = dsize(dtype);
    unsigned char *hx = malloc((size_t)(R * H) * s), *big = malloc((size_t)(R * H) * s);
    unsigned char *one = malloc((size_t)H * s);
    CUdeviceptr dx = nj_gpu_alloc(&gpu, (size_t)(R * H) * s);
    CUdeviceptr dy = nj_gpu_alloc(&gpu, (size_t)(R * H) * s);
    CUdeviceptr dw = nj_gpu_alloc(&gpu, (size_t)H * s);
    const int64_t probe[] = {0, 1, R / 2, R - 1};
    normjit_norm_args a;
    size_t i, k;
    for (i = 0; i < (size_t)(R * H); i++)
        nj_host_put(hx, dtype, i, 4.0 * nj_rng_uniform(&rng) - 2.0);
    nj_gpu_upload(&gpu, dx, hx, (size_t)(R * H) * s);
    for (i = 0; i < (size_t)H; i++)
        nj_host_put(hx, dtype, i, 1.0 + 0.25 * nj_rng_normal(&rng));
    nj_gpu_upload(&gpu, dw, hx, (size_t)H * s);
    memset(&a, 0, sizeof a);
    a.struct_size = sizeof a;
    a.rows = R;
    a.hidden = H;
    a.x = NJ_PTR(dx);
    a.y = NJ_PTR(dy);
    a.weight = NJ_PTR(dw);
    a.x_dtype = a.y_dtype = a.weight_dtype = dtype;
    a.eps = 1e-6f;
    assert_int_equal(launch(op, &a, NULL), NORMJIT_OK);
    nj_gpu_sync(&gpu);
    nj_gpu_download(&gpu, big, dy, (size_t)(R * H) * s);
    for (k = 0; k < 4; k++) {
        a.rows = 1;
        a.x = NJ_PTR(dx + (CUdeviceptr)(probe[k] * H * s));
        a.y = NJ_PTR(dy);
        nj_gpu_poison(&gpu, dy, (size_t)H * s);
        assert_int_equal(launch(op, &a, NULL), NORMJIT_OK);
        nj_gpu_sync(&gpu);
        nj_gpu_download(&gpu, one, dy, (size_t)H * s);
        if (memcmp(one, big + (size_t)(probe[k] * H) * s, (size_t)H * s))
            fail_msg("%s dtype %d hidden %lld: row %lld alone differs from the same row in a "
                     "batch of %lld (seed %llu)",
                     op == NORMJIT_OP_RMSNORM ? "rmsnorm" : "layernorm", dtype, (long long)H,
                     (long long)probe[k], (long long)R, (unsigned long long)nj_test_seed());
    }
    cases_checked++;
    nj_gpu_free(&gpu, dx);
    nj_gpu_free(&gpu, dy);
    nj_gpu_free(&gpu, dw);
    free(hx);
    free(big);
    free(one);
}

static void test_batch_invariance(void **state)
{
    static const int64_t hidden[] = {64, 768, 2880, 4096, 8192, 65536};
    /* Large bucket against decode for small rows, prefill against decode for long ones. */
    static const int64_t big_rows[] = {16400, 16400, 16400, 300, 300, 80};
    size_t o, d, h;
    (void)state;
    for (o = 0; o < 2; o++)
        for (d = 0; d < 3; d++)
            for (h = nj_test_quick() ? 3 : 0; h < 6; h++)
                check_rows_alone(ops[o], dtypes[d], hidden[h], big_rows[h]);
}

/*
 * Staged storage (rows copied ahead into shared memory by a persistent grid), from a tuning
 * table that gives it to the prefill and large buckets and register storage of the same layout
 * to decode: every output against the reference (strided, in place, statistics), and each row
 * equal to the register kernel's for the row alone.
 */
static void test_staged_storage(void **state)
{
    static const char table[] =
        "device: any\nsms: 1\ncc: 90\nfields: " NJ_TUNING_FIELDS "\n"
        "rmsnorm bf16 bf16 bf16 32768 decode 8 1024 1 1 0 reg 0 1 -\n"
        "rmsnorm bf16 bf16 bf16 32768 prefill 8 1024 1 1 0 staged 8 1 -\n"
        "layernorm f16 f16 f16 4096 decode 8 128 2 1 0 reg 0 1 -\n"
        "layernorm f16 f16 f16 4096 prefill 8 128 2 1 0 staged 8 1 -\n"
        "rmsnorm f32 f32 f32 4098 decode 2 1024 1 1 0 reg 0 1 -\n"
        "rmsnorm f32 f32 f32 4098 prefill 2 1024 1 1 0 staged 8 1 -\n"
        "layernorm bf16 bf16 bf16 131072 decode 8 1024 1 8 0 reg 0 1 -\n"
        "layernorm bf16 bf16 bf16 131072 prefill 8 1024 1 8 0 staged 8 1 -\n"
        "rmsnorm bf16 bf16 bf16 262144 decode 8 1024 1 8 0 reg 0 1 -\n"
        "rmsnorm bf16 bf16 bf16 262144 prefill 8 1024 1 8 0 staged 8 1 -\n";
    static const struct {
        int op, dtype;
        int64_t hidden, rows;
        int min_arch;
    } cases[] = {
        {NORMJIT_OP_RMSNORM, NORMJIT_DTYPE_BF16, 32768, 300, 80},
        {NORMJIT_OP_LAYERNORM, NORMJIT_DTYPE_F16, 4096, 3000, 80},
        {NORMJIT_OP_RMSNORM, NORMJIT_DTYPE_F32, 4098, 777, 80},
        {NORMJIT_OP_LAYERNORM, NORMJIT_DTYPE_BF16, 131072, 100, 90},
        {NORMJIT_OP_RMSNORM, NORMJIT_DTYPE_BF16, 262144, 70, 90},
    };
    normjit_ctx *shared = ctx, *staged;
    nj_tuning *t = NULL;
    size_t i;
    int variant;
    (void)state;
    staged = nj_gpu_ctx_with_table(table, &t);
    ctx = staged;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (gpu.arch < cases[i].min_arch)
            continue;
        for (variant = 0; variant < 3; variant++) {
            norm_case c = base_case(cases[i].op, cases[i].dtype, cases[i].hidden, cases[i].rows);
            if (variant == 1) {
                c.x_stride = cases[i].hidden + 64;
                c.y_stride = cases[i].hidden + 32;
                c.plus_one = 1;
            }
            c.in_place = variant == 2;
            c.stats = variant != 1;
            run_case(&c);
        }
        check_rows_alone(cases[i].op, cases[i].dtype, cases[i].hidden, cases[i].rows);
    }
    ctx = shared;
    normjit_ctx_destroy(staged);
    nj_tuning_free(t);
}

/* Two threads, each on its own stream, launching different sizes at once. */
typedef struct thread_job {
    int op, dtype;
    int64_t hidden;
    int failures;
} thread_job;

static void *launch_worker(void *arg)
{
    thread_job *j = arg;
    const int64_t R = 64, H = j->hidden;
    const int s = dsize(j->dtype);
    unsigned char *hx = malloc((size_t)(R * H) * s), *hy = malloc((size_t)(R * H) * s);
    double *xr = malloc((size_t)H * sizeof(double)), *ref = malloc((size_t)H * sizeof(double));
    CUstream stream;
    CUdeviceptr dx, dy;
    normjit_norm_args a;
    nj_rng local;
    int it;
    size_t i;

    nj_gpu_bind(&gpu);
    nj_rng_init(&local, nj_test_seed() + (uint64_t)H);
    gpu.x->stream_create(&stream, CU_STREAM_NON_BLOCKING);
    dx = nj_gpu_alloc(&gpu, (size_t)(R * H) * s);
    dy = nj_gpu_alloc(&gpu, (size_t)(R * H) * s);
    for (i = 0; i < (size_t)(R * H); i++)
        nj_host_put(hx, j->dtype, i, nj_rng_normal(&local));
    nj_gpu_upload(&gpu, dx, hx, (size_t)(R * H) * s);
    memset(&a, 0, sizeof a);
    a.struct_size = sizeof a;
    a.rows = R;
    a.hidden = H;
    a.x = NJ_PTR(dx);
    a.y = NJ_PTR(dy);
    a.x_dtype = a.y_dtype = j->dtype;
    a.eps = 1e-5f;
    for (it = 0; it < (nj_test_quick() ? 20 : 2000); it++)
        if (launch(j->op, &a, stream) != NORMJIT_OK)
            j->failures++;
    gpu.x->stream_synchronize(stream);
    nj_gpu_download(&gpu, hy, dy, (size_t)(R * H) * s);
    for (it = 0; it < R; it++) {
        double err = 0, mag = 0;
        int64_t k;
        for (k = 0; k < H; k++)
            xr[k] = nj_host_get(hx, j->dtype, (size_t)(it * H + k));
        nj_reference_row(j->op, xr, NULL, NULL, H, 1e-5, 0, ref, NULL, NULL);
        for (k = 0; k < H; k++) {
            double got = nj_host_get(hy, j->dtype, (size_t)(it * H + k));
            err = fmax(err, fabs(got - ref[k]));
            mag = fmax(mag, fabs(ref[k]));
            if (isnan(got))
                err = INFINITY;
        }
        if (err > nj_tolerance(j->dtype) * mag)
            j->failures++;
    }
    nj_gpu_free(&gpu, dx);
    nj_gpu_free(&gpu, dy);
    gpu.x->stream_destroy(stream);
    free(hx);
    free(hy);
    free(xr);
    free(ref);
    return NULL;
}

static void test_two_threads(void **state)
{
    thread_job jobs[2] = {{NORMJIT_OP_RMSNORM, NORMJIT_DTYPE_F16, 5120, 0},
                          {NORMJIT_OP_LAYERNORM, NORMJIT_DTYPE_BF16, 3000, 0}};
    pthread_t t[2];
    int i;
    (void)state;
    for (i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, launch_worker, &jobs[i]), 0);
    for (i = 0; i < 2; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(jobs[i].failures, 0);
    }
}

/* More than 2^31 elements: rows past that point must be read and written at 64-bit offsets. */
static void test_over_2g_elements(void **state)
{
    const int64_t H = 4096, R = (1ll << 31) / H + 64, n_check = 64;
    const size_t bytes = (size_t)(R * H) * 2, chunk = 64u << 20;
    unsigned char *fill = malloc(chunk), *hx = malloc((size_t)(n_check * H) * 2),
                  *hy = malloc((size_t)(n_check * H) * 2);
    double *xr = malloc((size_t)H * sizeof(double)), *ref = malloc((size_t)H * sizeof(double));
    CUdeviceptr dx, dy;
    normjit_norm_args a;
    size_t off, i;
    int64_t r, k;
    (void)state;

    if (nj_test_quick()) {
        /* 8.6 GB of memory traffic under compute-sanitizer takes hours; the full run covers it. */
        printf("# test_over_2g_elements: not run in quick mode (NORMJIT_TEST_QUICK)\n");
        free(fill);
        free(hx);
        free(hy);
        free(xr);
        free(ref);
        return;
    }
    dx = nj_gpu_alloc(&gpu, bytes);
    dy = nj_gpu_alloc(&gpu, bytes);
    for (i = 0; i < chunk / 2; i++)
        nj_host_put(fill, NORMJIT_DTYPE_F16, i, 0.75);
    for (off = 0; off < bytes; off += chunk)
        nj_gpu_upload(&gpu, dx + off, fill, bytes - off < chunk ? bytes - off : chunk);
    for (i = 0; i < (size_t)(n_check * H); i++)
        nj_host_put(hx, NORMJIT_DTYPE_F16, i, 2.0 * nj_rng_normal(&rng));
    /* Random rows at the very end, beyond element 2^31. */
    nj_gpu_upload(&gpu, dx + (CUdeviceptr)((R - n_check) * H * 2), hx, (size_t)(n_check * H) * 2);
    nj_gpu_poison(&gpu, dy, bytes);
    memset(&a, 0, sizeof a);
    a.struct_size = sizeof a;
    a.rows = R;
    a.hidden = H;
    a.x = NJ_PTR(dx);
    a.y = NJ_PTR(dy);
    a.x_dtype = a.y_dtype = NORMJIT_DTYPE_F16;
    a.eps = 1e-6f;
    assert_int_equal(normjit_rmsnorm_fwd(ctx, &a, NULL), NORMJIT_OK);
    nj_gpu_sync(&gpu);
    nj_gpu_download(&gpu, hy, dy + (CUdeviceptr)((R - n_check) * H * 2), (size_t)(n_check * H) * 2);
    for (r = 0; r < n_check; r++) {
        double err = 0, mag = 0;
        for (k = 0; k < H; k++)
            xr[k] = nj_host_get(hx, NORMJIT_DTYPE_F16, (size_t)(r * H + k));
        nj_reference_row(NORMJIT_OP_RMSNORM, xr, NULL, NULL, H, 1e-6, 0, ref, NULL, NULL);
        for (k = 0; k < H; k++) {
            double got = nj_host_get(hy, NORMJIT_DTYPE_F16, (size_t)(r * H + k));
            err = isnan(got) ? INFINITY : fmax(err, fabs(got - ref[k]));
            mag = fmax(mag, fabs(ref[k]));
        }
        if (err > nj_tolerance(NORMJIT_DTYPE_F16) * mag)
            fail_msg("row %lld of %lld (past element 2^31): error %.3g (seed %llu)",
                     (long long)(R - n_check + r), (long long)R, err / mag,
                     (unsigned long long)nj_test_seed());
    }
    /* A constant row in the middle normalizes to 1. */
    nj_gpu_download(&gpu, hy, dy + (CUdeviceptr)((R / 2) * H * 2), (size_t)H * 2);
    for (k = 0; k < H; k++)
        assert_true(fabs(nj_host_get(hy, NORMJIT_DTYPE_F16, (size_t)k) - 1.0) < 2e-3);
    cases_checked++;
    nj_gpu_free(&gpu, dx);
    nj_gpu_free(&gpu, dy);
    free(fill);
    free(hx);
    free(hy);
    free(xr);
    free(ref);
}

/* Zero rows: success, nothing launched, NULL tensors accepted. */
static void test_zero_rows(void **state)
{
    normjit_norm_args a;
    (void)state;
    memset(&a, 0, sizeof a);
    a.struct_size = sizeof a;
    a.rows = 0;
    a.hidden = 4096;
    a.x_dtype = a.y_dtype = NORMJIT_DTYPE_F16;
    assert_int_equal(normjit_rmsnorm_fwd(ctx, &a, NULL), NORMJIT_OK);
    assert_int_equal(normjit_layernorm_fwd(ctx, &a, NULL), NORMJIT_OK);
}

/* Prepared kernels launch inside a CUDA graph capture; unprepared ones fail cleanly. */
static void test_graph_capture(void **state)
{
    const int64_t H = 1536, R = 8, missing = 1544;
    unsigned char hx[8 * 1544 * 2], hy[8 * 1536 * 2];
    double xr[1536], ref[1536];
    CUstream stream;
    CUgraph graph;
    CUgraphExec exec;
    CUdeviceptr dx, dy;
    normjit_prepare_args p;
    normjit_norm_args a;
    int64_t r, k;
    (void)state;

    memset(&p, 0, sizeof p);
    p.struct_size = sizeof p;
    p.op = NORMJIT_OP_RMSNORM;
    p.x_dtype = p.y_dtype = p.weight_dtype = NORMJIT_DTYPE_F16;
    p.hidden = &H;
    p.n_hidden = 1;
    assert_int_equal(normjit_prepare(ctx, &p, NULL), NORMJIT_OK);

    assert_int_equal(gpu.x->stream_create(&stream, CU_STREAM_NON_BLOCKING), CUDA_SUCCESS);
    dx = nj_gpu_alloc(&gpu, sizeof hx);
    dy = nj_gpu_alloc(&gpu, sizeof hx);
    for (k = 0; k < R * missing; k++)
        nj_host_put(hx, NORMJIT_DTYPE_F16, (size_t)k, nj_rng_normal(&rng));
    nj_gpu_upload(&gpu, dx, hx, sizeof hx);
    nj_gpu_poison(&gpu, dy, sizeof hx);
    memset(&a, 0, sizeof a);
    a.struct_size = sizeof a;
    a.rows = R;
    a.hidden = H;
    a.x = NJ_PTR(dx);
    a.y = NJ_PTR(dy);
    a.x_dtype = a.y_dtype = NORMJIT_DTYPE_F16;
    a.eps = 1e-5f;

    assert_int_equal(gpu.x->stream_begin_capture(stream, CU_STREAM_CAPTURE_MODE_GLOBAL),
                     CUDA_SUCCESS);
    assert_int_equal(normjit_rmsnorm_fwd(ctx, &a, stream), NORMJIT_OK);
    a.hidden = missing;
    assert_int_equal(normjit_rmsnorm_fwd(ctx, &a, stream), NORMJIT_ENOTREADY);
    assert_non_null(strstr(normjit_last_error(), "normjit_prepare"));
    assert_int_equal(gpu.x->stream_end_capture(stream, &graph), CUDA_SUCCESS);
    assert_int_equal(gpu.x->graph_instantiate(&exec, graph, 0), CUDA_SUCCESS);
    assert_int_equal(gpu.x->graph_launch(exec, stream), CUDA_SUCCESS);
    assert_int_equal(gpu.x->stream_synchronize(stream), CUDA_SUCCESS);
    nj_gpu_download(&gpu, hy, dy, sizeof hy);
    for (r = 0; r < R; r++) {
        double err = 0, mag = 0;
        for (k = 0; k < H; k++)
            xr[k] = nj_host_get(hx, NORMJIT_DTYPE_F16, (size_t)(r * H + k));
        nj_reference_row(NORMJIT_OP_RMSNORM, xr, NULL, NULL, H, 1e-5, 0, ref, NULL, NULL);
        for (k = 0; k < H; k++) {
            double got = nj_host_get(hy, NORMJIT_DTYPE_F16, (size_t)(r * H + k));
            err = isnan(got) ? INFINITY : fmax(err, fabs(got - ref[k]));
            mag = fmax(mag, fabs(ref[k]));
        }
        assert_true(err <= nj_tolerance(NORMJIT_DTYPE_F16) * mag);
    }
    gpu.x->graph_exec_destroy(exec);
    gpu.x->graph_destroy(graph);
    gpu.x->stream_destroy(stream);
    nj_gpu_free(&gpu, dx);
    nj_gpu_free(&gpu, dy);
}

/* A context must be used with the CUDA context it was created in. */
static void test_wrong_context(void **state)
{
    CUcontext popped = NULL;
    normjit_norm_args a;
    (void)state;
    memset(&a, 0, sizeof a);
    a.struct_size = sizeof a;
    a.rows = 1;
    a.hidden = 64;
    a.x = a.y = (void *)(uintptr_t)0x10000;
    a.x_dtype = a.y_dtype = NORMJIT_DTYPE_F16;
    assert_int_equal(gpu.drv->ctx_pop_current(&popped), CUDA_SUCCESS);
    assert_int_equal(normjit_rmsnorm_fwd(ctx, &a, NULL), NORMJIT_ECONTEXT);
    assert_int_equal(gpu.drv->ctx_push_current(popped), CUDA_SUCCESS);
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
    (void)state;
    printf("# %d cases checked against the double-precision reference on %s\n", cases_checked,
           gpu.name);
    normjit_ctx_destroy(ctx);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prepare_parallel), cmocka_unit_test(test_all_sizes),
        cmocka_unit_test(test_dtype_matrix),     cmocka_unit_test(test_optional_parts),
        cmocka_unit_test(test_many_rows),        cmocka_unit_test(test_strided),
        cmocka_unit_test(test_in_place),         cmocka_unit_test(test_offset_pointers),
        cmocka_unit_test(test_large_values),     cmocka_unit_test(test_batch_invariance),
        cmocka_unit_test(test_two_threads),      cmocka_unit_test(test_over_2g_elements),
        cmocka_unit_test(test_zero_rows),        cmocka_unit_test(test_graph_capture),
        cmocka_unit_test(test_wrong_context),    cmocka_unit_test(test_staged_storage),
    };
    int rc;
    if ((rc = nj_gpu_open(&gpu)) != 0)
        return rc;
    nj_test_seed_banner(nj_test_quick() ? "gpu ops (quick mode)" : "gpu ops");
    nj_rng_init(&rng, nj_test_seed());
    rc = cmocka_run_group_tests_name("gpu ops", tests, setup, teardown);
    nj_gpu_close(&gpu);
    return rc;
}
