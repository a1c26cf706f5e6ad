/*
 * quant.c: a collection's compressed vector codes (quantization): which codec the config asks
 * for, deterministic training samples, training and re-encoding on the indexer thread, the
 * codebook record kept in LMDB, and the distance estimates scans use.
 *
 * Codecs.  quantization_config.scalar -> SQ8 (per-dimension ranges, index/codec.h),
 * .binary -> BIN (centred sign codes, asymmetric 4-bit query), .product -> PQ through FAISS
 * (index/faiss/faiss_codec.h, "PQ<m>x8" with m the largest divisor of dim not above
 * dim * 4 / N for compression xN), and vectors.datatype float16 with no quantization -> F16.
 * vectors.quantization_config overrides the collection-level one ("Disabled" turns it off).
 *
 * Lifecycle (invariants in coll_int.h).  The writer owns the decisions: when the spec changes
 * (create, PATCH) or the collection reaches a training size, it selects the sample and copies
 * its vectors (fanns__quant_schedule), so the codebook depends only on the sequence of writes:
 * the sample is the `sample` points with the smallest seeded hash of their id (all points
 * while there are fewer), in hash order.  Training first happens at 256 points and again each
 * time the collection doubles, until the sample reaches its configured size.  The indexer
 * thread trains (fanns__quant_work) with no lock held, encodes every slot in chunks (vectors
 * copied under the read lock, encoded outside it), then under the write lock re-encodes the
 * slots written meanwhile (their vector version changed) and publishes the codec and codes
 * together.  Until then searches use the previous codec or float32 vectors, so answers stay
 * correct throughout.  The new codebook is handed to the writer as a PUT_CODEBOOK entry and
 * stored under meta key "codebook/<cid>"; at start-up a stored codebook whose spec equals the
 * config's is reloaded and only re-encoding runs (codes are not stored: re-encoding from the
 * float vectors is cheaper than doubling every point record and rewriting all of them on
 * retraining).
 *
 * PQ codebooks are trained by FAISS (index_factory "PQ<m>x8"); the centroids are recovered by
 * decoding the 256 codes whose bytes are all j and handed to index/codec.h's PQ kind, which
 * encodes (nearest centroid) and computes distances with asymmetric distance tables (Jegou,
 * Douze, Schmid, "Product quantization for nearest neighbor search", TPAMI 2011), for scans
 * and as the node codec of a graph.  The stored codebook is FAISS's serialization.
 */
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coll.h"
#include "log.h"

typedef enum { QK_F16 = 1, QK_SQ8, QK_BIN, QK_PQ } qkind_t;

#define QUANT_MIN_TRAIN 256u             /* points before the first training (PQ needs 256) */
#define QUANT_DEFAULT_SAMPLE 65536u
#define QUANT_SAMPLE_MAX_FLOATS (1u << 26) /* a sample copy never exceeds 256 MiB */
#define QUANT_SEED 0x5a17c0dec0ffee11ULL
#define ENCODE_CHUNK 4096u
#define BLOB_MAGIC "FQCB"
#define BLOB_VERSION 1u

struct fanns_qcodec {
    qkind_t kind;
    fanns_metric_t metric;
    uint32_t dim;
    size_t code_size;
    fanns_codec_t *cc;          /* every kind; PQ: trained once fc is (see pq_centroids) */
    fanns_faiss_codec_t *fc;    /* PQ: the FAISS codec that trains and stores the codebook */
    uint32_t m, dsub;           /* PQ: sub-quantizers and their dimension */
    json_t *spec;               /* the spec it was trained for */
    uint64_t trained_points;
    uint64_t checksum;          /* FNV-1a-64 of the stored codec bytes (FAISS's for PQ) */
    uint64_t ccsum;             /* fanns__quant_codec_sum(cc): what a graph's codec is compared to */
    uint8_t *blob;              /* the codebook record (see blob_build) */
    size_t blob_len;
};

struct fanns_qjob {
    struct fanns_qjob *next;
    uint64_t gen;               /* spec generation it serves */
    json_t *spec;
    float *sample;              /* training vectors (NULL for a loaded or F16 codec) */
    size_t n;
    fanns_qcodec_t *ready;      /* a codec that needs no training: only encode */
};

struct fanns_qquery {
    const fanns_qcodec_t *qc;
    fanns_codec_query_t *q;
};

/* ---- specs -------------------------------------------------------------------------- */

static qkind_t spec_kind(const json_t *spec) {
    const char *k = json_string_value(json_object_get(spec, "kind"));
    if (!k) return 0;
    if (strcmp(k, "f16") == 0) return QK_F16;
    if (strcmp(k, "sq8") == 0) return QK_SQ8;
    if (strcmp(k, "bin") == 0) return QK_BIN;
    if (strcmp(k, "pq") == 0) return QK_PQ;
    return 0;
}

static uint64_t spec_u64(const json_t *spec, const char *key) {
    json_t *v = json_object_get(spec, key);
    return json_is_integer(v) && json_integer_value(v) > 0 ? (uint64_t)json_integer_value(v) : 0;
}

