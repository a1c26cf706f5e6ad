/*
 * hnsw.h: a Hierarchical Navigable Small World graph (Malkov & Yashunin, TPAMI 2018) over
 * float32 vectors addressed by dense 32-bit offsets chosen by the caller.
 *
 * Layout: level 0 is one flat fixed-stride array of nodes, each holding its link count, up to
 * 2*m links and its vector, so one node is one contiguous run of cache lines; it is allocated
 * in fixed-size chunks that never move, so the index grows while searches run.  Levels >= 1
 * keep per-node link arrays.  Levels are drawn from a seeded generator, so a single-threaded
 * build of the same vectors in the same order gives the same graph.
 *
 * Distances are "smaller is better" internally: 1 - dot for Cosine (vectors must already be
 * unit length), -dot for Dot, squared L2 for Euclid, L1 for Manhattan.  The caller converts
 * to Qdrant scores.
 *
 * Concurrency: fanns_hnsw_search may run on any number of threads at once, and concurrently
 * with fanns_hnsw_insert / fanns_hnsw_delete on other threads; a reader never sees a torn
 * link list (per-node locks as in hnswlib; link lists are copied under the node's lock).
 * Inserts on distinct offsets may run concurrently (that is how the parallel build works).
 * fanns_hnsw_save must not run concurrently with inserts or deletes.
 */
#ifndef FANNS_HNSW_H
#define FANNS_HNSW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "distance.h"
#include "err.h"

typedef struct fanns_hnsw fanns_hnsw_t;

typedef struct fanns_hnsw_params {
    uint32_t dim;
    fanns_metric_t metric;
    uint32_t m;             /* links per node on levels >= 1; level 0 keeps up to 2*m (Qdrant default 16) */
    uint32_t ef_construct;  /* beam width while inserting (Qdrant default 100) */
    uint64_t seed;          /* level generator seed */
    /* Optional (NULL: float32 vectors in the nodes).  A trained codec (index/codec.h,
     * borrowed: it must outlive the index and not be retrained) whose codes the nodes hold
     * instead of the vectors: searches compute distances on the codes with the query
     * prepared at query_bits precision (0: the codec's default), and construction uses the
     * float vector being inserted against decoded codes.  Results then carry estimated
     * distances, to be rescored by the caller with the original vectors. */
    const struct fanns_codec *codec;
    unsigned query_bits;
} fanns_hnsw_params_t;

typedef struct fanns_hnsw_result {
    uint32_t off;
    float dist;             /* internal distance, smaller is better */
} fanns_hnsw_result_t;

typedef struct fanns_hnsw_stats {
    uint64_t dist_comps;    /* distance computations */
    uint64_t visited;       /* nodes visited on level 0 */
    uint64_t filter_tests;  /* filtered searches: live nodes tested against the filter */
    uint64_t filter_passes; /* ... and accepted by it */
    bool entry_isolated;    /* TWO_HOP: no accepted node within two hops of the level-0 entry
                               point (the walk searched breadth first for one): the query's
                               neighbourhood holds no match */
    float entry_dist;       /* distance from the query to the level-0 entry point (the end of
                               the greedy descent through the upper levels) */
    int stopped;            /* TRAVERSE with a stop rule (fanns_hnsw_search_opts_t): 0 the search
                               ran to its end; FANNS_HNSW_STOP_PASS_RATE or _BUDGET: it gave up,
                               and its results are partial */
} fanns_hnsw_stats_t;

/* Why a filtered TRAVERSE search gave up early (fanns_hnsw_stats_t.stopped). */
enum { FANNS_HNSW_STOP_PASS_RATE = 1, FANNS_HNSW_STOP_BUDGET = 2 };

/* Keeps a candidate when it returns true; called with offsets of live (not deleted) nodes. */
typedef bool (*fanns_hnsw_filter_fn)(void *ctx, uint32_t off);

