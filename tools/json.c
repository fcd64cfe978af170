#include "json.h"

/* Length of the valid UTF-8 sequence at s, or 0 if it is not one. */
static int utf8_length(const unsigned char *s)
{
    int n, i;
    unsigned min, cp;
    if (s[0] < 0x80)
        return 1;
    if ((s[0] & 0xe0) == 0xc0)
        n = 2, min = 0x80, cp = s[0] & 0x1f;
    else if ((s[0] & 0xf0) == 0xe0)
        n = 3, min = 0x800, cp = s[0] & 0x0f;
    else if ((s[0] & 0xf8) == 0xf0)
        n = 4, min = 0x10000, cp = s[0] & 0x07;
    else
        return 0;
    for (i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) /* also stops at the terminating NUL */
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    /* Overlong forms, surrogates and code points past U+10FFFF are not UTF-8. */
    if (cp < min || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
        return 0;
    return n;
}

void nj_json_string(FILE *out, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    if (!s) {
        fputs("null", out);
        return;
    }
    putc('"', out);
    while (*p) {
        int n = utf8_length(p);
        if (n == 0) {
            fputs("\\ufffd", out);
            p++;
        } else if (*p == '"' || *p == '\\') {
            putc('\\', out);
            putc(*p++, out);
        } else if (*p < 0x20) {
            fprintf(out, "\\u%04x", *p++);
        } else {
            fwrite(p, 1, (size_t)n, out);
            p += n;
        }
    }
    putc('"', out);
}

/* ------------------------------------------------------------------------ */
/* Reading                                                                   */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define NJ_JSON_MAX_DEPTH 64

typedef struct reader {
    const char *p, *end, *start;
    char *err;
    size_t err_size;
    int depth;
} reader;

static int line_of(const reader *r)
{
    const char *q;
    int line = 1;
    for (q = r->start; q < r->p; q++)
        line += *q == '\n';
    return line;
}

static int fail(reader *r, const char *what)
{
    snprintf(r->err, r->err_size, "line %d: %s", line_of(r), what);
    return -1;
}

static void skip_space(reader *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
}

static int literal(reader *r, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(r->end - r->p) < n || strncmp(r->p, word, n))
        return 0;
    r->p += n;
    return 1;
}

static int hex4(reader *r, unsigned *out)
{
    int i;
    *out = 0;
    if (r->end - r->p < 4)
        return -1;
    for (i = 0; i < 4; i++) {
        char c = *r->p++;
        *out <<= 4;
        if (c >= '0' && c <= '9')
            *out |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            *out |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            *out |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    return 0;
}

/* Append code point cp as UTF-8. */
static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | cp >> 12);
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | cp >> 18);
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* A string at r->p (just past its opening quote) into a new NUL-terminated buffer. */
static int read_string(reader *r, char **out)
{
    /* Escapes only shrink: the raw length bounds the decoded one. */
    const char *q = r->p;
    char *o, *buf;
    while (q < r->end && *q != '"')
        q += *q == '\\' && q + 1 < r->end ? 2 : 1;
    if (q >= r->end)
        return fail(r, "unterminated string");
    if (!(buf = o = malloc((size_t)(q - r->p) + 4)))
        return fail(r, "out of memory");
    while (*r->p != '"') {
        unsigned char c = (unsigned char)*r->p++;
        if (c < 0x20) {
            free(buf);
            return fail(r, "control character in a string");
        }
        if (c != '\\') {
            *o++ = (char)c;
            continue;
        }
        c = (unsigned char)*r->p++;
        switch (c) {
        case '"': case '\\': case '/': *o++ = (char)c; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u': {
            unsigned cp, lo;
            if (hex4(r, &cp) != 0)
                goto bad;
            if (cp >= 0xd800 && cp < 0xdc00) { /* a surrogate pair */
                if (r->end - r->p < 6 || r->p[0] != '\\' || r->p[1] != 'u')
                    goto bad;
                r->p += 2;
                if (hex4(r, &lo) != 0 || lo < 0xdc00 || lo > 0xdfff)
                    goto bad;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            } else if (cp >= 0xdc00 && cp < 0xe000) {
                goto bad;
            }
            if (cp == 0) {
                free(buf);
                return fail(r, "a NUL character in a string");
            }
            o += put_utf8(o, cp);
            break;
        }
        default:
            goto bad;
        }
    }
    r->p++;
    *o = '\0';
    *out = buf;
    return 0;
