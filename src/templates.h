/*
 * The kernel templates: embedded in the library at build time, or read from
 * $NORMJIT_KERNEL_DIR (for working on kernels without rebuilding), plus a
 * digest of all their bytes that goes into every cache key.
 */
#ifndef NJ_TEMPLATES_H
#define NJ_TEMPLATES_H

#include <stddef.h>

typedef struct nj_template_file {
    const char *name; /* file name in kernel_src/, e.g. "rmsnorm.cu" */
    const char *text; /* NUL-terminated */
    size_t len;
} nj_template_file;

extern const nj_template_file nj_embedded_templates[];
extern const int nj_embedded_template_count;

typedef struct nj_templates {
    const nj_template_file *files;
    int count;
    char digest[33]; /* hex digest over every file's name and bytes */
    const char *origin; /* "embedded" or the override directory */
} nj_templates;

/* The process's templates, loaded once. Fails if $NORMJIT_KERNEL_DIR is set but unreadable. */
int nj_templates_get(const nj_templates **out);

/* The template called `name`, or NULL. */
const nj_template_file *nj_template_find(const nj_templates *t, const char *name);

#endif
