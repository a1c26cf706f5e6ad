/*
 * payload_index.c: payload indexes (value -> bitmap maps, sorted (key, offset) arrays, shape
 * bitmaps) and the evaluation of compiled filters to roaring bitmaps (see payload_index.h).
 *
 * What an index keeps.  For a point, walk the index's path the way filter.c walks a
 * condition's key (fanns__filter_walk): the path yields values Y (several through "[]").
 * Each y contributes "leaves": its elements if it is an array, else y itself; match and
 * range conditions test leaves, values_count / is_empty / is_null test each y.  From Y and
 * the leaves the index derives, per point, only sets ("the point has a y that is null"),
 * so adding a point is a union, removing it is the same sets subtracted, and one payload
 * always yields the same sets:
 *   seen        Y is not empty (the condition does not take its "missing field" answer)
 *   ynull       some y is null                        ({is_null: {key}})
 *   nullish     some y is null or an array with null   (is_null: true in a field condition)
 *   nonnullish  some y is neither                      (is_null: false)
 *   counts      count c -> points with a y of values_count c (null 0, array its length,
 *               else 1), which also gives is_empty (count 0) and "not empty" (count >= 1)
 *   irregular   some value at the path without its trailing "[]" is a scalar or an array
 *               holding an array: for the other points "a" and "a[]" have the same leaves
 *   typed       strings (keyword, uuid) or integers: value -> bitmap, points having one,
 *               points having two or more distinct ones (multi), points having a non-null
 *               leaf of another type (other), which together answer `except`;
 *               numbers and datetimes: sorted (key, offset) pairs, one per distinct key and
 *               point, with keys mapped to uint64 so that unsigned order is value order.
 *
 * Sorted arrays are chunked (up to CHUNK pairs per chunk, a directory of chunk pointers):
 * an insert or delete moves at most CHUNK pairs plus the directory, a range is two binary
 * searches, a range count adds chunk sizes.  Beside them, a flat offset -> key array for
 * points with a single key lets a range be tested point by point when only a few points
 * still matter (a range after a selective match in the same must list).  An integer index
 * with few distinct values can also answer a range by uniting its value bitmaps (while no
 * point also holds a non-integer number, tracked in `reals`); range_bitmap picks the cheapest
 * of the three ways for the sizes at hand.
 *
 * Evaluation is three-valued: every condition gives (lo, hi) with lo <= match <= hi,
 * exact when lo == hi (the same bitmap).  and/or intersect/unite both bounds, not swaps and
 * complements them, min_should counts both; a condition no index answers is (empty, hi) with
 * hi the universe or, for match/range on an indexed path, the points where the path yields
 * something.  So must_not over an inexact part is still a correct superset.  A filter's
 * parts are evaluated only inside what the previous parts left (cheap match conditions of a
 * must list first), so later conditions never build bitmaps of points already excluded.
 *
 * Invariants: all bitmaps and arrays of an index describe exactly the payloads given to it
 * (update's old_payload must be the last new_payload); a broken index (allocation failed
 * half-way) is never trusted again.  Evaluation only reads.
 */
#include "payload_index.h"
#include "mem.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datetime.h"
#include "filter_int.h"

#define CHUNK 512
#define ORD_MAX 255            /* distinct keys up to which a sorted index keeps byte ranks */
#define THRESH_MAX_WORK 4096   /* min_should: conditions * min_count before giving up exactness */
#define RANGE_MAP_MAX 256      /* distinct values of an integer index up to which a range unites
                                * value bitmaps instead of reading sorted pairs */
#define SIGN64 0x8000000000000000ull

enum { T_KEYWORD, T_INTEGER, T_FLOAT, T_BOOL, T_DATETIME, T_UUID, T_TEXT, T_GEO, T_COUNT };
static const char *const type_names[T_COUNT] = {"keyword", "integer", "float", "bool", "datetime", "uuid", "text", "geo"};

/* ---- small helpers ---- */

static void bm_free(roaring_bitmap_t *b) {
    if (b) roaring_bitmap_free(b);
}

static int grow(void **p, size_t *cap, size_t need, size_t elsz) {
    if (need <= *cap) return 0;
    size_t nc = *cap ? *cap * 2 : 16;
    while (nc < need) nc *= 2;
    void *np = realloc(*p, nc * elsz);
    if (!np) return -1;
    *p = np;
    *cap = nc;
    return 0;
}

/* Order-preserving keys: unsigned order of the key is the order of the value. */
static uint64_t key_of_double(double x) {
    if (x == 0.0) x = 0.0; /* -0.0 compares equal to 0.0 */
    uint64_t b;
    memcpy(&b, &x, sizeof(b));
    return (b & SIGN64) ? ~b : b | SIGN64;
}

static uint64_t key_of_i64(int64_t t) { return (uint64_t)t ^ SIGN64; }

/* ---- value -> bitmap hash map (linear probing, backward-shift deletion) ---- */

typedef struct {
    char *key;              /* owned, NUL-terminated; NULL marks an empty slot */
    uint32_t len;
    uint32_t hash;
    roaring_bitmap_t *bm;   /* never empty while the entry exists */
} ventry_t;

typedef struct {
    ventry_t *t;
    size_t cap, n;          /* cap is 0 or a power of two */
    size_t keybytes;
} vmap_t;

static uint32_t hash_bytes(const void *p, size_t n) {
    const unsigned char *s = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 0x100000001b3ull;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    return (uint32_t)h;
}

static ventry_t *vmap_find(const vmap_t *m, const void *k, size_t len) {
    if (!m->cap) return NULL;
    uint32_t h = hash_bytes(k, len);
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        ventry_t *e = &m->t[i];
        if (!e->key) return NULL;
        if (e->hash == h && e->len == len && memcmp(e->key, k, len) == 0) return e;
    }
}

static int vmap_rehash(vmap_t *m, size_t ncap) {
    ventry_t *nt = calloc(ncap, sizeof(*nt));
    if (!nt) return -1;
    for (size_t i = 0; i < m->cap; i++) {
        ventry_t *e = &m->t[i];
        if (!e->key) continue;
        size_t j = e->hash & (ncap - 1);
        while (nt[j].key) j = (j + 1) & (ncap - 1);
        nt[j] = *e;
    }
    free(m->t);
    m->t = nt;
    m->cap = ncap;
    return 0;
}

/* Entry for k, created with an empty bitmap if absent; NULL on ENOMEM. */
static ventry_t *vmap_upsert(vmap_t *m, const void *k, size_t len) {
    ventry_t *e = vmap_find(m, k, len);
    if (e) return e;
    if ((m->n + 1) * 4 > m->cap * 3 && vmap_rehash(m, m->cap ? m->cap * 2 : 16)) return NULL;
    uint32_t h = hash_bytes(k, len);
    size_t mask = m->cap - 1, i = h & mask;
    while (m->t[i].key) i = (i + 1) & mask;
    char *kc = malloc(len + 1);
    roaring_bitmap_t *bm = roaring_bitmap_create();
    if (!kc || !bm) {
        free(kc);
        bm_free(bm);
        return NULL;
    }
    memcpy(kc, k, len);
    kc[len] = '\0';
    e = &m->t[i];
    e->key = kc;
    e->len = (uint32_t)len;
    e->hash = h;
    e->bm = bm;
    m->n++;
    m->keybytes += len + 1;
    return e;
}

static void vmap_remove(vmap_t *m, ventry_t *e) {
    size_t mask = m->cap - 1, i = (size_t)(e - m->t), j = i;
    m->keybytes -= e->len + 1;
    free(e->key);
    bm_free(e->bm);
    for (;;) {
        j = (j + 1) & mask;
        if (!m->t[j].key) break;
        size_t k = m->t[j].hash & mask;
        /* The entry at j may move to the hole at i unless its home k lies cyclically in (i, j]. */
        bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (!stays) {
            m->t[i] = m->t[j];
            i = j;
        }
    }
    memset(&m->t[i], 0, sizeof(m->t[i]));
    m->n--;
}

static void vmap_free(vmap_t *m) {
    for (size_t i = 0; i < m->cap; i++)
        if (m->t[i].key) {
            free(m->t[i].key);
            bm_free(m->t[i].bm);
        }
    free(m->t);
    memset(m, 0, sizeof(*m));
}

/* ---- sorted (key, offset) pairs in chunks ---- */

typedef struct {
    uint32_t n;
    uint64_t keys[CHUNK];
    uint32_t offs[CHUNK];
} chunk_t;

/* The chunks in key order.  Beside the chunk pointers, a directory of each chunk's last key
 * and pair count (kept current by every change to a chunk): a range lookup binary-searches
 * and counts in these two contiguous arrays instead of dereferencing a chunk per step,
 * which after a search has streamed vectors through the cache is one miss each. */
typedef struct {
    chunk_t **c;
    uint64_t *last;     /* last[i]: c[i]'s largest key */
    uint32_t *cnt;      /* cnt[i]: c[i]->n */
    size_t n, cap;
    size_t total;
} svec_t;

typedef struct {
    size_t ci;
    uint32_t pi;
} spos_t;

static bool pair_lt(uint64_t k1, uint32_t o1, uint64_t k2, uint32_t o2) { return k1 < k2 || (k1 == k2 && o1 < o2); }

/* First position in chunk c not below (k, o). */
static uint32_t chunk_lb(const chunk_t *c, uint64_t k, uint32_t o) {
    uint32_t lo = 0, hi = c->n;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (pair_lt(c->keys[mid], c->offs[mid], k, o)) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* The chunk that holds or would hold (k, o): the last one whose first pair is <= (k, o). */
static size_t svec_chunk(const svec_t *s, uint64_t k, uint32_t o) {
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const chunk_t *c = s->c[mid];
        if (!pair_lt(k, o, c->keys[0], c->offs[0])) lo = mid + 1;
        else hi = mid;
    }
    return lo ? lo - 1 : 0;
}

/* Refreshes the directory entry of chunk i after a change to it (it holds pairs). */
static void svec_dir_sync(svec_t *s, size_t i) {
    const chunk_t *c = s->c[i];
    s->last[i] = c->keys[c->n - 1];
    s->cnt[i] = c->n;
}

