/*
 * distance.h: vector distance kernels with run-time CPU dispatch.
 *
 * Each kernel has a scalar reference (the *_ref functions) that defines its result; the
 * AVX2+FMA and AVX-512F versions are selected once by fanns_dist_init() from CPUID and must
 * agree with the reference within float rounding.  Scores follow Qdrant: Cosine and Dot are
 * similarities (higher is better; Cosine is the dot product of unit vectors, normalised at
 * write time), Euclid is the L2 distance (not squared) and Manhattan the L1 distance (lower is
 * better).
 */
#ifndef FANNS_DISTANCE_H
#define FANNS_DISTANCE_H

#include <stdbool.h>
#include <stddef.h>

typedef enum {
    FANNS_METRIC_COSINE = 0,
    FANNS_METRIC_EUCLID = 1,
    FANNS_METRIC_DOT = 2,
    FANNS_METRIC_MANHATTAN = 3
} fanns_metric_t;

typedef float (*fanns_dist_fn)(const float *a, const float *b, size_t n);

/* Selects kernels from CPU features; idempotent and thread-safe.  The environment variable
 * FANNS_ISA=scalar|avx2|avx512 caps the choice (for tests and benchmarks). */
void fanns_dist_init(void);
/* Name of the selected instruction set: "avx512", "avx2" or "scalar". */
const char *fanns_dist_isa(void);

/* Dispatched kernels (fanns_dist_init must have been called). */
float fanns_dist_dot(const float *a, const float *b, size_t n);
float fanns_dist_l2sq(const float *a, const float *b, size_t n);
float fanns_dist_l1(const float *a, const float *b, size_t n);

/* Scalar references. */
float fanns_dist_dot_ref(const float *a, const float *b, size_t n);
float fanns_dist_l2sq_ref(const float *a, const float *b, size_t n);
float fanns_dist_l1_ref(const float *a, const float *b, size_t n);

/* Explicit variants for tests; return false from *_available when the CPU lacks the ISA. */
bool fanns_dist_avx2_available(void);
bool fanns_dist_avx512_available(void);
float fanns_dist_dot_avx2(const float *a, const float *b, size_t n);
float fanns_dist_l2sq_avx2(const float *a, const float *b, size_t n);
float fanns_dist_l1_avx2(const float *a, const float *b, size_t n);
float fanns_dist_dot_avx512(const float *a, const float *b, size_t n);
float fanns_dist_l2sq_avx512(const float *a, const float *b, size_t n);
float fanns_dist_l1_avx512(const float *a, const float *b, size_t n);

/* Parses "Cosine", "Euclid", "Dot", "Manhattan" (exact Qdrant spelling); -1 if unknown. */
int fanns_metric_parse(const char *s);
const char *fanns_metric_name(fanns_metric_t m);
/* Qdrant score of stored vector v against query q (both already normalised for Cosine). */
float fanns_metric_score(fanns_metric_t m, const float *q, const float *v, size_t n);
/* True when a higher score is better (Cosine, Dot). */
bool fanns_metric_higher_better(fanns_metric_t m);
/* Normalises v in place to unit length; leaves an all-zero vector unchanged. */
void fanns_vec_normalize(float *v, size_t n);

#endif
