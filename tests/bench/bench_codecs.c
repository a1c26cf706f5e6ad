/*
 * bench_codecs.c: the in-process benchmark of fanns's compressed vector codes (index/codec.h:
 * F16, SQ8, BIN; index/faiss/faiss_codec.h: PQ and OPQ through FAISS), run by run_codecs.py.
 *
 * For each codec configuration it trains on a sample of the base vectors, encodes all of them,
 * then for every query scans all codes (a flat scan: the estimated distance to every code, the
 * best K = k * max oversampling kept), reports recall@k of the estimated top k ("raw"), and
 * rescoring: the first k * s candidates re-ranked by their exact float32 distance
 * (index/distance.h) for each oversampling s.  QPS per oversampling is single-thread whole
 * passes over the queries of scan + selection + rescoring (best pass; the scan is timed once
 * per query and pass, each rescoring separately, so every oversampling is charged the same
 * scan).  Prints one JSON line per configuration, plus "info" and "memory" lines.
 *
 * Metric: Cosine (the workload's vectors are unit length; they are normalised again here as
 * the server does at write time), so distances are 1 - dot, "smaller is better", the scale of
 * codec.h's estimates.
 *
 * PQ/OPQ distances: faiss_codec.h only encodes and decodes, so the asymmetric distance (ADC)
 * is computed here from what decode reveals.  A FAISS 8-bit PQ code has one byte per
 * sub-quantizer, and its decoder (with or without the OPQ rotation) is linear and additive:
 * decode(c) = b + sum_m w[m][c[m]], with b = decode(all zero bytes) and w[m][j] = decode(byte m
 * = j, others 0) - b.  The w[m][*] of one sub-quantizer span a small subspace (dsub dims,
 * rotated for OPQ), so an orthonormal basis B_m is found by Gram-Schmidt and each w[m][j]
 * stored as its coordinates in B_m.  A query then costs one projection (dim x dim) plus a
 * 256-entry table per sub-quantizer, and a code M table look-ups: the standard PQ ADC scan
 * (Jegou et al., TPAMI 2011).  The table is checked against dot(q, decode(code)) on the first
 * codes of the first query (adc_check_max_err in the output; above 1e-3 aborts).
 *
 * Graph mode (--graph): for the codecs a graph can hold (F16, SQ8, BIN: index/hnsw.h's
 * params.codec; PQ is not a graph codec and is refused), one fanns_hnsw graph per codec
 * (M and ef_construction as hnswlib's reference, 16 and 200; built with
 * fanns_hnsw_insert_many on all cores, timed) whose nodes hold the codes, plus a float32 graph
 * (config f32: params.codec NULL) as the same-binary reference.  For each oversampling s and
 * each ef the search asks the graph for K = k * s candidates with beam max(ef, K) (estimated
 * distances on the codes, the query prepared at the config's query_bits), then rescores them
 * with exact float32 distances (index/distance.h) and keeps the best k.  Beams that collapse
 * to the same max(ef, K) are measured once.  BIN graphs take their own oversampling and ef
 * lists (--bin-oversampling, --bin-ef): 1-bit codes need many more candidates.  Recall@k raw (the graph's own top k) and rescored
 * come from an untimed pass; QPS is whole single-thread passes over the queries through
 * bench_common.h's bench_run_ef (best and median pass), so a point costs what one request
 * costs: traversal plus rescoring.  Configs that share a codec kind and flags share one graph:
 * construction does not depend on query_bits, so the built graph is saved to a temporary file
 * and loaded again with the next config's query_bits.  One "graph" JSON line per config.
 *
 * Memory: bytes per vector (code size), the codec's own state (serialized size: ranges, centre,
 * codebooks), the RSS growth while the codes were encoded, and the process's peak RSS (which
 * includes the float32 base vectors kept for rescoring).
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* bench_common.h is shared with the HNSW harness; this program uses only its .npy reader,
 * clock, recall and RSS helpers, so its other static functions are unused here. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "bench_common.h"
#pragma GCC diagnostic pop
#include "codec.h"
#include "distance.h"
#include "err.h"
#include "faiss_codec.h"
#include "hnsw.h"

#define MAX_OS 8
#define MAX_CAND 1024

enum { FAM_F32, FAM_NATIVE, FAM_PQ };

typedef struct cfg {
    const char *name;
    int family;
    fanns_codec_kind_t kind; /* FAM_NATIVE */
    uint32_t flags;
    unsigned qbits;
    unsigned ratio; /* FAM_PQ: compression vs float32 */
    bool opq;
} cfg_t;

static const cfg_t CONFIGS[] = {
    {"f32", FAM_F32, 0, 0, 0, 1, false},
    {"f16", FAM_NATIVE, FANNS_CODEC_F16, 0, 32, 0, false},
    {"sq8-q8", FAM_NATIVE, FANNS_CODEC_SQ8, 0, 8, 0, false},
    {"sq8-q32", FAM_NATIVE, FANNS_CODEC_SQ8, 0, 32, 0, false},
    {"sq8g-q8", FAM_NATIVE, FANNS_CODEC_SQ8, FANNS_CODEC_SQ8_GLOBAL, 8, 0, false},
    {"sq8g-q32", FAM_NATIVE, FANNS_CODEC_SQ8, FANNS_CODEC_SQ8_GLOBAL, 32, 0, false},
    {"bin-q1", FAM_NATIVE, FANNS_CODEC_BIN, 0, 1, 0, false},
    {"bin-q4", FAM_NATIVE, FANNS_CODEC_BIN, 0, 4, 0, false},
    {"bin-q8", FAM_NATIVE, FANNS_CODEC_BIN, 0, 8, 0, false},
    {"pq16", FAM_PQ, 0, 0, 0, 16, false},
    {"pq32", FAM_PQ, 0, 0, 0, 32, false},
    {"pq64", FAM_PQ, 0, 0, 0, 64, false},
    {"opq16", FAM_PQ, 0, 0, 0, 16, true},
    {"opq32", FAM_PQ, 0, 0, 0, 32, true},
    {"opq64", FAM_PQ, 0, 0, 0, 64, true},
};
#define NCONFIGS (sizeof(CONFIGS) / sizeof(CONFIGS[0]))
static const char *DEFAULT_CONFIGS = "f32,f16,sq8-q8,sq8-q32,sq8g-q8,sq8g-q32,bin-q1,bin-q4,bin-q8,pq16,pq32,pq64";
static const char *DEFAULT_GRAPH_CONFIGS = "f32,f16,sq8-q8,sq8-q32,bin-q4";