static int svec_dir_insert(svec_t *s, size_t at, chunk_t *c) {
    if (s->n + 1 > s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 16;
        chunk_t **nc = realloc(s->c, ncap * sizeof(*nc));
        if (!nc) return -1;
        s->c = nc;
        uint64_t *nl = realloc(s->last, ncap * sizeof(*nl));
        if (!nl) return -1;
        s->last = nl;
        uint32_t *nn = realloc(s->cnt, ncap * sizeof(*nn));
        if (!nn) return -1;
        s->cnt = nn;
        s->cap = ncap;
    }
    memmove(&s->c[at + 1], &s->c[at], (s->n - at) * sizeof(*s->c));
    memmove(&s->last[at + 1], &s->last[at], (s->n - at) * sizeof(*s->last));
    memmove(&s->cnt[at + 1], &s->cnt[at], (s->n - at) * sizeof(*s->cnt));
    s->c[at] = c;
    s->last[at] = 0;
    s->cnt[at] = 0;
    s->n++;
    return 0;
}

static void svec_dir_remove(svec_t *s, size_t at) {
    free(s->c[at]);
    memmove(&s->c[at], &s->c[at + 1], (s->n - at - 1) * sizeof(*s->c));
    memmove(&s->last[at], &s->last[at + 1], (s->n - at - 1) * sizeof(*s->last));
    memmove(&s->cnt[at], &s->cnt[at + 1], (s->n - at - 1) * sizeof(*s->cnt));
    s->n--;
}

static int svec_insert(svec_t *s, uint64_t k, uint32_t o) {
    if (!s->n) {
        chunk_t *c = malloc(sizeof(*c));
        if (!c) return -1;
        c->n = 0;
        if (svec_dir_insert(s, 0, c)) {
            free(c);
            return -1;
        }
    }
    size_t ci = svec_chunk(s, k, o);
    chunk_t *c = s->c[ci];
    uint32_t p = chunk_lb(c, k, o);
    if (p < c->n && c->keys[p] == k && c->offs[p] == o) return 0;
    if (c->n == CHUNK) {
        chunk_t *d = malloc(sizeof(*d));
        if (!d) return -1;
        if (svec_dir_insert(s, ci + 1, d)) {
            free(d);
            return -1;
        }
        uint32_t half = CHUNK / 2;
        d->n = CHUNK - half;
        memcpy(d->keys, c->keys + half, d->n * sizeof(uint64_t));
        memcpy(d->offs, c->offs + half, d->n * sizeof(uint32_t));
        c->n = half;
        svec_dir_sync(s, ci);
        svec_dir_sync(s, ci + 1);
        if (p > half) {
            c = d;
            ci++;
            p -= half;
        }
    }
    memmove(&c->keys[p + 1], &c->keys[p], (c->n - p) * sizeof(uint64_t));
    memmove(&c->offs[p + 1], &c->offs[p], (c->n - p) * sizeof(uint32_t));
    c->keys[p] = k;
    c->offs[p] = o;
    c->n++;
    svec_dir_sync(s, ci);
    s->total++;
    return 0;
}

static void svec_remove(svec_t *s, uint64_t k, uint32_t o) {
    if (!s->n) return;
    size_t ci = svec_chunk(s, k, o);
    chunk_t *c = s->c[ci];
    uint32_t p = chunk_lb(c, k, o);
    if (p >= c->n || c->keys[p] != k || c->offs[p] != o) return;
    memmove(&c->keys[p], &c->keys[p + 1], (c->n - p - 1) * sizeof(uint64_t));
    memmove(&c->offs[p], &c->offs[p + 1], (c->n - p - 1) * sizeof(uint32_t));
    c->n--;
    s->total--;
    if (c->n == 0) {
        svec_dir_remove(s, ci);
        return;
    }
    if (c->n < CHUNK / 4 && ci + 1 < s->n && c->n + s->c[ci + 1]->n <= CHUNK / 2) {
        chunk_t *d = s->c[ci + 1];
        memcpy(c->keys + c->n, d->keys, d->n * sizeof(uint64_t));
        memcpy(c->offs + c->n, d->offs, d->n * sizeof(uint32_t));
        c->n += d->n;
        svec_dir_remove(s, ci + 1);
    }
    svec_dir_sync(s, ci);
}

/* First position whose key is >= k ({s->n, 0} past the end). */
static spos_t svec_lb(const svec_t *s, uint64_t k) {
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (s->last[mid] < k) lo = mid + 1;
        else hi = mid;
    }
    spos_t r = {lo, 0};
    if (lo < s->n) r.pi = chunk_lb(s->c[lo], k, 0);
    return r;
}

/* Positions [*a, *b) of the pairs with kmin <= key <= kmax. */
static void svec_range(const svec_t *s, uint64_t kmin, uint64_t kmax, spos_t *a, spos_t *b) {
    *a = svec_lb(s, kmin);
    if (kmax == UINT64_MAX) {
        b->ci = s->n;
        b->pi = 0;
    } else {
        *b = svec_lb(s, kmax + 1);
    }
}

static uint64_t svec_count(const svec_t *s, spos_t a, spos_t b) {
    if (a.ci == b.ci) return b.pi - a.pi;
    uint64_t n = s->cnt[a.ci] - a.pi;
    for (size_t i = a.ci + 1; i < b.ci; i++) n += s->cnt[i];
    return n + b.pi;
}

static void svec_free(svec_t *s) {
    for (size_t i = 0; i < s->n; i++) free(s->c[i]);
    free(s->c);
    free(s->last);
    free(s->cnt);
    memset(s, 0, sizeof(*s));
}

/* LSD radix sort of offsets (4 passes of 8 bits); tmp has room for n. */
static void sort_u32(uint32_t *a, uint32_t *tmp, size_t n) {
    for (int shift = 0; shift < 32; shift += 8) {
        size_t cnt[257] = {0};
        for (size_t i = 0; i < n; i++) cnt[((a[i] >> shift) & 255) + 1]++;
        for (int i = 0; i < 256; i++) cnt[i + 1] += cnt[i];
        for (size_t i = 0; i < n; i++) tmp[cnt[(a[i] >> shift) & 255]++] = a[i];
        uint32_t *t = a;
        a = tmp;
        tmp = t;
    }
    /* After an even number of passes the sorted data is back in the original array. */
}

/* ---- one field index ---- */

typedef struct {
    uint64_t count;
    roaring_bitmap_t *bm;
} centry_t;

typedef struct {
    vmap_t map;
    roaring_bitmap_t *pts, *multi, *other;
} typed_t;

typedef struct {
    svec_t v;
    roaring_bitmap_t *pts, *multi;
    uint64_t *fwd;          /* offset -> the key of a point with exactly one key, else 0 (no
                             * number or datetime maps to key 0: it would be a NaN, or a
                             * datetime of INT64_MIN microseconds); read at random by
                             * range_by_point, so from fanns_mem (huge pages once large) */
    size_t nfwd;
    /* The same keys as ranks, while the points with one key hold at most ORD_MAX distinct
     * keys (a year, a rating): ord[off] is 0 or 1 + the rank of fwd[off] among dkeys (sorted,
     * distinct; dref counts the points holding each, and keys whose count fell to 0 are
     * dropped when room is needed).  One byte a point instead of eight, so the array
     * range_by_point reads at random stays in the cache between queries.  ord_off: too many
     * distinct keys (or no memory to grow ord), only fwd is kept from then on. */
    uint8_t *ord;
    size_t nord;
    uint64_t dkeys[ORD_MAX];
    uint32_t dref[ORD_MAX];
    uint32_t nd;
    bool ord_off;
} sorted_t;

typedef struct {
    char *name;
    kpath_t path;
    kpath_t base;            /* path without a trailing "[]": a view of path's segments */
    bool trailing_all;
    int type;
    json_t *params;          /* schema object as given, or NULL */
    bool broken;
    roaring_bitmap_t *seen, *ynull, *nullish, *nonnullish, *irregular;
    centry_t *counts;        /* sorted by count */
    size_t ncounts, capcounts;
    typed_t strs;            /* keyword, uuid */
    typed_t ints;            /* integer */
    roaring_bitmap_t *reals; /* integer: points with a number leaf that is not an integer (JSON
                              * real), which the value bitmaps of ints do not hold */
    sorted_t nums;           /* integer, float */
    sorted_t dts;            /* datetime */
    roaring_bitmap_t *btrue, *bfalse;   /* bool */
} fidx_t;

typedef struct {
    const char *s;
    size_t len;
} sref_t;

/* What one payload yields for one index (scratch reused by the writer thread). */
typedef struct {
    const json_t **z;
    size_t nz, capz;
    bool oom;
    sref_t *strs;
    size_t nstrs, capstrs;
    int64_t *ints;
    size_t nints, capints;
    uint64_t *nums;
    size_t nnums, capnums;
    uint64_t *dts;
    size_t ndts, capdts;
    uint64_t *counts;
    size_t ncounts, capcounts;
    bool seen, ynull, nullish, nonnullish, irregular, btrue, bfalse, other_str, other_int, real;
} summ_t;

struct fanns_pindex {
    fidx_t **f;
    size_t n, cap;
    summ_t sc;
};

static bool has_strs(const fidx_t *x) { return x->type == T_KEYWORD || x->type == T_UUID; }
static bool has_ints(const fidx_t *x) { return x->type == T_INTEGER; }
static bool has_nums(const fidx_t *x) { return x->type == T_INTEGER || x->type == T_FLOAT; }

static void typed_free(typed_t *t) {
    vmap_free(&t->map);
    bm_free(t->pts);
    bm_free(t->multi);
    bm_free(t->other);
}

static void sorted_free(sorted_t *s) {
    svec_free(&s->v);
    fanns_mem_free(s->fwd, s->nfwd * sizeof(uint64_t));
    fanns_mem_free(s->ord, s->nord);
    bm_free(s->pts);
    bm_free(s->multi);
}

static void fidx_free(fidx_t *x) {
    if (!x) return;
    free(x->name);
    fanns__filter_kpath_free(&x->path);
    json_decref(x->params);
    bm_free(x->seen);
    bm_free(x->ynull);
    bm_free(x->nullish);
    bm_free(x->nonnullish);
    bm_free(x->irregular);
    for (size_t i = 0; i < x->ncounts; i++) bm_free(x->counts[i].bm);
    free(x->counts);
    typed_free(&x->strs);
    typed_free(&x->ints);
    bm_free(x->reals);
    sorted_free(&x->nums);
    sorted_free(&x->dts);
    bm_free(x->btrue);
    bm_free(x->bfalse);
    free(x);
}