/* Creates an empty index.  Returns 0, FANNS_EINVAL (bad params) or FANNS_ENOMEM. */
int fanns_hnsw_new(const fanns_hnsw_params_t *p, fanns_hnsw_t **out, fanns_err_t *err);
void fanns_hnsw_free(fanns_hnsw_t *h);

/* Inserts vec (dim floats, copied) at offset off.  If off already holds a node (live or
 * deleted), the node is replaced: it gets the new vector, is re-linked, and the links of its
 * former neighbours are repaired.  Thread-safe (see above).  Returns 0 or FANNS_ENOMEM. */
int fanns_hnsw_insert(fanns_hnsw_t *h, uint32_t off, const float *vec, fanns_err_t *err);

/* Inserts many offsets using nthreads threads (the calling thread included); vec_of returns
 * the vector of an offset (borrowed for the call).  Returns 0 or the first error. */
int fanns_hnsw_insert_many(fanns_hnsw_t *h, const uint32_t *offs, size_t n,
                           const float *(*vec_of)(void *ctx, uint32_t off), void *ctx, int nthreads,
                           fanns_err_t *err);

/* Makes every live node reachable on level 0 from the entry point again.  fanns_hnsw_insert
 * keeps small groups reachable as it prunes links, but concurrent inserts on clustered data
 * can, rarely, cut off a whole region; this walks level 0 (O(nodes * links)) and links each
 * node the walk misses from a nearby reachable node.  fanns_hnsw_insert_many calls it after
 * a large parallel batch.  May run concurrently with searches and inserts (a cut made by an
 * insert that overlaps the walk is left for the next call).  *relinked (may be NULL)
 * receives the number of nodes linked again.  Returns 0 or FANNS_ENOMEM. */
int fanns_hnsw_repair(fanns_hnsw_t *h, size_t *relinked, fanns_err_t *err);

/* Marks off deleted: never returned again, still traversed until it is replaced by a later
 * insert at the same offset.  No-op if off holds no node. */
void fanns_hnsw_delete(fanns_hnsw_t *h, uint32_t off);

/* True if off holds a live (inserted, not deleted) node. */
bool fanns_hnsw_contains(const fanns_hnsw_t *h, uint32_t off);
/* True if off holds a node, live or deleted (a valid link target). */
bool fanns_hnsw_has_node(const fanns_hnsw_t *h, uint32_t off);

/* The k nearest live nodes to q (dim floats; unit length for Cosine) with beam width
 * max(ef, k), best first, into out[0..*n).  filter may be NULL (the fast path); with a
 * filter, rejected nodes are traversed but never returned (see fanns_hnsw_search_ex for the
 * two-hop mode).  stats may be NULL.  Thread-safe.  Returns 0 or FANNS_ENOMEM. */
int fanns_hnsw_search(fanns_hnsw_t *h, const float *q, size_t k, size_t ef, fanns_hnsw_filter_fn filter,
                      void *fctx, fanns_hnsw_result_t *out, size_t *n, fanns_hnsw_stats_t *stats);

/* How a filtered search walks level 0 (fanns_hnsw_search_ex). */
typedef enum fanns_hnsw_filter_mode {
    /* Every neighbour is scored and expanded; rejected nodes are traversed but never
     * returned (fanns_hnsw_search's behaviour). */
    FANNS_HNSW_FILTER_TRAVERSE = 0,
    /* Two-hop predicate-subgraph traversal (ACORN-1, Patel et al., SIGMOD 2024): only
     * accepted nodes are scored and expanded.  A rejected neighbour is not scored; instead
     * its own neighbours are looked at and the accepted ones among them are scored, until
     * an expansion has gathered hop_cap accepted candidates.  Calls the filter once per node
     * looked at (not once per node scored), and never widens the beam over rejected nodes.
     * If the accepted candidates run out before ef results are found, rejected nodes are
     * walked breadth first (not scored) until an accepted one turns up, so a search that
     * starts among rejected nodes still finds the accepted ones it can reach. */
    FANNS_HNSW_FILTER_TWO_HOP = 1,
} fanns_hnsw_filter_mode_t;

