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
 * dropped.  The work runs on the indexer thread once its queue is empty, one block at a time
 * and yielding to queued writes between blocks; the graph does not change meanwhile (the
 * indexer is its only writer).
 *
 * Publication: c->blocks is replaced, never changed, under the write lock; readers borrow it
 * under the read lock for the duration of a search.  Unchanged blocks move from the old
 * structure to the new one.  A new graph drops the blocks (indexer.c, ensure_graph).
 *
 * File (<data>/index/c<cid>.blk, written with the graph under the graph's stamp): magic,
 * stamp, pm, nblocks, then per block klen, card, n, key bytes (padded to 8), members[n],
 * cnt[n], links[n * 2pm] (uint32), and an fnv1a of everything before.  A missing, stale or
 * corrupt file only means the blocks are linked again.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "coll.h"
#include "log.h"

#define BLOCK_MIN 2000u          /* points; smaller match sets are scanned (75 x ef) */
#define BLOCK_DRIFT 10u          /* relink when the size moved by more than 1/10 */
#define BLOCK_EF 24u             /* beam width of the linking walks */
#define BLK_MAGIC 0x314b4c42534e4e46ULL /* "FNNSBLK1" */

typedef struct blk {
    char *key;                   /* field '\0' value identity (fanns_pindex_values), owned */
    size_t klen;
    uint64_t card;               /* points of the value when linked */
    uint32_t n;                  /* members */
    uint32_t *members;           /* sorted offsets */
    uint32_t *cnt;               /* links per member */
    uint32_t *links;             /* n * 2pm; member i's links start at i * 2pm */
} blk_t;

struct fanns_blocks {
    uint32_t pm;
    blk_t *b;
    size_t n;
    uint32_t *start, *links;     /* CSR over offsets: the union of every block's links */
    fanns_hnsw_xlinks_t xl;
    size_t bytes;
};

static void blk_clear(blk_t *b) {
    free(b->key);
    free(b->members);
    free(b->cnt);
    free(b->links);
    memset(b, 0, sizeof *b);
}

void fanns__blocks_free(fanns_blocks_t *bs) {
    if (!bs) return;
    for (size_t i = 0; i < bs->n; i++) blk_clear(&bs->b[i]);
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
    *nlinks = bs && bs->xl.n ? bs->start[bs->xl.n] : 0;
    *bytes = bs ? bs->bytes : 0;
}

/* Builds bs's CSR from its blocks.  Returns 0 or FANNS_ENOMEM. */
static int blocks_index(fanns_blocks_t *bs) {
    uint32_t n = 0;
    size_t total = 0, cap = 2u * bs->pm;
    for (size_t i = 0; i < bs->n; i++) {
        const blk_t *b = &bs->b[i];
        if (b->n && b->members[b->n - 1] + 1 > n) n = b->members[b->n - 1] + 1;
        for (uint32_t j = 0; j < b->n; j++) total += b->cnt[j];
    }
    bs->start = calloc((size_t)n + 1, sizeof(uint32_t));
    bs->links = malloc((total ? total : 1) * sizeof(uint32_t));
    uint32_t *fill = calloc((size_t)n + 1, sizeof(uint32_t));
    if (!bs->start || !bs->links || !fill || total > UINT32_MAX) {
        free(fill);
        return FANNS_ENOMEM;
    }
    for (size_t i = 0; i < bs->n; i++)
        for (uint32_t j = 0; j < bs->b[i].n; j++) bs->start[bs->b[i].members[j] + 1] += bs->b[i].cnt[j];
    for (uint32_t o = 0; o < n; o++) bs->start[o + 1] += bs->start[o];
    for (size_t i = 0; i < bs->n; i++) {
        const blk_t *b = &bs->b[i];
        for (uint32_t j = 0; j < b->n; j++) {
            uint32_t o = b->members[j];
            memcpy(bs->links + bs->start[o] + fill[o], b->links + (size_t)j * cap, b->cnt[j] * sizeof(uint32_t));
            fill[o] += b->cnt[j];
        }
    }
    free(fill);
    bs->xl = (fanns_hnsw_xlinks_t){.start = bs->start, .links = bs->links, .n = n};
    bs->bytes = sizeof *bs + bs->n * sizeof(blk_t) + ((size_t)n + 1 + total) * 4;
    for (size_t i = 0; i < bs->n; i++) bs->bytes += bs->b[i].klen + 1 + (size_t)bs->b[i].n * (2 + cap) * 4;
    return 0;
}

/* ---- deciding what to link (read lock held) ---- */

typedef struct want {
    char *key;
    size_t klen;
    uint64_t card;
    roaring_bitmap_t *bm;        /* members to link (NULL: the old block is kept) */
    const blk_t *old;            /* the published block of the same key, or NULL */
} want_t;

typedef struct plan {
    const fanns_coll_t *c;
    const fanns_blocks_t *cur;
    want_t *w;
    size_t n, cap;
    size_t relink;               /* entries with bm */
    int rc;
} plan_t;

static const blk_t *find_blk(const fanns_blocks_t *bs, const char *key, size_t klen) {
    for (size_t i = 0; bs && i < bs->n; i++)
        if (bs->b[i].klen == klen && memcmp(bs->b[i].key, key, klen) == 0) return &bs->b[i];
    return NULL;
}

static int plan_value(void *ctx, const char *field, const char *key, size_t keylen, const roaring_bitmap_t *bm) {
    plan_t *p = ctx;
    size_t fl = strlen(field), klen = fl + 1 + keylen;
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
    w->old = p->cur && p->cur->pm ? find_blk(p->cur, w->key, klen) : NULL;
    p->n++;
    if (w->old && w->card * BLOCK_DRIFT <= w->old->card * (BLOCK_DRIFT + 1) &&
        w->card * BLOCK_DRIFT >= w->old->card * (BLOCK_DRIFT - 1))
        return 0;
    w->old = NULL;
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
    }
    free(p->w);
}

