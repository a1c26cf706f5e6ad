/*
 * coll_int.h: private layout of a collection and the database handle (storage/ only).
 *
 * A collection keeps every point in dense slots addressed by a 32-bit offset:
 *   vecs[off * dim .. +dim)   the vector (unit length for Cosine), unless `ondisk`: then vecs
 *                             is NULL and the vector is read from the point's LMDB record
 *                             (vecs.c; fanns_vread_t below)
 *   pids[off], versions[off]  external id and the operation id of its last change
 *   payloads[off]             immutable jansson object or NULL
 *   live[off]                 1 if the slot holds a point
 * Free slots are kept on a LIFO list; the id -> offset map is an open-addressing hash with
 * linear probing and backward-shift deletion over offsets (entries store offset + 1).
 *
 * Locking: `lock` guards every field below it.  Only the writer thread takes it for
 * writing.  `refs` counts the map's reference plus one per reader.  A thread that reads
 * vectors of an on-disk collection holds the database's env_lock shared from before it takes
 * `lock` until its read transaction ends (fanns__coll_lock), so the map is never resized
 * under it; the order is always env_lock, then lock.
 */
#ifndef FANNS_COLL_INT_H
#define FANNS_COLL_INT_H

#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>

#include "codec.h"
#include "db.h"
#include "faiss_codec.h"
#include "hnsw.h"
#include "payload_index.h"

#include <roaring/roaring.h>

typedef struct fanns_blocks fanns_blocks_t; /* block links, storage/blocks.c */

