/* Rendering a variant's kernel source from the templates. */
#ifndef NJ_RENDER_H
#define NJ_RENDER_H

#include "buf.h"
#include "templates.h"
#include "variant.h"

/*
 * Write the complete, self-contained source of `v` into `source` (the knobs
 * and the op's switches as #defines, params.h, common.cuh, then the op's
 * template) and its kernel name into `name`. The hidden size and every knob
 * become compile-time constants.
 */
int nj_render(const nj_templates *t, const nj_variant *v, nj_buf *source,
              char name[NJ_KERNEL_NAME_MAX]);

#endif
