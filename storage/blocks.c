/*
 * blocks.c: block links, extra graph links among the points that share a frequent payload
 * value, so that a filtered walk on that value stays inside the matching points.
 *
 * Idea (Qdrant's payload-aware HNSW links, "filterable HNSW"): for every value of a keyword,
 * uuid, integer or bool payload index held by a "block" of points too large to be scanned
 * (at least full_scan_threshold's worth of vectors, and at least BLOCK_MIN points) and by at
 * most half of the collection, the indexer links the block's points among themselves
 * (fanns_hnsw_link_block: each point finds its nearest block members with a filtered walk and
 * keeps hnsw_config.payload_m of them by the HNSW heuristic, plus back links).  The links of
 * all blocks are published as one immutable adjacency in CSR form (fanns_hnsw_xlinks_t); a
 * two-hop filtered walk gathers a node's admissible block links along with its own list, so
 * at 1-50% selectivity it needs far fewer bridges through rejected nodes.
 *
 * Links are hints, never trusted for correctness: a walk tests every target against the
 * filter's bitset, which only holds current graph nodes (the planner clears stale slots).
 * So writes need no immediate maintenance: a point that changed value keeps stale links
 * (filtered out), a new member has none yet (it is still reached through the graph's own
 * lists).  A block is linked again when its size drifts by more than BLOCK_DRIFT from the
 * size it was linked at, and dropped when its value leaves the size range or its index is
 * dropped.  The work runs on the indexer thread once its queue is empty, one block at a time;
 * writes queued in any collection stop it between blocks, and a backlog of them inside a
 * block too (fanns_hnsw_link_block's stop callback); it resumes after them.  The graph does not change meanwhile (the indexer is
 * its only writer).
 *
 * Memory: the links live only in the published adjacency (one group per block in each
 * member's row, fanns_hnsw_xlinks_t); a block itself keeps only its key and sizes.
 * Relinking some blocks builds a new adjacency from the old one's kept groups and the new
 * links.
 *
 * Publication: c->blocks is replaced, never changed, under the write lock; readers borrow it
 * under the read lock for the duration of a search.  A new graph drops the blocks
 * (indexer.c, ensure_graph).
 *
 * File (<data>/index/c<cid>.blk, written with the graph under the graph's stamp; see
 * docs/storage-format.md): a missing, stale or corrupt file only means the blocks are linked
 * again.
 */
#include <stdio.h>
#include <stdlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "coll.h"
#include "log.h"

#define BLOCK_MIN 2000u          /* points; smaller match sets are scanned (75 x ef) */
#define BLOCK_DRIFT 10u          /* relink when the size moved by more than 1/10 */
#define BLOCK_EF 24u             /* beam width of the linking walks */
#define BLOCK_MAX 4096u          /* blocks per collection (group numbers of the links) */
#define BLK_MAGIC 0x324b4c42534e4e46ULL /* "FNNSBLK2" */
#define NO_GROUP UINT32_MAX

typedef struct blk {
    char *key;                   /* field '\0' value identity (fanns_pindex_values), owned */
    size_t klen;
    uint64_t card;               /* points of the value when linked */
    uint32_t n;                  /* members linked */
    uint64_t nlinks;
} blk_t;

struct fanns_blocks {
    uint32_t pm;
    blk_t *b;
    size_t n;
    uint32_t nn;                 /* rows of the adjacency (highest member + 1) */
    uint64_t total;              /* entries of links, group headers included */
    uint32_t *start, *links;     /* rows: per member of a block a header (block << 16 | count)
                                  * then its links */
    fanns_hnsw_xlinks_t xl;
    size_t bytes;
};

/* A block linked in this pass, before it joins an adjacency. */
typedef struct fresh {
    uint32_t n;
    uint32_t *members, *cnt, *links; /* links: n * 2pm, member i's at i * 2pm */
} fresh_t;

