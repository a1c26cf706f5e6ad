/*
 * test_faiss_codec.c: tests for index/faiss/faiss_codec.c (FAISS-backed vector codecs).
 *
 * Data: seeded clustered vectors (16 centres uniform in [-1,1]^32, Gaussian noise sd 0.05),
 * so a product quantizer with at least 16 centroids per sub-space reconstructs them to about
 * the noise level while the data variance is about 1/3 per component.  Sizes are small
 * because FAISS's k-means is slow on a busy two-core machine.
 */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "distance.h"
#include "err.h"
#include "faiss_codec.h"

#define DIM 32
#define NCENTRES 16
#define NTRAIN 3000
#define NTEST 500

static uint64_t rng_state;

static uint64_t rng_next(void) {
    /* xorshift64*: small, seeded, the same on every machine. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}

static float rng_uniform(void) { /* [0, 1) */
    return (float)(rng_next() >> 40) / (float)(1u << 24);
}

static float rng_gauss(void) {
    /* Box-Muller; 1 - u keeps the logarithm's argument away from zero. */
    float u = 1.0f - rng_uniform(), v = rng_uniform();
    return sqrtf(-2.0f * logf(u)) * cosf(6.2831853f * v);
}

/* Fills x with n clustered vectors; the same seed gives the same centres and points. */
static void make_data(float *x, size_t n, uint64_t seed) {
    static float centres[NCENTRES * DIM];
    size_t i, j;
    rng_state = 0x9E3779B97F4A7C15ULL;
    for (i = 0; i < NCENTRES * DIM; i++)
        centres[i] = 2.0f * rng_uniform() - 1.0f;
    rng_state = seed * 0x9E3779B97F4A7C15ULL + 1;
    for (i = 0; i < n; i++) {
        const float *c = centres + (rng_next() % NCENTRES) * DIM;
        for (j = 0; j < DIM; j++)
            x[i * DIM + j] = c[j] + 0.05f * rng_gauss();
    }
}

/* Mean squared error per component between a and b (n vectors). */
static double mse(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n * DIM; i++)
        s += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    return s / (double)(n * DIM);
}

/* Variance per component of x around its mean (n vectors). */
static double variance(const float *x, size_t n) {
    double s = 0;
    for (size_t j = 0; j < DIM; j++) {
        double m = 0;
        for (size_t i = 0; i < n; i++)
            m += x[i * DIM + j];
        m /= (double)n;
        for (size_t i = 0; i < n; i++)
            s += (x[i * DIM + j] - m) * (x[i * DIM + j] - m);
    }
    return s / (double)(n * DIM);
}

static float *train_x, *test_x;

static void setup(void) {
    train_x = malloc(sizeof(float) * NTRAIN * DIM);
    test_x = malloc(sizeof(float) * NTEST * DIM);
    ck_assert_ptr_nonnull(train_x);
    ck_assert_ptr_nonnull(test_x);
    make_data(train_x, NTRAIN, 1);
    make_data(test_x, NTEST, 2);
}

static void teardown(void) {
    free(train_x);
    free(test_x);
}

/* Creates and trains a codec, failing the test on any error. */
static fanns_faiss_codec_t *trained(const char *factory, int metric) {
    fanns_faiss_codec_t *c = NULL;
    fanns_err_t err = {0};
    int rc = fanns_faiss_codec_new(factory, DIM, metric, &c, &err);
    ck_assert_msg(rc == 0, "%s: new: %s", factory, err.msg);
    rc = fanns_faiss_codec_train(c, NTRAIN, train_x, &err);
    ck_assert_msg(rc == 0, "%s: train: %s", factory, err.msg);
    return c;
}

