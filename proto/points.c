/*
 * points.c: the point resources of the REST API: upsert (both body forms), retrieve,
 * delete, payload changes, scroll, count, search and query.
 *
 * Each handler decodes and validates the whole body into C values first (ids, vectors,
 * compiled filter), then either reads through the collection's fanns_coll_* functions or
 * builds one write entry for the writer.  Shapes and defaults follow Qdrant's OpenAPI:
 * retrieve and scroll return payloads by default, search and query do not.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "api_int.h"
#include "json_u64.h"
#include "log.h"

/* ---- payload / vector selection ----------------------------------------------------- */

typedef struct {
    int mode;           /* 0 none, 1 all, 2 include, 3 exclude */
    json_t *keys;       /* borrowed array of strings for include/exclude */
} payload_sel_t;

static int parse_with_payload(const json_t *body, bool def, payload_sel_t *sel, fanns_err_t *err) {
    json_t *v = json_object_get(body, "with_payload");
    sel->keys = NULL;
    if (!v || json_is_null(v)) {
        sel->mode = def ? 1 : 0;
        return 0;
    }
    if (json_is_boolean(v)) {
        sel->mode = json_is_true(v) ? 1 : 0;
        return 0;
    }
    json_t *arr = NULL;
    if (json_is_array(v)) {
        sel->mode = 2;
        arr = v;
    } else if (json_is_object(v) && json_object_size(v) == 1 && json_is_array(json_object_get(v, "include"))) {
        sel->mode = 2;
        arr = json_object_get(v, "include");
    } else if (json_is_object(v) && json_object_size(v) == 1 && json_is_array(json_object_get(v, "exclude"))) {
        sel->mode = 3;
        arr = json_object_get(v, "exclude");
    } else {
        return fanns_err_set(err, FANNS_EINVAL, "with_payload",
                             "Format error in JSON body: with_payload must be a boolean, a list of keys, {include: [...]} or {exclude: [...]}");
    }
    size_t i;
    json_t *k;
    json_array_foreach(arr, i, k) if (!json_is_string(k)) return fanns_err_set(err, FANNS_EINVAL, "with_payload",
                                                                                "Format error in JSON body: with_payload keys must be strings");
    sel->keys = arr;
    return 0;
}

static int parse_with_vector(const json_t *body, bool *out, fanns_err_t *err) {
    json_t *v = json_object_get(body, "with_vector");
    if (!v) v = json_object_get(body, "with_vectors");
    if (!v || json_is_null(v)) {
        *out = false;
        return 0;
    }
    if (json_is_boolean(v)) {
        *out = json_is_true(v);
        return 0;
    }
    if (json_is_array(v)) {
        *out = json_array_size(v) > 0;
        return 0;
    }
    return fanns_err_set(err, FANNS_EINVAL, "with_vector", "Format error in JSON body: with_vector must be a boolean or a list of names");
}

/* Looks up a dotted path in a payload (objects only). */
static json_t *payload_path(json_t *p, const char *path) {
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", path);
    json_t *cur = p;
    for (char *save = NULL, *seg = strtok_r(buf, ".", &save); seg && cur; seg = strtok_r(NULL, ".", &save))
        cur = json_is_object(cur) ? json_object_get(cur, seg) : NULL;
    return cur;
}

static json_t *select_payload(json_t *p, const payload_sel_t *sel) {
    if (sel->mode == 1) return p ? json_incref(p) : json_object();
    json_t *out;
    size_t i;
    json_t *k;
    if (sel->mode == 2) {
        out = json_object();
        json_array_foreach(sel->keys, i, k) {
            json_t *v = p ? payload_path(p, json_string_value(k)) : NULL;
            if (v) json_object_set(out, json_string_value(k), v);
        }
        return out;
    }
    out = p ? json_copy(p) : json_object();
    json_array_foreach(sel->keys, i, k) json_object_del(out, json_string_value(k));
    return out;
}

/* One point as JSON text (json_out.h): a Record (retrieve, scroll) or, scored, a ScoredPoint
 * (search, query).  Point lists are written this way, not as jansson trees, which keeps their
 * encoding well below the cost of the search itself. */
static void hit_text(fanns_jbuf_t *b, const fanns_hit_t *h, uint32_t dim, const payload_sel_t *sel, bool scored) {
    fanns__jbuf_puts(b, "{\"id\":");
    if (h->id.kind == FANNS_PID_NUM) {
        fanns__jbuf_u64(b, h->id.num);
    } else {
        char u[37];
        fanns_pid_uuid_str(h->id.uuid, u);
        fanns__jbuf_put(b, "\"", 1);
        fanns__jbuf_put(b, u, 36);
        fanns__jbuf_put(b, "\"", 1);
    }
    if (scored) {
        fanns__jbuf_puts(b, ",\"version\":");
        fanns__jbuf_u64(b, h->version);
        fanns__jbuf_puts(b, ",\"score\":");
        fanns__jbuf_f32(b, h->score);
    }
    fanns__jbuf_puts(b, ",\"payload\":");
    if (sel->mode) {
        json_t *p = select_payload(h->payload, sel);
        fanns__jbuf_json(b, p);
        json_decref(p);
    } else {
        fanns__jbuf_puts(b, "null");
    }
    fanns__jbuf_puts(b, ",\"vector\":");
    if (h->vector) {
        fanns__jbuf_put(b, "[", 1);
        for (uint32_t i = 0; i < dim; i++) {
            if (i) fanns__jbuf_put(b, ",", 1);
            fanns__jbuf_f32(b, h->vector[i]);
        }
        fanns__jbuf_put(b, "]", 1);
    } else {
        fanns__jbuf_puts(b, "null");
    }
    fanns__jbuf_puts(b, ",\"shard_key\":null,\"order_value\":null}");
}

