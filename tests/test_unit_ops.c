/*
 * The op table and what it drives, through the fake driver and NVRTC: every
 * row names a template that exists and round-trips its names; request keys
 * tell specs apart; a fused call fills the parameter block the kernels read
 * (residual, per-head strides, scales, w_offset, min_scale defaults);
 * programmatic dependent launch goes through cuLaunchKernelEx; prepare with
 * an epilogue prepares exactly what the calls then launch; a fused op keeps
 * its plain op's reduction layout (its bits); prepare_stats grows by
 * struct_size.
 */
#include "args.h"
#include "ctx.h"
#include "fake_driver.h"
#include "fake_nvrtc.h"
#include "ops.h"
#include "plan.h"
#include "planner.h"
#include "templates.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#define P(addr) ((void *)(uintptr_t)(addr))
#define F16 NORMJIT_DTYPE_F16
#define F32 NORMJIT_DTYPE_F32
#define BF16 NORMJIT_DTYPE_BF16
#define E4M3 NORMJIT_DTYPE_FP8_E4M3

static nj_driver drv;
static nj_nvrtc nvrtc;

static normjit_ctx *fake_ctx(uint32_t flags)
{
    normjit_ctx_options o;
    normjit_ctx *ctx = NULL;
    memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    o.flags = NORMJIT_CTX_NO_DISK_CACHE | flags;
    o.log_level = NORMJIT_LOG_ERROR;
    fake_driver_init(&drv);
    fake_nvrtc_init(&nvrtc);
    assert_int_equal(nj_ctx_create_with(&ctx, &o, &drv, &nvrtc), NORMJIT_OK);
    return ctx;
}

/* 8 rows of 4096 bf16, 16-byte aligned fake device pointers 1 MiB apart. */
static normjit_norm_args base_args(void)
{
    normjit_norm_args a;
    memset(&a, 0, sizeof a);
    a.struct_size = sizeof a;
    a.rows = 8;
    a.hidden = 4096;
    a.x = P(0x100000);
    a.y = P(0x200000);
    a.weight = P(0x300000);
    a.x_dtype = a.y_dtype = a.weight_dtype = BF16;
    a.eps = 1e-6f;
    return a;
}

static void test_op_table_rows(void **state)
{
    const nj_templates *t;
    const nj_op_desc *table;
    int n, i, j;
    (void)state;
    assert_int_equal(nj_templates_get(&t), NORMJIT_OK);
    table = nj_op_table(&n);
    assert_int_equal(n, 5);
    for (i = 0; i < n; i++) {
        const nj_op_desc *d = &table[i];
        assert_int_equal(d->op, i + 1);
        assert_ptr_equal(nj_op_desc_of(d->op), d);
        assert_ptr_equal(nj_op_desc_named(d->name), d);
        assert_string_equal(normjit_op_name(d->op), d->name);
        assert_int_equal(normjit_op_from_name(d->name), d->op);
        assert_non_null(nj_template_find(t, d->template_file));
        /* Every op it borrows a layout from owns its own. */
        assert_int_equal(nj_op_desc_of(d->layout_op)->layout_op, d->layout_op);
        assert_true((d->required & d->tensors) == d->required);
        assert_true(d->tensors & NJ_T_X && d->tensors & NJ_T_Y);
        for (j = 0; j < i; j++) {
            assert_string_not_equal(table[j].name, d->name);
            assert_string_not_equal(table[j].python, d->python);
        }
    }
    assert_null(nj_op_desc_of(0));
    assert_null(nj_op_desc_of(6));
    assert_int_equal(normjit_op_from_name("nonsense"), 0);
    assert_int_equal(normjit_op_from_name(NULL), 0);
    assert_null(normjit_op_name(77));
}

