/*
 * indexer.c: keeps each collection's HNSW graph (index/hnsw.h) in step with its points.
 *
 * The writer never touches the graph: every slot it writes or frees is marked stale and
 * queued (fanns__index_touch, under the collection's write lock).  One indexer thread per
 * database takes queued slots in batches: under the write lock it copies their vectors and
 * vector versions, without the lock it inserts them into the graph (many threads for a large
 * batch) or deletes them, and under the write lock again it clears the stale mark of every
 * slot whose vector did not change meanwhile.  Searches run on the graph concurrently; they
 * trust it only for slots that are not stale and score stale slots exactly, so the answer
 * never lags behind an acknowledged write.  A collection is "yellow" while slots are stale.
 *
 * The graph is created when the collection's vectors pass optimizer_config.indexing_threshold
 * (in KB, as Qdrant; 0 disables indexing, as does hnsw_config.m = 0) and is rebuilt when
 * hnsw_config changes.  It is saved to <data>/index/c<cid>.hnsw with, beside it,
 * c<cid>.ivv: the vector version the graph holds for every slot, under the same stamp.  At
 * start-up a graph is trusted only if both files verify and agree; then slots whose version
 * differs from LMDB's are re-indexed.  Anything else rebuilds from LMDB.
 *
 * The same thread trains and re-encodes the collection's vector codes (quant.c) before it
 * indexes: those jobs are scheduled by the writer and run here with no lock held.
 */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "coll.h"
#include "log.h"

#define BATCH_SMALL 1024
#define BATCH_LARGE 16384
#define SAVE_EVERY_OPS 20000
#define IVV_MAGIC 0x76766946534e4e41ULL /* "ANNSFivv" */
#define GCODEC_MAGIC 0x31434447534e4e46ULL /* "FNNSGDC1" */

/* ---- configuration ------------------------------------------------------------------ */

static uint64_t json_u64_or(const json_t *o, const char *key, uint64_t def) {
    json_t *v = json_object_get(o, key);
    return json_is_integer(v) && json_integer_value(v) >= 0 ? (uint64_t)json_integer_value(v) : def;
}

void fanns__index_config(fanns_coll_t *c) {
    json_t *h = json_object_get(c->config, "hnsw_config");
    json_t *o = json_object_get(c->config, "optimizer_config");
    uint32_t m = (uint32_t)json_u64_or(h, "m", 16), efc = (uint32_t)json_u64_or(h, "ef_construct", 100);
    if (m > 512) m = 512;
    if (efc < 4) efc = 4;
    if (c->hnsw && (m != c->hnsw_m || efc != c->hnsw_efc)) c->reindex = true;
    c->hnsw_m = m;
    c->hnsw_efc = efc;
    c->index_threshold_kb = json_u64_or(o, "indexing_threshold", 10000);
    c->full_scan_kb = json_u64_or(h, "full_scan_threshold", 10000);
    /* Qdrant's payload_m (null: m) sizes the block links; more than m is not useful. */
    uint64_t pm = json_u64_or(h, "payload_m", m);
    c->payload_m = pm > m ? m : (uint32_t)pm;
    c->pgen++;
}

static bool index_wanted(const fanns_coll_t *c) {
    if (c->hnsw_m == 0 || c->index_threshold_kb == 0) return false;
    return c->count * (uint64_t)c->dim * 4 >= c->index_threshold_kb * 1024;
}

/* codec: the codec whose codes the graph's nodes hold (see fanns__quant_graph_codec), or NULL. */
static fanns_hnsw_params_t hnsw_params(const fanns_coll_t *c, const fanns_codec_t *codec) {
    fanns_hnsw_params_t p = {.dim = c->dim, .metric = c->metric, .m = c->hnsw_m, .ef_construct = c->hnsw_efc,
                             .seed = 0x5eed0000ULL + c->cid, .codec = codec};
    return p;
}

