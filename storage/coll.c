/*
 * coll.c: the in-memory side of a collection: dense slots, the id -> offset hash, and the
 * read paths (exact search, get, count).  Scroll, which walks LMDB's ordered id keys, is in
 * db.c.  Layout and locking are described in coll_int.h.
 *
 * Exact search scans every live slot, evaluates the filter per point and keeps the best
 * offset + limit in a binary heap keyed so that larger is better (similarity, or minus the
 * distance); it is the ground truth that approximate indexes are measured against.
 *
 * Float32 vectors are read through a fanns_vread_t (vecs.c): from c->vecs, or, for a
 * collection with vectors.on_disk, copied out of LMDB records through one read transaction
 * per search (a cursor walk for a full scan, a lookup per point otherwise).
 */
#include "coll.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mem.h"

/* ---- id hash ------------------------------------------------------------------------ */

static uint64_t mix64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

static uint64_t pid_hash(const fanns_pid_t *id) {
    if (id->kind == FANNS_PID_NUM) return mix64(id->num);
    uint64_t a, b;
    memcpy(&a, id->uuid, 8);
    memcpy(&b, id->uuid + 8, 8);
    return mix64(a ^ mix64(b ^ 0x9e3779b97f4a7c15ULL));
}

int64_t fanns__coll_find(const fanns_coll_t *c, const fanns_pid_t *id) {
    if (c->hcap == 0) return -1;
    uint32_t mask = c->hcap - 1, i = (uint32_t)pid_hash(id) & mask;
    for (;;) {
        uint32_t v = c->htab[i];
        if (v == 0) return -1;
        if (fanns_pid_eq(&c->pids[v - 1], id)) return v - 1;
        i = (i + 1) & mask;
    }
}

static void hash_insert_raw(uint32_t *tab, uint32_t cap, const fanns_pid_t *pids, uint32_t off) {
    uint32_t mask = cap - 1, i = (uint32_t)pid_hash(&pids[off]) & mask;
    while (tab[i] != 0) i = (i + 1) & mask;
    tab[i] = off + 1;
}

static int hash_grow(fanns_coll_t *c) {
    uint32_t ncap = c->hcap ? c->hcap * 2 : 1024;
    uint32_t *nt = calloc(ncap, sizeof(*nt));
    if (!nt) return FANNS_ENOMEM;
    for (uint32_t i = 0; i < c->hcap; i++)
        if (c->htab[i]) hash_insert_raw(nt, ncap, c->pids, c->htab[i] - 1);
    free(c->htab);
    c->htab = nt;
    c->hcap = ncap;
    return 0;
}

static void hash_delete(fanns_coll_t *c, uint32_t off) {
    uint32_t mask = c->hcap - 1, i = (uint32_t)pid_hash(&c->pids[off]) & mask;
    while (c->htab[i] != off + 1) {
        FANNS_CHECK(c->htab[i] != 0);
        i = (i + 1) & mask;
    }
    /* Backward-shift deletion keeps probe chains unbroken without tombstones. */
    uint32_t j = i;
    for (;;) {
        c->htab[i] = 0;
        for (;;) {
            j = (j + 1) & mask;
            if (c->htab[j] == 0) return;
            uint32_t home = (uint32_t)pid_hash(&c->pids[c->htab[j] - 1]) & mask;
            /* Move j into the hole at i unless its home lies cyclically in (i, j]. */
            if (i <= j ? (home <= i || home > j) : (home <= i && home > j)) break;
        }
        c->htab[i] = c->htab[j];
        i = j;
    }
}

/* ---- slots -------------------------------------------------------------------------- */

fanns_coll_t *fanns__coll_new(fanns_db_t *db, const char *name, uint32_t cid, uint32_t dim,
                              fanns_metric_t metric, json_t *config, json_t *schema) {
    fanns_coll_t *c = calloc(1, sizeof(*c));
    if (!c) return NULL;
    c->name = strdup(name);
    if (!c->name) {
        free(c);
        return NULL;
    }
    c->db = db;
    c->cid = cid;
    c->dim = dim;
    c->metric = metric;
    atomic_init(&c->refs, 1);
    fanns__rwlock_init(&c->lock);
    c->config = json_incref(config);
    c->schema = schema ? json_incref(schema) : json_object();
    atomic_init(&c->ondisk, fanns__coll_config_ondisk(config));
    fanns__index_config(c);
    fanns__quant_config(c);
    c->live_bm = roaring_bitmap_create();
    if (!c->live_bm || fanns_pindex_new(&c->pindex) != 0) {
        fanns__coll_destroy(c);
        return NULL;
    }
    const char *field;
    json_t *fs;
    json_object_foreach(c->schema, field, fs) {
        fanns_err_t err;
        if (fanns_pindex_create(c->pindex, field, fs, &err) != 0) fanns_warn("payload index %s of %s: %s", field, name, err.msg);
    }
    return c;
}

void fanns__coll_destroy(fanns_coll_t *c) {
    if (!c) return;
    for (uint32_t i = 0; i < c->nslots; i++)
        if (c->payloads && c->payloads[i]) json_decref(c->payloads[i]);
    fanns_mem_free(c->vecs, c->vecs_bytes);
    free(c->pids);
    free(c->versions);
    free(c->payloads);
    free(c->live);
    free(c->freelist);
    free(c->htab);
    free(c->vversions);
    fanns__index_destroy(c);
    fanns__quant_destroy(c);
    if (c->live_bm) roaring_bitmap_free(c->live_bm);
    fanns_pindex_free(c->pindex);
    json_decref(c->config);
    json_decref(c->schema);
    pthread_rwlock_destroy(&c->lock);
    free(c->name);
    free(c);
}

void fanns_coll_release(fanns_coll_t *c) {
    if (c && atomic_fetch_sub(&c->refs, 1) == 1) fanns__coll_destroy(c);
}

static int ensure_cap(fanns_coll_t *c, uint32_t need) {
    if (need <= c->cap) return 0;
    uint32_t ncap = c->cap ? c->cap : 256;
    while (ncap < need) ncap = ncap > 0x7fffffffu ? 0xfffffff0u : ncap * 2;
    if (!c->ondisk) {
        size_t nb = (size_t)ncap * c->dim * sizeof(float);
        float *v = fanns_mem_realloc(c->vecs, c->vecs_bytes, nb);
        if (!v) return FANNS_ENOMEM;
        c->vecs = v;
        c->vecs_bytes = nb;
    }
    fanns_pid_t *p = realloc(c->pids, (size_t)ncap * sizeof(*p));
    if (!p) return FANNS_ENOMEM;
    c->pids = p;
    uint64_t *ver = realloc(c->versions, (size_t)ncap * sizeof(*ver));
    if (!ver) return FANNS_ENOMEM;
    c->versions = ver;
    json_t **pl = realloc(c->payloads, (size_t)ncap * sizeof(*pl));
    if (!pl) return FANNS_ENOMEM;
    c->payloads = pl;
    uint8_t *lv = realloc(c->live, ncap);
    if (!lv) return FANNS_ENOMEM;
    c->live = lv;
    uint64_t *vv = realloc(c->vversions, (size_t)ncap * sizeof(*vv));
    if (!vv) return FANNS_ENOMEM;
    c->vversions = vv;
    uint32_t *sp = realloc(c->stale_pos, (size_t)ncap * sizeof(*sp));
    if (!sp) return FANNS_ENOMEM;
    c->stale_pos = sp;
    uint8_t *qd = realloc(c->queued, ncap);
    if (!qd) return FANNS_ENOMEM;
    c->queued = qd;
    uint64_t *iv = realloc(c->ivver, (size_t)ncap * sizeof(*iv));
    if (!iv) return FANNS_ENOMEM;
    c->ivver = iv;
    if (fanns__quant_ensure_cap(c, ncap) != 0) return FANNS_ENOMEM;
    for (uint32_t i = c->cap; i < ncap; i++) {
        c->payloads[i] = NULL;
        c->live[i] = 0;
        c->vversions[i] = 0;
        c->stale_pos[i] = UINT32_MAX;
        c->queued[i] = 0;
        c->ivver[i] = 0;
    }
    c->cap = ncap;
    return 0;
}

