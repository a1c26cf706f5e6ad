/*
 * codec_kernels.c: the SIMD kernels behind index/codec.h's distance estimates, with their
 * scalar references and run-time dispatch.
 *
 * Kernels:
 *  - f16 dot / squared L2 / L1 of a float query against half codes: AVX2+FMA+F16C (vcvtph2ps on
 *    8 lanes) and AVX-512F (16 lanes, masked tail loads with AVX-512BW/VL);
 *  - u8 dot: float weights times unsigned byte codes (the asymmetric SQ8 kernel): AVX2 and
 *    AVX-512 (vpmovzxbd then FMA);
 *  - u8*i8 integer dot (the symmetric SQ8 kernel): AVX-512 VNNI vpdpbusd (four byte products
 *    per 32-bit lane, no saturation) and AVX2, which widens both sides to 16 bits and uses
 *    vpmaddwd, because vpmaddubsw saturates at 255*127*2 > 32767 and would disagree with the
 *    reference;
 *  - Hamming distance and bit-plane dot products over packed sign bits: a scalar loop built
 *    with the popcnt instruction, and AVX-512 VPOPCNTDQ (8 words per instruction, one masked
 *    load covers a 384-bit code);
 *  - PQ table sums (pq_m lookups in a [pq_m][256] float table): for one code, AVX2 and
 *    AVX-512 gathers of 8 or 16 subspaces; for a batch, gathers across 8 or 16 codes, where
 *    one 32-bit gather fetches four code bytes of every code and four table gathers follow, so
 *    every code is still summed in subspace order and the result equals the reference bit
 *    for bit.  Plain C variants with four independent chains per code compete with them and
 *    won on the machine measured (see the dispatch below).
 *
 * Invariants, as in index/distance.c: SIMD code is compiled with per-function target
 * attributes only, and runs only after CPUID checks (__builtin_cpu_supports); the dispatch
 * pointers start at the scalar references; any n (including 0 and sizes that are not a
 * multiple of the vector width) is valid; float kernels differ from the reference only by
 * summation order, integer and popcount kernels agree exactly.  Codes may sit at any address
 * (they come from LMDB pages and packed arrays), so they are read with unaligned loads or
 * memcpy, never through a cast pointer.
 */
#include "codec.h"
#include "codec_int.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define FANNS_X86 1
#include <immintrin.h>
#endif

/* ---- half precision (software, round to nearest even) ---- */

uint16_t fanns_codec_f32_to_f16(float ff) {
    /* Rebias the exponent and round the mantissa with integer adds; values below the smallest
     * normal half are rounded by adding a magic float whose ulp is the half subnormal step. */
    const uint32_t f32_inf = 255u << 23, f16_max = (127u + 16u) << 23;
    const uint32_t denorm_magic_bits = ((127u - 15u) + (23u - 10u) + 1u) << 23;
    uint32_t f;
    memcpy(&f, &ff, 4);
    uint32_t sign = f & 0x80000000u;
    f ^= sign;
    uint16_t o;
    if (f >= f16_max) {
        o = f > f32_inf ? 0x7e00 : 0x7c00; /* NaN stays NaN; overflow goes to infinity */
    } else if (f < (113u << 23)) {
        float t, magic;
        memcpy(&t, &f, 4);
        memcpy(&magic, &denorm_magic_bits, 4);
        t += magic;
        uint32_t tb;
        memcpy(&tb, &t, 4);
        o = (uint16_t)(tb - denorm_magic_bits);
    } else {
        uint32_t mant_odd = (f >> 13) & 1u;
        f += 0xc8000fffu; /* ((15 - 127) << 23) + 0xfff, modulo 2^32 */
        f += mant_odd;
        o = (uint16_t)(f >> 13);
    }
    return (uint16_t)(o | (sign >> 16));
}