static void fresh_clear(fresh_t *f) {
    free(f->members);
    free(f->cnt);
    free(f->links);
    memset(f, 0, sizeof *f);
}

void fanns__blocks_free(fanns_blocks_t *bs) {
    if (!bs) return;
    for (size_t i = 0; i < bs->n; i++) free(bs->b[i].key);
    free(bs->b);
    free(bs->start);
    free(bs->links);
    free(bs);
}

const fanns_hnsw_xlinks_t *fanns__blocks_xlinks(const fanns_blocks_t *bs) {
    return bs && bs->xl.n ? &bs->xl : NULL;
}

void fanns__blocks_stats(const fanns_blocks_t *bs, uint64_t *nblocks, uint64_t *nlinks, uint64_t *bytes) {
    *nblocks = bs ? bs->n : 0;
    *nlinks = 0;
    for (size_t i = 0; bs && i < bs->n; i++) *nlinks += bs->b[i].nlinks;
    *bytes = bs ? bs->bytes : 0;
}

/* Sets bs's xlinks view and memory count once its arrays are filled. */
static void blocks_finish(fanns_blocks_t *bs) {
    bs->xl = (fanns_hnsw_xlinks_t){.start = bs->start, .links = bs->links, .n = bs->nn};
    bs->bytes = sizeof *bs + bs->n * sizeof(blk_t) + ((size_t)bs->nn + 1 + bs->total) * 4;
    for (size_t i = 0; i < bs->n; i++) bs->bytes += bs->b[i].klen + 1;
}

/* What the new structure's block i is made of: group old of cur (kept), or f (linked now). */
typedef struct src {
    uint32_t old;
    const fresh_t *f;
} src_t;

/* Builds the structure of blocks keys[i] (klen, card) from src[i] over cur's adjacency.
 * Returns NULL on ENOMEM. */
