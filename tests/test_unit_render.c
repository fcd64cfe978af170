/*
 * Variants and their kernel source: rendering (render.h), the describe/parse
 * text form and the legality check (variant.h), and the NORMJIT_KERNEL_DIR
 * template override.
 *
 * Templates load once per process, so the override is checked in child
 * processes that re-execute this binary with the variable set.
 */
#include "render.h"
#include "templates.h"
#include "variant.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

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

/* Knobs in the order nj_variant_describe prints them. */
#define V(op, x, y, w, hidden, vec, tpr, rpc, cluster, occ, storage) \
    {{op, x, y, w, 0, 0, 0, 0, 0, hidden}, {vec, tpr, rpc, cluster, storage, occ, 0}}

static const char *self_path;

static const nj_variant variants[] = {
    V(RMS, F16, F16, F16, 4096, 8, 128, 1, 1, 0, REG),
    V(RMS, BF16, F32, F32, 7, 1, 8, 16, 1, 4, REG),
    V(RMS, F32, F16, F32, 65536, 4, 512, 1, 4, 0, REG),
    V(LN, F16, BF16, F16, 100000, 8, 1024, 1, 1, 0, STREAM),
    V(LN, F32, F32, F32, 1, 1, 1, 128, 1, 8, REG),
    V(LN, BF16, BF16, F32, 2880, 4, 32, 4, 1, 2, REG),
    V(RMS, BF16, BF16, BF16, 131072, 8, 1024, 1, 8, 0, STAGED),
};
#define N_VARIANTS (sizeof variants / sizeof variants[0])

static const char *ctype(int dtype)
{
    return dtype == F16 ? "nj_f16" : dtype == BF16 ? "nj_bf16" : "float";
}

/* Fail unless `source` has the line "#define <name> <value>" ahead of common.cuh. */
static void expect_define(const char *source, const char *common_at, const char *name,
                          const char *value)
{
    char line[256];
    const char *at;
    snprintf(line, sizeof line, "\n#define %s %s\n", name, value);
    at = strstr(source, line);
    if (!at || at > common_at)
        fail_msg("missing or misplaced \"#define %s %s\" in:\n%.600s", name, value, source);
}

static void test_render_puts_knobs_and_templates_in_order(void **state)
{
    const nj_templates *t;
    const nj_template_file *common;
    nj_buf src = {0};
    size_t i;
    (void)state;

    assert_int_equal(nj_templates_get(&t), NORMJIT_OK);
    common = nj_template_find(t, "common.cuh");
    assert_non_null(common);
    assert_true(common->len > 100);
    for (i = 0; i < N_VARIANTS; i++) {
        const nj_variant *v = &variants[i];
        const nj_template_file *op = nj_template_find(t, v->s.op == RMS ? "rmsnorm.cu" : "layernorm.cu");
        const nj_template_file *other = nj_template_find(t, v->s.op == RMS ? "layernorm.cu" : "rmsnorm.cu");
        char name[NJ_KERNEL_NAME_MAX], expect_name[NJ_KERNEL_NAME_MAX], num[32];
        const char *common_at, *op_at;

        assert_non_null(op);
        assert_non_null(other);
        assert_int_equal(nj_render(t, v, &src, name), NORMJIT_OK);
        assert_int_equal(strlen(src.data), src.len);
        nj_variant_name(v, expect_name, sizeof expect_name);
        assert_string_equal(name, expect_name);

        common_at = strstr(src.data, common->text);
        op_at = strstr(src.data, op->text);
        assert_non_null(common_at);
        assert_non_null(op_at);
        assert_true(common_at < op_at);
        assert_null(strstr(src.data, other->text));

        expect_define(src.data, common_at, "NJ_KERNEL_NAME", name);
        expect_define(src.data, common_at, "NJ_TX", ctype(v->s.tx));
        expect_define(src.data, common_at, "NJ_TY", ctype(v->s.ty));
        expect_define(src.data, common_at, "NJ_TW", ctype(v->s.tw));
        snprintf(num, sizeof num, "%lld", (long long)v->s.hidden);
        expect_define(src.data, common_at, "NJ_H", num);
        snprintf(num, sizeof num, "%d", v->k.vec);
        expect_define(src.data, common_at, "NJ_VEC", num);
        snprintf(num, sizeof num, "%d", v->k.tpr);
        expect_define(src.data, common_at, "NJ_TPR", num);
        snprintf(num, sizeof num, "%d", v->k.rpc);
        expect_define(src.data, common_at, "NJ_RPC", num);
        snprintf(num, sizeof num, "%d", v->k.cluster);
        expect_define(src.data, common_at, "NJ_CLUSTER", num);
        snprintf(num, sizeof num, "%d", v->k.occ);
        expect_define(src.data, common_at, "NJ_MIN_CTAS", num);
        snprintf(num, sizeof num, "%d", v->k.storage);
        expect_define(src.data, common_at, "NJ_STORAGE", num);
    }
    nj_buf_free(&src);
}