float fanns_codec_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu, bits;
    if (e == 0) {
        float v = ldexpf((float)m, -24);
        memcpy(&bits, &v, 4);
        bits |= sign;
    } else if (e == 31) {
        bits = sign | 0x7f800000u | (m << 13);
    } else {
        bits = sign | ((e + 112u) << 23) | (m << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static inline float load_f16(const uint8_t *h, size_t i) {
    uint16_t v;
    memcpy(&v, h + 2 * i, 2);
    return fanns_codec_f16_to_f32(v);
}

static inline uint64_t load_u64(const uint8_t *p, size_t w) {
    uint64_t v;
    memcpy(&v, p + 8 * w, 8);
    return v;
}

/* ---- scalar references ---- */

float fanns_codec_f16_dot_ref(const float *q, const uint8_t *h, size_t n) {
    float s = 0.0f;
    for (size_t i = 0; i < n; i++) s += q[i] * load_f16(h, i);
    return s;
}

float fanns_codec_f16_l2sq_ref(const float *q, const uint8_t *h, size_t n) {
    float s = 0.0f;
    for (size_t i = 0; i < n; i++) {
        float d = q[i] - load_f16(h, i);
        s += d * d;
    }
    return s;
}

float fanns_codec_f16_l1_ref(const float *q, const uint8_t *h, size_t n) {
    float s = 0.0f;
    for (size_t i = 0; i < n; i++) s += fabsf(q[i] - load_f16(h, i));
    return s;
}

float fanns_codec_u8_dot_ref(const float *w, const uint8_t *c, size_t n) {
    float s = 0.0f;
    for (size_t i = 0; i < n; i++) s += w[i] * (float)c[i];
    return s;
}

float fanns_codec_u8_l1_ref(const float *r, const float *step, const uint8_t *c, size_t n) {
    float s = 0.0f;
    for (size_t i = 0; i < n; i++) s += fabsf(r[i] - step[i] * (float)c[i]);
    return s;
}

int32_t fanns_codec_u8i8_dot_ref(const uint8_t *c, const int8_t *q, size_t n) {
    int32_t s = 0;
    for (size_t i = 0; i < n; i++) s += (int32_t)c[i] * (int32_t)q[i];
    return s;
}

uint32_t fanns_codec_hamming_ref(const uint64_t *a, const uint8_t *b, size_t words) {
    uint32_t s = 0;
    for (size_t w = 0; w < words; w++) s += (uint32_t)__builtin_popcountll(a[w] ^ load_u64(b, w));
    return s;
}

uint32_t fanns_codec_bitdot_ref(const uint64_t *planes, unsigned bits, const uint8_t *code, size_t words,
                                uint32_t *code_ones) {
    uint32_t s = 0, ones = 0;
    for (size_t w = 0; w < words; w++) {
        uint64_t b = load_u64(code, w);
        ones += (uint32_t)__builtin_popcountll(b);
        for (unsigned j = 0; j < bits; j++) s += (uint32_t)__builtin_popcountll(planes[j * words + w] & b) << j;
    }
    *code_ones = ones;
    return s;
}

float fanns_codec_pq_sum_ref(const float *table, const uint8_t *code, size_t m) {
    float s = 0.0f;
    for (size_t j = 0; j < m; j++) s += table[256u * j + code[j]];
    return s;
}

void fanns_codec_pq_batch_ref(const float *table, size_t m, const uint8_t *codes, size_t n, float *out) {
    for (size_t i = 0; i < n; i++) out[i] = fanns_codec_pq_sum_ref(table, codes + i * m, m);
}

/* Four accumulators break the chain of dependent float adds (the loads are independent). */
float fanns_codec_pq_sum_unrolled(const float *table, const uint8_t *code, size_t m) {
    float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
    size_t j = 0;
    for (; j + 4 <= m; j += 4) {
        const float *t = table + 256u * j;
        s0 += t[code[j]];
        s1 += t[256u + code[j + 1]];
        s2 += t[512u + code[j + 2]];
        s3 += t[768u + code[j + 3]];
    }
    for (; j < m; j++) s0 += table[256u * j + code[j]];
    return (s0 + s1) + (s2 + s3);
}

/* Two codes at once (eight chains), each summed exactly as fanns_codec_pq_sum_unrolled sums
 * it, so a batch gives the same floats as single distances. */
void fanns_codec_pq_batch_unrolled(const float *table, size_t m, const uint8_t *codes, size_t n, float *out) {
    size_t i = 0;
    for (; i + 2 <= n; i += 2) {
        const uint8_t *c = codes + i * m, *d = c + m;
        float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f, b0 = 0.0f, b1 = 0.0f, b2 = 0.0f, b3 = 0.0f;
        size_t j = 0;
        for (; j + 4 <= m; j += 4) {
            const float *t = table + 256u * j;
            a0 += t[c[j]];
            a1 += t[256u + c[j + 1]];
            a2 += t[512u + c[j + 2]];
            a3 += t[768u + c[j + 3]];
            b0 += t[d[j]];
            b1 += t[256u + d[j + 1]];
            b2 += t[512u + d[j + 2]];
            b3 += t[768u + d[j + 3]];
        }
        for (; j < m; j++) {
            a0 += table[256u * j + c[j]];
            b0 += table[256u * j + d[j]];
        }
        out[i] = (a0 + a1) + (a2 + a3);
        out[i + 1] = (b0 + b1) + (b2 + b3);
    }
    if (i < n) out[i] = fanns_codec_pq_sum_unrolled(table, codes + i * m, m);
}

#ifdef FANNS_X86

/* ---- AVX2 + FMA + F16C ---- */

__attribute__((target("avx2,fma"))) static inline float hsum256(__m256 v) {
    __m128 lo = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    __m128 sh = _mm_movehdup_ps(lo);
    lo = _mm_add_ps(lo, sh);
    sh = _mm_movehl_ps(sh, lo);
    return _mm_cvtss_f32(_mm_add_ss(lo, sh));
}

__attribute__((target("avx2,fma,f16c"))) static inline __m256 ld8h(const uint8_t *h, size_t i) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(h + 2 * i)));
}