uint32_t fanns__quant_pq_m(uint32_t dim, unsigned compression) {
    uint64_t target = (uint64_t)dim * 4 / (compression ? compression : 1);
    uint32_t best = 1;
    for (uint32_t m = 1; m <= dim && m <= target; m++)
        if (dim % m == 0) best = m;
    return best;
}

json_t *fanns__quant_spec(const json_t *config, uint32_t dim) {
    json_t *vp = json_object_get(json_object_get(config, "params"), "vectors");
    json_t *q = json_object_get(vp, "quantization_config");
    if (json_is_string(q)) return NULL; /* "Disabled" for this vector */
    if (!json_is_object(q)) q = json_object_get(config, "quantization_config");
    if (json_is_object(q) && json_object_size(q) == 1) {
        const char *kind = json_object_iter_key(json_object_iter(q));
        json_t *v = json_object_iter_value(json_object_iter(q));
        uint64_t sample = spec_u64(v, "fanns_training_sample");
        if (!sample) sample = QUANT_DEFAULT_SAMPLE;
        uint64_t cap = QUANT_SAMPLE_MAX_FLOATS / dim;
        if (cap < QUANT_MIN_TRAIN) cap = QUANT_MIN_TRAIN;
        if (sample > cap) sample = cap;
        if (sample < QUANT_MIN_TRAIN) sample = QUANT_MIN_TRAIN;
        if (strcmp(kind, "scalar") == 0) {
            json_t *qq = json_object_get(v, "quantile");
            double quantile = json_is_number(qq) ? json_number_value(qq) : 1.0;
            return json_pack("{s:s, s:f, s:I}", "kind", "sq8", "quantile", quantile, "sample", (json_int_t)sample);
        }
        if (strcmp(kind, "binary") == 0) return json_pack("{s:s, s:I}", "kind", "bin", "sample", (json_int_t)sample);
        if (strcmp(kind, "product") == 0) {
            const char *comp = json_string_value(json_object_get(v, "compression"));
            unsigned n = comp && comp[0] == 'x' ? (unsigned)atoi(comp + 1) : 16;
            return json_pack("{s:s, s:i, s:I}", "kind", "pq", "m", (int)fanns__quant_pq_m(dim, n), "sample",
                             (json_int_t)sample);
        }
    }
    json_t *dt = json_object_get(vp, "datatype");
    if (json_is_string(dt) && strcmp(json_string_value(dt), "float16") == 0) return json_pack("{s:s}", "kind", "f16");
    return NULL;
}

static bool spec_eq(const json_t *a, const json_t *b) {
    if (!a || !b) return a == b;
    return json_equal((json_t *)a, (json_t *)b);
}

static const char *kind_name(qkind_t k) {
    switch (k) {
    case QK_F16: return "f16";
    case QK_SQ8: return "sq8";
    case QK_BIN: return "bin";
    case QK_PQ: return "pq";
    }
    return NULL;
}

/* ---- codecs ------------------------------------------------------------------------- */

static void qcodec_free(fanns_qcodec_t *qc) {
    if (!qc) return;
    fanns_codec_free(qc->cc);
    fanns_faiss_codec_free(qc->fc);
    json_decref(qc->spec);
    free(qc->blob);
    free(qc);
}

static int qcodec_new(const json_t *spec, uint32_t dim, fanns_metric_t metric, fanns_qcodec_t **out, fanns_err_t *err) {
    fanns_qcodec_t *qc = calloc(1, sizeof(*qc));
    int rc;
    if (!qc) return fanns_err_set(err, FANNS_ENOMEM, NULL, "out of memory");
    qc->kind = spec_kind(spec);
    qc->metric = metric;
    qc->dim = dim;
    qc->spec = json_deep_copy(spec);
    if (qc->kind == QK_PQ) {
        char factory[32];
        qc->m = (uint32_t)spec_u64(spec, "m");
        if (qc->m == 0 || dim % qc->m != 0) {
            rc = fanns_err_set(err, FANNS_EVALIDATE, NULL, "product quantization: %u sub-quantizers do not divide %u", qc->m, dim);
            goto fail;
        }
        qc->dsub = dim / qc->m;
        snprintf(factory, sizeof(factory), "PQ%ux8", qc->m);
        if ((rc = fanns_faiss_codec_new(factory, dim, (int)metric, &qc->fc, err)) != 0) goto fail;
        fanns_codec_params_t p = {.kind = FANNS_CODEC_PQ, .dim = dim, .metric = metric, .pq_m = qc->m};
        if ((rc = fanns_codec_new(&p, &qc->cc, err)) != 0) goto fail;
        qc->code_size = qc->m;
    } else if (qc->kind) {
        json_t *qq = json_object_get(spec, "quantile");
        fanns_codec_params_t p = {
            .kind = qc->kind == QK_F16 ? FANNS_CODEC_F16 : qc->kind == QK_SQ8 ? FANNS_CODEC_SQ8 : FANNS_CODEC_BIN,
            .dim = dim,
            .metric = metric,
            .quantile = json_is_number(qq) ? (float)json_number_value(qq) : 0.0f};
        if ((rc = fanns_codec_new(&p, &qc->cc, err)) != 0) goto fail;
        qc->code_size = fanns_codec_code_size(qc->cc);
    } else {
        rc = fanns_err_set(err, FANNS_EVALIDATE, NULL, "unknown codec kind");
        goto fail;
    }
    *out = qc;
    return 0;
fail:
    qcodec_free(qc);
    return rc;
}

