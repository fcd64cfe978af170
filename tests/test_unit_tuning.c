/*
 * Tuning tables (tuning.h): parsing, lookup, writing, and the rejection of
 * malformed or batch-variant tables with the offending line named.
 */
#include "tuning.h"

#include <math.h>
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
#define F32 NORMJIT_DTYPE_F32
#define F16 NORMJIT_DTYPE_F16
#define BF16 NORMJIT_DTYPE_BF16
/* A request of a plain op. */
#define R(op, x, y, w, vec, bucket, hidden) {{op, x, y, w, 0, 0, 0, 0, 0, hidden}, vec, bucket}

#define HEADER                                                                    \
    "# a table for tests\n"                                                       \
    "device: NVIDIA H100 80GB HBM3\n"                                             \
    "sms: 132\n"                                                                  \
    "cc: 90\n"                                                                    \
    "memory-mib: 81559\n"                                                         \
    "driver: 13000\n"                                                             \
    "library: 0.1.0\n"                                                            \
    "templates: 90b344e57c1975dee513760b9b1c05e5\n"                               \
    "fields: op x y w hidden bucket vec tpr rpc cluster occ storage ctas_per_sm us\n"

static const char table[] = HEADER
    "rmsnorm f16 f16 f16 4096 decode 8 128 1 1 0 reg 0 3.10\n"
    "\n"
    "rmsnorm f16 f16 f16 4096 prefill 8 128 2 1 4 reg 0 12.41\n"
    "rmsnorm f16 f16 f16 4096 large 8 128 4 1 0 reg 2 250.00\n"
    "   # indented comment\n"
    "layernorm bf16 bf16 f32 65536 prefill 8 512 1 2 0 reg 0 80.50\n"
    "layernorm f32 f32 f32 100000 large 4 1024 1 1 0 stream 1 900.25\n";

static nj_tuning *parse_ok(const char *text, size_t len)
{
    nj_tuning *t = NULL;
    int status = nj_tuning_parse(text, len, &t);
    if (status != NORMJIT_OK)
        fail_msg("parse failed: %s: %s", normjit_status_name(status), normjit_last_error());
    assert_non_null(t);
    return t;
}

static void test_parse_valid_table(void **state)
{
    nj_tuning *t = parse_ok(table, strlen(table));
    (void)state;
    assert_string_equal(t->device.name, "NVIDIA H100 80GB HBM3");
    assert_int_equal(t->device.sms, 132);
    assert_int_equal(t->device.cc, 90);
    assert_int_equal(t->device.memory_mib, 81559);
    assert_int_equal(t->device.driver, 13000);
    assert_string_equal(t->library, "0.1.0");
    assert_string_equal(t->templates, "90b344e57c1975dee513760b9b1c05e5");
    assert_int_equal(t->n, 5);
    assert_int_equal(t->records[1].bucket, NJ_BUCKET_PREFILL);
    assert_int_equal(t->records[1].plan.v.k.rpc, 2);
    assert_int_equal(t->records[1].plan.v.k.occ, 4);
    assert_float_equal(t->records[1].us, 12.41, 1e-9);
    assert_int_equal(t->records[4].plan.v.k.storage, NJ_STORAGE_STREAM);
    assert_int_equal(t->records[4].plan.ctas_per_sm, 1);
    nj_tuning_free(t);
}

static void test_parse_crlf_and_no_final_newline(void **state)
{
    const char text[] = "device: X\r\nfields: " NJ_TUNING_FIELDS "\r\n"
                        "rmsnorm f32 f32 f32 1 decode 1 1 32 1 0 reg 0 1.5";
    nj_tuning *t = parse_ok(text, strlen(text));
    (void)state;
    assert_string_equal(t->device.name, "X");
    assert_int_equal(t->n, 1);
    assert_float_equal(t->records[0].us, 1.5, 1e-9);
    nj_tuning_free(t);
}