int fanns__coll_alloc_slot(fanns_coll_t *c, uint32_t *off) {
    /* A freed offset is reused; with a graph, the indexer then replaces the deleted node in
     * place (index/hnsw.c repairs its former neighbours), so slots do not grow with churn. */
    if (c->nfree > 0) {
        *off = c->freelist[--c->nfree];
        return 0;
    }
    if (c->nslots >= FANNS_MAX_POINTS_PER_COLL) return FANNS_ETOOBIG;
    int rc = ensure_cap(c, c->nslots + 1);
    if (rc) return rc;
    *off = c->nslots++;
    return 0;
}

int fanns__coll_set_slot(fanns_coll_t *c, uint32_t off, const fanns_pid_t *id, uint64_t version,
                         const float *vec, json_t *payload) {
    int rc = ensure_cap(c, off + 1);
    if (rc) return rc;
    if (off >= c->nslots) {
        /* Loading: offsets arrive in order with gaps for deleted points. */
        for (uint32_t i = c->nslots; i < off; i++) c->live[i] = 0;
        c->nslots = off + 1;
    }
    bool was_live = c->live[off];
    if ((c->count + 1) * 2 > c->hcap && !was_live) {
        rc = hash_grow(c);
        if (rc) return rc;
    }
    if (!was_live) {
        c->pids[off] = *id;
        hash_insert_raw(c->htab, c->hcap, c->pids, off);
        c->live[off] = 1;
        c->count++;
        roaring_bitmap_add(c->live_bm, off);
    }
    c->versions[off] = version;
    c->vversions[off] = version;
    if (!c->ondisk) memcpy(c->vecs + (size_t)off * c->dim, vec, c->dim * sizeof(float));
    fanns__quant_encode_slot(c, off, vec);
    c->pgen++;
    if ((rc = fanns_pindex_update(c->pindex, off, was_live ? c->payloads[off] : NULL, payload)) != 0) return rc;
    if (c->payloads[off]) json_decref(c->payloads[off]);
    c->payloads[off] = payload; /* takes the reference */
    return fanns__index_touch(c, off);
}

void fanns__coll_set_payload(fanns_coll_t *c, uint32_t off, json_t *payload, uint64_t version) {
    /* On ENOMEM the payload index marks itself broken and answers "maybe": still correct. */
    (void)fanns_pindex_update(c->pindex, off, c->payloads[off], payload);
    c->pgen++;
    if (c->payloads[off]) json_decref(c->payloads[off]);
    c->payloads[off] = payload;
    c->versions[off] = version;
}

int fanns__coll_free_slot(fanns_coll_t *c, uint32_t off) {
    if (!c->live[off]) return 0;
    if (c->nfree == c->freecap) {
        uint32_t ncap = c->freecap ? c->freecap * 2 : 64;
        uint32_t *f = realloc(c->freelist, ncap * sizeof(*f));
        if (!f) return FANNS_ENOMEM;
        c->freelist = f;
        c->freecap = ncap;
    }
    hash_delete(c, off);
    (void)fanns_pindex_update(c->pindex, off, c->payloads[off], NULL);
    c->pgen++;
    roaring_bitmap_remove(c->live_bm, off);
    c->live[off] = 0;
    c->count--;
    if (c->payloads[off]) json_decref(c->payloads[off]);
    c->payloads[off] = NULL;
    c->freelist[c->nfree++] = off;
    return fanns__index_touch(c, off);
}

int fanns__coll_rebuild_freelist(fanns_coll_t *c) {
    c->nfree = 0;
    /* Descending so that the lowest offset is reused first. */
    for (uint32_t i = c->nslots; i-- > 0;) {
        if (c->live[i]) continue;
        if (c->nfree == c->freecap) {
            uint32_t ncap = c->freecap ? c->freecap * 2 : 64;
            uint32_t *f = realloc(c->freelist, ncap * sizeof(*f));
            if (!f) return FANNS_ENOMEM;
            c->freelist = f;
            c->freecap = ncap;
        }
        c->freelist[c->nfree++] = i;
    }
    return 0;
}

/* ---- reads -------------------------------------------------------------------------- */

uint32_t fanns_coll_dim(const fanns_coll_t *c) { return c->dim; }
fanns_metric_t fanns_coll_metric(const fanns_coll_t *c) { return c->metric; }
const char *fanns_coll_name(const fanns_coll_t *c) { return c->name; }

void fanns_hits_free(fanns_hit_t *hits, size_t n) {
    if (!hits) return;
    for (size_t i = 0; i < n; i++) {
        if (hits[i].payload) json_decref(hits[i].payload);
        free(hits[i].vector);
    }
    free(hits);
}

int fanns__coll_fill_hit(const fanns_coll_t *c, uint32_t off, bool with_vector, bool with_payload, fanns_vread_t *vr,
                         fanns_hit_t *h) {
    h->id = c->pids[off];
    h->version = c->versions[off];
    h->payload = with_payload && c->payloads[off] ? json_incref(c->payloads[off]) : NULL;
    h->vector = NULL;
    if (with_vector) {
        h->vector = malloc(c->dim * sizeof(float));
        if (!h->vector) return FANNS_ENOMEM;
        return fanns__vr_copy(vr, off, h->vector);
    }
    return 0;
}

/* The message for a read that failed with rc. */
static int read_err(fanns_err_t *err, int rc) {
    if (rc == FANNS_ENOMEM) return fanns_err_set(err, rc, NULL, "out of memory");
    return fanns_err_set(err, rc, NULL, "storage error reading vectors: %s", fanns_err_name(rc));
}

int fanns_coll_stats(fanns_coll_t *c, fanns_coll_stats_t *out) {
    pthread_rwlock_rdlock(&c->lock);
    out->points_count = c->count;
    fanns__index_stats(c, &out->indexed_vectors_count, &out->indexing);
    out->config = json_incref(c->config);
    out->payload_schema = fanns_pindex_schema(c->pindex);
    if (!out->payload_schema) out->payload_schema = json_object();
    fanns__quant_stats(c, out);
    out->indexing = out->indexing || fanns__quant_busy(c);
    out->vectors_bytes = c->ondisk ? 0 : (uint64_t)c->nslots * c->dim * sizeof(float); /* resident: slots in use */
    out->graph_bytes = c->hnsw ? fanns_hnsw_memory(c->hnsw) : 0;
    fanns__blocks_stats(c->blocks, &out->blocks, &out->block_links, &out->block_bytes);
    if (out->codes_in_graph) out->graph_bytes -= out->codes_bytes < out->graph_bytes ? out->codes_bytes : out->graph_bytes;
    out->payload_index_bytes = fanns_pindex_memory(c->pindex);
    pthread_rwlock_unlock(&c->lock);
    return 0;
}

/* Heap entry: larger key is better. */
typedef struct {
    float key;
    uint32_t off;
} cand_t;

/* Worse-first ordering: a is worse than b if its key is smaller, or equal with a larger
 * offset (ties resolve to the lower offset, so results are deterministic). */
static inline bool worse(const cand_t *a, const cand_t *b) {
    return a->key < b->key || (a->key == b->key && a->off > b->off);
}

static void heap_sift_down(cand_t *h, size_t n, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && worse(&h[l], &h[m])) m = l;
        if (r < n && worse(&h[r], &h[m])) m = r;
        if (m == i) return;
        cand_t t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

static void heap_sift_up(cand_t *h, size_t i) {
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!worse(&h[i], &h[p])) return;
        cand_t t = h[i];
        h[i] = h[p];
        h[p] = t;
        i = p;
    }
}

/* Keeps the best k candidates in a heap whose root is the worst kept. */
static inline void heap_push(cand_t *heap, size_t *nh, size_t k, cand_t cd) {
    if (*nh < k) {
        heap[*nh] = cd;
        heap_sift_up(heap, (*nh)++);
    } else if (worse(&heap[0], &cd)) {
        heap[0] = cd;
        heap_sift_down(heap, *nh, 0);
    }
}

static int cmp_better(const void *a, const void *b) {
    const cand_t *x = a, *y = b;
    if (worse(x, y)) return 1;
    if (worse(y, x)) return -1;
    return 0;
}

static int cmp_off(const void *a, const void *b) {
    const cand_t *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off;
}

/* Key (larger is better) and Qdrant score for metric m. */
static inline float metric_key(fanns_metric_t m, const float *q, const float *v, size_t d) {
    switch (m) {
    case FANNS_METRIC_COSINE:
    case FANNS_METRIC_DOT: return fanns_dist_dot(q, v, d);
    case FANNS_METRIC_EUCLID: return -fanns_dist_l2sq(q, v, d);
    case FANNS_METRIC_MANHATTAN: return -fanns_dist_l1(q, v, d);
    }
    return 0;
}

