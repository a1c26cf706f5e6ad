/*
 * hnsw.c: Hierarchical Navigable Small World graph (Malkov & Yashunin, "Efficient and robust
 * approximate nearest neighbor search using Hierarchical Navigable Small World graphs", TPAMI
 * 2018), see hnsw.h.  The layout and the concurrency scheme follow the ideas of hnswlib
 * (flat level 0, epoch-tagged visited lists, per-node locks, prefetching the next neighbour);
 * the code is our own.
 *
 * Memory layout.  Offsets are split into a chunk number (high bits) and a slot (low
 * CHUNK_BITS bits).  A preallocated table holds one pointer per possible chunk (enough for all
 * 2^32 offsets); a chunk is allocated on first use and never moves or shrinks, so readers
 * never see nodes move.  A chunk starts with one flag byte per slot (PRESENT, DELETED), padded
 * to 64 bytes, followed by CHUNK_N fixed-stride nodes.  A node is
 *
 *   u32 seq | u32 indeg | u32 *upper | u8 level | 3 pad | u32 count0 | u32 links0[2m] | pad to 64 | vec[dim] | pad
 *
 * so the level-0 list starts in the node's first cache line and the vector starts on a cache
 * line boundary.  Levels 1..level live in `upper`, one [count | links[m]] record per level,
 * allocated when the node is created and kept (with the node's level) when it is replaced.
 *
 * Concurrency.  `seq` is a per-node sequence lock that also serves as the writers' spin lock:
 * a writer moves it from even to odd with a CAS, rewrites any of the node's link lists, and
 * stores the next even value with release order.  Readers copy a list with acquire loads
 * between two reads of `seq` and retry if it changed or was odd, so they never block and
 * never see a torn list (list words are stored with release order, so a reader that sees a
 * new word also sees the odd sequence number before it; on x86 all of these are plain moves,
 * and no fences are needed, which also keeps ThreadSanitizer exact).  A writer holds at
 * most one node lock at a time (plus, for a node that raises the top level, the global
 * entry-point mutex, always taken first), so there is no lock-order cycle, and never copies
 * another node's list while it holds one (a reader spins while a list's lock is held).  The
 * entry point and top level are packed in one 64-bit atomic.  Vectors are written before a
 * node becomes reachable (published by the release store that links it); replacing a node
 * rewrites its vector in place while searches may read it, which can only perturb the
 * distances those searches compute for that one node.  Inserts at the same offset are
 * serialised by striped mutexes.
 *
 * Invariants (checked by fanns_hnsw_check): link counts <= 2m on level 0 and <= m above;
 * links point at present nodes whose level is at least the list's level; no self links or
 * duplicates; every live node is reachable from the entry point on level 0.
 *
 * Neighbour selection is hnswlib's: a new node keeps the heuristic's pick of m among the
 * ef_construct candidates; a full list that gains a link is re-selected with the heuristic
 * over its links and the new one.  Reachability is kept without changing those choices: a
 * node whose in-degree a removal brings low is checked for a small group around it that lost
 * every in-link from the rest of the graph, and only then linked again, from a node with a
 * free slot (see keep_reachable).  An earlier version kept at-risk links in the pruned list in
 * place of links the heuristic chose, which cost 2-4 points of recall@10 at equal ef on
 * 100k x 768 (0.896 against hnswlib's 0.929 at ef 64) and serialised pruning on one mutex.
 *
 * Search.  Per-thread scratch (visited tags with a 16-bit epoch, heaps, buffers) lives in
 * thread-local storage and grows as needed, so a query allocates nothing in steady state.
 * Without a filter and with no deleted node, level 0 uses one sorted candidate pool of
 * size ef (a node is expanded when it is the best unexpanded node of the pool; this is
 * the same search as the two-heap formulation).  Otherwise a candidate min-heap and a result
 * max-heap are used; deleted and filtered-out nodes are expanded but never returned.  On
 * request (fanns_hnsw_search_ex, FANNS_HNSW_FILTER_TWO_HOP) a filtered level-0 search walks
 * only the subgraph of accepted nodes instead, reaching across rejected ones by two hops
 * without scoring them (ACORN-1, see search_twohop).
 *
 * File format (fanns_hnsw_save): a fixed little-endian header (magic, version, params,
 * stamp, counts, entry point), then per present node in offset order: offset, flags, level,
 * the level-0 list, the upper lists and the vector; then a 64-bit checksum of everything
 * before it (4-lane word-wise FNV-1a style hash, see hash_*).
 */
#include "hnsw.h"

#include "codec.h"
#include "mem.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

#define CHUNK_BITS 12u
#define CHUNK_N (1u << CHUNK_BITS)
#define CHUNK_MASK (CHUNK_N - 1u)
#define NCHUNKS_MAX (1u << (32u - CHUNK_BITS))
#define FLAGS_BYTES ((size_t)CHUNK_N) /* a multiple of 64 */

#define F_PRESENT 1u
#define F_DELETED 2u

#define MAX_LEVEL 31
#define NO_NODE UINT32_MAX
#define N_STRIPES 1024u

/* Node header field offsets. */
#define OFF_SEQ 0
#define OFF_INDEG 4
#define OFF_UPPER 8
#define OFF_LEVEL 16
#define OFF_LIST0 20

typedef struct hent {
    float d;
    uint32_t id;
} hent_t;

typedef struct pent {
    float d;
    uint32_t id;
    uint32_t done; /* expanded */
} pent_t;

struct fanns_hnsw {
    fanns_hnsw_params_t p;
    uint32_t m0;            /* level-0 capacity, 2m */
    size_t hdr;             /* bytes before the vector */
    size_t vbytes;          /* bytes of the vector: dim floats, or one code of p.codec */
    const fanns_codec_t *codec; /* p.codec: nodes hold codes, see node_vec and cdist */
    unsigned codec_build_bits;  /* query precision of construction searches */
    size_t stride;          /* bytes per node */
    size_t chunk_bytes;
    double mult;            /* 1 / ln(m) */
    fanns_dist_fn kern;     /* the selected dot, l2sq or l1 kernel, called directly */
    uint8_t **chunks;       /* NCHUNKS_MAX pointers */
    uint32_t nchunks_hi;    /* 1 + highest allocated chunk number (atomic) */
    uint64_t ep;            /* entry (low 32) | (top level + 1) << 32; 0 top level: empty (atomic) */
    uint64_t rng;           /* splitmix64 counter (atomic) */
    size_t npresent;        /* atomic */
    size_t ndeleted;        /* atomic */
    size_t upper_bytes;     /* atomic */
    pthread_mutex_t glob;   /* entry point and top level updates */
    pthread_mutex_t grow;   /* chunk allocation */
    pthread_mutex_t stripes[N_STRIPES];
};

/* ---- small helpers ---- */

static inline size_t round64(size_t x) { return (x + 63u) & ~(size_t)63u; }

static inline uint8_t *chunk_of(const fanns_hnsw_t *h, uint32_t off) {
    return __atomic_load_n(&h->chunks[off >> CHUNK_BITS], __ATOMIC_ACQUIRE);
}

/* Node of an offset whose chunk exists. */
static inline uint8_t *node_at(const fanns_hnsw_t *h, uint32_t off) {
    return chunk_of(h, off) + FLAGS_BYTES + (size_t)(off & CHUNK_MASK) * h->stride;
}

static inline uint8_t *flags_at(const fanns_hnsw_t *h, uint32_t off) {
    return chunk_of(h, off) + (off & CHUNK_MASK);
}

static inline uint8_t get_flags(const fanns_hnsw_t *h, uint32_t off) {
    uint8_t *c = chunk_of(h, off);
    if (!c) return 0;
    return __atomic_load_n(c + (off & CHUNK_MASK), __ATOMIC_ACQUIRE);
}

static inline bool is_deleted(const fanns_hnsw_t *h, uint32_t off) {
    return (__atomic_load_n(flags_at(h, off), __ATOMIC_RELAXED) & F_DELETED) != 0;
}

static inline float *vec_of(const fanns_hnsw_t *h, const uint8_t *node) { return (float *)(node + h->hdr); }

static inline uint32_t *seq_of(uint8_t *node) { return (uint32_t *)(node + OFF_SEQ); }

static inline int level_of(const uint8_t *node) { return node[OFF_LEVEL]; }

/* Level-0 in-degree (how many level-0 lists hold the node), kept so that pruning never
 * leaves a node unreachable without notice (hnswlib's graphs lose about 1% of nodes that way
 * on clustered 384-d data); see keep_reachable. */
static inline uint32_t *indeg_of(const fanns_hnsw_t *h, uint32_t off) {
    return (uint32_t *)(node_at(h, off) + OFF_INDEG);
}

/* The [count | links] record of a node on level l (which must be <= its level). */
static inline uint32_t *list_of(const fanns_hnsw_t *h, uint8_t *node, int l) {
    if (l == 0) return (uint32_t *)(node + OFF_LIST0);
    uint32_t *up;
    memcpy(&up, node + OFF_UPPER, sizeof up);
    return up + (size_t)(l - 1) * (1u + h->p.m);
}

static inline uint32_t cap_of(const fanns_hnsw_t *h, int l) { return l == 0 ? h->m0 : h->p.m; }

static inline void prefetch_lines(const void *p, int lines) {
    const char *c = p;
    for (int i = 0; i < lines; i++) __builtin_prefetch(c + 64 * i, 0, 3);
}

typedef struct scratch scratch_t;
static __thread scratch_t *tls_scratch;

/* Internal distance: smaller is better. */
static inline float dist_raw(const fanns_hnsw_t *h, const float *a, const float *b) {
    float r = h->kern(a, b, h->p.dim);
    switch (h->p.metric) {
    case FANNS_METRIC_COSINE: return 1.0f - r;
    case FANNS_METRIC_DOT: return -r;
    default: return r;
    }
}

/* The kernel fanns_dist_* would dispatch to, resolved once so a distance is one call. */
static fanns_dist_fn pick_kernel(fanns_metric_t m) {
    const char *isa = fanns_dist_isa();
    bool a512 = strcmp(isa, "avx512") == 0, a2 = strcmp(isa, "avx2") == 0;
    switch (m) {
    case FANNS_METRIC_EUCLID:
        return a512 ? fanns_dist_l2sq_avx512 : a2 ? fanns_dist_l2sq_avx2 : fanns_dist_l2sq_ref;
    case FANNS_METRIC_MANHATTAN:
        return a512 ? fanns_dist_l1_avx512 : a2 ? fanns_dist_l1_avx2 : fanns_dist_l1_ref;
    default:
        return a512 ? fanns_dist_dot_avx512 : a2 ? fanns_dist_dot_avx2 : fanns_dist_dot_ref;
    }
}

static inline const uint8_t *code_of(const fanns_hnsw_t *h, const uint8_t *node) { return node + h->hdr; }

static inline const float *node_vec(const fanns_hnsw_t *h, uint32_t off, int slot);
static inline float dist_off(const fanns_hnsw_t *h, const float *q, uint32_t off);

/* ---- per-node sequence lock ---- */

