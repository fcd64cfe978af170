/*
 * Validation of the 0.2 arguments (fused residual add, quantized outputs,
 * cast modes, QK-norm) through the fake CUDA driver and NVRTC, so it runs
 * without a GPU. Each rejected call must return its status, name the
 * argument in normjit_last_error() and reach neither NVRTC nor the driver;
 * the valid calls beside them must pass and launch.
 */
#include "ctx.h"
#include "fake_driver.h"
#include "fake_nvrtc.h"

#include <ftw.h>
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
#define TENSOR NORMJIT_QUANT_TENSOR
#define TOKEN NORMJIT_QUANT_TOKEN
#define GROUP NORMJIT_QUANT_GROUP
#define EINVAL_ NORMJIT_EINVAL
#define EUNSUP_ NORMJIT_EUNSUPPORTED

/*
 * Fake device addresses, 16-byte aligned and far enough apart for every
 * tensor of the base calls (8 rows of 4096 elements: 64 KiB in f16).
 */
enum {
    X_ADDR = 0x100000,
    Y_ADDR = 0x200000,
    W_ADDR = 0x300000,
    RSTD_ADDR = 0x400000,
    B_ADDR = 0x500000,
    MEAN_ADDR = 0x600000,
    RES_ADDR = 0x700000,
    RES_OUT_ADDR = 0x800000,
    SCALE_ADDR = 0x900000,
    SCALES_ADDR = 0x980000,
};

static char tmp_dir[] = "/tmp/normjit-test-api-fused-XXXXXX";
static nj_driver drv;
static nj_nvrtc nvrtc;

static normjit_ctx *fake_ctx(void)
{
    normjit_ctx_options o;
    normjit_ctx *ctx = NULL;
    memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    o.flags = NORMJIT_CTX_NO_DISK_CACHE;
    o.log_level = NORMJIT_LOG_ERROR;
    fake_driver_init(&drv);
    fake_nvrtc_init(&nvrtc);
    assert_int_equal(nj_ctx_create_with(&ctx, &o, &drv, &nvrtc), NORMJIT_OK);
    return ctx;
}

/* Plain RMSNorm, 8 rows of 4096 f16: the calls below change one thing in it. */
static normjit_norm_args base_plain(void)
{
    normjit_norm_args a;
    memset(&a, 0, sizeof a);
    a.struct_size = sizeof a;
    a.rows = 8;
    a.hidden = 4096;
    a.x = P(X_ADDR);
    a.y = P(Y_ADDR);
    a.weight = P(W_ADDR);
    a.rstd = P(RSTD_ADDR);
    a.x_dtype = a.y_dtype = a.weight_dtype = F16;
    a.eps = 1e-6f;
    return a;
}

/* Fused add with a separate residual output. */
static normjit_norm_args base_add(void)
{
    normjit_norm_args a = base_plain();
    a.residual = P(RES_ADDR);
    a.residual_out = P(RES_OUT_ADDR);
    a.residual_dtype = F16;
    return a;
}

/* Per-token fp8 e4m3 output. */
static normjit_norm_args base_token(void)
{
    normjit_norm_args a = base_plain();
    a.y_dtype = E4M3;
    a.quant = TOKEN;
    a.scales = P(SCALES_ADDR);
    return a;
}

/* Static (tensor) int8 output. */
static normjit_norm_args base_tensor(void)
{
    normjit_norm_args a = base_plain();
    a.y_dtype = INT8;
    a.quant = TENSOR;
    a.scale = P(SCALE_ADDR);
    return a;
}

/* Per-group (128) fp8 output, row-major scales. */
static normjit_norm_args base_group(void)
{
    normjit_norm_args a = base_token();
    a.quant = GROUP;
    a.group_size = 128;
    return a;
}

/* QK-norm of the q slice of a fused qkv (8 q heads, 2 + 2 kv heads of 128) into a dense y. */
static normjit_norm_args base_qk(void)
{
    normjit_norm_args a = base_plain();
    a.hidden = 128;
    a.heads = 8;
    a.x_row_stride = 12 * 128;
    a.rstd = NULL;
    return a;
}

typedef struct call {
    int op;
    normjit_norm_args a;
} call;

