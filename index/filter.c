/*
 * filter.c: compiles Qdrant filter JSON into a predicate tree and evaluates it per point
 * (see filter.h for the accepted language).
 *
 * The semantics copy Qdrant's payload checker (qdrant/qdrant lib/segment/src/payload_storage/
 * condition_checker.rs and query_checker.rs, lib/segment/src/json_path/, types.rs):
 *  - a key path yields zero or more values: "a.b" steps into objects only, "a[]" yields every
 *    element of an array, "a[3]" one element; a segment applied to the wrong type yields
 *    nothing (no implicit flattening of arrays of objects);
 *  - a field condition matches if any yielded value matches; when the path yields nothing the
 *    condition takes its "empty" answer (values_count is checked against 0, is_empty: true
 *    matches, is_null: false matches, everything else fails);
 *  - an array value is matched element by element (any), except by values_count, is_empty
 *    and is_null which look at the array itself;
 *  - several checks in one field condition (match and range, say) are alternatives (OR),
 *    values_count, then is_empty, then is_null take precedence, as in Qdrant;
 *  - `except` fails on null and succeeds on values of another type; `value` and `any` on
 *    integers ignore floats (5.0 is not 5), as Qdrant's as_i64();
 *  - {is_empty:{key}} is true when every yielded value is null or [] (so also when none is);
 *    {is_null:{key}} is true when some yielded value is null;
 *  - nested {key, filter}: "[]" is appended to key unless present, and the inner filter is
 *    checked against each object element with keys relative to it; has_id inside a nested
 *    filter never matches (Qdrant passes no id there);
 *  - should: at least one, but an empty list is no constraint; min_should: at least min_count
 *    (>= 1) of its conditions; must: all; must_not: none.
 *
 * Invariants: a compiled tree is immutable and owns copies of every string it needs, so it
 * outlives the JSON it came from and can be shared between threads.  Evaluation never
 * allocates: key paths are walked with a visitor, `any`/`except` lists and has_id keys are
 * sorted at compile time and binary searched.  Every compile error names the JSON path of the
 * offending field.  The tree's layout lives in filter_int.h so that payload_index.c can
 * answer conditions from bitmaps; the helpers exported there (fanns__filter_*) are the ones
 * evaluation uses, so both paths share one definition of a key path and of string matching.
 */
#include "filter.h"
#include "filter_int.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datetime.h"

/* ---- freeing ---- */

static void kpath_free(kpath_t *k) {
    for (size_t i = 0; i < k->n; i++) free(k->segs[i].key);
    free(k->segs);
    k->segs = NULL;
    k->n = 0;
}

void fanns__filter_kpath_free(kpath_t *k) { kpath_free(k); }

bool fanns__filter_kpath_eq(const kpath_t *a, const kpath_t *b) {
    if (a->n != b->n) return false;
    for (size_t i = 0; i < a->n; i++) {
        const seg_t *x = &a->segs[i], *y = &b->segs[i];
        if (x->kind != y->kind) return false;
        if (x->kind == SEG_INDEX && x->index != y->index) return false;
        if (x->kind == SEG_KEY && strcmp(x->key, y->key) != 0) return false;
    }
    return true;
}

static void node_free(node_t *n);

static void list_free(list_t *l) {
    for (size_t i = 0; i < l->n; i++) node_free(l->v[i]);
    free(l->v);
}

static void node_free(node_t *n) {
    if (!n) return;
    switch (n->kind) {
    case N_FILTER:
        list_free(&n->u.f.must);
        list_free(&n->u.f.should);
        list_free(&n->u.f.must_not);
        list_free(&n->u.f.min_should);
        break;
    case N_FIELD: {
        field_t *f = &n->u.fc;
        kpath_free(&f->key);
        free(f->str.s);
        for (size_t i = 0; i < f->nstrs; i++) free(f->strs[i].s);
        free(f->strs);
        free(f->ints);
        for (size_t i = 0; i < f->nrings; i++) free(f->rings[i].pts);
        free(f->rings);
        break;
    }
    case N_IS_EMPTY:
    case N_IS_NULL: kpath_free(&n->u.key); break;
    case N_HAS_ID: free(n->u.has_id.keys); break;
    case N_NESTED:
        kpath_free(&n->u.nested.key);
        node_free(n->u.nested.filter);
        break;
    }
    free(n);
}

void fanns_filter_free(fanns_filter_t *f) {
    if (!f) return;
    node_free(f->root);
    free(f);
}

size_t fanns_filter_count(const fanns_filter_t *f) { return f ? f->nconds : 0; }

/* ---- compile context: error path and limits ---- */

typedef struct {
    fanns_err_t *err;
    size_t nconds;
    char path[512];
    size_t plen;
} cctx_t;

/* Appends to the error path (a filter is compiled on every search: no printf here).
 * Returns the old length for path_pop. */
static size_t path_cat(cctx_t *c, const char *s) {
    size_t old = c->plen, n = strlen(s);
    if (n > sizeof(c->path) - 1 - c->plen) n = sizeof(c->path) - 1 - c->plen;
    memcpy(c->path + c->plen, s, n);
    c->plen += n;
    c->path[c->plen] = '\0';
    return old;
}

/* pre then s: path_key(c, ".", "must") */
static size_t path_key(cctx_t *c, const char *pre, const char *s) {
    size_t old = path_cat(c, pre);
    path_cat(c, s);
    return old;
}

/* pre then [i]: path_idx(c, ".interiors", 2) */
static size_t path_idx(cctx_t *c, const char *pre, size_t i) {
    char d[24], *e = d + sizeof(d) - 1;
    *e = '\0';
    *--e = ']';
    do *--e = (char)('0' + i % 10);
    while ((i /= 10) != 0);
    *--e = '[';
    size_t old = path_cat(c, pre);
    path_cat(c, e);
    return old;
}

static void path_pop(cctx_t *c, size_t old) {
    c->plen = old;
    c->path[old] = '\0';
}

