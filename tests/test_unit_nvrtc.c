/*
 * The kernel templates through the real NVRTC: every family of knobs must
 * compile to a CUBIN for sm_80 and sm_90 (so a template change that breaks
 * one combination fails here, on a machine without a GPU), and an
 * architecture NVRTC does not know falls back to PTX.
 *
 * Also, without NVRTC: every heuristic plan over a sweep of hidden sizes is
 * legal, since a launch compiles whatever the heuristic picks.
 */
#include "compiler.h"
#include "plan.h"
#include "args.h"
#include "launch.h"
#include "render.h"
#include "templates.h"

#include <stdio.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#define RMS NORMJIT_OP_RMSNORM
#define LN NORMJIT_OP_LAYERNORM
#define F32 NORMJIT_DTYPE_F32
#define F16 NORMJIT_DTYPE_F16
#define BF16 NORMJIT_DTYPE_BF16
#define REG NJ_STORAGE_REG
#define STREAM NJ_STORAGE_STREAM
#define STAGED NJ_STORAGE_STAGED

#define ADD_RMS NORMJIT_OP_ADD_RMSNORM
#define ADD_LN NORMJIT_OP_ADD_LAYERNORM
#define QK NORMJIT_OP_QK_RMSNORM
#define E4M3 NORMJIT_DTYPE_FP8_E4M3
#define E5M2 NORMJIT_DTYPE_FP8_E5M2
#define I8 NORMJIT_DTYPE_INT8
#define TENSOR NORMJIT_QUANT_TENSOR
#define TOKEN NORMJIT_QUANT_TOKEN
#define GROUP NORMJIT_QUANT_GROUP
#define LLAMA NORMJIT_CAST_LLAMA
#define GEMMA NORMJIT_CAST_GEMMA

/* Knobs in the order nj_variant_describe prints them. */
#define V(op, x, y, w, hidden, vec, tpr, rpc, cluster, occ, storage) \
    {{op, x, y, w, 0, 0, 0, 0, 0, hidden}, {vec, tpr, rpc, cluster, storage, occ, 0}}
/* The same with an epilogue: residual dtype, quant mode, group, pow2, cast. */
#define EV(op, x, y, w, r, quant, group, pow2, cast, hidden, vec, tpr, rpc, cluster, occ, storage) \
    {{op, x, y, w, r, quant, group, pow2, cast, hidden}, {vec, tpr, rpc, cluster, storage, occ, 0}}
/* The same, reading the weights with the row (wload=early). */
#define EVE(op, x, y, w, r, quant, group, pow2, cast, hidden, vec, tpr, rpc, cluster, occ) \
    {{op, x, y, w, r, quant, group, pow2, cast, hidden},                                   \
     {vec, tpr, rpc, cluster, NJ_STORAGE_REG, occ, NJ_WLOAD_EARLY}}

static const nj_nvrtc *nvrtc;
static const nj_templates *templates;
static nj_target sm80, sm90;

/* Compile `v` for `t`; fail the test unless it gives an image of the right kind naming the kernel. */
static void compile_variant(const nj_target *t, const nj_variant *v)
{
    char name[NJ_KERNEL_NAME_MAX];
    nj_buf src = {0}, image = {0};
    int status;

    assert_int_equal(nj_render(templates, v, &src, name), NORMJIT_OK);
    status = nj_compile(nvrtc, t, src.data, name, &image);
    if (status != NORMJIT_OK)
        fail_msg("%s for %s: %s: %s", name, t->dir_name, normjit_status_name(status),
                 normjit_last_error());
    if (t->cubin) {
        assert_true(image.len > 4);
        if (memcmp(image.data, "\x7f" "ELF", 4))
            fail_msg("%s for %s: not an ELF image", name, t->dir_name);
    } else {
        /* Text up to the end: NVRTC counts PTX's terminating NUL in its size. */
        assert_true(strlen(image.data) + 1 >= image.len);
        if (strncmp(image.data, "//", 2) && !strstr(image.data, ".version"))
            fail_msg("%s for %s: not PTX: %.80s", name, t->dir_name, image.data);
    }
    /* The kernel's symbol is in the image under its unmangled (extern "C") name. */
    if (!memmem(image.data, image.len, name, strlen(name)))
        fail_msg("%s for %s: the image lacks the kernel's name", name, t->dir_name);
    nj_buf_free(&src);
    nj_buf_free(&image);
}