typedef struct bad_case {
    const char *name;
    int op;
    normjit_norm_args (*base)(void);
    void (*change)(call *c);
    int status;
    const char *message; /* expected in normjit_last_error() */
} bad_case;

/* X(name, op, base, change (a: the args, c: the call), status, message) */
#define BAD_CASES(X) \
    X(op_unknown, RMS, base_plain, c->op = 9, EINVAL_, "op 9 is not a normjit_op") \
    X(unknown_flags, RMS, base_plain, a->flags = 0x10, EINVAL_, "unknown flags 0x10") \
    X(reserved0, ARMS, base_add, a->reserved0 = 1, EINVAL_, "reserved0 (1) must be 0") \
    /* dtype pairs */ \
    X(fp8_y_without_quant, RMS, base_plain, a->y_dtype = E4M3, EINVAL_, "y_dtype fp8e4m3 needs a quant mode") \
    X(int8_y_without_quant, ARMS, base_add, a->y_dtype = INT8, EINVAL_, "y_dtype int8 needs a quant mode") \
    X(quant_with_f16_y, RMS, base_token, a->y_dtype = F16, EINVAL_, "needs y_dtype fp8e4m3, fp8e5m2 or int8") \
    X(quant_with_bf16_y, ALN, base_add, (a->quant = TENSOR, a->scale = P(SCALE_ADDR), a->y_dtype = BF16), EINVAL_, "needs y_dtype fp8e4m3, fp8e5m2 or int8") \
    X(x_dtype_fp8, RMS, base_plain, a->x_dtype = E4M3, EINVAL_, "x_dtype fp8e4m3 is not an input dtype") \
    X(residual_dtype_unknown, ARMS, base_add, a->residual_dtype = 9, EINVAL_, "residual_dtype 9 is not a normjit dtype") \
    X(residual_dtype_int8, ALN, base_add, a->residual_dtype = INT8, EINVAL_, "residual_dtype int8 is not an input dtype") \
    X(weight_not_residual_dtype, ARMS, base_add, a->residual_dtype = BF16, EUNSUP_, "weight_dtype f16 with residual_dtype bf16") \
    X(weight_x_dtype_f32_residual, ARMS, base_add, (a->x_dtype = a->y_dtype = a->weight_dtype = BF16, a->residual_dtype = F32), EUNSUP_, "weight_dtype bf16 with residual_dtype f32") \
    X(weight_dtype_fp8, RMS, base_plain, a->weight_dtype = E4M3, EUNSUP_, "weight_dtype fp8e4m3 with x_dtype f16") \
    /* what belongs to other ops */ \
    X(add_residual_null, ARMS, base_add, a->residual = NULL, EINVAL_, "add_rmsnorm: residual is NULL") \
    X(add_residual_out_null, ALN, base_add, a->residual_out = NULL, EINVAL_, "add_layernorm: residual_out is NULL") \
    X(residual_to_rmsnorm, RMS, base_plain, a->residual = P(RES_ADDR), EINVAL_, "rmsnorm: residual is only for add_rmsnorm and add_layernorm") \
    X(residual_out_to_layernorm, LN, base_plain, a->residual_out = P(RES_OUT_ADDR), EINVAL_, "layernorm: residual_out is only for add_rmsnorm and add_layernorm") \
    X(residual_to_qk, QK, base_qk, a->residual = P(RES_ADDR), EINVAL_, "qk_rmsnorm: residual is only for add_rmsnorm and add_layernorm") \
    X(residual_dtype_to_rmsnorm, RMS, base_plain, a->residual_dtype = F32, EINVAL_, "rmsnorm: residual_dtype is only for add_rmsnorm and add_layernorm") \
    X(bias_to_add_rmsnorm, ARMS, base_add, a->bias = P(B_ADDR), EINVAL_, "add_rmsnorm: bias is a LayerNorm argument") \
    X(mean_to_add_rmsnorm, ARMS, base_add, a->mean = P(MEAN_ADDR), EINVAL_, "add_rmsnorm: mean is a LayerNorm output") \
    X(bias_to_qk, QK, base_qk, a->bias = P(B_ADDR), EINVAL_, "qk_rmsnorm: bias is a LayerNorm argument") \
    X(quant_with_qk, QK, base_qk, (a->y_dtype = E4M3, a->quant = TOKEN, a->scales = P(SCALES_ADDR)), EUNSUP_, "qk_rmsnorm: quant must be NORMJIT_QUANT_NONE") \
    X(heads_to_rmsnorm, RMS, base_plain, a->heads = 4, EINVAL_, "heads is only for qk_rmsnorm") \
    X(head_stride_to_layernorm, LN, base_plain, a->x_head_stride = 128, EINVAL_, "x_head_stride is only for qk_rmsnorm") \
    /* residual strides and alignment */ \
    X(residual_stride_small, ARMS, base_add, a->residual_row_stride = 100, EINVAL_, "residual_row_stride (100) is smaller than hidden (4096)") \
    X(residual_out_stride_small, ARMS, base_add, a->residual_out_row_stride = 100, EINVAL_, "residual_out_row_stride (100) is smaller than hidden (4096)") \
    X(residual_misaligned, ARMS, base_add, a->residual = P(RES_ADDR + 1), EINVAL_, "residual (0x700001) is not aligned") \
    X(residual_out_misaligned, ALN, base_add, (a->residual_dtype = a->weight_dtype = F32, a->residual_out = P(RES_OUT_ADDR + 2)), EINVAL_, "residual_out (0x800002) is not aligned to its 4-byte") \
    /* overlaps */ \
    X(x_residual_overlap, ARMS, base_add, a->residual = P(X_ADDR + 0x1000), EINVAL_, "x and residual overlap") \
    X(x_is_residual_out, ARMS, base_add, a->residual_out = P(X_ADDR), EINVAL_, "x and residual_out overlap") \
    X(y_is_residual, ARMS, base_add, a->y = P(RES_ADDR), EINVAL_, "y and residual overlap") \
    X(y_residual_out_overlap, ALN, base_add, a->residual_out = P(Y_ADDR + 0x100), EINVAL_, "y and residual_out overlap") \
    X(y_is_residual_out, ARMS, base_add, a->residual_out = a->y, EINVAL_, "y and residual_out overlap") \
    X(residual_out_partial, ARMS, base_add, a->residual_out = P(RES_ADDR + 0x800), EINVAL_, "residual and residual_out overlap without being the same tensor") \
    X(residual_in_place_strides, ARMS, base_add, (a->residual_out = P(RES_ADDR), a->residual_out_row_stride = 8192), EINVAL_, "in place (residual_out == residual) needs the same row stride") \
    X(in_place_quant_sizes, RMS, base_token, a->y = P(X_ADDR), EINVAL_, "in place (y == x) needs the same") \
    X(rstd_overlaps_residual_out, ARMS, base_add, a->rstd = P(RES_OUT_ADDR + 64), EINVAL_, "rstd or mean overlaps") \
    X(scales_overlap_y, RMS, base_token, a->scales = P(Y_ADDR + 64), EINVAL_, "scales overlaps") \
    X(scales_overlap_x, ARMS, base_add, (a->y_dtype = E4M3, a->quant = TOKEN, a->scales = P(X_ADDR + 64)), EINVAL_, "scales overlaps") \
    X(group_scales_overlap_y, RMS, base_group, a->scales = P(Y_ADDR + 0x4000), EINVAL_, "scales overlaps") \
    X(scale_overlaps_y, RMS, base_tensor, a->scale = P(Y_ADDR + 4), EINVAL_, "scale overlaps") \
    X(qk_y_overlaps_x, QK, base_qk, a->y = P(X_ADDR + 256), EINVAL_, "x and y overlap without being the same tensor") \
    /* quantization fields */ \
    X(quant_unknown, RMS, base_token, a->quant = 4, EINVAL_, "quant (4) is not a normjit_quant") \
    X(quant_negative, RMS, base_token, a->quant = -1, EINVAL_, "quant (-1) is not a normjit_quant") \
    X(scale_misaligned, RMS, base_tensor, a->scale = P(SCALE_ADDR + 2), EINVAL_, "scale (0x900002) is not aligned") \
    X(scales_misaligned, RMS, base_token, a->scales = P(SCALES_ADDR + 2), EINVAL_, "scales (0x980002) is not aligned") \
    X(scale_null_tensor, RMS, base_tensor, a->scale = NULL, EINVAL_, "scale is NULL") \
    X(scales_null_token, ARMS, base_add, (a->y_dtype = E5M2, a->quant = TOKEN), EINVAL_, "scales is NULL") \
    X(scales_null_group, LN, base_group, a->scales = NULL, EINVAL_, "scales is NULL") \
    X(scales_with_tensor, RMS, base_tensor, a->scales = P(SCALES_ADDR), EINVAL_, "scales is only for quant TOKEN and GROUP") \
    X(scales_without_quant, RMS, base_plain, a->scales = P(SCALES_ADDR), EINVAL_, "scales is only for quant TOKEN and GROUP") \
    X(scale_with_group, RMS, base_group, a->scale = P(SCALE_ADDR), EINVAL_, "scale is only for quant TENSOR and TOKEN") \
    X(group_size_32, RMS, base_group, a->group_size = 32, EINVAL_, "group_size (32) must be 64 or 128") \
    X(group_size_0, RMS, base_group, a->group_size = 0, EINVAL_, "group_size (0) must be 64 or 128") \
    X(group_size_not_dividing, RMS, base_group, a->hidden = 4160, EINVAL_, "group_size (128) does not divide hidden (4160)") \
    X(group_size_with_token, RMS, base_token, a->group_size = 128, EINVAL_, "group_size is only for quant GROUP") \
    X(scales_stride_row_major, RMS, base_group, a->scales_stride = 10, EINVAL_, "scales_stride (10) is smaller than hidden / group_size (32)") \
    X(scales_stride_column_major, RMS, base_group, (a->flags = NORMJIT_NORM_SCALES_COLUMN_MAJOR, a->scales_stride = 4), EINVAL_, "scales_stride (4) is smaller than rows (8)") \
    X(scales_stride_negative, RMS, base_group, a->scales_stride = -1, EINVAL_, "scales_stride (-1) is smaller") \
    X(column_major_without_group, RMS, base_token, a->flags = NORMJIT_NORM_SCALES_COLUMN_MAJOR, EINVAL_, "NORMJIT_NORM_SCALES_COLUMN_MAJOR needs quant GROUP") \
    X(pow2_without_group, RMS, base_tensor, a->flags = NORMJIT_NORM_SCALES_POW2, EINVAL_, "NORMJIT_NORM_SCALES_POW2 needs quant GROUP") \
    X(min_scale_negative, RMS, base_token, a->min_scale = -1.0f, EINVAL_, "min_scale (-1) must be finite and not negative") \
    X(min_scale_nan, RMS, base_group, a->min_scale = NAN, EINVAL_, "min_scale (nan) must be finite and not negative") \
    X(min_scale_inf, RMS, base_token, a->min_scale = INFINITY, EINVAL_, "min_scale (inf) must be finite and not negative") \
    X(min_scale_with_tensor, RMS, base_tensor, a->min_scale = 0.5f, EINVAL_, "min_scale is only for quant TOKEN and GROUP") \
    /* cast modes */ \
    X(cast_unknown, RMS, base_plain, a->cast = 3, EINVAL_, "cast (3) is not a normjit_cast") \
    X(cast_negative, ARMS, base_add, a->cast = -1, EINVAL_, "cast (-1) is not a normjit_cast") \
    X(gemma_without_weight, RMS, base_plain, (a->cast = NORMJIT_CAST_GEMMA, a->weight = NULL), EINVAL_, "NORMJIT_CAST_GEMMA needs a weight") \
    /* QK-norm views */ \
    X(heads_negative, QK, base_qk, a->heads = -1, EINVAL_, "heads (-1) must be at least 1") \
    X(x_head_stride_small, QK, base_qk, a->x_head_stride = 64, EINVAL_, "x_head_stride (64) is smaller than hidden (128)") \
    X(y_head_stride_small, QK, base_qk, a->y_head_stride = 100, EINVAL_, "y_head_stride (100) is smaller than hidden (128)") \
    X(y_head_stride_negative, QK, base_qk, a->y_head_stride = -128, EINVAL_, "y_head_stride (-128) is smaller than hidden (128)") \
    X(x_row_stride_below_heads, QK, base_qk, a->x_row_stride = 512, EINVAL_, "x_row_stride (512) is smaller than heads (8) x x_head_stride (128)") \
    X(qk_in_place_head_strides, QK, base_qk, (a->y = P(X_ADDR), a->y_row_stride = a->x_row_stride, a->y_head_stride = 256), EINVAL_, "in place (y == x) needs the same") \
    X(qk_overflow, QK, base_qk, (a->heads = 1ll << 58, a->x_row_stride = 0), EINVAL_, "overflows")

