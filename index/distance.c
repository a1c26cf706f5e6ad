/*
 * distance.c: dot product, squared L2 and L1 kernels with run-time CPU dispatch (see distance.h).
 *
 * Three implementations of each kernel: a scalar reference that defines the result, an
 * AVX2+FMA version and an AVX-512F version.  The SIMD versions are compiled with per-function
 * `target` attributes, never with global -m flags, so the binary runs on any x86-64 and only
 * executes wide instructions after fanns_dist_init() has checked CPUID (through
 * __builtin_cpu_supports, which also checks that the OS saves the wide registers).
 *
 * Invariants:
 *  - the dispatch pointers start at the scalar references, so a call before fanns_dist_init()
 *    is slow but correct; fanns_dist_init() sets them exactly once (pthread_once);
 *  - the SIMD kernels use four independent accumulators to hide FMA latency, and handle a
 *    tail that is not a multiple of the vector width (a scalar loop for AVX2, a masked load
 *    for AVX-512), so any n, including 0, is valid;
 *  - results differ from the reference only by float summation order.
 *
 * Cosine follows Qdrant: vectors are normalised at write time (fanns_vec_normalize, with
 * Qdrant's rule of leaving zero and already-unit vectors unchanged), and the score is then
 * the dot product.
 */
#include "distance.h"

#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define FANNS_X86 1
#include <immintrin.h>
#endif

/* ---- scalar references ---- */

float fanns_dist_dot_ref(const float *a, const float *b, size_t n) {
    float s = 0.0f;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

float fanns_dist_l2sq_ref(const float *a, const float *b, size_t n) {
    float s = 0.0f;
    for (size_t i = 0; i < n; i++) {
        float d = a[i] - b[i];
        s += d * d;
    }
    return s;
}

float fanns_dist_l1_ref(const float *a, const float *b, size_t n) {
    float s = 0.0f;
    for (size_t i = 0; i < n; i++) s += fabsf(a[i] - b[i]);
    return s;
}

#ifdef FANNS_X86

/* ---- AVX2 + FMA ---- */

__attribute__((target("avx2,fma"))) static inline float hsum256(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v);
    __m128 hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    __m128 sh = _mm_movehdup_ps(lo);
    lo = _mm_add_ps(lo, sh);
    sh = _mm_movehl_ps(sh, lo);
    lo = _mm_add_ss(lo, sh);
    return _mm_cvtss_f32(lo);
}

__attribute__((target("avx2,fma"))) float fanns_dist_dot_avx2(const float *a, const float *b, size_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    __m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    float s = hsum256(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

__attribute__((target("avx2,fma"))) float fanns_dist_l2sq_avx2(const float *a, const float *b, size_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    __m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
        __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8));
        __m256 d2 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16));
        __m256 d3 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24));
        s0 = _mm256_fmadd_ps(d0, d0, s0);
        s1 = _mm256_fmadd_ps(d1, d1, s1);
        s2 = _mm256_fmadd_ps(d2, d2, s2);
        s3 = _mm256_fmadd_ps(d3, d3, s3);
    }
    for (; i + 8 <= n; i += 8) {
        __m256 d = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
        s0 = _mm256_fmadd_ps(d, d, s0);
    }
    float s = hsum256(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < n; i++) {
        float d = a[i] - b[i];
        s += d * d;
    }
    return s;
}

__attribute__((target("avx2,fma"))) float fanns_dist_l1_avx2(const float *a, const float *b, size_t n) {
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    __m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
        __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8));
        __m256 d2 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16));
        __m256 d3 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24));
        s0 = _mm256_add_ps(s0, _mm256_and_ps(d0, absmask));
        s1 = _mm256_add_ps(s1, _mm256_and_ps(d1, absmask));
        s2 = _mm256_add_ps(s2, _mm256_and_ps(d2, absmask));
        s3 = _mm256_add_ps(s3, _mm256_and_ps(d3, absmask));
    }
    for (; i + 8 <= n; i += 8) {
        __m256 d = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
        s0 = _mm256_add_ps(s0, _mm256_and_ps(d, absmask));
    }
    float s = hsum256(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < n; i++) s += fabsf(a[i] - b[i]);
    return s;
}

/* ---- AVX-512F ---- */

/* Mask selecting the low r (< 16) lanes of a tail. */
static inline __mmask16 tailmask(size_t r) { return (__mmask16)((1u << r) - 1u); }

__attribute__((target("avx512f"))) float fanns_dist_dot_avx512(const float *a, const float *b, size_t n) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    __m512 s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
        s2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32), s2);
        s3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48), s3);
    }
    for (; i + 16 <= n; i += 16) s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
    if (i < n) {
        __mmask16 m = tailmask(n - i);
        s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

__attribute__((target("avx512f"))) float fanns_dist_l2sq_avx512(const float *a, const float *b, size_t n) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    __m512 s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
        __m512 d1 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16));
        __m512 d2 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32));
        __m512 d3 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48));
        s0 = _mm512_fmadd_ps(d0, d0, s0);
        s1 = _mm512_fmadd_ps(d1, d1, s1);
        s2 = _mm512_fmadd_ps(d2, d2, s2);
        s3 = _mm512_fmadd_ps(d3, d3, s3);
    }
    for (; i + 16 <= n; i += 16) {
        __m512 d = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
        s0 = _mm512_fmadd_ps(d, d, s0);
    }
    if (i < n) {
        __mmask16 m = tailmask(n - i);
        __m512 d = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i));
        s1 = _mm512_fmadd_ps(d, d, s1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

__attribute__((target("avx512f"))) float fanns_dist_l1_avx512(const float *a, const float *b, size_t n) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    __m512 s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        s0 = _mm512_add_ps(s0, _mm512_abs_ps(_mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i))));
        s1 = _mm512_add_ps(s1, _mm512_abs_ps(_mm512_sub_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16))));
        s2 = _mm512_add_ps(s2, _mm512_abs_ps(_mm512_sub_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32))));
        s3 = _mm512_add_ps(s3, _mm512_abs_ps(_mm512_sub_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48))));
    }
    for (; i + 16 <= n; i += 16)
        s0 = _mm512_add_ps(s0, _mm512_abs_ps(_mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i))));
    if (i < n) {
        __mmask16 m = tailmask(n - i);
        s1 = _mm512_add_ps(s1, _mm512_abs_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, a + i),
                                                           _mm512_maskz_loadu_ps(m, b + i))));
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