static void test_targets(void **state)
{
    nj_target t;
    (void)state;
    assert_int_equal(sm80.arch, 80);
    assert_int_equal(sm80.cubin, 1);
    assert_string_equal(sm80.dir_name, "sm_80");
    assert_string_equal(sm80.options[0], "--gpu-architecture=sm_80");
    assert_int_equal(sm90.cubin, 1);
    assert_string_equal(sm90.dir_name, "sm_90");
    assert_true(sm90.nvrtc_major >= 12);
    assert_true(sm90.n_options >= 1 && sm90.n_options <= NJ_MAX_OPTIONS);

    /* Newer than anything NVRTC knows: PTX for the newest architecture it knows. */
    assert_int_equal(nj_target_init(&t, nvrtc, 200), NORMJIT_OK);
    assert_int_equal(t.cubin, 0);
    assert_int_equal(strncmp(t.dir_name, "compute_", 8), 0);
    assert_true(t.arch >= 90 && t.arch < 200);
    assert_non_null(strstr(t.options[0], "compute_"));

    /* Older than anything it knows: no target. */
    assert_int_equal(nj_target_init(&t, nvrtc, 30), NORMJIT_EUNSUPPORTED);
    assert_non_null(strstr(normjit_last_error(), "sm_30"));
}

static nvrtcResult version_12_3(int *major, int *minor)
{
    *major = 12;
    *minor = 3;
    return NVRTC_SUCCESS;
}

static int has_option(const nj_target *t, const char *option)
{
    int i;
    for (i = 0; i < t->n_options; i++)
        if (!strcmp(t->options[i], option))
            return 1;
    return 0;
}

/* -minimal (the built-in header without textures, runtime API and device-side launch) from
   NVRTC 12.4 on, which knows it; an older NVRTC would refuse every compile with it. */
static void test_minimal_option_by_version(void **state)
{
    nj_nvrtc old = *nvrtc;
    nj_target t;
    (void)state;
    assert_int_equal(has_option(&sm90, "-minimal"),
                     sm90.nvrtc_major > 12 || (sm90.nvrtc_major == 12 && sm90.nvrtc_minor >= 4));
    old.version = version_12_3;
    assert_int_equal(nj_target_init(&t, &old, 90), NORMJIT_OK);
    assert_false(has_option(&t, "-minimal"));
    assert_true(has_option(&t, "-default-device"));
}