static bool must_yield(fanns_db_t *db, fanns_coll_t *c) {
    pthread_mutex_lock(&db->imu);
    bool stop = db->istop;
    pthread_mutex_unlock(&db->imu);
    pthread_rwlock_rdlock(&c->lock);
    stop = stop || c->iq_len > 0 || c->dropped || c->reindex;
    pthread_rwlock_unlock(&c->lock);
    return stop;
}

/* Links one block into b (members from w->bm).  Returns 0 or an error. */
static int link_one(fanns_db_t *db, fanns_coll_t *c, fanns_hnsw_t *h, uint32_t pm, const fanns_hnsw_xlinks_t *xl,
                    want_t *w, blk_t *b) {
    fanns_err_t err;
    uint64_t n = roaring_bitmap_get_cardinality(w->bm);
    uint32_t nbits = n ? roaring_bitmap_maximum(w->bm) + 1 : 0;
    uint64_t *bits = calloc(((size_t)nbits + 63) / 64 + 1, 8);
    memset(b, 0, sizeof *b);
    b->members = malloc((n ? n : 1) * sizeof(uint32_t));
    b->cnt = malloc((n ? n : 1) * sizeof(uint32_t));
    b->links = malloc((n ? n : 1) * 2u * pm * sizeof(uint32_t));
    int rc = FANNS_ENOMEM;
    if (!bits || !b->members || !b->cnt || !b->links) goto fail;
    roaring_bitmap_to_uint32_array(w->bm, b->members);
    for (uint64_t i = 0; i < n; i++) bits[b->members[i] >> 6] |= 1ULL << (b->members[i] & 63);
    b->n = (uint32_t)n;
    rc = fanns_hnsw_link_block(h, b->members, n, bits, nbits, pm, BLOCK_EF, xl, db->index_threads, b->links, b->cnt, &err);
    if (rc) {
        fanns_warn("linking block %s of %s: %s", w->key, c->name, err.msg);
        goto fail;
    }
    b->key = w->key;
    b->klen = w->klen;
    b->card = w->card;
    w->key = NULL;
    free(bits);
    return 0;
fail:
    free(bits);
    free(b->members);
    free(b->cnt);
    free(b->links);
    memset(b, 0, sizeof *b);
    return rc;
}