__attribute__((target("avx2,fma,f16c"))) float fanns_codec_f16_dot_avx2(const float *q, const uint8_t *h,
                                                                        size_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), ld8h(h, i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 8), ld8h(h, i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 16), ld8h(h, i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 24), ld8h(h, i + 24), s3);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), ld8h(h, i), s0);
    float s = hsum256(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < n; i++) s += q[i] * load_f16(h, i);
    return s;
}

__attribute__((target("avx2,fma,f16c"))) float fanns_codec_f16_l2sq_avx2(const float *q, const uint8_t *h,
                                                                         size_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(q + i), ld8h(h, i));
        __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(q + i + 8), ld8h(h, i + 8));
        __m256 d2 = _mm256_sub_ps(_mm256_loadu_ps(q + i + 16), ld8h(h, i + 16));
        __m256 d3 = _mm256_sub_ps(_mm256_loadu_ps(q + i + 24), ld8h(h, i + 24));
        s0 = _mm256_fmadd_ps(d0, d0, s0);
        s1 = _mm256_fmadd_ps(d1, d1, s1);
        s2 = _mm256_fmadd_ps(d2, d2, s2);
        s3 = _mm256_fmadd_ps(d3, d3, s3);
    }
    for (; i + 8 <= n; i += 8) {
        __m256 d = _mm256_sub_ps(_mm256_loadu_ps(q + i), ld8h(h, i));
        s0 = _mm256_fmadd_ps(d, d, s0);
    }
    float s = hsum256(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < n; i++) {
        float d = q[i] - load_f16(h, i);
        s += d * d;
    }
    return s;
}

__attribute__((target("avx2,fma,f16c"))) float fanns_codec_f16_l1_avx2(const float *q, const uint8_t *h,
                                                                       size_t n) {
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_add_ps(s0, _mm256_and_ps(_mm256_sub_ps(_mm256_loadu_ps(q + i), ld8h(h, i)), absmask));
        s1 = _mm256_add_ps(s1, _mm256_and_ps(_mm256_sub_ps(_mm256_loadu_ps(q + i + 8), ld8h(h, i + 8)), absmask));
    }
    for (; i + 8 <= n; i += 8)
        s0 = _mm256_add_ps(s0, _mm256_and_ps(_mm256_sub_ps(_mm256_loadu_ps(q + i), ld8h(h, i)), absmask));
    float s = hsum256(_mm256_add_ps(s0, s1));
    for (; i < n; i++) s += fabsf(q[i] - load_f16(h, i));
    return s;
}

__attribute__((target("avx2,fma"))) static inline __m256 ld8u(const uint8_t *c, size_t i) {
    return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)(c + i))));
}

__attribute__((target("avx2,fma"))) float fanns_codec_u8_dot_avx2(const float *w, const uint8_t *c, size_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), ld8u(c, i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 8), ld8u(c, i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 16), ld8u(c, i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 24), ld8u(c, i + 24), s3);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), ld8u(c, i), s0);
    float s = hsum256(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < n; i++) s += w[i] * (float)c[i];
    return s;
}

__attribute__((target("avx2"))) static inline int32_t hsum256i(__m256i v) {
    __m128i x = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    x = _mm_add_epi32(x, _mm_shuffle_epi32(x, 0x4e));
    x = _mm_add_epi32(x, _mm_shuffle_epi32(x, 0xb1));
    return _mm_cvtsi128_si32(x);
}

__attribute__((target("avx2"))) int32_t fanns_codec_u8i8_dot_avx2(const uint8_t *c, const int8_t *q, size_t n) {
    __m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m128i c0 = _mm_loadu_si128((const __m128i *)(const void *)(c + i));
        __m128i c1 = _mm_loadu_si128((const __m128i *)(const void *)(c + i + 16));
        __m128i q0 = _mm_loadu_si128((const __m128i *)(const void *)(q + i));
        __m128i q1 = _mm_loadu_si128((const __m128i *)(const void *)(q + i + 16));
        s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(_mm256_cvtepu8_epi16(c0), _mm256_cvtepi8_epi16(q0)));
        s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(_mm256_cvtepu8_epi16(c1), _mm256_cvtepi8_epi16(q1)));
    }
    for (; i + 16 <= n; i += 16) {
        __m128i c0 = _mm_loadu_si128((const __m128i *)(const void *)(c + i));
        __m128i q0 = _mm_loadu_si128((const __m128i *)(const void *)(q + i));
        s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(_mm256_cvtepu8_epi16(c0), _mm256_cvtepi8_epi16(q0)));
    }
    int32_t s = hsum256i(_mm256_add_epi32(s0, s1));
    for (; i < n; i++) s += (int32_t)c[i] * (int32_t)q[i];
    return s;
}

__attribute__((target("popcnt"))) uint32_t fanns_codec_hamming_popcnt(const uint64_t *a, const uint8_t *b,
                                                                      size_t words) {
    uint32_t s = 0;
    for (size_t w = 0; w < words; w++) s += (uint32_t)__builtin_popcountll(a[w] ^ load_u64(b, w));
    return s;
}