static void test_lookup(void **state)
{
    static const struct {
        const char *what;
        nj_request r;
        int arch; /* the device the lookup is for (the table's cc is 90) */
        int hit, tpr, rpc, ctas_per_sm;
    } cases[] = {
        {"decode", R(RMS, F16, F16, F16, 8, NJ_BUCKET_DECODE, 4096), 90, 1, 128, 1, 0},
        {"prefill", R(RMS, F16, F16, F16, 8, NJ_BUCKET_PREFILL, 4096), 90, 1, 128, 2, 0},
        {"large", R(RMS, F16, F16, F16, 8, NJ_BUCKET_LARGE, 4096), 80, 1, 128, 4, 2},
        {"stream", R(LN, F32, F32, F32, 4, NJ_BUCKET_LARGE, 100000), 80, 1, 1024, 1, 1},
        {"cluster on sm_90", R(LN, BF16, BF16, F32, 8, NJ_BUCKET_PREFILL, 65536), 90, 1, 512, 1, 0},
        /* Buckets the table lacks take its nearest record of the configuration. */
        {"decode from prefill", R(LN, BF16, BF16, F32, 8, NJ_BUCKET_DECODE, 65536), 90, 1, 512, 1, 0},
        {"prefill from large", R(LN, F32, F32, F32, 4, NJ_BUCKET_PREFILL, 100000), 80, 1, 1024, 1, 1},
        {"missing bucket", R(LN, BF16, BF16, F32, 8, NJ_BUCKET_LARGE, 65536), 90, 1, 512, 1, 0},
        {"wrong vec", R(RMS, F16, F16, F16, 4, NJ_BUCKET_DECODE, 4096), 90, 0, 0, 0, 0},
        {"wrong hidden", R(RMS, F16, F16, F16, 8, NJ_BUCKET_DECODE, 4104), 90, 0, 0, 0, 0},
        {"wrong y dtype", R(RMS, F16, F32, F16, 8, NJ_BUCKET_DECODE, 4096), 90, 0, 0, 0, 0},
        {"wrong weight dtype", R(RMS, F16, F16, F32, 8, NJ_BUCKET_DECODE, 4096), 90, 0, 0, 0, 0},
        {"wrong op", R(LN, F16, F16, F16, 8, NJ_BUCKET_DECODE, 4096), 90, 0, 0, 0, 0},
    };
    nj_tuning *t = parse_ok(table, strlen(table));
    size_t i;
    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        nj_plan p;
        int hit;
        memset(&p, 0, sizeof p);
        hit = nj_tuning_lookup(t, &cases[i].r, &p);
        if (hit != cases[i].hit)
            fail_msg("%s: lookup gave %d, expected %d", cases[i].what, hit, cases[i].hit);
        if (hit && (p.v.k.tpr != cases[i].tpr || p.v.k.rpc != cases[i].rpc ||
                    p.ctas_per_sm != cases[i].ctas_per_sm || p.v.s.hidden != cases[i].r.s.hidden ||
                    p.v.k.vec != cases[i].r.vec))
            fail_msg("%s: got tpr %d rpc %d ctas_per_sm %d", cases[i].what, p.v.k.tpr, p.v.k.rpc,
                     p.ctas_per_sm);
    }
    nj_tuning_free(t);
}

/*
 * A record the table's architecture cannot run (a cluster on sm_80) drops
 * every record of its configuration when the table is read, so that no
 * bucket of it mixes this table's layout with the heuristic's.
 */
static void test_illegal_record_drops_its_configuration(void **state)
{
    const char text[] = "device: X\ncc: 80\nfields: " NJ_TUNING_FIELDS_V1 "\n"
                        "layernorm bf16 bf16 f32 65536 decode 8 512 1 2 0 reg 0 10.0\n"
                        "layernorm bf16 bf16 f32 65536 prefill 8 512 1 2 0 reg 0 80.5\n"
                        "rmsnorm f16 f16 f16 4096 decode 8 128 1 1 0 reg 0 3.1\n";
    nj_tuning *t = parse_ok(text, strlen(text));
    nj_request r = R(LN, BF16, BF16, F32, 8, NJ_BUCKET_DECODE, 65536);
    nj_plan p;
    (void)state;
    assert_int_equal(t->n, 1);
    assert_int_equal(t->dropped, 2);
    assert_non_null(strstr(t->dropped_why, "line 4"));
    assert_non_null(strstr(t->dropped_why, "cluster"));
    assert_int_equal(nj_tuning_lookup(t, &r, &p), 0);
    nj_tuning_free(t);
}

static char *write_table(const nj_tuning *t, size_t *len)
{
    char *text = NULL;
    FILE *f = open_memstream(&text, len);
    assert_non_null(f);
    assert_int_equal(nj_tuning_write(t, f), NORMJIT_OK);
    assert_int_equal(fclose(f), 0);
    return text;
}