/* One line per family of knobs; `min_arch` 90 marks variants that are legal on sm_90 only. */
static const struct {
    nj_variant v;
    int min_arch;
} families[] = {
    {V(RMS, F16, F16, F16, 4096, 8, 128, 1, 1, 0, REG), 80},
    {V(RMS, BF16, BF16, F32, 4096, 8, 64, 2, 1, 8, REG), 80},
    {V(RMS, F32, F32, F32, 1, 1, 1, 32, 1, 0, REG), 80},
    {V(RMS, F16, F32, F16, 7, 1, 8, 16, 1, 0, REG), 80},
    {V(RMS, F32, F16, F32, 127, 1, 32, 4, 1, 4, REG), 80},
    {V(RMS, BF16, F16, BF16, 4098, 2, 64, 2, 1, 0, REG), 80},
    {V(RMS, F16, BF16, F32, 1028, 4, 16, 8, 1, 6, REG), 80},
    {V(RMS, F32, BF16, F32, 64, 4, 2, 64, 1, 0, REG), 80},
    {V(RMS, BF16, BF16, BF16, 65536, 8, 1024, 1, 1, 0, STREAM), 80},
    {V(RMS, F32, F32, F32, 100000, 4, 1024, 1, 1, 0, STREAM), 80},
    {V(RMS, F16, F16, F16, 65536, 8, 512, 1, 2, 0, REG), 90},
    {V(RMS, F32, F32, F32, 100000, 1, 800, 1, 4, 0, REG), 90},
    {V(RMS, BF16, BF16, BF16, 100000, 8, 512, 1, 8, 0, REG), 90},
    {V(LN, F16, F16, F16, 4096, 8, 128, 1, 1, 4, REG), 80},
    {V(LN, F32, BF16, F32, 7, 1, 4, 32, 1, 0, REG), 80},
    {V(LN, F32, F32, F32, 1, 1, 1, 128, 1, 0, REG), 80},
    {V(LN, BF16, F32, BF16, 127, 1, 16, 8, 1, 2, REG), 80},
    {V(LN, F16, F16, F32, 4098, 2, 96, 1, 1, 0, REG), 80},
    {V(LN, BF16, BF16, BF16, 65536, 8, 1024, 1, 1, 0, STREAM), 80},
    {V(LN, F16, F16, F32, 100000, 8, 512, 1, 1, 0, STREAM), 80},
    {V(LN, F16, F16, F16, 65536, 8, 256, 1, 4, 0, REG), 90},
    /* Fused residual add, in registers and streamed, every residual dtype. */
    {EV(ADD_RMS, F16, F16, F16, F16, 0, 0, 0, 0, 4096, 8, 128, 1, 1, 0, REG), 80},
    {EV(ADD_RMS, BF16, BF16, F32, F32, 0, 0, 0, 0, 4098, 2, 128, 1, 1, 0, REG), 80},
    {EV(ADD_RMS, F32, F16, F16, F16, 0, 0, 0, 0, 100000, 4, 1024, 1, 1, 0, STREAM), 80},
    /* An fp32 x of a bf16 residual moves 8 floats per vector (two 16-byte loads), so the
       fused op reduces with the plain op's width. */
    {EV(ADD_RMS, F32, BF16, BF16, BF16, 0, 0, 0, 0, 4096, 8, 128, 1, 1, 0, REG), 80},
    {EV(ADD_LN, F32, BF16, BF16, BF16, 0, 0, 0, 0, 131072, 8, 1024, 1, 1, 0, STREAM), 80},
    {EV(ADD_RMS, BF16, BF16, BF16, BF16, 0, 0, 0, 0, 131072, 8, 1024, 1, 2, 0, REG), 90},
    {EV(ADD_LN, F16, F16, F16, F16, 0, 0, 0, 0, 4096, 8, 128, 1, 1, 0, REG), 80},
    {EV(ADD_LN, BF16, BF16, BF16, BF16, 0, 0, 0, 0, 65536, 8, 1024, 1, 1, 0, STREAM), 80},
    /* Quantized outputs: every mode and code dtype; fp8 on sm_80 converts in software. */
    {EV(RMS, F16, E4M3, F16, 0, TENSOR, 0, 0, 0, 4096, 8, 128, 1, 1, 0, REG), 80},
    {EV(RMS, BF16, E5M2, BF16, 0, TOKEN, 0, 0, 0, 4096, 8, 128, 1, 1, 0, REG), 80},
    {EV(RMS, BF16, I8, BF16, 0, TOKEN, 0, 0, 0, 5120, 8, 160, 1, 1, 0, REG), 80},
    {EV(RMS, BF16, E4M3, BF16, 0, GROUP, 128, 0, 0, 4096, 8, 128, 1, 1, 0, REG), 80},
    {EV(RMS, BF16, E4M3, F32, 0, GROUP, 64, 1, 0, 7168, 8, 224, 1, 1, 0, REG), 80},
    {EV(RMS, F16, E4M3, F16, 0, GROUP, 128, 0, 0, 512, 8, 4, 32, 1, 0, REG), 80},
    {EV(LN, F16, I8, F16, 0, TENSOR, 0, 0, 0, 2880, 8, 128, 1, 1, 0, REG), 80},
    {EV(LN, BF16, E4M3, BF16, 0, TOKEN, 0, 0, 0, 65536, 8, 1024, 1, 1, 0, STREAM), 80},
    {EV(RMS, BF16, E4M3, BF16, 0, GROUP, 128, 1, 0, 131072, 8, 1024, 1, 1, 0, STREAM), 80},
    {EV(RMS, BF16, E4M3, BF16, 0, GROUP, 128, 0, 0, 65536, 8, 512, 1, 2, 0, REG), 90},
    {EV(RMS, BF16, E4M3, BF16, 0, GROUP, 128, 0, 0, 131072, 1, 32, 1, 1, 0, STREAM), 80},
    {EV(ADD_RMS, BF16, E4M3, BF16, BF16, TOKEN, 0, 0, 0, 4096, 8, 128, 1, 1, 0, REG), 80},
    {EV(ADD_LN, F16, E4M3, F16, F16, GROUP, 128, 0, 0, 8192, 8, 256, 1, 1, 0, REG), 80},
    /* Cast modes. */
    {EV(RMS, BF16, BF16, BF16, 0, 0, 0, 0, LLAMA, 4096, 8, 128, 1, 1, 0, REG), 80},
    {EV(RMS, BF16, BF16, BF16, 0, 0, 0, 0, GEMMA, 2304, 8, 96, 1, 1, 0, REG), 80},
    {EV(ADD_LN, F16, F16, F16, F16, 0, 0, 0, LLAMA, 65536, 8, 1024, 1, 1, 0, STREAM), 80},
    {EV(ADD_RMS, BF16, E4M3, BF16, BF16, TOKEN, 0, 0, LLAMA, 4096, 8, 128, 1, 1, 0, REG), 80},
    /* Weights read with the row (the decode bucket's kernels). */
    {EVE(RMS, BF16, BF16, BF16, 0, 0, 0, 0, 0, 4096, 8, 256, 1, 1, 0), 80},
    {EVE(LN, F16, F16, F16, 0, 0, 0, 0, 0, 2880, 8, 128, 1, 1, 0), 80},
    {EVE(ADD_LN, BF16, BF16, BF16, BF16, 0, 0, 0, 0, 8192, 8, 512, 1, 1, 0), 80},
    {EVE(RMS, BF16, E4M3, BF16, 0, GROUP, 128, 0, 0, 4096, 8, 128, 1, 1, 0), 80},
    {EVE(ADD_RMS, BF16, I8, BF16, BF16, TOKEN, 0, 0, LLAMA, 7, 1, 8, 16, 1, 0), 80},
    {EVE(QK, BF16, BF16, BF16, 0, 0, 0, 0, GEMMA, 128, 8, 16, 8, 1, 0), 80},
    {EVE(LN, BF16, BF16, BF16, 0, 0, 0, 0, 0, 65536, 8, 256, 1, 4, 0), 90},
    /* Staged storage: the row copied ahead into shared memory (4, 8 and 16-byte vectors,
       several rows per CTA, clusters, the fused add's two sources, quantized outputs). */
    {V(RMS, BF16, BF16, BF16, 32768, 8, 1024, 1, 1, 0, STAGED), 80},
    {V(RMS, F32, F32, F32, 4098, 1, 1024, 1, 1, 0, STAGED), 80},
    {V(LN, F16, F16, F16, 4096, 4, 128, 2, 1, 0, STAGED), 80},
    {V(RMS, BF16, BF16, BF16, 131072, 8, 1024, 1, 8, 0, STAGED), 90},
    {V(LN, BF16, BF16, BF16, 262144, 8, 1024, 1, 8, 0, STAGED), 90},
    {EV(ADD_RMS, F32, BF16, BF16, BF16, 0, 0, 0, 0, 65536, 4, 1024, 1, 8, 0, STAGED), 90},
    {EV(ADD_LN, F16, F16, F16, F16, 0, 0, 0, 0, 16384, 8, 512, 1, 1, 2, STAGED), 80},
    {EV(RMS, BF16, E4M3, BF16, 0, GROUP, 128, 0, 0, 32768, 8, 1024, 1, 1, 0, STAGED), 80},
    {EV(ADD_RMS, BF16, I8, BF16, BF16, TOKEN, 0, 0, LLAMA, 65536, 8, 512, 1, 4, 0, STAGED), 90},
    {{{RMS, BF16, BF16, BF16, 0, 0, 0, 0, 0, 4096}, {8, 256, 1, 1, STAGED, 0, NJ_WLOAD_EARLY}}, 80},
    /* QK-norm over head_dim. */
    {V(QK, BF16, BF16, BF16, 128, 8, 16, 8, 1, 0, REG), 80},
    {V(QK, F16, F16, F32, 64, 8, 8, 16, 1, 0, REG), 80},
    {EV(QK, BF16, BF16, BF16, 0, 0, 0, 0, LLAMA, 256, 8, 32, 4, 1, 0, REG), 80},
};

