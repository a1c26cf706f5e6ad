/*
 * codec.h: compressed vector codes (half precision, 8-bit scalar quantization, 1-bit binary
 * quantization, 8-bit product quantization) and distance estimates computed directly on the
 * codes.
 *
 * A codec turns float32 vectors of a fixed dimension into fixed-size byte codes, turns codes
 * back into approximate vectors, and estimates the distance between a float32 query and a code
 * without decoding it.  Search over codes is meant to be followed by rescoring the best
 * candidates with the float32 vectors (oversampling).  PQ codebooks are not trained here:
 * they come from elsewhere (fanns trains them through FAISS, index/faiss/faiss_codec.h) and
 * are handed over with fanns_codec_set_pq_centroids; encoding, decoding and distances on PQ
 * codes are done here like for the other kinds.
 *
 * Kinds and code layouts (all little-endian; codes need no alignment):
 *
 *  F16  dim IEEE binary16 values, round to nearest even: 2*dim bytes.  No training.  Every
 *       value within half precision (relative 2^-11) of the input; encode refuses values that
 *       would round to infinity (|x| >= 65520).
 *
 *  SQ8  dim bytes c[d] = clamp(round((x[d] - lo[d]) / step[d]), 0, 255), then for Euclid only a
 *       float32 with the squared norm of the decoded vector: dim (+4) bytes.  Training finds
 *       [lo, hi] from a quantile of the sample (as Qdrant's quantization_config.scalar.quantile:
 *       (1 - quantile)/2 of the values are cut at each end) and step = (hi - lo) / 255.  By
 *       default the range is per dimension; FANNS_CODEC_SQ8_GLOBAL uses one range for all
 *       dimensions like Qdrant.  Per dimension was measured better on 384-d sentence
 *       embeddings (see codec.c), whose per-dimension spreads differ by ~2x.  A value inside
 *       [lo, hi] decodes to within step/2 of itself; values outside are clamped.
 *
 *  BIN  one sign bit per dimension of r = x - c, where c is the training mean (the centre;
 *       FANNS_CODEC_BIN_NO_CENTER uses c = 0 and needs no training), packed into ceil(dim/64)
 *       little-endian u64 words (bit d%64 of word d/64, padding bits zero), then three float32:
 *       kappa = |r|^2 / sum|r[d]| (the scale that makes <q, kappa*sign(r)> an unbiased-style
 *       estimate of <q, r>, as in RaBitQ, Gao & Long, SIGMOD 2024), alpha = sum|r[d]| / dim
 *       (the least-squares scale, used by decode), and m = |r|^2 for Euclid or <c, r> for
 *       Cosine/Dot.  Manhattan is not supported (FANNS_EVALIDATE at creation).
 *
 *  PQ   pq_m bytes (pq_m divides dim; dsub = dim / pq_m): byte j is the index of the centroid
 *       of subspace j nearest (squared L2, ties to the lowest index) to x[j*dsub .. (j+1)*dsub).
 *       Each subspace has 256 centroids; the codebooks are pq_m * 256 * dsub float32, in FAISS
 *       ProductQuantizer order [pq_m][256][dsub], set with fanns_codec_set_pq_centroids
 *       (fanns_codec_train refuses PQ).  Decode concatenates the chosen centroids.  All four
 *       metrics are supported: every metric here is a sum over dimensions, so a query table of
 *       per-subspace terms gives the exact distance to the decoded vector.
 *
 * Distance estimates are "smaller is better" and on the same scale as index/hnsw.h's internal
 * distances: 1 - dot for Cosine (vectors and queries must already be unit length, the codec does
 * not normalise), -dot for Dot, squared L2 for Euclid, L1 for Manhattan.
 *
 * Queries: a fanns_codec_query_t is prepared once per search from the float32 query, with a
 * precision in bits (query_bits):
 *   F16: 0 or 32 (float query against half codes).
 *   SQ8: 32 = float query against u8 codes (asymmetric, float FMA);
 *        8  = the query is quantised to int8 too and the kernel is an integer u8*i8 dot
 *             product (AVX-512 VNNI vpdpbusd, AVX2 widening vpmaddwd);
 *        0  = default: 8, or 32 for Manhattan (which has only the float path).
 *   BIN: 1 = symmetric Hamming distance between sign codes;
 *        4 or 8 = asymmetric: the centred query is quantised to 4 or 8 bits and the dot product
 *             with the sign code is computed from popcounts over the query's bit planes;
 *        0 = default: 4.
 *   PQ:  0 or 32: a float32 table [pq_m][256] of the query's term against every centroid
 *        (-dot for Cosine and Dot, squared L2 for Euclid, L1 for Manhattan; Cosine adds 1 once),
 *        built in O(256 * dim); a distance is then pq_m table lookups summed.
 *
 * Kernels are selected once at run time from CPUID (like index/distance.c), capped by the
 * environment variable FANNS_ISA=scalar|avx2|avx512; each has a scalar reference below that
 * defines its result.
 *
 * Threads: a codec is immutable once trained: encode, decode, serialize, query_new and all
 * distance calls may run on any number of threads at once.  train and set_pq_centroids must
 * not run concurrently with anything else on the same codec.  A query only reads its state in
 * distance calls, so it may be shared by threads too; it borrows its codec, which must outlive
 * it.
 */
