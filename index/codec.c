/*
 * codec.c: F16, SQ8, BIN and PQ vector codes and distance estimates on them (see codec.h for
 * the code layouts, the query precisions and the thread rules).  The kernels live in
 * codec_kernels.c.
 *
 * Invariants:
 *  - a codec's parameters never change; its training (SQ8 lo/step, BIN centre, PQ centroids)
 *    is written only by train, set_pq_centroids and deserialize, before the codec is shared;
 *  - for SQ8, step[d] >= 0 and inv_step[d] = 1/step[d] (0 when step is 0: a constant dimension
 *    encodes to 0 and decodes to lo exactly);
 *  - for BIN, the padding bits after dim in the last word are zero in codes and query planes,
 *    so popcounts over whole words count only real dimensions;
 *  - for PQ, dim = pq_m * dsub, cent holds [pq_m][256][dsub] finite floats and cent_t the same
 *    values as [pq_m][dsub][256]; a query's table is 64-byte aligned (aligned_alloc) with
 *    [pq_m][256] entries.
 *
 * Distance algebra (q the query, x a stored vector, x^ its decoded approximation):
 *  - SQ8 float query: <q, x^> = sum q[d] lo[d] + sum (q[d] step[d]) c[d], a constant plus one
 *    float*u8 kernel; |q - x^|^2 = |q|^2 - 2 <q, x^> + |x^|^2 with |x^|^2 stored in the code.
 *  - SQ8 int8 query: w[d] = q[d] step[d] is quantised to i8 = round(w[d] / s), s = max|w| / 127,
 *    and sum w[d] c[d] ~ s * (u8 . i8), one integer kernel (VNNI).
 *  - BIN: with q' = q - centre and r = x - centre, <q', r> ~ kappa_x <q', sign(r)> (RaBitQ's
 *    estimator: kappa = |r|^2 / sum|r|, i.e. |r| / <r/|r|, sign(r)/sqrt(D)> * 1/sqrt(D)).  The
 *    4/8-bit query has q'[d] ~ lo + delta u[d], so <q', s> = lo (2 ones - D) + delta (2 sum_j 2^j
 *    popcount(plane_j & bits) - sum u).  Then <q, x> = <q', r> + <q, centre> + <centre, r>
 *    and |q - x|^2 = |q'|^2 + |r|^2 - 2 <q', r>.  The Hamming query uses q' ~ beta sign(q')
 *    with beta = sum|q'| / D, so <q', s> ~ beta (D - 2 hamming).
 *  - PQ (Jegou, Douze & Schmid's asymmetric distance computation): every metric is a sum over
 *    dimensions, so for the decoded x^ = (c_0[k_0], ..., c_{m-1}[k_{m-1}]) the distance is
 *    sum_j T[j][k_j] with T[j][k] the query's term against centroid k of subspace j: -<q_j, c>
 *    (Cosine adds 1 once), |q_j - c|^2, or |q_j - c|_1.  That is exact up to float summation
 *    order, which is why Manhattan is supported for PQ.
 *
 * Measurements that chose the defaults (arXiv abstracts, 100k x 384 sentence embeddings,
 * cosine, brute force over all codes, the 100 unfiltered queries; recall@10 with no rescoring,
 * then with the best 20 / 40 / 100 codes rescored in float32):
 *   F16                                768 B  0.999 / 1.000 / 1.000 / 1.000
 *   SQ8 per-dimension, quantile 0.99   384 B  0.939 / 1.000 / 1.000 / 1.000
 *   SQ8 global range,  quantile 0.99   384 B  0.875 / 0.985 / 1.000 / 1.000
 *   SQ8 per-dimension, quantile 0.999  384 B  0.979 / 1.000 / 1.000 / 1.000
 *   SQ8 global range,  quantile 0.999  384 B  0.959 / 1.000 / 1.000 / 1.000
 *   SQ8 per-dimension / global, 1.0    384 B  0.968 / 0.966 without rescoring
 *   BIN centred, 4-bit query            60 B  0.341 / 0.489 / 0.663 / 0.843
 *   BIN uncentred, 4-bit query          60 B  0.246 / 0.386 / 0.555 / 0.757
 *   BIN centred, 8-bit / Hamming        60 B  0.336 / 0.230 without rescoring
 * The int8 query loses nothing against the float query for SQ8 (0.939 both) and its VNNI
 * kernel is about 3x faster, so it is the default; the 8-bit BIN query is no better than the
 * 4-bit one.  A random rotation before the sign (RaBitQ) did not help on this data (checked
 * offline with the exact estimator), so there is none.
 *
 * References: Jegou, Douze & Schmid, "Product Quantization for Nearest Neighbor Search",
 * IEEE TPAMI 2011 (PQ codes and table-based asymmetric distances; FAISS's codebook layout);
 * Qdrant scalar quantization (quantile-clipped u8 range); Gao & Long, "RaBitQ:
 * Quantizing High-Dimensional Vectors with a Theoretical Error Bound", SIGMOD 2024 (the
 * unbiased sign-code estimator and bit-plane queries); F. Giesen's float to half conversion
 * with round to nearest even.
 */
#include "codec.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "codec_int.h"