bad:
    free(buf);
    return fail(r, "bad escape in a string");
}

static int read_value(reader *r, nj_json **out);

static int read_items(reader *r, nj_json *parent, char close)
{
    nj_json **tail = &parent->child;
    skip_space(r);
    if (r->p < r->end && *r->p == close) {
        r->p++;
        return 0;
    }
    for (;;) {
        char *key = NULL;
        nj_json *item;
        skip_space(r);
        if (close == '}') {
            if (r->p >= r->end || *r->p != '"')
                return fail(r, "expected a member name");
            r->p++;
            if (read_string(r, &key) != 0)
                return -1;
            skip_space(r);
            if (r->p >= r->end || *r->p != ':') {
                free(key);
                return fail(r, "expected ':' after a member name");
            }
            r->p++;
        }
        if (read_value(r, &item) != 0) {
            free(key);
            return -1;
        }
        item->key = key;
        *tail = item;
        tail = &item->next;
        skip_space(r);
        if (r->p < r->end && *r->p == ',') {
            r->p++;
            continue;
        }
        if (r->p < r->end && *r->p == close) {
            r->p++;
            return 0;
        }
        return fail(r, close == '}' ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static int read_value(reader *r, nj_json **out)
{
    nj_json *v = calloc(1, sizeof *v);
    int status = 0;
    *out = NULL;
    if (!v)
        return fail(r, "out of memory");
    skip_space(r);
    if (r->p >= r->end) {
        free(v);
        return fail(r, "expected a value");
    }
    if (*r->p == '{' || *r->p == '[') {
        char close = *r->p == '{' ? '}' : ']';
        v->type = close == '}' ? NJ_JSON_OBJECT : NJ_JSON_ARRAY;
        r->p++;
        if (++r->depth > NJ_JSON_MAX_DEPTH)
            status = fail(r, "nested too deeply");
        else
            status = read_items(r, v, close);
        r->depth--;
    } else if (*r->p == '"') {
        v->type = NJ_JSON_STRING;
        r->p++;
        status = read_string(r, &v->string);
    } else if (literal(r, "true") || literal(r, "false")) {
        v->type = NJ_JSON_BOOL;
        v->number = r->p[-1] == 'e' && r->p[-2] == 'u';
    } else if (literal(r, "null")) {
        v->type = NJ_JSON_NULL;
    } else if (*r->p == '-' || (*r->p >= '0' && *r->p <= '9')) {
        char buf[64], *end;
        size_t n = 0;
        while (r->p + n < r->end && n + 1 < sizeof buf &&
               strchr("+-0123456789.eE", r->p[n]))
            n++;
        memcpy(buf, r->p, n);
        buf[n] = '\0';
        errno = 0;
        v->number = strtod(buf, &end);
        if (end != buf + n || errno)
            status = fail(r, "bad number");
        v->type = NJ_JSON_NUMBER;
        r->p += n;
    } else {
        status = fail(r, "expected a value");
    }
    if (status != 0) {
        nj_json_free(v);
        return -1;
    }
    *out = v;
    return 0;
}

int nj_json_parse(const char *text, size_t len, nj_json **out, char *err, size_t err_size)
{
    reader r = {text, text + len, text, err, err_size, 0};
    *out = NULL;
    if (memchr(text, '\0', len))
        return fail(&r, "a NUL byte in the text");
    if (read_value(&r, out) != 0)
        return -1;
    skip_space(&r);
    if (r.p != r.end) {
        nj_json_free(*out);
        *out = NULL;
        return fail(&r, "text after the value");
    }
    return 0;
}

void nj_json_free(nj_json *v)
{
    while (v) {
        nj_json *next = v->next;
        nj_json_free(v->child);
        free(v->string);
        free(v->key);
        free(v);
        v = next;
    }
}

const nj_json *nj_json_get(const nj_json *obj, const char *key)
{
    const nj_json *m;
    if (!obj || obj->type != NJ_JSON_OBJECT)
        return NULL;
    for (m = obj->child; m; m = m->next)
        if (!strcmp(m->key, key))
            return m;
    return NULL;
}
