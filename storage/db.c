/*
 * db.c: opening the LMDB environment, loading collections into memory, the writer thread
 * that applies write entries with group commit, and scroll (which walks LMDB's id order).
 *
 * On-disk layout (docs/storage-format.md has the full essay):
 *   meta   "format"       -> "fanns-1"
 *          "next_cid"     -> u32 LE, the next collection id to give
 *          "op_seq"       -> u64 LE, the last operation id given
 *          "coll/<name>"  -> JSON {cid, dim, metric, config, payload_schema}
 *          "codebook/<cid>" -> the trained quantization codebook (quant.c)
 *   ids    cid(u32 BE) . pidkey(17)   -> offset (u32 LE)
 *   points cid(u32 BE) . offset(u32 BE) -> record: pidkey(17) version(u64 LE) vversion(u64 LE)
 *                                          dim(u32 LE) vector(dim x f32 LE) payload JSON (may be empty)
 *
 * Writer: entries are applied in queue order.  Each entry is validated completely before it
 * changes anything, then written to LMDB and to memory (the collection's write lock is held
 * from its first change until the group commits, so readers see only committed state).  If
 * LMDB fails in the middle of a group (map full, I/O error) the transaction is aborted, the
 * touched collections are reloaded from LMDB, and on MDB_MAP_FULL the map is doubled and the
 * group retried; an acknowledged write is therefore always committed.
 *
 * Collections with vectors.on_disk keep no vectors in RAM: the writer reads them back through
 * its own write transaction when it needs them (a payload change rewrites the record with the
 * stored vector; a training sample), see vecs.c.
 */
#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "coll.h"
#include "log.h"

#define META_COLL_PREFIX "coll/"
#define MAX_GROUP 256
#define MIN_FREE_BYTES (64u << 20)

static int lmdb_err(fanns_err_t *err, int rc, const char *what) {
    int code = rc == ENOMEM ? FANNS_ENOMEM : rc == MDB_CORRUPTED || rc == MDB_INVALID ? FANNS_ECORRUPT : FANNS_EIO;
    fanns_error("lmdb %s: %s", what, mdb_strerror(rc));
    return fanns_err_set(err, code, NULL, "storage error in %s: %s", what, mdb_strerror(rc));
}

/* ---- keys and records --------------------------------------------------------------- */

static void be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t rd_be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

#define point_key fanns__db_point_key

static void id_key(uint8_t k[4 + FANNS_PID_KEYLEN], uint32_t cid, const fanns_pid_t *id) {
    be32(k, cid);
    fanns_pid_key(id, k + 4);
}

#define REC_HDR FANNS__REC_HDR

/* Encodes a point record into a malloc'd buffer. */
static uint8_t *record_encode(const fanns_pid_t *id, uint64_t version, uint64_t vversion, uint32_t dim,
                              const float *vec, const json_t *payload, size_t *len) {
    char *pj = NULL;
    size_t pl = 0;
    if (payload && json_object_size(payload) > 0) {
        pj = json_dumps(payload, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!pj) return NULL;
        pl = strlen(pj);
    }
    size_t n = REC_HDR + (size_t)dim * 4 + pl;
    uint8_t *b = malloc(n);
    if (!b) {
        free(pj);
        return NULL;
    }
    fanns_pid_key(id, b);
    memcpy(b + FANNS_PID_KEYLEN, &version, 8); /* little-endian hosts only (x86-64, arm64) */
    memcpy(b + FANNS_PID_KEYLEN + 8, &vversion, 8);
    memcpy(b + FANNS_PID_KEYLEN + 16, &dim, 4);
    memcpy(b + REC_HDR, vec, (size_t)dim * 4);
    if (pl) memcpy(b + REC_HDR + (size_t)dim * 4, pj, pl);
    free(pj);
    *len = n;
    return b;
}

/* Decodes a record; *payload gets a new object or NULL.  Returns 0 or FANNS_ECORRUPT. */
static int record_decode(const MDB_val *v, uint32_t dim, fanns_pid_t *id, uint64_t *version,
                         uint64_t *vversion, const float **vec, json_t **payload) {
    const uint8_t *b = v->mv_data;
    uint32_t d;
    if (v->mv_size < REC_HDR) return FANNS_ECORRUPT;
    memcpy(&d, b + FANNS_PID_KEYLEN + 16, 4);
    if (d != dim || v->mv_size < REC_HDR + (size_t)dim * 4) return FANNS_ECORRUPT;
    fanns_pid_from_key(b, id);
    memcpy(version, b + FANNS_PID_KEYLEN, 8);
    memcpy(vversion, b + FANNS_PID_KEYLEN + 8, 8);
    *vec = (const float *)(b + REC_HDR); /* unaligned (byte 37): callers only memcpy from it */
    size_t pl = v->mv_size - REC_HDR - (size_t)dim * 4;
    *payload = NULL;
    if (pl) {
        json_error_t je;
        *payload = json_loadb((const char *)b + REC_HDR + (size_t)dim * 4, pl, 0, &je);
        if (!*payload) return FANNS_ECORRUPT;
    }
    return 0;
}

/* ---- collection map ----------------------------------------------------------------- */

static long map_find(fanns_db_t *db, const char *name) {
    size_t lo = 0, hi = db->ncolls;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(db->colls[mid]->name, name);
        if (c == 0) return (long)mid;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return -(long)lo - 1;
}

/* Inserts c (the map takes c's initial reference).  Caller holds map_lock for writing. */
static int map_insert(fanns_db_t *db, fanns_coll_t *c) {
    long pos = map_find(db, c->name);
    if (pos >= 0) return FANNS_EEXIST;
    size_t at = (size_t)(-pos - 1);
    if (db->ncolls == db->capcolls) {
        size_t ncap = db->capcolls ? db->capcolls * 2 : 16;
        fanns_coll_t **n = realloc(db->colls, ncap * sizeof(*n));
        if (!n) return FANNS_ENOMEM;
        db->colls = n;
        db->capcolls = ncap;
    }
    memmove(db->colls + at + 1, db->colls + at, (db->ncolls - at) * sizeof(*db->colls));
    db->colls[at] = c;
    db->ncolls++;
    return 0;
}

/* Removes name from the map and returns the map's reference (NULL if absent). */
static fanns_coll_t *map_remove(fanns_db_t *db, const char *name) {
    long pos = map_find(db, name);
    if (pos < 0) return NULL;
    fanns_coll_t *c = db->colls[pos];
    memmove(db->colls + pos, db->colls + pos + 1, (db->ncolls - (size_t)pos - 1) * sizeof(*db->colls));
    db->ncolls--;
    return c;
}