struct fanns_codec {
    fanns_codec_kind_t kind;
    uint32_t dim;
    fanns_metric_t metric;
    float quantile;
    uint32_t flags;
    bool trained;
    size_t code_size;
    size_t words;       /* BIN: u64 words of sign bits */
    float *lo, *step, *inv_step; /* SQ8, dim each */
    float *center;      /* BIN, dim (zeros with FANNS_CODEC_BIN_NO_CENTER) */
    uint32_t pq_m, dsub; /* PQ: sub-quantizers and their dimension */
    float *cent;        /* PQ: [pq_m][256][dsub] */
    float *cent_t;      /* PQ: the same transposed per subspace, [pq_m][dsub][256], so that
                         * encode and query tables run over 256 contiguous centroids */
};

typedef float (*query_fn)(const fanns_codec_query_t *q, const uint8_t *code);

struct fanns_codec_query {
    const fanns_codec_t *c;
    query_fn fn;
    unsigned bits;
    float qsq;       /* |q|^2 (F16, SQ8) or |q'|^2 (BIN) */
    float qlo;       /* <q, lo> (SQ8); <q, centre> (BIN) */
    float scale;     /* SQ8 int8: s; BIN: delta (4/8 bits) or beta (Hamming) */
    float base;      /* BIN: lo of the query quantiser; PQ: the constant term (1 for Cosine) */
    float sumu;      /* BIN: sum of the quantised query levels */
    float *qf;       /* F16: q; SQ8 float: q*step; SQ8 Manhattan: q - lo */
    int8_t *qi;      /* SQ8 int8 */
    uint64_t *planes; /* BIN: bits planes of words each (Hamming: the sign bits) */
    float *table;    /* PQ: [pq_m][256], 64-byte aligned; base holds the constant term */
};

#define SQ8_LEVELS 255.0f
#define BIN_TRAILER 12u
#define HDR_SIZE 40u
#define HASH_SIZE 8u
#define FORMAT_VERSION 1u

/* ---- creation ---- */

#define PQ_K FANNS_CODEC_PQ_CENTROIDS

static size_t code_size_of(const fanns_codec_params_t *p) {
    switch (p->kind) {
    case FANNS_CODEC_F16: return 2u * (size_t)p->dim;
    case FANNS_CODEC_SQ8: return p->dim + (p->metric == FANNS_METRIC_EUCLID ? 4u : 0u);
    case FANNS_CODEC_BIN: return 8u * (((size_t)p->dim + 63u) / 64u) + BIN_TRAILER;
    case FANNS_CODEC_PQ: return p->pq_m;
    }
    return 0;
}

int fanns_codec_new(const fanns_codec_params_t *p, fanns_codec_t **out, fanns_err_t *err) {
    *out = NULL;
    if (p->kind != FANNS_CODEC_F16 && p->kind != FANNS_CODEC_SQ8 && p->kind != FANNS_CODEC_BIN &&
        p->kind != FANNS_CODEC_PQ)
        return fanns_err_set(err, FANNS_EVALIDATE, "kind", "unknown codec kind %d", (int)p->kind);
    if (p->dim < 1 || p->dim > FANNS_CODEC_MAX_DIM)
        return fanns_err_set(err, FANNS_EVALIDATE, "dim", "dimension %u is outside 1..%u", p->dim,
                             FANNS_CODEC_MAX_DIM);
    if ((int)p->metric < 0 || (int)p->metric > 3)
        return fanns_err_set(err, FANNS_EVALIDATE, "metric", "unknown metric %d", (int)p->metric);
    if (p->kind == FANNS_CODEC_BIN && p->metric == FANNS_METRIC_MANHATTAN)
        return fanns_err_set(err, FANNS_EVALIDATE, "metric",
                             "binary quantization does not support the Manhattan distance");
    if (p->flags & ~(FANNS_CODEC_SQ8_GLOBAL | FANNS_CODEC_BIN_NO_CENTER))
        return fanns_err_set(err, FANNS_EVALIDATE, "flags", "unknown codec flags 0x%x", p->flags);
    float quantile = p->quantile == 0.0f ? FANNS_CODEC_SQ8_DEFAULT_QUANTILE : p->quantile;
    if (p->kind == FANNS_CODEC_SQ8 && !(quantile >= 0.5f && quantile <= 1.0f))
        return fanns_err_set(err, FANNS_EVALIDATE, "quantile", "quantile must be between 0.5 and 1");
    if (p->kind == FANNS_CODEC_PQ && (p->pq_m == 0 || p->pq_m > p->dim || p->dim % p->pq_m != 0))
        return fanns_err_set(err, FANNS_EVALIDATE, "pq_m",
                             "product quantization needs a number of sub-quantizers that divides the dimension %u "
                             "(got %u)",
                             p->dim, p->pq_m);

    fanns_codec_t *c = calloc(1, sizeof *c);
    if (!c) goto nomem;
    c->kind = p->kind;
    c->dim = p->dim;
    c->metric = p->metric;
    c->quantile = p->kind == FANNS_CODEC_SQ8 ? quantile : 0.0f;
    c->flags = p->flags;
    c->code_size = code_size_of(p);
    c->words = ((size_t)p->dim + 63u) / 64u;
    if (p->kind == FANNS_CODEC_SQ8) {
        c->lo = calloc(3u * (size_t)p->dim, sizeof(float));
        if (!c->lo) goto nomem;
        c->step = c->lo + p->dim;
        c->inv_step = c->step + p->dim;
    } else if (p->kind == FANNS_CODEC_BIN) {
        c->center = calloc(p->dim, sizeof(float));
        if (!c->center) goto nomem;
    } else if (p->kind == FANNS_CODEC_PQ) {
        c->pq_m = p->pq_m;
        c->dsub = p->dim / p->pq_m;
        c->cent = calloc((size_t)PQ_K * p->dim, sizeof(float));
        c->cent_t = calloc((size_t)PQ_K * p->dim, sizeof(float));
        if (!c->cent || !c->cent_t) goto nomem;
    }
    c->trained = p->kind == FANNS_CODEC_F16 || (p->kind == FANNS_CODEC_BIN && (p->flags & FANNS_CODEC_BIN_NO_CENTER));
    *out = c;
    return 0;
nomem:
    fanns_codec_free(c);
    return fanns_err_set(err, FANNS_ENOMEM, NULL, "out of memory creating a codec");
}