__attribute__((format(printf, 3, 4))) static int fail(cctx_t *c, int code, const char *fmt, ...) {
    char msg[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return fanns_err_set(c->err, code, c->path, "%s: %s", c->path, msg);
}

static int oom(cctx_t *c) { return fanns_err_set(c->err, FANNS_ENOMEM, c->path, "out of memory compiling filter"); }

static const char *json_type_name(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "a value";
}

static char *dupn(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

/* ---- key paths (Qdrant JsonPath syntax) ---- */

static bool raw_char(unsigned char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
           ch == '-' || ch >= 0x80;
}

static int seg_add(kpath_t *k, size_t *cap, uint8_t kind, size_t index, const char *key, size_t keylen) {
    if (k->n == *cap) {
        size_t nc = *cap ? *cap * 2 : 4;
        seg_t *ns = realloc(k->segs, nc * sizeof(*ns));
        if (!ns) return -1;
        k->segs = ns;
        *cap = nc;
    }
    seg_t *s = &k->segs[k->n];
    s->kind = kind;
    s->index = index;
    s->key = NULL;
    if (kind == SEG_KEY && !(s->key = dupn(key, keylen))) return -1;
    k->n++;
    return 0;
}

/* Reads one key (raw or "quoted") at *p; returns its bounds or false. */
static bool read_key(const char **p, const char **ks, size_t *kl) {
    const char *q = *p;
    if (*q == '"') {
        q++;
        const char *start = q;
        while (*q && *q != '"' && *q != '\\') q++;
        if (*q != '"') return false;
        *ks = start;
        *kl = (size_t)(q - start);
        *p = q + 1;
        return true;
    }
    const char *start = q;
    while (*q && raw_char((unsigned char)*q)) q++;
    if (q == start) return false;
    *ks = start;
    *kl = (size_t)(q - start);
    *p = q;
    return true;
}

/* Parses a payload key at the current path; the key JSON value must be a string. */
static int compile_key(cctx_t *c, const json_t *v, kpath_t *out) {
    memset(out, 0, sizeof(*out));
    if (!json_is_string(v)) return fail(c, FANNS_EINVAL, "payload key must be a string, got %s", json_type_name(v));
    const char *s = json_string_value(v);
    if (strlen(s) != json_string_length(v)) return fail(c, FANNS_EINVAL, "payload key must not contain NUL");
    size_t cap = 0;
    const char *p = s, *ks;
    size_t kl;
    if (!read_key(&p, &ks, &kl)) goto bad;
    if (seg_add(out, &cap, SEG_KEY, 0, ks, kl)) goto nomem;
    while (*p) {
        if (*p == '.') {
            p++;
            if (!read_key(&p, &ks, &kl)) goto bad;
            if (seg_add(out, &cap, SEG_KEY, 0, ks, kl)) goto nomem;
        } else if (p[0] == '[' && p[1] == ']') {
            p += 2;
            if (seg_add(out, &cap, SEG_ALL, 0, NULL, 0)) goto nomem;
        } else if (*p == '[') {
            p++;
            if (*p < '0' || *p > '9') goto bad;
            size_t idx = 0;
            while (*p >= '0' && *p <= '9') {
                if (idx > (SIZE_MAX - 9) / 10) goto bad;
                idx = idx * 10 + (size_t)(*p - '0');
                p++;
            }
            if (*p++ != ']') goto bad;
            if (seg_add(out, &cap, SEG_INDEX, idx, NULL, 0)) goto nomem;
        } else {
            goto bad;
        }
    }
    return 0;
bad:
    kpath_free(out);
    return fail(c, FANNS_EINVAL, "invalid payload key '%.100s' (expected a JSON path such as a.b, a[].b or a[0])", s);
nomem:
    kpath_free(out);
    return oom(c);
}

int fanns__filter_key_parse(const char *key, const char *path, kpath_t *out, fanns_err_t *err) {
    memset(out, 0, sizeof(*out));
    cctx_t *c = calloc(1, sizeof(*c));
    if (!c) return fanns_err_set(err, FANNS_ENOMEM, path, "out of memory parsing a payload key");
    json_t *v = json_string(key ? key : "");
    int rc;
    if (!v) {
        rc = fanns_err_set(err, FANNS_EINVAL, path, "%s: payload key must be a UTF-8 string", path ? path : "key");
        goto done;
    }
    c->err = err;
    path_key(c, "", path ? path : "key");
    rc = compile_key(c, v, out);
done:
    json_decref(v);
    free(c);
    return rc;
}

/* ---- compile: conditions and filters ---- */

static int compile_filter(cctx_t *c, const json_t *v, int depth, node_t **out);
static int compile_condition(cctx_t *c, const json_t *v, int depth, node_t **out);

static node_t *node_new(uint8_t kind) {
    node_t *n = calloc(1, sizeof(*n));
    if (n) n->kind = kind;
    return n;
}

static int count_condition(cctx_t *c) {
    if (++c->nconds > FANNS_FILTER_MAX_CONDITIONS)
        return fail(c, FANNS_EINVAL, "filter has more than %d conditions", FANNS_FILTER_MAX_CONDITIONS);
    return 0;
}

/* A condition list: a JSON array, a single condition object, or null (absent). */
static int compile_list(cctx_t *c, const json_t *v, int depth, list_t *out) {
    if (json_is_null(v)) return 0;
    if (json_is_object(v)) {
        if (!(out->v = calloc(1, sizeof(node_t *)))) return oom(c);
        out->n = 1; /* counted first so a half-compiled node is freed with the list */
        return compile_condition(c, v, depth, &out->v[0]);
    }
    if (!json_is_array(v))
        return fail(c, FANNS_EINVAL, "expected a list of conditions or a condition object, got %s", json_type_name(v));
    size_t n = json_array_size(v);
    if (n > FANNS_FILTER_MAX_CONDITIONS)
        return fail(c, FANNS_EINVAL, "filter has more than %d conditions", FANNS_FILTER_MAX_CONDITIONS);
    if (n && !(out->v = calloc(n, sizeof(node_t *)))) return oom(c);
    for (size_t i = 0; i < n; i++) {
        size_t old = path_idx(c, "", i);
        out->n = i + 1;
        int rc = compile_condition(c, json_array_get(v, i), depth, &out->v[i]);
        if (rc) return rc;
        path_pop(c, old);
    }
    return 0;
}

static int compile_filter(cctx_t *c, const json_t *v, int depth, node_t **out) {
    if (depth > FANNS_FILTER_MAX_DEPTH)
        return fail(c, FANNS_EINVAL, "filter is nested deeper than %d levels", FANNS_FILTER_MAX_DEPTH);
    if (!json_is_object(v)) return fail(c, FANNS_EINVAL, "expected a filter object, got %s", json_type_name(v));
    node_t *n = node_new(N_FILTER);
    if (!n) return oom(c);
    *out = n;
    const char *k;
    json_t *val;
    json_object_foreach((json_t *)v, k, val) {
        size_t old = path_key(c, ".", k);
        int rc = 0;
        if (strcmp(k, "must") == 0) {
            rc = compile_list(c, val, depth, &n->u.f.must);
        } else if (strcmp(k, "should") == 0) {
            rc = compile_list(c, val, depth, &n->u.f.should);
        } else if (strcmp(k, "must_not") == 0) {
            rc = compile_list(c, val, depth, &n->u.f.must_not);
        } else if (strcmp(k, "min_should") == 0) {
            if (json_is_null(val)) goto next;
            if (!json_is_object(val))
                return fail(c, FANNS_EINVAL, "expected an object {conditions, min_count}, got %s", json_type_name(val));
            const json_t *conds = json_object_get(val, "conditions"), *mc = json_object_get(val, "min_count");
            const char *k2;
            json_t *v2;
            json_object_foreach(val, k2, v2) {
                if (strcmp(k2, "conditions") && strcmp(k2, "min_count")) {
                    path_key(c, ".", k2);
                    return fail(c, FANNS_EINVAL, "unknown field '%s', expected one of 'conditions', 'min_count'", k2);
                }
            }
            if (!conds) return fail(c, FANNS_EINVAL, "missing field 'conditions'");
            if (!mc) return fail(c, FANNS_EINVAL, "missing field 'min_count'");
            size_t o2 = path_key(c, ".", "min_count");
            if (!json_is_integer(mc) || json_integer_value(mc) < 0)
                return fail(c, FANNS_EINVAL, "expected a non-negative integer, got %s", json_type_name(mc));
            if (json_integer_value(mc) < 1) return fail(c, FANNS_EVALIDATE, "min_count must be greater than 0");
            n->u.f.min_count = (size_t)json_integer_value(mc);
            path_pop(c, o2);
            o2 = path_key(c, ".", "conditions");
            if (!json_is_array(conds))
                return fail(c, FANNS_EINVAL, "expected a list of conditions, got %s", json_type_name(conds));
            rc = compile_list(c, conds, depth, &n->u.f.min_should);
            if (rc) return rc;
            path_pop(c, o2);
        } else {
            return fail(c, FANNS_EINVAL, "unknown field '%s', expected one of 'should', 'min_should', 'must', 'must_not'", k);
        }
        if (rc) return rc;
    next:
        path_pop(c, old);
    }
    return 0;
}

/* Checks that obj has no key outside the NULL-terminated list allowed. */
static int only_keys(cctx_t *c, const json_t *obj, const char *const *allowed, const char *expected) {
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v) {
        bool ok = false;
        for (const char *const *a = allowed; *a; a++)
            if (strcmp(k, *a) == 0) ok = true;
        if (!ok) {
            path_key(c, ".", k);
            return fail(c, FANNS_EINVAL, "unknown field '%s', expected %s", k, expected);
        }
    }
    return 0;
}

/* {key: "..."} as used by is_empty / is_null. */
static int compile_payload_field(cctx_t *c, const json_t *v, kpath_t *out) {
    if (!json_is_object(v)) return fail(c, FANNS_EINVAL, "expected an object {\"key\": ...}, got %s", json_type_name(v));
    static const char *const allowed[] = {"key", NULL};
    int rc = only_keys(c, v, allowed, "'key'");
    if (rc) return rc;
    const json_t *k = json_object_get(v, "key");
    if (!k) return fail(c, FANNS_EINVAL, "missing field 'key'");
    size_t old = path_key(c, ".", "key");
    rc = compile_key(c, k, out);
    if (rc) return rc;
    path_pop(c, old);
    return 0;
}

static int cmp_str(const void *a, const void *b) {
    const str_t *x = a, *y = b;
    size_t m = x->len < y->len ? x->len : y->len;
    int r = memcmp(x->s, y->s, m);
    if (r) return r;
    return x->len < y->len ? -1 : x->len > y->len;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* any / except list: all strings or all integers (an empty list counts as strings). */
static int compile_value_list(cctx_t *c, const json_t *v, field_t *f, bool except) {
    if (!json_is_array(v)) return fail(c, FANNS_EINVAL, "expected a list of strings or integers, got %s", json_type_name(v));
    size_t n = json_array_size(v);
    if (n > FANNS_FILTER_MAX_LIST) return fail(c, FANNS_EINVAL, "list has more than %d values", FANNS_FILTER_MAX_LIST);
    bool ints = n > 0 && json_is_integer(json_array_get(v, 0));
    f->mkind = ints ? (except ? M_EXCEPT_INT : M_ANY_INT) : (except ? M_EXCEPT_STR : M_ANY_STR);
    if (n == 0) return 0;
    if (ints) {
        if (!(f->ints = malloc(n * sizeof(int64_t)))) return oom(c);
    } else {
        if (!(f->strs = calloc(n, sizeof(str_t)))) return oom(c);
    }
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(v, i);
        if (ints) {
            if (!json_is_integer(e)) {
                path_idx(c, "", i);
                return fail(c, FANNS_EINVAL, "expected an integer like the first value, got %s", json_type_name(e));
            }
            f->ints[f->nints++] = json_integer_value(e);
        } else {
            if (!json_is_string(e)) {
                path_idx(c, "", i);
                return fail(c, FANNS_EINVAL, "expected a string like the first value, got %s", json_type_name(e));
            }
            str_t *s = &f->strs[f->nstrs];
            if (!(s->s = dupn(json_string_value(e), json_string_length(e)))) return oom(c);
            s->len = json_string_length(e);
            f->nstrs++;
        }
    }
    if (ints) qsort(f->ints, f->nints, sizeof(int64_t), cmp_i64);
    else qsort(f->strs, f->nstrs, sizeof(str_t), cmp_str);
    return 0;
}

static bool is_ws(char ch) { return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' || ch == '\f'; }

static int compile_match(cctx_t *c, const json_t *v, field_t *f) {
    if (!json_is_object(v)) return fail(c, FANNS_EINVAL, "expected a match object, got %s", json_type_name(v));
    if (json_object_size(v) != 1) {
        return fail(c, FANNS_EINVAL,
                    "expected exactly one of 'value', 'any', 'except', 'text', 'phrase', 'text_any', 'prefix'");
    }
    const char *k = json_object_iter_key(json_object_iter((json_t *)v));
    const json_t *val = json_object_get(v, k);
    size_t old = path_key(c, ".", k);
    int rc = 0;
    f->has_match = true;
    if (strcmp(k, "value") == 0) {
        if (json_is_string(val)) {
            f->mkind = M_VALUE_STR;
        } else if (json_is_integer(val)) {
            f->mkind = M_VALUE_INT;
            f->ival = json_integer_value(val);
        } else if (json_is_boolean(val)) {
            f->mkind = M_VALUE_BOOL;
            f->bval = json_is_true(val);
        } else {
            return fail(c, FANNS_EINVAL, "expected a string, integer or boolean, got %s", json_type_name(val));
        }
    } else if (strcmp(k, "text") == 0 || strcmp(k, "phrase") == 0 || strcmp(k, "prefix") == 0 ||
               strcmp(k, "text_any") == 0) {
        if (!json_is_string(val)) return fail(c, FANNS_EINVAL, "expected a string, got %s", json_type_name(val));
        f->mkind = k[0] == 'p' && k[1] == 'r' ? M_PREFIX : strcmp(k, "text_any") == 0 ? M_TEXT_ANY : M_TEXT;
    } else if (strcmp(k, "any") == 0 || strcmp(k, "except") == 0) {
        rc = compile_value_list(c, val, f, k[0] == 'e');
        if (rc) return rc;
    } else {
        return fail(c, FANNS_EINVAL,
                    "unknown field '%s', expected one of 'value', 'any', 'except', 'text', 'phrase', 'text_any', 'prefix'", k);
    }
    if (f->mkind == M_VALUE_STR || f->mkind == M_TEXT || f->mkind == M_PREFIX || f->mkind == M_TEXT_ANY) {
        f->str.len = json_string_length(val);
        if (!(f->str.s = dupn(json_string_value(val), f->str.len))) return oom(c);
    }
    if (f->mkind == M_TEXT_ANY) {
        /* Split into whitespace-separated tokens once. */
        size_t cap = 0;
        const char *s = f->str.s, *e = s + f->str.len;
        while (s < e) {
            while (s < e && is_ws(*s)) s++;
            const char *t = s;
            while (s < e && !is_ws(*s)) s++;
            if (s == t) break;
            if (f->nstrs == cap) {
                size_t nc = cap ? cap * 2 : 4;
                str_t *ns = realloc(f->strs, nc * sizeof(*ns));
                if (!ns) return oom(c);
                f->strs = ns;
                cap = nc;
            }
            if (!(f->strs[f->nstrs].s = dupn(t, (size_t)(s - t)))) return oom(c);
            f->strs[f->nstrs++].len = (size_t)(s - t);
        }
    }
    path_pop(c, old);
    return 0;
}

static const char *const bound_names[4] = {"lt", "gt", "gte", "lte"};

static int bound_index(const char *k) {
    for (int i = 0; i < 4; i++)
        if (strcmp(k, bound_names[i]) == 0) return i;
    return -1;
}

static int compile_range(cctx_t *c, const json_t *v, field_t *f) {
    if (!json_is_object(v)) return fail(c, FANNS_EINVAL, "expected a range object {gt, gte, lt, lte}, got %s", json_type_name(v));
    static const char *const allowed[] = {"lt", "gt", "gte", "lte", NULL};
    int rc = only_keys(c, v, allowed, "one of 'lt', 'gt', 'gte', 'lte'");
    if (rc) return rc;
    const char *k;
    json_t *b;
    bool dt = false;
    json_object_foreach((json_t *)v, k, b) if (json_is_string(b)) dt = true;
    f->has_range = true;
    f->range_dt = dt;
    json_object_foreach((json_t *)v, k, b) {
        int i = bound_index(k);
        if (json_is_null(b)) continue;
        size_t old = path_key(c, ".", k);
        if (dt) {
            if (!json_is_string(b))
                return fail(c, FANNS_EINVAL, "datetime range bounds must all be RFC 3339 strings, got %s", json_type_name(b));
            if (fanns_datetime_parse(json_string_value(b), &f->rdt[i]))
                return fail(c, FANNS_EINVAL,
                            "'%.64s' does not match accepted datetime format (RFC 3339). Example: 2014-01-01T00:00:00Z",
                            json_string_value(b));
        } else {
            if (!json_is_number(b)) return fail(c, FANNS_EINVAL, "expected a number, got %s", json_type_name(b));
            f->rnum[i] = json_number_value(b);
        }
        f->rset |= (uint8_t)(1u << i);
        path_pop(c, old);
    }
    return 0;
}

static int compile_values_count(cctx_t *c, const json_t *v, field_t *f) {
    if (!json_is_object(v)) return fail(c, FANNS_EINVAL, "expected an object {gt, gte, lt, lte}, got %s", json_type_name(v));
    static const char *const allowed[] = {"lt", "gt", "gte", "lte", NULL};
    int rc = only_keys(c, v, allowed, "one of 'lt', 'gt', 'gte', 'lte'");
    if (rc) return rc;
    const char *k;
    json_t *b;
    f->has_vc = true;
    json_object_foreach((json_t *)v, k, b) {
        if (json_is_null(b)) continue;
        int i = bound_index(k);
        size_t old = path_key(c, ".", k);
        if (!json_is_integer(b) || json_integer_value(b) < 0)
            return fail(c, FANNS_EINVAL, "expected a non-negative integer, got %s", json_type_name(b));
        f->vc[i] = (uint64_t)json_integer_value(b);
        f->vcset |= (uint8_t)(1u << i);
        path_pop(c, old);
    }
    return 0;
}

static int compile_geo_point(cctx_t *c, const json_t *v, geo_pt_t *out) {
    if (!json_is_object(v)) return fail(c, FANNS_EINVAL, "expected a geo point {lon, lat}, got %s", json_type_name(v));
    static const char *const allowed[] = {"lon", "lat", NULL};
    int rc = only_keys(c, v, allowed, "'lon' or 'lat'");
    if (rc) return rc;
    const json_t *lon = json_object_get(v, "lon"), *lat = json_object_get(v, "lat");
    if (!json_is_number(lon)) return fail(c, FANNS_EINVAL, "'lon' must be a number");
    if (!json_is_number(lat)) return fail(c, FANNS_EINVAL, "'lat' must be a number");
    out->lon = json_number_value(lon);
    out->lat = json_number_value(lat);
    if (out->lon < -180 || out->lon > 180 || out->lat < -90 || out->lat > 90)
        return fail(c, FANNS_EINVAL, "wrong format of GeoPoint payload: expected `lat` = %g within [-90;90] and `lon` = %g within [-180;180]",
                    out->lat, out->lon);
    return 0;
}

static int compile_ring(cctx_t *c, const json_t *v, ring_t *r) {
    if (!json_is_object(v)) return fail(c, FANNS_EINVAL, "expected a line string {points: [...]}, got %s", json_type_name(v));
    static const char *const allowed[] = {"points", NULL};
    int rc = only_keys(c, v, allowed, "'points'");
    if (rc) return rc;
    const json_t *pts = json_object_get(v, "points");
    size_t old = path_key(c, ".", "points");
    if (!json_is_array(pts)) return fail(c, FANNS_EINVAL, "expected a list of geo points");
    size_t n = json_array_size(pts);
    if (n > FANNS_FILTER_MAX_LIST) return fail(c, FANNS_EINVAL, "list has more than %d values", FANNS_FILTER_MAX_LIST);
    if (n <= 3) return fail(c, FANNS_EVALIDATE, "polygon invalid, the size must be at least 4, got %zu", n);
    if (!(r->pts = calloc(n, sizeof(geo_pt_t)))) return oom(c);
    for (size_t i = 0; i < n; i++) {
        size_t o2 = path_idx(c, "", i);
        rc = compile_geo_point(c, json_array_get(pts, i), &r->pts[i]);
        if (rc) return rc;
        r->n = i + 1;
        path_pop(c, o2);
    }
    if (r->pts[0].lon != r->pts[n - 1].lon || r->pts[0].lat != r->pts[n - 1].lat)
        return fail(c, FANNS_EVALIDATE, "polygon invalid, the first and the last points should be the same to form a closed line");
    path_pop(c, old);
    return 0;
}

static int compile_geo(cctx_t *c, const char *k, const json_t *v, field_t *f) {
    int rc;
    if (!json_is_object(v)) return fail(c, FANNS_EINVAL, "expected an object, got %s", json_type_name(v));
    if (strcmp(k, "geo_radius") == 0) {
        static const char *const allowed[] = {"center", "radius", NULL};
        if ((rc = only_keys(c, v, allowed, "'center' or 'radius'"))) return rc;
        const json_t *center = json_object_get(v, "center"), *radius = json_object_get(v, "radius");
        size_t old = path_key(c, ".", "center");
        if ((rc = compile_geo_point(c, center, &f->center))) return rc;
        path_pop(c, old);
        path_key(c, ".", "radius");
        if (!json_is_number(radius)) return fail(c, FANNS_EINVAL, "expected a number of meters");
        f->radius = json_number_value(radius);
        path_pop(c, old);
        f->has_radius = true;
    } else if (strcmp(k, "geo_bounding_box") == 0) {
        static const char *const allowed[] = {"top_left", "bottom_right", NULL};
        if ((rc = only_keys(c, v, allowed, "'top_left' or 'bottom_right'"))) return rc;
        size_t old = path_key(c, ".", "top_left");
        if ((rc = compile_geo_point(c, json_object_get(v, "top_left"), &f->top_left))) return rc;
        path_pop(c, old);
        path_key(c, ".", "bottom_right");
        if ((rc = compile_geo_point(c, json_object_get(v, "bottom_right"), &f->bottom_right))) return rc;
        path_pop(c, old);
        f->has_bbox = true;
    } else {
        static const char *const allowed[] = {"exterior", "interiors", NULL};
        if ((rc = only_keys(c, v, allowed, "'exterior' or 'interiors'"))) return rc;
        const json_t *ext = json_object_get(v, "exterior"), *ints = json_object_get(v, "interiors");
        size_t nint = json_is_array(ints) ? json_array_size(ints) : 0;
        if (ints && !json_is_null(ints) && !json_is_array(ints)) {
            path_key(c, ".", "interiors");
            return fail(c, FANNS_EINVAL, "expected a list of line strings, got %s", json_type_name(ints));
        }
        if (nint > FANNS_FILTER_MAX_LIST) return fail(c, FANNS_EINVAL, "too many interiors");
        if (!(f->rings = calloc(nint + 1, sizeof(ring_t)))) return oom(c);
        size_t old = path_key(c, ".", "exterior");
        if ((rc = compile_ring(c, ext, &f->rings[0]))) return rc;
        f->nrings = 1;
        path_pop(c, old);
        for (size_t i = 0; i < nint; i++) {
            path_idx(c, ".interiors", i);
            if ((rc = compile_ring(c, json_array_get(ints, i), &f->rings[i + 1]))) return rc;
            f->nrings++;
            path_pop(c, old);
        }
        f->has_poly = true;
    }
    return 0;
}

static int compile_field(cctx_t *c, const json_t *v, node_t *n) {
    field_t *f = &n->u.fc;
    f->is_empty = f->is_null = -1;
    const char *k;
    json_t *val;
    json_object_foreach((json_t *)v, k, val) {
        size_t old = path_key(c, ".", k);
        int rc = 0;
        if (strcmp(k, "key") == 0) {
            rc = compile_key(c, val, &f->key);
        } else if (json_is_null(val) && strcmp(k, "match") && strcmp(k, "range") && strcmp(k, "values_count") &&
                   strcmp(k, "is_empty") && strcmp(k, "is_null") && strncmp(k, "geo_", 4)) {
            return fail(c, FANNS_EINVAL,
                        "unknown field '%s', expected one of 'key', 'match', 'range', 'geo_bounding_box', 'geo_radius', "
                        "'geo_polygon', 'values_count', 'is_empty', 'is_null'", k);
        } else if (json_is_null(val)) {
            /* Optional field given as null: absent, as serde's Option. */
        } else if (strcmp(k, "match") == 0) {
            rc = compile_match(c, val, f);
        } else if (strcmp(k, "range") == 0) {
            rc = compile_range(c, val, f);
        } else if (strcmp(k, "values_count") == 0) {
            rc = compile_values_count(c, val, f);
        } else if (strcmp(k, "is_empty") == 0 || strcmp(k, "is_null") == 0) {
            if (!json_is_boolean(val)) return fail(c, FANNS_EINVAL, "expected a boolean, got %s", json_type_name(val));
            *(k[3] == 'e' ? &f->is_empty : &f->is_null) = json_is_true(val) ? 1 : 0;
        } else if (strcmp(k, "geo_radius") == 0 || strcmp(k, "geo_bounding_box") == 0 || strcmp(k, "geo_polygon") == 0) {
            rc = compile_geo(c, k, val, f);
        } else {
            return fail(c, FANNS_EINVAL,
                        "unknown field '%s', expected one of 'key', 'match', 'range', 'geo_bounding_box', 'geo_radius', "
                        "'geo_polygon', 'values_count', 'is_empty', 'is_null'", k);
        }
        if (rc) return rc;
        path_pop(c, old);
    }
    if (!f->has_match && !f->has_range && !f->has_vc && f->is_empty < 0 && f->is_null < 0 && !f->has_radius &&
        !f->has_bbox && !f->has_poly)
        return fail(c, FANNS_EVALIDATE, "At least one field condition must be specified");
    return 0;
}

static int cmp_key(const void *a, const void *b) { return memcmp(a, b, FANNS_PID_KEYLEN); }

static int compile_has_id(cctx_t *c, const json_t *v, node_t *n) {
    if (!json_is_array(v)) return fail(c, FANNS_EINVAL, "expected a list of point ids, got %s", json_type_name(v));
    size_t cnt = json_array_size(v);
    if (cnt > FANNS_FILTER_MAX_LIST) return fail(c, FANNS_EINVAL, "list has more than %d ids", FANNS_FILTER_MAX_LIST);
    if (cnt && !(n->u.has_id.keys = malloc(cnt * FANNS_PID_KEYLEN))) return oom(c);
    for (size_t i = 0; i < cnt; i++) {
        size_t old = path_idx(c, "", i);
        fanns_pid_t id;
        int rc = fanns_pid_from_json(json_array_get(v, i), &id, c->path, c->err);
        if (rc) return rc;
        fanns_pid_key(&id, n->u.has_id.keys[i]);
        path_pop(c, old);
    }
    n->u.has_id.n = cnt;
    if (cnt) qsort(n->u.has_id.keys, cnt, FANNS_PID_KEYLEN, cmp_key);
    return 0;
}

static int compile_nested(cctx_t *c, const json_t *v, int depth, node_t *n) {
    if (!json_is_object(v)) return fail(c, FANNS_EINVAL, "expected an object {key, filter}, got %s", json_type_name(v));
    static const char *const allowed[] = {"key", "filter", NULL};
    int rc = only_keys(c, v, allowed, "'key' or 'filter'");
    if (rc) return rc;
    const json_t *key = json_object_get(v, "key"), *flt = json_object_get(v, "filter");
    if (!key) return fail(c, FANNS_EINVAL, "missing field 'key'");
    if (!flt) return fail(c, FANNS_EINVAL, "missing field 'filter'");
    size_t old = path_key(c, ".", "key");
    if ((rc = compile_key(c, key, &n->u.nested.key))) return rc;
    kpath_t *kp = &n->u.nested.key;
    if (kp->segs[kp->n - 1].kind != SEG_ALL) {
        size_t cap = kp->n;
        if (seg_add(kp, &cap, SEG_ALL, 0, NULL, 0)) return oom(c);
    }
    path_pop(c, old);
    path_key(c, ".", "filter");
    if ((rc = compile_filter(c, flt, depth + 1, &n->u.nested.filter))) return rc;
    path_pop(c, old);
    return 0;
}

static int compile_condition(cctx_t *c, const json_t *v, int depth, node_t **out) {
    int rc = count_condition(c);
    if (rc) return rc;
    if (!json_is_object(v)) return fail(c, FANNS_EINVAL, "expected a condition object, got %s", json_type_name(v));
    if (json_object_get(v, "key")) {
        node_t *n = node_new(N_FIELD);
        if (!n) return oom(c);
        *out = n;
        return compile_field(c, v, n);
    }
    static const char *const special[] = {"is_empty", "is_null", "has_id", "nested", "has_vector", "slice"};
    for (size_t i = 0; i < sizeof(special) / sizeof(special[0]); i++) {
        const json_t *val = json_object_get(v, special[i]);
        if (!val) continue;
        const char *const allowed[] = {special[i], NULL};
        if ((rc = only_keys(c, v, allowed, "no other field in this condition"))) return rc;
        size_t old = path_key(c, ".", special[i]);
        if (i >= 4) return fail(c, FANNS_EINVAL, "the '%s' condition is not supported by this server", special[i]);
        node_t *n = node_new(i == 0 ? N_IS_EMPTY : i == 1 ? N_IS_NULL : i == 2 ? N_HAS_ID : N_NESTED);
        if (!n) return oom(c);
        *out = n;
        if (i <= 1) rc = compile_payload_field(c, val, &n->u.key);
        else if (i == 2) rc = compile_has_id(c, val, n);
        else rc = compile_nested(c, val, depth, n);
        if (rc) return rc;
        path_pop(c, old);
        return 0;
    }
    return compile_filter(c, v, depth + 1, out);
}

int fanns_filter_compile(const json_t *filter, const char *path, fanns_filter_t **out, fanns_err_t *err) {
    *out = NULL;
    if (!filter || json_is_null(filter)) return 0;
    cctx_t *c = calloc(1, sizeof(*c));
    fanns_filter_t *f = calloc(1, sizeof(*f));
    int rc;
    if (!c || !f) {
        rc = fanns_err_set(err, FANNS_ENOMEM, path, "out of memory compiling filter");
        goto fail;
    }
    c->err = err;
    path_key(c, "", path ? path : "filter");
    rc = compile_filter(c, filter, 1, &f->root);
    if (rc) goto fail;
    f->nconds = c->nconds;
    free(c);
    *out = f;
    return 0;
fail:
    free(c);
    fanns_filter_free(f);
    return rc;
}

/* ---- evaluation ---- */

typedef fanns__filter_visit_fn visit_fn;

/* Visits every value the path yields from v; stops (returning true) when fn returns true. */
static bool walk(const seg_t *s, size_t n, const json_t *v, visit_fn fn, const void *ctx, bool *seen) {
    if (!v) return false;
    if (n == 0) {
        *seen = true;
        return fn(v, ctx, seen);
    }
    switch (s->kind) {
    case SEG_KEY:
        if (!json_is_object(v)) return false;
        return walk(s + 1, n - 1, json_object_get(v, s->key), fn, ctx, seen);
    case SEG_INDEX:
        if (!json_is_array(v) || s->index >= json_array_size(v)) return false;
        return walk(s + 1, n - 1, json_array_get(v, s->index), fn, ctx, seen);
    default:
        if (!json_is_array(v)) return false;
        for (size_t i = 0, m = json_array_size(v); i < m; i++)
            if (walk(s + 1, n - 1, json_array_get(v, i), fn, ctx, seen)) return true;
        return false;
    }
}

static bool walk_path(const kpath_t *k, const json_t *payload, visit_fn fn, const void *ctx, bool *seen) {
    *seen = false;
    if (!payload) return false;
    return walk(k->segs, k->n, payload, fn, ctx, seen);
}

bool fanns__filter_walk(const kpath_t *k, const json_t *payload, fanns__filter_visit_fn fn, const void *ctx,
                        bool *seen) {
    return walk_path(k, payload, fn, ctx, seen);
}

static bool str_in(const str_t *list, size_t n, const char *s, size_t len) {
    str_t key = {(char *)s, len};
    return n && bsearch(&key, list, n, sizeof(str_t), cmp_str) != NULL;
}

static bool int_in(const int64_t *list, size_t n, int64_t v) {
    return n && bsearch(&v, list, n, sizeof(int64_t), cmp_i64) != NULL;
}

static bool contains(const char *hay, size_t hl, const char *needle, size_t nl) {
    if (nl == 0) return true;
    return nl <= hl && memmem(hay, hl, needle, nl) != NULL;
}

bool fanns__filter_match_str(const field_t *f, const char *s, size_t len) {
    switch (f->mkind) {
    case M_VALUE_STR: return len == f->str.len && memcmp(s, f->str.s, f->str.len) == 0;
    case M_TEXT: return contains(s, len, f->str.s, f->str.len);
    case M_PREFIX: return len >= f->str.len && memcmp(s, f->str.s, f->str.len) == 0;
    case M_TEXT_ANY:
        for (size_t i = 0; i < f->nstrs; i++)
            if (contains(s, len, f->strs[i].s, f->strs[i].len)) return true;
        return false;
    case M_ANY_STR: return str_in(f->strs, f->nstrs, s, len);
    case M_EXCEPT_STR: return !str_in(f->strs, f->nstrs, s, len);
    case M_EXCEPT_INT: return true; /* a value of another type */
    }
    return false;
}

static bool match_check(const field_t *f, const json_t *v) {
    switch (f->mkind) {
    case M_VALUE_STR:
    case M_TEXT:
    case M_PREFIX:
    case M_TEXT_ANY:
    case M_ANY_STR: return json_is_string(v) && fanns__filter_match_str(f, json_string_value(v), json_string_length(v));
    case M_VALUE_INT: return json_is_integer(v) && json_integer_value(v) == f->ival;
    case M_VALUE_BOOL: return json_is_boolean(v) && json_is_true(v) == f->bval;
    case M_ANY_INT: return json_is_integer(v) && int_in(f->ints, f->nints, json_integer_value(v));
    case M_EXCEPT_STR:
        if (json_is_null(v)) return false;
        if (json_is_string(v)) return fanns__filter_match_str(f, json_string_value(v), json_string_length(v));
        return true;
    case M_EXCEPT_INT:
        if (json_is_null(v)) return false;
        if (json_is_integer(v)) return !int_in(f->ints, f->nints, json_integer_value(v));
        return true;
    }
    return false;
}

static bool range_check(const field_t *f, const json_t *v) {
    if (f->range_dt) {
        int64_t t;
        if (!json_is_string(v) || fanns_datetime_parse(json_string_value(v), &t)) return false;
        return (!(f->rset & 1u << B_LT) || t < f->rdt[B_LT]) && (!(f->rset & 1u << B_GT) || t > f->rdt[B_GT]) &&
               (!(f->rset & 1u << B_GTE) || t >= f->rdt[B_GTE]) && (!(f->rset & 1u << B_LTE) || t <= f->rdt[B_LTE]);
    }
    if (!json_is_number(v)) return false;
    double x = json_number_value(v);
    return (!(f->rset & 1u << B_LT) || x < f->rnum[B_LT]) && (!(f->rset & 1u << B_GT) || x > f->rnum[B_GT]) &&
           (!(f->rset & 1u << B_GTE) || x >= f->rnum[B_GTE]) && (!(f->rset & 1u << B_LTE) || x <= f->rnum[B_LTE]);
}

static bool vc_check(const field_t *f, uint64_t n) {
    return (!(f->vcset & 1u << B_LT) || n < f->vc[B_LT]) && (!(f->vcset & 1u << B_GT) || n > f->vc[B_GT]) &&
           (!(f->vcset & 1u << B_GTE) || n >= f->vc[B_GTE]) && (!(f->vcset & 1u << B_LTE) || n <= f->vc[B_LTE]);
}

/* Haversine distance in meters with the mean Earth radius, as the geo crate Qdrant uses. */
static double haversine(geo_pt_t a, geo_pt_t b) {
    const double r = 6371008.8, rad = M_PI / 180.0;
    double t1 = a.lat * rad, t2 = b.lat * rad;
    double dt = (b.lat - a.lat) * rad, dl = (b.lon - a.lon) * rad;
    double h = sin(dt / 2) * sin(dt / 2) + cos(t1) * cos(t2) * sin(dl / 2) * sin(dl / 2);
    return 2.0 * r * asin(sqrt(h));
}

static bool on_segment(geo_pt_t p, geo_pt_t a, geo_pt_t b) {
    double cross = (b.lon - a.lon) * (p.lat - a.lat) - (b.lat - a.lat) * (p.lon - a.lon);
    if (cross != 0.0) return false;
    return p.lon >= fmin(a.lon, b.lon) && p.lon <= fmax(a.lon, b.lon) && p.lat >= fmin(a.lat, b.lat) &&
           p.lat <= fmax(a.lat, b.lat);
}

/* 1 strictly inside the closed ring, 0 outside, -1 on its boundary (even-odd rule). */
static int ring_side(const ring_t *r, geo_pt_t p) {
    bool in = false;
    for (size_t i = 0, j = r->n - 1; i < r->n; j = i++) {
        geo_pt_t a = r->pts[i], b = r->pts[j];
        if (on_segment(p, a, b)) return -1;
        if ((a.lat > p.lat) != (b.lat > p.lat)) {
            double x = a.lon + (p.lat - a.lat) * (b.lon - a.lon) / (b.lat - a.lat);
            if (p.lon < x) in = !in;
        }
    }
    return in ? 1 : 0;
}

static bool geo_check(const field_t *f, const json_t *v) {
    if (!json_is_object(v)) return false;
    const json_t *lon = json_object_get(v, "lon"), *lat = json_object_get(v, "lat");
    if (!json_is_number(lon) || !json_is_number(lat)) return false;
    geo_pt_t p = {json_number_value(lon), json_number_value(lat)};
    if (f->has_bbox) {
        bool lon_ok = f->top_left.lon > f->bottom_right.lon
                          ? (p.lon > f->top_left.lon || p.lon < f->bottom_right.lon) /* crosses the antimeridian */
                          : (f->top_left.lon < p.lon && p.lon < f->bottom_right.lon);
        if (lon_ok && f->bottom_right.lat < p.lat && p.lat < f->top_left.lat) return true;
    }
    if (f->has_radius && haversine(f->center, p) < f->radius) return true;
    if (f->has_poly) {
        /* Points on a boundary are not contained, as in the geo crate's Contains. */
        if (ring_side(&f->rings[0], p) == 1) {
            bool hole = false;
            for (size_t i = 1; i < f->nrings && !hole; i++) hole = ring_side(&f->rings[i], p) != 0;
            if (!hole) return true;
        }
    }
    return false;
}

static bool check_match(const field_t *f, const json_t *v) {
    return (f->has_match && match_check(f, v)) || (f->has_range && range_check(f, v)) ||
           ((f->has_bbox || f->has_radius || f->has_poly) && geo_check(f, v));
}

static uint64_t values_count(const json_t *v) {
    if (json_is_null(v)) return 0;
    if (json_is_array(v)) return json_array_size(v);
    return 1;
}

static bool array_has_null(const json_t *v) {
    for (size_t i = 0, n = json_array_size(v); i < n; i++)
        if (json_is_null(json_array_get(v, i))) return true;
    return false;
}

/* Qdrant's FieldCondition::check on one value. */
static bool field_visit(const json_t *v, const void *ctx, bool *seen) {
    (void)seen;
    const field_t *f = ctx;
    if (f->has_vc) return vc_check(f, values_count(v));
    if (f->is_empty >= 0) {
        bool e = f->is_empty;
        if (json_is_null(v)) return e;
        if (json_is_array(v)) return (json_array_size(v) == 0) == e;
        return !e;
    }
    if (f->is_null >= 0) {
        bool nl = f->is_null;
        if (json_is_null(v)) return nl;
        if (json_is_array(v)) return array_has_null(v) == nl;
        return !nl;
    }
    if (json_is_array(v)) {
        for (size_t i = 0, n = json_array_size(v); i < n; i++)
            if (check_match(f, json_array_get(v, i))) return true;
        return false;
    }
    return check_match(f, v);
}

static bool field_empty(const field_t *f) {
    if (f->has_vc) return vc_check(f, 0);
    if (f->is_empty >= 0) return f->is_empty;
    if (f->is_null >= 0) return !f->is_null;
    return false;
}

/* Stops at the first value that is not null or []. */
static bool nonempty_visit(const json_t *v, const void *ctx, bool *seen) {
    (void)ctx;
    (void)seen;
    return !(json_is_null(v) || (json_is_array(v) && json_array_size(v) == 0));
}

static bool null_visit(const json_t *v, const void *ctx, bool *seen) {
    (void)ctx;
    (void)seen;
    return json_is_null(v);
}

static bool eval_filter(const node_t *n, const fanns_pid_t *id, const json_t *payload);

static bool nested_visit(const json_t *v, const void *ctx, bool *seen) {
    (void)seen;
    return json_is_object(v) && eval_filter(ctx, NULL, v);
}

static bool has_id_check(const node_t *n, const fanns_pid_t *id) {
    if (!id || n->u.has_id.n == 0) return false;
    uint8_t key[FANNS_PID_KEYLEN];
    fanns_pid_key(id, key);
    return bsearch(key, n->u.has_id.keys, n->u.has_id.n, FANNS_PID_KEYLEN, cmp_key) != NULL;
}

static bool eval_cond(const node_t *n, const fanns_pid_t *id, const json_t *payload) {
    bool seen;
    switch (n->kind) {
    case N_FILTER: return eval_filter(n, id, payload);
    case N_FIELD: {
        bool hit = walk_path(&n->u.fc.key, payload, field_visit, &n->u.fc, &seen);
        return seen ? hit : field_empty(&n->u.fc);
    }
    case N_IS_EMPTY: return !walk_path(&n->u.key, payload, nonempty_visit, NULL, &seen);
    case N_IS_NULL: return walk_path(&n->u.key, payload, null_visit, NULL, &seen);
    case N_HAS_ID: return has_id_check(n, id);
    case N_NESTED: return walk_path(&n->u.nested.key, payload, nested_visit, n->u.nested.filter, &seen);
    }
    return false;
}

static bool eval_filter(const node_t *n, const fanns_pid_t *id, const json_t *payload) {
    const list_t *l = &n->u.f.should;
    if (l->n) {
        bool any = false;
        for (size_t i = 0; i < l->n && !any; i++) any = eval_cond(l->v[i], id, payload);
        if (!any) return false;
    }
    if (n->u.f.min_count) {
        size_t need = n->u.f.min_count;
        l = &n->u.f.min_should;
        for (size_t i = 0; i < l->n && need; i++)
            if (eval_cond(l->v[i], id, payload)) need--;
        if (need) return false;
    }
    l = &n->u.f.must;
    for (size_t i = 0; i < l->n; i++)
        if (!eval_cond(l->v[i], id, payload)) return false;
    l = &n->u.f.must_not;
    for (size_t i = 0; i < l->n; i++)
        if (eval_cond(l->v[i], id, payload)) return false;
    return true;
}

bool fanns_filter_match(const fanns_filter_t *f, const fanns_pid_t *id, const json_t *payload) {
    if (!f) return true;
    if (payload && !json_is_object(payload)) payload = NULL;
    return eval_filter(f->root, id, payload);
}