/* ---- stale set and queue (write lock held) -------------------------------------------- */

static int stale_add(fanns_coll_t *c, uint32_t off) {
    if (c->stale_pos[off] != UINT32_MAX) return 0;
    if (c->nstale == c->capstale) {
        uint32_t ncap = c->capstale ? c->capstale * 2 : 1024;
        uint32_t *n = realloc(c->stale_list, (size_t)ncap * sizeof(*n));
        if (!n) return FANNS_ENOMEM;
        c->stale_list = n;
        c->capstale = ncap;
    }
    c->stale_pos[off] = c->nstale;
    c->stale_list[c->nstale++] = off;
    return 0;
}

static void stale_remove(fanns_coll_t *c, uint32_t off) {
    uint32_t pos = c->stale_pos[off];
    if (pos == UINT32_MAX) return;
    uint32_t last = c->stale_list[--c->nstale];
    c->stale_list[pos] = last;
    c->stale_pos[last] = pos;
    c->stale_pos[off] = UINT32_MAX;
}

static int queue_push(fanns_coll_t *c, uint32_t off) {
    if (c->queued[off]) return 0;
    if (c->iq_len == c->iq_cap) {
        size_t ncap = c->iq_cap ? c->iq_cap * 2 : 1024;
        uint32_t *n = malloc(ncap * sizeof(*n));
        if (!n) return FANNS_ENOMEM;
        for (size_t i = 0; i < c->iq_len; i++) n[i] = c->iq[(c->iq_head + i) % c->iq_cap];
        free(c->iq);
        c->iq = n;
        c->iq_head = 0;
        c->iq_cap = ncap;
    }
    c->iq[(c->iq_head + c->iq_len) % c->iq_cap] = off;
    c->iq_len++;
    c->queued[off] = 1;
    return 0;
}

int fanns__index_touch(fanns_coll_t *c, uint32_t off) {
    if (!c->hnsw) return 0;
    int rc = stale_add(c, off);
    return rc ? rc : queue_push(c, off);
}

/* Marks every slot stale and queued (a new or rebuilt graph). */
static int touch_all(fanns_coll_t *c) {
    for (uint32_t off = 0; off < c->nslots; off++) {
        int rc = fanns__index_touch(c, off);
        if (rc) return rc;
    }
    return 0;
}

void fanns__index_stats(const fanns_coll_t *c, uint64_t *indexed, bool *indexing) {
    if (!c->hnsw) {
        *indexed = 0;
        /* Waiting for the indexer to create the graph counts as indexing. */
        *indexing = index_wanted(c);
        return;
    }
    uint64_t stale_live = 0;
    for (uint32_t i = 0; i < c->nstale; i++) stale_live += c->live[c->stale_list[i]];
    *indexed = c->count - stale_live;
    /* A graph whose nodes hold another codec than the published one is about to be rebuilt. */
    int ready = fanns__quant_graph_ready(c), have = c->gcodec ? (int)fanns_codec_kind(c->gcodec) : 0;
    bool rebuild = fanns__quant_graph_kind(c) ? (ready == fanns__quant_graph_kind(c) && have != ready) : have != 0;
    /* Block links not yet checked against the current payloads count too (blocks.c). */
    bool blocks = (c->payload_m || c->blocks) && __atomic_load_n(&c->blocks_pgen, __ATOMIC_RELAXED) != c->pgen;
    *indexing = c->nstale > 0 || c->reindex || rebuild || blocks;
}

/* ---- files -------------------------------------------------------------------------- */

static void index_paths(const fanns_coll_t *c, char *graph, char *ivv, size_t n) {
    snprintf(graph, n, "%s/index/c%u.hnsw", c->db->dir, c->cid);
    snprintf(ivv, n, "%s/index/c%u.ivv", c->db->dir, c->cid);
}

static void blocks_path(const fanns_coll_t *c, char *path, size_t n) {
    snprintf(path, n, "%s/index/c%u.blk", c->db->dir, c->cid);
}

