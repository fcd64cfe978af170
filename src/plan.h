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

/* The heuristic's plan for `r` on compute capability `arch`. Always legal (nj_variant_check). */
void nj_plan_heuristic(const nj_request *r, int arch, nj_plan *out);

#endif
