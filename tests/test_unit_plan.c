/*
 * The tuner's policy and search space on synthetic numbers: one reduction
 * layout for every bucket (batch invariance), the least total slowdown
 * against each bucket's best, ties to the first candidate, layouts missing a
 * bucket never chosen; the candidate space is legal, fixed-layout lists keep
 * the layout, and tune and --explore share the grid options.
 */
#include "plan.h"
#include "tune_policy.h"

#include <math.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#define INF INFINITY

static nj_tune_result cand(int tpr, int rpc, int cluster, double d, double p, double l)
{
    nj_tune_result r;
    memset(&r, 0, sizeof r);
    r.k.vec = 8;
    r.k.tpr = tpr;
    r.k.rpc = rpc;
    r.k.cluster = cluster;
    r.k.storage = NJ_STORAGE_REG;
    r.us[0] = d;
    r.us[1] = p;
    r.us[2] = l;
    r.ctas_per_sm[0] = r.ctas_per_sm[1] = r.ctas_per_sm[2] = rpc; /* to tell them apart */
    return r;
}

static void test_one_layout_for_every_bucket(void **state)
{
    /* Layout 128 wins decode, layout 64 wins prefill and large by more: 64 is chosen, and
       each bucket takes its fastest rows-per-CTA of layout 64. */
    const nj_tune_result c[] = {
        cand(128, 1, 1, 2.0, 20.0, 200.0),
        cand(64, 2, 1, 2.2, 16.0, 170.0),
        cand(64, 4, 1, 2.5, 15.0, 180.0),
        cand(256, 1, 1, 2.1, 30.0, 150.0),
    };
    int chosen[NJ_BUCKETS];
    (void)state;
    /* scores: 128: 1 + 20/15 + 200/150 = 3.67; 64: 1.1 + 1 + 170/150 = 3.23; 256: 1.05 + 2 + 1 */
    assert_int_equal(nj_tune_choose(c, 4, chosen), 1);
    assert_int_equal(chosen[0], 1);
    assert_int_equal(chosen[1], 2);
    assert_int_equal(chosen[2], 1);
    assert_true(nj_knobs_same_layout(&c[chosen[0]].k, &c[chosen[1]].k));
    assert_true(nj_knobs_same_layout(&c[chosen[1]].k, &c[chosen[2]].k));
}

static void test_layout_missing_a_bucket_is_not_eligible(void **state)
{
    /* The fastest everywhere it ran, but it failed (or was wrong) in the large bucket. */
    const nj_tune_result c[] = {
        cand(128, 1, 1, 1.0, 10.0, INF),
        cand(64, 2, 1, 2.0, 20.0, 200.0),
    };
    const nj_tune_result none[] = {
        cand(128, 1, 1, 1.0, INF, 3.0),
        cand(64, 2, 1, INF, 20.0, 200.0),
    };
    int chosen[NJ_BUCKETS] = {-7, -7, -7};
    (void)state;
    assert_int_equal(nj_tune_choose(c, 2, chosen), 1);
    assert_int_equal(chosen[0], 1);
    assert_int_equal(chosen[2], 1);
    /* Another candidate of the same layout can serve the missing bucket. */
    {
        const nj_tune_result c2[] = {
            cand(128, 1, 1, 1.0, 10.0, INF),
            cand(64, 2, 1, 2.0, 20.0, 200.0),
            cand(128, 2, 1, INF, INF, 150.0),
        };
        assert_int_equal(nj_tune_choose(c2, 3, chosen), 1);
        assert_int_equal(chosen[0], 0);
        assert_int_equal(chosen[1], 0);
        assert_int_equal(chosen[2], 2);
    }
    chosen[0] = chosen[1] = chosen[2] = -7;
    assert_int_equal(nj_tune_choose(none, 2, chosen), 0);
    assert_int_equal(chosen[0], -7); /* untouched */
    assert_int_equal(nj_tune_choose(none, 0, chosen), 0);
}