static void node_lock(uint8_t *node) {
    uint32_t *s = seq_of(node);
    for (;;) {
        uint32_t v = __atomic_load_n(s, __ATOMIC_RELAXED);
        if (!(v & 1u) && __atomic_compare_exchange_n(s, &v, v + 1u, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) break;
        cpu_relax();
    }
}

static void node_unlock(uint8_t *node) {
    uint32_t *s = seq_of(node);
    __atomic_store_n(s, __atomic_load_n(s, __ATOMIC_RELAXED) + 1u, __ATOMIC_RELEASE);
}

/* Copies the level-l list of node into buf (capacity cap_of(l)); returns the count, and the
 * sequence number the copy was taken at in *seqp if not NULL. */
static inline uint32_t read_list_seq(const fanns_hnsw_t *h, uint8_t *node, int l, uint32_t *buf, uint32_t *seqp) {
    uint32_t *s = seq_of(node);
    uint32_t *lst = list_of(h, node, l);
    uint32_t cap = cap_of(h, l);
    for (;;) {
        uint32_t s1 = __atomic_load_n(s, __ATOMIC_ACQUIRE);
        if (s1 & 1u) {
            cpu_relax();
            continue;
        }
        uint32_t c = __atomic_load_n(&lst[0], __ATOMIC_ACQUIRE);
        if (c > cap) c = cap; /* torn; the sequence check below retries */
        for (uint32_t i = 0; i < c; i++) buf[i] = __atomic_load_n(&lst[1 + i], __ATOMIC_ACQUIRE);
        if (__atomic_load_n(s, __ATOMIC_RELAXED) == s1) {
            if (seqp) *seqp = s1;
            return c;
        }
    }
}

static inline uint32_t read_list(const fanns_hnsw_t *h, uint8_t *node, int l, uint32_t *buf) {
    return read_list_seq(h, node, l, buf, NULL);
}

/* The largest group of nodes that stranded() looks for; a level-0 link removed from a list
 * whose target is left with fewer in-links than this is reported to keep_reachable, which
 * checks that the target is still reachable (a member of a stranded group of g nodes has at
 * most g - 1 in-links). */
#define STRANDED_MAX 12
#define LOW_INDEG (STRANDED_MAX - 1u)

/* Writes a list; the caller holds the node lock.  On level 0 the in-degrees of links that
 * come and go are updated, and removed links whose target is left with few in-links are
 * appended to drop[] (capacity 2m) if drop is not NULL.  The in-degree updates are
 * sequentially consistent, so of two writers removing the last two links into a group of
 * nodes, at least one sees both removals in stranded(). */
static inline void write_list(const fanns_hnsw_t *h, uint8_t *node, int l, const uint32_t *ids, uint32_t n,
                              uint32_t *drop, size_t *ndrop) {
    uint32_t *lst = list_of(h, node, l);
    if (l == 0) {
        uint32_t old = lst[0];
        for (uint32_t i = 0; i < old; i++) {
            bool kept = false;
            for (uint32_t j = 0; j < n && !kept; j++) kept = ids[j] == lst[1 + i];
            if (kept) continue;
            uint32_t left = __atomic_sub_fetch(indeg_of(h, lst[1 + i]), 1, __ATOMIC_SEQ_CST);
            if (drop && left <= LOW_INDEG) drop[(*ndrop)++] = lst[1 + i];
        }
        for (uint32_t j = 0; j < n; j++) {
            bool had = false;
            for (uint32_t i = 0; i < old && !had; i++) had = ids[j] == lst[1 + i];
            if (!had) __atomic_add_fetch(indeg_of(h, ids[j]), 1, __ATOMIC_SEQ_CST);
        }
    }
    for (uint32_t i = 0; i < n; i++) __atomic_store_n(&lst[1 + i], ids[i], __ATOMIC_RELEASE);
    __atomic_store_n(&lst[0], n, __ATOMIC_RELEASE);
}

/* ---- entry point ---- */

static inline void ep_get(const fanns_hnsw_t *h, uint32_t *ep, int *top) {
    uint64_t v = __atomic_load_n(&h->ep, __ATOMIC_ACQUIRE);
    *ep = (uint32_t)v;
    *top = (int)(v >> 32) - 1;
}

static inline void ep_set(fanns_hnsw_t *h, uint32_t ep, int top) {
    __atomic_store_n(&h->ep, (uint64_t)ep | ((uint64_t)(top + 1) << 32), __ATOMIC_RELEASE);
}

/* ---- per-thread scratch ---- */

struct scratch {
    uint16_t *tags;
    size_t tcap;
    uint16_t epoch;
    uint16_t *ftags;      /* two-hop search: nodes known rejected in this epoch (tcap of them
                           * when allocated, see fail_tags) */
    uint32_t *walked;     /* two-hop search: nodes whose lists it read */
    size_t wcap;
    uint32_t *seeds;      /* seeded two-hop search: the seeds that are nodes */
    size_t scap;
    pent_t *pool;
    size_t pcap;
    hent_t *cand, *res;
    size_t ccap, rcap;
    hent_t *tmp;          /* heuristic input/outputs */
    size_t tmpcap;
    uint32_t *ids;        /* link copies, unvisited lists, selections */
    size_t idcap;
    float *dec;           /* with a codec: three decoded vectors (see node_vec), then the
                           * decoded vectors of the heuristic's kept links (2m) */
    size_t deccap;
};

/* The vector of off as floats: stored ones, or with a codec its code decoded into decode
 * buffer `slot` (0..2) of the calling thread's scratch, which an entry point has prepared
 * (scratch_prepare).  Slots 0 and 1 belong to whoever holds a base vector (the heuristic, a
 * node being relinked); slot 2 to dist_off. */
static inline const float *node_vec(const fanns_hnsw_t *h, uint32_t off, int slot) {
    const uint8_t *node = node_at(h, off);
    if (!h->codec) return vec_of(h, node);
    float *out = tls_scratch->dec + (size_t)slot * h->p.dim;
    (void)fanns_codec_decode(h->codec, 1, code_of(h, node), out, NULL);
    return out;
}

/* Distance between a float vector and the (decoded) vector of off. */
static inline float dist_off(const fanns_hnsw_t *h, const float *q, uint32_t off) {
    return dist_raw(h, q, node_vec(h, off, 2));
}

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static void scratch_free(void *p) {
    scratch_t *s = p;
    if (!s) return;
    free(s->tags);
    free(s->ftags);
    free(s->walked);
    free(s->seeds);
    free(s->pool);
    free(s->cand);
    free(s->res);
    free(s->tmp);
    free(s->ids);
    free(s->dec);
    free(s);
}

static void scratch_key_init(void) { (void)pthread_key_create(&scratch_key, scratch_free); }

static scratch_t *scratch_get(void) {
    scratch_t *s = tls_scratch;
    if (s) return s;
    pthread_once(&scratch_once, scratch_key_init);
    s = calloc(1, sizeof *s);
    if (!s) return NULL;
    if (pthread_setspecific(scratch_key, s) != 0) {
        free(s);
        return NULL;
    }
    tls_scratch = s;
    return s;
}

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (*cap >= need) return 0;
    size_t n = *cap ? *cap : 64;
    while (n < need) n *= 2;
    void *q = realloc(*p, n * elem);
    if (!q) return FANNS_ENOMEM;
    *p = q;
    *cap = n;
    return 0;
}

/* Starts a new visited epoch covering offsets below ncap; returns the tags or NULL. */
static uint16_t *visited_begin(scratch_t *s, size_t ncap) {
    if (s->tcap < ncap) {
        size_t n = s->tcap ? s->tcap : CHUNK_N;
        while (n < ncap) n *= 2;
        uint16_t *t = calloc(n, sizeof *t);
        if (!t) return NULL;
        free(s->tags);
        s->tags = t;
        s->tcap = n;
        s->epoch = 0;
        free(s->ftags); /* its tags belong to the old epochs */
        s->ftags = NULL;
    }
    if (++s->epoch == 0) {
        memset(s->tags, 0, s->tcap * sizeof *s->tags);
        if (s->ftags) memset(s->ftags, 0, s->tcap * sizeof *s->ftags);
        s->epoch = 1;
    }
    return s->tags;
}

/* The rejected-node tags of the current epoch (after visited_begin), or NULL. */
static uint16_t *fail_tags(scratch_t *s) {
    if (!s->ftags) s->ftags = calloc(s->tcap, sizeof *s->ftags);
    return s->ftags;
}

static int scratch_prepare(const fanns_hnsw_t *h, scratch_t *s, size_t ef) {
    if (grow((void **)&s->pool, &s->pcap, ef + 2, sizeof(pent_t)) ||
        grow((void **)&s->res, &s->rcap, ef + 2, sizeof(hent_t)) ||
        grow((void **)&s->cand, &s->ccap, ef + 2, sizeof(hent_t)) ||
        grow((void **)&s->ids, &s->idcap, 4u * h->m0 + 8u, sizeof(uint32_t)) ||
        grow((void **)&s->tmp, &s->tmpcap, 2 * (ef + h->p.ef_construct) + 6u * h->m0 + 8u, sizeof(hent_t)) ||
        (h->codec && grow((void **)&s->dec, &s->deccap, (3u + h->m0) * (size_t)h->p.dim, sizeof(float))))
        return FANNS_ENOMEM;
    return 0;
}

/* ---- heaps of hent_t ---- */

/* Min-heap on d (candidates). */
static inline void minheap_push(hent_t *a, size_t *n, hent_t e) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (a[p].d <= e.d) break;
        a[i] = a[p];
        i = p;
    }
    a[i] = e;
}

static inline hent_t minheap_pop(hent_t *a, size_t *n) {
    hent_t top = a[0];
    hent_t last = a[--(*n)];
    size_t i = 0, sz = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= sz) break;
        if (c + 1 < sz && a[c + 1].d < a[c].d) c++;
        if (last.d <= a[c].d) break;
        a[i] = a[c];
        i = c;
    }
    if (sz) a[i] = last;
    return top;
}

/* Max-heap on d (results). */
static inline void maxheap_push(hent_t *a, size_t *n, hent_t e) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (a[p].d >= e.d) break;
        a[i] = a[p];
        i = p;
    }
    a[i] = e;
}

static inline void maxheap_pop(hent_t *a, size_t *n) {
    hent_t last = a[--(*n)];
    size_t i = 0, sz = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= sz) break;
        if (c + 1 < sz && a[c + 1].d > a[c].d) c++;
        if (last.d >= a[c].d) break;
        a[i] = a[c];
        i = c;
    }
    if (sz) a[i] = last;
}

static int hent_cmp(const void *x, const void *y) {
    const hent_t *a = x, *b = y;
    if (a->d < b->d) return -1;
    if (a->d > b->d) return 1;
    return (a->id > b->id) - (a->id < b->id);
}

static void hent_sort(hent_t *a, size_t n) {
    if (n <= 24) { /* insertion sort for the small lists of pruning */
        for (size_t i = 1; i < n; i++) {
            hent_t e = a[i];
            size_t j = i;
            while (j > 0 && hent_cmp(&a[j - 1], &e) > 0) {
                a[j] = a[j - 1];
                j--;
            }
            a[j] = e;
        }
        return;
    }
    qsort(a, n, sizeof *a, hent_cmp);
}

/* ---- layer search ---- */

typedef struct search_ctx {
    const fanns_hnsw_t *h;
    scratch_t *s;
    const float *q;
    const fanns_codec_query_t *cq; /* with a codec: q prepared for code distances, or NULL */
    fanns_hnsw_filter_fn filter;
    void *fctx;
    const uint64_t *bits;   /* the filter as a bitset (opts->bits), or NULL */
    uint32_t nbits;
    uint32_t exclude;       /* never a result (the node being relinked), or NO_NODE */
    bool skip_deleted;
    uint32_t hop_cap;       /* > 0: level 0 by search_twohop with this cap */
    const fanns_hnsw_xlinks_t *xl; /* search_twohop with bits: extra links, or NULL */
    const uint32_t *seeds;  /* search_twohop: level-0 entry points (nseeds > 0), else the descent's */
    uint32_t nseeds;
    uint64_t dist_comps, visited;
    uint64_t ftests, fpasses; /* filter tests and acceptances (stats) */
    bool entry_isolated;      /* stats (search_twohop) */
    float entry_dist;         /* stats (search_levels) */
    uint32_t min_tests;       /* search_heap's stop rules (opts), 0: none */
    float min_pass;
    uint64_t max_dc;
    int stopped;              /* stats: the stop rule that ended search_heap, 0 none */
} search_ctx_t;

/* Distance from the search's query to off: on the code with a prepared query, else from
 * the float query (decoding a code if there is one). */
static inline float cdist(const search_ctx_t *c, uint32_t off) {
    if (c->cq) return fanns_codec_distance(c->cq, code_of(c->h, node_at(c->h, off)));
    return dist_off(c->h, c->q, off);
}

/* Greedy walk on level l from *cur (distance *curd) to a local minimum. */
static void greedy(search_ctx_t *c, int l, uint32_t *cur, float *curd) {
    const fanns_hnsw_t *h = c->h;
    uint32_t *buf = c->s->ids;
    bool changed = true;
    while (changed) {
        changed = false;
        uint32_t n = read_list(h, node_at(h, *cur), l, buf);
        for (uint32_t i = 0; i < n; i++) {
            if (i + 1 < n) __builtin_prefetch(vec_of(h, node_at(h, buf[i + 1])), 0, 3);
            float d = cdist(c, buf[i]);
            c->dist_comps++;
            if (d < *curd) {
                *curd = d;
                *cur = buf[i];
                changed = true;
            }
        }
    }
}

/* Lines of a vector to prefetch ahead of its distance computation. */
static inline int pf_lines(const fanns_hnsw_t *h) {
    size_t l = (h->vbytes + 63) / 64;
    return l > 12 ? 12 : (int)l;
}

/* Prefetching.  Measured on 100k x 384 (single thread, memory bound: ~70% of the time was
 * spent waiting on vector loads): touching the first line of every unvisited neighbour as
 * soon as they are known, then the first 12 lines of the next vector while computing the
 * current one, gave 25-35% more queries per second than prefetching only the next vector
 * (hnswlib's pattern); 8 to 16 lines were equal within noise. */
static inline void prefetch_batch(const fanns_hnsw_t *h, const uint32_t *nbs, uint32_t nn, int lines) {
    for (uint32_t j = 1; j < nn; j++) __builtin_prefetch(vec_of(h, node_at(h, nbs[j])), 0, 3);
    if (nn) prefetch_lines(vec_of(h, node_at(h, nbs[0])), lines);
}

/* Collects the not yet visited neighbours of node on level l into out; returns the count.
 * Neighbours at offsets >= vcap (chunks allocated after the search began) are skipped. */
static inline uint32_t expand(search_ctx_t *c, uint8_t *node, int l, uint16_t *tags, uint16_t ep,
                              size_t vcap, uint32_t *buf, uint32_t *out) {
    const fanns_hnsw_t *h = c->h;
    uint32_t n = read_list(h, node, l, buf);
    for (uint32_t i = 0; i < n; i++) __builtin_prefetch(&tags[buf[i] < vcap ? buf[i] : 0], 1, 3);
    uint32_t k = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t nb = buf[i];
        if (nb >= vcap || tags[nb] == ep) continue;
        tags[nb] = ep;
        out[k++] = nb;
    }
    return k;
}

/* Beam search on level l from ep with a sorted pool (no filter, no deleted nodes, no
 * exclusion).  Leaves the pool in s->pool, best first; returns its size. */
static size_t search_pool(search_ctx_t *c, uint32_t ep, size_t ef, int l) {
    const fanns_hnsw_t *h = c->h;
    scratch_t *s = c->s;
    size_t vcap = (size_t)__atomic_load_n(&h->nchunks_hi, __ATOMIC_ACQUIRE) << CHUNK_BITS;
    uint16_t *tags = visited_begin(s, vcap);
    if (!tags) return (size_t)-1;
    uint16_t epoch = s->epoch;
    pent_t *P = s->pool;
    uint32_t *buf = s->ids, *nbs = s->ids + h->m0 + 1;
    int lines = pf_lines(h);

    P[0].d = cdist(c, ep);
    P[0].id = ep;
    P[0].done = 0;
    tags[ep] = epoch;
    c->dist_comps++;
    size_t size = 1, k = 0;
    while (k < size) {
        P[k].done = 1;
        uint32_t cur = P[k].id;
        uint32_t nn = expand(c, node_at(h, cur), l, tags, epoch, vcap, buf, nbs);
        c->visited += nn;
        c->dist_comps += nn;
        prefetch_batch(h, nbs, nn, lines);
        size_t best = size;
        for (uint32_t j = 0; j < nn; j++) {
            if (j + 1 < nn) prefetch_lines(vec_of(h, node_at(h, nbs[j + 1])), lines);
            float d = cdist(c, nbs[j]);
            if (size == ef && d >= P[size - 1].d) continue;
            /* upper bound: first position with P[pos].d > d */
            size_t lo = 0, hi = size;
            while (lo < hi) {
                size_t mid = (lo + hi) / 2;
                if (P[mid].d <= d) lo = mid + 1;
                else hi = mid;
            }
            size_t move = (size == ef ? size - 1 : size) - lo;
            memmove(&P[lo + 1], &P[lo], move * sizeof *P);
            P[lo].d = d;
            P[lo].id = nbs[j];
            P[lo].done = 0;
            if (size < ef) size++;
            if (lo < best) best = lo;
        }
        if (best <= k) k = best;
        else k++;
        while (k < size && P[k].done) k++;
    }
    return size;
}

/* Whether off may be returned. */
static inline bool admissible(search_ctx_t *c, uint32_t off) {
    if (off == c->exclude) return false;
    if (c->skip_deleted && is_deleted(c->h, off)) return false;
    if (c->bits) {
        bool ok = off < c->nbits && (c->bits[off >> 6] >> (off & 63) & 1);
        c->ftests++;
        c->fpasses += ok;
        return ok;
    }
    if (c->filter) {
        bool ok = c->filter(c->fctx, off);
        c->ftests++;
        c->fpasses += ok;
        return ok;
    }
    return true;
}