/* The key of an index/hnsw.h internal distance (1 - dot, -dot, l2sq, l1). */
static inline float dist_to_key(fanns_metric_t m, float d) {
    switch (m) {
    case FANNS_METRIC_COSINE: return 1.0f - d;
    case FANNS_METRIC_DOT: return -d;
    default: return d < 0 ? 0.0f : -d;
    }
}

static inline float key_to_score(fanns_metric_t m, float key) {
    if (m == FANNS_METRIC_EUCLID) return sqrtf(-key);
    if (m == FANNS_METRIC_MANHATTAN) return -key;
    return key;
}

/* ---- search strategies (read lock held) ----------------------------------------------
 *
 * The planner (search_filtered) follows the cost model of the filtered-search literature
 * (Qdrant's full_scan_threshold, ACORN, and the FANNS benchmark's finding that graph methods
 * lose the negatively correlated cells): an exact scan over the matching points costs one
 * distance per match; a graph search with a filter costs about ef * 2m distances divided by
 * the selectivity, and can miss neighbours the filter isolates.  So the planner scans
 * exactly whenever that is cheaper or the match count is under the full-scan threshold, and
 * otherwise traverses the graph with the filter, falling back to the scan if the traversal
 * cannot fill the result.  On a float32 graph below ACORN_MAX_SEL the traversal is two-hop
 * (ACORN-1: only matching points are scored, rejected ones are bridged; 1.7-2x the QPS of
 * the widened beam at 1-50% on 100k x 384, see search_filtered); otherwise the beam is
 * widened by the pass rate a probe measures. */

/* Match set of a filter for one search: `bits` may match; those also in `sure` (or all of
 * them when exact) do; the rest need fanns_filter_match. */
typedef struct match_set {
    const fanns_coll_t *c;
    const fanns_filter_t *f;
    roaring_bitmap_t *bits, *sure;
    bool exact;
    bool two_hop; /* search_graph walks the matching subgraph (FANNS_HNSW_FILTER_TWO_HOP) */
    uint64_t *gbits; /* if not NULL, the slots the graph may return (match_bits): the walk
                        tests these bits instead of calling accept_graph */
    /* Stop rules of a filtered (not two-hop) walk, fanns_hnsw_search_opts_t's (0: none), and
     * the one that ended it (search_graph sets it; 0 if it ran to its end). */
    uint32_t min_tests;
    float min_pass;
    uint64_t max_dc;
    int stopped;
    const uint32_t *seeds; /* two-hop walk: entry points among the matches (nseeds > 0) */
    uint32_t nseeds;
} match_set_t;

static inline bool matches(const match_set_t *ms, uint32_t off) {
    if (!ms) return true;
    if (!roaring_bitmap_contains(ms->bits, off)) return false;
    if (ms->exact || (ms->sure && roaring_bitmap_contains(ms->sure, off))) return true;
    return fanns_filter_match(ms->f, &ms->c->pids[off], ms->c->payloads[off]);
}

static const fanns_pid_t *pts_pid(void *ctx, uint32_t off) {
    const fanns_coll_t *c = ctx;
    return off < c->nslots && c->live[off] ? &c->pids[off] : NULL;
}

static const json_t *pts_payload(void *ctx, uint32_t off) {
    const fanns_coll_t *c = ctx;
    return off < c->nslots ? c->payloads[off] : NULL;
}

static bool pts_offset(void *ctx, const fanns_pid_t *id, uint32_t *off) {
    int64_t o = fanns__coll_find(ctx, id);
    if (o < 0) return false;
    *off = (uint32_t)o;
    return true;
}

/* Filtered scans read the match set's offsets in batches of SCAN_BATCH and prefetch the whole
 * vector (or code) of the match SCAN_AHEAD places ahead while one is scored: matches are
 * spread over the collection, so each vector is a run of cache misses that the hardware
 * prefetcher only starts to follow after the first few lines. */
#define SCAN_BATCH 256
#define SCAN_AHEAD 4

static inline void prefetch_bytes(const void *p, size_t n) {
    const char *b = p;
    for (size_t i = 0; i < n; i += 64) __builtin_prefetch(b + i);
}

/* The next batch (into buf, at most SCAN_BATCH) of match-set offsets that are live and match
 * (the filter evaluated for the points that are only "maybe"), in offset order; 0 at the end. */
static uint32_t next_matches(const fanns_coll_t *c, const match_set_t *ms, roaring_uint32_iterator_t *it, uint32_t *buf) {
    uint32_t got;
    while ((got = roaring_read_uint32_iterator(it, buf, SCAN_BATCH)) > 0) {
        uint32_t n = 0;
        for (uint32_t i = 0; i < got; i++) {
            uint32_t off = buf[i];
            if (off >= c->nslots || !c->live[off]) continue;
            if (!ms->exact && !(ms->sure && roaring_bitmap_contains(ms->sure, off)) &&
                !fanns_filter_match(ms->f, &c->pids[off], c->payloads[off]))
                continue;
            buf[n++] = off;
        }
        if (n) return n;
    }
    return 0;
}

/* Key (larger is better) from a code distance estimate (index/codec.h's scale). */
static inline float code_key(fanns_metric_t m, float dist) {
    switch (m) {
    case FANNS_METRIC_COSINE: return 1.0f - dist;
    case FANNS_METRIC_DOT: return -dist;
    case FANNS_METRIC_EUCLID:
    case FANNS_METRIC_MANHATTAN: return dist > 0.0f ? -dist : 0.0f;
    }
    return -dist;
}

/* The code of live slot off: from the code array, or, while the graph holds the codes
 * (coll_int.h), from its node; NULL for a slot the graph does not reflect yet. */
static inline const uint8_t *slot_code(const fanns_coll_t *c, uint32_t off) {
    if (c->codes) return c->codes + (size_t)off * c->code_size;
    return c->stale_pos[off] == UINT32_MAX ? fanns_hnsw_code(c->hnsw, off) : NULL;
}

/* Scores slot off exactly into heap (a slot without a code, see slot_code). */
static inline int push_exact(const fanns_coll_t *c, fanns_vread_t *vr, const float *q, cand_t *heap, size_t *nh, size_t k,
                             uint32_t off) {
    const float *v = fanns__vr_get(vr, off);
    if (!v) return vr->rc;
    heap_push(heap, nh, k, (cand_t){metric_key(c->metric, q, v, c->dim), off});
    return 0;
}

/* Scan on codes (the collection has a codec and the search allows it): the best
 * k * oversampling points by estimated distance, then each rescored with its float32 vector
 * (params.quantization.rescore, default true) or kept with its estimate, into heap.  The
 * estimate kernels are index/codec.h's SIMD ones (PQ: lookup tables, see quant.c). */