static void codec_path(const fanns_coll_t *c, char *path, size_t n) {
    snprintf(path, n, "%s/index/c%u.gcodec", c->db->dir, c->cid);
}

/* ivv file: magic, stamp, nslots, ivver[nslots], fnv1a of all before. */
static int save_ivv(const char *path, uint64_t stamp, const uint64_t *ivv, uint32_t nslots) {
    char tmp[1100];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return FANNS_EIO;
    uint64_t hdr[3] = {IVV_MAGIC, stamp, nslots};
    uint64_t h = fanns__fnv1a(0xcbf29ce484222325ULL, hdr, sizeof(hdr));
    h = fanns__fnv1a(h, ivv, (size_t)nslots * 8);
    bool ok = fwrite(hdr, sizeof(hdr), 1, f) == 1 && (nslots == 0 || fwrite(ivv, (size_t)nslots * 8, 1, f) == 1) &&
              fwrite(&h, 8, 1, f) == 1 && fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return FANNS_EIO;
    }
    return 0;
}

/* gcodec file (the codec a graph over codes was built with): magic, stamp, length, the
 * fanns_codec_serialize bytes, fnv1a of all before. */
static int save_gcodec(const char *path, uint64_t stamp, const fanns_codec_t *codec) {
    uint8_t *buf = NULL;
    size_t len = 0;
    fanns_err_t err;
    if (fanns_codec_serialize(codec, &buf, &len, &err)) return FANNS_ENOMEM;
    char tmp[1100];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        free(buf);
        return FANNS_EIO;
    }
    uint64_t hdr[3] = {GCODEC_MAGIC, stamp, len};
    uint64_t h = fanns__fnv1a(fanns__fnv1a(0xcbf29ce484222325ULL, hdr, sizeof(hdr)), buf, len);
    bool ok = fwrite(hdr, sizeof(hdr), 1, f) == 1 && fwrite(buf, len, 1, f) == 1 && fwrite(&h, 8, 1, f) == 1 &&
              fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok = (fclose(f) == 0) && ok;
    free(buf);
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return FANNS_EIO;
    }
    return 0;
}

/* Reads a gcodec file; *stamp receives its stamp.  FANNS_ENOTFOUND if there is none. */
static int load_gcodec(const char *path, uint64_t *stamp, fanns_codec_t **out) {
    FILE *f = fopen(path, "rb");
    uint64_t hdr[3], h;
    uint8_t *buf = NULL;
    int rc = FANNS_ECORRUPT;
    fanns_err_t err;
    if (!f) return FANNS_ENOTFOUND;
    if (fread(hdr, sizeof(hdr), 1, f) != 1 || hdr[0] != GCODEC_MAGIC || hdr[2] == 0 || hdr[2] > (1u << 30)) goto out;
    if (!(buf = malloc(hdr[2]))) {
        rc = FANNS_ENOMEM;
        goto out;
    }
    if (fread(buf, hdr[2], 1, f) != 1 || fread(&h, 8, 1, f) != 1 || fgetc(f) != EOF) goto out;
    if (h != fanns__fnv1a(fanns__fnv1a(0xcbf29ce484222325ULL, hdr, sizeof(hdr)), buf, hdr[2])) goto out;
    rc = fanns_codec_deserialize(buf, hdr[2], out, &err);
    *stamp = hdr[1];
out:
    free(buf);
    fclose(f);
    return rc;
}