START_TEST(test_pq_encode_decode) {
    fanns_faiss_codec_t *c = NULL;
    fanns_err_t err = {0};
    uint8_t *codes = malloc(NTEST * 8);
    float *back = malloc(sizeof(float) * NTEST * DIM);
    double var, err_pq;

    ck_assert_int_eq(fanns_faiss_codec_new("PQ8x8", DIM, FANNS_METRIC_EUCLID, &c, &err), 0);
    ck_assert_uint_eq(fanns_faiss_codec_dim(c), DIM);
    /* Untrained: no code size, and encoding is refused rather than crashing in FAISS. */
    ck_assert(!fanns_faiss_codec_is_trained(c));
    ck_assert_uint_eq(fanns_faiss_codec_code_size(c), 0);
    ck_assert_int_eq(fanns_faiss_codec_encode(c, 1, test_x, codes, &err), FANNS_EINVAL);

    ck_assert_int_eq(fanns_faiss_codec_train(c, NTRAIN, train_x, &err), 0);
    ck_assert(fanns_faiss_codec_is_trained(c));
    /* 8 sub-quantizers of 8 bits: 8 bytes per vector. */
    ck_assert_uint_eq(fanns_faiss_codec_code_size(c), 8);

    ck_assert_int_eq(fanns_faiss_codec_encode(c, NTEST, test_x, codes, &err), 0);
    ck_assert_int_eq(fanns_faiss_codec_decode(c, NTEST, codes, back, &err), 0);
    var = variance(test_x, NTEST);
    err_pq = mse(test_x, back, NTEST);
    ck_assert_msg(var > 0.25 && var < 0.45, "data variance %g", var);
    ck_assert_msg(err_pq < 0.05 * var, "PQ reconstruction MSE %g vs variance %g", err_pq, var);
    /* Vectors from other clusters get other codes: the codec is not constant. */
    size_t differ = 0;
    for (size_t i = 1; i < NTEST; i++)
        differ += memcmp(codes, codes + i * 8, 8) != 0;
    ck_assert_uint_gt(differ, NTEST / 2);
    fanns_faiss_codec_free(c);
    free(codes);
    free(back);
}
END_TEST

START_TEST(test_code_sizes) {
    static const struct {
        const char *factory;
        size_t bytes;
    } cases[] = {
        {"PQ8x6", 6},            /* 8 * 6 bits */
        {"PQ8x4np", 4},          /* 8 * 4 bits, "np" given explicitly */
        {"SQ8", DIM},            /* one byte per component */
        {"Flat", 4 * DIM},       /* raw floats */
        {"RR64,Flat", 4 * 64},   /* a transform to 64 dimensions, then raw floats */
    };
    float back[DIM];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fanns_faiss_codec_t *c = trained(cases[i].factory, FANNS_METRIC_EUCLID);
        uint8_t codes[4 * 64];
        ck_assert_msg(fanns_faiss_codec_code_size(c) == cases[i].bytes, "%s: code size %zu != %zu",
                      cases[i].factory, fanns_faiss_codec_code_size(c), cases[i].bytes);
        ck_assert_int_eq(fanns_faiss_codec_encode(c, 1, test_x, codes, NULL), 0);
        ck_assert_int_eq(fanns_faiss_codec_decode(c, 1, codes, back, NULL), 0);
        if (strcmp(cases[i].factory, "Flat") == 0)
            ck_assert_int_eq(memcmp(back, test_x, sizeof(back)), 0);
        fanns_faiss_codec_free(c);
    }
}
END_TEST

START_TEST(test_flat_ready_untrained) {
    /* Factories without a training step have a code size at once. */
    fanns_faiss_codec_t *c = NULL;
    ck_assert_int_eq(fanns_faiss_codec_new("Flat", 10, FANNS_METRIC_DOT, &c, NULL), 0);
    ck_assert(fanns_faiss_codec_is_trained(c));
    ck_assert_uint_eq(fanns_faiss_codec_code_size(c), 40);
    fanns_faiss_codec_free(c);
}
END_TEST

