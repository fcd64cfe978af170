/*
 * Which plan a request gets: the user's tuning table, then the table shipped
 * for the device, then the heuristic; with the op table's layout rule on top.
 *
 * An op that shares another op's reduction layout (nj_op_desc.layout_op:
 * the fused add shares its unfused op's) takes the layout that op would get
 * for the same input dtype, hidden size and vector width, so that it gives
 * the unfused path's bits; its own records may still choose rows per CTA,
 * occupancy and grid size within that layout. Every epilogue of an op (y
 * dtype, weight dtype, cast, quantization) likewise keeps the layout of the
 * plain configuration (x = y = weight dtype), so one reduction order serves
 * them all, unless group quantization needs another (nj_plan_fit).
 */
#ifndef NJ_PLANNER_H
#define NJ_PLANNER_H

#include "tuning.h"

typedef struct nj_planner {
    int arch;                 /* compute capability */
    const nj_tuning *user;    /* the user's table, or NULL */
    const nj_tuning *shipped; /* the table shipped for this device, or NULL */
} nj_planner;

/* The plan a launch of `r` uses. */
void nj_planner_plan(const nj_planner *p, const nj_request *r, nj_plan *out);

/*
 * Every plan a launch of `r` may use on a GPU of the planner's architecture
 * that is not known yet (a compile-only context): the plan from the user's
 * table, from each shipped table of that architecture, and the heuristic's.
 * Returns how many (at most max), without repeats.
 */
int nj_planner_plans_for_arch(const nj_planner *p, const nj_request *r, nj_plan *out, int max);

/*
 * The request whose plan fixes the reduction layout of `r`: the op's layout
 * op with x, y and weight all of the input dtype and no epilogue.
 */
void nj_planner_layout_request(const nj_request *r, nj_request *out);

#endif
