/*
 * coll.h: storage-internal operations on a collection's in-memory slots (coll.c).  The
 * writer thread (db.c) calls the mutators with the collection's write lock held.
 */
#ifndef FANNS_COLL_H
#define FANNS_COLL_H

#include "coll_int.h"

/* New collection object with one reference (the map's); borrows config/schema by incref. */
fanns_coll_t *fanns__coll_new(fanns_db_t *db, const char *name, uint32_t cid, uint32_t dim,
                              fanns_metric_t metric, json_t *config, json_t *schema);
void fanns__coll_destroy(fanns_coll_t *c);
/* Offset of id, or -1. */
int64_t fanns__coll_find(const fanns_coll_t *c, const fanns_pid_t *id);
/* Takes a free offset (lowest freed first, else a new one). */
int fanns__coll_alloc_slot(fanns_coll_t *c, uint32_t *off);
/* Stores a point in slot off (takes the payload reference). */
int fanns__coll_set_slot(fanns_coll_t *c, uint32_t off, const fanns_pid_t *id, uint64_t version,
                         const float *vec, json_t *payload);
/* Replaces a live slot's payload (takes the reference). */
void fanns__coll_set_payload(fanns_coll_t *c, uint32_t off, json_t *payload, uint64_t version);
/* Removes the point in slot off and puts the offset on the free list. */
int fanns__coll_free_slot(fanns_coll_t *c, uint32_t off);
/* After loading: every non-live offset below nslots becomes free. */
int fanns__coll_rebuild_freelist(fanns_coll_t *c);
/* Fills a hit from slot off (payload reference, optional vector copy read through vr, which
 * may be NULL when with_vector is false). */
int fanns__coll_fill_hit(const fanns_coll_t *c, uint32_t off, bool with_vector, bool with_payload, fanns_vread_t *vr,
                         fanns_hit_t *h);

/* ---- vecs.c: where float32 vectors are read from ---- */

/* Initialises one of the storage's rwlocks (a collection's lock, env_lock, map_lock) as
 * writer-preferring: once a writer waits, new readers wait behind it, so constant searches
 * cannot starve the writer (glibc's default lets readers in as long as one holds the lock).
 * The price is that a thread must never take a read lock it already holds (a writer queued
 * in between would deadlock it), and the locks are always taken in one order: env_lock,
 * then a collection's lock, then map_lock. */
void fanns__rwlock_init(pthread_rwlock_t *l);

/* Takes c's lock (write or read) and, before it, the database's env_lock shared when c keeps
 * its vectors on disk (*env says whether it was taken).  Release with fanns__coll_unlock. */
void fanns__coll_lock(fanns_coll_t *c, bool write, bool *env);
void fanns__coll_unlock(fanns_coll_t *c, bool env);
/* Starts reading c's vectors (c's lock held).  For an on-disk collection, reads go through
 * txn (borrowed; the writer's write transaction, or a caller's read transaction) or, when
 * txn is NULL, through a read transaction begun here (env_lock must be held shared).
 * Returns 0, FANNS_ENOMEM or FANNS_EIO; close the reader in every case. */
int fanns__vr_open(fanns_vread_t *vr, const fanns_coll_t *c, MDB_txn *txn);
void fanns__vr_close(fanns_vread_t *vr);
/* Out of line: copies slot off's vector out of its LMDB record into vr->buf. */
const float *fanns__vr_fetch(fanns_vread_t *vr, uint32_t off);
/* Slot off's vector (off must be live), or NULL with vr->rc set (a missing or corrupt
 * record).  In RAM it points into c->vecs; from disk into vr->buf, until the next read. */
