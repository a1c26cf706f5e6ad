/*
 * test_payload_index.c: tests index/payload_index.c against fanns_filter_match.
 *
 * The property test builds a seeded random collection (scalars, arrays, missing fields,
 * nulls, empty arrays, values of the wrong type, nested objects) and random filter trees
 * (every condition type; must / should / must_not / min_should up to depth 3), then checks,
 * with indexes on all, some and none of the fields: an exact answer equals the brute-force
 * set, an inexact one is a superset whose `sure` part is a subset, and the estimate is exact
 * when claimed and between the bounds otherwise.  The same is repeated after random payload
 * changes and deletions through fanns_pindex_update.  Fixed cases pin down except on
 * multi-valued points, "a" vs "a[]", schema output and errors.  A timing line compares a
 * category filter on 100k points with per-point matching (printed, not asserted).
 */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "filter.h"
#include "payload_index.h"

/* ---- deterministic randomness ---- */

static uint64_t rng_state;

static uint64_t rnd(void) {
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

static int rn(int n) { return (int)(rnd() % (uint64_t)n); }

static const char *const WORDS[] = {"red", "green", "blue", "cyan", "magenta", "yellow", "black", "white", "re", "bl ue"};
#define NWORDS 10

/* ---- a collection ---- */

typedef struct {
    size_t n;
    json_t **payload;          /* NULL: no payload */
    fanns_pid_t *pid;
    roaring_bitmap_t *live;
} coll_t;

static const fanns_pid_t *cb_pid(void *ctx, uint32_t off) {
    coll_t *c = ctx;
    return off < c->n ? &c->pid[off] : NULL;
}

static const json_t *cb_payload(void *ctx, uint32_t off) {
    coll_t *c = ctx;
    return off < c->n ? c->payload[off] : NULL;
}

static bool cb_offset(void *ctx, const fanns_pid_t *id, uint32_t *off) {
    coll_t *c = ctx;
    if (id->kind != FANNS_PID_NUM || id->num == 0 || (id->num - 1) % 3) return false;
    uint64_t o = (id->num - 1) / 3;
    if (o >= c->n || !roaring_bitmap_contains(c->live, (uint32_t)o)) return false;
    *off = (uint32_t)o;
    return true;
}

static json_t *rand_word(void) { return json_string(WORDS[rn(NWORDS)]); }

static json_t *rand_datetime(void) {
    char buf[64];
    switch (rn(4)) {
    case 0: snprintf(buf, sizeof(buf), "2023-01-%02d", 1 + rn(28)); break;
    case 1: snprintf(buf, sizeof(buf), "2023-01-%02dT%02d:30:00+02:00", 1 + rn(28), rn(24)); break;
    case 2: snprintf(buf, sizeof(buf), "not a date %d", rn(3)); break;
    default: snprintf(buf, sizeof(buf), "2023-01-%02dT%02d:00:00Z", 1 + rn(28), rn(24)); break;
    }
    return json_string(buf);
}

/* A value of "odd" shape: null, wrong type, empty array, nested array. */
static json_t *odd_value(void) {
    switch (rn(6)) {
    case 0: return json_null();
    case 1: return json_array();
    case 2: return json_integer(rn(5));
    case 3: return json_pack("[[s]]", WORDS[rn(NWORDS)]);
    case 4: return json_pack("[s, n]", WORDS[rn(NWORDS)]);
    default: return json_real(rn(50) + 0.5);
    }
}

static json_t *rand_payload(void) {
    if (rn(40) == 0) return NULL;
    json_t *p = json_object();
    int r;
    /* kw: keyword scalar */
    if ((r = rn(20)) < 15) json_object_set_new(p, "kw", rand_word());
    else if (r < 17) json_object_set_new(p, "kw", odd_value());
    /* tags: keyword array */
    if ((r = rn(20)) < 14) {
        json_t *a = json_array();
        for (int i = rn(5); i > 0; i--) json_array_append_new(a, rand_word());
        json_object_set_new(p, "tags", a);
    } else if (r < 16) {
        json_object_set_new(p, "tags", rand_word());
    } else if (r < 18) {
        json_object_set_new(p, "tags", odd_value());
    }
    /* n: integer */
    if ((r = rn(20)) < 14) json_object_set_new(p, "n", json_integer(rn(100) - 10));
    else if (r < 16) json_object_set_new(p, "n", json_pack("[i, i]", rn(100), rn(100)));
    else if (r < 18) json_object_set_new(p, "n", odd_value());
    /* x: float */
    if ((r = rn(20)) < 14) json_object_set_new(p, "x", json_real((double)rn(1000) / 10.0 - 20.0));
    else if (r < 16) json_object_set_new(p, "x", json_integer(rn(80)));
    else if (r < 17) json_object_set_new(p, "x", json_pack("[f, f]", rn(100) / 3.0, rn(100) / 7.0));
    else if (r < 18) json_object_set_new(p, "x", odd_value());
    /* flag: bool */
    if ((r = rn(20)) < 14) json_object_set_new(p, "flag", json_boolean(rn(2)));
    else if (r < 16) json_object_set_new(p, "flag", json_pack("[b, b]", rn(2), rn(2)));
    else if (r < 17) json_object_set_new(p, "flag", odd_value());
    /* ts: datetime */
    if ((r = rn(20)) < 14) json_object_set_new(p, "ts", rand_datetime());
    else if (r < 16) json_object_set_new(p, "ts", json_pack("[o, o]", rand_datetime(), rand_datetime()));
    else if (r < 17) json_object_set_new(p, "ts", odd_value());
    /* meta.year, meta.tags */
    if (rn(4)) {
        json_t *m = json_object();
        if (rn(5)) json_object_set_new(m, "year", json_integer(2000 + rn(25)));
        if (rn(3) == 0) json_object_set_new(m, "tags", json_pack("[s]", WORDS[rn(NWORDS)]));
        json_object_set_new(p, "meta", m);
    } else if (rn(4) == 0) {
        json_object_set_new(p, "meta", odd_value());
    }
    /* objs: array of objects */
    if (rn(3)) {
        json_t *a = json_array();
        for (int i = rn(3); i > 0; i--) json_array_append_new(a, json_pack("{s:s, s:i}", "k", WORDS[rn(NWORDS)], "v", rn(10)));
        if (rn(10) == 0) json_array_append_new(a, json_null());
        json_object_set_new(p, "objs", a);
    }
    /* loc: geo point */
    if (rn(3)) json_object_set_new(p, "loc", json_pack("{s:f, s:f}", "lon", rn(20) - 10.0, "lat", rn(20) - 10.0));
    return p;
}

static void coll_init(coll_t *c, size_t n) {
    c->n = n;
    c->payload = calloc(n, sizeof(json_t *));
    c->pid = calloc(n, sizeof(fanns_pid_t));
    c->live = roaring_bitmap_create();
    for (size_t i = 0; i < n; i++) {
        c->pid[i].kind = FANNS_PID_NUM;
        c->pid[i].num = i * 3 + 1;
        c->payload[i] = rand_payload();
        roaring_bitmap_add(c->live, (uint32_t)i);
    }
}

static void coll_free(coll_t *c) {
    for (size_t i = 0; i < c->n; i++) json_decref(c->payload[i]);
    free(c->payload);
    free(c->pid);
    roaring_bitmap_free(c->live);
}

/* ---- random filters ---- */

static const char *const STR_KEYS[] = {"kw", "tags", "tags[]", "meta.tags", "objs[].k", "kw[]"};
static const char *const NUM_KEYS[] = {"n", "x", "meta.year", "n[]", "objs[].v"};
static const char *const ANY_KEYS[] = {"kw", "tags", "tags[]", "n", "x", "flag", "ts", "meta", "meta.year", "objs", "loc", "nope"};

#define PICK(a) (a[rn((int)(sizeof(a) / sizeof(a[0])))])

static json_t *word_list(void) {
    json_t *a = json_array();
    for (int i = rn(4); i >= 0; i--) json_array_append_new(a, rand_word());
    if (rn(8) == 0) json_array_clear(a);
    return a;
}

static json_t *int_list(void) {
    json_t *a = json_array();
    for (int i = rn(4) + 1; i > 0; i--) json_array_append_new(a, json_integer(rn(100) - 10));
    return a;
}

static json_t *rand_range(bool dt) {
    json_t *r = json_object();
    static const char *const b[] = {"lt", "gt", "gte", "lte"};
    int n = rn(3);
    for (int i = 0; i < n; i++) {
        json_t *v;
        if (dt) {
            char buf[40];
            snprintf(buf, sizeof(buf), "2023-01-%02dT%02d:00:00Z", 1 + rn(28), rn(24));
            v = json_string(buf);
        } else {
            v = rn(2) ? json_integer(rn(110) - 15) : json_real(rn(1000) / 10.0 - 20.0);
        }
        json_object_set_new(r, b[rn(4)], v);
    }
    return r;
}

static json_t *rand_filter(int depth);

static json_t *rand_condition(int depth) {
    int kind = rn(depth < 3 ? 20 : 18);
    json_t *c;
    switch (kind) {
    case 0: case 1: case 2:
        return json_pack("{s:s, s:{s:o}}", "key", PICK(STR_KEYS), "match", "value", rand_word());
    case 3:
        return json_pack("{s:s, s:{s:o}}", "key", PICK(STR_KEYS), "match", "any", word_list());
    case 4:
        return json_pack("{s:s, s:{s:o}}", "key", PICK(STR_KEYS), "match", "except", word_list());
    case 5: {
        static const char *const tk[] = {"text", "prefix", "text_any", "phrase"};
        static const char *const tv[] = {"re", "bl", "e", "ue", "r g", "x"};
        return json_pack("{s:s, s:{s:s}}", "key", PICK(STR_KEYS), "match", PICK(tk), PICK(tv));
    }
    case 6:
        return json_pack("{s:s, s:{s:I}}", "key", PICK(NUM_KEYS), "match", "value", (json_int_t)(rn(100) - 10));
    case 7:
        return json_pack("{s:s, s:{s:o}}", "key", PICK(NUM_KEYS), "match", rn(2) ? "any" : "except", int_list());
    case 8: case 9:
        return json_pack("{s:s, s:o}", "key", PICK(NUM_KEYS), "range", rand_range(false));
    case 10:
        return json_pack("{s:s, s:o}", "key", "ts", "range", rand_range(true));
    case 11:
        return json_pack("{s:s, s:{s:b}}", "key", rn(3) ? "flag" : "flag[]", "match", "value", rn(2));
    case 12: {
        c = json_pack("{s:s}", "key", PICK(ANY_KEYS));
        json_t *vc = json_object();
        static const char *const b[] = {"lt", "gt", "gte", "lte"};
        json_object_set_new(vc, b[rn(4)], json_integer(rn(4)));
        json_object_set_new(c, "values_count", vc);
        return c;
    }
    case 13:
        return json_pack("{s:s, s:b}", "key", PICK(ANY_KEYS), rn(2) ? "is_empty" : "is_null", rn(2));
    case 14:
        return json_pack("{s:{s:s}}", rn(2) ? "is_empty" : "is_null", "key", PICK(ANY_KEYS));
    case 15: {
        json_t *ids = json_array();
        for (int i = rn(6); i > 0; i--) json_array_append_new(ids, json_integer(rn(3000) * (rn(4) ? 3 : 1) + 1));
        return json_pack("{s:o}", "has_id", ids);
    }
    case 16:
        return json_pack("{s:s, s:{s:{s:f, s:f}, s:f}}", "key", "loc", "geo_radius", "center", "lon", 0.0, "lat", 0.0,
                         "radius", 400000.0 + rn(400000));
    case 17: /* two checks in one condition: alternatives */
        return json_pack("{s:s, s:{s:I}, s:o}", "key", PICK(NUM_KEYS), "match", "value", (json_int_t)rn(50), "range",
                         rand_range(false));
    case 18:
        return json_pack("{s:{s:s, s:{s:[{s:s, s:{s:o}}]}}}", "nested", "key", "objs", "filter", "must", "key", "k",
                         "match", "value", rand_word());
    default:
        return rand_filter(depth + 1);
    }
}

static json_t *rand_list(int depth, int max) {
    json_t *a = json_array();
    for (int i = rn(max + 1); i > 0; i--) json_array_append_new(a, rand_condition(depth));
    return a;
}

static json_t *rand_filter(int depth) {
    json_t *f = json_object();
    if (depth == 1 && rn(2)) { /* one condition, so that answers are rarely empty */
        static const char *const lists[] = {"must", "should", "must_not"};
        json_object_set_new(f, PICK(lists), rand_condition(depth));
        return f;
    }
    if (rn(3)) json_object_set_new(f, "must", rand_list(depth, 3));
    if (rn(3) == 0) json_object_set_new(f, "should", rand_list(depth, 3));
    if (rn(3) == 0) json_object_set_new(f, "must_not", rand_list(depth, 2));
    if (rn(5) == 0) {
        json_t *l = rand_list(depth, 4);
        size_t n = json_array_size(l);
        json_object_set_new(f, "min_should", json_pack("{s:o, s:i}", "conditions", l, "min_count", 1 + rn((int)n + 1)));
    }
    return f;
}

/* ---- index configurations ---- */

typedef struct {
    const char *field;
    const char *schema;
} fdef_t;

static const fdef_t FIELDS[] = {
    {"kw", "keyword"},   {"tags", "keyword"}, {"n", "integer"},  {"x", "float"},        {"flag", "bool"},
    {"ts", "datetime"},  {"meta.year", "integer"}, {"objs[].k", "keyword"}, {"loc", "geo"}, {"meta", "keyword"},
};
#define NFIELDS (sizeof(FIELDS) / sizeof(FIELDS[0]))

static fanns_pindex_t *build(coll_t *c, unsigned mask, bool tags_all) {
    fanns_pindex_t *pi;
    ck_assert_int_eq(fanns_pindex_new(&pi), 0);
    for (size_t i = 0; i < NFIELDS; i++) {
        if (!(mask & 1u << i)) continue;
        const char *field = (tags_all && strcmp(FIELDS[i].field, "tags") == 0) ? "tags[]" : FIELDS[i].field;
        json_t *s = json_string(FIELDS[i].schema);
        fanns_err_t err = {0};
        ck_assert_msg(fanns_pindex_create(pi, field, s, &err) == 0, "create %s: %s", field, err.msg);
        json_decref(s);
        for (size_t o = 0; o < c->n; o++)
            if (roaring_bitmap_contains(c->live, (uint32_t)o))
                ck_assert_int_eq(fanns_pindex_index_field_point(pi, field, (uint32_t)o, c->payload[o]), 0);
    }
    return pi;
}

static roaring_bitmap_t *brute(coll_t *c, const fanns_filter_t *f) {
    roaring_bitmap_t *r = roaring_bitmap_create();
    for (size_t o = 0; o < c->n; o++)
        if (roaring_bitmap_contains(c->live, (uint32_t)o) && fanns_filter_match(f, &c->pid[o], c->payload[o]))
            roaring_bitmap_add(r, (uint32_t)o);
    return r;
}

typedef struct {
    unsigned evals, exact, est_exact, nontrivial;
} stats_t;

static void check_one(coll_t *c, fanns_pindex_t *pi, const fanns_filter_t *f, const char *js, stats_t *st,
                      bool with_ids) {
    fanns_pindex_points_t pts = {cb_pid, cb_payload, with_ids ? cb_offset : NULL, c};
    roaring_bitmap_t *truth = brute(c, f), *out = NULL, *sure = NULL;
    bool exact;
    fanns_err_t err = {0};
    ck_assert_int_eq(fanns_pindex_eval(pi, f, c->live, &pts, &out, &sure, &exact, &err), 0);
    uint64_t nt = roaring_bitmap_get_cardinality(truth);
    if (exact) {
        ck_assert_ptr_null(sure);
        ck_assert_msg(roaring_bitmap_equals(out, truth), "exact answer differs (%llu vs %llu) for %s",
                      (unsigned long long)roaring_bitmap_get_cardinality(out), (unsigned long long)nt, js);
        st->exact++;
        if (nt > 0 && nt < roaring_bitmap_get_cardinality(c->live)) st->nontrivial++;
    } else {
        ck_assert_ptr_nonnull(sure);
        ck_assert_msg(roaring_bitmap_is_subset(truth, out), "not a superset for %s", js);
        ck_assert_msg(roaring_bitmap_is_subset(sure, truth), "sure is not a subset for %s", js);
    }
    ck_assert_msg(roaring_bitmap_is_subset(out, c->live), "answer outside the universe for %s", js);
    st->evals++;
    uint64_t est;
    bool eexact;
    ck_assert_int_eq(fanns_pindex_estimate(pi, f, c->live, &pts, &est, &eexact), 0);
    if (eexact) {
        ck_assert_msg(est == nt, "exact estimate %llu != %llu for %s", (unsigned long long)est, (unsigned long long)nt, js);
        st->est_exact++;
    } else {
        uint64_t lo = roaring_bitmap_get_cardinality(sure), hi = roaring_bitmap_get_cardinality(out);
        ck_assert_msg(est >= lo && est <= hi, "estimate %llu outside [%llu, %llu] for %s", (unsigned long long)est,
                      (unsigned long long)lo, (unsigned long long)hi, js);
        /* 512 samples: a deviation over 25% of the maybe set (plus slack) would be a bug. */
        uint64_t diff = est > nt ? est - nt : nt - est;
        ck_assert_msg(diff <= (hi - lo) / 4 + 20, "estimate %llu far from %llu for %s", (unsigned long long)est,
                      (unsigned long long)nt, js);
    }
    roaring_bitmap_free(truth);
    roaring_bitmap_free(out);
    if (sure) roaring_bitmap_free(sure);
}

static void check_filters(coll_t *c, fanns_pindex_t *pi, int nfilters, stats_t *st, bool with_ids) {
    for (int i = 0; i < nfilters; i++) {
        json_t *fj = rand_filter(1);
        char *js = json_dumps(fj, JSON_COMPACT);
        fanns_filter_t *f = NULL;
        fanns_err_t err = {0};
        int rc = fanns_filter_compile(fj, "filter", &f, &err);
        if (rc == 0) check_one(c, pi, f, js, st, with_ids);
        else ck_assert_msg(rc == FANNS_EVALIDATE, "compile %s: %s", js, err.msg);
        fanns_filter_free(f);
        free(js);
        json_decref(fj);
    }
}

START_TEST(property) {
    rng_state = 0x9e3779b97f4a7c15ull;
    coll_t c;
    coll_init(&c, 3000);
    unsigned all = (1u << NFIELDS) - 1;
    struct {
        unsigned mask;
        bool tags_all, ids;
    } cfg[] = {{all, false, true}, {all, true, true}, {0x15, false, false}, {0x2a, true, true}, {0, false, false}};
    for (size_t k = 0; k < sizeof(cfg) / sizeof(cfg[0]); k++) {
        fanns_pindex_t *pi = build(&c, cfg[k].mask, cfg[k].tags_all);
        stats_t st = {0};
        check_filters(&c, pi, 400, &st, cfg[k].ids);
        /* Updates: changes, deletions, payloads removed, points revived. */
        for (int round = 0; round < 3; round++) {
            for (int j = 0; j < 300; j++) {
                uint32_t o = (uint32_t)rn((int)c.n);
                json_t *old = roaring_bitmap_contains(c.live, o) ? c.payload[o] : NULL;
                json_t *nw = NULL;
                int what = rn(6);
                if (what == 0 && old) {
                    roaring_bitmap_remove(c.live, o);          /* deleted */
                } else {
                    nw = what == 1 ? NULL : rand_payload();
                    roaring_bitmap_add(c.live, o);
                }
                ck_assert_int_eq(fanns_pindex_update(pi, o, old, nw), 0);
                json_decref(c.payload[o]);
                c.payload[o] = nw;
            }
            check_filters(&c, pi, 100, &st, cfg[k].ids);
        }
        if (cfg[k].mask == all)
            ck_assert_msg(st.exact * 3 > st.evals, "too few exact answers with every field indexed: %u of %u", st.exact,
                          st.evals);
        if (cfg[k].mask == 0) ck_assert(fanns_pindex_memory(pi) > 0);
        printf("payload_index property: mask %#x%s: %u filters, %u exact (%u neither empty nor all), %u exact "
               "estimates\n",
               cfg[k].mask, cfg[k].tags_all ? " (tags[])" : "", st.evals, st.exact, st.nontrivial, st.est_exact);
        fanns_pindex_free(pi);
    }
    coll_free(&c);
}
END_TEST

/* ---- fixed cases ---- */

static json_t *parse(const char *js) {
    json_error_t je;
    json_t *v = json_loads(js, JSON_DECODE_ANY, &je);
    ck_assert_msg(v != NULL, "bad test JSON '%s': %s", js, je.text);
    return v;
}

/* A small collection from JSON payload texts (NULL entries: no payload). */
static void coll_from(coll_t *c, const char *const *payloads, size_t n) {
    c->n = n;
    c->payload = calloc(n, sizeof(json_t *));
    c->pid = calloc(n, sizeof(fanns_pid_t));
    c->live = roaring_bitmap_create();
    for (size_t i = 0; i < n; i++) {
        c->pid[i].kind = FANNS_PID_NUM;
        c->pid[i].num = i * 3 + 1;
        c->payload[i] = payloads[i] ? parse(payloads[i]) : NULL;
        roaring_bitmap_add(c->live, (uint32_t)i);
    }
}

static void add_index(coll_t *c, fanns_pindex_t *pi, const char *field, const char *schema) {
    json_t *s = parse(schema);
    fanns_err_t err = {0};
    ck_assert_msg(fanns_pindex_create(pi, field, s, &err) == 0, "%s", err.msg);
    json_decref(s);
    for (size_t o = 0; o < c->n; o++) ck_assert_int_eq(fanns_pindex_index_field_point(pi, field, (uint32_t)o, c->payload[o]), 0);
}

/* Evaluates filter js; checks the answer against brute force and returns exactness. */
static bool eval_is_exact(coll_t *c, fanns_pindex_t *pi, const char *js, uint64_t want) {
    json_t *fj = parse(js);
    fanns_filter_t *f = NULL;
    fanns_err_t err = {0};
    ck_assert_int_eq(fanns_filter_compile(fj, "filter", &f, &err), 0);
    json_decref(fj);
    stats_t st = {0};
    check_one(c, pi, f, js, &st, true);
    roaring_bitmap_t *t = brute(c, f);
    ck_assert_msg(roaring_bitmap_get_cardinality(t) == want, "%s matches %llu points, expected %llu", js,
                  (unsigned long long)roaring_bitmap_get_cardinality(t), (unsigned long long)want);
    roaring_bitmap_free(t);
    fanns_filter_free(f);
    return st.exact == 1;
}

START_TEST(fixed_semantics) {
    static const char *const P[] = {
        "{\"c\": \"a\"}",                    /* 0 */
        "{\"c\": [\"a\", \"b\"]}",           /* 1 */
        "{\"c\": [\"b\"]}",                  /* 2 */
        "{\"c\": []}",                       /* 3 */
        "{\"c\": null}",                     /* 4 */
        "{}",                                /* 5 */
        "{\"c\": [[\"a\"]]}",                /* 6 */
        "{\"c\": 3}",                        /* 7 */
        NULL,                                /* 8 */
        "{\"c\": [\"a\", null]}",            /* 9 */
    };
    coll_t c;
    coll_from(&c, P, sizeof(P) / sizeof(P[0]));
    fanns_pindex_t *pi;
    ck_assert_int_eq(fanns_pindex_new(&pi), 0);
    add_index(&c, pi, "c", "\"keyword\"");
    /* 0, 1, 9 (6 holds an array inside the array, which "c" does not look into) */
    ck_assert(eval_is_exact(&c, pi, "{\"must\": {\"key\": \"c\", \"match\": {\"value\": \"a\"}}}", 3));
    /* except a: 1 (has b), 2, 6 (an array is another type), 7 (integer) */
    ck_assert(!eval_is_exact(&c, pi, "{\"must\": {\"key\": \"c\", \"match\": {\"except\": [\"a\"]}}}", 4));
    ck_assert(eval_is_exact(&c, pi, "{\"must\": {\"key\": \"c\", \"match\": {\"except\": [\"z\"]}}}", 6));
    /* must_not over an inexact part stays correct */
    ck_assert(!eval_is_exact(&c, pi, "{\"must_not\": {\"key\": \"c\", \"match\": {\"except\": [\"a\"]}}}", 6));
    /* "c[]" through the "c" index: 1, 6 (one level deeper), 9, not 0 (a scalar is not an array);
     * inexact only because of points 0, 6, 7 whose shape differs between "c" and "c[]" */
    ck_assert(!eval_is_exact(&c, pi, "{\"must\": {\"key\": \"c[]\", \"match\": {\"value\": \"a\"}}}", 3));
    /* 3, 4, 5 and 8 (no payload) */
    ck_assert(eval_is_exact(&c, pi, "{\"must\": {\"key\": \"c\", \"is_empty\": true}}", 4));
    ck_assert(eval_is_exact(&c, pi, "{\"must\": {\"is_empty\": {\"key\": \"c\"}}}", 4));
    ck_assert(eval_is_exact(&c, pi, "{\"must\": {\"is_null\": {\"key\": \"c\"}}}", 1));
    ck_assert(eval_is_exact(&c, pi, "{\"must\": {\"key\": \"c\", \"is_null\": true}}", 2));
    ck_assert(eval_is_exact(&c, pi, "{\"must\": {\"key\": \"c\", \"values_count\": {\"gte\": 2}}}", 2));
    ck_assert(eval_is_exact(&c, pi, "{\"must\": {\"key\": \"c\", \"values_count\": {\"lt\": 1}}}", 4));
    ck_assert(eval_is_exact(&c, pi, "{\"must\": {\"key\": \"c\", \"match\": {\"prefix\": \"b\"}}}", 2));
    ck_assert(eval_is_exact(&c, pi, "{\"must\": {\"has_id\": [1, 4, 5, 9999]}}", 2));
    ck_assert(eval_is_exact(&c, pi,
                            "{\"min_should\": {\"min_count\": 2, \"conditions\": [{\"key\": \"c\", \"match\": "
                            "{\"value\": \"a\"}}, {\"key\": \"c\", \"match\": {\"value\": \"b\"}}, {\"has_id\": [28]}]}}",
                            2));
    /* no index on d: inexact, superset */
    ck_assert(!eval_is_exact(&c, pi, "{\"must\": {\"key\": \"d\", \"match\": {\"value\": \"a\"}}}", 0));
    /* ...but an empty must part short-circuits to an exact empty answer */
    ck_assert(eval_is_exact(&c, pi,
                            "{\"must\": [{\"key\": \"c\", \"match\": {\"value\": \"zz\"}}, {\"key\": \"d\", \"match\": "
                            "{\"value\": \"a\"}}]}",
                            0));

    /* Schema output and errors. */
    json_t *s = parse("{\"type\": \"integer\", \"lookup\": true, \"range\": true}");
    fanns_err_t err = {0};
    ck_assert_int_eq(fanns_pindex_create(pi, "meta.year", s, &err), 0);
    json_decref(s);
    json_t *schema = fanns_pindex_schema(pi);
    json_t *want = parse("{\"c\": {\"data_type\": \"keyword\", \"points\": 4}, \"meta.year\": {\"data_type\": "
                         "\"integer\", \"points\": 0, \"params\": {\"type\": \"integer\", \"lookup\": true, \"range\": true}}}");
    ck_assert_msg(json_equal(schema, want), "schema %s", json_dumps(schema, JSON_COMPACT));
    json_decref(schema);
    json_decref(want);
    s = parse("\"vector\"");
    ck_assert_int_eq(fanns_pindex_create(pi, "x", s, &err), FANNS_EINVAL);
    ck_assert_str_eq(err.path, "field_schema");
    json_decref(s);
    s = parse("\"keyword\"");
    ck_assert_int_eq(fanns_pindex_create(pi, "a..b", s, &err), FANNS_EINVAL);
    json_decref(s);
    ck_assert(fanns_pindex_has(pi, "meta.year"));
    ck_assert_int_eq(fanns_pindex_drop(pi, "meta.year"), 0);
    ck_assert(!fanns_pindex_has(pi, "meta.year"));
    ck_assert_int_eq(fanns_pindex_drop(pi, "meta.year"), FANNS_ENOTFOUND);
    fanns_pindex_free(pi);
    coll_free(&c);
}
END_TEST

START_TEST(ranges_and_updates) {
    /* Many points through one sorted array, updated in place: exercises chunk splits and merges. */
    enum { N = 20000 };
    fanns_pindex_t *pi;
    ck_assert_int_eq(fanns_pindex_new(&pi), 0);
    json_t *s = json_string("float");
    ck_assert_int_eq(fanns_pindex_create(pi, "v", s, NULL), 0);
    json_decref(s);
    s = json_string("integer");
    ck_assert_int_eq(fanns_pindex_create(pi, "g", s, NULL), 0);
    json_decref(s);
    json_t **p = calloc(N, sizeof(json_t *));
    roaring_bitmap_t *u = roaring_bitmap_create();
    rng_state = 12345;
    for (uint32_t i = 0; i < N; i++) {
        p[i] = json_pack("{s:f, s:i}", "v", (double)rn(1000) - 500.0, "g", rn(50));
        ck_assert_int_eq(fanns_pindex_update(pi, i, NULL, p[i]), 0);
        roaring_bitmap_add(u, i);
    }
    for (int round = 0; round < 4; round++) {
        for (int j = 0; j < 5000; j++) {
            uint32_t i = (uint32_t)rn(N);
            json_t *nw = round == 3 ? NULL : json_pack("{s:f, s:i}", "v", (double)rn(1000) - 500.0, "g", rn(50));
            ck_assert_int_eq(fanns_pindex_update(pi, i, p[i], nw), 0);
            json_decref(p[i]);
            p[i] = nw;
        }
        for (int q = 0; q < 40; q++) {
            double a = rn(1100) - 550.0, b = a + rn(300);
            char js[200];
            /* Odd queries: a selective match first, so the range is tested point by point. */
            if (q % 2)
                snprintf(js, sizeof(js),
                         "{\"must\": [{\"key\": \"v\", \"range\": {\"gte\": %g, \"lte\": %g}}, {\"key\": \"g\", "
                         "\"match\": {\"value\": %d}}]}",
                         a, b, rn(50));
            else
                snprintf(js, sizeof(js), "{\"must\": {\"key\": \"v\", \"range\": {\"gte\": %g, \"lt\": %g}}}", a, b);
            json_t *fj = parse(js);
            fanns_filter_t *f;
            ck_assert_int_eq(fanns_filter_compile(fj, "filter", &f, NULL), 0);
            roaring_bitmap_t *out;
            bool exact;
            ck_assert_int_eq(fanns_pindex_eval(pi, f, u, NULL, &out, NULL, &exact, NULL), 0);
            ck_assert(exact);
            uint64_t want = 0, est;
            for (uint32_t i = 0; i < N; i++) {
                bool m = fanns_filter_match(f, NULL, p[i]);
                want += m;
                ck_assert_msg(m == roaring_bitmap_contains(out, i), "point %u for %s", i, js);
            }
            ck_assert_int_eq(fanns_pindex_estimate(pi, f, u, NULL, &est, &exact), 0);
            ck_assert(exact);
            ck_assert_uint_eq(est, want);
            roaring_bitmap_free(out);
            fanns_filter_free(f);
            json_decref(fj);
        }
    }
    for (uint32_t i = 0; i < N; i++) json_decref(p[i]);
    free(p);
    roaring_bitmap_free(u);
    fanns_pindex_free(pi);
}
END_TEST

/* A payload for integer_range_paths: y mostly one integer of 21 (a "year"); from mode 1 on
 * also reals (some integral, 2003.0) and nulls, in mode 2 arrays of two; g a rare, a common
 * or another group. */
static json_t *year_payload(int mode) {
    int r = rn(100);
    const char *g = rn(100) < 2 ? "rare" : rn(2) ? "half" : "other";
    json_t *y;
    if (mode && r < 8) y = json_real(rn(2) ? 1990.0 + rn(21) : 1990.5 + rn(20));
    else if (mode == 2 && r < 14) y = json_pack("[ii]", 1990 + rn(21), 1990 + rn(21));
    else if (mode && r < 18) y = json_null();
    else y = json_integer(1990 + rn(21));
    return json_pack("{s:o, s:s}", "y", y, "g", g);
}

START_TEST(integer_range_paths) {
    /* A range on an integer index with few values is answered point by point after a
     * selective match, from the value bitmaps after a dense one or alone, and from the pairs
     * when reals are about: every way must give the exact answer, before and after reals,
     * arrays and deletions come and go. */
    enum { N = 6000 };
    coll_t c;
    memset(&c, 0, sizeof(c));
    c.n = N;
    c.payload = calloc(N, sizeof(json_t *));
    c.pid = calloc(N, sizeof(fanns_pid_t));
    c.live = roaring_bitmap_create();
    rng_state = 777;
    for (uint32_t i = 0; i < N; i++) {
        c.pid[i].kind = FANNS_PID_NUM;
        c.pid[i].num = i * 3 + 1;
        c.payload[i] = year_payload(0);
        roaring_bitmap_add(c.live, i);
    }
    fanns_pindex_t *pi;
    ck_assert_int_eq(fanns_pindex_new(&pi), 0);
    add_index(&c, pi, "y", "\"integer\"");
    add_index(&c, pi, "g", "\"keyword\"");
    static const char *const ops[] = {"gte", "gt", "lte", "lt"};
    for (int phase = 0; phase < 5; phase++) {
        if (phase > 0) {
            /* 1: reals and nulls arrive (points lose their key); 2: arrays too; 3: all leave
             * again; 4: a third of the points is deleted. */
            for (uint32_t i = 0; i < N; i++) {
                if (!roaring_bitmap_contains(c.live, i)) continue;
                json_t *nw = phase == 4 && rn(3) == 0 ? NULL : year_payload(phase < 3 ? phase : 0);
                ck_assert_int_eq(fanns_pindex_update(pi, i, c.payload[i], nw), 0);
                json_decref(c.payload[i]);
                c.payload[i] = nw;
                if (!nw) roaring_bitmap_remove(c.live, i);
            }
        }
        for (int q = 0; q < 60; q++) {
            char r[160], js[400];
            double a = 1988 + rn(25) + (rn(4) == 0 ? 0.5 : 0.0), b = a + rn(12) + (rn(4) == 0 ? 0.5 : 0.0);
            if (rn(5) == 0) snprintf(r, sizeof(r), "{\"%s\": %g}", ops[rn(4)], a);
            else snprintf(r, sizeof(r), "{\"%s\": %g, \"%s\": %g}", ops[rn(2)], a, ops[2 + rn(2)], b);
            switch (q % 5) {
            case 0: snprintf(js, sizeof(js), "{\"must\": {\"key\": \"y\", \"range\": %s}}", r); break;
            case 1:
            case 2:
                snprintf(js, sizeof(js), "{\"must\": [{\"key\": \"y\", \"range\": %s}, {\"key\": \"g\", \"match\": "
                         "{\"value\": \"%s\"}}]}", r, q % 5 == 1 ? "rare" : "half");
                break;
            case 3:
                snprintf(js, sizeof(js), "{\"must\": {\"key\": \"g\", \"match\": {\"value\": \"rare\"}}, \"must_not\": "
                         "{\"key\": \"y\", \"range\": %s}}", r);
                break;
            default:
                snprintf(js, sizeof(js), "{\"must\": {\"key\": \"g\", \"match\": {\"any\": [\"rare\", \"other\"]}}, "
                         "\"should\": [{\"key\": \"y\", \"range\": %s}, {\"key\": \"y\", \"match\": {\"value\": 2001}}]}", r);
                break;
            }
            json_t *fj = parse(js);
            fanns_filter_t *f = NULL;
            ck_assert_int_eq(fanns_filter_compile(fj, "filter", &f, NULL), 0);
            json_decref(fj);
            stats_t st = {0};
            check_one(&c, pi, f, js, &st, true);
            ck_assert_msg(st.exact == 1, "not exact: %s (phase %d)", js, phase);
            fanns_filter_free(f);
        }
    }
    fanns_pindex_free(pi);
    coll_free(&c);
}
END_TEST

START_TEST(rank_churn) {
    /* Ranges after a selective match read each point's key as a byte rank while the points
     * hold at most 255 distinct keys.  The values drift band by band (old keys leave, new
     * ones arrive below, between and above the kept ones), so ranks are renumbered and
     * emptied keys dropped; the last phase brings more than 255 distinct keys at once, after
     * which the full keys answer.  Every answer must equal the brute force. */
    enum { N = 6000, PHASES = 11 };
    coll_t c;
    memset(&c, 0, sizeof(c));
    c.n = N;
    c.payload = calloc(N, sizeof(json_t *));
    c.pid = calloc(N, sizeof(fanns_pid_t));
    c.live = roaring_bitmap_create();
    rng_state = 4242;
    fanns_pindex_t *pi;
    ck_assert_int_eq(fanns_pindex_new(&pi), 0);
    for (uint32_t i = 0; i < N; i++) {
        c.pid[i].kind = FANNS_PID_NUM;
        c.pid[i].num = i + 1;
        c.payload[i] = json_pack("{s:i, s:s}", "t", 1000 + rn(120), "g", rn(50) == 0 ? "rare" : "other");
        roaring_bitmap_add(c.live, i);
    }
    add_index(&c, pi, "t", "\"integer\"");
    add_index(&c, pi, "g", "\"keyword\"");
    for (int phase = 0; phase < PHASES; phase++) {
        /* Band of the phase: 120 values starting 40 higher each time (odd phases also put
         * some points 7 below the band's start, between keys no point holds any more); the
         * last phase spreads over 2,000 values. */
        int lo = 1000 + 40 * phase, width = phase == PHASES - 1 ? 2000 : 120;
        if (phase > 0) {
            for (uint32_t i = 0; i < N; i++) {
                if (rn(4) == 0 && phase != PHASES - 1) continue; /* a quarter keeps its key */
                int v = phase % 2 && rn(10) == 0 ? lo - 7 : lo + rn(width);
                json_t *nw = json_pack("{s:i, s:s}", "t", v, "g", rn(50) == 0 ? "rare" : "other");
                ck_assert_int_eq(fanns_pindex_update(pi, i, c.payload[i], nw), 0);
                json_decref(c.payload[i]);
                c.payload[i] = nw;
            }
        }
        for (int q = 0; q < 40; q++) {
            char js[300];
            int a = lo - 60 + rn(width + 60), b = a + rn(q % 4 == 0 ? 2 : 80);
            if (q % 5 == 4)
                snprintf(js, sizeof(js), "{\"must\": [{\"key\": \"g\", \"match\": {\"value\": \"rare\"}}, "
                         "{\"key\": \"t\", \"range\": {\"gt\": %d}}]}", a);
            else
                snprintf(js, sizeof(js), "{\"must\": [{\"key\": \"g\", \"match\": {\"value\": \"rare\"}}, "
                         "{\"key\": \"t\", \"range\": {\"gte\": %d, \"lte\": %d}}]}", a, b);
            json_t *fj = parse(js);
            fanns_filter_t *f = NULL;
            ck_assert_int_eq(fanns_filter_compile(fj, "filter", &f, NULL), 0);
            json_decref(fj);
            stats_t st = {0};
            check_one(&c, pi, f, js, &st, true);
            ck_assert_msg(st.exact == 1, "not exact: %s (phase %d)", js, phase);
            fanns_filter_free(f);
        }
    }
    fanns_pindex_free(pi);
    coll_free(&c);
}
END_TEST

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void time_filter(fanns_pindex_t *pi, json_t **p, const roaring_bitmap_t *u, uint32_t n, const char *js) {
    json_t *fj = parse(js);
    fanns_filter_t *f;
    ck_assert_int_eq(fanns_filter_compile(fj, "filter", &f, NULL), 0);
    json_decref(fj);
    int reps = 20;
    uint64_t card = 0, est = 0, brute_n = 0;
    bool exact = false, eexact = false;
    double t0 = now_s();
    for (int r = 0; r < reps; r++) {
        roaring_bitmap_t *out;
        ck_assert_int_eq(fanns_pindex_eval(pi, f, u, NULL, &out, NULL, &exact, NULL), 0);
        card = roaring_bitmap_get_cardinality(out);
        roaring_bitmap_free(out);
    }
    double t1 = now_s();
    for (int r = 0; r < reps; r++) ck_assert_int_eq(fanns_pindex_estimate(pi, f, u, NULL, &est, &eexact), 0);
    double t2 = now_s();
    for (uint32_t i = 0; i < n; i++) brute_n += fanns_filter_match(f, NULL, p[i]);
    double t3 = now_s();
    ck_assert(exact && eexact);
    ck_assert_uint_eq(card, brute_n);
    ck_assert_uint_eq(est, brute_n);
    printf("payload_index speed, %u points, %s: %llu match; eval %.3f ms, estimate %.4f ms, per-point match %.2f ms\n",
           n, js, (unsigned long long)card, (t1 - t0) * 1e3 / reps, (t2 - t1) * 1e3 / reps, (t3 - t2) * 1e3);
    fanns_filter_free(f);
}

START_TEST(speed) {
    enum { N = 100000 };
    fanns_pindex_t *pi;
    ck_assert_int_eq(fanns_pindex_new(&pi), 0);
    json_t *s = json_string("keyword");
    ck_assert_int_eq(fanns_pindex_create(pi, "cat", s, NULL), 0);
    json_decref(s);
    s = json_string("float");
    ck_assert_int_eq(fanns_pindex_create(pi, "price", s, NULL), 0);
    json_decref(s);
    json_t **p = calloc(N, sizeof(json_t *));
    roaring_bitmap_t *u = roaring_bitmap_create();
    rng_state = 777;
    double t0 = now_s();
    for (uint32_t i = 0; i < N; i++) {
        char cat[16];
        snprintf(cat, sizeof(cat), "c%d", rn(100));
        p[i] = json_pack("{s:s, s:f, s:[s,s]}", "cat", cat, "price", rn(100000) / 100.0, "tags", "x", "y");
        fanns_pindex_update(pi, i, NULL, p[i]);
        roaring_bitmap_add(u, i);
    }
    double t1 = now_s();
    printf("payload_index speed: indexing %u points (2 indexes) %.1f ms, index memory %zu KiB\n", N, (t1 - t0) * 1e3,
           fanns_pindex_memory(pi) / 1024);
    time_filter(pi, p, u, N, "{\"must\": {\"key\": \"cat\", \"match\": {\"value\": \"c7\"}}}");
    time_filter(pi, p, u, N, "{\"must\": {\"key\": \"cat\", \"match\": {\"any\": [\"c1\", \"c2\", \"c3\"]}}}");
    time_filter(pi, p, u, N, "{\"must\": {\"key\": \"price\", \"range\": {\"gte\": 100, \"lt\": 600}}}");
    time_filter(pi, p, u, N,
                "{\"must\": [{\"key\": \"cat\", \"match\": {\"except\": [\"c1\"]}}, {\"key\": \"price\", \"range\": "
                "{\"lt\": 900}}], \"must_not\": {\"key\": \"cat\", \"match\": {\"value\": \"c5\"}}}");
    /* A batch of 1000 updates into the indexed set. */
    t0 = now_s();
    for (uint32_t j = 0; j < 1000; j++) {
        uint32_t i = (uint32_t)rn(N);
        json_t *nw = json_pack("{s:s, s:f}", "cat", "c3", "price", rn(100000) / 100.0);
        fanns_pindex_update(pi, i, p[i], nw);
        json_decref(p[i]);
        p[i] = nw;
    }
    t1 = now_s();
    printf("payload_index speed: 1000 updates %.2f ms\n", (t1 - t0) * 1e3);
    for (uint32_t i = 0; i < N; i++) json_decref(p[i]);
    free(p);
    roaring_bitmap_free(u);
    fanns_pindex_free(pi);
}
END_TEST

int main(void) {
    Suite *s = suite_create("payload_index");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, fixed_semantics);
    tcase_add_test(tc, ranges_and_updates);
    tcase_add_test(tc, integer_range_paths);
    tcase_add_test(tc, rank_churn);
    tcase_add_test(tc, property);
    tcase_add_test(tc, speed);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