static int load_ivv(const char *path, uint64_t stamp, uint64_t **out, uint32_t *nslots) {
    FILE *f = fopen(path, "rb");
    uint64_t hdr[3], h, want;
    uint64_t *v = NULL;
    int rc = FANNS_ECORRUPT;
    if (!f) return FANNS_ENOTFOUND;
    if (fread(hdr, sizeof(hdr), 1, f) != 1 || hdr[0] != IVV_MAGIC || hdr[1] != stamp || hdr[2] > UINT32_MAX) goto out;
    v = malloc((hdr[2] ? hdr[2] : 1) * 8);
    if (!v) {
        rc = FANNS_ENOMEM;
        goto out;
    }
    if ((hdr[2] && fread(v, hdr[2] * 8, 1, f) != 1) || fread(&h, 8, 1, f) != 1) goto out;
    want = fanns__fnv1a(fanns__fnv1a(0xcbf29ce484222325ULL, hdr, sizeof(hdr)), v, hdr[2] * 8);
    if (h != want || fgetc(f) != EOF) goto out;
    *out = v;
    *nslots = (uint32_t)hdr[2];
    v = NULL;
    rc = 0;
out:
    free(v);
    fclose(f);
    return rc;
}

/* Saves graph and versions.  Called by the indexer (the only thread that changes the graph). */
static void index_save(fanns_coll_t *c) {
    char graph[1024], ivv[1024], dir[1024];
    fanns_err_t err;
    snprintf(dir, sizeof(dir), "%s/index", c->db->dir);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        fanns_warn("cannot create %s: %s", dir, strerror(errno));
        return;
    }
    index_paths(c, graph, ivv, sizeof(graph));
    pthread_rwlock_rdlock(&c->lock);
    fanns_hnsw_t *h = c->hnsw;
    const fanns_codec_t *gc = c->gcodec; /* replaced only with hnsw, by this thread */
    bool dropped = c->dropped;
    uint32_t n = c->nslots;
    uint64_t *copy = malloc((n ? n : 1) * 8);
    if (copy) memcpy(copy, c->ivver, (size_t)n * 8);
    pthread_rwlock_unlock(&c->lock);
    if (!h || dropped || !copy) {
        free(copy);
        return;
    }
    /* A fresh stamp per save ties the two files together. */
    static _Atomic uint64_t counter;
    uint64_t stamp = ((uint64_t)getpid() << 32) ^ (uint64_t)atomic_fetch_add(&counter, 1) ^ ((uint64_t)c->cid << 48) ^
                     (uint64_t)time(NULL);
    char gcp[1024];
    codec_path(c, gcp, sizeof(gcp));
    if (!gc) unlink(gcp);
    char blk[1024];
    blocks_path(c, blk, sizeof(blk));
    err.msg[0] = 0;
    /* The codec file first: a graph file is only trusted next to a codec file of its stamp.
     * The block links (replaced only by this thread) are read without the lock. */
    if ((gc && save_gcodec(gcp, stamp, gc) != 0) || fanns_hnsw_save(h, graph, stamp, &err) != 0 ||
        save_ivv(ivv, stamp, copy, n) != 0 || fanns__blocks_save(c->blocks, blk, stamp) != 0)
        fanns_warn("saving the graph of %s failed: %s", c->name, err.msg);
    else
        fanns_info("saved the graph of %s (%zu nodes)", c->name, fanns_hnsw_count(h));
    free(copy);
}