void fanns_codec_free(fanns_codec_t *c) {
    if (!c) return;
    free(c->lo);
    free(c->center);
    free(c->cent);
    free(c->cent_t);
    free(c);
}

bool fanns_codec_is_trained(const fanns_codec_t *c) { return c->trained; }
fanns_codec_kind_t fanns_codec_kind(const fanns_codec_t *c) { return c->kind; }
uint32_t fanns_codec_dim(const fanns_codec_t *c) { return c->dim; }
fanns_metric_t fanns_codec_metric(const fanns_codec_t *c) { return c->metric; }
size_t fanns_codec_code_size(const fanns_codec_t *c) { return c->code_size; }
uint32_t fanns_codec_pq_m(const fanns_codec_t *c) { return c->pq_m; }

/* ---- training ---- */

static int check_finite(const float *x, size_t n, fanns_err_t *err) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return fanns_err_set(err, FANNS_EINVAL, NULL, "vector value %zu is not a finite number", i);
    return 0;
}

/* The k-th smallest of a[0..n) (Wirth's selection: Hoare partitions around a[k]); reorders a. */
static float select_kth(float *a, size_t n, size_t k) {
    ptrdiff_t l = 0, m = (ptrdiff_t)n - 1, kk = (ptrdiff_t)k;
    while (l < m) {
        float x = a[kk];
        ptrdiff_t i = l, j = m;
        do {
            while (a[i] < x) i++;
            while (x < a[j]) j--;
            if (i <= j) {
                float t = a[i];
                a[i] = a[j];
                a[j] = t;
                i++;
                j--;
            }
        } while (i <= j);
        if (j < kk) l = i;
        if (kk < i) m = j;
    }
    return a[kk];
}

/* Sets lo/hi from the quantile of v[0..n) (reordered). */
static void quantile_range(float *v, size_t n, float quantile, float *lo, float *hi) {
    size_t klo = (size_t)floor((1.0 - (double)quantile) * 0.5 * (double)(n - 1));
    *lo = select_kth(v, n, klo);
    *hi = select_kth(v, n, n - 1 - klo);
}

static void set_range(fanns_codec_t *c, uint32_t d, float lo, float hi) {
    float step = (hi - lo) / SQ8_LEVELS;
    if (!(step > 0.0f) || !isfinite(step)) step = 0.0f;
    c->lo[d] = lo;
    c->step[d] = step;
    c->inv_step[d] = step > 0.0f ? 1.0f / step : 0.0f;
}

int fanns_codec_train(fanns_codec_t *c, size_t n, const float *x, fanns_err_t *err) {
    size_t dim = c->dim;
    if (c->kind == FANNS_CODEC_PQ)
        return fanns_err_set(err, FANNS_EINVAL, NULL,
                             "PQ codebooks are set with fanns_codec_set_pq_centroids, not trained by the codec");
    if (n == 0) return fanns_err_set(err, FANNS_EINVAL, NULL, "training needs at least one vector");
    int rc = check_finite(x, n * dim, err);
    if (rc) return rc;
    if (c->kind == FANNS_CODEC_F16) return 0;
    if (c->kind == FANNS_CODEC_BIN) {
        if (c->flags & FANNS_CODEC_BIN_NO_CENTER) return 0;
        double *sum = calloc(dim, sizeof(double));
        if (!sum) return fanns_err_set(err, FANNS_ENOMEM, NULL, "out of memory training a codec");
        for (size_t i = 0; i < n; i++)
            for (size_t d = 0; d < dim; d++) sum[d] += x[i * dim + d];
        for (size_t d = 0; d < dim; d++) c->center[d] = (float)(sum[d] / (double)n);
        free(sum);
        c->trained = true;
        return 0;
    }
    /* SQ8 */
    if (c->flags & FANNS_CODEC_SQ8_GLOBAL) {
        if (n > SIZE_MAX / sizeof(float) / dim) return fanns_err_set(err, FANNS_ENOMEM, NULL, "training set too large");
        float *all = malloc(n * dim * sizeof(float));
        if (!all) return fanns_err_set(err, FANNS_ENOMEM, NULL, "out of memory training a codec");
        memcpy(all, x, n * dim * sizeof(float));
        float lo, hi;
        quantile_range(all, n * dim, c->quantile, &lo, &hi);
        free(all);
        for (uint32_t d = 0; d < c->dim; d++) set_range(c, d, lo, hi);
    } else {
        float *col = malloc(n * sizeof(float));
        if (!col) return fanns_err_set(err, FANNS_ENOMEM, NULL, "out of memory training a codec");
        for (uint32_t d = 0; d < c->dim; d++) {
            for (size_t i = 0; i < n; i++) col[i] = x[i * dim + d];
            float lo, hi;
            quantile_range(col, n, c->quantile, &lo, &hi);
            set_range(c, d, lo, hi);
        }
        free(col);
    }
    c->trained = true;
    return 0;
}