__attribute__((target("popcnt"))) uint32_t fanns_codec_bitdot_popcnt(const uint64_t *planes, unsigned bits,
                                                                     const uint8_t *code, size_t words,
                                                                     uint32_t *code_ones) {
    uint32_t s = 0, ones = 0;
    for (size_t w = 0; w < words; w++) {
        uint64_t b = load_u64(code, w);
        ones += (uint32_t)__builtin_popcountll(b);
        for (unsigned j = 0; j < bits; j++) s += (uint32_t)__builtin_popcountll(planes[j * words + w] & b) << j;
    }
    *code_ones = ones;
    return s;
}

/* ---- PQ with AVX2 gathers ---- */

__attribute__((target("avx2"))) float fanns_codec_pq_sum_avx2(const float *table, const uint8_t *code, size_t m) {
    const __m256i lane = _mm256_setr_epi32(0, 256, 512, 768, 1024, 1280, 1536, 1792);
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    size_t j = 0;
    for (; j + 16 <= m; j += 16) {
        __m256i i0 = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)(code + j)));
        __m256i i1 = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)(code + j + 8)));
        i0 = _mm256_add_epi32(i0, _mm256_add_epi32(lane, _mm256_set1_epi32((int)(256u * j))));
        i1 = _mm256_add_epi32(i1, _mm256_add_epi32(lane, _mm256_set1_epi32((int)(256u * (j + 8)))));
        a0 = _mm256_add_ps(a0, _mm256_i32gather_ps(table, i0, 4));
        a1 = _mm256_add_ps(a1, _mm256_i32gather_ps(table, i1, 4));
    }
    for (; j + 8 <= m; j += 8) {
        __m256i i0 = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)(code + j)));
        i0 = _mm256_add_epi32(i0, _mm256_add_epi32(lane, _mm256_set1_epi32((int)(256u * j))));
        a0 = _mm256_add_ps(a0, _mm256_i32gather_ps(table, i0, 4));
    }
    __m128 lo = _mm_add_ps(_mm256_castps256_ps128(a0), _mm256_extractf128_ps(a0, 1));
    __m128 hi = _mm_add_ps(_mm256_castps256_ps128(a1), _mm256_extractf128_ps(a1, 1));
    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    float s = _mm_cvtss_f32(_mm_add_ss(lo, _mm_movehdup_ps(lo)));
    for (; j < m; j++) s += table[256u * j + code[j]];
    return s;
}

/* Adds table[256 (j + k) + byte k of w] for each of the 8 codes' words w (k = 0..3). */
#define PQ_STEP4_AVX2(acc, w, table, j)                                                                       \
    do {                                                                                                      \
        const __m256i ff_ = _mm256_set1_epi32(0xff);                                                          \
        for (int k_ = 0; k_ < 4; k_++) {                                                                      \
            __m256i ix_ = _mm256_and_si256(_mm256_srl_epi32((w), _mm_cvtsi32_si128(8 * k_)), ff_);            \
            ix_ = _mm256_add_epi32(ix_, _mm256_set1_epi32((int)(256u * ((j) + (size_t)k_))));                 \
            (acc) = _mm256_add_ps((acc), _mm256_i32gather_ps((table), ix_, 4));                               \
        }                                                                                                     \
    } while (0)

__attribute__((target("avx2"))) void fanns_codec_pq_batch_avx2(const float *table, size_t m, const uint8_t *codes,
                                                               size_t n, float *out) {
    if (m < 4) {
        fanns_codec_pq_batch_unrolled(table, m, codes, n, out);
        return;
    }
    /* One 32-bit gather reads bytes j..j+3 of 8 codes (never past a code: j + 4 <= m; the last
     * 1..3 subspaces are read as the code's final 4 bytes, with the already summed ones
     * skipped). */
    const __m256i offs = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32((int)m));
    const __m256i ff = _mm256_set1_epi32(0xff);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const uint8_t *base = codes + i * m;
        __m256 acc = _mm256_setzero_ps();
        size_t j = 0;
        for (; j + 4 <= m; j += 4) {
            __m256i w = _mm256_i32gather_epi32((const int *)(const void *)(base + j), offs, 1);
            PQ_STEP4_AVX2(acc, w, table, j);
        }
        if (j < m) {
            __m256i w = _mm256_i32gather_epi32((const int *)(const void *)(base + m - 4), offs, 1);
            for (size_t jj = j; jj < m; jj++) {
                int sh = 8 * (int)(jj - (m - 4));
                __m256i ix = _mm256_and_si256(_mm256_srl_epi32(w, _mm_cvtsi32_si128(sh)), ff);
                ix = _mm256_add_epi32(ix, _mm256_set1_epi32((int)(256u * jj)));
                acc = _mm256_add_ps(acc, _mm256_i32gather_ps(table, ix, 4));
            }
        }
        _mm256_storeu_ps(out + i, acc);
    }
    for (; i < n; i++) out[i] = fanns_codec_pq_sum_ref(table, codes + i * m, m);
}

/* ---- AVX-512 ---- */

#define AVX512 "avx512f,avx512bw,avx512vl,fma,f16c"