static int search_scan_codes(const fanns_coll_t *c, fanns_vread_t *vr, const fanns_search_req_t *req, cand_t *heap,
                             size_t *nh, size_t k, const match_set_t *ms, fanns_search_explain_t *ex) {
    const fanns_metric_t m = c->metric;
    const size_t d = c->dim, cs = c->code_size;
    double os = req->q_oversampling >= 1.0 ? req->q_oversampling : 1.0;
    double kkd = ceil((double)k * os);
    size_t kk = kkd >= (double)c->count ? (size_t)c->count : (size_t)kkd, nc = 0;
    if (kk < k) kk = k;
    fanns_qquery_t *qq = NULL;
    fanns_err_t err;
    cand_t *cand = malloc((kk ? kk : 1) * sizeof(*cand));
    int rc = cand ? fanns__qquery_new(c->qc, req->query, &qq, &err) : FANNS_ENOMEM;
    if (rc) {
        free(cand);
        return rc;
    }
    uint64_t scored = 0, exact = 0;
    if (!ms && !c->codes) {
        /* The graph holds the codes: one lookup per slot. */
        ex->strategy = "quantized_scan";
        for (uint32_t off = 0; off < c->nslots; off++) {
            if (!c->live[off]) continue;
            const uint8_t *code = slot_code(c, off);
            if (code) {
                heap_push(cand, &nc, kk, (cand_t){-fanns__qquery_dist(qq, code), off});
                scored++;
            } else if ((rc = push_exact(c, vr, req->query, heap, nh, k, off)) != 0) {
                goto fail;
            } else {
                exact++;
            }
        }
    } else if (!ms) {
        ex->strategy = "quantized_scan";
        float dist[256];
        for (uint32_t a = 0; a < c->nslots; a += 256) {
            uint32_t n = c->nslots - a < 256 ? c->nslots - a : 256;
            fanns__qquery_batch(qq, n, c->codes + (size_t)a * cs, dist);
            for (uint32_t i = 0; i < n; i++)
                if (c->live[a + i]) heap_push(cand, &nc, kk, (cand_t){-dist[i], a + i});
            scored += n;
        }
    } else {
        ex->strategy = "quantized_filtered_scan";
        roaring_uint32_iterator_t it;
        roaring_init_iterator(ms->bits, &it);
        uint32_t buf[SCAN_BATCH];
        const uint8_t *codes[SCAN_BATCH];
        for (uint32_t n; (n = next_matches(c, ms, &it, buf)) > 0;) {
            for (uint32_t i = 0; i < n; i++) codes[i] = slot_code(c, buf[i]);
            for (uint32_t i = 0; i < n && i < SCAN_AHEAD; i++)
                if (codes[i]) prefetch_bytes(codes[i], cs);
            for (uint32_t i = 0; i < n; i++) {
                if (i + SCAN_AHEAD < n && codes[i + SCAN_AHEAD]) prefetch_bytes(codes[i + SCAN_AHEAD], cs);
                if (codes[i]) {
                    scored++;
                    heap_push(cand, &nc, kk, (cand_t){-fanns__qquery_dist(qq, codes[i]), buf[i]});
                } else if ((rc = push_exact(c, vr, req->query, heap, nh, k, buf[i])) != 0) {
                    goto fail;
                } else {
                    exact++;
                }
            }
        }
        ex->actual_matches = scored + exact;
    }
    fanns__qquery_free(qq);
    qq = NULL;
    bool rescore = !req->q_no_rescore;
    if (rescore && vr->txn) {
        /* From disk: look the candidates up in offset order, which walks the B-tree's leaves
         * mostly forwards (better page locality than heap order). */
        qsort(cand, nc, sizeof(*cand), cmp_off);
    }
    bool pf = rescore && !vr->txn; /* vectors in RAM: prefetch them as the scan does */
    for (size_t i = 0; pf && i < nc && i < SCAN_AHEAD; i++) prefetch_bytes(c->vecs + (size_t)cand[i].off * d, d * sizeof(float));
    for (size_t i = 0; i < nc; i++) {
        uint32_t off = cand[i].off;
        float key;
        if (pf && i + SCAN_AHEAD < nc) prefetch_bytes(c->vecs + (size_t)cand[i + SCAN_AHEAD].off * d, d * sizeof(float));
        if (rescore) {
            const float *v = fanns__vr_get(vr, off);
            if (!v) {
                free(cand);
                return vr->rc;
            }
            key = metric_key(m, req->query, v, d);
        } else {
            key = code_key(m, -cand[i].key);
        }
        heap_push(heap, nh, k, (cand_t){key, off});
    }
    ex->dist_comps += scored + exact + (rescore ? nc : 0);
    ex->codec = fanns__quant_kind_name(c->qc);
    ex->candidates = nc;
    ex->rescored = rescore;
    free(cand);
    return 0;
fail:
    fanns__qquery_free(qq);
    free(cand);
    return rc;
}

/* A match set small enough that scoring it exactly beats the code scan: no more matches than
 * the code scan would rescore anyway (k * oversampling), or, with the vectors in RAM, at most
 * SMALL_EXACT_RAM, where preparing the code query and the rescoring reads cost more than
 * scoring the few float32 vectors outright. */
#ifndef SMALL_EXACT_RAM
#define SMALL_EXACT_RAM 64
#endif
static bool small_match_set(const fanns_vread_t *vr, const fanns_search_req_t *req,
                            const match_set_t *ms, size_t k) {
    if (req->q_no_rescore) return false; /* the caller asked for the code scores */
    uint64_t n = roaring_bitmap_get_cardinality(ms->bits);
    double os = req->q_oversampling >= 1.0 ? req->q_oversampling : 1.0;
    return (double)n <= ceil((double)k * os) || (!vr->txn && n <= SMALL_EXACT_RAM);
}

/* Scan: every live point (ms NULL) or the match set; exact unless the codes may be used. */
static int search_scan(const fanns_coll_t *c, fanns_vread_t *vr, const fanns_search_req_t *req, cand_t *heap, size_t *nh,
                       size_t k, const match_set_t *ms, fanns_search_explain_t *ex) {
    const fanns_metric_t m = c->metric;
    const size_t d = c->dim;
    if (c->qc && !req->exact && !req->q_ignore && !(ms && small_match_set(vr, req, ms, k)))
        return search_scan_codes(c, vr, req, heap, nh, k, ms, ex);
    if (!ms && vr->txn) {
        /* On disk: one cursor walk over the collection's records (sequential in the file). */
        ex->strategy = "exact_scan";
        uint32_t off;
        const float *v;
        int r;
        while ((r = fanns__vr_next(vr, &off, &v)) == 1) {
            if (off >= c->nslots || !c->live[off]) continue;
            heap_push(heap, nh, k, (cand_t){metric_key(m, req->query, v, d), off});
            ex->dist_comps++;
        }
        return r;
    }
    if (!ms) {
        ex->strategy = "exact_scan";
        for (uint32_t off = 0; off < c->nslots; off++) {
            if (!c->live[off]) continue;
            heap_push(heap, nh, k, (cand_t){metric_key(m, req->query, c->vecs + (size_t)off * d, d), off});
            ex->dist_comps++;
        }
        return 0;
    }
    ex->strategy = "exact_filtered_scan";
    roaring_uint32_iterator_t it;
    roaring_init_iterator(ms->bits, &it);
    uint64_t found = 0;
    uint32_t buf[SCAN_BATCH];
    const bool pf = !vr->txn; /* vectors in RAM (on disk, vr copies them out of LMDB) */
    for (uint32_t n; (n = next_matches(c, ms, &it, buf)) > 0;) {
        found += n;
        for (uint32_t i = 0; pf && i < n && i < SCAN_AHEAD; i++) prefetch_bytes(c->vecs + (size_t)buf[i] * d, d * sizeof(float));
        for (uint32_t i = 0; i < n; i++) {
            if (pf && i + SCAN_AHEAD < n) prefetch_bytes(c->vecs + (size_t)buf[i + SCAN_AHEAD] * d, d * sizeof(float));
            const float *v = fanns__vr_get(vr, buf[i]);
            if (!v) return vr->rc;
            heap_push(heap, nh, k, (cand_t){metric_key(m, req->query, v, d), buf[i]});
        }
    }
    ex->actual_matches = found;
    ex->dist_comps += found;
    return 0;
}

/* The slots a filtered walk may return, as a bitset over offsets (malloc'ed, c->nslots
 * bits): the exact match set ms->bits (live points only) less the stale slots, which the
 * graph does not reflect (accept_graph's rule).  NULL when out of memory. */
static uint64_t *match_bits(const fanns_coll_t *c, const match_set_t *ms) {
    const uint32_t ns = c->nslots;
    const size_t words = ((size_t)ns + 63) / 64 + 1;
    uint64_t *b = calloc(words, sizeof(uint64_t));
    if (!b) return NULL;
#ifdef FANNS_ROARING_CONTAINERS
    /* Container by container (CRoaring 0.2's containers are public; CMakeLists.txt checks
     * that they compile): a bitset container is
     * one copy of 1024 words, array and run containers set their bits; iterating the values
     * of a broad match set (50k+) cost more than the walk saved. */
    const roaring_array_t *ra = &ms->bits->high_low_container;
    for (int32_t i = 0; i < ra->size; i++) {
        const uint32_t base = (uint32_t)ra->keys[i] << 16;
        const size_t w0 = base >> 6;
        if (w0 >= words) break;
        uint8_t t = ra->typecodes[i];
        const void *ct = container_unwrap_shared(ra->containers[i], &t);
        if (t == BITSET_CONTAINER_TYPE_CODE) {
            size_t nw = words - w0 < BITSET_CONTAINER_SIZE_IN_WORDS ? words - w0 : BITSET_CONTAINER_SIZE_IN_WORDS;
            memcpy(b + w0, ((const bitset_container_t *)ct)->array, nw * sizeof(uint64_t));
        } else if (t == ARRAY_CONTAINER_TYPE_CODE) {
            const array_container_t *a = ct;
            for (int32_t j = 0; j < a->cardinality; j++) {
                uint32_t off = base | a->array[j];
                if (off < ns) b[off >> 6] |= 1ull << (off & 63);
            }
        } else if (t == RUN_CONTAINER_TYPE_CODE) {
            const run_container_t *r = ct;
            for (int32_t j = 0; j < r->n_runs; j++)
                for (uint32_t off = base | r->runs[j].value, end = off + r->runs[j].length; off <= end && off < ns; off++)
                    b[off >> 6] |= 1ull << (off & 63);
        }
    }
    /* Offsets past the slots (none are expected: the match set lies in the live set) must
     * not pass the walk's test. */
    if (ns % 64) b[ns / 64] &= (1ull << (ns % 64)) - 1;
    for (size_t w = ns / 64 + (ns % 64 != 0); w < words; w++) b[w] = 0;
#else
    roaring_uint32_iterator_t it;
    roaring_init_iterator(ms->bits, &it);
    uint32_t buf[SCAN_BATCH];
    for (uint32_t n; (n = roaring_read_uint32_iterator(&it, buf, SCAN_BATCH)) > 0;)
        for (uint32_t i = 0; i < n; i++)
            if (buf[i] < ns) b[buf[i] >> 6] |= 1ull << (buf[i] & 63);
#endif
    for (uint32_t i = 0; i < c->nstale; i++) {
        uint32_t off = c->stale_list[i];
        if (off < ns) b[off >> 6] &= ~(1ull << (off & 63));
    }
    return b;
}

