/* The tool's argument parsers (tools/parse.h): accepted forms, values, and rejections with a reason. */
#include "parse.h"
#include "variant.h"

#include <stdio.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#define BIG "99999999999999999999999"
#define U64_MAX_TEXT "18446744073709551615"

/* Check a parser's status and message; `expect_err` NULL means it must succeed. */
static void expect_result(const char *what, const char *input, int ok, const char *err,
                          const char *expect_err)
{
    if (!expect_err && !ok)
        fail_msg("%s(\"%s\") failed: %s", what, input ? input : "NULL", err);
    if (expect_err && ok)
        fail_msg("%s(\"%s\") accepted, expected an error with \"%s\"", what,
                 input ? input : "NULL", expect_err);
    if (expect_err && !strstr(err, expect_err))
        fail_msg("%s(\"%s\"): error \"%s\" lacks \"%s\"", what, input ? input : "NULL", err,
                 expect_err);
}

static void test_int_list(void **state)
{
    static const struct {
        const char *s;
        int64_t lo, hi;
        int max, n;
        int64_t values[3];
        const char *err;
    } cases[] = {
        {"4096,8192", 1, 1 << 24, 8, 2, {4096, 8192}, NULL},
        {"1", 1, 10, 8, 1, {1}, NULL},
        {"0", 0, 10, 8, 1, {0}, NULL},
        {"0,5", -5, 5, 8, 2, {0, 5}, NULL},
        {"0", -5, -1, 8, -1, {0}, "0 is outside -5..-1"},
        {"16777216", 1, 1 << 24, 8, 1, {16777216}, NULL},
        {"5,6", 1, 10, 2, 2, {5, 6}, NULL},
        {"007", 1, 10, 8, 1, {7}, NULL},
        {"16777217", 1, 1 << 24, 8, -1, {0}, "16777217 is outside 1..16777216"},
        {"0", 1, 10, 8, -1, {0}, "0 is outside 1..10"},
        {U64_MAX_TEXT, 1, INT64_MAX, 8, -1, {0}, "is outside"},
        {"", 1, 10, 8, -1, {0}, "empty list"},
        {NULL, 1, 10, 8, -1, {0}, "empty list"},
        {"1,,2", 1, 10, 8, -1, {0}, "empty item in the list '1,,2'"},
        {"1,2,", 1, 10, 8, -1, {0}, "empty item in the list '1,2,'"},
        {",1", 1, 10, 8, -1, {0}, "empty item in the list ',1'"},
        {"4096,", 1, 1 << 24, 8, -1, {0}, "empty item in the list '4096,'"},
        {",", 1, 1 << 24, 8, -1, {0}, "empty item in the list ','"},
        {"-1", 1, 10, 8, -1, {0}, "'-1' is not a number"},
        {"+1", 1, 10, 8, -1, {0}, "'+1' is not a number"},
        {" 1", 1, 10, 8, -1, {0}, "' 1' is not a number"},
        {"1 ", 1, 10, 8, -1, {0}, "'1 ' is not a number"},
        {"12a,3", 1, 100, 8, -1, {0}, "'12a' is not a number"},
        {"0x10", 0, 100, 8, -1, {0}, "'0x10' is not a number"},
        {BIG, 1, INT64_MAX, 8, -1, {0}, "'" BIG "' is not a number"},
        {"1,2,3", 1, 10, 2, -1, {0}, "more than 2 values"},
    };
    size_t i;
    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t out[8] = {0};
        char err[256] = "";
        int n = nj_parse_int_list(cases[i].s, cases[i].lo, cases[i].hi, out, cases[i].max, err,
                                  sizeof err);
        expect_result("nj_parse_int_list", cases[i].s, n >= 0, err, cases[i].err);
        assert_int_equal(n, cases[i].n);
        if (n > 0)
            assert_memory_equal(out, cases[i].values, (size_t)n * sizeof out[0]);
    }
}