static fanns_blocks_t *blocks_assemble(const fanns_blocks_t *cur, uint32_t pm, size_t n, char *const *keys,
                                       const size_t *klens, const uint64_t *cards, const src_t *src) {
    fanns_blocks_t *bs = calloc(1, sizeof *bs);
    uint32_t *map = NULL, *fill = NULL;
    if (!bs) return NULL;
    bs->pm = pm;
    bs->b = calloc(n ? n : 1, sizeof(blk_t));
    map = malloc((cur && cur->n ? cur->n : 1) * sizeof(uint32_t)); /* old group -> new, or NO_GROUP */
    if (!bs->b || !map) goto fail;
    for (size_t g = 0; cur && g < cur->n; g++) map[g] = NO_GROUP;
    uint32_t nn = 0;
    bool any_old = false;
    for (size_t i = 0; i < n; i++) {
        blk_t *b = &bs->b[bs->n++];
        if (!(b->key = malloc(klens[i] + 1))) goto fail;
        memcpy(b->key, keys[i], klens[i] + 1);
        b->klen = klens[i];
        b->card = cards[i];
        if (src[i].f) {
            const fresh_t *f = src[i].f;
            b->n = f->n;
            for (uint32_t j = 0; j < f->n; j++) b->nlinks += f->cnt[j];
            if (f->n && f->members[f->n - 1] + 1 > nn) nn = f->members[f->n - 1] + 1;
        } else {
            const blk_t *o = &cur->b[src[i].old];
            b->n = o->n;
            b->nlinks = o->nlinks;
            map[src[i].old] = (uint32_t)i;
            any_old = true;
        }
    }
    if (any_old && cur->nn > nn) nn = cur->nn;
    bs->nn = nn;
    bs->start = calloc((size_t)nn + 1, sizeof(uint32_t));
    fill = calloc((size_t)nn + 1, sizeof(uint32_t));
    if (!bs->start || !fill) goto fail;
    /* Row sizes: kept groups of the old rows, then the new blocks' groups. */
    for (uint32_t o = 0; any_old && o < cur->nn; o++)
        for (uint32_t x = cur->start[o]; x < cur->start[o + 1]; x += 1 + (cur->links[x] & 0xffffu))
            if (map[cur->links[x] >> 16] != NO_GROUP) bs->start[o + 1] += 1 + (cur->links[x] & 0xffffu);
    for (size_t i = 0; i < n; i++)
        for (uint32_t j = 0; src[i].f && j < src[i].f->n; j++)
            if (src[i].f->cnt[j]) bs->start[src[i].f->members[j] + 1] += 1 + src[i].f->cnt[j];
    uint64_t total = 0;
    for (uint32_t o = 0; o < nn; o++) {
        total += bs->start[o + 1];
        if (total > UINT32_MAX) goto fail;
        bs->start[o + 1] = (uint32_t)total;
    }
    bs->total = total;
    if (!(bs->links = malloc((total ? total : 1) * sizeof(uint32_t)))) goto fail;
    for (uint32_t o = 0; any_old && o < cur->nn; o++)
        for (uint32_t x = cur->start[o]; x < cur->start[o + 1]; x += 1 + (cur->links[x] & 0xffffu)) {
            uint32_t g = map[cur->links[x] >> 16], cnt = cur->links[x] & 0xffffu;
            if (g == NO_GROUP) continue;
            uint32_t *at = bs->links + bs->start[o] + fill[o];
            at[0] = g << 16 | cnt;
            memcpy(at + 1, cur->links + x + 1, cnt * sizeof(uint32_t));
            fill[o] += 1 + cnt;
        }
    for (size_t i = 0; i < n; i++) {
        const fresh_t *f = src[i].f;
        for (uint32_t j = 0; f && j < f->n; j++) {
            uint32_t o = f->members[j];
            if (!f->cnt[j]) continue;
            uint32_t *at = bs->links + bs->start[o] + fill[o];
            at[0] = (uint32_t)i << 16 | f->cnt[j];
            memcpy(at + 1, f->links + (size_t)j * 2u * pm, f->cnt[j] * sizeof(uint32_t));
            fill[o] += 1 + f->cnt[j];
        }
    }
    free(map);
    free(fill);
    blocks_finish(bs);
    return bs;
fail:
    free(map);
    free(fill);
    fanns__blocks_free(bs);
    return NULL;
}

/* ---- deciding what to link (read lock held) ---- */

typedef struct want {
    char *key;
    size_t klen;
    uint64_t card;
    roaring_bitmap_t *bm;        /* members to link (NULL: the published block is kept) */
    uint32_t old;                /* the published block of the same key, or NO_GROUP */
    fresh_t f;                   /* its new links, once linked */
} want_t;

typedef struct plan {
    const fanns_coll_t *c;
    const fanns_blocks_t *cur;
    want_t *w;
    size_t n, cap;
    size_t relink;               /* entries with bm */
    int rc;
} plan_t;

static uint32_t find_blk(const fanns_blocks_t *bs, const char *key, size_t klen) {
    for (size_t i = 0; bs && i < bs->n; i++)
        if (bs->b[i].klen == klen && memcmp(bs->b[i].key, key, klen) == 0) return (uint32_t)i;
    return NO_GROUP;
}

