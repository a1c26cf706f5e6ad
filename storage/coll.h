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
/* Fills a hit from slot off (payload reference, optional vector copy). */
int fanns__coll_fill_hit(const fanns_coll_t *c, uint32_t off, bool with_vector, fanns_hit_t *h);

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
/* Schedules a training when one is due (writer, write lock held): copies the sample. */
void fanns__quant_schedule(fanns_coll_t *c);
/* Grows the code array to ncap slots (before c->cap changes). */
int fanns__quant_ensure_cap(fanns_coll_t *c, uint32_t ncap);
/* Encodes slot off's vector with the published codec, if any (write lock held). */
void fanns__quant_encode_slot(fanns_coll_t *c, uint32_t off);
/* At load: takes the stored codebook record (borrowed; may be NULL), then schedules. */
void fanns__quant_load(fanns_coll_t *c, const void *blob, size_t len);
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

/* Distance estimates against codes ("smaller is better", index/codec.h's scale) for query q
 * (dim floats, borrowed for the call).  The query borrows qc: use it under the read lock. */
int fanns__qquery_new(const fanns_qcodec_t *qc, const float *q, fanns_qquery_t **out, fanns_err_t *err);
void fanns__qquery_free(fanns_qquery_t *qq);
float fanns__qquery_dist(const fanns_qquery_t *qq, const uint8_t *code);
void fanns__qquery_batch(const fanns_qquery_t *qq, size_t n, const uint8_t *codes, float *out);

#endif