/* Requests that differ in any field of the spec, vector or bucket get different keys. */
static void test_request_keys_distinct(void **state)
{
    static const int groups[] = {0, 64, 128};
    uint64_t *keys = malloc(200000 * sizeof *keys);
    size_t n = 0, i, j;
    int op, tx, ty, tr, q, g, c, vec, b;
    (void)state;
    assert_non_null(keys);
    for (op = 1; op <= 5; op++)
        for (tx = 1; tx <= 3; tx++)
            for (ty = 1; ty <= NJ_MAX_DTYPE; ty++)
                for (tr = 0; tr <= 3; tr++)
                    for (q = 0; q <= 3; q++)
                        for (g = 0; g < 3; g++)
                            for (c = 0; c <= 2; c++)
                                for (vec = 1; vec <= 8; vec *= 4)
                                    for (b = 0; b < NJ_BUCKETS; b += 2) {
                                        nj_request r;
                                        memset(&r, 0, sizeof r);
                                        r.s.op = op;
                                        r.s.tx = tx;
                                        r.s.ty = ty;
                                        r.s.tw = tx;
                                        r.s.tr = tr;
                                        r.s.quant = q;
                                        r.s.group = groups[g];
                                        r.s.pow2 = g == 2;
                                        r.s.cast = c;
                                        r.s.hidden = 4096 + op;
                                        r.vec = vec;
                                        r.bucket = b;
                                        keys[n++] = nj_request_key(&r);
                                    }
    /* Sort, then no two equal. */
    for (i = 1; i < n; i++) {
        uint64_t k = keys[i];
        for (j = i; j > 0 && keys[j - 1] > k; j--)
            keys[j] = keys[j - 1];
        keys[j] = k;
    }
    for (i = 1; i < n; i++)
        if (keys[i] == keys[i - 1])
            fail_msg("two requests share key 0x%llx", (unsigned long long)keys[i]);
    free(keys);
}

static void test_quant_names(void **state)
{
    static const struct {
        const char *name;
        int ok, dtype, quant, group;
    } cases[] = {
        {"none", 1, 0, 0, 0},
        {"fp8-tensor", 1, E4M3, NORMJIT_QUANT_TENSOR, 0},
        {"fp8-token", 1, E4M3, NORMJIT_QUANT_TOKEN, 0},
        {"int8-token", 1, NORMJIT_DTYPE_INT8, NORMJIT_QUANT_TOKEN, 0},
        {"fp8-group128", 1, E4M3, NORMJIT_QUANT_GROUP, 128},
        {"fp8e5m2-group64", 1, NORMJIT_DTYPE_FP8_E5M2, NORMJIT_QUANT_GROUP, 64},
        {"fp8e4m3-tensor", 1, E4M3, NORMJIT_QUANT_TENSOR, 0},
        {"fp8-group32", 0, 0, 0, 0},
        {"fp16-token", 0, 0, 0, 0},
        {"fp8-", 0, 0, 0, 0},
        {"", 0, 0, 0, 0},
        {"fp8-token ", 0, 0, 0, 0},
    };
    size_t i;
    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int32_t dtype = -1, quant = -1, group = -1;
        int status = normjit_quant_from_name(cases[i].name, &dtype, &quant, &group);
        if ((status == NORMJIT_OK) != cases[i].ok)
            fail_msg("%s: status %d", cases[i].name, status);
        if (cases[i].ok && (dtype != cases[i].dtype || quant != cases[i].quant ||
                            group != cases[i].group))
            fail_msg("%s: got %d %d %d", cases[i].name, dtype, quant, group);
        if (!cases[i].ok) {
            assert_int_equal(status, NORMJIT_EINVAL);
            assert_non_null(strstr(normjit_last_error(), "is not a quantized output"));
            assert_int_equal(dtype, -1); /* nothing written on failure */
        }
    }
    assert_int_equal(normjit_quant_from_name(NULL, NULL, NULL, NULL), NORMJIT_EINVAL);
}