START_TEST(test_serialize_roundtrip) {
    /* A PCA pre-transform exercises FAISS's IndexPreTransform in the file format (OPQ would
     * too, but trains 50 rounds of 256-centroid k-means: minutes under ASan). */
    fanns_faiss_codec_t *c = trained("PCA16,PQ4x4", FANNS_METRIC_COSINE), *d = NULL;
    fanns_err_t err = {0};
    uint8_t *buf = NULL, *buf2 = NULL;
    size_t len = 0, len2 = 0;
    uint8_t *codes = malloc(NTEST * 2), *codes2 = malloc(NTEST * 2);
    float *back = malloc(sizeof(float) * NTEST * DIM), *back2 = malloc(sizeof(float) * NTEST * DIM);

    ck_assert_int_eq(fanns_faiss_codec_serialize(c, &buf, &len, &err), 0);
    ck_assert_ptr_nonnull(buf);
    /* At least the PCA matrix (16 * 32 floats) and the centroids (4 * 16 * 4 floats). */
    ck_assert_uint_ge(len, (16 * DIM + 4 * 16 * 4) * sizeof(float));
    ck_assert_int_eq(fanns_faiss_codec_deserialize(buf, len, &d, &err), 0);
    ck_assert_uint_eq(fanns_faiss_codec_dim(d), DIM);
    ck_assert_uint_eq(fanns_faiss_codec_code_size(d), 2);

    ck_assert_int_eq(fanns_faiss_codec_encode(c, NTEST, test_x, codes, &err), 0);
    ck_assert_int_eq(fanns_faiss_codec_encode(d, NTEST, test_x, codes2, &err), 0);
    ck_assert_int_eq(memcmp(codes, codes2, NTEST * 2), 0);
    ck_assert_int_eq(fanns_faiss_codec_decode(c, NTEST, codes, back, &err), 0);
    ck_assert_int_eq(fanns_faiss_codec_decode(d, NTEST, codes, back2, &err), 0);
    ck_assert_int_eq(memcmp(back, back2, sizeof(float) * NTEST * DIM), 0);
    /* 2-byte codes still beat the data variance by far on 16 clusters. */
    ck_assert_msg(mse(test_x, back, NTEST) < 0.25 * variance(test_x, NTEST), "MSE %g var %g",
                  mse(test_x, back, NTEST), variance(test_x, NTEST));

    /* Serializing the copy gives the same bytes. */
    ck_assert_int_eq(fanns_faiss_codec_serialize(d, &buf2, &len2, &err), 0);
    ck_assert_uint_eq(len, len2);
    ck_assert_int_eq(memcmp(buf, buf2, len), 0);

    fanns_faiss_codec_free(c);
    fanns_faiss_codec_free(d);
    free(buf);
    free(buf2);
    free(codes);
    free(codes2);
    free(back);
    free(back2);
}
END_TEST

START_TEST(test_bad_arguments) {
    fanns_faiss_codec_t *c = (fanns_faiss_codec_t *)1;
    fanns_err_t err = {0};

    ck_assert_int_eq(fanns_faiss_codec_new("NotAFactory", DIM, FANNS_METRIC_EUCLID, &c, &err),
                     FANNS_EINVAL);
    ck_assert_ptr_null(c);
    ck_assert_int_eq(err.code, FANNS_EINVAL);
    ck_assert_msg(strstr(err.msg, "index_factory") != NULL, "message: %s", err.msg);

    /* 32 dimensions do not split into 7 sub-spaces: FAISS throws, we return an error. */
    fanns_err_clear(&err);
    ck_assert_int_eq(fanns_faiss_codec_new("PQ7x8", DIM, FANNS_METRIC_EUCLID, &c, &err),
                     FANNS_EINVAL);
    ck_assert_ptr_null(c);
    ck_assert(err.msg[0] != 0);

    ck_assert_int_eq(fanns_faiss_codec_new("PQ8", 0, FANNS_METRIC_EUCLID, &c, &err),
                     FANNS_EVALIDATE);
    ck_assert_int_eq(fanns_faiss_codec_new("PQ8", DIM, 99, &c, &err), FANNS_EVALIDATE);
    ck_assert_ptr_null(c);
}
END_TEST

START_TEST(test_too_few_training_vectors) {
    fanns_faiss_codec_t *c = NULL;
    fanns_err_t err = {0};
    uint8_t codes[8];

    ck_assert_int_eq(fanns_faiss_codec_new("PQ8x8", DIM, FANNS_METRIC_EUCLID, &c, &err), 0);
    /* 100 vectors cannot seed 256 centroids. */
    ck_assert_int_eq(fanns_faiss_codec_train(c, 100, train_x, &err), FANNS_EINVAL);
    ck_assert(err.msg[0] != 0);
    ck_assert(!fanns_faiss_codec_is_trained(c));
    ck_assert_int_eq(fanns_faiss_codec_encode(c, 1, test_x, codes, NULL), FANNS_EINVAL);
    ck_assert_int_eq(fanns_faiss_codec_train(c, 0, train_x, NULL), FANNS_EINVAL);
    fanns_faiss_codec_free(c);
}
END_TEST