static int plan_value(void *ctx, const char *field, const char *key, size_t keylen, const roaring_bitmap_t *bm) {
    plan_t *p = ctx;
    size_t fl = strlen(field), klen = fl + 1 + keylen;
    if (p->n >= BLOCK_MAX) return 0; /* the rest of the values go unlinked */
    if (p->n == p->cap) {
        size_t nc = p->cap ? 2 * p->cap : 16;
        want_t *w = realloc(p->w, nc * sizeof *w);
        if (!w) return FANNS_ENOMEM;
        p->w = w;
        p->cap = nc;
    }
    want_t *w = &p->w[p->n];
    memset(w, 0, sizeof *w);
    if (!(w->key = malloc(klen + 1))) return FANNS_ENOMEM;
    memcpy(w->key, field, fl + 1);
    memcpy(w->key + fl + 1, key, keylen);
    w->key[klen] = 0;
    w->klen = klen;
    w->card = roaring_bitmap_get_cardinality(bm);
    w->old = find_blk(p->cur, w->key, klen);
    p->n++;
    if (w->old != NO_GROUP) {
        uint64_t was = p->cur->b[w->old].card;
        if (w->card * BLOCK_DRIFT <= was * (BLOCK_DRIFT + 1) && w->card * BLOCK_DRIFT >= was * (BLOCK_DRIFT - 1)) return 0;
    }
    w->old = NO_GROUP;
    if (!(w->bm = roaring_bitmap_copy(bm))) return FANNS_ENOMEM;
    /* Only current graph nodes may be linked. */
    const fanns_coll_t *c = p->c;
    for (uint32_t i = 0; i < c->nstale; i++) roaring_bitmap_remove(w->bm, c->stale_list[i]);
    p->relink++;
    return 0;
}

static void plan_free(plan_t *p) {
    for (size_t i = 0; i < p->n; i++) {
        free(p->w[i].key);
        if (p->w[i].bm) roaring_bitmap_free(p->w[i].bm);
        fresh_clear(&p->w[i].f);
    }
    free(p->w);
}

/* True when the indexer has better things to do: stopping, this collection gone or rebuilt,
 * or at least min_queue slots queued in some collection (they keep it yellow and are scored
 * exactly until indexed).  Between blocks any queued write counts (min_queue 1); inside one
 * only a backlog (BLOCK_BACKLOG), so that a trickle of writes cannot starve the linking. */
#define BLOCK_BACKLOG 1024u
static bool must_yield(fanns_db_t *db, fanns_coll_t *c, size_t min_queue) {
    pthread_mutex_lock(&db->imu);
    bool stop = db->istop;
    pthread_mutex_unlock(&db->imu);
    pthread_rwlock_rdlock(&c->lock);
    stop = stop || c->dropped || c->reindex;
    pthread_rwlock_unlock(&c->lock);
    if (stop) return true;
    /* The collections are held by references, and their locks taken with map_lock released:
     * the writer takes map_lock while holding collection locks. */
    pthread_rwlock_rdlock(&db->map_lock);
    size_t n = db->ncolls;
    fanns_coll_t **cs = malloc((n ? n : 1) * sizeof(*cs));
    for (size_t i = 0; cs && i < n; i++) {
        cs[i] = db->colls[i];
        atomic_fetch_add(&cs[i]->refs, 1);
    }
    pthread_rwlock_unlock(&db->map_lock);
    for (size_t i = 0; cs && i < n; i++) {
        if (!stop) {
            pthread_rwlock_rdlock(&cs[i]->lock);
            stop = cs[i]->iq_len >= min_queue;
            pthread_rwlock_unlock(&cs[i]->lock);
        }
        fanns_coll_release(cs[i]);
    }
    free(cs);
    return stop;
}

typedef struct yield_ctx {
    fanns_db_t *db;
    fanns_coll_t *c;
} yield_ctx_t;

static bool yield_cb(void *ctx) {
    yield_ctx_t *y = ctx;
    return must_yield(y->db, y->c, BLOCK_BACKLOG);
}

/* Links w's members into w->f.  Returns 0, FANNS_EBUSY (given up for queued writes) or an
 * error. */
