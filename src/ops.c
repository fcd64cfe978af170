#include "ops.h"

#include <string.h>

#define NJ_NORM_TENSORS (NJ_T_X | NJ_T_Y | NJ_T_W | NJ_T_RSTD)
#define NJ_ADD_TENSORS (NJ_T_RES | NJ_T_RES_OUT)

static const nj_op_desc table[] = {
    {NORMJIT_OP_RMSNORM, "rmsnorm", "rms_norm", "x, weight=None, eps=1e-6", "rmsnorm.cu", "",
     NORMJIT_OP_RMSNORM, NJ_NORM_TENSORS, NJ_T_X | NJ_T_Y, 1, 0},
    {NORMJIT_OP_LAYERNORM, "layernorm", "layer_norm", "x, weight=None, bias=None, eps=1e-5",
     "layernorm.cu", "", NORMJIT_OP_LAYERNORM, NJ_NORM_TENSORS | NJ_T_B | NJ_T_MEAN,
     NJ_T_X | NJ_T_Y, 1, 1},
    {NORMJIT_OP_ADD_RMSNORM, "add_rmsnorm", "fused_add_rms_norm",
     "x, residual, weight=None, eps=1e-6", "rmsnorm.cu", "#define NJ_ADD 1\n",
     NORMJIT_OP_RMSNORM, NJ_NORM_TENSORS | NJ_ADD_TENSORS,
     NJ_T_X | NJ_T_Y | NJ_ADD_TENSORS, 1, 0},
    {NORMJIT_OP_ADD_LAYERNORM, "add_layernorm", "fused_add_layer_norm",
     "x, residual, weight=None, bias=None, eps=1e-5", "layernorm.cu", "#define NJ_ADD 1\n",
     NORMJIT_OP_LAYERNORM, NJ_NORM_TENSORS | NJ_T_B | NJ_T_MEAN | NJ_ADD_TENSORS,
     NJ_T_X | NJ_T_Y | NJ_ADD_TENSORS, 1, 1},
    {NORMJIT_OP_QK_RMSNORM, "qk_rmsnorm", "qk_rms_norm", "x, weight, eps=1e-6", "rmsnorm.cu",
     "#define NJ_QK 1\n", NORMJIT_OP_QK_RMSNORM, NJ_NORM_TENSORS | NJ_T_HEADS,
     NJ_T_X | NJ_T_Y, 0, 0},
};

#define NJ_N_OPS ((int)(sizeof table / sizeof table[0]))

const nj_op_desc *nj_op_desc_of(int op)
{
    /* Rows are in normjit_op order, from 1. */
    return op >= 1 && op <= NJ_N_OPS ? &table[op - 1] : NULL;
}

const nj_op_desc *nj_op_desc_named(const char *name)
{
    int i;
    for (i = 0; name && i < NJ_N_OPS; i++)
        if (!strcmp(table[i].name, name))
            return &table[i];
    return NULL;
}

const nj_op_desc *nj_op_table(int *n)
{
    *n = NJ_N_OPS;
    return table;
}