static const nj_tuning_record *find_slot(const nj_tuning *t, const nj_tuning_record *r)
{
    size_t i;
    for (i = 0; i < t->n; i++) {
        const nj_variant *a = &t->records[i].plan.v, *b = &r->plan.v;
        if (nj_spec_equal(&a->s, &b->s) && a->k.vec == b->k.vec &&
            t->records[i].bucket == r->bucket)
            return &t->records[i];
    }
    return NULL;
}

static void test_write_parse_round_trip(void **state)
{
    nj_tuning *t = parse_ok(table, strlen(table)), *again, *third;
    size_t len, len2, i;
    char *text, *text2;
    (void)state;

    text = write_table(t, &len);
    again = parse_ok(text, len);
    assert_memory_equal(&again->device, &t->device, sizeof t->device);
    assert_string_equal(again->library, t->library);
    assert_string_equal(again->templates, t->templates);
    assert_int_equal(again->n, t->n);
    for (i = 0; i < t->n; i++) {
        const nj_tuning_record *r = find_slot(again, &t->records[i]);
        assert_non_null(r);
        assert_true(nj_variant_equal(&r->plan.v, &t->records[i].plan.v));
        assert_int_equal(r->plan.ctas_per_sm, t->records[i].plan.ctas_per_sm);
        assert_float_equal(r->us, t->records[i].us, 0.005);
    }
    /* Writing is stable: the written table writes back byte for byte. */
    text2 = write_table(again, &len2);
    assert_int_equal(len2, len);
    assert_string_equal(text2, text);
    third = parse_ok(text2, len2);
    nj_tuning_free(third);
    nj_tuning_free(again);
    nj_tuning_free(t);
    free(text);
    free(text2);
}

static void test_new_put_replaces_slot(void **state)
{
    nj_device_key dev = {"Fake GPU", 10, 90, 1024, 13000};
    nj_tuning *t = nj_tuning_new(&dev, "0.1.0", "abc"), *back;
    nj_tuning_record r;
    size_t len;
    char *text;
    (void)state;
    assert_non_null(t);
    memset(&r, 0, sizeof r);
    r.plan.v = (nj_variant){{RMS, F16, F16, F16, 0, 0, 0, 0, 0, 4096},
                            {8, 128, 1, 1, NJ_STORAGE_REG, 0, NJ_WLOAD_LATE}};
    r.bucket = NJ_BUCKET_DECODE;
    r.us = 5.0;
    assert_int_equal(nj_tuning_put(t, &r), NORMJIT_OK);
    r.bucket = NJ_BUCKET_LARGE;
    assert_int_equal(nj_tuning_put(t, &r), NORMJIT_OK);
    r.plan.v.k.rpc = 4;
    r.us = 4.0;
    assert_int_equal(nj_tuning_put(t, &r), NORMJIT_OK); /* same slot: replaces */
    assert_int_equal(t->n, 2);
    assert_int_equal(t->records[1].plan.v.k.rpc, 4);

    text = write_table(t, &len);
    back = parse_ok(text, len);
    assert_int_equal(back->n, 2);
    assert_true(nj_tuning_matches(back, &dev));
    nj_tuning_free(back);
    nj_tuning_free(t);
    free(text);
}

#define REC "rmsnorm f16 f16 f16 4096 decode 8 128 1 1 0 reg 0 3.1\n"
#define L(n) "line " #n ": "
#define WITH_NUL "device: X\nfields: " NJ_TUNING_FIELDS "\nrmsnorm f16\0 f16\n"