/* General beam search (filter, deleted nodes, exclusion).  Leaves the results in s->res as a
 * max-heap; returns its size, or (size_t)-1 on allocation failure. */
static size_t search_heap(search_ctx_t *c, uint32_t ep, size_t ef, int l) {
    const fanns_hnsw_t *h = c->h;
    scratch_t *s = c->s;
    size_t vcap = (size_t)__atomic_load_n(&h->nchunks_hi, __ATOMIC_ACQUIRE) << CHUNK_BITS;
    uint16_t *tags = visited_begin(s, vcap);
    if (!tags) return (size_t)-1;
    uint16_t epoch = s->epoch;
    uint32_t *buf = s->ids, *nbs = s->ids + h->m0 + 1;
    int lines = pf_lines(h);
    size_t nc = 0, nr = 0;
    float bound = INFINITY;

    float d0 = cdist(c, ep);
    c->dist_comps++;
    tags[ep] = epoch;
    minheap_push(s->cand, &nc, (hent_t){d0, ep});
    if (admissible(c, ep)) {
        maxheap_push(s->res, &nr, (hent_t){d0, ep});
        bound = d0;
    }
    while (nc > 0) {
        if (s->cand[0].d > bound && nr == ef) break;
        if (c->min_tests && c->ftests >= c->min_tests && (float)c->fpasses < c->min_pass * (float)c->ftests) {
            c->stopped = FANNS_HNSW_STOP_PASS_RATE;
            break;
        }
        if (c->max_dc && c->dist_comps > c->max_dc) {
            c->stopped = FANNS_HNSW_STOP_BUDGET;
            break;
        }
        hent_t cur = minheap_pop(s->cand, &nc);
        uint32_t nn = expand(c, node_at(h, cur.id), l, tags, epoch, vcap, buf, nbs);
        c->visited += nn;
        c->dist_comps += nn;
        prefetch_batch(h, nbs, nn, lines);
        for (uint32_t j = 0; j < nn; j++) {
            if (j + 1 < nn) prefetch_lines(vec_of(h, node_at(h, nbs[j + 1])), lines);
            float d = cdist(c, nbs[j]);
            if (nr < ef || d < bound) {
                if (nc + 1 > s->ccap && grow((void **)&s->cand, &s->ccap, nc + 1, sizeof(hent_t)))
                    return (size_t)-1;
                minheap_push(s->cand, &nc, (hent_t){d, nbs[j]});
                if (admissible(c, nbs[j])) {
                    maxheap_push(s->res, &nr, (hent_t){d, nbs[j]});
                    if (nr > ef) maxheap_pop(s->res, &nr);
                    bound = s->res[0].d;
                }
            }
        }
    }
    return nr;
}

/* Whether off may be returned, for the two-hop search: the answer of admissible(), asked
 * once per node and search (rejections are remembered in ftags). */
static inline bool passes(search_ctx_t *c, uint16_t *ftags, uint16_t epoch, uint32_t off) {
    if (ftags[off] == epoch) return false;
    if (admissible(c, off)) return true;
    ftags[off] = epoch;
    return false;
}

/* State of one two-hop search (see search_twohop). */
typedef struct twohop {
    search_ctx_t *c;
    size_t ef, nc, nr;
    float bound;
    int lines;
    uint32_t *walked;   /* nodes whose lists were read, in order (s->walked) */
    size_t nwalked, escaped;
} twohop_t;

/* Appends a walked node; returns false on allocation failure. */
static inline bool walked_add(twohop_t *t, uint32_t off) {
    scratch_t *s = t->c->s;
    if (t->nwalked == s->wcap) {
        if (grow((void **)&s->walked, &s->wcap, t->nwalked + 1, sizeof(uint32_t))) return false;
        t->walked = s->walked;
    }
    t->walked[t->nwalked++] = off;
    return true;
}

/* Scores the gathered nodes nbs[0..nn) (all admissible) into the candidate and result heaps;
 * returns false on allocation failure. */
static bool twohop_score(twohop_t *t, const uint32_t *nbs, uint32_t nn) {
    search_ctx_t *c = t->c;
    const fanns_hnsw_t *h = c->h;
    scratch_t *s = c->s;
    c->visited += nn;
    c->dist_comps += nn;
    prefetch_batch(h, nbs, nn, t->lines);
    for (uint32_t j = 0; j < nn; j++) {
        if (j + 1 < nn) prefetch_lines(vec_of(h, node_at(h, nbs[j + 1])), t->lines);
        float d = cdist(c, nbs[j]);
        if (t->nr < t->ef || d < t->bound) {
            if (t->nc + 1 > s->ccap && grow((void **)&s->cand, &s->ccap, t->nc + 1, sizeof(hent_t))) return false;
            minheap_push(s->cand, &t->nc, (hent_t){d, nbs[j]});
            maxheap_push(s->res, &t->nr, (hent_t){d, nbs[j]});
            if (t->nr > t->ef) maxheap_pop(s->res, &t->nr);
            t->bound = s->res[0].d;
        }
    }
    return true;
}

/* Two-hop filtered beam search on level 0 (ACORN-1: Patel et al., "ACORN: Performant and
 * Predicate-Agnostic Search Over Vector Embeddings and Structured Data", SIGMOD 2024).  Only
 * admissible nodes are scored, kept as candidates and expanded (the entry point excepted:
 * it is expanded whatever it is).  Expanding a node gathers its unvisited admissible
 * neighbours, then walks its rejected ones in list order and gathers their unvisited
 * admissible neighbours, until cap are gathered; a rejected neighbour is marked visited only
 * once its own list has been walked, so one the cap cut off can still bridge from a later
 * expansion.  A node is scored at most once (visited tags), and the filter is asked at most
 * once per node (rejection tags).
 *
 * Escape.  Two hops do not always reach an admissible node: from a low-degree entry point
 * with a 10% filter, 30-odd nodes within two hops can all be rejected (the unit test's
 * seeded set has such a query).  When the candidates run out with fewer than ef results, the
 * lists of the walked nodes are read again in walk order, breadth first: rejected neighbours
 * are marked visited and queued behind them, admissible ones are scored, until a candidate
 * appears (the search then goes on as before) or everything reachable is walked.
 *
 * Leaves the results in s->res as a max-heap; returns its size, or (size_t)-1 on allocation
 * failure.  Buffers: s->ids holds the list copy (m0), the gathered nodes (max(cap, m0): the
 * escape gathers up to one whole list), the rejected neighbours (m0) and a second list copy
 * (m0). */
static size_t search_twohop(search_ctx_t *c, const uint32_t *eps, size_t neps, size_t ef, uint32_t cap) {
    const fanns_hnsw_t *h = c->h;
    scratch_t *s = c->s;
    twohop_t t = {.c = c, .ef = ef, .bound = INFINITY, .lines = pf_lines(h), .walked = s->walked};
    const size_t vcap = (size_t)__atomic_load_n(&h->nchunks_hi, __ATOMIC_ACQUIRE) << CHUNK_BITS;
    uint16_t *tags = visited_begin(s, vcap);
    uint16_t *ftags = tags ? fail_tags(s) : NULL;
    if (!ftags) return (size_t)-1;
    const uint16_t epoch = s->epoch;
    uint32_t *buf = s->ids, *nbs = buf + h->m0, *rej = nbs + (cap > h->m0 ? cap : h->m0), *buf2 = rej + h->m0;

    /* The entry points (distinct nodes, see search_levels) are candidates; the admissible
     * ones results. */
    if (neps > 1 && grow((void **)&s->cand, &s->ccap, neps, sizeof(hent_t))) return (size_t)-1;
    for (size_t i = 0; i < neps; i++) {
        uint32_t ep = eps[i];
        if (tags[ep] == epoch) continue;
        if (i + 1 < neps) prefetch_lines(vec_of(h, node_at(h, eps[i + 1])), t.lines);
        float d0 = cdist(c, ep);
        c->dist_comps++;
        tags[ep] = epoch;
        minheap_push(s->cand, &t.nc, (hent_t){d0, ep});
        if (passes(c, ftags, epoch, ep)) {
            maxheap_push(s->res, &t.nr, (hent_t){d0, ep});
            if (t.nr > ef) maxheap_pop(s->res, &t.nr);
            t.bound = s->res[0].d;
        }
    }
    for (;;) {
        if (t.nc == 0 && t.nr == 0) c->entry_isolated = true;
        while (t.nc == 0 && t.nr < ef && t.escaped < t.nwalked) {
            uint32_t x = t.walked[t.escaped++];
            uint32_t n = read_list(h, node_at(h, x), 0, buf), nn = 0;
            for (uint32_t i = 0; i < n; i++) {
                uint32_t nb = buf[i];
                if (nb >= vcap || tags[nb] == epoch) continue;
                tags[nb] = epoch;
                if (passes(c, ftags, epoch, nb)) nbs[nn++] = nb;
                else if (!walked_add(&t, nb)) return (size_t)-1;
            }
            if (!twohop_score(&t, nbs, nn)) return (size_t)-1;
        }
        if (t.nc == 0) break;
        if (s->cand[0].d > t.bound && t.nr == ef) break;
        hent_t cur = minheap_pop(s->cand, &t.nc);
        if (!walked_add(&t, cur.id)) return (size_t)-1;
        uint32_t n = read_list(h, node_at(h, cur.id), 0, buf);
        for (uint32_t i = 0; i < n; i++) __builtin_prefetch(&tags[buf[i] < vcap ? buf[i] : 0], 1, 3);
        uint32_t nn = 0, nrej = 0;
        for (uint32_t i = 0; i < n && nn < cap; i++) {
            uint32_t nb = buf[i];
            if (nb >= vcap || tags[nb] == epoch) continue;
            if (passes(c, ftags, epoch, nb)) {
                tags[nb] = epoch;
                nbs[nn++] = nb;
            } else {
                rej[nrej++] = nb;
            }
        }
        /* Extra (block) links: matching points near this one that its own list may lack. */
        if (c->xl && cur.id < c->xl->n && nn < cap) {
            const fanns_hnsw_xlinks_t *xl = c->xl;
            const uint32_t *x = xl->links + xl->start[cur.id], *xe = xl->links + xl->start[cur.id + 1];
            while (x < xe && nn < cap) {
                uint32_t cnt = *x & 0xffffu; /* the group header */
                const uint32_t *ge = x + 1 + cnt <= xe ? x + 1 + cnt : xe;
                x++;
                for (const uint32_t *p = x; p < ge; p++) __builtin_prefetch(&tags[*p < vcap ? *p : 0], 1, 3);
                for (; x < ge && nn < cap; x++) {
                    uint32_t nb = *x;
                    if (nb >= vcap || tags[nb] == epoch) continue;
                    if (passes(c, ftags, epoch, nb)) {
                        tags[nb] = epoch;
                        nbs[nn++] = nb;
                    }
                }
                x = ge;
            }
        }
        /* The rejected neighbours' lists start in their nodes' first cache lines. */
        for (uint32_t i = 0; i < nrej && nn < cap; i++) prefetch_lines(node_at(h, rej[i]), 3);
        for (uint32_t i = 0; i < nrej && nn < cap; i++) {
            uint32_t b = rej[i];
            tags[b] = epoch;
            c->visited++;
            if (!walked_add(&t, b)) return (size_t)-1;
            uint32_t n2 = read_list(h, node_at(h, b), 0, buf2);
            for (uint32_t j = 0; j < n2; j++) __builtin_prefetch(&tags[buf2[j] < vcap ? buf2[j] : 0], 1, 3);
            for (uint32_t j = 0; j < n2 && nn < cap; j++) {
                uint32_t nb = buf2[j];
                if (nb >= vcap || tags[nb] == epoch) continue;
                if (passes(c, ftags, epoch, nb)) {
                    tags[nb] = epoch;
                    nbs[nn++] = nb;
                }
            }
        }
        if (!twohop_score(&t, nbs, nn)) return (size_t)-1;
    }
    return t.nr;
}

/* ---- neighbour selection ---- */

/* The HNSW heuristic (paper, algorithm 4): walks the candidates best first (a is sorted by
 * distance to the base) and keeps one only if it is closer to the base than to every kept
 * one, up to mmax.  Like hnswlib, fewer than mmax candidates are all kept.  Compacts the
 * kept ones to the front of a; returns their count. */
static size_t select_heuristic(const fanns_hnsw_t *h, hent_t *a, size_t n, size_t mmax, hent_t *rej, size_t *nrej) {
    *nrej = 0;
    if (n < mmax) return n;
    size_t k = 0, i = 0;
    /* With a codec each candidate is decoded once and the kept ones are kept decoded (after
     * the three node_vec slots), instead of decoding a kept link again for every check. */
    float *kept = h->codec ? tls_scratch->dec + 3u * (size_t)h->p.dim : NULL;
    for (; i < n && k < mmax; i++) {
        const float *vi = node_vec(h, a[i].id, 0);
        bool good = true;
        for (size_t j = 0; j < k; j++) {
            const float *vj = kept ? kept + j * (size_t)h->p.dim : vec_of(h, node_at(h, a[j].id));
            if (dist_raw(h, vi, vj) < a[i].d) {
                good = false;
                break;
            }
        }
        if (good) {
            if (kept) memcpy(kept + k * (size_t)h->p.dim, vi, h->p.dim * sizeof(float));
            a[k++] = a[i];
        } else {
            rej[(*nrej)++] = a[i];
        }
    }
    for (; i < n; i++) rej[(*nrej)++] = a[i];
    return k;
}

static inline bool in_list(const uint32_t *lst, uint32_t id) {
    for (uint32_t i = 0; i < lst[0]; i++)
        if (lst[1 + i] == id) return true;
    return false;
}

/* ---- reachability ----
 *
 * Lists are chosen by the heuristic alone, as in hnswlib; a link it drops is never kept in
 * place of a link it chose (keeping them that way cost about 2 points of recall@10 at equal
 * ef on 768-d data, where the heuristic fills whole lists and in-degrees are skewed).  When a
 * removal leaves a node with few in-links, stranded() looks for a small group of nodes around
 * it that no longer has an in-link from the rest of the graph (a node with none; the closed
 * pairs and triangles near-duplicate vectors form), and keep_reachable links it again from
 * a nearby node.  Groups of more than STRANDED_MAX nodes are not looked for. */