static int link_one(fanns_db_t *db, fanns_coll_t *c, fanns_hnsw_t *h, uint32_t pm, const fanns_hnsw_xlinks_t *xl,
                    want_t *w) {
    fanns_err_t err;
    fresh_t *f = &w->f;
    uint64_t n = roaring_bitmap_get_cardinality(w->bm);
    uint32_t nbits = n ? roaring_bitmap_maximum(w->bm) + 1 : 0;
    uint64_t *bits = calloc(((size_t)nbits + 63) / 64 + 1, 8);
    f->members = malloc((n ? n : 1) * sizeof(uint32_t));
    f->cnt = malloc((n ? n : 1) * sizeof(uint32_t));
    f->links = malloc((n ? n : 1) * 2u * pm * sizeof(uint32_t));
    int rc = FANNS_ENOMEM;
    if (!bits || !f->members || !f->cnt || !f->links) goto fail;
    roaring_bitmap_to_uint32_array(w->bm, f->members);
    for (uint64_t i = 0; i < n; i++) bits[f->members[i] >> 6] |= 1ULL << (f->members[i] & 63);
    f->n = (uint32_t)n;
    /* A large block takes minutes: a backlog of writes queued meanwhile stops it (it is
     * linked again once they are indexed). */
    yield_ctx_t y = {db, c};
    rc = fanns_hnsw_link_block(h, f->members, n, bits, nbits, pm, BLOCK_EF, xl, db->index_threads, yield_cb, &y,
                               f->links, f->cnt, &err);
    if (rc) {
        if (rc != FANNS_EBUSY) fanns_warn("linking block %s of %s: %s", w->key, c->name, err.msg);
        goto fail;
    }
    free(bits);
    return 0;
fail:
    free(bits);
    fresh_clear(f);
    return rc;
}

void fanns__blocks_work(fanns_db_t *db, fanns_coll_t *c) {
    plan_t p = {.c = c};
    pthread_rwlock_rdlock(&c->lock);
    fanns_hnsw_t *h = c->hnsw;
    uint32_t pm = c->payload_m;
    fanns_blocks_t *cur = c->blocks; /* replaced only by this thread */
    /* Planned again only after payloads, payload indexes or the config changed. */
    uint64_t pgen = c->pgen;
    bool go = h && !c->dropped && !c->reindex && c->iq_len == 0 && pgen != __atomic_load_n(&c->blocks_pgen, __ATOMIC_RELAXED);
    if (go && pm) {
        p.cur = cur && cur->pm == pm ? cur : NULL;
        uint64_t scan_pts = c->full_scan_kb * 1024 / ((uint64_t)c->dim * 4);
        uint64_t min = scan_pts > BLOCK_MIN ? scan_pts : BLOCK_MIN, max = c->count / 2;
        if (min <= max) p.rc = fanns_pindex_values(c->pindex, min, max, plan_value, &p);
    }
    pthread_rwlock_unlock(&c->lock);
    if (!go || p.rc) {
        if (p.rc) {
            /* Not retried before the next payload change: the graph works without them. */
            fanns_warn("planning the block links of %s: %s", c->name, fanns_err_name(p.rc));
            __atomic_store_n(&c->blocks_pgen, pgen, __ATOMIC_RELAXED);
        }
        plan_free(&p);
        return;
    }
    /* Nothing to do when every wanted block is current and none is to go. */
    size_t have = cur ? cur->n : 0;
    if (p.relink == 0 && p.n == have) {
        __atomic_store_n(&c->blocks_pgen, pgen, __ATOMIC_RELAXED);
        plan_free(&p);
        return;
    }
    const fanns_hnsw_xlinks_t *xl = p.cur ? fanns__blocks_xlinks(p.cur) : NULL;
    size_t linked = 0, linked_pts = 0, nb = 0;
    bool yielded = false;
    char **keys = malloc((p.n ? p.n : 1) * sizeof(char *));
    size_t *klens = malloc((p.n ? p.n : 1) * sizeof(size_t));
    uint64_t *cards = malloc((p.n ? p.n : 1) * sizeof(uint64_t));
    src_t *src = malloc((p.n ? p.n : 1) * sizeof(src_t));
    fanns_blocks_t *next = NULL;
    if (!keys || !klens || !cards || !src) goto done;
    for (size_t i = 0; i < p.n; i++) {
        want_t *w = &p.w[i];
        if (w->bm) {
            if (yielded || (linked > 0 && must_yield(db, c, 1))) {
                yielded = true;
                continue;
            }
            int lrc = link_one(db, c, h, pm, xl, w);
            if (lrc == FANNS_EBUSY) yielded = true;
            if (lrc) continue;
            linked++;
            linked_pts += w->f.n;
            src[nb] = (src_t){.old = NO_GROUP, .f = &w->f};
        } else {
            src[nb] = (src_t){.old = w->old, .f = NULL};
        }
        keys[nb] = w->key;
        klens[nb] = w->klen;
        cards[nb] = w->card;
        nb++;
    }
    if (linked == 0 && nb == have) goto done; /* nothing new (linking failed or yielded) */
    if (!(next = blocks_assemble(p.cur, pm, nb, keys, klens, cards, src))) {
        fanns_warn("block links of %s: out of memory", c->name);
        goto done;
    }
    pthread_rwlock_wrlock(&c->lock);
    bool ok = c->hnsw == h && !c->dropped && c->blocks == cur;
    if (ok) {
        c->blocks = next;
        c->index_ops_since_save += linked_pts ? linked_pts : 1;
    }
    pthread_rwlock_unlock(&c->lock);
    if (ok) {
        /* Nobody reads cur any more (the write lock was taken after every reader of it). */
        fanns__blocks_free(cur);
        uint64_t nbk, nl, by;
        fanns__blocks_stats(next, &nbk, &nl, &by);
        fanns_info("block links of %s: %zu blocks linked (%zu points); %llu blocks, %llu links, %llu KB%s", c->name,
                   linked, linked_pts, (unsigned long long)nbk, (unsigned long long)nl, (unsigned long long)(by >> 10),
                   yielded ? "; the rest after the queued writes" : "");
        next = NULL;
    }
done:
    fanns__blocks_free(next);
    free(keys);
    free(klens);
    free(cards);
    free(src);
    plan_free(&p);
    if (yielded) fanns__indexer_kick(db);
    else __atomic_store_n(&c->blocks_pgen, pgen, __ATOMIC_RELAXED);
}

