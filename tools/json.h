/* Writing JSON from the tool's commands (their --json output). */
#ifndef NJ_JSON_H
#define NJ_JSON_H

#include <stdio.h>

/*
 * Write `s` as a JSON string, quoted and escaped, or `null` when s is NULL.
 * Bytes that are not valid UTF-8 (a path may hold any) become U+FFFD, so the
 * output always parses.
 */
void nj_json_string(FILE *out, const char *s);

#endif
