/*
 * test_distance.c: tests index/distance.c: every SIMD variant against the scalar reference
 * on sizes that are and are not multiples of the vector width, dispatch, metrics, normalise.
 */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "distance.h"

typedef struct {
    const char *name;
    fanns_dist_fn ref, fn;
    bool (*available)(void);
} variant_t;

static bool always(void) { return true; }

static const variant_t variants[] = {
    {"dot_avx2", fanns_dist_dot_ref, fanns_dist_dot_avx2, fanns_dist_avx2_available},
    {"l2sq_avx2", fanns_dist_l2sq_ref, fanns_dist_l2sq_avx2, fanns_dist_avx2_available},
    {"l1_avx2", fanns_dist_l1_ref, fanns_dist_l1_avx2, fanns_dist_avx2_available},
    {"dot_avx512", fanns_dist_dot_ref, fanns_dist_dot_avx512, fanns_dist_avx512_available},
    {"l2sq_avx512", fanns_dist_l2sq_ref, fanns_dist_l2sq_avx512, fanns_dist_avx512_available},
    {"l1_avx512", fanns_dist_l1_ref, fanns_dist_l1_avx512, fanns_dist_avx512_available},
    {"dot_dispatch", fanns_dist_dot_ref, fanns_dist_dot, always},
    {"l2sq_dispatch", fanns_dist_l2sq_ref, fanns_dist_l2sq, always},
    {"l1_dispatch", fanns_dist_l1_ref, fanns_dist_l1, always},
};

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static float frand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

/* The reference in double precision with the sum of magnitudes, to bound float error. */
static void exact(const variant_t *v, const float *a, const float *b, size_t n, double *val, double *mag) {
    double s = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        double t;
        if (v->ref == fanns_dist_dot_ref) t = (double)a[i] * b[i];
        else if (v->ref == fanns_dist_l2sq_ref) t = ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        else t = fabs((double)a[i] - b[i]);
        s += t;
        m += fabs(t);
    }
    *val = s;
    *mag = m;
}

static void check_sizes(const variant_t *v) {
    static const size_t big[] = {384, 768, 1000, 4096};
    size_t sizes[134];
    size_t ns = 0;
    for (size_t n = 1; n <= 130; n++) sizes[ns++] = n;
    for (size_t i = 0; i < 4; i++) sizes[ns++] = big[i];
    /* Offset the start by one float so unaligned loads are exercised too. */
    float *a = malloc((4096 + 1) * sizeof(float)), *b = malloc((4096 + 1) * sizeof(float));
    ck_assert(a && b);
    for (size_t k = 0; k < ns; k++) {
        size_t n = sizes[k];
        for (int off = 0; off < 2; off++) {
            for (size_t i = 0; i < n + 1; i++) {
                a[i] = frand();
                b[i] = frand();
            }
            const float *pa = a + off, *pb = b + off;
            double want, mag;
            exact(v, pa, pb, n, &want, &mag);
            float got = v->fn(pa, pb, n), ref = v->ref(pa, pb, n);
            /* Both float results must be within n*eps of the magnitude of the exact sum. */
            double tol = (double)n * FLT_EPSILON * mag + 1e-6;
            ck_assert_msg(fabs(got - want) <= tol, "%s n=%zu off=%d: got %.9g want %.9g (tol %.3g)", v->name, n, off,
                          got, want, tol);
            ck_assert_msg(fabs(ref - want) <= tol, "ref for %s n=%zu", v->name, n);
            ck_assert_msg(fabs(got - ref) <= 1e-4 * fmax(1.0, fabs(ref)) + tol, "%s vs ref n=%zu", v->name, n);
        }
    }
    free(a);
    free(b);
}

START_TEST(test_variants_vs_ref) {
    const variant_t *v = &variants[_i];
    if (!v->available()) {
        fprintf(stderr, "skip %s: CPU lacks the instruction set\n", v->name);
        return;
    }
    fanns_dist_init();
    check_sizes(v);
    /* n = 0 is valid and sums to 0. */
    float z = 1.0f;
    ck_assert(v->fn(&z, &z, 0) == 0.0f);
}
END_TEST

/* Small exact cases: integers so every variant must agree exactly. */
START_TEST(test_exact_values) {
    float a[19], b[19];
    for (int i = 0; i < 19; i++) {
        a[i] = (float)(i + 1);
        b[i] = (float)(2 * i - 10);
    }
    double dot = 0, l2 = 0, l1 = 0;
    for (int i = 0; i < 19; i++) {
        dot += a[i] * b[i];
        l2 += (a[i] - b[i]) * (a[i] - b[i]);
        l1 += fabs(a[i] - b[i]);
    }
    fanns_dist_init();
    ck_assert_float_eq(fanns_dist_dot(a, b, 19), (float)dot);
    ck_assert_float_eq(fanns_dist_l2sq(a, b, 19), (float)l2);
    ck_assert_float_eq(fanns_dist_l1(a, b, 19), (float)l1);
    ck_assert_float_eq(fanns_dist_dot_ref(a, b, 19), (float)dot);
    if (fanns_dist_avx2_available()) {
        ck_assert_float_eq(fanns_dist_dot_avx2(a, b, 19), (float)dot);
        ck_assert_float_eq(fanns_dist_l2sq_avx2(a, b, 19), (float)l2);
        ck_assert_float_eq(fanns_dist_l1_avx2(a, b, 19), (float)l1);
    }
    if (fanns_dist_avx512_available()) {
        ck_assert_float_eq(fanns_dist_dot_avx512(a, b, 19), (float)dot);
        ck_assert_float_eq(fanns_dist_l2sq_avx512(a, b, 19), (float)l2);
        ck_assert_float_eq(fanns_dist_l1_avx512(a, b, 19), (float)l1);
    }
}
END_TEST