static inline const float *fanns__vr_get(fanns_vread_t *vr, uint32_t off) {
    if (!vr->txn) return vr->c->vecs + (size_t)off * vr->c->dim;
    return fanns__vr_fetch(vr, off);
}
/* Copies slot off's vector to dst (dim floats).  Returns 0 or vr->rc. */
int fanns__vr_copy(fanns_vread_t *vr, uint32_t off, float *dst);
/* Walks the stored vectors in offset order (a cursor over the records on disk, live slots in
 * RAM): 1 with *off and *vec (valid until the next call), 0 at the end, or a FANNS_E* error.
 * On disk this is one sequential B-tree walk instead of a lookup per slot. */
int fanns__vr_next(fanns_vread_t *vr, uint32_t *off, const float **vec);
/* Applies params.vectors.on_disk from c->config (writer, write lock held): moving to disk
 * frees the vectors in RAM; moving to RAM loads them from the records through txn.  Returns
 * 0, FANNS_ENOMEM or FANNS_EIO/FANNS_ECORRUPT (nothing changed then). */
int fanns__coll_vec_config(fanns_coll_t *c, MDB_txn *txn);
/* params.vectors.on_disk of a config. */
bool fanns__coll_config_ondisk(const json_t *config);
/* LMDB key of slot off's point record. */
void fanns__db_point_key(uint8_t k[8], uint32_t cid, uint32_t off);

/* ---- indexer.c ---- */

/* Reads the index settings (hnsw_config, indexing_threshold) from c->config. */
void fanns__index_config(fanns_coll_t *c);
/* Marks slot off stale and queues it for the indexer (write lock held); no-op without a graph. */
int fanns__index_touch(fanns_coll_t *c, uint32_t off);
/* Frees the graph and index bookkeeping (and its files if the collection was dropped). */
void fanns__index_destroy(fanns_coll_t *c);
/* Indexed point count and whether indexing is under way (read lock held). */
void fanns__index_stats(const fanns_coll_t *c, uint64_t *indexed, bool *indexing);
/* After loading a collection at start-up: load its saved graph if it is current. */
void fanns__index_load(fanns_coll_t *c);
/* Starts/stops the indexer thread; kick wakes it after a commit. */
int fanns__indexer_start(fanns_db_t *db);
void fanns__indexer_stop(fanns_db_t *db);
void fanns__indexer_kick(fanns_db_t *db);

/* ---- blocks.c (block links; see the block comment there) ---- */

/* Links the blocks the payload indexes call for, drops the ones they no longer do, and
 * publishes the result as c->blocks.  Indexer thread only, with no lock held. */
void fanns__blocks_work(fanns_db_t *db, fanns_coll_t *c);
/* Frees a structure no reader can hold any more; NULL is ignored. */
void fanns__blocks_free(fanns_blocks_t *bs);
/* The links for a walk (borrowed under the read lock), or NULL when there are none. */
const fanns_hnsw_xlinks_t *fanns__blocks_xlinks(const fanns_blocks_t *bs);
/* Block count, link count and bytes held (zeros for NULL). */
void fanns__blocks_stats(const fanns_blocks_t *bs, uint64_t *nblocks, uint64_t *nlinks, uint64_t *bytes);
/* Writes bs (NULL: removes the file) under the graph's stamp.  Returns 0 or FANNS_EIO. */
int fanns__blocks_save(const fanns_blocks_t *bs, const char *path, uint64_t stamp);
/* Reads a file written under stamp with payload_m pm for graph h (every link must name one of
 * its nodes, below nslots).  Returns 0, FANNS_ENOTFOUND, FANNS_ECORRUPT or FANNS_ENOMEM. */
int fanns__blocks_load(const char *path, uint64_t stamp, uint32_t pm, uint32_t nslots, const fanns_hnsw_t *h,
                       fanns_blocks_t **out);

/* ---- quant.c (quantization; see the block comment there) ---- */

typedef struct fanns_qcodec fanns_qcodec_t;
typedef struct fanns_qjob fanns_qjob_t;
typedef struct fanns_qquery fanns_qquery_t;

/* The codec spec a config asks for: new object {kind: "sq8"|"bin"|"pq"|"f16", quantile?, m?,
 * sample?} or NULL for none. */
