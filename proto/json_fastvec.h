/*
 * json_fastvec.h: a fast path for the query vector of a search request.
 *
 * Parsing a 768-number array through jansson allocates one JSON value per number and costs
 * as much CPU as a graph search.  For search and query requests, the top-level member
 * "vector" or "query" whose value is a flat array of JSON numbers is parsed here straight
 * into floats, and the rest of the body, with that array replaced by an empty one, goes
 * through jansson as usual.  The grammar of every number is checked as strictly as jansson
 * does, so the fast path accepts exactly what the slow path would.
 */
#ifndef FANNS_JSON_FASTVEC_H
#define FANNS_JSON_FASTVEC_H

#include <stddef.h>

typedef struct fanns_fastvec {
    const char *key;        /* "vector" or "query": the member that was taken, NULL if none */
    float *v;               /* malloc'd values */
    size_t n;
    int bad;                /* 1: a number is out of float range (the caller answers 422) */
} fanns_fastvec_t;

/* Looks for a top-level "vector" or "query" member holding a flat array of numbers in body.
 * On success returns a malloc'd copy of body (length *out_len) with that array replaced by
 * "[]" and fills fv; otherwise returns NULL and fv->key is NULL. */
char *fanns__json_fastvec(const char *body, size_t len, size_t *out_len, fanns_fastvec_t *fv);

/* The vectors of an upsert body: `points[i].vector` and `batch.vectors[i]` arrays of numbers.
 * Each one is parsed into floats appended to vals (offsets in starts), and replaced in the
 * returned copy of the body by the string FANNS_FASTVEC_MARK "<index>".  Arrays anywhere else
 * (payloads) are left alone.  Returns NULL (and an empty table) when there is nothing to take. */
#define FANNS_FASTVEC_MARK "\002fv:" /* octal: a hex escape would swallow the f */
typedef struct fanns_fastvecs {
    float *vals;            /* malloc'd, all vectors back to back */
    size_t *starts;         /* malloc'd [n + 1]: vector i is vals[starts[i] .. starts[i+1]) */
    size_t n;
    unsigned char *bad;     /* malloc'd [n]: 1 if vector i has a number out of float range */
} fanns_fastvecs_t;

char *fanns__json_fastvecs_upsert(const char *body, size_t len, size_t *out_len, fanns_fastvecs_t *t);
void fanns__json_fastvecs_free(fanns_fastvecs_t *t);

/* The float nearest to the JSON number s[0..n) (grammar already checked), as strtof gives it
 * (round to nearest even; infinity beyond range).  Numbers of up to 19 significant digits with
 * a decimal exponent within +-27 are converted without strtof (exact long double arithmetic,
 * rounded once, falling back to strtof in the rare case the result is too close to a rounding
 * midpoint to decide); tests compare every path with strtof. */
float fanns__json_parse_float(const char *s, size_t n);

#endif