#define BAD_CHANGE(name, op, base, change, status, message) \
    static void change_##name(call *c)                      \
    {                                                       \
        normjit_norm_args *a = &c->a;                       \
        (void)a;                                            \
        change;                                             \
    }
BAD_CASES(BAD_CHANGE)

#define BAD_ROW(name, op, base, change, status, message) \
    {#name, op, base, change_##name, status, message},
static const bad_case bad_cases[] = {BAD_CASES(BAD_ROW)};

static void test_invalid_args_rejected_without_launch(void **state)
{
    normjit_ctx *ctx = fake_ctx();
    size_t i;
    int failures = 0;
    (void)state;
    for (i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const bad_case *bc = &bad_cases[i];
        call c;
        int status;
        c.op = bc->op;
        c.a = bc->base();
        bc->change(&c);
        status = normjit_norm(ctx, c.op, &c.a, NULL);
        if (status != bc->status || !strstr(normjit_last_error(), bc->message)) {
            print_message("case %s: got %s \"%s\", expected %s with \"%s\"\n", bc->name,
                          normjit_status_name(status), normjit_last_error(),
                          normjit_status_name(bc->status), bc->message);
            failures++;
        }
        if (fake_drv.launches || fake_drv.module_loads || fake_nv.compiles) {
            print_message("case %s: reached the GPU path (%d launches, %d loads, %d compiles)\n",
                          bc->name, fake_drv.launches, fake_drv.module_loads, fake_nv.compiles);
            failures++;
            fake_drv.launches = fake_drv.module_loads = fake_nv.compiles = 0;
        }
    }
    print_message("%zu invalid calls checked, %d wrong\n", i, failures);
    assert_int_equal(failures, 0);
    normjit_ctx_destroy(ctx);
}

/* ------------------------------------------------------------------------ */
/* Valid calls: the bases and the in-place forms the header allows.         */

static void ok_add_in_place(call *c)
{
    c->a.y = P(X_ADDR); /* y == x and residual_out == residual, as engines call it */
    c->a.residual_out = P(RES_ADDR);
}

static void ok_add_mixed_dtypes(call *c)
{
    c->a.x_dtype = c->a.y_dtype = BF16;
    c->a.residual_dtype = c->a.weight_dtype = F32;
}

static void ok_add_ln_stats(call *c)
{
    c->a.bias = P(B_ADDR);
    c->a.mean = P(MEAN_ADDR);
    c->a.residual_dtype = 0; /* x_dtype */
    c->a.cast = NORMJIT_CAST_LLAMA;
}

static void ok_token_cap(call *c)
{
    c->a.scale = P(SCALE_ADDR);
    c->a.min_scale = 1e-3f;
    c->a.flags = NORMJIT_NORM_PDL;
}

static void ok_group_column_pow2(call *c)
{
    c->a.hidden = 4160;
    c->a.group_size = 64;
    c->a.flags = NORMJIT_NORM_SCALES_COLUMN_MAJOR | NORMJIT_NORM_SCALES_POW2;
    c->a.scales_stride = 16;
}

static void ok_add_group(call *c)
{
    c->a.y_dtype = E5M2;
    c->a.quant = GROUP;
    c->a.group_size = 128;
    c->a.scales = P(SCALES_ADDR);
    c->a.scales_stride = 40;
}

static void ok_qk_in_place(call *c)
{
    c->a.y = P(X_ADDR);
    c->a.y_row_stride = c->a.x_row_stride;
    c->a.cast = NORMJIT_CAST_LLAMA;
}

static void ok_qk_padded_heads(call *c)
{
    c->a.x_head_stride = 136;
    c->a.x_row_stride = 0; /* heads * x_head_stride */
    c->a.cast = NORMJIT_CAST_GEMMA;
}

static void ok_gemma(call *c)
{
    c->a.cast = NORMJIT_CAST_GEMMA;
    c->a.flags = NORMJIT_NORM_WEIGHT_PLUS_ONE; /* implied; saying it too is fine */
}

static void ok_nothing(call *c)
{
    (void)c;
}

static void test_valid_calls_launch(void **state)
{
    static const struct {
        const char *name;
        int op;
        normjit_norm_args (*base)(void);
        void (*change)(call *c);
    } cases[] = {
        {"add_rmsnorm", ARMS, base_add, ok_nothing},
        {"add_layernorm in place", ALN, base_add, ok_add_in_place},
        {"add_rmsnorm bf16 + f32 residual", ARMS, base_add, ok_add_mixed_dtypes},
        {"add_layernorm stats, llama", ALN, base_add, ok_add_ln_stats},
        {"token fp8 with cap", RMS, base_token, ok_token_cap},
        {"tensor int8", LN, base_tensor, ok_nothing},
        {"group 64 column-major pow2", LN, base_group, ok_group_column_pow2},
        {"add_rmsnorm group e5m2", ARMS, base_add, ok_add_group},
        {"qk in place", QK, base_qk, ok_qk_in_place},
        {"qk padded heads", QK, base_qk, ok_qk_padded_heads},
        {"gemma", RMS, base_plain, ok_gemma},
    };
    size_t i;
    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        normjit_ctx *ctx = fake_ctx();
        call c;
        int status;
        c.op = cases[i].op;
        c.a = cases[i].base();
        cases[i].change(&c);
        status = normjit_norm(ctx, c.op, &c.a, NULL);
        if (status != NORMJIT_OK)
            fail_msg("%s: %s: %s", cases[i].name, normjit_status_name(status),
                     normjit_last_error());
        assert_true(fake_drv.launches >= 1);
        assert_true(fake_nv.compiles >= 1);
        normjit_ctx_destroy(ctx);
    }
}