static void test_compile_families(void **state)
{
    size_t i;
    (void)state;
    for (i = 0; i < sizeof families / sizeof families[0]; i++) {
        const nj_variant *v = &families[i].v;
        char name[NJ_KERNEL_NAME_MAX];
        nj_variant_name(v, name, sizeof name);
        if (nj_variant_check(v, 90) != NORMJIT_OK)
            fail_msg("%s is not legal on sm_90: %s", name, normjit_last_error());
        if ((nj_variant_check(v, 80) == NORMJIT_OK) != (families[i].min_arch == 80))
            fail_msg("%s: legality on sm_80 differs from the table", name);
        compile_variant(&sm90, v);
        if (families[i].min_arch == 80)
            compile_variant(&sm80, v);
    }
}

/* What a launch compiles for odd and common sizes: the heuristic's plans, for both architectures. */
static void test_compile_heuristic_plans(void **state)
{
    static const int64_t hidden[] = {1, 7, 127, 4096, 65536, 100000};
    static const int dtypes[][3] = {{F32, F32, F32}, {F16, F16, F16}, {BF16, BF16, F32}, {F16, F32, F16}};
    size_t h, d;
    int op;
    (void)state;
    for (op = RMS; op <= LN; op++)
        for (h = 0; h < sizeof hidden / sizeof hidden[0]; h++)
            for (d = 0; d < sizeof dtypes / sizeof dtypes[0]; d++) {
                nj_request r;
                nj_plan p80, p90;
                memset(&r, 0, sizeof r);
                r.s.op = op;
                r.s.tx = dtypes[d][0];
                r.s.ty = dtypes[d][1];
                r.s.tw = dtypes[d][2];
                r.s.hidden = hidden[h];
                r.bucket = NJ_BUCKET_PREFILL;
                r.vec = nj_widest_vec(&r.s);
                nj_plan_heuristic(&r, 80, &p80);
                nj_plan_heuristic(&r, 90, &p90);
                compile_variant(&sm80, &p80.v);
                compile_variant(&sm90, &p90.v);
            }
}