json_t *fanns_db_coll_names(fanns_db_t *db) {
    json_t *a = json_array();
    pthread_rwlock_rdlock(&db->map_lock);
    for (size_t i = 0; i < db->ncolls; i++) json_array_append_new(a, json_string(db->colls[i]->name));
    pthread_rwlock_unlock(&db->map_lock);
    return a;
}

int fanns_db_coll_get(fanns_db_t *db, const char *name, fanns_coll_t **out, fanns_err_t *err) {
    pthread_rwlock_rdlock(&db->map_lock);
    long pos = map_find(db, name);
    if (pos >= 0) {
        *out = db->colls[pos];
        atomic_fetch_add(&(*out)->refs, 1);
    }
    pthread_rwlock_unlock(&db->map_lock);
    if (pos < 0) return fanns_err_set(err, FANNS_ENOTFOUND, NULL, "Not found: Collection `%s` doesn't exist!", name);
    return 0;
}

/* ---- loading ------------------------------------------------------------------------ */

/* Hands c its stored codebook (if any) after its points are loaded. */
static void load_codebook(fanns_db_t *db, MDB_txn *txn, fanns_coll_t *c) {
    char key[32];
    int kl = fanns__quant_key(c->cid, key, sizeof(key));
    MDB_val k = {(size_t)kl, key}, v;
    if (mdb_get(txn, db->dbi_meta, &k, &v) == 0) fanns__quant_load(c, v.mv_data, v.mv_size, txn);
    else fanns__quant_load(c, NULL, 0, txn);
}

static int del_codebook(fanns_db_t *db, MDB_txn *txn, uint32_t cid, int *mdb_rc) {
    char key[32];
    int kl = fanns__quant_key(cid, key, sizeof(key));
    MDB_val k = {(size_t)kl, key};
    int rc = mdb_del(txn, db->dbi_meta, &k, NULL);
    if (rc && rc != MDB_NOTFOUND) {
        *mdb_rc = rc;
        return FANNS_EIO;
    }
    return 0;
}

static json_t *coll_meta_json(const fanns_coll_t *c) {
    return json_pack("{s:I, s:I, s:s, s:O, s:O}", "cid", (json_int_t)c->cid, "dim", (json_int_t)c->dim,
                     "metric", fanns_metric_name(c->metric), "config", c->config, "payload_schema", c->schema);
}

/* Builds a collection from its meta JSON and its points in txn. */
static int load_coll(fanns_db_t *db, MDB_txn *txn, const char *name, const char *mj, size_t mlen,
                     fanns_coll_t **out, fanns_err_t *err) {
    json_error_t je;
    fanns_coll_t *c = NULL;
    MDB_cursor *cur = NULL;
    int rc;
    json_t *m = json_loadb(mj, mlen, 0, &je);
    json_int_t cid, dim;
    const char *metric;
    json_t *config, *schema = NULL;
    if (!m || json_unpack(m, "{s:I, s:I, s:s, s:o, s?o}", "cid", &cid, "dim", &dim, "metric", &metric,
                          "config", &config, "payload_schema", &schema) != 0 ||
        fanns_metric_parse(metric) < 0 || dim <= 0 || dim > FANNS_MAX_DIM) {
        rc = fanns_err_set(err, FANNS_ECORRUPT, NULL, "corrupt metadata for collection %s", name);
        goto fail;
    }
    c = fanns__coll_new(db, name, (uint32_t)cid, (uint32_t)dim, (fanns_metric_t)fanns_metric_parse(metric),
                        config, schema);
    if (!c) {
        rc = fanns_err_set(err, FANNS_ENOMEM, NULL, "out of memory");
        goto fail;
    }
    if ((rc = mdb_cursor_open(txn, db->dbi_points, &cur)) != 0) {
        rc = lmdb_err(err, rc, "cursor open");
        goto fail;
    }
    uint8_t k[8];
    point_key(k, c->cid, 0);
    MDB_val key = {8, k}, val;
    for (rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE); rc == 0; rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        if (key.mv_size != 8 || rd_be32(key.mv_data) != c->cid) break;
        uint32_t off = rd_be32((uint8_t *)key.mv_data + 4);
        fanns_pid_t id;
        uint64_t ver, vver;
        const float *vp;
        json_t *payload;
        if (record_decode(&val, c->dim, &id, &ver, &vver, &vp, &payload) != 0) {
            rc = fanns_err_set(err, FANNS_ECORRUPT, NULL, "corrupt point record in collection %s offset %u", name, off);
            goto fail;
        }
        float *tmp = malloc(c->dim * sizeof(float));
        if (!tmp) {
            json_decref(payload);
            rc = fanns_err_set(err, FANNS_ENOMEM, NULL, "out of memory");
            goto fail;
        }
        memcpy(tmp, vp, c->dim * sizeof(float));
        rc = fanns__coll_set_slot(c, off, &id, ver, tmp, payload);
        free(tmp);
        if (rc == 0) c->vversions[off] = vver;
        if (rc) {
            rc = fanns_err_set(err, rc, NULL, "out of memory loading %s", name);
            goto fail;
        }
    }
    if (rc != 0 && rc != MDB_NOTFOUND) {
        rc = lmdb_err(err, rc, "cursor get");
        goto fail;
    }
    if ((rc = fanns__coll_rebuild_freelist(c)) != 0) {
        rc = fanns_err_set(err, rc, NULL, "out of memory");
        goto fail;
    }
    mdb_cursor_close(cur);
    json_decref(m);
    *out = c;
    return 0;
fail:
    if (cur) mdb_cursor_close(cur);
    json_decref(m);
    fanns__coll_destroy(c);
    return rc;
}