/* Whether x is in a group of at most STRANDED_MAX nodes, none of them the entry point, that
 * has no in-link from outside the group.  The group is grown from x by links both ways (a
 * member links to t and t to a member) through nodes with fewer than STRANDED_MAX in-links,
 * which is how the cliques of near-duplicate vectors that cut themselves off are linked,
 * reading at most STRANDED_PROBES lists; a member is reachable if it has more in-links than
 * the group gives it (one from outside), and so is everything it links to.  Reads lists
 * without locks (the caller holds none); if a member's list changed while the group was
 * examined, its lists and in-degrees may not agree, and the answer is yes (linking x once
 * more does no harm). */
#define STRANDED_PROBES 64
static bool stranded(const fanns_hnsw_t *h, uint32_t x) {
    uint32_t ep;
    int top;
    ep_get(h, &ep, &top);
    uint32_t m0 = h->m0, g[STRANDED_MAX], nout[STRANDED_MAX], cnt[STRANDED_MAX], seq[STRANDED_MAX];
    uint32_t outs[STRANDED_MAX * m0];
    bool reach[STRANDED_MAX];
    size_t ng = 1;
    int probes = STRANDED_PROBES;
    g[0] = x;
    nout[0] = read_list_seq(h, node_at(h, x), 0, outs, &seq[0]);
    for (size_t i = 0; i < ng; i++) {
        for (uint32_t e = 0; e < nout[i] && ng < STRANDED_MAX && probes > 0; e++) {
            uint32_t t = outs[i * m0 + e];
            bool in = false;
            for (size_t j = 0; j < ng && !in; j++) in = g[j] == t;
            if (in || __atomic_load_n(indeg_of(h, t), __ATOMIC_SEQ_CST) >= STRANDED_MAX) continue;
            /* read t's list into the next slot; it joins if it links back into the group */
            uint32_t *to = outs + ng * m0;
            uint32_t nt = read_list_seq(h, node_at(h, t), 0, to, &seq[ng]);
            probes--;
            bool back = false;
            for (uint32_t k = 0; k < nt && !back; k++)
                for (size_t j = 0; j < ng && !back; j++) back = to[k] == g[j];
            if (!back) continue;
            g[ng] = t;
            nout[ng++] = nt;
        }
    }
    for (size_t j = 0; j < ng; j++) cnt[j] = 0;
    for (size_t i = 0; i < ng; i++)
        for (uint32_t e = 0; e < nout[i]; e++)
            for (size_t j = 0; j < ng; j++)
                if (g[j] == outs[i * m0 + e]) cnt[j]++;
    for (size_t j = 0; j < ng; j++)
        reach[j] = g[j] == ep || __atomic_load_n(indeg_of(h, g[j]), __ATOMIC_SEQ_CST) > cnt[j];
    for (size_t j = 0; j < ng; j++)
        if (__atomic_load_n(seq_of(node_at(h, g[j])), __ATOMIC_SEQ_CST) != seq[j]) return true;
    for (bool changed = true; changed;) {
        changed = false;
        for (size_t i = 0; i < ng; i++) {
            if (!reach[i]) continue;
            for (uint32_t e = 0; e < nout[i]; e++)
                for (size_t j = 0; j < ng; j++)
                    if (!reach[j] && g[j] == outs[i * m0 + e]) reach[j] = changed = true;
        }
        if (reach[0]) return false;
    }
    return !reach[0];
}

/* Appends `to` to the level-0 list of `from` if it has room; true then, or if the link is
 * already there. */
static bool try_append(const fanns_hnsw_t *h, uint32_t from, uint32_t to) {
    uint8_t *node = node_at(h, from);
    bool ok = false;
    node_lock(node);
    uint32_t *lst = list_of(h, node, 0);
    uint32_t n = lst[0];
    if (in_list(lst, to)) {
        ok = true;
    } else if (n < h->m0) {
        __atomic_store_n(&lst[1 + n], to, __ATOMIC_RELEASE);
        __atomic_add_fetch(indeg_of(h, to), 1, __ATOMIC_SEQ_CST);
        __atomic_store_n(&lst[0], n + 1, __ATOMIC_RELEASE);
        ok = true;
    }
    node_unlock(node);
    return ok;
}

/* Puts `to` in the full level-0 list of `from` in place of its farthest link, preferring one
 * whose target has more than LOW_INDEG in-links; returns the removed link, or NO_NODE. */
static uint32_t force_link(const fanns_hnsw_t *h, uint32_t from, uint32_t to) {
    uint8_t *node = node_at(h, from);
    const float *base = node_vec(h, from, 0);
    uint32_t ids[h->m0], out = NO_NODE;
    node_lock(node);
    uint32_t *lst = list_of(h, node, 0);
    uint32_t n = lst[0];
    if (!in_list(lst, to)) {
        for (uint32_t i = 0; i < n; i++) ids[i] = lst[1 + i];
        if (n < h->m0) {
            ids[n++] = to;
            write_list(h, node, 0, ids, n, NULL, NULL);
        } else {
            uint32_t worst = 0;
            float wd = -INFINITY;
            bool wsafe = false;
            for (uint32_t i = 0; i < n; i++) {
                float d = dist_off(h, base, ids[i]);
                bool safe = __atomic_load_n(indeg_of(h, ids[i]), __ATOMIC_SEQ_CST) > LOW_INDEG + 1;
                if ((safe && !wsafe) || (safe == wsafe && d > wd)) {
                    wd = d;
                    worst = i;
                    wsafe = safe;
                }
            }
            out = ids[worst];
            ids[worst] = to;
            write_list(h, node, 0, ids, n, NULL, NULL);
        }
    }
    node_unlock(node);
    return out;
}

static size_t search_heap(search_ctx_t *c, uint32_t ep, size_t ef, int l);

/* Links x from the nearest node with room among those a search for x's vector from the
 * entry point finds (all reachable).  Returns false if none has room. */
static bool link_from_search(const fanns_hnsw_t *h, scratch_t *s, uint32_t x) {
    const float *q = node_vec(h, x, 0);
    search_ctx_t c = {.h = h, .s = s, .q = q, .exclude = x};
    uint32_t cur;
    int top;
    ep_get(h, &cur, &top);
    float curd = dist_off(h, q, cur);
    for (int l = top; l > 0; l--) greedy(&c, l, &cur, &curd);
    size_t n = search_heap(&c, cur, h->p.ef_construct, 0);
    if (n == (size_t)-1) return false;
    hent_sort(s->res, n);
    for (size_t i = 0; i < n; i++)
        if (try_append(h, s->res[i].id, x)) return true;
    return false;
}

/* Checks the nodes of drop[] (links just removed from the level-0 list of p, or nodes whose
 * in-links were pruned) and links each stranded one again: from p if p has room, else from
 * the nearest node of via[] (p's links, or other nodes known to be reachable) with room,
 * else from the nearest node with room that a search finds, else in place of p's farthest
 * link, whose target is then checked in turn.  Called with no lock held; uses the search
 * scratch of s. */
static void keep_reachable(const fanns_hnsw_t *h, scratch_t *s, uint32_t p, const uint32_t *via, size_t nvia,
                           const uint32_t *drop, size_t ndrop) {
    size_t cap = ndrop + 16;
    uint32_t work[cap];
    size_t nw = 0;
    for (size_t i = 0; i < ndrop; i++) work[nw++] = drop[i];
    for (int budget = 64; nw > 0 && budget > 0; budget--) {
        uint32_t x = work[--nw];
        if (x == p || !stranded(h, x)) continue;
        if (try_append(h, p, x)) continue;
        hent_t order[nvia ? nvia : 1];
        size_t no = 0;
        const float *v = node_vec(h, x, 0);
        for (size_t j = 0; j < nvia; j++)
            if (via[j] != x) order[no++] = (hent_t){dist_off(h, v, via[j]), via[j]};
        hent_sort(order, no);
        size_t j = 0;
        while (j < no && !try_append(h, order[j].id, x)) j++;
        if (j < no || link_from_search(h, s, x)) continue;
        uint32_t z = force_link(h, p, x);
        if (z != NO_NODE && nw < cap) work[nw++] = z;
    }
}

/* Marks on level 0 everything reachable from start that seen[] does not hold yet (BFS;
 * queue has room for every slot).  Reads lists without locks. */
static void mark_reachable(const fanns_hnsw_t *h, uint32_t start, uint32_t *seen, uint32_t *queue) {
    uint32_t buf[h->m0];
    size_t qh = 0, qt = 0;
    if (seen[start / 32] & (1u << (start % 32))) return;
    seen[start / 32] |= 1u << (start % 32);
    queue[qt++] = start;
    while (qh < qt) {
        uint32_t n = read_list(h, node_at(h, queue[qh++]), 0, buf);
        for (uint32_t i = 0; i < n; i++) {
            uint32_t t = buf[i];
            if (seen[t / 32] & (1u << (t % 32))) continue;
            seen[t / 32] |= 1u << (t % 32);
            queue[qt++] = t;
        }
    }
}

/* Links x from a node marked in seen[] (reachable on level 0): the nearest one with room
 * that a level-0 search for x's vector finds, else in place of the farthest link of the
 * nearest one.  The search descends the upper levels as usual but starts level 0 from a
 * marked node (from the entry point if the descent ends on an unmarked one), so everything
 * it finds is marked: the upper levels can lead into the very region that level 0 cannot
 * reach.  Returns 0 (appended), 1 (a link was displaced) or -1 (nothing to link from). */
static int link_reachable(const fanns_hnsw_t *h, scratch_t *s, uint32_t x, const uint32_t *seen) {
    const float *q = node_vec(h, x, 0);
    search_ctx_t c = {.h = h, .s = s, .q = q, .exclude = x};
    uint32_t ep, cur;
    int top;
    ep_get(h, &ep, &top);
    cur = ep;
    float curd = dist_off(h, q, cur);
    for (int l = top; l > 0; l--) greedy(&c, l, &cur, &curd);
    if (!(seen[cur / 32] & (1u << (cur % 32)))) cur = ep;
    if (cur == x) return -1;
    size_t n = search_heap(&c, cur, h->p.ef_construct, 0);
    if (n == (size_t)-1 || n == 0) return -1;
    hent_sort(s->res, n);
    uint32_t near = NO_NODE;
    for (size_t i = 0; i < n; i++) {
        uint32_t t = s->res[i].id;
        if (!(seen[t / 32] & (1u << (t % 32)))) continue;
        if (near == NO_NODE) near = t;
        if (try_append(h, t, x)) return 0;
    }
    if (near == NO_NODE) return -1;
    return force_link(h, near, x) != NO_NODE ? 1 : 0;
}

/* Global reachability repair (see fanns_hnsw_repair in hnsw.h).  Local checks (stranded)
 * only see small groups; concurrent inserts on clustered data occasionally leave a whole
 * region of the graph without an in-link from the rest (the last link into a cluster pruned
 * away while its nodes were still linking among themselves), which only a walk of the whole
 * level 0 can see.  Each pass walks from the entry point and links every live node it did
 * not reach from the nearest node with room that a search for its vector finds (everything
 * a search finds is reachable), or in place of the farthest link of the nearest one; a link
 * displaced that way may cut something else off, which the next pass finds. */
int fanns_hnsw_repair(fanns_hnsw_t *h, size_t *relinked, fanns_err_t *err) {
    size_t total = 0;
    if (relinked) *relinked = 0;
    scratch_t *s = scratch_get();
    if (!s || scratch_prepare(h, s, h->p.ef_construct))
        return fanns_err_set(err, FANNS_ENOMEM, NULL, "hnsw: out of memory for search scratch");
    size_t nslots = (size_t)__atomic_load_n(&h->nchunks_hi, __ATOMIC_ACQUIRE) << CHUNK_BITS;
    uint32_t *seen = calloc((nslots + 31) / 32 + 1, sizeof *seen);
    uint32_t *queue = malloc((nslots + 1) * sizeof *queue);
    if (!seen || !queue) {
        free(seen);
        free(queue);
        return fanns_err_set(err, FANNS_ENOMEM, NULL, "hnsw: out of memory for the reachability walk");
    }
    for (int pass = 0; pass < 8; pass++) {
        uint32_t ep;
        int top;
        ep_get(h, &ep, &top);
        if (top < 0) break;
        memset(seen, 0, ((nslots + 31) / 32 + 1) * sizeof *seen);
        mark_reachable(h, ep, seen, queue);
        bool displaced = false;
        for (size_t off = 0; off < nslots; off++) {
            if (seen[off / 32] & (1u << (off % 32))) continue;
            if (!chunk_of(h, (uint32_t)off) || (get_flags(h, (uint32_t)off) & (F_PRESENT | F_DELETED)) != F_PRESENT)
                continue;
            uint32_t x = (uint32_t)off;
            int how = link_reachable(h, s, x, seen);
            if (how < 0) continue; /* nothing reachable but x itself */
            if (how > 0) displaced = true;
            total++;
            mark_reachable(h, x, seen, queue);
        }
        if (!displaced) break;
    }
    free(seen);
    free(queue);
    if (relinked) *relinked = total;
    return 0;
}

/* Adds link `to` to the level-l list of `from` (under from's lock), pruning with the
 * heuristic when the list is full.  Nothing happens if the link is already there. */
static void add_link(const fanns_hnsw_t *h, scratch_t *s, uint32_t from, uint32_t to, int l) {
    uint8_t *node = node_at(h, from);
    uint32_t cap = cap_of(h, l);
    uint32_t drop[h->m0 + 1], kept[h->m0];
    size_t ndrop = 0, nkept = 0;
    node_lock(node);
    uint32_t *lst = list_of(h, node, l);
    uint32_t n = lst[0];
    for (uint32_t i = 0; i < n; i++)
        if (lst[1 + i] == to) goto done;
    if (n < cap) {
        __atomic_store_n(&lst[1 + n], to, __ATOMIC_RELEASE);
        if (l == 0) __atomic_add_fetch(indeg_of(h, to), 1, __ATOMIC_SEQ_CST);
        __atomic_store_n(&lst[0], n + 1, __ATOMIC_RELEASE);
    } else {
        const float *base = node_vec(h, from, 0); /* copied: select_heuristic reuses slot 0 */
        float bcopy[h->codec ? h->p.dim : 1];
        if (h->codec) {
            memcpy(bcopy, base, h->p.dim * sizeof(float));
            base = bcopy;
        }
        hent_t *a = s->tmp, *rej = s->tmp + 2 * h->m0 + 2;
        for (uint32_t i = 0; i < n; i++) a[i] = (hent_t){dist_off(h, base, lst[1 + i]), lst[1 + i]};
        a[n] = (hent_t){dist_off(h, base, to), to};
        hent_sort(a, n + 1);
        size_t nrej;
        size_t k = select_heuristic(h, a, n + 1, cap, rej, &nrej);
        for (size_t i = 0; i < k; i++) kept[i] = a[i].id;
        nkept = k;
        write_list(h, node, l, kept, (uint32_t)k, drop, &ndrop);
    }
done:
    node_unlock(node);
    if (ndrop) keep_reachable(h, s, from, kept, nkept, drop, ndrop);
}