/* Hands b's text to ctx as the result (or fails for an incomplete one); b is emptied. */
static int take_text(api_ctx_t *ctx, fanns_jbuf_t *b) {
    if (b->oom) {
        free(b->p);
        memset(b, 0, sizeof(*b));
        return fanns_err_set(&ctx->err, FANNS_ENOMEM, NULL, "out of memory");
    }
    ctx->result_text = b->p;
    ctx->result_text_len = b->len;
    memset(b, 0, sizeof(*b));
    return 0;
}

/* ---- common decoding ---------------------------------------------------------------- */

static int get_coll(api_ctx_t *ctx, const char *name, fanns_coll_t **c) {
    return fanns_db_coll_get(ctx->api->db, name, c, &ctx->err);
}

static int need_body(api_ctx_t *ctx, const char *what) {
    if (ctx->body) return 0;
    return fanns_err_set(&ctx->err, FANNS_EINVAL, NULL, "Format error in JSON body: a JSON body %s is required", what);
}

/* Parses an array of ids into a malloc'd array. */
static int parse_ids(const json_t *arr, const char *path, fanns_pid_t **ids, size_t *n, fanns_err_t *err) {
    if (!json_is_array(arr)) return fanns_err_set(err, FANNS_EINVAL, path, "Format error in JSON body: %s must be an array of ids", path);
    if (json_array_size(arr) > FANNS_MAX_BATCH)
        return fanns_err_set(err, FANNS_ETOOBIG, path, "%s has more than %d ids", path, FANNS_MAX_BATCH);
    *n = json_array_size(arr);
    *ids = malloc((*n ? *n : 1) * sizeof(**ids));
    if (!*ids) return fanns_err_set(err, FANNS_ENOMEM, NULL, "out of memory");
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) {
        char p[64];
        snprintf(p, sizeof(p), "%s[%zu]", path, i);
        int rc = fanns_pid_from_json(v, &(*ids)[i], p, err);
        if (rc) {
            free(*ids);
            *ids = NULL;
            return rc;
        }
    }
    return 0;
}

/* Compiles body.filter (absent/null -> *f = NULL). */
static int parse_filter(const json_t *body, const char *key, fanns_filter_t **f, fanns_err_t *err) {
    json_t *fj = body ? json_object_get(body, key) : NULL;
    *f = NULL;
    if (!fj || json_is_null(fj)) return 0;
    return fanns_filter_compile(fj, key, f, err);
}

/* Fills the selection of a write entry from {points: [...]} or {filter: {...}}. */
static int parse_selector(api_ctx_t *ctx, fanns_wentry_t *e, bool required) {
    json_t *pts = json_object_get(ctx->body, "points"), *flt = json_object_get(ctx->body, "filter");
    if (pts && !json_is_null(pts) && flt && !json_is_null(flt))
        return fanns_err_set(&ctx->err, FANNS_EINVAL, NULL, "Format error in JSON body: give either `points` or `filter`, not both");
    if (pts && !json_is_null(pts)) return parse_ids(pts, "points", &e->ids, &e->n, &ctx->err);
    if (flt && !json_is_null(flt)) {
        int rc = fanns_filter_compile(flt, "filter", &e->filter, &ctx->err);
        if (rc) return rc;
        e->filter_json = json_incref(flt);
        if (!e->filter) {
            /* An empty filter selects every point: keep that explicit for the writer. */
            json_t *empty = json_object();
            rc = fanns_filter_compile(empty, "filter", &e->filter, &ctx->err);
            json_decref(empty);
        }
        return rc;
    }
    if (required) return fanns_err_set(&ctx->err, FANNS_EINVAL, NULL, "Format error in JSON body: `points` or `filter` is required");
    return 0;
}

static fanns_wentry_t *new_entry(api_ctx_t *ctx, fanns_wop_t op, const char *name) {
    fanns_wentry_t *e = fanns_wentry_new(op);
    if (!e || !(e->collection = strdup(name))) {
        fanns_wentry_free(e);
        fanns_err_set(&ctx->err, FANNS_ENOMEM, NULL, "out of memory");
        return NULL;
    }
    return e;
}

/* Accepts a plain vector or the named form {"": [...]} for the default vector. */
static const json_t *unnamed_vector(const json_t *v, const char *path, fanns_err_t *err) {
    if (json_is_object(v)) {
        json_t *d = json_object_get(v, "");
        if (json_object_size(v) == 1 && d) return d;
        fanns_err_set(err, FANNS_EVALIDATE, path, "Named, sparse and multi vectors are not supported yet: send a plain array of numbers");
        return NULL;
    }
    return v;
}

/* ---- upsert ------------------------------------------------------------------------- */