typedef struct graph_accept {
    const fanns_coll_t *c;
    const match_set_t *ms;
} graph_accept_t;

/* Graph results count only for live slots the graph reflects (see coll_int.h) that match. */
static bool accept_graph(void *ctx, uint32_t off) {
    const graph_accept_t *a = ctx;
    const fanns_coll_t *c = a->c;
    if (!(off < c->nslots && c->live[off] && c->stale_pos[off] == UINT32_MAX)) return false;
    if (!a->ms) return true;
    return matches(a->ms, off);
}

/* Graph search (with the match set as filter when ms != NULL) plus an exact score of every
 * stale slot, so points written since they were indexed are found at once.  Graph results
 * are rescored from the stored vectors so both paths give identical scores.  Sets *filled
 * to whether the graph returned k results. */
/* Whether a search may use the graph: not for exact, nor for quantization.ignore when the
 * graph's nodes hold codes (the float32 answer is then the exact scan's). */
static bool graph_usable(const fanns_coll_t *c, const fanns_search_req_t *req) {
    return c->hnsw && !req->exact && !(c->gcodec && req->q_ignore);
}

/* Block links switched off by FANNS_BLOCK_LINKS=off, for A/B measurements (read per
 * filtered graph search, like FANNS_FILTER_TRAVERSAL below; unset in production). */
static bool block_links_off(void) {
    const char *v = getenv("FANNS_BLOCK_LINKS");
    return v && !strcmp(v, "off");
}

/* A walk from an isolated entry whose best match lies nearer than this share of the entry's
 * distance found the query's neighbourhood after all (search_graph). */
#define ISOLATED_NEAR 0.8f

static int search_graph(const fanns_coll_t *c, fanns_vread_t *vr, const fanns_search_req_t *req, cand_t *heap, size_t *nh,
                        size_t k, match_set_t *ms, fanns_search_explain_t *ex, bool *isolated) {
    const fanns_metric_t m = c->metric;
    const size_t d = c->dim;
    size_t ef = req->ef ? req->ef : c->hnsw_efc;
    /* A graph over codes returns estimated distances: ceil(k * oversampling) candidates are
     * taken and rescored with the float32 vectors (params.quantization, as for code scans),
     * or with rescore false ranked by the estimates. */
    size_t kq = k;
    bool estimates = c->gcodec && req->q_no_rescore;
    if (c->gcodec) {
        double os = req->q_oversampling >= 1.0 ? req->q_oversampling : 1.0;
        kq = (size_t)ceil((double)k * os);
        if (kq > c->count) kq = c->count > k ? c->count : k;
    }
    fanns_hnsw_result_t *res = malloc(kq * sizeof(*res));
    fanns_hnsw_stats_t st = {0, 0, 0, 0, false, 0.0f, 0};
    size_t nres = 0;
    graph_accept_t acc = {c, ms};
    if (!res) return FANNS_ENOMEM;
    /* With no filter and nothing stale, every graph node is live and current: no callback,
     * which lets the graph take its fast path. */
    bool plain = !ms && c->nstale == 0;
    fanns_hnsw_search_opts_t so = {.mode = ms && ms->two_hop ? FANNS_HNSW_FILTER_TWO_HOP : FANNS_HNSW_FILTER_TRAVERSE};
    if (ms && ms->gbits) {
        so.bits = ms->gbits;
        so.nbits = c->nslots;
        /* Block links (blocks.c): a two-hop walk also gathers the matching block mates of
         * the points it expands.  Measured (100k, float32, every cell's fastest ef reaching
         * recall 0.95, one process): geometric mean of the per-cell speed-ups 1.24 at 768
         * dimensions (2-8x in anti-correlated and sparse cells, 0.64x in one broad OR cell),
         * 1.00 at 384.  Gathering only the blocks most of whose points match, or only around
         * points whose own list held few matches, measured no better. */
        if (so.mode == FANNS_HNSW_FILTER_TWO_HOP && !block_links_off()) so.xlinks = fanns__blocks_xlinks(c->blocks);
        if (so.mode == FANNS_HNSW_FILTER_TWO_HOP) {
            so.seeds = ms->seeds;
            so.nseeds = ms->nseeds;
        }
        ex->block_links = so.xlinks != NULL;
    }
    if (ms && so.mode == FANNS_HNSW_FILTER_TRAVERSE) {
        so.min_tests = ms->min_tests;
        so.min_pass = ms->min_pass;
        so.max_dc = ms->max_dc;
    }
    int rc = fanns_hnsw_search_ex(c->hnsw, req->query, kq, ef < kq ? kq : ef, plain ? NULL : accept_graph, &acc, &so, res,
                                  &nres, &st);
    if (rc) {
        free(res);
        return rc;
    }
    if (ms) ms->stopped = st.stopped;
    if (!ms) ex->strategy = c->gcodec ? "hnsw_codes" : "hnsw";
    else if (ms->two_hop) ex->strategy = c->gcodec ? "hnsw_codes_acorn" : "hnsw_acorn";
    else ex->strategy = c->gcodec ? "hnsw_codes_filtered" : "hnsw_filtered";
    ex->dist_comps += st.dist_comps;
    /* The walk's pass rate: the share of the points it tested that match (search_filtered). */
    if (ms && st.filter_tests) ex->local_selectivity = (double)st.filter_passes / (double)st.filter_tests;
    /* An isolated entry (no match within two hops of it) means an anti-correlated filter
     * unless the walk still found a match clearly nearer than that entry (the descent had
     * stopped short of the query's neighbourhood): measured on 100k x 384 and 768, the
     * isolated walks of anti-correlated filters found their best match at 0.92 - 2.05 times
     * the entry's distance, the two of positively correlated ones at 0.47 and 0.58 (with all
     * 10 answers).  Only for non-negative distances (not the dot product's). */
    if (isolated) {
        *isolated = st.entry_isolated;
        if (st.entry_isolated && nres && st.entry_dist > 0 && res[0].dist >= 0 &&
            res[0].dist < ISOLATED_NEAR * st.entry_dist)
            *isolated = false;
    }
    for (size_t i = 0; i < nres; i++) {
        if (estimates) {
            heap_push(heap, nh, k, (cand_t){dist_to_key(m, res[i].dist), res[i].off});
            continue;
        }
        const float *v = fanns__vr_get(vr, res[i].off);
        if (!v) {
            free(res);
            return vr->rc;
        }
        heap_push(heap, nh, k, (cand_t){metric_key(m, req->query, v, d), res[i].off});
    }
    free(res);
    size_t from_graph = nres;
    for (uint32_t i = 0; i < c->nstale; i++) {
        uint32_t off = c->stale_list[i];
        if (!c->live[off] || !matches(ms, off)) continue;
        const float *v = fanns__vr_get(vr, off);
        if (!v) return vr->rc;
        heap_push(heap, nh, k, (cand_t){metric_key(m, req->query, v, d), off});
        ex->dist_comps++;
        from_graph++;
    }
    return from_graph >= k ? 0 : 1; /* 1: could not fill k */
}

/* FANNS_SEEDED_WALK=off: anti-correlated filters go straight to the wide walk or the scan
 * (search_filtered, SEEDED_WHY), for A/B measurements; unset in production. */
