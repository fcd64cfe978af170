/*
 * The JSON reader behind `warm --config` (tools/json.c): values of every
 * type, escapes and surrogate pairs, members in order, and refusals with
 * the line named (truncation, trailing text, NUL bytes, bad escapes,
 * nesting beyond the limit).
 */
#include "json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

static nj_json *parse_ok(const char *text)
{
    nj_json *v = NULL;
    char err[128];
    if (nj_json_parse(text, strlen(text), &v, err, sizeof err) != 0)
        fail_msg("parse of %s failed: %s", text, err);
    assert_non_null(v);
    return v;
}

static void test_values(void **state)
{
    nj_json *v = parse_ok(" {\"a\": 1, \"b\": [true, false, null, -2.5e3, \"x\"],\n"
                          "  \"c\": {\"d\": \"\\u00e9\\ud83d\\ude00\\n\\\"\"}, \"a2\": {} }\n");
    const nj_json *b, *c, *d;
    (void)state;
    assert_int_equal(v->type, NJ_JSON_OBJECT);
    assert_true(nj_json_get(v, "a")->type == NJ_JSON_NUMBER && nj_json_get(v, "a")->number == 1);
    b = nj_json_get(v, "b");
    assert_int_equal(b->type, NJ_JSON_ARRAY);
    assert_true(b->child->type == NJ_JSON_BOOL && b->child->number == 1);
    assert_true(b->child->next->type == NJ_JSON_BOOL && b->child->next->number == 0);
    assert_int_equal(b->child->next->next->type, NJ_JSON_NULL);
    assert_true(b->child->next->next->next->number == -2500);
    assert_string_equal(b->child->next->next->next->next->string, "x");
    c = nj_json_get(v, "c");
    d = nj_json_get(c, "d");
    assert_string_equal(d->string, "\xc3\xa9\xf0\x9f\x98\x80\n\"");
    assert_int_equal(nj_json_get(v, "a2")->type, NJ_JSON_OBJECT);
    assert_null(nj_json_get(v, "zz"));
    assert_null(nj_json_get(b, "a")); /* not an object */
    assert_null(nj_json_get(NULL, "a"));
    nj_json_free(v);
    v = parse_ok("[]");
    assert_null(v->child);
    nj_json_free(v);
    v = parse_ok("\"\"");
    assert_string_equal(v->string, "");
    nj_json_free(v);
}

static void test_refused(void **state)
{
    static const struct {
        const char *text;
        size_t len; /* 0: strlen */
        const char *error;
    } cases[] = {
        {"", 0, "line 1: expected a value"},
        {"{\"a\": 1", 0, "line 1: expected ',' or '}'"},
        {"{\"a\" 1}", 0, "expected ':'"},
        {"{1: 2}", 0, "expected a member name"},
        {"[1, 2,]", 0, "expected a value"},
        {"[1]\n x", 0, "line 2: text after the value"},
        {"\"abc", 0, "unterminated string"},
        {"\"a\\qb\"", 0, "bad escape"},
        {"\"\\ud800\"", 0, "bad escape"},
        {"\"\\u0000\"", 0, "a NUL character"},
        {"\"a\tb\"", 0, "control character"},
        {"[1.2.3]", 0, "bad number"},
        {"tru", 0, "expected a value"},
        {"[1]\0", 4, "a NUL byte"},
        {"1e999", 0, "bad number"},
    };
    char deep[200];
    size_t i;
    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        nj_json *v = (nj_json *)1;
        char err[128] = "";
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].text);
        if (nj_json_parse(cases[i].text, len, &v, err, sizeof err) == 0)
            fail_msg("case %zu parsed", i);
        assert_null(v);
        if (!strstr(err, cases[i].error))
            fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err, cases[i].error);
    }
    /* 64 levels parse, 65 do not. */
    memset(deep, '[', 64);
    memset(deep + 64, ']', 64);
    deep[128] = '\0';
    nj_json_free(parse_ok(deep));
    memset(deep, '[', 65);
    memset(deep + 65, ']', 65);
    deep[130] = '\0';
    {
        nj_json *v;
        char err[128];
        assert_int_equal(nj_json_parse(deep, strlen(deep), &v, err, sizeof err), -1);
        assert_non_null(strstr(err, "nested too deeply"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