#define MAX_EF 32

typedef struct opts {
    const char *base, *queries, *gt, *configs;
    unsigned k, reps;
    size_t train_n, pq_train_n, nos, os[MAX_OS];
    double min_time;
    /* --graph */
    bool graph;
    unsigned m, efc, threads;
    size_t nef, efs[MAX_EF], nbos, bos[MAX_OS]; /* bos: oversampling for BIN graphs */
    size_t nbef, befs[MAX_EF];                   /* befs: ef for BIN graphs */
} opts_t;

/* PQ asymmetric distance tables recovered from the decoder (see the file comment). */
typedef struct adc {
    size_t m, dim;
    float *base;   /* decode(0): dim */
    size_t *rank;  /* per sub-quantizer: basis size */
    size_t *boff;  /* per sub-quantizer: first basis row */
    float *basis;  /* dim rows of dim floats at most (sum of ranks <= dim) */
    float *coef;   /* per sub-quantizer: 256 x rank, at coff */
    size_t *coff;
    float *lut;    /* scratch: m * 256 */
    float *proj;   /* scratch: dim */
} adc_t;

typedef struct coder {
    const cfg_t *cfg;
    size_t n, dim, code_size, state_bytes;
    const float *base; /* normalised float32 base vectors (rescoring, and the f32 "codes") */
    uint8_t *codes;    /* n * code_size; NULL for f32 */
    fanns_codec_t *nc;
    fanns_faiss_codec_t *fc;
    char factory[64];
    adc_t adc;
} coder_t;

/* ---- PQ ADC ---- */

static void adc_free(adc_t *a) {
    free(a->base);
    free(a->rank);
    free(a->boff);
    free(a->basis);
    free(a->coef);
    free(a->coff);
    free(a->lut);
    free(a->proj);
    memset(a, 0, sizeof(*a));
}

/* Builds the tables for a trained FAISS codec with m one-byte sub-quantizers.  Returns 0 or -1. */
static int adc_build(adc_t *a, const fanns_faiss_codec_t *fc, size_t m, size_t dim) {
    fanns_err_t err = {0};
    uint8_t *codes = NULL;
    float *dec = NULL;
    double *gs = NULL;
    size_t rows = 0;
    memset(a, 0, sizeof(*a));
    a->m = m;
    a->dim = dim;
    a->base = calloc(dim, sizeof(float));
    a->rank = calloc(m, sizeof(size_t));
    a->boff = calloc(m, sizeof(size_t));
    a->coff = calloc(m, sizeof(size_t));
    a->basis = calloc(dim * dim, sizeof(float));
    a->lut = calloc(m * 256, sizeof(float));
    a->proj = calloc(dim, sizeof(float));
    codes = calloc(256 * m, 1);
    dec = calloc(256 * dim, sizeof(float));
    gs = calloc((dim + 256) * dim, sizeof(double)); /* this sub-quantizer's basis, then 256 residuals */
    if (!a->base || !a->rank || !a->boff || !a->coff || !a->basis || !a->lut || !a->proj || !codes || !dec || !gs)
        goto fail;
    if (fanns_faiss_codec_decode(fc, 1, codes, a->base, &err)) goto fail;
    /* coefficients are stored after all bases are known; keep them in double per sub-quantizer
     * first: at most 256 x dim */
    size_t coef_cap = 256 * dim, coef_len = 0;
    a->coef = calloc(coef_cap, sizeof(float));
    if (!a->coef) goto fail;
    for (size_t s = 0; s < m; s++) {
        memset(codes, 0, 256 * m);
        for (size_t j = 0; j < 256; j++) codes[j * m + s] = (uint8_t)j;
        if (fanns_faiss_codec_decode(fc, 256, codes, dec, &err)) goto fail;
        for (size_t j = 0; j < 256; j++)
            for (size_t d = 0; d < dim; d++) dec[j * dim + d] -= a->base[d];
        double maxn = 0;
        for (size_t j = 1; j < 256; j++) {
            double nn = 0;
            for (size_t d = 0; d < dim; d++) nn += (double)dec[j * dim + d] * dec[j * dim + d];
            if (nn > maxn) maxn = nn;
        }
        /* Gram-Schmidt with pivoting: the residual of largest norm becomes the next basis
         * vector, until every residual is float noise (norm below 1e-3 of the largest w; the
         * real directions are ~1e6 above the noise, and adc_check verifies the result). */
        size_t r = 0;
        double *res = gs + dim * dim; /* 256 residual rows */
        for (size_t j = 0; j < 256; j++)
            for (size_t d = 0; d < dim; d++) res[j * dim + d] = dec[j * dim + d];
        while (maxn > 0) {
            size_t piv = 0;
            double pn = -1;
            for (size_t j = 1; j < 256; j++) {
                double nn = 0;
                for (size_t d = 0; d < dim; d++) nn += res[j * dim + d] * res[j * dim + d];
                if (nn > pn) pn = nn, piv = j;
            }
            if (pn <= 1e-6 * maxn) break;
            if (rows + r >= dim) {
                fprintf(stderr, "PQ decoder is not additive over sub-quantizer subspaces (rank > dim)\n");
                goto fail;
            }
            double *q = gs + r * dim; /* row r of this sub-quantizer's basis */
            double inv = 1.0 / sqrt(pn);
            for (size_t d = 0; d < dim; d++) q[d] = res[piv * dim + d] * inv;
            for (size_t i = 0; i < r; i++) { /* re-orthogonalise against the earlier rows */
                double p = 0;
                for (size_t d = 0; d < dim; d++) p += q[d] * gs[i * dim + d];
                for (size_t d = 0; d < dim; d++) q[d] -= p * gs[i * dim + d];
            }
            double qn = 0;
            for (size_t d = 0; d < dim; d++) qn += q[d] * q[d];
            qn = 1.0 / sqrt(qn);
            for (size_t d = 0; d < dim; d++) q[d] *= qn;
            for (size_t j = 1; j < 256; j++) {
                double p = 0;
                for (size_t d = 0; d < dim; d++) p += res[j * dim + d] * q[d];
                for (size_t d = 0; d < dim; d++) res[j * dim + d] -= p * q[d];
            }
            r++;
        }
        a->rank[s] = r;
        a->boff[s] = rows;
        a->coff[s] = coef_len;
        if (coef_len + 256 * r > coef_cap) {
            fprintf(stderr, "PQ decomposition: coefficient table overflow\n");
            goto fail;
        }
        for (size_t i = 0; i < r; i++)
            for (size_t d = 0; d < dim; d++) a->basis[(rows + i) * dim + d] = (float)gs[i * dim + d];
        for (size_t j = 0; j < 256; j++)
            for (size_t i = 0; i < r; i++) {
                double p = 0;
                for (size_t d = 0; d < dim; d++) p += (double)dec[j * dim + d] * gs[i * dim + d];
                a->coef[coef_len + j * r + i] = j ? (float)p : 0.0f;
            }
        coef_len += 256 * r;
        rows += r;
    }
    free(codes);
    free(dec);
    free(gs);
    return 0;
fail:
    if (err.msg[0]) fprintf(stderr, "adc: %s\n", err.msg);
    free(codes);
    free(dec);
    free(gs);
    adc_free(a);
    return -1;
}

