#include "planner.h"

#include "ops.h"
#include "plan.h"

void nj_planner_layout_request(const nj_request *r, nj_request *out)
{
    const nj_op_desc *d = nj_op_desc_of(r->s.op);
    const int tin = nj_spec_input_dtype(&r->s);
    *out = *r;
    out->s.op = d ? d->layout_op : r->s.op;
    out->s.tx = out->s.ty = out->s.tw = tin;
    out->s.tr = out->s.quant = out->s.group = out->s.pow2 = out->s.cast = 0;
}

/* Plan `r` from these tables (first that answers), the heuristic for the layout. */
static void plan_from(const nj_tuning *const *tables, int n, int arch, const nj_request *r,
                      nj_plan *out)
{
    nj_request lr;
    nj_plan own;
    int i;

    nj_planner_layout_request(r, &lr);
    for (i = 0; i < n; i++)
        if (tables[i] && nj_tuning_lookup(tables[i], &lr, out))
            break;
    if (i == n)
        nj_plan_heuristic(&lr, arch, out);
    if (nj_spec_equal(&lr.s, &r->s)) {
        nj_plan_bucket_knobs(&out->v, r->bucket);
        return;
    }
    /* The request's own record, where a table has one of the same layout. */
    for (i = 0; i < n; i++)
        if (tables[i] && nj_tuning_lookup(tables[i], r, &own) &&
            nj_knobs_same_layout(&own.v.k, &out->v.k)) {
            *out = own;
            break;
        }
    out->v.s = r->s;
    nj_plan_fit(out, arch);
    /* Without a record of its own, a quantized output in registers asks the compiler for the
       occupancy that fits: its scales take registers the plain kernel's layout did not
       count on (fp8 token and group scales at 4096 x 8192 bf16: 45 and 51 registers, two
       512-thread CTAs per SM where the plain kernel fits three). RMSNorm's only, and group
       scales only where a thread holds at most two vectors: elsewhere the registers left
       spill (LayerNorm's at 12288 and 16384, 72-160 bytes), and group scales with three
       vectors a thread lost 1-8%. */
    if (i == n && r->s.quant && lr.s.op == NORMJIT_OP_RMSNORM && out->v.k.occ == 0 &&
        out->v.k.storage != NJ_STORAGE_STREAM &&
        (r->s.quant != NORMJIT_QUANT_GROUP || nj_variant_vectors_per_thread(&out->v) <= 2))
        out->v.k.occ = nj_plan_occ_target(&out->v);
    nj_plan_bucket_knobs(&out->v, r->bucket);
}

void nj_planner_plan(const nj_planner *p, const nj_request *r, nj_plan *out)
{
    const nj_tuning *tables[2];
    tables[0] = p->user;
    tables[1] = p->shipped;
    plan_from(tables, 2, p->arch, r, out);
}

static int add_plan(nj_plan *out, int n, int max, const nj_plan *p)
{
    int i;
    for (i = 0; i < n; i++)
        if (nj_variant_equal(&out[i].v, &p->v))
            return n;
    if (n < max)
        out[n++] = *p;
    return n;
}

int nj_planner_plans_for_arch(const nj_planner *p, const nj_request *r, nj_plan *out, int max)
{
    const nj_tuning *const *shipped;
    nj_plan plan;
    int n = 0, n_shipped, i;
    if (p->user) {
        plan_from(&p->user, 1, p->arch, r, &plan);
        n = add_plan(out, n, max, &plan);
    }
    shipped = nj_shipped_tables(&n_shipped);
    for (i = 0; i < n_shipped; i++)
        if (shipped[i]->device.cc == p->arch) {
            plan_from(&shipped[i], 1, p->arch, r, &plan);
            n = add_plan(out, n, max, &plan);
        }
    plan_from(NULL, 0, p->arch, r, &plan);
    return add_plan(out, n, max, &plan);
}
