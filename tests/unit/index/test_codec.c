/*
 * test_codec.c: tests index/codec.c and index/codec_kernels.c: half conversion against F16C,
 * every SIMD kernel against its scalar reference on sizes that are not multiples of the vector
 * width, encode/decode error bounds, distance estimates against exact distances to the decoded
 * vectors, top-k recovery after rescoring, serialization with corruption, determinism, and
 * argument errors; for PQ also nearest-centroid encoding and its tie rule, table distances
 * for all metrics, and that a version 1 blob written before PQ still loads.
 */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define HAVE_X86 1
#endif

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t next_u64(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}
/* Uniform in [-1, 1). */
static float frand(void) { return (float)((double)(next_u64() >> 11) / 9007199254740992.0 * 2.0 - 1.0); }
/* Roughly normal (sum of uniforms). */
static float grand(void) { return (frand() + frand() + frand() + frand()) * 0.866f; }

static const size_t big_sizes[] = {384, 768, 1000};
static size_t test_sizes(size_t *sizes) {
    size_t ns = 0;
    for (size_t n = 1; n <= 130; n++) sizes[ns++] = n;
    for (size_t i = 0; i < 3; i++) sizes[ns++] = big_sizes[i];
    return ns;
}

static bool always(void) { return true; }

/* ---- half conversion ---- */

#ifdef HAVE_X86
__attribute__((target("f16c"))) static float hw_h2f(uint16_t h) { return _cvtsh_ss(h); }
__attribute__((target("f16c"))) static uint16_t hw_f2h(float f) { return _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT); }
#endif

START_TEST(test_f16_conversion) {
    for (uint32_t h = 0; h < 65536; h++) {
        float f = fanns_codec_f16_to_f32((uint16_t)h);
        bool nan = ((h & 0x7c00u) == 0x7c00u) && (h & 0x3ffu);
        if (!nan) ck_assert_uint_eq(fanns_codec_f32_to_f16(f), h); /* every half round-trips */
        else ck_assert(isnan(f));
#ifdef HAVE_X86
        if (fanns_codec_f16_avx2_available() && !nan) {
            float hf = hw_h2f((uint16_t)h);
            ck_assert_msg(memcmp(&hf, &f, 4) == 0, "h=%04x", h);
        }
#endif
    }
    /* Rounding: halfway cases go to even, overflow to infinity. */
    ck_assert_uint_eq(fanns_codec_f32_to_f16(1.0f + 0x1p-11f), 0x3c00);
    ck_assert_uint_eq(fanns_codec_f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3c02);
    ck_assert_uint_eq(fanns_codec_f32_to_f16(65504.0f), 0x7bff);
    ck_assert_uint_eq(fanns_codec_f32_to_f16(65520.0f), 0x7c00);
    ck_assert_uint_eq(fanns_codec_f32_to_f16(-0x1p-25f), 0x8000);
    ck_assert_uint_eq(fanns_codec_f32_to_f16(0x1p-24f), 0x0001);
#ifdef HAVE_X86
    if (fanns_codec_f16_avx2_available()) {
        for (int i = 0; i < 2000000; i++) {
            uint32_t bits = (uint32_t)next_u64();
            float f;
            memcpy(&f, &bits, 4);
            if (isnan(f)) continue;
            ck_assert_msg(fanns_codec_f32_to_f16(f) == hw_f2h(f), "f=%a", (double)f);
        }
    }
#endif
}
END_TEST

/* ---- kernels against references ---- */

typedef float (*f16_fn)(const float *, const uint8_t *, size_t);
typedef struct {
    const char *name;
    f16_fn ref, fn;
    bool (*available)(void);
    int op; /* 0 dot, 1 l2sq, 2 l1 */
} f16_variant_t;

static const f16_variant_t f16_variants[] = {
    {"f16_dot_avx2", fanns_codec_f16_dot_ref, fanns_codec_f16_dot_avx2, fanns_codec_f16_avx2_available, 0},
    {"f16_l2sq_avx2", fanns_codec_f16_l2sq_ref, fanns_codec_f16_l2sq_avx2, fanns_codec_f16_avx2_available, 1},
    {"f16_l1_avx2", fanns_codec_f16_l1_ref, fanns_codec_f16_l1_avx2, fanns_codec_f16_avx2_available, 2},
    {"f16_dot_avx512", fanns_codec_f16_dot_ref, fanns_codec_f16_dot_avx512, fanns_codec_avx512_available, 0},
    {"f16_l2sq_avx512", fanns_codec_f16_l2sq_ref, fanns_codec_f16_l2sq_avx512, fanns_codec_avx512_available, 1},
    {"f16_l1_avx512", fanns_codec_f16_l1_ref, fanns_codec_f16_l1_avx512, fanns_codec_avx512_available, 2},
};

START_TEST(test_f16_kernels) {
    const f16_variant_t *v = &f16_variants[_i];
    if (!v->available()) return;
    size_t sizes[140], ns = test_sizes(sizes);
    float *q = malloc(1001 * sizeof(float));
    uint8_t *h = malloc(2 * 1001 + 1);
    ck_assert(q && h);
    for (size_t k = 0; k < ns; k++) {
        size_t n = sizes[k];
        for (int off = 0; off < 2; off++) {
            /* off = 1 shifts the query by a float and the code by one byte (odd address). */
            double want = 0, mag = 0;
            for (size_t i = 0; i < n + 1; i++) q[i] = frand();
            for (size_t i = 0; i < n; i++) {
                uint16_t hv = fanns_codec_f32_to_f16(frand());
                memcpy(h + off + 2 * i, &hv, 2);
                double a = q[off + i], b = fanns_codec_f16_to_f32(hv), t;
                t = v->op == 0 ? a * b : v->op == 1 ? (a - b) * (a - b) : fabs(a - b);
                want += t;
                mag += fabs(t);
            }
            float got = v->fn(q + off, h + off, n), ref = v->ref(q + off, h + off, n);
            double tol = (double)n * FLT_EPSILON * mag + 1e-6;
            ck_assert_msg(fabs(got - want) <= tol, "%s n=%zu: got %.9g want %.9g", v->name, n, got, want);
            ck_assert_msg(fabs(ref - want) <= tol, "%s ref n=%zu", v->name, n);
        }
    }
    free(q);
    free(h);
}
END_TEST

typedef float (*u8_fn)(const float *, const uint8_t *, size_t);
static const struct {
    const char *name;
    u8_fn fn;
    bool (*available)(void);
} u8_variants[] = {
    {"u8_dot_ref", fanns_codec_u8_dot_ref, always},
    {"u8_dot_avx2", fanns_codec_u8_dot_avx2, fanns_codec_f16_avx2_available},
    {"u8_dot_avx512", fanns_codec_u8_dot_avx512, fanns_codec_avx512_available},
};

START_TEST(test_u8_dot_kernels) {
    if (!u8_variants[_i].available()) return;
    size_t sizes[140], ns = test_sizes(sizes);
    float *w = malloc(1001 * sizeof(float));
    uint8_t *c = malloc(1001);
    ck_assert(w && c);
    for (size_t k = 0; k < ns; k++) {
        size_t n = sizes[k];
        for (int off = 0; off < 2; off++) {
            double want = 0, mag = 0;
            for (size_t i = 0; i < n + 1; i++) {
                w[i] = frand();
                c[i] = (uint8_t)next_u64();
            }
            for (size_t i = 0; i < n; i++) {
                want += (double)w[off + i] * c[off + i];
                mag += fabs((double)w[off + i] * c[off + i]);
            }
            float got = u8_variants[_i].fn(w + off, c + off, n);
            double tol = (double)n * FLT_EPSILON * mag + 1e-6;
            ck_assert_msg(fabs(got - want) <= tol, "%s n=%zu: got %.9g want %.9g", u8_variants[_i].name, n, got, want);
        }
    }
    free(w);
    free(c);
}
END_TEST

START_TEST(test_u8_l1_ref) {
    float r[3] = {1.0f, -2.0f, 0.5f}, step[3] = {0.5f, 1.0f, 0.0f};
    uint8_t c[3] = {4, 1, 200};
    /* |1 - 2| + |-2 - 1| + |0.5 - 0| */
    ck_assert_float_eq_tol(fanns_codec_u8_l1_ref(r, step, c, 3), 4.5f, 1e-6f);
}
END_TEST

typedef int32_t (*i8_fn)(const uint8_t *, const int8_t *, size_t);
static const struct {
    const char *name;
    i8_fn fn;
    bool (*available)(void);
} i8_variants[] = {
    {"u8i8_avx2", fanns_codec_u8i8_dot_avx2, fanns_codec_f16_avx2_available},
    {"u8i8_vnni", fanns_codec_u8i8_dot_vnni, fanns_codec_vnni_available},
};

