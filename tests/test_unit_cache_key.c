/*
 * The disk cache key (cache_key.h) must change whenever anything that goes
 * into NVRTC changes: otherwise a stale kernel would be loaded. Each case
 * changes exactly one input of a hand-made baseline.
 */
#include "cache_key.h"

#include <stdio.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

typedef struct fixture {
    char library[16];
    char templates[40];
    char kernel[80];
    char variant[160];
    char source[300];
    size_t source_len;
    char option[NJ_MAX_OPTIONS][48];
    nj_target target;
} fixture;

static void fixture_init(fixture *f)
{
    int i;
    memset(f, 0, sizeof *f);
    snprintf(f->library, sizeof f->library, "0.1.0");
    snprintf(f->templates, sizeof f->templates, "90b344e57c1975dee513760b9b1c05e5");
    snprintf(f->kernel, sizeof f->kernel, "nj_rmsnorm_f16_f16_f16_h4096_v8_t128_r1_c1_o0_reg");
    snprintf(f->variant, sizeof f->variant,
             "op=rmsnorm x=f16 y=f16 w=f16 hidden=4096 vec=8 tpr=128 rpc=1 cluster=1 occ=0 "
             "storage=reg");
    f->source_len = (size_t)snprintf(f->source, sizeof f->source,
                                     "// normjit kernel\n#define NJ_H 4096\n#define NJ_VEC 8\n"
                                     "extern \"C\" __global__ void k() {}\n");
    /* What nj_target_init makes for sm_90 with NVRTC 13.0. */
    f->target.arch = 90;
    f->target.cubin = 1;
    f->target.nvrtc_major = 13;
    f->target.nvrtc_minor = 0;
    snprintf(f->option[0], sizeof f->option[0], "--gpu-architecture=sm_90");
    snprintf(f->option[1], sizeof f->option[1], "-default-device");
    snprintf(f->option[2], sizeof f->option[2], "--std=c++17");
    snprintf(f->option[3], sizeof f->option[3], "-minimal");
    for (i = 0; i < NJ_MAX_OPTIONS; i++)
        f->target.options[i] = f->option[i];
    f->target.n_options = 4;
    snprintf(f->target.arch_option, sizeof f->target.arch_option, "--gpu-architecture=sm_90");
    snprintf(f->target.dir_name, sizeof f->target.dir_name, "sm_90");
}

static void key_of(const fixture *f, nj_buf *text, char digest[33])
{
    nj_key_inputs in;
    in.library_version = f->library;
    in.templates_digest = f->templates;
    in.target = &f->target;
    in.kernel_name = f->kernel;
    in.variant = f->variant;
    in.source = f->source;
    in.source_len = f->source_len;
    assert_int_equal(nj_cache_key(&in, text, digest), NORMJIT_OK);
}

/* X(name, change to fixture f) */
#define CHANGES(X)                                                                     \
    X(library_version, snprintf(f->library, sizeof f->library, "0.1.1"))               \
    X(templates_digest, f->templates[31] = f->templates[31] == '0' ? '1' : '0')         \
    X(nvrtc_major, f->target.nvrtc_major = 12)                                         \
    X(nvrtc_minor, f->target.nvrtc_minor = 1)                                          \
    X(target_arch, snprintf(f->target.dir_name, sizeof f->target.dir_name, "sm_100"))  \
    X(target_ptx, snprintf(f->target.dir_name, sizeof f->target.dir_name, "compute_90")) \
    X(option_0, snprintf(f->option[0], sizeof f->option[0], "--gpu-architecture=sm_80")) \
    X(option_1, snprintf(f->option[1], sizeof f->option[1], "-default-devic"))         \
    X(option_2, snprintf(f->option[2], sizeof f->option[2], "--std=c++20"))            \
    X(option_3, snprintf(f->option[3], sizeof f->option[3], "-minimum"))               \
    X(option_added, (snprintf(f->option[4], sizeof f->option[4], "-lineinfo"), f->target.n_options = 5)) \
    X(option_dropped, f->target.n_options = 3)                                         \
    X(options_swapped, (f->target.options[0] = f->option[1], f->target.options[1] = f->option[0])) \
    X(kernel_name, f->kernel[3] = 'R')                                                 \
    X(variant, f->variant[strlen(f->variant) - 1] = 'm')                               \
    X(source_first_byte, f->source[0] ^= 1)                                            \
    X(source_middle_byte, f->source[f->source_len / 2] ^= 0x20)                        \
    X(source_last_byte, f->source[f->source_len - 1] ^= 0x80)                          \
    X(source_shorter, f->source_len--)                                                 \
    X(source_longer, f->source_len++)

