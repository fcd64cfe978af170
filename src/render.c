#include "render.h"

#include "ops.h"

#include <stdio.h>

/* The kernel-side type of a dtype (common.cuh). */
static const char *type_of(int dtype)
{
    switch (dtype) {
    case NORMJIT_DTYPE_F16:
        return "nj_f16";
    case NORMJIT_DTYPE_BF16:
        return "nj_bf16";
    case NORMJIT_DTYPE_FP8_E4M3:
        return "nj_e4m3";
    case NORMJIT_DTYPE_FP8_E5M2:
        return "nj_e5m2";
    case NORMJIT_DTYPE_INT8:
        return "signed char";
    default:
        return "float";
    }
}

static int append_file(const nj_templates *t, const char *file, nj_buf *source)
{
    const nj_template_file *f = nj_template_find(t, file);
    if (!f)
        return nj_fail(NORMJIT_EIO, "kernel template %s missing from %s", file, t->origin);
    nj_buf_printf(source, "#line 1 \"%s\"\n", file);
    nj_buf_append(source, f->text, f->len);
    nj_buf_puts(source, "\n");
    return NORMJIT_OK;
}

int nj_render(const nj_templates *t, const nj_variant *v, nj_buf *source,
              char name[NJ_KERNEL_NAME_MAX])
{
    const nj_op_desc *d = nj_op_desc_of(v->s.op);
    const nj_spec *s = &v->s;
    int status;

    if (!d)
        return nj_fail(NORMJIT_EUNSUPPORTED, "op %d has no kernel template", s->op);
    nj_variant_name(v, name, NJ_KERNEL_NAME_MAX);
    nj_buf_reset(source);
    nj_buf_puts(source, "// normjit kernel: ");
    nj_variant_describe(v, source);
    nj_buf_printf(source,
                  "\n#define NJ_RENDERED 1\n#define NJ_KERNEL_NAME %s\n"
                  "#define NJ_TX %s\n#define NJ_TY %s\n#define NJ_TW %s\n"
                  "#define NJ_H %lld\n#define NJ_VEC %d\n#define NJ_TPR %d\n#define NJ_RPC %d\n"
                  "#define NJ_CLUSTER %d\n#define NJ_MIN_CTAS %d\n#define NJ_STORAGE %d\n",
                  name, type_of(s->tx), type_of(s->ty), type_of(s->tw), (long long)s->hidden,
                  v->k.vec, v->k.tpr, v->k.rpc, v->k.cluster, v->k.occ, v->k.storage);
    if (v->k.wload)
        nj_buf_printf(source, "#define NJ_WLOAD %d\n", v->k.wload);
    nj_buf_puts(source, d->defines);
    if (s->tr)
        nj_buf_printf(source, "#define NJ_TR %s\n", type_of(s->tr));
    if (s->quant)
        /* %a: the exact float, whatever the locale */
        nj_buf_printf(source, "#define NJ_QUANT %d\n#define NJ_GROUP %d\n#define NJ_POW2 %d\n"
                              "#define NJ_QMAX %af\n",
                      s->quant, s->group ? s->group : 1, s->pow2, (double)nj_dtype_qmax(s->ty));
    if (s->cast)
        nj_buf_printf(source, "#define NJ_CAST %d\n", s->cast);
    if ((status = append_file(t, "params.h", source)) != NORMJIT_OK ||
        (status = append_file(t, "common.cuh", source)) != NORMJIT_OK ||
        (status = append_file(t, d->template_file, source)) != NORMJIT_OK)
        return status;
    return nj_buf_status(source);
}