static void test_name_list(void **state)
{
    static const struct {
        const char *s;
        int (*lookup)(const char *);
        const char *what;
        int max, n;
        int values[3];
        const char *err;
    } cases[] = {
        {"rmsnorm,layernorm", nj_op_parse, "op", 2, 2, {NORMJIT_OP_RMSNORM, NORMJIT_OP_LAYERNORM}, NULL},
        {"layernorm", nj_op_parse, "op", 2, 1, {NORMJIT_OP_LAYERNORM}, NULL},
        {"f16,bf16,f32", nj_dtype_parse, "dtype", 3, 3, {NORMJIT_DTYPE_F16, NORMJIT_DTYPE_BF16, NORMJIT_DTYPE_F32}, NULL},
        {"", nj_op_parse, "op", 2, -1, {0}, "empty op list"},
        {NULL, nj_dtype_parse, "dtype", 2, -1, {0}, "empty dtype list"},
        {"softmax", nj_op_parse, "op", 2, -1, {0}, "unknown op 'softmax'"},
        {"RMSNORM", nj_op_parse, "op", 2, -1, {0}, "unknown op 'RMSNORM'"},
        {"rmsnorm,", nj_op_parse, "op", 2, -1, {0}, "empty item in the op list 'rmsnorm,'"},
        {",rmsnorm", nj_op_parse, "op", 2, -1, {0}, "empty item in the op list ',rmsnorm'"},
        {",", nj_dtype_parse, "dtype", 2, -1, {0}, "empty item in the dtype list ','"},
        {"rmsnorm,layernorm,rmsnorm", nj_op_parse, "op", 2, -1, {0}, "more than 2 op values"},
        {"fp16", nj_dtype_parse, "dtype", 3, -1, {0}, "unknown dtype 'fp16'"},
        {"f16 ", nj_dtype_parse, "dtype", 3, -1, {0}, "unknown dtype 'f16 '"},
        {"a_name_of_seventy_characters_that_cannot_fit_in_the_parsers_word_buffer", nj_op_parse, "op", 2, -1, {0}, "bad op 'a_name_of_seventy_characters_tha'"},
    };
    size_t i;
    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int out[3] = {0};
        char err[256] = "";
        int n = nj_parse_name_list(cases[i].s, cases[i].lookup, cases[i].what, out, cases[i].max,
                                   err, sizeof err);
        expect_result("nj_parse_name_list", cases[i].s, n >= 0, err, cases[i].err);
        assert_int_equal(n, cases[i].n);
        if (n > 0)
            assert_memory_equal(out, cases[i].values, (size_t)n * sizeof out[0]);
    }
}

static void test_size(void **state)
{
    static const struct {
        const char *s;
        uint64_t value;
        const char *err;
    } cases[] = {
        {"0", 0, NULL},
        {"512", 512, NULL},
        {"1K", 1024, NULL},
        {"1k", 1024, NULL},
        {"512M", 512ull << 20, NULL},
        {"2G", 2ull << 30, NULL},
        {"3T", 3ull << 40, NULL},
        {"1KiB", 1024, NULL},
        {"4MiB", 4ull << 20, NULL},
        {"1KB", 1024, NULL},
        {"1Ki", 1024, NULL},
        {"512B", 512, NULL},
        {"0B", 0, NULL},
        {"2GB", 2ull << 30, NULL},
        {"2GiB", 2ull << 30, NULL},
        {"1Kb", 0, "'b' means bits"},
        {"2Gb", 0, "'b' means bits"},
        {"512b", 0, "'b' means bits"},
        {"1BB", 0, "is not a size"},
        {"1iB", 0, "unknown size suffix"},
        {"16777215T", 16777215ull << 40, NULL},
        {U64_MAX_TEXT, UINT64_MAX, NULL},
        {"16777216T", 0, "is too large"},
        {"18446744073709551616", 0, "is not a size"},
        {"17179869184G", 0, "is too large"},
        {"", 0, "is not a size"},
        {NULL, 0, "is not a size"},
        {"K", 0, "is not a size"},
        {"-1", 0, "is not a size"},
        {"1.5G", 0, "unknown size suffix"},
        {"1 K", 0, "unknown size suffix"},
        {"1X", 0, "unknown size suffix"},
        {"1KX", 0, "is not a size"},
        {"1KiBB", 0, "is not a size"},
        {"1KIB", 0, "is not a size"},
    };
    size_t i;
    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint64_t out = 0xdeadbeef;
        char err[256] = "";
        int rc = nj_parse_size(cases[i].s, &out, err, sizeof err);
        expect_result("nj_parse_size", cases[i].s, rc == 0, err, cases[i].err);
        if (!cases[i].err && out != cases[i].value)
            fail_msg("nj_parse_size(\"%s\") = %llu, expected %llu", cases[i].s,
                     (unsigned long long)out, (unsigned long long)cases[i].value);
    }
}

static void test_arch(void **state)
{
    static const struct {
        const char *s;
        int value;
        const char *err;
    } cases[] = {
        {"sm_90", 90, NULL},
        {"90", 90, NULL},
        {"9.0", 90, NULL},
        {"compute_90", 90, NULL},
        {"auto", 0, NULL},
        {"sm_80", 80, NULL},
        {"sm_100", 100, NULL},
        {"10.0", 100, NULL},
        {"12.1", 121, NULL},
        {"bad", 0, "'bad' is not an architecture"},
        {"", 0, "is not an architecture"},
        {NULL, 0, "is not an architecture"},
        {"sm_", 0, "'sm_' is not an architecture"},
        {"compute_", 0, "is not an architecture"},
        {"sm_5", 0, "'sm_5' is not an architecture"},
        {"5", 0, "is not an architecture"},
        {"9.", 0, "'9.' is not an architecture"},
        {"9.10", 0, "is not an architecture"},
        {"1000", 0, "is not an architecture"},
        {"sm_90a", 0, "is not an architecture"},
        {"SM_90", 0, "is not an architecture"},
        {"sm_-90", 0, "is not an architecture"},
        {"AUTO", 0, "is not an architecture"},
        /* A compute capability has no prefix: these are no architecture, not sm_900 / sm_999. */
        {"sm_90.0", 0, "'sm_90.0' is not an architecture"},
        {"sm_99.9", 0, "'sm_99.9' is not an architecture"},
        {"compute_9.0", 0, "is not an architecture"},
        {"99.9", 999, NULL},
        {"100.0", 0, "is not an architecture"},
    };
    size_t i;
    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int out = -1;
        char err[256] = "";
        int rc = nj_parse_arch(cases[i].s, &out, err, sizeof err);
        expect_result("nj_parse_arch", cases[i].s, rc == 0, err, cases[i].err);
        if (!cases[i].err)
            assert_int_equal(out, cases[i].value);
    }
}