static void test_ties_go_to_the_first(void **state)
{
    const nj_tune_result c[] = {
        cand(64, 2, 1, 5.0, 5.0, 5.0),
        cand(128, 1, 1, 5.0, 5.0, 5.0),
        cand(64, 4, 1, 5.0, 5.0, 5.0),
    };
    int chosen[NJ_BUCKETS];
    (void)state;
    assert_int_equal(nj_tune_choose(c, 3, chosen), 1);
    assert_int_equal(chosen[0], 0);
    assert_int_equal(chosen[1], 0);
    assert_int_equal(chosen[2], 0);
}

static void test_cluster_and_storage_are_layout(void **state)
{
    /* Same tpr, another cluster size: another layout; never mixed across buckets. */
    nj_tune_result c[] = {
        cand(512, 1, 1, 3.0, 30.0, 300.0),
        cand(512, 1, 2, 2.0, 40.0, 400.0),
    };
    int chosen[NJ_BUCKETS];
    (void)state;
    assert_int_equal(nj_tune_choose(c, 2, chosen), 1);
    assert_int_equal(chosen[0], chosen[1]);
    assert_int_equal(chosen[1], chosen[2]);
    c[1].k.cluster = 1;
    c[1].k.storage = NJ_STORAGE_STREAM;
    assert_int_equal(nj_tune_choose(c, 2, chosen), 1);
    assert_int_equal(chosen[0], chosen[2]);
    /* Staged storage holds the row in the registers register storage does: one layout, so
       each bucket takes the faster of the two. */
    c[1].k.storage = NJ_STORAGE_STAGED;
    assert_true(nj_knobs_same_layout(&c[0].k, &c[1].k));
    assert_int_equal(nj_tune_choose(c, 2, chosen), 1);
    assert_int_equal(chosen[0], 1);
    assert_int_equal(chosen[1], 0);
    assert_int_equal(chosen[2], 0);
}

static nj_request request(int op, int dtype, int64_t hidden)
{
    nj_request r;
    memset(&r, 0, sizeof r);
    r.s.op = op;
    r.s.tx = r.s.ty = r.s.tw = dtype;
    r.s.hidden = hidden;
    r.vec = 16 / (dtype == NORMJIT_DTYPE_F32 ? 4 : 2);
    while (hidden % r.vec)
        r.vec /= 2;
    r.bucket = NJ_BUCKET_PREFILL;
    return r;
}

static void test_candidate_space(void **state)
{
    static const int64_t sizes[] = {128, 2880, 4096, 65536, 131072};
    nj_variant v[400], w[400];
    size_t i;
    int n, m, j, k, arch;
    (void)state;
    for (arch = 80; arch <= 90; arch += 10)
        for (i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            nj_request r = request(NORMJIT_OP_RMSNORM, NORMJIT_DTYPE_BF16, sizes[i]);
            nj_plan h;
            int has_heuristic_layout = 0, staged = 0;
            n = nj_plan_candidates(&r, arch, NULL, v, 400);
            assert_true(n > 0 && n < 400);
            nj_plan_heuristic(&r, arch, &h);
            for (j = 0; j < n; j++) {
                assert_int_equal(nj_variant_check(&v[j], arch), NORMJIT_OK);
                assert_true(nj_spec_equal(&v[j].s, &r.s));
                assert_int_equal(v[j].k.vec, r.vec);
                has_heuristic_layout |= nj_knobs_same_layout(&v[j].k, &h.v.k);
                staged += v[j].k.storage == NJ_STORAGE_STAGED;
                for (k = 0; k < j; k++)
                    assert_false(nj_variant_equal(&v[j], &v[k]));
            }
            assert_true(has_heuristic_layout);
            /* Staged storage only through a tuning table's record. */
            assert_int_equal(staged, 0);
            /* A fixed layout: only rows per CTA and occupancy vary. */
            m = nj_plan_candidates(&r, arch, &v[0].k, w, 400);
            assert_true(m >= 1);
            for (j = 0; j < m; j++)
                assert_true(nj_knobs_same_layout(&w[j].k, &v[0].k));
        }
}