/* ---- insertion ---- */

static int draw_level(fanns_hnsw_t *h) {
    uint64_t z = __atomic_add_fetch(&h->rng, 0x9E3779B97F4A7C15ull, __ATOMIC_RELAXED);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    double u = ((double)(z >> 11) + 1.0) * (1.0 / 9007199254740992.0); /* (0, 1] */
    double lv = -log(u) * h->mult;
    return lv >= MAX_LEVEL ? MAX_LEVEL : (int)lv;
}

static int ensure_chunk(fanns_hnsw_t *h, uint32_t off, fanns_err_t *err) {
    uint32_t ci = off >> CHUNK_BITS;
    if (__atomic_load_n(&h->chunks[ci], __ATOMIC_ACQUIRE)) return 0;
    pthread_mutex_lock(&h->grow);
    if (!h->chunks[ci]) {
        uint8_t *c = fanns_mem_alloc(h->chunk_bytes); /* zeroed; huge pages, see mem.h */
        if (!c) {
            pthread_mutex_unlock(&h->grow);
            return fanns_err_set(err, FANNS_ENOMEM, NULL, "hnsw: out of memory for %zu bytes", h->chunk_bytes);
        }
        __atomic_store_n(&h->chunks[ci], c, __ATOMIC_RELEASE);
        if (ci + 1 > h->nchunks_hi) __atomic_store_n(&h->nchunks_hi, ci + 1, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&h->grow);
    return 0;
}

static int connect_levels(fanns_hnsw_t *h, scratch_t *s, search_ctx_t *cp, uint32_t off, const float *q, int L,
                          uint32_t ep, int top, bool replace);

/* Finds neighbours for off (vector q, level L) from the entry point and links both ways.
 * With `replace`, off is already in the graph: it is excluded from its own candidates and
 * its lists are overwritten.  The caller holds glob if L is above the top level. */
static int connect_node(fanns_hnsw_t *h, scratch_t *s, uint32_t off, const float *q, int L, uint32_t ep, int top,
                        bool replace) {
    search_ctx_t c = {.h = h, .s = s, .q = q, .exclude = replace ? off : NO_NODE};
    /* With a codec the construction search runs on the codes with a float query (exact
     * distances to the decoded vectors), like the searches the graph will serve. */
    fanns_codec_query_t *cq = NULL;
    if (h->codec) {
        fanns_err_t e;
        if (fanns_codec_query_new(h->codec, q, h->codec_build_bits, &cq, &e)) return FANNS_ENOMEM;
        c.cq = cq;
    }
    int rc = connect_levels(h, s, &c, off, q, L, ep, top, replace);
    fanns_codec_query_free(cq);
    return rc;
}

static int connect_levels(fanns_hnsw_t *h, scratch_t *s, search_ctx_t *cp, uint32_t off, const float *q, int L,
                          uint32_t ep, int top, bool replace) {
    search_ctx_t c = *cp;
    uint32_t cur = ep;
    float curd = dist_off(h, q, cur);
    for (int l = top; l > L; l--) greedy(&c, l, &cur, &curd);
    uint8_t *node = node_at(h, off);
    size_t ef = h->p.ef_construct;
    uint32_t old[1 + h->m0]; /* the node's former list ([count | links]), empty for a new node */
    old[0] = 0;
    for (int l = L < top ? L : top; l >= 0; l--) {
        size_t deleted = __atomic_load_n(&h->ndeleted, __ATOMIC_RELAXED);
        old[0] = 0;
        hent_t *a = s->tmp;
        size_t n;
        if (!replace && deleted == 0) {
            n = search_pool(&c, cur, ef, l);
            if (n == (size_t)-1) return FANNS_ENOMEM;
            for (size_t i = 0; i < n; i++) a[i] = (hent_t){s->pool[i].d, s->pool[i].id};
        } else {
            c.skip_deleted = true;
            n = search_heap(&c, cur, ef, l);
            if (n == (size_t)-1) return FANNS_ENOMEM;
            memcpy(a, s->res, n * sizeof *a);
            if (n == 0 && cur != off) a[n++] = (hent_t){dist_off(h, q, cur), cur};
            if (n > 0 && replace) {
                /* The former links compete too, so that none is dropped without need (links
                 * other inserters add to a new node are merged below instead). */
                uint32_t no = read_list(h, node, l, old + 1);
                for (uint32_t i = 0; i < no; i++) {
                    bool dup = false;
                    for (size_t j = 0; j < n && !dup; j++) dup = a[j].id == old[1 + i];
                    if (!dup) a[n++] = (hent_t){dist_off(h, q, old[1 + i]), old[1 + i]};
                }
                old[0] = no;
            }
            hent_sort(a, n);
        }
        if (n == 0) continue; /* only off itself on this level: keep its lists */
        cur = a[0].id;
        hent_t *rej = a + ef + 2 * h->m0 + 2; /* past everything a may grow to */
        size_t nrej;
        /* A new node picks m links, and gains more as later nodes link back to it; a
         * replaced node picks up to the full capacity, as a node that has been in the graph
         * a while holds (picking m dropped the links later inserts had added: after deleting
         * and re-inserting half of the points, recall@10 fell by 1-3 points). */
        size_t k = select_heuristic(h, a, n, replace ? cap_of(h, l) : h->p.m, rej, &nrej);
        uint32_t drop[h->m0 + 1];
        size_t ndrop = 0;
        uint32_t cap = cap_of(h, l);
        uint32_t *ids = s->ids + 2 * h->m0 + 2;
        node_lock(node);
        /* Other inserters may have linked to this node since `old` was read (its upper
         * levels make it findable before its level-0 list is written): keep those links,
         * pruning with the heuristic only if the list overflows. */
        uint32_t *lst = list_of(h, node, l);
        size_t nk = k;
        for (uint32_t i = 0; i < lst[0]; i++) {
            uint32_t t = lst[1 + i];
            bool known = in_list(old, t);
            for (size_t j = 0; j < nk && !known; j++) known = a[j].id == t;
            for (size_t j = 0; j < nrej && !known; j++) known = rej[j].id == t;
            if (!known) a[nk++] = (hent_t){dist_off(h, q, t), t};
        }
        if (nk > cap) {
            size_t nrej2;
            hent_sort(a, nk);
            nk = select_heuristic(h, a, nk, cap, rej + nrej, &nrej2);
        }
        k = nk;
        for (size_t i = 0; i < k; i++) ids[i] = a[i].id;
        write_list(h, node, l, ids, (uint32_t)k, drop, &ndrop);
        node_unlock(node);
        /* ids is reused by add_link for pruning: keep a copy of the selection */
        uint32_t sel[k ? k : 1];
        memcpy(sel, ids, k * sizeof *ids);
        for (size_t i = 0; i < k; i++) add_link(h, s, sel[i], off, l);
        if (l == 0) {
            /* Former or concurrently added links this node dropped, and the node itself if
             * its new neighbours all pruned it, must stay reachable. */
            if (ndrop) keep_reachable(h, s, off, sel, k, drop, ndrop);
            if (k > 0 && __atomic_load_n(indeg_of(h, off), __ATOMIC_SEQ_CST) <= LOW_INDEG)
                keep_reachable(h, s, sel[0], sel + 1, k - 1, &off, 1);
        }
    }
    return 0;
}

/* Writes vec into node: copied, or encoded with the codec.  Returns 0 or FANNS_EINVAL. */
static int store_vec(const fanns_hnsw_t *h, uint8_t *node, const float *vec) {
    if (!h->codec) {
        memcpy(vec_of(h, node), vec, h->p.dim * sizeof(float));
        return 0;
    }
    fanns_err_t e;
    return fanns_codec_encode(h->codec, 1, vec, (uint8_t *)code_of(h, node), &e) ? FANNS_EINVAL : 0;
}

/* Replacement: new vector for an existing node, repair of its former neighbours, relink. */
static int replace_node(fanns_hnsw_t *h, scratch_t *s, uint32_t off, const float *vec) {
    uint8_t *node = node_at(h, off);
    int L = level_of(node);
    int rc = store_vec(h, node, vec);
    if (rc) return rc;
    uint32_t ep;
    int top;
    ep_get(h, &ep, &top);
    if (__atomic_load_n(&h->npresent, __ATOMIC_RELAXED) > 1) {
        /* Repair: each former neighbour n re-selects its links among its own links, the
         * node's other neighbours and the node (with its new vector). */
        uint32_t *old = malloc(sizeof(uint32_t) * (h->m0 + 1));
        uint32_t *mine = malloc(sizeof(uint32_t) * (h->m0 + 1));
        if (!old || !mine) {
            free(old);
            free(mine);
            return FANNS_ENOMEM;
        }
        for (int l = 0; l <= L; l++) {
            uint32_t no = read_list(h, node, l, old);
            for (uint32_t i = 0; i < no; i++) {
                uint32_t nb = old[i];
                uint8_t *nn = node_at(h, nb);
                node_lock(nn);
                uint32_t *lst = list_of(h, nn, l);
                uint32_t cnt = lst[0];
                const float *base = node_vec(h, nb, 0);
                float bcopy[h->codec ? h->p.dim : 1];
                if (h->codec) {
                    memcpy(bcopy, base, h->p.dim * sizeof(float));
                    base = bcopy;
                }
                hent_t *a = s->tmp;
                size_t na = 0;
                /* dedupe with a small linear scan: lists hold at most 2m entries */
                for (uint32_t j = 0; j < cnt; j++) mine[j] = lst[1 + j];
                for (uint32_t j = 0; j < cnt; j++) a[na++] = (hent_t){dist_off(h, base, mine[j]), mine[j]};
                for (uint32_t j = 0; j < no; j++) {
                    uint32_t cnd = old[j];
                    if (cnd == nb) continue;
                    bool dup = false;
                    for (uint32_t t = 0; t < cnt && !dup; t++) dup = mine[t] == cnd;
                    if (!dup) a[na++] = (hent_t){dist_off(h, base, cnd), cnd};
                }
                bool has_off = false;
                for (uint32_t t = 0; t < cnt && !has_off; t++) has_off = mine[t] == off;
                if (!has_off) {
                    bool dup = false;
                    for (uint32_t j = 0; j < no && !dup; j++) dup = old[j] == off;
                    if (!dup) a[na++] = (hent_t){dist_off(h, base, off), off};
                }
                hent_sort(a, na);
                size_t cap = cap_of(h, l), nrej;
                hent_t *rej = a + na;
                size_t k = select_heuristic(h, a, na, cap, rej, &nrej);
                uint32_t drop[h->m0 + 1];
                size_t ndrop = 0;
                for (size_t j = 0; j < k; j++) mine[j] = a[j].id;
                write_list(h, nn, l, mine, (uint32_t)k, drop, &ndrop);
                node_unlock(nn);
                if (ndrop) keep_reachable(h, s, nb, mine, k, drop, ndrop);
            }
        }
        free(old);
        free(mine);
        rc = connect_node(h, s, off, vec, L, ep, top, true);
        if (rc) return rc;
    }
    uint8_t *fl = flags_at(h, off);
    if (__atomic_fetch_and(fl, (uint8_t)~F_DELETED, __ATOMIC_ACQ_REL) & F_DELETED)
        __atomic_sub_fetch(&h->ndeleted, 1, __ATOMIC_RELAXED);
    return 0;
}

int fanns_hnsw_insert(fanns_hnsw_t *h, uint32_t off, const float *vec, fanns_err_t *err) {
    scratch_t *s = scratch_get();
    if (!s || scratch_prepare(h, s, h->p.ef_construct))
        return fanns_err_set(err, FANNS_ENOMEM, NULL, "hnsw: out of memory for search scratch");
    int rc = ensure_chunk(h, off, err);
    if (rc) return rc;
    pthread_mutex_t *stripe = &h->stripes[off % N_STRIPES];
    pthread_mutex_lock(stripe);
    uint8_t *fl = flags_at(h, off);
    if (__atomic_load_n(fl, __ATOMIC_ACQUIRE) & F_PRESENT) {
        rc = replace_node(h, s, off, vec);
        pthread_mutex_unlock(stripe);
        if (rc) return fanns_err_set(err, rc, NULL, "hnsw: out of memory while replacing a node");
        return 0;
    }

    uint8_t *node = node_at(h, off);
    rc = store_vec(h, node, vec);
    if (rc) {
        pthread_mutex_unlock(stripe);
        return fanns_err_set(err, rc, NULL, "hnsw: vector cannot be encoded (not finite?)");
    }
    int L = draw_level(h);
    if (L > 0) {
        size_t bytes = (size_t)L * (1u + h->p.m) * sizeof(uint32_t);
        uint32_t *up = calloc(1, bytes);
        if (!up) {
            pthread_mutex_unlock(stripe);
            return fanns_err_set(err, FANNS_ENOMEM, NULL, "hnsw: out of memory for upper links");
        }
        memcpy(node + OFF_UPPER, &up, sizeof up);
        __atomic_add_fetch(&h->upper_bytes, bytes, __ATOMIC_RELAXED);
    }
    node[OFF_LEVEL] = (uint8_t)L;
    __atomic_store_n(fl, (uint8_t)F_PRESENT, __ATOMIC_RELEASE);

    pthread_mutex_lock(&h->glob);
    uint32_t ep;
    int top;
    ep_get(h, &ep, &top);
    if (top < 0) {
        ep_set(h, off, L);
        __atomic_add_fetch(&h->npresent, 1, __ATOMIC_RELAXED);
        pthread_mutex_unlock(&h->glob);
        pthread_mutex_unlock(stripe);
        return 0;
    }
    bool raise = L > top;
    if (!raise) pthread_mutex_unlock(&h->glob);
    rc = connect_node(h, s, off, vec, L, ep, top, false);
    __atomic_add_fetch(&h->npresent, 1, __ATOMIC_RELAXED);
    if (raise) {
        ep_set(h, off, L);
        pthread_mutex_unlock(&h->glob);
    }
    pthread_mutex_unlock(stripe);
    if (rc) return fanns_err_set(err, rc, NULL, "hnsw: out of memory while inserting");
    return 0;
}

typedef struct many_ctx {
    fanns_hnsw_t *h;
    const uint32_t *offs;
    size_t n;
    const float *(*vec_of)(void *ctx, uint32_t off);
    void *ctx;
    size_t next;            /* atomic */
    int rc;                 /* atomic: first error */
    fanns_err_t err;
    pthread_mutex_t err_mu;
} many_ctx_t;

static void *many_worker(void *arg) {
    many_ctx_t *m = arg;
    for (;;) {
        if (__atomic_load_n(&m->rc, __ATOMIC_RELAXED)) break;
        size_t i = __atomic_fetch_add(&m->next, 1, __ATOMIC_RELAXED);
        if (i >= m->n) break;
        fanns_err_t e;
        int rc = fanns_hnsw_insert(m->h, m->offs[i], m->vec_of(m->ctx, m->offs[i]), &e);
        if (rc) {
            pthread_mutex_lock(&m->err_mu);
            if (!m->rc) {
                m->err = e;
                __atomic_store_n(&m->rc, rc, __ATOMIC_RELAXED);
            }
            pthread_mutex_unlock(&m->err_mu);
            break;
        }
    }
    return NULL;
}

int fanns_hnsw_insert_many(fanns_hnsw_t *h, const uint32_t *offs, size_t n,
                           const float *(*vec_of)(void *ctx, uint32_t off), void *ctx, int nthreads,
                           fanns_err_t *err) {
    if (nthreads < 1) nthreads = 1;
    if ((size_t)nthreads > n) nthreads = n ? (int)n : 1;
    many_ctx_t m = {.h = h, .offs = offs, .n = n, .vec_of = vec_of, .ctx = ctx};
    pthread_mutex_init(&m.err_mu, NULL);
    pthread_t *th = NULL;
    int started = 0;
    if (nthreads > 1) {
        th = calloc((size_t)nthreads - 1, sizeof *th);
        if (th)
            for (; started < nthreads - 1; started++)
                if (pthread_create(&th[started], NULL, many_worker, &m) != 0) break;
    }
    many_worker(&m);
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    free(th);
    pthread_mutex_destroy(&m.err_mu);
    if (m.rc) {
        if (err) *err = m.err;
        return m.rc;
    }
    /* Concurrent inserts can cut a region off (see fanns_hnsw_repair); a walk costs about as
     * much as a few hundred inserts, so it follows every parallel batch that is not tiny
     * next to the graph. */
    if (started > 0 && n * 16 >= fanns_hnsw_count(h)) return fanns_hnsw_repair(h, NULL, err);
    return 0;
}

/* ---- block links ---- */

typedef struct block_ctx {
    fanns_hnsw_t *h;
    const uint32_t *members;
    size_t n;
    const uint64_t *bits;
    uint32_t nbits, pm;
    size_t ef;
    const fanns_hnsw_xlinks_t *xl;
    uint32_t *fwd, *fcnt;   /* phase 1: pm forward links per member */
    const uint32_t *rstart, *rev; /* phase 2: back links per member (CSR over member indexes) */
    uint32_t *out, *cnt;
    bool (*stop)(void *ctx);
    void *sctx;
    int phase;
    size_t next;            /* atomic */
    int rc;                 /* atomic: first error */
} block_ctx_t;

static size_t member_index(const block_ctx_t *b, uint32_t off) {
    size_t lo = 0, hi = b->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (b->members[mid] < off) lo = mid + 1;
        else hi = mid;
    }
    return lo < b->n && b->members[lo] == off ? lo : (size_t)-1;
}

