/*
 * Choosing knobs: the heuristic for requests no tuning table covers, the
 * tuner's search space, and fitting a layout to an epilogue.
 *
 * Batch invariance: the knobs that fix a row's reduction order (vec, tpr,
 * cluster, storage: nj_knobs_same_layout) depend on the op, dtypes, hidden
 * size and alignment only, never on the row count. Buckets may differ only
 * in rpc, occupancy and grid size.
 */
#ifndef NJ_PLAN_H
#define NJ_PLAN_H

#include "variant.h"

/* The smallest legal threads-per-row value at least t (0 if above the CTA limit). */
int nj_legal_tpr(int64_t t);

/* The heuristic's plan for `r` on compute capability `arch`. Always legal (nj_variant_check). */
void nj_plan_heuristic(const nj_request *r, int arch, nj_plan *out);

/*
 * Make a plan's layout fit its epilogue (group quantization needs whole
 * groups per lane set; staged storage's copies must fit shared memory, the
 * fused add's residual included): changes tpr, rpc and staged to register
 * storage only as a function of the spec and vec, never of the bucket, so
 * batch invariance holds. A plan that already fits is left alone.
 */
void nj_plan_fit(nj_plan *p, int arch);

/*
 * The tuner's search space for `r` (one list for `normjit tune` and
 * `--explore`): every legal variant of every layout (threads per row,
 * cluster, storage reg or stream; vec is the request's), each with its
 * rows-per-CTA options and with and without an occupancy asked of the
 * compiler. With
 * `layout` not NULL, only that layout (the ops that share another op's
 * layout). Returns how many were written (at most max).
 */
int nj_plan_candidates(const nj_request *r, int arch, const nj_knobs *layout, nj_variant *out,
                       int max);
/*
 * The knobs a variant gets from its bucket, after its layout: wload, and in the
 * decode bucket no occupancy (a few rows leave each SM one CTA at most, so an
 * occupancy asked of the compiler only caps its registers). The weights are
 * read with the row
 *  - in the decode bucket, wherever they (LayerNorm's weight and bias) fit in
 *    registers beside the row: their round trips after the reductions, one per
 *    vector a thread holds, were 0.1-0.6 us of a 2-4 us call (1 x 1024 to
 *    64 x 16384 bf16, H100);
 *  - for the RMSNorm family in the other buckets, when a thread holds at most
 *    32 bytes of the row (48 bytes, 704-thread CTAs at hidden 16384, lost a
 *    third of the bandwidth at 131072 rows);
 * otherwise at each vector's output (LayerNorm's weight and bias read early
 * measured 1-2.5% slower from 4096 x 8192 up; docs/PERFORMANCE.md).
 * Neither changes any arithmetic: every bucket of a configuration computes the
 * same bits.
 */
void nj_plan_bucket_knobs(nj_variant *v, int bucket);

/* The grid sizes (ctas_per_sm: 0 is one CTA per row group) worth trying for a bucket. */
int nj_plan_grid_options(int bucket, int *out, int max);

/*
 * The occupancy to ask the compiler for (occ knob): the CTAs per SM that fit
 * if a thread uses about 24 registers beyond its share of the row (at least
 * 40 in all); 0 when that is under two (nothing to ask for).
 */
int nj_plan_occ_target(const nj_variant *v);

#endif