/* PQ: recovers the centroids by decoding the 256 codes whose bytes are all j, and gives them
 * to the codec that encodes and scores. */
static int pq_centroids(fanns_qcodec_t *qc, fanns_err_t *err) {
    size_t cs = fanns_faiss_codec_code_size(qc->fc);
    if (cs != qc->m) return fanns_err_set(err, FANNS_EINTERNAL, NULL, "PQ code size %zu, expected %u", cs, qc->m);
    uint8_t *codes = malloc(256 * cs);
    float *dec = malloc((size_t)256 * qc->dim * sizeof(float));
    float *cent = malloc((size_t)256 * qc->dim * sizeof(float));
    int rc = 0;
    if (!codes || !dec || !cent) {
        rc = fanns_err_set(err, FANNS_ENOMEM, NULL, "out of memory");
        goto out;
    }
    for (unsigned j = 0; j < 256; j++) memset(codes + j * cs, (int)j, cs);
    if ((rc = fanns_faiss_codec_decode(qc->fc, 256, codes, dec, err)) != 0) goto out;
    for (uint32_t m = 0; m < qc->m; m++)
        for (unsigned j = 0; j < 256; j++)
            memcpy(cent + ((size_t)m * 256 + j) * qc->dsub, dec + (size_t)j * qc->dim + (size_t)m * qc->dsub,
                   qc->dsub * sizeof(float));
    rc = fanns_codec_set_pq_centroids(qc->cc, cent, err);
out:
    free(codes);
    free(dec);
    free(cent);
    return rc;
}

/* Codebook record: "FQCB", u32 version, u32 header length, the header JSON {spec,
 * trained_points}, then the codec's own serialization (index/codec.h or faiss_codec.h, each
 * with its own checksum). */