void fanns__blocks_work(fanns_db_t *db, fanns_coll_t *c) {
    plan_t p = {.c = c};
    pthread_rwlock_rdlock(&c->lock);
    fanns_hnsw_t *h = c->hnsw;
    /* Graphs over codes are walked with the widened beam, not two-hop (coll.c): no links. */
    uint32_t pm = c->gcodec ? 0 : c->payload_m;
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
    /* nb's blocks are either moved from cur (fresh[i] false: still cur's until published)
     * or linked now (owned by nb). */
    fanns_blocks_t *nb = calloc(1, sizeof *nb);
    bool *fresh = calloc(p.n ? p.n : 1, sizeof(bool)), *moved = calloc(have ? have : 1, sizeof(bool));
    if (!nb || !fresh || !moved || !(nb->b = calloc(p.n ? p.n : 1, sizeof(blk_t)))) {
        free(nb);
        free(fresh);
        free(moved);
        plan_free(&p);
        return;
    }
    nb->pm = pm;
    const fanns_hnsw_xlinks_t *xl = p.cur ? fanns__blocks_xlinks(p.cur) : NULL;
    size_t linked = 0, linked_pts = 0;
    bool yielded = false;
    for (size_t i = 0; i < p.n; i++) {
        want_t *w = &p.w[i];
        if (!w->bm) {
            moved[w->old - cur->b] = true;
            nb->b[nb->n++] = *w->old;
            continue;
        }
        if (yielded || (linked > 0 && must_yield(db, c))) {
            yielded = true;
            continue;
        }
        if (link_one(db, c, h, pm, xl, w, &nb->b[nb->n]) == 0) {
            linked_pts += nb->b[nb->n].n;
            fresh[nb->n++] = true;
            linked++;
        }
    }
    bool publish = (linked > 0 || nb->n != have) && blocks_index(nb) == 0;
    if (publish) {
        pthread_rwlock_wrlock(&c->lock);
        publish = c->hnsw == h && !c->dropped && c->blocks == cur;
        if (publish) {
            c->blocks = nb;
            c->index_ops_since_save += linked_pts ? linked_pts : 1;
        }
        pthread_rwlock_unlock(&c->lock);
    }
    if (!publish) {
        /* Nothing new, no memory, or the graph went away: the moved blocks stay cur's. */
        for (size_t i = 0; i < nb->n; i++)
            if (!fresh[i]) memset(&nb->b[i], 0, sizeof(blk_t));
        fanns__blocks_free(nb);
    } else {
        /* Nobody reads cur any more (the write lock was taken after every reader of it). */
        for (size_t i = 0; i < have; i++)
            if (moved[i]) memset(&cur->b[i], 0, sizeof(blk_t));
        fanns__blocks_free(cur);
        uint64_t nbk, nl, by;
        fanns__blocks_stats(nb, &nbk, &nl, &by);
        fanns_info("block links of %s: %zu blocks linked (%zu points); %llu blocks, %llu links, %llu KB%s", c->name,
                   linked, linked_pts, (unsigned long long)nbk, (unsigned long long)nl, (unsigned long long)(by >> 10),
                   yielded ? "; the rest after the queued writes" : "");
    }
    free(fresh);
    free(moved);
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
    uint64_t hdr[4] = {BLK_MAGIC, stamp, bs->pm, bs->n}, h = fanns__fnv1a(0xcbf29ce484222325ULL, hdr, sizeof hdr);
    bool ok = fwrite(hdr, sizeof hdr, 1, f) == 1;
    size_t cap = 2u * bs->pm;
    static const uint8_t pad[8];
    for (size_t i = 0; i < bs->n && ok; i++) {
        const blk_t *b = &bs->b[i];
        uint64_t bh[3] = {b->klen, b->card, b->n};
        size_t kp = (8 - b->klen % 8) % 8;
        h = fanns__fnv1a(h, bh, sizeof bh);
        h = fanns__fnv1a(h, b->key, b->klen);
        h = fanns__fnv1a(h, pad, kp);
        h = fanns__fnv1a(h, b->members, (size_t)b->n * 4);
        h = fanns__fnv1a(h, b->cnt, (size_t)b->n * 4);
        h = fanns__fnv1a(h, b->links, (size_t)b->n * cap * 4);
        ok = fwrite(bh, sizeof bh, 1, f) == 1 && fwrite(b->key, 1, b->klen, f) == b->klen &&
             fwrite(pad, 1, kp, f) == kp && fwrite(b->members, 4, b->n, f) == b->n && fwrite(b->cnt, 4, b->n, f) == b->n &&
             fwrite(b->links, 4, (size_t)b->n * cap, f) == (size_t)b->n * cap;
    }
    ok = ok && fwrite(&h, 8, 1, f) == 1 && fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return FANNS_EIO;
    }
    return 0;
}

