/*
 * db.h: the fanns database: collections of points stored in LMDB, with an in-memory copy
 * that searches read, and one writer thread that applies ordered write entries.
 *
 * Model.  LMDB is the source of truth (layout: docs/storage-format.md).  Every change is a
 * fanns_wentry_t handed to fanns_db_write(); a single writer thread takes queued entries in
 * order, applies a group of them in one LMDB transaction (group commit), updates the
 * in-memory collections and then completes the waiting callers.  An entry is deterministic:
 * applying the same sequence of entries to the same state gives the same state (no clocks,
 * no unseeded randomness), so a replicated log can later carry the same entries.
 *
 * Concurrency.  Readers take a reference to a collection (fanns_db_coll_get) and call the
 * fanns_coll_* read functions from any thread; those take the collection's read lock.  The
 * writer holds a collection's write lock from the first change of a group until its commit,
 * so readers never observe uncommitted state.  Payload objects are immutable once stored:
 * a payload change builds a new object, so a reader may keep a reference (json_incref) after
 * the lock is released.
 */
#ifndef FANNS_DB_H
#define FANNS_DB_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "distance.h"
#include "err.h"
#include "filter.h"
#include "pid.h"

typedef struct fanns_db fanns_db_t;
typedef struct fanns_coll fanns_coll_t;

typedef struct fanns_db_opts {
    size_t map_size_initial;    /* initial LMDB map size in bytes (0: 1 GiB); it grows on demand */
    size_t max_queue;           /* writes queued before callers get FANNS_ELIMIT (0: 4096) */
} fanns_db_opts_t;

/* Limits enforced by the db (and checked earlier by proto for better messages). */
#define FANNS_MAX_DIM 65536
#define FANNS_MAX_NAME 255
#define FANNS_MAX_POINTS_PER_COLL 0xFFFFFFF0u

/* Opens (creating if needed) the database in directory dir and loads every collection.
 * opts may be NULL.  On success *out must be closed with fanns_db_close. */
int fanns_db_open(const char *dir, const fanns_db_opts_t *opts, fanns_db_t **out, fanns_err_t *err);
/* Stops accepting writes, applies and commits everything queued, stops the writer and
 * closes LMDB.  No reader may be running. */
void fanns_db_close(fanns_db_t *db);

/* ---- writes ------------------------------------------------------------------------- */

typedef enum {
    FANNS_W_CREATE_COLL = 1,    /* collection, config, dim, metric */
    FANNS_W_DROP_COLL,          /* collection */
    FANNS_W_UPSERT,             /* collection, dim (must equal the collection's), n, ids, vectors, payloads */
    FANNS_W_DELETE,             /* collection, ids[n] or filter */
    FANNS_W_SET_PAYLOAD,        /* collection, payload, ids[n] or filter, optional key */
    FANNS_W_OVERWRITE_PAYLOAD,  /* collection, payload, ids[n] or filter */
    FANNS_W_DELETE_PAYLOAD,     /* collection, keys, ids[n] or filter */
    FANNS_W_CLEAR_PAYLOAD,      /* collection, ids[n] or filter */
    FANNS_W_CREATE_INDEX,       /* collection, field, field_schema */
    FANNS_W_DROP_INDEX,         /* collection, field */
    FANNS_W_UPDATE_COLL,        /* collection, config (replaces stored config; dim/metric unchanged) */
    FANNS_W_PUT_CODEBOOK        /* internal (the indexer, after training): collection, cid, gen, blob:
                                   stores a trained codebook if the collection still wants it */
} fanns_wop_t;

/* A write entry.  Everything it points to is owned by the entry and freed by
 * fanns_wentry_free.  Build it with fanns_wentry_new and fill the fields of its op. */