static void test_malformed_tables(void **state)
{
    static char overlong[2100];
    static const struct {
        const char *what, *text;
        size_t len; /* 0: strlen */
        const char *message;
    } cases[] = {
        {"record before fields", "device: X\n" REC, 0, L(2) "record before the 'fields:' line"},
        {"13 fields", HEADER "rmsnorm f16 f16 f16 4096 decode 8 128 1 1 0 reg 0\n", 0, L(10) "expected 14 fields"},
        {"15 fields", HEADER "rmsnorm f16 f16 f16 4096 decode 8 128 1 1 0 reg 0 3.1 x\n", 0, L(10) "bad epilogue"},
        {"16 fields", HEADER "rmsnorm f16 f16 f16 4096 decode 8 128 1 1 0 reg 0 3.1 - x\n", 0, L(10) "expected 14 fields"},
        {"bad dtype", HEADER "rmsnorm f8 f16 f16 4096 decode 8 128 1 1 0 reg 0 3.1\n", 0, L(10) "unknown op or dtype"},
        {"bad op", HEADER "softmax f16 f16 f16 4096 decode 8 128 1 1 0 reg 0 3.1\n", 0, L(10) "unknown op or dtype"},
        {"bad bucket", HEADER REC "rmsnorm f16 f16 f16 4096 huge 8 128 1 1 0 reg 0 3.1\n", 0, L(11) "bucket must be decode, prefill or large"},
        {"bad storage", HEADER "rmsnorm f16 f16 f16 4096 decode 8 128 1 1 0 disk 0 3.1\n", 0, L(10) "storage must be reg, stream or staged"},
        {"hidden 0", HEADER "rmsnorm f16 f16 f16 0 decode 8 128 1 1 0 reg 0 3.1\n", 0, L(10) "bad hidden size"},
        {"negative tpr", HEADER "rmsnorm f16 f16 f16 4096 decode 8 -128 1 1 0 reg 0 3.1\n", 0, L(10) "bad vec, tpr, rpc or cluster"},
        {"occ 33", HEADER "rmsnorm f16 f16 f16 4096 decode 8 128 1 1 33 reg 0 3.1\n", 0, L(10) "bad occ"},
        {"ctas_per_sm 65", HEADER "rmsnorm f16 f16 f16 4096 decode 8 128 1 1 0 reg 65 3.1\n", 0, L(10) "bad ctas_per_sm"},
        {"negative time", HEADER "rmsnorm f16 f16 f16 4096 decode 8 128 1 1 0 reg 0 -1\n", 0, L(10) "bad time"},
        {"nan time", HEADER "rmsnorm f16 f16 f16 4096 decode 8 128 1 1 0 reg 0 nan\n", 0, L(10) "bad time"},
        {"NUL byte", WITH_NUL, sizeof WITH_NUL - 1, L(3) "contains a NUL byte"},
        {"overlong line", overlong, 0, L(2) "longer than 1024 bytes"},
        {"wrong fields line", "device: X\nfields: op x y w hidden\n", 0, L(2) "unsupported fields line"},
        {"bad sms", "device: X\nsms: many\n", 0, L(2) "bad number"},
        {"long library", "device: X\nlibrary: 0123456789012345678901234567890123\n", 0, L(2) "library version too long"},
        {"long templates", "device: X\ntemplates: 0123456789012345678901234567890123456789\n", 0, L(2) "templates digest too long"},
        {"missing device", "fields: " NJ_TUNING_FIELDS "\n" REC, 0, L(2) "end of the table without a 'device:' line"},
        {"missing fields", "device: X\n", 0, L(1) "end of the table without a 'fields:' line"},
    };
    size_t i;
    (void)state;
    /* Line 1 is fine, line 2 is 2000 bytes long. */
    snprintf(overlong, sizeof overlong, "device: X\n%2000s\n", "");
    memset(overlong + 10, 'a', 2000);

    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        nj_tuning *t = (nj_tuning *)1;
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].text);
        int status = nj_tuning_parse(cases[i].text, len, &t);
        if (status != NORMJIT_EFORMAT || !strstr(normjit_last_error(), cases[i].message))
            fail_msg("%s: got %s \"%s\", expected NORMJIT_EFORMAT with \"%s\"", cases[i].what,
                     normjit_status_name(status), normjit_last_error(), cases[i].message);
        assert_null(t);
    }
}

