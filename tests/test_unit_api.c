/*
 * Public API validation, driven through a fake CUDA driver and a fake NVRTC
 * (nj_ctx_create_with), so it runs without a GPU. Every rejected call must
 * name the problem in normjit_last_error() and must not have loaded a module
 * or launched anything.
 */
#include "ctx.h"
#include "plan.h"
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

#ifndef NJ_PROJECT_VERSION
#error "tests/meson.build passes the Meson project version as NJ_PROJECT_VERSION"
#endif

#define P(addr) ((void *)(uintptr_t)(addr))
#define RMS NORMJIT_OP_RMSNORM
#define LN NORMJIT_OP_LAYERNORM
#define F16 NORMJIT_DTYPE_F16
#define F32 NORMJIT_DTYPE_F32
#define BF16 NORMJIT_DTYPE_BF16
#define EINVAL_ NORMJIT_EINVAL
#define EUNSUP_ NORMJIT_EUNSUPPORTED

static char tmp_dir[] = "/tmp/normjit-test-api-XXXXXX";
static nj_driver drv;
static nj_nvrtc nvrtc;
static int warnings;

static void count_log(void *user, int level, const char *message)
{
    (void)user;
    (void)message;
    if (level <= NORMJIT_LOG_WARN)
        warnings++;
}

static normjit_ctx_options options(int32_t offline_arch)
{
    normjit_ctx_options o;
    memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    o.flags = NORMJIT_CTX_NO_DISK_CACHE;
    o.offline_arch = offline_arch;
    o.log_level = NORMJIT_LOG_WARN;
    o.log = count_log;
    return o;
}

/* A context over the fake driver and NVRTC; the fakes' state is reset first. */
static normjit_ctx *fake_ctx(void)
{
    normjit_ctx_options o = options(0);
    normjit_ctx *ctx = NULL;
    fake_driver_init(&drv);
    fake_nvrtc_init(&nvrtc);
    assert_int_equal(nj_ctx_create_with(&ctx, &o, &drv, &nvrtc), NORMJIT_OK);
    assert_non_null(ctx);
    return ctx;
}

/* A valid RMSNorm call: 8 rows of 4096 fp16 elements, 16-byte aligned fake device pointers. */
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
    a.rstd = P(0x400000);
    a.x_dtype = a.y_dtype = a.weight_dtype = NORMJIT_DTYPE_F16;
    a.eps = 1e-6f;
    return a;
}