static int load_all(fanns_db_t *db, fanns_err_t *err) {
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    int rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn);
    if (rc) return lmdb_err(err, rc, "txn begin");
    if ((rc = mdb_cursor_open(txn, db->dbi_meta, &cur)) != 0) {
        rc = lmdb_err(err, rc, "cursor open");
        goto fail;
    }
    MDB_val key = {strlen(META_COLL_PREFIX), (void *)META_COLL_PREFIX}, val;
    for (rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE); rc == 0; rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        size_t pl = strlen(META_COLL_PREFIX);
        if (key.mv_size <= pl || memcmp(key.mv_data, META_COLL_PREFIX, pl) != 0) break;
        char name[FANNS_MAX_NAME + 1];
        size_t nl = key.mv_size - pl;
        if (nl > FANNS_MAX_NAME) {
            rc = fanns_err_set(err, FANNS_ECORRUPT, NULL, "corrupt collection key");
            goto fail;
        }
        memcpy(name, (char *)key.mv_data + pl, nl);
        name[nl] = 0;
        fanns_coll_t *c;
        if ((rc = load_coll(db, txn, name, val.mv_data, val.mv_size, &c, err)) != 0) goto fail;
        load_codebook(db, txn, c);
        if ((rc = map_insert(db, c)) != 0) {
            fanns__coll_destroy(c);
            rc = fanns_err_set(err, rc, NULL, "cannot register collection %s", name);
            goto fail;
        }
        fanns__index_load(c);
        fanns_info("loaded collection %s: %llu points, dim %u", name, (unsigned long long)c->count, c->dim);
    }
    if (rc != MDB_NOTFOUND && rc != 0) {
        rc = lmdb_err(err, rc, "cursor get");
        goto fail;
    }
    rc = 0;
fail:
    if (cur) mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return rc;
}

/* ---- writer ------------------------------------------------------------------------- */

typedef struct group {
    MDB_txn *txn;
    fanns_coll_t *touched[MAX_GROUP * 2];   /* write-locked, referenced */
    char *touched_names[MAX_GROUP * 2];     /* names whose memory may need reloading */
    size_t ntouched, nnames;
} group_t;

#define txn_of(g) ((g)->txn)

/* Write-locks c for the rest of the group (once). */
static void touch(group_t *g, fanns_coll_t *c) {
    for (size_t i = 0; i < g->ntouched; i++)
        if (g->touched[i] == c) return;
    pthread_rwlock_wrlock(&c->lock);
    atomic_fetch_add(&c->refs, 1);
    g->touched[g->ntouched++] = c;
}

static void touch_name(group_t *g, const char *name) {
    for (size_t i = 0; i < g->nnames; i++)
        if (strcmp(g->touched_names[i], name) == 0) return;
    g->touched_names[g->nnames++] = strdup(name);
}

static void untouch_all(group_t *g) {
    for (size_t i = 0; i < g->ntouched; i++) {
        pthread_rwlock_unlock(&g->touched[i]->lock);
        fanns_coll_release(g->touched[i]);
    }
    g->ntouched = 0;
    for (size_t i = 0; i < g->nnames; i++) free(g->touched_names[i]);
    g->nnames = 0;
}


static int put_meta_coll(fanns_db_t *db, MDB_txn *txn, fanns_coll_t *c, fanns_err_t *err, int *mdb_rc) {
    char key[sizeof(META_COLL_PREFIX) + FANNS_MAX_NAME];
    json_t *m = coll_meta_json(c);
    char *s = m ? json_dumps(m, JSON_COMPACT) : NULL;
    json_decref(m);
    if (!s) return fanns_err_set(err, FANNS_ENOMEM, NULL, "out of memory");
    int kl = snprintf(key, sizeof(key), META_COLL_PREFIX "%s", c->name);
    MDB_val k = {(size_t)kl, key}, v = {strlen(s), s};
    int rc = mdb_put(txn, db->dbi_meta, &k, &v, 0);
    free(s);
    if (rc) {
        *mdb_rc = rc;
        return lmdb_err(err, rc, "put meta");
    }
    return 0;
}

static int put_u64(fanns_db_t *db, MDB_txn *txn, const char *key, uint64_t v, int *mdb_rc) {
    MDB_val k = {strlen(key), (void *)key}, val = {8, &v};
    int rc = mdb_put(txn, db->dbi_meta, &k, &val, 0);
    if (rc) *mdb_rc = rc;
    return rc ? FANNS_EIO : 0;
}

/* Writes slot off's record.  vec is its new vector, or NULL to keep the stored one (a payload
 * change), which is then taken from RAM or, on disk, from the record itself. */
static int put_point(fanns_db_t *db, MDB_txn *txn, fanns_coll_t *c, uint32_t off, const float *vec, fanns_err_t *err,
                     int *mdb_rc) {
    size_t len;
    fanns_vread_t vr;
    memset(&vr, 0, sizeof(vr));
    if (!vec) {
        int rc = fanns__vr_open(&vr, c, txn);
        if (rc == 0 && !(vec = fanns__vr_get(&vr, off))) rc = vr.rc;
        if (rc) {
            fanns__vr_close(&vr);
            return fanns_err_set(err, rc, NULL, "cannot read the stored vector of point %u: %s", off, fanns_err_name(rc));
        }
    }
    /* vec may point into vr's buffer: encode before the reader is closed. */
    uint8_t *rec = record_encode(&c->pids[off], c->versions[off], c->vversions[off], c->dim, vec, c->payloads[off], &len);
    fanns__vr_close(&vr);
    if (!rec) return fanns_err_set(err, FANNS_ENOMEM, NULL, "out of memory");
    uint8_t kb[8];
    point_key(kb, c->cid, off);
    MDB_val k = {8, kb}, v = {len, rec};
    int rc = mdb_put(txn, db->dbi_points, &k, &v, 0);
    free(rec);
    if (rc) {
        *mdb_rc = rc;
        return lmdb_err(err, rc, "put point");
    }
    return 0;
}

/* Deletes every key of dbi starting with the 4-byte collection id. */
static int del_prefix(MDB_txn *txn, MDB_dbi dbi, uint32_t cid, int *mdb_rc) {
    MDB_cursor *cur;
    uint8_t kb[4];
    int rc = mdb_cursor_open(txn, dbi, &cur);
    if (rc) goto out;
    be32(kb, cid);
    MDB_val k = {4, kb}, v;
    /* Re-position after each delete: MDB_GET_CURRENT after deleting the last key of the
     * tree answers EINVAL rather than NOTFOUND. */
    for (;;) {
        k.mv_size = 4;
        k.mv_data = kb;
        if ((rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE)) != 0) break;
        if (k.mv_size < 4 || rd_be32(k.mv_data) != cid) break;
        if ((rc = mdb_cursor_del(cur, 0)) != 0) break;
    }
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND || rc == 0) return 0;
out:
    *mdb_rc = rc;
    return FANNS_EIO;
}