#define CHANGE_FN(name, change)               \
    static void change_##name(fixture *f)    \
    {                                        \
        change;                              \
    }
CHANGES(CHANGE_FN)

static const struct {
    const char *name;
    void (*change)(fixture *f);
} changes[] = {
#define CHANGE_ROW(name, change) {#name, change_##name},
    CHANGES(CHANGE_ROW)
#undef CHANGE_ROW
};
#define N_CHANGES (sizeof changes / sizeof changes[0])

static void test_identical_inputs_identical_key(void **state)
{
    fixture a, b;
    nj_buf ta = {0}, tb = {0};
    char da[33], db[33];
    size_t i;
    (void)state;
    fixture_init(&a);
    fixture_init(&b);
    key_of(&a, &ta, da);
    key_of(&b, &tb, db);
    assert_string_equal(ta.data, tb.data);
    assert_string_equal(da, db);
    assert_int_equal(strlen(da), 32);
    for (i = 0; i < 32; i++)
        assert_non_null(strchr("0123456789abcdef", da[i]));
    /* Computing it again into a used buffer gives the same. */
    key_of(&a, &ta, da);
    assert_string_equal(ta.data, tb.data);
    assert_string_equal(da, db);
    nj_buf_free(&ta);
    nj_buf_free(&tb);
}

static void test_key_text_names_every_input(void **state)
{
    static const char *const expect[] = {
        "normjit-cache-key\n",
        "\nschema: 2\n",
        "\nlibrary: 0.1.0\n",
        "\ntemplates: 90b344e57c1975dee513760b9b1c05e5\n",
        "\nnvrtc: 13.0\n",
        "\ntarget: sm_90\n",
        ("\noption: --gpu-architecture=sm_90\noption: -default-device\noption: --std=c++17\n"
         "option: -minimal\n"),
        "\nkernel: nj_rmsnorm_f16_f16_f16_h4096_v8_t128_r1_c1_o0_reg\n",
        ("\nvariant: op=rmsnorm x=f16 y=f16 w=f16 hidden=4096 vec=8 tpr=128 rpc=1 cluster=1 "
         "occ=0 storage=reg\n"),
    };
    fixture f;
    nj_buf text = {0};
    char digest[33], line[80];
    size_t i;
    (void)state;
    assert_int_equal(NJ_CACHE_SCHEMA, 2); /* update "schema: 2" above with the schema */
    fixture_init(&f);
    key_of(&f, &text, digest);
    for (i = 0; i < sizeof expect / sizeof expect[0]; i++)
        if (!strstr(text.data, expect[i]))
            fail_msg("key text lacks \"%s\":\n%s", expect[i], text.data);
    snprintf(line, sizeof line, "\nsource: %zu bytes, digest ", f.source_len);
    assert_non_null(strstr(text.data, line));
    nj_buf_free(&text);
}

static void test_each_input_changes_key(void **state)
{
    char digests[N_CHANGES][33], base_digest[33];
    nj_buf base = {0}, text = {0};
    fixture f;
    size_t i, j;
    (void)state;

    fixture_init(&f);
    key_of(&f, &base, base_digest);
    for (i = 0; i < N_CHANGES; i++) {
        fixture_init(&f);
        changes[i].change(&f);
        key_of(&f, &text, digests[i]);
        if (!strcmp(text.data, base.data))
            fail_msg("changing %s left the key text unchanged", changes[i].name);
        if (!strcmp(digests[i], base_digest))
            fail_msg("changing %s left the key digest unchanged", changes[i].name);
        for (j = 0; j < i; j++)
            if (!strcmp(digests[i], digests[j]))
                fail_msg("changing %s and changing %s give one digest", changes[i].name,
                         changes[j].name);
    }
    nj_buf_free(&base);
    nj_buf_free(&text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identical_inputs_identical_key),
        cmocka_unit_test(test_key_text_names_every_input),
        cmocka_unit_test(test_each_input_changes_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