static int blob_build(fanns_qcodec_t *qc, fanns_err_t *err) {
    uint8_t *cb = NULL;
    size_t cl = 0;
    int rc = qc->fc ? fanns_faiss_codec_serialize(qc->fc, &cb, &cl, err) : fanns_codec_serialize(qc->cc, &cb, &cl, err);
    if (rc) return rc;
    json_t *h = json_pack("{s:O, s:I}", "spec", qc->spec, "trained_points", (json_int_t)qc->trained_points);
    char *hs = h ? json_dumps(h, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(h);
    size_t hl = hs ? strlen(hs) : 0;
    uint8_t *b = hs ? malloc(12 + hl + cl) : NULL;
    if (!b) {
        free(hs);
        free(cb);
        return fanns_err_set(err, FANNS_ENOMEM, NULL, "out of memory");
    }
    uint32_t ver = BLOB_VERSION, hl32 = (uint32_t)hl;
    memcpy(b, BLOB_MAGIC, 4);
    memcpy(b + 4, &ver, 4);
    memcpy(b + 8, &hl32, 4);
    memcpy(b + 12, hs, hl);
    memcpy(b + 12 + hl, cb, cl);
    free(qc->blob);
    qc->blob = b;
    qc->blob_len = 12 + hl + cl;
    qc->checksum = fanns__fnv1a(0xcbf29ce484222325ULL, cb, cl);
    free(hs);
    free(cb);
    return 0;
}

static int qcodec_from_blob(const uint8_t *b, size_t len, uint32_t dim, fanns_metric_t metric, fanns_qcodec_t **out,
                            fanns_err_t *err) {
    uint32_t ver, hl;
    json_error_t je;
    fanns_qcodec_t *qc = NULL;
    json_t *h = NULL;
    int rc;
    if (len < 12 || memcmp(b, BLOB_MAGIC, 4) != 0) return fanns_err_set(err, FANNS_ECORRUPT, NULL, "bad codebook magic");
    memcpy(&ver, b + 4, 4);
    memcpy(&hl, b + 8, 4);
    if (ver != BLOB_VERSION || hl > len - 12) return fanns_err_set(err, FANNS_ECORRUPT, NULL, "bad codebook header");
    if (!(h = json_loadb((const char *)b + 12, hl, 0, &je))) return fanns_err_set(err, FANNS_ECORRUPT, NULL, "bad codebook header JSON");
    json_t *spec = json_object_get(h, "spec");
    if (!spec_kind(spec)) {
        rc = fanns_err_set(err, FANNS_ECORRUPT, NULL, "codebook of an unknown kind");
        goto fail;
    }
    if ((rc = qcodec_new(spec, dim, metric, &qc, err)) != 0) goto fail;
    const uint8_t *cb = b + 12 + hl;
    size_t cl = len - 12 - hl;
    if (qc->fc) {
        fanns_faiss_codec_free(qc->fc);
        qc->fc = NULL;
        if ((rc = fanns_faiss_codec_deserialize(cb, cl, &qc->fc, err)) != 0) goto fail;
        if (fanns_faiss_codec_dim(qc->fc) != dim || !fanns_faiss_codec_is_trained(qc->fc)) {
            rc = fanns_err_set(err, FANNS_ECORRUPT, NULL, "codebook does not fit the collection");
            goto fail;
        }
        if ((rc = pq_centroids(qc, err)) != 0) goto fail;
    } else {
        fanns_codec_free(qc->cc);
        qc->cc = NULL;
        if ((rc = fanns_codec_deserialize(cb, cl, &qc->cc, err)) != 0) goto fail;
        if (fanns_codec_dim(qc->cc) != dim || fanns_codec_metric(qc->cc) != metric || !fanns_codec_is_trained(qc->cc) ||
            fanns_codec_code_size(qc->cc) != qc->code_size) {
            rc = fanns_err_set(err, FANNS_ECORRUPT, NULL, "codebook does not fit the collection");
            goto fail;
        }
    }
    qc->trained_points = spec_u64(h, "trained_points");
    qc->blob = malloc(len);
    if (!qc->blob) {
        rc = fanns_err_set(err, FANNS_ENOMEM, NULL, "out of memory");
        goto fail;
    }
    memcpy(qc->blob, b, len);
    qc->blob_len = len;
    qc->checksum = fanns__fnv1a(0xcbf29ce484222325ULL, cb, cl);
    json_decref(h);
    *out = qc;
    return 0;
fail:
    json_decref(h);
    qcodec_free(qc);
    return rc;
}

/* Every kind encodes with cc, so codes in the array and in a graph's nodes agree bit for bit. */
static int qcodec_encode(const fanns_qcodec_t *qc, size_t n, const float *x, uint8_t *codes, fanns_err_t *err) {
    if (n == 0) return 0;
    return fanns_codec_encode(qc->cc, n, x, codes, err);
}

/* ---- queries (search, read lock held) ----------------------------------------------- */

int fanns__qquery_new(const fanns_qcodec_t *qc, const float *q, fanns_qquery_t **out, fanns_err_t *err) {
    fanns_qquery_t *qq = calloc(1, sizeof(*qq));
    if (!qq) return fanns_err_set(err, FANNS_ENOMEM, NULL, "out of memory");
    qq->qc = qc;
    int rc = fanns_codec_query_new(qc->cc, q, 0, &qq->q, err);
    if (rc) {
        free(qq);
        return rc;
    }
    *out = qq;
    return 0;
}

void fanns__qquery_free(fanns_qquery_t *qq) {
    if (!qq) return;
    fanns_codec_query_free(qq->q);
    free(qq);
}

float fanns__qquery_dist(const fanns_qquery_t *qq, const uint8_t *code) { return fanns_codec_distance(qq->q, code); }

void fanns__qquery_batch(const fanns_qquery_t *qq, size_t n, const uint8_t *codes, float *out) {
    fanns_codec_distance_batch(qq->q, n, codes, out);
}

const char *fanns__quant_kind_name(const fanns_qcodec_t *qc) { return kind_name(qc->kind); }

/* Graph nodes can hold codes of every kind (index/hnsw.h); 1-bit and PQ codes need a larger
 * oversampling than int8 (docs/benchmarks-codecs.md). */
static bool graph_kind(qkind_t k) { return k == QK_F16 || k == QK_SQ8 || k == QK_BIN || k == QK_PQ; }

int fanns__quant_graph_kind(const fanns_coll_t *c) {
    if (!c->qspec || !graph_kind(spec_kind(c->qspec))) return 0;
    return (int)spec_kind(c->qspec);
}

int fanns__quant_graph_ready(const fanns_coll_t *c) {
    return c->qc && graph_kind(c->qc->kind) ? (int)c->qc->kind : 0;
}

uint64_t fanns__quant_codec_sum(const fanns_codec_t *cc) {
    uint8_t *buf = NULL;
    size_t len = 0;
    fanns_err_t err;
    if (!cc || fanns_codec_serialize(cc, &buf, &len, &err) != 0) return 0;
    uint64_t h = fanns__fnv1a(0xcbf29ce484222325ULL, buf, len);
    free(buf);
    return h;
}

/* The graph's nodes hold codes of the published codec (same codebook bytes). */
static bool graph_matches(const fanns_coll_t *c) {
    return c->hnsw && c->gcodec && c->qc && c->qc->cc && c->gsum == c->qc->ccsum;
}

void fanns__quant_share(fanns_coll_t *c) {
    if (!c->codes || c->nstale > 0 || !graph_matches(c)) return;
    free(c->codes);
    c->codes = NULL;
    fanns_info("codes of %s are now kept only in its graph (%zu B per point saved)", c->name, c->code_size);
}

int fanns__quant_unshare(fanns_coll_t *c, fanns_vread_t *vr) {
    if (!c->qc || c->codes) return 0;
    size_t cs = c->code_size;
    uint8_t *nc = calloc(c->cap ? c->cap : 1, cs);
    fanns_err_t err;
    if (!nc) return FANNS_ENOMEM;
    for (uint32_t off = 0; off < c->nslots; off++) {
        if (!c->live[off]) continue;
        const uint8_t *gcode = c->stale_pos[off] == UINT32_MAX ? fanns_hnsw_code(c->hnsw, off) : NULL;
        if (gcode) {
            memcpy(nc + (size_t)off * cs, gcode, cs);
            continue;
        }
        const float *v = fanns__vr_get(vr, off);
        if (!v) {
            free(nc);
            return vr->rc;
        }
        if (qcodec_encode(c->qc, 1, v, nc + (size_t)off * cs, &err) != 0)
            fanns_warn("encoding point %u of %s: %s", off, c->name, err.msg);
    }
    c->codes = nc;
    return 0;
}

typedef struct recode_ctx {
    const fanns_coll_t *c;
    const uint8_t *codes;       /* new codes of the current vectors */
} recode_ctx_t;

/* A node whose vector is the slot's current one takes the slot's new code. */
static bool recode_from_codes(void *ctx, uint32_t off, const uint8_t *old_code, uint8_t *out) {
    const recode_ctx_t *r = ctx;
    const fanns_coll_t *c = r->c;
    (void)old_code;
    if (off >= c->nslots || !c->live[off] || c->ivver[off] != c->vversions[off]) return false;
    memcpy(out, r->codes + (size_t)off * c->code_size, c->code_size);
    return true;
}

fanns_codec_t *fanns__quant_graph_codec(const fanns_coll_t *c) {
    if (!c->qc || !graph_kind(c->qc->kind) || !c->qc->cc) return NULL;
    uint8_t *buf = NULL;
    size_t len = 0;
    fanns_codec_t *copy = NULL;
    fanns_err_t err;
    if (fanns_codec_serialize(c->qc->cc, &buf, &len, &err) == 0) (void)fanns_codec_deserialize(buf, len, &copy, &err);
    free(buf);
    return copy;
}

/* ---- jobs --------------------------------------------------------------------------- */

static void job_free(fanns_qjob_t *j) {
    if (!j) return;
    json_decref(j->spec);
    free(j->sample);
    qcodec_free(j->ready);
    free(j);
}

static void jobs_free(fanns_qjob_t *j) {
    while (j) {
        fanns_qjob_t *n = j->next;
        job_free(j);
        j = n;
    }
}

/* Appends j; a pending training job of the same generation is superseded by it. */
static void job_push(fanns_coll_t *c, fanns_qjob_t *j) {
    fanns_qjob_t **pp = &c->qjob;
    while (*pp) {
        fanns_qjob_t *cur = *pp;
        if (cur->gen == j->gen && cur->sample && j->sample) {
            *pp = cur->next;
            job_free(cur);
            continue;
        }
        pp = &cur->next;
    }
    *pp = j;
}

typedef struct {
    uint64_t h;
    uint32_t off;
} samp_t;

static uint64_t mix64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

static inline bool samp_less(const samp_t *a, const samp_t *b) { return a->h < b->h || (a->h == b->h && a->off < b->off); }

static int cmp_samp(const void *a, const void *b) {
    const samp_t *x = a, *y = b;
    return samp_less(x, y) ? -1 : samp_less(y, x) ? 1 : 0;
}

/* Max-heap on (h, off): the root is the largest kept. */
static void samp_sift_down(samp_t *s, size_t n, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && samp_less(&s[m], &s[l])) m = l;
        if (r < n && samp_less(&s[m], &s[r])) m = r;
        if (m == i) return;
        samp_t t = s[i];
        s[i] = s[m];
        s[m] = t;
        i = m;
    }
}

