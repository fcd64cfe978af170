/*
 * Which measured candidate the tuner keeps: a policy on timings, separate
 * from measuring them, so that it is unit-tested on synthetic numbers.
 *
 * One reduction layout (nj_knobs_same_layout) must serve every row-count
 * bucket of a configuration, so that a row's result never depends on the
 * batch: the layout whose best times, relative to the best of any layout in
 * each bucket, sum to the least. Each bucket then keeps its own fastest
 * candidate of that layout (rows per CTA, occupancy, grid size).
 */
#ifndef NJ_TUNE_POLICY_H
#define NJ_TUNE_POLICY_H

#include "variant.h"

typedef struct nj_tune_result {
    nj_knobs k;                   /* the candidate's knobs */
    double us[NJ_BUCKETS];        /* best time per bucket; not finite: not measured or wrong */
    int ctas_per_sm[NJ_BUCKETS];  /* the grid size that gave it */
} nj_tune_result;

/*
 * Choose, for every bucket, the index of the candidate to keep (all of one
 * layout). Layouts without a valid time in every bucket are not eligible.
 * Ties go to the candidate listed first. Returns 1, or 0 when no layout is
 * eligible (chosen[] untouched).
 */
int nj_tune_choose(const nj_tune_result *c, int n, int chosen[NJ_BUCKETS]);

#endif
