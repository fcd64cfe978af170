#include "cache_key.h"

#include "hash.h"

int nj_cache_key(const nj_key_inputs *in, nj_buf *text, char digest[33])
{
    char source_digest[33];
    int i, status;
    nj_buf_reset(text);
    nj_buf_printf(text,
                  "normjit-cache-key\nschema: %d\nlibrary: %s\ntemplates: %s\nnvrtc: %d.%d\n"
                  "target: %s\n",
                  NJ_CACHE_SCHEMA, in->library_version, in->templates_digest,
                  in->target->nvrtc_major, in->target->nvrtc_minor, in->target->dir_name);
    /* One option a line: options containing spaces cannot alias a longer list. */
    for (i = 0; i < in->target->n_options; i++)
        nj_buf_printf(text, "option: %s\n", in->target->options[i]);
    nj_digest_hex(in->source, in->source_len, source_digest);
    nj_buf_printf(text, "kernel: %s\nvariant: %s\nsource: %zu bytes, digest %s\n",
                  in->kernel_name, in->variant, in->source_len, source_digest);
    if ((status = nj_buf_status(text)) != NORMJIT_OK)
        return status;
    nj_digest_hex(text->data, text->len, digest);
    return NORMJIT_OK;
}