START_TEST(test_u8i8_kernels) {
    if (!i8_variants[_i].available()) return;
    i8_fn fn = i8_variants[_i].fn;
    size_t sizes[140], ns = test_sizes(sizes);
    uint8_t *c = malloc(65537);
    int8_t *q = malloc(65537);
    ck_assert(c && q);
    for (size_t k = 0; k < ns; k++) {
        size_t n = sizes[k];
        for (int off = 0; off < 2; off++) {
            for (size_t i = 0; i < n + 1; i++) {
                c[i] = (uint8_t)next_u64();
                q[i] = (int8_t)((int)(next_u64() % 255) - 127);
            }
            int32_t want = fanns_codec_u8i8_dot_ref(c + off, q + off, n);
            int64_t exact = 0;
            for (size_t i = 0; i < n; i++) exact += (int64_t)c[off + i] * q[off + i];
            ck_assert_int_eq(want, exact);
            ck_assert_msg(fn(c + off, q + off, n) == want, "%s n=%zu", i8_variants[_i].name, n);
        }
    }
    /* Extremes: 255 * 127 (saturates vpmaddubsw) and 255 * -127 over the largest dimension. */
    for (int neg = 0; neg < 2; neg++) {
        const int32_t full = 255 * 127 * 65536, one = 255 * 127;
        memset(c, 255, 65536);
        memset(q, neg ? -127 : 127, 65536);
        int32_t want = neg ? -full : full, want1 = neg ? -(full - one) : full - one;
        ck_assert_int_eq(fanns_codec_u8i8_dot_ref(c, q, 65536), want);
        ck_assert_int_eq(fn(c, q, 65536), want);
        ck_assert_int_eq(fn(c + 1, q + 1, 65535), want1);
    }
    free(c);
    free(q);
}
END_TEST

typedef uint32_t (*ham_fn)(const uint64_t *, const uint8_t *, size_t);
typedef uint32_t (*bitdot_fn)(const uint64_t *, unsigned, const uint8_t *, size_t, uint32_t *);
static const struct {
    const char *name;
    ham_fn ham;
    bitdot_fn bitdot;
    bool (*available)(void);
} pc_variants[] = {
    {"popcnt", fanns_codec_hamming_popcnt, fanns_codec_bitdot_popcnt, fanns_codec_popcnt_available},
    {"avx512", fanns_codec_hamming_avx512, fanns_codec_bitdot_avx512, fanns_codec_vpopcnt_available},
};

START_TEST(test_popcount_kernels) {
    if (!pc_variants[_i].available()) return;
    enum { MAXW = 40 };
    uint64_t a[MAXW], planes[8 * MAXW];
    uint8_t b[8 * MAXW + 1];
    for (size_t words = 1; words <= MAXW; words++) {
        for (int off = 0; off < 2; off++) {
            for (size_t w = 0; w < MAXW; w++) a[w] = next_u64();
            for (size_t w = 0; w < 8 * MAXW; w++) planes[w] = next_u64();
            for (size_t i = 0; i < sizeof b; i++) b[i] = (uint8_t)next_u64();
            uint32_t want = 0;
            for (size_t w = 0; w < words; w++) {
                uint64_t bw = 0;
                for (int k = 0; k < 8; k++) bw |= (uint64_t)b[off + 8 * w + k] << (8 * k);
                for (int bit = 0; bit < 64; bit++) want += (uint32_t)(((a[w] ^ bw) >> bit) & 1u);
            }
            ck_assert_uint_eq(fanns_codec_hamming_ref(a, b + off, words), want);
            ck_assert_msg(pc_variants[_i].ham(a, b + off, words) == want, "hamming %s words=%zu",
                          pc_variants[_i].name, words);
            for (unsigned bits = 1; bits <= 8; bits++) {
                uint32_t ones_ref = 0, ones = 0;
                uint32_t ref = fanns_codec_bitdot_ref(planes, bits, b + off, words, &ones_ref);
                uint32_t got = pc_variants[_i].bitdot(planes, bits, b + off, words, &ones);
                ck_assert_msg(got == ref && ones == ones_ref, "bitdot %s words=%zu bits=%u", pc_variants[_i].name,
                              words, bits);
            }
        }
    }
    /* The reference's bit-plane sum against a per-dimension computation. */
    uint64_t p2[2 * 2];
    uint8_t code[16];
    unsigned u[128];
    memset(p2, 0, sizeof p2);
    for (int d = 0; d < 128; d++) {
        u[d] = (unsigned)(next_u64() % 4);
        for (int j = 0; j < 2; j++)
            if ((u[d] >> j) & 1u) p2[j * 2 + d / 64] |= 1ull << (d % 64);
    }
    for (size_t i = 0; i < 16; i++) code[i] = (uint8_t)next_u64();
    uint32_t want = 0, ones_want = 0, ones;
    for (int d = 0; d < 128; d++) {
        unsigned bit = (code[d / 8] >> (d % 8)) & 1u;
        want += bit * u[d];
        ones_want += bit;
    }
    ck_assert_uint_eq(fanns_codec_bitdot_ref(p2, 2, code, 2, &ones), want);
    ck_assert_uint_eq(ones, ones_want);
}
END_TEST

/* ---- codecs ---- */

static fanns_codec_t *make(fanns_codec_kind_t kind, uint32_t dim, fanns_metric_t metric, float quantile,
                           uint32_t flags) {
    fanns_codec_params_t p = {.kind = kind, .dim = dim, .metric = metric, .quantile = quantile, .flags = flags};
    fanns_codec_t *c = NULL;
    fanns_err_t err;
    ck_assert_int_eq(fanns_codec_new(&p, &c, &err), 0);
    return c;
}

static float *random_vectors(size_t n, size_t dim, bool unit) {
    float *x = malloc(n * dim * sizeof(float));
    ck_assert(x);
    /* Anisotropic: dimension d has spread 0.2 + d % 7 and offset (d % 5) - 2. */
    for (size_t i = 0; i < n; i++) {
        for (size_t d = 0; d < dim; d++)
            x[i * dim + d] = grand() * (0.2f + (float)(d % 7)) + (float)(d % 5) - 2.0f;
        if (unit) fanns_vec_normalize(x + i * dim, dim);
    }
    return x;
}

static float true_dist(fanns_metric_t m, const float *q, const float *x, size_t dim) {
    switch (m) {
    case FANNS_METRIC_COSINE: return 1.0f - fanns_dist_dot_ref(q, x, dim);
    case FANNS_METRIC_DOT: return -fanns_dist_dot_ref(q, x, dim);
    case FANNS_METRIC_EUCLID: return fanns_dist_l2sq_ref(q, x, dim);
    case FANNS_METRIC_MANHATTAN: return fanns_dist_l1_ref(q, x, dim);
    }
    return NAN;
}

static const uint32_t dims[] = {1, 7, 63, 64, 65, 100, 384};

START_TEST(test_f16_roundtrip) {
    for (size_t di = 0; di < sizeof dims / sizeof dims[0]; di++) {
        uint32_t dim = dims[di];
        for (int m = 0; m < 4; m++) {
            fanns_codec_t *c = make(FANNS_CODEC_F16, dim, (fanns_metric_t)m, 0, 0);
            ck_assert(fanns_codec_is_trained(c));
            ck_assert_uint_eq(fanns_codec_code_size(c), 2u * dim);
            size_t n = 50;
            float *x = random_vectors(n, dim, m == FANNS_METRIC_COSINE), *y = malloc(n * dim * sizeof(float));
            uint8_t *codes = malloc(n * fanns_codec_code_size(c));
            ck_assert(y && codes);
            ck_assert_int_eq(fanns_codec_encode(c, n, x, codes, NULL), 0);
            ck_assert_int_eq(fanns_codec_decode(c, n, codes, y, NULL), 0);
            for (size_t i = 0; i < n * dim; i++)
                ck_assert_msg(fabsf(x[i] - y[i]) <= fabsf(x[i]) * 0x1p-11f + 0x1p-25f, "%g vs %g", x[i], y[i]);
            fanns_codec_query_t *q;
            ck_assert_int_eq(fanns_codec_query_new(c, x, 0, &q, NULL), 0);
            ck_assert_uint_eq(fanns_codec_query_bits(q), 32);
            for (size_t i = 0; i < n; i++) {
                float want = true_dist((fanns_metric_t)m, x, y + i * dim, dim);
                float got = fanns_codec_distance(q, codes + i * 2u * dim);
                ck_assert_msg(fabsf(got - want) <= 1e-4f * (1.0f + fabsf(want)), "m=%d %g vs %g", m, got, want);
            }
            fanns_codec_query_free(q);
            free(x);
            free(y);
            free(codes);
            fanns_codec_free(c);
        }
    }
    /* Out of the half range. */
    fanns_codec_t *c = make(FANNS_CODEC_F16, 2, FANNS_METRIC_DOT, 0, 0);
    float big[2] = {1.0f, 1.0e6f};
    uint8_t code[4];
    fanns_err_t err;
    ck_assert_int_eq(fanns_codec_encode(c, 1, big, code, &err), FANNS_EINVAL);
    fanns_codec_free(c);
}
END_TEST