static void test_variant_name(void **state)
{
    const nj_variant v = V(RMS, F16, F16, F16, 4096, 8, 128, 1, 1, 0, REG);
    const nj_variant w = V(LN, BF16, F32, F32, 100000, 8, 1024, 1, 1, 3, STREAM);
    char name[NJ_KERNEL_NAME_MAX];
    (void)state;
    nj_variant_name(&v, name, sizeof name);
    assert_string_equal(name, "nj_rmsnorm_f16_f16_f16_h4096_v8_t128_r1_c1_o0_reg");
    nj_variant_name(&w, name, sizeof name);
    assert_string_equal(name, "nj_layernorm_bf16_f32_f32_h100000_v8_t1024_r1_c1_o3_stream");
    nj_variant_name(&variants[N_VARIANTS - 1], name, sizeof name);
    assert_string_equal(name, "nj_rmsnorm_bf16_bf16_bf16_h131072_v8_t1024_r1_c8_o0_staged");
}

static void test_describe_parse_round_trip(void **state)
{
    nj_buf text = {0}, again = {0};
    size_t i;
    (void)state;
    for (i = 0; i < N_VARIANTS; i++) {
        nj_variant parsed;
        nj_buf_reset(&text);
        nj_buf_reset(&again);
        nj_variant_describe(&variants[i], &text);
        assert_int_equal(nj_variant_parse(text.data, &parsed), NORMJIT_OK);
        assert_true(nj_variant_equal(&parsed, &variants[i]));
        nj_variant_describe(&parsed, &again);
        assert_string_equal(text.data, again.data);
    }
    nj_buf_free(&text);
    nj_buf_free(&again);
}

static void test_parse_accepts_any_order_and_spacing(void **state)
{
    const nj_variant expect = V(LN, BF16, BF16, F32, 2880, 4, 32, 4, 1, 2, REG);
    nj_variant v;
    (void)state;
    assert_int_equal(nj_variant_parse("  storage=reg occ=2 cluster=1 rpc=4 tpr=32 vec=4 "
                                      "hidden=2880  w=f32 y=bf16 x=bf16 op=layernorm ",
                                      &v),
                     NORMJIT_OK);
    assert_true(nj_variant_equal(&v, &expect));
}

#define GOOD "op=rmsnorm x=f16 y=f16 w=f16 hidden=4096 vec=8 tpr=128 rpc=1 cluster=1 occ=0"