/* A fused add in place with strided rows, fp8 group quantization with column-major scales. */
static void test_fused_call_fills_the_parameter_block(void **state)
{
    normjit_ctx *ctx = fake_ctx(0);
    normjit_norm_args a = base_args();
    const nj_params *p = &fake_drv.last_params;
    (void)state;
    a.x_row_stride = 5000;
    a.residual = a.residual_out = P(0x400000);
    a.residual_row_stride = a.residual_out_row_stride = 4096 + 64;
    a.residual_dtype = BF16;
    a.y_dtype = E4M3;
    a.quant = NORMJIT_QUANT_GROUP;
    a.group_size = 128;
    a.scales = P(0x600000);
    a.flags = NORMJIT_NORM_SCALES_COLUMN_MAJOR;
    a.cast = NORMJIT_CAST_GEMMA;
    assert_int_equal(normjit_add_rmsnorm_fwd(ctx, &a, NULL), NORMJIT_OK);
    assert_int_equal(fake_drv.launches, 1);
    assert_int_equal(fake_drv.pdl_launches, 0);
    assert_ptr_equal(p->x, a.x);
    assert_ptr_equal(p->y, a.y);
    assert_ptr_equal(p->res, a.residual);
    assert_ptr_equal(p->res_out, a.residual);
    assert_ptr_equal(p->scales, a.scales);
    assert_null(p->scale);
    assert_int_equal(p->rows, 8);
    assert_int_equal(p->x_stride, 5000);
    assert_int_equal(p->y_stride, 4096);
    assert_int_equal(p->res_stride, 4096 + 64);
    assert_int_equal(p->heads, 1);
    /* Column-major: scales[group * rows + row]. */
    assert_int_equal(p->scales_row_stride, 1);
    assert_int_equal(p->scales_group_stride, 8);
    assert_true(p->w_offset == 1.0f); /* GEMMA scales by 1 + w */
    assert_true(p->min_scale == 1e-10f / 448.0f);
    assert_true(p->eps == 1e-6f);
    normjit_ctx_destroy(ctx);
}

static void test_qk_call_addresses_heads(void **state)
{
    normjit_ctx *ctx = fake_ctx(0);
    normjit_norm_args a = base_args();
    const nj_params *p = &fake_drv.last_params;
    (void)state;
    /* The q slice of a fused qkv projection: 32 q heads and 2 x 8 kv heads of 128. */
    a.hidden = 128;
    a.heads = 32;
    a.x_head_stride = 128;
    a.x_row_stride = (32 + 16) * 128;
    a.y = P(0x100000); /* in place: y is x */
    a.y_head_stride = 128;
    a.y_row_stride = a.x_row_stride;
    a.rows = 100;
    assert_int_equal(normjit_qk_rmsnorm_fwd(ctx, &a, NULL), NORMJIT_OK);
    assert_int_equal(p->rows, 3200); /* every head is a row of the kernel */
    assert_int_equal(p->heads, 32);
    assert_int_equal(p->x_head_stride, 128);
    assert_int_equal(p->x_stride, 48 * 128);
    /* Heads overlapping one another are refused, nothing launched. */
    a.x_head_stride = a.y_head_stride = 100;
    assert_int_equal(normjit_qk_rmsnorm_fwd(ctx, &a, NULL), NORMJIT_EINVAL);
    assert_non_null(strstr(normjit_last_error(), "x_head_stride (100) is smaller than hidden"));
    assert_int_equal(fake_drv.launches, 1);
    normjit_ctx_destroy(ctx);
}