/* Collects the offsets an entry selects (ids or filter).  *offs is malloc'd. */
static int select_offsets(fanns_coll_t *c, fanns_wentry_t *e, uint32_t **offs, size_t *n) {
    size_t cap = e->filter || e->filter_json ? c->count : e->n;
    uint32_t *o = malloc((cap ? cap : 1) * sizeof(*o));
    *n = 0;
    if (!o) return FANNS_ENOMEM;
    if (e->filter || e->filter_json) {
        for (uint32_t off = 0; off < c->nslots; off++)
            if (c->live[off] && fanns_filter_match(e->filter, &c->pids[off], c->payloads[off])) o[(*n)++] = off;
    } else {
        for (size_t i = 0; i < e->n; i++) {
            int64_t off = fanns__coll_find(c, &e->ids[i]);
            if (off < 0) continue;
            /* An id named twice is selected twice; every selecting op is idempotent. */
            o[(*n)++] = (uint32_t)off;
        }
    }
    *offs = o;
    return 0;
}

/* Navigates/creates nested objects along a dotted path; returns the object (borrowed). */
static json_t *object_at(json_t *root, const char *path, bool create) {
    char buf[512];
    snprintf(buf, sizeof(buf), "%s", path);
    json_t *cur = root;
    for (char *save = NULL, *seg = strtok_r(buf, ".", &save); seg; seg = strtok_r(NULL, ".", &save)) {
        json_t *next = json_object_get(cur, seg);
        if (!json_is_object(next)) {
            if (!create) return NULL;
            next = json_object();
            json_object_set_new(cur, seg, next);
        }
        cur = next;
    }
    return cur;
}

/* New payload for a payload-changing entry, from old (may be NULL). */
static json_t *payload_apply(const fanns_wentry_t *e, const json_t *old) {
    json_t *p;
    switch (e->op) {
    case FANNS_W_OVERWRITE_PAYLOAD: return json_deep_copy(e->payload);
    case FANNS_W_CLEAR_PAYLOAD: return NULL;
    case FANNS_W_SET_PAYLOAD:
        p = old ? json_deep_copy(old) : json_object();
        if (!p) return NULL;
        json_object_update(e->key ? object_at(p, e->key, true) : p, e->payload);
        return p;
    case FANNS_W_DELETE_PAYLOAD: {
        p = old ? json_deep_copy(old) : json_object();
        size_t i;
        json_t *k;
        json_array_foreach(e->keys, i, k) {
            const char *path = json_string_value(k);
            const char *dot = strrchr(path, '.');
            if (!dot) {
                json_object_del(p, path);
            } else {
                char parent[512];
                snprintf(parent, sizeof(parent), "%.*s", (int)(dot - path), path);
                json_t *o = object_at(p, parent, false);
                if (o) json_object_del(o, dot + 1);
            }
        }
        return p;
    }
    default: return NULL;
    }
}