START_TEST(test_isa_selection) {
    fanns_dist_init();
    fanns_dist_init();  /* idempotent */
    const char *isa = fanns_dist_isa();
    const char *env = getenv("FANNS_ISA");
    if (fanns_dist_avx512_available() && !env) ck_assert_str_eq(isa, "avx512");
    else if (fanns_dist_avx2_available() && !fanns_dist_avx512_available() && !env) ck_assert_str_eq(isa, "avx2");
    else if (!fanns_dist_avx2_available()) ck_assert_str_eq(isa, "scalar");
    if (env && strcmp(env, "scalar") == 0) ck_assert_str_eq(isa, "scalar");
    if (env && strcmp(env, "avx2") == 0) ck_assert_str_ne(isa, "avx512");
}
END_TEST

START_TEST(test_metric_names) {
    ck_assert_int_eq(fanns_metric_parse("Cosine"), FANNS_METRIC_COSINE);
    ck_assert_int_eq(fanns_metric_parse("Euclid"), FANNS_METRIC_EUCLID);
    ck_assert_int_eq(fanns_metric_parse("Dot"), FANNS_METRIC_DOT);
    ck_assert_int_eq(fanns_metric_parse("Manhattan"), FANNS_METRIC_MANHATTAN);
    ck_assert_int_eq(fanns_metric_parse("cosine"), -1);
    ck_assert_int_eq(fanns_metric_parse("Euclidean"), -1);
    ck_assert_int_eq(fanns_metric_parse(""), -1);
    ck_assert_int_eq(fanns_metric_parse(NULL), -1);
    for (int m = 0; m < 4; m++) ck_assert_int_eq(fanns_metric_parse(fanns_metric_name((fanns_metric_t)m)), m);
    ck_assert(fanns_metric_higher_better(FANNS_METRIC_COSINE));
    ck_assert(fanns_metric_higher_better(FANNS_METRIC_DOT));
    ck_assert(!fanns_metric_higher_better(FANNS_METRIC_EUCLID));
    ck_assert(!fanns_metric_higher_better(FANNS_METRIC_MANHATTAN));
}
END_TEST

START_TEST(test_metric_score) {
    fanns_dist_init();
    float q[3] = {1, 2, 3}, v[3] = {4, 6, 3};
    ck_assert_float_eq_tol(fanns_metric_score(FANNS_METRIC_DOT, q, v, 3), 25.0f, 1e-5f);
    ck_assert_float_eq_tol(fanns_metric_score(FANNS_METRIC_EUCLID, q, v, 3), 5.0f, 1e-5f);   /* sqrt(9+16+0) */
    ck_assert_float_eq_tol(fanns_metric_score(FANNS_METRIC_MANHATTAN, q, v, 3), 7.0f, 1e-5f);
    fanns_vec_normalize(q, 3);
    fanns_vec_normalize(v, 3);
    double nq = sqrt(14.0), nv = sqrt(61.0);
    ck_assert_float_eq_tol(fanns_metric_score(FANNS_METRIC_COSINE, q, v, 3), (float)(25.0 / (nq * nv)), 1e-5f);
}
END_TEST

START_TEST(test_normalize) {
    float v[5] = {3, 0, 4, 0, 0};
    fanns_vec_normalize(v, 5);
    ck_assert_float_eq_tol(v[0], 0.6f, 1e-6f);
    ck_assert_float_eq_tol(v[2], 0.8f, 1e-6f);
    ck_assert_float_eq_tol(fanns_dist_dot_ref(v, v, 5), 1.0f, 1e-6f);
    float z[4] = {0, 0, 0, 0};
    fanns_vec_normalize(z, 4);
    for (int i = 0; i < 4; i++) ck_assert(z[i] == 0.0f);
    float big[768];
    for (int i = 0; i < 768; i++) big[i] = frand() * 100.0f;
    fanns_vec_normalize(big, 768);
    ck_assert_float_eq_tol(fanns_dist_dot_ref(big, big, 768), 1.0f, 1e-4f);
    /* An already unit vector is left bit-for-bit unchanged (Qdrant's rule). */
    float u[2] = {1.0f, 0.0f};
    fanns_vec_normalize(u, 2);
    ck_assert(u[0] == 1.0f && u[1] == 0.0f);
}
END_TEST

int main(void) {
    Suite *s = suite_create("distance");
    TCase *tc = tcase_create("core");
    tcase_add_loop_test(tc, test_variants_vs_ref, 0, (int)(sizeof(variants) / sizeof(variants[0])));
    tcase_add_test(tc, test_exact_values);
    tcase_add_test(tc, test_isa_selection);
    tcase_add_test(tc, test_metric_names);
    tcase_add_test(tc, test_metric_score);
    tcase_add_test(tc, test_normalize);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