static void test_ptx_fallback_compiles(void **state)
{
    const nj_variant v = V(RMS, F16, F16, F16, 4096, 8, 128, 1, 1, 0, REG);
    nj_target t;
    (void)state;
    assert_int_equal(nj_target_init(&t, nvrtc, 200), NORMJIT_OK);
    assert_int_equal(t.cubin, 0);
    compile_variant(&t, &v);
}

#define NJ_PROBE_MAX 64

/*
 * The constants a PTX kernel stores to out[0..max): lines of the form
 * "mov.u64 %rdN, VALUE;" (or mov.b64, as newer PTX writes it) and "st.global.u64 [%rdM+OFFSET], %rdN;" (OFFSET
 * 8 * index, absent for index 0). Slots never stored stay -1.
 */
static void stored_values(const char *ptx, long long *out, int max)
{
    long long regs[4096];
    const char *line = ptx;
    int i;
    for (i = 0; i < 4096; i++)
        regs[i] = -1;
    for (i = 0; i < max; i++)
        out[i] = -1;
    while (line && *line) {
        const char *end = strchr(line, '\n');
        char text[160];
        int reg, base, offset = 0;
        long long value;
        snprintf(text, sizeof text, "%.*s", end ? (int)(end - line) : (int)strlen(line), line);
        if ((sscanf(text, " mov.u64 %%rd%d, %lld;", &reg, &value) == 2 ||
             sscanf(text, " mov.b64 %%rd%d, %lld;", &reg, &value) == 2) &&
            reg >= 0 && reg < 4096)
            regs[reg] = value;
        else if ((sscanf(text, " st.global.u64 [%%rd%d+%d], %%rd%d;", &base, &offset, &reg) == 3 ||
                  (offset = 0, sscanf(text, " st.global.u64 [%%rd%d], %%rd%d;", &base, &reg) == 2)) &&
                 offset % 8 == 0 && offset / 8 < max && reg >= 0 && reg < 4096)
            out[offset / 8] = regs[reg];
        line = end ? end + 1 : NULL;
    }
}