typedef struct fanns_wentry {
    fanns_wop_t op;
    char *collection;           /* malloc'd name */
    json_t *config;             /* CREATE_COLL / UPDATE_COLL: normalised collection config */
    uint32_t dim;               /* CREATE_COLL */
    fanns_metric_t metric;      /* CREATE_COLL */
    size_t n;                   /* number of ids (and vectors/payloads for UPSERT) */
    fanns_pid_t *ids;           /* malloc'd [n] */
    float *vectors;             /* UPSERT: malloc'd [n * dim], normalised for Cosine */
    json_t **payloads;          /* UPSERT: malloc'd [n], each an owned object or NULL */
    json_t *filter_json;        /* selection by filter instead of ids (the JSON is what a
                                   replicated log carries; filter is compiled from it) */
    fanns_filter_t *filter;
    json_t *payload;            /* SET/OVERWRITE_PAYLOAD: object */
    char *key;                  /* SET_PAYLOAD: optional dotted path to merge under */
    json_t *keys;               /* DELETE_PAYLOAD: array of dotted paths */
    char *field;                /* CREATE/DROP_INDEX */
    json_t *field_schema;       /* CREATE_INDEX */
    uint32_t cid;               /* PUT_CODEBOOK: the collection id the codebook belongs to */
    uint64_t gen;               /* PUT_CODEBOOK: quantization spec generation it was trained for */
    uint8_t *blob;              /* PUT_CODEBOOK: malloc'd codebook record (docs/storage-format.md) */
    size_t blob_len;

    /* Filled by the writer. */
    int result;                 /* 0 or FANNS_E* */
    fanns_err_t err;
    uint64_t op_id;             /* operation sequence number given by the writer */
    bool done;
    bool detached;              /* caller did not wait: the writer frees the entry */
} fanns_wentry_t;

/* Allocates a zeroed entry for op; NULL if out of memory. */
fanns_wentry_t *fanns_wentry_new(fanns_wop_t op);
void fanns_wentry_free(fanns_wentry_t *e);

/* Submits e (takes ownership, whatever the result).  With wait, blocks until e is applied
 * and committed and returns its result; otherwise returns 0 once e is queued (the write is
 * durable once the writer commits it).  *op_id (may be NULL) receives the operation id.
 * Errors: FANNS_EBUSY (closing), FANNS_ELIMIT (queue full), and for waited entries any error
 * the entry produced (FANNS_ENOTFOUND, FANNS_EEXIST, FANNS_EVALIDATE, FANNS_EIO...). */
int fanns_db_write(fanns_db_t *db, fanns_wentry_t *e, bool wait, uint64_t *op_id, fanns_err_t *err);

/* ---- reads -------------------------------------------------------------------------- */

/* New array of collection names (sorted); caller owns it. */
json_t *fanns_db_coll_names(fanns_db_t *db);
/* Takes a reference to collection name.  Returns 0 or FANNS_ENOTFOUND. */
int fanns_db_coll_get(fanns_db_t *db, const char *name, fanns_coll_t **out, fanns_err_t *err);
/* Drops a reference taken by fanns_db_coll_get. */
void fanns_coll_release(fanns_coll_t *c);

uint32_t fanns_coll_dim(const fanns_coll_t *c);
fanns_metric_t fanns_coll_metric(const fanns_coll_t *c);
const char *fanns_coll_name(const fanns_coll_t *c);

/* Collection statistics and configuration, copied under the read lock. */
typedef struct fanns_coll_stats {
    uint64_t points_count;
    uint64_t indexed_vectors_count; /* live points the graph reflects (0 without a graph) */
    bool indexing;              /* the graph is being built or caught up (status yellow) */
    json_t *config;             /* new reference to the stored config; caller decrefs */
    json_t *payload_schema;     /* new object {field: {data_type, params?, points}}; caller owns */

    /* Quantization and memory (the fanns extension of GET /collections/{c}). */
    const char *codec;          /* wanted codec "sq8", "bin", "pq", "f16", or NULL for none */
    const char *codec_status;   /* "none", "waiting" (too few points to train), "training"
                                   (training or re-encoding), "ready" (codes serve scans) */
    const char *codec_ready;    /* kind of the published codec (may differ from codec while a
                                   changed one trains), or NULL */
    size_t code_size;           /* bytes per code of the published codec */
    uint64_t codec_trained_points; /* sample size it was trained on */
    uint64_t codec_checksum;    /* FNV-1a-64 of its serialized codebook */
    uint64_t codes_bytes, vectors_bytes, graph_bytes, payload_index_bytes;
    bool codes_in_graph;        /* the codes are the graph's (codes_bytes is their share of the
                                   graph's memory, not counted again in graph_bytes) */
    uint64_t blocks, block_links, block_bytes; /* block links (storage/blocks.c): payload values
                                   linked, links, bytes held */
} fanns_coll_stats_t;
int fanns_coll_stats(fanns_coll_t *c, fanns_coll_stats_t *out);