/* The training sample: the `want` live points with the smallest seeded hash of their id, in
 * hash order, copied (write lock held, so the copy is the state after the current write;
 * on-disk vectors are read through txn, which holds that write). */
static float *take_sample(const fanns_coll_t *c, MDB_txn *txn, size_t want, size_t *n) {
    size_t m = c->count < want ? (size_t)c->count : want, k = 0;
    samp_t *s = malloc((m ? m : 1) * sizeof(*s));
    float *x = NULL;
    if (!s) return NULL;
    for (uint32_t off = 0; off < c->nslots; off++) {
        if (!c->live[off]) continue;
        uint8_t key[FANNS_PID_KEYLEN];
        fanns_pid_key(&c->pids[off], key);
        samp_t e = {mix64(fanns__fnv1a(0xcbf29ce484222325ULL, key, sizeof(key)) ^ QUANT_SEED), off};
        if (k < m) {
            s[k++] = e;
            if (k == m)
                for (size_t i = m / 2; i-- > 0;) samp_sift_down(s, m, i);
        } else if (m > 0 && samp_less(&e, &s[0])) {
            s[0] = e;
            samp_sift_down(s, m, 0);
        }
    }
    qsort(s, k, sizeof(*s), cmp_samp);
    x = malloc((k ? k : 1) * (size_t)c->dim * sizeof(float));
    fanns_vread_t vr;
    memset(&vr, 0, sizeof(vr));
    if (x && fanns__vr_open(&vr, c, txn) == 0) {
        for (size_t i = 0; i < k; i++)
            if (fanns__vr_copy(&vr, s[i].off, x + i * c->dim) != 0) break;
    }
    if (x && vr.rc) {
        free(x);
        x = NULL;
    }
    fanns__vr_close(&vr);
    free(s);
    *n = k;
    return x;
}

