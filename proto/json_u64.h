/*
 * json_u64.h: unsigned 64-bit integers through jansson.
 *
 * Qdrant point ids are u64, but jansson's integers are signed 64-bit and it refuses larger
 * literals.  Before parsing, an integer literal in (INT64_MAX, UINT64_MAX] outside strings
 * is rewritten as the string "\u0001u64:<digits>" (a control character no client sends in a
 * real string); id parsing (index/pid.c) accepts that form, payload values turn it back into
 * a number (a JSON real, as other JSON tools read such literals), and after encoding a
 * response the marker strings are turned back into bare integer literals.
 */
#ifndef FANNS_JSON_U64_H
#define FANNS_JSON_U64_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* If body has integer literals above INT64_MAX, returns a malloc'd rewritten copy (length in
 * *out_len); otherwise NULL (use body as is). */
char *fanns__json_u64_protect(const char *body, size_t len, size_t *out_len);
/* Replaces marker strings inside a payload value by JSON reals, in place. */
void fanns__json_u64_payload(json_t *v);
/* Rewrites "\u0001u64:N" strings in encoded JSON text s (malloc'd) into N, in place. */
void fanns__json_u64_unprotect(char *s);

#endif