static int apply_entry(fanns_db_t *db, group_t *g, fanns_wentry_t *e, int *mdb_rc) {
    fanns_err_t *err = &e->err;
    fanns_coll_t *c = NULL;
    int rc = 0;
    uint32_t *offs = NULL;
    size_t noffs = 0;

    if (e->op != FANNS_W_CREATE_COLL) {
        pthread_rwlock_rdlock(&db->map_lock);
        long pos = map_find(db, e->collection);
        c = pos >= 0 ? db->colls[pos] : NULL;
        pthread_rwlock_unlock(&db->map_lock);
        if (!c) return fanns_err_set(err, FANNS_ENOTFOUND, NULL, "Not found: Collection `%s` doesn't exist!", e->collection);
        touch(g, c);
        touch_name(g, c->name);
    }
    switch (e->op) {
    case FANNS_W_CREATE_COLL: {
        pthread_rwlock_rdlock(&db->map_lock);
        bool exists = map_find(db, e->collection) >= 0;
        pthread_rwlock_unlock(&db->map_lock);
        if (exists) return fanns_err_set(err, FANNS_EEXIST, NULL, "Wrong input: Collection `%s` already exists!", e->collection);
        c = fanns__coll_new(db, e->collection, db->next_cid, e->dim, e->metric, e->config, NULL);
        if (!c) return fanns_err_set(err, FANNS_ENOMEM, NULL, "out of memory");
        touch_name(g, c->name);
        if ((rc = put_meta_coll(db, txn_of(g), c, err, mdb_rc)) != 0 ||
            (rc = put_u64(db, txn_of(g), "next_cid", (uint64_t)db->next_cid + 1, mdb_rc)) != 0) {
            fanns__coll_destroy(c);
            return rc;
        }
        db->next_cid++;
        touch(g, c);
        fanns__quant_schedule(c, txn_of(g)); /* float16 codes need no training */
        pthread_rwlock_wrlock(&db->map_lock);
        rc = map_insert(db, c);
        pthread_rwlock_unlock(&db->map_lock);
        if (rc) {
            /* Cannot happen (checked above, only the writer inserts). */
            return fanns_err_set(err, FANNS_EINTERNAL, NULL, "collection map insert failed");
        }
        return 0;
    }
    case FANNS_W_DROP_COLL: {
        char key[sizeof(META_COLL_PREFIX) + FANNS_MAX_NAME];
        int kl = snprintf(key, sizeof(key), META_COLL_PREFIX "%s", c->name);
        MDB_val k = {(size_t)kl, key};
        if ((rc = mdb_del(txn_of(g), db->dbi_meta, &k, NULL)) != 0) {
            *mdb_rc = rc;
            return lmdb_err(err, rc, "del meta");
        }
        if (del_prefix(txn_of(g), db->dbi_points, c->cid, mdb_rc) || del_prefix(txn_of(g), db->dbi_ids, c->cid, mdb_rc) ||
            del_codebook(db, txn_of(g), c->cid, mdb_rc))
            return lmdb_err(err, *mdb_rc, "drop collection");
        c->dropped = true;
        c->delete_files = true;
        pthread_rwlock_wrlock(&db->map_lock);
        fanns_coll_t *r = map_remove(db, c->name);
        pthread_rwlock_unlock(&db->map_lock);
        fanns_coll_release(r); /* the group still holds a reference */
        return 0;
    }
    case FANNS_W_UPSERT: {
        if (e->dim != c->dim)
            return fanns_err_set(err, FANNS_EVALIDATE, "vector", "Wrong input: Vector dimension error: expected dim: %u, got %u",
                                 c->dim, e->dim);
        for (size_t i = 0; i < e->n; i++) {
            int64_t f = fanns__coll_find(c, &e->ids[i]);
            uint32_t off;
            bool is_new = f < 0;
            if (is_new) {
                if ((rc = fanns__coll_alloc_slot(c, &off)) != 0) return fanns_err_set(err, rc, NULL, "cannot allocate a point slot");
            } else {
                off = (uint32_t)f;
            }
            json_t *pl = e->payloads && e->payloads[i] ? json_incref(e->payloads[i]) : NULL;
            if ((rc = fanns__coll_set_slot(c, off, &e->ids[i], e->op_id, e->vectors + i * (size_t)c->dim, pl)) != 0)
                return fanns_err_set(err, rc, NULL, "out of memory");
            if (is_new) {
                uint8_t kb[4 + FANNS_PID_KEYLEN];
                id_key(kb, c->cid, &e->ids[i]);
                MDB_val k = {sizeof(kb), kb}, v = {4, &off};
                if ((rc = mdb_put(txn_of(g), db->dbi_ids, &k, &v, 0)) != 0) {
                    *mdb_rc = rc;
                    return lmdb_err(err, rc, "put id");
                }
            }
            if ((rc = put_point(db, txn_of(g), c, off, e->vectors + i * (size_t)c->dim, err, mdb_rc)) != 0) return rc;
        }
        fanns__quant_schedule(c, txn_of(g)); /* a training may be due at this size */
        return 0;
    }
    case FANNS_W_DELETE:
        if ((rc = select_offsets(c, e, &offs, &noffs)) != 0) return fanns_err_set(err, rc, NULL, "out of memory");
        for (size_t i = 0; i < noffs; i++) {
            uint32_t off = offs[i];
            if (!c->live[off]) continue;
            uint8_t kb[4 + FANNS_PID_KEYLEN], pk[8];
            id_key(kb, c->cid, &c->pids[off]);
            point_key(pk, c->cid, off);
            MDB_val k1 = {sizeof(kb), kb}, k2 = {8, pk};
            if ((rc = mdb_del(txn_of(g), db->dbi_ids, &k1, NULL)) != 0 || (rc = mdb_del(txn_of(g), db->dbi_points, &k2, NULL)) != 0) {
                *mdb_rc = rc;
                free(offs);
                return lmdb_err(err, rc, "delete point");
            }
            if ((rc = fanns__coll_free_slot(c, off)) != 0) {
                free(offs);
                return fanns_err_set(err, rc, NULL, "out of memory");
            }
        }
        free(offs);
        return 0;
    case FANNS_W_SET_PAYLOAD:
    case FANNS_W_OVERWRITE_PAYLOAD:
    case FANNS_W_DELETE_PAYLOAD:
    case FANNS_W_CLEAR_PAYLOAD:
        if ((rc = select_offsets(c, e, &offs, &noffs)) != 0) return fanns_err_set(err, rc, NULL, "out of memory");
        for (size_t i = 0; i < noffs; i++) {
            uint32_t off = offs[i];
            json_t *np = payload_apply(e, c->payloads[off]);
            if (!np && e->op != FANNS_W_CLEAR_PAYLOAD) {
                free(offs);
                return fanns_err_set(err, FANNS_ENOMEM, NULL, "out of memory");
            }
            fanns__coll_set_payload(c, off, np, e->op_id);
            if ((rc = put_point(db, txn_of(g), c, off, NULL, err, mdb_rc)) != 0) {
                free(offs);
                return rc;
            }
        }
        free(offs);
        return 0;
    case FANNS_W_CREATE_INDEX:
        if ((rc = fanns_pindex_create(c->pindex, e->field, e->field_schema, err)) != 0) return rc;
        /* Built over the existing points here, in the writer: O(points) with the lock held. */
        for (uint32_t off = 0; off < c->nslots; off++)
            if (c->live[off] && (rc = fanns_pindex_index_field_point(c->pindex, e->field, off, c->payloads[off])) != 0)
                return fanns_err_set(err, rc, NULL, "out of memory building the index on %s", e->field);
        json_object_set(c->schema, e->field, e->field_schema);
        c->pgen++;
        return put_meta_coll(db, txn_of(g), c, err, mdb_rc);
    case FANNS_W_DROP_INDEX:
        (void)fanns_pindex_drop(c->pindex, e->field);
        json_object_del(c->schema, e->field);
        c->pgen++;
        return put_meta_coll(db, txn_of(g), c, err, mdb_rc);
    case FANNS_W_UPDATE_COLL:
        json_decref(c->config);
        c->config = json_incref(e->config);
        fanns__index_config(c);
        /* vectors.on_disk: to disk frees the RAM copy, to RAM loads it from the records (under
         * the write lock, O(points) like building a payload index).  A failure (memory) is not
         * clean: the group is rolled back and reloaded, so the old config stays. */
        if ((rc = fanns__coll_vec_config(c, txn_of(g))) != 0)
            return fanns_err_set(err, rc, "vectors.on_disk", "cannot load the vectors into RAM: %s", fanns_err_name(rc));
        /* A changed codec trains in the background while the old one keeps serving; a
         * removed one is dropped at once. */
        if (fanns__quant_config(c) && del_codebook(db, txn_of(g), c->cid, mdb_rc) != 0)
            return lmdb_err(err, *mdb_rc, "delete codebook");
        fanns__quant_schedule(c, txn_of(g));
        return put_meta_coll(db, txn_of(g), c, err, mdb_rc);
    case FANNS_W_PUT_CODEBOOK: {
        /* Stored only if the collection (same cid) still wants the codec it was trained for. */
        if (c->cid != e->cid || c->qgen != e->gen || !c->qspec) return 0;
        char key[32];
        int kl = fanns__quant_key(c->cid, key, sizeof(key));
        MDB_val k = {(size_t)kl, key}, v = {e->blob_len, e->blob};
        if ((rc = mdb_put(txn_of(g), db->dbi_meta, &k, &v, 0)) != 0) {
            *mdb_rc = rc;
            return lmdb_err(err, rc, "put codebook");
        }
        return 0;
    }
    }
    return fanns_err_set(err, FANNS_EINTERNAL, NULL, "unknown write op %d", (int)e->op);
}

/* After an aborted group: replace the in-memory state of every touched collection with
 * what LMDB holds.  Readers that still hold the old objects see them as dropped. */