void fanns__index_load(fanns_coll_t *c) {
    char graph[1024], ivv[1024];
    fanns_err_t err;
    fanns_hnsw_t *h = NULL;
    uint64_t stamp = 0, *vv = NULL;
    uint32_t nv = 0;
    if (!index_wanted(c)) return;
    char gcp[1024];
    codec_path(c, gcp, sizeof(gcp));
    fanns_codec_t *gc = NULL;
    uint64_t gstamp = 0;
    int rc = load_gcodec(gcp, &gstamp, &gc);
    if (rc == FANNS_ENOTFOUND) rc = 0; /* a float32 graph */
    fanns_hnsw_params_t p = hnsw_params(c, gc);
    index_paths(c, graph, ivv, sizeof(graph));
    if (rc == 0) rc = fanns_hnsw_load(graph, &p, &h, &stamp, &err);
    if (rc == 0 && gc && gstamp != stamp) rc = FANNS_ECORRUPT;
    if (rc == 0) rc = load_ivv(ivv, stamp, &vv, &nv);
    if (rc != 0) {
        if (rc != FANNS_ENOTFOUND) fanns_warn("graph of %s not usable (%s): rebuilding it from storage", c->name, fanns_err_name(rc));
        fanns_hnsw_free(h);
        fanns_codec_free(gc);
        return; /* the indexer creates the graph from scratch */
    }
    c->hnsw = h;
    c->gcodec = gc;
    c->gsum = fanns__quant_codec_sum(gc);
    uint32_t stale = 0;
    for (uint32_t off = 0; off < c->nslots; off++) {
        c->ivver[off] = off < nv ? vv[off] : 0;
        bool current = c->live[off] ? c->ivver[off] == c->vversions[off] : !fanns_hnsw_contains(h, off);
        if (!current) {
            fanns__index_touch(c, off);
            stale++;
        }
    }
    /* Graph nodes beyond the slots (freed at the end) must go too. */
    for (uint32_t off = c->nslots; off < nv; off++)
        if (fanns_hnsw_contains(h, off)) fanns_hnsw_delete(h, off);
    free(vv);
    char blk[1024];
    blocks_path(c, blk, sizeof(blk));
    fanns_blocks_t *bs = NULL;
    rc = c->payload_m ? fanns__blocks_load(blk, stamp, c->payload_m, c->nslots, h, &bs) : FANNS_ENOTFOUND;
    if (rc && rc != FANNS_ENOTFOUND) fanns_warn("block links of %s not usable (%s): linking them again", c->name, fanns_err_name(rc));
    c->blocks = bs;
    c->blocks_pgen = c->pgen - 1; /* checked against the payload indexes once indexed */
    fanns_info("loaded the graph of %s: %zu nodes, %u slots to re-index%s", c->name, fanns_hnsw_count(h), stale,
               bs ? ", block links" : "");
}

void fanns__index_destroy(fanns_coll_t *c) {
    if (c->delete_files && c->db && c->db->dir) {
        char graph[1024], ivv[1024];
        index_paths(c, graph, ivv, sizeof(graph));
        unlink(graph);
        unlink(ivv);
        codec_path(c, graph, sizeof(graph));
        unlink(graph);
        blocks_path(c, graph, sizeof(graph));
        unlink(graph);
    }
    fanns__blocks_free(c->blocks);
    c->blocks = NULL;
    fanns_hnsw_free(c->hnsw);
    c->hnsw = NULL;
    fanns_codec_free(c->gcodec);
    c->gcodec = NULL;
    free(c->stale_pos);
    free(c->stale_list);
    free(c->queued);
    free(c->iq);
    free(c->ivver);
}

/* ---- the indexer thread --------------------------------------------------------------- */

typedef struct batch {
    uint32_t *offs;             /* slots taken from the queue */
    uint64_t *vver;             /* their vector versions, 0 for a freed slot */
    float *vecs;                /* copies of the live vectors, packed in order */
    uint32_t *live_offs;        /* the live slots among offs */
    size_t n, nlive, cap;
    size_t stride;              /* floats per packed vector */
} batch_t;

static void batch_free(batch_t *b) {
    free(b->offs);
    free(b->vver);
    free(b->vecs);
    free(b->live_offs);
    memset(b, 0, sizeof(*b));
}