static bool seeded_off(void) {
    const char *v = getenv("FANNS_SEEDED_WALK");
    return v && !strcmp(v, "off");
}

/* FANNS_ANTI_WALK=off: broad anti-correlated filters are scanned instead of walked two-hop
 * (search_filtered), for A/B measurements; unset in production. */
static bool anti_walk_off(void) {
    const char *v = getenv("FANNS_ANTI_WALK");
    return v && !strcmp(v, "off");
}

static bool isolated_off(void) {
    const char *v = getenv("FANNS_ISOLATED");
    return v && !strcmp(v, "off");
}

/* Filtered traversal forced by the environment variable FANNS_FILTER_TRAVERSAL, for A/B
 * measurements (read per filtered search, so a benchmark can switch it between passes):
 * "widen" (the probe and the widened beam, never two-hop), "acorn" (two-hop at every
 * selectivity), else the planner's choice. */
enum { TRAV_AUTO, TRAV_WIDEN, TRAV_ACORN };
static int traversal_override(void) {
    const char *v = getenv("FANNS_FILTER_TRAVERSAL");
    if (!v) return TRAV_AUTO;
    if (!strcmp(v, "widen")) return TRAV_WIDEN;
    if (!strcmp(v, "acorn")) return TRAV_ACORN;
    return TRAV_AUTO;
}

/* Two-hop traversal (see search_filtered): used below this global selectivity; its cost in
 * distances per unit of ef; the share of the global selectivity under which the pass rate
 * the walk saw means an anti-correlated filter.
 *
 * Graphs over codes walk two-hop too since the walk tests a bitset and gathers block links:
 * on 100k x 384 int8 (one process, variant order rotated per pass) two-hop with block links
 * against the widened beam measured 1.5-2.2x in the year, license_year and author 10-50%
 * cells, 1.1-1.3x in the other walked cells, 0.86x in the anti-correlated cat 10-50% cell;
 * geometric mean over all cells 1.26.  (Before bitsets, two-hop on codes lost 16-30% in
 * three cells and the widened beam was kept.) */
#define ACORN_MAX_SEL 0.5
#define ACORN_DC_PER_EF 30.0
#define ACORN_ANTI 0.5
/* What one distance of the two-hop walk costs in distances of the filtered scan: the walk's
 * are random reads (and it reads the lists of the rejected nodes it bridges), the scan's
 * stream in offset order with prefetching.  Measured on 100k x 384 float32 with the
 * full-scan threshold out of the way (bench_filtered --full-scan-kb 100, factors 1, 1.5,
 * 2.5 and 4 in one process): 2.5 gave the fastest configuration reaching recall 0.95 in
 * most 1-10% cells (the scan/walk crossover there) and the anti-correlated 1-10% cell its
 * tail back (p99/p50 2.2 instead of 5.3, fewer wasted walks); 4 scanned 10-50% filters the
 * walk answers in half the time. */
#define ACORN_GRAPH_VS_SCAN 2.5

/* How much a filtered beam is widened for a pass rate p (the share of the points the walk
 * or probe tested that match): 1 / p, at most 8x. */
static double widen_for(double p) { return p < 0.125 ? 8.0 : 1.0 / p; }

/* The wide two-hop walk for anti-correlated filters (search_filtered): its beam in units of
 * ef, and its cost in distances per unit of that beam (cat_not > 50% on 100k: 21, 18, 14 at
 * beams 256, 512, 1024 with 384 dimensions, 10 at 1024 with 768; the cost rule matters at
 * the wide beams). */
#define ACORN_WIDE 16
#define ACORN_WIDE_DC_PER_EF 12.0
/* Fewest seeds of the seeded walk for anti-correlated filters (search_filtered): against 16,
 * 32 raised recall at ef 16-24 in the anti-correlated cat cells (0.77 -> 0.84 and 0.97 -> 0.99
 * at 384 dimensions, 0.86 -> 0.88 at 768) at the same speed; 64 lowered it (0.98 at ef 32
 * against 0.99-1.00: the walk spreads its effort over more starting points). */
#define SEEDS_MIN 32

/* Broad filters (at least ACORN_MAX_SEL) were answered by a probe (an unfiltered search at
 * ef, to measure how much of the query's neighbourhood matches) and then a filtered walk with
 * the beam widened by that pass rate; the probe cost as much as the walk.  The walk now
 * measures the pass rate itself (search_filtered).  FANNS_BROAD_PROBE=on brings the probe
 * back, for A/B measurements. */
#define BROAD_MIN_TESTS_PER_EF 2.0

/* OPT_WHY.  Filters of 10-50% that match most of the query's own neighbourhood (a category
 * around a query inside it) are answered faster by a plain filtered walk, which navigates
 * like an unfiltered search, than by the two-hop walk, which scores only matches but reads
 * the lists of the rejected nodes it bridges.  The planner cannot tell the two cases apart
 * before walking, so such filters first get an optimistic plain walk (beam OPT_BEAM x ef)
 * with stop rules: it gives up once it has tested OPT_TESTS_PER_EF x ef nodes of which fewer
 * than OPT_MIN_PASS matched, or once it has spent what the two-hop walk would
 * (ACORN_DC_PER_EF x ef), and the two-hop walk answers as before.  Measured on 100k float32
 * (bench_filtered, one process, fastest ef reaching recall 0.95 per cell): cat 10-50% pos
 * 1.47-1.52x at 384 dimensions, cat_or 10-50% pos 1.40x at 768; the other 10-50% cells pay
 * for the failed attempt, 0.92-0.99x.  With the plain walk's cost (OPT_DC_PER_EF per unit
 * of ef) the scan threshold moves too: at 768 dimensions the cat cell otherwise scanned half
 * its queries at ef 192 (0.39x).  Graphs over codes keep the two-hop walk (not measured
 * there).  FANNS_OPT_WALK=off turns it off, for A/B measurements. */
#define OPT_MIN_SEL 0.1
#define OPT_BEAM 1.25
#define OPT_TESTS_PER_EF 1.0
#define OPT_MIN_PASS 0.6
#define OPT_DC_PER_EF 20.0
static bool opt_walk_off(void) {
    const char *v = getenv("FANNS_OPT_WALK");
    return v && !strcmp(v, "off");
}
static bool broad_probe_on(void) {
    const char *v = getenv("FANNS_BROAD_PROBE");
    return v && !strcmp(v, "on");
}