/*
 * The parameter block has one layout on both sides: NVRTC compiles
 * kernel_src/params.h into a probe kernel that stores every field's offset
 * and the struct's size, and each must equal what the C compiler gave the
 * same struct. Reordering or retyping a field on one side only (or a padding
 * difference) fails here, on the CPU. (NVRTC has no constant offsetof, so
 * the offsets are read from the PTX the probe compiles to.)
 */
static void test_params_layout_matches_nvrtc(void **state)
{
    const nj_template_file *params = nj_template_find(templates, "params.h");
    static const size_t offsets[] = {
#define NJ_OFFSET_(type, name) offsetof(nj_params, name),
        NJ_PARAM_FIELDS(NJ_OFFSET_)
#undef NJ_OFFSET_
    };
    static const char *const names[] = {
#define NJ_NAME_(type, name) #name,
        NJ_PARAM_FIELDS(NJ_NAME_)
#undef NJ_NAME_
    };
    const int n = (int)(sizeof offsets / sizeof offsets[0]);
    nj_buf src = {0}, ptx = {0};
    long long got[NJ_PROBE_MAX];
    nj_target t;
    int i;
    (void)state;
    assert_non_null(params);
    nj_buf_append(&src, params->text, params->len);
    nj_buf_puts(&src, "\nextern \"C\" __global__ void nj_abi_probe(long long *out)\n{\n"
                      "    nj_params p;\n    int i = 0;\n");
#define NJ_PROBE_(type, name)                                                               \
    nj_buf_puts(&src, "    out[i++] = (long long)((const char *)&p." #name                  \
                      " - (const char *)&p);\n");
    NJ_PARAM_FIELDS(NJ_PROBE_)
#undef NJ_PROBE_
    nj_buf_puts(&src, "    out[i++] = (long long)sizeof(nj_params);\n}\n");
    assert_int_equal(nj_buf_status(&src), NORMJIT_OK);
    assert_int_equal(nj_target_init(&t, nvrtc, 200), NORMJIT_OK); /* PTX, which we can read */
    assert_int_equal(t.cubin, 0);
    if (nj_compile(nvrtc, &t, src.data, "nj_abi_probe", &ptx) != NORMJIT_OK)
        fail_msg("the probe does not compile: %s", normjit_last_error());
    assert_true(n + 1 <= NJ_PROBE_MAX);
    if (getenv("NJ_DUMP_PTX"))
        fputs(ptx.data, stderr);
    stored_values(ptx.data, got, NJ_PROBE_MAX);
    for (i = 0; i < n; i++)
        if (got[i] != (long long)offsets[i])
            fail_msg("field %s: offset %zu in C, %lld for NVRTC", names[i], offsets[i], got[i]);
    if (got[n] != (long long)sizeof(nj_params))
        fail_msg("sizeof(nj_params): %zu in C, %lld for NVRTC", sizeof(nj_params), got[n]);
    nj_buf_free(&src);
    nj_buf_free(&ptx);
}

static void test_compile_error_reports_log(void **state)
{
    nj_buf image = {0};
    (void)state;
    assert_int_equal(nj_compile(nvrtc, &sm90, "extern \"C\" __global__ void broken() { int x = ; }",
                                "broken", &image),
                     NORMJIT_ECOMPILE);
    assert_non_null(strstr(normjit_last_error(), "broken"));
    assert_non_null(strstr(normjit_last_error(), "error"));
    assert_int_equal(image.len, 0);
    nj_buf_free(&image);
}

/* ------------------------------------------------------------------------ */
/* Heuristic plans are always legal (no NVRTC needed).                       */

static int failures;