static inline __mmask16 tail16(size_t r) { return (__mmask16)((1u << r) - 1u); }

__attribute__((target(AVX512))) static inline __m512 ld16h(const uint8_t *h, size_t i) {
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(h + 2 * i)));
}

__attribute__((target(AVX512))) static inline __m512 ld16h_tail(const uint8_t *h, size_t i, __mmask16 m) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, h + 2 * i));
}

__attribute__((target(AVX512))) float fanns_codec_f16_dot_avx512(const float *q, const uint8_t *h, size_t n) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps(), s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), ld16h(h, i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(q + i + 16), ld16h(h, i + 16), s1);
        s2 = _mm512_fmadd_ps(_mm512_loadu_ps(q + i + 32), ld16h(h, i + 32), s2);
        s3 = _mm512_fmadd_ps(_mm512_loadu_ps(q + i + 48), ld16h(h, i + 48), s3);
    }
    for (; i + 16 <= n; i += 16) s0 = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), ld16h(h, i), s0);
    if (i < n) {
        __mmask16 m = tail16(n - i);
        s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + i), ld16h_tail(h, i, m), s1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

__attribute__((target(AVX512))) float fanns_codec_f16_l2sq_avx512(const float *q, const uint8_t *h, size_t n) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps(), s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(q + i), ld16h(h, i));
        __m512 d1 = _mm512_sub_ps(_mm512_loadu_ps(q + i + 16), ld16h(h, i + 16));
        __m512 d2 = _mm512_sub_ps(_mm512_loadu_ps(q + i + 32), ld16h(h, i + 32));
        __m512 d3 = _mm512_sub_ps(_mm512_loadu_ps(q + i + 48), ld16h(h, i + 48));
        s0 = _mm512_fmadd_ps(d0, d0, s0);
        s1 = _mm512_fmadd_ps(d1, d1, s1);
        s2 = _mm512_fmadd_ps(d2, d2, s2);
        s3 = _mm512_fmadd_ps(d3, d3, s3);
    }
    for (; i + 16 <= n; i += 16) {
        __m512 d = _mm512_sub_ps(_mm512_loadu_ps(q + i), ld16h(h, i));
        s0 = _mm512_fmadd_ps(d, d, s0);
    }
    if (i < n) {
        __mmask16 m = tail16(n - i);
        __m512 d = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, q + i), ld16h_tail(h, i, m));
        s1 = _mm512_fmadd_ps(d, d, s1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

__attribute__((target(AVX512))) float fanns_codec_f16_l1_avx512(const float *q, const uint8_t *h, size_t n) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm512_add_ps(s0, _mm512_abs_ps(_mm512_sub_ps(_mm512_loadu_ps(q + i), ld16h(h, i))));
        s1 = _mm512_add_ps(s1, _mm512_abs_ps(_mm512_sub_ps(_mm512_loadu_ps(q + i + 16), ld16h(h, i + 16))));
    }
    for (; i + 16 <= n; i += 16)
        s0 = _mm512_add_ps(s0, _mm512_abs_ps(_mm512_sub_ps(_mm512_loadu_ps(q + i), ld16h(h, i))));
    if (i < n) {
        __mmask16 m = tail16(n - i);
        s1 = _mm512_add_ps(s1, _mm512_abs_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, q + i), ld16h_tail(h, i, m))));
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

__attribute__((target(AVX512))) static inline __m512 ld16u(const uint8_t *c, size_t i) {
    return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(c + i))));
}

__attribute__((target(AVX512))) float fanns_codec_u8_dot_avx512(const float *w, const uint8_t *c, size_t n) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps(), s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i), ld16u(c, i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i + 16), ld16u(c, i + 16), s1);
        s2 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i + 32), ld16u(c, i + 32), s2);
        s3 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i + 48), ld16u(c, i + 48), s3);
    }
    for (; i + 16 <= n; i += 16) s0 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i), ld16u(c, i), s0);
    if (i < n) {
        __mmask16 m = tail16(n - i);
        __m512 cv = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, c + i)));
        s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, w + i), cv, s1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

__attribute__((target(AVX512 ",avx512vnni"))) int32_t fanns_codec_u8i8_dot_vnni(const uint8_t *c, const int8_t *q,
                                                                               size_t n) {
    __m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();
    size_t i = 0;
    for (; i + 128 <= n; i += 128) {
        s0 = _mm512_dpbusd_epi32(s0, _mm512_loadu_si512(c + i), _mm512_loadu_si512(q + i));
        s1 = _mm512_dpbusd_epi32(s1, _mm512_loadu_si512(c + i + 64), _mm512_loadu_si512(q + i + 64));
    }
    for (; i + 64 <= n; i += 64) s0 = _mm512_dpbusd_epi32(s0, _mm512_loadu_si512(c + i), _mm512_loadu_si512(q + i));
    if (i < n) {
        __mmask64 m = (__mmask64)((1ull << (n - i)) - 1ull);
        s1 = _mm512_dpbusd_epi32(s1, _mm512_maskz_loadu_epi8(m, c + i), _mm512_maskz_loadu_epi8(m, q + i));
    }
    return _mm512_reduce_add_epi32(_mm512_add_epi32(s0, s1));
}