static void test_batch_invariance_enforced(void **state)
{
    static const struct {
        const char *what, *second;
        int status;
    } cases[] = {
        {"same reduction, other rpc", "rmsnorm f16 f16 f16 4096 large 8 128 4 1 0 reg 2 9.0\n", NORMJIT_OK},
        {"other tpr", "rmsnorm f16 f16 f16 4096 large 8 256 1 1 0 reg 0 9.0\n", NORMJIT_EFORMAT},
        {"other cluster", "rmsnorm f16 f16 f16 4096 large 8 128 1 2 0 reg 0 9.0\n", NORMJIT_EFORMAT},
        {"other storage", "rmsnorm f16 f16 f16 4096 large 8 128 1 1 0 stream 0 9.0\n", NORMJIT_EFORMAT},
        {"other vec may differ", "rmsnorm f16 f16 f16 4096 large 4 256 1 1 0 reg 0 9.0\n", NORMJIT_OK},
        {"other hidden may differ", "rmsnorm f16 f16 f16 8192 large 8 256 1 1 0 reg 0 9.0\n", NORMJIT_OK},
    };
    size_t i;
    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[2048];
        nj_tuning *t = NULL;
        int status;
        snprintf(text, sizeof text, "%s%s%s", HEADER, REC, cases[i].second);
        status = nj_tuning_parse(text, strlen(text), &t);
        if (status != cases[i].status ||
            (status != NORMJIT_OK && !strstr(normjit_last_error(), "differs from line 10 in tpr, cluster or storage")))
            fail_msg("%s: got %s \"%s\"", cases[i].what, normjit_status_name(status),
                     status ? normjit_last_error() : "");
        nj_tuning_free(t);
    }
}

/*
 * Reading a table compares each record only with its own configuration's
 * (tuning.c's index): the checks must still find conflicts and duplicates
 * however far apart they are, and name the same lines as a comparison of
 * every pair would. FILLER(n) puts n records of other configurations (hidden
 * sizes 1..n, all consistent) between them, enough to grow the index.
 */
static char *table_with(const char *head, const char *const *parts, int filler)
{
    size_t size = 256 + strlen(head) + (size_t)filler * 3 * 64, len;
    const char *const *p;
    char *text = malloc(size + 4096);
    int i, b;
    assert_non_null(text);
    len = (size_t)snprintf(text, size, "%s", head);
    for (p = parts; *p; p++) {
        if (strcmp(*p, "FILLER"))
            len += (size_t)snprintf(text + len, size + 4096 - len, "%s", *p);
        else
            for (i = 1; i <= filler; i++)
                for (b = 0; b < NJ_BUCKETS; b++)
                    len += (size_t)snprintf(text + len, size + 4096 - len,
                                            "layernorm f32 f32 f32 %d %s 1 32 %d 1 0 reg 0 1.0\n", i,
                                            nj_bucket_name(b), 1 + b);
    }
    return text;
}

#define DECODE_A "rmsnorm f16 f16 f16 4096 decode 8 128 1 1 0 reg 0 3.1\n"
#define LARGE_A_OTHER_TPR "rmsnorm f16 f16 f16 4096 large 8 256 1 1 0 reg 0 9.0\n"