static int run(int op, normjit_ctx *ctx, const normjit_norm_args *a)
{
    return op == NORMJIT_OP_RMSNORM ? normjit_rmsnorm_fwd(ctx, a, NULL)
                                    : normjit_layernorm_fwd(ctx, a, NULL);
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
    /* Nothing here may read the user's tuning table or write their cache. */
    setenv("NORMJIT_TUNING_DIR", tmp_dir, 1);
    setenv("NORMJIT_CACHE_DIR", tmp_dir, 1);
    unsetenv("NORMJIT_TUNING_FILE");
    unsetenv("NORMJIT_LOG");
    fake_driver_init(&drv);
    fake_nvrtc_init(&nvrtc);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return nftw(tmp_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ------------------------------------------------------------------------ */
/* Invalid calls: one line per case, as the change made to a valid call.     */

typedef struct call {
    normjit_ctx *ctx;
    const normjit_norm_args *args;
    normjit_norm_args a;
} call;

typedef struct bad_case {
    const char *name;
    int op;
    void (*change)(call *c);
    int status;
    const char *message; /* expected in normjit_last_error() */
} bad_case;


/* X(name, op, change (a: the args, c: the call), status, message) */
#define BAD_CASES(X) \
    X(null_ctx, RMS, c->ctx = NULL, EINVAL_, "rmsnorm: ctx is NULL") \
    X(null_args, RMS, c->args = NULL, EINVAL_, "rmsnorm: args is NULL") \
    X(struct_size_0, RMS, a->struct_size = 0, EINVAL_, "normjit_norm_args.struct_size is 0") \
    X(struct_size_small, RMS, a->struct_size = offsetof(normjit_norm_args, eps), EINVAL_, "set it with sizeof") \
    X(unknown_flags, RMS, a->flags = 0x80, EINVAL_, "unknown flags 0x80") \
    X(x_dtype_none, RMS, a->x_dtype = 0, EINVAL_, "x_dtype 0 is not a normjit dtype") \
    X(x_dtype_bad, LN, a->x_dtype = 7, EINVAL_, "x_dtype 7 is not a normjit dtype") \
    X(y_dtype_bad, RMS, a->y_dtype = -1, EINVAL_, "y_dtype -1 is not a normjit dtype") \
    X(weight_dtype_bad, RMS, a->weight_dtype = 9, EINVAL_, "weight_dtype 9 is not a normjit dtype") \
    X(hidden_0, RMS, a->hidden = 0, EINVAL_, "rmsnorm: hidden (0) must be at least 1") \
    X(hidden_0_ln, LN, a->hidden = 0, EINVAL_, "layernorm: hidden (0) must be at least 1") \
    X(hidden_negative, RMS, a->hidden = -5, EINVAL_, "hidden (-5) must be at least 1") \
    X(hidden_too_large, RMS, a->hidden = (1 << 24) + 1, EUNSUP_, "hidden (16777217) is larger") \
    X(rows_negative, RMS, a->rows = -1, EINVAL_, "rows (-1) is negative") \
    X(eps_negative, RMS, a->eps = -1e-6f, EINVAL_, "must be finite and not negative") \
    X(eps_nan, RMS, a->eps = NAN, EINVAL_, "must be finite and not negative") \
    X(eps_inf, LN, a->eps = INFINITY, EINVAL_, "must be finite and not negative") \
    X(x_null, RMS, a->x = NULL, EINVAL_, "x is NULL") \
    X(y_null, RMS, a->y = NULL, EINVAL_, "y is NULL") \
    X(x_stride_small, RMS, a->x_row_stride = 100, EINVAL_, "x_row_stride (100) is smaller than hidden (4096)") \
    X(y_stride_negative, RMS, a->y_row_stride = -4096, EINVAL_, "y_row_stride (-4096) is smaller") \
    X(weight_bf16_x_f16, RMS, a->weight_dtype = BF16, EUNSUP_, "weight_dtype bf16 with x_dtype f16") \
    X(bias_rmsnorm, RMS, a->bias = P(0x500000), EINVAL_, "bias is a LayerNorm argument") \
    X(mean_rmsnorm, RMS, a->mean = P(0x600000), EINVAL_, "mean is a LayerNorm output") \
    X(x_misaligned, RMS, a->x = P(0x100001), EINVAL_, "x (0x100001) is not aligned to its 2-byte") \
    X(x_f32_misaligned, RMS, (a->x_dtype = a->weight_dtype = F32, a->x = P(0x100002)), EINVAL_, "x (0x100002) is not aligned to its 4-byte") \
    X(y_misaligned, RMS, a->y = P(0x200001), EINVAL_, "y (0x200001) is not aligned") \
    X(weight_misaligned, RMS, a->weight = P(0x300001), EINVAL_, "weight (0x300001) is not aligned") \
    X(bias_misaligned, LN, a->bias = P(0x500001), EINVAL_, "bias (0x500001) is not aligned") \
    X(rstd_misaligned, RMS, a->rstd = P(0x400002), EINVAL_, "rstd (0x400002) is not aligned to its 4-byte") \
    X(mean_misaligned, LN, a->mean = P(0x600002), EINVAL_, "mean (0x600002) is not aligned") \
    X(x_y_overlap, RMS, a->y = P(0x100000 + 4096), EINVAL_, "x and y overlap without being the same") \
    X(in_place_strides, RMS, (a->x = a->y, a->x_row_stride = 8192), EINVAL_, "in place (y == x) needs the same") \
    X(in_place_dtypes, RMS, (a->x = a->y, a->x_dtype = a->weight_dtype = F32), EINVAL_, "in place (y == x) needs the same") \
    X(rstd_overlaps_y, RMS, a->rstd = P(0x200000 + 64), EINVAL_, "rstd or mean overlaps") \
    X(plus_one_no_weight, RMS, (a->flags = NORMJIT_NORM_WEIGHT_PLUS_ONE, a->weight = NULL), EINVAL_, "NORMJIT_NORM_WEIGHT_PLUS_ONE needs a weight") \
    X(rows_stride_overflow, RMS, (a->rows = 1ll << 40, a->x_row_stride = 1 << 24), EINVAL_, "overflows the address space") \
    X(end_of_address_space, LN, a->y = P(UINTPTR_MAX - 15), EINVAL_, "overflows the address space")

#define BAD_CHANGE(name, op, change, status, message) \
    static void change_##name(call *c)               \
    {                                                \
        normjit_norm_args *a = &c->a;                \
        (void)a;                                     \
        change;                                      \
    }
BAD_CASES(BAD_CHANGE)

#define BAD_ROW(name, op, change, status, message) {#name, op, change_##name, status, message},
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
        c.ctx = ctx;
        c.a = base_args();
        c.args = &c.a;
        bc->change(&c);
        status = run(bc->op, c.ctx, c.args);
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
    assert_int_equal(failures, 0);
    normjit_ctx_destroy(ctx);
}

/* The base call is valid: it compiles, loads once and launches, so the counters above are live. */
static void test_valid_call_launches_once_per_kernel(void **state)
{
    normjit_ctx *ctx = fake_ctx();
    normjit_norm_args a = base_args();
    nj_request r = {{RMS, F16, F16, F16, 0, 0, 0, 0, 0, 4096}, 8, NJ_BUCKET_DECODE};
    nj_plan plan;
    (void)state;

    assert_int_equal(normjit_rmsnorm_fwd(ctx, &a, NULL), NORMJIT_OK);
    assert_int_equal(fake_drv.launches, 1);
    assert_int_equal(fake_drv.module_loads, 1);
    assert_int_equal(fake_nv.compiles, 1);
    nj_plan_heuristic(&r, 90, &plan);
    assert_int_equal(fake_drv.last_block_x, plan.v.k.tpr * plan.v.k.rpc);
    assert_int_equal(fake_drv.last_grid_x, (8 + plan.v.k.rpc - 1) / plan.v.k.rpc);

    assert_int_equal(normjit_rmsnorm_fwd(ctx, &a, NULL), NORMJIT_OK);
    assert_int_equal(fake_drv.launches, 2);
    assert_int_equal(fake_drv.module_loads, 1);
    assert_int_equal(fake_nv.compiles, 1);

    /* LayerNorm is another kernel. */
    a.bias = P(0x500000);
    a.mean = P(0x600000);
    assert_int_equal(normjit_layernorm_fwd(ctx, &a, NULL), NORMJIT_OK);
    assert_int_equal(fake_drv.launches, 3);
    assert_int_equal(fake_drv.module_loads, 2);
    assert_int_equal(fake_nv.programs_created, fake_nv.programs_destroyed);

    normjit_ctx_destroy(ctx);
    assert_int_equal(fake_drv.module_unloads, 2);
    assert_int_equal(warnings, 0);
}

/* The widest vector every pointer, stride and the hidden size allow picks the kernel. */
static void test_alignment_picks_vector_width(void **state)
{
    static const struct {
        const char *what;
        int op, tx, ty, tw;
        int64_t hidden, rows, x_stride;
        unsigned x_off, y_off, w_off, b_off; /* bytes added to 16-byte aligned pointers */
        const char *vec;                     /* expected in the kernel name */
    } cases[] = {
        {"all aligned", RMS, F16, F16, F16, 4096, 8, 0, 0, 0, 0, 0, "_v8_"},
        {"x at 8 bytes", RMS, F16, F16, F16, 4096, 8, 0, 8, 0, 0, 0, "_v4_"},
        {"y at 4 bytes", RMS, F16, F16, F16, 4096, 8, 0, 0, 4, 0, 0, "_v2_"},
        {"weight at 2 bytes", RMS, F16, F16, F16, 4096, 8, 0, 0, 0, 2, 0, "_v1_"},
        {"bias at 4 bytes", LN, F16, F16, F16, 4096, 8, 0, 0, 0, 0, 4, "_v2_"},
        {"stride of 8200 bytes", RMS, F16, F16, F16, 4096, 2, 4100, 0, 0, 0, 0, "_v4_"},
        {"one row: stride ignored", RMS, F16, F16, F16, 4096, 1, 4100, 0, 0, 0, 0, "_v8_"},
        {"hidden 4100", RMS, F16, F16, F16, 4100, 8, 0, 0, 0, 0, 0, "_v4_"},
        {"hidden 4097", RMS, BF16, BF16, BF16, 4097, 8, 0, 0, 0, 0, 0, "_v1_"},
        {"f32", LN, F32, F32, F32, 4096, 8, 0, 0, 0, 0, 0, "_v4_"},
        {"f32 y at 8 bytes", RMS, F16, F32, F16, 4096, 8, 0, 0, 8, 0, 0, "_v2_"},
        {"f32 weight", RMS, BF16, BF16, F32, 4096, 8, 0, 0, 0, 0, 0, "_v8_"},
    };
    size_t i;
    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        normjit_ctx *ctx = fake_ctx(); /* fresh, so every case compiles */
        normjit_norm_args a = base_args();
        int status;
        a.x_dtype = cases[i].tx;
        a.y_dtype = cases[i].ty;
        a.weight_dtype = cases[i].tw;
        a.hidden = cases[i].hidden;
        a.rows = cases[i].rows;
        a.x_row_stride = cases[i].x_stride;
        a.x = P(0x100000 + cases[i].x_off);
        a.y = P(0x200000 + cases[i].y_off);
        a.weight = P(0x300000 + cases[i].w_off);
        if (cases[i].op == LN)
            a.bias = P(0x500000 + cases[i].b_off);
        status = run(cases[i].op, ctx, &a);
        if (status != NORMJIT_OK)
            fail_msg("%s: %s: %s", cases[i].what, normjit_status_name(status),
                     normjit_last_error());
        if (!strstr(fake_nv.last_name, cases[i].vec))
            fail_msg("%s: compiled %s, expected a %s kernel", cases[i].what, fake_nv.last_name,
                     cases[i].vec);
        assert_int_equal(fake_drv.launches, 1);
        normjit_ctx_destroy(ctx);
    }
}

