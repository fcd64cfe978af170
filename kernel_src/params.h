/*
 * The one parameter block every normjit kernel takes, by value.
 *
 * This file is read by both sides of the launch: the C library includes it
 * to fill the block (src/launch.c), and the renderer puts it in front of
 * every kernel (kernel_src/common.cuh). The field list exists once, below;
 * a unit test compiles the struct with NVRTC and checks each field's offset
 * against the C compiler's, so the two sides cannot drift apart.
 *
 * Written in the subset of C and CUDA C++ both compilers read, with no
 * header: pointers and long long (64 bits on every supported target).
 */
#ifndef NJ_PARAMS_H
#define NJ_PARAMS_H

/* X(type, name): every field, in order. Pointers first, then 64-bit integers, then floats. */
#define NJ_PARAM_FIELDS(X)                                                                    \
    X(const void *, x)               /* input rows */                                         \
    X(void *, y)                     /* output rows (quantized codes with a quant mode) */   \
    X(const void *, w)               /* weight, or null (1) */                                \
    X(const void *, b)               /* bias, or null (0) */                                  \
    X(const void *, res)             /* residual rows (fused add) */                          \
    X(void *, res_out)               /* the rounded sum x + residual (fused add) */          \
    X(float *, rstd)                 /* per-row rstd out, or null */                          \
    X(float *, mean)                 /* per-row mean out, or null */                          \
    X(const float *, scale)          /* quant: tensor scale, or the token amax cap */         \
    X(float *, scales)               /* quant: per-row or per-group scales out */             \
    X(long long, rows)               /* rows to normalize (tokens x heads for QK-norm) */     \
    X(long long, x_stride)           /* elements between rows (tokens) of x */                \
    X(long long, y_stride)                                                                    \
    X(long long, res_stride)                                                                  \
    X(long long, res_out_stride)                                                              \
    X(long long, heads)              /* QK-norm: heads per token, else 1 */                   \
    X(long long, x_head_stride)      /* QK-norm: elements between heads */                    \
    X(long long, y_head_stride)                                                               \
    X(long long, scales_row_stride)  /* scales[row * row_stride + group * group_stride] */   \
    X(long long, scales_group_stride)                                                         \
    X(float, eps)                                                                             \
    X(float, w_offset)               /* 1 for (1 + w), else 0 */                              \
    X(float, min_scale)              /* quant: smallest scale */                              \
    X(float, unused0)                /* keeps the size a multiple of 8 */

typedef struct nj_params {
#define NJ_PARAM_DECLARE_(type, name) type name;
    NJ_PARAM_FIELDS(NJ_PARAM_DECLARE_)
#undef NJ_PARAM_DECLARE_
} nj_params;

#endif