/* Phase 1 for member i: a filtered walk from its vector, then the heuristic. */
static int block_forward(block_ctx_t *b, size_t i, float *q, fanns_hnsw_result_t *res, hent_t *a, hent_t *rej) {
    fanns_hnsw_t *h = b->h;
    uint32_t x = b->members[i];
    scratch_t *s = scratch_get();
    if (!s || scratch_prepare(h, s, b->ef + 1)) return FANNS_ENOMEM;
    memcpy(q, node_vec(h, x, 0), h->p.dim * sizeof(float));
    fanns_hnsw_search_opts_t so = {.mode = FANNS_HNSW_FILTER_TWO_HOP, .bits = b->bits, .nbits = b->nbits,
                                   .xlinks = b->xl};
    size_t nres = 0;
    int rc = fanns_hnsw_search_ex(h, q, b->ef + 1, b->ef + 1, NULL, NULL, &so, res, &nres, NULL);
    if (rc) return rc;
    size_t na = 0;
    for (size_t j = 0; j < nres; j++)
        if (res[j].off != x) a[na++] = (hent_t){res[j].dist, res[j].off};
    size_t nrej, k = select_heuristic(h, a, na, b->pm, rej, &nrej);
    for (size_t j = 0; j < k; j++) b->fwd[i * b->pm + j] = a[j].id;
    b->fcnt[i] = (uint32_t)k;
    return 0;
}

/* Phase 3 for member i: forward and back links, cut to 2 pm by the heuristic. */
static int block_merge(block_ctx_t *b, size_t i, hent_t *a, hent_t *rej) {
    fanns_hnsw_t *h = b->h;
    uint32_t x = b->members[i], cap = 2 * b->pm;
    scratch_t *s = scratch_get();
    if (!s || scratch_prepare(h, s, 1)) return FANNS_ENOMEM;
    size_t na = 0;
    const float *base = node_vec(h, x, 1);
    for (uint32_t j = 0; j < b->fcnt[i]; j++) a[na++].id = b->fwd[i * b->pm + j];
    for (uint32_t j = b->rstart[i]; j < b->rstart[i + 1]; j++) {
        bool dup = false;
        for (uint32_t t = 0; t < b->fcnt[i] && !dup; t++) dup = b->fwd[i * b->pm + t] == b->rev[j];
        if (!dup) a[na++].id = b->rev[j];
    }
    for (size_t j = 0; j < na; j++) a[j].d = dist_raw(h, base, node_vec(h, a[j].id, 2));
    hent_sort(a, na);
    size_t nrej, k = na;
    if (na > cap) k = select_heuristic(h, a, na, cap, rej, &nrej);
    for (size_t j = 0; j < k; j++) b->out[i * cap + j] = a[j].id;
    b->cnt[i] = (uint32_t)k;
    return 0;
}