static void test_zero_rows_is_a_noop(void **state)
{
    normjit_ctx *ctx = fake_ctx();
    normjit_norm_args a = base_args();
    (void)state;
    a.rows = 0;
    a.x = a.y = NULL;
    a.weight = NULL;
    a.rstd = NULL;
    assert_int_equal(normjit_rmsnorm_fwd(ctx, &a, NULL), NORMJIT_OK);
    assert_int_equal(normjit_layernorm_fwd(ctx, &a, NULL), NORMJIT_OK);
    assert_int_equal(fake_drv.launches, 0);
    assert_int_equal(fake_drv.module_loads, 0);
    assert_int_equal(fake_nv.compiles, 0);
    normjit_ctx_destroy(ctx);
}

static void test_compile_error_carries_nvrtc_log(void **state)
{
    normjit_ctx *ctx = fake_ctx();
    normjit_norm_args a = base_args();
    (void)state;
    fake_nv.fail_compile = 1;
    assert_int_equal(normjit_rmsnorm_fwd(ctx, &a, NULL), NORMJIT_ECOMPILE);
    assert_non_null(strstr(normjit_last_error(), "fake error log"));
    assert_int_equal(fake_nv.compiles, 1);
    assert_int_equal(fake_nv.programs_created, fake_nv.programs_destroyed);
    assert_int_equal(fake_drv.launches, 0);
    assert_int_equal(fake_drv.module_loads, 0);
    normjit_ctx_destroy(ctx);
}