/* ---- writer side -------------------------------------------------------------------- */

bool fanns__quant_config(fanns_coll_t *c) {
    json_t *spec = fanns__quant_spec(c->config, c->dim);
    if (spec_eq(spec, c->qspec)) {
        json_decref(spec);
        return false;
    }
    json_decref(c->qspec);
    c->qspec = spec;
    c->qgen++;
    jobs_free(c->qjob);
    c->qjob = NULL;
    if (spec) return false;
    /* No codec wanted any more: drop the codes at once (readers are excluded by the lock). */
    qcodec_free(c->qc);
    c->qc = NULL;
    free(c->codes);
    c->codes = NULL;
    c->code_size = 0;
    return true;
}

void fanns__quant_schedule(fanns_coll_t *c, MDB_txn *txn) {
    fanns_err_t err;
    if (!c->qspec || c->dropped) return;
    qkind_t kind = spec_kind(c->qspec);
    uint64_t want = spec_u64(c->qspec, "sample");
    uint64_t base = c->qsched_gen == c->qgen ? c->qsched_points : 0;
    fanns_qjob_t *j = calloc(1, sizeof(*j));
    if (!j) goto oom;
    j->gen = c->qgen;
    j->spec = json_incref(c->qspec);
    if (kind == QK_F16) {
        if (base) goto skip;
        if (qcodec_new(c->qspec, c->dim, c->metric, &j->ready, &err) != 0 || blob_build(j->ready, &err) != 0) {
            fanns_warn("float16 codes for %s: %s", c->name, err.msg);
            goto skip;
        }
        c->qsched_points = UINT64_MAX;
    } else {
        if (c->count < QUANT_MIN_TRAIN) goto skip;
        if (base && !(base < want && c->count >= 2 * base)) goto skip;
        if (!(j->sample = take_sample(c, txn, (size_t)want, &j->n))) goto oom;
        c->qsched_points = j->n;
    }
    c->qsched_gen = c->qgen;
    job_push(c, j);
    return;
oom:
    fanns_warn("out of memory scheduling the codec training of %s", c->name);
skip:
    job_free(j);
}

int fanns__quant_ensure_cap(fanns_coll_t *c, uint32_t ncap) {
    if (!c->qc || !c->codes) return 0; /* no codec, or the graph holds the codes */
    uint8_t *n = realloc(c->codes, (size_t)ncap * c->code_size);
    if (!n) return FANNS_ENOMEM;
    if (ncap > c->cap) memset(n + (size_t)c->cap * c->code_size, 0, (size_t)(ncap - c->cap) * c->code_size);
    c->codes = n;
    return 0;
}

void fanns__quant_encode_slot(fanns_coll_t *c, uint32_t off, const float *vec) {
    fanns_err_t err;
    if (!c->qc || !c->codes) return; /* no codec, or the graph holds the codes: the slot is stale until indexed */
    if (qcodec_encode(c->qc, 1, vec, c->codes + (size_t)off * c->code_size, &err) != 0)
        fanns_warn("encoding point %u of %s: %s", off, c->name, err.msg); /* cannot happen for finite vectors */
}

void fanns__quant_load(fanns_coll_t *c, const void *blob, size_t len, MDB_txn *txn) {
    fanns_err_t err;
    fanns_qcodec_t *qc = NULL;
    if (c->qspec && blob) {
        if (qcodec_from_blob(blob, len, c->dim, c->metric, &qc, &err) != 0) {
            fanns_warn("codebook of %s not usable (%s): training again", c->name, err.msg);
        } else if (!spec_eq(qc->spec, c->qspec)) {
            qcodec_free(qc); /* the config changed before the new codebook was stored */
            qc = NULL;
        } else {
            fanns_qjob_t *j = calloc(1, sizeof(*j));
            if (j) {
                j->gen = c->qgen;
                j->spec = json_incref(c->qspec);
                j->ready = qc;
                qc = NULL;
                c->qsched_gen = c->qgen;
                c->qsched_points = spec_kind(c->qspec) == QK_F16 ? UINT64_MAX : j->ready->trained_points;
                job_push(c, j);
                fanns_info("loaded the %s codebook of %s (trained on %llu points)", kind_name(spec_kind(c->qspec)), c->name,
                           (unsigned long long)j->ready->trained_points);
            }
        }
        qcodec_free(qc);
    }
    fanns__quant_schedule(c, txn);
}

void fanns__quant_destroy(fanns_coll_t *c) {
    qcodec_free(c->qc);
    c->qc = NULL;
    free(c->codes);
    c->codes = NULL;
    jobs_free(c->qjob);
    c->qjob = NULL;
    json_decref(c->qspec);
    c->qspec = NULL;
}

int fanns__quant_key(uint32_t cid, char *buf, size_t n) { return snprintf(buf, n, "codebook/%u", cid); }