int fanns__blocks_load(const char *path, uint64_t stamp, uint32_t pm, uint32_t nslots, const fanns_hnsw_t *h,
                       fanns_blocks_t **out) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return FANNS_ENOTFOUND;
    uint64_t hdr[4], hsum, want;
    int rc = FANNS_ECORRUPT;
    fanns_blocks_t *bs = calloc(1, sizeof *bs);
    if (!bs) {
        fclose(f);
        return FANNS_ENOMEM;
    }
    if (fread(hdr, sizeof hdr, 1, f) != 1 || hdr[0] != BLK_MAGIC || hdr[1] != stamp || hdr[2] != pm || pm == 0 ||
        hdr[3] > (1u << 24))
        goto fail;
    want = fanns__fnv1a(0xcbf29ce484222325ULL, hdr, sizeof hdr);
    bs->pm = pm;
    size_t cap = 2u * pm;
    if (!(bs->b = calloc(hdr[3] ? hdr[3] : 1, sizeof(blk_t)))) {
        rc = FANNS_ENOMEM;
        goto fail;
    }
    for (uint64_t i = 0; i < hdr[3]; i++) {
        blk_t *b = &bs->b[bs->n++];
        uint64_t bh[3];
        uint8_t pad[8];
        if (fread(bh, sizeof bh, 1, f) != 1 || bh[0] == 0 || bh[0] > 65536 || bh[2] > nslots) goto fail;
        size_t kp = (8 - bh[0] % 8) % 8;
        b->klen = bh[0];
        b->card = bh[1];
        b->n = (uint32_t)bh[2];
        b->key = malloc(b->klen + 1);
        b->members = malloc((b->n ? b->n : 1) * 4u);
        b->cnt = malloc((b->n ? b->n : 1) * 4u);
        b->links = malloc((b->n ? b->n : 1) * cap * 4u);
        if (!b->key || !b->members || !b->cnt || !b->links) {
            rc = FANNS_ENOMEM;
            goto fail;
        }
        if (fread(b->key, 1, b->klen, f) != b->klen || fread(pad, 1, kp, f) != kp ||
            fread(b->members, 4, b->n, f) != b->n || fread(b->cnt, 4, b->n, f) != b->n ||
            fread(b->links, 4, (size_t)b->n * cap, f) != (size_t)b->n * cap)
            goto fail;
        b->key[b->klen] = 0;
        want = fanns__fnv1a(want, bh, sizeof bh);
        want = fanns__fnv1a(want, b->key, b->klen);
        want = fanns__fnv1a(want, pad, kp);
        want = fanns__fnv1a(want, b->members, (size_t)b->n * 4);
        want = fanns__fnv1a(want, b->cnt, (size_t)b->n * 4);
        want = fanns__fnv1a(want, b->links, (size_t)b->n * cap * 4);
        /* Structure checks: the walk trusts that every link names a node of the graph. */
        for (uint32_t j = 0; j < b->n; j++) {
            if (b->members[j] >= nslots || (j && b->members[j] <= b->members[j - 1]) || b->cnt[j] > cap) goto fail;
            for (uint32_t t = 0; t < b->cnt[j]; t++) {
                uint32_t to = b->links[(size_t)j * cap + t];
                if (to >= nslots || !fanns_hnsw_has_node(h, to)) goto fail;
            }
        }
    }
    if (fread(&hsum, 8, 1, f) != 1 || hsum != want || fgetc(f) != EOF) goto fail;
    fclose(f);
    if ((rc = blocks_index(bs)) != 0) {
        fanns__blocks_free(bs);
        return rc;
    }
    *out = bs;
    return 0;
fail:
    fclose(f);
    fanns__blocks_free(bs);
    return rc;
}