/* FNV-1a over n bytes, continuing from h (file checksums). */
static inline uint64_t fanns__fnv1a(uint64_t h, const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

struct fanns_coll {
    fanns_db_t *db;
    char *name;
    uint32_t cid;               /* numeric id used in LMDB keys; never reused */
    uint32_t dim;
    fanns_metric_t metric;
    atomic_int refs;

    pthread_rwlock_t lock;
    bool dropped;               /* removed from the database; readers answer 404 */
    json_t *config;             /* normalised config object */
    json_t *schema;             /* payload indexes: {field: field_schema} */
    uint32_t nslots, cap;
    _Atomic bool ondisk;        /* params.vectors.on_disk: no vecs, vectors from LMDB records.
                                   Written under the write lock; read without it only as a
                                   hint by fanns__coll_lock */
    float *vecs;                /* [cap * dim], NULL when ondisk; index/mem.h block of vecs_bytes */
    size_t vecs_bytes;
    fanns_pid_t *pids;
    uint64_t *versions;
    json_t **payloads;
    uint8_t *live;
    uint64_t count;             /* live points */
    uint32_t *freelist;
    uint32_t nfree, freecap;
    uint32_t *htab;             /* offset + 1, 0 = empty */
    uint32_t hcap;              /* power of two */
    uint64_t *vversions;        /* operation id that last wrote the slot's vector */
    roaring_bitmap_t *live_bm;  /* live offsets, the universe filters are evaluated over */
    fanns_pindex_t *pindex;     /* payload indexes declared with PUT /index, kept current */
    uint64_t full_scan_kb;      /* hnsw_config.full_scan_threshold: below it, exact filtered scan */

    /* Approximate index (storage/indexer.c).  hnsw is NULL until the collection passes its
     * indexing threshold; it is created, swapped and freed only by the indexer thread, under
     * the write lock.  A slot is "stale" while the graph does not reflect it (new, changed
     * or deleted since it was indexed): searches score stale live slots exactly and ignore
     * what the graph says about them.  Stale slots are also queued for the indexer. */
    fanns_hnsw_t *hnsw;
    fanns_codec_t *gcodec;      /* the codec whose codes hnsw's nodes hold (owned, the graph's
                                 * own copy), NULL for a float32 graph; replaced with hnsw, or
                                 * by a retraining of the same kind (fanns_hnsw_recode) */
    uint64_t gsum;              /* fanns__quant_codec_sum(gcodec) */
    uint32_t *stale_pos;        /* [cap] position in stale_list, UINT32_MAX if not stale */
    uint32_t *stale_list;       /* the stale offsets, unordered */
    uint32_t nstale, capstale;
    uint8_t *queued;            /* [cap] 1 while the offset is in iq */
    uint32_t *iq;               /* ring of offsets waiting for the indexer */
    size_t iq_head, iq_len, iq_cap;
    uint64_t *ivver;            /* [cap] vversion the graph holds for the slot (0: none) */
    uint32_t hnsw_m, hnsw_efc;  /* from config.hnsw_config; m == 0 disables the graph */
    uint64_t index_threshold_kb;/* from optimizer_config.indexing_threshold; 0 disables */
    bool reindex;               /* config changed: the indexer rebuilds the graph */
    bool delete_files;          /* dropped: remove the saved graph when freed */
    uint32_t payload_m;         /* hnsw_config.payload_m (default m; 0: no block links) */
    fanns_blocks_t *blocks;     /* block links over hnsw (blocks.c), or NULL; replaced with
                                 * the write lock held, by the indexer thread only */
    uint64_t pgen;              /* bumped by every change of payloads, payload indexes or config */
    uint64_t blocks_pgen;       /* indexer thread only: pgen when the blocks were last planned */
    uint64_t index_ops_since_save;

    /* Quantization (storage/quant.c).  qspec is the codec the config asks for (NULL: none);
     * qgen counts changes of qspec.  qc is the published codec (immutable, NULL until the
     * first training finishes) and codes[off * code_size] its code for every live slot: the
     * writer encodes each vector it stores, the indexer (re)encodes everything when it
     * publishes a new codec, both under the write lock.  qjob is a scheduled training the
     * indexer has not taken yet; qbusy is set while the indexer runs one.  qsched_gen and
     * qsched_points say which spec generation and sample size were last scheduled, so the
     * writer schedules each retraining once. */
    json_t *qspec;
    uint64_t qgen;
    struct fanns_qcodec *qc;
    uint8_t *codes;             /* [cap * code_size] while qc != NULL, except while shared: NULL
                                 * when the graph's nodes hold the codes of qc and scans read
                                 * them there (fanns__quant_share; stale slots are scored
                                 * exactly), so the codes are not kept twice */
    size_t code_size;
    struct fanns_qjob *qjob;
    bool qbusy;
    uint64_t qsched_gen, qsched_points;
};

struct fanns_db {
    MDB_env *env;
    MDB_dbi dbi_meta, dbi_points, dbi_ids;
    size_t mapsize;
    pthread_rwlock_t env_lock;  /* shared by readers with an open read txn; exclusive to resize */

    pthread_rwlock_t map_lock;  /* guards colls */
    fanns_coll_t **colls;       /* sorted by name */
    size_t ncolls, capcolls;

    uint32_t next_cid;          /* writer only */
    uint64_t op_seq;            /* writer only: highest operation id applied */
    uint64_t op_assigned;       /* under qmu: last operation id handed to an entry */

    pthread_t writer;
    bool writer_started;
    pthread_mutex_t qmu;
    pthread_cond_t qcv;         /* writer waits for entries */
    pthread_cond_t donecv;      /* callers wait for completion */
    fanns_wentry_t **queue;     /* ring buffer */
    size_t qhead, qlen, qcap;
    bool closing;

    char *dir;                  /* data directory (graph files live in dir/index/) */
    pthread_t indexer;
    bool indexer_started;
    pthread_mutex_t imu;
    pthread_cond_t icv;         /* wakes the indexer */
    bool ikick, istop;
    int index_threads;          /* threads for a large batch (all cores) */
};

/* Point records (docs/storage-format.md): key cid(u32 BE) . offset(u32 BE); value
 * pidkey(17) version(u64) vversion(u64) dim(u32) vector(dim x f32) payload.  The vector sits
 * at FANNS__REC_HDR, which is not a multiple of 4: it is only ever copied out (memcpy). */
#define FANNS__REC_HDR (FANNS_PID_KEYLEN + 8 + 8 + 4)

/* Reads a collection's float32 vectors, from RAM or from LMDB's map (vecs.c).  Opened with
 * the collection's lock held (and env_lock, see fanns__coll_lock); a returned pointer is
 * valid until the next read through the same reader or its close. */
typedef struct fanns_vread {
    const fanns_coll_t *c;
    MDB_txn *txn;               /* records are read through it; NULL: vectors are in RAM */
    bool own_txn;               /* begun by fanns__vr_open, aborted by fanns__vr_close */
    MDB_cursor *cur;            /* fanns__vr_next's position */
    bool walk_started;
    uint32_t walk_off;          /* in RAM: the next slot fanns__vr_next looks at */
    float *buf;                 /* [dim], aligned: the last vector copied out of the map */
    int rc;                     /* first error (FANNS_E*), 0 if none */
} fanns_vread_t;

#endif