static void test_compile_only_context_cannot_launch(void **state)
{
    normjit_ctx_options o = options(90);
    normjit_norm_args a = base_args();
    normjit_ctx *ctx = NULL;
    (void)state;
    assert_int_equal(nj_ctx_create_with(&ctx, &o, NULL, &nvrtc), NORMJIT_OK);
    assert_null(normjit_ctx_cache_dir(ctx)); /* NORMJIT_CTX_NO_DISK_CACHE */
    assert_int_equal(normjit_rmsnorm_fwd(ctx, &a, NULL), NORMJIT_ENODEVICE);
    assert_non_null(strstr(normjit_last_error(), "compile-only"));
    normjit_ctx_destroy(ctx);
}

static void test_wrong_current_context(void **state)
{
    normjit_ctx *ctx = fake_ctx();
    normjit_norm_args a = base_args();
    (void)state;
    fake_drv.current = FAKE_CU_OTHER_CTX;
    assert_int_equal(normjit_rmsnorm_fwd(ctx, &a, NULL), NORMJIT_ECONTEXT);
    assert_non_null(strstr(normjit_last_error(), "is not the one"));
    assert_int_equal(fake_drv.launches, 0);
    assert_int_equal(fake_drv.module_loads, 0);
    fake_drv.current = FAKE_CU_CTX;
    normjit_ctx_destroy(ctx);
}