/* Copies validated codebooks into both layouts and marks the codec trained. */
static void pq_store(fanns_codec_t *c, const float *cent) {
    size_t dsub = c->dsub;
    memcpy(c->cent, cent, (size_t)PQ_K * c->dim * sizeof(float));
    for (uint32_t j = 0; j < c->pq_m; j++) {
        const float *src = cent + (size_t)j * PQ_K * dsub;
        float *dst = c->cent_t + (size_t)j * PQ_K * dsub;
        for (unsigned k = 0; k < PQ_K; k++)
            for (size_t d = 0; d < dsub; d++) dst[d * PQ_K + k] = src[(size_t)k * dsub + d];
    }
    c->trained = true;
}

int fanns_codec_set_pq_centroids(fanns_codec_t *c, const float *cent, fanns_err_t *err) {
    if (c->kind != FANNS_CODEC_PQ)
        return fanns_err_set(err, FANNS_EINVAL, NULL, "centroids can only be set on a PQ codec");
    size_t nf = (size_t)PQ_K * c->dim;
    for (size_t i = 0; i < nf; i++)
        if (!isfinite(cent[i]))
            return fanns_err_set(err, FANNS_EINVAL, NULL, "PQ centroid value %zu (subspace %zu) is not a finite number",
                                 i, i / ((size_t)PQ_K * c->dsub));
    pq_store(c, cent);
    return 0;
}

/* ---- encode / decode ---- */

static int untrained(fanns_err_t *err) {
    return fanns_err_set(err, FANNS_EINVAL, NULL, "the codec is not trained");
}

static void put_f32(uint8_t *p, float v) { memcpy(p, &v, 4); }
static float get_f32(const uint8_t *p) {
    float v;
    memcpy(&v, p, 4);
    return v;
}

static int encode_f16(const fanns_codec_t *c, const float *x, uint8_t *code, fanns_err_t *err) {
    for (uint32_t d = 0; d < c->dim; d++) {
        uint16_t h = fanns_codec_f32_to_f16(x[d]);
        if ((h & 0x7c00u) == 0x7c00u)
            return fanns_err_set(err, FANNS_EINVAL, NULL, "vector value %u (%g) is outside the half precision range",
                                 d, (double)x[d]);
        memcpy(code + 2u * d, &h, 2);
    }
    return 0;
}

static void encode_sq8(const fanns_codec_t *c, const float *x, uint8_t *code) {
    double sq = 0.0;
    for (uint32_t d = 0; d < c->dim; d++) {
        float v = (x[d] - c->lo[d]) * c->inv_step[d];
        uint8_t q = v <= 0.0f ? 0 : v >= SQ8_LEVELS ? 255 : (uint8_t)(v + 0.5f);
        code[d] = q;
        double r = (double)(c->lo[d] + c->step[d] * (float)q);
        sq += r * r;
    }
    if (c->metric == FANNS_METRIC_EUCLID) put_f32(code + c->dim, (float)sq);
}

static void encode_bin(const fanns_codec_t *c, const float *x, uint8_t *code) {
    double sumabs = 0.0, sq = 0.0, cr = 0.0;
    memset(code, 0, 8u * c->words);
    for (uint32_t d = 0; d < c->dim; d++) {
        float r = x[d] - c->center[d];
        if (r > 0.0f) code[d / 8u] |= (uint8_t)(1u << (d % 8u)); /* bit d of the little-endian words */
        sumabs += fabs((double)r);
        sq += (double)r * r;
        cr += (double)c->center[d] * r;
    }
    uint8_t *t = code + 8u * c->words;
    put_f32(t, sumabs > 0.0 ? (float)(sq / sumabs) : 0.0f);
    put_f32(t + 4, (float)(sumabs / c->dim));
    put_f32(t + 8, (float)(c->metric == FANNS_METRIC_EUCLID ? sq : cr));
}

/* Nearest centroid per subspace by squared L2, each summed in dimension order (the loop
 * over the 256 contiguous centroids of cent_t vectorises without reordering any sum); a
 * strict < keeps the lowest index on ties, so the code depends only on the values. */
static void encode_pq(const fanns_codec_t *c, const float *x, uint8_t *code) {
    size_t dsub = c->dsub;
    float dist[PQ_K];
    for (uint32_t j = 0; j < c->pq_m; j++) {
        const float *xs = x + (size_t)j * dsub, *cj = c->cent_t + (size_t)j * PQ_K * dsub;
        for (unsigned k = 0; k < PQ_K; k++) dist[k] = 0.0f;
        for (size_t d = 0; d < dsub; d++) {
            const float *row = cj + d * PQ_K;
            float xv = xs[d];
            for (unsigned k = 0; k < PQ_K; k++) {
                float t = xv - row[k];
                dist[k] += t * t;
            }
        }
        float best = INFINITY;
        unsigned arg = 0;
        for (unsigned k = 0; k < PQ_K; k++) {
            if (dist[k] < best) {
                best = dist[k];
                arg = k;
            }
        }
        code[j] = (uint8_t)arg;
    }
}