/* Zero rows: a no-op for every op, whatever the (NULL) tensors. */
static void test_zero_rows(void **state)
{
    static const int ops[] = {ARMS, ALN, QK};
    normjit_ctx *ctx = fake_ctx();
    size_t i;
    (void)state;
    for (i = 0; i < 3; i++) {
        normjit_norm_args a = base_plain();
        a.rows = 0;
        a.x = a.y = NULL;
        a.weight = NULL;
        a.rstd = NULL;
        assert_int_equal(normjit_norm(ctx, ops[i], &a, NULL), NORMJIT_OK);
    }
    assert_int_equal(fake_drv.launches, 0);
    assert_int_equal(fake_nv.compiles, 0);
    normjit_ctx_destroy(ctx);
}

/* Each epilogue is its own kernel; the named entry points are normjit_norm with their op. */
static void test_epilogues_are_kernels(void **state)
{
    normjit_ctx *ctx = fake_ctx();
    normjit_norm_args a = base_add();
    (void)state;
    assert_int_equal(normjit_add_rmsnorm_fwd(ctx, &a, NULL), NORMJIT_OK);
    assert_int_equal(normjit_norm(ctx, ARMS, &a, NULL), NORMJIT_OK);
    assert_int_equal(fake_nv.compiles, 1);
    a.y_dtype = E4M3;
    a.quant = TOKEN;
    a.scales = P(SCALES_ADDR);
    assert_int_equal(normjit_add_rmsnorm_fwd(ctx, &a, NULL), NORMJIT_OK);
    assert_int_equal(fake_nv.compiles, 2);
    a.cast = NORMJIT_CAST_LLAMA;
    assert_int_equal(normjit_add_rmsnorm_fwd(ctx, &a, NULL), NORMJIT_OK);
    assert_int_equal(fake_nv.compiles, 3);
    a.bias = P(B_ADDR);
    assert_int_equal(normjit_add_layernorm_fwd(ctx, &a, NULL), NORMJIT_OK);
    assert_int_equal(fake_nv.compiles, 4);
    a = base_qk();
    assert_int_equal(normjit_qk_rmsnorm_fwd(ctx, &a, NULL), NORMJIT_OK);
    assert_int_equal(fake_nv.compiles, 5);
    assert_true(fake_drv.launches >= 6);
    normjit_ctx_destroy(ctx);
}