static void test_parse_rejects_malformed(void **state)
{
    static const struct {
        const char *text, *message;
    } cases[] = {
        {"", "knob 'op' missing"},
        {GOOD, "knob 'storage' missing"},
        {"op=rmsnorm x=f16 y=f16 w=f16 vec=8 tpr=128 rpc=1 cluster=1 occ=0 storage=reg", "knob 'hidden' missing"},
        {GOOD " storage=reg tpr=64", "knob 'tpr' given twice"},
        {GOOD " storage=reg op=rmsnorm", "knob 'op' given twice"},
        {GOOD " storage=reg color=red", "unknown knob 'color'"},
        {GOOD " storage=reg =1", "unknown knob ''"},
        {GOOD " storage=reg junk", "expected key=value, got 'junk'"},
        {GOOD " storage=disk", "bad value 'disk' for knob 'storage'"},
        {"op=softmax x=f16 y=f16 w=f16 hidden=4096 vec=8 tpr=128 rpc=1 cluster=1 occ=0 storage=reg", "bad value 'softmax' for knob 'op'"},
        {"op=rmsnorm x=f64 y=f16 w=f16 hidden=4096 vec=8 tpr=128 rpc=1 cluster=1 occ=0 storage=reg", "bad value 'f64' for knob 'x'"},
        {"op=rmsnorm x=f16 y=f16 w=f16 hidden=0 vec=8 tpr=128 rpc=1 cluster=1 occ=0 storage=reg", "bad value '0' for knob 'hidden'"},
        {"op=rmsnorm x=f16 y=f16 w=f16 hidden=16777217 vec=8 tpr=128 rpc=1 cluster=1 occ=0 storage=reg", "bad value '16777217' for knob 'hidden'"},
        {"op=rmsnorm x=f16 y=f16 w=f16 hidden=4k vec=8 tpr=128 rpc=1 cluster=1 occ=0 storage=reg", "bad value '4k' for knob 'hidden'"},
        {"op=rmsnorm x=f16 y=f16 w=f16 hidden=4096 vec= tpr=128 rpc=1 cluster=1 occ=0 storage=reg", "bad value '' for knob 'vec'"},
        {"op=rmsnorm x=f16 y=f16 w=f16 hidden=4096 vec=8 tpr=2048 rpc=1 cluster=1 occ=0 storage=reg", "bad value '2048' for knob 'tpr'"},
        {"op=rmsnorm x=f16 y=f16 w=f16 hidden=4096 vec=8 tpr=128 rpc=-1 cluster=1 occ=0 storage=reg", "bad value '-1' for knob 'rpc'"},
        {"op=rmsnorm x=f16 y=f16 w=f16 hidden=4096 vec=8 tpr=128 rpc=1 cluster=1 occ=33 storage=reg", "bad value '33' for knob 'occ'"},
        {GOOD " storage=reg hidden=" "99999999999999999999999999999999999999999999999999999999999999999", "knob word too long"},
    };
    size_t i;
    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        nj_variant v;
        int status = nj_variant_parse(cases[i].text, &v);
        if (status != NORMJIT_EFORMAT || !strstr(normjit_last_error(), cases[i].message))
            fail_msg("\"%s\": got %s \"%s\", expected NORMJIT_EFORMAT with \"%s\"",
                     cases[i].text, normjit_status_name(status), normjit_last_error(),
                     cases[i].message);
    }
}