int fanns_codec_encode(const fanns_codec_t *c, size_t n, const float *x, uint8_t *codes, fanns_err_t *err) {
    if (!c->trained) return untrained(err);
    int rc = check_finite(x, n * c->dim, err);
    if (rc) return rc;
    for (size_t i = 0; i < n; i++) {
        const float *v = x + i * c->dim;
        uint8_t *code = codes + i * c->code_size;
        switch (c->kind) {
        case FANNS_CODEC_F16:
            if ((rc = encode_f16(c, v, code, err))) return rc;
            break;
        case FANNS_CODEC_SQ8: encode_sq8(c, v, code); break;
        case FANNS_CODEC_BIN: encode_bin(c, v, code); break;
        case FANNS_CODEC_PQ: encode_pq(c, v, code); break;
        }
    }
    return 0;
}

int fanns_codec_decode(const fanns_codec_t *c, size_t n, const uint8_t *codes, float *x, fanns_err_t *err) {
    if (!c->trained) return untrained(err);
    for (size_t i = 0; i < n; i++) {
        float *v = x + i * c->dim;
        const uint8_t *code = codes + i * c->code_size;
        switch (c->kind) {
        case FANNS_CODEC_F16:
            for (uint32_t d = 0; d < c->dim; d++) {
                uint16_t h;
                memcpy(&h, code + 2u * d, 2);
                v[d] = fanns_codec_f16_to_f32(h);
            }
            break;
        case FANNS_CODEC_SQ8:
            for (uint32_t d = 0; d < c->dim; d++) v[d] = c->lo[d] + c->step[d] * (float)code[d];
            break;
        case FANNS_CODEC_BIN: {
            float alpha = get_f32(code + 8u * c->words + 4);
            for (uint32_t d = 0; d < c->dim; d++)
                v[d] = c->center[d] + ((code[d / 8u] >> (d % 8u)) & 1u ? alpha : -alpha);
            break;
        }
        case FANNS_CODEC_PQ:
            for (uint32_t j = 0; j < c->pq_m; j++)
                memcpy(v + (size_t)j * c->dsub, c->cent + ((size_t)j * PQ_K + code[j]) * c->dsub,
                       c->dsub * sizeof(float));
            break;
        }
    }
    return 0;
}

/* ---- serialization ---- */