__attribute__((target("avx512f,avx512vpopcntdq"))) uint32_t fanns_codec_hamming_avx512(const uint64_t *a,
                                                                                       const uint8_t *b,
                                                                                       size_t words) {
    __m512i s = _mm512_setzero_si512();
    size_t w = 0;
    for (; w + 8 <= words; w += 8)
        s = _mm512_add_epi64(s, _mm512_popcnt_epi64(_mm512_xor_si512(_mm512_loadu_si512(a + w),
                                                                     _mm512_loadu_si512(b + 8 * w))));
    if (w < words) {
        __mmask8 m = (__mmask8)((1u << (words - w)) - 1u);
        s = _mm512_add_epi64(s, _mm512_popcnt_epi64(_mm512_xor_si512(_mm512_maskz_loadu_epi64(m, a + w),
                                                                     _mm512_maskz_loadu_epi64(m, b + 8 * w))));
    }
    return (uint32_t)_mm512_reduce_add_epi64(s);
}

__attribute__((target("avx512f,avx512vpopcntdq"))) uint32_t fanns_codec_bitdot_avx512(const uint64_t *planes,
                                                                                      unsigned bits,
                                                                                      const uint8_t *code,
                                                                                      size_t words,
                                                                                      uint32_t *code_ones) {
    /* Per plane j the popcounts are summed with weight 2^j by shifting the 64-bit lane counts;
     * one accumulator suffices because lane sums stay far below 2^63. */
    __m512i acc = _mm512_setzero_si512(), ones = _mm512_setzero_si512();
    for (size_t w = 0; w < words; w += 8) {
        __mmask8 m = words - w >= 8 ? (__mmask8)0xff : (__mmask8)((1u << (words - w)) - 1u);
        __m512i b = _mm512_maskz_loadu_epi64(m, code + 8 * w);
        ones = _mm512_add_epi64(ones, _mm512_popcnt_epi64(b));
        for (unsigned j = 0; j < bits; j++) {
            __m512i p = _mm512_maskz_loadu_epi64(m, planes + j * words + w);
            acc = _mm512_add_epi64(acc, _mm512_slli_epi64(_mm512_popcnt_epi64(_mm512_and_si512(p, b)), j));
        }
    }
    *code_ones = (uint32_t)_mm512_reduce_add_epi64(ones);
    return (uint32_t)_mm512_reduce_add_epi64(acc);
}

__attribute__((target(AVX512))) float fanns_codec_pq_sum_avx512(const float *table, const uint8_t *code,
                                                                size_t m) {
    const __m512i lane = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), _mm512_set1_epi32(256));
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    size_t j = 0;
    for (; j + 32 <= m; j += 32) {
        __m512i i0 = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(code + j)));
        __m512i i1 = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(code + j + 16)));
        i0 = _mm512_add_epi32(i0, _mm512_add_epi32(lane, _mm512_set1_epi32((int)(256u * j))));
        i1 = _mm512_add_epi32(i1, _mm512_add_epi32(lane, _mm512_set1_epi32((int)(256u * (j + 16)))));
        a0 = _mm512_add_ps(a0, _mm512_i32gather_ps(i0, table, 4));
        a1 = _mm512_add_ps(a1, _mm512_i32gather_ps(i1, table, 4));
    }
    for (; j < m; j += 16) {
        __mmask16 k = m - j >= 16 ? (__mmask16)0xffff : tail16(m - j);
        __m512i i0 = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(k, code + j));
        i0 = _mm512_add_epi32(i0, _mm512_add_epi32(lane, _mm512_set1_epi32((int)(256u * j))));
        a0 = _mm512_add_ps(a0, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), k, i0, table, 4));
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

