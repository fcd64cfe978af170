#include "tune_policy.h"

#include <math.h>

/* The fastest candidate of layout `lay` in bucket b (lowest index on ties), or -1. */
static int best_of_layout(const nj_tune_result *c, int n, const nj_knobs *lay, int b)
{
    int i, best = -1;
    for (i = 0; i < n; i++)
        if (nj_knobs_same_layout(&c[i].k, lay) && isfinite(c[i].us[b]) &&
            (best < 0 || c[i].us[b] < c[best].us[b]))
            best = i;
    return best;
}

int nj_tune_choose(const nj_tune_result *c, int n, int chosen[NJ_BUCKETS])
{
    double best_any[NJ_BUCKETS], best_score = INFINITY;
    int i, b, winner = -1;

    for (b = 0; b < NJ_BUCKETS; b++) {
        best_any[b] = INFINITY;
        for (i = 0; i < n; i++)
            if (isfinite(c[i].us[b]) && c[i].us[b] < best_any[b])
                best_any[b] = c[i].us[b];
    }
    for (i = 0; i < n; i++) {
        double score = 0;
        int j, first = 1;
        /* Score each layout once, at its first candidate. */
        for (j = 0; j < i && first; j++)
            first = !nj_knobs_same_layout(&c[j].k, &c[i].k);
        if (!first)
            continue;
        for (b = 0; b < NJ_BUCKETS && isfinite(score); b++) {
            int k = best_of_layout(c, n, &c[i].k, b);
            score = k < 0 ? INFINITY : score + c[k].us[b] / best_any[b];
        }
        if (score < best_score) {
            best_score = score;
            winner = i;
        }
    }
    if (winner < 0)
        return 0;
    for (b = 0; b < NJ_BUCKETS; b++)
        chosen[b] = best_of_layout(c, n, &c[winner].k, b);
    return 1;
}