static void test_pdl_uses_launch_ex(void **state)
{
    normjit_ctx *ctx = fake_ctx(0);
    normjit_norm_args a = base_args();
    (void)state;
    assert_int_equal(normjit_rmsnorm_fwd(ctx, &a, NULL), NORMJIT_OK);
    assert_int_equal(fake_drv.pdl_launches, 0);
    a.flags = NORMJIT_NORM_PDL;
    assert_int_equal(normjit_rmsnorm_fwd(ctx, &a, NULL), NORMJIT_OK);
    assert_int_equal(fake_drv.pdl_launches, 1);
    assert_int_equal(fake_drv.launches, 2);
    assert_int_equal(fake_nv.compiles, 1); /* the same kernel either way */
    normjit_ctx_destroy(ctx);

    ctx = fake_ctx(NORMJIT_CTX_PDL); /* every launch of this context */
    a.flags = 0;
    assert_int_equal(normjit_rmsnorm_fwd(ctx, &a, NULL), NORMJIT_OK);
    assert_int_equal(fake_drv.pdl_launches, 1);
    normjit_ctx_destroy(ctx);

    /* Before sm_90 the flag is accepted and ignored. */
    ctx = fake_ctx(0);
    normjit_ctx_destroy(ctx);
    fake_driver_init(&drv);
    fake_drv.cc_major = 8;
    {
        normjit_ctx_options o;
        memset(&o, 0, sizeof o);
        o.struct_size = sizeof o;
        o.flags = NORMJIT_CTX_NO_DISK_CACHE | NORMJIT_CTX_PDL;
        fake_nvrtc_init(&nvrtc);
        assert_int_equal(nj_ctx_create_with(&ctx, &o, &drv, &nvrtc), NORMJIT_OK);
    }
    assert_int_equal(normjit_rmsnorm_fwd(ctx, &a, NULL), NORMJIT_OK);
    assert_int_equal(fake_drv.pdl_launches, 0);
    assert_int_equal(fake_drv.launches, 1);
    normjit_ctx_destroy(ctx);
}

static normjit_prepare_args prepare_args(int op, const int64_t *hidden, size_t n)
{
    normjit_prepare_args p;
    memset(&p, 0, sizeof p);
    p.struct_size = sizeof p;
    p.op = op;
    p.x_dtype = p.y_dtype = p.weight_dtype = BF16;
    p.hidden = hidden;
    p.n_hidden = n;
    return p;
}

/* What prepare loads for an epilogue is what the calls launch: captured calls never compile. */
static void test_prepare_epilogue_then_capture(void **state)
{
    static const int64_t hidden[] = {4096};
    normjit_ctx *ctx = fake_ctx(0);
    normjit_prepare_args p = prepare_args(NORMJIT_OP_ADD_RMSNORM, hidden, 1);
    normjit_prepare_stats st = {sizeof st, 0, 0, 0, 0};
    normjit_norm_args a = base_args();
    int compiled;
    (void)state;
    p.y_dtype = E4M3;
    p.quant = NORMJIT_QUANT_TOKEN;
    p.cast = NORMJIT_CAST_LLAMA;
    assert_int_equal(normjit_prepare(ctx, &p, &st), NORMJIT_OK);
    assert_true(st.compiled >= 1);
    assert_int_equal(st.not_cached, st.compiled); /* no disk cache in this context */
    compiled = fake_nv.compiles;

    fake_drv.capturing = 1;
    a.residual = a.residual_out = P(0x400000);
    a.y_dtype = E4M3;
    a.quant = NORMJIT_QUANT_TOKEN;
    a.scales = P(0x600000);
    a.cast = NORMJIT_CAST_LLAMA;
    a.rows = 3;
    assert_int_equal(normjit_add_rmsnorm_fwd(ctx, &a, NULL), NORMJIT_OK);
    a.rows = 100; /* the prefill bucket: another prepared launch */
    assert_int_equal(normjit_add_rmsnorm_fwd(ctx, &a, NULL), NORMJIT_OK);
    assert_int_equal(fake_nv.compiles, compiled);
    /* Another epilogue was not prepared: refused during capture. */
    a.cast = NORMJIT_CAST_NONE;
    assert_int_equal(normjit_add_rmsnorm_fwd(ctx, &a, NULL), NORMJIT_ENOTREADY);
    normjit_ctx_destroy(ctx);
}