static bool summ_push(void **p, size_t *n, size_t *cap, size_t elsz, const void *v, bool *oom) {
    if (grow(p, cap, *n + 1, elsz)) {
        *oom = true;
        return false;
    }
    memcpy((char *)*p + *n * elsz, v, elsz);
    (*n)++;
    return true;
}

static bool z_visit(const json_t *v, const void *ctx, bool *seen) {
    (void)seen;
    summ_t *s = (summ_t *)(uintptr_t)ctx; /* the scratch is writable; the walk API passes it as const */
    return !summ_push((void **)&s->z, &s->nz, &s->capz, sizeof(*s->z), &v, &s->oom);
}

static void leaf(const fidx_t *x, summ_t *s, const json_t *l) {
    switch (json_typeof(l)) {
    case JSON_NULL: return;
    case JSON_STRING: {
        s->other_int = true;
        if (has_strs(x)) {
            sref_t r = {json_string_value(l), json_string_length(l)};
            summ_push((void **)&s->strs, &s->nstrs, &s->capstrs, sizeof(r), &r, &s->oom);
        } else if (x->type == T_DATETIME) {
            int64_t t;
            if (fanns_datetime_parse(json_string_value(l), &t) == 0) {
                uint64_t k = key_of_i64(t);
                summ_push((void **)&s->dts, &s->ndts, &s->capdts, sizeof(k), &k, &s->oom);
            }
        }
        return;
    }
    case JSON_INTEGER: {
        s->other_str = true;
        int64_t i = json_integer_value(l);
        if (has_ints(x)) summ_push((void **)&s->ints, &s->nints, &s->capints, sizeof(i), &i, &s->oom);
        if (has_nums(x)) {
            uint64_t k = key_of_double(json_number_value(l));
            summ_push((void **)&s->nums, &s->nnums, &s->capnums, sizeof(k), &k, &s->oom);
        }
        return;
    }
    case JSON_REAL: {
        s->other_str = s->other_int = s->real = true;
        if (has_nums(x)) {
            uint64_t k = key_of_double(json_number_value(l));
            summ_push((void **)&s->nums, &s->nnums, &s->capnums, sizeof(k), &k, &s->oom);
        }
        return;
    }
    case JSON_TRUE: s->btrue = true; break;
    case JSON_FALSE: s->bfalse = true; break;
    default: break;
    }
    s->other_str = s->other_int = true;
}

static void y_value(const fidx_t *x, summ_t *s, const json_t *y) {
    uint64_t cnt;
    s->seen = true;
    if (json_is_null(y)) {
        s->ynull = s->nullish = true;
        cnt = 0;
    } else if (json_is_array(y)) {
        size_t n = json_array_size(y);
        bool has_null = false;
        for (size_t i = 0; i < n; i++) {
            const json_t *e = json_array_get(y, i);
            if (json_is_null(e)) has_null = true;
            leaf(x, s, e);
        }
        if (has_null) s->nullish = true;
        else s->nonnullish = true;
        cnt = n;
    } else {
        s->nonnullish = true;
        leaf(x, s, y);
        cnt = 1;
    }
    summ_push((void **)&s->counts, &s->ncounts, &s->capcounts, sizeof(cnt), &cnt, &s->oom);
}

static int cmp_sref(const void *a, const void *b) {
    const sref_t *x = a, *y = b;
    if (x->len != y->len) return x->len < y->len ? -1 : 1;
    return memcmp(x->s, y->s, x->len);
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Sorts and removes duplicates; returns the new count. */
static size_t uniq(void *base, size_t n, size_t elsz, int (*cmp)(const void *, const void *)) {
    if (n < 2) return n;
    qsort(base, n, elsz, cmp);
    char *b = base;
    size_t w = 1;
    for (size_t i = 1; i < n; i++)
        if (cmp(b + (w - 1) * elsz, b + i * elsz) != 0) memmove(b + w++ * elsz, b + i * elsz, elsz);
    return w;
}

/* Fills s with what payload yields for index x.  Returns false on ENOMEM. */
static bool summarize(const fidx_t *x, summ_t *s, const json_t *payload) {
    s->nz = s->nstrs = s->nints = s->nnums = s->ndts = s->ncounts = 0;
    s->oom = s->seen = s->ynull = s->nullish = s->nonnullish = s->irregular = false;
    s->btrue = s->bfalse = s->other_str = s->other_int = s->real = false;
    if (!payload || !json_is_object(payload)) return true;
    bool seen;
    fanns__filter_walk(&x->base, payload, z_visit, s, &seen);
    if (s->oom) return false;
    for (size_t i = 0; i < s->nz; i++) {
        const json_t *z = s->z[i];
        if (json_is_array(z)) {
            for (size_t j = 0, m = json_array_size(z); j < m; j++) {
                const json_t *e = json_array_get(z, j);
                if (json_is_array(e)) s->irregular = true;
                if (x->trailing_all) y_value(x, s, e);
            }
            if (!x->trailing_all) y_value(x, s, z);
        } else {
            if (!json_is_null(z)) s->irregular = true;
            if (!x->trailing_all) y_value(x, s, z);
        }
    }
    if (s->oom) return false;
    s->nstrs = uniq(s->strs, s->nstrs, sizeof(sref_t), cmp_sref);
    s->nints = uniq(s->ints, s->nints, sizeof(int64_t), cmp_i64);
    s->nnums = uniq(s->nums, s->nnums, sizeof(uint64_t), cmp_u64);
    s->ndts = uniq(s->dts, s->ndts, sizeof(uint64_t), cmp_u64);
    s->ncounts = uniq(s->counts, s->ncounts, sizeof(uint64_t), cmp_u64);
    return true;
}

static void bm_set(roaring_bitmap_t *b, uint32_t off, bool add, bool flag) {
    if (!flag) return;
    if (add) roaring_bitmap_add(b, off);
    else roaring_bitmap_remove(b, off);
}

static int count_apply(fidx_t *x, uint64_t c, uint32_t off, bool add) {
    size_t lo = 0, hi = x->ncounts;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (x->counts[mid].count < c) lo = mid + 1;
        else hi = mid;
    }
    bool found = lo < x->ncounts && x->counts[lo].count == c;
    if (!add) {
        if (!found) return 0;
        roaring_bitmap_remove(x->counts[lo].bm, off);
        if (roaring_bitmap_is_empty(x->counts[lo].bm)) {
            bm_free(x->counts[lo].bm);
            memmove(&x->counts[lo], &x->counts[lo + 1], (x->ncounts - lo - 1) * sizeof(centry_t));
            x->ncounts--;
        }
        return 0;
    }
    if (!found) {
        if (grow((void **)&x->counts, &x->capcounts, x->ncounts + 1, sizeof(centry_t))) return -1;
        roaring_bitmap_t *bm = roaring_bitmap_create();
        if (!bm) return -1;
        memmove(&x->counts[lo + 1], &x->counts[lo], (x->ncounts - lo) * sizeof(centry_t));
        x->counts[lo].count = c;
        x->counts[lo].bm = bm;
        x->ncounts++;
    }
    roaring_bitmap_add(x->counts[lo].bm, off);
    return 0;
}

static int typed_apply(typed_t *t, const void *keys, size_t n, size_t stride, bool is_str, bool other, uint32_t off,
                       bool add) {
    for (size_t i = 0; i < n; i++) {
        const void *k;
        size_t len;
        if (is_str) {
            const sref_t *r = (const sref_t *)keys + i;
            k = r->s;
            len = r->len;
        } else {
            k = (const char *)keys + i * stride;
            len = stride;
        }
        if (add) {
            ventry_t *e = vmap_upsert(&t->map, k, len);
            if (!e) return -1;
            roaring_bitmap_add(e->bm, off);
        } else {
            ventry_t *e = vmap_find(&t->map, k, len);
            if (!e) continue;
            roaring_bitmap_remove(e->bm, off);
            if (roaring_bitmap_is_empty(e->bm)) vmap_remove(&t->map, e);
        }
    }
    bm_set(t->pts, off, add, n > 0);
    bm_set(t->multi, off, add, n > 1);
    bm_set(t->other, off, add, other);
    return 0;
}