__attribute__((target(AVX512))) void fanns_codec_pq_batch_avx512(const float *table, size_t m,
                                                                 const uint8_t *codes, size_t n, float *out) {
    if (m < 4) {
        fanns_codec_pq_batch_unrolled(table, m, codes, n, out);
        return;
    }
    /* As the AVX2 batch, with 16 codes per gather. */
    const __m512i offs = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), _mm512_set1_epi32((int)m));
    const __m512i ff = _mm512_set1_epi32(0xff);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const uint8_t *base = codes + i * m;
        __m512 acc = _mm512_setzero_ps();
        size_t j = 0;
        for (; j + 4 <= m; j += 4) {
            __m512i w = _mm512_i32gather_epi32(offs, (const void *)(base + j), 1);
            __m512i b = _mm512_set1_epi32((int)(256u * j));
            acc = _mm512_add_ps(acc, _mm512_i32gather_ps(_mm512_add_epi32(_mm512_and_si512(w, ff), b), table, 4));
            b = _mm512_add_epi32(b, _mm512_set1_epi32(256));
            acc = _mm512_add_ps(acc, _mm512_i32gather_ps(
                                         _mm512_add_epi32(_mm512_and_si512(_mm512_srli_epi32(w, 8), ff), b), table, 4));
            b = _mm512_add_epi32(b, _mm512_set1_epi32(256));
            acc = _mm512_add_ps(acc, _mm512_i32gather_ps(
                                         _mm512_add_epi32(_mm512_and_si512(_mm512_srli_epi32(w, 16), ff), b), table, 4));
            b = _mm512_add_epi32(b, _mm512_set1_epi32(256));
            acc = _mm512_add_ps(acc, _mm512_i32gather_ps(_mm512_add_epi32(_mm512_srli_epi32(w, 24), b), table, 4));
        }
        if (j < m) {
            __m512i w = _mm512_i32gather_epi32(offs, (const void *)(base + m - 4), 1);
            for (size_t jj = j; jj < m; jj++) {
                unsigned sh = 8u * (unsigned)(jj - (m - 4));
                __m512i ix = _mm512_and_si512(_mm512_srlv_epi32(w, _mm512_set1_epi32((int)sh)), ff);
                ix = _mm512_add_epi32(ix, _mm512_set1_epi32((int)(256u * jj)));
                acc = _mm512_add_ps(acc, _mm512_i32gather_ps(ix, table, 4));
            }
        }
        _mm512_storeu_ps(out + i, acc);
    }
    for (; i < n; i++) out[i] = fanns_codec_pq_sum_ref(table, codes + i * m, m);
}

bool fanns_codec_avx2_available(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2");
}

bool fanns_codec_f16_avx2_available(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
}

bool fanns_codec_avx512_available(void) {
    __builtin_cpu_init();
    return fanns_codec_f16_avx2_available() && __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
}

bool fanns_codec_vnni_available(void) {
    return fanns_codec_avx512_available() && __builtin_cpu_supports("avx512vnni");
}

bool fanns_codec_popcnt_available(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("popcnt");
}

bool fanns_codec_vpopcnt_available(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vpopcntdq");
}

#else /* not x86: the explicit variants are the references, and are never dispatched */

bool fanns_codec_f16_avx2_available(void) { return false; }
bool fanns_codec_avx512_available(void) { return false; }
bool fanns_codec_vnni_available(void) { return false; }
bool fanns_codec_popcnt_available(void) { return false; }
bool fanns_codec_vpopcnt_available(void) { return false; }
float fanns_codec_f16_dot_avx2(const float *q, const uint8_t *h, size_t n) { return fanns_codec_f16_dot_ref(q, h, n); }
float fanns_codec_f16_l2sq_avx2(const float *q, const uint8_t *h, size_t n) { return fanns_codec_f16_l2sq_ref(q, h, n); }
float fanns_codec_f16_l1_avx2(const float *q, const uint8_t *h, size_t n) { return fanns_codec_f16_l1_ref(q, h, n); }
float fanns_codec_f16_dot_avx512(const float *q, const uint8_t *h, size_t n) { return fanns_codec_f16_dot_ref(q, h, n); }
float fanns_codec_f16_l2sq_avx512(const float *q, const uint8_t *h, size_t n) {
    return fanns_codec_f16_l2sq_ref(q, h, n);
}
float fanns_codec_f16_l1_avx512(const float *q, const uint8_t *h, size_t n) { return fanns_codec_f16_l1_ref(q, h, n); }
float fanns_codec_u8_dot_avx2(const float *w, const uint8_t *c, size_t n) { return fanns_codec_u8_dot_ref(w, c, n); }
float fanns_codec_u8_dot_avx512(const float *w, const uint8_t *c, size_t n) { return fanns_codec_u8_dot_ref(w, c, n); }
int32_t fanns_codec_u8i8_dot_avx2(const uint8_t *c, const int8_t *q, size_t n) {
    return fanns_codec_u8i8_dot_ref(c, q, n);
}
int32_t fanns_codec_u8i8_dot_vnni(const uint8_t *c, const int8_t *q, size_t n) {
    return fanns_codec_u8i8_dot_ref(c, q, n);
}
uint32_t fanns_codec_hamming_popcnt(const uint64_t *a, const uint8_t *b, size_t words) {
    return fanns_codec_hamming_ref(a, b, words);
}
uint32_t fanns_codec_hamming_avx512(const uint64_t *a, const uint8_t *b, size_t words) {
    return fanns_codec_hamming_ref(a, b, words);
}
uint32_t fanns_codec_bitdot_popcnt(const uint64_t *planes, unsigned bits, const uint8_t *code, size_t words,
                                   uint32_t *code_ones) {
    return fanns_codec_bitdot_ref(planes, bits, code, words, code_ones);
}
uint32_t fanns_codec_bitdot_avx512(const uint64_t *planes, unsigned bits, const uint8_t *code, size_t words,
                                   uint32_t *code_ones) {
    return fanns_codec_bitdot_ref(planes, bits, code, words, code_ones);
}
bool fanns_codec_avx2_available(void) { return false; }
float fanns_codec_pq_sum_avx2(const float *table, const uint8_t *code, size_t m) {
    return fanns_codec_pq_sum_ref(table, code, m);
}
float fanns_codec_pq_sum_avx512(const float *table, const uint8_t *code, size_t m) {
    return fanns_codec_pq_sum_ref(table, code, m);
}
void fanns_codec_pq_batch_avx2(const float *table, size_t m, const uint8_t *codes, size_t n, float *out) {
    fanns_codec_pq_batch_ref(table, m, codes, n, out);
}
void fanns_codec_pq_batch_avx512(const float *table, size_t m, const uint8_t *codes, size_t n, float *out) {
    fanns_codec_pq_batch_ref(table, m, codes, n, out);
}