/* A caller built against a header whose prepare_stats ended before not_cached. */
static void test_prepare_stats_struct_size(void **state)
{
    static const int64_t hidden[] = {4096, 5120};
    normjit_ctx *ctx = fake_ctx(0);
    normjit_prepare_args p = prepare_args(NORMJIT_OP_RMSNORM, hidden, 2);
    uint32_t old[5];
    (void)state;
    old[0] = (uint32_t)offsetof(normjit_prepare_stats, not_cached);
    old[1] = old[2] = old[3] = 0;
    old[4] = 0xdeadbeef; /* past the caller's struct: must stay */
    assert_int_equal(normjit_prepare(ctx, &p, (normjit_prepare_stats *)old), NORMJIT_OK);
    assert_int_equal(old[0], offsetof(normjit_prepare_stats, not_cached));
    assert_int_equal(old[1], 4); /* compiled: each size's decode kernel and the others' */
    assert_int_equal(old[4], 0xdeadbeef);
    /* struct_size too small to be a struct at all: refused before any work. */
    old[0] = 0;
    assert_int_equal(normjit_prepare(ctx, &p, (normjit_prepare_stats *)old),
                     NORMJIT_EINVAL);
    assert_non_null(strstr(normjit_last_error(), "struct_size"));
    /* NULL stats are fine. */
    assert_int_equal(normjit_prepare(ctx, &p, NULL), NORMJIT_OK);
    normjit_ctx_destroy(ctx);
}

/* The fused op, every epilogue and every weight dtype keep the plain op's reduction layout. */
static void test_fused_ops_share_the_plain_layout(void **state)
{
    static const char table[] =
        "device: Fake\nsms: 132\ncc: 90\nfields: " NJ_TUNING_FIELDS "\n"
        "rmsnorm bf16 bf16 bf16 4096 decode 8 64 2 1 0 reg 0 2.0 -\n"
        "rmsnorm bf16 bf16 bf16 4096 prefill 8 64 4 1 0 reg 0 9.0 -\n"
        "add_rmsnorm bf16 bf16 bf16 4096 prefill 8 64 8 1 0 reg 2 9.5 r=bf16\n"
        "add_rmsnorm bf16 bf16 bf16 4096 large 8 256 1 1 0 reg 0 99 r=bf16\n";
    nj_tuning *t = NULL;
    nj_planner planner;
    nj_request plain, fused;
    nj_plan a, b;
    int bucket, variant;
    (void)state;
    assert_int_equal(nj_tuning_parse(table, strlen(table), &t), NORMJIT_EFORMAT);
    /* ^ the fused op's large record changes its layout across buckets: the table is refused */
    {
        const size_t cut = strstr(table, "add_rmsnorm bf16 bf16 bf16 4096 large") - table;
        assert_int_equal(nj_tuning_parse(table, cut, &t), NORMJIT_OK);
    }
    planner.arch = 90;
    planner.user = t;
    planner.shipped = NULL;
    for (bucket = 0; bucket < NJ_BUCKETS; bucket++)
        for (variant = 0; variant < 5; variant++) {
            memset(&plain, 0, sizeof plain);
            plain.s.op = NORMJIT_OP_RMSNORM;
            plain.s.tx = plain.s.ty = plain.s.tw = BF16;
            plain.s.hidden = 4096;
            plain.vec = 8;
            plain.bucket = bucket;
            fused = plain;
            fused.s.op = NORMJIT_OP_ADD_RMSNORM;
            fused.s.tr = BF16;
            if (variant == 1)
                fused.s.tw = F32;
            if (variant == 2) {
                fused.s.ty = E4M3;
                fused.s.quant = NORMJIT_QUANT_TOKEN;
            }
            if (variant == 3)
                fused.s.cast = NORMJIT_CAST_LLAMA;
            if (variant == 4) {
                fused.s.tx = F32; /* x of another dtype: the sum is still bf16 */
                fused.s.ty = F32;
            }
            nj_planner_plan(&planner, &plain, &a);
            nj_planner_plan(&planner, &fused, &b);
            if (!nj_knobs_same_layout(&a.v.k, &b.v.k))
                fail_msg("bucket %d variant %d: the fused op reduces with tpr %d, the plain op "
                         "with %d",
                         bucket, variant, b.v.k.tpr, a.v.k.tpr);
            assert_int_equal(a.v.k.tpr, 64);
            assert_true(nj_spec_equal(&b.v.s, &fused.s));
        }
    /* Its own record of the same layout chooses rows per CTA and grid. */
    memset(&fused, 0, sizeof fused);
    fused.s.op = NORMJIT_OP_ADD_RMSNORM;
    fused.s.tx = fused.s.ty = fused.s.tw = fused.s.tr = BF16;
    fused.s.hidden = 4096;
    fused.vec = 8;
    fused.bucket = NJ_BUCKET_PREFILL;
    nj_planner_plan(&planner, &fused, &b);
    assert_int_equal(b.v.k.rpc, 8);
    assert_int_equal(b.ctas_per_sm, 2);
    nj_tuning_free(t);
}