void fanns__quant_stats(const fanns_coll_t *c, fanns_coll_stats_t *st) {
    st->codec = c->qspec ? kind_name(spec_kind(c->qspec)) : NULL;
    bool current = c->qc && spec_eq(c->qc->spec, c->qspec);
    if (!c->qspec) st->codec_status = "none";
    else if (c->qjob || c->qbusy) st->codec_status = "training";
    else if (current) st->codec_status = "ready";
    else st->codec_status = "waiting";
    st->codec_ready = c->qc ? kind_name(c->qc->kind) : NULL;
    st->code_size = c->qc ? c->code_size : 0;
    st->codec_trained_points = c->qc ? c->qc->trained_points : 0;
    st->codec_checksum = c->qc ? c->qc->checksum : 0;
    st->codes_bytes = c->codes ? (uint64_t)c->nslots * c->code_size : 0; /* pages past nslots are never touched */
    st->codes_in_graph = c->qc && !c->codes;
    if (st->codes_in_graph && c->hnsw) st->codes_bytes = (uint64_t)fanns_hnsw_count(c->hnsw) * c->code_size;
}

bool fanns__quant_busy(const fanns_coll_t *c) { return c->qjob != NULL || c->qbusy; }

/* ---- the indexer side ----------------------------------------------------------------- */