/* FNV-1a-64, as the frame header documented in faiss_codec.h uses. */
static uint64_t fnv1a64(const uint8_t *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

START_TEST(test_deserialize_garbage) {
    static const char junk[] = "this is not a faiss index, just some bytes";
    uint8_t framed[FANNS_FAISS_FRAME_SIZE + sizeof(junk)];
    fanns_faiss_codec_t *c = (fanns_faiss_codec_t *)1;
    fanns_err_t err = {0};
    uint64_t v;

    ck_assert_int_eq(fanns_faiss_codec_deserialize((const uint8_t *)junk, sizeof(junk), &c, &err),
                     FANNS_ECORRUPT);
    ck_assert_ptr_null(c);
    ck_assert(err.msg[0] != 0);
    ck_assert_int_eq(fanns_faiss_codec_deserialize(NULL, 0, &c, &err), FANNS_ECORRUPT);

    /* A well-formed frame around bytes FAISS cannot read: FAISS's exception becomes
     * FANNS_ECORRUPT with FAISS's message. */
    memcpy(framed, "FNFC", 4);
    framed[4] = 1;
    framed[5] = framed[6] = framed[7] = 0;
    v = sizeof(junk);
    for (int i = 0; i < 8; i++)
        framed[8 + i] = (uint8_t)(v >> (8 * i));
    v = fnv1a64((const uint8_t *)junk, sizeof(junk));
    for (int i = 0; i < 8; i++)
        framed[16 + i] = (uint8_t)(v >> (8 * i));
    memcpy(framed + FANNS_FAISS_FRAME_SIZE, junk, sizeof(junk));
    fanns_err_clear(&err);
    ck_assert_int_eq(fanns_faiss_codec_deserialize(framed, sizeof(framed), &c, &err),
                     FANNS_ECORRUPT);
    ck_assert_ptr_null(c);
    ck_assert_msg(strstr(err.msg, "read_index") != NULL, "message: %s", err.msg);
}
END_TEST

START_TEST(test_deserialize_damaged) {
    fanns_faiss_codec_t *c = trained("PQ8x4", FANNS_METRIC_EUCLID), *d = (fanns_faiss_codec_t *)1;
    fanns_err_t err = {0};
    uint8_t *buf = NULL;
    size_t len = 0;

    ck_assert_int_eq(fanns_faiss_codec_serialize(c, &buf, &len, &err), 0);
    ck_assert_uint_gt(len, FANNS_FAISS_FRAME_SIZE);
    ck_assert_int_eq(memcmp(buf, "FNFC", 4), 0);
    /* Truncated. */
    ck_assert_int_eq(fanns_faiss_codec_deserialize(buf, len / 2, &d, &err), FANNS_ECORRUPT);
    ck_assert_ptr_null(d);
    /* One flipped bit in the payload. */
    buf[len - 5] ^= 0x10;
    ck_assert_int_eq(fanns_faiss_codec_deserialize(buf, len, &d, &err), FANNS_ECORRUPT);
    ck_assert_ptr_null(d);
    /* Restored, it reads again. */
    buf[len - 5] ^= 0x10;
    ck_assert_int_eq(fanns_faiss_codec_deserialize(buf, len, &d, &err), 0);
    ck_assert_uint_eq(fanns_faiss_codec_code_size(d), 4);
    fanns_faiss_codec_free(c);
    fanns_faiss_codec_free(d);
    free(buf);
}
END_TEST

static Suite *faiss_codec_suite(void) {
    Suite *s = suite_create("faiss_codec");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_pq_encode_decode);
    tcase_add_test(tc, test_code_sizes);
    tcase_add_test(tc, test_flat_ready_untrained);
    tcase_add_test(tc, test_serialize_roundtrip);
    tcase_add_test(tc, test_bad_arguments);
    tcase_add_test(tc, test_too_few_training_vectors);
    tcase_add_test(tc, test_deserialize_garbage);
    tcase_add_test(tc, test_deserialize_damaged);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(faiss_codec_suite());
    int failed;
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