#ifndef FANNS_CODEC_H
#define FANNS_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "distance.h"
#include "err.h"

typedef enum {
    FANNS_CODEC_F16 = 1,
    FANNS_CODEC_SQ8 = 2,
    FANNS_CODEC_BIN = 3,
    FANNS_CODEC_PQ = 4
} fanns_codec_kind_t;

/* fanns_codec_params_t.flags */
#define FANNS_CODEC_SQ8_GLOBAL 1u     /* SQ8: one [lo, hi] for all dimensions (Qdrant's way) */
#define FANNS_CODEC_BIN_NO_CENTER 2u  /* BIN: sign of x itself, not of x - mean */

#define FANNS_CODEC_SQ8_DEFAULT_QUANTILE 1.0f
#define FANNS_CODEC_MAX_DIM 65536u
#define FANNS_CODEC_PQ_CENTROIDS 256u /* centroids per PQ subspace (8-bit codes) */

typedef struct fanns_codec_params {
    fanns_codec_kind_t kind;
    uint32_t dim;            /* 1 .. FANNS_CODEC_MAX_DIM */
    fanns_metric_t metric;
    float quantile;          /* SQ8: 0.5 .. 1.0; 0 selects 1.0, the whole range, which is what
                              * Qdrant does when quantile is not set; ignored by other kinds */
    uint32_t flags;          /* FANNS_CODEC_* flags; 0 for the defaults */
    uint32_t pq_m;           /* PQ: sub-quantizers (code bytes), 1 .. dim, must divide dim;
                              * ignored by other kinds */
} fanns_codec_params_t;

typedef struct fanns_codec fanns_codec_t;
typedef struct fanns_codec_query fanns_codec_query_t;

/* Creates a codec; F16 and BIN with FANNS_CODEC_BIN_NO_CENTER are ready at once, SQ8 and
 * centred BIN need fanns_codec_train, PQ needs fanns_codec_set_pq_centroids.  out: caller
 * frees with fanns_codec_free.
 * @return 0; FANNS_EVALIDATE (dim, metric, kind, quantile, flags, Manhattan with BIN, or a PQ
 *         pq_m that is 0 or does not divide dim); FANNS_ENOMEM. */
int fanns_codec_new(const fanns_codec_params_t *p, fanns_codec_t **out, fanns_err_t *err);
void fanns_codec_free(fanns_codec_t *c);

/* Trains on n vectors x (n * dim floats, borrowed for the call; unit length for Cosine).  The
 * result depends only on the values of x (deterministic: exact order statistics, means in
 * double precision).  Training again replaces the previous training.  F16 accepts and ignores
 * it.  Cost: SQ8 copies the sample once (O(n * dim) memory) and runs quickselect per range.
 * @return 0; FANNS_EINVAL (n == 0, a value that is not finite, or a PQ codec: its codebooks
 *         are set with fanns_codec_set_pq_centroids); FANNS_ENOMEM. */
int fanns_codec_train(fanns_codec_t *c, size_t n, const float *x, fanns_err_t *err);

/* Sets the codebooks of a PQ codec and marks it trained: cent holds pq_m * 256 * dsub floats
 * in the order [pq_m][256][dsub] (FAISS ProductQuantizer::centroids), copied (borrowed for the
 * call).  Setting them again replaces them; like train, not concurrently with other use.
 * @return 0; FANNS_EINVAL (not a PQ codec, or a value that is not finite). */
int fanns_codec_set_pq_centroids(fanns_codec_t *c, const float *cent, fanns_err_t *err);
/* PQ: the number of sub-quantizers (pq_m); 0 for other kinds. */
uint32_t fanns_codec_pq_m(const fanns_codec_t *c);