/* Extra level-0 links over offsets in compressed sparse row form, in groups: the extra links
 * of off (off < n) are links[start[off] .. start[off + 1]), a sequence of groups, each a
 * header (group number << 16 | count, count < 65536) followed by count offsets.  Block links
 * (storage/blocks.c) are kept this way, one group per frequent payload value: links among
 * the points that carry it (fanns_hnsw_link_block), so that a filtered walk stays inside the
 * matching points instead of bridging through rejected ones.  Immutable while a search
 * borrows it. */
typedef struct fanns_hnsw_xlinks {
    const uint32_t *start; /* n + 1 entries */
    const uint32_t *links;
    uint32_t n;
} fanns_hnsw_xlinks_t;

typedef struct fanns_hnsw_search_opts {
    fanns_hnsw_filter_mode_t mode; /* ignored without a filter and with no deleted node */
    uint32_t hop_cap;              /* TWO_HOP: accepted candidates gathered per expansion; 0: 2m */
    /* The filter as a bitset over offsets, tested inline instead of calling a filter
     * function (which is then ignored): off is accepted when bit off % 64 of
     * bits[off / 64] is set and off < nbits.  Borrowed for the call.  A search tests tens
     * of thousands of nodes at middle selectivities; a bit test costs about a nanosecond,
     * a call into a compressed bitmap tens. */
    const uint64_t *bits;
    uint32_t nbits;
    /* TWO_HOP with bits only (ignored otherwise): extra links an expansion also gathers
     * from, after the node's own level-0 list and before bridging over rejected neighbours.
     * Every target must be a node of this index (a freed offset may not be linked), which
     * holds for links made by fanns_hnsw_link_block on this index.  Borrowed for the call. */
    const fanns_hnsw_xlinks_t *xlinks;
    /* TRAVERSE with a filter (ignored otherwise): stop rules, 0 for none.  The search gives
     * up (stats->stopped) once it has tested at least min_tests nodes against the filter
     * and fewer than min_pass of them were accepted (the filter excludes the query's
     * neighbourhood, and a traversal would wander until it finds ef matches elsewhere), or
     * once it has computed more than max_dc distances. */
    uint32_t min_tests;
    float min_pass;
    uint64_t max_dc;
    /* TWO_HOP (ignored otherwise): level-0 entry points chosen by the caller, instead of the
     * greedy descent from the top level: the walk starts from all of them at once.  For a
     * filter whose matches lie far from the query, seeds drawn from the matches put the walk
     * among them at once.  Offsets that are not nodes of the index are skipped (no seed
     * left: the usual descent).  Borrowed for the call. */
    const uint32_t *seeds;
    uint32_t nseeds;
} fanns_hnsw_search_opts_t;

/* fanns_hnsw_search with options (opts NULL: the defaults, i.e. fanns_hnsw_search).  In
 * every mode a rejected or deleted node is never returned.  In TWO_HOP mode deleted nodes are
 * handled like rejected ones (bridges, not scored), and stats->visited counts the nodes
 * scored plus the rejected ones expanded as bridges.  Thread-safe.  Returns 0 or
 * FANNS_ENOMEM. */
int fanns_hnsw_search_ex(fanns_hnsw_t *h, const float *q, size_t k, size_t ef, fanns_hnsw_filter_fn filter,
                         void *fctx, const fanns_hnsw_search_opts_t *opts, fanns_hnsw_result_t *out, size_t *n,
                         fanns_hnsw_stats_t *stats);

/* Links a block: a set of nodes (members, n sorted distinct offsets of live nodes; bits,
 * nbits: the same set as a bitset, see fanns_hnsw_search_opts_t) among which filtered walks
 * should find each other.  Each member is searched for among the others (a two-hop walk at
 * beam width ef over the graph plus xl, which may be NULL), keeps up to pm of them by the
 * HNSW heuristic, is linked back from those it keeps, and each member's forward and back
 * links are cut back to 2 * pm by the same heuristic.  Writes the links of members[i] to
 * out[i * 2 * pm ..] (caller-owned, n * 2 * pm entries) and their count to cnt[i].  Runs on
 * nthreads threads (the calling one included) concurrently with searches; the graph must not
 * change meanwhile (the indexer calls it between batches).  pm is at least 1 and at most
 * m.  stop (may be NULL) is asked every 256 members searched, on any of the threads; when
 * it answers true the work is abandoned.  Returns 0, FANNS_EINVAL, FANNS_EBUSY (stopped)
 * or FANNS_ENOMEM. */