START_TEST(test_sq8_roundtrip) {
    for (size_t di = 0; di < sizeof dims / sizeof dims[0]; di++) {
        uint32_t dim = dims[di];
        for (int global = 0; global < 2; global++) {
            for (int m = 0; m < 4; m++) {
                fanns_codec_t *c = make(FANNS_CODEC_SQ8, dim, (fanns_metric_t)m, 1.0f, global ? FANNS_CODEC_SQ8_GLOBAL : 0);
                size_t n = 200, cs = fanns_codec_code_size(c);
                ck_assert_uint_eq(cs, dim + (m == FANNS_METRIC_EUCLID ? 4u : 0u));
                ck_assert(!fanns_codec_is_trained(c));
                float *x = random_vectors(n, dim, m == FANNS_METRIC_COSINE), *y = malloc(n * dim * sizeof(float));
                uint8_t *codes = malloc(n * cs);
                ck_assert(y && codes);
                ck_assert_int_eq(fanns_codec_encode(c, n, x, codes, NULL), FANNS_EINVAL);
                ck_assert_int_eq(fanns_codec_train(c, n, x, NULL), 0);
                ck_assert_int_eq(fanns_codec_encode(c, n, x, codes, NULL), 0);
                ck_assert_int_eq(fanns_codec_decode(c, n, codes, y, NULL), 0);
                /* Quantile 1 covers every training value: within half a step (+ rounding). */
                float *steps = malloc(dim * sizeof(float));
                ck_assert(steps);
                for (size_t d = 0; d < dim; d++) {
                    float lo = INFINITY, hi = -INFINITY;
                    for (size_t i = 0; i < n; i++) {
                        float v = x[i * dim + d];
                        lo = fminf(lo, v);
                        hi = fmaxf(hi, v);
                    }
                    if (global) {
                        lo = INFINITY, hi = -INFINITY;
                        for (size_t i = 0; i < n * dim; i++) lo = fminf(lo, x[i]), hi = fmaxf(hi, x[i]);
                    }
                    float step = (hi - lo) / 255.0f;
                    steps[d] = step;
                    for (size_t i = 0; i < n; i++)
                        ck_assert_msg(fabsf(x[i * dim + d] - y[i * dim + d]) <= 0.5f * step * 1.001f + 1e-6f,
                                      "d=%zu %g vs %g step %g", d, x[i * dim + d], y[i * dim + d], step);
                }
                /* Float query: the estimate is the distance to the decoded vector.  Int8 query:
                 * close to it (query quantised to 127 levels). */
                for (unsigned bits = 0; bits <= 32; bits += 8) {
                    if (bits != 0 && bits != 8 && bits != 32) continue;
                    fanns_codec_query_t *q;
                    fanns_err_t err;
                    int rc = fanns_codec_query_new(c, x + dim, bits, &q, &err);
                    if (m == FANNS_METRIC_MANHATTAN && bits == 8) {
                        ck_assert_int_eq(rc, FANNS_EINVAL);
                        continue;
                    }
                    ck_assert_int_eq(rc, 0);
                    unsigned used = fanns_codec_query_bits(q);
                    ck_assert_uint_eq(used, bits ? bits : m == FANNS_METRIC_MANHATTAN ? 32u : 8u);
                    float *est = malloc(n * sizeof(float));
                    ck_assert(est);
                    fanns_codec_distance_batch(q, n, codes, est);
                    for (size_t i = 0; i < n; i++) {
                        float want = true_dist((fanns_metric_t)m, x + dim, y + i * dim, dim);
                        float got = fanns_codec_distance(q, codes + i * cs);
                        ck_assert(got == est[i]);
                        /* The int8 query w = q * step is rounded to multiples of s = max|w| / 127,
                         * so the dot product moves by at most s/2 * sum c (twice that for L2). */
                        double mag = 0, wmax = 0, csum = 0;
                        for (size_t d = 0; d < dim; d++) {
                            mag += fabs(x[dim + d]) * (fabs(y[i * dim + d]) + 1.0);
                            wmax = fmax(wmax, fabs(x[dim + d] * steps[d]));
                            csum += codes[i * cs + d];
                        }
                        double tol = 1e-4 * (1.0 + mag);
                        if (used == 8) tol += (m == FANNS_METRIC_EUCLID ? 2.0 : 1.0) * wmax / 127.0 / 2.0 * csum * 1.01;
                        ck_assert_msg(fabs(got - want) <= tol, "dim=%u m=%d bits=%u i=%zu: %g vs %g (tol %g)", dim, m,
                                      used, i, got, want, tol);
                    }
                    free(est);
                    fanns_codec_query_free(q);
                }
                free(steps);
                free(x);
                free(y);
                free(codes);
                fanns_codec_free(c);
            }
        }
    }
}
END_TEST

START_TEST(test_sq8_quantile_clamps) {
    /* One outlier per dimension: quantile 0.9 over 101 values cuts 5 at each end. */
    uint32_t dim = 3;
    size_t n = 101;
    float *x = malloc(n * dim * sizeof(float));
    ck_assert(x);
    for (size_t i = 0; i < n; i++)
        for (size_t d = 0; d < dim; d++) x[i * dim + d] = (float)i * (float)(d + 1);
    x[0] = -1000.0f;
    fanns_codec_t *c = make(FANNS_CODEC_SQ8, dim, FANNS_METRIC_DOT, 0.9f, 0);
    ck_assert_int_eq(fanns_codec_train(c, n, x, NULL), 0);
    uint8_t codes[3];
    float y[3], v[3] = {-1000.0f, 5.0f * 2.0f, 1e9f};
    ck_assert_int_eq(fanns_codec_encode(c, 1, v, codes, NULL), 0);
    ck_assert_int_eq(fanns_codec_decode(c, 1, codes, y, NULL), 0);
    ck_assert_uint_eq(codes[0], 0);
    ck_assert_uint_eq(codes[1], 0);   /* the 5th smallest of dimension 1 is lo */
    ck_assert_uint_eq(codes[2], 255);
    ck_assert_float_eq_tol(y[0], 5.0f, 1e-4f); /* the outlier -1000 does not widen the range */
    ck_assert_float_eq_tol(y[1], 10.0f, 1e-4f);
    ck_assert_float_eq_tol(y[2], 95.0f * 3.0f, 1e-3f);
    free(x);
    fanns_codec_free(c);
}
END_TEST