bool fanns_codec_is_trained(const fanns_codec_t *c);
fanns_codec_kind_t fanns_codec_kind(const fanns_codec_t *c);
uint32_t fanns_codec_dim(const fanns_codec_t *c);
fanns_metric_t fanns_codec_metric(const fanns_codec_t *c);
/* Bytes per code (see the layouts above); known from the parameters alone. */
size_t fanns_codec_code_size(const fanns_codec_t *c);

/* Encodes n vectors x (n * dim floats) into codes (n * code_size bytes, caller's buffer).
 * @return 0; FANNS_EINVAL (codec not trained, or a value that is not finite). */
int fanns_codec_encode(const fanns_codec_t *c, size_t n, const float *x, uint8_t *codes, fanns_err_t *err);

/* Decodes n codes into x (n * dim floats, caller's buffer): F16 exact half values, SQ8
 * lo + step * c, BIN c + alpha * sign, PQ the chosen centroids.
 * @return 0; FANNS_EINVAL (codec not trained). */
int fanns_codec_decode(const fanns_codec_t *c, size_t n, const uint8_t *codes, float *x, fanns_err_t *err);

/* Serializes the trained codec into a new buffer (caller frees with free()): a 40-byte header
 * (magic "FNCQ", u32 version 1, u32 kind, u32 dim, u32 metric, u32 flags, f32 quantile, u32
 * trained, u64 payload length), the payload (SQ8: lo[dim], step[dim]; BIN: centre[dim]; F16:
 * empty; PQ: u32 pq_m, then when trained the centroids [pq_m][256][dsub]; all f32 but pq_m),
 * and a u64 FNV-1a-64 hash of everything before it.  PQ was added without a version change:
 * the bytes of the other kinds are unchanged.
 * @return 0; FANNS_ENOMEM. */
int fanns_codec_serialize(const fanns_codec_t *c, uint8_t **buf, size_t *len, fanns_err_t *err);

/* Recreates a codec from len bytes of fanns_codec_serialize (borrowed for the call); out:
 * caller frees with fanns_codec_free.
 * @return 0; FANNS_ECORRUPT (truncated, bad magic, version, hash, or invalid fields);
 *         FANNS_ENOMEM. */
int fanns_codec_deserialize(const uint8_t *buf, size_t len, fanns_codec_t **out, fanns_err_t *err);

/* Prepares query q (dim floats, borrowed for the call; unit length for Cosine) with precision
 * query_bits (see above).  out borrows c until fanns_codec_query_free.
 * @return 0; FANNS_EINVAL (codec not trained, query_bits not valid for the kind or metric, or a
 *         value that is not finite); FANNS_ENOMEM. */
int fanns_codec_query_new(const fanns_codec_t *c, const float *q, unsigned query_bits, fanns_codec_query_t **out,
                          fanns_err_t *err);
void fanns_codec_query_free(fanns_codec_query_t *q);
/* The precision actually used (query_bits with 0 resolved). */
unsigned fanns_codec_query_bits(const fanns_codec_query_t *q);

/* Estimated distance ("smaller is better", see above) between the query and one code. */
float fanns_codec_distance(const fanns_codec_query_t *q, const uint8_t *code);
/* The same for n codes stored back to back (stride code_size) into out[0..n). */
void fanns_codec_distance_batch(const fanns_codec_query_t *q, size_t n, const uint8_t *codes, float *out);

/* ---- kernels, exposed for tests and benchmarks ---- */

/* Description of the selected kernels, e.g.
 * "f16=avx512 u8=avx512 int8=vnni popcnt=avx512 pq=unrolled". */
const char *fanns_codec_isa(void);

/* IEEE half <-> float, round to nearest even (software; agrees with F16C). */
uint16_t fanns_codec_f32_to_f16(float f);
float fanns_codec_f16_to_f32(uint16_t h);

/* q (n floats) against n half values at h (2n bytes, any alignment). */
float fanns_codec_f16_dot_ref(const float *q, const uint8_t *h, size_t n);
float fanns_codec_f16_l2sq_ref(const float *q, const uint8_t *h, size_t n);
float fanns_codec_f16_l1_ref(const float *q, const uint8_t *h, size_t n);
/* sum w[i] * c[i] for n floats w and n bytes c. */
float fanns_codec_u8_dot_ref(const float *w, const uint8_t *c, size_t n);
/* sum |r[i] - step[i] * c[i]|: the SQ8 Manhattan kernel (scalar only). */
float fanns_codec_u8_l1_ref(const float *r, const float *step, const uint8_t *c, size_t n);
/* sum c[i] * q[i], unsigned bytes times signed bytes (q in -127..127), n <= 65536. */
int32_t fanns_codec_u8i8_dot_ref(const uint8_t *c, const int8_t *q, size_t n);
/* popcount(a ^ b) over `words` u64 words; a aligned, b any alignment. */
uint32_t fanns_codec_hamming_ref(const uint64_t *a, const uint8_t *b, size_t words);
/* sum over j < bits of 2^j * popcount(planes[j*words ..] & code) over `words` words; sets
 * *code_ones to popcount(code).  planes aligned, code any alignment; bits 1..8. */