static const float *batch_vec(void *ctx, uint32_t off) {
    const batch_t *b = ctx;
    /* The live offsets are sorted, so the position of off gives its packed vector. */
    size_t lo = 0, hi = b->nlive;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (b->live_offs[mid] < off) lo = mid + 1;
        else hi = mid;
    }
    return b->vecs + lo * b->stride;
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Creates or rebuilds the graph when wanted.  Returns true if c has a graph afterwards. */
static bool ensure_graph(fanns_coll_t *c) {
    fanns_err_t err;
    pthread_rwlock_rdlock(&c->lock);
    /* A collection whose quantization a graph can hold (int8, float16) gets a graph over
     * codes: it waits for the first codec, and is rebuilt when the published codec's kind
     * stops matching the graph's (quantization changed or removed).  Retraining the same
     * kind on a larger sample keeps the graph, which holds its own copy of its codec. */
    int wanted = fanns__quant_graph_kind(c), ready = fanns__quant_graph_ready(c);
    int have_kind = c->gcodec ? (int)fanns_codec_kind(c->gcodec) : 0;
    bool codec_pending = wanted && ready != wanted;
    bool mismatch = c->hnsw && !codec_pending && have_kind != ready;
    bool need = !c->dropped && (c->reindex || mismatch || (!c->hnsw && index_wanted(c) && !codec_pending));
    bool have = c->hnsw != NULL && !c->dropped;
    pthread_rwlock_unlock(&c->lock);
    if (!need) return have;
    bool env;
    fanns__coll_lock(c, true, &env);
    /* The old graph may hold the only copy of the codes: scans need them back first. */
    if (c->qc && !c->codes) {
        fanns_vread_t vr;
        int urc = fanns__vr_open(&vr, c, NULL);
        if (urc == 0) urc = fanns__quant_unshare(c, &vr);
        fanns__vr_close(&vr);
        if (urc) {
            fanns__coll_unlock(c, env);
            fanns_error("cannot rebuild the graph of %s: codes not restored (%s)", c->name, fanns_err_name(urc));
            return have;
        }
    }
    fanns_codec_t *gc = fanns__quant_graph_kind(c) ? fanns__quant_graph_codec(c) : NULL;
    fanns_hnsw_params_t p = hnsw_params(c, gc);
    fanns_hnsw_t *h = NULL;
    if (c->hnsw_m > 0 && fanns_hnsw_new(&p, &h, &err) != 0) {
        fanns__coll_unlock(c, env);
        fanns_codec_free(gc);
        fanns_error("cannot create the graph of %s: %s", c->name, err.msg);
        return false;
    }
    if (!h) {
        fanns_codec_free(gc);
        gc = NULL;
    }
    fanns_hnsw_t *old = c->hnsw;
    fanns_codec_t *oldgc = c->gcodec;
    fanns_blocks_t *oldbs = c->blocks; /* links of the old graph */
    c->blocks = NULL;
    c->blocks_pgen = c->pgen - 1;
    c->hnsw = h;
    c->gcodec = gc;
    c->gsum = fanns__quant_codec_sum(gc);
    c->reindex = false;
    /* Forget the old graph's state: every slot is re-indexed into the new one. */
    while (c->nstale > 0) stale_remove(c, c->stale_list[c->nstale - 1]);
    c->iq_len = 0;
    for (uint32_t off = 0; off < c->nslots; off++) {
        c->queued[off] = 0;
        c->ivver[off] = 0;
    }
    int rc = h ? touch_all(c) : 0;
    fanns__coll_unlock(c, env);
    /* Readers use the graph only under the read lock, so nobody holds the old one now. */
    fanns__blocks_free(oldbs);
    fanns_hnsw_free(old);
    fanns_codec_free(oldgc);
    if (rc) fanns_error("out of memory queueing %s for indexing", c->name);
    if (h)
        fanns_info("building the graph of %s (m=%u, ef_construct=%u, nodes hold %s)", c->name, c->hnsw_m, c->hnsw_efc,
                   !gc ? "float32 vectors" : fanns_codec_kind(gc) == FANNS_CODEC_SQ8 ? "int8 codes"
                                         : fanns_codec_kind(gc) == FANNS_CODEC_F16 ? "float16 codes"
                                         : fanns_codec_kind(gc) == FANNS_CODEC_BIN ? "binary codes" : "PQ codes");
    return h != NULL;
}