/* ---- file ---- */

int fanns__blocks_save(const fanns_blocks_t *bs, const char *path, uint64_t stamp) {
    if (!bs) {
        unlink(path);
        return 0;
    }
    char tmp[1100];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return FANNS_EIO;
    uint64_t hdr[6] = {BLK_MAGIC, stamp, bs->pm, bs->n, bs->nn, bs->total};
    uint64_t h = fanns__fnv1a(0xcbf29ce484222325ULL, hdr, sizeof hdr);
    bool ok = fwrite(hdr, sizeof hdr, 1, f) == 1;
    static const uint8_t pad[8];
    for (size_t i = 0; i < bs->n && ok; i++) {
        const blk_t *b = &bs->b[i];
        uint64_t bh[4] = {b->klen, b->card, b->n, b->nlinks};
        size_t kp = (8 - b->klen % 8) % 8;
        h = fanns__fnv1a(fanns__fnv1a(fanns__fnv1a(h, bh, sizeof bh), b->key, b->klen), pad, kp);
        ok = fwrite(bh, sizeof bh, 1, f) == 1 && fwrite(b->key, 1, b->klen, f) == b->klen && fwrite(pad, 1, kp, f) == kp;
    }
    size_t nst = (size_t)bs->nn + 1;
    h = fanns__fnv1a(h, bs->start, nst * 4);
    h = fanns__fnv1a(h, bs->links, bs->total * 4);
    ok = ok && fwrite(bs->start, 4, nst, f) == nst &&
         fwrite(bs->links, 4, bs->total, f) == bs->total && fwrite(&h, 8, 1, f) == 1 && fflush(f) == 0 &&
         fsync(fileno(f)) == 0;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return FANNS_EIO;
    }
    return 0;
}