static void test_capture_without_prepared_kernel(void **state)
{
    normjit_ctx *ctx = fake_ctx();
    normjit_norm_args a = base_args();
    (void)state;
    fake_drv.capturing = 1;
    assert_int_equal(normjit_rmsnorm_fwd(ctx, &a, NULL), NORMJIT_ENOTREADY);
    assert_non_null(strstr(normjit_last_error(), "normjit_prepare()"));
    assert_int_equal(fake_drv.module_loads, 0);
    /* Once loaded outside the capture, a captured launch needs no compile. */
    fake_drv.capturing = 0;
    assert_int_equal(normjit_rmsnorm_fwd(ctx, &a, NULL), NORMJIT_OK);
    fake_drv.capturing = 1;
    assert_int_equal(normjit_rmsnorm_fwd(ctx, &a, NULL), NORMJIT_OK);
    assert_int_equal(fake_drv.launches, 2);
    normjit_ctx_destroy(ctx);
}

static normjit_prepare_args prepare_args(const int64_t *hidden, size_t n)
{
    normjit_prepare_args p;
    memset(&p, 0, sizeof p);
    p.struct_size = sizeof p;
    p.op = RMS;
    p.x_dtype = p.y_dtype = p.weight_dtype = F16;
    p.hidden = hidden;
    p.n_hidden = n;
    return p;
}