/* Rank slot of key k in s->dkeys: its position, or where it would go. */
static uint32_t ord_find(const sorted_t *s, uint64_t k) {
    uint32_t lo = 0, hi = s->nd;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (s->dkeys[mid] < k) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* Drops the distinct keys no point holds any more, renumbering ord. */
static void ord_compact(sorted_t *s) {
    uint8_t map[ORD_MAX + 1];
    uint32_t w = 0;
    map[0] = 0;
    for (uint32_t i = 0; i < s->nd; i++) {
        map[i + 1] = s->dref[i] ? (uint8_t)(w + 1) : 0;
        if (s->dref[i]) {
            s->dkeys[w] = s->dkeys[i];
            s->dref[w] = s->dref[i];
            w++;
        }
    }
    if (w == s->nd) return;
    s->nd = w;
    for (size_t i = 0; i < s->nord; i++) s->ord[i] = map[s->ord[i]];
}

/* Drops the byte ranks for good: range_by_point reads the full keys from then on. */
static void ord_drop(sorted_t *s) {
    fanns_mem_free(s->ord, s->nord);
    s->ord = NULL;
    s->nord = 0;
    s->ord_off = true;
}

/* Keeps the byte ranks current for point off gaining (add) or losing its one key k.  Past
 * ORD_MAX distinct keys, or when the array cannot grow, the ranks are dropped (the full keys
 * still answer, so that is no error). */
static void ord_apply(sorted_t *s, uint64_t k, uint32_t off, bool add) {
    if (s->ord_off) return;
    uint32_t r = ord_find(s, k);
    if (!add) {
        if (r < s->nd && s->dkeys[r] == k && s->dref[r]) s->dref[r]--;
        if (off < s->nord) s->ord[off] = 0;
        return;
    }
    if (off >= s->nord) {
        size_t nn = s->nord ? s->nord : 4096;
        while (nn <= off) nn *= 2;
        uint8_t *no = fanns_mem_realloc(s->ord, s->nord, nn);
        if (!no) {
            ord_drop(s);
            return;
        }
        s->ord = no;
        s->nord = nn;
    }
    if (r == s->nd || s->dkeys[r] != k) {
        if (s->nd == ORD_MAX) {
            ord_compact(s);
            r = ord_find(s, k);
        }
        if (s->nd == ORD_MAX) {
            ord_drop(s);
            return;
        }
        /* A new key at rank r: the ranks above it move up by one. */
        memmove(&s->dkeys[r + 1], &s->dkeys[r], (s->nd - r) * sizeof(s->dkeys[0]));
        memmove(&s->dref[r + 1], &s->dref[r], (s->nd - r) * sizeof(s->dref[0]));
        s->dkeys[r] = k;
        s->dref[r] = 0;
        s->nd++;
        if (r + 1 < s->nd)
            for (size_t i = 0; i < s->nord; i++) s->ord[i] += s->ord[i] > r;
    }
    s->dref[r]++;
    s->ord[off] = (uint8_t)(r + 1);
}

static int sorted_apply(sorted_t *s, const uint64_t *keys, size_t n, uint32_t off, bool add) {
    for (size_t i = 0; i < n; i++) {
        if (add) {
            if (svec_insert(&s->v, keys[i], off)) return -1;
        } else {
            svec_remove(&s->v, keys[i], off);
        }
    }
    if (add && n == 1) {
        if (off >= s->nfwd) {
            size_t nn = s->nfwd ? s->nfwd : 1024;
            while (nn <= off) nn *= 2;
            uint64_t *nf = fanns_mem_realloc(s->fwd, s->nfwd * sizeof(uint64_t), nn * sizeof(uint64_t));
            if (!nf) return -1;
            s->fwd = nf;
            s->nfwd = nn;
        }
        s->fwd[off] = keys[0];
    } else if (n > 0 && off < s->nfwd) {
        s->fwd[off] = 0; /* removed, or two or more keys */
    }
    if (n == 1) ord_apply(s, keys[0], off, add);
    if (n > 1 && off < s->nord) s->ord[off] = 0;
    bm_set(s->pts, off, add, n > 0);
    bm_set(s->multi, off, add, n > 1);
    return 0;
}

/* Adds (add) or removes the sets in s for point off.  Returns -1 on ENOMEM. */
static int apply(fidx_t *x, const summ_t *s, uint32_t off, bool add) {
    bm_set(x->seen, off, add, s->seen);
    bm_set(x->ynull, off, add, s->ynull);
    bm_set(x->nullish, off, add, s->nullish);
    bm_set(x->nonnullish, off, add, s->nonnullish);
    bm_set(x->irregular, off, add, s->irregular);
    for (size_t i = 0; i < s->ncounts; i++)
        if (count_apply(x, s->counts[i], off, add)) return -1;
    if (has_strs(x) && typed_apply(&x->strs, s->strs, s->nstrs, 0, true, s->other_str, off, add)) return -1;
    if (has_ints(x) && typed_apply(&x->ints, s->ints, s->nints, sizeof(int64_t), false, s->other_int, off, add))
        return -1;
    if (has_ints(x)) bm_set(x->reals, off, add, s->real);
    if (has_nums(x) && sorted_apply(&x->nums, s->nums, s->nnums, off, add)) return -1;
    if (x->type == T_DATETIME && sorted_apply(&x->dts, s->dts, s->ndts, off, add)) return -1;
    if (x->type == T_BOOL) {
        bm_set(x->btrue, off, add, s->btrue);
        bm_set(x->bfalse, off, add, s->bfalse);
    }
    return 0;
}

static int index_point(fidx_t *x, summ_t *sc, uint32_t off, const json_t *payload, bool add) {
    if (x->broken) return 0;
    if (!summarize(x, sc, payload) || apply(x, sc, off, add)) {
        x->broken = true;
        return FANNS_ENOMEM;
    }
    return 0;
}

/* ---- the set of indexes ---- */

int fanns_pindex_new(fanns_pindex_t **out) {
    *out = calloc(1, sizeof(**out));
    return *out ? 0 : FANNS_ENOMEM;
}

void fanns_pindex_free(fanns_pindex_t *pi) {
    if (!pi) return;
    for (size_t i = 0; i < pi->n; i++) fidx_free(pi->f[i]);
    free(pi->f);
    summ_t *s = &pi->sc;
    free(s->z);
    free(s->strs);
    free(s->ints);
    free(s->nums);
    free(s->dts);
    free(s->counts);
    free(pi);
}

/* Index whose path equals k, or NULL. */
static fidx_t *find_path(const fanns_pindex_t *pi, const kpath_t *k) {
    for (size_t i = 0; i < pi->n; i++)
        if (fanns__filter_kpath_eq(&pi->f[i]->path, k)) return pi->f[i];
    return NULL;
}

static fidx_t *find_field(const fanns_pindex_t *pi, const char *field, size_t *at) {
    kpath_t k;
    fanns_err_t e;
    if (fanns__filter_key_parse(field, "field_name", &k, &e)) return NULL;
    fidx_t *x = NULL;
    for (size_t i = 0; i < pi->n && !x; i++)
        if (fanns__filter_kpath_eq(&pi->f[i]->path, &k)) {
            x = pi->f[i];
            if (at) *at = i;
        }
    fanns__filter_kpath_free(&k);
    return x;
}

static int parse_schema(const json_t *schema, int *type, fanns_err_t *err) {
    const json_t *t = schema;
    if (json_is_object(schema)) {
        t = json_object_get(schema, "type");
        if (!json_is_string(t))
            return fanns_err_set(err, FANNS_EINVAL, "field_schema.type",
                                 "field_schema.type: expected a string naming the index type");
    }
    if (!json_is_string(t))
        return fanns_err_set(err, FANNS_EINVAL, "field_schema",
                             "field_schema: expected a type name or an object {\"type\": ...}");
    for (int i = 0; i < T_COUNT; i++)
        if (strcmp(json_string_value(t), type_names[i]) == 0) {
            *type = i;
            return 0;
        }
    return fanns_err_set(err, FANNS_EINVAL, json_is_object(schema) ? "field_schema.type" : "field_schema",
                         "unknown field_schema type '%.64s', expected one of keyword, integer, float, bool, geo, "
                         "text, datetime, uuid",
                         json_string_value(t));
}

int fanns_pindex_create(fanns_pindex_t *pi, const char *field, const json_t *field_schema, fanns_err_t *err) {
    int type = 0, rc;
    if ((rc = parse_schema(field_schema, &type, err))) return rc;
    fidx_t *x = calloc(1, sizeof(*x));
    if (!x) return fanns_err_set(err, FANNS_ENOMEM, NULL, "out of memory creating a payload index");
    x->type = type;
    if ((rc = fanns__filter_key_parse(field, "field_name", &x->path, err))) goto fail;
    rc = FANNS_ENOMEM;
    x->base = x->path;
    x->trailing_all = x->path.segs[x->path.n - 1].kind == SEG_ALL;
    if (x->trailing_all) x->base.n--;
    if (!(x->name = strdup(field))) goto nomem;
    if (json_is_object(field_schema) && !(x->params = json_deep_copy(field_schema))) goto nomem;
    roaring_bitmap_t **need[] = {&x->seen, &x->ynull, &x->nullish, &x->nonnullish, &x->irregular};
    for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++)
        if (!(*need[i] = roaring_bitmap_create())) goto nomem;
    typed_t *ts[2] = {has_strs(x) ? &x->strs : NULL, has_ints(x) ? &x->ints : NULL};
    for (int i = 0; i < 2; i++)
        if (ts[i] && (!(ts[i]->pts = roaring_bitmap_create()) || !(ts[i]->multi = roaring_bitmap_create()) ||
                      !(ts[i]->other = roaring_bitmap_create())))
            goto nomem;
    if (has_ints(x) && !(x->reals = roaring_bitmap_create())) goto nomem;
    sorted_t *ss[2] = {has_nums(x) ? &x->nums : NULL, type == T_DATETIME ? &x->dts : NULL};
    for (int i = 0; i < 2; i++)
        if (ss[i] && (!(ss[i]->pts = roaring_bitmap_create()) || !(ss[i]->multi = roaring_bitmap_create()))) goto nomem;
    if (type == T_BOOL && (!(x->btrue = roaring_bitmap_create()) || !(x->bfalse = roaring_bitmap_create())))
        goto nomem;
    size_t at;
    fidx_t *old = find_path(pi, &x->path);
    if (old) {
        for (at = 0; pi->f[at] != old; at++) continue;
        fidx_free(old);
        pi->f[at] = x;
        return 0;
    }
    if (pi->n >= FANNS_PINDEX_MAX_FIELDS) {
        rc = fanns_err_set(err, FANNS_ELIMIT, "field_name", "a collection may have at most %d payload indexes",
                           FANNS_PINDEX_MAX_FIELDS);
        goto fail;
    }
    if (grow((void **)&pi->f, &pi->cap, pi->n + 1, sizeof(fidx_t *))) goto nomem;
    pi->f[pi->n++] = x;
    return 0;
nomem:
    rc = fanns_err_set(err, FANNS_ENOMEM, NULL, "out of memory creating a payload index");
fail:
    fidx_free(x);
    return rc;
}

int fanns_pindex_drop(fanns_pindex_t *pi, const char *field) {
    size_t at;
    fidx_t *x = find_field(pi, field, &at);
    if (!x) return FANNS_ENOTFOUND;
    fidx_free(x);
    memmove(&pi->f[at], &pi->f[at + 1], (pi->n - at - 1) * sizeof(fidx_t *));
    pi->n--;
    return 0;
}

bool fanns_pindex_has(const fanns_pindex_t *pi, const char *field) { return find_field(pi, field, NULL) != NULL; }

int fanns_pindex_index_field_point(fanns_pindex_t *pi, const char *field, uint32_t off, const json_t *payload) {
    fidx_t *x = find_field(pi, field, NULL);
    if (!x) return FANNS_ENOTFOUND;
    return index_point(x, &pi->sc, off, payload, true);
}

