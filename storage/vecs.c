/*
 * vecs.c: where a collection's float32 vectors are read from.
 *
 * By default every vector is kept in RAM (coll_int.h: vecs[off * dim]).  A collection
 * created or patched with `vectors.on_disk: true` (Qdrant's meaning: the original vectors
 * are not kept in RAM) keeps no such array: each vector is read from its point record in
 * LMDB's memory map, where it is stored anyway (docs/storage-format.md), so RAM holds only
 * the codes, ids, payloads and graph.  The kernel pages the records in and out as the page
 * cache allows.
 *
 * Readers.  A fanns_vread_t reads vectors through one LMDB transaction: the writer's write
 * transaction (so it sees the group's uncommitted records), the loading transaction, or a
 * read transaction it begins itself, once per search or batch (never per point).  A record
 * lookup is a B-tree descent (about a microsecond with the pages cached) plus a copy of the
 * vector into an aligned buffer: the vector sits at byte 37 of the record, so it is never
 * read in place as floats.  A full scan walks the records with a cursor instead.
 *
 * Consistency.  Memory is the authority on which slots are live.  A read transaction begun
 * while the collection's lock is held sees exactly the committed state memory shows: the
 * writer holds the write lock of every collection it changes from the first change until
 * the commit.  Map resizing needs every read transaction closed, which env_lock ensures:
 * readers of on-disk vectors hold it shared from before the collection lock until the
 * transaction ends (fanns__coll_lock), the writer takes it exclusively, holding no
 * collection lock, to resize.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "coll.h"
#include "log.h"
#include "mem.h"

void fanns__db_point_key(uint8_t k[8], uint32_t cid, uint32_t off) {
    k[0] = (uint8_t)(cid >> 24);
    k[1] = (uint8_t)(cid >> 16);
    k[2] = (uint8_t)(cid >> 8);
    k[3] = (uint8_t)cid;
    k[4] = (uint8_t)(off >> 24);
    k[5] = (uint8_t)(off >> 16);
    k[6] = (uint8_t)(off >> 8);
    k[7] = (uint8_t)off;
}

static uint32_t rd_be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

bool fanns__coll_config_ondisk(const json_t *config) {
    json_t *v = json_object_get(json_object_get(json_object_get(config, "params"), "vectors"), "on_disk");
    return json_is_true(v);
}

/* ---- locking ------------------------------------------------------------------------ */

void fanns__rwlock_init(pthread_rwlock_t *l) {
    pthread_rwlockattr_t a;
    if (pthread_rwlockattr_init(&a) != 0) {
        /* Not expected with glibc; the default kind is correct, only unfair to writers. */
        pthread_rwlock_init(l, NULL);
        return;
    }
    (void)pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(l, &a);
    pthread_rwlockattr_destroy(&a);
}

void fanns__coll_lock(fanns_coll_t *c, bool write, bool *env) {
    /* The flag read before locking is a hint; it is checked again under the lock, and if the
     * collection moved to disk meanwhile the locks are taken again in order. */
    bool e = atomic_load_explicit(&c->ondisk, memory_order_relaxed);
    for (;;) {
        if (e) pthread_rwlock_rdlock(&c->db->env_lock);
        if (write) pthread_rwlock_wrlock(&c->lock);
        else pthread_rwlock_rdlock(&c->lock);
        if (e || !atomic_load_explicit(&c->ondisk, memory_order_relaxed)) break;
        pthread_rwlock_unlock(&c->lock);
        e = true;
    }
    *env = e;
}

void fanns__coll_unlock(fanns_coll_t *c, bool env) {
    pthread_rwlock_unlock(&c->lock);
    if (env) pthread_rwlock_unlock(&c->db->env_lock);
}

/* ---- readers ------------------------------------------------------------------------ */

static int set_rc(fanns_vread_t *vr, int rc) {
    if (!vr->rc) vr->rc = rc;
    return rc;
}

int fanns__vr_open(fanns_vread_t *vr, const fanns_coll_t *c, MDB_txn *txn) {
    memset(vr, 0, sizeof(*vr));
    vr->c = c;
    if (!atomic_load_explicit(&c->ondisk, memory_order_relaxed)) return 0;
    vr->buf = malloc((size_t)c->dim * sizeof(float));
    if (!vr->buf) return set_rc(vr, FANNS_ENOMEM);
    if (!txn) {
        int rc = mdb_txn_begin(c->db->env, NULL, MDB_RDONLY, &txn);
        if (rc) {
            fanns_error("lmdb read txn for the vectors of %s: %s", c->name, mdb_strerror(rc));
            return set_rc(vr, rc == ENOMEM ? FANNS_ENOMEM : FANNS_EIO);
        }
        vr->own_txn = true;
    }
    vr->txn = txn;
    return 0;
}

void fanns__vr_close(fanns_vread_t *vr) {
    if (vr->cur) mdb_cursor_close(vr->cur);
    if (vr->own_txn) mdb_txn_abort(vr->txn);
    free(vr->buf);
    memset(vr, 0, sizeof(*vr));
}