#endif

/* ---- dispatch ---- */

fanns__codec_kernels_t fanns__codec_k = {
    .f16_dot = fanns_codec_f16_dot_ref,
    .f16_l2sq = fanns_codec_f16_l2sq_ref,
    .f16_l1 = fanns_codec_f16_l1_ref,
    .u8_dot = fanns_codec_u8_dot_ref,
    .u8i8_dot = fanns_codec_u8i8_dot_ref,
    .hamming = fanns_codec_hamming_ref,
    .bitdot = fanns_codec_bitdot_ref,
    .pq_sum = fanns_codec_pq_sum_ref,
    .pq_batch = fanns_codec_pq_batch_ref,
};

static pthread_once_t kernels_once = PTHREAD_ONCE_INIT;
static char isa_desc[112] = "f16=scalar u8=scalar int8=scalar popcnt=scalar pq=ref";

static void kernels_init_once(void) {
    /* The same cap as index/distance.c: 0 scalar, 1 avx2, 2 avx512. */
    int cap = 2;
    const char *env = getenv("FANNS_ISA");
    if (env) {
        if (strcmp(env, "scalar") == 0) cap = 0;
        else if (strcmp(env, "avx2") == 0) cap = 1;
        else if (strcmp(env, "avx512") == 0) cap = 2;
    }
    const char *f16 = "scalar", *u8 = "scalar", *i8 = "scalar", *pc = "scalar";
    fanns__codec_kernels_t *k = &fanns__codec_k;
    if (cap >= 2 && fanns_codec_avx512_available()) {
        k->f16_dot = fanns_codec_f16_dot_avx512;
        k->f16_l2sq = fanns_codec_f16_l2sq_avx512;
        k->f16_l1 = fanns_codec_f16_l1_avx512;
        k->u8_dot = fanns_codec_u8_dot_avx512;
        f16 = u8 = "avx512";
    } else if (cap >= 1 && fanns_codec_f16_avx2_available()) {
        k->f16_dot = fanns_codec_f16_dot_avx2;
        k->f16_l2sq = fanns_codec_f16_l2sq_avx2;
        k->f16_l1 = fanns_codec_f16_l1_avx2;
        k->u8_dot = fanns_codec_u8_dot_avx2;
        f16 = u8 = "avx2";
    }
    if (cap >= 2 && fanns_codec_vnni_available()) {
        k->u8i8_dot = fanns_codec_u8i8_dot_vnni;
        i8 = "vnni";
    } else if (cap >= 1 && fanns_codec_f16_avx2_available()) {
        k->u8i8_dot = fanns_codec_u8i8_dot_avx2;
        i8 = "avx2";
    }
    if (cap >= 2 && fanns_codec_vpopcnt_available()) {
        k->hamming = fanns_codec_hamming_avx512;
        k->bitdot = fanns_codec_bitdot_avx512;
        pc = "avx512";
    } else if (cap >= 1 && fanns_codec_popcnt_available()) {
        k->hamming = fanns_codec_hamming_popcnt;
        k->bitdot = fanns_codec_bitdot_popcnt;
        pc = "popcnt";
    }
    /* PQ: the table lookups are bound by loads, not by adds, and gathers did not beat plain
     * loads.  Measured on an AMD EPYC (Zen 4, AVX-512), ns per code for one distance /
     * in a batch of 8192 codes, the table hot in cache:
     *   pq_m                 8          16          48          96         128
     *   ref            4.9/3.0     9.5/6.5    29/27       72/68      130/91
     *   unrolled       3.3/1.8     4.0/3.6    12.2/12.2   38/38       57/57
     *   avx2 gathers   4.5/5.0     7.5/9.5    21/33       48/71       60/94
     *   avx512         8.9/4.1     8.6/7.9    24/25       46/56       58/69
     * so the unrolled C kernels are used at every level; their batch also gives the same floats
     * as single distances, which the gather batches (summed in the reference's order) do not.
     * The gather variants stay for other CPUs and benchmarks. */
    k->pq_sum = fanns_codec_pq_sum_unrolled;
    k->pq_batch = fanns_codec_pq_batch_unrolled;
    snprintf(isa_desc, sizeof isa_desc, "f16=%s u8=%s int8=%s popcnt=%s pq=unrolled", f16, u8, i8, pc);
}

void fanns__codec_kernels_init(void) { pthread_once(&kernels_once, kernels_init_once); }

const char *fanns_codec_isa(void) {
    fanns__codec_kernels_init();
    return isa_desc;
}