int fanns_pindex_update(fanns_pindex_t *pi, uint32_t off, const json_t *old_payload, const json_t *new_payload) {
    if (old_payload && new_payload && json_equal((json_t *)old_payload, (json_t *)new_payload)) return 0;
    int rc = 0;
    for (size_t i = 0; i < pi->n; i++) {
        fidx_t *x = pi->f[i];
        if (old_payload && index_point(x, &pi->sc, off, old_payload, false)) rc = FANNS_ENOMEM;
        if (new_payload && index_point(x, &pi->sc, off, new_payload, true)) rc = FANNS_ENOMEM;
    }
    return rc;
}

/* ---- evaluation: (lo, hi) pairs ---- */

typedef struct {
    roaring_bitmap_t *lo, *hi;   /* lo <= match <= hi; exact iff lo == hi; both NULL after ENOMEM */
} res_t;

typedef struct {
    const fanns_pindex_t *pi;
    const roaring_bitmap_t *u;   /* the points that matter now: the universe, or less inside a filter */
    const fanns_pindex_points_t *pts;
    bool oom;
    const roaring_bitmap_t *universe;   /* which holds every indexed point (fanns_pindex_eval) */
} ectx_t;

static const res_t RES_FAIL = {NULL, NULL};

static bool res_exact_p(res_t r) { return r.lo == r.hi; }

static void res_free(res_t *r) {
    if (r->lo != r->hi) bm_free(r->lo);
    bm_free(r->hi);
    r->lo = r->hi = NULL;
}

static res_t fail_oom(ectx_t *c) {
    c->oom = true;
    return RES_FAIL;
}

static res_t mk_exact(ectx_t *c, roaring_bitmap_t *bm) {
    if (!bm) return fail_oom(c);
    return (res_t){bm, bm};
}

/* Takes lo and hi; collapses to exact when they have the same size. */
static res_t mk_pair(ectx_t *c, roaring_bitmap_t *lo, roaring_bitmap_t *hi) {
    if (!lo || !hi) {
        bm_free(lo);
        bm_free(hi);
        return fail_oom(c);
    }
    if (lo != hi && roaring_bitmap_get_cardinality(lo) == roaring_bitmap_get_cardinality(hi)) {
        bm_free(lo);
        lo = hi;
    }
    return (res_t){lo, hi};
}

/* Unknown condition: nothing sure, maybe every point of hi (NULL: the universe). */
static res_t mk_unknown(ectx_t *c, const roaring_bitmap_t *hi) {
    return mk_pair(c, roaring_bitmap_create(), hi ? roaring_bitmap_and(hi, c->u) : roaring_bitmap_copy(c->u));
}

/* a and b where b was evaluated inside a.hi, so b.hi is already a subset of a.hi (every result
 * lies inside the points that mattered when it was computed): the upper bound is b's own, and
 * only inexact lower bounds need intersecting.  Saves one bitmap intersection per condition of
 * a must list. */
static res_t mk_and_inside(ectx_t *c, res_t a, res_t b) {
    if (!a.hi || !b.hi) {
        res_free(&a);
        res_free(&b);
        return fail_oom(c);
    }
    assert(roaring_bitmap_is_subset(b.hi, a.hi));
    if (res_exact_p(a) && res_exact_p(b)) {
        res_free(&a);
        return b;
    }
    roaring_bitmap_t *hi = b.hi, *lo = roaring_bitmap_and(a.lo, b.lo);
    if (!res_exact_p(b)) bm_free(b.lo);
    res_free(&a);
    return mk_pair(c, lo, hi); /* frees hi when lo failed */
}

static res_t mk_or(ectx_t *c, res_t a, res_t b) {
    if (!a.hi || !b.hi) {
        res_free(&a);
        res_free(&b);
        return fail_oom(c);
    }
    roaring_bitmap_t *hi = roaring_bitmap_or(a.hi, b.hi), *lo = hi;
    bool exact = res_exact_p(a) && res_exact_p(b);
    if (!exact && hi) lo = roaring_bitmap_or(a.lo, b.lo);
    res_free(&a);
    res_free(&b);
    return exact ? mk_exact(c, hi) : mk_pair(c, lo, hi);
}

/* a and not b. */
static res_t mk_andnot(ectx_t *c, res_t a, res_t b) {
    if (!a.hi || !b.hi) {
        res_free(&a);
        res_free(&b);
        return fail_oom(c);
    }
    roaring_bitmap_t *hi = roaring_bitmap_andnot(a.hi, b.lo), *lo = hi;
    bool exact = res_exact_p(a) && res_exact_p(b);
    if (!exact && hi) lo = roaring_bitmap_andnot(a.lo, b.hi);
    res_free(&a);
    res_free(&b);
    return exact ? mk_exact(c, hi) : mk_pair(c, lo, hi);
}

/* Union of the bitmaps of vmap entries, intersected with the universe. */
static roaring_bitmap_t *union_u(ectx_t *c, const roaring_bitmap_t **v, size_t n) {
    roaring_bitmap_t *r;
    if (n == 0) return roaring_bitmap_create();
    /* Value bitmaps hold indexed points only, all of them in the universe: a copy is the
     * intersection, without reading the universe's containers. */
    if (n == 1) return c->u == c->universe ? roaring_bitmap_copy(v[0]) : roaring_bitmap_and(v[0], c->u);
    roaring_bitmap_t *o = roaring_bitmap_or_many(n, v);
    if (!o || c->u == c->universe) return o; /* as above: already inside the universe */
    r = roaring_bitmap_and(o, c->u);
    bm_free(o);
    return r;
}

/* Bitmaps of the map entries for the condition's value list (or one value), or of every
 * entry whose string matches (text, prefix...).  *out is malloc'ed (free it). */
static int gather(const typed_t *t, const field_t *f, bool is_str, const roaring_bitmap_t ***out, size_t *n) {
    size_t cap = is_str ? (f->mkind == M_VALUE_STR ? 1 : f->mkind == M_ANY_STR || f->mkind == M_EXCEPT_STR ? f->nstrs : t->map.n)
                        : (f->mkind == M_VALUE_INT ? 1 : f->nints);
    const roaring_bitmap_t **v = malloc((cap ? cap : 1) * sizeof(*v));
    if (!v) return -1;
    size_t k = 0;
    const ventry_t *e;
    if (is_str && f->mkind == M_VALUE_STR) {
        if ((e = vmap_find(&t->map, f->str.s, f->str.len))) v[k++] = e->bm;
    } else if (is_str && (f->mkind == M_ANY_STR || f->mkind == M_EXCEPT_STR)) {
        for (size_t i = 0; i < f->nstrs; i++)
            if ((e = vmap_find(&t->map, f->strs[i].s, f->strs[i].len))) v[k++] = e->bm;
    } else if (is_str) {
        for (size_t i = 0; i < t->map.cap; i++) {
            e = &t->map.t[i];
            if (e->key && fanns__filter_match_str(f, e->key, e->len)) v[k++] = e->bm;
        }
    } else if (f->mkind == M_VALUE_INT) {
        if ((e = vmap_find(&t->map, &f->ival, sizeof(int64_t)))) v[k++] = e->bm;
    } else {
        for (size_t i = 0; i < f->nints; i++)
            if ((e = vmap_find(&t->map, &f->ints[i], sizeof(int64_t)))) v[k++] = e->bm;
    }
    *out = v;
    *n = k;
    return 0;
}

static res_t match_typed(ectx_t *c, const typed_t *t, const field_t *f, bool is_str) {
    const roaring_bitmap_t **v;
    size_t n;
    if (gather(t, f, is_str, &v, &n)) return fail_oom(c);
    roaring_bitmap_t *in = union_u(c, v, n);
    free(v);
    if (!in) return fail_oom(c);
    if (f->mkind != M_EXCEPT_STR && f->mkind != M_EXCEPT_INT) return mk_exact(c, in);
    /* except: a non-null leaf of another type matches; so does a point whose values are not
     * all excluded: sure for points with one value outside the list, maybe for points with
     * several values some of which are in the list. */
    roaring_bitmap_t *lo = roaring_bitmap_andnot(t->pts, in), *hi = NULL;
    if (lo) roaring_bitmap_or_inplace(lo, t->other);
    if (lo) roaring_bitmap_and_inplace(lo, c->u);
    roaring_bitmap_t *amb = roaring_bitmap_and(t->multi, in);
    bm_free(in);
    if (lo && amb) {
        hi = roaring_bitmap_or(lo, amb);
        if (hi) roaring_bitmap_and_inplace(hi, c->u);
    }
    bm_free(amb);
    return mk_pair(c, lo, hi);
}

/* Points of w (the points that matter) with a key in [kmin, kmax], by testing each one's
 * key in fwd: for a few points against a wide range.  Only when no point of w has two or more
 * keys (fwd is 0 for them, as for points without a key).  The keys are read in batches with
 * the next ones prefetched: after a search has streamed vectors through the cache, each is
 * usually a miss, and overlapping them is most of the cost. */
static roaring_bitmap_t *range_by_point(const sorted_t *ss, uint64_t kmin, uint64_t kmax, const roaring_bitmap_t *w) {
    enum { BATCH = 256, AHEAD = 16 };
    roaring_bitmap_t *r = roaring_bitmap_create();
    if (!r) return NULL;
    if (!ss->ord_off) {
        /* Byte ranks: the range is the ranks [lo, hi] (1-based; 0 is no key). */
        const uint8_t *ord = ss->ord;
        const size_t nord = ss->nord;
        const uint32_t lo = ord_find(ss, kmin) + 1, hi = kmax == UINT64_MAX ? ss->nd : ord_find(ss, kmax + 1);
        if (lo > hi) return r;
        roaring_uint32_iterator_t it;
        roaring_init_iterator(w, &it);
        uint32_t buf[BATCH], hit[BATCH];
        for (uint32_t got; (got = roaring_read_uint32_iterator(&it, buf, BATCH)) > 0;) {
            while (got > 0 && buf[got - 1] >= nord) got--;
            uint32_t k = 0;
            for (uint32_t i = 0; i < got; i++) {
                uint32_t o = ord[buf[i]];
                hit[k] = buf[i];
                k += o >= lo && o <= hi;
            }
            roaring_bitmap_add_many(r, k, hit);
        }
        return r;
    }
    const uint64_t *fwd = ss->fwd;
    const size_t nfwd = ss->nfwd;
    roaring_uint32_iterator_t it;
    roaring_init_iterator(w, &it);
    uint32_t buf[BATCH], hit[BATCH];
    for (uint32_t got; (got = roaring_read_uint32_iterator(&it, buf, BATCH)) > 0;) {
        while (got > 0 && buf[got - 1] >= nfwd) got--; /* past every point with one key */
        for (uint32_t i = 0; i < got && i < AHEAD; i++) __builtin_prefetch(fwd + buf[i]);
        uint32_t k = 0;
        for (uint32_t i = 0; i < got; i++) {
            if (i + AHEAD < got) __builtin_prefetch(fwd + buf[i + AHEAD]);
            uint64_t key = fwd[buf[i]];
            hit[k] = buf[i];
            k += key != 0 && key >= kmin && key <= kmax;
        }
        roaring_bitmap_add_many(r, k, hit);
    }
    return r;
}