json_t *fanns__quant_spec(const json_t *config, uint32_t dim);
/* PQ sub-quantizers for compression xN: the largest divisor of dim not above dim * 4 / N. */
uint32_t fanns__quant_pq_m(uint32_t dim, unsigned compression);
/* Re-reads the spec from c->config (write lock held).  Returns true when quantization was
 * turned off (the codes are dropped; the caller deletes the stored codebook). */
bool fanns__quant_config(fanns_coll_t *c);
/* Schedules a training when one is due (writer, write lock held): copies the sample, reading
 * on-disk vectors through txn (the write transaction, or the loading read transaction). */
void fanns__quant_schedule(fanns_coll_t *c, MDB_txn *txn);
/* Grows the code array to ncap slots (before c->cap changes). */
int fanns__quant_ensure_cap(fanns_coll_t *c, uint32_t ncap);
/* Encodes vec (slot off's new vector, dim floats) with the published codec, if any (write
 * lock held). */
void fanns__quant_encode_slot(fanns_coll_t *c, uint32_t off, const float *vec);
/* At load: takes the stored codebook record (borrowed; may be NULL), then schedules (txn: the
 * loading transaction, for on-disk vectors). */
void fanns__quant_load(fanns_coll_t *c, const void *blob, size_t len, MDB_txn *txn);
void fanns__quant_destroy(fanns_coll_t *c);
/* meta key of a collection's codebook record. */
int fanns__quant_key(uint32_t cid, char *buf, size_t n);
/* Fills the quantization fields of st (read lock held). */
void fanns__quant_stats(const fanns_coll_t *c, fanns_coll_stats_t *st);
/* A training or re-encoding is scheduled or running. */
bool fanns__quant_busy(const fanns_coll_t *c);
/* Runs c's scheduled jobs (indexer thread, no lock held). */
void fanns__quant_work(fanns_db_t *db, fanns_coll_t *c);
const char *fanns__quant_kind_name(const fanns_qcodec_t *qc);
/* Graphs over codes (lock held).  graph_kind: the codec kind the config asks for if a graph
 * can hold its codes (F16, SQ8), else 0.  graph_ready: the kind of the published codec if a
 * graph can hold it, else 0.  graph_codec: a private copy of the published codec for a new
 * graph (it keeps its copy while the collection retrains on a larger sample), or NULL;
 * caller frees with fanns_codec_free. */
int fanns__quant_graph_kind(const fanns_coll_t *c);
int fanns__quant_graph_ready(const fanns_coll_t *c);
fanns_codec_t *fanns__quant_graph_codec(const fanns_coll_t *c);
/* Checksum of a codec's serialized bytes (equal to its qcodec's checksum). */
uint64_t fanns__quant_codec_sum(const fanns_codec_t *cc);
/* Shared codes (write lock held).  When the graph's nodes hold codes of the published codec
 * and every slot is indexed, share drops the code array: scans then read codes from the graph
 * and score slots it does not reflect yet exactly (c->qc set, c->codes NULL).  unshare builds
 * the array again (from the graph's codes, and from the vectors through vr for stale slots)
 * before the graph goes away.  unshare returns 0 or FANNS_ENOMEM / a read error. */
void fanns__quant_share(fanns_coll_t *c);
int fanns__quant_unshare(fanns_coll_t *c, fanns_vread_t *vr);

/* Distance estimates against codes ("smaller is better", index/codec.h's scale) for query q
 * (dim floats, borrowed for the call).  The query borrows qc: use it under the read lock. */
int fanns__qquery_new(const fanns_qcodec_t *qc, const float *q, fanns_qquery_t **out, fanns_err_t *err);
void fanns__qquery_free(fanns_qquery_t *qq);
float fanns__qquery_dist(const fanns_qquery_t *qq, const uint8_t *code);
void fanns__qquery_batch(const fanns_qquery_t *qq, size_t n, const uint8_t *codes, float *out);

#endif