static void test_prepare_rejects_bad_args(void **state)
{
    static const int64_t ok[] = {4096}, zero[] = {4096, 0}, huge[] = {(1 << 24) + 1};
    static const struct {
        const char *what;
        int field, value;
        const int64_t *hidden;
        size_t n;
        int status;
        const char *message;
    } cases[] = {
        /* field: 0 none, 1 flags, 2 op, 3 x_dtype, 4 y_dtype, 5 weight_dtype, 6 struct_size */
        {"unknown flags", 1, 0x10, ok, 1, NORMJIT_EINVAL, "prepare: unknown flags 0x10"},
        {"bad op", 2, 9, ok, 1, NORMJIT_EINVAL, "op 9 is not a normjit_op"},
        {"bad x dtype", 3, 0, ok, 1, NORMJIT_EINVAL, "x_dtype 0"},
        {"bad y dtype", 4, 9, ok, 1, NORMJIT_EINVAL, "y_dtype 9"},
        {"bf16 weight for f16", 5, BF16, ok, 1, NORMJIT_EUNSUPPORTED, "weight_dtype must be x_dtype or f32"},
        {"struct_size 0", 6, 0, ok, 1, NORMJIT_EINVAL, "normjit_prepare_args.struct_size is 0"},
        {"NULL hidden", 0, 0, NULL, 2, NORMJIT_EINVAL, "hidden is NULL but n_hidden is 2"},
        {"hidden 0", 0, 0, zero, 2, NORMJIT_EINVAL, "hidden[1] = 0 is outside"},
        {"hidden too large", 0, 0, huge, 1, NORMJIT_EUNSUPPORTED, "hidden[0] = 16777217 is outside"},
    };
    normjit_ctx *ctx = fake_ctx();
    normjit_prepare_stats st = {sizeof st, 0, 0, 0, 0};
    normjit_prepare_args p = prepare_args(ok, 1);
    size_t i;
    (void)state;
    assert_int_equal(normjit_prepare(NULL, &p, &st), NORMJIT_EINVAL);
    assert_int_equal(normjit_prepare(ctx, NULL, &st), NORMJIT_EINVAL);
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int status;
        p = prepare_args(cases[i].hidden, cases[i].n);
        switch (cases[i].field) {
        case 1: p.flags = (uint32_t)cases[i].value; break;
        case 2: p.op = cases[i].value; break;
        case 3: p.x_dtype = cases[i].value; break;
        case 4: p.y_dtype = cases[i].value; break;
        case 5: p.weight_dtype = cases[i].value; break;
        case 6: p.struct_size = (uint32_t)cases[i].value; break;
        }
        status = normjit_prepare(ctx, &p, &st);
        if (status != cases[i].status || !strstr(normjit_last_error(), cases[i].message))
            fail_msg("%s: got %s \"%s\", expected %s with \"%s\"", cases[i].what,
                     normjit_status_name(status), normjit_last_error(),
                     normjit_status_name(cases[i].status), cases[i].message);
    }
    assert_int_equal(fake_nv.compiles, 0);
    assert_int_equal(fake_drv.module_loads, 0);
    normjit_ctx_destroy(ctx);
}

/* Prepared kernels are what a later launch (even a captured one) uses: no compile, no load. */
static void test_prepare_then_launch(void **state)
{
    static const int64_t hidden[] = {4096, 4096, 2880};
    normjit_ctx *ctx = fake_ctx();
    normjit_prepare_args p = prepare_args(hidden, 3);
    normjit_prepare_stats st = {sizeof st, 0, 0, 0, 0};
    normjit_norm_args a = base_args();
    (void)state;
    p.weight_dtype = NORMJIT_DTYPE_NONE; /* means x_dtype */
    assert_int_equal(normjit_prepare(ctx, &p, &st), NORMJIT_OK);
    /* Two kernels per hidden size on a GPU context: the decode bucket's reads the weights
       with the row (3 vectors a thread), the other buckets' at the output. */
    assert_int_equal(st.compiled, 4);
    assert_int_equal(st.from_disk, 0);
    assert_int_equal(st.in_memory, 0);
    assert_int_equal(fake_nv.compiles, 4);
    assert_int_equal(fake_drv.module_loads, 4);

    assert_int_equal(normjit_prepare(ctx, &p, &st), NORMJIT_OK);
    assert_int_equal(st.compiled, 0);
    assert_int_equal(st.in_memory, 4);

    fake_drv.capturing = 1;
    a.rows = 100;
    assert_int_equal(normjit_rmsnorm_fwd(ctx, &a, NULL), NORMJIT_OK);
    a.rows = 100000; /* the large bucket; tensors this big need room between them */
    a.hidden = 2880;
    a.x = P(1ull << 40);
    a.y = P(2ull << 40);
    a.rstd = P(3ull << 40);
    assert_int_equal(normjit_rmsnorm_fwd(ctx, &a, NULL), NORMJIT_OK);
    assert_int_equal(fake_drv.launches, 2);
    assert_int_equal(fake_nv.compiles, 4);
    assert_int_equal(fake_drv.module_loads, 4);
    /* Unaligned tensors need a narrower kernel, which was not prepared. */
    a.x = P((1ull << 40) + 2);
    assert_int_equal(normjit_rmsnorm_fwd(ctx, &a, NULL), NORMJIT_ENOTREADY);

    fake_drv.capturing = 0;
    p.flags = NORMJIT_PREPARE_ALL_ALIGNMENTS;
    assert_int_equal(normjit_prepare(ctx, &p, &st), NORMJIT_OK);
    assert_true(st.compiled >= 1);
    fake_drv.capturing = 1;
    assert_int_equal(normjit_rmsnorm_fwd(ctx, &a, NULL), NORMJIT_OK);
    assert_int_equal(fake_drv.launches, 3);
    normjit_ctx_destroy(ctx);
}