static void test_check(void **state)
{
    static const struct {
        nj_variant v;
        int arch, status;
        const char *message; /* expected in the last error when rejected */
    } cases[] = {
        {V(RMS, F16, F16, F16, 4096, 8, 128, 1, 1, 0, REG), 80, NORMJIT_OK, NULL},
        {V(RMS, F16, F16, F16, 65536, 8, 512, 1, 2, 0, REG), 90, NORMJIT_OK, NULL},
        {V(RMS, F32, F32, F32, 1, 1, 1, 32, 1, 0, REG), 80, NORMJIT_OK, NULL},
        {V(RMS, BF16, F16, F32, 7, 1, 8, 16, 1, 16, REG), 80, NORMJIT_OK, NULL},
        {V(LN, F16, F16, F16, 100000, 8, 1024, 1, 1, 0, STREAM), 80, NORMJIT_OK, NULL},
        {V(LN, F32, F32, F32, 4096, 4, 96, 1, 1, 0, REG), 80, NORMJIT_OK, NULL},
        {V(LN, F16, F16, F16, 4096, 8, 128, 8, 1, 2, REG), 90, NORMJIT_OK, NULL},
        {V(RMS, F16, F16, F16, 4096, 8, 48, 2, 1, 0, REG), 90, NORMJIT_EUNSUPPORTED, "tpr=48"},
        {V(RMS, F16, F16, F16, 4096, 8, 12, 8, 1, 0, REG), 90, NORMJIT_EUNSUPPORTED, "tpr=12"},
        {V(RMS, F16, F16, F16, 4096, 8, 512, 4, 1, 0, REG), 90, NORMJIT_EUNSUPPORTED, "tpr*rpc=2048"},
        {V(RMS, F16, F16, F16, 4096, 8, 16, 1, 1, 0, REG), 90, NORMJIT_EUNSUPPORTED, "tpr*rpc=16"},
        {V(RMS, F16, F16, F16, 65536, 8, 512, 1, 2, 0, REG), 80, NORMJIT_EUNSUPPORTED, "cluster=2 needs sm_90"},
        {V(RMS, F16, F16, F16, 65536, 8, 512, 2, 2, 0, REG), 90, NORMJIT_EUNSUPPORTED, "cluster=2 needs sm_90"},
        {V(RMS, F16, F16, F16, 65536, 8, 512, 1, 16, 0, REG), 90, NORMJIT_EUNSUPPORTED, "cluster=16 outside"},
        {V(RMS, F16, F16, F16, 8, 8, 32, 1, 2, 0, REG), 90, NORMJIT_EUNSUPPORTED, "exceeds the row's 1 vectors"},
        {V(RMS, F16, F16, F16, 4100, 8, 128, 1, 1, 0, REG), 90, NORMJIT_EUNSUPPORTED, "vec=8 must be a power of two dividing hidden (4100)"},
        {V(RMS, F16, F16, F16, 4104, 3, 128, 1, 1, 0, REG), 90, NORMJIT_EUNSUPPORTED, "vec=3"},
        {V(RMS, F32, F32, F32, 4096, 8, 128, 1, 1, 0, REG), 90, NORMJIT_EUNSUPPORTED, "vec=8"},
        {V(RMS, F16, F16, F16, 4096, 8, 128, 1, 1, 17, REG), 90, NORMJIT_EUNSUPPORTED, "occ=17 CTAs of 128 threads"},
        {V(RMS, F16, F16, F16, 65536, 8, 32, 1, 1, 0, REG), 90, NORMJIT_EUNSUPPORTED, "storage=reg would hold"},
        {V(RMS, F16, F16, BF16, 4096, 8, 128, 1, 1, 0, REG), 90, NORMJIT_EUNSUPPORTED, "weight dtype"},
        {V(RMS, F16, F16, F16, 0, 1, 128, 1, 1, 0, REG), 90, NORMJIT_EUNSUPPORTED, "hidden size 0"},
        {V(9, F16, F16, F16, 4096, 8, 128, 1, 1, 0, REG), 90, NORMJIT_EUNSUPPORTED, "unknown op"},
        {V(RMS, F16, F16, F16, 4096, 8, 128, 1, 1, 0, 3), 90, NORMJIT_EUNSUPPORTED, "unknown storage 3"},
        /* Staged storage: sm_80 up, 4 to 16-byte copies, two buffers within shared memory. */
        {V(RMS, BF16, BF16, BF16, 32768, 8, 1024, 1, 1, 0, STAGED), 80, NORMJIT_OK, NULL},
        {V(RMS, BF16, BF16, BF16, 131072, 8, 1024, 1, 4, 0, STAGED), 90, NORMJIT_OK, NULL},
        {V(RMS, BF16, BF16, BF16, 32768, 8, 1024, 1, 1, 0, STAGED), 75, NORMJIT_EUNSUPPORTED, "storage=staged needs sm_80"},
        {V(RMS, F16, F16, F16, 4097, 1, 1024, 1, 1, 0, STAGED), 90, NORMJIT_EUNSUPPORTED, "copies 4 to 16 bytes per vector (vec=1 gives 2 of x)"},
        {V(RMS, BF16, BF16, BF16, 65536, 8, 1024, 1, 1, 0, STAGED), 90, NORMJIT_EUNSUPPORTED, "needs 262144 bytes of shared memory per CTA (sm_90 allows 231424)"},
        {V(RMS, BF16, BF16, BF16, 32768, 8, 1024, 1, 1, 0, STAGED), 89, NORMJIT_EUNSUPPORTED, "needs 131072 bytes of shared memory per CTA (sm_89 allows 100352)"},
        {V(RMS, BF16, BF16, BF16, 65536, 8, 32, 1, 1, 0, STAGED), 90, NORMJIT_EUNSUPPORTED, "storage=staged would hold"},
        {V(RMS, BF16, BF16, BF16, 65536, 8, 1024, 1, 1, 0, STREAM), 90, NORMJIT_OK, NULL},
    };
    size_t i;
    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[NJ_KERNEL_NAME_MAX];
        int status = nj_variant_check(&cases[i].v, cases[i].arch);
        if (cases[i].v.s.op == RMS || cases[i].v.s.op == LN)
            nj_variant_name(&cases[i].v, name, sizeof name);
        else
            snprintf(name, sizeof name, "op %d", cases[i].v.s.op);
        if (status != cases[i].status ||
            (cases[i].message && !strstr(normjit_last_error(), cases[i].message)))
            fail_msg("case %zu (%s on sm_%d): got %s \"%s\", expected %s with \"%s\"", i, name,
                     cases[i].arch, normjit_status_name(status),
                     status ? normjit_last_error() : "", normjit_status_name(cases[i].status),
                     cases[i].message ? cases[i].message : "");
    }
}

/* ------------------------------------------------------------------------ */
/* NORMJIT_KERNEL_DIR                                                        */

#define MARKER "// kernel-dir override marker 7f3a"

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