static void test_checks_far_apart(void **state)
{
    static const struct {
        const char *what;
        const char *head;
        const char *parts[6];
        int filler;
        int status;
        size_t n, dropped;
        const char *message; /* the last error, or the dropped_why */
    } cases[] = {
        {"conflict after 300 configurations", HEADER, {DECODE_A, "FILLER", LARGE_A_OTHER_TPR}, 300,
         NORMJIT_EFORMAT, 0, 0,
         "line 911: record for rmsnorm f16 hidden 4096 differs from line 10 in tpr, cluster or storage"},
        {"conflict before 300 configurations", HEADER, {DECODE_A, LARGE_A_OTHER_TPR, "FILLER"}, 300,
         NORMJIT_EFORMAT, 0, 0, "line 11: record for rmsnorm f16 hidden 4096 differs from line 10"},
        {"consistent after 300 configurations", HEADER,
         {DECODE_A, "FILLER", "rmsnorm f16 f16 f16 4096 large 8 128 4 1 0 reg 2 9.0\n"}, 300,
         NORMJIT_OK, 902, 0, NULL},
        /* Two conflicting configurations: the one whose first record comes first is named,
           though the other's conflict comes earlier in the file. */
        {"first configuration named", HEADER,
         {DECODE_A, "layernorm bf16 bf16 f32 1024 decode 8 64 1 1 0 reg 0 2.0\n",
          "layernorm bf16 bf16 f32 1024 large 8 32 1 1 0 reg 0 2.0\n", "FILLER",
          LARGE_A_OTHER_TPR},
         100, NORMJIT_EFORMAT, 0, 0,
         "line 313: record for rmsnorm f16 hidden 4096 differs from line 10"},
        /* A duplicate replaces the record in its place: the decode record is now line 312's
           (tpr 256), compared with the prefill record of line 11. */
        {"duplicate brings a conflict", HEADER,
         {DECODE_A, "rmsnorm f16 f16 f16 4096 prefill 8 128 2 1 0 reg 0 5.0\n", "FILLER",
          "rmsnorm f16 f16 f16 4096 decode 8 256 1 1 0 reg 0 3.0\n"},
         100, NORMJIT_EFORMAT, 0, 0, "line 11: record for rmsnorm f16 hidden 4096 differs from line 312"},
        {"duplicate removes a conflict", HEADER,
         {"rmsnorm f16 f16 f16 4096 decode 8 256 1 1 0 reg 0 3.1\n",
          "rmsnorm f16 f16 f16 4096 prefill 8 128 2 1 0 reg 0 5.0\n", "FILLER", DECODE_A},
         100, NORMJIT_OK, 302, 0, NULL},
        /* A cluster on sm_80 drops its configuration's records wherever they are. */
        {"illegal records far apart", "device: X\ncc: 80\nfields: " NJ_TUNING_FIELDS_V1 "\n",
         {"layernorm bf16 bf16 f32 65536 decode 8 512 1 2 0 reg 0 10.0\n", "FILLER",
          "layernorm bf16 bf16 f32 65536 large 8 512 1 2 0 reg 0 80.5\n"},
         200, NORMJIT_OK, 600, 2, "line 4: "},
    };
    size_t i;
    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *text = table_with(cases[i].head, cases[i].parts, cases[i].filler);
        nj_tuning *t = NULL;
        int status = nj_tuning_parse(text, strlen(text), &t);
        const char *got = status ? normjit_last_error() : t ? t->dropped_why : "";
        if (status != cases[i].status ||
            (cases[i].message && strncmp(got, cases[i].message, strlen(cases[i].message))))
            fail_msg("%s: got %s \"%s\", expected %s \"%s\"", cases[i].what,
                     normjit_status_name(status), got, normjit_status_name(cases[i].status),
                     cases[i].message ? cases[i].message : "");
        if (status == NORMJIT_OK && (t->n != cases[i].n || t->dropped != cases[i].dropped))
            fail_msg("%s: %zu records, %zu dropped; expected %zu and %zu", cases[i].what, t->n,
                     t->dropped, cases[i].n, cases[i].dropped);
        nj_tuning_free(t);
        free(text);
    }
}

/* A duplicate keeps its first record's place and takes the last one's fields. */
static void test_duplicate_keeps_first_place(void **state)
{
    const char text[] = HEADER DECODE_A "rmsnorm f16 f16 f16 4096 prefill 8 128 2 1 0 reg 0 5.0\n"
                        "rmsnorm f16 f16 f16 4096 decode 8 128 4 1 0 reg 0 2.5\n";
    nj_tuning *t = parse_ok(text, strlen(text));
    (void)state;
    assert_int_equal(t->n, 2);
    assert_int_equal(t->records[0].bucket, NJ_BUCKET_DECODE);
    assert_int_equal(t->records[0].line, 12);
    assert_int_equal(t->records[0].plan.v.k.rpc, 4);
    assert_float_equal(t->records[0].us, 2.5, 1e-9);
    assert_int_equal(t->records[1].line, 11);
    nj_tuning_free(t);
}

/* The tables built into the library read without an error or a dropped record. */
static void test_shipped_tables_read(void **state)
{
    int i, n;
    const nj_tuning *const *tables = nj_shipped_tables(&n);
    (void)state;
    assert_int_equal(n, nj_shipped_tuning_count);
    for (i = 0; i < nj_shipped_tuning_count; i++) {
        nj_tuning *t = NULL;
        if (nj_tuning_parse(nj_shipped_tuning[i].text, nj_shipped_tuning[i].len, &t) != NORMJIT_OK)
            fail_msg("%s: %s", nj_shipped_tuning[i].name, normjit_last_error());
        if (t->dropped)
            fail_msg("%s: %zu records dropped (%s)", nj_shipped_tuning[i].name, t->dropped,
                     t->dropped_why);
        assert_int_equal(tables[i]->n, t->n);
        nj_tuning_free(t);
    }
}