static int search_filtered(const fanns_coll_t *c, fanns_vread_t *vr, const fanns_search_req_t *req, cand_t *heap,
                           size_t *nh, size_t k, fanns_search_explain_t *ex) {
    fanns_pindex_points_t pts = {pts_pid, pts_payload, pts_offset, (void *)c};
    match_set_t ms = {c, req->filter, NULL, NULL, false, false, NULL, 0, 0.0f, 0, 0, NULL, 0};
    fanns_err_t err;
    int rc = fanns_pindex_eval(c->pindex, req->filter, c->live_bm, &pts, &ms.bits, &ms.sure, &ms.exact, &err);
    if (rc) return rc;
    uint64_t est;
    bool est_exact = ms.exact;
    if (ms.exact) est = roaring_bitmap_get_cardinality(ms.bits);
    else fanns_pindex_estimate(c->pindex, req->filter, c->live_bm, &pts, &est, &est_exact);
    ex->estimated_matches = est;
    ex->estimate_exact = est_exact;

    /* Costs in distance computations (see the block comment above). */
    size_t ef = req->ef ? req->ef : c->hnsw_efc;
    if (ef < k) ef = k;
    uint64_t full_scan_points = c->full_scan_kb * 1024 / ((uint64_t)c->dim * 4);
    double sel = c->count ? (double)est / (double)c->count : 1.0;
    bool use_graph = graph_usable(c, req) && est > full_scan_points;
    size_t ef_graph = ef;
    bool wide = false; /* anti-correlated: the wide two-hop walk or the scan */
    bool broad = false; /* one filtered walk with stop rules, no probe */
    bool optimistic = false;
    int trav = traversal_override();
    if (use_graph && trav != TRAV_WIDEN && (trav == TRAV_ACORN || sel < ACORN_MAX_SEL)) {
        /* Two-hop traversal (ACORN-1, fanns_hnsw_search_ex): only matching points are scored
         * and expanded, so it costs about ACORN_DC_PER_EF * ef distances whatever the
         * selectivity (measured on 100k x 384 at 1-50%: 39 per unit of ef at ef 16, 25 at
         * 64, 19 at 128), with no probe (a probe at ef cost as much as the walk; the
         * widened beam's probe then mostly chose ef/local, which two-hop does not need).
         * The scan is chosen when that is no dearer (ACORN_GRAPH_VS_SCAN).  The
         * walk's own pass rate (matches among the points it tested) takes the probe's other
         * role: far below the global selectivity, the filter is anti-correlated with the
         * query (below). */
        bool opt = trav == TRAV_AUTO && sel >= OPT_MIN_SEL && !c->gcodec && !opt_walk_off();
        if ((double)est <= ACORN_GRAPH_VS_SCAN * (opt ? OPT_DC_PER_EF : ACORN_DC_PER_EF) * (double)ef) use_graph = false;
        else ms.two_hop = true;
        optimistic = use_graph && opt;
    } else if (use_graph && trav == TRAV_AUTO && !broad_probe_on()) {
        /* Broad filter (BROAD_PROBE_OFF_WHY): one filtered walk, which finds out the
         * correlation as it goes.  It stops once it has tested BROAD_MIN_TESTS nodes of
         * which fewer than ACORN_ANTI times the global selectivity matched (anti-correlated:
         * the wide walk or the scan, below), or when it has spent as many distances as
         * scanning every match would. */
        ms.min_tests = (uint32_t)(BROAD_MIN_TESTS_PER_EF * (double)ef);
        ms.min_pass = (float)(ACORN_ANTI * sel);
        ms.max_dc = est;
        ef_graph = (size_t)((double)ef * widen_for(sel));
        broad = true;
    } else if (use_graph) {
        /* Widened beam.  Correlation probe: the share of the query's unfiltered neighbourhood
         * that passes.  It decides twice.  When it is far below the global selectivity, the
         * filter cuts the query's region out of the graph (the negatively correlated case
         * where filtered traversal loses recall): the wide two-hop walk or the scan (below).
         * Otherwise a filtered traversal costs about ef * 2m / local distances (a positively
         * correlated filter is cheap to traverse even when it is narrow overall), and is
         * chosen when that beats scanning every match, with the beam widened by the local
         * pass rate so about ef passing candidates are kept. */
        fanns_hnsw_result_t *probe = malloc(ef * sizeof(*probe));
        size_t np = 0, pass = 0;
        fanns_hnsw_stats_t pst = {0, 0, 0, 0, false, 0.0f, 0};
        graph_accept_t acc = {c, NULL};
        if (!probe) rc = FANNS_ENOMEM;
        else rc = fanns_hnsw_search(c->hnsw, req->query, ef, ef, c->nstale ? accept_graph : NULL, &acc, probe, &np, &pst);
        for (size_t i = 0; rc == 0 && i < np; i++) pass += matches(&ms, probe[i].off);
        free(probe);
        if (rc) goto out;
        ex->dist_comps += pst.dist_comps;
        double local = np ? (double)pass / (double)np : 0.0;
        ex->local_selectivity = local;
        double graph_cost = (double)pst.dist_comps * widen_for(local);
        if (local < 0.5 * sel || pass == 0) {
            use_graph = false;
            wide = true;
        } else if (graph_cost >= (double)est) use_graph = false;
        else ef_graph = (size_t)((double)ef * widen_for(local));
    }
    size_t nh0 = *nh;
    if (use_graph) {
        fanns_search_req_t r2 = *req;
        r2.ef = ef_graph;
        /* An exact match set becomes a bitset the walk tests inline. */
        if (ms.exact && !(ms.gbits = match_bits(c, &ms))) {
            rc = FANNS_ENOMEM;
            goto out;
        }
        double probed = ex->local_selectivity;
        bool isolated = false, done = false;
        if (optimistic) {
            /* A plain filtered walk first (OPT_WHY); the two-hop walk below if it stops. */
            fanns_search_req_t r3 = *req;
            r3.ef = (size_t)((double)ef * OPT_BEAM);
            ms.two_hop = false;
            ms.min_tests = (uint32_t)(OPT_TESTS_PER_EF * (double)ef);
            ms.min_pass = (float)OPT_MIN_PASS;
            ms.max_dc = (uint64_t)(ACORN_DC_PER_EF * (double)ef);
            rc = search_graph(c, vr, &r3, heap, nh, k, &ms, ex, NULL);
            if (rc < 0) goto out;
            if (rc == 0 && !ms.stopped) {
                done = true;
            } else {
                *nh = nh0;
                ms.two_hop = true;
                ms.min_tests = 0;
                ms.min_pass = 0;
                ms.max_dc = 0;
                ms.stopped = 0;
            }
        }
        if (!done) rc = search_graph(c, vr, &r2, heap, nh, k, &ms, ex, &isolated);
        if (broad) {
            /* Stopped for its pass rate: anti-correlated; for its budget: the scan. */
            if (rc == 0 && ms.stopped) rc = 1;
            wide = ms.stopped == FANNS_HNSW_STOP_PASS_RATE;
        } else if (ms.two_hop && ex->local_selectivity >= 0) {
            /* Anti-correlated: the walk's pass rate far below the global selectivity, or no
             * match within two hops of where it entered level 0 (it then searched breadth
             * first for one and walked from wherever it came out, far from the query). */
            if (rc == 0 && (ex->local_selectivity < ACORN_ANTI * sel || (isolated && !isolated_off()))) rc = 1;
            wide = rc == 1;
        } else if (!done) {
            ex->local_selectivity = probed; /* the probe's, as explained for the widened beam */
        }
        if (rc == 1) *nh = nh0;
    }
    if (wide && ms.exact && sel < ACORN_MAX_SEL && !seeded_off()) {
        /* SEEDED_WHY.  An anti-correlated filter under ACORN_MAX_SEL (a category far from the
         * query): the walk that entered level 0 near the query found (almost) no matches
         * there.  Instead of widening that walk, a two-hop walk at ef starts from SEEDS_MIN
         * or ef matches at evenly spaced ranks of the match set (deterministic: replicas and
         * repeated queries take the same seeds), so it begins among the matches and closes
         * in on the query through them and their block links.  Measured on 100k float32
         * (bench_filtered, one process, against FANNS_SEEDED_WALK=off, i.e. the wide walk or
         * the scan), fastest ef reaching recall 0.95, anti-correlated cells: cat 1-10% 3.4x
         * at 768 dimensions (ef 24, recall 0.967; p99/p50 3.1 against 4.6) and 2.8x at 384;
         * cat 10-50% 1.27x at 768 (p99/p50 1.6 against 5.1) and 2.5x at 384.  The walk is
         * less exact at a small ef (cat 1-10% at ef 16: recall 0.86 against 0.96 with the
         * scans).  At or above ACORN_MAX_SEL (NOT of the query's own archive) seeds spread
         * over half the collection left the walk at recall 0.27-0.54, so the wide walk keeps
         * those.  Neither 3 x ef seeds nor a beam of 1.5 or 2 x ef did better. */
        uint64_t card = roaring_bitmap_get_cardinality(ms.bits);
        size_t ns = ef < SEEDS_MIN ? SEEDS_MIN : ef;
        if (ns > card) ns = (size_t)card;
        uint32_t *seeds = ns ? malloc(ns * sizeof(*seeds)) : NULL;
        if (ns && !seeds) {
            rc = FANNS_ENOMEM;
            goto out;
        }
        size_t got = 0;
        for (size_t i = 0; i < ns; i++)
            if (roaring_bitmap_select(ms.bits, (uint32_t)(((2 * i + 1) * card) / (2 * ns)), &seeds[got])) got++;
        if (ms.exact && !ms.gbits && !(ms.gbits = match_bits(c, &ms))) {
            free(seeds);
            rc = FANNS_ENOMEM;
            goto out;
        }
        if (got) {
            fanns_search_req_t r2 = *req;
            r2.ef = ef;
            double local = ex->local_selectivity;
            ms.two_hop = true;
            ms.seeds = seeds;
            ms.nseeds = (uint32_t)got;
            use_graph = true;
            rc = search_graph(c, vr, &r2, heap, nh, k, &ms, ex, NULL);
            ms.seeds = NULL;
            ms.nseeds = 0;
            ex->local_selectivity = local;
            if (rc == 0) {
                ex->strategy = c->gcodec ? "hnsw_codes_acorn_seeded" : "hnsw_acorn_seeded";
                wide = false;
            } else if (rc == 1) {
                *nh = nh0;
            }
        }
        free(seeds);
        if (rc < 0) goto out;
    }
    if (wide && !anti_walk_off()) {
        /* Anti-correlated: the query's region holds (almost) no matches, and a walk must go
         * out to matching points that are all far from it.  Graph search for such a distant
         * query needs a much wider beam (ACORN_WIDE times ef) to find its true neighbours;
         * the two-hop walk at that width is the answer when it costs less than the scan.
         * Measured on 100k x 384 float32 (one process, against FANNS_ANTI_WALK=off, i.e. the
         * scan), fastest ef reaching recall 0.95: cat_not > 50% (NOT the query's own archive;
         * graph search without the wide beam found 0-9% of its answer) 3.5x, recall 0.93 at
         * beam 512 and 0.97 at 1024 in 2.7 and 4.5 ms against 13 ms for the scan (14 - 21
         * distances per unit of beam); the anti-correlated cat 10-50% cell 2.6x (ef 16,
         * recall 0.99).  At 768 dimensions: 1.65x and 1.93x. */
        size_t efa = ef * ACORN_WIDE;
        if (ACORN_GRAPH_VS_SCAN * ACORN_WIDE_DC_PER_EF * (double)efa < (double)est) {
            fanns_search_req_t r2 = *req;
            r2.ef = efa;
            double local = ex->local_selectivity;
            if (ms.exact && !ms.gbits && !(ms.gbits = match_bits(c, &ms))) {
                rc = FANNS_ENOMEM;
                goto out;
            }
            ms.two_hop = true;
            use_graph = true;
            rc = search_graph(c, vr, &r2, heap, nh, k, &ms, ex, NULL);
            ex->local_selectivity = local;
            if (rc == 0) ex->strategy = c->gcodec ? "hnsw_codes_acorn_wide" : "hnsw_acorn_wide";
            else *nh = nh0;
        } else rc = use_graph ? 1 : 0;
    }
    if (use_graph && rc == 1) {
        /* The traversal could not fill the result (the filter isolates the matches from the
         * query's region), or the walk found the filter anti-correlated and the wide walk
         * costs more than the scan: the exact scan over the match set is the answer. */
        uint64_t dc = ex->dist_comps;
        rc = search_scan(c, vr, req, heap, nh, k, &ms, ex);
        ex->dist_comps += dc;
        if (c->gcodec) ex->strategy = ms.two_hop ? "hnsw_codes_acorn+exact_fallback" : "hnsw_codes_filtered+exact_fallback";
        else ex->strategy = ms.two_hop ? "hnsw_acorn+exact_fallback" : "hnsw_filtered+exact_fallback";
    } else if (!use_graph) {
        uint64_t dc = ex->dist_comps;
        rc = search_scan(c, vr, req, heap, nh, k, &ms, ex);
        ex->dist_comps += dc;
    }
out:
    free(ms.gbits);
    roaring_bitmap_free(ms.bits);
    if (ms.sure) roaring_bitmap_free(ms.sure);
    return rc;
}

