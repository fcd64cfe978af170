#include "render.h"

#include <stdio.h>

static const char *type_of(int dtype)
{
    switch (dtype) {
    case NORMJIT_DTYPE_F16:
        return "nj_f16";
    case NORMJIT_DTYPE_BF16:
        return "nj_bf16";
    default:
        return "float";
    }
}

int nj_render(const nj_templates *t, const nj_variant *v, nj_buf *source,
              char name[NJ_KERNEL_NAME_MAX])
{
    char file[32];
    const nj_template_file *common = nj_template_find(t, "common.cuh");
    const nj_template_file *op;

    snprintf(file, sizeof file, "%s.cu", nj_op_name(v->op));
    op = nj_template_find(t, file);
    if (!common || !op)
        return nj_fail(NORMJIT_EIO, "kernel template %s missing from %s",
                       common ? file : "common.cuh", t->origin);

    nj_variant_name(v, name, NJ_KERNEL_NAME_MAX);
    nj_buf_reset(source);
    nj_buf_puts(source, "// normjit kernel: ");
    nj_variant_describe(v, source);
    nj_buf_printf(source,
                  "\n#define NJ_KERNEL_NAME %s\n"
                  "#define NJ_TX %s\n#define NJ_TY %s\n#define NJ_TW %s\n"
                  "#define NJ_H %lld\n#define NJ_VEC %d\n#define NJ_TPR %d\n#define NJ_RPC %d\n"
                  "#define NJ_CLUSTER %d\n#define NJ_MIN_CTAS %d\n#define NJ_STORAGE %d\n",
                  name, type_of(v->tx), type_of(v->ty), type_of(v->tw), (long long)v->hidden,
                  v->k.vec, v->k.tpr, v->k.rpc, v->k.cluster, v->k.occ, v->k.storage);
    nj_buf_puts(source, "#line 1 \"common.cuh\"\n");
    nj_buf_append(source, common->text, common->len);
    nj_buf_printf(source, "\n#line 1 \"%s\"\n", file);
    nj_buf_append(source, op->text, op->len);
    return nj_buf_status(source);
}