static void resync(fanns_db_t *db, group_t *g) {
    MDB_txn *txn = NULL;
    int rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn);
    FANNS_CHECK(rc == 0);
    for (size_t i = 0; i < g->ntouched; i++) g->touched[i]->dropped = true;
    for (size_t i = 0; i < g->nnames; i++) {
        const char *name = g->touched_names[i];
        pthread_rwlock_wrlock(&db->map_lock);
        fanns_coll_t *old = map_remove(db, name);
        pthread_rwlock_unlock(&db->map_lock);
        if (old) {
            old->dropped = true; /* its lock is held by this group if touched */
            fanns_coll_release(old);
        }
        char key[sizeof(META_COLL_PREFIX) + FANNS_MAX_NAME];
        int kl = snprintf(key, sizeof(key), META_COLL_PREFIX "%s", name);
        MDB_val k = {(size_t)kl, key}, v;
        if (mdb_get(txn, db->dbi_meta, &k, &v) != 0) continue;
        fanns_coll_t *c;
        fanns_err_t err;
        /* A collection that loaded at start-up loads again; failing here means memory is short
         * or the file is damaged, and continuing would serve wrong answers. */
        FANNS_CHECK(load_coll(db, txn, name, v.mv_data, v.mv_size, &c, &err) == 0);
        load_codebook(db, txn, c);
        fanns__index_load(c);
        pthread_rwlock_wrlock(&db->map_lock);
        FANNS_CHECK(map_insert(db, c) == 0);
        pthread_rwlock_unlock(&db->map_lock);
    }
    mdb_txn_abort(txn);
    /* next_cid / op_seq as committed. */
    MDB_txn *t2;
    if (mdb_txn_begin(db->env, NULL, MDB_RDONLY, &t2) == 0) {
        MDB_val k = {8, "next_cid"}, v;
        if (mdb_get(t2, db->dbi_meta, &k, &v) == 0 && v.mv_size == 8) {
            uint64_t x;
            memcpy(&x, v.mv_data, 8);
            db->next_cid = (uint32_t)x;
        }
        mdb_txn_abort(t2);
    }
}

/* Grows the map when less than need bytes (plus a margin) are free.  Called by the writer
 * with no write transaction open; takes env_lock exclusively so no reader has a txn open. */
static int ensure_space(fanns_db_t *db, size_t need, bool force) {
    MDB_envinfo info;
    MDB_stat st;
    mdb_env_info(db->env, &info);
    mdb_env_stat(db->env, &st);
    size_t used = (size_t)(info.me_last_pgno + 1) * st.ms_psize;
    size_t want = used + need * 3 + MIN_FREE_BYTES;
    if (!force && want <= info.me_mapsize) return 0;
    size_t nsize = info.me_mapsize;
    while (nsize < want || (force && nsize == info.me_mapsize)) nsize *= 2;
    pthread_rwlock_wrlock(&db->env_lock);
    int rc = mdb_env_set_mapsize(db->env, nsize);
    pthread_rwlock_unlock(&db->env_lock);
    if (rc) {
        fanns_error("lmdb map resize to %zu failed: %s", nsize, mdb_strerror(rc));
        return FANNS_EIO;
    }
    db->mapsize = nsize;
    fanns_info("lmdb map size grown to %zu MiB", nsize >> 20);
    return 0;
}

static size_t entry_bytes(const fanns_wentry_t *e) {
    size_t b = 4096;
    if (e->op == FANNS_W_UPSERT) b += e->n * ((size_t)e->dim * 4 + 512);
    if (e->op == FANNS_W_PUT_CODEBOOK) b += e->blob_len;
    return b;
}

/* Errors an entry reports before it changes anything; any other error may leave the
 * transaction and memory half-changed, so the group is rolled back and retried without it. */
#define CLEAN_FAILURE(rc) ((rc) == FANNS_ENOTFOUND || (rc) == FANNS_EEXIST || (rc) == FANNS_EVALIDATE || (rc) == FANNS_EINVAL)

/* Applies a group of entries in one transaction.  Every entry ends with a result. */
static void apply_group(fanns_db_t *db, fanns_wentry_t **ents, size_t n) {
    group_t g;
    size_t need = 0;
    int attempts = 0;
    bool excluded[MAX_GROUP];

    memset(&g, 0, sizeof(g));
    memset(excluded, 0, sizeof(excluded));
    for (size_t i = 0; i < n; i++) need += entry_bytes(ents[i]);
    /* If growing fails here, the transaction itself tells whether the map suffices. */
    (void)ensure_space(db, need, false);
retry:
    attempts++;
    int fatal = 0, mdb_rc = 0;
    long culprit = -1;
    int rc = mdb_txn_begin(db->env, NULL, 0, &g.txn);
    if (rc) {
        mdb_rc = rc;
        fatal = FANNS_EIO;
    }
    for (size_t i = 0; i < n && !fatal; i++) {
        fanns_wentry_t *e = ents[i];
        if (excluded[i]) continue;
        fanns_err_clear(&e->err);
        if (e->op_id > db->op_seq) db->op_seq = e->op_id;
        e->result = apply_entry(db, &g, e, &mdb_rc);
        if (e->result && !CLEAN_FAILURE(e->result)) {
            fatal = e->result;
            culprit = (long)i;
        }
    }
    if (!fatal && put_u64(db, g.txn, "op_seq", db->op_seq, &mdb_rc) != 0) fatal = FANNS_EIO;
    if (!fatal) {
        rc = mdb_txn_commit(g.txn);
        g.txn = NULL;
        if (rc) {
            mdb_rc = rc;
            fatal = FANNS_EIO;
        }
    }
    if (!fatal) {
        untouch_all(&g);
        fanns__indexer_kick(db);
        return;
    }
    if (g.txn) mdb_txn_abort(g.txn);
    g.txn = NULL;
    resync(db, &g);
    untouch_all(&g);
    if (mdb_rc == MDB_MAP_FULL && attempts < 16 && ensure_space(db, need, true) == 0) goto retry;
    if (mdb_rc == 0 && culprit >= 0 && attempts < 2 * MAX_GROUP) {
        /* The entry failed on its own (say, a collection at its point limit): keep its error
         * and apply the others without it. */
        excluded[culprit] = true;
        goto retry;
    }
    fanns_error("write group of %zu entries failed: %s", n, mdb_rc ? mdb_strerror(mdb_rc) : fanns_err_name(fatal));
    for (size_t i = 0; i < n; i++) {
        if (excluded[i]) continue;
        ents[i]->result = fanns_err_set(&ents[i]->err, FANNS_EIO, NULL, "storage error: %s",
                                        mdb_rc ? mdb_strerror(mdb_rc) : fanns_err_name(fatal));
    }
}