/* The walk trusts every link to name a node of the graph, and every row to parse. */
static bool blocks_valid(const fanns_blocks_t *bs, uint32_t nslots, const fanns_hnsw_t *h) {
    if (bs->start[0] != 0 || bs->start[bs->nn] != bs->total || bs->nn > nslots) return false;
    for (uint32_t o = 0; o < bs->nn; o++) {
        if (bs->start[o + 1] < bs->start[o]) return false;
        for (uint32_t x = bs->start[o]; x < bs->start[o + 1];) {
            uint32_t g = bs->links[x] >> 16, cnt = bs->links[x] & 0xffffu;
            if (g >= bs->n || cnt == 0 || cnt > 2u * bs->pm || (uint64_t)x + 1 + cnt > bs->start[o + 1]) return false;
            for (uint32_t t = x + 1; t <= x + cnt; t++)
                if (bs->links[t] >= nslots || bs->links[t] == o || !fanns_hnsw_has_node(h, bs->links[t])) return false;
            x += 1 + cnt;
        }
    }
    return true;
}

int fanns__blocks_load(const char *path, uint64_t stamp, uint32_t pm, uint32_t nslots, const fanns_hnsw_t *h,
                       fanns_blocks_t **out) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return FANNS_ENOTFOUND;
    uint64_t hdr[6], hsum, want;
    int rc = FANNS_ECORRUPT;
    fanns_blocks_t *bs = calloc(1, sizeof *bs);
    if (!bs) {
        fclose(f);
        return FANNS_ENOMEM;
    }
    if (fread(hdr, sizeof hdr, 1, f) != 1 || hdr[0] != BLK_MAGIC || hdr[1] != stamp || hdr[2] != pm || pm == 0 ||
        hdr[3] > BLOCK_MAX || hdr[4] > nslots || hdr[5] > UINT32_MAX)
        goto fail;
    want = fanns__fnv1a(0xcbf29ce484222325ULL, hdr, sizeof hdr);
    bs->pm = pm;
    bs->nn = (uint32_t)hdr[4];
    bs->total = hdr[5];
    bs->b = calloc(hdr[3] ? hdr[3] : 1, sizeof(blk_t));
    bs->start = malloc(((size_t)bs->nn + 1) * 4);
    bs->links = malloc((bs->total ? bs->total : 1) * 4);
    if (!bs->b || !bs->start || !bs->links) {
        rc = FANNS_ENOMEM;
        goto fail;
    }
    for (uint64_t i = 0; i < hdr[3]; i++) {
        blk_t *b = &bs->b[bs->n++];
        uint64_t bh[4];
        uint8_t pad[8];
        if (fread(bh, sizeof bh, 1, f) != 1 || bh[0] == 0 || bh[0] > 65536 || bh[2] > nslots) goto fail;
        size_t kp = (8 - bh[0] % 8) % 8;
        b->klen = bh[0];
        b->card = bh[1];
        b->n = (uint32_t)bh[2];
        b->nlinks = bh[3];
        if (!(b->key = malloc(b->klen + 1))) {
            rc = FANNS_ENOMEM;
            goto fail;
        }
        if (fread(b->key, 1, b->klen, f) != b->klen || fread(pad, 1, kp, f) != kp) goto fail;
        b->key[b->klen] = 0;
        want = fanns__fnv1a(fanns__fnv1a(fanns__fnv1a(want, bh, sizeof bh), b->key, b->klen), pad, kp);
    }
    size_t nst = (size_t)bs->nn + 1;
    if (fread(bs->start, 4, nst, f) != nst ||
        fread(bs->links, 4, bs->total, f) != bs->total || fread(&hsum, 8, 1, f) != 1 || fgetc(f) != EOF)
        goto fail;
    want = fanns__fnv1a(want, bs->start, nst * 4);
    want = fanns__fnv1a(want, bs->links, bs->total * 4);
    if (hsum != want || !blocks_valid(bs, nslots, h)) goto fail;
    fclose(f);
    blocks_finish(bs);
    *out = bs;
    return 0;
fail:
    fclose(f);
    fanns__blocks_free(bs);
    return rc;
}