static void *block_worker(void *arg) {
    block_ctx_t *b = arg;
    size_t most = b->ef + 2 + (size_t)b->pm + b->n; /* a member has fewer than n back links */
    fanns_hnsw_result_t *res = malloc((b->ef + 2) * sizeof *res);
    hent_t *a = malloc(most * sizeof *a), *rej = malloc(most * sizeof *rej);
    float *q = malloc(b->h->p.dim * sizeof *q);
    int rc = res && a && rej && q ? 0 : FANNS_ENOMEM;
    while (!rc && !__atomic_load_n(&b->rc, __ATOMIC_RELAXED)) {
        size_t i = __atomic_fetch_add(&b->next, 1, __ATOMIC_RELAXED);
        if (i >= b->n) break;
        if (b->phase == 1 && b->stop && i % 256 == 255 && b->stop(b->sctx)) {
            rc = FANNS_EBUSY;
            break;
        }
        rc = b->phase == 1 ? block_forward(b, i, q, res, a, rej) : block_merge(b, i, a, rej);
    }
    if (rc) {
        int zero = 0;
        __atomic_compare_exchange_n(&b->rc, &zero, rc, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
    }
    free(res);
    free(a);
    free(rej);
    free(q);
    return NULL;
}

static int block_phase(block_ctx_t *b, int phase, int nthreads) {
    b->phase = phase;
    b->next = 0;
    pthread_t th[64];
    int started = 0;
    if (nthreads > 65) nthreads = 65;
    for (; started < nthreads - 1; started++)
        if (pthread_create(&th[started], NULL, block_worker, b) != 0) break;
    block_worker(b);
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    return b->rc;
}

int fanns_hnsw_link_block(fanns_hnsw_t *h, const uint32_t *members, size_t n, const uint64_t *bits, uint32_t nbits,
                          uint32_t pm, size_t ef, const fanns_hnsw_xlinks_t *xl, int nthreads,
                          bool (*stop)(void *ctx), void *sctx, uint32_t *out, uint32_t *cnt, fanns_err_t *err) {
    if (pm < 1 || pm > h->p.m || ef < 1 || !bits)
        return fanns_err_set(err, FANNS_EINVAL, NULL, "hnsw: block links need 1 <= pm <= m, ef >= 1 and a bitset");
    for (size_t i = 0; i < n; i++)
        if ((i && members[i] <= members[i - 1]) || members[i] >= nbits || !(bits[members[i] >> 6] >> (members[i] & 63) & 1) ||
            (get_flags(h, members[i]) & (F_PRESENT | F_DELETED)) != F_PRESENT)
            return fanns_err_set(err, FANNS_EINVAL, NULL, "hnsw: block member %u is not a live node in the bitset, or members are not sorted",
                                 members[i]);
    if (nthreads < 1) nthreads = 1;
    block_ctx_t b = {.h = h, .members = members, .n = n, .bits = bits, .nbits = nbits, .pm = pm, .ef = ef, .xl = xl,
                     .out = out, .cnt = cnt, .stop = stop, .sctx = sctx};
    uint32_t *rstart = NULL, *rev = NULL, *fill = NULL;
    b.fwd = malloc((n ? n : 1) * pm * sizeof(uint32_t));
    b.fcnt = calloc(n ? n : 1, sizeof(uint32_t));
    rstart = calloc(n + 1, sizeof(uint32_t));
    fill = calloc(n + 1, sizeof(uint32_t));
    int rc = FANNS_ENOMEM;
    if (!b.fwd || !b.fcnt || !rstart || !fill) goto fail;
    if ((rc = block_phase(&b, 1, nthreads)) != 0) goto fail;
    /* Phase 2: the back links, as CSR over member indexes. */
    for (size_t i = 0; i < n; i++)
        for (uint32_t j = 0; j < b.fcnt[i]; j++) {
            size_t t = member_index(&b, b.fwd[i * pm + j]);
            if (t != (size_t)-1) rstart[t + 1]++;
        }
    for (size_t i = 0; i < n; i++) rstart[i + 1] += rstart[i];
    rev = malloc((rstart[n] ? rstart[n] : 1) * sizeof(uint32_t));
    rc = FANNS_ENOMEM;
    if (!rev) goto fail;
    for (size_t i = 0; i < n; i++)
        for (uint32_t j = 0; j < b.fcnt[i]; j++) {
            size_t t = member_index(&b, b.fwd[i * pm + j]);
            if (t != (size_t)-1) rev[rstart[t] + fill[t]++] = members[i];
        }
    b.rstart = rstart;
    b.rev = rev;
    rc = block_phase(&b, 3, nthreads);
fail:
    free(b.fwd);
    free(b.fcnt);
    free(rstart);
    free(rev);
    free(fill);
    if (rc == FANNS_EBUSY) return fanns_err_set(err, rc, NULL, "hnsw: linking a block was stopped");
    if (rc) return fanns_err_set(err, rc, NULL, "hnsw: out of memory while linking a block");
    return 0;
}

void fanns_hnsw_delete(fanns_hnsw_t *h, uint32_t off) {
    uint8_t *c = chunk_of(h, off);
    if (!c) return;
    uint8_t *fl = c + (off & CHUNK_MASK);
    uint8_t v = __atomic_load_n(fl, __ATOMIC_ACQUIRE);
    while ((v & F_PRESENT) && !(v & F_DELETED)) {
        if (__atomic_compare_exchange_n(fl, &v, (uint8_t)(v | F_DELETED), false, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE)) {
            __atomic_add_fetch(&h->ndeleted, 1, __ATOMIC_RELAXED);
            break;
        }
    }
}

bool fanns_hnsw_has_node(const fanns_hnsw_t *h, uint32_t off) {
    if ((off >> CHUNK_BITS) >= __atomic_load_n(&h->nchunks_hi, __ATOMIC_ACQUIRE)) return false;
    return (get_flags(h, off) & F_PRESENT) != 0;
}

bool fanns_hnsw_contains(const fanns_hnsw_t *h, uint32_t off) {
    return (get_flags(h, off) & (F_PRESENT | F_DELETED)) == F_PRESENT;
}

/* ---- search ---- */

static int search_levels(search_ctx_t *cp, uint32_t ep, int top, size_t k, size_t ef, fanns_hnsw_result_t *out,
                         size_t *n);

int fanns_hnsw_search(fanns_hnsw_t *h, const float *q, size_t k, size_t ef, fanns_hnsw_filter_fn filter,
                      void *fctx, fanns_hnsw_result_t *out, size_t *n, fanns_hnsw_stats_t *stats) {
    return fanns_hnsw_search_ex(h, q, k, ef, filter, fctx, NULL, out, n, stats);
}

int fanns_hnsw_search_ex(fanns_hnsw_t *h, const float *q, size_t k, size_t ef, fanns_hnsw_filter_fn filter,
                         void *fctx, const fanns_hnsw_search_opts_t *opts, fanns_hnsw_result_t *out, size_t *n,
                         fanns_hnsw_stats_t *stats) {
    *n = 0;
    if (ef < k) ef = k;
    uint32_t ep;
    int top;
    ep_get(h, &ep, &top);
    if (top < 0 || k == 0) {
        if (stats) *stats = (fanns_hnsw_stats_t){0, 0, 0, 0, false, 0.0f, 0};
        return 0;
    }
    scratch_t *s = scratch_get();
    if (!s || scratch_prepare(h, s, ef)) return FANNS_ENOMEM;
    search_ctx_t c = {.h = h, .s = s, .q = q, .filter = filter, .fctx = fctx, .exclude = NO_NODE};
    if (opts && opts->bits) {
        c.bits = opts->bits;
        c.nbits = opts->nbits;
        c.filter = NULL;
    }
    if (opts && opts->mode == FANNS_HNSW_FILTER_TRAVERSE && (c.filter || c.bits)) {
        c.min_tests = opts->min_tests;
        c.min_pass = opts->min_pass;
        c.max_dc = opts->max_dc;
    }
    if (opts && opts->mode == FANNS_HNSW_FILTER_TWO_HOP) {
        if (opts->bits && opts->xlinks && opts->xlinks->n) c.xl = opts->xlinks;
        c.seeds = opts->seeds;
        c.nseeds = opts->seeds ? opts->nseeds : 0;
        c.hop_cap = opts->hop_cap ? opts->hop_cap : h->m0;
        if (c.hop_cap > h->m0 * (h->m0 + 1u)) c.hop_cap = h->m0 * (h->m0 + 1u); /* the most one expansion can gather */
        size_t need = 3u * (size_t)h->m0 + (c.hop_cap > h->m0 ? c.hop_cap : h->m0) + 8u; /* see search_twohop */
        if (grow((void **)&s->ids, &s->idcap, need, sizeof(uint32_t))) return FANNS_ENOMEM;
    }
    fanns_codec_query_t *cq = NULL;
    if (h->codec) {
        fanns_err_t e;
        int rc = fanns_codec_query_new(h->codec, q, h->p.query_bits, &cq, &e);
        if (rc) return rc == FANNS_ENOMEM ? rc : FANNS_EINVAL;
        c.cq = cq;
    }
    int rc = search_levels(&c, ep, top, k, ef, out, n);
    fanns_codec_query_free(cq);
    if (stats) *stats = (fanns_hnsw_stats_t){c.dist_comps, c.visited, c.ftests, c.fpasses, c.entry_isolated,
                                                  c.entry_dist, c.stopped};
    return rc;
}

static int search_levels(search_ctx_t *cp, uint32_t ep, int top, size_t k, size_t ef, fanns_hnsw_result_t *out,
                         size_t *n) {
    search_ctx_t c = *cp;
    const fanns_hnsw_t *h = c.h;
    scratch_t *s = c.s;
    uint32_t cur = ep;
    size_t got, ns = 0;
    if (c.hop_cap && c.nseeds) {
        /* Seeded two-hop walk: from the seeds that are nodes, without the descent. */
        const size_t vcap = (size_t)__atomic_load_n(&h->nchunks_hi, __ATOMIC_ACQUIRE) << CHUNK_BITS;
        if (grow((void **)&s->seeds, &s->scap, c.nseeds, sizeof(uint32_t))) return FANNS_ENOMEM;
        for (uint32_t i = 0; i < c.nseeds; i++)
            if (c.seeds[i] < vcap && chunk_of(h, c.seeds[i]) && (get_flags(h, c.seeds[i]) & F_PRESENT))
                s->seeds[ns++] = c.seeds[i];
        c.dist_comps = 0;
        c.entry_dist = INFINITY;
    }
    if (!ns) {
        float curd = cdist(&c, cur);
        c.dist_comps = 1;
        for (int l = top; l > 0; l--) greedy(&c, l, &cur, &curd);
        c.entry_dist = curd;
    }
    if (!ns && !c.filter && !c.bits && __atomic_load_n(&h->ndeleted, __ATOMIC_RELAXED) == 0) {
        got = search_pool(&c, cur, ef, 0);
        if (got == (size_t)-1) return FANNS_ENOMEM;
        if (got > k) got = k;
        for (size_t i = 0; i < got; i++) out[i] = (fanns_hnsw_result_t){s->pool[i].id, s->pool[i].d};
    } else {
        c.skip_deleted = true;
        if (ns) got = search_twohop(&c, s->seeds, ns, ef, c.hop_cap);
        else got = c.hop_cap ? search_twohop(&c, &cur, 1, ef, c.hop_cap) : search_heap(&c, cur, ef, 0);
        if (got == (size_t)-1) return FANNS_ENOMEM;
        hent_sort(s->res, got);
        if (got > k) got = k;
        for (size_t i = 0; i < got; i++) out[i] = (fanns_hnsw_result_t){s->res[i].id, s->res[i].d};
    }
    *n = got;
    cp->dist_comps = c.dist_comps;
    cp->visited = c.visited;
    cp->ftests = c.ftests;
    cp->fpasses = c.fpasses;
    cp->entry_isolated = c.entry_isolated;
    cp->entry_dist = c.entry_dist;
    cp->stopped = c.stopped;
    return 0;
}

float fanns_hnsw_distance(const fanns_hnsw_t *h, const float *q, uint32_t off) {
    if (!(get_flags(h, off) & F_PRESENT)) return INFINITY;
    scratch_t *s = scratch_get();
    if (!s || scratch_prepare(h, s, 1)) return INFINITY;
    return dist_off(h, q, off);
}

const float *fanns_hnsw_vector(const fanns_hnsw_t *h, uint32_t off) {
    if (h->codec || !(get_flags(h, off) & F_PRESENT)) return NULL;
    return vec_of(h, node_at(h, off));
}

const uint8_t *fanns_hnsw_code(const fanns_hnsw_t *h, uint32_t off) {
    if (!h->codec || (get_flags(h, off) & (F_PRESENT | F_DELETED)) != F_PRESENT) return NULL;
    return code_of(h, node_at(h, off));
}

int fanns_hnsw_recode(fanns_hnsw_t *h, const fanns_codec_t *codec, fanns_hnsw_recode_fn fn, void *ctx,
                      fanns_err_t *err) {
    if (!h->codec || !codec || fanns_codec_kind(codec) != fanns_codec_kind(h->codec) ||
        fanns_codec_code_size(codec) != h->vbytes || fanns_codec_dim(codec) != h->p.dim ||
        !fanns_codec_is_trained(codec))
        return fanns_err_set(err, FANNS_EINVAL, NULL, "recode needs a trained codec of the graph's kind and code size");
    uint8_t *out = malloc(h->vbytes);
    float *tmp = malloc(h->p.dim * sizeof(float));
    int rc = 0;
    if (!out || !tmp) {
        rc = fanns_err_set(err, FANNS_ENOMEM, NULL, "out of memory");
        goto out;
    }
    for (uint32_t ci = 0; ci < h->nchunks_hi; ci++) {
        uint8_t *c = h->chunks[ci];
        if (!c) continue;
        for (uint32_t i = 0; i < CHUNK_N; i++) {
            if (!(c[i] & F_PRESENT)) continue;
            uint32_t off = ci << CHUNK_BITS | i;
            uint8_t *code = c + FLAGS_BYTES + (size_t)i * h->stride + h->hdr;
            if (!fn || !fn(ctx, off, code, out)) {
                if ((rc = fanns_codec_decode(h->codec, 1, code, tmp, err)) != 0 ||
                    (rc = fanns_codec_encode(codec, 1, tmp, out, err)) != 0)
                    goto out;
            }
            memcpy(code, out, h->vbytes);
        }
    }
    h->codec = codec;
    h->p.codec = codec;
out:
    free(out);
    free(tmp);
    return rc;
}

size_t fanns_hnsw_count(const fanns_hnsw_t *h) {
    return __atomic_load_n(&h->npresent, __ATOMIC_RELAXED) - __atomic_load_n(&h->ndeleted, __ATOMIC_RELAXED);
}

size_t fanns_hnsw_memory(const fanns_hnsw_t *h) {
    size_t chunks = 0;
    uint32_t hi = __atomic_load_n(&h->nchunks_hi, __ATOMIC_ACQUIRE);
    for (uint32_t i = 0; i < hi; i++)
        if (chunk_of(h, i << CHUNK_BITS)) chunks++;
    /* The chunk table is reserved for 2^32 offsets but only the pages covering allocated
     * chunks are ever touched; count those. */
    size_t table = round64((size_t)hi * sizeof(uint8_t *));
    table = (table + 4095u) & ~(size_t)4095u;
    return sizeof *h + table + chunks * h->chunk_bytes + __atomic_load_n(&h->upper_bytes, __ATOMIC_RELAXED);
}

/* ---- lifecycle ---- */

static fanns_hnsw_t *hnsw_alloc(const fanns_hnsw_params_t *p, fanns_err_t *err, int *rc) {
    *rc = 0;
    if (!p || p->dim == 0 || p->dim > 65536 || p->m < 2 || p->m > 512 || (int)p->metric < 0 || (int)p->metric > 3) {
        *rc = fanns_err_set(err, FANNS_EINVAL, NULL, "hnsw: bad parameters (dim 1..65536, m 2..512, known metric)");
        return NULL;
    }
    if (p->codec && (!fanns_codec_is_trained(p->codec) || fanns_codec_dim(p->codec) != p->dim ||
                     fanns_codec_metric(p->codec) != p->metric)) {
        *rc = fanns_err_set(err, FANNS_EINVAL, NULL, "hnsw: the codec must be trained, with the index's dim and metric");
        return NULL;
    }
    fanns_dist_init();
    fanns_hnsw_t *h = calloc(1, sizeof *h);
    if (!h) goto nomem;
    h->p = *p;
    if (h->p.ef_construct < h->p.m) h->p.ef_construct = h->p.m;
    h->m0 = 2 * p->m;
    h->hdr = round64(OFF_LIST0 + sizeof(uint32_t) * (1u + h->m0));
    h->codec = p->codec;
    h->vbytes = p->codec ? fanns_codec_code_size(p->codec) : (size_t)p->dim * sizeof(float);
    h->codec_build_bits = p->codec && fanns_codec_kind(p->codec) == FANNS_CODEC_SQ8 ? 32u : 0u;
    /* Codes are small: round to 16 bytes, not a whole line (an int8 384-d code plus a 16-link
     * level 0 is 8 lines instead of 9 rounded to 64). */
    h->stride = h->hdr + (p->codec ? (h->vbytes + 15u) & ~(size_t)15u : round64(h->vbytes));
    h->chunk_bytes = FLAGS_BYTES + (size_t)CHUNK_N * h->stride;
    h->mult = 1.0 / log((double)p->m);
    h->kern = pick_kernel(p->metric);
    h->rng = p->seed;
    /* Pages of the table are zero until touched, so the reservation costs no memory. */
    h->chunks = calloc(NCHUNKS_MAX, sizeof *h->chunks);
    if (!h->chunks) goto nomem;
    pthread_mutex_init(&h->glob, NULL);
    pthread_mutex_init(&h->grow, NULL);
    for (unsigned i = 0; i < N_STRIPES; i++) pthread_mutex_init(&h->stripes[i], NULL);
    return h;
nomem:
    free(h);
    *rc = fanns_err_set(err, FANNS_ENOMEM, NULL, "hnsw: out of memory");
    return NULL;
}

int fanns_hnsw_new(const fanns_hnsw_params_t *p, fanns_hnsw_t **out, fanns_err_t *err) {
    int rc;
    *out = hnsw_alloc(p, err, &rc);
    return rc;
}

void fanns_hnsw_free(fanns_hnsw_t *h) {
    if (!h) return;
    for (uint32_t ci = 0; ci < h->nchunks_hi; ci++) {
        uint8_t *c = h->chunks[ci];
        if (!c) continue;
        for (uint32_t i = 0; i < CHUNK_N; i++) {
            if (!(c[i] & F_PRESENT)) continue;
            uint8_t *node = c + FLAGS_BYTES + (size_t)i * h->stride;
            uint32_t *up;
            memcpy(&up, node + OFF_UPPER, sizeof up);
            free(up);
        }
        fanns_mem_free(c, h->chunk_bytes);
    }
    free(h->chunks);
    pthread_mutex_destroy(&h->glob);
    pthread_mutex_destroy(&h->grow);
    for (unsigned i = 0; i < N_STRIPES; i++) pthread_mutex_destroy(&h->stripes[i]);
    free(h);
}

/* ---- check ---- */

int fanns_hnsw_check(const fanns_hnsw_t *h, fanns_err_t *err) {
    uint32_t ep;
    int top;
    ep_get(h, &ep, &top);
    size_t nslots = (size_t)h->nchunks_hi << CHUNK_BITS;
    size_t live = 0, present = 0;
    uint32_t *seen = NULL, *queue = NULL;
    int rc = 0;
    for (size_t off = 0; off < nslots; off++) {
        uint8_t f = get_flags(h, (uint32_t)off);
        if (!(f & F_PRESENT)) continue;
        present++;
        if (!(f & F_DELETED)) live++;
        uint8_t *node = node_at(h, (uint32_t)off);
        int L = level_of(node);
        if (L > top) return fanns_err_set(err, FANNS_ECORRUPT, NULL, "hnsw: node %zu level %d above top %d", off, L, top);
        for (int l = 0; l <= L; l++) {
            uint32_t *lst = list_of(h, node, l);
            if (lst[0] > cap_of(h, l))
                return fanns_err_set(err, FANNS_ECORRUPT, NULL, "hnsw: node %zu level %d has %u links", off, l, lst[0]);
            for (uint32_t i = 0; i < lst[0]; i++) {
                uint32_t t = lst[1 + i];
                if (t == off)
                    return fanns_err_set(err, FANNS_ECORRUPT, NULL, "hnsw: node %zu links to itself on level %d", off, l);
                if (t >= nslots || !(get_flags(h, t) & F_PRESENT))
                    return fanns_err_set(err, FANNS_ECORRUPT, NULL, "hnsw: node %zu links to missing %u", off, t);
                if (level_of(node_at(h, t)) < l)
                    return fanns_err_set(err, FANNS_ECORRUPT, NULL, "hnsw: node %zu links on level %d to %u below it",
                                         off, l, t);
                for (uint32_t j = 0; j < i; j++)
                    if (lst[1 + j] == t)
                        return fanns_err_set(err, FANNS_ECORRUPT, NULL, "hnsw: node %zu links twice to %u", off, t);
            }
        }
    }
    if (present != __atomic_load_n(&h->npresent, __ATOMIC_RELAXED))
        return fanns_err_set(err, FANNS_ECORRUPT, NULL, "hnsw: %zu nodes present, counter says %zu", present,
                             h->npresent);
    if (present == 0) return top < 0 ? 0 : fanns_err_set(err, FANNS_ECORRUPT, NULL, "hnsw: empty with an entry point");
    if (top < 0 || ep >= nslots || !(get_flags(h, ep) & F_PRESENT) || level_of(node_at(h, ep)) != top)
        return fanns_err_set(err, FANNS_ECORRUPT, NULL, "hnsw: bad entry point %u (top level %d)", ep, top);
    /* In-degree counters (used to keep nodes reachable) must match the lists. */
    queue = calloc(nslots, sizeof *queue);
    if (!queue) return fanns_err_set(err, FANNS_ENOMEM, NULL, "hnsw: out of memory");
    for (size_t off = 0; off < nslots; off++) {
        if (!(get_flags(h, (uint32_t)off) & F_PRESENT)) continue;
        uint32_t *lst = list_of(h, node_at(h, (uint32_t)off), 0);
        for (uint32_t i = 0; i < lst[0]; i++) queue[lst[1 + i]]++;
    }
    for (size_t off = 0; off < nslots; off++) {
        if (!(get_flags(h, (uint32_t)off) & F_PRESENT)) continue;
        uint32_t have = *indeg_of(h, (uint32_t)off);
        if (have != queue[off]) {
            rc = fanns_err_set(err, FANNS_ECORRUPT, NULL, "hnsw: node %zu in-degree %u, counter says %u", off,
                               queue[off], have);
            goto out;
        }
    }
    /* BFS on level 0 from the entry point, through deleted nodes too. */
    seen = calloc((nslots + 31) / 32, sizeof *seen);
    if (!seen) {
        rc = fanns_err_set(err, FANNS_ENOMEM, NULL, "hnsw: out of memory");
        goto out;
    }
    size_t qh = 0, qt = 0, reached = 0;
    queue[qt++] = ep;
    seen[ep / 32] |= 1u << (ep % 32);
    while (qh < qt) {
        uint32_t cur = queue[qh++];
        if (!(get_flags(h, cur) & F_DELETED)) reached++;
        uint32_t *lst = list_of(h, node_at(h, cur), 0);
        for (uint32_t i = 0; i < lst[0]; i++) {
            uint32_t t = lst[1 + i];
            if (seen[t / 32] & (1u << (t % 32))) continue;
            seen[t / 32] |= 1u << (t % 32);
            queue[qt++] = t;
        }
    }
    if (reached != live)
        rc = fanns_err_set(err, FANNS_ECORRUPT, NULL, "hnsw: %zu of %zu live nodes unreachable from the entry point",
                           live - reached, live);
out:
    free(seen);
    free(queue);
    return rc;
}

/* ---- persistence ---- */

#define FILE_MAGIC "FANNSHNW"
#define FILE_VERSION 1u

/* A 64-bit checksum: four FNV-1a style lanes over 64-bit little-endian words, mixed at the
 * end; fed in pieces of any size. */
typedef struct hasher {
    uint64_t lane[4];
    uint8_t buf[32];
    size_t nbuf;
    uint64_t total;
} hasher_t;

#define FNV_PRIME 0x100000001b3ull

static void hash_init(hasher_t *hs) {
    for (int i = 0; i < 4; i++) hs->lane[i] = 0xcbf29ce484222325ull ^ (uint64_t)(i + 1) * 0x9E3779B97F4A7C15ull;
    hs->nbuf = 0;
    hs->total = 0;
}

static inline void hash_block(hasher_t *hs, const uint8_t *p) {
    for (int i = 0; i < 4; i++) {
        uint64_t w;
        memcpy(&w, p + 8 * i, 8);
        hs->lane[i] = (hs->lane[i] ^ w) * FNV_PRIME;
        hs->lane[i] ^= hs->lane[i] >> 29;
    }
}

static void hash_feed(hasher_t *hs, const void *data, size_t n) {
    const uint8_t *p = data;
    hs->total += n;
    if (hs->nbuf) {
        size_t t = 32 - hs->nbuf < n ? 32 - hs->nbuf : n;
        memcpy(hs->buf + hs->nbuf, p, t);
        hs->nbuf += t;
        p += t;
        n -= t;
        if (hs->nbuf < 32) return;
        hash_block(hs, hs->buf);
        hs->nbuf = 0;
    }
    for (; n >= 32; p += 32, n -= 32) hash_block(hs, p);
    memcpy(hs->buf, p, n);
    hs->nbuf = n;
}

static uint64_t hash_final(hasher_t *hs) {
    uint64_t h = hs->total * FNV_PRIME;
    for (size_t i = 0; i < hs->nbuf; i++) h = (h ^ hs->buf[i]) * FNV_PRIME;
    for (int i = 0; i < 4; i++) {
        h = (h ^ hs->lane[i]) * FNV_PRIME;
        h ^= h >> 32;
    }
    return h;
}

typedef struct file_header {
    char magic[8];
    uint32_t version, dim, metric, m, ef_construct, entry;
    int32_t top;
    uint32_t pad;
    uint64_t seed, stamp, nslots, npresent, ndeleted;
} file_header_t;

typedef struct wfile {
    FILE *f;
    hasher_t hs;
    bool bad;
} wfile_t;

static void wput(wfile_t *w, const void *p, size_t n) {
    if (w->bad || n == 0) return;
    hash_feed(&w->hs, p, n);
    if (fwrite(p, 1, n, w->f) != n) w->bad = true;
}

/* The header word naming the node vector format: 0 for float32, else kind << 24 | code size
 * (the codec's trained values are the caller's to match, see hnsw.h). */
static uint32_t codec_tag(const fanns_hnsw_t *h) {
    return h->codec ? (uint32_t)fanns_codec_kind(h->codec) << 24 | (uint32_t)h->vbytes : 0u;
}

int fanns_hnsw_save(const fanns_hnsw_t *h, const char *path, uint64_t stamp, fanns_err_t *err) {
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 5);
    if (!tmp) return fanns_err_set(err, FANNS_ENOMEM, NULL, "hnsw: out of memory");
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    wfile_t w = {.f = fopen(tmp, "wb")};
    if (!w.f) {
        int e = errno;
        free(tmp);
        return fanns_err_set(err, FANNS_EIO, NULL, "hnsw: cannot create %s.tmp: %s", path, strerror(e));
    }
    setvbuf(w.f, NULL, _IOFBF, 1 << 20);
    hash_init(&w.hs);
    uint32_t ep;
    int top;
    ep_get(h, &ep, &top);
    file_header_t fh;
    memset(&fh, 0, sizeof fh);
    memcpy(fh.magic, FILE_MAGIC, 8);
    fh.version = FILE_VERSION;
    fh.dim = h->p.dim;
    fh.pad = codec_tag(h);
    fh.metric = (uint32_t)h->p.metric;
    fh.m = h->p.m;
    fh.ef_construct = h->p.ef_construct;
    fh.entry = ep;
    fh.top = top;
    fh.seed = h->p.seed;
    fh.stamp = stamp;
    fh.nslots = (uint64_t)h->nchunks_hi << CHUNK_BITS;
    fh.npresent = h->npresent;
    fh.ndeleted = h->ndeleted;
    wput(&w, &fh, sizeof fh);
    for (uint64_t off = 0; off < fh.nslots; off++) {
        uint8_t f = get_flags(h, (uint32_t)off);
        if (!(f & F_PRESENT)) continue;
        uint8_t *node = node_at(h, (uint32_t)off);
        uint32_t o32 = (uint32_t)off;
        uint8_t meta[4] = {f, (uint8_t)level_of(node), 0, 0};
        wput(&w, &o32, sizeof o32);
        wput(&w, meta, sizeof meta);
        for (int l = 0; l <= level_of(node); l++) {
            uint32_t *lst = list_of(h, node, l);
            wput(&w, lst, (1u + lst[0]) * sizeof(uint32_t));
        }
        wput(&w, code_of(h, node), h->vbytes);
    }
    uint64_t sum = hash_final(&w.hs);
    if (!w.bad && fwrite(&sum, 1, sizeof sum, w.f) != sizeof sum) w.bad = true;
    if (!w.bad && fflush(w.f) != 0) w.bad = true;
    if (!w.bad && fsync(fileno(w.f)) != 0) w.bad = true;
    int e = errno;
    if (fclose(w.f) != 0) w.bad = true;
    if (!w.bad && rename(tmp, path) != 0) {
        e = errno;
        w.bad = true;
    }
    if (w.bad) {
        unlink(tmp);
        free(tmp);
        return fanns_err_set(err, FANNS_EIO, NULL, "hnsw: writing %s failed: %s", path, strerror(e));
    }
    free(tmp);
    /* Make the rename durable. */
    char *dir = strdup(path);
    if (dir) {
        char *slash = strrchr(dir, '/');
        const char *d = ".";
        if (slash) {
            *slash = 0;
            d = slash == dir ? "/" : dir;
        }
        int fd = open(d, O_RDONLY | O_DIRECTORY);
        if (fd >= 0) {
            (void)fsync(fd);
            close(fd);
        }
        free(dir);
    }
    return 0;
}

