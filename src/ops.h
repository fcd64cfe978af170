/*
 * The operation table: one row per normjit_op, read by every layer.
 *
 * A row says which tensors the op takes (validation, the launch parameters,
 * the benchmark's buffers and byte count), which template and switches
 * render its kernel, whose reduction layout it shares (so a fused op gives
 * the bits of its unfused form, and the tuner searches layouts only for ops
 * that own theirs), and its names on the command line and in Python.
 * Adding an operation is a row here plus a template or a switch in one
 * (docs/ARCHITECTURE.md, "Adding an operation").
 */
#ifndef NJ_OPS_H
#define NJ_OPS_H

#include "normjit.h"

/* The tensors of normjit_norm_args, as bits of nj_op_desc.tensors. */
enum {
    NJ_T_X = 1u << 0,       /* x: read */
    NJ_T_Y = 1u << 1,       /* y: written */
    NJ_T_W = 1u << 2,       /* weight: read, optional */
    NJ_T_B = 1u << 3,       /* bias: read, optional */
    NJ_T_RES = 1u << 4,     /* residual: read */
    NJ_T_RES_OUT = 1u << 5, /* residual_out: written */
    NJ_T_RSTD = 1u << 6,    /* rstd: written, optional */
    NJ_T_MEAN = 1u << 7,    /* mean: written, optional */
    NJ_T_HEADS = 1u << 8    /* heads and head strides (QK-norm addressing) */
};

typedef struct nj_op_desc {
    int op;                    /* normjit_op */
    const char *name;          /* CLI, cache and kernel name: "add_rmsnorm" */
    const char *python;        /* the Python function: "fused_add_rms_norm" */
    const char *python_args;   /* its arguments, as the binding documents them */
    const char *template_file; /* the kernel template: "rmsnorm.cu" */
    const char *defines;       /* the template's switches for this op */
    int layout_op;             /* the op whose reduction layout this one uses (itself, or
                                  the unfused op whose bits it must reproduce) */
    unsigned tensors;          /* NJ_T_* the op takes */
    unsigned required;         /* NJ_T_* it needs (when rows > 0) */
    int quant;                 /* 1: quantized outputs are allowed */
    int statistic_mean;        /* 1: LayerNorm family (a mean to subtract and write) */
} nj_op_desc;

/* The row of `op`, or NULL if it is not a normjit_op. */
const nj_op_desc *nj_op_desc_of(int op);
/* The row named `name` (nj_op_desc.name), or NULL. */
const nj_op_desc *nj_op_desc_named(const char *name);
/* Every row, in normjit_op order: *n is set to the count. */
const nj_op_desc *nj_op_table(int *n);

#endif