/* Fills a->lut for query q; returns dot(q, decode(0)). */
static float adc_prepare(adc_t *a, const float *q) {
    size_t dim = a->dim;
    for (size_t s = 0; s < a->m; s++) {
        size_t r = a->rank[s];
        const float *B = a->basis + a->boff[s] * dim, *C = a->coef + a->coff[s];
        float *lut = a->lut + s * 256;
        for (size_t i = 0; i < r; i++) a->proj[i] = fanns_dist_dot(B + i * dim, q, dim);
        for (size_t j = 0; j < 256; j++) {
            float v = 0;
            for (size_t i = 0; i < r; i++) v += a->proj[i] * C[j * r + i];
            lut[j] = v;
        }
    }
    return fanns_dist_dot(a->base, q, dim);
}

/* dot(q, decode(code)) from the tables prepared for q. */
static inline float adc_dot(const adc_t *a, float qb, const uint8_t *code) {
    const float *lut = a->lut;
    size_t m = a->m, s = 0;
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (; s + 4 <= m; s += 4) {
        s0 += lut[(s + 0) * 256 + code[s + 0]];
        s1 += lut[(s + 1) * 256 + code[s + 1]];
        s2 += lut[(s + 2) * 256 + code[s + 2]];
        s3 += lut[(s + 3) * 256 + code[s + 3]];
    }
    for (; s < m; s++) s0 += lut[s * 256 + code[s]];
    return qb + (s0 + s1) + (s2 + s3);
}

/* ---- candidate selection ---- */

typedef struct cand {
    float d;
    uint32_t id;
} cand_t;

/* Max-heap on d of at most cap entries: keeps the cap smallest. */
static void heap_push(cand_t *h, size_t *n, size_t cap, float d, uint32_t id) {
    size_t i;
    if (*n < cap) {
        i = (*n)++;
        while (i > 0 && h[(i - 1) / 2].d < d) {
            h[i] = h[(i - 1) / 2];
            i = (i - 1) / 2;
        }
        h[i] = (cand_t){d, id};
        return;
    }
    if (d >= h[0].d) return;
    i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, c = i;
        float cd = d;
        if (l < *n && h[l].d > cd) c = l, cd = h[l].d;
        if (r < *n && h[r].d > cd) c = r;
        if (c == i) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = (cand_t){d, id};
}