/* Creating a context: what the device and the options must look like. */
static void test_ctx_create_failures(void **state)
{
    normjit_ctx_options o = options(0);
    normjit_ctx *ctx = P(1);
    (void)state;

    fake_driver_init(&drv);
    fake_drv.current = NULL;
    assert_int_equal(nj_ctx_create_with(&ctx, &o, &drv, &nvrtc), NORMJIT_ENODEVICE);
    assert_null(ctx);
    assert_non_null(strstr(normjit_last_error(), "no CUDA context is current"));

    fake_driver_init(&drv);
    fake_drv.cc_major = 7;
    fake_drv.cc_minor = 5;
    assert_int_equal(nj_ctx_create_with(&ctx, &o, &drv, &nvrtc), NORMJIT_EUNSUPPORTED);
    assert_non_null(strstr(normjit_last_error(), "Fake GPU is sm_75"));

    fake_driver_init(&drv);
    o.flags = 0x100;
    assert_int_equal(nj_ctx_create_with(&ctx, &o, &drv, &nvrtc), NORMJIT_EINVAL);
    o = options(75);
    assert_int_equal(nj_ctx_create_with(&ctx, &o, &drv, &nvrtc), NORMJIT_EINVAL);
    assert_non_null(strstr(normjit_last_error(), "offline_arch 75"));
    o = options(0);
    o.log_level = 7;
    assert_int_equal(nj_ctx_create_with(&ctx, &o, &drv, &nvrtc), NORMJIT_EINVAL);
    assert_int_equal(nj_ctx_create_with(NULL, &o, &drv, &nvrtc), NORMJIT_EINVAL);
    assert_null(ctx);
}

/* A caller built against a newer header passes a larger struct; extra bytes must be zero. */
static void test_newer_struct_size(void **state)
{
    struct newer_args {
        normjit_norm_args a;
        uint64_t tail[2];
    } n;
    struct newer_options {
        normjit_ctx_options o;
        uint64_t tail[2];
    } no;
    normjit_ctx *ctx = fake_ctx(), *other = NULL;
    (void)state;
    _Static_assert(offsetof(struct newer_args, tail) == sizeof(normjit_norm_args),
                   "the tail must follow the struct directly");

    memset(&n, 0, sizeof n);
    n.a = base_args();
    n.a.struct_size = sizeof n;
    n.a.rows = 0;
    assert_int_equal(normjit_rmsnorm_fwd(ctx, &n.a, NULL), NORMJIT_OK);
    n.tail[1] = 1;
    assert_int_equal(normjit_rmsnorm_fwd(ctx, &n.a, NULL), NORMJIT_EUNSUPPORTED);
    assert_non_null(strstr(normjit_last_error(), "does not know"));

    memset(&no, 0, sizeof no);
    no.o = options(0);
    no.o.struct_size = sizeof no;
    assert_int_equal(nj_ctx_create_with(&other, &no.o, &drv, &nvrtc), NORMJIT_OK);
    normjit_ctx_destroy(other);
    no.tail[0] = 0x100;
    assert_int_equal(nj_ctx_create_with(&other, &no.o, &drv, &nvrtc), NORMJIT_EUNSUPPORTED);
    assert_null(other);

    assert_int_equal(fake_drv.launches, 0);
    normjit_ctx_destroy(ctx);
}