/* Checks a record value and copies its vector to dst. */
static int copy_record(fanns_vread_t *vr, uint32_t off, const MDB_val *v, float *dst) {
    const fanns_coll_t *c = vr->c;
    uint32_t d;
    if (v->mv_size < FANNS__REC_HDR) goto corrupt;
    memcpy(&d, (const uint8_t *)v->mv_data + FANNS__REC_HDR - 4, 4);
    if (d != c->dim || v->mv_size < FANNS__REC_HDR + (size_t)d * 4) goto corrupt;
    memcpy(dst, (const uint8_t *)v->mv_data + FANNS__REC_HDR, (size_t)d * sizeof(float));
    return 0;
corrupt:
    if (!vr->rc) fanns_error("point record %u of %s is corrupt", off, c->name);
    return set_rc(vr, FANNS_ECORRUPT);
}

static int fetch_into(fanns_vread_t *vr, uint32_t off, float *dst) {
    const fanns_coll_t *c = vr->c;
    uint8_t k[8];
    fanns__db_point_key(k, c->cid, off);
    MDB_val key = {8, k}, v;
    int rc = mdb_get(vr->txn, c->db->dbi_points, &key, &v);
    if (rc) {
        /* A live slot always has its record in the same snapshot: this is damage. */
        if (!vr->rc) fanns_error("vector of point %u of %s not readable: %s", off, c->name, mdb_strerror(rc));
        return set_rc(vr, rc == MDB_NOTFOUND ? FANNS_ECORRUPT : FANNS_EIO);
    }
    return copy_record(vr, off, &v, dst);
}

const float *fanns__vr_fetch(fanns_vread_t *vr, uint32_t off) {
    return fetch_into(vr, off, vr->buf) == 0 ? vr->buf : NULL;
}

int fanns__vr_copy(fanns_vread_t *vr, uint32_t off, float *dst) {
    if (!vr->txn) {
        memcpy(dst, vr->c->vecs + (size_t)off * vr->c->dim, vr->c->dim * sizeof(float));
        return 0;
    }
    return fetch_into(vr, off, dst);
}

int fanns__vr_next(fanns_vread_t *vr, uint32_t *off, const float **vec) {
    const fanns_coll_t *c = vr->c;
    if (vr->rc) return vr->rc;
    if (!vr->txn) {
        while (vr->walk_off < c->nslots && !c->live[vr->walk_off]) vr->walk_off++;
        if (vr->walk_off >= c->nslots) return 0;
        *off = vr->walk_off++;
        *vec = c->vecs + (size_t)*off * c->dim;
        return 1;
    }
    uint8_t k[8];
    MDB_val key, v;
    int rc;
    if (!vr->walk_started) {
        if ((rc = mdb_cursor_open(vr->txn, c->db->dbi_points, &vr->cur)) != 0) {
            fanns_error("lmdb cursor for the vectors of %s: %s", c->name, mdb_strerror(rc));
            return set_rc(vr, FANNS_EIO);
        }
        vr->walk_started = true;
        fanns__db_point_key(k, c->cid, 0);
        key.mv_size = 8;
        key.mv_data = k;
        rc = mdb_cursor_get(vr->cur, &key, &v, MDB_SET_RANGE);
    } else {
        rc = mdb_cursor_get(vr->cur, &key, &v, MDB_NEXT);
    }
    if (rc == MDB_NOTFOUND) return 0;
    if (rc) {
        fanns_error("lmdb cursor over the vectors of %s: %s", c->name, mdb_strerror(rc));
        return set_rc(vr, FANNS_EIO);
    }
    if (key.mv_size != 8 || rd_be32(key.mv_data) != c->cid) return 0;
    *off = rd_be32((const uint8_t *)key.mv_data + 4);
    if (copy_record(vr, *off, &v, vr->buf) != 0) return vr->rc;
    *vec = vr->buf;
    return 1;
}

/* ---- switching between RAM and disk --------------------------------------------------- */

int fanns__coll_vec_config(fanns_coll_t *c, MDB_txn *txn) {
    bool want = fanns__coll_config_ondisk(c->config);
    if (want == atomic_load(&c->ondisk)) return 0;
    if (want) {
        /* Every record already holds its vector: dropping the copy is all there is to do. */
        fanns_mem_free(c->vecs, c->vecs_bytes);
        c->vecs = NULL;
        c->vecs_bytes = 0;
        atomic_store(&c->ondisk, true);
        fanns_info("vectors of %s are now read from disk", c->name);
        return 0;
    }
    size_t nb = (size_t)(c->cap ? c->cap : 1) * c->dim * sizeof(float);
    float *v = fanns_mem_alloc(nb);
    if (!v) return FANNS_ENOMEM;
    fanns_vread_t vr;
    int rc = fanns__vr_open(&vr, c, txn);
    uint32_t off, loaded = 0;
    const float *src;
    int r = 0;
    while (rc == 0 && (r = fanns__vr_next(&vr, &off, &src)) == 1) {
        if (off >= c->nslots || !c->live[off]) continue; /* cannot happen: records are the live slots */
        memcpy(v + (size_t)off * c->dim, src, c->dim * sizeof(float));
        loaded++;
    }
    if (rc == 0 && r < 0) rc = r;
    fanns__vr_close(&vr);
    if (rc == 0 && loaded != c->count) {
        fanns_error("loading the vectors of %s into RAM: %u records for %llu points", c->name, loaded,
                    (unsigned long long)c->count);
        rc = FANNS_ECORRUPT;
    }
    if (rc) {
        fanns_mem_free(v, nb);
        return rc;
    }
    c->vecs = v;
    c->vecs_bytes = nb;
    atomic_store(&c->ondisk, false);
    fanns_info("vectors of %s are now kept in RAM (%u loaded)", c->name, loaded);
    return 0;
}
