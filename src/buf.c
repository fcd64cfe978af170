#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void nj_buf_free(nj_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

void nj_buf_reset(nj_buf *b)
{
    b->len = 0;
    b->oom = 0;
    if (b->data)
        b->data[0] = '\0';
}

int nj_buf_reserve(nj_buf *b, size_t extra)
{
    size_t need, cap;
    char *p;
    if (b->oom)
        return 0;
    if (extra > (size_t)-1 / 2 - b->len) {
        b->oom = 1;
        return 0;
    }
    need = b->len + extra + 1;
    if (need <= b->cap)
        return 1;
    cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    p = realloc(b->data, cap);
    if (!p) {
        b->oom = 1;
        return 0;
    }
    b->data = p;
    b->cap = cap;
    return 1;
}

void nj_buf_append(nj_buf *b, const void *data, size_t len)
{
    if (!nj_buf_reserve(b, len))
        return;
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
}

void nj_buf_puts(nj_buf *b, const char *s)
{
    nj_buf_append(b, s, strlen(s));
}

void nj_buf_printf(nj_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !nj_buf_reserve(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

int nj_buf_status(const nj_buf *b)
{
    return b->oom ? nj_fail(NORMJIT_ENOMEM, "out of memory building a %zu-byte buffer", b->len)
                  : NORMJIT_OK;
}