START_TEST(test_bin_roundtrip) {
    for (size_t di = 0; di < sizeof dims / sizeof dims[0]; di++) {
        uint32_t dim = dims[di];
        for (int center = 0; center < 2; center++) {
            for (int m = 0; m < 3; m++) {
                fanns_codec_t *c = make(FANNS_CODEC_BIN, dim, (fanns_metric_t)m, 0, center ? 0 : FANNS_CODEC_BIN_NO_CENTER);
                size_t n = 100, cs = fanns_codec_code_size(c), words = (dim + 63) / 64;
                ck_assert_uint_eq(cs, 8 * words + 12);
                ck_assert(fanns_codec_is_trained(c) == !center);
                float *x = random_vectors(n, dim, m == FANNS_METRIC_COSINE), *y = malloc(n * dim * sizeof(float));
                uint8_t *codes = malloc(n * cs);
                double *mean = calloc(dim, sizeof(double));
                ck_assert(y && codes && mean);
                ck_assert_int_eq(fanns_codec_train(c, n, x, NULL), 0);
                if (center)
                    for (size_t i = 0; i < n * dim; i++) mean[i % dim] += x[i] / (double)n;
                ck_assert_int_eq(fanns_codec_encode(c, n, x, codes, NULL), 0);
                ck_assert_int_eq(fanns_codec_decode(c, n, codes, y, NULL), 0);
                for (size_t i = 0; i < n; i++) {
                    const uint8_t *code = codes + i * cs;
                    /* Padding bits are zero. */
                    for (size_t b = dim; b < 64 * words; b++) ck_assert(!((code[b / 8] >> (b % 8)) & 1u));
                    double sumabs = 0;
                    for (size_t d = 0; d < dim; d++) sumabs += fabs(x[i * dim + d] - mean[d]);
                    double alpha = sumabs / dim;
                    for (size_t d = 0; d < dim; d++) {
                        double r = x[i * dim + d] - mean[d], rhat = y[i * dim + d] - mean[d];
                        ck_assert(fabs(fabs(rhat) - alpha) <= 1e-4 * (alpha + fabs(mean[d])) + 1e-6);
                        if (fabs(r) > 1e-4) ck_assert_msg((r > 0) == (rhat > 0), "sign d=%zu", d);
                    }
                }
                /* Estimates: with 8-bit queries, the estimate must be within the query's
                 * quantisation error of the estimator evaluated with the exact query. */
                const float *qv = x + 3 * dim;
                for (unsigned bits = 1; bits <= 8; bits++) {
                    if (bits != 1 && bits != 4 && bits != 8) continue;
                    fanns_codec_query_t *q;
                    ck_assert_int_eq(fanns_codec_query_new(c, qv, bits, &q, NULL), 0);
                    double qlo = INFINITY, qhi = -INFINITY, qsq = 0, qc = 0;
                    for (size_t d = 0; d < dim; d++) {
                        double v = qv[d] - mean[d];
                        qlo = fmin(qlo, v);
                        qhi = fmax(qhi, v);
                        qsq += v * v;
                        qc += qv[d] * mean[d];
                    }
                    for (size_t i = 0; i < n; i++) {
                        const float *xv = x + i * dim;
                        double ip = 0, sumabs = 0, rsq = 0, cr = 0;
                        for (size_t d = 0; d < dim; d++) {
                            double r = xv[d] - mean[d], s = r > 0 ? 1.0 : -1.0;
                            ip += (qv[d] - mean[d]) * s;
                            sumabs += fabs(r);
                            rsq += r * r;
                            cr += mean[d] * r;
                        }
                        double kappa = sumabs > 0 ? rsq / sumabs : 0, e = kappa * ip, want;
                        if (m == FANNS_METRIC_EUCLID) want = qsq + rsq - 2 * e;
                        else if (m == FANNS_METRIC_COSINE) want = 1.0 - (e + qc + cr);
                        else want = -(e + qc + cr);
                        float got = fanns_codec_distance(q, codes + i * cs);
                        double tol;
                        if (bits == 1) {
                            /* Hamming estimator: only check it is finite and the exact-sign case below. */
                            ck_assert(isfinite(got));
                            continue;
                        }
                        double delta = (qhi - qlo) / ((1 << bits) - 1);
                        tol = 2.0 * kappa * dim * delta / 2.0 * 1.01 + 1e-3 * (1 + fabs(want));
                        ck_assert_msg(fabs(got - want) <= tol, "dim=%u m=%d bits=%u: %g vs %g (tol %g)", dim, m, bits,
                                      got, want, tol);
                    }
                    fanns_codec_query_free(q);
                }
                free(x);
                free(y);
                free(codes);
                free(mean);
                fanns_codec_free(c);
            }
        }
    }
}
END_TEST

START_TEST(test_bin_hamming_exact) {
    /* Vectors of +-1 with centre 0: the Hamming estimate is exact. */
    uint32_t dim = 130;
    fanns_codec_t *c = make(FANNS_CODEC_BIN, dim, FANNS_METRIC_DOT, 0, FANNS_CODEC_BIN_NO_CENTER);
    float x[2 * 130];
    for (size_t i = 0; i < 2 * dim; i++) x[i] = (next_u64() & 1) ? 1.0f : -1.0f;
    uint8_t codes[2 * (3 * 8 + 12)];
    ck_assert_int_eq(fanns_codec_encode(c, 2, x, codes, NULL), 0);
    for (unsigned bits = 1; bits <= 8; bits++) {
        if (bits != 1 && bits != 4 && bits != 8) continue;
        fanns_codec_query_t *q;
        ck_assert_int_eq(fanns_codec_query_new(c, x, bits, &q, NULL), 0);
        float want = -fanns_dist_dot_ref(x, x + dim, dim);
        ck_assert_float_eq_tol(fanns_codec_distance(q, codes + 36), want, 1e-3f);
        ck_assert_float_eq_tol(fanns_codec_distance(q, codes), -(float)dim, 1e-3f);
        fanns_codec_query_free(q);
    }
    fanns_codec_free(c);
}
END_TEST

/* ---- recall after rescoring ---- */

typedef struct {
    float d;
    uint32_t i;
} cand_t;

static int cmp_cand(const void *a, const void *b) {
    const cand_t *x = a, *y = b;
    return x->d < y->d ? -1 : x->d > y->d ? 1 : (x->i > y->i) - (x->i < y->i);
}

/* Recall@10 over nq queries of: top 10*over by estimate, rescored exactly. */
static double rescored_recall(fanns_codec_t *c, unsigned bits, const float *x, size_t n, const float *qs, size_t nq,
                              size_t dim, size_t over) {
    size_t cs = fanns_codec_code_size(c), k = 10, kc = k * over;
    uint8_t *codes = malloc(n * cs);
    cand_t *ex = malloc(n * sizeof(cand_t)), *es = malloc(n * sizeof(cand_t));
    float *est = malloc(n * sizeof(float));
    ck_assert(codes && ex && es && est);
    ck_assert_int_eq(fanns_codec_train(c, n, x, NULL), 0);
    ck_assert_int_eq(fanns_codec_encode(c, n, x, codes, NULL), 0);
    size_t hits = 0;
    fanns_metric_t m = fanns_codec_metric(c);
    for (size_t qi = 0; qi < nq; qi++) {
        const float *qv = qs + qi * dim;
        fanns_codec_query_t *q;
        ck_assert_int_eq(fanns_codec_query_new(c, qv, bits, &q, NULL), 0);
        fanns_codec_distance_batch(q, n, codes, est);
        for (size_t i = 0; i < n; i++) {
            ex[i] = (cand_t){true_dist(m, qv, x + i * dim, dim), (uint32_t)i};
            es[i] = (cand_t){est[i], (uint32_t)i};
        }
        qsort(ex, n, sizeof(cand_t), cmp_cand);
        qsort(es, n, sizeof(cand_t), cmp_cand);
        for (size_t j = 0; j < kc; j++) es[j].d = true_dist(m, qv, x + es[j].i * dim, dim);
        qsort(es, kc, sizeof(cand_t), cmp_cand);
        for (size_t j = 0; j < k; j++)
            for (size_t l = 0; l < k; l++)
                if (es[j].i == ex[l].i) hits++;
        fanns_codec_query_free(q);
    }
    free(codes);
    free(ex);
    free(es);
    free(est);
    return (double)hits / (double)(nq * k);
}

START_TEST(test_rescored_recall) {
    size_t n = 3000, dim = 100, nq = 30, nclusters = 30;
    float *cent = malloc(nclusters * dim * sizeof(float)), *x = malloc(n * dim * sizeof(float));
    float *qs = malloc(nq * dim * sizeof(float));
    ck_assert(cent && x && qs);
    for (size_t i = 0; i < nclusters * dim; i++) cent[i] = grand();
    for (size_t i = 0; i < n; i++) {
        for (size_t d = 0; d < dim; d++) x[i * dim + d] = cent[(i % nclusters) * dim + d] + 0.5f * grand();
        fanns_vec_normalize(x + i * dim, dim);
    }
    for (size_t i = 0; i < nq; i++) {
        for (size_t d = 0; d < dim; d++) qs[i * dim + d] = cent[(i * 7 % nclusters) * dim + d] + 0.5f * grand();
        fanns_vec_normalize(qs + i * dim, dim);
    }
    struct {
        fanns_codec_kind_t kind;
        fanns_metric_t metric;
        unsigned bits;
        size_t over;
        double min_recall;
    } cases[] = {
        {FANNS_CODEC_F16, FANNS_METRIC_COSINE, 32, 1, 1.0},  {FANNS_CODEC_SQ8, FANNS_METRIC_COSINE, 8, 4, 1.0},
        {FANNS_CODEC_SQ8, FANNS_METRIC_COSINE, 32, 4, 1.0},  {FANNS_CODEC_SQ8, FANNS_METRIC_EUCLID, 8, 4, 1.0},
        {FANNS_CODEC_SQ8, FANNS_METRIC_DOT, 8, 4, 1.0},      {FANNS_CODEC_SQ8, FANNS_METRIC_MANHATTAN, 32, 4, 1.0},
        /* Without rescoring (oversampling 1) SQ8 already finds most of the top 10. */
        {FANNS_CODEC_SQ8, FANNS_METRIC_COSINE, 8, 1, 0.85},  {FANNS_CODEC_SQ8, FANNS_METRIC_COSINE, 32, 1, 0.85},
        /* 1 bit per dimension of 100 is coarse: it needs more oversampling (measured 0.77 at
         * 4x, 1.0 at 10x for the 4-bit query; 0.69 at 4x for Hamming).  Chance is 0.003. */
        {FANNS_CODEC_BIN, FANNS_METRIC_COSINE, 4, 10, 0.95}, {FANNS_CODEC_BIN, FANNS_METRIC_COSINE, 4, 4, 0.7},
        {FANNS_CODEC_BIN, FANNS_METRIC_EUCLID, 8, 4, 0.7},   {FANNS_CODEC_BIN, FANNS_METRIC_COSINE, 1, 4, 0.6},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fanns_codec_t *c = make(cases[i].kind, (uint32_t)dim, cases[i].metric, 0, 0);
        double r = rescored_recall(c, cases[i].bits, x, n, qs, nq, dim, cases[i].over);
        ck_assert_msg(r >= cases[i].min_recall, "case %zu: recall %.3f < %.3f", i, r, cases[i].min_recall);
        fanns_codec_free(c);
    }
    free(cent);
    free(x);
    free(qs);
}
END_TEST