/* A 0.1 caller (struct ending at eps) still works for the plain ops, and is told what a fused op lacks. */
static void test_old_struct_size(void **state)
{
    normjit_ctx *ctx = fake_ctx();
    normjit_norm_args a = base_plain();
    (void)state;
    a.struct_size = offsetof(normjit_norm_args, eps) + sizeof(float);
    assert_int_equal(normjit_norm(ctx, RMS, &a, NULL), NORMJIT_OK);
    assert_int_equal(normjit_norm(ctx, ARMS, &a, NULL), NORMJIT_EINVAL);
    assert_non_null(strstr(normjit_last_error(), "add_rmsnorm: residual is NULL"));
    assert_int_equal(fake_drv.launches, 1);
    normjit_ctx_destroy(ctx);
}

/* ------------------------------------------------------------------------ */
/* normjit_prepare with the 0.2 fields.                                      */

static const int64_t prep_hidden[] = {4096};
static const int64_t prep_hidden_4160[] = {4160};

static normjit_prepare_args prepare_base(void)
{
    normjit_prepare_args p;
    memset(&p, 0, sizeof p);
    p.struct_size = sizeof p;
    p.op = ARMS;
    p.x_dtype = p.y_dtype = p.weight_dtype = F16;
    p.residual_dtype = F16;
    p.hidden = prep_hidden;
    p.n_hidden = 1;
    return p;
}

