/*
 * JSON for the tool: writing its commands' --json output, and reading the
 * model configurations `warm --config` takes.
 */
#ifndef NJ_JSON_H
#define NJ_JSON_H

#include <stdio.h>

/*
 * Write `s` as a JSON string, quoted and escaped, or `null` when s is NULL.
 * Bytes that are not valid UTF-8 (a path may hold any) become U+FFFD, so the
 * output always parses.
 */
void nj_json_string(FILE *out, const char *s);

/* A parsed JSON value. Objects keep their members in file order. */
typedef enum { NJ_JSON_NULL, NJ_JSON_BOOL, NJ_JSON_NUMBER, NJ_JSON_STRING, NJ_JSON_ARRAY,
               NJ_JSON_OBJECT } nj_json_type;

typedef struct nj_json {
    nj_json_type type;
    double number;          /* NUMBER; BOOL: 0 or 1 */
    char *string;           /* STRING (NUL-terminated; embedded NULs are refused) */
    char *key;              /* a member of an object: its name */
    struct nj_json *child;  /* ARRAY, OBJECT: the first element or member */
    struct nj_json *next;   /* the next element or member */
} nj_json;

/*
 * Parse `len` bytes (one JSON value, surrounded by white space only) into
 * *out. 0, or -1 with "line N: ..." in `err` (nothing to free). Nesting
 * deeper than 64 levels is refused.
 */
int nj_json_parse(const char *text, size_t len, nj_json **out, char *err, size_t err_size);
void nj_json_free(nj_json *v);

/* The member `key` of an object, or NULL (also when `obj` is not an object). */
const nj_json *nj_json_get(const nj_json *obj, const char *key);

#endif