/* ---- serialization, determinism, errors ---- */

START_TEST(test_serialize) {
    uint32_t dim = 37;
    size_t n = 64;
    float *x = random_vectors(n, dim, false);
    struct {
        fanns_codec_kind_t kind;
        uint32_t flags;
        fanns_metric_t metric;
    } cases[] = {{FANNS_CODEC_F16, 0, FANNS_METRIC_MANHATTAN},
                 {FANNS_CODEC_SQ8, 0, FANNS_METRIC_EUCLID},
                 {FANNS_CODEC_SQ8, FANNS_CODEC_SQ8_GLOBAL, FANNS_METRIC_DOT},
                 {FANNS_CODEC_BIN, 0, FANNS_METRIC_EUCLID},
                 {FANNS_CODEC_BIN, FANNS_CODEC_BIN_NO_CENTER, FANNS_METRIC_COSINE}};
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        fanns_codec_t *c = make(cases[ci].kind, dim, cases[ci].metric, 0.95f, cases[ci].flags), *d = NULL;
        ck_assert_int_eq(fanns_codec_train(c, n, x, NULL), 0);
        uint8_t *buf, *buf2;
        size_t len, len2;
        fanns_err_t err;
        ck_assert_int_eq(fanns_codec_serialize(c, &buf, &len, NULL), 0);
        ck_assert_int_eq(fanns_codec_deserialize(buf, len, &d, &err), 0);
        ck_assert_int_eq(fanns_codec_serialize(d, &buf2, &len2, NULL), 0);
        ck_assert_uint_eq(len, len2);
        ck_assert(memcmp(buf, buf2, len) == 0);
        size_t cs = fanns_codec_code_size(c);
        ck_assert_uint_eq(fanns_codec_code_size(d), cs);
        uint8_t *a = malloc(n * cs), *b = malloc(n * cs);
        ck_assert(a && b);
        ck_assert_int_eq(fanns_codec_encode(c, n, x, a, NULL), 0);
        ck_assert_int_eq(fanns_codec_encode(d, n, x, b, NULL), 0);
        ck_assert(memcmp(a, b, n * cs) == 0);
        free(a);
        free(b);
        fanns_codec_free(d);
        /* Every truncation and every single-bit flip is rejected. */
        for (size_t l = 0; l < len; l++) {
            ck_assert_int_eq(fanns_codec_deserialize(buf, l, &d, &err), FANNS_ECORRUPT);
            ck_assert_ptr_null(d);
        }
        for (size_t i = 0; i < len; i++) {
            for (int bit = 0; bit < 8; bit += 3) {
                buf[i] ^= (uint8_t)(1u << bit);
                ck_assert_int_eq(fanns_codec_deserialize(buf, len, &d, &err), FANNS_ECORRUPT);
                buf[i] ^= (uint8_t)(1u << bit);
            }
        }
        free(buf);
        free(buf2);
        fanns_codec_free(c);
    }
    free(x);
}
END_TEST

/* Rewrites the hash after editing a header, to reach the field checks behind it. */
static void rehash(uint8_t *b, size_t len) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len - 8; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    for (int i = 0; i < 8; i++) b[len - 8 + (size_t)i] = (uint8_t)(h >> (8 * i));
}

START_TEST(test_deserialize_fields) {
    uint32_t dim = 5;
    float *x = random_vectors(10, dim, false);
    fanns_codec_t *c = make(FANNS_CODEC_SQ8, dim, FANNS_METRIC_DOT, 0, 0), *d = NULL;
    ck_assert_int_eq(fanns_codec_train(c, 10, x, NULL), 0);
    uint8_t *buf;
    size_t len;
    ck_assert_int_eq(fanns_codec_serialize(c, &buf, &len, NULL), 0);
    ck_assert_uint_eq(len, 40 + 2 * 4 * dim + 8);
    uint8_t *t = malloc(len);
    ck_assert(t);
    fanns_err_t err;
    struct {
        size_t off;
        uint32_t val;
    } edits[] = {{8, 9} /* kind */,       {12, 0} /* dim */,   {12, 6} /* dim vs payload */, {16, 7} /* metric */,
                 {20, 0x80} /* flags */, {24, 0} /* quantile */, {28, 2} /* trained */,       {28, 0} /* untrained with payload */};
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        memcpy(t, buf, len);
        for (int k = 0; k < 4; k++) t[edits[i].off + (size_t)k] = (uint8_t)(edits[i].val >> (8 * k));
        rehash(t, len);
        ck_assert_msg(fanns_codec_deserialize(t, len, &d, &err) == FANNS_ECORRUPT, "edit %zu", i);
    }
    /* A negative step and a NaN lo. */
    memcpy(t, buf, len);
    float neg = -1.0f, nan = NAN;
    memcpy(t + 40 + 4 * dim, &neg, 4);
    rehash(t, len);
    ck_assert_int_eq(fanns_codec_deserialize(t, len, &d, &err), FANNS_ECORRUPT);
    memcpy(t, buf, len);
    memcpy(t + 40, &nan, 4);
    rehash(t, len);
    ck_assert_int_eq(fanns_codec_deserialize(t, len, &d, &err), FANNS_ECORRUPT);
    /* The unedited buffer, rehashed, still loads. */
    memcpy(t, buf, len);
    rehash(t, len);
    ck_assert_int_eq(fanns_codec_deserialize(t, len, &d, &err), 0);
    fanns_codec_free(d);
    free(t);
    free(buf);
    free(x);
    fanns_codec_free(c);
}
END_TEST

START_TEST(test_training_deterministic) {
    uint32_t dim = 33;
    size_t n = 500;
    float *x = random_vectors(n, dim, false), *perm = malloc(n * dim * sizeof(float));
    ck_assert(perm);
    /* The same rows in reverse order: order statistics do not depend on the order. */
    for (size_t i = 0; i < n; i++) memcpy(perm + i * dim, x + (n - 1 - i) * dim, dim * sizeof(float));
    for (int global = 0; global < 2; global++) {
        fanns_codec_t *a = make(FANNS_CODEC_SQ8, dim, FANNS_METRIC_EUCLID, 0.97f, global ? FANNS_CODEC_SQ8_GLOBAL : 0);
        fanns_codec_t *b = make(FANNS_CODEC_SQ8, dim, FANNS_METRIC_EUCLID, 0.97f, global ? FANNS_CODEC_SQ8_GLOBAL : 0);
        ck_assert_int_eq(fanns_codec_train(a, n, x, NULL), 0);
        ck_assert_int_eq(fanns_codec_train(b, n, perm, NULL), 0);
        uint8_t *ba, *bb;
        size_t la, lb;
        ck_assert_int_eq(fanns_codec_serialize(a, &ba, &la, NULL), 0);
        ck_assert_int_eq(fanns_codec_serialize(b, &bb, &lb, NULL), 0);
        ck_assert(la == lb && memcmp(ba, bb, la) == 0);
        /* Training twice on the same data gives the same codec. */
        ck_assert_int_eq(fanns_codec_train(b, n, x, NULL), 0);
        free(bb);
        ck_assert_int_eq(fanns_codec_serialize(b, &bb, &lb, NULL), 0);
        ck_assert(la == lb && memcmp(ba, bb, la) == 0);
        free(ba);
        free(bb);
        fanns_codec_free(a);
        fanns_codec_free(b);
    }
    fanns_codec_t *a = make(FANNS_CODEC_BIN, dim, FANNS_METRIC_DOT, 0, 0), *b = make(FANNS_CODEC_BIN, dim, FANNS_METRIC_DOT, 0, 0);
    ck_assert_int_eq(fanns_codec_train(a, n, x, NULL), 0);
    ck_assert_int_eq(fanns_codec_train(b, n, x, NULL), 0);
    uint8_t *ba, *bb;
    size_t la, lb;
    ck_assert_int_eq(fanns_codec_serialize(a, &ba, &la, NULL), 0);
    ck_assert_int_eq(fanns_codec_serialize(b, &bb, &lb, NULL), 0);
    ck_assert(la == lb && memcmp(ba, bb, la) == 0);
    free(ba);
    free(bb);
    fanns_codec_free(a);
    fanns_codec_free(b);
    free(x);
    free(perm);
}
END_TEST

