/*
 * json_out.h: writing JSON text directly, for the responses that dominate a search server's
 * traffic (lists of scored points).
 *
 * Building those as jansson trees and dumping them cost a search request more CPU than its
 * graph search at small ef: an allocation per value, and a printf("%.17g") per score and per
 * vector component.  Here the text is appended to one growing buffer, float32 values are
 * printed with 9 significant digits (always enough to read back the same float32: the
 * numbers are exactly as precise as the stored values) by integer arithmetic, and only
 * payloads, which are JSON already, go through jansson.
 */
#ifndef FANNS_JSON_OUT_H
#define FANNS_JSON_OUT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct fanns_jbuf {
    char *p;                /* malloc'd, NUL-terminated while !oom; the caller frees it */
    size_t len, cap;
    bool oom;               /* an allocation failed: the text is incomplete */
} fanns_jbuf_t;

void fanns__jbuf_put(fanns_jbuf_t *b, const char *s, size_t n);
void fanns__jbuf_puts(fanns_jbuf_t *b, const char *s);
void fanns__jbuf_u64(fanns_jbuf_t *b, uint64_t v);
/* A float32 as a JSON number with at most 9 significant digits that reads back as exactly f
 * ("1.0" for integral values, exponent form below 1e-4 or from 1e9 up, like %g); "null" for
 * NaN and infinities, which JSON cannot hold. */
void fanns__jbuf_f32(fanns_jbuf_t *b, float f);
/* A double, round-trip exact (%.17g), with ".0" for integral values as jansson writes reals. */
void fanns__jbuf_f64(fanns_jbuf_t *b, double d);
/* Any JSON value through jansson, compact (NULL is written as null). */
void fanns__jbuf_json(fanns_jbuf_t *b, const json_t *v);

/* Writes f as fanns__jbuf_f32 does into out (at least 24 bytes); returns the length. */
int fanns__json_fmt_f32(char *out, float f);

#endif