typedef struct prep_case {
    const char *name;
    void (*change)(normjit_prepare_args *p);
    int status;
    const char *message;
} prep_case;

/* X(name, change (p: the args), status, message) */
#define PREP_CASES(X) \
    X(residual_dtype_unknown, p->residual_dtype = 9, EINVAL_, "residual_dtype 9 is not a normjit dtype") \
    X(residual_dtype_to_rmsnorm, (p->op = RMS, p->residual_dtype = F32), EINVAL_, "residual_dtype is only for add_rmsnorm and add_layernorm") \
    X(weight_not_residual_dtype, p->residual_dtype = BF16, EUNSUP_, "weight_dtype must be residual_dtype or f32") \
    X(quant_unknown, p->quant = 4, EINVAL_, "quant (4) is not a normjit_quant") \
    X(fp8_y_without_quant, p->y_dtype = E4M3, EINVAL_, "y_dtype fp8e4m3 needs a quant mode") \
    X(quant_with_f16_y, p->quant = TOKEN, EINVAL_, "needs y_dtype fp8e4m3, fp8e5m2 or int8") \
    X(quant_with_qk, (p->op = QK, p->residual_dtype = 0, p->y_dtype = E4M3, p->quant = TOKEN), EUNSUP_, "qk_rmsnorm: quant must be NORMJIT_QUANT_NONE") \
    X(group_size_32, (p->y_dtype = E4M3, p->quant = GROUP, p->group_size = 32), EINVAL_, "group_size (32) must be 64 or 128") \
    X(group_size_not_dividing, (p->y_dtype = E4M3, p->quant = GROUP, p->group_size = 128, p->hidden = prep_hidden_4160), EINVAL_, "group_size (128) does not divide hidden") \
    X(cast_unknown, p->cast = 3, EINVAL_, "cast (3) is not a normjit_cast") \
    X(norm_flags_unknown, p->norm_flags = 0x10, EINVAL_, "unknown norm_flags 0x10") \
    X(pow2_without_group, p->norm_flags = NORMJIT_NORM_SCALES_POW2, EINVAL_, "NORMJIT_NORM_SCALES_POW2 needs quant GROUP") \
    X(reserved0, p->reserved0 = 1, EINVAL_, "reserved0 (1) must be 0")