/* A quantized RMSNorm without a record of its own asks for the occupancy that fits (token
   scales; group scales where a thread holds at most two vectors); its own record decides. */
static void test_quant_asks_for_occupancy(void **state)
{
    static const char table[] =
        "device: Fake\nsms: 132\ncc: 90\nfields: " NJ_TUNING_FIELDS "\n"
        "rmsnorm bf16 bf16 bf16 8192 prefill 8 512 1 1 0 reg 0 30 -\n"
        "rmsnorm bf16 bf16 bf16 12288 prefill 8 512 1 1 0 reg 0 43 -\n"
        "rmsnorm bf16 fp8e4m3 bf16 8192 prefill 8 512 1 1 0 reg 0 40 q=group128\n"
        "layernorm bf16 bf16 bf16 8192 prefill 8 512 1 1 0 reg 0 30 -\n";
    static const struct {
        int op;
        int64_t hidden;
        int quant, group, occ;
    } cases[] = {
        {NORMJIT_OP_RMSNORM, 8192, NORMJIT_QUANT_NONE, 0, 0},  /* the plain op keeps its record */
        {NORMJIT_OP_RMSNORM, 8192, NORMJIT_QUANT_TENSOR, 0, 3}, /* 512 x 40 registers: 3 CTAs */
        {NORMJIT_OP_RMSNORM, 8192, NORMJIT_QUANT_TOKEN, 0, 3},
        {NORMJIT_OP_ADD_RMSNORM, 8192, NORMJIT_QUANT_TOKEN, 0, 3},
        {NORMJIT_OP_RMSNORM, 8192, NORMJIT_QUANT_GROUP, 128, 0},  /* its own record */
        {NORMJIT_OP_RMSNORM, 8192, NORMJIT_QUANT_GROUP, 64, 3},   /* two vectors a thread */
        {NORMJIT_OP_RMSNORM, 12288, NORMJIT_QUANT_TOKEN, 0, 3},
        {NORMJIT_OP_RMSNORM, 12288, NORMJIT_QUANT_GROUP, 128, 0}, /* three vectors a thread */
        {NORMJIT_OP_LAYERNORM, 8192, NORMJIT_QUANT_TOKEN, 0, 0},  /* LayerNorm would spill */
    };
    nj_tuning *t = NULL;
    nj_planner planner;
    size_t i;
    (void)state;
    assert_int_equal(nj_tuning_parse(table, strlen(table), &t), NORMJIT_OK);
    planner.arch = 90;
    planner.user = t;
    planner.shipped = NULL;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        nj_request r;
        nj_plan p;
        memset(&r, 0, sizeof r);
        r.s.op = cases[i].op;
        r.s.tx = r.s.ty = r.s.tw = BF16;
        if (r.s.op == NORMJIT_OP_ADD_RMSNORM)
            r.s.tr = BF16;
        if (cases[i].quant) {
            r.s.ty = E4M3;
            r.s.quant = cases[i].quant;
            r.s.group = cases[i].group;
        }
        r.s.hidden = cases[i].hidden;
        r.vec = 8;
        r.bucket = NJ_BUCKET_PREFILL;
        nj_planner_plan(&planner, &r, &p);
        assert_int_equal(p.v.k.tpr, 512);
        if (p.v.k.occ != cases[i].occ)
            fail_msg("case %zu: occ %d, want %d", i, p.v.k.occ, cases[i].occ);
    }
    nj_tuning_free(t);
}