static void test_load_file(void **state)
{
    char path[] = "/tmp/normjit-test-tuning-XXXXXX";
    const char bad[] = HEADER "rmsnorm f16 f16 f16 4096 decode 8 128 1 1 0 reg 0\n";
    nj_tuning *t = NULL;
    FILE *f;
    int fd;
    (void)state;
    fd = mkstemp(path);
    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    assert_non_null(f);
    fputs(table, f);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(nj_tuning_load(path, &t), NORMJIT_OK);
    assert_int_equal(t->n, 5);
    nj_tuning_free(t);

    f = fopen(path, "w");
    assert_non_null(f);
    fputs(bad, f);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(nj_tuning_load(path, &t), NORMJIT_EFORMAT);
    assert_null(t);
    assert_non_null(strstr(normjit_last_error(), path));
    assert_non_null(strstr(normjit_last_error(), "line 10: expected 14 fields"));

    assert_int_equal(unlink(path), 0);
    assert_int_equal(nj_tuning_load(path, &t), NORMJIT_EIO);
    assert_null(t);
}

static void test_matches(void **state)
{
    static const struct {
        const char *what;
        nj_device_key dev;
        int match;
    } cases[] = {
        {"same device", {"NVIDIA H100 80GB HBM3", 132, 90, 81559, 13000}, 1},
        {"another driver", {"NVIDIA H100 80GB HBM3", 132, 90, 81559, 12080}, 1},
        {"another name", {"NVIDIA H100 PCIe", 132, 90, 81559, 13000}, 0},
        {"other SM count", {"NVIDIA H100 80GB HBM3", 114, 90, 81559, 13000}, 0},
        {"other compute capability", {"NVIDIA H100 80GB HBM3", 132, 89, 81559, 13000}, 0},
        {"other memory", {"NVIDIA H100 80GB HBM3", 132, 90, 81558, 13000}, 0},
    };
    nj_tuning *t = parse_ok(table, strlen(table));
    size_t i;
    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (nj_tuning_matches(t, &cases[i].dev) != cases[i].match)
            fail_msg("%s: expected match %d", cases[i].what, cases[i].match);
    nj_tuning_free(t);
}

static void test_file_names_and_default_path(void **state)
{
    static const struct {
        const char *name;
        int sms;
        const char *file;
    } cases[] = {
        {"NVIDIA H100 80GB HBM3", 132, "nvidia-h100-80gb-hbm3-132sm.tuning"},
        {"NVIDIA GeForce RTX 4090", 128, "nvidia-geforce-rtx-4090-128sm.tuning"},
        {"  A100--SXM4 (40GB) ", 108, "a100-sxm4-40gb-108sm.tuning"},
    };
    nj_device_key dev;
    char out[320], *path;
    size_t i;
    (void)state;
    memset(&dev, 0, sizeof dev);
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(dev.name, sizeof dev.name, "%s", cases[i].name);
        dev.sms = cases[i].sms;
        nj_tuning_file_name(&dev, out, sizeof out);
        assert_string_equal(out, cases[i].file);
    }

    snprintf(dev.name, sizeof dev.name, "NVIDIA H100 80GB HBM3");
    dev.sms = 132;
    setenv("NORMJIT_TUNING_DIR", "/tuning/dir", 1);
    assert_int_equal(nj_tuning_default_path(&dev, &path), NORMJIT_OK);
    assert_string_equal(path, "/tuning/dir/nvidia-h100-80gb-hbm3-132sm.tuning");
    free(path);
    unsetenv("NORMJIT_TUNING_DIR");
    setenv("XDG_CONFIG_HOME", "/xdg", 1);
    assert_int_equal(nj_tuning_default_path(&dev, &path), NORMJIT_OK);
    assert_string_equal(path, "/xdg/normjit/tuning/nvidia-h100-80gb-hbm3-132sm.tuning");
    free(path);
    unsetenv("XDG_CONFIG_HOME");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_valid_table),
        cmocka_unit_test(test_parse_crlf_and_no_final_newline),
        cmocka_unit_test(test_lookup),
        cmocka_unit_test(test_illegal_record_drops_its_configuration),
        cmocka_unit_test(test_write_parse_round_trip),
        cmocka_unit_test(test_new_put_replaces_slot),
        cmocka_unit_test(test_malformed_tables),
        cmocka_unit_test(test_batch_invariance_enforced),
        cmocka_unit_test(test_checks_far_apart),
        cmocka_unit_test(test_duplicate_keeps_first_place),
        cmocka_unit_test(test_shipped_tables_read),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_matches),
        cmocka_unit_test(test_file_names_and_default_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