/* Takes one batch from c's queue and applies it to the graph.  Returns the batch size. */
static size_t index_batch(fanns_db_t *db, fanns_coll_t *c, batch_t *b) {
    fanns_err_t err;
    fanns_vread_t vr;
    bool env;
    fanns__coll_lock(c, true, &env);
    fanns_hnsw_t *h = c->hnsw;
    if (!h || c->dropped || c->reindex || c->iq_len == 0) {
        fanns__coll_unlock(c, env);
        return 0;
    }
    /* Vectors on disk are copied out of the records through one read transaction. */
    if (fanns__vr_open(&vr, c, NULL) != 0) {
        fanns__vr_close(&vr);
        fanns__coll_unlock(c, env);
        fanns_error("cannot read the vectors of %s for indexing", c->name);
        return 0;
    }
    size_t want = c->iq_len >= BATCH_SMALL * 4 ? BATCH_LARGE : BATCH_SMALL;
    if (want > c->iq_len) want = c->iq_len;
    size_t need = want * (size_t)c->dim;
    if (b->cap < want || b->stride != c->dim) {
        free(b->offs);
        free(b->vver);
        free(b->vecs);
        free(b->live_offs);
        b->offs = malloc(want * sizeof(*b->offs));
        b->vver = malloc(want * sizeof(*b->vver));
        b->vecs = malloc(need * sizeof(float));
        b->live_offs = malloc(want * sizeof(*b->live_offs));
        b->cap = want;
        if (!b->offs || !b->vver || !b->vecs || !b->live_offs) {
            b->cap = 0;
            fanns__vr_close(&vr);
            fanns__coll_unlock(c, env);
            fanns_error("out of memory indexing %s", c->name);
            return 0;
        }
    }
    b->n = 0;
    for (size_t i = 0; i < want; i++) {
        uint32_t off = c->iq[c->iq_head];
        c->iq_head = (c->iq_head + 1) % c->iq_cap;
        c->iq_len--;
        c->queued[off] = 0;
        b->offs[b->n++] = off;
    }
    /* Live slots sorted by offset, so batch_vec can find them. */
    qsort(b->offs, b->n, sizeof(*b->offs), cmp_u32);
    b->nlive = 0;
    int vrc = 0;
    for (size_t i = 0; i < b->n; i++) {
        uint32_t off = b->offs[i];
        if (c->live[off]) {
            b->vver[i] = c->vversions[off];
            if ((vrc = fanns__vr_copy(&vr, off, b->vecs + b->nlive * (size_t)c->dim)) != 0) break;
            b->live_offs[b->nlive++] = off;
        } else {
            b->vver[i] = 0;
        }
    }
    fanns__vr_close(&vr);
    if (vrc) {
        /* A record that cannot be read (damage): put the batch back and stop for now. */
        for (size_t i = 0; i < b->n; i++) queue_push(c, b->offs[i]);
        fanns__coll_unlock(c, env);
        fanns_error("indexing %s: cannot read the vectors (%s)", c->name, fanns_err_name(vrc));
        return 0;
    }
    uint32_t dim = c->dim;
    fanns__coll_unlock(c, env);

    /* The graph changes while searches run on it; only this thread changes it. */
    for (size_t i = 0; i < b->n; i++)
        if (b->vver[i] == 0) fanns_hnsw_delete(h, b->offs[i]);
    int threads = b->nlive >= 256 ? db->index_threads : 1;
    b->stride = dim;
    int rc = fanns_hnsw_insert_many(h, b->live_offs, b->nlive, batch_vec, b, threads, &err);
    if (rc) fanns_error("indexing %s failed: %s", c->name, err.msg);

    pthread_rwlock_wrlock(&c->lock);
    if (c->hnsw == h) {
        for (size_t i = 0; i < b->n; i++) {
            uint32_t off = b->offs[i];
            bool unchanged = b->vver[i] ? (c->live[off] && c->vversions[off] == b->vver[i]) : !c->live[off];
            if (rc == 0 && unchanged && !c->queued[off]) {
                stale_remove(c, off);
                c->ivver[off] = b->vver[i];
            } else if (rc != 0) {
                queue_push(c, off); /* try again later */
            }
        }
        c->index_ops_since_save += b->n;
        fanns__quant_share(c);
    }
    pthread_rwlock_unlock(&c->lock);
    return rc ? 0 : b->n;
}