static int cmp_cand(const void *a, const void *b) {
    const cand_t *x = a, *y = b;
    if (x->d != y->d) return x->d < y->d ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* The flat scan: the K best codes for q by estimated distance, sorted, into out[0..K).  dist
 * is scratch of n floats.  (Graph mode will be a second function with this contract.) */
static int candidates_flat(coder_t *c, const float *q, size_t K, float *dist, cand_t *out) {
    size_t n = c->n, dim = c->dim, h = 0;
    fanns_err_t err = {0};
    switch (c->cfg->family) {
    case FAM_F32:
        for (size_t i = 0; i < n; i++) dist[i] = 1.0f - fanns_dist_dot(q, c->base + i * dim, dim);
        break;
    case FAM_NATIVE: {
        fanns_codec_query_t *cq = NULL;
        if (fanns_codec_query_new(c->nc, q, c->cfg->qbits, &cq, &err)) {
            fprintf(stderr, "%s: query: %s\n", c->cfg->name, err.msg);
            return -1;
        }
        fanns_codec_distance_batch(cq, n, c->codes, dist);
        fanns_codec_query_free(cq);
        break;
    }
    default: {
        float qb = adc_prepare(&c->adc, q);
        size_t cs = c->code_size;
        for (size_t i = 0; i < n; i++) dist[i] = 1.0f - adc_dot(&c->adc, qb, c->codes + i * cs);
        break;
    }
    }
    for (size_t i = 0; i < n; i++) heap_push(out, &h, K, dist[i], (uint32_t)i);
    qsort(out, h, sizeof(cand_t), cmp_cand);
    return h == K ? 0 : -1;
}

/* Rescoring: exact distances of the first m candidates; the best k ids into ids (sorted). */
static void rescore(const coder_t *c, const float *q, const cand_t *cand, size_t m, size_t k, long long *ids) {
    cand_t best[MAX_CAND];
    size_t h = 0;
    for (size_t i = 0; i < m; i++)
        heap_push(best, &h, k, 1.0f - fanns_dist_dot(q, c->base + (size_t)cand[i].id * c->dim, c->dim), cand[i].id);
    qsort(best, h, sizeof(cand_t), cmp_cand);
    for (size_t i = 0; i < h; i++) ids[i] = best[i].id;
}

/* ---- codec set-up ---- */

static void coder_free(coder_t *c) {
    fanns_codec_free(c->nc);
    fanns_faiss_codec_free(c->fc);
    adc_free(&c->adc);
    free(c->codes);
    memset(c, 0, sizeof(*c));
}

/* A sample of at most want rows of base, evenly strided (the whole base when want >= n).
 * *owned is set when the sample is a new buffer. */
static const float *sample(const float *base, size_t n, size_t dim, size_t want, size_t *got, float **owned) {
    *owned = NULL;
    if (want == 0 || want >= n) {
        *got = n;
        return base;
    }
    float *s = malloc(want * dim * sizeof(float));
    if (!s) return NULL;
    for (size_t i = 0; i < want; i++) memcpy(s + i * dim, base + (i * n / want) * dim, dim * sizeof(float));
    *owned = s;
    *got = want;
    return s;
}

/* Trains and encodes; fills the timing fields.  Returns 0 or -1. */
static int coder_setup(coder_t *c, const cfg_t *cfg, const opts_t *o, const float *base, size_t n, size_t dim,
                       double *train_s, double *encode_s, size_t *train_n, long long *rss_delta) {
    fanns_err_t err = {0};
    float *owned = NULL;
    memset(c, 0, sizeof(*c));
    c->cfg = cfg;
    c->n = n;
    c->dim = dim;
    c->base = base;
    *train_s = *encode_s = 0;
    *train_n = 0;
    *rss_delta = 0;
    if (cfg->family == FAM_F32) {
        c->code_size = dim * sizeof(float);
        return 0;
    }
    const float *ts = sample(base, n, dim, cfg->family == FAM_PQ ? o->pq_train_n : o->train_n, train_n, &owned);
    if (!ts) goto fail;
    double t0 = bench_now();
    if (cfg->family == FAM_NATIVE) {
        fanns_codec_params_t p = {.kind = cfg->kind, .dim = (uint32_t)dim, .metric = FANNS_METRIC_COSINE,
                                  .flags = cfg->flags};
        if (fanns_codec_new(&p, &c->nc, &err)) goto fail;
        if (fanns_codec_train(c->nc, *train_n, ts, &err)) goto fail;
        c->code_size = fanns_codec_code_size(c->nc);
        uint8_t *buf = NULL;
        size_t len = 0;
        if (fanns_codec_serialize(c->nc, &buf, &len, &err)) goto fail;
        free(buf);
        c->state_bytes = len;
    } else {
        size_t m = 4 * dim / cfg->ratio;
        if (m == 0 || (4 * dim) % cfg->ratio || dim % m) {
            fprintf(stderr, "%s: dim %zu cannot be split into %zu sub-quantizers\n", cfg->name, dim, m);
            goto fail;
        }
        if (cfg->opq)
            snprintf(c->factory, sizeof(c->factory), "OPQ%zu,PQ%zux8", m, m);
        else
            snprintf(c->factory, sizeof(c->factory), "PQ%zux8", m);
        if (fanns_faiss_codec_new(c->factory, dim, FANNS_METRIC_COSINE, &c->fc, &err)) goto fail;
        if (fanns_faiss_codec_train(c->fc, *train_n, ts, &err)) goto fail;
        c->code_size = fanns_faiss_codec_code_size(c->fc);
        if (c->code_size != m) {
            fprintf(stderr, "%s: code size %zu, expected %zu\n", cfg->name, c->code_size, m);
            goto fail;
        }
        uint8_t *buf = NULL;
        size_t len = 0;
        if (fanns_faiss_codec_serialize(c->fc, &buf, &len, &err)) goto fail;
        free(buf);
        c->state_bytes = len;
    }
    *train_s = bench_now() - t0;
    free(owned);
    owned = NULL;
    long long rss0 = bench_cur_rss();
    c->codes = malloc(n * c->code_size);
    if (!c->codes) goto fail;
    t0 = bench_now();
    if (cfg->family == FAM_NATIVE ? fanns_codec_encode(c->nc, n, base, c->codes, &err)
                                  : fanns_faiss_codec_encode(c->fc, n, base, c->codes, &err))
        goto fail;
    *encode_s = bench_now() - t0;
    *rss_delta = bench_cur_rss() - rss0;
    if (cfg->family == FAM_PQ && adc_build(&c->adc, c->fc, c->code_size, dim)) goto fail;
    return 0;
fail:
    if (err.msg[0]) fprintf(stderr, "%s: %s\n", cfg->name, err.msg);
    free(owned);
    coder_free(c);
    return -1;
}

/* Largest |dot(q, decode(code)) - ADC estimate| over the first codes, for query q. */
static double adc_check(coder_t *c, const float *q) {
    float dec[65536 / 4];
    fanns_err_t err = {0};
    double worst = 0;
    if (c->dim > sizeof(dec) / sizeof(dec[0])) return 0;
    float qb = adc_prepare(&c->adc, q);
    for (size_t i = 0; i < 200 && i < c->n; i++) {
        if (fanns_faiss_codec_decode(c->fc, 1, c->codes + i * c->code_size, dec, &err)) return INFINITY;
        double e = fabs((double)fanns_dist_dot(q, dec, c->dim) - adc_dot(&c->adc, qb, c->codes + i * c->code_size));
        if (e > worst) worst = e;
    }
    return worst;
}

/* ---- one configuration ---- */

static int run_config(const cfg_t *cfg, const opts_t *o, const bench_npy_t *base, const bench_npy_t *qs,
                      const bench_npy_t *gt) {
    coder_t c;
    double train_s, encode_s;
    size_t train_n, n = base->rows, dim = base->cols, nq = qs->rows, k = o->k;
    long long rss_delta;
    size_t K = k * o->os[o->nos - 1];
    float *dist = NULL;
    cand_t *cand = NULL;
    long long ids[MAX_CAND];
    long hits_raw = 0, hits[MAX_OS] = {0}, possible = 0;
    double best_raw = INFINITY, best_os[MAX_OS], adc_err = 0;
    int rc = -1;
    const float *qv = qs->data;
    const int32_t *g = gt->data;
    for (size_t i = 0; i < MAX_OS; i++) best_os[i] = INFINITY;

    if (coder_setup(&c, cfg, o, base->data, n, dim, &train_s, &encode_s, &train_n, &rss_delta)) return -1;
    dist = malloc(n * sizeof(float));
    cand = malloc(K * sizeof(cand_t));
    if (!dist || !cand) goto done;
    if (cfg->family == FAM_PQ) {
        adc_err = adc_check(&c, qv);
        if (!(adc_err <= 1e-3)) {
            fprintf(stderr, "%s: ADC tables disagree with decode (max error %g)\n", cfg->name, adc_err);
            goto done;
        }
    }
    double t_start = bench_now();
    for (unsigned pass = 0; pass < 1000 && (pass < o->reps || bench_now() - t_start < o->min_time); pass++) {
        double t_raw = 0, t_os[MAX_OS] = {0};
        for (size_t qi = 0; qi < nq; qi++) {
            const float *q = qv + qi * dim;
            double t0 = bench_now();
            if (candidates_flat(&c, q, K, dist, cand)) goto done;
            double t1 = bench_now();
            t_raw += t1 - t0;
            if (pass == 0) {
                long long raw[MAX_CAND];
                for (size_t i = 0; i < k; i++) raw[i] = cand[i].id;
                hits_raw += bench_hits(g + qi * gt->cols, k, raw, k);
                for (size_t j = 0; j < k; j++) possible += g[qi * gt->cols + j] >= 0;
            }
            for (size_t s = 0; s < o->nos; s++) {
                double r0 = bench_now();
                rescore(&c, q, cand, k * o->os[s], k, ids);
                t_os[s] += bench_now() - r0;
                if (pass == 0) hits[s] += bench_hits(g + qi * gt->cols, k, ids, k);
            }
        }
        if (t_raw < best_raw) best_raw = t_raw;
        for (size_t s = 0; s < o->nos; s++)
            if (t_raw + t_os[s] < best_os[s]) best_os[s] = t_raw + t_os[s];
    }
    double pf = possible ? (double)possible : 1.0;
    printf("{\"kind\":\"codec\",\"codec\":\"%s\",\"family\":\"%s\",\"query_bits\":%u,\"factory\":\"%s\","
           "\"n\":%zu,\"dim\":%zu,\"nq\":%zu,\"k\":%zu,\"train_n\":%zu,\"bytes_per_vector\":%zu,\"ratio\":%.3f,"
           "\"codec_state_bytes\":%zu,\"train_s\":%.3f,\"encode_s\":%.3f,\"rss_codes_delta_bytes\":%lld,"
           "\"rss_bytes\":%lld,\"adc_check_max_err\":%.2e,\"recall_raw\":%.4f,\"qps_raw\":%.1f,\"oversampling\":[",
           cfg->name, cfg->family == FAM_F32 ? "f32" : cfg->family == FAM_PQ ? (cfg->opq ? "opq" : "pq")
                      : cfg->kind == FANNS_CODEC_F16 ? "f16" : cfg->kind == FANNS_CODEC_SQ8 ? "sq8" : "bin",
           cfg->qbits, c.factory, n, dim, nq, k, train_n, c.code_size, (double)(dim * 4) / (double)c.code_size,
           c.state_bytes, train_s, encode_s, rss_delta, bench_cur_rss(), adc_err, hits_raw / pf, nq / best_raw);
    for (size_t s = 0; s < o->nos; s++) printf("%s%zu", s ? "," : "", o->os[s]);
    printf("],\"recall\":[");
    for (size_t s = 0; s < o->nos; s++) printf("%s%.4f", s ? "," : "", hits[s] / pf);
    printf("],\"qps\":[");
    for (size_t s = 0; s < o->nos; s++) printf("%s%.1f", s ? "," : "", nq / best_os[s]);
    printf("]}\n");
    fflush(stdout);
    rc = 0;
done:
    free(dist);
    free(cand);
    coder_free(&c);
    return rc;
}

/* ---- graph mode ---- */

typedef struct gstate {
    const cfg_t *cfg;      /* config the graph was built for (its kind and flags) */
    fanns_codec_t *codec;  /* NULL for the float32 graph */
    fanns_hnsw_t *h;
    unsigned qbits;        /* query_bits the graph was opened with */
    double train_s, encode_s, build_s;
    long long rss_delta;   /* RSS growth while the graph was built */
    bool graph_ok;
} gstate_t;

static void gstate_free(gstate_t *g) {
    fanns_hnsw_free(g->h);
    fanns_codec_free(g->codec);
    memset(g, 0, sizeof(*g));
}

typedef struct gvec {
    const float *base;
    size_t dim;
} gvec_t;

static const float *gvec_of(void *ctx, uint32_t off) {
    const gvec_t *v = ctx;
    return v->base + (size_t)off * v->dim;
}

typedef struct gsearch {
    fanns_hnsw_t *h;
    const float *base;
    size_t dim, os;
    bool rescore; /* false: the graph's own top k (raw) */
} gsearch_t;

/* bench_search_fn: K = k * os candidates from the graph with beam max(ef, K), then (rescore)
 * the best k of them by exact float32 distance. */
static int gsearch(void *ctx, const float *q, size_t k, size_t ef, long long *ids, size_t *n) {
    gsearch_t *g = ctx;
    fanns_hnsw_result_t res[MAX_CAND];
    size_t K = k * g->os, got = 0;
    if (K > MAX_CAND || fanns_hnsw_search(g->h, q, K, ef < K ? K : ef, NULL, NULL, res, &got, NULL)) return -1;
    if (!g->rescore) {
        *n = got < k ? got : k;
        for (size_t i = 0; i < *n; i++) ids[i] = res[i].off;
        return 0;
    }
    cand_t best[MAX_CAND];
    size_t hn = 0;
    for (size_t i = 0; i < got; i++)
        heap_push(best, &hn, k, 1.0f - fanns_dist_dot(q, g->base + (size_t)res[i].off * g->dim, g->dim), res[i].off);
    qsort(best, hn, sizeof(cand_t), cmp_cand);
    for (size_t i = 0; i < hn; i++) ids[i] = best[i].id;
    *n = hn;
    return 0;
}

/* Builds the graph for cfg into g (replacing what g held), or re-opens g's graph with cfg's
 * query_bits when g was built for the same codec.  Returns 0 or -1. */
static int graph_prepare(gstate_t *g, const cfg_t *cfg, const opts_t *o, const float *base, size_t n, size_t dim,
                         bool *reused) {
    fanns_err_t err = {0};
    fanns_hnsw_params_t p = {.dim = (uint32_t)dim, .metric = FANNS_METRIC_COSINE, .m = o->m,
                             .ef_construct = o->efc, .seed = 100, .query_bits = cfg->qbits};
    *reused = false;
    if (g->h && g->cfg->family == cfg->family && g->cfg->kind == cfg->kind && g->cfg->flags == cfg->flags) {
        *reused = true;
        if (g->qbits == cfg->qbits) return 0;
        /* same graph, other query precision: params.query_bits is fixed at creation, and
         * construction does not use it, so a save/load round trip re-opens the same graph */
        char path[256];
        const char *dir = getenv("TMPDIR");
        snprintf(path, sizeof(path), "%s/bench_codecs_graph_%ld.hnsw", dir && *dir ? dir : "/tmp", (long)getpid());
        fanns_hnsw_t *h2 = NULL;
        uint64_t stamp = 0;
        p.codec = g->codec;
        int rc = fanns_hnsw_save(g->h, path, 1, &err);
        if (!rc) rc = fanns_hnsw_load(path, &p, &h2, &stamp, &err);
        unlink(path);
        if (rc || fanns_hnsw_count(h2) != n) {
            fprintf(stderr, "%s: re-opening the graph: %s\n", cfg->name, err.msg);
            fanns_hnsw_free(h2);
            return -1;
        }
        fanns_hnsw_free(g->h);
        g->h = h2;
        g->cfg = cfg;
        g->qbits = cfg->qbits;
        return 0;
    }
    gstate_free(g);
    g->cfg = cfg;
    g->qbits = cfg->qbits;
    if (cfg->family == FAM_NATIVE) {
        size_t train_n;
        float *owned = NULL;
        const float *ts = sample(base, n, dim, o->train_n, &train_n, &owned);
        fanns_codec_params_t cp = {.kind = cfg->kind, .dim = (uint32_t)dim, .metric = FANNS_METRIC_COSINE,
                                   .flags = cfg->flags};
        double t0 = bench_now();
        int rc = !ts || fanns_codec_new(&cp, &g->codec, &err) || fanns_codec_train(g->codec, train_n, ts, &err);
        g->train_s = bench_now() - t0;
        free(owned);
        if (rc) goto fail;
        /* encoding time of all vectors on one thread (the build encodes each node again) */
        uint8_t *codes = malloc(n * fanns_codec_code_size(g->codec));
        if (!codes) goto fail;
        t0 = bench_now();
        rc = fanns_codec_encode(g->codec, n, base, codes, &err);
        g->encode_s = bench_now() - t0;
        free(codes);
        if (rc) goto fail;
        p.codec = g->codec;
    }
    long long rss0 = bench_cur_rss();
    if (fanns_hnsw_new(&p, &g->h, &err)) goto fail;
    uint32_t *offs = malloc(n * sizeof(uint32_t));
    if (!offs) goto fail;
    for (size_t i = 0; i < n; i++) offs[i] = (uint32_t)i;
    gvec_t gv = {base, dim};
    double t0 = bench_now();
    int rc = fanns_hnsw_insert_many(g->h, offs, n, gvec_of, &gv, (int)o->threads, &err);
    g->build_s = bench_now() - t0;
    free(offs);
    if (rc) goto fail;
    g->rss_delta = bench_cur_rss() - rss0;
    if (fanns_hnsw_count(g->h) != n) {
        fprintf(stderr, "%s: graph holds %zu nodes, expected %zu\n", cfg->name, fanns_hnsw_count(g->h), n);
        goto fail;
    }
    fanns_err_t cerr = {0};
    g->graph_ok = fanns_hnsw_check(g->h, &cerr) == 0;
    if (!g->graph_ok) fprintf(stderr, "%s: graph check failed: %s\n", cfg->name, cerr.msg);
    return 0;
fail:
    if (err.msg[0]) fprintf(stderr, "%s: %s\n", cfg->name, err.msg);
    gstate_free(g);
    return -1;
}

typedef struct gpoint {
    size_t os, ef, beam;
    double recall_raw;
    bench_point_t pt; /* rescored recall and QPS */
} gpoint_t;

/* Recall@k of gsearch over all queries (one untimed pass).  Returns 0 or -1. */
static int graph_recall(gsearch_t *gs, const bench_npy_t *qs, const bench_npy_t *gt, size_t k, size_t beam,
                        double *recall) {
    long long ids[MAX_CAND];
    long hits = 0, possible = 0;
    const float *qv = qs->data;
    const int32_t *g = gt->data;
    for (size_t i = 0; i < qs->rows; i++) {
        size_t got;
        if (gsearch(gs, qv + i * qs->cols, k, beam, ids, &got)) return -1;
        hits += bench_hits(g + i * gt->cols, k, ids, got);
        for (size_t j = 0; j < k; j++) possible += g[i * gt->cols + j] >= 0;
    }
    *recall = possible ? (double)hits / (double)possible : 1.0;
    return 0;
}

static int run_graph_config(const cfg_t *cfg, const opts_t *o, const bench_npy_t *base, const bench_npy_t *qs,
                            const bench_npy_t *gt, gstate_t *g) {
    size_t n = base->rows, dim = base->cols, nq = qs->rows, k = o->k;
    bool reused;
    if (cfg->family == FAM_PQ) {
        fprintf(stderr, "%s: PQ codes are not a graph codec (FAISS); measured by the flat scan only\n", cfg->name);
        return -1;
    }
    if (graph_prepare(g, cfg, o, base->data, n, dim, &reused)) return -1;
    size_t code_size = g->codec ? fanns_codec_code_size(g->codec) : dim * sizeof(float);
    unsigned qbits_used = 32;
    if (g->codec) { /* the precision the codec resolves query_bits to */
        fanns_codec_query_t *cq = NULL;
        fanns_err_t err = {0};
        if (fanns_codec_query_new(g->codec, qs->data, cfg->qbits, &cq, &err)) {
            fprintf(stderr, "%s: query: %s\n", cfg->name, err.msg);
            return -1;
        }
        qbits_used = fanns_codec_query_bits(cq);
        fanns_codec_query_free(cq);
    }
    /* the float32 graph returns exact distances: rescoring is a no-op, oversampling x1 only */
    size_t one = 1, nos = cfg->family == FAM_F32 ? 1 : cfg->kind == FANNS_CODEC_BIN ? o->nbos : o->nos;
    const size_t *oss = cfg->family == FAM_F32 ? &one : cfg->kind == FANNS_CODEC_BIN ? o->bos : o->os;
    bool isbin = cfg->family == FAM_NATIVE && cfg->kind == FANNS_CODEC_BIN;
    size_t nef = isbin ? o->nbef : o->nef;
    const size_t *efs = isbin ? o->befs : o->efs;
    bench_opts_t bo = {.k = k, .reps = o->reps, .min_time = o->min_time};
    gpoint_t pts[MAX_OS * MAX_EF];
    size_t npts = 0;
    for (size_t s = 0; s < nos; s++) {
        size_t K = k * oss[s], last = 0;
        for (size_t e = 0; e < nef; e++) {
            size_t beam = efs[e] < K ? K : efs[e];
            if (beam == last) continue; /* the same search as the previous ef */
            last = beam;
            gpoint_t *gp = &pts[npts++];
            gsearch_t gs = {g->h, base->data, dim, oss[s], false};
            gp->os = oss[s];
            gp->ef = efs[e];
            gp->beam = beam;
            /* raw recall (the graph's own top k) from one untimed pass, then the timed points
             * with rescoring (bench_run_ef's untimed first pass gives their recall) */
            if (graph_recall(&gs, qs, gt, k, beam, &gp->recall_raw)) return -1;
            gs.rescore = cfg->family != FAM_F32;
            if (bench_run_ef(&bo, qs, gt, beam, gsearch, &gs, &gp->pt)) return -1;
            fprintf(stderr, "  %s x%zu beam %zu: raw %.3f rescored %.3f QPS %.0f\n", cfg->name, oss[s], beam,
                    gp->recall_raw, gp->pt.recall, gp->pt.qps_best);
        }
    }
    printf("{\"kind\":\"graph\",\"codec\":\"%s\",\"family\":\"%s\",\"query_bits\":%u,\"n\":%zu,\"dim\":%zu,"
           "\"nq\":%zu,\"k\":%zu,\"m\":%u,\"ef_construction\":%u,\"threads\":%u,\"bytes_per_vector\":%zu,"
           "\"ratio\":%.3f,\"vector_frac\":%.4f,\"index_bytes\":%zu,\"train_s\":%.3f,\"encode_s\":%.3f,"
           "\"build_s\":%.3f,\"graph_reused\":%s,\"graph_ok\":%s,\"rss_graph_delta_bytes\":%lld,\"rss_bytes\":%lld,"
           "\"points\":[",
           cfg->name, cfg->family == FAM_F32 ? "f32" : cfg->kind == FANNS_CODEC_F16 ? "f16"
                      : cfg->kind == FANNS_CODEC_SQ8 ? "sq8" : "bin",
           qbits_used, n, dim, nq, k, o->m, o->efc, o->threads, code_size, (double)(dim * 4) / (double)code_size,
           (double)code_size / (double)(dim * 4), fanns_hnsw_memory(g->h), g->train_s, g->encode_s, g->build_s,
           reused ? "true" : "false", g->graph_ok ? "true" : "false", g->rss_delta, bench_cur_rss());
    for (size_t i = 0; i < npts; i++)
        printf("%s{\"os\":%zu,\"ef\":%zu,\"beam\":%zu,\"recall_raw\":%.4f,\"recall\":%.4f,\"qps\":%.1f,"
               "\"qps_median\":%.1f,\"passes\":%u}",
               i ? "," : "", pts[i].os, pts[i].ef, pts[i].beam, pts[i].recall_raw, pts[i].pt.recall,
               pts[i].pt.qps_best, pts[i].pt.qps_median, pts[i].pt.passes);
    printf("]}\n");
    fflush(stdout);
    return 0;
}

static void usage(const char *prog) {
    fprintf(stderr,
            "usage: %s --base B.npy --queries Q.npy --gt G.npy [--configs LIST] [--k 10]\n"
            "          [--oversampling 1,2,4,8] [--train-n 65536] [--pq-train-n 65536] [--reps 2]\n"
            "          [--min-time 0.5]\n"
            "       %s --graph ... [--ef 16,24,...] [--m 16] [--efc 200] [--threads 0]\n"
            "          [--oversampling 1,2,4] [--bin-oversampling 1,2,4,8,16] [--bin-ef LIST]\n"
            "Flat scans over compressed codes with float32 rescoring, or with --graph HNSW graphs whose\n"
            "nodes hold the codes (f32, f16, sq8*, bin* configs; default %s);\n"
            "JSON lines on stdout.  Configs (flat default %s):\n  ",
            prog, prog, DEFAULT_GRAPH_CONFIGS, DEFAULT_CONFIGS);
    for (size_t i = 0; i < NCONFIGS; i++) fprintf(stderr, "%s%s", CONFIGS[i].name, i + 1 < NCONFIGS ? " " : "\n");
    fprintf(stderr, "--train-n/--pq-train-n 0 = train on all base vectors; --threads 0 = all cores (graph build;\n"
                    "searches are single-threaded).\n");
}

static int parse_list(const char *v, size_t *out, size_t cap, size_t *n) {
    char *end;
    *n = 0;
    for (const char *s = v; *s; s = *end ? end + 1 : end) {
        if (*n == cap) return -1;
        out[(*n)++] = strtoull(s, &end, 10);
        if (end == s || out[*n - 1] == 0) return -1;
    }
    return *n ? 0 : -1;
}

int main(int argc, char **argv) {
    opts_t o = {.configs = NULL, .k = 10, .reps = 2, .train_n = 65536, .pq_train_n = 65536,
                .min_time = 0.5, .nos = 0, .m = 16, .efc = 200,
                .nef = 9, .efs = {16, 24, 32, 48, 64, 96, 128, 192, 256}};
    bench_npy_t base, qs, gt;
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--graph")) {
            o.graph = true;
            continue;
        }
        const char *v = i + 1 < argc ? argv[++i] : NULL;
        if (!v) goto usage;
        if (!strcmp(a, "--base")) o.base = v;
        else if (!strcmp(a, "--queries")) o.queries = v;
        else if (!strcmp(a, "--gt")) o.gt = v;
        else if (!strcmp(a, "--configs")) o.configs = v;
        else if (!strcmp(a, "--k")) o.k = (unsigned)atoi(v);
        else if (!strcmp(a, "--reps")) o.reps = (unsigned)atoi(v);
        else if (!strcmp(a, "--min-time")) o.min_time = atof(v);
        else if (!strcmp(a, "--train-n")) o.train_n = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--pq-train-n")) o.pq_train_n = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--m")) o.m = (unsigned)atoi(v);
        else if (!strcmp(a, "--efc")) o.efc = (unsigned)atoi(v);
        else if (!strcmp(a, "--threads")) o.threads = (unsigned)atoi(v);
        else if (!strcmp(a, "--oversampling")) {
            if (parse_list(v, o.os, MAX_OS, &o.nos)) goto usage;
        } else if (!strcmp(a, "--bin-oversampling")) {
            if (parse_list(v, o.bos, MAX_OS, &o.nbos)) goto usage;
        } else if (!strcmp(a, "--ef")) {
            if (parse_list(v, o.efs, MAX_EF, &o.nef)) goto usage;
        } else if (!strcmp(a, "--bin-ef")) {
            if (parse_list(v, o.befs, MAX_EF, &o.nbef)) goto usage;
        } else goto usage;
    }
    if (!o.configs) o.configs = o.graph ? DEFAULT_GRAPH_CONFIGS : DEFAULT_CONFIGS;
    if (!o.nos) {
        static const size_t flat_os[] = {1, 2, 4, 8}, graph_os[] = {1, 2, 4};
        o.nos = o.graph ? 3 : 4;
        memcpy(o.os, o.graph ? graph_os : flat_os, o.nos * sizeof(size_t));
    }
    if (!o.nbos) {
        o.nbos = o.nos;
        memcpy(o.bos, o.os, o.nos * sizeof(size_t));
    }
    if (!o.nbef) {
        o.nbef = o.nef;
        memcpy(o.befs, o.efs, o.nef * sizeof(size_t));
    }
    for (size_t e = 1; e < o.nbef; e++)
        if (o.befs[e] <= o.befs[e - 1]) goto usage;
    if (o.threads == 0) o.threads = (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
    if (o.m == 0 || o.efc == 0) goto usage;
    for (size_t s = 1; s < o.nbos; s++)
        if (o.bos[s] <= o.bos[s - 1]) goto usage;
    for (size_t e = 1; e < o.nef; e++)
        if (o.efs[e] <= o.efs[e - 1]) goto usage;
    if ((size_t)o.k * o.bos[o.nbos - 1] > MAX_CAND) goto usage;
    if (!o.base || !o.queries || !o.gt || o.k == 0 || o.reps == 0) goto usage;
    for (size_t s = 1; s < o.nos; s++)
        if (o.os[s] <= o.os[s - 1]) goto usage; /* increasing: candidates are prefixes */
    if ((size_t)o.k * o.os[o.nos - 1] > MAX_CAND) goto usage;

    if (bench_npy_read(o.base, &base) || bench_npy_read(o.queries, &qs) || bench_npy_read(o.gt, &gt)) return 1;
    if (!base.is_float || !qs.is_float || gt.is_float || base.cols != qs.cols || gt.rows != qs.rows ||
        gt.cols < o.k || base.rows < (size_t)o.k * o.os[o.nos - 1] || base.rows < (size_t)o.k * o.bos[o.nbos - 1] || base.rows > UINT32_MAX) {
        fprintf(stderr, "inconsistent inputs: base %zux%zu, queries %zux%zu, gt %zux%zu, k %u\n", base.rows,
                base.cols, qs.rows, qs.cols, gt.rows, gt.cols, o.k);
        return 1;
    }
    fanns_dist_init();
    size_t n = base.rows, dim = base.cols;
    for (size_t i = 0; i < n; i++) fanns_vec_normalize((float *)base.data + i * dim, dim);
    for (size_t i = 0; i < qs.rows; i++) fanns_vec_normalize((float *)qs.data + i * dim, dim);
    printf("{\"kind\":\"info\",\"n\":%zu,\"dim\":%zu,\"nq\":%zu,\"k\":%u,\"dist_isa\":\"%s\",\"codec_isa\":\"%s\","
           "\"train_n\":%zu,\"pq_train_n\":%zu,\"rss_after_load_bytes\":%lld,\"mode\":\"%s\",\"threads\":%u}\n",
           n, dim, qs.rows, o.k, fanns_dist_isa(), fanns_codec_isa(), o.train_n, o.pq_train_n, bench_cur_rss(),
           o.graph ? "graph" : "flat", o.threads);
    fflush(stdout);

    gstate_t gs = {0};
    char list[1024];
    snprintf(list, sizeof(list), "%s", o.configs);
    for (char *save = NULL, *name = strtok_r(list, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
        const cfg_t *cfg = NULL;
        for (size_t i = 0; i < NCONFIGS; i++)
            if (!strcmp(CONFIGS[i].name, name)) cfg = &CONFIGS[i];
        if (!cfg) {
            fprintf(stderr, "unknown config %s\n", name);
            rc = 1;
            continue;
        }
        if (o.graph ? run_graph_config(cfg, &o, &base, &qs, &gt, &gs) : run_config(cfg, &o, &base, &qs, &gt)) {
            fprintf(stderr, "config %s failed\n", name);
            printf("{\"kind\":\"error\",\"codec\":\"%s\"}\n", name);
            fflush(stdout);
            rc = 1;
        }
    }
    gstate_free(&gs);
    printf("{\"kind\":\"memory\",\"peak_rss_bytes\":%lld}\n", bench_peak_rss());
    free(base.data);
    free(qs.data);
    free(gt.data);
    return rc;
usage:
    usage(argv[0]);
    return 2;
}