START_TEST(test_errors) {
    fanns_codec_t *c = NULL;
    fanns_err_t err;
    fanns_codec_params_t p = {.kind = FANNS_CODEC_BIN, .dim = 8, .metric = FANNS_METRIC_MANHATTAN};
    ck_assert_int_eq(fanns_codec_new(&p, &c, &err), FANNS_EVALIDATE);
    ck_assert(strstr(err.msg, "Manhattan") != NULL);
    ck_assert_ptr_null(c);
    p = (fanns_codec_params_t){.kind = FANNS_CODEC_SQ8, .dim = 8, .metric = FANNS_METRIC_DOT, .quantile = 0.3f};
    ck_assert_int_eq(fanns_codec_new(&p, &c, &err), FANNS_EVALIDATE);
    p.quantile = 1.5f;
    ck_assert_int_eq(fanns_codec_new(&p, &c, &err), FANNS_EVALIDATE);
    p.quantile = 0;
    p.dim = 0;
    ck_assert_int_eq(fanns_codec_new(&p, &c, &err), FANNS_EVALIDATE);
    p.dim = FANNS_CODEC_MAX_DIM + 1;
    ck_assert_int_eq(fanns_codec_new(&p, &c, &err), FANNS_EVALIDATE);
    p.dim = 8;
    p.kind = (fanns_codec_kind_t)7;
    ck_assert_int_eq(fanns_codec_new(&p, &c, &err), FANNS_EVALIDATE);
    p.kind = FANNS_CODEC_SQ8;
    p.flags = 0x100;
    ck_assert_int_eq(fanns_codec_new(&p, &c, &err), FANNS_EVALIDATE);
    p.flags = 0;
    ck_assert_int_eq(fanns_codec_new(&p, &c, &err), 0);
    float x[16] = {0};
    fanns_codec_query_t *q = NULL;
    ck_assert_int_eq(fanns_codec_query_new(c, x, 0, &q, &err), FANNS_EINVAL);
    ck_assert_int_eq(fanns_codec_decode(c, 1, (const uint8_t *)x, x, &err), FANNS_EINVAL);
    ck_assert_int_eq(fanns_codec_train(c, 0, x, &err), FANNS_EINVAL);
    x[3] = NAN;
    ck_assert_int_eq(fanns_codec_train(c, 2, x, &err), FANNS_EINVAL);
    x[3] = 1.0f;
    ck_assert_int_eq(fanns_codec_train(c, 2, x, &err), 0);
    ck_assert_int_eq(fanns_codec_query_new(c, x, 4, &q, &err), FANNS_EINVAL);
    ck_assert_int_eq(fanns_codec_query_new(c, x, 1, &q, &err), FANNS_EINVAL);
    x[0] = INFINITY;
    ck_assert_int_eq(fanns_codec_query_new(c, x, 8, &q, &err), FANNS_EINVAL);
    uint8_t code[8];
    ck_assert_int_eq(fanns_codec_encode(c, 1, x, code, &err), FANNS_EINVAL);
    ck_assert_ptr_null(q);
    fanns_codec_free(c);
    /* Constant dimensions have step 0: they encode to 0 and decode exactly. */
    p.dim = 2;
    ck_assert_int_eq(fanns_codec_new(&p, &c, &err), 0);
    float y[4] = {3.0f, 1.0f, 3.0f, 2.0f}, z[2];
    ck_assert_int_eq(fanns_codec_train(c, 2, y, &err), 0);
    ck_assert_int_eq(fanns_codec_encode(c, 1, y, code, &err), 0);
    ck_assert_int_eq(fanns_codec_decode(c, 1, code, z, &err), 0);
    ck_assert_uint_eq(code[0], 0);
    ck_assert(z[0] == 3.0f);
    fanns_codec_free(c);
    p = (fanns_codec_params_t){.kind = FANNS_CODEC_F16, .dim = 4, .metric = FANNS_METRIC_DOT};
    ck_assert_int_eq(fanns_codec_new(&p, &c, &err), 0);
    ck_assert_int_eq(fanns_codec_query_new(c, y, 8, &q, &err), FANNS_EINVAL);
    fanns_codec_free(c);
    p.kind = FANNS_CODEC_BIN;
    ck_assert_int_eq(fanns_codec_new(&p, &c, &err), 0);
    ck_assert(!fanns_codec_is_trained(c));
    ck_assert_int_eq(fanns_codec_encode(c, 1, y, code, &err), FANNS_EINVAL);
    ck_assert_int_eq(fanns_codec_train(c, 1, y, &err), 0);
    ck_assert_int_eq(fanns_codec_query_new(c, y, 2, &q, &err), FANNS_EINVAL);
    ck_assert_int_eq(fanns_codec_query_new(c, y, 32, &q, &err), FANNS_EINVAL);
    fanns_codec_free(c);
    ck_assert(strlen(fanns_codec_isa()) > 0);
}
END_TEST

/* ---- product quantization ---- */

typedef float (*pq_sum_fn)(const float *, const uint8_t *, size_t);
typedef void (*pq_batch_fn)(const float *, size_t, const uint8_t *, size_t, float *);
static bool avx2_only(void) { return fanns_codec_avx2_available(); }
static const struct {
    const char *name;
    pq_sum_fn sum;
    pq_batch_fn batch;
    bool batch_is_ref; /* the batch sums in the reference's order (else in sum's order) */
    bool (*available)(void);
} pq_variants[] = {
    {"pq_unrolled", fanns_codec_pq_sum_unrolled, fanns_codec_pq_batch_unrolled, false, always},
    {"pq_avx2", fanns_codec_pq_sum_avx2, fanns_codec_pq_batch_avx2, true, avx2_only},
    {"pq_avx512", fanns_codec_pq_sum_avx512, fanns_codec_pq_batch_avx512, true, fanns_codec_avx512_available},
};

START_TEST(test_pq_kernels) {
    if (!pq_variants[_i].available()) return;
    pq_sum_fn sum = pq_variants[_i].sum;
    pq_batch_fn batch = pq_variants[_i].batch;
    size_t ms[80], nm = 0, nmax = 37; /* 37 codes: not a multiple of 2, 8 or 16 */
    for (size_t m = 1; m <= 70; m++) ms[nm++] = m;
    ms[nm++] = 96, ms[nm++] = 128, ms[nm++] = 203;
    float *table = aligned_alloc(64, 203 * 256 * sizeof(float)), *got = malloc(nmax * sizeof(float));
    uint8_t *buf = malloc(203 * nmax + 1);
    ck_assert(table && got && buf);
    for (size_t i = 0; i < 203 * 256; i++) table[i] = frand() * 4.0f;
    for (size_t k = 0; k < nm; k++) {
        size_t m = ms[k];
        for (int off = 0; off < 2; off++) {
            uint8_t *codes = buf + off; /* off = 1: codes at an odd address */
            for (size_t i = 0; i < m * nmax; i++) codes[i] = (uint8_t)next_u64();
            codes[0] = 0, codes[m * nmax - 1] = 255; /* both ends of the table rows */
            for (size_t n = 0; n <= nmax; n += (n < 20 ? 1 : 17)) {
                batch(table, m, codes, n, got);
                for (size_t i = 0; i < n; i++) {
                    const uint8_t *c = codes + i * m;
                    float ref = fanns_codec_pq_sum_ref(table, c, m), one = sum(table, c, m);
                    double mag = 0;
                    for (size_t j = 0; j < m; j++) mag += fabs(table[256 * j + c[j]]);
                    ck_assert_msg(fabs((double)one - ref) <= 1e-6 * mag + 1e-6, "%s m=%zu: %g vs %g",
                                  pq_variants[_i].name, m, one, ref);
                    float want = pq_variants[_i].batch_is_ref ? ref : one;
                    ck_assert_msg(memcmp(&got[i], &want, 4) == 0, "%s batch m=%zu n=%zu i=%zu: %a vs %a",
                                  pq_variants[_i].name, m, n, i, got[i], want);
                }
            }
        }
    }
    /* The reference sums in subspace order: a batch of it is the same per code. */
    uint8_t c3[3] = {1, 2, 3};
    float t3 = fanns_codec_pq_sum_ref(table, c3, 3);
    ck_assert(t3 == (table[1] + table[256 + 2]) + table[512 + 3]);
    free(table);
    free(got);
    free(buf);
}
END_TEST

static fanns_codec_t *make_pq(uint32_t dim, uint32_t m, fanns_metric_t metric) {
    fanns_codec_params_t p = {.kind = FANNS_CODEC_PQ, .dim = dim, .metric = metric, .pq_m = m};
    fanns_codec_t *c = NULL;
    fanns_err_t err;
    ck_assert_int_eq(fanns_codec_new(&p, &c, &err), 0);
    return c;
}