static uint64_t fnv1a64(const uint8_t *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get_u32(const uint8_t *p) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)p[i] << (8 * i);
    return v;
}
static uint64_t get_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}
static void put_f32le(uint8_t *p, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    put_u32(p, u);
}
static float get_f32le(const uint8_t *p) {
    uint32_t u = get_u32(p);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Payload floats of a codec in its current training state (after PQ's u32 pq_m). */
static size_t payload_floats(const fanns_codec_t *c) {
    if (!c->trained) return 0;
    if (c->kind == FANNS_CODEC_SQ8) return 2u * (size_t)c->dim;
    if (c->kind == FANNS_CODEC_BIN && !(c->flags & FANNS_CODEC_BIN_NO_CENTER)) return c->dim;
    if (c->kind == FANNS_CODEC_PQ) return (size_t)PQ_K * c->dim;
    return 0;
}

/* Payload bytes before the floats: PQ's pq_m (the header had no field left for it). */
static size_t payload_prefix(fanns_codec_kind_t kind) { return kind == FANNS_CODEC_PQ ? 4u : 0u; }

int fanns_codec_serialize(const fanns_codec_t *c, uint8_t **buf, size_t *len, fanns_err_t *err) {
    size_t pre = payload_prefix(c->kind), nf = payload_floats(c), total = HDR_SIZE + pre + 4u * nf + HASH_SIZE;
    uint8_t *b = malloc(total);
    if (!b) return fanns_err_set(err, FANNS_ENOMEM, NULL, "out of memory serializing a codec");
    memcpy(b, "FNCQ", 4);
    put_u32(b + 4, FORMAT_VERSION);
    put_u32(b + 8, (uint32_t)c->kind);
    put_u32(b + 12, c->dim);
    put_u32(b + 16, (uint32_t)c->metric);
    put_u32(b + 20, c->flags);
    put_f32le(b + 24, c->quantile);
    put_u32(b + 28, c->trained ? 1u : 0u);
    put_u64(b + 32, pre + 4u * (uint64_t)nf);
    uint8_t *p = b + HDR_SIZE;
    if (c->kind == FANNS_CODEC_PQ) {
        put_u32(p, c->pq_m);
        for (size_t i = 0; i < nf; i++) put_f32le(p + pre + 4u * i, c->cent[i]);
    } else if (nf && c->kind == FANNS_CODEC_SQ8) {
        for (uint32_t d = 0; d < c->dim; d++) put_f32le(p + 4u * d, c->lo[d]);
        for (uint32_t d = 0; d < c->dim; d++) put_f32le(p + 4u * (c->dim + d), c->step[d]);
    } else if (nf) {
        for (uint32_t d = 0; d < c->dim; d++) put_f32le(p + 4u * d, c->center[d]);
    }
    put_u64(b + total - HASH_SIZE, fnv1a64(b, total - HASH_SIZE));
    *buf = b;
    *len = total;
    return 0;
}

static int corrupt(fanns_err_t *err, const char *what) {
    return fanns_err_set(err, FANNS_ECORRUPT, NULL, "serialized codec is corrupt: %s", what);
}

int fanns_codec_deserialize(const uint8_t *buf, size_t len, fanns_codec_t **out, fanns_err_t *err) {
    *out = NULL;
    if (len < HDR_SIZE + HASH_SIZE) return corrupt(err, "truncated");
    if (memcmp(buf, "FNCQ", 4) != 0) return corrupt(err, "bad magic");
    if (get_u32(buf + 4) != FORMAT_VERSION) return corrupt(err, "unknown format version");
    uint64_t plen = get_u64(buf + 32);
    if (plen > len || len - HDR_SIZE - HASH_SIZE != plen) return corrupt(err, "length mismatch");
    if (get_u64(buf + len - HASH_SIZE) != fnv1a64(buf, len - HASH_SIZE)) return corrupt(err, "checksum mismatch");
    uint32_t trained = get_u32(buf + 28);
    fanns_codec_params_t p = {
        .kind = (fanns_codec_kind_t)get_u32(buf + 8),
        .dim = get_u32(buf + 12),
        .metric = (fanns_metric_t)get_u32(buf + 16),
        .flags = get_u32(buf + 20),
        .quantile = get_f32le(buf + 24),
    };
    if (p.kind == FANNS_CODEC_SQ8 && p.quantile == 0.0f) return corrupt(err, "invalid quantile");
    if (p.kind != FANNS_CODEC_SQ8 && p.quantile != 0.0f) return corrupt(err, "quantile set for a kind without one");
    if (trained > 1) return corrupt(err, "invalid trained flag");
    size_t pre = payload_prefix(p.kind);
    if (plen < pre) return corrupt(err, "payload does not match the codec kind");
    if (p.kind == FANNS_CODEC_PQ) p.pq_m = get_u32(buf + HDR_SIZE);
    fanns_codec_t *c = NULL;
    fanns_err_t sub;
    int rc = fanns_codec_new(&p, &c, &sub);
    if (rc == FANNS_ENOMEM) return fanns_err_set(err, rc, NULL, "%s", sub.msg);
    if (rc) return corrupt(err, sub.msg);
    if (trained) c->trained = true;
    if (pre + 4u * (uint64_t)payload_floats(c) != plen || (!trained && c->trained)) {
        fanns_codec_free(c);
        return corrupt(err, "payload does not match the codec kind");
    }
    const uint8_t *pl = buf + HDR_SIZE + pre;
    plen -= pre;
    for (uint64_t i = 0; i < plen / 4u; i++) {
        if (!isfinite(get_f32le(pl + 4u * i))) {
            fanns_codec_free(c);
            return corrupt(err, "a value is not finite");
        }
    }
    if (c->kind == FANNS_CODEC_SQ8 && plen) {
        for (uint32_t d = 0; d < c->dim; d++) {
            float lo = get_f32le(pl + 4u * d), step = get_f32le(pl + 4u * (c->dim + d));
            if (step < 0.0f) {
                fanns_codec_free(c);
                return corrupt(err, "negative step");
            }
            c->lo[d] = lo;
            c->step[d] = step;
            c->inv_step[d] = step > 0.0f ? 1.0f / step : 0.0f;
        }
    } else if (c->kind == FANNS_CODEC_BIN && plen) {
        for (uint32_t d = 0; d < c->dim; d++) c->center[d] = get_f32le(pl + 4u * d);
    } else if (c->kind == FANNS_CODEC_PQ && plen) {
        /* Read into cent_t as scratch, then store both layouts from it. */
        for (uint64_t i = 0; i < plen / 4u; i++) c->cent_t[i] = get_f32le(pl + 4u * i);
        float *tmp = c->cent_t;
        c->cent_t = malloc((size_t)plen);
        if (!c->cent_t) {
            c->cent_t = tmp;
            fanns_codec_free(c);
            return fanns_err_set(err, FANNS_ENOMEM, NULL, "out of memory loading a codec");
        }
        pq_store(c, tmp);
        free(tmp);
    }
    *out = c;
    return 0;
}

/* ---- queries ---- */

/* Converts an estimated <q, x> and the stored/derived terms into the internal distance. */
static inline float from_dot(fanns_metric_t m, float dot) {
    return m == FANNS_METRIC_COSINE ? 1.0f - dot : -dot;
}

static float dist_f16(const fanns_codec_query_t *q, const uint8_t *code) {
    size_t n = q->c->dim;
    switch (q->c->metric) {
    case FANNS_METRIC_COSINE: return 1.0f - fanns__codec_k.f16_dot(q->qf, code, n);
    case FANNS_METRIC_DOT: return -fanns__codec_k.f16_dot(q->qf, code, n);
    case FANNS_METRIC_EUCLID: return fanns__codec_k.f16_l2sq(q->qf, code, n);
    case FANNS_METRIC_MANHATTAN: return fanns__codec_k.f16_l1(q->qf, code, n);
    }
    return NAN;
}

static inline float sq8_finish(const fanns_codec_query_t *q, const uint8_t *code, float dot) {
    if (q->c->metric == FANNS_METRIC_EUCLID) return q->qsq - 2.0f * dot + get_f32(code + q->c->dim);
    return from_dot(q->c->metric, dot);
}

static float dist_sq8_float(const fanns_codec_query_t *q, const uint8_t *code) {
    return sq8_finish(q, code, q->qlo + fanns__codec_k.u8_dot(q->qf, code, q->c->dim));
}

static float dist_sq8_int8(const fanns_codec_query_t *q, const uint8_t *code) {
    return sq8_finish(q, code, q->qlo + q->scale * (float)fanns__codec_k.u8i8_dot(code, q->qi, q->c->dim));
}

static float dist_sq8_l1(const fanns_codec_query_t *q, const uint8_t *code) {
    return fanns_codec_u8_l1_ref(q->qf, q->c->step, code, q->c->dim);
}

/* ip: the estimate of <q', sign(r)>. */
static inline float bin_finish(const fanns_codec_query_t *q, const uint8_t *code, float ip) {
    const uint8_t *t = code + 8u * q->c->words;
    float e = get_f32(t) * ip, m = get_f32(t + 8);
    if (q->c->metric == FANNS_METRIC_EUCLID) return q->qsq + m - 2.0f * e;
    return from_dot(q->c->metric, e + q->qlo + m);
}

static float dist_bin_planes(const fanns_codec_query_t *q, const uint8_t *code) {
    uint32_t ones;
    uint32_t t = fanns__codec_k.bitdot(q->planes, q->bits, code, q->c->words, &ones);
    float ip = q->base * (2.0f * (float)ones - (float)q->c->dim) + q->scale * (2.0f * (float)t - q->sumu);
    return bin_finish(q, code, ip);
}

static float dist_bin_hamming(const fanns_codec_query_t *q, const uint8_t *code) {
    uint32_t h = fanns__codec_k.hamming(q->planes, code, q->c->words);
    return bin_finish(q, code, q->scale * ((float)q->c->dim - 2.0f * (float)h));
}

static float dist_pq(const fanns_codec_query_t *q, const uint8_t *code) {
    return q->base + fanns__codec_k.pq_sum(q->table, code, q->c->pq_m);
}

/* One table row: t[k] = the query's term against centroid k of a subspace, over cent_t's
 * contiguous centroids (row d of cj holds dimension d of all 256), summed in dimension order
 * in a local array like encode_pq, so the k loops vectorise. */
static void pq_row(fanns_metric_t metric, const float *qs, const float *cj, size_t dsub, float *t) {
    float acc[PQ_K];
    for (unsigned k = 0; k < PQ_K; k++) acc[k] = 0.0f;
    for (size_t d = 0; d < dsub; d++) {
        const float *row = cj + d * PQ_K;
        float qd = qs[d];
        if (metric == FANNS_METRIC_EUCLID) {
            for (unsigned k = 0; k < PQ_K; k++) {
                float e = qd - row[k];
                acc[k] += e * e;
            }
        } else if (metric == FANNS_METRIC_MANHATTAN) {
            for (unsigned k = 0; k < PQ_K; k++) acc[k] += fabsf(qd - row[k]);
        } else {
            for (unsigned k = 0; k < PQ_K; k++) acc[k] -= qd * row[k];
        }
    }
    memcpy(t, acc, sizeof acc);
}

/* Fills q->table (see the distance algebra above). */
static void pq_table(const fanns_codec_t *c, const float *qv, fanns_codec_query_t *q) {
    size_t dsub = c->dsub;
    for (uint32_t j = 0; j < c->pq_m; j++)
        pq_row(c->metric, qv + (size_t)j * dsub, c->cent_t + (size_t)j * PQ_K * dsub, dsub,
               q->table + (size_t)j * PQ_K);
    q->base = c->metric == FANNS_METRIC_COSINE ? 1.0f : 0.0f;
}

static int bad_bits(fanns_err_t *err, unsigned bits, const char *kind) {
    return fanns_err_set(err, FANNS_EINVAL, NULL, "query precision of %u bits is not available for %s codes", bits,
                         kind);
}

/* <a, b> in double precision over four interleaved partial sums (a fixed order, so the
 * same inputs always give the same result), which keeps the additions out of one long
 * dependency chain. */
static double dot_d(const float *a, const float *b, size_t n) {
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += (double)a[i] * b[i];
        s1 += (double)a[i + 1] * b[i + 1];
        s2 += (double)a[i + 2] * b[i + 2];
        s3 += (double)a[i + 3] * b[i + 3];
    }
    for (; i < n; i++) s0 += (double)a[i] * b[i];
    return (s0 + s1) + (s2 + s3);
}

int fanns_codec_query_new(const fanns_codec_t *c, const float *qv, unsigned query_bits, fanns_codec_query_t **out,
                          fanns_err_t *err) {
    *out = NULL;
    if (!c->trained) return untrained(err);
    int rc = check_finite(qv, c->dim, err);
    if (rc) return rc;
    size_t dim = c->dim;
    unsigned bits = query_bits;
    switch (c->kind) {
    case FANNS_CODEC_F16:
        if (bits == 0) bits = 32;
        if (bits != 32) return bad_bits(err, bits, "F16");
        break;
    case FANNS_CODEC_SQ8:
        if (bits == 0) bits = c->metric == FANNS_METRIC_MANHATTAN ? 32 : 8;
        if (bits != 32 && bits != 8) return bad_bits(err, bits, "SQ8");
        if (bits == 8 && c->metric == FANNS_METRIC_MANHATTAN) return bad_bits(err, bits, "SQ8 Manhattan");
        break;
    case FANNS_CODEC_BIN:
        if (bits == 0) bits = 4;
        if (bits != 1 && bits != 4 && bits != 8) return bad_bits(err, bits, "BIN");
        break;
    case FANNS_CODEC_PQ:
        if (bits == 0) bits = 32;
        if (bits != 32) return bad_bits(err, bits, "PQ");
        break;
    }
    fanns__codec_kernels_init();

    fanns_codec_query_t *q = calloc(1, sizeof *q);
    if (!q) goto nomem;
    q->c = c;
    q->bits = bits;
    if (c->kind == FANNS_CODEC_PQ) {
        /* pq_m * 256 floats is a multiple of 64 bytes, as aligned_alloc wants. */
        q->table = aligned_alloc(64, (size_t)c->pq_m * PQ_K * sizeof(float));
        if (!q->table) goto nomem;
        pq_table(c, qv, q);
        q->fn = dist_pq;
    } else if (c->kind == FANNS_CODEC_BIN) {
        q->planes = calloc((size_t)bits * c->words, sizeof(uint64_t));
        q->qf = malloc(dim * sizeof(float));
        if (!q->planes || !q->qf) goto nomem;
        /* q' = q - centre, |q'|^2 and <q, centre>. */
        float lo = INFINITY, hi = -INFINITY;
        for (size_t d = 0; d < dim; d++) {
            float v = qv[d] - c->center[d];
            q->qf[d] = v;
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
        double sumabs = 0.0;
        for (size_t d = 0; d < dim; d++) sumabs += fabsf(q->qf[d]);
        q->qsq = (float)dot_d(q->qf, q->qf, dim);
        q->qlo = (float)dot_d(qv, c->center, dim);
        if (bits == 1) {
            for (size_t d = 0; d < dim; d++)
                if (q->qf[d] > 0.0f) q->planes[d / 64u] |= 1ull << (d % 64u);
            q->scale = (float)(sumabs / (double)dim);
            q->fn = dist_bin_hamming;
        } else {
            float levels = (float)((1u << bits) - 1u);
            float delta = (hi - lo) / levels;
            float inv = delta > 0.0f ? 1.0f / delta : 0.0f;
            uint64_t sumu = 0;
            for (size_t d = 0; d < dim; d++) {
                float v = (q->qf[d] - lo) * inv + 0.5f;
                v = v < levels ? v : levels; /* v >= 0.5: v - lo >= 0 */
                unsigned u = (unsigned)v;
                sumu += u;
                /* Without branches: the bits are random, a branch would mispredict. */
                for (unsigned j = 0; j < bits; j++)
                    q->planes[j * c->words + d / 64u] |= (uint64_t)((u >> j) & 1u) << (d % 64u);
            }
            q->base = lo;
            q->scale = delta;
            q->sumu = (float)sumu;
            q->fn = dist_bin_planes;
        }
        free(q->qf);
        q->qf = NULL;
    } else {
        q->qf = malloc(dim * sizeof(float));
        if (!q->qf) goto nomem;
        q->qsq = (float)dot_d(qv, qv, dim);
        if (c->kind == FANNS_CODEC_F16) {
            memcpy(q->qf, qv, dim * sizeof(float));
            q->fn = dist_f16;
        } else if (c->metric == FANNS_METRIC_MANHATTAN) {
            for (size_t d = 0; d < dim; d++) q->qf[d] = qv[d] - c->lo[d];
            q->fn = dist_sq8_l1;
        } else {
            /* The query is finite (checked above): plain comparisons instead of fmaxf and
             * fminf, which are library calls, and loops the compiler vectorizes. */
            float wmax = 0.0f;
            for (size_t d = 0; d < dim; d++) {
                float f = qv[d] * c->step[d], a = fabsf(f);
                q->qf[d] = f;
                wmax = a > wmax ? a : wmax;
            }
            q->qlo = (float)dot_d(qv, c->lo, dim);
            if (bits == 32) {
                q->fn = dist_sq8_float;
            } else {
                q->qi = malloc(dim);
                if (!q->qi) goto nomem;
                float s = wmax / 127.0f, inv = wmax > 0.0f ? 127.0f / wmax : 0.0f;
                for (size_t d = 0; d < dim; d++) {
                    /* Rounded half away from zero and clamped, without branches (the
                     * signs are random: a branch mispredicts half the time). */
                    float v = q->qf[d] * inv;
                    v += copysignf(0.5f, v);
                    v = v < 127.0f ? v : 127.0f;
                    v = v > -127.0f ? v : -127.0f;
                    q->qi[d] = (int8_t)(int)v;
                }
                q->scale = s;
                q->fn = dist_sq8_int8;
            }
        }
    }
    *out = q;
    return 0;
nomem:
    fanns_codec_query_free(q);
    return fanns_err_set(err, FANNS_ENOMEM, NULL, "out of memory preparing a query");
}

void fanns_codec_query_free(fanns_codec_query_t *q) {
    if (!q) return;
    free(q->qf);
    free(q->qi);
    free(q->planes);
    free(q->table);
    free(q);
}

unsigned fanns_codec_query_bits(const fanns_codec_query_t *q) { return q->bits; }

float fanns_codec_distance(const fanns_codec_query_t *q, const uint8_t *code) { return q->fn(q, code); }

void fanns_codec_distance_batch(const fanns_codec_query_t *q, size_t n, const uint8_t *codes, float *out) {
    if (q->c->kind == FANNS_CODEC_PQ) {
        fanns__codec_k.pq_batch(q->table, q->c->pq_m, codes, n, out);
        if (q->base != 0.0f)
            for (size_t i = 0; i < n; i++) out[i] += q->base;
        return;
    }
    size_t cs = q->c->code_size;
    query_fn fn = q->fn;
    for (size_t i = 0; i < n; i++) {
        if (i + 2 < n) __builtin_prefetch(codes + (i + 2) * cs);
        out[i] = fn(q, codes + i * cs);
    }
}