int fanns_hnsw_link_block(fanns_hnsw_t *h, const uint32_t *members, size_t n, const uint64_t *bits, uint32_t nbits,
                          uint32_t pm, size_t ef, const fanns_hnsw_xlinks_t *xl, int nthreads,
                          bool (*stop)(void *ctx), void *sctx, uint32_t *out, uint32_t *cnt, fanns_err_t *err);

/* Internal distance between q and the stored vector of off (for rescoring and tests). */
float fanns_hnsw_distance(const fanns_hnsw_t *h, const float *q, uint32_t off);
/* The stored vector of off (borrowed; valid while off is not replaced), or NULL (also with a
 * codec: nodes then hold codes). */
const float *fanns_hnsw_vector(const fanns_hnsw_t *h, uint32_t off);

/* The code a graph over codes holds for off (fanns_codec_code_size(p.codec) bytes), or NULL
 * if off is not a live node or the nodes hold float32 vectors.  Borrowed: valid until off is
 * re-inserted or the index is freed (an insert at off rewrites it in place). */
const uint8_t *fanns_hnsw_code(const fanns_hnsw_t *h, uint32_t off);

/* Gives the code of node off under the new codec into out, from its code under the old one
 * (old_code); returns false to let fanns_hnsw_recode transcode it (decode, encode). */
typedef bool (*fanns_hnsw_recode_fn)(void *ctx, uint32_t off, const uint8_t *old_code, uint8_t *out);

/* Switches a graph over codes to another trained codec of the same kind and code size (a
 * retraining): every node's code, deleted ones included, is replaced by fn's answer or, where
 * fn declines (or is NULL), by the old code decoded and encoded again, and the graph then
 * borrows codec instead of its old codec.  The links stay: they were chosen by the same
 * vectors.  Needs exclusive use of the index (no search or insert meanwhile).
 * @return 0; FANNS_EINVAL (a float32 graph, or codec of another kind or size); FANNS_ENOMEM. */
int fanns_hnsw_recode(fanns_hnsw_t *h, const struct fanns_codec *codec, fanns_hnsw_recode_fn fn, void *ctx,
                      fanns_err_t *err);

/* Live node count, and bytes of memory held by the index (graph + vectors). */
size_t fanns_hnsw_count(const fanns_hnsw_t *h);
size_t fanns_hnsw_memory(const fanns_hnsw_t *h);

/* Writes the index to path (a temporary file, fsync, rename), with a header holding the
 * params, stamp (an opaque number the caller uses to tell whether the file is current) and a
 * checksum over everything.  Returns 0 or FANNS_EIO. */
int fanns_hnsw_save(const fanns_hnsw_t *h, const char *path, uint64_t stamp, fanns_err_t *err);
/* Reads an index saved by fanns_hnsw_save.  Fails with FANNS_ECORRUPT if the file is
 * truncated, its checksum is wrong or its params differ from p; *stamp receives the stamp.
 * Returns 0, FANNS_ENOTFOUND (no file), FANNS_ECORRUPT, FANNS_EIO or FANNS_ENOMEM. */
int fanns_hnsw_load(const char *path, const fanns_hnsw_params_t *p, fanns_hnsw_t **out, uint64_t *stamp,
                    fanns_err_t *err);

/* Checks the graph invariants (for tests): link counts within bounds, links point at
 * existing nodes, no self links, and every live node reachable from the entry point on level
 * 0.  Returns 0 or FANNS_ECORRUPT with a message. */
int fanns_hnsw_check(const fanns_hnsw_t *h, fanns_err_t *err);

#endif