/* Codebooks [m][256][dsub]: sub-vectors of random rows of x plus a little noise. */
static float *sample_centroids(const float *x, size_t n, uint32_t dim, uint32_t m) {
    uint32_t dsub = dim / m;
    float *cent = malloc((size_t)256 * dim * sizeof(float));
    ck_assert(cent);
    for (uint32_t j = 0; j < m; j++)
        for (size_t k = 0; k < 256; k++) {
            const float *row = x + (next_u64() % n) * dim + (size_t)j * dsub;
            for (uint32_t d = 0; d < dsub; d++) cent[((size_t)j * 256 + k) * dsub + d] = row[d] + 0.05f * grand();
        }
    return cent;
}

START_TEST(test_pq_roundtrip) {
    static const uint32_t cfg[][2] = {{1, 1}, {8, 8}, {12, 4}, {63, 21}, {64, 8}, {100, 25}, {384, 48}, {6, 1}};
    for (size_t ci = 0; ci < sizeof cfg / sizeof cfg[0]; ci++) {
        uint32_t dim = cfg[ci][0], m = cfg[ci][1], dsub = dim / m;
        for (int metric = 0; metric < 4; metric++) {
            fanns_codec_t *c = make_pq(dim, m, (fanns_metric_t)metric);
            ck_assert(!fanns_codec_is_trained(c));
            ck_assert_uint_eq(fanns_codec_code_size(c), m);
            ck_assert_uint_eq(fanns_codec_pq_m(c), m);
            size_t n = 150;
            float *x = random_vectors(n, dim, metric == FANNS_METRIC_COSINE), *y = malloc(n * dim * sizeof(float));
            uint8_t *codes = malloc(n * m);
            ck_assert(y && codes);
            fanns_err_t err;
            ck_assert_int_eq(fanns_codec_encode(c, n, x, codes, &err), FANNS_EINVAL);
            float *cent = sample_centroids(x, n, dim, m);
            ck_assert_int_eq(fanns_codec_set_pq_centroids(c, cent, &err), 0);
            ck_assert(fanns_codec_is_trained(c));
            ck_assert_int_eq(fanns_codec_encode(c, n, x, codes, NULL), 0);
            ck_assert_int_eq(fanns_codec_decode(c, n, codes, y, NULL), 0);
            /* Each byte names a nearest centroid (checked in double precision), and decode is
             * exactly the concatenation of the named centroids. */
            for (size_t i = 0; i < n; i++) {
                for (uint32_t j = 0; j < m; j++) {
                    const float *xs = x + i * dim + (size_t)j * dsub;
                    double best = INFINITY, chosen = 0;
                    for (size_t k = 0; k < 256; k++) {
                        const float *ck = cent + ((size_t)j * 256 + k) * dsub;
                        double s = 0;
                        for (uint32_t d = 0; d < dsub; d++) s += ((double)xs[d] - ck[d]) * ((double)xs[d] - ck[d]);
                        if (s < best) best = s;
                        if (k == codes[i * m + j]) chosen = s;
                    }
                    ck_assert_msg(chosen <= best * (1 + 1e-5) + 1e-9, "dim=%u m=%u i=%zu j=%u: %g > %g", dim, m, i, j,
                                  chosen, best);
                    const float *want = cent + ((size_t)j * 256 + codes[i * m + j]) * dsub;
                    ck_assert(memcmp(y + i * dim + (size_t)j * dsub, want, dsub * sizeof(float)) == 0);
                }
            }
            /* The table distance is the distance to the decoded vector, single and batch alike. */
            for (unsigned bits = 0; bits <= 32; bits += 32) {
                fanns_codec_query_t *q;
                ck_assert_int_eq(fanns_codec_query_new(c, x + dim, bits, &q, &err), 0);
                ck_assert_uint_eq(fanns_codec_query_bits(q), 32);
                float *est = malloc(n * sizeof(float));
                ck_assert(est);
                fanns_codec_distance_batch(q, n, codes, est);
                for (size_t i = 0; i < n; i++) {
                    float want = true_dist((fanns_metric_t)metric, x + dim, y + i * dim, dim);
                    float got = fanns_codec_distance(q, codes + i * m);
                    ck_assert(got == est[i]);
                    double mag = 0;
                    for (size_t d = 0; d < dim; d++) mag += fabs(x[dim + d]) * (fabs(y[i * dim + d]) + 1.0) + fabs(y[i * dim + d]);
                    ck_assert_msg(fabs(got - want) <= 2e-5 * (1.0 + mag), "dim=%u m=%u metric=%d i=%zu: %g vs %g", dim,
                                  m, metric, i, got, want);
                }
                free(est);
                fanns_codec_query_free(q);
            }
            fanns_codec_query_t *q = NULL;
            ck_assert_int_eq(fanns_codec_query_new(c, x, 8, &q, &err), FANNS_EINVAL);
            ck_assert_int_eq(fanns_codec_query_new(c, x, 4, &q, &err), FANNS_EINVAL);
            ck_assert_ptr_null(q);
            free(cent);
            free(x);
            free(y);
            free(codes);
            fanns_codec_free(c);
        }
    }
}
END_TEST

START_TEST(test_pq_ties_and_errors) {
    fanns_codec_t *c = NULL;
    fanns_err_t err;
    /* pq_m must be 1..dim and divide dim. */
    fanns_codec_params_t p = {.kind = FANNS_CODEC_PQ, .dim = 8, .metric = FANNS_METRIC_EUCLID, .pq_m = 0};
    ck_assert_int_eq(fanns_codec_new(&p, &c, &err), FANNS_EVALIDATE);
    ck_assert_str_eq(err.path, "pq_m");
    p.pq_m = 3;
    ck_assert_int_eq(fanns_codec_new(&p, &c, &err), FANNS_EVALIDATE);
    p.pq_m = 16;
    ck_assert_int_eq(fanns_codec_new(&p, &c, &err), FANNS_EVALIDATE);
    ck_assert_ptr_null(c);
    /* Other kinds ignore pq_m; centroids can be set on PQ codecs only. */
    p = (fanns_codec_params_t){.kind = FANNS_CODEC_F16, .dim = 8, .metric = FANNS_METRIC_EUCLID, .pq_m = 3};
    ck_assert_int_eq(fanns_codec_new(&p, &c, &err), 0);
    ck_assert_uint_eq(fanns_codec_pq_m(c), 0);
    float *cent = calloc(256 * 8, sizeof(float));
    ck_assert(cent);
    ck_assert_int_eq(fanns_codec_set_pq_centroids(c, cent, &err), FANNS_EINVAL);
    fanns_codec_free(c);

    c = make_pq(8, 4, FANNS_METRIC_EUCLID);
    float x[8] = {1, 2, 3, 4, 5, 6, 7, 8}, y[8];
    uint8_t code[4];
    ck_assert_int_eq(fanns_codec_train(c, 1, x, &err), FANNS_EINVAL);
    ck_assert(strstr(err.msg, "fanns_codec_set_pq_centroids") != NULL);
    fanns_codec_query_t *q = NULL;
    ck_assert_int_eq(fanns_codec_query_new(c, x, 0, &q, &err), FANNS_EINVAL);
    ck_assert_int_eq(fanns_codec_decode(c, 1, code, y, &err), FANNS_EINVAL);
    cent[5] = NAN;
    ck_assert_int_eq(fanns_codec_set_pq_centroids(c, cent, &err), FANNS_EINVAL);
    ck_assert(!fanns_codec_is_trained(c));
    cent[5] = INFINITY;
    ck_assert_int_eq(fanns_codec_set_pq_centroids(c, cent, &err), FANNS_EINVAL);
    cent[5] = 0.0f;
    /* All centroids equal: every subspace ties and takes centroid 0. */
    ck_assert_int_eq(fanns_codec_set_pq_centroids(c, cent, &err), 0);
    ck_assert_int_eq(fanns_codec_encode(c, 1, x, code, &err), 0);
    for (int j = 0; j < 4; j++) ck_assert_uint_eq(code[j], 0);
    /* Subspace 1 (x = 3, 4): centroids 9 and 200 are exact copies, 7 is next; the lowest of the
     * tied ones wins.  Subspace 3 (7, 8): only 255 is exact. */
    for (size_t i = 0; i < 256 * 8; i++) cent[i] = 100.0f;
    cent[(1 * 256 + 9) * 2] = 3, cent[(1 * 256 + 9) * 2 + 1] = 4;
    cent[(1 * 256 + 200) * 2] = 3, cent[(1 * 256 + 200) * 2 + 1] = 4;
    cent[(1 * 256 + 7) * 2] = 3.5f, cent[(1 * 256 + 7) * 2 + 1] = 4;
    cent[(3 * 256 + 255) * 2] = 7, cent[(3 * 256 + 255) * 2 + 1] = 8;
    ck_assert_int_eq(fanns_codec_set_pq_centroids(c, cent, &err), 0);
    ck_assert_int_eq(fanns_codec_encode(c, 1, x, code, &err), 0);
    ck_assert_uint_eq(code[0], 0);
    ck_assert_uint_eq(code[1], 9);
    ck_assert_uint_eq(code[2], 0);
    ck_assert_uint_eq(code[3], 255);
    ck_assert_int_eq(fanns_codec_decode(c, 1, code, y, &err), 0);
    ck_assert(y[2] == 3 && y[3] == 4 && y[6] == 7 && y[7] == 8 && y[0] == 100);
    /* The centroids were copied: changing the caller's array changes nothing. */
    cent[(1 * 256 + 9) * 2] = -50;
    ck_assert_int_eq(fanns_codec_decode(c, 1, code, y, &err), 0);
    ck_assert(y[2] == 3);
    x[4] = NAN;
    ck_assert_int_eq(fanns_codec_encode(c, 1, x, code, &err), FANNS_EINVAL);
    ck_assert_int_eq(fanns_codec_query_new(c, x, 0, &q, &err), FANNS_EINVAL);
    ck_assert_ptr_null(q);
    fanns_codec_free(c);
    free(cent);
}
END_TEST