static void test_arch_list(void **state)
{
    static const struct {
        const char *s;
        int n;
        int values[3];
        const char *err;
    } cases[] = {
        {"sm_80,sm_90", 2, {80, 90}, NULL},
        {"sm_90", 1, {90}, NULL},
        {"auto", 1, {0}, NULL},
        {"9.0,compute_100,sm_80", 3, {90, 100, 80}, NULL},
        {"sm_80,sm_90,sm_100,sm_120", -1, {0}, "more than 3 architectures"},
        {"", -1, {0}, "empty list"},
        {NULL, -1, {0}, "empty list"},
        {"sm_80,", -1, {0}, "empty item in the list 'sm_80,'"},
        {",", -1, {0}, "empty item in the list ','"},
        {"sm_80,sm_90.0", -1, {0}, "'sm_90.0' is not an architecture"},
        {"sm_80,sm_9000000000000000000000000000000000", -1, {0}, "is not an architecture"},
    };
    size_t i;
    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int out[3] = {0};
        char err[256] = "";
        int n = nj_parse_arch_list(cases[i].s, out, 3, err, sizeof err);
        expect_result("nj_parse_arch_list", cases[i].s, n >= 0, err, cases[i].err);
        assert_int_equal(n, cases[i].n);
        if (n > 0)
            assert_memory_equal(out, cases[i].values, (size_t)n * sizeof out[0]);
    }
}

/* getopt's two complaints, as every command reports them. */
static void test_option_problem(void **state)
{
    static const struct {
        int c, optopt;
        const char *word, *expect;
    } cases[] = {
        {':', 'c', "--cache-dir", "option '--cache-dir' needs a value"},
        {':', 'j', "-j", "option '-j' needs a value"},
        {'?', 0, "--bogus", "unknown option '--bogus'"},
        {'?', 0, "--bogus=1", "unknown option '--bogus'"},
        {'?', 'z', "-qz", "unknown option '-z'"},
        {'?', 'z', "warm", "unknown option '-z'"}, /* inside a group, optind not yet past it */
    };
    size_t i;
    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[128];
        nj_parse_option_problem(cases[i].c, cases[i].optopt, cases[i].word, err, sizeof err);
        assert_string_equal(err, cases[i].expect);
    }
}

static void test_shape(void **state)
{
    static const struct {
        const char *s;
        int64_t rows, hidden;
        const char *err;
    } cases[] = {
        {"4x512x4096", 2048, 4096, NULL},
        {"2048x4096", 2048, 4096, NULL},
        {"1x1", 1, 1, NULL},
        {"1x1x7", 1, 7, NULL},
        {"1099511627776x1", 1ll << 40, 1, NULL},
        {"4194304x1099511627776x1", 1ll << 62, 1, NULL},
        {"4096", 0, 0, "'4096' is not a shape"},
        {"", 0, 0, "is not a shape"},
        {NULL, 0, 0, "is not a shape"},
        {"4x", 0, 0, "is not a shape"},
        {"x4", 0, 0, "is not a shape"},
        {"4xx4", 0, 0, "is not a shape"},
        {"4x512x4096x2", 0, 0, "is not a shape"},
        {"0x4096", 0, 0, "is not a shape"},
        {"4x0", 0, 0, "is not a shape"},
        {"4x512x0", 0, 0, "is not a shape"},
        {"4x512x1099511627777", 0, 0, "is not a shape"},
        {"4X4", 0, 0, "is not a shape"},
        {" 4x4", 0, 0, "is not a shape"},
        {"4x4 ", 0, 0, "is not a shape"},
        {"-4x4", 0, 0, "is not a shape"},
        {"1099511627777x1", 0, 0, "is not a shape"},
        {BIG "x1", 0, 0, "is not a shape"},
        {"4194305x1099511627776x1", 0, 0, "too many rows"},
        {"1099511627776x1099511627776x1", 0, 0, "too many rows"},
    };
    size_t i;
    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t rows = -1, hidden = -1;
        char err[256] = "";
        int rc = nj_parse_shape(cases[i].s, &rows, &hidden, err, sizeof err);
        expect_result("nj_parse_shape", cases[i].s, rc == 0, err, cases[i].err);
        if (!cases[i].err) {
            assert_int_equal(rows, cases[i].rows);
            assert_int_equal(hidden, cases[i].hidden);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_int_list),
        cmocka_unit_test(test_name_list),
        cmocka_unit_test(test_size),
        cmocka_unit_test(test_arch),
        cmocka_unit_test(test_arch_list),
        cmocka_unit_test(test_option_problem),
        cmocka_unit_test(test_shape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