/* One point returned by a read. */
typedef struct fanns_hit {
    fanns_pid_t id;
    uint64_t version;
    float score;                /* search only */
    json_t *payload;            /* new reference (json_decref it) or NULL */
    float *vector;              /* malloc'd copy when requested, else NULL */
} fanns_hit_t;

/* Frees n hits and the array. */
void fanns_hits_free(fanns_hit_t *hits, size_t n);

/* How a search was answered (params.explain). */
typedef struct fanns_search_explain {
    const char *strategy;       /* "exact_scan", "exact_filtered_scan", "hnsw", "hnsw_filtered",
                                   "hnsw_filtered+exact_fallback" */
    uint64_t estimated_matches; /* planner's estimate of points passing the filter */
    bool estimate_exact;        /* the estimate is a count, not a sample */
    uint64_t actual_matches;    /* points found passing the filter where counted, else 0 */
    uint64_t dist_comps;        /* distance computations */
    uint64_t points;            /* live points in the collection */
    double local_selectivity;   /* share of the query's unfiltered neighbourhood passing (-1: not probed) */
    const char *codec;          /* the scan ran on these codes ("sq8", ...), or NULL for float32 */
    uint64_t candidates;        /* codes kept for rescoring (k * oversampling) */
    bool rescored;              /* candidates were rescored with float32 vectors */
    bool block_links;           /* the graph walk gathered block links (storage/blocks.c) */
} fanns_search_explain_t;

typedef struct fanns_search_req {
    const float *query;         /* dim floats, normalised already for Cosine */
    const fanns_filter_t *filter; /* may be NULL */
    size_t limit, offset;
    bool has_threshold;
    float score_threshold;      /* Cosine/Dot: keep score >= t; Euclid/Manhattan: score <= t */
    bool with_vector;
    bool no_payload;            /* the caller does not read the hits' payloads (left NULL):
                                   saves touching each hit's payload (a cache miss apiece) */
    bool exact;                 /* params.exact: scan every point, ignore the index */
    size_t ef;                  /* params.hnsw_ef (0: the collection's ef_construct) */
    fanns_search_explain_t *explain; /* filled when not NULL */
    bool q_ignore;              /* params.quantization.ignore: never use codes */
    bool q_no_rescore;          /* params.quantization.rescore = false: answer with code scores */
    double q_oversampling;      /* params.quantization.oversampling (>= 1; 0 means 1) */
} fanns_search_req_t;

/* Search: the top (offset + limit) by score, then drops the first offset.  Exact (float32
 * scan) when req->exact or req->q_ignore, or when the collection has no codec and no graph;
 * scans otherwise run on the codes and rescore k * oversampling candidates in float32.
 * *out is a malloc'd array (free with fanns_hits_free). */
int fanns_coll_search(fanns_coll_t *c, const fanns_search_req_t *req, fanns_hit_t **out, size_t *n,
                      fanns_err_t *err);
/* Points by id, in the order asked, skipping ids that do not exist. */
int fanns_coll_get_points(fanns_coll_t *c, const fanns_pid_t *ids, size_t nids, bool with_vector,
                          fanns_hit_t **out, size_t *n, fanns_err_t *err);
/* Points in id order starting at *start (inclusive; NULL: from the first) that match filter,
 * at most limit; *has_next and *next receive the id to continue from. */
int fanns_coll_scroll(fanns_coll_t *c, const fanns_pid_t *start, const fanns_filter_t *filter,
                      size_t limit, bool with_vector, fanns_hit_t **out, size_t *n, bool *has_next,
                      fanns_pid_t *next, fanns_err_t *err);
/* Number of points matching filter (NULL: all). */
int fanns_coll_count(fanns_coll_t *c, const fanns_filter_t *filter, uint64_t *count, fanns_err_t *err);

#endif