static void *writer_main(void *arg) {
    fanns_db_t *db = arg;
    fanns_wentry_t *batch[MAX_GROUP];
    for (;;) {
        size_t n = 0;
        pthread_mutex_lock(&db->qmu);
        while (db->qlen == 0 && !db->closing) pthread_cond_wait(&db->qcv, &db->qmu);
        if (db->qlen == 0 && db->closing) {
            pthread_mutex_unlock(&db->qmu);
            break;
        }
        while (db->qlen > 0 && n < MAX_GROUP) {
            batch[n++] = db->queue[db->qhead];
            db->qhead = (db->qhead + 1) % db->qcap;
            db->qlen--;
        }
        pthread_mutex_unlock(&db->qmu);

        apply_group(db, batch, n);

        /* A waited entry belongs to its caller again once done is set: read the flag first. */
        bool detached[MAX_GROUP];
        pthread_mutex_lock(&db->qmu);
        for (size_t i = 0; i < n; i++) {
            detached[i] = batch[i]->detached;
            if (batch[i]->result && batch[i]->detached)
                fanns_warn("write to %s (not waited for) failed: %s", batch[i]->collection ? batch[i]->collection : "-",
                           batch[i]->err.msg);
            batch[i]->done = true;
        }
        pthread_cond_broadcast(&db->donecv);
        pthread_mutex_unlock(&db->qmu);
        for (size_t i = 0; i < n; i++)
            if (detached[i]) fanns_wentry_free(batch[i]);
    }
    return NULL;
}

fanns_wentry_t *fanns_wentry_new(fanns_wop_t op) {
    fanns_wentry_t *e = calloc(1, sizeof(*e));
    if (e) e->op = op;
    return e;
}

void fanns_wentry_free(fanns_wentry_t *e) {
    if (!e) return;
    free(e->collection);
    json_decref(e->config);
    free(e->ids);
    free(e->vectors);
    if (e->payloads) {
        for (size_t i = 0; i < e->n; i++) json_decref(e->payloads[i]);
        free(e->payloads);
    }
    json_decref(e->filter_json);
    fanns_filter_free(e->filter);
    json_decref(e->payload);
    free(e->key);
    json_decref(e->keys);
    free(e->field);
    json_decref(e->field_schema);
    free(e->blob);
    free(e);
}

int fanns_db_write(fanns_db_t *db, fanns_wentry_t *e, bool wait, uint64_t *op_id, fanns_err_t *err) {
    int rc;
    pthread_mutex_lock(&db->qmu);
    if (db->closing) {
        pthread_mutex_unlock(&db->qmu);
        fanns_wentry_free(e);
        return fanns_err_set(err, FANNS_EBUSY, NULL, "the server is shutting down");
    }
    if (db->qlen == db->qcap) {
        pthread_mutex_unlock(&db->qmu);
        fanns_wentry_free(e);
        return fanns_err_set(err, FANNS_ELIMIT, NULL, "write queue is full (%zu entries); retry later", db->qcap);
    }
    e->detached = !wait;
    e->done = false;
    /* Operation ids follow queue order, which is apply order; a failed entry leaves a gap. */
    e->op_id = ++db->op_assigned;
    db->queue[(db->qhead + db->qlen) % db->qcap] = e;
    db->qlen++;
    pthread_cond_signal(&db->qcv);
    if (!wait) {
        if (op_id) *op_id = e->op_id;
        pthread_mutex_unlock(&db->qmu);
        return 0;
    }
    while (!e->done) pthread_cond_wait(&db->donecv, &db->qmu);
    pthread_mutex_unlock(&db->qmu);
    rc = e->result;
    if (op_id) *op_id = e->op_id;
    if (rc && err) *err = e->err;
    fanns_wentry_free(e);
    return rc;
}

/* ---- scroll ------------------------------------------------------------------------- */

int fanns_coll_scroll(fanns_coll_t *c, const fanns_pid_t *start, const fanns_filter_t *filter, size_t limit,
                      bool with_vector, fanns_hit_t **out, size_t *n, bool *has_next, fanns_pid_t *next,
                      fanns_err_t *err) {
    fanns_db_t *db = c->db;
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    fanns_hit_t *hits = calloc(limit ? limit : 1, sizeof(*hits));
    fanns_vread_t vr;
    int rc = 0;

    memset(&vr, 0, sizeof(vr));
    *n = 0;
    *out = NULL;
    *has_next = false;
    if (!hits) return fanns_err_set(err, FANNS_ENOMEM, NULL, "out of memory");
    pthread_rwlock_rdlock(&db->env_lock);
    pthread_rwlock_rdlock(&c->lock);
    if (c->dropped) {
        rc = fanns_err_set(err, FANNS_ENOTFOUND, NULL, "Not found: Collection `%s` doesn't exist!", c->name);
        goto fail;
    }
    if ((rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn)) != 0 || (rc = mdb_cursor_open(txn, db->dbi_ids, &cur)) != 0) {
        rc = lmdb_err(err, rc, "scroll");
        goto fail;
    }
    /* On-disk vectors are read through the scroll's own transaction. */
    if (with_vector && (rc = fanns__vr_open(&vr, c, txn)) != 0) {
        rc = fanns_err_set(err, rc, NULL, "out of memory");
        goto fail;
    }
    uint8_t kb[4 + FANNS_PID_KEYLEN];
    if (start) {
        id_key(kb, c->cid, start);
    } else {
        memset(kb, 0, sizeof(kb));
        be32(kb, c->cid);
    }
    MDB_val k = {sizeof(kb), kb}, v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != sizeof(kb) || rd_be32(k.mv_data) != c->cid) break;
        fanns_pid_t id;
        fanns_pid_from_key((uint8_t *)k.mv_data + 4, &id);
        /* Memory is the authority: a key committed after this snapshot is not seen, one
         * deleted since is skipped. */
        int64_t off = fanns__coll_find(c, &id);
        if (off < 0) continue;
        if (filter && !fanns_filter_match(filter, &id, c->payloads[off])) continue;
        if (*n == limit) {
            *has_next = true;
            *next = id;
            break;
        }
        if ((rc = fanns__coll_fill_hit(c, (uint32_t)off, with_vector, true, &vr, &hits[*n])) != 0) {
            (*n)++;
            rc = fanns_err_set(err, rc, NULL, rc == FANNS_ENOMEM ? "out of memory" : "storage error reading vectors");
            goto fail;
        }
        (*n)++;
    }
    if (rc != 0 && rc != MDB_NOTFOUND) {
        rc = lmdb_err(err, rc, "scroll");
        goto fail;
    }
    fanns__vr_close(&vr);
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    pthread_rwlock_unlock(&c->lock);
    pthread_rwlock_unlock(&db->env_lock);
    *out = hits;
    return 0;