START_TEST(test_pq_serialize) {
    uint32_t dim = 6, m = 3;
    size_t n = 40;
    float *x = random_vectors(n, dim, false), *cent = sample_centroids(x, n, dim, m);
    fanns_codec_t *c = make_pq(dim, m, FANNS_METRIC_DOT), *d = NULL;
    uint8_t *buf, *buf2;
    size_t len, len2;
    fanns_err_t err;
    /* Untrained: header and pq_m only; it loads untrained. */
    ck_assert_int_eq(fanns_codec_serialize(c, &buf, &len, NULL), 0);
    ck_assert_uint_eq(len, 40 + 4 + 8);
    ck_assert_int_eq(fanns_codec_deserialize(buf, len, &d, &err), 0);
    ck_assert(!fanns_codec_is_trained(d));
    ck_assert_uint_eq(fanns_codec_pq_m(d), m);
    ck_assert_uint_eq(fanns_codec_kind(d), FANNS_CODEC_PQ);
    fanns_codec_free(d);
    free(buf);
    ck_assert_int_eq(fanns_codec_set_pq_centroids(c, cent, &err), 0);
    ck_assert_int_eq(fanns_codec_serialize(c, &buf, &len, NULL), 0);
    ck_assert_uint_eq(len, 40 + 4 + 256 * dim * 4 + 8);
    ck_assert_uint_eq(buf[8], FANNS_CODEC_PQ);
    ck_assert_uint_eq(buf[40], m);
    ck_assert_int_eq(fanns_codec_deserialize(buf, len, &d, &err), 0);
    ck_assert_int_eq(fanns_codec_serialize(d, &buf2, &len2, NULL), 0);
    ck_assert(len == len2 && memcmp(buf, buf2, len) == 0);
    free(buf2);
    uint8_t *a = malloc(n * m), *b = malloc(n * m);
    ck_assert(a && b);
    ck_assert_int_eq(fanns_codec_encode(c, n, x, a, NULL), 0);
    ck_assert_int_eq(fanns_codec_encode(d, n, x, b, NULL), 0);
    ck_assert(memcmp(a, b, n * m) == 0);
    fanns_codec_query_t *qa, *qb;
    ck_assert_int_eq(fanns_codec_query_new(c, x + dim, 0, &qa, NULL), 0);
    ck_assert_int_eq(fanns_codec_query_new(d, x + dim, 0, &qb, NULL), 0);
    for (size_t i = 0; i < n; i++) ck_assert(fanns_codec_distance(qa, a + i * m) == fanns_codec_distance(qb, a + i * m));
    fanns_codec_query_free(qa);
    fanns_codec_query_free(qb);
    fanns_codec_free(d);
    free(a);
    free(b);
    /* Every truncation and every bit flip is rejected. */
    for (size_t l = 0; l < len; l++) ck_assert_int_eq(fanns_codec_deserialize(buf, l, &d, &err), FANNS_ECORRUPT);
    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit += 3) {
            buf[i] ^= (uint8_t)(1u << bit);
            ck_assert_int_eq(fanns_codec_deserialize(buf, len, &d, &err), FANNS_ECORRUPT);
            buf[i] ^= (uint8_t)(1u << bit);
        }
    }
    /* Field checks behind the hash: pq_m 0, not dividing dim, or above it; untrained with
     * centroids; a NaN centroid; a quantile on a PQ codec.  Another divisor of dim is a valid
     * codec (the centroid count depends on dim only), so pq_m = 2 loads. */
    uint8_t *t = malloc(len);
    ck_assert(t);
    struct {
        size_t off;
        uint32_t val;
        int rc;
    } edits[] = {{40, 0, FANNS_ECORRUPT}, {40, 4, FANNS_ECORRUPT}, {40, 7, FANNS_ECORRUPT},
                 {28, 0, FANNS_ECORRUPT}, {44, 0x7fc00000u, FANNS_ECORRUPT}, {24, 0x3f800000u, FANNS_ECORRUPT},
                 {40, 2, 0}};
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        memcpy(t, buf, len);
        for (int k = 0; k < 4; k++) t[edits[i].off + (size_t)k] = (uint8_t)(edits[i].val >> (8 * k));
        rehash(t, len);
        ck_assert_msg(fanns_codec_deserialize(t, len, &d, &err) == edits[i].rc, "edit %zu", i);
        if (edits[i].rc == 0) {
            ck_assert_uint_eq(fanns_codec_pq_m(d), 2);
            ck_assert_uint_eq(fanns_codec_code_size(d), 2);
            fanns_codec_free(d);
        }
    }
    free(t);
    free(buf);
    free(cent);
    free(x);
    fanns_codec_free(c);
}
END_TEST

/* A version 1 SQ8 blob written byte by byte as the format was before PQ existed still loads. */
START_TEST(test_v1_blob_loads) {
    uint8_t b[40 + 16 + 8] = {'F', 'N', 'C', 'Q', 1, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0};
    float quantile = 1.0f, vals[4] = {-1.0f, 0.5f, 2.0f / 255.0f, 0.0f}; /* lo[2], step[2] */
    memcpy(b + 24, &quantile, 4);
    b[28] = 1;     /* trained */
    b[32] = 16;    /* payload bytes */
    memcpy(b + 40, vals, 16);
    rehash(b, sizeof b);
    fanns_codec_t *c = NULL;
    fanns_err_t err;
    ck_assert_int_eq(fanns_codec_deserialize(b, sizeof b, &c, &err), 0);
    ck_assert_uint_eq(fanns_codec_kind(c), FANNS_CODEC_SQ8);
    ck_assert_uint_eq(fanns_codec_metric(c), FANNS_METRIC_DOT);
    uint8_t code[2] = {255, 7};
    float y[2];
    ck_assert_int_eq(fanns_codec_decode(c, 1, code, y, &err), 0);
    ck_assert(fabsf(y[0] - 1.0f) < 1e-6f && y[1] == 0.5f);
    uint8_t *out;
    size_t len;
    ck_assert_int_eq(fanns_codec_serialize(c, &out, &len, &err), 0);
    ck_assert(len == sizeof b && memcmp(out, b, len) == 0);
    free(out);
    fanns_codec_free(c);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("codec");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_f16_conversion);
    tcase_add_loop_test(tc, test_f16_kernels, 0, (int)(sizeof f16_variants / sizeof f16_variants[0]));
    tcase_add_loop_test(tc, test_u8_dot_kernels, 0, (int)(sizeof u8_variants / sizeof u8_variants[0]));
    tcase_add_test(tc, test_u8_l1_ref);
    tcase_add_loop_test(tc, test_u8i8_kernels, 0, (int)(sizeof i8_variants / sizeof i8_variants[0]));
    tcase_add_loop_test(tc, test_popcount_kernels, 0, (int)(sizeof pc_variants / sizeof pc_variants[0]));
    tcase_add_test(tc, test_f16_roundtrip);
    tcase_add_test(tc, test_sq8_roundtrip);
    tcase_add_test(tc, test_sq8_quantile_clamps);
    tcase_add_test(tc, test_bin_roundtrip);
    tcase_add_test(tc, test_bin_hamming_exact);
    tcase_add_test(tc, test_rescored_recall);
    tcase_add_test(tc, test_serialize);
    tcase_add_test(tc, test_deserialize_fields);
    tcase_add_test(tc, test_training_deterministic);
    tcase_add_test(tc, test_errors);
    tcase_add_loop_test(tc, test_pq_kernels, 0, (int)(sizeof pq_variants / sizeof pq_variants[0]));
    tcase_add_test(tc, test_pq_roundtrip);
    tcase_add_test(tc, test_pq_ties_and_errors);
    tcase_add_test(tc, test_pq_serialize);
    tcase_add_test(tc, test_v1_blob_loads);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    fprintf(stderr, "codec kernels: %s\n", fanns_codec_isa());
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