/* Copy the embedded templates into `dir`, skipping `skip`, with MARKER appended to rmsnorm.cu. */
static void write_templates(const char *dir, const char *skip)
{
    int i;
    for (i = 0; i < nj_embedded_template_count; i++) {
        const nj_template_file *f = &nj_embedded_templates[i];
        char path[512];
        FILE *fp;
        if (skip && !strcmp(f->name, skip))
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, f->name);
        fp = fopen(path, "wb");
        assert_non_null(fp);
        assert_int_equal(fwrite(f->text, 1, f->len, fp), f->len);
        if (!strcmp(f->name, "rmsnorm.cu"))
            fputs("\n" MARKER "\n", fp);
        assert_int_equal(fclose(fp), 0);
    }
}

/* Run this binary as `self --kernel-dir-child MODE DIGEST` with NORMJIT_KERNEL_DIR=dir. */
static int run_child(const char *dir, const char *mode, const char *digest)
{
    int status;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setenv("NORMJIT_KERNEL_DIR", dir, 1);
        execl(self_path, self_path, "--kernel-dir-child", mode, digest, (char *)NULL);
        _exit(127);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

/* The child side: exit 0 if the override behaved as `mode` says, else print why and exit 1. */
static int kernel_dir_child(const char *mode, const char *embedded_digest)
{
    const char *dir = getenv("NORMJIT_KERNEL_DIR");
    const nj_templates *t = NULL;
    int status = nj_templates_get(&t);

    if (!dir)
        return 1;
    if (!strcmp(mode, "missing")) {
        if (status != NORMJIT_EIO || !strstr(normjit_last_error(), "layernorm.cu") ||
            !strstr(normjit_last_error(), "NORMJIT_KERNEL_DIR")) {
            fprintf(stderr, "missing template: got %s \"%s\"\n", normjit_status_name(status),
                    normjit_last_error());
            return 1;
        }
        return 0;
    }
    if (status != NORMJIT_OK) {
        fprintf(stderr, "override: %s\n", normjit_last_error());
        return 1;
    }
    if (strcmp(t->origin, dir) || !strcmp(t->digest, embedded_digest)) {
        fprintf(stderr, "override: origin %s, digest %s (embedded %s)\n", t->origin, t->digest,
                embedded_digest);
        return 1;
    }
    {
        const nj_variant v = V(RMS, F16, F16, F16, 4096, 8, 128, 1, 1, 0, REG);
        char name[NJ_KERNEL_NAME_MAX];
        nj_buf src = {0};
        int ok = nj_render(t, &v, &src, name) == NORMJIT_OK && strstr(src.data, MARKER);
        nj_buf_free(&src);
        if (!ok) {
            fprintf(stderr, "override: rendered source lacks the override's text\n");
            return 1;
        }
    }
    return 0;
}

static void test_kernel_dir_override(void **state)
{
    char good[] = "/tmp/normjit-test-kdir-XXXXXX", missing[] = "/tmp/normjit-test-kdir-XXXXXX";
    const nj_templates *t;
    char digest[40];
    (void)state;

    assert_int_equal(nj_templates_get(&t), NORMJIT_OK);
    assert_string_equal(t->origin, "embedded");
    snprintf(digest, sizeof digest, "%s", t->digest);
    assert_int_equal(strlen(digest), 32);
    assert_non_null(mkdtemp(good));
    assert_non_null(mkdtemp(missing));
    write_templates(good, NULL);
    write_templates(missing, "layernorm.cu");

    assert_int_equal(run_child(good, "good", digest), 0);
    assert_int_equal(run_child(missing, "missing", digest), 0);

    assert_int_equal(nftw(good, rm_entry, 8, FTW_DEPTH | FTW_PHYS), 0);
    assert_int_equal(nftw(missing, rm_entry, 8, FTW_DEPTH | FTW_PHYS), 0);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_puts_knobs_and_templates_in_order),
        cmocka_unit_test(test_variant_name),
        cmocka_unit_test(test_describe_parse_round_trip),
        cmocka_unit_test(test_parse_accepts_any_order_and_spacing),
        cmocka_unit_test(test_parse_rejects_malformed),
        cmocka_unit_test(test_check),
        cmocka_unit_test(test_kernel_dir_override),
    };
    if (argc == 4 && !strcmp(argv[1], "--kernel-dir-child"))
        return kernel_dir_child(argv[2], argv[3]);
    unsetenv("NORMJIT_KERNEL_DIR");
    self_path = strchr(argv[0], '/') ? argv[0] : "/proc/self/exe";
    return cmocka_run_group_tests(tests, NULL, NULL);
}