/* Points of c->u holding an integer in [kmin, kmax] (number keys), from the value bitmaps of
 * integer index x: with few distinct values (a year, a rating) a wide range is a handful of
 * bitmap unions instead of gathering and sorting every pair in it.  The value bitmaps hold
 * integer leaves only, so this applies when no point of c->u has a non-integer number (the
 * pairs hold both) and x has at most RANGE_MAP_MAX values; *done is false otherwise. */
static roaring_bitmap_t *range_by_values(ectx_t *c, const fidx_t *x, uint64_t kmin, uint64_t kmax, bool *done) {
    const vmap_t *m = &x->ints.map;
    *done = false;
    if (m->n > RANGE_MAP_MAX || roaring_bitmap_intersect(x->reals, c->u)) return NULL;
    *done = true;
    const roaring_bitmap_t *v[RANGE_MAP_MAX];
    size_t k = 0;
    uint64_t total = 0;
    for (size_t i = 0; i < m->cap; i++) {
        const ventry_t *e = &m->t[i];
        if (!e->key) continue;
        int64_t val;
        memcpy(&val, e->key, sizeof(val));
        uint64_t key = key_of_double((double)val); /* as the pairs key an integer leaf */
        if (key < kmin || key > kmax) continue;
        v[k++] = e->bm;
        total += roaring_bitmap_get_cardinality(e->bm);
    }
    if (k == 0) return roaring_bitmap_create();
    /* A universe smaller than the values' points is intersected with each value bitmap and the
     * small results united; otherwise the value bitmaps are united first. */
    if (k == 1 || (uint64_t)k * roaring_bitmap_get_cardinality(c->u) > total) return union_u(c, v, k);
    roaring_bitmap_t *r = roaring_bitmap_and(v[0], c->u);
    for (size_t i = 1; r && i < k; i++) {
        roaring_bitmap_t *t = roaring_bitmap_and(v[i], c->u);
        if (!t) {
            bm_free(r);
            return NULL;
        }
        roaring_bitmap_or_inplace(r, t);
        bm_free(t);
    }
    return r;
}

/* Points of c->u with a key of ss (x's nums or dts) in [kmin, kmax].  Three ways, chosen by
 * the sizes at hand:
 *   - fewer points left than pairs in the range (a range after a selective match), spread
 *     thinly (roaring array containers, whose intersections are scalar merges): each point's
 *     key is tested, O(points left);
 *   - an integer index with few distinct values: the value bitmaps in range are united and
 *     intersected, word operations when the points left are dense;
 *   - otherwise the pairs in range are gathered into a bitmap, O(pairs in range). */
static roaring_bitmap_t *range_bitmap(ectx_t *c, const fidx_t *x, const sorted_t *ss, uint64_t kmin, uint64_t kmax) {
    const svec_t *s = &ss->v;
    if (kmin > kmax || !s->n) return roaring_bitmap_create();
    spos_t a, b;
    svec_range(s, kmin, kmax, &a, &b);
    uint64_t n = svec_count(s, a, b), nu = roaring_bitmap_get_cardinality(c->u);
    if (n == 0 || nu == 0) return roaring_bitmap_create();
    bool by_point = n > 64 && nu <= n && !roaring_bitmap_intersect(c->u, ss->multi);
    bool by_values = ss == &x->nums && has_ints(x);
    if (by_point && by_values) {
        /* One point in 16 of the span or more: roaring keeps such chunks as bitsets. */
        uint64_t span = (uint64_t)roaring_bitmap_maximum(c->u) - roaring_bitmap_minimum(c->u) + 1;
        if (nu * 16 < span) by_values = false;
    }
    if (by_values) {
        bool done;
        roaring_bitmap_t *r = range_by_values(c, x, kmin, kmax, &done);
        if (done) return r;
    }
    if (by_point) return range_by_point(ss, kmin, kmax, c->u);
    uint32_t *buf = malloc((n ? n : 1) * 2 * sizeof(uint32_t));
    if (!buf) return NULL;
    size_t k = 0;
    for (spos_t p = a; p.ci < b.ci || (p.ci == b.ci && p.pi < b.pi);) {
        const chunk_t *ch = s->c[p.ci];
        uint32_t end = p.ci == b.ci ? b.pi : ch->n;
        memcpy(buf + k, ch->offs + p.pi, (end - p.pi) * sizeof(uint32_t));
        k += end - p.pi;
        p.ci++;
        p.pi = 0;
    }
    /* Offsets come in key order; roaring adds fastest in offset order.  Dense results go
     * through a plain bitset scanned in order, sparse ones through a radix sort. */
    uint32_t maxo = 0;
    for (size_t i = 0; i < k; i++)
        if (buf[i] > maxo) maxo = buf[i];
    size_t words = (size_t)maxo / 64 + 1;
    uint64_t *bits = k > 64 && words <= k ? calloc(words, sizeof(uint64_t)) : NULL;
    if (bits) {
        for (size_t i = 0; i < k; i++) bits[buf[i] >> 6] |= 1ull << (buf[i] & 63);
        size_t w = 0;
        for (size_t i = 0; i < words; i++)
            for (uint64_t b = bits[i]; b; b &= b - 1) buf[w++] = (uint32_t)(i * 64 + (size_t)__builtin_ctzll(b));
        k = w;
        free(bits);
    } else if (k > 64) {
        sort_u32(buf, buf + n, k);
    }
    roaring_bitmap_t *r = roaring_bitmap_create();
    if (r) {
        roaring_bitmap_add_many(r, k, buf);
        roaring_bitmap_and_inplace(r, c->u);
    }
    free(buf);
    return r;
}

/* Key interval [*kmin, *kmax] of a range condition; false when it is empty. */
static bool range_keys(const field_t *f, uint64_t *kmin, uint64_t *kmax) {
    uint64_t lo = 0, hi = UINT64_MAX;
    for (int b = 0; b < 4; b++) {
        if (!(f->rset & 1u << b)) continue;
        uint64_t k = f->range_dt ? key_of_i64(f->rdt[b]) : key_of_double(f->rnum[b]);
        switch (b) {
        case B_LT:
            if (k == 0) return false;
            if (k - 1 < hi) hi = k - 1;
            break;
        case B_LTE:
            if (k < hi) hi = k;
            break;
        case B_GT:
            if (k == UINT64_MAX) return false;
            if (k + 1 > lo) lo = k + 1;
            break;
        case B_GTE:
            if (k > lo) lo = k;
            break;
        }
    }
    *kmin = lo;
    *kmax = hi;
    return lo <= hi;
}

static const sorted_t *range_index(const fidx_t *x, const field_t *f) {
    if (f->range_dt) return x->type == T_DATETIME ? &x->dts : NULL;
    return has_nums(x) ? &x->nums : NULL;
}

/* match / range / geo parts of a field condition, ORed, on the index's own leaves. */
static res_t value_part(ectx_t *c, const fidx_t *x, const field_t *f) {
    res_t acc = RES_FAIL;
    bool any = false;
    for (int part = 0; part < 3; part++) {
        res_t r;
        if (part == 0 && f->has_match) {
            uint8_t k = f->mkind;
            bool str_kind = k != M_VALUE_INT && k != M_ANY_INT && k != M_EXCEPT_INT && k != M_VALUE_BOOL;
            bool int_kind = k == M_VALUE_INT || k == M_ANY_INT || k == M_EXCEPT_INT;
            if (str_kind && has_strs(x)) r = match_typed(c, &x->strs, f, true);
            else if (int_kind && has_ints(x)) r = match_typed(c, &x->ints, f, false);
            else if (k == M_VALUE_BOOL && x->type == T_BOOL)
                r = mk_exact(c, roaring_bitmap_and(f->bval ? x->btrue : x->bfalse, c->u));
            else r = mk_unknown(c, x->seen);
        } else if (part == 1 && f->has_range) {
            const sorted_t *s = range_index(x, f);
            uint64_t kmin, kmax;
            if (!s) r = mk_unknown(c, x->seen);
            else if (!range_keys(f, &kmin, &kmax)) r = mk_exact(c, roaring_bitmap_create());
            else r = mk_exact(c, range_bitmap(c, x, s, kmin, kmax));
        } else if (part == 2 && (f->has_bbox || f->has_radius || f->has_poly)) {
            r = mk_unknown(c, x->seen);
        } else {
            continue;
        }
        acc = any ? mk_or(c, acc, r) : r;
        any = true;
        if (!acc.hi) return RES_FAIL;
    }
    return any ? acc : mk_exact(c, roaring_bitmap_create());
}

static bool vc_ok(const field_t *f, uint64_t n) {
    return (!(f->vcset & 1u << B_LT) || n < f->vc[B_LT]) && (!(f->vcset & 1u << B_GT) || n > f->vc[B_GT]) &&
           (!(f->vcset & 1u << B_GTE) || n >= f->vc[B_GTE]) && (!(f->vcset & 1u << B_LTE) || n <= f->vc[B_LTE]);
}

/* Union of the count bitmaps with count in [lo, hi], intersected with the universe. */
static roaring_bitmap_t *counts_between(ectx_t *c, const fidx_t *x, const field_t *vc, uint64_t lo, uint64_t hi) {
    roaring_bitmap_t *r = roaring_bitmap_create();
    if (!r) return NULL;
    for (size_t i = 0; i < x->ncounts; i++) {
        uint64_t n = x->counts[i].count;
        if (vc ? vc_ok(vc, n) : (n >= lo && n <= hi)) roaring_bitmap_or_inplace(r, x->counts[i].bm);
    }
    roaring_bitmap_and_inplace(r, c->u);
    return r;
}