static void *indexer_main(void *arg) {
    fanns_db_t *db = arg;
    batch_t b;
    memset(&b, 0, sizeof(b));
    for (;;) {
        pthread_mutex_lock(&db->imu);
        while (!db->ikick && !db->istop) pthread_cond_wait(&db->icv, &db->imu);
        bool stop = db->istop;
        db->ikick = false;
        pthread_mutex_unlock(&db->imu);

        /* Work on a snapshot of the collections, each held by a reference. */
        pthread_rwlock_rdlock(&db->map_lock);
        size_t n = db->ncolls;
        fanns_coll_t **cs = malloc((n ? n : 1) * sizeof(*cs));
        for (size_t i = 0; cs && i < n; i++) {
            cs[i] = db->colls[i];
            atomic_fetch_add(&cs[i]->refs, 1);
        }
        pthread_rwlock_unlock(&db->map_lock);
        if (!cs) n = 0;
        for (size_t i = 0; i < n; i++) {
            fanns_coll_t *c = cs[i];
            /* Codec training and re-encoding first: the scans it speeds up are what a
             * collection without a finished graph answers with. */
            if (!stop) fanns__quant_work(db, c);
            if (!stop && ensure_graph(c)) {
                while (index_batch(db, c, &b) > 0) {
                    pthread_mutex_lock(&db->imu);
                    bool st = db->istop;
                    pthread_mutex_unlock(&db->imu);
                    if (st) break;
                }
                if (b.cap > BATCH_SMALL) {
                    /* A bulk load is indexed: give its batch copies (up to BATCH_LARGE
                     * vectors) and the build's scratch back to the system. */
                    batch_free(&b);
                    malloc_trim(0);
                }
                /* With the queue empty: the block links the payload indexes call for. */
                if (!stop) fanns__blocks_work(db, c);
            }
            pthread_rwlock_rdlock(&c->lock);
            bool save = c->hnsw && !c->dropped && (c->index_ops_since_save >= SAVE_EVERY_OPS || (stop && c->index_ops_since_save > 0)) &&
                        (c->iq_len == 0 || stop);
            pthread_rwlock_unlock(&c->lock);
            if (save) {
                index_save(c);
                pthread_rwlock_wrlock(&c->lock);
                c->index_ops_since_save = 0;
                pthread_rwlock_unlock(&c->lock);
            }
            fanns_coll_release(c);
        }
        free(cs);
        if (stop) break;
    }
    batch_free(&b);
    return NULL;
}

int fanns__indexer_start(fanns_db_t *db) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    db->index_threads = cores > 0 ? (int)cores : 1;
    db->ikick = true; /* look at every collection once at start-up */
    if (pthread_create(&db->indexer, NULL, indexer_main, db) != 0) return FANNS_EIO;
    db->indexer_started = true;
    return 0;
}

void fanns__indexer_stop(fanns_db_t *db) {
    if (!db->indexer_started) return;
    pthread_mutex_lock(&db->imu);
    db->istop = true;
    pthread_cond_signal(&db->icv);
    pthread_mutex_unlock(&db->imu);
    pthread_join(db->indexer, NULL);
    db->indexer_started = false;
}

void fanns__indexer_kick(fanns_db_t *db) {
    pthread_mutex_lock(&db->imu);
    db->ikick = true;
    pthread_cond_signal(&db->icv);
    pthread_mutex_unlock(&db->imu);
}