uint32_t fanns_codec_bitdot_ref(const uint64_t *planes, unsigned bits, const uint8_t *code, size_t words,
                                uint32_t *code_ones);
/* PQ: sum over j < m of table[256 * j + code[j]] (table: m * 256 floats, 64-byte aligned for
 * the SIMD variants; code any alignment), summed in order j = 0, 1, ... */
float fanns_codec_pq_sum_ref(const float *table, const uint8_t *code, size_t m);
/* PQ over n codes of m bytes stored back to back: out[i] = pq_sum(table, codes + i * m, m). */
void fanns_codec_pq_batch_ref(const float *table, size_t m, const uint8_t *codes, size_t n, float *out);

/* Explicit variants; *_available is false when the CPU lacks the instructions (then the
 * variant must not be called). */
bool fanns_codec_f16_avx2_available(void);   /* avx2, fma, f16c */
bool fanns_codec_avx512_available(void);     /* avx512f, bw, vl */
bool fanns_codec_vnni_available(void);       /* avx512f, bw, vl, vnni */
bool fanns_codec_popcnt_available(void);     /* popcnt */
bool fanns_codec_vpopcnt_available(void);    /* avx512f, vpopcntdq */
float fanns_codec_f16_dot_avx2(const float *q, const uint8_t *h, size_t n);
float fanns_codec_f16_l2sq_avx2(const float *q, const uint8_t *h, size_t n);
float fanns_codec_f16_l1_avx2(const float *q, const uint8_t *h, size_t n);
float fanns_codec_f16_dot_avx512(const float *q, const uint8_t *h, size_t n);
float fanns_codec_f16_l2sq_avx512(const float *q, const uint8_t *h, size_t n);
float fanns_codec_f16_l1_avx512(const float *q, const uint8_t *h, size_t n);
float fanns_codec_u8_dot_avx2(const float *w, const uint8_t *c, size_t n);
float fanns_codec_u8_dot_avx512(const float *w, const uint8_t *c, size_t n);
int32_t fanns_codec_u8i8_dot_avx2(const uint8_t *c, const int8_t *q, size_t n);
int32_t fanns_codec_u8i8_dot_vnni(const uint8_t *c, const int8_t *q, size_t n);
uint32_t fanns_codec_hamming_popcnt(const uint64_t *a, const uint8_t *b, size_t words);
uint32_t fanns_codec_hamming_avx512(const uint64_t *a, const uint8_t *b, size_t words);
uint32_t fanns_codec_bitdot_popcnt(const uint64_t *planes, unsigned bits, const uint8_t *code, size_t words,
                                   uint32_t *code_ones);
uint32_t fanns_codec_bitdot_avx512(const uint64_t *planes, unsigned bits, const uint8_t *code, size_t words,
                                   uint32_t *code_ones);
/* PQ variants.  unrolled: plain C with four accumulators (single), and two codes interleaved
 * (batch, bit-identical to the unrolled single); avx2: 8 subspaces per gather (single) or 8
 * codes per gather (batch, bit-identical to the reference); avx512: 16 of each.  The unrolled
 * ones are dispatched (they were faster, see codec_kernels.c). */
bool fanns_codec_avx2_available(void);       /* avx2 */
float fanns_codec_pq_sum_unrolled(const float *table, const uint8_t *code, size_t m);
float fanns_codec_pq_sum_avx2(const float *table, const uint8_t *code, size_t m);
float fanns_codec_pq_sum_avx512(const float *table, const uint8_t *code, size_t m);
void fanns_codec_pq_batch_unrolled(const float *table, size_t m, const uint8_t *codes, size_t n, float *out);
void fanns_codec_pq_batch_avx2(const float *table, size_t m, const uint8_t *codes, size_t n, float *out);
void fanns_codec_pq_batch_avx512(const float *table, size_t m, const uint8_t *codes, size_t n, float *out);

#endif
