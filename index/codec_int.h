/*
 * codec_int.h: private to index/codec.c and index/codec_kernels.c: the dispatch table of the
 * codec kernels.  The pointers start at the scalar references and are set once by
 * fanns__codec_kernels_init() (pthread_once), which every entry point that computes a distance
 * calls first (fanns_codec_query_new).
 */
#ifndef FANNS_CODEC_INT_H
#define FANNS_CODEC_INT_H

#include <stddef.h>
#include <stdint.h>

typedef struct fanns__codec_kernels {
    float (*f16_dot)(const float *q, const uint8_t *h, size_t n);
    float (*f16_l2sq)(const float *q, const uint8_t *h, size_t n);
    float (*f16_l1)(const float *q, const uint8_t *h, size_t n);
    float (*u8_dot)(const float *w, const uint8_t *c, size_t n);
    int32_t (*u8i8_dot)(const uint8_t *c, const int8_t *q, size_t n);
    uint32_t (*hamming)(const uint64_t *a, const uint8_t *b, size_t words);
    uint32_t (*bitdot)(const uint64_t *planes, unsigned bits, const uint8_t *code, size_t words,
                       uint32_t *code_ones);
    float (*pq_sum)(const float *table, const uint8_t *code, size_t m);
    void (*pq_batch)(const float *table, size_t m, const uint8_t *codes, size_t n, float *out);
} fanns__codec_kernels_t;

extern fanns__codec_kernels_t fanns__codec_k;
void fanns__codec_kernels_init(void);

#endif