#define PREP_CHANGE(name, change, status, message) \
    static void prep_##name(normjit_prepare_args *p) \
    {                                               \
        change;                                     \
    }
PREP_CASES(PREP_CHANGE)

#define PREP_ROW(name, change, status, message) {#name, prep_##name, status, message},
static const prep_case prep_cases[] = {PREP_CASES(PREP_ROW)};

static void test_prepare_rejects_bad_args(void **state)
{
    normjit_ctx *ctx = fake_ctx();
    normjit_prepare_stats st = {sizeof st, 0, 0, 0, 0};
    size_t i;
    int failures = 0;
    (void)state;
    for (i = 0; i < sizeof prep_cases / sizeof prep_cases[0]; i++) {
        normjit_prepare_args p = prepare_base();
        int status;
        prep_cases[i].change(&p);
        status = normjit_prepare(ctx, &p, &st);
        if (status != prep_cases[i].status || !strstr(normjit_last_error(), prep_cases[i].message)) {
            print_message("case %s: got %s \"%s\", expected %s with \"%s\"\n", prep_cases[i].name,
                          normjit_status_name(status), normjit_last_error(),
                          normjit_status_name(prep_cases[i].status), prep_cases[i].message);
            failures++;
        }
    }
    assert_int_equal(failures, 0);
    assert_int_equal(fake_nv.compiles, 0);
    assert_int_equal(fake_drv.module_loads, 0);
    normjit_ctx_destroy(ctx);
}

