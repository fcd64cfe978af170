/*
 * The disk cache key: labelled text naming everything that goes into NVRTC
 * (never what comes out), and its digest. The rendered source enters as its
 * own digest next to the template digest and the knobs that produced it; the
 * entry stores the full key text and a lookup compares it byte for byte, so
 * a collision of the key's digest can never load the wrong kernel.
 */
#ifndef NJ_CACHE_KEY_H
#define NJ_CACHE_KEY_H

#include "buf.h"
#include "compiler.h"

/* Bump when the entry format or the meaning of a key changes. */
#define NJ_CACHE_SCHEMA 2

typedef struct nj_key_inputs {
    const char *library_version;  /* NORMJIT_VERSION_STRING */
    const char *templates_digest; /* nj_templates.digest */
    const nj_target *target;      /* architecture, NVRTC version, options */
    const char *kernel_name;
    const char *variant;          /* nj_variant_describe() */
    const char *source;           /* the rendered source */
    size_t source_len;
} nj_key_inputs;

/* Fill `text` with the key text and `digest` with its hex digest. */
int nj_cache_key(const nj_key_inputs *in, nj_buf *text, char digest[33]);

#endif
