/*
 * Choosing a variant for a request.
 *
 * Batch invariance: the knobs that fix a row's reduction order (vec, tpr,
 * cluster, storage) depend on the op, dtypes, hidden size and alignment only,
 * never on the row count. Buckets may differ only in rpc and grid size.
 */
#ifndef NJ_PLAN_H
#define NJ_PLAN_H

#include "variant.h"

/* The smallest legal threads-per-row value at least t (0 if above the CTA limit). */
int nj_legal_tpr(int64_t t);

/* The heuristic's plan for `r` on compute capability `arch`. Always legal (nj_variant_check). */
void nj_plan_heuristic(const nj_request *r, int arch, nj_plan *out);

/*
 * The tuner's search space. Layouts fix the reduction (tpr, cluster,
 * storage; vec is the request's): returns how many were written (at most
 * max). Rows per CTA to try for a layout: returns how many (at most 3).
 * Grid sizes (ctas_per_sm) are a launch-time choice the tuner adds.
 */
int nj_plan_layouts(const nj_request *r, int arch, nj_knobs *out, int max);
int nj_plan_rpc_options(int tpr, int *out);
/*
 * The occupancy to ask the compiler for (occ knob): the CTAs per SM that fit
 * if a thread uses about 24 registers beyond its share of the row (at least
 * 40 in all); 0 when
 * that is under two (nothing to ask for).
 */
int nj_plan_occ_target(const nj_variant *v);

#endif