/* r plus the universe's points where the path yields nothing. */
static roaring_bitmap_t *plus_unseen(ectx_t *c, const fidx_t *x, roaring_bitmap_t *r) {
    if (!r) return NULL;
    roaring_bitmap_t *un = roaring_bitmap_andnot(c->u, x->seen);
    if (!un) {
        bm_free(r);
        return NULL;
    }
    roaring_bitmap_or_inplace(r, un);
    bm_free(un);
    return r;
}

/* Index answering conditions on key k: *other is set when its path is k with a trailing
 * "[]" added or removed (then only match and range are answered). */
static const fidx_t *find_index(const fanns_pindex_t *pi, const kpath_t *k, bool *other) {
    const fidx_t *alt = NULL;
    for (size_t i = 0; i < pi->n; i++) {
        const fidx_t *x = pi->f[i];
        if (x->broken) continue;
        if (fanns__filter_kpath_eq(&x->path, k)) {
            *other = false;
            return x;
        }
        if (alt) continue;
        kpath_t shorter = *k;
        if (!x->trailing_all && k->n == x->path.n + 1 && k->segs[k->n - 1].kind == SEG_ALL) {
            shorter.n--;
            if (fanns__filter_kpath_eq(&x->path, &shorter)) alt = x;
        } else if (x->trailing_all && fanns__filter_kpath_eq(&x->base, k)) {
            alt = x;
        }
    }
    *other = alt != NULL;
    return alt;
}

static res_t eval_field(ectx_t *c, const field_t *f) {
    bool other;
    const fidx_t *x = find_index(c->pi, &f->key, &other);
    if (!x) return mk_unknown(c, NULL);
    bool flags = f->has_vc || f->is_empty >= 0 || f->is_null >= 0;
    if (other) {
        if (flags) return mk_unknown(c, NULL);
        res_t r = value_part(c, x, f);
        if (!r.hi || !roaring_bitmap_intersect(x->irregular, c->u)) return r;
        /* Points whose shape differs between "a" and "a[]" are maybe. */
        roaring_bitmap_t *irr = roaring_bitmap_and(x->irregular, c->u);
        roaring_bitmap_t *lo = irr ? roaring_bitmap_andnot(r.lo, irr) : NULL;
        roaring_bitmap_t *hi = irr ? roaring_bitmap_or(r.hi, irr) : NULL;
        bm_free(irr);
        res_free(&r);
        return mk_pair(c, lo, hi);
    }
    if (f->has_vc) {
        roaring_bitmap_t *r = counts_between(c, x, f, 0, 0);
        return mk_exact(c, vc_ok(f, 0) ? plus_unseen(c, x, r) : r);
    }
    if (f->is_empty == 1) return mk_exact(c, plus_unseen(c, x, counts_between(c, x, NULL, 0, 0)));
    if (f->is_empty == 0) return mk_exact(c, counts_between(c, x, NULL, 1, UINT64_MAX));
    if (f->is_null == 1) return mk_exact(c, roaring_bitmap_and(x->nullish, c->u));
    if (f->is_null == 0) return mk_exact(c, plus_unseen(c, x, roaring_bitmap_and(x->nonnullish, c->u)));
    return value_part(c, x, f);
}

static res_t eval_cond(ectx_t *c, const node_t *n);

/* Points of the universe in at least k of the m sets (lo or hi side of rs). */
static roaring_bitmap_t *at_least(const res_t *rs, size_t m, size_t k, bool lo_side) {
    roaring_bitmap_t **cnt = calloc(k + 1, sizeof(*cnt)), *out = NULL;
    if (!cnt) return NULL;
    for (size_t j = 1; j <= k; j++)
        if (!(cnt[j] = roaring_bitmap_create())) goto done;
    for (size_t i = 0; i < m; i++) {
        const roaring_bitmap_t *s = lo_side ? rs[i].lo : rs[i].hi;
        for (size_t j = (i + 1 < k ? i + 1 : k); j >= 2; j--) {
            roaring_bitmap_t *t = roaring_bitmap_and(cnt[j - 1], s);
            if (!t) goto done;
            roaring_bitmap_or_inplace(cnt[j], t);
            bm_free(t);
        }
        roaring_bitmap_or_inplace(cnt[1], s);
    }
    out = cnt[k];
    cnt[k] = NULL;
done:
    for (size_t j = 1; j <= k; j++) bm_free(cnt[j]);
    free(cnt);
    return out;
}

static res_t eval_min_should(ectx_t *c, const list_t *l, size_t k) {
    if (k > l->n) return mk_exact(c, roaring_bitmap_create());
    if (l->n * k > THRESH_MAX_WORK) return mk_unknown(c, NULL);
    res_t *rs = calloc(l->n, sizeof(*rs)), out = RES_FAIL;
    if (!rs) return fail_oom(c);
    bool exact = true;
    for (size_t i = 0; i < l->n; i++) {
        rs[i] = eval_cond(c, l->v[i]);
        if (!rs[i].hi) goto done;
        exact = exact && res_exact_p(rs[i]);
    }
    roaring_bitmap_t *hi = at_least(rs, l->n, k, false);
    out = exact ? mk_exact(c, hi) : mk_pair(c, hi ? at_least(rs, l->n, k, true) : NULL, hi);
done:
    for (size_t i = 0; i < l->n; i++) res_free(&rs[i]);
    free(rs);
    return c->oom ? RES_FAIL : out;
}

/* A field condition answered from one value bitmap or a few (match without range or geo):
 * cheap, and usually the most selective, so a must list evaluates these first. */
static bool cheap_first(const node_t *n) {
    if (n->kind != N_FIELD) return false;
    const field_t *f = &n->u.fc;
    return f->has_match && !f->has_range && !f->has_bbox && !f->has_radius && !f->has_poly && !f->has_vc &&
           f->is_empty < 0 && f->is_null < 0 && f->mkind != M_EXCEPT_STR && f->mkind != M_EXCEPT_INT;
}

/* Evaluates a filter node.  Every result only has to be right inside c->u (the points that
 * still matter): each child is evaluated inside what the parts before it left (acc), which
 * is what makes a wide range cheap after a selective match.  This commutes with and, or,
 * not (acc minus child needs the child only inside acc) and min_should. */
static res_t eval_filter(ectx_t *c, const node_t *n) {
    const roaring_bitmap_t *w = c->u;
    res_t acc = RES_FAIL;
    bool all = true; /* acc stands for all of w */
#define INSIDE(expr) (c->u = all ? w : acc.hi, r = (expr), c->u = w, r)
#define EMPTY_EXIT()                                                         \
    do {                                                                     \
        if (!acc.hi) return RES_FAIL;                                        \
        if (roaring_bitmap_is_empty(acc.hi)) return acc;                     \
    } while (0)
    res_t r;
    const list_t *l = &n->u.f.must;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < l->n; i++) {
            if (cheap_first(l->v[i]) != (pass == 0)) continue;
            r = INSIDE(eval_cond(c, l->v[i]));
            acc = all ? r : mk_and_inside(c, acc, r);
            all = false;
            EMPTY_EXIT();
        }
    }
    l = &n->u.f.should;
    if (l->n) {
        res_t any = INSIDE(eval_cond(c, l->v[0]));
        for (size_t i = 1; i < l->n && any.hi; i++) any = mk_or(c, any, INSIDE(eval_cond(c, l->v[i])));
        acc = all ? any : mk_and_inside(c, acc, any);
        all = false;
        EMPTY_EXIT();
    }
    if (n->u.f.min_count) {
        r = INSIDE(eval_min_should(c, &n->u.f.min_should, n->u.f.min_count));
        acc = all ? r : mk_and_inside(c, acc, r);
        all = false;
        EMPTY_EXIT();
    }
    l = &n->u.f.must_not;
    for (size_t i = 0; i < l->n; i++) {
        if (all) {
            acc = mk_exact(c, roaring_bitmap_copy(w));
            all = false;
            if (!acc.hi) return RES_FAIL;
        }
        r = INSIDE(eval_cond(c, l->v[i]));
        acc = mk_andnot(c, acc, r);
        EMPTY_EXIT();
    }
#undef EMPTY_EXIT
#undef INSIDE
    return all ? mk_exact(c, roaring_bitmap_copy(w)) : acc;
}

static res_t eval_has_id(ectx_t *c, const node_t *n) {
    if (!c->pts || !c->pts->offset) return mk_unknown(c, NULL);
    roaring_bitmap_t *r = roaring_bitmap_create();
    if (!r) return fail_oom(c);
    for (size_t i = 0; i < n->u.has_id.n; i++) {
        fanns_pid_t id;
        uint32_t off;
        fanns_pid_from_key(n->u.has_id.keys[i], &id);
        if (c->pts->offset(c->pts->ctx, &id, &off) && roaring_bitmap_contains(c->u, off)) roaring_bitmap_add(r, off);
    }
    return mk_exact(c, r);
}

static res_t eval_cond(ectx_t *c, const node_t *n) {
    bool other;
    const fidx_t *x;
    switch (n->kind) {
    case N_FILTER: return eval_filter(c, n);
    case N_FIELD: return eval_field(c, &n->u.fc);
    case N_IS_EMPTY:
        x = find_index(c->pi, &n->u.key, &other);
        if (!x || other) return mk_unknown(c, NULL);
        roaring_bitmap_t *ne = counts_between(c, x, NULL, 1, UINT64_MAX);
        roaring_bitmap_t *r = ne ? roaring_bitmap_andnot(c->u, ne) : NULL;
        bm_free(ne);
        return mk_exact(c, r);
    case N_IS_NULL:
        x = find_index(c->pi, &n->u.key, &other);
        if (!x || other) return mk_unknown(c, NULL);
        return mk_exact(c, roaring_bitmap_and(x->ynull, c->u));
    case N_HAS_ID: return eval_has_id(c, n);
    default: return mk_unknown(c, NULL); /* N_NESTED: checked per point */
    }
}