static void test_status_strings(void **state)
{
    static const struct {
        int value;
        const char *name;
    } statuses[] = {
#define STATUS_ROW(name, value, msg) {NORMJIT_##name, "NORMJIT_" #name},
        NORMJIT_STATUS_MAP(STATUS_ROW)
#undef STATUS_ROW
    };
    const size_t n = sizeof statuses / sizeof statuses[0];
    static const int unknown[] = {1, 42, NORMJIT_STATUS_MIN_ - 1, -1000, INT32_MIN};
    size_t i, j;
    int lowest = 0;
    (void)state;

    for (i = 0; i < n; i++) {
        const char *msg = normjit_strerror(statuses[i].value);
        assert_non_null(msg);
        assert_true(msg[0] != '\0');
        assert_string_not_equal(msg, "unknown status");
        assert_string_equal(normjit_status_name(statuses[i].value), statuses[i].name);
        for (j = 0; j < i; j++) {
            assert_int_not_equal(statuses[i].value, statuses[j].value);
            assert_string_not_equal(msg, normjit_strerror(statuses[j].value));
            assert_string_not_equal(statuses[i].name, normjit_status_name(statuses[j].value));
        }
        if (statuses[i].value < lowest)
            lowest = statuses[i].value;
    }
    assert_int_equal(lowest, NORMJIT_STATUS_MIN_);
    for (i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        assert_string_equal(normjit_strerror(unknown[i]), "unknown status");
        assert_string_equal(normjit_status_name(unknown[i]), "NORMJIT_UNKNOWN");
    }
}

static void test_version(void **state)
{
    char expect[32];
    (void)state;
    assert_int_equal(normjit_version(), NORMJIT_VERSION_HEX);
    assert_int_equal(NORMJIT_VERSION_HEX, NORMJIT_VERSION_MAJOR * 10000 +
                                              NORMJIT_VERSION_MINOR * 100 +
                                              NORMJIT_VERSION_PATCH);
    snprintf(expect, sizeof expect, "%d.%d.%d", NORMJIT_VERSION_MAJOR, NORMJIT_VERSION_MINOR,
             NORMJIT_VERSION_PATCH);
    assert_string_equal(normjit_version_string(), expect);
    assert_string_equal(NORMJIT_VERSION_STRING, expect);
    assert_string_equal(NJ_PROJECT_VERSION, expect);
}

static void test_destroy_null(void **state)
{
    (void)state;
    normjit_ctx_destroy(NULL);
    assert_null(normjit_ctx_cache_dir(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_invalid_args_rejected_without_launch),
        cmocka_unit_test(test_valid_call_launches_once_per_kernel),
        cmocka_unit_test(test_alignment_picks_vector_width),
        cmocka_unit_test(test_zero_rows_is_a_noop),
        cmocka_unit_test(test_compile_error_carries_nvrtc_log),
        cmocka_unit_test(test_compile_only_context_cannot_launch),
        cmocka_unit_test(test_wrong_current_context),
        cmocka_unit_test(test_capture_without_prepared_kernel),
        cmocka_unit_test(test_prepare_rejects_bad_args),
        cmocka_unit_test(test_prepare_then_launch),
        cmocka_unit_test(test_ctx_create_failures),
        cmocka_unit_test(test_newer_struct_size),
        cmocka_unit_test(test_status_strings),
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_destroy_null),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