typedef struct rfile {
    FILE *f;
    hasher_t hs;
} rfile_t;

static bool rget(rfile_t *r, void *p, size_t n) {
    if (n == 0) return true;
    if (fread(p, 1, n, r->f) != n) return false;
    hash_feed(&r->hs, p, n);
    return true;
}

int fanns_hnsw_load(const char *path, const fanns_hnsw_params_t *p, fanns_hnsw_t **out, uint64_t *stamp,
                    fanns_err_t *err) {
    *out = NULL;
    rfile_t r = {.f = fopen(path, "rb")};
    if (!r.f) {
        if (errno == ENOENT) return fanns_err_set(err, FANNS_ENOTFOUND, NULL, "hnsw: no index file %s", path);
        return fanns_err_set(err, FANNS_EIO, NULL, "hnsw: cannot open %s: %s", path, strerror(errno));
    }
    setvbuf(r.f, NULL, _IOFBF, 1 << 20);
    hash_init(&r.hs);
    int rc = 0;
    fanns_hnsw_t *h = NULL;
    file_header_t fh;
    const char *why = NULL;
    if (!rget(&r, &fh, sizeof fh)) {
        why = "truncated header";
        goto corrupt;
    }
    if (memcmp(fh.magic, FILE_MAGIC, 8) != 0 || fh.version != FILE_VERSION) {
        why = "bad magic or version";
        goto corrupt;
    }
    if (fh.dim != p->dim || fh.metric != (uint32_t)p->metric || fh.m != p->m ||
        fh.ef_construct != (p->ef_construct < p->m ? p->m : p->ef_construct) || fh.seed != p->seed) {
        why = "parameters differ from the collection's";
        goto corrupt;
    }
    if (fh.nslots > ((uint64_t)1 << 32) || fh.nslots % CHUNK_N != 0 || fh.npresent > fh.nslots ||
        fh.ndeleted > fh.npresent || fh.top > MAX_LEVEL || fh.top < -1 || (fh.npresent == 0) != (fh.top == -1)) {
        why = "bad counts";
        goto corrupt;
    }
    h = hnsw_alloc(p, err, &rc);
    if (!h) goto fail;
    if (fh.pad != codec_tag(h)) {
        why = "vector codec differs from the collection's";
        goto corrupt;
    }
    uint64_t prev = 0;
    size_t ndel = 0;
    for (uint64_t i = 0; i < fh.npresent; i++) {
        uint32_t off;
        uint8_t meta[4];
        if (!rget(&r, &off, sizeof off) || !rget(&r, meta, sizeof meta)) {
            why = "truncated node";
            goto corrupt;
        }
        if ((i > 0 && off <= prev) || off >= fh.nslots || !(meta[0] & F_PRESENT) || (meta[0] & ~(F_PRESENT | F_DELETED)) ||
            meta[1] > fh.top) {
            why = "bad node header";
            goto corrupt;
        }
        prev = off;
        rc = ensure_chunk(h, off, err);
        if (rc) goto fail;
        uint8_t *node = node_at(h, off);
        int L = meta[1];
        node[OFF_LEVEL] = (uint8_t)L;
        if (L > 0) {
            size_t bytes = (size_t)L * (1u + h->p.m) * sizeof(uint32_t);
            uint32_t *up = calloc(1, bytes);
            if (!up) {
                rc = fanns_err_set(err, FANNS_ENOMEM, NULL, "hnsw: out of memory");
                goto fail;
            }
            memcpy(node + OFF_UPPER, &up, sizeof up);
            h->upper_bytes += bytes;
        }
        *flags_at(h, off) = meta[0];
        h->npresent++;
        if (meta[0] & F_DELETED) ndel++;
        for (int l = 0; l <= L; l++) {
            uint32_t *lst = list_of(h, node, l);
            if (!rget(&r, lst, sizeof(uint32_t))) {
                why = "truncated links";
                goto corrupt;
            }
            if (lst[0] > cap_of(h, l) || !rget(&r, lst + 1, lst[0] * sizeof(uint32_t))) {
                why = "bad links";
                goto corrupt;
            }
        }
        if (!rget(&r, (uint8_t *)code_of(h, node), h->vbytes)) {
            why = "truncated vector";
            goto corrupt;
        }
    }
    uint64_t want = hash_final(&r.hs), sum;
    if (fread(&sum, 1, sizeof sum, r.f) != sizeof sum) {
        why = "missing checksum";
        goto corrupt;
    }
    if (sum != want) {
        why = "checksum mismatch";
        goto corrupt;
    }
    if (fgetc(r.f) != EOF) {
        why = "trailing bytes";
        goto corrupt;
    }
    if (ndel != fh.ndeleted) {
        why = "deleted count mismatch";
        goto corrupt;
    }
    h->ndeleted = ndel;
    if (fh.top >= 0) {
        if (fh.entry >= fh.nslots || !(get_flags(h, fh.entry) & F_PRESENT) ||
            level_of(node_at(h, fh.entry)) != fh.top) {
            why = "bad entry point";
            goto corrupt;
        }
        ep_set(h, fh.entry, fh.top);
    }
    /* Links must point at present nodes of a sufficient level (the checksum guards against
     * damage, this against a file from a buggy writer). */
    for (uint64_t off = 0; off < fh.nslots; off++) {
        if (!(get_flags(h, (uint32_t)off) & F_PRESENT)) continue;
        uint8_t *node = node_at(h, (uint32_t)off);
        for (int l = 0; l <= level_of(node); l++) {
            uint32_t *lst = list_of(h, node, l);
            for (uint32_t i = 0; i < lst[0]; i++) {
                uint32_t t = lst[1 + i];
                if (t >= fh.nslots || t == off || !(get_flags(h, t) & F_PRESENT) || level_of(node_at(h, t)) < l) {
                    why = "link to a missing node";
                    goto corrupt;
                }
                if (l == 0) (*indeg_of(h, t))++;
            }
        }
    }
    fclose(r.f);
    if (stamp) *stamp = fh.stamp;
    *out = h;
    return 0;
corrupt:
    rc = fanns_err_set(err, FANNS_ECORRUPT, NULL, "hnsw: index file %s is corrupt: %s", path, why);
fail:
    if (ferror(r.f) && rc == FANNS_ECORRUPT)
        rc = fanns_err_set(err, FANNS_EIO, NULL, "hnsw: reading %s failed", path);
    fclose(r.f);
    fanns_hnsw_free(h);
    return rc;
}