int fanns_pindex_eval(const fanns_pindex_t *pi, const fanns_filter_t *f, const roaring_bitmap_t *universe,
                      const fanns_pindex_points_t *pts, roaring_bitmap_t **out, roaring_bitmap_t **sure, bool *exact,
                      fanns_err_t *err) {
    ectx_t c = {pi, universe, pts, false, universe};
    res_t r = f ? eval_filter(&c, f->root) : mk_exact(&c, roaring_bitmap_copy(universe));
    *out = NULL;
    if (sure) *sure = NULL;
    *exact = false;
    if (!r.hi) return fanns_err_set(err, FANNS_ENOMEM, NULL, "out of memory evaluating a filter");
    *exact = res_exact_p(r);
    *out = r.hi;
    if (!*exact) {
        if (sure) *sure = r.lo;
        else bm_free(r.lo);
    }
    return 0;
}

/* ---- estimates ---- */

/* The only condition of a filter with exactly one, or NULL. */
static const node_t *single_condition(const node_t *root) {
    const node_t *n = root;
    while (n->kind == N_FILTER) {
        const list_t *lists[3] = {&n->u.f.must, &n->u.f.should, &n->u.f.min_should};
        const node_t *only = NULL;
        size_t total = n->u.f.must.n + n->u.f.should.n + n->u.f.must_not.n + n->u.f.min_should.n;
        if (total != 1 || (n->u.f.min_should.n && n->u.f.min_count != 1)) return NULL;
        for (int i = 0; i < 3; i++)
            if (lists[i]->n) only = lists[i]->v[0];
        if (!only) return NULL;
        n = only;
    }
    return n;
}

/* Counts a lone match-value or range condition without building a bitmap; false if it cannot. */
static bool quick_count(const fanns_pindex_t *pi, const node_t *n, const roaring_bitmap_t *u, uint64_t *count) {
    if (!n || n->kind != N_FIELD) return false;
    const field_t *f = &n->u.fc;
    bool other;
    const fidx_t *x = find_index(pi, &f->key, &other);
    if (!x || other || f->has_vc || f->is_empty >= 0 || f->is_null >= 0 || f->has_bbox || f->has_radius ||
        f->has_poly || f->has_match == f->has_range)
        return false;
    if (f->has_match) {
        const ventry_t *e = NULL;
        if (f->mkind == M_VALUE_STR && has_strs(x)) e = vmap_find(&x->strs.map, f->str.s, f->str.len);
        else if (f->mkind == M_VALUE_INT && has_ints(x)) e = vmap_find(&x->ints.map, &f->ival, sizeof(int64_t));
        else if (f->mkind == M_VALUE_BOOL && x->type == T_BOOL) {
            *count = roaring_bitmap_and_cardinality(f->bval ? x->btrue : x->bfalse, u);
            return true;
        } else return false;
        *count = e ? roaring_bitmap_and_cardinality(e->bm, u) : 0;
        return true;
    }
    const sorted_t *s = range_index(x, f);
    uint64_t kmin, kmax;
    /* Pairs count points only when no point has two keys and every indexed point is live. */
    if (!s || !roaring_bitmap_is_empty(s->multi) || !roaring_bitmap_is_subset(s->pts, u)) return false;
    if (!range_keys(f, &kmin, &kmax) || !s->v.n) {
        *count = 0;
        return true;
    }
    spos_t a, b;
    svec_range(&s->v, kmin, kmax, &a, &b);
    *count = svec_count(&s->v, a, b);
    return true;
}

int fanns_pindex_estimate(const fanns_pindex_t *pi, const fanns_filter_t *f, const roaring_bitmap_t *universe,
                          const fanns_pindex_points_t *pts, uint64_t *estimate, bool *exact) {
    *estimate = 0;
    *exact = true;
    if (!f) {
        *estimate = roaring_bitmap_get_cardinality(universe);
        return 0;
    }
    if (quick_count(pi, single_condition(f->root), universe, estimate)) return 0;
    roaring_bitmap_t *hi, *lo;
    int rc = fanns_pindex_eval(pi, f, universe, pts, &hi, &lo, exact, NULL);
    if (rc) return rc;
    uint64_t nhi = roaring_bitmap_get_cardinality(hi);
    if (*exact) {
        *estimate = nhi;
        bm_free(hi);
        return 0;
    }
    uint64_t nlo = roaring_bitmap_get_cardinality(lo);
    roaring_bitmap_andnot_inplace(hi, lo); /* hi is now the maybe points */
    uint64_t m = nhi - nlo;
    if (!pts || !pts->payload) {
        *estimate = nlo + m / 2;
    } else {
        uint64_t s = m < FANNS_PINDEX_SAMPLE ? m : FANNS_PINDEX_SAMPLE, hits = 0;
        for (uint64_t i = 0; i < s; i++) {
            uint32_t off;
            if (!roaring_bitmap_select(hi, (uint32_t)(i * m / s + m / s / 2), &off)) continue;
            const fanns_pid_t *id = pts->pid ? pts->pid(pts->ctx, off) : NULL;
            hits += fanns_filter_match(f, id, pts->payload(pts->ctx, off));
        }
        *estimate = nlo + (s ? (hits * m + s / 2) / s : 0);
        *exact = s == m;
    }
    bm_free(hi);
    bm_free(lo);
    return 0;
}

/* ---- introspection ---- */

json_t *fanns_pindex_schema(const fanns_pindex_t *pi) {
    json_t *o = json_object();
    if (!o) return NULL;
    for (size_t i = 0; i < pi->n; i++) {
        const fidx_t *x = pi->f[i];
        uint64_t pts;
        switch (x->type) {
        case T_KEYWORD:
        case T_UUID: pts = roaring_bitmap_get_cardinality(x->strs.pts); break;
        case T_INTEGER: pts = roaring_bitmap_get_cardinality(x->ints.pts); break;
        case T_FLOAT: pts = roaring_bitmap_get_cardinality(x->nums.pts); break;
        case T_DATETIME: pts = roaring_bitmap_get_cardinality(x->dts.pts); break;
        case T_BOOL: pts = roaring_bitmap_or_cardinality(x->btrue, x->bfalse); break;
        default: pts = roaring_bitmap_get_cardinality(x->seen); break;
        }
        json_t *e = json_pack("{s:s, s:I}", "data_type", type_names[x->type], "points", (json_int_t)pts);
        if (!e || (x->params && json_object_set_new(e, "params", json_deep_copy(x->params))) ||
            json_object_set_new(o, x->name, e)) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

static size_t bm_size(const roaring_bitmap_t *b) { return b ? roaring_bitmap_size_in_bytes(b) : 0; }

size_t fanns_pindex_memory(const fanns_pindex_t *pi) {
    size_t total = sizeof(*pi) + pi->cap * sizeof(fidx_t *);
    for (size_t i = 0; i < pi->n; i++) {
        const fidx_t *x = pi->f[i];
        total += sizeof(*x) + bm_size(x->seen) + bm_size(x->ynull) + bm_size(x->nullish) + bm_size(x->nonnullish) +
                 bm_size(x->irregular) + bm_size(x->btrue) + bm_size(x->bfalse) + bm_size(x->reals) +
                 x->capcounts * sizeof(centry_t);
        for (size_t j = 0; j < x->ncounts; j++) total += bm_size(x->counts[j].bm);
        const typed_t *ts[2] = {&x->strs, &x->ints};
        for (int j = 0; j < 2; j++) {
            total += ts[j]->map.cap * sizeof(ventry_t) + ts[j]->map.keybytes + bm_size(ts[j]->pts) +
                     bm_size(ts[j]->multi) + bm_size(ts[j]->other);
            for (size_t k = 0; k < ts[j]->map.cap; k++)
                if (ts[j]->map.t[k].key) total += bm_size(ts[j]->map.t[k].bm);
        }
        const sorted_t *ss[2] = {&x->nums, &x->dts};
        for (int j = 0; j < 2; j++)
            total += ss[j]->v.n * sizeof(chunk_t) + ss[j]->v.cap * (sizeof(chunk_t *) + sizeof(uint64_t) + sizeof(uint32_t)) +
                     ss[j]->nfwd * sizeof(uint64_t) + ss[j]->nord + bm_size(ss[j]->pts) +
                     bm_size(ss[j]->multi);
    }
    return total;
}

static int values_of_map(const fidx_t *x, const vmap_t *m, char tag, uint64_t min, uint64_t max,
                         int (*fn)(void *, const char *, const char *, size_t, const roaring_bitmap_t *), void *ctx) {
    char buf[32], *key = NULL;
    size_t kcap = 0;
    int rc = 0;
    for (size_t i = 0; i < m->cap && !rc; i++) {
        const ventry_t *e = &m->t[i];
        if (!e->key) continue;
        uint64_t n = roaring_bitmap_get_cardinality(e->bm);
        if (n < min || n > max) continue;
        size_t kl;
        if (tag == 'i') {
            int64_t v;
            memcpy(&v, e->key, sizeof v);
            kl = (size_t)snprintf(buf, sizeof buf, "i%lld", (long long)v);
            rc = fn(ctx, x->name, buf, kl, e->bm);
            continue;
        }
        kl = 1 + e->len;
        if (kl + 1 > kcap) {
            char *k2 = realloc(key, kl + 1);
            if (!k2) {
                rc = FANNS_ENOMEM;
                break;
            }
            key = k2;
            kcap = kl + 1;
        }
        key[0] = tag;
        memcpy(key + 1, e->key, e->len);
        key[kl] = 0;
        rc = fn(ctx, x->name, key, kl, e->bm);
    }
    free(key);
    return rc;
}

int fanns_pindex_values(const fanns_pindex_t *pi, uint64_t min, uint64_t max,
                        int (*fn)(void *ctx, const char *field, const char *key, size_t keylen,
                                  const roaring_bitmap_t *bm),
                        void *ctx) {
    int rc = 0;
    for (size_t i = 0; i < pi->n && !rc; i++) {
        const fidx_t *x = pi->f[i];
        if (x->broken) continue;
        if (has_strs(x)) rc = values_of_map(x, &x->strs.map, 'k', min, max, fn, ctx);
        else if (has_ints(x)) rc = values_of_map(x, &x->ints.map, 'i', min, max, fn, ctx);
        else if (x->type == T_BOOL) {
            for (int b = 1; b >= 0 && !rc; b--) {
                const roaring_bitmap_t *bm = b ? x->btrue : x->bfalse;
                uint64_t n = roaring_bitmap_get_cardinality(bm);
                if (n >= min && n <= max) rc = fn(ctx, x->name, b ? "b1" : "b0", 2, bm);
            }
        }
    }
    return rc;
}