static void check_plan(const nj_request *r, int arch)
{
    nj_plan p;
    nj_request other = *r;
    nj_plan q;
    nj_plan_heuristic(r, arch, &p);
    if (!nj_spec_equal(&p.v.s, &r->s) || p.v.k.vec != r->vec) {
        if (failures++ < 10)
            print_message("plan for hidden %lld vec %d does not answer the request\n",
                          (long long)r->s.hidden, r->vec);
        return;
    }
    if (nj_variant_check(&p.v, arch) != NORMJIT_OK) {
        char name[NJ_KERNEL_NAME_MAX];
        nj_variant_name(&p.v, name, sizeof name);
        if (failures++ < 10)
            print_message("heuristic plan %s is illegal on sm_%d: %s\n", name, arch,
                          normjit_last_error());
        return;
    }
    /* Batch invariance: another bucket keeps the reduction knobs. */
    other.bucket = (r->bucket + 1) % NJ_BUCKETS;
    nj_plan_heuristic(&other, arch, &q);
    if (!nj_knobs_same_layout(&q.v.k, &p.v.k)) {
        if (failures++ < 10)
            print_message("hidden %lld: the reduction knobs depend on the bucket\n",
                          (long long)r->s.hidden);
    }
}

/* Every vector width the request may carry for this hidden size and input dtype. */
static void check_all_vecs(int op, int tx, int ty, int tw, int64_t hidden)
{
    int vec, arch;
    for (vec = 1; vec * nj_dtype_size(tx) <= NJ_MAX_ACCESS_BYTES; vec *= 2) {
        nj_request r;
        memset(&r, 0, sizeof r);
        r.s.op = op;
        r.s.tx = tx;
        r.s.ty = ty;
        r.s.tw = tw;
        r.s.hidden = hidden;
        r.vec = vec;
        r.bucket = NJ_BUCKET_DECODE;
        if (hidden % vec)
            break;
        for (arch = 80; arch <= 90; arch += 10)
            check_plan(&r, arch);
    }
}

static void test_heuristic_plans_legal(void **state)
{
    static const int64_t named[] = {2880, 5120, 7168, 14336, 100000, 1 << 20, 3 << 20, (1 << 24) - 1, 1 << 24};
    static const int dtypes[] = {F32, F16, BF16};
    int64_t h;
    size_t i;
    int op, x, y, w;
    (void)state;
    failures = 0;
    /* Every size up to 70000 with same-dtype tensors... */
    for (op = RMS; op <= LN; op++)
        for (x = 0; x < 3; x++)
            for (h = 1; h <= 70000; h++)
                check_all_vecs(op, dtypes[x], dtypes[x], dtypes[x], h);
    /* ...and the named sizes with every dtype combination. */
    for (op = RMS; op <= LN; op++)
        for (i = 0; i < sizeof named / sizeof named[0]; i++)
            for (x = 0; x < 3; x++)
                for (y = 0; y < 3; y++)
                    for (w = 0; w < 2; w++)
                        check_all_vecs(op, dtypes[x], dtypes[y], w ? F32 : dtypes[x], named[i]);
    assert_int_equal(failures, 0);
}

int main(void)
{
    const struct CMUnitTest nvrtc_tests[] = {
        cmocka_unit_test(test_targets),
        cmocka_unit_test(test_minimal_option_by_version),
        cmocka_unit_test(test_compile_families),
        cmocka_unit_test(test_compile_heuristic_plans),
        cmocka_unit_test(test_ptx_fallback_compiles),
        cmocka_unit_test(test_compile_error_reports_log),
        cmocka_unit_test(test_params_layout_matches_nvrtc),
    };
    const struct CMUnitTest plan_tests[] = {
        cmocka_unit_test(test_heuristic_plans_legal),
    };
    int failed = cmocka_run_group_tests(plan_tests, NULL, NULL);

    if (nj_nvrtc_load(&nvrtc) != NORMJIT_OK) {
        /* The compile tests need libnvrtc; the plan tests above ran without it. */
        printf("skipping the NVRTC tests: %s\n", normjit_last_error());
        return failed ? failed : 77;
    }
    if (nj_templates_get(&templates) != NORMJIT_OK ||
        nj_target_init(&sm80, nvrtc, 80) != NORMJIT_OK ||
        nj_target_init(&sm90, nvrtc, 90) != NORMJIT_OK) {
        printf("no templates, or NVRTC cannot target sm_80 and sm_90: %s\n", normjit_last_error());
        return 1;
    }
    return failed + cmocka_run_group_tests(nvrtc_tests, NULL, NULL);
}