/* Group quantization fits the layout so that every group lies within lanes of one thread row. */
static void test_group_quant_plans_are_legal(void **state)
{
    static const int64_t sizes[] = {64, 128, 512, 1024, 2880, 4096, 5120, 7168, 8192, 14336,
                                    65536, 131072, 262144};
    size_t i;
    int vec, group, arch;
    (void)state;
    for (i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        for (group = 64; group <= 128; group *= 2)
            for (vec = 1; vec <= 8; vec *= 2)
                for (arch = 80; arch <= 90; arch += 10) {
                    nj_request r;
                    nj_plan p, q;
                    if (sizes[i] % group)
                        continue;
                    memset(&r, 0, sizeof r);
                    r.s.op = NORMJIT_OP_RMSNORM;
                    r.s.tx = r.s.tw = BF16;
                    r.s.ty = E4M3;
                    r.s.quant = NORMJIT_QUANT_GROUP;
                    r.s.group = group;
                    r.s.hidden = sizes[i];
                    r.vec = vec;
                    r.bucket = NJ_BUCKET_DECODE;
                    nj_plan_heuristic(&r, arch, &p);
                    r.bucket = NJ_BUCKET_LARGE;
                    nj_plan_heuristic(&r, arch, &q);
                    if (nj_variant_check(&p.v, arch) != NORMJIT_OK)
                        fail_msg("hidden %lld group %d vec %d sm_%d: %s", (long long)sizes[i],
                                 group, vec, arch, normjit_last_error());
                    assert_true(nj_knobs_same_layout(&p.v.k, &q.v.k));
                }
}

/* Staged storage: the kernel gets its two buffers of dynamic shared memory (the attribute set
   for any size: the kernel's static shared memory counts against the same 48 KB), and a
   persistent grid no larger than the GPU holds at once; the decode bucket's register layout
   counts as the same layout. */
static void test_staged_launch(void **state)
{
    static const char table[] =
        "device: Fake\nsms: 132\ncc: 90\nfields: " NJ_TUNING_FIELDS "\n"
        "rmsnorm bf16 bf16 bf16 32768 decode 8 1024 1 1 0 reg 0 4.0 -\n"
        "rmsnorm bf16 bf16 bf16 32768 prefill 8 1024 1 1 0 staged 8 90 -\n"
        "rmsnorm f32 f32 f32 4098 decode 2 1024 1 1 0 reg 0 4.0 -\n"
        "rmsnorm f32 f32 f32 4098 prefill 2 1024 1 1 0 staged 8 9.0 -\n";
    const unsigned stage = 2 * 4 * 1024 * 16; /* 4 vectors of 16 bytes a thread, twice */
    normjit_ctx *ctx = fake_ctx(0);
    normjit_norm_args a = base_args();
    nj_tuning *t = NULL;
    (void)state;
    assert_int_equal(nj_tuning_parse(table, strlen(table), &t), NORMJIT_OK);
    ctx->planner.user = t;
    a.hidden = 32768;
    a.rows = 1000;
    a.x = P(0x10000000);
    a.y = P(0x20000000);
    fake_drv.resident_ctas = 1;
    assert_int_equal(normjit_rmsnorm_fwd(ctx, &a, NULL), NORMJIT_OK);
    assert_int_equal(fake_drv.smem_attribute, (int)stage);
    assert_int_equal(fake_drv.last_smem, stage);
    assert_int_equal(fake_drv.last_block_x, 1024);
    assert_int_equal(fake_drv.last_grid_x, 132); /* not 8 x 132: one CTA fits an SM */
    assert_non_null(strstr(fake_nv.last_name, "_staged"));
    /* Exactly 48 KB of stage (3 vectors of 8 bytes a thread, twice): the attribute is set too,
       or the launch fails beside the kernel's static shared memory. */
    {
        normjit_norm_args f = a;
        f.hidden = 4098;
        f.x_dtype = f.y_dtype = f.weight_dtype = NORMJIT_DTYPE_F32;
        fake_drv.smem_attribute = 0;
        assert_int_equal(normjit_rmsnorm_fwd(ctx, &f, NULL), NORMJIT_OK);
        assert_int_equal(fake_drv.smem_attribute, 48 * 1024);
        assert_int_equal(fake_drv.last_smem, 48 * 1024);
    }
    a.rows = 8;
    assert_int_equal(normjit_rmsnorm_fwd(ctx, &a, NULL), NORMJIT_OK);
    assert_int_equal(fake_drv.last_smem, 0);
    assert_int_equal(fake_drv.last_grid_x, 8);
    /* Through cuLaunchKernelEx too. */
    a.rows = 1000;
    a.flags = NORMJIT_NORM_PDL;
    assert_int_equal(normjit_rmsnorm_fwd(ctx, &a, NULL), NORMJIT_OK);
    assert_int_equal(fake_drv.last_smem, stage);
    assert_int_equal(fake_drv.pdl_launches, 1);
    /* The fused add inherits the plan, but its residual would double the stage past sm_90's
       227 KB: the same layout in registers. */
    a.flags = 0;
    a.residual = a.residual_out = P(0x30000000);
    a.residual_dtype = BF16;
    assert_int_equal(normjit_add_rmsnorm_fwd(ctx, &a, NULL), NORMJIT_OK);
    assert_non_null(strstr(fake_nv.last_name, "_t1024_r1_c1_o0_reg"));
    assert_int_equal(fake_drv.last_smem, 0);
    assert_int_equal(fake_drv.last_grid_x, 1000); /* under the record's 8 x 132, no resident cap */
    normjit_ctx_destroy(ctx);

    /* The driver refuses the shared memory: the call fails saying so, nothing is launched and
       the module is unloaded. */
    ctx = fake_ctx(0);
    ctx->planner.user = t;
    a.residual = a.residual_out = NULL;
    a.residual_dtype = 0;
    fake_drv.set_attribute_result = CUDA_ERROR_INVALID_VALUE;
    assert_int_equal(normjit_rmsnorm_fwd(ctx, &a, NULL), NORMJIT_EDRIVER);
    assert_non_null(strstr(normjit_last_error(), "cuFuncSetAttribute"));
    assert_int_equal(fake_drv.launches, 0);
    assert_int_equal(fake_drv.module_loads, fake_drv.module_unloads);
    /* The occupancy calculator fails: the record's grid, uncapped. */
    fake_drv.set_attribute_result = CUDA_SUCCESS;
    fake_drv.occupancy_result = CUDA_ERROR_INVALID_VALUE;
    a.rows = 2000;
    assert_int_equal(normjit_rmsnorm_fwd(ctx, &a, NULL), NORMJIT_OK);
    assert_int_equal(fake_drv.last_grid_x, 8 * 132);
    normjit_ctx_destroy(ctx);
    nj_tuning_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_op_table_rows),
        cmocka_unit_test(test_request_keys_distinct),
        cmocka_unit_test(test_quant_names),
        cmocka_unit_test(test_fused_call_fills_the_parameter_block),
        cmocka_unit_test(test_qk_call_addresses_heads),
        cmocka_unit_test(test_pdl_uses_launch_ex),
        cmocka_unit_test(test_prepare_epilogue_then_capture),
        cmocka_unit_test(test_prepare_stats_struct_size),
        cmocka_unit_test(test_fused_ops_share_the_plain_layout),
        cmocka_unit_test(test_group_quant_plans_are_legal),
        cmocka_unit_test(test_quant_asks_for_occupancy),
        cmocka_unit_test(test_staged_launch),
    };
    setenv("NORMJIT_TUNING_DIR", "/nonexistent/normjit-test", 1);
    unsetenv("NORMJIT_TUNING_FILE");
    unsetenv("NORMJIT_LOG");
    return cmocka_run_group_tests(tests, NULL, NULL);
}
