/*
 * Checking a call's arguments against its op's row of the op table, and
 * turning them into the request (what kernel) and the parameter block (what
 * it reads and writes). Nothing here touches a GPU.
 */
#ifndef NJ_ARGS_H
#define NJ_ARGS_H

#include "launch.h"
#include "variant.h"

typedef struct nj_call {
    normjit_norm_args a; /* the caller's arguments, defaults filled in, strides resolved */
    nj_request r;        /* the kernel they need */
    int noop;            /* zero rows: nothing to launch */
} nj_call;

/*
 * Check everything about a call of `op`. NORMJIT_OK, or an error with a
 * message naming the argument; nothing is written anywhere.
 */
int nj_call_check(int op, const normjit_norm_args *in, nj_call *out);

/* The kernel parameter block of a checked call. */
void nj_call_params(const nj_call *c, nj_params *out);

/*
 * Check normjit_prepare_args (copied into *a, defaults filled) and give the
 * spec its calls would have for hidden[i] (the hidden field is left 0).
 */
int nj_prepare_check(const normjit_prepare_args *in, normjit_prepare_args *a, nj_spec *spec);

/* The widest vector (elements) a hidden size allows with every tensor 16-byte aligned. */
int nj_widest_vec(const nj_spec *s);

/* Copy a caller's versioned struct into `dst` (zeroed first). Fails on too small or unknown tail. */
int nj_copy_versioned(void *dst, size_t dst_size, size_t min_size, const void *src,
                      uint32_t src_size, const char *what);

#endif