fail:
    fanns__vr_close(&vr);
    if (cur) mdb_cursor_close(cur);
    if (txn) mdb_txn_abort(txn);
    pthread_rwlock_unlock(&c->lock);
    pthread_rwlock_unlock(&db->env_lock);
    fanns_hits_free(hits, *n);
    *n = 0;
    return rc;
}

/* ---- open / close ------------------------------------------------------------------- */

static int read_counters(fanns_db_t *db, fanns_err_t *err) {
    MDB_txn *txn;
    int rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn);
    if (rc) return lmdb_err(err, rc, "txn begin");
    MDB_val k = {8, "next_cid"}, v;
    if (mdb_get(txn, db->dbi_meta, &k, &v) == 0 && v.mv_size == 8) {
        uint64_t x;
        memcpy(&x, v.mv_data, 8);
        db->next_cid = (uint32_t)x;
    }
    MDB_val k2 = {6, "op_seq"};
    if (mdb_get(txn, db->dbi_meta, &k2, &v) == 0 && v.mv_size == 8) memcpy(&db->op_seq, v.mv_data, 8);
    db->op_assigned = db->op_seq;
    mdb_txn_abort(txn);
    return 0;
}

int fanns_db_open(const char *dir, const fanns_db_opts_t *opts, fanns_db_t **out, fanns_err_t *err) {
    fanns_db_t *db = calloc(1, sizeof(*db));
    MDB_txn *txn = NULL;
    int rc;

    *out = NULL;
    if (!db) return fanns_err_set(err, FANNS_ENOMEM, NULL, "out of memory");
    fanns__rwlock_init(&db->env_lock);
    fanns__rwlock_init(&db->map_lock);
    pthread_mutex_init(&db->qmu, NULL);
    pthread_cond_init(&db->qcv, NULL);
    pthread_cond_init(&db->donecv, NULL);
    pthread_mutex_init(&db->imu, NULL);
    pthread_cond_init(&db->icv, NULL);
    db->dir = strdup(dir);
    db->qcap = opts && opts->max_queue ? opts->max_queue : 4096;
    db->queue = calloc(db->qcap, sizeof(*db->queue));
    db->mapsize = opts && opts->map_size_initial ? opts->map_size_initial : (size_t)1 << 30;
    db->next_cid = 1;
    if (!db->queue) {
        rc = fanns_err_set(err, FANNS_ENOMEM, NULL, "out of memory");
        goto fail;
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        rc = fanns_err_errno(err, errno, dir);
        goto fail;
    }
    if ((rc = mdb_env_create(&db->env)) != 0 || (rc = mdb_env_set_maxdbs(db->env, 8)) != 0 ||
        (rc = mdb_env_set_mapsize(db->env, db->mapsize)) != 0 || (rc = mdb_env_set_maxreaders(db->env, 1024)) != 0) {
        rc = lmdb_err(err, rc, "env create");
        goto fail;
    }
    /* MDB_NOTLS: read transactions run on pooled worker threads. */
    if ((rc = mdb_env_open(db->env, dir, MDB_NOTLS, 0644)) != 0) {
        rc = lmdb_err(err, rc, "env open");
        goto fail;
    }
    MDB_envinfo info;
    mdb_env_info(db->env, &info);
    db->mapsize = info.me_mapsize;
    if ((rc = mdb_txn_begin(db->env, NULL, 0, &txn)) != 0 ||
        (rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &db->dbi_meta)) != 0 ||
        (rc = mdb_dbi_open(txn, "points", MDB_CREATE, &db->dbi_points)) != 0 ||
        (rc = mdb_dbi_open(txn, "ids", MDB_CREATE, &db->dbi_ids)) != 0) {
        rc = lmdb_err(err, rc, "open databases");
        goto fail;
    }
    MDB_val fk = {6, "format"}, fv;
    rc = mdb_get(txn, db->dbi_meta, &fk, &fv);
    if (rc == MDB_NOTFOUND) {
        MDB_val nv = {7, "fanns-1"};
        if ((rc = mdb_put(txn, db->dbi_meta, &fk, &nv, 0)) != 0) {
            rc = lmdb_err(err, rc, "put format");
            goto fail;
        }
    } else if (rc != 0 || fv.mv_size != 7 || memcmp(fv.mv_data, "fanns-1", 7) != 0) {
        rc = fanns_err_set(err, FANNS_ECORRUPT, NULL, "%s does not hold a fanns-1 database", dir);
        goto fail;
    }
    rc = mdb_txn_commit(txn);
    txn = NULL;
    if (rc) {
        rc = lmdb_err(err, rc, "txn commit");
        goto fail;
    }
    if ((rc = read_counters(db, err)) != 0 || (rc = load_all(db, err)) != 0) goto fail;
    if (pthread_create(&db->writer, NULL, writer_main, db) != 0) {
        rc = fanns_err_set(err, FANNS_EIO, NULL, "cannot start the writer thread");
        goto fail;
    }
    db->writer_started = true;
    if ((rc = fanns__indexer_start(db)) != 0) {
        rc = fanns_err_set(err, rc, NULL, "cannot start the indexer thread");
        goto fail;
    }
    fanns_info("database open at %s: %zu collections, map %zu MiB", dir, db->ncolls, db->mapsize >> 20);
    *out = db;
    return 0;
fail:
    if (txn) mdb_txn_abort(txn);
    fanns_db_close(db);
    return rc;
}

void fanns_db_close(fanns_db_t *db) {
    if (!db) return;
    if (db->writer_started) {
        pthread_mutex_lock(&db->qmu);
        db->closing = true;
        pthread_cond_broadcast(&db->qcv);
        pthread_mutex_unlock(&db->qmu);
        pthread_join(db->writer, NULL);
    }
    fanns__indexer_stop(db);
    for (size_t i = 0; i < db->ncolls; i++) fanns_coll_release(db->colls[i]);
    free(db->colls);
    if (db->env) mdb_env_close(db->env);
    free(db->queue);
    free(db->dir);
    pthread_mutex_destroy(&db->imu);
    pthread_cond_destroy(&db->icv);
    pthread_rwlock_destroy(&db->env_lock);
    pthread_rwlock_destroy(&db->map_lock);
    pthread_mutex_destroy(&db->qmu);
    pthread_cond_destroy(&db->qcv);
    pthread_cond_destroy(&db->donecv);
    free(db);
}