/* A variant of `op` at `hidden` with `tpr` threads a row, one row per CTA, no cluster. */
static nj_variant held_variant(int op, int dtype, int64_t hidden, int tpr, int storage, int occ)
{
    nj_request r = request(op, dtype, hidden);
    nj_variant v;
    memset(&v, 0, sizeof v);
    v.s = r.s;
    v.k.vec = r.vec;
    v.k.tpr = tpr;
    v.k.rpc = v.k.cluster = 1;
    v.k.storage = storage;
    v.k.occ = occ;
    v.k.wload = NJ_WLOAD_LATE;
    return v;
}

/* The decode bucket reads the weights (LayerNorm's bias too) with the row wherever they fit in
   registers, and asks for no occupancy; other buckets keep the record's occupancy and read the
   weights early only for the RMSNorm family up to 32 bytes of a row a thread. Neither changes
   the layout. */
static void test_bucket_knobs(void **state)
{
    enum {
        LN = NORMJIT_OP_LAYERNORM,
        RMS = NORMJIT_OP_RMSNORM,
        BF16 = NORMJIT_DTYPE_BF16,
        F32 = NORMJIT_DTYPE_F32,
        REG = NJ_STORAGE_REG,
        EARLY = NJ_WLOAD_EARLY,
        LATE = NJ_WLOAD_LATE
    };
    static const struct {
        int op, dtype;
        int64_t hidden;
        int tpr, storage, decode_wload, other_wload;
    } cases[] = {
        {LN, BF16, 4096, 256, REG, EARLY, LATE},               /* 2 vectors a thread */
        {LN, BF16, 8192, 256, REG, EARLY, LATE},               /* 4 */
        {LN, F32, 32768, 1024, REG, LATE, LATE},               /* 120 registers */
        {LN, BF16, 65536, 1024, NJ_STORAGE_STREAM, LATE, LATE},
        {RMS, BF16, 4096, 256, REG, EARLY, EARLY},             /* 32 bytes a thread */
        {RMS, BF16, 4096, 128, REG, EARLY, LATE},              /* 64 */
        {RMS, F32, 65536, 1024, REG, LATE, LATE},              /* 152 registers */
    };
    size_t i;
    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        nj_variant d = held_variant(cases[i].op, cases[i].dtype, cases[i].hidden, cases[i].tpr,
                                    cases[i].storage, 6),
                   l = d;
        nj_plan_bucket_knobs(&d, NJ_BUCKET_DECODE);
        nj_plan_bucket_knobs(&l, NJ_BUCKET_LARGE);
        assert_int_equal(d.k.wload, cases[i].decode_wload);
        assert_int_equal(d.k.occ, 0);
        assert_int_equal(l.k.wload, cases[i].other_wload);
        assert_int_equal(l.k.occ, 6);
        assert_true(nj_knobs_same_layout(&d.k, &l.k));
    }
}

static void test_grid_options(void **state)
{
    int g[8], n;
    (void)state;
    n = nj_plan_grid_options(NJ_BUCKET_DECODE, g, 8);
    assert_int_equal(n, 1);
    assert_int_equal(g[0], 0);
    n = nj_plan_grid_options(NJ_BUCKET_LARGE, g, 8);
    assert_true(n >= 2);
    assert_int_equal(g[0], 0);
    assert_int_equal(nj_plan_grid_options(NJ_BUCKET_LARGE, g, 1), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_layout_for_every_bucket),
        cmocka_unit_test(test_layout_missing_a_bucket_is_not_eligible),
        cmocka_unit_test(test_ties_go_to_the_first),
        cmocka_unit_test(test_cluster_and_storage_are_layout),
        cmocka_unit_test(test_candidate_space),
        cmocka_unit_test(test_grid_options),
        cmocka_unit_test(test_bucket_knobs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
