/* A growable byte buffer, always NUL-terminated, for rendered sources, keys and files. */
#ifndef NJ_BUF_H
#define NJ_BUF_H

#include "status.h"

#include <stddef.h>

typedef struct nj_buf {
    char *data;
    size_t len;
    size_t cap;
    int oom; /* set once an append failed; later appends are ignored */
} nj_buf;

void nj_buf_free(nj_buf *b);
void nj_buf_reset(nj_buf *b);
/* Make room for `extra` more bytes (plus the NUL); 0 and b->oom set on failure. */
int nj_buf_reserve(nj_buf *b, size_t extra);
void nj_buf_append(nj_buf *b, const void *data, size_t len);
void nj_buf_puts(nj_buf *b, const char *s);
void nj_buf_printf(nj_buf *b, const char *fmt, ...) NJ_PRINTF(2, 3);
/* NORMJIT_OK, or NORMJIT_ENOMEM (with a message) if any append failed. */
int nj_buf_status(const nj_buf *b);

#endif