/* Trains (unless ready), encodes every slot and publishes.  Returns the codec to persist. */
static void run_job(fanns_db_t *db, fanns_coll_t *c, fanns_qjob_t *j) {
    fanns_err_t err;
    fanns_qcodec_t *qc = j->ready, *old = NULL;
    bool trained = false;
    uint8_t *nc = NULL, *ocodes = NULL;
    uint64_t *vv = NULL;
    float *buf = NULL;
    uint8_t *cbuf = NULL;
    uint32_t *boff = NULL;
    j->ready = NULL;
    if (!qc) {
        if (qcodec_new(j->spec, c->dim, c->metric, &qc, &err) != 0) goto fail;
        int rc = qc->fc ? fanns_faiss_codec_train(qc->fc, j->n, j->sample, &err) : fanns_codec_train(qc->cc, j->n, j->sample, &err);
        if (rc == 0 && qc->fc) rc = pq_centroids(qc, &err);
        qc->trained_points = j->n;
        if (rc == 0) rc = blob_build(qc, &err);
        if (rc) goto fail;
        trained = true;
        free(j->sample);
        j->sample = NULL;
    }
    qc->ccsum = fanns__quant_codec_sum(qc->cc);
    size_t cs = qc->code_size, dim = c->dim;
    pthread_rwlock_rdlock(&c->lock);
    uint32_t n0 = c->nslots;
    pthread_rwlock_unlock(&c->lock);
    nc = calloc(n0 ? n0 : 1, cs);
    vv = calloc(n0 ? n0 : 1, sizeof(*vv));
    buf = malloc((size_t)ENCODE_CHUNK * dim * sizeof(float));
    cbuf = malloc((size_t)ENCODE_CHUNK * cs);
    boff = malloc(ENCODE_CHUNK * sizeof(*boff));
    if (!nc || !vv || !buf || !cbuf || !boff) {
        fanns_err_set(&err, FANNS_ENOMEM, NULL, "out of memory");
        goto fail;
    }
    for (uint32_t a = 0; a < n0; a += ENCODE_CHUNK) {
        uint32_t b = n0 - a < ENCODE_CHUNK ? n0 : a + ENCODE_CHUNK, k = 0;
        bool env;
        fanns_vread_t vr;
        fanns__coll_lock(c, false, &env);
        bool stale = c->dropped || c->qgen != j->gen;
        int vrc = stale ? 0 : fanns__vr_open(&vr, c, NULL);
        for (uint32_t off = a; !stale && vrc == 0 && off < b; off++) {
            if (!c->live[off]) continue;
            vv[off] = c->vversions[off];
            vrc = fanns__vr_copy(&vr, off, buf + (size_t)k * dim);
            boff[k++] = off;
        }
        if (!stale) fanns__vr_close(&vr);
        fanns__coll_unlock(c, env);
        if (stale) goto discard;
        if (vrc) {
            fanns_err_set(&err, vrc, NULL, "cannot read the vectors: %s", fanns_err_name(vrc));
            goto fail;
        }
        if (qcodec_encode(qc, k, buf, cbuf, &err) != 0) goto fail;
        for (uint32_t i = 0; i < k; i++) memcpy(nc + (size_t)boff[i] * cs, cbuf + (size_t)i * cs, cs);
    }

    bool env;
    fanns_vread_t vr;
    fanns__coll_lock(c, true, &env);
    if (c->dropped || c->qgen != j->gen) {
        c->qbusy = false;
        fanns__coll_unlock(c, env);
        goto discard;
    }
    uint8_t *grown = realloc(nc, (size_t)(c->cap ? c->cap : 1) * cs);
    if (grown) nc = grown;
    int vrc = grown ? fanns__vr_open(&vr, c, NULL) : FANNS_ENOMEM;
    if (vrc) {
        if (grown) fanns__vr_close(&vr);
        c->qbusy = false;
        fanns__coll_unlock(c, env);
        fanns_err_set(&err, vrc, NULL, "%s", vrc == FANNS_ENOMEM ? "out of memory" : "cannot read the vectors");
        goto fail_unlocked;
    }
    if (c->cap > n0) memset(nc + (size_t)n0 * cs, 0, (size_t)(c->cap - n0) * cs);
    /* Slots written while we encoded (new, changed or reused) get their code now. */
    uint32_t redone = 0;
    for (uint32_t off = 0; off < c->nslots; off++) {
        if (!c->live[off] || (off < n0 && vv[off] == c->vversions[off])) continue;
        const float *v = fanns__vr_get(&vr, off);
        if (!v || qcodec_encode(qc, 1, v, nc + (size_t)off * cs, &err) != 0)
            fanns_warn("encoding point %u of %s: %s", off, c->name, v ? err.msg : fanns_err_name(vr.rc));
        redone++;
    }
    fanns__vr_close(&vr);
    old = c->qc;
    ocodes = c->codes;
    c->qc = qc;
    c->codes = nc;
    c->code_size = cs;
    nc = NULL;
    /* A graph over codes of the same kind takes the new codebook in place (its links stay),
     * so the codes need not be kept twice; another kind is rebuilt by the indexer. */
    if (c->hnsw && c->gcodec && qc->cc && c->gsum != qc->ccsum &&
        fanns_codec_kind(c->gcodec) == fanns_codec_kind(qc->cc) && fanns_codec_code_size(c->gcodec) == cs) {
        fanns_codec_t *ngc = fanns__quant_graph_codec(c);
        recode_ctx_t rctx = {c, c->codes};
        if (ngc && fanns_hnsw_recode(c->hnsw, ngc, recode_from_codes, &rctx, &err) == 0) {
            fanns_codec_free(c->gcodec);
            c->gcodec = ngc;
            c->gsum = qc->ccsum;
            c->index_ops_since_save += 1; /* the saved graph holds the old codes */
        } else {
            fanns_codec_free(ngc);
            fanns_warn("graph of %s keeps its previous codebook: %s", c->name, ngc ? err.msg : "out of memory");
        }
    }
    fanns__quant_share(c);
    const char *name = c->name;
    uint32_t cid = c->cid;
    uint64_t gen = j->gen, tp = qc->trained_points, sum = qc->checksum;
    fanns__coll_unlock(c, env);
    fanns_info("%s codes of %s ready (%zu B per vector, trained on %llu points, %u re-encoded at the swap, codebook %016llx)",
               kind_name(qc->kind), name, cs, (unsigned long long)tp, redone, (unsigned long long)sum);
    if (trained) {
        /* The writer stores the codebook (LMDB has one writer).  Losing it (shutting down,
         * queue full) only means training again at the next start. */
        fanns_wentry_t *e = fanns_wentry_new(FANNS_W_PUT_CODEBOOK);
        uint8_t *copy = malloc(qc->blob_len);
        if (e && copy && (e->collection = strdup(name))) {
            memcpy(copy, qc->blob, qc->blob_len);
            e->blob = copy;
            e->blob_len = qc->blob_len;
            e->cid = cid;
            e->gen = gen;
            copy = NULL;
            if (fanns_db_write(db, e, false, NULL, &err) != 0) fanns_warn("codebook of %s not stored: %s", name, err.msg);
        } else {
            fanns_wentry_free(e);
        }
        free(copy);
    }
    /* Busy until the codebook is queued for storing, so a close right after the collection
     * reports "ready" still stores it (the writer drains its queue before closing). */
    pthread_rwlock_wrlock(&c->lock);
    c->qbusy = false;
    pthread_rwlock_unlock(&c->lock);
    qcodec_free(old);
    free(ocodes);
    goto out;
discard:
    qcodec_free(qc);
    pthread_rwlock_wrlock(&c->lock);
    c->qbusy = false;
    pthread_rwlock_unlock(&c->lock);
    goto out;
fail:
    pthread_rwlock_wrlock(&c->lock);
    c->qbusy = false;
    pthread_rwlock_unlock(&c->lock);
fail_unlocked:
    fanns_error("codec training/encoding for %s failed: %s", c->name, err.msg);
    qcodec_free(qc);
out:
    free(nc);
    free(vv);
    free(buf);
    free(cbuf);
    free(boff);
    /* The sample, FAISS's training buffers and the old codes were large and short-lived: hand
     * the freed pages back to the system instead of keeping them in the heap. */
    malloc_trim(0);
}

void fanns__quant_work(fanns_db_t *db, fanns_coll_t *c) {
    for (;;) {
        pthread_rwlock_wrlock(&c->lock);
        fanns_qjob_t *j = c->dropped ? NULL : c->qjob;
        if (j) {
            c->qjob = j->next;
            j->next = NULL;
            c->qbusy = true;
        }
        pthread_rwlock_unlock(&c->lock);
        if (!j) return;
        run_job(db, c, j);
        job_free(j);
        pthread_mutex_lock(&db->imu);
        bool stop = db->istop;
        pthread_mutex_unlock(&db->imu);
        if (stop) return;
    }
}