bool fanns_dist_avx2_available(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

bool fanns_dist_avx512_available(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
}

#else /* not x86: the explicit variants fall back to the references so tests still link */

bool fanns_dist_avx2_available(void) { return false; }
bool fanns_dist_avx512_available(void) { return false; }
float fanns_dist_dot_avx2(const float *a, const float *b, size_t n) { return fanns_dist_dot_ref(a, b, n); }
float fanns_dist_l2sq_avx2(const float *a, const float *b, size_t n) { return fanns_dist_l2sq_ref(a, b, n); }
float fanns_dist_l1_avx2(const float *a, const float *b, size_t n) { return fanns_dist_l1_ref(a, b, n); }
float fanns_dist_dot_avx512(const float *a, const float *b, size_t n) { return fanns_dist_dot_ref(a, b, n); }
float fanns_dist_l2sq_avx512(const float *a, const float *b, size_t n) { return fanns_dist_l2sq_ref(a, b, n); }
float fanns_dist_l1_avx512(const float *a, const float *b, size_t n) { return fanns_dist_l1_ref(a, b, n); }

#endif

/* ---- dispatch ---- */

static fanns_dist_fn dot_fn = fanns_dist_dot_ref;
static fanns_dist_fn l2sq_fn = fanns_dist_l2sq_ref;
static fanns_dist_fn l1_fn = fanns_dist_l1_ref;
static const char *isa_name = "scalar";
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void dist_init_once(void) {
    /* Cap: 0 scalar, 1 avx2, 2 avx512.  Unknown values of FANNS_ISA are ignored. */
    int cap = 2;
    const char *env = getenv("FANNS_ISA");
    if (env) {
        if (strcmp(env, "scalar") == 0) cap = 0;
        else if (strcmp(env, "avx2") == 0) cap = 1;
        else if (strcmp(env, "avx512") == 0) cap = 2;
    }
    if (cap >= 2 && fanns_dist_avx512_available()) {
        dot_fn = fanns_dist_dot_avx512;
        l2sq_fn = fanns_dist_l2sq_avx512;
        l1_fn = fanns_dist_l1_avx512;
        isa_name = "avx512";
    } else if (cap >= 1 && fanns_dist_avx2_available()) {
        dot_fn = fanns_dist_dot_avx2;
        l2sq_fn = fanns_dist_l2sq_avx2;
        l1_fn = fanns_dist_l1_avx2;
        isa_name = "avx2";
    }
}

void fanns_dist_init(void) { pthread_once(&init_once, dist_init_once); }

const char *fanns_dist_isa(void) {
    fanns_dist_init();
    return isa_name;
}

float fanns_dist_dot(const float *a, const float *b, size_t n) { return dot_fn(a, b, n); }
float fanns_dist_l2sq(const float *a, const float *b, size_t n) { return l2sq_fn(a, b, n); }
float fanns_dist_l1(const float *a, const float *b, size_t n) { return l1_fn(a, b, n); }

/* ---- metrics ---- */

static const char *const metric_names[] = {"Cosine", "Euclid", "Dot", "Manhattan"};

int fanns_metric_parse(const char *s) {
    if (!s) return -1;
    for (int i = 0; i < 4; i++)
        if (strcmp(s, metric_names[i]) == 0) return i;
    return -1;
}

const char *fanns_metric_name(fanns_metric_t m) {
    if ((int)m < 0 || (int)m > 3) return "unknown";
    return metric_names[m];
}

float fanns_metric_score(fanns_metric_t m, const float *q, const float *v, size_t n) {
    switch (m) {
    case FANNS_METRIC_COSINE:
    case FANNS_METRIC_DOT: return fanns_dist_dot(q, v, n);
    case FANNS_METRIC_EUCLID: return sqrtf(fanns_dist_l2sq(q, v, n));
    case FANNS_METRIC_MANHATTAN: return fanns_dist_l1(q, v, n);
    }
    return NAN;
}

bool fanns_metric_higher_better(fanns_metric_t m) { return m == FANNS_METRIC_COSINE || m == FANNS_METRIC_DOT; }

void fanns_vec_normalize(float *v, size_t n) {
    /* Qdrant's rule: a squared length below FLT_EPSILON (zero vector) or within 1e-6 of 1
     * (already unit) is left as it is. */
    float sq = fanns_dist_dot_ref(v, v, n);
    if (sq < FLT_EPSILON || fabsf(sq - 1.0f) <= 1.0e-6f) return;
    float len = sqrtf(sq);
    for (size_t i = 0; i < n; i++) v[i] /= len;
}