int fanns_coll_search(fanns_coll_t *c, const fanns_search_req_t *req, fanns_hit_t **out, size_t *n,
                      fanns_err_t *err) {
    int rc = 0;
    size_t k = req->offset + req->limit, nh = 0;
    cand_t *heap = NULL;
    fanns_hit_t *hits = NULL;
    fanns_vread_t vr;
    bool env;

    *out = NULL;
    *n = 0;
    memset(&vr, 0, sizeof(vr));
    fanns__coll_lock(c, false, &env);
    if (c->dropped) {
        rc = fanns_err_set(err, FANNS_ENOTFOUND, NULL, "Not found: Collection `%s` doesn't exist!", c->name);
        goto fail;
    }
    if (k > c->count) k = c->count;
    if (k == 0) goto done;
    heap = malloc(k * sizeof(*heap));
    if (!heap) {
        rc = fanns_err_set(err, FANNS_ENOMEM, NULL, "out of memory");
        goto fail;
    }
    /* One read transaction for the whole search when the vectors are on disk. */
    if ((rc = fanns__vr_open(&vr, c, NULL)) != 0) {
        read_err(err, rc);
        goto fail;
    }
    fanns_search_explain_t ex;
    memset(&ex, 0, sizeof(ex));
    ex.points = c->count;
    ex.local_selectivity = -1;
    if (req->filter) rc = search_filtered(c, &vr, req, heap, &nh, k, &ex);
    else if (graph_usable(c, req)) {
        rc = search_graph(c, &vr, req, heap, &nh, k, NULL, &ex, NULL);
        if (rc == 1) { /* fewer than k reachable: answer exactly */
            nh = 0;
            rc = search_scan(c, &vr, req, heap, &nh, k, NULL, &ex);
        }
    }
    else rc = search_scan(c, &vr, req, heap, &nh, k, NULL, &ex);
    if (req->explain) *req->explain = ex;
    if (rc) {
        read_err(err, rc);
        goto fail;
    }
    qsort(heap, nh, sizeof(*heap), cmp_better);
    if (nh > req->offset) {
        size_t cnt = nh - req->offset;
        hits = calloc(cnt, sizeof(*hits));
        if (!hits) {
            rc = fanns_err_set(err, FANNS_ENOMEM, NULL, "out of memory");
            goto fail;
        }
        const fanns_metric_t m = c->metric;
        for (size_t i = 0; i < cnt; i++) {
            const cand_t *cd = &heap[req->offset + i];
            float score = key_to_score(m, cd->key);
            if (req->has_threshold &&
                (fanns_metric_higher_better(m) ? score < req->score_threshold : score > req->score_threshold))
                break;
            rc = fanns__coll_fill_hit(c, cd->off, req->with_vector, !req->no_payload, &vr, &hits[*n]);
            hits[*n].score = score;
            (*n)++;
            if (rc) {
                read_err(err, rc);
                goto fail;
            }
        }
    }
done:
    fanns__vr_close(&vr);
    fanns__coll_unlock(c, env);
    free(heap);
    *out = hits;
    return 0;
fail:
    fanns__vr_close(&vr);
    fanns__coll_unlock(c, env);
    free(heap);
    fanns_hits_free(hits, *n);
    *n = 0;
    return rc;
}

int fanns_coll_get_points(fanns_coll_t *c, const fanns_pid_t *ids, size_t nids, bool with_vector,
                          fanns_hit_t **out, size_t *n, fanns_err_t *err) {
    int rc = 0;
    fanns_hit_t *hits = calloc(nids ? nids : 1, sizeof(*hits));
    fanns_vread_t vr;
    bool env;
    *n = 0;
    *out = NULL;
    memset(&vr, 0, sizeof(vr));
    if (!hits) return fanns_err_set(err, FANNS_ENOMEM, NULL, "out of memory");
    fanns__coll_lock(c, false, &env);
    if (c->dropped) {
        rc = fanns_err_set(err, FANNS_ENOTFOUND, NULL, "Not found: Collection `%s` doesn't exist!", c->name);
        goto fail;
    }
    if (with_vector && (rc = fanns__vr_open(&vr, c, NULL)) != 0) {
        read_err(err, rc);
        goto fail;
    }
    for (size_t i = 0; i < nids; i++) {
        int64_t off = fanns__coll_find(c, &ids[i]);
        if (off < 0) continue;
        rc = fanns__coll_fill_hit(c, (uint32_t)off, with_vector, true, &vr, &hits[*n]);
        (*n)++;
        if (rc) {
            read_err(err, rc);
            goto fail;
        }
    }
    fanns__vr_close(&vr);
    fanns__coll_unlock(c, env);
    *out = hits;
    return 0;
fail:
    fanns__vr_close(&vr);
    fanns__coll_unlock(c, env);
    fanns_hits_free(hits, *n);
    *n = 0;
    return rc;
}

int fanns_coll_count(fanns_coll_t *c, const fanns_filter_t *filter, uint64_t *count, fanns_err_t *err) {
    uint64_t cnt = 0;
    pthread_rwlock_rdlock(&c->lock);
    if (c->dropped) {
        pthread_rwlock_unlock(&c->lock);
        return fanns_err_set(err, FANNS_ENOTFOUND, NULL, "Not found: Collection `%s` doesn't exist!", c->name);
    }
    if (!filter) {
        cnt = c->count;
    } else {
        for (uint32_t off = 0; off < c->nslots; off++)
            if (c->live[off] && fanns_filter_match(filter, &c->pids[off], c->payloads[off])) cnt++;
    }
    pthread_rwlock_unlock(&c->lock);
    *count = cnt;
    return 0;
}