/* What prepare loaded is what a captured fused launch finds; another epilogue is not ready. */
static void test_prepare_then_capture(void **state)
{
    normjit_ctx *ctx = fake_ctx();
    normjit_prepare_args p = prepare_base();
    normjit_prepare_stats st = {sizeof st, 0, 0, 0, 0};
    normjit_norm_args a = base_add();
    (void)state;
    p.y_dtype = E4M3;
    p.quant = GROUP;
    p.group_size = 128;
    p.norm_flags = NORMJIT_NORM_SCALES_COLUMN_MAJOR | NORMJIT_NORM_SCALES_POW2;
    p.cast = NORMJIT_CAST_LLAMA;
    assert_int_equal(normjit_prepare(ctx, &p, &st), NORMJIT_OK);
    assert_true(st.compiled >= 1);
    assert_int_equal(st.from_disk + st.in_memory, 0);

    a.y_dtype = E4M3;
    a.quant = GROUP;
    a.group_size = 128;
    a.scales = P(SCALES_ADDR);
    a.flags = NORMJIT_NORM_SCALES_COLUMN_MAJOR | NORMJIT_NORM_SCALES_POW2;
    a.cast = NORMJIT_CAST_LLAMA;
    fake_drv.capturing = 1;
    a.rows = 8;
    assert_int_equal(normjit_norm(ctx, ARMS, &a, NULL), NORMJIT_OK);
    a.rows = 3000; /* another bucket: prepared too */
    a.x = P(1ull << 40);
    a.y = P(2ull << 40);
    a.residual = P(3ull << 40);
    a.residual_out = P(4ull << 40);
    a.rstd = P(5ull << 40);
    a.scales = P(6ull << 40);
    assert_int_equal(normjit_norm(ctx, ARMS, &a, NULL), NORMJIT_OK);
    a.hidden = 4224; /* not prepared */
    assert_int_equal(normjit_norm(ctx, ARMS, &a, NULL), NORMJIT_ENOTREADY);
    assert_non_null(strstr(normjit_last_error(), "normjit_prepare()"));
    assert_int_equal(fake_drv.launches, 2);
    fake_drv.capturing = 0;
    normjit_ctx_destroy(ctx);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    (void)state;
    if (!mkdtemp(tmp_dir))
        return -1;
    setenv("NORMJIT_TUNING_DIR", tmp_dir, 1);
    setenv("NORMJIT_CACHE_DIR", tmp_dir, 1);
    unsetenv("NORMJIT_TUNING_FILE");
    unsetenv("NORMJIT_LOG");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return nftw(tmp_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_invalid_args_rejected_without_launch),
        cmocka_unit_test(test_valid_calls_launch),
        cmocka_unit_test(test_zero_rows),
        cmocka_unit_test(test_epilogues_are_kernels),
        cmocka_unit_test(test_old_struct_size),
        cmocka_unit_test(test_prepare_rejects_bad_args),
        cmocka_unit_test(test_prepare_then_capture),
    };
    return cmocka_run_group_tests_name("api fused", tests, setup, teardown);
}