int fanns__api_points_upsert(api_ctx_t *ctx, const char *name) {
    static const char *const top[] = {"points", "batch", "shard_key", "update_filter", "update_mode", NULL};
    static const char *const pf[] = {"id", "vector", "payload", NULL};
    static const char *const bf[] = {"ids", "vectors", "payloads", NULL};
    fanns_coll_t *c = NULL;
    fanns_wentry_t *e = NULL;
    int rc;
    if ((rc = need_body(ctx, "{points: [...]} or {batch: {...}}")) != 0) return rc;
    if ((rc = fanns__api_check_fields(ctx->body, "", top, &ctx->err)) != 0) return rc;
    json_t *um = json_object_get(ctx->body, "update_mode");
    if (um && !json_is_null(um) && !(json_is_string(um) && strcmp(json_string_value(um), "upsert") == 0))
        return fanns_err_set(&ctx->err, FANNS_EVALIDATE, "update_mode", "Only update_mode \"upsert\" is supported");
    if (json_object_get(ctx->body, "update_filter") && !json_is_null(json_object_get(ctx->body, "update_filter")))
        return fanns_err_set(&ctx->err, FANNS_EVALIDATE, "update_filter", "Conditional updates (update_filter) are not supported yet");
    json_t *points = json_object_get(ctx->body, "points"), *batch = json_object_get(ctx->body, "batch");
    if ((points && batch) || (!points && !batch))
        return fanns_err_set(&ctx->err, FANNS_EINVAL, NULL, "Format error in JSON body: exactly one of `points` or `batch` is required");
    if ((rc = get_coll(ctx, name, &c)) != 0) return rc;
    uint32_t dim = fanns_coll_dim(c);
    fanns_metric_t metric = fanns_coll_metric(c);
    fanns_coll_release(c);

    json_t *ids_arr = NULL, *vec_arr = NULL, *pay_arr = NULL;
    size_t n;
    if (points) {
        if (!json_is_array(points)) return fanns_err_set(&ctx->err, FANNS_EINVAL, "points", "Format error in JSON body: points must be an array");
        n = json_array_size(points);
    } else {
        if (!json_is_object(batch)) return fanns_err_set(&ctx->err, FANNS_EINVAL, "batch", "Format error in JSON body: batch must be an object");
        if ((rc = fanns__api_check_fields(batch, "batch", bf, &ctx->err)) != 0) return rc;
        ids_arr = json_object_get(batch, "ids");
        vec_arr = json_object_get(batch, "vectors");
        pay_arr = json_object_get(batch, "payloads");
        if (json_is_null(pay_arr)) pay_arr = NULL;
        if (!json_is_array(ids_arr) || !json_is_array(vec_arr) || (pay_arr && !json_is_array(pay_arr)))
            return fanns_err_set(&ctx->err, FANNS_EINVAL, "batch", "Format error in JSON body: batch.ids and batch.vectors must be arrays");
        n = json_array_size(ids_arr);
        if (json_array_size(vec_arr) != n || (pay_arr && json_array_size(pay_arr) != n))
            return fanns_err_set(&ctx->err, FANNS_EVALIDATE, "batch",
                                 "Validation error: batch.ids, batch.vectors and batch.payloads must have the same length");
    }
    if (n > FANNS_MAX_BATCH) return fanns_err_set(&ctx->err, FANNS_ETOOBIG, NULL, "at most %d points per request", FANNS_MAX_BATCH);
    if (!(e = new_entry(ctx, FANNS_W_UPSERT, name))) return FANNS_ENOMEM;
    e->dim = dim;
    e->n = n;
    e->ids = calloc(n ? n : 1, sizeof(*e->ids));
    e->vectors = malloc((n ? n : 1) * (size_t)dim * sizeof(float));
    e->payloads = calloc(n ? n : 1, sizeof(*e->payloads));
    if (!e->ids || !e->vectors || !e->payloads) {
        rc = fanns_err_set(&ctx->err, FANNS_ENOMEM, NULL, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        char path[64];
        const json_t *id, *vec, *pay;
        if (points) {
            json_t *p = json_array_get(points, i);
            snprintf(path, sizeof(path), "points[%zu]", i);
            if (!json_is_object(p)) {
                rc = fanns_err_set(&ctx->err, FANNS_EINVAL, path, "Format error in JSON body: %s must be an object {id, vector, payload}", path);
                goto fail;
            }
            if ((rc = fanns__api_check_fields(p, path, pf, &ctx->err)) != 0) goto fail;
            id = json_object_get(p, "id");
            vec = json_object_get(p, "vector");
            pay = json_object_get(p, "payload");
        } else {
            snprintf(path, sizeof(path), "batch.ids[%zu]", i);
            id = json_array_get(ids_arr, i);
            vec = json_array_get(vec_arr, i);
            pay = pay_arr ? json_array_get(pay_arr, i) : NULL;
        }
        if (!id) {
            rc = fanns_err_set(&ctx->err, FANNS_EINVAL, path, "Format error in JSON body: %s.id is required", path);
            goto fail;
        }
        if ((rc = fanns_pid_from_json(id, &e->ids[i], path, &ctx->err)) != 0) goto fail;
        if (!vec) {
            rc = fanns_err_set(&ctx->err, FANNS_EINVAL, path, "Format error in JSON body: %s.vector is required", path);
            goto fail;
        }
        if (!(vec = unnamed_vector(vec, path, &ctx->err))) {
            rc = ctx->err.code;
            goto fail;
        }
        float *dst = e->vectors + i * (size_t)dim;
        size_t ml = strlen(FANNS_FASTVEC_MARK);
        if (json_is_string(vec) && strncmp(json_string_value(vec), FANNS_FASTVEC_MARK, ml) == 0) {
            /* Parsed by the fast path (json_fastvec.h). */
            char *end;
            unsigned long long vi = strtoull(json_string_value(vec) + ml, &end, 10);
            if (*end || vi >= ctx->fvs.n) {
                rc = fanns_err_set(&ctx->err, FANNS_EINVAL, path, "Format error in JSON body: %s.vector must be an array of numbers", path);
                goto fail;
            }
            size_t got = ctx->fvs.starts[vi + 1] - ctx->fvs.starts[vi];
            if (got != dim) {
                rc = fanns_err_set(&ctx->err, FANNS_EVALIDATE, path, "Wrong input: Vector dimension error: expected dim: %u, got %zu", dim, got);
                goto fail;
            }
            if (ctx->fvs.bad[vi]) {
                rc = fanns_err_set(&ctx->err, FANNS_EVALIDATE, path, "Validation error: %s.vector has a number that is not a finite float32", path);
                goto fail;
            }
            memcpy(dst, ctx->fvs.vals + ctx->fvs.starts[vi], dim * sizeof(float));
        } else if ((rc = fanns__api_parse_vector(vec, dim, dst, path, &ctx->err)) != 0) {
            goto fail;
        }
        if (metric == FANNS_METRIC_COSINE) fanns_vec_normalize(dst, dim);
        if (pay && !json_is_null(pay)) {
            if (!json_is_object(pay)) {
                rc = fanns_err_set(&ctx->err, FANNS_EINVAL, path, "Format error in JSON body: payload of %s must be an object", path);
                goto fail;
            }
            e->payloads[i] = json_incref((json_t *)pay);
            if (ctx->u64_protected) fanns__json_u64_payload(e->payloads[i]);
        }
    }
    return fanns__api_submit(ctx, e);
fail:
    fanns_wentry_free(e);
    return rc;
}

/* ---- retrieve ----------------------------------------------------------------------- */

int fanns__api_points_get(api_ctx_t *ctx, const char *name) {
    static const char *const top[] = {"ids", "with_payload", "with_vector", "with_vectors", "shard_key", NULL};
    fanns_coll_t *c = NULL;
    fanns_pid_t *ids = NULL;
    size_t nids, nh = 0;
    fanns_hit_t *hits = NULL;
    payload_sel_t sel;
    bool wv;
    int rc;
    if ((rc = need_body(ctx, "{ids: [...]}")) || (rc = fanns__api_check_fields(ctx->body, "", top, &ctx->err)) ||
        (rc = parse_with_payload(ctx->body, true, &sel, &ctx->err)) || (rc = parse_with_vector(ctx->body, &wv, &ctx->err)))
        return rc;
    if ((rc = parse_ids(json_object_get(ctx->body, "ids"), "ids", &ids, &nids, &ctx->err)) != 0) return rc;
    if ((rc = get_coll(ctx, name, &c)) != 0) goto out;
    if ((rc = fanns_coll_get_points(c, ids, nids, wv, &hits, &nh, &ctx->err)) != 0) goto out;
    {
        fanns_jbuf_t b = {0};
        fanns__jbuf_put(&b, "[", 1);
        for (size_t i = 0; i < nh; i++) {
            if (i) fanns__jbuf_put(&b, ",", 1);
            hit_text(&b, &hits[i], fanns_coll_dim(c), &sel, false);
        }
        fanns__jbuf_put(&b, "]", 1);
        rc = take_text(ctx, &b);
    }
out:
    fanns_hits_free(hits, nh);
    fanns_coll_release(c);
    free(ids);
    return rc;
}

int fanns__api_point_get(api_ctx_t *ctx, const char *name, const char *idstr) {
    fanns_coll_t *c = NULL;
    fanns_pid_t id;
    fanns_hit_t *hits = NULL;
    size_t nh = 0;
    payload_sel_t sel = {1, NULL};
    int rc;
    if ((rc = fanns_pid_from_str(idstr, &id, &ctx->err)) != 0) return rc;
    if ((rc = get_coll(ctx, name, &c)) != 0) return rc;
    if ((rc = fanns_coll_get_points(c, &id, 1, true, &hits, &nh, &ctx->err)) != 0) goto out;
    if (nh == 0) {
        rc = fanns_err_set(&ctx->err, FANNS_ENOTFOUND, NULL, "Not found: Point with id %s does not exists!", idstr);
        goto out;
    }
    {
        fanns_jbuf_t b = {0};
        hit_text(&b, &hits[0], fanns_coll_dim(c), &sel, false);
        rc = take_text(ctx, &b);
    }
out:
    fanns_hits_free(hits, nh);
    fanns_coll_release(c);
    return rc;
}

/* ---- writes by selector ------------------------------------------------------------- */

int fanns__api_points_delete(api_ctx_t *ctx, const char *name) {
    static const char *const top[] = {"points", "filter", "shard_key", NULL};
    fanns_coll_t *c;
    fanns_wentry_t *e;
    int rc;
    if ((rc = need_body(ctx, "{points: [...]} or {filter: {...}}")) || (rc = fanns__api_check_fields(ctx->body, "", top, &ctx->err)))
        return rc;
    if ((rc = get_coll(ctx, name, &c)) != 0) return rc;
    fanns_coll_release(c);
    if (!(e = new_entry(ctx, FANNS_W_DELETE, name))) return FANNS_ENOMEM;
    if ((rc = parse_selector(ctx, e, true)) != 0) {
        fanns_wentry_free(e);
        return rc;
    }
    return fanns__api_submit(ctx, e);
}

int fanns__api_points_payload(api_ctx_t *ctx, const char *name, fanns_wop_t op) {
    static const char *const set_f[] = {"payload", "points", "filter", "key", "shard_key", NULL};
    static const char *const del_f[] = {"keys", "points", "filter", "shard_key", NULL};
    static const char *const clr_f[] = {"points", "filter", "shard_key", NULL};
    fanns_coll_t *c;
    fanns_wentry_t *e;
    int rc;
    if ((rc = need_body(ctx, "")) != 0) return rc;
    const char *const *allowed = op == FANNS_W_DELETE_PAYLOAD ? del_f : op == FANNS_W_CLEAR_PAYLOAD ? clr_f : set_f;
    if ((rc = fanns__api_check_fields(ctx->body, "", allowed, &ctx->err)) != 0) return rc;
    if ((rc = get_coll(ctx, name, &c)) != 0) return rc;
    fanns_coll_release(c);
    if (!(e = new_entry(ctx, op, name))) return FANNS_ENOMEM;
    if ((rc = parse_selector(ctx, e, true)) != 0) goto fail;
    if (op == FANNS_W_SET_PAYLOAD || op == FANNS_W_OVERWRITE_PAYLOAD) {
        json_t *p = json_object_get(ctx->body, "payload");
        if (!json_is_object(p)) {
            rc = fanns_err_set(&ctx->err, FANNS_EINVAL, "payload", "Format error in JSON body: payload must be an object");
            goto fail;
        }
        e->payload = json_incref(p);
        if (ctx->u64_protected) fanns__json_u64_payload(p);
        json_t *key = json_object_get(ctx->body, "key");
        if (key && !json_is_null(key)) {
            if (op != FANNS_W_SET_PAYLOAD || !json_is_string(key) || json_string_length(key) == 0 || strchr(json_string_value(key), '[')) {
                rc = fanns_err_set(&ctx->err, FANNS_EINVAL, "key", "Format error in JSON body: key must be a dotted path of object keys");
                goto fail;
            }
            e->key = strdup(json_string_value(key));
        }
    } else if (op == FANNS_W_DELETE_PAYLOAD) {
        json_t *keys = json_object_get(ctx->body, "keys");
        size_t i;
        json_t *k;
        if (!json_is_array(keys)) {
            rc = fanns_err_set(&ctx->err, FANNS_EINVAL, "keys", "Format error in JSON body: keys must be an array of strings");
            goto fail;
        }
        json_array_foreach(keys, i, k) if (!json_is_string(k)) {
            rc = fanns_err_set(&ctx->err, FANNS_EINVAL, "keys", "Format error in JSON body: keys must be an array of strings");
            goto fail;
        }
        e->keys = json_incref(keys);
    }
    return fanns__api_submit(ctx, e);
fail:
    fanns_wentry_free(e);
    return rc;
}

/* ---- scroll and count --------------------------------------------------------------- */

int fanns__api_points_scroll(api_ctx_t *ctx, const char *name) {
    static const char *const top[] = {"offset", "limit", "filter", "with_payload", "with_vector", "with_vectors", "order_by",
                                      "shard_key", NULL};
    fanns_coll_t *c = NULL;
    fanns_filter_t *f = NULL;
    fanns_hit_t *hits = NULL;
    size_t nh = 0;
    payload_sel_t sel = {1, NULL};
    bool wv = false, has_next = false, has_start = false;
    fanns_pid_t start, next;
    long long limit = 10;
    int rc = 0;
    if (ctx->body) {
        if ((rc = fanns__api_check_fields(ctx->body, "", top, &ctx->err)) ||
            (rc = fanns__api_get_uint(ctx->body, "limit", 10, 1, FANNS_MAX_LIMIT, &limit, "", &ctx->err)) ||
            (rc = parse_with_payload(ctx->body, true, &sel, &ctx->err)) || (rc = parse_with_vector(ctx->body, &wv, &ctx->err)))
            return rc;
        json_t *ob = json_object_get(ctx->body, "order_by");
        if (ob && !json_is_null(ob))
            return fanns_err_set(&ctx->err, FANNS_EVALIDATE, "order_by", "order_by needs a range payload index; not supported yet");
        json_t *off = json_object_get(ctx->body, "offset");
        if (off && !json_is_null(off)) {
            if ((rc = fanns_pid_from_json(off, &start, "offset", &ctx->err)) != 0) return rc;
            has_start = true;
        }
        if ((rc = parse_filter(ctx->body, "filter", &f, &ctx->err)) != 0) return rc;
    }
    if ((rc = get_coll(ctx, name, &c)) != 0) goto out;
    if ((rc = fanns_coll_scroll(c, has_start ? &start : NULL, f, (size_t)limit, wv, &hits, &nh, &has_next, &next, &ctx->err)) != 0)
        goto out;
    {
        fanns_jbuf_t b = {0};
        fanns__jbuf_puts(&b, "{\"points\":[");
        for (size_t i = 0; i < nh; i++) {
            if (i) fanns__jbuf_put(&b, ",", 1);
            hit_text(&b, &hits[i], fanns_coll_dim(c), &sel, false);
        }
        fanns__jbuf_puts(&b, "],\"next_page_offset\":");
        if (has_next) {
            json_t *nx = fanns_pid_to_json(&next);
            fanns__jbuf_json(&b, nx); /* a u64 marker here is unprotected with the envelope */
            json_decref(nx);
        } else {
            fanns__jbuf_puts(&b, "null");
        }
        fanns__jbuf_put(&b, "}", 1);
        rc = take_text(ctx, &b);
    }
out:
    fanns_hits_free(hits, nh);
    fanns_coll_release(c);
    fanns_filter_free(f);
    return rc;
}

int fanns__api_points_count(api_ctx_t *ctx, const char *name) {
    static const char *const top[] = {"filter", "exact", "shard_key", NULL};
    fanns_coll_t *c = NULL;
    fanns_filter_t *f = NULL;
    uint64_t cnt = 0;
    bool exact;
    int rc;
    if (ctx->body && ((rc = fanns__api_check_fields(ctx->body, "", top, &ctx->err)) ||
                      (rc = fanns__api_get_bool(ctx->body, "exact", true, &exact, "", &ctx->err)) ||
                      (rc = parse_filter(ctx->body, "filter", &f, &ctx->err))))
        return rc;
    if ((rc = get_coll(ctx, name, &c)) != 0) goto out;
    if ((rc = fanns_coll_count(c, f, &cnt, &ctx->err)) != 0) goto out;
    ctx->result = json_pack("{s:I}", "count", (json_int_t)cnt);
out:
    fanns_coll_release(c);
    fanns_filter_free(f);
    return rc;
}

/* ---- search and query --------------------------------------------------------------- */

static int check_params(const json_t *params, fanns_err_t *err) {
    static const char *const pf[] = {"hnsw_ef", "exact", "quantization", "indexed_only", "acorn", "explain", NULL};
    if (!params || json_is_null(params)) return 0;
    if (!json_is_object(params)) return fanns_err_set(err, FANNS_EINVAL, "params", "Format error in JSON body: params must be an object");
    int rc;
    long long ef;
    bool b;
    if ((rc = fanns__api_check_fields(params, "params", pf, err)) ||
        (rc = fanns__api_get_uint(params, "hnsw_ef", 0, 0, 1 << 20, &ef, "params", err)) ||
        (rc = fanns__api_get_bool(params, "exact", false, &b, "params", err)) ||
        (rc = fanns__api_get_bool(params, "indexed_only", false, &b, "params", err)) ||
        (rc = fanns__api_get_bool(params, "explain", false, &b, "params", err)))
        return rc;
    json_t *q = json_object_get(params, "quantization");
    if (q && !json_is_null(q)) {
        static const char *const qf[] = {"ignore", "rescore", "oversampling", NULL};
        if (!json_is_object(q)) return fanns_err_set(err, FANNS_EINVAL, "params.quantization", "Format error in JSON body: params.quantization must be an object");
        if ((rc = fanns__api_check_fields(q, "params.quantization", qf, err)) ||
            (rc = fanns__api_get_bool(q, "ignore", false, &b, "params.quantization", err)) ||
            (rc = fanns__api_get_bool(q, "rescore", false, &b, "params.quantization", err)))
            return rc;
        json_t *os = json_object_get(q, "oversampling");
        if (os && !json_is_null(os) && !json_is_number(os))
            return fanns_err_set(err, FANNS_EINVAL, "params.quantization.oversampling",
                                 "Format error in JSON body: params.quantization.oversampling must be a number");
        if (os && json_is_number(os) && !(json_number_value(os) >= 1.0))
            return fanns_err_set(err, FANNS_EVALIDATE, "params.quantization.oversampling",
                                 "Validation error: params.quantization.oversampling must be >= 1, got %g", json_number_value(os));
    }
    json_t *a = json_object_get(params, "acorn");
    if (a && !json_is_null(a) && !json_is_object(a))
        return fanns_err_set(err, FANNS_EINVAL, "params.acorn", "Format error in JSON body: params.acorn must be an object");
    return 0;
}

/* One search over collection c.  vec is the query (a JSON array or already-resolved floats).
 * Returns the list of ScoredPoint objects in *out. */
/* The explain object of a search (fanns extension, params.explain). */
static json_t *explain_json(const fanns_search_explain_t *ex) {
    json_t *o = json_pack("{s:s, s:I, s:b, s:I, s:I, s:I}", "strategy", ex->strategy ? ex->strategy : "none", "estimated_matches",
                          (json_int_t)ex->estimated_matches, "estimate_exact", ex->estimate_exact, "actual_matches",
                          (json_int_t)ex->actual_matches, "distance_computations", (json_int_t)ex->dist_comps, "points",
                          (json_int_t)ex->points);
    if (ex->local_selectivity >= 0) json_object_set_new(o, "local_selectivity", json_real(ex->local_selectivity));
    if (ex->block_links) json_object_set_new(o, "block_links", json_true());
    if (ex->codec)
        json_object_set_new(o, "quantization", json_pack("{s:s, s:I, s:b}", "codec", ex->codec, "candidates",
                                                         (json_int_t)ex->candidates, "rescored", ex->rescored));
    return o;
}

/* Searches and appends the hits, a JSON array, to out; *explain gets the explain object when
 * explain is not NULL and the request asks for it. */
static int run_search(api_ctx_t *ctx, fanns_coll_t *c, const json_t *body, const float *qvec, fanns_jbuf_t *out,
                      json_t **explain) {
    fanns_filter_t *f = NULL;
    fanns_hit_t *hits = NULL;
    size_t nh = 0;
    payload_sel_t sel;
    bool wv;
    long long limit, offset;
    int rc;
    fanns_search_req_t req;
    memset(&req, 0, sizeof(req));
    if ((rc = fanns__api_get_uint(body, "limit", 10, 1, FANNS_MAX_LIMIT, &limit, "", &ctx->err)) ||
        (rc = fanns__api_get_uint(body, "offset", 0, 0, FANNS_MAX_LIMIT, &offset, "", &ctx->err)) ||
        (rc = parse_with_payload(body, false, &sel, &ctx->err)) || (rc = parse_with_vector(body, &wv, &ctx->err)) ||
        (rc = check_params(json_object_get(body, "params"), &ctx->err)))
        return rc;
    if (limit + offset > FANNS_MAX_LIMIT)
        return fanns_err_set(&ctx->err, FANNS_EVALIDATE, "limit", "Validation error: limit + offset must be at most %d", FANNS_MAX_LIMIT);
    json_t *thr = json_object_get(body, "score_threshold");
    if (thr && !json_is_null(thr)) {
        if (!json_is_number(thr))
            return fanns_err_set(&ctx->err, FANNS_EINVAL, "score_threshold", "Format error in JSON body: score_threshold must be a number");
        req.has_threshold = true;
        req.score_threshold = (float)json_number_value(thr);
    }
    if ((rc = parse_filter(body, "filter", &f, &ctx->err)) != 0) return rc;
    json_t *params = json_object_get(body, "params");
    req.exact = json_is_true(json_object_get(params, "exact"));
    json_t *ef = json_object_get(params, "hnsw_ef");
    req.ef = json_is_integer(ef) ? (size_t)json_integer_value(ef) : 0;
    /* params.quantization as Qdrant: rescoring on by default, oversampling 1. */
    json_t *qp = json_object_get(params, "quantization");
    json_t *os = json_object_get(qp, "oversampling");
    req.q_ignore = json_is_true(json_object_get(qp, "ignore"));
    req.q_no_rescore = json_is_false(json_object_get(qp, "rescore"));
    req.q_oversampling = json_is_number(os) ? json_number_value(os) : 1.0;
    fanns_search_explain_t ex;
    memset(&ex, 0, sizeof(ex));
    if (explain && json_is_true(json_object_get(params, "explain"))) req.explain = &ex;
    req.query = qvec;
    req.filter = f;
    req.limit = (size_t)limit;
    req.offset = (size_t)offset;
    req.with_vector = wv;
    req.no_payload = sel.mode == 0;
    rc = fanns_coll_search(c, &req, &hits, &nh, &ctx->err);
    if (rc == 0) {
        fanns__jbuf_put(out, "[", 1);
        for (size_t i = 0; i < nh; i++) {
            if (i) fanns__jbuf_put(out, ",", 1);
            hit_text(out, &hits[i], fanns_coll_dim(c), &sel, true);
        }
        fanns__jbuf_put(out, "]", 1);
        if (req.explain) *explain = explain_json(&ex);
    }
    fanns_hits_free(hits, nh);
    fanns_filter_free(f);
    return rc;
}

/* Decodes a query vector (plain array, {"": [...]} or {"name": "", "vector": [...]}) into q. */
static int decode_query_vector(api_ctx_t *ctx, fanns_coll_t *c, const json_t *v, const char *path, float *q) {
    if (ctx->fv.key && strcmp(ctx->fv.key, path) == 0 && json_is_array(v) && json_array_size(v) == 0 &&
        v == json_object_get(ctx->body, path)) {
        /* The array was parsed by the fast path (json_fastvec.h). */
        uint32_t dim = fanns_coll_dim(c);
        if (ctx->fv.n != dim)
            return fanns_err_set(&ctx->err, FANNS_EVALIDATE, path, "Wrong input: Vector dimension error: expected dim: %u, got %zu",
                                 dim, ctx->fv.n);
        if (ctx->fv.bad)
            return fanns_err_set(&ctx->err, FANNS_EVALIDATE, path, "Validation error: %s has a number that is not a finite float32", path);
        memcpy(q, ctx->fv.v, dim * sizeof(float));
        if (fanns_coll_metric(c) == FANNS_METRIC_COSINE) fanns_vec_normalize(q, dim);
        return 0;
    }
    if (json_is_object(v) && json_object_get(v, "vector")) {
        json_t *nm = json_object_get(v, "name");
        if (nm && !(json_is_string(nm) && json_string_length(nm) == 0))
            return fanns_err_set(&ctx->err, FANNS_EVALIDATE, path, "Named vectors are not supported yet");
        v = json_object_get(v, "vector");
    }
    if (!(v = unnamed_vector(v, path, &ctx->err))) return ctx->err.code;
    int rc = fanns__api_parse_vector(v, fanns_coll_dim(c), q, path, &ctx->err);
    if (rc == 0 && fanns_coll_metric(c) == FANNS_METRIC_COSINE) fanns_vec_normalize(q, fanns_coll_dim(c));
    return rc;
}

static int search_one(api_ctx_t *ctx, fanns_coll_t *c, const json_t *body, const char *path, fanns_jbuf_t *out) {
    static const char *const top[] = {"vector", "filter", "params", "limit", "offset", "with_payload", "with_vector",
                                      "with_vectors", "score_threshold", "shard_key", NULL};
    int rc;
    if (!json_is_object(body)) return fanns_err_set(&ctx->err, FANNS_EINVAL, path, "Format error in JSON body: a search request must be an object");
    if ((rc = fanns__api_check_fields(body, path, top, &ctx->err)) != 0) return rc;
    json_t *v = json_object_get(body, "vector");
    if (!v) return fanns_err_set(&ctx->err, FANNS_EINVAL, "vector", "Format error in JSON body: missing field `vector`");
    if (!json_object_get(body, "limit"))
        return fanns_err_set(&ctx->err, FANNS_EINVAL, "limit", "Format error in JSON body: missing field `limit`");
    float *q = malloc(fanns_coll_dim(c) * sizeof(float));
    if (!q) return fanns_err_set(&ctx->err, FANNS_ENOMEM, NULL, "out of memory");
    rc = decode_query_vector(ctx, c, v, "vector", q);
    if (rc == 0) rc = run_search(ctx, c, body, q, out, NULL);
    free(q);
    return rc;
}

/* Answers one search or query, appending its result's JSON text to out. */
typedef int (*one_fn)(api_ctx_t *ctx, fanns_coll_t *c, const json_t *body, const char *path, fanns_jbuf_t *out);

/* One request, or {"searches": [...]} answered as a list, for /search(/batch) and /query(/batch). */
static int run_one_or_batch(api_ctx_t *ctx, const char *name, bool batch, one_fn one, const char *what) {
    fanns_coll_t *c = NULL;
    fanns_jbuf_t b = {0};
    int rc;
    if ((rc = need_body(ctx, what)) != 0) return rc;
    if ((rc = get_coll(ctx, name, &c)) != 0) return rc;
    if (!batch) {
        rc = one(ctx, c, ctx->body, "", &b);
    } else {
        static const char *const top[] = {"searches", NULL};
        json_t *s = json_object_get(ctx->body, "searches");
        if ((rc = fanns__api_check_fields(ctx->body, "", top, &ctx->err)) != 0) goto out;
        if (!json_is_array(s)) {
            rc = fanns_err_set(&ctx->err, FANNS_EINVAL, "searches", "Format error in JSON body: searches must be an array");
            goto out;
        }
        fanns__jbuf_put(&b, "[", 1);
        size_t i;
        json_t *q;
        json_array_foreach(s, i, q) {
            char p[48];
            snprintf(p, sizeof(p), "searches[%zu]", i);
            if (i) fanns__jbuf_put(&b, ",", 1);
            if ((rc = one(ctx, c, q, p, &b)) != 0) goto out;
        }
        fanns__jbuf_put(&b, "]", 1);
    }
out:
    fanns_coll_release(c);
    if (rc == 0 && b.oom) rc = fanns_err_set(&ctx->err, FANNS_ENOMEM, NULL, "out of memory");
    if (rc == 0) {
        ctx->result_text = b.p;
        ctx->result_text_len = b.len;
    } else {
        free(b.p);
    }
    return rc;
}

int fanns__api_points_search(api_ctx_t *ctx, const char *name, bool batch) {
    return run_one_or_batch(ctx, name, batch, search_one, "{vector, limit}");
}

static int query_one(api_ctx_t *ctx, fanns_coll_t *c, const json_t *body, const char *path, fanns_jbuf_t *out) {
    static const char *const top[] = {"query", "using", "prefetch", "filter", "params", "limit", "offset", "with_payload",
                                      "with_vector", "with_vectors", "score_threshold", "lookup_from", "shard_key", NULL};
    int rc;
    float *q = NULL;
    if (!json_is_object(body)) return fanns_err_set(&ctx->err, FANNS_EINVAL, path, "Format error in JSON body: a query request must be an object");
    if ((rc = fanns__api_check_fields(body, path, top, &ctx->err)) != 0) return rc;
    json_t *using = json_object_get(body, "using");
    if (using && !json_is_null(using) && !(json_is_string(using) && json_string_length(using) == 0))
        return fanns_err_set(&ctx->err, FANNS_EVALIDATE, "using", "Named vectors are not supported yet (`using`)");
    json_t *pf = json_object_get(body, "prefetch");
    if (pf && !json_is_null(pf) && !(json_is_array(pf) && json_array_size(pf) == 0))
        return fanns_err_set(&ctx->err, FANNS_EVALIDATE, "prefetch", "prefetch (hybrid queries) is not supported yet");
    json_t *lf = json_object_get(body, "lookup_from");
    if (lf && !json_is_null(lf))
        return fanns_err_set(&ctx->err, FANNS_EVALIDATE, "lookup_from", "lookup_from is not supported yet");
    json_t *query = json_object_get(body, "query");
    if (!query || json_is_null(query))
        return fanns_err_set(&ctx->err, FANNS_EVALIDATE, "query", "a `query` (vector, {nearest: vector} or point id) is required");
    q = malloc(fanns_coll_dim(c) * sizeof(float));
    if (!q) return fanns_err_set(&ctx->err, FANNS_ENOMEM, NULL, "out of memory");
    if (json_is_object(query) && json_object_get(query, "nearest")) {
        if (json_object_size(query) != 1) {
            rc = fanns_err_set(&ctx->err, FANNS_EVALIDATE, "query.nearest", "nearest with mmr is not supported yet");
            goto out;
        }
        query = json_object_get(query, "nearest");
    } else if (json_is_object(query) && !json_object_get(query, "")) {
        const char *kind = json_object_iter_key(json_object_iter(query));
        rc = fanns_err_set(&ctx->err, FANNS_EVALIDATE, "query", "query kind `%s` is not supported yet; use a vector or {nearest: vector}",
                           kind ? kind : "{}");
        goto out;
    }
    if (json_is_integer(query) || json_is_string(query)) {
        /* A point id: search with that point's stored vector. */
        fanns_pid_t id;
        fanns_hit_t *h = NULL;
        size_t nh = 0;
        if ((rc = fanns_pid_from_json(query, &id, "query", &ctx->err)) != 0) goto out;
        if ((rc = fanns_coll_get_points(c, &id, 1, true, &h, &nh, &ctx->err)) != 0) goto out;
        if (nh == 0) {
            rc = fanns_err_set(&ctx->err, FANNS_ENOTFOUND, "query", "Not found: Point with id used as query does not exist");
            goto out;
        }
        memcpy(q, h[0].vector, fanns_coll_dim(c) * sizeof(float));
        fanns_hits_free(h, nh);
    } else if ((rc = decode_query_vector(ctx, c, query, "query", q)) != 0) {
        goto out;
    }
    json_t *explain = NULL;
    fanns__jbuf_puts(out, "{\"points\":");
    if ((rc = run_search(ctx, c, body, q, out, &explain)) != 0) goto out;
    if (explain) {
        fanns__jbuf_puts(out, ",\"explain\":");
        fanns__jbuf_json(out, explain);
        json_decref(explain);
    }
    fanns__jbuf_put(out, "}", 1);
out:
    free(q);
    return rc;
}

int fanns__api_points_query(api_ctx_t *ctx, const char *name, bool batch) {
    return run_one_or_batch(ctx, name, batch, query_one, "{query, limit}");
}
